//! When a started operation is finished: the one judgement every endpoint uses.
//!
//! An operation waits for its resource to reach a [`Goal`]; the endpoint reads the
//! resource's state from its cloud, says which [`Phase`] that is, and asks [`judge`].
//! The AWS and Azure adapters, the simulator and the ARM fake all judge this way, so a
//! resource read the same way ends the same way on every backend. Only the words of a
//! failure (the cloud's error code and message) stay with each endpoint.

use serde::{Deserialize, Serialize};

use crate::model::{AttachmentState, AwsState, ProvisioningState};
use crate::ops::{AwsOp, AzureOp, Binding};

/// What an operation waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    /// Created or changed: `available`, `attached`, `Succeeded`.
    #[serde(alias = "Ready")]
    Ready,
    /// Deleted: `deleted`, `detached`, or unknown to the cloud.
    #[serde(alias = "Gone")]
    Gone,
    /// Out of any transitional state, whichever way (an `Await` of a resource found
    /// in progress).
    #[serde(alias = "Settled")]
    Settled,
}

impl Goal {
    /// What an AWS operation waits for: a create or a change is ready, a delete or a
    /// detach is gone, an `Await` is settled.
    pub fn of_aws<B: Binding>(op: &AwsOp<B>) -> Goal {
        match op {
            AwsOp::Await { .. } => Goal::Settled,
            op if op.is_delete() => Goal::Gone,
            _ => Goal::Ready,
        }
    }

    /// What an Azure operation waits for (the same rule).
    pub fn of_azure<B: Binding>(op: &AzureOp<B>) -> Goal {
        match op {
            AzureOp::Await { .. } => Goal::Settled,
            op if op.is_delete() => Goal::Gone,
            _ => Goal::Ready,
        }
    }
}

/// A resource's state as its cloud reports it, in the terms completion is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not there: unknown to the cloud (404, not described), `deleted`, `detached`.
    Absent,
    /// On its way to ready: `pending`, `attaching`, `modifying`, `Updating`.
    Pending,
    /// `available`, `attached`, `Succeeded`.
    Ready,
    /// On its way out: `deleting`, `detaching`, `Deleting`.
    Deleting,
    /// The cloud gave up on it: ARM's `provisioningState` Failed.
    Failed,
}

impl From<AwsState> for Phase {
    fn from(s: AwsState) -> Self {
        match s {
            AwsState::Pending | AwsState::Modifying => Phase::Pending,
            AwsState::Available => Phase::Ready,
            AwsState::Deleting => Phase::Deleting,
            AwsState::Deleted => Phase::Absent,
        }
    }
}

impl From<AttachmentState> for Phase {
    fn from(s: AttachmentState) -> Self {
        match s {
            AttachmentState::Attaching => Phase::Pending,
            AttachmentState::Attached => Phase::Ready,
            AttachmentState::Detaching => Phase::Deleting,
            AttachmentState::Detached => Phase::Absent,
        }
    }
}

impl From<ProvisioningState> for Phase {
    fn from(s: ProvisioningState) -> Self {
        match s {
            ProvisioningState::Succeeded => Phase::Ready,
            ProvisioningState::Updating => Phase::Pending,
            ProvisioningState::Deleting => Phase::Deleting,
            ProvisioningState::Failed => Phase::Failed,
        }
    }
}

impl<T: Into<Phase>> From<Option<T>> for Phase {
    /// `None`: the cloud does not know the resource.
    fn from(s: Option<T>) -> Self {
        s.map_or(Phase::Absent, Into::into)
    }
}

/// Why an operation will never reach its goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// Waiting for it to be ready, it is gone or on its way out (deleted meanwhile, or
    /// not described yet: EC2's describes are eventually consistent).
    Vanished,
    /// The cloud's provisioning of it failed (ARM `provisioningState` Failed): the
    /// next plan provisions it again.
    ProvisioningFailed,
}

/// Where an operation stands, judged from its resource's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Done,
    NotYet,
    Failed(Miss),
}

