//! `vpnbridge-armfake`: the ARM fake as a standalone server, for demos and for
//! pointing the CLI at (`azure.endpoint = "http://127.0.0.1:PORT"`,
//! `VPNBRIDGE_AZURE_TOKEN=<token>`).

use std::time::Duration;

use clap::Parser;
use vpnbridge_armfake::{ArmFake, ArmFakeConfig};
use vpnbridge_sim::LatencyTable;

/// A local fake of Azure Resource Manager (Microsoft.Network 2024-03-01) serving the
/// simulator's Azure model on 127.0.0.1.
///
/// Example: vpnbridge-armfake --port 8443 --token dev-token --latency-scale 0.01
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Port on 127.0.0.1 (0 = a free one, printed on start).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Bearer token every request must carry (none: accept any request).
    #[arg(long, env = "ARMFAKE_TOKEN")]
    token: Option<String>,
    #[arg(long, default_value = "00000000-0000-0000-0000-000000000001")]
    subscription: String,
    #[arg(long, default_value = "rg-vpn")]
    resource_group: String,
    #[arg(long, default_value = "japaneast")]
    location: String,
    #[arg(long, default_value = "vnet-hub")]
    vnet: String,
    #[arg(long, default_value = "10.1.0.0/16")]
    address_space: ipnet::Ipv4Net,
    #[arg(long, default_value = "10.1.255.0/27")]
    gateway_subnet: ipnet::Ipv4Net,
    /// Multiplies the simulator's real-world durations (45 min gateway): 0 = instant,
    /// 0.01 = a 27 s gateway.
    #[arg(long, default_value_t = 0.0)]
    latency_scale: f64,
    /// Retry-After seconds sent with running operations.
    #[arg(long, default_value_t = 1)]
    retry_after: u64,
}

fn scaled(scale: f64) -> LatencyTable {
    let d = LatencyTable::default();
    let f = |x: Duration| x.mul_f64(scale.max(0.0));
    LatencyTable {
        azure_public_ip: f(d.azure_public_ip),
        azure_public_ip_delete: f(d.azure_public_ip_delete),
        azure_vpn_gateway: f(d.azure_vpn_gateway),
        azure_vpn_gateway_delete: f(d.azure_vpn_gateway_delete),
        azure_vpn_gateway_resize: f(d.azure_vpn_gateway_resize),
        azure_local_network_gateway: f(d.azure_local_network_gateway),
        azure_local_network_gateway_delete: f(d.azure_local_network_gateway_delete),
        azure_connection: f(d.azure_connection),
        azure_connection_delete: f(d.azure_connection_delete),
        azure_shared_key_update: f(d.azure_shared_key_update),
        azure_public_ip_release: f(d.azure_public_ip_release),
        ..LatencyTable::instant()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let config = ArmFakeConfig {
        port: args.port,
        subscription_id: args.subscription,
        resource_group: args.resource_group,
        location: args.location,
        vnet: args.vnet,
        address_space: vec![args.address_space],
        gateway_subnet: args.gateway_subnet,
        token: args.token,
        latency: scaled(args.latency_scale),
        retry_after_secs: Some(args.retry_after),
    };
    let fake = ArmFake::start(config).await?;
    println!("{}", fake.url);
    eprintln!("ARM fake listening on {} (Ctrl-C to stop)", fake.url);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
