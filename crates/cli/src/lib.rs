//! vpnbridge as a library: build, check, drill and tear down a redundant Azure VPN
//! Gateway <-> AWS Site-to-Site VPN from one validated config, from your own Rust code.
//!
//! The `vpnbridge` binary is a thin shell over this crate: it parses its arguments, calls
//! [`Deployment`], and renders the typed report it gets back (as text, or as the JSON
//! whose schemas are checked in under `docs/schema/`). Everything else — which backend
//! each side runs on (the simulator, AWS, Azure, any mix), the simulator's clock, the
//! run lock, waiting for the tunnels, the probes of `verify` and `drill` — lives here.
//!
//! # Example
//!
//! A whole deployment on the embedded simulator: build it, verify it carries traffic
//! both ways, tear it down. Nothing real is created, and the simulator's virtual clock
//! makes the 45-minute gateway build take milliseconds.
//!
//! ```
//! use vpnbridge::{Deployment, Options, Progress, Yes};
//!
//! # fn main() -> Result<(), vpnbridge::Error> {
//! let dir = tempfile::tempdir().expect("a scratch directory");
//! let path = dir.path().join("vpnbridge.toml");
//! std::fs::write(&path, vpnbridge::EXAMPLE_CONFIG).expect("the example written");
//! let config = vpnbridge::load(&path)?;
//!
//! // All-simulated runs need the simulator's clock: `runtime` builds the right one.
//! vpnbridge::runtime(&config.config)?.block_on(async {
//!     let deployment = Deployment::open(config, Options::default()).await?;
//!     let quiet = Progress::none();
//!
//!     let built = deployment.apply(&Yes, &quiet).await?;
//!     assert!(built.succeeded());
//!     println!("built in {:.0} simulated seconds", built.modelled_seconds().unwrap_or_default());
//!
//!     let verified = deployment.verify().await?;
//!     assert_eq!(verified.outcome(), vpnbridge::Outcome::Ok);
//!     assert_eq!(verified.tunnels_up(), 2);
//!
//!     let gone = deployment.destroy(&Yes, &quiet).await?;
//!     assert!(gone.succeeded());
//!     assert!(deployment.plan_destroy().await?.plan.is_empty());
//!     Ok(())
//! })
//! # }
//! ```
//!
//! Progress is a callback of [`Event`]s (each step as it starts and ends, the wait for the
//! tunnels, the drill's timeline), so you render your own; confirmation is your decision,
//! asked through [`Confirm`] before anything changes.
//!
//! # Stability
//!
//! This crate follows semver. Within a major version, the reports only gain fields (and
//! enums marked `#[non_exhaustive]` gain variants); the JSON documents keep
//! `format_version: 1` and also only gain fields, so a script written against one
//! release reads the next. The schemas in `docs/schema/` are generated from these types
//! and checked against them by the test suite.

mod deployment;
mod lock;
mod probe;
pub mod report;

pub use deployment::{
    Access, ApplyOptions, Confirm, CrashHook, Deployment, Error, Event, LockWaitHook, Options, Progress, Question, Yes, drill_refusal,
    load, runtime,
};
pub use lock::LockHeld;
pub use report::{
    ApplyReport, ApplyResult, Calls, DrillReport, ErrorReport, InitReport, Outcome, PlanReport, Simulated, StatusReport, VerifyReport,
};
/// The core types the reports are made of (config, plan, model, verify and drill).
pub use vpnbridge_core as core;
/// The simulator's knobs ([`Options::sim_latency`], [`Options::sim_faults`]).
pub use vpnbridge_sim::{FaultPlan, LatencyTable};

/// The commented example config `vpnbridge init` writes: a static-ha deployment on the
/// simulator.
pub const EXAMPLE_CONFIG: &str = vpnbridge_core::config::EXAMPLE;
