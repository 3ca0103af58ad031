//! Command-line interface definition.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0   success (plan: no changes, or changes without --detailed-exitcode)
  1   a cloud operation failed, or an unexpected error
  2   plan --detailed-exitcode: changes are pending
  3   the configuration is invalid (no cloud was called)
  4   the clouds contradict the configuration (preflight); nothing was changed
  5   confirmation declined or impossible (no terminal and no --yes)
  6   verify / drill found a problem (a tunnel down, a diagnosis, connectivity lost)
  7   verify / drill: the data plane is not observable (mixed backends; real clouds without probe VMs)
  9   verify / drill: the probe VMs could not run the ping (timeout, permission, agent): traffic unknown, not lost
  8   another vpnbridge run holds this deployment's lock (--lock-wait / VPNBRIDGE_LOCK_WAIT: seconds to wait, default 30)
  64  command-line usage error (a bad option or environment value)
  70  simulator only: a crash injected with --sim-faults stopped the run; run the same command again";

const EXAMPLES: &str = "\
Examples:
  vpnbridge init                      write a commented vpnbridge.toml that runs on the simulator
  vpnbridge plan                      show what apply would do, Terraform-style
  vpnbridge apply --yes               build (or converge) the VPN; re-running changes nothing
  vpnbridge status --output json      both clouds' resources and the tunnel pairing, for scripts
  vpnbridge status --output mermaid   the topology as a Mermaid flowchart, tunnels coloured by state (also: dot)
  vpnbridge verify                    every tunnel's status at both ends, IKE SAs, ping both ways, diagnoses
  vpnbridge drill --tunnel 1          failover test: delete tunnel 1's Azure Connection, check traffic, recreate
  vpnbridge destroy --yes             remove everything this deployment owns, nothing else
  vpnbridge completions bash > ~/.local/share/bash-completion/completions/vpnbridge
                                      tab completion for bash (also zsh, fish, powershell, elvish)

On the simulator (backend = \"sim\", the default) nothing real is created: the
simulated clouds live in .vpnbridge/ next to the config file, and a 45-minute
gateway build takes milliseconds of wall time.";

/// vpnbridge builds, checks and tears down a redundant site-to-site VPN between an
/// Azure VNet (VPN Gateway, active-active) and an AWS VPC (Virtual Private Gateway +
/// Site-to-Site VPN) from one config file.
#[derive(Debug, Parser)]
#[command(name = "vpnbridge", version, about, long_about = None, after_help = format!("{EXAMPLES}\n\n{EXIT_CODES}"))]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The deployment's config file.
    #[arg(short, long, global = true, env = "VPNBRIDGE_CONFIG", default_value = "vpnbridge.toml")]
    pub config: PathBuf,
    /// Output format: human text, or one JSON document on stdout for scripts; `status`
    /// also draws the topology as a Mermaid flowchart or a Graphviz dot graph.
    #[arg(short, long, global = true, value_enum, default_value_t = OutputArg::Human)]
    pub output: OutputArg,
    /// More log detail on stderr (-v info, -vv debug, -vvv trace); RUST_LOG also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less on stderr: no progress, no plan echo, no banner but its SIMULATED line.
    /// Errors and warnings are still printed, and results still go to stdout.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Colour in logs: "auto" colours only when stderr is a terminal and NO_COLOR is
    /// unset or empty; "always" even in a pipe; "never" not at all.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Where the simulator keeps its clouds (default: .vpnbridge/ next to the config file).
    /// A directory, or a path where one can be created.
    #[arg(long, global = true, env = "VPNBRIDGE_SIM_DIR", value_name = "DIR", value_parser = parse_dir)]
    pub sim_dir: Option<PathBuf>,
    /// Seconds to wait for another run's lock on this deployment before giving up (exit 8).
    #[arg(long, global = true, env = "VPNBRIDGE_LOCK_WAIT", value_name = "SECS", default_value_t = 30)]
    pub lock_wait: u64,
    /// Seconds `apply` waits for the tunnels to come up after its last step.
    #[arg(long, global = true, env = "VPNBRIDGE_TUNNEL_WAIT", value_name = "SECS", default_value_t = 600)]
    pub tunnel_wait: u64,
    /// Simulator only: inject the clouds' failures, e.g. "seed=1,throttle=0.15" or
    /// "crash-after=12" (a simulated crash exits 70; the next run finishes the job).
    #[arg(long, global = true, env = "VPNBRIDGE_SIM_FAULTS", value_name = "SPEC", value_parser = parse_faults)]
    pub sim_faults: Option<vpnbridge::FaultPlan>,
    /// Simulator only: a JSON file of operation latencies in milliseconds (any keys of
    /// the simulator's latency table, e.g. {"azure_vpn_gateway": 1800000}).
    #[arg(long, global = true, env = "VPNBRIDGE_SIM_LATENCY", value_name = "FILE")]
    pub sim_latency: Option<PathBuf>,
}

/// A path that is a directory or does not exist yet (so one can be created there).
fn parse_dir(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    match std::fs::metadata(&p) {
        Ok(m) if !m.is_dir() => {
            Err(format!("{} exists and is not a directory; name a directory, or a path where one can be created", p.display()))
        }
        _ => Ok(p),
    }
}

