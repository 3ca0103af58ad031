//! `drill`: the failover test of the manual procedure, made one command.
//!
//! For each used tunnel in turn: delete its Azure Connection (a one-step plan through
//! the [`Executor`]), wait out dead peer detection (AWS 30 s, Azure 45 s), prove traffic
//! still flows both ways, recreate the Connection (re-planned with
//! [`plan::plan_apply`] and executed), wait until the tunnel is up again and re-verify.
//! The interruption is measured, not guessed: a timestamped ping each way, one echo a
//! second, runs on the probe hosts from before the delete until after dead peer
//! detection ([`crate::probe::Probe::start_series`]); on real clouds that is one Run
//! Command per direction for the whole outage. Time is tokio's clock: virtual on the
//! simulator.
//!
//! The drill refuses to start when the deployment could not be re-planned (it would
//! delete a Connection it cannot put back).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::config::Config;
use crate::endpoint::{Aws, Azure, EndpointError, VpnEndpoint};
use crate::exec::{ExecSettings, Executor, StepOutcome};
use crate::model::Owner;
use crate::ops::AzureOp;
use crate::pairing;
use crate::plan::{self, Action, Observed, Plan, PlanError, PlanKind, Step, StepOp};
use crate::probe::{PingPair, SeriesSpec, ping_both_ways};
use crate::verify::{self, DataPlane, DataPlaneAccess, VerifyError, VerifyResult};

/// AWS's dead peer detection timeout.
pub const AWS_DPD: Duration = Duration::from_secs(30);

/// How the drill waits.
#[derive(Debug, Clone)]
pub struct DrillSettings {
    /// From the delete until traffic must flow again: the longer DPD plus a margin.
    pub dpd_wait: Duration,
    /// Interval between the echoes of the series that measure the outage.
    pub sample: Duration,
    /// How much longer than `dpd_wait` the series run (a VM may start its command some
    /// seconds after it was accepted).
    pub series_margin: Duration,
    /// Longest wait for a recreated tunnel to come up.
    pub restore_timeout: Duration,
    /// Interval between looks at the tunnel while waiting for it.
    pub restore_poll: Duration,
    pub exec: ExecSettings,
}

impl Default for DrillSettings {
    fn default() -> Self {
        let dpd = AWS_DPD.max(Duration::from_secs(u64::from(plan::AZURE_DPD_SECONDS)));
        Self {
            dpd_wait: dpd + Duration::from_secs(5),
            sample: Duration::from_secs(1),
            series_margin: Duration::ZERO,
            restore_timeout: Duration::from_secs(20 * 60),
            restore_poll: Duration::from_secs(5),
            exec: ExecSettings::default(),
        }
    }
}

/// Seconds of interruption per direction, as measured by the pings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Interruption {
    pub azure_to_aws: f64,
    pub aws_to_azure: f64,
    /// The longer of the two.
    pub max: f64,
}

/// One drilled tunnel.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DrillRow {
    /// `vpn-…/1`, as `verify` names it.
    pub tunnel: String,
    pub azure_connection: String,
    /// Seconds since the drill started when the delete was issued.
    pub down_at: Option<f64>,
    /// Traffic flowed both ways once DPD had run out (`None`: not observable).
    pub traffic_kept: Option<bool>,
    /// The pings once DPD had run out.
    pub after_dpd: Option<PingPair>,
    /// Measured while the tunnel was down (`None`: not observable).
    pub interruption: Option<Interruption>,
    /// Every other used tunnel was up at both ends once DPD had run out (control-plane
    /// failover, what real clouds without probes can show).
    pub other_tunnels_up: bool,
    /// Seconds since the drill started when the tunnel was seen up again.
    pub restored_at: Option<f64>,
    /// `verify` after the restore.
    pub reverify: Option<VerifyResult>,
    pub notes: Vec<String>,
    pub error: Option<String>,
}

impl DrillRow {
    /// Traffic was kept (or, unobservable, the others carried on) and the tunnel came back.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.traffic_kept.unwrap_or(self.other_tunnels_up) && self.restored_at.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DrillResult {
    Passed,
    Failed,
}

/// The report of `drill` (the `drill --output json` document is built from it).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DrillReport {
    pub deployment: String,
    pub result: DrillResult,
    pub data_plane: DataPlaneAccess,
    /// Pings before anything was taken down.
    pub baseline: Option<PingPair>,
    /// Used tunnels that were not up before the drill.
    pub down_before: Vec<String>,
    pub tunnels: Vec<DrillRow>,
}

/// Why the drill could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("the drill would delete Connections it could not put back, because the deployment cannot be planned now:\n{0}")]
    CannotReplan(PlanError),
    #[error("there is no used tunnel {0} (this deployment has {1})")]
    NoSuchTunnel(usize, usize),
}

/// Progress, as it happens (for the CLI's stderr).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DrillEvent {
    Down { tunnel: String, at: f64 },
    TrafficChecked { tunnel: String, at: f64, kept: Option<bool> },
    Restoring { tunnel: String, at: f64 },
    Restored { tunnel: String, at: f64 },
    Failed { tunnel: String, at: f64, error: String },
}

