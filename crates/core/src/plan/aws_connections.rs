//! Apply, AWS connection side: per Azure instance k, its customer gateway (replaced in
//! place when the instance's IP or the ASN changed, one VPN connection at a time) and
//! VPN connection k with its static routes; the tunnels' outside IPs and keys that the
//! Azure side is built from.

use std::net::Ipv4Addr;

use ipnet::IpNet;

use crate::config::PskSource;
use crate::model::{AwsState, Role, VpnConnection, role_of};
use crate::ops::{AwsOp, AwsResourceKind, Late, OutputField, StepId, TunnelSpec};
use crate::pairing::{self, INSTANCES};
use crate::secret::Psk;

use super::{Action, Ctx, ResourceType, StepOp, preflight};

/// Per VPN connection: the one of ours kept (if any), the step that creates or waits
/// for it, and per used tunnel its outside IP and key.
pub(super) struct AwsConnections<'a> {
    pub kept: Vec<Option<&'a VpnConnection>>,
    pub steps: Vec<Option<StepId>>,
    pub tunnel_values: Vec<Vec<(Late<Ipv4Addr>, Late<Psk>)>>,
}

pub(super) fn plan<'a>(
    cx: &mut Ctx<'a>,
    gateway: &super::azure_gateway::AzureGateway,
    vgw: &super::aws_gateway::AwsGateway,
) -> AwsConnections<'a> {
    let (config, az, aws) = (cx.config, cx.az, cx.aws);
    let (owner, names, layout) = (&cx.owner, &cx.names, cx.layout);
    let b = &mut cx.b;
    let problems = &mut cx.problems;
    let azure_prefixes = &cx.azure_prefixes;
    let instance_ip = &gateway.instance_ip;
    let (vgw_id, vgw_step) = (&vgw.id, vgw.step);
    let static_routes_only = config.mode == crate::config::Mode::StaticHa;
    // ---- AWS: CGW k -> VPN connection k -> its static routes ------------------------
    let mut previous_swap: Option<StepId> = None;
    let mut vpn_steps: Vec<Option<StepId>> = Vec::new();
    let mut kept: Vec<Option<&'a VpnConnection>> = Vec::new();
    let mut tunnel_values: Vec<Vec<(Late<Ipv4Addr>, Late<Psk>)>> = Vec::new();
    // A mode change: each VPN connection of ours with the other routing is replaced
    // (EC2 cannot change `StaticRoutesOnly` in place). Every one goes before any
    // successor is created: EC2 refuses a second one on the same CGW and VGW, and gives
    // a tunnel inside CIDR to one VPN connection per VGW (InvalidCidr.InUse), so an old
    // connection may hold a /30 the other new one pins.
    let mut replaced_by_k: Vec<Vec<Option<StepId>>> = Vec::new();
    for k in 0..INSTANCES {
        let mut replaced = Vec::new();
        let other_mode = aws.vpn_connections.iter().filter(|v| {
            !v.state.is_gone()
                && role_of(owner, &v.tags) == Some(Role::VpnConnection(k))
                && matches!(vgw_id, Late::Known(id) if *id == v.vpn_gateway_id)
                && v.static_routes_only != static_routes_only
        });
        for v in other_mode {
            let op = AwsOp::DeleteVpnConnection { vpn_id: v.id.clone() };
            let id = b.push(Action::Delete, ResourceType::VpnConnection, format!("vpn-{k} {} (replaced)", v.id), StepOp::Aws(op), &[]);
            let (from, to) = if v.static_routes_only { ("static", "dynamic (BGP)") } else { ("dynamic (BGP)", "static") };
            b.disrupt(
                id,
                format!(
                    "{} uses {from} routing and mode = \"{}\" wants {to}: AWS cannot change that in place, so it is replaced; \
                     its tunnels are down until the new one is up, with new outside IPs and keys",
                    v.id, config.mode
                ),
            );
            replaced.push(Some(id));
        }
        replaced_by_k.push(replaced);
    }
    let all_replaced: Vec<Option<StepId>> = replaced_by_k.iter().flatten().copied().collect();
    let (mut creates, mut all_going): (Vec<StepId>, Vec<StepId>) = (Vec::new(), Vec::new());
    for k in 0..INSTANCES {
        let cgw_role = Role::CustomerGateway(k);
        let mut cgws: Vec<_> =
            aws.customer_gateways.iter().filter(|c| !c.state.is_gone() && role_of(owner, &c.tags) == Some(cgw_role)).collect();
        let vpn_role = Role::VpnConnection(k);
        let mut vpns: Vec<_> =
            aws.vpn_connections.iter().filter(|c| !c.state.is_gone() && role_of(owner, &c.tags) == Some(vpn_role)).collect();
        // A duplicate from an ambiguous create: keep the one in use (or the oldest).
        cgws.sort_by_key(|c| (!vpns.iter().any(|v| v.customer_gateway_id == c.id), c.id.clone()));
        vpns.sort_by_key(|v| (v.state != AwsState::Available, v.id.clone()));
        // One of ours on a VGW that is not the one we use (that VGW lost our tag, so a
        // new one is built) carries nothing to our VPC: it is replaced by one on ours.
        let (vpns, misplaced): (Vec<_>, Vec<_>) =
            vpns.into_iter().partition(|v| matches!(vgw_id, Late::Known(id) if *id == v.vpn_gateway_id));
        // One with the other routing (the mode changed) is replaced (its delete is
        // planned above); the successor is created once every such one is gone.
        let vpns: Vec<_> = vpns.into_iter().filter(|v| v.static_routes_only == static_routes_only).collect();
        let vpn = vpns.first().copied();
        // Deletes of our other VPN connections k (misplaced ones, duplicates from an
        // ambiguous create): a CGW they use goes only after them.
        let mut vpn_deletes: Vec<Option<StepId>> = Vec::new();
        for v in &misplaced {
            let op = AwsOp::DeleteVpnConnection { vpn_id: v.id.clone() };
            let id = b.push(Action::Delete, ResourceType::VpnConnection, format!("misplaced vpn-{k} {}", v.id), StepOp::Aws(op), &[]);
            b.disrupt(
                id,
                format!(
                    "{} is on virtual private gateway {}, which is not this deployment's: it is replaced by one on ours",
                    v.id, v.vpn_gateway_id
                ),
            );
            vpn_deletes.push(Some(id));
        }
        // Replaced for a mode change (deleted above).
        vpn_deletes.extend(replaced_by_k[usize::from(k)].iter().copied());
        for extra in vpns.iter().skip(1) {
            let op = AwsOp::DeleteVpnConnection { vpn_id: extra.id.clone() };
            let id = b.push(Action::Delete, ResourceType::VpnConnection, format!("duplicate vpn-{k} {}", extra.id), StepOp::Aws(op), &[]);
            vpn_deletes.push(Some(id));
        }
        // One of ours on its way out (an interrupted destroy or drill) still joins its
        // CGW and VGW until it is deleted: EC2 refuses a successor on the same pair
        // (InvalidOption.Conflict) and the CGW's delete (DependencyViolation) until then.
        let going: Vec<Option<StepId>> = if vpn.is_none() {
            aws.vpn_connections
                .iter()
                .filter(|c| c.state == AwsState::Deleting && role_of(owner, &c.tags) == Some(vpn_role))
                .map(|c| {
                    let op = AwsOp::Await { kind: AwsResourceKind::VpnConnection, id: c.id.clone() };
                    let id = b.push(
                        Action::Wait,
                        ResourceType::VpnConnection,
                        format!("vpn-{k} {} (being deleted)", c.id),
                        StepOp::Aws(op),
                        &[],
                    );
                    b.disrupt(id, format!("{} is being deleted (an interrupted destroy?); vpn-{k} is created again once it is gone", c.id));
                    Some(id)
                })
                .collect()
        } else {
            Vec::new()
        };
        all_going.extend(going.iter().flatten().copied());
        // The CGW of instance k carries instance k's IP and the configured ASN. One with
        // another IP (the Azure side's IPs changed) or ASN (azure.asn changed; a CGW's
        // ASN cannot change) is stale: the VPN connection moves off it in place.
        let want_ip = &instance_ip[usize::from(k)];
        let cgw = cgws.iter().copied().find(|c| matches!(want_ip, Late::Known(ip) if *ip == c.ip) && c.bgp_asn == config.azure.asn);
        let stale: Vec<&crate::model::CustomerGateway> = cgws.iter().copied().filter(|c| Some(&c.id) != cgw.map(|g| &g.id)).collect();

        let mut cgw_step = None;
        let cgw_id: Late<String> = match cgw {
            Some(c) => {
                if c.state == AwsState::Pending {
                    let op = AwsOp::Await { kind: AwsResourceKind::CustomerGateway, id: c.id.clone() };
                    cgw_step = Some(b.push(Action::Wait, ResourceType::CustomerGateway, format!("cgw-{k} {}", c.id), StepOp::Aws(op), &[]));
                }
                Late::Known(c.id.clone())
            }
            None => {
                if let Late::Known(ip) = want_ip {
                    problems.extend(preflight::customer_gateway_in_the_way(config, aws, k, *ip));
                }
                let op = AwsOp::CreateCustomerGateway {
                    ip: want_ip.clone(),
                    bgp_asn: config.azure.asn,
                    device_name: names.cgw_device_name(k),
                    tags: owner.tags(&cgw_role),
                };
                let id = b.push(Action::Create, ResourceType::CustomerGateway, format!("cgw-{k}"), StepOp::Aws(op), &[]);
                cgw_step = Some(id);
                Late::After(id, OutputField::Id)
            }
        };

        let pins = layout.pins(k);
        let mut vpn_step = None;
        let mut swap_step = None;
        let mut values = Vec::new();
        let vpn_id: Late<String> = match vpn {
            None => {
                if let (Late::Known(cgw), Late::Known(vgw)) = (&cgw_id, vgw_id) {
                    problems.extend(preflight::vpn_connections_between(config, aws, k, cgw, vgw, None));
                }
                if let Late::Known(vgw) = vgw_id {
                    let pinned: Vec<_> = pins.iter().flatten().copied().collect();
                    problems.extend(preflight::inside_cidrs_in_use(
                        config,
                        aws,
                        vgw,
                        &pinned,
                        &format!("the new VPN connection {vpn_role}"),
                    ));
                }
                let tunnels = pins
                    .iter()
                    .map(|pin| TunnelSpec {
                        inside_cidr: *pin,
                        psk: match &config.psk {
                            PskSource::Generate => Some(Psk::generate()),
                            PskSource::Aws => None,
                            PskSource::Env { key, .. } => Some(key.clone()),
                        },
                    })
                    .collect();
                let op = AwsOp::CreateVpnConnection {
                    cgw_id: cgw_id.clone(),
                    vgw_id: vgw_id.clone(),
                    static_routes_only,
                    tunnels,
                    tags: owner.tags(&vpn_role),
                };
                let after: Vec<Option<StepId>> =
                    [cgw_step, vgw_step].into_iter().chain(going.iter().copied()).chain(all_replaced.iter().copied()).collect();
                let id = b.push(Action::Create, ResourceType::VpnConnection, format!("vpn-{k}"), StepOp::Aws(op), &after);
                creates.push(id);
                vpn_step = Some(id);
                for slot in 0..config.tunnels_per_connection {
                    values.push((
                        Late::After(id, OutputField::TunnelOutsideIp { slot, pins }),
                        Late::After(id, OutputField::TunnelPsk { slot, pins }),
                    ));
                }
                Late::After(id, OutputField::Id)
            }
            Some(v) => {
                // EC2 changes only an available connection: whatever else is done to it
                // waits until it is.
                if matches!(v.state, AwsState::Pending | AwsState::Modifying) {
                    let op = AwsOp::Await { kind: AwsResourceKind::VpnConnection, id: v.id.clone() };
                    vpn_step =
                        Some(b.push(Action::Wait, ResourceType::VpnConnection, format!("vpn-{k} {}", v.id), StepOp::Aws(op), &[cgw_step]));
                }
                if cgw.is_none_or(|c| c.id != v.customer_gateway_id) {
                    if let (Late::Known(cgw), Late::Known(vgw)) = (&cgw_id, vgw_id) {
                        problems.extend(preflight::vpn_connections_between(config, aws, k, cgw, vgw, Some(&v.id)));
                    }
                    let op = AwsOp::ModifyVpnConnection { vpn_id: v.id.clone(), cgw_id: cgw_id.clone() };
                    // One VPN connection at a time: the next moves once this one's
                    // tunnel is up again at both ends.
                    let id = b.push(
                        Action::Modify,
                        ResourceType::VpnConnection,
                        format!("vpn-{k} {}", v.id),
                        StepOp::Aws(op),
                        &[cgw_step, previous_swap, vpn_step],
                    );
                    let target = want_ip.show();
                    b.disrupt(
                        id,
                        format!(
                            "both tunnels of {} are down briefly while AWS moves it from customer gateway {} to the one for Azure instance {k} ({target}, ASN {})",
                            v.id, v.customer_gateway_id, config.azure.asn
                        ),
                    );
                    // Both of its used tunnels went down: each must be back.
                    for t in 0..config.tunnels_per_connection {
                        if pairing::connection(az, &names.connection(k, t)).is_some() {
                            b.until_up(id, k, t, layout);
                        }
                    }
                    swap_step = Some(id);
                    previous_swap = Some(id);
                }
                for t in 0..config.tunnels_per_connection {
                    match pairing::aws_tunnel(v, t, pins) {
                        None => problems.push(format!("VPN connection {} reports fewer than {} tunnels", v.id, t + 1)),
                        Some(tun) => {
                            let psk = match (&config.psk, &tun.psk) {
                                (PskSource::Env { key, .. }, _) => Late::Known(key.clone()),
                                (_, Some(p)) => Late::Known(p.clone()),
                                (_, None) => {
                                    problems.push(format!(
                                        "AWS does not return the pre-shared key of tunnel {} of {} (kept in Secrets Manager?): \
                                         set psk = \"env:NAME\" with the key in that environment variable",
                                        tun.outside_ip, v.id
                                    ));
                                    Late::Unavailable(OutputField::TunnelPsk { slot: t, pins })
                                }
                            };
                            values.push((Late::Known(tun.outside_ip), psk));
                        }
                    }
                }
                Late::Known(v.id.clone())
            }
        };
        for old in stale {
            problems.extend(preflight::vpn_connections_on(config, aws, &old.id, "this plan"));
            // After the VPN connection has moved off it (a stale one), or at once (a
            // duplicate left by an ambiguous create).
            let op = AwsOp::DeleteCustomerGateway { cgw_id: old.id.clone() };
            let why = if old.id == vpn.map(|v| v.customer_gateway_id.clone()).unwrap_or_default() { "replaced" } else { "unused" };
            let after: Vec<Option<StepId>> =
                std::iter::once(swap_step).chain(going.iter().copied()).chain(vpn_deletes.iter().copied()).collect();
            b.push(Action::Delete, ResourceType::CustomerGateway, format!("{why} cgw-{k} {}", old.id), StepOp::Aws(op), &after);
        }

        // Static routes of the VPN connection: one per Azure prefix (none in bgp-ha:
        // BGP carries the routes).
        let existing: Vec<IpNet> =
            vpn.map(|v| v.routes.iter().filter(|r| !r.state.is_gone()).map(|r| r.destination).collect()).unwrap_or_default();
        let wanted_routes: &[IpNet] = if static_routes_only { azure_prefixes } else { &[] };
        for p in wanted_routes {
            if !existing.contains(p) {
                let op = AwsOp::CreateVpnConnectionRoute { vpn_id: vpn_id.clone(), destination: *p };
                b.push(Action::Create, ResourceType::VpnConnectionRoute, format!("vpn-{k} {p}"), StepOp::Aws(op), &[vpn_step]);
            }
        }
        if let Some(v) = vpn {
            // One still being added (an interrupted apply) is waited for: the plan is
            // done only once the routes it relies on are.
            for r in v.routes.iter().filter(|r| r.state == AwsState::Pending && wanted_routes.contains(&r.destination)) {
                let kind = AwsResourceKind::VpnConnectionRoute { destination: r.destination };
                let op = AwsOp::Await { kind, id: v.id.clone() };
                b.push(Action::Wait, ResourceType::VpnConnectionRoute, format!("vpn-{k} {}", r.destination), StepOp::Aws(op), &[]);
            }
            for p in existing.iter().filter(|p| !wanted_routes.contains(p)) {
                let op = AwsOp::DeleteVpnConnectionRoute { vpn_id: v.id.clone(), destination: *p };
                let id = b.push(Action::Delete, ResourceType::VpnConnectionRoute, format!("vpn-{k} {p}"), StepOp::Aws(op), &[]);
                b.disrupt(id, format!("AWS stops sending traffic for {p} through {}", v.id));
            }
        }
        vpn_steps.push(vpn_step);
        kept.push(vpn);
        tunnel_values.push(values);
    }
    // A VPN connection of ours still being deleted holds its inside CIDRs until it is
    // gone, whichever instance it served (a mode change interrupted after its deletes):
    // every create waits for all of them.
    for &c in &creates {
        for &w in &all_going {
            if !b.steps[c].depends_on.contains(&w) {
                b.steps[c].depends_on.push(w);
                b.steps[c].depends_on.sort_unstable();
            }
        }
    }
    AwsConnections { kept, steps: vpn_steps, tunnel_values }
}
