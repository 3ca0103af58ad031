//! The AWS adapter against moto on loopback (started per test, see `moto.rs`): the core's
//! endpoint contract, the adapter's own traps, and call counts from the server's log.

mod apply;
mod moto;
mod probe;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use aws_sdk_ec2::types::{
    GatewayType, ResourceType, Tag, TagSpecification, VpnConnectionOptionsSpecification, VpnTunnelOptionsSpecification,
};
use vpnbridge_aws::{AwsEndpoint, QuotaNeed, Quotas};
use vpnbridge_core::contract::{self, run_to_end};
use vpnbridge_core::endpoint::{ErrorKind, OpStatus, VpnEndpoint};
use vpnbridge_core::model::{Owner, Role};
use vpnbridge_core::ops::AwsOp;

use crate::moto::{Moto, create_vpc};

const LIMIT: Duration = Duration::from_secs(60);

fn counts(requests: &[String]) -> BTreeMap<&str, usize> {
    let mut m = BTreeMap::new();
    for r in requests {
        *m.entry(r.as_str()).or_default() += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_passes_on_moto() {
    let moto = Moto::start();
    let client = moto.client();
    let vpc = create_vpc(&client).await;
    let ep = AwsEndpoint::from_client(client, &vpc);
    moto.clear_requests();
    contract::aws(&ep, &Owner::new("contract"), &vpc, LIMIT).await.unwrap();
    // From the server's side: every create exactly once (no SDK retry, no repeat); the
    // contract makes three customer gateways (one for the dynamic VPN connection, one for
    // the ModifyVpnConnection swap) and disables route propagation twice on purpose.
    let log = moto.requests();
    let c = counts(&log);
    for (op, n) in [
        ("CreateVpnGateway", 1),
        ("CreateCustomerGateway", 3),
        ("ModifyVpnConnection", 1),
        ("CreateVpnConnection", 2),
        ("CreateVpnConnectionRoute", 1),
        ("CreateRoute", 1),
        ("EnableVgwRoutePropagation", 1),
        ("DisableVgwRoutePropagation", 2),
    ] {
        assert_eq!(c.get(op), Some(&n), "{op}: {c:?}");
    }
}

/// The repeats the executor makes after a lost answer, judged by core, on moto.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_contract_passes_on_moto() {
    let moto = Moto::start();
    let client = moto.client();
    let vpc = create_vpc(&client).await;
    let ep = AwsEndpoint::from_client(client, &vpc);
    contract::aws_repeats(&ep, &Owner::new("repeats"), &vpc, LIMIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_is_one_describe_per_kind() {
    let moto = Moto::start();
    let client = moto.client();
    let vpc = create_vpc(&client).await;
    let ep = AwsEndpoint::from_client(client.clone(), &vpc);
    let owner = Owner::new("count");
    let regions = client.describe_regions().send().await.unwrap().regions().len();
    // Nothing of ours in the region: every other region is looked at once, by tag.
    moto.clear_requests();
    let o = ep.observe(&owner).await.unwrap();
    assert!(o.elsewhere.is_empty());
    let expected = BTreeMap::from([
        ("DescribeCustomerGateways", 1),
        ("DescribeRegions", 1),
        ("DescribeRouteTables", 1),
        ("DescribeVpcs", 1),
        // ours by tag, any VGW on the VPC (a foreign one is a conflict), ours elsewhere
        ("DescribeVpnGateways", 2 + regions - 1),
        ("DescribeVpnConnections", 1),
    ]);
    assert_eq!(counts(&moto.requests()), expected);
    // With our VGW here: one describe per kind.
    let vgw = run_to_end(&ep, &AwsOp::CreateVpnGateway { amazon_asn: 64512, tags: owner.tags(&Role::VirtualPrivateGateway) }, "vgw", LIMIT)
        .await
        .unwrap();
    assert!(vgw.id.is_some());
    moto.clear_requests();
    ep.observe(&owner).await.unwrap();
    let expected = BTreeMap::from([
        ("DescribeCustomerGateways", 1),
        ("DescribeRouteTables", 1),
        ("DescribeVpcs", 1),
        ("DescribeVpnGateways", 2),
        ("DescribeVpnConnections", 1),
    ]);
    assert_eq!(counts(&moto.requests()), expected);
}

/// The deployment's VGW in another region (aws.region changed after an apply) is found
/// by its tag and reported as elsewhere, which the planner refuses to build beside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vgw_of_ours_in_another_region_is_found() {
    let moto = Moto::start();
    let client = moto.client();
    let vpc = create_vpc(&client).await;
    let owner = Owner::new("moved");
    let elsewhere =
        aws_sdk_ec2::Client::from_conf(client.config().to_builder().region(aws_sdk_ec2::config::Region::new("eu-west-3")).build());
    let far = AwsEndpoint::from_client(elsewhere, "vpc-00000000000000000");
    let vgw =
        run_to_end(&far, &AwsOp::CreateVpnGateway { amazon_asn: 64512, tags: owner.tags(&Role::VirtualPrivateGateway) }, "vgw", LIMIT)
            .await
            .unwrap()
            .id
            .unwrap();
    let here = AwsEndpoint::from_client(client, &vpc);
    let o = here.observe(&owner).await.unwrap();
    assert!(o.vpn_gateways.is_empty(), "{o:?}");
    assert_eq!(o.elsewhere.len(), 1, "{o:?}");
    assert_eq!((o.elsewhere[0].id.as_str(), o.elsewhere[0].place.as_str()), (vgw.as_str(), "region eu-west-3"));
}

async fn foreign_cgw(client: &aws_sdk_ec2::Client, ip: &str, device_name: Option<&str>) -> String {
    let out = client
        .create_customer_gateway()
        .r#type(GatewayType::Ipsec1)
        .ip_address(ip)
        .bgp_asn(65000)
        .set_device_name(device_name.map(str::to_owned))
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::CustomerGateway)
                .tags(Tag::builder().key("team").value("someone-else").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.customer_gateway().and_then(|c| c.customer_gateway_id()).unwrap().to_owned()
}

/// `op` run the way the executor runs a step: core decides whether a refused or
/// repeated call already did the job, and whether what came back is ours.
async fn judged(
    ep: &AwsEndpoint,
    owner: &Owner,
    op: AwsOp,
) -> Result<vpnbridge_core::ops::OpOutput, vpnbridge_core::endpoint::EndpointError> {
    let settings = vpnbridge_core::exec::ExecSettings::default();
    match vpnbridge_core::exec::run_op(ep, owner, op, vpnbridge_core::plan::Action::Create, &settings).await {
        Ok(out) => Ok(out),
        Err(vpnbridge_core::exec::StepError::Cloud(e)) => Err(e),
        Err(e) => panic!("{e}"),
    }
}

fn create_cgw(owner: &Owner, ip: Ipv4Addr, device_name: &str) -> AwsOp {
    AwsOp::CreateCustomerGateway { ip, bgp_asn: 65000, device_name: device_name.to_owned(), tags: owner.tags(&Role::CustomerGateway(0)) }
}

/// EC2 answers CreateCustomerGateway with an existing gateway of the same type, IP, ASN
/// and device name, whoever's it is (the harness reproduces this; moto alone does not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_customer_gateway_is_a_conflict_never_ours() {
    let moto = Moto::start();
    let client = moto.client();
    let vpc = create_vpc(&client).await;
    let owner = Owner::new("trap");
    let ep = AwsEndpoint::from_client(client.clone(), &vpc);
    let device = "vpnbridge-trap-cgw-0";

    let theirs = foreign_cgw(&client, "20.0.113.10", Some(device)).await;
    // The adapter reports the gateway EC2 answered with; the core judges whose it is.
    let e = judged(&ep, &owner, create_cgw(&owner, Ipv4Addr::new(20, 0, 113, 10), device)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
    assert!(e.message.contains(&theirs), "{e}");
    assert!(!e.may_have_committed);
    let o = ep.observe(&owner).await.unwrap();
    assert!(o.customer_gateways.is_empty(), "a foreign CGW observed as ours");
    // Reported as someone else's, for the planner to refuse before creating ours.
    assert_eq!(o.foreign_customer_gateways.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), [theirs.as_str()]);

    // A foreign gateway without a device name does not capture ours: the unique device
    // name makes EC2 create a new one.
    let other = foreign_cgw(&client, "20.0.113.11", None).await;
    let out = run_to_end(&ep, &create_cgw(&owner, Ipv4Addr::new(20, 0, 113, 11), "vpnbridge-trap-cgw-1"), "cgw", LIMIT).await.unwrap();
    let ours = out.id.unwrap();
    assert_ne!(ours, other);
    let o = ep.observe(&owner).await.unwrap();
    assert_eq!(o.customer_gateways.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), [ours.as_str()]);
    assert_eq!(o.customer_gateways[0].device_name.as_deref(), Some("vpnbridge-trap-cgw-1"));

    // Someone else's VPN connection on our gateway is reported (the planner neither
    // builds ours beside it nor deletes the gateway from under it); one on theirs is not.
    let vgw = client.create_vpn_gateway().r#type(GatewayType::Ipsec1).send().await.unwrap();
    let vgw = vgw.vpn_gateway().and_then(|g| g.vpn_gateway_id()).unwrap().to_owned();
    let vpn = |cgw: String| client.create_vpn_connection().r#type("ipsec.1").customer_gateway_id(cgw).vpn_gateway_id(&vgw).send();
    let on_ours = vpn(ours.clone()).await.unwrap().vpn_connection().and_then(|v| v.vpn_connection_id()).unwrap().to_owned();
    vpn(theirs.clone()).await.unwrap();
    let o = ep.observe(&owner).await.unwrap();
    assert!(o.vpn_connections.is_empty(), "a foreign VPN connection observed as ours");
    let found: Vec<(&str, &str)> = o.foreign_vpn_connections.iter().map(|v| (v.id.as_str(), v.customer_gateway_id.as_str())).collect();
    assert_eq!(found, [(on_ours.as_str(), ours.as_str())]);
}

