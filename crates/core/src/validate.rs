//! Loading `vpnbridge.toml`: text -> [`Config`], with every problem of the file reported
//! at once, each with where it is (file, line, field) and what to do about it.
//!
//! The file is parsed into a spanned TOML table and walked against the schema by hand
//! (unknown keys get a "did you mean" suggestion, wrong types name the expected type),
//! then every field and cross-field rule of docs/design.md §2 is checked. Nothing here prints a
//! pre-shared key: a `psk` value that is not a key source is never quoted, and a key read
//! from the environment is described only by the rule it breaks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::path::{Path, PathBuf};

use ipnet::{IpNet, Ipv4Net};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::config::{
    AwsConfig, AzureConfig, AzureVmRef, Backend, Config, GatewaySku, Generation, Mode, ProbeConfig, PskSource, azure_reserved_asn,
    in_azure_apipa_range, overlaps, reserved_inside_cidr, valid_amazon_asn,
};
use crate::secret::{Psk, PskError};

/// The commented example that `vpnbridge init` writes. It validates as is and runs on
/// the embedded simulator.
pub const EXAMPLE: &str = r#"# vpnbridge.toml: one redundant site-to-site VPN between an Azure VNet and an AWS VPC,
# built with Azure VPN Gateway and an AWS virtual private gateway.
#
# As written it runs on the embedded simulator. For the real clouds set
# [azure] backend = "azure" and [aws] backend = "aws". Credentials come from the
# environment (Azure CLI login or AZURE_* variables; AWS profile or AWS_* variables):
# no secret, credential or pre-shared key ever lives in this file.

# Deployment name: the value of the vpnbridge:deployment tag and the prefix of Azure
# resource names (e.g. azure-aws-lng-1-1). 1-40 lowercase letters, digits and '-',
# starting with a letter.
name = "azure-aws"

# "static-ha" (default): static routes, tunnel 1 of each of the two AWS VPN connections.
# "bgp-ha": BGP over APIPA inside addresses on all four tunnels.
mode = "static-ha"

# Tunnels used per AWS VPN connection (there are two connections, two tunnels each).
# static-ha: 1 (default, 2 tunnels) or 2 (4 tunnels). bgp-ha: 2 (its default).
tunnels_per_connection = 1

# Where the tunnels' pre-shared keys come from:
#   "generate" (default)  vpnbridge makes one per tunnel, valid for both clouds
#   "aws"                 AWS makes them and vpnbridge reads them back
#   "env:NAME"            one key for every tunnel, read from environment variable NAME
#                         (8-64 letters, digits, '.' or '_', not starting with '0')
psk = "generate"

[azure]
# "sim" (default): the embedded simulator. "azure": the real Azure Resource Manager.
backend = "sim"
# Subscription GUID. If absent: AZURE_SUBSCRIPTION_ID (required for backend "azure").
# subscription_id = "00000000-0000-0000-0000-000000000000"
resource_group = "rg-vpn"
# Lowercase location name, as `az account list-locations -o table` prints it.
location = "japaneast"
vnet = "vnet-hub"
# The VNet's address space as declared here (checked read-only against the real VNet).
# IPv4 only; must not overlap [aws] cidrs.
address_space = ["10.1.0.0/16"]
# The VNet's GatewaySubnet, inside address_space: /29 at least, /27 or larger recommended.
gateway_subnet = "10.1.255.0/27"
# Zone-redundant SKUs only: VpnGw1AZ (default) .. VpnGw5AZ. Basic and plain VpnGw1-5
# cannot be used. The generation must fit the SKU:
#   Generation1 (default): VpnGw1AZ, VpnGw2AZ, VpnGw3AZ
#   Generation2:           VpnGw2AZ, VpnGw3AZ, VpnGw4AZ, VpnGw5AZ
gateway_sku = "VpnGw1AZ"
gateway_generation = "Generation1"
# "RouteBased" is the only type with IKEv2 and active-active.
vpn_type = "RouteBased"
# The gateway's BGP ASN, which is also the AWS customer gateways' ASN. Default 65000.
# Never one of Azure's reserved ASNs (65515, 65517-65520, ...), never equal to amazon_asn.
asn = 65000
# ARM endpoint override (tests, sovereign clouds); "" = the public cloud.
endpoint = ""

[aws]
# "sim" (default): the embedded simulator. "aws": the real EC2 API.
backend = "sim"
region = "ap-northeast-1"
vpc_id = "vpc-0123456789abcdef0"
# The VPC's CIDRs as declared here (checked read-only against the real VPC).
cidrs = ["10.2.0.0/16"]
# Route tables (rtb-...) that get a route to each Azure prefix; [] = the VPC's main one.
route_tables = []
# The virtual private gateway's ASN: 64512 (default), 64512-65534 or 4200000000-4294967294.
amazon_asn = 64512
# One /30 inside 169.254.0.0/16 per *used* tunnel, in tunnel order: connection 1's, then
# connection 2's (tunnels_per_connection = 1: [conn 1, conn 2]; = 2: [conn 1 tunnel 1,
# conn 1 tunnel 2, conn 2 tunnel 1, conn 2 tunnel 2]). AWS may hand a pinned /30 to either
# tunnel of its connection; vpnbridge follows the /30. [] lets AWS choose in static-ha and
# means 169.254.21.0/30, 169.254.22.0/30, 169.254.21.4/30, 169.254.22.4/30 in bgp-ha.
tunnel_inside_cidrs = []
# EC2 endpoint override; "" = the default (or AWS_ENDPOINT_URL*).
endpoint = ""

# Optional: your test VMs, one on each side, for `verify` and `drill` to ping through on
# the real clouds (Azure VM Run Command; AWS Systems Manager Run Command: the instance
# needs the SSM agent and an instance profile with AmazonSSMManagedInstanceCore). Their
# private IPs are read from the clouds. On the simulator they are simulated VMs.
# [probe]
# azure_vm = "vm-test"                # a name in [azure] resource_group, or a full resource id
# aws_instance = "i-0123456789abcdef0"
"#;

/// One problem in a config file: where it is, what is wrong and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted path of the field (`azure.gateway_sku`, `aws.cidrs[1]`), or "" for a
    /// problem with the file itself (syntax, missing file).
    pub field: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.problem)?;
        if !self.fix.is_empty() {
            write!(f, "\n  fix: {}", self.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Config files larger than this are refused before they are read: a vpnbridge config
/// is a few kilobytes, and checking stays fast (linear) up to this size.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// How many errors [`ConfigErrors`] shows in full; a last line counts the others.
pub const SHOWN_ERRORS: usize = 100;

/// Every problem found in a config file (never empty when returned by [`load`] or
/// [`parse`]), in file order. All of them are kept; the display shows the first
/// [`SHOWN_ERRORS`] and says how many more there are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_errors(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// One message per error, the first [`SHOWN_ERRORS`] of them, then (if there are
    /// more) one line saying how many were left out: what the CLI shows and puts in JSON.
    pub fn messages(&self) -> Vec<String> {
        let mut out: Vec<String> = self.0.iter().take(SHOWN_ERRORS).map(ToString::to_string).collect();
        if let Some(more) = more_errors_line(self.0.len()) {
            out.push(more);
        }
        out
    }
}

fn more_errors_line(total: usize) -> Option<String> {
    (total > SHOWN_ERRORS).then(|| {
        let more = total - SHOWN_ERRORS;
        format!("... and {more} more error{} not shown: fix these and run again", if more == 1 { "" } else { "s" })
    })
}

fn render_errors(errors: &[ConfigError]) -> String {
    let mut out = String::new();
    for (i, e) in errors.iter().take(SHOWN_ERRORS).enumerate() {
        let prefix = format!("{}. ", i + 1);
        let indent = " ".repeat(prefix.len());
        for (j, line) in e.to_string().lines().enumerate() {
            out.push_str(if j == 0 { &prefix } else { &indent });
            out.push_str(line);
            out.push('\n');
        }
    }
    if let Some(more) = more_errors_line(errors.len()) {
        out.push_str(&more);
        out.push('\n');
    }
    let n = errors.len();
    let file = errors.first().map(|e| e.file.display().to_string()).unwrap_or_default();
    out.push_str(&format!("{n} error{} in {file}", if n == 1 { "" } else { "s" }));
    out
}

/// Something legal but probably not what was meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

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

// ---------------------------------------------------------------------------------------
// Schema

/// The keys of `vpnbridge.toml`: top level, `[azure]`, `[aws]`.
pub const TOP_KEYS: &[&str] = &["name", "mode", "tunnels_per_connection", "psk", "azure", "aws", "probe"];
pub const AZURE_KEYS: &[&str] = &[
    "backend",
    "subscription_id",
    "resource_group",
    "location",
    "vnet",
    "address_space",
    "gateway_subnet",
    "gateway_sku",
    "gateway_generation",
    "vpn_type",
    "asn",
    "endpoint",
];
pub const AWS_KEYS: &[&str] = &["backend", "region", "vpc_id", "cidrs", "route_tables", "amazon_asn", "tunnel_inside_cidrs", "endpoint"];
pub const PROBE_KEYS: &[&str] = &["azure_vm", "aws_instance"];

/// The default bgp-ha tunnel inside CIDRs, in tunnel order.
const BGP_INSIDE_DEFAULTS: [&str; 4] = ["169.254.21.0/30", "169.254.22.0/30", "169.254.21.4/30", "169.254.22.4/30"];
const BGP_INSIDE_DEFAULTS_TEXT: &str = "169.254.21.0/30, 169.254.22.0/30, 169.254.21.4/30, 169.254.22.4/30";
const SIM_SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000000";

/// A line to add for a missing required key.
fn example_line(field: &str) -> &'static str {
    match field {
        "name" => r#"name = "azure-aws""#,
        "azure.resource_group" => r#"resource_group = "rg-vpn""#,
        "azure.location" => r#"location = "japaneast""#,
        "azure.vnet" => r#"vnet = "vnet-hub""#,
        "azure.address_space" => r#"address_space = ["10.1.0.0/16"]"#,
        "azure.gateway_subnet" => r#"gateway_subnet = "10.1.255.0/27""#,
        "aws.region" => r#"region = "ap-northeast-1""#,
        "aws.vpc_id" => r#"vpc_id = "vpc-0123456789abcdef0""#,
        "aws.cidrs" => r#"cidrs = ["10.2.0.0/16"]"#,
        "probe.azure_vm" => r#"azure_vm = "vm-test""#,
        "probe.aws_instance" => r#"aws_instance = "i-0123456789abcdef0""#,
        _ => "",
    }
}

// ---------------------------------------------------------------------------------------
// Problems and the checker that collects them

/// What is wrong with a value and what to do, before it is given a place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Problem {
    problem: String,
    fix: String,
}

fn problem(problem: impl Into<String>, fix: impl Into<String>) -> Problem {
    Problem { problem: problem.into(), fix: fix.into() }
}

/// A value and where it was written.
#[derive(Debug, Clone)]
struct At<T> {
    value: T,
    span: Option<Range<usize>>,
}

#[derive(Debug)]
struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    /// Where each line starts, for positions in O(log n) however many errors there are.
    index: TextIndex,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigWarning>,
}

/// Byte offsets -> 1-based (line, column in characters), each lookup O(log n): built
/// once per file, so thousands of errors cost no more than the file's length.
#[derive(Debug)]
struct TextIndex {
    /// Byte offset of each line's start.
    line_starts: Vec<usize>,
    /// Characters before byte `k * CHECKPOINT`, so a column counts at most
    /// `CHECKPOINT` bytes even on a one-line file.
    chars_before: Vec<usize>,
}

const CHECKPOINT: usize = 1024;

