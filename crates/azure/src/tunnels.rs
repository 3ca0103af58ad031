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

use ipnet::IpNet;
use vpnbridge_core::endpoint::{
    BgpPeer, BgpState, CloudName, EndpointError, ErrorKind, IkeSa as CoreIkeSa, OpHandle, Tunnel, TunnelEnd, WithIkeSa,
};
use vpnbridge_core::model::{AzureScope, Owner};

use crate::AzureEndpoint;
use crate::arm::{self, Raw, RawCall, call_arm};
use crate::handle::{Handle, Kind, bad_handle, decode, encode};
use crate::observe::{Snapshot, same_id};
use crate::wire::{self, IkeSa, parse_ike_sas};

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
// Reading the tunnel ends: the IKE SAs (`getikesas`), the gateway's BGP state
// (`getBgpPeerStatus`, `getLearnedRoutes`) and each instance's end
// ---------------------------------------------------------------------------

/// A read of the gateway's BGP state: POST actions whose result comes at their
/// `Location` (final-state-via `location` in the spec, 2024-03-01).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayRead {
    /// `POST virtualNetworkGateways/{n}/getBgpPeerStatus`: every BGP peer's session.
    BgpPeerStatus,
    /// `POST virtualNetworkGateways/{n}/getLearnedRoutes`: the routes the gateway knows.
    LearnedRoutes,
}

/// What `tunnel_ends` read of the gateway's BGP state, each part or why it could not.
#[derive(Debug, Clone)]
pub(crate) struct BgpReading {
    pub peers: Result<Vec<wire::BgpPeerStatus>, String>,
    pub routes: Result<Vec<wire::GatewayRoute>, String>,
}

impl AzureEndpoint {
    /// The handle of a POST action's first answer: its `Location` to poll, or the body
    /// of a 200. A 202 without `Location` (the spec's BGP examples show only
    /// `Azure-AsyncOperation`) is not followed.
    fn action_handle(raw: Raw, kind: Kind, name: &str, what: &str) -> Result<OpHandle, EndpointError> {
        match raw.header("location") {
            Some(url) => Ok(encode(&Handle::Location { url, kind, name: name.to_owned() })),
            None if raw.status == 200 => Ok(encode(&Handle::Result { body: String::from_utf8_lossy(&raw.body).into_owned() })),
            None => Err(EndpointError::new(
                CloudName::Azure,
                ErrorKind::Permanent,
                "UnexpectedResponse",
                format!("ARM answered {what} with HTTP {} and no Location header: there is no result to read", raw.status),
            )),
        }
    }

    /// Starts `getikesas` on Connection `name` (a POST answered 202 + `Location`).
    pub async fn start_get_ike_sas(&self, name: &str) -> Result<OpHandle, EndpointError> {
        let c = &self.arm.client;
        let r = call_arm(
            true,
            c.virtual_network_gateway_connections_client().get_ike_sas(&self.resource_group, name, &self.subscription).send(),
        )
        .await?;
        Self::action_handle(Raw::read(r.into_raw_response()).await?, Kind::Connection, name, "getikesas")
    }

    /// Starts a read of gateway `gateway`'s BGP state (a POST answered 202 +
    /// `Location`); poll it with [`AzureEndpoint::poll_gateway_read`]. A read, though
    /// ARM's request log counts the POST as a write.
    pub async fn start_gateway_read(&self, gateway: &str, read: GatewayRead) -> Result<OpHandle, EndpointError> {
        let c = &self.arm.client;
        let (rg, sub) = (&self.resource_group, &self.subscription);
        let raw = match read {
            GatewayRead::BgpPeerStatus => {
                call_arm(true, c.virtual_network_gateways_client().get_bgp_peer_status(rg, gateway, sub).send()).await?.into_raw_response()
            }
            GatewayRead::LearnedRoutes => {
                call_arm(true, c.virtual_network_gateways_client().get_learned_routes(rg, gateway, sub).send()).await?.into_raw_response()
            }
        };
        let what = match read {
            GatewayRead::BgpPeerStatus => "getBgpPeerStatus",
            GatewayRead::LearnedRoutes => "getLearnedRoutes",
        };
        Self::action_handle(Raw::read(raw).await?, Kind::VpnGateway, gateway, what)
    }

