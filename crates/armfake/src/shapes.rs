//! ARM JSON shapes of the simulator's Azure resources (api-version 2024-03-01).
//!
//! Field names and nesting follow the REST spec: top-level `id`, `name`, `type`,
//! `location`, `tags`, `etag` (and `sku`/`zones` for public IPs), everything else in
//! `properties`. References between resources are id-only (`{"id": …}`), as live
//! ARM returns them.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;

use serde_json::{Value, json};
use vpnbridge_core::model::ProvisioningState;
use vpnbridge_sim::World;
use vpnbridge_sim::world::{AzConnection, AzGateway, AzLng, AzPublicIp, AzVnet, LinkState};

fn state(s: ProvisioningState) -> &'static str {
    match s {
        ProvisioningState::Succeeded => "Succeeded",
        ProvisioningState::Updating => "Updating",
        ProvisioningState::Deleting => "Deleting",
        ProvisioningState::Failed => "Failed",
    }
}

/// A stable GUID-shaped string derived from `seed`.
fn guid(seed: &str) -> String {
    let mut h = DefaultHasher::new();
    seed.hash(&mut h);
    let a = h.finish();
    "salt".hash(&mut h);
    let b = h.finish();
    format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xfff, (b >> 48) & 0xfff, b & 0xffff_ffff_ffff)
}

fn etag(id: &str, since: u64) -> String {
    format!("W/\"{}\"", guid(&format!("{id}@{since}")))
}

pub(crate) fn vnet(w: &World, v: &AzVnet) -> Value {
    let subnets: Vec<Value> = v
        .subnets
        .iter()
        .map(|s| {
            let users: Vec<Value> = w
                .azure
                .gateways_in_subnet(&s.id)
                .flat_map(|g| g.ip_configurations.iter().filter(|c| c.subnet_id == s.id).map(|c| json!({ "id": c.id })))
                .collect();
            let mut props = json!({ "provisioningState": "Succeeded", "addressPrefix": s.prefix.to_string() });
            if !users.is_empty() {
                props["ipConfigurations"] = Value::Array(users);
            }
            json!({
                "id": s.id,
                "name": s.name,
                "type": "Microsoft.Network/virtualNetworks/subnets",
                "etag": etag(&s.id, 0),
                "properties": props,
            })
        })
        .collect();
    json!({
        "id": v.id,
        "name": v.name,
        "type": "Microsoft.Network/virtualNetworks",
        "location": v.location,
        "etag": etag(&v.id, 0),
        "properties": {
            "provisioningState": "Succeeded",
            "resourceGuid": guid(&v.id),
            "addressSpace": { "addressPrefixes": v.address_space.iter().map(ToString::to_string).collect::<Vec<_>>() },
            "subnets": subnets,
            "enableDdosProtection": false,
        },
    })
}

pub(crate) fn public_ip(w: &World, p: &AzPublicIp) -> Value {
    let mut props = json!({
        "provisioningState": state(p.phase.state),
        "resourceGuid": guid(&p.id),
        "publicIPAddressVersion": "IPv4",
        "publicIPAllocationMethod": if p.static_allocation { "Static" } else { "Dynamic" },
        "idleTimeoutInMinutes": 4,
        "ipTags": [],
    });
    if let Some(ip) = p.ip {
        props["ipAddress"] = json!(ip.to_string());
    }
    if let Some((_, c)) = w.azure.gateway_using_public_ip(&p.id) {
        props["ipConfiguration"] = json!({ "id": c.id });
    } else if let Some(c) = w.azure.public_ip_held_at(&p.id, w.now_ms) {
        // A deleted gateway's ipConfiguration, until it releases the IP.
        props["ipConfiguration"] = json!({ "id": c });
    }
    json!({
        "id": p.id,
        "name": p.name,
        "type": "Microsoft.Network/publicIPAddresses",
        "location": p.location,
        "tags": p.tags,
        "etag": etag(&p.id, p.phase.since),
        "zones": p.zones,
        "sku": { "name": p.sku, "tier": "Regional" },
        "properties": props,
    })
}

/// The default BGP address of instance `k`: the GatewaySubnet's 4th + k host.
fn default_bgp_ip(w: &World, subnet_id: &str, k: usize) -> Option<Ipv4Addr> {
    let s = w.azure.subnet(subnet_id)?;
    let base = u32::from(s.prefix.network());
    Some(Ipv4Addr::from(base + 4 + u32::try_from(k).ok()?))
}

