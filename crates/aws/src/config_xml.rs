//! The `CustomerGatewayConfiguration` document (AWS's native XML) of a VPN connection:
//! where a tunnel's outside IP, inside CIDR and key come from when the API does not
//! return `Options.TunnelOptions` (older accounts, some emulators).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use vpnbridge_core::secret::Psk;

/// One `ipsec_tunnel` of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigTunnel {
    /// `vpn_gateway/tunnel_outside_address/ip_address`: the AWS endpoint.
    pub outside_ip: Ipv4Addr,
    /// From `vpn_gateway/tunnel_inside_address/{ip_address, network_cidr}`.
    pub inside_cidr: Option<Ipv4Net>,
    /// `ike/pre_shared_key` (redacted in Debug).
    pub psk: Option<Psk>,
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| c.is_element() && c.tag_name().name() == name)
}

/// The trimmed, non-empty text at `path` below `n`.
fn text_at(n: roxmltree::Node<'_, '_>, path: &[&str]) -> Option<String> {
    let mut cur = n;
    for p in path {
        cur = child(cur, p)?;
    }
    cur.text().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

/// Reads every `ipsec_tunnel`, sorted by outside IP (the document's order is not
/// guaranteed).
pub fn parse(doc: &str) -> Result<Vec<ConfigTunnel>, String> {
    let xml = roxmltree::Document::parse(doc).map_err(|e| format!("CustomerGatewayConfiguration is not XML: {e}"))?;
    let root = xml.root_element();
    if root.tag_name().name() != "vpn_connection" {
        return Err(format!("CustomerGatewayConfiguration: root element is <{}>, not <vpn_connection>", root.tag_name().name()));
    }
    let mut tunnels = Vec::new();
    for t in root.children().filter(|c| c.is_element() && c.tag_name().name() == "ipsec_tunnel") {
        let outside = text_at(t, &["vpn_gateway", "tunnel_outside_address", "ip_address"])
            .ok_or("CustomerGatewayConfiguration: an ipsec_tunnel has no vpn_gateway outside address")?;
        let outside_ip = outside.parse().map_err(|_| format!("CustomerGatewayConfiguration: outside address {outside:?} is not IPv4"))?;
        let inside_cidr = match (
            text_at(t, &["vpn_gateway", "tunnel_inside_address", "ip_address"]),
            text_at(t, &["vpn_gateway", "tunnel_inside_address", "network_cidr"]),
        ) {
            (Some(ip), Some(len)) => {
                let ip: Ipv4Addr = ip.parse().map_err(|_| format!("CustomerGatewayConfiguration: inside address {ip:?} is not IPv4"))?;
                let len: u8 =
                    len.parse().map_err(|_| format!("CustomerGatewayConfiguration: network_cidr {len:?} is not a prefix length"))?;
                Some(Ipv4Net::new(ip, len).map_err(|e| format!("CustomerGatewayConfiguration: {e}"))?.trunc())
            }
            _ => None,
        };
        let psk = match text_at(t, &["ike", "pre_shared_key"]) {
            Some(k) => {
                Some(Psk::new(&k).map_err(|e| format!("CustomerGatewayConfiguration: the pre-shared key of tunnel {outside_ip} {e}"))?)
            }
            None => None,
        };
        tunnels.push(ConfigTunnel { outside_ip, inside_cidr, psk });
    }
    tunnels.sort_by_key(|t| t.outside_ip);
    Ok(tunnels)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like the document AWS returns for a static VPN connection (generic
    /// device), trimmed of the long ipsec/ike algorithm lists; tunnels deliberately in
    /// descending outside-IP order.
    const DOC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<vpn_connection id="vpn-0a1b2c3d4e5f67890">
  <customer_gateway_id>cgw-0123456789abcdef0</customer_gateway_id>
  <vpn_gateway_id>vgw-0fedcba9876543210</vpn_gateway_id>
  <vpn_connection_type>ipsec.1</vpn_connection_type>
  <vpn_connection_attributes>NoBGPVPNConnection</vpn_connection_attributes>
  <ipsec_tunnel>
    <customer_gateway>
      <tunnel_outside_address><ip_address>20.0.113.10</ip_address></tunnel_outside_address>
      <tunnel_inside_address>
        <ip_address>169.254.21.6</ip_address>
        <network_mask>255.255.255.252</network_mask>
        <network_cidr>30</network_cidr>
      </tunnel_inside_address>
    </customer_gateway>
    <vpn_gateway>
      <tunnel_outside_address><ip_address>54.239.1.20</ip_address></tunnel_outside_address>
      <tunnel_inside_address>
        <ip_address>169.254.21.5</ip_address>
        <network_mask>255.255.255.252</network_mask>
        <network_cidr>30</network_cidr>
      </tunnel_inside_address>
    </vpn_gateway>
    <ike>
      <authentication_protocol>sha1</authentication_protocol>
      <encryption_protocol>aes-128-cbc</encryption_protocol>
      <lifetime>28800</lifetime>
      <perfect_forward_secrecy>group2</perfect_forward_secrecy>
      <mode>main</mode>
      <pre_shared_key>Second_key.0002</pre_shared_key>
    </ike>
    <ipsec>
      <protocol>esp</protocol>
      <dead_peer_detection><interval>10</interval><retries>3</retries></dead_peer_detection>
    </ipsec>
  </ipsec_tunnel>
  <ipsec_tunnel>
    <customer_gateway>
      <tunnel_outside_address><ip_address>20.0.113.10</ip_address></tunnel_outside_address>
      <tunnel_inside_address>
        <ip_address>169.254.21.2</ip_address>
        <network_mask>255.255.255.252</network_mask>
        <network_cidr>30</network_cidr>
      </tunnel_inside_address>
    </customer_gateway>
    <vpn_gateway>
      <tunnel_outside_address><ip_address>3.120.7.9</ip_address></tunnel_outside_address>
      <tunnel_inside_address>
        <ip_address>169.254.21.1</ip_address>
        <network_mask>255.255.255.252</network_mask>
        <network_cidr>30</network_cidr>
      </tunnel_inside_address>
    </vpn_gateway>
    <ike><pre_shared_key>First_key.0001</pre_shared_key></ike>
  </ipsec_tunnel>
</vpn_connection>"#;

    #[test]
    fn reads_both_tunnels_sorted_by_outside_ip() {
        let t = parse(DOC).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].outside_ip, Ipv4Addr::new(3, 120, 7, 9));
        assert_eq!(t[0].inside_cidr, Some("169.254.21.0/30".parse().unwrap()));
        assert_eq!(t[0].psk.as_ref().map(Psk::expose), Some("First_key.0001"));
        assert_eq!(t[1].outside_ip, Ipv4Addr::new(54, 239, 1, 20));
        assert_eq!(t[1].inside_cidr, Some("169.254.21.4/30".parse().unwrap()));
        assert_eq!(t[1].psk.as_ref().map(Psk::expose), Some("Second_key.0002"));
    }

    #[test]
    fn keys_are_redacted_in_debug() {
        let t = parse(DOC).unwrap();
        assert!(!format!("{t:?}").contains("First_key"));
    }

    #[test]
    fn refuses_broken_documents() {
        assert!(parse("<vpn_connection><ipsec_tunnel>").is_err());
        assert!(parse("<other/>").is_err());
        let no_outside = "<vpn_connection><ipsec_tunnel><vpn_gateway/></ipsec_tunnel></vpn_connection>";
        assert!(parse(no_outside).unwrap_err().contains("outside address"));
        let bad_key = DOC.replace("First_key.0001", "0bad key");
        assert!(parse(&bad_key).is_err());
    }

    #[test]
    fn tolerates_whitespace_around_values() {
        let doc = "<vpn_connection><ipsec_tunnel><vpn_gateway><tunnel_outside_address><ip_address> 52.2.144.13 </ip_address></tunnel_outside_address></vpn_gateway></ipsec_tunnel></vpn_connection>";
        let t = parse(doc).unwrap();
        assert_eq!(t[0].outside_ip, Ipv4Addr::new(52, 2, 144, 13));
        assert_eq!((t[0].inside_cidr, t[0].psk.is_none()), (None, true));
    }
}
