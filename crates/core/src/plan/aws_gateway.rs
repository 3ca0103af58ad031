//! Apply, AWS gateway side: the virtual private gateway (one; duplicates from an
//! ambiguous create removed), its attachment to the VPC, and the VPC routes to the VNet
//! (added to the configured tables, removed where no longer wanted).

use crate::model::{AttachmentState, AwsState, Role, role_of};
use crate::ops::{AwsOp, AwsResourceKind, Late, OutputField, StepId};

use super::destroy::delete_vgw;
use super::{Action, Ctx, ResourceType, StepOp};

/// What the VPN connections need from the VGW.
pub(super) struct AwsGateway {
    pub id: Late<String>,
    pub step: Option<StepId>,
}

pub(super) fn plan(cx: &mut Ctx<'_>) -> AwsGateway {
    let (config, _az, aws) = (cx.config, cx.az, cx.aws);
    let (owner, _names, _layout) = (&cx.owner, &cx.names, cx.layout);
    let b = &mut cx.b;
    let problems = &mut cx.problems;
    let azure_prefixes = &cx.azure_prefixes;
    // ---- AWS: VGW -> attachment -> VPC routes ---------------------------------------
    let mut vgws: Vec<_> =
        aws.vpn_gateways.iter().filter(|v| !v.state.is_gone() && role_of(owner, &v.tags) == Some(Role::VirtualPrivateGateway)).collect();
    // Keep the one attached to our VPC (or the oldest id); any other is a duplicate
    // left by an ambiguous create, deleted below.
    vgws.sort_by_key(|v| {
        (!v.attachments.iter().any(|a| a.vpc_id == config.aws.vpc_id && a.state != AttachmentState::Detached), v.id.clone())
    });
    let vgw = vgws.first().copied();
    let mut vgw_step = None;
    let vgw_id: Late<String> = match vgw {
        None => {
            let op = AwsOp::CreateVpnGateway { amazon_asn: config.aws.amazon_asn, tags: owner.tags(&Role::VirtualPrivateGateway) };
            let id = b.push(Action::Create, ResourceType::VpnGateway, "vgw".into(), StepOp::Aws(op), &[]);
            vgw_step = Some(id);
            Late::After(id, OutputField::Id)
        }
        Some(v) => {
            if v.amazon_asn != config.aws.amazon_asn {
                problems.push(format!(
                    "virtual private gateway {} has Amazon ASN {} but aws.amazon_asn is {}: AWS cannot change it in place; \
                     set aws.amazon_asn = {} or destroy and rebuild",
                    v.id, v.amazon_asn, config.aws.amazon_asn, v.amazon_asn
                ));
            }
            if v.state == AwsState::Pending {
                let op = AwsOp::Await { kind: AwsResourceKind::VpnGateway, id: v.id.clone() };
                vgw_step = Some(b.push(Action::Wait, ResourceType::VpnGateway, format!("vgw {}", v.id), StepOp::Aws(op), &[]));
            }
            Late::Known(v.id.clone())
        }
    };
    for extra in vgws.iter().skip(1) {
        delete_vgw(b, extra, &[]);
    }

    let attachment = vgw.and_then(|v| v.attachments.iter().find(|a| a.vpc_id == config.aws.vpc_id));
    let attach_step = match attachment.map(|a| a.state) {
        Some(AttachmentState::Attached) => None,
        Some(AttachmentState::Attaching) => {
            let op = AwsOp::Await { kind: AwsResourceKind::VgwAttachment, id: vgw.map(|v| v.id.clone()).unwrap_or_default() };
            Some(b.push(Action::Wait, ResourceType::VpnGatewayAttachment, config.aws.vpc_id.clone(), StepOp::Aws(op), &[vgw_step]))
        }
        state => {
            // One still detaching (an interrupted destroy) is waited out: EC2 attaches a
            // VGW again only once it is detached.
            let detached = (state == Some(AttachmentState::Detaching)).then(|| {
                let id = vgw.map(|v| v.id.clone()).unwrap_or_default();
                let op = AwsOp::Await { kind: AwsResourceKind::VgwAttachment, id: id.clone() };
                let name = format!("{} (being detached)", config.aws.vpc_id);
                let step = b.push(Action::Wait, ResourceType::VpnGatewayAttachment, name, StepOp::Aws(op), &[]);
                b.disrupt(
                    step,
                    format!(
                        "{id} is being detached from {} (an interrupted destroy?); it is attached again once detached",
                        config.aws.vpc_id
                    ),
                );
                step
            });
            let op = AwsOp::AttachVpnGateway { vgw_id: vgw_id.clone(), vpc_id: config.aws.vpc_id.clone() };
            Some(b.push(
                Action::Create,
                ResourceType::VpnGatewayAttachment,
                config.aws.vpc_id.clone(),
                StepOp::Aws(op),
                &[vgw_step, detached],
            ))
        }
    };

    if let Some(vpc) = &aws.vpc {
        let tables: Vec<&crate::model::RouteTable> = if config.aws.route_tables.is_empty() {
            vpc.main_route_table().into_iter().collect()
        } else {
            vpc.route_tables.iter().filter(|t| config.aws.route_tables.contains(&t.id)).collect()
        };
        let our_vgw_id = vgw.map(|v| v.id.as_str());
        // static-ha: a static route per Azure prefix; bgp-ha: route propagation from our
        // VGW (a static route would win over the propagated one).
        let bgp_ha = config.mode == crate::config::Mode::BgpHa;
        for table in &tables {
            if bgp_ha && our_vgw_id.is_none_or(|v| !table.propagating_vgws.iter().any(|p| p == v)) {
                let op = AwsOp::EnableVgwRoutePropagation { route_table_id: table.id.clone(), vgw_id: vgw_id.clone() };
                b.push(Action::Create, ResourceType::RoutePropagation, table.id.clone(), StepOp::Aws(op), &[attach_step]);
            }
            for p in azure_prefixes {
                match table.routes.iter().find(|r| r.destination == *p && !r.propagated) {
                    Some(r) if r.gateway_id.as_deref() == our_vgw_id && our_vgw_id.is_some() => {}
                    None if bgp_ha => {}
                    Some(r) => problems.push(format!(
                        "route table {} already sends {p} to {}, not to our virtual private gateway: remove that route or choose \
                         other tables in aws.route_tables",
                        table.id,
                        r.gateway_id.as_deref().unwrap_or("another target")
                    )),
                    None => {
                        let op = AwsOp::CreateRoute { route_table_id: table.id.clone(), destination: *p, vgw_id: vgw_id.clone() };
                        b.push(Action::Create, ResourceType::VpcRoute, format!("{} {p}", table.id), StepOp::Aws(op), &[attach_step]);
                    }
                }
            }
        }
        // Routes via our VGW that the config no longer wants: ours through the tagged VGW.
        if let Some(vid) = our_vgw_id {
            for table in &vpc.route_tables {
                let listed = tables.iter().any(|t| t.id == table.id);
                if table.propagating_vgws.iter().any(|p| p == vid) && !(bgp_ha && listed) {
                    let op = AwsOp::DisableVgwRoutePropagation { route_table_id: table.id.clone(), vgw_id: vid.to_owned() };
                    let id = b.push(Action::Delete, ResourceType::RoutePropagation, table.id.clone(), StepOp::Aws(op), &[]);
                    b.disrupt(id, format!("{} stops learning the Azure prefixes from {vid} by BGP", table.id));
                }
                for r in table.routes.iter().filter(|r| !r.propagated) {
                    let wanted = listed && !bgp_ha && azure_prefixes.contains(&r.destination);
                    if r.gateway_id.as_deref() == Some(vid) && !wanted {
                        let op = AwsOp::DeleteRoute { route_table_id: table.id.clone(), destination: r.destination };
                        let id =
                            b.push(Action::Delete, ResourceType::VpcRoute, format!("{} {}", table.id, r.destination), StepOp::Aws(op), &[]);
                        b.disrupt(id, format!("traffic from {} to {} stops using the VPN", table.id, r.destination));
                    }
                }
            }
        }
    }
    AwsGateway { id: vgw_id, step: vgw_step }
}
