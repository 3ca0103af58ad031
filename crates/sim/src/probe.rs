//! The simulator's data plane from outside: [`SimProbe`] (the core [`Probe`] on the
//! simulated world) and the out-of-band changes the `verify` scenarios break things
//! with, one at a time (someone editing a key in a console, deleting a route, an AWS
//! maintenance window…). None of them is a call of ours: they are not counted.

use std::net::Ipv4Addr;
use std::time::Duration;

use async_trait::async_trait;
use ipnet::{IpNet, Ipv4Net};
use vpnbridge_core::model::ProvisioningState;
use vpnbridge_core::probe::{PingResult, Probe, ProbeError};
use vpnbridge_core::secret::Psk;

use crate::cloud::{SimCloud, SimError};
use crate::latency::ms;
use crate::world::{Phase, SecurityGroup, SgRule, World};
use crate::{AwsTarget, AzureTarget};

/// Pings between the target VNet and the target VPC of the simulated world.
#[derive(Debug, Clone)]
pub struct SimProbe {
    cloud: SimCloud,
    vnet_id: String,
    vpc_id: String,
}

impl SimProbe {
    pub fn new(cloud: SimCloud, azure: &AzureTarget, aws: &AwsTarget) -> Self {
        Self { cloud, vnet_id: azure.id("virtualNetworks", &azure.vnet), vpc_id: aws.vpc_id.clone() }
    }
}

#[async_trait]
impl Probe for SimProbe {
    async fn ping(&self, from: Ipv4Addr, to: Ipv4Addr) -> Result<PingResult, ProbeError> {
        let trace = self.cloud.lock().ping(&self.vnet_id, &self.vpc_id, from, to).map_err(ProbeError)?;
        Ok(PingResult { from, to, replied: trace.replied, path: trace.path, stopped: trace.stopped })
    }
}

/// Gives VPC `vpc_id` a security group allowing ICMP from `icmp_from` if it has none
/// (the simulated VPC prerequisite; worlds saved before security groups get one too).
pub(crate) fn seed_security_group(w: &mut World, vpc_id: &str, icmp_from: &[Ipv4Net]) {
    if !w.aws.vpcs.contains_key(vpc_id) || w.aws.security_groups.values().any(|g| g.vpc_id == vpc_id) {
        return;
    }
    let id = w.ec2_id("sg");
    let ingress = icmp_from.iter().map(|c| SgRule { protocol: "icmp".to_owned(), cidr: *c }).collect();
    w.aws.security_groups.insert(id.clone(), SecurityGroup { id, vpc_id: vpc_id.to_owned(), name: "default".to_owned(), ingress });
}

fn seed(message: String) -> SimError {
    SimError::Seed(message)
}

/// Out-of-band changes, for the `verify` and `drill` scenarios.
impl SimCloud {
    fn change<R>(&self, f: impl FnOnce(&mut World) -> Result<R, String>) -> Result<R, SimError> {
        let mut w = self.lock();
        let r = f(&mut w).map_err(seed)?;
        self.save_locked(&w)?;
        Ok(r)
    }

    /// Sets an Azure Connection's shared key in place (by ARM id), as someone in the
    /// portal would: the Azure side of its tunnel changes now.
    pub fn set_connection_shared_key(&self, connection_id: &str, key: &Psk) -> Result<(), SimError> {
        self.change(|w| {
            let now = w.now_ms;
            let c = w.azure.connections.get_mut(connection_id).ok_or_else(|| format!("no connection {connection_id}"))?;
            c.shared_key = key.clone();
            c.phase = Phase::stable(ProvisioningState::Succeeded, now);
            Ok(())
        })
    }

    /// Sets the pre-shared key of the AWS tunnel with outside IP `ip`.
    pub fn set_aws_tunnel_psk(&self, ip: Ipv4Addr, key: &Psk) -> Result<(), SimError> {
        self.change(|w| {
            let now = w.now_ms;
            let t = w
                .aws
                .vpn_connections
                .values_mut()
                .find_map(|v| v.tunnels.iter_mut().find(|t| t.outside_ip == ip))
                .ok_or_else(|| format!("no AWS tunnel {ip}"))?;
            t.psk = key.clone();
            t.since = now;
            Ok(())
        })
    }

    /// Re-points a LocalNetworkGateway (by ARM id) at another IP.
    pub fn set_local_network_gateway_ip(&self, lng_id: &str, ip: Ipv4Addr) -> Result<(), SimError> {
        self.change(|w| {
            let now = w.now_ms;
            let l = w.azure.local_network_gateways.get_mut(lng_id).ok_or_else(|| format!("no local network gateway {lng_id}"))?;
            l.gateway_ip = ip;
            l.phase = Phase::stable(ProvisioningState::Succeeded, now);
            Ok(())
        })
    }

