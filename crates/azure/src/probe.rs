//! [`AzureTestVm`]: the user's Azure test VM for the probe, through the same ARM client
//! as the network adapter. It reads the VM (`Microsoft.Compute/virtualMachines`, with
//! its instance view), its primary NIC's private IP and the NIC's network security
//! group, and runs scripts with VM Run Command (`POST …/runCommand`, `RunShellScript` or
//! `RunPowerShellScript`), an asynchronous operation whose `Location` answers 202 while
//! the script runs and 200 with the `RunCommandResult` when it is done.
//!
//! The result's `value[].message` carries the output: on Linux one entry whose message
//! holds `[stdout]` and `[stderr]` sections; on Windows one entry per stream
//! (`ComponentStatus/StdOut/succeeded`, `ComponentStatus/StdErr/succeeded`), as the
//! spec's `VirtualMachineRunCommand.json` example shows.

use std::net::Ipv4Addr;

use async_trait::async_trait;
use ipnet::Ipv4Net;
use serde_json::{Value, json};
use vpnbridge_core::config::AzureVmRef;
use vpnbridge_core::endpoint::{EndpointError, ErrorKind};
use vpnbridge_core::probe::ProbeError;
use vpnbridge_core::probe::output::Os;
use vpnbridge_core::probe::vm::{RunState, TestVm, VmFacts};

use crate::arm::{API_VERSION, Arm, RawCall};

/// The Microsoft.Compute api-version for virtual machines and Run Command.
pub const COMPUTE_API_VERSION: &str = "2024-07-01";

/// One Azure VM the probe runs its pings on.
#[derive(Clone)]
pub struct AzureTestVm {
    arm: Arm,
    vm: AzureVmRef,
}

impl std::fmt::Debug for AzureTestVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureTestVm").field("vm", &self.vm.id()).finish_non_exhaustive()
    }
}

fn probe_error(what: &str, e: &EndpointError) -> ProbeError {
    let hint = match (e.kind, e.code.as_str()) {
        (_, "AuthorizationFailed") => {
            " (the role needs Microsoft.Compute/virtualMachines/read, .../runCommand/action, \
             Microsoft.Compute/locations/operations/read and Microsoft.Network/networkInterfaces/read: see azure-role.json)"
        }
        (ErrorKind::Throttled, _) => " (throttled: try again in a minute)",
        (_, "Conflict" | "OperationNotAllowed") => " (another Run Command may still be running on the VM: wait for it)",
        _ => "",
    };
    ProbeError(format!("{what}: {e}{hint}"))
}

/// Whether the inbound rules of an NSG let ICMP in from every prefix of `from`:
/// (rules that are not `Allow` for some prefix, by prefix).
fn nsg_refuses(nsg: &Value, from: &[Ipv4Net]) -> Vec<Ipv4Net> {
    let mut rules: Vec<&Value> = Vec::new();
    for key in ["securityRules", "defaultSecurityRules"] {
        if let Some(list) = nsg.pointer(&format!("/properties/{key}")).and_then(Value::as_array) {
            rules.extend(list);
        }
    }
    let mut inbound: Vec<(i64, &Value)> = rules
        .into_iter()
        .filter(|r| r.pointer("/properties/direction").and_then(Value::as_str).is_some_and(|d| d.eq_ignore_ascii_case("Inbound")))
        .map(|r| (r.pointer("/properties/priority").and_then(Value::as_i64).unwrap_or(i64::MAX), r))
        .collect();
    inbound.sort_by_key(|(p, _)| *p);
    let covers = |rule: &Value, prefix: Ipv4Net| {
        let mut sources: Vec<&str> = Vec::new();
        if let Some(s) = rule.pointer("/properties/sourceAddressPrefix").and_then(Value::as_str) {
            sources.push(s);
        }
        if let Some(list) = rule.pointer("/properties/sourceAddressPrefixes").and_then(Value::as_array) {
            sources.extend(list.iter().filter_map(Value::as_str));
        }
        // The VirtualNetwork tag holds the address spaces reached through the VNet's
        // gateway (the local network gateways' prefixes), so the VPC's too.
        sources.iter().any(|s| {
            matches!(*s, "*" | "VirtualNetwork" | "Any")
                || s.parse::<Ipv4Net>().is_ok_and(|n| n.contains(&prefix))
                || s.parse::<Ipv4Addr>().is_ok_and(|a| prefix.prefix_len() == 32 && a == prefix.network())
        })
    };
    let icmp = |rule: &Value| {
        rule.pointer("/properties/protocol").and_then(Value::as_str).is_some_and(|p| p == "*" || p.eq_ignore_ascii_case("Icmp"))
    };
    from.iter()
        .copied()
        .filter(|prefix| {
            let first = inbound.iter().find(|(_, r)| icmp(r) && covers(r, *prefix));
            first.is_none_or(|(_, r)| r.pointer("/properties/access").and_then(Value::as_str) != Some("Allow"))
        })
        .collect()
}

