//! `verify`: proves the VPN works, or says precisely what is wrong.
//!
//! Per used tunnel: the AWS end as `VgwTelemetry` gives it, the Azure end per gateway
//! instance (`tunnelConnectionStatus`, not the Connection's aggregate), the IKE SA's
//! endpoints, and which instance is down by design and why; then a ping each way when
//! a [`Probe`] can observe the data plane. Every problem found becomes one diagnosis in
//! the user's words, naming the resource and, where there is one, the fix.
//!
//! [`assess`] is pure (observed state in, report out); [`verify`] observes and pings.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::IpNet;
use serde::Serialize;

use crate::config::{Config, Mode, overlaps};
use crate::endpoint::{Aws, Azure, BgpPeer, BgpState, CloudName, EndpointError, IkeSa, Tunnel, VpnEndpoint};
use crate::model::{AttachmentState, AwsState, Owner, ProvisioningState, Role, TunnelState, role_of};
use crate::pairing::{self, ObservedTunnel, TunnelHealth, TunnelSlot};
use crate::plan::{self, Observed};
use crate::probe::{PingPair, Probe, ProbeError, ping_both_ways};

/// Whether verify found the VPN working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerifyResult {
    /// Every used tunnel is up at both ends, nothing is off, and (when observable)
    /// pings go both ways.
    Ok,
    /// At least one diagnosis.
    Problems,
}

/// Whether the data plane could be observed, and if not why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DataPlaneAccess {
    pub observable: bool,
    /// Why not, when not observable (mixed backends, real clouds without probe VMs).
    pub reason: Option<String>,
}

/// One side of the data plane to verify with: a probe, or why there is none.
#[derive(Clone, Copy)]
pub enum DataPlane<'a> {
    Probe(&'a dyn Probe),
    NotObservable(&'a str),
}

impl std::fmt::Debug for DataPlane<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataPlane::Probe(_) => f.write_str("Probe"),
            DataPlane::NotObservable(r) => write!(f, "NotObservable({r:?})"),
        }
    }
}

/// What one instance's end of a Connection reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AzureInstanceEnd {
    pub instance: u8,
    pub instance_ip: Option<Ipv4Addr>,
    /// `up` for the instance whose IP is the CGW's, `down_by_design` for the other.
    pub expected: Expected,
    /// `tunnelConnectionStatus` of this instance.
    pub status: TunnelState,
    pub reason: String,
    pub last_change: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Expected {
    Up,
    DownByDesign,
}

/// The AWS end of a tunnel, as `VgwTelemetry` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AwsEnd {
    pub status: TunnelState,
    pub status_message: String,
    pub last_status_change: Option<String>,
}

/// One used tunnel, both clouds' view.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TunnelReport {
    /// `vpn-…/1`: the AWS VPN connection and the tunnel's 1-based index in it.
    pub name: String,
    pub slot: TunnelSlot,
    pub vpn_connection_id: Option<String>,
    pub aws_outside_ip: Option<Ipv4Addr>,
    pub customer_gateway_ip: Option<Ipv4Addr>,
    /// Both ends of the tunnel that should carry traffic are up.
    pub up: bool,
    pub aws: Option<AwsEnd>,
    pub azure: Vec<AzureInstanceEnd>,
    /// The IKE SA of the instance expected up, as Azure reports it.
    pub ike_sa: Option<IkeSa>,
    /// The BGP session over the tunnel (bgp-ha): `None` when neither end reports one.
    pub bgp: Option<TunnelBgp>,
}

/// The BGP session over one tunnel, as each end reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TunnelBgp {
    /// AWS's telemetry (`UP` only while the session is established; accepted routes).
    pub aws: Option<BgpPeer>,
    /// Azure's peer status and learned routes on the instance expected up.
    pub azure: Option<BgpPeer>,
}

/// An Azure end that is down because AWS refuses it, by design.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ExpectedDown {
    pub azure_connection: String,
    pub instance: u8,
    pub instance_ip: Option<Ipv4Addr>,
    pub status: Option<TunnelState>,
    pub why: String,
}

