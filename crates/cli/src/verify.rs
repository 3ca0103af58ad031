//! `vpnbridge verify` and `vpnbridge drill`: prove the VPN carries traffic, and that it
//! survives losing any one tunnel.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::Context;
use vpnbridge_core::config::{Backend, Config};
use vpnbridge_core::drill::{self, DrillError, DrillEvent, DrillReport, DrillResult, DrillSettings};
use vpnbridge_core::plan::PlanError;
use vpnbridge_core::probe::vm::{VmProbe, VmProbeSettings};
use vpnbridge_core::probe::{PingPair, PingResult, Probe};
use vpnbridge_core::verify::{self, DataPlane, Expected, VerifyError, VerifyReport, VerifyResult};
use vpnbridge_sim::SimProbe;

use crate::args::Output;
use crate::session::Session;
use crate::{Failure, exit, render};

/// Why the data plane cannot be observed with this config's backends, if it cannot.
pub fn not_observable_reason(config: &Config) -> Option<&'static str> {
    match (config.azure.backend, config.aws.backend) {
        (Backend::Sim, Backend::Sim) => None,
        (Backend::Real, Backend::Real) if config.probe.is_some() => None,
        (Backend::Real, Backend::Real) => Some(
            "real clouds without probe VMs: only the control plane (VgwTelemetry, tunnelConnectionStatus, IKE SAs) is \
             checked; name a test VM on each side in a [probe] table (azure_vm, aws_instance) to ping through the tunnels",
        ),
        _ => Some(
            "mixed backends: one side is simulated and the other real, so no packet can cross; only the pairing and \
             each side's own status are checked",
        ),
    }
}

/// How a [`vpnbridge_core::probe::ProbeError`] reads: a drill row failed by it is the
/// probe's outcome, not lost connectivity.
const PROBE_FAILED_PREFIX: &str = "the probe could not run";

/// `drill` refuses mixed backends before anything is opened.
pub fn refuse_mixed_drill(config: &Config) -> Result<(), Failure> {
    if config.azure.backend != config.aws.backend {
        return Err(Failure::NotObservable(format!(
            "drill refuses to run on mixed backends (azure.backend = {}, aws.backend = {}): a drill deletes an Azure \
             Connection and must see traffic move to another tunnel, and no traffic can cross between a simulated and \
             a real cloud; run it with both sides simulated, or both real",
            backend_name(config.azure.backend, "azure"),
            backend_name(config.aws.backend, "aws")
        )));
    }
    Ok(())
}

fn backend_name(b: Backend, real: &'static str) -> &'static str {
    match b {
        Backend::Sim => "\"sim\"",
        Backend::Real if real == "azure" => "\"azure\"",
        Backend::Real => "\"aws\"",
    }
}

/// The simulator's probe, when both sides are simulated (`apply --watch-traffic`).
pub(crate) fn sim_probe(session: &Session) -> Option<SimProbe> {
    if session.any_real() {
        return None;
    }
    let (cloud, _) = session.sim.as_ref()?;
    SimProbe::for_config(cloud.clone(), &session.config)
}

/// The probe for this session: the simulator's when both sides are simulated, the test
/// VMs of `[probe]` when both are real, none otherwise.
pub(crate) async fn probe(session: &Session) -> Result<Option<Box<dyn Probe>>, Failure> {
    if not_observable_reason(&session.config).is_some() {
        return Ok(None);
    }
    if let Some(p) = sim_probe(session) {
        return Ok(Some(Box::new(p)));
    }
    let config = &session.config;
    let (Some(probe), Some(azure)) = (&config.probe, &session.azure_real) else { return Ok(None) };
    let aws = vpnbridge_aws::AwsSettings {
        region: config.aws.region.clone(),
        vpc_id: config.aws.vpc_id.clone(),
        endpoint: config.aws.endpoint.clone().filter(|e| !e.is_empty()),
    };
    let instance = vpnbridge_aws::Ec2TestVm::connect(&aws, &probe.aws_instance).await.context("connecting to AWS for the probe")?;
    let vm = azure.test_vm(&probe.azure_vm);
    let settings = match std::env::var("VPNBRIDGE_PROBE_POLL_MS").ok().and_then(|v| v.parse::<u64>().ok()) {
        Some(ms) => VmProbeSettings { poll: Duration::from_millis(ms), ..VmProbeSettings::default() },
        None => VmProbeSettings::default(),
    };
    Ok(Some(Box::new(VmProbe::new(
        std::sync::Arc::new(vm),
        std::sync::Arc::new(instance),
        config.azure.address_space.clone(),
        config.aws.cidrs.clone(),
        settings,
    ))))
}

fn data_plane<'a>(session: &Session, probe: &'a Option<Box<dyn Probe>>) -> DataPlane<'a> {
    match probe {
        Some(p) => DataPlane::Probe(p.as_ref()),
        None => DataPlane::NotObservable(not_observable_reason(&session.config).unwrap_or("no probe")),
    }
}

