//! The pairing rule (docs/design.md §1): instance k of the Azure gateway (its k-th
//! ipConfiguration and the public IP that ipConfiguration references) <-> customer
//! gateway k <-> VPN connection k; one LocalNetworkGateway and one Connection per AWS
//! tunnel outside IP that is used, carrying that tunnel's PSK. Azure also tries each
//! Connection from the other instance; AWS refuses it, so that tunnel is down by design.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::endpoint::{BgpPeer, BgpState, CloudName, Tunnel, TunnelStatus};
use crate::model::{
    AwsObserved, AwsTunnelOptions, AzureObserved, Connection, CustomerGateway, LocalNetworkGateway, Owner, Role, TunnelState,
    VpnConnection, role_of,
};
use crate::ops::TunnelPins;

/// Number of gateway instances in active-active (and so of CGWs and VPN connections).
pub const INSTANCES: u8 = 2;

/// Resource names derived from the deployment name (Azure names are the idempotency
/// keys of its PUTs; AWS resources are found by their role tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    deployment: String,
}

impl Names {
    pub fn new(deployment: &str) -> Self {
        Self { deployment: deployment.to_owned() }
    }
    pub fn public_ip(&self, k: u8) -> String {
        format!("{}-pip-{k}", self.deployment)
    }
    pub fn gateway(&self) -> String {
        format!("{}-vpngw", self.deployment)
    }
    pub fn local_network_gateway(&self, k: u8, t: u8) -> String {
        format!("{}-lng-{k}-{t}", self.deployment)
    }
    pub fn connection(&self, k: u8, t: u8) -> String {
        format!("{}-cn-{k}-{t}", self.deployment)
    }
    /// The CGW's DeviceName: unique, so CreateCustomerGateway never hands back a
    /// foreign CGW that happens to share IP and ASN.
    pub fn cgw_device_name(&self, k: u8) -> String {
        format!("vpnbridge-{}-cgw-{k}", self.deployment)
    }
}

/// One used tunnel as the design wants it: which resources carry it and which gateway
/// instance is expected to bring it up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TunnelSlot {
    /// AWS VPN connection index (= CGW index = Azure instance expected up).
    pub connection: u8,
    /// Tunnel index within the VPN connection (by outside IP).
    pub tunnel: u8,
    pub local_network_gateway: String,
    pub azure_connection: String,
    /// The gateway instance whose IP is CGW k's: the only one AWS accepts.
    pub expected_up_instance: u8,
    /// The other instance: Azure tries it too; AWS refuses it by design.
    pub expected_down_instance: u8,
}

/// The used tunnels of a deployment, in order.
pub fn slots(deployment: &str, tunnels_per_connection: u8) -> Vec<TunnelSlot> {
    let names = Names::new(deployment);
    let mut out = Vec::new();
    for k in 0..INSTANCES {
        for t in 0..tunnels_per_connection {
            out.push(TunnelSlot {
                connection: k,
                tunnel: t,
                local_network_gateway: names.local_network_gateway(k, t),
                azure_connection: names.connection(k, t),
                expected_up_instance: k,
                expected_down_instance: INSTANCES - 1 - k,
            });
        }
    }
    out
}

/// A used tunnel joined across both clouds from what was observed. Missing pieces are
/// `None`: the deployment is incomplete or drifted there.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ObservedTunnel {
    pub slot: TunnelSlot,
    /// Public IP of the instance expected up (the k-th ipConfiguration's public IP).
    pub azure_instance_ip: Option<Ipv4Addr>,
    pub customer_gateway_id: Option<String>,
    pub customer_gateway_ip: Option<Ipv4Addr>,
    pub vpn_connection_id: Option<String>,
    /// AWS tunnel outside IP.
    pub aws_outside_ip: Option<Ipv4Addr>,
    pub lng_gateway_ip: Option<Ipv4Addr>,
    pub azure_connection_state: Option<String>,
    /// Everything that does not line up, in the user's words.
    pub problems: Vec<String>,
}

/// The k-th instance's public IP: the public IP its ipConfiguration references, never
/// the order in which a list call returned the public IPs.
pub fn instance_ip(azure: &AzureObserved, k: u8) -> Option<Ipv4Addr> {
    let gw = azure.vpn_gateway.as_ref()?;
    let cfg = gw.ip_configurations.get(usize::from(k))?;
    azure.public_ips.iter().find(|p| p.id.eq_ignore_ascii_case(&cfg.public_ip_id))?.ip
}

