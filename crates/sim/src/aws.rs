//! [`SimAws`]: the AWS side of the simulator behind [`VpnEndpoint<Aws>`], a thin layer
//! that translates core operations into simulated EC2 calls, as a real adapter would.

use async_trait::async_trait;
use ipnet::IpNet;
use vpnbridge_core::endpoint::{
    Aws, BgpPeer, BgpState, CloudName, EndpointError, ErrorKind, OpHandle, OpStatus, Tunnel, TunnelEnd, TunnelStatus, VpnEndpoint,
};
use vpnbridge_core::model::{
    AwsObserved, AwsState, CustomerGateway, Elsewhere, ForeignVpnConnection, Owner, RouteTable, TAG_DEPLOYMENT, TunnelState, VgwAttachment,
    VgwTelemetry, Vpc, VpcRoute, VpnConnection, VpnConnectionRoute, VpnGateway,
};
use vpnbridge_core::ops::{AwsOp, AwsResourceKind};

use crate::cloud::SimCloud;
use crate::latency::ms;
use crate::world::{ApiError, AwsCgw, AwsTunnel, AwsVpnConnection, AwsWait, Goal, LinkState, World};
use crate::{completion_to_status, saved};

/// Where the AWS side lives: the region and the user's VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsTarget {
    pub region: String,
    pub vpc_id: String,
}

/// The simulated AWS endpoint for one region and VPC.
#[derive(Debug, Clone)]
pub struct SimAws {
    cloud: SimCloud,
    target: AwsTarget,
}

impl SimAws {
    pub fn new(cloud: SimCloud, target: AwsTarget) -> Self {
        Self { cloud, target }
    }

    pub fn cloud(&self) -> &SimCloud {
        &self.cloud
    }

    pub fn target(&self) -> &AwsTarget {
        &self.target
    }
}

pub(crate) fn aws_error(e: ApiError) -> EndpointError {
    EndpointError::new(CloudName::Aws, e.kind, e.code, e.message)
}