fn simulated(session: &Session) -> serde_json::Value {
    let (azure, aws) = session.simulated();
    serde_json::json!({"azure": azure, "aws": aws})
}

/// The `verify --output json` document (format_version 1; see the README).
pub fn verify_json(session: &Session, report: &VerifyReport) -> serde_json::Value {
    serde_json::json!({
        "format_version": 1,
        "command": "verify",
        "deployment": report.deployment,
        "simulated": simulated(session),
        "result": report.result,
        "data_plane": report.data_plane,
        "tunnels": report.tunnels,
        "expected_down": report.expected_down,
        "ping": report.ping,
        "diagnoses": report.diagnoses,
        "probe_error": report.probe_error,
        "warnings": report.warnings,
    })
}

/// The `drill --output json` document (format_version 1; see the README).
pub fn drill_json(session: &Session, report: &DrillReport) -> serde_json::Value {
    serde_json::json!({
        "format_version": 1,
        "command": "drill",
        "deployment": report.deployment,
        "simulated": simulated(session),
        "result": report.result,
        "data_plane": report.data_plane,
        "baseline": report.baseline,
        "down_before": report.down_before,
        "tunnels": report.tunnels,
    })
}

pub async fn verify_cmd(session: &Session, output: Output) -> Result<u8, Failure> {
    let probe = probe(session).await?;
    let report = match verify::verify(&session.config, session.aws.as_ref(), session.azure.as_ref(), data_plane(session, &probe)).await {
        Ok(r) => r,
        Err(VerifyError::ProbePreflight(errors)) => return Err(Failure::Preflight(PlanError(errors))),
        Err(e) => return Err(Failure::Other(anyhow::Error::new(e).context("verifying the deployment"))),
    };
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&verify_json(session, &report)).expect("json")),
        Output::Human => print!("{}", human_verify(&report)),
    }
    Ok(verify_code(&report))
}

fn verify_code(report: &VerifyReport) -> u8 {
    match (report.result, report.data_plane.observable) {
        (VerifyResult::Problems, _) => exit::PROBLEM_FOUND,
        (VerifyResult::Ok, false) if report.probe_error.is_some() => exit::PROBE_FAILED,
        (VerifyResult::Ok, false) => exit::NOT_OBSERVABLE,
        (VerifyResult::Ok, true) => exit::OK,
    }
}

fn ping_line(p: &PingResult, from: &str, to: &str) -> String {
    let stats = p.stats.map_or(String::new(), |s| {
        let rtt = s.rtt_ms.map_or(String::new(), |r| format!(", rtt min/avg/max {:.3}/{:.3}/{:.3} ms", r.min, r.avg, r.max));
        format!(" ({} of {} replied, {:.0}% loss{rtt})", s.received, s.sent, s.loss_percent())
    });
    let mut s = format!(
        "  {} ({from}) -> {} ({to}): {}{stats}\n",
        p.from,
        p.to,
        if p.replied { "reply".to_owned() } else { format!("NO REPLY: {}", p.stopped.as_deref().unwrap_or("no reason given")) }
    );
    for hop in &p.path {
        s.push_str(&format!("      {hop}\n"));
    }
    s
}

fn pings(p: &PingPair) -> String {
    ping_line(&p.azure_to_aws, "VNet", "VPC") + &ping_line(&p.aws_to_azure, "VPC", "VNet")
}

