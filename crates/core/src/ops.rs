//! Operations an endpoint can start, typed per cloud.
//!
//! A plan holds operations whose inputs may not be known yet (an Azure public IP
//! before it is allocated, a tunnel's outside IP before AWS creates the connection):
//! those are [`Late`] values that name the step and the output that will provide them.
//! The executor binds them ([`AwsOp::bind`], [`AzureOp::bind`]) just before it starts
//! the operation, so an adapter only ever sees fully known values (`AwsOp<Bound>`).

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use serde::Serialize;

use crate::model::{AwsTunnelOptions, LngBgp, Tags};
use crate::secret::Psk;

/// Identifies a step of a plan.
pub type StepId = usize;

/// Which output of an earlier step a late-bound value reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OutputField {
    /// The created resource's id (vgw-…, cgw-…, vpn-…, or an ARM id).
    Id,
    /// The allocated public IP (Azure public IP).
    PublicIp,
    /// Outside IP of the tunnel that serves used slot `slot` of a VPN connection,
    /// matched by value ([`crate::pairing::tunnel_for_slot`]): EC2 does not promise
    /// which tunnel gets which of the `TunnelOptions` it was given.
    TunnelOutsideIp { slot: u8, pins: TunnelPins },
    /// Pre-shared key of that same tunnel.
    TunnelPsk { slot: u8, pins: TunnelPins },
}

/// The inside CIDRs pinned for the two tunnel slots of one VPN connection (`None`:
/// AWS chooses, or the slot is not used).
pub type TunnelPins = [Option<Ipv4Net>; 2];

/// What a finished operation reports back for later steps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpOutput {
    pub id: Option<String>,
    pub public_ip: Option<Ipv4Addr>,
    /// For a VPN connection: its tunnels as EC2 reports them after the change.
    pub tunnels: Vec<AwsTunnelOptions>,
    /// The tags of the resource the cloud returned, when the endpoint read them (a
    /// customer gateway EC2 may have answered with someone else's): the executor
    /// checks whose it is ([`crate::committed::Reconciled::owned`]). `None`: not read.
    pub tags: Option<Tags>,
}

/// A value that is either known at plan time or read from an earlier step's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Late<T> {
    Known(T),
    After(StepId, OutputField),
    /// Neither known nor produced by any step: the planner reports why as a problem
    /// and refuses the plan, so an executed plan never holds one.
    Unavailable(OutputField),
}

impl<T> Late<T> {
    /// The step this value waits for, if any.
    pub fn depends_on(&self) -> Option<StepId> {
        match self {
            Late::Known(_) | Late::Unavailable(_) => None,
            Late::After(s, _) => Some(*s),
        }
    }
}

impl<T: fmt::Display> Late<T> {
    /// How a plan prints it.
    pub fn show(&self) -> String {
        match self {
            Late::Known(v) => v.to_string(),
            Late::After(..) => "(known after apply)".to_owned(),
            Late::Unavailable(_) => "(unavailable)".to_owned(),
        }
    }
}

/// A value that can be read from an [`OpOutput`].
pub trait FromOutput: Sized {
    fn from_output(output: &OpOutput, field: OutputField) -> Option<Self>;
}

impl FromOutput for String {
    fn from_output(o: &OpOutput, f: OutputField) -> Option<Self> {
        match f {
            OutputField::Id => o.id.clone(),
            _ => None,
        }
    }
}

impl FromOutput for Ipv4Addr {
    fn from_output(o: &OpOutput, f: OutputField) -> Option<Self> {
        match f {
            OutputField::PublicIp => o.public_ip,
            OutputField::TunnelOutsideIp { slot, pins } => crate::pairing::tunnel_for_slot(&o.tunnels, slot, pins).map(|t| t.outside_ip),
            _ => None,
        }
    }
}

impl FromOutput for Psk {
    fn from_output(o: &OpOutput, f: OutputField) -> Option<Self> {
        match f {
            OutputField::TunnelPsk { slot, pins } => crate::pairing::tunnel_for_slot(&o.tunnels, slot, pins).and_then(|t| t.psk.clone()),
            _ => None,
        }
    }
}

/// A late-bound value could not be filled in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unbound {
    /// The step it reads did not report it.
    #[error("step {step} did not report {field:?}, which a later step needs")]
    Missing { step: StepId, field: OutputField },
    /// No step produces it (the planner refuses such a plan; see [`Late::Unavailable`]).
    #[error("{field:?} is not known and no step produces it")]
    Unavailable { field: OutputField },
}

/// Looks up earlier steps' outputs.
pub trait Outputs {
    fn output(&self, step: StepId) -> Option<&OpOutput>;

