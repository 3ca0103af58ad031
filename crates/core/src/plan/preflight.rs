//! Cross-checks of the config against what the clouds hold, before any step: the
//! declared networks against the real VNet and VPC, things in the way, and this
//! deployment's resources found outside the scope the config now names. Some things
//! are in the way only of a step the plan takes (someone else's customer gateway EC2
//! would return for ours, a VPN connection not ours on a gateway pair we connect, on
//! a customer gateway we delete, or holding an inside CIDR we pin on our VGW): the
//! planner asks about those where it plans the step, and they are refused with the
//! rest, before any change.

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};

use crate::config::{Config, overlaps};
use crate::model::{AttachmentState, AwsObserved, AwsState, Owner, Role, TAG_DEPLOYMENT, Tags};
use crate::pairing::{self, INSTANCES, Names};

use super::{Observed, join};

/// Cross-checks the declared networks against the real VNet and VPC (read-only) and
/// finds anything in the way. Every problem is reported at once.
pub fn preflight(config: &Config, observed: &Observed) -> Vec<String> {
    let mut problems = Vec::new();
    let file = config.source.display();
    let az = &config.azure;
    match &observed.azure.vnet {
        None => problems.push(format!(
            "Azure VNet \"{}\" was not found in resource group \"{}\": create it (with a GatewaySubnet) or fix azure.vnet / azure.resource_group in {file}",
            az.vnet, az.resource_group
        )),
        Some(vnet) => {
            for p in undeclared(&az.address_space, &vnet.address_space) {
                problems.push(format!(
                    "azure.address_space declares {p}, but VNet \"{}\" has {}: fix azure.address_space in {file}",
                    vnet.name,
                    join(&vnet.address_space)
                ));
            }
            match vnet.gateway_subnet() {
                None => problems.push(format!(
                    "VNet \"{}\" has no subnet named exactly \"GatewaySubnet\": add one (/27 recommended, {} declared in azure.gateway_subnet)",
                    vnet.name, az.gateway_subnet
                )),
                Some(s) => {
                    if s.prefix != IpNet::V4(az.gateway_subnet) {
                        problems.push(format!(
                            "GatewaySubnet of VNet \"{}\" is {}, but azure.gateway_subnet declares {}: fix azure.gateway_subnet in {file}",
                            vnet.name, s.prefix, az.gateway_subnet
                        ));
                    }
                    if s.prefix.prefix_len() > 29 {
                        problems.push(format!("GatewaySubnet {} is smaller than /29: Azure needs /29 at least (/27 recommended)", s.prefix));
                    }
                    let gw_prefix = format!("/providers/Microsoft.Network/virtualNetworkGateways/{}/", Names::new(&config.name).gateway());
                    let others: Vec<&String> =
                        s.ip_configurations.iter().filter(|id| !id.to_ascii_lowercase().contains(&gw_prefix.to_ascii_lowercase())).collect();
                    if !others.is_empty() && observed.azure.foreign_gateways_in_vnet.is_empty() {
                        problems.push(format!(
                            "GatewaySubnet must hold nothing but the VPN gateway, but {} use it: move them to another subnet",
                            others.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                        ));
                    }
                }
            }
        }
    }
    for g in &observed.azure.foreign_gateways_in_vnet {
        match observed.azure.deployment_of.get(&g.to_ascii_lowercase()) {
            Some(other) => problems.push(format!(
                "VNet \"{}\" already has VPN gateway \"{g}\", which belongs to vpnbridge deployment \"{other}\" (its \
                 vpnbridge:deployment tag), not to \"{}\"; Azure allows one gateway per VNet. If you renamed the deployment, \
                 set name = \"{other}\" back in {file} (names cannot change in place), or run `vpnbridge destroy` with \
                 name = \"{other}\" first",
                az.vnet, config.name
            )),
            None => problems.push(format!(
                "VNet \"{}\" already has a VPN gateway \"{g}\" that vpnbridge does not own; Azure allows one per VNet: \
                 delete it, or use another VNet",
                az.vnet
            )),
        }
    }
    problems.extend(elsewhere_problems(config, observed));
    let names = Names::new(&config.name);
    let mut ours: Vec<String> = (0..INSTANCES).map(|k| names.public_ip(k)).collect();
    ours.push(names.gateway());
    for s in pairing::slots(&config.name, config.tunnels_per_connection) {
        ours.push(s.local_network_gateway);
        ours.push(s.azure_connection);
    }
    for n in &observed.azure.foreign_names {
        if ours.contains(n) {
            problems.push(format!(
                "resource group \"{}\" already has a resource named \"{n}\" without the tag vpnbridge:deployment={}: \
                 vpnbridge will not take it over; rename or delete it, or choose another `name` in {file}",
                az.resource_group, config.name
            ));
        }
    }

    let aws = &config.aws;
    match &observed.aws.vpc {
        None => problems.push(format!(
            "AWS VPC {} was not found in {} (InvalidVpcID.NotFound): fix aws.vpc_id / aws.region in {file}",
            aws.vpc_id, aws.region
        )),
        Some(vpc) => {
            for c in undeclared(&aws.cidrs, &vpc.cidrs) {
                problems.push(format!("aws.cidrs declares {c}, but VPC {} has {}: fix aws.cidrs in {file}", vpc.id, join(&vpc.cidrs)));
            }
            for rtb in &aws.route_tables {
                if !vpc.route_tables.iter().any(|t| &t.id == rtb) {
                    problems.push(format!("route table {rtb} (aws.route_tables) is not in VPC {}: fix aws.route_tables in {file}", vpc.id));
                }
            }
            if aws.route_tables.is_empty() && vpc.main_route_table().is_none() {
                problems.push(format!("VPC {} has no main route table: name the tables in aws.route_tables", vpc.id));
            }
            if let Some(vnet) = &observed.azure.vnet {
                for a in &vnet.address_space {
                    for b in &vpc.cidrs {
                        if overlaps(*a, *b) {
                            problems.push(format!(
                                "VNet \"{}\" address space {a} overlaps VPC {} CIDR {b}: traffic cannot be routed between overlapping networks",
                                vnet.name, vpc.id
                            ));
                        }
                    }
                }
            }
        }
    }
    if let Some(v) = &observed.aws.foreign_vgw_on_vpc {
        match observed.aws.deployment_of.get(v) {
            Some(other) => problems.push(format!(
                "VPC {} already has virtual private gateway {v} attached, which belongs to vpnbridge deployment \"{other}\", \
                 not to \"{}\"; AWS allows one per VPC. If you renamed the deployment, set name = \"{other}\" back in {file} \
                 (names cannot change in place), or run `vpnbridge destroy` with name = \"{other}\" first",
                aws.vpc_id, config.name
            )),
            None => problems.push(format!(
                "VPC {} already has virtual private gateway {v} attached, which vpnbridge does not own; AWS allows one per VPC: \
                 detach it first",
                aws.vpc_id
            )),
        }
    }
    problems.extend(moved_vpc_problems(config, observed));
    problems
}

