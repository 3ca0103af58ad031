//! The executor: runs a [`Plan`] against the two endpoints.
//!
//! Every step whose dependencies are done starts at once (bounded concurrency). Each
//! operation is started once and polled; the executor owns deadlines, backs off with
//! jitter on throttling and transient errors, serialises writes to one Azure gateway,
//! and reports progress as [`ExecEvent`]s. It holds no state worth persisting: after a
//! crash the next run re-observes and re-plans, and converges.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::committed::{Committed, Reconciled};
use crate::endpoint::{Aws, Azure, Cloud, CloudName, EndpointError, ErrorKind, OpHandle, OpStatus, VpnEndpoint};
use crate::model::Owner;
use crate::ops::{AwsOp, AzureOp, OpOutput, StepId};
use crate::plan::{Action, Plan, Step, StepOp};

/// How often a changed tunnel's status is read while the executor waits for it.
const TUNNEL_UP_POLL: Duration = Duration::from_secs(10);

/// How the executor waits and retries. The defaults suit real clouds; on the
/// simulator they run on virtual time.
#[derive(Debug, Clone)]
pub struct ExecSettings {
    /// Operations running at once, across both clouds.
    pub max_concurrency: usize,
    /// First poll interval when the cloud gives no hint (EC2 never does).
    pub poll_initial: Duration,
    /// Longest poll interval.
    pub poll_max: Duration,
    /// How every call is retried after throttling or a transient error: the
    /// executor's starts and polls, observe, tunnel reads (and probes).
    pub retry: RetryPolicy,
    /// After a create failed in a way that may have committed, how long to keep
    /// looking for the resource (lists are eventually consistent) before creating again.
    pub consistency_window: Duration,
    /// Whether a step marked `until_up` waits for its tunnel to be up again. Off only
    /// where no tunnel can come up at all (one side simulated, the other real).
    pub wait_tunnels_up: bool,
}

impl Default for ExecSettings {
    fn default() -> Self {
        Self {
            max_concurrency: 8,
            poll_initial: Duration::from_secs(2),
            poll_max: Duration::from_secs(15),
            retry: RetryPolicy::default(),
            consistency_window: Duration::from_secs(30),
            wait_tunnels_up: true,
        }
    }
}

/// The longest an operation may take before the executor gives up on it. Generous
/// versus the clouds' usual durations (docs/design.md §8, terraform-provider-aws ceilings).
pub fn deadline(op: &StepOp) -> Duration {
    let min = |m: u64| Duration::from_secs(m * 60);
    match op {
        StepOp::Azure(AzureOp::CreateVpnGateway { .. } | AzureOp::ResizeVpnGateway { .. }) => min(120),
        StepOp::Azure(AzureOp::DeleteVpnGateway { .. }) => min(90),
        StepOp::Azure(AzureOp::Await { .. }) => min(120),
        StepOp::Azure(_) => min(30),
        StepOp::Aws(AwsOp::CreateVpnConnection { .. } | AwsOp::Await { .. }) => min(40),
        StepOp::Aws(
            AwsOp::DeleteVpnConnection { .. }
            | AwsOp::DetachVpnGateway { .. }
            | AwsOp::ModifyVpnTunnelOptions { .. }
            | AwsOp::ModifyVpnConnection { .. },
        ) => min(30),
        StepOp::Aws(_) => min(15),
    }
}

/// Progress, as it happens. `at` is time since the run started (virtual on the sim).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ExecEvent {
    Started {
        step: StepId,
        at: Duration,
    },
    Retrying {
        step: StepId,
        at: Duration,
        error: String,
        delay: Duration,
    },
    Finished {
        step: StepId,
        at: Duration,
    },
    Failed {
        step: StepId,
        at: Duration,
        error: String,
    },
    /// Not started because a step it depends on failed.
    Skipped {
        step: StepId,
        because_of: StepId,
    },
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    Done,
    Failed { error: String },
    Skipped { because_of: StepId },
}

/// One step's record in the report.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StepRecord {
    pub id: StepId,
    pub cloud: CloudName,
    pub resource_type: crate::plan::ResourceType,
    pub name: String,
    #[serde(serialize_with = "secs_opt")]
    #[schemars(with = "Option<f64>")]
    pub started_at: Option<Duration>,
    #[serde(serialize_with = "secs_opt")]
    #[schemars(with = "Option<f64>")]
    pub finished_at: Option<Duration>,
    pub outcome: StepOutcome,
}

fn secs_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// What a run did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ExecReport {
    pub steps: Vec<StepRecord>,
    /// From the first start to the last finish (virtual time on the simulator).
    #[serde(serialize_with = "secs")]
    #[schemars(with = "f64")]
    pub makespan: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl ExecReport {
    pub fn succeeded(&self) -> bool {
        self.steps.iter().all(|s| s.outcome == StepOutcome::Done)
    }
    pub fn failures(&self) -> impl Iterator<Item = &StepRecord> {
        self.steps.iter().filter(|s| matches!(s.outcome, StepOutcome::Failed { .. }))
    }
}

/// Why one step failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Cloud(#[from] EndpointError),
    #[error("gave up after {0:?}: the operation did not finish in time (it may still finish; re-run apply to pick it up)")]
    Deadline(Duration),
    #[error(transparent)]
    Unbound(#[from] crate::ops::Unbound),
    #[error(
        "tunnel {tunnel} did not come back up at both ends within {limit:?} of the change; apply stopped here and left the \
         tunnels after it untouched: check `vpnbridge verify`, then re-run apply"
    )]
    TunnelNotUp { tunnel: String, limit: Duration },
}

