//! Loading `vpnbridge.toml`: reading the file (at most [`MAX_CONFIG_BYTES`], UTF-8), parsing
//! it as TOML (syntax errors and duplicate keys located and explained), and locating
//! byte offsets as lines and columns. The schema walk itself is `schema.rs`.

use std::io::Read;
use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::Config;
use super::error::{ConfigError, ConfigErrors, ConfigWarning};
use super::schema::{Checker, path_of};

/// The commented example that `vpnbridge init` writes (`examples/vpnbridge.toml`, which
/// the README's quickstart runs). It validates as is and runs on the embedded simulator.
pub const EXAMPLE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/vpnbridge.toml"));

/// [`EXAMPLE`] for `mode` (`vpnbridge init --mode`): bgp-ha uses all four tunnels.
pub fn example(mode: super::Mode) -> String {
    match mode {
        super::Mode::StaticHa => EXAMPLE.to_owned(),
        super::Mode::BgpHa => EXAMPLE.replacen("\nmode = \"static-ha\"\n", "\nmode = \"bgp-ha\"\n", 1).replacen(
            "\ntunnels_per_connection = 1\n",
            "\ntunnels_per_connection = 2\n",
            1,
        ),
    }
}

/// Config files larger than this are refused before they are read: a vpnbridge config
/// is a few kilobytes, and checking stays fast (linear) up to this size.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A validated configuration and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<ConfigWarning>,
}

/// Reads and validates the config file at `path`, taking `AZURE_SUBSCRIPTION_ID` and any
/// `env:NAME` pre-shared key from the process environment.
/// Files over [`MAX_CONFIG_BYTES`] are refused before they are read.
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    let text = read_config(path).map_err(|(problem, fix)| {
        ConfigErrors(vec![ConfigError { file: path.to_owned(), field: String::new(), line: None, column: None, problem, fix }])
    })?;
    parse(&text, path, &|name| std::env::var(name).ok())
}

/// The file's text, or what is wrong with reading it and what to do.
fn read_config(path: &Path) -> Result<String, (String, String)> {
    let cannot_read = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ("no such file".to_owned(), format!("run `vpnbridge init` to write a commented example to {}, then edit it", path.display()))
        } else {
            (format!("cannot read the file: {e}"), "check the path and its permissions; the file must be UTF-8 text".to_owned())
        }
    };
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    let meta = file.metadata().map_err(cannot_read)?;
    if meta.is_dir() {
        return Err((
            "is a directory, not a config file".to_owned(),
            format!("name the config file itself, e.g. {}", path.join("vpnbridge.toml").display()),
        ));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_large(meta.len()));
    }
    // Read at most one byte past the limit: the file may grow, or be a device.
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes).map_err(cannot_read)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        (
            format!("is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()),
            "save the file as UTF-8; `vpnbridge init` writes a valid example".to_owned(),
        )
    })
}

fn too_large(len: u64) -> (String, String) {
    #[allow(clippy::cast_precision_loss)]
    let mib = len as f64 / (1u64 << 20) as f64;
    (
        format!("the file is {mib:.1} MiB ({len} bytes); config files over 1 MiB are refused (a vpnbridge config is a few kilobytes)"),
        "check that --config names your vpnbridge.toml; `vpnbridge init` writes a commented example".to_owned(),
    )
}

