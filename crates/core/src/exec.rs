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

use crate::endpoint::{Aws, Azure, CloudName, EndpointError, OpHandle, OpStatus, VpnEndpoint};
use crate::model::{AwsObserved, AwsState, Owner, Tags, TAG_ROLE};
use crate::ops::{AwsOp, AwsResourceKind, AzureOp, OpOutput, StepId};
use crate::plan::{Plan, Step, StepOp};

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
    /// Retries of one call after throttling or a transient error.
    pub max_retries: u32,
    /// First back-off after a transient error (doubled each time, with jitter).
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl Default for ExecSettings {
    fn default() -> Self {
        Self {
            max_concurrency: 8,
            poll_initial: Duration::from_secs(2),
            poll_max: Duration::from_secs(15),
            max_retries: 8,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// The longest an operation may take before the executor gives up on it. Generous
/// versus the clouds' usual durations (DESIGN §8, terraform-provider-aws ceilings).
pub fn deadline(op: &StepOp) -> Duration {
    let min = |m: u64| Duration::from_secs(m * 60);
    match op {
        StepOp::Azure(AzureOp::CreateVpnGateway { .. } | AzureOp::ResizeVpnGateway { .. }) => min(120),
        StepOp::Azure(AzureOp::DeleteVpnGateway { .. }) => min(90),
        StepOp::Azure(AzureOp::Await { .. }) => min(120),
        StepOp::Azure(_) => min(30),
        StepOp::Aws(AwsOp::CreateVpnConnection { .. } | AwsOp::Await { .. }) => min(40),
        StepOp::Aws(AwsOp::DeleteVpnConnection { .. } | AwsOp::DetachVpnGateway { .. } | AwsOp::ModifyVpnTunnelOptions { .. }) => min(30),
        StepOp::Aws(_) => min(15),
    }
}

/// Progress, as it happens. `at` is time since the run started (virtual on the sim).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ExecEvent {
    Started { step: StepId, at: Duration },
    Retrying { step: StepId, at: Duration, error: String, delay: Duration },
    Finished { step: StepId, at: Duration },
    Failed { step: StepId, at: Duration, error: String },
    /// Not started because a step it depends on failed.
    Skipped { step: StepId, because_of: StepId },
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    Done,
    Failed { error: String },
    Skipped { because_of: StepId },
}

/// One step's record in the report.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub id: StepId,
    pub cloud: CloudName,
    pub resource_type: &'static str,
    pub name: String,
    #[serde(serialize_with = "secs_opt")]
    pub started_at: Option<Duration>,
    #[serde(serialize_with = "secs_opt")]
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
#[derive(Debug, Clone, Serialize)]
pub struct ExecReport {
    pub steps: Vec<StepRecord>,
    /// From the first start to the last finish (virtual time on the simulator).
    #[serde(serialize_with = "secs")]
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
        let mut records: Vec<StepRecord> = plan
            .steps
            .iter()
            .map(|s| StepRecord {
                id: s.id,
                cloud: s.cloud(),
                resource_type: s.resource_type,
                name: s.name.clone(),
                started_at: None,
                finished_at: None,
                outcome: StepOutcome::Skipped { because_of: usize::MAX },
            })
            .collect();
        let mut state: Vec<Progress> = vec![Progress::Waiting; n];
        let semaphore = Arc::new(Semaphore::new(self.settings.max_concurrency.max(1)));
        let serial: Arc<std::sync::Mutex<BTreeMap<String, Arc<Mutex<()>>>>> = Arc::default();
        let mut running: JoinSet<(StepId, Result<OpOutput, StepError>)> = JoinSet::new();

        loop {
            // Skip what can never run; start what is ready.
            for s in &plan.steps {
                if state[s.id] != Progress::Waiting {
                    continue;
                }
                if let Some(&bad) = s.depends_on.iter().find(|d| matches!(state[**d], Progress::Failed | Progress::Skipped)) {
                    state[s.id] = Progress::Skipped;
                    let root = match &records[bad].outcome {
                        StepOutcome::Skipped { because_of } => *because_of,
                        _ => bad,
                    };
                    records[s.id].outcome = StepOutcome::Skipped { because_of: root };
                    sink(&ExecEvent::Skipped { step: s.id, because_of: root });
                    continue;
                }
                if !s.depends_on.iter().all(|d| state[*d] == Progress::Done) {
                    continue;
                }
                state[s.id] = Progress::Running;
                let at = t0.elapsed();
                records[s.id].started_at = Some(at);
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
            records[id].finished_at = Some(at);
            match result {
                Ok(out) => {
                    state[id] = Progress::Done;
                    records[id].outcome = StepOutcome::Done;
                    outputs.insert(id, out);
                    sink(&ExecEvent::Finished { step: id, at });
                }
                Err(e) => {
                    state[id] = Progress::Failed;
                    let error = e.to_string();
                    records[id].outcome = StepOutcome::Failed { error: error.clone() };
                    sink(&ExecEvent::Failed { step: id, at, error });
                }
            }
        }
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
        match tokio::time::timeout(limit, self.drive(step.id, op, &sink, t0)).await {
            Ok(r) => r,
            Err(_) => Err(StepError::Deadline(limit)),
        }
    }

    /// Start (retrying transient failures safely), then poll until done.
    async fn drive(&self, step: StepId, op: BoundOp, sink: &EventSink, t0: Instant) -> Result<OpOutput, StepError> {
        let mut attempt = 0u32;
        loop {
            let started = match &op {
                BoundOp::Aws(o) => self.aws.start(o).await,
                BoundOp::Azure(o) => self.azure.start(o).await,
            };
            let handle = match started {
                Ok(h) => h,
                Err(e) if e.is_transient() && attempt < self.settings.max_retries => {
                    // A create without a client token may have been committed although
                    // the call failed: look for it by tag before creating again.
                    if let BoundOp::Aws(o) = &op {
                        if o.creates_without_token() && e.may_have_committed {
                            if let Some(h) = self.find_committed_create(o).await {
                                h
                            } else {
                                attempt += 1;
                                self.back_off(step, attempt, &e, sink, t0).await;
                                continue;
                            }
                        } else {
                            attempt += 1;
                            self.back_off(step, attempt, &e, sink, t0).await;
                            continue;
                        }
                    } else {
                        attempt += 1;
                        self.back_off(step, attempt, &e, sink, t0).await;
                        continue;
                    }
                }
                Err(e) => return Err(e.into()),
            };
            match self.poll_until_done(step, &op, &handle, sink, t0).await? {
                PollEnd::Done(out) => return Ok(out),
                PollEnd::FailedTransient(e) if attempt < self.settings.max_retries => {
                    attempt += 1;
                    self.back_off(step, attempt, &e, sink, t0).await;
                }
                PollEnd::FailedTransient(e) => return Err(e.into()),
            }
        }
    }

    async fn poll_until_done(&self, step: StepId, op: &BoundOp, handle: &OpHandle, sink: &EventSink, t0: Instant) -> Result<PollEnd, StepError> {
        let mut interval = self.settings.poll_initial;
        let mut errors = 0u32;
        loop {
            let polled = match op {
                BoundOp::Aws(_) => self.aws.poll(handle).await,
                BoundOp::Azure(_) => self.azure.poll(handle).await,
            };
            match polled {
                Ok(OpStatus::Done(out)) => return Ok(PollEnd::Done(out)),
                Ok(OpStatus::Failed(e)) if e.is_transient() => return Ok(PollEnd::FailedTransient(e)),
                Ok(OpStatus::Failed(e)) => return Err(e.into()),
                Ok(OpStatus::Running { retry_after }) => {
                    errors = 0;
                    let wait = retry_after.unwrap_or(interval);
                    tokio::time::sleep(wait).await;
                    interval = (interval.mul_f64(1.5)).min(self.settings.poll_max);
                }
                Err(e) if e.is_transient() && errors < self.settings.max_retries => {
                    errors += 1;
                    self.back_off(step, errors, &e, sink, t0).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn back_off(&self, step: StepId, attempt: u32, e: &EndpointError, sink: &EventSink, t0: Instant) {
        let delay = e.retry_after.unwrap_or_else(|| jittered(self.settings.backoff_initial, self.settings.backoff_max, attempt));
        tracing::info!(step, attempt, error = %e, ?delay, "transient error; retrying");
        sink(&ExecEvent::Retrying { step, at: t0.elapsed(), error: e.to_string(), delay });
        tokio::time::sleep(delay).await;
    }

    /// After an ambiguous failure of a create: the resource, if the cloud did commit it.
    async fn find_committed_create(&self, op: &AwsOp) -> Option<OpHandle> {
        let tags = match op {
            AwsOp::CreateVpnGateway { tags, .. } | AwsOp::CreateCustomerGateway { tags, .. } | AwsOp::CreateVpnConnection { tags, .. } => tags,
            _ => return None,
        };
        let observed = self.aws.observe(&self.owner).await.ok()?;
        let (kind, id) = find_by_tags(&observed, tags)?;
        tracing::info!(%id, "the create was committed despite the error; waiting for it instead of creating again");
        self.aws.start(&AwsOp::Await { kind, id }).await.ok()
    }
}

/// A resource carrying exactly these ownership tags, if one exists and is not gone.
pub fn find_by_tags(observed: &AwsObserved, tags: &Tags) -> Option<(AwsResourceKind, String)> {
    let same = |t: &Tags| t.get(TAG_ROLE) == tags.get(TAG_ROLE) && t.get(crate::model::TAG_DEPLOYMENT) == tags.get(crate::model::TAG_DEPLOYMENT);
    let live = |s: AwsState| !s.is_gone();
    observed
        .vpn_gateways
        .iter()
        .find(|v| live(v.state) && same(&v.tags))
        .map(|v| (AwsResourceKind::VpnGateway, v.id.clone()))
        .or_else(|| observed.customer_gateways.iter().find(|c| live(c.state) && same(&c.tags)).map(|c| (AwsResourceKind::CustomerGateway, c.id.clone())))
        .or_else(|| observed.vpn_connections.iter().find(|c| live(c.state) && same(&c.tags)).map(|c| (AwsResourceKind::VpnConnection, c.id.clone())))
}

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
