//! The whole workflow with this adapter on moto and the simulator's Azure (the mixed
//! backend the CLI offers): apply, a no-op apply, destroy; counted from moto's log.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::types::GatewayType;
use vpnbridge_aws::AwsEndpoint;
use vpnbridge_core::endpoint::{Aws, Azure, VpnEndpoint};
use vpnbridge_core::exec::{ExecSettings, Executor, observe};
use vpnbridge_core::model::Owner;
use vpnbridge_core::plan::{plan_apply, plan_destroy};
use vpnbridge_sim::{AzureTarget, LatencyTable, SimAzure, SimCloud, VnetSpec, VpcSpec};

use crate::moto::{Moto, create_vpc};

fn config(vpc: &str) -> vpnbridge_core::config::Config {
    let text = format!(
        r#"name = "e2e"
mode = "static-ha"
[azure]
backend = "sim"
subscription_id = "00000000-0000-0000-0000-000000000000"
resource_group = "rg-vpn"
location = "japaneast"
vnet = "vnet-hub"
address_space = ["10.1.0.0/16"]
gateway_subnet = "10.1.255.0/27"
[aws]
backend = "sim"
region = "us-east-1"
vpc_id = "{vpc}"
cidrs = ["10.2.0.0/16"]
"#
    );
    vpnbridge_core::config::parse(&text, Path::new("e2e.toml"), &|_| None).unwrap_or_else(|e| panic!("{e}")).config
}

fn settings() -> ExecSettings {
    ExecSettings {
        poll_initial: Duration::from_millis(20),
        poll_max: Duration::from_millis(200),
        retry: vpnbridge_core::exec::RetryPolicy {
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            ..Default::default()
        },
        consistency_window: Duration::from_millis(500),
        ..ExecSettings::default()
    }
}

fn writes(log: &[String]) -> Vec<&String> {
    log.iter().filter(|a| !a.starts_with("Describe")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_noop_and_destroy_with_simulated_azure() {
    let moto = Moto::start();
    let client = moto.client();
    let vpc = create_vpc(&client).await;
    // Someone else's resources in the same region: never touched.
    let foreign_cgw =
        client.create_customer_gateway().r#type(GatewayType::Ipsec1).ip_address("198.51.100.7").bgp_asn(65000).send().await.unwrap();
    let foreign_cgw = foreign_cgw.customer_gateway().and_then(|c| c.customer_gateway_id()).unwrap().to_owned();
    let foreign_vgw = client.create_vpn_gateway().r#type(GatewayType::Ipsec1).send().await.unwrap();
    let foreign_vgw = foreign_vgw.vpn_gateway().and_then(|g| g.vpn_gateway_id()).unwrap().to_owned();

    let config = config(&vpc);
    let owner = Owner::new(&config.name);
    let sim = SimCloud::in_memory_with(LatencyTable::instant());
    sim.ensure_prerequisites(&VnetSpec::from_config(&config), &VpcSpec::from_config(&config)).unwrap();
    let azure: Arc<dyn VpnEndpoint<Azure>> = Arc::new(SimAzure::new(sim, AzureTarget::from_config(&config)));
    let aws: Arc<dyn VpnEndpoint<Aws>> = Arc::new(AwsEndpoint::from_client(client.clone(), &vpc));
    let exec = Executor::new(aws.clone(), azure.clone(), owner.clone(), settings());

    let observed = observe(&*aws, &*azure, &owner, &settings()).await.unwrap();
    let plan = plan_apply(&config, &observed).unwrap_or_else(|e| panic!("{e:?}"));
    moto.clear_requests();
    let report = exec.run(&plan, |_| {}).await;
    assert!(report.succeeded(), "{:?}", report.failures().map(|f| format!("{f:?}")).collect::<Vec<_>>());
    let log = moto.requests();
    for create in ["CreateVpnGateway", "AttachVpnGateway", "CreateCustomerGateway", "CreateVpnConnection"] {
        let n = log.iter().filter(|a| *a == create).count();
        let want = if create.ends_with("Gateway") && create != "CreateCustomerGateway" { 1 } else { 2 };
        assert_eq!(n, want, "{create} sent {n} times: {:?}", writes(&log));
    }

    // A second apply finds nothing to do and writes nothing.
    moto.clear_requests();
    let observed = observe(&*aws, &*azure, &owner, &settings()).await.unwrap();
    let plan = plan_apply(&config, &observed).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(plan.is_empty(), "{:?}", plan.counts());
    assert!(exec.run(&plan, |_| {}).await.succeeded());
    let log = moto.requests();
    assert!(writes(&log).is_empty(), "a no-op apply wrote: {:?}", writes(&log));
    assert_eq!(log.len(), 6, "observe is one describe per kind: {log:?}");

    // Destroy leaves none of ours and all of theirs.
    let observed = observe(&*aws, &*azure, &owner, &settings()).await.unwrap();
    let report = exec.run(&plan_destroy(&config, &observed).unwrap(), |_| {}).await;
    assert!(report.succeeded(), "{:?}", report.failures().map(|f| format!("{f:?}")).collect::<Vec<_>>());
    let after = aws.observe(&owner).await.unwrap();
    assert!(after.vpn_gateways.is_empty() && after.customer_gateways.is_empty() && after.vpn_connections.is_empty());
    let cgw = client.describe_customer_gateways().customer_gateway_ids(&foreign_cgw).send().await.unwrap();
    assert_eq!(cgw.customer_gateways()[0].state(), Some("available"));
    let vgw = client.describe_vpn_gateways().vpn_gateway_ids(&foreign_vgw).send().await.unwrap();
    assert_eq!(vgw.vpn_gateways()[0].state().map(|s| s.as_str()), Some("available"));
}
