//! Starting an operation: exactly one ARM write (a PUT merged onto a fresh GET, or a
//! DELETE), answered with the handle to poll.

use std::net::Ipv4Addr;

use azure_mgmt_network::models as m;
use ipnet::IpNet;
use serde::Serialize;
use vpnbridge_core::endpoint::{CloudName, EndpointError, ErrorKind, OpHandle};
use vpnbridge_core::goal::Goal;
use vpnbridge_core::model::{LngBgp, ProvisioningState, Tags};
use vpnbridge_core::ops::{AzureOp, ConnectionBgp, GatewayBgp};
use vpnbridge_core::secret::Psk;

use crate::arm::{API_VERSION, Raw, RawCall, call_arm};
use crate::handle::{Handle, Kind, encode};
use crate::observe::state_of;
use crate::poll::Brief;
use crate::{AzureEndpoint, merge};

/// Reads an SDK enum from its wire string (they fall back to `UnknownValue`).
pub(crate) fn sdk_enum<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, EndpointError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|e| EndpointError::new(CloudName::Azure, ErrorKind::Permanent, "InvalidRequest", format!("{s:?}: {e}")))
}

pub(crate) fn tags_json(tags: &Tags) -> serde_json::Value {
    serde_json::Value::Object(tags.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect())
}

pub(crate) fn sub_resource(id: String) -> m::SubResource {
    let mut r = m::SubResource::new();
    r.id = Some(id);
    r
}

/// What a gateway PUT says; ipConfigurations are (name, subnet id, public IP id), in
/// instance order.
pub(crate) struct GatewaySpec<'a> {
    pub(crate) sku: &'a str,
    pub(crate) generation: &'a str,
    /// BGP (bgp-ha): the ASN and each instance's custom APIPA addresses.
    pub(crate) bgp: Option<&'a GatewayBgp>,
    /// (name, subnet id, public IP id) per instance.
    pub(crate) ip_configurations: Vec<(String, String, String)>,
    /// The gateway's id (its ipConfigurations' ids are under it).
    pub(crate) id: String,
    pub(crate) tags: &'a Tags,
}

/// The id of ipConfiguration `name` of the gateway with id `gateway_id`.
pub(crate) fn ip_configuration_id(gateway_id: &str, name: &str) -> String {
    format!("{gateway_id}/ipConfigurations/{name}")
}

/// The name vpnbridge gives instance k's ipConfiguration.
pub(crate) fn ip_configuration_name(k: usize) -> String {
    format!("ipconfig{k}")
}

/// An SDK model as the JSON it sends (ours, before [`merge::merged`]).
pub(crate) fn to_json<T: Serialize>(model: &T) -> Result<serde_json::Value, EndpointError> {
    serde_json::to_value(model)
        .map_err(|e| EndpointError::new(CloudName::Azure, ErrorKind::Permanent, "InvalidRequest", format!("cannot build the request: {e}")))
}

impl AzureEndpoint {
    /// What a PUT answered: the handle to poll.
    pub(crate) fn put_handle(&self, raw: &Raw, kind: Kind, name: &str) -> OpHandle {
        match raw.header("azure-asyncoperation") {
            Some(url) => encode(&Handle::Async { url, kind, name: name.to_owned(), goal: Goal::Ready }),
            None => encode(&Handle::Watch { kind, name: name.to_owned(), goal: Goal::Ready }),
        }
    }

    /// What a DELETE answered (or its 404): the handle to poll.
    pub(crate) fn delete_handle(
        &self,
        r: Result<azure_core::Response, EndpointError>,
        kind: Kind,
        name: &str,
    ) -> Result<OpHandle, EndpointError> {
        let id = self.kind_id(kind, name);
        let r = match r {
            Ok(r) => r,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(encode(&Handle::Done { id })),
            Err(e) => return Err(e),
        };
        let status = r.status() as u16;
        let headers = r.headers();
        let op = headers.get_optional_string(&azure_core::headers::HeaderName::from_static("azure-asyncoperation"));
        let loc = headers.get_optional_string(&azure_core::headers::LOCATION);
        Ok(match (status, op, loc) {
            (204, _, _) => encode(&Handle::Done { id }),
            (_, Some(url), _) => encode(&Handle::Async { url, kind, name: name.to_owned(), goal: Goal::Gone }),
            (_, None, Some(url)) => encode(&Handle::Location { url, kind, name: name.to_owned() }),
            (_, None, None) => encode(&Handle::Watch { kind, name: name.to_owned(), goal: Goal::Gone }),
        })
    }