/// Starts `op` on the world: the EC2 call, then the wait that `poll` will evaluate.
fn start_op(w: &mut World, target: &AwsTarget, op: &AwsOp) -> Result<AwsWait, EndpointError> {
    let now = w.now_ms;
    let lat = w.latency().clone();
    let wait = match op {
        AwsOp::CreateVpnGateway { amazon_asn, tags } => {
            let v = w.create_vpn_gateway(*amazon_asn, tags).map_err(aws_error)?;
            if let Some(g) = w.aws.vpn_gateways.get_mut(&v.id) {
                g.region.clone_from(&target.region);
            }
            AwsWait::Vgw { id: v.id, goal: Goal::Ready }
        }
        AwsOp::AttachVpnGateway { vgw_id, vpc_id } => {
            w.attach_vpn_gateway(&target.region, vpc_id, vgw_id).map_err(aws_error)?;
            AwsWait::Attachment { vgw_id: vgw_id.clone(), vpc_id: vpc_id.clone(), goal: Goal::Ready }
        }
        AwsOp::DetachVpnGateway { vgw_id, vpc_id } => {
            w.detach_vpn_gateway(vpc_id, vgw_id).map_err(aws_error)?;
            AwsWait::Attachment { vgw_id: vgw_id.clone(), vpc_id: vpc_id.clone(), goal: Goal::Gone }
        }
        AwsOp::DeleteVpnGateway { vgw_id } => {
            w.delete_vpn_gateway(vgw_id).map_err(aws_error)?;
            AwsWait::Vgw { id: vgw_id.clone(), goal: Goal::Gone }
        }
        AwsOp::CreateRoute { route_table_id, destination, vgw_id } => {
            w.create_route(route_table_id, *destination, vgw_id).map_err(aws_error)?;
            AwsWait::Timer { at_ms: now.saturating_add(ms(lat.aws_vpc_route)), id: None }
        }
        AwsOp::DeleteRoute { route_table_id, destination } => {
            w.delete_route(route_table_id, *destination).map_err(aws_error)?;
            AwsWait::Timer { at_ms: now.saturating_add(ms(lat.aws_vpc_route_delete)), id: None }
        }
        AwsOp::EnableVgwRoutePropagation { route_table_id, vgw_id } => {
            w.enable_vgw_route_propagation(route_table_id, vgw_id).map_err(aws_error)?;
            AwsWait::Timer { at_ms: now, id: None }
        }
        AwsOp::DisableVgwRoutePropagation { route_table_id, vgw_id } => {
            w.disable_vgw_route_propagation(route_table_id, vgw_id).map_err(aws_error)?;
            AwsWait::Timer { at_ms: now, id: None }
        }
        AwsOp::CreateCustomerGateway { ip, bgp_asn, device_name, tags } => {
            let device = Some(device_name.as_str()).filter(|d| !d.is_empty());
            let cgw = w.create_customer_gateway(*ip, *bgp_asn, device, tags).map_err(aws_error)?;
            // EC2 answers a same-IP, same-ASN request with the existing CGW, whoever's it
            // is; the poll reports its tags and the core judges whose it is.
            if let Some(c) = w.aws.customer_gateways.get_mut(&cgw.id).filter(|c| c.region.is_empty()) {
                c.region.clone_from(&target.region);
            }
            AwsWait::Cgw { id: cgw.id, goal: Goal::Ready }
        }
        AwsOp::DeleteCustomerGateway { cgw_id } => {
            w.delete_customer_gateway(cgw_id).map_err(aws_error)?;
            AwsWait::Cgw { id: cgw_id.clone(), goal: Goal::Gone }
        }
        AwsOp::CreateVpnConnection { cgw_id, vgw_id, static_routes_only, tunnels, tags } => {
            let v = w.create_vpn_connection(cgw_id, vgw_id, *static_routes_only, tunnels, tags).map_err(aws_error)?;
            if let Some(c) = w.aws.vpn_connections.get_mut(&v.id) {
                c.region.clone_from(&target.region);
            }
            AwsWait::Vpn { id: v.id, goal: Goal::Ready }
        }
        AwsOp::DeleteVpnConnection { vpn_id } => {
            w.delete_vpn_connection(vpn_id).map_err(aws_error)?;
            AwsWait::Vpn { id: vpn_id.clone(), goal: Goal::Gone }
        }
        AwsOp::CreateVpnConnectionRoute { vpn_id, destination } => {
            w.create_vpn_connection_route(vpn_id, *destination).map_err(aws_error)?;
            AwsWait::VpnRoute { vpn_id: vpn_id.clone(), destination: *destination, goal: Goal::Ready }
        }
        AwsOp::DeleteVpnConnectionRoute { vpn_id, destination } => {
            w.delete_vpn_connection_route(vpn_id, *destination).map_err(aws_error)?;
            AwsWait::VpnRoute { vpn_id: vpn_id.clone(), destination: *destination, goal: Goal::Gone }
        }
        AwsOp::ModifyVpnConnection { vpn_id, cgw_id } => {
            let until = w.modify_vpn_connection(vpn_id, cgw_id).map_err(aws_error)?;
            AwsWait::Timer { at_ms: until, id: Some(vpn_id.clone()) }
        }
        AwsOp::ModifyVpnTunnelOptions { vpn_id, outside_ip, psk, inside_cidr } => {
            w.modify_vpn_tunnel_options(vpn_id, *outside_ip, psk.as_ref(), *inside_cidr).map_err(aws_error)?;
            AwsWait::Tunnel { vpn_id: vpn_id.clone(), outside_ip: *outside_ip }
        }
        AwsOp::Await { kind, id } => {
            let exists = match kind {
                AwsResourceKind::VpnGateway | AwsResourceKind::VgwAttachment => w.aws.vpn_gateways.contains_key(id),
                AwsResourceKind::CustomerGateway => w.aws.customer_gateways.contains_key(id),
                AwsResourceKind::VpnConnection | AwsResourceKind::VpnConnectionRoute { .. } => w.aws.vpn_connections.contains_key(id),
            };
            if !exists {
                return Err(EndpointError::new(
                    CloudName::Aws,
                    ErrorKind::NotFound,
                    "InvalidID.NotFound",
                    format!("The ID '{id}' does not exist"),
                ));
            }
            match kind {
                AwsResourceKind::VpnGateway => AwsWait::Vgw { id: id.clone(), goal: Goal::Settled },
                AwsResourceKind::VgwAttachment => {
                    AwsWait::Attachment { vgw_id: id.clone(), vpc_id: target.vpc_id.clone(), goal: Goal::Settled }
                }
                AwsResourceKind::CustomerGateway => AwsWait::Cgw { id: id.clone(), goal: Goal::Settled },
                AwsResourceKind::VpnConnection => AwsWait::Vpn { id: id.clone(), goal: Goal::Settled },
                AwsResourceKind::VpnConnectionRoute { destination } => {
                    AwsWait::VpnRoute { vpn_id: id.clone(), destination: *destination, goal: Goal::Settled }
                }
            }
        }
    };
    Ok(wait)
}

