//! The custom role (`azure-role.json`) covers every ARM operation this crate can call,
//! and holds nothing else; each action is justified in the README.
//!
//! The operations are derived from the code, not listed by hand: every SDK call is
//! found by reading `src/*.rs` for `<client>_client().<method>(` (and a use of an SDK
//! client in any other form fails the test, so none can hide), and every raw request
//! names a [`RawCall`], which the table below maps exhaustively. The tables map each
//! operation to the RBAC actions ARM checks for it.

use std::collections::BTreeSet;

use crate::Kind;
use crate::arm::RawCall;

const NET: &str = "Microsoft.Network/";

/// The actions of one SDK call (`None`: not in the table, so the test fails).
fn sdk_actions(client: &str, method: &str) -> Option<&'static [&'static str]> {
    Some(match (client, method) {
        ("virtual_networks", "get") => &["virtualNetworks/read"],
        ("public_ip_addresses", "delete") => &["publicIPAddresses/delete"],
        ("virtual_network_gateways", "delete") => &["virtualNetworkGateways/delete"],
        ("local_network_gateways", "delete") => &["localnetworkgateways/delete"],
        ("virtual_network_gateway_connections", "delete") => &["connections/delete"],
        ("virtual_network_gateway_connections", "get_shared_key") => &["connections/sharedKey/read"],
        ("virtual_network_gateway_connections", "set_shared_key") => &["connections/sharedKey/write"],
        ("virtual_network_gateway_connections", "get_ike_sas") => &["connections/getikesas/action"],
        ("virtual_network_gateways", "get_bgp_peer_status") => &["virtualNetworkGateways/getBgpPeerStatus/action"],
        ("virtual_network_gateways", "get_learned_routes") => &["virtualNetworkGateways/getLearnedRoutes/action"],
        _ => return None,
    })
}

/// The actions of one raw request (exhaustive: a new [`RawCall`] or [`Kind`] does not
/// compile until it is mapped here).
fn raw_actions(call: RawCall) -> &'static [&'static str] {
    let read = |k: Kind| -> &'static [&'static str] {
        match k {
            Kind::PublicIp => &["publicIPAddresses/read"],
            Kind::VpnGateway => &["virtualNetworkGateways/read"],
            Kind::LocalNetworkGateway => &["localnetworkgateways/read"],
            Kind::Connection => &["connections/read"],
        }
    };
    match call {
        RawCall::Get(k) | RawCall::List(k) => read(k),
        RawCall::Put(Kind::PublicIp) => &["publicIPAddresses/write"],
        // Each ipConfiguration references the GatewaySubnet and one of our public IPs.
        RawCall::Put(Kind::VpnGateway) => {
            &["virtualNetworkGateways/write", "virtualNetworks/subnets/join/action", "publicIPAddresses/join/action"]
        }
        RawCall::Put(Kind::LocalNetworkGateway) => &["localnetworkgateways/write"],
        RawCall::Put(Kind::Connection) => &["connections/write"],
        RawCall::OperationStatus => &["locations/operations/read"],
        RawCall::OperationResult => &["locations/operationResults/read"],
        RawCall::Subscriptions => &["Microsoft.Resources/subscriptions/read"],
        // The probe: the VM (with its instance view), its NIC and NSG, Run Command and
        // the Compute operation it answers with.
        RawCall::VmGet => &["Microsoft.Compute/virtualMachines/read"],
        RawCall::NicGet => &["networkInterfaces/read"],
        RawCall::NsgGet => &["networkSecurityGroups/read"],
        RawCall::RunCommand => &["Microsoft.Compute/virtualMachines/runCommand/action"],
        RawCall::ComputeOperation => &["Microsoft.Compute/locations/operations/read"],
    }
}

/// The crate's sources (`src/*.rs`) but this file: (file name, text).
fn sources() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut files: Vec<_> = std::fs::read_dir(dir).expect("src/").filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| {
            (p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(), std::fs::read_to_string(&p).expect("readable"))
        })
        .filter(|(f, _)| f != "role.rs")
        .collect()
}

