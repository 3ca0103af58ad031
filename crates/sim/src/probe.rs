//! The simulator's data plane from outside: [`SimProbe`] (the core [`Probe`] on the
//! simulated world) and the out-of-band changes the `verify` scenarios break things
//! with, one at a time (someone editing a key in a console, deleting a route, an AWS
//! maintenance window…). None of them is a call of ours: they are not counted.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ipnet::{IpNet, Ipv4Net};
use vpnbridge_core::config::Config;
use vpnbridge_core::model::ProvisioningState;
use vpnbridge_core::probe::{
    PingResult, PingSeries, Probe, ProbeAddresses, ProbeError, ProbePreflight, Sample, SeriesHandle, SeriesSpec, probe_addresses,
};
use vpnbridge_core::secret::Psk;

use crate::cloud::{SimCloud, SimError};
use crate::latency::ms;
use crate::world::{Phase, ProbeHost, SecurityGroup, SgRule, World};
use crate::{AwsTarget, AzureTarget};

/// Pings between the target VNet and the target VPC of the simulated world: from the
/// simulated test VMs that `[probe]` names, or, without one, between the first usable
/// host of each side.
#[derive(Debug, Clone)]
pub struct SimProbe {
    cloud: SimCloud,
    vnet_id: String,
    vpc_id: String,
    hosts: Hosts,
    /// Series running on the virtual clock, by id.
    series: Arc<Mutex<HashMap<String, tokio::task::JoinHandle<Vec<Sample>>>>>,
}

#[derive(Debug, Clone)]
enum Hosts {
    /// `[probe]`: the simulated VM's ARM id and the instance id.
    Named { vm_id: String, instance_id: String },
    /// No `[probe]`: these two addresses.
    Fixed(ProbeAddresses),
}

/// The test VMs `[probe]` names, as the simulator creates them the first time they are
/// needed: each gets the first usable host (network + 4) of its side's first prefix,
/// running, with its agent online.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeHostSpec {
    pub vm_id: String,
    pub vnet_id: String,
    pub vm_ip: Ipv4Addr,
    pub instance_id: String,
    pub vpc_id: String,
    pub instance_ip: Ipv4Addr,
}

impl ProbeHostSpec {
    /// The hosts of `config.probe`, if it has one.
    pub fn from_config(config: &Config) -> Option<Self> {
        let p = config.probe.as_ref()?;
        let (vm_ip, instance_ip) = probe_addresses(config)?;
        let azure = AzureTarget::from_config(config);
        Some(Self {
            vm_id: p.azure_vm.id(),
            vnet_id: azure.id("virtualNetworks", &azure.vnet),
            vm_ip,
            instance_id: p.aws_instance.clone(),
            vpc_id: config.aws.vpc_id.clone(),
            instance_ip,
        })
    }
}

impl SimProbe {
    /// Pings between the first usable hosts of the VNet and the VPC.
    pub fn new(cloud: SimCloud, azure: &AzureTarget, aws: &AwsTarget, addresses: ProbeAddresses) -> Self {
        Self::with_hosts(cloud, azure, aws, Hosts::Fixed(addresses))
    }

    /// Pings between the simulated test VMs of `spec` (see [`SimCloud::ensure_probe_hosts`]).
    pub fn through(cloud: SimCloud, azure: &AzureTarget, aws: &AwsTarget, spec: &ProbeHostSpec) -> Self {
        Self::with_hosts(cloud, azure, aws, Hosts::Named { vm_id: spec.vm_id.clone(), instance_id: spec.instance_id.clone() })
    }

    /// The probe a config asks for: through `[probe]`'s VMs, or between fixed hosts.
    pub fn for_config(cloud: SimCloud, config: &Config) -> Option<Self> {
        let azure = AzureTarget::from_config(config);
        let aws = AwsTarget::from_config(config);
        match ProbeHostSpec::from_config(config) {
            Some(spec) => Some(Self::through(cloud, &azure, &aws, &spec)),
            None => {
                let (a, b) = probe_addresses(config)?;
                Some(Self::new(cloud, &azure, &aws, ProbeAddresses { azure: a, aws: b }))
            }
        }
    }

