//! vpnbridge-azure: the Azure side of vpnbridge on Azure Resource Manager, as
//! [`VpnEndpoint<Azure>`] on azure_mgmt_network 0.21 (api-version 2024-03-01).
//!
//! What it promises (the core's contract, `vpnbridge_core::contract::azure`):
//!
//! - **Translate, never decide.** `start` sends exactly one ARM write (PUT, DELETE) —
//!   never through the SDK's own LRO poller, which waits `Retry-After` or 30 s with no
//!   overall deadline — and returns an [`OpHandle`] holding the
//!   `Azure-AsyncOperation` URL (or `Location`, or the resource to watch). `poll`
//!   reads it once and reports `Running { retry_after }` from ARM's `Retry-After`.
//!   Deadlines, retries and resumption belong to the core's executor; handles are plain
//!   JSON, so a restarted process can keep polling them.
//! - **A PUT keeps what is not ours.** ARM's PUT replaces the whole resource, so every
//!   PUT is preceded by a GET of the resource and sends it back with only what
//!   vpnbridge owns changed (`merge`): someone's tags stay (ours are set), and so do
//!   properties we do not model (a gateway's `natRules`, `customRoutes`,
//!   `vpnClientConfiguration`; a Connection's `ipsecPolicies`,
//!   `trafficSelectorPolicies`, NAT rules; an LNG's `bgpSettings`…). A PUT is 2
//!   requests: the GET and the PUT.
//! - **A public IP still held by a deleted gateway** (DELETE answered 400
//!   `PublicIPAddressInUse` or `PublicIPAddressCannotBeDeleted` while its holder is a
//!   gateway that is gone or being deleted) is `Transient`: ARM releases a gateway's IPs
//!   a while after its delete finishes. Held by a live resource, it is a `Conflict`.
//! - **No SDK retry.** The pipeline's retry policy is off; 429 comes back as
//!   `Throttled` and 409 `AnotherOperationInProgress` as `Transient`, both with
//!   `retry_after`; other errors carry ARM's code, message and `x-ms-request-id`.
//!   A 5xx or timeout on a write is flagged `may_have_committed`.
//! - **Deletes of missing resources are done** (404 and 204 alike).
//! - **Observe** makes one GET for the VNet, one subscription-wide list per kind
//!   (public IPs, gateways, LocalNetworkGateways, Connections; `nextLink` followed:
//!   ours are found wherever their tag is, and those outside the configured resource
//!   group, location or VNet are reported as `elsewhere`; a role that cannot list the
//!   subscription falls back to the resource group with a warning; when no gateway of
//!   ours is in the subscription, `GET /subscriptions` and one gateway list per other
//!   subscription find it where a changed `azure.subscription_id` left it) and, per Connection of
//!   ours, one `sharedkey` GET and one GET of the Connection (ARM's list carries no
//!   `connectionStatus`/`tunnelConnectionStatus`): 5 + 2N requests for N Connections,
//!   the per-Connection ones in parallel, errors keeping their kind (a 429 stays
//!   Throttled for the core to retry). Only resources tagged `vpnbridge:deployment=<name>` are
//!   reported as ours; untagged ones of those kinds are reported by name
//!   (`foreign_names`) and gateways of others in the VNet's GatewaySubnet as
//!   `foreign_gateways_in_vnet`. `provisioningState` Updating/Deleting is reported as
//!   is, so the executor waits for an operation in flight instead of issuing another.
//! - **Tunnel ends** are observe's snapshot plus each of our Connections' IKE SAs
//!   (`getikesas`, all Connections at once, each bounded by [`IKE_SA_DEADLINE`]; a
//!   failure or timeout only leaves those ends without an SA). Each
//!   `tunnelConnectionStatus` entry is attributed to a gateway instance by the IKE SAs
//!   (and, as an extra, an instance IP in its name), never by the name alone: ARM
//!   documents no format for it. An end that cannot be attributed reads Unknown and
//!   says why.
//!
//! **The id-only trap.** azure_mgmt_network's `VirtualNetworkGatewayConnection` model
//! needs gateway objects with `properties` in `virtualNetworkGateway1`/`localNetworkGateway2`;
//! the spec's examples show `{"id": …, "properties": {}}` there, which it reads, but an
//! id-only `{"id": …}` (as the ARM fake answers) makes the typed model fail.
//! Every response body is read through our own serde types in one module (`wire`);
//! the SDK builds the requests (URLs, api-version; our part of each body with its typed
//! models), and PUT bodies go out as JSON merged onto the resource's GET (`merge`),
//! through our own pipeline with the same options.
//!
//! **The logging trap.** azure_core 0.21 logs each whole request — body included, so a
//! Connection's `sharedKey` — at debug level (target `azure_core::policies::transport`),
//! and the SDK's models derive Debug over the key. Whoever installs a tracing
//! subscriber must drop those targets whatever `RUST_LOG` says (see
//! [`SECRET_BEARING_LOG_TARGETS`]); this crate never Debug-prints an SDK model and never
//! logs a body, a key or a token.
//!
//! **Credentials.** [`AzureEndpoint::new`] takes a bearer token from
//! `VPNBRIDGE_AZURE_TOKEN` *only when that variable is set* (meant for the local ARM
//! fake), and otherwise azure_identity's chain (`AZURE_CREDENTIAL_KIND` if set, else
//! the default chain: environment, workload identity, managed identity, Azure CLI).
//! The subscription comes from [`AzureSettings`] or `AZURE_SUBSCRIPTION_ID`; the ARM
//! endpoint from the settings, `VPNBRIDGE_AZURE_ENDPOINT`, or the public cloud. A
//! sovereign cloud's endpoint (US Government, China) needs that cloud's token
//! authority in `AZURE_AUTHORITY_HOST`, which azure_identity reads; a known endpoint
//! paired with another cloud's authority, or with none (azure_identity then uses the
//! public cloud's), is refused with [`SetupError::WrongAuthority`].
//! No secret is read from the config file.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::Url;
use azure_core::auth::TokenCredential;
use azure_mgmt_network::models as m;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use vpnbridge_core::endpoint::{
    Azure, CloudName, EndpointError, ErrorKind, IkeSa as CoreIkeSa, OpHandle, OpStatus, Tunnel, TunnelEnd, VpnEndpoint, WithIkeSa,
};
use vpnbridge_core::model::{
    AzureObserved, AzureScope, AzureTunnelStatus, Connection, GatewayIpConfiguration, LocalNetworkGateway, Owner, ProvisioningState,
    PublicIp, Subnet, Tags, VirtualNetwork, VirtualNetworkGateway,
};
use vpnbridge_core::goal::{Goal, Miss, Phase, Verdict, judge};
use vpnbridge_core::ops::{AzureOp, AzureResourceKind, OpOutput};
use vpnbridge_core::ownership::{Inventory, Seen, Standing};
use vpnbridge_core::secret::Psk;

mod arm;
mod cloud;
#[cfg(test)]
mod examples;
mod merge;
mod probe;
#[cfg(test)]
mod role;
mod tunnels;
mod wire;