/// Runs the drill on every used tunnel, or only on `only` (1-based, in `verify`'s order).
pub async fn drill(
    config: &Config,
    aws: Arc<dyn VpnEndpoint<Aws>>,
    azure: Arc<dyn VpnEndpoint<Azure>>,
    data_plane: DataPlane<'_>,
    only: Option<usize>,
    settings: &DrillSettings,
    on_event: &(dyn Fn(&DrillEvent) + Send + Sync),
) -> Result<DrillReport, DrillError> {
    let t0 = Instant::now();
    let at = || t0.elapsed().as_secs_f64();
    let owner = Owner::new(&config.name);
    let before = verify::verify(config, aws.as_ref(), azure.as_ref(), data_plane).await?;
    let observed = observe(&owner, aws.as_ref(), azure.as_ref()).await?;
    plan::plan_apply(config, &observed).map_err(DrillError::CannotReplan)?;
    let count = before.tunnels.len();
    let chosen: Vec<usize> = match only {
        Some(n) if n == 0 || n > count => return Err(DrillError::NoSuchTunnel(n, count)),
        Some(n) => vec![n - 1],
        None => (0..count).collect(),
    };
    let down_before = before.tunnels.iter().filter(|t| !t.up).map(|t| t.name.clone()).collect();
    let executor = Executor::new(aws.clone(), azure.clone(), owner.clone(), settings.exec.clone());
    let mut rows = Vec::new();
    for i in chosen {
        let t = &before.tunnels[i];
        let mut row = DrillRow {
            tunnel: t.name.clone(),
            azure_connection: t.slot.azure_connection.clone(),
            down_at: None,
            traffic_kept: None,
            after_dpd: None,
            interruption: None,
            other_tunnels_up: false,
            restored_at: None,
            reverify: None,
            notes: Vec::new(),
            error: None,
        };
        if let Err(e) =
            drill_one(config, &owner, &executor, aws.as_ref(), azure.as_ref(), data_plane, settings, &t.slot, &mut row, &at, on_event).await
        {
            on_event(&DrillEvent::Failed { tunnel: row.tunnel.clone(), at: at(), error: e.clone() });
            row.error = Some(e);
        }
        rows.push(row);
    }
    let result = if !rows.is_empty() && rows.iter().all(DrillRow::passed) { DrillResult::Passed } else { DrillResult::Failed };
    Ok(DrillReport {
        deployment: config.name.clone(),
        result,
        data_plane: before.data_plane,
        baseline: before.ping,
        down_before,
        tunnels: rows,
    })
}

async fn observe(owner: &Owner, aws: &dyn VpnEndpoint<Aws>, azure: &dyn VpnEndpoint<Azure>) -> Result<Observed, EndpointError> {
    crate::exec::observe(aws, azure, owner, &crate::exec::ExecSettings::default()).await
}

/// Whether each used tunnel is up at both ends, in slot order.
async fn tunnels_up(
    config: &Config,
    owner: &Owner,
    aws: &dyn VpnEndpoint<Aws>,
    azure: &dyn VpnEndpoint<Azure>,
) -> Result<Vec<bool>, EndpointError> {
    let observed = observe(owner, aws, azure).await?;
    let joined = pairing::join(owner, &config.layout(), &observed.azure, &observed.aws);
    let ends = crate::exec::tunnel_ends(aws, azure, owner, &crate::exec::ExecSettings::default()).await?;
    Ok(pairing::health(&joined, &ends).iter().map(|h| h.is_up()).collect())
}

fn one_step_plan(config: &Config, step: Step) -> Plan {
    Plan {
        deployment: config.name.clone(),
        kind: PlanKind::Apply,
        mode: config.mode,
        steps: vec![Step { id: 0, depends_on: Vec::new(), ..step }],
        tunnels: Vec::new(),
        notes: Vec::new(),
    }
}

fn failure(report: &crate::exec::ExecReport) -> Option<String> {
    report.steps.iter().find_map(|s| match &s.outcome {
        StepOutcome::Done => None,
        StepOutcome::Failed { error } => Some(format!("{} {} \"{}\": {error}", s.cloud, s.resource_type, s.name)),
        StepOutcome::Skipped { .. } => Some(format!("{} {} \"{}\" was skipped", s.cloud, s.resource_type, s.name)),
    })
}

