//! The typed reports [`Deployment`](crate::Deployment)'s methods return. Each serialises
//! (serde) to the JSON document the CLI prints with `--output json`, format_version 1;
//! [`schemas`] are the JSON Schemas of those documents, checked in under `docs/schema/`.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};
use schemars::JsonSchema;
use serde::Serialize;
use vpnbridge_core::config::Config;
use vpnbridge_core::drill::{self, DrillResult};
use vpnbridge_core::endpoint::{CallCount, CloudName, Tunnel, TunnelStatus};
use vpnbridge_core::exec::ExecReport;
use vpnbridge_core::model::{AttachmentState, AwsState, AzureTunnelStatus, ProvisioningState, VgwTelemetry};
use vpnbridge_core::pairing::{ObservedTunnel, TunnelHealth};
use vpnbridge_core::plan::{Observed, Plan, PlanKind};
use vpnbridge_core::topology::Topology;
use vpnbridge_core::verify::{self, VerifyResult};
use vpnbridge_sim::TrafficLoss;

/// The only format version so far; a later one only adds fields.
pub const FORMAT_VERSION: u32 = 1;

/// The command a document comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    Init,
    Plan,
    Apply,
    Destroy,
    Status,
    Verify,
    Drill,
}

/// Which sides run on the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Simulated {
    pub azure: bool,
    pub aws: bool,
}

/// Calls made through both endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Calls {
    pub azure: CallCount,
    pub aws: CallCount,
}

impl Calls {
    pub fn mutations(&self) -> u64 {
        self.azure.mutations + self.aws.mutations
    }
}

/// `plan`: what apply (or destroy) would do.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PlanReport {
    /// `plan`.
    pub command: Command,
    #[serde(flatten)]
    pub plan: Plan,
    /// The preflight's warnings (e.g. no security group lets the ping of `verify` in).
    pub warnings: Vec<String>,
}

impl PlanReport {
    pub(crate) fn new(plan: Plan, warnings: Vec<String>) -> Self {
        Self { command: Command::Plan, plan, warnings }
    }
}

/// How an apply or destroy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApplyResult {
    /// Every step done (destroy included).
    Applied,
    /// Some steps failed; running the same command again picks up where this stopped.
    Failed,
    /// Nothing to do.
    NoChanges,
}

/// Why there was nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoChangesReason {
    /// apply: the clouds already match the config.
    MatchesConfiguration,
    /// destroy: nothing of the deployment exists.
    NothingExists,
}

/// `apply` / `destroy`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ApplyReport {
    #[schemars(extend("const" = 1))]
    pub format_version: u32,
    /// `apply` or `destroy`.
    pub command: Command,
    pub deployment: String,
    pub result: ApplyResult,
    /// With `no_changes` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<NoChangesReason>,
    pub simulated: Simulated,
    /// The plan that ran (empty with `no_changes`).
    pub plan: Plan,
    /// What ran, unless there was nothing to do.
    #[serde(flatten)]
    pub run: Option<Run>,
    /// Wall-clock seconds of the whole command.
    pub wall_seconds: f64,
    pub calls: Calls,
    /// The preflight's warnings.
    pub warnings: Vec<String>,
}

/// What an apply or destroy that had something to do ran.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Run {
    /// Every step's outcome and timing.
    pub execution: ExecReport,
    /// From the first step to the last (simulated time on the simulator).
    pub modelled_seconds: f64,
    /// When the tunnels were last checked, from the first step.
    pub tunnels_checked_at_seconds: f64,
    /// apply: how the tunnels pair up once the steps ran (empty for destroy or failure).
    pub tunnels: Vec<ObservedTunnel>,
    pub tunnel_health: Vec<TunnelHealth>,
    /// `apply --watch-traffic` only: seconds without a path while the change ran.
    pub traffic: Option<TrafficLoss>,
}

