//! BGP over the tunnels (bgp-ha): sessions, the routes each end learns, and the VPC
//! routes the VGW propagates.
//!
//! A session runs over a link (see the data plane) whose AWS VPN connection is dynamic
//! (`StaticRoutesOnly = false`) and whose Azure Connection has `enableBgp`. AWS speaks
//! from the first host of the tunnel's inside CIDR with the VGW's Amazon ASN and
//! expects its peer at the second host with the customer gateway's ASN; Azure speaks
//! from the address the Connection's `gatewayCustomBgpIpAddresses` gives the instance
//! (the instance's default address in the GatewaySubnet when it gives none) with the
//! gateway's ASN, and expects the LocalNetworkGateway's `bgpSettings` peer. The session
//! is established [`LatencyTable::bgp_establish`](crate::LatencyTable) after the
//! tunnel came up, when all of these agree; otherwise it stays down with the reason.
//!
//! Routes: Azure announces its VNet's address space; the VGW announces the CIDRs of the
//! VPC it is attached to. A link that breaks takes its session with it: each end drops
//! it, and the routes learned over it, after the hold time (30 s), or at once when its
//! own side changed; until then it still sends traffic into the dead tunnel.

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use vpnbridge_core::bgp::{HOLD_TIME_SECONDS, aws_address, azure_address};
use vpnbridge_core::model::{AttachmentState, AwsState};

use super::dataplane::{Link, LinkRecord};
use super::{AwsRoute, AwsRouteTable, AwsTunnel, AwsVpnConnection, AzConnection, AzGateway, World};

const HOLD_MS: u64 = HOLD_TIME_SECONDS * 1000;

/// One end's view of a BGP session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpEnd {
    pub established: bool,
    /// Why it is down (or `"Established"`), in words a user can act on.
    pub message: String,
    /// Virtual time of the last change, when known.
    pub since: Option<u64>,
    /// The address this end speaks from, and the neighbor it expects.
    pub local: Option<Ipv4Addr>,
    pub neighbor: Option<Ipv4Addr>,
    /// The ASN this end expects of its neighbor.
    pub neighbor_asn: Option<u32>,
    /// The prefixes learned over the session (empty while it is down).
    pub learned: Vec<IpNet>,
}

impl World {
    /// The address Azure instance `k` speaks BGP from on Connection `conn`.
    pub fn azure_bgp_address(&self, g: &AzGateway, k: usize, conn: &AzConnection) -> Option<Ipv4Addr> {
        let cfg = g.ip_configurations.get(k)?;
        if let Some(c) = conn.custom_bgp_addresses.iter().find(|c| c.ip_configuration_id.eq_ignore_ascii_case(&cfg.id)) {
            return Some(c.address);
        }
        g.bgp_peering_addresses
            .iter()
            .find(|p| p.ip_configuration_id.eq_ignore_ascii_case(&cfg.id))
            .and_then(|p| p.default.first().copied())
    }

    /// Whether the two ends of a link agree on BGP: `None` when neither end speaks BGP
    /// over it, else `Ok` or the reason the session cannot come up.
    pub(super) fn bgp_agreement(&self, l: &Link<'_>) -> Option<Result<(), String>> {
        let aws_speaks = !l.vpn.static_routes_only;
        let azure_speaks = l.conn.enable_bgp && l.gateway.enable_bgp;
        match (aws_speaks, azure_speaks) {
            (false, false) => return None,
            (true, false) => {
                return Some(Err(format!(
                    "Azure connection {} does not speak BGP (enableBgp is off), but VPN connection {} is dynamic",
                    l.conn.name, l.vpn.id
                )));
            }
            (false, true) => {
                return Some(Err(format!(
                    "VPN connection {} uses static routes only (no BGP), but Azure connection {} enables BGP",
                    l.vpn.id, l.conn.name
                )));
            }
            (true, true) => {}
        }
        let inside = l.tunnel.inside_cidr;
        let (aws_ip, want_azure_ip) = (aws_address(inside), azure_address(inside));
        let Some(azure_ip) = self.azure_bgp_address(l.gateway, l.instance, l.conn) else {
            return Some(Err(format!("Azure gateway {} instance {} has no BGP address", l.gateway.name, l.instance)));
        };
        if azure_ip != want_azure_ip {
            return Some(Err(format!(
                "wrong APIPA address: Azure instance {} speaks BGP from {azure_ip} on connection {}, but AWS tunnel {} (inside CIDR {inside}) expects its peer at {want_azure_ip}",
                l.instance, l.conn.name, l.tunnel.outside_ip
            )));
        }
        let Some(peer) = l.lng.bgp else {
            return Some(Err(format!("local network gateway {} has no BGP peer (bgpSettings)", l.lng.name)));
        };
        if peer.peering_address != aws_ip {
            return Some(Err(format!(
                "inside CIDR mismatch: local network gateway {} expects its BGP peer at {}, but AWS tunnel {} speaks from {aws_ip} (inside CIDR {inside})",
                l.lng.name, peer.peering_address, l.tunnel.outside_ip
            )));
        }
        let cgw_asn = self.aws.customer_gateways.get(&l.vpn.customer_gateway_id).map(|c| c.bgp_asn);
        if cgw_asn.is_some() && cgw_asn != l.gateway.asn {
            return Some(Err(format!(
                "wrong ASN: AWS expects ASN {} (customer gateway {}), but Azure gateway {} has ASN {}",
                cgw_asn.unwrap_or_default(),
                l.vpn.customer_gateway_id,
                l.gateway.name,
                l.gateway.asn.map_or("(none)".to_owned(), |a| a.to_string())
            )));
        }
        let vgw_asn = self.aws.vpn_gateways.get(&l.vpn.vpn_gateway_id).map(|v| v.amazon_asn);
        if vgw_asn.is_some_and(|a| a != peer.asn) {
            return Some(Err(format!(
                "wrong ASN: local network gateway {} expects ASN {}, but virtual private gateway {} has Amazon ASN {}",
                l.lng.name,
                peer.asn,
                l.vpn.vpn_gateway_id,
                vgw_asn.unwrap_or_default()
            )));
        }
        Some(Ok(()))
    }

