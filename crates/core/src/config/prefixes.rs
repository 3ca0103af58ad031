//! IPv4 prefixes and the two lists of them (`azure.address_space`, `aws.cidrs`): parsing,
//! what a VPN can route, the clouds' ceilings, and overlaps within a list, in O(log n)
//! per prefix.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};

use super::error::{Problem, problem};
use super::overlaps;
use super::schema::{At, Checker};

impl Checker<'_> {
    /// A non-empty list of IPv4 prefixes, none overlapping another.
    pub(super) fn prefix_list(&mut self, field: &str, list: &At<Vec<At<String>>>) -> Option<Vec<At<Ipv4Net>>> {
        if list.value.is_empty() {
            let example = if field.starts_with("azure") { r#"["10.1.0.0/16"]"# } else { r#"["10.2.0.0/16"]"# };
            self.error(
                field,
                list.span.clone(),
                "is empty; at least one IPv4 prefix is needed",
                format!("list the prefixes, e.g. {example}"),
            );
            return None;
        }
        // The clouds' ceilings: AWS allows at most 50 IPv4 CIDR blocks per VPC (5 by
        // default), and every Azure prefix becomes a static route of each VPN
        // connection, of which AWS accepts 100.
        let (max, why) = if field.starts_with("azure") {
            (MAX_AZURE_PREFIXES, "each one is a static route of both AWS VPN connections, and AWS accepts at most 100 per connection")
        } else {
            (MAX_VPC_CIDRS, "AWS allows at most 50 IPv4 CIDR blocks in a VPC (5 unless the quota is raised)")
        };
        let mut ok = true;
        if list.value.len() > max {
            self.error(
                field,
                list.span.clone(),
                format!("lists {} prefixes; {why}", list.value.len()),
                format!("list at most {max}: summarise contiguous prefixes into larger ones (e.g. two /17s into one /16)"),
            );
            ok = false;
        }
        let mut out: Vec<At<Ipv4Net>> = Vec::new();
        // What `out` holds, ordered by address: an overlap is one ordered lookup.
        let mut accepted = DisjointPrefixes::default();
        let mut docker: Vec<(String, Ipv4Net)> = Vec::new();
        for (i, v) in list.value.iter().enumerate() {
            let item = format!("{field}[{i}]");
            let Some(net) = self.checked(&item, v, |s| parse_v4_prefix(s).and_then(routable)) else {
                ok = false;
                continue;
            };
            if field == "aws.cidrs" && overlaps(IpNet::V4(net), IpNet::V4(DOCKER_BRIDGE)) {
                docker.push((item.clone(), net));
            }
            if let Some(prev) = accepted.overlapping(net).next() {
                let prev = At { value: prev, span: None };
                let (problem, fix) = if prev.value == net {
                    (format!("{net} is listed twice"), "remove the duplicate".to_owned())
                } else if prev.value.contains(&net) {
                    (
                        format!("{net} lies inside {} of the same list", prev.value),
                        format!("remove {net}; {} already covers it", prev.value),
                    )
                } else {
                    (format!("{net} contains {} of the same list", prev.value), format!("remove {}; {net} already covers it", prev.value))
                };
                self.error(item, v.span.clone(), problem, fix);
                ok = false;
                continue;
            }
            accepted.insert(net);
            out.push(At { value: net, span: v.span.clone() });
        }
        if let Some((item, net)) = docker.first() {
            let others = match docker.len() - 1 {
                0 => String::new(),
                1 => " (so does 1 more entry of the list)".to_owned(),
                n => format!(" (so do {n} more entries of the list)"),
            };
            self.warn(
                item.clone(),
                format!(
                    "{net} overlaps 172.17.0.0/16, which AWS advises against for a VPC: Docker's default bridge (and services built on it, e.g. Cloud9, SageMaker) uses it, so hosts there may not reach the VNet{others}"
                ),
            );
        }
        ok.then_some(out)
    }
}

/// Most prefixes `azure.address_space` may list (AWS's static routes per VPN connection).
const MAX_AZURE_PREFIXES: usize = 100;

/// Most prefixes `aws.cidrs` may list (AWS's IPv4 CIDR blocks per VPC).
const MAX_VPC_CIDRS: usize = 50;

/// Docker's default bridge network, which AWS advises against as a VPC CIDR.
const DOCKER_BRIDGE: Ipv4Net = Ipv4Net::new_assert(std::net::Ipv4Addr::new(172, 17, 0, 0), 16);

