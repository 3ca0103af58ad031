//! The planner's property (issue 12, "A library people can build on"): from any state
//! the clouds can be found in, `plan` either refuses, naming what is in the way and
//! having made no call, or its plan, once executed, leaves nothing to do; and no step
//! touches anything that is not ours.
//!
//! A case starts from a correct deployment, applied by vpnbridge on the simulator, in
//! either mode: static-ha (the example: one tunnel per VPN connection, static routes) or
//! bgp-ha (the example's bgp-ha variant: four tunnels, BGP over APIPA, dynamic VPN
//! connections, our VGW's routes propagated into the route table). Then
//! each of its resources is kept, taken away (with what cannot exist without it: a
//! Connection without its gateway, a VPN connection without its VGW), left in progress
//! (Azure `Updating`, AWS `pending` / `attaching`), `Failed` (Azure), being deleted, or
//! handed to a stranger (our name without our tag, or with another deployment's); and
//! foreign things are put beside it or in its way (an unrelated VGW on our VPC, someone
//! else's gateway in our VNet, unrelated IPs, gateways and routes). A stranger's CGW or
//! VPN connection stays where ours was: a CGW with our Azure address and ASN (which EC2
//! returns for ours), a VPN connection on our CGW (EC2 allows one per CGW and VGW, and
//! deletes no CGW in use) or on our VGW (in bgp-ha it holds the inside CIDRs the plan
//! pins for ours, which EC2 gives to one VPN connection per VGW). Route propagation
//! (bgp-ha) is kept or disabled out of band, whatever becomes of the attachment (EC2
//! does not document whether a VGW's detachment ends its propagation, so both are
//! cases).
//!
//! No state the cases can reach is left out as a known gap of the planner. One found
//! that the planner cannot handle yet would be listed here with why, and left out in
//! [`applicable`] behind an environment switch (so it can still be run to check a
//! fix) until it is fixed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use vpnbridge_core::config::{Config, Mode};
use vpnbridge_core::endpoint::{Aws, Azure, VpnEndpoint};
use vpnbridge_core::exec::{ExecSettings, Executor};
use vpnbridge_core::model::{AttachmentState, AwsState, Owner, ProvisioningState, Role, TAG_DEPLOYMENT, Tags};
use vpnbridge_core::pairing::{self, Names};
use vpnbridge_core::plan::{self, Observed};
use vpnbridge_core::verify::{DataPlane, VerifyResult};
use vpnbridge_sim::world::{AwsCgw, AwsVgw, AwsVpnConnection, AzConnection, AzGateway, AzLng, AzPublicIp, Phase};
use vpnbridge_sim::{AwsTarget, AzureTarget, SimAws, SimAzure, SimCloud, SimProbe, VnetSpec, VpcSpec};

/// Cases run, of both modes together (each applies a deployment, plans and executes
/// once more); `VPNBRIDGE_PLANNER_CASES` runs more, `VPNBRIDGE_PLANNER_SEED` others.
const CASES: u32 = 256;

/// The example config in `mode` (bgp-ha: four tunnels with BGP).
fn config(mode: Mode) -> Config {
    let text = vpnbridge_core::config::example(mode).replace("psk = \"generate\"", "psk = \"env:PLANNER_PSK\"");
    vpnbridge_core::config::parse(&text, Path::new("planner.toml"), &|k| (k == "PLANNER_PSK").then(|| "Planner.Key_0001".to_owned()))
        .unwrap()
        .config
}

/// One resource of the example deployment in either mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ours {
    PublicIp(u8),
    Gateway,
    /// The LocalNetworkGateway of tunnel t of VPN connection k.
    Lng(u8, u8),
    /// The Connection of tunnel t of VPN connection k.
    Connection(u8, u8),
    Vgw,
    /// The VGW's attachment to the VPC.
    Attachment,
    /// static-ha: the VPC routes to the Azure prefixes via our VGW.
    VpcRoutes,
    /// bgp-ha: the route table's propagation of our VGW's routes (its
    /// `PropagatingVgws` entry: untaggable, ours through the VGW, no state of its own).
    Propagation,
    Cgw(u8),
    Vpn(u8),
    /// static-ha: a VPN connection's static routes.
    VpnRoutes(u8),
}

use Ours::{Attachment, Cgw, Connection, Gateway, Lng, Propagation, PublicIp, Vgw, VpcRoutes, Vpn, VpnRoutes};

/// Every resource of the example deployment in `mode`: the Azure tunnels' LNGs and
/// Connections for each used tunnel, and the routes its mode uses (static routes in
/// the VPC and on the VPN connections, or route propagation).
fn all(mode: Mode) -> Vec<Ours> {
    let tunnels = config(mode).tunnels_per_connection;
    let mut out = vec![PublicIp(0), PublicIp(1), Gateway];
    for k in 0..2 {
        out.extend((0..tunnels).flat_map(|t| [Lng(k, t), Connection(k, t)]));
    }
    out.extend([Vgw, Attachment]);
    out.push(match mode {
        Mode::StaticHa => VpcRoutes,
        Mode::BgpHa => Propagation,
    });
    for k in 0..2 {
        out.extend([Cgw(k), Vpn(k)]);
        if mode == Mode::StaticHa {
            out.push(VpnRoutes(k));
        }
    }
    out
}