    /// Deletes the route to `destination` from every route table of VPC `vpc_id`.
    pub fn remove_vpc_route(&self, vpc_id: &str, destination: IpNet) -> Result<(), SimError> {
        self.change(|w| {
            let mut found = false;
            for t in w.aws.route_tables.values_mut().filter(|t| t.vpc_id == vpc_id) {
                let before = t.routes.len();
                t.routes.retain(|r| r.destination != destination);
                found |= t.routes.len() != before;
            }
            if found { Ok(()) } else { Err(format!("no route to {destination} in VPC {vpc_id}")) }
        })
    }

    /// Deletes a VPN connection's static route at once.
    pub fn remove_vpn_connection_route(&self, vpn_id: &str, destination: IpNet) -> Result<(), SimError> {
        self.change(|w| {
            let v = w.aws.vpn_connections.get_mut(vpn_id).ok_or_else(|| format!("no VPN connection {vpn_id}"))?;
            let before = v.routes.len();
            v.routes.retain(|r| r.destination != destination);
            if v.routes.len() != before { Ok(()) } else { Err(format!("VPN connection {vpn_id} has no route to {destination}")) }
        })
    }

    /// Removes every inbound ICMP (and all-traffic) rule of VPC `vpc_id`'s security groups.
    pub fn revoke_icmp_ingress(&self, vpc_id: &str) -> Result<(), SimError> {
        self.change(|w| {
            let mut found = false;
            for g in w.aws.security_groups.values_mut().filter(|g| g.vpc_id == vpc_id) {
                g.ingress.retain(|r| r.protocol != "icmp" && r.protocol != "-1");
                found = true;
            }
            if found { Ok(()) } else { Err(format!("VPC {vpc_id} has no security group")) }
        })
    }

    /// Adds an address prefix to a VNet (by ARM id), e.g. one overlapping the VPC.
    pub fn add_vnet_address_space(&self, vnet_id: &str, prefix: Ipv4Net) -> Result<(), SimError> {
        self.change(|w| {
            let v = w.azure.virtual_networks.get_mut(vnet_id).ok_or_else(|| format!("no VNet {vnet_id}"))?;
            v.address_space.push(prefix);
            Ok(())
        })
    }

    /// Puts a VPN gateway (by ARM id) in provisioning state Failed.
    pub fn fail_gateway(&self, gateway_id: &str) -> Result<(), SimError> {
        self.change(|w| {
            let now = w.now_ms;
            let g = w.azure.gateways.get_mut(gateway_id).ok_or_else(|| format!("no gateway {gateway_id}"))?;
            g.phase = Phase::stable(ProvisioningState::Failed, now);
            Ok(())
        })
    }

    /// Takes the AWS tunnel endpoint with outside IP `ip` down for maintenance.
    pub fn start_tunnel_maintenance(&self, ip: Ipv4Addr, duration: Duration) -> Result<(), SimError> {
        self.change(|w| {
            if !w.aws.vpn_connections.values().any(|v| v.tunnels.iter().any(|t| t.outside_ip == ip)) {
                return Err(format!("no AWS tunnel {ip}"));
            }
            w.start_tunnel_maintenance(ip, ms(duration));
            Ok(())
        })
    }
}

/// Traffic lost while a change ran, measured by a ping each way every second of
/// (virtual) time: what `apply --watch-traffic` and the bench report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrafficLoss {
    /// Seconds in which a ping from the VNet to the VPC got no reply.
    pub azure_to_aws_lost_s: u64,
    /// Seconds in which a ping from the VPC to the VNet got no reply.
    pub aws_to_azure_lost_s: u64,
    /// Seconds in which neither direction worked.
    pub both_lost_s: u64,
    /// Seconds watched.
    pub watched_s: u64,
}

/// Pings both ways once per second of (virtual) time until [`TrafficWatch::stop`].
#[derive(Debug)]
pub struct TrafficWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<TrafficLoss>,
}

impl TrafficWatch {
    /// Starts watching traffic between `vnet_host` and `vpc_host`.
    pub fn start(probe: SimProbe, vnet_host: Ipv4Addr, vpc_host: Ipv4Addr) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut loss = TrafficLoss::default();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let there = probe.ping(vnet_host, vpc_host).await.is_ok_and(|r| r.replied);
                let back = probe.ping(vpc_host, vnet_host).await.is_ok_and(|r| r.replied);
                loss.azure_to_aws_lost_s += u64::from(!there);
                loss.aws_to_azure_lost_s += u64::from(!back);
                loss.both_lost_s += u64::from(!there && !back);
                loss.watched_s += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            loss
        });
        Self { stop, task }
    }

    /// Stops watching and says what was lost.
    pub async fn stop(self) -> TrafficLoss {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}