/// Runs plans. Cheap to clone.
#[derive(Clone)]
pub struct Executor {
    aws: Arc<dyn VpnEndpoint<Aws>>,
    azure: Arc<dyn VpnEndpoint<Azure>>,
    owner: Owner,
    settings: ExecSettings,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").field("owner", &self.owner).field("settings", &self.settings).finish_non_exhaustive()
    }
}

type EventSink = Arc<dyn Fn(&ExecEvent) + Send + Sync>;

impl Executor {
    pub fn new(aws: Arc<dyn VpnEndpoint<Aws>>, azure: Arc<dyn VpnEndpoint<Azure>>, owner: Owner, settings: ExecSettings) -> Self {
        Self { aws, azure, owner, settings }
    }

    /// Runs every step of `plan`; a failed step skips its dependents, and independent
    /// steps go on (the next run resumes from what was built).
    pub async fn run(&self, plan: &Plan, on_event: impl Fn(&ExecEvent) + Send + Sync + 'static) -> ExecReport {
        let sink: EventSink = Arc::new(on_event);
        let t0 = Instant::now();
        let n = plan.steps.len();
        let mut outputs: HashMap<StepId, OpOutput> = HashMap::new();
        // Each step's times and, once it has one, its outcome.
        let mut times: Vec<(Option<Duration>, Option<Duration>)> = vec![(None, None); n];
        let mut outcomes: Vec<Option<StepOutcome>> = vec![None; n];
        let mut state: Vec<Progress> = vec![Progress::Waiting; n];
        let semaphore = Arc::new(Semaphore::new(self.settings.max_concurrency.max(1)));
        let serial: Arc<std::sync::Mutex<BTreeMap<String, Arc<Mutex<()>>>>> = Arc::default();
        let mut running: JoinSet<(StepId, Result<OpOutput, StepError>)> = JoinSet::new();

        loop {
            // Skip what can never run, until nothing more is skipped (a step may depend
            // on a later one: a tunnel's wait moved to its last step); then start what
            // is ready.
            let mut skipped_more = true;
            while skipped_more {
                skipped_more = false;
                for s in &plan.steps {
                    if state[s.id] != Progress::Waiting {
                        continue;
                    }
                    let Some(&bad) = s.depends_on.iter().find(|d| matches!(state[**d], Progress::Failed | Progress::Skipped)) else {
                        continue;
                    };
                    state[s.id] = Progress::Skipped;
                    let root = match &outcomes[bad] {
                        Some(StepOutcome::Skipped { because_of }) => *because_of,
                        _ => bad,
                    };
                    outcomes[s.id] = Some(StepOutcome::Skipped { because_of: root });
                    sink(&ExecEvent::Skipped { step: s.id, because_of: root });
                    skipped_more = true;
                }
            }
            for s in &plan.steps {
                if state[s.id] != Progress::Waiting {
                    continue;
                }
                if !s.depends_on.iter().all(|d| state[*d] == Progress::Done) {
                    continue;
                }
                state[s.id] = Progress::Running;
                let at = t0.elapsed();
                times[s.id].0 = Some(at);
                sink(&ExecEvent::Started { step: s.id, at });
                let bound = bind(s, &outputs);
                let this = self.clone();
                let step = s.clone();
                let sem = semaphore.clone();
                let serial = serial.clone();
                let sink = sink.clone();
                running.spawn(async move {
                    let _permit = sem.acquire_owned().await.expect("semaphore never closed");
                    let r = match bound {
                        Ok(op) => this.run_step(&step, op, serial, sink, t0).await,
                        Err(e) => Err(e.into()),
                    };
                    (step.id, r)
                });
            }
            let Some(joined) = running.join_next().await else { break };
            let (id, result) = match joined {
                Ok(r) => r,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
            let at = t0.elapsed();
            times[id].1 = Some(at);
            match result {
                Ok(out) => {
                    state[id] = Progress::Done;
                    outcomes[id] = Some(StepOutcome::Done);
                    outputs.insert(id, out);
                    sink(&ExecEvent::Finished { step: id, at });
                }
                Err(e) => {
                    state[id] = Progress::Failed;
                    let error = e.to_string();
                    outcomes[id] = Some(StepOutcome::Failed { error: error.clone() });
                    sink(&ExecEvent::Failed { step: id, at, error });
                }
            }
        }
        let records: Vec<StepRecord> = plan
            .steps
            .iter()
            .zip(times.into_iter().zip(outcomes))
            .map(|(s, ((started_at, finished_at), outcome))| StepRecord {
                id: s.id,
                cloud: s.cloud(),
                resource_type: s.resource_type,
                name: s.name.clone(),
                started_at,
                finished_at,
                // Every step of a plan (a DAG) ends started or skipped; only steps
                // whose dependencies form a cycle never get that far.
                outcome: outcome.unwrap_or_else(|| StepOutcome::Failed {
                    error: "never started: the steps it depends on never finished (the plan's dependencies form a cycle)".into(),
                }),
            })
            .collect();
        let makespan = records.iter().filter_map(|r| r.finished_at).max().unwrap_or_default();
        ExecReport { steps: records, makespan }
    }

    async fn run_step(
        &self,
        step: &Step,
        op: BoundOp,
        serial: Arc<std::sync::Mutex<BTreeMap<String, Arc<Mutex<()>>>>>,
        sink: EventSink,
        t0: Instant,
    ) -> Result<OpOutput, StepError> {
        // Writes to one Azure gateway run one at a time.
        let key = match &op {
            BoundOp::Azure(o) => o.serial_key().map(str::to_owned),
            BoundOp::Aws(_) => None,
        };
        let lock = key.map(|k| serial.lock().expect("not poisoned").entry(k).or_default().clone());
        let _guard = match &lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        let limit = deadline(&step.op);
        let report = Reporter { step: step.id, sink: Some(sink), t0 };
        let may_exist = step.action == Action::Create;
        let driven = async {
            match op {
                BoundOp::Aws(o) => drive(self.aws.as_ref(), &self.owner, &self.settings, o, may_exist, &report).await,
                BoundOp::Azure(o) => drive(self.azure.as_ref(), &self.owner, &self.settings, o, may_exist, &report).await,
            }
        };
        let out = match tokio::time::timeout(limit, driven).await {
            Ok(r) => r?,
            Err(_) => return Err(StepError::Deadline(limit)),
        };
        if !step.until_up.is_empty() && self.settings.wait_tunnels_up {
            self.until_tunnels_up(&step.until_up).await?;
        }
        Ok(out)
    }

    /// Waits until every one of these used tunnels is up at both ends (both clouds'
    /// own status), at most [`crate::plan::TUNNEL_UP_DEADLINE`] for all of them.
    async fn until_tunnels_up(&self, until: &[crate::plan::UntilUp]) -> Result<(), StepError> {
        let limit = crate::plan::TUNNEL_UP_DEADLINE;
        let names = crate::pairing::Names::new(&self.owner.deployment);
        let mut down: Vec<crate::plan::UntilUp> = until.to_vec();
        let wait = async {
            while let Some(layout) = down.first().map(|u| u.layout) {
                let observed = observe(self.aws.as_ref(), self.azure.as_ref(), &self.owner, &self.settings).await?;
                let joined = crate::pairing::join(&self.owner, &layout, &observed.azure, &observed.aws);
                let ends = tunnel_ends(self.aws.as_ref(), self.azure.as_ref(), &self.owner, &self.settings).await?;
                let health = crate::pairing::health(&joined, &ends);
                down.retain(|u| !health.iter().any(|h| h.slot.connection == u.connection && h.slot.tunnel == u.tunnel && h.is_up()));
                if !down.is_empty() {
                    tokio::time::sleep(TUNNEL_UP_POLL).await;
                }
            }
            Ok::<(), EndpointError>(())
        };
        match tokio::time::timeout(limit, wait).await {
            Ok(r) => r.map_err(StepError::from),
            Err(_) => {
                let u = until.iter().find(|u| down.iter().any(|d| d == *u)).or(until.first()).expect("not empty");
                Err(StepError::TunnelNotUp { tunnel: names.connection(u.connection, u.tunnel), limit })
            }
        }
    }
}

/// Where a driven operation reports its retries: the executor's step and event sink
/// (none for [`run_op`]).
struct Reporter {
    step: StepId,
    sink: Option<EventSink>,
    t0: Instant,
}

impl Reporter {
    fn retrying(&self, attempt: u32, e: &EndpointError, delay: Duration) {
        tracing::info!(step = self.step, attempt, error = %e, ?delay, "transient error; retrying");
        if let Some(sink) = &self.sink {
            sink(&ExecEvent::Retrying { step: self.step, at: self.t0.elapsed(), error: e.to_string(), delay });
        }
    }
}

/// Drives one operation on one endpoint the way the executor drives a step: start it
/// (retrying throttling and transient errors with the [`RetryPolicy`]), decide through
/// [`Reconciled`] whether a failed or refused start already did the job, poll it to the
/// end, check that what it returned is ours, and wait until a modification is visible.
/// `action` says whether it creates (then a lost answer is looked for before a repeat).
/// No deadline: the caller bounds it. For the contract suite and one-off callers; plans
/// run through [`Executor::run`].
pub async fn run_op<C: Reconciled>(
    ep: &dyn VpnEndpoint<C>,
    owner: &Owner,
    op: C::Op,
    action: Action,
    settings: &ExecSettings,
) -> Result<OpOutput, StepError> {
    let report = Reporter { step: 0, sink: None, t0: Instant::now() };
    drive(ep, owner, settings, op, action == Action::Create, &report).await
}

/// Start (retrying transient failures safely), then poll until done.
async fn drive<C: Reconciled>(
    ep: &dyn VpnEndpoint<C>,
    owner: &Owner,
    settings: &ExecSettings,
    mut op: C::Op,
    mut may_exist: bool,
    report: &Reporter,
) -> Result<OpOutput, StepError> {
    let step = report.step;
    let mut attempt = 0u32;
    loop {
        let handle = match ep.start(&op).await {
            Ok(h) => h,
            // Deleting what is already gone is success.
            Err(e) if e.kind == ErrorKind::NotFound && C::is_delete(&op) => {
                tracing::info!(step, error = %e, "already gone");
                return Ok(OpOutput::default());
            }
            Err(e) => {
                let retry = settings.retry.retries(&e, attempt);
                // A create may have been carried out although the call failed (a timeout
                // after commit; AWS creates have no client token): look for it before
                // creating again. A refusal that may answer a repeat of what already went
                // through (an attachment or a route already there): look once.
                let found = if retry && e.may_have_committed && may_exist && C::findable(&op) {
                    find_committed(ep, owner, settings, &op).await
                } else if C::refused_as_repeat(&op, &e) {
                    match observe_one(ep, owner, settings).await {
                        Ok(observed) => C::committed(&observed, &op),
                        Err(_) => Committed::No,
                    }
                } else {
                    Committed::No
                };
                match found {
                    // From now on this step waits for what was created.
                    Committed::Wait(wait) => {
                        tracing::info!(
                            step,
                            ?wait,
                            "the operation was carried out despite the error; waiting for it instead of repeating it"
                        );
                        op = wait;
                        may_exist = false;
                        continue;
                    }
                    Committed::Done => {
                        tracing::info!(step, error = %e, "already done");
                        return Ok(OpOutput::default());
                    }
                    Committed::No if retry => {
                        attempt += 1;
                        back_off(settings, attempt, &e, report).await;
                        continue;
                    }
                    Committed::No => return Err(e.into()),
                }
            }
        };
        match poll_until_done(ep, settings, &handle, report).await? {
            PollEnd::Done(out) => {
                C::owned(&op, &out)?;
                return until_visible(ep, owner, settings, step, &op, out).await;
            }
            PollEnd::FailedTransient(e) if attempt < settings.retry.max_retries => {
                attempt += 1;
                back_off(settings, attempt, &e, report).await;
            }
            PollEnd::FailedTransient(e) => return Err(e.into()),
        }
    }
}

/// Polls until the operation ends; each poll is retried with the [`RetryPolicy`].
async fn poll_until_done<C: Cloud>(
    ep: &dyn VpnEndpoint<C>,
    settings: &ExecSettings,
    handle: &OpHandle,
    report: &Reporter,
) -> Result<PollEnd, StepError> {
    let mut interval = settings.poll_initial;
    loop {
        match settings.retry.run_with(|attempt, e, delay| report.retrying(attempt, e, delay), || ep.poll(handle)).await? {
            OpStatus::Done(out) => return Ok(PollEnd::Done(out)),
            OpStatus::Failed(e) if e.is_transient() => return Ok(PollEnd::FailedTransient(e)),
            OpStatus::Failed(e) => return Err(e.into()),
            OpStatus::Running { retry_after } => {
                let wait = retry_after.unwrap_or(interval);
                tokio::time::sleep(wait).await;
                interval = (interval.mul_f64(1.5)).min(settings.poll_max);
            }
        }
    }
}

/// A modification is done when it can be read back, not when the cloud's state
/// first reads settled: right after `ModifyVpnTunnelOptions` or
/// `ModifyVpnConnection`, EC2 may still describe the connection `available` with
/// the old options before it turns `modifying` (terraform-provider-aws's
/// `waitVPNConnectionUpdated`). So the executor re-observes until the connection is
/// `available` with the new key, inside CIDR or customer gateway: the next tunnel
/// of a key rotation, and the Azure end of the same tunnel, start only then.
async fn until_visible<C: Reconciled>(
    ep: &dyn VpnEndpoint<C>,
    owner: &Owner,
    settings: &ExecSettings,
    step: StepId,
    op: &C::Op,
    out: OpOutput,
) -> Result<OpOutput, StepError> {
    if !C::awaits_visibility(op) {
        return Ok(out);
    }
    let mut interval = settings.poll_initial;
    loop {
        let observed = observe_one(ep, owner, settings).await?;
        if let Some(out) = C::visible(&observed, op) {
            return Ok(out);
        }
        tracing::debug!(step, "the modification is not visible yet; polling again");
        tokio::time::sleep(interval).await;
        interval = (interval.mul_f64(1.5)).min(settings.poll_max);
    }
}

async fn back_off(settings: &ExecSettings, attempt: u32, e: &EndpointError, report: &Reporter) {
    let delay = settings.retry.delay(attempt, e);
    report.retrying(attempt, e, delay);
    tokio::time::sleep(delay).await;
}

/// After an ambiguous failure of a create: what the cloud holds if it did commit it.
/// Lists are eventually consistent, so it looks several times within the consistency
/// window before concluding that nothing was created. (A wait for visibility, not a
/// retry: every look is a fresh observation.)
async fn find_committed<C: Reconciled>(ep: &dyn VpnEndpoint<C>, owner: &Owner, settings: &ExecSettings, op: &C::Op) -> Committed<C::Op> {
    let deadline = Instant::now() + settings.consistency_window;
    let mut pause = Duration::from_secs(2);
    loop {
        if let Ok(observed) = ep.observe(owner).await {
            match C::committed(&observed, op) {
                Committed::No => {}
                found => return found,
            }
        }
        if Instant::now() + pause > deadline {
            return Committed::No;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

/// Observes both clouds at once, retrying throttling and transient errors the way the
/// executor retries its calls. The way every run starts.
pub async fn observe(
    aws: &dyn VpnEndpoint<Aws>,
    azure: &dyn VpnEndpoint<Azure>,
    owner: &Owner,
    settings: &ExecSettings,
) -> Result<crate::plan::Observed, EndpointError> {
    let (aws, azure) = tokio::join!(observe_one(aws, owner, settings), observe_one(azure, owner, settings));
    Ok(crate::plan::Observed { aws: aws?, azure: azure? })
}

async fn observe_one<C: Cloud>(ep: &dyn VpnEndpoint<C>, owner: &Owner, settings: &ExecSettings) -> Result<C::Observed, EndpointError> {
    read_with_retry(C::NAME, "observe", settings, || ep.observe(owner)).await
}

/// Every tunnel end both clouds report (AWS first), each side's read retried like
/// [`observe`]: the tunnel-status reads of `apply`, `status`, `verify` and `drill`.
pub async fn tunnel_ends(
    aws: &dyn VpnEndpoint<Aws>,
    azure: &dyn VpnEndpoint<Azure>,
    owner: &Owner,
    settings: &ExecSettings,
) -> Result<Vec<Box<dyn crate::endpoint::Tunnel>>, EndpointError> {
    let (a, b) = tokio::join!(
        read_with_retry(CloudName::Aws, "tunnel_ends", settings, || aws.tunnel_ends(owner)),
        read_with_retry(CloudName::Azure, "tunnel_ends", settings, || azure.tunnel_ends(owner)),
    );
    let mut ends = a?;
    ends.extend(b?);
    Ok(ends)
}

/// One read (it never mutates, so repeating it is always safe), retried on throttling
/// and transient errors with the executor's back-off, `Retry-After` first.
pub async fn read_with_retry<T, Fut>(
    cloud: CloudName,
    what: &str,
    settings: &ExecSettings,
    read: impl FnMut() -> Fut,
) -> Result<T, EndpointError>
where
    Fut: std::future::Future<Output = Result<T, EndpointError>>,
{
    settings
        .retry
        .run_with(|attempt, e, delay| tracing::info!(%cloud, what, attempt, error = %e, ?delay, "read failed; retrying"), read)
        .await
}

pub use crate::committed::{find_by_tags, find_created};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    Waiting,
    Running,
    Done,
    Failed,
    Skipped,
}

enum PollEnd {
    Done(OpOutput),
    FailedTransient(EndpointError),
}

#[derive(Debug)]
enum BoundOp {
    Aws(AwsOp),
    Azure(AzureOp),
}

fn bind(step: &Step, outputs: &HashMap<StepId, OpOutput>) -> Result<BoundOp, crate::ops::Unbound> {
    Ok(match &step.op {
        StepOp::Aws(o) => BoundOp::Aws(o.bind(outputs)?),
        StepOp::Azure(o) => BoundOp::Azure(o.bind(outputs)?),
    })
}

/// The one retry policy: a call that failed with throttling or a transient error is
/// tried again up to `max_retries` times, after the cloud's `Retry-After` when it gave
/// one, else after an exponential back-off with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    /// First back-off (doubled each time, with jitter), and its ceiling.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_retries: 8, backoff_initial: Duration::from_secs(1), backoff_max: Duration::from_secs(60) }
    }
}

impl RetryPolicy {
    /// Whether a call that failed with `e` after `attempt` retries is tried again.
    pub fn retries(&self, e: &EndpointError, attempt: u32) -> bool {
        e.is_transient() && attempt < self.max_retries
    }

