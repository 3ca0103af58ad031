//! The HTTP side: the azure_mgmt_network client, our own pipeline for the URLs the SDK
//! has no builder for (operation status, `Location`, list pages), ARM errors, and
//! credentials.
//!
//! Every request goes through an azure_core pipeline whose retry policy is *off* (core
//! owns retries and deadlines) and whose [`ArmErrorPolicy`] turns every non-2xx
//! response into an [`ArmError`] carrying ARM's code and message, the
//! `x-ms-request-id` and `Retry-After`, before azure_core would reduce it to an
//! `HttpError` (which keeps neither header accessible, and whose Display dumps the
//! body).

use std::sync::Arc;
use std::time::Duration;

use azure_core::auth::{AccessToken, Secret, TokenCredential};
use azure_core::headers::{HeaderName, Headers};
use azure_core::{ClientOptions, Context, Method, Policy, PolicyResult, Request, RetryOptions, Url};
use serde::de::DeserializeOwned;
use vpnbridge_core::endpoint::{CloudName, EndpointError, ErrorKind};

use crate::Kind;

/// The api-version azure_mgmt_network 0.21 speaks (its only one).
pub const API_VERSION: &str = "2024-03-01";
/// The api-version of `GET /subscriptions` (Microsoft.Resources, not Network).
pub const SUBSCRIPTIONS_API_VERSION: &str = "2022-12-01";

/// How long one HTTP request may take before it counts as a (transient) timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// An error answer from ARM, as the adapter sees it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("HTTP {status} {code}: {message}")]
pub(crate) struct ArmError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    pub retry_after: Option<Duration>,
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: Option<ErrorDetail>,
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// `Retry-After` in seconds (ARM sends seconds; an HTTP date is ignored).
pub(crate) fn retry_after(headers: &Headers) -> Option<Duration> {
    headers.get_optional_str(&HeaderName::from_static("retry-after")).and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs)
}

pub(crate) fn request_id(headers: &Headers) -> Option<String> {
    headers.get_optional_string(&HeaderName::from_static("x-ms-request-id"))
}

/// Turns non-2xx responses into [`ArmError`]s (see the module doc).
#[derive(Debug)]
pub(crate) struct ArmErrorPolicy;

#[async_trait::async_trait]
impl Policy for ArmErrorPolicy {
    async fn send(&self, ctx: &Context, request: &mut Request, next: &[Arc<dyn Policy>]) -> PolicyResult {
        let response = next[0].send(ctx, request, &next[1..]).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let (status, headers, body) = response.deconstruct();
        let bytes = body.collect().await.unwrap_or_default();
        let detail = serde_json::from_slice::<ErrorBody>(&bytes).ok().and_then(|b| b.error);
        let code_num = status as u16;
        let err = ArmError {
            status: code_num,
            code: detail.as_ref().and_then(|d| d.code.clone()).unwrap_or_else(|| format!("HTTP{code_num}")),
            message: detail.and_then(|d| d.message).unwrap_or_else(|| format!("ARM answered HTTP {code_num} without an error body")),
            request_id: request_id(&headers),
            retry_after: retry_after(&headers),
        };
        let kind = azure_core::error::ErrorKind::http_response(status, Some(err.code.clone()));
        Err(azure_core::Error::new(kind, err))
    }
}

/// A bearer token given as is (the ARM fake's, from `VPNBRIDGE_AZURE_TOKEN`).
#[derive(Clone)]
pub(crate) struct StaticToken(pub String);

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

#[async_trait::async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(&self, _scopes: &[&str]) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(Secret::new(self.0.clone()), time::OffsetDateTime::now_utc() + time::Duration::hours(1)))
    }
    async fn clear_cache(&self) -> azure_core::Result<()> {
        Ok(())
    }
}

/// What went wrong with a call, for [`to_endpoint_error`].
pub(crate) fn find_arm_error(e: &azure_core::Error) -> Option<&ArmError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = cur {
        if let Some(a) = x.downcast_ref::<ArmError>() {
            return Some(a);
        }
        cur = x.source();
    }
    None
}

/// Maps an ARM error to core's error kinds.
pub(crate) fn arm_to_endpoint_error(a: &ArmError, write: bool) -> EndpointError {
    let kind = match (a.status, a.code.as_str()) {
        (429, _) => ErrorKind::Throttled,
        (_, "AnotherOperationInProgress") => ErrorKind::Transient,
        (404, _) => ErrorKind::NotFound,
        (408 | 500..=599, _) => ErrorKind::Transient,
        (_, "VnetAlreadyHasGateway" | "PublicIPAddressInUse") => ErrorKind::Conflict,
        _ => ErrorKind::Permanent,
    };
    let mut e = EndpointError::new(CloudName::Azure, kind, a.code.clone(), a.message.clone());
    e.request_id = a.request_id.clone();
    e.retry_after = a.retry_after;
    // A 5xx or timeout on a write may come after ARM committed it.
    e.may_have_committed = write && matches!(a.status, 408 | 500..=599);
    e
}

