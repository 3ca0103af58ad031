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
use vpnbridge_sim::world::{AZURE_DEFAULT_ASN, AzConnection, AzGateway, AzLng, AzPublicIp, AzVnet, LinkState};

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

fn strings(ips: &[Ipv4Addr]) -> Vec<String> {
    ips.iter().map(ToString::to_string).collect()
}

/// Instance `k`'s stored `bgpPeeringAddresses` entry, if the gateway has one.
fn peering_of(g: &AzGateway, k: usize) -> Option<&vpnbridge_core::model::BgpPeeringAddress> {
    let cfg = g.ip_configurations.get(k)?;
    g.bgp_peering_addresses.iter().find(|p| p.ip_configuration_id.eq_ignore_ascii_case(&cfg.id))
}

/// Instance `k`'s default BGP addresses: as the simulator stored them, else the
/// GatewaySubnet address ARM gives the instance (a gateway without BGP has them too).
pub(crate) fn default_bgp_ips(w: &World, g: &AzGateway, k: usize) -> Vec<Ipv4Addr> {
    match peering_of(g, k).filter(|p| !p.default.is_empty()) {
        Some(p) => p.default.clone(),
        None => g.ip_configurations.get(k).and_then(|c| default_bgp_ip(w, &c.subnet_id, k)).into_iter().collect(),
    }
}

