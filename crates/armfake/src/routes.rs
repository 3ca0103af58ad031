//! Routing: authentication, api-version, fault switches, then each ARM path to the
//! resource, operation or subscription call that answers it.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{Value, json};
use vpnbridge_sim::world::arm_id;

use crate::operations::{GatewayRead, gateway_read, get_ike_sas, operation_result, operation_status};
use crate::resources::{delete, get, list, put, put_shared_key, stored_id};
use crate::{Answer, Kind, SUBSCRIPTIONS_API_VERSION, Shared, arm_error, compute, lock, not_found, shapes};

pub(crate) fn is_write(m: &Method) -> bool {
    matches!(*m, Method::PUT | Method::DELETE | Method::POST | Method::PATCH)
}

pub(crate) fn answer(s: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Answer {
    // Authentication first, as ARM does.
    if let Some(token) = &s.cfg.token {
        let ok = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t == token);
        if !ok {
            return arm_error(
                StatusCode::UNAUTHORIZED,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing or carries an invalid bearer token.",
            );
        }
    }
    let api_version = uri.query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("api-version=")));
    // `GET /subscriptions` is Microsoft.Resources', with its own api-version.
    if uri.path().trim_end_matches('/').eq_ignore_ascii_case("/subscriptions") {
        return match (method, api_version) {
            (&Method::GET, Some(SUBSCRIPTIONS_API_VERSION)) => subscriptions(s),
            (&Method::GET, v) => arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidApiVersionParameter",
                format!(
                    "The api-version '{}' is invalid. The supported versions are '{SUBSCRIPTIONS_API_VERSION}'.",
                    v.unwrap_or_default()
                ),
            ),
            _ => arm_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", format!("{method} is not supported here.")),
        };
    }
    let expected = compute::api_version_for(uri.path());
    match api_version {
        None => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        }
        Some(v) if v != expected => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidApiVersionParameter",
                format!("The api-version '{v}' is invalid. The supported versions are '{expected}'."),
            );
        }
        Some(_) => {}
    }
    {
        let mut f = lock(&s.faults);
        if f.throttle_next > 0 {
            f.throttle_next -= 1;
            return arm_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "The request is being throttled as the limit has been reached for operation type. Retry after the time in the Retry-After header.",
            )
            .header("Retry-After", f.throttle_retry_after_secs.to_string());
        }
        if is_write(method) && f.conflict_next > 0 {
            f.conflict_next -= 1;
            return arm_error(
                StatusCode::CONFLICT,
                "AnotherOperationInProgress",
                format!(
                    "Another operation on this or dependent resource is in progress. To retrieve status of the operation use uri: {}.",
                    uri.path()
                ),
            );
        }
    }
    let answer = match compute::route(s, method, uri, body) {
        Some(a) => a,
        None => route(s, method, uri.path(), uri.query(), body),
    };
    if is_write(method) && answer.status.is_success() {
        let mut f = lock(&s.faults);
        if f.drop_next_responses > 0 {
            f.drop_next_responses -= 1;
            return arm_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "An error occurred (the response was lost).");
        }
    }
    answer
}