/// Maps any azure_core error (ARM answer, transport, credential) to core's.
pub(crate) fn to_endpoint_error(e: &azure_core::Error, write: bool) -> EndpointError {
    if let Some(a) = find_arm_error(e) {
        return arm_to_endpoint_error(a, write);
    }
    let (kind, code) = match e.kind() {
        azure_core::error::ErrorKind::Io => (ErrorKind::Transient, "NetworkError"),
        azure_core::error::ErrorKind::Credential => (ErrorKind::Permanent, "CredentialUnavailable"),
        azure_core::error::ErrorKind::DataConversion => (ErrorKind::Permanent, "UnexpectedResponse"),
        _ => (ErrorKind::Transient, "RequestFailed"),
    };
    let mut err = EndpointError::new(CloudName::Azure, kind, code, e.to_string());
    err.may_have_committed = write && kind == ErrorKind::Transient;
    err
}

fn timeout_error(write: bool) -> EndpointError {
    let mut e = EndpointError::new(
        CloudName::Azure,
        ErrorKind::Transient,
        "RequestTimeout",
        format!("no answer from Azure Resource Manager within {}s", REQUEST_TIMEOUT.as_secs()),
    );
    e.may_have_committed = write;
    e
}

/// Runs one request future under [`REQUEST_TIMEOUT`], mapping its error.
pub(crate) async fn call_arm<T>(write: bool, f: impl std::future::Future<Output = azure_core::Result<T>>) -> Result<T, EndpointError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_endpoint_error(&e, write)),
        Err(_) => Err(timeout_error(write)),
    }
}

/// An answer read in full.
pub(crate) struct Raw {
    pub status: u16,
    pub headers: Headers,
    pub body: bytes::Bytes,
}

impl Raw {
    pub(crate) async fn read(r: azure_core::Response) -> Result<Self, EndpointError> {
        let (status, headers, body) = r.deconstruct();
        let body = body.collect().await.map_err(|e| to_endpoint_error(&e, false))?;
        Ok(Self { status: status as u16, headers, body })
    }

    pub(crate) fn header(&self, name: &'static str) -> Option<String> {
        self.headers.get_optional_string(&HeaderName::from_static(name))
    }

    /// The body as `T` (our own wire types; see `wire`).
    pub(crate) fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, EndpointError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            // The serde error names the field, never the value.
            let mut err = EndpointError::new(
                CloudName::Azure,
                ErrorKind::Permanent,
                "UnexpectedResponse",
                format!("cannot read {what} from Azure Resource Manager: {e}"),
            );
            err.request_id = request_id(&self.headers);
            err
        })
    }
}

/// The ARM operations the adapter sends through its own pipeline rather than an SDK
/// request builder, by what they are (the URL alone does not say: an operation status
/// URL is opaque). Each raw request names one, so the role test can map every request
/// the adapter can make to its RBAC action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawCall {
    /// `GET {kind}/{name}` of one resource.
    Get(Kind),
    /// `GET {kind}` of the subscription or of the resource group, and its `nextLink` pages.
    List(Kind),
    /// `GET /subscriptions` (Microsoft.Resources): the subscriptions the identity can
    /// see, searched for this deployment's gateway when none is in the configured one.
    Subscriptions,
    /// `PUT {kind}/{name}` (a body merged onto what GET returned, see `merge`).
    Put(Kind),
    /// `GET` of an `Azure-AsyncOperation` URL (`…/locations/{l}/operations/{id}`).
    OperationStatus,
    /// `GET` of a `Location` URL (`…/locations/{l}/operationResults/{id}`).
    OperationResult,
    /// `GET Microsoft.Compute/virtualMachines/{vm}?$expand=instanceView` (the probe VM).
    VmGet,
    /// `GET Microsoft.Network/networkInterfaces/{nic}` (the probe VM's private IP).
    NicGet,
    /// `GET Microsoft.Network/networkSecurityGroups/{nsg}` (its ICMP rules).
    NsgGet,
    /// `POST Microsoft.Compute/virtualMachines/{vm}/runCommand`.
    RunCommand,
    /// `GET` of a Run Command's `Location` (`Microsoft.Compute/locations/{l}/operations/{id}`).
    ComputeOperation,
}

