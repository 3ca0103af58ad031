use std::net::Ipv4Addr;
use std::path::Path;

use super::*;
use crate::config;
use crate::model::{AttachmentState, AwsState, Role};
use crate::model::{
    AwsTunnelOptions, Connection, CustomerGateway, GatewayIpConfiguration, LocalNetworkGateway, PublicIp, RouteTable, Subnet,
    VgwAttachment, VirtualNetwork, VirtualNetworkGateway, Vpc, VpcRoute, VpnConnection, VpnConnectionRoute, VpnGateway,
};
use crate::ops::Late;
use crate::pairing::{self};
use crate::secret::Psk;

fn config(extra_env: Option<&str>) -> Config {
    let text =
        config::EXAMPLE.replace("psk = \"generate\"", if extra_env.is_some() { "psk = \"env:VPN_PSK\"" } else { "psk = \"generate\"" });
    let env = move |k: &str| (k == "VPN_PSK").then(|| extra_env.unwrap_or_default().to_owned());
    config::parse(&text, Path::new("vpnbridge.toml"), &env).expect("example is valid").config
}

/// The user's prerequisites only: a VNet with a GatewaySubnet and a VPC.
fn prerequisites() -> Observed {
    let mut o = Observed::default();
    o.azure.vnet = Some(VirtualNetwork {
        id: "/subscriptions/s/resourceGroups/rg-vpn/providers/Microsoft.Network/virtualNetworks/vnet-hub".into(),
        name: "vnet-hub".into(),
        address_space: vec!["10.1.0.0/16".parse().unwrap()],
        subnets: vec![Subnet {
            id: "gs".into(),
            name: "GatewaySubnet".into(),
            prefix: "10.1.255.0/27".parse().unwrap(),
            ip_configurations: vec![],
        }],
    });
    o.aws.vpc = Some(Vpc {
        id: "vpc-0123456789abcdef0".into(),
        cidrs: vec!["10.2.0.0/16".parse().unwrap()],
        route_tables: vec![RouteTable {
            id: "rtb-0000000000000main".into(),
            main: true,
            routes: vec![VpcRoute {
                propagated: false,
                destination: "10.2.0.0/16".parse().unwrap(),
                gateway_id: Some("local".into()),
                state: "active".into(),
            }],
            propagating_vgws: vec![],
        }],
    });
    o
}

fn tags(role: Role) -> crate::model::Tags {
    Owner::new("azure-aws").tags(&role)
}

/// What a finished deployment looks like, built by hand.
fn finished(psk: &str) -> Observed {
    let mut o = prerequisites();
    let key = Psk::new(psk).unwrap();
    for k in 0..2u8 {
        o.azure.public_ips.push(PublicIp {
            id: format!("pip-id-{k}"),
            name: format!("azure-aws-pip-{k}"),
            ip: Some(Ipv4Addr::new(20, 0, 0, 10 + k)),
            sku: "Standard".into(),
            static_allocation: true,
            zones: vec!["1".into(), "2".into(), "3".into()],
            state: ProvisioningState::Succeeded,
            tags: tags(Role::PublicIp(k)),
        });
        o.aws.customer_gateways.push(CustomerGateway {
            id: format!("cgw-{k}"),
            state: AwsState::Available,
            ip: Ipv4Addr::new(20, 0, 0, 10 + k),
            bgp_asn: 65000,
            device_name: None,
            tags: tags(Role::CustomerGateway(k)),
        });
        let outside = |t: u8| Ipv4Addr::new(3, 0, k, 1 + t);
        o.aws.vpn_connections.push(VpnConnection {
            id: format!("vpn-{k}"),
            state: AwsState::Available,
            customer_gateway_id: format!("cgw-{k}"),
            vpn_gateway_id: "vgw-1".into(),
            static_routes_only: true,
            tunnels: (0..2)
                .map(|t| AwsTunnelOptions {
                    outside_ip: outside(t),
                    inside_cidr: None,
                    psk: Some(key.clone()),
                    ike_versions: vec!["ikev2".into()],
                })
                .collect(),
            routes: vec![VpnConnectionRoute { destination: "10.1.0.0/16".parse().unwrap(), state: AwsState::Available }],
            telemetry: vec![],
            tags: tags(Role::VpnConnection(k)),
        });
        o.azure.local_network_gateways.push(LocalNetworkGateway {
            bgp: None,
            id: format!("lng-id-{k}"),
            name: format!("azure-aws-lng-{k}-0"),
            gateway_ip: outside(0),
            address_prefixes: vec!["10.2.0.0/16".parse().unwrap()],
            state: ProvisioningState::Succeeded,
            tags: tags(Role::LocalNetworkGateway(k, 0)),
        });
        o.azure.connections.push(Connection {
            custom_bgp_addresses: Vec::new(),
            id: format!("cn-id-{k}"),
            name: format!("azure-aws-cn-{k}-0"),
            gateway_id: "gw-id".into(),
            local_network_gateway_id: format!("lng-id-{k}"),
            protocol: "IKEv2".into(),
            shared_key: Some(key.clone()),
            enable_bgp: false,
            state: ProvisioningState::Succeeded,
            connection_status: "Connected".into(),
            tunnels: vec![],
            tags: tags(Role::Connection(k, 0)),
        });
    }
    o.azure.vpn_gateway = Some(VirtualNetworkGateway {
        bgp_peering_addresses: Vec::new(),
        id: "gw-id".into(),
        name: "azure-aws-vpngw".into(),
        sku: "VpnGw1AZ".into(),
        generation: "Generation1".into(),
        vpn_type: "RouteBased".into(),
        active_active: true,
        enable_bgp: false,
        asn: None,
        // Listed in the gateway's order; public IP 1 first on purpose.
        ip_configurations: vec![
            GatewayIpConfiguration { id: "c0".into(), name: "ipconfig-0".into(), public_ip_id: "pip-id-0".into() },
            GatewayIpConfiguration { id: "c1".into(), name: "ipconfig-1".into(), public_ip_id: "pip-id-1".into() },
        ],
        state: ProvisioningState::Succeeded,
        tags: tags(Role::VpnGateway),
    });
    o.aws.vpn_gateways.push(VpnGateway {
        id: "vgw-1".into(),
        state: AwsState::Available,
        amazon_asn: 64512,
        attachments: vec![VgwAttachment { vpc_id: "vpc-0123456789abcdef0".into(), state: AttachmentState::Attached }],
        tags: tags(Role::VirtualPrivateGateway),
    });
    o.aws.vpc.as_mut().unwrap().route_tables[0].routes.push(VpcRoute {
        propagated: false,
        destination: "10.1.0.0/16".parse().unwrap(),
        gateway_id: Some("vgw-1".into()),
        state: "active".into(),
    });
    o
}

