//! The core's planner and executor driving this adapter on the ARM fake, with the
//! simulator's AWS side in the same world (so tunnels come up): apply, a no-op
//! re-apply, tunnel status and IKE SAs, destroy — with the call counts read from the
//! fake's request log.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use vpnbridge_armfake::{ArmFake, ArmFakeConfig};
use vpnbridge_azure::{AzureEndpoint, AzureSettings};
use vpnbridge_core::endpoint::{Aws, Azure, VpnEndpoint};
use vpnbridge_core::exec::{ExecSettings, Executor};
use vpnbridge_core::model::{Owner, TunnelState};
use vpnbridge_core::plan;
use vpnbridge_sim::{AwsTarget, SimAws, VnetSpec, VpcSpec};

use super::settings;

pub(super) fn exec_settings() -> ExecSettings {
    ExecSettings { poll_initial: Duration::from_millis(200), poll_max: Duration::from_secs(1), ..ExecSettings::default() }
}

pub(super) struct World {
    pub fake: vpnbridge_armfake::ArmFakeHandle,
    pub config: vpnbridge_core::config::Config,
    pub owner: Owner,
    pub azure: Arc<dyn VpnEndpoint<Azure>>,
    pub aws: Arc<dyn VpnEndpoint<Aws>>,
}

pub(super) async fn world(cfg: ArmFakeConfig) -> World {
    let fake = ArmFake::start(cfg).await.expect("fake");
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
    let config = vpnbridge_core::config::parse(vpnbridge_core::config::EXAMPLE, Path::new("vpnbridge.toml"), &|_| None)
        .unwrap_or_else(|e| panic!("example config: {e:?}"))
        .config;
    let owner = Owner::new(&config.name);
    // The endpoint as the CLI would build it: from the config's [azure] section, with
    // the fake's URL as the endpoint override.
    let mut az = config.azure.clone();
    az.subscription_id = c.subscription_id.clone();
    az.endpoint = Some(fake.url.clone());
    let azure: Arc<dyn VpnEndpoint<Azure>> =
        Arc::new(AzureEndpoint::with_static_token(AzureSettings::from_config(&az), "fake-token").expect("endpoint"));
    let aws: Arc<dyn VpnEndpoint<Aws>> =
        Arc::new(SimAws::new(fake.cloud().clone(), AwsTarget { region: vpc.region.clone(), vpc_id: vpc.vpc_id.clone() }));
    World { fake, config, owner, azure, aws }
}

