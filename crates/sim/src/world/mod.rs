//! The simulated clouds' control planes: one serialisable [`World`] holding an AWS
//! account and an Azure subscription, with a virtual clock.
//!
//! The world's methods mimic the real API operations (`CreateCustomerGateway`,
//! `PUT .../connections/{name}`, …): they validate like the cloud, return the cloud's
//! error codes, and count every mutating call, failed ones included. Long operations
//! finish at `start + latency` of virtual time; [`World::advance_to`] settles them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::latency::LatencyTable;
use serde::{Deserialize, Serialize};
use vpnbridge_core::endpoint::ErrorKind;
use vpnbridge_core::model::{AttachmentState, AwsState, ProvisioningState};

pub mod aws;
pub mod azure;
mod dataplane;
mod ops;

pub use aws::*;
pub use azure::*;
pub use dataplane::{AWS_DPD_MS, DataPlane, LinkState, LinkStatus, PingTrace, SecurityGroup, SgRule};
pub use ops::Completion;
pub(crate) use ops::{AwsWait, AzureKind, AzureWait, Goal, Operation};

/// Both simulated clouds and the virtual clock.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct World {
    /// Virtual time, in milliseconds since the simulator's epoch (2025-01-01T00:00:00Z).
    pub now_ms: u64,
    /// Sequence behind every id the world allocates (deterministic).
    seq: u64,
    pub aws: AwsWorld,
    pub azure: AzureWorld,
    /// Started operations, by handle, so another process can poll them.
    pub(crate) operations: BTreeMap<String, Operation>,
    #[serde(skip)]
    pub(crate) latency: LatencyTable,
    /// Tunnel links that were up (for dead peer detection) and AWS maintenance windows.
    #[serde(default)]
    pub(crate) dataplane: DataPlane,
}

/// An error as the cloud's API returns it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// HTTP status (400 for EC2 client errors, ARM's 400/404/409…).
    pub status: u16,
    /// How a client should treat it.
    pub kind: ErrorKind,
    /// The cloud's error code.
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, kind: ErrorKind, code: &str, message: impl Into<String>) -> Self {
        Self { status, kind, code: code.to_owned(), message: message.into() }
    }
}

/// A state with a timed transition to the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase<S> {
    pub state: S,
    /// When the current (transitional) state ends.
    pub until: Option<u64>,
    /// When the current state began.
    pub since: u64,
}

/// States that move on by themselves once their time is up.
pub trait Lifecycle: Copy {
    /// The state a transitional state settles into (`None` for a stable state, or for
    /// an Azure delete, which removes the resource).
    fn next(self) -> Option<Self>;
}

impl Lifecycle for AwsState {
    fn next(self) -> Option<Self> {
        match self {
            AwsState::Pending => Some(AwsState::Available),
            AwsState::Deleting => Some(AwsState::Deleted),
            _ => None,
        }
    }
}

impl Lifecycle for AttachmentState {
    fn next(self) -> Option<Self> {
        match self {
            AttachmentState::Attaching => Some(AttachmentState::Attached),
            AttachmentState::Detaching => Some(AttachmentState::Detached),
            _ => None,
        }
    }
}

impl Lifecycle for ProvisioningState {
    fn next(self) -> Option<Self> {
        match self {
            ProvisioningState::Updating => Some(ProvisioningState::Succeeded),
            _ => None,
        }
    }
}

impl<S: Lifecycle> Phase<S> {
    /// A state that lasts until changed.
    pub fn stable(state: S, now: u64) -> Self {
        Self { state, until: None, since: now }
    }

    /// A transitional state that settles after `dur_ms`.
    pub fn timed(state: S, now: u64, dur_ms: u64) -> Self {
        Self { state, until: Some(now.saturating_add(dur_ms)), since: now }
    }

    pub fn go(&mut self, state: S, now: u64, dur_ms: u64) {
        *self = Self::timed(state, now, dur_ms);
    }

    /// Milliseconds left in the current transitional state.
    pub fn remaining(&self, now: u64) -> Option<u64> {
        self.until.map(|u| u.saturating_sub(now))
    }