impl TextIndex {
    fn new(text: &str) -> Self {
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
    fn position(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|start| *start <= offset);
        (line, self.line_starts[line.saturating_sub(1)])
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

fn path_of(table: &str, key: &str) -> String {
    if table.is_empty() { key.to_owned() } else { format!("{table}.{key}") }
}

fn kind_of(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

impl Checker<'_> {
    /// 1-based line and column (in characters) of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let (line, line_start) = self.index.position(offset);
        (line, self.index.chars_to(self.text, offset) - self.index.chars_to(self.text, line_start) + 1)
    }

    fn error(&mut self, field: impl Into<String>, span: Option<Range<usize>>, problem: impl Into<String>, fix: impl Into<String>) {
        let (line, column) = match span.map(|s| self.position(s.start)) {
            Some((l, c)) => (Some(l), Some(c)),
            None => (None, None),
        };
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            field: field.into(),
            line,
            column,
            problem: problem.into(),
            fix: fix.into(),
        });
    }

    fn report(&mut self, field: impl Into<String>, span: Option<Range<usize>>, p: Problem) {
        self.error(field, span, p.problem, p.fix);
    }

    fn warn(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(ConfigWarning { field: field.into(), message: message.into() });
    }

    /// Applies `check` to a value, reporting its problem at the value.
    fn checked<T, U>(&mut self, field: &str, v: &At<T>, check: impl FnOnce(&T) -> Result<U, Problem>) -> Option<U> {
        match check(&v.value) {
            Ok(u) => Some(u),
            Err(p) => {
                self.report(field, v.span.clone(), p);
                None
            }
        }
    }

    // -- schema walk ----------------------------------------------------------------------

    fn unknown_keys(&mut self, table_name: &str, table: &DeTable<'_>, known: &[&str]) {
        let place = if table_name.is_empty() { "at the top level".to_owned() } else { format!("in [{table_name}]") };
        for (key, _) in table.iter() {
            let k: &str = key.get_ref();
            if known.contains(&k) {
                continue;
            }
            let elsewhere: Vec<&str> = [("", TOP_KEYS), ("azure", AZURE_KEYS), ("aws", AWS_KEYS), ("probe", PROBE_KEYS)]
                .into_iter()
                .filter(|(t, keys)| *t != table_name && keys.contains(&k) && !matches!(k, "azure" | "aws" | "probe"))
                .map(|(t, _)| t)
                .collect();
            let fix = if !elsewhere.is_empty() {
                let tables: Vec<String> = elsewhere
                    .iter()
                    .map(|t| if t.is_empty() { "the top level (before any [table])".to_owned() } else { format!("[{t}]") })
                    .collect();
                format!("{k:?} belongs in {}; move it there", tables.join(" or "))
            } else if let Some(s) = closest(k, known) {
                format!("did you mean {s:?}?")
            } else if looks_secret(k) {
                "remove it: no key, password or credential ever lives in this file (see `psk` and the environment)".to_owned()
            } else {
                format!("remove it; the keys {place} are: {}", known.join(", "))
            };
            self.error(path_of(table_name, k), Some(key.span()), format!("unknown key {k:?} {place}"), fix);
        }
    }

    fn type_error(&mut self, field: &str, v: &Spanned<DeValue<'_>>, expected: &str, example: &str) {
        self.error(field, Some(v.span()), format!("expected {expected}, found {}", kind_of(v.get_ref())), format!("write it as {example}"));
    }

    fn missing(&mut self, table_name: &str, table_span: Option<Range<usize>>, key: &str) {
        let field = path_of(table_name, key);
        let place = if table_name.is_empty() { "at the top of the file".to_owned() } else { format!("to [{table_name}]") };
        let fix = format!("add `{}` {place}", example_line(&field));
        self.error(field, table_span, "is required but missing", fix);
    }

    fn string(&mut self, t: &str, table: &DeTable<'_>, key: &str, example: &str) -> Option<At<String>> {
        let v = table.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(At { value: s.to_string(), span: Some(v.span()) }),
            _ => {
                self.type_error(&path_of(t, key), v, "a string", example);
                None
            }
        }
    }

    fn integer(&mut self, t: &str, table: &DeTable<'_>, key: &str, example: &str) -> Option<At<i128>> {
        let v = table.get(key)?;
        let field = path_of(t, key);
        match v.get_ref() {
            DeValue::Integer(i) => match i128::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(At { value: n, span: Some(v.span()) }),
                Err(_) => {
                    self.error(field, Some(v.span()), "is not a representable integer", format!("write it as {example}"));
                    None
                }
            },
            _ => {
                self.type_error(&field, v, "an integer", example);
                None
            }
        }
    }

    fn string_list(&mut self, t: &str, table: &DeTable<'_>, key: &str, example: &str) -> Option<At<Vec<At<String>>>> {
        let v = table.get(key)?;
        let field = path_of(t, key);
        let DeValue::Array(items) = v.get_ref() else {
            self.type_error(&field, v, "a list of strings", example);
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::String(s) => out.push(At { value: s.to_string(), span: Some(item.span()) }),
                _ => {
                    self.type_error(&format!("{field}[{i}]"), item, "a string", example);
                    ok = false;
                }
            }
        }
        ok.then_some(At { value: out, span: Some(v.span()) })
    }

    fn table<'t, 'i>(&mut self, root: &'t DeTable<'i>, key: &str) -> Option<(&'t DeTable<'i>, Range<usize>)> {
        let Some(v) = root.get(key) else {
            self.error(
                key,
                None,
                format!("the [{key}] table is missing"),
                format!("add a [{key}] table; `vpnbridge init` writes a complete example"),
            );
            return None;
        };
        match v.get_ref() {
            DeValue::Table(t) => Some((t, v.span())),
            _ => {
                self.type_error(key, v, "a table", &format!("a [{key}] section"));
                None
            }
        }
    }

    /// A string field that is required: reports it when missing.
    fn required_string(&mut self, t: &str, table: &DeTable<'_>, span: &Range<usize>, key: &str, example: &str) -> Option<At<String>> {
        if table.get(key).is_none() {
            self.missing(t, if t.is_empty() { None } else { Some(span.clone()) }, key);
        }
        self.string(t, table, key, example)
    }

    // -- the whole file ---------------------------------------------------------------------

    fn check(&mut self, root: &DeTable<'_>, env: &dyn Fn(&str) -> Option<String>) -> Option<Config> {
        self.unknown_keys("", root, TOP_KEYS);
        let top_span = 0..0;

        // Top level.
        let name = self.required_string("", root, &top_span, "name", r#""azure-aws""#);
        let name = name.and_then(|n| self.checked("name", &n, |s| check_name(s).map(|()| s.clone())));

        let mode_raw = self.string("", root, "mode", r#""static-ha""#);
        let mode = match &mode_raw {
            None => Some(Mode::StaticHa).filter(|_| root.get("mode").is_none()),
            Some(m) => self.checked("mode", m, |s| parse_mode(s)),
        };
        let effective_mode = mode.unwrap_or(Mode::StaticHa);

        let tpc = match self.integer("", root, "tunnels_per_connection", "1 or 2") {
            None if root.get("tunnels_per_connection").is_some() => None,
            None => Some(if effective_mode == Mode::BgpHa { 2 } else { 1 }),
            Some(n) => {
                let mode_known = mode.is_some();
                self.checked("tunnels_per_connection", &n, |&n| check_tunnels_per_connection(n, effective_mode, mode_known))
            }
        };

        let psk = match self.string("", root, "psk", r#""generate""#) {
            None if root.get("psk").is_some() => None,
            None => Some(PskSource::Generate),
            Some(p) => self.checked("psk", &p, |s| parse_psk(s, env)),
        };

        let azure = self.table(root, "azure").map(|(t, span)| {
            self.unknown_keys("azure", t, AZURE_KEYS);
            self.azure(t, span, effective_mode, env)
        });
        let aws = self.table(root, "aws").map(|(t, span)| {
            self.unknown_keys("aws", t, AWS_KEYS);
            self.aws(t, span, effective_mode, tpc)
        });
        let probe = self.probe(root, azure.as_ref());

        // Cross-table rules.
        if let (Some(az), Some(aw)) = (&azure, &aws) {
            if let (Some(space), Some(cidrs)) = (&az.address_space, &aw.cidrs) {
                // Each list is free of overlaps by now, so the pairs that overlap are
                // found with one ordered lookup per VPC CIDR, and there are at most
                // as many as the two lists are long.
                let vnet = DisjointPrefixes::new(space.iter().map(|a| a.value));
                let mut taken: Option<Vec<(u32, u32)>> = None;
                let mut free_by_len: HashMap<u8, Option<Ipv4Net>> = HashMap::new();
                for b in cidrs {
                    for a in vnet.overlapping(b.value) {
                        let taken = taken.get_or_insert_with(|| merged(space.iter().chain(cidrs.iter()).map(|x| x.value)));
                        let free = free_by_len
                            .entry(b.value.prefix_len())
                            .or_insert_with(|| free_prefix(b.value.prefix_len(), taken))
                            .map(|f| format!(" (e.g. {f} is free)"))
                            .unwrap_or_default();
                        self.error(
                            "aws.cidrs",
                            b.span.clone(),
                            format!(
                                "{} overlaps azure.address_space {a}; the VPC and the VNet must not share addresses, or traffic cannot be routed across",
                                b.value
                            ),
                            format!("use a VPC and a VNet with disjoint address ranges{free}"),
                        );
                    }
                }
            }
            if let (Some(location), Some(region)) = (&az.location, &aw.region)
                && let Some(message) = distance_warning(location, region)
            {
                self.warn("aws.region", message);
            }
            if let (Some(asn), Some(amazon)) = (az.asn, aw.amazon_asn)
                && asn == amazon
            {
                let fix = if amazon == 64512 {
                    "set [azure] asn = 65000 (the default) or another private ASN".to_owned()
                } else {
                    "set [aws] amazon_asn = 64512 (the default) or another private ASN".to_owned()
                };
                self.error(
                    "aws.amazon_asn",
                    aw.amazon_asn_span.clone(),
                    format!(
                        "equals azure.asn ({asn}); azure.asn is also the customer gateways' ASN and AWS refuses a customer gateway with the VGW's own ASN (AsnConflict)"
                    ),
                    fix,
                );
            }
            if let (Some(sku), Some(tpc)) = (az.gateway_sku, tpc) {
                let count = 2 * usize::from(tpc);
                if count > sku.tunnel_limit() {
                    self.error(
                        "tunnels_per_connection",
                        None,
                        format!("{count} tunnels exceed the {} site-to-site tunnels of {sku}", sku.tunnel_limit()),
                        "use fewer tunnels per connection or a larger SKU",
                    );
                }
            }
        }

        // Assemble.
        let az = azure?;
        let aw = aws?;
        Some(Config {
            source: self.file.to_owned(),
            name: name?,
            mode: mode?,
            tunnels_per_connection: tpc?,
            psk: psk?,
            azure: AzureConfig {
                backend: az.backend?,
                subscription_id: az.subscription_id?,
                resource_group: az.resource_group?,
                location: az.location?,
                vnet: az.vnet?,
                address_space: az.address_space?.into_iter().map(|a| a.value).collect(),
                gateway_subnet: az.gateway_subnet?,
                gateway_sku: az.gateway_sku?,
                gateway_generation: az.gateway_generation?,
                asn: az.asn?,
                endpoint: az.endpoint?,
            },
            aws: AwsConfig {
                backend: aw.backend?,
                region: aw.region?,
                vpc_id: aw.vpc_id?,
                cidrs: aw.cidrs?.into_iter().map(|a| a.value).collect(),
                route_tables: aw.route_tables?,
                amazon_asn: aw.amazon_asn?,
                tunnel_inside_cidrs: aw.tunnel_inside_cidrs?,
                endpoint: aw.endpoint?,
            },
            probe: probe?,
        })
    }

    fn azure(&mut self, t: &DeTable<'_>, span: Range<usize>, mode: Mode, env: &dyn Fn(&str) -> Option<String>) -> AzurePart {
        const T: &str = "azure";
        let backend = match self.string(T, t, "backend", r#""sim" or "azure""#) {
            None => Some(Backend::Sim).filter(|_| t.get("backend").is_none()),
            Some(b) => self.checked("azure.backend", &b, |s| parse_backend(s, "azure", "aws")),
        };

        let sub_raw = self.string(T, t, "subscription_id", r#""00000000-0000-0000-0000-000000000000""#);
        let sub_wrong_type = t.get("subscription_id").is_some_and(|v| !v.get_ref().is_str());
        let subscription_id = match sub_raw.filter(|s| !s.value.is_empty()) {
            _ if sub_wrong_type => None,
            Some(s) => self.checked("azure.subscription_id", &s, |s| parse_guid(s, "")),
            None => match env("AZURE_SUBSCRIPTION_ID").filter(|s| !s.is_empty()) {
                Some(s) => {
                    let v = At { value: s, span: None };
                    self.checked("azure.subscription_id", &v, |s| parse_guid(s, "AZURE_SUBSCRIPTION_ID"))
                }
                None => match backend {
                    Some(Backend::Sim) => Some(SIM_SUBSCRIPTION.to_owned()),
                    Some(Backend::Real) => {
                        self.error(
                            "azure.subscription_id",
                            Some(span.clone()),
                            r#"is required with backend = "azure" and AZURE_SUBSCRIPTION_ID is not set"#,
                            "add subscription_id = \"<GUID>\" to [azure] or export AZURE_SUBSCRIPTION_ID (`az account show --query id -o tsv` prints it)",
                        );
                        None
                    }
                    None => None,
                },
            },
        };

        let resource_group = self
            .required_string(T, t, &span, "resource_group", r#""rg-vpn""#)
            .and_then(|v| self.checked("azure.resource_group", &v, |s| check_resource_group(s).map(|()| s.clone())));
        let endpoint = self.endpoint(T, t);
        let cloud = AzureCloud::of(endpoint.as_ref().and_then(|e| e.as_deref()));
        let location = self.required_string(T, t, &span, "location", r#""japaneast""#).and_then(|v| {
            let known = self.checked("azure.location", &v, |s| check_location(s).and_then(|()| check_azure_location(s, cloud)))?;
            if let Some(warning) = known {
                self.warn("azure.location", warning);
            }
            Some(v.value)
        });
        let vnet = self
            .required_string(T, t, &span, "vnet", r#""vnet-hub""#)
            .and_then(|v| self.checked("azure.vnet", &v, |s| check_vnet(s).map(|()| s.clone())));

        if t.get("address_space").is_none() {
            self.missing(T, Some(span.clone()), "address_space");
        }
        let address_space =
            self.string_list(T, t, "address_space", r#"["10.1.0.0/16"]"#).and_then(|list| self.prefix_list("azure.address_space", &list));

        let gateway_subnet = self.required_string(T, t, &span, "gateway_subnet", r#""10.1.255.0/27""#).and_then(|v| {
            let net = self.checked("azure.gateway_subnet", &v, |s| parse_v4_prefix(s))?;
            self.gateway_subnet(net, v.span.clone(), address_space.as_deref())
        });

        let sku_raw = self.string(T, t, "gateway_sku", r#""VpnGw1AZ""#);
        let gateway_sku = match &sku_raw {
            None => Some(GatewaySku::VpnGw1AZ).filter(|_| t.get("gateway_sku").is_none()),
            Some(v) => self.checked("azure.gateway_sku", v, |s| parse_sku(s)),
        };
        let gen_raw = self.string(T, t, "gateway_generation", r#""Generation1""#);
        let gateway_generation = match &gen_raw {
            None => Some(Generation::Generation1).filter(|_| t.get("gateway_generation").is_none()),
            Some(v) => self.checked("azure.gateway_generation", v, |s| parse_generation(s)),
        };
        let mut pair_ok = true;
        if let (Some(sku), Some(generation)) = (gateway_sku, gateway_generation)
            && let Err(p) = check_sku_generation(sku, generation)
        {
            let span = gen_raw.as_ref().or(sku_raw.as_ref()).and_then(|v| v.span.clone());
            self.report("azure.gateway_generation", span, p);
            pair_ok = false;
        }

        if let Some(v) = self.string(T, t, "vpn_type", r#""RouteBased""#) {
            self.checked("azure.vpn_type", &v, |s| check_vpn_type(s));
        }

        let asn = match self.integer(T, t, "asn", "65000") {
            None if t.get("asn").is_some() => None,
            None => Some(65000),
            Some(v) => self.checked("azure.asn", &v, |&n| check_azure_asn(n, mode)),
        };

        AzurePart {
            backend,
            subscription_id,
            resource_group,
            location,
            vnet,
            address_space,
            gateway_subnet,
            gateway_sku: gateway_sku.filter(|_| pair_ok),
            gateway_generation: gateway_generation.filter(|_| pair_ok),
            asn,
            endpoint,
        }
    }

    /// The optional `[probe]` table: `Some(None)` when absent, `None` when wrong.
    fn probe(&mut self, root: &DeTable<'_>, azure: Option<&AzurePart>) -> Option<Option<ProbeConfig>> {
        const T: &str = "probe";
        let Some(v) = root.get(T) else { return Some(None) };
        let DeValue::Table(t) = v.get_ref() else {
            self.type_error(T, v, "a table", "a [probe] section");
            return None;
        };
        let span = v.span();
        self.unknown_keys(T, t, PROBE_KEYS);
        let vm = self.required_string(T, t, &span, "azure_vm", r#""vm-test""#).and_then(|v| {
            let sub = azure.and_then(|a| a.subscription_id.clone()).unwrap_or_default();
            let rg = azure.and_then(|a| a.resource_group.clone()).unwrap_or_default();
            self.checked("probe.azure_vm", &v, |s| parse_vm_ref(s, &sub, &rg))
        });
        let instance = self
            .required_string(T, t, &span, "aws_instance", r#""i-0123456789abcdef0""#)
            .and_then(|v| self.checked("probe.aws_instance", &v, |s| check_aws_id(s, "i", "EC2 instance").map(|()| s.clone())));
        Some(Some(ProbeConfig { azure_vm: vm?, aws_instance: instance? }))
    }

    fn aws(&mut self, t: &DeTable<'_>, span: Range<usize>, mode: Mode, tpc: Option<u8>) -> AwsPart {
        const T: &str = "aws";
        let backend = match self.string(T, t, "backend", r#""sim" or "aws""#) {
            None => Some(Backend::Sim).filter(|_| t.get("backend").is_none()),
            Some(b) => self.checked("aws.backend", &b, |s| parse_backend(s, "aws", "azure")),
        };
        let region = self
            .required_string(T, t, &span, "region", r#""ap-northeast-1""#)
            .and_then(|v| self.checked("aws.region", &v, |s| check_region(s).and_then(|()| check_aws_region(s)).map(|()| s.clone())));
        let vpc_id = self
            .required_string(T, t, &span, "vpc_id", r#""vpc-0123456789abcdef0""#)
            .and_then(|v| self.checked("aws.vpc_id", &v, |s| check_aws_id(s, "vpc", "VPC").map(|()| s.clone())));

        if t.get("cidrs").is_none() {
            self.missing(T, Some(span.clone()), "cidrs");
        }
        let cidrs = self.string_list(T, t, "cidrs", r#"["10.2.0.0/16"]"#).and_then(|list| self.prefix_list("aws.cidrs", &list));

        let route_tables = match self.string_list(T, t, "route_tables", r#"["rtb-0123456789abcdef0"]"#) {
            None if t.get("route_tables").is_some() => None,
            None => Some(Vec::new()),
            Some(list) => {
                let mut out = Vec::new();
                let mut seen = HashSet::new();
                let mut ok = true;
                for (i, v) in list.value.iter().enumerate() {
                    let field = format!("aws.route_tables[{i}]");
                    if self.checked(&field, v, |s| check_aws_id(s, "rtb", "route table")).is_none() {
                        ok = false;
                    } else if !seen.insert(v.value.as_str()) {
                        self.error(field, v.span.clone(), format!("{} is listed twice", v.value), "remove the duplicate");
                        ok = false;
                    } else {
                        out.push(v.value.clone());
                    }
                }
                ok.then_some(out)
            }
        };

        let (amazon_asn, amazon_asn_span) = match self.integer(T, t, "amazon_asn", "64512") {
            None if t.get("amazon_asn").is_some() => (None, None),
            None => (Some(64512), None),
            Some(v) => (self.checked("aws.amazon_asn", &v, |&n| check_amazon_asn(n, mode)), v.span.clone()),
        };

        let tunnel_inside_cidrs = match self.string_list(T, t, "tunnel_inside_cidrs", r#"["169.254.21.0/30", "169.254.22.0/30"]"#) {
            None if t.get("tunnel_inside_cidrs").is_some() => None,
            None => Some(Vec::new()),
            Some(list) => self.inside_cidrs(&list, mode, tpc),
        }
        .map(|list| {
            if list.is_empty() && mode == Mode::BgpHa {
                BGP_INSIDE_DEFAULTS.iter().map(|s| s.parse().expect("literal")).collect()
            } else {
                list
            }
        });

        let endpoint = self.endpoint(T, t);
        AwsPart { backend, region, vpc_id, cidrs, route_tables, amazon_asn, amazon_asn_span, tunnel_inside_cidrs, endpoint }
    }

    /// A non-empty list of IPv4 prefixes, none overlapping another.
    fn prefix_list(&mut self, field: &str, list: &At<Vec<At<String>>>) -> Option<Vec<At<Ipv4Net>>> {
        if list.value.is_empty() {
            let example = if field.starts_with("azure") { r#"["10.1.0.0/16"]"# } else { r#"["10.2.0.0/16"]"# };
            self.error(
                field,
                list.span.clone(),
                "is empty; at least one IPv4 prefix is needed",
                format!("list the prefixes, e.g. {example}"),
            );
            return None;
        }
        // The clouds' ceilings: AWS allows at most 50 IPv4 CIDR blocks per VPC (5 by
        // default), and every Azure prefix becomes a static route of each VPN
        // connection, of which AWS accepts 100.
        let (max, why) = if field.starts_with("azure") {
            (MAX_AZURE_PREFIXES, "each one is a static route of both AWS VPN connections, and AWS accepts at most 100 per connection")
        } else {
            (MAX_VPC_CIDRS, "AWS allows at most 50 IPv4 CIDR blocks in a VPC (5 unless the quota is raised)")
        };
        let mut ok = true;
        if list.value.len() > max {
            self.error(
                field,
                list.span.clone(),
                format!("lists {} prefixes; {why}", list.value.len()),
                format!("list at most {max}: summarise contiguous prefixes into larger ones (e.g. two /17s into one /16)"),
            );
            ok = false;
        }
        let mut out: Vec<At<Ipv4Net>> = Vec::new();
        // What `out` holds, ordered by address: an overlap is one ordered lookup.
        let mut accepted = DisjointPrefixes::default();
        let mut docker: Vec<(String, Ipv4Net)> = Vec::new();
        for (i, v) in list.value.iter().enumerate() {
            let item = format!("{field}[{i}]");
            let Some(net) = self.checked(&item, v, |s| parse_v4_prefix(s).and_then(routable)) else {
                ok = false;
                continue;
            };
            if field == "aws.cidrs" && overlaps(IpNet::V4(net), IpNet::V4(DOCKER_BRIDGE)) {
                docker.push((item.clone(), net));
            }
            if let Some(prev) = accepted.overlapping(net).next() {
                let prev = At { value: prev, span: None };
                let (problem, fix) = if prev.value == net {
                    (format!("{net} is listed twice"), "remove the duplicate".to_owned())
                } else if prev.value.contains(&net) {
                    (
                        format!("{net} lies inside {} of the same list", prev.value),
                        format!("remove {net}; {} already covers it", prev.value),
                    )
                } else {
                    (format!("{net} contains {} of the same list", prev.value), format!("remove {}; {net} already covers it", prev.value))
                };
                self.error(item, v.span.clone(), problem, fix);
                ok = false;
                continue;
            }
            accepted.insert(net);
            out.push(At { value: net, span: v.span.clone() });
        }
        if let Some((item, net)) = docker.first() {
            let others = match docker.len() - 1 {
                0 => String::new(),
                1 => " (so does 1 more entry of the list)".to_owned(),
                n => format!(" (so do {n} more entries of the list)"),
            };
            self.warn(
                item.clone(),
                format!(
                    "{net} overlaps 172.17.0.0/16, which AWS advises against for a VPC: Docker's default bridge (and services built on it, e.g. Cloud9, SageMaker) uses it, so hosts there may not reach the VNet{others}"
                ),
            );
        }
        ok.then_some(out)
    }

    fn gateway_subnet(&mut self, net: Ipv4Net, span: Option<Range<usize>>, space: Option<&[At<Ipv4Net>]>) -> Option<Ipv4Net> {
        const F: &str = "azure.gateway_subnet";
        let mut ok = true;
        if net.prefix_len() > 29 {
            let bigger = Ipv4Net::new(net.network(), 27).expect("27 <= 32").trunc();
            self.error(
                F,
                span.clone(),
                format!("{net} is a /{}; Azure's GatewaySubnet must be a /29 or larger", net.prefix_len()),
                format!("use a /27 (recommended), e.g. \"{bigger}\""),
            );
            ok = false;
        } else if net.prefix_len() >= 28 {
            let bigger = Ipv4Net::new(net.network(), 27).expect("27 <= 32").trunc();
            self.warn(
                F,
                format!(
                    "{net} is a /{}; Azure recommends /27 or larger for GatewaySubnet (e.g. {bigger}) so the gateway can grow",
                    net.prefix_len()
                ),
            );
        }
        if let Some(space) = space
            && !space.iter().any(|a| a.value.contains(&net))
        {
            let listed: Vec<String> = space.iter().map(|a| a.value.to_string()).collect();
            let example = space
                .iter()
                .find(|a| a.value.prefix_len() <= 27)
                .map(|a| format!(", e.g. \"{}\"", last_subnet(a.value, 27)))
                .unwrap_or_default();
            self.error(
                F,
                span,
                format!("{net} is not inside azure.address_space ({})", listed.join(", ")),
                format!("use a subnet of the VNet's address space{example}"),
            );
            ok = false;
        }
        ok.then_some(net)
    }

    fn inside_cidrs(&mut self, list: &At<Vec<At<String>>>, mode: Mode, tpc: Option<u8>) -> Option<Vec<Ipv4Net>> {
        const F: &str = "aws.tunnel_inside_cidrs";
        let mut ok = true;
        if let Some(tpc) = tpc {
            let want = 2 * usize::from(tpc);
            let n = list.value.len();
            if n != 0 && n != want {
                let empty = if mode == Mode::BgpHa { "use the bgp-ha defaults" } else { "let AWS choose" };
                self.error(
                    F,
                    list.span.clone(),
                    format!("has {n} entries; {mode} with tunnels_per_connection = {tpc} uses {want} tunnels, one /30 each"),
                    format!("list exactly {want} /30s in tunnel order, or leave the list empty to {empty}"),
                );
                ok = false;
            }
        }
        let mut out: Vec<Ipv4Net> = Vec::new();
        let mut seen = HashSet::new();
        for (i, v) in list.value.iter().enumerate() {
            let item = format!("{F}[{i}]");
            match self.checked(&item, v, |s| check_inside_cidr(s, mode)) {
                Some(net) if !seen.insert(net) => {
                    self.error(
                        item,
                        v.span.clone(),
                        format!("{net} is listed twice; each tunnel needs its own inside CIDR (unique per VGW)"),
                        format!("use a different /30, e.g. one of {BGP_INSIDE_DEFAULTS_TEXT}"),
                    );
                    ok = false;
                }
                Some(net) => out.push(net),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn endpoint(&mut self, t: &str, table: &DeTable<'_>) -> Option<Option<String>> {
        match self.string(t, table, "endpoint", r#""https://...""#) {
            None if table.get("endpoint").is_some() => None,
            None => Some(None),
            Some(v) => self.checked(&path_of(t, "endpoint"), &v, |s| parse_endpoint(s)),
        }
    }
}

/// What the [azure] walk produced; `None` fields had an error reported.
#[derive(Debug)]
struct AzurePart {
    backend: Option<Backend>,
    subscription_id: Option<String>,
    resource_group: Option<String>,
    location: Option<String>,
    vnet: Option<String>,
    address_space: Option<Vec<At<Ipv4Net>>>,
    gateway_subnet: Option<Ipv4Net>,
    gateway_sku: Option<GatewaySku>,
    gateway_generation: Option<Generation>,
    asn: Option<u32>,
    endpoint: Option<Option<String>>,
}

/// What the [aws] walk produced; `None` fields had an error reported.
#[derive(Debug)]
struct AwsPart {
    backend: Option<Backend>,
    region: Option<String>,
    vpc_id: Option<String>,
    cidrs: Option<Vec<At<Ipv4Net>>>,
    route_tables: Option<Vec<String>>,
    amazon_asn: Option<u32>,
    amazon_asn_span: Option<Range<usize>>,
    tunnel_inside_cidrs: Option<Vec<Ipv4Net>>,
    endpoint: Option<Option<String>>,
}

// ---------------------------------------------------------------------------------------
// Field rules (pure, so they are easy to test)

/// The known word closest to `word`, if any is close enough to be a likely typo.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(&w, &c.to_ascii_lowercase()), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// "did you mean …? " naming every candidate as close as the closest one (at most
/// three: "japanest" is one letter from both "japaneast" and "japanwest"), or "".
fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    let w = word.to_ascii_lowercase();
    let scored: Vec<(f64, &str)> =
        candidates.iter().map(|c| (strsim::jaro_winkler(&w, &c.to_ascii_lowercase()), *c)).filter(|(score, _)| *score >= 0.8).collect();
    let Some(best) = scored.iter().map(|(s, _)| *s).max_by(f64::total_cmp) else { return String::new() };
    let tied: Vec<String> = scored.iter().filter(|(s, _)| best - *s < 1e-9).take(3).map(|(_, c)| format!("{c:?}")).collect();
    format!("did you mean {}? ", tied.join(" or "))
}

fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["key", "secret", "password", "token", "credential"].iter().any(|s| k.contains(s))
}

fn check_name(s: &str) -> Result<(), Problem> {
    let why = "it prefixes Azure resource names such as <name>-lng-1-1 and is the vpnbridge:deployment tag value";
    let fix = || {
        let suggestion = suggest_name(s);
        format!("use 1-40 lowercase letters, digits and '-', starting with a letter, e.g. name = {suggestion:?}")
    };
    let len = s.chars().count();
    if len == 0 {
        return Err(problem(format!("is empty; {why}"), fix()));
    }
    if len > 40 {
        return Err(problem(format!("is {len} characters long; at most 40 are allowed ({why})"), fix()));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(problem(format!("contains {c:?}; only lowercase letters, digits and '-' are allowed ({why})"), fix()));
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(problem(format!("must start with a lowercase letter ({why})"), fix()));
    }
    if s.ends_with('-') {
        return Err(problem(format!("must not end with '-' ({why})"), fix()));
    }
    Ok(())
}

/// A valid name close to `s`.
fn suggest_name(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' };
        if out.is_empty() && !c.is_ascii_lowercase() {
            continue;
        }
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    out.truncate(40);
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() { "azure-aws".to_owned() } else { out }
}

fn parse_mode(s: &str) -> Result<Mode, Problem> {
    match s {
        "static-ha" => Ok(Mode::StaticHa),
        "bgp-ha" => Ok(Mode::BgpHa),
        _ => {
            let hint = closest(s, &["static-ha", "bgp-ha"]).map(|c| format!("did you mean {c:?}? ")).unwrap_or_default();
            Err(problem(
                format!("{s:?} is not a mode"),
                format!(r#"{hint}use "static-ha" (static routes, 2 or 4 tunnels) or "bgp-ha" (BGP, 4 tunnels)"#),
            ))
        }
    }
}

fn check_tunnels_per_connection(n: i128, mode: Mode, mode_known: bool) -> Result<u8, Problem> {
    match (mode, n) {
        (Mode::StaticHa, 1 | 2) => Ok(n as u8),
        (Mode::BgpHa, 2) => Ok(2),
        (Mode::BgpHa, _) if mode_known => Err(problem(
            format!("is {n}; bgp-ha uses both tunnels of both AWS VPN connections"),
            "set tunnels_per_connection = 2 or remove it (2 is the bgp-ha default)",
        )),
        _ => Err(problem(
            format!("is {n}; an AWS VPN connection has exactly two tunnels, so 1 or 2 of them can be used (2 or 4 tunnels in all)"),
            "set tunnels_per_connection = 1 (2 tunnels) or 2 (4 tunnels)",
        )),
    }
}

fn valid_env_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The rule a key breaks, without a word of the key itself.
fn psk_rule(e: &PskError) -> String {
    match e {
        PskError::Length(n) => format!("is {n} characters long; AWS accepts 8 to 64"),
        PskError::Character(_) => "contains a character other than letters, digits, '.' and '_'".to_owned(),
        PskError::LeadingZero => "starts with '0', which AWS refuses".to_owned(),
    }
}

fn parse_psk(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<PskSource, Problem> {
    const RULES: &str = "8-64 letters, digits, '.' or '_', not starting with '0'";
    match s {
        "generate" => return Ok(PskSource::Generate),
        "aws" => return Ok(PskSource::Aws),
        _ => {}
    }
    if let Some(var) = s.strip_prefix("env:") {
        // What follows `env:` may be a pasted key rather than a variable's name: it is
        // printed only when it looks like a conventional name (upper case, digits, '_').
        let conventional = !var.is_empty() && var.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !valid_env_name(var) {
            return Err(problem(
                "the value after env: is not an environment variable name (it is not shown: it may be a pasted key)",
                "write psk = \"env:NAME\" with NAME made of letters, digits and '_', e.g. \"env:VPNBRIDGE_PSK\"; if that was a real key, consider it exposed and rotate it",
            ));
        }
        let Some(value) = env(var) else {
            if !conventional {
                return Err(problem(
                    "the environment variable named after env: is not set (its name is not shown: it does not look like a variable name and may be a pasted key)",
                    format!(
                        "export the key ({RULES}) in a variable such as VPNBRIDGE_PSK and write psk = \"env:VPNBRIDGE_PSK\"; if that was a real key, consider it exposed and rotate it"
                    ),
                ));
            }
            return Err(problem(
                format!("environment variable {var} is not set"),
                format!("export {var}=<key> ({RULES}) before running vpnbridge, or use psk = \"generate\""),
            ));
        };
        return match Psk::new(&value) {
            Ok(key) => Ok(PskSource::Env { var: var.to_owned(), key }),
            Err(e) => Err(problem(
                format!("the key in environment variable {var} {}", psk_rule(&e)),
                format!("set {var} to {RULES}, or use psk = \"generate\""),
            )),
        };
    }
    // Not a key source. Never echo the value: it may be a key pasted in by mistake.
    let hint = if s.eq_ignore_ascii_case("generate") {
        "did you mean \"generate\"? "
    } else if s.eq_ignore_ascii_case("aws") {
        "did you mean \"aws\"? "
    } else {
        ""
    };
    Err(problem(
        "is not a key source: pre-shared keys never live in this file (the value is not shown)",
        format!(
            "{hint}use psk = \"generate\" (vpnbridge makes the keys), \"aws\" (AWS makes them) or \"env:NAME\" (export the key in NAME); if this was a real key, consider it exposed and rotate it"
        ),
    ))
}

fn parse_backend(s: &str, real: &str, other_side: &str) -> Result<Backend, Problem> {
    if s == "sim" {
        Ok(Backend::Sim)
    } else if s == real {
        Ok(Backend::Real)
    } else {
        let hint = if s == other_side {
            format!("\"{other_side}\" is the [{other_side}] table's backend; ")
        } else {
            closest(s, &["sim", real]).map(|c| format!("did you mean {c:?}? ")).unwrap_or_default()
        };
        Err(problem(
            format!("{s:?} is not a backend"),
            format!("{hint}use \"sim\" (the embedded simulator) or \"{real}\" (the real cloud)"),
        ))
    }
}

fn parse_guid(s: &str, from_env: &str) -> Result<String, Problem> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lens == [8, 4, 4, 4, 12] && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit())) {
        return Ok(s.to_ascii_lowercase());
    }
    let what = if from_env.is_empty() { format!("{s:?}") } else { format!("{from_env} ({s:?})") };
    Err(problem(
        format!("{what} is not a subscription GUID (8-4-4-4-12 hexadecimal digits)"),
        "copy it from `az account show --query id -o tsv`, e.g. \"00000000-0000-0000-0000-000000000000\"",
    ))
}

fn check_resource_group(s: &str) -> Result<(), Problem> {
    let fix = r#"use 1-90 letters, digits, '_', '(', ')', '-' or '.', not ending with '.', e.g. "rg-vpn""#;
    let len = s.chars().count();
    if !(1..=90).contains(&len) {
        return Err(problem(format!("is {len} characters long; Azure resource group names have 1 to 90"), fix));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '(' | ')' | '-' | '.'))) {
        return Err(problem(format!("contains {c:?}, which Azure refuses in a resource group name"), fix));
    }
    if s.ends_with('.') {
        return Err(problem("ends with '.', which Azure refuses in a resource group name", fix));
    }
    Ok(())
}

fn check_vnet(s: &str) -> Result<(), Problem> {
    let fix = r#"use 2-64 letters, digits, '_', '-' or '.', starting with a letter or digit and ending with a letter, digit or '_', e.g. "vnet-hub""#;
    let len = s.chars().count();
    if !(2..=64).contains(&len) {
        return Err(problem(format!("is {len} characters long; Azure virtual network names have 2 to 64"), fix));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        return Err(problem(format!("contains {c:?}, which Azure refuses in a virtual network name"), fix));
    }
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(problem("must start with a letter or digit", fix));
    }
    if !s.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        return Err(problem("must end with a letter, digit or '_'", fix));
    }
    Ok(())
}

fn check_location(s: &str) -> Result<(), Problem> {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Ok(());
    }
    let normalised: String = s.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect();
    let fix = if normalised.is_empty() || normalised == s {
        "use the location's short name, as `az account list-locations -o table` prints it, e.g. \"japaneast\"".to_owned()
    } else {
        format!("did you mean {normalised:?}? Azure locations are lowercase letters and digits (`az account list-locations -o table`)")
    };
    Err(problem(format!("{s:?} is not an Azure location name"), fix))
}

/// Most prefixes `azure.address_space` may list (AWS's static routes per VPN connection).
const MAX_AZURE_PREFIXES: usize = 100;

/// Most prefixes `aws.cidrs` may list (AWS's IPv4 CIDR blocks per VPC).
const MAX_VPC_CIDRS: usize = 50;

/// Docker's default bridge network, which AWS advises against as a VPC CIDR.
const DOCKER_BRIDGE: Ipv4Net = Ipv4Net::new_assert(std::net::Ipv4Addr::new(172, 17, 0, 0), 16);

/// Address blocks that can never be routed across a VPN (RFC 6890 special purpose).
const UNROUTABLE: &[(Ipv4Net, &str)] = &[
    (Ipv4Net::new_assert(std::net::Ipv4Addr::new(0, 0, 0, 0), 8), "\"this network\" (0.0.0.0/8)"),
    (Ipv4Net::new_assert(std::net::Ipv4Addr::new(127, 0, 0, 0), 8), "loopback (127.0.0.0/8)"),
    (Ipv4Net::new_assert(std::net::Ipv4Addr::new(169, 254, 0, 0), 16), "link-local (169.254.0.0/16, also the tunnels' inside addresses)"),
    (Ipv4Net::new_assert(std::net::Ipv4Addr::new(224, 0, 0, 0), 4), "multicast (224.0.0.0/4)"),
    (Ipv4Net::new_assert(std::net::Ipv4Addr::new(240, 0, 0, 0), 4), "reserved (240.0.0.0/4)"),
];

/// A prefix that a VPN can carry: none of [`UNROUTABLE`].
fn routable(net: Ipv4Net) -> Result<Ipv4Net, Problem> {
    match UNROUTABLE.iter().find(|(block, _)| overlaps(IpNet::V4(*block), IpNet::V4(net))) {
        Some((_, what)) => Err(problem(
            format!("{net} is in the {what} block, which cannot be routed over a VPN"),
            "use the network's private addresses, e.g. \"10.1.0.0/16\" (RFC 1918: 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)",
        )),
        None => Ok(net),
    }
}

fn parse_v4_prefix(s: &str) -> Result<Ipv4Net, Problem> {
    match s.parse::<IpNet>() {
        Ok(IpNet::V4(net)) if net.trunc() == net => Ok(net),
        Ok(IpNet::V4(net)) => Err(problem(
            format!("{s} has host bits set (the prefix starts at {})", net.trunc()),
            format!("did you mean \"{}\"?", net.trunc()),
        )),
        Ok(IpNet::V6(_)) => {
            Err(problem(format!("{s} is IPv6; only IPv4 prefixes are supported"), "use the IPv4 prefixes, e.g. \"10.1.0.0/16\""))
        }
        Err(_) => match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => {
                Err(problem(format!("{s} is an address, not a prefix"), format!("add the prefix length, e.g. \"{s}/16\"")))
            }
            Ok(IpAddr::V6(_)) => {
                Err(problem(format!("{s} is IPv6; only IPv4 prefixes are supported"), "use the IPv4 prefixes, e.g. \"10.1.0.0/16\""))
            }
            Err(_) => Err(problem(format!("{s:?} is not an IPv4 prefix"), "write it as address/length, e.g. \"10.1.0.0/16\"")),
        },
    }
}

/// The last subnet of length `len` inside `net` (`net` must be at most that long).
fn last_subnet(net: Ipv4Net, len: u8) -> Ipv4Net {
    let size = 1u32 << (32 - u32::from(len));
    let start = u32::from(net.broadcast()).wrapping_sub(size - 1);
    Ipv4Net::new(Ipv4Addr::from(start), len).expect("len <= 32").trunc()
}

/// The address ranges covered by `nets`, merged and ordered: `(first, last)` pairs.
fn merged(nets: impl Iterator<Item = Ipv4Net>) -> Vec<(u32, u32)> {
    let mut ranges: Vec<(u32, u32)> = nets.map(|n| (u32::from(n.network()), u32::from(n.broadcast()))).collect();
    ranges.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match out.last_mut() {
            Some(prev) if first <= prev.1.saturating_add(1) => prev.1 = prev.1.max(last),
            _ => out.push((first, last)),
        }
    }
    out
}

/// The first private prefix of length `len` (in 10/8, then 172.16/12, then
/// 192.168/16) that overlaps none of the merged ranges `taken`. Each step jumps past
/// a taken range, so this is linear in `taken` at worst.
fn free_prefix(len: u8, taken: &[(u32, u32)]) -> Option<Ipv4Net> {
    for pool in ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"] {
        let pool: Ipv4Net = pool.parse().expect("literal");
        if len < pool.prefix_len() || len > 32 {
            continue;
        }
        let size = 1u64 << (32 - u32::from(len));
        let end = u64::from(u32::from(pool.broadcast()));
        let mut candidate = u64::from(u32::from(pool.network()));
        while candidate + size - 1 <= end {
            let last = candidate + size - 1;
            // The first taken range that ends at or after the candidate's start.
            let i = taken.partition_point(|r| u64::from(r.1) < candidate);
            match taken.get(i) {
                Some(r) if u64::from(r.0) <= last => {
                    // Jump to the first aligned start after the range.
                    candidate = (u64::from(r.1) + 1).div_ceil(size) * size;
                }
                _ => {
                    let start = u32::try_from(candidate).expect("inside an IPv4 pool");
                    return Ipv4Net::new(Ipv4Addr::from(start), len).ok();
                }
            }
        }
    }
    None
}

/// Non-overlapping prefixes ordered by address, for overlap queries in O(log n).
#[derive(Debug, Default)]
struct DisjointPrefixes {
    by_start: BTreeMap<u32, Ipv4Net>,
}

impl DisjointPrefixes {
    /// From prefixes known not to overlap (a validated list).
    fn new(nets: impl Iterator<Item = Ipv4Net>) -> Self {
        let mut s = Self::default();
        for n in nets {
            s.insert(n);
        }
        s
    }

    /// Adds a prefix that overlaps none already held.
    fn insert(&mut self, net: Ipv4Net) {
        self.by_start.insert(u32::from(net.network()), net);
    }

    /// The held prefixes that share an address with `net`, lowest first: the one that
    /// contains it (at most one can), or those it contains.
    fn overlapping(&self, net: Ipv4Net) -> impl Iterator<Item = Ipv4Net> + '_ {
        let (first, last) = (u32::from(net.network()), u32::from(net.broadcast()));
        let container = self.by_start.range(..=first).next_back().map(|(_, p)| *p).filter(|p| u32::from(p.broadcast()) >= first);
        let inside = self.by_start.range(first..=last).map(|(_, p)| *p).filter(move |p| Some(*p) != container);
        container.into_iter().chain(inside)
    }
}

