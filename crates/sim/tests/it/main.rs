//! Drives the simulated endpoints directly through core operations, on a paused clock.

mod changes;
mod chaos;
mod fidelity;
mod planner;
mod verify;

use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::IpNet;
use vpnbridge_core::endpoint::{CloudName, EndpointError, ErrorKind, OpStatus, VpnEndpoint};
use vpnbridge_core::model::{AwsState, Owner, ProvisioningState, Role, TunnelState};
use vpnbridge_core::ops::{AwsOp, AzureOp, OpOutput, TunnelSpec};
use vpnbridge_core::secret::Psk;
use vpnbridge_sim::{AwsTarget, AzureTarget, SimAws, SimAzure, SimCloud, VnetSpec, VpcSpec};

const DEPLOY: &str = "azure-aws";
const VPC: &str = "vpc-0123456789abcdef0";

fn owner() -> Owner {
    Owner::new(DEPLOY)
}

fn azure_target() -> AzureTarget {
    AzureTarget {
        subscription_id: "00000000-0000-0000-0000-000000000001".into(),
        resource_group: "rg-vpn".into(),
        location: "japaneast".into(),
        vnet: "vnet-hub".into(),
    }
}

fn aws_target() -> AwsTarget {
    AwsTarget { region: "ap-northeast-1".into(), vpc_id: VPC.into() }
}

fn endpoints(cloud: &SimCloud) -> (SimAws, SimAzure) {
    let t = azure_target();
    cloud
        .ensure_prerequisites(
            &VnetSpec {
                subscription_id: t.subscription_id.clone(),
                resource_group: t.resource_group.clone(),
                location: t.location.clone(),
                name: t.vnet.clone(),
                address_space: vec!["10.1.0.0/16".parse().unwrap()],
                gateway_subnet: "10.1.255.0/27".parse().unwrap(),
            },
            &VpcSpec { region: "ap-northeast-1".into(), vpc_id: VPC.into(), cidrs: vec!["10.2.0.0/16".parse().unwrap()] },
        )
        .unwrap();
    (SimAws::new(cloud.clone(), aws_target()), SimAzure::new(cloud.clone(), t))
}

