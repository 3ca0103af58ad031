//! What vpnbridge knows about the two clouds: ownership, the observed state of each
//! side, and the operations an endpoint can start.
//!
//! Every type here is cloud-shaped but SDK-free: adapters translate between these and
//! their SDK's types; core decides with them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

use crate::secret::Psk;

/// Tag key that marks a resource as belonging to a deployment.
pub const TAG_DEPLOYMENT: &str = "vpnbridge:deployment";
/// Tag key that says which part of the deployment a resource is (see [`Role`]).
pub const TAG_ROLE: &str = "vpnbridge:role";

/// Resource tags (ordered, so plans and snapshots are stable).
pub type Tags = BTreeMap<String, String>;

/// The deployment whose resources an endpoint observes: everything tagged
/// `vpnbridge:deployment=<name>`. Nothing without that tag is ever modified or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
pub struct Owner {
    pub deployment: String,
}

impl Owner {
    pub fn new(deployment: impl Into<String>) -> Self {
        Self { deployment: deployment.into() }
    }

    /// The tags a resource of this deployment carries for `role`.
    pub fn tags(&self, role: &Role) -> Tags {
        Tags::from([(TAG_DEPLOYMENT.to_owned(), self.deployment.clone()), (TAG_ROLE.to_owned(), role.to_string())])
    }

    /// Whether `tags` mark a resource as this deployment's.
    pub fn owns(&self, tags: &Tags) -> bool {
        tags.get(TAG_DEPLOYMENT) == Some(&self.deployment)
    }
}

/// Which part of the topology a resource plays; the value of the `vpnbridge:role` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema, Deserialize)]
pub enum Role {
    /// Azure public IP of gateway instance k.
    PublicIp(u8),
    /// The Azure VPN gateway.
    VpnGateway,
    /// LocalNetworkGateway for AWS connection k, tunnel t (both 0-based).
    LocalNetworkGateway(u8, u8),
    /// Azure Connection for AWS connection k, tunnel t.
    Connection(u8, u8),
    /// The AWS virtual private gateway.
    VirtualPrivateGateway,
    /// AWS customer gateway for Azure instance k.
    CustomerGateway(u8),
    /// AWS Site-to-Site VPN connection k.
    VpnConnection(u8),
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::PublicIp(k) => write!(f, "pip-{k}"),
            Role::VpnGateway => f.write_str("vpn-gateway"),
            Role::LocalNetworkGateway(k, t) => write!(f, "lng-{k}-{t}"),
            Role::Connection(k, t) => write!(f, "cn-{k}-{t}"),
            Role::VirtualPrivateGateway => f.write_str("vgw"),
            Role::CustomerGateway(k) => write!(f, "cgw-{k}"),
            Role::VpnConnection(k) => write!(f, "vpn-{k}"),
        }
    }
}

impl std::str::FromStr for Role {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let nums = |rest: &str| -> Result<Vec<u8>, ()> { rest.split('-').map(|n| n.parse().map_err(|_| ())).collect() };
        match s {
            "vpn-gateway" => return Ok(Role::VpnGateway),
            "vgw" => return Ok(Role::VirtualPrivateGateway),
            _ => {}
        }
        let (kind, rest) = s.split_once('-').ok_or(())?;
        match (kind, nums(rest)?.as_slice()) {
            ("pip", [k]) => Ok(Role::PublicIp(*k)),
            ("lng", [k, t]) => Ok(Role::LocalNetworkGateway(*k, *t)),
            ("cn", [k, t]) => Ok(Role::Connection(*k, *t)),
            ("cgw", [k]) => Ok(Role::CustomerGateway(*k)),
            ("vpn", [k]) => Ok(Role::VpnConnection(*k)),
            _ => Err(()),
        }
    }
}

/// Reads the role tag of a resource owned by `owner`.
pub fn role_of(owner: &Owner, tags: &Tags) -> Option<Role> {
    if !owner.owns(tags) {
        return None;
    }
    tags.get(TAG_ROLE)?.parse().ok()
}

// ---------------------------------------------------------------------------
// Observed state: AWS
// ---------------------------------------------------------------------------

