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
mod bgp;
mod dataplane;
mod ops;

pub use aws::*;
pub use azure::*;
pub use bgp::BgpEnd;
pub use dataplane::{AWS_DPD_MS, DataPlane, LinkState, LinkStatus, PingTrace, ProbeHost, SecurityGroup, SgRule};
pub(crate) use ops::{AwsWait, AzureWait, Operation};
pub use ops::{AzureKind, Completion, Goal};

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
        self.seq = self.seq.saturating_add(1);
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

/// Why a world file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorldFileError {
    /// Not JSON, or not the world's shape (the parser's message).
    Json(String),
    /// The world's shape, with values the simulator cannot work with.
    Invalid(Vec<String>),
}

/// The largest number a world file may hold: every number in it is a count, an id
/// sequence or a virtual time in milliseconds, and 2^53 - 1 (JSON's largest exact
/// integer, about 285,000 years of virtual time) leaves room for any sum of two of
/// them and a latency without overflow.
pub const MAX_WORLD_NUMBER: u64 = (1 << 53) - 1;

/// The most addresses an address pool (the Azure public IPs, the AWS tunnel outside
/// IPs) may have handed out: far more than any world uses, and small enough that the
/// next address never leaves the pool's /8.
pub const MAX_POOL_ALLOCATIONS: u64 = 1 << 24;

/// Problems reported about one file, at most (then a count of the rest).
const MAX_PROBLEMS: usize = 10;

impl World {
    /// Reads a world file: JSON of the world's shape whose values pass [`World::check`].
    pub fn from_file(bytes: &[u8]) -> Result<World, WorldFileError> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| WorldFileError::Json(e.to_string()))?;
        let mut problems = Vec::new();
        numbers_in_range(&value, &mut String::new(), &mut problems);
        // The pools' counters are private to their clouds; they are checked here, by name.
        for (cloud, counter) in [("aws", "next_outside_ip"), ("azure", "next_public_ip")] {
            if let Some(n) = value.get(cloud).and_then(|c| c.get(counter)).and_then(serde_json::Value::as_u64)
                && n > MAX_POOL_ALLOCATIONS
            {
                problems.push(format!("{cloud}.{counter} is {n}, more than the {MAX_POOL_ALLOCATIONS} addresses its pool can hand out"));
            }
        }
        if !problems.is_empty() {
            return Err(WorldFileError::Invalid(capped(problems)));
        }
        let world: World = serde_json::from_value(value).map_err(|e| WorldFileError::Json(e.to_string()))?;
        let problems = world.check();
        if problems.is_empty() { Ok(world) } else { Err(WorldFileError::Invalid(capped(problems))) }
    }

    /// What is inconsistent in a world read from a file: every resource is filed
    /// under its own id (a hand edit that moved one would make lookups and the
    /// resource disagree), and the clock and every time are within
    /// [`MAX_WORLD_NUMBER`]. Empty for a world the simulator wrote.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.now_ms > MAX_WORLD_NUMBER {
            problems.push(format!("now_ms is {}, more than {MAX_WORLD_NUMBER}", self.now_ms));
        }
        if self.seq > MAX_WORLD_NUMBER {
            problems.push(format!("seq is {}, more than {MAX_WORLD_NUMBER}", self.seq));
        }
        let mut filed = |kind: &str, pairs: &mut dyn Iterator<Item = (&String, &String)>| {
            for (key, id) in pairs {
                if key != id {
                    problems.push(format!("{kind} {key:?} holds the resource {id:?}"));
                }
            }
        };
        let a = &self.aws;
        filed("aws.vpcs", &mut a.vpcs.iter().map(|(k, v)| (k, &v.id)));
        filed("aws.route_tables", &mut a.route_tables.iter().map(|(k, v)| (k, &v.id)));
        filed("aws.vpn_gateways", &mut a.vpn_gateways.iter().map(|(k, v)| (k, &v.id)));
        filed("aws.customer_gateways", &mut a.customer_gateways.iter().map(|(k, v)| (k, &v.id)));
        filed("aws.vpn_connections", &mut a.vpn_connections.iter().map(|(k, v)| (k, &v.id)));
        filed("aws.security_groups", &mut a.security_groups.iter().map(|(k, v)| (k, &v.id)));
        let z = &self.azure;
        filed("azure.virtual_networks", &mut z.virtual_networks.iter().map(|(k, v)| (k, &v.id)));
        filed("azure.public_ips", &mut z.public_ips.iter().map(|(k, v)| (k, &v.id)));
        filed("azure.gateways", &mut z.gateways.iter().map(|(k, v)| (k, &v.id)));
        filed("azure.local_network_gateways", &mut z.local_network_gateways.iter().map(|(k, v)| (k, &v.id)));
        filed("azure.connections", &mut z.connections.iter().map(|(k, v)| (k, &v.id)));
        problems
    }
}

