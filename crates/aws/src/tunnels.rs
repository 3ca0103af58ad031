//! The tunnels of a VPN connection as EC2 reports them (`Options.TunnelOptions`, the
//! customer gateway configuration document, `VgwTelemetry`), and their ends for
//! `tunnel_ends`. Tunnels are ordered by outside IP; keys stay [`Psk`]s.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use vpnbridge_core::endpoint::{BgpPeer, BgpState, CloudName, EndpointError, ErrorKind, Tunnel, TunnelEnd, TunnelStatus};
use vpnbridge_core::model::{AwsTunnelOptions, TunnelState, VpnConnection};
use vpnbridge_core::secret::Psk;

use crate::config_xml;
use crate::error::local;
use crate::observe::bad_answer;

/// The tunnels of a VPN connection, by outside IP: from `Options.TunnelOptions` when
/// EC2 returns them, else from the `CustomerGatewayConfiguration` document.
pub(crate) fn tunnels_of(v: &aws_sdk_ec2::types::VpnConnection) -> Result<Vec<AwsTunnelOptions>, EndpointError> {
    let id = v.vpn_connection_id().unwrap_or_default();
    let api: Vec<_> =
        v.options().map(|o| o.tunnel_options()).unwrap_or_default().iter().filter(|t| t.outside_ip_address().is_some()).collect();
    let doc = v.customer_gateway_configuration().filter(|d| !d.trim().is_empty()).map(config_xml::parse).transpose().map_err(bad_answer)?;
    let mut tunnels = Vec::new();
    if !api.is_empty() {
        for t in api {
            let outside_ip: Ipv4Addr = t
                .outside_ip_address()
                .and_then(|i| i.parse().ok())
                .ok_or_else(|| bad_answer(format!("VPN connection {id}: a tunnel's outside address is not IPv4")))?;
            let from_doc = doc.as_ref().and_then(|d| d.iter().find(|c| c.outside_ip == outside_ip));
            let psk = match t.pre_shared_key() {
                Some(k) => Some(Psk::new(k).map_err(|e| bad_answer(format!("VPN connection {id}: the key of tunnel {outside_ip} {e}")))?),
                None => from_doc.and_then(|c| c.psk.clone()),
            };
            tunnels.push(AwsTunnelOptions {
                outside_ip,
                inside_cidr: t
                    .tunnel_inside_cidr()
                    .and_then(|c| c.parse::<Ipv4Net>().ok())
                    .or_else(|| from_doc.and_then(|c| c.inside_cidr)),
                psk,
                ike_versions: t.ike_versions().iter().filter_map(|i| i.value().map(str::to_owned)).collect(),
            });
        }
    } else if let Some(doc) = doc {
        tunnels.extend(doc.into_iter().map(|c| AwsTunnelOptions {
            outside_ip: c.outside_ip,
            inside_cidr: c.inside_cidr,
            psk: c.psk,
            ike_versions: Vec::new(),
        }));
    }
    if v.pre_shared_key_arn().is_some() && tunnels.iter().any(|t| t.psk.is_none()) {
        return Err(local(
            ErrorKind::Permanent,
            "PreSharedKeyInSecretsManager",
            format!(
                "VPN connection {id} keeps its pre-shared keys in AWS Secrets Manager (PreSharedKeyArn), which vpnbridge does not read: \
                 recreate the connection with PreSharedKeyStorage Standard, or set the keys explicitly in the configuration"
            ),
        ));
    }
    tunnels.sort_by_key(|t| t.outside_ip);
    Ok(tunnels)
}

