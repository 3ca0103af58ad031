//! What a started AWS operation waits for, carried in the core's opaque `OpHandle` as
//! JSON (`{"kind":"vpn","id":"vpn-…","target":"ready"}`): no state lives in the adapter,
//! so a handle survives a restart. Never holds a secret. `target` is the core's
//! [`Goal`]; whether it is reached is the core's judgement (`vpnbridge_core::goal`).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use vpnbridge_core::goal::Goal;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Wait {
    Vgw {
        id: String,
        target: Goal,
    },
    Attachment {
        vgw_id: String,
        vpc_id: String,
        target: Goal,
    },
    Cgw {
        id: String,
        target: Goal,
    },
    Vpn {
        id: String,
        target: Goal,
    },
    Route {
        route_table_id: String,
        destination: String,
        target: Goal,
    },
    VpnRoute {
        vpn_id: String,
        destination: String,
        target: Goal,
    },
    /// Route propagation from a VGW into a route table (enabled: ready; disabled: gone).
    Propagation {
        route_table_id: String,
        vgw_id: String,
        target: Goal,
    },
    /// A `ModifyVpnTunnelOptions`: done when the connection is available again with the
    /// requested inside CIDR (the key itself is never written into a handle).
    Tunnel {
        vpn_id: String,
        outside_ip: Ipv4Addr,
        inside_cidr: Option<String>,
    },
}

impl Wait {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a Wait always serialises")
    }

    pub fn decode(s: &str) -> Option<Self> {
        serde_json::from_str(s).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_like_json() {
        let w = Wait::Vpn { id: "vpn-1".into(), target: Goal::Ready };
        assert_eq!(w.encode(), r#"{"kind":"vpn","id":"vpn-1","target":"ready"}"#);
        assert_eq!(Wait::decode(&w.encode()), Some(w));
        assert_eq!(Wait::decode("https://management.azure.com/op"), None);
    }
}
