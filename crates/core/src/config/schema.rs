//! The schema of `vpnbridge.toml` and the walker that reads a file against it.
//!
//! Every table's keys are listed once, in [`TABLES`]: the walker takes each value's
//! example and whether it is required from there, and the same lists find unknown keys,
//! suggest the closest key (or the table a key belongs in) and give the change table of
//! `crates/sim/tests/it/changes.rs` every key. A key the walker reads that is not listed
//! panics on the first parse (every walk reads every key of the tables present), so the
//! lists cannot drift from the code.
//!
//! The walk collects every problem it finds ([`Checker`]) and assembles a [`Config`] only
//! if there were none; the rules of each table live in their own files.

use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::aws::AwsPart;
use super::azure::AzurePart;
use super::error::{ConfigError, ConfigWarning, Problem};
use super::load::TextIndex;
use super::{AwsConfig, AzureConfig, Config, Mode};

/// One key of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    /// A valid value as written in the file (`"japaneast"`, `["10.1.0.0/16"]`, `65000`),
    /// or the valid values when no single one fits (`1 or 2`): messages show it.
    pub example: &'static str,
    /// Whether the file must set it (its absence is an error).
    pub required: bool,
}

/// One table of `vpnbridge.toml`; the top level is the table named "".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// `azure`, `aws`, `probe`, or "" for the top level.
    pub name: &'static str,
    pub keys: &'static [Key],
}

const fn key(name: &'static str, example: &'static str) -> Key {
    Key { name, example, required: false }
}

const fn required(name: &'static str, example: &'static str) -> Key {
    Key { name, example, required: true }
}