/// `AcceptedRouteCount`: the routes the VGW learned over the tunnel's BGP session (0
/// on a static VPN connection, as EC2 reports it).
fn accepted_routes(w: &World, v: &AwsVpnConnection, t: &AwsTunnel) -> u32 {
    w.aws_bgp_end(v, t).filter(|b| b.established).map_or(0, |b| u32::try_from(b.learned.len()).unwrap_or(u32::MAX))
}

fn observe_vpn(w: &World, v: &AwsVpnConnection) -> VpnConnection {
    let tunnels: Vec<_> = v.sorted_tunnels().collect();
    VpnConnection {
        id: v.id.clone(),
        state: v.described_state(w.now_ms),
        customer_gateway_id: v.customer_gateway_id.clone(),
        vpn_gateway_id: v.vpn_gateway_id.clone(),
        static_routes_only: v.static_routes_only,
        tunnels: {
            let mut options = v.tunnel_options();
            options.sort_by_key(|t| t.outside_ip);
            options
        },
        routes: v.routes.iter().map(|r| VpnConnectionRoute { destination: r.destination, state: r.phase.state }).collect(),
        telemetry: tunnels
            .iter()
            .map(|t| {
                let s = w.aws_tunnel_status(v, t);
                VgwTelemetry {
                    outside_ip: t.outside_ip,
                    status: if s.state == LinkState::Up { TunnelState::Up } else { TunnelState::Down },
                    status_message: s.message,
                    last_status_change: s.last_change_ms.map(World::timestamp),
                    accepted_route_count: Some(accepted_routes(w, v, t)),
                }
            })
            .collect(),
        tags: v.tags.clone(),
    }
}

