//! A command's connection to the two clouds: the validated config, one endpoint per
//! side (simulated or real), call counters, and the simulator's world when one side
//! is simulated.
//!
//! Read-only commands ([`crate::args::READ_ONLY_COMMANDS`]) write nothing: the run lock
//! is taken shared and only if it exists, the simulated world is opened read-only (the
//! VNet and VPC it seeds stay in memory), and it is saved only after a mutating call.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use vpnbridge_core::config::{self, ConfigWarning};
use vpnbridge_core::config::{Backend, Config};
use vpnbridge_core::endpoint::{Aws, Azure, CallCount, CallCounter, CloudName, Instrumented, VpnEndpoint};
use vpnbridge_core::model::Owner;
use vpnbridge_core::plan::Observed;
use vpnbridge_sim::{AwsTarget, AzureTarget, FaultInjector, FaultPlan, LatencyTable, SimAws, SimAzure, SimCloud, VnetSpec, VpcSpec};

use crate::Failure;
use crate::lock::RunLock;

pub struct Session {
    pub config: Config,
    pub warnings: Vec<ConfigWarning>,
    pub owner: Owner,
    pub aws: Arc<dyn VpnEndpoint<Aws>>,
    pub azure: Arc<dyn VpnEndpoint<Azure>>,
    aws_calls: Arc<CallCounter>,
    azure_calls: Arc<CallCounter>,
    /// The simulated clouds, when a side is simulated.
    pub sim: Option<(SimCloud, PathBuf)>,
    /// The real AWS adapter, for its own preflight checks.
    pub aws_real: Option<vpnbridge_aws::AwsEndpoint>,
    /// The real Azure adapter, whose ARM client the probe's Run Command goes through.
    pub azure_real: Option<vpnbridge_azure::AzureEndpoint>,
    /// One run at a time per deployment directory.
    _lock: Option<RunLock>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("owner", &self.owner).finish_non_exhaustive()
    }
}

/// Calls made through both endpoints so far.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Calls {
    pub azure: CallCount,
    pub aws: CallCount,
}

impl Calls {
    pub fn mutations(&self) -> u64 {
        self.azure.mutations + self.aws.mutations
    }
}

/// Loads and validates the config. Nothing is called before this succeeds.
pub fn load_config(path: &Path) -> Result<config::Loaded, Failure> {
    config::load(path).map_err(Failure::Config)
}

impl Session {
    /// Opens the endpoints the config names. `sim_dir` overrides where the simulator
    /// keeps its clouds.
    pub async fn open(loaded: config::Loaded, global: &crate::args::Global, command: &str) -> Result<Self, Failure> {
        let sim_dir = global.sim_dir.as_deref();
        let read_only = crate::args::READ_ONLY_COMMANDS.contains(&command);
        let config = loaded.config;
        let owner = Owner::new(&config.name);
        // One run at a time per deployment directory, whatever the backends: on the
        // simulator it also guards the world file.
        let dir = sim_dir.map(Path::to_path_buf).unwrap_or_else(|| default_sim_dir(&config.source));
        let lock_wait = std::time::Duration::from_secs(global.lock_wait);
        let lock = if read_only {
            RunLock::share(&dir, lock_wait)?.map_err(Failure::Locked)?
        } else {
            Some(RunLock::acquire(&dir, command, lock_wait)?.map_err(Failure::Locked)?)
        };
        // The simulator, opened once for the first simulated side (so a simulated
        // side always has it: there is no side without its cloud).
        let mut sim: Option<(SimCloud, PathBuf)> = None;
        let open_sim = |sim: &mut Option<(SimCloud, PathBuf)>| -> Result<SimCloud, Failure> {
            if let Some((cloud, _)) = sim {
                return Ok(cloud.clone());
            }
            let latency =
                latency_table(config.azure.backend == Backend::Real || config.aws.backend == Backend::Real, global.sim_latency.as_deref())?;
            let cloud = if read_only { SimCloud::open_read_only(&dir, latency) } else { SimCloud::open_with(&dir, latency) }
                .with_context(|| format!("opening the simulated clouds in {}", dir.display()))
                .map_err(Failure::Other)?;
            cloud
                .ensure_prerequisites(&VnetSpec::from_config(&config), &VpcSpec::from_config(&config))
                .context("creating the simulated VNet and VPC")
                .map_err(Failure::Other)?;
            if config.azure.backend == Backend::Sim
                && config.aws.backend == Backend::Sim
                && let Some(hosts) = vpnbridge_sim::ProbeHostSpec::from_config(&config)
            {
                cloud.ensure_probe_hosts(&hosts).context("creating the simulated test VMs of [probe]").map_err(Failure::Other)?;
            }
            *sim = Some((cloud.clone(), dir.clone()));
            Ok(cloud)
        };
        let mut aws_real = None;
        let mut azure_real = None;
        let (aws, aws_calls) = match config.aws.backend {
            Backend::Sim => {
                let cloud = open_sim(&mut sim)?;
                let cloud = &cloud;
                let target = AwsTarget::from_config(&config);
                let ep =
                    Instrumented::new(faults(cloud, global.sim_faults.as_ref()).wrap(SimAws::new(cloud.clone(), target), CloudName::Aws));
                let c = ep.counter();
                (Arc::new(ep) as Arc<dyn VpnEndpoint<Aws>>, c)
            }
            Backend::Real => {
                let settings = vpnbridge_aws::AwsSettings {
                    region: config.aws.region.clone(),
                    vpc_id: config.aws.vpc_id.clone(),
                    endpoint: config.aws.endpoint.clone().filter(|e| !e.is_empty()),
                };
                let real = vpnbridge_aws::AwsEndpoint::connect(settings).await.context("connecting to AWS").map_err(Failure::Other)?;
                aws_real = Some(real.clone());
                let ep = Instrumented::new(real);
                let c = ep.counter();
                (Arc::new(ep) as Arc<dyn VpnEndpoint<Aws>>, c)
            }
        };
        let (azure, azure_calls) = match config.azure.backend {
            Backend::Sim => {
                let cloud = open_sim(&mut sim)?;
                let cloud = &cloud;
                let target = AzureTarget::from_config(&config);
                let ep = Instrumented::new(
                    faults(cloud, global.sim_faults.as_ref()).wrap(SimAzure::new(cloud.clone(), target), CloudName::Azure),
                );
                let c = ep.counter();
                (Arc::new(ep) as Arc<dyn VpnEndpoint<Azure>>, c)
            }
            Backend::Real => {
                let settings = vpnbridge_azure::AzureSettings::from_config(&config.azure);
                let real = vpnbridge_azure::AzureEndpoint::new(settings).map_err(|e| Failure::Other(e.into()))?;
                azure_real = Some(real.clone());
                let ep = Instrumented::new(real);
                let c = ep.counter();
                (Arc::new(ep) as Arc<dyn VpnEndpoint<Azure>>, c)
            }
        };
        Ok(Self { config, warnings: loaded.warnings, owner, aws, azure, aws_calls, azure_calls, sim, aws_real, azure_real, _lock: lock })
    }

