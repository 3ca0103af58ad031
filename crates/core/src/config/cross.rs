//! Rules between tables: the VNet and the VPC must not overlap, the two sides' ASNs must
//! differ, the SKU must carry the tunnels, and (a warning) both sides should be in one
//! area of the world.

use std::collections::HashMap;

use ipnet::Ipv4Net;

use super::aws::{AwsPart, aws_area};
use super::azure::{AzurePart, azure_area};
use super::prefixes::{DisjointPrefixes, free_prefix, merged};
use super::schema::Checker;

impl Checker<'_> {
    /// Checks what `[azure]` and `[aws]` must agree on; `tpc` is `tunnels_per_connection`.
    pub(super) fn cross(&mut self, az: &AzurePart, aw: &AwsPart, tpc: Option<u8>) {
        if let (Some(space), Some(cidrs)) = (&az.address_space, &aw.cidrs) {
            // Each list is free of overlaps by now, so the pairs that overlap are
            // found with one ordered lookup per VPC CIDR, and there are at most
            // as many as the two lists are long.
            let vnet = DisjointPrefixes::new(space.iter().map(|a| a.value));
            let mut taken: Option<Vec<(u32, u32)>> = None;
            let mut free_by_len: HashMap<u8, Option<Ipv4Net>> = HashMap::new();
            for b in cidrs {
                for a in vnet.overlapping(b.value) {
                    let taken = taken.get_or_insert_with(|| merged(space.iter().chain(cidrs.iter()).map(|x| x.value)));
                    let free = free_by_len
                        .entry(b.value.prefix_len())
                        .or_insert_with(|| free_prefix(b.value.prefix_len(), taken))
                        .map(|f| format!(" (e.g. {f} is free)"))
                        .unwrap_or_default();
                    self.error(
                        "aws.cidrs",
                        b.span.clone(),
                        format!(
                            "{} overlaps azure.address_space {a}; the VPC and the VNet must not share addresses, or traffic cannot be routed across",
                            b.value
                        ),
                        format!("use a VPC and a VNet with disjoint address ranges{free}"),
                    );
                }
            }
        }
        if let (Some(location), Some(region)) = (&az.location, &aw.region)
            && let Some(message) = distance_warning(location, region)
        {
            self.warn("aws.region", message);
        }
        if let (Some(asn), Some(amazon)) = (az.asn, aw.amazon_asn)
            && asn == amazon
        {
            let fix = if amazon == 64512 {
                "set [azure] asn = 65000 (the default) or another private ASN".to_owned()
            } else {
                "set [aws] amazon_asn = 64512 (the default) or another private ASN".to_owned()
            };
            self.error(
                "aws.amazon_asn",
                aw.amazon_asn_span.clone(),
                format!(
                    "equals azure.asn ({asn}); azure.asn is also the customer gateways' ASN and AWS refuses a customer gateway with the VGW's own ASN (AsnConflict)"
                ),
                fix,
            );
        }
        if let (Some(sku), Some(tpc)) = (az.gateway_sku, tpc) {
            let count = 2 * usize::from(tpc);
            if count > sku.tunnel_limit() {
                self.error(
                    "tunnels_per_connection",
                    None,
                    format!("{count} tunnels exceed the {} site-to-site tunnels of {sku}", sku.tunnel_limit()),
                    "use fewer tunnels per connection or a larger SKU",
                );
            }
        }
    }
}

/// A coarse area of the world. Both sides in one area keep the tunnels short; the
/// config is only warned about when they differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Area {
    NorthAmerica,
    SouthAmerica,
    Europe,
    MiddleEast,
    Africa,
    Asia,
    Oceania,
}

impl Area {
    fn name(self) -> &'static str {
        match self {
            Area::NorthAmerica => "North America",
            Area::SouthAmerica => "South America",
            Area::Europe => "Europe",
            Area::MiddleEast => "the Middle East",
            Area::Africa => "Africa",
            Area::Asia => "Asia",
            Area::Oceania => "Oceania",
        }
    }

    /// A well-known AWS region and Azure location in the area, for suggestions.
    fn examples(self) -> (&'static str, &'static str) {
        match self {
            Area::NorthAmerica => ("us-east-1", "eastus2"),
            Area::SouthAmerica => ("sa-east-1", "brazilsouth"),
            Area::Europe => ("eu-west-1", "westeurope"),
            Area::MiddleEast => ("me-central-1", "uaenorth"),
            Area::Africa => ("af-south-1", "southafricanorth"),
            Area::Asia => ("ap-northeast-1", "japaneast"),
            Area::Oceania => ("ap-southeast-2", "australiaeast"),
        }
    }
}

pub(super) fn names(list: &'static [(&'static str, Area)]) -> impl Iterator<Item = &'static str> {
    list.iter().map(|(n, _)| *n)
}

pub(super) fn area_in(list: &[(&str, Area)], name: &str) -> Option<Area> {
    list.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
}

/// A warning when the two sides are in different areas of the world.
fn distance_warning(location: &str, region: &str) -> Option<String> {
    let (az, aws) = (azure_area(location)?, aws_area(region)?);
    if az == aws {
        return None;
    }
    let (aws_example, _) = az.examples();
    let (_, azure_example) = aws.examples();
    Some(format!(
        "azure.location {location} is in {} and aws.region {region} in {}: the tunnels will cross continents (more latency, and inter-region data transfer on both bills); if you can, put both sides in one area, e.g. aws.region = \"{aws_example}\" or azure.location = \"{azure_example}\"",
        az.name(),
        aws.name()
    ))
}
