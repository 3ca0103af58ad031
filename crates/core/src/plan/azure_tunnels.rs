//! Apply, Azure tunnel side: one LocalNetworkGateway and one Connection per used AWS
//! tunnel (created, re-pointed, re-keyed, re-provisioned, or re-created after a delete
//! that was in flight).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::model::{AzureObserved, Connection, LngBgp, ProvisioningState, Role};
use crate::ops::{AzureOp, AzureResourceKind, Late, Planned, StepId};
use crate::pairing::{self, TunnelSlot};
use crate::secret::Psk;

use super::{AZURE_DPD_SECONDS, Action, Ctx, ResourceType, StepOp, join, wait_for_deletion};

pub(super) fn plan(
    cx: &mut Ctx<'_>,
    gateway: &super::azure_gateway::AzureGateway,
    tunnel_values: &[Vec<(Late<Ipv4Addr>, Late<Psk>)>],
    key_changed: &BTreeMap<(u8, u8), StepId>,
) -> Vec<TunnelSlot> {
    let (config, az) = (cx.config, cx.az);
    let owner = &cx.owner;
    let b = &mut cx.b;
    let aws_prefixes = &cx.aws_prefixes;
    let (gw_name, gw_step) = (&gateway.name, gateway.step);
    // ---- Azure: one LocalNetworkGateway and one Connection per used AWS tunnel -------
    let bgp_ha = config.mode == crate::config::Mode::BgpHa;
    let slots = pairing::slots(&config.name, config.tunnels_per_connection);
    for slot in &slots {
        let (k, t) = (slot.connection, slot.tunnel);
        let Some((outside_ip, psk)) = tunnel_values[usize::from(k)].get(usize::from(t)).cloned() else { continue };
        let lng_role = Role::LocalNetworkGateway(k, t);
        let lng = pairing::local_network_gateway(az, &slot.local_network_gateway);
        let lng_op = AzureOp::PutLocalNetworkGateway {
            name: slot.local_network_gateway.clone(),
            gateway_ip: outside_ip.clone(),
            address_prefixes: if bgp_ha { Vec::new() } else { aws_prefixes.clone() },
            bgp: bgp_ha.then(|| crate::bgp::local_network_gateway(&cx.layout, k, t, config.aws.amazon_asn)).flatten(),
            tags: owner.tags(&lng_role),
        };
        // The step after which the LNG is as wanted, if any.
        let lng_step = match lng {
            None => Some(b.push(
                Action::Create,
                ResourceType::LocalNetworkGateway,
                slot.local_network_gateway.clone(),
                StepOp::Azure(lng_op),
                &[],
            )),
            Some(l) if l.state == ProvisioningState::Deleting => {
                let gone =
                    wait_for_deletion(b, Some(l.state), AzureResourceKind::LocalNetworkGateway, &l.name, ResourceType::LocalNetworkGateway);
                Some(b.push(
                    Action::Create,
                    ResourceType::LocalNetworkGateway,
                    slot.local_network_gateway.clone(),
                    StepOp::Azure(lng_op),
                    &[gone],
                ))
            }
            Some(l) => {
                // One found updating is waited for; then it gets what it still lacks.
                let updating = (l.state == ProvisioningState::Updating).then(|| {
                    let op = AzureOp::Await { kind: AzureResourceKind::LocalNetworkGateway, name: l.name.clone() };
                    b.push(Action::Wait, ResourceType::LocalNetworkGateway, l.name.clone(), StepOp::Azure(op), &[])
                });
                // An outside IP known only after apply is a new VPN connection's: its
                // tunnels have new outside IPs, so the LNG is re-pointed.
                let ip_differs = match &outside_ip {
                    Late::Known(ip) => *ip != l.gateway_ip,
                    Late::After(..) | Late::Unavailable(_) => true,
                };
                let mut have = l.address_prefixes.clone();
                have.sort();
                let mut want = if bgp_ha { Vec::new() } else { aws_prefixes.clone() };
                want.sort();
                let want_bgp = match &lng_op {
                    AzureOp::PutLocalNetworkGateway { bgp, .. } => *bgp,
                    _ => None,
                };
                let bgp_differs = l.bgp != want_bgp;
                if ip_differs || have != want || bgp_differs || l.state == ProvisioningState::Failed {
                    let id = b.push(Action::Modify, ResourceType::LocalNetworkGateway, l.name.clone(), StepOp::Azure(lng_op), &[updating]);
                    if ip_differs {
                        b.disrupt(
                            id,
                            format!(
                                "{} re-points from {} to the AWS tunnel's outside IP; its tunnel is down until it reconnects",
                                l.name, l.gateway_ip
                            ),
                        );
                    } else if bgp_differs {
                        let show = |b: Option<LngBgp>| b.map_or("none".to_owned(), |b| format!("{} (ASN {})", b.peering_address, b.asn));
                        b.disrupt(
                            id,
                            format!("{}: BGP peer {} -> {}; its tunnel's BGP session restarts", l.name, show(l.bgp), show(want_bgp)),
                        );
                    } else if have != want {
                        b.disrupt(
                            id,
                            format!("{}: address prefixes {} -> {}; traffic to removed prefixes stops", l.name, join(&have), join(&want)),
                        );
                    }
                    Some(id)
                } else {
                    updating
                }
            }
        };

        let cn = pairing::connection(az, &slot.azure_connection);
        let connection_put = AzureOp::PutConnection {
            name: slot.azure_connection.clone(),
            gateway: gw_name.clone(),
            local_network_gateway: slot.local_network_gateway.clone(),
            shared_key: psk.clone(),
            bgp: bgp_ha.then(|| crate::bgp::connection(&cx.layout, k, t)).flatten(),
            dpd_timeout_seconds: AZURE_DPD_SECONDS,
            tags: owner.tags(&Role::Connection(k, t)),
        };
        match cn {
            Some(c) if c.state == ProvisioningState::Deleting || lng.is_some_and(|l| l.state == ProvisioningState::Deleting) => {
                // A Connection (or its LNG) found on its way out, e.g. after an
                // interrupted drill: it is not there; wait for it to go, then create it.
                let gone = wait_for_deletion(b, Some(c.state), AzureResourceKind::Connection, &c.name, ResourceType::Connection);
                let after = [gw_step, lng_step, key_changed.get(&(k, t)).copied(), gone];
                let id = b.push(Action::Create, ResourceType::Connection, c.name.clone(), StepOp::Azure(connection_put), &after);
                b.disrupt(id, format!("{} was being deleted; it is created again once it is gone", c.name));
            }
            Some(c) if c.state == ProvisioningState::Failed => {
                let after = [gw_step, lng_step, key_changed.get(&(k, t)).copied()];
                let id = b.push(Action::Modify, ResourceType::Connection, c.name.clone(), StepOp::Azure(connection_put), &after);
                b.disrupt(id, format!("{} is in state Failed; it is provisioned again", c.name));
            }
            None => {
                let after = [gw_step, lng_step, key_changed.get(&(k, t)).copied()];
                b.push(Action::Create, ResourceType::Connection, slot.azure_connection.clone(), StepOp::Azure(connection_put), &after);
            }
            Some(c) => {
                // One found updating is waited for; then it gets the key it still lacks.
                let updating = (c.state == ProvisioningState::Updating).then(|| {
                    let op = AzureOp::Await { kind: AzureResourceKind::Connection, name: c.name.clone() };
                    b.push(Action::Wait, ResourceType::Connection, c.name.clone(), StepOp::Azure(op), &[])
                });
                // BGP on or off, or other custom addresses: the whole Connection is
                // PUT again (with its key).
                if let Some(change) = bgp_change(c, &connection_put, az) {
                    let after = [gw_step, lng_step, key_changed.get(&(k, t)).copied(), updating];
                    let id = b.push(Action::Modify, ResourceType::Connection, c.name.clone(), StepOp::Azure(connection_put), &after);
                    b.disrupt(id, format!("{}: {change}; its tunnel reconnects", c.name));
                    continue;
                }
                if key_changed.contains_key(&(k, t)) {
                    continue;
                }
                let key_differs = match (&psk, &c.shared_key) {
                    (Late::Known(want), Some(have)) => want != have,
                    (Late::Known(_), None) => true,
                    (Late::After(..) | Late::Unavailable(_), _) => true,
                };
                if key_differs {
                    let op = AzureOp::SetSharedKey { name: c.name.clone(), shared_key: psk.clone() };
                    let id = b.push(
                        Action::Modify,
                        ResourceType::Connection,
                        c.name.clone(),
                        StepOp::Azure(op),
                        // Not while the gateway is changing: ARM refuses writes to its
                        // connections then (409 AnotherOperationInProgress).
                        &[key_changed.get(&(k, t)).copied(), lng_step, updating, gw_step],
                    );
                    b.disrupt(id, format!("{} reconnects with the new key; its tunnel is down until both ends match", c.name));
                }
            }
        }
    }
    slots
}

