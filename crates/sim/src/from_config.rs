//! The simulator's view of a validated config: the user's prerequisites (VNet, VPC)
//! and the scope of each endpoint.

use vpnbridge_core::config::Config;

use crate::{AwsTarget, AzureTarget, VnetSpec, VpcSpec};

impl VnetSpec {
    /// The VNet (with its GatewaySubnet) that `config` declares.
    pub fn from_config(config: &Config) -> Self {
        let az = &config.azure;
        Self {
            subscription_id: az.subscription_id.clone(),
            resource_group: az.resource_group.clone(),
            location: az.location.clone(),
            name: az.vnet.clone(),
            address_space: az.address_space.clone(),
            gateway_subnet: az.gateway_subnet,
        }
    }
}

impl VpcSpec {
    /// The VPC that `config` declares.
    pub fn from_config(config: &Config) -> Self {
        Self { region: config.aws.region.clone(), vpc_id: config.aws.vpc_id.clone(), cidrs: config.aws.cidrs.clone() }
    }
}

impl AwsTarget {
    /// The region and VPC that `config` names.
    pub fn from_config(config: &Config) -> Self {
        Self { region: config.aws.region.clone(), vpc_id: config.aws.vpc_id.clone() }
    }
}

impl AzureTarget {
    /// The subscription, resource group, location and VNet that `config` names.
    pub fn from_config(config: &Config) -> Self {
        let az = &config.azure;
        Self {
            subscription_id: az.subscription_id.clone(),
            resource_group: az.resource_group.clone(),
            location: az.location.clone(),
            vnet: az.vnet.clone(),
        }
    }
}
