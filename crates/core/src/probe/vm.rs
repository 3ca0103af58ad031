//! [`VmProbe`]: the real clouds' [`Probe`], on the users' own test VMs. Each cloud's
//! adapter only translates: it reads its VM ([`TestVm::inspect`]), starts a script on
//! it and polls the run ([`TestVm::start`], [`TestVm::poll`]). What to run, how long to
//! wait and how to read the output are decided here, once for both clouds.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ipnet::Ipv4Net;
use tokio::sync::Mutex;

use super::output::{self, Os};
use super::{PingResult, PingSeries, Probe, ProbeAddresses, ProbeError, ProbePreflight, SeriesHandle, SeriesSpec};

/// One test VM, as a cloud's adapter sees it.
#[async_trait]
pub trait TestVm: Send + Sync {
    /// The VM in the user's words, for messages (`Azure VM vm-test`, `EC2 instance i-…`).
    fn describe(&self) -> String;

    /// Reads the VM: its private IP, OS and state, and checks (read-only) that it can
    /// run a command and that its firewall lets ICMP in from `icmp_from`. Problems and
    /// warnings name the resource and the fix.
    async fn inspect(&self, icmp_from: &[Ipv4Net]) -> Result<VmFacts, ProbeError>;

    /// Starts `script` on the VM with the cloud's run-command for `os`; returns the
    /// run's id once the cloud accepted it. Never waits for the script.
    async fn start(&self, os: Os, script: &str) -> Result<String, ProbeError>;

    /// Where run `id` stands.
    async fn poll(&self, id: &str) -> Result<RunState, ProbeError>;
}

/// What [`TestVm::inspect`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmFacts {
    /// Unspecified (`0.0.0.0`) when an error says the VM cannot be probed at all.
    pub private_ip: Ipv4Addr,
    pub os: Os,
    /// Findings that stop a probe (not running, not managed, ICMP refused).
    pub errors: Vec<String>,
    /// Findings that do not (a firewall that could not be read).
    pub warnings: Vec<String>,
}

/// A run of a script on a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    Running,
    /// The script ended; its standard output and error.
    Done {
        stdout: String,
        stderr: String,
    },
    /// The cloud says the run failed (or timed out, or was cancelled), in its words.
    Failed(String),
}

/// How long [`VmProbe`] waits.
#[derive(Debug, Clone, Copy)]
pub struct VmProbeSettings {
    /// Between polls of a run.
    pub poll: Duration,
    /// Longest a run may take beyond its own duration (Run Command needs tens of
    /// seconds to start a script on Azure).
    pub run_timeout: Duration,
}

impl Default for VmProbeSettings {
    fn default() -> Self {
        Self { poll: Duration::from_secs(3), run_timeout: Duration::from_secs(300) }
    }
}

/// The probe on two test VMs: one in the VNet, one in the VPC.
pub struct VmProbe {
    azure: Arc<dyn TestVm>,
    aws: Arc<dyn TestVm>,
    /// The VNet's prefixes (ICMP must come in from them on the AWS side) and the VPC's.
    vnet: Vec<Ipv4Net>,
    vpc: Vec<Ipv4Net>,
    settings: VmProbeSettings,
    facts: Mutex<Option<(VmFacts, VmFacts)>>,
}

impl std::fmt::Debug for VmProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmProbe").field("azure", &self.azure.describe()).field("aws", &self.aws.describe()).finish_non_exhaustive()
    }
}

impl VmProbe {
    pub fn new(azure: Arc<dyn TestVm>, aws: Arc<dyn TestVm>, vnet: Vec<Ipv4Net>, vpc: Vec<Ipv4Net>, settings: VmProbeSettings) -> Self {
        Self { azure, aws, vnet, vpc, settings, facts: Mutex::new(None) }
    }