impl Ours {
    /// What cannot exist without it, of the resources `all`.
    fn dependents(self, all: &[Ours]) -> Vec<Ours> {
        all.iter()
            .copied()
            .filter(|&d| match (self, d) {
                (PublicIp(_), Gateway) | (Gateway, Connection(..)) => true,
                (Lng(k, t), Connection(j, u)) => (k, t) == (j, u),
                (Vgw, Attachment | VpcRoutes | Propagation | Vpn(_)) => true,
                (Attachment, VpcRoutes) => true,
                (Cgw(k), Vpn(j)) | (Vpn(k), VpnRoutes(j)) => k == j,
                _ => false,
            })
            .collect()
    }

    /// The longest the clouds usually take to create or delete it, in seconds (well
    /// inside the executor's deadlines).
    fn longest_change(self) -> u64 {
        match self {
            Gateway => 45 * 60,
            PublicIp(_) | Lng(..) | Connection(..) | Vgw | Vpn(_) => 10 * 60,
            Attachment | Cgw(_) => 2 * 60,
            VpcRoutes | Propagation | VpnRoutes(_) => 60,
        }
    }

    fn is_azure(self) -> bool {
        matches!(self, PublicIp(_) | Gateway | Lng(..) | Connection(..))
    }

    /// The Azure name of an Azure resource.
    fn azure_name(self, names: &Names) -> String {
        match self {
            PublicIp(k) => names.public_ip(k),
            Gateway => names.gateway(),
            Lng(k, t) => names.local_network_gateway(k, t),
            Connection(k, t) => names.connection(k, t),
            _ => unreachable!("{self:?} is not an Azure resource"),
        }
    }
}

/// What becomes of one of our resources before the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Kept,
    Gone,
    /// Still being created or updated, for this many more seconds.
    InProgress(u64),
    /// Azure provisioning state Failed.
    Failed,
    /// Being deleted, for this many more seconds.
    Deleting(u64),
    /// Someone else's now.
    Stranger(Stranger),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stranger {
    /// Our name, no tag.
    Untagged,
    /// Our name, another deployment's tag.
    OtherDeployment,
}

/// Foreign things added beside the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Extra {
    /// An untagged VGW attached to our VPC (when ours is not attached): in the way.
    VgwOnOurVpc,
    /// Someone else's VPN gateway in our GatewaySubnet (when ours is gone): in the way.
    GatewayInOurVnet,
    /// An untagged, unattached VGW.
    LoneVgw,
    /// An untagged CGW on another address.
    Cgw,
    /// An untagged public IP, LNG, and a route of someone else's in our route table.
    PublicIp,
    Lng,
    Route,
}

#[derive(Debug, Clone)]
struct Case {
    mode: Mode,
    /// What becomes of each of [`all`]`(mode)`.
    fates: BTreeMap<Ours, Fate>,
    extras: Vec<Extra>,
}

fn fate() -> impl Strategy<Value = Fate> {
    let stranger = prop_oneof![Just(Stranger::Untagged), Just(Stranger::OtherDeployment)];
    prop_oneof![
        5 => Just(Fate::Kept),
        3 => Just(Fate::Gone),
        2 => (0u64..10_000).prop_map(Fate::InProgress),
        1 => Just(Fate::Failed),
        1 => (0u64..10_000).prop_map(Fate::Deleting),
        1 => stranger.prop_map(Fate::Stranger),
    ]
}

fn extra() -> impl Strategy<Value = Extra> {
    prop_oneof![
        Just(Extra::VgwOnOurVpc),
        Just(Extra::GatewayInOurVnet),
        Just(Extra::LoneVgw),
        Just(Extra::Cgw),
        Just(Extra::PublicIp),
        Just(Extra::Lng),
        Just(Extra::Route),
    ]
}

fn cases() -> impl Strategy<Value = Case> {
    prop_oneof![Just(Mode::StaticHa), Just(Mode::BgpHa)]
        .prop_flat_map(|mode| {
            let ours = all(mode);
            let fates = proptest::collection::vec(fate(), ours.len());
            (Just(mode), Just(ours), fates, proptest::collection::btree_set(extra(), 0..3))
        })
        .prop_map(|(mode, ours, fates, extras)| {
            let mut fates: BTreeMap<Ours, Fate> = ours.iter().zip(fates).map(|(&r, f)| (r, applicable(r, f))).collect();
            // What cannot exist without a resource goes with it.
            for &r in &ours {
                if matches!(fates[&r], Fate::Gone | Fate::Deleting(_)) {
                    let mut stack = r.dependents(&ours);
                    while let Some(d) = stack.pop() {
                        fates.insert(d, Fate::Gone);
                        stack.extend(d.dependents(&ours));
                    }
                }
            }
            Case { mode, fates, extras: extras.into_iter().collect() }
        })
}

/// `f`, or the nearest fate the resource can have.
fn applicable(r: Ours, f: Fate) -> Fate {
    let f = match f {
        Fate::InProgress(s) => Fate::InProgress(1 + s % r.longest_change()),
        Fate::Deleting(s) => Fate::Deleting(1 + s % r.longest_change()),
        f => f,
    };
    match (r, f) {
        // Routes and route propagation have no state of their own and no tags (EC2
        // enables and disables propagation at once).
        (VpcRoutes | Propagation, Fate::Deleting(_)) => Fate::Gone,
        (VpcRoutes | Propagation, Fate::InProgress(_) | Fate::Failed | Fate::Stranger(_)) => Fate::Kept,
        (Attachment | VpnRoutes(_), Fate::Failed | Fate::Stranger(_)) => Fate::Kept,
        // AWS has no Failed state for these.
        (_, Fate::Failed) if !r.is_azure() => Fate::Kept,
        _ => f,
    }
}

