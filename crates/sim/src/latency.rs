//! How long the simulated clouds take for each long-running operation, in virtual time.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Virtual durations of the simulated clouds' long-running operations.
///
/// The creation times follow the clouds' documentation where there is one (an Azure VPN
/// gateway takes 45 minutes); the rest, deletes in particular, are the simulator's own
/// choices (the clouds do not publish them), chosen to be plausible and distinct.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LatencyTable {
    // Azure
    #[serde(with = "millis")]
    pub azure_public_ip: Duration,
    #[serde(with = "millis")]
    pub azure_public_ip_delete: Duration,
    #[serde(with = "millis")]
    pub azure_vpn_gateway: Duration,
    #[serde(with = "millis")]
    pub azure_vpn_gateway_delete: Duration,
    #[serde(with = "millis")]
    pub azure_vpn_gateway_resize: Duration,
    /// A gateway PUT that changes its BGP settings (enableBgp, ASN, custom addresses):
    /// ARM publishes no duration; the gateway is Updating and forwards nothing meanwhile.
    #[serde(with = "millis")]
    pub azure_vpn_gateway_update: Duration,
    #[serde(with = "millis")]
    pub azure_local_network_gateway: Duration,
    #[serde(with = "millis")]
    pub azure_local_network_gateway_delete: Duration,
    #[serde(with = "millis")]
    pub azure_connection: Duration,
    #[serde(with = "millis")]
    pub azure_connection_delete: Duration,
    #[serde(with = "millis")]
    pub azure_shared_key_update: Duration,
    /// How long a deleted gateway's public IPs stay in use after its delete finishes
    /// (a DELETE of one answers 400 `PublicIPAddressInUse` meanwhile). ARM publishes no
    /// duration. 0 by default: the core's contract suite does not yet retry a transient
    /// `start` error as the executor does; tests of the window set it.
    #[serde(with = "millis")]
    pub azure_public_ip_release: Duration,
    // AWS
    #[serde(with = "millis")]
    pub aws_customer_gateway: Duration,
    #[serde(with = "millis")]
    pub aws_customer_gateway_delete: Duration,
    #[serde(with = "millis")]
    pub aws_vpn_gateway: Duration,
    #[serde(with = "millis")]
    pub aws_vpn_gateway_delete: Duration,
    #[serde(with = "millis")]
    pub aws_vgw_attach: Duration,
    #[serde(with = "millis")]
    pub aws_vgw_detach: Duration,
    #[serde(with = "millis")]
    pub aws_vpc_route: Duration,
    #[serde(with = "millis")]
    pub aws_vpc_route_delete: Duration,
    #[serde(with = "millis")]
    pub aws_vpn_connection: Duration,
    #[serde(with = "millis")]
    pub aws_vpn_connection_delete: Duration,
    #[serde(with = "millis")]
    pub aws_vpn_connection_route: Duration,
    #[serde(with = "millis")]
    pub aws_vpn_connection_route_delete: Duration,
    #[serde(with = "millis")]
    pub aws_modify_vpn_tunnel_options: Duration,
    /// ModifyVpnConnection (a customer gateway swap): both tunnels are down this long.
    #[serde(with = "millis")]
    pub aws_modify_vpn_connection: Duration,
    // Data plane
    /// From the moment both ends of a tunnel are in place and match until it is UP.
    #[serde(with = "millis")]
    pub tunnel_negotiation: Duration,
    /// From a tunnel being UP (with both BGP ends agreeing) until its BGP session is
    /// established and the routes are exchanged.
    #[serde(with = "millis")]
    pub bgp_establish: Duration,
}

impl Default for LatencyTable {
    fn default() -> Self {
        let s = Duration::from_secs;
        let m = |n: u64| Duration::from_secs(60 * n);
        Self {
            azure_public_ip: s(10),
            azure_public_ip_delete: s(10),
            azure_vpn_gateway: m(45),
            azure_vpn_gateway_delete: m(20),
            azure_vpn_gateway_resize: m(30),
            azure_vpn_gateway_update: m(15),
            azure_local_network_gateway: s(45),
            azure_local_network_gateway_delete: s(30),
            azure_connection: s(90),
            azure_connection_delete: s(60),
            azure_shared_key_update: s(30),
            azure_public_ip_release: Duration::ZERO,
            aws_customer_gateway: s(10),
            aws_customer_gateway_delete: s(10),
            aws_vpn_gateway: s(20),
            aws_vpn_gateway_delete: s(20),
            aws_vgw_attach: s(40),
            aws_vgw_detach: s(40),
            aws_vpc_route: s(2),
            aws_vpc_route_delete: s(2),
            aws_vpn_connection: m(6),
            aws_vpn_connection_delete: m(2),
            aws_vpn_connection_route: s(15),
            aws_vpn_connection_route_delete: s(15),
            aws_modify_vpn_tunnel_options: m(4),
            aws_modify_vpn_connection: m(2),
            tunnel_negotiation: s(60),
            bgp_establish: s(10),
        }
    }
}

impl LatencyTable {
    /// Every operation completes at once (still observed as pending until the next
    /// call); for tests that only care about outcomes.
    pub fn instant() -> Self {
        let z = Duration::ZERO;
        Self {
            azure_public_ip: z,
            azure_public_ip_delete: z,
            azure_vpn_gateway: z,
            azure_vpn_gateway_delete: z,
            azure_vpn_gateway_resize: z,
            azure_vpn_gateway_update: z,
            azure_local_network_gateway: z,
            azure_local_network_gateway_delete: z,
            azure_connection: z,
            azure_connection_delete: z,
            azure_shared_key_update: z,
            azure_public_ip_release: z,
            aws_customer_gateway: z,
            aws_customer_gateway_delete: z,
            aws_vpn_gateway: z,
            aws_vpn_gateway_delete: z,
            aws_vgw_attach: z,
            aws_vgw_detach: z,
            aws_vpc_route: z,
            aws_vpc_route_delete: z,
            aws_vpn_connection: z,
            aws_vpn_connection_delete: z,
            aws_vpn_connection_route: z,
            aws_vpn_connection_route_delete: z,
            aws_modify_vpn_tunnel_options: z,
            aws_modify_vpn_connection: z,
            tunnel_negotiation: z,
            bgp_establish: z,
        }
    }
}

/// Durations as whole milliseconds in the world file.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
