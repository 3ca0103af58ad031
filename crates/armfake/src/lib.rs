//! vpnbridge-armfake: a local fake of Azure Resource Manager (`Microsoft.Network`,
//! api-version 2024-03-01) that serves the simulator's Azure model over HTTP.
//!
//! The cloud rules live once, in `vpnbridge-sim`'s [`World`]; this crate only speaks
//! ARM's wire protocol around them, so the Azure adapter can be tested against real
//! REST shapes on loopback:
//!
//! - `GET`/`PUT`/`DELETE` and list (`{value:[...]}`) of `publicIPAddresses`,
//!   `virtualNetworkGateways`, `localNetworkGateways`, `connections`; `GET`
//!   `virtualNetworks/{name}` (with subnets and their `ipConfigurations`); `GET`/`PUT`
//!   `connections/{n}/sharedkey`; `POST connections/{n}/getikesas`; `POST
//!   virtualNetworkGateways/{n}/getBgpPeerStatus[?peer=ip]` and `.../getLearnedRoutes`.
//! - `PUT` answers 201 (create) or 200 (update) with `Azure-AsyncOperation` and
//!   `Retry-After`; the operation URL answers `{status: InProgress|Succeeded|Failed,
//!   error}`. `DELETE` answers 202 with `Location` (and `Azure-AsyncOperation`), or 204
//!   when the resource is already gone. `POST getikesas` answers 202 with `Location`;
//!   the final 200 body is a JSON *string* holding a JSON document, as ARM does.
//!   `getBgpPeerStatus` / `getLearnedRoutes` answer 202 with `Location` (final-state-via
//!   `location` in the spec) and `Azure-AsyncOperation` (which the spec's example
//!   shows); the `Location` result is `BgpPeerStatusListResult` /
//!   `GatewayRouteListResult` (`{value: [...]}`), computed from the simulator's BGP
//!   sessions (`World::azure_bgp_end` per BGP Connection and instance): peers
//!   `Connected` or `Connecting`, learned routes `EBgp` from the neighbor plus each
//!   instance's VNet prefixes as `Network`.
//! - BGP shapes: a gateway's `enableBgp` and `bgpSettings {asn, bgpPeeringAddress
//!   (the legacy comma-joined default addresses), peerWeight, bgpPeeringAddresses[]
//!   {ipconfigurationId, defaultBgpIpAddresses, customBgpIpAddresses,
//!   tunnelIpAddresses}}` (the spec's Get example), an LNG's `bgpSettings {asn,
//!   bgpPeeringAddress, peerWeight}` when it has a peer, a Connection's `enableBgp` and
//!   `gatewayCustomBgpIpAddresses[]` (in GET and list, as both examples show them). The
//!   simulator's BGP checks (`BgpPeeringAddressesCountNotCorrect`, `InvalidBgpAsn`,
//!   `InvalidCustomBgpIpAddress`, `BgpNotEnabledOnGateway`,
//!   `LocalNetworkGatewayBgpSettingsMissing`, `InvalidResourceReference`) answer as ARM
//!   errors (400); all but the first are the simulator's own codes (ARM's are
//!   unconfirmed, docs/bgp-ha.md).
//! - Connections carry id-only references (`virtualNetworkGateway1: {id}`,
//!   `localNetworkGateway2: {id}`). Their GET carries the runtime fields
//!   (`connectionStatus`, `tunnelConnectionStatus`) and `sharedKey`, as the spec's
//!   `VirtualNetworkGatewayConnectionGet.json` example does; the resource-group list
//!   carries none of them and byte counters of 0, as `VirtualNetworkGatewayConnectionsList.json`.
//!   `tunnelConnectionStatus[].tunnel` names embed no IP address and come in no
//!   particular order (ARM documents the field only as "Tunnel name.").
//! - Errors are ARM error bodies `{"error":{"code","message"}}` with the simulator's
//!   codes and status (400/404/409), an `x-ms-request-id` header on every answer;
//!   `api-version` is required (400 `InvalidApiVersionParameter` /
//!   `MissingApiVersionParameter`); a bearer token is required when configured (401
//!   `AuthenticationFailed`).
//! - Fault switches ([`Faults`]): the next N requests get 429 with `Retry-After`, the
//!   next N writes get 409 `AnotherOperationInProgress`, the next N operations end
//!   `Failed`, the next N writes are committed but answered 500 (a dropped response).
//!   Slow operations: give the fake a [`LatencyTable`].
//! - A PUT replaces the resource, as in ARM: tags and every property it leaves out are
//!   gone. What a PUT carries beyond the simulator's model (a gateway's `natRules`,
//!   `customRoutes`, `vpnClientConfiguration`, a Connection's `ipsecPolicies`,
//!   `trafficSelectorPolicies`, NAT rules, an LNG's `fqdn`…) is kept as sent and
//!   returned by GET and the list, unvalidated.
//! - A deleted gateway's public IPs stay in use for
//!   [`LatencyTable::azure_public_ip_release`] after the delete finishes: a DELETE of
//!   one answers 400 `PublicIPAddressInUse`, and its GET shows the deleted gateway's
//!   `ipConfiguration` until then.
//!
//! Known deviations from real ARM (kept on purpose, small): no `nextLink` paging
//! (every list fits one page), no ETags / `If-Match`, resource ids and names are
//! case-sensitive, one subscription and resource group are served (others 404), the
//! VNet is read-only (seeded from the config), `getikesas` reports one SA per gateway
//! instance whose tunnel the simulator considers up (none when the AWS side is not in
//! the same world), tags PATCH is not served. Properties beyond the model are stored
//! unvalidated (ARM validates a NAT rule or an IPsec policy), and BGP settings are the
//! model's (`peerWeight` always reads 0). BGP reads: `getBgpPeerStatus`' `localAddress`
//! is the address the instance speaks from on the Connection (its custom APIPA
//! address), where live answers have been seen to show the instance's default BGP
//! address; `connectedDuration` is left out of a peer that is not Connected; a gateway
//! without BGP answers both reads with an empty list (ARM's answer is unconfirmed); the
//! peer state is never Unknown, Stopped or Idle; `getAdvertisedRoutes` is not served.
//! References are rendered id-only (`{id}`) where the spec's examples show
//! `{id, properties: {}}`: the stricter of the two for a client. The
//! `tunnelConnectionStatus[].tunnel` names are the fake's own (ARM documents no
//! format). The `PublicIPAddressInUse` message is the fake's wording (public reports
//! show `PublicIPAddressCannotBeDeleted` for an IP still allocated), and the release
//! window's length is a setting (ARM publishes none).
//!
//! Time: the world runs on the real clock (tokio's), scaled by the [`LatencyTable`]:
//! [`LatencyTable::instant`] makes every operation finish by the next request.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ipnet::Ipv4Net;
use serde_json::{Value, json};
use vpnbridge_core::goal::Goal;
use vpnbridge_sim::world::{ApiError, AzureKind, arm_id};
use vpnbridge_sim::{LatencyTable, SimCloud, VnetSpec, VpcSpec};

