//! `destroy`: the plan for an empty desired state — everything this deployment owns,
//! in dependency order, and nothing else.

use crate::config::Config;
use crate::model::{AttachmentState, AwsState, Owner, role_of};
use crate::ops::{AwsOp, AwsResourceKind, AzureOp, AzureResourceKind, StepId};

use super::preflight::{elsewhere_problems, moved_vpc_problems, vpn_connections_on, vpn_connections_on_vgw};
use super::{Action, Builder, Observed, Plan, PlanError, PlanKind, ResourceType, StepOp, wait_if_updating};

/// Plans the removal of everything this deployment owns, and nothing else: the
/// plan for an empty desired state.
pub fn plan_destroy(config: &Config, observed: &Observed) -> Result<Plan, PlanError> {
    // What is elsewhere cannot be reached from this scope: say so rather than report
    // the deployment destroyed while it still runs (and costs) somewhere else.
    let mut blockers = elsewhere_problems(config, observed);
    blockers.extend(moved_vpc_problems(config, observed));
    // EC2 would refuse to delete a customer gateway of ours that someone else's VPN
    // connection uses, after everything else is gone.
    let owner = Owner::new(&config.name);
    for c in observed.aws.customer_gateways.iter().filter(|c| owner.owns(&c.tags) && !c.state.is_gone()) {
        blockers.extend(vpn_connections_on(config, &observed.aws, &c.id, "destroy"));
    }
    // And a VGW of ours that someone else's VPN connection uses (IncorrectState).
    for g in observed.aws.vpn_gateways.iter().filter(|g| owner.owns(&g.tags) && !g.state.is_gone()) {
        blockers.extend(vpn_connections_on_vgw(config, &observed.aws, &g.id));
    }
    if !blockers.is_empty() {
        return Err(PlanError(blockers));
    }
    Ok(plan_destroy_here(config, observed))
}

