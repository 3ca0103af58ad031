//! Documented exit codes (see `vpnbridge --help`).

/// Success.
pub const OK: u8 = 0;
/// A cloud operation failed, or an unexpected error.
pub const FAILED: u8 = 1;
/// `plan --detailed-exitcode`: changes are pending.
pub const CHANGES_PENDING: u8 = 2;
/// The configuration is invalid; no cloud was called.
pub const CONFIG_INVALID: u8 = 3;
/// The clouds contradict the configuration; nothing was changed.
pub const PREFLIGHT: u8 = 4;
/// Confirmation declined or impossible.
pub const NOT_CONFIRMED: u8 = 5;
/// `verify` or `drill` found a problem: a tunnel down, a diagnosis, connectivity lost.
pub const PROBLEM_FOUND: u8 = 6;
/// The data plane is not observable (mixed backends; real clouds without probe VMs):
/// only the control plane was checked, and it found nothing wrong.
pub const NOT_OBSERVABLE: u8 = 7;
/// `verify` / `drill`: the probe VMs could not run the ping (timeout, permission,
/// agent offline): traffic is unknown, not lost; the control plane found nothing wrong.
pub const PROBE_FAILED: u8 = 9;
/// Another run holds the deployment's lock.
pub const LOCKED: u8 = 8;
/// Command-line usage error.
pub const USAGE: u8 = 64;
/// Simulator only: a crash injected with `--sim-faults` stopped the run.
pub const SIMULATED_CRASH: u8 = 70;
