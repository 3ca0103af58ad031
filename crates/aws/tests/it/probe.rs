//! The probe's EC2 side on moto, whose Systems Manager the harness layer fills in
//! (`moto_vpn.py`, gap 9): the test instance's preflight, and pings run with SSM Run
//! Command whose scripted outputs cover all replies, total loss, partial loss, a
//! Windows instance, a failing command and an instance that is not managed.

use std::net::Ipv4Addr;
use std::time::Duration;

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, Tag, TagSpecification};
use ipnet::Ipv4Net;
use vpnbridge_aws::Ec2TestVm;
use vpnbridge_core::probe::output::{self, Os};
use vpnbridge_core::probe::vm::{RunState, TestVm};

use crate::moto::Moto;

const VNET: &str = "10.1.0.0/16";
const AZURE_VM: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 4);

fn ssm(moto: &Moto) -> aws_sdk_ssm::Client {
    let conf = aws_sdk_ssm::Config::builder()
        .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
        .region(aws_sdk_ssm::config::Region::new("us-east-1"))
        .endpoint_url(&moto.url)
        .credentials_provider(aws_sdk_ssm::config::Credentials::new("testing", "testing", None, None, "vpnbridge-tests"))
        .build();
    aws_sdk_ssm::Client::from_conf(conf)
}

/// A VPC with a subnet, a security group letting ICMP in from `icmp_from` (none: no
/// ingress rule), and an instance tagged for the harness.
async fn instance(moto: &Moto, tags: &[(&str, &str)], icmp_from: Option<&str>) -> String {
    let ec2 = moto.client();
    let vpc = crate::moto::create_vpc(&ec2).await;
    let subnet = ec2.create_subnet().vpc_id(&vpc).cidr_block("10.2.0.0/24").send().await.unwrap().subnet.unwrap().subnet_id.unwrap();
    let sg = ec2.create_security_group().group_name(format!("probe-{}", tags.len())).description("probe").vpc_id(&vpc).send().await;
    let sg = sg.unwrap().group_id.unwrap();
    if let Some(cidr) = icmp_from {
        let rule =
            IpPermission::builder().ip_protocol("icmp").from_port(-1).to_port(-1).ip_ranges(IpRange::builder().cidr_ip(cidr).build());
        ec2.authorize_security_group_ingress().group_id(&sg).ip_permissions(rule.build()).send().await.unwrap();
    }
    let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(*k).value(*v).build());
    }
    let run = ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .min_count(1)
        .max_count(1)
        .subnet_id(subnet)
        .security_group_ids(sg)
        .tag_specifications(spec.build())
        .send()
        .await
        .unwrap();
    run.instances()[0].instance_id().unwrap().to_owned()
}

async fn run(vm: &Ec2TestVm, os: Os, script: &str) -> RunState {
    let id = vm.start(os, script).await.unwrap();
    for _ in 0..100 {
        match vm.poll(&id).await.unwrap() {
            RunState::Running => tokio::time::sleep(Duration::from_millis(200)).await,
            done => return done,
        }
    }
    panic!("the command never finished");
}

fn vnet() -> Vec<Ipv4Net> {
    vec![VNET.parse().unwrap()]
}

#[tokio::test]
async fn a_managed_linux_instance_pings_and_its_output_is_read() {
    let moto = Moto::start();
    for (mode, received) in [("all", 5), ("none", 0), ("partial", 3)] {
        let id = instance(&moto, &[("vpnbridge-fake:ssm", "online"), ("vpnbridge-fake:ping", mode)], Some(VNET)).await;
        let vm = Ec2TestVm::from_clients(moto.client(), ssm(&moto), &id);
        let facts = vm.inspect(&vnet()).await.unwrap();
        assert!(facts.errors.is_empty(), "{mode}: {:?}", facts.errors);
        assert_eq!(facts.os, Os::Linux);
        assert!(Ipv4Net::new(Ipv4Addr::new(10, 2, 0, 0), 24).unwrap().contains(&facts.private_ip), "{facts:?}");
        let RunState::Done { stdout, .. } = run(&vm, Os::Linux, &output::ping_script(Os::Linux, AZURE_VM)).await else {
            panic!("{mode}: not done")
        };
        let stats = output::parse_ping(&stdout, AZURE_VM).unwrap();
        assert_eq!((stats.sent, stats.received), (5, received), "{mode}: {stdout}");
        assert_eq!(stats.rtt_ms.is_some(), received > 0);
    }
    // The calls went to Systems Manager's own actions.
}

