//! Inputs other than the config: the simulated world file, the directories and files
//! vpnbridge reads and writes. Every I/O error names the path and what was being
//! done; a bad world file is refused with what to do; read-only commands write nothing.
//! (The tests run as root in CI, where permission bits stop nothing: they put a file
//! where a directory is expected, or a directory where a file is.)

use std::path::Path;

use crate::{Scratch, exists};

/// Every file under `dir` with its bytes, for "nothing was written" checks.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
                out.push((p.display().to_string(), Vec::new()));
            } else {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn edit_world(s: &Scratch, f: impl FnOnce(&mut serde_json::Value)) {
    let path = s.sim_dir().join("world.json");
    let mut w: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(&mut w);
    std::fs::write(&path, serde_json::to_vec(&w).unwrap()).unwrap();
}

fn no_panic(r: &crate::Run) {
    assert!(!r.stderr().contains("panicked"), "{}", r.stderr());
}

#[test]
fn a_crafted_world_file_is_refused_with_what_to_do() {
    let s = Scratch::new("world-crafted");
    s.init();
    assert_eq!(s.run(&["apply"], &[]).code(), 0);
    edit_world(&s, |w| w["now_ms"] = serde_json::json!(u64::MAX - 1000));
    for cmd in ["status", "apply", "destroy", "verify"] {
        let r = s.run(&[cmd], &[]);
        no_panic(&r);
        assert_eq!(r.code(), 1, "{cmd}: {}", r.stderr());
        let err = r.stderr();
        assert!(err.contains("world.json"), "{cmd}: names the file: {err}");
        assert!(err.contains("now_ms"), "{cmd}: names what is wrong: {err}");
        assert!(err.contains(&format!("delete {}", s.sim_dir().display())), "{cmd}: says what to do: {err}");
    }
    let r = s.run(&["status", "--output", "json"], &[]);
    assert_eq!(r.json()["error"]["kind"], "error");
}

#[test]
fn an_inconsistent_or_unreadable_world_file_is_refused_too() {
    let s = Scratch::new("world-inconsistent");
    s.init();
    assert_eq!(s.run(&["apply"], &[]).code(), 0);
    let good = std::fs::read(s.sim_dir().join("world.json")).unwrap();
    // A resource filed under another resource's id.
    edit_world(&s, |w| {
        let vgws = w["aws"]["vpn_gateways"].as_object_mut().unwrap();
        let (id, v) = vgws.iter().next().map(|(k, v)| (k.clone(), v.clone())).unwrap();
        vgws.remove(&id);
        vgws.insert("vgw-0123456789abcdef0".to_owned(), v);
    });
    let r = s.run(&["status"], &[]);
    no_panic(&r);
    assert_eq!(r.code(), 1);
    assert!(r.stderr().contains("vgw-0123456789abcdef0"), "{}", r.stderr());
    // An id counter that would overflow on the next allocation.
    std::fs::write(s.sim_dir().join("world.json"), &good).unwrap();
    edit_world(&s, |w| w["seq"] = serde_json::json!(u64::MAX));
    let r = s.run(&["apply"], &[]);
    no_panic(&r);
    assert!(r.stderr().contains("seq"), "{}", r.stderr());
    // Not JSON at all.
    std::fs::write(s.sim_dir().join("world.json"), b"{ not json").unwrap();
    let r = s.run(&["plan"], &[]);
    assert_eq!(r.code(), 1);
    assert!(r.stderr().contains("world.json") && r.stderr().contains("delete"), "{}", r.stderr());
}

#[test]
fn read_only_commands_write_nothing() {
    // A fresh deployment: plan, status and verify do not even create .vpnbridge/.
    let s = Scratch::new("read-only");
    s.init();
    for cmd in [&["plan"][..], &["plan", "--destroy"], &["status"], &["verify"]] {
        let r = s.run(cmd, &[]);
        assert!(r.code() == 0 || r.code() == 6, "{cmd:?}: {}", r.stderr());
        assert!(!exists(&s.sim_dir()), "{cmd:?} created {}", s.sim_dir().display());
    }
    // A built one: nothing under .vpnbridge/ changes, and a world that could not be
    // saved (its temporary file is a directory) does not matter to them.
    assert_eq!(s.run(&["apply"], &[]).code(), 0);
    std::fs::create_dir(s.sim_dir().join("world.json.tmp")).unwrap();
    let before = snapshot(&s.sim_dir());
    for cmd in [&["plan"][..], &["status"], &["verify"], &["status", "--output", "json"], &["apply"]] {
        let r = s.run(cmd, &[]);
        assert_eq!(r.code(), 0, "{cmd:?}: {}", r.stderr());
        assert_eq!(snapshot(&s.sim_dir()), before, "{cmd:?} wrote under {}", s.sim_dir().display());
    }
}

#[test]
fn a_world_that_cannot_be_saved_names_the_file() {
    let s = Scratch::new("world-unsaveable");
    s.init();
    std::fs::create_dir_all(s.sim_dir().join("world.json.tmp")).unwrap();
    let r = s.run(&["apply"], &[]);
    no_panic(&r);
    assert_ne!(r.code(), 0);
    assert!(r.stderr().contains(&s.sim_dir().join("world.json.tmp").display().to_string()), "{}", r.stderr());
}

#[test]
fn a_sim_dir_that_is_a_file_is_a_usage_error() {
    let s = Scratch::new("sim-dir-file");
    s.init();
    let file = s.dir.join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    for args in [&["apply", "--sim-dir"][..], &["status", "--sim-dir"]] {
        let mut args = args.to_vec();
        let f = file.display().to_string();
        args.push(&f);
        let r = s.run(&args, &[]);
        assert_eq!(r.code(), 64, "{}", r.stderr());
        assert!(r.stderr().contains(&f) && r.stderr().contains("not a directory"), "{}", r.stderr());
        assert!(!r.stderr().contains("os error 17"), "{}", r.stderr());
    }
}

#[test]
fn io_errors_name_the_path_and_the_operation() {
    // The default .vpnbridge/ next to the config is a file.
    let s = Scratch::new("io-paths");
    s.init();
    std::fs::write(s.sim_dir(), "x").unwrap();
    let r = s.run(&["apply"], &[]);
    no_panic(&r);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    let dir = s.sim_dir().display().to_string();
    assert!(r.stderr().contains(&dir) && r.stderr().contains("not a directory"), "{}", r.stderr());
    let r = s.run(&["status"], &[]);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert!(r.stderr().contains(&dir), "{}", r.stderr());
    std::fs::remove_file(s.sim_dir()).unwrap();

    // The run lock is a directory.
    std::fs::create_dir_all(s.sim_dir().join("lock")).unwrap();
    let r = s.run(&["apply"], &[]);
    no_panic(&r);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    let lock = s.sim_dir().join("lock").display().to_string();
    assert!(r.stderr().contains(&lock) && r.stderr().contains("run lock"), "{}", r.stderr());

    // init into a directory that does not exist.
    let r = s.run(&["init", "--force"], &[]);
    assert_eq!(r.code(), 0);
    let missing = s.dir.join("nowhere/vpnbridge.toml");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vpnbridge"));
    let out = cmd.arg("--config").arg(&missing).arg("init").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&missing.display().to_string()) && err.contains("writing"), "{err}");
}

