//! Whether a failed or surprising call already did what it was asked: the one place
//! that decides it, for the executor.
//!
//! Endpoints report what the cloud said (the raw error, the resource a call returned
//! and its tags) and never decide whether that means "done"; the executor asks here:
//!
//! - after an error that *may have committed* a create (a timeout after commit; AWS
//!   creates have no client token), [`Reconciled::committed`] reads a fresh
//!   observation: the resource is there (wait for it), in place (done), or not;
//! - after the cloud *refused a repeat* of an untaggable create
//!   ([`Reconciled::refused_as_repeat`]: an attachment or a VPC route that is already
//!   there), the same reading decides whether it is ours and done, or someone else's;
//! - when an operation finishes, [`Reconciled::owned`] checks that what the cloud
//!   returned is ours (EC2 answers `CreateCustomerGateway` with an existing gateway of
//!   the same IP, ASN and device name, whoever's it is);
//! - a modification is done only once an observation shows it
//!   ([`Reconciled::visible`]).

use crate::endpoint::{Aws, Azure, Cloud, CloudName, EndpointError, ErrorKind};
use crate::model::{AttachmentState, AwsObserved, AwsState, AzureObserved, TAG_DEPLOYMENT, TAG_ROLE, Tags, VpnConnection};
use crate::ops::{AwsOp, AwsResourceKind, AzureOp, AzureResourceKind, OpOutput};

/// What an observation says about an operation whose outcome is unknown.
#[derive(Debug, Clone, PartialEq)]
pub enum Committed<Op> {
    /// Not carried out (or not visible yet).
    No,
    /// Carried out and in place (untaggable things: routes, attachments).
    Done,
    /// Carried out and still settling: wait for it with this operation.
    Wait(Op),
}

/// How the executor judges one cloud's operations. Pure: every answer comes from the
/// operation, the endpoint's report and an observation.
pub trait Reconciled: Cloud {
    /// "Not found" means done.
    fn is_delete(op: &Self::Op) -> bool;

    /// Whether an observation can show that `op` was carried out (creates, and the
    /// untaggable things recognised by their target).
    fn findable(op: &Self::Op) -> bool;

    /// What `observed` says about `op`, whose answer was lost or refused.
    fn committed(observed: &Self::Observed, op: &Self::Op) -> Committed<Self::Op>;

    /// Whether the cloud's refusal `e` of `op` may be the answer to a repeat of `op`
    /// that already went through (the executor then observes once before failing).
    fn refused_as_repeat(op: &Self::Op, e: &EndpointError) -> bool;

    /// Whether what a finished `op` reports is this deployment's: an error naming the
    /// resource in the way, and what to do, when it is not.
    fn owned(op: &Self::Op, out: &OpOutput) -> Result<(), EndpointError>;

    /// For a modification that counts only once it can be read back: the output once
    /// `observed` shows it, `None` while it does not. Other operations: never asked.
    fn visible(observed: &Self::Observed, op: &Self::Op) -> Option<OpOutput>;

    /// Whether `op` is done only once [`Reconciled::visible`] says so.
    fn awaits_visibility(op: &Self::Op) -> bool;
}

impl Reconciled for Aws {
    fn is_delete(op: &AwsOp) -> bool {
        op.is_delete()
    }

    fn findable(op: &AwsOp) -> bool {
        matches!(
            op,
            AwsOp::CreateVpnGateway { .. }
                | AwsOp::CreateCustomerGateway { .. }
                | AwsOp::CreateVpnConnection { .. }
                | AwsOp::AttachVpnGateway { .. }
                | AwsOp::CreateRoute { .. }
                | AwsOp::CreateVpnConnectionRoute { .. }
        )
    }

    fn committed(observed: &AwsObserved, op: &AwsOp) -> Committed<AwsOp> {
        let wait = |kind, id| Committed::Wait(AwsOp::Await { kind, id });
        match op {
            AwsOp::CreateVpnGateway { .. } | AwsOp::CreateCustomerGateway { .. } | AwsOp::CreateVpnConnection { .. } => {
                find_created(observed, op).map_or(Committed::No, |(kind, id)| wait(kind, id))
            }
            AwsOp::AttachVpnGateway { vgw_id, vpc_id } => {
                let attached =
                    observed.vpn_gateways.iter().find(|v| &v.id == vgw_id).and_then(|v| v.attachments.iter().find(|a| &a.vpc_id == vpc_id));
                match attached.map(|a| a.state) {
                    Some(AttachmentState::Attached) => Committed::Done,
                    Some(AttachmentState::Attaching) => wait(AwsResourceKind::VgwAttachment, vgw_id.clone()),
                    _ => Committed::No,
                }
            }
            // A route is ours only through its target: the same destination via our VGW.
            AwsOp::CreateRoute { route_table_id, destination, vgw_id } => {
                let table = observed.vpc.as_ref().and_then(|v| v.route_tables.iter().find(|t| &t.id == route_table_id));
                let there =
                    table.is_some_and(|t| t.routes.iter().any(|r| r.destination == *destination && r.gateway_id.as_ref() == Some(vgw_id)));
                if there { Committed::Done } else { Committed::No }
            }
            AwsOp::CreateVpnConnectionRoute { vpn_id, destination } => {
                let vpn = observed.vpn_connections.iter().find(|v| &v.id == vpn_id);
                let there = vpn.is_some_and(|v| v.routes.iter().any(|r| r.destination == *destination && !r.state.is_gone()));
                if there { Committed::Done } else { Committed::No }
            }
            _ => Committed::No,
        }
    }