/// Starts an AWS op and polls it to the end (5 s between polls: EC2 gives no hint).
async fn run_aws(aws: &SimAws, op: AwsOp) -> Result<OpOutput, EndpointError> {
    let h = aws.start(&op).await?;
    loop {
        match aws.poll(&h).await? {
            OpStatus::Done(o) => return Ok(o),
            OpStatus::Failed(e) => return Err(e),
            OpStatus::Running { retry_after } => {
                assert_eq!(retry_after, None, "EC2 gives no retry hint");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

/// Starts an Azure op and polls it to the end, following Retry-After.
async fn run_azure(az: &SimAzure, op: AzureOp) -> Result<OpOutput, EndpointError> {
    let h = az.start(&op).await?;
    loop {
        match az.poll(&h).await? {
            OpStatus::Done(o) => return Ok(o),
            OpStatus::Failed(e) => return Err(e),
            OpStatus::Running { retry_after } => {
                let d = retry_after.expect("ARM sends Retry-After");
                assert!(d <= Duration::from_secs(10));
                tokio::time::sleep(d).await;
            }
        }
    }
}

fn pip_op(k: u8) -> AzureOp {
    AzureOp::CreatePublicIp {
        name: format!("{DEPLOY}-pip-{k}"),
        zones: vec!["1".into(), "2".into(), "3".into()],
        tags: owner().tags(&Role::PublicIp(k)),
    }
}

fn gateway_op(sku: &str, generation: &str, pips: Vec<String>) -> AzureOp {
    AzureOp::CreateVpnGateway {
        name: format!("{DEPLOY}-vpngw"),
        vnet: "vnet-hub".into(),
        sku: sku.into(),
        generation: generation.into(),
        public_ips: pips,
        bgp: None,
        tags: owner().tags(&Role::VpnGateway),
    }
}

fn cgw_op(k: u8, ip: Ipv4Addr, asn: u32) -> AwsOp {
    AwsOp::CreateCustomerGateway {
        ip,
        bgp_asn: asn,
        device_name: format!("{DEPLOY}-cgw-{k}"),
        tags: owner().tags(&Role::CustomerGateway(k)),
    }
}

fn vpn_op(k: u8, cgw: &str, vgw: &str, tunnels: Vec<TunnelSpec>) -> AwsOp {
    AwsOp::CreateVpnConnection {
        cgw_id: cgw.into(),
        vgw_id: vgw.into(),
        static_routes_only: true,
        tunnels,
        tags: owner().tags(&Role::VpnConnection(k)),
    }
}

/// Tunnel 0 of a VPN connection: the one with the lower outside IP.
fn first_tunnel(out: &OpOutput) -> &vpnbridge_core::model::AwsTunnelOptions {
    out.tunnels.iter().min_by_key(|t| t.outside_ip).expect("a VPN connection has tunnels")
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// The AWS side up to available VPN connections, given the Azure public IPs.
async fn build_aws(aws: &SimAws, pips: [Ipv4Addr; 2]) -> (String, Vec<(String, OpOutput)>) {
    let vgw = run_aws(aws, AwsOp::CreateVpnGateway { amazon_asn: 64512, tags: owner().tags(&Role::VirtualPrivateGateway) }).await.unwrap();
    let vgw = vgw.id.unwrap();
    run_aws(aws, AwsOp::AttachVpnGateway { vgw_id: vgw.clone(), vpc_id: VPC.into() }).await.unwrap();
    let obs = aws.observe(&owner()).await.unwrap();
    let rtb = obs.vpc.unwrap().main_route_table().unwrap().id.clone();
    run_aws(aws, AwsOp::CreateRoute { route_table_id: rtb, destination: net("10.1.0.0/16"), vgw_id: vgw.clone() }).await.unwrap();
    let mut vpns = Vec::new();
    for k in 0..2u8 {
        let cgw = run_aws(aws, cgw_op(k, pips[usize::from(k)], 65000)).await.unwrap().id.unwrap();
        let out = run_aws(aws, vpn_op(k, &cgw, &vgw, vec![TunnelSpec { inside_cidr: None, psk: None }; 2])).await.unwrap();
        let vpn = out.id.clone().unwrap();
        run_aws(aws, AwsOp::CreateVpnConnectionRoute { vpn_id: vpn.clone(), destination: net("10.1.0.0/16") }).await.unwrap();
        vpns.push((vpn, out));
    }
    (vgw, vpns)
}

#[tokio::test(start_paused = true)]
async fn static_ha_topology_by_hand() {
    let cloud = SimCloud::in_memory();
    let (aws, az) = endpoints(&cloud);
    let t0 = cloud.now();

    // Public IPs (10 s), then the gateway (45 min) while the AWS side and LNGs are built.
    let p0 = run_azure(&az, pip_op(0)).await.unwrap();
    let p1 = run_azure(&az, pip_op(1)).await.unwrap();
    assert_eq!(cloud.now() - t0, Duration::from_secs(20), "two public IPs, one after the other");
    let pips = [p0.public_ip.unwrap(), p1.public_ip.unwrap()];
    assert!(p0.id.unwrap().ends_with("/publicIPAddresses/azure-aws-pip-0"));

    let gw_start = cloud.now();
    let gateway = async {
        let out = run_azure(&az, gateway_op("VpnGw1AZ", "Generation1", vec![format!("{DEPLOY}-pip-0"), format!("{DEPLOY}-pip-1")]))
            .await
            .unwrap();
        (out, cloud.now())
    };
    let aws_side = async {
        let (vgw, vpns) = build_aws(&aws, pips).await;
        for (k, (_, out)) in vpns.iter().enumerate() {
            let op = AzureOp::PutLocalNetworkGateway {
                bgp: None,
                name: format!("{DEPLOY}-lng-{k}-0"),
                gateway_ip: first_tunnel(out).outside_ip,
                address_prefixes: vec![net("10.2.0.0/16")],
                tags: owner().tags(&Role::LocalNetworkGateway(k as u8, 0)),
            };
            run_azure(&az, op).await.unwrap();
        }
        (vgw, vpns, cloud.now())
    };
    let ((gw, gw_done), (vgw, vpns, aws_done)) = tokio::join!(gateway, aws_side);
    assert_eq!(gw_done - gw_start, Duration::from_secs(45 * 60), "the gateway takes exactly 45 minutes");
    assert!(aws_done < gw_done, "the AWS side is built during the gateway build");
    assert!(gw.id.unwrap().ends_with("/virtualNetworkGateways/azure-aws-vpngw"));

    // Tunnel outputs in EC2's own order, which is not always by outside IP (as on
    // AWS: TunnelOptions[0] may land on the higher one), with generated, valid keys.
    for (_, out) in &vpns {
        assert_eq!(out.tunnels.len(), 2);
        assert_ne!(out.tunnels[0].outside_ip, out.tunnels[1].outside_ip);
        for t in &out.tunnels {
            Psk::check(t.psk.as_ref().unwrap().expose()).unwrap();
        }
    }
    let descending = vpns.iter().filter(|(_, out)| out.tunnels[0].outside_ip > out.tunnels[1].outside_ip).count();
    assert_eq!(descending, 1, "one connection of two gets its options the other way round");

    // Connections, one per used tunnel (tunnel 0 of each VPN connection).
    for (k, (_, out)) in vpns.iter().enumerate() {
        let op = AzureOp::PutConnection {
            name: format!("{DEPLOY}-cn-{k}-0"),
            gateway: format!("{DEPLOY}-vpngw"),
            local_network_gateway: format!("{DEPLOY}-lng-{k}-0"),
            shared_key: first_tunnel(out).psk.clone().unwrap(),
            bgp: None,
            dpd_timeout_seconds: 45,
            tags: owner().tags(&Role::Connection(k as u8, 0)),
        };
        let started = cloud.now();
        run_azure(&az, op).await.unwrap();
        assert_eq!(cloud.now() - started, Duration::from_secs(90));
    }

    // Right after the last Connection: its tunnel is negotiating, not up (the first
    // Connection was done 90 s earlier and is up already).
    let ends = aws.tunnel_ends(&owner()).await.unwrap();
    assert_eq!(ends.len(), 4);
    let last = ends.iter().find(|e| e.resource() == vpns[1].0 && e.instance() == 0).unwrap();
    assert_eq!(last.status().state, TunnelState::Down, "{last:?}");
    assert!(last.status().reason.contains("negotiation"), "{last:?}");
    tokio::time::sleep(Duration::from_secs(59)).await;
    let ends = aws.tunnel_ends(&owner()).await.unwrap();
    assert_eq!(ends.iter().filter(|e| e.status().state == TunnelState::Up).count(), 1, "not yet after 59 s");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let ends = aws.tunnel_ends(&owner()).await.unwrap();
    let up: Vec<_> = ends.iter().filter(|e| e.status().state == TunnelState::Up).collect();
    assert_eq!(up.len(), 2, "{ends:?}");
    for (k, (vpn, out)) in vpns.iter().enumerate() {
        let e = up.iter().find(|e| e.resource() == vpn).unwrap();
        assert_eq!(e.instance(), 0);
        assert_eq!(e.outside_ip(), first_tunnel(out).outside_ip);
        assert_eq!(e.peer_ip(), pips[k]);
        assert_eq!(e.status().reason, "IPSEC IS UP");
    }
    let unused = ends.iter().find(|e| e.instance() == 1).unwrap();
    assert!(unused.status().reason.contains("no Azure connection targets it"), "{:?}", unused.status());

    let az_ends = az.tunnel_ends(&owner()).await.unwrap();
    assert_eq!(az_ends.len(), 4, "one per (Connection, instance)");
    for (k, pip) in pips.iter().enumerate() {
        let name = format!("{DEPLOY}-cn-{k}-0");
        let mine = az_ends.iter().find(|e| e.resource() == name && e.instance() == k).unwrap();
        assert_eq!(mine.status().state, TunnelState::Up, "{mine:?}");
        assert_eq!(mine.outside_ip(), *pip);
        let other = az_ends.iter().find(|e| e.resource() == name && e.instance() != k).unwrap();
        assert_eq!(other.status().state, TunnelState::Down);
        assert!(other.status().reason.contains("expected down by design"), "{:?}", other.status());
    }

    // Observe, both sides.
    let obs = aws.observe(&owner()).await.unwrap();
    assert_eq!(obs.vpn_gateways.len(), 1);
    assert_eq!(obs.vpn_gateways[0].id, vgw);
    assert_eq!(obs.foreign_vgw_on_vpc, None);
    assert_eq!(obs.customer_gateways.len(), 2);
    assert_eq!(obs.vpn_connections.len(), 2);
    let rt = obs.vpc.as_ref().unwrap().main_route_table().unwrap();
    assert!(
        rt.routes
            .iter()
            .any(|r| r.destination == net("10.1.0.0/16") && r.gateway_id.as_deref() == Some(vgw.as_str()) && r.state == "active")
    );
    assert!(rt.routes.iter().any(|r| r.destination == net("10.2.0.0/16") && r.gateway_id.as_deref() == Some("local")));
    for v in &obs.vpn_connections {
        assert_eq!(v.state, AwsState::Available);
        assert_eq!(v.routes.len(), 1);
        assert_eq!(v.routes[0].state, AwsState::Available);
        assert!(v.tunnels[0].outside_ip < v.tunnels[1].outside_ip);
        assert_eq!(v.telemetry[0].status, TunnelState::Up);
        assert_eq!(v.telemetry[1].status, TunnelState::Down);
        assert!(v.telemetry[0].last_status_change.is_some());
    }
    let obs = az.observe(&owner()).await.unwrap();
    let g = obs.vpn_gateway.as_ref().unwrap();
    assert_eq!(g.state, ProvisioningState::Succeeded);
    assert_eq!(g.ip_configurations.len(), 2);
    assert!(g.ip_configurations[0].public_ip_id.ends_with("azure-aws-pip-0"));
    assert!(g.active_active);
    assert_eq!(obs.public_ips.len(), 2);
    assert_eq!(obs.local_network_gateways.len(), 2);
    assert_eq!(obs.connections.len(), 2);
    assert!(obs.foreign_gateways_in_vnet.is_empty());
    let vnet = obs.vnet.as_ref().unwrap();
    assert_eq!(vnet.gateway_subnet().unwrap().ip_configurations.len(), 2);
    for c in &obs.connections {
        assert_eq!(c.connection_status, "Connected");
        assert_eq!(c.tunnels.len(), 2);
        assert_eq!(c.tunnels.iter().filter(|t| t.status == TunnelState::Up).count(), 1);
        assert!(c.shared_key.is_some());
    }

    let (aws_calls, azure_calls) = cloud.mutating_calls();
    assert_eq!(aws_calls, 1 + 1 + 1 + 2 * 3);
    assert_eq!(azure_calls, 2 + 1 + 2 + 2);
}

#[tokio::test(start_paused = true)]
async fn customer_gateway_trap_is_a_conflict() {
    let cloud = SimCloud::in_memory();
    let (aws, _) = endpoints(&cloud);
    let ip = Ipv4Addr::new(20, 210, 0, 99);
    let foreign = cloud.add_foreign_customer_gateway(ip, 65000);
    // The simulated EC2 answers with the foreign gateway; the core judges whose it is.
    let settings = vpnbridge_core::exec::ExecSettings::default();
    let e = match vpnbridge_core::exec::run_op(&aws, &owner(), cgw_op(0, ip, 65000), vpnbridge_core::plan::Action::Create, &settings).await
    {
        Err(vpnbridge_core::exec::StepError::Cloud(e)) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert_eq!(e.cloud, CloudName::Aws);
    assert!(e.message.contains(&foreign), "{e}");
    assert!(e.message.contains("20.210.0.99"), "{e}");
    assert_eq!(cloud.mutating_calls().0, 1, "the call was made");
    assert!(aws.observe(&owner()).await.unwrap().customer_gateways.is_empty());
    // The foreign CGW keeps its (absent) tags.
    assert!(cloud.with_world(|w| w.aws.customer_gateways[&foreign].tags.is_empty()));
    // A different ASN makes a new one.
    run_aws(&aws, cgw_op(0, ip, 65001)).await.unwrap();
    // Retrying our own create returns our own CGW: idempotent, no duplicate.
    let a = run_aws(&aws, cgw_op(0, ip, 65001)).await.unwrap();
    let b = run_aws(&aws, cgw_op(0, ip, 65001)).await.unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(aws.observe(&owner()).await.unwrap().customer_gateways.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn azure_gateway_errors() {
    let cloud = SimCloud::in_memory();
    let (_, az) = endpoints(&cloud);
    run_azure(&az, pip_op(0)).await.unwrap();
    run_azure(&az, pip_op(1)).await.unwrap();
    let two = vec![format!("{DEPLOY}-pip-0"), format!("{DEPLOY}-pip-1")];

    let e = az.start(&gateway_op("VpnGw1AZ", "Generation2", two.clone())).await.unwrap_err();
    assert_eq!(e.code, "VirtualNetworkGatewaySkuCannotBeCreatedForSpecifiedVmGeneration");
    assert_eq!(e.kind, ErrorKind::Permanent);
    let e = az.start(&gateway_op("VpnGw4AZ", "Generation1", two.clone())).await.unwrap_err();
    assert_eq!(e.code, "VirtualNetworkGatewaySkuCannotBeCreatedForSpecifiedVmGeneration");
    for sku in ["VpnGw1", "Basic"] {
        let e = az.start(&gateway_op(sku, "Generation1", two.clone())).await.unwrap_err();
        assert_eq!(e.code, "InvalidGatewaySize", "{sku}");
    }
    let e = az.start(&gateway_op("VpnGw1AZ", "Generation1", two[..1].to_vec())).await.unwrap_err();
    assert_eq!(e.code, "ActiveActiveGatewayMustHaveExactlyTwoIpConfigurations");
    assert!(e.message.contains("has 1 IP configurations"));
    let e = az.start(&gateway_op("VpnGw1AZ", "Generation1", vec![two[0].clone(), "missing".into()])).await.unwrap_err();
    assert_eq!(e.code, "InvalidResourceReference");
    assert_eq!(cloud.mutating_calls().1, 2 + 6, "failed calls count too");

    // A Connection on a gateway that is still Updating: 409, transient.
    run_azure(
        &az,
        AzureOp::PutLocalNetworkGateway {
            bgp: None,
            name: "lng".into(),
            gateway_ip: Ipv4Addr::new(3, 112, 0, 4),
            address_prefixes: vec![net("10.2.0.0/16")],
            tags: owner().tags(&Role::LocalNetworkGateway(0, 0)),
        },
    )
    .await
    .unwrap();
    az.start(&gateway_op("VpnGw1AZ", "Generation1", two.clone())).await.unwrap();
    let cn = AzureOp::PutConnection {
        name: "cn".into(),
        gateway: format!("{DEPLOY}-vpngw"),
        local_network_gateway: "lng".into(),
        shared_key: Psk::new("SomeKey_123").unwrap(),
        bgp: None,
        dpd_timeout_seconds: 45,
        tags: owner().tags(&Role::Connection(0, 0)),
    };
    let e = az.start(&cn).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.kind), ("AnotherOperationInProgress", ErrorKind::Transient));
    let e = az.start(&AzureOp::DeleteVpnGateway { name: format!("{DEPLOY}-vpngw") }).await.unwrap_err();
    assert_eq!(e.code, "AnotherOperationInProgress");
    // A public IP in use by the gateway cannot be deleted.
    let e = az.start(&AzureOp::DeletePublicIp { name: two[0].clone() }).await.unwrap_err();
    assert_eq!(e.code, "PublicIPAddressCannotBeDeleted");
    // A second gateway in the same VNet (different name).
    let mut other = gateway_op("VpnGw1AZ", "Generation1", two.clone());
    if let AzureOp::CreateVpnGateway { name, .. } = &mut other {
        *name = "second".into();
    }
    let e = az.start(&other).await.unwrap_err();
    assert_eq!(e.code, "VnetAlreadyHasGateway");

    // Deleting what is not there is done at once.
    let h = az.start(&AzureOp::DeleteConnection { name: "never-was".into() }).await.unwrap();
    assert!(matches!(az.poll(&h).await.unwrap(), OpStatus::Done(_)));
}

#[tokio::test(start_paused = true)]
async fn aws_errors() {
    let cloud = SimCloud::in_memory();
    let (aws, _) = endpoints(&cloud);
    let e = aws.start(&AwsOp::AttachVpnGateway { vgw_id: "vgw-00000000000000000".into(), vpc_id: VPC.into() }).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.kind), ("InvalidVpnGatewayID.NotFound", ErrorKind::NotFound));
    let vgw = run_aws(&aws, AwsOp::CreateVpnGateway { amazon_asn: 64512, tags: owner().tags(&Role::VirtualPrivateGateway) })
        .await
        .unwrap()
        .id
        .unwrap();
    let e = aws.start(&AwsOp::AttachVpnGateway { vgw_id: vgw.clone(), vpc_id: "vpc-0ffffffffffffffff".into() }).await.unwrap_err();
    assert_eq!(e.code, "InvalidVpcID.NotFound");

    // AsnConflict: the CGW's ASN equals the VGW's.
    let cgw = run_aws(&aws, cgw_op(0, Ipv4Addr::new(20, 210, 0, 4), 64512)).await.unwrap().id.unwrap();
    let e = aws.start(&vpn_op(0, &cgw, &vgw, vec![])).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.kind), ("AsnConflict", ErrorKind::Permanent));

    let cgw = run_aws(&aws, cgw_op(1, Ipv4Addr::new(20, 210, 0, 5), 65000)).await.unwrap().id.unwrap();
    // Reserved or malformed inside CIDRs.
    for bad in ["169.254.5.0/30", "169.254.169.252/30", "169.254.10.0/29", "10.0.0.0/30"] {
        let spec = TunnelSpec { inside_cidr: Some(bad.parse().unwrap()), psk: None };
        let e = aws.start(&vpn_op(1, &cgw, &vgw, vec![spec])).await.unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue", "{bad}");
    }
    let spec = |c: &str| TunnelSpec { inside_cidr: Some(c.parse().unwrap()), psk: Some(Psk::new("Key_for.tunnel1").unwrap()) };
    let out = run_aws(&aws, vpn_op(1, &cgw, &vgw, vec![spec("169.254.21.0/30"), spec("169.254.22.0/30")])).await.unwrap();
    let pinned = out.tunnels.iter().find(|t| t.inside_cidr == Some("169.254.21.0/30".parse().unwrap())).unwrap();
    assert_eq!(pinned.psk.as_ref().unwrap().expose(), "Key_for.tunnel1");
    let vpn = out.id.unwrap();
    // Second connection between the same pair.
    let e = aws.start(&vpn_op(1, &cgw, &vgw, vec![])).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.kind), ("InvalidOption.Conflict", ErrorKind::Conflict));
    // An inside CIDR already used on this VGW.
    let cgw2 = run_aws(&aws, cgw_op(2, Ipv4Addr::new(20, 210, 0, 6), 65000)).await.unwrap().id.unwrap();
    let e = aws.start(&vpn_op(2, &cgw2, &vgw, vec![spec("169.254.21.0/30")])).await.unwrap_err();
    assert_eq!(e.code, "InvalidCidr.InUse");
    // Routes.
    run_aws(&aws, AwsOp::CreateVpnConnectionRoute { vpn_id: vpn.clone(), destination: net("10.1.0.0/16") }).await.unwrap();
    let e = aws.start(&AwsOp::CreateVpnConnectionRoute { vpn_id: vpn.clone(), destination: net("10.1.0.0/16") }).await.unwrap_err();
    assert_eq!(e.code, "RouteAlreadyExists");
    let e = aws.start(&AwsOp::DeleteVpnConnectionRoute { vpn_id: vpn.clone(), destination: net("10.9.0.0/16") }).await.unwrap_err();
    assert_eq!(e.code, "InvalidRoute.NotFound");
    // A CGW still used by a connection; a VGW still attached or with connections.
    let e = aws.start(&AwsOp::DeleteCustomerGateway { cgw_id: cgw.clone() }).await.unwrap_err();
    assert_eq!(e.code, "DependencyViolation");
    let e = aws.start(&AwsOp::DeleteVpnGateway { vgw_id: vgw.clone() }).await.unwrap_err();
    assert_eq!(e.code, "IncorrectState");
    run_aws(&aws, AwsOp::AttachVpnGateway { vgw_id: vgw.clone(), vpc_id: VPC.into() }).await.unwrap();
    // A foreign VGW cannot attach to a VPC that has one.
    let foreign = cloud.add_foreign_vpn_gateway(None);
    let e = aws.start(&AwsOp::AttachVpnGateway { vgw_id: foreign, vpc_id: VPC.into() }).await.unwrap_err();
    assert_eq!(e.code, "InvalidVpcState");

    // Quota: 5 VGWs per region.
    for _ in 0..3 {
        aws.start(&AwsOp::CreateVpnGateway { amazon_asn: 64512, tags: owner().tags(&Role::VirtualPrivateGateway) }).await.unwrap();
    }
    let e = aws.start(&AwsOp::CreateVpnGateway { amazon_asn: 64512, tags: owner().tags(&Role::VirtualPrivateGateway) }).await.unwrap_err();
    assert_eq!(e.code, "VpnGatewayLimitExceeded");
}