/// Address blocks that can never be routed across a VPN (RFC 6890 special purpose).
const UNROUTABLE: &[(Ipv4Net, &str)] = &[
    (Ipv4Net::new_assert(std::net::Ipv4Addr::new(0, 0, 0, 0), 8), "\"this network\" (0.0.0.0/8)"),
    (Ipv4Net::new_assert(std::net::Ipv4Addr::new(127, 0, 0, 0), 8), "loopback (127.0.0.0/8)"),
    (Ipv4Net::new_assert(std::net::Ipv4Addr::new(169, 254, 0, 0), 16), "link-local (169.254.0.0/16, also the tunnels' inside addresses)"),
    (Ipv4Net::new_assert(std::net::Ipv4Addr::new(224, 0, 0, 0), 4), "multicast (224.0.0.0/4)"),
    (Ipv4Net::new_assert(std::net::Ipv4Addr::new(240, 0, 0, 0), 4), "reserved (240.0.0.0/4)"),
];

/// A prefix that a VPN can carry: none of [`UNROUTABLE`].
fn routable(net: Ipv4Net) -> Result<Ipv4Net, Problem> {
    match UNROUTABLE.iter().find(|(block, _)| overlaps(IpNet::V4(*block), IpNet::V4(net))) {
        Some((_, what)) => Err(problem(
            format!("{net} is in the {what} block, which cannot be routed over a VPN"),
            "use the network's private addresses, e.g. \"10.1.0.0/16\" (RFC 1918: 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)",
        )),
        None => Ok(net),
    }
}

pub(super) fn parse_v4_prefix(s: &str) -> Result<Ipv4Net, Problem> {
    match s.parse::<IpNet>() {
        Ok(IpNet::V4(net)) if net.trunc() == net => Ok(net),
        Ok(IpNet::V4(net)) => Err(problem(
            format!("{s} has host bits set (the prefix starts at {})", net.trunc()),
            format!("did you mean \"{}\"?", net.trunc()),
        )),
        Ok(IpNet::V6(_)) => {
            Err(problem(format!("{s} is IPv6; only IPv4 prefixes are supported"), "use the IPv4 prefixes, e.g. \"10.1.0.0/16\""))
        }
        Err(_) => match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => {
                Err(problem(format!("{s} is an address, not a prefix"), format!("add the prefix length, e.g. \"{s}/16\"")))
            }
            Ok(IpAddr::V6(_)) => {
                Err(problem(format!("{s} is IPv6; only IPv4 prefixes are supported"), "use the IPv4 prefixes, e.g. \"10.1.0.0/16\""))
            }
            Err(_) => Err(problem(format!("{s:?} is not an IPv4 prefix"), "write it as address/length, e.g. \"10.1.0.0/16\"")),
        },
    }
}

/// The last subnet of length `len` inside `net` (`net` must be at most that long).
pub(super) fn last_subnet(net: Ipv4Net, len: u8) -> Ipv4Net {
    let size = 1u32 << (32 - u32::from(len));
    let start = u32::from(net.broadcast()).wrapping_sub(size - 1);
    Ipv4Net::new(Ipv4Addr::from(start), len).expect("len <= 32").trunc()
}

/// The address ranges covered by `nets`, merged and ordered: `(first, last)` pairs.
pub(super) fn merged(nets: impl Iterator<Item = Ipv4Net>) -> Vec<(u32, u32)> {
    let mut ranges: Vec<(u32, u32)> = nets.map(|n| (u32::from(n.network()), u32::from(n.broadcast()))).collect();
    ranges.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match out.last_mut() {
            Some(prev) if first <= prev.1.saturating_add(1) => prev.1 = prev.1.max(last),
            _ => out.push((first, last)),
        }
    }
    out
}

/// The first private prefix of length `len` (in 10/8, then 172.16/12, then
/// 192.168/16) that overlaps none of the merged ranges `taken`. Each step jumps past
/// a taken range, so this is linear in `taken` at worst.
pub(super) fn free_prefix(len: u8, taken: &[(u32, u32)]) -> Option<Ipv4Net> {
    for pool in ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"] {
        let pool: Ipv4Net = pool.parse().expect("literal");
        if len < pool.prefix_len() || len > 32 {
            continue;
        }
        let size = 1u64 << (32 - u32::from(len));
        let end = u64::from(u32::from(pool.broadcast()));
        let mut candidate = u64::from(u32::from(pool.network()));
        while candidate + size - 1 <= end {
            let last = candidate + size - 1;
            // The first taken range that ends at or after the candidate's start.
            let i = taken.partition_point(|r| u64::from(r.1) < candidate);
            match taken.get(i) {
                Some(r) if u64::from(r.0) <= last => {
                    // Jump to the first aligned start after the range.
                    candidate = (u64::from(r.1) + 1).div_ceil(size) * size;
                }
                _ => {
                    let start = u32::try_from(candidate).expect("inside an IPv4 pool");
                    return Ipv4Net::new(Ipv4Addr::from(start), len).ok();
                }
            }
        }
    }
    None
}