/// The report of `verify` (the `verify --output json` document is built from it).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VerifyReport {
    pub deployment: String,
    pub result: VerifyResult,
    pub data_plane: DataPlaneAccess,
    pub tunnels: Vec<TunnelReport>,
    pub expected_down: Vec<ExpectedDown>,
    /// `None` when the data plane is not observable.
    pub ping: Option<PingPair>,
    pub diagnoses: Vec<String>,
    /// The probe could not run (timeout, permission, agent offline): connectivity is
    /// unknown, which is not the same as lost.
    pub probe_error: Option<String>,
    /// Warnings of the probe's preflight (e.g. a firewall that could not be read).
    pub warnings: Vec<String>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.result == VerifyResult::Ok
    }
    pub fn tunnels_up(&self) -> usize {
        self.tunnels.iter().filter(|t| t.up).count()
    }
}

/// Why verify could not run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    /// The probe VMs are not ready (missing, stopped, unmanaged, firewalled): each
    /// finding names the resource and the fix; nothing was pinged or changed.
    #[error("the probe VMs are not ready:\n{}", .0.join("\n"))]
    ProbePreflight(Vec<String>),
}

/// Observes both clouds, reads every tunnel end, pings both ways when it can, and
/// assesses the result. Never mutates.
pub async fn verify(
    config: &Config,
    aws: &dyn VpnEndpoint<Aws>,
    azure: &dyn VpnEndpoint<Azure>,
    data_plane: DataPlane<'_>,
) -> Result<VerifyReport, VerifyError> {
    let owner = Owner::new(&config.name);
    let settings = crate::exec::ExecSettings::default();
    let observed = crate::exec::observe(aws, azure, &owner, &settings).await?;
    let ends = crate::exec::tunnel_ends(aws, azure, &owner, &settings).await?;
    let (ping, probe_error, warnings) = match data_plane {
        DataPlane::Probe(p) => {
            let pre = p.preflight().await?;
            if !pre.errors.is_empty() {
                return Err(VerifyError::ProbePreflight(pre.errors));
            }
            match ping_both_ways(p).await {
                Ok(ping) => (Some(ping), None, pre.warnings),
                Err(e) => (None, Some(e.to_string()), pre.warnings),
            }
        }
        DataPlane::NotObservable(_) => (None, None, Vec::new()),
    };
    let mut report = assess(config, &observed, &ends, data_plane, ping);
    report.warnings = warnings;
    if let Some(e) = probe_error {
        report.data_plane = DataPlaneAccess { observable: false, reason: Some(e.clone()) };
        report.probe_error = Some(e);
    }
    Ok(report)
}