/// The script's output from a `RunCommandResult` (`{value: [{code, message}]}`).
fn run_output(result: &Value) -> Result<(String, String), String> {
    let items = result.get("value").and_then(Value::as_array).ok_or("the Run Command result has no value[]")?;
    let mut stdout = String::new();
    let mut stderr = String::new();
    for item in items {
        let code = item.get("code").and_then(Value::as_str).unwrap_or_default();
        let message = item.get("message").and_then(Value::as_str).unwrap_or_default();
        if code.to_ascii_lowercase().ends_with("/failed") && !code.contains("StdErr") && !code.contains("StdOut") {
            return Err(format!("{code}: {}", message.lines().next().unwrap_or_default()));
        }
        if code.contains("StdOut") {
            stdout.push_str(message);
        } else if code.contains("StdErr") {
            stderr.push_str(message);
        } else if let Some(at) = message.find("[stdout]") {
            let rest = &message[at + "[stdout]".len()..];
            let (out, err) = match rest.find("[stderr]") {
                Some(e) => (&rest[..e], &rest[e + "[stderr]".len()..]),
                None => (rest, ""),
            };
            stdout.push_str(out.trim_start_matches('\n'));
            stderr.push_str(err.trim_start_matches('\n'));
        }
    }
    Ok((stdout, stderr))
}

impl AzureTestVm {
    pub(crate) fn new(arm: Arm, vm: AzureVmRef) -> Self {
        Self { arm, vm }
    }

    fn vm_url(&self, tail: &str) -> String {
        format!("{}{tail}", self.vm.id())
    }
}

#[async_trait]
impl TestVm for AzureTestVm {
    fn describe(&self) -> String {
        format!("Azure VM {}", self.vm.name)
    }