/// A resource of the simulated world with a provisioning phase and tags.
trait Resource<S> {
    fn phase(&mut self) -> &mut Phase<S>;
    fn tags(&mut self) -> &mut Tags;
}

macro_rules! resource {
    ($t:ty, $s:ty) => {
        impl Resource<$s> for $t {
            fn phase(&mut self) -> &mut Phase<$s> {
                &mut self.phase
            }
            fn tags(&mut self) -> &mut Tags {
                &mut self.tags
            }
        }
    };
}
resource!(AzPublicIp, ProvisioningState);
resource!(AzGateway, ProvisioningState);
resource!(AzLng, ProvisioningState);
resource!(AzConnection, ProvisioningState);
resource!(AwsVgw, AwsState);
resource!(AwsCgw, AwsState);
resource!(AwsVpnConnection, AwsState);

fn strange(tags: &mut Tags, s: Stranger) {
    match s {
        Stranger::Untagged => tags.clear(),
        Stranger::OtherDeployment => {
            tags.insert(TAG_DEPLOYMENT.to_owned(), "someone-else".to_owned());
        }
    }
}

/// Applies `fate` to the resource with key `id` of `map`.
fn azure_fate<T: Resource<ProvisioningState>>(map: &mut BTreeMap<String, T>, id: &str, fate: Fate, now: u64) {
    match fate {
        Fate::Kept => {}
        Fate::Gone => {
            map.remove(id);
        }
        Fate::InProgress(s) => *map.get_mut(id).unwrap().phase() = Phase::timed(ProvisioningState::Updating, now, s * 1000),
        Fate::Failed => *map.get_mut(id).unwrap().phase() = Phase::stable(ProvisioningState::Failed, now),
        Fate::Deleting(s) => *map.get_mut(id).unwrap().phase() = Phase::timed(ProvisioningState::Deleting, now, s * 1000),
        Fate::Stranger(s) => strange(map.get_mut(id).unwrap().tags(), s),
    }
}

fn aws_fate<T: Resource<AwsState>>(map: &mut BTreeMap<String, T>, id: &str, fate: Fate, now: u64) {
    match fate {
        Fate::Kept | Fate::Failed => {}
        Fate::Gone => {
            map.remove(id);
        }
        Fate::InProgress(s) => *map.get_mut(id).unwrap().phase() = Phase::timed(AwsState::Pending, now, s * 1000),
        Fate::Deleting(s) => *map.get_mut(id).unwrap().phase() = Phase::timed(AwsState::Deleting, now, s * 1000),
        Fate::Stranger(s) => strange(map.get_mut(id).unwrap().tags(), s),
    }
}

/// The id (the world's key) of the Azure resource named `name` in `map`.
fn by_name<T>(map: &BTreeMap<String, T>, name: &str, name_of: impl Fn(&T) -> &str) -> String {
    map.iter().find(|(_, r)| name_of(r) == name).map(|(id, _)| id.clone()).unwrap_or_else(|| panic!("no {name}"))
}

fn by_role<T>(map: &BTreeMap<String, T>, owner: &Owner, role: &Role, tags_of: impl Fn(&T) -> &Tags) -> String {
    let want = owner.tags(role);
    map.iter().find(|(_, r)| tags_of(r) == &want).map(|(id, _)| id.clone()).unwrap_or_else(|| panic!("no {role:?}"))
}

/// What the case put in the way (each must be named by the refusal), and the
/// identifiers of every foreign thing (none may appear in a plan).
#[derive(Debug, Default)]
struct Strangers {
    in_the_way: Vec<String>,
    all: Vec<String>,
}

/// Whether our CGW or VPN connection `r`, handed to a stranger, is in the way of the
/// plan: a CGW with instance k's address (unchanged) and our ASN is what EC2 returns for
/// ours; a VPN connection on our CGW k either joins it to our VGW again (EC2 allows one
/// per pair) or sits on a CGW the plan replaces (EC2 does not delete one in use); one
/// still on our VGW holds the inside CIDRs that `config` pins for vpn-k (bgp-ha always
/// does), which EC2 gives to one VPN connection per VGW.
fn aws_stranger_in_the_way(config: &Config, case: &Case, r: Ours) -> bool {
    // Instance k keeps its address unless its public IP is made anew (gone, being
    // deleted, or its name taken by a stranger).
    let address_kept = |k: u8| !matches!(case.fates[&PublicIp(k)], Fate::Gone | Fate::Deleting(_) | Fate::Stranger(_));
    let stranger = |r: Ours| matches!(case.fates[&r], Fate::Stranger(_));
    match r {
        Cgw(k) => address_kept(k),
        Vpn(k) => {
            let pinned = config.layout().pins(k).iter().any(Option::is_some);
            (!stranger(Cgw(k)) && (!stranger(Vgw) || !address_kept(k))) || (pinned && !stranger(Vgw))
        }
        _ => false,
    }
}

