//! `[aws]`: region, VPC, route tables, the virtual private gateway's ASN and the tunnel
//! inside CIDRs, and AWS's regions by partition.

use std::collections::HashSet;
use std::ops::Range;

use ipnet::Ipv4Net;

use super::backend::parse_backend;
use super::cross::Area::{self, Africa, Asia, Europe, MiddleEast, NorthAmerica, Oceania, SouthAmerica};
use super::cross::{area_in, names};
use super::error::{Problem, problem};
use super::prefixes::parse_v4_prefix;
use super::schema::{At, Checker, Section, did_you_mean};
use super::{Backend, Mode, azure_reserved_asn, in_azure_apipa_range, reserved_inside_cidr, valid_amazon_asn};

/// The default bgp-ha tunnel inside CIDRs, in tunnel order.
const BGP_INSIDE_DEFAULTS: [&str; 4] = ["169.254.21.0/30", "169.254.22.0/30", "169.254.21.4/30", "169.254.22.4/30"];
const BGP_INSIDE_DEFAULTS_TEXT: &str = "169.254.21.0/30, 169.254.22.0/30, 169.254.21.4/30, 169.254.22.4/30";

impl Checker<'_> {
    pub(super) fn aws(&mut self, t: &Section<'_, '_>, mode: Mode, tpc: Option<u8>) -> AwsPart {
        let backend = match self.string(t, "backend") {
            None => Some(Backend::Sim).filter(|_| !t.has("backend")),
            Some(b) => self.checked("aws.backend", &b, |s| parse_backend(s, "aws", "azure")),
        };
        let region = self
            .string(t, "region")
            .and_then(|v| self.checked("aws.region", &v, |s| check_region(s).and_then(|()| check_aws_region(s)).map(|()| s.clone())));
        let vpc_id =
            self.string(t, "vpc_id").and_then(|v| self.checked("aws.vpc_id", &v, |s| check_aws_id(s, "vpc", "VPC").map(|()| s.clone())));

        let cidrs = self.string_list(t, "cidrs").and_then(|list| self.prefix_list("aws.cidrs", &list));

        let route_tables = match self.string_list(t, "route_tables") {
            None if t.has("route_tables") => None,
            None => Some(Vec::new()),
            Some(list) => {
                let mut out = Vec::new();
                let mut seen = HashSet::new();
                let mut ok = true;
                for (i, v) in list.value.iter().enumerate() {
                    let field = format!("aws.route_tables[{i}]");
                    if self.checked(&field, v, |s| check_aws_id(s, "rtb", "route table")).is_none() {
                        ok = false;
                    } else if !seen.insert(v.value.as_str()) {
                        self.error(field, v.span.clone(), format!("{} is listed twice", v.value), "remove the duplicate");
                        ok = false;
                    } else {
                        out.push(v.value.clone());
                    }
                }
                ok.then_some(out)
            }
        };

        let (amazon_asn, amazon_asn_span) = match self.integer(t, "amazon_asn") {
            None if t.has("amazon_asn") => (None, None),
            None => (Some(64512), None),
            Some(v) => (self.checked("aws.amazon_asn", &v, |&n| check_amazon_asn(n, mode)), v.span.clone()),
        };

        let tunnel_inside_cidrs = match self.string_list(t, "tunnel_inside_cidrs") {
            None if t.has("tunnel_inside_cidrs") => None,
            None => Some(Vec::new()),
            Some(list) => self.inside_cidrs(&list, mode, tpc),
        }
        .map(|list| {
            if list.is_empty() && mode == Mode::BgpHa {
                BGP_INSIDE_DEFAULTS.iter().map(|s| s.parse().expect("literal")).collect()
            } else {
                list
            }
        });

        let endpoint = self.endpoint(t);
        AwsPart { backend, region, vpc_id, cidrs, route_tables, amazon_asn, amazon_asn_span, tunnel_inside_cidrs, endpoint }
    }

    fn inside_cidrs(&mut self, list: &At<Vec<At<String>>>, mode: Mode, tpc: Option<u8>) -> Option<Vec<Ipv4Net>> {
        const F: &str = "aws.tunnel_inside_cidrs";
        let mut ok = true;
        if let Some(tpc) = tpc {
            let want = 2 * usize::from(tpc);
            let n = list.value.len();
            if n != 0 && n != want {
                let empty = if mode == Mode::BgpHa { "use the bgp-ha defaults" } else { "let AWS choose" };
                self.error(
                    F,
                    list.span.clone(),
                    format!("has {n} entries; {mode} with tunnels_per_connection = {tpc} uses {want} tunnels, one /30 each"),
                    format!("list exactly {want} /30s in tunnel order, or leave the list empty to {empty}"),
                );
                ok = false;
            }
        }
        let mut out: Vec<Ipv4Net> = Vec::new();
        let mut seen = HashSet::new();
        for (i, v) in list.value.iter().enumerate() {
            let item = format!("{F}[{i}]");
            match self.checked(&item, v, |s| check_inside_cidr(s, mode)) {
                Some(net) if !seen.insert(net) => {
                    self.error(
                        item,
                        v.span.clone(),
                        format!("{net} is listed twice; each tunnel needs its own inside CIDR (unique per VGW)"),
                        format!("use a different /30, e.g. one of {BGP_INSIDE_DEFAULTS_TEXT}"),
                    );
                    ok = false;
                }
                Some(net) => out.push(net),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}

/// What the [aws] walk produced; `None` fields had an error reported.
#[derive(Debug)]
pub(super) struct AwsPart {
    pub(super) backend: Option<Backend>,
    pub(super) region: Option<String>,
    pub(super) vpc_id: Option<String>,
    pub(super) cidrs: Option<Vec<At<Ipv4Net>>>,
    pub(super) route_tables: Option<Vec<String>>,
    pub(super) amazon_asn: Option<u32>,
    pub(super) amazon_asn_span: Option<Range<usize>>,
    pub(super) tunnel_inside_cidrs: Option<Vec<Ipv4Net>>,
    pub(super) endpoint: Option<Option<String>>,
}

fn check_amazon_asn(n: i128, mode: Mode) -> Result<u32, Problem> {
    const FIX: &str = "use 64512 (the default) or a private ASN in 64512-65534 or 4200000000-4294967294";
    let Some(asn) = u32::try_from(n).ok().filter(|a| valid_amazon_asn(*a)) else {
        return Err(problem(
            format!("{n} is not an ASN AWS accepts for a virtual private gateway (64512-65534 or 4200000000-4294967294)"),
            FIX,
        ));
    };
    if mode == Mode::BgpHa && azure_reserved_asn(asn) {
        return Err(problem(
            format!("{asn} is reserved by Azure, and in bgp-ha it is the peer ASN of Azure's local network gateways"),
            "use 64512 (the default) or another ASN in 64512-65514 that Azure does not reserve",
        ));
    }
    Ok(asn)
}

fn check_region(s: &str) -> Result<(), Problem> {
    let parts: Vec<&str> = s.split('-').collect();
    let ok = parts.len() >= 3
        && (2..=4).contains(&parts[0].len())
        && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit());
    if ok {
        return Ok(());
    }
    let last = parts.last().copied().unwrap_or("");
    let fix = if parts.len() >= 3 && last.starts_with(|c: char| c.is_ascii_digit()) && last.ends_with(|c: char| c.is_ascii_lowercase()) {
        let region = s.trim_end_matches(|c: char| c.is_ascii_lowercase());
        format!("that is an availability zone; use its region: \"{region}\"")
    } else if s.chars().any(|c| c.is_ascii_uppercase()) && check_region(&s.to_ascii_lowercase()).is_ok() {
        format!("did you mean \"{}\"?", s.to_ascii_lowercase())
    } else {
        "use a region code such as \"ap-northeast-1\", \"us-east-1\" or \"us-gov-west-1\"".to_owned()
    };
    Err(problem(format!("{s:?} is not an AWS region code"), fix))
}

/// AWS's commercial regions (partition `aws`), as `aws ec2 describe-regions
/// --all-regions` names them. Source: the partition table the AWS SDKs ship
/// (aws-sdk-ec2 1.274's endpoint resolver, the SDKs' partitions.json), 2025.
const AWS_COMMERCIAL_REGIONS: &[(&str, Area)] = &[
    ("us-east-1", NorthAmerica),
    ("us-east-2", NorthAmerica),
    ("us-west-1", NorthAmerica),
    ("us-west-2", NorthAmerica),
    ("ca-central-1", NorthAmerica),
    ("ca-west-1", NorthAmerica),
    ("mx-central-1", NorthAmerica),
    ("sa-east-1", SouthAmerica),
    ("eu-central-1", Europe),
    ("eu-central-2", Europe),
    ("eu-north-1", Europe),
    ("eu-south-1", Europe),
    ("eu-south-2", Europe),
    ("eu-west-1", Europe),
    ("eu-west-2", Europe),
    ("eu-west-3", Europe),
    ("il-central-1", MiddleEast),
    ("me-central-1", MiddleEast),
    ("me-south-1", MiddleEast),
    ("af-south-1", Africa),
    ("ap-east-1", Asia),
    ("ap-east-2", Asia),
    ("ap-northeast-1", Asia),
    ("ap-northeast-2", Asia),
    ("ap-northeast-3", Asia),
    ("ap-south-1", Asia),
    ("ap-south-2", Asia),
    ("ap-southeast-1", Asia),
    ("ap-southeast-3", Asia),
    ("ap-southeast-5", Asia),
    ("ap-southeast-7", Asia),
    ("ap-southeast-2", Oceania),
    ("ap-southeast-4", Oceania),
    ("ap-southeast-6", Oceania),
];

/// AWS's other partitions, from the same table: GovCloud (`aws-us-gov`), China
/// (`aws-cn`), the European Sovereign Cloud (`aws-eusc`) and the isolated ISO
/// partitions. They are accepted like commercial regions: each needs its own
/// partition's account and credentials (the SDK finds the endpoint from the region),
/// and whether a Site-to-Site VPN to Azure may be built there is the partition's rule.
const AWS_OTHER_PARTITION_REGIONS: &[(&str, Area)] = &[
    ("us-gov-east-1", NorthAmerica),
    ("us-gov-west-1", NorthAmerica),
    ("cn-north-1", Asia),
    ("cn-northwest-1", Asia),
    ("eusc-de-east-1", Europe),
    ("us-iso-east-1", NorthAmerica),
    ("us-iso-west-1", NorthAmerica),
    ("us-isob-east-1", NorthAmerica),
    ("us-isob-west-1", NorthAmerica),
    ("us-isof-east-1", NorthAmerica),
    ("us-isof-south-1", NorthAmerica),
    ("eu-isoe-west-1", Europe),
];

/// The area of an AWS region of any partition.
pub(super) fn aws_area(region: &str) -> Option<Area> {
    area_in(AWS_COMMERCIAL_REGIONS, region).or_else(|| area_in(AWS_OTHER_PARTITION_REGIONS, region))
}

/// A region of one of AWS's partitions.
fn check_aws_region(s: &str) -> Result<(), Problem> {
    if aws_area(s).is_some() {
        return Ok(());
    }
    let all: Vec<&str> = names(AWS_COMMERCIAL_REGIONS).chain(names(AWS_OTHER_PARTITION_REGIONS)).collect();
    let hint = did_you_mean(s, &all);
    Err(problem(
        format!("{s:?} is not an AWS region"),
        format!(
            "{hint}use a region code as `aws ec2 describe-regions --all-regions --query \"Regions[].RegionName\"` prints it, e.g. \"ap-northeast-1\", \"eu-west-1\", \"us-east-1\" (GovCloud: \"us-gov-west-1\", China: \"cn-north-1\")"
        ),
    ))
}

/// `prefix-` followed by 8 or 17 lowercase hexadecimal digits (`vpc-…`, `rtb-…`).
pub(super) fn check_aws_id(s: &str, prefix: &str, what: &str) -> Result<(), Problem> {
    let example = format!("{prefix}-0123456789abcdef0");
    let hex = s.strip_prefix(prefix).and_then(|r| r.strip_prefix('-'));
    if let Some(hex) = hex
        && matches!(hex.len(), 8 | 17)
    {
        if hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
            return Ok(());
        }
        if hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(problem(
                format!("{s:?} has uppercase letters"),
                format!("did you mean \"{prefix}-{}\"?", hex.to_ascii_lowercase()),
            ));
        }
    }
    Err(problem(
        format!("{s:?} is not a {what} id ({prefix}- followed by 8 or 17 hexadecimal digits)"),
        format!("copy the id from the AWS console or CLI, e.g. \"{example}\""),
    ))
}