/// What EC2 refuses while a resource is still changing, and the planner must wait out
/// (none of these is retried: the AWS adapter classifies them permanent or conflicts).
#[tokio::test(start_paused = true)]
async fn aws_refuses_changes_to_resources_still_changing() {
    let cloud = SimCloud::in_memory();
    let (aws, _) = endpoints(&cloud);
    let vgw = run_aws(&aws, AwsOp::CreateVpnGateway { amazon_asn: 64512, tags: owner().tags(&Role::VirtualPrivateGateway) })
        .await
        .unwrap()
        .id
        .unwrap();
    let cgw = run_aws(&aws, cgw_op(0, Ipv4Addr::new(20, 210, 0, 4), 65000)).await.unwrap().id.unwrap();
    let other = run_aws(&aws, cgw_op(1, Ipv4Addr::new(20, 210, 0, 5), 65000)).await.unwrap().id.unwrap();
    // A pending connection cannot be moved to another CGW, nor its tunnels changed.
    aws.start(&vpn_op(0, &cgw, &vgw, vec![])).await.unwrap();
    let id = aws.observe(&owner()).await.unwrap().vpn_connections[0].id.clone();
    let e = aws.start(&AwsOp::ModifyVpnConnection { vpn_id: id.clone(), cgw_id: other.clone() }).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.kind), ("InvalidVpnConnection.InvalidState", ErrorKind::Permanent));
    let ip = aws.observe(&owner()).await.unwrap().vpn_connections[0].tunnels[0].outside_ip;
    let op = AwsOp::ModifyVpnTunnelOptions {
        vpn_id: id.clone(),
        outside_ip: ip,
        psk: Some(Psk::new("Another.Key_1").unwrap()),
        inside_cidr: None,
    };
    let e = aws.start(&op).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.kind), ("InvalidVpnConnection.InvalidState", ErrorKind::Permanent));
    // A connection being deleted still holds its CGW and VGW: no successor until it is gone.
    run_aws(&aws, AwsOp::Await { kind: vpnbridge_core::ops::AwsResourceKind::VpnConnection, id: id.clone() }).await.unwrap();
    aws.start(&AwsOp::DeleteVpnConnection { vpn_id: id.clone() }).await.unwrap();
    let e = aws.start(&vpn_op(0, &cgw, &vgw, vec![])).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.kind), ("InvalidOption.Conflict", ErrorKind::Conflict));
    run_aws(&aws, AwsOp::Await { kind: vpnbridge_core::ops::AwsResourceKind::VpnConnection, id }).await.unwrap();
    run_aws(&aws, vpn_op(0, &cgw, &vgw, vec![])).await.unwrap();
    // A VGW still detaching cannot be attached again.
    run_aws(&aws, AwsOp::AttachVpnGateway { vgw_id: vgw.clone(), vpc_id: VPC.into() }).await.unwrap();
    aws.start(&AwsOp::DetachVpnGateway { vgw_id: vgw.clone(), vpc_id: VPC.into() }).await.unwrap();
    let e = aws.start(&AwsOp::AttachVpnGateway { vgw_id: vgw.clone(), vpc_id: VPC.into() }).await.unwrap_err();
    assert_ne!(e.kind, ErrorKind::Transient, "{e}");
    run_aws(&aws, AwsOp::Await { kind: vpnbridge_core::ops::AwsResourceKind::VgwAttachment, id: vgw.clone() }).await.unwrap();
    run_aws(&aws, AwsOp::AttachVpnGateway { vgw_id: vgw, vpc_id: VPC.into() }).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn deleted_resources_leave_observe_but_stay_in_the_world() {
    let cloud = SimCloud::in_memory();
    let (aws, _) = endpoints(&cloud);
    let cgw = run_aws(&aws, cgw_op(0, Ipv4Addr::new(20, 210, 0, 4), 65000)).await.unwrap().id.unwrap();
    let h = aws.start(&AwsOp::DeleteCustomerGateway { cgw_id: cgw.clone() }).await.unwrap();
    let obs = aws.observe(&owner()).await.unwrap();
    assert_eq!(obs.customer_gateways[0].state, AwsState::Deleting, "deleting ones stay visible");
    loop {
        match aws.poll(&h).await.unwrap() {
            OpStatus::Done(_) => break,
            OpStatus::Running { .. } => tokio::time::sleep(Duration::from_secs(1)).await,
            OpStatus::Failed(e) => panic!("{e}"),
        }
    }
    assert!(aws.observe(&owner()).await.unwrap().customer_gateways.is_empty());
    assert_eq!(cloud.with_world(|w| w.aws.customer_gateways[&cgw].phase.state), AwsState::Deleted);
}

