//! The users' test VMs, for the probe: `Microsoft.Compute/virtualMachines/{vm}` (GET,
//! with `$expand=instanceView`), its NIC (`Microsoft.Network/networkInterfaces`) and
//! NSG (`networkSecurityGroups`), and VM Run Command (`POST …/runCommand`).
//!
//! After the REST spec (Compute 2024-07-01, example `VirtualMachineRunCommand.json`):
//! the POST answers 202 with a `Location` (`…/providers/Microsoft.Compute/locations/
//! {loc}/operations/{id}`) and `Retry-After`; that URL answers 202 while the script
//! runs and 200 with the `RunCommandResult` (`{value: [{code, level, displayStatus,
//! message}]}`) when it is done: on Linux one `ProvisioningState/succeeded` entry whose
//! message holds `[stdout]` and `[stderr]`, on Windows one entry per stream. As on
//! Azure, one Run Command runs on a VM at a time (409 `Conflict` meanwhile), a stopped
//! VM runs none (409 `OperationNotAllowed`), the commandId must fit the OS, and the
//! Compute paths need their own api-version.
//!
//! The ping is scripted per VM ([`PingScript`]), not sent: the fake has no VPC behind
//! it. Outputs are written as iputils `ping` and Windows PowerShell 5.1
//! `Test-Connection` print them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{Method, StatusCode, Uri};
use ipnet::Ipv4Net;
use serde_json::{Value, json};

use crate::{Answer, Shared, arm_error, lock};

/// The Compute api-version served (and required on Compute paths).
pub const COMPUTE_API_VERSION: &str = "2024-07-01";

/// What the scripted ping on a test VM sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingScript {
    /// Every echo replied.
    AllReplies,
    /// Nothing came back.
    TotalLoss,
    /// Echoes 2 and 4 lost; in a timestamped series, samples 10 to 39 (a 30 s outage).
    PartialLoss,
    /// The Run Command itself fails (`ProvisioningState/failed`).
    CommandFails,
}

/// The NSG on the test VM's NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestNsg {
    /// No NSG on the NIC.
    None,
    /// Only Azure's default rules (`AllowVnetInBound` covers the gateway's remote
    /// prefixes, so ICMP from the VPC is let in).
    Default,
    /// A rule at priority 100 denying ICMP from this prefix.
    DenyIcmpFrom(Ipv4Net),
    /// Reading it is forbidden (403 `AuthorizationFailed`).
    Unreadable,
}

/// A test VM in the fake's resource group.
#[derive(Debug, Clone)]
pub struct TestVmSpec {
    pub name: String,
    pub private_ip: Ipv4Addr,
    /// `Linux` or `Windows`.
    pub windows: bool,
    pub running: bool,
    pub agent_ready: bool,
    pub nsg: TestNsg,
    pub ping: PingScript,
    /// How long each Run Command takes (Azure: tens of seconds).
    pub run_time: Duration,
}

impl TestVmSpec {
    /// A running Linux VM with a ready agent, the default NSG, every echo replied and
    /// Run Commands taking 300 ms.
    pub fn linux(name: &str, private_ip: Ipv4Addr) -> Self {
        Self {
            name: name.to_owned(),
            private_ip,
            windows: false,
            running: true,
            agent_ready: true,
            nsg: TestNsg::Default,
            ping: PingScript::AllReplies,
            run_time: Duration::from_millis(300),
        }
    }
}

#[derive(Debug, Clone)]
struct Run {
    vm: String,
    started: Instant,
    started_unix: f64,
    ends: Instant,
    script: String,
    windows: bool,
    ping: PingScript,
}

/// The test VMs and their runs.
#[derive(Debug, Default)]
pub(crate) struct Compute {
    /// The AWS ends are scripted up (see [`expected_instance`]).
    pub(crate) peer_up: bool,
    vms: BTreeMap<String, TestVmSpec>,
    runs: BTreeMap<String, Run>,
}

impl Compute {
    pub(crate) fn add(&mut self, vm: TestVmSpec) {
        self.vms.insert(vm.name.clone(), vm);
    }

    pub(crate) fn update(&mut self, name: &str, f: impl FnOnce(&mut TestVmSpec)) -> bool {
        self.vms.get_mut(name).map(f).is_some()
    }
}

/// The api-version a path must carry.
pub(crate) fn api_version_for(path: &str) -> &'static str {
    if path.to_ascii_lowercase().contains("/providers/microsoft.compute/") { COMPUTE_API_VERSION } else { crate::API_VERSION }
}

