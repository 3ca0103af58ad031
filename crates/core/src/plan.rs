//! The planner: config + observed state -> an immutable [`Plan`].
//!
//! Pure: no I/O, no clock. A plan is a DAG of steps; values known only after an
//! earlier step are [`Late`]. Destroy is the plan for an empty desired state. The plan
//! prints like a Terraform plan and serialises to JSON; neither shows a secret.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use serde::Serialize;

use crate::config::{Config, Mode, PskSource, overlaps};
use crate::endpoint::CloudName;
use crate::model::{AttachmentState, AwsObserved, AwsState, AzureObserved, Owner, ProvisioningState, Role, role_of};
use crate::ops::{AwsOp, AwsResourceKind, AzureOp, AzureResourceKind, Late, OutputField, Planned, StepId, TunnelSpec};
use crate::pairing::{self, INSTANCES, Names, TunnelSlot};
use crate::secret::Psk;

/// Dead Peer Detection timeout set on Azure Connections (Azure's default).
pub const AZURE_DPD_SECONDS: u32 = 45;

/// Both clouds' observed state.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub azure: AzureObserved,
    pub aws: AwsObserved,
}

/// What a step does to its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Modify,
    Delete,
    /// Wait for an operation already in progress (found on observe) to finish.
    Wait,
}

impl Action {
    fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Modify => "~",
            Action::Delete => "-",
            Action::Wait => "…",
        }
    }
    fn verb(self) -> &'static str {
        match self {
            Action::Create => "will be created",
            Action::Modify => "will be updated in place",
            Action::Delete => "will be destroyed",
            Action::Wait => "is already changing; vpnbridge will wait for it",
        }
    }
}

/// A cloud operation, typed per cloud, with late-bound values.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOp {
    Aws(AwsOp<Planned>),
    Azure(AzureOp<Planned>),
}

impl StepOp {
    pub fn cloud(&self) -> CloudName {
        match self {
            StepOp::Aws(_) => CloudName::Aws,
            StepOp::Azure(_) => CloudName::Azure,
        }
    }
}

/// One node of the plan.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: StepId,
    pub action: Action,
    /// Resource type in the user's words (`vpn_connection`, `local_network_gateway`).
    pub resource_type: &'static str,
    /// Name (Azure) or role and id (AWS).
    pub name: String,
    pub op: StepOp,
    /// Steps that must finish first (including every step whose output this one reads).
    pub depends_on: Vec<StepId>,
    /// What the change interrupts, if anything.
    pub disruption: Option<String>,
    /// After the operation, wait until these used tunnels are up again at both ends
    /// before the step counts as done: what makes "one tunnel at a time" true.
    pub until_up: Vec<UntilUp>,
}

/// A used tunnel that must be up at both ends (AWS telemetry UP, the expected Azure
/// instance's tunnel Connected) before a step is done; bounded by [`TUNNEL_UP_DEADLINE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UntilUp {
    /// VPN connection index and tunnel slot.
    pub connection: u8,
    pub tunnel: u8,
    /// How the deployment's tunnels are laid out (to find the slot's AWS tunnel).
    pub layout: crate::pairing::TunnelLayout,
}

/// How long a changed tunnel may take to come back up before apply stops (with the
/// tunnels after it untouched) and says so: IKE renegotiation takes about a minute,
/// and AWS keeps a tunnel down for minutes while it applies new options.
pub const TUNNEL_UP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10 * 60);

impl Step {
    pub fn cloud(&self) -> CloudName {
        self.op.cloud()
    }

    /// Attributes as the plan shows them; secrets and unknown values are placeholders.
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        fn list<T: fmt::Display>(v: &[T]) -> String {
            v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        }
        fn known_or<T: fmt::Display>(l: &Late<T>) -> String {
            l.show()
        }
        let secret = |l: &Late<Psk>| match l {
            Late::Known(_) => "(sensitive)".to_owned(),
            Late::After(..) => "(sensitive, known after apply)".to_owned(),
        };
        match &self.op {
            StepOp::Aws(op) => match op {
                AwsOp::CreateVpnGateway { amazon_asn, .. } => vec![("type", "ipsec.1".into()), ("amazon_side_asn", amazon_asn.to_string())],
                AwsOp::AttachVpnGateway { vgw_id, vpc_id } => vec![("vpn_gateway_id", known_or(vgw_id)), ("vpc_id", vpc_id.clone())],
                AwsOp::DetachVpnGateway { vgw_id, vpc_id } => vec![("vpn_gateway_id", vgw_id.clone()), ("vpc_id", vpc_id.clone())],
                AwsOp::DeleteVpnGateway { vgw_id } => vec![("id", vgw_id.clone())],
                AwsOp::CreateRoute { route_table_id, destination, vgw_id } => vec![
                    ("route_table_id", route_table_id.clone()),
                    ("destination", destination.to_string()),
                    ("gateway_id", known_or(vgw_id)),
                ],
                AwsOp::DeleteRoute { route_table_id, destination } => {
                    vec![("route_table_id", route_table_id.clone()), ("destination", destination.to_string())]
                }
                AwsOp::CreateCustomerGateway { ip, bgp_asn, device_name, .. } => vec![
                    ("type", "ipsec.1".into()),
                    ("ip_address", known_or(ip)),
                    ("bgp_asn", bgp_asn.to_string()),
                    ("device_name", device_name.clone()),
                ],
                AwsOp::DeleteCustomerGateway { cgw_id } => vec![("id", cgw_id.clone())],
                AwsOp::CreateVpnConnection { cgw_id, vgw_id, static_routes_only, tunnels, .. } => {
                    let mut v = vec![
                        ("customer_gateway_id", known_or(cgw_id)),
                        ("vpn_gateway_id", known_or(vgw_id)),
                        ("static_routes_only", static_routes_only.to_string()),
                    ];
                    let cidrs: Vec<String> =
                        tunnels.iter().map(|t| t.inside_cidr.map_or("(chosen by AWS)".into(), |c| c.to_string())).collect();
                    v.push(("tunnel_inside_cidrs", cidrs.join(", ")));
                    let keys = if tunnels.iter().any(|t| t.psk.is_some()) { "(sensitive)" } else { "(generated by AWS)" };
                    v.push(("tunnel_pre_shared_keys", keys.into()));
                    v.push(("tunnel_outside_ips", "(known after apply)".into()));
                    v
                }
                AwsOp::DeleteVpnConnection { vpn_id } => vec![("id", vpn_id.clone())],
                AwsOp::CreateVpnConnectionRoute { vpn_id, destination } => {
                    vec![("vpn_connection_id", known_or(vpn_id)), ("destination", destination.to_string())]
                }
                AwsOp::DeleteVpnConnectionRoute { vpn_id, destination } => {
                    vec![("vpn_connection_id", vpn_id.clone()), ("destination", destination.to_string())]
                }
                AwsOp::ModifyVpnConnection { vpn_id, cgw_id } => {
                    vec![("vpn_connection_id", vpn_id.clone()), ("customer_gateway_id", known_or(cgw_id))]
                }
                AwsOp::ModifyVpnTunnelOptions { vpn_id, outside_ip, psk, inside_cidr } => {
                    let mut v = vec![("vpn_connection_id", vpn_id.clone()), ("tunnel_outside_ip", outside_ip.to_string())];
                    if psk.is_some() {
                        v.push(("pre_shared_key", "(sensitive, changes)".into()));
                    }
                    if let Some(c) = inside_cidr {
                        v.push(("inside_cidr", c.to_string()));
                    }
                    v
                }
                AwsOp::Await { kind, id } => vec![("kind", format!("{kind:?}")), ("id", id.clone())],
            },
            StepOp::Azure(op) => match op {
                AzureOp::CreatePublicIp { zones, .. } => {
                    vec![
                        ("sku", "Standard".into()),
                        ("allocation", "Static".into()),
                        ("zones", zones.join(", ")),
                        ("ip_address", "(known after apply)".into()),
                    ]
                }
                AzureOp::CreateVpnGateway { vnet, sku, generation, public_ips, enable_bgp, asn, .. } => {
                    let mut v = vec![
                        ("gateway_type", "Vpn".into()),
                        ("vpn_type", "RouteBased".into()),
                        ("sku", sku.clone()),
                        ("generation", generation.clone()),
                        ("active_active", "true".into()),
                        ("subnet", format!("{vnet}/GatewaySubnet")),
                        ("ip_configurations", list(public_ips)),
                        ("enable_bgp", enable_bgp.to_string()),
                    ];
                    if let Some(a) = asn {
                        v.push(("asn", a.to_string()));
                    }
                    v
                }
                AzureOp::ResizeVpnGateway { sku, .. } => vec![("sku", sku.clone())],
                AzureOp::PutLocalNetworkGateway { gateway_ip, address_prefixes, .. } => {
                    vec![("gateway_ip_address", known_or(gateway_ip)), ("address_prefixes", list(address_prefixes))]
                }
                AzureOp::PutConnection { gateway, local_network_gateway, shared_key, enable_bgp, dpd_timeout_seconds, .. } => vec![
                    ("connection_type", "IPsec".into()),
                    ("connection_protocol", "IKEv2".into()),
                    ("virtual_network_gateway", gateway.clone()),
                    ("local_network_gateway", local_network_gateway.clone()),
                    ("shared_key", secret(shared_key)),
                    ("enable_bgp", enable_bgp.to_string()),
                    ("dpd_timeout_seconds", dpd_timeout_seconds.to_string()),
                ],
                AzureOp::SetSharedKey { shared_key, .. } => vec![("shared_key", secret(shared_key))],
                AzureOp::Await { kind, .. } => vec![("kind", format!("{kind:?}"))],
                AzureOp::DeletePublicIp { .. }
                | AzureOp::DeleteVpnGateway { .. }
                | AzureOp::DeleteLocalNetworkGateway { .. }
                | AzureOp::DeleteConnection { .. } => Vec::new(),
            },
        }
    }
}

