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
            b["properties"]["bgpSettings"] = json!({ "asn": 65050, "bgpPeeringAddress": "169.254.21.1", "peerWeight": 0 });
        }
        b
    };
    arm.settle(&header(&arm.put(&url, body(true)).await, "azure-asyncoperation").expect("op")).await;
    let got: Value = arm.get(&url).await.json().await.expect("json");
    assert_eq!(got["tags"]["owner"], "alice");
    assert_eq!(got["properties"]["bgpSettings"]["asn"], 65050);
    assert_eq!(got["properties"]["gatewayIpAddress"], "3.0.113.5");
    let list: Value = arm.get(&arm.collection("localNetworkGateways")).await.json().await.expect("json");
    assert_eq!(list["value"][0]["properties"]["bgpSettings"]["bgpPeeringAddress"], "169.254.21.1");
    arm.settle(&header(&arm.put(&url, body(false)).await, "azure-asyncoperation").expect("op")).await;
    let got: Value = arm.get(&url).await.json().await.expect("json");
    assert!(got["tags"].get("owner").is_none(), "{got}");
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