/// The pure part of [`verify`]: joins, checks and words the diagnoses.
pub fn assess(
    config: &Config,
    observed: &Observed,
    ends: &[Box<dyn Tunnel>],
    data_plane: DataPlane<'_>,
    ping: Option<PingPair>,
) -> VerifyReport {
    let owner = Owner::new(&config.name);
    let joined = pairing::join(&owner, &config.layout(), &observed.azure, &observed.aws);
    let health = pairing::health(&joined, ends);
    let mut diagnoses = Diagnoses::default();

    // The gateways themselves.
    match &observed.azure.vpn_gateway {
        None => diagnoses.push("Azure VPN gateway is missing: run `vpnbridge apply`".to_owned()),
        Some(g) if g.state == ProvisioningState::Failed => diagnoses.push(format!(
            "Azure VPN gateway {} is in state Failed: no tunnel through it can come up; `vpnbridge apply` provisions it again",
            g.name
        )),
        Some(g) if g.state != ProvisioningState::Succeeded => {
            diagnoses.push(format!("Azure VPN gateway {} is {:?}: its tunnels are down until it settles", g.name, g.state))
        }
        Some(_) => {}
    }
    let vgw =
        observed.aws.vpn_gateways.iter().find(|v| !v.state.is_gone() && role_of(&owner, &v.tags) == Some(Role::VirtualPrivateGateway));
    match vgw {
        None => diagnoses.push("AWS virtual private gateway is missing: run `vpnbridge apply`".to_owned()),
        Some(v) if !v.attachments.iter().any(|a| a.vpc_id == config.aws.vpc_id && a.state == AttachmentState::Attached) => {
            diagnoses.push(format!("virtual private gateway {} is not attached to VPC {}: run `vpnbridge apply`", v.id, config.aws.vpc_id))
        }
        Some(_) => {}
    }

    // Each used tunnel.
    let mut tunnels = Vec::new();
    let mut expected_down = Vec::new();
    for (t, h) in joined.iter().zip(&health) {
        let report = tunnel_report(observed, t, h, ends);
        tunnel_diagnoses(config, observed, t, h, &report, &mut diagnoses);
        let other = report.azure.iter().find(|e| e.expected == Expected::DownByDesign);
        expected_down.push(ExpectedDown {
            azure_connection: t.slot.azure_connection.clone(),
            instance: t.slot.expected_down_instance,
            instance_ip: pairing::instance_ip(&observed.azure, t.slot.expected_down_instance),
            status: other.map(|e| e.status),
            why: format!(
                "Azure tries {} from instance {} too, but AWS tunnel {} accepts IKE only from its customer gateway's IP {} (instance {})",
                t.slot.azure_connection,
                t.slot.expected_down_instance,
                t.aws_outside_ip.map_or("-".to_owned(), |i| i.to_string()),
                t.customer_gateway_ip.map_or("-".to_owned(), |i| i.to_string()),
                t.slot.expected_up_instance
            ),
        });
        tunnels.push(report);
    }

    // Routes on both sides.
    route_diagnoses(config, observed, vgw.map(|v| v.id.as_str()), &mut diagnoses);
    if config.mode == Mode::BgpHa {
        learned_everywhere(config, &tunnels, &mut diagnoses);
    }
    // What the preflight would refuse now (overlaps introduced out of band, drift).
    for p in plan::preflight(config, observed) {
        diagnoses.push(p);
    }

    if let Some(p) = &ping {
        for (r, dir) in [(&p.azure_to_aws, ("VNet", "VPC")), (&p.aws_to_azure, ("VPC", "VNet"))] {
            if !r.replied {
                diagnoses.push(format!(
                    "ping from {} ({}) to {} ({}) gets no reply: {}",
                    r.from,
                    dir.0,
                    r.to,
                    dir.1,
                    r.stopped.as_deref().unwrap_or("no reason given")
                ));
            }
        }
    }

    let data_plane = match data_plane {
        DataPlane::Probe(_) => DataPlaneAccess { observable: true, reason: None },
        DataPlane::NotObservable(r) => DataPlaneAccess { observable: false, reason: Some(r.to_owned()) },
    };
    let diagnoses = diagnoses.0;
    let all_up = !tunnels.is_empty() && tunnels.iter().all(|t| t.up);
    let result = if diagnoses.is_empty() && all_up { VerifyResult::Ok } else { VerifyResult::Problems };
    VerifyReport {
        deployment: config.name.clone(),
        result,
        data_plane,
        tunnels,
        expected_down,
        ping,
        diagnoses,
        probe_error: None,
        warnings: Vec::new(),
    }
}

/// Diagnoses in order, without repeats.
#[derive(Debug, Default)]
struct Diagnoses(Vec<String>);

impl Diagnoses {
    fn push(&mut self, d: String) {
        if !self.0.contains(&d) {
            self.0.push(d);
        }
    }
}

/// `vpn-0123…/1`, or `vpn-0/1` (the role) when the VPN connection is missing.
pub fn tunnel_name(t: &ObservedTunnel) -> String {
    match &t.vpn_connection_id {
        Some(id) => format!("{id}/{}", t.slot.tunnel + 1),
        None => format!("{}/{}", Role::VpnConnection(t.slot.connection), t.slot.tunnel + 1),
    }
}

