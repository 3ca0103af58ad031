//! What we read from ARM, as our own serde types: the one place where response bodies
//! are parsed.
//!
//! **Why not the SDK's models.** azure_mgmt_network 0.21's
//! `VirtualNetworkGatewayConnection` requires full gateway objects (with `properties`)
//! in `virtualNetworkGateway1` and `localNetworkGateway2`, but live ARM returns
//! id-only references there (`{"id": "…"}`), so reading a Connection (or a list of
//! them) through the typed model fails. Every read goes through these types instead —
//! connections because they must, the other kinds so that one lenient parser (unknown
//! fields ignored, optional fields optional) handles all of them. The SDK's typed
//! models are still what we *send* (request bodies).
//!
//! None of these types holds a shared key except [`SharedKey`], whose Debug is
//! redacted; the Connection GET body is not parsed for `sharedKey` at all.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `{value: [...], nextLink}`.
#[derive(Debug, Deserialize)]
pub(crate) struct List<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    #[serde(rename = "nextLink", default)]
    pub next_link: Option<String>,
}

/// One entry of `GET /subscriptions`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Subscription {
    pub subscription_id: String,
}

/// `{"id": "…"}`: how ARM references another resource.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Ref {
    #[serde(default)]
    pub id: String,
}

fn tags<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Deserialize)]
pub(crate) struct Sku {
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PublicIp {
    pub id: String,
    pub name: String,
    /// ARM's region name (`japaneast`); absent in some hand-written bodies.
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default, deserialize_with = "tags")]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub zones: Vec<String>,
    pub sku: Option<Sku>,
    #[serde(default)]
    pub properties: PublicIpProps,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PublicIpProps {
    pub provisioning_state: Option<String>,
    #[serde(rename = "publicIPAllocationMethod")]
    pub allocation: Option<String>,
    pub ip_address: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Gateway {
    pub id: String,
    pub name: String,
    /// ARM's region name (`japaneast`); absent in some hand-written bodies.
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default, deserialize_with = "tags")]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub properties: GatewayProps,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GatewayProps {
    pub provisioning_state: Option<String>,
    pub vpn_type: Option<String>,
    pub vpn_gateway_generation: Option<String>,
    pub sku: Option<Sku>,
    #[serde(default)]
    pub active_active: bool,
    #[serde(default)]
    pub enable_bgp: bool,
    pub bgp_settings: Option<BgpSettings>,
    #[serde(default)]
    pub ip_configurations: Vec<GatewayIpConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BgpSettings {
    pub asn: Option<u64>,
    /// An LNG's peer address (on a gateway: the legacy single address).
    pub bgp_peering_address: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub bgp_peering_addresses: Vec<BgpPeeringAddress>,
}

/// `IPConfigurationBgpPeeringAddress`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BgpPeeringAddress {
    #[serde(rename = "ipconfigurationId")]
    pub ipconfiguration_id: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub default_bgp_ip_addresses: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub custom_bgp_ip_addresses: Vec<String>,
}

/// `GatewayCustomBgpIpAddressIpConfiguration`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CustomBgpAddress {
    pub ip_configuration_id: String,
    pub custom_bgp_ip_address: String,
}

