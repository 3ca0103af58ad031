use crate::{Scratch, exists};

/// Critical path on the default latency table: public IP 10 s -> gateway 45 min ->
/// Connection 90 s.
const CRITICAL_PATH_S: f64 = 10.0 + 2700.0 + 90.0;

#[test]
fn apply_builds_the_whole_deployment_on_the_critical_path_then_reapply_changes_nothing() {
    let s = Scratch::new("apply");
    s.init();
    let r = s.run(&["apply", "--output", "json"], &[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let doc = r.json();
    assert_eq!(doc["result"], "applied");
    assert!(r.stderr().contains("SIMULATED"), "the banner is loud: {}", r.stderr());
    // Every used tunnel pairs up with nothing off.
    let tunnels = doc["tunnels"].as_array().unwrap();
    assert_eq!(tunnels.len(), 2);
    for t in tunnels {
        assert_eq!(t["problems"].as_array().unwrap().len(), 0, "{t}");
        assert_eq!(t["azure_instance_ip"], t["customer_gateway_ip"]);
        assert_eq!(t["aws_outside_ip"], t["lng_gateway_ip"]);
    }
    // Modelled time to the last Connection is within 2% of the critical path.
    let last_connection = doc["execution"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["resource_type"] == "connection")
        .map(|s| s["finished_at"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(
        (last_connection - CRITICAL_PATH_S).abs() / CRITICAL_PATH_S < 0.02,
        "last Connection at {last_connection} s vs critical path {CRITICAL_PATH_S} s"
    );
    let mutations = doc["calls"]["azure"]["mutations"].as_u64().unwrap() + doc["calls"]["aws"]["mutations"].as_u64().unwrap();
    assert_eq!(mutations, 16, "one mutating call per step, no retries on a healthy cloud");

    let again = s.run(&["apply", "--output", "json"], &[]);
    assert_eq!(again.code(), 0, "{}", again.stderr());
    let doc = again.json();
    assert_eq!(doc["result"], "no_changes");
    assert_eq!(doc["calls"]["azure"]["mutations"], 0);
    assert_eq!(doc["calls"]["aws"]["mutations"], 0);

    let human = s.run(&["apply"], &[]);
    assert!(human.stdout().contains("No changes"), "{}", human.stdout());
}

#[test]
fn plan_detailed_exitcode_tells_scripts_whether_changes_are_pending() {
    let s = Scratch::new("exitcode");
    s.init();
    let r = s.run(&["plan", "--detailed-exitcode"], &[]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(r.stdout().contains("Plan: 16 to create, 0 to modify, 0 to destroy."), "{}", r.stdout());
    assert!(r.stdout().contains("(known after apply)"));
    assert_eq!(s.run(&["apply"], &[]).code(), 0);
    let r = s.run(&["plan", "--detailed-exitcode"], &[]);
    assert_eq!(r.code(), 0, "{}", r.stdout());
    // Without the flag, pending changes still exit 0.
    let r = s.run(&["plan", "--destroy"], &[]);
    assert_eq!(r.code(), 0);
    assert!(r.stdout().contains("to destroy"));
}

#[test]
fn destroy_removes_everything_of_ours_and_then_nothing_is_left() {
    let s = Scratch::new("destroy");
    s.init();
    assert_eq!(s.run(&["apply"], &[]).code(), 0);
    let r = s.run(&["destroy", "--output", "json"], &[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(r.json()["result"], "applied");
    let status = s.run(&["status", "--output", "json"], &[]).json();
    let res = &status["resources"];
    for list in [
        &res["azure"]["public_ips"],
        &res["azure"]["local_network_gateways"],
        &res["azure"]["connections"],
        &res["aws"]["customer_gateways"],
    ] {
        assert_eq!(list.as_array().unwrap().len(), 0, "{status}");
    }
    assert!(res["azure"]["vpn_gateway"].is_null());
    let plan = s.run(&["plan", "--destroy", "--detailed-exitcode"], &[]);
    assert_eq!(plan.code(), 0, "nothing left to destroy: {}", plan.stdout());
}

#[test]
fn a_new_key_is_rolled_in_place_with_its_disruption_shown() {
    let s = Scratch::new("rotate");
    s.init();
    let text = std::fs::read_to_string(s.config()).unwrap().replace("psk = \"generate\"", "psk = \"env:VPN_PSK\"");
    s.write_config(&text);
    assert_eq!(s.run(&["apply"], &[("VPN_PSK", "FirstKey.0001")]).code(), 0);
    let plan = s.run(&["plan", "--output", "json"], &[("VPN_PSK", "SecondKey_0002")]);
    let doc = plan.json();
    assert_eq!(doc["changes"]["create"], 0, "{doc}");
    assert_eq!(doc["changes"]["delete"], 0, "{doc}");
    assert_eq!(doc["changes"]["modify"], 4, "{doc}");
    for step in doc["steps"].as_array().unwrap() {
        assert!(step["disruption"].is_string(), "every in-place change says what it interrupts: {step}");
    }
    let r = s.run(&["apply", "--output", "json"], &[("VPN_PSK", "SecondKey_0002")]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let again = s.run(&["apply", "--output", "json"], &[("VPN_PSK", "SecondKey_0002")]).json();
    assert_eq!(again["result"], "no_changes");
}

#[test]
fn no_key_ever_reaches_the_output_even_at_trace_level() {
    let s = Scratch::new("secrets");
    s.init();
    let text = std::fs::read_to_string(s.config()).unwrap().replace("psk = \"generate\"", "psk = \"env:VPN_PSK\"");
    s.write_config(&text);
    let key = "Leak.Canary_7731";
    let env = [("VPN_PSK", key), ("RUST_LOG", "trace")];
    let mut all = String::new();
    for args in [
        &["plan", "-vvv"][..],
        &["apply", "-vvv"],
        &["status", "-vvv"],
        &["plan", "--output", "json"],
        &["apply", "--output", "json"],
        &["status", "--output", "json"],
        &["destroy", "-vvv"],
    ] {
        let r = s.run(args, &env);
        assert!(r.code() == 0, "{args:?}: {}", r.stderr());
        all.push_str(&r.stdout());
        all.push_str(&r.stderr());
    }
    assert!(all.len() > 10_000, "trace output was produced");
    assert!(!all.contains(key), "the PSK leaked");
}

#[test]
fn an_invalid_config_calls_no_cloud() {
    let s = Scratch::new("invalid");
    s.init();
    let text = std::fs::read_to_string(s.config())
        .unwrap()
        .replace("gateway_generation = \"Generation1\"", "gateway_generation = \"Generation2\"");
    s.write_config(&text);
    for args in [&["plan"][..], &["apply"], &["destroy"], &["status"]] {
        let r = s.run(args, &[]);
        assert_eq!(r.code(), 3, "{}", r.stderr());
        assert!(r.stderr().contains("azure.gateway_generation"), "{}", r.stderr());
    }
    let r = s.run(&["plan", "--output", "json"], &[]);
    assert_eq!(r.json()["error"]["kind"], "config");
    assert!(!exists(&s.sim_dir()), "the simulated clouds were never opened");
}

/// bgp-ha on the simulator, as a user runs it: init, plan, apply, verify (4 tunnels up,
/// 4 BGP sessions established, routes learned on both sides, ping both ways), a drill
/// of every tunnel, a second apply with zero calls, and a destroy that leaves nothing.
#[test]
fn bgp_ha_lifecycle_on_the_simulator() {
    let s = Scratch::new("bgp");
    let r = s.run(&["init", "--mode", "bgp-ha"], &[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(r.stderr().contains("bgp-ha"), "{}", r.stderr());
    let plan = s.run(&["plan"], &[]);
    assert_eq!(plan.code(), 0, "{}", plan.stderr());
    for needle in ["enable_bgp             = true", "169.254.21.2, 169.254.22.2", "static_routes_only     = false", "route_propagation"] {
        assert!(plan.stdout().contains(needle), "the plan lacks {needle:?}:\n{}", plan.stdout());
    }
    let doc = s.run(&["apply", "--output", "json"], &[]).json();
    assert_eq!(doc["result"], "applied", "{doc:#}");
    assert_eq!(doc["tunnels"].as_array().unwrap().len(), 4);

    let r = s.run(&["verify", "--output", "json"], &[]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    let v = r.json();
    assert_eq!(v["result"], "ok", "{v:#}");
    let tunnels = v["tunnels"].as_array().unwrap();
    assert_eq!(tunnels.iter().filter(|t| t["up"] == true).count(), 4);
    for t in tunnels {
        assert_eq!(t["bgp"]["azure"]["state"], "established", "{t:#}");
        assert_eq!(t["bgp"]["aws"]["state"], "established", "{t:#}");
        assert_eq!(t["bgp"]["azure"]["learned"], serde_json::json!(["10.2.0.0/16"]), "Azure learned the VPC: {t:#}");
        assert_eq!(t["bgp"]["aws"]["routes_received"], 1, "AWS accepted the VNet's prefix: {t:#}");
    }
    assert_eq!(v["ping"]["azure_to_aws"]["replied"], true);
    assert_eq!(v["ping"]["aws_to_azure"]["replied"], true);
    let human = s.run(&["verify"], &[]).stdout();
    assert!(human.contains("BGP, Azure end:                ESTABLISHED 169.254.21.2 -> 169.254.21.1 (ASN 64512)"), "{human}");

    let d = s.run(&["drill", "--output", "json"], &[]);
    assert_eq!(d.code(), 0, "{}\n{}", d.stdout(), d.stderr());
    let d = d.json();
    assert_eq!(d["result"], "passed", "{d:#}");
    assert_eq!(d["tunnels"].as_array().unwrap().len(), 4);

    let again = s.run(&["apply", "--output", "json"], &[]).json();
    let mutations = again["calls"]["azure"]["mutations"].as_u64().unwrap() + again["calls"]["aws"]["mutations"].as_u64().unwrap();
    assert_eq!(mutations, 0, "{again:#}");

    let gone = s.run(&["destroy", "--yes", "--output", "json"], &[]);
    assert_eq!(gone.code(), 0, "{}", gone.stderr());
    let cloud = vpnbridge_sim::SimCloud::open(&s.sim_dir()).unwrap();
    cloud.with_world(|w| {
        let tagged = |t: &vpnbridge_core::model::Tags| t.contains_key(vpnbridge_core::model::TAG_DEPLOYMENT);
        assert!(
            w.azure.gateways.values().all(|g| !tagged(&g.tags))
                && w.azure.connections.is_empty()
                && w.azure.local_network_gateways.is_empty()
        );
        assert!(w.aws.vpn_connections.values().all(|v| v.phase.state.is_gone()));
        assert!(w.aws.customer_gateways.values().all(|c| c.phase.state.is_gone()));
        assert!(w.aws.route_tables.values().all(|t| t.propagating_vgws.is_empty()), "propagation from our VGW is removed");
    });
}

#[test]
fn four_tunnels_with_two_per_connection() {
    let s = Scratch::new("four");
    s.init();
    let text = std::fs::read_to_string(s.config()).unwrap().replace("tunnels_per_connection = 1", "tunnels_per_connection = 2");
    s.write_config(&text);
    let doc = s.run(&["apply", "--output", "json"], &[]).json();
    assert_eq!(doc["result"], "applied");
    assert_eq!(doc["tunnels"].as_array().unwrap().len(), 4);
    // Lowering it back removes the second tunnel of each connection, nothing else.
    s.write_config(&text.replace("tunnels_per_connection = 2", "tunnels_per_connection = 1"));
    let plan = s.run(&["plan", "--output", "json"], &[]).json();
    assert_eq!(plan["changes"]["delete"], 4, "{plan}");
    assert_eq!(plan["changes"]["create"], 0);
}

#[test]
fn status_shows_the_expected_down_tunnel_as_by_design() {
    let s = Scratch::new("status");
    s.init();
    assert_eq!(s.run(&["apply"], &[]).code(), 0);
    let r = s.run(&["status"], &[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(r.stdout().contains("down by design"), "{}", r.stdout());
    let doc = s.run(&["status", "--output", "json"], &[]).json();
    let ends = doc["tunnel_ends"].as_array().unwrap();
    let count = |cloud: &str| ends.iter().filter(|e| e["cloud"] == cloud).count();
    assert_eq!(count("aws"), 4, "both tunnels of both VPN connections, the unused ones included");
    assert_eq!(count("azure"), 4, "2 Connections, each tried from both gateway instances");
}

#[test]
fn help_teaches_and_usage_errors_have_their_own_code() {
    let s = Scratch::new("help");
    let r = s.run(&["--help"], &[]);
    assert_eq!(r.code(), 0);
    assert!(r.stdout().contains("Exit codes") && r.stdout().contains("Examples"));
    assert_eq!(s.run(&["frobnicate"], &[]).code(), 64);
    let missing = s.run(&["plan"], &[]);
    assert_eq!(missing.code(), 3);
    assert!(missing.stderr().contains("vpnbridge init"), "{}", missing.stderr());
}

/// Every read a command makes (observe, tunnel status, IKE SAs) is retried like
/// observe: under 15% throttling an apply waits its tunnels out and a verify of a
/// healthy deployment passes, for every seed tried (both used to exit 1 on the first
/// throttled tunnel-status read).
#[test]
fn throttled_tunnel_status_reads_are_retried() {
    let s = Scratch::new("throttled-reads");
    s.init();
    for seed in 1..=4 {
        let faults = format!("seed={seed},throttle=0.15");
        let env = [("VPNBRIDGE_SIM_FAULTS", faults.as_str())];
        let r = s.run(&["apply"], &env);
        assert_eq!(r.code(), 0, "apply, seed {seed}: {}", r.stderr());
        let r = s.run(&["verify"], &env);
        assert_eq!(r.code(), 0, "verify, seed {seed}: {}{}", r.stdout(), r.stderr());
        let r = s.run(&["status"], &env);
        assert_eq!(r.code(), 0, "status, seed {seed}: {}", r.stderr());
    }
}

/// The environment knobs are options with `env`: validated up front (exit 64, nothing
/// written), and documented in `--help` with the exit codes.
#[test]
fn bad_knob_values_are_usage_errors_before_anything_is_written() {
    let s = Scratch::new("knobs");
    s.init();
    for (var, value) in [("VPNBRIDGE_LOCK_WAIT", "abc"), ("VPNBRIDGE_TUNNEL_WAIT", "-1"), ("VPNBRIDGE_SIM_FAULTS", "throttle=lots")] {
        let r = s.run(&["plan"], &[(var, value)]);
        assert_eq!(r.code(), 64, "{var}={value}: {}", r.stderr());
        assert!(r.stderr().contains(value), "{var}: {}", r.stderr());
        assert!(!exists(&s.sim_dir()), "{var}: nothing is written before the arguments are valid");
    }
    let r = s.run(&["drill", "--tunnel", "0", "--yes"], &[]);
    assert_eq!(r.code(), 64, "{}", r.stderr());
    let help = s.run(&["--help"], &[]).stdout();
    for needle in
        ["VPNBRIDGE_LOCK_WAIT", "VPNBRIDGE_TUNNEL_WAIT", "VPNBRIDGE_SIM_FAULTS", "VPNBRIDGE_SIM_LATENCY", "VPNBRIDGE_SIM_DIR", "  70  "]
    {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
    let drill = s.run(&["drill", "--help"], &[]).stdout();
    let words = drill.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("did not come back"), "{drill}");
    assert!(!drill.lines().any(|l| l.trim().contains("     ") && l.contains("come")), "a run of spaces inside a sentence:\n{drill}");
}

/// `status --output mermaid|dot` draws what exists: both clouds, every used tunnel
/// coloured by its state and the by-design-down ones dashed; a drilled-away tunnel
/// turns red. Other commands refuse the drawing formats as a usage error.
#[test]
fn status_draws_the_topology_with_each_tunnel_coloured_by_its_state() {
    let s = Scratch::new("graph");
    s.init();
    let r = s.run(&["status", "--output", "mermaid"], &[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(r.stdout().contains("(not built)"), "nothing exists yet: {}", r.stdout());
    assert_eq!(s.run(&["apply", "--yes"], &[]).code(), 0);
    let r = s.run(&["status", "--output", "mermaid"], &[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let m = r.stdout();
    assert!(m.starts_with("flowchart LR\n"), "{m}");
    assert!(m.contains("subgraph azure[\"Azure VNet vnet-hub (10.1.0.0/16)\"]") && m.contains("subgraph aws["), "{m}");
    assert!(!m.contains("(not built)"), "{m}");
    assert_eq!(m.matches(": UP\" ===").count(), 2, "two used tunnels, both up: {m}");
    assert_eq!(m.matches("down by design").count(), 2, "{m}");
    assert_eq!(m.matches("stroke:#2da44e").count(), 2, "{m}");
    assert_eq!(m.matches("stroke-dasharray").count(), 2, "{m}");
    // linkStyle indexes must name real links.
    let links = m.lines().filter(|l| l.contains(" --- ") || l.contains(" === ") || l.contains(" .- ")).count();
    for l in m.lines().filter_map(|l| l.trim().strip_prefix("linkStyle ")) {
        let i: usize = l.split(' ').next().unwrap().parse().unwrap();
        assert!(i < links, "linkStyle {i} of {links} links");
    }
    let r = s.run(&["status", "-o", "dot"], &[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let d = r.stdout();
    assert!(d.starts_with("graph vpnbridge {") && d.trim_end().ends_with('}'), "{d}");
    assert!(d.contains("subgraph cluster_azure") && d.contains("style=dashed") && d.contains("color=\"#2da44e\""), "{d}");
    let r = s.run(&["plan", "--output", "mermaid"], &[]);
    assert_eq!(r.code(), 64, "{}", r.stderr());
    assert!(r.stderr().contains("only `vpnbridge status` takes it"), "{}", r.stderr());
}
