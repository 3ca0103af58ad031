//! The binary with the real cloud adapters, against local fakes of the clouds: Azure's
//! on the ARM fake (the simulator's Azure model served over ARM's REST shapes), AWS's
//! on moto (started through the AWS adapter's harness layer; `cargo xtask fakes`
//! installs it). Each test starts its own fakes on loopback.

use vpnbridge_armfake::{ArmFake, ArmFakeConfig, ArmFakeHandle, PingScript, TestVmSpec};

use vpnbridge_core::config::Mode;

use crate::{Run, Scratch};

const CANARY: &str = "Real.Backend_Canary_77";

/// The ARM fake, served by its own runtime for as long as the test runs.
struct Arm {
    handle: ArmFakeHandle,
    _rt: tokio::runtime::Runtime,
}

impl Arm {
    fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let handle = rt.block_on(ArmFake::start(ArmFakeConfig::for_tests())).unwrap();
        Self { handle, _rt: rt }
    }
    fn writes(&self) -> usize {
        self.handle.requests().iter().filter(|r| matches!(r.method.as_str(), "PUT" | "DELETE" | "POST" | "PATCH")).count()
    }
}

/// moto with the AWS adapter's harness layer, a VPC in it, and someone else's
/// resources beside it: an untagged customer gateway and an unattached VGW.
struct Moto {
    server: vpnbridge_testkit::moto::Moto,
    vpc_id: String,
    foreign: Vec<String>,
    rt: tokio::runtime::Runtime,
}

impl Moto {
    fn start() -> Self {
        Self::start_with(&[])
    }

    /// With extra environment for the harness (e.g. `VPNBRIDGE_MOTO_TELEMETRY_UP`).
    fn start_with(harness_env: &[(&str, &str)]) -> Self {
        let server = vpnbridge_testkit::moto::Moto::start_with(harness_env);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (vpc_id, foreign) = rt.block_on(async {
            let ec2 = server.client();
            let vpc = ec2.create_vpc().cidr_block("10.2.0.0/16").send().await.unwrap().vpc.unwrap().vpc_id.unwrap();
            let cgw = ec2
                .create_customer_gateway()
                .r#type(aws_sdk_ec2::types::GatewayType::Ipsec1)
                .ip_address("198.51.100.7")
                .bgp_asn(65000)
                .send()
                .await
                .unwrap()
                .customer_gateway
                .unwrap()
                .customer_gateway_id
                .unwrap();
            let vgw = ec2
                .create_vpn_gateway()
                .r#type(aws_sdk_ec2::types::GatewayType::Ipsec1)
                .send()
                .await
                .unwrap()
                .vpn_gateway
                .unwrap()
                .vpn_gateway_id
                .unwrap();
            (vpc, vec![cgw, vgw])
        });
        Self { server, vpc_id, foreign, rt }
    }

    /// The user's test instance in the VPC: a subnet, a security group letting ICMP in
    /// from the VNet, tagged for the harness's SSM (`ping`: all | none | partial | fail).
    fn probe_instance(&self, ping: &str) -> String {
        self.rt.block_on(async {
            let ec2 = self.server.client();
            let subnet =
                ec2.create_subnet().vpc_id(&self.vpc_id).cidr_block("10.2.0.0/24").send().await.unwrap().subnet.unwrap().subnet_id.unwrap();
            let sg = ec2.create_security_group().group_name("probe").description("probe").vpc_id(&self.vpc_id).send().await;
            let sg = sg.unwrap().group_id.unwrap();
            let rule = aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("icmp")
                .from_port(-1)
                .to_port(-1)
                .ip_ranges(aws_sdk_ec2::types::IpRange::builder().cidr_ip("10.1.0.0/16").build())
                .build();
            ec2.authorize_security_group_ingress().group_id(&sg).ip_permissions(rule).send().await.unwrap();
            let tags = aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                .tags(aws_sdk_ec2::types::Tag::builder().key("vpnbridge-fake:ssm").value("online").build())
                .tags(aws_sdk_ec2::types::Tag::builder().key("vpnbridge-fake:ping").value(ping).build())
                .build();
            let run = ec2
                .run_instances()
                .image_id("ami-12c6146b")
                .min_count(1)
                .max_count(1)
                .subnet_id(subnet)
                .security_group_ids(sg)
                .tag_specifications(tags)
                .send()
                .await
                .unwrap();
            run.instances()[0].instance_id().unwrap().to_owned()
        })
    }

