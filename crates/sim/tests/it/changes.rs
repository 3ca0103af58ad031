//! Every config edit has a defined outcome (issue "Every config change has a defined
//! outcome"): for each key of `vpnbridge.toml`, build the example deployment, change
//! that key, and check what the plan does with it. A key without an entry fails.

use std::path::Path;
use std::sync::Arc;

use vpnbridge_core::config::Config;
use vpnbridge_core::config::{self, schema};
use vpnbridge_core::endpoint::{Aws, Azure, VpnEndpoint};
use vpnbridge_core::exec::{ExecSettings, Executor};
use vpnbridge_core::model::{Owner, TAG_DEPLOYMENT};
use vpnbridge_core::plan::{self, Action, Observed};
use vpnbridge_core::probe::Probe;
use vpnbridge_sim::{AwsTarget, AzureTarget, ProbeHostSpec, SimAws, SimAzure, SimCloud, SimProbe, VnetSpec, VpcSpec};

/// What an edit of one key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The plan changes the deployment where it stands; applying it converges, with
    /// nothing of the old state left behind.
    InPlace,
    /// Refused before any call (exit 4), saying what to do instead; the message names
    /// this text.
    Refused(&'static str),
    /// Refused by validation (exit 3): the value is not valid for what exists.
    Invalid,
    /// Nothing to change: the deployment already satisfies the new value (it says how
    /// keys are made for tunnels still to come, or how to reach a cloud's API).
    Satisfied,
    /// Switches a side between the simulator and the real cloud: another cloud
    /// entirely, not a change of this one (not run here: it needs credentials).
    SwitchesCloud,
    /// In place, and no cloud resource of ours changes: the plan is empty and the
    /// next `verify` pings through the newly named test VMs.
    ProbeVms,
}

/// The example's `[probe]` lines, commented out.
const PROBE_COMMENTED: &str = "# [probe]\n# azure_vm = \"vm-test\"                # a name in [azure] resource_group, or a full resource id\n# aws_instance = \"i-0123456789abcdef0\"";

