//! What a PUT of a resource that may already exist sends.
//!
//! ARM's PUT replaces the whole resource: tags and properties the body leaves out are
//! dropped. So a re-PUT (an LNG's new prefixes, a Failed resource provisioned again, a
//! gateway resize, a Connection's new key) starts from what GET returned and lays over
//! it only what vpnbridge owns ([`merged`]). Tags: ours are set, anyone else's kept.
//! Everything vpnbridge does not model goes back as it was: a gateway's `natRules`,
//! `customRoutes`, `vpnClientConfiguration`, custom BGP addresses; a Connection's
//! `ipsecPolicies`, `trafficSelectorPolicies`, NAT rules; an LNG's `fqdn`; a public
//! IP's `dnsSettings`, `ddosSettings`, `ipTags`… (BGP is ours since bgp-ha: an LNG's
//! `bgpSettings` and a Connection's `gatewayCustomBgpIpAddresses` go as our part says,
//! an explicit none without BGP, see `start`.)
//!
//! The merge works on JSON, not on azure_mgmt_network's models: those would drop any
//! field they do not know (and cannot read a Connection at all, see `wire`). Our part
//! is still built with the SDK's typed models and serialised, so its field names are
//! the SDK's.

use serde_json::{Map, Value};
use vpnbridge_core::model::TAG_DEPLOYMENT;

/// Read-only properties a GET returns that a PUT has no business sending back.
const READ_ONLY_PROPERTIES: &[&str] = &[
    "provisioningState",
    "resourceGuid",
    "connectionStatus",
    "tunnelConnectionStatus",
    "ingressBytesTransferred",
    "egressBytesTransferred",
    // A public IP's holder (a gateway's `ipConfigurations` is another key).
    "ipConfiguration",
];

/// Read-only top-level fields (the URL names the resource).
const READ_ONLY_TOP: &[&str] = &["id", "name", "type", "etag"];

/// The namespace of our tags (`vpnbridge:`): ours to set and to drop.
fn our_tag(key: &str) -> bool {
    let prefix = TAG_DEPLOYMENT.split_once(':').map_or(TAG_DEPLOYMENT, |(p, _)| p);
    key.strip_prefix(prefix).is_some_and(|rest| rest.starts_with(':'))
}

/// The body of a PUT: `ours` alone for a new resource; for an existing one, what GET
/// returned (`existing`, read-only fields removed) with `ours` laid over it. Objects
/// merge key by key; arrays of named objects (`ipConfigurations`) merge by `name` in
/// our order; other arrays and values are ours. The location stays the resource's
/// (ARM cannot move one). Tags: theirs kept, ours set, stale ones of ours dropped.
pub(crate) fn merged(existing: Option<Value>, ours: Value) -> Value {
    let Some(Value::Object(mut base)) = existing else { return ours };
    for k in READ_ONLY_TOP {
        base.remove(*k);
    }
    if let Some(Value::Object(p)) = base.get_mut("properties") {
        for k in READ_ONLY_PROPERTIES {
            p.remove(*k);
        }
    }
    let their_tags = base.remove("tags");
    let mut ours = ours;
    if base.contains_key("location")
        && let Some(o) = ours.as_object_mut()
    {
        o.remove("location");
    }
    let our_tags = ours.as_object_mut().and_then(|o| o.remove("tags"));
    let mut base = Value::Object(base);
    overlay(&mut base, &ours);
    if let Some(tags) = tags(their_tags, our_tags) {
        base["tags"] = tags;
    }
    base
}

fn tags(theirs: Option<Value>, ours: Option<Value>) -> Option<Value> {
    let Some(Value::Object(ours)) = ours else { return theirs };
    let mut out: Map<String, Value> = match theirs {
        Some(Value::Object(t)) => t.into_iter().filter(|(k, _)| !our_tag(k)).collect(),
        _ => Map::new(),
    };
    out.extend(ours);
    Some(Value::Object(out))
}

fn named(items: &[Value]) -> bool {
    !items.is_empty() && items.iter().all(|i| i.get("name").is_some_and(Value::is_string))
}

