//! `vpnbridge.toml`: the validated configuration and how text becomes one.
//!
//! [`load`] (a file) and [`parse`] (text) turn a config into a [`Config`], reporting every
//! problem of the file at once ([`ConfigErrors`]), each with where it is (file, line,
//! field) and what to do about it, plus warnings for what is legal but probably not
//! meant ([`ConfigWarning`]). Types make bad states unrepresentable; the file holds no
//! secret (a PSK comes from `env:NAME` or is generated), and nothing here prints a
//! pre-shared key.
//!
//! Where each part lives:
//!
//! - this file: the validated types ([`Config`], [`AzureConfig`], [`AwsConfig`], …);
//! - `load.rs`: reading the file (size limit, UTF-8), TOML syntax and duplicate keys,
//!   byte offsets -> line and column, and [`EXAMPLE`] (what `vpnbridge init` writes);
//! - `error.rs`: [`ConfigError`], [`ConfigErrors`], [`ConfigWarning`] and their rendering;
//! - `schema.rs`: the keys of every table ([`schema::TABLES`], written once: they drive the
//!   unknown-key check, its suggestions, the "is required" messages and the examples in
//!   type errors), the walker that reads values against them, and the walk of the whole
//!   file that assembles a [`Config`];
//! - `top.rs`: the top-level keys (`name`, `mode`, `tunnels_per_connection`, `psk`);
//! - `azure.rs`: `[azure]` (names, subscription, location, SKU and generation, ASN,
//!   GatewaySubnet) and Azure's clouds and locations;
//! - `aws.rs`: `[aws]` (region, VPC, route tables, Amazon ASN, tunnel inside CIDRs) and
//!   AWS's regions;
//! - `backend.rs`: what both clouds' tables have (`backend`, `endpoint`);
//! - `prefixes.rs`: IPv4 prefix lists (`azure.address_space`, `aws.cidrs`): parsing,
//!   routability, overlaps within a list;
//! - `probe.rs`: `[probe]`, the users' test VMs;
//! - `cross.rs`: rules between tables: VNet/VPC overlap, equal ASNs, the SKU's tunnel
//!   limit, both sides in one area of the world.

mod aws;
mod azure;
mod backend;
mod cross;
mod error;
mod load;
mod prefixes;
mod probe;
pub mod schema;
mod top;

pub use error::{ConfigError, ConfigErrors, ConfigWarning, SHOWN_ERRORS};
pub use load::{EXAMPLE, Loaded, MAX_CONFIG_BYTES, example, load, parse};

use std::fmt;
use std::path::PathBuf;

use ipnet::{IpNet, Ipv4Net};
use serde::Serialize;

use crate::secret::Psk;

/// The whole configuration of one deployment.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages).
    pub source: PathBuf,
    /// Deployment name: ownership tag value and resource-name prefix.
    pub name: String,
    pub mode: Mode,
    /// Tunnels used per AWS VPN connection (1 or 2).
    pub tunnels_per_connection: u8,
    pub psk: PskSource,
    pub azure: AzureConfig,
    pub aws: AwsConfig,
    /// The users' test VMs that `verify` and `drill` ping through (`[probe]`); `None`:
    /// the data plane of real clouds is not observable.
    pub probe: Option<ProbeConfig>,
}

/// `[probe]`: one VM on each side, named by the user; vpnbridge only reads them and
/// runs a ping on them (Azure VM Run Command, AWS Systems Manager Run Command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    pub azure_vm: AzureVmRef,
    /// The EC2 instance id (`i-…`).
    pub aws_instance: String,
}

/// An Azure VM, by name in `azure.resource_group` or by full resource id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureVmRef {
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
}

impl AzureVmRef {
    /// `/subscriptions/…/resourceGroups/…/providers/Microsoft.Compute/virtualMachines/{name}`.
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}",
            self.subscription_id, self.resource_group, self.name
        )
    }
}

impl Config {
    /// How many tunnels the deployment uses (2 VPN connections × tunnels each).
    pub fn tunnel_count(&self) -> usize {
        2 * usize::from(self.tunnels_per_connection)
    }

    /// The used tunnels' layout: how many per VPN connection and the inside CIDR
    /// pinned for each (`aws.tunnel_inside_cidrs`, one per used tunnel).
    pub fn layout(&self) -> crate::pairing::TunnelLayout {
        crate::pairing::TunnelLayout::new(self.tunnels_per_connection, &self.aws.tunnel_inside_cidrs)
    }
}

/// Routing mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Static routes, tunnel 1 (and optionally 2) of each VPN connection.
    StaticHa,
    /// BGP over APIPA inside addresses, 4 tunnels.
    BgpHa,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::StaticHa => "static-ha",
            Mode::BgpHa => "bgp-ha",
        })
    }
}

/// Where the tunnels' pre-shared keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PskSource {
    /// vpnbridge generates one key per tunnel, valid for both clouds, and gives it to
    /// AWS at creation; afterwards the key AWS holds is kept.
    Generate,
    /// AWS generates the keys; vpnbridge reads them back.
    Aws,
    /// One key for every tunnel, from an environment variable (read at load time).
    Env { var: String, key: Psk },
}

/// Which implementation serves a side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded simulator.
    Sim,
    /// The real cloud (`azure` / `aws` in the file).
    Real,
}

