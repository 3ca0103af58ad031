//! `[azure]`: subscription, names, location, VNet address space and GatewaySubnet, the
//! gateway's SKU, generation, VPN type and ASN, and Azure's clouds and their locations.

use std::ops::Range;

use ipnet::Ipv4Net;

use super::backend::parse_backend;
use super::cross::Area::{self, Africa, Asia, Europe, MiddleEast, NorthAmerica, Oceania, SouthAmerica};
use super::cross::{area_in, names};
use super::error::{Problem, problem};
use super::prefixes::{last_subnet, parse_v4_prefix};
use super::schema::{At, Checker, Section, closest, did_you_mean};
use super::{Backend, GatewaySku, Generation, Mode, azure_reserved_asn};

/// The subscription of a simulated Azure side when none is given.
pub(super) const SIM_SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000000";

impl Checker<'_> {
    pub(super) fn azure(&mut self, t: &Section<'_, '_>, mode: Mode, env: &dyn Fn(&str) -> Option<String>) -> AzurePart {
        let backend = match self.string(t, "backend") {
            None => Some(Backend::Sim).filter(|_| !t.has("backend")),
            Some(b) => self.checked("azure.backend", &b, |s| parse_backend(s, "azure", "aws")),
        };

        let sub_raw = self.string(t, "subscription_id");
        let sub_wrong_type = t.get("subscription_id").is_some_and(|v| !v.get_ref().is_str());
        let subscription_id = match sub_raw.filter(|s| !s.value.is_empty()) {
            _ if sub_wrong_type => None,
            Some(s) => self.checked("azure.subscription_id", &s, |s| parse_guid(s, "")),
            None => match env("AZURE_SUBSCRIPTION_ID").filter(|s| !s.is_empty()) {
                Some(s) => {
                    let v = At { value: s, span: None };
                    self.checked("azure.subscription_id", &v, |s| parse_guid(s, "AZURE_SUBSCRIPTION_ID"))
                }
                None => match backend {
                    Some(Backend::Sim) => Some(SIM_SUBSCRIPTION.to_owned()),
                    Some(Backend::Real) => {
                        self.error(
                            "azure.subscription_id",
                            t.span.clone(),
                            r#"is required with backend = "azure" and AZURE_SUBSCRIPTION_ID is not set"#,
                            "add subscription_id = \"<GUID>\" to [azure] or export AZURE_SUBSCRIPTION_ID (`az account show --query id -o tsv` prints it)",
                        );
                        None
                    }
                    None => None,
                },
            },
        };

        let resource_group = self
            .string(t, "resource_group")
            .and_then(|v| self.checked("azure.resource_group", &v, |s| check_resource_group(s).map(|()| s.clone())));
        let endpoint = self.endpoint(t);
        let cloud = AzureCloud::of(endpoint.as_ref().and_then(|e| e.as_deref()));
        let location = self.string(t, "location").and_then(|v| {
            let known = self.checked("azure.location", &v, |s| check_location(s).and_then(|()| check_azure_location(s, cloud)))?;
            if let Some(warning) = known {
                self.warn("azure.location", warning);
            }
            Some(v.value)
        });
        let vnet = self.string(t, "vnet").and_then(|v| self.checked("azure.vnet", &v, |s| check_vnet(s).map(|()| s.clone())));

        let address_space = self.string_list(t, "address_space").and_then(|list| self.prefix_list("azure.address_space", &list));

        let gateway_subnet = self.string(t, "gateway_subnet").and_then(|v| {
            let net = self.checked("azure.gateway_subnet", &v, |s| parse_v4_prefix(s))?;
            self.gateway_subnet(net, v.span.clone(), address_space.as_deref())
        });

        let sku_raw = self.string(t, "gateway_sku");
        let gateway_sku = match &sku_raw {
            None => Some(GatewaySku::VpnGw1AZ).filter(|_| !t.has("gateway_sku")),
            Some(v) => self.checked("azure.gateway_sku", v, |s| parse_sku(s)),
        };
        let gen_raw = self.string(t, "gateway_generation");
        let gateway_generation = match &gen_raw {
            None => Some(Generation::Generation1).filter(|_| !t.has("gateway_generation")),
            Some(v) => self.checked("azure.gateway_generation", v, |s| parse_generation(s)),
        };
        let mut pair_ok = true;
        if let (Some(sku), Some(generation)) = (gateway_sku, gateway_generation)
            && let Err(p) = check_sku_generation(sku, generation)
        {
            let span = gen_raw.as_ref().or(sku_raw.as_ref()).and_then(|v| v.span.clone());
            self.report("azure.gateway_generation", span, p);
            pair_ok = false;
        }

        if let Some(v) = self.string(t, "vpn_type") {
            self.checked("azure.vpn_type", &v, |s| check_vpn_type(s));
        }

        let asn = match self.integer(t, "asn") {
            None if t.has("asn") => None,
            None => Some(65000),
            Some(v) => self.checked("azure.asn", &v, |&n| check_azure_asn(n, mode)),
        };

        AzurePart {
            backend,
            subscription_id,
            resource_group,
            location,
            vnet,
            address_space,
            gateway_subnet,
            gateway_sku: gateway_sku.filter(|_| pair_ok),
            gateway_generation: gateway_generation.filter(|_| pair_ok),
            asn,
            endpoint,
        }
    }

    fn gateway_subnet(&mut self, net: Ipv4Net, span: Option<Range<usize>>, space: Option<&[At<Ipv4Net>]>) -> Option<Ipv4Net> {
        const F: &str = "azure.gateway_subnet";
        let mut ok = true;
        if net.prefix_len() > 29 {
            let bigger = Ipv4Net::new(net.network(), 27).expect("27 <= 32").trunc();
            self.error(
                F,
                span.clone(),
                format!("{net} is a /{}; Azure's GatewaySubnet must be a /29 or larger", net.prefix_len()),
                format!("use a /27 (recommended), e.g. \"{bigger}\""),
            );
            ok = false;
        } else if net.prefix_len() >= 28 {
            let bigger = Ipv4Net::new(net.network(), 27).expect("27 <= 32").trunc();
            self.warn(
                F,
                format!(
                    "{net} is a /{}; Azure recommends /27 or larger for GatewaySubnet (e.g. {bigger}) so the gateway can grow",
                    net.prefix_len()
                ),
            );
        }
        if let Some(space) = space
            && !space.iter().any(|a| a.value.contains(&net))
        {
            let listed: Vec<String> = space.iter().map(|a| a.value.to_string()).collect();
            let example = space
                .iter()
                .find(|a| a.value.prefix_len() <= 27)
                .map(|a| format!(", e.g. \"{}\"", last_subnet(a.value, 27)))
                .unwrap_or_default();
            self.error(
                F,
                span,
                format!("{net} is not inside azure.address_space ({})", listed.join(", ")),
                format!("use a subnet of the VNet's address space{example}"),
            );
            ok = false;
        }
        ok.then_some(net)
    }
}

