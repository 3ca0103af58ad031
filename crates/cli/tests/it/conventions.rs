//! What users expect of a command-line tool (ripgrep, cargo, terraform): no escape
//! codes in pipes, --color and NO_COLOR, -q, shell completions, and a quiet end when
//! the reader of stdout goes away.

use std::process::{Command, Stdio};

use crate::{Scratch, exists};

const ESC: char = '\u{1b}';

#[test]
fn logs_have_no_escape_codes_unless_asked() {
    let s = Scratch::new("color");
    s.init();
    // stderr is a pipe here: no colour, whatever the log level.
    let r = s.run(&["plan", "-vv"], &[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(r.stderr().contains("INFO") || r.stderr().contains("DEBUG"), "logs were produced: {}", r.stderr());
    assert!(!r.stderr().contains(ESC), "escape codes in a pipe: {:?}", r.stderr());
    let r = s.run(&["plan", "-vv", "--color", "always"], &[]);
    assert!(r.stderr().contains(ESC), "--color always colours: {:?}", &r.stderr()[..200.min(r.stderr().len())]);
    for (args, env) in [(&["plan", "-vv", "--color", "never"][..], &[][..]), (&["plan", "-vv", "--color", "auto"], &[("NO_COLOR", "1")])] {
        let r = s.run(args, env);
        assert!(!r.stderr().contains(ESC), "{args:?} {env:?}");
    }
    let r = s.run(&["plan", "--color", "sometimes"], &[]);
    assert_eq!(r.code(), 64, "{}", r.stderr());
}

#[test]
fn quiet_keeps_only_the_simulated_line_and_errors() {
    let s = Scratch::new("quiet");
    s.init();
    let r = s.run(&["apply", "-q"], &[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let stderr = r.stderr();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr());
    assert!(lines[0].starts_with("SIMULATED:"), "{}", r.stderr());
    assert!(r.stdout().contains("built"), "the result still goes to stdout: {}", r.stdout());
    // The drill's per-step lines are progress too; its table is the result.
    let r = s.run(&["drill", "-q", "--tunnel", "1"], &[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let lines: Vec<String> = r.stderr().lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr());
    assert!(lines[0].starts_with("SIMULATED:"), "{}", r.stderr());
    assert!(r.stdout().contains("PASSED"), "the drill's table still goes to stdout: {}", r.stdout());
    let loud = s.run(&["destroy"], &[]);
    assert!(loud.stderr().contains("===") && loud.stderr().contains("  ok "), "{}", loud.stderr());
    // Errors still show.
    s.write_config("name = \"x\"\n");
    let r = s.run(&["plan", "--quiet"], &[]);
    assert_eq!(r.code(), 3);
    assert!(r.stderr().contains("error:"), "{}", r.stderr());
}

#[test]
fn completions_for_each_shell_need_no_config() {
    let s = Scratch::new("completions");
    for (shell, marker) in
        [("bash", "_vpnbridge"), ("zsh", "#compdef vpnbridge"), ("fish", "complete -c vpnbridge"), ("powershell", "vpnbridge")]
    {
        let r = s.run(&["completions", shell], &[]);
        assert_eq!(r.code(), 0, "{shell}: {}", r.stderr());
        assert!(r.stdout().contains(marker), "{shell}: {}", &r.stdout()[..200.min(r.stdout().len())]);
        assert!(r.stdout().contains("destroy"), "{shell}: completes the subcommands");
    }
    assert!(!exists(&s.config()) && !exists(&s.sim_dir()));
    assert_eq!(s.run(&["completions", "tcsh"], &[]).code(), 64);
    let help = s.run(&["--help"], &[]).stdout();
    assert!(help.contains("completions") && help.contains("vpnbridge completions bash"), "{help}");
    let sub = s.run(&["completions", "--help"], &[]).stdout();
    assert!(sub.contains("~/.local/share/bash-completion/completions/vpnbridge") || sub.contains("source"), "{sub}");
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let s = Scratch::new("pipe");
    s.init();
    assert_eq!(s.run(&["apply"], &[]).code(), 0);
    for args in [&["status", "--output", "json"][..], &["status"], &["plan", "--output", "json"], &["verify", "--output", "json"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vpnbridge"))
            .arg("--config")
            .arg(s.config())
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before reading a byte, as `| head -0` would.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}
