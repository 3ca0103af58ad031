//! The resources: GET, list, PUT (onto the simulator's model, with what it does not
//! model kept as sent) and DELETE, in ARM's shapes.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::{Value, json};
use vpnbridge_core::goal::Goal;
use vpnbridge_core::model::{CustomBgpAddress, LngBgp, ProvisioningState};
use vpnbridge_core::secret::Psk;
use vpnbridge_sim::World;
use vpnbridge_sim::world::{BgpPeeringPut, ConnectionPut, GatewayPut, IpConfigPut, LngPut, PublicIpPut};

use crate::{Answer, Extras, Kind, Operation, Shared, api_error, arm_error, compute, lock, not_found, shapes};

/// The id under which a resource is stored, when one matches `id` without case (ARM
/// names are case-insensitive: a PUT of `GW` updates `gw`); else `id` itself.
pub(crate) fn stored_id(s: &Shared, kind: Kind, id: &str) -> String {
    s.cloud.with_world(|w| {
        let mut keys: Box<dyn Iterator<Item = &String>> = match kind {
            Kind::PublicIp => Box::new(w.azure.public_ips.keys()),
            Kind::Gateway => Box::new(w.azure.gateways.keys()),
            Kind::Lng => Box::new(w.azure.local_network_gateways.keys()),
            Kind::Connection => Box::new(w.azure.connections.keys()),
        };
        keys.find(|k| k.eq_ignore_ascii_case(id)).cloned().unwrap_or_else(|| id.to_owned())
    })
}

pub(crate) fn render(s: &Shared, w: &World, kind: Kind, id: &str) -> Option<Value> {
    render_as(s, w, kind, id, shapes::View::Get)
}

/// A resource as GET (`View::Get`) or a list item (`View::List`) shows it, with what
/// its last PUT carried beyond the model ([`Extras`]).
pub(crate) fn render_as(s: &Shared, w: &World, kind: Kind, id: &str, view: shapes::View) -> Option<Value> {
    let mut v = render_model(w, kind, id, view)?;
    if let Some(x) = lock(&s.extras).get(id) {
        x.lay_over(&mut v);
    }
    Some(v)
}

pub(crate) fn render_model(w: &World, kind: Kind, id: &str, view: shapes::View) -> Option<Value> {
    match kind {
        Kind::PublicIp => w.azure.public_ips.get(id).map(|p| shapes::public_ip(w, p)),
        Kind::Gateway => w.azure.gateways.get(id).map(|g| shapes::gateway(w, g)),
        Kind::Lng => w.azure.local_network_gateways.get(id).map(shapes::lng),
        Kind::Connection => w.azure.connections.get(id).map(|c| shapes::connection(w, c, view)),
    }
}

/// Every resource of `kind` whose id starts with `scope` (a subscription or a resource
/// group, compared without case).
pub(crate) fn list(s: &Shared, kind: Kind, scope: &str) -> Answer {
    let scope = scope.to_ascii_lowercase();
    let value: Vec<Value> = s.cloud.with_world(|w| {
        let ids: Vec<String> = match kind {
            Kind::PublicIp => w.azure.public_ips.keys().cloned().collect(),
            Kind::Gateway => w.azure.gateways.keys().cloned().collect(),
            Kind::Lng => w.azure.local_network_gateways.keys().cloned().collect(),
            Kind::Connection => w.azure.connections.keys().cloned().collect(),
        };
        ids.iter()
            .filter(|id| id.to_ascii_lowercase().starts_with(&scope))
            .filter_map(|id| render_as(s, w, kind, id, shapes::View::List))
            .collect()
    });
    Answer::json(StatusCode::OK, json!({ "value": value }))
}

pub(crate) fn get(s: &Shared, kind: Kind, id: &str) -> Answer {
    let peer_up = lock(&s.compute).peer_up;
    let rendered = s.cloud.with_world(|w| {
        let mut v = render(s, w, kind, id)?;
        if peer_up && kind == Kind::Connection {
            compute::peer_up_connection(w, id, &mut v);
        }
        Some(v)
    });
    match rendered {
        Some(v) => Answer::json(StatusCode::OK, v),
        None => not_found(kind.segment(), vpnbridge_sim::world::arm_name(id), &s.cfg.resource_group),
    }
}