/// Whether a resource in `phase` has reached `goal`.
pub fn judge(goal: Goal, phase: Phase) -> Verdict {
    match (goal, phase) {
        (_, Phase::Failed) => Verdict::Failed(Miss::ProvisioningFailed),
        (Goal::Ready, Phase::Ready) | (Goal::Gone, Phase::Absent) | (Goal::Settled, Phase::Ready | Phase::Absent) => Verdict::Done,
        (Goal::Ready, Phase::Absent | Phase::Deleting) => Verdict::Failed(Miss::Vanished),
        // Still on its way; for a delete, a resource that still reads ready has not
        // started going yet (an eventually consistent describe).
        (Goal::Ready | Goal::Settled, Phase::Pending | Phase::Deleting) | (Goal::Gone, Phase::Pending | Phase::Ready | Phase::Deleting) => {
            Verdict::NotYet
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_judgement_table() {
        use Goal as G;
        use Phase as P;
        let done = Verdict::Done;
        let not_yet = Verdict::NotYet;
        let vanished = Verdict::Failed(Miss::Vanished);
        let failed = Verdict::Failed(Miss::ProvisioningFailed);
        for (goal, phase, verdict) in [
            (G::Ready, P::Ready, done),
            (G::Ready, P::Pending, not_yet),
            (G::Ready, P::Absent, vanished),
            (G::Ready, P::Deleting, vanished),
            (G::Ready, P::Failed, failed),
            (G::Gone, P::Absent, done),
            (G::Gone, P::Deleting, not_yet),
            (G::Gone, P::Pending, not_yet),
            (G::Gone, P::Ready, not_yet),
            (G::Gone, P::Failed, failed),
            (G::Settled, P::Ready, done),
            (G::Settled, P::Absent, done),
            (G::Settled, P::Pending, not_yet),
            (G::Settled, P::Deleting, not_yet),
            (G::Settled, P::Failed, failed),
        ] {
            assert_eq!(judge(goal, phase), verdict, "{goal:?} {phase:?}");
        }
    }

    #[test]
    fn cloud_states_as_phases() {
        assert_eq!(Phase::from(AwsState::Modifying), Phase::Pending);
        assert_eq!(Phase::from(AwsState::Deleted), Phase::Absent);
        assert_eq!(Phase::from(None::<AwsState>), Phase::Absent);
        assert_eq!(Phase::from(Some(AttachmentState::Detaching)), Phase::Deleting);
        assert_eq!(Phase::from(ProvisioningState::Updating), Phase::Pending);
        assert_eq!(Phase::from(ProvisioningState::Failed), Phase::Failed);
    }

    #[test]
    fn the_goal_follows_from_the_operation() {
        use crate::ops::{AwsResourceKind, AzureResourceKind, Bound};
        assert_eq!(Goal::of_aws::<Bound>(&AwsOp::CreateVpnGateway { amazon_asn: 64512, tags: Default::default() }), Goal::Ready);
        assert_eq!(Goal::of_aws::<Bound>(&AwsOp::ModifyVpnConnection { vpn_id: "v".into(), cgw_id: "c".into() }), Goal::Ready);
        assert_eq!(Goal::of_aws::<Bound>(&AwsOp::DetachVpnGateway { vgw_id: "g".into(), vpc_id: "v".into() }), Goal::Gone);
        assert_eq!(Goal::of_aws::<Bound>(&AwsOp::Await { kind: AwsResourceKind::VpnGateway, id: "g".into() }), Goal::Settled);
        assert_eq!(Goal::of_azure::<Bound>(&AzureOp::DeleteConnection { name: "c".into() }), Goal::Gone);
        assert_eq!(
            Goal::of_azure::<Bound>(&AzureOp::SetSharedKey { name: "c".into(), shared_key: crate::secret::Psk::generate() }),
            Goal::Ready
        );
        assert_eq!(Goal::of_azure::<Bound>(&AzureOp::Await { kind: AzureResourceKind::Connection, name: "c".into() }), Goal::Settled);
    }

    #[test]
    fn goals_read_both_spellings() {
        assert_eq!(serde_json::to_string(&Goal::Ready).unwrap(), "\"ready\"");
        assert_eq!(serde_json::from_str::<Goal>("\"Settled\"").unwrap(), Goal::Settled);
        assert_eq!(serde_json::from_str::<Goal>("\"gone\"").unwrap(), Goal::Gone);
    }
}