mod compute;
mod operations;
mod resources;
mod routes;
mod shapes;

use resources::render;
use routes::answer;

pub use compute::{COMPUTE_API_VERSION, PingScript, TestNsg, TestVmSpec};

/// The api-version this fake (and azure_mgmt_network 0.21) speaks.
pub const API_VERSION: &str = "2024-03-01";
/// The api-version of `GET /subscriptions` (Microsoft.Resources).
pub const SUBSCRIPTIONS_API_VERSION: &str = "2022-12-01";

/// How to start the fake.
#[derive(Debug, Clone)]
pub struct ArmFakeConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    /// The user's VNet, seeded with a `GatewaySubnet`.
    pub vnet: String,
    pub address_space: Vec<Ipv4Net>,
    pub gateway_subnet: Ipv4Net,
    /// The bearer token every request must carry; `None` accepts any request.
    pub token: Option<String>,
    /// Durations of the long operations (real time).
    pub latency: LatencyTable,
    /// The `Retry-After` (seconds) sent with running operations (ARM says 10); `None`
    /// leaves the header out (clients must then pick their own interval).
    pub retry_after_secs: Option<u64>,
}

impl ArmFakeConfig {
    /// A fake for tests: free port, instant operations, token `fake-token`, VNet
    /// `vnet-hub` 10.1.0.0/16 with GatewaySubnet 10.1.255.0/27 in `rg-vpn`.
    pub fn for_tests() -> Self {
        Self {
            port: 0,
            subscription_id: "00000000-0000-0000-0000-000000000001".to_owned(),
            resource_group: "rg-vpn".to_owned(),
            location: "japaneast".to_owned(),
            vnet: "vnet-hub".to_owned(),
            address_space: vec!["10.1.0.0/16".parse().expect("literal")],
            gateway_subnet: "10.1.255.0/27".parse().expect("literal"),
            token: Some("fake-token".to_owned()),
            latency: LatencyTable::instant(),
            retry_after_secs: Some(1),
        }
    }
}

