//! Two runs on one deployment at once.

use std::io::Write;

use vpnbridge_sim::SimCloud;

use crate::Scratch;

#[test]
fn a_second_run_fails_clearly_while_the_lock_is_held() {
    let s = Scratch::new("lock-held");
    s.init();
    std::fs::create_dir_all(s.sim_dir()).unwrap();
    let mut held = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(s.sim_dir().join("lock")).unwrap();
    held.lock().unwrap();
    write!(held, "pid 4242 running `vpnbridge apply` since unix time 0").unwrap();
    let r = s.run(&["plan"], &[("VPNBRIDGE_LOCK_WAIT", "0")]);
    assert_eq!(r.code(), 8, "{}", r.stderr());
    assert!(r.stderr().contains("pid 4242 running `vpnbridge apply`"), "names the holder: {}", r.stderr());
    let json = s.run(&["apply", "--output", "json"], &[("VPNBRIDGE_LOCK_WAIT", "0")]);
    assert_eq!(json.json()["error"]["kind"], "locked");
    // Released (here by closing; a crashed holder releases it the same way).
    drop(held);
    assert_eq!(s.run(&["plan"], &[("VPNBRIDGE_LOCK_WAIT", "0")]).code(), 0);
}

#[test]
fn concurrent_applies_and_destroys_never_corrupt_the_deployment() {
    let s = Scratch::new("lock-race");
    s.init();
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..4).map(|_| scope.spawn(|| s.run(&["apply", "--output", "json"], &[]))).collect();
        for r in runs {
            let r = r.join().unwrap();
            assert_eq!(r.code(), 0, "{}", r.stderr());
            let result = r.json()["result"].as_str().unwrap().to_owned();
            assert!(result == "applied" || result == "no_changes", "{result}");
        }
    });
    let cloud = SimCloud::open(&s.sim_dir()).unwrap();
    let (vgws, cgws, vpns) = cloud.with_world(|w| (w.aws.vpn_gateways.len(), w.aws.customer_gateways.len(), w.aws.vpn_connections.len()));
    assert_eq!((vgws, cgws, vpns), (1, 2, 2), "exactly one deployment was built");
    drop(cloud);
    std::thread::scope(|scope| {
        let a = scope.spawn(|| s.run(&["apply"], &[]));
        let d = scope.spawn(|| s.run(&["destroy"], &[]));
        assert_eq!(a.join().unwrap().code(), 0);
        assert_eq!(d.join().unwrap().code(), 0);
    });
    // Whichever ran last, the world is consistent: a plan from it is either empty
    // (apply last) or a full build (destroy last), never a half state.
    let plan = s.run(&["plan", "--output", "json"], &[]).json();
    let creates = plan["changes"]["create"].as_u64().unwrap();
    assert!(creates == 0 || creates == 16, "{plan}");
}