/// Turns the deployment into the case's state.
fn stage(cloud: &SimCloud, config: &Config, case: &Case) -> Strangers {
    let owner = Owner::new(&config.name);
    let names = Names::new(&config.name);
    let mut strangers = Strangers::default();
    let vgw_live_attachment = cloud.with_world_mut(|w| {
        let now = w.now_ms;
        let vgw = by_role(&w.aws.vpn_gateways, &owner, &Role::VirtualPrivateGateway, |v| &v.tags);
        for (&r, &fate) in &case.fates {
            if let Fate::Stranger(_) = fate {
                let id = match r {
                    _ if r.is_azure() => r.azure_name(&names),
                    Cgw(k) => by_role(&w.aws.customer_gateways, &owner, &Role::CustomerGateway(k), |c| &c.tags),
                    Vpn(k) => by_role(&w.aws.vpn_connections, &owner, &Role::VpnConnection(k), |v| &v.tags),
                    _ => vgw.clone(),
                };
                strangers.all.push(id.clone());
                // An Azure name taken by a stranger, and a VGW of a stranger's on our
                // VPC, are in the way (the VGW only while it is attached: see below);
                // so are a stranger's CGW or VPN connection where the plan needs ours.
                if r.is_azure() || aws_stranger_in_the_way(config, case, r) {
                    strangers.in_the_way.push(id);
                }
            }
            match r {
                PublicIp(_) => {
                    let id = by_name(&w.azure.public_ips, &r.azure_name(&names), |p| &p.name);
                    azure_fate(&mut w.azure.public_ips, &id, fate, now);
                }
                Gateway => {
                    let id = by_name(&w.azure.gateways, &r.azure_name(&names), |g| &g.name);
                    azure_fate(&mut w.azure.gateways, &id, fate, now);
                }
                Lng(..) => {
                    let id = by_name(&w.azure.local_network_gateways, &r.azure_name(&names), |l| &l.name);
                    azure_fate(&mut w.azure.local_network_gateways, &id, fate, now);
                }
                Connection(..) => {
                    let id = by_name(&w.azure.connections, &r.azure_name(&names), |c| &c.name);
                    azure_fate(&mut w.azure.connections, &id, fate, now);
                }
                Vgw => aws_fate(&mut w.aws.vpn_gateways, &vgw, fate, now),
                Attachment => {
                    let Some(v) = w.aws.vpn_gateways.get_mut(&vgw) else { continue };
                    let a = v.attachments.iter_mut().find(|a| a.phase.state == AttachmentState::Attached).unwrap();
                    match fate {
                        Fate::Gone => a.phase = Phase::stable(AttachmentState::Detached, now),
                        Fate::InProgress(s) => a.phase = Phase::timed(AttachmentState::Attaching, now, s * 1000),
                        Fate::Deleting(s) => a.phase = Phase::timed(AttachmentState::Detaching, now, s * 1000),
                        _ => {}
                    }
                }
                VpcRoutes => {
                    if fate == Fate::Gone {
                        for t in w.aws.route_tables.values_mut() {
                            t.routes.retain(|r| r.target != vgw);
                        }
                    }
                }
                // Disabled out of band.
                Propagation => {
                    if fate == Fate::Gone {
                        for t in w.aws.route_tables.values_mut() {
                            t.propagating_vgws.retain(|v| *v != vgw);
                        }
                    }
                }
                Cgw(k) => {
                    let id = by_role(&w.aws.customer_gateways, &owner, &Role::CustomerGateway(k), |c| &c.tags);
                    aws_fate(&mut w.aws.customer_gateways, &id, fate, now);
                }
                Vpn(k) => {
                    let id = by_role(&w.aws.vpn_connections, &owner, &Role::VpnConnection(k), |v| &v.tags);
                    aws_fate(&mut w.aws.vpn_connections, &id, fate, now);
                }
                VpnRoutes(k) => {
                    let want = owner.tags(&Role::VpnConnection(k));
                    let Some(v) = w.aws.vpn_connections.values_mut().find(|v| v.tags == want) else { continue };
                    match fate {
                        Fate::Gone => v.routes.clear(),
                        Fate::InProgress(s) => v.routes.iter_mut().for_each(|r| r.phase = Phase::timed(AwsState::Pending, now, s * 1000)),
                        Fate::Deleting(s) => v.routes.iter_mut().for_each(|r| r.phase = Phase::timed(AwsState::Deleting, now, s * 1000)),
                        _ => {}
                    }
                }
            }
        }
        // Attaching or attached: one still detaching is on its way out, and EC2 lets
        // another VGW attach meanwhile.
        w.aws.vpn_gateways.get(&vgw).is_some_and(|v| {
            !v.phase.state.is_gone()
                && v.live_attachment().is_some_and(|a| matches!(a.phase.state, AttachmentState::Attaching | AttachmentState::Attached))
        })
    });
    if case.fates[&Vgw] == Fate::Stranger(Stranger::Untagged) || case.fates[&Vgw] == Fate::Stranger(Stranger::OtherDeployment) {
        let vgw = strangers.all.iter().find(|s| s.starts_with("vgw-")).unwrap().clone();
        if vgw_live_attachment {
            strangers.in_the_way.push(vgw);
        }
    }

    let target = AzureTarget::from_config(config);
    let rtb = cloud.with_world(|w| w.aws.route_tables.keys().next().cloned().unwrap());
    let our_gateway_gone = case.fates[&Gateway] == Fate::Gone;
    for e in &case.extras {
        match e {
            Extra::VgwOnOurVpc if !vgw_live_attachment && !matches!(case.fates[&Vgw], Fate::Stranger(_)) => {
                let id = cloud.add_foreign_vpn_gateway(Some(&config.aws.vpc_id));
                strangers.in_the_way.push(id.clone());
                strangers.all.push(id);
            }
            Extra::VgwOnOurVpc | Extra::LoneVgw => strangers.all.push(cloud.add_foreign_vpn_gateway(None)),
            Extra::GatewayInOurVnet if our_gateway_gone => {
                let name = "someone-elses-vpngw".to_owned();
                cloud.add_foreign_virtual_network_gateway(&target, &name).unwrap();
                strangers.in_the_way.push(name.clone());
                strangers.all.push(name);
            }
            Extra::GatewayInOurVnet | Extra::PublicIp => {
                cloud.add_foreign_public_ip(&target, "someone-elses-pip");
                strangers.all.push("someone-elses-pip".to_owned());
            }
            Extra::Cgw => strangers.all.push(cloud.add_foreign_customer_gateway([198, 51, 100, 7].into(), 65000)),
            Extra::Lng => {
                cloud.add_foreign_local_network_gateway(
                    &target,
                    "someone-elses-lng",
                    [198, 51, 100, 8].into(),
                    &["172.16.0.0/16".parse().unwrap()],
                );
                strangers.all.push("someone-elses-lng".to_owned());
            }
            Extra::Route => cloud.add_foreign_route(&rtb, "192.168.0.0/16".parse().unwrap(), "igw-0123456789abcdef0").unwrap(),
        }
    }
    strangers
}

