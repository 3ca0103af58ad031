//! The subcommands.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Instant;

use anyhow::Context;
use vpnbridge_core::config;
use vpnbridge_core::exec::{ExecReport, ExecSettings, Executor};
use vpnbridge_core::pairing;
use vpnbridge_core::plan::{self, Plan, PlanKind};

use crate::args::{Cli, Command, Output};
use crate::session::{self, Session};
use crate::{Failure, exit, render};

pub fn run(cli: Cli) -> Result<u8, Failure> {
    let g = &cli.global;
    if let Command::Init { force } = cli.command {
        return init(&g.config, force, g.output.format());
    }
    let loaded = session::load_config(&g.config)?;
    plan::check_supported(&loaded.config).map_err(Failure::Unsupported)?;
    if let Command::Drill { .. } = cli.command {
        crate::verify::refuse_mixed_drill(&loaded.config)?;
    }
    let runtime = runtime(&loaded.config)?;
    // Opened inside the runtime, so the simulator's clock is anchored to the paused one.
    let session = runtime.block_on(Session::open(loaded, g, cli.command.name()))?;
    if let Some((_, dir)) = &session.sim {
        let (a, b) = session.simulated();
        if let Some(banner) = render::banner(a, b, Some(dir)) {
            eprintln!("{banner}");
        }
    }
    for w in &session.warnings {
        eprintln!("warning: {}: {}", w.field, w.message);
    }
    let result = runtime.block_on(async {
        match cli.command {
            Command::Init { .. } | Command::Completions { .. } => unreachable!("handled above"),
            Command::Plan { detailed_exitcode, destroy } => plan_cmd(&session, g.output.format(), detailed_exitcode, destroy).await,
            Command::Apply { yes, watch_traffic } => {
                change(&session, g.output.format(), PlanKind::Apply, Change { yes, tunnel_wait: g.tunnel_wait, watch_traffic }).await
            }
            Command::Destroy { yes } => {
                change(&session, g.output.format(), PlanKind::Destroy, Change { yes, tunnel_wait: g.tunnel_wait, watch_traffic: false })
                    .await
            }
            Command::Status => status(&session, g.output.format(), g.output.graph()).await,
            Command::Verify => crate::verify::verify_cmd(&session, g.output.format()).await,
            Command::Drill { tunnel, yes } => {
                crate::verify::drill_cmd(&session, g.output.format(), tunnel.and_then(|t| usize::try_from(t).ok()), yes).await
            }
        }
    });
    session.save()?;
    result
}

/// All-simulated runs use tokio's paused clock as the simulator's virtual clock: a
/// 45-minute gateway build takes milliseconds, and timings are still exact.
fn runtime(config: &vpnbridge_core::config::Config) -> anyhow::Result<tokio::runtime::Runtime> {
    use vpnbridge_core::config::Backend::Real;
    let rt = if config.azure.backend == Real || config.aws.backend == Real {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()
    };
    rt.context("starting the async runtime")
}

fn init(path: &std::path::Path, force: bool, output: Output) -> Result<u8, Failure> {
    if path.exists() && !force {
        return Err(Failure::Other(anyhow::anyhow!("{} already exists; pass --force to overwrite it", path.display())));
    }
    std::fs::write(path, config::EXAMPLE).with_context(|| format!("writing {}", path.display()))?;
    match output {
        Output::Json => println!("{}", serde_json::json!({"format_version": 1, "written": path})),
        Output::Human => {
            eprintln!("Wrote {}: a static-ha deployment on the simulator. Next: `vpnbridge plan`, then `vpnbridge apply`.", path.display())
        }
    }
    Ok(exit::OK)
}

async fn make_plan(session: &Session, kind: PlanKind) -> Result<Plan, Failure> {
    let observed = session.observe().await?;
    let plan = match kind {
        PlanKind::Apply => plan::plan_apply(&session.config, &observed).map_err(Failure::Preflight)?,
        PlanKind::Destroy => return plan::plan_destroy(&session.config, &observed).map_err(Failure::Preflight),
    };
    aws_preflight(session, &plan).await?;
    Ok(plan)
}

/// On real AWS: quotas for what the plan creates (an error stops here, before any
/// change) and whether a security group lets the ping of `verify` in (a warning).
async fn aws_preflight(session: &Session, plan: &Plan) -> Result<(), Failure> {
    let Some(aws) = &session.aws_real else { return Ok(()) };
    let creates = |t: plan::ResourceType| {
        plan.steps
            .iter()
            .filter(|s| s.cloud() == vpnbridge_core::endpoint::CloudName::Aws && s.action == plan::Action::Create && s.resource_type == t)
            .count() as u32
    };
    let need = vpnbridge_aws::QuotaNeed {
        vpn_gateways: creates(plan::ResourceType::VpnGateway),
        customer_gateways: creates(plan::ResourceType::CustomerGateway),
        vpn_connections_per_vgw: u32::from(vpnbridge_core::pairing::INSTANCES),
    };
    let azure: Vec<ipnet::IpNet> = session.config.azure.address_space.iter().map(|p| ipnet::IpNet::V4(*p)).collect();
    let checked = aws.preflight(&azure, need, vpnbridge_aws::Quotas::default()).await.context("AWS preflight")?;
    for w in &checked.warnings {
        eprintln!("warning: {w}");
    }
    if checked.errors.is_empty() { Ok(()) } else { Err(Failure::Preflight(plan::PlanError(checked.errors))) }
}