    /// PUT `kind/name` with `ours` laid over what GET returns (see [`merge`]): a new
    /// resource gets ours alone; an existing one keeps what we do not own. With
    /// `must_exist`, a missing resource is an error (there is nothing to change).
    /// Two requests: the GET and the PUT (the body may hold a shared key: never logged).
    pub(crate) async fn put_merged(
        &self,
        kind: Kind,
        name: &str,
        ours: serde_json::Value,
        must_exist: bool,
    ) -> Result<OpHandle, EndpointError> {
        let path = format!("{}?api-version={API_VERSION}", self.kind_id(kind, name));
        let existing = match self.arm.get(RawCall::Get(kind), &path).await {
            Ok(raw) => Some(raw.json::<serde_json::Value>(kind.collection())?),
            Err(e) if e.kind == ErrorKind::NotFound && !must_exist => None,
            Err(e) => return Err(e),
        };
        let body = merge::merged(existing, ours);
        let raw = self.arm.put(RawCall::Put(kind), &path, &body).await?;
        Ok(self.put_handle(&raw, kind, name))
    }

    /// Our part of a gateway PUT (create, or provision a Failed one again).
    pub(crate) fn gateway_body(&self, g: GatewaySpec<'_>) -> Result<serde_json::Value, EndpointError> {
        let mut props = m::VirtualNetworkGatewayPropertiesFormat::new();
        props.gateway_type = Some(sdk_enum("Vpn")?);
        props.vpn_type = Some(sdk_enum("RouteBased")?);
        props.vpn_gateway_generation = Some(sdk_enum(g.generation)?);
        props.sku = Some(Self::gateway_sku(g.sku)?);
        props.active_active = Some(g.ip_configurations.len() > 1);
        props.enable_bgp = Some(g.bgp.is_some());
        if let Some(bgp) = g.bgp {
            let mut b = m::BgpSettings::new();
            b.asn = Some(i64::from(bgp.asn));
            b.bgp_peering_addresses = g
                .ip_configurations
                .iter()
                .zip(&bgp.custom_addresses)
                .map(|((name, _, _), addresses)| {
                    let mut p = m::IpConfigurationBgpPeeringAddress::new();
                    p.ipconfiguration_id = Some(ip_configuration_id(&g.id, name));
                    p.custom_bgp_ip_addresses = addresses.iter().map(ToString::to_string).collect();
                    p
                })
                .collect();
            props.bgp_settings = Some(b);
        }
        props.ip_configurations = g
            .ip_configurations
            .into_iter()
            .map(|(name, subnet, pip)| {
                let mut c = m::VirtualNetworkGatewayIpConfiguration::new();
                c.name = Some(name);
                let mut p = m::VirtualNetworkGatewayIpConfigurationPropertiesFormat::new();
                p.private_ip_allocation_method = Some(m::IpAllocationMethod::Dynamic);
                p.subnet = Some(sub_resource(subnet));
                p.public_ip_address = Some(sub_resource(pip));
                c.properties = Some(p);
                c
            })
            .collect();
        let mut body = m::VirtualNetworkGateway::new(props);
        body.resource.location = Some(self.location.clone());
        body.resource.tags = Some(tags_json(g.tags));
        to_json(&body)
    }

    pub(crate) fn gateway_sku(sku: &str) -> Result<m::VirtualNetworkGatewaySku, EndpointError> {
        let mut s = m::VirtualNetworkGatewaySku::new();
        s.name = Some(sdk_enum(sku)?);
        s.tier = Some(sdk_enum(sku)?);
        Ok(s)
    }

