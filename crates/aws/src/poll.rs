//! Polling a started operation: read the resource by id, ask the core whether its
//! goal is reached (`vpnbridge_core::goal::judge`), and say the answer in EC2's terms.

use std::time::Duration;

use ipnet::IpNet;
use vpnbridge_core::endpoint::{EndpointError, ErrorKind, OpStatus};
use vpnbridge_core::goal::{Miss, Phase, Verdict, judge};
use vpnbridge_core::model::{AwsState, Tags};
use vpnbridge_core::ops::OpOutput;

use crate::AwsEndpoint;
use crate::error::local;
use crate::handle::Wait;

/// How long to wait between polls of a resource that is not there yet (EC2's own
/// waiters poll VPN connections every 15 s; gateways settle faster).
const POLL_VPN: Duration = Duration::from_secs(15);
const POLL_GATEWAY: Duration = Duration::from_secs(5);

impl AwsEndpoint {
    pub(crate) async fn poll_wait(&self, wait: &Wait) -> Result<OpStatus, EndpointError> {
        let running = |every| Ok(OpStatus::Running { retry_after: Some(every) });
        let done = |id: &str, tags: Option<Tags>| Ok(OpStatus::Done(OpOutput { id: Some(id.to_owned()), tags, ..OpOutput::default() }));
        match wait {
            Wait::Vgw { id, target } => {
                let vgw = self.vgw_by_id(id).await?;
                match judge(*target, Phase::from(vgw.as_ref().map(|g| g.state))) {
                    Verdict::Done => done(id, vgw.map(|g| g.tags)),
                    Verdict::NotYet => running(POLL_GATEWAY),
                    Verdict::Failed(miss) => Err(missed(miss, "virtual private gateway", id)),
                }
            }
            Wait::Cgw { id, target } => {
                let cgw = self.cgw_by_id(id).await?;
                match judge(*target, Phase::from(cgw.as_ref().map(|g| g.state))) {
                    // Its tags, read back by id: the core judges whose it is.
                    Verdict::Done => done(id, cgw.map(|g| g.tags)),
                    Verdict::NotYet => running(POLL_GATEWAY),
                    Verdict::Failed(miss) => Err(missed(miss, "customer gateway", id)),
                }
            }
            Wait::Vpn { id, target } => {
                let vpn = self.vpn_by_id(id).await?;
                match judge(*target, Phase::from(vpn.as_ref().map(|v| v.state))) {
                    Verdict::Done => {
                        let tags = vpn.as_ref().map(|v| v.tags.clone());
                        let tunnels = vpn.filter(|v| v.state == AwsState::Available).map(|v| v.tunnels).unwrap_or_default();
                        Ok(OpStatus::Done(OpOutput { id: Some(id.clone()), public_ip: None, tunnels, tags }))
                    }
                    Verdict::NotYet => running(POLL_VPN),
                    Verdict::Failed(miss) => Err(missed(miss, "VPN connection", id)),
                }
            }
            Wait::Attachment { vgw_id, vpc_id, target } => {
                let vgw = self.vgw_by_id(vgw_id).await?;
                let state = vgw.as_ref().and_then(|g| g.attachments.iter().find(|a| &a.vpc_id == vpc_id)).map(|a| a.state);
                match judge(*target, Phase::from(state)) {
                    Verdict::Done => done(vgw_id, None),
                    Verdict::NotYet => running(POLL_GATEWAY),
                    Verdict::Failed(_) if vgw.is_none() => {
                        Err(local(ErrorKind::NotFound, "InvalidVpnGatewayID.NotFound", format!("VGW {vgw_id} is gone")))
                    }
                    Verdict::Failed(_) => Ok(OpStatus::Failed(local(
                        ErrorKind::Transient,
                        "IncorrectState",
                        format!("the attachment of {vgw_id} to {vpc_id} went away while attaching"),
                    ))),
                }
            }
            Wait::Route { route_table_id, destination, target } => {
                let dest: IpNet = destination.parse().map_err(|_| bad_handle(destination))?;
                let table = self.route_table_by_id(route_table_id).await?;
                // The route CreateRoute/DeleteRoute act on, not one a VGW propagates to
                // the same destination (which a deleted static route uncovers).
                let present = table.as_ref().is_some_and(|t| t.routes.iter().any(|r| r.destination == dest && !r.propagated));
                match judge(*target, if present { Phase::Ready } else { Phase::Absent }) {
                    Verdict::Done => done(route_table_id, None),
                    Verdict::NotYet => running(POLL_GATEWAY),
                    Verdict::Failed(_) if table.is_none() => Err(local(
                        ErrorKind::NotFound,
                        "InvalidRouteTableID.NotFound",
                        format!("route table {route_table_id} does not exist"),
                    )),
                    // Describes are eventually consistent: the core polls again.
                    Verdict::Failed(_) => Err(local(
                        ErrorKind::Transient,
                        "RouteNotListed",
                        format!("route table {route_table_id} does not list the route to {destination} yet"),
                    )),
                }
            }
            Wait::Propagation { route_table_id, vgw_id, target } => {
                let table = self.route_table_by_id(route_table_id).await?;
                let on = table.as_ref().is_some_and(|t| t.propagating_vgws.iter().any(|v| v == vgw_id));
                match judge(*target, if on { Phase::Ready } else { Phase::Absent }) {
                    Verdict::Done => done(route_table_id, None),
                    Verdict::NotYet => running(POLL_GATEWAY),
                    Verdict::Failed(_) if table.is_none() => Err(local(
                        ErrorKind::NotFound,
                        "InvalidRouteTableID.NotFound",
                        format!("route table {route_table_id} does not exist"),
                    )),
                    // Describes are eventually consistent: the core polls again.
                    Verdict::Failed(_) => Err(local(
                        ErrorKind::Transient,
                        "PropagationNotListed",
                        format!("route table {route_table_id} does not list {vgw_id} among its propagating gateways yet"),
                    )),
                }
            }
            Wait::VpnRoute { vpn_id, destination, target } => {
                let dest: IpNet = destination.parse().map_err(|_| bad_handle(destination))?;
                let vpn = self.vpn_by_id(vpn_id).await?.filter(|v| !v.state.is_gone());
                let state = vpn.as_ref().and_then(|v| v.routes.iter().find(|r| r.destination == dest)).map(|r| r.state);
                match judge(*target, Phase::from(state)) {
                    Verdict::Done => done(vpn_id, None),
                    Verdict::NotYet => running(POLL_GATEWAY),
                    Verdict::Failed(_) if vpn.is_none() => Ok(OpStatus::Failed(local(
                        ErrorKind::NotFound,
                        "InvalidVpnConnectionID.NotFound",
                        format!("VPN connection {vpn_id} went away before its route {destination} was ready"),
                    ))),
                    // Describes are eventually consistent: the core polls again.
                    Verdict::Failed(_) => Err(local(
                        ErrorKind::Transient,
                        "RouteNotListed",
                        format!("VPN connection {vpn_id} does not list its route to {destination} yet"),
                    )),
                }
            }
            Wait::Tunnel { vpn_id, outside_ip, inside_cidr } => {
                let vpn = self.vpn_by_id(vpn_id).await?.ok_or_else(|| {
                    local(ErrorKind::NotFound, "InvalidVpnConnectionID.NotFound", format!("VPN connection {vpn_id} does not exist"))
                })?;
                let tunnel = vpn.tunnels.iter().find(|t| t.outside_ip == *outside_ip);
                let applied = match (tunnel, inside_cidr) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(t), Some(c)) => t.inside_cidr.map(|n| n.to_string()).as_deref() == Some(c.as_str()),
                };
                if vpn.state == AwsState::Available && applied {
                    Ok(OpStatus::Done(OpOutput { id: Some(vpn_id.clone()), public_ip: None, tunnels: vpn.tunnels, tags: None }))
                } else if vpn.state.is_gone() {
                    Ok(OpStatus::Failed(local(
                        ErrorKind::NotFound,
                        "InvalidVpnConnectionID.NotFound",
                        format!("VPN connection {vpn_id} was deleted while its tunnel {outside_ip} was being modified"),
                    )))
                } else {
                    running(POLL_VPN)
                }
            }
        }
    }
}