    /// How long to wait before retry number `attempt` (1-based) after `e`.
    pub fn delay(&self, attempt: u32, e: &EndpointError) -> Duration {
        e.retry_after.unwrap_or_else(|| jittered(self.backoff_initial, self.backoff_max, attempt))
    }

    /// Runs `call` until it succeeds, fails in a way retrying cannot help, or the
    /// retries are used up; the waits between tries are [`RetryPolicy::delay`]s.
    /// Only for calls that are safe to repeat (reads, polls): a create is driven by the
    /// executor, which looks for what a failed create may have made first.
    pub async fn run<T, Fut>(&self, what: &str, call: impl FnMut() -> Fut) -> Result<T, EndpointError>
    where
        Fut: std::future::Future<Output = Result<T, EndpointError>>,
    {
        self.run_with(|attempt, e, delay| tracing::info!(what, attempt, error = %e, ?delay, "call failed; retrying"), call).await
    }

    /// [`RetryPolicy::run`], telling `on_retry` (attempt, error, delay) before each wait.
    pub async fn run_with<T, Fut>(
        &self,
        mut on_retry: impl FnMut(u32, &EndpointError, Duration),
        mut call: impl FnMut() -> Fut,
    ) -> Result<T, EndpointError>
    where
        Fut: std::future::Future<Output = Result<T, EndpointError>>,
    {
        let mut attempt = 0;
        loop {
            match call().await {
                Err(e) if self.retries(&e, attempt) => {
                    attempt += 1;
                    let delay = self.delay(attempt, &e);
                    on_retry(attempt, &e, delay);
                    tokio::time::sleep(delay).await;
                }
                r => return r,
            }
        }
    }
}

/// Exponential back-off with "equal jitter": half fixed, half random.
fn jittered(initial: Duration, max: Duration, attempt: u32) -> Duration {
    use rand::Rng;
    let exp = initial.saturating_mul(1u32 << attempt.min(16)).min(max);
    let half = exp / 2;
    half + half.mul_f64(rand::rng().random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        let max = Duration::from_secs(60);
        for attempt in 0..30 {
            let d = jittered(Duration::from_secs(1), max, attempt);
            assert!(d <= max);
            assert!(d >= Duration::from_secs(1).saturating_mul(1u32 << attempt.min(16)).min(max) / 2);
        }
    }
}

#[cfg(test)]
mod behaviour {
    use std::sync::Mutex as StdMutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use mockall::predicate::always;

