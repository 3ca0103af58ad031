//! Microsoft's published response shapes through our `wire` types: the fixtures in
//! `tests/fixtures/` follow the 2024-03-01 examples of Azure/azure-rest-api-specs (the
//! fixtures' README says which file each follows), and these tests check what the
//! adapter makes of them — ids, states, IPs, id-only references, the runtime fields a
//! list leaves out, the JSON-string body of `getikesas`.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use vpnbridge_core::model::{AzureScope, Owner, ProvisioningState, Role, TunnelState};
use vpnbridge_core::secret::Psk;

use crate::observe::Snapshot;
use crate::tunnels::{self, Instance, SaEvidence};
use crate::{merge, parse_ike_sas, wire};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../tests/fixtures/", $name))
    };
}

fn read<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("the fixture reads: {e}"))
}

/// The examples' resource group and VNet; their locations differ from file to file
/// (`centralus`, `eastus`, `loc1`), so [`snapshot`] puts them all in one.
const SCOPE: AzureScope<'static> = AzureScope { subscription_id: "subid", resource_group: "rg1", location: "centralus", vnet: "vnet1" };
const RG: &str = "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network";

/// The fixtures as one observation, every resource tagged as ours (the examples carry
/// no tags; untagged, they would all be foreign).
fn snapshot(owner: &Owner) -> Snapshot {
    let mut public_ips: Vec<wire::PublicIp> = read::<wire::List<wire::PublicIp>>(fixture!("public_ip_list.json")).value;
    public_ips.push(read(fixture!("public_ip_get.json")));
    let mut gateways: Vec<wire::Gateway> = vec![read(fixture!("gateway_get.json"))];
    let mut lngs: Vec<wire::Lng> = read::<wire::List<wire::Lng>>(fixture!("lng_list.json")).value;
    lngs.push(read(fixture!("lng_get.json")));
    let mut connections: Vec<wire::Connection> = read::<wire::List<wire::Connection>>(fixture!("connection_list.json")).value;
    connections.push(read(fixture!("connection_get.json")));
    let here = || Some(SCOPE.location.to_owned());
    for p in &mut public_ips {
        p.tags = owner.tags(&Role::PublicIp(0));
        p.location = here();
    }
    for g in &mut gateways {
        g.tags = owner.tags(&Role::VpnGateway);
        g.location = here();
    }
    for l in &mut lngs {
        l.tags = owner.tags(&Role::LocalNetworkGateway(0, 0));
        l.location = here();
    }
    for c in &mut connections {
        c.tags = owner.tags(&Role::Connection(0, 0));
        c.location = here();
    }
    Snapshot { vnet: None, public_ips, gateways, lngs, connections, keys: HashMap::new() }
}

#[test]
fn resources_of_ours_in_another_location_group_or_vnet_are_reported_elsewhere() {
    let owner = Owner::new("d");
    let mut snap = snapshot(&owner);
    // As read: the Get example's gateway lies in `centralus`, a listed LNG in `eastus`.
    let lng: wire::Lng = read(fixture!("lng_get.json"));
    assert_eq!(lng.location.as_deref(), Some("centralus"));
    snap.lngs[0].location = Some("eastus".to_owned());
    let moved = snap.lngs[0].id.clone();
    snap.connections[0].id = snap.connections[0].id.replace("/resourceGroups/rg1/", "/resourceGroups/rg-old/");
    let o = snap.observed(SCOPE, &owner);
    let place = |id: &str| o.elsewhere.iter().find(|e| e.id.eq_ignore_ascii_case(id)).map(|e| e.place.clone());
    assert_eq!(place(&moved).as_deref(), Some("location \"eastus\""));
    assert!(o.local_network_gateways.iter().all(|l| l.id != moved), "a resource elsewhere is not observed as here");
    assert_eq!(place(&snap.connections[0].id).as_deref(), Some("resource group \"rg-old\""));
    assert!(o.vpn_gateway.is_some(), "the gateway serves vnet1");
    let other_vnet = AzureScope { vnet: "vnet-hub", ..SCOPE };
    let o = snapshot(&owner).observed(other_vnet, &owner);
    assert!(o.vpn_gateway.is_none(), "a gateway in vnet1 is not the gateway of vnet-hub");
    assert!(o.elsewhere.iter().any(|e| e.kind == "VPN gateway" && e.place == "VNet \"vnet1\""), "{:?}", o.elsewhere);
}

#[test]
fn public_ips_read_with_their_address_or_none() {
    let owner = Owner::new("d");
    let o = snapshot(&owner).observed(SCOPE, &owner);
    let by = |n: &str| o.public_ips.iter().find(|p| p.name == n).unwrap_or_else(|| panic!("{n}"));
    let get = by("pip-example");
    assert_eq!(get.id, format!("{RG}/publicIPAddresses/pip-example"));
    assert_eq!((get.ip, get.static_allocation, get.state), (None, false, ProvisioningState::Succeeded));
    assert!(get.sku.is_empty() && get.zones.is_empty(), "no sku and no zones in the example");
    assert_eq!(by("pip-b").ip, Some(Ipv4Addr::new(40, 85, 154, 10)));
    assert_eq!(by("pip-a").ip, None);
}