fn tunnel_report(observed: &Observed, t: &ObservedTunnel, h: &TunnelHealth, ends: &[Box<dyn Tunnel>]) -> TunnelReport {
    let owner_vpn = t.vpn_connection_id.as_ref().and_then(|id| observed.aws.vpn_connections.iter().find(|v| &v.id == id));
    let aws = t.aws_outside_ip.and_then(|ip| owner_vpn.and_then(|v| v.telemetry.iter().find(|x| x.outside_ip == ip))).map(|x| AwsEnd {
        status: x.status,
        status_message: x.status_message.clone(),
        last_status_change: x.last_status_change.clone(),
    });
    let azure_end = |k: u8| {
        ends.iter().find(|e| e.cloud() == CloudName::Azure && e.resource() == t.slot.azure_connection && e.instance() == usize::from(k))
    };
    let mut azure = Vec::new();
    for (k, expected) in [(t.slot.expected_up_instance, Expected::Up), (t.slot.expected_down_instance, Expected::DownByDesign)] {
        let end = azure_end(k);
        let (status, reason, last_change) = match end {
            Some(e) => (e.status().state, e.status().reason.clone(), e.status().last_change.clone()),
            None => (TunnelState::Unknown, "not reported (no such Connection)".to_owned(), None),
        };
        azure.push(AzureInstanceEnd {
            instance: k,
            instance_ip: pairing::instance_ip(&observed.azure, k),
            expected,
            status,
            reason,
            last_change,
        });
    }
    azure.sort_by_key(|e| e.instance);
    let ike_sa = azure_end(t.slot.expected_up_instance).and_then(|e| e.ike_sa());
    let bgp = (h.bgp_aws.is_some() || h.bgp_azure.is_some()).then(|| TunnelBgp { aws: h.bgp_aws.clone(), azure: h.bgp_azure.clone() });
    TunnelReport {
        name: tunnel_name(t),
        slot: t.slot.clone(),
        vpn_connection_id: t.vpn_connection_id.clone(),
        aws_outside_ip: t.aws_outside_ip,
        customer_gateway_ip: t.customer_gateway_ip,
        up: h.is_up(),
        aws,
        azure,
        ike_sa,
        bgp,
    }
}

fn tunnel_diagnoses(config: &Config, observed: &Observed, t: &ObservedTunnel, h: &TunnelHealth, r: &TunnelReport, out: &mut Diagnoses) {
    let name = &r.name;
    let cn_name = &t.slot.azure_connection;
    let vpn = t.vpn_connection_id.as_ref().and_then(|id| observed.aws.vpn_connections.iter().find(|v| &v.id == id));
    let aws_t = vpn.and_then(|v| pairing::aws_tunnel(v, t.slot.tunnel, config.layout().pins(t.slot.connection)));
    let cn = pairing::connection(&observed.azure, cn_name);
    let lng = pairing::local_network_gateway(&observed.azure, &t.slot.local_network_gateway);

    // What the pairing rule finds off, in this tunnel's words (the PSK one rephrased).
    for p in &t.problems {
        if p.starts_with("PSK mismatch") {
            out.push(format!("tunnel {name}: PSK mismatch between AWS and Azure connection {cn_name}"));
        } else if p.starts_with("LocalNetworkGateway") && p.contains(" points at ") {
            if let (Some(l), Some(ip)) = (lng, t.aws_outside_ip) {
                out.push(format!(
                    "tunnel {name}: LocalNetworkGateway {} points at {}, not at the AWS tunnel's outside IP {ip}: `vpnbridge apply` re-points it",
                    l.name, l.gateway_ip
                ));
            }
        } else {
            out.push(format!("tunnel {name}: {p}"));
        }
    }
    if let (Some(at), Some(c)) = (aws_t, cn) {
        let aws_v2 = at.ike_versions.iter().any(|v| v.eq_ignore_ascii_case("ikev2"));
        if !c.protocol.eq_ignore_ascii_case("IKEv2") || !aws_v2 {
            out.push(format!(
                "tunnel {name}: IKE version mismatch: Azure connection {cn_name} uses {}, the AWS tunnel allows {}",
                c.protocol,
                at.ike_versions.join(", ")
            ));
        }
    }
    if let Some(c) = cn
        && c.state == ProvisioningState::Failed
    {
        out.push(format!("tunnel {name}: Azure connection {cn_name} is in state Failed: `vpnbridge apply` provisions it again"));
    }
    if config.mode == Mode::BgpHa {
        bgp_diagnoses(config, observed, t, h, out);
    }
    // Static prefixes: Azure routes the VPC's CIDRs into this tunnel through the LNG.
    if let Some(l) = lng.filter(|_| config.mode == Mode::StaticHa) {
        for c in &config.aws.cidrs {
            if !l.address_prefixes.iter().any(|p| p.contains(&IpNet::V4(*c))) {
                out.push(format!(
                    "LocalNetworkGateway {} has no prefix for VPC CIDR {c}: Azure sends nothing for it through tunnel {name}",
                    l.name
                ));
            }
        }
        if let Some(vnet) = &observed.azure.vnet {
            for p in &l.address_prefixes {
                for a in &vnet.address_space {
                    if overlaps(*p, *a) {
                        out.push(format!(
                            "LocalNetworkGateway {} prefix {p} overlaps VNet {} address space {a}: Azure keeps that traffic in the VNet",
                            l.name, vnet.name
                        ));
                    }
                }
            }
        }
    }
    if let Some(v) = vpn.filter(|_| config.mode == Mode::StaticHa) {
        for a in &config.azure.address_space {
            let routed = v.routes.iter().any(|r| r.state == AwsState::Available && r.destination.contains(&IpNet::V4(*a)));
            if !routed {
                out.push(format!(
                    "VPN connection {} has no static route to {a}: AWS sends nothing for it through tunnel {name} (`vpnbridge apply` adds it)",
                    v.id
                ));
            }
        }
    }
    if !h.is_up() {
        let aws = r.aws.as_ref().map_or("not reported".to_owned(), |a| format!("{} ({})", a.status, a.status_message));
        let az = r
            .azure
            .iter()
            .find(|e| e.expected == Expected::Up)
            .map_or("not reported".to_owned(), |e| format!("{} ({})", e.status, e.reason));
        out.push(format!("tunnel {name} is down: AWS end {aws}; Azure {cn_name} instance {} end {az}", t.slot.expected_up_instance));
    }
}

