//! bgp-ha addressing (docs/bgp-ha.md, after Microsoft's "How to connect AWS and Azure
//! using a BGP-enabled VPN gateway"): the APIPA address each end of each tunnel speaks
//! BGP from, and what the gateway, the LocalNetworkGateways and the Connections carry.
//!
//! Each tunnel has a /30 inside CIDR (`aws.tunnel_inside_cidrs`, bgp-ha defaults
//! 169.254.21.0/30, 169.254.22.0/30 for VPN connection 0 and 169.254.21.4/30,
//! 169.254.22.4/30 for VPN connection 1). AWS takes its first host, Azure the second.
//! Gateway instance k carries the Azure addresses of VPN connection k's two tunnels.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::model::LngBgp;
use crate::ops::{ConnectionBgp, GatewayBgp};
use crate::pairing::{INSTANCES, TunnelLayout};

/// BGP hold time both ends use: AWS's sample configurations propose keepalive 10 s and
/// hold 30 s, and the negotiated hold time is the smaller of the two proposals.
pub const HOLD_TIME_SECONDS: u64 = 30;

/// The AWS end's BGP address on a tunnel: the first host of its inside CIDR.
pub fn aws_address(inside: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(inside.network()).wrapping_add(1))
}

/// The Azure end's BGP address on a tunnel: the second host of its inside CIDR.
pub fn azure_address(inside: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(inside.network()).wrapping_add(2))
}

/// The inside CIDR of used tunnel (k, t), when it is pinned.
pub fn inside_cidr(layout: &TunnelLayout, k: u8, t: u8) -> Option<Ipv4Net> {
    layout.pins(k).get(usize::from(t)).copied().flatten()
}

/// The gateway's BGP settings: `azure_asn`, and for each instance k the Azure
/// addresses of VPN connection k's tunnels. `None` if a tunnel has no pinned CIDR
/// (the config always pins them in bgp-ha).
pub fn gateway(layout: &TunnelLayout, azure_asn: u32) -> Option<GatewayBgp> {
    let custom_addresses = (0..INSTANCES)
        .map(|k| (0..layout.per_connection).map(|t| inside_cidr(layout, k, t).map(azure_address)).collect::<Option<Vec<_>>>())
        .collect::<Option<Vec<_>>>()?;
    Some(GatewayBgp { asn: azure_asn, custom_addresses })
}

/// The Connection of tunnel (k, t): entry k is the tunnel's Azure address; the other
/// instance's entry is that instance's first custom address (Azure wants one entry per
/// ipConfiguration on an active-active gateway; Microsoft's table: "Not used (select
/// 169.254.21.6)").
pub fn connection(layout: &TunnelLayout, k: u8, t: u8) -> Option<ConnectionBgp> {
    let own = azure_address(inside_cidr(layout, k, t)?);
    let custom_addresses = (0..INSTANCES)
        .map(|i| if i == k { Some(own) } else { inside_cidr(layout, i, 0).map(azure_address) })
        .collect::<Option<Vec<_>>>()?;
    Some(ConnectionBgp { custom_addresses })
}

/// The LocalNetworkGateway of tunnel (k, t): the AWS end's address and the VGW's ASN.
pub fn local_network_gateway(layout: &TunnelLayout, k: u8, t: u8, amazon_asn: u32) -> Option<LngBgp> {
    Some(LngBgp { asn: amazon_asn, peering_address: aws_address(inside_cidr(layout, k, t)?) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> TunnelLayout {
        let cidrs: Vec<Ipv4Net> =
            ["169.254.21.0/30", "169.254.22.0/30", "169.254.21.4/30", "169.254.22.4/30"].iter().map(|s| s.parse().unwrap()).collect();
        TunnelLayout::new(2, &cidrs)
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn the_layout_is_microsofts_table() {
        let l = layout();
        let g = gateway(&l, 65000).unwrap();
        assert_eq!(g.custom_addresses, vec![vec![ip("169.254.21.2"), ip("169.254.22.2")], vec![ip("169.254.21.6"), ip("169.254.22.6")]]);
        // Tunnels to instance 0 name 169.254.21.6 for instance 1, and the other way round.
        assert_eq!(connection(&l, 0, 1).unwrap().custom_addresses, vec![ip("169.254.22.2"), ip("169.254.21.6")]);
        assert_eq!(connection(&l, 1, 0).unwrap().custom_addresses, vec![ip("169.254.21.2"), ip("169.254.21.6")]);
        let lng = local_network_gateway(&l, 1, 1, 64512).unwrap();
        assert_eq!((lng.asn, lng.peering_address), (64512, ip("169.254.22.5")));
    }

    #[test]
    fn unpinned_tunnels_have_no_bgp_layout() {
        let l = TunnelLayout::new(2, &[]);
        assert!(gateway(&l, 65000).is_none());
        assert!(connection(&l, 0, 0).is_none());
    }
}
