//! One run at a time per deployment: an OS file lock on `.vpnbridge/lock` next to the
//! config file (or in `--sim-dir`), whatever the backends.
//!
//! On the simulator the world file there is the simulated clouds' state, so two
//! processes must not write it at once; on real clouds two runs from the same machine
//! must not race each other's creates. The lock is released by the OS when its holder
//! exits, even by a crash, so a dead run never blocks the next one. The holder writes
//! who it is into the file, and a waiting run names it. Runs from *different* machines
//! against the same real deployment are not serialised yet: that needs a lease tag on
//! an owned resource, with an expiry (see ARCHITECTURE.md).
//!
//! Commands that only read (`plan`, `status`, `verify`) take the lock *shared*, and
//! only if its file already exists: they wait for a run that changes the deployment,
//! never for each other, and write nothing (they open the file read-only and create
//! neither it nor its directory). Every I/O error names the path and what was being
//! done.

use anyhow::Context;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Held for the life of a command; released on drop or process exit.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    /// Taken by a command that changes things: it wrote who it is into the file.
    exclusive: bool,
}

impl Drop for RunLock {
    /// A finished run leaves the file empty, so a run that waits later for a
    /// read-only one does not name this one.
    fn drop(&mut self) {
        if self.exclusive {
            let _ = self.file.set_len(0);
        }
    }
}

/// Another run holds the lock.
#[derive(Debug, thiserror::Error)]
#[error(
    "another vpnbridge run holds the lock on {}: {holder}. Wait for it to finish (it is released as soon as that process exits, even if it crashes), \
     or set VPNBRIDGE_LOCK_WAIT to wait longer than {waited:?}",
    path.display()
)]
pub struct LockHeld {
    pub path: PathBuf,
    pub holder: String,
    pub waited: Duration,
}

impl RunLock {
    /// Takes the lock in `dir` for a command that changes things, creating `dir` and
    /// the lock file as needed, waiting up to `wait` for another run to finish.
    pub fn acquire(dir: &Path, command: &str, wait: Duration, waiting: &dyn Fn(&str)) -> anyhow::Result<Result<Self, LockHeld>> {
        not_a_file(dir)?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {} (for the run lock and the simulated clouds)", dir.display()))?;
        let path = dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening the run lock {}", path.display()))?;
        if let Err(held) = wait_for(&mut file, &path, wait, File::try_lock, waiting)? {
            return Ok(Err(held));
        }
        let since = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        let mut write = || -> std::io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            write!(file, "pid {} running `vpnbridge {command}` since unix time {since}", std::process::id())?;
            file.flush()
        };
        write().with_context(|| format!("writing who holds the run lock into {}", path.display()))?;
        Ok(Ok(Self { file, exclusive: true }))
    }

    /// Takes the lock in `dir` shared, for a command that only reads: it waits (up to
    /// `wait`) for a run that changes things, and writes nothing. `None` when there is
    /// no lock file (no run ever changed this deployment from here, or `dir` is not
    /// there): nothing to wait for, and nothing is created.
    pub fn share(dir: &Path, wait: Duration, waiting: &dyn Fn(&str)) -> anyhow::Result<Result<Option<Self>, LockHeld>> {
        not_a_file(dir)?;
        let path = dir.join("lock");
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => return Ok(Ok(None)),
            Err(e) => return Err(e).with_context(|| format!("opening the run lock {} to read it", path.display())),
        };
        Ok(wait_for(&mut file, &path, wait, File::try_lock_shared, waiting)?.map(|()| Some(Self { file, exclusive: false })))
    }
}

/// `dir` is a directory, or nothing yet.
fn not_a_file(dir: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => anyhow::bail!(
            "{} exists and is not a directory: vpnbridge keeps its run lock (and, on the simulator, the simulated clouds) there; \
             move that file away, or choose another directory with --sim-dir",
            dir.display()
        ),
        _ => Ok(()),
    }
}

/// Tries `lock` until it succeeds or `wait` has passed, telling `waiting` once who it
/// waits for.
fn wait_for(
    file: &mut File,
    path: &Path,
    wait: Duration,
    lock: fn(&File) -> Result<(), TryLockError>,
    waiting: &dyn Fn(&str),
) -> anyhow::Result<Result<(), LockHeld>> {
    let start = Instant::now();
    let mut said = false;
    loop {
        match lock(file) {
            Ok(()) => return Ok(Ok(())),
            Err(TryLockError::WouldBlock) => {
                let holder = read_holder(file);
                if start.elapsed() >= wait {
                    return Ok(Err(LockHeld { path: path.to_owned(), holder, waited: wait }));
                }
                if !said {
                    waiting(&holder);
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking the run lock {}", path.display())),
        }
    }
}

fn read_holder(file: &mut File) -> String {
    let mut s = String::new();
    let _ = file.rewind().and_then(|_| file.read_to_string(&mut s));
    if s.trim().is_empty() {
        "a read-only run (plan, status or verify), or one that has not said who it is yet".to_owned()
    } else {
        s.trim().to_owned()
    }
}
