//! Which gateway instance each `tunnelConnectionStatus[]` entry of a Connection belongs
//! to.
//!
//! ARM documents `tunnelConnectionStatus[].tunnel` only as "Tunnel name." (the
//! `TunnelConnectionHealth` definition in `virtualNetworkGateway.json`, 2024-03-01; no
//! example of the spec shows an entry, and no Microsoft document we found gives its
//! format). So the attribution does not depend on the name. The evidence, strongest
//! first:
//!
//! 1. an instance's public IP appearing in the name (if ARM does name tunnels after
//!    their endpoints, this settles it);
//! 2. the IKE SAs of the Connection (`getikesas`): an instance with an SA whose
//!    `localEndpoint` is its public IP has a Connected tunnel, an instance without one
//!    (when the SAs were read) has not;
//! 3. nothing else. When the entries left could belong to either instance and they
//!    disagree, the end reads Unknown and its reason says so, instead of guessing.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use vpnbridge_core::endpoint::{CloudName, EndpointError, ErrorKind, IkeSa as CoreIkeSa, OpHandle, Tunnel, TunnelEnd, WithIkeSa};
use vpnbridge_core::model::{AzureScope, Owner};

use crate::AzureEndpoint;
use crate::arm::{self, Raw, RawCall, call_arm};
use crate::handle::{Handle, Kind, bad_handle, decode, encode};
use crate::observe::{Snapshot, same_id};
use crate::wire::{IkeSa, parse_ike_sas};

use vpnbridge_core::endpoint::TunnelStatus;
use vpnbridge_core::model::TunnelState;

use crate::wire::TunnelHealth;

/// What the IKE SAs say about one instance of a Connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SaEvidence {
    /// `getikesas` answered and holds an SA from this instance.
    Present,
    /// `getikesas` answered and holds none from this instance.
    Absent,
    /// `getikesas` was not read (failed, timed out, or not asked).
    Unknown,
}

/// One gateway instance of the Connection's gateway.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Instance {
    pub index: usize,
    pub ip: Ipv4Addr,
    pub sa: SaEvidence,
}

/// `connectionStatus` word -> tunnel state.
pub(crate) fn tunnel_state(word: Option<&str>) -> TunnelState {
    match word {
        Some("Connected") => TunnelState::Up,
        Some("NotConnected" | "Connecting") => TunnelState::Down,
        _ => TunnelState::Unknown,
    }
}

/// The instance IP (of `instance_ips`) a tunnel name contains, if any.
pub(crate) fn ip_in_name(tunnel: &str, instance_ips: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    tunnel.split(|c: char| !c.is_ascii_digit() && c != '.').filter_map(|p| p.parse::<Ipv4Addr>().ok()).find(|ip| instance_ips.contains(ip))
}

fn word(t: &TunnelHealth) -> &str {
    t.connection_status.as_deref().unwrap_or("Unknown")
}

fn fits(t: &TunnelHealth, sa: SaEvidence) -> bool {
    match sa {
        SaEvidence::Present => word(t) == "Connected",
        SaEvidence::Absent => word(t) != "Connected",
        SaEvidence::Unknown => true,
    }
}

/// Every way to give each of `instances` a distinct entry of `free` that fits its SA
/// evidence (instances are at most a handful: active-active has two).
fn assignments(instances: &[Instance], entries: &[&TunnelHealth], free: &[usize]) -> Vec<Vec<usize>> {
    let Some((first, rest)) = instances.split_first() else { return vec![Vec::new()] };
    let mut out = Vec::new();
    for (i, &e) in free.iter().enumerate() {
        if !fits(entries[e], first.sa) {
            continue;
        }
        let mut left = free.to_vec();
        left.remove(i);
        for mut tail in assignments(rest, entries, &left) {
            tail.insert(0, e);
            out.push(tail);
        }
    }
    out
}

fn attributed(t: &TunnelHealth, how: &str) -> TunnelStatus {
    TunnelStatus {
        state: tunnel_state(t.connection_status.as_deref()),
        reason: format!(
            "{} (tunnel {}, {how}; ingress {} B, egress {} B)",
            word(t),
            t.tunnel,
            t.ingress_bytes_transferred.unwrap_or(0),
            t.egress_bytes_transferred.unwrap_or(0)
        ),
        last_change: t.last_connection_established_utc_time.clone(),
    }
}