fn parse_sku(s: &str) -> Result<GatewaySku, Problem> {
    if let Some(sku) = GatewaySku::parse(s) {
        return Ok(sku);
    }
    let all: Vec<&str> = GatewaySku::ALL.iter().map(|k| k.name()).collect();
    let list = all.join(", ");
    let lower = s.to_ascii_lowercase();
    if lower == "basic" {
        return Err(problem(
            "Basic supports neither active-active nor IKEv2, which this VPN needs",
            "use gateway_sku = \"VpnGw1AZ\" (with Generation1) or a larger AZ SKU",
        ));
    }
    if let Some(sku) = GatewaySku::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(s)) {
        return Err(problem(format!("{s:?} is not spelled as Azure expects"), format!("did you mean \"{sku}\"?")));
    }
    if let Some(sku) = GatewaySku::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(&format!("{s}AZ"))) {
        let generation = if sku.supports(Generation::Generation1) { "Generation1" } else { "Generation2" };
        return Err(problem(
            format!("{s} can no longer be created; Azure only creates the zone-redundant SKUs VpnGw1AZ..VpnGw5AZ now"),
            format!("use its AZ equivalent: gateway_sku = \"{sku}\" (with gateway_generation = \"{generation}\")"),
        ));
    }
    if lower.starts_with("ergw") {
        return Err(problem(format!("{s} is an ExpressRoute gateway SKU, not a VPN gateway SKU"), format!("use one of {list}")));
    }
    let hint = closest(s, &all).map(|c| format!("did you mean \"{c}\"? ")).unwrap_or_default();
    Err(problem(format!("{s:?} is not a VPN gateway SKU"), format!("{hint}use one of {list}")))
}

