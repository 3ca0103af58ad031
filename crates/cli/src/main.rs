//! vpnbridge: one config file and one command for a redundant Azure <-> AWS
//! site-to-site VPN built from the clouds' managed services.

// Every line the binary prints goes through `render::stdout` / `render::stderr`: these
// shadow the standard macros for the whole crate, so a closed pipe (`vpnbridge status
// -o json | head -1`) ends the output quietly instead of panicking, wherever the line
// is printed from.
macro_rules! println {
    () => { $crate::render::stdout(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::render::stdout(format_args!($($arg)*), true) };
}
macro_rules! print {
    ($($arg:tt)*) => { $crate::render::stdout(format_args!($($arg)*), false) };
}
macro_rules! eprintln {
    () => { $crate::render::stderr(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::render::stderr(format_args!($($arg)*), true) };
}
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::render::stderr(format_args!($($arg)*), false) };
}

mod args;
mod commands;
mod exit;
mod lock;
mod logging;
mod render;
mod session;
mod verify;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use vpnbridge_core::config::ConfigErrors;
use vpnbridge_core::plan::PlanError;

use args::{Cli, ColorChoice, Command, Output};

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
            Failure::Config(e) => e.messages(),
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

/// `--color` as given, read before clap parses so that its own help and errors follow it.
fn color_arg() -> Option<ColorChoice> {
    let args: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    let value = args.iter().enumerate().rev().find_map(|(i, a)| {
        a.strip_prefix("--color=").map(str::to_owned).or_else(|| (a == "--color").then(|| args.get(i + 1).cloned()).flatten())
    })?;
    match value.as_str() {
        "always" => Some(ColorChoice::Always),
        "never" => Some(ColorChoice::Never),
        _ => None,
    }
}

fn main() -> ExitCode {
    let clap_color = match color_arg() {
        Some(ColorChoice::Always) => clap::ColorChoice::Always,
        Some(ColorChoice::Never) => clap::ColorChoice::Never,
        _ => clap::ColorChoice::Auto,
    };
    let parsed = Cli::command().color(clap_color).try_get_matches().and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    use std::io::IsTerminal;
    let color = cli.global.color.enabled(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
    logging::init(cli.global.verbose, color);
    render::set_quiet(cli.global.quiet);
    if let Command::Completions { shell } = cli.command {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "vpnbridge", &mut script);
        print!("{}", String::from_utf8_lossy(&script));
        return finish(exit::OK);
    }
    if let Some(graph) = cli.global.output.graph()
        && !matches!(cli.command, Command::Status)
    {
        let name = if graph == vpnbridge_core::topology::GraphFormat::Mermaid { "mermaid" } else { "dot" };
        let e = Cli::command().color(clap_color).error(
            clap::error::ErrorKind::ArgumentConflict,
            format!(
                "--output {name} draws what exists: only `vpnbridge status` takes it; use --output human or json with `{}`",
                cli.command.name()
            ),
        );
        let _ = e.print();
        return ExitCode::from(exit::USAGE);
    }
    let output = cli.global.output.format();
    match commands::run(cli) {
        Ok(code) => finish(code),
        Err(f) => {
            match (&f, output) {
                (Failure::StepsFailed, _) => {}
                (_, Output::Json) => {
                    let mut error = serde_json::json!({"kind": f.kind(), "messages": f.messages()});
                    if let Failure::Config(e) = &f {
                        error["count"] = serde_json::json!(e.0.len());
                    }
                    let doc = serde_json::json!({"format_version": 1, "error": error});
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
            finish(f.code())
        }
    }
}

/// The command's exit code, unless stdout failed for another reason than its reader
/// going away (then the output is incomplete: exit 1, saying so).
fn finish(code: u8) -> ExitCode {
    match render::stdout_error() {
        Some(e) => {
            eprintln!("error: writing the output to stdout: {e}");
            ExitCode::from(if code == exit::OK { exit::FAILED } else { code })
        }
        None => ExitCode::from(code),
    }
}
