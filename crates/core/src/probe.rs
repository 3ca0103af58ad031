//! The data plane's door: a [`Probe`] sends a ping from an address on one side of the
//! VPN to an address on the other and says whether the reply came back, and if not,
//! where the packet stopped.
//!
//! The simulator implements it for its world; real clouds need test VMs (a later
//! issue). Without a probe the data plane is *not observable*: `verify` and `drill`
//! then report what the control plane says and nothing about traffic.

use std::net::Ipv4Addr;

use async_trait::async_trait;
use serde::Serialize;

use crate::config::Config;

/// One ping (ICMP echo and its reply) across the VPN.
#[async_trait]
pub trait Probe: Send + Sync {
    /// Sends an echo from `from` to `to` and waits for the reply.
    async fn ping(&self, from: Ipv4Addr, to: Ipv4Addr) -> Result<PingResult, ProbeError>;
}

/// What one ping did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PingResult {
    pub from: Ipv4Addr,
    pub to: Ipv4Addr,
    /// The reply came back.
    pub replied: bool,
    /// Hops taken, in order, in the clouds' words.
    pub path: Vec<String>,
    /// Where and why the request or the reply stopped (`None` when it replied).
    pub stopped: Option<String>,
}

/// The probe itself could not run (not: the ping failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("probe: {0}")]
pub struct ProbeError(pub String);

/// The addresses `verify` and `drill` ping between: the first usable host (network + 4;
/// both clouds reserve the first four) of the first declared VNet prefix and of the
/// first declared VPC CIDR.
pub fn probe_addresses(config: &Config) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let host = |n: &ipnet::Ipv4Net| Ipv4Addr::from(u32::from(n.network()).saturating_add(4));
    Some((host(config.azure.address_space.first()?), host(config.aws.cidrs.first()?)))
}

/// A ping each way between the VNet and the VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PingPair {
    pub azure_to_aws: PingResult,
    pub aws_to_azure: PingResult,
}

impl PingPair {
    pub fn both_ways(&self) -> bool {
        self.azure_to_aws.replied && self.aws_to_azure.replied
    }
}

/// Pings from the VNet to the VPC and back, and from the VPC to the VNet and back.
pub async fn ping_both_ways(probe: &dyn Probe, config: &Config) -> Result<PingPair, ProbeError> {
    let (vnet_host, vpc_host) = probe_addresses(config).ok_or_else(|| ProbeError("no address space declared".into()))?;
    let azure_to_aws = probe.ping(vnet_host, vpc_host).await?;
    let aws_to_azure = probe.ping(vpc_host, vnet_host).await?;
    Ok(PingPair { azure_to_aws, aws_to_azure })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn probes_ping_the_first_usable_host_of_each_side() {
        let config = crate::validate::parse(crate::validate::EXAMPLE, Path::new("x.toml"), &|_| None).unwrap().config;
        let (vnet, vpc) = probe_addresses(&config).unwrap();
        assert_eq!((vnet.to_string(), vpc.to_string()), ("10.1.0.4".to_owned(), "10.2.0.4".to_owned()));
    }
}