/// Validates config `text` read from `source` (used in messages and kept in
/// [`Config::source`]); `env` looks up environment variables.
/// Text over [`MAX_CONFIG_BYTES`] is refused unread. Checking takes time linear in the
/// size of the text, however many problems it has.
pub fn parse(text: &str, source: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, ConfigErrors> {
    let mut cx = Checker { file: source, text, index: TextIndex::new(""), errors: Vec::new(), warnings: Vec::new() };
    if text.len() as u64 > MAX_CONFIG_BYTES {
        let (problem, fix) = too_large(text.len() as u64);
        cx.error("", None, problem, fix);
        return Err(ConfigErrors(cx.errors));
    }
    cx.index = TextIndex::new(text);
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let span = e.span();
            match span.clone().filter(|_| e.message() == "duplicate key").and_then(|s| duplicate(text, s)) {
                Some(dup) => {
                    let (problem, fix) = match (dup.is_table, dup.first) {
                        (true, Some(first)) => (
                            format!("[{}] appears twice (first on line {})", dup.path, cx.index.position(first).0),
                            format!("merge the two [{}] sections into one; TOML allows a table only once", dup.path),
                        ),
                        (false, Some(first)) => (
                            format!("is set twice (first on line {})", cx.index.position(first).0),
                            "keep one of the two lines; TOML allows a key only once in a table".to_owned(),
                        ),
                        (_, None) => (
                            "is set twice".to_owned(),
                            "keep only one of them; TOML allows a key (or a table) only once".to_owned(),
                        ),
                    };
                    let field = if dup.is_table { String::new() } else { dup.path };
                    cx.error(field, span, problem, fix);
                }
                None => cx.error(
                    "",
                    span,
                    format!("invalid TOML: {}", e.message()),
                    "correct the syntax at this position (strings need double quotes, lists use [ ]); `vpnbridge init` writes a valid example",
                ),
            }
            return Err(ConfigErrors(cx.errors));
        }
    };
    let config = cx.check(root.get_ref(), env);
    cx.errors.sort_by_key(|e| (e.line.unwrap_or(usize::MAX), e.column.unwrap_or(0)));
    match config {
        Some(config) if cx.errors.is_empty() => Ok(Loaded { config, warnings: cx.warnings }),
        _ => {
            if cx.errors.is_empty() {
                cx.error("", None, "the configuration is incomplete", "report this as a vpnbridge bug");
            }
            Err(ConfigErrors(cx.errors))
        }
    }
}

/// Byte offsets -> 1-based (line, column in characters), each lookup O(log n): built
/// once per file, so thousands of errors cost no more than the file's length.
#[derive(Debug)]
pub(super) struct TextIndex {
    /// Byte offset of each line's start.
    line_starts: Vec<usize>,
    /// Characters before byte `k * CHECKPOINT`, so a column counts at most
    /// `CHECKPOINT` bytes even on a one-line file.
    chars_before: Vec<usize>,
}

const CHECKPOINT: usize = 1024;