    fn get<T: FromOutput + Clone>(&self, v: &Late<T>) -> Result<T, Unbound>
    where
        Self: Sized,
    {
        match v {
            Late::Known(v) => Ok(v.clone()),
            Late::After(step, field) => {
                self.output(*step).and_then(|o| T::from_output(o, *field)).ok_or(Unbound::Missing { step: *step, field: *field })
            }
            Late::Unavailable(field) => Err(Unbound::Unavailable { field: *field }),
        }
    }
}

impl Outputs for std::collections::HashMap<StepId, OpOutput> {
    fn output(&self, step: StepId) -> Option<&OpOutput> {
        self.get(&step)
    }
}

/// Whether an operation's values are still late-bound (in a plan) or all known.
pub trait Binding: Clone + fmt::Debug + Send + Sync + 'static {
    type Of<T: Clone + fmt::Debug + PartialEq + Send + Sync + 'static>: Clone + fmt::Debug + PartialEq + Send + Sync + 'static;
}

/// Values may be late-bound: the operation as a plan holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned;
impl Binding for Planned {
    type Of<T: Clone + fmt::Debug + PartialEq + Send + Sync + 'static> = Late<T>;
}

/// Every value is known: the operation as an adapter receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound;
impl Binding for Bound {
    type Of<T: Clone + fmt::Debug + PartialEq + Send + Sync + 'static> = T;
}

/// Options of one tunnel of a new VPN connection; `None` lets AWS choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelSpec {
    pub inside_cidr: Option<Ipv4Net>,
    pub psk: Option<Psk>,
}

/// Operations on AWS.
#[derive(Debug, Clone, PartialEq)]
pub enum AwsOp<B: Binding = Bound> {
    /// CreateVpnGateway (type ipsec.1), tagged at creation.
    CreateVpnGateway {
        amazon_asn: u32,
        tags: Tags,
    },
    /// AttachVpnGateway; done when the attachment is `attached`.
    AttachVpnGateway {
        vgw_id: B::Of<String>,
        vpc_id: String,
    },
    /// DetachVpnGateway; done when `detached`.
    DetachVpnGateway {
        vgw_id: String,
        vpc_id: String,
    },
    /// DeleteVpnGateway; done when `deleted`.
    DeleteVpnGateway {
        vgw_id: String,
    },
    /// CreateRoute to `destination` via the VGW.
    CreateRoute {
        route_table_id: String,
        destination: IpNet,
        vgw_id: B::Of<String>,
    },
    /// DeleteRoute (only routes that target our VGW).
    DeleteRoute {
        route_table_id: String,
        destination: IpNet,
    },
    /// CreateCustomerGateway (ipsec.1) with a unique device name, tagged at creation.
    CreateCustomerGateway {
        ip: B::Of<Ipv4Addr>,
        bgp_asn: u32,
        device_name: String,
        tags: Tags,
    },
    DeleteCustomerGateway {
        cgw_id: String,
    },
    /// CreateVpnConnection, tagged at creation; done when `available`. Reports the
    /// tunnels' outside IPs and keys.
    CreateVpnConnection {
        cgw_id: B::Of<String>,
        vgw_id: B::Of<String>,
        static_routes_only: bool,
        tunnels: Vec<TunnelSpec>,
        tags: Tags,
    },
    DeleteVpnConnection {
        vpn_id: String,
    },
    CreateVpnConnectionRoute {
        vpn_id: B::Of<String>,
        destination: IpNet,
    },
    DeleteVpnConnectionRoute {
        vpn_id: String,
        destination: IpNet,
    },
    /// ModifyVpnConnection: moves the VPN connection to another customer gateway, keeping
    /// its outside IPs and tunnel options (both tunnels are down briefly).
    ModifyVpnConnection {
        vpn_id: String,
        cgw_id: B::Of<String>,
    },
    /// ModifyVpnTunnelOptions for one tunnel (that tunnel goes down for minutes).
    ModifyVpnTunnelOptions {
        vpn_id: String,
        outside_ip: Ipv4Addr,
        psk: Option<Psk>,
        inside_cidr: Option<Ipv4Net>,
    },
    /// EnableVgwRoutePropagation: the route table learns the VGW's BGP routes.
    EnableVgwRoutePropagation {
        route_table_id: String,
        vgw_id: B::Of<String>,
    },
    /// DisableVgwRoutePropagation (only for our VGW).
    DisableVgwRoutePropagation {
        route_table_id: String,
        vgw_id: String,
    },
    /// Waits for a resource found pending (or deleting) to settle; starts nothing.
    Await {
        kind: AwsResourceKind,
        /// The resource's id; for an attachment its VGW's, for a VPN connection's
        /// static route its connection's.
        id: String,
    },
}

