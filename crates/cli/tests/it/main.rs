//! The binary, run the way a user runs it, on the simulator.

mod bad_configs;
mod conventions;
mod foreign;
mod inputs;
mod library;
mod lock;
mod real_backends;
mod schema;
mod verify;
mod workflow;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch directory with a config file, removed at the end.
#[derive(Debug)]
pub struct Scratch {
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Scratch {
    pub fn new(name: &str) -> Self {
        let tmp = tempfile::Builder::new().prefix(&format!("vpnbridge-it-{name}-")).tempdir().unwrap();
        Self { dir: tmp.path().to_owned(), _tmp: tmp }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join("vpnbridge.toml")
    }

    pub fn sim_dir(&self) -> PathBuf {
        self.dir.join(".vpnbridge")
    }

    /// Runs `vpnbridge --config <scratch>/vpnbridge.toml <args>` with `envs`.
    pub fn run(&self, args: &[&str], envs: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vpnbridge"));
        cmd.arg("--config").arg(self.config()).args(args).env_remove("RUST_LOG").env_remove("VPNBRIDGE_SIM_DIR");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Run(cmd.output().expect("vpnbridge runs"))
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config(), text).unwrap();
    }

    pub fn init(&self) {
        let r = self.run(&["init"], &[]);
        assert_eq!(r.code(), 0, "{}", r.stderr());
    }

    /// Creates the user's VNet and VPC in the simulated clouds, as they are before
    /// vpnbridge first runs there (read-only commands no longer write them).
    pub fn seed_prerequisites(&self) {
        let config = vpnbridge_core::config::load(&self.config()).unwrap().config;
        let cloud = vpnbridge_sim::SimCloud::open(&self.sim_dir()).unwrap();
        cloud.ensure_prerequisites(&vpnbridge_sim::VnetSpec::from_config(&config), &vpnbridge_sim::VpcSpec::from_config(&config)).unwrap();
    }
}

#[derive(Debug)]
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// stdout as JSON, checked against the checked-in schema of its document.
    pub fn json(&self) -> serde_json::Value {
        let doc = serde_json::from_slice(&self.0.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.stdout(), self.stderr()));
        schema::check(&doc);
        doc
    }
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