/// Fault switches; each counter is consumed one request (or operation) at a time.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The next N requests (any method) are answered 429 `TooManyRequests`.
    pub throttle_next: u32,
    /// `Retry-After` seconds of those 429s.
    pub throttle_retry_after_secs: u64,
    /// The next N writes (PUT/DELETE/POST) are answered 409 `AnotherOperationInProgress`.
    pub conflict_next: u32,
    /// The next N accepted PUTs start an operation that ends `Failed` (the resource's
    /// `provisioningState` becomes Failed).
    pub fail_next_operations: u32,
    /// The next N writes are carried out, then answered 500 (a response lost after commit).
    pub drop_next_responses: u32,
    /// Subscription-wide lists are answered 403 `AuthorizationFailed`, as ARM does for a
    /// role assigned on the resource group only.
    pub forbid_subscription_lists: bool,
    /// The next N `getBgpPeerStatus` / `getLearnedRoutes` POSTs are answered 500.
    pub fail_bgp_reads: u32,
}

/// One request as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    /// Path without the query.
    pub path: String,
    pub status: u16,
    /// The JSON body, with every `sharedKey` and the `sharedkey` body's `value`
    /// replaced by `"<redacted>"` (the log never holds a key).
    pub body: Option<Value>,
}

/// Replaces shared keys in a request body.
fn redacted(mut v: Value, path: &str) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if k.eq_ignore_ascii_case("sharedKey") {
                        *x = Value::String("<redacted>".to_owned());
                    } else {
                        walk(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    if path.to_ascii_lowercase().ends_with("/sharedkey")
        && let Some(x) = v.get_mut("value")
    {
        *x = Value::String("<redacted>".to_owned());
    }
    v
}

impl RequestRecord {
    /// PUT, PATCH, DELETE or POST.
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "PUT" | "PATCH" | "DELETE" | "POST")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    PublicIp,
    Gateway,
    Lng,
    Connection,
}

impl Kind {
    fn from_segment(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "publicipaddresses" => Kind::PublicIp,
            "virtualnetworkgateways" => Kind::Gateway,
            "localnetworkgateways" => Kind::Lng,
            "connections" => Kind::Connection,
            _ => return None,
        })
    }

    /// The simulator's name for the kind.
    fn sim(self) -> AzureKind {
        match self {
            Kind::PublicIp => AzureKind::PublicIp,
            Kind::Gateway => AzureKind::VpnGateway,
            Kind::Lng => AzureKind::LocalNetworkGateway,
            Kind::Connection => AzureKind::Connection,
        }
    }

    fn segment(self) -> &'static str {
        match self {
            Kind::PublicIp => "publicIPAddresses",
            Kind::Gateway => "virtualNetworkGateways",
            Kind::Lng => "localNetworkGateways",
            Kind::Connection => "connections",
        }
    }
}

