//! [`SimAzure`]: the Azure side of the simulator behind [`VpnEndpoint<Azure>`], a thin
//! layer that translates core operations into simulated ARM requests, as a real adapter
//! would (names become ARM ids in the target's subscription and resource group).

use async_trait::async_trait;
use ipnet::IpNet;
use vpnbridge_core::endpoint::{
    Azure, BgpPeer, BgpState, CloudName, EndpointError, ErrorKind, OpHandle, OpStatus, Tunnel, TunnelEnd, TunnelStatus, VpnEndpoint,
};
use vpnbridge_core::model::{
    AzureObserved, AzureScope, AzureTunnelStatus, Connection, CustomBgpAddress, GatewayIpConfiguration, LocalNetworkGateway, Owner,
    ProvisioningState, PublicIp, Subnet, Tags, TunnelState, VirtualNetwork, VirtualNetworkGateway,
};
use vpnbridge_core::ops::{AzureOp, AzureResourceKind};
use vpnbridge_core::ownership::{Inventory, Seen, Standing};

use crate::cloud::SimCloud;
use crate::world::{
    ApiError, AzConnection, AzGateway, AzureKind, AzureWait, BgpPeeringPut, ConnectionPut, GatewayPut, Goal, IpConfigPut, LinkState,
    LinkStatus, LngPut, PublicIpPut, World, arm_id,
};
use crate::{completion_to_status, saved};

/// Where the Azure side lives: subscription, resource group, location, the user's VNet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureTarget {
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    /// Name of the VNet (in the same resource group).
    pub vnet: String,
}

impl AzureTarget {
    /// The ARM id of resource `name` of `kind` (`publicIPAddresses`, `connections`…).
    pub fn id(&self, kind: &str, name: &str) -> String {
        arm_id(&self.subscription_id, &self.resource_group, kind, name)
    }

    /// The scope as core places resources in it (shared with the real adapter).
    pub fn scope_model(&self) -> AzureScope<'_> {
        AzureScope {
            subscription_id: &self.subscription_id,
            resource_group: &self.resource_group,
            location: &self.location,
            vnet: &self.vnet,
        }
    }

    /// Where a resource (by its ARM id and location) lies outside this target, in the
    /// user's words; `None` inside it (see [`AzureScope::place_of`]).
    pub fn place_of(&self, id: &str, location: &str) -> Option<String> {
        self.scope_model().place_of(id, Some(location))
    }
}

/// The simulated Azure endpoint for one resource group and VNet.
#[derive(Debug, Clone)]
pub struct SimAzure {
    cloud: SimCloud,
    target: AzureTarget,
}

impl SimAzure {
    pub fn new(cloud: SimCloud, target: AzureTarget) -> Self {
        Self { cloud, target }
    }

    pub fn cloud(&self) -> &SimCloud {
        &self.cloud
    }

    pub fn target(&self) -> &AzureTarget {
        &self.target
    }
}

pub(crate) fn azure_error(e: ApiError) -> EndpointError {
    EndpointError::new(CloudName::Azure, e.kind, e.code, e.message)
}

const PIP: &str = "publicIPAddresses";
const VNG: &str = "virtualNetworkGateways";
const LNG: &str = "localNetworkGateways";
const CONN: &str = "connections";

/// A delete of something already gone is done (ARM's 404 on DELETE, taken as success).
fn deleted(r: Result<(), ApiError>, kind: AzureKind, id: String) -> Result<AzureWait, EndpointError> {
    match r {
        Ok(()) => Ok(AzureWait::Resource { kind, id, goal: Goal::Gone }),
        Err(e) if e.status == 404 => Ok(AzureWait::Done { id: Some(id) }),
        Err(e) => Err(azure_error(e)),
    }
}

