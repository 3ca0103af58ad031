//! The subcommands: open the [`Deployment`], call it, render its report.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use vpnbridge::core::drill::DrillEvent;
use vpnbridge::core::topology::GraphFormat;
use vpnbridge::report::{self, InitReport};
use vpnbridge::{Access, ApplyOptions, ApplyResult, Confirm, Deployment, Event, LatencyTable, Options, Outcome, Progress, Question};

use crate::args::{Cli, Command, Global, Output};
use crate::{Failure, exit, render, text};

/// A command that works on a deployment.
enum Job {
    Plan { detailed_exitcode: bool, destroy: bool },
    Apply { yes: bool, watch_traffic: bool },
    Destroy { yes: bool },
    Status { graph: Option<GraphFormat> },
    Verify,
    Drill { tunnel: Option<usize>, yes: bool },
}

pub fn run(cli: Cli) -> Result<u8, Failure> {
    let g = &cli.global;
    let output = g.output.format();
    let job = match cli.command {
        Command::Init { force, mode } => return init(&g.config, force, &mode, output),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "vpnbridge", &mut script);
            print!("{}", String::from_utf8_lossy(&script));
            return Ok(exit::OK);
        }
        Command::Plan { detailed_exitcode, destroy } => Job::Plan { detailed_exitcode, destroy },
        Command::Apply { yes, watch_traffic } => Job::Apply { yes, watch_traffic },
        Command::Destroy { yes } => Job::Destroy { yes },
        Command::Status => Job::Status { graph: g.output.graph() },
        Command::Verify => Job::Verify,
        Command::Drill { tunnel, yes } => Job::Drill { tunnel: tunnel.and_then(|t| usize::try_from(t).ok()), yes },
    };
    let loaded = vpnbridge::load(&g.config)?;
    if let Job::Drill { .. } = job {
        vpnbridge::drill_refusal(&loaded.config)?;
    }
    let access = match &job {
        Job::Plan { .. } | Job::Status { .. } | Job::Verify => Access::ReadOnly,
        Job::Apply { .. } => Access::Change("apply".into()),
        Job::Destroy { .. } => Access::Change("destroy".into()),
        Job::Drill { .. } => Access::Change("drill".into()),
    };
    let runtime = vpnbridge::runtime(&loaded.config)?;
    let options = options(g, access)?;
    // Opened inside the runtime, so the simulator's clock is anchored to the paused one.
    let deployment = runtime.block_on(Deployment::open(loaded, options))?;
    let simulated = deployment.simulated();
    if let Some(banner) = render::banner(simulated.azure, simulated.aws, Some(deployment.state_dir())) {
        eprintln!("{banner}");
    }
    for w in deployment.warnings() {
        eprintln!("warning: {}: {}", w.field, w.message);
    }
    runtime.block_on(async {
        let d = &deployment;
        match job {
            Job::Plan { detailed_exitcode, destroy } => plan(d, output, detailed_exitcode, destroy).await,
            Job::Apply { yes, watch_traffic } => change(d, output, yes, Some(ApplyOptions { watch_traffic })).await,
            Job::Destroy { yes } => change(d, output, yes, None).await,
            Job::Status { graph } => status(d, output, graph).await,
            Job::Verify => verify(d, output).await,
            Job::Drill { tunnel, yes } => drill(d, output, tunnel, yes).await,
        }
    })
}

fn options(g: &Global, access: Access) -> Result<Options, Failure> {
    Ok(Options {
        state_dir: g.sim_dir.clone(),
        access,
        lock_wait: Duration::from_secs(g.lock_wait),
        on_lock_wait: Some(Arc::new(|holder| {
            if !render::quiet() {
                eprintln!("Waiting for another vpnbridge run to finish: {holder}");
            }
        })),
        tunnel_wait: Duration::from_secs(g.tunnel_wait),
        sim_latency: g.sim_latency.as_deref().map(latency_table).transpose()?,
        sim_faults: g.sim_faults.clone(),
        // A simulated crash ends the process on the spot, as a real one would; the next
        // run finishes the job.
        on_simulated_crash: Some(Arc::new(|call| {
            eprintln!("\nSIMULATED CRASH right after call {call}: this process stops here. Run the same command again to finish the job.");
            std::process::exit(exit::SIMULATED_CRASH.into());
        })),
    })
}