/// The top level's own keys (its tables are the others of [`TABLES`]).
pub const TOP: Table = Table {
    name: "",
    keys: &[
        required("name", r#""azure-aws""#),
        key("mode", r#""static-ha""#),
        key("tunnels_per_connection", "1 or 2"),
        key("psk", r#""generate""#),
    ],
};

/// `[azure]`.
pub const AZURE: Table = Table {
    name: "azure",
    keys: &[
        key("backend", r#""sim" or "azure""#),
        key("subscription_id", r#""00000000-0000-0000-0000-000000000000""#),
        required("resource_group", r#""rg-vpn""#),
        required("location", r#""japaneast""#),
        required("vnet", r#""vnet-hub""#),
        required("address_space", r#"["10.1.0.0/16"]"#),
        required("gateway_subnet", r#""10.1.255.0/27""#),
        key("gateway_sku", r#""VpnGw1AZ""#),
        key("gateway_generation", r#""Generation1""#),
        key("vpn_type", r#""RouteBased""#),
        key("asn", "65000"),
        key("endpoint", r#""https://...""#),
    ],
};

/// `[aws]`.
pub const AWS: Table = Table {
    name: "aws",
    keys: &[
        key("backend", r#""sim" or "aws""#),
        required("region", r#""ap-northeast-1""#),
        required("vpc_id", r#""vpc-0123456789abcdef0""#),
        required("cidrs", r#"["10.2.0.0/16"]"#),
        key("route_tables", r#"["rtb-0123456789abcdef0"]"#),
        key("amazon_asn", "64512"),
        key("tunnel_inside_cidrs", r#"["169.254.21.0/30", "169.254.22.0/30"]"#),
        key("endpoint", r#""https://...""#),
    ],
};

/// `[probe]` (optional: the users' test VMs).
pub const PROBE: Table =
    Table { name: "probe", keys: &[required("azure_vm", r#""vm-test""#), required("aws_instance", r#""i-0123456789abcdef0""#)] };

/// Every table of the file, the top level first.
pub const TABLES: [&Table; 4] = [&TOP, &AZURE, &AWS, &PROBE];

impl Table {
    /// The key named `name`. Panics if the table has none: the walker reads a key
    /// the schema does not list.
    pub fn key(&self, name: &str) -> &'static Key {
        self.keys.iter().find(|k| k.name == name).unwrap_or_else(|| panic!("{name:?} is not in the schema of [{}]", self.name))
    }

    /// The dotted path of one of its keys (`azure.location`, `name`).
    pub fn field(&self, key: &str) -> String {
        path_of(self.name, key)
    }
}

/// Every key of every table as a dotted path (`name`, …, `azure.backend`, …), in
/// [`TABLES`] order; the tables themselves are not keys.
pub fn fields() -> impl Iterator<Item = String> {
    TABLES.into_iter().flat_map(|t| t.keys.iter().map(|k| t.field(k.name)))
}

/// A value and where it was written.
#[derive(Debug, Clone)]
pub(super) struct At<T> {
    pub(super) value: T,
    pub(super) span: Option<Range<usize>>,
}

/// A table of the file being walked: its schema, what the file has in it, and where
/// its header is (where a missing key is reported; none at the top level).
#[derive(Debug)]
pub(super) struct Section<'t, 'i> {
    pub(super) schema: &'static Table,
    pub(super) table: &'t DeTable<'i>,
    pub(super) span: Option<Range<usize>>,
}

impl Section<'_, '_> {
    /// The value of `key` (one of the schema's), if the file sets it.
    pub(super) fn get(&self, key: &str) -> Option<&Spanned<DeValue<'_>>> {
        self.schema.key(key);
        self.table.get(key)
    }

    /// Whether the file sets `key` (one of the schema's), whatever its type.
    pub(super) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The dotted path of `key`.
    pub(super) fn field(&self, key: &str) -> String {
        self.schema.field(key)
    }
}

/// Walks one file, collecting every problem and warning.
#[derive(Debug)]
pub(super) struct Checker<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
    /// Where each line starts, for positions in O(log n) however many errors there are.
    pub(super) index: TextIndex,
    pub(super) errors: Vec<ConfigError>,
    pub(super) warnings: Vec<ConfigWarning>,
}

pub(super) fn path_of(table: &str, key: &str) -> String {
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
    pub(super) fn error(
        &mut self,
        field: impl Into<String>,
        span: Option<Range<usize>>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let (line, column) = match span.map(|s| self.index.line_column(self.text, s.start)) {
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

    pub(super) fn report(&mut self, field: impl Into<String>, span: Option<Range<usize>>, p: Problem) {
        self.error(field, span, p.problem, p.fix);
    }

    pub(super) fn warn(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(ConfigWarning { field: field.into(), message: message.into() });
    }

    /// Applies `check` to a value, reporting its problem at the value.
    pub(super) fn checked<T, U>(&mut self, field: &str, v: &At<T>, check: impl FnOnce(&T) -> Result<U, Problem>) -> Option<U> {
        match check(&v.value) {
            Ok(u) => Some(u),
            Err(p) => {
                self.report(field, v.span.clone(), p);
                None
            }
        }
    }

    // -- schema walk ----------------------------------------------------------------------

    /// Reports every key of the section its schema does not list (at the top level, the
    /// tables are known keys too), with the table it belongs in or the closest key.
    fn unknown_keys(&mut self, section: &Section<'_, '_>) {
        let table_name = section.schema.name;
        let mut known: Vec<&str> = section.schema.keys.iter().map(|k| k.name).collect();
        if table_name.is_empty() {
            known.extend(TABLES.iter().map(|t| t.name).filter(|t| !t.is_empty()));
        }
        let place = if table_name.is_empty() { "at the top level".to_owned() } else { format!("in [{table_name}]") };
        for (key, _) in section.table.iter() {
            let k: &str = key.get_ref();
            if known.contains(&k) {
                continue;
            }
            let elsewhere: Vec<&str> =
                TABLES.iter().filter(|t| t.name != table_name && t.keys.iter().any(|key| key.name == k)).map(|t| t.name).collect();
            let fix = if !elsewhere.is_empty() {
                let tables: Vec<String> = elsewhere
                    .iter()
                    .map(|t| if t.is_empty() { "the top level (before any [table])".to_owned() } else { format!("[{t}]") })
                    .collect();
                format!("{k:?} belongs in {}; move it there", tables.join(" or "))
            } else if let Some(s) = closest(k, &known) {
                format!("did you mean {s:?}?")
            } else if looks_secret(k) {
                "remove it: no key, password or credential ever lives in this file (see `psk` and the environment)".to_owned()
            } else {
                format!("remove it; the keys {place} are: {}", known.join(", "))
            };
            self.error(path_of(table_name, k), Some(key.span()), format!("unknown key {k:?} {place}"), fix);
        }
    }

    pub(super) fn type_error(&mut self, field: &str, v: &Spanned<DeValue<'_>>, expected: &str, example: &str) {
        self.error(field, Some(v.span()), format!("expected {expected}, found {}", kind_of(v.get_ref())), format!("write it as {example}"));
    }

    /// The value of `key` in `section`, reporting it missing when the schema requires it.
    fn value<'s>(&mut self, section: &'s Section<'_, '_>, key: &str) -> Option<(&'static Key, &'s Spanned<DeValue<'s>>)> {
        let k = section.schema.key(key);
        let Some(v) = section.table.get(key) else {
            if k.required {
                let table_name = section.schema.name;
                let place = if table_name.is_empty() { "at the top of the file".to_owned() } else { format!("to [{table_name}]") };
                let fix = format!("add `{} = {}` {place}", k.name, k.example);
                self.error(section.field(key), section.span.clone(), "is required but missing", fix);
            }
            return None;
        };
        Some((k, v))
    }

    pub(super) fn string(&mut self, section: &Section<'_, '_>, key: &str) -> Option<At<String>> {
        let (k, v) = self.value(section, key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(At { value: s.to_string(), span: Some(v.span()) }),
            _ => {
                self.type_error(&section.field(key), v, "a string", k.example);
                None
            }
        }
    }

    pub(super) fn integer(&mut self, section: &Section<'_, '_>, key: &str) -> Option<At<i128>> {
        let (k, v) = self.value(section, key)?;
        let field = section.field(key);
        match v.get_ref() {
            DeValue::Integer(i) => match i128::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(At { value: n, span: Some(v.span()) }),
                Err(_) => {
                    self.error(field, Some(v.span()), "is not a representable integer", format!("write it as {}", k.example));
                    None
                }
            },
            _ => {
                self.type_error(&field, v, "an integer", k.example);
                None
            }
        }
    }

    pub(super) fn string_list(&mut self, section: &Section<'_, '_>, key: &str) -> Option<At<Vec<At<String>>>> {
        let (k, v) = self.value(section, key)?;
        let field = section.field(key);
        let DeValue::Array(items) = v.get_ref() else {
            self.type_error(&field, v, "a list of strings", k.example);
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::String(s) => out.push(At { value: s.to_string(), span: Some(item.span()) }),
                _ => {
                    self.type_error(&format!("{field}[{i}]"), item, "a string", k.example);
                    ok = false;
                }
            }
        }
        ok.then_some(At { value: out, span: Some(v.span()) })
    }

    /// The sub-table `schema` names, its unknown keys reported; `Err` when it is not a
    /// table (reported), `Ok(None)` when absent (reported if `required`).
    fn table<'t, 'i>(&mut self, root: &'t DeTable<'i>, schema: &'static Table, required: bool) -> Result<Option<Section<'t, 'i>>, ()> {
        let name = schema.name;
        let Some(v) = root.get(name) else {
            if required {
                self.error(
                    name,
                    None,
                    format!("the [{name}] table is missing"),
                    format!("add a [{name}] table; `vpnbridge init` writes a complete example"),
                );
            }
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::Table(table) => {
                let section = Section { schema, table, span: Some(v.span()) };
                self.unknown_keys(&section);
                Ok(Some(section))
            }
            _ => {
                self.type_error(name, v, "a table", &format!("a [{name}] section"));
                Err(())
            }
        }
    }

    // -- the whole file ---------------------------------------------------------------------

    pub(super) fn check(&mut self, root: &DeTable<'_>, env: &dyn Fn(&str) -> Option<String>) -> Option<Config> {
        let top_section = Section { schema: &TOP, table: root, span: None };
        self.unknown_keys(&top_section);
        let top = self.top(&top_section, env);
        let mode = top.mode.unwrap_or(Mode::StaticHa);

        let azure = self.table(root, &AZURE, true).ok().flatten().map(|s| self.azure(&s, mode, env));
        let aws = self.table(root, &AWS, true).ok().flatten().map(|s| self.aws(&s, mode, top.tunnels_per_connection));
        // `Some(None)`: no [probe]; `None`: a wrong one.
        let probe = match self.table(root, &PROBE, false) {
            Err(()) => None,
            Ok(None) => Some(None),
            Ok(Some(s)) => self.probe(&s, azure.as_ref()).map(Some),
        };
        if let (Some(az), Some(aw)) = (&azure, &aws) {
            self.cross(az, aw, top.tunnels_per_connection);
        }

        // Assemble.
        let az: AzurePart = azure?;
        let aw: AwsPart = aws?;
        Some(Config {
            source: self.file.to_owned(),
            name: top.name?,
            mode: top.mode?,
            tunnels_per_connection: top.tunnels_per_connection?,
            psk: top.psk?,
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
}

/// The known word closest to `word`, if any is close enough to be a likely typo.
pub(super) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
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
pub(super) fn did_you_mean(word: &str, candidates: &[&str]) -> String {
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

/// The JSON Schema of `vpnbridge.toml` (as TOML read into JSON), from [`TABLES`]: each
/// key's type from its example, required keys, no unknown key. It checks the file's
/// shape for editors and scripts; the rules between values are [`super::load`]'s.
pub fn json_schema() -> schemars::Schema {
    fn of(key: &Key) -> serde_json::Value {
        let ex = key.example;
        let quoted: Vec<&str> = ex.split(" or ").map(|v| v.trim_matches('"')).collect();
        let mut s = if ex.starts_with('[') {
            serde_json::json!({"type": "array", "items": {"type": "string"}})
        } else if ex.starts_with('"') && quoted.len() > 1 {
            serde_json::json!({"type": "string", "enum": quoted})
        } else if ex.starts_with('"') {
            serde_json::json!({"type": "string"})
        } else if quoted.len() > 1 {
            let values: Vec<i64> = quoted.iter().filter_map(|v| v.parse().ok()).collect();
            serde_json::json!({"type": "integer", "enum": values})
        } else {
            serde_json::json!({"type": "integer", "minimum": 0})
        };
        // The example as a value (the first of "a or b").
        let first = ex.split(" or ").next().unwrap_or(ex);
        if let Ok(serde_json::Value::Object(mut v)) = toml::from_str::<serde_json::Value>(&format!("v = {first}")) {
            s["examples"] = serde_json::json!([v.remove("v")]);
        }
        s
    }
    fn table(t: &Table, subtables: &[&Table]) -> serde_json::Value {
        let mut properties: serde_json::Map<String, serde_json::Value> = t.keys.iter().map(|k| (k.name.to_owned(), of(k))).collect();
        for sub in subtables {
            properties.insert(sub.name.to_owned(), table(sub, &[]));
        }
        let mut required: Vec<&str> = t.keys.iter().filter(|k| k.required).map(|k| k.name).collect();
        // The clouds' tables must be there; [probe] is optional.
        required.extend(subtables.iter().filter(|s| s.keys.iter().any(|k| k.required) && s.name != PROBE.name).map(|s| s.name));
        serde_json::json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
    }
    let mut doc = table(&TOP, &TABLES[1..]);
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema".into();
    doc["title"] = "vpnbridge.toml".into();
    doc["description"] = "The config file of vpnbridge, read as TOML into JSON (generated from the key table of \
                          crates/core/src/config/schema.rs; `vpnbridge plan` checks the values too)"
        .into();
    schemars::Schema::try_from(doc).expect("an object is a schema")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::*;

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
    fn integers_in_other_radixes_and_with_underscores() {
        let c = parse_str(&replace("asn = 65000", "asn = 0xFDE8")).unwrap().config;
        assert_eq!(c.azure.asn, 65000);
        let c = parse_str(&replace("amazon_asn = 64512", "amazon_asn = 4_200_000_000")).unwrap().config;
        assert_eq!(c.aws.amazon_asn, 4_200_000_000);
        let errs = errors(&replace("asn = 65000", "asn = -65000"));
        assert!(errs.iter().any(|e| e.field == "azure.asn"));
    }

    #[test]
    fn closest_words() {
        let azure_keys: Vec<&str> = AZURE.keys.iter().map(|k| k.name).collect();
        assert_eq!(closest("gateway_skus", &azure_keys), Some("gateway_sku"));
        assert_eq!(closest("adress_space", &azure_keys), Some("address_space"));
        assert_eq!(closest("zzz", &azure_keys), None);
    }
}
