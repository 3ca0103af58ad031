//! Apply, last: what is ours but no longer wanted (e.g. `tunnels_per_connection`
//! lowered) is removed, Connections before their LocalNetworkGateways.

use crate::ops::AzureOp;
use crate::pairing::TunnelSlot;

use super::{Action, Ctx, ResourceType, StepOp};

pub(super) fn plan(cx: &mut Ctx<'_>, slots: &[TunnelSlot]) {
    let (az, owner) = (cx.az, &cx.owner);
    let b = &mut cx.b;
    // ---- Ours but no longer wanted (e.g. tunnels_per_connection lowered) ------------
    let wanted_lngs: Vec<&str> = slots.iter().map(|s| s.local_network_gateway.as_str()).collect();
    let wanted_cns: Vec<&str> = slots.iter().map(|s| s.azure_connection.as_str()).collect();
    let mut cn_deletes = Vec::new();
    for c in az.connections.iter().filter(|c| owner.owns(&c.tags) && !wanted_cns.contains(&c.name.as_str())) {
        let id = b.push(
            Action::Delete,
            ResourceType::Connection,
            c.name.clone(),
            StepOp::Azure(AzureOp::DeleteConnection { name: c.name.clone() }),
            &[],
        );
        b.disrupt(id, format!("the tunnel carried by {} goes away", c.name));
        cn_deletes.push(Some(id));
    }
    for l in az.local_network_gateways.iter().filter(|l| owner.owns(&l.tags) && !wanted_lngs.contains(&l.name.as_str())) {
        let op = AzureOp::DeleteLocalNetworkGateway { name: l.name.clone() };
        b.push(Action::Delete, ResourceType::LocalNetworkGateway, l.name.clone(), StepOp::Azure(op), &cn_deletes);
    }
}