#[tokio::test]
async fn a_windows_instance_runs_test_connection_and_a_shell_script_fails_there() {
    let moto = Moto::start();
    let id = instance(&moto, &[("vpnbridge-fake:ssm", "online"), ("vpnbridge-fake:platform", "Windows")], Some("10.0.0.0/8")).await;
    let vm = Ec2TestVm::from_clients(moto.client(), ssm(&moto), &id);
    let facts = vm.inspect(&vnet()).await.unwrap();
    assert_eq!(facts.os, Os::Windows);
    let RunState::Done { stdout, .. } = run(&vm, Os::Windows, &output::ping_script(Os::Windows, AZURE_VM)).await else { panic!() };
    let stats = output::parse_ping(&stdout, AZURE_VM).unwrap();
    assert_eq!((stats.sent, stats.received), (5, 5), "{stdout}");
    assert!(matches!(run(&vm, Os::Linux, "true").await, RunState::Failed(why) if why.contains("unsupported platform")));
}

#[tokio::test]
async fn a_failing_command_and_a_series_with_an_outage() {
    let moto = Moto::start();
    let id = instance(&moto, &[("vpnbridge-fake:ssm", "online"), ("vpnbridge-fake:ping", "fail")], Some(VNET)).await;
    let vm = Ec2TestVm::from_clients(moto.client(), ssm(&moto), &id);
    match run(&vm, Os::Linux, &output::ping_script(Os::Linux, AZURE_VM)).await {
        RunState::Failed(why) => assert!(why.contains("Failed") && why.contains("exit code 1"), "{why}"),
        other => panic!("{other:?}"),
    }
    let id = instance(&moto, &[("vpnbridge-fake:ssm", "online"), ("vpnbridge-fake:ping", "partial")], Some(VNET)).await;
    let vm = Ec2TestVm::from_clients(moto.client(), ssm(&moto), &id);
    let RunState::Done { stdout, .. } = run(&vm, Os::Linux, &output::series_script(Os::Linux, AZURE_VM, 60, 1000)).await else { panic!() };
    let samples = output::parse_series(&stdout).unwrap();
    assert_eq!(samples.len(), 60);
    let series = vpnbridge_core::probe::PingSeries { from: Ipv4Addr::new(10, 2, 0, 4), to: AZURE_VM, samples };
    assert_eq!(series.lost_seconds(Duration::from_secs(1)), 30.0);
}

#[tokio::test]
async fn an_unmanaged_or_firewalled_instance_is_refused_with_the_fix() {
    let moto = Moto::start();
    let id = instance(&moto, &[("Name", "not-managed")], None).await;
    let vm = Ec2TestVm::from_clients(moto.client(), ssm(&moto), &id);
    let facts = vm.inspect(&vnet()).await.unwrap();
    let all = facts.errors.join("\n");
    assert!(all.contains(&id) && all.contains("not a managed instance") && all.contains("AmazonSSMManagedInstanceCore"), "{all}");
    assert!(all.contains("lets ICMP in from the VNet's 10.1.0.0/16") && all.contains("authorize-security-group-ingress"), "{all}");
    let e = vm.start(Os::Linux, "true").await.unwrap_err().to_string();
    assert!(e.contains("InvalidInstanceId") && e.contains("not a managed instance"), "{e}");
    let offline = instance(&moto, &[("vpnbridge-fake:ssm", "offline")], Some(VNET)).await;
    let vm = Ec2TestVm::from_clients(moto.client(), ssm(&moto), &offline);
    let facts = vm.inspect(&vnet()).await.unwrap();
    assert!(facts.errors.iter().any(|e| e.contains("ConnectionLost")), "{:?}", facts.errors);
    let missing = Ec2TestVm::from_clients(moto.client(), ssm(&moto), "i-0123456789abcdef0");
    let facts = missing.inspect(&vnet()).await.unwrap();
    assert!(facts.errors.iter().any(|e| e.contains("does not exist") && e.contains("[probe] aws_instance")), "{:?}", facts.errors);
}
