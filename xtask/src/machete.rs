//! The unused-dependency check of `cargo xtask ci`: cargo-machete, installed once from
//! the Rust package registry into the build cache (`$HOME/.cache/vpnbridge/tools`) at a pinned version.
//!
//! Idempotent like `fakes`: when that version is already there it builds nothing and
//! needs no network. cargo-machete reads every member's manifest and searches its
//! sources for each dependency's crate name; a dependency named nowhere fails the check.
//! It looks at `[dependencies]` only, so `[dev-dependencies]` are checked here the same
//! way (a crate name that no `.rs` file of the member mentions).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The cargo-machete the workspace was checked with.
pub const MACHETE_VERSION: &str = "0.9.2";

fn tools() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".cache/vpnbridge/tools"))
}

/// The installed version of `bin`, from its `--version` line, if it runs.
fn version(bin: &Path) -> Option<String> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    out.status.success().then(|| text.split_whitespace().last().unwrap_or_default().to_owned())
}

/// The path of cargo-machete at [`MACHETE_VERSION`], installing it first if needed.
pub fn install() -> Result<PathBuf> {
    let root = tools()?;
    let bin = root.join("bin/cargo-machete");
    let have = version(&bin);
    if have.as_deref() == Some(MACHETE_VERSION) {
        eprintln!("cargo-machete {MACHETE_VERSION} already installed");
        return Ok(bin);
    }
    eprintln!("installing cargo-machete {MACHETE_VERSION} (found {})", have.as_deref().unwrap_or("none"));
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["install", "--locked", "--quiet", "cargo-machete", "--version", MACHETE_VERSION, "--root"])
        .arg(&root)
        // Its own scratch target directory, not the workspace's build cache.
        .env_remove("CARGO_TARGET_DIR");
    eprintln!("$ {cmd:?}");
    let status = cmd.status().with_context(|| format!("could not run {cmd:?}"))?;
    if !status.success() {
        bail!("installing cargo-machete failed ({status}); it needs access to the Rust package registry once");
    }
    Ok(bin)
}

/// Fails when a member of the workspace at `root` declares a dependency it never uses.
pub fn check(root: &Path) -> Result<()> {
    let unused = unused_dev_dependencies(root)?;
    if !unused.is_empty() {
        bail!("unused dev-dependencies: {}; remove them from the crate's Cargo.toml", unused.join(", "));
    }
    let bin = install()?;
    let mut cmd = Command::new(&bin);
    cmd.arg(root);
    eprintln!("$ {cmd:?}");
    let status = cmd.status().with_context(|| format!("could not run {}", bin.display()))?;
    if !status.success() {
        bail!(
            "unused dependencies (listed above): remove them from the crate's Cargo.toml, or, for one used \
             in a way cargo-machete cannot see, list it under [package.metadata.cargo-machete] ignored"
        );
    }
    Ok(())
}

/// The workspace members, from the root manifest's `members = [...]` line.
fn members(root: &Path) -> Result<Vec<PathBuf>> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let line = manifest.lines().find(|l| l.starts_with("members")).context("the root Cargo.toml has no members line")?;
    Ok(line.split('"').skip(1).step_by(2).map(|m| root.join(m)).collect())
}

/// The names of the dependencies in `[section]` of `manifest`.
fn section<'a>(manifest: &'a str, section: &str) -> Vec<&'a str> {
    let header = format!("[{section}]");
    let mut lines = manifest.lines().skip_while(|l| l.trim() != header).skip(1);
    let mut names = Vec::new();
    for line in lines.by_ref() {
        let line = line.trim();
        if line.starts_with('[') {
            break;
        }
        if let Some((key, _)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
            names.push(key.trim().trim_end_matches(".workspace"));
        }
    }
    names
}

/// Appends the text of every `.rs` file under `dir` to `out`.
fn read_sources(dir: &Path, out: &mut String) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                read_sources(&path, out)?;
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path)?);
        }
    }
    Ok(())
}

/// Whether `text` has `name` as a whole identifier.
fn mentions(text: &str, name: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(name)
        .any(|(i, _)| !text[..i].chars().next_back().is_some_and(ident) && !text[i + name.len()..].chars().next().is_some_and(ident))
}

/// `member: dependency` for each dev-dependency that no source file of its member names.
fn unused_dev_dependencies(root: &Path) -> Result<Vec<String>> {
    let mut unused = Vec::new();
    for member in members(root)? {
        let manifest = std::fs::read_to_string(member.join("Cargo.toml")).with_context(|| format!("reading {}", member.display()))?;
        let mut sources = String::new();
        read_sources(&member, &mut sources)?;
        for dep in section(&manifest, "dev-dependencies") {
            if !mentions(&sources, &dep.replace('-', "_")) {
                let name = member.strip_prefix(root).unwrap_or(&member).display().to_string();
                unused.push(format!("{name}: {dep}"));
            }
        }
    }
    Ok(unused)
}