    fn with_hosts(cloud: SimCloud, azure: &AzureTarget, aws: &AwsTarget, hosts: Hosts) -> Self {
        Self {
            cloud,
            vnet_id: azure.id("virtualNetworks", &azure.vnet),
            vpc_id: aws.vpc_id.clone(),
            hosts,
            series: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The host a ping from `from` runs on, and whether it can run one now.
    fn check_host(&self, from: Ipv4Addr) -> Result<(), ProbeError> {
        let Hosts::Named { vm_id, instance_id } = &self.hosts else { return Ok(()) };
        self.cloud.with_world(|w| {
            let host = w
                .azure
                .virtual_machines
                .get(vm_id)
                .filter(|h| h.private_ip == from)
                .or_else(|| w.aws.instances.get(instance_id).filter(|h| h.private_ip == from));
            match host {
                None => Err(ProbeError(format!("no probe VM has the address {from}"))),
                Some(h) if !h.running => Err(ProbeError(format!("{} is not running, so it runs no command", h.id))),
                Some(h) if !h.agent_online => Err(ProbeError(format!("the agent of {} is offline: the command was not delivered", h.id))),
                Some(_) => Ok(()),
            }
        })
    }

    fn trace(&self, from: Ipv4Addr, to: Ipv4Addr) -> Result<PingResult, ProbeError> {
        self.check_host(from)?;
        let trace = self.cloud.lock().ping(&self.vnet_id, &self.vpc_id, from, to).map_err(ProbeError)?;
        Ok(PingResult { from, to, replied: trace.replied, path: trace.path, stopped: trace.stopped, stats: None })
    }
}

#[async_trait]
impl Probe for SimProbe {
    async fn addresses(&self) -> Result<ProbeAddresses, ProbeError> {
        match &self.hosts {
            Hosts::Fixed(a) => Ok(*a),
            Hosts::Named { vm_id, instance_id } => self.cloud.with_world(|w| {
                let vm = w.azure.virtual_machines.get(vm_id).ok_or_else(|| ProbeError(format!("Azure VM {vm_id} does not exist")))?;
                let i = w.aws.instances.get(instance_id).ok_or_else(|| ProbeError(format!("EC2 instance {instance_id} does not exist")))?;
                Ok(ProbeAddresses { azure: vm.private_ip, aws: i.private_ip })
            }),
        }
    }

    async fn preflight(&self) -> Result<ProbePreflight, ProbeError> {
        let Hosts::Named { vm_id, instance_id } = &self.hosts else { return Ok(ProbePreflight::default()) };
        Ok(self.cloud.with_world(|w| {
            let mut out = ProbePreflight::default();
            match w.azure.virtual_machines.get(vm_id) {
                None => out.errors.push(format!("Azure VM {vm_id} does not exist: create it in the VNet, or fix [probe] azure_vm")),
                Some(vm) if !vm.running => {
                    out.errors.push(format!("Azure VM {vm_id} is not running: start it (`az vm start --ids {vm_id}`)"))
                }
                Some(_) => {}
            }
            match w.aws.instances.get(instance_id) {
                None => out.errors.push(format!("EC2 instance {instance_id} does not exist: fix [probe] aws_instance")),
                Some(i) if !i.running => out.errors.push(format!(
                    "EC2 instance {instance_id} is not running: start it (`aws ec2 start-instances --instance-ids {instance_id}`)"
                )),
                Some(i) if !i.agent_online => out.errors.push(format!(
                    "EC2 instance {instance_id} is not a managed instance of Systems Manager: run the SSM agent on it and attach \
                     an instance profile with the AmazonSSMManagedInstanceCore policy"
                )),
                Some(_) => {}
            }
            out
        }))
    }

    async fn ping(&self, from: Ipv4Addr, to: Ipv4Addr) -> Result<PingResult, ProbeError> {
        self.trace(from, to)
    }

    async fn start_series(&self, from: Ipv4Addr, to: Ipv4Addr, spec: SeriesSpec) -> Result<SeriesHandle, ProbeError> {
        self.check_host(from)?;
        let probe = self.clone();
        let task = tokio::spawn(async move {
            let t0 = tokio::time::Instant::now();
            let mut samples = Vec::new();
            for _ in 0..spec.samples {
                let at = t0.elapsed().as_secs_f64();
                let replied = probe.trace(from, to).is_ok_and(|r| r.replied);
                samples.push(Sample { at, replied });
                tokio::time::sleep(spec.interval).await;
            }
            samples
        });
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let id = format!("sim-series-{}", series.len() + 1);
        series.insert(id.clone(), task);
        Ok(SeriesHandle { from, to, spec, id })
    }

    async fn collect_series(&self, handle: SeriesHandle) -> Result<PingSeries, ProbeError> {
        let task = self.series.lock().unwrap_or_else(|p| p.into_inner()).remove(&handle.id);
        let task = task.ok_or_else(|| ProbeError(format!("no series {}", handle.id)))?;
        let samples = task.await.map_err(|e| ProbeError(format!("the series stopped: {e}")))?;
        Ok(PingSeries { from: handle.from, to: handle.to, samples })
    }
}

impl SimCloud {
    /// Creates the test VMs of `spec` if they do not exist yet (the simulated
    /// prerequisites of `[probe]`, like the VNet and the VPC). Read-only sessions keep
    /// them in memory.
    pub fn ensure_probe_hosts(&self, spec: &ProbeHostSpec) -> Result<(), SimError> {
        let mut w = self.lock();
        let mut changed = false;
        if !w.azure.virtual_machines.contains_key(&spec.vm_id) {
            let host = ProbeHost {
                id: spec.vm_id.clone(),
                network: spec.vnet_id.clone(),
                private_ip: spec.vm_ip,
                running: true,
                agent_online: true,
            };
            w.azure.virtual_machines.insert(spec.vm_id.clone(), host);
            changed = true;
        }
        if !w.aws.instances.contains_key(&spec.instance_id) {
            let host = ProbeHost {
                id: spec.instance_id.clone(),
                network: spec.vpc_id.clone(),
                private_ip: spec.instance_ip,
                running: true,
                agent_online: true,
            };
            w.aws.instances.insert(spec.instance_id.clone(), host);
            changed = true;
        }
        if changed && !self.is_read_only() { self.save_locked(&w) } else { Ok(()) }
    }

    /// Stops a simulated test VM or instance (by id), or takes its agent offline: an
    /// out-of-band change for the probe scenarios.
    pub fn set_probe_host(&self, id: &str, running: bool, agent_online: bool) -> Result<(), SimError> {
        self.change(|w| {
            let host = match w.azure.virtual_machines.get_mut(id) {
                Some(h) => Some(h),
                None => w.aws.instances.get_mut(id),
            };
            let host = host.ok_or_else(|| format!("no probe host {id}"))?;
            host.running = running;
            host.agent_online = agent_online;
            Ok(())
        })
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
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