impl TextIndex {
    pub(super) fn new(text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut line_starts = vec![0];
        line_starts.extend(bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1));
        let mut chars_before = Vec::with_capacity(bytes.len() / CHECKPOINT + 1);
        let mut count = 0;
        for chunk in bytes.chunks(CHECKPOINT) {
            chars_before.push(count);
            count += chunk.iter().filter(|b| !is_continuation(**b)).count();
        }
        chars_before.push(count);
        Self { line_starts, chars_before }
    }

    /// Characters that start before byte `offset` of `text`.
    fn chars_to(&self, text: &str, offset: usize) -> usize {
        let k = offset / CHECKPOINT;
        let from = k * CHECKPOINT;
        self.chars_before[k] + text.as_bytes()[from..offset].iter().filter(|b| !is_continuation(**b)).count()
    }

    /// 1-based line of a byte offset (and the byte where that line starts).
    pub(super) fn position(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|start| *start <= offset);
        (line, self.line_starts[line.saturating_sub(1)])
    }

    /// 1-based line and column (in characters) of byte `offset` of `text`, the text
    /// this index was built from.
    pub(super) fn line_column(&self, text: &str, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let (line, line_start) = self.position(offset);
        (line, self.chars_to(text, offset) - self.chars_to(text, line_start) + 1)
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// A duplicate key or table found by the TOML parser, located in the parts it kept.
#[derive(Debug)]
struct Duplicate {
    /// Dotted path of the key or table (`azure.vnet`, `aws`).
    path: String,
    /// Byte offset of its first occurrence, when found.
    first: Option<usize>,
    /// `[table]` written twice (rather than a key).
    is_table: bool,
}

/// Names the duplicate whose second occurrence is at `span`: the parser's partial
/// document holds the first one; the nearest same-named key before `span` is it.
fn duplicate(text: &str, span: Range<usize>) -> Option<Duplicate> {
    let raw = text.get(span.clone())?.trim();
    let name = raw.trim_matches('"').trim_matches('\'');
    let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
    let is_table = text[line_start..span.start].trim_start().starts_with('[');
    if is_table {
        // The parser keeps the second [table], not the first: find the first header
        // line that names the same table.
        let line_end = text[span.start..].find('\n').map_or(text.len(), |i| span.start + i);
        let header = |line: &str| -> Option<String> {
            let inner = line.trim().strip_prefix('[')?.split(']').next()?;
            Some(inner.split('.').map(|p| p.trim().trim_matches('"').trim_matches('\'')).collect::<Vec<_>>().join("."))
        };
        let path = header(&text[line_start..line_end])?;
        let mut offset = 0;
        let first = text[..line_start].split_inclusive('\n').find_map(|line| {
            let at = offset;
            offset += line.len();
            (header(line).as_deref() == Some(path.as_str())).then_some(at)
        });
        return Some(Duplicate { path, first, is_table });
    }
    let (root, _) = DeTable::parse_recoverable(text);
    let mut best: Option<(usize, String)> = None;
    // Walked with a stack: a hostile file may nest deeply.
    let mut stack: Vec<(String, &DeTable<'_>)> = vec![(String::new(), root.get_ref())];
    while let Some((prefix, table)) = stack.pop() {
        for (k, v) in table.iter() {
            let path = path_of(&prefix, k.get_ref());
            let start = k.span().start;
            if k.get_ref().as_ref() == name && start < span.start && best.as_ref().is_none_or(|(b, _)| start > *b) {
                best = Some((start, path.clone()));
            }
            match v.get_ref() {
                DeValue::Table(t) => stack.push((path, t)),
                DeValue::Array(items) => {
                    for item in items.iter() {
                        if let DeValue::Table(t) = item.get_ref() {
                            stack.push((path.clone(), t));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Some(match best {
        Some((first, path)) => Duplicate { path, first: Some(first), is_table },
        None => Duplicate { path: name.to_owned(), first: None, is_table },
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::azure::SIM_SUBSCRIPTION;
    use crate::config::testing::*;
    use crate::config::{Backend, GatewaySku, Generation, Mode, PskSource};

    #[test]
    fn example_is_valid_with_documented_defaults() {
        let loaded = parse_str(EXAMPLE).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let c = loaded.config;
        assert_eq!(c.name, "azure-aws");
        assert_eq!(c.mode, Mode::StaticHa);
        let bgp = parse(&example(Mode::BgpHa), Path::new("bgp.toml"), &|_| None).expect("the bgp-ha example is valid").config;
        assert_eq!((bgp.mode, bgp.tunnels_per_connection, bgp.aws.tunnel_inside_cidrs.len()), (Mode::BgpHa, 2, 4));
        assert_eq!(c.tunnels_per_connection, 1);
        assert_eq!(c.psk, PskSource::Generate);
        assert_eq!(c.azure.backend, Backend::Sim);
        assert_eq!(c.azure.subscription_id, SIM_SUBSCRIPTION);
        assert_eq!(c.azure.gateway_sku, GatewaySku::VpnGw1AZ);
        assert_eq!(c.azure.gateway_generation, Generation::Generation1);
        assert_eq!(c.azure.asn, 65000);
        assert_eq!(c.azure.endpoint, None);
        assert_eq!(c.aws.amazon_asn, 64512);
        assert!(c.aws.tunnel_inside_cidrs.is_empty());
        assert_eq!(c.source, PathBuf::from("t.toml"));
    }

    #[test]
    fn positions_are_one_based() {
        let errs = errors(&replace("vnet = \"vnet-hub\"", "vnet = \"-bad\""));
        let e = errs.iter().find(|e| e.field == "azure.vnet").unwrap();
        let line = EXAMPLE.lines().position(|l| l.starts_with("vnet =")).unwrap() + 1;
        assert_eq!((e.line, e.column), (Some(line), Some(8)));
        assert!(e.to_string().starts_with(&format!("t.toml:{line}:8: azure.vnet: ")));
    }

    #[test]
    fn a_syntax_error_never_echoes_the_offending_text() {
        let errs = errors(&replace("psk = \"generate\"", "psk = Sup3rSecretKey"));
        assert_eq!(errs.len(), 1);
        assert!(!format!("{:?} {}", errs, ConfigErrors(errs.clone())).contains("Sup3rSecret"));
        assert!(errs[0].line.is_some() && errs[0].column.is_some());
    }
}