    /// Our part of a public IP PUT: Standard, Static, IPv4, the zones, our tags.
    pub(crate) fn public_ip_body(&self, zones: &[String], tags: &Tags) -> Result<serde_json::Value, EndpointError> {
        let mut p = m::PublicIpAddress::new();
        p.resource.location = Some(self.location.clone());
        p.resource.tags = Some(tags_json(tags));
        p.zones = zones.to_vec();
        let mut sku = m::PublicIpAddressSku::new();
        sku.name = Some(sdk_enum("Standard")?);
        sku.tier = Some(sdk_enum("Regional")?);
        p.sku = Some(sku);
        let mut props = m::PublicIpAddressPropertiesFormat::new();
        props.public_ip_allocation_method = Some(m::IpAllocationMethod::Static);
        props.public_ip_address_version = Some(sdk_enum("IPv4")?);
        p.properties = Some(Box::new(props));
        to_json(&p)
    }

    /// Our part of an LNG PUT: its one IP, its prefixes, our tags.
    pub(crate) fn lng_body(
        &self,
        gateway_ip: Ipv4Addr,
        address_prefixes: &[IpNet],
        bgp: Option<&LngBgp>,
        tags: &Tags,
    ) -> Result<serde_json::Value, EndpointError> {
        let mut props = m::LocalNetworkGatewayPropertiesFormat::new();
        props.gateway_ip_address = Some(gateway_ip.to_string());
        let mut space = m::AddressSpace::new();
        space.address_prefixes = address_prefixes.iter().map(ToString::to_string).collect();
        props.local_network_address_space = Some(space);
        if let Some(b) = bgp {
            let mut settings = m::BgpSettings::new();
            settings.asn = Some(i64::from(b.asn));
            settings.bgp_peering_address = Some(b.peering_address.to_string());
            props.bgp_settings = Some(settings);
        }
        let mut l = m::LocalNetworkGateway::new(props);
        l.resource.location = Some(self.location.clone());
        l.resource.tags = Some(tags_json(tags));
        let mut body = to_json(&l)?;
        if let Some(p) = body.get_mut("properties").and_then(serde_json::Value::as_object_mut) {
            if bgp.is_none() {
                // The LNG is ours alone: no BGP peer means none, not "keep the one GET
                // returned" (see `merge`; an explicit null overrides it).
                p.insert("bgpSettings".to_owned(), serde_json::Value::Null);
            }
            // No prefixes (bgp-ha: routes come by BGP) means none: the SDK leaves an
            // empty list out, and the merge would then keep the ones GET returned.
            if address_prefixes.is_empty() {
                p.insert("localNetworkAddressSpace".to_owned(), serde_json::json!({ "addressPrefixes": [] }));
            }
        }
        Ok(body)
    }

    /// Our part of a Connection PUT: IPsec, IKEv2, the key, BGP, DPD, references by
    /// id (the SDK's model requires a `properties` object, which it serialises empty).
    pub(crate) fn connection_body(&self, c: &ConnectionSpec<'_>) -> Result<serde_json::Value, EndpointError> {
        let mut vng = m::VirtualNetworkGateway::new(m::VirtualNetworkGatewayPropertiesFormat::new());
        vng.resource.id = Some(self.id("virtualNetworkGateways", c.gateway));
        let mut lng = m::LocalNetworkGateway::new(m::LocalNetworkGatewayPropertiesFormat::new());
        lng.resource.id = Some(self.id("localNetworkGateways", c.local_network_gateway));
        let mut props = m::VirtualNetworkGatewayConnectionPropertiesFormat::new(vng, sdk_enum("IPsec")?);
        props.local_network_gateway2 = Some(lng);
        props.connection_protocol = Some(sdk_enum("IKEv2")?);
        props.shared_key = Some(c.shared_key.expose().to_owned());
        props.enable_bgp = Some(c.bgp.is_some());
        let gateway_id = self.id("virtualNetworkGateways", c.gateway);
        props.gateway_custom_bgp_ip_addresses = c
            .bgp
            .iter()
            .flat_map(|b| b.custom_addresses.iter().enumerate())
            .map(|(k, a)| {
                m::GatewayCustomBgpIpAddressIpConfiguration::new(ip_configuration_id(&gateway_id, &ip_configuration_name(k)), a.to_string())
            })
            .collect();
        props.dpd_timeout_seconds = i32::try_from(c.dpd_timeout_seconds).ok();
        let mut conn = m::VirtualNetworkGatewayConnection::new(props);
        conn.resource.location = Some(self.location.clone());
        conn.resource.tags = Some(tags_json(c.tags));
        let mut body = to_json(&conn)?;
        if c.bgp.is_none() {
            // No custom BGP addresses means none (the SDK leaves an empty list out).
            if let Some(p) = body.get_mut("properties").and_then(serde_json::Value::as_object_mut) {
                p.insert("gatewayCustomBgpIpAddresses".to_owned(), serde_json::Value::Array(Vec::new()));
            }
        }
        Ok(body)
    }