fn parse_generation(s: &str) -> Result<Generation, Problem> {
    match s {
        "Generation1" => Ok(Generation::Generation1),
        "Generation2" => Ok(Generation::Generation2),
        _ => {
            let lower = s.to_ascii_lowercase();
            let hint = if lower.ends_with('1') {
                "did you mean \"Generation1\"? ".to_owned()
            } else if lower.ends_with('2') {
                "did you mean \"Generation2\"? ".to_owned()
            } else {
                closest(s, &["Generation1", "Generation2"]).map(|c| format!("did you mean {c:?}? ")).unwrap_or_default()
            };
            Err(problem(
                format!("{s:?} is not a gateway generation"),
                format!("{hint}use \"Generation1\" (VpnGw1AZ-3AZ) or \"Generation2\" (VpnGw2AZ-5AZ)"),
            ))
        }
    }
}

fn check_sku_generation(sku: GatewaySku, generation: Generation) -> Result<(), Problem> {
    if sku.supports(generation) {
        return Ok(());
    }
    let (other, alternative) = match generation {
        Generation::Generation1 => ("Generation2", GatewaySku::VpnGw3AZ),
        Generation::Generation2 => ("Generation1", GatewaySku::VpnGw2AZ),
    };
    Err(problem(
        format!(
            "{sku} cannot be created as {generation}; Azure refuses the pair with VirtualNetworkGatewaySkuCannotBeCreatedForSpecifiedVmGeneration"
        ),
        format!(
            "set gateway_generation = \"{other}\" (or gateway_sku = \"{alternative}\" with {generation}); valid pairs: {}",
            GatewaySku::valid_pairs()
        ),
    ))
}