#[derive(Debug, Clone)]
pub struct AzureConfig {
    pub backend: Backend,
    /// Subscription GUID (lowercase); from the file or `AZURE_SUBSCRIPTION_ID`.
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    pub vnet: String,
    /// Declared VNet address space; cross-checked read-only against the real VNet.
    pub address_space: Vec<Ipv4Net>,
    pub gateway_subnet: Ipv4Net,
    pub gateway_sku: GatewaySku,
    pub gateway_generation: Generation,
    /// The gateway's ASN; in static-ha also the customer gateways' label ASN.
    pub asn: u32,
    /// ARM endpoint override (tests, sovereign clouds).
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AwsConfig {
    pub backend: Backend,
    pub region: String,
    pub vpc_id: String,
    /// Declared VPC CIDRs; cross-checked read-only against the real VPC.
    pub cidrs: Vec<Ipv4Net>,
    /// Route tables that get a route to each Azure prefix; empty = the VPC's main one.
    pub route_tables: Vec<String>,
    pub amazon_asn: u32,
    /// Tunnel inside CIDRs, one per *used* tunnel in tunnel order (connection 0's used
    /// tunnels, then connection 1's); empty lets AWS choose (static-ha). See
    /// [`Config::layout`].
    pub tunnel_inside_cidrs: Vec<Ipv4Net>,
    /// EC2 endpoint override.
    pub endpoint: Option<String>,
}

/// Azure VPN gateway SKUs that can still be created (the zone-redundant ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
pub enum GatewaySku {
    VpnGw1AZ,
    VpnGw2AZ,
    VpnGw3AZ,
    VpnGw4AZ,
    VpnGw5AZ,
}

impl GatewaySku {
    pub const ALL: [GatewaySku; 5] = [Self::VpnGw1AZ, Self::VpnGw2AZ, Self::VpnGw3AZ, Self::VpnGw4AZ, Self::VpnGw5AZ];

    pub fn name(self) -> &'static str {
        match self {
            Self::VpnGw1AZ => "VpnGw1AZ",
            Self::VpnGw2AZ => "VpnGw2AZ",
            Self::VpnGw3AZ => "VpnGw3AZ",
            Self::VpnGw4AZ => "VpnGw4AZ",
            Self::VpnGw5AZ => "VpnGw5AZ",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Site-to-site tunnels the SKU supports.
    pub fn tunnel_limit(self) -> usize {
        match self {
            Self::VpnGw1AZ | Self::VpnGw2AZ | Self::VpnGw3AZ => 30,
            Self::VpnGw4AZ | Self::VpnGw5AZ => 100,
        }
    }

    /// Whether Azure accepts this SKU with this generation.
    pub fn supports(self, g: Generation) -> bool {
        match g {
            Generation::Generation1 => matches!(self, Self::VpnGw1AZ | Self::VpnGw2AZ | Self::VpnGw3AZ),
            Generation::Generation2 => matches!(self, Self::VpnGw2AZ | Self::VpnGw3AZ | Self::VpnGw4AZ | Self::VpnGw5AZ),
        }
    }

    /// Every SKU/generation pair Azure accepts, for messages.
    pub fn valid_pairs() -> String {
        let mut out = Vec::new();
        for g in [Generation::Generation1, Generation::Generation2] {
            let skus: Vec<_> = Self::ALL.into_iter().filter(|s| s.supports(g)).map(Self::name).collect();
            out.push(format!("{g}: {}", skus.join(", ")));
        }
        out.join("; ")
    }
}

impl fmt::Display for GatewaySku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// VPN gateway generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub enum Generation {
    Generation1,
    Generation2,
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Generation::Generation1 => "Generation1",
            Generation::Generation2 => "Generation2",
        })
    }
}

/// Azure's reserved ASNs: a gateway or peer may not use these.
pub fn azure_reserved_asn(asn: u32) -> bool {
    matches!(asn, 8074 | 8075 | 12076 | 65515 | 23456 | 65517..=65520 | 64496..=64511 | 65535..=65551)
}

/// ASNs AWS accepts as a VGW's Amazon-side ASN.
pub fn valid_amazon_asn(asn: u32) -> bool {
    (64512..=65534).contains(&asn) || (4_200_000_000..=4_294_967_294).contains(&asn)
}

/// Tunnel inside CIDRs that AWS reserves.
pub fn reserved_inside_cidr(net: Ipv4Net) -> bool {
    let o = net.network().octets();
    (o[0] == 169 && o[1] == 254 && o[2] <= 5 && o[3] < 4) || net == "169.254.169.252/30".parse::<Ipv4Net>().expect("literal")
}

/// Whether an inside CIDR lies in Azure's APIPA range for custom BGP addresses.
pub fn in_azure_apipa_range(net: Ipv4Net) -> bool {
    let o = net.network().octets();
    o[0] == 169 && o[1] == 254 && (o[2] == 21 || o[2] == 22)
}

/// Whether two networks share any address.
pub fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// What the unit tests of the config modules share.
#[cfg(test)]
mod testing {
    use std::path::Path;

    use super::{ConfigError, ConfigErrors, EXAMPLE, Loaded, parse};

    pub fn no_env(_: &str) -> Option<String> {
        None
    }

    pub fn parse_str(text: &str) -> Result<Loaded, ConfigErrors> {
        parse(text, Path::new("t.toml"), &no_env)
    }

    pub fn errors(text: &str) -> Vec<ConfigError> {
        match parse_str(text) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e.0,
        }
    }

    /// The example with its first `old` replaced by `new`.
    pub fn replace(old: &str, new: &str) -> String {
        assert!(EXAMPLE.contains(old), "{old} not in EXAMPLE");
        EXAMPLE.replacen(old, new, 1)
    }
}