fn query_has(uri: &Uri, needle: &str) -> bool {
    uri.query().is_some_and(|q| q.split('&').any(|kv| kv.eq_ignore_ascii_case(needle)))
}

/// Serves the paths of this module; `None` for every other path.
pub(crate) fn route(s: &Shared, method: &Method, uri: &Uri, body: &[u8]) -> Option<Answer> {
    let path = uri.path();
    let seg: Vec<&str> = path.trim_matches('/').split('/').collect();
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    // /subscriptions/{s}/providers/Microsoft.Compute/locations/{loc}/operations/{id}
    if let ["subscriptions", _, p, ns, l, _, ops, id] = seg.as_slice()
        && eq(p, "providers")
        && eq(ns, "Microsoft.Compute")
        && eq(l, "locations")
        && eq(ops, "operations")
    {
        return Some(if *method == Method::GET {
            operation(s, id)
        } else {
            arm_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", format!("{method} is not supported here."))
        });
    }
    let ["subscriptions", sub, r, rg, p, ns, kind, name, rest @ ..] = seg.as_slice() else { return None };
    if !(eq(r, "resourceGroups") && eq(p, "providers")) {
        return None;
    }
    let compute = eq(ns, "Microsoft.Compute") && eq(kind, "virtualMachines");
    let network = eq(ns, "Microsoft.Network") && (eq(kind, "networkInterfaces") || eq(kind, "networkSecurityGroups"));
    if !compute && !network {
        return None;
    }
    if *sub != s.cfg.subscription_id || *rg != s.cfg.resource_group {
        return Some(arm_error(StatusCode::NOT_FOUND, "ResourceGroupNotFound", format!("Resource group '{rg}' could not be found.")));
    }
    let c = lock(&s.compute);
    let vm_name = if compute {
        Some((*name).to_owned())
    } else {
        // nic-{vm} / nsg-{vm}
        name.strip_prefix("nic-").or_else(|| name.strip_prefix("nsg-")).map(str::to_owned)
    };
    let Some(vm) = vm_name.and_then(|n| c.vms.get(&n).cloned()) else {
        let provider = if compute { "Microsoft.Compute" } else { "Microsoft.Network" };
        return Some(arm_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The Resource '{provider}/{kind}/{name}' under resource group '{rg}' was not found."),
        ));
    };
    drop(c);
    Some(match (compute, rest, method) {
        (true, [], &Method::GET) => Answer::json(StatusCode::OK, vm_shape(s, &vm, query_has(uri, "$expand=instanceView"))),
        (true, [action], &Method::POST) if eq(action, "runCommand") => run_command(s, &vm, body),
        (false, [], &Method::GET) if eq(kind, "networkInterfaces") && name.starts_with("nic-") => {
            Answer::json(StatusCode::OK, nic_shape(s, &vm))
        }
        (false, [], &Method::GET) if name.starts_with("nsg-") && !matches!(vm.nsg, TestNsg::None) => match vm.nsg {
            TestNsg::Unreadable => arm_error(
                StatusCode::FORBIDDEN,
                "AuthorizationFailed",
                format!(
                    "The client 'vpnbridge' does not have authorization to perform action 'Microsoft.Network/networkSecurityGroups/read' over scope '{}'.",
                    nsg_id(s, &vm)
                ),
            ),
            _ => Answer::json(StatusCode::OK, nsg_shape(s, &vm)),
        },
        (_, [], m) if *m != Method::GET => {
            arm_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", format!("{m} is not supported here."))
        }
        _ => arm_error(StatusCode::NOT_FOUND, "ResourceNotFound", format!("No route for {path}.")),
    })
}

fn rg_id(s: &Shared) -> String {
    format!("/subscriptions/{}/resourceGroups/{}", s.cfg.subscription_id, s.cfg.resource_group)
}

fn vm_id(s: &Shared, vm: &TestVmSpec) -> String {
    format!("{}/providers/Microsoft.Compute/virtualMachines/{}", rg_id(s), vm.name)
}

fn nic_id(s: &Shared, vm: &TestVmSpec) -> String {
    format!("{}/providers/Microsoft.Network/networkInterfaces/nic-{}", rg_id(s), vm.name)
}

fn nsg_id(s: &Shared, vm: &TestVmSpec) -> String {
    format!("{}/providers/Microsoft.Network/networkSecurityGroups/nsg-{}", rg_id(s), vm.name)
}

