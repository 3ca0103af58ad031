//! The Azure adapter against the ARM fake on loopback: the core's contract suite, then
//! the edge cases of ARM's protocol (throttling, conflicts, failed and lost
//! operations, missing resources, restarts) and the server-side call counts.

use std::net::Ipv4Addr;
use std::time::Duration;

use vpnbridge_armfake::{ArmFake, ArmFakeConfig, ArmFakeHandle};
use vpnbridge_azure::{AzureEndpoint, AzureSettings};
use vpnbridge_core::endpoint::{ErrorKind, OpHandle, OpStatus, VpnEndpoint};
use vpnbridge_core::model::{Owner, Role};
use vpnbridge_core::ops::{AzureOp, AzureResourceKind, OpOutput};
use vpnbridge_core::secret::Psk;
use vpnbridge_sim::LatencyTable;

mod bgp;
mod logging;
mod probe;
mod python_models;
mod reput;
mod workflow;

const LIMIT: Duration = Duration::from_secs(30);

async fn fake_with(f: impl FnOnce(&mut ArmFakeConfig)) -> ArmFakeHandle {
    let mut cfg = ArmFakeConfig::for_tests();
    f(&mut cfg);
    ArmFake::start(cfg).await.expect("the ARM fake starts")
}

async fn fake() -> ArmFakeHandle {
    fake_with(|_| {}).await
}

fn settings(fake: &ArmFakeHandle) -> AzureSettings {
    let c = fake.config();
    AzureSettings {
        subscription_id: Some(c.subscription_id.clone()),
        resource_group: c.resource_group.clone(),
        location: c.location.clone(),
        vnet: c.vnet.clone(),
        endpoint: Some(fake.url.clone()),
    }
}

fn endpoint(fake: &ArmFakeHandle) -> AzureEndpoint {
    AzureEndpoint::with_static_token(settings(fake), "fake-token").expect("endpoint")
}

async fn run(ep: &AzureEndpoint, op: &AzureOp) -> OpOutput {
    vpnbridge_core::contract::run_to_end(ep, op, "test", LIMIT).await.expect("operation finishes")
}

fn pip(owner: &Owner, k: u8) -> AzureOp {
    AzureOp::CreatePublicIp {
        name: format!("{}-pip-{k}", owner.deployment),
        zones: vec!["1".into(), "2".into(), "3".into()],
        tags: owner.tags(&Role::PublicIp(k)),
    }
}

fn lng(owner: &Owner, ip: Ipv4Addr) -> AzureOp {
    AzureOp::PutLocalNetworkGateway {
        bgp: None,
        name: format!("{}-lng-0-0", owner.deployment),
        gateway_ip: ip,
        address_prefixes: vec!["10.2.0.0/16".parse().expect("literal")],
        tags: owner.tags(&Role::LocalNetworkGateway(0, 0)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_on_the_arm_fake() {
    let fake = fake().await;
    let ep = endpoint(&fake);
    let owner = Owner::new("contract");
    vpnbridge_core::contract::azure(&ep, &owner, "vnet-hub", LIMIT).await.unwrap_or_else(|e| panic!("contract: {e}"));
    // The fake saw real ARM traffic: PUTs, DELETEs, operation polls.
    let log = fake.requests();
    assert!(log.iter().any(|r| r.method == "PUT" && r.path.contains("/connections/contract-cn-0-0")));
    assert!(log.iter().any(|r| r.method == "GET" && r.path.contains("/operations/")));
    assert!(log.iter().all(|r| r.status < 500), "{log:?}");
}

#[tokio::test]
async fn throttling_is_reported_with_retry_after() {
    let fake = fake().await;
    let ep = endpoint(&fake);
    fake.faults(|f| {
        f.throttle_next = 1;
        f.throttle_retry_after_secs = 7;
    });
    let e = ep.observe(&Owner::new("t")).await.expect_err("throttled");
    assert_eq!(e.kind, ErrorKind::Throttled, "{e}");
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    assert!(e.request_id.is_some(), "the x-ms-request-id is kept");
    // No SDK retry behind our back: exactly one request reached the fake.
    assert_eq!(fake.requests().iter().filter(|r| r.status == 429).count(), 1);
    ep.observe(&Owner::new("t")).await.expect("the next call goes through");
}

#[tokio::test]
async fn another_operation_in_progress_is_transient() {
    let fake = fake().await;
    let ep = endpoint(&fake);
    fake.faults(|f| f.conflict_next = 1);
    let e = ep.start(&pip(&Owner::new("t"), 0)).await.expect_err("conflict");
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Transient, "AnotherOperationInProgress"), "{e}");
    assert!(e.is_transient());
}

#[tokio::test]
async fn deleting_what_is_missing_is_done() {
    let fake = fake().await;
    let ep = endpoint(&fake);
    for op in [
        AzureOp::DeleteConnection { name: "nope".into() },
        AzureOp::DeleteLocalNetworkGateway { name: "nope".into() },
        AzureOp::DeleteVpnGateway { name: "nope".into() },
        AzureOp::DeletePublicIp { name: "nope".into() },
    ] {
        let h = ep.start(&op).await.expect("a delete of nothing starts");
        assert!(matches!(ep.poll(&h).await.expect("poll"), OpStatus::Done(_)), "{op:?}");
    }
}

#[tokio::test]
async fn arm_errors_keep_code_message_and_request_id() {
    let fake = fake().await;
    let ep = endpoint(&fake);
    let owner = Owner::new("t");
    for k in 0..2 {
        run(&ep, &pip(&owner, k)).await;
    }
    let gateway = |vnet: &str, generation: &str| AzureOp::CreateVpnGateway {
        name: "t-vpngw".into(),
        vnet: vnet.into(),
        sku: "VpnGw1AZ".into(),
        generation: generation.into(),
        public_ips: vec!["t-pip-0".into(), "t-pip-1".into()],
        bgp: None,
        tags: owner.tags(&Role::VpnGateway),
    };
    let e = ep.start(&gateway("vnet-hub", "Generation2")).await.expect_err("invalid SKU/generation");
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert_eq!(e.code, "VirtualNetworkGatewaySkuCannotBeCreatedForSpecifiedVmGeneration");
    assert!(e.message.contains("Generation2"), "{}", e.message);
    assert!(e.request_id.is_some());
    // A GatewaySubnet that does not exist is an invalid reference.
    let e = ep.start(&gateway("vnet-missing", "Generation1")).await.expect_err("missing VNet");
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Permanent, "InvalidResourceReference"), "{e}");
}

