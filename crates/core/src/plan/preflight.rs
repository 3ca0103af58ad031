//! Cross-checks of the config against what the clouds hold, before any step: the
//! declared networks against the real VNet and VPC, things in the way, and this
//! deployment's resources found outside the scope the config now names.

use ipnet::{IpNet, Ipv4Net};

use crate::config::{Config, overlaps};
use crate::model::{AttachmentState, Owner};
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