    /// The prefixes Azure gateway `g` announces: its VNet's address space.
    fn azure_announces(&self, g: &AzGateway) -> Vec<IpNet> {
        let subnets: Vec<&str> = g.ip_configurations.iter().map(|c| c.subnet_id.as_str()).collect();
        self.azure
            .virtual_networks
            .values()
            .find(|v| v.subnets.iter().any(|s| subnets.contains(&s.id.as_str())))
            .map(|v| v.address_space.iter().map(|p| IpNet::V4(*p)).collect())
            .unwrap_or_default()
    }

    /// The prefixes a VGW announces: the CIDRs of the VPC it is attached to.
    fn vgw_announces(&self, vgw_id: &str) -> Vec<IpNet> {
        let Some(v) = self.aws.vpn_gateways.get(vgw_id).filter(|v| v.phase.state == AwsState::Available) else { return Vec::new() };
        let Some(a) = v.live_attachment().filter(|a| a.phase.state == AttachmentState::Attached) else { return Vec::new() };
        self.aws.vpcs.get(&a.vpc_id).map(|vpc| vpc.cidrs.iter().map(|c| IpNet::V4(*c)).collect()).unwrap_or_default()
    }

    /// Whether one end of a broken link still holds the session at `now`: it was
    /// established before the break, and the end has not yet noticed (hold time, or its
    /// dead peer detection if that comes first; at once if its own side changed).
    fn still_held(&self, r: &LinkRecord, detects_at: u64) -> bool {
        let Some(broke) = r.broke_at else { return false };
        r.bgp_at.is_some_and(|b| b <= broke) && self.now_ms < detects_at.min(broke.saturating_add(HOLD_MS))
    }

    /// AWS's view of the BGP session over one of its tunnels; `None` for a static VPN
    /// connection.
    pub fn aws_bgp_end(&self, vpn: &AwsVpnConnection, tunnel: &AwsTunnel) -> Option<BgpEnd> {
        if vpn.static_routes_only {
            return None;
        }
        let local = Some(aws_address(tunnel.inside_cidr));
        let neighbor = Some(azure_address(tunnel.inside_cidr));
        let neighbor_asn = self.aws.customer_gateways.get(&vpn.customer_gateway_id).map(|c| c.bgp_asn);
        let announced = || {
            let g = self.links().into_iter().find(|l| l.tunnel.outside_ip == tunnel.outside_ip).map(|l| l.gateway.id.clone());
            g.and_then(|id| self.azure.gateways.get(&id)).map(|g| self.azure_announces(g)).unwrap_or_default()
        };
        let end = |established, message: String, since| BgpEnd {
            established,
            message,
            since,
            local,
            neighbor,
            neighbor_asn,
            learned: Vec::new(),
        };
        let mut why = None;
        for l in self.links().into_iter().filter(|l| l.tunnel.outside_ip == tunnel.outside_ip) {
            let s = self.link_status(&l);
            match self.bgp_agreement(&l) {
                Some(Ok(())) if s.is_up() => {
                    let at = s.last_change_ms.unwrap_or(self.now_ms).saturating_add(crate::latency::ms(self.latency.bgp_establish));
                    if self.now_ms >= at {
                        return Some(BgpEnd { learned: announced(), ..end(true, "Established".to_owned(), Some(at)) });
                    }
                    why = Some(("BGP session establishing".to_owned(), s.last_change_ms));
                }
                Some(Err(e)) => why = why.or(Some((e, s.last_change_ms))),
                _ => {}
            }
        }
        if let Some(r) = self.dataplane.links.values().find(|r| r.outside_ip == tunnel.outside_ip && self.still_held(r, r.aws_detects_at)) {
            return Some(BgpEnd { learned: announced(), ..end(true, "Established".to_owned(), r.bgp_at) });
        }
        let (message, since) = why.unwrap_or_else(|| ("IPsec is down".to_owned(), None));
        Some(end(false, message, since))
    }