/// The core's verdict that a wait will not end well, in EC2's terms. A resource not
/// described while we wait for it to be available may not be listed yet (describes are
/// eventually consistent), so that stays transient: the core polls again, within its
/// retry policy.
pub(crate) fn missed(miss: Miss, what: &str, id: &str) -> EndpointError {
    match miss {
        Miss::Vanished => local(
            ErrorKind::Transient,
            "ResourceWentAway",
            format!("{what} {id} was deleted (or never appeared) while vpnbridge waited for it to become available"),
        ),
        // EC2 has no failed state; nothing reports this phase.
        Miss::ProvisioningFailed => local(ErrorKind::Permanent, "ProvisioningFailed", format!("{what} {id} failed")),
    }
}

pub(crate) fn bad_handle(what: &str) -> EndpointError {
    local(ErrorKind::Permanent, "InvalidHandle", format!("not an operation handle of the AWS adapter: {what}"))
}

#[cfg(test)]
mod tests {
    use vpnbridge_core::goal::Goal;

    use super::*;

    /// EC2's states judged against each goal (the core's judgement, EC2's words).
    #[test]
    fn lifecycle_targets() {
        let lifecycle = |state: Option<AwsState>, target: Goal| match judge(target, Phase::from(state)) {
            Verdict::Done => Ok(true),
            Verdict::NotYet => Ok(false),
            Verdict::Failed(m) => Err(missed(m, "x", "x")),
        };
        assert!(lifecycle(Some(AwsState::Available), Goal::Ready).unwrap());
        assert!(!lifecycle(Some(AwsState::Pending), Goal::Ready).unwrap());
        assert!(lifecycle(Some(AwsState::Deleted), Goal::Ready).is_err());
        assert!(lifecycle(None, Goal::Gone).unwrap());
        assert!(lifecycle(Some(AwsState::Deleted), Goal::Gone).unwrap());
        assert!(!lifecycle(Some(AwsState::Deleting), Goal::Gone).unwrap());
        assert!(!lifecycle(Some(AwsState::Pending), Goal::Settled).unwrap());
        assert!(lifecycle(Some(AwsState::Available), Goal::Settled).unwrap());
    }
}