fn check_inside_cidr(s: &str, mode: Mode) -> Result<Ipv4Net, Problem> {
    let examples = format!("e.g. one of {BGP_INSIDE_DEFAULTS_TEXT}");
    let net = parse_v4_prefix(s)?;
    let link_local: Ipv4Net = "169.254.0.0/16".parse().expect("literal");
    if net.prefix_len() != 30 {
        let fix = if link_local.contains(&net.network()) {
            format!("did you mean \"{}\"? ({examples})", Ipv4Net::new(net.network(), 30).expect("30 <= 32").trunc())
        } else {
            format!("use a /30 in 169.254.0.0/16, {examples}")
        };
        return Err(problem(format!("{net} is a /{}; AWS tunnel inside CIDRs are /30s", net.prefix_len()), fix));
    }
    if !link_local.contains(&net) {
        return Err(problem(
            format!("{net} is outside 169.254.0.0/16, where AWS tunnel inside CIDRs must be"),
            format!("use a /30 in 169.254.0.0/16, {examples}"),
        ));
    }
    if reserved_inside_cidr(net) {
        return Err(problem(
            format!("{net} is reserved by AWS (169.254.0.0/30 to 169.254.5.0/30 and 169.254.169.252/30 are refused)"),
            format!("use another /30, {examples}"),
        ));
    }
    if mode == Mode::BgpHa && !in_azure_apipa_range(net) {
        return Err(problem(
            format!(
                "{net} is outside Azure's APIPA range 169.254.21.0-169.254.22.255, where bgp-ha puts the gateway's custom BGP addresses"
            ),
            format!(
                "use /30s inside 169.254.21.0-169.254.22.255, e.g. {BGP_INSIDE_DEFAULTS_TEXT} (or leave the list empty for these defaults)"
            ),
        ));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amazon_asns() {
        assert!(check_amazon_asn(64512, Mode::BgpHa).is_ok());
        assert!(check_amazon_asn(65515, Mode::StaticHa).is_ok());
        assert!(check_amazon_asn(65515, Mode::BgpHa).is_err());
        assert!(check_amazon_asn(65535, Mode::StaticHa).is_err());
        assert!(check_amazon_asn(1 << 40, Mode::StaticHa).is_err());
    }

    #[test]
    fn regions_and_ids() {
        for ok in ["ap-northeast-1", "us-gov-west-1", "eu-central-2", "us-isob-east-1"] {
            assert!(check_region(ok).is_ok(), "{ok}");
        }
        assert!(check_region("ap-northeast-1a").unwrap_err().fix.contains("\"ap-northeast-1\""));
        assert!(check_region("AP-NORTHEAST-1").unwrap_err().fix.contains("\"ap-northeast-1\""));
        assert!(check_region("tokyo").is_err());
        assert!(check_region("ap-northeast").is_err());
        assert!(check_aws_id("vpc-01234567", "vpc", "VPC").is_ok());
        assert!(check_aws_id("vpc-0123456789abcdef0", "vpc", "VPC").is_ok());
        assert!(check_aws_id("vpc-0123456789ABCDEF0", "vpc", "VPC").unwrap_err().fix.contains("vpc-0123456789abcdef0"));
        assert!(check_aws_id("vpc-0123456789abcdef", "vpc", "VPC").is_err());
        assert!(check_aws_id("rtb-01234567", "vpc", "VPC").is_err());
    }

    #[test]
    fn inside_cidrs() {
        assert!(check_inside_cidr("169.254.10.0/30", Mode::StaticHa).is_ok());
        assert!(check_inside_cidr("169.254.10.0/30", Mode::BgpHa).unwrap_err().fix.contains("169.254.21.0/30"));
        assert!(check_inside_cidr("169.254.3.0/30", Mode::StaticHa).unwrap_err().problem.contains("reserved"));
        assert!(check_inside_cidr("169.254.169.252/30", Mode::StaticHa).is_err());
        assert!(check_inside_cidr("169.254.21.0/29", Mode::StaticHa).unwrap_err().fix.contains("\"169.254.21.0/30\""));
        assert!(check_inside_cidr("10.0.0.0/30", Mode::StaticHa).unwrap_err().problem.contains("169.254.0.0/16"));
    }
}