    use super::*;
    use crate::config::Mode;
    use crate::endpoint::Tunnel;
    use crate::model::{AwsObserved, AwsState, AzureObserved, CustomerGateway, Role, Tags};
    use crate::ops::{AzureOp, Late, OutputField, Planned};
    use crate::plan::PlanKind;

    mockall::mock! {
        pub AwsEndpoint {}
        #[async_trait]
        impl VpnEndpoint<Aws> for AwsEndpoint {
            async fn observe(&self, owner: &Owner) -> Result<AwsObserved, EndpointError>;
            async fn start(&self, op: &AwsOp) -> Result<OpHandle, EndpointError>;
            async fn poll(&self, handle: &OpHandle) -> Result<OpStatus, EndpointError>;
            async fn tunnel_ends(&self, owner: &Owner) -> Result<Vec<Box<dyn Tunnel>>, EndpointError>;
        }
    }

    mockall::mock! {
        pub AzureEndpoint {}
        #[async_trait]
        impl VpnEndpoint<Azure> for AzureEndpoint {
            async fn observe(&self, owner: &Owner) -> Result<AzureObserved, EndpointError>;
            async fn start(&self, op: &AzureOp) -> Result<OpHandle, EndpointError>;
            async fn poll(&self, handle: &OpHandle) -> Result<OpStatus, EndpointError>;
            async fn tunnel_ends(&self, owner: &Owner) -> Result<Vec<Box<dyn Tunnel>>, EndpointError>;
        }
    }