/// Our VGW attached to another VPC than `aws.vpc_id` names: the VPC changed in the
/// config. Neither apply (a VGW serves one VPC) nor destroy (the routes vpnbridge added
/// to that VPC's route tables are not seen from the new one, and would be left as
/// blackholes) can go on from here.
pub(super) fn moved_vpc_problems(config: &Config, observed: &Observed) -> Vec<String> {
    let file = config.source.display();
    let want = &config.aws.vpc_id;
    let owner = Owner::new(&config.name);
    let mut problems = Vec::new();
    for v in observed.aws.vpn_gateways.iter().filter(|v| owner.owns(&v.tags) && !v.state.is_gone()) {
        for a in v.attachments.iter().filter(|a| &a.vpc_id != want && a.state != AttachmentState::Detached) {
            problems.push(format!(
                "this deployment's virtual private gateway {} is attached to VPC {}, but aws.vpc_id is now {want}: a VGW serves \
                 one VPC and vpnbridge does not move it, and the routes it added are in that VPC's route tables. Set \
                 aws.vpc_id = \"{}\" back in {file}, run `vpnbridge destroy`, then apply with the new VPC",
                v.id, a.vpc_id, a.vpc_id
            ));
        }
    }
    problems
}

/// This deployment's resources found outside the scope the config now names: nothing
/// is built beside them (that would leave them behind, still costing money), and
/// nothing here can move them.
pub(super) fn elsewhere_problems(config: &Config, observed: &Observed) -> Vec<String> {
    let file = config.source.display();
    let mut out = Vec::new();
    let az = &config.azure;
    for e in &observed.azure.elsewhere {
        out.push(format!(
            "this deployment already has {} {} in {}, outside what {file} now names (resource group \"{}\", location \"{}\", \
             VNet \"{}\"): Azure cannot move it there. Set the config back to where it is, or run `vpnbridge destroy` with \
             the old values first, then apply with the new ones",
            e.kind, e.id, e.place, az.resource_group, az.location, az.vnet
        ));
    }
    for e in &observed.aws.elsewhere {
        out.push(format!(
            "this deployment already has {} {} in {}, but aws.region is now {}: AWS cannot move it. Set aws.region back in \
             {file}, or run `vpnbridge destroy` with the old region first, then apply with the new one",
            e.kind, e.id, e.place, config.aws.region
        ));
    }
    out
}