pub(crate) fn parse_body(body: &Bytes) -> Result<Value, Answer> {
    let invalid = |why: String| {
        arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            format!("The request content was invalid and could not be deserialized: {why}"),
        )
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(invalid("the body is not a JSON object".to_owned())),
        Err(e) => Err(invalid(e.to_string())),
    }
}

pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

pub(crate) fn tags_of(v: &Value) -> BTreeMap<String, String> {
    v.get("tags")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned()))).collect())
        .unwrap_or_default()
}

pub(crate) fn missing(field: &str) -> Answer {
    arm_error(StatusCode::BAD_REQUEST, "InvalidRequestFormat", format!("Cannot parse the request: '{field}' is missing or invalid."))
}

pub(crate) fn put(s: &Shared, kind: Kind, id: &str, body: &Bytes) -> Answer {
    let v = match parse_body(body) {
        Ok(v) => v,
        Err(a) => return a,
    };
    let location = v.get("location").and_then(Value::as_str).unwrap_or(&s.cfg.location).to_owned();
    let tags = tags_of(&v);
    let existed = s.cloud.with_world(|w| render_model(w, kind, id, shapes::View::Get).is_some());
    let result: Result<(), Answer> = s.cloud.with_world_mut(|w| match kind {
        Kind::PublicIp => {
            let body = PublicIpPut {
                location,
                sku: str_at(&v, "/sku/name").unwrap_or("Basic").to_owned(),
                static_allocation: str_at(&v, "/properties/publicIPAllocationMethod") == Some("Static"),
                zones: v
                    .get("zones")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|z| z.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default(),
                tags,
            };
            w.put_public_ip(id, &body).map(drop).map_err(|e| api_error(&e))
        }
        Kind::Gateway => {
            let mut ip_configurations = Vec::new();
            for c in v.pointer("/properties/ipConfigurations").and_then(Value::as_array).into_iter().flatten() {
                let (Some(name), Some(subnet_id), Some(public_ip_id)) =
                    (str_at(c, "/name"), str_at(c, "/properties/subnet/id"), str_at(c, "/properties/publicIPAddress/id"))
                else {
                    return Err(missing("properties.ipConfigurations[].{name, properties.subnet.id, properties.publicIPAddress.id}"));
                };
                ip_configurations.push(IpConfigPut {
                    name: name.to_owned(),
                    subnet_id: subnet_id.to_owned(),
                    public_ip_id: public_ip_id.to_owned(),
                });
            }
            let mut bgp_peering_addresses = Vec::new();
            for p in v.pointer("/properties/bgpSettings/bgpPeeringAddresses").and_then(Value::as_array).into_iter().flatten() {
                let Some(ip_configuration_id) = str_at(p, "/ipconfigurationId") else {
                    return Err(missing("properties.bgpSettings.bgpPeeringAddresses[].ipconfigurationId"));
                };
                let mut custom = Vec::new();
                for a in p.get("customBgpIpAddresses").and_then(Value::as_array).into_iter().flatten() {
                    match a.as_str().and_then(|a| a.parse().ok()) {
                        Some(a) => custom.push(a),
                        None => return Err(missing("properties.bgpSettings.bgpPeeringAddresses[].customBgpIpAddresses[]")),
                    }
                }
                bgp_peering_addresses.push(BgpPeeringPut { ip_configuration_id: ip_configuration_id.to_owned(), custom });
            }
            let body = GatewayPut {
                location,
                gateway_type: str_at(&v, "/properties/gatewayType").unwrap_or("Vpn").to_owned(),
                vpn_type: str_at(&v, "/properties/vpnType").unwrap_or("RouteBased").to_owned(),
                sku: match str_at(&v, "/properties/sku/name") {
                    Some(s) => s.to_owned(),
                    None => return Err(missing("properties.sku.name")),
                },
                generation: str_at(&v, "/properties/vpnGatewayGeneration").unwrap_or("Generation1").to_owned(),
                active_active: v.pointer("/properties/activeActive").and_then(Value::as_bool).unwrap_or(false),
                enable_bgp: v.pointer("/properties/enableBgp").and_then(Value::as_bool).unwrap_or(false),
                asn: v.pointer("/properties/bgpSettings/asn").and_then(Value::as_u64).and_then(|a| u32::try_from(a).ok()),
                ip_configurations,
                bgp_peering_addresses,
                tags,
            };
            w.put_virtual_network_gateway(id, &body).map(drop).map_err(|e| api_error(&e))
        }
        Kind::Lng => {
            let Some(gateway_ip) = str_at(&v, "/properties/gatewayIpAddress").and_then(|s| s.parse().ok()) else {
                return Err(missing("properties.gatewayIpAddress"));
            };
            let mut address_prefixes = Vec::new();
            for p in v.pointer("/properties/localNetworkAddressSpace/addressPrefixes").and_then(Value::as_array).into_iter().flatten() {
                match p.as_str().and_then(|p| p.parse().ok()) {
                    Some(p) => address_prefixes.push(p),
                    None => return Err(missing("properties.localNetworkAddressSpace.addressPrefixes[]")),
                }
            }
            let bgp = match v.pointer("/properties/bgpSettings") {
                None | Some(Value::Null) => None,
                Some(b) => {
                    let asn = b.get("asn").and_then(Value::as_u64).and_then(|a| u32::try_from(a).ok());
                    let peering_address = str_at(b, "/bgpPeeringAddress").and_then(|a| a.parse().ok());
                    match (asn, peering_address) {
                        (Some(asn), Some(peering_address)) => Some(LngBgp { asn, peering_address }),
                        _ => return Err(missing("properties.bgpSettings.{asn, bgpPeeringAddress}")),
                    }
                }
            };
            let body = LngPut { location, gateway_ip, address_prefixes, bgp, tags };
            w.put_local_network_gateway(id, &body).map(drop).map_err(|e| api_error(&e))
        }
        Kind::Connection => {
            let Some(gateway_id) = str_at(&v, "/properties/virtualNetworkGateway1/id") else {
                return Err(missing("properties.virtualNetworkGateway1.id"));
            };
            let Some(lng_id) = str_at(&v, "/properties/localNetworkGateway2/id") else {
                return Err(missing("properties.localNetworkGateway2.id"));
            };
            let shared_key = match str_at(&v, "/properties/sharedKey").map(Psk::new) {
                Some(Ok(k)) => k,
                Some(Err(e)) => {
                    return Err(arm_error(StatusCode::BAD_REQUEST, "InvalidSharedKey", format!("The shared key {e}.")));
                }
                None => return Err(missing("properties.sharedKey (the fake does not generate keys)")),
            };
            let mut custom_bgp_addresses = Vec::new();
            for c in v.pointer("/properties/gatewayCustomBgpIpAddresses").and_then(Value::as_array).into_iter().flatten() {
                // Both fields are required (GatewayCustomBgpIpAddressIpConfiguration).
                let (Some(ip_configuration_id), Some(address)) =
                    (str_at(c, "/ipConfigurationId"), str_at(c, "/customBgpIpAddress").and_then(|a| a.parse().ok()))
                else {
                    return Err(missing("properties.gatewayCustomBgpIpAddresses[].{ipConfigurationId, customBgpIpAddress}"));
                };
                custom_bgp_addresses.push(CustomBgpAddress { ip_configuration_id: ip_configuration_id.to_owned(), address });
            }
            let body = ConnectionPut {
                location,
                gateway_id: gateway_id.to_owned(),
                local_network_gateway_id: lng_id.to_owned(),
                connection_type: str_at(&v, "/properties/connectionType").unwrap_or("IPsec").to_owned(),
                protocol: str_at(&v, "/properties/connectionProtocol").unwrap_or("IKEv2").to_owned(),
                shared_key,
                enable_bgp: v.pointer("/properties/enableBgp").and_then(Value::as_bool).unwrap_or(false),
                custom_bgp_addresses,
                dpd_timeout_seconds: v
                    .pointer("/properties/dpdTimeoutSeconds")
                    .and_then(Value::as_u64)
                    .and_then(|d| u32::try_from(d).ok())
                    .unwrap_or(45),
                tags,
            };
            w.put_connection(id, &body).map(drop).map_err(|e| api_error(&e))
        }
    });
    if let Err(a) = result {
        return a;
    }
    lock(&s.extras).insert(id.to_owned(), Extras::of(kind, &v));
    maybe_fail(s, kind, id);
    let (op, _) = s.op_urls(Operation::Resource { kind, id: id.to_owned(), goal: Goal::Ready });
    let rendered = s.cloud.with_world(|w| render(s, w, kind, id)).unwrap_or(Value::Null);
    s.with_retry_after(
        Answer::json(if existed { StatusCode::OK } else { StatusCode::CREATED }, rendered).header("Azure-AsyncOperation", op),
    )
}

