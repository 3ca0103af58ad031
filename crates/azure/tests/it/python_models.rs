//! The fake's responses and the adapter's request bodies read through Microsoft's own
//! models (Python `azure-mgmt-network`, which maps wire names): a misspelled or
//! misplaced field reads back as None. Needs a Python with `azure-mgmt-network`
//! (pinned to 33.1.0 by `cargo xtask fakes`): `$VPNBRIDGE_PYTHON`, else the build
//! cache's virtualenv (`$HOME/.cache/vpnbridge/venv`, where `cargo xtask fakes`
//! installs it). Runs by default; fails with a hint to run `cargo xtask fakes` when
//! the package is missing (the same convention as the AWS adapter's moto tests).

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use vpnbridge_armfake::ArmFakeConfig;
use vpnbridge_core::exec::Executor;
use vpnbridge_core::plan;

use vpnbridge_core::ops::AzureOp;

use super::reput::edit;
use super::workflow::{exec_settings, observe, world};

/// The Python to run the check with (see the module doc), checked to import
/// `azure.mgmt.network`.
fn python() -> std::path::PathBuf {
    let python = std::env::var_os("VPNBRIDGE_PYTHON").map(std::path::PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").expect("HOME is set");
        std::path::PathBuf::from(home).join(".cache/vpnbridge/venv/bin/python3")
    });
    let has_models = Command::new(&python)
        .args(["-c", "import azure.mgmt.network.models"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_models,
        "azure-mgmt-network is not installed for {} (or VPNBRIDGE_PYTHON is wrong): run `cargo xtask fakes` once",
        python.display()
    );
    python
}