#[tokio::test(start_paused = true)]
async fn foreign_vgw_on_the_vpc_is_reported() {
    let cloud = SimCloud::in_memory();
    let (aws, _) = endpoints(&cloud);
    let foreign = cloud.add_foreign_vpn_gateway(Some(VPC));
    let obs = aws.observe(&owner()).await.unwrap();
    assert_eq!(obs.foreign_vgw_on_vpc, Some(foreign));
    assert!(obs.vpn_gateways.is_empty());
}

#[tokio::test(start_paused = true)]
async fn operations_survive_a_reopen() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("reopen");
    let (aws_h, az_h) = {
        let cloud = SimCloud::open(&dir).unwrap();
        let (aws, az) = endpoints(&cloud);
        let a = aws.start(&AwsOp::CreateVpnGateway { amazon_asn: 64512, tags: owner().tags(&Role::VirtualPrivateGateway) }).await.unwrap();
        let z = az.start(&pip_op(0)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        cloud.save().unwrap();
        (a, z)
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("world.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let cloud = SimCloud::open(&dir).unwrap();
    assert_eq!(cloud.now(), Duration::from_secs(5), "the clock resumes where it was saved");
    let (aws, az) = (SimAws::new(cloud.clone(), aws_target()), SimAzure::new(cloud.clone(), azure_target()));
    assert!(matches!(aws.poll(&aws_h).await.unwrap(), OpStatus::Running { retry_after: None }));
    match az.poll(&az_h).await.unwrap() {
        OpStatus::Running { retry_after } => assert_eq!(retry_after, Some(Duration::from_secs(10)), "ARM's Retry-After"),
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_secs(15)).await;
    let OpStatus::Done(out) = aws.poll(&aws_h).await.unwrap() else { panic!("VGW not done") };
    assert!(out.id.unwrap().starts_with("vgw-"));
    let OpStatus::Done(out) = az.poll(&az_h).await.unwrap() else { panic!("public IP not done") };
    assert!(out.public_ip.is_some());
    // Keys survive the file too.
    let text = std::fs::read_to_string(dir.join("world.json")).unwrap();
    assert!(text.contains("\"now_ms\""));
}

#[tokio::test(start_paused = true)]
async fn sim_aws_passes_the_endpoint_contract() {
    let cloud = SimCloud::in_memory();
    let (aws, _) = endpoints(&cloud);
    vpnbridge_core::contract::aws(&aws, &owner(), VPC, Duration::from_secs(3600)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn sim_aws_passes_the_repeat_contract() {
    let cloud = SimCloud::in_memory();
    let (aws, _) = endpoints(&cloud);
    vpnbridge_core::contract::aws_repeats(&aws, &owner(), VPC, Duration::from_secs(3600)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn sim_azure_passes_the_endpoint_contract() {
    let cloud = SimCloud::in_memory();
    let (_, azure) = endpoints(&cloud);
    vpnbridge_core::contract::azure(&azure, &owner(), "vnet-hub", Duration::from_secs(3 * 3600)).await.unwrap();
}
