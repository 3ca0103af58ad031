//! bgp-ha through the adapter on the ARM fake: the BGP gateway, LocalNetworkGateways
//! and Connections built with the core's bgp-ha layout (`vpnbridge_core::bgp`), read
//! back by observe, and `tunnel_ends` reading each session from `getBgpPeerStatus` and
//! `getLearnedRoutes` — with no AWS side (sessions down), with the reads failing, and
//! with the simulator's AWS side in the same world (sessions established).

use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};
use vpnbridge_armfake::{ArmFake, ArmFakeConfig, ArmFakeHandle};
use vpnbridge_azure::AzureEndpoint;
use vpnbridge_core::bgp;
use vpnbridge_core::contract::run_to_end;
use vpnbridge_core::endpoint::{Aws, BgpState, VpnEndpoint};
use vpnbridge_core::model::{LngBgp, Owner, Role};
use vpnbridge_core::ops::{AwsOp, AzureOp, TunnelSpec};
use vpnbridge_core::pairing::TunnelLayout;
use vpnbridge_core::secret::Psk;
use vpnbridge_sim::{AwsTarget, SimAws, VnetSpec, VpcSpec};

use super::{LIMIT, endpoint, pip, run};

pub(super) const AZURE_ASN: u32 = 65000;
pub(super) const AMAZON_ASN: u32 = 64512;

/// Microsoft's table (docs/bgp-ha.md): connection k, tunnel t.
pub(super) fn layout() -> TunnelLayout {
    let cidrs: Vec<Ipv4Net> =
        ["169.254.21.0/30", "169.254.22.0/30", "169.254.21.4/30", "169.254.22.4/30"].iter().map(|c| c.parse().expect("cidr")).collect();
    TunnelLayout::new(2, &cidrs)
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("ip")
}

pub(super) struct BgpWorld {
    pub fake: ArmFakeHandle,
    pub azure: AzureEndpoint,
    pub owner: Owner,
    /// (k, t) -> the AWS tunnel's outside IP and key, when the AWS side was built.
    pub tunnels: Vec<((u8, u8), Ipv4Addr, Psk)>,
}

impl BgpWorld {
    pub fn connection(&self, k: u8, t: u8) -> String {
        format!("{}-cn-{k}-{t}", self.owner.deployment)
    }
    pub fn lng(&self, k: u8, t: u8) -> String {
        format!("{}-lng-{k}-{t}", self.owner.deployment)
    }
    pub fn gateway(&self) -> String {
        format!("{}-vpngw", self.owner.deployment)
    }
}

