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
mod logging;
mod render;
mod text;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use vpnbridge::report::{self, ErrorReport};

use args::{Cli, ColorChoice, Command, Output};

/// Why a command did not succeed, with its exit code.
#[derive(Debug)]
pub enum Failure {
    /// The library's error: config, preflight, confirmation, lock, anything else.
    Api(vpnbridge::Error),
    /// Some steps failed; the report was already printed.
    StepsFailed,
}

impl Failure {
    fn code(&self) -> u8 {
        use vpnbridge::Error as E;
        match self {
            Failure::Api(E::Config(_) | E::Unsupported(_)) => exit::CONFIG_INVALID,
            Failure::Api(E::Preflight(_)) => exit::PREFLIGHT,
            Failure::Api(E::NotConfirmed(_)) => exit::NOT_CONFIRMED,
            Failure::Api(E::Locked(_)) => exit::LOCKED,
            Failure::Api(E::NotObservable(_)) => exit::NOT_OBSERVABLE,
            Failure::Api(E::Usage(_)) => exit::USAGE,
            Failure::Api(_) | Failure::StepsFailed => exit::FAILED,
        }
    }
}

impl From<vpnbridge::Error> for Failure {
    fn from(e: vpnbridge::Error) -> Self {
        Failure::Api(e)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Api(e.into())
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
    if let Some(graph) = cli.global.output.graph()
        && !matches!(cli.command, Command::Status)
    {
        let name = if graph == vpnbridge::core::topology::GraphFormat::Mermaid { "mermaid" } else { "dot" };
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
                (Failure::Api(e), Output::Json) => println!("{}", report::to_json(&ErrorReport::new(e))),
                (Failure::Api(e @ (vpnbridge::Error::Config(_) | vpnbridge::Error::Preflight(_))), Output::Human) => {
                    eprintln!("error: {e}")
                }
                (Failure::Api(e), Output::Human) => {
                    for m in e.messages() {
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