#[test]
fn fresh_deployment_plan() {
    let plan = plan_apply(&config(None), &prerequisites()).unwrap();
    let c = plan.counts();
    assert_eq!((c.create, c.modify, c.delete), (16, 0, 0));
    insta::assert_snapshot!("fresh_plan", plan.to_string());
    insta::assert_json_snapshot!("fresh_plan_json", serde_json::to_value(&plan).unwrap());
}

#[test]
fn plan_never_shows_a_key() {
    let plan = plan_apply(&config(Some("TopSecretKey123")), &prerequisites()).unwrap();
    let text = format!("{plan}{}{plan:?}", serde_json::to_string(&plan).unwrap());
    assert!(!text.contains("TopSecretKey123"));
    assert!(text.contains("(sensitive"));
}

#[test]
fn gateway_waits_for_both_public_ips_and_connections_wait_for_gateway_and_their_tunnel() {
    let plan = plan_apply(&config(None), &prerequisites()).unwrap();
    let find = |t: &str, n: &str| plan.steps.iter().find(|s| s.resource_type.as_str() == t && s.name == n).unwrap();
    let gw = find("vpn_gateway", "azure-aws-vpngw");
    assert_eq!(gw.depends_on, vec![find("public_ip", "azure-aws-pip-0").id, find("public_ip", "azure-aws-pip-1").id]);
    let cn = find("connection", "azure-aws-cn-1-0");
    let vpn1 = find("vpn_connection", "vpn-1").id;
    let lng = find("local_network_gateway", "azure-aws-lng-1-0").id;
    assert!(cn.depends_on.contains(&gw.id) && cn.depends_on.contains(&vpn1) && cn.depends_on.contains(&lng));
    // Nothing on the AWS side waits for the 45-minute gateway.
    let aws_after_gateway = plan.steps.iter().filter(|s| s.cloud() == CloudName::Aws).any(|s| s.depends_on.contains(&gw.id));
    assert!(!aws_after_gateway);
    // CGW k reads the IP of public IP k: the pairing rule.
    let cgw1 = find("customer_gateway", "cgw-1");
    assert_eq!(cgw1.depends_on, vec![find("public_ip", "azure-aws-pip-1").id]);
}

#[test]
fn finished_deployment_plans_nothing() {
    let plan = plan_apply(&config(None), &finished("SameKey.123")).unwrap();
    assert!(plan.is_empty(), "{plan}");
}

/// A finished deployment with `pins` (connection k: the /30 of each used tunnel)
/// where EC2 put each connection's options on the tunnels in `order`
/// (`[1, 0]`: TunnelOptions[0] landed on the higher outside IP), and the Azure
/// side points at the tunnel that holds each pin.
fn finished_with_pins(tpc: u8, pins: &[&str], swapped: [bool; 2]) -> (Config, Observed) {
    let list = pins.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ");
    let text = config::EXAMPLE
        .replace("tunnels_per_connection = 1", &format!("tunnels_per_connection = {tpc}"))
        .replace("tunnel_inside_cidrs = []", &format!("tunnel_inside_cidrs = [{list}]"));
    let config = config::parse(&text, Path::new("vpnbridge.toml"), &|_| None).expect("valid").config;
    let mut o = finished("SameKey.123");
    o.azure.local_network_gateways.clear();
    o.azure.connections.clear();
    let layout = config.layout();
    for (k, v) in o.aws.vpn_connections.iter_mut().enumerate() {
        let k8 = u8::try_from(k).unwrap();
        let want = layout.pins(k8);
        // EC2's own order: options [0], [1] onto tunnels by ascending IP, or swapped.
        let order: [usize; 2] = if swapped[k] { [1, 0] } else { [0, 1] };
        let mut by_ip = v.tunnels.clone();
        by_ip.sort_by_key(|t| t.outside_ip);
        for (opt, tunnel) in order.iter().enumerate() {
            // Unpinned options get a /30 AWS chose.
            by_ip[*tunnel].inside_cidr = Some(want[opt].unwrap_or_else(|| format!("169.254.77.{}/30", 8 * k + 4 * opt).parse().unwrap()));
        }
        v.tunnels = by_ip;
        for t in 0..tpc {
            let ip = pairing::aws_tunnel(v, t, want).unwrap().outside_ip;
            // The deployment is right: the Azure side follows the pinned tunnel.
            assert_eq!(ip, v.tunnels[order[usize::from(t)]].outside_ip);
            o.azure.local_network_gateways.push(LocalNetworkGateway {
                bgp: None,
                id: format!("lng-id-{k}-{t}"),
                name: format!("azure-aws-lng-{k}-{t}"),
                gateway_ip: ip,
                address_prefixes: vec!["10.2.0.0/16".parse().unwrap()],
                state: ProvisioningState::Succeeded,
                tags: tags(Role::LocalNetworkGateway(k8, t)),
            });
            o.azure.connections.push(Connection {
                custom_bgp_addresses: Vec::new(),
                id: format!("cn-id-{k}-{t}"),
                name: format!("azure-aws-cn-{k}-{t}"),
                gateway_id: "gw-id".into(),
                local_network_gateway_id: format!("lng-id-{k}-{t}"),
                protocol: "IKEv2".into(),
                shared_key: Some(Psk::new("SameKey.123").unwrap()),
                enable_bgp: false,
                state: ProvisioningState::Succeeded,
                connection_status: "Connected".into(),
                tunnels: vec![],
                tags: tags(Role::Connection(k8, t)),
            });
        }
    }
    (config, o)
}