pub(crate) fn gateway(w: &World, g: &AzGateway) -> Value {
    let ip_configurations: Vec<Value> = g
        .ip_configurations
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "name": c.name,
                "etag": etag(&c.id, g.phase.since),
                "properties": {
                    "provisioningState": state(g.phase.state),
                    "privateIPAllocationMethod": "Dynamic",
                    "subnet": { "id": c.subnet_id },
                    "publicIPAddress": { "id": c.public_ip_id },
                },
            })
        })
        .collect();
    let peering: Vec<Value> = g
        .ip_configurations
        .iter()
        .enumerate()
        .map(|(k, c)| {
            json!({
                "ipconfigurationId": c.id,
                "defaultBgpIpAddresses": default_bgp_ip(w, &c.subnet_id, k).map(|ip| vec![ip.to_string()]).unwrap_or_default(),
                "customBgpIpAddresses": [],
                "tunnelIpAddresses": w.instance_ip(g, k).map(|ip| vec![ip.to_string()]).unwrap_or_default(),
            })
        })
        .collect();
    let legacy: Vec<String> =
        g.ip_configurations.iter().enumerate().filter_map(|(k, c)| default_bgp_ip(w, &c.subnet_id, k).map(|ip| ip.to_string())).collect();
    let tier = g.sku.clone();
    json!({
        "id": g.id,
        "name": g.name,
        "type": "Microsoft.Network/virtualNetworkGateways",
        "location": g.location,
        "tags": g.tags,
        "etag": etag(&g.id, g.phase.since),
        "properties": {
            "provisioningState": state(g.phase.state),
            "resourceGuid": guid(&g.id),
            "packetCaptureDiagnosticState": "None",
            "enablePrivateIpAddress": false,
            "isMigrateLegacyGateway": false,
            "ipConfigurations": ip_configurations,
            "natRules": [],
            "enableBgpRouteTranslationForNat": false,
            "sku": { "name": g.sku, "tier": tier, "capacity": 2 },
            "gatewayType": g.gateway_type,
            "vpnType": g.vpn_type,
            "vpnGatewayGeneration": g.generation,
            "enableBgp": g.enable_bgp,
            "activeActive": g.active_active,
            "disableIPSecReplayProtection": false,
            "bgpSettings": {
                "asn": g.asn.unwrap_or(65515),
                "bgpPeeringAddress": legacy.join(","),
                "peerWeight": 0,
                "bgpPeeringAddresses": peering,
            },
            "vpnClientConfiguration": null,
            "allowRemoteVnetTraffic": false,
            "allowVirtualWanTraffic": false,
        },
    })
}

pub(crate) fn lng(l: &AzLng) -> Value {
    json!({
        "id": l.id,
        "name": l.name,
        "type": "Microsoft.Network/localNetworkGateways",
        "location": l.location,
        "tags": l.tags,
        "etag": etag(&l.id, l.phase.since),
        "properties": {
            "provisioningState": state(l.phase.state),
            "resourceGuid": guid(&l.id),
            "localNetworkAddressSpace": {
                "addressPrefixes": l.address_prefixes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            },
            "gatewayIpAddress": l.gateway_ip.to_string(),
        },
    })
}

fn link_word(s: LinkState) -> &'static str {
    match s {
        LinkState::Up => "Connected",
        LinkState::Negotiating => "Connecting",
        LinkState::Down => "NotConnected",
    }
}

/// Per-instance tunnels: (instance ip, remote ip, state, last change, instance's ipConfiguration id).
fn links(w: &World, c: &AzConnection) -> Vec<(Ipv4Addr, Ipv4Addr, LinkState, Option<u64>, String)> {
    let Some(g) = w.azure.gateways.get(&c.gateway_id) else { return Vec::new() };
    let Some(lng) = w.azure.local_network_gateways.get(&c.local_network_gateway_id) else { return Vec::new() };
    (0..g.ip_configurations.len())
        .filter_map(|k| {
            let s = w.azure_tunnel_status(c, k);
            w.instance_ip(g, k).map(|ip| (ip, lng.gateway_ip, s.state, s.last_change_ms, g.ip_configurations[k].id.clone()))
        })
        .collect()
}