/// What the [azure] walk produced; `None` fields had an error reported.
#[derive(Debug)]
pub(super) struct AzurePart {
    pub(super) backend: Option<Backend>,
    pub(super) subscription_id: Option<String>,
    pub(super) resource_group: Option<String>,
    pub(super) location: Option<String>,
    pub(super) vnet: Option<String>,
    pub(super) address_space: Option<Vec<At<Ipv4Net>>>,
    pub(super) gateway_subnet: Option<Ipv4Net>,
    pub(super) gateway_sku: Option<GatewaySku>,
    pub(super) gateway_generation: Option<Generation>,
    pub(super) asn: Option<u32>,
    pub(super) endpoint: Option<Option<String>>,
}

pub(super) fn parse_guid(s: &str, from_env: &str) -> Result<String, Problem> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lens == [8, 4, 4, 4, 12] && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit())) {
        return Ok(s.to_ascii_lowercase());
    }
    let what = if from_env.is_empty() { format!("{s:?}") } else { format!("{from_env} ({s:?})") };
    Err(problem(
        format!("{what} is not a subscription GUID (8-4-4-4-12 hexadecimal digits)"),
        "copy it from `az account show --query id -o tsv`, e.g. \"00000000-0000-0000-0000-000000000000\"",
    ))
}