    async fn inspect(&self, icmp_from: &[Ipv4Net]) -> Result<VmFacts, ProbeError> {
        let name = &self.vm.name;
        let url = self.vm_url(&format!("?$expand=instanceView&api-version={COMPUTE_API_VERSION}"));
        let vm: Value = match self.arm.get(RawCall::VmGet, &url).await {
            Ok(raw) => raw.json("the virtual machine").map_err(|e| probe_error(&format!("reading Azure VM {name}"), &e))?,
            Err(e) if e.kind == ErrorKind::NotFound => {
                let missing = format!(
                    "Azure VM {name} does not exist in resource group {}: fix [probe] azure_vm (`az vm list -g {} -o table` lists them)",
                    self.vm.resource_group, self.vm.resource_group
                );
                return Ok(VmFacts { private_ip: Ipv4Addr::UNSPECIFIED, os: Os::Linux, errors: vec![missing], warnings: Vec::new() });
            }
            Err(e) => return Err(probe_error(&format!("reading Azure VM {name}"), &e)),
        };
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let os = match vm.pointer("/properties/storageProfile/osDisk/osType").and_then(Value::as_str) {
            Some(t) if t.eq_ignore_ascii_case("Windows") => Os::Windows,
            _ => Os::Linux,
        };
        let statuses = vm.pointer("/properties/instanceView/statuses").and_then(Value::as_array).cloned().unwrap_or_default();
        let power = statuses.iter().filter_map(|s| s.get("code").and_then(Value::as_str)).find(|c| c.starts_with("PowerState/"));
        match power {
            Some("PowerState/running") => {}
            Some(p) => errors.push(format!(
                "Azure VM {name} is {}: Run Command needs it running; start it (`az vm start -g {} -n {name}`)",
                p.trim_start_matches("PowerState/"),
                self.vm.resource_group
            )),
            None => warnings.push(format!("Azure VM {name} reports no power state; the ping needs it running")),
        }
        let agent = vm.pointer("/properties/instanceView/vmAgent/statuses/0/displayStatus").and_then(Value::as_str);
        if let Some(a) = agent
            && a != "Ready"
        {
            errors.push(format!(
                "the VM agent of Azure VM {name} is {a}: Run Command needs the Azure VM agent running (restart the VM or reinstall the agent)"
            ));
        }
        let nics = vm.pointer("/properties/networkProfile/networkInterfaces").and_then(Value::as_array).cloned().unwrap_or_default();
        let nic = nics.iter().find(|n| n.pointer("/properties/primary").and_then(Value::as_bool) == Some(true)).or(nics.first());
        let nic_id = nic.and_then(|n| n.get("id")).and_then(Value::as_str).map(str::to_owned);
        let Some(nic_id) = nic_id else {
            return Err(ProbeError(format!("Azure VM {name} has no network interface: it cannot be pinged")));
        };
        let nic: Value = self
            .arm
            .get(RawCall::NicGet, &format!("{nic_id}?api-version={API_VERSION}"))
            .await
            .and_then(|r| r.json("the network interface"))
            .map_err(|e| probe_error(&format!("reading the network interface of Azure VM {name}"), &e))?;
        let configs = nic.pointer("/properties/ipConfigurations").and_then(Value::as_array).cloned().unwrap_or_default();
        let primary = configs.iter().find(|c| c.pointer("/properties/primary").and_then(Value::as_bool) == Some(true)).or(configs.first());
        let ip = primary
            .and_then(|c| c.pointer("/properties/privateIPAddress"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Ipv4Addr>().ok())
            .ok_or_else(|| ProbeError(format!("the network interface {nic_id} of Azure VM {name} has no private IPv4 address")))?;
        match nic.pointer("/properties/networkSecurityGroup/id").and_then(Value::as_str) {
            None => {}
            Some(nsg_id) => match self.arm.get(RawCall::NsgGet, &format!("{nsg_id}?api-version={API_VERSION}")).await {
                Ok(raw) => {
                    let nsg: Value = raw.json("the network security group").map_err(|e| probe_error("reading the NSG", &e))?;
                    let nsg_name = nsg_id.rsplit('/').next().unwrap_or(nsg_id);
                    for p in nsg_refuses(&nsg, icmp_from) {
                        errors.push(format!(
                            "network security group {nsg_name} of Azure VM {name} does not let ICMP in from the VPC's {p}: add an inbound \
                             rule (`az network nsg rule create -g <group> --nsg-name {nsg_name} -n allow-icmp-vpc --priority 200 \
                             --protocol Icmp --source-address-prefixes {p} --access Allow`)"
                        ));
                    }
                }
                Err(e) => warnings.push(format!(
                    "could not read network security group {nsg_id} of Azure VM {name} ({}): make sure it lets ICMP in from the VPC",
                    e.code
                )),
            },
        }
        Ok(VmFacts { private_ip: ip, os, errors, warnings })
    }

    async fn start(&self, os: Os, script: &str) -> Result<String, ProbeError> {
        let command = match os {
            Os::Linux => "RunShellScript",
            Os::Windows => "RunPowerShellScript",
        };
        let body = json!({ "commandId": command, "script": script.lines().collect::<Vec<_>>() });
        let url = self.vm_url(&format!("/runCommand?api-version={COMPUTE_API_VERSION}"));
        let raw = self
            .arm
            .post(RawCall::RunCommand, &url, &body)
            .await
            .map_err(|e| probe_error(&format!("starting Run Command on Azure VM {}", self.vm.name), &e))?;
        if raw.status == 200 {
            // Finished at once: keep the answer as the run's id is not needed.
            return Ok(format!("done:{}", String::from_utf8_lossy(&raw.body)));
        }
        raw.header("location")
            .or_else(|| raw.header("azure-asyncoperation"))
            .ok_or_else(|| ProbeError(format!("Run Command on Azure VM {} was accepted without a Location to follow", self.vm.name)))
    }

    async fn poll(&self, id: &str) -> Result<RunState, ProbeError> {
        let body: Value = if let Some(done) = id.strip_prefix("done:") {
            serde_json::from_str(done).map_err(|e| ProbeError(format!("the Run Command result is not JSON: {e}")))?
        } else {
            let raw = self
                .arm
                .get(RawCall::ComputeOperation, id)
                .await
                .map_err(|e| probe_error(&format!("following Run Command on Azure VM {}", self.vm.name), &e))?;
            if raw.status == 202 || raw.body.is_empty() {
                return Ok(RunState::Running);
            }
            raw.json("the Run Command result").map_err(|e| probe_error("reading the Run Command result", &e))?
        };
        // An operation status document (`Azure-AsyncOperation`) or the result itself.
        let result = match body.get("status").and_then(Value::as_str) {
            Some("InProgress") => return Ok(RunState::Running),
            Some("Succeeded") => body.pointer("/properties/output").cloned().unwrap_or(Value::Null),
            Some(other) => {
                let why = body.pointer("/error/message").and_then(Value::as_str).unwrap_or("no reason given");
                return Ok(RunState::Failed(format!("Run Command {other}: {why}")));
            }
            None => body,
        };
        match run_output(&result) {
            Ok((stdout, stderr)) => Ok(RunState::Done { stdout, stderr }),
            Err(why) => Ok(RunState::Failed(why)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_and_windows_results() {
        let linux = json!({"value": [{"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded",
            "message": "Enable succeeded: \n[stdout]\nPING 10.2.0.4\n[stderr]\nwarn\n"}]});
        assert_eq!(run_output(&linux).unwrap(), ("PING 10.2.0.4\n".to_owned(), "warn\n".to_owned()));
        let windows = json!({"value": [
            {"code": "ComponentStatus/StdOut/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded", "message": "out"},
            {"code": "ComponentStatus/StdErr/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded", "message": ""}]});
        assert_eq!(run_output(&windows).unwrap(), ("out".to_owned(), String::new()));
        assert!(run_output(&json!({"value": [{"code": "ProvisioningState/failed", "message": "boom"}]})).is_err());
    }

    #[test]
    fn nsg_rules_by_priority() {
        let vpc: Vec<Ipv4Net> = vec!["10.2.0.0/16".parse().unwrap()];
        let rule = |prio: i64, proto: &str, src: &str, access: &str| json!({"properties": {"priority": prio, "protocol": proto, "sourceAddressPrefix": src, "access": access, "direction": "Inbound"}});
        let defaults = json!([rule(65000, "*", "VirtualNetwork", "Allow"), rule(65500, "*", "*", "Deny")]);
        let nsg = json!({"properties": {"securityRules": [], "defaultSecurityRules": defaults}});
        assert!(nsg_refuses(&nsg, &vpc).is_empty(), "AllowVnetInBound covers the gateway's remote prefixes");
        let nsg = json!({"properties": {"securityRules": [rule(100, "Icmp", "10.0.0.0/8", "Deny")], "defaultSecurityRules": defaults}});
        assert_eq!(nsg_refuses(&nsg, &vpc), vpc);
        let nsg = json!({"properties": {"securityRules": [rule(100, "Icmp", "10.2.0.0/16", "Allow"), rule(200, "*", "*", "Deny")]}});
        assert!(nsg_refuses(&nsg, &vpc).is_empty());
    }
}