fn vm_shape(s: &Shared, vm: &TestVmSpec, instance_view: bool) -> Value {
    let os = if vm.windows { "Windows" } else { "Linux" };
    let mut v = json!({
        "id": vm_id(s, vm),
        "name": vm.name,
        "type": "Microsoft.Compute/virtualMachines",
        "location": s.cfg.location,
        "properties": {
            "vmId": "00000000-0000-4000-8000-0000000000f1",
            "hardwareProfile": { "vmSize": "Standard_B1s" },
            "storageProfile": { "osDisk": { "osType": os, "name": format!("{}-osdisk", vm.name), "createOption": "FromImage" } },
            "osProfile": { "computerName": vm.name, "adminUsername": "azureuser" },
            "networkProfile": { "networkInterfaces": [ { "id": nic_id(s, vm), "properties": { "primary": true } } ] },
            "provisioningState": "Succeeded"
        }
    });
    if instance_view {
        let (power, display) = if vm.running { ("PowerState/running", "VM running") } else { ("PowerState/deallocated", "VM deallocated") };
        let agent = if vm.agent_ready { "Ready" } else { "Not Ready" };
        v["properties"]["instanceView"] = json!({
            "computerName": vm.name,
            "osName": if vm.windows { "Windows Server 2022 Datacenter" } else { "ubuntu" },
            "vmAgent": { "vmAgentVersion": "2.7.41491.1102", "statuses": [
                { "code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": agent, "message": "Guest Agent is running" } ] },
            "statuses": [
                { "code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded" },
                { "code": power, "level": "Info", "displayStatus": display }
            ]
        });
    }
    v
}

fn nic_shape(s: &Shared, vm: &TestVmSpec) -> Value {
    let subnet = format!("{}/providers/Microsoft.Network/virtualNetworks/{}/subnets/default", rg_id(s), s.cfg.vnet);
    let mut v = json!({
        "id": nic_id(s, vm),
        "name": format!("nic-{}", vm.name),
        "type": "Microsoft.Network/networkInterfaces",
        "location": s.cfg.location,
        "properties": {
            "provisioningState": "Succeeded",
            "ipConfigurations": [ {
                "id": format!("{}/ipConfigurations/ipconfig1", nic_id(s, vm)),
                "name": "ipconfig1",
                "properties": { "privateIPAddress": vm.private_ip.to_string(), "privateIPAllocationMethod": "Dynamic",
                                 "privateIPAddressVersion": "IPv4", "primary": true, "subnet": { "id": subnet } }
            } ],
            "primary": true,
            "virtualMachine": { "id": vm_id(s, vm) }
        }
    });
    if !matches!(vm.nsg, TestNsg::None) {
        v["properties"]["networkSecurityGroup"] = json!({ "id": nsg_id(s, vm) });
    }
    v
}

fn rule(name: &str, priority: u32, protocol: &str, source: &str, access: &str) -> Value {
    json!({ "name": name, "properties": { "protocol": protocol, "sourceAddressPrefix": source, "sourcePortRange": "*",
        "destinationAddressPrefix": "*", "destinationPortRange": "*", "access": access, "priority": priority,
        "direction": "Inbound", "provisioningState": "Succeeded" } })
}

fn nsg_shape(s: &Shared, vm: &TestVmSpec) -> Value {
    let rules: Vec<Value> = match &vm.nsg {
        TestNsg::DenyIcmpFrom(p) => vec![rule("deny-icmp", 100, "Icmp", &p.to_string(), "Deny")],
        _ => Vec::new(),
    };
    json!({
        "id": nsg_id(s, vm),
        "name": format!("nsg-{}", vm.name),
        "type": "Microsoft.Network/networkSecurityGroups",
        "location": s.cfg.location,
        "properties": {
            "provisioningState": "Succeeded",
            "securityRules": rules,
            "defaultSecurityRules": [
                rule("AllowVnetInBound", 65000, "*", "VirtualNetwork", "Allow"),
                rule("AllowAzureLoadBalancerInBound", 65001, "*", "AzureLoadBalancer", "Allow"),
                rule("DenyAllInBound", 65500, "*", "*", "Deny")
            ]
        }
    })
}