fn route_diagnoses(config: &Config, observed: &Observed, vgw: Option<&str>, out: &mut Diagnoses) {
    let Some(vpc) = &observed.aws.vpc else { return };
    let tables: Vec<_> = if config.aws.route_tables.is_empty() {
        vpc.main_route_table().into_iter().collect()
    } else {
        vpc.route_tables.iter().filter(|t| config.aws.route_tables.contains(&t.id)).collect()
    };
    let bgp_ha = config.mode == Mode::BgpHa;
    let mut seen = BTreeSet::new();
    for table in tables {
        let propagates = vgw.is_some_and(|v| table.propagating_vgws.iter().any(|p| p == v));
        if bgp_ha && !propagates {
            out.push(format!(
                "route table {} does not propagate the routes of virtual private gateway {}: it learns no Azure prefix by BGP (`vpnbridge apply` enables propagation)",
                table.id,
                vgw.unwrap_or("(missing)")
            ));
        }
        for a in &config.azure.address_space {
            let dest = IpNet::V4(*a);
            let best = table.routes.iter().filter(|r| r.destination.contains(&dest.network())).max_by_key(|r| r.destination.prefix_len());
            match best {
                None if bgp_ha && propagates => out.push(format!(
                    "no propagated route to {a} in route table {}: virtual private gateway {} has not learned it by BGP over any tunnel",
                    table.id,
                    vgw.unwrap_or("-")
                )),
                None if bgp_ha => {}
                None => out.push(format!("no VPC route to {a} via the VGW in route table {} (`vpnbridge apply` adds it)", table.id)),
                Some(r) if r.gateway_id.is_some() && r.gateway_id.as_deref() == vgw => {
                    if r.state == "blackhole" {
                        out.push(format!(
                            "VPC route to {a} via {} in route table {} is a blackhole",
                            r.gateway_id.as_deref().unwrap_or("-"),
                            table.id
                        ));
                    }
                }
                Some(r) => {
                    if seen.insert((table.id.clone(), r.destination)) {
                        out.push(format!(
                            "no VPC route to {a} via the VGW in route table {}: it sends {} to {}",
                            table.id,
                            r.destination,
                            r.gateway_id.as_deref().unwrap_or("another target")
                        ));
                    }
                }
            }
        }
    }
}