/// Which rendering of a Connection: ARM's resource-group list carries no runtime
/// fields (spec examples `VirtualNetworkGatewayConnectionsList.json` vs
/// `VirtualNetworkGatewayConnectionGet.json`, 2024-03-01).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    /// `GET connections/{name}` (and a PUT's answer): `connectionStatus`,
    /// `tunnelConnectionStatus` and `sharedKey`, as the Get example shows them.
    Get,
    /// An item of `GET connections`: no `connectionStatus`, no
    /// `tunnelConnectionStatus`, no `sharedKey`, byte counters 0.
    List,
}

/// The name of a `tunnelConnectionStatus[]` entry. ARM documents it only as "Tunnel
/// name." (no format is published), so the fake's names carry no IP address: a client
/// must attribute entries to gateway instances without reading them.
pub(crate) fn tunnel_name(connection_id: &str, ip_configuration_id: &str) -> String {
    let mut h = DefaultHasher::new();
    (connection_id, ip_configuration_id).hash(&mut h);
    format!("tunnel-{:08x}", h.finish() & 0xffff_ffff)
}

/// A Connection as GET (or the list, see [`View`]) returns it: id-only gateway
/// references.
pub(crate) fn connection(w: &World, c: &AzConnection, view: View) -> Value {
    let mut props = json!({
        "provisioningState": state(c.phase.state),
        "resourceGuid": guid(&c.id),
        "packetCaptureDiagnosticState": "None",
        "virtualNetworkGateway1": { "id": c.gateway_id },
        "localNetworkGateway2": { "id": c.local_network_gateway_id },
        "connectionType": c.connection_type,
        "connectionProtocol": c.protocol,
        "routingWeight": 0,
        "dpdTimeoutSeconds": c.dpd_timeout_seconds,
        "connectionMode": "Default",
        "enableBgp": c.enable_bgp,
        "useLocalAzureIpAddress": false,
        "usePolicyBasedTrafficSelectors": false,
        "ipsecPolicies": [],
        "trafficSelectorPolicies": [],
        "ingressNatRules": [],
        "egressNatRules": [],
        "expressRouteGatewayBypass": false,
        "enablePrivateLinkFastPath": false,
        "ingressBytesTransferred": 0,
        "egressBytesTransferred": 0,
    });
    if view == View::Get {
        let links = links(w, c);
        let status = if c.phase.state != ProvisioningState::Succeeded {
            "Unknown"
        } else if links.iter().any(|l| l.2 == LinkState::Up) {
            "Connected"
        } else if links.iter().any(|l| l.2 == LinkState::Negotiating) {
            "Connecting"
        } else {
            "NotConnected"
        };
        let mut tunnels: Vec<Value> = links
            .iter()
            .map(|(_, _, s, since, ipconfig)| {
                let mut t = json!({
                    "tunnel": tunnel_name(&c.id, ipconfig),
                    "connectionStatus": link_word(*s),
                    "ingressBytesTransferred": 0,
                    "egressBytesTransferred": 0,
                });
                if *s == LinkState::Up
                    && let Some(ms) = since
                {
                    t["lastConnectionEstablishedUtcTime"] = json!(World::timestamp(*ms));
                }
                t
            })
            .collect();
        // No order is promised: by name, not by instance.
        tunnels.sort_by(|a, b| a["tunnel"].as_str().cmp(&b["tunnel"].as_str()));
        props["connectionStatus"] = json!(status);
        props["tunnelConnectionStatus"] = Value::Array(tunnels);
        props["sharedKey"] = json!(c.shared_key.expose());
    }
    json!({
        "id": c.id,
        "name": c.name,
        "type": "Microsoft.Network/connections",
        "location": c.location,
        "tags": c.tags,
        "etag": etag(&c.id, c.phase.since),
        "properties": props,
    })
}

/// The IKE SAs `getikesas` reports: one per gateway instance whose tunnel is up.
pub(crate) fn ike_sas(w: &World, c: &AzConnection) -> Value {
    let sas: Vec<Value> = links(w, c)
        .iter()
        .filter(|l| l.2 == LinkState::Up)
        .map(|(ip, remote, ..)| {
            json!({
                "localEndpoint": ip.to_string(),
                "remoteEndpoint": remote.to_string(),
                "localUdpEncapsulationPort": 0,
                "remoteUdpEncapsulationPort": 0,
                "encryption": "AES256",
                "integrity": "SHA256",
                "dhGroup": "DHGroup2",
                "lifeTimeSeconds": 28800,
                "isSaInitiator": true,
                "elapsedTimeInseconds": 60,
                "quickModeSa": [],
            })
        })
        .collect();
    Value::Array(sas)
}
