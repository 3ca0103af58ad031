//! The doors between core and the clouds: [`VpnEndpoint`] (one cloud's side) and
//! [`Tunnel`] (one side's end of an IPsec tunnel).
//!
//! Adapters translate; they never decide. They observe in batches, start an operation
//! without waiting for it, poll it, and read their own half of each tunnel. Core owns
//! ordering, waiting, deadlines and retries.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

use crate::model::{AwsObserved, AzureObserved, Owner, TunnelState};
use crate::ops::{AwsOp, AzureOp, OpOutput};
use crate::secret::Psk;

/// A cloud, as a type: ties an endpoint to its observed state and its operations.
pub trait Cloud: Send + Sync + fmt::Debug + 'static {
    /// What `observe` returns.
    type Observed: Clone + fmt::Debug + Send + Sync;
    /// What `start` accepts (fully bound).
    type Op: Clone + fmt::Debug + Send + Sync;
    const NAME: CloudName;
}

/// Amazon Web Services: VGW, CGWs, Site-to-Site VPN connections.
#[derive(Debug, Clone, Copy)]
pub struct Aws;
impl Cloud for Aws {
    type Observed = AwsObserved;
    type Op = AwsOp;
    const NAME: CloudName = CloudName::Aws;
}

/// Microsoft Azure: public IPs, VPN gateway, LocalNetworkGateways, Connections.
#[derive(Debug, Clone, Copy)]
pub struct Azure;
impl Cloud for Azure {
    type Observed = AzureObserved;
    type Op = AzureOp;
    const NAME: CloudName = CloudName::Azure;
}

/// The two clouds, as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CloudName {
    Azure,
    Aws,
}

impl fmt::Display for CloudName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CloudName::Azure => "azure",
            CloudName::Aws => "aws",
        })
    }
}

/// A started operation, to poll. Opaque to core; adapters put whatever they need in it
/// (an ARM `Azure-AsyncOperation` URL, an EC2 resource id and the state it waits for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct OpHandle(pub String);

/// Where a started operation stands.
#[derive(Debug)]
pub enum OpStatus {
    /// Still running; poll again, after `retry_after` when the cloud said so.
    Running { retry_after: Option<Duration> },
    /// Finished; its outputs feed later steps.
    Done(OpOutput),
    /// Finished badly (an ARM operation that ended Failed, a VPN connection that went
    /// to `deleted` while pending).
    Failed(EndpointError),
}

/// How an error should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Too many requests; back off (for `retry_after` when given) and retry.
    Throttled,
    /// A passing failure (5xx, timeout, 409 AnotherOperationInProgress): retry.
    Transient,
    /// Will fail again the same way until someone changes something.
    Permanent,
    /// Something that is not ours is in the way (a foreign CGW, a foreign VGW).
    Conflict,
    /// The resource does not exist.
    NotFound,
}

/// An error from a cloud (or the simulator), with the cloud's own code.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{cloud} {code}: {message}{}", request_id.as_ref().map(|r| format!(" (request id {r})")).unwrap_or_default())]
pub struct EndpointError {
    pub cloud: CloudName,
    pub kind: ErrorKind,
    /// The cloud's error code (`RequestLimitExceeded`, `AnotherOperationInProgress`…).
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    /// For throttling: how long the cloud asked us to wait.
    pub retry_after: Option<Duration>,
    /// The request may have been carried out although it failed (a timeout after the
    /// cloud committed it): before retrying a create, re-observe.
    pub may_have_committed: bool,
}

impl EndpointError {
    pub fn new(cloud: CloudName, kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { cloud, kind, code: code.into(), message: message.into(), request_id: None, retry_after: None, may_have_committed: false }
    }

    /// Whether retrying the same request can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Throttled | ErrorKind::Transient)
    }
}

/// One cloud's side of the VPN. Object-safe: core holds `Arc<dyn VpnEndpoint<Aws>>`
/// and `Arc<dyn VpnEndpoint<Azure>>`.
#[async_trait]
pub trait VpnEndpoint<C: Cloud>: Send + Sync {
    /// Everything of `owner`'s deployment on this side, plus the prerequisites (VPC,
    /// VNet) it is built in: one list call per resource kind. Never mutates.
    async fn observe(&self, owner: &Owner) -> Result<C::Observed, EndpointError>;

    /// Starts `op` and returns at once; [`VpnEndpoint::poll`] says when it is done.
    async fn start(&self, op: &C::Op) -> Result<OpHandle, EndpointError>;

