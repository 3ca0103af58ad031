//! Which probe `verify` and `drill` ping through: the simulator's when both sides are
//! simulated, the users' test VMs of `[probe]` when both are real, none otherwise.

use std::time::Duration;

use anyhow::Context;
use vpnbridge_core::config::{Backend, Config};
use vpnbridge_core::probe::Probe;
use vpnbridge_core::probe::vm::{VmProbe, VmProbeSettings};
use vpnbridge_core::verify::DataPlane;
use vpnbridge_sim::{SimCloud, SimProbe};

use crate::deployment::{Error, aws_settings};

/// Why the data plane cannot be observed with this config's backends, if it cannot.
pub(crate) fn not_observable_reason(config: &Config) -> Option<&'static str> {
    match (config.azure.backend, config.aws.backend) {
        (Backend::Sim, Backend::Sim) => None,
        (Backend::Real, Backend::Real) if config.probe.is_some() => None,
        (Backend::Real, Backend::Real) => Some(
            "real clouds without probe VMs: only the control plane (VgwTelemetry, tunnelConnectionStatus, IKE SAs) is \
             checked; name a test VM on each side in a [probe] table (azure_vm, aws_instance) to ping through the tunnels",
        ),
        _ => Some(
            "mixed backends: one side is simulated and the other real, so no packet can cross; only the pairing and \
             each side's own status are checked",
        ),
    }
}

/// The simulator's probe, when both sides are simulated.
pub(crate) fn sim_probe(sim: Option<&SimCloud>, config: &Config) -> Option<SimProbe> {
    if config.azure.backend != Backend::Sim || config.aws.backend != Backend::Sim {
        return None;
    }
    SimProbe::for_config(sim?.clone(), config)
}

/// The probe for this deployment, if its data plane can be observed.
pub(crate) async fn probe(
    sim: Option<&SimCloud>,
    config: &Config,
    azure: Option<&vpnbridge_azure::AzureEndpoint>,
) -> Result<Option<Box<dyn Probe>>, Error> {
    if not_observable_reason(config).is_some() {
        return Ok(None);
    }
    if let Some(p) = sim_probe(sim, config) {
        return Ok(Some(Box::new(p)));
    }
    let (Some(probe), Some(azure)) = (&config.probe, azure) else { return Ok(None) };
    let instance =
        vpnbridge_aws::Ec2TestVm::connect(&aws_settings(config), &probe.aws_instance).await.context("connecting to AWS for the probe")?;
    let vm = azure.test_vm(&probe.azure_vm);
    let settings = match std::env::var("VPNBRIDGE_PROBE_POLL_MS").ok().and_then(|v| v.parse::<u64>().ok()) {
        Some(ms) => VmProbeSettings { poll: Duration::from_millis(ms), ..VmProbeSettings::default() },
        None => VmProbeSettings::default(),
    };
    Ok(Some(Box::new(VmProbe::new(
        std::sync::Arc::new(vm),
        std::sync::Arc::new(instance),
        config.azure.address_space.clone(),
        config.aws.cidrs.clone(),
        settings,
    ))))
}

pub(crate) fn data_plane<'a>(config: &Config, probe: &'a Option<Box<dyn Probe>>) -> DataPlane<'a> {
    match probe {
        Some(p) => DataPlane::Probe(p.as_ref()),
        None => DataPlane::NotObservable(not_observable_reason(config).unwrap_or("no probe")),
    }
}
