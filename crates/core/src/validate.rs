//! Loading `vpnbridge.toml`: text -> [`Config`], with every problem of the file reported
//! at once, each with where it is (file, line, field) and what to do about it.
//!
//! The file is parsed into a spanned TOML table and walked against the schema by hand
//! (unknown keys get a "did you mean" suggestion, wrong types name the expected type),
//! then every field and cross-field rule of DESIGN §2 is checked. Nothing here prints a
//! pre-shared key: a `psk` value that is not a key source is never quoted, and a key read
//! from the environment is described only by the rule it breaks.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::path::{Path, PathBuf};

use ipnet::{IpNet, Ipv4Net};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::config::{
    AwsConfig, AzureConfig, Backend, Config, GatewaySku, Generation, Mode, PskSource, azure_reserved_asn, in_azure_apipa_range, overlaps,
    reserved_inside_cidr, valid_amazon_asn,
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

/// Every problem found in a config file (never empty when returned by [`load`] or
/// [`parse`]), in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_errors(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn render_errors(errors: &[ConfigError]) -> String {
    let mut out = String::new();
    for (i, e) in errors.iter().enumerate() {
        let prefix = format!("{}. ", i + 1);
        let indent = " ".repeat(prefix.len());
        for (j, line) in e.to_string().lines().enumerate() {
            out.push_str(if j == 0 { &prefix } else { &indent });
            out.push_str(line);
            out.push('\n');
        }
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
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            let (problem, fix) = if e.kind() == std::io::ErrorKind::NotFound {
                (
                    "no such file".to_owned(),
                    format!("run `vpnbridge init` to write a commented example to {}, then edit it", path.display()),
                )
            } else {
                (format!("cannot read the file: {e}"), "check the path and its permissions; the file must be UTF-8 text".to_owned())
            };
            return Err(ConfigErrors(vec![ConfigError {
                file: path.to_owned(),
                field: String::new(),
                line: None,
                column: None,
                problem,
                fix,
            }]));
        }
    };
    parse(&text, path, &|name| std::env::var(name).ok())
}

/// Validates config `text` read from `source` (used in messages and kept in
/// [`Config::source`]); `env` looks up environment variables.
pub fn parse(text: &str, source: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, ConfigErrors> {
    let mut cx = Checker { file: source, text, errors: Vec::new(), warnings: Vec::new() };
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let span = e.span();
            cx.error(
                "",
                span,
                format!("invalid TOML: {}", e.message()),
                "correct the syntax at this position (strings need double quotes, lists use [ ]); `vpnbridge init` writes a valid example",
            );
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
pub const TOP_KEYS: &[&str] = &["name", "mode", "tunnels_per_connection", "psk", "azure", "aws"];
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
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigWarning>,
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
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
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
            let elsewhere: Vec<&str> = [("", TOP_KEYS), ("azure", AZURE_KEYS), ("aws", AWS_KEYS)]
                .into_iter()
                .filter(|(t, keys)| *t != table_name && keys.contains(&k) && !matches!(k, "azure" | "aws"))
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

        // Cross-table rules.
        if let (Some(az), Some(aw)) = (&azure, &aws) {
            if let (Some(space), Some(cidrs)) = (&az.address_space, &aw.cidrs) {
                for b in cidrs {
                    for a in space {
                        if overlaps(IpNet::V4(a.value), IpNet::V4(b.value)) {
                            let taken: Vec<Ipv4Net> = space.iter().chain(cidrs.iter()).map(|x| x.value).collect();
                            let free =
                                free_prefix(b.value.prefix_len(), &taken).map(|f| format!(" (e.g. {f} is free)")).unwrap_or_default();
                            self.error(
                                "aws.cidrs",
                                b.span.clone(),
                                format!(
                                    "{} overlaps azure.address_space {}; the VPC and the VNet must not share addresses, or traffic cannot be routed across",
                                    b.value, a.value
                                ),
                                format!("use a VPC and a VNet with disjoint address ranges{free}"),
                            );
                        }
                    }
                }
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
        let location = self
            .required_string(T, t, &span, "location", r#""japaneast""#)
            .and_then(|v| self.checked("azure.location", &v, |s| check_location(s).map(|()| s.clone())));
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

        let endpoint = self.endpoint(T, t);

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

    fn aws(&mut self, t: &DeTable<'_>, span: Range<usize>, mode: Mode, tpc: Option<u8>) -> AwsPart {
        const T: &str = "aws";
        let backend = match self.string(T, t, "backend", r#""sim" or "aws""#) {
            None => Some(Backend::Sim).filter(|_| t.get("backend").is_none()),
            Some(b) => self.checked("aws.backend", &b, |s| parse_backend(s, "aws", "azure")),
        };
        let region = self
            .required_string(T, t, &span, "region", r#""ap-northeast-1""#)
            .and_then(|v| self.checked("aws.region", &v, |s| check_region(s).map(|()| s.clone())));
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
                let mut ok = true;
                for (i, v) in list.value.iter().enumerate() {
                    let field = format!("aws.route_tables[{i}]");
                    if self.checked(&field, v, |s| check_aws_id(s, "rtb", "route table")).is_none() {
                        ok = false;
                    } else if out.contains(&v.value) {
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
        let mut out: Vec<At<Ipv4Net>> = Vec::new();
        let mut ok = true;
        for (i, v) in list.value.iter().enumerate() {
            let item = format!("{field}[{i}]");
            let Some(net) = self.checked(&item, v, |s| parse_v4_prefix(s).and_then(routable)) else {
                ok = false;
                continue;
            };
            if field == "aws.cidrs" && overlaps(IpNet::V4(net), IpNet::V4(DOCKER_BRIDGE)) {
                self.warn(
                    item.clone(),
                    format!(
                        "{net} overlaps 172.17.0.0/16, which AWS advises against for a VPC: Docker's default bridge (and services built on it, e.g. Cloud9, SageMaker) uses it, so hosts there may not reach the VNet"
                    ),
                );
            }
            if let Some(prev) = out.iter().find(|p| overlaps(IpNet::V4(p.value), IpNet::V4(net))) {
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
            out.push(At { value: net, span: v.span.clone() });
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
        for (i, v) in list.value.iter().enumerate() {
            let item = format!("{F}[{i}]");
            match self.checked(&item, v, |s| check_inside_cidr(s, mode)) {
                Some(net) if out.contains(&net) => {
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

/// A private prefix of length `len` that overlaps none of `taken`.
fn free_prefix(len: u8, taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    for pool in ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"] {
        let pool: Ipv4Net = pool.parse().expect("literal");
        if len < pool.prefix_len() {
            continue;
        }
        if let Ok(subnets) = pool.subnets(len) {
            for candidate in subnets.take(4096) {
                if !taken.iter().any(|t| overlaps(IpNet::V4(*t), IpNet::V4(candidate))) {
                    return Some(candidate);
                }
            }
        }
    }
    None
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
        && parts[0].len() == 2
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
        let taken: Vec<Ipv4Net> = vec!["10.0.0.0/16".parse().unwrap(), "10.1.0.0/16".parse().unwrap()];
        assert_eq!(free_prefix(16, &taken).unwrap().to_string(), "10.2.0.0/16");
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