async fn plan_cmd(session: &Session, output: Output, detailed: bool, destroy: bool) -> Result<u8, Failure> {
    let kind = if destroy { PlanKind::Destroy } else { PlanKind::Apply };
    let plan = make_plan(session, kind).await?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&plan.to_json()).expect("json")),
        Output::Human if destroy && plan.is_empty() => println!("No changes: nothing of deployment \"{}\" exists.", plan.deployment),
        Output::Human => print!("{plan}"),
    }
    Ok(if detailed && !plan.is_empty() { exit::CHANGES_PENDING } else { exit::OK })
}

/// Asks before changing a real cloud; the simulator needs no confirmation.
fn confirm(session: &Session, plan: &Plan, yes: bool) -> Result<(), Failure> {
    if yes || !session.any_real() {
        return Ok(());
    }
    let c = plan.counts();
    let question = format!(
        "This changes real cloud resources ({} to create, {} to modify, {} to destroy). Type \"yes\" to go on: ",
        c.create, c.modify, c.delete
    );
    if !std::io::stdin().is_terminal() {
        return Err(Failure::NotConfirmed("a real cloud would change and there is no terminal to confirm on: pass --yes".into()));
    }
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).context("reading the confirmation")?;
    if answer.trim() == "yes" { Ok(()) } else { Err(Failure::NotConfirmed("not confirmed; nothing was changed".into())) }
}

/// How `apply` / `destroy` runs.
struct Change {
    yes: bool,
    /// Seconds to wait for the tunnels after the last step.
    tunnel_wait: u64,
    /// Simulator only: measure the traffic lost while the change runs.
    watch_traffic: bool,
}

async fn change(session: &Session, output: Output, kind: PlanKind, how: Change) -> Result<u8, Failure> {
    let Change { yes, tunnel_wait, watch_traffic } = how;
    let wall = Instant::now();
    let plan = make_plan(session, kind).await?;
    let human = output == Output::Human;
    if plan.is_empty() {
        let calls = session.calls();
        match output {
            Output::Json => {
                let doc = serde_json::json!({
                    "format_version": 1, "command": command_name(kind), "deployment": plan.deployment,
                    "result": "no_changes", "calls": calls,
                    "reason": if kind == PlanKind::Destroy { "nothing_exists" } else { "matches_configuration" },
                });
                println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
            }
            Output::Human if kind == PlanKind::Destroy => {
                println!("No changes: nothing of deployment \"{}\" exists ({} mutating calls).", plan.deployment, calls.mutations())
            }
            Output::Human => println!(
                "No changes: deployment \"{}\" already matches the configuration ({} mutating calls).",
                plan.deployment,
                calls.mutations()
            ),
        }
        return Ok(exit::OK);
    }
    if human && (!render::quiet() || (session.any_real() && !yes)) {
        eprint!("{plan}");
        eprintln!();
    }
    confirm(session, &plan, yes)?;
    // With one side simulated and the other real no tunnel can come up: changes do not
    // wait for their tunnel to be up again.
    let settings = ExecSettings { wait_tunnels_up: !session.mixed(), ..ExecSettings::default() };
    let executor = Executor::new(session.aws.clone(), session.azure.clone(), session.owner.clone(), settings);
    let progress = render::Progress::new(&plan, true);
    let p = progress.clone();
    let watch = match (watch_traffic, crate::verify::sim_probe(session), vpnbridge_core::probe::probe_addresses(&session.config)) {
        (true, Some(probe), Some((vnet_host, vpc_host))) => Some(vpnbridge_sim::TrafficWatch::start(probe, vnet_host, vpc_host)),
        (true, ..) => {
            return Err(Failure::Other(anyhow::anyhow!(
                "--watch-traffic needs both clouds simulated (backend = \"sim\" on both sides): it pings inside the simulator"
            )));
        }
        _ => None,
    };
    let report = executor.run(&plan, move |e| p.lock().expect("not poisoned").on_event(e, true)).await;
    let traffic = match watch {
        Some(w) => Some(w.stop().await),
        None => None,
    };
    let tunnel_wait_started = tokio::time::Instant::now();
    progress.lock().expect("not poisoned").finish();
    let ok = report.succeeded();
    let (joined, health) = if kind == PlanKind::Apply && ok && session.mixed() {
        if human && !render::quiet() {
            eprintln!("One side is simulated and the other real: no tunnel can come up between them, so apply does not wait for tunnels.");
        }
        tunnel_health(session).await?
    } else if kind == PlanKind::Apply && ok {
        wait_for_tunnels(session, human, std::time::Duration::from_secs(tunnel_wait)).await?
    } else {
        (Vec::new(), Vec::new())
    };
    // Time from the first step to the last check of the tunnels.
    let settled = report.makespan + tunnel_wait_started.elapsed();
    let calls = session.calls();
    match output {
        Output::Json => {
            let doc = serde_json::json!({
                "format_version": 1,
                "command": command_name(kind),
                "deployment": plan.deployment,
                "result": if ok { "applied" } else { "failed" },
                "simulated": {"azure": session.simulated().0, "aws": session.simulated().1},
                "plan": plan.to_json(),
                "execution": report,
                "modelled_seconds": report.makespan.as_secs_f64(),
                "tunnels_checked_at_seconds": settled.as_secs_f64(),
                "wall_seconds": wall.elapsed().as_secs_f64(),
                "calls": calls,
                "tunnels": joined,
                "tunnel_health": health,
                "traffic": traffic,
            });
            println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
        }
        Output::Human => {
            print_summary(session, kind, &plan, &report, (&joined, &health, settled), wall.elapsed(), calls);
            if let Some(t) = traffic {
                println!(
                    "Traffic while the change ran (a ping each way every second of simulated time, {} s): lost {} s VNet -> VPC, {} s VPC -> VNet, {} s with no path at all.",
                    t.watched_s, t.azure_to_aws_lost_s, t.aws_to_azure_lost_s, t.both_lost_s
                );
            }
        }
    }
    if ok { Ok(exit::OK) } else { Err(Failure::StepsFailed) }
}

