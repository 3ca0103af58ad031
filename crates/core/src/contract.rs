//! The contract every [`VpnEndpoint`] implementation passes: the simulator, the AWS
//! adapter against moto, the Azure adapter against the ARM fake.
//!
//! Each function drives one endpoint through the whole life cycle of every operation
//! the planner uses, checking what `observe`, `poll` and `tunnel_ends` report after
//! each step. They return the first broken promise as an error, so a test can
//! `unwrap()` them. Time: they sleep with `tokio::time` as the executor does (on the
//! simulator, run them under a paused clock).

use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::IpNet;

use crate::endpoint::{Aws, Azure, CloudName, EndpointError, ErrorKind, OpStatus, VpnEndpoint};
use crate::model::{AttachmentState, AwsState, Owner, ProvisioningState, Role, role_of};
use crate::ops::{AwsOp, AzureOp, OpOutput, TunnelSpec};
use crate::secret::Psk;

/// A broken promise of an endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ContractFailure {
    #[error("{step}: {error}")]
    Call { step: String, error: EndpointError },
    #[error("{step}: {what}")]
    Broken { step: String, what: String },
    #[error("{step}: did not finish within {limit:?}")]
    Timeout { step: String, limit: Duration },
}

fn broken(step: &str, what: impl Into<String>) -> ContractFailure {
    ContractFailure::Broken { step: step.to_owned(), what: what.into() }
}

fn check(step: &str, ok: bool, what: impl FnOnce() -> String) -> Result<(), ContractFailure> {
    if ok { Ok(()) } else { Err(broken(step, what())) }
}

/// Starts `op` and polls it to the end, honouring the endpoint's retry hints.
pub async fn run_to_end<C: crate::endpoint::Cloud>(
    ep: &dyn VpnEndpoint<C>,
    op: &C::Op,
    step: &str,
    limit: Duration,
) -> Result<OpOutput, ContractFailure> {
    let call = |error| ContractFailure::Call { step: step.to_owned(), error };
    let handle = ep.start(op).await.map_err(call)?;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match ep.poll(&handle).await.map_err(call)? {
            OpStatus::Done(out) => return Ok(out),
            OpStatus::Failed(e) => return Err(call(e)),
            OpStatus::Running { retry_after } => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(ContractFailure::Timeout { step: step.to_owned(), limit });
                }
                tokio::time::sleep(retry_after.unwrap_or(Duration::from_secs(2)).min(Duration::from_secs(30))).await;
            }
        }
    }
}

/// The outside IPs of some tunnels, sorted (EC2 promises no order).
fn outside_ips(tunnels: &[crate::model::AwsTunnelOptions]) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = tunnels.iter().map(|t| t.outside_ip).collect();
    ips.sort();
    ips
}

/// The VGWs route table `id` propagates, as observed (`None`: no such table).
fn propagating(o: &crate::model::AwsObserved, id: &str) -> Option<Vec<String>> {
    o.vpc.as_ref()?.route_tables.iter().find(|t| t.id == id).map(|t| t.propagating_vgws.clone())
}