    async fn facts(&self) -> Result<(VmFacts, VmFacts), ProbeError> {
        let mut cached = self.facts.lock().await;
        if let Some(f) = cached.as_ref() {
            return Ok(f.clone());
        }
        let (a, b) = tokio::try_join!(self.azure.inspect(&self.vpc), self.aws.inspect(&self.vnet))?;
        *cached = Some((a.clone(), b.clone()));
        Ok((a, b))
    }

    /// The VM whose private IP is `from`, and its OS.
    async fn vm_at(&self, from: Ipv4Addr) -> Result<(&dyn TestVm, Os), ProbeError> {
        let (a, b) = self.facts().await?;
        if a.private_ip == from {
            Ok((self.azure.as_ref(), a.os))
        } else if b.private_ip == from {
            Ok((self.aws.as_ref(), b.os))
        } else {
            Err(ProbeError(format!("no probe VM has the address {from}")))
        }
    }

    /// Polls run `id` on `vm` until it ends, at most `limit`.
    async fn wait(&self, vm: &dyn TestVm, id: &str, limit: Duration) -> Result<String, ProbeError> {
        let started = tokio::time::Instant::now();
        loop {
            match vm.poll(id).await? {
                RunState::Done { stdout, .. } => return Ok(stdout),
                RunState::Failed(why) => return Err(ProbeError(format!("the command on {} failed: {why}", vm.describe()))),
                RunState::Running => {}
            }
            if started.elapsed() >= limit {
                return Err(ProbeError(format!(
                    "the command on {} did not finish within {} s (is its agent running?)",
                    vm.describe(),
                    limit.as_secs()
                )));
            }
            tokio::time::sleep(self.settings.poll).await;
        }
    }
}

#[async_trait]
impl Probe for VmProbe {
    async fn addresses(&self) -> Result<ProbeAddresses, ProbeError> {
        let (a, b) = self.facts().await?;
        Ok(ProbeAddresses { azure: a.private_ip, aws: b.private_ip })
    }

    async fn preflight(&self) -> Result<ProbePreflight, ProbeError> {
        let (a, b) = self.facts().await?;
        Ok(ProbePreflight { errors: [a.errors, b.errors].concat(), warnings: [a.warnings, b.warnings].concat() })
    }

    async fn ping(&self, from: Ipv4Addr, to: Ipv4Addr) -> Result<PingResult, ProbeError> {
        let (vm, os) = self.vm_at(from).await?;
        let id = vm.start(os, &output::ping_script(os, to)).await?;
        let stdout = self.wait(vm, &id, self.settings.run_timeout).await?;
        let stats = output::parse_ping(&stdout, to).map_err(|e| ProbeError(format!("the ping on {}: {e}", vm.describe())))?;
        let replied = stats.received > 0;
        let stopped = (!replied).then(|| {
            format!("{} echoes sent from {}, none came back (the ICMP requests or replies are lost on the way)", stats.sent, vm.describe())
        });
        Ok(PingResult { from, to, replied, path: vec![format!("{from} ({}, ping run there)", vm.describe())], stopped, stats: Some(stats) })
    }

    async fn start_series(&self, from: Ipv4Addr, to: Ipv4Addr, spec: SeriesSpec) -> Result<SeriesHandle, ProbeError> {
        let (vm, os) = self.vm_at(from).await?;
        let interval_ms = u64::try_from(spec.interval.as_millis()).unwrap_or(u64::MAX);
        let id = vm.start(os, &output::series_script(os, to, spec.samples, interval_ms)).await?;
        Ok(SeriesHandle { from, to, spec, id })
    }

    async fn collect_series(&self, handle: SeriesHandle) -> Result<PingSeries, ProbeError> {
        let (vm, _) = self.vm_at(handle.from).await?;
        // Each lost echo may take up to a second more than the interval.
        let limit = handle.spec.duration() * 2 + self.settings.run_timeout;
        let stdout = self.wait(vm, &handle.id, limit).await?;
        let samples = output::parse_series(&stdout).map_err(|e| ProbeError(format!("the series on {}: {e}", vm.describe())))?;
        Ok(PingSeries { from: handle.from, to: handle.to, samples })
    }
}