    pub(crate) async fn start_op(&self, op: &AzureOp) -> Result<OpHandle, EndpointError> {
        let (rg, sub) = (self.resource_group.as_str(), self.subscription.as_str());
        let sdk = &self.arm.client;
        match op {
            AzureOp::CreatePublicIp { name, zones, tags } => {
                self.put_merged(Kind::PublicIp, name, self.public_ip_body(zones, tags)?, false).await
            }
            AzureOp::DeletePublicIp { name } => {
                let r = call_arm(true, async {
                    sdk.public_ip_addresses_client().delete(rg, name, sub).send().await.map(|r| r.into_raw_response())
                })
                .await;
                let r = match r {
                    Err(e) if matches!(e.code.as_str(), "PublicIPAddressInUse" | "PublicIPAddressCannotBeDeleted") => {
                        Err(self.public_ip_in_use(name, e).await)
                    }
                    r => r,
                };
                self.delete_handle(r, Kind::PublicIp, name)
            }
            AzureOp::CreateVpnGateway { name, vnet, sku, generation, public_ips, bgp, tags } => {
                let subnet = format!("{}/subnets/GatewaySubnet", self.id("virtualNetworks", vnet));
                let cfgs = public_ips
                    .iter()
                    .enumerate()
                    .map(|(k, p)| (ip_configuration_name(k), subnet.clone(), self.id("publicIPAddresses", p)))
                    .collect();
                let id = self.id("virtualNetworkGateways", name);
                let body = self.gateway_body(GatewaySpec { sku, generation, bgp: bgp.as_ref(), ip_configurations: cfgs, id, tags })?;
                self.put_merged(Kind::VpnGateway, name, body, false).await
            }
            AzureOp::ResizeVpnGateway { name, sku } => {
                // GET, change the SKU, PUT the rest as it is.
                let ours = serde_json::json!({ "properties": { "sku": to_json(&Self::gateway_sku(sku)?)? } });
                self.put_merged(Kind::VpnGateway, name, ours, true).await
            }
            AzureOp::DeleteVpnGateway { name } => {
                let r = call_arm(true, async {
                    sdk.virtual_network_gateways_client().delete(rg, name, sub).send().await.map(|r| r.into_raw_response())
                })
                .await;
                self.delete_handle(r, Kind::VpnGateway, name)
            }
            AzureOp::PutLocalNetworkGateway { name, gateway_ip, address_prefixes, bgp, tags } => {
                let body = self.lng_body(*gateway_ip, address_prefixes, bgp.as_ref(), tags)?;
                self.put_merged(Kind::LocalNetworkGateway, name, body, false).await
            }
            AzureOp::DeleteLocalNetworkGateway { name } => {
                let r = call_arm(true, async {
                    sdk.local_network_gateways_client().delete(rg, name, sub).send().await.map(|r| r.into_raw_response())
                })
                .await;
                self.delete_handle(r, Kind::LocalNetworkGateway, name)
            }
            AzureOp::PutConnection { name, gateway, local_network_gateway, shared_key, bgp, dpd_timeout_seconds, tags } => {
                let spec = ConnectionSpec {
                    gateway,
                    local_network_gateway,
                    shared_key,
                    bgp: bgp.as_ref(),
                    dpd_timeout_seconds: *dpd_timeout_seconds,
                    tags,
                };
                self.put_merged(Kind::Connection, name, self.connection_body(&spec)?, false).await
            }
            AzureOp::SetSharedKey { name, shared_key } => {
                let body = m::ConnectionSharedKey::new(shared_key.expose().to_owned());
                let r = call_arm(true, sdk.virtual_network_gateway_connections_client().set_shared_key(rg, name, body, sub).send()).await?;
                let raw = Raw::read(r.into_raw_response()).await?;
                Ok(self.put_handle(&raw, Kind::Connection, name))
            }
            AzureOp::DeleteConnection { name } => {
                let r = call_arm(true, async {
                    sdk.virtual_network_gateway_connections_client().delete(rg, name, sub).send().await.map(|r| r.into_raw_response())
                })
                .await;
                self.delete_handle(r, Kind::Connection, name)
            }
            AzureOp::Await { kind, name } => Ok(encode(&Handle::Watch { kind: (*kind).into(), name: name.clone(), goal: Goal::Settled })),
        }
    }
}

