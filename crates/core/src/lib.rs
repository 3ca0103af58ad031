//! vpnbridge-core: the cloud-agnostic heart of vpnbridge.
//!
//! config -> validate -> observe -> plan -> execute -> (verify). Core owns every
//! decision; it never talks to a network and never names a cloud SDK.

pub mod bgp;
pub mod committed;
pub mod config;
// For the tests of `VpnEndpoint` implementations only: the crates that implement it
// enable the `contract` feature in their dev-dependencies.
#[cfg(feature = "contract")]
pub mod contract;
pub mod drill;
pub mod endpoint;
pub mod exec;
pub mod goal;
pub mod model;
pub mod ops;
pub mod ownership;
pub mod pairing;
pub mod plan;
pub mod probe;
pub mod secret;
pub mod topology;
pub mod verify;
