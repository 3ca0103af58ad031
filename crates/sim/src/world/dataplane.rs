//! The tunnel data plane: whether each end of each tunnel is up (as each cloud
//! believes it), and where a ping goes.
//!
//! A *link* is one IPsec tunnel between an AWS tunnel (outside IP O, key K) of a VPN
//! connection whose CGW has IP C and one Azure Connection from gateway instance k. It
//! is UP iff the VPN connection is available and the tunnel neither being modified nor
//! under AWS maintenance; the Azure gateway, Connection and LocalNetworkGateway are
//! Succeeded; instance k's public IP is C (the source IP AWS accepts); the
//! LocalNetworkGateway's IP is O; the keys are equal; the IKE versions meet; and the
//! negotiation time (60 s) has passed since the last of these came into place. Azure
//! tries every Connection from both instances; AWS answers only the instance whose IP
//! is the CGW's, so the other instance's end is down by design.
//!
//! Both clouds negotiate 0.0.0.0/0 traffic selectors in route-based mode, so static
//! prefixes decide where traffic is routed (LocalNetworkGateway prefixes on Azure, VPN
//! connection static routes and the VPC route table on AWS), not whether the tunnel
//! comes up.
//!
//! Dead peer detection: when a link that was up breaks, the end whose own side changed
//! knows at once; the other end still believes the tunnel up, and sends traffic into
//! it, until its DPD timeout (AWS 30 s, Azure the Connection's `dpdTimeoutSeconds`,
//! 45 s by default) has passed. [`World::refresh_links`] remembers which links were up
//! so a break can be timed; it runs on every clock move.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};
use vpnbridge_core::model::{AttachmentState, AwsState, ProvisioningState};

use super::bgp::longest_match;
use super::{AwsCgw, AwsTunnel, AwsVpc, AwsVpnConnection, AzConnection, AzGateway, AzLng, AzVnet, World};
use crate::latency::ms;

/// AWS's dead peer detection timeout (not configurable on a VGW).
pub const AWS_DPD_MS: u64 = 30_000;

/// How long a broken link is remembered after both ends noticed.
const KEEP_BROKEN_MS: u64 = 3_600_000;

/// Up, about to come up, or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LinkState {
    Up,
    /// Everything matches; IKE is still negotiating.
    Negotiating,
    Down,
}

/// One end's status, with the cloud-style reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkStatus {
    pub state: LinkState,
    pub message: String,
    /// Virtual time of the last change, when known.
    pub last_change_ms: Option<u64>,
}

impl LinkStatus {
    fn down(message: impl Into<String>, last_change_ms: Option<u64>) -> Self {
        Self { state: LinkState::Down, message: message.into(), last_change_ms }
    }

    pub fn is_up(&self) -> bool {
        self.state == LinkState::Up
    }
}

/// What the data plane remembers between clock moves: the links that were up (to time
/// dead peer detection), AWS tunnel maintenance windows, and the VPCs' security groups
/// live in [`super::AwsWorld`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DataPlane {
    /// By `"{aws outside ip}|{azure connection id}|{instance}"`.
    pub(super) links: BTreeMap<String, LinkRecord>,
    /// AWS tunnel endpoint maintenance, by outside IP: (start, end) in virtual ms.
    maintenance: BTreeMap<Ipv4Addr, (u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct LinkRecord {
    pub(super) outside_ip: Ipv4Addr,
    pub(super) connection_id: String,
    pub(super) instance: usize,
    pub(super) up_at: u64,
    /// When the BGP session over the link is (or will be) established, if it can be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) bgp_at: Option<u64>,
    /// When each side's part of the link last changed, while it was up.
    aws_since: u64,
    azure_since: u64,
    azure_dpd_ms: u64,
    /// When the link stopped being up, and when each end notices.
    pub(super) broke_at: Option<u64>,
    pub(super) aws_detects_at: u64,
    pub(super) azure_detects_at: u64,
}

/// A test VM the probe pings from (an Azure VM or an EC2 instance), reduced to what a
/// ping needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeHost {
    /// ARM id or instance id.
    pub id: String,
    /// The VNet's ARM id or the VPC id it is in.
    pub network: String,
    pub private_ip: Ipv4Addr,
    /// Running (a stopped VM runs no command).
    pub running: bool,
    /// It can run a command (the Azure VM agent; on EC2 the SSM agent and its
    /// instance profile).
    pub agent_online: bool,
}

/// A VPC security group, reduced to what a ping needs: its inbound rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    pub vpc_id: String,
    pub name: String,
    pub ingress: Vec<SgRule>,
}

/// One inbound rule: a protocol (`icmp`, `tcp`, `udp`, or `-1` for all) from a CIDR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SgRule {
    pub protocol: String,
    pub cidr: Ipv4Net,
}

impl SecurityGroup {
    /// Whether an inbound rule lets ICMP echo in from `ip`.
    pub fn allows_icmp_from(&self, ip: Ipv4Addr) -> bool {
        self.ingress.iter().any(|r| (r.protocol == "icmp" || r.protocol == "-1") && r.cidr.contains(&ip))
    }
}