/// `--sim-latency` / `VPNBRIDGE_SIM_LATENCY`: a JSON file of milliseconds per operation
/// (any subset of the keys of `LatencyTable`, e.g. `{"azure_vpn_gateway": 1800000}`).
fn latency_table(path: &Path) -> Result<LatencyTable, Failure> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the --sim-latency file {}", path.display()))?;
    Ok(serde_json::from_str(&text)
        .with_context(|| format!("the --sim-latency file {}: milliseconds per latency-table key expected", path.display()))?)
}

fn init(path: &Path, force: bool, mode: &str, output: Output) -> Result<u8, Failure> {
    if path.exists() && !force {
        return Err(anyhow::anyhow!("{} already exists; pass --force to overwrite it", path.display()).into());
    }
    let mode = if mode == "bgp-ha" { vpnbridge::core::config::Mode::BgpHa } else { vpnbridge::core::config::Mode::StaticHa };
    std::fs::write(path, vpnbridge::core::config::example(mode)).with_context(|| format!("writing {}", path.display()))?;
    match output {
        Output::Json => println!("{}", report::to_json(&InitReport::new(path.to_owned()))),
        Output::Human => {
            eprintln!("Wrote {}: a {mode} deployment on the simulator. Next: `vpnbridge plan`, then `vpnbridge apply`.", path.display())
        }
    }
    Ok(exit::OK)
}

fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

async fn plan(d: &Deployment, output: Output, detailed: bool, destroy: bool) -> Result<u8, Failure> {
    let report = if destroy { d.plan_destroy().await? } else { d.plan().await? };
    warn(&report.warnings);
    match output {
        Output::Json => println!("{}", report::to_json(&report)),
        Output::Human if destroy && report.plan.is_empty() => {
            println!("No changes: nothing of deployment \"{}\" exists.", report.plan.deployment)
        }
        Output::Human => print!("{}", report.plan),
    }
    Ok(if detailed && !report.plan.is_empty() { exit::CHANGES_PENDING } else { exit::OK })
}

/// The terminal's answer: the simulator needs none; a real cloud asks unless `--yes`.
struct Ask {
    yes: bool,
    human: bool,
}

impl Confirm for Ask {
    fn confirm(&self, q: &Question<'_>) -> Result<(), String> {
        if self.yes || !q.real() {
            return Ok(());
        }
        if let Question::Change { plan, .. } = q
            && self.human
            && render::quiet()
        {
            // Quiet hides the plan; it is still shown before a real change is asked for.
            eprint!("{plan}");
            eprintln!();
        }
        if !std::io::stdin().is_terminal() {
            return Err(match q {
                Question::Drill { .. } => "a drill deletes real Azure Connections and there is no terminal to confirm on: pass --yes",
                _ => "a real cloud would change and there is no terminal to confirm on: pass --yes",
            }
            .into());
        }
        eprint!("{}", q.prompt());
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).map_err(|e| format!("reading the confirmation: {e}"))?;
        if answer.trim() == "yes" { Ok(()) } else { Err("not confirmed; nothing was changed".into()) }
    }
}