fn check_resource_group(s: &str) -> Result<(), Problem> {
    let fix = r#"use 1-90 letters, digits, '_', '(', ')', '-' or '.', not ending with '.', e.g. "rg-vpn""#;
    let len = s.chars().count();
    if !(1..=90).contains(&len) {
        return Err(problem(format!("is {len} characters long; Azure resource group names have 1 to 90"), fix));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '(' | ')' | '-' | '.'))) {
        return Err(problem(format!("contains {c:?}, which Azure refuses in a resource group name"), fix));
    }
    if s.ends_with('.') {
        return Err(problem("ends with '.', which Azure refuses in a resource group name", fix));
    }
    Ok(())
}

fn check_vnet(s: &str) -> Result<(), Problem> {
    let fix = r#"use 2-64 letters, digits, '_', '-' or '.', starting with a letter or digit and ending with a letter, digit or '_', e.g. "vnet-hub""#;
    let len = s.chars().count();
    if !(2..=64).contains(&len) {
        return Err(problem(format!("is {len} characters long; Azure virtual network names have 2 to 64"), fix));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        return Err(problem(format!("contains {c:?}, which Azure refuses in a virtual network name"), fix));
    }
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(problem("must start with a letter or digit", fix));
    }
    if !s.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        return Err(problem("must end with a letter, digit or '_'", fix));
    }
    Ok(())
}

fn check_location(s: &str) -> Result<(), Problem> {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Ok(());
    }
    let normalised: String = s.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect();
    let fix = if normalised.is_empty() || normalised == s {
        "use the location's short name, as `az account list-locations -o table` prints it, e.g. \"japaneast\"".to_owned()
    } else {
        format!("did you mean {normalised:?}? Azure locations are lowercase letters and digits (`az account list-locations -o table`)")
    };
    Err(problem(format!("{s:?} is not an Azure location name"), fix))
}

fn parse_sku(s: &str) -> Result<GatewaySku, Problem> {
    if let Some(sku) = GatewaySku::parse(s) {
        return Ok(sku);
    }
    let all: Vec<&str> = GatewaySku::ALL.iter().map(|k| k.name()).collect();
    let list = all.join(", ");
    let lower = s.to_ascii_lowercase();
    if lower == "basic" {
        return Err(problem(
            "Basic supports neither active-active nor IKEv2, which this VPN needs",
            "use gateway_sku = \"VpnGw1AZ\" (with Generation1) or a larger AZ SKU",
        ));
    }
    if let Some(sku) = GatewaySku::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(s)) {
        return Err(problem(format!("{s:?} is not spelled as Azure expects"), format!("did you mean \"{sku}\"?")));
    }
    if let Some(sku) = GatewaySku::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(&format!("{s}AZ"))) {
        let generation = if sku.supports(Generation::Generation1) { "Generation1" } else { "Generation2" };
        return Err(problem(
            format!("{s} can no longer be created; Azure only creates the zone-redundant SKUs VpnGw1AZ..VpnGw5AZ now"),
            format!("use its AZ equivalent: gateway_sku = \"{sku}\" (with gateway_generation = \"{generation}\")"),
        ));
    }
    if lower.starts_with("ergw") {
        return Err(problem(format!("{s} is an ExpressRoute gateway SKU, not a VPN gateway SKU"), format!("use one of {list}")));
    }
    let hint = closest(s, &all).map(|c| format!("did you mean \"{c}\"? ")).unwrap_or_default();
    Err(problem(format!("{s:?} is not a VPN gateway SKU"), format!("{hint}use one of {list}")))
}