    fn owner() -> Owner {
        Owner::new("t")
    }

    fn plan(steps: Vec<(StepOp, Vec<StepId>)>) -> Plan {
        let steps = steps
            .into_iter()
            .enumerate()
            .map(|(id, (op, depends_on))| Step {
                id,
                action: Action::Create,
                resource_type: crate::plan::ResourceType::Connection,
                name: format!("s{id}"),
                op,
                depends_on,
                disruption: None,
                until_up: Vec::new(),
            })
            .collect();
        Plan { deployment: "t".into(), kind: PlanKind::Apply, mode: Mode::StaticHa, steps, tunnels: vec![], notes: vec![] }
    }

    fn cgw_op(ip: Late<std::net::Ipv4Addr>) -> StepOp {
        StepOp::Aws(AwsOp::<Planned>::CreateCustomerGateway {
            ip,
            bgp_asn: 65000,
            device_name: "d".into(),
            tags: owner().tags(&Role::CustomerGateway(0)),
        })
    }

    fn executor(aws: impl VpnEndpoint<Aws> + 'static, azure: impl VpnEndpoint<Azure> + 'static) -> Executor {
        Executor::new(Arc::new(aws), Arc::new(azure), owner(), ExecSettings::default())
    }

    fn throttled() -> EndpointError {
        let mut e = EndpointError::new(CloudName::Aws, ErrorKind::Throttled, "RequestLimitExceeded", "Request limit exceeded.");
        e.retry_after = Some(Duration::from_secs(7));
        e
    }