/// Where a ping went: the hops it took and, when it did not come back, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PingTrace {
    pub replied: bool,
    pub path: Vec<String>,
    pub stopped: Option<String>,
}

/// One candidate link, borrowed from the world.
pub(super) struct Link<'a> {
    pub(super) vpn: &'a AwsVpnConnection,
    pub(super) tunnel: &'a AwsTunnel,
    pub(super) gateway: &'a AzGateway,
    pub(super) instance: usize,
    pub(super) conn: &'a AzConnection,
    pub(super) lng: &'a AzLng,
}

impl Link<'_> {
    pub(super) fn key(&self) -> String {
        link_key(self.tunnel.outside_ip, &self.conn.id, self.instance)
    }
}

fn link_key(ip: Ipv4Addr, conn: &str, k: usize) -> String {
    format!("{ip}|{conn}|{k}")
}

impl World {
    fn live_vpn_and_cgw(&self, vpn: &AwsVpnConnection) -> Option<&AwsCgw> {
        self.aws.customer_gateways.get(&vpn.customer_gateway_id)
    }

    /// The Azure gateway instance whose public IP is `ip`: (gateway, instance index).
    fn instance_with_ip(&self, ip: Ipv4Addr) -> Option<(&AzGateway, usize)> {
        self.azure.gateways.values().find_map(|g| {
            g.ip_configurations
                .iter()
                .position(|c| self.azure.public_ips.get(&c.public_ip_id).and_then(|p| p.ip) == Some(ip))
                .map(|k| (g, k))
        })
    }

    /// Public IP of instance `k` of gateway `g`.
    pub fn instance_ip(&self, g: &AzGateway, k: usize) -> Option<Ipv4Addr> {
        g.ip_configurations.get(k).and_then(|c| self.azure.public_ips.get(&c.public_ip_id)).and_then(|p| p.ip)
    }

    /// The AWS tunnel (with its connection) whose outside IP is `ip`.
    fn aws_tunnel_with_ip(&self, ip: Ipv4Addr) -> Option<(&AwsVpnConnection, &AwsTunnel)> {
        self.aws
            .vpn_connections
            .values()
            .filter(|v| v.phase.state != AwsState::Deleted)
            .find_map(|v| v.tunnels.iter().find(|t| t.outside_ip == ip).map(|t| (v, t)))
    }

    /// The maintenance window of the AWS tunnel with outside IP `ip`, if one is running.
    fn in_maintenance(&self, ip: Ipv4Addr) -> Option<u64> {
        self.dataplane.maintenance.get(&ip).filter(|(start, end)| *start <= self.now_ms && self.now_ms < *end).map(|(_, end)| *end)
    }

    /// When the AWS side of a tunnel last changed (a finished maintenance counts).
    fn aws_since(&self, vpn: &AwsVpnConnection, tunnel: &AwsTunnel) -> u64 {
        let maintenance_end = self.dataplane.maintenance.get(&tunnel.outside_ip).map_or(0, |(_, end)| *end).min(self.now_ms);
        let cgw_since = self.live_vpn_and_cgw(vpn).map_or(0, |c| c.phase.since);
        [vpn.phase.since, tunnel.since, maintenance_end, cgw_since].into_iter().max().unwrap_or(0)
    }

    /// When the Azure side of a Connection from instance `k` last changed.
    fn azure_since(&self, g: &AzGateway, k: usize, conn: &AzConnection, lng: &AzLng) -> u64 {
        let pip_since = g.ip_configurations.get(k).and_then(|c| self.azure.public_ips.get(&c.public_ip_id)).map_or(0, |p| p.phase.since);
        [g.instance_since(k, self.now_ms), conn.phase.since, lng.phase.since, pip_since].into_iter().max().unwrap_or(0)
    }

