//! Inputs that used to slip through: locations and regions that do not exist, files
//! too large to check quickly, duplicate keys. Each is refused (or warned about) with
//! the field, the place and the fix.

use std::path::Path;
use std::time::Instant;

use vpnbridge_core::config::{self, ConfigErrors, EXAMPLE, Loaded, MAX_CONFIG_BYTES, SHOWN_ERRORS};

fn parse(text: &str) -> Result<Loaded, ConfigErrors> {
    config::parse(text, Path::new("t.toml"), &|_| None)
}

fn with(pairs: &[(&str, &str)]) -> String {
    let mut text = EXAMPLE.to_owned();
    for (old, new) in pairs {
        assert!(text.contains(old), "{old} not in the example");
        text = text.replacen(old, new, 1);
    }
    text
}

#[test]
fn a_misspelled_location_or_region_is_refused_with_a_suggestion() {
    let e = parse(&with(&[("location = \"japaneast\"", "location = \"japanest\"")])).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].field, "azure.location");
    assert!(e.0[0].problem.contains("\"japanest\" is not an Azure location"), "{e}");
    assert!(e.0[0].fix.contains("did you mean \"japaneast\" or \"japanwest\"?"), "{e}");

    let e = parse(&with(&[("region = \"ap-northeast-1\"", "region = \"ap-northest-1\"")])).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].field, "aws.region");
    assert!(e.0[0].problem.contains("\"ap-northest-1\" is not an AWS region"), "{e}");
    assert!(e.0[0].fix.contains("did you mean \"ap-northeast-1\"?"), "{e}");

    // Well-formed but unknown, with nothing close: the fix says where the names come from.
    let e = parse(&with(&[("region = \"ap-northeast-1\"", "region = \"xx-nowhere-9\"")])).unwrap_err();
    assert!(e.0[0].fix.contains("describe-regions"), "{e}");
    let e = parse(&with(&[("location = \"japaneast\"", "location = \"atlantis\"")])).unwrap_err();
    assert!(e.0[0].fix.contains("az account list-locations"), "{e}");
}

#[test]
fn sovereign_clouds_take_their_own_locations_and_regions() {
    // Azure Government and Azure China need their ARM endpoint; then their locations are fine.
    let gov = with(&[
        ("location = \"japaneast\"", "location = \"usgovvirginia\""),
        ("region = \"ap-northeast-1\"", "region = \"us-gov-east-1\""),
    ]);
    let e = parse(&gov).unwrap_err();
    assert!(e.0[0].fix.contains("https://management.usgovcloudapi.net"), "{e}");
    let gov = gov.replacen("endpoint = \"\"", "endpoint = \"https://management.usgovcloudapi.net\"", 1);
    let loaded = parse(&gov).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    let china = with(&[
        ("location = \"japaneast\"", "location = \"chinaeast2\""),
        ("region = \"ap-northeast-1\"", "region = \"cn-north-1\""),
        ("endpoint = \"\"", "endpoint = \"https://management.chinacloudapi.cn\""),
    ]);
    parse(&china).unwrap();
    // A public location is not one of Azure China's.
    let e = parse(&china.replacen("chinaeast2", "westeurope", 1)).unwrap_err();
    assert!(e.0[0].problem.contains("Azure China"), "{e}");

    // Another endpoint (a local fake, Azure Stack Hub): every known location is accepted,
    // an unknown one is only warned about.
    let fake = with(&[("endpoint = \"\"", "endpoint = \"http://127.0.0.1:8443\"")]);
    parse(&fake.replacen("japaneast", "usgovtexas", 1)).unwrap();
    let loaded = parse(&fake.replacen("japaneast", "japanest", 1)).unwrap();
    assert!(
        loaded.warnings.iter().any(|w| w.field == "azure.location" && w.message.contains("did you mean \"japaneast\" or \"japanwest\"?")),
        "{:?}",
        loaded.warnings
    );

    // Every AWS partition's regions are AWS regions.
    for region in ["us-gov-west-1", "cn-northwest-1", "eusc-de-east-1", "us-isob-east-1", "mx-central-1", "ap-southeast-7"] {
        let text = with(&[("region = \"ap-northeast-1\"", &format!("region = \"{region}\""))]);
        assert!(parse(&text).is_ok(), "{region}");
    }
}

