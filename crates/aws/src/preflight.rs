//! Checks on the AWS account before anything is created: the quotas a deployment will
//! use, and whether the VPC lets the ping test's ICMP in from Azure.

use ipnet::{IpNet, Ipv4Net};
use vpnbridge_core::endpoint::EndpointError;

use crate::error::from_sdk;
use crate::{AwsEndpoint, filter};

/// What a deployment adds: new VGWs and CGWs in the region, VPN connections on its VGW.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuotaNeed {
    pub vpn_gateways: u32,
    pub customer_gateways: u32,
    /// VPN connections the deployment's VGW will hold in total after apply.
    pub vpn_connections_per_vgw: u32,
}

/// The quotas to check against; [`Quotas::default`] holds AWS's defaults (accounts can
/// have them raised in Service Quotas).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub vpn_gateways: u32,
    pub customer_gateways: u32,
    pub vpn_connections_per_vgw: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self { vpn_gateways: 5, customer_gateways: 50, vpn_connections_per_vgw: 10 }
    }
}

/// The findings: errors stop an apply, warnings are printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preflight {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// The inbound rules of security groups as (protocol, from port, IPv4 ranges), the
/// shape [`allows_icmp_from`] reads.
pub(crate) fn inbound_rules(groups: &[aws_sdk_ec2::types::SecurityGroup]) -> Vec<(String, Option<i32>, Vec<Ipv4Net>)> {
    groups
        .iter()
        .flat_map(|g| g.ip_permissions())
        .map(|p| {
            (
                p.ip_protocol().unwrap_or_default().to_owned(),
                p.from_port(),
                p.ip_ranges().iter().filter_map(|r| r.cidr_ip()?.parse().ok()).collect(),
            )
        })
        .collect()
}

pub(crate) fn allows_icmp_from(protocol: &str, from_port: Option<i32>, ranges: &[Ipv4Net], prefix: Ipv4Net) -> bool {
    // "-1" is every protocol; ICMP type -1 is every ICMP type (echo request is type 8).
    let icmp = protocol == "-1" || ((protocol == "icmp" || protocol == "1") && from_port.is_none_or(|t| t == -1 || t == 8));
    icmp && ranges.iter().any(|r| r.contains(&prefix))
}

impl AwsEndpoint {
    /// Counts what exists in the region against `quotas` plus what the deployment
    /// needs, and looks for a security group in the VPC that lets ICMP in from each
    /// Azure prefix (the ping test's prerequisite). Only describes.
    pub async fn preflight(&self, azure_prefixes: &[IpNet], need: QuotaNeed, quotas: Quotas) -> Result<Preflight, EndpointError> {
        let c = self.client();
        let (vgws, cgws, groups) = tokio::try_join!(
            async { c.describe_vpn_gateways().send().await.map_err(|e| from_sdk("DescribeVpnGateways", e)) },
            async { c.describe_customer_gateways().send().await.map_err(|e| from_sdk("DescribeCustomerGateways", e)) },
            async {
                c.describe_security_groups()
                    .filters(filter("vpc-id", self.vpc_id()))
                    .send()
                    .await
                    .map_err(|e| from_sdk("DescribeSecurityGroups", e))
            },
        )?;
        let mut out = Preflight::default();
        let live = |s: Option<&str>| !matches!(s, Some("deleted" | "deleting"));
        let vgw_count = vgws.vpn_gateways().iter().filter(|g| live(g.state().map(|s| s.as_str()))).count() as u32;
        if vgw_count + need.vpn_gateways > quotas.vpn_gateways {
            out.errors.push(format!(
                "the region has {vgw_count} virtual private gateways and the deployment needs {} more, over the quota of {}: delete unused VGWs or request an increase in Service Quotas",
                need.vpn_gateways, quotas.vpn_gateways
            ));
        }
        let cgw_count = cgws.customer_gateways().iter().filter(|g| live(g.state())).count() as u32;
        if cgw_count + need.customer_gateways > quotas.customer_gateways {
            out.errors.push(format!(
                "the region has {cgw_count} customer gateways and the deployment needs {} more, over the quota of {}: delete unused CGWs or request an increase in Service Quotas",
                need.customer_gateways, quotas.customer_gateways
            ));
        }
        if need.vpn_connections_per_vgw > quotas.vpn_connections_per_vgw {
            out.errors.push(format!(
                "the deployment needs {} VPN connections on one VGW, over the quota of {}: use fewer Azure public IPs or request an increase",
                need.vpn_connections_per_vgw, quotas.vpn_connections_per_vgw
            ));
        }
        let rules = inbound_rules(groups.security_groups());
        for prefix in azure_prefixes {
            let IpNet::V4(p) = prefix else { continue };
            if !rules.iter().any(|(proto, port, ranges)| allows_icmp_from(proto, *port, ranges, *p)) {
                out.warnings.push(format!(
                    "no security group in VPC {} allows ICMP from {p}: the ping test from Azure will fail; allow it with \
                     `aws ec2 authorize-security-group-ingress --group-id <sg> --protocol icmp --port -1 --cidr {p}` on the instances' group",
                    self.vpc_id()
                ));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_rules() {
        let p: Ipv4Net = "10.1.0.0/16".parse().unwrap();
        let wide: Vec<Ipv4Net> = vec!["10.0.0.0/8".parse().unwrap()];
        let narrow: Vec<Ipv4Net> = vec!["10.1.2.0/24".parse().unwrap()];
        assert!(allows_icmp_from("icmp", Some(-1), &wide, p));
        assert!(allows_icmp_from("icmp", Some(8), &wide, p));
        assert!(allows_icmp_from("-1", None, &wide, p));
        assert!(!allows_icmp_from("icmp", Some(-1), &narrow, p));
        assert!(!allows_icmp_from("tcp", Some(22), &wide, p));
        assert!(!allows_icmp_from("icmp", Some(0), &wide, p));
    }
}