/// Key, the line that replaces the example's line for it (or is added), the outcome.
const TABLE: &[(&str, &str, &str, Outcome)] = &[
    ("name", "name = \"azure-aws\"", "name = \"renamed\"", Outcome::Refused("belongs to vpnbridge deployment \"azure-aws\"")),
    ("mode", "mode = \"static-ha\"", "mode = \"bgp-ha\"", Outcome::Invalid),
    ("tunnels_per_connection", "tunnels_per_connection = 1", "tunnels_per_connection = 2", Outcome::InPlace),
    ("psk", "psk = \"env:CHANGES_PSK\"", "psk = \"env:CHANGES_PSK_NEW\"", Outcome::InPlace),
    ("azure.backend", "backend = \"sim\"", "backend = \"azure\"", Outcome::SwitchesCloud),
    (
        "azure.subscription_id",
        "resource_group = \"rg-vpn\"",
        "subscription_id = \"11111111-2222-4333-8444-555555555555\"\nresource_group = \"rg-vpn\"",
        Outcome::Refused("subscription"),
    ),
    ("azure.resource_group", "resource_group = \"rg-vpn\"", "resource_group = \"rg-vpn2\"", Outcome::Refused("resource group \"rg-vpn\"")),
    ("azure.location", "location = \"japaneast\"", "location = \"japanwest\"", Outcome::Refused("location \"japaneast\"")),
    ("azure.vnet", "vnet = \"vnet-hub\"", "vnet = \"vnet-hub2\"", Outcome::Refused("VNet \"vnet-hub\"")),
    (
        "azure.address_space",
        "address_space = [\"10.1.0.0/16\"]",
        "address_space = [\"10.1.0.0/16\", \"10.3.0.0/16\"]",
        Outcome::Refused("azure.address_space"),
    ),
    (
        "azure.gateway_subnet",
        "gateway_subnet = \"10.1.255.0/27\"",
        "gateway_subnet = \"10.1.254.0/27\"",
        Outcome::Refused("azure.gateway_subnet"),
    ),
    ("azure.gateway_sku", "gateway_sku = \"VpnGw1AZ\"", "gateway_sku = \"VpnGw2AZ\"", Outcome::InPlace),
    ("azure.gateway_generation", "gateway_generation = \"Generation1\"", "gateway_generation = \"Generation2\"", Outcome::Invalid),
    ("azure.vpn_type", "vpn_type = \"RouteBased\"", "vpn_type = \"PolicyBased\"", Outcome::Invalid),
    ("azure.asn", "asn = 65000", "asn = 65010", Outcome::InPlace),
    ("azure.endpoint", "endpoint = \"\"", "endpoint = \"https://management.azure.com\"", Outcome::Satisfied),
    ("aws.backend", "backend = \"sim\"", "backend = \"aws\"", Outcome::SwitchesCloud),
    ("aws.region", "region = \"ap-northeast-1\"", "region = \"ap-northeast-3\"", Outcome::Refused("region ap-northeast-1")),
    (
        "aws.vpc_id",
        "vpc_id = \"vpc-0123456789abcdef0\"",
        "vpc_id = \"vpc-0fedcba9876543210\"",
        Outcome::Refused("attached to VPC vpc-0123456789abcdef0"),
    ),
    ("aws.cidrs", "cidrs = [\"10.2.0.0/16\"]", "cidrs = [\"10.2.0.0/16\", \"10.4.0.0/16\"]", Outcome::Refused("aws.cidrs")),
    ("aws.route_tables", "route_tables = []", "route_tables = [\"SECOND_TABLE\"]", Outcome::InPlace),
    ("aws.amazon_asn", "amazon_asn = 64512", "amazon_asn = 64513", Outcome::Refused("aws.amazon_asn")),
    (
        "aws.tunnel_inside_cidrs",
        "tunnel_inside_cidrs = []",
        "tunnel_inside_cidrs = [\"169.254.30.0/30\", \"169.254.31.0/30\"]",
        Outcome::InPlace,
    ),
    ("aws.endpoint", "endpoint = \"\"", "endpoint = \"https://ec2.ap-northeast-1.amazonaws.com\"", Outcome::Satisfied),
    ("probe.azure_vm", PROBE_COMMENTED, "[probe]\nazure_vm = \"vm-probe-2\"\naws_instance = \"i-0123456789abcdef0\"", Outcome::ProbeVms),
    ("probe.aws_instance", PROBE_COMMENTED, "[probe]\nazure_vm = \"vm-test\"\naws_instance = \"i-0fedcba9876543210\"", Outcome::ProbeVms),
];

fn env(k: &str) -> Option<String> {
    match k {
        "CHANGES_PSK" => Some("Changes.Key_0001".into()),
        "CHANGES_PSK_NEW" => Some("Changes.Key_0002".into()),
        _ => None,
    }
}

fn baseline() -> String {
    config::EXAMPLE.replace("psk = \"generate\"", "psk = \"env:CHANGES_PSK\"")
}

fn parse(text: &str) -> Result<Config, config::ConfigErrors> {
    config::parse(text, Path::new("changes.toml"), &env).map(|l| l.config)
}

fn endpoints(cloud: &SimCloud, config: &Config) -> (Arc<dyn VpnEndpoint<Aws>>, Arc<dyn VpnEndpoint<Azure>>) {
    (
        Arc::new(SimAws::new(cloud.clone(), AwsTarget::from_config(config))),
        Arc::new(SimAzure::new(cloud.clone(), AzureTarget::from_config(config))),
    )
}

async fn observe(cloud: &SimCloud, config: &Config) -> Observed {
    let (aws, azure) = endpoints(cloud, config);
    vpnbridge_core::exec::observe(&*aws, &*azure, &Owner::new(&config.name), &ExecSettings::default()).await.unwrap()
}