    /// Sets a harness tag on the test instance.
    fn tag(&self, instance: &str, key: &str, value: &str) {
        self.rt.block_on(async {
            let tag = aws_sdk_ec2::types::Tag::builder().key(key).value(value).build();
            self.server.client().create_tags().resources(instance).tags(tag).send().await.unwrap();
        });
    }

    /// The states of someone else's resources, and how many live resources of ours.
    fn census(&self) -> (Vec<String>, usize) {
        self.rt.block_on(async {
            let ec2 = self.server.client();
            let cgws = ec2.describe_customer_gateways().send().await.unwrap().customer_gateways.unwrap_or_default();
            let vgws = ec2.describe_vpn_gateways().send().await.unwrap().vpn_gateways.unwrap_or_default();
            let vpns = ec2.describe_vpn_connections().send().await.unwrap().vpn_connections.unwrap_or_default();
            let ours =
                |tags: Option<&[aws_sdk_ec2::types::Tag]>| tags.unwrap_or_default().iter().any(|t| t.key() == Some("vpnbridge:deployment"));
            let mut foreign = Vec::new();
            for id in &self.foreign {
                let state =
                    cgws.iter().find(|c| c.customer_gateway_id() == Some(id)).and_then(|c| c.state().map(str::to_owned)).or_else(|| {
                        vgws.iter().find(|v| v.vpn_gateway_id() == Some(id)).and_then(|v| v.state().map(|s| s.as_str().to_owned()))
                    });
                foreign.push(format!("{id} {}", state.unwrap_or_else(|| "missing".into())));
            }
            let live = |s: Option<&str>| !matches!(s, Some("deleted" | "deleting"));
            let ours_live = cgws.iter().filter(|c| ours(c.tags.as_deref()) && live(c.state())).count()
                + vgws.iter().filter(|v| ours(v.tags.as_deref()) && live(v.state().map(|s| s.as_str()))).count()
                + vpns.iter().filter(|v| ours(v.tags.as_deref()) && live(v.state().map(|s| s.as_str()))).count();
            (foreign, ours_live)
        })
    }
}

fn config(azure: Option<&Arm>, aws: Option<&Moto>) -> String {
    config_in(Mode::StaticHa, azure, aws)
}

/// The example in `mode` with the named sides on their fakes.
fn config_in(mode: Mode, azure: Option<&Arm>, aws: Option<&Moto>) -> String {
    let mut text = vpnbridge_core::config::example(mode).replace("psk = \"generate\"", "psk = \"env:VPN_PSK\"");
    if let Some(arm) = azure {
        text = text
            .replace(
                "[azure]\n# \"sim\" (default): the embedded simulator. \"azure\": the real Azure Resource Manager.\nbackend = \"sim\"",
                "[azure]\nbackend = \"azure\"",
            )
            .replace(
                "# subscription_id = \"00000000-0000-0000-0000-000000000000\"",
                "subscription_id = \"00000000-0000-0000-0000-000000000001\"",
            )
            .replace("endpoint = \"\"\n\n[aws]", &format!("endpoint = \"{}\"\n\n[aws]", arm.handle.url));
        assert!(text.contains("backend = \"azure\"") && text.contains(&arm.handle.url), "the example changed shape");
    }
    if let Some(moto) = aws {
        text = text
            .replace("# \"sim\" (default): the embedded simulator. \"aws\": the real EC2 API.\nbackend = \"sim\"", "backend = \"aws\"")
            .replace("region = \"ap-northeast-1\"", "region = \"us-east-1\"")
            .replace("vpc-0123456789abcdef0", &moto.vpc_id);
        let last = text.rfind("endpoint = \"\"").unwrap();
        text.replace_range(last..last + "endpoint = \"\"".len(), &format!("endpoint = \"{}\"", moto.server.url));
        assert!(text.contains("backend = \"aws\""), "the example changed shape");
    }
    text
}