impl RawCall {
    /// Every raw call there is (for the role test).
    #[cfg(test)]
    pub(crate) fn all() -> Vec<RawCall> {
        let kinds = [Kind::PublicIp, Kind::VpnGateway, Kind::LocalNetworkGateway, Kind::Connection];
        let mut all: Vec<RawCall> = kinds.iter().flat_map(|k| [RawCall::Get(*k), RawCall::List(*k), RawCall::Put(*k)]).collect();
        all.extend([RawCall::OperationStatus, RawCall::OperationResult, RawCall::Subscriptions]);
        all.extend([RawCall::VmGet, RawCall::NicGet, RawCall::NsgGet, RawCall::RunCommand, RawCall::ComputeOperation]);
        all
    }
}

/// Both ways to talk to ARM, sharing one credential and one set of options.
#[derive(Clone)]
pub(crate) struct Arm {
    pub client: azure_mgmt_network::Client,
    pipeline: azure_core::Pipeline,
    credential: Arc<dyn TokenCredential>,
    scopes: Vec<String>,
    pub endpoint: Url,
}

impl Arm {
    pub(crate) fn new(endpoint: Url, credential: Arc<dyn TokenCredential>) -> Self {
        let mut options = ClientOptions::default().retry(RetryOptions::none());
        options.per_retry_policies_mut().push(Arc::new(ArmErrorPolicy));
        // The token's audience is ARM's resource id; for an overridden endpoint the
        // same URL + `.default` (what az uses for the public cloud too).
        let scope = format!("{}/.default", endpoint.as_str().trim_end_matches('/'));
        let scopes = vec![scope];
        let client = azure_mgmt_network::Client::new(endpoint.clone(), credential.clone(), scopes.clone(), options.clone());
        let pipeline =
            azure_core::Pipeline::new(option_env!("CARGO_PKG_NAME"), option_env!("CARGO_PKG_VERSION"), options, Vec::new(), Vec::new());
        Self { client, pipeline, credential, scopes, endpoint }
    }

    /// A path or an absolute URL (operation status, `Location`, `nextLink`) as a URL.
    fn url(&self, call: RawCall, url: &str) -> Result<Url, EndpointError> {
        if url.starts_with("http://") || url.starts_with("https://") { Url::parse(url) } else { self.endpoint.join(url) }
            .map_err(|e| EndpointError::new(CloudName::Azure, ErrorKind::Permanent, "InvalidUrl", format!("{call:?} {url}: {e}")))
    }

    /// Sends one request through our pipeline (no retry, ARM errors mapped), with the
    /// bearer token and, for a body, `Content-Type: application/json`. `call` says
    /// which ARM operation this is (see [`RawCall`]); it is not sent.
    async fn send(&self, call: RawCall, method: Method, url: &str, body: Option<&serde_json::Value>) -> Result<Raw, EndpointError> {
        let url = self.url(call, url)?;
        let write = method != Method::Get;
        let fut = async {
            let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
            let token = self.credential.get_token(&scopes).await?;
            let mut req = Request::new(url, method);
            req.insert_header(azure_core::headers::AUTHORIZATION, format!("Bearer {}", token.token.secret()));
            if let Some(body) = body {
                req.insert_header(azure_core::headers::CONTENT_TYPE, "application/json");
                req.set_body(serde_json::to_vec(body).unwrap_or_default());
            }
            self.pipeline.send(&Context::default(), &mut req).await
        };
        let r = call_arm(write, fut).await?;
        Raw::read(r).await
    }

    /// GET a path or an absolute URL (operation status, `Location`, `nextLink`).
    pub(crate) async fn get(&self, call: RawCall, url: &str) -> Result<Raw, EndpointError> {
        self.send(call, Method::Get, url, None).await
    }

    /// PUT a JSON body (a write: a 5xx or timeout may have committed).
    pub(crate) async fn put(&self, call: RawCall, url: &str, body: &serde_json::Value) -> Result<Raw, EndpointError> {
        self.send(call, Method::Put, url, Some(body)).await
    }

    /// The URL of the subscription list (Microsoft.Resources' own api-version).
    pub(crate) fn subscriptions_url(&self) -> String {
        format!("/subscriptions?api-version={SUBSCRIPTIONS_API_VERSION}")
    }

    /// The URL of a subscription-wide collection (every resource group) with api-version.
    pub(crate) fn subscription_collection_url(&self, subscription: &str, kind: &str) -> String {
        format!("/subscriptions/{subscription}/providers/Microsoft.Network/{kind}?api-version={API_VERSION}")
    }

    /// POST a JSON body (an action: a 5xx or timeout may have committed).
    pub(crate) async fn post(&self, call: RawCall, url: &str, body: &serde_json::Value) -> Result<Raw, EndpointError> {
        self.send(call, Method::Post, url, Some(body)).await
    }

    /// The URL of a resource-group collection (`publicIPAddresses`…) with api-version.
    pub(crate) fn collection_url(&self, subscription: &str, resource_group: &str, kind: &str) -> String {
        format!(
            "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.Network/{kind}?api-version={API_VERSION}"
        )
    }
}