/// bgp-ha, one tunnel: the BGP settings both clouds hold for it (which end is off, and
/// why), then the session and the routes it carries.
fn bgp_diagnoses(config: &Config, observed: &Observed, t: &ObservedTunnel, h: &TunnelHealth, out: &mut Diagnoses) {
    let name = tunnel_name(t);
    let k = t.slot.expected_up_instance;
    let vpn = t.vpn_connection_id.as_ref().and_then(|id| observed.aws.vpn_connections.iter().find(|v| &v.id == id));
    let aws_t = vpn.and_then(|v| pairing::aws_tunnel(v, t.slot.tunnel, config.layout().pins(t.slot.connection)));
    let cn = pairing::connection(&observed.azure, &t.slot.azure_connection);
    let lng = pairing::local_network_gateway(&observed.azure, &t.slot.local_network_gateway);
    let gw = observed.azure.vpn_gateway.as_ref();
    let vgw = vpn.and_then(|v| observed.aws.vpn_gateways.iter().find(|g| g.id == v.vpn_gateway_id));
    let cgw = vpn.and_then(|v| observed.aws.customer_gateways.iter().find(|c| c.id == v.customer_gateway_id));

    if let Some(v) = vpn.filter(|v| v.static_routes_only) {
        out.push(format!(
            "tunnel {name}: VPN connection {} uses static routes only, so AWS speaks no BGP on it: bgp-ha needs a dynamic one (`vpnbridge apply` replaces it)",
            v.id
        ));
    }
    if let Some(g) = gw.filter(|g| !g.enable_bgp) {
        out.push(format!("Azure VPN gateway {} has BGP off: bgp-ha needs it on (`vpnbridge apply` turns it on)", g.name));
    }
    if let (Some(c), Some(g)) = (cgw, gw)
        && g.enable_bgp
        && g.asn != Some(c.bgp_asn)
    {
        out.push(format!(
            "tunnel {name}: wrong ASN: AWS expects its BGP peer to be ASN {} (customer gateway {}), but Azure gateway {} has ASN {}",
            c.bgp_asn,
            c.id,
            g.name,
            g.asn.map_or("(none)".to_owned(), |a| a.to_string())
        ));
    }
    if let Some(c) = cn.filter(|c| !c.enable_bgp) {
        out.push(format!("tunnel {name}: Azure connection {} has BGP off (`vpnbridge apply` turns it on)", c.name));
    }
    let inside = aws_t.and_then(|a| a.inside_cidr);
    if let (Some(l), Some(inside)) = (lng, inside) {
        let aws_ip = crate::bgp::aws_address(inside);
        match l.bgp {
            None => out.push(format!(
                "tunnel {name}: LocalNetworkGateway {} has no BGP peer (bgpSettings): Azure does not answer AWS's BGP (`vpnbridge apply` sets it)",
                l.name
            )),
            Some(b) if b.peering_address != aws_ip => out.push(format!(
                "tunnel {name}: inside CIDR mismatch: LocalNetworkGateway {} expects its BGP peer at {}, but the AWS tunnel speaks from {aws_ip} (inside CIDR {inside})",
                l.name, b.peering_address
            )),
            Some(b) if vgw.is_some_and(|v| v.amazon_asn != b.asn) => out.push(format!(
                "tunnel {name}: wrong ASN: LocalNetworkGateway {} expects ASN {}, but virtual private gateway {} has Amazon ASN {}",
                l.name,
                b.asn,
                vgw.map_or("-", |v| v.id.as_str()),
                vgw.map_or(0, |v| v.amazon_asn)
            )),
            Some(_) => {}
        }
    }
    if let (Some(c), Some(g), Some(inside)) = (cn, gw, inside) {
        let want = crate::bgp::azure_address(inside);
        let cfg = g.ip_configurations.get(usize::from(k));
        let have = cfg.and_then(|cfg| c.custom_bgp_addresses.iter().find(|a| a.ip_configuration_id.eq_ignore_ascii_case(&cfg.id)));
        if c.enable_bgp && have.map(|a| a.address) != Some(want) {
            out.push(format!(
                "tunnel {name}: wrong APIPA address: Azure connection {} has instance {k} speak BGP from {}, but the AWS tunnel expects its peer at {want} (inside CIDR {inside}) (`vpnbridge apply` sets it)",
                c.name,
                have.map_or("its default address".to_owned(), |a| a.address.to_string())
            ));
        }
    }

    // The session itself, when IPsec is up at both ends.
    let ipsec_up = h.azure_expected.as_ref().is_some_and(|s| s.state == TunnelState::Up)
        && h.aws.as_ref().is_some_and(|s| s.state == TunnelState::Up || s.reason.starts_with("IPSEC IS UP"));
    let aws_established = h.aws.as_ref().is_some_and(|s| s.state == TunnelState::Up);
    let azure_established = h.bgp_azure.as_ref().is_some_and(|b| b.state == BgpState::Established);
    if ipsec_up && !(aws_established && azure_established) {
        let aws = h.aws.as_ref().map_or("not reported".to_owned(), |s| format!("{} ({})", s.state, s.reason));
        let az = h.bgp_azure.as_ref().map_or("not reported".to_owned(), |b| format!("{:?} ({})", b.state, b.reason));
        let ends = match (aws_established, azure_established) {
            (false, false) => "both ends",
            (false, true) => "the AWS end",
            _ => "the Azure end",
        };
        out.push(format!("tunnel {name}: IPsec is up but the BGP session is down at {ends}: AWS {aws}; Azure instance {k} {az}"));
    }
    if azure_established && let Some(learned) = h.bgp_azure.as_ref().and_then(|b| b.learned.as_ref()) {
        for c in &config.aws.cidrs {
            if !learned.iter().any(|p| p.contains(&IpNet::V4(*c))) {
                out.push(format!(
                    "tunnel {name}: Azure instance {k} has not learned VPC CIDR {c} over BGP (learned: {})",
                    if learned.is_empty() {
                        "nothing".to_owned()
                    } else {
                        learned.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                    }
                ));
            }
        }
    }
    if aws_established && let Some(n) = h.bgp_aws.as_ref().and_then(|b| b.routes_received) {
        let announced = config.azure.address_space.len();
        if (n as usize) < announced {
            out.push(format!(
                "tunnel {name}: AWS accepted {n} route(s) over BGP, but Azure announces {announced} (the VNet's address space {})",
                config.azure.address_space.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ));
        }
    }
}