/// EC2 lifecycle of a VGW, CGW, VPN connection or static route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AwsState {
    Pending,
    Available,
    /// A VPN connection being changed by `ModifyVpnTunnelOptions` or
    /// `ModifyVpnConnection`. EC2 reports `modifying` although the documented
    /// `VpnState` enum lacks it (terraform-provider-aws waits on it in
    /// `waitVPNConnectionUpdated`); it goes back to `available` when the change is done.
    Modifying,
    Deleting,
    Deleted,
}

impl AwsState {
    /// Deleted or on its way out: history, not something to act on.
    pub fn is_gone(self) -> bool {
        matches!(self, AwsState::Deleting | AwsState::Deleted)
    }

    /// On its way from one stable state to another (`pending`, `modifying`, `deleting`).
    pub fn is_transitional(self) -> bool {
        matches!(self, AwsState::Pending | AwsState::Modifying | AwsState::Deleting)
    }
}

/// State of a VGW's attachment to a VPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentState {
    Attaching,
    Attached,
    Detaching,
    Detached,
}

/// Everything the AWS endpoint sees of one deployment, from one describe call per kind.
#[derive(Debug, Clone, Default)]
pub struct AwsObserved {
    /// The configured VPC, or `None` if it does not exist.
    pub vpc: Option<Vpc>,
    /// VGWs tagged as ours (including pending ones; deleted ones are left out).
    pub vpn_gateways: Vec<VpnGateway>,
    /// A VGW attached to the configured VPC that is not ours (a conflict).
    pub foreign_vgw_on_vpc: Option<String>,
    /// CGWs tagged as ours.
    pub customer_gateways: Vec<CustomerGateway>,
    /// VPN connections tagged as ours.
    pub vpn_connections: Vec<VpnConnection>,
    /// Customer gateways in the region that are not ours (deleted ones left out): EC2
    /// answers a `CreateCustomerGateway` with the IP and ASN of one of them with that
    /// one, so the planner does not plan ours beside it.
    pub foreign_customer_gateways: Vec<CustomerGateway>,
    /// VPN connections that are not ours on a customer gateway or a VGW of ours
    /// (deleted ones left out): EC2 refuses a second VPN connection between the same
    /// customer gateway and VGW, the delete of a customer gateway still in use, and a
    /// tunnel inside CIDR already used on the same VGW.
    pub foreign_vpn_connections: Vec<ForeignVpnConnection>,
    /// Ours by tag, but outside the configured region: the deployment was built
    /// elsewhere (the config's region changed). Never acted on in this scope.
    pub elsewhere: Vec<Elsewhere>,
    /// For a resource in the way (`foreign_vgw_on_vpc`) that carries another
    /// deployment's tag: which deployment (by resource id).
    pub deployment_of: BTreeMap<String, String>,
}

/// A resource of this deployment (it carries our tag) outside the scope the config now
/// names: another resource group, location or VNet (Azure), another region (AWS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Elsewhere {
    /// In the user's words: "VPN gateway", "public IP", "virtual private gateway"…
    pub kind: String,
    pub id: String,
    /// Where it is, e.g. `resource group "rg-old"`, `location "westeurope"`, `region eu-west-1`.
    pub place: String,
}

pub use crate::ownership::AzureScope;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpc {
    pub id: String,
    pub cidrs: Vec<IpNet>,
    pub route_tables: Vec<RouteTable>,
}

