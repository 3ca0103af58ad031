//! What a started Azure operation waits for, carried in the core's opaque `OpHandle` as
//! JSON, so any process can poll it; the goal in it is the core's `Goal`.

use serde::{Deserialize, Serialize};
use vpnbridge_core::endpoint::{CloudName, EndpointError, ErrorKind, OpHandle};
use vpnbridge_core::goal::Goal;
use vpnbridge_core::ops::AzureResourceKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Kind {
    PublicIp,
    VpnGateway,
    LocalNetworkGateway,
    Connection,
}

impl Kind {
    pub(crate) fn collection(self) -> &'static str {
        match self {
            Kind::PublicIp => "publicIPAddresses",
            Kind::VpnGateway => "virtualNetworkGateways",
            Kind::LocalNetworkGateway => "localNetworkGateways",
            Kind::Connection => "connections",
        }
    }
}

impl From<AzureResourceKind> for Kind {
    fn from(k: AzureResourceKind) -> Self {
        match k {
            AzureResourceKind::PublicIp => Kind::PublicIp,
            AzureResourceKind::VpnGateway => Kind::VpnGateway,
            AzureResourceKind::LocalNetworkGateway => Kind::LocalNetworkGateway,
            AzureResourceKind::Connection => Kind::Connection,
        }
    }
}

/// What an [`OpHandle`] holds (as JSON), so any process can poll it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t")]
pub(crate) enum Handle {
    /// An ARM asynchronous operation (`Azure-AsyncOperation`).
    Async { url: String, kind: Kind, name: String, goal: Goal },
    /// A `Location` URL: 202 while running, 200/204 when done.
    Location { url: String, kind: Kind, name: String },
    /// No operation URL: watch the resource's `provisioningState`.
    Watch { kind: Kind, name: String, goal: Goal },
    /// Done when started (a delete of something already gone).
    Done { id: String },
    /// A POST action answered at once, with its body.
    Result { body: String },
}

pub(crate) fn encode(h: &Handle) -> OpHandle {
    OpHandle(serde_json::to_string(h).unwrap_or_default())
}

pub(crate) fn bad_handle(why: &str) -> EndpointError {
    EndpointError::new(CloudName::Azure, ErrorKind::Permanent, "InvalidHandle", format!("not a handle of this Azure adapter: {why}"))
}

pub(crate) fn decode(h: &OpHandle) -> Result<Handle, EndpointError> {
    serde_json::from_str(&h.0).map_err(|e| bad_handle(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip() {
        let h = Handle::Async { url: "http://x/op?api-version=1".into(), kind: Kind::Connection, name: "c".into(), goal: Goal::Ready };
        assert_eq!(decode(&encode(&h)).expect("decodes"), h);
        assert!(decode(&OpHandle("ec2-op-1".into())).is_err());
    }
}
