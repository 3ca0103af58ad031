//! The JSON Schemas of `--output json` (docs/schema/): generated from the report types,
//! checked in, and every document the tests see validated against its schema.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema")
}

/// The checked-in schemas, compiled once.
fn validators() -> &'static BTreeMap<String, jsonschema::Validator> {
    static V: OnceLock<BTreeMap<String, jsonschema::Validator>> = OnceLock::new();
    V.get_or_init(|| {
        vpnbridge::report::schemas()
            .into_iter()
            .map(|(name, _)| {
                let path = dir().join(name);
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
                (name.to_owned(), jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name}: {e}")))
            })
            .collect()
    })
}

/// Which schema a document follows: errors have one of their own, the rest say their
/// command (apply and destroy share one).
fn schema_of(doc: &serde_json::Value) -> String {
    if doc.get("error").is_some() {
        return "error.json".into();
    }
    match doc["command"].as_str() {
        Some("destroy") => "apply.json".into(),
        Some(c) => format!("{c}.json"),
        None => panic!("a JSON document without `command` or `error`:\n{doc:#}"),
    }
}

/// Panics, naming every violation, when `doc` does not follow its schema.
pub fn check(doc: &serde_json::Value) {
    let name = schema_of(doc);
    let v = validators().get(&name).unwrap_or_else(|| panic!("no schema {name} for:\n{doc:#}"));
    let errors: Vec<String> = v.iter_errors(doc).map(|e| format!("  {} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "the document does not follow docs/schema/{name}:\n{}\n{doc:#}", errors.join("\n"));
}

/// Regenerate with `VPNBRIDGE_BLESS=1 cargo test -p vpnbridge --test it schema`.
#[test]
fn the_checked_in_schemas_are_the_report_types() {
    let bless = std::env::var_os("VPNBRIDGE_BLESS").is_some();
    let mut stale = Vec::new();
    for (name, schema) in vpnbridge::report::schemas() {
        let path = dir().join(name);
        let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if bless {
            std::fs::create_dir_all(dir()).unwrap();
            std::fs::write(&path, &generated).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(generated.as_str()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "docs/schema/ differs from the report types for {stale:?}: a report changed. Check that it only gained fields \
         (format_version 1 promises that), then regenerate with `VPNBRIDGE_BLESS=1 cargo test -p vpnbridge --test it schema`"
    );
}

#[test]
fn a_document_missing_a_field_or_with_a_wrong_type_is_refused() {
    let ok = serde_json::json!({"format_version": 1, "error": {"kind": "config", "messages": ["x"], "count": 1}});
    check(&ok);
    let v = &validators()["error.json"];
    assert!(!v.is_valid(&serde_json::json!({"format_version": 1, "error": {"kind": "config"}})));
    assert!(!v.is_valid(&serde_json::json!({"format_version": "1", "error": {"kind": "config", "messages": []}})));
}

/// `vpnbridge.toml` read as JSON, checked against docs/schema/vpnbridge.toml.json.
fn config_errors(text: &str) -> Vec<String> {
    let doc: serde_json::Value = toml::from_str(text).unwrap();
    validators()["vpnbridge.toml.json"].iter_errors(&doc).map(|e| format!("{e} at {}", e.instance_path())).collect()
}

#[test]
fn the_config_schema_takes_the_init_example_and_refuses_a_misspelt_key() {
    assert_eq!(config_errors(vpnbridge::EXAMPLE_CONFIG), Vec::<String>::new());
    let probe = format!("{}\n[probe]\nazure_vm = \"vm-test\"\naws_instance = \"i-0123456789abcdef0\"\n", vpnbridge::EXAMPLE_CONFIG);
    assert_eq!(config_errors(&probe), Vec::<String>::new());
    let misspelt = vpnbridge::EXAMPLE_CONFIG.replace("resource_group", "resource_gruop");
    assert!(config_errors(&misspelt).iter().any(|e| e.contains("resource_gruop")), "{:?}", config_errors(&misspelt));
    let wrong_type = vpnbridge::EXAMPLE_CONFIG.replacen("tunnels_per_connection = 1", "tunnels_per_connection = \"1\"", 1);
    assert_ne!(wrong_type, vpnbridge::EXAMPLE_CONFIG, "the example sets tunnels_per_connection");
    assert!(!config_errors(&wrong_type).is_empty());
}