/// A started asynchronous operation.
#[derive(Debug, Clone)]
enum Operation {
    Resource {
        kind: Kind,
        id: String,
        goal: Goal,
    },
    /// Already finished with this final body (POST actions).
    Finished {
        body: Value,
    },
}

struct Shared {
    cfg: ArmFakeConfig,
    cloud: SimCloud,
    faults: Mutex<Faults>,
    log: Mutex<Vec<RequestRecord>>,
    ops: Mutex<HashMap<String, Operation>>,
    /// What the last accepted PUT of each resource (by id) carried that the simulator
    /// does not model, returned as sent (see [`Extras`]).
    extras: Mutex<HashMap<String, Extras>>,
    /// The test VMs of the probe and their Run Commands.
    compute: Mutex<compute::Compute>,
    seq: AtomicU64,
    base_url: String,
}

/// The parts of a PUT body the simulator's model does not hold: other top-level keys
/// and other `properties` (a gateway's `natRules`, `customRoutes`,
/// `vpnClientConfiguration`, a Connection's `ipsecPolicies`, `trafficSelectorPolicies`,
/// NAT rules, an LNG's `fqdn`…). ARM keeps what a PUT says and drops what it
/// leaves out, so the fake stores them per PUT (replacing the last) and lays them
/// over the rendered resource; it does not validate them.
#[derive(Debug, Clone, Default)]
struct Extras {
    top: serde_json::Map<String, Value>,
    properties: serde_json::Map<String, Value>,
}

impl Extras {
    /// What of `body` (a PUT of `kind`) the model leaves out.
    fn of(kind: Kind, body: &Value) -> Self {
        let modelled_top: &[&str] = match kind {
            Kind::PublicIp => &["id", "name", "type", "etag", "location", "tags", "sku", "zones", "properties"],
            _ => &["id", "name", "type", "etag", "location", "tags", "properties"],
        };
        // Properties the model holds or computes (everything else is returned as sent).
        let modelled_props: &[&str] = match kind {
            Kind::PublicIp => &["provisioningState", "resourceGuid", "publicIPAllocationMethod", "ipAddress", "ipConfiguration"],
            Kind::Gateway => &[
                "provisioningState",
                "resourceGuid",
                "gatewayType",
                "vpnType",
                "vpnGatewayGeneration",
                "sku",
                "activeActive",
                "enableBgp",
                "bgpSettings",
                "ipConfigurations",
            ],
            Kind::Lng => &["provisioningState", "resourceGuid", "gatewayIpAddress", "localNetworkAddressSpace", "bgpSettings"],
            Kind::Connection => &[
                "provisioningState",
                "resourceGuid",
                "virtualNetworkGateway1",
                "localNetworkGateway2",
                "connectionType",
                "connectionProtocol",
                "sharedKey",
                "enableBgp",
                "gatewayCustomBgpIpAddresses",
                "dpdTimeoutSeconds",
                "connectionStatus",
                "tunnelConnectionStatus",
                "ingressBytesTransferred",
                "egressBytesTransferred",
            ],
        };
        let pick = |m: Option<&serde_json::Map<String, Value>>, keep: &[&str]| {
            m.map(|m| m.iter().filter(|(k, _)| !keep.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        };
        Self {
            top: pick(body.as_object(), modelled_top),
            properties: pick(body.get("properties").and_then(Value::as_object), modelled_props),
        }
    }

    fn lay_over(&self, v: &mut Value) {
        if let Some(m) = v.as_object_mut() {
            m.extend(self.top.clone());
        }
        if let Some(p) = v.get_mut("properties").and_then(Value::as_object_mut) {
            p.extend(self.properties.clone());
        }
    }
}

/// A running fake; dropping it stops the server.
#[derive(Clone)]
pub struct ArmFakeHandle {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub url: String,
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: Arc<StopOnDrop>,
}

impl std::fmt::Debug for ArmFakeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmFakeHandle").field("url", &self.url).finish_non_exhaustive()
    }
}