    fn refused_as_repeat(op: &AwsOp, e: &EndpointError) -> bool {
        match op {
            // A repeat of an attach that went through (its answer lost) is refused in
            // whatever words EC2 chooses: any refusal is looked at.
            AwsOp::AttachVpnGateway { .. } => !e.is_transient(),
            // The same route via our VGW already there (a repeat whose first answer was
            // lost); a route via anything else stays someone else's.
            AwsOp::CreateRoute { .. } => e.code == "RouteAlreadyExists",
            _ => false,
        }
    }

    fn owned(op: &AwsOp, out: &OpOutput) -> Result<(), EndpointError> {
        let AwsOp::CreateCustomerGateway { ip, bgp_asn, device_name, tags } = op else { return Ok(()) };
        // An endpoint that reports no tags makes no claim; every real one reports them.
        let Some(found) = &out.tags else { return Ok(()) };
        if found.get(TAG_DEPLOYMENT) == tags.get(TAG_DEPLOYMENT) {
            return Ok(());
        }
        let id = out.id.as_deref().unwrap_or("(no id)");
        let whose = found.get(TAG_DEPLOYMENT).map_or_else(|| "untagged".to_owned(), |d| format!("tagged for deployment {d:?}"));
        // EC2 changes nothing of a customer gateway but its tags: delete it, or tag it ours.
        let ours = |k: &str| tags.get(k).map_or_else(String::new, |v| format!("{k}={v}"));
        Err(EndpointError::new(
            CloudName::Aws,
            ErrorKind::Conflict,
            "ForeignCustomerGateway",
            format!(
                "CreateCustomerGateway for {ip} (ASN {bgp_asn}, device name {device_name:?}) returned the existing customer gateway {id} ({whose}), which is not this deployment's: delete it (after the VPN connections on it), or tag it {} and {} to let this deployment use it, then apply again",
                ours(TAG_DEPLOYMENT),
                ours(TAG_ROLE)
            ),
        ))
    }

    fn visible(observed: &AwsObserved, op: &AwsOp) -> Option<OpOutput> {
        modification_visible(observed, op).map(|vpn| OpOutput {
            id: Some(vpn.id.clone()),
            public_ip: None,
            tunnels: vpn.tunnels.clone(),
            tags: Some(vpn.tags.clone()),
        })
    }

    fn awaits_visibility(op: &AwsOp) -> bool {
        matches!(op, AwsOp::ModifyVpnTunnelOptions { .. } | AwsOp::ModifyVpnConnection { .. })
    }
}

impl Reconciled for Azure {
    fn is_delete(op: &AzureOp) -> bool {
        op.is_delete()
    }

    fn findable(op: &AzureOp) -> bool {
        op.created_resource().is_some()
    }

    fn committed(observed: &AzureObserved, op: &AzureOp) -> Committed<AzureOp> {
        match op.created_resource() {
            Some((kind, name)) if azure_exists(observed, kind, name) => Committed::Wait(AzureOp::Await { kind, name: name.to_owned() }),
            _ => Committed::No,
        }
    }

    fn refused_as_repeat(_: &AzureOp, _: &EndpointError) -> bool {
        // ARM's PUT is idempotent: a repeat is answered like the first.
        false
    }

    fn owned(_: &AzureOp, _: &OpOutput) -> Result<(), EndpointError> {
        // Azure resources are named: a name taken by someone else is refused by the
        // planner (`foreign_names`) before any PUT.
        Ok(())
    }

    fn visible(_: &AzureObserved, _: &AzureOp) -> Option<OpOutput> {
        None
    }

    fn awaits_visibility(_: &AzureOp) -> bool {
        false
    }
}

/// The VPN connection `op` modified, once it reads `available` with the change in it.
fn modification_visible<'a>(observed: &'a AwsObserved, op: &AwsOp) -> Option<&'a VpnConnection> {
    let available = |id: &str| observed.vpn_connections.iter().find(|v| v.id == id && v.state == AwsState::Available);
    match op {
        AwsOp::ModifyVpnTunnelOptions { vpn_id, outside_ip, psk, inside_cidr } => available(vpn_id).filter(|v| {
            v.tunnels.iter().any(|t| {
                t.outside_ip == *outside_ip
                    && psk.as_ref().is_none_or(|k| t.psk.as_ref() == Some(k))
                    && inside_cidr.is_none_or(|c| t.inside_cidr == Some(c))
            })
        }),
        AwsOp::ModifyVpnConnection { vpn_id, cgw_id } => available(vpn_id).filter(|v| &v.customer_gateway_id == cgw_id),
        _ => None,
    }
}