    /// Azure's view of the BGP session over Connection `conn` from instance `k`;
    /// `None` when the Connection does not enable BGP.
    pub fn azure_bgp_end(&self, conn: &AzConnection, k: usize) -> Option<BgpEnd> {
        if !conn.enable_bgp {
            return None;
        }
        let g = self.azure.gateways.get(&conn.gateway_id)?;
        let lng = self.azure.local_network_gateways.get(&conn.local_network_gateway_id)?;
        let local = self.azure_bgp_address(g, k, conn);
        let (neighbor, neighbor_asn) = (lng.bgp.map(|b| b.peering_address), lng.bgp.map(|b| b.asn));
        let end = |established, message: String, since| BgpEnd {
            established,
            message,
            since,
            local,
            neighbor,
            neighbor_asn,
            learned: Vec::new(),
        };
        let link = self.links().into_iter().find(|l| l.conn.id == conn.id && l.instance == k);
        let Some(l) = link else {
            let r = self
                .dataplane
                .links
                .values()
                .find(|r| r.connection_id == conn.id && r.instance == k && self.still_held(r, r.azure_detects_at));
            if let Some(r) = r {
                let learned = self.vgw_of_tunnel(r.outside_ip).map(|v| self.vgw_announces(&v)).unwrap_or_default();
                return Some(BgpEnd { learned, ..end(true, "Connected".to_owned(), r.bgp_at) });
            }
            return Some(end(false, "Connecting (no tunnel to the peer from this instance)".to_owned(), None));
        };
        let s = self.link_status(&l);
        match self.bgp_agreement(&l) {
            Some(Ok(())) if s.is_up() => {
                let at = s.last_change_ms.unwrap_or(self.now_ms).saturating_add(crate::latency::ms(self.latency.bgp_establish));
                if self.now_ms >= at {
                    return Some(BgpEnd {
                        learned: self.vgw_announces(&l.vpn.vpn_gateway_id),
                        ..end(true, "Connected".to_owned(), Some(at))
                    });
                }
                Some(end(false, "Connecting (BGP session establishing)".to_owned(), s.last_change_ms))
            }
            agreement => {
                let r = self.dataplane.links.get(&l.key()).filter(|r| self.still_held(r, r.azure_detects_at));
                if let Some(r) = r {
                    return Some(BgpEnd {
                        learned: self.vgw_announces(&l.vpn.vpn_gateway_id),
                        ..end(true, "Connected".to_owned(), r.bgp_at)
                    });
                }
                let why = match agreement {
                    Some(Err(e)) => e,
                    _ => "IPsec is down".to_owned(),
                };
                Some(end(false, format!("Connecting ({why})"), s.last_change_ms))
            }
        }
    }

    /// The VGW of the VPN connection that owns AWS tunnel `ip`.
    fn vgw_of_tunnel(&self, ip: Ipv4Addr) -> Option<String> {
        self.aws.vpn_connections.values().find(|v| v.tunnels.iter().any(|t| t.outside_ip == ip)).map(|v| v.vpn_gateway_id.clone())
    }

    /// The prefixes VGW `vgw_id` has learned by BGP, over any tunnel AWS believes
    /// established.
    pub fn vgw_learned(&self, vgw_id: &str) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = self
            .aws
            .vpn_connections
            .values()
            .filter(|v| v.vpn_gateway_id == vgw_id && v.carries_traffic())
            .flat_map(|v| v.tunnels.iter().filter_map(move |t| self.aws_bgp_end(v, t)))
            .filter(|e| e.established)
            .flat_map(|e| e.learned)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The routes a table learns by propagation (`Origin = EnableVgwRoutePropagation`):
    /// for each VGW it propagates that is attached to its VPC, the prefixes the VGW
    /// learned by BGP, except those a static route of the table already covers exactly.
    pub fn propagated_routes(&self, table: &AwsRouteTable) -> Vec<AwsRoute> {
        let mut out = Vec::new();
        for vgw_id in &table.propagating_vgws {
            let attached = self.aws.vpn_gateways.get(vgw_id).is_some_and(|v| {
                v.live_attachment().is_some_and(|a| a.vpc_id == table.vpc_id && a.phase.state == AttachmentState::Attached)
            });
            if !attached {
                continue;
            }
            for p in self.vgw_learned(vgw_id) {
                if !table.routes.iter().any(|r| r.destination == p) && !out.iter().any(|r: &AwsRoute| r.destination == p) {
                    out.push(AwsRoute { destination: p, target: vgw_id.clone(), origin: "EnableVgwRoutePropagation".to_owned() });
                }
            }
        }
        out
    }
}

/// Length of the longest prefix in `prefixes` containing `ip`.
pub(super) fn longest_match(prefixes: &[IpNet], ip: Ipv4Addr) -> Option<u8> {
    prefixes.iter().filter(|p| p.contains(&IpNet::V4(Ipv4Net::from(ip)))).map(IpNet::prefix_len).max()
}