#[test]
fn destroying_nothing_says_nothing_exists() {
    let s = Scratch::new("destroy-nothing");
    s.init();
    let r = s.run(&["destroy"], &[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(r.stdout().contains("nothing of deployment \"azure-aws\" exists"), "{}", r.stdout());
    assert!(!r.stdout().contains("matches the configuration"), "{}", r.stdout());
    let doc = s.run(&["destroy", "--output", "json"], &[]).json();
    assert_eq!(doc["result"], "no_changes", "the result value stays stable");
    assert_eq!(doc["reason"], "nothing_exists");
    let plan = s.run(&["plan", "--destroy"], &[]);
    assert!(plan.stdout().contains("nothing of deployment \"azure-aws\" exists"), "{}", plan.stdout());
    // apply with nothing to do keeps its wording, with its own reason.
    assert_eq!(s.run(&["apply"], &[]).code(), 0);
    let doc = s.run(&["apply", "--output", "json"], &[]).json();
    assert_eq!((doc["result"].as_str(), doc["reason"].as_str()), (Some("no_changes"), Some("matches_configuration")));
}

#[test]
fn a_huge_config_is_refused_and_many_errors_are_capped() {
    let s = Scratch::new("huge-config");
    s.init();
    let example = std::fs::read_to_string(s.config()).unwrap();
    let mut big = example.clone();
    while big.len() <= 1 << 20 {
        big.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    s.write_config(&big);
    let r = s.run(&["plan"], &[]);
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert!(
        r.stderr().contains(&s.config().display().to_string()) && r.stderr().contains(&format!("{} bytes", big.len())),
        "{}",
        r.stderr()
    );
    assert!(!exists(&s.sim_dir()));

    let keys: String = (0..500).map(|i| format!("unknown_{i} = 1\n")).collect();
    s.write_config(&format!("{keys}{example}"));
    let doc = s.run(&["plan", "--output", "json"], &[]).json();
    let messages = doc["error"]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 101, "100 errors and a line counting the rest");
    assert!(messages[100].as_str().unwrap().contains("400 more errors"), "{}", messages[100]);
    assert_eq!(doc["error"]["count"], 500);
    let r = s.run(&["plan"], &[]);
    assert!(r.stderr().contains("400 more errors") && r.stderr().contains("500 errors in"), "{}", r.stderr());
}
