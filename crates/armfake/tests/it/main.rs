//! The ARM fake's wire shapes, read with a plain HTTP client: status codes, headers,
//! the long-running-operation protocol, error bodies, api-version and token checks.

use std::time::Duration;

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use vpnbridge_armfake::{API_VERSION, ArmFake, ArmFakeConfig, ArmFakeHandle};
use vpnbridge_sim::LatencyTable;

struct Arm {
    fake: ArmFakeHandle,
    http: Client,
}

impl Arm {
    async fn start(f: impl FnOnce(&mut ArmFakeConfig)) -> Self {
        let mut cfg = ArmFakeConfig::for_tests();
        f(&mut cfg);
        Self { fake: ArmFake::start(cfg).await.expect("starts"), http: Client::new() }
    }

    fn url(&self, kind: &str, name: &str) -> String {
        format!("{}{}?api-version={API_VERSION}", self.fake.url, self.fake.id(kind, name))
    }

    fn collection(&self, kind: &str) -> String {
        let c = self.fake.config();
        format!(
            "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/{kind}?api-version={API_VERSION}",
            self.fake.url, c.subscription_id, c.resource_group
        )
    }

    async fn send(&self, method: reqwest::Method, url: &str, body: Option<Value>) -> Response {
        let mut r = self.http.request(method, url).bearer_auth("fake-token");
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.expect("the fake answers")
    }

    async fn get(&self, url: &str) -> Response {
        self.send(reqwest::Method::GET, url, None).await
    }

    async fn put(&self, url: &str, body: Value) -> Response {
        self.send(reqwest::Method::PUT, url, Some(body)).await
    }

    async fn delete(&self, url: &str) -> Response {
        self.send(reqwest::Method::DELETE, url, None).await
    }

    async fn put_public_ip(&self, name: &str) -> Response {
        self.put(
            &self.url("publicIPAddresses", name),
            json!({
                "location": "japaneast",
                "tags": { "vpnbridge:deployment": "t" },
                "zones": ["1", "2", "3"],
                "sku": { "name": "Standard", "tier": "Regional" },
                "properties": { "publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4" },
            }),
        )
        .await
    }

    /// Polls an `Azure-AsyncOperation` URL until it leaves InProgress.
    async fn settle(&self, op_url: &str) -> Value {
        for _ in 0..100 {
            let body: Value = self.get(op_url).await.json().await.expect("json");
            if body["status"] != "InProgress" {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("operation {op_url} never finished");
    }
}

fn header(r: &Response, name: &str) -> Option<String> {
    r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn error_code(r: Response) -> String {
    let body: Value = r.json().await.expect("an ARM error body");
    body["error"]["code"].as_str().expect("error.code").to_owned()
}

#[tokio::test]
async fn api_version_and_token_are_required() {
    let arm = Arm::start(|_| {}).await;
    let url = arm.url("publicIPAddresses", "p");
    let no_version = url.split('?').next().expect("path").to_owned();
    let r = arm.get(&no_version).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "MissingApiVersionParameter");
    let r = arm.get(&url.replace(API_VERSION, "2019-01-01")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "InvalidApiVersionParameter");
    let r = arm.http.get(&url).send().await.expect("answers");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(r).await, "AuthenticationFailed");
    let r = arm.http.get(&url).bearer_auth("other").send().await.expect("answers");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn missing_resources_are_arm_404s() {
    let arm = Arm::start(|_| {}).await;
    let r = arm.get(&arm.url("connections", "nope")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(header(&r, "x-ms-request-id").is_some());
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "ResourceNotFound");
    assert!(body["error"]["message"].as_str().expect("message").contains("Microsoft.Network/connections/nope"));
    let r = arm.get(&format!("{}/sharedkey?api-version={API_VERSION}", arm.url("connections", "nope").split('?').next().expect("p"))).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "ParentResourceNotFound");
}

#[tokio::test]
async fn put_is_a_long_running_operation() {
    let arm = Arm::start(|c| c.latency = LatencyTable { azure_public_ip: Duration::from_millis(300), ..LatencyTable::instant() }).await;
    let r = arm.put_public_ip("p").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let op = header(&r, "azure-asyncoperation").expect("Azure-AsyncOperation");
    assert!(op.contains("/providers/Microsoft.Network/locations/japaneast/operations/"), "{op}");
    assert_eq!(header(&r, "retry-after").as_deref(), Some("1"));
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["properties"]["provisioningState"], "Updating");
    assert_eq!(body["sku"]["name"], "Standard");
    let status: Value = arm.get(&op).await.json().await.expect("json");
    assert_eq!(status["status"], "InProgress");
    assert_eq!(arm.settle(&op).await["status"], "Succeeded");
    let p: Value = arm.get(&arm.url("publicIPAddresses", "p")).await.json().await.expect("json");
    assert_eq!(p["properties"]["provisioningState"], "Succeeded");
    assert!(p["properties"]["ipAddress"].as_str().is_some_and(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok()));
    // The same PUT again is an update: 200.
    assert_eq!(arm.put_public_ip("p").await.status(), StatusCode::OK);
    let list: Value = arm.get(&arm.collection("publicIPAddresses")).await.json().await.expect("json");
    assert_eq!(list["value"].as_array().expect("value").len(), 1);
}

