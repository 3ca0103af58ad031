//! A re-PUT of our resources keeps what vpnbridge does not model. ARM's PUT replaces
//! the whole resource, so the adapter GETs it, changes what it owns and sends the rest
//! back: tags someone added stay (ours are set), and so do properties such as a
//! gateway's `natRules`, `customRoutes` and `vpnClientConfiguration`, an LNG's
//! `bgpSettings`, a Connection's `ipsecPolicies` and `trafficSelectorPolicies`, a public
//! IP's `dnsSettings`. Someone else's edits are made as a user would make them: a GET,
//! a change, a PUT of the whole resource to the fake over HTTP.

use std::net::Ipv4Addr;

use serde_json::{Value, json};
use vpnbridge_armfake::ArmFakeHandle;
use vpnbridge_core::model::{Owner, ProvisioningState, Role};
use vpnbridge_core::ops::AzureOp;
use vpnbridge_core::secret::Psk;

use super::{endpoint, fake, lng, pip, run};

/// Someone else's edit of `kind/name`: `change` applied to what GET returns, PUT back.
pub(super) async fn edit(fake: &ArmFakeHandle, kind: &str, name: &str, change: impl FnOnce(&mut Value)) {
    let mut body = fake.resource(kind, name).unwrap_or_else(|| panic!("{kind}/{name} exists"));
    change(&mut body);
    let url = format!("{}{}?api-version={}", fake.url, fake.id(kind, name), vpnbridge_azure::API_VERSION);
    let r = reqwest::Client::new()
        .put(url)
        .bearer_auth("fake-token")
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("the fake answers");
    assert!(r.status().is_success(), "{kind}/{name}: {}", r.status());
}

fn gateway(owner: &Owner, sku: &str) -> AzureOp {
    AzureOp::CreateVpnGateway {
        name: "t-vpngw".into(),
        vnet: "vnet-hub".into(),
        sku: sku.into(),
        generation: "Generation1".into(),
        public_ips: vec!["t-pip-0".into(), "t-pip-1".into()],
        bgp: None,
        tags: owner.tags(&Role::VpnGateway),
    }
}

fn connection(owner: &Owner) -> AzureOp {
    AzureOp::PutConnection {
        name: "t-cn-0-0".into(),
        gateway: "t-vpngw".into(),
        local_network_gateway: "t-lng-0-0".into(),
        shared_key: Psk::new("Test.Key_0001").expect("valid"),
        bgp: None,
        dpd_timeout_seconds: 45,
        tags: owner.tags(&Role::Connection(0, 0)),
    }
}

fn props(v: &Value) -> &Value {
    &v["properties"]
}