/// How a Connection's BGP differs from what `put` sets, in the user's words.
fn bgp_change(c: &Connection, put: &AzureOp<Planned>, az: &AzureObserved) -> Option<String> {
    let AzureOp::PutConnection { bgp, .. } = put else { return None };
    match bgp {
        None if c.enable_bgp => Some("BGP is turned off".to_owned()),
        None => None,
        Some(_) if !c.enable_bgp => Some("BGP is turned on".to_owned()),
        Some(want) => {
            // By instance: the address the Connection gives each ipConfiguration.
            let configs = az.vpn_gateway.as_ref().map(|g| g.ip_configurations.as_slice()).unwrap_or_default();
            let have: Vec<Option<std::net::Ipv4Addr>> = configs
                .iter()
                .map(|cfg| c.custom_bgp_addresses.iter().find(|a| a.ip_configuration_id.eq_ignore_ascii_case(&cfg.id)).map(|a| a.address))
                .collect();
            let wanted: Vec<Option<std::net::Ipv4Addr>> = want.custom_addresses.iter().copied().map(Some).collect();
            (have != wanted).then(|| {
                let show = |v: &[Option<std::net::Ipv4Addr>]| {
                    v.iter().map(|a| a.map_or("(default)".to_owned(), |a| a.to_string())).collect::<Vec<_>>().join(", ")
                };
                format!("custom BGP addresses {} -> {}", show(&have), show(&wanted))
            })
        }
    }
}