    /// Polls a [`AzureEndpoint::start_get_ike_sas`] handle: `None` while running.
    pub async fn poll_ike_sas(&self, handle: &OpHandle) -> Result<Option<Vec<IkeSa>>, EndpointError> {
        match self.poll_action_once(handle).await?.0 {
            Some(body) => parse_ike_sas(&body).map(Some).map_err(|e| unreadable("the IKE SAs", &e)),
            None => Ok(None),
        }
    }

    /// Polls a [`AzureEndpoint::start_gateway_read`] handle of `getBgpPeerStatus`:
    /// `None` while running, then the JSON of the result (`{value: [...]}`).
    pub async fn poll_gateway_read(&self, handle: &OpHandle) -> Result<Option<serde_json::Value>, EndpointError> {
        match self.poll_action_once(handle).await?.0 {
            Some(body) => serde_json::from_slice(&body).map(Some).map_err(|e| unreadable("the gateway's BGP state", &e)),
            None => Ok(None),
        }
    }

    /// One poll of a POST action's handle: its result body once there (`None` while
    /// ARM answers 202), with ARM's `Retry-After`.
    pub(crate) async fn poll_action_once(&self, handle: &OpHandle) -> Result<(Option<Vec<u8>>, Option<Duration>), EndpointError> {
        match decode(handle)? {
            Handle::Result { body } => Ok((Some(body.into_bytes()), None)),
            Handle::Location { url, .. } => {
                let raw = self.arm.get(RawCall::OperationResult, &url).await?;
                if raw.status == 202 {
                    return Ok((None, arm::retry_after(&raw.headers)));
                }
                Ok((Some(raw.body.to_vec()), None))
            }
            _ => Err(bad_handle("not a handle of a POST action")),
        }
    }

    /// A POST action run to its result for `tunnel_ends`, best effort: start it and
    /// poll it (honouring `Retry-After`, capped) for at most [`IKE_SA_DEADLINE`]. An
    /// error or the deadline gives the reason instead. This is a read for display, not
    /// an operation of the plan, so the bound lives here.
    async fn action_bounded(
        &self,
        what: &str,
        start: impl std::future::Future<Output = Result<OpHandle, EndpointError>>,
    ) -> Result<Vec<u8>, String> {
        let read = async {
            let h = start.await?;
            loop {
                let (body, retry_after) = self.poll_action_once(&h).await?;
                if let Some(body) = body {
                    return Ok::<_, EndpointError>(body);
                }
                let wait = retry_after.unwrap_or(IKE_SA_POLL_DEFAULT).clamp(IKE_SA_POLL_MIN, IKE_SA_POLL_MAX);
                tokio::time::sleep(wait).await;
            }
        };
        match tokio::time::timeout(IKE_SA_DEADLINE, read).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(e)) => Err(format!("{what} could not be read: {e}")),
            Err(_) => Err(format!("{what} did not answer within {} s", IKE_SA_DEADLINE.as_secs())),
        }
    }

    /// A Connection's IKE SAs for `tunnel_ends`, best effort ([`Self::action_bounded`]):
    /// any error or the deadline gives `None`, and the ends are reported without SAs.
    pub(crate) async fn ike_sas_bounded(&self, name: &str) -> Option<Vec<IkeSa>> {
        let body = self.action_bounded("getikesas", self.start_get_ike_sas(name)).await.ok()?;
        parse_ike_sas(&body).ok()
    }

    /// The gateway's BGP state for `tunnel_ends`: both reads at once, each best effort
    /// ([`Self::action_bounded`]); a part that fails is kept as the reason.
    pub(crate) async fn bgp_reading(&self, gateway: &str) -> BgpReading {
        fn value<T: serde::de::DeserializeOwned>(what: &str, body: Result<Vec<u8>, String>) -> Result<Vec<T>, String> {
            let body = body?;
            serde_json::from_slice::<wire::List<T>>(&body).map(|l| l.value).map_err(|e| format!("{what}'s result cannot be read: {e}"))
        }
        let (peers, routes) = tokio::join!(
            self.action_bounded("getBgpPeerStatus", self.start_gateway_read(gateway, GatewayRead::BgpPeerStatus)),
            self.action_bounded("getLearnedRoutes", self.start_gateway_read(gateway, GatewayRead::LearnedRoutes)),
        );
        BgpReading { peers: value("getBgpPeerStatus", peers), routes: value("getLearnedRoutes", routes) }
    }
}