/// AWS resource kinds, for [`AwsOp::Await`] and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AwsResourceKind {
    VpnGateway,
    VgwAttachment,
    CustomerGateway,
    VpnConnection,
    /// The static route to `destination` of a VPN connection.
    VpnConnectionRoute {
        destination: IpNet,
    },
}

/// Operations on Azure. Resources are named; the adapter builds ARM ids from its
/// subscription and resource group.
#[derive(Debug, Clone, PartialEq)]
pub enum AzureOp<B: Binding = Bound> {
    /// PUT a Standard, Static, zone-redundant (1, 2, 3) public IP; reports the address.
    CreatePublicIp {
        name: String,
        zones: Vec<String>,
        tags: Tags,
    },
    DeletePublicIp {
        name: String,
    },
    /// PUT the active-active RouteBased VPN gateway in the VNet's GatewaySubnet.
    CreateVpnGateway {
        name: String,
        vnet: String,
        sku: String,
        generation: String,
        /// Public IP resource names, one per ipConfiguration (instance k = entry k).
        public_ips: Vec<String>,
        /// BGP on (bgp-ha) with the gateway's ASN and custom addresses, or off.
        bgp: Option<GatewayBgp>,
        tags: Tags,
    },
    /// Resize the gateway in place (same SKU family and generation).
    ResizeVpnGateway {
        name: String,
        sku: String,
    },
    DeleteVpnGateway {
        name: String,
    },
    /// PUT a LocalNetworkGateway (create or update its IP and prefixes).
    PutLocalNetworkGateway {
        name: String,
        gateway_ip: B::Of<Ipv4Addr>,
        address_prefixes: Vec<IpNet>,
        /// The BGP peer behind it (bgp-ha), or none (static prefixes only).
        bgp: Option<LngBgp>,
        tags: Tags,
    },
    DeleteLocalNetworkGateway {
        name: String,
    },
    /// PUT an IPsec Connection (IKEv2) between the gateway and a LocalNetworkGateway.
    PutConnection {
        name: String,
        gateway: String,
        local_network_gateway: String,
        shared_key: B::Of<Psk>,
        /// BGP on this Connection (bgp-ha), with the address each instance speaks from.
        bgp: Option<ConnectionBgp>,
        dpd_timeout_seconds: u32,
        tags: Tags,
    },
    /// PUT the Connection's `sharedkey` sub-resource.
    SetSharedKey {
        name: String,
        shared_key: B::Of<Psk>,
    },
    DeleteConnection {
        name: String,
    },
    /// Waits for a resource found Updating (or Deleting) to settle; starts nothing.
    Await {
        kind: AzureResourceKind,
        name: String,
    },
}

/// The gateway's BGP settings: `enableBgp`, `bgpSettings.asn`, and per ipConfiguration
/// (instance k = entry k) its `customBgpIpAddresses`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayBgp {
    pub asn: u32,
    pub custom_addresses: Vec<Vec<Ipv4Addr>>,
}

/// A Connection's BGP: `enableBgp` and `gatewayCustomBgpIpAddresses`, the address
/// instance k speaks from on it (entry k; one for each ipConfiguration, as Azure wants
/// on an active-active gateway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionBgp {
    pub custom_addresses: Vec<Ipv4Addr>,
}

/// Azure resource kinds, for [`AzureOp::Await`] and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AzureResourceKind {
    PublicIp,
    VpnGateway,
    LocalNetworkGateway,
    Connection,
}