fn command_name(kind: PlanKind) -> &'static str {
    match kind {
        PlanKind::Apply => "apply",
        PlanKind::Destroy => "destroy",
    }
}

fn print_summary(
    session: &Session,
    kind: PlanKind,
    plan: &Plan,
    report: &ExecReport,
    (joined, health, settled): (&[pairing::ObservedTunnel], &[pairing::TunnelHealth], std::time::Duration),
    wall: std::time::Duration,
    calls: session::Calls,
) {
    let done = report.steps.iter().filter(|s| s.outcome == vpnbridge_core::exec::StepOutcome::Done).count();
    let time_kind = if session.any_real() { "elapsed" } else { "modelled (simulated clouds' time)" };
    println!();
    if report.succeeded() {
        let what = if kind == PlanKind::Apply { "built" } else { "destroyed" };
        println!("Deployment \"{}\" {what}: {done}/{} steps done.", plan.deployment, plan.steps.len());
    } else {
        println!("Deployment \"{}\": {done}/{} steps done, {} failed.", plan.deployment, plan.steps.len(), report.failures().count());
        for f in report.failures() {
            if let vpnbridge_core::exec::StepOutcome::Failed { error } = &f.outcome {
                println!("  FAILED {} {} \"{}\": {error}", f.cloud, f.resource_type, f.name);
            }
        }
        println!("Fix the cause and run the same command again: it picks up where this run stopped.");
    }
    println!("Duration: {} {time_kind}; wall time {:.2}s.", render::duration(report.makespan), wall.as_secs_f64());
    println!(
        "Calls: Azure {} mutating / {} reads, AWS {} mutating / {} reads.",
        calls.azure.mutations, calls.azure.reads, calls.aws.mutations, calls.aws.reads
    );
    if !joined.is_empty() {
        let up = health.iter().filter(|h| h.is_up()).count();
        println!("Tunnels: {up} of {} up at t+{}.", health.len(), render::duration(settled));
        print!("{}", render::tunnels(joined, health));
        if up < health.len() {
            println!("Some tunnels are not up yet: check again with `vpnbridge status`.");
        }
    }
}

/// How often apply looks at the tunnels while it waits for them (`--tunnel-wait`).
const TUNNEL_POLL: std::time::Duration = std::time::Duration::from_secs(10);

/// After a successful apply: waits (bounded) until every used tunnel is up at both
/// ends, as both clouds report them.
async fn wait_for_tunnels(
    session: &Session,
    human: bool,
    limit: std::time::Duration,
) -> Result<(Vec<pairing::ObservedTunnel>, Vec<pairing::TunnelHealth>), Failure> {
    let start = tokio::time::Instant::now();
    let mut said = false;
    loop {
        let (joined, health) = tunnel_health(session).await?;
        if health.iter().all(|h| h.is_up()) || start.elapsed() >= limit {
            return Ok((joined, health));
        }
        if human && !said && !render::quiet() {
            eprintln!("Waiting for the tunnels to come up (IKE negotiation; up to {})...", render::duration(limit));
            said = true;
        }
        tokio::time::sleep(TUNNEL_POLL).await;
    }
}