#[test]
fn sides_on_different_continents_are_warned_about() {
    let loaded = parse(&with(&[("location = \"japaneast\"", "location = \"westeurope\"")])).unwrap();
    let w = loaded.warnings.iter().find(|w| w.field == "aws.region").expect("a warning about the distance");
    assert!(w.message.contains("westeurope") && w.message.contains("ap-northeast-1"), "{w}");
    assert!(w.message.contains("Europe") && w.message.contains("Asia"), "{w}");
    assert!(w.message.contains("cross continents"), "{w}");
    // Same area: no warning.
    let loaded = parse(&with(&[("location = \"japaneast\"", "location = \"westeurope\""), ("ap-northeast-1", "eu-west-1")])).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

/// A config just under 1 MiB with thousands of unknown keys and of CIDRs (each listed
/// twice): every problem is found, the display is capped with a count of the rest.
#[test]
fn a_large_config_is_checked_in_linear_time_and_every_error_is_counted() {
    let keys = 12_000;
    let pairs = 10_000;
    let mut text = String::new();
    for i in 0..keys {
        text.push_str(&format!("unknown_key_{i:05} = 1\n"));
    }
    let list: Vec<String> =
        (0..2 * pairs).map(|i| i / 2).map(|i| format!("\"10.{}.{}.{}/26\"", 128 + i / 1024, (i / 4) % 256, (i % 4) * 64)).collect();
    text.push_str(&EXAMPLE.replacen("cidrs = [\"10.2.0.0/16\"]", &format!("cidrs = [{}]", list.join(", ")), 1));
    assert!((text.len() as u64) < MAX_CONFIG_BYTES, "{} bytes", text.len());
    let started = Instant::now();
    let e = parse(&text).unwrap_err();
    eprintln!("{} bytes, {} errors, checked in {:?}", text.len(), e.0.len(), started.elapsed());
    assert_eq!(e.0.iter().filter(|e| e.field.starts_with("unknown_key_")).count(), keys);
    assert_eq!(e.0.iter().filter(|e| e.field.starts_with("aws.cidrs[") && e.problem.ends_with("is listed twice")).count(), pairs);
    assert_eq!(e.0.iter().filter(|e| e.field == "aws.cidrs" && e.problem.contains("lists 20000 prefixes")).count(), 1);
    // The first errors in full, then a line saying how many more, then the total.
    let shown = e.to_string();
    let total = keys + pairs + 1;
    assert_eq!(e.0.len(), total);
    assert!(shown.contains(&format!("\n{SHOWN_ERRORS}. ")), "{}", &shown[..2000]);
    assert!(!shown.contains(&format!("\n{}. ", SHOWN_ERRORS + 1)));
    assert!(shown.contains(&format!("... and {} more errors", total - SHOWN_ERRORS)), "{}", &shown[shown.len() - 500..]);
    assert!(shown.ends_with(&format!("{total} errors in t.toml")));
    assert_eq!(e.messages().len(), SHOWN_ERRORS + 1);

    // Every VPC CIDR inside the VNet is its own error, each with a free prefix to use.
    let inside: Vec<String> = (0..50).map(|i| format!("\"10.200.{i}.0/24\"")).collect();
    let text = with(&[
        ("address_space = [\"10.1.0.0/16\"]", "address_space = [\"10.0.0.0/8\"]"),
        ("cidrs = [\"10.2.0.0/16\"]", &format!("cidrs = [{}]", inside.join(", "))),
    ]);
    let e = parse(&text).unwrap_err();
    assert_eq!(e.0.len(), 50, "{e}");
    for err in &e.0 {
        assert!(err.problem.contains("overlaps azure.address_space 10.0.0.0/8") && err.fix.contains("172.16.0.0/24 is free"), "{err}");
    }
}

#[test]
fn long_prefix_lists_are_refused_by_the_clouds_limits_and_still_checked_in_full() {
    let list: Vec<String> = (0..20_000).map(|i| format!("\"10.{}.{}.{}/26\"", 128 + i / 1024, (i / 4) % 256, (i % 4) * 64)).collect();
    let text = with(&[("cidrs = [\"10.2.0.0/16\"]", &format!("cidrs = [{}, \"10.128.0.0/16\"]", list.join(", ")))]);
    let e = parse(&text).unwrap_err();
    assert_eq!(e.0.len(), 2, "{e}");
    assert_eq!(e.0[0].field, "aws.cidrs");
    assert!(e.0[0].problem.contains("lists 20001 prefixes") && e.0[0].problem.contains("at most 50"), "{e}");
    assert_eq!(e.0[1].field, "aws.cidrs[20000]");
    assert!(e.0[1].problem.contains("10.128.0.0/16 contains 10.128.0.0/26 of the same list"), "{e}");
    // At the limits, both lists are fine.
    let vpc: Vec<String> = list.iter().take(50).cloned().collect();
    let vnet: Vec<String> = (0..100).map(|i| format!("\"10.1.{i}.0/24\"")).collect();
    let text = with(&[
        ("cidrs = [\"10.2.0.0/16\"]", &format!("cidrs = [{}]", vpc.join(", "))),
        ("address_space = [\"10.1.0.0/16\"]", &format!("address_space = [{}]", vnet.join(", "))),
        ("gateway_subnet = \"10.1.255.0/27\"", "gateway_subnet = \"10.1.99.0/27\""),
    ]);
    parse(&text).unwrap();
    let e = parse(&text.replacen("\"10.1.99.0/24\"]", "\"10.1.99.0/24\", \"10.1.100.0/24\"]", 1)).unwrap_err();
    assert!(e.0[0].field == "azure.address_space" && e.0[0].problem.contains("at most 100 per connection"), "{e}");
}

#[test]
fn files_over_one_mebibyte_are_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.toml");
    let mut text = EXAMPLE.to_owned();
    while (text.len() as u64) <= MAX_CONFIG_BYTES {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&path, &text).unwrap();
    let e = config::load(&path).unwrap_err();
    assert_eq!(e.0.len(), 1);
    let shown = e.to_string();
    assert!(shown.contains("huge.toml"), "{shown}");
    assert!(shown.contains(&format!("{} bytes", text.len())), "{shown}");
    assert!(shown.contains("1 MiB"), "{shown}");
    // The same limit holds for text handed to `parse` directly.
    let e = parse(&text).unwrap_err();
    assert!(e.to_string().contains("1 MiB"), "{e}");
}