impl AwsOp<Planned> {
    /// Fills in every late-bound value from earlier steps' outputs.
    pub fn bind(&self, o: &impl Outputs) -> Result<AwsOp<Bound>, Unbound> {
        Ok(match self {
            AwsOp::CreateVpnGateway { amazon_asn, tags } => AwsOp::CreateVpnGateway { amazon_asn: *amazon_asn, tags: tags.clone() },
            AwsOp::AttachVpnGateway { vgw_id, vpc_id } => AwsOp::AttachVpnGateway { vgw_id: o.get(vgw_id)?, vpc_id: vpc_id.clone() },
            AwsOp::DetachVpnGateway { vgw_id, vpc_id } => AwsOp::DetachVpnGateway { vgw_id: vgw_id.clone(), vpc_id: vpc_id.clone() },
            AwsOp::DeleteVpnGateway { vgw_id } => AwsOp::DeleteVpnGateway { vgw_id: vgw_id.clone() },
            AwsOp::CreateRoute { route_table_id, destination, vgw_id } => {
                AwsOp::CreateRoute { route_table_id: route_table_id.clone(), destination: *destination, vgw_id: o.get(vgw_id)? }
            }
            AwsOp::DeleteRoute { route_table_id, destination } => {
                AwsOp::DeleteRoute { route_table_id: route_table_id.clone(), destination: *destination }
            }
            AwsOp::CreateCustomerGateway { ip, bgp_asn, device_name, tags } => {
                AwsOp::CreateCustomerGateway { ip: o.get(ip)?, bgp_asn: *bgp_asn, device_name: device_name.clone(), tags: tags.clone() }
            }
            AwsOp::DeleteCustomerGateway { cgw_id } => AwsOp::DeleteCustomerGateway { cgw_id: cgw_id.clone() },
            AwsOp::CreateVpnConnection { cgw_id, vgw_id, static_routes_only, tunnels, tags } => AwsOp::CreateVpnConnection {
                cgw_id: o.get(cgw_id)?,
                vgw_id: o.get(vgw_id)?,
                static_routes_only: *static_routes_only,
                tunnels: tunnels.clone(),
                tags: tags.clone(),
            },
            AwsOp::DeleteVpnConnection { vpn_id } => AwsOp::DeleteVpnConnection { vpn_id: vpn_id.clone() },
            AwsOp::CreateVpnConnectionRoute { vpn_id, destination } => {
                AwsOp::CreateVpnConnectionRoute { vpn_id: o.get(vpn_id)?, destination: *destination }
            }
            AwsOp::DeleteVpnConnectionRoute { vpn_id, destination } => {
                AwsOp::DeleteVpnConnectionRoute { vpn_id: vpn_id.clone(), destination: *destination }
            }
            AwsOp::ModifyVpnConnection { vpn_id, cgw_id } => AwsOp::ModifyVpnConnection { vpn_id: vpn_id.clone(), cgw_id: o.get(cgw_id)? },
            AwsOp::ModifyVpnTunnelOptions { vpn_id, outside_ip, psk, inside_cidr } => AwsOp::ModifyVpnTunnelOptions {
                vpn_id: vpn_id.clone(),
                outside_ip: *outside_ip,
                psk: psk.clone(),
                inside_cidr: *inside_cidr,
            },
            AwsOp::EnableVgwRoutePropagation { route_table_id, vgw_id } => {
                AwsOp::EnableVgwRoutePropagation { route_table_id: route_table_id.clone(), vgw_id: o.get(vgw_id)? }
            }
            AwsOp::DisableVgwRoutePropagation { route_table_id, vgw_id } => {
                AwsOp::DisableVgwRoutePropagation { route_table_id: route_table_id.clone(), vgw_id: vgw_id.clone() }
            }
            AwsOp::Await { kind, id } => AwsOp::Await { kind: *kind, id: id.clone() },
        })
    }

    /// Steps whose outputs this operation reads.
    pub fn reads(&self) -> Vec<StepId> {
        match self {
            AwsOp::AttachVpnGateway { vgw_id, .. }
            | AwsOp::CreateRoute { vgw_id, .. }
            | AwsOp::EnableVgwRoutePropagation { vgw_id, .. } => vgw_id.depends_on().into_iter().collect(),
            AwsOp::CreateCustomerGateway { ip, .. } => ip.depends_on().into_iter().collect(),
            AwsOp::CreateVpnConnection { cgw_id, vgw_id, .. } => cgw_id.depends_on().into_iter().chain(vgw_id.depends_on()).collect(),
            AwsOp::CreateVpnConnectionRoute { vpn_id, .. } => vpn_id.depends_on().into_iter().collect(),
            AwsOp::ModifyVpnConnection { cgw_id, .. } => cgw_id.depends_on().into_iter().collect(),
            _ => Vec::new(),
        }
    }
}