pub(crate) fn route(s: &Shared, method: &Method, path: &str, query: Option<&str>, body: &Bytes) -> Answer {
    let seg: Vec<&str> = path.trim_matches('/').split('/').collect();
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    // /subscriptions/{s}/providers/Microsoft.Network/locations/{loc}/(operations|operationResults)/{id}
    if let ["subscriptions", _sub, p, ns, l, _loc, what, id] = seg.as_slice()
        && eq(p, "providers")
        && eq(ns, "Microsoft.Network")
        && eq(l, "locations")
    {
        if *method != Method::GET {
            return arm_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", format!("{method} is not supported here."));
        }
        return if eq(what, "operations") {
            operation_status(s, id)
        } else if eq(what, "operationResults") {
            operation_result(s, id)
        } else {
            arm_error(StatusCode::NOT_FOUND, "InvalidResourceType", format!("Unknown resource type '{what}'."))
        };
    }
    // /subscriptions/{s}/providers/Microsoft.Network/{kind}: every resource group's.
    if let ["subscriptions", sub, p, ns, k] = seg.as_slice()
        && eq(p, "providers")
        && eq(ns, "Microsoft.Network")
    {
        let Some(sub) = subscription(s, sub) else {
            return arm_error(StatusCode::NOT_FOUND, "SubscriptionNotFound", format!("The subscription '{sub}' could not be found."));
        };
        return match (Kind::from_segment(k), method) {
            (Some(kind), &Method::GET) if lock(&s.faults).forbid_subscription_lists => arm_error(
                StatusCode::FORBIDDEN,
                "AuthorizationFailed",
                format!(
                    "The client 'vpnbridge' with object id '00000000-0000-0000-0000-0000000000aa' does not have authorization to perform action 'Microsoft.Network/{}/read' over scope '/subscriptions/{}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
                    kind.segment(),
                    sub
                ),
            ),
            (Some(kind), &Method::GET) => list(s, kind, &format!("/subscriptions/{sub}/")),
            (Some(_), _) => arm_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", format!("{method} on a collection.")),
            (None, _) => arm_error(StatusCode::NOT_FOUND, "InvalidResourceType", format!("The resource type '{k}' is not served.")),
        };
    }
    // /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Network/{kind}[/{name}[/{action}]]
    let (sub, rg, rest) = match seg.as_slice() {
        ["subscriptions", sub, r, rg, p, ns, rest @ ..] if eq(r, "resourceGroups") && eq(p, "providers") && eq(ns, "Microsoft.Network") => {
            (*sub, *rg, rest)
        }
        _ => return arm_error(StatusCode::NOT_FOUND, "InvalidResourceType", format!("No route for {path}.")),
    };
    // ARM ids compare without case: the stored spelling is the one used from here on.
    let Some(sub) = subscription(s, sub) else {
        return arm_error(StatusCode::NOT_FOUND, "SubscriptionNotFound", format!("The subscription '{sub}' could not be found."));
    };
    let sub = sub.as_str();
    let Some(rg) = resource_group(s, sub, rg) else {
        return arm_error(StatusCode::NOT_FOUND, "ResourceGroupNotFound", format!("Resource group '{rg}' could not be found."));
    };
    let rg = rg.as_str();
    match rest {
        [k] if eq(k, "virtualNetworks") && *method == Method::GET => {
            let vnets: Vec<Value> = s.cloud.with_world(|w| {
                let scope = format!("/subscriptions/{sub}/resourcegroups/{rg}/").to_ascii_lowercase();
                w.azure
                    .virtual_networks
                    .values()
                    .filter(|v| v.id.to_ascii_lowercase().starts_with(&scope))
                    .map(|v| shapes::vnet(w, v))
                    .collect()
            });
            Answer::json(StatusCode::OK, json!({ "value": vnets }))
        }
        [k, name] if eq(k, "virtualNetworks") && *method == Method::GET => {
            let id = arm_id(sub, rg, "virtualNetworks", name);
            s.cloud.with_world(|w| match w.azure.virtual_networks.iter().find(|(k, _)| k.eq_ignore_ascii_case(&id)).map(|(_, v)| v) {
                Some(v) => Answer::json(StatusCode::OK, shapes::vnet(w, v)),
                None => not_found("virtualNetworks", name, rg),
            })
        }
        [k] => match (Kind::from_segment(k), method) {
            (Some(kind), &Method::GET) => list(s, kind, &format!("/subscriptions/{sub}/resourceGroups/{rg}/")),
            (Some(_), _) => arm_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", format!("{method} on a collection.")),
            (None, _) => arm_error(StatusCode::NOT_FOUND, "InvalidResourceType", format!("The resource type '{k}' is not served.")),
        },
        [k, name] => match Kind::from_segment(k) {
            Some(kind) => {
                let id = stored_id(s, kind, &arm_id(sub, rg, kind.segment(), name));
                match *method {
                    Method::GET => get(s, kind, &id),
                    Method::PUT => put(s, kind, &id, body),
                    Method::DELETE => delete(s, kind, &id),
                    _ => arm_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", format!("{method} is not supported here.")),
                }
            }
            None => arm_error(StatusCode::NOT_FOUND, "InvalidResourceType", format!("The resource type '{k}' is not served.")),
        },
        [k, name, action] if Kind::from_segment(k) == Some(Kind::Gateway) => {
            let id = stored_id(s, Kind::Gateway, &arm_id(sub, rg, "virtualNetworkGateways", name));
            match (action.to_ascii_lowercase().as_str(), method) {
                ("getbgppeerstatus", &Method::POST) => {
                    let peer = query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("peer=")));
                    match peer.map(str::parse::<std::net::Ipv4Addr>).transpose() {
                        Ok(peer) => gateway_read(s, &id, name, rg, GatewayRead::BgpPeerStatus { peer }),
                        Err(_) => arm_error(
                            StatusCode::BAD_REQUEST,
                            "InvalidRequestFormat",
                            format!("Cannot parse the request: peer '{}' is not an IP address.", peer.unwrap_or_default()),
                        ),
                    }
                }
                ("getlearnedroutes", &Method::POST) => gateway_read(s, &id, name, rg, GatewayRead::LearnedRoutes),
                _ => arm_error(StatusCode::NOT_FOUND, "InvalidResourceType", format!("'{action}' is not served ({method}).")),
            }
        }
        [k, name, action] if Kind::from_segment(k) == Some(Kind::Connection) => {
            let id = stored_id(s, Kind::Connection, &arm_id(sub, rg, "connections", name));
            match (action.to_ascii_lowercase().as_str(), method) {
                ("sharedkey", &Method::GET) => s.cloud.with_world(|w| match w.azure.connections.get(&id) {
                    Some(c) => Answer::json(StatusCode::OK, json!({ "value": c.shared_key.expose() })),
                    None => arm_error(
                        StatusCode::NOT_FOUND,
                        "ParentResourceNotFound",
                        format!("Can not perform requested operation on nested resource. Parent resource '{name}' not found."),
                    ),
                }),
                ("sharedkey", &Method::PUT) => put_shared_key(s, &id, body),
                ("getikesas", &Method::POST) => get_ike_sas(s, &id, name, rg),
                _ => arm_error(StatusCode::NOT_FOUND, "InvalidResourceType", format!("'{action}' is not served ({method}).")),
            }
        }
        _ => arm_error(StatusCode::NOT_FOUND, "InvalidResourceType", format!("No route for {path}.")),
    }
}

