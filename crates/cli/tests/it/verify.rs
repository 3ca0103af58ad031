//! `vpnbridge verify` and `vpnbridge drill` end to end on the simulator; their JSON
//! documents are pinned by snapshots.

use vpnbridge_sim::SimCloud;

use crate::Scratch;

/// Replaces the clouds' timestamps: the simulated clock starts when the process opens
/// the world, a few wall-clock milliseconds before the paused runtime does.
fn redact_timestamps(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.len() == 24 && s.as_bytes()[10] == b'T' && s.ends_with('Z') => *s = "[timestamp]".into(),
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_timestamps),
        serde_json::Value::Object(o) => o.values_mut().for_each(redact_timestamps),
        _ => {}
    }
}

fn applied(name: &str) -> Scratch {
    let s = Scratch::new(name);
    s.init();
    let r = s.run(&["apply"], &[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    s
}

#[test]
fn verify_after_apply_passes_with_two_tunnels_up_and_ping_both_ways() {
    let s = applied("verify-ok");
    let r = s.run(&["verify", "--output", "json"], &[]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    let mut doc = r.json();
    redact_timestamps(&mut doc);
    assert_eq!(doc["result"], "ok");
    assert_eq!(doc["data_plane"]["observable"], true);
    assert_eq!(doc["tunnels"].as_array().unwrap().iter().filter(|t| t["up"] == true).count(), 2);
    assert_eq!(doc["ping"]["azure_to_aws"]["replied"], true);
    assert_eq!(doc["ping"]["aws_to_azure"]["replied"], true);
    insta::assert_json_snapshot!("verify_ok_json", doc);

    let human = s.run(&["verify"], &[]);
    assert_eq!(human.code(), 0);
    let out = human.stdout();
    assert!(out.contains("VPN verified: 2 of 2 tunnels up, ping both ways."), "{out}");
    assert!(out.contains("down by design"), "{out}");
    assert!(out.contains("IKE SA:"), "{out}");
}

#[test]
fn drill_passes_for_every_tunnel_and_prints_the_table() {
    let s = applied("drill-ok");
    let r = s.run(&["drill", "--output", "json"], &[]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    let mut doc = r.json();
    redact_timestamps(&mut doc);
    assert_eq!(doc["result"], "passed");
    let rows = doc["tunnels"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["traffic_kept"] == true && r["reverify"] == "ok"), "{doc:#}");
    insta::assert_json_snapshot!("drill_ok_json", doc);

    let one = s.run(&["drill", "--tunnel", "2"], &[]);
    assert_eq!(one.code(), 0, "{}", one.stderr());
    let out = one.stdout();
    for col in ["tunnel", "down at", "traffic kept?", "interruption", "restored at", "re-verify"] {
        assert!(out.contains(col), "{out}");
    }
    assert!(out.contains("azure-aws-cn-1-0") && !out.contains("azure-aws-cn-0-0"), "{out}");
    assert!(out.contains("Drill PASSED"), "{out}");
    // A tunnel this deployment does not use is a usage error that says which exist.
    let none = s.run(&["drill", "--tunnel", "3"], &[]);
    assert_eq!(none.code(), 64, "{}", none.stderr());
    assert!(none.stderr().contains("there is no used tunnel 3: this deployment has 2; pass --tunnel 1 to 2"), "{}", none.stderr());
    let never = s.run(&["drill", "--tunnel", "0"], &[]);
    assert_eq!(never.code(), 64, "{}", never.stderr());
    assert!(never.stderr().contains("1..=4"), "{}", never.stderr());
}

#[test]
fn a_security_group_without_icmp_fails_verify_and_the_drill_with_its_diagnosis() {
    let s = applied("verify-sg");
    let cloud = SimCloud::open(&s.sim_dir()).unwrap();
    cloud.revoke_icmp_ingress("vpc-0123456789abcdef0").unwrap();
    drop(cloud);
    let r = s.run(&["verify", "--output", "json"], &[]);
    assert_eq!(r.code(), 6, "{}\n{}", r.stdout(), r.stderr());
    let doc = r.json();
    assert_eq!(doc["result"], "problems");
    let diagnoses: Vec<&str> = doc["diagnoses"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    assert!(diagnoses.iter().any(|d| d.contains("blocks ICMP from 10.1.0.0/16")), "{diagnoses:#?}");
    let human = s.run(&["verify"], &[]);
    assert_eq!(human.code(), 6);
    assert!(human.stdout().contains("PROBLEMS FOUND"), "{}", human.stdout());

    let d = s.run(&["drill", "--tunnel", "1"], &[]);
    assert_eq!(d.code(), 6, "{}\n{}", d.stdout(), d.stderr());
    assert!(d.stdout().contains("Drill FAILED"), "{}", d.stdout());
}

#[test]
fn drill_refuses_mixed_backends_with_its_own_exit_code() {
    let s = Scratch::new("drill-mixed");
    s.init();
    let text = std::fs::read_to_string(s.config()).unwrap();
    let mixed = text.replacen("backend = \"sim\"", "backend = \"azure\"", 1);
    assert_ne!(text, mixed);
    s.write_config(&mixed);
    let r = s.run(&["drill", "--output", "json"], &[("AZURE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-000000000001")]);
    assert_eq!(r.code(), 7, "{}\n{}", r.stdout(), r.stderr());
    let doc = r.json();
    assert_eq!(doc["error"]["kind"], "not_observable");
    assert!(doc["error"]["messages"][0].as_str().unwrap().contains("mixed backends"), "{doc:#}");
    assert!(!s.sim_dir().exists(), "refused before anything was opened");
}
