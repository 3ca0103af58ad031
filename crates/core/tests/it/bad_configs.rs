//! Every file under `tests/corpus/bad/` must be refused with the messages its header
//! names (field path, the fix), and never with a secret in them.

use std::path::Path;

use vpnbridge_core::config::{self, ConfigErrors};

use crate::corpus::{self, Case};

/// One file per category of mistake; the corpus must keep covering each.
const CATEGORIES: &[&str] = &[
    "overlap-azure-aws",
    "overlap-within-list",
    "sku-basic",
    "sku-non-az",
    "sku-unknown",
    "sku-generation-gw1az-gen2",
    "sku-generation-gw4az-gen1",
    "policy-based",
    "gateway-subnet-outside-vnet",
    "gateway-subnet-30",
    "tunnel-count",
    "asn-reserved",
    "asn-out-of-range",
    "asn-conflict",
    "amazon-asn-invalid",
    "psk-env-missing",
    "psk-env-bad",
    "psk-literal",
    "inside-cidr-not-30",
    "inside-cidr-reserved",
    "inside-cidr-duplicate",
    "inside-cidr-outside-apipa-bgp",
    "name-invalid",
    "rg-name-invalid",
    "vpc-id-malformed",
    "subscription-guid-malformed",
    "rtb-id-malformed",
    "syntax-error",
    "misspelled-key",
    "several-at-once",
    "location-unknown",
    "location-sovereign-without-endpoint",
    "region-unknown",
    "duplicate-key",
    "duplicate-table",
];

fn refuse(case: &Case) -> ConfigErrors {
    match config::parse(&case.text, &case.path, &case.lookup()) {
        Ok(loaded) => panic!("{} was accepted: {:?}", case.name(), loaded.config),
        Err(e) => e,
    }
}

#[test]
fn every_category_has_a_file() {
    let names: Vec<String> = corpus::cases("bad").iter().map(Case::name).collect();
    for c in CATEGORIES {
        assert!(names.iter().any(|n| n == c), "tests/corpus/bad/{c}.toml is missing");
    }
}

#[test]
fn every_bad_config_is_refused_with_the_expected_messages() {
    let mut failures = Vec::new();
    for case in corpus::cases("bad") {
        assert!(!case.expect.is_empty(), "{}: no `# expect:` line", case.name());
        let errors = refuse(&case);
        let shown = format!("{errors}");
        let debug = format!("{errors:?}");
        for e in &case.expect {
            if !shown.contains(e.as_str()) {
                failures.push(format!("{}: expected {e:?} in:\n{shown}", case.name()));
            }
        }
        for n in &case.not {
            if shown.contains(n.as_str()) || debug.contains(n.as_str()) {
                failures.push(format!("{}: {n:?} must not be shown, but is:\n{shown}", case.name()));
            }
        }
        if let Some(count) = case.count
            && errors.0.len() != count
        {
            failures.push(format!("{}: expected {count} errors, got {}:\n{shown}", case.name(), errors.0.len()));
        }
        for e in &errors.0 {
            if e.problem.is_empty() || e.fix.is_empty() {
                failures.push(format!("{}: an error without a problem or a fix: {e:?}", case.name()));
            }
            if e.file != case.path {
                failures.push(format!("{}: error names file {}", case.name(), e.file.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn errors_carry_field_and_position() {
    let case = corpus::cases("bad").into_iter().find(|c| c.name() == "sku-basic").unwrap();
    let errors = refuse(&case);
    let e = &errors.0[0];
    assert_eq!(e.field, "azure.gateway_sku");
    let line = case.text.lines().position(|l| l.starts_with("gateway_sku")).unwrap() + 1;
    assert_eq!(e.line, Some(line));
    assert_eq!(e.column, Some(15));
}

#[test]
fn syntax_error_has_line_and_column_and_nothing_else() {
    let case = corpus::cases("bad").into_iter().find(|c| c.name() == "syntax-error").unwrap();
    let errors = refuse(&case);
    assert_eq!(errors.0.len(), 1);
    let e = &errors.0[0];
    assert_eq!(e.field, "");
    assert_eq!((e.line, e.column), (Some(18), Some(15)));
}

#[test]
fn several_errors_come_in_file_order() {
    let case = corpus::cases("bad").into_iter().find(|c| c.name() == "several-at-once").unwrap();
    let errors = refuse(&case);
    let lines: Vec<usize> = errors.0.iter().map(|e| e.line.expect("every error here has a line")).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
    let shown = errors.to_string();
    for i in 1..=errors.0.len() {
        assert!(shown.contains(&format!("\n{i}. ")) || shown.starts_with(&format!("{i}. ")), "error {i} not numbered:\n{shown}");
    }
}

#[test]
fn load_reads_the_file_and_reports_its_path() {
    let path = corpus::dir("bad").join("sku-basic.toml");
    let errors = config::load(&path).unwrap_err();
    assert_eq!(errors.0[0].file, path);
    assert!(errors.to_string().contains("sku-basic.toml:"));
}

#[test]
fn a_missing_file_suggests_init() {
    let errors = config::load(Path::new("/nonexistent/vpnbridge.toml")).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    let shown = errors.to_string();
    assert!(shown.contains("/nonexistent/vpnbridge.toml"), "{shown}");
    assert!(shown.contains("vpnbridge init"), "{shown}");
}
