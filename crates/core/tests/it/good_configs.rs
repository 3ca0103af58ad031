//! Configs that must load: the example `vpnbridge init` writes and `tests/corpus/good/`.

use std::path::Path;

use vpnbridge_core::config::{self, EXAMPLE, Loaded};
use vpnbridge_core::config::{Backend, GatewaySku, Generation, Mode, PskSource};

use crate::corpus::{self, Case};

fn accept(case: &Case) -> Loaded {
    match config::parse(&case.text, &case.path, &case.lookup()) {
        Ok(loaded) => loaded,
        Err(e) => panic!("{} was refused:\n{e}", case.name()),
    }
}

fn good(name: &str) -> Loaded {
    let case = corpus::cases("good").into_iter().find(|c| c.name() == name).unwrap();
    accept(&case)
}

#[test]
fn the_example_loads_cleanly_on_the_simulator() {
    let loaded = config::parse(EXAMPLE, Path::new("vpnbridge.toml"), &|_| None).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!((c.azure.backend, c.aws.backend), (Backend::Sim, Backend::Sim));
    assert_eq!(c.name, "azure-aws");
    assert_eq!(c.tunnel_count(), 2);
    assert_eq!(c.psk, PskSource::Generate);
    assert_eq!(c.azure.gateway_subnet.to_string(), "10.1.255.0/27");
    assert_eq!(c.aws.vpc_id, "vpc-0123456789abcdef0");
}

#[test]
fn the_example_ignores_the_environment_it_does_not_need() {
    // A developer's real subscription in the shell must not break the simulator example.
    let env = |k: &str| (k == "AZURE_SUBSCRIPTION_ID").then(|| "11111111-2222-3333-4444-555555555555".to_owned());
    assert!(config::parse(EXAMPLE, Path::new("vpnbridge.toml"), &env).is_ok());
}

#[test]
fn every_good_config_loads() {
    for case in corpus::cases("good") {
        accept(&case);
    }
}

#[test]
fn bgp_ha_fills_in_the_apipa_inside_cidrs() {
    let c = good("bgp-ha").config;
    assert_eq!(c.mode, Mode::BgpHa);
    assert_eq!(c.tunnels_per_connection, 2);
    let inside: Vec<String> = c.aws.tunnel_inside_cidrs.iter().map(ToString::to_string).collect();
    assert_eq!(inside, ["169.254.21.0/30", "169.254.22.0/30", "169.254.21.4/30", "169.254.22.4/30"]);
    assert_eq!((c.azure.asn, c.aws.amazon_asn), (65000, 64512));
    assert_eq!((c.azure.gateway_sku, c.azure.gateway_generation), (GatewaySku::VpnGw2AZ, Generation::Generation2));
    assert_eq!(c.aws.route_tables.len(), 2);
}

#[test]
fn env_psk_is_read_at_load_time_and_never_printed() {
    let loaded = good("env-psk");
    let c = &loaded.config;
    match &c.psk {
        PskSource::Env { var, key } => {
            assert_eq!(var, "VPNBRIDGE_CORPUS_PSK");
            assert_eq!(key.expose(), "Good.Key_2024");
        }
        other => panic!("psk: {other:?}"),
    }
    assert!(!format!("{loaded:?}").contains("Good.Key_2024"));
    assert_eq!((c.azure.backend, c.aws.backend), (Backend::Real, Backend::Real));
    assert_eq!(c.azure.subscription_id, "0a1b2c3d-0000-4000-8000-00000000abcd");
    assert_eq!(c.tunnel_count(), 4);
    assert_eq!(c.layout().pins(1)[0].map(|n| n.to_string()).as_deref(), Some("169.254.11.0/30"));
    assert_eq!(c.azure.endpoint.as_deref(), Some("https://management.azure.com"));
}

#[test]
fn the_readme_example_is_the_init_example() {
    // README's quickstart runs examples/vpnbridge.toml; `vpnbridge init` writes EXAMPLE.
    assert_eq!(include_str!("../../../../examples/vpnbridge.toml"), vpnbridge_core::config::EXAMPLE);
}

#[test]
fn the_example_file_loads_with_no_error_and_no_warning() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/vpnbridge.toml");
    let loaded = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.config.name, "azure-aws");
}

fn with_probe(table: &str) -> Result<Loaded, config::ConfigErrors> {
    config::parse(&format!("{EXAMPLE}\n{table}"), Path::new("probe.toml"), &|_| None)
}

#[test]
fn the_probe_table_is_optional_and_names_both_vms() {
    assert!(config::parse(EXAMPLE, Path::new("x.toml"), &|_| None).unwrap().config.probe.is_none());
    let c = with_probe("[probe]\nazure_vm = \"vm-test\"\naws_instance = \"i-0123456789abcdef0\"\n").unwrap().config;
    let p = c.probe.unwrap();
    assert_eq!(p.aws_instance, "i-0123456789abcdef0");
    assert_eq!(
        p.azure_vm.id(),
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-vpn/providers/Microsoft.Compute/virtualMachines/vm-test"
    );
    let id = "/subscriptions/0a1b2c3d-0000-4000-8000-00000000abcd/resourceGroups/rg-vms/providers/Microsoft.Compute/virtualMachines/vm-1";
    let c = with_probe(&format!("[probe]\nazure_vm = \"{id}\"\naws_instance = \"i-01234567\"\n")).unwrap().config;
    let vm = c.probe.unwrap().azure_vm;
    assert_eq!((vm.resource_group.as_str(), vm.name.as_str()), ("rg-vms", "vm-1"));
    assert_eq!(vm.id(), id);
}

#[test]
fn a_wrong_probe_table_names_the_field_and_the_fix() {
    let errors = |t: &str| with_probe(t).unwrap_err().0;
    let e = errors("[probe]\nazure_vm = \"vm test\"\naws_instance = \"vm-0123\"\n");
    let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["probe.azure_vm", "probe.aws_instance"], "{e:?}");
    assert!(e[0].fix.contains("resource id"), "{:?}", e[0]);
    assert!(e[1].problem.contains("EC2 instance id") && e[1].fix.contains("i-0123456789abcdef0"), "{:?}", e[1]);
    let e = errors("[probe]\nazure_vm = \"vm-test\"\n");
    assert_eq!(e[0].field, "probe.aws_instance");
    assert!(e[0].fix.contains("aws_instance = \"i-0123456789abcdef0\""), "{:?}", e[0]);
    let e = errors(
        "[probe]\nazure_vm = \"/subscriptions/x/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v\"\naws_instance = \"i-01234567\"\nvm = 1\n",
    );
    assert!(e.iter().any(|e| e.field == "probe.azure_vm" && e.problem.contains("not a virtual machine resource id")), "{e:?}");
    assert!(e.iter().any(|e| e.field == "probe.vm" && e.problem.contains("unknown key")), "{e:?}");
}