fn unreadable(what: &str, e: &serde_json::Error) -> EndpointError {
    EndpointError::new(CloudName::Azure, ErrorKind::Permanent, "UnexpectedResponse", format!("cannot read {what}: {e}"))
}

/// How long `tunnel_ends` waits for one Connection's `getikesas`, and for each of the
/// gateway's BGP reads (they all run in parallel).
pub const IKE_SA_DEADLINE: Duration = Duration::from_secs(30);
const IKE_SA_POLL_DEFAULT: Duration = Duration::from_secs(2);
const IKE_SA_POLL_MIN: Duration = Duration::from_millis(100);
const IKE_SA_POLL_MAX: Duration = Duration::from_secs(10);

fn ip(s: Option<&str>) -> Option<Ipv4Addr> {
    s?.trim().parse().ok()
}

/// Instance `k`'s BGP addresses on Connection `c`: the one it speaks from (the
/// Connection's `gatewayCustomBgpIpAddresses` entry for its ipConfiguration, else its
/// first default address), and all it may be reported under (that one and its default
/// addresses: live `getBgpPeerStatus` answers have been seen to give the default
/// address as `localAddress` of an APIPA session).
fn instance_addresses(gw: &wire::Gateway, c: &wire::Connection, k: usize) -> (Option<Ipv4Addr>, Vec<Ipv4Addr>) {
    let Some(cfg) = gw.properties.ip_configurations.get(k) else { return (None, Vec::new()) };
    let custom = c
        .properties
        .gateway_custom_bgp_ip_addresses
        .iter()
        .find(|a| same_id(&a.ip_configuration_id, &cfg.id))
        .and_then(|a| ip(Some(&a.custom_bgp_ip_address)));
    let defaults: Vec<Ipv4Addr> = gw
        .properties
        .bgp_settings
        .iter()
        .flat_map(|b| &b.bgp_peering_addresses)
        .filter(|p| p.ipconfiguration_id.as_deref().is_some_and(|id| same_id(id, &cfg.id)))
        .flat_map(|p| p.default_bgp_ip_addresses.iter().filter_map(|a| ip(Some(a))))
        .collect();
    let speaks = custom.or_else(|| defaults.first().copied());
    (speaks, speaks.into_iter().chain(defaults).collect())
}

