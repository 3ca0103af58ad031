//! Fault injection: the failures real clouds have, on demand, around any endpoint.
//!
//! [`Faulty`] wraps a [`VpnEndpoint`] and, following a seeded [`FaultPlan`], makes
//! calls fail the way EC2 and ARM do: throttling (`RequestLimitExceeded`, 429 with
//! Retry-After), 5xx, a request that times out *after* the cloud carried it out, 409
//! `AnotherOperationInProgress`, an Azure operation that ends Failed (the resource is
//! left in provisioning state Failed), eventual consistency (a new resource missing from
//! lists for a while), and a crash of the process right after a given call. Faults are
//! counted so tests can say what they survived. One [`FaultInjector`] is shared by the
//! AWS and Azure wrappers of a run: call indices count both clouds' calls in order.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vpnbridge_core::endpoint::{Aws, Azure, CloudName, EndpointError, ErrorKind, OpHandle, OpStatus, Tunnel, VpnEndpoint};
use vpnbridge_core::model::{AwsObserved, AzureObserved, Owner};
use vpnbridge_core::ops::{AwsOp, AzureOp};

use crate::cloud::SimCloud;

/// One injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// AWS `RequestLimitExceeded`, Azure 429 with Retry-After; nothing is carried out.
    Throttle,
    /// A 5xx before the cloud did anything.
    ServerError,
    /// The cloud carries the request out, then the caller sees a timeout.
    TimeoutAfterCommit,
    /// Azure 409 AnotherOperationInProgress; nothing is carried out.
    Conflict,
    /// An Azure operation ends Failed; its resource is left in provisioning state Failed.
    OperationFailed,
    /// The process dies right after this call: the caller never sees its answer, and
    /// every later call of the run fails.
    Crash,
}

/// What to inject. Rates are per call (per eligible call for the specific kinds).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    pub seed: u64,
    pub throttle: f64,
    pub server_error: f64,
    pub timeout_after_commit: f64,
    pub conflict: f64,
    pub operation_failed: f64,
    /// New resources are missing from lists for this long after they are created.
    pub consistency_delay: Duration,
    /// Faults at given call indices (0-based over both clouds' calls).
    pub scripted: BTreeMap<u64, Fault>,
    /// Crash right after call i.
    pub crash_after: Option<u64>,
}

impl FaultPlan {
    /// Nothing injected.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        *self == Self { seed: self.seed, ..Self::default() }
    }
}

/// `seed=7,throttle=0.1,server-error=0.05,timeout-after-commit=0.05,conflict=0.05,`
/// `operation-failed=0.02,consistency=10s,crash-after=120` (every part optional).
impl FromStr for FaultPlan {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut p = FaultPlan::default();
        for part in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| format!("`{part}`: expected key=value"))?;
            let rate = || -> Result<f64, String> {
                let r: f64 = v.parse().map_err(|_| format!("`{k}`: {v} is not a number"))?;
                if (0.0..=1.0).contains(&r) { Ok(r) } else { Err(format!("`{k}`: {v} is not a rate between 0 and 1")) }
            };
            match k {
                "seed" => p.seed = v.parse().map_err(|_| format!("seed: {v} is not a whole number"))?,
                "throttle" => p.throttle = rate()?,
                "server-error" => p.server_error = rate()?,
                "timeout-after-commit" => p.timeout_after_commit = rate()?,
                "conflict" => p.conflict = rate()?,
                "operation-failed" => p.operation_failed = rate()?,
                "consistency" => {
                    let secs = v
                        .trim_end_matches('s')
                        .parse::<u64>()
                        .map_err(|_| format!("consistency: {v} is not a number of seconds like 10s"))?;
                    p.consistency_delay = Duration::from_secs(secs);
                }
                "crash-after" => p.crash_after = Some(v.parse().map_err(|_| format!("crash-after: {v} is not a call index"))?),
                other => {
                    return Err(format!(
                        "unknown fault `{other}`; known: seed, throttle, server-error, timeout-after-commit, conflict, operation-failed, consistency, crash-after"
                    ));
                }
            }
        }
        Ok(p)
    }
}

/// Shared state of one run's fault injection.
#[derive(Clone)]
pub struct FaultInjector {
    state: Arc<Mutex<State>>,
    cloud: SimCloud,
}