async fn tunnel_health(session: &Session) -> Result<(Vec<pairing::ObservedTunnel>, Vec<pairing::TunnelHealth>), Failure> {
    let observed = session.observe().await?;
    let joined = pairing::join(&session.owner, &session.config.layout(), &observed.azure, &observed.aws);
    let ends = tunnel_ends(session).await?;
    let health = pairing::health(&joined, &ends);
    Ok((joined, health))
}

async fn tunnel_ends(session: &Session) -> Result<Vec<Box<dyn vpnbridge_core::endpoint::Tunnel>>, Failure> {
    let settings = vpnbridge_core::exec::ExecSettings::default();
    let ends = vpnbridge_core::exec::tunnel_ends(&*session.aws, &*session.azure, &session.owner, &settings).await;
    Ok(ends.context("reading the tunnels' status")?)
}

async fn status(session: &Session, output: Output, graph: Option<vpnbridge_core::topology::GraphFormat>) -> Result<u8, Failure> {
    let observed = session.observe().await?;
    let joined = pairing::join(&session.owner, &session.config.layout(), &observed.azure, &observed.aws);
    let ends = tunnel_ends(session).await?;
    let health = pairing::health(&joined, &ends);
    if let Some(format) = graph {
        print!("{}", vpnbridge_core::topology::Topology::new(&session.config, &observed, &joined, &health).render(format));
        return Ok(exit::OK);
    }
    match output {
        Output::Json => {
            let end_docs: Vec<serde_json::Value> = ends
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "cloud": e.cloud(), "resource": e.resource(), "instance": e.instance(),
                        "outside_ip": e.outside_ip(), "peer_ip": e.peer_ip(),
                        "inside_cidr": e.inside_cidr(), "status": e.status(),
                    })
                })
                .collect();
            let doc = serde_json::json!({
                "format_version": 1, "command": "status", "deployment": session.config.name,
                "simulated": {"azure": session.simulated().0, "aws": session.simulated().1},
                "tunnels": joined, "tunnel_health": health, "tunnel_ends": end_docs,
                "resources": resources_json(&observed),
            });
            println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
        }
        Output::Human => {
            println!("Deployment \"{}\" ({}, {} tunnels)", session.config.name, session.config.mode, session.config.tunnel_count());
            print!("{}", render::resources(&observed));
            println!("Tunnels:");
            print!("{}", render::tunnels(&joined, &health));
        }
    }
    Ok(exit::OK)
}

fn resources_json(o: &plan::Observed) -> serde_json::Value {
    let az = &o.azure;
    let aws = &o.aws;
    serde_json::json!({
        "azure": {
            "public_ips": az.public_ips.iter().map(|p| serde_json::json!({"name": p.name, "id": p.id, "ip_address": p.ip, "state": p.state})).collect::<Vec<_>>(),
            "vpn_gateway": az.vpn_gateway.as_ref().map(|g| serde_json::json!({"name": g.name, "id": g.id, "sku": g.sku, "generation": g.generation, "active_active": g.active_active, "state": g.state})),
            "local_network_gateways": az.local_network_gateways.iter().map(|l| serde_json::json!({"name": l.name, "gateway_ip": l.gateway_ip, "address_prefixes": l.address_prefixes, "state": l.state})).collect::<Vec<_>>(),
            "connections": az.connections.iter().map(|c| serde_json::json!({"name": c.name, "connection_status": c.connection_status, "tunnels": c.tunnels, "state": c.state})).collect::<Vec<_>>(),
        },
        "aws": {
            "vpn_gateways": aws.vpn_gateways.iter().map(|v| serde_json::json!({"id": v.id, "amazon_side_asn": v.amazon_asn, "state": v.state, "attachments": v.attachments.iter().map(|a| serde_json::json!({"vpc_id": a.vpc_id, "state": a.state})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
            "customer_gateways": aws.customer_gateways.iter().map(|c| serde_json::json!({"id": c.id, "ip_address": c.ip, "bgp_asn": c.bgp_asn, "state": c.state})).collect::<Vec<_>>(),
            "vpn_connections": aws.vpn_connections.iter().map(|v| serde_json::json!({"id": v.id, "customer_gateway_id": v.customer_gateway_id, "vpn_gateway_id": v.vpn_gateway_id, "state": v.state, "routes": v.routes.iter().map(|r| r.destination).collect::<Vec<_>>(), "telemetry": v.telemetry})).collect::<Vec<_>>(),
        },
    })
}
