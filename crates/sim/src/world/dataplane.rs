//! A first, simple tunnel data plane: whether each end of each tunnel is up, and the
//! clouds' words for why not.
//!
//! An AWS tunnel (outside IP O, key K) of a VPN connection whose CGW has IP C is UP iff
//! the connection is available and the tunnel not being modified; some Succeeded Azure
//! gateway has an instance whose public IP is C; a Succeeded Connection of that gateway
//! has a Succeeded LocalNetworkGateway whose IP is O; the keys are equal; the IKE
//! versions meet; and the negotiation time (60 s) has passed since the last of these
//! came into place. Azure tries every Connection from both instances; AWS answers only
//! the instance whose IP is the CGW's, so the other instance's end is down by design.

use std::net::Ipv4Addr;

use serde::Serialize;
use vpnbridge_core::model::{AwsState, ProvisioningState};

use super::{AwsCgw, AwsTunnel, AwsVpnConnection, AzConnection, AzGateway, AzLng, World};
use crate::latency::ms;

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

    /// Status of both ends of the pair (AWS tunnel, Azure Connection from instance k),
    /// given that instance k's IP is the CGW's.
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
        let pip_since = g.ip_configurations.get(k).and_then(|c| self.azure.public_ips.get(&c.public_ip_id)).map_or(0, |p| p.phase.since);
        let since =
            [vpn.phase.since, tunnel.since, g.phase.since, conn.phase.since, lng.phase.since, pip_since].into_iter().max().unwrap_or(0);
        if vpn.phase.state != AwsState::Available {
            return LinkStatus::down(format!("IPSEC IS DOWN (VPN connection {} is {:?})", vpn.id, vpn.phase.state), Some(since));
        }
        if tunnel.modifying_until.is_some_and(|u| now < u) {
            return LinkStatus::down("IPSEC IS DOWN (tunnel options are being modified)", Some(since));
        }
        if [g.phase.state, conn.phase.state, lng.phase.state].iter().any(|s| *s != ProvisioningState::Succeeded) {
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
        let up_at = since + ms(self.latency.tunnel_negotiation);
        if now < up_at {
            return LinkStatus {
                state: LinkState::Negotiating,
                message: "IPSEC IS DOWN (IKE negotiation in progress)".to_owned(),
                last_change_ms: Some(since),
            };
        }
        LinkStatus { state: LinkState::Up, message: "IPSEC IS UP".to_owned(), last_change_ms: Some(up_at) }
    }

    /// AWS's view of one of its tunnels (`VgwTelemetry`).
    pub fn aws_tunnel_status(&self, vpn: &AwsVpnConnection, tunnel: &AwsTunnel) -> LinkStatus {
        let Some(cgw) = self.live_vpn_and_cgw(vpn) else {
            return LinkStatus::down("IPSEC IS DOWN (customer gateway missing)", None);
        };
        if vpn.phase.state != AwsState::Available {
            return LinkStatus::down(format!("IPSEC IS DOWN (VPN connection is {:?})", vpn.phase.state), Some(vpn.phase.since));
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

    /// Azure's view of Connection `conn` from gateway instance `k`.
    pub fn azure_tunnel_status(&self, conn: &AzConnection, k: usize) -> LinkStatus {
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
        self.pair_status(vpn, tunnel, g, k, conn, lng)
    }
}