impl std::fmt::Debug for FaultInjector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.lock().expect("not poisoned");
        f.debug_struct("FaultInjector").field("calls", &s.calls).field("crashed", &s.crashed).field("injected", &s.injected).finish()
    }
}

type CrashHook = Arc<dyn Fn(u64) + Send + Sync>;

struct State {
    plan: FaultPlan,
    rng: StdRng,
    calls: u64,
    crashed: bool,
    injected: BTreeMap<Fault, u64>,
    /// Resources created through a wrapper, by id, with the tokio time of creation.
    created: HashMap<String, tokio::time::Instant>,
    on_crash: Option<CrashHook>,
}

impl FaultInjector {
    pub fn new(cloud: &SimCloud, plan: FaultPlan) -> Self {
        let rng = StdRng::seed_from_u64(plan.seed);
        let state = State { plan, rng, calls: 0, crashed: false, injected: BTreeMap::new(), created: HashMap::new(), on_crash: None };
        Self { state: Arc::new(Mutex::new(state)), cloud: cloud.clone() }
    }

    /// Called with the call index when the simulated crash happens (the CLI exits the
    /// process there; tests let later calls fail instead).
    pub fn on_crash(&self, hook: impl Fn(u64) + Send + Sync + 'static) {
        self.state.lock().expect("not poisoned").on_crash = Some(Arc::new(hook));
    }

    /// Calls seen so far.
    pub fn calls(&self) -> u64 {
        self.state.lock().expect("not poisoned").calls
    }

    pub fn crashed(&self) -> bool {
        self.state.lock().expect("not poisoned").crashed
    }

    /// How many of each fault were injected.
    pub fn injected(&self) -> BTreeMap<Fault, u64> {
        self.state.lock().expect("not poisoned").injected.clone()
    }

    /// Wraps an endpoint of either cloud.
    pub fn wrap<E>(&self, inner: E, cloud: CloudName) -> Faulty<E> {
        Faulty { inner, faults: self.clone(), cloud }
    }

    /// Picks the fault for the next call (`kinds` are the faults this call can have).
    fn next(&self, kinds: &[Fault]) -> Result<(u64, Option<Fault>), ()> {
        let mut s = self.state.lock().expect("not poisoned");
        if s.crashed {
            return Err(());
        }
        let i = s.calls;
        s.calls += 1;
        let mut fault = s.plan.scripted.get(&i).copied().filter(|f| kinds.contains(f) || *f == Fault::Crash);
        if fault.is_none() {
            for k in kinds {
                let rate = match k {
                    Fault::Throttle => s.plan.throttle,
                    Fault::ServerError => s.plan.server_error,
                    Fault::TimeoutAfterCommit => s.plan.timeout_after_commit,
                    Fault::Conflict => s.plan.conflict,
                    Fault::OperationFailed => s.plan.operation_failed,
                    Fault::Crash => 0.0,
                };
                if rate > 0.0 && s.rng.random_bool(rate) {
                    fault = Some(*k);
                    break;
                }
            }
        }
        if s.plan.crash_after == Some(i) {
            fault = Some(Fault::Crash);
        }
        if let Some(f) = fault {
            *s.injected.entry(f).or_default() += 1;
        }
        Ok((i, fault))
    }

    fn crash(&self, i: u64) {
        let hook = {
            let mut s = self.state.lock().expect("not poisoned");
            s.crashed = true;
            s.on_crash.clone()
        };
        if let Some(h) = hook {
            h(i);
        }
    }

    fn remember_created(&self, id: String) {
        self.state.lock().expect("not poisoned").created.insert(id, tokio::time::Instant::now());
    }

    /// Whether `id` is still hidden from lists.
    fn hidden(&self, id: &str) -> bool {
        let s = self.state.lock().expect("not poisoned");
        let delay = s.plan.consistency_delay;
        !delay.is_zero() && s.created.get(id).is_some_and(|t| t.elapsed() < delay)
    }
}

/// An endpoint that fails as its [`FaultInjector`] says.
#[derive(Debug)]
pub struct Faulty<E> {
    inner: E,
    faults: FaultInjector,
    cloud: CloudName,
}

