//! vpnbridge's own build tool.
//!
//!   cargo xtask ci      fmt check, clippy (warnings denied), every test
//!   cargo xtask bench   modelled makespan of a simulated apply vs. an independent
//!                       lower bound and the manual procedure, plus call counts

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(),
        Some("chaos") => chaos(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci|bench>\n  ci     fmt check, clippy -D warnings, all tests\n  bench  simulated apply: makespan vs. lower bound and manual order, call counts"
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
    cargo(&["fmt", "--all", "--", "--check"]).context("formatting differs: run `cargo fmt --all`")?;
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

/// The clouds' real dependencies and the default latencies (seconds), written here
/// independently of the planner so that a needless edge in a plan would show up as a
/// makespan above this bound.
const REAL_DEPENDENCIES: &[(&str, f64, &[&str])] = &[
    ("azure public ip 0", 10.0, &[]),
    ("azure public ip 1", 10.0, &[]),
    ("azure vpn gateway", 2700.0, &["azure public ip 0", "azure public ip 1"]),
    ("aws vgw", 20.0, &[]),
    ("aws vgw attach", 40.0, &["aws vgw"]),
    ("aws vpc route", 2.0, &["aws vgw attach"]),
    ("aws cgw 0", 10.0, &["azure public ip 0"]),
    ("aws cgw 1", 10.0, &["azure public ip 1"]),
    ("aws vpn connection 0", 360.0, &["aws cgw 0", "aws vgw"]),
    ("aws vpn connection 1", 360.0, &["aws cgw 1", "aws vgw"]),
    ("aws vpn route 0", 15.0, &["aws vpn connection 0"]),
    ("aws vpn route 1", 15.0, &["aws vpn connection 1"]),
    ("azure lng 0", 45.0, &["aws vpn connection 0"]),
    ("azure lng 1", 45.0, &["aws vpn connection 1"]),
    ("azure connection 0", 90.0, &["azure vpn gateway", "azure lng 0"]),
    ("azure connection 1", 90.0, &["azure vpn gateway", "azure lng 1"]),
];

fn lower_bound() -> f64 {
    let mut finish: Vec<(&str, f64)> = Vec::new();
    for (name, dur, deps) in REAL_DEPENDENCIES {
        let start = deps.iter().map(|d| finish.iter().find(|(n, _)| n == d).expect("deps listed first").1).fold(0.0, f64::max);
        finish.push((name, start + dur));
    }
    finish.iter().map(|(_, f)| *f).fold(0.0, f64::max)
}

fn manual_sequential() -> f64 {
    REAL_DEPENDENCIES.iter().map(|(_, d, _)| d).sum()
}

fn bench() -> Result<()> {
    cargo(&["build", "--quiet", "-p", "vpnbridge"])?;
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root().join("target"));
    let bin = target.join("debug").join("vpnbridge");
    let dir = std::env::temp_dir().join(format!("vpnbridge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("vpnbridge.toml");
    let run = |args: &[&str]| -> Result<serde_json::Value> {
        let out = Command::new(&bin).arg("--config").arg(&config).args(args).output().context("running vpnbridge")?;
        if !out.status.success() && !out.stdout.starts_with(b"{") {
            bail!("vpnbridge {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null))
    };
    run(&["init", "--output", "json"])?;
    let wall = std::time::Instant::now();
    let apply = run(&["apply", "--yes", "--output", "json"])?;
    let wall = wall.elapsed().as_secs_f64();
    let again = run(&["apply", "--yes", "--output", "json"])?;
    let destroy = run(&["destroy", "--yes", "--output", "json"])?;
    let _ = std::fs::remove_dir_all(&dir);

    let steps = apply["execution"]["steps"].as_array().context("apply reported no steps")?;
    let makespan = apply["modelled_seconds"].as_f64().unwrap_or(f64::NAN);
    let last_connection = steps
        .iter()
        .filter(|s| s["cloud"] == "azure" && s["resource_type"] == "connection")
        .filter_map(|s| s["finished_at"].as_f64())
        .fold(0.0, f64::max);
    let bound = lower_bound();
    let manual = manual_sequential();
    let m = |s: f64| format!("{:.1} min", s / 60.0);
    println!("vpnbridge bench (simulator, default latency table, static-ha, 2 tunnels)");
    println!("  lower bound (independent dependency table)   {}", m(bound));
    println!(
        "  modelled: last Connection created             {}  ({:+.2}% vs bound)",
        m(last_connection),
        (last_connection / bound - 1.0) * 100.0
    );
    println!("  modelled: whole apply                         {}", m(makespan));
    println!("  manual order, every wait in sequence          {}  (vpnbridge saves {})", m(manual), m(manual - last_connection));
    println!("  steps                                         {}", steps.len());
    println!("  calls during apply                            {}", apply["calls"]);
    println!("  re-apply: result {}, calls {}", again["result"], again["calls"]);
    println!("  destroy: result {}, modelled {}", destroy["result"], m(destroy["modelled_seconds"].as_f64().unwrap_or(f64::NAN)));
    println!("  wall time of the simulated apply              {wall:.2} s (process start to exit)");
    Ok(())
}
