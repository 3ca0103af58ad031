//! The simulated Azure subscription(s): VNets (prerequisites), public IPs, VPN
//! gateways, LocalNetworkGateways, Connections, and the ARM operations on them.
//!
//! Resources are keyed by ARM id. A PUT is create-or-update; a PUT or DELETE starts a
//! long-running operation (`provisioningState` Updating / Deleting) that settles on the
//! virtual clock; a finished delete removes the resource.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};
use vpnbridge_core::config::{GatewaySku, Generation, azure_reserved_asn};
use vpnbridge_core::endpoint::ErrorKind;
use vpnbridge_core::model::{BgpPeeringAddress, CustomBgpAddress, LngBgp, ProvisioningState, Tags};
use vpnbridge_core::secret::Psk;

use super::{ApiError, AzureKind, Phase, World, pool_ip, psk_serde};
use crate::latency::ms;

/// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Network/{kind}/{name}`.
pub fn arm_id(subscription: &str, resource_group: &str, kind: &str, name: &str) -> String {
    format!("/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.Network/{kind}/{name}")
}

/// The last segment of an ARM id.
pub fn arm_name(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

/// The `/subscriptions/{s}/resourceGroups/{rg}` prefix of an ARM id.
fn arm_scope(id: &str) -> &str {
    id.find("/providers/").map_or(id, |i| &id[..i])
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AzureWorld {
    /// Mutating ARM calls received (PUT, PATCH, DELETE, POST actions), failed included.
    pub mutating_calls: u64,
    next_public_ip: u32,
    pub virtual_networks: BTreeMap<String, AzVnet>,
    pub public_ips: BTreeMap<String, AzPublicIp>,
    pub gateways: BTreeMap<String, AzGateway>,
    pub local_network_gateways: BTreeMap<String, AzLng>,
    pub connections: BTreeMap<String, AzConnection>,
    /// Public IPs (by id) still held by the ipConfiguration of a deleted gateway: ARM
    /// releases a gateway's public IPs a while after the gateway's delete finishes.
    #[serde(default)]
    pub public_ip_releases: BTreeMap<String, Release>,
    /// Azure VMs named by `[probe] azure_vm` (the users' test VMs), by ARM id.
    #[serde(default)]
    pub virtual_machines: BTreeMap<String, super::ProbeHost>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzVnet {
    pub id: String,
    pub name: String,
    pub location: String,
    pub address_space: Vec<Ipv4Net>,
    pub subnets: Vec<AzSubnet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzSubnet {
    pub id: String,
    pub name: String,
    pub prefix: Ipv4Net,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzPublicIp {
    pub id: String,
    pub name: String,
    pub location: String,
    /// `Standard` or `Basic`.
    pub sku: String,
    pub static_allocation: bool,
    pub zones: Vec<String>,
    pub ip: Option<Ipv4Addr>,
    pub phase: Phase<ProvisioningState>,
    pub tags: Tags,
}

/// A public IP held by the ipConfiguration of a gateway being (or just) deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub ip_configuration_id: String,
    /// Virtual time (ms) until which the IP is in use: the gateway's delete end plus
    /// the release window.
    pub until: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzGateway {
    pub id: String,
    pub name: String,
    pub location: String,
    pub gateway_type: String,
    pub vpn_type: String,
    pub sku: String,
    pub generation: String,
    pub active_active: bool,
    pub enable_bgp: bool,
    pub asn: Option<u32>,
    /// In order: instance k is the k-th ipConfiguration.
    pub ip_configurations: Vec<AzIpConfig>,
    /// `bgpSettings.bgpPeeringAddresses`: one per ipConfiguration when BGP is on, with
    /// the default address ARM gives each instance in the GatewaySubnet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bgp_peering_addresses: Vec<BgpPeeringAddress>,
    pub phase: Phase<ProvisioningState>,
    pub tags: Tags,
    /// The last SKU resize: Azure updates an active-active gateway's instances one at
    /// a time, so each instance's tunnels drop in turn while the other's carry the
    /// traffic ("there isn't much downtime because you don't have to delete and
    /// rebuild the gateway", MicrosoftDocs azure-docs, vpn-gateway-about-vpn-gateway-
    /// settings, "Resizing or changing a SKU").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<Resize>,
}

/// A gateway resize in time: the gateway reads `Updating` from `start` to `end`;
/// instance k restarts during [`Resize::restart_window`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resize {
    pub start: u64,
    pub end: u64,
    /// When the gateway was last provisioned before the resize (its tunnels' age).
    pub provisioned_since: u64,
}

impl AzGateway {
    /// The resize in progress, if what the gateway is `Updating` for is a resize.
    pub fn resizing(&self) -> Option<&Resize> {
        self.resize.as_ref().filter(|r| self.phase.state == ProvisioningState::Updating && self.phase.since >= r.start)
    }

    /// When instance `k`'s tunnels last (re)started on the gateway's side: its last
    /// provisioning, or the end of its restart window in the last resize.
    pub fn instance_since(&self, k: usize, now: u64) -> u64 {
        match &self.resize {
            Some(r) if self.phase.since >= r.start => {
                let (_, back) = r.restart_window(k);
                if now >= back { r.provisioned_since.max(back) } else { r.provisioned_since }
            }
            _ => self.phase.since,
        }
    }
}

impl Resize {
    /// When instance `k` is down for its update: instance 0 in the first quarter of
    /// the resize, instance 1 in the third, so one instance is always up.
    pub fn restart_window(&self, k: usize) -> (u64, u64) {
        let span = self.end.saturating_sub(self.start);
        let begin = self.start.saturating_add((span / 2).saturating_mul(k as u64));
        (begin, begin.saturating_add(span / 4))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzIpConfig {
    pub id: String,
    pub name: String,
    pub subnet_id: String,
    pub public_ip_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzLng {
    pub id: String,
    pub name: String,
    pub location: String,
    pub gateway_ip: Ipv4Addr,
    pub address_prefixes: Vec<IpNet>,
    /// `bgpSettings`: the BGP peer behind this LocalNetworkGateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<LngBgp>,
    pub phase: Phase<ProvisioningState>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzConnection {
    pub id: String,
    pub name: String,
    pub location: String,
    pub gateway_id: String,
    pub local_network_gateway_id: String,
    pub connection_type: String,
    pub protocol: String,
    #[serde(with = "psk_serde")]
    pub shared_key: Psk,
    pub enable_bgp: bool,
    /// `gatewayCustomBgpIpAddresses`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_bgp_addresses: Vec<CustomBgpAddress>,
    pub dpd_timeout_seconds: u32,
    pub phase: Phase<ProvisioningState>,
    pub tags: Tags,
}

/// Body of `PUT publicIPAddresses/{name}`.
#[derive(Debug, Clone)]
pub struct PublicIpPut {
    pub location: String,
    pub sku: String,
    pub static_allocation: bool,
    pub zones: Vec<String>,
    pub tags: Tags,
}

/// One `ipConfigurations[]` entry of a gateway PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfigPut {
    pub name: String,
    pub subnet_id: String,
    pub public_ip_id: String,
}

/// Body of `PUT virtualNetworkGateways/{name}`.
#[derive(Debug, Clone)]
pub struct GatewayPut {
    pub location: String,
    pub gateway_type: String,
    pub vpn_type: String,
    pub sku: String,
    pub generation: String,
    pub active_active: bool,
    pub enable_bgp: bool,
    pub asn: Option<u32>,
    pub ip_configurations: Vec<IpConfigPut>,
    /// `bgpSettings.bgpPeeringAddresses[]`: (ipconfigurationId, customBgpIpAddresses).
    pub bgp_peering_addresses: Vec<BgpPeeringPut>,
    pub tags: Tags,
}

/// One `bgpSettings.bgpPeeringAddresses[]` entry of a gateway PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpPeeringPut {
    pub ip_configuration_id: String,
    pub custom: Vec<Ipv4Addr>,
}

/// Body of `PUT localNetworkGateways/{name}`.
#[derive(Debug, Clone)]
pub struct LngPut {
    pub location: String,
    pub gateway_ip: Ipv4Addr,
    pub address_prefixes: Vec<IpNet>,
    pub bgp: Option<LngBgp>,
    pub tags: Tags,
}

/// Body of `PUT connections/{name}`.
#[derive(Debug, Clone)]
pub struct ConnectionPut {
    pub location: String,
    pub gateway_id: String,
    pub local_network_gateway_id: String,
    pub connection_type: String,
    pub protocol: String,
    pub shared_key: Psk,
    pub enable_bgp: bool,
    pub custom_bgp_addresses: Vec<CustomBgpAddress>,
    pub dpd_timeout_seconds: u32,
    pub tags: Tags,
}

fn not_found(id: &str) -> ApiError {
    let (kind, name) = match id.rsplit('/').collect::<Vec<_>>().as_slice() {
        [name, kind, ..] => ((*kind).to_owned(), (*name).to_owned()),
        _ => (String::new(), id.to_owned()),
    };
    let rg = id.split('/').skip_while(|s| *s != "resourceGroups").nth(1).unwrap_or("");
    ApiError::new(
        404,
        ErrorKind::NotFound,
        "ResourceNotFound",
        format!("The Resource 'Microsoft.Network/{kind}/{name}' under resource group '{rg}' was not found."),
    )
}

fn in_progress(id: &str, op: &str) -> ApiError {
    ApiError::new(
        409,
        ErrorKind::Transient,
        "AnotherOperationInProgress",
        format!(
            "Another operation on this or dependent resource is in progress. To retrieve status of the operation use uri: {op}. (resource {id})"
        ),
    )
}

fn bad_reference(reference: &str, by: &str) -> ApiError {
    ApiError::new(
        400,
        ErrorKind::Permanent,
        "InvalidResourceReference",
        format!(
            "Resource {reference} referenced by resource {by} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region."
        ),
    )
}

fn e400(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(400, ErrorKind::Permanent, code, message)
}

/// ARM's default gateway ASN, taken when `enableBgp` is set without an ASN.
pub const AZURE_DEFAULT_ASN: u32 = 65515;

/// A BGP ASN Azure accepts for a gateway (its own default 65515 included) or for a
/// LocalNetworkGateway's peer ("You can't specify these ASNs for your on-premises VPN
/// devices", About BGP and VPN Gateway).
fn check_asn(asn: u32, of: &str, gateway: bool) -> Result<(), ApiError> {
    // ARM's code for a reserved ASN is unconfirmed (docs/bgp-ha.md, "Not known yet").
    if asn == 0 || (azure_reserved_asn(asn) && !(gateway && asn == AZURE_DEFAULT_ASN)) {
        return Err(e400("InvalidBgpAsn", format!("ASN {asn} is reserved by Azure and cannot be used for {of}.")));
    }
    Ok(())
}

/// Whether `ip` is in Azure's APIPA range for custom BGP addresses.
fn in_apipa_range(ip: Ipv4Addr) -> bool {
    (Ipv4Addr::new(169, 254, 21, 0)..=Ipv4Addr::new(169, 254, 22, 255)).contains(&ip)
}

/// The default BGP address ARM gives instance `k` of a gateway: an address of the
/// GatewaySubnet (the simulator takes the subnet's 5th and 6th addresses).
fn default_bgp_address(subnet: Option<&AzSubnet>, k: usize) -> Vec<Ipv4Addr> {
    subnet.map(|s| Ipv4Addr::from(u32::from(s.prefix.network()).wrapping_add(4 + k as u32))).into_iter().collect()
}

/// A gateway PUT's BGP settings as ARM checks and stores them: (asn, bgpPeeringAddresses).
fn gateway_bgp(
    id: &str,
    body: &GatewayPut,
    ip_config_ids: &[String],
    az: &AzureWorld,
) -> Result<(Option<u32>, Vec<BgpPeeringAddress>), ApiError> {
    if let Some(asn) = body.asn {
        check_asn(asn, &format!("gateway {id}"), true)?;
    }
    if !body.enable_bgp {
        // Whether ARM keeps custom addresses on a gateway without BGP is unconfirmed;
        // the simulator keeps them, so a later enableBgp uses them.
        return Ok((body.asn, peering_addresses(id, body, ip_config_ids, az)?));
    }
    let expected = if body.active_active { 2 } else { 1 };
    if !body.bgp_peering_addresses.is_empty() && body.bgp_peering_addresses.len() != expected {
        return Err(e400(
            "BgpPeeringAddressesCountNotCorrect",
            format!(
                "Number of BgpPeeringAddresses specified for gateway {id} is {}. It should be 1 for ActivePassive and 2 for ActiveActive gateway.",
                body.bgp_peering_addresses.len()
            ),
        ));
    }
    Ok((Some(body.asn.unwrap_or(AZURE_DEFAULT_ASN)), peering_addresses(id, body, ip_config_ids, az)?))
}

/// `bgpPeeringAddresses` as stored: one per ipConfiguration (named by id, without case),
/// custom addresses in the APIPA range and used by one instance only.
fn peering_addresses(id: &str, body: &GatewayPut, ip_config_ids: &[String], az: &AzureWorld) -> Result<Vec<BgpPeeringAddress>, ApiError> {
    let mut out: Vec<BgpPeeringAddress> = Vec::new();
    for p in &body.bgp_peering_addresses {
        let Some(k) = ip_config_ids.iter().position(|c| c.eq_ignore_ascii_case(&p.ip_configuration_id)) else {
            return Err(bad_reference(&p.ip_configuration_id, id));
        };
        if out.iter().any(|o| o.ip_configuration_id.eq_ignore_ascii_case(&ip_config_ids[k])) {
            return Err(e400(
                "InvalidRequestFormat",
                format!("bgpPeeringAddresses of gateway {id} name ipConfiguration {} twice.", ip_config_ids[k]),
            ));
        }
        for a in &p.custom {
            // ARM's code for this is unconfirmed (terraform-provider-azurerm #10262).
            if !in_apipa_range(*a) {
                return Err(e400(
                    "InvalidCustomBgpIpAddress",
                    format!(
                        "Custom BGP IP address {a} of gateway {id} is not valid: custom BGP addresses must be in the APIPA range 169.254.21.0 - 169.254.22.255."
                    ),
                ));
            }
            if out.iter().any(|o| o.custom.contains(a)) {
                return Err(e400(
                    "InvalidCustomBgpIpAddress",
                    format!(
                        "Custom BGP IP address {a} of gateway {id} is given to both ipConfigurations; each address belongs to one instance."
                    ),
                ));
            }
        }
        let subnet = body.ip_configurations.get(k).and_then(|c| az.subnet(&c.subnet_id));
        out.push(BgpPeeringAddress {
            ip_configuration_id: ip_config_ids[k].clone(),
            custom: p.custom.clone(),
            default: default_bgp_address(subnet, k),
        });
    }
    if body.enable_bgp {
        // Entries not given get ARM's defaults.
        for (k, cfg) in ip_config_ids.iter().enumerate() {
            if !out.iter().any(|o| o.ip_configuration_id.eq_ignore_ascii_case(cfg)) {
                let subnet = body.ip_configurations.get(k).and_then(|c| az.subnet(&c.subnet_id));
                out.push(BgpPeeringAddress {
                    ip_configuration_id: cfg.clone(),
                    custom: Vec::new(),
                    default: default_bgp_address(subnet, k),
                });
            }
        }
        out.sort_by_key(|o| ip_config_ids.iter().position(|c| c.eq_ignore_ascii_case(&o.ip_configuration_id)));
    }
    Ok(out)
}

/// What of a gateway's BGP settings a PUT changes: `enableBgp`, the ASN (ARM's default
/// when none is given) and each instance's custom addresses. A re-PUT that sends back
/// what GET showed (a gateway without BGP reads ASN 65515 and its default addresses)
/// changes none of them.
fn bgp_key(enable_bgp: bool, asn: Option<u32>, peering: &[BgpPeeringAddress]) -> (bool, u32, Vec<(String, Vec<Ipv4Addr>)>) {
    let mut custom: Vec<(String, Vec<Ipv4Addr>)> =
        peering.iter().filter(|p| !p.custom.is_empty()).map(|p| (p.ip_configuration_id.to_ascii_lowercase(), p.custom.clone())).collect();
    custom.sort();
    (enable_bgp, asn.unwrap_or(AZURE_DEFAULT_ASN), custom)
}

/// A Connection PUT's BGP as ARM checks it: `enableBgp` needs BGP on the gateway and a
/// BGP peer on the LocalNetworkGateway with another ASN; each
/// `gatewayCustomBgpIpAddresses` entry names one of the gateway's ipConfigurations and
/// one of that ipConfiguration's custom addresses.
fn check_connection_bgp(id: &str, body: &ConnectionPut, g: &AzGateway, lng: &AzLng) -> Result<(), ApiError> {
    // ARM's codes for these are unconfirmed (docs/bgp-ha.md, "Not known yet").
    if body.enable_bgp {
        if !g.enable_bgp {
            return Err(e400(
                "BgpNotEnabledOnGateway",
                format!("Connection {id} enables BGP, but gateway {} does not have BGP enabled.", g.id),
            ));
        }
        let Some(peer) = lng.bgp else {
            return Err(e400(
                "LocalNetworkGatewayBgpSettingsMissing",
                format!("Connection {id} enables BGP, but local network gateway {} has no bgpSettings.", lng.id),
            ));
        };
        if Some(peer.asn) == g.asn {
            return Err(e400(
                "InvalidBgpAsn",
                format!(
                    "The ASN {} of local network gateway {} is the ASN of gateway {}: a BGP peer must have another ASN.",
                    peer.asn, lng.id, g.id
                ),
            ));
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for c in &body.custom_bgp_addresses {
        let Some(p) = g.bgp_peering_addresses.iter().find(|p| p.ip_configuration_id.eq_ignore_ascii_case(&c.ip_configuration_id)) else {
            return Err(bad_reference(&c.ip_configuration_id, id));
        };
        if seen.iter().any(|s| s.eq_ignore_ascii_case(&c.ip_configuration_id)) {
            return Err(e400(
                "InvalidRequestFormat",
                format!("gatewayCustomBgpIpAddresses of connection {id} name {} twice.", c.ip_configuration_id),
            ));
        }
        seen.push(&c.ip_configuration_id);
        if !p.custom.contains(&c.address) {
            return Err(e400(
                "InvalidCustomBgpIpAddress",
                format!(
                    "Custom BGP IP address {} of connection {id} is not one of the custom BGP addresses of {} ({}).",
                    c.address,
                    c.ip_configuration_id,
                    p.custom.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn busy(p: &Phase<ProvisioningState>) -> bool {
    matches!(p.state, ProvisioningState::Updating | ProvisioningState::Deleting)
}

impl AzureWorld {
    pub(crate) fn settle(&mut self, now: u64) {
        fn gone(p: &Phase<ProvisioningState>, now: u64) -> bool {
            p.state == ProvisioningState::Deleting && p.elapsed(now)
        }
        self.public_ips.retain(|_, r| !gone(&r.phase, now));
        self.gateways.retain(|_, r| !gone(&r.phase, now));
        self.local_network_gateways.retain(|_, r| !gone(&r.phase, now));
        self.connections.retain(|_, r| !gone(&r.phase, now));
        self.public_ip_releases.retain(|_, r| r.until > now);
        self.public_ips.values_mut().for_each(|r| r.phase.settle(now));
        self.gateways.values_mut().for_each(|r| r.phase.settle(now));
        self.local_network_gateways.values_mut().for_each(|r| r.phase.settle(now));
        self.connections.values_mut().for_each(|r| r.phase.settle(now));
    }

    pub(crate) fn phase_of(&self, kind: AzureKind, id: &str) -> Option<(&Phase<ProvisioningState>, Option<Ipv4Addr>)> {
        match kind {
            AzureKind::PublicIp => self.public_ips.get(id).map(|r| (&r.phase, r.ip)),
            AzureKind::VpnGateway => self.gateways.get(id).map(|r| (&r.phase, None)),
            AzureKind::LocalNetworkGateway => self.local_network_gateways.get(id).map(|r| (&r.phase, None)),
            AzureKind::Connection => self.connections.get(id).map(|r| (&r.phase, None)),
        }
    }

    /// The gateway (if any) with an ipConfiguration in `subnet_id`.
    pub fn gateways_in_subnet<'a>(&'a self, subnet_id: &'a str) -> impl Iterator<Item = &'a AzGateway> + 'a {
        self.gateways.values().filter(move |g| g.ip_configurations.iter().any(|c| c.subnet_id == subnet_id))
    }

    /// The gateway whose ipConfiguration references public IP `pip_id`.
    pub fn gateway_using_public_ip(&self, pip_id: &str) -> Option<(&AzGateway, &AzIpConfig)> {
        self.gateways.values().find_map(|g| g.ip_configurations.iter().find(|c| c.public_ip_id == pip_id).map(|c| (g, c)))
    }

    /// The ipConfiguration of a deleted gateway that still holds public IP `pip_id` at
    /// `now`.
    pub fn public_ip_held_at(&self, pip_id: &str, now: u64) -> Option<&str> {
        self.public_ip_releases.get(pip_id).filter(|r| r.until > now).map(|r| r.ip_configuration_id.as_str())
    }

    /// The subnet with this id.
    pub fn subnet(&self, subnet_id: &str) -> Option<&AzSubnet> {
        self.virtual_networks.values().flat_map(|v| &v.subnets).find(|s| s.id == subnet_id)
    }

    pub(crate) fn allocate_public_ip(&mut self) -> Ipv4Addr {
        let n = self.next_public_ip;
        self.next_public_ip += 1;
        pool_ip(Ipv4Addr::new(20, 210, 0, 0), n)
    }
}

/// The ARM API. Every method here is one mutating call; `op` is the
/// `Azure-AsyncOperation` URL the response would carry (for the 409 message).
impl World {
    fn azure_call(&mut self) -> u64 {
        self.azure.mutating_calls += 1;
        self.now_ms
    }

    /// PUT publicIPAddresses/{name}: create (allocating the address) or update tags.
    pub fn put_public_ip(&mut self, id: &str, body: &PublicIpPut) -> Result<AzPublicIp, ApiError> {
        let now = self.azure_call();
        let dur = ms(self.latency.azure_public_ip);
        if let Some(existing) = self.azure.public_ips.get_mut(id) {
            if busy(&existing.phase) {
                return Err(in_progress(id, "(public IP operation)"));
            }
            if existing.sku != body.sku || existing.zones != body.zones || existing.static_allocation != body.static_allocation {
                return Err(e400(
                    "PublicIPAddressPropertyCannotBeChanged",
                    format!("The SKU, zones and allocation method of public IP {id} cannot be changed."),
                ));
            }
            // A PUT on a resource whose provisioning failed provisions it again.
            if existing.tags != body.tags || existing.phase.state == ProvisioningState::Failed {
                existing.tags = body.tags.clone();
                existing.phase.go(ProvisioningState::Updating, now, dur);
            }
            return Ok(existing.clone());
        }
        let ip = body.static_allocation.then(|| self.azure.allocate_public_ip());
        let pip = AzPublicIp {
            id: id.to_owned(),
            name: arm_name(id).to_owned(),
            location: body.location.clone(),
            sku: body.sku.clone(),
            static_allocation: body.static_allocation,
            zones: body.zones.clone(),
            ip,
            phase: Phase::timed(ProvisioningState::Updating, now, dur),
            tags: body.tags.clone(),
        };
        self.azure.public_ips.insert(id.to_owned(), pip.clone());
        Ok(pip)
    }

    /// DELETE publicIPAddresses/{name}; refused while a gateway references it, and
    /// (400 `PublicIPAddressInUse`, transient) while a deleted gateway still releases
    /// it.
    pub fn delete_public_ip(&mut self, id: &str) -> Result<(), ApiError> {
        let now = self.azure_call();
        let dur = ms(self.latency.azure_public_ip_delete);
        let pip = self.azure.public_ips.get(id).ok_or_else(|| not_found(id))?;
        if pip.phase.state == ProvisioningState::Deleting {
            return Ok(());
        }
        if busy(&pip.phase) {
            return Err(in_progress(id, "(public IP operation)"));
        }
        if let Some((g, c)) = self.azure.gateway_using_public_ip(id) {
            let kind = if g.phase.state == ProvisioningState::Deleting { ErrorKind::Transient } else { ErrorKind::Permanent };
            return Err(ApiError::new(
                400,
                kind,
                "PublicIPAddressCannotBeDeleted",
                format!("Public IP address {id} can not be deleted since it is still allocated to resource {}.", c.id),
            ));
        }
        if let Some(cfg) = self.azure.public_ip_held_at(id, now) {
            return Err(ApiError::new(
                400,
                ErrorKind::Transient,
                "PublicIPAddressInUse",
                format!(
                    "Public IP address {id} is in use by {cfg} and cannot be deleted until the deleted gateway releases it. Retry later."
                ),
            ));
        }
        self.azure.public_ip_releases.remove(id);
        self.azure.public_ips.get_mut(id).expect("checked").phase.go(ProvisioningState::Deleting, now, dur);
        Ok(())
    }

    /// PUT virtualNetworkGateways/{name}: create, or update (tags; SKU = resize).
    pub fn put_virtual_network_gateway(&mut self, id: &str, body: &GatewayPut) -> Result<AzGateway, ApiError> {
        let now = self.azure_call();
        // SKU and generation.
        let sku = match GatewaySku::parse(&body.sku) {
            Some(s) => s,
            None => {
                return Err(e400(
                    "InvalidGatewaySize",
                    format!(
                        "The specified gateway size {} is not valid, supported gateway sizes are VpnGw1AZ, VpnGw2AZ, VpnGw3AZ, VpnGw4AZ, VpnGw5AZ (Basic and the non-zone-redundant VpnGw1-5 can no longer be created).",
                        body.sku
                    ),
                ));
            }
        };
        let generation = match body.generation.as_str() {
            "Generation1" => Generation::Generation1,
            "Generation2" => Generation::Generation2,
            other => {
                return Err(e400(
                    "InvalidRequestFormat",
                    format!("vpnGatewayGeneration '{other}' is not one of Generation1, Generation2."),
                ));
            }
        };
        if !sku.supports(generation) {
            return Err(e400(
                "VirtualNetworkGatewaySkuCannotBeCreatedForSpecifiedVmGeneration",
                format!(
                    "The Virtual Network Gateway Sku {} cannot be used when VirtualNetworkVpnGatewayGeneration is set to {}.",
                    body.sku, body.generation
                ),
            ));
        }
        if let Some(existing) = self.azure.gateways.get(id) {
            if busy(&existing.phase) {
                return Err(in_progress(id, &format!("{id}/operations")));
            }
            let same_shape = existing.vpn_type == body.vpn_type
                && existing.gateway_type == body.gateway_type
                && existing.generation == body.generation
                && existing.active_active == body.active_active
                && existing.ip_configurations.iter().map(|c| &c.public_ip_id).eq(body.ip_configurations.iter().map(|c| &c.public_ip_id));
            if !same_shape {
                return Err(e400(
                    "VirtualNetworkGatewayPropertyCannotBeChanged",
                    format!(
                        "Only the SKU and tags of gateway {id} can be changed in place (the simulator's rule); delete and recreate it otherwise."
                    ),
                ));
            }
            let ip_config_ids: Vec<String> = existing.ip_configurations.iter().map(|c| c.id.clone()).collect();
            let bgp = gateway_bgp(id, body, &ip_config_ids, &self.azure)?;
            let bgp_changed =
                bgp_key(existing.enable_bgp, existing.asn, &existing.bgp_peering_addresses) != bgp_key(body.enable_bgp, bgp.0, &bgp.1);
            let dur = ms(self.latency.azure_vpn_gateway_resize);
            let update = ms(self.latency.azure_vpn_gateway_update);
            let g = self.azure.gateways.get_mut(id).expect("checked");
            g.tags = body.tags.clone();
            if bgp_changed {
                // BGP settings change in place (Azure: "Configure BGP" on an existing
                // gateway); the gateway is Updating and carries nothing meanwhile.
                g.enable_bgp = body.enable_bgp;
                g.sku = body.sku.clone();
                g.resize = None;
                g.phase.go(ProvisioningState::Updating, now, update);
            } else if g.phase.state == ProvisioningState::Failed {
                // Azure's advice for a gateway in Failed state: PUT it again.
                g.sku = body.sku.clone();
                g.resize = None;
                g.phase.go(ProvisioningState::Updating, now, ms(self.latency.azure_vpn_gateway));
            } else if g.sku != body.sku {
                g.sku = body.sku.clone();
                g.resize = Some(Resize { start: now, end: now.saturating_add(dur), provisioned_since: g.phase.since });
                g.phase.go(ProvisioningState::Updating, now, dur);
            }
            // Stored as sent; settings sent back as GET showed them (the default ASN and
            // addresses) are no BGP change above.
            (g.asn, g.bgp_peering_addresses) = bgp;
            return Ok(g.clone());
        }
        if body.gateway_type != "Vpn" || body.vpn_type != "RouteBased" {
            return Err(e400(
                "InvalidGatewaySize",
                format!(
                    "The gateway type {}/{} is not valid with SKU {}: zone-redundant VPN SKUs need a RouteBased Vpn gateway.",
                    body.gateway_type, body.vpn_type, body.sku
                ),
            ));
        }
        if body.active_active && body.ip_configurations.len() != 2 {
            return Err(e400(
                "ActiveActiveGatewayMustHaveExactlyTwoIpConfigurations",
                format!(
                    "Gateway has {} IP configurations specified for gateway {id}. ActiveActive Gateway must be created with two IP configurations.",
                    body.ip_configurations.len()
                ),
            ));
        }
        if !body.active_active && body.ip_configurations.len() != 1 {
            return Err(e400(
                "InvalidRequestFormat",
                format!("A gateway that is not active-active takes one IP configuration, not {}.", body.ip_configurations.len()),
            ));
        }
        // Subnet: an existing GatewaySubnet of at least /29, used by no other gateway.
        let mut subnet_ids: Vec<&str> = body.ip_configurations.iter().map(|c| c.subnet_id.as_str()).collect();
        subnet_ids.dedup();
        for sid in &subnet_ids {
            let Some(subnet) = self.azure.subnet(sid) else { return Err(bad_reference(sid, id)) };
            if subnet.name != "GatewaySubnet" {
                return Err(e400(
                    "InvalidGatewaySubnet",
                    format!("Subnet {sid} cannot hold a virtual network gateway: the subnet must be named exactly GatewaySubnet."),
                ));
            }
            if subnet.prefix.prefix_len() > 29 {
                return Err(e400(
                    "GatewaySubnetTooSmall",
                    format!("GatewaySubnet {} is smaller than /29; a VPN gateway needs /29 at least (/27 recommended).", subnet.prefix),
                ));
            }
            if let Some(other) = self.azure.gateways_in_subnet(sid).next() {
                return Err(ApiError::new(
                    400,
                    ErrorKind::Conflict,
                    "VnetAlreadyHasGateway",
                    format!(
                        "The virtual network of subnet {sid} already has a VPN gateway ({}); only one is allowed per virtual network.",
                        other.id
                    ),
                ));
            }
        }
        // Public IPs: exist, settled, unused, Standard + Static + zone-redundant, alike.
        let mut pips = Vec::new();
        for c in &body.ip_configurations {
            let Some(pip) = self.azure.public_ips.get(&c.public_ip_id) else { return Err(bad_reference(&c.public_ip_id, id)) };
            if busy(&pip.phase) {
                return Err(in_progress(&c.public_ip_id, "(public IP operation)"));
            }
            if let Some((g, _)) = self.azure.gateway_using_public_ip(&c.public_ip_id) {
                return Err(ApiError::new(
                    400,
                    ErrorKind::Conflict,
                    "PublicIPAddressInUse",
                    format!("Public IP address {} is already used by {}.", c.public_ip_id, g.id),
                ));
            }
            pips.push(pip);
        }
        if let [a, b] = pips.as_slice()
            && (a.sku != b.sku || a.static_allocation != b.static_allocation || a.zones != b.zones)
        {
            return Err(e400(
                "ActiveActiveGatewayPublicIPAddressesDiffersInSkuOrZones",
                format!(
                    "The public IP addresses {} and {} of active-active gateway {id} differ in SKU, allocation method or zones.",
                    a.id, b.id
                ),
            ));
        }
        for p in &pips {
            let zone_redundant = ["1", "2", "3"].iter().all(|z| p.zones.iter().any(|x| x == z));
            if p.sku != "Standard" || !p.static_allocation || !zone_redundant {
                return Err(e400(
                    "PublicIpForAzGatewayMustBeZoneRedundant",
                    format!(
                        "Public IP {} must be Standard, Static and zone-redundant (zones 1, 2, 3) for the {} gateway {id}.",
                        p.id, body.sku
                    ),
                ));
            }
        }
        let ip_config_ids: Vec<String> = body.ip_configurations.iter().map(|c| format!("{id}/ipConfigurations/{}", c.name)).collect();
        let (asn, bgp_peering_addresses) = gateway_bgp(id, body, &ip_config_ids, &self.azure)?;
        let dur = ms(self.latency.azure_vpn_gateway);
        let g = AzGateway {
            id: id.to_owned(),
            name: arm_name(id).to_owned(),
            location: body.location.clone(),
            gateway_type: body.gateway_type.clone(),
            vpn_type: body.vpn_type.clone(),
            sku: body.sku.clone(),
            generation: body.generation.clone(),
            active_active: body.active_active,
            enable_bgp: body.enable_bgp,
            asn,
            bgp_peering_addresses,
            ip_configurations: body
                .ip_configurations
                .iter()
                .map(|c| AzIpConfig {
                    id: format!("{id}/ipConfigurations/{}", c.name),
                    name: c.name.clone(),
                    subnet_id: c.subnet_id.clone(),
                    public_ip_id: c.public_ip_id.clone(),
                })
                .collect(),
            phase: Phase::timed(ProvisioningState::Updating, now, dur),
            tags: body.tags.clone(),
            resize: None,
        };
        self.azure.gateways.insert(id.to_owned(), g.clone());
        Ok(g)
    }

    /// DELETE virtualNetworkGateways/{name}; refused while Connections use it.
    pub fn delete_virtual_network_gateway(&mut self, id: &str) -> Result<(), ApiError> {
        let now = self.azure_call();
        let dur = ms(self.latency.azure_vpn_gateway_delete);
        let g = self.azure.gateways.get(id).ok_or_else(|| not_found(id))?;
        if g.phase.state == ProvisioningState::Deleting {
            return Ok(());
        }
        if busy(&g.phase) {
            return Err(in_progress(id, &format!("{id}/operations")));
        }
        let users: Vec<_> = self.azure.connections.values().filter(|c| c.gateway_id == id).collect();
        if !users.is_empty() {
            let kind = if users.iter().all(|c| c.phase.state == ProvisioningState::Deleting) {
                ErrorKind::Transient
            } else {
                ErrorKind::Permanent
            };
            let ids: Vec<_> = users.iter().map(|c| c.id.as_str()).collect();
            return Err(ApiError::new(
                400,
                kind,
                "InUseVirtualNetworkGatewayCannotBeDeleted",
                format!(
                    "Virtual network gateway {id} is used by connection(s) {} and cannot be deleted; delete them first.",
                    ids.join(", ")
                ),
            ));
        }
        let g = self.azure.gateways.get_mut(id).expect("checked");
        g.phase.go(ProvisioningState::Deleting, now, dur);
        // Its public IPs stay in use for a while after the delete ends.
        let until = now + dur + ms(self.latency.azure_public_ip_release);
        let held: Vec<(String, String)> = g.ip_configurations.iter().map(|c| (c.public_ip_id.clone(), c.id.clone())).collect();
        for (pip, cfg) in held {
            self.azure.public_ip_releases.insert(pip, Release { ip_configuration_id: cfg, until });
        }
        Ok(())
    }

    /// PUT localNetworkGateways/{name}.
    pub fn put_local_network_gateway(&mut self, id: &str, body: &LngPut) -> Result<AzLng, ApiError> {
        let now = self.azure_call();
        let dur = ms(self.latency.azure_local_network_gateway);
        if let Some(b) = &body.bgp {
            check_asn(b.asn, &format!("local network gateway {id}"), false)?;
        }
        if let Some(existing) = self.azure.local_network_gateways.get_mut(id) {
            if busy(&existing.phase) {
                return Err(in_progress(id, "(local network gateway operation)"));
            }
            let changed = existing.gateway_ip != body.gateway_ip
                || existing.address_prefixes != body.address_prefixes
                || existing.bgp != body.bgp
                || existing.tags != body.tags
                || existing.phase.state == ProvisioningState::Failed;
            if changed {
                existing.gateway_ip = body.gateway_ip;
                existing.address_prefixes = body.address_prefixes.clone();
                existing.bgp = body.bgp;
                existing.tags = body.tags.clone();
                existing.phase.go(ProvisioningState::Updating, now, dur);
            }
            return Ok(existing.clone());
        }
        let lng = AzLng {
            id: id.to_owned(),
            name: arm_name(id).to_owned(),
            location: body.location.clone(),
            gateway_ip: body.gateway_ip,
            address_prefixes: body.address_prefixes.clone(),
            bgp: body.bgp,
            phase: Phase::timed(ProvisioningState::Updating, now, dur),
            tags: body.tags.clone(),
        };
        self.azure.local_network_gateways.insert(id.to_owned(), lng.clone());
        Ok(lng)
    }

    /// DELETE localNetworkGateways/{name}; refused while a Connection uses it.
    pub fn delete_local_network_gateway(&mut self, id: &str) -> Result<(), ApiError> {
        let now = self.azure_call();
        let dur = ms(self.latency.azure_local_network_gateway_delete);
        let lng = self.azure.local_network_gateways.get(id).ok_or_else(|| not_found(id))?;
        if lng.phase.state == ProvisioningState::Deleting {
            return Ok(());
        }
        if busy(&lng.phase) {
            return Err(in_progress(id, "(local network gateway operation)"));
        }
        if let Some(c) = self.azure.connections.values().find(|c| c.local_network_gateway_id == id) {
            let kind = if c.phase.state == ProvisioningState::Deleting { ErrorKind::Transient } else { ErrorKind::Permanent };
            return Err(ApiError::new(
                400,
                kind,
                "InUseLocalNetworkGatewayCannotBeDeleted",
                format!("Local network gateway {id} is used by connection {} and cannot be deleted.", c.id),
            ));
        }
        self.azure.local_network_gateways.get_mut(id).expect("checked").phase.go(ProvisioningState::Deleting, now, dur);
        Ok(())
    }

    /// PUT connections/{name} (IPsec between a gateway and a LocalNetworkGateway).
    pub fn put_connection(&mut self, id: &str, body: &ConnectionPut) -> Result<AzConnection, ApiError> {
        let now = self.azure_call();
        let Some(g) = self.azure.gateways.get(&body.gateway_id) else { return Err(bad_reference(&body.gateway_id, id)) };
        if busy(&g.phase) {
            return Err(in_progress(&body.gateway_id, &format!("{}/operations", body.gateway_id)));
        }
        let Some(lng) = self.azure.local_network_gateways.get(&body.local_network_gateway_id) else {
            return Err(bad_reference(&body.local_network_gateway_id, id));
        };
        if busy(&lng.phase) {
            return Err(in_progress(&body.local_network_gateway_id, "(local network gateway operation)"));
        }
        if !(9..=3600).contains(&body.dpd_timeout_seconds) {
            return Err(e400("InvalidDpdTimeout", format!("dpdTimeoutSeconds {} must be between 9 and 3600.", body.dpd_timeout_seconds)));
        }
        check_connection_bgp(id, body, g, lng)?;
        if body.connection_type != "IPsec" || !matches!(body.protocol.as_str(), "IKEv1" | "IKEv2") {
            return Err(e400(
                "InvalidRequestFormat",
                format!("connectionType {} / protocol {} is not supported here.", body.connection_type, body.protocol),
            ));
        }
        if let Some(existing) = self.azure.connections.get(id) {
            if busy(&existing.phase) {
                return Err(in_progress(id, "(connection operation)"));
            }
            if existing.gateway_id != body.gateway_id
                || existing.local_network_gateway_id != body.local_network_gateway_id
                || existing.protocol != body.protocol
            {
                return Err(e400(
                    "ConnectionPropertyCannotBeChanged",
                    format!("The gateways and the IKE protocol of connection {id} cannot be changed; delete and recreate it."),
                ));
            }
            let key_changed = existing.shared_key != body.shared_key;
            let other_changed = existing.enable_bgp != body.enable_bgp
                || existing.custom_bgp_addresses != body.custom_bgp_addresses
                || existing.dpd_timeout_seconds != body.dpd_timeout_seconds;
            let dur = ms(if other_changed { self.latency.azure_connection } else { self.latency.azure_shared_key_update });
            let c = self.azure.connections.get_mut(id).expect("checked");
            c.tags = body.tags.clone();
            if key_changed || other_changed || c.phase.state == ProvisioningState::Failed {
                c.shared_key = body.shared_key.clone();
                c.enable_bgp = body.enable_bgp;
                c.custom_bgp_addresses = body.custom_bgp_addresses.clone();
                c.dpd_timeout_seconds = body.dpd_timeout_seconds;
                c.phase.go(ProvisioningState::Updating, now, dur);
            }
            return Ok(c.clone());
        }
        let limit = GatewaySku::parse(&g.sku).map_or(30, GatewaySku::tunnel_limit);
        if self.azure.connections.values().filter(|c| c.gateway_id == body.gateway_id).count() >= limit {
            return Err(e400(
                "VirtualNetworkGatewayConnectionLimitReached",
                format!("Gateway {} ({}) already has {limit} site-to-site connections, the most its SKU supports.", body.gateway_id, g.sku),
            ));
        }
        let c = AzConnection {
            id: id.to_owned(),
            name: arm_name(id).to_owned(),
            location: body.location.clone(),
            gateway_id: body.gateway_id.clone(),
            local_network_gateway_id: body.local_network_gateway_id.clone(),
            connection_type: body.connection_type.clone(),
            protocol: body.protocol.clone(),
            shared_key: body.shared_key.clone(),
            enable_bgp: body.enable_bgp,
            custom_bgp_addresses: body.custom_bgp_addresses.clone(),
            dpd_timeout_seconds: body.dpd_timeout_seconds,
            phase: Phase::timed(ProvisioningState::Updating, now, ms(self.latency.azure_connection)),
            tags: body.tags.clone(),
        };
        self.azure.connections.insert(id.to_owned(), c.clone());
        Ok(c)
    }

    /// PUT connections/{name}/sharedkey.
    pub fn put_connection_shared_key(&mut self, id: &str, key: &Psk) -> Result<(), ApiError> {
        let now = self.azure_call();
        let dur = ms(self.latency.azure_shared_key_update);
        let Some(c) = self.azure.connections.get(id) else {
            return Err(ApiError::new(
                404,
                ErrorKind::NotFound,
                "ParentResourceNotFound",
                format!("Can not perform requested operation on nested resource. Parent resource '{}' not found.", arm_name(id)),
            ));
        };
        if busy(&c.phase) {
            return Err(in_progress(id, "(connection operation)"));
        }
        if self.azure.gateways.get(&c.gateway_id).is_some_and(|g| busy(&g.phase)) {
            return Err(in_progress(&c.gateway_id, &format!("{}/operations", c.gateway_id)));
        }
        let c = self.azure.connections.get_mut(id).expect("checked");
        if c.shared_key != *key {
            c.shared_key = key.clone();
            c.phase.go(ProvisioningState::Updating, now, dur);
        }
        Ok(())
    }

    /// DELETE connections/{name}.
    pub fn delete_connection(&mut self, id: &str) -> Result<(), ApiError> {
        let now = self.azure_call();
        let dur = ms(self.latency.azure_connection_delete);
        let c = self.azure.connections.get(id).ok_or_else(|| not_found(id))?;
        if c.phase.state == ProvisioningState::Deleting {
            return Ok(());
        }
        if busy(&c.phase) {
            return Err(in_progress(id, "(connection operation)"));
        }
        if self.azure.gateways.get(&c.gateway_id).is_some_and(|g| busy(&g.phase)) {
            return Err(in_progress(&c.gateway_id, &format!("{}/operations", c.gateway_id)));
        }
        self.azure.connections.get_mut(id).expect("checked").phase.go(ProvisioningState::Deleting, now, dur);
        Ok(())
    }

    /// The VNet named `name` in the scope (subscription + resource group) of `scope_id`.
    pub fn vnet_in_scope(&self, scope_id: &str, name: &str) -> Option<&AzVnet> {
        let scope = arm_scope(scope_id);
        self.azure.virtual_networks.values().find(|v| arm_scope(&v.id) == scope && v.name == name)
    }
}
