//! vpnbridge: one config file and one command for a redundant Azure <-> AWS
//! site-to-site VPN built from the clouds' managed services.

mod args;
mod commands;
mod exit;
mod lock;
mod logging;
mod render;
mod session;
mod verify;

use std::process::ExitCode;

use clap::Parser;
use vpnbridge_core::plan::PlanError;
use vpnbridge_core::validate::ConfigErrors;

use args::{Cli, Output};

/// Why a command did not succeed, with its exit code.
#[derive(Debug)]
pub enum Failure {
    /// Invalid config: every problem, nothing called.
    Config(ConfigErrors),
    /// The config asks for something this version does not build yet.
    Unsupported(PlanError),
    /// The clouds contradict the config: nothing changed.
    Preflight(PlanError),
    /// The user did not confirm.
    NotConfirmed(String),
    /// Another run holds the deployment's lock.
    Locked(lock::LockHeld),
    /// `drill` on mixed backends: the data plane cannot be observed.
    NotObservable(String),
    /// Some steps failed; the report was already printed.
    StepsFailed,
    Other(anyhow::Error),
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Config(_) | Failure::Unsupported(_) => exit::CONFIG_INVALID,
            Failure::Preflight(_) => exit::PREFLIGHT,
            Failure::NotConfirmed(_) => exit::NOT_CONFIRMED,
            Failure::Locked(_) => exit::LOCKED,
            Failure::NotObservable(_) => exit::NOT_OBSERVABLE,
            Failure::StepsFailed | Failure::Other(_) => exit::FAILED,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Failure::Config(_) => "config",
            Failure::Unsupported(_) => "unsupported",
            Failure::Preflight(_) => "preflight",
            Failure::NotConfirmed(_) => "not_confirmed",
            Failure::Locked(_) => "locked",
            Failure::NotObservable(_) => "not_observable",
            Failure::StepsFailed => "steps_failed",
            Failure::Other(_) => "error",
        }
    }

    fn messages(&self) -> Vec<String> {
        match self {
            Failure::Config(e) => e.0.iter().map(ToString::to_string).collect(),
            Failure::Preflight(e) | Failure::Unsupported(e) => e.0.clone(),
            Failure::NotConfirmed(m) => vec![m.clone()],
            Failure::Locked(e) => vec![e.to_string()],
            Failure::NotObservable(m) => vec![m.clone()],
            Failure::StepsFailed => vec!["some steps failed; see the report".into()],
            Failure::Other(e) => vec![format!("{e:#}")],
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    logging::init(cli.global.verbose);
    let output = cli.global.output;
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            match (&f, output) {
                (Failure::StepsFailed, _) => {}
                (_, Output::Json) => {
                    let doc = serde_json::json!({"format_version": 1, "error": {"kind": f.kind(), "messages": f.messages()}});
                    println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
                }
                (Failure::Config(e), Output::Human) => eprintln!("error: the configuration is invalid; nothing was called.\n{e}"),
                (Failure::Preflight(e), Output::Human) => eprintln!("error: {e}\nNothing was changed."),
                (_, Output::Human) => {
                    for m in f.messages() {
                        eprintln!("error: {m}");
                    }
                }
            }
            ExitCode::from(f.code())
        }
    }
}