/// The tags of a re-PUT, as a real adapter sends them (ARM's PUT replaces them all):
/// someone else's kept, ours (`vpnbridge:*`) set, stale ones of ours dropped.
fn merged_tags(existing: Option<&Tags>, ours: &Tags) -> Tags {
    let mut out: Tags =
        existing.into_iter().flatten().filter(|(k, _)| !k.starts_with("vpnbridge:")).map(|(k, v)| (k.clone(), v.clone())).collect();
    out.extend(ours.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

fn start_op(w: &mut World, t: &AzureTarget, op: &AzureOp) -> Result<AzureWait, EndpointError> {
    let ready = |kind, id| AzureWait::Resource { kind, id, goal: Goal::Ready };
    Ok(match op {
        AzureOp::CreatePublicIp { name, zones, tags } => {
            let id = t.id(PIP, name);
            let body = PublicIpPut {
                location: t.location.clone(),
                sku: "Standard".to_owned(),
                static_allocation: true,
                zones: zones.clone(),
                tags: merged_tags(w.azure.public_ips.get(&id).map(|r| &r.tags), tags),
            };
            w.put_public_ip(&id, &body).map_err(azure_error)?;
            ready(AzureKind::PublicIp, id)
        }
        AzureOp::DeletePublicIp { name } => {
            let id = t.id(PIP, name);
            deleted(w.delete_public_ip(&id), AzureKind::PublicIp, id)?
        }
        AzureOp::CreateVpnGateway { name, vnet, sku, generation, public_ips, bgp, tags } => {
            let id = t.id(VNG, name);
            let subnet_id = format!("{}/subnets/GatewaySubnet", t.id("virtualNetworks", vnet));
            let ip_config = |k: usize| format!("ipconfig{k}");
            let body = GatewayPut {
                location: t.location.clone(),
                gateway_type: "Vpn".to_owned(),
                vpn_type: "RouteBased".to_owned(),
                sku: sku.clone(),
                generation: generation.clone(),
                active_active: true,
                enable_bgp: bgp.is_some(),
                asn: bgp.as_ref().map(|b| b.asn),
                ip_configurations: public_ips
                    .iter()
                    .enumerate()
                    .map(|(k, p)| IpConfigPut { name: ip_config(k), subnet_id: subnet_id.clone(), public_ip_id: t.id(PIP, p) })
                    .collect(),
                bgp_peering_addresses: bgp
                    .iter()
                    .flat_map(|b| b.custom_addresses.iter().enumerate())
                    .map(|(k, a)| BgpPeeringPut {
                        ip_configuration_id: format!("{id}/ipConfigurations/{}", ip_config(k)),
                        custom: a.clone(),
                    })
                    .collect(),
                tags: merged_tags(w.azure.gateways.get(&id).map(|r| &r.tags), tags),
            };
            w.put_virtual_network_gateway(&id, &body).map_err(azure_error)?;
            ready(AzureKind::VpnGateway, id)
        }
        AzureOp::ResizeVpnGateway { name, sku } => {
            let id = t.id(VNG, name);
            // GET, change the SKU, PUT (as an SDK-based adapter does).
            let Some(g) = w.azure.gateways.get(&id) else {
                return Err(EndpointError::new(
                    CloudName::Azure,
                    ErrorKind::NotFound,
                    "ResourceNotFound",
                    format!(
                        "The Resource 'Microsoft.Network/virtualNetworkGateways/{name}' under resource group '{}' was not found.",
                        t.resource_group
                    ),
                ));
            };
            let body = GatewayPut {
                location: g.location.clone(),
                gateway_type: g.gateway_type.clone(),
                vpn_type: g.vpn_type.clone(),
                sku: sku.clone(),
                generation: g.generation.clone(),
                active_active: g.active_active,
                enable_bgp: g.enable_bgp,
                asn: g.asn,
                ip_configurations: g
                    .ip_configurations
                    .iter()
                    .map(|c| IpConfigPut { name: c.name.clone(), subnet_id: c.subnet_id.clone(), public_ip_id: c.public_ip_id.clone() })
                    .collect(),
                bgp_peering_addresses: g
                    .bgp_peering_addresses
                    .iter()
                    .map(|p| BgpPeeringPut { ip_configuration_id: p.ip_configuration_id.clone(), custom: p.custom.clone() })
                    .collect(),
                tags: g.tags.clone(),
            };
            w.put_virtual_network_gateway(&id, &body).map_err(azure_error)?;
            ready(AzureKind::VpnGateway, id)
        }
        AzureOp::DeleteVpnGateway { name } => {
            let id = t.id(VNG, name);
            deleted(w.delete_virtual_network_gateway(&id), AzureKind::VpnGateway, id)?
        }
        AzureOp::PutLocalNetworkGateway { name, gateway_ip, address_prefixes, bgp, tags } => {
            let id = t.id(LNG, name);
            let body = LngPut {
                location: t.location.clone(),
                gateway_ip: *gateway_ip,
                address_prefixes: address_prefixes.clone(),
                bgp: *bgp,
                tags: merged_tags(w.azure.local_network_gateways.get(&id).map(|r| &r.tags), tags),
            };
            w.put_local_network_gateway(&id, &body).map_err(azure_error)?;
            ready(AzureKind::LocalNetworkGateway, id)
        }
        AzureOp::DeleteLocalNetworkGateway { name } => {
            let id = t.id(LNG, name);
            deleted(w.delete_local_network_gateway(&id), AzureKind::LocalNetworkGateway, id)?
        }
        AzureOp::PutConnection { name, gateway, local_network_gateway, shared_key, bgp, dpd_timeout_seconds, tags } => {
            let id = t.id(CONN, name);
            let gateway_id = t.id(VNG, gateway);
            // The gateway's ipConfiguration ids, in instance order (as an SDK-based
            // adapter reads them from the gateway).
            let ip_configs: Vec<String> =
                w.azure.gateways.get(&gateway_id).map(|g| g.ip_configurations.iter().map(|c| c.id.clone()).collect()).unwrap_or_default();
            let body = ConnectionPut {
                location: t.location.clone(),
                gateway_id,
                local_network_gateway_id: t.id(LNG, local_network_gateway),
                connection_type: "IPsec".to_owned(),
                protocol: "IKEv2".to_owned(),
                shared_key: shared_key.clone(),
                enable_bgp: bgp.is_some(),
                custom_bgp_addresses: bgp
                    .iter()
                    .flat_map(|b| b.custom_addresses.iter().zip(&ip_configs))
                    .map(|(a, c)| CustomBgpAddress { ip_configuration_id: c.clone(), address: *a })
                    .collect(),
                dpd_timeout_seconds: *dpd_timeout_seconds,
                tags: merged_tags(w.azure.connections.get(&id).map(|r| &r.tags), tags),
            };
            w.put_connection(&id, &body).map_err(azure_error)?;
            ready(AzureKind::Connection, id)
        }
        AzureOp::SetSharedKey { name, shared_key } => {
            let id = t.id(CONN, name);
            w.put_connection_shared_key(&id, shared_key).map_err(azure_error)?;
            ready(AzureKind::Connection, id)
        }
        AzureOp::DeleteConnection { name } => {
            let id = t.id(CONN, name);
            deleted(w.delete_connection(&id), AzureKind::Connection, id)?
        }
        AzureOp::Await { kind, name } => {
            let (kind, collection) = match kind {
                AzureResourceKind::PublicIp => (AzureKind::PublicIp, PIP),
                AzureResourceKind::VpnGateway => (AzureKind::VpnGateway, VNG),
                AzureResourceKind::LocalNetworkGateway => (AzureKind::LocalNetworkGateway, LNG),
                AzureResourceKind::Connection => (AzureKind::Connection, CONN),
            };
            AzureWait::Resource { kind, id: t.id(collection, name), goal: Goal::Settled }
        }
    })
}

fn tunnel_state(s: &LinkStatus) -> TunnelState {
    if s.state == LinkState::Up { TunnelState::Up } else { TunnelState::Down }
}

/// Per-instance statuses of a Connection: (instance, instance IP, remote IP, status).
fn connection_links(w: &World, c: &AzConnection) -> Vec<(usize, std::net::Ipv4Addr, std::net::Ipv4Addr, LinkStatus)> {
    let Some(g) = w.azure.gateways.get(&c.gateway_id) else { return Vec::new() };
    let Some(lng) = w.azure.local_network_gateways.get(&c.local_network_gateway_id) else { return Vec::new() };
    (0..g.ip_configurations.len())
        .filter_map(|k| w.instance_ip(g, k).map(|ip| (k, ip, lng.gateway_ip, w.azure_tunnel_status(c, k))))
        .collect()
}

fn observe(w: &World, t: &AzureTarget, owner: &Owner) -> AzureObserved {
    let vnet_id = t.id("virtualNetworks", &t.vnet);
    // What is seen, for core to decide what is ours, ours elsewhere, or in the way.
    let scope = t.scope_model();
    let none: &[&str] = &[];
    let gateway_subnets: Vec<(&AzGateway, Vec<&str>)> =
        w.azure.gateways.values().map(|g| (g, g.ip_configurations.iter().map(|c| c.subnet_id.as_str()).collect())).collect();
    let mut seen: Vec<Seen<'_>> = Vec::new();
    for p in w.azure.public_ips.values() {
        seen.push(Seen {
            kind: AzureResourceKind::PublicIp,
            id: &p.id,
            name: &p.name,
            location: Some(&p.location),
            tags: &p.tags,
            subnets: none,
        });
    }
    for (g, subnets) in &gateway_subnets {
        seen.push(Seen {
            kind: AzureResourceKind::VpnGateway,
            id: &g.id,
            name: &g.name,
            location: Some(&g.location),
            tags: &g.tags,
            subnets,
        });
    }
    for l in w.azure.local_network_gateways.values() {
        seen.push(Seen {
            kind: AzureResourceKind::LocalNetworkGateway,
            id: &l.id,
            name: &l.name,
            location: Some(&l.location),
            tags: &l.tags,
            subnets: none,
        });
    }
    for c in w.azure.connections.values() {
        seen.push(Seen {
            kind: AzureResourceKind::Connection,
            id: &c.id,
            name: &c.name,
            location: Some(&c.location),
            tags: &c.tags,
            subnets: none,
        });
    }
    let Inventory { foreign_names, elsewhere } = scope.inventory(owner, seen.iter().copied());
    let ours = |id: &str| seen.iter().any(|s| s.id == id && scope.standing(owner, s) == Standing::Ours);
    let deployment_of = vpnbridge_core::ownership::other_deployments(owner, w.azure.gateways.values().map(|g| (g.id.as_str(), &g.tags)));
    let vnet = w.azure.virtual_networks.get(&vnet_id);
    let users_of = |subnet_id: &str| -> Vec<String> {
        w.azure
            .gateways_in_subnet(subnet_id)
            .flat_map(|g| g.ip_configurations.iter().filter(|c| c.subnet_id == subnet_id).map(|c| c.id.clone()))
            .collect()
    };
    let foreign_gateways_in_vnet = vnet
        .and_then(|v| v.subnets.iter().find(|s| s.name == "GatewaySubnet"))
        .map(|s| w.azure.gateways_in_subnet(&s.id).filter(|g| !owner.owns(&g.tags)).map(|g| g.id.clone()).collect())
        .unwrap_or_default();
    let vnet = vnet.map(|v| VirtualNetwork {
        id: v.id.clone(),
        name: v.name.clone(),
        address_space: v.address_space.iter().map(|a| IpNet::V4(*a)).collect(),
        subnets: v
            .subnets
            .iter()
            .map(|s| Subnet { id: s.id.clone(), name: s.name.clone(), prefix: IpNet::V4(s.prefix), ip_configurations: users_of(&s.id) })
            .collect(),
    });
    let public_ips = w
        .azure
        .public_ips
        .values()
        .filter(|p| ours(&p.id))
        .map(|p| PublicIp {
            id: p.id.clone(),
            name: p.name.clone(),
            ip: p.ip,
            sku: p.sku.clone(),
            static_allocation: p.static_allocation,
            zones: p.zones.clone(),
            state: p.phase.state,
            tags: p.tags.clone(),
        })
        .collect();
    let vpn_gateway = w.azure.gateways.values().find(|g| ours(&g.id)).map(|g| VirtualNetworkGateway {
        id: g.id.clone(),
        name: g.name.clone(),
        sku: g.sku.clone(),
        generation: g.generation.clone(),
        vpn_type: g.vpn_type.clone(),
        active_active: g.active_active,
        enable_bgp: g.enable_bgp,
        asn: g.asn,
        ip_configurations: g
            .ip_configurations
            .iter()
            .map(|c| GatewayIpConfiguration { id: c.id.clone(), name: c.name.clone(), public_ip_id: c.public_ip_id.clone() })
            .collect(),
        bgp_peering_addresses: g.bgp_peering_addresses.clone(),
        state: g.phase.state,
        tags: g.tags.clone(),
    });
    let local_network_gateways = w
        .azure
        .local_network_gateways
        .values()
        .filter(|l| ours(&l.id))
        .map(|l| LocalNetworkGateway {
            id: l.id.clone(),
            name: l.name.clone(),
            gateway_ip: l.gateway_ip,
            address_prefixes: l.address_prefixes.clone(),
            bgp: l.bgp,
            state: l.phase.state,
            tags: l.tags.clone(),
        })
        .collect();
    let connections = w
        .azure
        .connections
        .values()
        .filter(|c| ours(&c.id))
        .map(|c| {
            let links = connection_links(w, c);
            let connection_status = if c.phase.state != ProvisioningState::Succeeded {
                "Unknown"
            } else if links.iter().any(|(.., s)| s.state == LinkState::Up) {
                "Connected"
            } else if links.iter().any(|(.., s)| s.state == LinkState::Negotiating) {
                "Connecting"
            } else {
                "NotConnected"
            };
            Connection {
                id: c.id.clone(),
                name: c.name.clone(),
                gateway_id: c.gateway_id.clone(),
                local_network_gateway_id: c.local_network_gateway_id.clone(),
                protocol: c.protocol.clone(),
                // As read through the `sharedkey` sub-resource.
                shared_key: Some(c.shared_key.clone()),
                enable_bgp: c.enable_bgp,
                custom_bgp_addresses: c.custom_bgp_addresses.clone(),
                state: c.phase.state,
                connection_status: connection_status.to_owned(),
                tunnels: links
                    .iter()
                    .map(|(k, ip, remote, s)| AzureTunnelStatus {
                        // The simulator knows which instance a tunnel leaves from; its
                        // name is its own (ARM documents no format for it), not ARM's.
                        tunnel: format!("sim:instance-{k}-to-{remote}"),
                        instance_ip: Some(*ip),
                        status: tunnel_state(s),
                    })
                    .collect(),
                tags: c.tags.clone(),
            }
        })
        .collect();
    AzureObserved {
        vnet,
        foreign_gateways_in_vnet,
        public_ips,
        vpn_gateway,
        local_network_gateways,
        connections,
        foreign_names,
        elsewhere,
        deployment_of,
    }
}

fn tunnel_ends(w: &World, t: &AzureTarget, owner: &Owner) -> Vec<Box<dyn Tunnel>> {
    let mut out: Vec<Box<dyn Tunnel>> = Vec::new();
    for c in w.azure.connections.values().filter(|c| owner.owns(&c.tags) && t.place_of(&c.id, &c.location).is_none()) {
        for (k, ip, remote, s) in connection_links(w, c) {
            // As `getikesas` reports it: an SA while the instance's tunnel is up.
            let sa = s.is_up().then_some(vpnbridge_core::endpoint::IkeSa { local: ip, remote });
            let end = TunnelEnd {
                cloud: CloudName::Azure,
                outside_ip: ip,
                peer_ip: remote,
                instance: k,
                resource: c.name.clone(),
                inside_cidr: None,
                psk: Some(c.shared_key.clone()),
                status: TunnelStatus { state: tunnel_state(&s), reason: s.message, last_change: s.last_change_ms.map(World::timestamp) },
                // As `getBgpPeerStatus` and `getLearnedRoutes` report it.
                bgp: w.azure_bgp_end(c, k).map(|b| BgpPeer {
                    local_address: b.local,
                    peer_address: b.neighbor,
                    peer_asn: b.neighbor_asn,
                    state: if b.established { BgpState::Established } else { BgpState::Down },
                    reason: b.message,
                    routes_received: Some(u32::try_from(b.learned.len()).unwrap_or(u32::MAX)),
                    learned: Some(b.learned),
                }),
            };
            out.push(Box::new(vpnbridge_core::endpoint::WithIkeSa { end, sa }));
        }
    }
    out
}

#[async_trait]
impl VpnEndpoint<Azure> for SimAzure {
    async fn observe(&self, owner: &Owner) -> Result<AzureObserved, EndpointError> {
        Ok(observe(&self.cloud.lock(), &self.target, owner))
    }

    async fn start(&self, op: &AzureOp) -> Result<OpHandle, EndpointError> {
        let mut w = self.cloud.lock();
        let calls = w.azure.mutating_calls;
        let result = start_op(&mut w, &self.target, op)
            .map(|wait| OpHandle(w.record_azure(&self.target.subscription_id, &self.target.location, wait)));
        let mutated = w.azure.mutating_calls != calls || result.is_ok();
        saved(&self.cloud, &w, CloudName::Azure, mutated, result)
    }

    async fn poll(&self, handle: &OpHandle) -> Result<OpStatus, EndpointError> {
        let w = self.cloud.lock();
        let c = w.operation_status(&handle.0).map_err(azure_error)?;
        Ok(completion_to_status(c, CloudName::Azure))
    }

    async fn tunnel_ends(&self, owner: &Owner) -> Result<Vec<Box<dyn Tunnel>>, EndpointError> {
        Ok(tunnel_ends(&self.cloud.lock(), &self.target, owner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reput_keeps_someone_elses_tags_and_sets_ours() {
        let tag = |pairs: &[(&str, &str)]| -> Tags { pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect() };
        let existing = tag(&[("owner", "alice"), ("vpnbridge:deployment", "d"), ("vpnbridge:role", "old")]);
        let ours = tag(&[("vpnbridge:deployment", "d"), ("vpnbridge:role", "lng-0-0")]);
        assert_eq!(
            merged_tags(Some(&existing), &ours),
            tag(&[("owner", "alice"), ("vpnbridge:deployment", "d"), ("vpnbridge:role", "lng-0-0")])
        );
        assert_eq!(merged_tags(None, &ours), ours);
    }
}