/// Whether the plan builds (or converges) the deployment or tears it down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanKind {
    Apply,
    Destroy,
}

/// An immutable plan: print it, serialise it, hand it to the executor.
#[derive(Debug, Clone)]
pub struct Plan {
    pub deployment: String,
    pub kind: PlanKind,
    pub mode: Mode,
    pub steps: Vec<Step>,
    /// The used tunnels and which instance is expected up for each.
    pub tunnels: Vec<TunnelSlot>,
    /// Things the user should know that change nothing (drift left alone, warnings).
    pub notes: Vec<String>,
}

/// Counts of steps by action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChangeCount {
    pub create: usize,
    pub modify: usize,
    pub delete: usize,
    pub wait: usize,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn counts(&self) -> ChangeCount {
        let mut c = ChangeCount::default();
        for s in &self.steps {
            match s.action {
                Action::Create => c.create += 1,
                Action::Modify => c.modify += 1,
                Action::Delete => c.delete += 1,
                Action::Wait => c.wait += 1,
            }
        }
        c
    }

    /// The JSON document of `plan --output json` (format_version 1; see the README).
    pub fn to_json(&self) -> serde_json::Value {
        let steps: Vec<serde_json::Value> = self
            .steps
            .iter()
            .map(|s| {
                let attrs: BTreeMap<&str, String> = s.attributes().into_iter().collect();
                serde_json::json!({
                    "id": s.id,
                    "cloud": s.cloud(),
                    "action": s.action,
                    "resource_type": s.resource_type,
                    "name": s.name,
                    "depends_on": s.depends_on,
                    "attributes": attrs,
                    "disruption": s.disruption,
                })
            })
            .collect();
        serde_json::json!({
            "format_version": 1,
            "deployment": self.deployment,
            "kind": self.kind,
            "mode": self.mode,
            "changes": self.counts(),
            "steps": steps,
            "tunnels": self.tunnels,
            "notes": self.notes,
        })
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps.is_empty() {
            writeln!(f, "No changes. Deployment \"{}\" matches the configuration.", self.deployment)?;
        } else {
            let what = match self.kind {
                PlanKind::Apply => "build or converge",
                PlanKind::Destroy => "destroy",
            };
            writeln!(f, "vpnbridge will {what} deployment \"{}\" ({}):", self.deployment, self.mode)?;
            writeln!(f)?;
            for s in &self.steps {
                writeln!(f, "  # {} {} \"{}\" {}", s.cloud(), s.resource_type, s.name, s.action.verb())?;
                writeln!(f, "  {} {} \"{}\" {{", s.action.symbol(), s.resource_type, s.name)?;
                let attrs = s.attributes();
                let width = attrs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
                for (k, v) in attrs {
                    writeln!(f, "      {k:<width$} = {v}")?;
                }
                writeln!(f, "    }}")?;
                if let Some(d) = &s.disruption {
                    writeln!(f, "    ! disruption: {d}")?;
                }
                if !s.depends_on.is_empty() {
                    let deps: Vec<String> = s.depends_on.iter().map(|d| format!("#{d}")).collect();
                    writeln!(f, "    (step #{}, after {})", s.id, deps.join(", "))?;
                } else {
                    writeln!(f, "    (step #{}, starts at once)", s.id)?;
                }
                writeln!(f)?;
            }
            let c = self.counts();
            let mut line = format!("Plan: {} to create, {} to modify, {} to destroy", c.create, c.modify, c.delete);
            if c.wait > 0 {
                let _ = write!(line, ", {} in progress to wait for", c.wait);
            }
            writeln!(f, "{line}.")?;
        }
        if self.kind == PlanKind::Apply && !self.tunnels.is_empty() {
            writeln!(f)?;
            writeln!(f, "Tunnels ({}):", self.tunnels.len())?;
            for t in &self.tunnels {
                writeln!(
                    f,
                    "  AWS VPN connection {} tunnel {} <-> {} (instance {} up; instance {} down by design)",
                    t.connection + 1,
                    t.tunnel + 1,
                    t.azure_connection,
                    t.expected_up_instance,
                    t.expected_down_instance
                )?;
            }
        }
        for n in &self.notes {
            writeln!(f, "Note: {n}")?;
        }
        Ok(())
    }
}

/// Why no plan can be made: the observed world contradicts the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} problem(s) found before any change:\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct PlanError(pub Vec<String>);

/// Refuses what this version cannot build yet, before anything is observed.
pub fn check_supported(config: &Config) -> Result<(), PlanError> {
    if config.mode == Mode::BgpHa {
        return Err(PlanError(vec![format!(
            "{}: mode = \"bgp-ha\" is validated but not built yet by this version of vpnbridge (no half-built BGP deployments); \
             use mode = \"static-ha\" for now",
            config.source.display()
        )]));
    }
    Ok(())
}

struct Builder {
    steps: Vec<Step>,
}

impl Builder {
    fn push(&mut self, action: Action, resource_type: &'static str, name: String, op: StepOp, after: &[Option<StepId>]) -> StepId {
        let id = self.steps.len();
        let mut deps: Vec<StepId> = after.iter().flatten().copied().collect();
        deps.extend(match &op {
            StepOp::Aws(o) => o.reads(),
            StepOp::Azure(o) => o.reads(),
        });
        deps.sort_unstable();
        deps.dedup();
        self.steps.push(Step { id, action, resource_type, name, op, depends_on: deps, disruption: None, until_up: Vec::new() });
        id
    }

    fn disrupt(&mut self, id: StepId, what: String) {
        self.steps[id].disruption = Some(what);
    }

