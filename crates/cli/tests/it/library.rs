//! The library as a Rust user calls it: `Deployment` on the simulator, no binary.

use std::sync::{Arc, Mutex};

use vpnbridge::{Access, ApplyResult, Deployment, Error, Event, Options, Outcome, Progress, Question, Yes};

use crate::Scratch;

fn open(s: &Scratch, access: Access) -> impl std::future::Future<Output = Result<Deployment, Error>> {
    let loaded = vpnbridge::load(&s.config()).unwrap();
    Deployment::open(loaded, Options { state_dir: Some(s.sim_dir()), access, ..Options::default() })
}

fn runtime(s: &Scratch) -> tokio::runtime::Runtime {
    vpnbridge::runtime(&vpnbridge::load(&s.config()).unwrap().config).unwrap()
}

/// What a caller sees while apply runs: the plan first, every step started and
/// finished, then the end of the steps; and a second apply has nothing to do.
#[test]
fn apply_reports_its_progress_and_a_second_apply_changes_nothing() {
    let s = Scratch::new("lib-progress");
    s.init();
    runtime(&s).block_on(async {
        let d = open(&s, Access::Change("test".into())).await.unwrap();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = seen.clone();
        let progress = Progress::new(move |e| {
            let what = match e {
                Event::Planned { plan, .. } => format!("planned {}", plan.steps.len()),
                Event::Step(vpnbridge::core::exec::ExecEvent::Started { .. }) => "started".into(),
                Event::Step(vpnbridge::core::exec::ExecEvent::Finished { .. }) => "finished".into(),
                Event::Step(other) => format!("{other:?}"),
                Event::StepsDone => "steps done".into(),
                other => format!("{other:?}"),
            };
            log.lock().unwrap().push(what);
        });
        let report = d.apply(&Yes, &progress).await.unwrap();
        assert_eq!(report.result, ApplyResult::Applied);
        let steps = report.plan.steps.len();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.first().map(String::as_str), Some(format!("planned {steps}").as_str()), "{seen:?}");
        assert_eq!(seen.iter().filter(|e| *e == "started").count(), steps, "{seen:?}");
        assert_eq!(seen.iter().filter(|e| *e == "finished").count(), steps, "{seen:?}");
        let done = seen.iter().position(|e| e == "steps done").expect("steps done");
        assert!(seen[..done].iter().filter(|e| *e == "finished").count() == steps, "every step before the end: {seen:?}");
        let run = report.run.as_ref().expect("it ran");
        assert!(run.tunnel_health.iter().all(|h| h.is_up()), "{:?}", run.tunnel_health);

        let again = d.apply(&Yes, &Progress::none()).await.unwrap();
        assert_eq!(again.result, ApplyResult::NoChanges);
        assert_eq!(again.calls.mutations(), report.calls.mutations(), "the second apply made no mutating call");
    });
}

/// A caller that says no stops the change before any mutating call; a deployment
/// opened read-only refuses to change anything.
#[test]
fn a_refused_confirmation_and_read_only_access_change_nothing() {
    let s = Scratch::new("lib-confirm");
    s.init();
    runtime(&s).block_on(async {
        let d = open(&s, Access::Change("test".into())).await.unwrap();
        let asked = Arc::new(Mutex::new(None));
        let seen = asked.clone();
        let no = move |q: &Question<'_>| {
            *seen.lock().unwrap() = Some((q.real(), q.prompt()));
            Err("not today".to_owned())
        };
        match d.apply(&no, &Progress::none()).await {
            Err(Error::NotConfirmed(m)) => assert_eq!(m, "not today"),
            other => panic!("expected NotConfirmed, got {other:?}"),
        }
        let (real, prompt) = asked.lock().unwrap().clone().expect("asked");
        assert!(!real, "the simulator is not a real cloud");
        assert!(prompt.contains("to create"), "{prompt}");
        assert_eq!(d.calls().mutations(), 0);
        drop(d);

        let ro = open(&s, Access::ReadOnly).await.unwrap();
        assert!(ro.destroy(&Yes, &Progress::none()).await.is_err());
        assert!(ro.apply(&Yes, &Progress::none()).await.is_err());
        assert_eq!(ro.calls().mutations(), 0);
        let plan = ro.plan().await.unwrap();
        assert!(!plan.plan.is_empty(), "nothing was built");
    });
}

/// A library user on a multi-thread runtime can spawn the calls.
#[test]
fn the_calls_are_send() {
    fn send<T: Send>(_: &T) {}
    let s = Scratch::new("lib-send");
    s.init();
    let rt = runtime(&s);
    let d = rt.block_on(open(&s, Access::Change("test".into()))).unwrap();
    let p = Progress::none();
    let apply = d.apply(&Yes, &p);
    send(&apply);
    send(&d.verify());
    send(&d.status());
    send(&d.drill(None, &Yes, &p));
    drop(apply);
    let verify = rt.block_on(d.verify()).unwrap();
    assert_eq!(verify.outcome(), Outcome::Problems, "nothing is built yet: {:?}", verify.diagnoses);
}