    /// A step marked `until_up` is done only once its tunnel is up at both ends; past
    /// the deadline it fails and says so. Where no tunnel can come up (mixed backends)
    /// the wait is off.
    #[tokio::test(start_paused = true)]
    async fn a_changed_tunnel_must_come_back_up_before_the_step_is_done() {
        let endpoints = || {
            let mut aws = MockAwsEndpoint::new();
            aws.expect_start().returning(|_| Ok(OpHandle("h".into())));
            aws.expect_poll().returning(|_| Ok(OpStatus::Done(OpOutput { id: Some("cgw-1".into()), ..Default::default() })));
            aws.expect_observe().returning(|_| Ok(AwsObserved::default()));
            aws.expect_tunnel_ends().returning(|_| Ok(Vec::new()));
            let mut azure = MockAzureEndpoint::new();
            azure.expect_observe().returning(|_| Ok(crate::model::AzureObserved::default()));
            azure.expect_tunnel_ends().returning(|_| Ok(Vec::new()));
            (aws, azure)
        };
        let mut p = plan(vec![(cgw_op(Late::Known([1, 2, 3, 4].into())), vec![])]);
        p.steps[0].until_up = vec![crate::plan::UntilUp { connection: 0, tunnel: 0, layout: crate::pairing::TunnelLayout::new(1, &[]) }];
        let (aws, azure) = endpoints();
        let report = executor(aws, azure).run(&p, |_| {}).await;
        let failure = report.failures().next().expect("the tunnel never came up");
        assert!(matches!(&failure.outcome, StepOutcome::Failed { error } if error.contains("did not come back up")), "{failure:?}");
        assert!(report.makespan >= crate::plan::TUNNEL_UP_DEADLINE);
        let (aws, azure) = endpoints();
        let settings = ExecSettings { wait_tunnels_up: false, ..ExecSettings::default() };
        let report = Executor::new(Arc::new(aws), Arc::new(azure), owner(), settings).run(&p, |_| {}).await;
        assert!(report.succeeded());
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_is_retried_after_the_clouds_hint() {
        let mut aws = MockAwsEndpoint::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        aws.expect_start()
            .times(3)
            .returning(move |_| if c.fetch_add(1, Ordering::SeqCst) < 2 { Err(throttled()) } else { Ok(OpHandle("h".into())) });
        aws.expect_poll().returning(|_| Ok(OpStatus::Done(OpOutput { id: Some("cgw-1".into()), ..Default::default() })));
        let report =
            executor(aws, MockAzureEndpoint::new()).run(&plan(vec![(cgw_op(Late::Known([1, 2, 3, 4].into())), vec![])]), |_| {}).await;
        assert!(report.succeeded());
        // Two back-offs of exactly the Retry-After the cloud asked for.
        assert_eq!(report.makespan, Duration::from_secs(14));
    }

    #[tokio::test(start_paused = true)]
    async fn an_ambiguous_create_is_found_by_tag_not_repeated() {
        let mut aws = MockAwsEndpoint::new();
        let mut seq = mockall::Sequence::new();
        aws.expect_start().withf(|op| matches!(op, AwsOp::CreateCustomerGateway { .. })).times(1).in_sequence(&mut seq).returning(|_| {
            let mut e = EndpointError::new(CloudName::Aws, ErrorKind::Transient, "RequestTimeout", "timed out");
            e.may_have_committed = true;
            Err(e)
        });
        aws.expect_observe().with(always()).times(1).returning(|o| {
            Ok(AwsObserved {
                customer_gateways: vec![CustomerGateway {
                    id: "cgw-committed".into(),
                    state: crate::model::AwsState::Pending,
                    ip: [1, 2, 3, 4].into(),
                    bgp_asn: 65000,
                    device_name: Some("d".into()),
                    tags: o.tags(&Role::CustomerGateway(0)),
                }],
                ..Default::default()
            })
        });
        aws.expect_start()
            .withf(|op| matches!(op, AwsOp::Await { id, .. } if id == "cgw-committed"))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(OpHandle("await".into())));
        aws.expect_poll().returning(|_| Ok(OpStatus::Done(OpOutput { id: Some("cgw-committed".into()), ..Default::default() })));
        let report =
            executor(aws, MockAzureEndpoint::new()).run(&plan(vec![(cgw_op(Late::Known([1, 2, 3, 4].into())), vec![])]), |_| {}).await;
        assert!(report.succeeded(), "{report:?}");
    }