/// Non-overlapping prefixes ordered by address, for overlap queries in O(log n).
#[derive(Debug, Default)]
pub(super) struct DisjointPrefixes {
    by_start: BTreeMap<u32, Ipv4Net>,
}

impl DisjointPrefixes {
    /// From prefixes known not to overlap (a validated list).
    pub(super) fn new(nets: impl Iterator<Item = Ipv4Net>) -> Self {
        let mut s = Self::default();
        for n in nets {
            s.insert(n);
        }
        s
    }

    /// Adds a prefix that overlaps none already held.
    pub(super) fn insert(&mut self, net: Ipv4Net) {
        self.by_start.insert(u32::from(net.network()), net);
    }

    /// The held prefixes that share an address with `net`, lowest first: the one that
    /// contains it (at most one can), or those it contains.
    pub(super) fn overlapping(&self, net: Ipv4Net) -> impl Iterator<Item = Ipv4Net> + '_ {
        let (first, last) = (u32::from(net.network()), u32::from(net.broadcast()));
        let container = self.by_start.range(..=first).next_back().map(|(_, p)| *p).filter(|p| u32::from(p.broadcast()) >= first);
        let inside = self.by_start.range(first..=last).map(|(_, p)| *p).filter(move |p| Some(*p) != container);
        container.into_iter().chain(inside)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::*;

    #[test]
    fn prefixes() {
        assert!(parse_v4_prefix("10.1.0.0/16").is_ok());
        assert!(parse_v4_prefix("10.1.2.0/16").unwrap_err().fix.contains("did you mean \"10.1.0.0/16\"?"));
        assert!(parse_v4_prefix("fd00::/8").unwrap_err().problem.contains("IPv6"));
        assert!(parse_v4_prefix("10.1.0.0").unwrap_err().fix.contains("10.1.0.0/16"));
        assert!(parse_v4_prefix("ten").is_err());
        assert_eq!(last_subnet("10.1.0.0/16".parse().unwrap(), 27).to_string(), "10.1.255.224/27");
        let taken = merged(["10.0.0.0/16", "10.1.0.0/16", "10.3.0.0/17"].iter().map(|s| s.parse().unwrap()));
        assert_eq!(taken, vec![(0x0a00_0000, 0x0a01_ffff), (0x0a03_0000, 0x0a03_7fff)]);
        assert_eq!(free_prefix(16, &taken).unwrap().to_string(), "10.2.0.0/16");
        assert_eq!(free_prefix(15, &taken).unwrap().to_string(), "10.4.0.0/15");
        assert_eq!(free_prefix(8, &merged(std::iter::once("10.0.0.0/8".parse().unwrap()))), None);
        assert_eq!(free_prefix(12, &merged(std::iter::once("10.0.0.0/8".parse().unwrap()))).unwrap().to_string(), "172.16.0.0/12");
        let all = merged(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"].iter().map(|s| s.parse().unwrap()));
        assert_eq!(free_prefix(24, &all), None);
    }

    #[test]
    fn unroutable_address_spaces_are_refused() {
        for bad in ["127.0.0.0/8", "224.0.0.0/4", "169.254.0.0/16", "0.0.0.0/8", "240.0.0.0/4", "127.1.0.0/16", "0.0.0.0/0"] {
            let e = parse_str(&replace("address_space = [\"10.1.0.0/16\"]", &format!("address_space = [\"{bad}\"]"))).unwrap_err();
            assert!(e.to_string().contains("cannot be routed over a VPN"), "{bad}: {e}");
            let e = parse_str(&replace("cidrs = [\"10.2.0.0/16\"]", &format!("cidrs = [\"{bad}\"]"))).unwrap_err();
            assert!(e.to_string().contains("aws.cidrs[0]"), "{bad}: {e}");
        }
        let w = parse_str(&replace("cidrs = [\"10.2.0.0/16\"]", "cidrs = [\"172.17.0.0/16\"]")).unwrap().warnings;
        assert!(w.iter().any(|w| w.field == "aws.cidrs[0]" && w.message.contains("Docker")), "{w:?}");
    }
}