/// Everything in the world that is not ours: every resource without our deployment
/// tag, every route not via a VGW of ours, and every route table's propagation of a
/// VGW not ours.
fn foreign(cloud: &SimCloud, owner: &Owner) -> serde_json::Value {
    cloud.with_world(|w| foreign_in(w, owner))
}

fn foreign_in(w: &vpnbridge_sim::world::World, owner: &Owner) -> serde_json::Value {
    let not_ours = |t: &Tags| !owner.owns(t);
    let json = |v: serde_json::Result<serde_json::Value>| v.unwrap();
    let mut out = BTreeMap::<String, serde_json::Value>::new();
    for v in w.aws.vpn_gateways.values().filter(|v| not_ours(&v.tags)) {
        out.insert(v.id.clone(), json(serde_json::to_value(v)));
    }
    for c in w.aws.customer_gateways.values().filter(|c| not_ours(&c.tags)) {
        out.insert(c.id.clone(), json(serde_json::to_value(c)));
    }
    for v in w.aws.vpn_connections.values().filter(|v| not_ours(&v.tags)) {
        out.insert(v.id.clone(), json(serde_json::to_value(v)));
    }
    for p in w.azure.public_ips.values().filter(|p| not_ours(&p.tags)) {
        out.insert(p.id.clone(), json(serde_json::to_value(p)));
    }
    for g in w.azure.gateways.values().filter(|g| not_ours(&g.tags)) {
        out.insert(g.id.clone(), json(serde_json::to_value(g)));
    }
    for l in w.azure.local_network_gateways.values().filter(|l| not_ours(&l.tags)) {
        out.insert(l.id.clone(), json(serde_json::to_value(l)));
    }
    for c in w.azure.connections.values().filter(|c| not_ours(&c.tags)) {
        out.insert(c.id.clone(), json(serde_json::to_value(c)));
    }
    let our_vgws: Vec<&String> = w.aws.vpn_gateways.values().filter(|v| owner.owns(&v.tags)).map(|v| &v.id).collect();
    for t in w.aws.route_tables.values() {
        for r in t.routes.iter().filter(|r| !our_vgws.contains(&&r.target)) {
            out.insert(format!("{} {}", t.id, r.destination), json(serde_json::to_value(r)));
        }
        for v in t.propagating_vgws.iter().filter(|v| !our_vgws.contains(v)) {
            out.insert(format!("{} propagates {v}", t.id), serde_json::Value::Bool(true));
        }
    }
    serde_json::to_value(out).unwrap()
}

/// What the deployment is made of, without ids and addresses (which a re-created
/// resource changes, unlike the BGP addresses, which come from the config): our live
/// resources by name or role, with their settled state and BGP settings, the VPN
/// connections' routing and routes, the VPC routes via our VGW and the route tables
/// that propagate it.
fn shape(cloud: &SimCloud, owner: &Owner) -> Vec<String> {
    cloud.with_world(|w| {
        let mut out = Vec::new();
        let role = |t: &Tags| t.get(vpnbridge_core::model::TAG_ROLE).cloned().unwrap_or_default();
        out.extend(w.azure.public_ips.values().filter(|p| owner.owns(&p.tags)).map(|p| format!("{} {:?}", p.name, p.phase.state)));
        for g in w.azure.gateways.values().filter(|g| owner.owns(&g.tags)) {
            let custom: Vec<_> = g.bgp_peering_addresses.iter().map(|a| &a.custom).collect();
            out.push(format!("{} {:?} {} bgp {} {:?} {custom:?}", g.name, g.phase.state, g.sku, g.enable_bgp, g.asn));
        }
        out.extend(
            w.azure
                .local_network_gateways
                .values()
                .filter(|l| owner.owns(&l.tags))
                .map(|l| format!("{} {:?} {:?} {:?}", l.name, l.phase.state, l.address_prefixes, l.bgp)),
        );
        for c in w.azure.connections.values().filter(|c| owner.owns(&c.tags)) {
            let mut custom: Vec<_> = c.custom_bgp_addresses.iter().map(|a| a.address).collect();
            custom.sort();
            out.push(format!("{} {:?} bgp {} {custom:?}", c.name, c.phase.state, c.enable_bgp));
        }
        let vgws: Vec<&AwsVgw> = w.aws.vpn_gateways.values().filter(|v| owner.owns(&v.tags) && !v.phase.state.is_gone()).collect();
        for v in &vgws {
            let attached: Vec<String> = v
                .attachments
                .iter()
                .filter(|a| a.phase.state != AttachmentState::Detached)
                .map(|a| format!("{} {:?}", a.vpc_id, a.phase.state))
                .collect();
            out.push(format!("{} {:?} {attached:?}", role(&v.tags), v.phase.state));
        }
        out.extend(
            w.aws
                .customer_gateways
                .values()
                .filter(|c| owner.owns(&c.tags) && !c.phase.state.is_gone())
                .map(|c| format!("{} {:?}", role(&c.tags), c.phase.state)),
        );
        for v in w.aws.vpn_connections.values().filter(|v| owner.owns(&v.tags) && !v.phase.state.is_gone()) {
            let routes: Vec<String> = v.routes.iter().map(|r| format!("{} {:?}", r.destination, r.phase.state)).collect();
            out.push(format!("{} {:?} static {} {routes:?}", role(&v.tags), v.phase.state, v.static_routes_only));
        }
        for t in w.aws.route_tables.values() {
            out.extend(
                t.routes.iter().filter(|r| vgws.iter().any(|v| v.id == r.target)).map(|r| format!("route {} via our VGW", r.destination)),
            );
            if t.propagating_vgws.iter().any(|p| vgws.iter().any(|v| v.id == *p)) {
                out.push(format!("{} propagates our VGW", t.id));
            }
        }
        out.sort();
        out
    })
}

