//! [`Deployment`]: one config's connection to the two clouds, and every command as a
//! method returning its typed report.
//!
//! A deployment opened with [`Access::ReadOnly`] writes nothing: the run lock is taken
//! shared and only if it exists, the simulated world is opened read-only (the VNet and
//! VPC it seeds stay in memory), and the mutating methods refuse. Otherwise the lock is
//! held exclusively for the life of the `Deployment`, and the simulated clouds' clock is
//! saved after every method that made a mutating call.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use vpnbridge_core::config::{self, Backend, Config, ConfigErrors, ConfigWarning, Loaded};
use vpnbridge_core::drill::{self, DrillError, DrillEvent, DrillSettings};
use vpnbridge_core::endpoint::{Aws, Azure, CallCounter, CloudName, Instrumented, VpnEndpoint};
use vpnbridge_core::exec::{ExecEvent, ExecSettings, Executor};
use vpnbridge_core::model::Owner;
use vpnbridge_core::pairing::{self, ObservedTunnel, TunnelHealth};
use vpnbridge_core::plan::{self, Observed, Plan, PlanError, PlanKind};
use vpnbridge_core::probe::probe_addresses;
use vpnbridge_core::verify::{self, VerifyError};
use vpnbridge_sim::{AwsTarget, AzureTarget, FaultInjector, FaultPlan, LatencyTable, SimAws, SimAzure, SimCloud, VnetSpec, VpcSpec};

use crate::lock::{LockHeld, RunLock};
use crate::probe;
use crate::report::{self, ApplyReport, Calls, DrillReport, PlanReport, Simulated, StatusReport, VerifyReport};

/// Why a call did not succeed. Each variant is one of the CLI's exit codes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config is invalid: every problem, nothing called.
    #[error("the configuration is invalid; nothing was called.\n{0}")]
    Config(ConfigErrors),
    /// The config asks for something this version does not build yet.
    #[error("{0}")]
    Unsupported(PlanError),
    /// The clouds contradict the config: nothing changed.
    #[error("{0}\nNothing was changed.")]
    Preflight(PlanError),
    /// The caller's [`Confirm`] said no.
    #[error("{0}")]
    NotConfirmed(String),
    /// Another run holds the deployment's lock.
    #[error(transparent)]
    Locked(LockHeld),
    /// The data plane cannot be observed for what was asked (a drill on mixed backends).
    #[error("{0}")]
    NotObservable(String),
    /// The caller asked for something that does not exist (a drill of tunnel 5 of 4).
    #[error("{0}")]
    Usage(String),
    /// Anything else: a cloud call that failed for good, an I/O error.
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

impl Error {
    /// A stable name for scripts (`error.kind` in the JSON).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Unsupported(_) => "unsupported",
            Error::Preflight(_) => "preflight",
            Error::NotConfirmed(_) => "not_confirmed",
            Error::Locked(_) => "locked",
            Error::NotObservable(_) => "not_observable",
            Error::Usage(_) => "usage",
            Error::Other(_) => "error",
        }
    }

    /// One line per problem.
    pub fn messages(&self) -> Vec<String> {
        match self {
            Error::Config(e) => e.messages(),
            Error::Preflight(e) | Error::Unsupported(e) => e.0.clone(),
            Error::NotConfirmed(m) | Error::NotObservable(m) | Error::Usage(m) => vec![m.clone()],
            Error::Locked(e) => vec![e.to_string()],
            Error::Other(e) => vec![format!("{e:#}")],
        }
    }
}

/// Loads and validates a config file. Nothing is called before this succeeds.
pub fn load(path: &Path) -> Result<Loaded, Error> {
    config::load(path).map_err(Error::Config)
}