/// The BGP session of Connection `c` from gateway instance `k`, from the gateway's
/// reads: the `getBgpPeerStatus` entry whose `neighbor` is the LNG's
/// `bgpSettings.bgpPeeringAddress` and whose `localAddress` is the instance's (the
/// address it speaks from first, then its default ones), and the `EBgp` routes of
/// `getLearnedRoutes` from that neighbor to that instance. `None` when the Connection
/// does not enable BGP; a session that cannot be read is `Unknown`, with the reason.
pub(crate) fn bgp_peer(
    gw: &wire::Gateway,
    c: &wire::Connection,
    lng: Option<&wire::Lng>,
    k: usize,
    reading: Option<&BgpReading>,
) -> Option<BgpPeer> {
    if !c.properties.enable_bgp {
        return None;
    }
    let settings = lng.and_then(|l| l.properties.bgp_settings.as_ref());
    let neighbor = settings.and_then(|b| ip(b.bgp_peering_address.as_deref()));
    let lng_asn = settings.and_then(|b| b.asn).and_then(|a| u32::try_from(a).ok());
    let (speaks, addresses) = instance_addresses(gw, c, k);
    let unknown = |reason: String| BgpPeer {
        local_address: speaks,
        peer_address: neighbor,
        peer_asn: lng_asn,
        state: BgpState::Unknown,
        reason,
        routes_received: None,
        learned: None,
    };
    let Some(neighbor) = neighbor else {
        let name = lng.map_or("(not found)", |l| l.name.as_str());
        return Some(unknown(format!("local network gateway {name} has no BGP peer (bgpSettings.bgpPeeringAddress)")));
    };
    let Some(reading) = reading else {
        return Some(unknown(format!("gateway {} does not have BGP enabled (enableBgp is off)", gw.name)));
    };
    let peers = match &reading.peers {
        Ok(p) => p,
        Err(why) => return Some(unknown(why.clone())),
    };
    let with_neighbor = || peers.iter().filter(|p| ip(p.neighbor.as_deref()) == Some(neighbor));
    let Some(entry) = with_neighbor()
        .find(|p| ip(p.local_address.as_deref()).is_some_and(|a| Some(a) == speaks))
        .or_else(|| with_neighbor().find(|p| ip(p.local_address.as_deref()).is_some_and(|a| addresses.contains(&a))))
    else {
        let from = addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(" or ");
        return Some(unknown(format!("getBgpPeerStatus lists no session with {neighbor} from instance {k} ({from})")));
    };
    let word = entry.state.as_deref().unwrap_or("Unknown");
    let state = match word {
        w if w.eq_ignore_ascii_case("Connected") => BgpState::Established,
        w if w.eq_ignore_ascii_case("Unknown") => BgpState::Unknown,
        _ => BgpState::Down,
    };
    let local = ip(entry.local_address.as_deref()).or(speaks);
    let mine = |r: &&wire::GatewayRoute| {
        r.origin.as_deref().is_some_and(|o| o.eq_ignore_ascii_case("EBgp"))
            && ip(r.source_peer.as_deref()) == Some(neighbor)
            && ip(r.local_address.as_deref()).is_some_and(|a| addresses.contains(&a))
    };
    let learned = reading.routes.as_ref().ok().map(|routes| {
        let mut nets: Vec<IpNet> = routes.iter().filter(mine).filter_map(|r| r.network.as_deref()?.trim().parse().ok()).collect();
        nets.sort();
        nets.dedup();
        nets
    });
    let routes_received = entry.routes_received.and_then(|n| u32::try_from(n).ok());
    let peer_asn = entry.asn.and_then(|a| u32::try_from(a).ok()).or(lng_asn);
    let mut reason = format!(
        "{word} (neighbor {neighbor}{}, from {}",
        peer_asn.map(|a| format!(" AS {a}")).unwrap_or_default(),
        local.map_or_else(|| "?".to_owned(), |a| a.to_string())
    );
    if let Some(n) = routes_received {
        reason.push_str(&format!("; {n} routes received"));
    }
    if let Some(d) = entry.connected_duration.as_deref().filter(|_| state == BgpState::Established) {
        reason.push_str(&format!("; up {d}"));
    }
    reason.push(')');
    if let Err(why) = &reading.routes {
        reason.push_str(&format!("; learned routes not read: {why}"));
    }
    Some(BgpPeer { local_address: local, peer_address: Some(neighbor), peer_asn, state, reason, routes_received, learned })
}

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
    pub(crate) fn tunnel_ends(
        &self,
        scope: AzureScope<'_>,
        owner: &Owner,
        sas: &HashMap<String, Vec<IkeSa>>,
        bgp: Option<&BgpReading>,
    ) -> Vec<Box<dyn Tunnel>> {
        let ours = self.ours(scope, owner);
        let our_gw = self.our_gateway(scope, owner);
        let instances: Vec<(usize, Ipv4Addr)> = self.instances(our_gw).into_iter().filter_map(|(k, ip)| Some((k, ip?))).collect();
        let mut out: Vec<Box<dyn Tunnel>> = Vec::new();
        for c in self.connections.iter().filter(|c| ours(&c.id)) {
            let lng_id = c.properties.local_network_gateway2.as_ref().map(|r| r.id.as_str()).unwrap_or_default();
            let lng = self.lngs.iter().find(|l| same_id(&l.id, lng_id));
            let Some(peer) = lng.and_then(|l| l.properties.gateway_ip_address.as_deref()?.parse().ok()) else {
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
                    bgp: our_gw.and_then(|g| bgp_peer(g, c, lng, i.index, bgp)),
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

    fn bgp_fixture() -> (wire::Gateway, wire::Connection, wire::Lng) {
        let cfg = |k: usize| format!("/s/gw/ipConfigurations/ipconfig{k}");
        let gw: wire::Gateway = serde_json::from_value(serde_json::json!({ "id": "/s/gw", "name": "gw", "properties": {
            "enableBgp": true,
            "ipConfigurations": [{ "id": cfg(0), "name": "ipconfig0" }, { "id": cfg(1), "name": "ipconfig1" }],
            "bgpSettings": { "asn": 65000, "bgpPeeringAddresses": [
                { "ipconfigurationId": cfg(0), "defaultBgpIpAddresses": ["10.1.255.4"], "customBgpIpAddresses": ["169.254.21.2", "169.254.22.2"] },
                { "ipconfigurationId": cfg(1), "defaultBgpIpAddresses": ["10.1.255.5"], "customBgpIpAddresses": ["169.254.21.6", "169.254.22.6"] } ] } } }))
        .expect("gateway");
        let cn: wire::Connection = serde_json::from_value(serde_json::json!({ "id": "/s/cn", "name": "cn", "properties": {
            "enableBgp": true, "localNetworkGateway2": { "id": "/s/lng" },
            "gatewayCustomBgpIpAddresses": [
                { "ipConfigurationId": cfg(0), "customBgpIpAddress": "169.254.21.2" },
                { "ipConfigurationId": cfg(1), "customBgpIpAddress": "169.254.21.6" } ] } }))
        .expect("connection");
        let lng: wire::Lng = serde_json::from_value(serde_json::json!({ "id": "/s/lng", "name": "lng", "properties": {
            "gatewayIpAddress": "3.0.0.1", "bgpSettings": { "asn": 64512, "bgpPeeringAddress": "169.254.21.1" } } }))
        .expect("lng");
        (gw, cn, lng)
    }

    fn peer(local: &str, neighbor: &str, state: &str, routes: i64) -> wire::BgpPeerStatus {
        serde_json::from_value(serde_json::json!({ "localAddress": local, "neighbor": neighbor, "asn": 64512, "state": state,
            "routesReceived": routes, "connectedDuration": "00:05:00" }))
        .expect("peer")
    }

    fn route(local: &str, network: &str, source: &str, origin: &str) -> wire::GatewayRoute {
        serde_json::from_value(serde_json::json!({ "localAddress": local, "network": network, "sourcePeer": source, "origin": origin }))
            .expect("route")
    }

    fn ip4(s: &str) -> Ipv4Addr {
        s.parse().expect("ip")
    }

    /// Each instance's session is the entry with the LNG's peer as neighbor and the
    /// instance's address on the Connection as local address; its learned prefixes are
    /// the EBgp routes from that neighbor to that instance.
    #[test]
    fn each_instance_gets_its_own_bgp_session_and_learned_routes() {
        let (gw, cn, lng) = bgp_fixture();
        let reading = BgpReading {
            peers: Ok(vec![
                peer("169.254.21.6", "169.254.21.1", "Connecting", 0),
                peer("169.254.22.2", "169.254.22.1", "Connected", 3),
                peer("169.254.21.2", "169.254.21.1", "Connected", 1),
            ]),
            routes: Ok(vec![
                route("10.1.255.4", "10.1.0.0/16", "10.1.255.4", "Network"),
                route("169.254.21.2", "10.2.0.0/16", "169.254.21.1", "EBgp"),
                route("169.254.22.2", "10.9.0.0/16", "169.254.22.1", "EBgp"),
                route("169.254.21.6", "10.8.0.0/16", "169.254.21.1", "EBgp"),
            ]),
        };
        let b0 = bgp_peer(&gw, &cn, Some(&lng), 0, Some(&reading)).expect("a BGP Connection");
        assert_eq!(b0.state, BgpState::Established, "{b0:?}");
        assert_eq!((b0.local_address, b0.peer_address, b0.peer_asn), (Some(ip4("169.254.21.2")), Some(ip4("169.254.21.1")), Some(64512)));
        assert_eq!(b0.routes_received, Some(1));
        assert_eq!(b0.learned, Some(vec!["10.2.0.0/16".parse().expect("net")]));
        assert!(b0.reason.starts_with("Connected (neighbor 169.254.21.1 AS 64512, from 169.254.21.2"), "{}", b0.reason);
        let b1 = bgp_peer(&gw, &cn, Some(&lng), 1, Some(&reading)).expect("a BGP Connection");
        assert_eq!((b1.state, b1.local_address), (BgpState::Down, Some(ip4("169.254.21.6"))), "{b1:?}");
        assert!(b1.reason.starts_with("Connecting"), "{}", b1.reason);
        assert_eq!(b1.learned, Some(vec!["10.8.0.0/16".parse().expect("net")]));
    }

    /// Live answers have shown an APIPA session under the instance's default address.
    #[test]
    fn a_session_reported_from_the_default_address_is_the_instances() {
        let (gw, cn, lng) = bgp_fixture();
        let reading = BgpReading {
            peers: Ok(vec![peer("10.1.255.5", "169.254.21.1", "Idle", 0), peer("10.1.255.4", "169.254.21.1", "Connected", 1)]),
            routes: Ok(vec![route("10.1.255.4", "10.2.0.0/16", "169.254.21.1", "EBgp")]),
        };
        let b0 = bgp_peer(&gw, &cn, Some(&lng), 0, Some(&reading)).expect("BGP");
        assert_eq!((b0.state, b0.local_address), (BgpState::Established, Some(ip4("10.1.255.4"))));
        assert_eq!(b0.learned.as_ref().map(Vec::len), Some(1));
        let b1 = bgp_peer(&gw, &cn, Some(&lng), 1, Some(&reading)).expect("BGP");
        assert_eq!(b1.state, BgpState::Down);
        assert!(b1.reason.starts_with("Idle"), "{}", b1.reason);
    }

    /// A read that failed leaves the session Unknown with the reason (tunnel_ends does
    /// not fail); failed learned routes leave only `learned` unknown.
    #[test]
    fn unreadable_bgp_state_is_unknown_with_the_reason() {
        let (gw, cn, lng) = bgp_fixture();
        let failed = BgpReading { peers: Err("getBgpPeerStatus could not be read: HTTP 500".into()), routes: Err("no".into()) };
        let b = bgp_peer(&gw, &cn, Some(&lng), 0, Some(&failed)).expect("BGP");
        assert_eq!((b.state, b.reason.as_str()), (BgpState::Unknown, "getBgpPeerStatus could not be read: HTTP 500"));
        assert_eq!((b.local_address, b.peer_address), (Some(ip4("169.254.21.2")), Some(ip4("169.254.21.1"))));
        let half = BgpReading { peers: Ok(vec![peer("169.254.21.2", "169.254.21.1", "Connected", 1)]), routes: Err("timed out".into()) };
        let b = bgp_peer(&gw, &cn, Some(&lng), 0, Some(&half)).expect("BGP");
        assert_eq!((b.state, b.learned.clone()), (BgpState::Established, None));
        assert!(b.reason.ends_with("learned routes not read: timed out"), "{}", b.reason);
        let none = BgpReading { peers: Ok(Vec::new()), routes: Ok(Vec::new()) };
        let b = bgp_peer(&gw, &cn, Some(&lng), 0, Some(&none)).expect("BGP");
        assert_eq!(b.state, BgpState::Unknown);
        assert!(b.reason.contains("lists no session with 169.254.21.1 from instance 0 (169.254.21.2 or 10.1.255.4)"), "{}", b.reason);
        // No reading at all: the gateway has BGP off.
        assert!(bgp_peer(&gw, &cn, Some(&lng), 0, None).expect("BGP").reason.contains("does not have BGP enabled"));
        // An LNG without a peer.
        let mut bare = lng;
        bare.properties.bgp_settings = None;
        assert!(bgp_peer(&gw, &cn, Some(&bare), 0, Some(&none)).expect("BGP").reason.contains("has no BGP peer"));
        // A Connection without BGP has no session.
        let mut plain = cn;
        plain.properties.enable_bgp = false;
        assert!(bgp_peer(&gw, &plain, Some(&bare), 0, Some(&none)).is_none());
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