/// Our (live) resource with `role`, if any.
pub fn customer_gateway<'a>(owner: &Owner, aws: &'a AwsObserved, k: u8) -> Option<&'a CustomerGateway> {
    aws.customer_gateways.iter().filter(|c| !c.state.is_gone()).find(|c| role_of(owner, &c.tags) == Some(Role::CustomerGateway(k)))
}

pub fn vpn_connection<'a>(owner: &Owner, aws: &'a AwsObserved, k: u8) -> Option<&'a VpnConnection> {
    aws.vpn_connections.iter().filter(|c| !c.state.is_gone()).find(|c| role_of(owner, &c.tags) == Some(Role::VpnConnection(k)))
}

pub fn local_network_gateway<'a>(azure: &'a AzureObserved, name: &str) -> Option<&'a LocalNetworkGateway> {
    azure.local_network_gateways.iter().find(|l| l.name == name)
}

pub fn connection<'a>(azure: &'a AzureObserved, name: &str) -> Option<&'a Connection> {
    azure.connections.iter().find(|c| c.name == name)
}

/// The tunnel that serves used slot `slot` of a VPN connection whose slots pin the
/// inside CIDRs `pins`.
///
/// EC2 does not promise that `TunnelOptions[0]` lands on the tunnel with the lower
/// outside IP (terraform-provider-aws #5809, #19079), so tunnels are matched **by
/// value**: a slot with a pinned CIDR is the tunnel that holds that CIDR; the slots
/// left over take the tunnels left over in outside-IP order. A correct deployment is
/// therefore never read as "swapped", whatever order EC2 chose.
pub fn tunnel_for_slot(tunnels: &[AwsTunnelOptions], slot: u8, pins: TunnelPins) -> Option<&AwsTunnelOptions> {
    let mut by_ip: Vec<&AwsTunnelOptions> = tunnels.iter().collect();
    by_ip.sort_by_key(|t| t.outside_ip);
    let mut taken: [Option<usize>; 2] = [None, None];
    for (s, pin) in pins.iter().enumerate() {
        if let Some(pin) = pin {
            taken[s] = by_ip.iter().position(|t| t.inside_cidr == Some(*pin));
        }
    }
    for s in 0..2 {
        if taken[s].is_none() {
            taken[s] = (0..by_ip.len()).find(|i| !taken.contains(&Some(*i)));
        }
    }
    taken.get(usize::from(slot)).copied().flatten().map(|i| by_ip[i])
}

/// Slot t of a VPN connection (see [`tunnel_for_slot`]).
pub fn aws_tunnel(vpn: &VpnConnection, t: u8, pins: TunnelPins) -> Option<&AwsTunnelOptions> {
    tunnel_for_slot(&vpn.tunnels, t, pins)
}

/// How the used tunnels are laid out: how many per VPN connection, and the inside
/// CIDRs pinned for each slot (`aws.tunnel_inside_cidrs`, one per used tunnel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TunnelLayout {
    pub per_connection: u8,
    /// By VPN connection, then slot.
    pub pins: [TunnelPins; INSTANCES as usize],
}

impl TunnelLayout {
    /// `per_connection` tunnels per connection and `inside_cidrs` in tunnel order
    /// (connection 0's used tunnels, then connection 1's); an empty list pins nothing.
    pub fn new(per_connection: u8, inside_cidrs: &[Ipv4Net]) -> Self {
        let mut pins = [[None; 2]; INSTANCES as usize];
        for (k, row) in pins.iter_mut().enumerate() {
            for (t, pin) in row.iter_mut().enumerate().take(usize::from(per_connection)) {
                *pin = inside_cidrs.get(k * usize::from(per_connection) + t).copied();
            }
        }
        Self { per_connection, pins }
    }

    /// The pins of VPN connection `k`.
    pub fn pins(&self, k: u8) -> TunnelPins {
        self.pins.get(usize::from(k)).copied().unwrap_or_default()
    }
}