/// bgp-ha: each VPC CIDR should be learned by Azure over every used tunnel; one learned
/// over fewer leaves those tunnels unused for it (no failover onto them).
fn learned_everywhere(config: &Config, tunnels: &[TunnelReport], out: &mut Diagnoses) {
    let learned = |t: &TunnelReport, c: ipnet::Ipv4Net| {
        t.bgp
            .as_ref()
            .and_then(|b| b.azure.as_ref())
            .and_then(|a| a.learned.as_ref())
            .is_some_and(|l| l.iter().any(|p| p.contains(&IpNet::V4(c))))
    };
    let reported: Vec<&TunnelReport> =
        tunnels.iter().filter(|t| t.bgp.as_ref().and_then(|b| b.azure.as_ref()).is_some_and(|a| a.learned.is_some())).collect();
    for c in &config.aws.cidrs {
        let over: Vec<&str> = reported.iter().filter(|t| learned(t, *c)).map(|t| t.name.as_str()).collect();
        if !over.is_empty() && over.len() < tunnels.len() {
            let missing: Vec<&str> = tunnels.iter().filter(|t| !learned(t, *c)).map(|t| t.name.as_str()).collect();
            out.push(format!(
                "Azure learned VPC CIDR {c} over {} of {} tunnels (not over {}): traffic to it cannot fail over onto those",
                over.len(),
                tunnels.len(),
                missing.join(", ")
            ));
        }
    }
}