fn sa_words(sa: SaEvidence) -> &'static str {
    match sa {
        SaEvidence::Present => "it holds an IKE SA",
        SaEvidence::Absent => "it holds no IKE SA",
        SaEvidence::Unknown => "its IKE SAs could not be read",
    }
}

/// The status of each instance's end of one Connection (in the order of `instances`),
/// from the Connection's `tunnelConnectionStatus` entries and `connectionStatus`.
pub(crate) fn attribute(entries: &[TunnelHealth], connection_status: Option<&str>, instances: &[Instance]) -> Vec<TunnelStatus> {
    let ips: Vec<Ipv4Addr> = instances.iter().map(|i| i.ip).collect();
    let mut out: Vec<Option<TunnelStatus>> = vec![None; instances.len()];
    // 1. An instance IP in the name (only when exactly one entry names the instance).
    let mut taken = vec![false; entries.len()];
    for (slot, inst) in instances.iter().enumerate() {
        let named: Vec<usize> = (0..entries.len()).filter(|&e| ip_in_name(&entries[e].tunnel, &ips) == Some(inst.ip)).collect();
        if let [e] = named.as_slice() {
            taken[*e] = true;
            out[slot] = Some(attributed(&entries[*e], "named after this instance's IP"));
        }
    }
    // 2. The rest by the IKE SAs: every assignment of distinct entries that fits.
    let open: Vec<usize> = (0..instances.len()).filter(|&s| out[s].is_none()).collect();
    let refs: Vec<&TunnelHealth> = entries.iter().collect();
    let free: Vec<usize> = (0..entries.len()).filter(|&e| !taken[e]).collect();
    let open_instances: Vec<Instance> = open.iter().map(|&s| instances[s]).collect();
    let ways = assignments(&open_instances, &refs, &free);
    for (n, &slot) in open.iter().enumerate() {
        let inst = instances[slot];
        // The entries this instance could hold: in some full assignment, or (when
        // there is none, e.g. fewer entries than instances) any free entry that fits.
        let mut could: Vec<usize> = ways.iter().map(|w| w[n]).collect();
        if ways.is_empty() {
            could = free.iter().copied().filter(|&e| fits(&entries[e], inst.sa)).collect();
        }
        could.sort_unstable();
        could.dedup();
        let status = match could.as_slice() {
            [] if entries.is_empty() => TunnelStatus {
                state: TunnelState::Unknown,
                reason: format!(
                    "no tunnelConnectionStatus for instance {}; connectionStatus {}",
                    inst.index,
                    connection_status.unwrap_or("Unknown")
                ),
                last_change: None,
            },
            [] => TunnelStatus {
                state: TunnelState::Unknown,
                reason: format!(
                    "no tunnelConnectionStatus entry fits instance {} ({}): {}",
                    inst.index,
                    sa_words(inst.sa),
                    listing(entries, &free)
                ),
                last_change: None,
            },
            [e] if !ways.is_empty() => {
                let how = match inst.sa {
                    SaEvidence::Present => "attributed by this instance's IKE SA",
                    SaEvidence::Absent => "attributed by this instance having no IKE SA",
                    SaEvidence::Unknown => "the only entry left for this instance",
                };
                attributed(&entries[*e], how)
            }
            // Fewer entries than instances: an entry that fits may be another
            // instance's, so only the IKE SA evidence can give the state.
            [e] if inst.sa != SaEvidence::Unknown => TunnelStatus {
                state: tunnel_state(Some(word(&entries[*e]))),
                reason: format!(
                    "{} (tunnel {} fits this instance, {}, but there are fewer entries than instances)",
                    word(&entries[*e]),
                    entries[*e].tunnel,
                    sa_words(inst.sa)
                ),
                last_change: None,
            },
            [e] => TunnelStatus {
                state: TunnelState::Unknown,
                reason: format!(
                    "cannot tell whether tunnel {} ({}) is instance {}'s: fewer entries than instances and {}",
                    entries[*e].tunnel,
                    word(&entries[*e]),
                    inst.index,
                    sa_words(inst.sa)
                ),
                last_change: None,
            },
            many => {
                let first = word(&entries[many[0]]);
                if many.iter().all(|&e| word(&entries[e]) == first) {
                    TunnelStatus {
                        state: tunnel_state(Some(first)),
                        reason: format!(
                            "{first} (one of {}: the entries cannot be told apart by name or IKE SA)",
                            many.iter().map(|&e| format!("tunnel {}", entries[e].tunnel)).collect::<Vec<_>>().join(", ")
                        ),
                        last_change: None,
                    }
                } else {
                    TunnelStatus {
                        state: TunnelState::Unknown,
                        reason: format!(
                            "cannot tell which tunnelConnectionStatus entry is instance {}'s ({}): {}",
                            inst.index,
                            sa_words(inst.sa),
                            listing(entries, many)
                        ),
                        last_change: None,
                    }
                }
            }
        };
        out[slot] = Some(status);
    }
    out.into_iter().map(|s| s.expect("every instance has a status")).collect()
}