pub use arm::API_VERSION;
use arm::{Arm, Raw, RawCall, StaticToken, call_arm};
pub use cloud::AUTHORITY_ENV;
pub use probe::{AzureTestVm, COMPUTE_API_VERSION};
pub use wire::{IkeSa, parse_ike_sas};

/// Environment variable holding a static bearer token; used only when set (the ARM
/// fake's token, never a production credential path).
pub const TOKEN_ENV: &str = "VPNBRIDGE_AZURE_TOKEN";
/// Environment variable overriding the ARM endpoint (when the settings do not).
pub const ENDPOINT_ENV: &str = "VPNBRIDGE_AZURE_ENDPOINT";
/// Environment variable with the subscription (when the settings do not name one).
pub const SUBSCRIPTION_ENV: &str = "AZURE_SUBSCRIPTION_ID";
/// The public cloud's ARM endpoint.
pub const PUBLIC_CLOUD_ENDPOINT: &str = "https://management.azure.com";
/// Log targets that carry request bodies (and so shared keys) or tokens at debug or
/// trace level: a tracing filter must cap them at `info` whatever `RUST_LOG` says.
pub const SECRET_BEARING_LOG_TARGETS: &[&str] = &["azure_core", "azure_identity", "azure_mgmt_network", "reqwest", "hyper"];

/// Where the Azure side lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureSettings {
    /// `None`: read `AZURE_SUBSCRIPTION_ID`.
    pub subscription_id: Option<String>,
    pub resource_group: String,
    pub location: String,
    /// The user's VNet (in the same resource group), never created here.
    pub vnet: String,
    /// ARM endpoint override (the fake, a sovereign cloud); `None`: read
    /// `VPNBRIDGE_AZURE_ENDPOINT`, else the public cloud.
    pub endpoint: Option<String>,
}

impl AzureSettings {
    /// The `[azure]` section of a validated config (its subscription already falls back
    /// to `AZURE_SUBSCRIPTION_ID`).
    pub fn from_config(c: &vpnbridge_core::config::AzureConfig) -> Self {
        Self {
            subscription_id: Some(c.subscription_id.clone()).filter(|s| !s.is_empty()),
            resource_group: c.resource_group.clone(),
            location: c.location.clone(),
            vnet: c.vnet.clone(),
            endpoint: c.endpoint.clone().filter(|e| !e.is_empty()),
        }
    }
}

/// Why an [`AzureEndpoint`] cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("no Azure subscription: set azure.subscription_id in the config or AZURE_SUBSCRIPTION_ID")]
    NoSubscription,
    #[error("the Azure endpoint {endpoint:?} is not a URL: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("no Azure credential available (log in with `az login`, or set the AZURE_* variables of a service principal): {0}")]
    Credential(String),
    #[error(
        "the Azure endpoint {endpoint} belongs to {cloud}, but tokens would come from {authority}: set {variable}={expected} so they come from that cloud's authority"
    )]
    WrongAuthority { endpoint: String, cloud: &'static str, authority: String, variable: &'static str, expected: String },
    #[error("{variable} {authority:?} is not a URL (e.g. https://login.microsoftonline.us): {reason}")]
    Authority { authority: String, variable: &'static str, reason: String },
}

/// The real Azure endpoint for one subscription, resource group and VNet.
#[derive(Clone)]
pub struct AzureEndpoint {
    arm: Arm,
    subscription: String,
    resource_group: String,
    location: String,
    vnet: String,
    /// The subscription cannot be listed (the role is on the resource group only):
    /// lists look in the resource group.
    group_only: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for AzureEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureEndpoint")
            .field("endpoint", &self.arm.endpoint.as_str())
            .field("subscription", &self.subscription)
            .field("resource_group", &self.resource_group)
            .field("vnet", &self.vnet)
            .finish_non_exhaustive()
    }
}

impl AzureEndpoint {
    /// The user's test VM `vm`, through this endpoint's ARM client (the probe).
    pub fn test_vm(&self, vm: &vpnbridge_core::config::AzureVmRef) -> AzureTestVm {
        AzureTestVm::new(self.arm.clone(), vm.clone())
    }

    /// Credentials the Azure way: `VPNBRIDGE_AZURE_TOKEN` when set, else azure_identity,
    /// after checking that a known cloud's ARM endpoint is paired with that cloud's
    /// token authority (`AZURE_AUTHORITY_HOST`, see [`AUTHORITY_ENV`]).
    pub fn new(settings: AzureSettings) -> Result<Self, SetupError> {
        let credential: Arc<dyn TokenCredential> = match std::env::var(TOKEN_ENV) {
            Ok(token) if !token.is_empty() => Arc::new(StaticToken(token)),
            _ => {
                let endpoint = endpoint_url(settings.endpoint.as_deref())?;
                cloud::check_authority(&endpoint, std::env::var(AUTHORITY_ENV).ok().as_deref())?;
                azure_identity::create_credential().map_err(|e| SetupError::Credential(e.to_string()))?
            }
        };
        Self::with_credential(settings, credential)
    }

    /// With a static bearer token (tests against the ARM fake).
    pub fn with_static_token(settings: AzureSettings, token: impl Into<String>) -> Result<Self, SetupError> {
        Self::with_credential(settings, Arc::new(StaticToken(token.into())))
    }

    /// With any azure_core credential.
    pub fn with_credential(settings: AzureSettings, credential: Arc<dyn TokenCredential>) -> Result<Self, SetupError> {
        let subscription = match settings.subscription_id.filter(|s| !s.is_empty()) {
            Some(s) => s,
            None => std::env::var(SUBSCRIPTION_ENV).ok().filter(|s| !s.is_empty()).ok_or(SetupError::NoSubscription)?,
        };
        let url = endpoint_url(settings.endpoint.as_deref())?;
        Ok(Self {
            arm: Arm::new(url, credential),
            subscription,
            resource_group: settings.resource_group,
            location: settings.location,
            vnet: settings.vnet,
            group_only: Arc::default(),
        })
    }

    /// The ARM id of `name` of `kind` in our resource group.
    pub fn id(&self, kind: &str, name: &str) -> String {
        format!("/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/{kind}/{name}", self.subscription, self.resource_group)
    }

