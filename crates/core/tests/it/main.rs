//! The one integration-test target of vpnbridge-core (one link instead of many).

mod bad_configs;
mod corpus;
mod good_configs;
mod inputs;