/// Applies the `fail_next_operations` switch to a resource just PUT.
pub(crate) fn maybe_fail(s: &Shared, kind: Kind, id: &str) {
    let fail = {
        let mut f = lock(&s.faults);
        let fail = f.fail_next_operations > 0;
        if fail {
            f.fail_next_operations -= 1;
        }
        fail
    };
    if !fail {
        return;
    }
    s.cloud.with_world_mut(|w| {
        let phase = match kind {
            Kind::PublicIp => w.azure.public_ips.get_mut(id).map(|r| &mut r.phase),
            Kind::Gateway => w.azure.gateways.get_mut(id).map(|r| &mut r.phase),
            Kind::Lng => w.azure.local_network_gateways.get_mut(id).map(|r| &mut r.phase),
            Kind::Connection => w.azure.connections.get_mut(id).map(|r| &mut r.phase),
        };
        if let Some(p) = phase {
            p.state = ProvisioningState::Failed;
            p.until = None;
        }
    });
}

pub(crate) fn put_shared_key(s: &Shared, id: &str, body: &Bytes) -> Answer {
    let v = match parse_body(body) {
        Ok(v) => v,
        Err(a) => return a,
    };
    let key = match str_at(&v, "/value").map(Psk::new) {
        Some(Ok(k)) => k,
        Some(Err(e)) => return arm_error(StatusCode::BAD_REQUEST, "InvalidSharedKey", format!("The shared key {e}.")),
        None => return missing("value"),
    };
    if let Err(e) = s.cloud.with_world_mut(|w| w.put_connection_shared_key(id, &key)) {
        return api_error(&e);
    }
    let (op, _) = s.op_urls(Operation::Resource { kind: Kind::Connection, id: id.to_owned(), goal: Goal::Ready });
    s.with_retry_after(Answer::json(StatusCode::OK, json!({ "value": key.expose() })).header("Azure-AsyncOperation", op))
}

pub(crate) fn delete(s: &Shared, kind: Kind, id: &str) -> Answer {
    let r = s.cloud.with_world_mut(|w| match kind {
        Kind::PublicIp => w.delete_public_ip(id),
        Kind::Gateway => w.delete_virtual_network_gateway(id),
        Kind::Lng => w.delete_local_network_gateway(id),
        Kind::Connection => w.delete_connection(id),
    });
    match r {
        Ok(()) => {
            let (op, location) = s.op_urls(Operation::Resource { kind, id: id.to_owned(), goal: Goal::Gone });
            s.with_retry_after(Answer::empty(StatusCode::ACCEPTED).header("Location", location).header("Azure-AsyncOperation", op))
        }
        Err(e) if e.status == 404 => Answer::empty(StatusCode::NO_CONTENT),
        Err(e) => api_error(&e),
    }
}
