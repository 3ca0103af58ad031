//! The planner: config + observed state -> an immutable [`Plan`].
//!
//! Pure: no I/O, no clock. A plan is a DAG of steps; values known only after an
//! earlier step are [`Late`]. Destroy is the plan for an empty desired state. The plan
//! prints like a Terraform plan and serialises to JSON; neither shows a secret.
//!
//! Where things are:
//! - this file: the plan's types ([`Plan`], [`Step`], [`Action`], [`StepOp`]), the
//!   step builder, and [`plan_apply`], which runs the parts below in order;
//! - [`preflight`](fn@preflight): what the observed networks contradict, before any step;
//! - `azure_gateway`, `aws_gateway`, `aws_connections`, `tunnel_changes`,
//!   `azure_tunnels`, `prune`: the apply planner, one domain each;
//! - `destroy`: [`plan_destroy`];
//! - `render`: how a plan prints.

use std::collections::BTreeMap;
use std::fmt;

use ipnet::{IpNet, Ipv4Net};
use serde::Serialize;

use crate::config::{Config, Mode};
use crate::endpoint::CloudName;
use crate::model::{AwsObserved, AzureObserved, Owner, ProvisioningState};
use crate::ops::{AwsOp, AzureOp, AzureResourceKind, Planned, StepId};
use crate::pairing::{Names, TunnelLayout, TunnelSlot};

mod aws_connections;
mod aws_gateway;
mod azure_gateway;
mod azure_tunnels;
mod destroy;
mod preflight;
mod prune;
mod render;
#[cfg(test)]
mod tests;
mod tunnel_changes;

pub use destroy::plan_destroy;
pub use preflight::preflight;

/// Dead Peer Detection timeout set on Azure Connections (Azure's default).
pub const AZURE_DPD_SECONDS: u32 = 45;

/// Both clouds' observed state.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub azure: AzureObserved,
    pub aws: AwsObserved,
}

/// What a step does to its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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

/// What kind of resource a step acts on, in the plan's words (serialised as
/// `snake_case`: `vpn_gateway`, `customer_gateway`…). Azure's gateway and AWS's VGW are
/// both `VpnGateway`: the step's cloud tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    PublicIp,
    VpnGateway,
    LocalNetworkGateway,
    Connection,
    CustomerGateway,
    VpnGatewayAttachment,
    VpcRoute,
    /// A route table's propagation of the VGW's BGP routes.
    RoutePropagation,
    VpnConnection,
    VpnConnectionRoute,
    VpnTunnel,
}

impl ResourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PublicIp => "public_ip",
            Self::VpnGateway => "vpn_gateway",
            Self::LocalNetworkGateway => "local_network_gateway",
            Self::Connection => "connection",
            Self::CustomerGateway => "customer_gateway",
            Self::VpnGatewayAttachment => "vpn_gateway_attachment",
            Self::VpcRoute => "vpc_route",
            Self::RoutePropagation => "route_propagation",
            Self::VpnConnection => "vpn_connection",
            Self::VpnConnectionRoute => "vpn_connection_route",
            Self::VpnTunnel => "vpn_tunnel",
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One node of the plan.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: StepId,
    pub action: Action,
    /// Resource type in the user's words (`vpn_connection`, `local_network_gateway`).
    pub resource_type: ResourceType,
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

/// Whether the plan builds (or converges) the deployment or tears it down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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

    /// What `plan --output json` prints (format_version 1; see the README): the plan as
    /// data, with no secret in it.
    pub fn document(&self) -> PlanDocument {
        let steps = self
            .steps
            .iter()
            .map(|s| StepDocument {
                id: s.id,
                cloud: s.cloud(),
                action: s.action,
                resource_type: s.resource_type,
                name: s.name.clone(),
                depends_on: s.depends_on.clone(),
                attributes: s.attributes().into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                disruption: s.disruption.clone(),
            })
            .collect();
        PlanDocument {
            format_version: 1,
            deployment: self.deployment.clone(),
            kind: self.kind,
            mode: self.mode,
            changes: self.counts(),
            steps,
            tunnels: self.tunnels.clone(),
            notes: self.notes.clone(),
        }
    }
}

/// A plan as data: the JSON of `plan --output json`, and `plan` in apply's and
/// destroy's JSON. Version 1; later versions only add fields.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PlanDocument {
    /// Always 1 for this format.
    #[schemars(extend("const" = 1))]
    pub format_version: u32,
    pub deployment: String,
    pub kind: PlanKind,
    pub mode: Mode,
    /// Steps by action.
    pub changes: ChangeCount,
    pub steps: Vec<StepDocument>,
    /// The used tunnels and which Azure instance is expected up for each.
    pub tunnels: Vec<TunnelSlot>,
    /// Things to know that change nothing (drift left alone, warnings).
    pub notes: Vec<String>,
}