fn check_vpn_type(s: &str) -> Result<(), Problem> {
    match s {
        "RouteBased" => Ok(()),
        "PolicyBased" => Err(problem(
            "PolicyBased gateways are Basic-only: IKEv1, a single tunnel, no active-active",
            "set vpn_type = \"RouteBased\" (or remove the line; it is the default)",
        )),
        _ => {
            let hint = closest(s, &["RouteBased"]).map(|c| format!("did you mean {c:?}? ")).unwrap_or_default();
            Err(problem(format!("{s:?} is not a VPN type"), format!("{hint}use \"RouteBased\" (the default)")))
        }
    }
}

fn check_azure_asn(n: i128, mode: Mode) -> Result<u32, Problem> {
    const FIX: &str = "use 65000 (the default) or another private ASN (64512-65514, 4200000000-4294967294) that Azure does not reserve";
    if !(1..=4_294_967_294).contains(&n) {
        return Err(problem(format!("{n} is not a valid ASN; ASNs run from 1 to 4294967294"), FIX));
    }
    let asn = n as u32;
    if asn == 65515 && mode == Mode::BgpHa {
        return Err(problem(
            "65515 is Azure's default gateway ASN and is reserved: Azure refuses it as a custom ASN, and bgp-ha uses this ASN for the AWS customer gateways too",
            "set asn = 65000 (the default) or another private ASN that is not reserved",
        ));
    }
    if azure_reserved_asn(asn) {
        return Err(problem(
            format!("{asn} is reserved by Azure (8074, 8075, 12076, 23456, 64496-64511, 65515, 65517-65520, 65535-65551)"),
            FIX,
        ));
    }
    Ok(asn)
}

fn check_amazon_asn(n: i128, mode: Mode) -> Result<u32, Problem> {
    const FIX: &str = "use 64512 (the default) or a private ASN in 64512-65534 or 4200000000-4294967294";
    let Some(asn) = u32::try_from(n).ok().filter(|a| valid_amazon_asn(*a)) else {
        return Err(problem(
            format!("{n} is not an ASN AWS accepts for a virtual private gateway (64512-65534 or 4200000000-4294967294)"),
            FIX,
        ));
    };
    if mode == Mode::BgpHa && azure_reserved_asn(asn) {
        return Err(problem(
            format!("{asn} is reserved by Azure, and in bgp-ha it is the peer ASN of Azure's local network gateways"),
            "use 64512 (the default) or another ASN in 64512-65514 that Azure does not reserve",
        ));
    }
    Ok(asn)
}