fn parse_generation(s: &str) -> Result<Generation, Problem> {
    match s {
        "Generation1" => Ok(Generation::Generation1),
        "Generation2" => Ok(Generation::Generation2),
        _ => {
            let lower = s.to_ascii_lowercase();
            let hint = if lower.ends_with('1') {
                "did you mean \"Generation1\"? ".to_owned()
            } else if lower.ends_with('2') {
                "did you mean \"Generation2\"? ".to_owned()
            } else {
                closest(s, &["Generation1", "Generation2"]).map(|c| format!("did you mean {c:?}? ")).unwrap_or_default()
            };
            Err(problem(
                format!("{s:?} is not a gateway generation"),
                format!("{hint}use \"Generation1\" (VpnGw1AZ-3AZ) or \"Generation2\" (VpnGw2AZ-5AZ)"),
            ))
        }
    }
}

fn check_sku_generation(sku: GatewaySku, generation: Generation) -> Result<(), Problem> {
    if sku.supports(generation) {
        return Ok(());
    }
    let (other, alternative) = match generation {
        Generation::Generation1 => ("Generation2", GatewaySku::VpnGw3AZ),
        Generation::Generation2 => ("Generation1", GatewaySku::VpnGw2AZ),
    };
    Err(problem(
        format!(
            "{sku} cannot be created as {generation}; Azure refuses the pair with VirtualNetworkGatewaySkuCannotBeCreatedForSpecifiedVmGeneration"
        ),
        format!(
            "set gateway_generation = \"{other}\" (or gateway_sku = \"{alternative}\" with {generation}); valid pairs: {}",
            GatewaySku::valid_pairs()
        ),
    ))
}

fn check_vpn_type(s: &str) -> Result<(), Problem> {
    match s {
        "RouteBased" => Ok(()),
        "PolicyBased" => Err(problem(
            "PolicyBased gateways are Basic-only: IKEv1, a single tunnel, no active-active",
            "set vpn_type = \"RouteBased\" (or remove the line; it is the default)",
        )),
        _ => {
            let hint = closest(s, &["RouteBased"]).map(|c| format!("did you mean {c:?}? ")).unwrap_or_default();
            Err(problem(format!("{s:?} is not a VPN type"), format!("{hint}use \"RouteBased\" (the default)")))
        }
    }
}

fn check_azure_asn(n: i128, mode: Mode) -> Result<u32, Problem> {
    const FIX: &str = "use 65000 (the default) or another private ASN (64512-65514, 4200000000-4294967294) that Azure does not reserve";
    if !(1..=4_294_967_294).contains(&n) {
        return Err(problem(format!("{n} is not a valid ASN; ASNs run from 1 to 4294967294"), FIX));
    }
    let asn = n as u32;
    if asn == 65515 && mode == Mode::BgpHa {
        return Err(problem(
            "65515 is Azure's default gateway ASN and is reserved: Azure refuses it as a custom ASN, and bgp-ha uses this ASN for the AWS customer gateways too",
            "set asn = 65000 (the default) or another private ASN that is not reserved",
        ));
    }
    if azure_reserved_asn(asn) {
        return Err(problem(
            format!("{asn} is reserved by Azure (8074, 8075, 12076, 23456, 64496-64511, 65515, 65517-65520, 65535-65551)"),
            FIX,
        ));
    }
    Ok(asn)
}