fn endpoints(cloud: &SimCloud, config: &Config) -> (Arc<dyn VpnEndpoint<Aws>>, Arc<dyn VpnEndpoint<Azure>>) {
    (
        Arc::new(SimAws::new(cloud.clone(), AwsTarget::from_config(config))),
        Arc::new(SimAzure::new(cloud.clone(), AzureTarget::from_config(config))),
    )
}

async fn observe(cloud: &SimCloud, config: &Config) -> Observed {
    let (aws, azure) = endpoints(cloud, config);
    vpnbridge_core::exec::observe(&*aws, &*azure, &Owner::new(&config.name), &ExecSettings::default()).await.unwrap()
}

/// Plans and executes; panics with the plan unless the run succeeds.
async fn apply(cloud: &SimCloud, config: &Config, plan: &plan::Plan) {
    let (aws, azure) = endpoints(cloud, config);
    let report = Executor::new(aws, azure, Owner::new(&config.name), ExecSettings::default()).run(plan, |_| {}).await;
    assert!(report.succeeded(), "the plan failed:\n{plan}\n{report:?}");
}

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Refused,
    /// The plan was empty from the start.
    NothingToDo,
    Converged,
}

async fn check(case: Case) -> Result<Outcome, TestCaseError> {
    let config = config(case.mode);
    let owner = Owner::new(&config.name);
    let cloud = SimCloud::in_memory();
    cloud.ensure_prerequisites(&VnetSpec::from_config(&config), &VpcSpec::from_config(&config)).unwrap();
    let first = plan::plan_apply(&config, &observe(&cloud, &config).await).unwrap();
    apply(&cloud, &config, &first).await;
    let base = shape(&cloud, &owner);
    // bgp-ha routes by propagation only, static-ha by static routes only.
    let propagates = base.iter().any(|l| l.ends_with("propagates our VGW"));
    prop_assert_eq!(propagates, case.mode == Mode::BgpHa, "the deployment first applied: {:?}", base);
    prop_assert_eq!(
        base.iter().any(|l| l.contains("via our VGW")),
        case.mode == Mode::StaticHa,
        "the deployment first applied: {:?}",
        base
    );

    let strangers = stage(&cloud, &config, &case);
    // The world as it was, to tell what the plan did from what time did (a stranger's
    // resource left detaching is detached later, whatever the plan does).
    let before = cloud.with_world(Clone::clone);
    let calls_before = cloud.mutating_calls();
    let planned = plan::plan_apply(&config, &observe(&cloud, &config).await);
    let plan = match planned {
        Err(refusal) => {
            prop_assert!(!strangers.in_the_way.is_empty(), "refused with nothing in the way: {refusal}");
            for s in &strangers.in_the_way {
                prop_assert!(refusal.0.iter().any(|m| m.contains(s.as_str())), "the refusal does not name {s}: {refusal}");
            }
            for m in &refusal.0 {
                prop_assert!(strangers.in_the_way.iter().any(|s| m.contains(s.as_str())), "a refusal that names nothing in the way: {m}");
            }
            prop_assert_eq!(cloud.mutating_calls(), calls_before, "a call was made before the refusal");
            return Ok(Outcome::Refused);
        }
        Ok(plan) => plan,
    };
    prop_assert!(strangers.in_the_way.is_empty(), "planned over {:?}:\n{}", strangers.in_the_way, plan);
    // What the steps act on (a disruption may name a stranger, as what it leaves).
    let mut document = plan.document();
    document.steps.iter_mut().for_each(|s| s.disruption = None);
    let json = serde_json::to_string(&document).unwrap();
    for s in &strangers.all {
        prop_assert!(!json.contains(s.as_str()), "a step names {} (not ours):\n{}", s, plan);
    }
    apply(&cloud, &config, &plan).await;
    let observed = observe(&cloud, &config).await;
    let again = plan::plan_apply(&config, &observed).unwrap();
    prop_assert!(again.is_empty(), "not converged after one plan:\n{}\nfirst plan:\n{}", again, plan);
    // What the planner says is done, judged without it: everything of ours settled,
    // every tunnel paired and, a little later, up at both ends.
    let (az, aw) = (&observed.azure, &observed.aws);
    let settled = az.public_ips.iter().map(|p| p.state).chain(az.vpn_gateway.iter().map(|g| g.state));
    let settled = settled.chain(az.local_network_gateways.iter().map(|l| l.state)).chain(az.connections.iter().map(|c| c.state));
    prop_assert!(settled.into_iter().all(|s| s == ProvisioningState::Succeeded), "an Azure resource of ours is not Succeeded:\n{}", plan);
    let live = |s: AwsState| !s.is_gone();
    let aws_states = aw.vpn_gateways.iter().map(|v| v.state).chain(aw.customer_gateways.iter().map(|c| c.state));
    let aws_states =
        aws_states.chain(aw.vpn_connections.iter().flat_map(|v| std::iter::once(v.state).chain(v.routes.iter().map(|r| r.state))));
    prop_assert!(aws_states.filter(|s| live(*s)).all(|s| s == AwsState::Available), "an AWS resource of ours is not available:\n{}", plan);
    let joined = pairing::join(&owner, &config.layout(), az, aw);
    prop_assert!(joined.iter().all(|t| t.problems.is_empty()), "{:?}\n{}", joined.iter().map(|t| &t.problems).collect::<Vec<_>>(), plan);
    prop_assert_eq!(shape(&cloud, &owner), base, "the deployment is not the one first applied:\n{}", plan);
    // And it carries traffic: every tunnel up at both ends, pings both ways.
    tokio::time::sleep(std::time::Duration::from_secs(300)).await;
    let (aws, azure) = endpoints(&cloud, &config);
    let probe = SimProbe::for_config(cloud.clone(), &config).unwrap();
    let report = vpnbridge_core::verify::verify(&config, &*aws, &*azure, DataPlane::Probe(&probe)).await.unwrap();
    prop_assert_eq!(report.result, VerifyResult::Ok, "{:?}\n{}", report.diagnoses, plan);
    let foreign_before = {
        let mut w = before;
        w.advance_to(cloud.with_world(|w| w.now_ms));
        foreign_in(&w, &owner)
    };
    prop_assert_eq!(foreign(&cloud, &owner), foreign_before, "a foreign resource changed");
    Ok(if plan.is_empty() { Outcome::NothingToDo } else { Outcome::Converged })
}

