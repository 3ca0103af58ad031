//! Human output: progress while a plan runs, summaries and the status table, and the
//! process's own writers for stdout and stderr (see [`stdout`]).

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use vpnbridge::core::endpoint::TunnelStatus;
use vpnbridge::core::exec::ExecEvent;
use vpnbridge::core::pairing::{ObservedTunnel, TunnelHealth};
use vpnbridge::core::plan::{Observed, Plan};

use crate::logging;

/// How chatty stderr is, set once from the command line.
static QUIET: AtomicBool = AtomicBool::new(false);

/// `-q/--quiet`: no progress, no plan echo, no banner but its SIMULATED line.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether `-q/--quiet` was given.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Set when stdout's reader has gone away (a closed pipe): the rest of the output is
/// dropped, and the command runs to its end and exits with its own code.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// The first error writing to stdout other than a closed pipe (a full disk...).
static STDOUT_ERROR: OnceLock<std::io::Error> = OnceLock::new();

/// Writes to stdout. A closed pipe (`vpnbridge status -o json | head -1`) is the
/// reader being done, not a failure: nothing more is written and nothing panics.
/// Any other error is kept for [`stdout_error`].
pub fn stdout(args: std::fmt::Arguments<'_>, newline: bool) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let result = out.write_fmt(args).and_then(|()| if newline { out.write_all(b"\n") } else { Ok(()) });
    if let Err(e) = result {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let _ = STDOUT_ERROR.set(e);
        }
    }
}

/// Flushes stdout, then: the error that stopped the output, if it was not a closed pipe.
pub fn stdout_error() -> Option<&'static std::io::Error> {
    if !STDOUT_CLOSED.load(Ordering::Relaxed)
        && let Err(e) = std::io::stdout().lock().flush()
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        let _ = STDOUT_ERROR.set(e);
    }
    STDOUT_ERROR.get()
}

/// Writes to stderr; an error there (a closed pipe too) has nowhere to be reported
/// and is ignored, so it never ends the command.
pub fn stderr(args: std::fmt::Arguments<'_>, newline: bool) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| if newline { err.write_all(b"\n") } else { Ok(()) });
}

/// `46m 50s`, `1h 02m 03s`, `0.4s`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        return format!("{:.1}s", d.as_secs_f64());
    }
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m {s:02}s"),
    }
}

/// The loud banner shown whenever a side is simulated; with `--quiet` only its
/// SIMULATED line, which is never left out.
pub fn banner(azure_sim: bool, aws_sim: bool, dir: Option<&std::path::Path>) -> Option<String> {
    let which = match (azure_sim, aws_sim) {
        (true, true) => "Azure and AWS are",
        (true, false) => "Azure is",
        (false, true) => "AWS is",
        (false, false) => return None,
    };
    let line = format!("SIMULATED: {which} the embedded simulator; nothing real is created or changed.");
    if quiet() {
        return Some(line);
    }
    let state = dir.map(|d| format!("Simulated clouds are kept in {}", d.display())).unwrap_or_default();
    let width = line.len().max(state.len()) + 4;
    let rule = "=".repeat(width);
    Some(format!("{rule}\n  {line}\n  {state}\n{rule}"))
}

/// Prints each step as it finishes, with a bar on a terminal (nothing with `--quiet`).
/// The bar has no colours of its own, so `--color` and `NO_COLOR` concern only logs;
/// it is drawn only when stderr is a terminal.
pub struct Progress {
    bar: Option<ProgressBar>,
    labels: Vec<String>,
}

impl Progress {
    pub fn new(plan: &Plan, show: bool) -> Self {
        let show = show && !quiet();
        let bar = (show && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new(plan.steps.len() as u64);
            b.set_style(
                ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} steps  {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            logging::set_active_bar(Some(b.clone()));
            b
        });
        let labels = plan.steps.iter().map(|s| format!("{} {} \"{}\"", s.cloud(), s.resource_type, s.name)).collect();
        Self { bar: if show { bar } else { None }, labels }
    }