/// Azure's public-cloud regions, as `az account list-locations --query "[].name"`
/// names them (physical regions only: no logical "asia", "europe", "global", no EUAP
/// canaries). Source: Azure's region list (azure.microsoft.com/explore/global-
/// infrastructure/geographies) and `az account list-locations`, 2025, including
/// regions open only to some customers (jioindia*, uaecentral, southafricawest,
/// australiacentral2, taiwan*) and recently opened ones. Azure adds regions: a new
/// one missing here is a one-line change.
const AZURE_PUBLIC_LOCATIONS: &[(&str, Area)] = &[
    ("eastus", NorthAmerica),
    ("eastus2", NorthAmerica),
    ("southcentralus", NorthAmerica),
    ("westus", NorthAmerica),
    ("westus2", NorthAmerica),
    ("westus3", NorthAmerica),
    ("centralus", NorthAmerica),
    ("northcentralus", NorthAmerica),
    ("westcentralus", NorthAmerica),
    ("canadacentral", NorthAmerica),
    ("canadaeast", NorthAmerica),
    ("mexicocentral", NorthAmerica),
    ("brazilsouth", SouthAmerica),
    ("brazilsoutheast", SouthAmerica),
    ("chilecentral", SouthAmerica),
    ("northeurope", Europe),
    ("westeurope", Europe),
    ("uksouth", Europe),
    ("ukwest", Europe),
    ("francecentral", Europe),
    ("francesouth", Europe),
    ("germanywestcentral", Europe),
    ("germanynorth", Europe),
    ("switzerlandnorth", Europe),
    ("switzerlandwest", Europe),
    ("norwayeast", Europe),
    ("norwaywest", Europe),
    ("swedencentral", Europe),
    ("swedensouth", Europe),
    ("polandcentral", Europe),
    ("italynorth", Europe),
    ("spaincentral", Europe),
    ("austriaeast", Europe),
    ("belgiumcentral", Europe),
    ("denmarkeast", Europe),
    ("uaenorth", MiddleEast),
    ("uaecentral", MiddleEast),
    ("qatarcentral", MiddleEast),
    ("israelcentral", MiddleEast),
    ("southafricanorth", Africa),
    ("southafricawest", Africa),
    ("eastasia", Asia),
    ("southeastasia", Asia),
    ("japaneast", Asia),
    ("japanwest", Asia),
    ("koreacentral", Asia),
    ("koreasouth", Asia),
    ("centralindia", Asia),
    ("southindia", Asia),
    ("westindia", Asia),
    ("jioindiacentral", Asia),
    ("jioindiawest", Asia),
    ("indonesiacentral", Asia),
    ("malaysiawest", Asia),
    ("taiwannorth", Asia),
    ("taiwannorthwest", Asia),
    ("australiaeast", Oceania),
    ("australiasoutheast", Oceania),
    ("australiacentral", Oceania),
    ("australiacentral2", Oceania),
    ("newzealandnorth", Oceania),
];

/// Azure Government's regions (ARM endpoint `https://management.usgovcloudapi.net`),
/// as `az account list-locations` names them there.
const AZURE_GOVERNMENT_LOCATIONS: &[(&str, Area)] = &[
    ("usgovvirginia", NorthAmerica),
    ("usgovarizona", NorthAmerica),
    ("usgovtexas", NorthAmerica),
    ("usdodcentral", NorthAmerica),
    ("usdodeast", NorthAmerica),
];

/// Azure China's regions, operated by 21Vianet (ARM endpoint
/// `https://management.chinacloudapi.cn`).
const AZURE_CHINA_LOCATIONS: &[(&str, Area)] =
    &[("chinaeast", Asia), ("chinaeast2", Asia), ("chinaeast3", Asia), ("chinanorth", Asia), ("chinanorth2", Asia), ("chinanorth3", Asia)];

const AZURE_GOVERNMENT_ENDPOINT: &str = "https://management.usgovcloudapi.net";
const AZURE_CHINA_ENDPOINT: &str = "https://management.chinacloudapi.cn";

/// Which Azure cloud `azure.endpoint` points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AzureCloud {
    /// No endpoint, or `management.azure.com`.
    Public,
    /// `*.usgovcloudapi.net`.
    Government,
    /// `*.chinacloudapi.cn`.
    China,
    /// Anything else: a local fake, Azure Stack Hub, a proxy.
    Other,
}

impl AzureCloud {
    fn of(endpoint: Option<&str>) -> Self {
        let Some(url) = endpoint.filter(|e| !e.is_empty()) else { return AzureCloud::Public };
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let host = rest.split(['/', ':', '?']).next().unwrap_or("").to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        if host == "management.azure.com" {
            AzureCloud::Public
        } else if host == "usgovcloudapi.net" || host.ends_with(".usgovcloudapi.net") {
            AzureCloud::Government
        } else if host == "chinacloudapi.cn" || host.ends_with(".chinacloudapi.cn") {
            AzureCloud::China
        } else {
            AzureCloud::Other
        }
    }