/// The subscriptions the fake serves: the configured one and every one holding a VNet
/// (seeded with [`ArmFakeHandle::add_vnet_in`]), as stored.
pub(crate) fn subscriptions_known(s: &Shared) -> Vec<String> {
    let mut out = vec![s.cfg.subscription_id.clone()];
    s.cloud.with_world(|w| {
        for id in w.azure.virtual_networks.keys() {
            if let Some(sub) = id.split('/').nth(2)
                && !out.iter().any(|o| o.eq_ignore_ascii_case(sub))
            {
                out.push(sub.to_owned());
            }
        }
    });
    out
}

/// The subscription as stored, found without case.
pub(crate) fn subscription(s: &Shared, asked: &str) -> Option<String> {
    subscriptions_known(s).into_iter().find(|k| k.eq_ignore_ascii_case(asked))
}

/// `GET /subscriptions`: the shape of Microsoft.Resources' Subscriptions_List.
pub(crate) fn subscriptions(s: &Shared) -> Answer {
    let value: Vec<Value> = subscriptions_known(s)
        .iter()
        .map(|sub| {
            json!({
                "id": format!("/subscriptions/{sub}"),
                "subscriptionId": sub,
                "tenantId": "00000000-0000-0000-0000-0000000000f0",
                "displayName": format!("subscription {sub}"),
                "state": "Enabled",
                "subscriptionPolicies": { "locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off" },
                "authorizationSource": "RoleBased"
            })
        })
        .collect();
    Answer::json(StatusCode::OK, json!({ "value": value }))
}

/// The resource group of subscription `sub` as stored (the configured one, or one that
/// holds a VNet), found without case; `None` when there is no such group.
pub(crate) fn resource_group(s: &Shared, sub: &str, asked: &str) -> Option<String> {
    if sub == s.cfg.subscription_id && asked.eq_ignore_ascii_case(&s.cfg.resource_group) {
        return Some(s.cfg.resource_group.clone());
    }
    s.cloud.with_world(|w| {
        w.azure.virtual_networks.keys().find_map(|id| {
            let mut parts = id.split('/');
            let in_sub = parts.nth(2)? == sub;
            let rg = parts.nth(1)?;
            (in_sub && rg.eq_ignore_ascii_case(asked)).then(|| rg.to_owned())
        })
    })
}