    pub fn simulated(&self) -> (bool, bool) {
        (self.config.azure.backend == Backend::Sim, self.config.aws.backend == Backend::Sim)
    }

    pub fn any_real(&self) -> bool {
        let (a, b) = self.simulated();
        !(a && b)
    }

    /// One side simulated and the other real: no tunnel can come up between them.
    pub fn mixed(&self) -> bool {
        let (a, b) = self.simulated();
        a != b
    }

    pub fn calls(&self) -> Calls {
        Calls { azure: self.azure_calls.snapshot(), aws: self.aws_calls.snapshot() }
    }

    /// Both sides' state, observed concurrently.
    pub async fn observe(&self) -> anyhow::Result<Observed> {
        let settings = vpnbridge_core::exec::ExecSettings::default();
        vpnbridge_core::exec::observe(&*self.aws, &*self.azure, &self.owner, &settings).await.context("observing the clouds")
    }

    /// Persists the simulated clouds' clock after a run that made a mutating call (each
    /// such call already saved the world); a run that changed nothing writes nothing.
    pub fn save(&self) -> anyhow::Result<()> {
        if self.calls().mutations() == 0 {
            return Ok(());
        }
        if let Some((cloud, dir)) = &self.sim {
            cloud.save().with_context(|| format!("saving the simulated clouds to {}", dir.display()))?;
        }
        Ok(())
    }
}

/// The simulator's fault injection, from `--sim-faults` / `VPNBRIDGE_SIM_FAULTS` (for
/// demos: see the README; clap has already validated it). One injector per world,
/// shared by both clouds. A simulated crash ends the process on the spot, as a real
/// one would; the next run finishes the job.
fn faults(cloud: &SimCloud, plan: Option<&FaultPlan>) -> FaultInjector {
    static INJECTOR: std::sync::OnceLock<FaultInjector> = std::sync::OnceLock::new();
    if let Some(f) = INJECTOR.get() {
        return f.clone();
    }
    let injector = FaultInjector::new(cloud, plan.cloned().unwrap_or_else(FaultPlan::none));
    injector.on_crash(|call| {
        eprintln!("\nSIMULATED CRASH right after call {call}: this process stops here. Run the same command again to finish the job.");
        std::process::exit(crate::exit::SIMULATED_CRASH.into());
    });
    INJECTOR.get_or_init(|| injector).clone()
}

/// The simulated clouds' latencies: `--sim-latency` / `VPNBRIDGE_SIM_LATENCY` names a JSON file of
/// milliseconds per operation (any subset of the keys of `LatencyTable`, e.g.
/// `{"azure_vpn_gateway": 1800000}`); otherwise the default table on the virtual
/// clock, or no latency at all on the real one.
/// When the other side is real, the clock is real too: the simulated side then answers
/// at once by default, instead of taking its 45 minutes for a gateway in wall time.
fn latency_table(real_clock: bool, file: Option<&Path>) -> Result<LatencyTable, Failure> {
    let Some(path) = file else {
        return Ok(if real_clock { LatencyTable::instant() } else { LatencyTable::default() });
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the --sim-latency file {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("the --sim-latency file {}: milliseconds per latency-table key expected", path.display()))
        .map_err(Failure::Other)
}

/// `.vpnbridge/` next to the config file.
pub fn default_sim_dir(config: &Path) -> PathBuf {
    let parent = config.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    parent.join(".vpnbridge")
}