#[test]
fn any_observed_state_is_planned_to_convergence_or_refused_naming_what_is_in_the_way() {
    let count: u32 = std::env::var("VPNBRIDGE_PLANNER_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CASES);
    let config = ProptestConfig {
        cases: count,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(
            std::env::var("VPNBRIDGE_PLANNER_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(20261202),
        ),
        ..ProptestConfig::default()
    };
    // By mode (as its name: `Mode` has no order).
    let outcomes = Arc::new(std::sync::Mutex::new(BTreeMap::<String, BTreeMap<Outcome, u32>>::new()));
    let seen = outcomes.clone();
    proptest!(config, |(case in cases())| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        let mode = case.mode.to_string();
        let outcome = rt.block_on(check(case))?;
        *seen.lock().unwrap().entry(mode).or_default().entry(outcome).or_default() += 1;
    });
    let outcomes = outcomes.lock().unwrap().clone();
    println!("planner property: {count} cases {outcomes:?}");
    for mode in [Mode::StaticHa, Mode::BgpHa] {
        let of_mode = outcomes.get(&mode.to_string()).cloned().unwrap_or_default();
        let cases: u32 = of_mode.values().sum();
        assert!(cases >= count / 4, "too few {mode} cases: {outcomes:?}");
        assert!(of_mode.get(&Outcome::Refused).is_some_and(|n| *n > 0), "no {mode} case was refused: {outcomes:?}");
        assert!(
            of_mode.get(&Outcome::Converged).is_some_and(|n| *n >= cases / 4),
            "too few {mode} cases were planned and run: {outcomes:?}"
        );
    }
}

/// A static-ha case with every resource kept but `fates`, and no extras.
fn only(fates: &[(Ours, Fate)]) -> Case {
    only_in(Mode::StaticHa, fates)
}

/// A case in `mode` with every resource kept but `fates` (each one of [`all`]`(mode)`),
/// and no extras.
fn only_in(mode: Mode, fates: &[(Ours, Fate)]) -> Case {
    let ours = all(mode);
    assert!(fates.iter().all(|(r, _)| ours.contains(r)), "{fates:?} are not all resources of {mode}");
    let mut all: BTreeMap<Ours, Fate> = ours.into_iter().map(|r| (r, Fate::Kept)).collect();
    all.extend(fates.iter().copied());
    Case { mode, fates: all, extras: Vec::new() }
}

/// Runs one case on a paused clock; panics with the property's message unless it ends
/// as `want`.
fn run_case(case: Case, want: Outcome) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    let outcome = rt.block_on(check(case.clone())).unwrap_or_else(|e| panic!("{case:?}: {e}"));
    assert_eq!(outcome, want, "{case:?}");
}

/// A VPN connection still `pending` whose customer gateway must change (the Azure side
/// was rebuilt with new public IPs): EC2 modifies only an `available` connection, so
/// the swap waits for it.
#[test]
fn a_pending_vpn_connection_is_moved_to_its_new_customer_gateway_once_available() {
    let gone = Fate::Gone;
    run_case(
        only(&[(PublicIp(0), gone), (Gateway, gone), (Connection(0, 0), gone), (Connection(1, 0), gone), (Vpn(0), Fate::InProgress(300))]),
        Outcome::Converged,
    );
}