/// Every `(client, method)` SDK call in the crate's sources, with where it is; or the
/// places where an SDK client is used in a form this reader cannot follow.
fn sdk_calls() -> (Vec<(String, String, String)>, Vec<String>) {
    let mut calls = Vec::new();
    let mut unreadable = Vec::new();
    let needle = ["_client", "()"].concat();
    let ident = |c: &char| c.is_ascii_alphanumeric() || *c == '_';
    for (file, text) in sources() {
        for (at, _) in text.match_indices(&needle) {
            let line = text[..at].matches('\n').count() + 1;
            let mut client: Vec<char> = text[..at].chars().rev().take_while(ident).collect();
            client.reverse();
            let client: String = client.into_iter().collect();
            let rest = text[at + needle.len()..].trim_start();
            let method: String = rest.strip_prefix('.').map(|r| r.chars().take_while(ident).collect()).unwrap_or_default();
            let called = rest.strip_prefix('.').is_some_and(|r| r[method.len()..].starts_with('('));
            if client.is_empty() || method.is_empty() || !called {
                unreadable.push(format!("{file}:{line}"));
            } else {
                calls.push((client, method, format!("{file}:{line}")));
            }
        }
    }
    (calls, unreadable)
}

fn role_actions() -> BTreeSet<String> {
    let role: serde_json::Value = serde_json::from_str(include_str!("../azure-role.json")).expect("azure-role.json is JSON");
    role["Actions"].as_array().expect("Actions").iter().map(|a| a.as_str().expect("a string").to_owned()).collect()
}

#[test]
fn the_role_holds_every_action_the_adapter_needs_and_no_other() {
    let (calls, unreadable) = sdk_calls();
    assert!(unreadable.is_empty(), "SDK clients used other than as `<client>_client().<method>(`: {unreadable:?}");
    assert!(calls.len() >= 10, "the reader found too few SDK calls: {calls:?}");
    for method in ["get_bgp_peer_status", "get_learned_routes"] {
        assert!(calls.iter().any(|(c, m, _)| c == "virtual_network_gateways" && m == method), "the reader missed {method}: {calls:?}");
    }
    let mut needed = BTreeSet::new();
    for (client, method, at) in &calls {
        let actions =
            sdk_actions(client, method).unwrap_or_else(|| panic!("{at}: {client}_client().{method}() is not in the role test's table"));
        needed.extend(actions.iter().map(|a| format!("{NET}{a}")));
    }
    for call in RawCall::all() {
        needed.extend(raw_actions(call).iter().map(|a| if a.starts_with("Microsoft.") { (*a).to_owned() } else { format!("{NET}{a}") }));
    }
    let role = role_actions();
    let missing: Vec<_> = needed.difference(&role).collect();
    assert!(missing.is_empty(), "azure-role.json lacks actions the adapter needs: {missing:?}");
    let unused: Vec<_> = role.difference(&needed).collect();
    assert!(unused.is_empty(), "azure-role.json holds actions no call needs: {unused:?}");
    // Each action keeps its reason in the README's table.
    let readme = include_str!("../README.md");
    for a in &role {
        let short = a.strip_prefix(NET).unwrap_or(a);
        assert!(readme.contains(&format!("| `{short}` |")), "README.md gives no reason for {a}");
    }
}

/// Only `Arm::send` puts a request on the wire outside the SDK's builders, so every raw
/// request names a [`RawCall`].
#[test]
fn raw_requests_have_one_door() {
    let sources = sources();
    let count = |needle: &str| sources.iter().map(|(_, s)| s.matches(needle).count()).sum::<usize>();
    assert_eq!(count(&["pipeline", ".send("].concat()), 1);
    assert_eq!(count(&["Request", "::new("].concat()), 1);
}