/// EC2 does not promise that TunnelOptions[0] lands on the lower outside IP: a
/// deployment whose pinned /30s landed "swapped" is correct and plans nothing, in
/// both layouts (`aws.tunnel_inside_cidrs` is one /30 per used tunnel).
#[test]
fn pinned_inside_cidrs_are_matched_by_value_not_by_position() {
    let four = ["169.254.10.0/30", "169.254.11.0/30", "169.254.12.0/30", "169.254.13.0/30"];
    for swapped in [[false, true], [true, false], [true, true]] {
        let (config, o) = finished_with_pins(2, &four, swapped);
        let plan = plan_apply(&config, &o).unwrap();
        assert!(plan.is_empty(), "tpc 2, swapped {swapped:?}: {plan}");
        let (config, o) = finished_with_pins(1, &four[..2], swapped);
        let plan = plan_apply(&config, &o).unwrap();
        assert!(plan.is_empty(), "tpc 1, swapped {swapped:?}: {plan}");
    }
}

/// With one tunnel per connection, the two /30s pin connection 1's and connection
/// 2's used tunnel (not both tunnels of connection 1).
#[test]
fn one_tunnel_per_connection_pins_each_connections_used_tunnel() {
    let (config, mut o) = finished_with_pins(1, &["169.254.10.0/30", "169.254.11.0/30"], [false, false]);
    let plan = plan_apply(&config, &o).unwrap();
    assert!(plan.is_empty(), "{plan}");
    // A fresh build asks for exactly those: /30 k on connection k's first options.
    o.aws.vpn_connections.clear();
    let plan = plan_apply(&config, &o).unwrap();
    let specs: Vec<Vec<Option<String>>> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            StepOp::Aws(AwsOp::CreateVpnConnection { tunnels, .. }) => {
                Some(tunnels.iter().map(|t| t.inside_cidr.map(|c| c.to_string())).collect())
            }
            _ => None,
        })
        .collect();
    assert_eq!(specs, [vec![Some("169.254.10.0/30".to_owned()), None], vec![Some("169.254.11.0/30".to_owned()), None]]);
}

/// A Connection found Deleting (an interrupted drill) is not "present": the plan
/// waits for it to go, then creates it again, and says so. Likewise a public IP or
/// the gateway found Deleting (an interrupted destroy).
#[test]
fn resources_found_deleting_are_waited_out_and_created_again() {
    let mut o = finished("SameKey.123");
    o.azure.connections[0].state = ProvisioningState::Deleting;
    let plan = plan_apply(&config(None), &o).unwrap();
    let kinds: Vec<(Action, &str, &str)> = plan.steps.iter().map(|s| (s.action, s.resource_type.as_str(), s.name.as_str())).collect();
    assert_eq!(
        kinds,
        [(Action::Wait, "connection", "azure-aws-cn-0-0 (being deleted)"), (Action::Create, "connection", "azure-aws-cn-0-0")],
        "{plan}"
    );
    assert_eq!(plan.steps[1].depends_on, vec![plan.steps[0].id]);
    assert!(plan.to_string().contains("created again once it is gone"), "{plan}");

    let mut o = finished("SameKey.123");
    o.azure.vpn_gateway.as_mut().unwrap().state = ProvisioningState::Deleting;
    let plan = plan_apply(&config(None), &o).unwrap();
    let gw =
        plan.steps.iter().find(|s| s.action == Action::Create && s.resource_type == ResourceType::VpnGateway).expect("gateway recreated");
    let wait = plan.steps.iter().find(|s| s.action == Action::Wait && s.resource_type == ResourceType::VpnGateway).unwrap();
    assert!(gw.depends_on.contains(&wait.id), "{plan}");
}

#[test]
fn new_key_is_changed_in_place_one_tunnel_at_a_time() {
    let plan = plan_apply(&config(Some("BrandNewKey_456")), &finished("OldKey.123")).unwrap();
    let c = plan.counts();
    assert_eq!((c.create, c.modify, c.delete), (0, 4, 0), "{plan}");
    // aws tunnel 0 -> azure cn-0-0 -> aws tunnel of vpn-1 -> azure cn-1-0: a chain.
    for w in plan.steps.windows(2) {
        assert_eq!(w[1].depends_on, vec![w[0].id], "{plan}");
    }
    assert!(plan.steps.iter().all(|s| s.disruption.is_some()));
    insta::assert_snapshot!("rotate_key_plan", plan.to_string());
}

