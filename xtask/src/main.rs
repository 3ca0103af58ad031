//! vpnbridge's own build tool.
//!
//!   cargo xtask ci      fmt check, unused dependencies, clippy (warnings denied),
//!                       every test
//!   cargo xtask bench   modelled makespan of a simulated apply vs. an independent
//!                       lower bound and the manual procedure, plus call counts

mod fakes;
mod machete;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(),
        Some("chaos") => chaos(&args[1..]),
        Some("fakes") => fakes::run(),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci|bench>\n  ci     fmt check, unused dependencies (cargo-machete), clippy -D warnings, all tests\n  bench  simulated apply: makespan vs. lower bound and manual order, call counts"
            );
            std::process::exit(64);
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn cargo(args: &[&str]) -> Result<()> {
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args(args).current_dir(root()).status()?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn ci() -> Result<()> {
    let t = std::time::Instant::now();
    // The AWS adapter's tests run against moto: install it first (idempotent).
    fakes::run().context("installing the cloud fakes (moto) the tests need")?;
    cargo(&["fmt", "--all", "--", "--check"]).context("formatting differs: run `cargo fmt --all`")?;
    machete::check(&root())?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    let (passed, failed) = cargo_test(&["test", "--workspace"])?;
    eprintln!("xtask ci: all checks passed in {:.0}s", t.elapsed().as_secs_f64());
    // The plain closing line CI reads: the totals over every test binary.
    println!("ci: {passed} passed, {failed} failed");
    Ok(())
}

/// Runs `cargo test`, echoing its output, and adds up its "test result" lines.
fn cargo_test(args: &[&str]) -> Result<(u64, u64)> {
    use std::io::{BufRead, BufReader};
    eprintln!("$ cargo {}", args.join(" "));
    let mut child = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let (mut passed, mut failed) = (0, 0);
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let count = |word: &str| {
                rest.split(';').find_map(|p| {
                    p.trim().trim_start_matches("ok. ").trim_start_matches("FAILED. ").strip_suffix(word)?.trim().parse::<u64>().ok()
                })
            };
            passed += count(" passed").unwrap_or(0);
            failed += count(" failed").unwrap_or(0);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        println!("ci: {passed} passed, {failed} failed");
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok((passed, failed))
}

/// The randomised fault campaign at a size of your choosing (CI runs 1000 schedules).
fn chaos(args: &[String]) -> Result<()> {
    let mut schedules = "10000".to_owned();
    let mut seed = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--schedules" => schedules = it.next().context("--schedules needs a number")?.clone(),
            "--seed" => seed = Some(it.next().context("--seed needs a number")?.clone()),
            other => bail!("unknown option {other}; usage: cargo xtask chaos [--schedules N] [--seed S]"),
        }
    }
    eprintln!("$ cargo test -p vpnbridge-sim --test it chaos::fault_campaign (schedules {schedules})");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["test", "-p", "vpnbridge-sim", "--test", "it", "chaos::fault_campaign", "--", "--nocapture"])
        .current_dir(root())
        .env("VPNBRIDGE_CHAOS_SCHEDULES", &schedules);
    if let Some(s) = seed {
        cmd.env("VPNBRIDGE_CHAOS_SEED", s);
    }
    let status = cmd.status()?;
    if !status.success() {
        bail!("the fault campaign failed; the minimal failing schedule is printed above");
    }
    Ok(())
}

/// The clouds' real dependencies, written here independently of the planner so that
/// a needless edge in a plan would show up as a makespan above this bound. Each entry:
/// the step, the simulator latency key of its duration, and the steps it needs.
const REAL_DEPENDENCIES: &[(&str, &str, &[&str])] = &[
    ("azure public ip 0", "azure_public_ip", &[]),
    ("azure public ip 1", "azure_public_ip", &[]),
    ("azure vpn gateway", "azure_vpn_gateway", &["azure public ip 0", "azure public ip 1"]),
    ("aws vgw", "aws_vpn_gateway", &[]),
    ("aws vgw attach", "aws_vgw_attach", &["aws vgw"]),
    ("aws vpc route", "aws_vpc_route", &["aws vgw attach"]),
    ("aws cgw 0", "aws_customer_gateway", &["azure public ip 0"]),
    ("aws cgw 1", "aws_customer_gateway", &["azure public ip 1"]),
    ("aws vpn connection 0", "aws_vpn_connection", &["aws cgw 0", "aws vgw"]),
    ("aws vpn connection 1", "aws_vpn_connection", &["aws cgw 1", "aws vgw"]),
    ("aws vpn route 0", "aws_vpn_connection_route", &["aws vpn connection 0"]),
    ("aws vpn route 1", "aws_vpn_connection_route", &["aws vpn connection 1"]),
    ("azure lng 0", "azure_local_network_gateway", &["aws vpn connection 0"]),
    ("azure lng 1", "azure_local_network_gateway", &["aws vpn connection 1"]),
    ("azure connection 0", "azure_connection", &["azure vpn gateway", "azure lng 0"]),
    ("azure connection 1", "azure_connection", &["azure vpn gateway", "azure lng 1"]),
];