#[test]
fn a_directory_is_not_a_config_file() {
    let e = config::load(&std::env::temp_dir()).unwrap_err();
    assert!(e.to_string().contains("is a directory"), "{e}");
}

#[test]
fn a_duplicate_key_names_the_key_and_both_lines() {
    let text = with(&[("vnet = \"vnet-hub\"", "vnet = \"vnet-hub\"\nvnet = \"vnet-spoke\"")]);
    let e = parse(&text).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    let first = text.lines().position(|l| l.starts_with("vnet = ")).unwrap() + 1;
    assert_eq!(e.0[0].field, "azure.vnet");
    assert_eq!(e.0[0].line, Some(first + 1));
    assert!(e.0[0].problem.contains(&format!("is set twice (first on line {first})")), "{e}");
    // Top-level keys and keys that also exist in the other table are told apart.
    let text = with(&[("endpoint = \"\"\n\n[aws]", "endpoint = \"\"\n\n[aws]\nendpoint = \"\"")]);
    let text = text.replacen("# EC2 endpoint override; \"\" = the default (or AWS_ENDPOINT_URL*).\nendpoint = \"\"", "", 1);
    let text = format!("{text}endpoint = \"\"\n");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.0[0].field, "aws.endpoint", "{e}");
    let e = parse(&format!("name = \"a\"\n{EXAMPLE}")).unwrap_err();
    assert_eq!(e.0[0].field, "name", "{e}");
    assert!(e.0[0].problem.contains("first on line 1"), "{e}");
}