    /// Step `id` is done only when tunnel (k, t) is up again at both ends.
    fn until_up(&mut self, id: StepId, k: u8, t: u8, layout: crate::pairing::TunnelLayout) {
        let first = self.steps[id].until_up.is_empty();
        self.steps[id].until_up.push(UntilUp { connection: k, tunnel: t, layout });
        if let Some(d) = self.steps[id].disruption.as_mut().filter(|_| first) {
            d.push_str("; the next tunnel is touched only once this one is up again at both ends");
        }
    }
}

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
fn moved_vpc_problems(config: &Config, observed: &Observed) -> Vec<String> {
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
fn elsewhere_problems(config: &Config, observed: &Observed) -> Vec<String> {
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

fn join<T: fmt::Display>(v: &[T]) -> String {
    v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Plans the changes that make the clouds match `config`.
pub fn plan_apply(config: &Config, observed: &Observed) -> Result<Plan, PlanError> {
    check_supported(config)?;
    let mut problems = preflight(config, observed);
    let owner = Owner::new(&config.name);
    let names = Names::new(&config.name);
    let az = &observed.azure;
    let aws = &observed.aws;
    let mut b = Builder { steps: Vec::new() };
    let mut notes = Vec::new();
    let layout = config.layout();
    let file = config.source.display().to_string();

    let azure_prefixes: Vec<IpNet> = config.azure.address_space.iter().map(|p| IpNet::V4(*p)).collect();
    let aws_prefixes: Vec<IpNet> = config.aws.cidrs.iter().map(|p| IpNet::V4(*p)).collect();

    // ---- Azure: public IPs -> gateway --------------------------------------------
    let zones: Vec<String> = ["1", "2", "3"].map(String::from).to_vec();
    let mut pip_step: [Option<StepId>; 2] = [None, None];
    for k in 0..INSTANCES {
        let name = names.public_ip(k);
        let role = Role::PublicIp(k);
        let found = az.public_ips.iter().find(|p| p.name == name);
        let gone_first = wait_for_deletion(&mut b, found.map(|p| p.state), AzureResourceKind::PublicIp, &name, "public_ip");
        match found {
            Some(p) if p.state == ProvisioningState::Updating => {
                let op = AzureOp::Await { kind: AzureResourceKind::PublicIp, name: name.clone() };
                pip_step[usize::from(k)] = Some(b.push(Action::Wait, "public_ip", name, StepOp::Azure(op), &[]));
            }
            Some(p) if !matches!(p.state, ProvisioningState::Failed | ProvisioningState::Deleting) && p.ip.is_some() => {}
            found => {
                let action = if found.is_some_and(|p| p.state != ProvisioningState::Deleting) { Action::Modify } else { Action::Create };
                let op = AzureOp::CreatePublicIp { name: name.clone(), zones: zones.clone(), tags: owner.tags(&role) };
                pip_step[usize::from(k)] = Some(b.push(action, "public_ip", name, StepOp::Azure(op), &[gone_first]));
            }
        }
    }
    // Instance k's IP: from the existing gateway's k-th ipConfiguration, else from the
    // public IP we create for instance k.
    let gateway_going = az.vpn_gateway.as_ref().is_some_and(|g| g.state == ProvisioningState::Deleting);
    let instance_ip: Vec<Late<Ipv4Addr>> = (0..INSTANCES)
        .map(|k| {
            let pip_going = az.public_ips.iter().any(|p| p.name == names.public_ip(k) && p.state == ProvisioningState::Deleting);
            if !pip_going
                && !gateway_going
                && let Some(ip) = pairing::instance_ip(az, k)
            {
                return Late::Known(ip);
            }
            match pip_step[usize::from(k)] {
                Some(s) => Late::After(s, OutputField::PublicIp),
                None => {
                    let ip = az.public_ips.iter().find(|p| p.name == names.public_ip(k)).and_then(|p| p.ip);
                    ip.map_or(Late::After(usize::MAX, OutputField::PublicIp), Late::Known)
                }
            }
        })
        .collect();

    let gw_name = names.gateway();
    let mut gw_step = None;
    let gateway_put = AzureOp::CreateVpnGateway {
        name: gw_name.clone(),
        vnet: config.azure.vnet.clone(),
        sku: config.azure.gateway_sku.to_string(),
        generation: config.azure.gateway_generation.to_string(),
        public_ips: (0..INSTANCES).map(|k| names.public_ip(k)).collect(),
        enable_bgp: false,
        asn: None,
        tags: owner.tags(&Role::VpnGateway),
    };
    match &az.vpn_gateway {
        None => {
            gw_step = Some(b.push(Action::Create, "vpn_gateway", gw_name.clone(), StepOp::Azure(gateway_put), &pip_step));
        }
        Some(gw) if gw.state == ProvisioningState::Deleting => {
            let gone = wait_for_deletion(&mut b, Some(gw.state), AzureResourceKind::VpnGateway, &gw.name, "vpn_gateway");
            let after = [pip_step[0], pip_step[1], gone];
            gw_step = Some(b.push(Action::Create, "vpn_gateway", gw_name.clone(), StepOp::Azure(gateway_put), &after));
        }
        Some(gw) => {
            if gw.generation != config.azure.gateway_generation.to_string() {
                problems.push(format!(
                    "gateway \"{}\" is {} but {file} asks for {}: Azure cannot change a gateway's generation in place; \
                     keep azure.gateway_generation = \"{}\" or destroy and rebuild",
                    gw.name, gw.generation, config.azure.gateway_generation, gw.generation
                ));
            }
            if !gw.active_active || gw.ip_configurations.len() != usize::from(INSTANCES) {
                problems.push(format!(
                    "gateway \"{}\" is not active-active with two ipConfigurations; vpnbridge builds only active-active gateways: destroy and rebuild",
                    gw.name
                ));
            }
            if gw.state == ProvisioningState::Updating {
                let op = AzureOp::Await { kind: AzureResourceKind::VpnGateway, name: gw_name.clone() };
                gw_step = Some(b.push(Action::Wait, "vpn_gateway", gw_name.clone(), StepOp::Azure(op), &pip_step));
            } else if gw.state == ProvisioningState::Failed {
                // Azure's remedy for a gateway in Failed state: PUT it again.
                let id = b.push(Action::Modify, "vpn_gateway", gw_name.clone(), StepOp::Azure(gateway_put), &pip_step);
                b.disrupt(
                    id,
                    format!(
                        "gateway \"{}\" is in state Failed; it is provisioned again (tunnels through it are down until it succeeds)",
                        gw.name
                    ),
                );
                gw_step = Some(id);
            } else if gw.sku != config.azure.gateway_sku.to_string() {
                let op = AzureOp::ResizeVpnGateway { name: gw_name.clone(), sku: config.azure.gateway_sku.to_string() };
                let id = b.push(Action::Modify, "vpn_gateway", gw_name.clone(), StepOp::Azure(op), &[]);
                b.disrupt(
                    id,
                    format!(
                        "resize {} -> {}: Azure updates the two instances one at a time; each instance's tunnels drop for several minutes in turn while the other instance's carry the traffic",
                        gw.sku, config.azure.gateway_sku
                    ),
                );
                gw_step = Some(id);
            }
        }
    }

    // ---- AWS: VGW -> attachment -> VPC routes ---------------------------------------
    let mut vgws: Vec<_> =
        aws.vpn_gateways.iter().filter(|v| !v.state.is_gone() && role_of(&owner, &v.tags) == Some(Role::VirtualPrivateGateway)).collect();
    // Keep the one attached to our VPC (or the oldest id); any other is a duplicate
    // left by an ambiguous create, deleted below.
    vgws.sort_by_key(|v| {
        (!v.attachments.iter().any(|a| a.vpc_id == config.aws.vpc_id && a.state != AttachmentState::Detached), v.id.clone())
    });
    let vgw = vgws.first().copied();
    let mut vgw_step = None;
    let vgw_id: Late<String> = match vgw {
        None => {
            let op = AwsOp::CreateVpnGateway { amazon_asn: config.aws.amazon_asn, tags: owner.tags(&Role::VirtualPrivateGateway) };
            let id = b.push(Action::Create, "vpn_gateway", "vgw".into(), StepOp::Aws(op), &[]);
            vgw_step = Some(id);
            Late::After(id, OutputField::Id)
        }
        Some(v) => {
            if v.amazon_asn != config.aws.amazon_asn {
                problems.push(format!(
                    "virtual private gateway {} has Amazon ASN {} but aws.amazon_asn is {}: AWS cannot change it in place; \
                     set aws.amazon_asn = {} or destroy and rebuild",
                    v.id, v.amazon_asn, config.aws.amazon_asn, v.amazon_asn
                ));
            }
            if v.state == AwsState::Pending {
                let op = AwsOp::Await { kind: AwsResourceKind::VpnGateway, id: v.id.clone() };
                vgw_step = Some(b.push(Action::Wait, "vpn_gateway", format!("vgw {}", v.id), StepOp::Aws(op), &[]));
            }
            Late::Known(v.id.clone())
        }
    };
    for extra in vgws.iter().skip(1) {
        delete_vgw(&mut b, extra, &[]);
    }

    let attachment = vgw.and_then(|v| v.attachments.iter().find(|a| a.vpc_id == config.aws.vpc_id));
    let attach_step = match attachment.map(|a| a.state) {
        Some(AttachmentState::Attached) => None,
        Some(AttachmentState::Attaching) => {
            let op = AwsOp::Await { kind: AwsResourceKind::VgwAttachment, id: vgw.map(|v| v.id.clone()).unwrap_or_default() };
            Some(b.push(Action::Wait, "vpn_gateway_attachment", config.aws.vpc_id.clone(), StepOp::Aws(op), &[vgw_step]))
        }
        _ => {
            let op = AwsOp::AttachVpnGateway { vgw_id: vgw_id.clone(), vpc_id: config.aws.vpc_id.clone() };
            Some(b.push(Action::Create, "vpn_gateway_attachment", config.aws.vpc_id.clone(), StepOp::Aws(op), &[vgw_step]))
        }
    };

    if let Some(vpc) = &aws.vpc {
        let tables: Vec<&crate::model::RouteTable> = if config.aws.route_tables.is_empty() {
            vpc.main_route_table().into_iter().collect()
        } else {
            vpc.route_tables.iter().filter(|t| config.aws.route_tables.contains(&t.id)).collect()
        };
        let our_vgw_id = vgw.map(|v| v.id.as_str());
        for table in &tables {
            for p in &azure_prefixes {
                match table.routes.iter().find(|r| r.destination == *p) {
                    Some(r) if r.gateway_id.as_deref() == our_vgw_id && our_vgw_id.is_some() => {}
                    Some(r) => problems.push(format!(
                        "route table {} already sends {p} to {}, not to our virtual private gateway: remove that route or choose \
                         other tables in aws.route_tables",
                        table.id,
                        r.gateway_id.as_deref().unwrap_or("another target")
                    )),
                    None => {
                        let op = AwsOp::CreateRoute { route_table_id: table.id.clone(), destination: *p, vgw_id: vgw_id.clone() };
                        b.push(Action::Create, "vpc_route", format!("{} {p}", table.id), StepOp::Aws(op), &[attach_step]);
                    }
                }
            }
        }
        // Routes via our VGW that the config no longer wants: ours through the tagged VGW.
        if let Some(vid) = our_vgw_id {
            for table in &vpc.route_tables {
                for r in &table.routes {
                    let wanted = tables.iter().any(|t| t.id == table.id) && azure_prefixes.contains(&r.destination);
                    if r.gateway_id.as_deref() == Some(vid) && !wanted {
                        let op = AwsOp::DeleteRoute { route_table_id: table.id.clone(), destination: r.destination };
                        let id = b.push(Action::Delete, "vpc_route", format!("{} {}", table.id, r.destination), StepOp::Aws(op), &[]);
                        b.disrupt(id, format!("traffic from {} to {} stops using the VPN", table.id, r.destination));
                    }
                }
            }
        }
    }

    // ---- AWS: CGW k -> VPN connection k -> its static routes ------------------------
    let mut previous_swap: Option<StepId> = None;
    let mut vpn_ids: Vec<Late<String>> = Vec::new();
    let mut vpn_steps: Vec<Option<StepId>> = Vec::new();
    let mut tunnel_values: Vec<Vec<(Late<Ipv4Addr>, Late<Psk>)>> = Vec::new();
    for k in 0..INSTANCES {
        let cgw_role = Role::CustomerGateway(k);
        let mut cgws: Vec<_> =
            aws.customer_gateways.iter().filter(|c| !c.state.is_gone() && role_of(&owner, &c.tags) == Some(cgw_role)).collect();
        let vpn_role = Role::VpnConnection(k);
        let mut vpns: Vec<_> =
            aws.vpn_connections.iter().filter(|c| !c.state.is_gone() && role_of(&owner, &c.tags) == Some(vpn_role)).collect();
        // A duplicate from an ambiguous create: keep the one in use (or the oldest).
        cgws.sort_by_key(|c| (!vpns.iter().any(|v| v.customer_gateway_id == c.id), c.id.clone()));
        vpns.sort_by_key(|v| (v.state != AwsState::Available, v.id.clone()));
        let vpn = vpns.first().copied();
        // The CGW of instance k carries instance k's IP and the configured ASN. One with
        // another IP (the Azure side's IPs changed) or ASN (azure.asn changed; a CGW's
        // ASN cannot change) is stale: the VPN connection moves off it in place.
        let want_ip = &instance_ip[usize::from(k)];
        let cgw = cgws.iter().copied().find(|c| matches!(want_ip, Late::Known(ip) if *ip == c.ip) && c.bgp_asn == config.azure.asn);
        let stale: Vec<&crate::model::CustomerGateway> = cgws.iter().copied().filter(|c| Some(&c.id) != cgw.map(|g| &g.id)).collect();

        let mut cgw_step = None;
        let cgw_id: Late<String> = match cgw {
            Some(c) => {
                if c.state == AwsState::Pending {
                    let op = AwsOp::Await { kind: AwsResourceKind::CustomerGateway, id: c.id.clone() };
                    cgw_step = Some(b.push(Action::Wait, "customer_gateway", format!("cgw-{k} {}", c.id), StepOp::Aws(op), &[]));
                }
                Late::Known(c.id.clone())
            }
            None => {
                let op = AwsOp::CreateCustomerGateway {
                    ip: want_ip.clone(),
                    bgp_asn: config.azure.asn,
                    device_name: names.cgw_device_name(k),
                    tags: owner.tags(&cgw_role),
                };
                let id = b.push(Action::Create, "customer_gateway", format!("cgw-{k}"), StepOp::Aws(op), &[]);
                cgw_step = Some(id);
                Late::After(id, OutputField::Id)
            }
        };

        let pins = layout.pins(k);
        let mut vpn_step = None;
        let mut swap_step = None;
        let mut values = Vec::new();
        let vpn_id: Late<String> = match vpn {
            None => {
                let tunnels = pins
                    .iter()
                    .map(|pin| TunnelSpec {
                        inside_cidr: *pin,
                        psk: match &config.psk {
                            PskSource::Generate => Some(Psk::generate()),
                            PskSource::Aws => None,
                            PskSource::Env { key, .. } => Some(key.clone()),
                        },
                    })
                    .collect();
                let op = AwsOp::CreateVpnConnection {
                    cgw_id: cgw_id.clone(),
                    vgw_id: vgw_id.clone(),
                    static_routes_only: true,
                    tunnels,
                    tags: owner.tags(&vpn_role),
                };
                let id = b.push(Action::Create, "vpn_connection", format!("vpn-{k}"), StepOp::Aws(op), &[cgw_step, vgw_step]);
                vpn_step = Some(id);
                for slot in 0..config.tunnels_per_connection {
                    values.push((
                        Late::After(id, OutputField::TunnelOutsideIp { slot, pins }),
                        Late::After(id, OutputField::TunnelPsk { slot, pins }),
                    ));
                }
                Late::After(id, OutputField::Id)
            }
            Some(v) => {
                if cgw.is_none_or(|c| c.id != v.customer_gateway_id) {
                    let op = AwsOp::ModifyVpnConnection { vpn_id: v.id.clone(), cgw_id: cgw_id.clone() };
                    // One VPN connection at a time: the next moves once this one's
                    // tunnel is up again at both ends.
                    let id =
                        b.push(Action::Modify, "vpn_connection", format!("vpn-{k} {}", v.id), StepOp::Aws(op), &[cgw_step, previous_swap]);
                    let target = match want_ip {
                        Late::Known(ip) => ip.to_string(),
                        Late::After(..) => "(known after apply)".to_owned(),
                    };
                    b.disrupt(
                        id,
                        format!(
                            "both tunnels of {} are down briefly while AWS moves it from customer gateway {} to the one for Azure instance {k} ({target}, ASN {})",
                            v.id, v.customer_gateway_id, config.azure.asn
                        ),
                    );
                    // Both of its used tunnels went down: each must be back.
                    for t in 0..config.tunnels_per_connection {
                        if pairing::connection(az, &names.connection(k, t)).is_some() {
                            b.until_up(id, k, t, layout);
                        }
                    }
                    swap_step = Some(id);
                    previous_swap = Some(id);
                }
                if !v.static_routes_only {
                    problems
                        .push(format!("VPN connection {} uses dynamic (BGP) routing but mode is static-ha: destroy and re-apply", v.id));
                }
                if matches!(v.state, AwsState::Pending | AwsState::Modifying) {
                    let op = AwsOp::Await { kind: AwsResourceKind::VpnConnection, id: v.id.clone() };
                    vpn_step = Some(b.push(Action::Wait, "vpn_connection", format!("vpn-{k} {}", v.id), StepOp::Aws(op), &[cgw_step]));
                }
                for t in 0..config.tunnels_per_connection {
                    match pairing::aws_tunnel(v, t, pins) {
                        None => problems.push(format!("VPN connection {} reports fewer than {} tunnels", v.id, t + 1)),
                        Some(tun) => {
                            let psk = match (&config.psk, &tun.psk) {
                                (PskSource::Env { key, .. }, _) => Late::Known(key.clone()),
                                (_, Some(p)) => Late::Known(p.clone()),
                                (_, None) => {
                                    problems.push(format!(
                                        "AWS does not return the pre-shared key of tunnel {} of {} (kept in Secrets Manager?): \
                                         set psk = \"env:NAME\" with the key in that environment variable",
                                        tun.outside_ip, v.id
                                    ));
                                    Late::After(usize::MAX, OutputField::TunnelPsk { slot: t, pins })
                                }
                            };
                            values.push((Late::Known(tun.outside_ip), psk));
                        }
                    }
                }
                Late::Known(v.id.clone())
            }
        };
        for old in stale {
            // After the VPN connection has moved off it (a stale one), or at once (a
            // duplicate left by an ambiguous create).
            let op = AwsOp::DeleteCustomerGateway { cgw_id: old.id.clone() };
            let why = if old.id == vpn.map(|v| v.customer_gateway_id.clone()).unwrap_or_default() { "replaced" } else { "unused" };
            b.push(Action::Delete, "customer_gateway", format!("{why} cgw-{k} {}", old.id), StepOp::Aws(op), &[swap_step]);
        }
        for extra in vpns.iter().skip(1) {
            let op = AwsOp::DeleteVpnConnection { vpn_id: extra.id.clone() };
            b.push(Action::Delete, "vpn_connection", format!("duplicate vpn-{k} {}", extra.id), StepOp::Aws(op), &[]);
        }

        // Static routes of the VPN connection: one per Azure prefix.
        let existing: Vec<IpNet> =
            vpn.map(|v| v.routes.iter().filter(|r| !r.state.is_gone()).map(|r| r.destination).collect()).unwrap_or_default();
        for p in &azure_prefixes {
            if !existing.contains(p) {
                let op = AwsOp::CreateVpnConnectionRoute { vpn_id: vpn_id.clone(), destination: *p };
                b.push(Action::Create, "vpn_connection_route", format!("vpn-{k} {p}"), StepOp::Aws(op), &[vpn_step]);
            }
        }
        if let Some(v) = vpn {
            for p in existing.iter().filter(|p| !azure_prefixes.contains(p)) {
                let op = AwsOp::DeleteVpnConnectionRoute { vpn_id: v.id.clone(), destination: *p };
                let id = b.push(Action::Delete, "vpn_connection_route", format!("vpn-{k} {p}"), StepOp::Aws(op), &[]);
                b.disrupt(id, format!("AWS stops sending traffic for {p} through {}", v.id));
            }
        }
        vpn_ids.push(vpn_id);
        vpn_steps.push(vpn_step);
        tunnel_values.push(values);
    }

    // ---- In-place key and inside-CIDR changes, one tunnel at a time -----------------
    // Each changed tunnel: AWS ModifyVpnTunnelOptions, then the Azure side's key; the
    // next tunnel starts only when the previous one is done, so at most one is down.
    let mut previous_change: Option<StepId> = None;
    let mut key_changed: BTreeMap<(u8, u8), StepId> = BTreeMap::new();
    for k in 0..INSTANCES {
        let Some(v) = pairing::vpn_connection(&owner, aws, k) else { continue };
        let pins = layout.pins(k);
        for t in 0..config.tunnels_per_connection {
            let Some(tun) = pairing::aws_tunnel(v, t, pins) else { continue };
            let new_psk = match &config.psk {
                PskSource::Env { key, .. } if tun.psk.as_ref() != Some(key) => Some(key.clone()),
                _ => None,
            };
            let new_cidr = pins[usize::from(t)].filter(|c| tun.inside_cidr != Some(*c));
            if new_psk.is_none() && new_cidr.is_none() {
                continue;
            }
            let op = AwsOp::ModifyVpnTunnelOptions {
                vpn_id: v.id.clone(),
                outside_ip: tun.outside_ip,
                psk: new_psk.clone(),
                inside_cidr: new_cidr,
            };
            let id = b.push(
                Action::Modify,
                "vpn_tunnel",
                format!("{} {}", v.id, tun.outside_ip),
                StepOp::Aws(op),
                &[previous_change, vpn_steps[usize::from(k)]],
            );
            let mut what = Vec::new();
            if new_psk.is_some() {
                what.push("pre-shared key");
            }
            if new_cidr.is_some() {
                what.push("inside CIDR");
            }
            b.disrupt(
                id,
                format!(
                    "tunnel {} ({}) is down for several minutes while AWS applies the new {}",
                    tun.outside_ip,
                    v.id,
                    what.join(" and ")
                ),
            );
            previous_change = Some(id);
            // The Azure end of the same tunnel follows before the next tunnel starts.
            let cn_name = names.connection(k, t);
            let mut last = id;
            if let (Some(key), Some(c)) = (new_psk, pairing::connection(az, &cn_name))
                && c.shared_key.as_ref() != Some(&key)
            {
                let op = AzureOp::SetSharedKey { name: cn_name.clone(), shared_key: Late::Known(key) };
                let cid = b.push(Action::Modify, "connection", cn_name.clone(), StepOp::Azure(op), &[Some(id)]);
                b.disrupt(cid, format!("{cn_name} reconnects with the new key (same tunnel as the step before)"));
                previous_change = Some(cid);
                last = cid;
            }
            // Only an existing connection can come back up; its last step waits for it.
            if pairing::connection(az, &cn_name).is_some() {
                b.until_up(last, k, t, layout);
            }
            key_changed.insert((k, t), id);
        }
    }

    // ---- Azure: one LocalNetworkGateway and one Connection per used AWS tunnel -------
    let slots = pairing::slots(&config.name, config.tunnels_per_connection);
    for slot in &slots {
        let (k, t) = (slot.connection, slot.tunnel);
        let Some((outside_ip, psk)) = tunnel_values[usize::from(k)].get(usize::from(t)).cloned() else { continue };
        let lng_role = Role::LocalNetworkGateway(k, t);
        let lng = pairing::local_network_gateway(az, &slot.local_network_gateway);
        let mut lng_step = None;
        let lng_op = AzureOp::PutLocalNetworkGateway {
            name: slot.local_network_gateway.clone(),
            gateway_ip: outside_ip.clone(),
            address_prefixes: aws_prefixes.clone(),
            tags: owner.tags(&lng_role),
        };
        match lng {
            None => {
                lng_step =
                    Some(b.push(Action::Create, "local_network_gateway", slot.local_network_gateway.clone(), StepOp::Azure(lng_op), &[]))
            }
            Some(l) if l.state == ProvisioningState::Deleting => {
                let gone =
                    wait_for_deletion(&mut b, Some(l.state), AzureResourceKind::LocalNetworkGateway, &l.name, "local_network_gateway");
                lng_step = Some(b.push(
                    Action::Create,
                    "local_network_gateway",
                    slot.local_network_gateway.clone(),
                    StepOp::Azure(lng_op),
                    &[gone],
                ));
            }
            Some(l) if l.state == ProvisioningState::Updating => {
                let op = AzureOp::Await { kind: AzureResourceKind::LocalNetworkGateway, name: l.name.clone() };
                lng_step = Some(b.push(Action::Wait, "local_network_gateway", l.name.clone(), StepOp::Azure(op), &[]));
            }
            Some(l) => {
                let ip_differs = matches!(&outside_ip, Late::Known(ip) if *ip != l.gateway_ip);
                let mut have = l.address_prefixes.clone();
                have.sort();
                let mut want = aws_prefixes.clone();
                want.sort();
                if ip_differs || have != want || l.state == ProvisioningState::Failed {
                    let id = b.push(Action::Modify, "local_network_gateway", l.name.clone(), StepOp::Azure(lng_op), &[]);
                    if ip_differs {
                        b.disrupt(
                            id,
                            format!(
                                "{} re-points from {} to the AWS tunnel's outside IP; its tunnel is down until it reconnects",
                                l.name, l.gateway_ip
                            ),
                        );
                    } else if have != want {
                        b.disrupt(
                            id,
                            format!("{}: address prefixes {} -> {}; traffic to removed prefixes stops", l.name, join(&have), join(&want)),
                        );
                    }
                    lng_step = Some(id);
                }
            }
        }

        let cn = pairing::connection(az, &slot.azure_connection);
        let connection_put = AzureOp::PutConnection {
            name: slot.azure_connection.clone(),
            gateway: gw_name.clone(),
            local_network_gateway: slot.local_network_gateway.clone(),
            shared_key: psk.clone(),
            enable_bgp: false,
            dpd_timeout_seconds: AZURE_DPD_SECONDS,
            tags: owner.tags(&Role::Connection(k, t)),
        };
        match cn {
            Some(c) if c.state == ProvisioningState::Deleting || lng.is_some_and(|l| l.state == ProvisioningState::Deleting) => {
                // A Connection (or its LNG) found on its way out, e.g. after an
                // interrupted drill: it is not there; wait for it to go, then create it.
                let gone = wait_for_deletion(&mut b, Some(c.state), AzureResourceKind::Connection, &c.name, "connection");
                let after = [gw_step, lng_step, key_changed.get(&(k, t)).copied(), gone];
                let id = b.push(Action::Create, "connection", c.name.clone(), StepOp::Azure(connection_put), &after);
                b.disrupt(id, format!("{} was being deleted; it is created again once it is gone", c.name));
            }
            Some(c) if c.state == ProvisioningState::Failed => {
                let after = [gw_step, lng_step, key_changed.get(&(k, t)).copied()];
                let id = b.push(Action::Modify, "connection", c.name.clone(), StepOp::Azure(connection_put), &after);
                b.disrupt(id, format!("{} is in state Failed; it is provisioned again", c.name));
            }
            None => {
                let after = [gw_step, lng_step, key_changed.get(&(k, t)).copied()];
                b.push(Action::Create, "connection", slot.azure_connection.clone(), StepOp::Azure(connection_put), &after);
            }
            Some(c) if c.state == ProvisioningState::Updating => {
                let op = AzureOp::Await { kind: AzureResourceKind::Connection, name: c.name.clone() };
                b.push(Action::Wait, "connection", c.name.clone(), StepOp::Azure(op), &[]);
            }
            Some(_) if key_changed.contains_key(&(k, t)) => {}
            Some(c) => {
                let key_differs = match (&psk, &c.shared_key) {
                    (Late::Known(want), Some(have)) => want != have,
                    (Late::Known(_), None) => true,
                    (Late::After(..), _) => true,
                };
                if key_differs {
                    let op = AzureOp::SetSharedKey { name: c.name.clone(), shared_key: psk.clone() };
                    let id = b.push(
                        Action::Modify,
                        "connection",
                        c.name.clone(),
                        StepOp::Azure(op),
                        &[key_changed.get(&(k, t)).copied(), lng_step],
                    );
                    b.disrupt(id, format!("{} reconnects with the new key; its tunnel is down until both ends match", c.name));
                }
            }
        }
    }

    // ---- Ours but no longer wanted (e.g. tunnels_per_connection lowered) ------------
    let wanted_lngs: Vec<&str> = slots.iter().map(|s| s.local_network_gateway.as_str()).collect();
    let wanted_cns: Vec<&str> = slots.iter().map(|s| s.azure_connection.as_str()).collect();
    let mut cn_deletes = Vec::new();
    for c in az.connections.iter().filter(|c| owner.owns(&c.tags) && !wanted_cns.contains(&c.name.as_str())) {
        let id =
            b.push(Action::Delete, "connection", c.name.clone(), StepOp::Azure(AzureOp::DeleteConnection { name: c.name.clone() }), &[]);
        b.disrupt(id, format!("the tunnel carried by {} goes away", c.name));
        cn_deletes.push(Some(id));
    }
    for l in az.local_network_gateways.iter().filter(|l| owner.owns(&l.tags) && !wanted_lngs.contains(&l.name.as_str())) {
        let op = AzureOp::DeleteLocalNetworkGateway { name: l.name.clone() };
        b.push(Action::Delete, "local_network_gateway", l.name.clone(), StepOp::Azure(op), &cn_deletes);
    }

    // Values that could not be bound point at usize::MAX: they were reported above.
    if !problems.is_empty() {
        return Err(PlanError(problems));
    }
    if az.vpn_gateway.is_none() && b.steps.iter().any(|s| s.resource_type == "vpn_gateway" && s.cloud() == CloudName::Azure) {
        notes.push(
            "the Azure VPN gateway takes about 45 minutes to build; the AWS side and the LocalNetworkGateways are built meanwhile".into(),
        );
    }
    Ok(Plan { deployment: config.name.clone(), kind: PlanKind::Apply, mode: config.mode, steps: b.steps, tunnels: slots, notes })
}

fn delete_vgw(b: &mut Builder, v: &crate::model::VpnGateway, after: &[Option<StepId>]) -> StepId {
    let mut last: Vec<Option<StepId>> = after.to_vec();
    for a in v.attachments.iter().filter(|a| matches!(a.state, AttachmentState::Attached | AttachmentState::Attaching)) {
        let op = AwsOp::DetachVpnGateway { vgw_id: v.id.clone(), vpc_id: a.vpc_id.clone() };
        last.push(Some(b.push(Action::Delete, "vpn_gateway_attachment", format!("{} {}", v.id, a.vpc_id), StepOp::Aws(op), after)));
    }
    let op = AwsOp::DeleteVpnGateway { vgw_id: v.id.clone() };
    b.push(Action::Delete, "vpn_gateway", format!("vgw {}", v.id), StepOp::Aws(op), &last)
}

/// Plans the removal of everything this deployment owns, and nothing else: the
/// plan for an empty desired state.
pub fn plan_destroy(config: &Config, observed: &Observed) -> Result<Plan, PlanError> {
    // What is elsewhere cannot be reached from this scope: say so rather than report
    // the deployment destroyed while it still runs (and costs) somewhere else.
    let mut blockers = elsewhere_problems(config, observed);
    blockers.extend(moved_vpc_problems(config, observed));
    if !blockers.is_empty() {
        return Err(PlanError(blockers));
    }
    Ok(plan_destroy_here(config, observed))
}

/// The destroy plan for what is in scope.
fn plan_destroy_here(config: &Config, observed: &Observed) -> Plan {
    let owner = Owner::new(&config.name);
    let az = &observed.azure;
    let aws = &observed.aws;
    let mut b = Builder { steps: Vec::new() };

    // Azure: Connections -> LocalNetworkGateways; Connections -> gateway -> public IPs.
    let mut cn_deletes = Vec::new();
    for c in az.connections.iter().filter(|c| owner.owns(&c.tags)) {
        let waited = wait_if_updating(&mut b, c.state, AzureResourceKind::Connection, &c.name, "connection");
        let op = AzureOp::DeleteConnection { name: c.name.clone() };
        cn_deletes.push(Some(b.push(Action::Delete, "connection", c.name.clone(), StepOp::Azure(op), &[waited])));
    }
    for l in az.local_network_gateways.iter().filter(|l| owner.owns(&l.tags)) {
        let waited = wait_if_updating(&mut b, l.state, AzureResourceKind::LocalNetworkGateway, &l.name, "local_network_gateway");
        let mut after = cn_deletes.clone();
        after.push(waited);
        let op = AzureOp::DeleteLocalNetworkGateway { name: l.name.clone() };
        b.push(Action::Delete, "local_network_gateway", l.name.clone(), StepOp::Azure(op), &after);
    }
    let mut gw_delete = None;
    if let Some(gw) = az.vpn_gateway.as_ref().filter(|g| owner.owns(&g.tags)) {
        let waited = wait_if_updating(&mut b, gw.state, AzureResourceKind::VpnGateway, &gw.name, "vpn_gateway");
        let mut after = cn_deletes.clone();
        after.push(waited);
        let op = AzureOp::DeleteVpnGateway { name: gw.name.clone() };
        gw_delete = Some(b.push(Action::Delete, "vpn_gateway", gw.name.clone(), StepOp::Azure(op), &after));
    }
    for p in az.public_ips.iter().filter(|p| owner.owns(&p.tags)) {
        let waited = wait_if_updating(&mut b, p.state, AzureResourceKind::PublicIp, &p.name, "public_ip");
        let op = AzureOp::DeletePublicIp { name: p.name.clone() };
        b.push(Action::Delete, "public_ip", p.name.clone(), StepOp::Azure(op), &[gw_delete, waited]);
    }

    // AWS: VPN connections -> CGWs; routes via our VGW -> detach -> VGW.
    let mut vpn_deletes = Vec::new();
    for v in aws.vpn_connections.iter().filter(|v| owner.owns(&v.tags)) {
        let name = format!("{} {}", role_of(&owner, &v.tags).map(|r| r.to_string()).unwrap_or_default(), v.id);
        let step = match v.state {
            AwsState::Deleted => continue,
            AwsState::Deleting => {
                let op = AwsOp::Await { kind: AwsResourceKind::VpnConnection, id: v.id.clone() };
                b.push(Action::Wait, "vpn_connection", name, StepOp::Aws(op), &[])
            }
            _ => b.push(Action::Delete, "vpn_connection", name, StepOp::Aws(AwsOp::DeleteVpnConnection { vpn_id: v.id.clone() }), &[]),
        };
        vpn_deletes.push(Some(step));
    }
    for c in aws.customer_gateways.iter().filter(|c| owner.owns(&c.tags) && !c.state.is_gone()) {
        let name = format!("{} {}", role_of(&owner, &c.tags).map(|r| r.to_string()).unwrap_or_default(), c.id);
        let op = AwsOp::DeleteCustomerGateway { cgw_id: c.id.clone() };
        b.push(Action::Delete, "customer_gateway", name, StepOp::Aws(op), &vpn_deletes);
    }
    for v in aws.vpn_gateways.iter().filter(|v| owner.owns(&v.tags) && !v.state.is_gone()) {
        let mut route_deletes = vpn_deletes.clone();
        if let Some(vpc) = &aws.vpc {
            for t in &vpc.route_tables {
                for r in t.routes.iter().filter(|r| r.gateway_id.as_deref() == Some(v.id.as_str())) {
                    let op = AwsOp::DeleteRoute { route_table_id: t.id.clone(), destination: r.destination };
                    route_deletes.push(Some(b.push(
                        Action::Delete,
                        "vpc_route",
                        format!("{} {}", t.id, r.destination),
                        StepOp::Aws(op),
                        &[],
                    )));
                }
            }
        }
        delete_vgw(&mut b, v, &route_deletes);
    }

    Plan {
        deployment: config.name.clone(),
        kind: PlanKind::Destroy,
        mode: config.mode,
        steps: b.steps,
        tunnels: Vec::new(),
        notes: Vec::new(),
    }
}

/// A resource found `Deleting` is not there: a step that waits until it is gone (so it
/// can be created again), or `None` when it is not being deleted.
fn wait_for_deletion(
    b: &mut Builder,
    state: Option<ProvisioningState>,
    kind: AzureResourceKind,
    name: &str,
    rtype: &'static str,
) -> Option<StepId> {
    (state == Some(ProvisioningState::Deleting)).then(|| {
        let op = AzureOp::Await { kind, name: name.to_owned() };
        let id = b.push(Action::Wait, rtype, format!("{name} (being deleted)"), StepOp::Azure(op), &[]);
        b.disrupt(id, format!("{name} is being deleted (an interrupted drill or destroy?); it is created again once it is gone"));
        id
    })
}

fn wait_if_updating(b: &mut Builder, state: ProvisioningState, kind: AzureResourceKind, name: &str, rtype: &'static str) -> Option<StepId> {
    (state == ProvisioningState::Updating || state == ProvisioningState::Deleting).then(|| {
        let op = AzureOp::Await { kind, name: name.to_owned() };
        b.push(Action::Wait, rtype, name.to_owned(), StepOp::Azure(op), &[])
    })
}

/// The prefixes that cross the VPN, for messages.
pub fn routed_prefixes(config: &Config) -> (Vec<Ipv4Net>, Vec<Ipv4Net>) {
    (config.azure.address_space.clone(), config.aws.cidrs.clone())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::model::{
        AwsTunnelOptions, Connection, CustomerGateway, GatewayIpConfiguration, LocalNetworkGateway, PublicIp, RouteTable, Subnet,
        VgwAttachment, VirtualNetwork, VirtualNetworkGateway, Vpc, VpcRoute, VpnConnection, VpnConnectionRoute, VpnGateway,
    };
    use crate::validate;

    fn config(extra_env: Option<&str>) -> Config {
        let text = validate::EXAMPLE
            .replace("psk = \"generate\"", if extra_env.is_some() { "psk = \"env:VPN_PSK\"" } else { "psk = \"generate\"" });
        let env = move |k: &str| (k == "VPN_PSK").then(|| extra_env.unwrap_or_default().to_owned());
        validate::parse(&text, Path::new("vpnbridge.toml"), &env).expect("example is valid").config
    }

    /// The user's prerequisites only: a VNet with a GatewaySubnet and a VPC.
    fn prerequisites() -> Observed {
        let mut o = Observed::default();
        o.azure.vnet = Some(VirtualNetwork {
            id: "/subscriptions/s/resourceGroups/rg-vpn/providers/Microsoft.Network/virtualNetworks/vnet-hub".into(),
            name: "vnet-hub".into(),
            address_space: vec!["10.1.0.0/16".parse().unwrap()],
            subnets: vec![Subnet {
                id: "gs".into(),
                name: "GatewaySubnet".into(),
                prefix: "10.1.255.0/27".parse().unwrap(),
                ip_configurations: vec![],
            }],
        });
        o.aws.vpc = Some(Vpc {
            id: "vpc-0123456789abcdef0".into(),
            cidrs: vec!["10.2.0.0/16".parse().unwrap()],
            route_tables: vec![RouteTable {
                id: "rtb-0000000000000main".into(),
                main: true,
                routes: vec![VpcRoute {
                    destination: "10.2.0.0/16".parse().unwrap(),
                    gateway_id: Some("local".into()),
                    state: "active".into(),
                }],
                propagating_vgws: vec![],
            }],
        });
        o
    }

    fn tags(role: Role) -> crate::model::Tags {
        Owner::new("azure-aws").tags(&role)
    }

    /// What a finished deployment looks like, built by hand.
    fn finished(psk: &str) -> Observed {
        let mut o = prerequisites();
        let key = Psk::new(psk).unwrap();
        for k in 0..2u8 {
            o.azure.public_ips.push(PublicIp {
                id: format!("pip-id-{k}"),
                name: format!("azure-aws-pip-{k}"),
                ip: Some(Ipv4Addr::new(20, 0, 0, 10 + k)),
                sku: "Standard".into(),
                static_allocation: true,
                zones: vec!["1".into(), "2".into(), "3".into()],
                state: ProvisioningState::Succeeded,
                tags: tags(Role::PublicIp(k)),
            });
            o.aws.customer_gateways.push(CustomerGateway {
                id: format!("cgw-{k}"),
                state: AwsState::Available,
                ip: Ipv4Addr::new(20, 0, 0, 10 + k),
                bgp_asn: 65000,
                device_name: None,
                tags: tags(Role::CustomerGateway(k)),
            });
            let outside = |t: u8| Ipv4Addr::new(3, 0, k, 1 + t);
            o.aws.vpn_connections.push(VpnConnection {
                id: format!("vpn-{k}"),
                state: AwsState::Available,
                customer_gateway_id: format!("cgw-{k}"),
                vpn_gateway_id: "vgw-1".into(),
                static_routes_only: true,
                tunnels: (0..2)
                    .map(|t| AwsTunnelOptions {
                        outside_ip: outside(t),
                        inside_cidr: None,
                        psk: Some(key.clone()),
                        ike_versions: vec!["ikev2".into()],
                    })
                    .collect(),
                routes: vec![VpnConnectionRoute { destination: "10.1.0.0/16".parse().unwrap(), state: AwsState::Available }],
                telemetry: vec![],
                tags: tags(Role::VpnConnection(k)),
            });
            o.azure.local_network_gateways.push(LocalNetworkGateway {
                id: format!("lng-id-{k}"),
                name: format!("azure-aws-lng-{k}-0"),
                gateway_ip: outside(0),
                address_prefixes: vec!["10.2.0.0/16".parse().unwrap()],
                state: ProvisioningState::Succeeded,
                tags: tags(Role::LocalNetworkGateway(k, 0)),
            });
            o.azure.connections.push(Connection {
                id: format!("cn-id-{k}"),
                name: format!("azure-aws-cn-{k}-0"),
                gateway_id: "gw-id".into(),
                local_network_gateway_id: format!("lng-id-{k}"),
                protocol: "IKEv2".into(),
                shared_key: Some(key.clone()),
                enable_bgp: false,
                state: ProvisioningState::Succeeded,
                connection_status: "Connected".into(),
                tunnels: vec![],
                tags: tags(Role::Connection(k, 0)),
            });
        }
        o.azure.vpn_gateway = Some(VirtualNetworkGateway {
            id: "gw-id".into(),
            name: "azure-aws-vpngw".into(),
            sku: "VpnGw1AZ".into(),
            generation: "Generation1".into(),
            vpn_type: "RouteBased".into(),
            active_active: true,
            enable_bgp: false,
            asn: None,
            // Listed in the gateway's order; public IP 1 first on purpose.
            ip_configurations: vec![
                GatewayIpConfiguration { id: "c0".into(), name: "ipconfig-0".into(), public_ip_id: "pip-id-0".into() },
                GatewayIpConfiguration { id: "c1".into(), name: "ipconfig-1".into(), public_ip_id: "pip-id-1".into() },
            ],
            state: ProvisioningState::Succeeded,
            tags: tags(Role::VpnGateway),
        });
        o.aws.vpn_gateways.push(VpnGateway {
            id: "vgw-1".into(),
            state: AwsState::Available,
            amazon_asn: 64512,
            attachments: vec![VgwAttachment { vpc_id: "vpc-0123456789abcdef0".into(), state: AttachmentState::Attached }],
            tags: tags(Role::VirtualPrivateGateway),
        });
        o.aws.vpc.as_mut().unwrap().route_tables[0].routes.push(VpcRoute {
            destination: "10.1.0.0/16".parse().unwrap(),
            gateway_id: Some("vgw-1".into()),
            state: "active".into(),
        });
        o
    }

    #[test]
    fn fresh_deployment_plan() {
        let plan = plan_apply(&config(None), &prerequisites()).unwrap();
        let c = plan.counts();
        assert_eq!((c.create, c.modify, c.delete), (16, 0, 0));
        insta::assert_snapshot!("fresh_plan", plan.to_string());
        insta::assert_json_snapshot!("fresh_plan_json", plan.to_json());
    }

    #[test]
    fn plan_never_shows_a_key() {
        let plan = plan_apply(&config(Some("TopSecretKey123")), &prerequisites()).unwrap();
        let text = format!("{plan}{}{plan:?}", plan.to_json());
        assert!(!text.contains("TopSecretKey123"));
        assert!(text.contains("(sensitive"));
    }

    #[test]
    fn gateway_waits_for_both_public_ips_and_connections_wait_for_gateway_and_their_tunnel() {
        let plan = plan_apply(&config(None), &prerequisites()).unwrap();
        let find = |t: &str, n: &str| plan.steps.iter().find(|s| s.resource_type == t && s.name == n).unwrap();
        let gw = find("vpn_gateway", "azure-aws-vpngw");
        assert_eq!(gw.depends_on, vec![find("public_ip", "azure-aws-pip-0").id, find("public_ip", "azure-aws-pip-1").id]);
        let cn = find("connection", "azure-aws-cn-1-0");
        let vpn1 = find("vpn_connection", "vpn-1").id;
        let lng = find("local_network_gateway", "azure-aws-lng-1-0").id;
        assert!(cn.depends_on.contains(&gw.id) && cn.depends_on.contains(&vpn1) && cn.depends_on.contains(&lng));
        // Nothing on the AWS side waits for the 45-minute gateway.
        let aws_after_gateway = plan.steps.iter().filter(|s| s.cloud() == CloudName::Aws).any(|s| s.depends_on.contains(&gw.id));
        assert!(!aws_after_gateway);
        // CGW k reads the IP of public IP k: the pairing rule.
        let cgw1 = find("customer_gateway", "cgw-1");
        assert_eq!(cgw1.depends_on, vec![find("public_ip", "azure-aws-pip-1").id]);
    }

    #[test]
    fn finished_deployment_plans_nothing() {
        let plan = plan_apply(&config(None), &finished("SameKey.123")).unwrap();
        assert!(plan.is_empty(), "{plan}");
    }

    /// A finished deployment with `pins` (connection k: the /30 of each used tunnel)
    /// where EC2 put each connection's options on the tunnels in `order`
    /// (`[1, 0]`: TunnelOptions[0] landed on the higher outside IP), and the Azure
    /// side points at the tunnel that holds each pin.
    fn finished_with_pins(tpc: u8, pins: &[&str], swapped: [bool; 2]) -> (Config, Observed) {
        let list = pins.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ");
        let text = validate::EXAMPLE
            .replace("tunnels_per_connection = 1", &format!("tunnels_per_connection = {tpc}"))
            .replace("tunnel_inside_cidrs = []", &format!("tunnel_inside_cidrs = [{list}]"));
        let config = validate::parse(&text, Path::new("vpnbridge.toml"), &|_| None).expect("valid").config;
        let mut o = finished("SameKey.123");
        o.azure.local_network_gateways.clear();
        o.azure.connections.clear();
        let layout = config.layout();
        for (k, v) in o.aws.vpn_connections.iter_mut().enumerate() {
            let k8 = u8::try_from(k).unwrap();
            let want = layout.pins(k8);
            // EC2's own order: options [0], [1] onto tunnels by ascending IP, or swapped.
            let order: [usize; 2] = if swapped[k] { [1, 0] } else { [0, 1] };
            let mut by_ip = v.tunnels.clone();
            by_ip.sort_by_key(|t| t.outside_ip);
            for (opt, tunnel) in order.iter().enumerate() {
                // Unpinned options get a /30 AWS chose.
                by_ip[*tunnel].inside_cidr =
                    Some(want[opt].unwrap_or_else(|| format!("169.254.77.{}/30", 8 * k + 4 * opt).parse().unwrap()));
            }
            v.tunnels = by_ip;
            for t in 0..tpc {
                let ip = pairing::aws_tunnel(v, t, want).unwrap().outside_ip;
                // The deployment is right: the Azure side follows the pinned tunnel.
                assert_eq!(ip, v.tunnels[order[usize::from(t)]].outside_ip);
                o.azure.local_network_gateways.push(LocalNetworkGateway {
                    id: format!("lng-id-{k}-{t}"),
                    name: format!("azure-aws-lng-{k}-{t}"),
                    gateway_ip: ip,
                    address_prefixes: vec!["10.2.0.0/16".parse().unwrap()],
                    state: ProvisioningState::Succeeded,
                    tags: tags(Role::LocalNetworkGateway(k8, t)),
                });
                o.azure.connections.push(Connection {
                    id: format!("cn-id-{k}-{t}"),
                    name: format!("azure-aws-cn-{k}-{t}"),
                    gateway_id: "gw-id".into(),
                    local_network_gateway_id: format!("lng-id-{k}-{t}"),
                    protocol: "IKEv2".into(),
                    shared_key: Some(Psk::new("SameKey.123").unwrap()),
                    enable_bgp: false,
                    state: ProvisioningState::Succeeded,
                    connection_status: "Connected".into(),
                    tunnels: vec![],
                    tags: tags(Role::Connection(k8, t)),
                });
            }
        }
        (config, o)
    }

    /// EC2 does not promise that TunnelOptions[0] lands on the lower outside IP: a
    /// deployment whose pinned /30s landed "swapped" is correct and plans nothing, in
    /// both layouts (`aws.tunnel_inside_cidrs` is one /30 per used tunnel).
    #[test]
    fn pinned_inside_cidrs_are_matched_by_value_not_by_position() {
        let four = ["169.254.10.0/30", "169.254.11.0/30", "169.254.12.0/30", "169.254.13.0/30"];
        for swapped in [[false, true], [true, false], [true, true]] {
            let (config, o) = finished_with_pins(2, &four, swapped);
            let plan = plan_apply(&config, &o).unwrap();
            assert!(plan.is_empty(), "tpc 2, swapped {swapped:?}: {plan}");
            let (config, o) = finished_with_pins(1, &four[..2], swapped);
            let plan = plan_apply(&config, &o).unwrap();
            assert!(plan.is_empty(), "tpc 1, swapped {swapped:?}: {plan}");
        }
    }

    /// With one tunnel per connection, the two /30s pin connection 1's and connection
    /// 2's used tunnel (not both tunnels of connection 1).
    #[test]
    fn one_tunnel_per_connection_pins_each_connections_used_tunnel() {
        let (config, mut o) = finished_with_pins(1, &["169.254.10.0/30", "169.254.11.0/30"], [false, false]);
        let plan = plan_apply(&config, &o).unwrap();
        assert!(plan.is_empty(), "{plan}");
        // A fresh build asks for exactly those: /30 k on connection k's first options.
        o.aws.vpn_connections.clear();
        let plan = plan_apply(&config, &o).unwrap();
        let specs: Vec<Vec<Option<String>>> = plan
            .steps
            .iter()
            .filter_map(|s| match &s.op {
                StepOp::Aws(AwsOp::CreateVpnConnection { tunnels, .. }) => {
                    Some(tunnels.iter().map(|t| t.inside_cidr.map(|c| c.to_string())).collect())
                }
                _ => None,
            })
            .collect();
        assert_eq!(specs, [vec![Some("169.254.10.0/30".to_owned()), None], vec![Some("169.254.11.0/30".to_owned()), None]]);
    }

    /// A Connection found Deleting (an interrupted drill) is not "present": the plan
    /// waits for it to go, then creates it again, and says so. Likewise a public IP or
    /// the gateway found Deleting (an interrupted destroy).
    #[test]
    fn resources_found_deleting_are_waited_out_and_created_again() {
        let mut o = finished("SameKey.123");
        o.azure.connections[0].state = ProvisioningState::Deleting;
        let plan = plan_apply(&config(None), &o).unwrap();
        let kinds: Vec<(Action, &str, &str)> = plan.steps.iter().map(|s| (s.action, s.resource_type, s.name.as_str())).collect();
        assert_eq!(
            kinds,
            [(Action::Wait, "connection", "azure-aws-cn-0-0 (being deleted)"), (Action::Create, "connection", "azure-aws-cn-0-0")],
            "{plan}"
        );
        assert_eq!(plan.steps[1].depends_on, vec![plan.steps[0].id]);
        assert!(plan.to_string().contains("created again once it is gone"), "{plan}");

        let mut o = finished("SameKey.123");
        o.azure.vpn_gateway.as_mut().unwrap().state = ProvisioningState::Deleting;
        let plan = plan_apply(&config(None), &o).unwrap();
        let gw = plan.steps.iter().find(|s| s.action == Action::Create && s.resource_type == "vpn_gateway").expect("gateway recreated");
        let wait = plan.steps.iter().find(|s| s.action == Action::Wait && s.resource_type == "vpn_gateway").unwrap();
        assert!(gw.depends_on.contains(&wait.id), "{plan}");
    }

    #[test]
    fn new_key_is_changed_in_place_one_tunnel_at_a_time() {
        let plan = plan_apply(&config(Some("BrandNewKey_456")), &finished("OldKey.123")).unwrap();
        let c = plan.counts();
        assert_eq!((c.create, c.modify, c.delete), (0, 4, 0), "{plan}");
        // aws tunnel 0 -> azure cn-0-0 -> aws tunnel of vpn-1 -> azure cn-1-0: a chain.
        for w in plan.steps.windows(2) {
            assert_eq!(w[1].depends_on, vec![w[0].id], "{plan}");
        }
        assert!(plan.steps.iter().all(|s| s.disruption.is_some()));
        insta::assert_snapshot!("rotate_key_plan", plan.to_string());
    }

    #[test]
    fn pairing_follows_ip_configurations_not_list_order() {
        let mut o = finished("SameKey.123");
        // The public IP list comes back in the other order: nothing changes.
        o.azure.public_ips.reverse();
        assert!(plan_apply(&config(None), &o).unwrap().is_empty());
        // Instance 0 now has a new IP (the Azure side was rebuilt): CGW 0 no longer
        // fits, so a new one is made and VPN connection 0 moves to it in place.
        o.azure.public_ips.iter_mut().find(|p| p.name == "azure-aws-pip-0").unwrap().ip = Some(Ipv4Addr::new(20, 0, 0, 99));
        let plan = plan_apply(&config(None), &o).unwrap();
        let kinds: Vec<(Action, &str, &str)> = plan.steps.iter().map(|s| (s.action, s.resource_type, s.name.as_str())).collect();
        assert_eq!(
            kinds,
            vec![
                (Action::Create, "customer_gateway", "cgw-0"),
                (Action::Modify, "vpn_connection", "vpn-0 vpn-0"),
                (Action::Delete, "customer_gateway", "replaced cgw-0 cgw-0"),
            ],
            "{plan}"
        );
        assert!(
            matches!(&plan.steps[0].op, StepOp::Aws(AwsOp::CreateCustomerGateway { ip: Late::Known(ip), .. }) if *ip == Ipv4Addr::new(20, 0, 0, 99))
        );
        assert_eq!(plan.steps[1].depends_on, vec![0]);
        assert_eq!(plan.steps[2].depends_on, vec![1], "the old CGW goes only after the connection moved off it");
        assert!(plan.steps[1].disruption.as_deref().unwrap().contains("both tunnels"), "{plan}");
    }

    #[test]
    fn preflight_reports_every_conflict_at_once() {
        let mut o = prerequisites();
        o.azure.vnet.as_mut().unwrap().subnets.clear();
        o.aws.foreign_vgw_on_vpc = Some("vgw-foreign".into());
        o.azure.foreign_names.push("azure-aws-vpngw".into());
        let err = plan_apply(&config(None), &o).unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        assert!(err.to_string().contains("GatewaySubnet"));
        assert!(err.to_string().contains("vgw-foreign"));
        assert!(err.to_string().contains("will not take it over"));
    }

    #[test]
    fn destroy_touches_only_tagged_resources_in_dependency_order() {
        let mut o = finished("SameKey.123");
        // A foreign route and a foreign LNG beside ours.
        o.aws.vpc.as_mut().unwrap().route_tables[0].routes.push(VpcRoute {
            destination: "192.168.0.0/16".parse().unwrap(),
            gateway_id: Some("vgw-foreign".into()),
            state: "active".into(),
        });
        let mut foreign = o.azure.local_network_gateways[0].clone();
        foreign.name = "someone-elses".into();
        foreign.tags.clear();
        o.azure.local_network_gateways.push(foreign);
        let plan = plan_destroy(&config(None), &o).unwrap();
        let names: Vec<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
        assert!(!names.iter().any(|n| n.contains("someone-elses") || n.contains("192.168")), "{names:?}");
        let c = plan.counts();
        // 2 cn + 2 lng + gw + 2 pip; 2 vpn + 2 cgw + 1 route + detach + vgw.
        assert_eq!(c.delete, 14, "{plan}");
        let id = |t: &str, n: &str| plan.steps.iter().find(|s| s.resource_type == t && s.name.contains(n)).unwrap().id;
        let gw = &plan.steps[id("vpn_gateway", "azure-aws-vpngw")];
        assert!(gw.depends_on.contains(&id("connection", "cn-0-0")));
        let pip = &plan.steps[id("public_ip", "pip-0")];
        assert!(pip.depends_on.contains(&gw.id));
        let vgw = &plan.steps[id("vpn_gateway", "vgw vgw-1")];
        assert!(vgw.depends_on.contains(&id("vpn_gateway_attachment", "vgw-1")));
        insta::assert_snapshot!("destroy_plan", plan.to_string());
    }

    #[test]
    fn bgp_ha_is_refused_before_anything_is_observed() {
        let text = validate::EXAMPLE
            .replace("mode = \"static-ha\"", "mode = \"bgp-ha\"")
            .replace("tunnels_per_connection = 1", "tunnels_per_connection = 2");
        let cfg = validate::parse(&text, Path::new("vpnbridge.toml"), &|_| None).unwrap().config;
        let err = check_supported(&cfg).unwrap_err();
        assert!(err.to_string().contains("static-ha"));
    }
}