fn error(cloud: CloudName, fault: Fault) -> EndpointError {
    let (kind, code, message) = match (cloud, fault) {
        (CloudName::Aws, Fault::Throttle) => (ErrorKind::Throttled, "RequestLimitExceeded", "Request limit exceeded."),
        (CloudName::Azure, Fault::Throttle) => (ErrorKind::Throttled, "TooManyRequests", "The request is being throttled."),
        (CloudName::Aws, Fault::ServerError) => (ErrorKind::Transient, "InternalError", "An internal error has occurred."),
        (CloudName::Azure, Fault::ServerError) => {
            (ErrorKind::Transient, "InternalServerError", "An error occurred while processing the request.")
        }
        (_, Fault::TimeoutAfterCommit) => (ErrorKind::Transient, "RequestTimeout", "The request timed out waiting for the response."),
        (_, Fault::Conflict) => {
            (ErrorKind::Transient, "AnotherOperationInProgress", "Another operation on this or dependent resource is in progress.")
        }
        (_, Fault::OperationFailed) => (ErrorKind::Transient, "OperationFailed", "The long-running operation ended with status Failed."),
        (_, Fault::Crash) => (ErrorKind::Permanent, "ProcessCrashed", "the simulated process crashed; this run is over"),
    };
    let mut e = EndpointError::new(cloud, kind, code, message);
    if fault == Fault::Throttle && cloud == CloudName::Azure {
        e.retry_after = Some(Duration::from_secs(5));
    }
    e.may_have_committed = fault == Fault::TimeoutAfterCommit;
    e
}

impl<E> Faulty<E> {
    fn crashed_error(&self) -> EndpointError {
        error(self.cloud, Fault::Crash)
    }

    /// Runs `call` unless the fault says otherwise; crashes after it if planned.
    async fn guard<T, F>(&self, kinds: &[Fault], call: F) -> Result<T, EndpointError>
    where
        F: std::future::Future<Output = Result<T, EndpointError>>,
    {
        let Ok((i, fault)) = self.faults.next(kinds) else { return Err(self.crashed_error()) };
        match fault {
            None => call.await,
            Some(Fault::Crash) => {
                let _ = call.await;
                self.faults.crash(i);
                Err(self.crashed_error())
            }
            Some(Fault::TimeoutAfterCommit) => {
                call.await?;
                Err(error(self.cloud, Fault::TimeoutAfterCommit))
            }
            Some(f) => Err(error(self.cloud, f)),
        }
    }
}

const READ_FAULTS: &[Fault] = &[Fault::Throttle, Fault::ServerError];

#[async_trait]
impl<E: VpnEndpoint<Aws>> VpnEndpoint<Aws> for Faulty<E> {
    async fn observe(&self, owner: &Owner) -> Result<AwsObserved, EndpointError> {
        let mut o = self.guard(READ_FAULTS, self.inner.observe(owner)).await?;
        let f = &self.faults;
        o.vpn_gateways.retain(|v| !f.hidden(&v.id));
        o.customer_gateways.retain(|c| !f.hidden(&c.id));
        o.vpn_connections.retain(|c| !f.hidden(&c.id));
        Ok(o)
    }

    async fn start(&self, op: &AwsOp) -> Result<OpHandle, EndpointError> {
        let kinds: &[Fault] =
            if matches!(op, AwsOp::Await { .. } | AwsOp::ModifyVpnTunnelOptions { .. } | AwsOp::ModifyVpnConnection { .. }) {
                &[Fault::Throttle, Fault::ServerError]
            } else {
                &[Fault::Throttle, Fault::ServerError, Fault::TimeoutAfterCommit]
            };
        let creates = op.creates_without_token();
        let handle = self.guard(kinds, self.inner.start(op)).await?;
        if creates {
            // The id is known only from the resource itself: look it up by tags (and IP).
            if let Ok(o) = self.inner.observe(&owner_of(op)).await
                && let Some((_, id)) = vpnbridge_core::exec::find_created(&o, op)
            {
                self.faults.remember_created(id);
            }
        }
        Ok(handle)
    }

    async fn poll(&self, handle: &OpHandle) -> Result<OpStatus, EndpointError> {
        self.guard(READ_FAULTS, self.inner.poll(handle)).await
    }

    async fn tunnel_ends(&self, owner: &Owner) -> Result<Vec<Box<dyn Tunnel>>, EndpointError> {
        self.guard(READ_FAULTS, self.inner.tunnel_ends(owner)).await
    }
}

