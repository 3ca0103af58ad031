//! Started operations, recorded in the world so that any process can poll them.

use std::net::Ipv4Addr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use vpnbridge_core::endpoint::ErrorKind;
pub use vpnbridge_core::goal::Goal;
use vpnbridge_core::goal::{Miss, Phase, Verdict, judge};
use vpnbridge_core::model::{AwsState, AwsTunnelOptions, Tags};

use super::{ApiError, World};

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

/// An Azure resource kind, as the world files it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AzureKind {
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
        /// The tags of the resource waited for, as EC2 describes them (AWS only).
        tags: Option<Tags>,
    },
    Failed(ApiError),
}

impl Completion {
    fn id(id: &str) -> Self {
        Completion::Done { id: Some(id.to_owned()), public_ip: None, tunnels: Vec::new(), tags: None }
    }

    fn tagged(id: &str, tags: &Tags) -> Self {
        Completion::Done { id: Some(id.to_owned()), public_ip: None, tunnels: Vec::new(), tags: Some(tags.clone()) }
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
        // The core judges whether the wait is over; the world only words a miss.
        let missed = |what: &str, id: &str| {
            Completion::Failed(ApiError::new(
                400,
                ErrorKind::Permanent,
                "IncorrectState",
                format!("The {what} '{id}' went away while the operation was waiting for it."),
            ))
        };
        match wait {
            AwsWait::Vgw { id, goal } => {
                let vgw = self.aws.vpn_gateways.get(id);
                match judge(*goal, Phase::from(vgw.map(|v| v.phase.state))) {
                    Verdict::Done => vgw.map_or_else(|| Completion::id(id), |v| Completion::tagged(id, &v.tags)),
                    Verdict::NotYet => running,
                    Verdict::Failed(_) => missed("vpn gateway", id),
                }
            }
            AwsWait::Cgw { id, goal } => {
                let cgw = self.aws.customer_gateways.get(id);
                match judge(*goal, Phase::from(cgw.map(|c| c.phase.state))) {
                    // Its tags as EC2 describes them: the core judges whose it is.
                    Verdict::Done => cgw.map_or_else(|| Completion::id(id), |c| Completion::tagged(id, &c.tags)),
                    Verdict::NotYet => running,
                    Verdict::Failed(_) => missed("customer gateway", id),
                }
            }
            AwsWait::Vpn { id, goal } => {
                let vpn = self.aws.vpn_connections.get(id);
                // As EC2 describes it: a modification may still read `available`.
                let state = vpn.map(|v| v.described_state(now));
                match (judge(*goal, Phase::from(state)), vpn) {
                    (Verdict::Done, Some(v)) => Completion::Done {
                        id: Some(id.clone()),
                        public_ip: None,
                        tunnels: if state == Some(AwsState::Available) { v.tunnel_options() } else { Vec::new() },
                        tags: Some(v.tags.clone()),
                    },
                    (Verdict::Done, None) => Completion::id(id),
                    (Verdict::NotYet, _) => running,
                    (Verdict::Failed(_), _) => missed("vpn connection", id),
                }
            }
            AwsWait::Attachment { vgw_id, vpc_id, goal } => {
                let state = self
                    .aws
                    .vpn_gateways
                    .get(vgw_id)
                    .and_then(|v| v.attachments.iter().rev().find(|a| &a.vpc_id == vpc_id))
                    .map(|a| a.phase.state);
                match judge(*goal, Phase::from(state)) {
                    Verdict::Done => Completion::id(vgw_id),
                    Verdict::NotYet => running,
                    Verdict::Failed(_) => Completion::Failed(ApiError::new(
                        400,
                        ErrorKind::Permanent,
                        "InvalidVpnGatewayAttachment.NotFound",
                        format!("The attachment with vpn gateway ID '{vgw_id}' and vpc ID '{vpc_id}' does not exist"),
                    )),
                }
            }
            AwsWait::VpnRoute { vpn_id, destination, goal } => {
                let route = self.aws.vpn_connections.get(vpn_id).and_then(|v| v.routes.iter().find(|r| &r.destination == destination));
                match judge(*goal, Phase::from(route.map(|r| r.phase.state))) {
                    Verdict::Done => Completion::id(vpn_id),
                    Verdict::NotYet => running,
                    Verdict::Failed(_) => missed("vpn connection route", &destination.to_string()),
                }
            }
            AwsWait::Tunnel { vpn_id, outside_ip } => match self.aws.vpn_connections.get(vpn_id) {
                None => missed("vpn connection", vpn_id),
                // Done when EC2 describes the connection `available` again, which it
                // may do for a moment right after the call, before `modifying`.
                Some(v) => match v.tunnels.iter().find(|t| t.outside_ip == *outside_ip) {
                    Some(_) if v.described_state(now) != AwsState::Available => running,
                    _ => Completion::Done {
                        id: Some(vpn_id.clone()),
                        public_ip: None,
                        tunnels: v.tunnel_options(),
                        tags: Some(v.tags.clone()),
                    },
                },
            },
            AwsWait::Timer { at_ms, id } => {
                if now >= *at_ms {
                    Completion::Done { id: id.clone(), public_ip: None, tunnels: Vec::new(), tags: None }
                } else {
                    running
                }
            }
        }
    }

    fn azure_status(&self, wait: &AzureWait) -> Completion {
        match wait {
            AzureWait::Done { id } => Completion::Done { id: id.clone(), public_ip: None, tunnels: Vec::new(), tags: None },
            AzureWait::Resource { kind, id, goal } => self.azure_completion(*kind, id, *goal),
        }
    }

    /// Where an ARM operation on resource `id` that waits for `goal` stands: the
    /// core's judgement of its `provisioningState`, in ARM's words. The ARM fake
    /// answers its operation URLs with this too.
    pub fn azure_completion(&self, kind: AzureKind, id: &str, goal: Goal) -> Completion {
        let found = self.azure.phase_of(kind, id);
        match judge(goal, Phase::from(found.map(|(p, _)| p.state))) {
            Verdict::Done => {
                Completion::Done { id: Some(id.to_owned()), public_ip: found.and_then(|(_, ip)| ip), tunnels: Vec::new(), tags: None }
            }
            // ARM says "Retry-After: 10" whatever is left, so the caller's detection
            // lags the real end by up to 10 s, as it does against Azure.
            Verdict::NotYet => Completion::Running { retry_after_ms: Some(AZURE_RETRY_AFTER_MS) },
            Verdict::Failed(Miss::Vanished) => Completion::Failed(ApiError::new(
                404,
                ErrorKind::NotFound,
                "ResourceNotFound",
                format!("The Resource '{id}' was deleted while the operation was running."),
            )),
            // Waiting for an operation that ended Failed: the wait fails too, so the
            // next plan provisions the resource again.
            Verdict::Failed(Miss::ProvisioningFailed) => Completion::Failed(ApiError::new(
                200,
                ErrorKind::Permanent,
                "OperationFailed",
                format!("The operation on '{id}' ended with provisioningState Failed."),
            )),
        }
    }
}
