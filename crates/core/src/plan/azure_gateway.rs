//! Apply, Azure side first: the two public IPs and the active-active gateway (create,
//! wait for one in flight, re-provision a Failed one, resize in place).

use std::net::Ipv4Addr;

use crate::model::{ProvisioningState, Role, VirtualNetworkGateway};
use crate::ops::{AzureOp, AzureResourceKind, Late, OutputField, StepId};
use crate::pairing::{self, INSTANCES};

use super::{Action, Ctx, ResourceType, StepOp, wait_for_deletion};

/// What the rest of the plan needs from the gateway.
pub(super) struct AzureGateway {
    pub name: String,
    /// The step that creates, waits for or changes the gateway, if any.
    pub step: Option<StepId>,
    /// Each instance's public IP: known, or the output of the step that creates it.
    pub instance_ip: Vec<Late<Ipv4Addr>>,
    /// The step that updates the existing gateway with every tunnel through it down
    /// (its BGP settings changed, or a Failed gateway provisioned again), if any.
    pub outage: Option<StepId>,
}

pub(super) fn plan(cx: &mut Ctx<'_>) -> AzureGateway {
    let (config, az, _aws) = (cx.config, cx.az, cx.aws);
    let (owner, names, _layout) = (&cx.owner, &cx.names, cx.layout);
    let b = &mut cx.b;
    let problems = &mut cx.problems;
    let file = &cx.file;
    // ---- Azure: public IPs -> gateway --------------------------------------------
    let zones: Vec<String> = ["1", "2", "3"].map(String::from).to_vec();
    let mut pip_step: [Option<StepId>; 2] = [None, None];
    for k in 0..INSTANCES {
        let name = names.public_ip(k);
        let role = Role::PublicIp(k);
        let found = az.public_ips.iter().find(|p| p.name == name);
        let gone_first = wait_for_deletion(b, found.map(|p| p.state), AzureResourceKind::PublicIp, &name, ResourceType::PublicIp);
        match found {
            Some(p) if p.state == ProvisioningState::Updating => {
                let op = AzureOp::Await { kind: AzureResourceKind::PublicIp, name: name.clone() };
                pip_step[usize::from(k)] = Some(b.push(Action::Wait, ResourceType::PublicIp, name, StepOp::Azure(op), &[]));
            }
            Some(p) if !matches!(p.state, ProvisioningState::Failed | ProvisioningState::Deleting) && p.ip.is_some() => {}
            found => {
                let action = if found.is_some_and(|p| p.state != ProvisioningState::Deleting) { Action::Modify } else { Action::Create };
                let op = AzureOp::CreatePublicIp { name: name.clone(), zones: zones.clone(), tags: owner.tags(&role) };
                pip_step[usize::from(k)] = Some(b.push(action, ResourceType::PublicIp, name, StepOp::Azure(op), &[gone_first]));
            }
        }
    }
    // Instance k's IP: from the existing gateway's k-th ipConfiguration, else public IP
    // k's address: the one it has (a static public IP keeps its address while it is
    // updated or provisioned again after Failed), or the one the step creating it gets.
    let gateway_going = az.vpn_gateway.as_ref().is_some_and(|g| g.state == ProvisioningState::Deleting);
    let instance_ip: Vec<Late<Ipv4Addr>> = (0..INSTANCES)
        .map(|k| {
            let pip = az.public_ips.iter().find(|p| p.name == names.public_ip(k));
            let pip_going = pip.is_some_and(|p| p.state == ProvisioningState::Deleting);
            if !pip_going
                && !gateway_going
                && let Some(ip) = pairing::instance_ip(az, k)
            {
                return Late::Known(ip);
            }
            match (pip.filter(|_| !pip_going).and_then(|p| p.ip), pip_step[usize::from(k)]) {
                (Some(ip), _) => Late::Known(ip),
                (None, Some(s)) => Late::After(s, OutputField::PublicIp),
                (None, None) => Late::Unavailable(OutputField::PublicIp),
            }
        })
        .collect();

    let bgp_ha = config.mode == crate::config::Mode::BgpHa;
    let gw_name = names.gateway();
    let mut gw_step = None;
    let mut outage = None;
    let gateway_put = AzureOp::CreateVpnGateway {
        name: gw_name.clone(),
        vnet: config.azure.vnet.clone(),
        sku: config.azure.gateway_sku.to_string(),
        generation: config.azure.gateway_generation.to_string(),
        public_ips: (0..INSTANCES).map(|k| names.public_ip(k)).collect(),
        bgp: bgp_ha.then(|| crate::bgp::gateway(&cx.layout, config.azure.asn)).flatten(),
        tags: owner.tags(&Role::VpnGateway),
    };
    match &az.vpn_gateway {
        None => {
            gw_step = Some(b.push(Action::Create, ResourceType::VpnGateway, gw_name.clone(), StepOp::Azure(gateway_put), &pip_step));
        }
        Some(gw) if gw.state == ProvisioningState::Deleting => {
            let gone = wait_for_deletion(b, Some(gw.state), AzureResourceKind::VpnGateway, &gw.name, ResourceType::VpnGateway);
            let after = [pip_step[0], pip_step[1], gone];
            gw_step = Some(b.push(Action::Create, ResourceType::VpnGateway, gw_name.clone(), StepOp::Azure(gateway_put), &after));
        }
        Some(gw) => {
            if gw.generation != config.azure.gateway_generation.to_string() {
                problems.push(format!(
                    "gateway \"{}\" is {} but {file} asks for {}: Azure cannot change a gateway's generation in place; \
                     keep azure.gateway_generation = \"{}\" or destroy and rebuild",
                    gw.name, gw.generation, config.azure.gateway_generation, gw.generation
                ));
            }
            if !gw.active_active || gw.ip_configurations.len() != usize::from(INSTANCES) {
                problems.push(format!(
                    "gateway \"{}\" is not active-active with two ipConfigurations; vpnbridge builds only active-active gateways: destroy and rebuild",
                    gw.name
                ));
            }
            if gw.state == ProvisioningState::Updating {
                // An update in flight (an interrupted BGP change or resize): the tunnels
                // may all be down until it ends, so tunnel waits start after it.
                let op = AzureOp::Await { kind: AzureResourceKind::VpnGateway, name: gw_name.clone() };
                gw_step = Some(b.push(Action::Wait, ResourceType::VpnGateway, gw_name.clone(), StepOp::Azure(op), &pip_step));
                outage = gw_step;
            } else if gw.state == ProvisioningState::Failed {
                // Azure's remedy for a gateway in Failed state: PUT it again.
                let id = b.push(Action::Modify, ResourceType::VpnGateway, gw_name.clone(), StepOp::Azure(gateway_put), &pip_step);
                b.disrupt(
                    id,
                    format!(
                        "gateway \"{}\" is in state Failed; it is provisioned again (tunnels through it are down until it succeeds)",
                        gw.name
                    ),
                );
                gw_step = Some(id);
                outage = Some(id);
            } else if let Some(change) = bgp_change(gw, &gateway_put) {
                // BGP on or off, another ASN or other custom addresses: a PUT of the
                // whole gateway, in place (with the SKU wanted, resized at once).
                let id = b.push(Action::Modify, ResourceType::VpnGateway, gw_name.clone(), StepOp::Azure(gateway_put), &pip_step);
                b.disrupt(
                    id,
                    format!(
                        "gateway \"{}\": {change}; Azure updates the gateway in place and every tunnel through it is down until the update ends",
                        gw.name
                    ),
                );
                gw_step = Some(id);
                outage = Some(id);
            } else if gw.sku != config.azure.gateway_sku.to_string() {
                let op = AzureOp::ResizeVpnGateway { name: gw_name.clone(), sku: config.azure.gateway_sku.to_string() };
                let id = b.push(Action::Modify, ResourceType::VpnGateway, gw_name.clone(), StepOp::Azure(op), &[]);
                b.disrupt(
                    id,
                    format!(
                        "resize {} -> {}: Azure updates the two instances one at a time; each instance's tunnels drop for several minutes in turn while the other instance's carry the traffic",
                        gw.sku, config.azure.gateway_sku
                    ),
                );
                gw_step = Some(id);
            }
        }
    }
    AzureGateway { name: gw_name, step: gw_step, instance_ip, outage }
}