    /// Every link Azure attempts that AWS would answer: each Connection from the
    /// instance whose IP is the CGW's of the tunnel its LocalNetworkGateway names.
    pub(super) fn links(&self) -> Vec<Link<'_>> {
        let mut out = Vec::new();
        for conn in self.azure.connections.values() {
            let Some(gateway) = self.azure.gateways.get(&conn.gateway_id) else { continue };
            let Some(lng) = self.azure.local_network_gateways.get(&conn.local_network_gateway_id) else { continue };
            let Some((vpn, tunnel)) = self.aws_tunnel_with_ip(lng.gateway_ip) else { continue };
            let Some(cgw) = self.live_vpn_and_cgw(vpn) else { continue };
            for instance in 0..gateway.ip_configurations.len() {
                if self.instance_ip(gateway, instance) == Some(cgw.ip) {
                    out.push(Link { vpn, tunnel, gateway, instance, conn, lng });
                }
            }
        }
        out
    }

    /// Status of both ends of the pair (AWS tunnel, Azure Connection from instance k),
    /// given that instance k's IP is the CGW's: whether the IPsec SA really exists.
    fn pair_status(
        &self,
        vpn: &AwsVpnConnection,
        tunnel: &AwsTunnel,
        g: &AzGateway,
        k: usize,
        conn: &AzConnection,
        lng: &AzLng,
    ) -> LinkStatus {
        let now = self.now_ms;
        let since = self.aws_since(vpn, tunnel).max(self.azure_since(g, k, conn, lng));
        // A connection `modifying` keeps its other tunnel up: only the tunnel being
        // changed is down (below), as AWS replaces one tunnel endpoint at a time.
        if !vpn.carries_traffic() {
            return LinkStatus::down(format!("IPSEC IS DOWN (VPN connection {} is {:?})", vpn.id, vpn.phase.state), Some(since));
        }
        if tunnel.modifying_until.is_some_and(|u| now < u) {
            return LinkStatus::down("IPSEC IS DOWN (tunnel options are being modified)", Some(since));
        }
        if let Some(end) = self.in_maintenance(tunnel.outside_ip) {
            return LinkStatus::down(
                format!("IPSEC IS DOWN (tunnel endpoint under AWS maintenance until {})", World::timestamp(end)),
                Some(since),
            );
        }
        if let Some(r) = g.resizing() {
            let (from, to) = r.restart_window(k);
            if (from..to).contains(&now) {
                return LinkStatus::down(
                    format!("IPSEC IS DOWN (gateway instance {k} is being updated for the resize until {})", World::timestamp(to)),
                    Some(from),
                );
            }
        }
        // A resizing gateway keeps forwarding on the instance that is not updating.
        let gateway_state = if g.resizing().is_some() { ProvisioningState::Succeeded } else { g.phase.state };
        if [gateway_state, conn.phase.state, lng.phase.state].iter().any(|s| *s != ProvisioningState::Succeeded) {
            return LinkStatus::down(
                format!(
                    "IPSEC IS DOWN (Azure side not ready: gateway {:?}, connection {:?}, local network gateway {:?})",
                    g.phase.state, conn.phase.state, lng.phase.state
                ),
                Some(since),
            );
        }
        let ike_ok = match conn.protocol.as_str() {
            "IKEv2" => tunnel.ike_versions.iter().any(|v| v == "ikev2"),
            _ => tunnel.ike_versions.iter().any(|v| v == "ikev1"),
        };
        if !ike_ok {
            return LinkStatus::down(
                format!(
                    "IPSEC IS DOWN (IKE version mismatch: Azure uses {}, the AWS tunnel allows {})",
                    conn.protocol,
                    tunnel.ike_versions.join(", ")
                ),
                Some(since),
            );
        }
        if conn.shared_key != tunnel.psk {
            return LinkStatus::down("IPSEC IS DOWN (IKE authentication failed: pre-shared key mismatch)", Some(since));
        }
        let up_at = since.saturating_add(ms(self.latency.tunnel_negotiation));
        if now < up_at {
            return LinkStatus {
                state: LinkState::Negotiating,
                message: "IPSEC IS DOWN (IKE negotiation in progress)".to_owned(),
                last_change_ms: Some(since),
            };
        }
        LinkStatus { state: LinkState::Up, message: "IPSEC IS UP".to_owned(), last_change_ms: Some(up_at) }
    }

    pub(super) fn link_status(&self, l: &Link<'_>) -> LinkStatus {
        self.pair_status(l.vpn, l.tunnel, l.gateway, l.instance, l.conn, l.lng)
    }

    /// Remembers which links are up and times the breaks of those that no longer are
    /// (see the module docs). Runs before and after every clock move, so a change made
    /// by a call is seen at the virtual time it was made.
    pub(crate) fn refresh_links(&mut self) {
        if self.azure.connections.is_empty() && self.dataplane.links.is_empty() {
            return;
        }
        let now = self.now_ms;
        let mut up: BTreeMap<String, LinkRecord> = BTreeMap::new();
        // (aws side intact, azure side intact) for links that exist but are not up.
        for l in self.links() {
            let s = self.link_status(&l);
            if s.is_up() {
                up.insert(
                    l.key(),
                    LinkRecord {
                        outside_ip: l.tunnel.outside_ip,
                        connection_id: l.conn.id.clone(),
                        instance: l.instance,
                        up_at: s.last_change_ms.unwrap_or(now),
                        bgp_at: self
                            .bgp_agreement(&l)
                            .and_then(Result::ok)
                            .map(|()| s.last_change_ms.unwrap_or(now).saturating_add(ms(self.latency.bgp_establish))),
                        aws_since: self.aws_since(l.vpn, l.tunnel),
                        azure_since: self.azure_since(l.gateway, l.instance, l.conn, l.lng),
                        azure_dpd_ms: u64::from(l.conn.dpd_timeout_seconds.max(1)) * 1000,
                        broke_at: None,
                        aws_detects_at: 0,
                        azure_detects_at: 0,
                    },
                );
            }
        }
        let mut broken = Vec::new();
        for (key, rec) in &self.dataplane.links {
            if rec.broke_at.is_none() && !up.contains_key(key) {
                let aws_intact = self.aws_side_intact(rec);
                let azure_intact = self.azure_side_intact(rec);
                let mut r = rec.clone();
                r.broke_at = Some(now);
                r.aws_detects_at = if aws_intact { now.saturating_add(AWS_DPD_MS) } else { now };
                r.azure_detects_at = if azure_intact { now.saturating_add(rec.azure_dpd_ms) } else { now };
                broken.push((key.clone(), r));
            }
        }
        let links = &mut self.dataplane.links;
        for (key, r) in broken {
            links.insert(key, r);
        }
        for (key, r) in up {
            match links.get(&key) {
                Some(old) if old.broke_at.is_none() && old.up_at == r.up_at && old.bgp_at == r.bgp_at => {}
                _ => {
                    links.insert(key, r);
                }
            }
        }
        // Breaks are kept for an hour after both ends noticed, for the status messages.
        links.retain(|_, r| r.broke_at.is_none_or(|_| now < r.aws_detects_at.max(r.azure_detects_at).saturating_add(KEEP_BROKEN_MS)));
    }

    /// The AWS side of a link that was up is unchanged: only the Azure side moved.
    fn aws_side_intact(&self, rec: &LinkRecord) -> bool {
        let Some((vpn, tunnel)) = self.aws_tunnel_with_ip(rec.outside_ip) else { return false };
        vpn.carries_traffic()
            && tunnel.modifying_until.is_none_or(|u| self.now_ms >= u)
            && self.in_maintenance(rec.outside_ip).is_none()
            && self.aws_since(vpn, tunnel) == rec.aws_since
    }

    /// The Azure side of a link that was up is unchanged: only the AWS side moved.
    fn azure_side_intact(&self, rec: &LinkRecord) -> bool {
        let Some(conn) = self.azure.connections.get(&rec.connection_id) else { return false };
        let Some(g) = self.azure.gateways.get(&conn.gateway_id) else { return false };
        let Some(lng) = self.azure.local_network_gateways.get(&conn.local_network_gateway_id) else { return false };
        [g.phase.state, conn.phase.state, lng.phase.state].iter().all(|s| *s == ProvisioningState::Succeeded)
            && lng.gateway_ip == rec.outside_ip
            && self.azure_since(g, rec.instance, conn, lng) == rec.azure_since
    }

    /// A broken link whose AWS end has not detected the dead peer yet.
    fn aws_end_still_believes(&self, ip: Ipv4Addr) -> Option<&LinkRecord> {
        self.dataplane.links.values().find(|r| r.outside_ip == ip && r.broke_at.is_some() && self.now_ms < r.aws_detects_at)
    }

    /// A broken link whose Azure end (Connection `conn` from instance `k`) has not
    /// detected the dead peer yet.
    fn azure_end_still_believes(&self, conn: &AzConnection, k: usize) -> Option<&LinkRecord> {
        let lng_ip = self.azure.local_network_gateways.get(&conn.local_network_gateway_id).map(|l| l.gateway_ip);
        self.dataplane.links.values().find(|r| {
            r.connection_id == conn.id
                && r.instance == k
                && Some(r.outside_ip) == lng_ip
                && r.broke_at.is_some()
                && self.now_ms < r.azure_detects_at
        })
    }

    /// The last break of a link through AWS tunnel `ip` that its AWS end has detected.
    fn aws_end_detected(&self, ip: Ipv4Addr) -> Option<u64> {
        self.dataplane.links.values().filter(|r| r.outside_ip == ip && r.broke_at.is_some()).map(|r| r.aws_detects_at).max()
    }

    /// AWS's view of one of its tunnels (`VgwTelemetry`): on a dynamic VPN connection
    /// the tunnel is UP only while its BGP session is established (`"{n} BGP ROUTES"`);
    /// with IPsec up and BGP down it is DOWN with `"IPSEC IS UP"`, as AWS reports it.
    pub fn aws_tunnel_status(&self, vpn: &AwsVpnConnection, tunnel: &AwsTunnel) -> LinkStatus {
        let s = self.aws_ipsec_status(vpn, tunnel);
        match (s.state, self.aws_bgp_end(vpn, tunnel)) {
            (LinkState::Up, Some(b)) if b.established => LinkStatus {
                state: LinkState::Up,
                message: format!("{} BGP ROUTES", b.learned.len()),
                last_change_ms: b.since.or(s.last_change_ms),
            },
            (LinkState::Up, Some(b)) => LinkStatus::down(format!("IPSEC IS UP (BGP is down: {})", b.message), b.since.or(s.last_change_ms)),
            _ => s,
        }
    }

    /// AWS's view of one of its tunnels' IPsec.
    fn aws_ipsec_status(&self, vpn: &AwsVpnConnection, tunnel: &AwsTunnel) -> LinkStatus {
        let s = self.aws_tunnel_truth(vpn, tunnel);
        if s.state != LinkState::Up
            && vpn.carries_traffic()
            && let Some(r) = self.aws_end_still_believes(tunnel.outside_ip)
        {
            // The peer is gone but DPD has not noticed yet.
            return LinkStatus { state: LinkState::Up, message: "IPSEC IS UP".to_owned(), last_change_ms: Some(r.up_at) };
        }
        match (s.state, self.aws_end_detected(tunnel.outside_ip)) {
            (LinkState::Down, Some(at)) if s.last_change_ms.is_none_or(|c| c < at) => LinkStatus {
                state: LinkState::Down,
                message: format!("{} (dead peer detected after {} s)", s.message, AWS_DPD_MS / 1000),
                last_change_ms: Some(at),
            },
            _ => s,
        }
    }

    fn aws_tunnel_truth(&self, vpn: &AwsVpnConnection, tunnel: &AwsTunnel) -> LinkStatus {
        let Some(cgw) = self.live_vpn_and_cgw(vpn) else {
            return LinkStatus::down("IPSEC IS DOWN (customer gateway missing)", None);
        };
        if !vpn.carries_traffic() {
            return LinkStatus::down(format!("IPSEC IS DOWN (VPN connection is {:?})", vpn.phase.state), Some(vpn.phase.since));
        }
        if let Some(end) = self.in_maintenance(tunnel.outside_ip) {
            let start = self.dataplane.maintenance.get(&tunnel.outside_ip).map(|(s, _)| *s);
            return LinkStatus::down(
                format!("IPSEC IS DOWN (tunnel endpoint under AWS maintenance until {})", World::timestamp(end)),
                start,
            );
        }
        let Some((g, k)) = self.instance_with_ip(cgw.ip) else {
            return LinkStatus::down(format!("IPSEC IS DOWN (no IKE traffic from customer gateway {})", cgw.ip), Some(vpn.phase.since));
        };
        let candidates: Vec<_> = self
            .azure
            .connections
            .values()
            .filter(|c| c.gateway_id == g.id)
            .filter_map(|c| self.azure.local_network_gateways.get(&c.local_network_gateway_id).map(|l| (c, l)))
            .filter(|(_, l)| l.gateway_ip == tunnel.outside_ip)
            .collect();
        if candidates.is_empty() {
            return LinkStatus::down(
                format!(
                    "IPSEC IS DOWN (customer gateway {} does not initiate IKE to {}: no Azure connection targets it)",
                    cgw.ip, tunnel.outside_ip
                ),
                Some(vpn.phase.since),
            );
        }
        let statuses: Vec<_> = candidates.iter().map(|(c, l)| self.pair_status(vpn, tunnel, g, k, c, l)).collect();
        statuses
            .iter()
            .find(|s| s.is_up())
            .or_else(|| statuses.iter().find(|s| s.state == LinkState::Negotiating))
            .unwrap_or(&statuses[0])
            .clone()
    }

    /// Azure's view of Connection `conn` from gateway instance `k`
    /// (`tunnelConnectionStatus`).
    pub fn azure_tunnel_status(&self, conn: &AzConnection, k: usize) -> LinkStatus {
        let s = self.azure_tunnel_truth(conn, k);
        if s.state != LinkState::Up
            && conn.phase.state == ProvisioningState::Succeeded
            && let Some(r) = self.azure_end_still_believes(conn, k)
        {
            return LinkStatus { state: LinkState::Up, message: "Connected".to_owned(), last_change_ms: Some(r.up_at) };
        }
        s
    }

    fn azure_tunnel_truth(&self, conn: &AzConnection, k: usize) -> LinkStatus {
        let Some(g) = self.azure.gateways.get(&conn.gateway_id) else {
            return LinkStatus::down("NotConnected (gateway missing)", None);
        };
        let Some(lng) = self.azure.local_network_gateways.get(&conn.local_network_gateway_id) else {
            return LinkStatus::down("NotConnected (local network gateway missing)", None);
        };
        let Some(my_ip) = self.instance_ip(g, k) else {
            return LinkStatus::down(format!("NotConnected (instance {k} has no public IP)"), None);
        };
        let Some((vpn, tunnel)) = self.aws_tunnel_with_ip(lng.gateway_ip) else {
            return LinkStatus::down(format!("NotConnected (no IKE response from {})", lng.gateway_ip), Some(conn.phase.since));
        };
        let Some(cgw) = self.live_vpn_and_cgw(vpn) else {
            return LinkStatus::down(format!("NotConnected (no IKE response from {})", lng.gateway_ip), Some(conn.phase.since));
        };
        if cgw.ip != my_ip {
            return LinkStatus::down(
                format!(
                    "NotConnected (expected down by design: AWS tunnel {} accepts IKE only from its customer gateway {}, not from instance {k} at {my_ip})",
                    lng.gateway_ip, cgw.ip
                ),
                None,
            );
        }
        let s = self.pair_status(vpn, tunnel, g, k, conn, lng);
        if s.is_up() {
            return LinkStatus { message: "Connected".to_owned(), ..s };
        }
        let message = s.message.replacen("IPSEC IS DOWN", "NotConnected", 1);
        LinkStatus { message, ..s }
    }

    /// Starts an AWS maintenance window on the tunnel with outside IP `ip`.
    pub(crate) fn start_tunnel_maintenance(&mut self, ip: Ipv4Addr, duration_ms: u64) {
        let now = self.now_ms;
        self.dataplane.maintenance.insert(ip, (now, now.saturating_add(duration_ms)));
    }

    // -----------------------------------------------------------------------------
    // Ping
    // -----------------------------------------------------------------------------

    /// A ping from `from` to `to` and its reply, between VNet `vnet_id` and VPC
    /// `vpc_id`, along up tunnels and routes only: VNet -> (LocalNetworkGateway prefixes)
    /// gateway -> a Connection its instance believes up -> the AWS tunnel -> VGW -> VPC
    /// (security groups) and back through the VPC route table -> VGW -> a VPN
    /// connection with a static route and a tunnel AWS believes up -> Azure. A packet
    /// sent into a tunnel whose far end is gone (DPD not yet run out) is lost.
    pub fn ping(&self, vnet_id: &str, vpc_id: &str, from: Ipv4Addr, to: Ipv4Addr) -> Result<PingTrace, String> {
        let vnet = self.azure.virtual_networks.get(vnet_id).ok_or_else(|| format!("VNet {vnet_id} does not exist"))?;
        let vpc = self.aws.vpcs.get(vpc_id).ok_or_else(|| format!("VPC {vpc_id} does not exist"))?;
        let in_vnet = |ip: Ipv4Addr| vnet.address_space.iter().any(|p| p.contains(&ip));
        let in_vpc = |ip: Ipv4Addr| vpc.cidrs.iter().any(|p| p.contains(&ip));
        let mut path = Vec::new();
        let result = if in_vnet(from) && !in_vpc(from) {
            path.push(format!("{from} (VM in VNet {})", vnet.name));
            self.azure_to_aws(vnet, vpc, from, to, &mut path)
        } else if in_vpc(from) {
            path.push(format!("{from} (instance in VPC {})", vpc.id));
            self.aws_to_azure(vnet, vpc, from, to, &mut path)
        } else {
            return Err(format!("{from} is in neither VNet {} nor VPC {}", vnet.name, vpc.id));
        };
        Ok(match result {
            Ok(()) => PingTrace { replied: true, path, stopped: None },
            Err(why) => PingTrace { replied: false, path, stopped: Some(why) },
        })
    }

    fn azure_to_aws(&self, vnet: &AzVnet, vpc: &AwsVpc, from: Ipv4Addr, to: Ipv4Addr, path: &mut Vec<String>) -> Result<(), String> {
        let reached = self.send_from_azure(vnet, to, path).map_err(|e| format!("request: {e}"))?;
        if reached != vpc.id || !vpc.cidrs.iter().any(|c| c.contains(&to)) {
            return Err(format!("request: {to} is not an address of VPC {}", vpc.id));
        }
        let groups: Vec<_> = self.aws.security_groups.values().filter(|g| g.vpc_id == vpc.id).collect();
        if !groups.iter().any(|g| g.allows_icmp_from(from)) {
            let ids: Vec<&str> = groups.iter().map(|g| g.id.as_str()).collect();
            let prefix = vnet.address_space.iter().find(|p| p.contains(&from)).map_or(from.to_string(), ToString::to_string);
            return Err(format!(
                "request: security group {} of {to} blocks ICMP from {prefix}: no inbound rule allows ICMP from {from}",
                if ids.is_empty() { "(none)".to_owned() } else { ids.join(", ") }
            ));
        }
        path.push(format!("{to} (instance in VPC {}) answers", vpc.id));
        let back = self.send_from_aws(vpc, from, path).map_err(|e| format!("reply: {e}"))?;
        if back != vnet.id || !vnet.address_space.iter().any(|p| p.contains(&from)) {
            return Err(format!("reply: {from} is not an address of VNet {}", vnet.name));
        }
        path.push(format!("{from} receives the reply"));
        Ok(())
    }

    fn aws_to_azure(&self, vnet: &AzVnet, vpc: &AwsVpc, from: Ipv4Addr, to: Ipv4Addr, path: &mut Vec<String>) -> Result<(), String> {
        let reached = self.send_from_aws(vpc, to, path).map_err(|e| format!("request: {e}"))?;
        if reached != vnet.id || !vnet.address_space.iter().any(|p| p.contains(&to)) {
            return Err(format!("request: {to} is not an address of VNet {}", vnet.name));
        }
        path.push(format!("{to} (VM in VNet {}) answers", vnet.name));
        // Security groups are stateful: the reply to an outbound ping is let in.
        let back = self.send_from_azure(vnet, from, path).map_err(|e| format!("reply: {e}"))?;
        if back != vpc.id || !vpc.cidrs.iter().any(|c| c.contains(&from)) {
            return Err(format!("reply: {from} is not an address of VPC {}", vpc.id));
        }
        path.push(format!("{from} receives the reply"));
        Ok(())
    }

    /// Sends a packet from the VNet towards `to`; returns the VPC id it arrives in.
    fn send_from_azure(&self, vnet: &AzVnet, to: Ipv4Addr, path: &mut Vec<String>) -> Result<String, String> {
        if let Some(p) = vnet.address_space.iter().find(|p| p.contains(&to)) {
            return Err(format!(
                "{to} is inside VNet {}'s own address space ({p}): Azure delivers it inside the VNet, never to the VPN gateway",
                vnet.name
            ));
        }
        let gateway_subnet = vnet.subnets.iter().find(|s| s.name == "GatewaySubnet").map(|s| s.id.as_str()).unwrap_or_default();
        let Some(g) = self.azure.gateways_in_subnet(gateway_subnet).next() else {
            return Err(format!("VNet {} has no VPN gateway: Azure has no route to {to}", vnet.name));
        };
        if g.phase.state != ProvisioningState::Succeeded && g.resizing().is_none() {
            return Err(format!("Azure VPN gateway {} is in state {:?}: it forwards nothing", g.name, g.phase.state));
        }
        let ours: Vec<(&AzConnection, &AzLng)> = self
            .azure
            .connections
            .values()
            .filter(|c| c.gateway_id == g.id && c.phase.state == ProvisioningState::Succeeded)
            .filter_map(|c| self.azure.local_network_gateways.get(&c.local_network_gateway_id).map(|l| (c, l)))
            .filter(|(_, l)| l.phase.state == ProvisioningState::Succeeded)
            .collect();
        // Static routes (LocalNetworkGateway prefixes, from any instance) and the routes
        // each instance learned by BGP over a Connection.
        let mut routes: Vec<(&AzConnection, &AzLng, Option<usize>, u8)> =
            ours.iter().filter_map(|(c, l)| longest_match(&l.address_prefixes, to).map(|len| (*c, *l, None, len))).collect();
        for (c, l) in &ours {
            for k in 0..g.ip_configurations.len() {
                if let Some(len) = self.azure_bgp_end(c, k).filter(|b| b.established).and_then(|b| longest_match(&b.learned, to)) {
                    routes.push((c, l, Some(k), len));
                }
            }
        }
        let Some(best) = routes.iter().map(|r| r.3).max() else {
            let bgp: Vec<&str> = ours.iter().filter(|(c, _)| c.enable_bgp).map(|(c, _)| c.name.as_str()).collect();
            if !bgp.is_empty() {
                return Err(format!(
                    "gateway {} has learned no route to {to}: no BGP session of {} is established",
                    g.name,
                    bgp.join(", ")
                ));
            }
            return Err(format!("no LocalNetworkGateway of gateway {} has a prefix containing {to}: Azure has no route to it", g.name));
        };
        let mut routes: Vec<_> = routes.into_iter().filter(|r| r.3 == best).collect();
        routes.sort_by(|a, b| (&a.0.name, a.2).cmp(&(&b.0.name, b.2)));
        let chosen = routes
            .iter()
            .flat_map(|(c, l, k, _)| {
                let ks: Vec<usize> = k.map_or_else(|| (0..g.ip_configurations.len()).collect(), |k| vec![k]);
                ks.into_iter().map(move |k| (*c, *l, k))
            })
            .find(|(c, _, k)| self.azure_tunnel_status(c, *k).is_up());
        let Some((conn, lng, k)) = chosen else {
            let names: Vec<&str> = routes.iter().map(|r| r.0.name.as_str()).collect();
            return Err(format!("no connection of gateway {} toward {to} is connected ({}: NotConnected)", g.name, names.join(", ")));
        };
        path.push(format!("Azure gateway {} instance {k} -> connection {} -> AWS {}", g.name, conn.name, lng.gateway_ip));
        let link = self.links().into_iter().find(|l| l.conn.id == conn.id && l.instance == k && l.tunnel.outside_ip == lng.gateway_ip);
        let Some(link) = link.filter(|l| self.link_status(l).is_up()) else {
            return Err(format!(
                "lost in the tunnel of connection {} (instance {k} -> {}): the AWS end is down and Azure has not detected it yet (DPD {} s)",
                conn.name, lng.gateway_ip, conn.dpd_timeout_seconds
            ));
        };
        let vgw = self.aws.vpn_gateways.get(&link.vpn.vpn_gateway_id);
        let attached = vgw
            .filter(|v| v.phase.state == AwsState::Available)
            .and_then(|v| v.live_attachment())
            .filter(|a| a.phase.state == AttachmentState::Attached);
        let Some(att) = attached else {
            return Err(format!("virtual private gateway {} is not attached to a VPC: it delivers nothing", link.vpn.vpn_gateway_id));
        };
        path.push(format!("AWS tunnel {} of {} -> {} -> VPC {}", lng.gateway_ip, link.vpn.id, link.vpn.vpn_gateway_id, att.vpc_id));
        Ok(att.vpc_id.clone())
    }

    /// Sends a packet from the VPC (main route table) towards `to`; returns the VNet id
    /// it arrives in.
    fn send_from_aws(&self, vpc: &AwsVpc, to: Ipv4Addr, path: &mut Vec<String>) -> Result<String, String> {
        if vpc.cidrs.iter().any(|c| c.contains(&to)) {
            return Err(format!("{to} is inside VPC {}'s own CIDR: AWS delivers it inside the VPC", vpc.id));
        }
        let Some(table) = self.aws.route_tables.values().find(|t| t.vpc_id == vpc.id && t.main) else {
            return Err(format!("VPC {} has no main route table", vpc.id));
        };
        // A static route wins over a propagated one for the same prefix (the
        // propagated ones leave those out).
        let propagated = self.propagated_routes(table);
        let route = table
            .routes
            .iter()
            .chain(&propagated)
            .filter(|r| r.destination.contains(&IpNet::V4(Ipv4Net::from(to))))
            .max_by_key(|r| r.destination.prefix_len());
        let Some(route) = route else {
            return Err(format!("route table {} has no route to {to}: no VPC route via the VGW", table.id));
        };
        if !route.target.starts_with("vgw-") {
            return Err(format!(
                "route table {} sends {} to {}, not to the virtual private gateway",
                table.id, route.destination, route.target
            ));
        }
        let vgw_id = route.target.as_str();
        let attached = self.aws.vpn_gateways.get(vgw_id).is_some_and(|v| {
            v.phase.state == AwsState::Available
                && v.live_attachment().is_some_and(|a| a.vpc_id == vpc.id && a.phase.state == AttachmentState::Attached)
        });
        if !attached {
            return Err(format!(
                "route {} via {vgw_id} in {} is a blackhole: the VGW is not attached to {}",
                route.destination, table.id, vpc.id
            ));
        }
        path.push(format!("route table {}: {} -> {vgw_id}", table.id, route.destination));
        let on_vgw: Vec<&AwsVpnConnection> =
            self.aws.vpn_connections.values().filter(|v| v.vpn_gateway_id == vgw_id && v.carries_traffic()).collect();
        let static_len = |v: &AwsVpnConnection| {
            let live: Vec<IpNet> = v.routes.iter().filter(|r| r.phase.state == AwsState::Available).map(|r| r.destination).collect();
            longest_match(&live, to)
        };
        // The VGW's routes: static ones per VPN connection (any of its tunnels that is
        // UP) and those learned by BGP per tunnel; the longest prefix wins.
        let mut candidates: Vec<(&AwsVpnConnection, &AwsTunnel, u8)> = Vec::new();
        for v in &on_vgw {
            for t in v.sorted_tunnels() {
                let len = if v.static_routes_only {
                    static_len(v)
                } else {
                    self.aws_bgp_end(v, t).filter(|b| b.established).and_then(|b| longest_match(&b.learned, to))
                };
                if let Some(len) = len {
                    candidates.push((v, t, len));
                }
            }
        }
        let Some(best) = candidates.iter().map(|c| c.2).max() else {
            if on_vgw.iter().any(|v| !v.static_routes_only) {
                return Err(format!("{vgw_id} has learned no route to {to} by BGP and has no static route to it: the VGW drops it"));
            }
            return Err(format!("no VPN connection of {vgw_id} has a static route containing {to}: the VGW drops it"));
        };
        let vpns: Vec<&AwsVpnConnection> = {
            let mut v: Vec<&AwsVpnConnection> = candidates.iter().filter(|c| c.2 == best).map(|c| c.0).collect();
            v.dedup_by(|a, b| a.id == b.id);
            v
        };
        let chosen = candidates
            .iter()
            .filter(|c| c.2 == best)
            .map(|c| (c.0, c.1))
            .find(|(v, t)| self.aws_tunnel_status(v, t).is_up() || !v.static_routes_only);
        let Some((vpn, tunnel)) = chosen else {
            let ids: Vec<&str> = vpns.iter().map(|v| v.id.as_str()).collect();
            return Err(format!("no tunnel of VPN connection {} (routing {to}) is UP", ids.join(", ")));
        };
        path.push(format!("{vgw_id} -> VPN connection {} tunnel {}", vpn.id, tunnel.outside_ip));
        let link = self.links().into_iter().find(|l| l.tunnel.outside_ip == tunnel.outside_ip && self.link_status(l).is_up());
        let Some(link) = link else {
            return Err(format!(
                "lost in tunnel {} of {}: the Azure end is gone and AWS has not detected it yet (DPD {} s)",
                tunnel.outside_ip,
                vpn.id,
                AWS_DPD_MS / 1000
            ));
        };
        let vnet = self
            .azure
            .virtual_networks
            .values()
            .find(|v| link.gateway.ip_configurations.iter().any(|c| v.subnets.iter().any(|s| s.id == c.subnet_id)));
        let Some(vnet) = vnet else {
            return Err(format!("Azure gateway {} is in no VNet", link.gateway.name));
        };
        path.push(format!(
            "Azure gateway {} instance {} (connection {}) -> VNet {}",
            link.gateway.name, link.instance, link.conn.name, vnet.name
        ));
        Ok(vnet.id.clone())
    }
}
