//! Asynchronous operations: the `Azure-AsyncOperation` status and the `Location`
//! result of a started PUT, DELETE or POST action. Whether one is finished is the
//! simulator's judgement (`World::azure_completion`, the core's goal judgement).

use axum::http::StatusCode;
use serde_json::{Value, json};
use vpnbridge_sim::world::Completion;

use crate::{API_VERSION, Answer, Operation, Shared, arm_error, compute, lock, not_found, shapes};

pub(crate) fn get_ike_sas(s: &Shared, id: &str, name: &str, rg: &str) -> Answer {
    let peer_up = lock(&s.compute).peer_up;
    let sas = s.cloud.with_world(|w| {
        let c = w.azure.connections.get(id)?;
        Some(if peer_up { compute::peer_up_ike_sas(w, id).unwrap_or_else(|| shapes::ike_sas(w, c)) } else { shapes::ike_sas(w, c) })
    });
    let Some(sas) = sas else { return not_found("connections", name, rg) };
    // ARM returns the SAs as a JSON document inside a JSON string.
    let (_, location) = s.op_urls(Operation::Finished { body: Value::String(sas.to_string()) });
    s.with_retry_after(Answer::empty(StatusCode::ACCEPTED).header("Location", location))
}

/// `POST virtualNetworkGateways/{n}/getBgpPeerStatus[?peer=ip]` and
/// `.../getLearnedRoutes`: long-running with final-state-via `location` in the spec
/// (2024-03-01), answered 202 with `Location` (and `Azure-AsyncOperation`, which the
/// spec's example shows); the `Location` URL answers the result, `{value: [...]}`.
/// The result is what the world says when the POST arrives.
pub(crate) fn gateway_read(s: &Shared, id: &str, name: &str, rg: &str, action: GatewayRead) -> Answer {
    {
        let mut f = lock(&s.faults);
        if f.fail_bgp_reads > 0 {
            f.fail_bgp_reads -= 1;
            return arm_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "An error occurred while reading the gateway's BGP state.",
            );
        }
    }
    let value = s.cloud.with_world(|w| {
        let g = w.azure.gateways.get(id)?;
        Some(match action {
            GatewayRead::BgpPeerStatus { peer } => shapes::bgp_peer_status(w, g, peer),
            GatewayRead::LearnedRoutes => shapes::learned_routes(w, g),
        })
    });
    let Some(value) = value else { return not_found("virtualNetworkGateways", name, rg) };
    let (op, location) = s.op_urls(Operation::Finished { body: json!({ "value": value }) });
    s.with_retry_after(Answer::empty(StatusCode::ACCEPTED).header("Location", location).header("Azure-AsyncOperation", op))
}

/// Which read of a gateway's BGP state.
#[derive(Debug, Clone, Copy)]
pub(crate) enum GatewayRead {
    BgpPeerStatus { peer: Option<std::net::Ipv4Addr> },
    LearnedRoutes,
}

/// Where an operation stands: (status, error) in ARM's words.
pub(crate) fn op_state(s: &Shared, op: &Operation) -> (&'static str, Option<(String, String)>) {
    match op {
        Operation::Finished { .. } => ("Succeeded", None),
        // The simulator's judgement (the core's, in ARM's words), as its endpoint gives it.
        Operation::Resource { kind, id, goal } => match s.cloud.with_world(|w| w.azure_completion(kind.sim(), id, *goal)) {
            Completion::Done { .. } => ("Succeeded", None),
            Completion::Running { .. } => ("InProgress", None),
            Completion::Failed(e) => ("Failed", Some((e.code, e.message))),
        },
    }
}

pub(crate) fn operation_status(s: &Shared, guid: &str) -> Answer {
    let Some(op) = lock(&s.ops).get(guid).cloned() else {
        return arm_error(StatusCode::NOT_FOUND, "OperationNotFound", format!("The operation '{guid}' was not found."));
    };
    let (status, error) = op_state(s, &op);
    let mut body = json!({ "name": guid, "status": status, "startTime": "2025-01-01T00:00:00Z" });
    if let Some((code, message)) = error {
        body["error"] = json!({ "code": code, "message": message, "details": [] });
    }
    let a = Answer::json(StatusCode::OK, body);
    if status == "InProgress" { s.with_retry_after(a) } else { a }
}

pub(crate) fn operation_result(s: &Shared, guid: &str) -> Answer {
    let Some(op) = lock(&s.ops).get(guid).cloned() else {
        return arm_error(StatusCode::NOT_FOUND, "OperationNotFound", format!("The operation '{guid}' was not found."));
    };
    match op_state(s, &op) {
        ("InProgress", _) => {
            let location = format!("{}{}", s.base_url, location_path(s, guid));
            s.with_retry_after(Answer::empty(StatusCode::ACCEPTED).header("Location", location))
        }
        (_, Some((code, message))) => arm_error(StatusCode::INTERNAL_SERVER_ERROR, &code, message),
        _ => match op {
            Operation::Finished { body } => Answer::json(StatusCode::OK, body),
            Operation::Resource { .. } => Answer::empty(StatusCode::NO_CONTENT),
        },
    }
}

pub(crate) fn location_path(s: &Shared, guid: &str) -> String {
    format!(
        "/subscriptions/{}/providers/Microsoft.Network/locations/{}/operationResults/{guid}?api-version={API_VERSION}",
        s.cfg.subscription_id, s.cfg.location
    )
}