#[test]
fn gateways_read_with_id_only_references() {
    let owner = Owner::new("d");
    let o = snapshot(&owner).observed(SCOPE, &owner);
    let g = o.vpn_gateway.expect("the gateway");
    assert_eq!(g.id, format!("{RG}/virtualNetworkGateways/vpngw"));
    assert_eq!((g.sku.as_str(), g.generation.as_str(), g.vpn_type.as_str()), ("VpnGw1", "None", "RouteBased"));
    assert!(!g.active_active && !g.enable_bgp);
    assert_eq!(g.asn, None, "no ASN is reported while BGP is off");
    assert_eq!(g.state, ProvisioningState::Succeeded);
    assert_eq!(g.ip_configurations.len(), 1);
    assert_eq!(g.ip_configurations[0].name, "gwipconfig1");
    assert_eq!(g.ip_configurations[0].public_ip_id, format!("{RG}/publicIPAddresses/gwpip"));
    let list: wire::List<wire::Gateway> = read(fixture!("gateway_list.json"));
    assert_eq!(list.value.len(), 2);
    assert!(list.next_link.is_none());
    assert_eq!(
        list.value[1].properties.ip_configurations[0].properties.public_ip_address.as_ref().map(|r| r.id.as_str()),
        Some(&*format!("{RG}/publicIPAddresses/vpngw2-ip"))
    );
    assert_eq!(list.value[0].properties.bgp_settings.as_ref().and_then(|b| b.asn), Some(65515));
}

#[test]
fn local_network_gateways_with_a_placeholder_address_read_as_unspecified() {
    let owner = Owner::new("d");
    let o = snapshot(&owner).observed(SCOPE, &owner);
    assert_eq!(o.local_network_gateways.len(), 3);
    let l = o.local_network_gateways.iter().find(|l| l.name == "localgw").expect("localgw");
    assert_eq!(l.id, format!("{RG}/localNetworkGateways/localgw"));
    assert_eq!(l.address_prefixes, vec!["10.1.0.0/16".parse::<ipnet::IpNet>().expect("literal")]);
    // `x.x.x.x` is no address: reported as 0.0.0.0, which no desired LNG has.
    assert_eq!(l.gateway_ip, Ipv4Addr::UNSPECIFIED);
    assert_eq!(l.state, ProvisioningState::Succeeded);
}

#[test]
fn connections_read_id_only_references_and_list_items_have_no_runtime_fields() {
    let list: wire::List<wire::Connection> = read(fixture!("connection_list.json"));
    for c in &list.value {
        assert!(c.properties.connection_status.is_none(), "{}: a list item has no connectionStatus", c.name);
        assert!(c.properties.tunnel_connection_status.is_empty(), "{}: a list item has no tunnelConnectionStatus", c.name);
    }
    let get: wire::Connection = read(fixture!("connection_get.json"));
    // The example's references carry `properties: {}`, so the SDK's typed model reads
    // it; the id-only form (`{id}`, as the fake answers) it does not (see `wire`). Our
    // types read both.
    assert!(serde_json::from_str::<azure_mgmt_network::models::VirtualNetworkGatewayConnection>(fixture!("connection_get.json")).is_ok());
    assert_eq!(get.properties.connection_status.as_deref(), Some("Connecting"));
    assert!(get.properties.tunnel_connection_status.is_empty(), "the Get example shows no tunnel entries");
    let owner = Owner::new("d");
    let o = snapshot(&owner).observed(SCOPE, &owner);
    let by = |n: &str| o.connections.iter().find(|c| c.name == n).unwrap_or_else(|| panic!("{n}"));
    let c = by("connS2S");
    assert_eq!(c.gateway_id, format!("{RG}/virtualNetworkGateways/vpngw"));
    assert_eq!(c.local_network_gateway_id, format!("{RG}/localNetworkGateways/localgw"));
    assert_eq!((c.protocol.as_str(), c.connection_status.as_str(), c.state), ("IKEv2", "Connecting", ProvisioningState::Succeeded));
    assert!(c.tunnels.is_empty());
    assert!(c.shared_key.is_none(), "the key is read through sharedkey, never from the GET body");
    let listed = by("conn1");
    assert_eq!((listed.protocol.as_str(), listed.connection_status.as_str()), ("IKEv1", "Unknown"));
    assert_eq!(by("conn2").local_network_gateway_id, format!("{RG}/localNetworkGateways/localgw2"), "id after properties");
    // With no tunnel entries, an end says so and what connectionStatus is.
    let ends = tunnels::attribute(
        &get.properties.tunnel_connection_status,
        get.properties.connection_status.as_deref(),
        &[Instance { index: 0, ip: Ipv4Addr::new(52, 161, 10, 135), sa: SaEvidence::Absent }],
    );
    assert_eq!(ends[0].state, TunnelState::Unknown);
    assert!(ends[0].reason.contains("connectionStatus Connecting"), "{}", ends[0].reason);
}

#[test]
fn the_shared_key_reads_into_a_psk() {
    let k: wire::SharedKey = read(fixture!("connection_shared_key.json"));
    assert_eq!(Psk::new(&k.value).expect("a valid key").expose(), "FixtureKey123");
    assert!(!format!("{k:?}").contains("FixtureKey123"));
}

#[test]
fn the_ike_sas_body_is_a_json_string_holding_json() {
    let sas = parse_ike_sas(fixture!("connection_ike_sas.json").as_bytes()).expect("the example's body reads");
    assert!(sas.is_empty(), "Data is null: no SA");
}

#[test]
fn a_reput_of_the_gateway_example_keeps_what_we_do_not_model() {
    let existing: serde_json::Value = read(fixture!("gateway_get.json"));
    let resize = serde_json::json!({ "properties": { "sku": { "name": "VpnGw2AZ", "tier": "VpnGw2AZ" } } });
    let body = merge::merged(Some(existing.clone()), resize);
    let p = &body["properties"];
    assert_eq!(p["sku"]["name"], "VpnGw2AZ");
    for kept in ["natRules", "customRoutes", "vpnClientConfiguration", "ipConfigurations", "bgpSettings"] {
        assert_eq!(p[kept], existing["properties"][kept], "{kept}");
    }
    assert!(p.get("provisioningState").is_none() && body.get("etag").is_none());
    assert_eq!(body["location"], "centralus");
}