/// One step of a [`PlanDocument`].
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct StepDocument {
    pub id: StepId,
    pub cloud: CloudName,
    pub action: Action,
    pub resource_type: ResourceType,
    /// Name (Azure) or role and id (AWS).
    pub name: String,
    /// Steps that must finish first.
    pub depends_on: Vec<StepId>,
    /// What the step sets, as the human plan shows it (values known later say so; a
    /// pre-shared key shows as "(sensitive)").
    pub attributes: BTreeMap<String, String>,
    /// What the change interrupts, if anything.
    pub disruption: Option<String>,
}

/// A plan serialises as its [`PlanDocument`].
impl Serialize for Plan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.document().serialize(s)
    }
}

impl schemars::JsonSchema for Plan {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        PlanDocument::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        PlanDocument::json_schema(generator)
    }
}

/// Why no plan can be made: the observed world contradicts the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} problem(s) found before any change:\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct PlanError(pub Vec<String>);

/// Refuses what this version cannot build, before anything is observed: bgp-ha needs
/// a pinned inside CIDR for every tunnel (the config gives the defaults when the list
/// is empty), as its BGP addresses are the CIDRs' hosts.
pub fn check_supported(config: &Config) -> Result<(), PlanError> {
    if config.mode == Mode::BgpHa && crate::bgp::gateway(&config.layout(), config.azure.asn).is_none() {
        return Err(PlanError(vec![format!(
            "{}: mode = \"bgp-ha\" needs an inside CIDR for each of the 4 tunnels: list four /30s in aws.tunnel_inside_cidrs \
             or leave it empty for the defaults",
            config.source.display()
        )]));
    }
    Ok(())
}

struct Builder {
    steps: Vec<Step>,
}