    /// The configured scope, as core places resources in it.
    fn scope(&self) -> AzureScope<'_> {
        AzureScope { subscription_id: &self.subscription, resource_group: &self.resource_group, location: &self.location, vnet: &self.vnet }
    }

    fn kind_id(&self, kind: Kind, name: &str) -> String {
        self.id(kind.collection(), name)
    }

    /// Starts `getikesas` on Connection `name` (a POST answered 202 + `Location`).
    pub async fn start_get_ike_sas(&self, name: &str) -> Result<OpHandle, EndpointError> {
        let c = &self.arm.client;
        let r = call_arm(
            true,
            c.virtual_network_gateway_connections_client().get_ike_sas(&self.resource_group, name, &self.subscription).send(),
        )
        .await?;
        let raw = Raw::read(r.into_raw_response()).await?;
        match raw.header("location") {
            Some(url) => Ok(encode(&Handle::Location { url, kind: Kind::Connection, name: name.to_owned() })),
            None => Ok(encode(&Handle::Result { body: String::from_utf8_lossy(&raw.body).into_owned() })),
        }
    }

    /// Polls a [`AzureEndpoint::start_get_ike_sas`] handle: `None` while running.
    pub async fn poll_ike_sas(&self, handle: &OpHandle) -> Result<Option<Vec<IkeSa>>, EndpointError> {
        self.poll_ike_sas_once(handle).await.map(|(sas, _)| sas)
    }

    /// One poll of a `getikesas` handle, with ARM's `Retry-After` while it runs.
    async fn poll_ike_sas_once(&self, handle: &OpHandle) -> Result<(Option<Vec<IkeSa>>, Option<Duration>), EndpointError> {
        let body = match decode(handle)? {
            Handle::Result { body } => body.into_bytes(),
            Handle::Location { url, .. } => {
                let raw = self.arm.get(RawCall::OperationResult, &url).await?;
                if raw.status == 202 {
                    return Ok((None, arm::retry_after(&raw.headers)));
                }
                raw.body.to_vec()
            }
            _ => return Err(bad_handle("not an IKE SA handle")),
        };
        parse_ike_sas(&body).map(|sas| (Some(sas), None)).map_err(|e| {
            EndpointError::new(CloudName::Azure, ErrorKind::Permanent, "UnexpectedResponse", format!("cannot read the IKE SAs: {e}"))
        })
    }

    /// A Connection's IKE SAs for `tunnel_ends`, best effort: start `getikesas` and poll
    /// it (honouring `Retry-After`, capped) for at most [`IKE_SA_DEADLINE`]. Any error or
    /// the deadline gives `None`: the ends are then reported without SAs. This is a
    /// read for display, not an operation of the plan, so the bound lives here.
    async fn ike_sas_bounded(&self, name: &str) -> Option<Vec<IkeSa>> {
        let read = async {
            let h = self.start_get_ike_sas(name).await?;
            loop {
                let (sas, retry_after) = self.poll_ike_sas_once(&h).await?;
                if let Some(sas) = sas {
                    return Ok::<_, EndpointError>(sas);
                }
                let wait = retry_after.unwrap_or(IKE_SA_POLL_DEFAULT).clamp(IKE_SA_POLL_MIN, IKE_SA_POLL_MAX);
                tokio::time::sleep(wait).await;
            }
        };
        // Errors and the deadline both mean "no SAs reported": tunnel_ends never fails on them.
        tokio::time::timeout(IKE_SA_DEADLINE, read).await.ok()?.ok()
    }
}

/// How long `tunnel_ends` waits for one Connection's `getikesas` (they run in parallel).
pub const IKE_SA_DEADLINE: Duration = Duration::from_secs(30);
const IKE_SA_POLL_DEFAULT: Duration = Duration::from_secs(2);
const IKE_SA_POLL_MIN: Duration = Duration::from_millis(100);
const IKE_SA_POLL_MAX: Duration = Duration::from_secs(10);

/// The ARM endpoint: the settings', else `VPNBRIDGE_AZURE_ENDPOINT`, else the public
/// cloud's.
fn endpoint_url(configured: Option<&str>) -> Result<Url, SetupError> {
    let endpoint = configured
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .or_else(|| std::env::var(ENDPOINT_ENV).ok().filter(|e| !e.is_empty()))
        .unwrap_or_else(|| PUBLIC_CLOUD_ENDPOINT.to_owned());
    Url::parse(&endpoint).map_err(|e| SetupError::Endpoint { endpoint: endpoint.clone(), reason: e.to_string() })
}

// ---------------------------------------------------------------------------
// Operation handles
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Kind {
    PublicIp,
    VpnGateway,
    LocalNetworkGateway,
    Connection,
}

impl Kind {
    fn collection(self) -> &'static str {
        match self {
            Kind::PublicIp => "publicIPAddresses",
            Kind::VpnGateway => "virtualNetworkGateways",
            Kind::LocalNetworkGateway => "localNetworkGateways",
            Kind::Connection => "connections",
        }
    }
}

impl From<AzureResourceKind> for Kind {
    fn from(k: AzureResourceKind) -> Self {
        match k {
            AzureResourceKind::PublicIp => Kind::PublicIp,
            AzureResourceKind::VpnGateway => Kind::VpnGateway,
            AzureResourceKind::LocalNetworkGateway => Kind::LocalNetworkGateway,
            AzureResourceKind::Connection => Kind::Connection,
        }
    }
}

/// What an [`OpHandle`] holds (as JSON), so any process can poll it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t")]
enum Handle {
    /// An ARM asynchronous operation (`Azure-AsyncOperation`).
    Async { url: String, kind: Kind, name: String, goal: Goal },
    /// A `Location` URL: 202 while running, 200/204 when done.
    Location { url: String, kind: Kind, name: String },
    /// No operation URL: watch the resource's `provisioningState`.
    Watch { kind: Kind, name: String, goal: Goal },
    /// Done when started (a delete of something already gone).
    Done { id: String },
    /// A POST action answered at once, with its body.
    Result { body: String },
}

fn encode(h: &Handle) -> OpHandle {
    OpHandle(serde_json::to_string(h).unwrap_or_default())
}

fn bad_handle(why: &str) -> EndpointError {
    EndpointError::new(CloudName::Azure, ErrorKind::Permanent, "InvalidHandle", format!("not a handle of this Azure adapter: {why}"))
}

fn decode(h: &OpHandle) -> Result<Handle, EndpointError> {
    serde_json::from_str(&h.0).map_err(|e| bad_handle(&e.to_string()))
}

/// Reads an SDK enum from its wire string (they fall back to `UnknownValue`).
fn sdk_enum<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, EndpointError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|e| EndpointError::new(CloudName::Azure, ErrorKind::Permanent, "InvalidRequest", format!("{s:?}: {e}")))
}

fn tags_json(tags: &Tags) -> serde_json::Value {
    serde_json::Value::Object(tags.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect())
}

fn sub_resource(id: String) -> m::SubResource {
    let mut r = m::SubResource::new();
    r.id = Some(id);
    r
}

fn state_of(s: Option<&str>) -> ProvisioningState {
    match s {
        Some("Succeeded") | None => ProvisioningState::Succeeded,
        Some("Deleting") => ProvisioningState::Deleting,
        Some("Failed") | Some("Canceled") => ProvisioningState::Failed,
        Some(_) => ProvisioningState::Updating,
    }
}

fn not_found_or(e: EndpointError) -> Result<Option<Raw>, EndpointError> {
    if e.kind == ErrorKind::NotFound { Ok(None) } else { Err(e) }
}

// ---------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------

/// What a gateway PUT says; ipConfigurations are (name, subnet id, public IP id), in
/// instance order.
struct GatewaySpec<'a> {
    sku: &'a str,
    generation: &'a str,
    enable_bgp: bool,
    asn: Option<u32>,
    ip_configurations: Vec<(String, String, String)>,
    tags: &'a Tags,
}

