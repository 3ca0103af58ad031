//! Foreign resources beside ours: apply and destroy never touch them.

use vpnbridge_sim::{AzureTarget, SimCloud};

use crate::Scratch;

fn target() -> AzureTarget {
    AzureTarget {
        subscription_id: "00000000-0000-0000-0000-000000000000".into(),
        resource_group: "rg-vpn".into(),
        location: "japaneast".into(),
        vnet: "vnet-hub".into(),
    }
}

/// Everything that is not ours, as JSON, to compare before and after.
fn foreign_snapshot(cloud: &SimCloud, ids: &[String]) -> serde_json::Value {
    cloud.with_world(|w| {
        let mut out = serde_json::Map::new();
        for id in ids {
            let v = w
                .aws
                .vpn_gateways
                .get(id)
                .map(|r| serde_json::to_value(r).unwrap())
                .or_else(|| w.aws.customer_gateways.get(id).map(|r| serde_json::to_value(r).unwrap()))
                .or_else(|| w.azure.local_network_gateways.get(id).map(|r| serde_json::to_value(r).unwrap()))
                .or_else(|| w.azure.public_ips.get(id).map(|r| serde_json::to_value(r).unwrap()));
            out.insert(id.clone(), v.unwrap_or(serde_json::Value::Null));
        }
        let routes: Vec<serde_json::Value> = w
            .aws
            .route_tables
            .values()
            .flat_map(|t| t.routes.iter().filter(|r| r.target.starts_with("igw-")).map(|r| serde_json::to_value(r).unwrap()))
            .collect();
        out.insert("igw routes".into(), routes.into());
        out.into()
    })
}

#[test]
fn apply_and_destroy_leave_foreign_resources_alone() {
    let s = Scratch::new("foreign");
    s.init();
    s.seed_prerequisites();
    let cloud = SimCloud::open(&s.sim_dir()).unwrap();
    let rtb = cloud.with_world(|w| w.aws.route_tables.keys().next().cloned().unwrap());
    let ids = vec![
        cloud.add_foreign_vpn_gateway(None),
        cloud.add_foreign_customer_gateway([198, 51, 100, 7].into(), 65000),
        cloud.add_foreign_local_network_gateway(
            &target(),
            "someone-elses-lng",
            [198, 51, 100, 8].into(),
            &["172.16.0.0/16".parse().unwrap()],
        ),
        cloud.add_foreign_public_ip(&target(), "someone-elses-pip").0,
    ];
    cloud.add_foreign_route(&rtb, "192.168.0.0/16".parse().unwrap(), "igw-0123456789abcdef0").unwrap();
    cloud.save().unwrap();
    let before = foreign_snapshot(&cloud, &ids);
    assert!(before.as_object().unwrap().values().all(|v| !v.is_null()), "{before}");
    drop(cloud);

    let r = s.run(&["apply"], &[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let r = s.run(&["destroy"], &[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());

    let cloud = SimCloud::open(&s.sim_dir()).unwrap();
    assert_eq!(foreign_snapshot(&cloud, &ids), before, "a foreign resource was changed");
    // And nothing of ours is left alive.
    let status = s.run(&["status", "--output", "json"], &[]).json();
    assert!(
        status["resources"]["aws"]["vpn_gateways"].as_array().unwrap().iter().all(|v| v["state"] == "deleted" || v["state"] == "deleting"),
        "{status}"
    );
}

#[test]
fn a_foreign_resource_with_one_of_our_names_is_refused_before_any_change() {
    let s = Scratch::new("name-clash");
    s.init();
    s.seed_prerequisites();
    let cloud = SimCloud::open(&s.sim_dir()).unwrap();
    cloud.add_foreign_public_ip(&target(), "azure-aws-pip-0");
    cloud.save().unwrap();
    let (aws_before, azure_before) = cloud.mutating_calls();
    drop(cloud);
    let r = s.run(&["apply"], &[]);
    assert_eq!(r.code(), 4, "{}", r.stderr());
    assert!(r.stderr().contains("azure-aws-pip-0") && r.stderr().contains("will not take it over"), "{}", r.stderr());
    let cloud = SimCloud::open(&s.sim_dir()).unwrap();
    assert_eq!(cloud.mutating_calls(), (aws_before, azure_before), "nothing was called that changes a cloud");
}