/// Opens the config's world (the simulator creates the declared VNet and VPC the
/// first time, as the CLI does) and applies it to the end.
async fn apply(cloud: &SimCloud, config: &Config) {
    cloud.ensure_prerequisites(&VnetSpec::from_config(config), &VpcSpec::from_config(config)).unwrap();
    let (aws, azure) = endpoints(cloud, config);
    let observed = observe(cloud, config).await;
    let plan = plan::plan_apply(config, &observed).unwrap();
    let report = Executor::new(aws, azure, Owner::new(&config.name), ExecSettings::default()).run(&plan, |_| {}).await;
    assert!(report.succeeded(), "{plan}\n{report:?}");
}

/// Live resources tagged for any deployment, by kind: nothing may be left over.
fn live_counts(cloud: &SimCloud) -> [usize; 4] {
    cloud.with_world(|w| {
        let tagged = |t: &vpnbridge_core::model::Tags| t.contains_key(TAG_DEPLOYMENT);
        [
            w.azure.gateways.values().filter(|g| tagged(&g.tags)).count(),
            w.aws.vpn_gateways.values().filter(|g| tagged(&g.tags) && !g.phase.state.is_gone()).count(),
            w.aws.customer_gateways.values().filter(|c| tagged(&c.tags) && !c.phase.state.is_gone()).count(),
            w.azure.connections.values().filter(|c| tagged(&c.tags)).count(),
        ]
    })
}

#[test]
fn every_key_has_an_entry() {
    let keys: Vec<String> = schema::fields().collect();
    for k in &keys {
        assert!(TABLE.iter().any(|(key, ..)| key == k), "config key {k} has no entry in the change table: decide its outcome");
    }
    assert_eq!(TABLE.len(), keys.len(), "an entry names a key the config does not have");
}

