//! Started operations, recorded in the world so that any process can poll them.

use std::net::Ipv4Addr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use vpnbridge_core::endpoint::ErrorKind;
use vpnbridge_core::model::{AttachmentState, AwsState, AwsTunnelOptions, ProvisioningState};

use super::{ApiError, World};

/// What an operation waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Goal {
    /// Created or updated: available / attached / Succeeded.
    Ready,
    /// Deleted / detached / gone.
    Gone,
    /// Out of any transitional state, whichever way.
    Settled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum AwsWait {
    Vgw {
        id: String,
        goal: Goal,
    },
    Attachment {
        vgw_id: String,
        vpc_id: String,
        goal: Goal,
    },
    Cgw {
        id: String,
        goal: Goal,
    },
    Vpn {
        id: String,
        goal: Goal,
    },
    VpnRoute {
        vpn_id: String,
        destination: IpNet,
        goal: Goal,
    },
    Tunnel {
        vpn_id: String,
        outside_ip: Ipv4Addr,
    },
    /// Finishes at a fixed time (VPC route changes).
    Timer {
        at_ms: u64,
        id: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum AzureKind {
    PublicIp,
    VpnGateway,
    LocalNetworkGateway,
    Connection,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum AzureWait {
    Resource {
        kind: AzureKind,
        id: String,
        goal: Goal,
    },
    /// Already finished when it was started (a delete of something already gone).
    Done {
        id: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Operation {
    Aws { started_ms: u64, wait: AwsWait },
    Azure { started_ms: u64, wait: AzureWait },
}

/// Where an operation stands, in the world's terms.
#[derive(Debug, Clone)]
pub enum Completion {
    /// Still running; `retry_after_ms` when the cloud gives a hint (ARM's Retry-After).
    Running {
        retry_after_ms: Option<u64>,
    },
    Done {
        id: Option<String>,
        public_ip: Option<Ipv4Addr>,
        tunnels: Vec<AwsTunnelOptions>,
    },
    Failed(ApiError),
}

impl Completion {
    fn id(id: &str) -> Self {
        Completion::Done { id: Some(id.to_owned()), public_ip: None, tunnels: Vec::new() }
    }
}

/// ARM's Retry-After for an operation with `remaining` milliseconds to go.
const AZURE_RETRY_AFTER_MS: u64 = 10_000;

impl World {
    /// Records an AWS wait and returns its handle.
    pub(crate) fn record_aws(&mut self, wait: AwsWait) -> String {
        let n = self.next_seq();
        let handle = format!("ec2-op-{n:08}");
        self.operations.insert(handle.clone(), Operation::Aws { started_ms: self.now_ms, wait });
        handle
    }

    /// Records an Azure asynchronous operation and returns its `Azure-AsyncOperation`
    /// URL (path part).
    pub(crate) fn record_azure(&mut self, subscription: &str, location: &str, wait: AzureWait) -> String {
        let guid = self.guid();
        let handle = format!("/subscriptions/{subscription}/providers/Microsoft.Network/locations/{location}/operations/{guid}");
        self.operations.insert(handle.clone(), Operation::Azure { started_ms: self.now_ms, wait });
        handle
    }

    /// Where the operation behind `handle` stands. Never mutates.
    pub fn operation_status(&self, handle: &str) -> Result<Completion, ApiError> {
        match self.operations.get(handle) {
            None => Err(ApiError::new(
                404,
                ErrorKind::NotFound,
                "OperationNotFound",
                format!("The operation '{handle}' was not found (the simulated world does not know it)."),
            )),
            Some(Operation::Aws { wait, .. }) => Ok(self.aws_status(wait)),
            Some(Operation::Azure { wait, .. }) => Ok(self.azure_status(wait)),
        }
    }

    fn aws_status(&self, wait: &AwsWait) -> Completion {
        let running = Completion::Running { retry_after_ms: None };
        let now = self.now_ms;
        let gone_while = |what: &str, id: &str| {
            Completion::Failed(ApiError::new(
                400,
                ErrorKind::Permanent,
                "IncorrectState",
                format!("The {what} '{id}' went away while the operation was waiting for it."),
            ))
        };
        match wait {
            AwsWait::Vgw { id, goal } => match self.aws.vpn_gateways.get(id).map(|v| v.phase.state) {
                None => gone_while("vpn gateway", id),
                Some(s) => aws_goal(s, *goal, id).unwrap_or(running),
            },
            AwsWait::Cgw { id, goal } => match self.aws.customer_gateways.get(id).map(|v| v.phase.state) {
                None => gone_while("customer gateway", id),
                Some(s) => aws_goal(s, *goal, id).unwrap_or(running),
            },
            AwsWait::Vpn { id, goal } => match self.aws.vpn_connections.get(id) {
                None => gone_while("vpn connection", id),
                // As EC2 describes it: a modification may still read `available`.
                Some(v) => match aws_goal(v.described_state(now), *goal, id) {
                    Some(Completion::Done { id, .. }) if v.described_state(now) == AwsState::Available => {
                        Completion::Done { id, public_ip: None, tunnels: v.tunnel_options() }
                    }
                    Some(c) => c,
                    None => running,
                },
            },
            AwsWait::Attachment { vgw_id, vpc_id, goal } => {
                let state = self
                    .aws
                    .vpn_gateways
                    .get(vgw_id)
                    .and_then(|v| v.attachments.iter().rev().find(|a| &a.vpc_id == vpc_id))
                    .map(|a| a.phase.state);
                match (state, goal) {
                    (Some(AttachmentState::Attached), Goal::Ready | Goal::Settled) => Completion::id(vgw_id),
                    (None | Some(AttachmentState::Detached), Goal::Gone | Goal::Settled) => Completion::id(vgw_id),
                    (None | Some(AttachmentState::Detached), Goal::Ready) => Completion::Failed(ApiError::new(
                        400,
                        ErrorKind::Permanent,
                        "InvalidVpnGatewayAttachment.NotFound",
                        format!("The attachment with vpn gateway ID '{vgw_id}' and vpc ID '{vpc_id}' does not exist"),
                    )),
                    _ => running,
                }
            }
            AwsWait::VpnRoute { vpn_id, destination, goal } => {
                let route = self.aws.vpn_connections.get(vpn_id).and_then(|v| v.routes.iter().find(|r| &r.destination == destination));
                match (route.map(|r| r.phase.state), goal) {
                    (Some(AwsState::Available), Goal::Ready | Goal::Settled) | (None, Goal::Gone | Goal::Settled) => Completion::id(vpn_id),
                    (None, Goal::Ready) => gone_while("vpn connection route", &destination.to_string()),
                    _ => running,
                }
            }
            AwsWait::Tunnel { vpn_id, outside_ip } => match self.aws.vpn_connections.get(vpn_id) {
                None => gone_while("vpn connection", vpn_id),
                // Done when EC2 describes the connection `available` again, which it
                // may do for a moment right after the call, before `modifying`.
                Some(v) => match v.tunnels.iter().find(|t| t.outside_ip == *outside_ip) {
                    Some(_) if v.described_state(now) != AwsState::Available => running,
                    _ => Completion::Done { id: Some(vpn_id.clone()), public_ip: None, tunnels: v.tunnel_options() },
                },
            },
            AwsWait::Timer { at_ms, id } => {
                if now >= *at_ms {
                    Completion::Done { id: id.clone(), public_ip: None, tunnels: Vec::new() }
                } else {
                    running
                }
            }
        }
    }

    fn azure_status(&self, wait: &AzureWait) -> Completion {
        let (kind, id, goal) = match wait {
            AzureWait::Done { id } => return Completion::Done { id: id.clone(), public_ip: None, tunnels: Vec::new() },
            AzureWait::Resource { kind, id, goal } => (*kind, id, *goal),
        };
        let Some((phase, public_ip)) = self.azure.phase_of(kind, id) else {
            return match goal {
                Goal::Gone | Goal::Settled => Completion::Done { id: Some(id.clone()), public_ip: None, tunnels: Vec::new() },
                Goal::Ready => Completion::Failed(ApiError::new(
                    404,
                    ErrorKind::NotFound,
                    "ResourceNotFound",
                    format!("The Resource '{id}' was deleted while the operation was running."),
                )),
            };
        };
        match (phase.state, goal) {
            (ProvisioningState::Succeeded, Goal::Ready | Goal::Settled) => {
                Completion::Done { id: Some(id.clone()), public_ip, tunnels: Vec::new() }
            }
            // Waiting for an operation that ended Failed: the wait fails too, so the
            // next plan provisions the resource again.
            (ProvisioningState::Failed, _) => Completion::Failed(ApiError::new(
                200,
                ErrorKind::Permanent,
                "OperationFailed",
                format!("The operation on '{id}' ended with provisioningState Failed."),
            )),
            (ProvisioningState::Succeeded, Goal::Gone) => Completion::Failed(ApiError::new(
                200,
                ErrorKind::Transient,
                "Canceled",
                format!("The delete of '{id}' was canceled; the resource still exists."),
            )),
            // ARM says "Retry-After: 10" whatever is left, so the caller's detection
            // lags the real end by up to 10 s, as it does against Azure.
            _ => Completion::Running { retry_after_ms: Some(AZURE_RETRY_AFTER_MS) },
        }
    }
}

fn aws_goal(state: AwsState, goal: Goal, id: &str) -> Option<Completion> {
    match (state, goal) {
        (AwsState::Available, Goal::Ready | Goal::Settled) | (AwsState::Deleted, Goal::Gone | Goal::Settled) => Some(Completion::id(id)),
        (AwsState::Deleting | AwsState::Deleted, Goal::Ready) => Some(Completion::Failed(ApiError::new(
            400,
            ErrorKind::Permanent,
            "IncorrectState",
            format!("'{id}' went to {state:?} while the operation was waiting for it to become available."),
        ))),
        (AwsState::Pending, Goal::Gone) => Some(Completion::Failed(ApiError::new(
            400,
            ErrorKind::Permanent,
            "IncorrectState",
            format!("'{id}' is pending, not deleting."),
        ))),
        _ => None,
    }
}