    /// A refused repeat of an attach that went through is done once an observation
    /// shows the attachment; a refused route via someone else's gateway stays refused.
    #[tokio::test(start_paused = true)]
    async fn a_refused_repeat_is_judged_from_an_observation() {
        let mut aws = MockAwsEndpoint::new();
        aws.expect_start().times(2).returning(|op| {
            let code = if matches!(op, AwsOp::CreateRoute { .. }) { "RouteAlreadyExists" } else { "VpnGatewayAttachmentLimitExceeded" };
            Err(EndpointError::new(CloudName::Aws, ErrorKind::Conflict, code, "refused"))
        });
        aws.expect_observe().times(2).returning(|o| {
            Ok(AwsObserved {
                vpc: Some(crate::model::Vpc {
                    id: "vpc-1".into(),
                    cidrs: vec![],
                    route_tables: vec![crate::model::RouteTable {
                        id: "rtb-1".into(),
                        main: true,
                        routes: vec![crate::model::VpcRoute {
                            propagated: false,
                            destination: "10.1.0.0/16".parse().unwrap(),
                            gateway_id: Some("vgw-theirs".into()),
                            state: "active".into(),
                        }],
                        propagating_vgws: vec![],
                    }],
                }),
                vpn_gateways: vec![crate::model::VpnGateway {
                    id: "vgw-1".into(),
                    state: AwsState::Available,
                    amazon_asn: 64512,
                    attachments: vec![crate::model::VgwAttachment {
                        vpc_id: "vpc-1".into(),
                        state: crate::model::AttachmentState::Attached,
                    }],
                    tags: o.tags(&Role::VirtualPrivateGateway),
                }],
                ..Default::default()
            })
        });
        let attach = StepOp::Aws(AwsOp::AttachVpnGateway { vgw_id: Late::Known("vgw-1".into()), vpc_id: "vpc-1".into() });
        let route = StepOp::Aws(AwsOp::CreateRoute {
            route_table_id: "rtb-1".into(),
            destination: "10.1.0.0/16".parse().unwrap(),
            vgw_id: Late::Known("vgw-1".into()),
        });
        let report = executor(aws, MockAzureEndpoint::new()).run(&plan(vec![(attach, vec![]), (route, vec![0])]), |_| {}).await;
        assert_eq!(report.steps[0].outcome, StepOutcome::Done);
        assert!(matches!(&report.steps[1].outcome, StepOutcome::Failed { error } if error.contains("RouteAlreadyExists")), "{report:?}");
    }

    /// EC2 answers a CreateCustomerGateway with someone else's gateway of the same IP,
    /// ASN and device name: the step fails naming it, and nothing reads it as ours.
    #[tokio::test(start_paused = true)]
    async fn a_customer_gateway_returned_without_our_tag_is_a_conflict() {
        let mut aws = MockAwsEndpoint::new();
        aws.expect_start().times(1).returning(|_| Ok(OpHandle("h".into())));
        aws.expect_poll()
            .returning(|_| Ok(OpStatus::Done(OpOutput { id: Some("cgw-theirs".into()), tags: Some(Tags::new()), ..Default::default() })));
        let report =
            executor(aws, MockAzureEndpoint::new()).run(&plan(vec![(cgw_op(Late::Known([1, 2, 3, 4].into())), vec![])]), |_| {}).await;
        let StepOutcome::Failed { error } = &report.steps[0].outcome else { panic!("{report:?}") };
        assert!(error.contains("ForeignCustomerGateway") && error.contains("cgw-theirs") && error.contains("untagged"), "{error}");
    }