/// Observes until `found` finds what a finished operation should have left, within
/// `limit`: what an eventually consistent describe shows only after a while.
async fn eventually<T: Clone>(
    ep: &dyn VpnEndpoint<Aws>,
    owner: &Owner,
    step: &str,
    limit: Duration,
    found: impl Fn(&crate::model::AwsObserved) -> Option<&T>,
) -> Result<T, ContractFailure> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let o = ep.observe(owner).await.map_err(|error| ContractFailure::Call { step: step.to_owned(), error })?;
        if let Some(t) = found(&o) {
            return Ok(t.clone());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(broken(step, "the change never became visible"));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The AWS contract. `vpc_id` must name an existing VPC with a main route table and
/// CIDR 10.2.0.0/16; the endpoint must be scoped to it. `limit` bounds each operation.
/// Besides the static-ha life cycle it covers what bgp-ha adds: a dynamic VPN
/// connection (`StaticRoutesOnly` false, both tunnels pinned, each end reporting a BGP
/// session that is not established: nothing answers BGP) and route propagation enabled,
/// observed, disabled, and disabled again.
pub async fn aws(ep: &dyn VpnEndpoint<Aws>, owner: &Owner, vpc_id: &str, limit: Duration) -> Result<(), ContractFailure> {
    let azure_prefix: IpNet = "10.1.0.0/16".parse().expect("literal");
    let call = |step: &str| {
        let step = step.to_owned();
        move |error| ContractFailure::Call { step, error }
    };

    let o = ep.observe(owner).await.map_err(call("observe (empty)"))?;
    let vpc = o.vpc.ok_or_else(|| broken("observe (empty)", format!("VPC {vpc_id} not reported")))?;
    check("observe (empty)", vpc.id == vpc_id, || format!("VPC {} reported instead of {vpc_id}", vpc.id))?;
    let main = vpc.main_route_table().ok_or_else(|| broken("observe (empty)", "no main route table reported"))?.id.clone();
    check("observe (empty)", o.vpn_gateways.is_empty() && o.customer_gateways.is_empty() && o.vpn_connections.is_empty(), || {
        "resources of a fresh owner reported".into()
    })?;

    // VGW, attachment, VPC route.
    let step = "CreateVpnGateway";
    let out =
        run_to_end(ep, &AwsOp::CreateVpnGateway { amazon_asn: 64512, tags: owner.tags(&Role::VirtualPrivateGateway) }, step, limit).await?;
    let vgw = out.id.ok_or_else(|| broken(step, "no id reported"))?;
    check(step, vgw.starts_with("vgw-"), || format!("id {vgw} is not a vgw- id"))?;
    let o = ep.observe(owner).await.map_err(call(step))?;
    let v = o.vpn_gateways.iter().find(|v| v.id == vgw).ok_or_else(|| broken(step, "the new VGW is not observed"))?;
    check(step, v.state == AwsState::Available && v.amazon_asn == 64512, || format!("{v:?}"))?;
    check(step, role_of(owner, &v.tags) == Some(Role::VirtualPrivateGateway), || format!("tags not applied at creation: {:?}", v.tags))?;

    let step = "AttachVpnGateway";
    run_to_end(ep, &AwsOp::AttachVpnGateway { vgw_id: vgw.clone(), vpc_id: vpc_id.to_owned() }, step, limit).await?;
    let o = ep.observe(owner).await.map_err(call(step))?;
    let v = o.vpn_gateways.iter().find(|v| v.id == vgw).ok_or_else(|| broken(step, "VGW gone"))?;
    check(step, v.attachments.iter().any(|a| a.vpc_id == vpc_id && a.state == AttachmentState::Attached), || {
        format!("{:?}", v.attachments)
    })?;
    check(step, o.foreign_vgw_on_vpc.is_none(), || "our own VGW reported as foreign".into())?;

    let step = "CreateRoute";
    run_to_end(ep, &AwsOp::CreateRoute { route_table_id: main.clone(), destination: azure_prefix, vgw_id: vgw.clone() }, step, limit)
        .await?;
    let o = ep.observe(owner).await.map_err(call(step))?;
    let routes = &o
        .vpc
        .as_ref()
        .and_then(|v| v.route_tables.iter().find(|t| t.id == main).cloned())
        .ok_or_else(|| broken(step, "main table gone"))?
        .routes;
    check(step, routes.iter().any(|r| r.destination == azure_prefix && r.gateway_id.as_deref() == Some(vgw.as_str())), || {
        format!("{routes:?}")
    })?;

    // Route propagation (bgp-ha): the VGW's BGP routes into a table of the VPC.
    let step = "EnableVgwRoutePropagation";
    run_to_end(ep, &AwsOp::EnableVgwRoutePropagation { route_table_id: main.clone(), vgw_id: vgw.clone() }, step, limit).await?;
    let o = ep.observe(owner).await.map_err(call(step))?;
    let vgws = propagating(&o, &main).ok_or_else(|| broken(step, "main table gone"))?;
    check(step, vgws == [vgw.clone()], || format!("propagating VGWs {vgws:?}, expected [{vgw}]"))?;

    // CGW, VPN connection, its route.
    let step = "CreateCustomerGateway";
    let cgw_ip = Ipv4Addr::new(20, 0, 113, 10);
    let op = AwsOp::CreateCustomerGateway {
        ip: cgw_ip,
        bgp_asn: 65000,
        device_name: format!("vpnbridge-{}-cgw-0", owner.deployment),
        tags: owner.tags(&Role::CustomerGateway(0)),
    };
    let cgw = run_to_end(ep, &op, step, limit).await?.id.ok_or_else(|| broken(step, "no id reported"))?;
    let o = ep.observe(owner).await.map_err(call(step))?;
    let c = o.customer_gateways.iter().find(|c| c.id == cgw).ok_or_else(|| broken(step, "the new CGW is not observed"))?;
    check(step, c.ip == cgw_ip && c.bgp_asn == 65000 && c.state == AwsState::Available, || format!("{c:?}"))?;
    check(step, role_of(owner, &c.tags) == Some(Role::CustomerGateway(0)), || format!("tags: {:?}", c.tags))?;

    let step = "CreateVpnConnection";
    let key = Psk::new("Contract.Key_0001").expect("valid");
    let inside: ipnet::Ipv4Net = "169.254.100.0/30".parse().expect("literal");
    let tunnels = vec![TunnelSpec { inside_cidr: Some(inside), psk: Some(key.clone()) }, TunnelSpec { inside_cidr: None, psk: None }];
    let op = AwsOp::CreateVpnConnection {
        cgw_id: cgw.clone(),
        vgw_id: vgw.clone(),
        static_routes_only: true,
        tunnels,
        tags: owner.tags(&Role::VpnConnection(0)),
    };
    let out = run_to_end(ep, &op, step, limit).await?;
    let vpn = out.id.clone().ok_or_else(|| broken(step, "no id reported"))?;
    check(step, out.tunnels.len() == 2, || format!("{} tunnels reported", out.tunnels.len()))?;
    check(step, out.tunnels[0].outside_ip != out.tunnels[1].outside_ip, || "two tunnels share an outside IP".into())?;
    check(step, out.tunnels.iter().all(|t| t.psk.is_some()), || "a tunnel's key was not reported".into())?;
    // The options given together land on one tunnel, whichever EC2 chose.
    let pinned = out.tunnels.iter().find(|t| t.inside_cidr == Some(inside)).ok_or_else(|| broken(step, "no tunnel got the pinned /30"))?;
    check(step, pinned.psk.as_ref() == Some(&key), || "the pinned tunnel does not carry the key given with its /30".into())?;
    let o = ep.observe(owner).await.map_err(call(step))?;
    let v = o.vpn_connections.iter().find(|v| v.id == vpn).ok_or_else(|| broken(step, "the new VPN connection is not observed"))?;
    check(step, v.state == AwsState::Available && v.static_routes_only, || {
        format!("state {:?}, static {}", v.state, v.static_routes_only)
    })?;
    check(step, v.customer_gateway_id == cgw && v.vpn_gateway_id == vgw, || format!("{v:?}"))?;
    check(step, outside_ips(&v.tunnels) == outside_ips(&out.tunnels), || "observe and poll disagree on outside IPs".into())?;

    let step = "CreateVpnConnectionRoute";
    run_to_end(ep, &AwsOp::CreateVpnConnectionRoute { vpn_id: vpn.clone(), destination: azure_prefix }, step, limit).await?;
    let o = ep.observe(owner).await.map_err(call(step))?;
    let v = o.vpn_connections.iter().find(|v| v.id == vpn).ok_or_else(|| broken(step, "VPN connection gone"))?;
    check(step, v.routes.iter().any(|r| r.destination == azure_prefix && !r.state.is_gone()), || format!("{:?}", v.routes))?;

    let step = "tunnel_ends";
    let ends = ep.tunnel_ends(owner).await.map_err(call(step))?;
    let mine: Vec<_> = ends.iter().filter(|e| e.resource() == vpn).collect();
    check(step, mine.len() == 2, || format!("{} ends for {vpn}", mine.len()))?;
    check(step, mine.iter().all(|e| e.cloud() == CloudName::Aws && e.peer_ip() == cgw_ip), || format!("{mine:?}"))?;

    // A dynamic (BGP) VPN connection beside it, both tunnels pinned, as bgp-ha builds them.
    let step = "CreateVpnConnection (dynamic)";
    let bgp_cgw_ip = Ipv4Addr::new(20, 0, 113, 12);
    let op = AwsOp::CreateCustomerGateway {
        ip: bgp_cgw_ip,
        bgp_asn: 65000,
        device_name: format!("vpnbridge-{}-cgw-1", owner.deployment),
        tags: owner.tags(&Role::CustomerGateway(1)),
    };
    let bgp_cgw = run_to_end(ep, &op, step, limit).await?.id.ok_or_else(|| broken(step, "no id reported for the CGW"))?;
    let pins: [ipnet::Ipv4Net; 2] = ["169.254.21.4/30".parse().expect("literal"), "169.254.22.4/30".parse().expect("literal")];
    let keys = [Psk::new("Contract.Key_0003").expect("valid"), Psk::new("Contract.Key_0004").expect("valid")];
    let op = AwsOp::CreateVpnConnection {
        cgw_id: bgp_cgw.clone(),
        vgw_id: vgw.clone(),
        static_routes_only: false,
        tunnels: pins.iter().zip(&keys).map(|(c, k)| TunnelSpec { inside_cidr: Some(*c), psk: Some(k.clone()) }).collect(),
        tags: owner.tags(&Role::VpnConnection(1)),
    };
    let bgp_out = run_to_end(ep, &op, step, limit).await?;
    let bgp_vpn = bgp_out.id.clone().ok_or_else(|| broken(step, "no id reported"))?;
    let mut got: Vec<_> = bgp_out.tunnels.iter().filter_map(|t| t.inside_cidr).collect();
    got.sort();
    check(step, got == pins, || format!("inside CIDRs {got:?}, expected {pins:?}"))?;
    let o = ep.observe(owner).await.map_err(call(step))?;
    let v = o.vpn_connections.iter().find(|v| v.id == bgp_vpn).ok_or_else(|| broken(step, "the new VPN connection is not observed"))?;
    check(step, v.state == AwsState::Available && !v.static_routes_only, || {
        format!("state {:?}, static {}", v.state, v.static_routes_only)
    })?;
    // Nothing answers BGP here: no route is propagated into the table.
    let table = o.vpc.as_ref().and_then(|v| v.route_tables.iter().find(|t| t.id == main)).ok_or_else(|| broken(step, "main table gone"))?;
    check(step, !table.routes.iter().any(|r| r.propagated), || format!("routes propagated without a BGP session: {:?}", table.routes))?;
    let step = "tunnel_ends (dynamic)";
    let ends = ep.tunnel_ends(owner).await.map_err(call(step))?;
    let dynamic: Vec<_> = ends.iter().filter(|e| e.resource() == bgp_vpn).collect();
    check(step, dynamic.len() == 2, || format!("{} ends for {bgp_vpn}", dynamic.len()))?;
    for e in &dynamic {
        let inside = e.inside_cidr().ok_or_else(|| broken(step, format!("no inside CIDR reported for {}", e.outside_ip())))?;
        let b = e.bgp().ok_or_else(|| broken(step, format!("no BGP session reported on dynamic tunnel {}", e.outside_ip())))?;
        check(
            step,
            b.local_address == Some(crate::bgp::aws_address(inside))
                && b.peer_address == Some(crate::bgp::azure_address(inside))
                && b.state != crate::endpoint::BgpState::Established,
            || format!("{b:?} on tunnel {inside}"),
        )?;
    }
    check(step, ends.iter().filter(|e| e.resource() == vpn).all(|e| e.bgp().is_none()), || {
        "a static VPN connection's tunnel reports a BGP session".into()
    })?;

    let step = "DisableVgwRoutePropagation";
    let disable = AwsOp::DisableVgwRoutePropagation { route_table_id: main.clone(), vgw_id: vgw.clone() };
    run_to_end(ep, &disable, step, limit).await?;
    let o = ep.observe(owner).await.map_err(call(step))?;
    let vgws = propagating(&o, &main).ok_or_else(|| broken(step, "main table gone"))?;
    check(step, !vgws.contains(&vgw), || format!("propagating VGWs {vgws:?} after the disable"))?;
    let step = "DisableVgwRoutePropagation (already disabled)";
    run_to_end(ep, &disable, step, limit).await?;

    let step = "ModifyVpnTunnelOptions";
    let new_key = Psk::new("Contract.Key_0002").expect("valid");
    let first_ip = out.tunnels[0].outside_ip;
    let op = AwsOp::ModifyVpnTunnelOptions { vpn_id: vpn.clone(), outside_ip: first_ip, psk: Some(new_key.clone()), inside_cidr: None };
    run_to_end(ep, &op, step, limit).await?;
    // EC2 may describe the connection `available` with the old key for a moment after
    // the call: a modification is judged done when it is visible.
    let v = eventually(ep, owner, step, limit, |o| {
        o.vpn_connections.iter().find(|v| {
            v.id == vpn
                && v.state == AwsState::Available
                && v.tunnels.iter().any(|t| t.outside_ip == first_ip && t.psk.as_ref() == Some(&new_key))
        })
    })
    .await?;
    check(step, outside_ips(&v.tunnels) == outside_ips(&out.tunnels), || "outside IPs changed".into())?;

    let step = "ModifyVpnConnection";
    let op = AwsOp::CreateCustomerGateway {
        ip: Ipv4Addr::new(20, 0, 113, 11),
        bgp_asn: 65000,
        device_name: format!("vpnbridge-{}-cgw-0-new", owner.deployment),
        tags: owner.tags(&Role::CustomerGateway(0)),
    };
    let new_cgw = run_to_end(ep, &op, step, limit).await?.id.ok_or_else(|| broken(step, "no id reported for the new CGW"))?;
    check(step, new_cgw != cgw, || "a CGW with another IP came back as the old one".into())?;
    run_to_end(ep, &AwsOp::ModifyVpnConnection { vpn_id: vpn.clone(), cgw_id: new_cgw.clone() }, step, limit).await?;
    let v = eventually(ep, owner, step, limit, |o| {
        o.vpn_connections.iter().find(|v| v.id == vpn && v.state == AwsState::Available && v.customer_gateway_id == new_cgw)
    })
    .await?;
    check(step, outside_ips(&v.tunnels) == outside_ips(&out.tunnels), || "outside IPs changed".into())?;
    run_to_end(ep, &AwsOp::DeleteCustomerGateway { cgw_id: cgw.clone() }, step, limit).await?;
    let cgw = new_cgw;

    // Teardown in the destroy plan's order; each observed gone; repeat deletes succeed.
    for (step, op) in [
        ("DeleteVpnConnection (dynamic)", AwsOp::DeleteVpnConnection { vpn_id: bgp_vpn }),
        ("DeleteCustomerGateway (dynamic)", AwsOp::DeleteCustomerGateway { cgw_id: bgp_cgw }),
        ("DeleteVpnConnectionRoute", AwsOp::DeleteVpnConnectionRoute { vpn_id: vpn.clone(), destination: azure_prefix }),
        ("DeleteVpnConnection", AwsOp::DeleteVpnConnection { vpn_id: vpn.clone() }),
        ("DeleteCustomerGateway", AwsOp::DeleteCustomerGateway { cgw_id: cgw.clone() }),
        ("DeleteRoute", AwsOp::DeleteRoute { route_table_id: main.clone(), destination: azure_prefix }),
        ("DetachVpnGateway", AwsOp::DetachVpnGateway { vgw_id: vgw.clone(), vpc_id: vpc_id.to_owned() }),
        ("DeleteVpnGateway", AwsOp::DeleteVpnGateway { vgw_id: vgw.clone() }),
    ] {
        run_to_end(ep, &op, step, limit).await?;
    }
    let step = "observe (after teardown)";
    let o = ep.observe(owner).await.map_err(call(step))?;
    check(step, o.vpn_gateways.iter().all(|v| v.state.is_gone()), || format!("{:?}", o.vpn_gateways))?;
    check(step, o.customer_gateways.iter().all(|c| c.state.is_gone()), || format!("{:?}", o.customer_gateways))?;
    check(step, o.vpn_connections.iter().all(|c| c.state.is_gone()), || format!("{:?}", o.vpn_connections))?;
    let table = o.vpc.as_ref().and_then(|v| v.route_tables.iter().find(|t| t.id == main)).ok_or_else(|| broken(step, "main table gone"))?;
    check(step, !table.routes.iter().any(|r| r.destination == azure_prefix), || format!("{:?}", table.routes))?;
    let step = "DeleteCustomerGateway (already gone)";
    run_to_end(ep, &AwsOp::DeleteCustomerGateway { cgw_id: cgw }, step, limit).await?;
    Ok(())
}

/// Runs `op` the way the executor runs a step (`exec::run_op`): core, not the
/// endpoint, decides whether a refused or repeated call already did the job.
async fn run_judged(ep: &dyn VpnEndpoint<Aws>, owner: &Owner, op: AwsOp, step: &str, limit: Duration) -> Result<OpOutput, ContractFailure> {
    run_judged_as(ep, owner, op, crate::plan::Action::Create, step, limit).await
}

/// [`run_judged`] for a step of another action (a delete is not looked for before a repeat).
async fn run_judged_as(
    ep: &dyn VpnEndpoint<Aws>,
    owner: &Owner,
    op: AwsOp,
    action: crate::plan::Action,
    step: &str,
    limit: Duration,
) -> Result<OpOutput, ContractFailure> {
    let settings = crate::exec::ExecSettings::default();
    match tokio::time::timeout(limit, crate::exec::run_op(ep, owner, op, action, &settings)).await {
        Err(_) => Err(ContractFailure::Timeout { step: step.to_owned(), limit }),
        Ok(Ok(out)) => Ok(out),
        Ok(Err(crate::exec::StepError::Cloud(error))) => Err(ContractFailure::Call { step: step.to_owned(), error }),
        Ok(Err(e)) => Err(broken(step, e.to_string())),
    }
}

/// The AWS repeat contract: the calls whose answer may be lost and that the executor
/// then repeats, as EC2 answers them (an attachment and a route already there, route
/// propagation enabled or disabled a second time, a customer gateway that EC2 returns
/// again for the same IP, ASN and device name, whoever's it is), judged by core through
/// `exec::run_op`. Same VPC as [`aws`];
/// `owner` must have nothing yet.
pub async fn aws_repeats(ep: &dyn VpnEndpoint<Aws>, owner: &Owner, vpc_id: &str, limit: Duration) -> Result<(), ContractFailure> {
    let azure_prefix: IpNet = "10.1.0.0/16".parse().expect("literal");
    let call = |step: &str| {
        let step = step.to_owned();
        move |error| ContractFailure::Call { step, error }
    };
    let o = ep.observe(owner).await.map_err(call("observe (empty)"))?;
    let main = o
        .vpc
        .as_ref()
        .and_then(|v| v.main_route_table())
        .ok_or_else(|| broken("observe (empty)", "no main route table reported"))?
        .id
        .clone();

    let step = "CreateVpnGateway";
    let op = AwsOp::CreateVpnGateway { amazon_asn: 64512, tags: owner.tags(&Role::VirtualPrivateGateway) };
    let vgw = run_judged(ep, owner, op, step, limit).await?.id.ok_or_else(|| broken(step, "no id reported"))?;

    let attach = AwsOp::AttachVpnGateway { vgw_id: vgw.clone(), vpc_id: vpc_id.to_owned() };
    run_judged(ep, owner, attach.clone(), "AttachVpnGateway", limit).await?;
    let step = "AttachVpnGateway (repeated)";
    run_judged(ep, owner, attach, step, limit).await?;
    let o = ep.observe(owner).await.map_err(call(step))?;
    let v = o.vpn_gateways.iter().find(|v| v.id == vgw).ok_or_else(|| broken(step, "VGW gone"))?;
    check(step, v.attachments.iter().filter(|a| a.vpc_id == vpc_id && a.state == AttachmentState::Attached).count() == 1, || {
        format!("{:?}", v.attachments)
    })?;

    let route = AwsOp::CreateRoute { route_table_id: main.clone(), destination: azure_prefix, vgw_id: vgw.clone() };
    run_judged(ep, owner, route.clone(), "CreateRoute", limit).await?;
    let step = "CreateRoute (repeated)";
    run_judged(ep, owner, route, step, limit).await?;
    let o = ep.observe(owner).await.map_err(call(step))?;
    let table = o.vpc.as_ref().and_then(|v| v.route_tables.iter().find(|t| t.id == main)).ok_or_else(|| broken(step, "main table gone"))?;
    check(
        step,
        table.routes.iter().filter(|r| r.destination == azure_prefix && r.gateway_id.as_deref() == Some(vgw.as_str())).count() == 1,
        || format!("{:?}", table.routes),
    )?;

    // Route propagation: enabling it again, or disabling it again, is no error and
    // leaves one entry, or none.
    let enable = AwsOp::EnableVgwRoutePropagation { route_table_id: main.clone(), vgw_id: vgw.clone() };
    run_judged(ep, owner, enable.clone(), "EnableVgwRoutePropagation", limit).await?;
    let step = "EnableVgwRoutePropagation (repeated)";
    run_judged(ep, owner, enable, step, limit).await?;
    let o = ep.observe(owner).await.map_err(call(step))?;
    let vgws = propagating(&o, &main).ok_or_else(|| broken(step, "main table gone"))?;
    check(step, vgws == [vgw.clone()], || format!("propagating VGWs {vgws:?}, expected [{vgw}] once"))?;
    let disable = AwsOp::DisableVgwRoutePropagation { route_table_id: main.clone(), vgw_id: vgw.clone() };
    run_judged_as(ep, owner, disable.clone(), crate::plan::Action::Delete, "DisableVgwRoutePropagation", limit).await?;
    let step = "DisableVgwRoutePropagation (repeated)";
    run_judged_as(ep, owner, disable, crate::plan::Action::Delete, step, limit).await?;
    let o = ep.observe(owner).await.map_err(call(step))?;
    let vgws = propagating(&o, &main).ok_or_else(|| broken(step, "main table gone"))?;
    check(step, vgws.is_empty(), || format!("propagating VGWs {vgws:?} after the disable"))?;

    let step = "CreateCustomerGateway (repeated)";
    let ours = |ip: Ipv4Addr, device: &str| AwsOp::CreateCustomerGateway {
        ip,
        bgp_asn: 65000,
        device_name: device.to_owned(),
        tags: owner.tags(&Role::CustomerGateway(0)),
    };
    let ip = Ipv4Addr::new(20, 0, 113, 20);
    let device = format!("vpnbridge-{}-cgw-0", owner.deployment);
    let cgw = run_judged(ep, owner, ours(ip, &device), step, limit).await?.id.ok_or_else(|| broken(step, "no id reported"))?;
    let again = run_judged(ep, owner, ours(ip, &device), step, limit).await?.id.ok_or_else(|| broken(step, "no id reported"))?;
    check(step, again == cgw, || format!("the repeat made {again} beside {cgw}"))?;

    let step = "CreateCustomerGateway (someone else's)";
    let other = Owner::new(format!("{}-other", owner.deployment));
    let their_ip = Ipv4Addr::new(20, 0, 113, 21);
    let their_device = format!("vpnbridge-{}-cgw-1", owner.deployment);
    let theirs = AwsOp::CreateCustomerGateway {
        ip: their_ip,
        bgp_asn: 65000,
        device_name: their_device.clone(),
        tags: other.tags(&Role::CustomerGateway(1)),
    };
    let theirs = run_judged(ep, &other, theirs, step, limit).await?.id.ok_or_else(|| broken(step, "no id reported"))?;
    match run_judged(ep, owner, ours(their_ip, &their_device), step, limit).await {
        Err(ContractFailure::Call { error, .. }) => check(
            step,
            error.kind == ErrorKind::Conflict
                && error.code == "ForeignCustomerGateway"
                && error.message.contains(&theirs)
                && !error.may_have_committed,
            || format!("{error}"),
        )?,
        Ok(out) => return Err(broken(step, format!("someone else's customer gateway was taken as ours: {:?}", out.id))),
        Err(other) => return Err(other),
    }
    let o = ep.observe(owner).await.map_err(call(step))?;
    check(step, o.customer_gateways.iter().map(|c| c.id.as_str()).collect::<Vec<_>>() == [cgw.as_str()], || {
        format!("{:?}", o.customer_gateways)
    })?;

    for (step, op) in [
        ("DeleteCustomerGateway", AwsOp::DeleteCustomerGateway { cgw_id: cgw }),
        ("DeleteCustomerGateway (someone else's, test cleanup)", AwsOp::DeleteCustomerGateway { cgw_id: theirs }),
        ("DeleteRoute", AwsOp::DeleteRoute { route_table_id: main, destination: azure_prefix }),
        ("DetachVpnGateway", AwsOp::DetachVpnGateway { vgw_id: vgw.clone(), vpc_id: vpc_id.to_owned() }),
        ("DeleteVpnGateway", AwsOp::DeleteVpnGateway { vgw_id: vgw }),
    ] {
        run_to_end(ep, &op, step, limit).await?;
    }
    Ok(())
}

/// The Azure contract. The endpoint must be scoped to a resource group holding VNet
/// `vnet` with a GatewaySubnet, where `owner` has nothing yet. After the static-ha life
/// cycle it turns BGP on in place as bgp-ha builds it (the gateway's custom APIPA
/// addresses, the LNG's BGP peer, the Connection's address per instance), reads each
/// back, sees a wrong address refused, and finds each end's BGP session in
/// `tunnel_ends` (not established: nothing answers on the AWS side).
pub async fn azure(ep: &dyn VpnEndpoint<Azure>, owner: &Owner, vnet: &str, limit: Duration) -> Result<(), ContractFailure> {
    let call = |step: &str| {
        let step = step.to_owned();
        move |error| ContractFailure::Call { step, error }
    };
    let d = &owner.deployment;
    let step = "observe (empty)";
    let o = ep.observe(owner).await.map_err(call(step))?;
    let v = o.vnet.ok_or_else(|| broken(step, format!("VNet {vnet} not reported")))?;
    check(step, v.gateway_subnet().is_some(), || "GatewaySubnet not reported".into())?;
    check(
        step,
        o.public_ips.is_empty() && o.vpn_gateway.is_none() && o.local_network_gateways.is_empty() && o.connections.is_empty(),
        || "resources of a fresh owner reported".into(),
    )?;

    let mut ips = Vec::new();
    for k in 0..2u8 {
        let step = "CreatePublicIp";
        let op = AzureOp::CreatePublicIp {
            name: format!("{d}-pip-{k}"),
            zones: vec!["1".into(), "2".into(), "3".into()],
            tags: owner.tags(&Role::PublicIp(k)),
        };
        let out = run_to_end(ep, &op, step, limit).await?;
        ips.push(out.public_ip.ok_or_else(|| broken(step, "no address reported"))?);
    }
    let step = "CreatePublicIp";
    let o = ep.observe(owner).await.map_err(call(step))?;
    check(
        step,
        o.public_ips.len() == 2
            && o.public_ips.iter().all(|p| p.sku == "Standard" && p.static_allocation && p.state == ProvisioningState::Succeeded),
        || format!("{:?}", o.public_ips),
    )?;

    let gateway_with = |sku: &str, generation: &str, bgp: Option<crate::ops::GatewayBgp>| AzureOp::CreateVpnGateway {
        name: format!("{d}-vpngw"),
        vnet: vnet.to_owned(),
        sku: sku.into(),
        generation: generation.into(),
        public_ips: vec![format!("{d}-pip-0"), format!("{d}-pip-1")],
        bgp,
        tags: owner.tags(&Role::VpnGateway),
    };
    let gateway = |sku: &str, generation: &str| gateway_with(sku, generation, None);
    let step = "CreateVpnGateway (VpnGw1AZ + Generation2)";
    match ep.start(&gateway("VpnGw1AZ", "Generation2")).await {
        Err(e) => check(
            step,
            e.kind == ErrorKind::Permanent && e.code == "VirtualNetworkGatewaySkuCannotBeCreatedForSpecifiedVmGeneration",
            || format!("{e}"),
        )?,
        Ok(h) => match ep.poll(&h).await.map_err(call(step))? {
            OpStatus::Failed(e) => {
                check(step, e.code == "VirtualNetworkGatewaySkuCannotBeCreatedForSpecifiedVmGeneration", || format!("{e}"))?
            }
            other => return Err(broken(step, format!("accepted an invalid SKU/generation pair: {other:?}"))),
        },
    }
    let step = "CreateVpnGateway";
    run_to_end(ep, &gateway("VpnGw1AZ", "Generation1"), step, limit).await?;
    let o = ep.observe(owner).await.map_err(call(step))?;
    let gw = o.vpn_gateway.ok_or_else(|| broken(step, "the new gateway is not observed"))?;
    check(step, gw.active_active && gw.vpn_type == "RouteBased" && gw.sku == "VpnGw1AZ" && gw.generation == "Generation1", || {
        format!("{gw:?}")
    })?;
    check(step, gw.ip_configurations.len() == 2, || format!("{:?}", gw.ip_configurations))?;
    for (k, cfg) in gw.ip_configurations.iter().enumerate() {
        let pip = o
            .public_ips
            .iter()
            .find(|p| p.id.eq_ignore_ascii_case(&cfg.public_ip_id))
            .ok_or_else(|| broken(step, "ipConfiguration references an unknown public IP"))?;
        check(step, pip.name == format!("{d}-pip-{k}"), || format!("instance {k} uses {} instead of {d}-pip-{k}", pip.name))?;
    }

    let remote = Ipv4Addr::new(3, 0, 113, 5);
    let step = "PutLocalNetworkGateway";
    let prefixes: Vec<IpNet> = vec!["10.2.0.0/16".parse().expect("literal")];
    let op = AzureOp::PutLocalNetworkGateway {
        name: format!("{d}-lng-0-0"),
        gateway_ip: remote,
        address_prefixes: prefixes.clone(),
        bgp: None,
        tags: owner.tags(&Role::LocalNetworkGateway(0, 0)),
    };
    run_to_end(ep, &op, step, limit).await?;
    let o = ep.observe(owner).await.map_err(call(step))?;
    check(step, o.local_network_gateways.iter().any(|l| l.gateway_ip == remote && l.address_prefixes == prefixes), || {
        format!("{:?}", o.local_network_gateways)
    })?;

    let step = "PutConnection";
    let key = Psk::new("Contract.Key_0001").expect("valid");
    let cn = format!("{d}-cn-0-0");
    let op = AzureOp::PutConnection {
        name: cn.clone(),
        gateway: format!("{d}-vpngw"),
        local_network_gateway: format!("{d}-lng-0-0"),
        shared_key: key.clone(),
        bgp: None,
        dpd_timeout_seconds: 45,
        tags: owner.tags(&Role::Connection(0, 0)),
    };
    run_to_end(ep, &op, step, limit).await?;
    let o = ep.observe(owner).await.map_err(call(step))?;
    let c = o.connections.iter().find(|c| c.name == cn).ok_or_else(|| broken(step, "the new connection is not observed"))?;
    check(step, c.protocol == "IKEv2" && c.shared_key.as_ref() == Some(&key), || "protocol or key differ".into())?;

    let step = "SetSharedKey";
    let new_key = Psk::new("Contract.Key_0002").expect("valid");
    run_to_end(ep, &AzureOp::SetSharedKey { name: cn.clone(), shared_key: new_key.clone() }, step, limit).await?;
    let o = ep.observe(owner).await.map_err(call(step))?;
    check(step, o.connections.iter().any(|c| c.name == cn && c.shared_key.as_ref() == Some(&new_key)), || {
        "the new key is not observed".into()
    })?;

    let step = "tunnel_ends";
    let ends = ep.tunnel_ends(owner).await.map_err(call(step))?;
    let mine: Vec<_> = ends.iter().filter(|e| e.resource() == cn).collect();
    check(step, mine.len() == 2, || format!("{} ends for {cn}: one per gateway instance expected", mine.len()))?;
    check(step, mine.iter().all(|e| e.peer_ip() == remote && ips.contains(&e.outside_ip())), || format!("{mine:?}"))?;
    check(step, mine.iter().all(|e| e.bgp().is_none()), || "a Connection without BGP reports a BGP session".into())?;

    // bgp-ha, in place: BGP on the gateway (the layout's custom APIPA addresses), a BGP
    // peer on the LNG, BGP on the Connection; each read back, a wrong address refused.
    let ip = |s: &str| s.parse::<Ipv4Addr>().expect("literal");
    let custom = vec![vec![ip("169.254.21.2"), ip("169.254.22.2")], vec![ip("169.254.21.6"), ip("169.254.22.6")]];
    let step = "CreateVpnGateway (BGP on)";
    let bgp_gateway =
        gateway_with("VpnGw1AZ", "Generation1", Some(crate::ops::GatewayBgp { asn: 65000, custom_addresses: custom.clone() }));
    run_to_end(ep, &bgp_gateway, step, limit).await?;
    let o = ep.observe(owner).await.map_err(call(step))?;
    let gw = o.vpn_gateway.ok_or_else(|| broken(step, "the gateway is not observed"))?;
    check(step, gw.bgp_peering_addresses.len() == 2, || format!("{:?}", gw.bgp_peering_addresses))?;
    for (k, p) in gw.bgp_peering_addresses.iter().enumerate() {
        let cfg = &gw.ip_configurations[k].id;
        check(step, p.ip_configuration_id.eq_ignore_ascii_case(cfg) && p.custom == custom[k] && !p.default.is_empty(), || {
            format!("instance {k}: {p:?}")
        })?;
    }
    let step = "PutLocalNetworkGateway (BGP peer)";
    let peer = crate::model::LngBgp { asn: 64512, peering_address: ip("169.254.21.1") };
    let op = AzureOp::PutLocalNetworkGateway {
        name: format!("{d}-lng-0-0"),
        gateway_ip: remote,
        address_prefixes: Vec::new(),
        bgp: Some(peer),
        tags: owner.tags(&Role::LocalNetworkGateway(0, 0)),
    };
    run_to_end(ep, &op, step, limit).await?;
    let o = ep.observe(owner).await.map_err(call(step))?;
    check(step, o.local_network_gateways.iter().any(|l| l.bgp == Some(peer) && l.address_prefixes.is_empty()), || {
        format!("{:?}", o.local_network_gateways)
    })?;
    let bgp_connection = |addresses: Vec<Ipv4Addr>| AzureOp::PutConnection {
        name: cn.clone(),
        gateway: format!("{d}-vpngw"),
        local_network_gateway: format!("{d}-lng-0-0"),
        shared_key: new_key.clone(),
        bgp: Some(crate::ops::ConnectionBgp { custom_addresses: addresses }),
        dpd_timeout_seconds: 45,
        tags: owner.tags(&Role::Connection(0, 0)),
    };
    let step = "PutConnection (an address the instance does not have)";
    match ep.start(&bgp_connection(vec![ip("169.254.21.6"), ip("169.254.21.2")])).await {
        Err(e) => check(step, e.kind == ErrorKind::Permanent, || format!("{e}"))?,
        Ok(h) => match ep.poll(&h).await.map_err(call(step))? {
            OpStatus::Failed(e) => check(step, e.kind == ErrorKind::Permanent, || format!("{e}"))?,
            other => return Err(broken(step, format!("accepted instance 1's address for instance 0: {other:?}"))),
        },
    }
    let step = "PutConnection (BGP)";
    run_to_end(ep, &bgp_connection(vec![ip("169.254.21.2"), ip("169.254.21.6")]), step, limit).await?;
    let o = ep.observe(owner).await.map_err(call(step))?;
    let c = o.connections.iter().find(|c| c.name == cn).ok_or_else(|| broken(step, "the connection is not observed"))?;
    let addresses: Vec<Ipv4Addr> = gw
        .ip_configurations
        .iter()
        .filter_map(|g| c.custom_bgp_addresses.iter().find(|a| a.ip_configuration_id.eq_ignore_ascii_case(&g.id)).map(|a| a.address))
        .collect();
    check(step, c.enable_bgp && addresses == [ip("169.254.21.2"), ip("169.254.21.6")], || format!("{c:?}"))?;
    let step = "tunnel_ends (BGP)";
    let ends = ep.tunnel_ends(owner).await.map_err(call(step))?;
    let mine: Vec<_> = ends.iter().filter(|e| e.resource() == cn).collect();
    check(step, mine.len() == 2, || format!("{} ends for {cn}", mine.len()))?;
    for e in &mine {
        let want = if e.instance() == 0 { ip("169.254.21.2") } else { ip("169.254.21.6") };
        let b = e.bgp().ok_or_else(|| broken(step, format!("no BGP session reported for instance {}", e.instance())))?;
        // Nothing answers on the AWS side: the session is not established.
        check(
            step,
            b.peer_address == Some(peer.peering_address)
                && b.local_address == Some(want)
                && b.state != crate::endpoint::BgpState::Established,
            || format!("instance {}: {b:?}", e.instance()),
        )?;
    }

    for (step, op) in [
        ("DeleteConnection", AzureOp::DeleteConnection { name: cn.clone() }),
        ("DeleteLocalNetworkGateway", AzureOp::DeleteLocalNetworkGateway { name: format!("{d}-lng-0-0") }),
        ("DeleteVpnGateway", AzureOp::DeleteVpnGateway { name: format!("{d}-vpngw") }),
        ("DeletePublicIp", AzureOp::DeletePublicIp { name: format!("{d}-pip-0") }),
        ("DeletePublicIp", AzureOp::DeletePublicIp { name: format!("{d}-pip-1") }),
        ("DeleteConnection (already gone)", AzureOp::DeleteConnection { name: cn.clone() }),
    ] {
        run_to_end(ep, &op, step, limit).await?;
    }
    let step = "observe (after teardown)";
    let o = ep.observe(owner).await.map_err(call(step))?;
    check(
        step,
        o.public_ips.is_empty() && o.vpn_gateway.is_none() && o.local_network_gateways.is_empty() && o.connections.is_empty(),
        || "resources left after teardown".into(),
    )?;
    Ok(())
}