impl Builder {
    fn push(&mut self, action: Action, resource_type: ResourceType, name: String, op: StepOp, after: &[Option<StepId>]) -> StepId {
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

/// What every part of the apply planner reads, and the steps and problems they add.
struct Ctx<'a> {
    config: &'a Config,
    az: &'a AzureObserved,
    aws: &'a AwsObserved,
    owner: Owner,
    names: Names,
    layout: TunnelLayout,
    /// The config file, for messages.
    file: String,
    azure_prefixes: Vec<IpNet>,
    aws_prefixes: Vec<IpNet>,
    b: Builder,
    problems: Vec<String>,
}

/// Plans the changes that make the clouds match `config`: the Azure gateway, the AWS
/// gateway and routes, the AWS connections, in-place tunnel changes, the Azure tunnels,
/// then what is no longer wanted. Every problem found on the way is reported at once.
pub fn plan_apply(config: &Config, observed: &Observed) -> Result<Plan, PlanError> {
    check_supported(config)?;
    let mut cx = Ctx {
        config,
        az: &observed.azure,
        aws: &observed.aws,
        owner: Owner::new(&config.name),
        names: Names::new(&config.name),
        layout: config.layout(),
        file: config.source.display().to_string(),
        azure_prefixes: config.azure.address_space.iter().map(|p| IpNet::V4(*p)).collect(),
        aws_prefixes: config.aws.cidrs.iter().map(|p| IpNet::V4(*p)).collect(),
        b: Builder { steps: Vec::new() },
        problems: preflight(config, observed),
    };
    let gateway = azure_gateway::plan(&mut cx);
    let vgw = aws_gateway::plan(&mut cx);
    let connections = aws_connections::plan(&mut cx, &gateway, &vgw);
    let key_changed = tunnel_changes::plan(&mut cx, &connections);
    let slots = azure_tunnels::plan(&mut cx, &gateway, &connections.tunnel_values, &key_changed);
    prune::plan(&mut cx, &slots);
    settle_gates(&mut cx.b.steps, &cx.names, gateway.outage);

    // Values that are unavailable (`Late::Unavailable`) were reported as problems above.
    if !cx.problems.is_empty() {
        return Err(PlanError(cx.problems));
    }
    let mut notes = Vec::new();
    if cx.az.vpn_gateway.is_none()
        && cx.b.steps.iter().any(|s| s.resource_type == ResourceType::VpnGateway && s.cloud() == CloudName::Azure)
    {
        notes.push(
            "the Azure VPN gateway takes about 45 minutes to build; the AWS side and the LocalNetworkGateways are built meanwhile".into(),
        );
    }
    Ok(Plan { deployment: config.name.clone(), kind: PlanKind::Apply, mode: config.mode, steps: cx.b.steps, tunnels: slots, notes })
}

/// A step done only once its tunnels are up again ([`Step::until_up`]) must be the last
/// of those tunnels' change, and must not wait while the gateway is down for everyone:
/// - when the Azure end of the same tunnel changes after it (in bgp-ha a new inside CIDR
///   also moves the LNG's BGP peer and the Connection's BGP address, without which the
///   tunnel cannot come up), the wait moves to the last of those steps, and the steps
///   that waited for the first (the next tunnel's change) wait for that one;
/// - when the existing gateway is updated with every tunnel down (`outage`: its BGP
///   settings, or a Failed gateway provisioned again), the waiting step starts only once
///   the update is over (a customer gateway swap for a new ASN in bgp-ha, say).
fn settle_gates(steps: &mut [Step], names: &Names, outage: Option<StepId>) {
    // Whether step `a` comes after step `b` (depends on it, directly or not). Once a
    // wait has moved, a step may depend on a later one, so every path is followed.
    fn after(steps: &[Step], a: StepId, b: StepId) -> bool {
        let mut seen = vec![false; steps.len()];
        let mut todo = vec![a];
        while let Some(s) = todo.pop() {
            for &d in &steps[s].depends_on {
                if d == b {
                    return true;
                }
                if !std::mem::replace(&mut seen[d], true) {
                    todo.push(d);
                }
            }
        }
        false
    }
    fn add_dependency(step: &mut Step, on: StepId) {
        step.depends_on.push(on);
        step.depends_on.sort_unstable();
        step.depends_on.dedup();
    }
    for g in 0..steps.len() {
        if steps[g].until_up.is_empty() {
            continue;
        }
        let tunnel_names: Vec<String> = steps[g]
            .until_up
            .iter()
            .flat_map(|u| [names.local_network_gateway(u.connection, u.tunnel), names.connection(u.connection, u.tunnel)])
            .collect();
        let of_the_tunnel = |s: &Step| {
            s.cloud() == CloudName::Azure
                && matches!(s.resource_type, ResourceType::LocalNetworkGateway | ResourceType::Connection)
                && tunnel_names.contains(&s.name)
        };
        let last = (g + 1..steps.len()).filter(|&s| of_the_tunnel(&steps[s]) && after(steps, s, g)).max();
        let holder = match last {
            None => g,
            Some(l) => {
                let moved = std::mem::take(&mut steps[g].until_up);
                steps[l].until_up.extend(moved);
                const NEXT: &str = "; the next tunnel is touched only once this one is up again at both ends";
                if let Some(d) = steps[g].disruption.as_mut()
                    && let Some(i) = d.find(NEXT)
                {
                    d.replace_range(i..i + NEXT.len(), "");
                }
                if let Some(d) = steps[l].disruption.as_mut().filter(|d| !d.contains(NEXT)) {
                    d.push_str(NEXT);
                }
                let waiters: Vec<StepId> = (0..steps.len())
                    .filter(|&s| s != l && steps[s].depends_on.contains(&g) && !of_the_tunnel(&steps[s]) && !after(steps, l, s))
                    .collect();
                for s in waiters {
                    add_dependency(&mut steps[s], l);
                }
                l
            }
        };
        if let Some(o) = outage
            && o != holder
            && !after(steps, holder, o)
            && !after(steps, o, holder)
        {
            add_dependency(&mut steps[holder], o);
        }
    }
}

fn join<T: fmt::Display>(v: &[T]) -> String {
    v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// A resource found `Deleting` is not there: a step that waits until it is gone (so it
/// can be created again), or `None` when it is not being deleted.
fn wait_for_deletion(
    b: &mut Builder,
    state: Option<ProvisioningState>,
    kind: AzureResourceKind,
    name: &str,
    rtype: ResourceType,
) -> Option<StepId> {
    (state == Some(ProvisioningState::Deleting)).then(|| {
        let op = AzureOp::Await { kind, name: name.to_owned() };
        let id = b.push(Action::Wait, rtype, format!("{name} (being deleted)"), StepOp::Azure(op), &[]);
        b.disrupt(id, format!("{name} is being deleted (an interrupted drill or destroy?); it is created again once it is gone"));
        id
    })
}

fn wait_if_updating(b: &mut Builder, state: ProvisioningState, kind: AzureResourceKind, name: &str, rtype: ResourceType) -> Option<StepId> {
    (state == ProvisioningState::Updating || state == ProvisioningState::Deleting).then(|| {
        let op = AzureOp::Await { kind, name: name.to_owned() };
        b.push(Action::Wait, rtype, name.to_owned(), StepOp::Azure(op), &[])
    })
}

/// The prefixes that cross the VPN, for messages.
pub fn routed_prefixes(config: &Config) -> (Vec<Ipv4Net>, Vec<Ipv4Net>) {
    (config.azure.address_space.clone(), config.aws.cidrs.clone())
}
