//! Every bad config of the corpus, through the binary: refused with exit 3, the field
//! named, and no cloud called (the simulated clouds are never even opened).

use std::path::Path;
use std::process::Command;

#[test]
fn every_bad_config_is_refused_before_any_cloud_call() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/corpus/bad");
    let mut seen = 0;
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let sim_dir = scratch.path().join("sim");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vpnbridge"));
        cmd.arg("--config").arg(&path).arg("--sim-dir").arg(&sim_dir).args(["plan", "--output", "json"]).env_remove("RUST_LOG");
        let mut not = Vec::new();
        for line in text.lines() {
            if let Some((k, v)) = line.strip_prefix("# env: ").and_then(|e| e.split_once('=')) {
                cmd.env(k, v);
            }
            if let Some(n) = line.strip_prefix("# not: ") {
                not.push(n.to_owned());
            }
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(out.status.code(), Some(3), "{name}: {stdout}");
        let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{name}: {e}: {stdout}"));
        crate::schema::check(&doc);
        assert_eq!(doc["error"]["kind"], "config", "{name}");
        assert!(!doc["error"]["messages"].as_array().unwrap().is_empty(), "{name}");
        for n in &not {
            assert!(!stdout.contains(n.as_str()), "{name}: output shows {n:?}");
        }
        assert!(!sim_dir.exists(), "{name}: the run went past validation (it took the run lock or opened the simulated clouds)");
        seen += 1;
    }
    assert!(seen >= 30, "the corpus has {seen} files");
}