/// The Azure side of bgp-ha through the adapter: public IPs, the BGP gateway, and an
/// LNG + Connection for each tunnel in `slots`. With `aws`, the simulator's AWS side is
/// built first in the same world (VGW with ASN 64512 attached to the VPC, one customer
/// gateway per Azure instance with ASN 65000, dynamic VPN connections with the
/// layout's inside CIDRs), and each LNG points at its tunnel's outside IP.
pub(super) async fn bgp_world(aws: bool, slots: &[(u8, u8)]) -> BgpWorld {
    let fake = ArmFake::start(ArmFakeConfig::for_tests()).await.expect("fake");
    let c = fake.config().clone();
    let vnet = VnetSpec {
        subscription_id: c.subscription_id.clone(),
        resource_group: c.resource_group.clone(),
        location: c.location.clone(),
        name: c.vnet.clone(),
        address_space: c.address_space.clone(),
        gateway_subnet: c.gateway_subnet,
    };
    let vpc = VpcSpec {
        region: "ap-northeast-1".into(),
        vpc_id: "vpc-0123456789abcdef0".into(),
        cidrs: vec!["10.2.0.0/16".parse().expect("cidr")],
    };
    fake.cloud().ensure_prerequisites(&vnet, &vpc).expect("seed the VPC");
    let azure = endpoint(&fake);
    let owner = Owner::new("bgp");
    let d = owner.deployment.clone();
    let layout = layout();
    for k in 0..2 {
        run(&azure, &pip(&owner, k)).await;
    }
    let gateway = AzureOp::CreateVpnGateway {
        name: format!("{d}-vpngw"),
        vnet: "vnet-hub".into(),
        sku: "VpnGw1AZ".into(),
        generation: "Generation1".into(),
        public_ips: vec![format!("{d}-pip-0"), format!("{d}-pip-1")],
        bgp: Some(bgp::gateway(&layout, AZURE_ASN).expect("pinned layout")),
        tags: owner.tags(&Role::VpnGateway),
    };
    run(&azure, &gateway).await;
    let mut tunnels = Vec::new();
    if aws {
        let o = azure.observe(&owner).await.expect("observe");
        let mut ips: Vec<_> = o.public_ips.iter().map(|p| (p.name.clone(), p.ip.expect("address"))).collect();
        ips.sort();
        let sim: &dyn VpnEndpoint<Aws> =
            &SimAws::new(fake.cloud().clone(), AwsTarget { region: vpc.region.clone(), vpc_id: vpc.vpc_id.clone() });
        let vgw = run_to_end(
            sim,
            &AwsOp::CreateVpnGateway { amazon_asn: AMAZON_ASN, tags: owner.tags(&Role::VirtualPrivateGateway) },
            "vgw",
            LIMIT,
        )
        .await
        .expect("vgw")
        .id
        .expect("id");
        run_to_end(sim, &AwsOp::AttachVpnGateway { vgw_id: vgw.clone(), vpc_id: vpc.vpc_id.clone() }, "attach", LIMIT)
            .await
            .expect("attach");
        for (k, (_, pip_ip)) in ips.iter().enumerate() {
            let k8 = u8::try_from(k).expect("two instances");
            let op = AwsOp::CreateCustomerGateway {
                ip: *pip_ip,
                bgp_asn: AZURE_ASN,
                device_name: format!("vpnbridge-{d}-cgw-{k}"),
                tags: owner.tags(&Role::CustomerGateway(k8)),
            };
            let cgw = run_to_end(sim, &op, "cgw", LIMIT).await.expect("cgw").id.expect("id");
            let pins = layout.pins(k8);
            let op = AwsOp::CreateVpnConnection {
                cgw_id: cgw,
                vgw_id: vgw.clone(),
                static_routes_only: false,
                tunnels: pins.iter().map(|p| TunnelSpec { inside_cidr: *p, psk: None }).collect(),
                tags: owner.tags(&Role::VpnConnection(k8)),
            };
            let out = run_to_end(sim, &op, "vpn", LIMIT).await.expect("vpn");
            for (t, pin) in pins.iter().enumerate() {
                let tunnel = out.tunnels.iter().find(|x| x.inside_cidr == *pin).expect("the pinned tunnel");
                tunnels.push(((k8, u8::try_from(t).expect("two tunnels")), tunnel.outside_ip, tunnel.psk.clone().expect("a key")));
            }
        }
    }
    let world = BgpWorld { fake, azure, owner, tunnels };
    for &(k, t) in slots {
        let (outside, key) = world
            .tunnels
            .iter()
            .find(|(s, ..)| *s == (k, t))
            .map(|(_, ip, key)| (*ip, key.clone()))
            .unwrap_or_else(|| (Ipv4Addr::new(3, 0, 113, 10 + 2 * k + t), Psk::new("Bgp.Test_Key_0001").expect("key")));
        let lng = AzureOp::PutLocalNetworkGateway {
            name: world.lng(k, t),
            gateway_ip: outside,
            address_prefixes: Vec::new(),
            bgp: bgp::local_network_gateway(&layout, k, t, AMAZON_ASN),
            tags: world.owner.tags(&Role::LocalNetworkGateway(k, t)),
        };
        run(&world.azure, &lng).await;
        let cn = AzureOp::PutConnection {
            name: world.connection(k, t),
            gateway: world.gateway(),
            local_network_gateway: world.lng(k, t),
            shared_key: key,
            bgp: bgp::connection(&layout, k, t),
            dpd_timeout_seconds: 45,
            tags: world.owner.tags(&Role::Connection(k, t)),
        };
        run(&world.azure, &cn).await;
    }
    world
}