fn observe(w: &World, target: &AwsTarget, owner: &Owner) -> AwsObserved {
    let vpc = w.aws.vpc_in(&target.region, &target.vpc_id).map(|vpc| Vpc {
        id: vpc.id.clone(),
        cidrs: vpc.cidrs.iter().map(|c| IpNet::V4(*c)).collect(),
        route_tables: w
            .aws
            .route_tables
            .values()
            .filter(|t| t.vpc_id == vpc.id)
            .map(|t| RouteTable {
                id: t.id.clone(),
                main: t.main,
                routes: t
                    .routes
                    .iter()
                    .map(|r| {
                        let blackhole = r.target.starts_with("vgw-")
                            && !w.aws.vpn_gateways.get(&r.target).is_some_and(|g| {
                                g.phase.state == AwsState::Available && g.live_attachment().is_some_and(|a| a.vpc_id == vpc.id)
                            });
                        VpcRoute {
                            destination: r.destination,
                            gateway_id: Some(r.target.clone()).filter(|t| t == "local" || t.starts_with("vgw-") || t.starts_with("igw-")),
                            state: if blackhole { "blackhole" } else { "active" }.to_owned(),
                            propagated: false,
                        }
                    })
                    .chain(w.propagated_routes(t).into_iter().map(|r| VpcRoute {
                        destination: r.destination,
                        gateway_id: Some(r.target),
                        state: "active".to_owned(),
                        propagated: true,
                    }))
                    .collect(),
                propagating_vgws: t.propagating_vgws.clone(),
            })
            .collect(),
    });
    let visible = |s: AwsState| s != AwsState::Deleted;
    // Resources live in the region they were made in; "" is a world saved before.
    let here = |region: &str| region.is_empty() || region == target.region;
    let elsewhere: Vec<Elsewhere> = (w
        .aws
        .vpn_gateways
        .values()
        .filter(|g| owner.owns(&g.tags) && visible(g.phase.state) && !here(&g.region))
        .map(|g| Elsewhere { kind: "virtual private gateway".into(), id: g.id.clone(), place: format!("region {}", g.region) }))
    .chain(
        w.aws.customer_gateways.values().filter(|c| owner.owns(&c.tags) && visible(c.phase.state) && !here(&c.region)).map(|c| Elsewhere {
            kind: "customer gateway".into(),
            id: c.id.clone(),
            place: format!("region {}", c.region),
        }),
    )
    .chain(
        w.aws.vpn_connections.values().filter(|v| owner.owns(&v.tags) && visible(v.phase.state) && !here(&v.region)).map(|v| Elsewhere {
            kind: "VPN connection".into(),
            id: v.id.clone(),
            place: format!("region {}", v.region),
        }),
    )
    .collect();
    let vpn_gateways: Vec<VpnGateway> = w
        .aws
        .vpn_gateways
        .values()
        .filter(|g| owner.owns(&g.tags) && visible(g.phase.state) && here(&g.region))
        .map(|g| VpnGateway {
            id: g.id.clone(),
            state: g.phase.state,
            amazon_asn: g.amazon_asn,
            attachments: g.attachments.iter().map(|a| VgwAttachment { vpc_id: a.vpc_id.clone(), state: a.phase.state }).collect(),
            tags: g.tags.clone(),
        })
        .collect();
    let foreign_vgw_on_vpc = w
        .aws
        .vpn_gateways
        .values()
        .find(|g| {
            !owner.owns(&g.tags)
                && visible(g.phase.state)
                && g.attachments.iter().any(|a| {
                    a.vpc_id == target.vpc_id
                        && matches!(
                            a.phase.state,
                            vpnbridge_core::model::AttachmentState::Attaching | vpnbridge_core::model::AttachmentState::Attached
                        )
                })
        })
        .map(|g| g.id.clone());
    let cgw = |c: &AwsCgw| CustomerGateway {
        id: c.id.clone(),
        state: c.phase.state,
        ip: c.ip,
        bgp_asn: c.bgp_asn,
        device_name: c.device_name.clone(),
        tags: c.tags.clone(),
    };
    let (customer_gateways, foreign_customer_gateways): (Vec<_>, Vec<_>) =
        w.aws.customer_gateways.values().filter(|c| visible(c.phase.state) && here(&c.region)).map(cgw).partition(|c| owner.owns(&c.tags));
    let foreign_vpn_connections = w
        .aws
        .vpn_connections
        .values()
        .filter(|v| !owner.owns(&v.tags) && visible(v.phase.state) && here(&v.region))
        .filter(|v| {
            customer_gateways.iter().any(|c: &CustomerGateway| c.id == v.customer_gateway_id)
                || vpn_gateways.iter().any(|g| g.id == v.vpn_gateway_id)
        })
        .map(|v| ForeignVpnConnection {
            id: v.id.clone(),
            state: v.described_state(w.now_ms),
            customer_gateway_id: v.customer_gateway_id.clone(),
            vpn_gateway_id: v.vpn_gateway_id.clone(),
            inside_cidrs: v.tunnels.iter().map(|t| t.inside_cidr).collect(),
            tags: v.tags.clone(),
        })
        .collect();
    let vpn_connections = w
        .aws
        .vpn_connections
        .values()
        .filter(|v| owner.owns(&v.tags) && visible(v.phase.state) && here(&v.region))
        .map(|v| observe_vpn(w, v))
        .collect();
    let deployment_of = foreign_vgw_on_vpc
        .iter()
        .filter_map(|id| Some((id.clone(), w.aws.vpn_gateways.get(id)?.tags.get(TAG_DEPLOYMENT)?.clone())))
        .collect();
    AwsObserved {
        vpc,
        vpn_gateways,
        foreign_vgw_on_vpc,
        customer_gateways,
        vpn_connections,
        foreign_customer_gateways,
        foreign_vpn_connections,
        elsewhere,
        deployment_of,
    }
}

