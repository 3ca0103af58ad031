//! The human reports: what `apply`, `destroy`, `verify` and `drill` print on stdout.

use std::time::Duration;

use vpnbridge::core::drill::{DrillReport, DrillResult};
use vpnbridge::core::probe::{PingPair, PingResult};
use vpnbridge::core::verify::{Expected, VerifyReport, VerifyResult};
use vpnbridge::{ApplyReport, Calls};

use crate::render;

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
        if let Some(b) = &t.bgp {
            out.push_str(&bgp_lines(b));
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

/// The human report of `drill`: one table row per drilled tunnel.
pub fn human_drill(report: &vpnbridge::DrillReport, real: bool) -> String {
    let r: &DrillReport = report;
    let probe_failed = report.probe_failed();
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
    let verdict = match r.result {
        DrillResult::Failed if probe_failed => "FAILED: the probe could not run, so traffic is unknown (not lost); see above",
        DrillResult::Passed if r.data_plane.observable => "PASSED: traffic survived losing each drilled tunnel",
        DrillResult::Passed => "PASSED on the control plane (traffic not observable)",
        DrillResult::Failed => "FAILED: connectivity was lost, or a tunnel did not come back",
    };
    out.push_str(&format!("Drill {verdict}.\n"));
    out
}

/// The human summary of `apply` / `destroy` once its steps ran.
pub fn change_summary(r: &ApplyReport) -> String {
    let mut out = String::from("\n");
    let Some(run) = &r.run else { return no_changes(r) };
    let plan = &r.plan;
    let report = &run.execution;
    let done = report.steps.iter().filter(|s| s.outcome == vpnbridge::core::exec::StepOutcome::Done).count();
    let real = !(r.simulated.azure && r.simulated.aws);
    let time_kind = if real { "elapsed" } else { "modelled (simulated clouds' time)" };
    if r.succeeded() {
        let what = if r.command == vpnbridge::report::Command::Apply { "built" } else { "destroyed" };
        out.push_str(&format!("Deployment \"{}\" {what}: {done}/{} steps done.\n", plan.deployment, plan.steps.len()));
    } else {
        out.push_str(&format!(
            "Deployment \"{}\": {done}/{} steps done, {} failed.\n",
            plan.deployment,
            plan.steps.len(),
            report.failures().count()
        ));
        for f in report.failures() {
            if let vpnbridge::core::exec::StepOutcome::Failed { error } = &f.outcome {
                out.push_str(&format!("  FAILED {} {} \"{}\": {error}\n", f.cloud, f.resource_type, f.name));
            }
        }
        out.push_str("Fix the cause and run the same command again: it picks up where this run stopped.\n");
    }
    out.push_str(&format!("Duration: {} {time_kind}; wall time {:.2}s.\n", render::duration(report.makespan), r.wall_seconds));
    out.push_str(&calls_line(&r.calls));
    if !run.tunnels.is_empty() {
        let up = run.tunnel_health.iter().filter(|h| h.is_up()).count();
        let settled = Duration::from_secs_f64(run.tunnels_checked_at_seconds);
        out.push_str(&format!("Tunnels: {up} of {} up at t+{}.\n", run.tunnel_health.len(), render::duration(settled)));
        out.push_str(&render::tunnels(&run.tunnels, &run.tunnel_health));
        if up < run.tunnel_health.len() {
            out.push_str("Some tunnels are not up yet: check again with `vpnbridge status`.\n");
        }
    }
    if let Some(t) = &run.traffic {
        out.push_str(&format!(
            "Traffic while the change ran (a ping each way every second of simulated time, {} s): lost {} s VNet -> VPC, {} s VPC -> VNet, {} s with no path at all.\n",
            t.watched_s, t.azure_to_aws_lost_s, t.aws_to_azure_lost_s, t.both_lost_s
        ));
    }
    out
}

fn no_changes(r: &ApplyReport) -> String {
    let n = r.calls.mutations();
    match r.reason {
        Some(vpnbridge::report::NoChangesReason::NothingExists) => {
            format!("No changes: nothing of deployment \"{}\" exists ({n} mutating calls).\n", r.deployment)
        }
        _ => format!("No changes: deployment \"{}\" already matches the configuration ({n} mutating calls).\n", r.deployment),
    }
}

fn calls_line(c: &Calls) -> String {
    format!(
        "Calls: Azure {} mutating / {} reads, AWS {} mutating / {} reads.\n",
        c.azure.mutations, c.azure.reads, c.aws.mutations, c.aws.reads
    )
}

/// A tunnel's BGP session, each end as its cloud reports it.
fn bgp_lines(b: &vpnbridge::core::verify::TunnelBgp) -> String {
    let ip = |v: Option<std::net::Ipv4Addr>| v.map_or("-".to_owned(), |i| i.to_string());
    let state = |s: vpnbridge::core::endpoint::BgpState| match s {
        vpnbridge::core::endpoint::BgpState::Established => "ESTABLISHED",
        vpnbridge::core::endpoint::BgpState::Down => "DOWN",
        vpnbridge::core::endpoint::BgpState::Unknown => "UNKNOWN",
    };
    let mut out = String::new();
    match &b.aws {
        Some(a) => out.push_str(&format!(
            "     BGP, AWS end:                  {} {} -> {} (ASN {}), {} route(s) accepted ({})\n",
            state(a.state),
            ip(a.local_address),
            ip(a.peer_address),
            a.peer_asn.map_or("?".to_owned(), |n| n.to_string()),
            a.routes_received.map_or("?".to_owned(), |n| n.to_string()),
            a.reason
        )),
        None => out.push_str("     BGP, AWS end:                  not reported\n"),
    }
    match &b.azure {
        Some(a) => {
            let learned = a.learned.as_ref().map_or("(not listed)".to_owned(), |l| {
                if l.is_empty() { "nothing".to_owned() } else { l.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ") }
            });
            out.push_str(&format!(
                "     BGP, Azure end:                {} {} -> {} (ASN {}), learned {} ({})\n",
                state(a.state),
                ip(a.local_address),
                ip(a.peer_address),
                a.peer_asn.map_or("?".to_owned(), |n| n.to_string()),
                learned,
                a.reason
            ));
        }
        None => out.push_str("     BGP, Azure end:                not reported\n"),
    }
    out
}