#[tokio::test(start_paused = true)]
async fn every_config_edit_after_an_apply_has_a_defined_outcome() {
    for (key, old, new, outcome) in TABLE {
        if *outcome == Outcome::SwitchesCloud {
            continue;
        }
        let base = parse(&baseline()).unwrap();
        let cloud = SimCloud::in_memory();
        apply(&cloud, &base).await;
        let before = live_counts(&cloud);
        // A second route table to move the routes to.
        let second = cloud.with_world_mut(|w| {
            let main = w.aws.route_tables.values().next().unwrap().clone();
            let id = "rtb-0000000000000feed".to_owned();
            let routes = main.routes.iter().filter(|r| r.target == "local").cloned().collect();
            w.aws.route_tables.insert(
                id.clone(),
                vpnbridge_sim::world::AwsRouteTable {
                    id: id.clone(),
                    vpc_id: main.vpc_id.clone(),
                    main: false,
                    routes,
                    propagating_vgws: vec![],
                },
            );
            id
        });
        let edited = edit(&baseline(), key, old, &new.replace("SECOND_TABLE", &second));
        let config = match (parse(&edited), outcome) {
            (Err(_), Outcome::Invalid) => continue,
            (Err(e), _) => panic!("{key}: the edit does not validate: {e}"),
            (Ok(c), _) => c,
        };
        cloud.ensure_prerequisites(&VnetSpec::from_config(&config), &VpcSpec::from_config(&config)).unwrap();
        let planned = match plan::check_supported(&config) {
            Err(e) => Err(e),
            Ok(()) => plan::plan_apply(&config, &observe(&cloud, &config).await),
        };
        match outcome {
            Outcome::Invalid => {
                let e = planned.expect_err(&format!("{key}: accepted"));
                assert!(!e.0.is_empty(), "{key}");
            }
            Outcome::Refused(says) => {
                let e = planned.expect_err(&format!("{key}: planned instead of refused"));
                let text = e.to_string();
                assert!(text.contains(says), "{key}: the refusal does not say {says:?}: {text}");
                // The destroy plan of the edited config refuses too, or finds the
                // deployment where it is: never "nothing to destroy" while it runs.
                let observed = observe(&cloud, &config).await;
                if let Ok(p) = plan::plan_destroy(&config, &observed)
                    && *key != "name"
                {
                    // And a destroy that goes ahead removes all of it, the routes
                    // it added included (wherever they are).
                    assert!(!p.is_empty(), "{key}: destroy would forget the deployment");
                    let (aws, azure) = endpoints(&cloud, &config);
                    let report = Executor::new(aws, azure, Owner::new(&config.name), ExecSettings::default()).run(&p, |_| {}).await;
                    assert!(report.succeeded(), "{key}: {p}\n{report:?}");
                    assert_eq!(live_counts(&cloud), [0; 4], "{key}: destroy left resources behind");
                    let routes: Vec<String> = cloud.with_world(|w| {
                        w.aws
                            .route_tables
                            .values()
                            .flat_map(|t| &t.routes)
                            .filter(|r| r.target.starts_with("vgw-"))
                            .map(|r| format!("{} -> {}", r.destination, r.target))
                            .collect()
                    });
                    assert!(routes.is_empty(), "{key}: destroy left routes to the VGW behind: {routes:?}");
                }
            }
            Outcome::Satisfied => {
                let p = planned.unwrap_or_else(|e| panic!("{key}: {e}"));
                assert!(p.is_empty(), "{key}: {p}");
            }
            Outcome::InPlace => {
                let p = planned.unwrap_or_else(|e| panic!("{key}: {e}"));
                assert!(!p.is_empty(), "{key}: the edit is ignored");
                assert!(
                    p.steps.iter().all(|s| !(s.action == Action::Delete && s.resource_type == plan::ResourceType::VpnGateway)),
                    "{key}: an in-place change deletes a gateway:\n{p}"
                );
                for s in p.steps.iter().filter(|s| {
                    s.action == Action::Modify || (s.action == Action::Delete && s.resource_type != plan::ResourceType::CustomerGateway)
                }) {
                    assert!(s.disruption.is_some(), "{key}: {} {} says nothing of its disruption", s.resource_type, s.name);
                }
                apply(&cloud, &config).await;
                let again = plan::plan_apply(&config, &observe(&cloud, &config).await).unwrap();
                assert!(again.is_empty(), "{key}: did not converge:\n{again}");
                let after = live_counts(&cloud);
                assert_eq!(after[0..2], before[0..2], "{key}: one gateway and one VGW, nothing left behind");
                assert_eq!(after[2], before[2], "{key}: a customer gateway left behind");
            }
            Outcome::ProbeVms => {
                let p = planned.unwrap_or_else(|e| panic!("{key}: {e}"));
                assert!(p.is_empty(), "{key}: naming test VMs changes no resource of ours: {p}");
                cloud.ensure_probe_hosts(&ProbeHostSpec::from_config(&config).expect("a [probe]")).unwrap();
                let probe = SimProbe::for_config(cloud.clone(), &config).unwrap();
                assert!(probe.preflight().await.unwrap().errors.is_empty(), "{key}");
                // IKE negotiation.
                tokio::time::sleep(std::time::Duration::from_secs(120)).await;
                let (aws, azure) = endpoints(&cloud, &config);
                let report = vpnbridge_core::verify::verify(&config, &*aws, &*azure, vpnbridge_core::verify::DataPlane::Probe(&probe))
                    .await
                    .unwrap();
                assert!(report.ping.as_ref().is_some_and(|p| p.both_ways()), "{key}: {:?}", report.diagnoses);
                assert_eq!(live_counts(&cloud), before, "{key}: nothing of ours changed");
            }
            Outcome::SwitchesCloud => unreachable!("skipped above"),
        }
    }
}

/// The config text with `old` replaced by `new` in the key's own table (top level and
/// `[azure]` come before `[aws]`).
fn edit(text: &str, key: &str, old: &str, new: &str) -> String {
    let at = text.find("\n[aws]").expect("an [aws] table");
    let (head, tail) = text.split_at(at);
    let in_tail = key.starts_with("aws.") || key.starts_with("probe.");
    let (part, other) = if in_tail { (tail, head) } else { (head, tail) };
    assert!(part.contains(old), "{key}: the example has no line {old:?}");
    let changed = part.replacen(old, new, 1);
    if in_tail { format!("{other}{changed}") } else { format!("{changed}{other}") }
}