/// The async runtime a config needs. With both sides simulated it is a current-thread
/// runtime on tokio's paused clock, which is the simulator's virtual clock: a 45-minute
/// gateway build takes milliseconds and every timing is still exact. With a real side
/// it is an ordinary multi-thread runtime on the real clock.
///
/// A simulated deployment opened in a runtime of your own runs on that runtime's clock:
/// on a real clock the simulator then takes its modelled time (set
/// [`Options::sim_latency`] to [`LatencyTable::instant`] to have it answer at once).
pub fn runtime(config: &Config) -> Result<tokio::runtime::Runtime, Error> {
    let rt = if config.azure.backend == Backend::Real || config.aws.backend == Backend::Real {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()
    };
    Ok(rt.context("starting the async runtime")?)
}

/// `drill` refuses mixed backends: checked by [`Deployment::drill`], and callable before
/// anything is opened.
pub fn drill_refusal(config: &Config) -> Result<(), Error> {
    if config.azure.backend != config.aws.backend {
        let name = |b: Backend, real: &str| if b == Backend::Sim { "\"sim\"".to_owned() } else { format!("\"{real}\"") };
        return Err(Error::NotObservable(format!(
            "drill refuses to run on mixed backends (azure.backend = {}, aws.backend = {}): a drill deletes an Azure \
             Connection and must see traffic move to another tunnel, and no traffic can cross between a simulated and \
             a real cloud; run it with both sides simulated, or both real",
            name(config.azure.backend, "azure"),
            name(config.aws.backend, "aws")
        )));
    }
    Ok(())
}

/// Whether a deployment may change things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Reads only (`plan`, `status`, `verify`): the lock is shared, nothing is written.
    ReadOnly,
    /// May change the clouds; the lock is exclusive and names this purpose to a run
    /// that waits for it ("apply", "my-service"...).
    Change(String),
}

/// Told who holds the run lock, once, when [`Deployment::open`] has to wait for it.
pub type LockWaitHook = Arc<dyn Fn(&str) + Send + Sync>;

/// Told the call's number when an injected simulated crash fires.
pub type CrashHook = Arc<dyn Fn(u64) + Send + Sync>;

/// How [`Deployment::open`] connects.
#[derive(Clone)]
pub struct Options {
    /// Where the run lock and the simulated clouds live; default `.vpnbridge/` next to
    /// the config file.
    pub state_dir: Option<PathBuf>,
    pub access: Access,
    /// How long to wait for another run's lock before [`Error::Locked`].
    pub lock_wait: Duration,
    /// Called once, with who holds it, when the lock is taken and [`Deployment::open`]
    /// waits for it (default: a tracing event).
    pub on_lock_wait: Option<LockWaitHook>,
    /// After an apply, how long to wait for every tunnel to be up.
    pub tunnel_wait: Duration,
    /// The simulated clouds' latencies; default: the modelled table on the virtual
    /// clock, none at all when the other side is real.
    pub sim_latency: Option<LatencyTable>,
    /// Faults injected into the simulated clouds (demos and tests).
    pub sim_faults: Option<FaultPlan>,
    /// Called when an injected crash fires, with the call's number (the CLI ends the
    /// process there). Without it, every later simulated call fails, as after a crash.
    pub on_simulated_crash: Option<CrashHook>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            state_dir: None,
            access: Access::Change("vpnbridge library".into()),
            lock_wait: Duration::from_secs(30),
            on_lock_wait: None,
            tunnel_wait: Duration::from_secs(600),
            sim_latency: None,
            sim_faults: None,
            on_simulated_crash: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("state_dir", &self.state_dir)
            .field("access", &self.access)
            .field("lock_wait", &self.lock_wait)
            .field("tunnel_wait", &self.tunnel_wait)
            .field("sim_faults", &self.sim_faults)
            .finish_non_exhaustive()
    }
}