fn tunnel_ends(w: &World, target: &AwsTarget, owner: &Owner) -> Vec<Box<dyn Tunnel>> {
    let mut out: Vec<Box<dyn Tunnel>> = Vec::new();
    let here = |region: &str| region.is_empty() || region == target.region;
    for v in w.aws.vpn_connections.values().filter(|v| owner.owns(&v.tags) && v.phase.state != AwsState::Deleted && here(&v.region)) {
        let Some(cgw) = w.aws.customer_gateways.get(&v.customer_gateway_id) else { continue };
        for (i, t) in v.sorted_tunnels().enumerate() {
            let s = w.aws_tunnel_status(v, t);
            out.push(Box::new(TunnelEnd {
                cloud: CloudName::Aws,
                outside_ip: t.outside_ip,
                peer_ip: cgw.ip,
                instance: i,
                resource: v.id.clone(),
                inside_cidr: Some(t.inside_cidr),
                psk: Some(t.psk.clone()),
                bgp: w.aws_bgp_end(v, t).map(|b| BgpPeer {
                    local_address: b.local,
                    peer_address: b.neighbor,
                    peer_asn: b.neighbor_asn,
                    state: if b.established { BgpState::Established } else { BgpState::Down },
                    // What the telemetry says, as AWS reports nothing else of the session.
                    reason: s.message.clone(),
                    routes_received: Some(accepted_routes(w, v, t)),
                    learned: None,
                }),
                status: TunnelStatus {
                    state: if s.state == LinkState::Up { TunnelState::Up } else { TunnelState::Down },
                    reason: s.message,
                    last_change: s.last_change_ms.map(World::timestamp),
                },
            }));
        }
    }
    out
}

#[async_trait]
impl VpnEndpoint<Aws> for SimAws {
    async fn observe(&self, owner: &Owner) -> Result<AwsObserved, EndpointError> {
        Ok(observe(&self.cloud.lock(), &self.target, owner))
    }

    async fn start(&self, op: &AwsOp) -> Result<OpHandle, EndpointError> {
        let mut w = self.cloud.lock();
        let calls = w.aws.mutating_calls;
        let result = start_op(&mut w, &self.target, op).map(|wait| OpHandle(w.record_aws(wait)));
        let mutated = w.aws.mutating_calls != calls || result.is_ok();
        saved(&self.cloud, &w, CloudName::Aws, mutated, result)
    }

    async fn poll(&self, handle: &OpHandle) -> Result<OpStatus, EndpointError> {
        let w = self.cloud.lock();
        let c = w.operation_status(&handle.0).map_err(aws_error)?;
        Ok(completion_to_status(c, CloudName::Aws))
    }

    async fn tunnel_ends(&self, owner: &Owner) -> Result<Vec<Box<dyn Tunnel>>, EndpointError> {
        Ok(tunnel_ends(&self.cloud.lock(), &self.target, owner))
    }
}