#[test]
fn pairing_follows_ip_configurations_not_list_order() {
    let mut o = finished("SameKey.123");
    // The public IP list comes back in the other order: nothing changes.
    o.azure.public_ips.reverse();
    assert!(plan_apply(&config(None), &o).unwrap().is_empty());
    // Instance 0 now has a new IP (the Azure side was rebuilt): CGW 0 no longer
    // fits, so a new one is made and VPN connection 0 moves to it in place.
    o.azure.public_ips.iter_mut().find(|p| p.name == "azure-aws-pip-0").unwrap().ip = Some(Ipv4Addr::new(20, 0, 0, 99));
    let plan = plan_apply(&config(None), &o).unwrap();
    let kinds: Vec<(Action, &str, &str)> = plan.steps.iter().map(|s| (s.action, s.resource_type.as_str(), s.name.as_str())).collect();
    assert_eq!(
        kinds,
        vec![
            (Action::Create, "customer_gateway", "cgw-0"),
            (Action::Modify, "vpn_connection", "vpn-0 vpn-0"),
            (Action::Delete, "customer_gateway", "replaced cgw-0 cgw-0"),
        ],
        "{plan}"
    );
    assert!(
        matches!(&plan.steps[0].op, StepOp::Aws(AwsOp::CreateCustomerGateway { ip: Late::Known(ip), .. }) if *ip == Ipv4Addr::new(20, 0, 0, 99))
    );
    assert_eq!(plan.steps[1].depends_on, vec![0]);
    assert_eq!(plan.steps[2].depends_on, vec![1], "the old CGW goes only after the connection moved off it");
    assert!(plan.steps[1].disruption.as_deref().unwrap().contains("both tunnels"), "{plan}");
}

#[test]
fn preflight_reports_every_conflict_at_once() {
    let mut o = prerequisites();
    o.azure.vnet.as_mut().unwrap().subnets.clear();
    o.aws.foreign_vgw_on_vpc = Some("vgw-foreign".into());
    o.azure.foreign_names.push("azure-aws-vpngw".into());
    let err = plan_apply(&config(None), &o).unwrap_err();
    assert_eq!(err.0.len(), 3, "{err}");
    assert!(err.to_string().contains("GatewaySubnet"));
    assert!(err.to_string().contains("vgw-foreign"));
    assert!(err.to_string().contains("will not take it over"));
}

#[test]
fn destroy_touches_only_tagged_resources_in_dependency_order() {
    let mut o = finished("SameKey.123");
    // A foreign route and a foreign LNG beside ours.
    o.aws.vpc.as_mut().unwrap().route_tables[0].routes.push(VpcRoute {
        propagated: false,
        destination: "192.168.0.0/16".parse().unwrap(),
        gateway_id: Some("vgw-foreign".into()),
        state: "active".into(),
    });
    let mut foreign = o.azure.local_network_gateways[0].clone();
    foreign.name = "someone-elses".into();
    foreign.tags.clear();
    o.azure.local_network_gateways.push(foreign);
    let plan = plan_destroy(&config(None), &o).unwrap();
    let names: Vec<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
    assert!(!names.iter().any(|n| n.contains("someone-elses") || n.contains("192.168")), "{names:?}");
    let c = plan.counts();
    // 2 cn + 2 lng + gw + 2 pip; 2 vpn + 2 cgw + 1 route + detach + vgw.
    assert_eq!(c.delete, 14, "{plan}");
    let id = |t: &str, n: &str| plan.steps.iter().find(|s| s.resource_type.as_str() == t && s.name.contains(n)).unwrap().id;
    let gw = &plan.steps[id("vpn_gateway", "azure-aws-vpngw")];
    assert!(gw.depends_on.contains(&id("connection", "cn-0-0")));
    let pip = &plan.steps[id("public_ip", "pip-0")];
    assert!(pip.depends_on.contains(&gw.id));
    let vgw = &plan.steps[id("vpn_gateway", "vgw vgw-1")];
    assert!(vgw.depends_on.contains(&id("vpn_gateway_attachment", "vgw-1")));
    insta::assert_snapshot!("destroy_plan", plan.to_string());
}

fn bgp_config() -> Config {
    let text = config::EXAMPLE
        .replace("mode = \"static-ha\"", "mode = \"bgp-ha\"")
        .replace("tunnels_per_connection = 1", "tunnels_per_connection = 2")
        .replace("psk = \"generate\"", "psk = \"env:VPN_PSK\"");
    config::parse(&text, Path::new("vpnbridge.toml"), &|k| (k == "VPN_PSK").then(|| "SameKey.123".to_owned())).unwrap().config
}

