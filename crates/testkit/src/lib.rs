//! vpnbridge-testkit: what the workspace's tests share, so that it is written once.
//!
//! A dev-dependency only (`publish = false`); production crates never depend on it.
//! Scratch directories are `tempfile`'s, not a helper of ours.

pub mod moto;