/// An SDK model as the JSON it sends (ours, before [`merge::merged`]).
fn to_json<T: Serialize>(model: &T) -> Result<serde_json::Value, EndpointError> {
    serde_json::to_value(model)
        .map_err(|e| EndpointError::new(CloudName::Azure, ErrorKind::Permanent, "InvalidRequest", format!("cannot build the request: {e}")))
}

impl AzureEndpoint {
    /// What a PUT answered: the handle to poll.
    fn put_handle(&self, raw: &Raw, kind: Kind, name: &str) -> OpHandle {
        match raw.header("azure-asyncoperation") {
            Some(url) => encode(&Handle::Async { url, kind, name: name.to_owned(), goal: Goal::Ready }),
            None => encode(&Handle::Watch { kind, name: name.to_owned(), goal: Goal::Ready }),
        }
    }

    /// What a DELETE answered (or its 404): the handle to poll.
    fn delete_handle(&self, r: Result<azure_core::Response, EndpointError>, kind: Kind, name: &str) -> Result<OpHandle, EndpointError> {
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
    async fn put_merged(&self, kind: Kind, name: &str, ours: serde_json::Value, must_exist: bool) -> Result<OpHandle, EndpointError> {
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
    fn gateway_body(&self, g: GatewaySpec<'_>) -> Result<serde_json::Value, EndpointError> {
        let mut props = m::VirtualNetworkGatewayPropertiesFormat::new();
        props.gateway_type = Some(sdk_enum("Vpn")?);
        props.vpn_type = Some(sdk_enum("RouteBased")?);
        props.vpn_gateway_generation = Some(sdk_enum(g.generation)?);
        props.sku = Some(Self::gateway_sku(g.sku)?);
        props.active_active = Some(g.ip_configurations.len() > 1);
        props.enable_bgp = Some(g.enable_bgp);
        if let Some(asn) = g.asn {
            let mut b = m::BgpSettings::new();
            b.asn = Some(i64::from(asn));
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

    fn gateway_sku(sku: &str) -> Result<m::VirtualNetworkGatewaySku, EndpointError> {
        let mut s = m::VirtualNetworkGatewaySku::new();
        s.name = Some(sdk_enum(sku)?);
        s.tier = Some(sdk_enum(sku)?);
        Ok(s)
    }

    /// Our part of a public IP PUT: Standard, Static, IPv4, the zones, our tags.
    fn public_ip_body(&self, zones: &[String], tags: &Tags) -> Result<serde_json::Value, EndpointError> {
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
    fn lng_body(&self, gateway_ip: Ipv4Addr, address_prefixes: &[IpNet], tags: &Tags) -> Result<serde_json::Value, EndpointError> {
        let mut props = m::LocalNetworkGatewayPropertiesFormat::new();
        props.gateway_ip_address = Some(gateway_ip.to_string());
        let mut space = m::AddressSpace::new();
        space.address_prefixes = address_prefixes.iter().map(ToString::to_string).collect();
        props.local_network_address_space = Some(space);
        let mut l = m::LocalNetworkGateway::new(props);
        l.resource.location = Some(self.location.clone());
        l.resource.tags = Some(tags_json(tags));
        to_json(&l)
    }

    /// Our part of a Connection PUT: IPsec, IKEv2, the key, BGP, DPD, references by
    /// id (the SDK's model requires a `properties` object, which it serialises empty).
    fn connection_body(&self, c: &ConnectionSpec<'_>) -> Result<serde_json::Value, EndpointError> {
        let mut vng = m::VirtualNetworkGateway::new(m::VirtualNetworkGatewayPropertiesFormat::new());
        vng.resource.id = Some(self.id("virtualNetworkGateways", c.gateway));
        let mut lng = m::LocalNetworkGateway::new(m::LocalNetworkGatewayPropertiesFormat::new());
        lng.resource.id = Some(self.id("localNetworkGateways", c.local_network_gateway));
        let mut props = m::VirtualNetworkGatewayConnectionPropertiesFormat::new(vng, sdk_enum("IPsec")?);
        props.local_network_gateway2 = Some(lng);
        props.connection_protocol = Some(sdk_enum("IKEv2")?);
        props.shared_key = Some(c.shared_key.expose().to_owned());
        props.enable_bgp = Some(c.enable_bgp);
        props.dpd_timeout_seconds = i32::try_from(c.dpd_timeout_seconds).ok();
        let mut conn = m::VirtualNetworkGatewayConnection::new(props);
        conn.resource.location = Some(self.location.clone());
        conn.resource.tags = Some(tags_json(c.tags));
        to_json(&conn)
    }

    async fn start_op(&self, op: &AzureOp) -> Result<OpHandle, EndpointError> {
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
            AzureOp::CreateVpnGateway { name, vnet, sku, generation, public_ips, enable_bgp, asn, tags } => {
                let subnet = format!("{}/subnets/GatewaySubnet", self.id("virtualNetworks", vnet));
                let cfgs = public_ips
                    .iter()
                    .enumerate()
                    .map(|(k, p)| (format!("ipconfig{k}"), subnet.clone(), self.id("publicIPAddresses", p)))
                    .collect();
                let body =
                    self.gateway_body(GatewaySpec { sku, generation, enable_bgp: *enable_bgp, asn: *asn, ip_configurations: cfgs, tags })?;
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
            AzureOp::PutLocalNetworkGateway { name, gateway_ip, address_prefixes, tags } => {
                self.put_merged(Kind::LocalNetworkGateway, name, self.lng_body(*gateway_ip, address_prefixes, tags)?, false).await
            }
            AzureOp::DeleteLocalNetworkGateway { name } => {
                let r = call_arm(true, async {
                    sdk.local_network_gateways_client().delete(rg, name, sub).send().await.map(|r| r.into_raw_response())
                })
                .await;
                self.delete_handle(r, Kind::LocalNetworkGateway, name)
            }
            AzureOp::PutConnection { name, gateway, local_network_gateway, shared_key, enable_bgp, dpd_timeout_seconds, tags } => {
                let spec = ConnectionSpec {
                    gateway,
                    local_network_gateway,
                    shared_key,
                    enable_bgp: *enable_bgp,
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
struct ConnectionSpec<'a> {
    gateway: &'a str,
    local_network_gateway: &'a str,
    shared_key: &'a Psk,
    enable_bgp: bool,
    dpd_timeout_seconds: u32,
    tags: &'a Tags,
}

impl AzureEndpoint {
    /// A public IP DELETE refused as in use (`PublicIPAddressInUse`,
    /// `PublicIPAddressCannotBeDeleted`, HTTP 400). ARM releases a gateway's public IPs
    /// a while after the gateway's delete finishes, so while what holds the IP is a
    /// gateway that is gone or being deleted (or nothing any more) the refusal is
    /// transient: back off and retry. Held by a live resource, it is a conflict.
    async fn public_ip_in_use(&self, name: &str, mut refused: EndpointError) -> EndpointError {
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

// ---------------------------------------------------------------------------
// Poll
// ---------------------------------------------------------------------------

/// A resource's id, state and (public IPs) address, from a GET.
#[derive(Deserialize)]
struct Brief {
    id: String,
    #[serde(default)]
    properties: BriefProps,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BriefProps {
    provisioning_state: Option<String>,
    ip_address: Option<String>,
    /// A public IP's holder (an ipConfiguration of a gateway, a NIC…).
    ip_configuration: Option<wire::Ref>,
}

impl AzureEndpoint {
    /// GET one resource; `None` when it does not exist.
    async fn get_brief(&self, kind: Kind, name: &str) -> Result<Option<Brief>, EndpointError> {
        let path = format!("{}?api-version={API_VERSION}", self.kind_id(kind, name));
        let raw = match self.arm.get(RawCall::Get(kind), &path).await.map(Some).or_else(not_found_or)? {
            Some(raw) => raw,
            None => return Ok(None),
        };
        raw.json::<Brief>("the resource").map(Some)
    }

    fn output(b: &Brief) -> OpOutput {
        OpOutput { id: Some(b.id.clone()), public_ip: b.properties.ip_address.as_deref().and_then(|s| s.parse().ok()), tunnels: Vec::new(), tags: None }
    }

    /// The operation finished well: report the resource's outputs.
    async fn finished(&self, kind: Kind, name: &str, goal: Goal) -> Result<OpStatus, EndpointError> {
        if goal == Goal::Gone {
            return Ok(OpStatus::Done(OpOutput { id: Some(self.kind_id(kind, name)), ..OpOutput::default() }));
        }
        match self.get_brief(kind, name).await? {
            Some(b) => Ok(OpStatus::Done(Self::output(&b))),
            None => Ok(OpStatus::Failed(EndpointError::new(
                CloudName::Azure,
                ErrorKind::NotFound,
                "ResourceNotFound",
                format!("{} {name} was deleted while its operation ran", kind.collection()),
            ))),
        }
    }

    /// A resource watched without an operation URL: the core judges its
    /// `provisioningState` against the goal; this says it in ARM's words.
    async fn watch(&self, kind: Kind, name: &str, goal: Goal) -> Result<OpStatus, EndpointError> {
        let b = self.get_brief(kind, name).await?;
        let phase = Phase::from(b.as_ref().map(|b| state_of(b.properties.provisioning_state.as_deref())));
        Ok(match judge(goal, phase) {
            Verdict::Done => match &b {
                Some(b) => OpStatus::Done(Self::output(b)),
                None => OpStatus::Done(OpOutput { id: Some(self.kind_id(kind, name)), ..OpOutput::default() }),
            },
            Verdict::NotYet => OpStatus::Running { retry_after: None },
            Verdict::Failed(Miss::Vanished) => {
                OpStatus::Failed(EndpointError::new(CloudName::Azure, ErrorKind::NotFound, "ResourceNotFound", format!("{name} is gone")))
            }
            Verdict::Failed(Miss::ProvisioningFailed) => OpStatus::Failed(EndpointError::new(
                CloudName::Azure,
                ErrorKind::Permanent,
                "ProvisioningFailed",
                format!("{} {name} is in provisioningState Failed", kind.collection()),
            )),
        })
    }

    async fn poll_handle(&self, h: Handle) -> Result<OpStatus, EndpointError> {
        match h {
            Handle::Done { id } => Ok(OpStatus::Done(OpOutput { id: Some(id), ..OpOutput::default() })),
            Handle::Result { .. } => Ok(OpStatus::Done(OpOutput::default())),
            Handle::Watch { kind, name, goal } => self.watch(kind, &name, goal).await,
            Handle::Location { url, kind, name } => {
                let raw = match self.arm.get(RawCall::OperationResult, &url).await {
                    Ok(raw) => raw,
                    Err(e) if e.is_transient() => return Err(e),
                    Err(e) => return Ok(OpStatus::Failed(e)),
                };
                if raw.status == 202 {
                    return Ok(OpStatus::Running { retry_after: arm::retry_after(&raw.headers) });
                }
                self.finished(kind, &name, Goal::Gone).await
            }
            Handle::Async { url, kind, name, goal } => {
                let raw = self.arm.get(RawCall::OperationStatus, &url).await?;
                let s: wire::OperationStatus = raw.json("the operation status")?;
                match s.status.as_str() {
                    "Succeeded" => self.finished(kind, &name, goal).await,
                    "Failed" | "Canceled" | "Cancelled" => {
                        let (code, message) = match s.error {
                            Some(e) => (e.code.unwrap_or_else(|| s.status.clone()), e.message.unwrap_or_default()),
                            None => (s.status.clone(), format!("the operation on {} {name} ended {}", kind.collection(), s.status)),
                        };
                        let mut e = EndpointError::new(CloudName::Azure, ErrorKind::Permanent, code, message);
                        e.request_id = arm::request_id(&raw.headers);
                        Ok(OpStatus::Failed(e))
                    }
                    _ => Ok(OpStatus::Running { retry_after: arm::retry_after(&raw.headers) }),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Observe
// ---------------------------------------------------------------------------

/// Everything one observation read, as ARM returned it.
struct Snapshot {
    vnet: Option<wire::Vnet>,
    public_ips: Vec<wire::PublicIp>,
    gateways: Vec<wire::Gateway>,
    lngs: Vec<wire::Lng>,
    connections: Vec<wire::Connection>,
    /// Shared keys of our Connections, by lower-cased id.
    keys: HashMap<String, Option<Psk>>,
}

impl AzureEndpoint {
    /// Every resource of `kind` in the subscription (ours are found wherever their tag
    /// is: a changed resource group or location must not hide them). A role assigned
    /// only on the resource group cannot list the subscription (`AuthorizationFailed`):
    /// then the resource group is listed, with a warning (once) that resources of ours
    /// elsewhere cannot be seen.
    async fn list<T: serde::de::DeserializeOwned>(&self, kind: Kind) -> Result<Vec<T>, EndpointError> {
        if !self.group_only.load(std::sync::atomic::Ordering::Relaxed) {
            let url = self.arm.subscription_collection_url(&self.subscription, kind.collection());
            match self.list_from(kind, url).await {
                Err(e) if e.code == "AuthorizationFailed" => {
                    if !self.group_only.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        tracing::warn!(
                            subscription = %self.subscription,
                            "cannot list the subscription ({}); looking in resource group {} only, so resources of this deployment in another resource group or location are not seen. Assign the vpnbridge role (or Reader) at the subscription scope to search it",
                            e.code,
                            self.resource_group
                        );
                    }
                }
                other => return other,
            }
        }
        self.list_from(kind, self.arm.collection_url(&self.subscription, &self.resource_group, kind.collection())).await
    }

    /// When no gateway of this deployment is in the configured subscription: the
    /// gateways of ours in the other subscriptions the identity can see (the config's
    /// subscription changed). One `GET /subscriptions`, then one gateway list per other
    /// subscription, a few at a time; a subscription that cannot be read is skipped.
    async fn gateways_in_other_subscriptions(&self, owner: &Owner) -> Result<Vec<wire::Gateway>, EndpointError> {
        use futures::StreamExt;
        let mut subscriptions = Vec::new();
        let mut url = self.arm.subscriptions_url();
        loop {
            let page: wire::List<wire::Subscription> = match self.arm.get(RawCall::Subscriptions, &url).await {
                Ok(r) => r.json("the subscription list")?,
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot list subscriptions; not searching other subscriptions");
                    return Ok(Vec::new());
                }
            };
            subscriptions.extend(page.value.into_iter().map(|s| s.subscription_id));
            match page.next_link {
                Some(next) if !next.is_empty() => url = next,
                _ => break,
            }
        }
        subscriptions.retain(|s| !s.eq_ignore_ascii_case(&self.subscription));
        let lists = futures::stream::iter(subscriptions)
            .map(|s| async move {
                let url = self.arm.subscription_collection_url(&s, Kind::VpnGateway.collection());
                match self.list_from::<wire::Gateway>(Kind::VpnGateway, url).await {
                    Err(e) if e.is_transient() => Err(e),
                    Err(e) => {
                        tracing::debug!(subscription = %s, error = %e, "cannot list this subscription's gateways; skipped");
                        Ok(Vec::new())
                    }
                    Ok(v) => Ok(v),
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
        let mut out = Vec::new();
        for l in lists {
            out.extend(l?.into_iter().filter(|g| owner.owns(&g.tags)));
        }
        Ok(out)
    }

    async fn list_from<T: serde::de::DeserializeOwned>(&self, kind: Kind, mut url: String) -> Result<Vec<T>, EndpointError> {
        let mut out = Vec::new();
        loop {
            let page: wire::List<T> = self.arm.get(RawCall::List(kind), &url).await?.json(kind.collection())?;
            out.extend(page.value);
            match page.next_link {
                Some(next) if !next.is_empty() => url = next,
                _ => return Ok(out),
            }
        }
    }

    async fn get_vnet(&self) -> Result<Option<wire::Vnet>, EndpointError> {
        let c = &self.arm.client;
        let r = match call_arm(false, c.virtual_networks_client().get(&self.resource_group, &self.vnet, &self.subscription).send()).await {
            Ok(r) => r,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Raw::read(r.into_raw_response()).await?.json("the VNet").map(Some)
    }

    async fn shared_key(&self, name: &str) -> Result<Option<Psk>, EndpointError> {
        let c = &self.arm.client;
        let r = match call_arm(
            false,
            c.virtual_network_gateway_connections_client().get_shared_key(&self.resource_group, name, &self.subscription).send(),
        )
        .await
        {
            Ok(r) => r,
            Err(e) if e.is_transient() => return Err(e),
            // Not readable (gone meanwhile, not allowed): reported as unknown.
            Err(_) => return Ok(None),
        };
        let k: wire::SharedKey = Raw::read(r.into_raw_response()).await?.json("the shared key")?;
        Ok(Psk::new(&k.value).ok())
    }

    /// GET one Connection: its runtime fields (`connectionStatus`,
    /// `tunnelConnectionStatus`), which ARM's list leaves out. `None`: gone meanwhile.
    async fn get_connection(&self, name: &str) -> Result<Option<wire::Connection>, EndpointError> {
        let path = format!("{}?api-version={API_VERSION}", self.kind_id(Kind::Connection, name));
        match self.arm.get(RawCall::Get(Kind::Connection), &path).await.map(Some).or_else(not_found_or)? {
            Some(raw) => raw.json("a Connection").map(Some),
            None => Ok(None),
        }
    }

    async fn snapshot(&self, owner: &Owner) -> Result<Snapshot, EndpointError> {
        let (vnet, public_ips, mut gateways, lngs, listed) = tokio::try_join!(
            self.get_vnet(),
            self.list::<wire::PublicIp>(Kind::PublicIp),
            self.list::<wire::Gateway>(Kind::VpnGateway),
            self.list::<wire::Lng>(Kind::LocalNetworkGateway),
            self.list::<wire::Connection>(Kind::Connection),
        )?;
        if !gateways.iter().any(|g| owner.owns(&g.tags)) {
            gateways.extend(self.gateways_in_other_subscriptions(owner).await?);
        }
        // Per Connection of ours, at once: its `sharedkey` and a GET of it (the list
        // has no runtime fields). Errors keep their kind (a 429 stays Throttled).
        let scope = self.scope();
        let (ours, mut connections): (Vec<wire::Connection>, Vec<wire::Connection>) =
            listed.into_iter().partition(|c| owner.owns(&c.tags) && scope.place_of(&c.id, c.location.as_deref()).is_none());
        let reads = ours.iter().map(|c| async move { tokio::try_join!(self.shared_key(&c.name), self.get_connection(&c.name)) });
        let read = futures::future::try_join_all(reads).await?;
        let mut keys: HashMap<String, Option<Psk>> = HashMap::new();
        for (listed, (key, got)) in ours.into_iter().zip(read) {
            // A Connection deleted since the list is gone.
            let Some(got) = got else { continue };
            keys.insert(got.id.to_ascii_lowercase(), key);
            connections.push(if same_id(&got.id, &listed.id) { got } else { listed });
        }
        Ok(Snapshot { vnet, public_ips, gateways, lngs, connections, keys })
    }
}

fn same_id(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl Snapshot {
    /// Everything listed, as core's ownership rules read it.
    fn with_seen<R>(&self, f: impl FnOnce(&[Seen<'_>]) -> R) -> R {
        let none: &[&str] = &[];
        let gateway_subnets: Vec<Vec<&str>> = self.gateways.iter().map(|g| Self::subnets_of(g).collect()).collect();
        let mut seen = Vec::new();
        fn at(l: &Option<String>) -> Option<&str> {
            l.as_deref()
        }
        for p in &self.public_ips {
            seen.push(Seen {
                kind: AzureResourceKind::PublicIp,
                id: &p.id,
                name: &p.name,
                location: at(&p.location),
                tags: &p.tags,
                subnets: none,
            });
        }
        for (g, subnets) in self.gateways.iter().zip(&gateway_subnets) {
            seen.push(Seen {
                kind: AzureResourceKind::VpnGateway,
                id: &g.id,
                name: &g.name,
                location: at(&g.location),
                tags: &g.tags,
                subnets,
            });
        }
        for l in &self.lngs {
            seen.push(Seen {
                kind: AzureResourceKind::LocalNetworkGateway,
                id: &l.id,
                name: &l.name,
                location: at(&l.location),
                tags: &l.tags,
                subnets: none,
            });
        }
        for c in &self.connections {
            seen.push(Seen {
                kind: AzureResourceKind::Connection,
                id: &c.id,
                name: &c.name,
                location: at(&c.location),
                tags: &c.tags,
                subnets: none,
            });
        }
        f(&seen)
    }

    /// Whether a resource (by id) is ours and in the configured scope, as core decides
    /// (resource group, location and, for the gateway, the VNet it serves).
    fn ours(&self, scope: AzureScope<'_>, owner: &Owner) -> impl Fn(&str) -> bool + use<> {
        let ids: std::collections::HashSet<String> = self.with_seen(|seen| {
            seen.iter().filter(|s| scope.standing(owner, s) == Standing::Ours).map(|s| s.id.to_ascii_lowercase()).collect()
        });
        move |id: &str| ids.contains(&id.to_ascii_lowercase())
    }

    /// Our gateway: ours, in scope and serving the configured VNet.
    fn our_gateway<'s>(&'s self, scope: AzureScope<'_>, owner: &Owner) -> Option<&'s wire::Gateway> {
        let ours = self.ours(scope, owner);
        self.gateways.iter().find(|g| ours(&g.id))
    }

    fn subnets_of(g: &wire::Gateway) -> impl Iterator<Item = &str> {
        g.properties.ip_configurations.iter().filter_map(|c| c.properties.subnet.as_ref().map(|r| r.id.as_str()))
    }

    /// Our gateway's instances: (index, public IP).
    fn instances(&self, gw: Option<&wire::Gateway>) -> Vec<(usize, Option<Ipv4Addr>)> {
        let Some(gw) = gw else { return Vec::new() };
        gw.properties
            .ip_configurations
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let pip_id = c.properties.public_ip_address.as_ref().map(|r| r.id.as_str()).unwrap_or_default();
                let ip = self
                    .public_ips
                    .iter()
                    .find(|p| same_id(&p.id, pip_id))
                    .and_then(|p| p.properties.ip_address.as_deref())
                    .and_then(|s| s.parse().ok());
                (k, ip)
            })
            .collect()
    }

    fn observed(&self, scope: AzureScope<'_>, owner: &Owner) -> AzureObserved {
        let ours = self.ours(scope, owner);
        let vnet = self.vnet.as_ref().map(|v| VirtualNetwork {
            id: v.id.clone(),
            name: v.name.clone(),
            address_space: v
                .properties
                .address_space
                .as_ref()
                .map(|a| a.address_prefixes.iter().filter_map(|p| p.parse::<IpNet>().ok()).collect())
                .unwrap_or_default(),
            subnets: v
                .properties
                .subnets
                .iter()
                .filter_map(|s| {
                    let prefix = s.properties.address_prefix.as_ref().or(s.properties.address_prefixes.first())?.parse().ok()?;
                    Some(Subnet {
                        id: s.id.clone(),
                        name: s.name.clone(),
                        prefix,
                        ip_configurations: s.properties.ip_configurations.iter().map(|r| r.id.clone()).collect(),
                    })
                })
                .collect(),
        });
        let public_ips = self
            .public_ips
            .iter()
            .filter(|p| ours(&p.id))
            .map(|p| PublicIp {
                id: p.id.clone(),
                name: p.name.clone(),
                ip: p.properties.ip_address.as_deref().and_then(|s| s.parse().ok()),
                sku: p.sku.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
                static_allocation: p.properties.allocation.as_deref() == Some("Static"),
                zones: p.zones.clone(),
                state: state_of(p.properties.provisioning_state.as_deref()),
                tags: p.tags.clone(),
            })
            .collect();
        let our_gw = self.our_gateway(scope, owner);
        let vpn_gateway = our_gw.map(|g| VirtualNetworkGateway {
            id: g.id.clone(),
            name: g.name.clone(),
            sku: g.properties.sku.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
            generation: g.properties.vpn_gateway_generation.clone().unwrap_or_default(),
            vpn_type: g.properties.vpn_type.clone().unwrap_or_default(),
            active_active: g.properties.active_active,
            enable_bgp: g.properties.enable_bgp,
            asn: if g.properties.enable_bgp {
                g.properties.bgp_settings.as_ref().and_then(|b| b.asn).and_then(|a| u32::try_from(a).ok())
            } else {
                None
            },
            ip_configurations: g
                .properties
                .ip_configurations
                .iter()
                .map(|c| GatewayIpConfiguration {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    public_ip_id: c.properties.public_ip_address.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
                })
                .collect(),
            state: state_of(g.properties.provisioning_state.as_deref()),
            tags: g.tags.clone(),
        });
        // Gateways of others in our GatewaySubnet: the subnet's ipConfigurations that
        // are not our gateway's (they may live in another resource group).
        let mut foreign_gateways_in_vnet: Vec<String> = vnet
            .as_ref()
            .and_then(|v| v.gateway_subnet())
            .map(|s| {
                s.ip_configurations
                    .iter()
                    .filter_map(|c| {
                        let lower = c.to_ascii_lowercase();
                        let at = lower.find("/ipconfigurations/")?;
                        Some(c[..at].to_owned())
                    })
                    .filter(|g| our_gw.is_none_or(|o| !same_id(&o.id, g)))
                    .collect()
            })
            .unwrap_or_default();
        foreign_gateways_in_vnet.sort();
        foreign_gateways_in_vnet.dedup();
        let local_network_gateways = self
            .lngs
            .iter()
            .filter(|l| ours(&l.id))
            .map(|l| LocalNetworkGateway {
                id: l.id.clone(),
                name: l.name.clone(),
                gateway_ip: l.properties.gateway_ip_address.as_deref().and_then(|s| s.parse().ok()).unwrap_or(Ipv4Addr::UNSPECIFIED),
                address_prefixes: l
                    .properties
                    .local_network_address_space
                    .as_ref()
                    .map(|a| a.address_prefixes.iter().filter_map(|p| p.parse().ok()).collect())
                    .unwrap_or_default(),
                state: state_of(l.properties.provisioning_state.as_deref()),
                tags: l.tags.clone(),
            })
            .collect();
        let instance_ips: Vec<Ipv4Addr> = self.instances(our_gw).into_iter().filter_map(|(_, ip)| ip).collect();
        let connections = self
            .connections
            .iter()
            .filter(|c| ours(&c.id))
            .map(|c| Connection {
                id: c.id.clone(),
                name: c.name.clone(),
                gateway_id: c.properties.virtual_network_gateway1.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
                local_network_gateway_id: c.properties.local_network_gateway2.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
                protocol: c.properties.connection_protocol.clone().unwrap_or_else(|| "IKEv2".to_owned()),
                shared_key: self.keys.get(&c.id.to_ascii_lowercase()).cloned().flatten(),
                enable_bgp: c.properties.enable_bgp,
                state: state_of(c.properties.provisioning_state.as_deref()),
                connection_status: c.properties.connection_status.clone().unwrap_or_else(|| "Unknown".to_owned()),
                tunnels: c
                    .properties
                    .tunnel_connection_status
                    .iter()
                    .map(|t| AzureTunnelStatus {
                        tunnel: t.tunnel.clone(),
                        // Only when the name says (ARM documents no format): the IKE
                        // SAs that attribute the rest are read by `tunnel_ends`.
                        instance_ip: tunnels::ip_in_name(&t.tunnel, &instance_ips),
                        status: tunnels::tunnel_state(t.connection_status.as_deref()),
                    })
                    .collect(),
                tags: c.tags.clone(),
            })
            .collect();
        let Inventory { foreign_names, elsewhere } = self.with_seen(|seen| scope.inventory(owner, seen.iter().copied()));
        let deployment_of = self
            .gateways
            .iter()
            .filter_map(|g| Some((g.id.to_ascii_lowercase(), g.tags.get(vpnbridge_core::model::TAG_DEPLOYMENT)?.clone())))
            .filter(|(_, d)| d != &owner.deployment)
            .collect();
        AzureObserved {
            vnet,
            foreign_gateways_in_vnet,
            public_ips,
            vpn_gateway,
            local_network_gateways,
            connections,
            foreign_names,
            elsewhere,
            deployment_of,
        }
    }

    /// The names of our Connections (whose IKE SAs `tunnel_ends` reads).
    fn our_connection_names(&self, scope: AzureScope<'_>, owner: &Owner) -> Vec<String> {
        let ours = self.ours(scope, owner);
        self.connections.iter().filter(|c| ours(&c.id)).map(|c| c.name.clone()).collect()
    }

    /// Each instance's end of each of our Connections. `sas` holds the IKE SAs of
    /// the Connections whose `getikesas` answered (by lower-cased name); each end gets
    /// the SA whose local endpoint is its instance's public IP, and its status from the
    /// `tunnelConnectionStatus` entry attributed to it (see [`tunnels`]).
    fn tunnel_ends(&self, scope: AzureScope<'_>, owner: &Owner, sas: &HashMap<String, Vec<IkeSa>>) -> Vec<Box<dyn Tunnel>> {
        let ours = self.ours(scope, owner);
        let our_gw = self.our_gateway(scope, owner);
        let instances: Vec<(usize, Ipv4Addr)> = self.instances(our_gw).into_iter().filter_map(|(k, ip)| Some((k, ip?))).collect();
        let mut out: Vec<Box<dyn Tunnel>> = Vec::new();
        for c in self.connections.iter().filter(|c| ours(&c.id)) {
            let lng_id = c.properties.local_network_gateway2.as_ref().map(|r| r.id.as_str()).unwrap_or_default();
            let Some(peer) =
                self.lngs.iter().find(|l| same_id(&l.id, lng_id)).and_then(|l| l.properties.gateway_ip_address.as_deref()?.parse().ok())
            else {
                continue;
            };
            let psk = self.keys.get(&c.id.to_ascii_lowercase()).cloned().flatten();
            let read = sas.get(&c.name.to_ascii_lowercase());
            let evidence: Vec<(tunnels::Instance, Option<CoreIkeSa>)> = instances
                .iter()
                .map(|&(index, ip)| {
                    let sa = read.and_then(|sas| sa_of_instance(sas, ip));
                    let seen = match (read, &sa) {
                        (None, _) => tunnels::SaEvidence::Unknown,
                        (Some(_), Some(_)) => tunnels::SaEvidence::Present,
                        (Some(_), None) => tunnels::SaEvidence::Absent,
                    };
                    (tunnels::Instance { index, ip, sa: seen }, sa)
                })
                .collect();
            let inst: Vec<tunnels::Instance> = evidence.iter().map(|(i, _)| *i).collect();
            let statuses = tunnels::attribute(&c.properties.tunnel_connection_status, c.properties.connection_status.as_deref(), &inst);
            for ((i, sa), status) in evidence.into_iter().zip(statuses) {
                let end = TunnelEnd {
                    cloud: CloudName::Azure,
                    outside_ip: i.ip,
                    peer_ip: peer,
                    instance: i.index,
                    resource: c.name.clone(),
                    inside_cidr: None,
                    psk: psk.clone(),
                    status,
                };
                out.push(Box::new(WithIkeSa { end, sa }));
            }
        }
        out
    }
}

/// The SA held by the instance whose public IP is `ip` (its `localEndpoint`).
fn sa_of_instance(sas: &[IkeSa], ip: Ipv4Addr) -> Option<CoreIkeSa> {
    sas.iter().find_map(|s| {
        let local: Ipv4Addr = s.local_endpoint.as_deref()?.trim().parse().ok()?;
        let remote: Ipv4Addr = s.remote_endpoint.as_deref()?.trim().parse().ok()?;
        (local == ip).then_some(CoreIkeSa { local, remote })
    })
}

#[async_trait]
impl VpnEndpoint<Azure> for AzureEndpoint {
    async fn observe(&self, owner: &Owner) -> Result<AzureObserved, EndpointError> {
        let snap = self.snapshot(owner).await?;
        Ok(snap.observed(self.scope(), owner))
    }

    async fn start(&self, op: &AzureOp) -> Result<OpHandle, EndpointError> {
        self.start_op(op).await
    }

    async fn poll(&self, handle: &OpHandle) -> Result<OpStatus, EndpointError> {
        self.poll_handle(decode(handle)?).await
    }

    async fn tunnel_ends(&self, owner: &Owner) -> Result<Vec<Box<dyn Tunnel>>, EndpointError> {
        let snap = self.snapshot(owner).await?;
        let scope = self.scope();
        let names = snap.our_connection_names(scope, owner);
        let reads = names.iter().map(|n| async move { (n.to_ascii_lowercase(), self.ike_sas_bounded(n).await) });
        let sas: HashMap<String, Vec<IkeSa>> =
            futures::future::join_all(reads).await.into_iter().filter_map(|(n, sas)| Some((n, sas?))).collect();
        Ok(snap.tunnel_ends(scope, owner, &sas))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip() {
        let h = Handle::Async { url: "http://x/op?api-version=1".into(), kind: Kind::Connection, name: "c".into(), goal: Goal::Ready };
        assert_eq!(decode(&encode(&h)).expect("decodes"), h);
        assert!(decode(&OpHandle("ec2-op-1".into())).is_err());
    }

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

    /// Each instance gets the SA whose local endpoint is its public IP; an SA with an
    /// unreadable endpoint is skipped.
    #[test]
    fn the_sa_of_an_instance_is_matched_by_its_local_endpoint() {
        let sa = |local: &str, remote: &str| IkeSa {
            local_endpoint: Some(local.into()),
            remote_endpoint: Some(remote.into()),
            encryption: None,
            integrity: None,
            dh_group: None,
            life_time_seconds: None,
            is_sa_initiator: None,
            elapsed_time_inseconds: None,
        };
        let sas = [sa("not an ip", "3.0.0.9"), sa("20.0.0.2", "3.0.0.5"), sa("20.0.0.1", "3.0.0.6")];
        let found = sa_of_instance(&sas, Ipv4Addr::new(20, 0, 0, 1)).expect("instance 0");
        assert_eq!((found.local, found.remote), (Ipv4Addr::new(20, 0, 0, 1), Ipv4Addr::new(3, 0, 0, 6)));
        assert!(sa_of_instance(&sas, Ipv4Addr::new(20, 0, 0, 3)).is_none());
    }
}