fn check_region(s: &str) -> Result<(), Problem> {
    let parts: Vec<&str> = s.split('-').collect();
    let ok = parts.len() >= 3
        && (2..=4).contains(&parts[0].len())
        && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit());
    if ok {
        return Ok(());
    }
    let last = parts.last().copied().unwrap_or("");
    let fix = if parts.len() >= 3 && last.starts_with(|c: char| c.is_ascii_digit()) && last.ends_with(|c: char| c.is_ascii_lowercase()) {
        let region = s.trim_end_matches(|c: char| c.is_ascii_lowercase());
        format!("that is an availability zone; use its region: \"{region}\"")
    } else if s.chars().any(|c| c.is_ascii_uppercase()) && check_region(&s.to_ascii_lowercase()).is_ok() {
        format!("did you mean \"{}\"?", s.to_ascii_lowercase())
    } else {
        "use a region code such as \"ap-northeast-1\", \"us-east-1\" or \"us-gov-west-1\"".to_owned()
    };
    Err(problem(format!("{s:?} is not an AWS region code"), fix))
}

// ---------------------------------------------------------------------------------------
// Where the two sides are: the clouds' known locations and regions

/// A coarse area of the world. Both sides in one area keep the tunnels short; the
/// config is only warned about when they differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    NorthAmerica,
    SouthAmerica,
    Europe,
    MiddleEast,
    Africa,
    Asia,
    Oceania,
}

impl Area {
    fn name(self) -> &'static str {
        match self {
            Area::NorthAmerica => "North America",
            Area::SouthAmerica => "South America",
            Area::Europe => "Europe",
            Area::MiddleEast => "the Middle East",
            Area::Africa => "Africa",
            Area::Asia => "Asia",
            Area::Oceania => "Oceania",
        }
    }

    /// A well-known AWS region and Azure location in the area, for suggestions.
    fn examples(self) -> (&'static str, &'static str) {
        match self {
            Area::NorthAmerica => ("us-east-1", "eastus2"),
            Area::SouthAmerica => ("sa-east-1", "brazilsouth"),
            Area::Europe => ("eu-west-1", "westeurope"),
            Area::MiddleEast => ("me-central-1", "uaenorth"),
            Area::Africa => ("af-south-1", "southafricanorth"),
            Area::Asia => ("ap-northeast-1", "japaneast"),
            Area::Oceania => ("ap-southeast-2", "australiaeast"),
        }
    }
}

use Area::{Africa, Asia, Europe, MiddleEast, NorthAmerica, Oceania, SouthAmerica};

/// Azure's public-cloud regions, as `az account list-locations --query "[].name"`
/// names them (physical regions only: no logical "asia", "europe", "global", no EUAP
/// canaries). Source: Azure's region list (azure.microsoft.com/explore/global-
/// infrastructure/geographies) and `az account list-locations`, 2025, including
/// regions open only to some customers (jioindia*, uaecentral, southafricawest,
/// australiacentral2, taiwan*) and recently opened ones. Azure adds regions: a new
/// one missing here is a one-line change.
const AZURE_PUBLIC_LOCATIONS: &[(&str, Area)] = &[
    ("eastus", NorthAmerica),
    ("eastus2", NorthAmerica),
    ("southcentralus", NorthAmerica),
    ("westus", NorthAmerica),
    ("westus2", NorthAmerica),
    ("westus3", NorthAmerica),
    ("centralus", NorthAmerica),
    ("northcentralus", NorthAmerica),
    ("westcentralus", NorthAmerica),
    ("canadacentral", NorthAmerica),
    ("canadaeast", NorthAmerica),
    ("mexicocentral", NorthAmerica),
    ("brazilsouth", SouthAmerica),
    ("brazilsoutheast", SouthAmerica),
    ("chilecentral", SouthAmerica),
    ("northeurope", Europe),
    ("westeurope", Europe),
    ("uksouth", Europe),
    ("ukwest", Europe),
    ("francecentral", Europe),
    ("francesouth", Europe),
    ("germanywestcentral", Europe),
    ("germanynorth", Europe),
    ("switzerlandnorth", Europe),
    ("switzerlandwest", Europe),
    ("norwayeast", Europe),
    ("norwaywest", Europe),
    ("swedencentral", Europe),
    ("swedensouth", Europe),
    ("polandcentral", Europe),
    ("italynorth", Europe),
    ("spaincentral", Europe),
    ("austriaeast", Europe),
    ("belgiumcentral", Europe),
    ("denmarkeast", Europe),
    ("uaenorth", MiddleEast),
    ("uaecentral", MiddleEast),
    ("qatarcentral", MiddleEast),
    ("israelcentral", MiddleEast),
    ("southafricanorth", Africa),
    ("southafricawest", Africa),
    ("eastasia", Asia),
    ("southeastasia", Asia),
    ("japaneast", Asia),
    ("japanwest", Asia),
    ("koreacentral", Asia),
    ("koreasouth", Asia),
    ("centralindia", Asia),
    ("southindia", Asia),
    ("westindia", Asia),
    ("jioindiacentral", Asia),
    ("jioindiawest", Asia),
    ("indonesiacentral", Asia),
    ("malaysiawest", Asia),
    ("taiwannorth", Asia),
    ("taiwannorthwest", Asia),
    ("australiaeast", Oceania),
    ("australiasoutheast", Oceania),
    ("australiacentral", Oceania),
    ("australiacentral2", Oceania),
    ("newzealandnorth", Oceania),
];

/// Azure Government's regions (ARM endpoint `https://management.usgovcloudapi.net`),
/// as `az account list-locations` names them there.
const AZURE_GOVERNMENT_LOCATIONS: &[(&str, Area)] = &[
    ("usgovvirginia", NorthAmerica),
    ("usgovarizona", NorthAmerica),
    ("usgovtexas", NorthAmerica),
    ("usdodcentral", NorthAmerica),
    ("usdodeast", NorthAmerica),
];

/// Azure China's regions, operated by 21Vianet (ARM endpoint
/// `https://management.chinacloudapi.cn`).
const AZURE_CHINA_LOCATIONS: &[(&str, Area)] =
    &[("chinaeast", Asia), ("chinaeast2", Asia), ("chinaeast3", Asia), ("chinanorth", Asia), ("chinanorth2", Asia), ("chinanorth3", Asia)];

const AZURE_GOVERNMENT_ENDPOINT: &str = "https://management.usgovcloudapi.net";
const AZURE_CHINA_ENDPOINT: &str = "https://management.chinacloudapi.cn";

/// AWS's commercial regions (partition `aws`), as `aws ec2 describe-regions
/// --all-regions` names them. Source: the partition table the AWS SDKs ship
/// (aws-sdk-ec2 1.274's endpoint resolver, the SDKs' partitions.json), 2025.
const AWS_COMMERCIAL_REGIONS: &[(&str, Area)] = &[
    ("us-east-1", NorthAmerica),
    ("us-east-2", NorthAmerica),
    ("us-west-1", NorthAmerica),
    ("us-west-2", NorthAmerica),
    ("ca-central-1", NorthAmerica),
    ("ca-west-1", NorthAmerica),
    ("mx-central-1", NorthAmerica),
    ("sa-east-1", SouthAmerica),
    ("eu-central-1", Europe),
    ("eu-central-2", Europe),
    ("eu-north-1", Europe),
    ("eu-south-1", Europe),
    ("eu-south-2", Europe),
    ("eu-west-1", Europe),
    ("eu-west-2", Europe),
    ("eu-west-3", Europe),
    ("il-central-1", MiddleEast),
    ("me-central-1", MiddleEast),
    ("me-south-1", MiddleEast),
    ("af-south-1", Africa),
    ("ap-east-1", Asia),
    ("ap-east-2", Asia),
    ("ap-northeast-1", Asia),
    ("ap-northeast-2", Asia),
    ("ap-northeast-3", Asia),
    ("ap-south-1", Asia),
    ("ap-south-2", Asia),
    ("ap-southeast-1", Asia),
    ("ap-southeast-3", Asia),
    ("ap-southeast-5", Asia),
    ("ap-southeast-7", Asia),
    ("ap-southeast-2", Oceania),
    ("ap-southeast-4", Oceania),
    ("ap-southeast-6", Oceania),
];

/// AWS's other partitions, from the same table: GovCloud (`aws-us-gov`), China
/// (`aws-cn`), the European Sovereign Cloud (`aws-eusc`) and the isolated ISO
/// partitions. They are accepted like commercial regions: each needs its own
/// partition's account and credentials (the SDK finds the endpoint from the region),
/// and whether a Site-to-Site VPN to Azure may be built there is the partition's rule.
const AWS_OTHER_PARTITION_REGIONS: &[(&str, Area)] = &[
    ("us-gov-east-1", NorthAmerica),
    ("us-gov-west-1", NorthAmerica),
    ("cn-north-1", Asia),
    ("cn-northwest-1", Asia),
    ("eusc-de-east-1", Europe),
    ("us-iso-east-1", NorthAmerica),
    ("us-iso-west-1", NorthAmerica),
    ("us-isob-east-1", NorthAmerica),
    ("us-isob-west-1", NorthAmerica),
    ("us-isof-east-1", NorthAmerica),
    ("us-isof-south-1", NorthAmerica),
    ("eu-isoe-west-1", Europe),
];

/// Which Azure cloud `azure.endpoint` points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AzureCloud {
    /// No endpoint, or `management.azure.com`.
    Public,
    /// `*.usgovcloudapi.net`.
    Government,
    /// `*.chinacloudapi.cn`.
    China,
    /// Anything else: a local fake, Azure Stack Hub, a proxy.
    Other,
}

impl AzureCloud {
    fn of(endpoint: Option<&str>) -> Self {
        let Some(url) = endpoint.filter(|e| !e.is_empty()) else { return AzureCloud::Public };
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let host = rest.split(['/', ':', '?']).next().unwrap_or("").to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        if host == "management.azure.com" {
            AzureCloud::Public
        } else if host == "usgovcloudapi.net" || host.ends_with(".usgovcloudapi.net") {
            AzureCloud::Government
        } else if host == "chinacloudapi.cn" || host.ends_with(".chinacloudapi.cn") {
            AzureCloud::China
        } else {
            AzureCloud::Other
        }
    }

    fn locations(self) -> &'static [(&'static str, Area)] {
        match self {
            AzureCloud::Public | AzureCloud::Other => AZURE_PUBLIC_LOCATIONS,
            AzureCloud::Government => AZURE_GOVERNMENT_LOCATIONS,
            AzureCloud::China => AZURE_CHINA_LOCATIONS,
        }
    }

    fn name(self) -> &'static str {
        match self {
            AzureCloud::Public | AzureCloud::Other => "Azure's public cloud",
            AzureCloud::Government => "Azure Government",
            AzureCloud::China => "Azure China",
        }
    }
}

fn names(list: &'static [(&'static str, Area)]) -> impl Iterator<Item = &'static str> {
    list.iter().map(|(n, _)| *n)
}

fn area_in(list: &[(&str, Area)], name: &str) -> Option<Area> {
    list.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
}

/// The area of an Azure location of any cloud.
fn azure_area(location: &str) -> Option<Area> {
    [AZURE_PUBLIC_LOCATIONS, AZURE_GOVERNMENT_LOCATIONS, AZURE_CHINA_LOCATIONS].into_iter().find_map(|l| area_in(l, location))
}

/// The area of an AWS region of any partition.
fn aws_area(region: &str) -> Option<Area> {
    area_in(AWS_COMMERCIAL_REGIONS, region).or_else(|| area_in(AWS_OTHER_PARTITION_REGIONS, region))
}

/// A location known to the cloud `azure.endpoint` names. `Ok(Some(warning))` for a
/// location no known cloud has, behind an endpoint of another kind (Azure Stack Hub
/// and local fakes may have their own locations).
fn check_azure_location(s: &str, cloud: AzureCloud) -> Result<Option<String>, Problem> {
    let own = cloud.locations();
    if area_in(own, s).is_some() || (cloud == AzureCloud::Other && azure_area(s).is_some()) {
        return Ok(None);
    }
    let sovereign = [(AzureCloud::Government, AZURE_GOVERNMENT_ENDPOINT), (AzureCloud::China, AZURE_CHINA_ENDPOINT)];
    if cloud == AzureCloud::Public
        && let Some((other, endpoint)) = sovereign.iter().find(|(c, _)| area_in(c.locations(), s).is_some())
    {
        return Err(problem(
            format!("{s:?} is an {} location, which the public cloud's endpoint does not serve", other.name()),
            format!("set [azure] endpoint = \"{endpoint}\" to use {}, or use a public location such as \"japaneast\"", other.name()),
        ));
    }
    let candidates: Vec<&str> = if cloud == AzureCloud::Other {
        [AZURE_PUBLIC_LOCATIONS, AZURE_GOVERNMENT_LOCATIONS, AZURE_CHINA_LOCATIONS].into_iter().flat_map(names).collect()
    } else {
        names(own).collect()
    };
    let hint = did_you_mean(s, &candidates);
    if cloud == AzureCloud::Other {
        return Ok(Some(format!(
            "{s:?} is not a location of Azure's public, Government or China clouds; {hint}it is accepted because azure.endpoint names another ARM endpoint, which may have locations of its own"
        )));
    }
    let in_public = cloud != AzureCloud::Public && area_in(AZURE_PUBLIC_LOCATIONS, s).is_some();
    let what = if in_public {
        format!("{s:?} is a public-cloud location, not one of {}'s (azure.endpoint names {})", cloud.name(), cloud.name())
    } else {
        format!("{s:?} is not an Azure location of {}", cloud.name())
    };
    let examples: Vec<&str> = names(own).take(3).collect();
    Err(problem(
        what,
        format!(
            "{hint}use a location as `az account list-locations --query \"[].name\" -o tsv` prints it, e.g. {}",
            examples.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>().join(", ")
        ),
    ))
}