fn listing(entries: &[TunnelHealth], which: &[usize]) -> String {
    which.iter().map(|&e| format!("tunnel {} {}", entries[e].tunnel, word(&entries[e]))).collect::<Vec<_>>().join(", ")
}

// ---------------------------------------------------------------------------
// Reading the tunnel ends: the IKE SAs (`getikesas`) and each instance's end
// ---------------------------------------------------------------------------

impl AzureEndpoint {
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
    pub(crate) async fn poll_ike_sas_once(&self, handle: &OpHandle) -> Result<(Option<Vec<IkeSa>>, Option<Duration>), EndpointError> {
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
    pub(crate) async fn ike_sas_bounded(&self, name: &str) -> Option<Vec<IkeSa>> {
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

impl Snapshot {
    /// The names of our Connections (whose IKE SAs `tunnel_ends` reads).
    pub(crate) fn our_connection_names(&self, scope: AzureScope<'_>, owner: &Owner) -> Vec<String> {
        let ours = self.ours(scope, owner);
        self.connections.iter().filter(|c| ours(&c.id)).map(|c| c.name.clone()).collect()
    }

    /// Each instance's end of each of our Connections. `sas` holds the IKE SAs of
    /// the Connections whose `getikesas` answered (by lower-cased name); each end gets
    /// the SA whose local endpoint is its instance's public IP, and its status from the
    /// `tunnelConnectionStatus` entry attributed to it (see [`tunnels`]).
    pub(crate) fn tunnel_ends(&self, scope: AzureScope<'_>, owner: &Owner, sas: &HashMap<String, Vec<IkeSa>>) -> Vec<Box<dyn Tunnel>> {
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
            let evidence: Vec<(Instance, Option<CoreIkeSa>)> = instances
                .iter()
                .map(|&(index, ip)| {
                    let sa = read.and_then(|sas| sa_of_instance(sas, ip));
                    let seen = match (read, &sa) {
                        (None, _) => SaEvidence::Unknown,
                        (Some(_), Some(_)) => SaEvidence::Present,
                        (Some(_), None) => SaEvidence::Absent,
                    };
                    (Instance { index, ip, sa: seen }, sa)
                })
                .collect();
            let inst: Vec<Instance> = evidence.iter().map(|(i, _)| *i).collect();
            let statuses = attribute(&c.properties.tunnel_connection_status, c.properties.connection_status.as_deref(), &inst);
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
                    bgp: None,
                };
                out.push(Box::new(WithIkeSa { end, sa }));
            }
        }
        out
    }
}