/// Joins the two clouds' observed state into the used tunnels and says what is off.
pub fn join(owner: &Owner, layout: &TunnelLayout, azure: &AzureObserved, aws: &AwsObserved) -> Vec<ObservedTunnel> {
    slots(&owner.deployment, layout.per_connection)
        .into_iter()
        .map(|slot| {
            let k = slot.connection;
            let mut problems = Vec::new();
            let azure_instance_ip = instance_ip(azure, k);
            let cgw = customer_gateway(owner, aws, k);
            let vpn = vpn_connection(owner, aws, k);
            let aws_t = vpn.and_then(|v| aws_tunnel(v, slot.tunnel, layout.pins(k)));
            let lng = local_network_gateway(azure, &slot.local_network_gateway);
            let cn = connection(azure, &slot.azure_connection);
            if let (Some(ip), Some(c)) = (azure_instance_ip, cgw)
                && ip != c.ip
            {
                problems.push(format!("customer gateway {} has IP {} but Azure instance {k} has {ip}", c.id, c.ip));
            }
            if let (Some(c), Some(v)) = (cgw, vpn)
                && v.customer_gateway_id != c.id
            {
                problems.push(format!("VPN connection {} uses {} instead of customer gateway {}", v.id, v.customer_gateway_id, c.id));
            }
            if let (Some(t), Some(l)) = (aws_t, lng)
                && t.outside_ip != l.gateway_ip
            {
                problems.push(format!(
                    "LocalNetworkGateway {} points at {} but the AWS tunnel's outside IP is {}",
                    l.name, l.gateway_ip, t.outside_ip
                ));
            }
            if let (Some(t), Some(c)) = (aws_t, cn)
                && let (Some(a), Some(b)) = (&t.psk, &c.shared_key)
                && a != b
            {
                problems.push(format!("PSK mismatch between AWS tunnel {} and Azure connection {}", t.outside_ip, c.name));
            }
            for (what, missing) in [
                ("Azure gateway instance", azure_instance_ip.is_none()),
                ("customer gateway", cgw.is_none()),
                ("VPN connection", vpn.is_none()),
                ("LocalNetworkGateway", lng.is_none()),
                ("Azure connection", cn.is_none()),
            ] {
                if missing {
                    problems.push(format!("{what} missing"));
                }
            }
            ObservedTunnel {
                azure_instance_ip,
                customer_gateway_id: cgw.map(|c| c.id.clone()),
                customer_gateway_ip: cgw.map(|c| c.ip),
                vpn_connection_id: vpn.map(|v| v.id.clone()),
                aws_outside_ip: aws_t.map(|t| t.outside_ip),
                lng_gateway_ip: lng.map(|l| l.gateway_ip),
                azure_connection_state: cn.map(|c| format!("{:?}", c.state)),
                problems,
                slot,
            }
        })
        .collect()
}

/// One used tunnel's ends as each cloud reports them.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TunnelHealth {
    pub slot: TunnelSlot,
    /// The AWS end (`VgwTelemetry` of the tunnel's outside IP).
    pub aws: Option<TunnelStatus>,
    /// The Azure end on the instance whose IP is the CGW's: must be up.
    pub azure_expected: Option<TunnelStatus>,
    /// The Azure end on the other instance: down by design (AWS refuses it).
    pub azure_other: Option<TunnelStatus>,
    /// The BGP session over the tunnel (bgp-ha), as each end reports it: AWS's
    /// telemetry, and Azure's peer status on the instance expected up.
    pub bgp_aws: Option<BgpPeer>,
    pub bgp_azure: Option<BgpPeer>,
}

impl TunnelHealth {
    /// Both ends of the tunnel that should carry traffic are up, and so is its BGP
    /// session where an end reports one (AWS reports a dynamic tunnel UP only while its
    /// session is established).
    pub fn is_up(&self) -> bool {
        let up = |s: &Option<TunnelStatus>| s.as_ref().is_some_and(|s| s.state == TunnelState::Up);
        let bgp = self.bgp_azure.as_ref().is_none_or(|b| b.state != BgpState::Down);
        up(&self.aws) && up(&self.azure_expected) && bgp
    }
}