struct StopOnDrop(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// The fake server.
#[derive(Debug)]
pub struct ArmFake;

impl ArmFake {
    /// Binds 127.0.0.1:`config.port`, seeds the VNet, serves in a background task.
    pub async fn start(config: ArmFakeConfig) -> std::io::Result<ArmFakeHandle> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, config.port))).await?;
        let addr = listener.local_addr()?;
        let cloud = SimCloud::in_memory_with(config.latency.clone());
        let vnet = VnetSpec {
            subscription_id: config.subscription_id.clone(),
            resource_group: config.resource_group.clone(),
            location: config.location.clone(),
            name: config.vnet.clone(),
            address_space: config.address_space.clone(),
            gateway_subnet: config.gateway_subnet,
        };
        // The sim seeds a VPC alongside; the fake serves only the Azure half.
        let vpc = VpcSpec { region: "unused".to_owned(), vpc_id: "vpc-00000000000000000".to_owned(), cidrs: Vec::new() };
        cloud.ensure_prerequisites(&vnet, &vpc).map_err(std::io::Error::other)?;
        let url = format!("http://{addr}");
        let shared = Arc::new(Shared {
            cfg: config,
            cloud,
            faults: Mutex::default(),
            log: Mutex::default(),
            ops: Mutex::default(),
            extras: Mutex::default(),
            compute: Mutex::default(),
            seq: AtomicU64::new(0),
            base_url: url.clone(),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(ArmFakeHandle { url, addr, shared, _stop: Arc::new(StopOnDrop(Some(tx))) })
    }
}

impl ArmFakeHandle {
    pub fn config(&self) -> &ArmFakeConfig {
        &self.shared.cfg
    }

    /// The simulated world behind the fake (to seed foreign resources, inspect state).
    pub fn cloud(&self) -> &SimCloud {
        &self.shared.cloud
    }

    /// Changes the fault switches.
    pub fn faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.shared.faults.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.shared.log.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// What `GET {kind}/{name}` answers now (`kind` as in the URL: `connections`,
    /// `virtualNetworks`…), without going through HTTP.
    pub fn resource(&self, kind: &str, name: &str) -> Option<Value> {
        let c = &self.shared.cfg;
        let id = arm_id(&c.subscription_id, &c.resource_group, kind, name);
        if kind.eq_ignore_ascii_case("virtualNetworks") {
            return self.shared.cloud.with_world(|w| w.azure.virtual_networks.get(&id).map(|v| shapes::vnet(w, v)));
        }
        let kind = Kind::from_segment(kind)?;
        let id = arm_id(&c.subscription_id, &c.resource_group, kind.segment(), name);
        self.shared.cloud.with_world(|w| render(&self.shared, w, kind, &id))
    }

    /// Adds a test VM (with its NIC and NSG) to the resource group, for the probe.
    pub fn add_test_vm(&self, vm: TestVmSpec) {
        lock(&self.shared.compute).add(vm);
    }

    /// Scripts the AWS ends of the tunnels up (moto, the AWS fake, has no data plane):
    /// each Connection is then Connected from the gateway instance the pairing rule
    /// expects, with its IKE SA, and NotConnected from the other.
    pub fn script_peer_up(&self, up: bool) {
        lock(&self.shared.compute).peer_up = up;
    }

    /// Changes a test VM (stop it, script its ping…); false if there is none by that name.
    pub fn update_test_vm(&self, name: &str, f: impl FnOnce(&mut TestVmSpec)) -> bool {
        lock(&self.shared.compute).update(name, f)
    }

    /// The ARM id of `name` of `kind` (`publicIPAddresses`, `connections`…) here.
    pub fn id(&self, kind: &str, name: &str) -> String {
        arm_id(&self.shared.cfg.subscription_id, &self.shared.cfg.resource_group, kind, name)
    }