/// What a Connection PUT says.
pub(crate) struct ConnectionSpec<'a> {
    pub(crate) gateway: &'a str,
    pub(crate) local_network_gateway: &'a str,
    pub(crate) shared_key: &'a Psk,
    /// BGP (bgp-ha): the address each instance speaks from on this Connection.
    pub(crate) bgp: Option<&'a ConnectionBgp>,
    pub(crate) dpd_timeout_seconds: u32,
    pub(crate) tags: &'a Tags,
}

impl AzureEndpoint {
    /// A public IP DELETE refused as in use (`PublicIPAddressInUse`,
    /// `PublicIPAddressCannotBeDeleted`, HTTP 400). ARM releases a gateway's public IPs
    /// a while after the gateway's delete finishes, so while what holds the IP is a
    /// gateway that is gone or being deleted (or nothing any more) the refusal is
    /// transient: back off and retry. Held by a live resource, it is a conflict.
    pub(crate) async fn public_ip_in_use(&self, name: &str, mut refused: EndpointError) -> EndpointError {
        let holder = match self.get_brief(Kind::PublicIp, name).await {
            Ok(Some(b)) => b.properties.ip_configuration.map(|r| r.id),
            Ok(None) => None,
            Err(e) if e.is_transient() => return e,
            Err(_) => return refused,
        };
        let gateway = holder.as_deref().and_then(|id| {
            let lower = id.to_ascii_lowercase();
            let at = lower.find("/ipconfigurations/")?;
            lower[..at].contains("/providers/microsoft.network/virtualnetworkgateways/").then(|| id[..at].to_owned())
        });
        let releasing = match (&holder, gateway) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(_), Some(g)) => match self.arm.get(RawCall::Get(Kind::VpnGateway), &format!("{g}?api-version={API_VERSION}")).await {
                Ok(raw) => raw
                    .json::<Brief>("the gateway holding a public IP")
                    .is_ok_and(|b| state_of(b.properties.provisioning_state.as_deref()) == ProvisioningState::Deleting),
                Err(e) if e.kind == ErrorKind::NotFound => true,
                Err(e) if e.is_transient() => return e,
                Err(_) => false,
            },
        };
        refused.kind = if releasing { ErrorKind::Transient } else { ErrorKind::Conflict };
        refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Connection PUT body: references by id (the SDK adds an empty `properties`),
    /// IPsec, IKEv2, the key, the DPD timeout.
    #[test]
    fn connection_put_body() {
        let mut vng = m::VirtualNetworkGateway::new(m::VirtualNetworkGatewayPropertiesFormat::new());
        vng.resource.id = Some("/g".into());
        let mut props = m::VirtualNetworkGatewayConnectionPropertiesFormat::new(vng, sdk_enum("IPsec").expect("enum"));
        props.connection_protocol = Some(sdk_enum("IKEv2").expect("enum"));
        props.dpd_timeout_seconds = Some(45);
        let body = serde_json::to_value(m::VirtualNetworkGatewayConnection::new(props)).expect("json");
        assert_eq!(body["properties"]["virtualNetworkGateway1"], serde_json::json!({"id": "/g", "properties": {}}));
        assert_eq!(body["properties"]["connectionType"], "IPsec");
        assert_eq!(body["properties"]["connectionProtocol"], "IKEv2");
        assert_eq!(body["properties"]["dpdTimeoutSeconds"], 45);
    }
}