/// Every number of `value` is a whole number in 0..=[`MAX_WORLD_NUMBER`]; `path` is
/// where `value` is, for the message.
fn numbers_in_range(value: &serde_json::Value, path: &mut String, problems: &mut Vec<String>) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.as_u64().is_none_or(|n| n > MAX_WORLD_NUMBER) => {
            let at = if path.is_empty() { "a number" } else { path.as_str() };
            problems.push(format!("{at} is {n}, not a whole number from 0 to {MAX_WORLD_NUMBER}"));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                numbers_in_range(item, path, problems);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                let len = path.len();
                if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                } else {
                    path.push_str(&format!("[{k:?}]"));
                }
                numbers_in_range(item, path, problems);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn capped(mut problems: Vec<String>) -> Vec<String> {
    if problems.len() > MAX_PROBLEMS {
        let more = problems.len() - MAX_PROBLEMS;
        problems.truncate(MAX_PROBLEMS);
        problems.push(format!("and {more} more"));
    }
    problems
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
    let secs = EPOCH_UNIX_SECS.saturating_add(ms / 1000);
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
    // Counters are bounded on load (MAX_POOL_ALLOCATIONS); wrap rather than panic.
    Ipv4Addr::from(b.wrapping_add(third.wrapping_shl(8)).wrapping_add(hosts))
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

    fn file_with(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut w = World::default();
        w.ec2_id("vgw");
        let mut v = serde_json::to_value(&w).unwrap();
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn world_files_are_checked_on_load() {
        let ok = World::from_file(&file_with(|_| {})).unwrap();
        assert!(ok.check().is_empty());
        // A clock near 2^64 used to overflow on the first clock move.
        let e = World::from_file(&file_with(|v| v["now_ms"] = serde_json::json!(u64::MAX - 1000))).unwrap_err();
        let WorldFileError::Invalid(problems) = e else { panic!("{e:?}") };
        assert!(problems[0].starts_with("now_ms is 18446744073709550615"), "{problems:?}");
        let e = World::from_file(&file_with(|v| v["aws"]["next_outside_ip"] = serde_json::json!(u32::MAX))).unwrap_err();
        assert!(matches!(&e, WorldFileError::Invalid(p) if p[0].contains("aws.next_outside_ip")), "{e:?}");
        // Negative and fractional numbers, deep inside, are named by their place.
        let e = World::from_file(&file_with(|v| v["operations"] = serde_json::json!({"op-1": {"Aws": {"started_ms": -1}}}))).unwrap_err();
        assert!(matches!(&e, WorldFileError::Invalid(p) if p[0].starts_with("operations[\"op-1\"].Aws.started_ms is -1")), "{e:?}");
        assert!(matches!(World::from_file(b"{"), Err(WorldFileError::Json(_))));
        // Many problems: ten, then a count.
        let e = World::from_file(&file_with(|v| {
            v["dataplane"]["maintenance"] = serde_json::json!(
                (0..30).map(|i| (format!("10.0.0.{i}"), serde_json::json!([u64::MAX, u64::MAX]))).collect::<serde_json::Map<_, _>>()
            )
        }))
        .unwrap_err();
        assert!(matches!(&e, WorldFileError::Invalid(p) if p.len() == 11 && p[10] == "and 50 more"), "{e:?}");
    }

    #[test]
    fn a_resource_filed_under_another_id_is_inconsistent() {
        let mut w = World::default();
        w.aws.vpcs.insert("vpc-1".into(), AwsVpc { id: "vpc-2".into(), region: "eu-west-1".into(), cidrs: vec![] });
        assert_eq!(w.check(), vec!["aws.vpcs \"vpc-1\" holds the resource \"vpc-2\"".to_owned()]);
    }

    #[test]
    fn pool_addresses_never_overflow() {
        let _ = pool_ip(Ipv4Addr::new(20, 210, 0, 0), u32::MAX);
        assert_eq!(pool_ip(Ipv4Addr::new(20, 210, 0, 0), 0), Ipv4Addr::new(20, 210, 0, 4));
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