/// A region of one of AWS's partitions.
fn check_aws_region(s: &str) -> Result<(), Problem> {
    if aws_area(s).is_some() {
        return Ok(());
    }
    let all: Vec<&str> = names(AWS_COMMERCIAL_REGIONS).chain(names(AWS_OTHER_PARTITION_REGIONS)).collect();
    let hint = did_you_mean(s, &all);
    Err(problem(
        format!("{s:?} is not an AWS region"),
        format!(
            "{hint}use a region code as `aws ec2 describe-regions --all-regions --query \"Regions[].RegionName\"` prints it, e.g. \"ap-northeast-1\", \"eu-west-1\", \"us-east-1\" (GovCloud: \"us-gov-west-1\", China: \"cn-north-1\")"
        ),
    ))
}

/// A warning when the two sides are in different areas of the world.
fn distance_warning(location: &str, region: &str) -> Option<String> {
    let (az, aws) = (azure_area(location)?, aws_area(region)?);
    if az == aws {
        return None;
    }
    let (aws_example, _) = az.examples();
    let (_, azure_example) = aws.examples();
    Some(format!(
        "azure.location {location} is in {} and aws.region {region} in {}: the tunnels will cross continents (more latency, and inter-region data transfer on both bills); if you can, put both sides in one area, e.g. aws.region = \"{aws_example}\" or azure.location = \"{azure_example}\"",
        az.name(),
        aws.name()
    ))
}

/// An Azure VM: a name (1-64 letters, digits, '-', '_', '.'; in `azure.resource_group`)
/// or a full `/subscriptions/…/resourceGroups/…/providers/Microsoft.Compute/virtualMachines/…` id.
fn parse_vm_ref(s: &str, subscription: &str, resource_group: &str) -> Result<AzureVmRef, Problem> {
    let name_ok = |n: &str| {
        (1..=64).contains(&n.len())
            && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && n.starts_with(|c: char| c.is_ascii_alphanumeric())
            && !n.ends_with(['.', '-'])
    };
    if s.starts_with('/') {
        let seg: Vec<&str> = s.trim_end_matches('/').split('/').skip(1).collect();
        if let ["subscriptions", sub, rg, rg_name, p, ns, vms, name] = seg.as_slice()
            && rg.eq_ignore_ascii_case("resourceGroups")
            && p.eq_ignore_ascii_case("providers")
            && ns.eq_ignore_ascii_case("Microsoft.Compute")
            && vms.eq_ignore_ascii_case("virtualMachines")
            && name_ok(name)
        {
            let sub = parse_guid(sub, "")?;
            return Ok(AzureVmRef { subscription_id: sub, resource_group: (*rg_name).to_owned(), name: (*name).to_owned() });
        }
        return Err(problem(
            format!("{s:?} is not a virtual machine resource id"),
            "write the VM's name (it is looked for in azure.resource_group), or its full id \
             /subscriptions/<GUID>/resourceGroups/<group>/providers/Microsoft.Compute/virtualMachines/<name> \
             (`az vm show -g <group> -n <name> --query id -o tsv` prints it)",
        ));
    }
    if !name_ok(s) {
        return Err(problem(
            format!("{s:?} is not an Azure VM name (1-64 letters, digits, '-', '_' or '.', starting with a letter or digit)"),
            "write the VM's name as the portal or `az vm list -g <group> -o table` shows it, or its full resource id",
        ));
    }
    Ok(AzureVmRef { subscription_id: subscription.to_owned(), resource_group: resource_group.to_owned(), name: s.to_owned() })
}

/// `prefix-` followed by 8 or 17 lowercase hexadecimal digits (`vpc-…`, `rtb-…`).
fn check_aws_id(s: &str, prefix: &str, what: &str) -> Result<(), Problem> {
    let example = format!("{prefix}-0123456789abcdef0");
    let hex = s.strip_prefix(prefix).and_then(|r| r.strip_prefix('-'));
    if let Some(hex) = hex
        && matches!(hex.len(), 8 | 17)
    {
        if hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
            return Ok(());
        }
        if hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(problem(
                format!("{s:?} has uppercase letters"),
                format!("did you mean \"{prefix}-{}\"?", hex.to_ascii_lowercase()),
            ));
        }
    }
    Err(problem(
        format!("{s:?} is not a {what} id ({prefix}- followed by 8 or 17 hexadecimal digits)"),
        format!("copy the id from the AWS console or CLI, e.g. \"{example}\""),
    ))
}

fn check_inside_cidr(s: &str, mode: Mode) -> Result<Ipv4Net, Problem> {
    let examples = format!("e.g. one of {BGP_INSIDE_DEFAULTS_TEXT}");
    let net = parse_v4_prefix(s)?;
    let link_local: Ipv4Net = "169.254.0.0/16".parse().expect("literal");
    if net.prefix_len() != 30 {
        let fix = if link_local.contains(&net.network()) {
            format!("did you mean \"{}\"? ({examples})", Ipv4Net::new(net.network(), 30).expect("30 <= 32").trunc())
        } else {
            format!("use a /30 in 169.254.0.0/16, {examples}")
        };
        return Err(problem(format!("{net} is a /{}; AWS tunnel inside CIDRs are /30s", net.prefix_len()), fix));
    }
    if !link_local.contains(&net) {
        return Err(problem(
            format!("{net} is outside 169.254.0.0/16, where AWS tunnel inside CIDRs must be"),
            format!("use a /30 in 169.254.0.0/16, {examples}"),
        ));
    }
    if reserved_inside_cidr(net) {
        return Err(problem(
            format!("{net} is reserved by AWS (169.254.0.0/30 to 169.254.5.0/30 and 169.254.169.252/30 are refused)"),
            format!("use another /30, {examples}"),
        ));
    }
    if mode == Mode::BgpHa && !in_azure_apipa_range(net) {
        return Err(problem(
            format!(
                "{net} is outside Azure's APIPA range 169.254.21.0-169.254.22.255, where bgp-ha puts the gateway's custom BGP addresses"
            ),
            format!(
                "use /30s inside 169.254.21.0-169.254.22.255, e.g. {BGP_INSIDE_DEFAULTS_TEXT} (or leave the list empty for these defaults)"
            ),
        ));
    }
    Ok(net)
}