fn overlay(base: &mut Value, ours: &Value) {
    match (base, ours) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(x) => overlay(x, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(o)) if named(b) && named(o) => {
            let merged = o
                .iter()
                .map(|item| {
                    let mut x = b.iter().find(|e| e.get("name") == item.get("name")).cloned().unwrap_or_else(|| Value::Object(Map::new()));
                    overlay(&mut x, item);
                    x
                })
                .collect();
            *b = merged;
        }
        (b, o) => *b = o.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_new_resource_gets_ours_alone() {
        let ours = json!({ "location": "x", "tags": { "vpnbridge:deployment": "d" }, "properties": { "a": 1 } });
        assert_eq!(merged(None, ours.clone()), ours);
    }

    #[test]
    fn ours_is_set_theirs_kept_read_only_dropped() {
        let existing = json!({
            "id": "/x", "name": "g", "type": "Microsoft.Network/virtualNetworkGateways", "etag": "W/\"1\"", "location": "japaneast",
            "tags": { "owner": "alice", "vpnbridge:deployment": "d", "vpnbridge:stale": "x" },
            "properties": {
                "provisioningState": "Failed", "resourceGuid": "g",
                "sku": { "name": "VpnGw1AZ", "tier": "VpnGw1AZ", "capacity": 2 },
                "natRules": [{ "name": "n1" }], "customRoutes": { "addressPrefixes": ["101.168.0.6/32"] },
                "ipConfigurations": [
                    { "name": "ipconfig0", "id": "/x/ipConfigurations/ipconfig0", "properties": { "privateIPAllocationMethod": "Dynamic", "subnet": { "id": "/s" } } },
                    { "name": "old", "properties": {} }
                ],
            },
        });
        let ours = json!({
            "location": "elsewhere", "tags": { "vpnbridge:deployment": "d", "vpnbridge:role": "vpn-gateway" },
            "properties": { "sku": { "name": "VpnGw2AZ", "tier": "VpnGw2AZ" },
                "ipConfigurations": [{ "name": "ipconfig0", "properties": { "publicIPAddress": { "id": "/p0" } } }] },
        });
        let m = merged(Some(existing), ours);
        assert_eq!(m["tags"], json!({ "owner": "alice", "vpnbridge:deployment": "d", "vpnbridge:role": "vpn-gateway" }));
        assert_eq!(m["location"], "japaneast", "a location is never changed");
        for k in ["id", "name", "type", "etag"] {
            assert!(m.get(k).is_none(), "{k}");
        }
        let p = &m["properties"];
        assert!(p.get("provisioningState").is_none() && p.get("resourceGuid").is_none());
        assert_eq!(p["sku"], json!({ "name": "VpnGw2AZ", "tier": "VpnGw2AZ", "capacity": 2 }));
        assert_eq!(p["natRules"], json!([{ "name": "n1" }]));
        assert_eq!(p["customRoutes"]["addressPrefixes"][0], "101.168.0.6/32");
        // Named arrays: ours define the set and order; each keeps what we do not set.
        assert_eq!(p["ipConfigurations"].as_array().map(Vec::len), Some(1));
        assert_eq!(p["ipConfigurations"][0]["properties"]["subnet"]["id"], "/s");
        assert_eq!(p["ipConfigurations"][0]["properties"]["publicIPAddress"]["id"], "/p0");
    }

    #[test]
    fn plain_arrays_and_values_are_ours() {
        let existing = json!({ "location": "l", "properties": { "localNetworkAddressSpace": { "addressPrefixes": ["10.2.0.0/16"] },
            "bgpSettings": { "asn": 65050 }, "connectionStatus": "Connected", "tunnelConnectionStatus": [] } });
        let ours = json!({ "properties": { "localNetworkAddressSpace": { "addressPrefixes": ["10.3.0.0/16"] } } });
        let m = merged(Some(existing), ours);
        assert_eq!(m["properties"]["localNetworkAddressSpace"]["addressPrefixes"], json!(["10.3.0.0/16"]));
        assert_eq!(m["properties"]["bgpSettings"]["asn"], 65050);
        assert!(m["properties"].get("connectionStatus").is_none() && m["properties"].get("tunnelConnectionStatus").is_none());
        assert!(m.get("tags").is_none(), "no tags either side: none sent");
    }
}