/// The same for bgp-ha (Microsoft's AWS-BGP layout, 4 tunnels): the gateway is created
/// with BGP on, the VPN connections are dynamic (no VPN connection routes), the VGW
/// propagates into the route table (it must be attached; EC2 answers at once) instead
/// of a static route, and each of the 4 LNGs needs its tunnel's outside and inside
/// addresses, which only the VPN connection knows.
const REAL_DEPENDENCIES_BGP_HA: &[(&str, &str, &[&str])] = &[
    ("azure public ip 0", "azure_public_ip", &[]),
    ("azure public ip 1", "azure_public_ip", &[]),
    ("azure vpn gateway", "azure_vpn_gateway", &["azure public ip 0", "azure public ip 1"]),
    ("aws vgw", "aws_vpn_gateway", &[]),
    ("aws vgw attach", "aws_vgw_attach", &["aws vgw"]),
    ("aws route propagation", INSTANT, &["aws vgw attach"]),
    ("aws cgw 0", "aws_customer_gateway", &["azure public ip 0"]),
    ("aws cgw 1", "aws_customer_gateway", &["azure public ip 1"]),
    ("aws vpn connection 0", "aws_vpn_connection", &["aws cgw 0", "aws vgw"]),
    ("aws vpn connection 1", "aws_vpn_connection", &["aws cgw 1", "aws vgw"]),
    ("azure lng 0", "azure_local_network_gateway", &["aws vpn connection 0"]),
    ("azure lng 1", "azure_local_network_gateway", &["aws vpn connection 0"]),
    ("azure lng 2", "azure_local_network_gateway", &["aws vpn connection 1"]),
    ("azure lng 3", "azure_local_network_gateway", &["aws vpn connection 1"]),
    ("azure connection 0", "azure_connection", &["azure vpn gateway", "azure lng 0"]),
    ("azure connection 1", "azure_connection", &["azure vpn gateway", "azure lng 1"]),
    ("azure connection 2", "azure_connection", &["azure vpn gateway", "azure lng 2"]),
    ("azure connection 3", "azure_connection", &["azure vpn gateway", "azure lng 3"]),
];

/// A mode the bench builds: its name, how `init` is asked for it, and the clouds'
/// dependencies in that mode.
struct BenchMode {
    name: &'static str,
    init_mode: &'static str,
    dependencies: &'static [(&'static str, &'static str, &'static [&'static str])],
}

const BENCH_MODES: &[BenchMode] = &[
    BenchMode { name: "static-ha, 2 tunnels", init_mode: "static-ha", dependencies: REAL_DEPENDENCIES },
    BenchMode { name: "bgp-ha, 4 tunnels", init_mode: "bgp-ha", dependencies: REAL_DEPENDENCIES_BGP_HA },
];

/// Seconds per latency key: the simulator's default table, and the range each one is
/// drawn from in the randomised trials (the clouds publish no distributions; these are
/// plausible spreads around their documented figures).
const LATENCIES: &[(&str, f64, f64, f64)] = &[
    ("azure_public_ip", 10.0, 5.0, 30.0),
    ("azure_vpn_gateway", 2700.0, 1800.0, 3600.0),
    ("azure_local_network_gateway", 45.0, 20.0, 90.0),
    ("azure_connection", 90.0, 45.0, 180.0),
    ("aws_customer_gateway", 10.0, 2.0, 30.0),
    ("aws_vpn_gateway", 20.0, 10.0, 60.0),
    ("aws_vgw_attach", 40.0, 15.0, 90.0),
    ("aws_vpc_route", 2.0, 1.0, 5.0),
    ("aws_vpn_connection", 360.0, 180.0, 600.0),
    ("aws_vpn_connection_route", 15.0, 5.0, 30.0),
];

/// The latency key of a step the clouds answer at once (no simulator key).
const INSTANT: &str = "none";

/// The duration of a step with latency key `key`.
fn seconds(lat: &Latencies, key: &str) -> f64 {
    if key == INSTANT { 0.0 } else { lat[key] }
}

type Latencies = std::collections::BTreeMap<&'static str, f64>;

fn lower_bound(mode: &BenchMode, lat: &Latencies) -> f64 {
    let mut finish: Vec<(&str, f64)> = Vec::new();
    for (name, key, deps) in mode.dependencies {
        let start = deps.iter().map(|d| finish.iter().find(|(n, _)| n == d).expect("deps listed first").1).fold(0.0, f64::max);
        finish.push((name, start + seconds(lat, key)));
    }
    finish.iter().map(|(_, f)| *f).fold(0.0, f64::max)
}

fn manual_sequential(mode: &BenchMode, lat: &Latencies) -> f64 {
    mode.dependencies.iter().map(|(_, key, _)| seconds(lat, key)).sum()
}

/// A small deterministic generator for the trials (xorshift64*).
struct Draw(u64);
impl Draw {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn bench() -> Result<()> {
    cargo(&["build", "--quiet", "-p", "vpnbridge"])?;
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root().join("target"));
    let bin = target.join("debug").join("vpnbridge");
    let dir = std::env::temp_dir().join(format!("vpnbridge-bench-{}", std::process::id()));
    let defaults: Latencies = LATENCIES.iter().map(|(k, d, _, _)| (*k, *d)).collect();