    fn locations(self) -> &'static [(&'static str, Area)] {
        match self {
            AzureCloud::Public | AzureCloud::Other => AZURE_PUBLIC_LOCATIONS,
            AzureCloud::Government => AZURE_GOVERNMENT_LOCATIONS,
            AzureCloud::China => AZURE_CHINA_LOCATIONS,
        }
    }

    fn name(self) -> &'static str {
        match self {
            AzureCloud::Public | AzureCloud::Other => "Azure's public cloud",
            AzureCloud::Government => "Azure Government",
            AzureCloud::China => "Azure China",
        }
    }
}

/// The area of an Azure location of any cloud.
pub(super) fn azure_area(location: &str) -> Option<Area> {
    [AZURE_PUBLIC_LOCATIONS, AZURE_GOVERNMENT_LOCATIONS, AZURE_CHINA_LOCATIONS].into_iter().find_map(|l| area_in(l, location))
}

/// A location known to the cloud `azure.endpoint` names. `Ok(Some(warning))` for a
/// location no known cloud has, behind an endpoint of another kind (Azure Stack Hub
/// and local fakes may have their own locations).
fn check_azure_location(s: &str, cloud: AzureCloud) -> Result<Option<String>, Problem> {
    let own = cloud.locations();
    if area_in(own, s).is_some() || (cloud == AzureCloud::Other && azure_area(s).is_some()) {
        return Ok(None);
    }
    let sovereign = [(AzureCloud::Government, AZURE_GOVERNMENT_ENDPOINT), (AzureCloud::China, AZURE_CHINA_ENDPOINT)];
    if cloud == AzureCloud::Public
        && let Some((other, endpoint)) = sovereign.iter().find(|(c, _)| area_in(c.locations(), s).is_some())
    {
        return Err(problem(
            format!("{s:?} is an {} location, which the public cloud's endpoint does not serve", other.name()),
            format!("set [azure] endpoint = \"{endpoint}\" to use {}, or use a public location such as \"japaneast\"", other.name()),
        ));
    }
    let candidates: Vec<&str> = if cloud == AzureCloud::Other {
        [AZURE_PUBLIC_LOCATIONS, AZURE_GOVERNMENT_LOCATIONS, AZURE_CHINA_LOCATIONS].into_iter().flat_map(names).collect()
    } else {
        names(own).collect()
    };
    let hint = did_you_mean(s, &candidates);
    if cloud == AzureCloud::Other {
        return Ok(Some(format!(
            "{s:?} is not a location of Azure's public, Government or China clouds; {hint}it is accepted because azure.endpoint names another ARM endpoint, which may have locations of its own"
        )));
    }
    let in_public = cloud != AzureCloud::Public && area_in(AZURE_PUBLIC_LOCATIONS, s).is_some();
    let what = if in_public {
        format!("{s:?} is a public-cloud location, not one of {}'s (azure.endpoint names {})", cloud.name(), cloud.name())
    } else {
        format!("{s:?} is not an Azure location of {}", cloud.name())
    };
    let examples: Vec<&str> = names(own).take(3).collect();
    Err(problem(
        what,
        format!(
            "{hint}use a location as `az account list-locations --query \"[].name\" -o tsv` prints it, e.g. {}",
            examples.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>().join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse;
    use crate::config::testing::*;

    #[test]
    fn azure_names() {
        assert!(check_resource_group("rg_(x).y-1").is_ok());
        assert!(check_resource_group("rg.").is_err());
        assert!(check_resource_group(&"r".repeat(91)).is_err());
        assert!(check_resource_group("rg vpn").is_err());
        assert!(check_vnet("v").is_err());
        assert!(check_vnet("vnet_").is_ok());
        assert!(check_vnet("vnet-").is_err());
        assert!(check_vnet("_vnet").is_err());
        assert!(check_location("japaneast").is_ok());
        assert!(check_location("Japan East").unwrap_err().fix.contains("\"japaneast\""));
    }

    #[test]
    fn guids() {
        assert_eq!(parse_guid("ABCDEF01-2345-6789-abcd-ef0123456789", "").unwrap(), "abcdef01-2345-6789-abcd-ef0123456789");
        assert!(parse_guid("abcdef01-2345-6789-abcd-ef012345678", "").is_err());
        assert!(parse_guid("gbcdef01-2345-6789-abcd-ef0123456789", "").is_err());
        assert!(parse_guid("abcdef0123456789abcdef0123456789", "").is_err());
    }

    #[test]
    fn subscription_sources() {
        let text = replace("backend = \"sim\"", "backend = \"azure\"");
        let errs = parse(&text, Path::new("t.toml"), &no_env).unwrap_err().0;
        assert!(errs.iter().any(|e| e.field == "azure.subscription_id" && e.fix.contains("AZURE_SUBSCRIPTION_ID")));
        let env = |k: &str| (k == "AZURE_SUBSCRIPTION_ID").then(|| "AAAAAAAA-0000-0000-0000-000000000001".to_owned());
        let c = parse(&text, Path::new("t.toml"), &env).unwrap().config;
        assert_eq!(c.azure.backend, Backend::Real);
        assert_eq!(c.azure.subscription_id, "aaaaaaaa-0000-0000-0000-000000000001");
        let file = replace("# subscription_id = ", "subscription_id = ");
        let c = parse(&file, Path::new("t.toml"), &env).unwrap().config;
        assert_eq!(c.azure.subscription_id, SIM_SUBSCRIPTION, "the file wins over the environment");
        let bad_env = |k: &str| (k == "AZURE_SUBSCRIPTION_ID").then(|| "nope".to_owned());
        let errs = parse(&text, Path::new("t.toml"), &bad_env).unwrap_err().0;
        assert!(errs[0].problem.contains("AZURE_SUBSCRIPTION_ID"));
    }

    #[test]
    fn gateway_subnet_sizes() {
        let w = parse_str(&replace("10.1.255.0/27", "10.1.255.0/28")).unwrap().warnings;
        assert_eq!(w.len(), 1);
        assert!(w[0].message.contains("/27"));
        let errs = errors(&replace("10.1.255.0/27", "10.1.255.0/30"));
        assert!(errs.iter().any(|e| e.field == "azure.gateway_subnet" && e.problem.contains("/29")));
        assert!(parse_str(&replace("10.1.255.0/27", "10.1.0.0/16")).is_ok());
    }

    #[test]
    fn skus() {
        assert_eq!(parse_sku("VpnGw3AZ").unwrap(), GatewaySku::VpnGw3AZ);
        assert!(parse_sku("vpngw1az").unwrap_err().fix.contains("\"VpnGw1AZ\""));
        assert!(parse_sku("VpnGw5").unwrap_err().fix.contains("\"VpnGw5AZ\" (with gateway_generation = \"Generation2\")"));
        assert!(parse_sku("ErGw1AZ").unwrap_err().problem.contains("ExpressRoute"));
        assert!(parse_sku("VpnGw6AZ").unwrap_err().fix.contains("VpnGw1AZ, VpnGw2AZ"));
        assert!(parse_generation("Gen2").unwrap_err().fix.contains("did you mean \"Generation2\""));
        for sku in GatewaySku::ALL {
            for g in [Generation::Generation1, Generation::Generation2] {
                assert_eq!(check_sku_generation(sku, g).is_ok(), sku.supports(g));
            }
        }
    }

    #[test]
    fn azure_asns() {
        assert_eq!(check_azure_asn(65000, Mode::BgpHa).unwrap(), 65000);
        assert!(check_azure_asn(0, Mode::StaticHa).is_err());
        assert!(check_azure_asn(4_294_967_295, Mode::StaticHa).is_err());
        assert!(check_azure_asn(-1, Mode::StaticHa).is_err());
        assert!(check_azure_asn(4_294_967_294, Mode::StaticHa).is_ok());
        assert!(check_azure_asn(65515, Mode::BgpHa).unwrap_err().problem.contains("default"));
        assert!(check_azure_asn(65515, Mode::StaticHa).unwrap_err().problem.contains("reserved"));
    }
}