    /// AWS refusing every CreateVpnGateway (a quota), and completing everything else.
    fn vgw_create_refused() -> MockAwsEndpoint {
        let mut aws = MockAwsEndpoint::new();
        aws.expect_start().returning(|op| match op {
            AwsOp::CreateVpnGateway { .. } => {
                Err(EndpointError::new(CloudName::Aws, ErrorKind::Permanent, "VpnGatewayLimitExceeded", "quota"))
            }
            _ => Ok(OpHandle("ok".into())),
        });
        aws.expect_poll().returning(|_| Ok(OpStatus::Done(OpOutput { id: Some("x".into()), ..Default::default() })));
        aws
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_step_skips_its_dependents_and_lets_the_rest_finish() {
        let aws = vgw_create_refused();
        let vgw = StepOp::Aws(AwsOp::CreateVpnGateway { amazon_asn: 64512, tags: Default::default() });
        let attach = StepOp::Aws(AwsOp::AttachVpnGateway { vgw_id: Late::After(0, OutputField::Id), vpc_id: "vpc-1".into() });
        let p = plan(vec![(vgw, vec![]), (attach, vec![0]), (cgw_op(Late::Known([1, 2, 3, 4].into())), vec![])]);
        let report = executor(aws, MockAzureEndpoint::new()).run(&p, |_| {}).await;
        assert!(matches!(report.steps[0].outcome, StepOutcome::Failed { ref error } if error.contains("VpnGatewayLimitExceeded")));
        assert_eq!(report.steps[1].outcome, StepOutcome::Skipped { because_of: 0 });
        assert_eq!(report.steps[2].outcome, StepOutcome::Done);
    }

    /// A step may wait for a later one (a tunnel's wait moved to its last step): when
    /// that one is skipped, so is the step, reported as skipped, not as a cycle.
    #[tokio::test(start_paused = true)]
    async fn a_step_waiting_for_a_later_skipped_step_is_skipped_too() {
        let aws = vgw_create_refused();
        let vgw = StepOp::Aws(AwsOp::CreateVpnGateway { amazon_asn: 64512, tags: Default::default() });
        let cgw = || cgw_op(Late::Known([1, 2, 3, 4].into()));
        let p = plan(vec![(cgw(), vec![1]), (cgw(), vec![2]), (vgw, vec![])]);
        let report = executor(aws, MockAzureEndpoint::new()).run(&p, |_| {}).await;
        assert!(matches!(report.steps[2].outcome, StepOutcome::Failed { .. }), "{:?}", report.steps[2].outcome);
        assert_eq!(report.steps[1].outcome, StepOutcome::Skipped { because_of: 2 });
        assert_eq!(report.steps[0].outcome, StepOutcome::Skipped { because_of: 2 });
    }

    #[tokio::test(start_paused = true)]
    async fn late_values_are_bound_from_earlier_outputs() {
        let mut aws = MockAwsEndpoint::new();
        let seen = Arc::new(StdMutex::new(Vec::new()));
        let s = seen.clone();
        aws.expect_start().returning(move |op| {
            s.lock().unwrap().push(op.clone());
            Ok(OpHandle("h".into()))
        });
        aws.expect_poll().returning(|_| Ok(OpStatus::Done(OpOutput { id: Some("cgw-9".into()), ..Default::default() })));
        let mut azure = MockAzureEndpoint::new();
        azure.expect_start().returning(|_| Ok(OpHandle("pip".into())));
        azure.expect_poll().returning(|_| Ok(OpStatus::Done(OpOutput { public_ip: Some([20, 1, 2, 3].into()), ..Default::default() })));
        let pip = StepOp::Azure(AzureOp::CreatePublicIp { name: "p".into(), zones: vec![], tags: Default::default() });
        let p = plan(vec![(pip, vec![]), (cgw_op(Late::After(0, OutputField::PublicIp)), vec![0])]);
        assert!(executor(aws, azure).run(&p, |_| {}).await.succeeded());
        assert!(matches!(&seen.lock().unwrap()[0], AwsOp::CreateCustomerGateway { ip, .. } if *ip == std::net::Ipv4Addr::new(20, 1, 2, 3)));
    }

    /// Counts concurrent gateway writes; each takes 10 minutes.
    struct SlowGateway {
        running: AtomicUsize,
        max_seen: AtomicUsize,
        polls: StdMutex<HashMap<String, u32>>,
    }

    #[async_trait]
    impl VpnEndpoint<Azure> for SlowGateway {
        async fn observe(&self, _: &Owner) -> Result<AzureObserved, EndpointError> {
            Ok(AzureObserved::default())
        }
        async fn start(&self, op: &AzureOp) -> Result<OpHandle, EndpointError> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_seen.fetch_max(now, Ordering::SeqCst);
            Ok(OpHandle(format!("{op:?}")))
        }
        async fn poll(&self, h: &OpHandle) -> Result<OpStatus, EndpointError> {
            let mut polls = self.polls.lock().unwrap();
            let n = polls.entry(h.0.clone()).or_default();
            *n += 1;
            if *n > 10 {
                self.running.fetch_sub(1, Ordering::SeqCst);
                Ok(OpStatus::Done(OpOutput::default()))
            } else {
                Ok(OpStatus::Running { retry_after: Some(Duration::from_secs(60)) })
            }
        }
        async fn tunnel_ends(&self, _: &Owner) -> Result<Vec<Box<dyn Tunnel>>, EndpointError> {
            Ok(vec![])
        }
    }

    #[tokio::test(start_paused = true)]
    async fn writes_to_one_gateway_never_overlap() {
        let gw = Arc::new(SlowGateway { running: AtomicUsize::new(0), max_seen: AtomicUsize::new(0), polls: StdMutex::default() });
        let resize = |sku: &str| StepOp::Azure(AzureOp::ResizeVpnGateway { name: "gw".into(), sku: sku.into() });
        let p = plan(vec![(resize("VpnGw2AZ"), vec![]), (resize("VpnGw3AZ"), vec![])]);
        let ex = Executor::new(Arc::new(MockAwsEndpoint::new()), gw.clone(), owner(), ExecSettings::default());
        let report = ex.run(&p, |_| {}).await;
        assert!(report.succeeded());
        assert_eq!(gw.max_seen.load(Ordering::SeqCst), 1);
        assert_eq!(report.makespan, Duration::from_secs(2 * 600));
    }

    #[tokio::test(start_paused = true)]
    async fn an_operation_that_never_finishes_hits_its_deadline() {
        let mut aws = MockAwsEndpoint::new();
        aws.expect_start().returning(|_| Ok(OpHandle("h".into())));
        aws.expect_poll().returning(|_| Ok(OpStatus::Running { retry_after: None }));
        let report =
            executor(aws, MockAzureEndpoint::new()).run(&plan(vec![(cgw_op(Late::Known([1, 2, 3, 4].into())), vec![])]), |_| {}).await;
        assert!(matches!(&report.steps[0].outcome, StepOutcome::Failed { error } if error.contains("did not finish in time")));
        assert_eq!(report.makespan, Duration::from_secs(15 * 60));
    }
}
