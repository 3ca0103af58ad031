//! Apply, in-place tunnel changes: a new pre-shared key or inside CIDR, one tunnel at a
//! time (AWS first, then the Azure end of the same tunnel; the next tunnel waits until
//! this one is up again at both ends).

use std::collections::BTreeMap;

use crate::config::PskSource;
use crate::model::Role;
use crate::ops::{AwsOp, AzureOp, Late, StepId};
use crate::pairing::{self, INSTANCES};

use super::aws_connections::AwsConnections;
use super::{Action, Ctx, ResourceType, StepOp};

/// The AWS modify step of each changed tunnel, by (connection, tunnel), on the VPN
/// connections kept.
pub(super) fn plan(cx: &mut Ctx<'_>, connections: &AwsConnections<'_>) -> BTreeMap<(u8, u8), StepId> {
    let vpn_steps = &connections.steps;
    let (config, az) = (cx.config, cx.az);
    let (names, layout) = (&cx.names, cx.layout);
    let b = &mut cx.b;
    // ---- In-place key and inside-CIDR changes, one tunnel at a time -----------------
    // Each changed tunnel: AWS ModifyVpnTunnelOptions, then the Azure side's key; the
    // next tunnel starts only when the previous one is done, so at most one is down.
    let mut previous_change: Option<StepId> = None;
    let mut key_changed: BTreeMap<(u8, u8), StepId> = BTreeMap::new();
    for k in 0..INSTANCES {
        let Some(v) = connections.kept[usize::from(k)] else { continue };
        let pins = layout.pins(k);
        for t in 0..config.tunnels_per_connection {
            let Some(tun) = pairing::aws_tunnel(v, t, pins) else { continue };
            let new_psk = match &config.psk {
                PskSource::Env { key, .. } if tun.psk.as_ref() != Some(key) => Some(key.clone()),
                _ => None,
            };
            let new_cidr = pins[usize::from(t)].filter(|c| tun.inside_cidr != Some(*c));
            if new_psk.is_none() && new_cidr.is_none() {
                continue;
            }
            if let Some(c) = new_cidr {
                let what = format!("tunnel {} of {} ({})", tun.outside_ip, v.id, Role::VpnConnection(k));
                cx.problems.extend(super::preflight::inside_cidrs_in_use(config, cx.aws, &v.vpn_gateway_id, &[c], &what));
            }
            let op = AwsOp::ModifyVpnTunnelOptions {
                vpn_id: v.id.clone(),
                outside_ip: tun.outside_ip,
                psk: new_psk.clone(),
                inside_cidr: new_cidr,
            };
            let id = b.push(
                Action::Modify,
                ResourceType::VpnTunnel,
                format!("{} {}", v.id, tun.outside_ip),
                StepOp::Aws(op),
                &[previous_change, vpn_steps[usize::from(k)]],
            );
            let mut what = Vec::new();
            if new_psk.is_some() {
                what.push("pre-shared key");
            }
            if new_cidr.is_some() {
                what.push("inside CIDR");
            }
            b.disrupt(
                id,
                format!(
                    "tunnel {} ({}) is down for several minutes while AWS applies the new {}",
                    tun.outside_ip,
                    v.id,
                    what.join(" and ")
                ),
            );
            previous_change = Some(id);
            // The Azure end of the same tunnel follows before the next tunnel starts.
            let cn_name = names.connection(k, t);
            let mut last = id;
            if let (Some(key), Some(c)) = (new_psk, pairing::connection(az, &cn_name))
                && c.shared_key.as_ref() != Some(&key)
            {
                let op = AzureOp::SetSharedKey { name: cn_name.clone(), shared_key: Late::Known(key) };
                let cid = b.push(Action::Modify, ResourceType::Connection, cn_name.clone(), StepOp::Azure(op), &[Some(id)]);
                b.disrupt(cid, format!("{cn_name} reconnects with the new key (same tunnel as the step before)"));
                previous_change = Some(cid);
                last = cid;
            }
            // Only an existing connection can come back up; its last step waits for it.
            if pairing::connection(az, &cn_name).is_some() {
                b.until_up(last, k, t, layout);
            }
            key_changed.insert((k, t), id);
        }
    }
    key_changed
}