/// `null` reads as the empty list (ARM sends either).
fn null_as_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Deserialize)]
pub(crate) struct GatewayIpConfig {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub properties: GatewayIpConfigProps,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GatewayIpConfigProps {
    #[serde(rename = "publicIPAddress")]
    pub public_ip_address: Option<Ref>,
    /// The `GatewaySubnet` this instance sits in (which VNet the gateway serves).
    pub subnet: Option<Ref>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Lng {
    pub id: String,
    pub name: String,
    /// ARM's region name (`japaneast`); absent in some hand-written bodies.
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default, deserialize_with = "tags")]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub properties: LngProps,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LngProps {
    pub provisioning_state: Option<String>,
    pub gateway_ip_address: Option<String>,
    pub local_network_address_space: Option<AddressSpace>,
    pub bgp_settings: Option<BgpSettings>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AddressSpace {
    #[serde(default)]
    pub address_prefixes: Vec<String>,
}

/// A Connection as GET/list return it: gateway references are id-only.
#[derive(Debug, Deserialize)]
pub(crate) struct Connection {
    pub id: String,
    pub name: String,
    /// ARM's region name (`japaneast`); absent in some hand-written bodies.
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default, deserialize_with = "tags")]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub properties: ConnectionProps,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConnectionProps {
    pub provisioning_state: Option<String>,
    #[serde(rename = "virtualNetworkGateway1")]
    pub virtual_network_gateway1: Option<Ref>,
    #[serde(rename = "localNetworkGateway2")]
    pub local_network_gateway2: Option<Ref>,
    pub connection_protocol: Option<String>,
    #[serde(default)]
    pub enable_bgp: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub gateway_custom_bgp_ip_addresses: Vec<CustomBgpAddress>,
    pub connection_status: Option<String>,
    #[serde(default)]
    pub tunnel_connection_status: Vec<TunnelHealth>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TunnelHealth {
    #[serde(default)]
    pub tunnel: String,
    pub connection_status: Option<String>,
    pub ingress_bytes_transferred: Option<i64>,
    pub egress_bytes_transferred: Option<i64>,
    pub last_connection_established_utc_time: Option<String>,
}

/// `connections/{n}/sharedkey`: `{"value": "…"}`. Debug is redacted.
#[derive(Deserialize)]
pub(crate) struct SharedKey {
    pub value: String,
}

impl std::fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedKey(<redacted>)")
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Vnet {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub properties: VnetProps,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VnetProps {
    pub address_space: Option<AddressSpace>,
    #[serde(default)]
    pub subnets: Vec<Subnet>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Subnet {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub properties: SubnetProps,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SubnetProps {
    pub address_prefix: Option<String>,
    #[serde(default)]
    pub address_prefixes: Vec<String>,
    #[serde(default)]
    pub ip_configurations: Vec<Ref>,
}

/// The `Azure-AsyncOperation` status body.
#[derive(Debug, Deserialize)]
pub(crate) struct OperationStatus {
    pub status: String,
    pub error: Option<crate::arm::ErrorDetail>,
}

/// One IKE security association, from `getikesas`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IkeSa {
    /// The gateway instance's public IP.
    pub local_endpoint: Option<String>,
    /// The peer (the AWS tunnel's outside IP).
    pub remote_endpoint: Option<String>,
    pub encryption: Option<String>,
    pub integrity: Option<String>,
    pub dh_group: Option<String>,
    pub life_time_seconds: Option<i64>,
    pub is_sa_initiator: Option<bool>,
    pub elapsed_time_inseconds: Option<i64>,
}

/// One entry of `getBgpPeerStatus`' result (`BgpPeerStatusListResult.value`; the
/// message counters are not read).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BgpPeerStatus {
    /// The address the gateway instance speaks from.
    pub local_address: Option<String>,
    pub neighbor: Option<String>,
    pub asn: Option<u64>,
    /// Unknown | Stopped | Idle | Connecting | Connected.
    pub state: Option<String>,
    /// A .NET `TimeSpan` (`hh:mm:ss`, `d.hh:mm:ss.fffffff`).
    pub connected_duration: Option<String>,
    pub routes_received: Option<i64>,
}

/// One entry of `getLearnedRoutes`' result (`GatewayRouteListResult.value`; `nextHop`,
/// `asPath` and `weight` are not read).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GatewayRoute {
    pub local_address: Option<String>,
    pub network: Option<String>,
    /// The peer the route came from (the instance's own address for a `Network` route).
    pub source_peer: Option<String>,
    /// Network (the VNet's own), EBgp, IBgp, Static…
    pub origin: Option<String>,
}

/// Parses `getikesas`' final body: a JSON *string* holding a JSON document, which is
/// either an array of SAs or a status object (`{"Status":"Successful","Data":…}`,
/// whose `Data` may be null, an array, or again a string). The spec's example
/// (`VirtualNetworkGatewayConnectionGetIkeSas.json`, 2024-03-01) shows the string's
/// text wrapped in one more pair of unescaped quotes (`"{"Status":…}"`): that reads too.
pub fn parse_ike_sas(body: &[u8]) -> Result<Vec<IkeSa>, serde_json::Error> {
    let outer: serde_json::Value = serde_json::from_slice(body)?;
    fn text(s: &str) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(s).or_else(|e| match s.trim().strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(inner) => serde_json::from_str(inner),
            None => Err(e),
        })
    }
    fn unwrap(v: serde_json::Value) -> Result<Vec<IkeSa>, serde_json::Error> {
        match v {
            serde_json::Value::String(s) => unwrap(text(&s)?),
            serde_json::Value::Null => Ok(Vec::new()),
            serde_json::Value::Array(_) => serde_json::from_value(v),
            serde_json::Value::Object(mut m) => match m.remove("Data").or_else(|| m.remove("data")) {
                Some(d) => unwrap(d),
                None => Ok(Vec::new()),
            },
            _ => Ok(Vec::new()),
        }
    }
    unwrap(outer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_only_connection_references_parse() {
        let body = r#"{"id":"/s/c","name":"c","type":"Microsoft.Network/connections","location":"x",
            "properties":{"provisioningState":"Succeeded","virtualNetworkGateway1":{"id":"/g"},
            "localNetworkGateway2":{"id":"/l"},"connectionType":"IPsec","connectionProtocol":"IKEv2",
            "connectionStatus":"Connected","tunnelConnectionStatus":[{"tunnel":"3.0.0.1_20.0.0.1",
            "connectionStatus":"Connected","ingressBytesTransferred":5,"egressBytesTransferred":6}]}}"#;
        let c: Connection = serde_json::from_str(body).expect("parses");
        assert_eq!(c.properties.virtual_network_gateway1.map(|r| r.id).as_deref(), Some("/g"));
        assert_eq!(c.properties.local_network_gateway2.map(|r| r.id).as_deref(), Some("/l"));
        assert_eq!(c.properties.tunnel_connection_status[0].ingress_bytes_transferred, Some(5));
        // The SDK's typed model rejects the same body: that is the trap this module avoids.
        assert!(serde_json::from_str::<azure_mgmt_network::models::VirtualNetworkGatewayConnection>(body).is_err());
    }