    /// Whether the transitional state has run its time.
    pub fn elapsed(&self, now: u64) -> bool {
        self.until.is_some_and(|u| now >= u)
    }

    fn settle(&mut self, now: u64) {
        if let Some(until) = self.until
            && now >= until
            && let Some(next) = self.state.next()
        {
            *self = Self { state: next, until: None, since: until };
        }
    }
}

impl World {
    /// An empty world with the given latencies.
    pub fn new(latency: LatencyTable) -> Self {
        Self { latency, ..Self::default() }
    }

    pub fn latency(&self) -> &LatencyTable {
        &self.latency
    }

    pub(crate) fn set_latency(&mut self, latency: LatencyTable) {
        self.latency = latency;
    }

    /// Moves the clock forward to `now_ms` (never back) and settles every transition
    /// whose time has come: pending -> available, Updating -> Succeeded, attaching ->
    /// attached, deleting -> deleted (AWS) or gone (Azure).
    pub fn advance_to(&mut self, now_ms: u64) {
        // Changes made since the last move happened at the old time.
        self.refresh_links();
        self.now_ms = self.now_ms.max(now_ms);
        let now = self.now_ms;
        for v in self.aws.vpn_gateways.values_mut() {
            v.phase.settle(now);
            for a in &mut v.attachments {
                a.phase.settle(now);
            }
        }
        for c in self.aws.customer_gateways.values_mut() {
            c.phase.settle(now);
        }
        for v in self.aws.vpn_connections.values_mut() {
            v.phase.settle(now);
            v.settle_modifications(now);
            for r in &mut v.routes {
                r.phase.settle(now);
            }
            v.routes.retain(|r| r.phase.state != AwsState::Deleted);
        }
        self.azure.settle(now);
        self.refresh_links();
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// An EC2-style id: `prefix-` + 17 hex digits.
    pub(crate) fn ec2_id(&mut self, prefix: &str) -> String {
        let n = self.next_seq();
        format!("{prefix}-0{:016x}", splitmix64(n))
    }

    /// A GUID-shaped string.
    pub(crate) fn guid(&mut self) -> String {
        let a = splitmix64(self.next_seq());
        let b = splitmix64(a);
        format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xfff, (b >> 48) & 0xfff, b & 0xffff_ffff_ffff)
    }

    /// The virtual time `ms` as an ISO 8601 timestamp, as the clouds print times.
    pub fn timestamp(ms: u64) -> String {
        timestamp(ms)
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Unix seconds of the simulator's epoch, 2025-01-01T00:00:00Z.
const EPOCH_UNIX_SECS: u64 = 1_735_689_600;

fn timestamp(ms: u64) -> String {
    let secs = EPOCH_UNIX_SECS + ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem / 60 % 60, rem % 60, ms % 1000)
}

/// The n-th address of a pool starting at `base` (skipping .0 and .255 host bytes).
pub(crate) fn pool_ip(base: Ipv4Addr, n: u32) -> Ipv4Addr {
    let hosts = n % 250 + 4;
    let third = n / 250;
    let b = u32::from(base);
    Ipv4Addr::from(b + (third << 8) + hosts)
}

/// Serialises the simulated clouds' keys into the world file (and nowhere else): the
/// core [`Psk`] has no `Serialize` on purpose.
pub(crate) mod psk_serde {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use vpnbridge_core::secret::Psk;

    pub fn serialize<S: Serializer>(k: &Psk, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(k.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Psk, D::Error> {
        let text = String::deserialize(d)?;
        Psk::new(&text).map_err(|e| D::Error::custom(format!("pre-shared key in the world file {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0), "2025-01-01T00:00:00.000Z");
        assert_eq!(timestamp(45 * 60 * 1000 + 5), "2025-01-01T00:45:00.005Z");
        assert_eq!(timestamp(59 * 86_400_000), "2025-03-01T00:00:00.000Z");
    }

    #[test]
    fn ids_look_real() {
        let mut w = World::default();
        let id = w.ec2_id("vgw");
        assert_eq!(id.len(), "vgw-".len() + 17, "{id}");
        assert!(id[4..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, w.ec2_id("vgw"));
        let g = w.guid();
        assert_eq!(g.len(), 36, "{g}");
    }
}