pub(super) async fn observe(w: &World) -> plan::Observed {
    vpnbridge_core::exec::observe(&*w.aws, &*w.azure, &w.owner, &exec_settings()).await.expect("observe")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_reapply_verify_destroy() {
    let w = world(ArmFakeConfig::for_tests()).await;
    let World { fake, config, owner, azure, aws } = &w;
    let executor = Executor::new(aws.clone(), azure.clone(), owner.clone(), exec_settings());

    // Apply.
    let observed = observe(&w).await;
    let p = plan::plan_apply(config, &observed).unwrap_or_else(|e| panic!("plan: {e:?}"));
    assert!(!p.is_empty());
    let report = executor.run(&p, |_| {}).await;
    assert!(report.succeeded(), "{:?}", report.failures().collect::<Vec<_>>());
    let log = fake.requests();
    let puts: Vec<_> = log.iter().filter(|r| r.method == "PUT").map(|r| r.path.clone()).collect();
    let mut unique = puts.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(puts.len(), unique.len(), "a PUT was repeated: {puts:?}");
    eprintln!(
        "apply: {} requests at the ARM fake ({} PUT, {} GET)",
        log.len(),
        puts.len(),
        log.iter().filter(|r| r.method == "GET").count()
    );

    // Re-apply: the plan is empty, and the fake sees no write.
    fake.clear_requests();
    let observed = observe(&w).await;
    let p = plan::plan_apply(config, &observed).unwrap_or_else(|e| panic!("plan: {e:?}"));
    assert!(p.is_empty(), "re-apply plans changes:\n{p}");
    let log = fake.requests();
    assert!(log.iter().all(|r| !r.is_write()), "{log:?}");
    eprintln!("no-op re-apply: {} requests at the ARM fake, 0 writes", log.len());

    // Tunnels: both Azure ends of each Connection, the used one up (the AWS side is
    // in the same world), and its IKE SA readable.
    let ends = azure.tunnel_ends(owner).await.expect("tunnel ends");
    assert_eq!(ends.len(), 2 * observed.azure.connections.len());
    let up: Vec<_> = ends.iter().filter(|e| e.status().state == TunnelState::Up).collect();
    assert!(!up.is_empty(), "{ends:?}");
    let cn = &up[0].resource().to_owned();
    let ep = AzureEndpoint::with_static_token(settings(fake), "fake-token").expect("endpoint");
    let h = ep.start_get_ike_sas(cn).await.expect("getikesas");
    let sas = loop {
        if let Some(s) = ep.poll_ike_sas(&h).await.expect("poll") {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        sas.iter().any(|s| s.local_endpoint.as_deref() == Some(&up[0].outside_ip().to_string())
            && s.remote_endpoint.as_deref() == Some(&up[0].peer_ip().to_string())),
        "{sas:?}"
    );

    // Destroy.
    let observed = observe(&w).await;
    let p = plan::plan_destroy(config, &observed).unwrap();
    let report = executor.run(&p, |_| {}).await;
    assert!(report.succeeded(), "{:?}", report.failures().collect::<Vec<_>>());
    let o = azure.observe(owner).await.expect("observe");
    assert!(o.public_ips.is_empty() && o.vpn_gateway.is_none() && o.local_network_gateways.is_empty() && o.connections.is_empty());
}

/// `tunnel_ends` reads each Connection's IKE SAs (`getikesas` + `Location` polling) and
/// hands each instance's end the SA whose local endpoint is that instance's public IP:
/// an end whose tunnel is up in the fake's world reports its SA, a down end none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_ends_carry_the_ike_sas() {
    let w = world(ArmFakeConfig::for_tests()).await;
    let executor = Executor::new(w.aws.clone(), w.azure.clone(), w.owner.clone(), exec_settings());
    let p = plan::plan_apply(&w.config, &observe(&w).await).unwrap_or_else(|e| panic!("plan: {e:?}"));
    assert!(executor.run(&p, |_| {}).await.succeeded());
    w.fake.clear_requests();
    let ends = w.azure.tunnel_ends(&w.owner).await.expect("tunnel ends");
    let connections = observe(&w).await.azure.connections.len();
    assert_eq!(ends.len(), 2 * connections);
    let up: Vec<_> = ends.iter().filter(|e| e.status().state == TunnelState::Up).collect();
    assert!(!up.is_empty(), "{ends:?}");
    for e in &ends {
        match e.ike_sa() {
            Some(sa) => {
                assert_eq!(e.status().state, TunnelState::Up, "an SA on a down end: {e:?}");
                assert_eq!((sa.local, sa.remote), (e.outside_ip(), e.peer_ip()), "{e:?}");
            }
            None => assert_ne!(e.status().state, TunnelState::Up, "an up end without its SA: {e:?}"),
        }
    }
    // One getikesas POST per Connection, and nothing written.
    let log = w.fake.requests();
    let posts = log.iter().filter(|r| r.method == "POST" && r.path.ends_with("/getikesas")).count();
    assert_eq!(posts, connections, "{log:?}");
    assert!(log.iter().all(|r| r.method != "PUT" && r.method != "DELETE"), "{log:?}");
}

/// An apply interrupted while the gateway builds: the next run finds the gateway
/// Updating, waits for it (no second PUT) and finishes the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_apply_resumes_without_repeating_the_gateway_put() {
    let mut cfg = ArmFakeConfig::for_tests();
    cfg.latency = vpnbridge_sim::LatencyTable {
        azure_vpn_gateway: Duration::from_millis(2500),
        azure_public_ip: Duration::from_millis(100),
        ..vpnbridge_sim::LatencyTable::instant()
    };
    let w = world(cfg).await;
    let executor = Executor::new(w.aws.clone(), w.azure.clone(), w.owner.clone(), exec_settings());
    let p = plan::plan_apply(&w.config, &observe(&w).await).unwrap_or_else(|e| panic!("plan: {e:?}"));
    let gateway_put = |r: &vpnbridge_armfake::RequestRecord| r.method == "PUT" && r.path.contains("/virtualNetworkGateways/");
    // Interrupt once the gateway PUT went out.
    let run = executor.run(&p, |_| {});
    tokio::select! {
        _ = run => panic!("the apply finished before it could be interrupted"),
        _ = async {
            while !w.fake.requests().iter().any(gateway_put) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        } => {}
    }
    let observed = observe(&w).await;
    let gw = observed.azure.vpn_gateway.as_ref().expect("the gateway is observed");
    assert_eq!(gw.state, vpnbridge_core::model::ProvisioningState::Updating);
    let p = plan::plan_apply(&w.config, &observed).unwrap_or_else(|e| panic!("plan: {e:?}"));
    let waits = p.steps.iter().filter(|s| s.action == plan::Action::Wait && s.resource_type.as_str().contains("gateway")).count();
    assert_eq!(waits, 1, "the second run waits for the gateway:\n{p}");
    let report = executor.run(&p, |_| {}).await;
    assert!(report.succeeded(), "{:?}", report.failures().collect::<Vec<_>>());
    let log = w.fake.requests();
    assert_eq!(log.iter().filter(|r| gateway_put(r)).count(), 1, "one gateway PUT in all");
    assert!(plan::plan_apply(&w.config, &observe(&w).await).expect("plan").is_empty());
}