impl AzureOp<Planned> {
    /// Fills in every late-bound value from earlier steps' outputs.
    pub fn bind(&self, o: &impl Outputs) -> Result<AzureOp<Bound>, Unbound> {
        Ok(match self {
            AzureOp::CreatePublicIp { name, zones, tags } => {
                AzureOp::CreatePublicIp { name: name.clone(), zones: zones.clone(), tags: tags.clone() }
            }
            AzureOp::DeletePublicIp { name } => AzureOp::DeletePublicIp { name: name.clone() },
            AzureOp::CreateVpnGateway { name, vnet, sku, generation, public_ips, bgp, tags } => AzureOp::CreateVpnGateway {
                name: name.clone(),
                vnet: vnet.clone(),
                sku: sku.clone(),
                generation: generation.clone(),
                public_ips: public_ips.clone(),
                bgp: bgp.clone(),
                tags: tags.clone(),
            },
            AzureOp::ResizeVpnGateway { name, sku } => AzureOp::ResizeVpnGateway { name: name.clone(), sku: sku.clone() },
            AzureOp::DeleteVpnGateway { name } => AzureOp::DeleteVpnGateway { name: name.clone() },
            AzureOp::PutLocalNetworkGateway { name, gateway_ip, address_prefixes, bgp, tags } => AzureOp::PutLocalNetworkGateway {
                name: name.clone(),
                gateway_ip: o.get(gateway_ip)?,
                address_prefixes: address_prefixes.clone(),
                bgp: *bgp,
                tags: tags.clone(),
            },
            AzureOp::DeleteLocalNetworkGateway { name } => AzureOp::DeleteLocalNetworkGateway { name: name.clone() },
            AzureOp::PutConnection { name, gateway, local_network_gateway, shared_key, bgp, dpd_timeout_seconds, tags } => {
                AzureOp::PutConnection {
                    name: name.clone(),
                    gateway: gateway.clone(),
                    local_network_gateway: local_network_gateway.clone(),
                    shared_key: o.get(shared_key)?,
                    bgp: bgp.clone(),
                    dpd_timeout_seconds: *dpd_timeout_seconds,
                    tags: tags.clone(),
                }
            }
            AzureOp::SetSharedKey { name, shared_key } => AzureOp::SetSharedKey { name: name.clone(), shared_key: o.get(shared_key)? },
            AzureOp::DeleteConnection { name } => AzureOp::DeleteConnection { name: name.clone() },
            AzureOp::Await { kind, name } => AzureOp::Await { kind: *kind, name: name.clone() },
        })
    }

    /// Steps whose outputs this operation reads.
    pub fn reads(&self) -> Vec<StepId> {
        match self {
            AzureOp::PutLocalNetworkGateway { gateway_ip, .. } => gateway_ip.depends_on().into_iter().collect(),
            AzureOp::PutConnection { shared_key, .. } | AzureOp::SetSharedKey { shared_key, .. } => {
                shared_key.depends_on().into_iter().collect()
            }
            _ => Vec::new(),
        }
    }
}

impl<B: Binding> AzureOp<B> {
    /// The resource a PUT creates (or updates), for finding it after an ambiguous failure.
    pub fn created_resource(&self) -> Option<(AzureResourceKind, &str)> {
        match self {
            AzureOp::CreatePublicIp { name, .. } => Some((AzureResourceKind::PublicIp, name)),
            AzureOp::CreateVpnGateway { name, .. } => Some((AzureResourceKind::VpnGateway, name)),
            AzureOp::PutLocalNetworkGateway { name, .. } => Some((AzureResourceKind::LocalNetworkGateway, name)),
            AzureOp::PutConnection { name, .. } => Some((AzureResourceKind::Connection, name)),
            _ => None,
        }
    }

    /// Whether the operation removes something: "not found" then means already done.
    pub fn is_delete(&self) -> bool {
        matches!(
            self,
            AzureOp::DeletePublicIp { .. }
                | AzureOp::DeleteVpnGateway { .. }
                | AzureOp::DeleteLocalNetworkGateway { .. }
                | AzureOp::DeleteConnection { .. }
        )
    }

    /// Writes that Azure serialises on one gateway: the executor runs at most one of
    /// these at a time per returned key (409 AnotherOperationInProgress otherwise).
    pub fn serial_key(&self) -> Option<&str> {
        match self {
            AzureOp::CreateVpnGateway { name, .. } | AzureOp::ResizeVpnGateway { name, .. } | AzureOp::DeleteVpnGateway { name } => {
                Some(name)
            }
            _ => None,
        }
    }
}

impl<B: Binding> AwsOp<B> {
    /// Whether the operation removes something: "not found" then means already done.
    pub fn is_delete(&self) -> bool {
        matches!(
            self,
            AwsOp::DetachVpnGateway { .. }
                | AwsOp::DeleteVpnGateway { .. }
                | AwsOp::DeleteRoute { .. }
                | AwsOp::DeleteCustomerGateway { .. }
                | AwsOp::DeleteVpnConnection { .. }
                | AwsOp::DeleteVpnConnectionRoute { .. }
                | AwsOp::DisableVgwRoutePropagation { .. }
        )
    }

    /// Whether the operation creates a resource without a client token: after an
    /// ambiguous failure it must not simply be retried (see the executor).
    pub fn creates_without_token(&self) -> bool {
        matches!(self, AwsOp::CreateVpnGateway { .. } | AwsOp::CreateCustomerGateway { .. } | AwsOp::CreateVpnConnection { .. })
    }
}