/// A VPN connection of ours gone while its LocalNetworkGateway is still there (also
/// one found updating): the LNG is re-pointed to the new connection's tunnel.
#[test]
fn a_vpn_connection_gone_beside_its_local_network_gateway_is_rebuilt_with_the_lng_re_pointed() {
    run_case(only(&[(Vpn(0), Fate::Gone), (VpnRoutes(0), Fate::Gone)]), Outcome::Converged);
    run_case(only(&[(Vpn(1), Fate::Gone), (VpnRoutes(1), Fate::Gone), (Lng(1, 0), Fate::InProgress(120))]), Outcome::Converged);
}

/// A VPN connection of ours found `deleting` (an interrupted destroy): its successor
/// on the same CGW and VGW is created once it is gone.
#[test]
fn a_vpn_connection_found_deleting_is_waited_out_and_created_again() {
    run_case(only(&[(Vpn(0), Fate::Deleting(300)), (VpnRoutes(0), Fate::Gone)]), Outcome::Converged);
}

/// Our VGW found detaching from our VPC: it is attached again once detached.
#[test]
fn a_detaching_vgw_is_attached_again_once_detached() {
    run_case(only(&[(Attachment, Fate::Deleting(100)), (VpcRoutes, Fate::Gone)]), Outcome::Converged);
}

/// Our VGW handed to a stranger and detached from our VPC: a new one is built, and our
/// VPN connections on the stranger's are replaced by ones on ours.
#[test]
fn vpn_connections_on_a_vgw_no_longer_ours_are_rebuilt_on_ours() {
    for attachment in [Fate::Gone, Fate::Deleting(100)] {
        let stranger = Fate::Stranger(Stranger::Untagged);
        run_case(only(&[(Vgw, stranger), (Attachment, attachment), (VpcRoutes, Fate::Gone)]), Outcome::Converged);
    }
}

/// A public IP of ours found updating or Failed, its address allocated, while the
/// gateway is rebuilt: the address stays, and so do the CGW and VPN connection on it.
#[test]
fn a_public_ip_found_changing_keeps_its_address_and_customer_gateway() {
    for pip in [Fate::InProgress(300), Fate::Failed] {
        run_case(
            only(&[(PublicIp(0), pip), (Gateway, Fate::Gone), (Connection(0, 0), Fate::Gone), (Connection(1, 0), Fate::Gone)]),
            Outcome::Converged,
        );
    }
}

/// A CGW with our Azure address and ASN but not our tag is what EC2 returns for ours:
/// refused up front, naming it. Once instance 0 has a new address it is not in the
/// way, and ours is built beside it.
#[test]
fn a_customer_gateway_not_ours_with_our_address_is_refused_up_front() {
    for s in [Stranger::Untagged, Stranger::OtherDeployment] {
        run_case(only(&[(Cgw(0), Fate::Stranger(s))]), Outcome::Refused);
    }
    let gone = Fate::Gone;
    let new_address = [(PublicIp(0), gone), (Gateway, gone), (Connection(0, 0), gone), (Connection(1, 0), gone)];
    run_case(only(&[&new_address[..], &[(Cgw(0), Fate::Stranger(Stranger::Untagged))]].concat()), Outcome::Converged);
}

/// A VPN connection not ours between our CGW and our VGW: EC2 allows one per pair, so
/// it is refused up front; on someone else's VGW it is in the way only when our CGW
/// under it must be replaced (EC2 does not delete a CGW in use).
#[test]
fn a_vpn_connection_not_ours_on_our_customer_gateway_is_refused_when_in_the_way() {
    let stranger = Fate::Stranger(Stranger::Untagged);
    run_case(only(&[(Vpn(0), stranger)]), Outcome::Refused);
    run_case(only(&[(Vpn(1), Fate::Stranger(Stranger::OtherDeployment))]), Outcome::Refused);
    let their_vgw = [(Vpn(0), stranger), (Vgw, stranger), (Attachment, Fate::Gone), (VpcRoutes, Fate::Gone)];
    run_case(only(&their_vgw), Outcome::Converged);
    let gone = Fate::Gone;
    let new_address = [(PublicIp(0), gone), (Gateway, gone), (Connection(0, 0), gone), (Connection(1, 0), gone)];
    run_case(only(&[&their_vgw[..], &new_address[..]].concat()), Outcome::Refused);
}

/// A VPN connection of ours handed to a stranger on our VGW, its customer gateway too
/// (instance 0's new address leaves that one out of the way): in bgp-ha it still holds
/// the inside CIDRs vpn-0 pins, which EC2 gives to one VPN connection per VGW
/// (`InvalidCidr.InUse`), so the plan is refused up front naming it. In static-ha AWS
/// chooses the new connection's CIDRs, and ours is built beside it.
#[test]
fn a_vpn_connection_not_ours_holding_our_pinned_inside_cidrs_is_refused_up_front() {
    let (gone, stranger) = (Fate::Gone, Fate::Stranger(Stranger::Untagged));
    let new_address = [(PublicIp(0), gone), (Gateway, gone)];
    let theirs = [(Cgw(0), stranger), (Vpn(0), stranger)];
    let bgp_connections = [(Connection(0, 0), gone), (Connection(0, 1), gone), (Connection(1, 0), gone), (Connection(1, 1), gone)];
    run_case(only_in(Mode::BgpHa, &[&new_address[..], &bgp_connections, &theirs].concat()), Outcome::Refused);
    let connections = [(Connection(0, 0), gone), (Connection(1, 0), gone)];
    run_case(only(&[&new_address[..], &connections, &theirs].concat()), Outcome::Converged);
}