fn run_command(s: &Shared, vm: &TestVmSpec, body: &[u8]) -> Answer {
    let Ok(input) = serde_json::from_slice::<Value>(body) else {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized.",
        );
    };
    let Some(command) = input.get("commandId").and_then(Value::as_str) else {
        return arm_error(StatusCode::BAD_REQUEST, "InvalidParameter", "Required parameter 'commandId' is missing (null).");
    };
    let wanted = if vm.windows { "RunPowerShellScript" } else { "RunShellScript" };
    if !command.eq_ignore_ascii_case(wanted) {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("The command id '{command}' is not valid for a {} VM.", if vm.windows { "Windows" } else { "Linux" }),
        );
    }
    if !vm.running {
        return arm_error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            format!("Cannot run a command on VM '{}' because it is not running.", vm.name),
        );
    }
    let script = input.get("script").and_then(Value::as_array).map(|l| l.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\n"));
    let script = script.unwrap_or_default();
    let mut c = lock(&s.compute);
    let now = Instant::now();
    if c.runs.values().any(|r| r.vm == vm.name && r.ends > now) {
        return arm_error(
            StatusCode::CONFLICT,
            "Conflict",
            "Run command extension execution is in progress. Please wait for completion before invoking a run command.",
        );
    }
    let guid = s.guid();
    // A series runs as long as it samples (scaled down: a tenth of a second per sample).
    let samples = number_after(&script, "-lt ").or_else(|| number_after(&script, "-le ")).filter(|_| script.contains("vpnbridge-sample"));
    let ends = now + vm.run_time + Duration::from_millis(100) * samples.unwrap_or(0);
    let started_unix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    c.runs.insert(guid.clone(), Run { vm: vm.name.clone(), started: now, started_unix, ends, script, windows: vm.windows, ping: vm.ping });
    let location = operation_url(s, &guid);
    s.with_retry_after(Answer::empty(StatusCode::ACCEPTED).header("Location", location))
}

fn operation_url(s: &Shared, guid: &str) -> String {
    format!(
        "{}/subscriptions/{}/providers/Microsoft.Compute/locations/{}/operations/{guid}?api-version={COMPUTE_API_VERSION}",
        s.base_url, s.cfg.subscription_id, s.cfg.location
    )
}

fn operation(s: &Shared, guid: &str) -> Answer {
    let Some(run) = lock(&s.compute).runs.get(guid).cloned() else {
        return arm_error(StatusCode::NOT_FOUND, "OperationNotFound", format!("The operation '{guid}' was not found."));
    };
    if Instant::now() < run.ends {
        return s.with_retry_after(Answer::empty(StatusCode::ACCEPTED).header("Location", operation_url(s, guid)));
    }
    let _ = run.started;
    if run.ping == PingScript::CommandFails {
        let entry = json!({ "code": "ProvisioningState/failed", "level": "Error", "displayStatus": "Provisioning failed",
            "message": "Enable failed: failed to execute the script: exit status 1\n[stdout]\n\n[stderr]\n/bin/sh: 1: ping: not found\n" });
        return Answer::json(StatusCode::OK, json!({ "value": [entry] }));
    }
    let stdout = output(&run);
    let value = if run.windows {
        json!([
            { "code": "ComponentStatus/StdOut/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded", "message": stdout },
            { "code": "ComponentStatus/StdErr/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded", "message": "" }
        ])
    } else {
        json!([{ "code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded",
                 "message": format!("Enable succeeded: \n[stdout]\n{stdout}\n[stderr]\n") }])
    };
    Answer::json(StatusCode::OK, json!({ "value": value }))
}