/// `mode` between static-ha and bgp-ha, both ways (4 tunnels): the plan says what each
/// step interrupts, applying it converges with nothing left behind, and the deployment
/// then verifies (every tunnel up, BGP established in bgp-ha, ping both ways).
#[tokio::test(start_paused = true)]
async fn mode_changes_both_ways_converge_and_verify() {
    let four = baseline()
        .replace("tunnels_per_connection = 1", "tunnels_per_connection = 2")
        .replace(PROBE_COMMENTED, "[probe]\nazure_vm = \"vm-test\"\naws_instance = \"i-0123456789abcdef0\"");
    let static_ha = parse(&four).unwrap();
    let bgp_ha = parse(&four.replace("mode = \"static-ha\"", "mode = \"bgp-ha\"")).unwrap();
    let cloud = SimCloud::in_memory();
    apply(&cloud, &static_ha).await;
    cloud.ensure_probe_hosts(&ProbeHostSpec::from_config(&static_ha).expect("a [probe]")).unwrap();
    let before = live_counts(&cloud);
    for (config, bgp) in [(&bgp_ha, true), (&static_ha, false)] {
        let p = plan::plan_apply(config, &observe(&cloud, config).await).unwrap();
        let mode = config.mode;
        assert!(!p.is_empty(), "{mode}: the mode change is ignored");
        for s in p.steps.iter().filter(|s| matches!(s.action, Action::Modify | Action::Delete)) {
            if s.resource_type != plan::ResourceType::CustomerGateway {
                assert!(s.disruption.is_some(), "{mode}: {} {} says nothing of its disruption\n{p}", s.resource_type, s.name);
            }
        }
        apply(&cloud, config).await;
        let again = plan::plan_apply(config, &observe(&cloud, config).await).unwrap();
        assert!(again.is_empty(), "{mode}: did not converge:\n{again}");
        assert_eq!(live_counts(&cloud), before, "{mode}: one of each, nothing left behind");
        let (propagating, static_routes) = cloud.with_world(|w| {
            let t = w.aws.route_tables.values().find(|t| t.main).unwrap();
            (t.propagating_vgws.len(), t.routes.iter().filter(|r| r.target.starts_with("vgw-")).count())
        });
        assert_eq!((propagating, static_routes), if bgp { (1, 0) } else { (0, 1) }, "{mode}");
        // IKE negotiation and BGP.
        let (up, sessions) = verified(&cloud, config, &mode.to_string()).await;
        assert_eq!(up, 4, "{mode}");
        assert_eq!(sessions, if bgp { 4 } else { 0 }, "{mode}");
    }
}

/// After IKE and BGP have had time, `verify` passes (ping both ways through the test
/// VMs); returns the tunnels up and the BGP sessions established at both ends.
async fn verified(cloud: &SimCloud, config: &Config, what: &str) -> (usize, usize) {
    tokio::time::sleep(std::time::Duration::from_secs(120)).await;
    let probe = SimProbe::for_config(cloud.clone(), config).unwrap();
    let (aws, azure) = endpoints(cloud, config);
    let report = vpnbridge_core::verify::verify(config, &*aws, &*azure, vpnbridge_core::verify::DataPlane::Probe(&probe)).await.unwrap();
    assert!(report.is_ok(), "{what}: {:?}", report.diagnoses);
    let established =
        |p: Option<&vpnbridge_core::endpoint::BgpPeer>| p.is_some_and(|p| p.state == vpnbridge_core::endpoint::BgpState::Established);
    let sessions = report
        .tunnels
        .iter()
        .filter(|t| t.bgp.as_ref().is_some_and(|b| established(b.aws.as_ref()) && established(b.azure.as_ref())))
        .count();
    (report.tunnels_up(), sessions)
}