/// When logs on stderr use colour (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour stderr, given whether it is a terminal and `NO_COLOR`.
    pub fn enabled(self, stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => stderr_is_terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }
}

fn parse_faults(spec: &str) -> Result<vpnbridge::FaultPlan, String> {
    spec.parse::<vpnbridge::FaultPlan>().map_err(|e| e.to_string())
}

/// How results are printed (what a command's code sees).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Human,
    Json,
}

/// `--output` as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputArg {
    /// Text for people (stdout), progress on stderr.
    Human,
    /// One JSON document on stdout, for scripts.
    Json,
    /// `status` only: the topology as a Mermaid flowchart (GitHub renders it).
    Mermaid,
    /// `status` only: the topology as a Graphviz graph (`dot -Tsvg`).
    Dot,
}

impl OutputArg {
    /// The format of text and errors: a drawing is human output.
    pub fn format(self) -> Output {
        match self {
            OutputArg::Json => Output::Json,
            OutputArg::Human | OutputArg::Mermaid | OutputArg::Dot => Output::Human,
        }
    }

    /// The drawing asked for, if any.
    pub fn graph(self) -> Option<vpnbridge::core::topology::GraphFormat> {
        match self {
            OutputArg::Mermaid => Some(vpnbridge::core::topology::GraphFormat::Mermaid),
            OutputArg::Dot => Some(vpnbridge::core::topology::GraphFormat::Dot),
            OutputArg::Human | OutputArg::Json => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented example config that works on the simulator as it is.
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
        /// The routing mode the example uses: "static-ha" (static routes, 2 tunnels) or
        /// "bgp-ha" (BGP over APIPA addresses on all 4 tunnels, Microsoft's AWS design).
        #[arg(long, default_value = "static-ha", value_parser = ["static-ha", "bgp-ha"])]
        mode: String,
    },
    /// Show what `apply` (or `destroy`) would change, without changing anything.
    #[command(after_help = "With --detailed-exitcode: exit 0 = no changes, 2 = changes pending, 1 = error.")]
    Plan {
        /// Exit 2 when changes are pending (for scripts and CI).
        #[arg(long)]
        detailed_exitcode: bool,
        /// Plan the destruction of the deployment instead.
        #[arg(long)]
        destroy: bool,
    },
    /// Build or converge the deployment. Safe to re-run: a finished deployment makes zero changes.
    Apply {
        /// Do not ask for confirmation before changing a real cloud.
        #[arg(short, long)]
        yes: bool,
        /// Simulator only: ping both ways every second of simulated time while the change
        /// runs and report the seconds of traffic lost (what a key rotation, a resize or a
        /// tunnel change costs before you make it for real).
        #[arg(long)]
        watch_traffic: bool,
    },
    /// Show both clouds' resources of this deployment and how the tunnels pair up.
    Status,
    /// Check that the VPN carries traffic: each tunnel's status at both ends, the IKE SAs,
    /// which tunnels are down by design, a ping each way, and a diagnosis of anything wrong.
    #[command(
        after_help = "Exit 0 = verified, 6 = a problem was found, 7 = the data plane is not observable (control plane fine), 4 = the [probe] VMs are not ready (named, with the fix), 9 = the probe could not run."
    )]
    Verify,
    /// Failover test: for each used tunnel in turn, delete its Azure Connection, wait out dead
    /// peer detection, check traffic still flows both ways, recreate it and re-verify.
    #[command(
        after_help = "Exit 0 = traffic survived losing each drilled tunnel, 6 = connectivity was lost (or a tunnel did not come back), 7 = passed on the control plane but traffic is not observable. Refused on mixed backends."
    )]
    Drill {
        /// Drill only this tunnel (1-based, in the order `verify` lists them).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=4))]
        tunnel: Option<u64>,
        /// Do not ask for confirmation before deleting real Azure Connections.
        #[arg(short, long)]
        yes: bool,
    },
    /// Remove everything this deployment owns (by tag), and nothing else.
    Destroy {
        /// Do not ask for confirmation before changing a real cloud.
        #[arg(short, long)]
        yes: bool,
    },
    /// Print a shell completion script on stdout (no config needed).
    #[command(after_help = "\
Install, e.g.:
  bash  vpnbridge completions bash > ~/.local/share/bash-completion/completions/vpnbridge
  zsh   vpnbridge completions zsh > ~/.zfunc/_vpnbridge   (with fpath+=~/.zfunc before compinit)
  fish  vpnbridge completions fish > ~/.config/fish/completions/vpnbridge.fish
  pwsh  vpnbridge completions powershell | Out-String | Invoke-Expression   (in your $PROFILE)")]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// The subcommand's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Init { .. } => "init",
            Command::Plan { .. } => "plan",
            Command::Apply { .. } => "apply",
            Command::Status => "status",
            Command::Destroy { .. } => "destroy",
            Command::Verify => "verify",
            Command::Drill { .. } => "drill",
            Command::Completions { .. } => "completions",
        }
    }
}