/// A VPN connection of `cgw` and `vgw` with its first tunnel's inside CIDR pinned, made
/// by someone else.
async fn foreign_pinned_vpn(client: &aws_sdk_ec2::Client, cgw: &str, vgw: &str, cidr: &str) -> Result<String, String> {
    let tunnel = VpnTunnelOptionsSpecification::builder().tunnel_inside_cidr(cidr).build();
    let out = client
        .create_vpn_connection()
        .r#type("ipsec.1")
        .customer_gateway_id(cgw)
        .vpn_gateway_id(vgw)
        .options(VpnConnectionOptionsSpecification::builder().tunnel_options(tunnel).build())
        .send()
        .await
        .map_err(|e| aws_sdk_ec2::error::ProvideErrorMetadata::code(&e).unwrap_or_default().to_owned())?;
    Ok(out.vpn_connection().and_then(|v| v.vpn_connection_id()).unwrap().to_owned())
}

/// Someone else's VPN connection on our VGW (between it and their customer gateway) is
/// reported with its tunnels' inside CIDRs: EC2 gives an inside CIDR to one VPN
/// connection per VGW, so the planner pins none of them for ours. One on their VGW is
/// not reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vpn_connection_not_ours_on_our_vgw_is_reported_with_its_inside_cidrs() {
    let moto = Moto::start();
    let client = moto.client();
    let vpc = create_vpc(&client).await;
    let owner = Owner::new("trap");
    let ep = AwsEndpoint::from_client(client.clone(), &vpc);
    let create_ours = AwsOp::CreateVpnGateway { amazon_asn: 64512, tags: owner.tags(&Role::VirtualPrivateGateway) };
    let ours = run_to_end(&ep, &create_ours, "vgw", LIMIT).await.unwrap().id.unwrap();
    let theirs = client.create_vpn_gateway().r#type(GatewayType::Ipsec1).send().await.unwrap();
    let theirs = theirs.vpn_gateway().and_then(|g| g.vpn_gateway_id()).unwrap().to_owned();
    let cgw = foreign_cgw(&client, "20.0.113.20", None).await;
    let on_ours = foreign_pinned_vpn(&client, &cgw, &ours, "169.254.21.0/30").await.unwrap();
    foreign_pinned_vpn(&client, &cgw, &theirs, "169.254.21.4/30").await.unwrap();
    // The harness refuses a /30 held on the same VGW, as EC2 does.
    let other_cgw = foreign_cgw(&client, "20.0.113.21", None).await;
    assert_eq!(foreign_pinned_vpn(&client, &other_cgw, &ours, "169.254.21.0/30").await.unwrap_err(), "InvalidCidr.InUse");
    let o = ep.observe(&owner).await.unwrap();
    assert!(o.vpn_connections.is_empty(), "a foreign VPN connection observed as ours");
    let found: Vec<(&str, &str)> = o.foreign_vpn_connections.iter().map(|v| (v.id.as_str(), v.vpn_gateway_id.as_str())).collect();
    assert_eq!(found, [(on_ours.as_str(), ours.as_str())]);
    let cidrs = &o.foreign_vpn_connections[0].inside_cidrs;
    assert!(cidrs.len() == 2 && cidrs.contains(&"169.254.21.0/30".parse().unwrap()), "{cidrs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_what_is_gone_is_done() {
    let moto = Moto::start();
    let client = moto.client();
    let vpc = create_vpc(&client).await;
    let ep = AwsEndpoint::from_client(client, &vpc);
    for op in [
        AwsOp::DeleteVpnConnection { vpn_id: "vpn-0123456789abcdef0".into() },
        AwsOp::DeleteCustomerGateway { cgw_id: "cgw-0123456789abcdef0".into() },
        AwsOp::DetachVpnGateway { vgw_id: "vgw-0123456789abcdef0".into(), vpc_id: vpc.clone() },
        AwsOp::DeleteVpnGateway { vgw_id: "vgw-0123456789abcdef0".into() },
    ] {
        let h = ep.start(&op).await.unwrap_or_else(|e| panic!("{op:?}: {e}"));
        assert!(matches!(ep.poll(&h).await.unwrap(), OpStatus::Done(_)), "{op:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_vgw_on_the_vpc_and_a_missing_vpc_are_reported() {
    let moto = Moto::start();
    let client = moto.client();
    let vpc = create_vpc(&client).await;
    let owner = Owner::new("prereq");
    let vgw = client.create_vpn_gateway().r#type(GatewayType::Ipsec1).send().await.unwrap();
    let vgw = vgw.vpn_gateway().and_then(|g| g.vpn_gateway_id()).unwrap().to_owned();
    client.attach_vpn_gateway().vpn_gateway_id(&vgw).vpc_id(&vpc).send().await.unwrap();
    let o = AwsEndpoint::from_client(client.clone(), &vpc).observe(&owner).await.unwrap();
    assert_eq!(o.foreign_vgw_on_vpc.as_deref(), Some(vgw.as_str()));
    assert!(o.vpn_gateways.is_empty());

    let missing = AwsEndpoint::from_client(client, "vpc-0000000000000000f");
    let o = missing.observe(&owner).await.unwrap();
    assert!(o.vpc.is_none());
    assert!(o.foreign_vgw_on_vpc.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_warns_about_icmp_and_counts_quotas() {
    let moto = Moto::start();
    let client = moto.client();
    let vpc = create_vpc(&client).await;
    let ep = AwsEndpoint::from_client(client.clone(), &vpc);
    let azure = ["10.1.0.0/16".parse().unwrap()];
    let need = QuotaNeed { vpn_gateways: 1, customer_gateways: 2, vpn_connections_per_vgw: 2 };

    let p = ep.preflight(&azure, need, Quotas::default()).await.unwrap();
    assert!(p.errors.is_empty(), "{p:?}");
    assert_eq!(p.warnings.len(), 1, "{p:?}");
    assert!(p.warnings[0].contains("10.1.0.0/16") && p.warnings[0].contains("ICMP"), "{p:?}");

    let sg = client
        .describe_security_groups()
        .filters(aws_sdk_ec2::types::Filter::builder().name("vpc-id").values(&vpc).build())
        .send()
        .await
        .unwrap();
    let sg = sg.security_groups()[0].group_id().unwrap().to_owned();
    client
        .authorize_security_group_ingress()
        .group_id(sg)
        .ip_protocol("icmp")
        .from_port(-1)
        .to_port(-1)
        .cidr_ip("10.0.0.0/8")
        .send()
        .await
        .unwrap();
    client.create_vpn_gateway().r#type(GatewayType::Ipsec1).send().await.unwrap();
    let tight = Quotas { vpn_gateways: 1, ..Quotas::default() };
    let p = ep.preflight(&azure, need, tight).await.unwrap();
    assert!(p.warnings.is_empty(), "{p:?}");
    assert_eq!(p.errors.len(), 1, "{p:?}");
    assert!(p.errors[0].contains("virtual private gateways"), "{p:?}");
}

mod replay;

mod replayed {
    use std::time::Duration;

    use vpnbridge_aws::AwsEndpoint;
    use vpnbridge_core::endpoint::{ErrorKind, OpStatus, VpnEndpoint};
    use vpnbridge_core::model::{Owner, Role};
    use vpnbridge_core::ops::{AwsOp, TunnelSpec};
    use vpnbridge_core::secret::Psk;

    use crate::replay::{NS, Replay, Reply, escape};

    const TAGS: &str = "<tagSet><item><key>vpnbridge:deployment</key><value>replay</value></item><item><key>vpnbridge:role</key><value>vgw</value></item></tagSet>";

    fn vgw_response(root: &str, set: bool, state: &str) -> String {
        let g = format!(
            "<vpnGatewayId>vgw-0a1b2c3d4e5f60718</vpnGatewayId><state>{state}</state><type>ipsec.1</type><amazonSideAsn>64512</amazonSideAsn><attachments/>{TAGS}"
        );
        let body = if set { format!("<vpnGatewaySet><item>{g}</item></vpnGatewaySet>") } else { format!("<vpnGateway>{g}</vpnGateway>") };
        format!("<{root} xmlns=\"{NS}\"><requestId>11111111-2222-3333-4444-555555555555</requestId>{body}</{root}>")
    }

    /// AWS's document for a static connection (trimmed of algorithm lists), tunnels in
    /// descending outside-IP order.
    const DOC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<vpn_connection id="vpn-0123456789abcdef0">
  <customer_gateway_id>cgw-0123456789abcdef0</customer_gateway_id>
  <vpn_gateway_id>vgw-0a1b2c3d4e5f60718</vpn_gateway_id>
  <vpn_connection_type>ipsec.1</vpn_connection_type>
  <ipsec_tunnel>
    <customer_gateway><tunnel_outside_address><ip_address>20.0.113.10</ip_address></tunnel_outside_address>
      <tunnel_inside_address><ip_address>169.254.21.6</ip_address><network_mask>255.255.255.252</network_mask><network_cidr>30</network_cidr></tunnel_inside_address></customer_gateway>
    <vpn_gateway><tunnel_outside_address><ip_address>54.239.1.20</ip_address></tunnel_outside_address>
      <tunnel_inside_address><ip_address>169.254.21.5</ip_address><network_mask>255.255.255.252</network_mask><network_cidr>30</network_cidr></tunnel_inside_address></vpn_gateway>
    <ike><authentication_protocol>sha1</authentication_protocol><pre_shared_key>Second_key.0002</pre_shared_key></ike>
  </ipsec_tunnel>
  <ipsec_tunnel>
    <customer_gateway><tunnel_outside_address><ip_address>20.0.113.10</ip_address></tunnel_outside_address>
      <tunnel_inside_address><ip_address>169.254.21.2</ip_address><network_mask>255.255.255.252</network_mask><network_cidr>30</network_cidr></tunnel_inside_address></customer_gateway>
    <vpn_gateway><tunnel_outside_address><ip_address>3.120.7.9</ip_address></tunnel_outside_address>
      <tunnel_inside_address><ip_address>169.254.21.1</ip_address><network_mask>255.255.255.252</network_mask><network_cidr>30</network_cidr></tunnel_inside_address></vpn_gateway>
    <ike><pre_shared_key>First_key.0001</pre_shared_key></ike>
  </ipsec_tunnel>
</vpn_connection>"#;

    fn vpn_item(state: &str, with_doc: bool) -> String {
        let doc =
            if with_doc { format!("<customerGatewayConfiguration>{}</customerGatewayConfiguration>", escape(DOC)) } else { String::new() };
        format!(
            "<item><vpnConnectionId>vpn-0123456789abcdef0</vpnConnectionId><state>{state}</state>{doc}<type>ipsec.1</type>\
             <customerGatewayId>cgw-0123456789abcdef0</customerGatewayId><vpnGatewayId>vgw-0a1b2c3d4e5f60718</vpnGatewayId>\
             <options><staticRoutesOnly>true</staticRoutesOnly></options>\
             <tagSet><item><key>vpnbridge:deployment</key><value>replay</value></item></tagSet>\
             <vgwTelemetry><item><outsideIpAddress>3.120.7.9</outsideIpAddress><status>UP</status><statusMessage>1 BGP ROUTES</statusMessage><lastStatusChange>2026-11-25T09:00:00.000Z</lastStatusChange><acceptedRouteCount>0</acceptedRouteCount></item></vgwTelemetry></item>"
        )
    }

    fn describe_vpns(state: &str, with_doc: bool) -> String {
        format!(
            "<DescribeVpnConnectionsResponse xmlns=\"{NS}\"><requestId>r-describe</requestId><vpnConnectionSet>{}</vpnConnectionSet></DescribeVpnConnectionsResponse>",
            vpn_item(state, with_doc)
        )
    }

    fn create_vgw() -> AwsOp {
        AwsOp::CreateVpnGateway { amazon_asn: 64512, tags: Owner::new("replay").tags(&Role::VirtualPrivateGateway) }
    }

    #[tokio::test]
    async fn a_pending_gateway_is_polled_until_available() {
        let r = Replay::start(vec![
            ("CreateVpnGateway", Reply::Ok(vgw_response("CreateVpnGatewayResponse", false, "pending"))),
            ("DescribeVpnGateways", Reply::Ok(vgw_response("DescribeVpnGatewaysResponse", true, "pending"))),
            ("DescribeVpnGateways", Reply::Ok(vgw_response("DescribeVpnGatewaysResponse", true, "available"))),
        ])
        .await;
        let ep = AwsEndpoint::from_client(r.client(), "vpc-1");
        let h = ep.start(&create_vgw()).await.unwrap();
        assert!(h.0.contains("vgw-0a1b2c3d4e5f60718"), "{}", h.0);
        match ep.poll(&h).await.unwrap() {
            OpStatus::Running { retry_after } => assert!(retry_after.is_some()),
            other => panic!("pending reported as {other:?}"),
        }
        match ep.poll(&h).await.unwrap() {
            OpStatus::Done(out) => assert_eq!(out.id.as_deref(), Some("vgw-0a1b2c3d4e5f60718")),
            other => panic!("available reported as {other:?}"),
        }
        assert!(r.exhausted());
    }

    /// A create is never retried by the SDK: a throttled create reaches the core as
    /// Throttled (refused, so not ambiguous), and the core's retry then succeeds.
    #[tokio::test]
    async fn a_throttled_create_is_reported_not_retried_then_succeeds() {
        let r = Replay::start(vec![
            ("CreateVpnGateway", Reply::Error(503, "RequestLimitExceeded", "req-throttled-1")),
            ("CreateVpnGateway", Reply::Ok(vgw_response("CreateVpnGatewayResponse", false, "available"))),
        ])
        .await;
        let ep = AwsEndpoint::from_client(r.client(), "vpc-1");
        let e = ep.start(&create_vgw()).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Throttled, "{e}");
        assert_eq!(e.request_id.as_deref(), Some("req-throttled-1"));
        assert!(!e.may_have_committed, "a throttled request was not carried out");
        assert_eq!(r.seen(), ["CreateVpnGateway"], "the SDK retried a create");
        ep.start(&create_vgw()).await.unwrap();
        assert!(r.exhausted());
    }

    /// Reads are retried by the SDK on throttling (they are safe to repeat).
    #[tokio::test]
    async fn a_throttled_describe_is_retried_by_the_sdk() {
        let r = Replay::start(vec![
            ("DescribeVpnGateways", Reply::Error(503, "RequestLimitExceeded", "req-throttled-2")),
            ("DescribeVpnGateways", Reply::Ok(vgw_response("DescribeVpnGatewaysResponse", true, "available"))),
        ])
        .await;
        let ep = AwsEndpoint::from_client(r.client(), "vpc-1");
        let h = vpnbridge_core::endpoint::OpHandle(r#"{"kind":"vgw","id":"vgw-0a1b2c3d4e5f60718","target":"ready"}"#.into());
        assert!(matches!(ep.poll(&h).await.unwrap(), OpStatus::Done(_)));
        assert_eq!(r.seen(), ["DescribeVpnGateways", "DescribeVpnGateways"]);
    }

    /// The answer to a committed CreateVpnConnection is lost: the error says the create
    /// may have happened (so the core re-observes by tag) and nothing was resent.
    #[tokio::test]
    async fn a_timeout_after_commit_is_ambiguous_and_not_retried() {
        let r = Replay::start(vec![("CreateVpnConnection", Reply::Hang)]).await;
        let ep = AwsEndpoint::from_client(r.client(), "vpc-1");
        let op = AwsOp::CreateVpnConnection {
            cgw_id: "cgw-0123456789abcdef0".into(),
            vgw_id: "vgw-0a1b2c3d4e5f60718".into(),
            static_routes_only: true,
            tunnels: vec![TunnelSpec { inside_cidr: None, psk: None }; 2],
            tags: Owner::new("replay").tags(&Role::VpnConnection(0)),
        };
        let e = ep.start(&op).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Transient, "{e}");
        assert!(e.may_have_committed, "{e}");
        assert_eq!(r.seen(), ["CreateVpnConnection"]);
    }

    /// A pending connection, then an available one whose tunnels come only from AWS's
    /// XML document (no Options.TunnelOptions), in descending order: the adapter reports
    /// them sorted by outside IP, with their keys.
    #[tokio::test]
    async fn tunnels_come_from_the_real_configuration_document() {
        let r = Replay::start(vec![
            ("DescribeVpnConnections", Reply::Ok(describe_vpns("pending", false))),
            ("DescribeVpnConnections", Reply::Ok(describe_vpns("available", true))),
            ("DescribeVpnConnections", Reply::Ok(describe_vpns("available", true))),
            (
                "DescribeCustomerGateways",
                Reply::Ok(format!(
                    "<DescribeCustomerGatewaysResponse xmlns=\"{NS}\"><requestId>r</requestId><customerGatewaySet><item>\
                     <customerGatewayId>cgw-0123456789abcdef0</customerGatewayId><state>available</state><type>ipsec.1</type>\
                     <ipAddress>20.0.113.10</ipAddress><bgpAsn>65000</bgpAsn>\
                     <tagSet><item><key>vpnbridge:deployment</key><value>replay</value></item></tagSet></item></customerGatewaySet></DescribeCustomerGatewaysResponse>"
                )),
            ),
        ])
        .await;
        let ep = AwsEndpoint::from_client(r.client(), "vpc-1");
        let h = vpnbridge_core::endpoint::OpHandle(r#"{"kind":"vpn","id":"vpn-0123456789abcdef0","target":"ready"}"#.into());
        assert!(matches!(ep.poll(&h).await.unwrap(), OpStatus::Running { retry_after: Some(d) } if d >= Duration::from_secs(1)));
        let OpStatus::Done(out) = ep.poll(&h).await.unwrap() else { panic!("available not done") };
        let ips: Vec<String> = out.tunnels.iter().map(|t| t.outside_ip.to_string()).collect();
        assert_eq!(ips, ["3.120.7.9", "54.239.1.20"]);
        assert_eq!(out.tunnels[0].psk.as_ref().map(Psk::expose), Some("First_key.0001"));

        let ends = ep.tunnel_ends(&Owner::new("replay")).await.unwrap();
        assert_eq!(ends.len(), 2);
        assert_eq!(ends[0].outside_ip().to_string(), "3.120.7.9");
        assert_eq!(ends[0].peer_ip().to_string(), "20.0.113.10");
        assert_eq!(ends[0].inside_cidr().map(|c| c.to_string()).as_deref(), Some("169.254.21.0/30"));
        assert_eq!(ends[0].status().state, vpnbridge_core::model::TunnelState::Up);
        assert_eq!(ends[1].status().state, vpnbridge_core::model::TunnelState::Unknown);
        assert!(r.exhausted());
    }
}

/// EC2 shapes where moto is kinder than AWS, as recorded XML (EC2 API reference,
/// `DescribeVpnConnections` / `VpnConnection` / `TunnelOption` / `VgwTelemetry`).
mod ec2_shapes {
    use std::net::Ipv4Addr;

    use vpnbridge_aws::AwsEndpoint;
    use vpnbridge_core::endpoint::{OpStatus, VpnEndpoint};
    use vpnbridge_core::model::{Owner, TunnelState};
    use vpnbridge_core::ops::{AwsOp, AwsResourceKind};
    use vpnbridge_core::pairing;
    use vpnbridge_core::secret::Psk;

    use crate::replay::{NS, Replay, Reply};

    /// One tunnel's `TunnelOption` item.
    fn option(ip: &str, cidr: &str, key: &str) -> String {
        format!(
            "<item><outsideIpAddress>{ip}</outsideIpAddress><tunnelInsideCidr>{cidr}</tunnelInsideCidr><preSharedKey>{key}</preSharedKey>\
             <ikeVersionSet><item><value>ikev2</value></item></ikeVersionSet></item>"
        )
    }

    /// One `VgwTelemetry` item.
    fn telemetry(ip: &str, status: &str, message: &str) -> String {
        format!(
            "<item><outsideIpAddress>{ip}</outsideIpAddress><status>{status}</status><statusMessage>{message}</statusMessage>\
             <lastStatusChange>2026-11-25T09:00:00.000Z</lastStatusChange><acceptedRouteCount>0</acceptedRouteCount></item>"
        )
    }

    fn describe(state: &str, options: &[String], telemetry: &[String]) -> String {
        format!(
            "<DescribeVpnConnectionsResponse xmlns=\"{NS}\"><requestId>r</requestId><vpnConnectionSet><item>\
             <vpnConnectionId>vpn-0123456789abcdef0</vpnConnectionId><state>{state}</state><type>ipsec.1</type>\
             <customerGatewayId>cgw-0123456789abcdef0</customerGatewayId><vpnGatewayId>vgw-0a1b2c3d4e5f60718</vpnGatewayId>\
             <options><staticRoutesOnly>true</staticRoutesOnly><tunnelOptionSet>{}</tunnelOptionSet></options>\
             <tagSet><item><key>vpnbridge:deployment</key><value>replay</value></item><item><key>vpnbridge:role</key><value>vpn-0</value></item></tagSet>\
             <vgwTelemetry>{}</vgwTelemetry></item></vpnConnectionSet></DescribeVpnConnectionsResponse>",
            options.concat(),
            telemetry.concat()
        )
    }

    fn cgws() -> String {
        format!(
            "<DescribeCustomerGatewaysResponse xmlns=\"{NS}\"><requestId>r</requestId><customerGatewaySet><item>\
             <customerGatewayId>cgw-0123456789abcdef0</customerGatewayId><state>available</state><type>ipsec.1</type>\
             <ipAddress>20.0.113.10</ipAddress><bgpAsn>65000</bgpAsn>\
             <tagSet><item><key>vpnbridge:deployment</key><value>replay</value></item></tagSet></item></customerGatewaySet></DescribeCustomerGatewaysResponse>"
        )
    }

    /// TunnelOptions listed higher IP first, the pinned /30 of slot 0 on the higher
    /// IP, telemetry in yet another order: each tunnel keeps its own /30, key and
    /// status (matched by outside IP, never by position), and the core's slot for the
    /// pinned /30 is the tunnel that holds it.
    #[tokio::test]
    async fn tunnel_options_and_telemetry_in_either_order_stay_with_their_tunnel() {
        let options =
            [option("54.239.1.20", "169.254.10.0/30", "Key_of.higher_ip"), option("3.120.7.9", "169.254.77.4/30", "Key_of.lower_ip")];
        let tele = [telemetry("3.120.7.9", "DOWN", "IPSEC IS DOWN"), telemetry("54.239.1.20", "UP", "IPSEC IS UP")];
        let r = Replay::start(vec![
            ("DescribeVpnConnections", Reply::Ok(describe("available", &options, &tele))),
            ("DescribeCustomerGateways", Reply::Ok(cgws())),
            ("DescribeVpnConnections", Reply::Ok(describe("available", &options, &tele))),
        ])
        .await;
        let ep = AwsEndpoint::from_client(r.client(), "vpc-1");
        let h = vpnbridge_core::endpoint::OpHandle(r#"{"kind":"vpn","id":"vpn-0123456789abcdef0","target":"ready"}"#.into());
        let OpStatus::Done(out) = ep.poll(&h).await.unwrap() else { panic!("available not done") };
        let pins = [Some("169.254.10.0/30".parse().unwrap()), None];
        let slot0 = pairing::tunnel_for_slot(&out.tunnels, 0, pins).unwrap();
        assert_eq!(slot0.outside_ip, Ipv4Addr::new(54, 239, 1, 20));
        assert_eq!(slot0.psk.as_ref().map(Psk::expose), Some("Key_of.higher_ip"));
        let ends = ep.tunnel_ends(&Owner::new("replay")).await.unwrap();
        let status = |ip: &str| ends.iter().find(|e| e.outside_ip().to_string() == ip).unwrap().status().clone();
        assert_eq!(status("54.239.1.20").state, TunnelState::Up);
        assert_eq!(status("3.120.7.9").state, TunnelState::Down);
        let lower = ends.iter().find(|e| e.outside_ip().to_string() == "3.120.7.9").unwrap();
        assert_eq!(lower.inside_cidr().map(|c| c.to_string()).as_deref(), Some("169.254.77.4/30"));
        assert!(r.exhausted());
    }

    /// After ModifyVpnTunnelOptions EC2 may describe the connection `available` with the
    /// old /30, then `modifying`, then `available` with the new one: the adapter's
    /// wait ends only on the last, and observe reports `modifying` as such.
    #[tokio::test]
    async fn a_tunnel_modification_is_done_when_it_shows() {
        let old = [option("3.120.7.9", "169.254.77.4/30", "Key_number.one"), option("54.239.1.20", "169.254.77.8/30", "Key_number.two")];
        let new = [option("3.120.7.9", "169.254.10.0/30", "Key_number.one"), old[1].clone()];
        let tele = [telemetry("3.120.7.9", "DOWN", "IPSEC IS DOWN")];
        let modify = format!(
            "<ModifyVpnTunnelOptionsResponse xmlns=\"{NS}\"><requestId>r</requestId><vpnConnection>\
             <vpnConnectionId>vpn-0123456789abcdef0</vpnConnectionId><state>available</state></vpnConnection></ModifyVpnTunnelOptionsResponse>"
        );
        let r = Replay::start(vec![
            ("ModifyVpnTunnelOptions", Reply::Ok(modify)),
            ("DescribeVpnConnections", Reply::Ok(describe("available", &old, &tele))),
            ("DescribeVpnConnections", Reply::Ok(describe("modifying", &old, &tele))),
            ("DescribeVpnConnections", Reply::Ok(describe("available", &new, &tele))),
            ("DescribeVpnConnections", Reply::Ok(describe("modifying", &new, &tele))),
        ])
        .await;
        let ep = AwsEndpoint::from_client(r.client(), "vpc-1");
        let op = AwsOp::ModifyVpnTunnelOptions {
            vpn_id: "vpn-0123456789abcdef0".into(),
            outside_ip: Ipv4Addr::new(3, 120, 7, 9),
            psk: None,
            inside_cidr: Some("169.254.10.0/30".parse().unwrap()),
        };
        let h = ep.start(&op).await.unwrap();
        assert!(matches!(ep.poll(&h).await.unwrap(), OpStatus::Running { .. }), "stale `available` is not done");
        assert!(matches!(ep.poll(&h).await.unwrap(), OpStatus::Running { .. }), "`modifying` is not done");
        assert!(matches!(ep.poll(&h).await.unwrap(), OpStatus::Done(_)), "`available` with the new /30 is done");
        // A connection found `modifying` is waited for, never taken as settled.
        let wait = AwsOp::Await { kind: AwsResourceKind::VpnConnection, id: "vpn-0123456789abcdef0".into() };
        let h = ep.start(&wait).await.unwrap();
        assert!(matches!(ep.poll(&h).await.unwrap(), OpStatus::Running { .. }), "`modifying` is not settled");
        assert!(r.exhausted());
    }
}

/// A create whose answer was lost and that the core repeats: the route and the
/// attachment are already there and ours, so the repeat is done, not a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_route_and_attach_are_done_but_a_foreign_route_conflicts() {
    let moto = Moto::start();
    let client = moto.client();
    let vpc = create_vpc(&client).await;
    let owner = Owner::new("repeat");
    let ep = AwsEndpoint::from_client(client.clone(), &vpc);
    let vgw = run_to_end(&ep, &AwsOp::CreateVpnGateway { amazon_asn: 64512, tags: owner.tags(&Role::VirtualPrivateGateway) }, "vgw", LIMIT)
        .await
        .unwrap()
        .id
        .unwrap();
    let attach = AwsOp::AttachVpnGateway { vgw_id: vgw.clone(), vpc_id: vpc.clone() };
    run_to_end(&ep, &attach, "attach", LIMIT).await.unwrap();
    judged(&ep, &owner, attach).await.unwrap();

    let main = ep.observe(&owner).await.unwrap().vpc.unwrap().main_route_table().unwrap().id.clone();
    let route = AwsOp::CreateRoute { route_table_id: main.clone(), destination: "10.1.0.0/16".parse().unwrap(), vgw_id: vgw.clone() };
    run_to_end(&ep, &route, "route", LIMIT).await.unwrap();
    judged(&ep, &owner, route).await.unwrap();

    let other = client.create_vpn_gateway().r#type(GatewayType::Ipsec1).send().await.unwrap();
    let other = other.vpn_gateway().and_then(|g| g.vpn_gateway_id()).unwrap().to_owned();
    client.create_route().route_table_id(&main).destination_cidr_block("10.9.0.0/16").gateway_id(&other).send().await.unwrap();
    let theirs = AwsOp::CreateRoute { route_table_id: main, destination: "10.9.0.0/16".parse().unwrap(), vgw_id: vgw };
    let e = judged(&ep, &owner, theirs).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Conflict, "RouteAlreadyExists"), "{e}");
}

/// bgp-ha on moto with the peer scripted up (`VPNBRIDGE_MOTO_TELEMETRY_UP`, moto has no
/// BGP): a dynamic VPN connection's tunnels report their sessions established with the
/// accepted routes, and the route table propagating our VGW holds the peer's prefix as a
/// propagated route, until a static route to it wins or the propagation is disabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagated_routes_and_bgp_telemetry_with_a_scripted_peer() {
    let moto = Moto::start_with(&[("VPNBRIDGE_MOTO_TELEMETRY_UP", "1"), ("VPNBRIDGE_MOTO_BGP_PREFIXES", "10.1.0.0/16")]);
    let client = moto.client();
    let vpc = create_vpc(&client).await;
    let ep = AwsEndpoint::from_client(client, &vpc);
    let owner = Owner::new("bgp");
    let azure: ipnet::IpNet = "10.1.0.0/16".parse().unwrap();
    let main = ep.observe(&owner).await.unwrap().vpc.unwrap().main_route_table().unwrap().id.clone();
    let vgw = run_to_end(&ep, &AwsOp::CreateVpnGateway { amazon_asn: 64512, tags: owner.tags(&Role::VirtualPrivateGateway) }, "vgw", LIMIT)
        .await
        .unwrap()
        .id
        .unwrap();
    let enable = AwsOp::EnableVgwRoutePropagation { route_table_id: main.clone(), vgw_id: vgw.clone() };
    // Not attached yet: refused, and the adapter keeps EC2's code.
    let e = ep.start(&enable).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Permanent, "Gateway.NotAttached"), "{e}");
    run_to_end(&ep, &AwsOp::AttachVpnGateway { vgw_id: vgw.clone(), vpc_id: vpc.clone() }, "attach", LIMIT).await.unwrap();
    run_to_end(&ep, &enable, "enable", LIMIT).await.unwrap();
    let cgw =
        run_to_end(&ep, &create_cgw(&owner, Ipv4Addr::new(20, 0, 113, 30), "vpnbridge-bgp-cgw-0"), "cgw", LIMIT).await.unwrap().id.unwrap();
    let tunnels = ["169.254.21.0/30", "169.254.22.0/30"]
        .iter()
        .map(|c| vpnbridge_core::ops::TunnelSpec { inside_cidr: Some(c.parse().unwrap()), psk: None })
        .collect();
    let op = AwsOp::CreateVpnConnection {
        cgw_id: cgw,
        vgw_id: vgw.clone(),
        static_routes_only: false,
        tunnels,
        tags: owner.tags(&Role::VpnConnection(0)),
    };
    let vpn = run_to_end(&ep, &op, "vpn", LIMIT).await.unwrap().id.unwrap();

    let o = ep.observe(&owner).await.unwrap();
    let v = o.vpn_connections.iter().find(|v| v.id == vpn).unwrap();
    assert!(!v.static_routes_only);
    assert!(v.telemetry.iter().all(|t| t.accepted_route_count == Some(1) && t.status_message == "1 BGP ROUTES"), "{:?}", v.telemetry);
    let table = o.vpc.as_ref().unwrap().route_tables.iter().find(|t| t.id == main).unwrap();
    assert_eq!(table.propagating_vgws, std::slice::from_ref(&vgw));
    let propagated: Vec<_> = table.routes.iter().filter(|r| r.propagated).collect();
    assert_eq!(propagated.len(), 1, "{:?}", table.routes);
    assert_eq!((propagated[0].destination, propagated[0].gateway_id.as_deref()), (azure, Some(vgw.as_str())));
    let ends = ep.tunnel_ends(&owner).await.unwrap();
    assert_eq!(ends.len(), 2);
    for e in &ends {
        let b = e.bgp().expect("a dynamic tunnel reports its session");
        assert_eq!(b.state, vpnbridge_core::endpoint::BgpState::Established, "{b:?}");
        assert_eq!(b.routes_received, Some(1));
        assert_eq!(b.local_address, e.inside_cidr().map(vpnbridge_core::bgp::aws_address));
    }

    // A static route to the same prefix wins over the propagated one.
    run_to_end(&ep, &AwsOp::CreateRoute { route_table_id: main.clone(), destination: azure, vgw_id: vgw.clone() }, "route", LIMIT)
        .await
        .unwrap();
    let o = ep.observe(&owner).await.unwrap();
    let table = o.vpc.as_ref().unwrap().route_tables.iter().find(|t| t.id == main).unwrap();
    let to_azure: Vec<_> = table.routes.iter().filter(|r| r.destination == azure).collect();
    assert!(to_azure.len() == 1 && !to_azure[0].propagated, "{:?}", table.routes);
    run_to_end(&ep, &AwsOp::DeleteRoute { route_table_id: main.clone(), destination: azure }, "unroute", LIMIT).await.unwrap();

    // Disabled: the propagated route goes with it.
    run_to_end(&ep, &AwsOp::DisableVgwRoutePropagation { route_table_id: main.clone(), vgw_id: vgw }, "disable", LIMIT).await.unwrap();
    let o = ep.observe(&owner).await.unwrap();
    let table = o.vpc.as_ref().unwrap().route_tables.iter().find(|t| t.id == main).unwrap();
    assert!(table.propagating_vgws.is_empty() && !table.routes.iter().any(|r| r.destination == azure), "{table:?}");
}