/// How the gateway's BGP settings differ from those `put` sets, in the user's words.
fn bgp_change(gw: &VirtualNetworkGateway, put: &AzureOp<crate::ops::Planned>) -> Option<String> {
    let AzureOp::CreateVpnGateway { bgp, .. } = put else { return None };
    match bgp {
        None if gw.enable_bgp => Some("BGP is turned off (mode = \"static-ha\")".to_owned()),
        None => None,
        Some(_) if !gw.enable_bgp => Some("BGP is turned on (mode = \"bgp-ha\")".to_owned()),
        Some(want) => {
            if gw.asn != Some(want.asn) {
                return Some(format!("BGP ASN {} -> {}", gw.asn.map_or("(none)".to_owned(), |a| a.to_string()), want.asn));
            }
            let have: Vec<Vec<Ipv4Addr>> = gw
                .ip_configurations
                .iter()
                .map(|c| {
                    let p = gw.bgp_peering_addresses.iter().find(|p| p.ip_configuration_id.eq_ignore_ascii_case(&c.id));
                    let mut a = p.map(|p| p.custom.clone()).unwrap_or_default();
                    a.sort();
                    a
                })
                .collect();
            let wanted: Vec<Vec<Ipv4Addr>> = want
                .custom_addresses
                .iter()
                .map(|a| {
                    let mut a = a.clone();
                    a.sort();
                    a
                })
                .collect();
            (have != wanted).then(|| {
                let show = |v: &[Vec<Ipv4Addr>]| {
                    v.iter().map(|a| a.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join(" | ")
                };
                format!("custom BGP addresses {} -> {}", show(&have), show(&wanted))
            })
        }
    }
}
