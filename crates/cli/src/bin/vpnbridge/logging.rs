//! Logging to stderr that cooperates with the progress bar, and never lets a secret
//! through: azure_core logs whole request bodies (the Connection's sharedKey included)
//! at debug level, so its debug and trace events are dropped whatever RUST_LOG says.
//! Escape codes (colour) only when asked for: see [`crate::args::ColorChoice`].

use std::io::{self, Write};
use std::sync::{Mutex, OnceLock};

use indicatif::ProgressBar;
use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// The progress bar currently on screen, if any: log lines are printed above it.
static ACTIVE_BAR: OnceLock<Mutex<Option<ProgressBar>>> = OnceLock::new();

fn active() -> &'static Mutex<Option<ProgressBar>> {
    ACTIVE_BAR.get_or_init(|| Mutex::new(None))
}

/// Registers (or clears) the bar that log output must not tear.
pub fn set_active_bar(bar: Option<ProgressBar>) {
    *active().lock().expect("not poisoned") = bar;
}

/// Crates whose debug output may contain request bodies with secrets.
const BODY_LOGGING_TARGETS: &[&str] = vpnbridge_azure::SECRET_BEARING_LOG_TARGETS;

/// Installs the subscriber: `-v` count (or RUST_LOG) for the level, `color` for
/// whether lines carry ANSI colour.
pub fn init(verbosity: u8, color: bool) {
    let default = match verbosity {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let no_bodies = filter_fn(|meta| !(BODY_LOGGING_TARGETS.iter().any(|t| meta.target().starts_with(t)) && *meta.level() > Level::INFO));
    let layer = tracing_subscriber::fmt::layer().with_writer(StderrAboveBar).with_ansi(color).with_target(true).with_filter(no_bodies);
    let _ = tracing_subscriber::registry().with(filter).with(layer).try_init();
}

/// stderr, with the progress bar suspended while a line is written.
#[derive(Debug, Clone, Copy)]
struct StderrAboveBar;

impl<'a> MakeWriter<'a> for StderrAboveBar {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter(Vec::new())
    }
}

/// Buffers one event, then prints it in one piece above the bar.
#[derive(Debug)]
struct LineWriter(Vec<u8>);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.0);
        let bar = active().lock().expect("not poisoned").clone();
        let write = || {
            let _ = io::stderr().write_all(&bytes);
        };
        match bar {
            Some(b) => b.suspend(write),
            None => write(),
        }
    }
}
