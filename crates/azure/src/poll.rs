//! Polling a started operation: the ARM operation's status, or the resource's
//! `provisioningState` judged by the core (`vpnbridge_core::goal`).

use serde::Deserialize;
use vpnbridge_core::endpoint::{CloudName, EndpointError, ErrorKind, OpStatus};
use vpnbridge_core::goal::{Goal, Miss, Phase, Verdict, judge};
use vpnbridge_core::ops::OpOutput;

use crate::arm::{self, API_VERSION, RawCall};
use crate::handle::{Handle, Kind};
use crate::observe::{not_found_or, state_of};
use crate::{AzureEndpoint, wire};

/// A resource's id, state and (public IPs) address, from a GET.
#[derive(Deserialize)]
pub(crate) struct Brief {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) properties: BriefProps,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BriefProps {
    pub(crate) provisioning_state: Option<String>,
    pub(crate) ip_address: Option<String>,
    /// A public IP's holder (an ipConfiguration of a gateway, a NIC…).
    pub(crate) ip_configuration: Option<wire::Ref>,
}

impl AzureEndpoint {
    /// GET one resource; `None` when it does not exist.
    pub(crate) async fn get_brief(&self, kind: Kind, name: &str) -> Result<Option<Brief>, EndpointError> {
        let path = format!("{}?api-version={API_VERSION}", self.kind_id(kind, name));
        let raw = match self.arm.get(RawCall::Get(kind), &path).await.map(Some).or_else(not_found_or)? {
            Some(raw) => raw,
            None => return Ok(None),
        };
        raw.json::<Brief>("the resource").map(Some)
    }

    pub(crate) fn output(b: &Brief) -> OpOutput {
        OpOutput {
            id: Some(b.id.clone()),
            public_ip: b.properties.ip_address.as_deref().and_then(|s| s.parse().ok()),
            tunnels: Vec::new(),
            tags: None,
        }
    }

    /// The operation finished well: report the resource's outputs.
    pub(crate) async fn finished(&self, kind: Kind, name: &str, goal: Goal) -> Result<OpStatus, EndpointError> {
        if goal == Goal::Gone {
            return Ok(OpStatus::Done(OpOutput { id: Some(self.kind_id(kind, name)), ..OpOutput::default() }));
        }
        match self.get_brief(kind, name).await? {
            Some(b) => Ok(OpStatus::Done(Self::output(&b))),
            None => Ok(OpStatus::Failed(EndpointError::new(
                CloudName::Azure,
                ErrorKind::NotFound,
                "ResourceNotFound",
                format!("{} {name} was deleted while its operation ran", kind.collection()),
            ))),
        }
    }

    /// A resource watched without an operation URL: the core judges its
    /// `provisioningState` against the goal; this says it in ARM's words.
    pub(crate) async fn watch(&self, kind: Kind, name: &str, goal: Goal) -> Result<OpStatus, EndpointError> {
        let b = self.get_brief(kind, name).await?;
        let phase = Phase::from(b.as_ref().map(|b| state_of(b.properties.provisioning_state.as_deref())));
        Ok(match judge(goal, phase) {
            Verdict::Done => match &b {
                Some(b) => OpStatus::Done(Self::output(b)),
                None => OpStatus::Done(OpOutput { id: Some(self.kind_id(kind, name)), ..OpOutput::default() }),
            },
            Verdict::NotYet => OpStatus::Running { retry_after: None },
            Verdict::Failed(Miss::Vanished) => {
                OpStatus::Failed(EndpointError::new(CloudName::Azure, ErrorKind::NotFound, "ResourceNotFound", format!("{name} is gone")))
            }
            Verdict::Failed(Miss::ProvisioningFailed) => OpStatus::Failed(EndpointError::new(
                CloudName::Azure,
                ErrorKind::Permanent,
                "ProvisioningFailed",
                format!("{} {name} is in provisioningState Failed", kind.collection()),
            )),
        })
    }

    pub(crate) async fn poll_handle(&self, h: Handle) -> Result<OpStatus, EndpointError> {
        match h {
            Handle::Done { id } => Ok(OpStatus::Done(OpOutput { id: Some(id), ..OpOutput::default() })),
            Handle::Result { .. } => Ok(OpStatus::Done(OpOutput::default())),
            Handle::Watch { kind, name, goal } => self.watch(kind, &name, goal).await,
            Handle::Location { url, kind, name } => {
                let raw = match self.arm.get(RawCall::OperationResult, &url).await {
                    Ok(raw) => raw,
                    Err(e) if e.is_transient() => return Err(e),
                    Err(e) => return Ok(OpStatus::Failed(e)),
                };
                if raw.status == 202 {
                    return Ok(OpStatus::Running { retry_after: arm::retry_after(&raw.headers) });
                }
                self.finished(kind, &name, Goal::Gone).await
            }
            Handle::Async { url, kind, name, goal } => {
                let raw = self.arm.get(RawCall::OperationStatus, &url).await?;
                let s: wire::OperationStatus = raw.json("the operation status")?;
                match s.status.as_str() {
                    "Succeeded" => self.finished(kind, &name, goal).await,
                    "Failed" | "Canceled" | "Cancelled" => {
                        let (code, message) = match s.error {
                            Some(e) => (e.code.unwrap_or_else(|| s.status.clone()), e.message.unwrap_or_default()),
                            None => (s.status.clone(), format!("the operation on {} {name} ended {}", kind.collection(), s.status)),
                        };
                        let mut e = EndpointError::new(CloudName::Azure, ErrorKind::Permanent, code, message);
                        e.request_id = arm::request_id(&raw.headers);
                        Ok(OpStatus::Failed(e))
                    }
                    _ => Ok(OpStatus::Running { retry_after: arm::retry_after(&raw.headers) }),
                }
            }
        }
    }
}