/// The SA held by the instance whose public IP is `ip` (its `localEndpoint`).
pub(crate) fn sa_of_instance(sas: &[IkeSa], ip: Ipv4Addr) -> Option<CoreIkeSa> {
    sas.iter().find_map(|s| {
        let local: Ipv4Addr = s.local_endpoint.as_deref()?.trim().parse().ok()?;
        let remote: Ipv4Addr = s.remote_endpoint.as_deref()?.trim().parse().ok()?;
        (local == ip).then_some(CoreIkeSa { local, remote })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, status: &str) -> TunnelHealth {
        TunnelHealth {
            tunnel: name.to_owned(),
            connection_status: Some(status.to_owned()),
            ingress_bytes_transferred: Some(1),
            egress_bytes_transferred: Some(2),
            last_connection_established_utc_time: None,
        }
    }

    fn inst(index: usize, last: u8, sa: SaEvidence) -> Instance {
        Instance { index, ip: Ipv4Addr::new(20, 0, 0, last), sa }
    }

    #[test]
    fn the_ike_sas_attribute_entries_whatever_their_names_and_order() {
        let entries = [entry("tunnel-b", "NotConnected"), entry("tunnel-a", "Connected")];
        let ends = attribute(&entries, Some("Connected"), &[inst(0, 1, SaEvidence::Present), inst(1, 2, SaEvidence::Absent)]);
        assert_eq!(ends[0].state, TunnelState::Up);
        assert!(ends[0].reason.contains("tunnel tunnel-a") && ends[0].reason.contains("IKE SA"), "{}", ends[0].reason);
        assert_eq!(ends[1].state, TunnelState::Down);
        assert!(ends[1].reason.contains("tunnel tunnel-b"), "{}", ends[1].reason);
    }

    #[test]
    fn an_ip_in_the_name_attributes_an_entry_as_an_extra() {
        let entries = [entry("3.0.0.5_20.0.0.2", "Connected"), entry("3.0.0.5_20.0.0.1", "NotConnected")];
        let ends = attribute(&entries, None, &[inst(0, 1, SaEvidence::Unknown), inst(1, 2, SaEvidence::Unknown)]);
        assert_eq!((ends[0].state, ends[1].state), (TunnelState::Down, TunnelState::Up));
        assert!(ends[1].reason.contains("named after"), "{}", ends[1].reason);
    }

    #[test]
    fn without_evidence_disagreeing_entries_are_not_guessed() {
        let entries = [entry("t1", "Connected"), entry("t2", "NotConnected")];
        let ends = attribute(&entries, Some("Connected"), &[inst(0, 1, SaEvidence::Unknown), inst(1, 2, SaEvidence::Unknown)]);
        for e in &ends {
            assert_eq!(e.state, TunnelState::Unknown);
            assert!(e.reason.starts_with("cannot tell which"), "{}", e.reason);
        }
    }

    #[test]
    fn entries_that_agree_give_the_state_without_a_name() {
        let entries = [entry("t1", "Connected"), entry("t2", "Connected")];
        let ends = attribute(&entries, Some("Connected"), &[inst(0, 1, SaEvidence::Present), inst(1, 2, SaEvidence::Present)]);
        for e in &ends {
            assert_eq!(e.state, TunnelState::Up);
            assert!(e.reason.contains("one of tunnel t1, tunnel t2"), "{}", e.reason);
        }
    }

    #[test]
    fn contradicting_or_missing_entries_say_so() {
        // An SA on an instance, but no Connected entry.
        let entries = [entry("t1", "NotConnected"), entry("t2", "NotConnected")];
        let ends = attribute(&entries, Some("NotConnected"), &[inst(0, 1, SaEvidence::Present), inst(1, 2, SaEvidence::Absent)]);
        assert_eq!(ends[0].state, TunnelState::Unknown);
        assert!(ends[0].reason.contains("no tunnelConnectionStatus entry fits instance 0"), "{}", ends[0].reason);
        assert_eq!(ends[1].state, TunnelState::Down);
        // Fewer entries than instances, no SA read: not guessed.
        let ends = attribute(&[entry("t1", "Connected")], None, &[inst(0, 1, SaEvidence::Unknown), inst(1, 2, SaEvidence::Unknown)]);
        assert!(ends.iter().all(|e| e.state == TunnelState::Unknown), "{ends:?}");
        // No entries at all.
        let ends = attribute(&[], Some("Unknown"), &[inst(0, 1, SaEvidence::Unknown)]);
        assert_eq!(ends[0].state, TunnelState::Unknown);
        assert!(ends[0].reason.starts_with("no tunnelConnectionStatus for instance 0"), "{}", ends[0].reason);
    }

    #[test]
    fn names_find_an_instance_ip() {
        let ips = [Ipv4Addr::new(20, 0, 0, 1), Ipv4Addr::new(20, 0, 0, 2)];
        assert_eq!(ip_in_name("3.0.0.5_20.0.0.2", &ips), Some(ips[1]));
        assert_eq!(ip_in_name("Tunnel0", &ips), None);
        assert_eq!(ip_in_name("tunnel-1a2b3c4d", &ips), None);
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