/// In bgp-ha, each in-place edit converges and the deployment verifies afterwards (4
/// tunnels up, 4 BGP sessions established, ping both ways). A new inside CIDR also moves
/// the gateway's custom address, the LNG's peer and the Connection's address, and a new
/// ASN the gateway's BGP settings (every tunnel down while Azure updates it): the wait
/// for each tunnel comes after all of them, never before what brings the tunnel up.
#[tokio::test(start_paused = true)]
async fn bgp_ha_in_place_edits_converge_and_verify() {
    let base = baseline()
        .replace("mode = \"static-ha\"", "mode = \"bgp-ha\"")
        .replace("tunnels_per_connection = 1", "tunnels_per_connection = 2")
        .replace(PROBE_COMMENTED, "[probe]\nazure_vm = \"vm-test\"\naws_instance = \"i-0123456789abcdef0\"");
    let edits: &[(&str, &str, &str)] = &[
        (
            "aws.tunnel_inside_cidrs",
            "tunnel_inside_cidrs = []",
            "tunnel_inside_cidrs = [\"169.254.21.8/30\", \"169.254.22.0/30\", \"169.254.21.4/30\", \"169.254.22.12/30\"]",
        ),
        ("azure.asn", "asn = 65000", "asn = 65001"),
        ("psk", "psk = \"env:CHANGES_PSK\"", "psk = \"env:CHANGES_PSK_NEW\""),
        ("azure.gateway_sku", "gateway_sku = \"VpnGw1AZ\"", "gateway_sku = \"VpnGw2AZ\""),
    ];
    for (key, old, new) in edits {
        let before = parse(&base).unwrap();
        let cloud = SimCloud::in_memory();
        apply(&cloud, &before).await;
        cloud.ensure_probe_hosts(&ProbeHostSpec::from_config(&before).expect("a [probe]")).unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(120)).await;
        let config = parse(&edit(&base, key, old, new)).unwrap_or_else(|e| panic!("{key}: {e}"));
        let p = plan::plan_apply(&config, &observe(&cloud, &config).await).unwrap();
        assert!(!p.is_empty(), "{key}: the edit is ignored");
        for s in p.steps.iter().filter(|s| s.action == Action::Modify) {
            assert!(s.disruption.is_some(), "{key}: {} {} says nothing of its disruption\n{p}", s.resource_type, s.name);
        }
        // `apply` fails if a tunnel it waits for does not come back within its limit.
        apply(&cloud, &config).await;
        let again = plan::plan_apply(&config, &observe(&cloud, &config).await).unwrap();
        assert!(again.is_empty(), "{key}: did not converge:\n{again}");
        let (_, sessions) = verified(&cloud, &config, key).await;
        assert_eq!(sessions, 4, "{key}");
    }
}

/// static-ha with 4 tunnels and its /30s pinned crosswise (connection 1 on bgp-ha's
/// /30s for connection 2 and the other way round), and bgp-ha with its defaults; with
/// `probe_vms`, both name the test VMs.
fn crosswise_mode_change(probe_vms: bool) -> (Config, Config) {
    let mut four = baseline().replace("tunnels_per_connection = 1", "tunnels_per_connection = 2");
    if probe_vms {
        four = four.replace(PROBE_COMMENTED, "[probe]\nazure_vm = \"vm-test\"\naws_instance = \"i-0123456789abcdef0\"");
    }
    let crosswise = edit(
        &four,
        "aws.tunnel_inside_cidrs",
        "tunnel_inside_cidrs = []",
        "tunnel_inside_cidrs = [\"169.254.21.4/30\", \"169.254.22.4/30\", \"169.254.21.0/30\", \"169.254.22.0/30\"]",
    );
    (parse(&crosswise).unwrap(), parse(&four.replace("mode = \"static-ha\"", "mode = \"bgp-ha\"")).unwrap())
}