/// The environment of a run: credentials for the fakes, a fast simulator for the
/// simulated side, the PSK, and every log at its most verbose.
fn env(s: &Scratch) -> Vec<(&'static str, String)> {
    let latency = s.dir.join("latency.json");
    std::fs::write(&latency, "{\"aws_customer_gateway\":0,\"aws_vpn_gateway\":0,\"aws_vgw_attach\":0,\"aws_vpc_route\":0,\"aws_vpn_connection\":0,\"aws_vpn_connection_route\":0,\"azure_public_ip\":0,\"azure_vpn_gateway\":0,\"azure_local_network_gateway\":0,\"azure_connection\":0,\"aws_customer_gateway_delete\":0,\"aws_vpn_gateway_delete\":0,\"aws_vgw_detach\":0,\"aws_vpc_route_delete\":0,\"aws_vpn_connection_delete\":0,\"aws_vpn_connection_route_delete\":0,\"azure_public_ip_delete\":0,\"azure_vpn_gateway_delete\":0,\"azure_local_network_gateway_delete\":0,\"azure_connection_delete\":0}").unwrap();
    vec![
        ("VPNBRIDGE_AZURE_TOKEN", "fake-token".to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("VPNBRIDGE_SIM_LATENCY", latency.display().to_string()),
        ("VPNBRIDGE_TUNNEL_WAIT", "0".to_owned()),
        ("VPN_PSK", CANARY.to_owned()),
        ("RUST_LOG", "trace".to_owned()),
    ]
}

fn run(s: &Scratch, args: &[&str], env: &[(&'static str, String)], transcript: &mut String) -> Run {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = s.run(args, &env);
    transcript.push_str(&r.stdout());
    transcript.push_str(&r.stderr());
    r
}

/// apply (confirmation refused without a terminal), apply --yes, apply again (no
/// change), destroy --yes; nothing of the key in any output at trace level.
fn lifecycle(s: &Scratch, env: &[(&'static str, String)], writes: impl Fn() -> usize) {
    let mut transcript = String::new();
    let r = run(s, &["apply"], env, &mut transcript);
    assert_eq!(r.code(), 5, "a real cloud needs confirmation: {}", r.stderr());
    assert_eq!(writes(), 0, "nothing was written before confirmation");
    let r = run(s, &["apply", "--yes", "-vvv"], env, &mut transcript);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let r = run(s, &["status"], env, &mut transcript);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    // One side real, the other simulated: the control plane is checked, the data
    // plane is reported as not observable (docs/design.md §5).
    let r = run(s, &["verify", "--output", "json"], env, &mut transcript);
    let doc = r.json();
    assert_eq!(doc["data_plane"]["observable"], false, "{doc}");
    assert!(r.code() == 6 || r.code() == 7, "{}", r.stdout());
    let r = run(s, &["apply", "--yes", "--output", "json"], env, &mut transcript);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let doc = r.json();
    assert_eq!(doc["result"], "no_changes", "{doc}");
    assert_eq!(doc["calls"]["azure"]["mutations"], 0);
    assert_eq!(doc["calls"]["aws"]["mutations"], 0);
    let before = writes();
    let r = run(s, &["plan", "--detailed-exitcode"], env, &mut transcript);
    assert_eq!(r.code(), 0, "{}", r.stdout());
    assert_eq!(writes(), before, "plan writes nothing");
    let r = run(s, &["destroy", "--yes", "-vvv"], env, &mut transcript);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let r = run(s, &["plan", "--destroy", "--detailed-exitcode"], env, &mut transcript);
    assert_eq!(r.code(), 0, "nothing of ours is left: {}", r.stdout());
    assert!(transcript.contains("TRACE") || transcript.contains("DEBUG"), "the runs logged at trace level");
    assert!(!transcript.contains(CANARY), "the PSK leaked into the output");
}

#[test]
fn azure_adapter_on_the_arm_fake() {
    let arm = Arm::start();
    let s = Scratch::new("real-azure");
    s.write_config(&config(Some(&arm), None));
    lifecycle(&s, &env(&s), || arm.writes());
    // Every write went through ARM's REST shapes, and each create was sent once.
    let puts: Vec<String> = arm.handle.requests().iter().filter(|r| r.method == "PUT").map(|r| r.path.clone()).collect();
    let gateway_puts = puts.iter().filter(|p| p.contains("/virtualNetworkGateways/")).count();
    assert_eq!(gateway_puts, 1, "{puts:?}");
}

#[test]
fn aws_adapter_on_moto() {
    let moto = Moto::start();
    let s = Scratch::new("real-aws");
    s.write_config(&config(None, Some(&moto)));
    let (foreign_before, ours) = moto.census();
    assert_eq!(ours, 0);
    assert!(foreign_before.iter().all(|f| f.ends_with("available")), "{foreign_before:?}");
    // moto keeps no request count we can read here; the adapter's own counts are in the JSON.
    lifecycle(&s, &env(&s), || 0);
    let (foreign_after, ours) = moto.census();
    assert_eq!(ours, 0, "moto holds none of our resources after destroy");
    assert_eq!(foreign_after, foreign_before, "someone else's CGW and VGW are untouched");
}

#[test]
fn both_adapters_on_both_fakes() {
    let arm = Arm::start();
    let moto = Moto::start();
    let s = Scratch::new("real-both");
    s.write_config(&config(Some(&arm), Some(&moto)));
    let env = env(&s);
    let mut transcript = String::new();
    let r = run(&s, &["apply", "--yes", "--output", "json"], &env, &mut transcript);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let doc = r.json();
    assert_eq!(doc["result"], "applied");
    assert_eq!(doc["simulated"]["azure"], false);
    assert_eq!(doc["simulated"]["aws"], false);
    for t in doc["tunnels"].as_array().unwrap() {
        assert!(t["problems"].as_array().unwrap().is_empty(), "the pairing holds across both real adapters: {t}");
    }
    // Without probe VMs the data plane of real clouds is not observable.
    let r = run(&s, &["verify"], &env, &mut transcript);
    assert!(r.code() == 6 || r.code() == 7, "{}", r.stdout());
    let r = run(&s, &["destroy", "--yes"], &env, &mut transcript);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(!transcript.contains(CANARY));
}

/// destroy, after which a destroy plan finds nothing of ours; no key in any output.
fn destroyed(s: &Scratch, env: &[(&'static str, String)], mut transcript: String) {
    let r = run(s, &["destroy", "--yes"], env, &mut transcript);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let r = run(s, &["plan", "--destroy", "--detailed-exitcode"], env, &mut transcript);
    assert_eq!(r.code(), 0, "nothing of ours is left: {}", r.stdout());
    assert!(!transcript.contains(CANARY), "the PSK leaked into the output");
}

/// bgp-ha through the Azure adapter on the ARM fake (AWS simulated): the gateway is
/// created once with BGP on (no second PUT to turn it on), the four LNGs carry a BGP
/// peer and no prefixes, the four Connections BGP with an address for both instances;
/// then the same life cycle as static-ha.
#[test]
fn bgp_ha_azure_adapter_on_the_arm_fake() {
    let arm = Arm::start();
    let s = Scratch::new("bgp-azure");
    s.write_config(&config_in(Mode::BgpHa, Some(&arm), None));
    let env = env(&s);
    let mut transcript = String::new();
    let r = run(&s, &["apply", "--yes", "--output", "json"], &env, &mut transcript);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let puts: Vec<(String, serde_json::Value)> =
        arm.handle.requests().iter().filter(|r| r.method == "PUT").map(|r| (r.path.clone(), r.body.clone().unwrap_or_default())).collect();
    let gateway: Vec<_> = puts.iter().filter(|(p, _)| p.contains("/virtualNetworkGateways/")).collect();
    assert_eq!(gateway.len(), 1, "BGP is on from the create: {puts:?}");
    let body = gateway[0].1.to_string();
    assert!(body.contains("\"enableBgp\":true") && body.contains("169.254.21.6"), "{body}");
    let lngs: Vec<_> = puts.iter().filter(|(p, _)| p.contains("/localNetworkGateways/")).collect();
    assert_eq!(lngs.len(), 4, "{lngs:?}");
    for (_, doc) in &lngs {
        let props = &doc["properties"];
        assert_eq!(props["bgpSettings"]["asn"], 64512, "{doc}");
        assert!(props["bgpSettings"]["bgpPeeringAddress"].as_str().unwrap().starts_with("169.254.2"), "{doc}");
        assert_eq!(props["localNetworkAddressSpace"]["addressPrefixes"], serde_json::json!([]), "{doc}");
    }
    let connections: Vec<_> = puts.iter().filter(|(p, _)| p.contains("/connections/") && !p.ends_with("/sharedkey")).collect();
    assert_eq!(connections.len(), 4, "{connections:?}");
    for (_, doc) in &connections {
        assert_eq!(doc["properties"]["enableBgp"], true, "{doc}");
        assert_eq!(doc["properties"]["gatewayCustomBgpIpAddresses"].as_array().map(Vec::len), Some(2), "{doc}");
    }
    let r = run(&s, &["status", "--output", "json"], &env, &mut transcript);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let again = run(&s, &["apply", "--yes", "--output", "json"], &env, &mut transcript);
    assert_eq!(again.json()["calls"]["azure"]["mutations"], 0, "{}", again.stdout());
    destroyed(&s, &env, transcript);
}

/// bgp-ha through the AWS adapter on moto (Azure simulated): two dynamic VPN
/// connections with both tunnels pinned, route propagation instead of a static route,
/// and after destroy no table propagates a VGW of ours and someone else's resources
/// are untouched.
#[test]
fn bgp_ha_aws_adapter_on_moto() {
    let moto = Moto::start();
    let s = Scratch::new("bgp-aws");
    s.write_config(&config_in(Mode::BgpHa, None, Some(&moto)));
    let (foreign_before, _) = moto.census();
    let env = env(&s);
    let mut transcript = String::new();
    let r = run(&s, &["apply", "--yes", "--output", "json"], &env, &mut transcript);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let (vpns, tables) = moto.rt.block_on(async {
        let ec2 = moto.server.client();
        let vpns = ec2.describe_vpn_connections().send().await.unwrap().vpn_connections.unwrap_or_default();
        let tables = ec2.describe_route_tables().send().await.unwrap().route_tables.unwrap_or_default();
        (vpns, tables)
    });
    let live: Vec<_> = vpns.iter().filter(|v| v.state().map(|s| s.as_str()) == Some("available")).collect();
    assert_eq!(live.len(), 2);
    for v in &live {
        assert_eq!(v.options().and_then(|o| o.static_routes_only()), Some(false), "dynamic: {v:?}");
        assert!(v.routes().is_empty(), "no VPN connection routes in bgp-ha: {v:?}");
        let inside: Vec<_> = v.options().unwrap().tunnel_options().iter().filter_map(|t| t.tunnel_inside_cidr()).collect();
        assert_eq!(inside.len(), 2, "{v:?}");
        assert!(inside.iter().all(|c| c.starts_with("169.254.21.") || c.starts_with("169.254.22.")), "{inside:?}");
    }
    let vgw = live[0].vpn_gateway_id().unwrap();
    let table = tables.iter().find(|t| t.vpc_id() == Some(moto.vpc_id.as_str())).unwrap();
    assert!(table.propagating_vgws().iter().any(|p| p.gateway_id() == Some(vgw)), "{table:?}");
    assert!(
        table.routes().iter().all(|r| r.gateway_id() != Some(vgw) || r.origin().map(|o| o.as_str()) != Some("CreateRoute")),
        "{table:?}"
    );
    let again = run(&s, &["apply", "--yes", "--output", "json"], &env, &mut transcript);
    assert_eq!(again.json()["calls"]["aws"]["mutations"], 0, "{}", again.stdout());
    let r = run(&s, &["destroy", "--yes"], &env, &mut transcript);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let tables =
        moto.rt.block_on(async { moto.server.client().describe_route_tables().send().await.unwrap().route_tables.unwrap_or_default() });
    for t in &tables {
        assert!(t.propagating_vgws().iter().all(|p| p.gateway_id() != Some(vgw)), "propagation of our VGW is left: {t:?}");
    }
    let (foreign_after, ours) = moto.census();
    assert_eq!(ours, 0, "moto holds none of our resources after destroy");
    assert_eq!(foreign_after, foreign_before);
    assert!(!transcript.contains(CANARY));
}

/// bgp-ha with both real adapters on both fakes: apply pairs every tunnel, verify
/// checks the control plane (the data plane of real clouds is not observable without
/// test VMs), destroy leaves nothing.
#[test]
fn bgp_ha_both_adapters_on_both_fakes() {
    let arm = Arm::start();
    let moto = Moto::start();
    let s = Scratch::new("bgp-both");
    s.write_config(&config_in(Mode::BgpHa, Some(&arm), Some(&moto)));
    let env = env(&s);
    let mut transcript = String::new();
    let r = run(&s, &["apply", "--yes", "--output", "json"], &env, &mut transcript);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let doc = r.json();
    assert_eq!(doc["tunnels"].as_array().map(Vec::len), Some(4), "{doc}");
    for t in doc["tunnels"].as_array().unwrap() {
        assert!(t["problems"].as_array().unwrap().is_empty(), "the pairing holds across both real adapters: {t}");
    }
    let r = run(&s, &["verify", "--output", "json"], &env, &mut transcript);
    assert!(r.code() == 6 || r.code() == 7, "{}", r.stdout());
    let doc = r.json();
    for t in doc["tunnels"].as_array().unwrap() {
        assert!(t["bgp"].is_object(), "verify reports BGP for each tunnel: {t}");
    }
    destroyed(&s, &env, transcript);
}

/// Issue 11 on real Azure: the deployment's resources are found wherever their tag is
/// in the subscription, and its gateway in the other subscriptions the identity sees. A
/// changed resource group, location or subscription is refused (exit 4, no write) with
/// where the stack is; a role on the resource group only is warned about.
#[test]
fn a_moved_azure_scope_is_refused_on_real_azure() {
    let arm = Arm::start();
    let space = || vec!["10.1.0.0/16".parse().unwrap()];
    arm.handle.add_vnet("rg-vpn2", "vnet-hub", space(), "10.1.255.0/27".parse().unwrap()).unwrap();
    let other = "00000000-0000-0000-0000-000000000002";
    arm.handle.add_vnet_in(other, "rg-vpn", "vnet-hub", space(), "10.1.255.0/27".parse().unwrap()).unwrap();
    let s = Scratch::new("real-azure-moved");
    let text = config(Some(&arm), None);
    s.write_config(&text);
    let env = env(&s);
    let mut transcript = String::new();
    let r = run(&s, &["apply", "--yes"], &env, &mut transcript);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let written = arm.writes();
    for (from, to, place) in [
        ("resource_group = \"rg-vpn\"", "resource_group = \"rg-vpn2\"", "resource group \"rg-vpn\""),
        ("location = \"japaneast\"", "location = \"japanwest\"", "location \"japaneast\""),
        (
            "subscription_id = \"00000000-0000-0000-0000-000000000001\"",
            "subscription_id = \"00000000-0000-0000-0000-000000000002\"",
            "of subscription 00000000-0000-0000-0000-000000000001",
        ),
    ] {
        assert!(text.contains(from), "the example changed shape: {from}");
        s.write_config(&text.replace(from, to));
        for args in [&["plan"][..], &["apply", "--yes"], &["destroy", "--yes"]] {
            let r = run(&s, args, &env, &mut transcript);
            let said = format!("{}{}", r.stdout(), r.stderr());
            assert_eq!(r.code(), 4, "{args:?} after {to}: {said}");
            assert!(said.contains("VPN gateway") && said.contains(place), "{args:?} after {to} names the gateway and where it is: {said}");
        }
        assert_eq!(arm.writes(), written, "nothing was written after {to}");
    }
    // A role assigned on the resource group only: the subscription cannot be listed.
    // The old place is then not seen, and the user is told so.
    arm.handle.faults(|f| f.forbid_subscription_lists = true);
    s.write_config(&text.replace("resource_group = \"rg-vpn\"", "resource_group = \"rg-vpn2\""));
    let r = run(&s, &["plan"], &env, &mut transcript);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(r.stderr().contains("cannot list the subscription"), "{}", r.stderr());
    arm.handle.faults(|f| f.forbid_subscription_lists = false);
    s.write_config(&text);
    let r = run(&s, &["destroy", "--yes"], &env, &mut transcript);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let left = arm.handle.cloud().with_world(|w| {
        w.azure.public_ips.len() + w.azure.gateways.len() + w.azure.local_network_gateways.len() + w.azure.connections.len()
    });
    assert_eq!(left, 0, "nothing is left in either resource group");
    assert!(!transcript.contains(CANARY));
}

/// Both fakes with the Azure test VM `vm`, an EC2 test instance whose pings all reply,
/// the tunnels' far ends scripted up, `[probe]` naming both, and the deployment applied.
struct ProbeRig {
    arm: Arm,
    moto: Moto,
    instance: String,
    s: Scratch,
    env: Vec<(&'static str, String)>,
    transcript: String,
}

impl ProbeRig {
    fn applied(name: &str, vm: TestVmSpec) -> Self {
        let arm = Arm::start();
        arm.handle.add_test_vm(vm);
        arm.handle.script_peer_up(true);
        let moto = Moto::start_with(&[("VPNBRIDGE_MOTO_TELEMETRY_UP", "1")]);
        let instance = moto.probe_instance("all");
        let s = Scratch::new(name);
        s.write_config(&format!("{}\n[probe]\nazure_vm = \"vm-test\"\naws_instance = \"{instance}\"\n", config(Some(&arm), Some(&moto))));
        let mut env = env(&s);
        env.push(("VPNBRIDGE_PROBE_POLL_MS", "100".to_owned()));
        env.retain(|(k, _)| *k != "RUST_LOG");
        let mut transcript = String::new();
        let r = run(&s, &["apply", "--yes"], &env, &mut transcript);
        assert_eq!(r.code(), 0, "{}", r.stderr());
        Self { arm, moto, instance, s, env, transcript }
    }
}

/// `verify` through the users' test VMs on both fakes: the Azure VM's ping runs with
/// Run Command on the ARM fake, the EC2 instance's with SSM on moto; the tunnels' far
/// ends are scripted up on both (no data plane behind either fake).
#[test]
fn verify_through_probe_vms_on_both_fakes() {
    let ProbeRig { arm, moto, instance, s, env, mut transcript } =
        ProbeRig::applied("real-probe", TestVmSpec::linux("vm-test", std::net::Ipv4Addr::new(10, 1, 0, 4)));

    let r = run(&s, &["verify", "--output", "json"], &env, &mut transcript);
    let doc = r.json();
    assert_eq!(r.code(), 0, "{doc:#}");
    assert_eq!(doc["data_plane"]["observable"], true);
    for (dir, from, to) in [("azure_to_aws", "10.1.0.4", "10.2.0."), ("aws_to_azure", "10.2.0.", "10.1.0.4")] {
        let p = &doc["ping"][dir];
        assert!(p["from"].as_str().unwrap().starts_with(from) && p["to"].as_str().unwrap().starts_with(to), "{p}");
        assert_eq!((p["replied"].as_bool(), p["stats"]["sent"].as_u64(), p["stats"]["received"].as_u64()), (Some(true), Some(5), Some(5)));
        assert!(p["stats"]["rtt_ms"]["avg"].as_f64().unwrap() > 0.0, "{p}");
    }
    let r = run(&s, &["verify"], &env, &mut transcript);
    assert_eq!(r.code(), 0, "{}", r.stdout());
    assert!(r.stdout().contains("VPN verified") && r.stdout().contains("5 of 5 replied"), "{}", r.stdout());
    println!("{}", r.stdout());

    // The scripted pings lose everything: a problem (6), named per direction.
    arm.handle.update_test_vm("vm-test", |v| v.ping = PingScript::TotalLoss);
    moto.tag(&instance, "vpnbridge-fake:ping", "none");
    let r = run(&s, &["verify", "--output", "json"], &env, &mut transcript);
    let doc = r.json();
    assert_eq!(r.code(), 6, "{doc:#}");
    assert_eq!(doc["ping"]["azure_to_aws"]["stats"]["received"], 0);
    let diagnoses = doc["diagnoses"].to_string();
    assert!(diagnoses.contains("gets no reply") && diagnoses.contains("none came back"), "{diagnoses}");

    // The command cannot run: its own outcome (9), never "connectivity lost".
    arm.handle.update_test_vm("vm-test", |v| v.ping = PingScript::CommandFails);
    let r = run(&s, &["verify"], &env, &mut transcript);
    assert_eq!(r.code(), 9, "{}", r.stdout());
    assert!(r.stdout().contains("the probe could not run") && !r.stdout().contains("NO REPLY"), "{}", r.stdout());

    // An agent offline: the preflight stops before any ping (4), naming the fix.
    moto.tag(&instance, "vpnbridge-fake:ssm", "offline");
    let r = run(&s, &["verify"], &env, &mut transcript);
    assert_eq!(r.code(), 4, "{}", r.stderr());
    assert!(r.stderr().contains(&instance) && r.stderr().contains("AmazonSSMManagedInstanceCore"), "{}", r.stderr());

    let r = run(&s, &["destroy", "--yes"], &env, &mut transcript);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(!transcript.contains(CANARY));
}

/// `drill --yes` through the test VMs on both fakes: one timestamped ping per direction
/// runs across each outage (the Azure VM's series scripted with a 30 s gap), the
/// Connection is deleted on the ARM fake and put back, and the table shows it.
#[test]
fn drill_through_probe_vms_on_both_fakes() {
    let vm = TestVmSpec { ping: PingScript::PartialLoss, ..TestVmSpec::linux("vm-test", std::net::Ipv4Addr::new(10, 1, 0, 4)) };
    let ProbeRig { arm, moto: _moto, instance: _, s, env, mut transcript } = ProbeRig::applied("real-probe-drill", vm);
    let r = run(&s, &["drill", "--yes", "--tunnel", "1"], &env, &mut transcript);
    println!("{}{}", r.stderr(), r.stdout());
    assert_eq!(r.code(), 0, "{}{}", r.stderr(), r.stdout());
    assert!(r.stdout().contains("PASSED: traffic survived") && r.stdout().contains("30s"), "{}", r.stdout());
    // One Run Command per direction for the whole outage, not one per echo.
    let series = arm.handle.requests().iter().filter(|q| q.method == "POST" && q.path.ends_with("/runCommand")).count();
    assert!(series <= 6, "verify before and after, the series and one ping after DPD: {series} Run Commands");
    let r = run(&s, &["destroy", "--yes"], &env, &mut transcript);
    assert_eq!(r.code(), 0, "{}", r.stderr());
}