#[tokio::test]
async fn a_wrong_token_is_a_permanent_authentication_error() {
    let fake = fake().await;
    let ep = AzureEndpoint::with_static_token(settings(&fake), "wrong").expect("endpoint");
    let e = ep.observe(&Owner::new("t")).await.expect_err("unauthenticated");
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Permanent, "AuthenticationFailed"), "{e}");
}

#[tokio::test]
async fn a_failed_operation_is_a_clear_permanent_error_and_a_new_put_recovers() {
    let fake = fake().await;
    let ep = endpoint(&fake);
    let owner = Owner::new("t");
    fake.faults(|f| f.fail_next_operations = 1);
    let h = ep.start(&lng(&owner, Ipv4Addr::new(3, 0, 113, 5))).await.expect("starts");
    match ep.poll(&h).await.expect("poll") {
        OpStatus::Failed(e) => {
            assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Permanent, "OperationFailed"), "{e}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    let o = ep.observe(&owner).await.expect("observe");
    assert_eq!(o.local_network_gateways[0].state, vpnbridge_core::model::ProvisioningState::Failed);
    run(&ep, &lng(&owner, Ipv4Addr::new(3, 0, 113, 5))).await;
}

#[tokio::test]
async fn a_response_lost_after_commit_may_have_committed() {
    let fake = fake().await;
    let ep = endpoint(&fake);
    let owner = Owner::new("t");
    fake.faults(|f| f.drop_next_responses = 1);
    let e = ep.start(&pip(&owner, 0)).await.expect_err("lost response");
    assert_eq!(e.kind, ErrorKind::Transient);
    assert!(e.may_have_committed, "{e}");
    let o = ep.observe(&owner).await.expect("observe");
    assert_eq!(o.public_ips.len(), 1, "the PUT was carried out");
}

#[tokio::test]
async fn slow_operations_without_retry_after_and_a_restart_mid_operation() {
    let slow = LatencyTable { azure_public_ip: Duration::from_millis(600), ..LatencyTable::instant() };
    let fake = fake_with(|c| {
        c.latency = slow;
        c.retry_after_secs = None;
    })
    .await;
    let owner = Owner::new("t");
    let first = endpoint(&fake);
    let h = first.start(&pip(&owner, 0)).await.expect("starts");
    assert!(matches!(first.poll(&h).await.expect("poll"), OpStatus::Running { retry_after: None }));
    // Observe reports the operation in flight, so the executor awaits it.
    let o = first.observe(&owner).await.expect("observe");
    assert_eq!(o.public_ips[0].state, vpnbridge_core::model::ProvisioningState::Updating);
    drop(first);
    // A new process picks the handle up (it is plain text).
    let second = endpoint(&fake);
    let h = OpHandle(h.0.clone());
    let deadline = tokio::time::Instant::now() + LIMIT;
    let out = loop {
        match second.poll(&h).await.expect("poll") {
            OpStatus::Done(out) => break out,
            OpStatus::Running { .. } if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("{other:?}"),
        }
    };
    assert!(out.public_ip.is_some(), "the address is reported");
    // Await on a settled resource finishes at once.
    let h = second.start(&AzureOp::Await { kind: AzureResourceKind::PublicIp, name: "t-pip-0".into() }).await.expect("await");
    assert!(matches!(second.poll(&h).await.expect("poll"), OpStatus::Done(_)));
}

#[tokio::test]
async fn observe_makes_one_list_per_kind_and_a_no_op_makes_no_write() {
    let fake = fake().await;
    let ep = endpoint(&fake);
    let owner = Owner::new("t");
    run(&ep, &lng(&owner, Ipv4Addr::new(3, 0, 113, 5))).await;
    fake.clear_requests();
    ep.observe(&owner).await.expect("observe");
    let log = fake.requests();
    assert!(log.iter().all(|r| !r.is_write()), "{log:?}");
    for kind in ["publicIPAddresses", "virtualNetworkGateways", "localNetworkGateways", "connections"] {
        let lists = log.iter().filter(|r| r.path.ends_with(&format!("/providers/Microsoft.Network/{kind}"))).count();
        assert_eq!(lists, 1, "{kind}: {log:?}");
    }
    assert_eq!(log.iter().filter(|r| r.path.contains("/virtualNetworks/")).count(), 1);
    // No gateway of ours in the subscription: the others the identity sees are
    // searched for one (here there are none).
    assert_eq!(log.iter().filter(|r| r.path == "/subscriptions").count(), 1, "{log:?}");
    assert_eq!(log.len(), 6, "{log:?}");
}

#[tokio::test]
async fn foreign_resources_are_reported_not_taken() {
    let fake = fake().await;
    let ep = endpoint(&fake);
    let other = Owner::new("someone-else");
    run(&ep, &lng(&other, Ipv4Addr::new(3, 0, 113, 9))).await;
    let o = ep.observe(&Owner::new("t")).await.expect("observe");
    assert!(o.local_network_gateways.is_empty());
    assert_eq!(o.foreign_names, vec!["someone-else-lng-0-0".to_owned()]);
}

#[tokio::test]
async fn ike_sas_are_read_through_location_polling() {
    let fake = fake().await;
    let ep = endpoint(&fake);
    let owner = Owner::new("t");
    for k in 0..2 {
        run(&ep, &pip(&owner, k)).await;
    }
    run(
        &ep,
        &AzureOp::CreateVpnGateway {
            name: "t-vpngw".into(),
            vnet: "vnet-hub".into(),
            sku: "VpnGw1AZ".into(),
            generation: "Generation1".into(),
            public_ips: vec!["t-pip-0".into(), "t-pip-1".into()],
            bgp: None,
            tags: owner.tags(&Role::VpnGateway),
        },
    )
    .await;
    run(&ep, &lng(&owner, Ipv4Addr::new(3, 0, 113, 5))).await;
    run(
        &ep,
        &AzureOp::PutConnection {
            name: "t-cn-0-0".into(),
            gateway: "t-vpngw".into(),
            local_network_gateway: "t-lng-0-0".into(),
            shared_key: Psk::new("Test.Key_0001").expect("valid"),
            bgp: None,
            dpd_timeout_seconds: 45,
            tags: owner.tags(&Role::Connection(0, 0)),
        },
    )
    .await;
    let h = ep.start_get_ike_sas("t-cn-0-0").await.expect("getikesas starts");
    assert!(h.0.contains("operationResults"), "polled through Location: {}", h.0);
    let sas = loop {
        if let Some(sas) = ep.poll_ike_sas(&h).await.expect("poll") {
            break sas;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // No AWS side in this world: no tunnel is up, so no SA.
    assert!(sas.is_empty(), "{sas:?}");
    // Tunnel ends: one per gateway instance, status from tunnelConnectionStatus.
    let ends = ep.tunnel_ends(&owner).await.expect("tunnel ends");
    assert_eq!(ends.len(), 2);
    assert!(ends.iter().all(|e| e.status().reason.starts_with("NotConnected")), "{ends:?}");
}
