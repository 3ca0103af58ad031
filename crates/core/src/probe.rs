//! The data plane's door: a [`Probe`] sends pings from an address on one side of the
//! VPN to an address on the other and says whether the replies came back, and if not,
//! where the packets stopped.
//!
//! The simulator implements it for its world; on the real clouds it runs `ping` on the
//! users' own test VMs (`[probe]`: Azure VM Run Command, AWS Systems Manager Run
//! Command). Without a probe the data plane is *not observable*: `verify` and `drill`
//! then report what the control plane says and nothing about traffic.
//!
//! A drill measures an outage with a *series*: one timestamped ping that runs on the VM
//! across the whole outage ([`Probe::start_series`] before the Connection is deleted,
//! [`Probe::collect_series`] after), never one remote call per echo.

pub mod output;
pub mod vm;

use std::net::Ipv4Addr;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::config::Config;

/// Pings across the VPN, from the VMs (or simulated hosts) on each side.
#[async_trait]
pub trait Probe: Send + Sync {
    /// The two hosts to ping between: the Azure side's and the AWS side's (on real
    /// clouds the VMs' private IPs, read from the clouds).
    async fn addresses(&self) -> Result<ProbeAddresses, ProbeError>;

    /// Checks the probe hosts before any ping (they exist and run, they can run a
    /// command, their firewalls let ICMP in from the other side). Changes nothing.
    async fn preflight(&self) -> Result<ProbePreflight, ProbeError>;

    /// Sends a few echoes from `from` to `to` and reads the replies.
    async fn ping(&self, from: Ipv4Addr, to: Ipv4Addr) -> Result<PingResult, ProbeError>;

    /// Starts a timestamped ping from `from` to `to` that runs on its own, on the host,
    /// for `spec.samples` echoes one `spec.interval` apart. Returns once it is started.
    async fn start_series(&self, from: Ipv4Addr, to: Ipv4Addr, spec: SeriesSpec) -> Result<SeriesHandle, ProbeError>;

    /// Waits for a series to end and reads every sample.
    async fn collect_series(&self, handle: SeriesHandle) -> Result<PingSeries, ProbeError>;
}

/// The hosts `verify` and `drill` ping between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ProbeAddresses {
    /// The host in the VNet.
    pub azure: Ipv4Addr,
    /// The host in the VPC.
    pub aws: Ipv4Addr,
}

/// What the probe's preflight found: errors stop `verify` and `drill` before any ping
/// (exit 4); warnings are shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ProbePreflight {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// One ping (a few ICMP echoes and their replies) across the VPN.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PingResult {
    pub from: Ipv4Addr,
    pub to: Ipv4Addr,
    /// At least one reply came back.
    pub replied: bool,
    /// Hops taken, in order, in the clouds' words (or where the ping ran).
    pub path: Vec<String>,
    /// Where and why the requests or the replies stopped (`None` when it replied).
    pub stopped: Option<String>,
    /// Echoes sent and received and their round-trip times, as the ping printed them
    /// (`None` when the probe counts no echoes, as the simulator's single trace).
    pub stats: Option<output::PingStats>,
}

/// The probe itself could not run (not: the ping failed). Its own outcome: never
/// reported as lost connectivity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the probe could not run: {0}")]
pub struct ProbeError(pub String);

/// How long a series runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct SeriesSpec {
    pub samples: u32,
    pub interval: Duration,
}

impl SeriesSpec {
    /// One sample per `interval` for at least `span`.
    pub fn covering(span: Duration, interval: Duration) -> Self {
        let interval = interval.max(Duration::from_millis(100));
        let samples = span.as_secs_f64() / interval.as_secs_f64();
        Self { samples: (samples.ceil() as u32).max(1), interval }
    }

    pub fn duration(&self) -> Duration {
        self.interval * self.samples
    }
}

/// A started series: what it pings and the probe's own reference to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesHandle {
    pub from: Ipv4Addr,
    pub to: Ipv4Addr,
    pub spec: SeriesSpec,
    /// The probe's id for it (a command id, a task key).
    pub id: String,
}

/// One echo of a series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Sample {
    /// Seconds, on the host's clock (Unix time on a VM; the virtual clock on the
    /// simulator): only differences matter.
    pub at: f64,
    pub replied: bool,
}

/// A series as collected.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PingSeries {
    pub from: Ipv4Addr,
    pub to: Ipv4Addr,
    pub samples: Vec<Sample>,
}

impl PingSeries {
    /// Seconds without replies: each lost sample counts until the next sample was
    /// sent (the last one for `interval`).
    pub fn lost_seconds(&self, interval: Duration) -> f64 {
        let mut lost = 0.0;
        for (i, s) in self.samples.iter().enumerate() {
            if s.replied {
                continue;
            }
            lost += match self.samples.get(i + 1) {
                Some(next) if next.at > s.at => next.at - s.at,
                _ => interval.as_secs_f64(),
            };
        }
        lost
    }

    /// Whether the last sample got its reply (traffic flowed at the end).
    pub fn ends_replied(&self) -> bool {
        self.samples.last().is_some_and(|s| s.replied)
    }
}

/// The addresses the simulator pings between when no `[probe]` names hosts: the first
/// usable host (network + 4; both clouds reserve the first four) of the first declared
/// VNet prefix and of the first declared VPC CIDR.
pub fn probe_addresses(config: &Config) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let host = |n: &ipnet::Ipv4Net| Ipv4Addr::from(u32::from(n.network()).saturating_add(4));
    Some((host(config.azure.address_space.first()?), host(config.aws.cidrs.first()?)))
}

/// A ping each way between the VNet and the VPC.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PingPair {
    pub azure_to_aws: PingResult,
    pub aws_to_azure: PingResult,
}

impl PingPair {
    pub fn both_ways(&self) -> bool {
        self.azure_to_aws.replied && self.aws_to_azure.replied
    }
}

/// Pings from the VNet's host to the VPC's and back, and from the VPC's to the VNet's.
pub async fn ping_both_ways(probe: &dyn Probe) -> Result<PingPair, ProbeError> {
    let at = probe.addresses().await?;
    let azure_to_aws = probe.ping(at.azure, at.aws).await?;
    let aws_to_azure = probe.ping(at.aws, at.azure).await?;
    Ok(PingPair { azure_to_aws, aws_to_azure })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn probes_ping_the_first_usable_host_of_each_side() {
        let config = crate::config::parse(crate::config::EXAMPLE, Path::new("x.toml"), &|_| None).unwrap().config;
        let (vnet, vpc) = probe_addresses(&config).unwrap();
        assert_eq!((vnet.to_string(), vpc.to_string()), ("10.1.0.4".to_owned(), "10.2.0.4".to_owned()));
    }

    #[test]
    fn a_series_counts_the_time_without_replies() {
        let s = |at: f64, replied: bool| Sample { at, replied };
        let series = PingSeries {
            from: Ipv4Addr::new(10, 1, 0, 4),
            to: Ipv4Addr::new(10, 2, 0, 4),
            samples: vec![s(100.0, true), s(101.0, false), s(102.5, false), s(104.0, true), s(105.0, false)],
        };
        assert_eq!(series.lost_seconds(Duration::from_secs(1)), 1.5 + 1.5 + 1.0);
        assert!(!series.ends_replied());
        assert_eq!(SeriesSpec::covering(Duration::from_secs(50), Duration::from_secs(1)).samples, 50);
    }
}