/// A 429 storm and 409 conflicts during an apply: the executor backs off as told and
/// the deployment converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_rides_out_throttling_and_conflicts() {
    let w = world(ArmFakeConfig::for_tests()).await;
    let executor = Executor::new(w.aws.clone(), w.azure.clone(), w.owner.clone(), exec_settings());
    let p = plan::plan_apply(&w.config, &observe(&w).await).unwrap_or_else(|e| panic!("plan: {e:?}"));
    w.fake.faults(|f| {
        f.throttle_next = 4;
        f.throttle_retry_after_secs = 0;
        f.conflict_next = 2;
    });
    let report = executor.run(&p, |_| {}).await;
    assert!(report.succeeded(), "{:?}", report.failures().collect::<Vec<_>>());
    let log = w.fake.requests();
    assert_eq!(log.iter().filter(|r| r.status == 429).count(), 4);
    assert_eq!(log.iter().filter(|r| r.status == 409).count(), 2);
    assert!(plan::plan_apply(&w.config, &observe(&w).await).expect("plan").is_empty());
}

/// ARM's list of Connections carries no runtime fields: the status of each of our
/// Connections comes from a GET of it, and each `tunnelConnectionStatus` entry is
/// attributed to a gateway instance by the IKE SAs, not by its name (the fake's names
/// carry no IP address). Static HA: of each Connection's two ends, the instance whose
/// CGW the AWS tunnel accepts is up, the other down by design, none unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_status_comes_from_a_get_of_each_connection() {
    let w = world(ArmFakeConfig::for_tests()).await;
    let executor = Executor::new(w.aws.clone(), w.azure.clone(), w.owner.clone(), exec_settings());
    let p = plan::plan_apply(&w.config, &observe(&w).await).unwrap_or_else(|e| panic!("plan: {e:?}"));
    assert!(executor.run(&p, |_| {}).await.succeeded());
    w.fake.clear_requests();
    let o = w.azure.observe(&w.owner).await.expect("observe");
    assert!(!o.connections.is_empty());
    for c in &o.connections {
        assert_eq!(c.connection_status, "Connected", "{c:?}");
        assert_eq!(c.tunnels.len(), 2, "{c:?}");
    }
    let gets = |log: &[vpnbridge_armfake::RequestRecord]| {
        log.iter().filter(|r| r.method == "GET" && r.path.contains("/connections/") && !r.path.ends_with("/sharedkey")).count()
    };
    let n = o.connections.len();
    let log = w.fake.requests();
    assert_eq!(gets(&log), n, "one GET per Connection in observe");
    // VNet + 4 lists + per Connection a sharedkey GET and a GET.
    assert_eq!(log.len(), 5 + 2 * n, "observe: {log:?}");
    w.fake.clear_requests();
    let ends = w.azure.tunnel_ends(&w.owner).await.expect("tunnel ends");
    let log = w.fake.requests();
    assert_eq!(gets(&log), n, "one GET per Connection in tunnel_ends");
    // Observe's, plus per Connection a getikesas POST and (answered at once) one Location poll.
    assert_eq!(log.len(), 5 + 4 * n, "tunnel_ends: {log:?}");
    for c in &o.connections {
        let mine: Vec<_> = ends.iter().filter(|e| e.resource() == c.name).collect();
        assert_eq!(mine.len(), 2, "{mine:?}");
        let up: Vec<_> = mine.iter().filter(|e| e.status().state == TunnelState::Up).collect();
        let down: Vec<_> = mine.iter().filter(|e| e.status().state == TunnelState::Down).collect();
        assert_eq!((up.len(), down.len()), (1, 1), "{mine:?}");
        assert!(up[0].ike_sa().is_some(), "{mine:?}");
        assert!(up[0].status().reason.contains("tunnel-"), "the up end names its entry: {:?}", up[0].status());
    }
}

/// After the gateway's delete finishes, ARM still holds its public IPs for a while: a
/// DELETE of one answers 400 `PublicIPAddressInUse`. Destroy backs off and retries it
/// (transient) instead of failing on a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_rides_out_public_ips_still_held_by_the_deleted_gateway() {
    let mut cfg = ArmFakeConfig::for_tests();
    cfg.latency =
        vpnbridge_sim::LatencyTable { azure_public_ip_release: Duration::from_millis(1500), ..vpnbridge_sim::LatencyTable::instant() };
    let w = world(cfg).await;
    let executor = Executor::new(w.aws.clone(), w.azure.clone(), w.owner.clone(), exec_settings());
    let p = plan::plan_apply(&w.config, &observe(&w).await).unwrap_or_else(|e| panic!("plan: {e:?}"));
    assert!(executor.run(&p, |_| {}).await.succeeded());
    w.fake.clear_requests();
    let p = plan::plan_destroy(&w.config, &observe(&w).await).unwrap();
    let report = executor.run(&p, |_| {}).await;
    assert!(report.succeeded(), "{:?}", report.failures().collect::<Vec<_>>());
    let log = w.fake.requests();
    let refused = log.iter().filter(|r| r.method == "DELETE" && r.path.contains("/publicIPAddresses/") && r.status == 400).count();
    assert!(refused > 0, "the release window was not hit: {log:?}");
    let o = w.azure.observe(&w.owner).await.expect("observe");
    assert!(o.public_ips.is_empty() && o.vpn_gateway.is_none(), "{o:?}");
}