/// What happens while a long call runs, for the caller to render.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The plan about to run (before [`Confirm`] is asked), with the preflight's warnings.
    Planned { plan: &'a Plan, warnings: &'a [String] },
    /// A step started, finished, failed, is retried or skipped.
    Step(&'a ExecEvent),
    /// Every step has run.
    StepsDone,
    /// The tunnels are not all up yet; apply waits for them up to `limit`.
    WaitingForTunnels { limit: Duration },
    /// Apply does not wait for the tunnels, and why.
    NotWaitingForTunnels { reason: &'a str },
    /// A drill's timeline.
    Drill(&'a DrillEvent),
}

/// A progress callback. [`Progress::none`] ignores everything.
pub struct Progress(Box<dyn Fn(&Event<'_>) + Send + Sync>);

impl Progress {
    pub fn new(f: impl Fn(&Event<'_>) + Send + Sync + 'static) -> Self {
        Self(Box::new(f))
    }

    pub fn none() -> Self {
        Self::new(|_| {})
    }

    fn emit(&self, e: &Event<'_>) {
        (self.0)(e);
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

/// What a caller is asked before something changes.
#[derive(Debug)]
#[non_exhaustive]
pub enum Question<'a> {
    /// Run this plan (apply or destroy). `real`: a real cloud would change.
    Change { plan: &'a Plan, real: bool },
    /// Delete and recreate `tunnels` Azure Connections, one at a time.
    Drill { tunnels: usize, real: bool },
}

impl Question<'_> {
    /// Whether a real cloud would change (the simulator needs no confirmation).
    pub fn real(&self) -> bool {
        match self {
            Question::Change { real, .. } | Question::Drill { real, .. } => *real,
        }
    }

    /// The question in words, for a prompt.
    pub fn prompt(&self) -> String {
        match self {
            Question::Change { plan, .. } => {
                let c = plan.counts();
                format!(
                    "This changes real cloud resources ({} to create, {} to modify, {} to destroy). Type \"yes\" to go on: ",
                    c.create, c.modify, c.delete
                )
            }
            Question::Drill { tunnels, .. } => format!(
                "The drill deletes and recreates real Azure Connections, one at a time ({tunnels} tunnel(s)); each is down \
                 for minutes. Type \"yes\" to go on: "
            ),
        }
    }
}

/// The caller's decision before a change: `Ok(())` goes on, `Err(reason)` stops with
/// [`Error::NotConfirmed`] and nothing changed. A closure is a `Confirm`.
pub trait Confirm: Send + Sync {
    fn confirm(&self, question: &Question<'_>) -> Result<(), String>;
}

impl<F: Fn(&Question<'_>) -> Result<(), String> + Send + Sync> Confirm for F {
    fn confirm(&self, question: &Question<'_>) -> Result<(), String> {
        self(question)
    }
}

/// Always goes on (the CLI's `--yes`).
#[derive(Debug, Clone, Copy)]
pub struct Yes;

impl Confirm for Yes {
    fn confirm(&self, _: &Question<'_>) -> Result<(), String> {
        Ok(())
    }
}

/// How [`Deployment::apply_with`] runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Both sides simulated only: ping each way every simulated second while the change
    /// runs, and report the seconds without a path ([`Run::traffic`](crate::report::Run::traffic)).
    pub watch_traffic: bool,
}

/// One config's connection to the two clouds.
pub struct Deployment {
    config: Config,
    warnings: Vec<ConfigWarning>,
    owner: Owner,
    aws: Arc<dyn VpnEndpoint<Aws>>,
    azure: Arc<dyn VpnEndpoint<Azure>>,
    aws_calls: Arc<CallCounter>,
    azure_calls: Arc<CallCounter>,
    /// The simulated clouds, when a side is simulated.
    sim: Option<SimCloud>,
    state_dir: PathBuf,
    /// The real AWS adapter, for its own preflight checks.
    aws_real: Option<vpnbridge_aws::AwsEndpoint>,
    /// The real Azure adapter, whose ARM client the probe's Run Command goes through.
    azure_real: Option<vpnbridge_azure::AzureEndpoint>,
    read_only: bool,
    tunnel_wait: Duration,
    /// One run at a time per deployment directory.
    _lock: Option<RunLock>,
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment").field("owner", &self.owner).field("state_dir", &self.state_dir).finish_non_exhaustive()
    }
}

impl Deployment {
    /// Takes the run lock and opens the endpoints the config names. Refuses what this
    /// version cannot build yet ([`Error::Unsupported`]) before anything is opened.
    pub async fn open(loaded: Loaded, options: Options) -> Result<Self, Error> {
        plan::check_supported(&loaded.config).map_err(Error::Unsupported)?;
        let config = loaded.config;
        let owner = Owner::new(&config.name);
        let read_only = options.access == Access::ReadOnly;
        let dir = options.state_dir.clone().unwrap_or_else(|| default_state_dir(&config.source));
        // One run at a time per deployment directory, whatever the backends: on the
        // simulator it also guards the world file.
        let waiting = |holder: &str| match &options.on_lock_wait {
            Some(f) => f(holder),
            None => tracing::info!("waiting for another vpnbridge run to finish: {holder}"),
        };
        let lock = match &options.access {
            Access::ReadOnly => RunLock::share(&dir, options.lock_wait, &waiting)?.map_err(Error::Locked)?,
            Access::Change(purpose) => Some(RunLock::acquire(&dir, purpose, options.lock_wait, &waiting)?.map_err(Error::Locked)?),
        };
        let any_real = config.azure.backend == Backend::Real || config.aws.backend == Backend::Real;
        let sim = if config.azure.backend == Backend::Sim || config.aws.backend == Backend::Sim {
            Some(open_sim(&config, &dir, read_only, any_real, &options)?)
        } else {
            None
        };
        // One injector per world, shared by both clouds.
        let faults = sim.as_ref().map(|cloud| {
            let injector = FaultInjector::new(cloud, options.sim_faults.clone().unwrap_or_else(FaultPlan::none));
            if let Some(hook) = options.on_simulated_crash.clone() {
                injector.on_crash(move |call| hook(call));
            }
            injector
        });
        let simulated = |cloud: &Option<SimCloud>| -> (SimCloud, FaultInjector) {
            // Both exist whenever a side is simulated (built together above).
            (cloud.clone().expect("opened for a simulated side"), faults.clone().expect("made with the simulator"))
        };
        let mut aws_real = None;
        let mut azure_real = None;
        let (aws, aws_calls): (Arc<dyn VpnEndpoint<Aws>>, _) = match config.aws.backend {
            Backend::Sim => {
                let (cloud, faults) = simulated(&sim);
                let ep = Instrumented::new(faults.wrap(SimAws::new(cloud, AwsTarget::from_config(&config)), CloudName::Aws));
                let c = ep.counter();
                (Arc::new(ep), c)
            }
            Backend::Real => {
                let real = vpnbridge_aws::AwsEndpoint::connect(aws_settings(&config)).await.context("connecting to AWS")?;
                aws_real = Some(real.clone());
                let ep = Instrumented::new(real);
                let c = ep.counter();
                (Arc::new(ep), c)
            }
        };
        let (azure, azure_calls): (Arc<dyn VpnEndpoint<Azure>>, _) = match config.azure.backend {
            Backend::Sim => {
                let (cloud, faults) = simulated(&sim);
                let ep = Instrumented::new(faults.wrap(SimAzure::new(cloud, AzureTarget::from_config(&config)), CloudName::Azure));
                let c = ep.counter();
                (Arc::new(ep), c)
            }
            Backend::Real => {
                let settings = vpnbridge_azure::AzureSettings::from_config(&config.azure);
                let real = vpnbridge_azure::AzureEndpoint::new(settings).map_err(|e| Error::Other(e.into()))?;
                azure_real = Some(real.clone());
                let ep = Instrumented::new(real);
                let c = ep.counter();
                (Arc::new(ep), c)
            }
        };
        Ok(Self {
            config,
            warnings: loaded.warnings,
            owner,
            aws,
            azure,
            aws_calls,
            azure_calls,
            sim,
            state_dir: dir,
            aws_real,
            azure_real,
            read_only,
            tunnel_wait: options.tunnel_wait,
            _lock: lock,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What the config loaded with but should say differently (nothing was refused).
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    /// Which sides run on the simulator.
    pub fn simulated(&self) -> Simulated {
        Simulated { azure: self.config.azure.backend == Backend::Sim, aws: self.config.aws.backend == Backend::Sim }
    }

    /// Where the run lock and the simulated clouds live.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Calls made through both endpoints so far.
    pub fn calls(&self) -> Calls {
        Calls { azure: self.azure_calls.snapshot(), aws: self.aws_calls.snapshot() }
    }

    fn any_real(&self) -> bool {
        let s = self.simulated();
        !(s.azure && s.aws)
    }

    /// One side simulated and the other real: no tunnel can come up between them.
    fn mixed(&self) -> bool {
        let s = self.simulated();
        s.azure != s.aws
    }

    fn writable(&self, what: &str) -> Result<(), Error> {
        if self.read_only {
            return Err(Error::Other(anyhow::anyhow!("{what} changes the deployment, and it was opened with Access::ReadOnly")));
        }
        Ok(())
    }

    /// Both sides' state, observed concurrently.
    pub async fn observe(&self) -> Result<Observed, Error> {
        let settings = ExecSettings::default();
        Ok(vpnbridge_core::exec::observe(&*self.aws, &*self.azure, &self.owner, &settings).await.context("observing the clouds")?)
    }

    /// What [`apply`](Self::apply) would do, changing nothing.
    pub async fn plan(&self) -> Result<PlanReport, Error> {
        self.make_plan(PlanKind::Apply).await
    }

    /// What [`destroy`](Self::destroy) would do, changing nothing.
    pub async fn plan_destroy(&self) -> Result<PlanReport, Error> {
        self.make_plan(PlanKind::Destroy).await
    }

    async fn make_plan(&self, kind: PlanKind) -> Result<PlanReport, Error> {
        let observed = self.observe().await?;
        let plan = match kind {
            PlanKind::Apply => plan::plan_apply(&self.config, &observed).map_err(Error::Preflight)?,
            PlanKind::Destroy => plan::plan_destroy(&self.config, &observed).map_err(Error::Preflight)?,
        };
        let warnings = if kind == PlanKind::Apply { self.aws_preflight(&plan).await? } else { Vec::new() };
        Ok(PlanReport::new(plan, warnings))
    }

    /// On real AWS: quotas for what the plan creates (an error stops here, before any
    /// change) and whether a security group lets the ping of `verify` in (a warning).
    async fn aws_preflight(&self, plan: &Plan) -> Result<Vec<String>, Error> {
        let Some(aws) = &self.aws_real else { return Ok(Vec::new()) };
        let creates = |t: plan::ResourceType| {
            plan.steps.iter().filter(|s| s.cloud() == CloudName::Aws && s.action == plan::Action::Create && s.resource_type == t).count()
                as u32
        };
        let need = vpnbridge_aws::QuotaNeed {
            vpn_gateways: creates(plan::ResourceType::VpnGateway),
            customer_gateways: creates(plan::ResourceType::CustomerGateway),
            vpn_connections_per_vgw: u32::from(pairing::INSTANCES),
        };
        let azure: Vec<ipnet::IpNet> = self.config.azure.address_space.iter().map(|p| ipnet::IpNet::V4(*p)).collect();
        let checked = aws.preflight(&azure, need, vpnbridge_aws::Quotas::default()).await.context("AWS preflight")?;
        if checked.errors.is_empty() { Ok(checked.warnings) } else { Err(Error::Preflight(PlanError(checked.errors))) }
    }

    /// Builds the deployment, or converges it to the config; re-running changes nothing.
    pub async fn apply(&self, confirm: &dyn Confirm, progress: &Progress) -> Result<ApplyReport, Error> {
        self.apply_with(ApplyOptions::default(), confirm, progress).await
    }

    /// [`apply`](Self::apply) with options.
    pub async fn apply_with(&self, how: ApplyOptions, confirm: &dyn Confirm, progress: &Progress) -> Result<ApplyReport, Error> {
        self.writable("apply")?;
        let result = self.change(PlanKind::Apply, how, confirm, progress).await;
        self.save()?;
        result
    }

    /// Removes everything this deployment owns, nothing else.
    pub async fn destroy(&self, confirm: &dyn Confirm, progress: &Progress) -> Result<ApplyReport, Error> {
        self.writable("destroy")?;
        let result = self.change(PlanKind::Destroy, ApplyOptions::default(), confirm, progress).await;
        self.save()?;
        result
    }

    async fn change(&self, kind: PlanKind, how: ApplyOptions, confirm: &dyn Confirm, progress: &Progress) -> Result<ApplyReport, Error> {
        let wall = std::time::Instant::now();
        let watch = match (how.watch_traffic, probe::sim_probe(self.sim.as_ref(), &self.config), probe_addresses(&self.config)) {
            (false, ..) => None,
            (true, Some(probe), Some((vnet_host, vpc_host))) => Some((probe, vnet_host, vpc_host)),
            (true, ..) => {
                return Err(Error::Other(anyhow::anyhow!(
                    "--watch-traffic needs both clouds simulated (backend = \"sim\" on both sides): it pings inside the simulator"
                )));
            }
        };
        let PlanReport { plan, warnings, .. } = self.make_plan(kind).await?;
        let mut report = ApplyReport::new(kind, plan, self.simulated(), warnings);
        if report.plan.is_empty() {
            report.no_changes(self.calls(), wall.elapsed());
            return Ok(report);
        }
        progress.emit(&Event::Planned { plan: &report.plan, warnings: &report.warnings });
        confirm.confirm(&Question::Change { plan: &report.plan, real: self.any_real() }).map_err(Error::NotConfirmed)?;
        // With one side simulated and the other real no tunnel can come up: changes do
        // not wait for their tunnel to be up again.
        let settings = ExecSettings { wait_tunnels_up: !self.mixed(), ..ExecSettings::default() };
        let executor = Executor::new(self.aws.clone(), self.azure.clone(), self.owner.clone(), settings);
        let watch = watch.map(|(probe, vnet_host, vpc_host)| vpnbridge_sim::TrafficWatch::start(probe, vnet_host, vpc_host));
        let execution = run_reporting(&executor, &report.plan, progress).await;
        let traffic = match watch {
            Some(w) => Some(w.stop().await),
            None => None,
        };
        progress.emit(&Event::StepsDone);
        let tunnel_wait_started = tokio::time::Instant::now();
        let ok = execution.succeeded();
        let (joined, health) = if kind == PlanKind::Apply && ok && self.mixed() {
            progress.emit(&Event::NotWaitingForTunnels {
                reason: "one side is simulated and the other real: no tunnel can come up between them",
            });
            self.tunnel_health().await?
        } else if kind == PlanKind::Apply && ok {
            self.wait_for_tunnels(progress).await?
        } else {
            (Vec::new(), Vec::new())
        };
        // Time from the first step to the last check of the tunnels.
        let settled = execution.makespan + tunnel_wait_started.elapsed();
        let run = report::Run {
            modelled_seconds: execution.makespan.as_secs_f64(),
            tunnels_checked_at_seconds: settled.as_secs_f64(),
            execution,
            tunnels: joined,
            tunnel_health: health,
            traffic,
        };
        report.executed(run, self.calls(), wall.elapsed());
        Ok(report)
    }

    /// After a successful apply: waits (bounded) until every used tunnel is up at both
    /// ends, as both clouds report them.
    async fn wait_for_tunnels(&self, progress: &Progress) -> Result<(Vec<ObservedTunnel>, Vec<TunnelHealth>), Error> {
        /// How often apply looks at the tunnels while it waits for them.
        const TUNNEL_POLL: Duration = Duration::from_secs(10);
        let start = tokio::time::Instant::now();
        let mut said = false;
        loop {
            let (joined, health) = self.tunnel_health().await?;
            if health.iter().all(TunnelHealth::is_up) || start.elapsed() >= self.tunnel_wait {
                return Ok((joined, health));
            }
            if !said {
                progress.emit(&Event::WaitingForTunnels { limit: self.tunnel_wait });
                said = true;
            }
            tokio::time::sleep(TUNNEL_POLL).await;
        }
    }

    async fn tunnel_health(&self) -> Result<(Vec<ObservedTunnel>, Vec<TunnelHealth>), Error> {
        let observed = self.observe().await?;
        let joined = pairing::join(&self.owner, &self.config.layout(), &observed.azure, &observed.aws);
        let ends = self.tunnel_ends().await?;
        let health = pairing::health(&joined, &ends);
        Ok((joined, health))
    }

    async fn tunnel_ends(&self) -> Result<Vec<Box<dyn vpnbridge_core::endpoint::Tunnel>>, Error> {
        let settings = ExecSettings::default();
        let ends = vpnbridge_core::exec::tunnel_ends(&*self.aws, &*self.azure, &self.owner, &settings).await;
        Ok(ends.context("reading the tunnels' status")?)
    }

    /// What exists, in both clouds, and how the tunnels pair up.
    pub async fn status(&self) -> Result<StatusReport, Error> {
        let observed = self.observe().await?;
        let joined = pairing::join(&self.owner, &self.config.layout(), &observed.azure, &observed.aws);
        let ends = self.tunnel_ends().await?;
        let health = pairing::health(&joined, &ends);
        Ok(StatusReport::new(&self.config, self.simulated(), observed, joined, health, &ends))
    }

    /// Proves the VPN: every tunnel at both ends, IKE SAs, a ping each way where the
    /// data plane can be observed, and a diagnosis for whatever is wrong.
    pub async fn verify(&self) -> Result<VerifyReport, Error> {
        let probe = probe::probe(self.sim.as_ref(), &self.config, self.azure_real.as_ref()).await?;
        let report = verify::verify(&self.config, self.aws.as_ref(), self.azure.as_ref(), probe::data_plane(&self.config, &probe))
            .await
            .map_err(|e| match e {
                VerifyError::ProbePreflight(errors) => Error::Preflight(PlanError(errors)),
                e => Error::Other(anyhow::Error::new(e).context("verifying the deployment")),
            })?;
        Ok(VerifyReport::new(self.simulated(), report))
    }

    /// The failover drill: each tunnel (or only `tunnel`, 1-based) taken away in turn,
    /// traffic checked after dead peer detection, the tunnel put back and re-verified.
    pub async fn drill(&self, tunnel: Option<usize>, confirm: &dyn Confirm, progress: &Progress) -> Result<DrillReport, Error> {
        self.writable("drill")?;
        let result = self.drill_inner(tunnel, confirm, progress).await;
        self.save()?;
        result
    }

    async fn drill_inner(&self, tunnel: Option<usize>, confirm: &dyn Confirm, progress: &Progress) -> Result<DrillReport, Error> {
        drill_refusal(&self.config)?;
        let count = tunnel.map_or(self.config.tunnel_count(), |_| 1);
        confirm.confirm(&Question::Drill { tunnels: count, real: self.any_real() }).map_err(Error::NotConfirmed)?;
        let probe = probe::probe(self.sim.as_ref(), &self.config, self.azure_real.as_ref()).await?;
        // A VM starts its Run Command some seconds after the cloud accepted it: the
        // series outlast dead peer detection by a margin on real clouds.
        let settings = if self.any_real() {
            DrillSettings { series_margin: Duration::from_secs(15), ..DrillSettings::default() }
        } else {
            DrillSettings::default()
        };
        let on_event = |e: &DrillEvent| progress.emit(&Event::Drill(e));
        let report = drill::drill(
            &self.config,
            self.aws.clone(),
            self.azure.clone(),
            probe::data_plane(&self.config, &probe),
            tunnel,
            &settings,
            &on_event,
        )
        .await
        .map_err(|e| match e {
            DrillError::CannotReplan(e) => Error::Preflight(e),
            DrillError::Verify(VerifyError::ProbePreflight(errors)) => Error::Preflight(PlanError(errors)),
            DrillError::NoSuchTunnel(n, count) => Error::Usage(format!(
                "there is no used tunnel {n}: this deployment has {count}; pass --tunnel 1 to {count}, in the order `vpnbridge verify` lists them"
            )),
            e => Error::Other(anyhow::Error::new(e).context("running the drill")),
        })?;
        Ok(DrillReport::new(self.simulated(), report))
    }

    /// Persists the simulated clouds' clock after a call that made a mutating call (each
    /// such call already saved the world); a run that changed nothing writes nothing.
    fn save(&self) -> Result<(), Error> {
        if self.calls().mutations() == 0 {
            return Ok(());
        }
        if let Some(cloud) = &self.sim {
            cloud.save().with_context(|| format!("saving the simulated clouds to {}", self.state_dir.display()))?;
        }
        Ok(())
    }
}

/// Runs the plan, handing the executor's events to `progress` as they happen, on this
/// task (the executor wants a `'static` sink; the caller's callback is borrowed).
async fn run_reporting(executor: &Executor, plan: &Plan, progress: &Progress) -> vpnbridge_core::exec::ExecReport {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ExecEvent>();
    let run = executor.run(plan, move |e| {
        let _ = tx.send(e.clone());
    });
    tokio::pin!(run);
    let report = loop {
        tokio::select! {
            biased;
            Some(e) = rx.recv() => progress.emit(&Event::Step(&e)),
            report = &mut run => break report,
        }
    };
    while let Ok(e) = rx.try_recv() {
        progress.emit(&Event::Step(&e));
    }
    report
}

pub(crate) fn aws_settings(config: &Config) -> vpnbridge_aws::AwsSettings {
    vpnbridge_aws::AwsSettings {
        region: config.aws.region.clone(),
        vpc_id: config.aws.vpc_id.clone(),
        endpoint: config.aws.endpoint.clone().filter(|e| !e.is_empty()),
    }
}

/// The simulated clouds, with the user's VNet and VPC (and the test VMs of `[probe]`
/// when both sides are simulated) as they are before vpnbridge first runs there.
fn open_sim(config: &Config, dir: &Path, read_only: bool, any_real: bool, options: &Options) -> Result<SimCloud, Error> {
    // When the other side is real, the clock is real too: the simulated side then
    // answers at once by default, instead of taking its 45 minutes in wall time.
    let latency = options.sim_latency.clone().unwrap_or_else(|| if any_real { LatencyTable::instant() } else { LatencyTable::default() });
    let cloud = if read_only { SimCloud::open_read_only(dir, latency) } else { SimCloud::open_with(dir, latency) }
        .with_context(|| format!("opening the simulated clouds in {}", dir.display()))?;
    cloud
        .ensure_prerequisites(&VnetSpec::from_config(config), &VpcSpec::from_config(config))
        .context("creating the simulated VNet and VPC")?;
    if !any_real && let Some(hosts) = vpnbridge_sim::ProbeHostSpec::from_config(config) {
        cloud.ensure_probe_hosts(&hosts).context("creating the simulated test VMs of [probe]")?;
    }
    Ok(cloud)
}

/// `.vpnbridge/` next to the config file.
pub fn default_state_dir(config: &Path) -> PathBuf {
    let parent = config.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    parent.join(".vpnbridge")
}