/// Declared prefixes that the real network does not contain.
fn undeclared<'a>(declared: &'a [Ipv4Net], actual: &'a [IpNet]) -> impl Iterator<Item = &'a Ipv4Net> {
    declared.iter().filter(|p| !actual.iter().any(|a| a.contains(&IpNet::V4(**p))))
}

/// Whose a resource that is not ours is, for a message, and what to say about a rename
/// when it carries another deployment's tag.
fn whose(config: &Config, tags: &Tags) -> (String, Option<String>) {
    match tags.get(TAG_DEPLOYMENT) {
        None => ("it has no vpnbridge:deployment tag".to_owned(), None),
        Some(other) => (
            format!("its vpnbridge:deployment tag names deployment \"{other}\", not \"{}\"", config.name),
            Some(format!(
                "If you renamed the deployment, set name = \"{other}\" back in {} (names cannot change in place), or run \
                 `vpnbridge destroy` with name = \"{other}\" first",
                config.source.display()
            )),
        ),
    }
}

/// A customer gateway not ours that EC2 would return for the one of Azure instance `k`
/// (its `ip`, the configured ASN, our device name): the plan would create ours and
/// the executor stop on someone else's mid-apply, so it is refused here, before any
/// change. (The executor keeps its check: one may appear between plan and apply.)
pub(super) fn customer_gateway_in_the_way(config: &Config, aws: &AwsObserved, k: u8, ip: Ipv4Addr) -> Vec<String> {
    let device_name = Names::new(&config.name).cgw_device_name(k);
    let asn = config.azure.asn;
    aws.foreign_customer_gateways
        .iter()
        .filter(|c| c.returned_for(ip, asn, &device_name))
        .map(|c| {
            let users: Vec<&str> =
                aws.vpn_connections.iter().filter(|v| v.customer_gateway_id == c.id && !v.state.is_gone()).map(|v| v.id.as_str()).collect();
            let users =
                if users.is_empty() { String::new() } else { format!(" This deployment's VPN connection {} uses it.", users.join(", ")) };
            let (whose, renamed) = whose(config, &c.tags);
            let fix = renamed.map_or_else(
                || {
                    format!(
                        "Tag it vpnbridge:deployment={} and vpnbridge:role={} to let this deployment use it, or delete it \
                         (after the VPN connections on it)",
                        config.name,
                        Role::CustomerGateway(k)
                    )
                },
                |r| format!("{r}; or delete it (after the VPN connections on it)"),
            );
            format!(
                "customer gateway {} has the IP {ip} and ASN {asn} that this deployment needs for Azure instance {k}, but is \
                 not this deployment's ({whose}): EC2 would return it for ours.{users} {fix}",
                c.id
            )
        })
        .collect()
}

/// VPN connections not ours between this deployment's customer gateway `cgw` (of Azure
/// instance `k`) and its VGW `vgw`: EC2 allows one VPN connection between the same two
/// gateways (`InvalidOption.Conflict`), so vpn-k cannot be created beside one, nor our
/// `moved` one (on a customer gateway being replaced) moved onto `cgw`.
pub(super) fn vpn_connections_between(config: &Config, aws: &AwsObserved, k: u8, cgw: &str, vgw: &str, moved: Option<&str>) -> Vec<String> {
    let role = Role::VpnConnection(k);
    let blocked =
        moved.map_or_else(|| format!("{role} cannot be created beside it"), |id| format!("{id} ({role}) cannot be moved onto {cgw}"));
    aws.foreign_vpn_connections
        .iter()
        .filter(|v| v.customer_gateway_id == cgw && v.vpn_gateway_id == vgw && v.state != AwsState::Deleted)
        .map(|v| {
            let (whose, renamed) = whose(config, &v.tags);
            let fix = match (v.state, renamed) {
                (AwsState::Deleting, _) => "It is being deleted: apply again once it is gone".to_owned(),
                (_, Some(r)) => format!("{r}; or delete it"),
                (_, None) => format!(
                    "Delete it, or tag it vpnbridge:deployment={} and vpnbridge:role={} to let this deployment adopt it (its \
                     tunnels are then set as {} says)",
                    config.name,
                    Role::VpnConnection(k),
                    config.source.display()
                ),
            };
            format!(
                "VPN connection {} joins this deployment's customer gateway {cgw} (Azure instance {k}) and virtual private \
                 gateway {vgw}, but is not this deployment's ({whose}): EC2 allows one VPN connection between the same two \
                 gateways, so {blocked}. {fix}",
                v.id
            )
        })
        .collect()
}

