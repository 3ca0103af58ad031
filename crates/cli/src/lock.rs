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

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Held for the life of a command; released on drop or process exit.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
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
    /// Takes the lock in `dir`, waiting up to `wait` for another run to finish.
    pub fn acquire(dir: &Path, command: &str, wait: Duration) -> anyhow::Result<Result<Self, LockHeld>> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("lock");
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        let start = Instant::now();
        let mut said = false;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let holder = read_holder(&mut file);
                    if start.elapsed() >= wait {
                        return Ok(Err(LockHeld { path, holder, waited: wait }));
                    }
                    if !said {
                        eprintln!("Waiting for another vpnbridge run to finish: {holder}");
                        said = true;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(TryLockError::Error(e)) => return Err(e.into()),
            }
        }
        let since = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "pid {} running `vpnbridge {command}` since unix time {since}", std::process::id())?;
        file.flush()?;
        Ok(Ok(Self { _file: file }))
    }
}

fn read_holder(file: &mut File) -> String {
    let mut s = String::new();
    let _ = file.rewind().and_then(|_| file.read_to_string(&mut s));
    if s.trim().is_empty() { "a process that has not said who it is yet".to_owned() } else { s.trim().to_owned() }
}