/// `tunnel_ends` once `n` of its ends report an established session (or at the limit).
pub(super) async fn until_established(w: &BgpWorld, n: usize) -> Vec<Box<dyn vpnbridge_core::endpoint::Tunnel>> {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let ends = w.azure.tunnel_ends(&w.owner).await.expect("tunnel ends");
        let established = ends.iter().filter(|e| e.bgp().is_some_and(|b| b.state == BgpState::Established)).count();
        if established >= n || tokio::time::Instant::now() >= deadline {
            return ends;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the adapter built reads back: the gateway's ASN and custom addresses per
/// instance (with ARM's default ones beside them), the LNG's BGP peer, the
/// Connection's `enableBgp` and its address for each ipConfiguration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bgp_resources_read_back_through_the_adapter() {
    let w = bgp_world(false, &[(0, 0)]).await;
    let o = w.azure.observe(&w.owner).await.expect("observe");
    let gw = o.vpn_gateway.expect("the gateway");
    let want = bgp::gateway(&layout(), AZURE_ASN).expect("layout");
    assert_eq!(gw.bgp_peering_addresses.len(), 2, "{:?}", gw.bgp_peering_addresses);
    for (k, p) in gw.bgp_peering_addresses.iter().enumerate() {
        assert!(p.ip_configuration_id.eq_ignore_ascii_case(&gw.ip_configurations[k].id), "{p:?}");
        assert_eq!(p.custom, want.custom_addresses[k]);
        assert_eq!(p.default.len(), 1, "ARM's default address beside the custom ones: {p:?}");
    }
    let lng = o.local_network_gateways.iter().find(|l| l.name == w.lng(0, 0)).expect("the LNG");
    assert_eq!(lng.bgp, Some(LngBgp { asn: AMAZON_ASN, peering_address: ip("169.254.21.1") }));
    assert!(lng.address_prefixes.is_empty());
    let c = o.connections.iter().find(|c| c.name == w.connection(0, 0)).expect("the Connection");
    assert!(c.enable_bgp);
    let addresses: Vec<(String, Ipv4Addr)> =
        c.custom_bgp_addresses.iter().map(|a| (a.ip_configuration_id.to_ascii_lowercase(), a.address)).collect();
    let expected: Vec<(String, Ipv4Addr)> =
        gw.ip_configurations.iter().map(|g| g.id.to_ascii_lowercase()).zip([ip("169.254.21.2"), ip("169.254.21.6")]).collect();
    assert_eq!(addresses, expected);
    // What the gateway's GET says, as Microsoft's example shapes it.
    let g = w.fake.resource("virtualNetworkGateways", &w.gateway()).expect("gateway");
    assert_eq!(g["properties"]["enableBgp"], true);
    assert_eq!(g["properties"]["bgpSettings"]["asn"], AZURE_ASN);
}

/// `tunnel_ends` reads the gateway's BGP state once per call (one `getBgpPeerStatus`,
/// one `getLearnedRoutes`) and gives each end of a BGP Connection its session: here
/// nothing answers on the AWS side, so both are down, Azure's word first; when the
/// reads fail, `tunnel_ends` still answers and the sessions are Unknown with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_ends_read_the_bgp_sessions_and_survive_failed_reads() {
    let w = bgp_world(false, &[(0, 0)]).await;
    w.fake.clear_requests();
    let ends = w.azure.tunnel_ends(&w.owner).await.expect("tunnel ends");
    assert_eq!(ends.len(), 2);
    let log = w.fake.requests();
    for action in ["getBgpPeerStatus", "getLearnedRoutes"] {
        assert_eq!(log.iter().filter(|r| r.method == "POST" && r.path.ends_with(action)).count(), 1, "{action}: {log:?}");
    }
    for e in &ends {
        let b = e.bgp().expect("a BGP Connection's end has a session");
        let local = if e.instance() == 0 { "169.254.21.2" } else { "169.254.21.6" };
        assert_eq!((b.local_address, b.peer_address, b.peer_asn), (Some(ip(local)), Some(ip("169.254.21.1")), Some(AMAZON_ASN)), "{b:?}");
        assert_eq!(b.state, BgpState::Down, "{b:?}");
        assert!(b.reason.starts_with("Connecting"), "{}", b.reason);
        assert_eq!((b.routes_received, b.learned.as_deref()), (Some(0), Some(&[][..])), "{b:?}");
    }
    w.fake.faults(|f| f.fail_bgp_reads = 2);
    let ends = w.azure.tunnel_ends(&w.owner).await.expect("tunnel ends despite failed BGP reads");
    assert_eq!(ends.len(), 2);
    for e in &ends {
        let b = e.bgp().expect("a session");
        assert_eq!(b.state, BgpState::Unknown, "{b:?}");
        assert!(b.reason.contains("getBgpPeerStatus could not be read") && b.reason.contains("InternalServerError"), "{}", b.reason);
        assert_eq!(b.learned, None);
    }
}

/// With the AWS side in the same world, the session over each up tunnel is established:
/// its Azure end (the instance the pairing rule gives the tunnel) reads Connected from
/// `getBgpPeerStatus`, with the VPC's prefix as the one route received and learned; the
/// other instance's end of the same Connection is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_established_session_reads_back_in_tunnel_ends() {
    let w = bgp_world(true, &[(0, 0), (1, 1)]).await;
    let vpc: IpNet = "10.2.0.0/16".parse().expect("net");
    let ends = until_established(&w, 2).await;
    assert_eq!(ends.len(), 4);
    for (k, t, local, neighbor) in [(0, 0, "169.254.21.2", "169.254.21.1"), (1, 1, "169.254.22.6", "169.254.22.5")] {
        let cn = w.connection(k, t);
        let mine = ends.iter().find(|e| e.resource() == cn && e.instance() == usize::from(k)).expect("the expected instance's end");
        let b = mine.bgp().expect("a session");
        assert_eq!(b.state, BgpState::Established, "{cn}: {b:?} (tunnel {:?})", mine.status());
        assert_eq!((b.local_address, b.peer_address, b.peer_asn), (Some(ip(local)), Some(ip(neighbor)), Some(AMAZON_ASN)), "{b:?}");
        assert_eq!((b.routes_received, b.learned.clone()), (Some(1), Some(vec![vpc])), "{b:?}");
        assert!(b.reason.starts_with("Connected (neighbor"), "{}", b.reason);
        let other = ends.iter().find(|e| e.resource() == cn && e.instance() != usize::from(k)).expect("the other instance's end");
        assert_ne!(other.bgp().map(|b| b.state), Some(BgpState::Established), "{:?}", other.bgp());
    }
}