impl Vpc {
    /// The VPC's main route table.
    pub fn main_route_table(&self) -> Option<&RouteTable> {
        self.route_tables.iter().find(|t| t.main)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    pub id: String,
    pub main: bool,
    pub routes: Vec<VpcRoute>,
    /// VGWs whose routes this table learns by propagation.
    pub propagating_vgws: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcRoute {
    pub destination: IpNet,
    /// The target when it is a gateway (igw-…, vgw-…); `None` for other targets.
    pub gateway_id: Option<String>,
    /// `active` or `blackhole`.
    pub state: String,
    /// Learned from a VGW by route propagation (`Origin = EnableVgwRoutePropagation`),
    /// not created by `CreateRoute`: nobody's to delete; it goes when propagation stops.
    pub propagated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpnGateway {
    pub id: String,
    pub state: AwsState,
    pub amazon_asn: u32,
    pub attachments: Vec<VgwAttachment>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VgwAttachment {
    pub vpc_id: String,
    pub state: AttachmentState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerGateway {
    pub id: String,
    pub state: AwsState,
    pub ip: Ipv4Addr,
    pub bgp_asn: u32,
    pub device_name: Option<String>,
    pub tags: Tags,
}

impl CustomerGateway {
    /// Whether EC2 answers a `CreateCustomerGateway` for `ip`, `bgp_asn` and
    /// `device_name` with this gateway instead of a new one: it is not deleted, has the
    /// same IP and ASN, and the same device name or none. (EC2 documents only that an
    /// identical request returns the existing gateway and that a unique device name
    /// makes a new one; the simulator counts a gateway without a device name as
    /// returned too, and so does this, to refuse rather than meet it mid-apply.)
    pub fn returned_for(&self, ip: Ipv4Addr, bgp_asn: u32, device_name: &str) -> bool {
        !self.state.is_gone() && self.ip == ip && self.bgp_asn == bgp_asn && self.device_name.as_deref().is_none_or(|d| d == device_name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpnConnection {
    pub id: String,
    pub state: AwsState,
    pub customer_gateway_id: String,
    pub vpn_gateway_id: String,
    pub static_routes_only: bool,
    /// The two tunnels, ordered by outside IP (AWS's own order is not guaranteed).
    pub tunnels: Vec<AwsTunnelOptions>,
    pub routes: Vec<VpnConnectionRoute>,
    pub telemetry: Vec<VgwTelemetry>,
    pub tags: Tags,
}

/// A VPN connection that is not ours, as much of it as the planner reads (its keys
/// and routes are someone else's business).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignVpnConnection {
    pub id: String,
    pub state: AwsState,
    pub customer_gateway_id: String,
    pub vpn_gateway_id: String,
    /// Its tunnels' inside CIDRs, as described: EC2 gives an inside CIDR to one VPN
    /// connection per VGW (`InvalidCidr.InUse`).
    pub inside_cidrs: Vec<Ipv4Net>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsTunnelOptions {
    pub outside_ip: Ipv4Addr,
    pub inside_cidr: Option<Ipv4Net>,
    /// The key, when the API (or the configuration document) returns it.
    pub psk: Option<Psk>,
    pub ike_versions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpnConnectionRoute {
    pub destination: IpNet,
    pub state: AwsState,
}

/// One tunnel's status as AWS reports it (`VgwTelemetry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct VgwTelemetry {
    pub outside_ip: Ipv4Addr,
    pub status: TunnelState,
    pub status_message: String,
    /// Virtual or wall-clock time of the last change, as the cloud prints it.
    pub last_status_change: Option<String>,
    /// Routes the VGW accepted over this tunnel's BGP session (dynamic VPN
    /// connections; `None` when the cloud does not report it).
    pub accepted_route_count: Option<u32>,
}

// ---------------------------------------------------------------------------
// Observed state: Azure
// ---------------------------------------------------------------------------

/// ARM provisioning state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
pub enum ProvisioningState {
    Succeeded,
    Updating,
    Deleting,
    Failed,
}

/// Everything the Azure endpoint sees of one deployment.
#[derive(Debug, Clone, Default)]
pub struct AzureObserved {
    /// The configured VNet, or `None` if it does not exist.
    pub vnet: Option<VirtualNetwork>,
    /// Gateways in the VNet's GatewaySubnet that are not ours (at most one can exist).
    pub foreign_gateways_in_vnet: Vec<String>,
    pub public_ips: Vec<PublicIp>,
    pub vpn_gateway: Option<VirtualNetworkGateway>,
    pub local_network_gateways: Vec<LocalNetworkGateway>,
    pub connections: Vec<Connection>,
    /// Names of public IPs, gateways, LocalNetworkGateways and Connections in the
    /// resource group that are *not* ours: a PUT on one of these names would take
    /// over someone else's resource, so the planner refuses such a name.
    pub foreign_names: Vec<String>,
    /// Ours by tag, but in another resource group, location or VNet than the config
    /// now names (found by a subscription-wide search). Never acted on in this scope.
    pub elsewhere: Vec<Elsewhere>,
    /// For a resource in the way (`foreign_gateways_in_vnet`) that carries another
    /// deployment's tag: which deployment (by resource id, lower case).
    pub deployment_of: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualNetwork {
    pub id: String,
    pub name: String,
    pub address_space: Vec<IpNet>,
    pub subnets: Vec<Subnet>,
}

impl VirtualNetwork {
    pub fn gateway_subnet(&self) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.name == "GatewaySubnet")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub name: String,
    pub prefix: IpNet,
    /// Ids of the ip configurations (NICs, gateways) that use the subnet.
    pub ip_configurations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicIp {
    pub id: String,
    pub name: String,
    pub ip: Option<Ipv4Addr>,
    pub sku: String,
    pub static_allocation: bool,
    pub zones: Vec<String>,
    pub state: ProvisioningState,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualNetworkGateway {
    pub id: String,
    pub name: String,
    pub sku: String,
    pub generation: String,
    pub vpn_type: String,
    pub active_active: bool,
    pub enable_bgp: bool,
    pub asn: Option<u32>,
    /// In the gateway's own order: instance k is the k-th ipConfiguration.
    pub ip_configurations: Vec<GatewayIpConfiguration>,
    /// `bgpSettings.bgpPeeringAddresses`: one entry per ipConfiguration when BGP is on.
    pub bgp_peering_addresses: Vec<BgpPeeringAddress>,
    pub state: ProvisioningState,
    pub tags: Tags,
}

/// One ipConfiguration's BGP addresses (`IPConfigurationBgpPeeringAddress`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpPeeringAddress {
    pub ip_configuration_id: String,
    /// `customBgpIpAddresses`: the APIPA addresses the instance may speak BGP from.
    pub custom: Vec<Ipv4Addr>,
    /// `defaultBgpIpAddresses` (read-only: an address in the GatewaySubnet).
    pub default: Vec<Ipv4Addr>,
}

/// A LocalNetworkGateway's `bgpSettings`: the peer Azure speaks BGP with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LngBgp {
    pub asn: u32,
    pub peering_address: Ipv4Addr,
}

/// A Connection's `gatewayCustomBgpIpAddresses[]` entry: the address the instance
/// behind `ip_configuration_id` speaks from on this Connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CustomBgpAddress {
    pub ip_configuration_id: String,
    pub address: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayIpConfiguration {
    pub id: String,
    pub name: String,
    pub public_ip_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNetworkGateway {
    pub id: String,
    pub name: String,
    pub gateway_ip: Ipv4Addr,
    pub address_prefixes: Vec<IpNet>,
    /// The BGP peer behind this LocalNetworkGateway (bgp-ha), if any.
    pub bgp: Option<LngBgp>,
    pub state: ProvisioningState,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: String,
    pub name: String,
    pub gateway_id: String,
    pub local_network_gateway_id: String,
    pub protocol: String,
    /// From the `sharedkey` sub-resource; `None` if it could not be read.
    pub shared_key: Option<Psk>,
    pub enable_bgp: bool,
    /// `gatewayCustomBgpIpAddresses`, one entry per gateway ipConfiguration (bgp-ha).
    pub custom_bgp_addresses: Vec<CustomBgpAddress>,
    pub state: ProvisioningState,
    /// The aggregate `connectionStatus` (Connected if any instance's tunnel is up).
    pub connection_status: String,
    /// Per gateway instance (`tunnelConnectionStatus`).
    pub tunnels: Vec<AzureTunnelStatus>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AzureTunnelStatus {
    /// ARM's name for the tunnel, kept verbatim: ARM documents no format, so nothing is
    /// read from it (`instance_ip` is set only when the adapter could attribute it).
    pub tunnel: String,
    /// The gateway instance's public IP this tunnel leaves from.
    pub instance_ip: Option<Ipv4Addr>,
    pub status: TunnelState,
}

/// Up or down, as either cloud reports a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelState {
    Up,
    Down,
    Unknown,
}

impl fmt::Display for TunnelState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TunnelState::Up => "UP",
            TunnelState::Down => "DOWN",
            TunnelState::Unknown => "UNKNOWN",
        })
    }
}