impl ApplyReport {
    pub(crate) fn new(kind: PlanKind, plan: Plan, simulated: Simulated, warnings: Vec<String>) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            command: if kind == PlanKind::Apply { Command::Apply } else { Command::Destroy },
            deployment: plan.deployment.clone(),
            result: ApplyResult::NoChanges,
            reason: None,
            simulated,
            plan,
            run: None,
            wall_seconds: 0.0,
            calls: Calls::default(),
            warnings,
        }
    }

    pub(crate) fn no_changes(&mut self, calls: Calls, wall: Duration) {
        self.result = ApplyResult::NoChanges;
        self.reason = Some(match self.plan.kind {
            PlanKind::Apply => NoChangesReason::MatchesConfiguration,
            PlanKind::Destroy => NoChangesReason::NothingExists,
        });
        self.calls = calls;
        self.wall_seconds = wall.as_secs_f64();
    }

    pub(crate) fn executed(&mut self, run: Run, calls: Calls, wall: Duration) {
        self.result = if run.execution.succeeded() { ApplyResult::Applied } else { ApplyResult::Failed };
        self.run = Some(run);
        self.calls = calls;
        self.wall_seconds = wall.as_secs_f64();
    }

    /// Every step done, or nothing to do.
    pub fn succeeded(&self) -> bool {
        self.result != ApplyResult::Failed
    }

    /// Seconds from the first step to the last, if anything ran.
    pub fn modelled_seconds(&self) -> Option<f64> {
        self.run.as_ref().map(|r| r.modelled_seconds)
    }
}

/// `status`: what exists in both clouds and how the tunnels pair up.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StatusReport {
    #[schemars(extend("const" = 1))]
    pub format_version: u32,
    /// `status`.
    pub command: Command,
    pub deployment: String,
    pub simulated: Simulated,
    pub tunnels: Vec<ObservedTunnel>,
    pub tunnel_health: Vec<TunnelHealth>,
    /// Every tunnel end both clouds report.
    pub tunnel_ends: Vec<TunnelEnd>,
    pub resources: Resources,
    /// Both clouds as observed (not serialised: `resources` is its summary).
    #[serde(skip)]
    pub observed: Observed,
    /// The topology, for `--output mermaid` / `dot`.
    #[serde(skip)]
    pub topology: Topology,
}

impl StatusReport {
    pub(crate) fn new(
        config: &Config,
        simulated: Simulated,
        observed: Observed,
        tunnels: Vec<ObservedTunnel>,
        tunnel_health: Vec<TunnelHealth>,
        ends: &[Box<dyn Tunnel>],
    ) -> Self {
        let topology = Topology::new(config, &observed, &tunnels, &tunnel_health);
        Self {
            format_version: FORMAT_VERSION,
            command: Command::Status,
            deployment: config.name.clone(),
            simulated,
            tunnel_ends: ends.iter().map(|e| TunnelEnd::of(e.as_ref())).collect(),
            resources: Resources::of(&observed),
            tunnels,
            tunnel_health,
            observed,
            topology,
        }
    }
}

/// One end of a tunnel, as its cloud reports it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct TunnelEnd {
    pub cloud: CloudName,
    /// The resource holding this end (a VPN connection id, a Connection name).
    pub resource: String,
    /// Azure: the gateway instance; AWS: the tunnel's index in its VPN connection.
    pub instance: usize,
    pub outside_ip: Ipv4Addr,
    /// The IP this end expects the other end to come from.
    pub peer_ip: Ipv4Addr,
    #[schemars(with = "Option<String>")]
    pub inside_cidr: Option<Ipv4Net>,
    pub status: TunnelStatus,
}

impl TunnelEnd {
    fn of(e: &dyn Tunnel) -> Self {
        Self {
            cloud: e.cloud(),
            resource: e.resource().to_owned(),
            instance: e.instance(),
            outside_ip: e.outside_ip(),
            peer_ip: e.peer_ip(),
            inside_cidr: e.inside_cidr(),
            status: e.status().clone(),
        }
    }
}