pub(crate) fn end_of(vpn: &VpnConnection, cgw_ip: Ipv4Addr) -> Vec<Box<dyn Tunnel>> {
    vpn.tunnels
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let telemetry = vpn.telemetry.iter().find(|m| m.outside_ip == t.outside_ip);
            Box::new(TunnelEnd {
                cloud: CloudName::Aws,
                outside_ip: t.outside_ip,
                peer_ip: cgw_ip,
                instance: i,
                resource: vpn.id.clone(),
                inside_cidr: t.inside_cidr,
                psk: t.psk.clone(),
                // A dynamic connection's tunnel is UP only while its BGP session is
                // established; EC2 tells no more of the session than the telemetry.
                bgp: (!vpn.static_routes_only).then(|| BgpPeer {
                    local_address: t.inside_cidr.map(vpnbridge_core::bgp::aws_address),
                    peer_address: t.inside_cidr.map(vpnbridge_core::bgp::azure_address),
                    peer_asn: None,
                    state: match telemetry.map(|m| m.status) {
                        Some(TunnelState::Up) => BgpState::Established,
                        Some(TunnelState::Down) => BgpState::Down,
                        _ => BgpState::Unknown,
                    },
                    reason: telemetry.map_or_else(|| "EC2 reports no telemetry for this tunnel".to_owned(), |m| m.status_message.clone()),
                    routes_received: telemetry.and_then(|m| m.accepted_route_count),
                    learned: None,
                }),
                status: match telemetry {
                    Some(m) => {
                        TunnelStatus { state: m.status, reason: m.status_message.clone(), last_change: m.last_status_change.clone() }
                    }
                    None => TunnelStatus {
                        state: TunnelState::Unknown,
                        reason: "EC2 reports no telemetry for this tunnel".into(),
                        last_change: None,
                    },
                },
            }) as Box<dyn Tunnel>
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::vpn_model;

    #[test]
    fn tunnels_from_the_document_when_the_api_has_none() {
        let doc = "<vpn_connection id=\"vpn-1\">\
            <ipsec_tunnel><vpn_gateway><tunnel_outside_address><ip_address>54.1.1.1</ip_address></tunnel_outside_address></vpn_gateway><ike><pre_shared_key>Key_number.two</pre_shared_key></ike></ipsec_tunnel>\
            <ipsec_tunnel><vpn_gateway><tunnel_outside_address><ip_address>3.1.1.1</ip_address></tunnel_outside_address></vpn_gateway><ike><pre_shared_key>Key_number.one</pre_shared_key></ike></ipsec_tunnel>\
            </vpn_connection>";
        let v = aws_sdk_ec2::types::VpnConnection::builder().vpn_connection_id("vpn-1").customer_gateway_configuration(doc).build();
        let t = tunnels_of(&v).unwrap();
        assert_eq!(t.iter().map(|t| t.outside_ip.to_string()).collect::<Vec<_>>(), ["3.1.1.1", "54.1.1.1"]);
        assert_eq!(t[0].psk.as_ref().map(Psk::expose), Some("Key_number.one"));
    }

    #[test]
    fn keys_in_secrets_manager_are_refused() {
        let opts = aws_sdk_ec2::types::VpnConnectionOptions::builder()
            .tunnel_options(aws_sdk_ec2::types::TunnelOption::builder().outside_ip_address("3.1.1.1").build())
            .build();
        let v = aws_sdk_ec2::types::VpnConnection::builder()
            .vpn_connection_id("vpn-1")
            .options(opts)
            .pre_shared_key_arn("arn:aws:secretsmanager:eu-west-1:1:secret:x")
            .build();
        let e = tunnels_of(&v).unwrap_err();
        assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Permanent, "PreSharedKeyInSecretsManager"));
        assert!(e.message.contains("PreSharedKeyStorage Standard"));
    }

    #[test]
    fn api_tunnel_options_are_sorted_and_win_over_the_document() {
        let t = |ip: &str, key: &str| {
            aws_sdk_ec2::types::TunnelOption::builder()
                .outside_ip_address(ip)
                .tunnel_inside_cidr("169.254.21.0/30")
                .pre_shared_key(key)
                .build()
        };
        let opts = aws_sdk_ec2::types::VpnConnectionOptions::builder()
            .static_routes_only(true)
            .tunnel_options(t("52.0.0.9", "Key_number.nine"))
            .tunnel_options(t("52.0.0.10", "Key_number.ten"))
            .build();
        let v = aws_sdk_ec2::types::VpnConnection::builder().vpn_connection_id("vpn-1").options(opts).build();
        let m = vpn_model(&v).unwrap();
        assert!(m.static_routes_only);
        assert_eq!(m.tunnels[0].outside_ip, Ipv4Addr::new(52, 0, 0, 9));
        assert_eq!(m.tunnels[1].psk.as_ref().map(Psk::expose), Some("Key_number.ten"));
    }
}
