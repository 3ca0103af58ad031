//! The probe's Azure side on the ARM fake: the test VM (with its instance view), its
//! NIC and NSG, and pings run with VM Run Command (an asynchronous POST whose
//! `Location` answers 202 until the `RunCommandResult`).

use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::Ipv4Net;
use vpnbridge_armfake::{PingScript, TestNsg, TestVmSpec};
use vpnbridge_azure::AzureTestVm;
use vpnbridge_core::config::AzureVmRef;
use vpnbridge_core::probe::output::{self, Os};
use vpnbridge_core::probe::vm::{RunState, TestVm};

use crate::{endpoint, fake};

const EC2: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 4);

fn vpc() -> Vec<Ipv4Net> {
    vec!["10.2.0.0/16".parse().unwrap()]
}

fn vm(fake: &vpnbridge_armfake::ArmFakeHandle, name: &str) -> AzureTestVm {
    let c = fake.config();
    endpoint(fake).test_vm(&AzureVmRef {
        subscription_id: c.subscription_id.clone(),
        resource_group: c.resource_group.clone(),
        name: name.to_owned(),
    })
}

async fn run(vm: &AzureTestVm, os: Os, script: &str) -> RunState {
    let id = vm.start(os, script).await.unwrap();
    for _ in 0..100 {
        match vm.poll(&id).await.unwrap() {
            RunState::Running => tokio::time::sleep(Duration::from_millis(100)).await,
            done => return done,
        }
    }
    panic!("Run Command never finished");
}

#[tokio::test]
async fn a_linux_vm_is_read_and_its_ping_runs_with_run_command() {
    let fake = fake().await;
    for (name, script, received) in
        [("vm-all", PingScript::AllReplies, 5), ("vm-none", PingScript::TotalLoss, 0), ("vm-partial", PingScript::PartialLoss, 3)]
    {
        fake.add_test_vm(TestVmSpec { ping: script, ..TestVmSpec::linux(name, Ipv4Addr::new(10, 1, 0, 4)) });
        let vm = vm(&fake, name);
        let facts = vm.inspect(&vpc()).await.unwrap();
        assert!(facts.errors.is_empty() && facts.warnings.is_empty(), "{facts:?}");
        assert_eq!((facts.private_ip, facts.os), (Ipv4Addr::new(10, 1, 0, 4), Os::Linux));
        let RunState::Done { stdout, .. } = run(&vm, Os::Linux, &output::ping_script(Os::Linux, EC2)).await else { panic!("{name}") };
        let stats = output::parse_ping(&stdout, EC2).unwrap();
        assert_eq!((stats.sent, stats.received), (5, received), "{name}: {stdout}");
    }
    // The documented LRO: POST 202, then the Location polled until its 200.
    let reqs = fake.requests();
    let post = reqs.iter().find(|r| r.method == "POST" && r.path.ends_with("/runCommand")).unwrap();
    assert_eq!(post.status, 202);
    assert_eq!(post.body.as_ref().unwrap()["commandId"], "RunShellScript");
    assert!(reqs.iter().any(|r| r.path.contains("/providers/Microsoft.Compute/locations/") && r.status == 202), "{reqs:?}");
    assert!(reqs.iter().any(|r| r.path.contains("/providers/Microsoft.Compute/locations/") && r.status == 200));
}

#[tokio::test]
async fn windows_one_command_at_a_time_and_a_failing_command() {
    let fake = fake().await;
    let mut win = TestVmSpec::linux("vm-win", Ipv4Addr::new(10, 1, 0, 5));
    win.windows = true;
    win.run_time = Duration::from_millis(800);
    fake.add_test_vm(win);
    let vm = vm(&fake, "vm-win");
    assert_eq!(vm.inspect(&vpc()).await.unwrap().os, Os::Windows);
    let first = vm.start(Os::Windows, &output::ping_script(Os::Windows, EC2)).await.unwrap();
    let second = vm.start(Os::Windows, "Get-Date").await.unwrap_err().to_string();
    assert!(second.contains("Conflict") && second.contains("in progress"), "{second}");
    let e = vm.start(Os::Linux, "true").await.unwrap_err().to_string();
    assert!(e.contains("InvalidParameter"), "{e}");
    let stdout = loop {
        match vm.poll(&first).await.unwrap() {
            RunState::Running => tokio::time::sleep(Duration::from_millis(100)).await,
            RunState::Done { stdout, .. } => break stdout,
            RunState::Failed(f) => panic!("{f}"),
        }
    };
    let stats = output::parse_ping(&stdout, EC2).unwrap();
    assert_eq!((stats.sent, stats.received), (5, 5), "{stdout}");

    fake.add_test_vm(TestVmSpec { ping: PingScript::CommandFails, ..TestVmSpec::linux("vm-fail", Ipv4Addr::new(10, 1, 0, 6)) });
    match run(&self::vm(&fake, "vm-fail"), Os::Linux, "ping").await {
        RunState::Failed(why) => assert!(why.contains("ProvisioningState/failed"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn preflight_names_the_vm_and_the_fix() {
    let fake = fake().await;
    let missing = vm(&fake, "vm-nope").inspect(&vpc()).await.unwrap();
    assert!(missing.errors[0].contains("vm-nope") && missing.errors[0].contains("[probe] azure_vm"), "{missing:?}");
    fake.add_test_vm(TestVmSpec { running: false, ..TestVmSpec::linux("vm-off", Ipv4Addr::new(10, 1, 0, 7)) });
    let off = vm(&fake, "vm-off").inspect(&vpc()).await.unwrap();
    assert!(off.errors.iter().any(|e| e.contains("deallocated") && e.contains("az vm start")), "{off:?}");
    let e = vm(&fake, "vm-off").start(Os::Linux, "true").await.unwrap_err().to_string();
    assert!(e.contains("OperationNotAllowed"), "{e}");
    fake.add_test_vm(TestVmSpec {
        nsg: TestNsg::DenyIcmpFrom("10.2.0.0/16".parse().unwrap()),
        ..TestVmSpec::linux("vm-deny", Ipv4Addr::new(10, 1, 0, 8))
    });
    let deny = vm(&fake, "vm-deny").inspect(&vpc()).await.unwrap();
    assert!(deny.errors.iter().any(|e| e.contains("nsg-vm-deny") && e.contains("az network nsg rule create")), "{deny:?}");
    fake.add_test_vm(TestVmSpec { nsg: TestNsg::Unreadable, ..TestVmSpec::linux("vm-hidden", Ipv4Addr::new(10, 1, 0, 9)) });
    let hidden = vm(&fake, "vm-hidden").inspect(&vpc()).await.unwrap();
    assert!(hidden.errors.is_empty(), "{hidden:?}");
    assert!(hidden.warnings.iter().any(|w| w.contains("AuthorizationFailed") && w.contains("ICMP")), "{hidden:?}");
}
