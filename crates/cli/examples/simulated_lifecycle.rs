//! A deployment's whole life on the embedded simulator, through the library:
//! plan, apply (with progress), verify, a failover drill of tunnel 1, destroy.
//!
//! ```text
//! cargo run -p vpnbridge --example simulated_lifecycle [path/to/vpnbridge.toml]
//! ```
//!
//! Without a path it writes the `vpnbridge init` example into a scratch directory. With
//! one, the config must keep both sides on the simulator (`backend = "sim"`): this
//! program says yes to every question.

use std::time::Duration;

use vpnbridge::core::drill::DrillEvent;
use vpnbridge::core::exec::ExecEvent;
use vpnbridge::{Deployment, Event, Options, Outcome, Progress, Question};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = tempfile::tempdir()?;
    let path = match std::env::args_os().nth(1) {
        Some(p) => p.into(),
        None => {
            let p = scratch.path().join("vpnbridge.toml");
            std::fs::write(&p, vpnbridge::EXAMPLE_CONFIG)?;
            p
        }
    };
    let loaded = vpnbridge::load(&path)?;
    vpnbridge::runtime(&loaded.config)?.block_on(async {
        let options = Options { state_dir: Some(scratch.path().join("state")), ..Options::default() };
        let deployment = Deployment::open(loaded, options).await?;

        let plan = deployment.plan().await?;
        println!("plan: {} steps ({:?})", plan.plan.steps.len(), plan.plan.counts());

        // Our own rendering of the executor's events.
        let progress = Progress::new(|e| match e {
            Event::Step(ExecEvent::Finished { step, at }) => println!("  step {step:>2} done at t+{}s", at.as_secs()),
            Event::Step(ExecEvent::Failed { step, error, .. }) => println!("  step {step:>2} FAILED: {error}"),
            Event::WaitingForTunnels { limit } => println!("  waiting up to {}s for the tunnels", limit.as_secs()),
            Event::Drill(DrillEvent::TrafficChecked { tunnel, at, kept }) => {
                println!("  drill {tunnel}: traffic kept at t+{at:.0}s: {kept:?}")
            }
            _ => {}
        });
        // The simulator changes nothing real; a real cloud would be asked about here.
        let confirm = |q: &Question<'_>| if q.real() { Err("this example only runs on the simulator".to_owned()) } else { Ok(()) };

        let applied = deployment.apply(&confirm, &progress).await?;
        println!(
            "apply: {:?} in {} simulated",
            applied.result,
            humantime(Duration::from_secs_f64(applied.modelled_seconds().unwrap_or_default()))
        );

        let verified = deployment.verify().await?;
        println!("verify: {:?}, {} of {} tunnels up", verified.outcome(), verified.tunnels_up(), verified.tunnels.len());

        let drilled = deployment.drill(Some(1), &confirm, &progress).await?;
        println!("drill: {:?}", drilled.outcome());

        let destroyed = deployment.destroy(&confirm, &progress).await?;
        println!("destroy: {:?}, {} mutating calls in all", destroyed.result, destroyed.calls.mutations());

        if verified.outcome() != Outcome::Ok || drilled.outcome() != Outcome::Ok || !destroyed.succeeded() {
            return Err("the deployment did not verify, drill and destroy cleanly".into());
        }
        Ok(())
    })
}

fn humantime(d: Duration) -> String {
    format!("{}m {:02}s", d.as_secs() / 60, d.as_secs() % 60)
}
