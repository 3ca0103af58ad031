//! vpnbridge-sim: both clouds' control planes (and a first tunnel data plane) in one
//! in-memory, persisted world, behind the core's [`VpnEndpoint`] traits.
//!
//! Layers, as in a real adapter: [`World`] mimics the clouds' API operations (EC2
//! calls, ARM PUT/DELETE) with their validation and error codes; [`SimAws`] and
//! [`SimAzure`] translate core operations into those calls. [`SimCloud`] holds the
//! world, its virtual clock and its file.
//!
//! [`VpnEndpoint`]: vpnbridge_core::endpoint::VpnEndpoint

mod aws;
mod azure;
mod cloud;
pub mod faults;
mod from_config;
mod latency;
mod probe;
pub mod world;

use std::time::Duration;

use vpnbridge_core::endpoint::{CloudName, EndpointError, ErrorKind, OpHandle, OpStatus};
use vpnbridge_core::ops::OpOutput;

pub use aws::{AwsTarget, SimAws};
pub use azure::{AzureTarget, SimAzure};
pub use cloud::{SimCloud, SimError, VnetSpec, VpcSpec};
pub use faults::{Fault, FaultInjector, FaultPlan, Faulty};
pub use latency::LatencyTable;
pub use probe::{ProbeHostSpec, SimProbe, TrafficLoss, TrafficWatch};
pub use world::World;

use world::{ApiError, Completion};

fn to_endpoint_error(e: ApiError, cloud: CloudName) -> EndpointError {
    EndpointError::new(cloud, e.kind, e.code, e.message)
}

pub(crate) fn completion_to_status(c: Completion, cloud: CloudName) -> OpStatus {
    match c {
        Completion::Running { retry_after_ms } => OpStatus::Running {
            retry_after: match cloud {
                // EC2 gives no hint.
                CloudName::Aws => None,
                CloudName::Azure => retry_after_ms.map(Duration::from_millis),
            },
        },
        Completion::Done { id, public_ip, tunnels, tags } => OpStatus::Done(OpOutput { id, public_ip, tunnels, tags }),
        Completion::Failed(e) => OpStatus::Failed(to_endpoint_error(e, cloud)),
    }
}

/// Saves the world after a call that reached the cloud; a failed save after a
/// committed change is reported as transient, and the change may have happened.
pub(crate) fn saved(
    cloud: &SimCloud,
    w: &World,
    name: CloudName,
    mutated: bool,
    result: Result<OpHandle, EndpointError>,
) -> Result<OpHandle, EndpointError> {
    if mutated && let Err(e) = cloud.save_locked(w) {
        let mut err = EndpointError::new(name, ErrorKind::Transient, "SimulatorStorage", e.to_string());
        err.may_have_committed = result.is_ok();
        return Err(err);
    }
    result
}