    pub fn on_event(&self, e: &ExecEvent, show: bool) {
        let line = match e {
            ExecEvent::Started { step, at } => {
                if let Some(b) = &self.bar {
                    b.set_message(format!("t+{}  started {}", duration(*at), self.labels[*step]));
                }
                tracing::info!(step, "started {}", self.labels[*step]);
                None
            }
            ExecEvent::Finished { step, at } => Some(format!("  ok    t+{:>9}  {}", duration(*at), self.labels[*step])),
            ExecEvent::Failed { step, at, error } => Some(format!("  FAIL  t+{:>9}  {}: {error}", duration(*at), self.labels[*step])),
            ExecEvent::Retrying { step, at, error, delay } => {
                Some(format!("  retry t+{:>9}  {} in {}: {error}", duration(*at), self.labels[*step], duration(*delay)))
            }
            ExecEvent::Skipped { step, because_of } => {
                Some(format!("  skip               {} (step #{because_of} failed)", self.labels[*step]))
            }
        };
        if let (Some(l), true) = (line, show && !quiet()) {
            match &self.bar {
                Some(b) => {
                    if !matches!(e, ExecEvent::Retrying { .. }) {
                        b.inc(1);
                    }
                    b.println(l);
                }
                None => eprintln!("{l}"),
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
            logging::set_active_bar(None);
        }
    }
}

/// The tunnel table: how the two clouds pair up and what each end reports.
/// One end's BGP session in a line: state, addresses, the peer's ASN, routes.
pub fn bgp(b: &Option<vpnbridge::core::endpoint::BgpPeer>) -> String {
    use vpnbridge::core::endpoint::BgpState;
    let Some(b) = b else { return "not reported".to_owned() };
    let state = match b.state {
        BgpState::Established => "ESTABLISHED",
        BgpState::Down => "DOWN",
        BgpState::Unknown => "UNKNOWN",
    };
    let mut out = state.to_owned();
    if let (Some(l), Some(p)) = (b.local_address, b.peer_address) {
        out.push_str(&format!(" {l} -> {p}"));
    }
    if let Some(a) = b.peer_asn {
        out.push_str(&format!(" (peer ASN {a})"));
    }
    if let Some(n) = b.routes_received {
        out.push_str(&format!(", {n} route(s) received"));
    }
    if b.state != BgpState::Established && !b.reason.is_empty() {
        out.push_str(&format!(" ({})", b.reason));
    }
    out
}

pub fn tunnels(joined: &[ObservedTunnel], health: &[TunnelHealth]) -> String {
    let mut out = String::new();
    let opt = |v: Option<std::net::Ipv4Addr>| v.map_or("-".to_owned(), |ip| ip.to_string());
    let end = |s: &Option<TunnelStatus>| s.as_ref().map_or("not reported".to_owned(), |s| format!("{} ({})", s.state, s.reason));
    for (i, t) in joined.iter().enumerate() {
        let s = &t.slot;
        out.push_str(&format!(
            "  {}. Azure instance {} ({}) <-> {} tunnel {} ({}), CGW {}\n",
            i + 1,
            s.expected_up_instance,
            opt(t.azure_instance_ip),
            t.vpn_connection_id.as_deref().unwrap_or("-"),
            s.tunnel + 1,
            opt(t.aws_outside_ip),
            t.customer_gateway_id.as_deref().unwrap_or("-"),
        ));
        out.push_str(&format!("     Azure {} via {} (remote IP {})\n", s.azure_connection, s.local_network_gateway, opt(t.lng_gateway_ip)));
        if let Some(h) = health.iter().find(|h| h.slot == *s) {
            out.push_str(&format!("     AWS end:              {}\n", end(&h.aws)));
            out.push_str(&format!("     Azure instance {} end: {}\n", s.expected_up_instance, end(&h.azure_expected)));
            let other = h.azure_other.as_ref().map_or("not reported".to_owned(), |st| st.state.to_string());
            out.push_str(&format!(
                "     Azure instance {} end: {other}, down by design (AWS accepts this tunnel only from its CGW's IP)\n",
                s.expected_down_instance
            ));
            if h.bgp_aws.is_some() || h.bgp_azure.is_some() {
                out.push_str(&format!(
                    "     BGP: AWS {}; Azure instance {} {}\n",
                    bgp(&h.bgp_aws),
                    s.expected_up_instance,
                    bgp(&h.bgp_azure)
                ));
            }
        }
        for p in &t.problems {
            out.push_str(&format!("     ! {p}\n"));
        }
    }
    out
}

/// Both clouds' resources of the deployment, one line each.
pub fn resources(o: &Observed) -> String {
    let mut out = String::new();
    out.push_str("Azure\n");
    for p in &o.azure.public_ips {
        out.push_str(&format!(
            "  public_ip              {:<28} {:<16} {:?}\n",
            p.name,
            p.ip.map(|i| i.to_string()).unwrap_or_default(),
            p.state
        ));
    }
    if let Some(g) = &o.azure.vpn_gateway {
        let bgp = if g.enable_bgp { g.asn.map_or(" BGP".to_owned(), |a| format!(" BGP ASN {a}")) } else { String::new() };
        let desc = format!("{} {}{}{bgp}", g.sku, g.generation, if g.active_active { " active-active" } else { "" });
        out.push_str(&format!("  vpn_gateway            {:<28} {:<16} {:?}\n", g.name, desc, g.state));
    }
    for l in &o.azure.local_network_gateways {
        let peer = l.bgp.map_or(String::new(), |b| format!(" BGP peer {} ASN {}", b.peering_address, b.asn));
        out.push_str(&format!("  local_network_gateway  {:<28} {:<16} {:?}{peer}\n", l.name, l.gateway_ip, l.state));
    }
    for c in &o.azure.connections {
        out.push_str(&format!("  connection             {:<28} {:<16} {:?}\n", c.name, c.connection_status, c.state));
    }
    out.push_str("AWS\n");
    for v in &o.aws.vpn_gateways {
        let att = v.attachments.iter().map(|a| format!("{} {:?}", a.vpc_id, a.state).to_lowercase()).collect::<Vec<_>>().join(", ");
        out.push_str(&format!("  vpn_gateway            {:<28} {:<16} {:?}\n", v.id, att, v.state));
    }
    for c in &o.aws.customer_gateways {
        out.push_str(&format!("  customer_gateway       {:<28} {:<16} {:?}\n", c.id, c.ip, c.state));
    }
    for v in &o.aws.vpn_connections {
        let routes = v.routes.iter().map(|r| r.destination.to_string()).collect::<Vec<_>>().join(",");
        out.push_str(&format!("  vpn_connection         {:<28} {:<16} {:?}\n", v.id, routes, v.state));
    }
    if let Some(vpc) = &o.aws.vpc {
        let vgw_ids: Vec<&str> = o.aws.vpn_gateways.iter().map(|v| v.id.as_str()).collect();
        for t in &vpc.route_tables {
            for v in t.propagating_vgws.iter().filter(|v| vgw_ids.contains(&v.as_str())) {
                out.push_str(&format!("  route_propagation      {:<28} {:<16} enabled\n", t.id, v));
            }
            for r in t.routes.iter().filter(|r| r.gateway_id.as_deref().is_some_and(|g| vgw_ids.contains(&g))) {
                let origin = if r.propagated { " (propagated)" } else { "" };
                out.push_str(&format!("  vpc_route              {:<28} {:<16} {}{origin}\n", t.id, r.destination, r.state));
            }
        }
    }
    out
}