/// The human report of `verify`.
pub fn human_verify(r: &VerifyReport) -> String {
    let mut out = String::new();
    let n = r.tunnels.len();
    let verdict = match (r.result, &r.ping) {
        (VerifyResult::Ok, Some(_)) => format!("VPN verified: {} of {n} tunnels up, ping both ways", r.tunnels_up()),
        (VerifyResult::Ok, None) if r.probe_error.is_some() => {
            format!("control plane verified: {} of {n} tunnels up; traffic UNKNOWN (the probe could not run)", r.tunnels_up())
        }
        (VerifyResult::Ok, None) => format!("control plane verified: {} of {n} tunnels up; traffic NOT OBSERVABLE", r.tunnels_up()),
        (VerifyResult::Problems, _) => format!("PROBLEMS FOUND: {} of {n} tunnels up, {} diagnoses", r.tunnels_up(), r.diagnoses.len()),
    };
    out.push_str(&format!("Deployment \"{}\": {verdict}.\n", r.deployment));
    out.push_str("Tunnels:\n");
    let ip = |v: Option<std::net::Ipv4Addr>| v.map_or("-".to_owned(), |i| i.to_string());
    for (i, t) in r.tunnels.iter().enumerate() {
        out.push_str(&format!(
            "  {}. {} {}: AWS {} <-> Azure {} via {}\n",
            i + 1,
            t.name,
            if t.up { "UP" } else { "DOWN" },
            ip(t.aws_outside_ip),
            t.slot.azure_connection,
            t.slot.local_network_gateway
        ));
        match &t.aws {
            Some(a) => out.push_str(&format!(
                "     AWS end (VgwTelemetry):        {} {} (last change {})\n",
                a.status,
                a.status_message,
                a.last_status_change.as_deref().unwrap_or("-")
            )),
            None => out.push_str("     AWS end (VgwTelemetry):        not reported\n"),
        }
        for e in &t.azure {
            let label = format!("Azure instance {} ({})", e.instance, ip(e.instance_ip));
            let what = match e.expected {
                Expected::Up => format!("{} {} (last change {})", e.status, e.reason, e.last_change.as_deref().unwrap_or("-")),
                Expected::DownByDesign => format!("{}, down by design", e.status),
            };
            out.push_str(&format!("     {label:<30} {what}\n"));
        }
        match &t.ike_sa {
            Some(sa) => out.push_str(&format!("     IKE SA:                        local {} <-> remote {}\n", sa.local, sa.remote)),
            None => out.push_str("     IKE SA:                        none\n"),
        }
    }
    out.push_str("Down by design:\n");
    for e in &r.expected_down {
        out.push_str(&format!("  {} instance {} ({}): {}\n", e.azure_connection, e.instance, ip(e.instance_ip), e.why));
    }
    match (&r.ping, &r.data_plane.reason) {
        (Some(p), _) => {
            out.push_str("Ping:\n");
            out.push_str(&pings(p));
        }
        (None, reason) => out.push_str(&format!("Ping: not observable ({})\n", reason.as_deref().unwrap_or("no probe"))),
    }
    for w in &r.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    if !r.diagnoses.is_empty() {
        out.push_str("Diagnoses:\n");
        for d in &r.diagnoses {
            out.push_str(&format!("  - {d}\n"));
        }
    }
    out
}

fn confirm_drill(session: &Session, yes: bool, count: usize) -> Result<(), Failure> {
    if yes || !session.any_real() {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::NotConfirmed(
            "a drill deletes real Azure Connections and there is no terminal to confirm on: pass --yes".into(),
        ));
    }
    eprint!(
        "The drill deletes and recreates real Azure Connections, one at a time ({count} tunnel(s)); each is down for minutes. \
         Type \"yes\" to go on: "
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).context("reading the confirmation")?;
    if answer.trim() == "yes" { Ok(()) } else { Err(Failure::NotConfirmed("not confirmed; nothing was changed".into())) }
}

pub async fn drill_cmd(session: &Session, output: Output, tunnel: Option<usize>, yes: bool) -> Result<u8, Failure> {
    refuse_mixed_drill(&session.config)?;
    confirm_drill(session, yes, tunnel.map_or(session.config.tunnel_count(), |_| 1))?;
    let probe = probe(session).await?;
    let human = output == Output::Human;
    let on_event = move |e: &DrillEvent| {
        // Progress, not the result (the table is): `-q` keeps only failures.
        if !human || (render::quiet() && !matches!(e, DrillEvent::Failed { .. })) {
            return;
        }
        let t = |at: &f64| render::duration(Duration::from_secs_f64(*at));
        match e {
            DrillEvent::Down { tunnel, at } => eprintln!("  t+{:>9}  {tunnel}: Azure Connection deleted", t(at)),
            DrillEvent::TrafficChecked { tunnel, at, kept } => eprintln!(
                "  t+{:>9}  {tunnel}: after dead peer detection, traffic {}",
                t(at),
                match kept {
                    Some(true) => "flows both ways",
                    Some(false) => "is LOST",
                    None => "not observable",
                }
            ),
            DrillEvent::Restoring { tunnel, at } => eprintln!("  t+{:>9}  {tunnel}: recreating the Connection", t(at)),
            DrillEvent::Restored { tunnel, at } => eprintln!("  t+{:>9}  {tunnel}: tunnel up again", t(at)),
            DrillEvent::Failed { tunnel, at, error } => eprintln!("  t+{:>9}  {tunnel}: FAILED: {error}", t(at)),
        }
    };
    // A VM starts its Run Command some seconds after the cloud accepted it: the series
    // outlast dead peer detection by a margin on real clouds.
    let settings = if session.any_real() {
        DrillSettings { series_margin: Duration::from_secs(15), ..DrillSettings::default() }
    } else {
        DrillSettings::default()
    };
    let result = drill::drill(
        &session.config,
        session.aws.clone(),
        session.azure.clone(),
        data_plane(session, &probe),
        tunnel,
        &settings,
        &on_event,
    )
    .await;
    let report = match result {
        Ok(r) => r,
        Err(DrillError::CannotReplan(e)) => return Err(Failure::Preflight(e)),
        Err(DrillError::Verify(VerifyError::ProbePreflight(errors))) => return Err(Failure::Preflight(PlanError(errors))),
        Err(e) => return Err(Failure::Other(anyhow::Error::new(e).context("running the drill"))),
    };
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&drill_json(session, &report)).expect("json")),
        Output::Human => print!("{}", human_drill(&report, session.any_real())),
    }
    let probe_failed = report.tunnels.iter().any(|r| r.error.as_deref().is_some_and(|e| e.starts_with(PROBE_FAILED_PREFIX)));
    Ok(match (report.result, report.data_plane.observable) {
        (DrillResult::Failed, _) if probe_failed => exit::PROBE_FAILED,
        (DrillResult::Failed, _) => exit::PROBLEM_FOUND,
        (DrillResult::Passed, false) => exit::NOT_OBSERVABLE,
        (DrillResult::Passed, true) => exit::OK,
    })
}