fn parse_endpoint(s: &str) -> Result<Option<String>, Problem> {
    if s.is_empty() {
        return Ok(None);
    }
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !s.chars().any(char::is_whitespace) => Ok(Some(s.to_owned())),
        _ => Err(problem(
            format!("{s:?} is not an http:// or https:// URL"),
            "write the full URL, e.g. \"http://127.0.0.1:8080\", or \"\" for the cloud's default endpoint",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse_str(text: &str) -> Result<Loaded, ConfigErrors> {
        parse(text, Path::new("t.toml"), &no_env)
    }

    fn errors(text: &str) -> Vec<ConfigError> {
        match parse_str(text) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e.0,
        }
    }

    fn replace(old: &str, new: &str) -> String {
        assert!(EXAMPLE.contains(old), "{old} not in EXAMPLE");
        EXAMPLE.replacen(old, new, 1)
    }

    #[test]
    fn example_is_valid_with_documented_defaults() {
        let loaded = parse_str(EXAMPLE).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let c = loaded.config;
        assert_eq!(c.name, "azure-aws");
        assert_eq!(c.mode, Mode::StaticHa);
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
    fn minimal_file_gets_defaults() {
        let text = r#"
name = "x1"
[azure]
resource_group = "rg"
location = "westeurope"
vnet = "vn"
address_space = ["10.1.0.0/16"]
gateway_subnet = "10.1.0.0/27"
[aws]
region = "eu-west-1"
vpc_id = "vpc-01234567"
cidrs = ["10.2.0.0/16"]
"#;
        let c = parse_str(text).unwrap().config;
        assert_eq!(c.mode, Mode::StaticHa);
        assert_eq!(c.azure.vnet, "vn");
        assert_eq!(c.aws.route_tables, Vec::<String>::new());
        let bgp = parse_str(&text.replace("name = \"x1\"", "name = \"x1\"\nmode = \"bgp-ha\"")).unwrap().config;
        assert_eq!(bgp.tunnels_per_connection, 2);
        assert_eq!(bgp.aws.tunnel_inside_cidrs.len(), 4);
        assert_eq!(bgp.layout().pins(1)[1], Some("169.254.22.4/30".parse().unwrap()));
    }

    #[test]
    fn missing_keys_are_all_reported() {
        let errs = errors("[azure]\n[aws]\n");
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "name",
            "azure.resource_group",
            "azure.location",
            "azure.vnet",
            "azure.address_space",
            "azure.gateway_subnet",
            "aws.region",
            "aws.vpc_id",
            "aws.cidrs",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
        let missing_tables = errors("name = \"a\"\n");
        assert!(missing_tables.iter().any(|e| e.field == "azure" && e.fix.contains("[azure]")));
        assert!(missing_tables.iter().any(|e| e.field == "aws"));
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
    fn wrong_types_name_the_expected_type() {
        let errs = errors(&replace("asn = 65000", "asn = \"65000\""));
        assert!(errs.iter().any(|e| e.field == "azure.asn" && e.problem.contains("expected an integer, found a string")));
        let errs = errors(&replace("cidrs = [\"10.2.0.0/16\"]", "cidrs = [\"10.2.0.0/16\", 7]"));
        assert!(errs.iter().any(|e| e.field == "aws.cidrs[1]" && e.problem.contains("expected a string")));
    }

    #[test]
    fn unknown_key_in_other_table_says_where_it_belongs() {
        let errs = errors(&replace("name = \"azure-aws\"", "name = \"azure-aws\"\nregion = \"eu-west-1\""));
        let e = errs.iter().find(|e| e.field == "region").unwrap();
        assert!(e.fix.contains("[aws]"), "{e}");
        let errs = errors(&replace("vpn_type", "password = \"x\"\nvpn_type"));
        let e = errs.iter().find(|e| e.field == "azure.password").unwrap();
        assert!(!e.to_string().contains("\"x\""));
    }

    #[test]
    fn names() {
        assert!(check_name("azure-aws").is_ok());
        assert!(check_name("a").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("Azure").is_err());
        assert!(check_name("1abc").is_err());
        assert!(check_name("abc-").is_err());
        assert!(check_name(&"a".repeat(41)).is_err());
        assert!(check_name(&"a".repeat(40)).is_ok());
        assert_eq!(suggest_name("My_VPN--Prod-"), "my-vpn-prod");
        assert!(check_resource_group("rg_(x).y-1").is_ok());
        assert!(check_resource_group("rg.").is_err());
        assert!(check_resource_group(&"r".repeat(91)).is_err());
        assert!(check_resource_group("rg vpn").is_err());
        assert!(check_vnet("v").is_err());
        assert!(check_vnet("vnet_").is_ok());
        assert!(check_vnet("vnet-").is_err());
        assert!(check_vnet("_vnet").is_err());
        assert!(check_location("japaneast").is_ok());
        assert!(check_location("Japan East").unwrap_err().fix.contains("\"japaneast\""));
    }

    #[test]
    fn guids() {
        assert_eq!(parse_guid("ABCDEF01-2345-6789-abcd-ef0123456789", "").unwrap(), "abcdef01-2345-6789-abcd-ef0123456789");
        assert!(parse_guid("abcdef01-2345-6789-abcd-ef012345678", "").is_err());
        assert!(parse_guid("gbcdef01-2345-6789-abcd-ef0123456789", "").is_err());
        assert!(parse_guid("abcdef0123456789abcdef0123456789", "").is_err());
    }

    #[test]
    fn subscription_sources() {
        let text = replace("backend = \"sim\"", "backend = \"azure\"");
        let errs = parse(&text, Path::new("t.toml"), &no_env).unwrap_err().0;
        assert!(errs.iter().any(|e| e.field == "azure.subscription_id" && e.fix.contains("AZURE_SUBSCRIPTION_ID")));
        let env = |k: &str| (k == "AZURE_SUBSCRIPTION_ID").then(|| "AAAAAAAA-0000-0000-0000-000000000001".to_owned());
        let c = parse(&text, Path::new("t.toml"), &env).unwrap().config;
        assert_eq!(c.azure.backend, Backend::Real);
        assert_eq!(c.azure.subscription_id, "aaaaaaaa-0000-0000-0000-000000000001");
        let file = replace("# subscription_id = ", "subscription_id = ");
        let c = parse(&file, Path::new("t.toml"), &env).unwrap().config;
        assert_eq!(c.azure.subscription_id, SIM_SUBSCRIPTION, "the file wins over the environment");
        let bad_env = |k: &str| (k == "AZURE_SUBSCRIPTION_ID").then(|| "nope".to_owned());
        let errs = parse(&text, Path::new("t.toml"), &bad_env).unwrap_err().0;
        assert!(errs[0].problem.contains("AZURE_SUBSCRIPTION_ID"));
    }

    #[test]
    fn prefixes() {
        assert!(parse_v4_prefix("10.1.0.0/16").is_ok());
        assert!(parse_v4_prefix("10.1.2.0/16").unwrap_err().fix.contains("did you mean \"10.1.0.0/16\"?"));
        assert!(parse_v4_prefix("fd00::/8").unwrap_err().problem.contains("IPv6"));
        assert!(parse_v4_prefix("10.1.0.0").unwrap_err().fix.contains("10.1.0.0/16"));
        assert!(parse_v4_prefix("ten").is_err());
        assert_eq!(last_subnet("10.1.0.0/16".parse().unwrap(), 27).to_string(), "10.1.255.224/27");
        let taken = merged(["10.0.0.0/16", "10.1.0.0/16", "10.3.0.0/17"].iter().map(|s| s.parse().unwrap()));
        assert_eq!(taken, vec![(0x0a00_0000, 0x0a01_ffff), (0x0a03_0000, 0x0a03_7fff)]);
        assert_eq!(free_prefix(16, &taken).unwrap().to_string(), "10.2.0.0/16");
        assert_eq!(free_prefix(15, &taken).unwrap().to_string(), "10.4.0.0/15");
        assert_eq!(free_prefix(8, &merged(std::iter::once("10.0.0.0/8".parse().unwrap()))), None);
        assert_eq!(free_prefix(12, &merged(std::iter::once("10.0.0.0/8".parse().unwrap()))).unwrap().to_string(), "172.16.0.0/12");
        let all = merged(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"].iter().map(|s| s.parse().unwrap()));
        assert_eq!(free_prefix(24, &all), None);
    }

    #[test]
    fn gateway_subnet_sizes() {
        let w = parse_str(&replace("10.1.255.0/27", "10.1.255.0/28")).unwrap().warnings;
        assert_eq!(w.len(), 1);
        assert!(w[0].message.contains("/27"));
        let errs = errors(&replace("10.1.255.0/27", "10.1.255.0/30"));
        assert!(errs.iter().any(|e| e.field == "azure.gateway_subnet" && e.problem.contains("/29")));
        assert!(parse_str(&replace("10.1.255.0/27", "10.1.0.0/16")).is_ok());
    }

    #[test]
    fn skus() {
        assert_eq!(parse_sku("VpnGw3AZ").unwrap(), GatewaySku::VpnGw3AZ);
        assert!(parse_sku("vpngw1az").unwrap_err().fix.contains("\"VpnGw1AZ\""));
        assert!(parse_sku("VpnGw5").unwrap_err().fix.contains("\"VpnGw5AZ\" (with gateway_generation = \"Generation2\")"));
        assert!(parse_sku("ErGw1AZ").unwrap_err().problem.contains("ExpressRoute"));
        assert!(parse_sku("VpnGw6AZ").unwrap_err().fix.contains("VpnGw1AZ, VpnGw2AZ"));
        assert!(parse_generation("Gen2").unwrap_err().fix.contains("did you mean \"Generation2\""));
        for sku in GatewaySku::ALL {
            for g in [Generation::Generation1, Generation::Generation2] {
                assert_eq!(check_sku_generation(sku, g).is_ok(), sku.supports(g));
            }
        }
    }

    #[test]
    fn asns() {
        assert_eq!(check_azure_asn(65000, Mode::BgpHa).unwrap(), 65000);
        assert!(check_azure_asn(0, Mode::StaticHa).is_err());
        assert!(check_azure_asn(4_294_967_295, Mode::StaticHa).is_err());
        assert!(check_azure_asn(-1, Mode::StaticHa).is_err());
        assert!(check_azure_asn(4_294_967_294, Mode::StaticHa).is_ok());
        assert!(check_azure_asn(65515, Mode::BgpHa).unwrap_err().problem.contains("default"));
        assert!(check_azure_asn(65515, Mode::StaticHa).unwrap_err().problem.contains("reserved"));
        assert!(check_amazon_asn(64512, Mode::BgpHa).is_ok());
        assert!(check_amazon_asn(65515, Mode::StaticHa).is_ok());
        assert!(check_amazon_asn(65515, Mode::BgpHa).is_err());
        assert!(check_amazon_asn(65535, Mode::StaticHa).is_err());
        assert!(check_amazon_asn(1 << 40, Mode::StaticHa).is_err());
    }

    #[test]
    fn integers_in_other_radixes_and_with_underscores() {
        let c = parse_str(&replace("asn = 65000", "asn = 0xFDE8")).unwrap().config;
        assert_eq!(c.azure.asn, 65000);
        let c = parse_str(&replace("amazon_asn = 64512", "amazon_asn = 4_200_000_000")).unwrap().config;
        assert_eq!(c.aws.amazon_asn, 4_200_000_000);
        let errs = errors(&replace("asn = 65000", "asn = -65000"));
        assert!(errs.iter().any(|e| e.field == "azure.asn"));
    }

    #[test]
    fn regions_and_ids() {
        for ok in ["ap-northeast-1", "us-gov-west-1", "eu-central-2", "us-isob-east-1"] {
            assert!(check_region(ok).is_ok(), "{ok}");
        }
        assert!(check_region("ap-northeast-1a").unwrap_err().fix.contains("\"ap-northeast-1\""));
        assert!(check_region("AP-NORTHEAST-1").unwrap_err().fix.contains("\"ap-northeast-1\""));
        assert!(check_region("tokyo").is_err());
        assert!(check_region("ap-northeast").is_err());
        assert!(check_aws_id("vpc-01234567", "vpc", "VPC").is_ok());
        assert!(check_aws_id("vpc-0123456789abcdef0", "vpc", "VPC").is_ok());
        assert!(check_aws_id("vpc-0123456789ABCDEF0", "vpc", "VPC").unwrap_err().fix.contains("vpc-0123456789abcdef0"));
        assert!(check_aws_id("vpc-0123456789abcdef", "vpc", "VPC").is_err());
        assert!(check_aws_id("rtb-01234567", "vpc", "VPC").is_err());
    }

    #[test]
    fn unroutable_address_spaces_are_refused() {
        for bad in ["127.0.0.0/8", "224.0.0.0/4", "169.254.0.0/16", "0.0.0.0/8", "240.0.0.0/4", "127.1.0.0/16", "0.0.0.0/0"] {
            let e = parse_str(&replace("address_space = [\"10.1.0.0/16\"]", &format!("address_space = [\"{bad}\"]"))).unwrap_err();
            assert!(e.to_string().contains("cannot be routed over a VPN"), "{bad}: {e}");
            let e = parse_str(&replace("cidrs = [\"10.2.0.0/16\"]", &format!("cidrs = [\"{bad}\"]"))).unwrap_err();
            assert!(e.to_string().contains("aws.cidrs[0]"), "{bad}: {e}");
        }
        let w = parse_str(&replace("cidrs = [\"10.2.0.0/16\"]", "cidrs = [\"172.17.0.0/16\"]")).unwrap().warnings;
        assert!(w.iter().any(|w| w.field == "aws.cidrs[0]" && w.message.contains("Docker")), "{w:?}");
    }

    #[test]
    fn inside_cidrs() {
        assert!(check_inside_cidr("169.254.10.0/30", Mode::StaticHa).is_ok());
        assert!(check_inside_cidr("169.254.10.0/30", Mode::BgpHa).unwrap_err().fix.contains("169.254.21.0/30"));
        assert!(check_inside_cidr("169.254.3.0/30", Mode::StaticHa).unwrap_err().problem.contains("reserved"));
        assert!(check_inside_cidr("169.254.169.252/30", Mode::StaticHa).is_err());
        assert!(check_inside_cidr("169.254.21.0/29", Mode::StaticHa).unwrap_err().fix.contains("\"169.254.21.0/30\""));
        assert!(check_inside_cidr("10.0.0.0/30", Mode::StaticHa).unwrap_err().problem.contains("169.254.0.0/16"));
    }

    #[test]
    fn psk_sources_never_echo_a_key() {
        let env = |k: &str| match k {
            "GOOD" => Some("Abcdefgh_123".to_owned()),
            "BAD" => Some("Abc-defgh".to_owned()),
            _ => None,
        };
        assert_eq!(parse_psk("generate", &env).unwrap(), PskSource::Generate);
        assert_eq!(parse_psk("aws", &env).unwrap(), PskSource::Aws);
        assert!(matches!(parse_psk("env:GOOD", &env).unwrap(), PskSource::Env { var, .. } if var == "GOOD"));
        let bad = parse_psk("env:BAD", &env).unwrap_err();
        assert!(!format!("{bad:?}").contains("Abc"));
        assert!(!format!("{bad:?}").contains("'-'"));
        assert!(parse_psk("env:UNSET", &env).unwrap_err().problem.contains("UNSET"));
        // A key pasted after env: is never printed back.
        for pasted in ["Zq7xK2mPqR9tLw4N", "Zq7x-K2m.PqR9"] {
            let e = parse_psk(&format!("env:{pasted}"), &env).unwrap_err();
            assert!(!format!("{}{}", e.problem, e.fix).contains(pasted), "{e:?}");
            assert!(e.fix.contains("rotate"), "{e:?}");
        }
        assert!(parse_psk("env:", &env).is_err());
        let literal = parse_psk("MySecretKey123", &env).unwrap_err();
        assert!(!format!("{literal:?}").contains("MySecret"));
        assert!(parse_psk("Generate", &env).unwrap_err().fix.contains("did you mean \"generate\""));
        let loaded = parse(&replace("psk = \"generate\"", "psk = \"env:GOOD\""), Path::new("t.toml"), &env).unwrap();
        assert!(!format!("{loaded:?}").contains("Abcdefgh_123"));
    }

    #[test]
    fn a_syntax_error_never_echoes_the_offending_text() {
        let errs = errors(&replace("psk = \"generate\"", "psk = Sup3rSecretKey"));
        assert_eq!(errs.len(), 1);
        assert!(!format!("{:?} {}", errs, ConfigErrors(errs.clone())).contains("Sup3rSecret"));
        assert!(errs[0].line.is_some() && errs[0].column.is_some());
    }

    #[test]
    fn endpoints() {
        assert_eq!(parse_endpoint("").unwrap(), None);
        assert_eq!(parse_endpoint("http://127.0.0.1:8080").unwrap().as_deref(), Some("http://127.0.0.1:8080"));
        assert!(parse_endpoint("https://").is_err());
        assert!(parse_endpoint("ftp://x").is_err());
        assert!(parse_endpoint("localhost:8080").is_err());
    }

    #[test]
    fn closest_words() {
        assert_eq!(closest("gateway_skus", AZURE_KEYS), Some("gateway_sku"));
        assert_eq!(closest("adress_space", AZURE_KEYS), Some("address_space"));
        assert_eq!(closest("zzz", AZURE_KEYS), None);
    }

    #[test]
    fn display_numbers_and_counts() {
        let errs = ConfigErrors(vec![
            ConfigError { file: "f.toml".into(), field: "a".into(), line: Some(1), column: Some(2), problem: "p".into(), fix: "x".into() },
            ConfigError { file: "f.toml".into(), field: String::new(), line: None, column: None, problem: "q".into(), fix: String::new() },
        ]);
        assert_eq!(errs.to_string(), "1. f.toml:1:2: a: p\n     fix: x\n2. f.toml: q\n2 errors in f.toml");
    }
}