fn number_after(script: &str, marker: &str) -> Option<u32> {
    let at = script.find(marker)? + marker.len();
    script[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
}

fn target_of(script: &str) -> String {
    for marker in ["-ComputerName ", "-W 2 ", "-W 1 "] {
        if let Some(at) = script.find(marker) {
            let t: String = script[at + marker.len()..].chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            if !t.is_empty() {
                return t;
            }
        }
    }
    "0.0.0.0".to_owned()
}

/// The scripted output of a run, as the VM would print it.
fn output(run: &Run) -> String {
    let target = target_of(&run.script);
    if run.script.contains("vpnbridge-sample") {
        let count = number_after(&run.script, "-lt ").or_else(|| number_after(&run.script, "-le ")).unwrap_or(1);
        let interval = number_after(&run.script, "-Milliseconds ").map_or(1.0, |ms| f64::from(ms) / 1000.0);
        return (1..=count)
            .map(|i| {
                let lost = match run.ping {
                    PingScript::AllReplies | PingScript::CommandFails => false,
                    PingScript::TotalLoss => true,
                    PingScript::PartialLoss => (10..40).contains(&i),
                };
                format!("vpnbridge-sample seq={i} at={:.3} reply={}\n", run.started_unix + f64::from(i - 1) * interval, u8::from(!lost))
            })
            .collect();
    }
    let count = number_after(&run.script, "-c ").or_else(|| number_after(&run.script, "-Count ")).unwrap_or(5);
    let lost = |seq: u32| match run.ping {
        PingScript::AllReplies | PingScript::CommandFails => false,
        PingScript::TotalLoss => true,
        PingScript::PartialLoss => seq == 2 || seq == 4,
    };
    if run.windows {
        let mut out = String::from(
            "\nSource        Destination     IPV4Address      IPV6Address                              Bytes    Time(ms)\n\
             ------        -----------     -----------      -----------                              -----    --------\n",
        );
        for seq in (1..=count).filter(|s| !lost(*s)) {
            out.push_str(&format!(
                "VM-TEST       {target:<15} {target:<16}                                         32       {}\n",
                1 + seq % 2
            ));
        }
        out.push_str(&format!("\n\nvpnbridge-sent={count}\n"));
        return out;
    }
    let mut out = format!("PING {target} ({target}) 56(84) bytes of data.\n");
    let times: Vec<f64> = (1..=count).filter(|s| !lost(*s)).map(|s| 1.4 + f64::from(s % 3) * 0.3).collect();
    for (seq, t) in (1..=count).filter(|s| !lost(*s)).zip(&times) {
        out.push_str(&format!("64 bytes from {target}: icmp_seq={seq} ttl=63 time={t:.2} ms\n"));
    }
    let received = times.len() as u32;
    out.push_str(&format!(
        "\n--- {target} ping statistics ---\n{count} packets transmitted, {received} received, {}% packet loss, time {}ms\n",
        100 * (count - received) / count.max(1),
        1000 * count.saturating_sub(1) + 5
    ));
    if received > 0 {
        let min = times.iter().copied().fold(f64::INFINITY, f64::min);
        let max = times.iter().copied().fold(0.0, f64::max);
        let avg = times.iter().sum::<f64>() / times.len() as f64;
        out.push_str(&format!("rtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/0.120 ms\n"));
    }
    out.push_str(&format!("vpnbridge-exit={}\n", if received > 0 { 0 } else { 1 }));
    out
}

/// The AWS ends as the harness scripts them ([`crate::ArmFakeHandle::script_peer_up`]):
/// moto has no data plane, so with this switch each Connection's tunnel from the
/// gateway instance that the pairing rule expects (instance k for a Connection named
/// `…-cn-k-t`) is Connected, and the other instance's NotConnected, in the GET and in
/// `getikesas`.
pub(crate) fn expected_instance(connection_name: &str) -> Option<usize> {
    let rest = &connection_name[connection_name.rfind("-cn-")? + 4..];
    rest.split('-').next()?.parse().ok()
}

/// Rewrites a Connection's runtime fields for a scripted peer.
pub(crate) fn peer_up_connection(w: &vpnbridge_sim::World, id: &str, v: &mut Value) {
    let Some(c) = w.azure.connections.get(id) else { return };
    let Some(g) = w.azure.gateways.get(&c.gateway_id) else { return };
    let Some(up) = expected_instance(&c.name) else { return };
    let mut tunnels: Vec<Value> = g
        .ip_configurations
        .iter()
        .enumerate()
        .map(|(k, ipc)| {
            let mut t = json!({
                "tunnel": crate::shapes::tunnel_name(&c.id, &ipc.id),
                "connectionStatus": if k == up { "Connected" } else { "NotConnected" },
                "ingressBytesTransferred": 0,
                "egressBytesTransferred": 0,
            });
            if k == up {
                t["lastConnectionEstablishedUtcTime"] = json!(vpnbridge_sim::World::timestamp(c.phase.since));
            }
            t
        })
        .collect();
    tunnels.sort_by(|a, b| a["tunnel"].as_str().cmp(&b["tunnel"].as_str()));
    if c.phase.state == vpnbridge_core::model::ProvisioningState::Succeeded {
        v["properties"]["connectionStatus"] = json!("Connected");
        v["properties"]["tunnelConnectionStatus"] = Value::Array(tunnels);
    }
}

/// The IKE SA a scripted peer has with the expected instance.
pub(crate) fn peer_up_ike_sas(w: &vpnbridge_sim::World, id: &str) -> Option<Value> {
    let c = w.azure.connections.get(id)?;
    let g = w.azure.gateways.get(&c.gateway_id)?;
    let lng = w.azure.local_network_gateways.get(&c.local_network_gateway_id)?;
    let ip = w.instance_ip(g, expected_instance(&c.name)?)?;
    Some(json!([{
        "localEndpoint": ip.to_string(), "remoteEndpoint": lng.gateway_ip.to_string(),
        "localUdpEncapsulationPort": 0, "remoteUdpEncapsulationPort": 0, "encryption": "AES256", "integrity": "SHA256",
        "dhGroup": "DHGroup2", "lifeTimeSeconds": 28800, "isSaInitiator": true, "elapsedTimeInseconds": 60, "quickModeSa": []
    }]))
}