/// static-ha with its /30s pinned crosswise (connection 1 holds what bgp-ha gives
/// connection 2, and the other way round), then bgp-ha with its defaults: EC2 gives an
/// inside CIDR to one VPN connection per VGW (`InvalidCidr.InUse`), so neither new
/// connection may be created while either old one exists. The plan waits for both
/// deletes; the change converges and verifies.
#[tokio::test(start_paused = true)]
async fn a_mode_change_where_an_old_connection_holds_the_others_inside_cidr_converges() {
    let (static_ha, bgp_ha) = crosswise_mode_change(true);
    let cloud = SimCloud::in_memory();
    apply(&cloud, &static_ha).await;
    cloud.ensure_probe_hosts(&ProbeHostSpec::from_config(&static_ha).expect("a [probe]")).unwrap();
    let p = plan::plan_apply(&bgp_ha, &observe(&cloud, &bgp_ha).await).unwrap();
    let deletes: Vec<usize> = p
        .steps
        .iter()
        .filter(|s| s.action == Action::Delete && s.resource_type == plan::ResourceType::VpnConnection)
        .map(|s| s.id)
        .collect();
    assert_eq!(deletes.len(), 2, "{p}");
    for s in p.steps.iter().filter(|s| s.action == Action::Create && s.resource_type == plan::ResourceType::VpnConnection) {
        assert!(deletes.iter().all(|d| s.depends_on.contains(d)), "{} waits for both old VPN connections:\n{p}", s.name);
    }
    apply(&cloud, &bgp_ha).await;
    let again = plan::plan_apply(&bgp_ha, &observe(&cloud, &bgp_ha).await).unwrap();
    assert!(again.is_empty(), "did not converge:\n{again}");
    let (up, sessions) = verified(&cloud, &bgp_ha, "crosswise").await;
    assert_eq!((up, sessions), (4, 4));
}

/// The same mode change interrupted after both old VPN connections' deletes were
/// accepted: the next plan waits for both before it creates either new one (each old
/// one still holds its /30s until it is gone).
#[tokio::test(start_paused = true)]
async fn a_mode_change_resumed_while_the_old_connections_are_deleting_waits_for_both() {
    let (static_ha, bgp_ha) = crosswise_mode_change(false);
    let cloud = SimCloud::in_memory();
    apply(&cloud, &static_ha).await;
    cloud.with_world_mut(|w| {
        let ids: Vec<String> = w.aws.vpn_connections.keys().cloned().collect();
        for id in ids {
            w.delete_vpn_connection(&id).unwrap();
        }
    });
    let p = plan::plan_apply(&bgp_ha, &observe(&cloud, &bgp_ha).await).unwrap();
    let waits: Vec<usize> =
        p.steps.iter().filter(|s| s.action == Action::Wait && s.resource_type == plan::ResourceType::VpnConnection).map(|s| s.id).collect();
    assert_eq!(waits.len(), 2, "{p}");
    for s in p.steps.iter().filter(|s| s.action == Action::Create && s.resource_type == plan::ResourceType::VpnConnection) {
        assert!(waits.iter().all(|w| s.depends_on.contains(w)), "{} waits for both old VPN connections:\n{p}", s.name);
    }
    apply(&cloud, &bgp_ha).await;
    let again = plan::plan_apply(&bgp_ha, &observe(&cloud, &bgp_ha).await).unwrap();
    assert!(again.is_empty(), "did not converge:\n{again}");
}

/// Someone else's VPN connection on this deployment's VGW: EC2 deletes no VGW with a
/// VPN connection (`IncorrectState`), so destroy is refused before any call, naming it
/// and the fix, instead of failing at the end with the rest already deleted.
#[tokio::test(start_paused = true)]
async fn destroy_is_refused_up_front_while_a_stranger_uses_our_vgw() {
    let config = parse(&baseline()).unwrap();
    let cloud = SimCloud::in_memory();
    apply(&cloud, &config).await;
    let cgw = cloud.add_foreign_customer_gateway([198, 51, 100, 9].into(), 65100);
    let theirs = cloud.with_world_mut(|w| {
        let vgw = w.aws.vpn_gateways.values().find(|v| v.tags.contains_key(TAG_DEPLOYMENT)).unwrap().id.clone();
        w.create_vpn_connection(&cgw, &vgw, true, &[], &Default::default()).unwrap().id
    });
    let e = plan::plan_destroy(&config, &observe(&cloud, &config).await).expect_err("destroy goes ahead");
    let text = e.to_string();
    assert!(text.contains(&format!("VPN connection {theirs} uses this deployment's virtual private gateway")), "{text}");
    assert!(text.contains("delete that VPN connection first"), "{text}");
}