/// The human report of `drill`: one table row per drilled tunnel.
pub fn human_drill(r: &DrillReport, real: bool) -> String {
    let mut out = String::new();
    let time = if real { "elapsed time" } else { "simulated time" };
    out.push_str(&format!("Drill of deployment \"{}\" ({time} since the drill started):\n", r.deployment));
    if let Some(b) = &r.baseline
        && !b.both_ways()
    {
        out.push_str("Before the drill, traffic did not flow both ways:\n");
        out.push_str(&pings(b));
    }
    if !r.down_before.is_empty() {
        out.push_str(&format!("Before the drill, these tunnels were down: {}\n", r.down_before.join(", ")));
    }
    let t = |s: Option<f64>| s.map_or("-".to_owned(), |s| format!("t+{}", render::duration(Duration::from_secs_f64(s))));
    let rows: Vec<[String; 6]> = r
        .tunnels
        .iter()
        .map(|row| {
            let kept = match row.traffic_kept {
                Some(true) => "yes".to_owned(),
                Some(false) => "NO".to_owned(),
                None if row.other_tunnels_up => "not observable (other tunnels up)".to_owned(),
                None => "not observable (other tunnels DOWN)".to_owned(),
            };
            let interruption = row.interruption.map_or("-".to_owned(), |i| render::duration(Duration::from_secs_f64(i.max)));
            let reverify = match (row.reverify, &row.error) {
                (_, Some(_)) => "FAILED".to_owned(),
                (Some(VerifyResult::Ok), _) => "ok".to_owned(),
                (Some(VerifyResult::Problems), _) => "problems".to_owned(),
                (None, _) => "-".to_owned(),
            };
            [format!("{} ({})", row.tunnel, row.azure_connection), t(row.down_at), kept, interruption, t(row.restored_at), reverify]
        })
        .collect();
    let head = ["tunnel", "down at", "traffic kept?", "interruption", "restored at", "re-verify"].map(String::from);
    let mut width = [0usize; 6];
    for row in std::iter::once(&head).chain(&rows) {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    for row in std::iter::once(&head).chain(&rows) {
        let cells: Vec<String> = row.iter().zip(width).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(&format!("  {}\n", cells.join("  ").trim_end()));
    }
    for row in &r.tunnels {
        if let Some(e) = &row.error {
            out.push_str(&format!("  ! {}: {e}\n", row.tunnel));
        }
        for n in &row.notes {
            out.push_str(&format!("  note: {}: {n}\n", row.tunnel));
        }
        if let Some(p) = &row.after_dpd
            && !p.both_ways()
        {
            out.push_str(&format!("  ! {}: after dead peer detection:\n", row.tunnel));
            out.push_str(&pings(p));
        }
    }
    let probe_failed = r.tunnels.iter().any(|t| t.error.as_deref().is_some_and(|e| e.starts_with(PROBE_FAILED_PREFIX)));
    let verdict = match r.result {
        DrillResult::Failed if probe_failed => "FAILED: the probe could not run, so traffic is unknown (not lost); see above",
        DrillResult::Passed if r.data_plane.observable => "PASSED: traffic survived losing each drilled tunnel",
        DrillResult::Passed => "PASSED on the control plane (traffic not observable)",
        DrillResult::Failed => "FAILED: connectivity was lost, or a tunnel did not come back",
    };
    out.push_str(&format!("Drill {verdict}.\n"));
    out
}