fn assert_tags(v: &Value, owner: &Owner) {
    assert_eq!(v["tags"]["owner"], "alice", "someone's tag is kept: {}", v["tags"]);
    assert_eq!(v["tags"]["vpnbridge:deployment"], json!(owner.deployment), "ours are set: {}", v["tags"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resize_and_a_failed_gateway_reput_keep_its_tags_and_what_we_do_not_model() {
    let fake = fake().await;
    let ep = endpoint(&fake);
    let owner = Owner::new("t");
    for k in 0..2 {
        run(&ep, &pip(&owner, k)).await;
    }
    run(&ep, &gateway(&owner, "VpnGw1AZ")).await;
    edit(&fake, "virtualNetworkGateways", "t-vpngw", |g| {
        g["tags"]["owner"] = json!("alice");
        g["properties"]["natRules"] = json!([{ "name": "natRule1", "properties": { "type": "Static", "mode": "EgressSnat",
            "internalMappings": [{ "addressSpace": "10.10.0.0/24" }], "externalMappings": [{ "addressSpace": "50.0.0.0/24" }] } }]);
        g["properties"]["customRoutes"] = json!({ "addressPrefixes": ["101.168.0.6/32"] });
        g["properties"]["vpnClientConfiguration"] =
            json!({ "vpnClientProtocols": ["OpenVPN"], "vpnClientAddressPool": { "addressPrefixes": ["172.16.0.0/24"] } });
    })
    .await;
    let kept = |g: &Value| {
        assert_tags(g, &owner);
        assert_eq!(props(g)["natRules"][0]["name"], "natRule1", "{g}");
        assert_eq!(props(g)["customRoutes"]["addressPrefixes"][0], "101.168.0.6/32", "{g}");
        assert_eq!(props(g)["vpnClientConfiguration"]["vpnClientProtocols"][0], "OpenVPN", "{g}");
    };
    run(&ep, &AzureOp::ResizeVpnGateway { name: "t-vpngw".into(), sku: "VpnGw2AZ".into() }).await;
    let g = fake.resource("virtualNetworkGateways", "t-vpngw").expect("gateway");
    assert_eq!(props(&g)["sku"]["name"], "VpnGw2AZ");
    kept(&g);
    // Provisioning fails on someone's next PUT; ours provisions it again, keeping theirs.
    fake.faults(|f| f.fail_next_operations = 1);
    edit(&fake, "virtualNetworkGateways", "t-vpngw", |g| g["tags"]["cost-centre"] = json!("42")).await;
    assert_eq!(props(&fake.resource("virtualNetworkGateways", "t-vpngw").expect("gateway"))["provisioningState"], "Failed");
    run(&ep, &gateway(&owner, "VpnGw2AZ")).await;
    let g = fake.resource("virtualNetworkGateways", "t-vpngw").expect("gateway");
    assert_eq!(props(&g)["provisioningState"], "Succeeded");
    assert_eq!(g["tags"]["cost-centre"], "42");
    kept(&g);
}

/// An LNG's BGP peer is vpnbridge's to set since bgp-ha (`PutLocalNetworkGateway.bgp`):
/// a re-PUT without one removes someone else's, while their tags and the properties
/// vpnbridge does not model stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_change_of_a_local_network_gateway_keeps_its_tags_and_sets_its_bgp_peer() {
    let fake = fake().await;
    let ep = endpoint(&fake);
    let owner = Owner::new("t");
    run(&ep, &lng(&owner, Ipv4Addr::new(3, 0, 113, 5))).await;
    edit(&fake, "localNetworkGateways", "t-lng-0-0", |l| {
        l["tags"]["owner"] = json!("alice");
        l["properties"]["fqdn"] = json!("site1.contoso.com");
        l["properties"]["bgpSettings"] = json!({ "asn": 65050, "bgpPeeringAddress": "169.254.21.1", "peerWeight": 0 });
    })
    .await;
    let AzureOp::PutLocalNetworkGateway { name, gateway_ip, tags, .. } = lng(&owner, Ipv4Addr::new(3, 0, 113, 5)) else { unreachable!() };
    let wider = vec!["10.2.0.0/16".parse().expect("literal"), "10.3.0.0/16".parse().expect("literal")];
    run(&ep, &AzureOp::PutLocalNetworkGateway { name, gateway_ip, address_prefixes: wider, bgp: None, tags }).await;
    let l = fake.resource("localNetworkGateways", "t-lng-0-0").expect("lng");
    assert_eq!(props(&l)["localNetworkAddressSpace"]["addressPrefixes"], json!(["10.2.0.0/16", "10.3.0.0/16"]));
    assert_tags(&l, &owner);
    assert_eq!(props(&l)["fqdn"], "site1.contoso.com", "{l}");
    assert!(props(&l).get("bgpSettings").is_none(), "{l}");
}

/// A static LNG PUT again as bgp-ha wants it (a BGP peer, no prefixes): the merge onto
/// what GET returned must not keep the old prefixes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_lng_put_again_with_a_bgp_peer_and_no_prefixes_loses_its_prefixes() {
    let fake = fake().await;
    let ep = endpoint(&fake);
    let owner = Owner::new("t");
    run(&ep, &lng(&owner, Ipv4Addr::new(3, 0, 113, 5))).await;
    let AzureOp::PutLocalNetworkGateway { name, gateway_ip, tags, .. } = lng(&owner, Ipv4Addr::new(3, 0, 113, 5)) else { unreachable!() };
    let bgp = vpnbridge_core::model::LngBgp { asn: 64512, peering_address: Ipv4Addr::new(169, 254, 21, 1) };
    run(&ep, &AzureOp::PutLocalNetworkGateway { name, gateway_ip, address_prefixes: Vec::new(), bgp: Some(bgp), tags }).await;
    let l = fake.resource("localNetworkGateways", "t-lng-0-0").expect("lng");
    assert_eq!(props(&l)["localNetworkAddressSpace"]["addressPrefixes"], json!([]), "{l}");
    assert_eq!(props(&l)["bgpSettings"], json!({ "asn": 64512, "bgpPeeringAddress": "169.254.21.1", "peerWeight": 0 }), "{l}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_reputs_of_a_connection_and_a_public_ip_keep_their_tags_and_policies() {
    let fake = fake().await;
    let ep = endpoint(&fake);
    let owner = Owner::new("t");
    for k in 0..2 {
        run(&ep, &pip(&owner, k)).await;
    }
    run(&ep, &gateway(&owner, "VpnGw1AZ")).await;
    run(&ep, &lng(&owner, Ipv4Addr::new(3, 0, 113, 5))).await;
    run(&ep, &connection(&owner)).await;
    let policy = json!({ "saLifeTimeSeconds": 3600, "saDataSizeKilobytes": 102400000, "ipsecEncryption": "AES256",
        "ipsecIntegrity": "SHA256", "ikeEncryption": "AES256", "ikeIntegrity": "SHA256", "dhGroup": "DHGroup14", "pfsGroup": "PFS2048" });
    let selectors = json!([{ "localAddressRanges": ["10.1.0.0/16"], "remoteAddressRanges": ["10.2.0.0/16"] }]);
    fake.faults(|f| f.fail_next_operations = 1);
    edit(&fake, "connections", "t-cn-0-0", |c| {
        c["tags"]["owner"] = json!("alice");
        c["properties"]["ipsecPolicies"] = json!([policy]);
        c["properties"]["trafficSelectorPolicies"] = selectors.clone();
    })
    .await;
    let o = ep_observe(&ep, &owner).await;
    assert_eq!(o.connections[0].state, ProvisioningState::Failed);
    run(&ep, &connection(&owner)).await;
    let c = fake.resource("connections", "t-cn-0-0").expect("connection");
    assert_eq!(props(&c)["provisioningState"], "Succeeded");
    assert_tags(&c, &owner);
    assert_eq!(props(&c)["ipsecPolicies"][0], policy, "{c}");
    assert_eq!(props(&c)["trafficSelectorPolicies"], selectors, "{c}");
    // A public IP.
    fake.faults(|f| f.fail_next_operations = 1);
    edit(&fake, "publicIPAddresses", "t-pip-0", |p| {
        p["tags"]["owner"] = json!("alice");
        p["properties"]["dnsSettings"] = json!({ "domainNameLabel": "t-vpn-0" });
    })
    .await;
    run(&ep, &pip(&owner, 0)).await;
    let p = fake.resource("publicIPAddresses", "t-pip-0").expect("public IP");
    assert_eq!(props(&p)["provisioningState"], "Succeeded");
    assert_tags(&p, &owner);
    assert_eq!(props(&p)["dnsSettings"]["domainNameLabel"], "t-vpn-0", "{p}");
}

async fn ep_observe(ep: &vpnbridge_azure::AzureEndpoint, owner: &Owner) -> vpnbridge_core::model::AzureObserved {
    use vpnbridge_core::endpoint::VpnEndpoint;
    ep.observe(owner).await.expect("observe")
}