/// The destroy plan for what is in scope.
fn plan_destroy_here(config: &Config, observed: &Observed) -> Plan {
    let owner = Owner::new(&config.name);
    let az = &observed.azure;
    let aws = &observed.aws;
    let mut b = Builder { steps: Vec::new() };

    // Azure: Connections -> LocalNetworkGateways; Connections -> gateway -> public IPs.
    let mut cn_deletes = Vec::new();
    for c in az.connections.iter().filter(|c| owner.owns(&c.tags)) {
        let waited = wait_if_updating(&mut b, c.state, AzureResourceKind::Connection, &c.name, ResourceType::Connection);
        let op = AzureOp::DeleteConnection { name: c.name.clone() };
        cn_deletes.push(Some(b.push(Action::Delete, ResourceType::Connection, c.name.clone(), StepOp::Azure(op), &[waited])));
    }
    for l in az.local_network_gateways.iter().filter(|l| owner.owns(&l.tags)) {
        let waited = wait_if_updating(&mut b, l.state, AzureResourceKind::LocalNetworkGateway, &l.name, ResourceType::LocalNetworkGateway);
        let mut after = cn_deletes.clone();
        after.push(waited);
        let op = AzureOp::DeleteLocalNetworkGateway { name: l.name.clone() };
        b.push(Action::Delete, ResourceType::LocalNetworkGateway, l.name.clone(), StepOp::Azure(op), &after);
    }
    let mut gw_delete = None;
    if let Some(gw) = az.vpn_gateway.as_ref().filter(|g| owner.owns(&g.tags)) {
        let waited = wait_if_updating(&mut b, gw.state, AzureResourceKind::VpnGateway, &gw.name, ResourceType::VpnGateway);
        let mut after = cn_deletes.clone();
        after.push(waited);
        let op = AzureOp::DeleteVpnGateway { name: gw.name.clone() };
        gw_delete = Some(b.push(Action::Delete, ResourceType::VpnGateway, gw.name.clone(), StepOp::Azure(op), &after));
    }
    for p in az.public_ips.iter().filter(|p| owner.owns(&p.tags)) {
        let waited = wait_if_updating(&mut b, p.state, AzureResourceKind::PublicIp, &p.name, ResourceType::PublicIp);
        let op = AzureOp::DeletePublicIp { name: p.name.clone() };
        b.push(Action::Delete, ResourceType::PublicIp, p.name.clone(), StepOp::Azure(op), &[gw_delete, waited]);
    }

    // AWS: VPN connections -> CGWs; routes via our VGW -> detach -> VGW.
    let mut vpn_deletes = Vec::new();
    for v in aws.vpn_connections.iter().filter(|v| owner.owns(&v.tags)) {
        let name = format!("{} {}", role_of(&owner, &v.tags).map(|r| r.to_string()).unwrap_or_default(), v.id);
        let step = match v.state {
            AwsState::Deleted => continue,
            AwsState::Deleting => {
                let op = AwsOp::Await { kind: AwsResourceKind::VpnConnection, id: v.id.clone() };
                b.push(Action::Wait, ResourceType::VpnConnection, name, StepOp::Aws(op), &[])
            }
            _ => b.push(
                Action::Delete,
                ResourceType::VpnConnection,
                name,
                StepOp::Aws(AwsOp::DeleteVpnConnection { vpn_id: v.id.clone() }),
                &[],
            ),
        };
        vpn_deletes.push(Some(step));
    }
    for c in aws.customer_gateways.iter().filter(|c| owner.owns(&c.tags) && !c.state.is_gone()) {
        let name = format!("{} {}", role_of(&owner, &c.tags).map(|r| r.to_string()).unwrap_or_default(), c.id);
        let op = AwsOp::DeleteCustomerGateway { cgw_id: c.id.clone() };
        b.push(Action::Delete, ResourceType::CustomerGateway, name, StepOp::Aws(op), &vpn_deletes);
    }
    for v in aws.vpn_gateways.iter().filter(|v| owner.owns(&v.tags) && !v.state.is_gone()) {
        let mut route_deletes = vpn_deletes.clone();
        if let Some(vpc) = &aws.vpc {
            for t in &vpc.route_tables {
                // Propagation from our VGW is ours (it has no tags of its own); the routes
                // it put in the table go with it.
                if t.propagating_vgws.contains(&v.id) {
                    let op = AwsOp::DisableVgwRoutePropagation { route_table_id: t.id.clone(), vgw_id: v.id.clone() };
                    route_deletes.push(Some(b.push(Action::Delete, ResourceType::RoutePropagation, t.id.clone(), StepOp::Aws(op), &[])));
                }
                for r in t.routes.iter().filter(|r| r.gateway_id.as_deref() == Some(v.id.as_str()) && !r.propagated) {
                    let op = AwsOp::DeleteRoute { route_table_id: t.id.clone(), destination: r.destination };
                    route_deletes.push(Some(b.push(
                        Action::Delete,
                        ResourceType::VpcRoute,
                        format!("{} {}", t.id, r.destination),
                        StepOp::Aws(op),
                        &[],
                    )));
                }
            }
        }
        delete_vgw(&mut b, v, &route_deletes);
    }

    Plan {
        deployment: config.name.clone(),
        kind: PlanKind::Destroy,
        mode: config.mode,
        steps: b.steps,
        tunnels: Vec::new(),
        notes: Vec::new(),
    }
}

pub(super) fn delete_vgw(b: &mut Builder, v: &crate::model::VpnGateway, after: &[Option<StepId>]) -> StepId {
    let mut last: Vec<Option<StepId>> = after.to_vec();
    for a in v.attachments.iter().filter(|a| matches!(a.state, AttachmentState::Attached | AttachmentState::Attaching)) {
        let op = AwsOp::DetachVpnGateway { vgw_id: v.id.clone(), vpc_id: a.vpc_id.clone() };
        last.push(Some(b.push(
            Action::Delete,
            ResourceType::VpnGatewayAttachment,
            format!("{} {}", v.id, a.vpc_id),
            StepOp::Aws(op),
            after,
        )));
    }
    let op = AwsOp::DeleteVpnGateway { vgw_id: v.id.clone() };
    b.push(Action::Delete, ResourceType::VpnGateway, format!("vgw {}", v.id), StepOp::Aws(op), &last)
}