#[allow(clippy::too_many_arguments)]
async fn drill_one(
    config: &Config,
    owner: &Owner,
    executor: &Executor,
    aws: &dyn VpnEndpoint<Aws>,
    azure: &dyn VpnEndpoint<Azure>,
    data_plane: DataPlane<'_>,
    settings: &DrillSettings,
    slot: &pairing::TunnelSlot,
    row: &mut DrillRow,
    at: &(dyn Fn() -> f64 + Sync),
    on_event: &(dyn Fn(&DrillEvent) + Send + Sync),
) -> Result<(), String> {
    let name = slot.azure_connection.clone();
    let observed = observe(owner, aws, azure).await.map_err(|e| e.to_string())?;
    if pairing::connection(&observed.azure, &name).is_none() {
        return Err(format!("Azure connection {name} does not exist: nothing to take down (run `vpnbridge apply` first)"));
    }

    // 1. Down, the way the manual procedure does it: delete the Connection.
    let delete = one_step_plan(
        config,
        Step {
            id: 0,
            action: Action::Delete,
            resource_type: plan::ResourceType::Connection,
            name: name.clone(),
            op: StepOp::Azure(AzureOp::DeleteConnection { name: name.clone() }),
            depends_on: Vec::new(),
            disruption: Some(format!("drill: the tunnel carried by {name} goes down")),
            until_up: Vec::new(),
        },
    );
    // The timestamped pings that measure the outage start first and run on the hosts
    // across all of it: one series each way, collected once dead peer detection is over.
    let series = match data_plane {
        DataPlane::Probe(probe) => {
            let at = probe.addresses().await.map_err(|e| e.to_string())?;
            let spec = SeriesSpec::covering(settings.dpd_wait + settings.series_margin, settings.sample);
            let there = probe.start_series(at.azure, at.aws, spec).await.map_err(|e| e.to_string())?;
            let back = probe.start_series(at.aws, at.azure, spec).await.map_err(|e| e.to_string())?;
            Some((probe, there, back))
        }
        DataPlane::NotObservable(_) => None,
    };
    let down = Instant::now();
    row.down_at = Some(at());
    on_event(&DrillEvent::Down { tunnel: row.tunnel.clone(), at: at() });
    let deadline = down + settings.dpd_wait;
    let report = executor.run(&delete, |_| {}).await;
    if let Some(f) = failure(&report) {
        if let Some((probe, there, back)) = series {
            // Let the started series end before anything else runs on the hosts.
            let _ = probe.collect_series(there).await;
            let _ = probe.collect_series(back).await;
        }
        return Err(format!("could not delete the Connection: {f}"));
    }
    tokio::time::sleep_until(deadline).await;

    // 2. Traffic after DPD: the series' time without replies, then a fresh ping each
    //    way (after the series, as a VM runs one command at a time).
    if let Some((probe, there, back)) = series {
        let interval = there.spec.interval;
        let there = probe.collect_series(there).await.map_err(|e| e.to_string())?;
        let back = probe.collect_series(back).await.map_err(|e| e.to_string())?;
        let (a, b) = (there.lost_seconds(interval), back.lost_seconds(interval));
        row.interruption = Some(Interruption { azure_to_aws: a, aws_to_azure: b, max: a.max(b) });
        let p = ping_both_ways(probe).await.map_err(|e| e.to_string())?;
        row.traffic_kept = Some(p.both_ways());
        row.after_dpd = Some(p);
    }
    let up = tunnels_up(config, owner, aws, azure).await.map_err(|e| e.to_string())?;
    let slots = pairing::slots(&config.name, config.tunnels_per_connection);
    row.other_tunnels_up = slots.iter().zip(&up).filter(|(s, _)| s.azure_connection != name).all(|(_, u)| *u);
    on_event(&DrillEvent::TrafficChecked { tunnel: row.tunnel.clone(), at: at(), kept: row.traffic_kept });

    // 3. Restore: re-plan and run the Connection's step (the whole plan only when the
    //    Connection depends on another change).
    on_event(&DrillEvent::Restoring { tunnel: row.tunnel.clone(), at: at() });
    let observed = observe(owner, aws, azure).await.map_err(|e| e.to_string())?;
    let plan = plan::plan_apply(config, &observed).map_err(|e| format!("cannot re-plan to recreate {name}: {e}"))?;
    let step =
        plan.steps.iter().find(|s| s.resource_type == plan::ResourceType::Connection && s.name == name && s.action == Action::Create);
    let restore = match step {
        Some(s) if s.depends_on.is_empty() => one_step_plan(config, s.clone()),
        Some(_) => {
            row.notes.push(format!("{name} depends on other changes: the restore ran the whole plan ({} steps)", plan.steps.len()));
            plan
        }
        None => return Err(format!("the re-plan does not recreate {name}")),
    };
    let report = executor.run(&restore, |_| {}).await;
    if let Some(f) = failure(&report) {
        return Err(format!("could not recreate the Connection: {f}"));
    }

    // 4. Wait for the tunnel, then re-verify.
    let index = slots.iter().position(|s| s.azure_connection == name).unwrap_or(0);
    let waited = Instant::now();
    loop {
        let up = tunnels_up(config, owner, aws, azure).await.map_err(|e| e.to_string())?;
        if up.get(index).copied().unwrap_or(false) {
            row.restored_at = Some(at());
            on_event(&DrillEvent::Restored { tunnel: row.tunnel.clone(), at: at() });
            break;
        }
        if waited.elapsed() >= settings.restore_timeout {
            return Err(format!("{name} was recreated but its tunnel was not up after {} s", settings.restore_timeout.as_secs()));
        }
        tokio::time::sleep(settings.restore_poll).await;
    }
    let after = verify::verify(config, aws, azure, data_plane).await.map_err(|e| e.to_string())?;
    row.reverify = Some(after.result);
    Ok(())
}