#[async_trait]
impl<E: VpnEndpoint<Azure>> VpnEndpoint<Azure> for Faulty<E> {
    async fn observe(&self, owner: &Owner) -> Result<AzureObserved, EndpointError> {
        let mut o = self.guard(READ_FAULTS, self.inner.observe(owner)).await?;
        let f = &self.faults;
        o.public_ips.retain(|p| !f.hidden(&p.id));
        if o.vpn_gateway.as_ref().is_some_and(|g| f.hidden(&g.id)) {
            o.vpn_gateway = None;
        }
        o.local_network_gateways.retain(|l| !f.hidden(&l.id));
        o.connections.retain(|c| !f.hidden(&c.id));
        Ok(o)
    }

    async fn start(&self, op: &AzureOp) -> Result<OpHandle, EndpointError> {
        let kinds: &[Fault] = if matches!(op, AzureOp::Await { .. }) {
            &[Fault::Throttle, Fault::ServerError]
        } else {
            &[Fault::Throttle, Fault::ServerError, Fault::TimeoutAfterCommit, Fault::Conflict]
        };
        // Remember what this call creates, for eventual consistency.
        let created = op.created_resource().map(|(_, name)| name.to_owned());
        let owner = azure_owner(op);
        let existed = match &created {
            Some(name) => self.inner.observe(&owner).await.map(|o| azure_id(&o, name).is_some()).unwrap_or(true),
            None => true,
        };
        let handle = self.guard(kinds, self.inner.start(op)).await?;
        if let (Some(name), false) = (created, existed)
            && let Some(id) = self.inner.observe(&owner).await.ok().and_then(|o| azure_id(&o, &name))
        {
            self.faults.remember_created(id);
        }
        Ok(handle)
    }

    async fn poll(&self, handle: &OpHandle) -> Result<OpStatus, EndpointError> {
        let status = self.guard(READ_FAULTS, self.inner.poll(handle)).await?;
        // An operation that would end well may end Failed instead.
        if let OpStatus::Done(out) = &status
            && let Some(id) = &out.id
        {
            let Ok((i, fault)) = self.faults.next(&[Fault::OperationFailed]) else { return Err(self.crashed_error()) };
            match fault {
                Some(Fault::OperationFailed) if self.faults.cloud.fail_azure_resource(id) => {
                    return Ok(OpStatus::Failed(error(CloudName::Azure, Fault::OperationFailed)));
                }
                Some(Fault::Crash) => {
                    self.faults.crash(i);
                    return Err(self.crashed_error());
                }
                _ => {}
            }
        }
        Ok(status)
    }

    async fn tunnel_ends(&self, owner: &Owner) -> Result<Vec<Box<dyn Tunnel>>, EndpointError> {
        self.guard(READ_FAULTS, self.inner.tunnel_ends(owner)).await
    }
}

fn owner_of(op: &AwsOp) -> Owner {
    let tags = match op {
        AwsOp::CreateVpnGateway { tags, .. } | AwsOp::CreateCustomerGateway { tags, .. } | AwsOp::CreateVpnConnection { tags, .. } => tags,
        _ => return Owner::new(""),
    };
    Owner::new(tags.get(vpnbridge_core::model::TAG_DEPLOYMENT).cloned().unwrap_or_default())
}

fn azure_owner(op: &AzureOp) -> Owner {
    let tags = match op {
        AzureOp::CreatePublicIp { tags, .. }
        | AzureOp::CreateVpnGateway { tags, .. }
        | AzureOp::PutLocalNetworkGateway { tags, .. }
        | AzureOp::PutConnection { tags, .. } => tags,
        _ => return Owner::new(""),
    };
    Owner::new(tags.get(vpnbridge_core::model::TAG_DEPLOYMENT).cloned().unwrap_or_default())
}

fn azure_id(o: &AzureObserved, name: &str) -> Option<String> {
    o.public_ips
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.id.clone())
        .or_else(|| o.vpn_gateway.as_ref().filter(|g| g.name == name).map(|g| g.id.clone()))
        .or_else(|| o.local_network_gateways.iter().find(|l| l.name == name).map(|l| l.id.clone()))
        .or_else(|| o.connections.iter().find(|c| c.name == name).map(|c| c.id.clone()))
}