#[tokio::test]
async fn delete_answers_202_with_location_then_204_when_gone() {
    let arm = Arm::start(|_| {}).await;
    let op = header(&arm.put_public_ip("p").await, "azure-asyncoperation").expect("op");
    arm.settle(&op).await;
    let r = arm.delete(&arm.url("publicIPAddresses", "p")).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = header(&r, "location").expect("Location");
    assert!(location.contains("/operationResults/"), "{location}");
    let mut done = false;
    for _ in 0..50 {
        let r = arm.get(&location).await;
        if r.status() == StatusCode::ACCEPTED {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        assert!(r.status().is_success(), "{}", r.status());
        done = true;
        break;
    }
    assert!(done);
    assert_eq!(arm.get(&arm.url("publicIPAddresses", "p")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(arm.delete(&arm.url("publicIPAddresses", "p")).await.status(), StatusCode::NO_CONTENT);
}

async fn build_connection(arm: &Arm) {
    for p in ["p0", "p1"] {
        let op = header(&arm.put_public_ip(p).await, "azure-asyncoperation").expect("op");
        arm.settle(&op).await;
    }
    let subnet = format!("{}/subnets/GatewaySubnet", arm.fake.id("virtualNetworks", "vnet-hub"));
    let cfg = |name: &str, pip: &str| {
        json!({ "name": name, "properties": { "privateIPAllocationMethod": "Dynamic", "subnet": { "id": subnet },
            "publicIPAddress": { "id": arm.fake.id("publicIPAddresses", pip) } } })
    };
    let r = arm
        .put(
            &arm.url("virtualNetworkGateways", "gw"),
            json!({ "location": "japaneast", "properties": { "gatewayType": "Vpn", "vpnType": "RouteBased",
                "vpnGatewayGeneration": "Generation1", "sku": { "name": "VpnGw1AZ", "tier": "VpnGw1AZ" }, "activeActive": true,
                "enableBgp": false, "ipConfigurations": [cfg("ipconfig0", "p0"), cfg("ipconfig1", "p1")] } }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    arm.settle(&header(&r, "azure-asyncoperation").expect("op")).await;
    let r = arm
        .put(
            &arm.url("localNetworkGateways", "lng"),
            json!({ "location": "japaneast", "properties": { "gatewayIpAddress": "3.0.113.5",
                "localNetworkAddressSpace": { "addressPrefixes": ["10.2.0.0/16"] } } }),
        )
        .await;
    arm.settle(&header(&r, "azure-asyncoperation").expect("op")).await;
    let r = arm
        .put(
            &arm.url("connections", "cn"),
            json!({ "location": "japaneast", "properties": {
                "virtualNetworkGateway1": { "id": arm.fake.id("virtualNetworkGateways", "gw"), "properties": {} },
                "localNetworkGateway2": { "id": arm.fake.id("localNetworkGateways", "lng"), "properties": {} },
                "connectionType": "IPsec", "connectionProtocol": "IKEv2", "sharedKey": "Wire.Key_0001", "dpdTimeoutSeconds": 45 } }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    arm.settle(&header(&r, "azure-asyncoperation").expect("op")).await;
}

#[tokio::test]
async fn resources_have_arm_shapes_and_connections_id_only_references() {
    let arm = Arm::start(|_| {}).await;
    build_connection(&arm).await;
    let g: Value = arm.get(&arm.url("virtualNetworkGateways", "gw")).await.json().await.expect("json");
    let p = &g["properties"];
    assert_eq!(p["provisioningState"], "Succeeded");
    assert_eq!(p["ipConfigurations"].as_array().expect("ipConfigurations").len(), 2);
    assert_eq!(p["ipConfigurations"][1]["properties"]["publicIPAddress"]["id"], arm.fake.id("publicIPAddresses", "p1"));
    assert_eq!(p["bgpSettings"]["bgpPeeringAddresses"].as_array().expect("peering").len(), 2);
    assert_eq!(p["bgpSettings"]["bgpPeeringAddresses"][0]["defaultBgpIpAddresses"][0], "10.1.255.4");
    let c: Value = arm.get(&arm.url("connections", "cn")).await.json().await.expect("json");
    let p = &c["properties"];
    assert_eq!(p["virtualNetworkGateway1"], json!({ "id": arm.fake.id("virtualNetworkGateways", "gw") }));
    assert_eq!(p["localNetworkGateway2"], json!({ "id": arm.fake.id("localNetworkGateways", "lng") }));
    // As the spec's Get example: runtime fields and the key.
    assert_eq!(p["sharedKey"], "Wire.Key_0001");
    assert_eq!(p["connectionStatus"], "NotConnected");
    let tunnels = p["tunnelConnectionStatus"].as_array().expect("tunnels");
    assert_eq!(tunnels.len(), 2);
    for t in tunnels {
        let name = t["tunnel"].as_str().expect("a name");
        assert!(name.split(|c: char| !c.is_ascii_digit() && c != '.').all(|w| w.parse::<std::net::Ipv4Addr>().is_err()), "{name}");
    }
    // As the spec's List example: no runtime fields, no key, byte counters 0.
    let list: Value = arm.get(&arm.collection("connections")).await.json().await.expect("json");
    let item = &list["value"][0]["properties"];
    assert_eq!(item["provisioningState"], "Succeeded");
    for field in ["connectionStatus", "tunnelConnectionStatus", "sharedKey"] {
        assert!(item.get(field).is_none(), "the list carries {field}: {item}");
    }
    assert_eq!((item["ingressBytesTransferred"].as_i64(), item["egressBytesTransferred"].as_i64()), (Some(0), Some(0)));
    let k: Value = arm
        .get(&format!("{}/sharedkey?api-version={API_VERSION}", arm.fake.url.clone() + &arm.fake.id("connections", "cn")))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(k["value"], "Wire.Key_0001");
    // The VNet shows the gateway's ipConfigurations in its GatewaySubnet.
    let v: Value = arm.get(&arm.url("virtualNetworks", "vnet-hub")).await.json().await.expect("json");
    let s = &v["properties"]["subnets"][0];
    assert_eq!(s["name"], "GatewaySubnet");
    assert_eq!(s["properties"]["ipConfigurations"].as_array().expect("users").len(), 2);
    // getikesas: 202 + Location, final body a JSON string holding a JSON document.
    let r = arm
        .send(
            reqwest::Method::POST,
            &format!("{}{}/getikesas?api-version={API_VERSION}", arm.fake.url, arm.fake.id("connections", "cn")),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let loc = header(&r, "location").expect("Location");
    let body: Value = arm.get(&loc).await.json().await.expect("json");
    let inner: Value = serde_json::from_str(body.as_str().expect("a JSON string")).expect("holding JSON");
    assert!(inner.is_array());
    // Deleting the gateway while a Connection uses it: an ARM 400.
    let r = arm.delete(&arm.url("virtualNetworkGateways", "gw")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "InUseVirtualNetworkGatewayCannotBeDeleted");
}

#[tokio::test]
async fn rule_violations_are_arm_errors() {
    let arm = Arm::start(|_| {}).await;
    let op = header(&arm.put_public_ip("p0").await, "azure-asyncoperation").expect("op");
    arm.settle(&op).await;
    let subnet = format!("{}/subnets/GatewaySubnet", arm.fake.id("virtualNetworks", "vnet-hub"));
    let body = |sku: &str, generation: &str, cfgs: usize| {
        let cfg = json!({ "name": "c", "properties": { "subnet": { "id": subnet }, "publicIPAddress": { "id": arm.fake.id("publicIPAddresses", "p0") } } });
        json!({ "location": "japaneast", "properties": { "gatewayType": "Vpn", "vpnType": "RouteBased", "vpnGatewayGeneration": generation,
            "sku": { "name": sku }, "activeActive": true, "ipConfigurations": vec![cfg; cfgs] } })
    };
    let r = arm.put(&arm.url("virtualNetworkGateways", "gw"), body("VpnGw1AZ", "Generation2", 2)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "VirtualNetworkGatewaySkuCannotBeCreatedForSpecifiedVmGeneration");
    let r = arm.put(&arm.url("virtualNetworkGateways", "gw"), body("VpnGw1AZ", "Generation1", 1)).await;
    assert_eq!(error_code(r).await, "ActiveActiveGatewayMustHaveExactlyTwoIpConfigurations");
    let r = arm.put(&arm.url("virtualNetworkGateways", "gw"), body("Basic", "Generation1", 2)).await;
    assert_eq!(error_code(r).await, "InvalidGatewaySize");
    let r = arm.put(&arm.url("publicIPAddresses", "bad"), json!("not an object")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn fault_switches() {
    let arm = Arm::start(|_| {}).await;
    arm.fake.faults(|f| {
        f.throttle_next = 2;
        f.throttle_retry_after_secs = 3;
    });
    for _ in 0..2 {
        let r = arm.get(&arm.collection("connections")).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&r, "retry-after").as_deref(), Some("3"));
    }
    assert_eq!(arm.get(&arm.collection("connections")).await.status(), StatusCode::OK);
    arm.fake.faults(|f| f.conflict_next = 1);
    let r = arm.put_public_ip("p").await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(r).await, "AnotherOperationInProgress");
    arm.fake.faults(|f| f.fail_next_operations = 1);
    let op = header(&arm.put_public_ip("p").await, "azure-asyncoperation").expect("op");
    let s = arm.settle(&op).await;
    assert_eq!(s["status"], "Failed");
    assert_eq!(s["error"]["code"], "OperationFailed");
    arm.fake.faults(|f| f.drop_next_responses = 1);
    let r = arm.delete(&arm.url("publicIPAddresses", "p")).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // ... but the delete was carried out.
    let p: Value = arm.get(&arm.url("publicIPAddresses", "p")).await.json().await.expect("json");
    assert!(p["error"]["code"] == "ResourceNotFound" || p["properties"]["provisioningState"] == "Deleting", "{p}");
    let log = arm.fake.requests();
    assert_eq!(log.iter().filter(|r| r.is_write()).count(), 3, "{log:?}");
}

/// A PUT replaces the resource, as in ARM: what it carries beyond the simulator's model
/// comes back as sent; what a later PUT leaves out (tags, properties) is gone.
#[tokio::test]
async fn a_put_keeps_what_it_says_and_drops_what_it_leaves_out() {
    let arm = Arm::start(|_| {}).await;
    let url = arm.url("localNetworkGateways", "lng");
    let body = |extra: bool| {
        let mut b = json!({ "location": "japaneast", "tags": { "vpnbridge:deployment": "t" },
            "properties": { "gatewayIpAddress": "3.0.113.5", "localNetworkAddressSpace": { "addressPrefixes": ["10.2.0.0/16"] } } });
        if extra {
            b["tags"]["owner"] = json!("alice");
            b["properties"]["fqdn"] = json!("site1.contoso.com");
            b["properties"]["bgpSettings"] = json!({ "asn": 65050, "bgpPeeringAddress": "169.254.21.1", "peerWeight": 0 });
        }
        b
    };
    arm.settle(&header(&arm.put(&url, body(true)).await, "azure-asyncoperation").expect("op")).await;
    let got: Value = arm.get(&url).await.json().await.expect("json");
    assert_eq!(got["tags"]["owner"], "alice");
    assert_eq!(got["properties"]["fqdn"], "site1.contoso.com");
    assert_eq!(got["properties"]["bgpSettings"], json!({ "asn": 65050, "bgpPeeringAddress": "169.254.21.1", "peerWeight": 0 }));
    assert_eq!(got["properties"]["gatewayIpAddress"], "3.0.113.5");
    let list: Value = arm.get(&arm.collection("localNetworkGateways")).await.json().await.expect("json");
    assert_eq!(list["value"][0]["properties"]["bgpSettings"]["bgpPeeringAddress"], "169.254.21.1");
    arm.settle(&header(&arm.put(&url, body(false)).await, "azure-asyncoperation").expect("op")).await;
    let got: Value = arm.get(&url).await.json().await.expect("json");
    assert!(got["tags"].get("owner").is_none(), "{got}");
    assert!(got["properties"].get("fqdn").is_none(), "{got}");
    assert!(got["properties"].get("bgpSettings").is_none(), "{got}");
}

/// ARM ids are case-insensitive: a GET or PUT that spells the subscription, the
/// resource group or the name in another case reaches the same resource, and the
/// subscription-wide list (which observe uses) holds it once.
#[tokio::test]
async fn ids_are_case_insensitive_and_subscription_lists_see_every_group() {
    let arm = Arm::start(|_| {}).await;
    let op = header(&arm.put_public_ip("pip-a").await, "azure-asyncoperation").expect("op");
    arm.settle(&op).await;
    let shouted = arm.url("publicIPAddresses", "PIP-A").replace("/resourceGroups/rg-vpn/", "/RESOURCEGROUPS/RG-VPN/");
    let r = arm.get(&shouted).await;
    assert_eq!(r.status(), StatusCode::OK);
    let got: Value = r.json().await.expect("json");
    assert_eq!(got["name"], "pip-a", "the stored spelling answers");
    let body = json!({
        "location": "japaneast",
        "tags": { "vpnbridge:deployment": "t", "k": "v" },
        "zones": ["1", "2", "3"],
        "sku": { "name": "Standard", "tier": "Regional" },
        "properties": { "publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4" },
    });
    let r = arm.put(&shouted, body).await;
    assert!(r.status().is_success(), "{}", r.status());
    let c = arm.fake.config();
    let list = format!(
        "{}/subscriptions/{}/providers/Microsoft.Network/publicIPAddresses?api-version={API_VERSION}",
        arm.fake.url,
        c.subscription_id.to_uppercase()
    );
    let listed: Value = arm.get(&list).await.json().await.expect("json");
    let names: Vec<&str> = listed["value"].as_array().expect("value").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, vec!["pip-a"], "one resource, updated in place, not a second one");
    let r = arm
        .get(&format!(
            "{}/subscriptions/{}/resourceGroups/rg-none/providers/Microsoft.Network/publicIPAddresses?api-version={API_VERSION}",
            arm.fake.url, c.subscription_id
        ))
        .await;
    assert_eq!(error_code(r).await, "ResourceGroupNotFound");
}

/// The bgp-ha layout's Azure side for VPN connection 0, tunnel 0: a BGP gateway (ASN
/// 65000; instance 0 custom 169.254.21.2 and 169.254.22.2, instance 1 169.254.21.6 and
/// 169.254.22.6), an LNG with the AWS end as its BGP peer (ASN 64512 at 169.254.21.1)
/// and a BGP Connection naming an address for both ipConfigurations.
async fn build_bgp_connection(arm: &Arm) {
    for p in ["p0", "p1"] {
        let op = header(&arm.put_public_ip(p).await, "azure-asyncoperation").expect("op");
        arm.settle(&op).await;
    }
    let r = arm
        .put(
            &arm.url("virtualNetworkGateways", "gw"),
            bgp_gateway(arm, &[&["169.254.21.2", "169.254.22.2"], &["169.254.21.6", "169.254.22.6"]]),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    arm.settle(&header(&r, "azure-asyncoperation").expect("op")).await;
    let r = arm.put(&arm.url("localNetworkGateways", "lng"), bgp_lng(json!({ "asn": 64512, "bgpPeeringAddress": "169.254.21.1" }))).await;
    arm.settle(&header(&r, "azure-asyncoperation").expect("op")).await;
    let r = arm.put(&arm.url("connections", "cn"), bgp_connection(arm, &["169.254.21.2", "169.254.21.6"])).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    arm.settle(&header(&r, "azure-asyncoperation").expect("op")).await;
}

fn ipconfig_id(arm: &Arm, k: usize) -> String {
    format!("{}/ipConfigurations/ipconfig{k}", arm.fake.id("virtualNetworkGateways", "gw"))
}

fn bgp_gateway(arm: &Arm, custom: &[&[&str]]) -> Value {
    let subnet = format!("{}/subnets/GatewaySubnet", arm.fake.id("virtualNetworks", "vnet-hub"));
    let cfg = |k: usize| {
        json!({ "name": format!("ipconfig{k}"), "properties": { "privateIPAllocationMethod": "Dynamic", "subnet": { "id": subnet },
            "publicIPAddress": { "id": arm.fake.id("publicIPAddresses", &format!("p{k}")) } } })
    };
    let peering: Vec<Value> =
        custom.iter().enumerate().map(|(k, a)| json!({ "ipconfigurationId": ipconfig_id(arm, k), "customBgpIpAddresses": a })).collect();
    json!({ "location": "japaneast", "properties": { "gatewayType": "Vpn", "vpnType": "RouteBased",
        "vpnGatewayGeneration": "Generation1", "sku": { "name": "VpnGw1AZ", "tier": "VpnGw1AZ" }, "activeActive": true,
        "enableBgp": true, "bgpSettings": { "asn": 65000, "bgpPeeringAddresses": peering },
        "ipConfigurations": [cfg(0), cfg(1)] } })
}

fn bgp_lng(bgp: Value) -> Value {
    json!({ "location": "japaneast", "properties": { "gatewayIpAddress": "3.0.113.5",
        "localNetworkAddressSpace": { "addressPrefixes": [] }, "bgpSettings": bgp } })
}

fn bgp_connection(arm: &Arm, custom: &[&str]) -> Value {
    let addresses: Vec<Value> =
        custom.iter().enumerate().map(|(k, a)| json!({ "ipConfigurationId": ipconfig_id(arm, k), "customBgpIpAddress": a })).collect();
    json!({ "location": "japaneast", "properties": {
        "virtualNetworkGateway1": { "id": arm.fake.id("virtualNetworkGateways", "gw"), "properties": {} },
        "localNetworkGateway2": { "id": arm.fake.id("localNetworkGateways", "lng"), "properties": {} },
        "connectionType": "IPsec", "connectionProtocol": "IKEv2", "sharedKey": "Wire.Key_0001", "dpdTimeoutSeconds": 45,
        "enableBgp": true, "gatewayCustomBgpIpAddresses": addresses } })
}

/// The BGP fields as the spec's examples show them: the gateway's `bgpSettings` with
/// one `bgpPeeringAddresses` entry per ipConfiguration (default, custom and tunnel
/// addresses), the LNG's `bgpSettings`, the Connection's `gatewayCustomBgpIpAddresses`
/// in GET and in the list.
#[tokio::test]
async fn bgp_settings_have_arm_shapes() {
    let arm = Arm::start(|_| {}).await;
    build_bgp_connection(&arm).await;
    let g: Value = arm.get(&arm.url("virtualNetworkGateways", "gw")).await.json().await.expect("json");
    let p = &g["properties"];
    assert_eq!(p["enableBgp"], true);
    let b = &p["bgpSettings"];
    assert_eq!(
        (b["asn"].as_u64(), b["bgpPeeringAddress"].as_str(), b["peerWeight"].as_u64()),
        (Some(65000), Some("10.1.255.4,10.1.255.5"), Some(0))
    );
    let pip0: Value = arm.get(&arm.url("publicIPAddresses", "p0")).await.json().await.expect("json");
    assert_eq!(
        b["bgpPeeringAddresses"][0],
        json!({ "ipconfigurationId": ipconfig_id(&arm, 0), "defaultBgpIpAddresses": ["10.1.255.4"],
            "customBgpIpAddresses": ["169.254.21.2", "169.254.22.2"], "tunnelIpAddresses": [pip0["properties"]["ipAddress"]] })
    );
    assert_eq!(b["bgpPeeringAddresses"][1]["customBgpIpAddresses"], json!(["169.254.21.6", "169.254.22.6"]));
    assert_eq!(b["bgpPeeringAddresses"][1]["defaultBgpIpAddresses"], json!(["10.1.255.5"]));
    let l: Value = arm.get(&arm.url("localNetworkGateways", "lng")).await.json().await.expect("json");
    assert_eq!(l["properties"]["bgpSettings"], json!({ "asn": 64512, "bgpPeeringAddress": "169.254.21.1", "peerWeight": 0 }));
    let want = json!([
        { "ipConfigurationId": ipconfig_id(&arm, 0), "customBgpIpAddress": "169.254.21.2" },
        { "ipConfigurationId": ipconfig_id(&arm, 1), "customBgpIpAddress": "169.254.21.6" },
    ]);
    let c: Value = arm.get(&arm.url("connections", "cn")).await.json().await.expect("json");
    assert_eq!((&c["properties"]["enableBgp"], &c["properties"]["gatewayCustomBgpIpAddresses"]), (&json!(true), &want));
    let list: Value = arm.get(&arm.collection("connections")).await.json().await.expect("json");
    assert_eq!(list["value"][0]["properties"]["gatewayCustomBgpIpAddresses"], want);
    // A gateway without BGP still reads ARM's default ASN and each instance's default address.
    let arm = Arm::start(|_| {}).await;
    build_connection(&arm).await;
    let g: Value = arm.get(&arm.url("virtualNetworkGateways", "gw")).await.json().await.expect("json");
    assert_eq!((&g["properties"]["enableBgp"], &g["properties"]["bgpSettings"]["asn"]), (&json!(false), &json!(65515)));
    assert_eq!(g["properties"]["bgpSettings"]["bgpPeeringAddresses"][1]["customBgpIpAddresses"], json!([]));
    let c: Value = arm.get(&arm.url("connections", "cn")).await.json().await.expect("json");
    assert_eq!(c["properties"]["gatewayCustomBgpIpAddresses"], json!([]));
}

/// A re-PUT that sends a gateway back as GET showed it (the default ASN and addresses,
/// as the Azure adapter's resize does) is a resize, not a change of its BGP settings.
#[tokio::test]
async fn a_gateway_sent_back_as_read_is_resized_not_reconfigured() {
    let arm = Arm::start(|_| {}).await;
    build_connection(&arm).await;
    let mut g: Value = arm.get(&arm.url("virtualNetworkGateways", "gw")).await.json().await.expect("json");
    g["properties"]["sku"] = json!({ "name": "VpnGw2AZ", "tier": "VpnGw2AZ" });
    let r = arm.put(&arm.url("virtualNetworkGateways", "gw"), g).await;
    assert_eq!(r.status(), StatusCode::OK);
    let id = arm.fake.id("virtualNetworkGateways", "gw");
    let (resize, enable_bgp) = arm.fake.cloud().with_world(|w| (w.azure.gateways[&id].resize.is_some(), w.azure.gateways[&id].enable_bgp));
    assert!(resize && !enable_bgp, "the SKU change is a resize");
}

#[tokio::test]
async fn bgp_rule_violations_are_arm_errors() {
    let arm = Arm::start(|_| {}).await;
    for p in ["p0", "p1"] {
        let op = header(&arm.put_public_ip(p).await, "azure-asyncoperation").expect("op");
        arm.settle(&op).await;
    }
    let gw = arm.url("virtualNetworkGateways", "gw");
    let expect = |r: Response, code: &'static str| async move {
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body: Value = r.json().await.expect("an ARM error body");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    };
    // Active-active takes one bgpPeeringAddresses entry per ipConfiguration.
    expect(arm.put(&gw, bgp_gateway(&arm, &[&["169.254.21.2"]])).await, "BgpPeeringAddressesCountNotCorrect").await;
    // Custom addresses only in 169.254.21.0 - 169.254.22.255.
    expect(arm.put(&gw, bgp_gateway(&arm, &[&["169.254.30.2"], &["169.254.21.6"]])).await, "InvalidCustomBgpIpAddress").await;
    let mut reserved = bgp_gateway(&arm, &[&["169.254.21.2"], &["169.254.21.6"]]);
    reserved["properties"]["bgpSettings"]["asn"] = json!(65517);
    expect(arm.put(&gw, reserved).await, "InvalidBgpAsn").await;
    let r = arm.put(&gw, bgp_gateway(&arm, &[&["169.254.21.2", "169.254.22.2"], &["169.254.21.6", "169.254.22.6"]])).await;
    arm.settle(&header(&r, "azure-asyncoperation").expect("op")).await;
    let lng = arm.url("localNetworkGateways", "lng");
    expect(arm.put(&lng, bgp_lng(json!({ "asn": 65515, "bgpPeeringAddress": "169.254.21.1" }))).await, "InvalidBgpAsn").await;
    expect(arm.put(&lng, bgp_lng(json!({ "asn": 64512 }))).await, "InvalidRequestFormat").await;
    // An LNG without a peer: no BGP Connection to it.
    let mut plain = bgp_lng(Value::Null);
    plain["properties"]["localNetworkAddressSpace"]["addressPrefixes"] = json!(["10.2.0.0/16"]);
    arm.settle(&header(&arm.put(&lng, plain).await, "azure-asyncoperation").expect("op")).await;
    let cn = arm.url("connections", "cn");
    expect(arm.put(&cn, bgp_connection(&arm, &["169.254.21.2", "169.254.21.6"])).await, "LocalNetworkGatewayBgpSettingsMissing").await;
    arm.settle(
        &header(&arm.put(&lng, bgp_lng(json!({ "asn": 64512, "bgpPeeringAddress": "169.254.21.1" }))).await, "azure-asyncoperation")
            .expect("op"),
    )
    .await;
    // An address the gateway does not have for that ipConfiguration.
    expect(arm.put(&cn, bgp_connection(&arm, &["169.254.21.6", "169.254.21.2"])).await, "InvalidCustomBgpIpAddress").await;
    let mut unknown = bgp_connection(&arm, &["169.254.21.2"]);
    unknown["properties"]["gatewayCustomBgpIpAddresses"][0]["ipConfigurationId"] =
        json!(format!("{}/ipConfigurations/nope", arm.fake.id("virtualNetworkGateways", "gw")));
    expect(arm.put(&cn, unknown).await, "InvalidResourceReference").await;
    assert_eq!(arm.put(&cn, bgp_connection(&arm, &["169.254.21.2", "169.254.21.6"])).await.status(), StatusCode::CREATED);
}

/// `getBgpPeerStatus` / `getLearnedRoutes`: 202 with `Location` (final-state-via
/// location), the result `{value: [...]}` there.
#[tokio::test]
async fn bgp_reads_answer_through_location() {
    let arm = Arm::start(|_| {}).await;
    build_bgp_connection(&arm).await;
    let action = |what: &str| format!("{}{}/{what}", arm.fake.url, arm.fake.id("virtualNetworkGateways", "gw"));
    let read = |url: String| {
        let arm = &arm;
        async move {
            let r = arm.send(reqwest::Method::POST, &url, None).await;
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            assert!(header(&r, "azure-asyncoperation").is_some());
            let loc = header(&r, "location").expect("Location");
            assert!(loc.contains("/operationResults/"), "{loc}");
            let r = arm.get(&loc).await;
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.expect("json")["value"].as_array().expect("value").clone()
        }
    };
    // No AWS side in this world: both instances' sessions to the peer are Connecting.
    let peers = read(format!("{}?api-version={API_VERSION}", action("getBgpPeerStatus"))).await;
    let mut locals: Vec<&str> = peers.iter().filter_map(|p| p["localAddress"].as_str()).collect();
    locals.sort_unstable();
    assert_eq!(locals, ["169.254.21.2", "169.254.21.6"], "{peers:?}");
    for p in &peers {
        assert_eq!(
            (p["neighbor"].as_str(), p["asn"].as_u64(), p["state"].as_str()),
            (Some("169.254.21.1"), Some(64512), Some("Connecting"))
        );
        assert_eq!((p["routesReceived"].as_u64(), p["messagesSent"].as_u64()), (Some(0), Some(0)));
    }
    let peers = read(format!("{}?peer=169.254.21.1&api-version={API_VERSION}", action("getBgpPeerStatus"))).await;
    assert_eq!(peers.len(), 2);
    assert!(read(format!("{}?peer=169.254.22.1&api-version={API_VERSION}", action("getBgpPeerStatus"))).await.is_empty());
    let r = arm.send(reqwest::Method::POST, &format!("{}?peer=nope&api-version={API_VERSION}", action("getBgpPeerStatus")), None).await;
    assert_eq!(error_code(r).await, "InvalidRequestFormat");
    // Learned: only each instance's own VNet prefix, from its default address.
    let routes = read(format!("{}?api-version={API_VERSION}", action("getLearnedRoutes"))).await;
    assert_eq!(routes.len(), 2, "{routes:?}");
    for (r, local) in routes.iter().zip(["10.1.255.4", "10.1.255.5"]) {
        assert_eq!(
            r,
            &json!({ "localAddress": local, "network": "10.1.0.0/16", "nextHop": null, "sourcePeer": local, "origin": "Network",
                "asPath": "", "weight": 32768 })
        );
    }
    arm.fake.faults(|f| f.fail_bgp_reads = 1);
    let r = arm.send(reqwest::Method::POST, &format!("{}?api-version={API_VERSION}", action("getLearnedRoutes")), None).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let r = arm
        .send(
            reqwest::Method::POST,
            &format!("{}{}/getBgpPeerStatus?api-version={API_VERSION}", arm.fake.url, arm.fake.id("virtualNetworkGateways", "nope")),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