/// Matches each used tunnel with the ends both clouds report.
pub fn health(joined: &[ObservedTunnel], ends: &[Box<dyn Tunnel>]) -> Vec<TunnelHealth> {
    joined
        .iter()
        .map(|t| {
            let slot = &t.slot;
            let aws_end = t.aws_outside_ip.and_then(|ip| ends.iter().find(|e| e.cloud() == CloudName::Aws && e.outside_ip() == ip));
            let azure = |instance: u8| {
                ends.iter().find(|e| {
                    e.cloud() == CloudName::Azure && e.resource() == slot.azure_connection && e.instance() == usize::from(instance)
                })
            };
            let expected = azure(slot.expected_up_instance);
            TunnelHealth {
                slot: slot.clone(),
                aws: aws_end.map(|e| e.status().clone()),
                azure_expected: expected.map(|e| e.status().clone()),
                azure_other: azure(slot.expected_down_instance).map(|e| e.status().clone()),
                bgp_aws: aws_end.and_then(|e| e.bgp().cloned()),
                bgp_azure: expected.and_then(|e| e.bgp().cloned()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_ha_uses_tunnel_one_of_each_connection() {
        let s = slots("x", 1);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].connection, s[0].tunnel, s[0].expected_up_instance, s[0].expected_down_instance), (0, 0, 0, 1));
        assert_eq!((s[1].connection, s[1].tunnel, s[1].expected_up_instance, s[1].expected_down_instance), (1, 0, 1, 0));
        assert_eq!(s[1].local_network_gateway, "x-lng-1-0");
    }

    fn tunnel(ip: [u8; 4], cidr: &str) -> AwsTunnelOptions {
        AwsTunnelOptions { outside_ip: Ipv4Addr::from(ip), inside_cidr: cidr.parse().ok(), psk: None, ike_versions: Vec::new() }
    }

    /// EC2 may put TunnelOptions[0] on the higher outside IP: the slots follow the
    /// pinned CIDRs, not the order, so a correct deployment is never "swapped".
    #[test]
    fn slots_follow_pinned_cidrs_not_the_order_ec2_chose() {
        let a: Ipv4Net = "169.254.21.0/30".parse().unwrap();
        let b: Ipv4Net = "169.254.22.0/30".parse().unwrap();
        let swapped = [tunnel([3, 0, 0, 1], "169.254.22.0/30"), tunnel([52, 0, 0, 1], "169.254.21.0/30")];
        assert_eq!(tunnel_for_slot(&swapped, 0, [Some(a), Some(b)]).unwrap().outside_ip, Ipv4Addr::new(52, 0, 0, 1));
        assert_eq!(tunnel_for_slot(&swapped, 1, [Some(a), Some(b)]).unwrap().outside_ip, Ipv4Addr::new(3, 0, 0, 1));
        // One used tunnel: the one holding the pin, even on the higher IP.
        assert_eq!(tunnel_for_slot(&swapped, 0, [Some(a), None]).unwrap().outside_ip, Ipv4Addr::new(52, 0, 0, 1));
        // Nothing pinned (or a pin nobody holds yet): outside-IP order.
        assert_eq!(tunnel_for_slot(&swapped, 0, [None, None]).unwrap().outside_ip, Ipv4Addr::new(3, 0, 0, 1));
        let c: Ipv4Net = "169.254.30.0/30".parse().unwrap();
        assert_eq!(tunnel_for_slot(&swapped, 0, [Some(c), Some(a)]).unwrap().outside_ip, Ipv4Addr::new(3, 0, 0, 1));
        assert_eq!(tunnel_for_slot(&swapped, 1, [Some(c), Some(a)]).unwrap().outside_ip, Ipv4Addr::new(52, 0, 0, 1));
        assert!(tunnel_for_slot(&swapped[..1], 1, [None, None]).is_none());
    }

    /// `aws.tunnel_inside_cidrs` is one /30 per *used* tunnel, in tunnel order.
    #[test]
    fn inside_cidrs_pin_the_used_tunnels() {
        let cidrs: Vec<Ipv4Net> =
            ["169.254.10.0/30", "169.254.11.0/30", "169.254.12.0/30", "169.254.13.0/30"].iter().map(|c| c.parse().unwrap()).collect();
        let one = TunnelLayout::new(1, &cidrs[..2]);
        assert_eq!(one.pins(0), [Some(cidrs[0]), None]);
        assert_eq!(one.pins(1), [Some(cidrs[1]), None]);
        let two = TunnelLayout::new(2, &cidrs);
        assert_eq!(two.pins(0), [Some(cidrs[0]), Some(cidrs[1])]);
        assert_eq!(two.pins(1), [Some(cidrs[2]), Some(cidrs[3])]);
        assert_eq!(TunnelLayout::new(2, &[]).pins(1), [None, None]);
    }

    #[test]
    fn four_tunnels_with_two_per_connection() {
        let s = slots("x", 2);
        assert_eq!(s.len(), 4);
        assert!(s.iter().filter(|t| t.connection == 1).all(|t| t.expected_up_instance == 1));
    }
}
