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
//!   `trafficSelectorPolicies`, NAT rules; an LNG's `fqdn`…). BGP is ours (bgp-ha): an
//!   LNG's `bgpSettings` and a Connection's `gatewayCustomBgpIpAddresses` are what the
//!   operation says, none without BGP. A PUT is 2 requests: the GET and the PUT.
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
//!   says why. When our gateway has `enableBgp` (bgp-ha), the same call also reads the
//!   gateway's `getBgpPeerStatus` and `getLearnedRoutes` once (in parallel with the
//!   IKE SAs, each bounded the same way) and gives each end of a BGP Connection its
//!   session: the peer whose `neighbor` is the LNG's `bgpSettings.bgpPeeringAddress`
//!   and whose `localAddress` is the instance's address on that Connection (its
//!   `gatewayCustomBgpIpAddresses` entry, else, and also accepted, the instance's
//!   default BGP address); Connected is established, any other word down (Unknown
//!   unknown), with Azure's word first in the reason; the learned prefixes are the
//!   `EBgp` routes from that neighbor to that instance. A read that fails leaves the
//!   session Unknown with the reason; `tunnel_ends` does not fail on it.
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
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::Url;
use azure_core::auth::TokenCredential;
use vpnbridge_core::endpoint::{Azure, EndpointError, OpHandle, OpStatus, Tunnel, VpnEndpoint};
use vpnbridge_core::model::{AzureObserved, AzureScope, Owner};
use vpnbridge_core::ops::AzureOp;

mod arm;
mod cloud;
#[cfg(test)]
mod examples;
mod handle;
mod merge;
mod observe;
mod poll;
mod probe;
#[cfg(test)]
mod role;
mod start;
mod tunnels;
mod wire;

use crate::handle::{Kind, decode};
pub use arm::API_VERSION;
use arm::{Arm, StaticToken};

pub use cloud::AUTHORITY_ENV;
pub use probe::{AzureTestVm, COMPUTE_API_VERSION};
pub use tunnels::{GatewayRead, IKE_SA_DEADLINE};
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
    pub(crate) fn scope(&self) -> AzureScope<'_> {
        AzureScope { subscription_id: &self.subscription, resource_group: &self.resource_group, location: &self.location, vnet: &self.vnet }
    }

    pub(crate) fn kind_id(&self, kind: Kind, name: &str) -> String {
        self.id(kind.collection(), name)
    }
}

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
        // The gateway's BGP state, once per call, when its BGP is on.
        let bgp_gateway = snap.our_gateway(scope, owner).filter(|g| g.properties.enable_bgp).map(|g| g.name.clone());
        let bgp = async {
            match &bgp_gateway {
                Some(name) => Some(self.bgp_reading(name).await),
                None => None,
            }
        };
        let (sas, bgp) = tokio::join!(futures::future::join_all(reads), bgp);
        let sas: HashMap<String, Vec<IkeSa>> = sas.into_iter().filter_map(|(n, sas)| Some((n, sas?))).collect();
        Ok(snap.tunnel_ends(scope, owner, &sas, bgp.as_ref()))
    }
}