#[test]
fn bgp_ha_builds_microsofts_layout_with_dynamic_connections_and_propagation() {
    let plan = plan_apply(&bgp_config(), &prerequisites()).unwrap();
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    let ops: Vec<&StepOp> = plan.steps.iter().map(|s| &s.op).collect();
    let gateway = ops.iter().find_map(|o| match o {
        StepOp::Azure(AzureOp::CreateVpnGateway { bgp, .. }) => Some(bgp.clone()),
        _ => None,
    });
    let bgp = gateway.flatten().expect("the gateway has BGP on");
    assert_eq!(bgp.asn, 65000);
    assert_eq!(bgp.custom_addresses, vec![vec![ip("169.254.21.2"), ip("169.254.22.2")], vec![ip("169.254.21.6"), ip("169.254.22.6")]]);
    let lngs: Vec<_> = ops
        .iter()
        .filter_map(|o| match o {
            StepOp::Azure(AzureOp::PutLocalNetworkGateway { address_prefixes, bgp, .. }) => Some((address_prefixes.len(), *bgp)),
            _ => None,
        })
        .collect();
    assert_eq!(lngs.len(), 4);
    assert!(lngs.iter().all(|(n, b)| *n == 0 && b.is_some_and(|b| b.asn == 64512)), "{lngs:?}");
    let connections =
        ops.iter().filter(|o| matches!(o, StepOp::Azure(AzureOp::PutConnection { bgp: Some(b), .. }) if b.custom_addresses.len() == 2));
    assert_eq!(connections.count(), 4);
    let vpns: Vec<_> = ops
        .iter()
        .filter_map(|o| match o {
            StepOp::Aws(AwsOp::CreateVpnConnection { static_routes_only, tunnels, .. }) => Some((*static_routes_only, tunnels.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(vpns.len(), 2);
    assert!(vpns.iter().all(|(s, t)| !s && t.iter().all(|t| t.inside_cidr.is_some())));
    assert!(ops.iter().any(|o| matches!(o, StepOp::Aws(AwsOp::EnableVgwRoutePropagation { .. }))));
    assert!(!ops.iter().any(|o| matches!(o, StepOp::Aws(AwsOp::CreateRoute { .. } | AwsOp::CreateVpnConnectionRoute { .. }))));
    insta::assert_snapshot!("bgp_ha_fresh_plan", plan.to_string());
}

#[test]
fn static_ha_to_bgp_ha_says_what_changes_in_place_and_what_is_replaced() {
    let plan = plan_apply(&bgp_config(), &finished("SameKey.123")).unwrap();
    let find = |t: ResourceType, n: &str| plan.steps.iter().filter(|s| s.resource_type == t && s.name.starts_with(n)).collect::<Vec<_>>();
    let gw = find(ResourceType::VpnGateway, "azure-aws-vpngw");
    assert_eq!(gw.len(), 1);
    assert_eq!(gw[0].action, Action::Modify);
    assert!(gw[0].disruption.as_deref().unwrap_or_default().contains("BGP is turned on"));
    for k in 0..2 {
        let vpn = find(ResourceType::VpnConnection, &format!("vpn-{k}"));
        let actions: Vec<Action> = vpn.iter().map(|s| s.action).collect();
        assert_eq!(actions, vec![Action::Delete, Action::Create], "vpn-{k}: {plan}");
        assert!(vpn[0].disruption.as_deref().unwrap_or_default().contains("cannot change that in place"));
        // The successor waits for its predecessor to be gone (same CGW and VGW).
        assert!(vpn[1].depends_on.contains(&vpn[0].id));
    }
    // The LNGs of the kept tunnels get a BGP peer; the Connections BGP.
    let lng = find(ResourceType::LocalNetworkGateway, "azure-aws-lng-0-0");
    assert_eq!(lng[0].action, Action::Modify);
    let cn = find(ResourceType::Connection, "azure-aws-cn-0-0");
    assert!(
        cn.iter().any(|s| s.action == Action::Modify && s.disruption.as_deref().unwrap_or_default().contains("BGP is turned on")),
        "{plan}"
    );
    // Static VPC routes give way to propagation.
    assert!(plan.steps.iter().any(|s| s.resource_type == ResourceType::VpcRoute && s.action == Action::Delete));
    assert!(plan.steps.iter().any(|s| s.resource_type == ResourceType::RoutePropagation && s.action == Action::Create));
}

/// The steps of `plan` on the resource named `name` (its step name starts with it).
fn steps_named<'p>(plan: &'p Plan, rtype: ResourceType, name: &str) -> Vec<&'p Step> {
    plan.steps.iter().filter(|s| s.resource_type == rtype && s.name.starts_with(name)).collect()
}

/// EC2 modifies only an available VPN connection: a pending one whose customer gateway
/// must change is waited for first.
#[test]
fn a_pending_vpn_connection_is_swapped_only_after_it_is_available() {
    let mut o = finished("SameKey.123");
    o.aws.vpn_connections[0].state = AwsState::Pending;
    o.azure.public_ips.iter_mut().find(|p| p.name == "azure-aws-pip-0").unwrap().ip = Some(Ipv4Addr::new(20, 0, 0, 99));
    let plan = plan_apply(&config(None), &o).unwrap();
    let vpn = steps_named(&plan, ResourceType::VpnConnection, "vpn-0");
    let wait = vpn.iter().find(|s| s.action == Action::Wait).expect("a wait for the pending connection");
    let swap = vpn.iter().find(|s| s.action == Action::Modify).expect("the swap");
    assert!(swap.depends_on.contains(&wait.id), "{plan}");
}

/// A VPN connection gone while its LocalNetworkGateway is still there: the new
/// connection's tunnels have new outside IPs, so the LNG is re-pointed to the one the
/// create returns (and an LNG found updating is re-pointed once it is done).
#[test]
fn a_recreated_vpn_connection_re_points_its_local_network_gateway() {
    for lng_state in [ProvisioningState::Succeeded, ProvisioningState::Updating] {
        let mut o = finished("SameKey.123");
        o.aws.vpn_connections.remove(0);
        o.azure.local_network_gateways[0].state = lng_state;
        let plan = plan_apply(&config(None), &o).unwrap();
        let create = steps_named(&plan, ResourceType::VpnConnection, "vpn-0")[0];
        assert_eq!(create.action, Action::Create, "{plan}");
        let lng = steps_named(&plan, ResourceType::LocalNetworkGateway, "azure-aws-lng-0-0");
        let put = lng.iter().find(|s| s.action == Action::Modify).unwrap_or_else(|| panic!("LNG not re-pointed:\n{plan}"));
        assert!(put.depends_on.contains(&create.id), "{plan}");
        assert!(
            matches!(&put.op, StepOp::Azure(AzureOp::PutLocalNetworkGateway { gateway_ip: Late::After(id, _), .. }) if *id == create.id),
            "{plan}"
        );
        if lng_state == ProvisioningState::Updating {
            let wait = lng.iter().find(|s| s.action == Action::Wait).expect("the LNG in flight is waited for");
            assert!(put.depends_on.contains(&wait.id), "{plan}");
        }
    }
}

/// A VPN connection of ours found `deleting` still joins its CGW and VGW: its
/// successor (and the delete of a CGW it uses) waits until it is gone.
#[test]
fn a_vpn_connection_found_deleting_is_waited_out_before_its_successor() {
    let mut o = finished("SameKey.123");
    o.aws.vpn_connections[0].state = AwsState::Deleting;
    let plan = plan_apply(&config(None), &o).unwrap();
    let vpn = steps_named(&plan, ResourceType::VpnConnection, "vpn-0");
    let wait = vpn.iter().find(|s| s.action == Action::Wait).unwrap_or_else(|| panic!("no wait for the deletion:\n{plan}"));
    assert!(matches!(&wait.op, StepOp::Aws(AwsOp::Await { id, .. }) if id == "vpn-0"), "{plan}");
    let create = vpn.iter().find(|s| s.action == Action::Create).expect("the successor");
    assert!(create.depends_on.contains(&wait.id), "{plan}");
    // With a new Azure IP, the old CGW goes too, but only once nothing uses it.
    o.azure.public_ips.iter_mut().find(|p| p.name == "azure-aws-pip-0").unwrap().ip = Some(Ipv4Addr::new(20, 0, 0, 99));
    let plan = plan_apply(&config(None), &o).unwrap();
    let wait = steps_named(&plan, ResourceType::VpnConnection, "vpn-0").into_iter().find(|s| s.action == Action::Wait).unwrap();
    let delete = steps_named(&plan, ResourceType::CustomerGateway, "unused cgw-0").into_iter().next().unwrap_or_else(|| panic!("{plan}"));
    assert!(delete.depends_on.contains(&wait.id), "{plan}");
}

/// Our VGW found detaching from the VPC (an interrupted destroy): EC2 attaches it again
/// only once it is detached, so the attach waits for that.
#[test]
fn a_detaching_attachment_is_waited_out_before_the_vgw_is_attached_again() {
    let mut o = finished("SameKey.123");
    o.aws.vpn_gateways[0].attachments[0].state = AttachmentState::Detaching;
    let plan = plan_apply(&config(None), &o).unwrap();
    let steps = steps_named(&plan, ResourceType::VpnGatewayAttachment, "vpc-0123456789abcdef0");
    let wait = steps.iter().find(|s| s.action == Action::Wait).unwrap_or_else(|| panic!("no wait for the detachment:\n{plan}"));
    let attach = steps.iter().find(|s| s.action == Action::Create).expect("the attach");
    assert!(attach.depends_on.contains(&wait.id), "{plan}");
}

/// A VPN connection of ours on a VGW that is not ours (that VGW's tag was changed, so
/// a new one is built): it is replaced by one on ours, and nothing touches it first.
#[test]
fn a_vpn_connection_on_a_vgw_not_ours_is_replaced() {
    let mut o = finished("SameKey.123");
    o.aws.vpn_gateways.clear();
    o.aws.vpc.as_mut().unwrap().route_tables[0].routes.retain(|r| r.gateway_id.as_deref() != Some("vgw-1"));
    let plan = plan_apply(&config(Some("AnotherKey.456")), &o).unwrap();
    for k in 0..2 {
        let vpn = steps_named(&plan, ResourceType::VpnConnection, &format!("vpn-{k}"));
        assert!(vpn.iter().any(|s| s.action == Action::Create), "{plan}");
        let delete = steps_named(&plan, ResourceType::VpnConnection, &format!("misplaced vpn-{k} vpn-{k}"));
        assert_eq!(delete.len(), 1, "{plan}");
    }
    // No key change on the connections being replaced.
    assert!(plan.steps.iter().all(|s| s.resource_type != ResourceType::VpnTunnel), "{plan}");
}

/// A static route of a VPN connection of ours found `pending` is waited for: the
/// plan is done only when everything of ours it relies on is available.
#[test]
fn a_pending_vpn_connection_route_is_waited_for() {
    let mut o = finished("SameKey.123");
    o.aws.vpn_connections[0].routes[0].state = AwsState::Pending;
    let plan = plan_apply(&config(None), &o).unwrap();
    let kinds: Vec<(Action, &str, &str)> = plan.steps.iter().map(|s| (s.action, s.resource_type.as_str(), s.name.as_str())).collect();
    assert_eq!(kinds, [(Action::Wait, "vpn_connection_route", "vpn-0 10.1.0.0/16")], "{plan}");
    let destination: IpNet = "10.1.0.0/16".parse().unwrap();
    assert!(
        matches!(&plan.steps[0].op, StepOp::Aws(AwsOp::Await { kind: crate::ops::AwsResourceKind::VpnConnectionRoute { destination: d }, id })
            if id == "vpn-0" && *d == destination),
        "{plan}"
    );
}

/// A public IP of ours found `Updating` or `Failed` with its address allocated keeps
/// that address (a static public IP keeps it across updates): its CGW still fits, so
/// no new CGW and no swap are planned while the gateway is rebuilt on it.
#[test]
fn a_public_ip_changing_keeps_its_address_and_its_customer_gateway() {
    for state in [ProvisioningState::Updating, ProvisioningState::Failed] {
        let mut o = finished("SameKey.123");
        o.azure.vpn_gateway = None;
        o.azure.connections.clear();
        o.azure.public_ips.iter_mut().find(|p| p.name == "azure-aws-pip-0").unwrap().state = state;
        let plan = plan_apply(&config(None), &o).unwrap();
        let pip = steps_named(&plan, ResourceType::PublicIp, "azure-aws-pip-0");
        assert_eq!(pip.len(), 1, "{plan}");
        assert!(steps_named(&plan, ResourceType::CustomerGateway, "").is_empty(), "{state:?}: a CGW step:\n{plan}");
        assert!(plan.steps.iter().all(|s| s.action != Action::Modify || s.resource_type == ResourceType::PublicIp), "{state:?}:\n{plan}");
    }
}

/// `finished`, with customer gateway `k` handed to a stranger: `tags` instead of ours,
/// so it is observed as someone else's (with the IP and ASN instance k needs).
fn cgw_not_ours(k: usize, tags: crate::model::Tags) -> Observed {
    let mut o = finished("SameKey.123");
    let mut cgw = o.aws.customer_gateways.remove(k);
    cgw.tags = tags;
    cgw.device_name = Some(format!("vpnbridge-azure-aws-cgw-{k}"));
    o.aws.foreign_customer_gateways.push(cgw);
    o
}

/// A customer gateway not ours with the IP and ASN of one we would create (and our
/// device name, or none) is what EC2 returns for ours: the plan is refused up front,
/// naming it and what to do, instead of the executor stopping on it mid-apply.
#[test]
fn a_customer_gateway_not_ours_with_our_ip_and_asn_is_refused_up_front() {
    let err = plan_apply(&config(None), &cgw_not_ours(0, crate::model::Tags::new())).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    let m = &err.0[0];
    assert!(m.contains("customer gateway cgw-0") && m.contains("20.0.0.10") && m.contains("65000"), "{m}");
    assert!(m.contains("vpnbridge:role=cgw-0") && m.contains("delete it"), "{m}");
    assert!(m.contains("VPN connection vpn-0"), "says what uses it: {m}");

    let err = plan_apply(&config(None), &cgw_not_ours(1, Owner::new("other").tags(&Role::CustomerGateway(1)))).unwrap_err();
    assert!(
        err.0.len() == 1
            && err.0[0].contains("cgw-1")
            && err.0[0].contains("deployment \"other\"")
            && err.0[0].contains("set name = \"other\" back"),
        "{err}"
    );

    // One without a device name is returned too; one with another device name is not
    // (EC2 makes ours beside it), nor one on another address.
    let mut o = cgw_not_ours(0, crate::model::Tags::new());
    o.aws.foreign_customer_gateways[0].device_name = None;
    assert!(plan_apply(&config(None), &o).is_err());
    for other in [|c: &mut CustomerGateway| c.device_name = Some("their-router".into()), |c: &mut CustomerGateway| c.bgp_asn = 65010] {
        let mut o = cgw_not_ours(0, crate::model::Tags::new());
        other(&mut o.aws.foreign_customer_gateways[0]);
        let plan = plan_apply(&config(None), &o).unwrap();
        assert_eq!(steps_named(&plan, ResourceType::CustomerGateway, "cgw-0").len(), 1, "{plan}");
    }
}

/// `finished`, with VPN connection 0 handed to a stranger (untagged), on `vgw`.
fn vpn_not_ours(vgw: &str) -> Observed {
    let mut o = finished("SameKey.123");
    let v = o.aws.vpn_connections.remove(0);
    o.aws.foreign_vpn_connections.push(crate::model::ForeignVpnConnection {
        id: v.id,
        state: v.state,
        customer_gateway_id: v.customer_gateway_id,
        vpn_gateway_id: vgw.into(),
        inside_cidrs: v.tunnels.iter().filter_map(|t| t.inside_cidr).collect(),
        tags: crate::model::Tags::new(),
    });
    o
}

/// A VPN connection not ours between our customer gateway and our VGW: EC2 refuses
/// ours beside it (one per pair, `InvalidOption.Conflict`), so the plan is refused up
/// front, naming it and what to do.
#[test]
fn a_vpn_connection_not_ours_between_our_gateways_is_refused_up_front() {
    let err = plan_apply(&config(None), &vpn_not_ours("vgw-1")).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    let m = &err.0[0];
    assert!(m.contains("VPN connection vpn-0") && m.contains("cgw-0") && m.contains("vgw-1"), "{m}");
    assert!(m.contains("Delete it") && m.contains("vpnbridge:role=vpn-0"), "{m}");
    // One still being deleted is in the way until it is gone.
    let mut o = vpn_not_ours("vgw-1");
    o.aws.foreign_vpn_connections[0].state = AwsState::Deleting;
    assert!(plan_apply(&config(None), &o).unwrap_err().0[0].contains("being deleted"));
    // Nor can ours be moved there from a customer gateway being replaced.
    let mut o = finished("SameKey.123");
    o.azure.public_ips.iter_mut().find(|p| p.name == "azure-aws-pip-0").unwrap().ip = Some(Ipv4Addr::new(20, 0, 0, 99));
    let mut new_cgw = o.aws.customer_gateways[0].clone();
    (new_cgw.id, new_cgw.ip) = ("cgw-new".into(), Ipv4Addr::new(20, 0, 0, 99));
    o.aws.customer_gateways.push(new_cgw);
    o.aws.foreign_vpn_connections.push(crate::model::ForeignVpnConnection {
        id: "vpn-theirs".into(),
        state: AwsState::Available,
        customer_gateway_id: "cgw-new".into(),
        vpn_gateway_id: "vgw-1".into(),
        inside_cidrs: Vec::new(),
        tags: crate::model::Tags::new(),
    });
    let err = plan_apply(&config(None), &o).unwrap_err();
    assert!(
        err.0.len() == 1 && err.0[0].contains("vpn-theirs") && err.0[0].contains("vpn-0 (vpn-0) cannot be moved onto cgw-new"),
        "{err}"
    );
}

/// A VPN connection not ours on our customer gateway and someone else's VGW is no
/// conflict while the gateway stays; but when it must be replaced (instance 0's IP
/// changed), EC2 would refuse the delete (`DependencyViolation`): refused up front.
#[test]
fn a_vpn_connection_not_ours_on_a_customer_gateway_we_would_delete_is_refused_up_front() {
    let plan = plan_apply(&config(None), &vpn_not_ours("vgw-theirs")).unwrap();
    assert_eq!(steps_named(&plan, ResourceType::VpnConnection, "vpn-0")[0].action, Action::Create, "{plan}");
    assert!(steps_named(&plan, ResourceType::CustomerGateway, "").is_empty(), "{plan}");

    let mut o = vpn_not_ours("vgw-theirs");
    o.azure.public_ips.iter_mut().find(|p| p.name == "azure-aws-pip-0").unwrap().ip = Some(Ipv4Addr::new(20, 0, 0, 99));
    let err = plan_apply(&config(None), &o).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    let m = &err.0[0];
    assert!(m.contains("VPN connection vpn-0") && m.contains("cgw-0") && m.contains("in use"), "{m}");
    assert!(m.contains("delete that VPN connection"), "{m}");
    // Destroy would stop there too: refused before any change.
    let err = plan_destroy(&config(None), &vpn_not_ours("vgw-theirs")).unwrap_err();
    assert!(err.0.len() == 1 && err.0[0].contains("vpn-0") && err.0[0].contains("cgw-0"), "{err}");
}

/// `finished_with_pins` (two tunnels per connection) with VPN connection 0 handed to a
/// stranger on our VGW and someone else's customer gateway, in `state`.
fn pinned_vpn_not_ours(state: AwsState) -> (Config, Observed) {
    let four = ["169.254.10.0/30", "169.254.11.0/30", "169.254.12.0/30", "169.254.13.0/30"];
    let (config, mut o) = finished_with_pins(2, &four, [false, false]);
    let v = o.aws.vpn_connections.remove(0);
    o.aws.foreign_vpn_connections.push(crate::model::ForeignVpnConnection {
        id: v.id,
        state,
        customer_gateway_id: "cgw-theirs".into(),
        vpn_gateway_id: v.vpn_gateway_id,
        inside_cidrs: v.tunnels.iter().filter_map(|t| t.inside_cidr).collect(),
        tags: crate::model::Tags::new(),
    });
    (config, o)
}

/// EC2 gives a tunnel inside CIDR to one VPN connection per VGW (`InvalidCidr.InUse`):
/// one not ours on our VGW holding a /30 the plan pins (on a new vpn-k, or on a tunnel
/// it modifies) is refused up front, naming it, the /30s and what to do. One on our VGW
/// holding other /30s is no conflict.
#[test]
fn a_vpn_connection_not_ours_holding_a_pinned_inside_cidr_is_refused_up_front() {
    let (config, o) = pinned_vpn_not_ours(AwsState::Available);
    let err = plan_apply(&config, &o).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    let m = &err.0[0];
    assert!(m.contains("VPN connection vpn-0") && m.contains("vgw-1") && m.contains("the new VPN connection vpn-0"), "{m}");
    assert!(m.contains("169.254.10.0/30, 169.254.11.0/30") && m.contains("aws.tunnel_inside_cidrs"), "{m}");
    let (config, mut o) = pinned_vpn_not_ours(AwsState::Deleting);
    assert!(plan_apply(&config, &o).unwrap_err().0[0].contains("being deleted"));
    o.aws.foreign_vpn_connections[0].state = AwsState::Available;
    o.aws.foreign_vpn_connections[0].inside_cidrs = vec!["169.254.30.0/30".parse().unwrap(), "169.254.30.4/30".parse().unwrap()];
    let plan = plan_apply(&config, &o).unwrap();
    assert_eq!(steps_named(&plan, ResourceType::VpnConnection, "vpn-0")[0].action, Action::Create, "{plan}");
    // A kept connection's tunnel moved onto a /30 someone else's holds.
    let four = ["169.254.10.0/30", "169.254.11.0/30", "169.254.12.0/30", "169.254.13.0/30"];
    let (_, mut o) = finished_with_pins(2, &four, [false, false]);
    o.aws.foreign_vpn_connections.push(crate::model::ForeignVpnConnection {
        id: "vpn-theirs".into(),
        state: AwsState::Available,
        customer_gateway_id: "cgw-theirs".into(),
        vpn_gateway_id: "vgw-1".into(),
        inside_cidrs: vec!["169.254.30.0/30".parse().unwrap()],
        tags: crate::model::Tags::new(),
    });
    let text = config::EXAMPLE.replace("tunnels_per_connection = 1", "tunnels_per_connection = 2").replace(
        "tunnel_inside_cidrs = []",
        "tunnel_inside_cidrs = [\"169.254.10.0/30\", \"169.254.11.0/30\", \"169.254.30.0/30\", \"169.254.13.0/30\"]",
    );
    let moved = config::parse(&text, Path::new("vpnbridge.toml"), &|_| None).expect("valid").config;
    let err = plan_apply(&moved, &o).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    let m = &err.0[0];
    assert!(m.contains("vpn-theirs") && m.contains("inside CIDR 169.254.30.0/30 that tunnel") && m.contains("of vpn-1 (vpn-1)"), "{m}");
}