    for mode in BENCH_MODES {
        println!("vpnbridge bench (simulator, {})", mode.name);
        let first = trial(&bin, &dir, mode, &defaults)?;
        let m = |s: f64| format!("{:.1} min", s / 60.0);
        println!("Default latency table (gateway 45 min):");
        println!("  lower bound (independent dependency table)   {}", m(first.bound));
        println!("  modelled: last Connection created             {}  ({:+.2}% vs bound)", m(first.last_connection), first.overhead_pct());
        println!("  modelled: whole apply                         {}", m(first.makespan));
        println!(
            "  manual order, every wait in sequence          {}  (vpnbridge saves {})",
            m(first.manual),
            m(first.manual - first.last_connection)
        );
        println!("  steps                                         {}", first.steps);
        println!("  calls during apply                            {}", first.calls);
        println!("  re-apply                                      {}", first.reapply);
        println!("  destroy                                       {}", first.destroy);
        println!("  wall time of the simulated apply              {:.2} s (process start to exit)", first.wall);

        let trials = 20;
        let mut draw = Draw(0x5EED_2026_1125);
        let mut over = Vec::new();
        let mut saved = Vec::new();
        for _ in 0..trials {
            let lat: Latencies = LATENCIES.iter().map(|(k, _, lo, hi)| (*k, (lo + (hi - lo) * draw.next()).round())).collect();
            let t = trial(&bin, &dir, mode, &lat)?;
            over.push(t.overhead_pct());
            saved.push((t.manual - t.last_connection) / t.manual * 100.0);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let max = |v: &[f64]| v.iter().copied().fold(f64::MIN, f64::max);
        println!("{trials} trials with latencies drawn uniformly from plausible ranges (gateway 30-60 min, VPN connection 3-10 min, ...):");
        println!(
            "  last Connection vs lower bound                mean {:+.2}%, worst {:+.2}% (polling: Azure Retry-After 10 s, EC2 back-off 2-15 s)",
            mean(&over),
            max(&over)
        );
        println!("  time saved vs the manual order                mean {:.0}%", mean(&saved));
    }
    traffic(&bin, &dir)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Changes in place keep traffic flowing: on a built deployment (default latency
/// table), each change is applied with `--watch-traffic` (a ping each way every second
/// of simulated time) and the seconds lost are reported against the goal of at most
/// one AWS dead-peer-detection interval (30 s) per tunnel changed.
fn traffic(bin: &Path, dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let config = dir.join("vpnbridge.toml");
    let run = |args: &[&str], key: &str| -> Result<serde_json::Value> {
        let out = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("BENCH_PSK", key)
            .env_remove("VPNBRIDGE_SIM_LATENCY")
            .output()
            .context("running vpnbridge")?;
        if !out.status.success() {
            bail!("vpnbridge {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null))
    };
    let edit = |from: &str, to: &str| -> Result<()> {
        let text = std::fs::read_to_string(&config)?;
        anyhow::ensure!(text.contains(from), "the example config has no {from:?}");
        std::fs::write(&config, text.replacen(from, to, 1))?;
        Ok(())
    };
    run(&["init", "--output", "json"], "")?;
    edit("psk = \"generate\"", "psk = \"env:BENCH_PSK\"")?;
    run(&["apply", "--yes", "--output", "json"], "Bench.Key_000001")?;
    println!(
        "Traffic lost during changes in place (ping each way every simulated second; goal: at most 30 s, AWS DPD, per tunnel changed):"
    );
    let scenarios: &[(&str, &str, &str, &str, u64)] = &[
        ("pre-shared key rotation (2 tunnels)", "psk = \"env:BENCH_PSK\"", "psk = \"env:BENCH_PSK\"", "Bench.Key_000002", 2),
        ("gateway resize VpnGw1AZ -> VpnGw2AZ", "gateway_sku = \"VpnGw1AZ\"", "gateway_sku = \"VpnGw2AZ\"", "Bench.Key_000002", 2),
        ("tunnels_per_connection 1 -> 2", "tunnels_per_connection = 1", "tunnels_per_connection = 2", "Bench.Key_000002", 2),
        ("tunnels_per_connection 2 -> 1", "tunnels_per_connection = 2", "tunnels_per_connection = 1", "Bench.Key_000002", 2),
        ("customer gateway swap (azure.asn 65000 -> 65010)", "asn = 65000", "asn = 65010", "Bench.Key_000002", 2),
    ];
    for (what, from, to, key, tunnels) in scenarios {
        edit(from, to)?;
        let doc = run(&["apply", "--yes", "--watch-traffic", "--output", "json"], key)?;
        let t = &doc["traffic"];
        let lost = t["both_lost_s"].as_u64().context("apply reported no traffic")?;
        let goal = 30 * tunnels;
        println!(
            "  {what:<48} {:>4} s lost VNet->VPC, {:>4} s VPC->VNet, {:>4} s no path at all, over {} s  ({})",
            t["azure_to_aws_lost_s"],
            t["aws_to_azure_lost_s"],
            lost,
            t["watched_s"],
            if lost <= goal { format!("within {goal} s") } else { format!("OVER the {goal} s goal") }
        );
    }
    Ok(())
}

struct Trial {
    bound: f64,
    last_connection: f64,
    makespan: f64,
    manual: f64,
    steps: usize,
    calls: serde_json::Value,
    reapply: String,
    destroy: String,
    wall: f64,
}

impl Trial {
    fn overhead_pct(&self) -> f64 {
        (self.last_connection / self.bound - 1.0) * 100.0
    }
}

/// A fresh simulated deployment built with `lat`: apply, re-apply, destroy.
fn trial(bin: &Path, dir: &Path, mode: &BenchMode, lat: &Latencies) -> Result<Trial> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let config = dir.join("vpnbridge.toml");
    let latency_file = dir.join("latency.json");
    let millis: serde_json::Map<String, serde_json::Value> =
        lat.iter().map(|(k, v)| ((*k).to_owned(), ((v * 1000.0) as u64).into())).collect();
    std::fs::write(&latency_file, serde_json::to_vec(&millis)?)?;
    let run = |args: &[&str]| -> Result<serde_json::Value> {
        let out = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("VPNBRIDGE_SIM_LATENCY", &latency_file)
            .output()
            .context("running vpnbridge")?;
        if !out.status.success() {
            bail!("vpnbridge {} failed: {}{}", args.join(" "), String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
        }
        Ok(serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null))
    };
    run(&["init", "--mode", mode.init_mode, "--output", "json"])?;
    let wall = std::time::Instant::now();
    let apply = run(&["apply", "--yes", "--output", "json"])?;
    let wall = wall.elapsed().as_secs_f64();
    let again = run(&["apply", "--yes", "--output", "json"])?;
    let destroy = run(&["destroy", "--yes", "--output", "json"])?;
    let steps = apply["execution"]["steps"].as_array().context("apply reported no steps")?;
    let last_connection = steps
        .iter()
        .filter(|s| s["cloud"] == "azure" && s["resource_type"] == "connection")
        .filter_map(|s| s["finished_at"].as_f64())
        .fold(0.0, f64::max);
    Ok(Trial {
        bound: lower_bound(mode, lat),
        last_connection,
        makespan: apply["modelled_seconds"].as_f64().unwrap_or(f64::NAN),
        manual: manual_sequential(mode, lat),
        steps: steps.len(),
        calls: apply["calls"].clone(),
        reapply: format!("result {}, calls {}", again["result"], again["calls"]),
        destroy: format!(
            "result {}, modelled {:.1} min",
            destroy["result"],
            destroy["modelled_seconds"].as_f64().unwrap_or(f64::NAN) / 60.0
        ),
        wall,
    })
}