    /// Where a started operation stands. Never mutates.
    async fn poll(&self, handle: &OpHandle) -> Result<OpStatus, EndpointError>;

    /// This side's end of every tunnel of `owner`'s deployment. Never mutates.
    async fn tunnel_ends(&self, owner: &Owner) -> Result<Vec<Box<dyn Tunnel>>, EndpointError>;
}

/// One side's end of an IPsec tunnel, as that side's cloud reports it.
pub trait Tunnel: Send + Sync + fmt::Debug {
    fn cloud(&self) -> CloudName;
    /// This end's public (outside) IP.
    fn outside_ip(&self) -> Ipv4Addr;
    /// The IP this end expects the other end to come from.
    fn peer_ip(&self) -> Ipv4Addr;
    /// Azure: the gateway instance (ipConfiguration index). AWS: the tunnel index in
    /// its VPN connection (by outside IP).
    fn instance(&self) -> usize;
    /// The resource that holds this end (a VPN connection id, a Connection name).
    fn resource(&self) -> &str;
    fn inside_cidr(&self) -> Option<Ipv4Net>;
    fn psk(&self) -> Option<&Psk>;
    fn status(&self) -> &TunnelStatus;
    /// The IKE security association this end holds, when the cloud reports one (Azure's
    /// `getikesas`); `None` when there is none or the cloud does not say.
    fn ike_sa(&self) -> Option<IkeSa> {
        None
    }
    /// The BGP session over this tunnel, when the tunnel carries one (bgp-ha) and the
    /// cloud reports it (Azure's `getBgpPeerStatus` / `getLearnedRoutes`, AWS's
    /// `VgwTelemetry`).
    fn bgp(&self) -> Option<&BgpPeer> {
        None
    }
}

/// The BGP session over one tunnel, as one end's cloud reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct BgpPeer {
    /// The address this end speaks from (Azure's `localAddress`), when reported.
    pub local_address: Option<Ipv4Addr>,
    /// The neighbor's address (Azure's `neighbor`), when reported.
    pub peer_address: Option<Ipv4Addr>,
    /// The neighbor's ASN, when reported.
    pub peer_asn: Option<u32>,
    pub state: BgpState,
    /// The cloud's words (Azure's peer state, AWS's telemetry status message).
    pub reason: String,
    /// Routes received from the neighbor (Azure `routesReceived`, AWS
    /// `AcceptedRouteCount`).
    pub routes_received: Option<u32>,
    /// The prefixes learned from this neighbor, when the cloud lists them (Azure's
    /// `getLearnedRoutes` with this neighbor as `sourcePeer`); AWS does not.
    #[schemars(with = "Option<Vec<String>>")]
    pub learned: Option<Vec<IpNet>>,
}

/// Whether a BGP session is established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BgpState {
    Established,
    Down,
    Unknown,
}

/// An IKE security association's endpoints, as the end holding it reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct IkeSa {
    pub local: Ipv4Addr,
    pub remote: Ipv4Addr,
}

/// A [`Tunnel`] end with the IKE SA its cloud reported (wraps any other end).
#[derive(Debug)]
pub struct WithIkeSa<T> {
    pub end: T,
    pub sa: Option<IkeSa>,
}

impl<T: Tunnel> Tunnel for WithIkeSa<T> {
    fn cloud(&self) -> CloudName {
        self.end.cloud()
    }
    fn outside_ip(&self) -> Ipv4Addr {
        self.end.outside_ip()
    }
    fn peer_ip(&self) -> Ipv4Addr {
        self.end.peer_ip()
    }
    fn instance(&self) -> usize {
        self.end.instance()
    }
    fn resource(&self) -> &str {
        self.end.resource()
    }
    fn inside_cidr(&self) -> Option<Ipv4Net> {
        self.end.inside_cidr()
    }
    fn psk(&self) -> Option<&Psk> {
        self.end.psk()
    }
    fn status(&self) -> &TunnelStatus {
        self.end.status()
    }
    fn ike_sa(&self) -> Option<IkeSa> {
        self.sa
    }
    fn bgp(&self) -> Option<&BgpPeer> {
        self.end.bgp()
    }
}

/// A tunnel's status with the cloud's own reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TunnelStatus {
    pub state: TunnelState,
    /// The cloud's words (`VgwTelemetry.StatusMessage`, Azure's connection status).
    pub reason: String,
    pub last_change: Option<String>,
}