/// The plan on stderr, then each step as it finishes (a bar on a terminal), and the
/// wait for the tunnels; nothing but warnings with `--quiet` or `--output json`.
fn change_progress(human: bool) -> Progress {
    let steps: Mutex<Option<render::Progress>> = Mutex::new(None);
    Progress::new(move |e| {
        let mut steps = steps.lock().expect("not poisoned");
        match e {
            Event::Planned { plan, warnings } => {
                warn(warnings);
                if human && !render::quiet() {
                    eprint!("{plan}");
                    eprintln!();
                }
                *steps = Some(render::Progress::new(plan, true));
            }
            Event::Step(e) => {
                if let Some(p) = steps.as_ref() {
                    p.on_event(e, true);
                }
            }
            Event::StepsDone => {
                if let Some(p) = steps.take() {
                    p.finish();
                }
            }
            Event::WaitingForTunnels { limit } if human && !render::quiet() => {
                eprintln!("Waiting for the tunnels to come up (IKE negotiation; up to {})...", render::duration(*limit));
            }
            Event::NotWaitingForTunnels { reason } if human && !render::quiet() => {
                eprintln!("{}, so apply does not wait for tunnels.", capitalised(reason));
            }
            _ => {}
        }
    })
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// `apply` (with its options) or `destroy` (without).
async fn change(d: &Deployment, output: Output, yes: bool, apply: Option<ApplyOptions>) -> Result<u8, Failure> {
    let human = output == Output::Human;
    let confirm = Ask { yes, human };
    let progress = change_progress(human);
    let report = match apply {
        Some(how) => d.apply_with(how, &confirm, &progress).await?,
        None => d.destroy(&confirm, &progress).await?,
    };
    if report.result == ApplyResult::NoChanges {
        warn(&report.warnings);
    }
    match output {
        Output::Json => println!("{}", report::to_json(&report)),
        Output::Human => print!("{}", text::change_summary(&report)),
    }
    if report.succeeded() { Ok(exit::OK) } else { Err(Failure::StepsFailed) }
}

async fn status(d: &Deployment, output: Output, graph: Option<GraphFormat>) -> Result<u8, Failure> {
    let report = d.status().await?;
    if let Some(format) = graph {
        print!("{}", report.topology.render(format));
        return Ok(exit::OK);
    }
    match output {
        Output::Json => println!("{}", report::to_json(&report)),
        Output::Human => {
            let config = d.config();
            println!("Deployment \"{}\" ({}, {} tunnels)", config.name, config.mode, config.tunnel_count());
            print!("{}", render::resources(&report.observed));
            println!("Tunnels:");
            print!("{}", render::tunnels(&report.tunnels, &report.tunnel_health));
        }
    }
    Ok(exit::OK)
}

fn outcome_code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Ok => exit::OK,
        Outcome::Problems => exit::PROBLEM_FOUND,
        Outcome::NotObservable => exit::NOT_OBSERVABLE,
        Outcome::ProbeFailed => exit::PROBE_FAILED,
    }
}

async fn verify(d: &Deployment, output: Output) -> Result<u8, Failure> {
    let report = d.verify().await?;
    match output {
        Output::Json => println!("{}", report::to_json(&report)),
        Output::Human => print!("{}", text::human_verify(&report)),
    }
    Ok(outcome_code(report.outcome()))
}

async fn drill(d: &Deployment, output: Output, tunnel: Option<usize>, yes: bool) -> Result<u8, Failure> {
    let human = output == Output::Human;
    // What the drill waits out before checking traffic: in bgp-ha the BGP hold time
    // runs out first, and traffic must have moved by then.
    let waited = match d.config().mode {
        vpnbridge_core::config::Mode::BgpHa => "the BGP hold time and dead peer detection",
        vpnbridge_core::config::Mode::StaticHa => "dead peer detection",
    };
    let progress = Progress::new(move |e| {
        let Event::Drill(e) = e else { return };
        // Progress, not the result (the table is): `-q` keeps only failures.
        if !human || (render::quiet() && !matches!(e, DrillEvent::Failed { .. })) {
            return;
        }
        let t = |at: &f64| render::duration(Duration::from_secs_f64(*at));
        match e {
            DrillEvent::Down { tunnel, at } => eprintln!("  t+{:>9}  {tunnel}: Azure Connection deleted", t(at)),
            DrillEvent::TrafficChecked { tunnel, at, kept } => eprintln!(
                "  t+{:>9}  {tunnel}: after {waited}, traffic {}",
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
    });
    let report = d.drill(tunnel, &Ask { yes, human }, &progress).await?;
    let real = !(report.simulated.azure && report.simulated.aws);
    match output {
        Output::Json => println!("{}", report::to_json(&report)),
        Output::Human => print!("{}", text::human_drill(&report, real)),
    }
    Ok(outcome_code(report.outcome()))
}