/// What this deployment owns in each cloud (no secret: pre-shared keys are left out).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Resources {
    pub azure: AzureResources,
    pub aws: AwsResources,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct AzureResources {
    pub public_ips: Vec<PublicIp>,
    pub vpn_gateway: Option<VpnGateway>,
    pub local_network_gateways: Vec<LocalNetworkGateway>,
    pub connections: Vec<Connection>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct PublicIp {
    pub name: String,
    pub id: String,
    pub ip_address: Option<Ipv4Addr>,
    pub state: ProvisioningState,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct VpnGateway {
    pub name: String,
    pub id: String,
    pub sku: String,
    pub generation: String,
    pub active_active: bool,
    pub state: ProvisioningState,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct LocalNetworkGateway {
    pub name: String,
    pub gateway_ip: Ipv4Addr,
    #[schemars(with = "Vec<String>")]
    pub address_prefixes: Vec<IpNet>,
    pub state: ProvisioningState,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Connection {
    pub name: String,
    /// The aggregate `connectionStatus`.
    pub connection_status: String,
    /// Per gateway instance (`tunnelConnectionStatus`).
    pub tunnels: Vec<AzureTunnelStatus>,
    pub state: ProvisioningState,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct AwsResources {
    pub vpn_gateways: Vec<Vgw>,
    pub customer_gateways: Vec<CustomerGateway>,
    pub vpn_connections: Vec<VpnConnection>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Vgw {
    pub id: String,
    pub amazon_side_asn: u32,
    pub state: AwsState,
    pub attachments: Vec<VgwAttachment>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct VgwAttachment {
    pub vpc_id: String,
    pub state: AttachmentState,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct CustomerGateway {
    pub id: String,
    pub ip_address: Ipv4Addr,
    pub bgp_asn: u32,
    pub state: AwsState,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct VpnConnection {
    pub id: String,
    pub customer_gateway_id: String,
    pub vpn_gateway_id: String,
    pub state: AwsState,
    /// Static routes' destinations.
    #[schemars(with = "Vec<String>")]
    pub routes: Vec<IpNet>,
    pub telemetry: Vec<VgwTelemetry>,
}

impl Resources {
    fn of(o: &Observed) -> Self {
        let az = &o.azure;
        let aws = &o.aws;
        Self {
            azure: AzureResources {
                public_ips: az
                    .public_ips
                    .iter()
                    .map(|p| PublicIp { name: p.name.clone(), id: p.id.clone(), ip_address: p.ip, state: p.state })
                    .collect(),
                vpn_gateway: az.vpn_gateway.as_ref().map(|g| VpnGateway {
                    name: g.name.clone(),
                    id: g.id.clone(),
                    sku: g.sku.clone(),
                    generation: g.generation.clone(),
                    active_active: g.active_active,
                    state: g.state,
                }),
                local_network_gateways: az
                    .local_network_gateways
                    .iter()
                    .map(|l| LocalNetworkGateway {
                        name: l.name.clone(),
                        gateway_ip: l.gateway_ip,
                        address_prefixes: l.address_prefixes.clone(),
                        state: l.state,
                    })
                    .collect(),
                connections: az
                    .connections
                    .iter()
                    .map(|c| Connection {
                        name: c.name.clone(),
                        connection_status: c.connection_status.clone(),
                        tunnels: c.tunnels.clone(),
                        state: c.state,
                    })
                    .collect(),
            },
            aws: AwsResources {
                vpn_gateways: aws
                    .vpn_gateways
                    .iter()
                    .map(|v| Vgw {
                        id: v.id.clone(),
                        amazon_side_asn: v.amazon_asn,
                        state: v.state,
                        attachments: v.attachments.iter().map(|a| VgwAttachment { vpc_id: a.vpc_id.clone(), state: a.state }).collect(),
                    })
                    .collect(),
                customer_gateways: aws
                    .customer_gateways
                    .iter()
                    .map(|c| CustomerGateway { id: c.id.clone(), ip_address: c.ip, bgp_asn: c.bgp_asn, state: c.state })
                    .collect(),
                vpn_connections: aws
                    .vpn_connections
                    .iter()
                    .map(|v| VpnConnection {
                        id: v.id.clone(),
                        customer_gateway_id: v.customer_gateway_id.clone(),
                        vpn_gateway_id: v.vpn_gateway_id.clone(),
                        state: v.state,
                        routes: v.routes.iter().map(|r| r.destination).collect(),
                        telemetry: v.telemetry.clone(),
                    })
                    .collect(),
            },
        }
    }
}

/// What `verify` or `drill` found, as the CLI's exit code says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Everything checked, traffic included, is right.
    Ok,
    /// A tunnel down, a diagnosis, connectivity lost, a tunnel that did not come back.
    Problems,
    /// The control plane is right; the data plane cannot be observed here.
    NotObservable,
    /// The control plane is right; the probe VMs could not run the ping (traffic
    /// unknown, not lost).
    ProbeFailed,
}

/// `verify`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VerifyReport {
    #[schemars(extend("const" = 1))]
    pub format_version: u32,
    /// `verify`.
    pub command: Command,
    pub simulated: Simulated,
    #[serde(flatten)]
    pub report: verify::VerifyReport,
}

impl VerifyReport {
    pub(crate) fn new(simulated: Simulated, report: verify::VerifyReport) -> Self {
        Self { format_version: FORMAT_VERSION, command: Command::Verify, simulated, report }
    }

    pub fn outcome(&self) -> Outcome {
        match (self.report.result, self.report.data_plane.observable) {
            (VerifyResult::Problems, _) => Outcome::Problems,
            (VerifyResult::Ok, false) if self.report.probe_error.is_some() => Outcome::ProbeFailed,
            (VerifyResult::Ok, false) => Outcome::NotObservable,
            (VerifyResult::Ok, true) => Outcome::Ok,
        }
    }
}

impl std::ops::Deref for VerifyReport {
    type Target = verify::VerifyReport;
    fn deref(&self) -> &Self::Target {
        &self.report
    }
}

/// How a drill row failed by the probe reads: that is the probe's outcome, not lost
/// connectivity.
const PROBE_FAILED_PREFIX: &str = "the probe could not run";

/// `drill`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DrillReport {
    #[schemars(extend("const" = 1))]
    pub format_version: u32,
    /// `drill`.
    pub command: Command,
    pub simulated: Simulated,
    #[serde(flatten)]
    pub report: drill::DrillReport,
}

impl DrillReport {
    pub(crate) fn new(simulated: Simulated, report: drill::DrillReport) -> Self {
        Self { format_version: FORMAT_VERSION, command: Command::Drill, simulated, report }
    }

    /// Whether a row failed because the probe could not run (traffic unknown).
    pub fn probe_failed(&self) -> bool {
        self.report.tunnels.iter().any(|r| r.error.as_deref().is_some_and(|e| e.starts_with(PROBE_FAILED_PREFIX)))
    }

    pub fn outcome(&self) -> Outcome {
        match (self.report.result, self.report.data_plane.observable) {
            (DrillResult::Failed, _) if self.probe_failed() => Outcome::ProbeFailed,
            (DrillResult::Failed, _) => Outcome::Problems,
            (DrillResult::Passed, false) => Outcome::NotObservable,
            (DrillResult::Passed, true) => Outcome::Ok,
        }
    }
}

impl std::ops::Deref for DrillReport {
    type Target = drill::DrillReport;
    fn deref(&self) -> &Self::Target {
        &self.report
    }
}

/// `init`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct InitReport {
    #[schemars(extend("const" = 1))]
    pub format_version: u32,
    /// `init`.
    pub command: Command,
    /// The config file written.
    pub written: PathBuf,
}

impl InitReport {
    pub fn new(written: PathBuf) -> Self {
        Self { format_version: FORMAT_VERSION, command: Command::Init, written }
    }
}

/// What any command prints with `--output json` when it fails before its report.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ErrorReport {
    #[schemars(extend("const" = 1))]
    pub format_version: u32,
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// `config`, `unsupported`, `preflight`, `not_confirmed`, `locked`,
    /// `not_observable`, `error`.
    pub kind: String,
    /// One per problem.
    pub messages: Vec<String>,
    /// `config` only: how many problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
}

impl ErrorReport {
    pub fn new(e: &crate::Error) -> Self {
        let count = match e {
            crate::Error::Config(c) => Some(c.0.len()),
            _ => None,
        };
        Self { format_version: FORMAT_VERSION, error: ErrorBody { kind: e.kind().to_owned(), messages: e.messages(), count } }
    }
}

/// The JSON Schema of every document, and of `vpnbridge.toml`, by file name under
/// `docs/schema/`.
pub fn schemas() -> Vec<(&'static str, schemars::Schema)> {
    vec![
        ("plan.json", schemars::schema_for!(PlanReport)),
        ("apply.json", schemars::schema_for!(ApplyReport)),
        ("status.json", schemars::schema_for!(StatusReport)),
        ("verify.json", schemars::schema_for!(VerifyReport)),
        ("drill.json", schemars::schema_for!(DrillReport)),
        ("init.json", schemars::schema_for!(InitReport)),
        ("error.json", schemars::schema_for!(ErrorReport)),
        ("vpnbridge.toml.json", vpnbridge_core::config::schema::json_schema()),
    ]
}

/// A report as the CLI prints it: pretty JSON, keys in alphabetical order at every
/// level (stable for diffs and snapshots).
pub fn to_json<T: Serialize>(report: &T) -> String {
    let value = serde_json::to_value(report).expect("reports serialise");
    serde_json::to_string_pretty(&value).expect("a JSON value prints")
}