/// Instance `k`'s custom (APIPA) BGP addresses.
fn custom_bgp_ips(g: &AzGateway, k: usize) -> Vec<Ipv4Addr> {
    peering_of(g, k).map(|p| p.custom.clone()).unwrap_or_default()
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
    // One entry per ipConfiguration (the spec's Get example), with the custom addresses
    // the gateway's last PUT gave each instance.
    let peering: Vec<Value> = g
        .ip_configurations
        .iter()
        .enumerate()
        .map(|(k, c)| {
            json!({
                "ipconfigurationId": c.id,
                "defaultBgpIpAddresses": strings(&default_bgp_ips(w, g, k)),
                "customBgpIpAddresses": strings(&custom_bgp_ips(g, k)),
                "tunnelIpAddresses": w.instance_ip(g, k).map(|ip| vec![ip.to_string()]).unwrap_or_default(),
            })
        })
        .collect();
    let legacy: Vec<String> = (0..g.ip_configurations.len()).flat_map(|k| default_bgp_ips(w, g, k)).map(|ip| ip.to_string()).collect();
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
                "asn": g.asn.unwrap_or(AZURE_DEFAULT_ASN),
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
    let mut props = json!({
        "provisioningState": state(l.phase.state),
        "resourceGuid": guid(&l.id),
        "localNetworkAddressSpace": {
            "addressPrefixes": l.address_prefixes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        },
        "gatewayIpAddress": l.gateway_ip.to_string(),
    });
    // `BgpSettings` as an LNG carries it: the peer's ASN and address (no per-instance
    // `bgpPeeringAddresses`: those are a gateway's). Left out when there is no peer.
    if let Some(b) = l.bgp {
        props["bgpSettings"] = json!({ "asn": b.asn, "bgpPeeringAddress": b.peering_address.to_string(), "peerWeight": 0 });
    }
    json!({
        "id": l.id,
        "name": l.name,
        "type": "Microsoft.Network/localNetworkGateways",
        "location": l.location,
        "tags": l.tags,
        "etag": etag(&l.id, l.phase.since),
        "properties": props,
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
        // In the Get and the List examples alike.
        "gatewayCustomBgpIpAddresses": c
            .custom_bgp_addresses
            .iter()
            .map(|a| json!({ "ipConfigurationId": a.ip_configuration_id, "customBgpIpAddress": a.address.to_string() }))
            .collect::<Vec<_>>(),
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

/// A duration as .NET's `TimeSpan` prints it (`hh:mm:ss`, `d.hh:mm:ss` from a day on),
/// the form `connectedDuration` takes in live answers.
fn timespan(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 { format!("{d}.{h:02}:{m:02}:{s:02}") } else { format!("{h:02}:{m:02}:{s:02}") }
}

/// The BGP sessions of gateway `g`, one per BGP Connection and gateway instance, as the
/// simulator's Azure end sees them: (the Connection, the instance, its end).
fn bgp_ends<'w>(w: &'w World, g: &AzGateway) -> Vec<(&'w AzConnection, usize, vpnbridge_sim::world::BgpEnd)> {
    if !g.enable_bgp {
        return Vec::new();
    }
    let mut out = Vec::new();
    for c in w.azure.connections.values().filter(|c| c.gateway_id.eq_ignore_ascii_case(&g.id)) {
        for k in 0..g.ip_configurations.len() {
            if let Some(end) = w.azure_bgp_end(c, k) {
                out.push((c, k, end));
            }
        }
    }
    out
}

/// `getBgpPeerStatus`' result, `BgpPeerStatusListResult.value`: one `BgpPeerStatus` per
/// session (`localAddress` is the address the instance speaks from on that
/// Connection), only those with `neighbor` = `peer` when asked. `state` is Azure's
/// word: Connected, or Connecting while the session is not up (the simulator does not
/// tell Idle from Connecting). Keepalives every 10 s make the message counters.
pub(crate) fn bgp_peer_status(w: &World, g: &AzGateway, peer: Option<Ipv4Addr>) -> Vec<Value> {
    bgp_ends(w, g)
        .into_iter()
        .filter_map(|(_, _, end)| {
            let (local, neighbor) = (end.local?, end.neighbor?);
            if peer.is_some_and(|p| p != neighbor) {
                return None;
            }
            let up_ms = if end.established { w.now_ms.saturating_sub(end.since.unwrap_or(w.now_ms)) } else { 0 };
            let routes = end.learned.len();
            let keepalives = if end.established { 1 + up_ms / 10_000 } else { 0 };
            let mut v = json!({
                "localAddress": local.to_string(),
                "neighbor": neighbor.to_string(),
                "asn": end.neighbor_asn,
                "state": if end.established { "Connected" } else { "Connecting" },
                "routesReceived": routes,
                "messagesSent": keepalives,
                "messagesReceived": keepalives + if end.established { routes as u64 } else { 0 },
            });
            if end.established {
                v["connectedDuration"] = json!(timespan(up_ms));
            }
            Some(v)
        })
        .collect()
}

/// `getLearnedRoutes`' result, `GatewayRouteListResult.value`: each instance's own
/// VNet prefixes (origin `Network`, from the instance's default BGP address, as live
/// answers show them), then every prefix learned over an established session (origin
/// `EBgp`, from the neighbor, AS path its ASN).
pub(crate) fn learned_routes(w: &World, g: &AzGateway) -> Vec<Value> {
    let vnet =
        g.ip_configurations.first().and_then(|c| w.azure.virtual_networks.values().find(|v| v.subnets.iter().any(|s| s.id == c.subnet_id)));
    let mut out = Vec::new();
    if g.enable_bgp {
        for k in 0..g.ip_configurations.len() {
            let Some(local) = default_bgp_ips(w, g, k).first().copied() else { continue };
            for p in vnet.iter().flat_map(|v| &v.address_space) {
                out.push(json!({
                    "localAddress": local.to_string(),
                    "network": p.to_string(),
                    "nextHop": null,
                    "sourcePeer": local.to_string(),
                    "origin": "Network",
                    "asPath": "",
                    "weight": 32768,
                }));
            }
        }
    }
    for (_, _, end) in bgp_ends(w, g).into_iter().filter(|(_, _, e)| e.established) {
        let (Some(local), Some(neighbor)) = (end.local, end.neighbor) else { continue };
        for p in &end.learned {
            out.push(json!({
                "localAddress": local.to_string(),
                "network": p.to_string(),
                "nextHop": neighbor.to_string(),
                "sourcePeer": neighbor.to_string(),
                "origin": "EBgp",
                "asPath": end.neighbor_asn.map(|a| a.to_string()).unwrap_or_default(),
                "weight": 32768,
            }));
        }
    }
    out
}