fn doc(what: &str, model: &str, body: Value, expect: Vec<(&str, Value)>) -> Value {
    json!({ "what": what, "model": model, "body": body, "expect": expect.into_iter().map(|(p, v)| json!([p, v])).collect::<Vec<_>>() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shapes_read_through_microsofts_python_models() {
    let w = world(ArmFakeConfig::for_tests()).await;
    let executor = Executor::new(w.aws.clone(), w.azure.clone(), w.owner.clone(), exec_settings());
    let p = plan::plan_apply(&w.config, &observe(&w).await).unwrap_or_else(|e| panic!("plan: {e:?}"));
    assert!(executor.run(&p, |_| {}).await.succeeded());
    let o = observe(&w).await.azure;
    let gw = o.vpn_gateway.clone().expect("gateway");
    let pip0 = &o.public_ips[0];
    let lng = &o.local_network_gateways[0];
    let cn = &o.connections[0];
    let get = |kind: &str, name: &str| w.fake.resource(kind, name).unwrap_or_else(|| panic!("{kind}/{name}"));
    let subnet = o.vnet.as_ref().and_then(|v| v.gateway_subnet()).expect("GatewaySubnet").clone();
    let ip0 = pip0.ip.expect("address").to_string();
    let mut docs = vec![
        doc(
            "GET public IP",
            "PublicIPAddress",
            get("publicIPAddresses", &pip0.name),
            vec![
                ("properties.ip_address", json!(ip0)),
                ("properties.public_ip_allocation_method", json!("Static")),
                ("properties.provisioning_state", json!("Succeeded")),
                ("sku.name", json!("Standard")),
                ("zones[2]", json!("3")),
                ("tags.vpnbridge:deployment", json!(w.owner.deployment)),
            ],
        ),
        doc(
            "GET gateway",
            "VirtualNetworkGateway",
            get("virtualNetworkGateways", &gw.name),
            vec![
                ("properties.gateway_type", json!("Vpn")),
                ("properties.vpn_type", json!("RouteBased")),
                ("properties.vpn_gateway_generation", json!("Generation1")),
                ("properties.sku.name", json!("VpnGw1AZ")),
                ("properties.active_active", json!(true)),
                ("properties.enable_bgp", json!(false)),
                ("properties.provisioning_state", json!("Succeeded")),
                ("properties.ip_configurations[0].properties.public_ip_address.id", json!(gw.ip_configurations[0].public_ip_id)),
                ("properties.ip_configurations[1].properties.public_ip_address.id", json!(gw.ip_configurations[1].public_ip_id)),
                ("properties.ip_configurations[0].properties.subnet.id", json!(subnet.id)),
                ("properties.bgp_settings.bgp_peering_addresses[0].ipconfiguration_id", json!(gw.ip_configurations[0].id)),
                ("properties.bgp_settings.bgp_peering_addresses[0].tunnel_ip_addresses[0]", json!(ip0)),
            ],
        ),
        doc(
            "GET local network gateway",
            "LocalNetworkGateway",
            get("localNetworkGateways", &lng.name),
            vec![
                ("properties.gateway_ip_address", json!(lng.gateway_ip.to_string())),
                ("properties.local_network_address_space.address_prefixes[0]", json!("10.2.0.0/16")),
                ("properties.provisioning_state", json!("Succeeded")),
            ],
        ),
        doc(
            "GET connection",
            "VirtualNetworkGatewayConnection",
            get("connections", &cn.name),
            vec![
                ("properties.virtual_network_gateway1.id", json!(gw.id)),
                ("properties.local_network_gateway2.id", json!(cn.local_network_gateway_id)),
                ("properties.connection_type", json!("IPsec")),
                ("properties.connection_protocol", json!("IKEv2")),
                ("properties.dpd_timeout_seconds", json!(45)),
                ("properties.enable_bgp", json!(false)),
                ("properties.connection_status", json!(cn.connection_status)),
                ("properties.tunnel_connection_status[0].tunnel", json!(cn.tunnels[0].tunnel)),
                ("properties.tunnel_connection_status[0].connection_status", json!("Connected")),
                ("properties.tunnel_connection_status[0].ingress_bytes_transferred", json!(0)),
                ("properties.provisioning_state", json!("Succeeded")),
            ],
        ),
        doc(
            "GET VNet",
            "VirtualNetwork",
            get("virtualNetworks", "vnet-hub"),
            vec![
                ("properties.address_space.address_prefixes[0]", json!("10.1.0.0/16")),
                ("properties.subnets[0].name", json!("GatewaySubnet")),
                ("properties.subnets[0].properties.address_prefix", json!("10.1.255.0/27")),
                ("properties.subnets[0].properties.ip_configurations[0].id", json!(gw.ip_configurations[0].id)),
            ],
        ),
    ];
    // The adapter's request bodies, as the fake logged them (keys redacted).
    let log = w.fake.requests();
    let put = |kind: &str, name: &str| {
        log.iter()
            .find(|r| r.method == "PUT" && r.path.ends_with(&format!("/{kind}/{name}")))
            .and_then(|r| r.body.clone())
            .unwrap_or_else(|| panic!("no PUT of {kind}/{name}"))
    };
    docs.extend([
        doc(
            "PUT public IP",
            "PublicIPAddress",
            put("publicIPAddresses", &pip0.name),
            vec![
                ("location", json!("japaneast")),
                ("sku.name", json!("Standard")),
                ("sku.tier", json!("Regional")),
                ("zones[0]", json!("1")),
                ("properties.public_ip_allocation_method", json!("Static")),
                ("properties.public_ip_address_version", json!("IPv4")),
            ],
        ),
        doc(
            "PUT gateway",
            "VirtualNetworkGateway",
            put("virtualNetworkGateways", &gw.name),
            vec![
                ("properties.gateway_type", json!("Vpn")),
                ("properties.vpn_type", json!("RouteBased")),
                ("properties.vpn_gateway_generation", json!("Generation1")),
                ("properties.sku.name", json!("VpnGw1AZ")),
                ("properties.active_active", json!(true)),
                ("properties.enable_bgp", json!(false)),
                ("properties.ip_configurations[1].name", json!("ipconfig1")),
                ("properties.ip_configurations[1].properties.public_ip_address.id", json!(gw.ip_configurations[1].public_ip_id)),
                ("properties.ip_configurations[0].properties.subnet.id", json!(subnet.id)),
                ("properties.ip_configurations[0].properties.private_ip_allocation_method", json!("Dynamic")),
            ],
        ),
        doc(
            "PUT local network gateway",
            "LocalNetworkGateway",
            put("localNetworkGateways", &lng.name),
            vec![
                ("properties.gateway_ip_address", json!(lng.gateway_ip.to_string())),
                ("properties.local_network_address_space.address_prefixes[0]", json!("10.2.0.0/16")),
            ],
        ),
        doc(
            "PUT connection",
            "VirtualNetworkGatewayConnection",
            put("connections", &cn.name),
            vec![
                ("properties.virtual_network_gateway1.id", json!(gw.id)),
                ("properties.local_network_gateway2.id", json!(cn.local_network_gateway_id)),
                ("properties.connection_type", json!("IPsec")),
                ("properties.connection_protocol", json!("IKEv2")),
                ("properties.shared_key", json!("<redacted>")),
                ("properties.dpd_timeout_seconds", json!(45)),
                ("properties.enable_bgp", json!(false)),
            ],
        ),
    ]);
    // Re-PUTs: someone adds a tag and properties we do not model, then the adapter
    // resizes the gateway and PUTs a Connection again. The merged bodies it sends must
    // read back, through Microsoft's models, with both ours and theirs in place.
    edit(&w.fake, "virtualNetworkGateways", &gw.name, |g| {
        g["tags"]["owner"] = json!("alice");
        g["properties"]["natRules"] = json!([{ "name": "natRule1", "properties": { "type": "Static", "mode": "EgressSnat",
            "internalMappings": [{ "addressSpace": "10.10.0.0/24" }], "externalMappings": [{ "addressSpace": "50.0.0.0/24" }] } }]);
        g["properties"]["customRoutes"] = json!({ "addressPrefixes": ["101.168.0.6/32"] });
        g["properties"]["vpnClientConfiguration"] = json!({ "vpnClientProtocols": ["OpenVPN"] });
    })
    .await;
    edit(&w.fake, "connections", &cn.name, |c| {
        c["tags"]["owner"] = json!("alice");
        c["properties"]["ipsecPolicies"] = json!([{ "saLifeTimeSeconds": 3600, "saDataSizeKilobytes": 102400000,
            "ipsecEncryption": "AES256", "ipsecIntegrity": "SHA256", "ikeEncryption": "AES256", "ikeIntegrity": "SHA256",
            "dhGroup": "DHGroup14", "pfsGroup": "PFS2048" }]);
    })
    .await;
    let limit = std::time::Duration::from_secs(30);
    let resize = AzureOp::ResizeVpnGateway { name: gw.name.clone(), sku: "VpnGw2AZ".into() };
    vpnbridge_core::contract::run_to_end(&*w.azure, &resize, "resize", limit).await.expect("resize");
    let reput = AzureOp::PutConnection {
        name: cn.name.clone(),
        gateway: gw.name.clone(),
        local_network_gateway: lng.name.clone(),
        shared_key: cn.shared_key.clone().expect("key"),
        bgp: None,
        dpd_timeout_seconds: 45,
        tags: cn.tags.clone(),
    };
    vpnbridge_core::contract::run_to_end(&*w.azure, &reput, "re-PUT", limit).await.expect("re-PUT");
    let log = w.fake.requests();
    let last_put = |kind: &str, name: &str| {
        log.iter()
            .rev()
            .find(|r| r.method == "PUT" && r.path.ends_with(&format!("/{kind}/{name}")))
            .and_then(|r| r.body.clone())
            .unwrap_or_else(|| panic!("no PUT of {kind}/{name}"))
    };
    docs.extend([
        doc(
            "re-PUT gateway (resize)",
            "VirtualNetworkGateway",
            last_put("virtualNetworkGateways", &gw.name),
            vec![
                ("properties.sku.name", json!("VpnGw2AZ")),
                ("properties.sku.tier", json!("VpnGw2AZ")),
                ("properties.gateway_type", json!("Vpn")),
                ("properties.active_active", json!(true)),
                ("properties.ip_configurations[1].properties.public_ip_address.id", json!(gw.ip_configurations[1].public_ip_id)),
                ("properties.nat_rules[0].name", json!("natRule1")),
                ("properties.nat_rules[0].properties.mode", json!("EgressSnat")),
                ("properties.custom_routes.address_prefixes[0]", json!("101.168.0.6/32")),
                ("properties.vpn_client_configuration.vpn_client_protocols[0]", json!("OpenVPN")),
                ("properties.provisioning_state", Value::Null),
                ("tags.owner", json!("alice")),
                ("tags.vpnbridge:deployment", json!(w.owner.deployment)),
                ("location", json!("japaneast")),
            ],
        ),
        doc(
            "re-PUT connection",
            "VirtualNetworkGatewayConnection",
            last_put("connections", &cn.name),
            vec![
                ("properties.virtual_network_gateway1.id", json!(gw.id)),
                ("properties.connection_protocol", json!("IKEv2")),
                ("properties.shared_key", json!("<redacted>")),
                ("properties.ipsec_policies[0].ike_encryption", json!("AES256")),
                ("properties.ipsec_policies[0].pfs_group", json!("PFS2048")),
                ("properties.connection_status", Value::Null),
                ("properties.tunnel_connection_status", Value::Null),
                ("tags.owner", json!("alice")),
                ("tags.vpnbridge:role", json!(cn.tags["vpnbridge:role"])),
            ],
        ),
    ]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/check_models.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().expect("stdin").write_all(Value::Array(docs).to_string().as_bytes()).expect("write");
    let out = child.wait_with_output().expect("python3 finishes");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{text}");
    assert!(out.status.success(), "{text}");
}

/// bgp-ha's shapes through Microsoft's models: the gateway, LNG and Connection the
/// adapter sends and the fake answers with, and the results of `getBgpPeerStatus` and
/// `getLearnedRoutes` over an established session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bgp_shapes_read_through_microsofts_python_models() {
    use vpnbridge_azure::GatewayRead;
    use vpnbridge_core::endpoint::VpnEndpoint;

    let w = super::bgp::bgp_world(true, &[(0, 0)]).await;
    super::bgp::until_established(&w, 1).await;
    let o = w.azure.observe(&w.owner).await.expect("observe");
    let gw = o.vpn_gateway.clone().expect("gateway");
    let (cfg0, cfg1) = (gw.ip_configurations[0].id.clone(), gw.ip_configurations[1].id.clone());
    let ip0 =
        o.public_ips.iter().find(|p| p.id.eq_ignore_ascii_case(&gw.ip_configurations[0].public_ip_id)).and_then(|p| p.ip).expect("ip");
    let (lng, cn) = (w.lng(0, 0), w.connection(0, 0));
    let get = |kind: &str, name: &str| w.fake.resource(kind, name).unwrap_or_else(|| panic!("{kind}/{name}"));
    let log = w.fake.requests();
    let put = |kind: &str, name: &str| {
        log.iter()
            .find(|r| r.method == "PUT" && r.path.ends_with(&format!("/{kind}/{name}")))
            .and_then(|r| r.body.clone())
            .unwrap_or_else(|| panic!("no PUT of {kind}/{name}"))
    };
    let read = |what: GatewayRead| {
        let (azure, name) = (&w.azure, w.gateway());
        async move {
            let h = azure.start_gateway_read(&name, what).await.expect("the read starts");
            loop {
                if let Some(v) = azure.poll_gateway_read(&h).await.expect("poll") {
                    break v;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    let peers = read(GatewayRead::BgpPeerStatus).await;
    let routes = read(GatewayRead::LearnedRoutes).await;
    let connected = peers["value"].as_array().expect("value").iter().position(|p| p["state"] == "Connected").expect("a Connected peer");
    let ebgp = routes["value"].as_array().expect("value").iter().position(|r| r["origin"] == "EBgp").expect("an EBgp route");
    let at = |i: usize, field: &str| format!("value[{i}].{field}");
    let docs = vec![
        doc(
            "GET gateway (BGP)",
            "VirtualNetworkGateway",
            get("virtualNetworkGateways", &gw.name),
            vec![
                ("properties.enable_bgp", json!(true)),
                ("properties.bgp_settings.asn", json!(65000)),
                ("properties.bgp_settings.bgp_peering_address", json!("10.1.255.4,10.1.255.5")),
                ("properties.bgp_settings.peer_weight", json!(0)),
                ("properties.bgp_settings.bgp_peering_addresses[0].ipconfiguration_id", json!(cfg0)),
                ("properties.bgp_settings.bgp_peering_addresses[0].default_bgp_ip_addresses[0]", json!("10.1.255.4")),
                ("properties.bgp_settings.bgp_peering_addresses[0].custom_bgp_ip_addresses", json!(["169.254.21.2", "169.254.22.2"])),
                ("properties.bgp_settings.bgp_peering_addresses[0].tunnel_ip_addresses[0]", json!(ip0.to_string())),
                ("properties.bgp_settings.bgp_peering_addresses[1].ipconfiguration_id", json!(cfg1)),
                ("properties.bgp_settings.bgp_peering_addresses[1].custom_bgp_ip_addresses", json!(["169.254.21.6", "169.254.22.6"])),
            ],
        ),
        doc(
            "GET local network gateway (BGP)",
            "LocalNetworkGateway",
            get("localNetworkGateways", &lng),
            vec![
                ("properties.bgp_settings.asn", json!(64512)),
                ("properties.bgp_settings.bgp_peering_address", json!("169.254.21.1")),
                ("properties.bgp_settings.peer_weight", json!(0)),
                ("properties.local_network_address_space.address_prefixes", json!([])),
            ],
        ),
        doc(
            "GET connection (BGP)",
            "VirtualNetworkGatewayConnection",
            get("connections", &cn),
            vec![
                ("properties.enable_bgp", json!(true)),
                ("properties.gateway_custom_bgp_ip_addresses[0].ip_configuration_id", json!(cfg0)),
                ("properties.gateway_custom_bgp_ip_addresses[0].custom_bgp_ip_address", json!("169.254.21.2")),
                ("properties.gateway_custom_bgp_ip_addresses[1].ip_configuration_id", json!(cfg1)),
                ("properties.gateway_custom_bgp_ip_addresses[1].custom_bgp_ip_address", json!("169.254.21.6")),
                ("properties.connection_status", json!("Connected")),
            ],
        ),
        doc(
            "PUT gateway (BGP)",
            "VirtualNetworkGateway",
            put("virtualNetworkGateways", &gw.name),
            vec![
                ("properties.enable_bgp", json!(true)),
                ("properties.active_active", json!(true)),
                ("properties.bgp_settings.asn", json!(65000)),
                ("properties.bgp_settings.bgp_peering_addresses[0].ipconfiguration_id", json!(cfg0)),
                ("properties.bgp_settings.bgp_peering_addresses[0].custom_bgp_ip_addresses", json!(["169.254.21.2", "169.254.22.2"])),
                ("properties.bgp_settings.bgp_peering_addresses[1].ipconfiguration_id", json!(cfg1)),
                ("properties.bgp_settings.bgp_peering_addresses[1].custom_bgp_ip_addresses", json!(["169.254.21.6", "169.254.22.6"])),
            ],
        ),
        doc(
            "PUT local network gateway (BGP)",
            "LocalNetworkGateway",
            put("localNetworkGateways", &lng),
            vec![
                ("properties.bgp_settings.asn", json!(64512)),
                ("properties.bgp_settings.bgp_peering_address", json!("169.254.21.1")),
                ("properties.local_network_address_space.address_prefixes", json!([])),
            ],
        ),
        doc(
            "PUT connection (BGP)",
            "VirtualNetworkGatewayConnection",
            put("connections", &cn),
            vec![
                ("properties.enable_bgp", json!(true)),
                ("properties.gateway_custom_bgp_ip_addresses[0].ip_configuration_id", json!(cfg0)),
                ("properties.gateway_custom_bgp_ip_addresses[0].custom_bgp_ip_address", json!("169.254.21.2")),
                ("properties.gateway_custom_bgp_ip_addresses[1].ip_configuration_id", json!(cfg1)),
                ("properties.gateway_custom_bgp_ip_addresses[1].custom_bgp_ip_address", json!("169.254.21.6")),
            ],
        ),
        doc(
            "getBgpPeerStatus result",
            "BgpPeerStatusListResult",
            peers.clone(),
            vec![
                (&at(connected, "local_address"), json!("169.254.21.2")),
                (&at(connected, "neighbor"), json!("169.254.21.1")),
                (&at(connected, "asn"), json!(64512)),
                (&at(connected, "state"), json!("Connected")),
                (&at(connected, "routes_received"), json!(1)),
                (&at(connected, "connected_duration"), peers["value"][connected]["connectedDuration"].clone()),
                (&at(connected, "messages_sent"), peers["value"][connected]["messagesSent"].clone()),
            ],
        ),
        doc(
            "getLearnedRoutes result",
            "GatewayRouteListResult",
            routes.clone(),
            vec![
                ("value[0].origin", json!("Network")),
                ("value[0].network", json!("10.1.0.0/16")),
                ("value[0].next_hop", Value::Null),
                ("value[0].as_path", json!("")),
                (&at(ebgp, "local_address"), json!("169.254.21.2")),
                (&at(ebgp, "network"), json!("10.2.0.0/16")),
                (&at(ebgp, "next_hop"), json!("169.254.21.1")),
                (&at(ebgp, "source_peer"), json!("169.254.21.1")),
                (&at(ebgp, "as_path"), json!("64512")),
                (&at(ebgp, "weight"), json!(32768)),
            ],
        ),
    ];
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/check_models.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().expect("stdin").write_all(Value::Array(docs).to_string().as_bytes()).expect("write");
    let out = child.wait_with_output().expect("python3 finishes");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{text}");
    assert!(out.status.success(), "{text}");
}