    /// Seeds another resource group holding a VNet (with a `GatewaySubnet`), so that
    /// the fake serves that group too (a user moving the deployment's resource group).
    pub fn add_vnet(&self, resource_group: &str, name: &str, address_space: Vec<Ipv4Net>, gateway_subnet: Ipv4Net) -> Result<(), String> {
        let sub = self.shared.cfg.subscription_id.clone();
        self.add_vnet_in(&sub, resource_group, name, address_space, gateway_subnet)
    }

    /// As [`Self::add_vnet`], in another subscription (which the fake then serves and
    /// lists in `GET /subscriptions`).
    pub fn add_vnet_in(
        &self,
        subscription_id: &str,
        resource_group: &str,
        name: &str,
        address_space: Vec<Ipv4Net>,
        gateway_subnet: Ipv4Net,
    ) -> Result<(), String> {
        let c = &self.shared.cfg;
        let vnet = VnetSpec {
            subscription_id: subscription_id.to_owned(),
            resource_group: resource_group.to_owned(),
            location: c.location.clone(),
            name: name.to_owned(),
            address_space,
            gateway_subnet,
        };
        let vpc = VpcSpec { region: "unused".to_owned(), vpc_id: "vpc-00000000000000000".to_owned(), cidrs: Vec::new() };
        self.shared.cloud.ensure_prerequisites(&vnet, &vpc).map_err(|e| e.to_string())
    }
}

/// An answer under construction.
struct Answer {
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
}

impl Answer {
    fn json(status: StatusCode, body: Value) -> Self {
        Self { status, headers: Vec::new(), body: Some(body) }
    }
    fn empty(status: StatusCode) -> Self {
        Self { status, headers: Vec::new(), body: None }
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

fn arm_error(status: StatusCode, code: &str, message: impl Into<String>) -> Answer {
    Answer::json(status, json!({ "error": { "code": code, "message": message.into(), "details": [] } }))
}

fn api_error(e: &ApiError) -> Answer {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let status = if e.code == "AnotherOperationInProgress" { StatusCode::CONFLICT } else { status };
    arm_error(status, &e.code, e.message.clone())
}

fn not_found(kind: &str, name: &str, rg: &str) -> Answer {
    arm_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!("The Resource 'Microsoft.Network/{kind}/{name}' under resource group '{rg}' was not found."),
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn handle(State(s): State<Arc<Shared>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let request_id = s.guid();
    let answer = answer(&s, &method, &uri, &headers, &body);
    let status = answer.status;
    let logged_body = serde_json::from_slice::<Value>(&body).ok().map(|v| redacted(v, uri.path()));
    lock(&s.log).push(RequestRecord {
        method: method.to_string(),
        path: uri.path().to_owned(),
        status: status.as_u16(),
        body: logged_body,
    });
    let mut resp = match answer.body {
        Some(v) => (status, [(axum::http::header::CONTENT_TYPE, "application/json; charset=utf-8")], v.to_string()).into_response(),
        None => status.into_response(),
    };
    let h = resp.headers_mut();
    for (name, value) in answer.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-ms-request-id", v.clone());
        h.insert("x-ms-correlation-request-id", v);
    }
    resp
}

impl Shared {
    fn guid(&self) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", nanos, n & 0xffff, (n >> 16) & 0xfff, n & 0xfff, n)
    }

    fn op_urls(&self, op: Operation) -> (String, String) {
        let guid = self.guid();
        lock(&self.ops).insert(guid.clone(), op);
        let base = format!(
            "{}/subscriptions/{}/providers/Microsoft.Network/locations/{}",
            self.base_url, self.cfg.subscription_id, self.cfg.location
        );
        (format!("{base}/operations/{guid}?api-version={API_VERSION}"), format!("{base}/operationResults/{guid}?api-version={API_VERSION}"))
    }

    /// Adds `Retry-After` to an answer for a running operation, when configured.
    fn with_retry_after(&self, a: Answer) -> Answer {
        match self.cfg.retry_after_secs {
            Some(secs) => a.header("Retry-After", secs.to_string()),
            None => a,
        }
    }
}