/// VPN connections not ours on this deployment's VGW `vgw` whose tunnels hold one of
/// the inside CIDRs `wanted` that `what` pins there (vpn-k's create, or one tunnel's
/// modification): EC2 gives an inside CIDR to one VPN connection per VGW
/// (`InvalidCidr.InUse`), so the run would stop there.
pub(super) fn inside_cidrs_in_use(config: &Config, aws: &AwsObserved, vgw: &str, wanted: &[Ipv4Net], what: &str) -> Vec<String> {
    let file = config.source.display();
    aws.foreign_vpn_connections
        .iter()
        .filter(|v| v.vpn_gateway_id == vgw && v.state != AwsState::Deleted)
        .filter_map(|v| {
            let held: Vec<&Ipv4Net> = v.inside_cidrs.iter().filter(|c| wanted.contains(c)).collect();
            if held.is_empty() {
                return None;
            }
            let (whose, renamed) = whose(config, &v.tags);
            let fix = match (v.state, renamed) {
                (AwsState::Deleting, _) => "It is being deleted: apply again once it is gone".to_owned(),
                (_, Some(r)) => format!("{r}; or delete it, or list other /30s in aws.tunnel_inside_cidrs"),
                (_, None) => format!(
                    "Delete it or give its tunnels other inside CIDRs, or list other /30s in aws.tunnel_inside_cidrs in {file}{}",
                    if config.mode == crate::config::Mode::BgpHa { " (bgp-ha: inside 169.254.21.0-169.254.22.255)" } else { "" }
                ),
            };
            Some(format!(
                "VPN connection {} on this deployment's virtual private gateway {vgw} holds the tunnel inside {} {} that {what} \
                 needs, but is not this deployment's ({whose}): EC2 gives an inside CIDR to one VPN connection per virtual \
                 private gateway. {fix}",
                v.id,
                if held.len() == 1 { "CIDR" } else { "CIDRs" },
                join(&held)
            ))
        })
        .collect()
}

/// VPN connections not ours on this deployment's customer gateway `cgw`, which `by`
/// deletes ("this plan", "destroy"): EC2 does not delete a customer gateway in use
/// (`DependencyViolation`), so the run would stop there.
/// VPN connections not ours on our virtual private gateway `vgw`, which destroy
/// deletes: EC2 deletes no VGW with a VPN connection (`IncorrectState`).
pub(super) fn vpn_connections_on_vgw(config: &Config, aws: &AwsObserved, vgw: &str) -> Vec<String> {
    aws.foreign_vpn_connections
        .iter()
        .filter(|v| v.vpn_gateway_id == vgw && v.state != AwsState::Deleted)
        .map(|v| {
            let (whose, _) = whose(config, &v.tags);
            let fix = if v.state == AwsState::Deleting {
                "it is being deleted: run destroy again once it is gone"
            } else {
                "delete that VPN connection first (it is not this deployment's to delete)"
            };
            format!(
                "VPN connection {} uses this deployment's virtual private gateway {vgw}, which destroy deletes, but is not \
                 this deployment's ({whose}): EC2 does not delete a virtual private gateway with a VPN connection; {fix}",
                v.id
            )
        })
        .collect()
}

pub(super) fn vpn_connections_on(config: &Config, aws: &AwsObserved, cgw: &str, by: &str) -> Vec<String> {
    aws.foreign_vpn_connections
        .iter()
        .filter(|v| v.customer_gateway_id == cgw && v.state != AwsState::Deleted)
        .map(|v| {
            let (whose, _) = whose(config, &v.tags);
            let fix = if v.state == AwsState::Deleting {
                "it is being deleted: run again once it is gone".to_owned()
            } else {
                "delete that VPN connection, or move it to another customer gateway (ModifyVpnConnection), first".to_owned()
            };
            format!(
                "VPN connection {} uses this deployment's customer gateway {cgw}, which {by} deletes, but is not this \
                 deployment's ({whose}): EC2 does not delete a customer gateway in use; {fix}",
                v.id
            )
        })
        .collect()
}