fn azure_exists(o: &AzureObserved, kind: AzureResourceKind, name: &str) -> bool {
    match kind {
        AzureResourceKind::PublicIp => o.public_ips.iter().any(|p| p.name == name),
        AzureResourceKind::VpnGateway => o.vpn_gateway.as_ref().is_some_and(|g| g.name == name),
        AzureResourceKind::LocalNetworkGateway => o.local_network_gateways.iter().any(|l| l.name == name),
        AzureResourceKind::Connection => o.connections.iter().any(|c| c.name == name),
    }
}

/// The resource a create without a client token made, if it exists: the live one with
/// the same ownership tags (and, for a customer gateway, the same IP and ASN: a stale one
/// of the same role may still be there while a VPN connection moves off it).
pub fn find_created(observed: &AwsObserved, op: &AwsOp) -> Option<(AwsResourceKind, String)> {
    match op {
        AwsOp::CreateCustomerGateway { ip, bgp_asn, tags, .. } => observed
            .customer_gateways
            .iter()
            .find(|c| !c.state.is_gone() && c.ip == *ip && c.bgp_asn == *bgp_asn && same_owner(&c.tags, tags))
            .map(|c| (AwsResourceKind::CustomerGateway, c.id.clone())),
        AwsOp::CreateVpnGateway { tags, .. } | AwsOp::CreateVpnConnection { tags, .. } => find_by_tags(observed, tags),
        _ => None,
    }
}

fn same_owner(a: &Tags, b: &Tags) -> bool {
    a.get(TAG_ROLE) == b.get(TAG_ROLE) && a.get(TAG_DEPLOYMENT) == b.get(TAG_DEPLOYMENT)
}

/// A resource carrying exactly these ownership tags, if one exists and is not gone.
pub fn find_by_tags(observed: &AwsObserved, tags: &Tags) -> Option<(AwsResourceKind, String)> {
    let same = |t: &Tags| same_owner(t, tags);
    let live = |s: AwsState| !s.is_gone();
    observed
        .vpn_gateways
        .iter()
        .find(|v| live(v.state) && same(&v.tags))
        .map(|v| (AwsResourceKind::VpnGateway, v.id.clone()))
        .or_else(|| {
            observed
                .customer_gateways
                .iter()
                .find(|c| live(c.state) && same(&c.tags))
                .map(|c| (AwsResourceKind::CustomerGateway, c.id.clone()))
        })
        .or_else(|| {
            observed.vpn_connections.iter().find(|c| live(c.state) && same(&c.tags)).map(|c| (AwsResourceKind::VpnConnection, c.id.clone()))
        })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::{Owner, Role};

    fn cgw_op(owner: &Owner) -> AwsOp {
        AwsOp::CreateCustomerGateway {
            ip: Ipv4Addr::new(20, 0, 113, 10),
            bgp_asn: 65000,
            device_name: "vpnbridge-t-cgw-0".into(),
            tags: owner.tags(&Role::CustomerGateway(0)),
        }
    }

    #[test]
    fn a_returned_customer_gateway_without_our_tag_is_a_conflict() {
        let owner = Owner::new("t");
        let out = |tags: Option<Tags>| OpOutput { id: Some("cgw-theirs".into()), tags, ..OpOutput::default() };
        assert!(Aws::owned(&cgw_op(&owner), &out(Some(owner.tags(&Role::CustomerGateway(0))))).is_ok());
        let e = Aws::owned(&cgw_op(&owner), &out(Some(Tags::new()))).unwrap_err();
        assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Conflict, "ForeignCustomerGateway"));
        assert!(e.message.contains("cgw-theirs") && e.message.contains("untagged") && e.message.contains("20.0.113.10"), "{e}");
        let e = Aws::owned(&cgw_op(&owner), &out(Some(Owner::new("other").tags(&Role::CustomerGateway(0))))).unwrap_err();
        assert!(e.message.contains("tagged for deployment \"other\""), "{e}");
        assert!(e.message.contains("tag it vpnbridge:deployment=t and vpnbridge:role=cgw-0"), "{e}");
        assert!(!e.may_have_committed);
    }

    #[test]
    fn only_repeats_of_untaggable_creates_are_looked_at() {
        let refused = |code: &str| EndpointError::new(CloudName::Aws, ErrorKind::Conflict, code, "refused");
        let route =
            AwsOp::CreateRoute { route_table_id: "rtb-1".into(), destination: "10.1.0.0/16".parse().unwrap(), vgw_id: "vgw-1".into() };
        assert!(Aws::refused_as_repeat(&route, &refused("RouteAlreadyExists")));
        assert!(!Aws::refused_as_repeat(&route, &refused("InvalidParameterValue")));
        let attach = AwsOp::AttachVpnGateway { vgw_id: "vgw-1".into(), vpc_id: "vpc-1".into() };
        assert!(Aws::refused_as_repeat(&attach, &refused("VpnGatewayAttachmentLimitExceeded")));
        assert!(!Aws::refused_as_repeat(&attach, &EndpointError::new(CloudName::Aws, ErrorKind::Transient, "InternalError", "x")));
        assert!(!Aws::refused_as_repeat(&cgw_op(&Owner::new("t")), &refused("RouteAlreadyExists")));
    }
}