/// A plain [`Tunnel`] end that adapters can fill in.
#[derive(Debug, Clone)]
pub struct TunnelEnd {
    pub cloud: CloudName,
    pub outside_ip: Ipv4Addr,
    pub peer_ip: Ipv4Addr,
    pub instance: usize,
    pub resource: String,
    pub inside_cidr: Option<Ipv4Net>,
    pub psk: Option<Psk>,
    pub status: TunnelStatus,
    /// The BGP session over the tunnel, if it carries one.
    pub bgp: Option<BgpPeer>,
}

impl Tunnel for TunnelEnd {
    fn cloud(&self) -> CloudName {
        self.cloud
    }
    fn outside_ip(&self) -> Ipv4Addr {
        self.outside_ip
    }
    fn peer_ip(&self) -> Ipv4Addr {
        self.peer_ip
    }
    fn instance(&self) -> usize {
        self.instance
    }
    fn resource(&self) -> &str {
        &self.resource
    }
    fn inside_cidr(&self) -> Option<Ipv4Net> {
        self.inside_cidr
    }
    fn psk(&self) -> Option<&Psk> {
        self.psk.as_ref()
    }
    fn status(&self) -> &TunnelStatus {
        &self.status
    }
    fn bgp(&self) -> Option<&BgpPeer> {
        self.bgp.as_ref()
    }
}

/// Calls made through an endpoint, split by whether they can change the cloud.
#[derive(Debug, Default)]
pub struct CallCounter {
    reads: AtomicU64,
    mutations: AtomicU64,
}

/// A snapshot of a [`CallCounter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct CallCount {
    /// observe, poll and tunnel_ends calls.
    pub reads: u64,
    /// start calls (each one a mutating cloud request, except `Await`).
    pub mutations: u64,
}

impl CallCounter {
    pub fn snapshot(&self) -> CallCount {
        CallCount { reads: self.reads.load(Ordering::Relaxed), mutations: self.mutations.load(Ordering::Relaxed) }
    }
}

/// Decorator that counts and traces every call through an endpoint; written once for
/// every cloud and every adapter.
#[derive(Debug)]
pub struct Instrumented<E> {
    inner: E,
    counter: Arc<CallCounter>,
}

impl<E> Instrumented<E> {
    pub fn new(inner: E) -> Self {
        Self { inner, counter: Arc::default() }
    }
    pub fn counter(&self) -> Arc<CallCounter> {
        self.counter.clone()
    }
}

#[async_trait]
impl<C: Cloud, E: VpnEndpoint<C>> VpnEndpoint<C> for Instrumented<E> {
    async fn observe(&self, owner: &Owner) -> Result<C::Observed, EndpointError> {
        self.counter.reads.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(cloud = %C::NAME, deployment = %owner.deployment, "observe");
        self.inner.observe(owner).await
    }

    async fn start(&self, op: &C::Op) -> Result<OpHandle, EndpointError> {
        self.counter.mutations.fetch_add(1, Ordering::Relaxed);
        // Ops print their secrets redacted (Psk's Debug), so this is safe to log.
        tracing::debug!(cloud = %C::NAME, ?op, "start");
        let r = self.inner.start(op).await;
        if let Err(e) = &r {
            tracing::debug!(cloud = %C::NAME, error = %e, "start failed");
        }
        r
    }

    async fn poll(&self, handle: &OpHandle) -> Result<OpStatus, EndpointError> {
        self.counter.reads.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(cloud = %C::NAME, handle = %handle.0, "poll");
        self.inner.poll(handle).await
    }

    async fn tunnel_ends(&self, owner: &Owner) -> Result<Vec<Box<dyn Tunnel>>, EndpointError> {
        self.counter.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.tunnel_ends(owner).await
    }
}

#[async_trait]
impl<C: Cloud, E: VpnEndpoint<C> + ?Sized> VpnEndpoint<C> for Arc<E> {
    async fn observe(&self, owner: &Owner) -> Result<C::Observed, EndpointError> {
        (**self).observe(owner).await
    }
    async fn start(&self, op: &C::Op) -> Result<OpHandle, EndpointError> {
        (**self).start(op).await
    }
    async fn poll(&self, handle: &OpHandle) -> Result<OpStatus, EndpointError> {
        (**self).poll(handle).await
    }
    async fn tunnel_ends(&self, owner: &Owner) -> Result<Vec<Box<dyn Tunnel>>, EndpointError> {
        (**self).tunnel_ends(owner).await
    }
}