    #[test]
    fn ike_sas_in_a_string() {
        let inner = r#"[{"localEndpoint":"20.0.0.1","remoteEndpoint":"3.0.0.1","encryption":"AES256"}]"#;
        let body = serde_json::to_vec(&serde_json::Value::String(inner.to_owned())).expect("json");
        let sas = parse_ike_sas(&body).expect("parses");
        assert_eq!(sas.len(), 1);
        assert_eq!(sas[0].local_endpoint.as_deref(), Some("20.0.0.1"));
        let status = serde_json::to_vec(&serde_json::Value::String(r#"{"Status":"Successful","Data":null}"#.to_owned())).expect("json");
        assert!(parse_ike_sas(&status).expect("parses").is_empty());
    }

    /// The shapes live answers show (`az network vnet-gateway list-bgp-peer-status` /
    /// `list-learned-routes`): a `TimeSpan` duration, a `null` next hop and an empty AS
    /// path for the VNet's own routes.
    #[test]
    fn bgp_reads_parse() {
        let peers: List<BgpPeerStatus> = serde_json::from_str(
            r#"{"value":[{"asn":64512,"connectedDuration":"3.03:14:13.1796961","localAddress":"169.254.21.2",
            "messagesReceived":4995,"messagesSent":5157,"neighbor":"169.254.21.1","routesReceived":1,"state":"Connected"}]}"#,
        )
        .expect("parses");
        assert_eq!(peers.value[0].state.as_deref(), Some("Connected"));
        assert_eq!(peers.value[0].routes_received, Some(1));
        let routes: List<GatewayRoute> = serde_json::from_str(
            r#"{"value":[{"asPath":"","localAddress":"10.1.255.4","network":"10.1.0.0/16","nextHop":null,"origin":"Network",
            "sourcePeer":"10.1.255.4","weight":32768},{"asPath":"64512","localAddress":"169.254.21.2","network":"10.2.0.0/16",
            "nextHop":"169.254.21.1","origin":"EBgp","sourcePeer":"169.254.21.1","weight":32768}]}"#,
        )
        .expect("parses");
        assert_eq!(routes.value[0].origin.as_deref(), Some("Network"));
        assert_eq!(routes.value[1].source_peer.as_deref(), Some("169.254.21.1"));
    }

    #[test]
    fn shared_key_debug_is_redacted() {
        let k: SharedKey = serde_json::from_str(r#"{"value":"Secret.Key_123"}"#).expect("parses");
        assert!(!format!("{k:?}").contains("Secret"));
    }
}
