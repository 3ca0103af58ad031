//! `cargo xtask fakes`: installs the local cloud fakes the adapter tests run against.
//!
//! Today that is moto (a real implementation of the EC2 API, from PyPI) and Microsoft's
//! `azure-mgmt-network` Python models (which the Azure adapter's shape check reads the
//! ARM fake's responses through) in a virtualenv under the build cache,
//! `$HOME/.cache/vpnbridge/venv`. Idempotent: when the pinned versions are already there
//! it does nothing and needs no network, so CI and offline machines only pay for the
//! first install. Prints the path of `moto_server`, which the AWS adapter's tests find
//! there (or through `VPNBRIDGE_MOTO_SERVER`); the Azure adapter's tests use the same
//! virtualenv's `python3` (or `VPNBRIDGE_PYTHON`).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The moto the harness layer (`crates/aws/tests/it/moto_vpn.py`) was written against.
pub const MOTO_VERSION: &str = "5.2.5";

/// The `azure-mgmt-network` the shape check (`crates/azure/tests/it/python_models.rs`)
/// was validated with.
pub const AZURE_MGMT_NETWORK_VERSION: &str = "33.1.0";

fn venv() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".cache/vpnbridge/venv"))
}

fn run_ok(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd.status().with_context(|| format!("could not run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// The version of distribution `package` installed in the virtualenv, if any.
fn installed(python: &std::path::Path, package: &str) -> Option<String> {
    let script = format!("import importlib.metadata as m; print(m.version('{package}'))");
    let out = Command::new(python).args(["-c", &script]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub fn run() -> Result<()> {
    let venv = venv()?;
    let python = venv.join("bin/python3");
    let server = venv.join("bin/moto_server");
    if !python.exists() {
        std::fs::create_dir_all(venv.parent().expect("venv has a parent"))?;
        run_ok(Command::new("python3").args(["-m", "venv"]).arg(&venv))
            .context("creating the virtualenv needs python3 with the venv module (Debian: apt-get install python3-venv)")?;
    }
    let have = installed(&python, "moto");
    if have.as_deref() != Some(MOTO_VERSION) || !server.exists() {
        eprintln!("installing moto[server]=={MOTO_VERSION} (found {})", have.as_deref().unwrap_or("none"));
        run_ok(Command::new(&python).args(["-m", "pip", "install", "--quiet", &format!("moto[server]=={MOTO_VERSION}")]))
            .context("installing moto needs access to PyPI once")?;
    } else {
        eprintln!("moto {MOTO_VERSION} already installed");
    }
    let have = installed(&python, "azure-mgmt-network");
    if have.as_deref() != Some(AZURE_MGMT_NETWORK_VERSION) {
        eprintln!("installing azure-mgmt-network=={AZURE_MGMT_NETWORK_VERSION} (found {})", have.as_deref().unwrap_or("none"));
        run_ok(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            &format!("azure-mgmt-network=={AZURE_MGMT_NETWORK_VERSION}"),
        ]))
        .context("installing azure-mgmt-network needs access to PyPI once")?;
    } else {
        eprintln!("azure-mgmt-network {AZURE_MGMT_NETWORK_VERSION} already installed");
    }
    if !server.exists() {
        bail!("{} is missing after the install", server.display());
    }
    println!("{}", server.display());
    Ok(())
}
