//! vpnbridge's AWS side for real: [`AwsEndpoint`], the core's
//! [`VpnEndpoint<Aws>`](vpnbridge_core::endpoint::VpnEndpoint) on `aws-sdk-ec2`.
//!
//! What it promises:
//! - Credentials, region and endpoint come the AWS way (`aws-config`'s default chain:
//!   environment, profiles including SSO, container and instance roles; the standard
//!   `AWS_ENDPOINT_URL`/`AWS_ENDPOINT_URL_EC2` override, or an explicit endpoint).
//! - It translates and never decides: `start` makes one EC2 call and returns, `poll`
//!   reads the resource's state, `observe` and `tunnel_ends` only describe.
//! - Every resource is tagged at creation (`TagSpecifications`). Creates that EC2 cannot
//!   deduplicate (VGW, CGW, VPN connection: no client token) run without SDK retry, and
//!   a failure that may have been carried out says so (`may_have_committed`), so the
//!   core re-observes by tag before any retry.
//! - It reports what EC2 said and never judges it: a refused repeat (an attachment or a
//!   route already there) comes back as EC2's error, and a finished
//!   `CreateCustomerGateway` reports the tags of the gateway EC2 answered with (EC2
//!   returns an existing CGW with the same IP, ASN and device name, whoever's it is).
//!   The core's executor decides "already done", "someone else's" or failure
//!   (`vpnbridge_core::committed`), and when a wait is over (`vpnbridge_core::goal`).
//!   Nothing without our tag is read as ours.
//! - Deletes of something already gone succeed; `deleted` resources are history and
//!   are not reported.
//! - Tunnels are ordered by outside IP; keys stay [`Psk`]s and are never logged. Keys
//!   kept in Secrets Manager (`PreSharedKeyArn`) are refused with a message.

mod config_xml;
mod error;
mod handle;
mod preflight;
mod probe;

use std::net::Ipv4Addr;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::config::{BehaviorVersion, Region};
use aws_sdk_ec2::primitives::DateTimeFormat;
use aws_sdk_ec2::types::{
    Filter, GatewayType, ModifyVpnTunnelOptionsSpecification, ResourceType, Tag, TagSpecification, VpnConnectionOptionsSpecification,
    VpnTunnelOptionsSpecification,
};
use ipnet::{IpNet, Ipv4Net};
use vpnbridge_core::endpoint::{
    Aws, CloudName, EndpointError, ErrorKind, OpHandle, OpStatus, Tunnel, TunnelEnd, TunnelStatus, VpnEndpoint,
};
use vpnbridge_core::model::{
    AttachmentState, AwsObserved, AwsState, AwsTunnelOptions, CustomerGateway, Elsewhere, Owner, RouteTable, TAG_DEPLOYMENT, Tags,
    TunnelState, VgwAttachment, VgwTelemetry, Vpc, VpcRoute, VpnConnection, VpnConnectionRoute, VpnGateway,
};
use vpnbridge_core::goal::{Goal, Miss, Phase, Verdict, judge};
use vpnbridge_core::ops::{AwsOp, AwsResourceKind, OpOutput};
use vpnbridge_core::secret::Psk;

pub use config_xml::{ConfigTunnel, parse as parse_customer_gateway_configuration};
pub use error::{advice, classify};
pub use preflight::{Preflight, QuotaNeed, Quotas};
pub use probe::{Ec2TestVm, POWERSHELL_DOCUMENT, SHELL_DOCUMENT};

use crate::error::{from_sdk, is_gone, local};
use crate::handle::Wait;

/// Where the AWS side lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// The region (`eu-west-1`); empty: the default chain's (`AWS_REGION`, profile).
    pub region: String,
    /// The user's VPC, which must exist; vpnbridge never creates or changes it.
    pub vpc_id: String,
    /// An explicit EC2 endpoint (a local emulator); `None`: AWS's, or the standard
    /// `AWS_ENDPOINT_URL_EC2` / `AWS_ENDPOINT_URL` override.
    pub endpoint: Option<String>,
}

/// The AWS endpoint for one region and VPC.
#[derive(Debug, Clone)]
pub struct AwsEndpoint {
    client: Client,
    vpc_id: String,
}

/// How long to wait between polls of a resource that is not there yet (EC2's own
/// waiters poll VPN connections every 15 s; gateways settle faster).
const POLL_VPN: Duration = Duration::from_secs(15);
const POLL_GATEWAY: Duration = Duration::from_secs(5);

/// The SDK configuration of [`AwsSettings`]: `aws-config`'s default chain for
/// credentials, the configured region and endpoint (which serves SSM too: an emulator
/// answers both). Shared by the EC2 endpoint and the SSM probe.
pub(crate) async fn sdk_config(settings: &AwsSettings) -> Result<aws_config::SdkConfig, EndpointError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if !settings.region.is_empty() {
        loader = loader.region(Region::new(settings.region.clone()));
    }
    if let Some(url) = &settings.endpoint {
        loader = loader.endpoint_url(url);
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(local(
            ErrorKind::Permanent,
            "MissingRegion",
            "no AWS region: set aws.region in the configuration, AWS_REGION, or a region in the AWS profile",
        ));
    }
    Ok(sdk)
}

impl AwsEndpoint {
    /// Loads credentials, region and endpoint through `aws-config`'s default chain.
    pub async fn connect(settings: AwsSettings) -> Result<Self, EndpointError> {
        let sdk = sdk_config(&settings).await?;
        Ok(Self::from_client(Client::new(&sdk), settings.vpc_id))
    }

    /// An endpoint on an already configured client (tests, callers with their own
    /// SDK configuration).
    pub fn from_client(client: Client, vpc_id: impl Into<String>) -> Self {
        Self { client, vpc_id: vpc_id.into() }
    }

    /// The VPC this endpoint is scoped to.
    pub fn vpc_id(&self) -> &str {
        &self.vpc_id
    }

    /// The EC2 client (for callers that need a call this adapter does not make).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// The SDK config override that turns retries off for one call: a create without a
/// client token must not be repeated blindly.
fn no_retry() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::default().retry_config(RetryConfig::disabled())
}

fn tag_spec(kind: ResourceType, tags: &Tags) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()))
        .build()
}

fn filter(name: &str, value: impl Into<String>) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn owner_filter(owner: &Owner) -> Filter {
    filter(&format!("tag:{TAG_DEPLOYMENT}"), owner.deployment.clone())
}

fn tags_of(tags: &[Tag]) -> Tags {
    tags.iter().filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned()))).collect()
}

fn aws_state(s: &str) -> AwsState {
    match s {
        "available" => AwsState::Available,
        "deleting" => AwsState::Deleting,
        "deleted" => AwsState::Deleted,
        "modifying" => AwsState::Modifying,
        // pending, and anything new: not settled yet
        _ => AwsState::Pending,
    }
}

fn attachment_state(s: &str) -> AttachmentState {
    match s {
        "attached" => AttachmentState::Attached,
        "detaching" => AttachmentState::Detaching,
        "detached" => AttachmentState::Detached,
        _ => AttachmentState::Attaching,
    }
}

fn bad_answer(what: String) -> EndpointError {
    local(ErrorKind::Transient, "UnexpectedResponse", what)
}

fn vgw_model(g: &aws_sdk_ec2::types::VpnGateway) -> Option<VpnGateway> {
    Some(VpnGateway {
        id: g.vpn_gateway_id()?.to_owned(),
        state: aws_state(g.state().map(|s| s.as_str()).unwrap_or("pending")),
        amazon_asn: g.amazon_side_asn().and_then(|a| u32::try_from(a).ok()).unwrap_or(0),
        attachments: g
            .vpc_attachments()
            .iter()
            .filter_map(|a| {
                Some(VgwAttachment { vpc_id: a.vpc_id()?.to_owned(), state: attachment_state(a.state().map(|s| s.as_str()).unwrap_or("")) })
            })
            .collect(),
        tags: tags_of(g.tags()),
    })
}

fn cgw_model(c: &aws_sdk_ec2::types::CustomerGateway) -> Result<CustomerGateway, EndpointError> {
    let id = c.customer_gateway_id().unwrap_or_default().to_owned();
    let ip = c.ip_address().and_then(|i| i.parse().ok()).ok_or_else(|| bad_answer(format!("customer gateway {id} has no IPv4 address")))?;
    let bgp_asn = c
        .bgp_asn()
        .and_then(|a| a.parse().ok())
        .or_else(|| c.bgp_asn_extended().and_then(|a| a.parse().ok()))
        .ok_or_else(|| bad_answer(format!("customer gateway {id} has no BGP ASN")))?;
    Ok(CustomerGateway {
        id,
        state: aws_state(c.state().unwrap_or("pending")),
        ip,
        bgp_asn,
        device_name: c.device_name().map(str::to_owned).filter(|d| !d.is_empty()),
        tags: tags_of(c.tags()),
    })
}

/// The tunnels of a VPN connection, by outside IP: from `Options.TunnelOptions` when
/// EC2 returns them, else from the `CustomerGatewayConfiguration` document.
fn tunnels_of(v: &aws_sdk_ec2::types::VpnConnection) -> Result<Vec<AwsTunnelOptions>, EndpointError> {
    let id = v.vpn_connection_id().unwrap_or_default();
    let api: Vec<_> =
        v.options().map(|o| o.tunnel_options()).unwrap_or_default().iter().filter(|t| t.outside_ip_address().is_some()).collect();
    let doc = v.customer_gateway_configuration().filter(|d| !d.trim().is_empty()).map(config_xml::parse).transpose().map_err(bad_answer)?;
    let mut tunnels = Vec::new();
    if !api.is_empty() {
        for t in api {
            let outside_ip: Ipv4Addr = t
                .outside_ip_address()
                .and_then(|i| i.parse().ok())
                .ok_or_else(|| bad_answer(format!("VPN connection {id}: a tunnel's outside address is not IPv4")))?;
            let from_doc = doc.as_ref().and_then(|d| d.iter().find(|c| c.outside_ip == outside_ip));
            let psk = match t.pre_shared_key() {
                Some(k) => Some(Psk::new(k).map_err(|e| bad_answer(format!("VPN connection {id}: the key of tunnel {outside_ip} {e}")))?),
                None => from_doc.and_then(|c| c.psk.clone()),
            };
            tunnels.push(AwsTunnelOptions {
                outside_ip,
                inside_cidr: t
                    .tunnel_inside_cidr()
                    .and_then(|c| c.parse::<Ipv4Net>().ok())
                    .or_else(|| from_doc.and_then(|c| c.inside_cidr)),
                psk,
                ike_versions: t.ike_versions().iter().filter_map(|i| i.value().map(str::to_owned)).collect(),
            });
        }
    } else if let Some(doc) = doc {
        tunnels.extend(doc.into_iter().map(|c| AwsTunnelOptions {
            outside_ip: c.outside_ip,
            inside_cidr: c.inside_cidr,
            psk: c.psk,
            ike_versions: Vec::new(),
        }));
    }
    if v.pre_shared_key_arn().is_some() && tunnels.iter().any(|t| t.psk.is_none()) {
        return Err(local(
            ErrorKind::Permanent,
            "PreSharedKeyInSecretsManager",
            format!(
                "VPN connection {id} keeps its pre-shared keys in AWS Secrets Manager (PreSharedKeyArn), which vpnbridge does not read: \
                 recreate the connection with PreSharedKeyStorage Standard, or set the keys explicitly in the configuration"
            ),
        ));
    }
    tunnels.sort_by_key(|t| t.outside_ip);
    Ok(tunnels)
}

fn vpn_model(v: &aws_sdk_ec2::types::VpnConnection) -> Result<VpnConnection, EndpointError> {
    let id = v.vpn_connection_id().unwrap_or_default().to_owned();
    let state = aws_state(v.state().map(|s| s.as_str()).unwrap_or("pending"));
    // EC2 stops returning the configuration document (and tunnel options) once a
    // connection is deleted: a deleted connection has no tunnels.
    let tunnels = if state == AwsState::Deleted { Vec::new() } else { tunnels_of(v)? };
    let mut telemetry: Vec<_> = v
        .vgw_telemetry()
        .iter()
        .filter_map(|t| {
            Some(VgwTelemetry {
                outside_ip: t.outside_ip_address()?.parse().ok()?,
                status: match t.status().map(|s| s.as_str()) {
                    Some("UP") => TunnelState::Up,
                    Some("DOWN") => TunnelState::Down,
                    _ => TunnelState::Unknown,
                },
                status_message: t.status_message().unwrap_or_default().to_owned(),
                last_status_change: t.last_status_change().and_then(|d| d.fmt(DateTimeFormat::DateTime).ok()),
            })
        })
        .collect();
    telemetry.sort_by_key(|t| t.outside_ip);
    Ok(VpnConnection {
        id,
        state,
        customer_gateway_id: v.customer_gateway_id().unwrap_or_default().to_owned(),
        vpn_gateway_id: v.vpn_gateway_id().unwrap_or_default().trim().to_owned(),
        static_routes_only: v.options().and_then(|o| o.static_routes_only()).unwrap_or(false),
        tunnels,
        routes: v
            .routes()
            .iter()
            .filter_map(|r| {
                Some(VpnConnectionRoute {
                    destination: r.destination_cidr_block()?.parse().ok()?,
                    state: aws_state(r.state().map(|s| s.as_str()).unwrap_or("pending")),
                })
            })
            .collect(),
        telemetry,
        tags: tags_of(v.tags()),
    })
}

fn route_table_model(t: &aws_sdk_ec2::types::RouteTable) -> Option<RouteTable> {
    Some(RouteTable {
        id: t.route_table_id()?.to_owned(),
        main: t.associations().iter().any(|a| a.main() == Some(true)),
        routes: t
            .routes()
            .iter()
            .filter_map(|r| {
                Some(VpcRoute {
                    destination: r.destination_cidr_block()?.parse().ok()?,
                    gateway_id: r.gateway_id().map(str::to_owned),
                    state: r.state().map(|s| s.as_str().to_owned()).unwrap_or_else(|| "active".to_owned()),
                })
            })
            .collect(),
        propagating_vgws: t.propagating_vgws().iter().filter_map(|p| p.gateway_id().map(str::to_owned)).collect(),
    })
}

impl AwsEndpoint {
    async fn describe_vpc(&self) -> Result<Option<Vpc>, EndpointError> {
        let out = match self.client.describe_vpcs().vpc_ids(&self.vpc_id).send().await {
            Ok(o) => o,
            Err(e) => {
                let e = from_sdk("DescribeVpcs", e);
                return if e.code == "InvalidVpcID.NotFound" { Ok(None) } else { Err(e) };
            }
        };
        let Some(vpc) = out.vpcs().iter().find(|v| v.vpc_id() == Some(self.vpc_id.as_str())) else { return Ok(None) };
        let mut cidrs: Vec<IpNet> = vpc
            .cidr_block_association_set()
            .iter()
            .filter(|a| a.cidr_block_state().and_then(|s| s.state()).is_none_or(|s| s.as_str() == "associated"))
            .filter_map(|a| a.cidr_block()?.parse().ok())
            .collect();
        if cidrs.is_empty() {
            cidrs.extend(vpc.cidr_block().and_then(|c| c.parse::<IpNet>().ok()));
        }
        let mut route_tables = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .describe_route_tables()
                .filters(filter("vpc-id", &self.vpc_id))
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| from_sdk("DescribeRouteTables", e))?;
            route_tables
                .extend(page.route_tables().iter().filter(|t| t.vpc_id() == Some(self.vpc_id.as_str())).filter_map(route_table_model));
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        Ok(Some(Vpc { id: self.vpc_id.clone(), cidrs, route_tables }))
    }

    async fn describe_vgws(&self, filters: Vec<Filter>) -> Result<Vec<aws_sdk_ec2::types::VpnGateway>, EndpointError> {
        let out =
            self.client.describe_vpn_gateways().set_filters(Some(filters)).send().await.map_err(|e| from_sdk("DescribeVpnGateways", e))?;
        Ok(out.vpn_gateways().to_vec())
    }

    async fn our_vgws(&self, owner: &Owner) -> Result<Vec<VpnGateway>, EndpointError> {
        Ok(self
            .describe_vgws(vec![owner_filter(owner)])
            .await?
            .iter()
            .filter_map(vgw_model)
            .filter(|g| owner.owns(&g.tags) && g.state != AwsState::Deleted)
            .collect())
    }

    /// A VGW of someone else attached to our VPC, with the deployment its tag names.
    async fn foreign_vgw_on_vpc(&self, owner: &Owner) -> Result<Option<(String, Option<String>)>, EndpointError> {
        Ok(self
            .describe_vgws(vec![filter("attachment.vpc-id", &self.vpc_id)])
            .await?
            .iter()
            .filter_map(vgw_model)
            .find(|g| {
                !owner.owns(&g.tags)
                    && g.state != AwsState::Deleted
                    && g.attachments
                        .iter()
                        .any(|a| a.vpc_id == self.vpc_id && matches!(a.state, AttachmentState::Attaching | AttachmentState::Attached))
            })
            .map(|g| (g.id, g.tags.get(TAG_DEPLOYMENT).cloned())))
    }

    /// This deployment's VGWs in the other regions: looked for only when none is in
    /// ours (a first apply, or the config's region changed), so the stack is never
    /// built twice. One DescribeRegions, then one tag-filtered DescribeVpnGateways per
    /// region, at once.
    async fn vgws_elsewhere(&self, owner: &Owner) -> Result<Vec<Elsewhere>, EndpointError> {
        let here = self.client.config().region().map(|r| r.as_ref().to_owned()).unwrap_or_default();
        let regions = self.client.describe_regions().send().await.map_err(|e| from_sdk("DescribeRegions", e))?;
        let others: Vec<String> =
            regions.regions().iter().filter_map(|r| r.region_name().map(str::to_owned)).filter(|r| *r != here).collect();
        let reads = others.iter().map(|region| async move {
            let client = Client::from_conf(self.client.config().to_builder().region(Region::new(region.clone())).build());
            let out =
                client.describe_vpn_gateways().filters(owner_filter(owner)).send().await.map_err(|e| from_sdk("DescribeVpnGateways", e))?;
            Ok::<_, EndpointError>(
                out.vpn_gateways()
                    .iter()
                    .filter_map(vgw_model)
                    .filter(|g| owner.owns(&g.tags) && !g.state.is_gone())
                    .map(|g| Elsewhere { kind: "virtual private gateway".into(), id: g.id, place: format!("region {region}") })
                    .collect::<Vec<_>>(),
            )
        });
        Ok(futures::future::try_join_all(reads).await?.into_iter().flatten().collect())
    }

    async fn our_cgws(&self, owner: &Owner) -> Result<Vec<CustomerGateway>, EndpointError> {
        let out = self
            .client
            .describe_customer_gateways()
            .filters(owner_filter(owner))
            .send()
            .await
            .map_err(|e| from_sdk("DescribeCustomerGateways", e))?;
        let mut cgws = Vec::new();
        for c in out.customer_gateways() {
            // Filter again on our side: an emulator (or a future API change) that
            // ignores the tag filter must not make someone else's gateway ours.
            if !c.tags().iter().any(|t| t.key() == Some(TAG_DEPLOYMENT) && t.value() == Some(owner.deployment.as_str())) {
                continue;
            }
            let cgw = cgw_model(c)?;
            if cgw.state != AwsState::Deleted {
                cgws.push(cgw);
            }
        }
        Ok(cgws)
    }

    async fn our_vpns(&self, owner: &Owner) -> Result<Vec<VpnConnection>, EndpointError> {
        let out = self
            .client
            .describe_vpn_connections()
            .filters(owner_filter(owner))
            .send()
            .await
            .map_err(|e| from_sdk("DescribeVpnConnections", e))?;
        let mut vpns = Vec::new();
        for v in out.vpn_connections() {
            if v.state().map(|s| s.as_str()) == Some("deleted") {
                continue;
            }
            let vpn = vpn_model(v)?;
            if owner.owns(&vpn.tags) {
                vpns.push(vpn);
            }
        }
        Ok(vpns)
    }

    /// One resource by id, `None` when EC2 no longer knows it.
    async fn vgw_by_id(&self, id: &str) -> Result<Option<VpnGateway>, EndpointError> {
        match self.client.describe_vpn_gateways().vpn_gateway_ids(id).send().await {
            Ok(o) => Ok(o.vpn_gateways().iter().filter_map(vgw_model).find(|g| g.id == id)),
            Err(e) => gone_is_none(from_sdk("DescribeVpnGateways", e)),
        }
    }

    async fn cgw_by_id(&self, id: &str) -> Result<Option<CustomerGateway>, EndpointError> {
        match self.client.describe_customer_gateways().customer_gateway_ids(id).send().await {
            Ok(o) => o.customer_gateways().iter().filter(|c| c.customer_gateway_id() == Some(id)).map(cgw_model).next().transpose(),
            Err(e) => gone_is_none(from_sdk("DescribeCustomerGateways", e)),
        }
    }

    async fn vpn_by_id(&self, id: &str) -> Result<Option<VpnConnection>, EndpointError> {
        match self.client.describe_vpn_connections().vpn_connection_ids(id).send().await {
            Ok(o) => o.vpn_connections().iter().filter(|v| v.vpn_connection_id() == Some(id)).map(vpn_model).next().transpose(),
            Err(e) => gone_is_none(from_sdk("DescribeVpnConnections", e)),
        }
    }

    async fn route_table_by_id(&self, id: &str) -> Result<Option<RouteTable>, EndpointError> {
        match self.client.describe_route_tables().route_table_ids(id).send().await {
            Ok(o) => Ok(o.route_tables().iter().filter_map(route_table_model).find(|t| t.id == id)),
            Err(e) => gone_is_none(from_sdk("DescribeRouteTables", e)),
        }
    }

    async fn start_op(&self, op: &AwsOp) -> Result<Wait, EndpointError> {
        let c = &self.client;
        let target = Goal::of_aws(op);
        Ok(match op {
            AwsOp::CreateVpnGateway { amazon_asn, tags } => {
                let out = c
                    .create_vpn_gateway()
                    .r#type(GatewayType::Ipsec1)
                    .amazon_side_asn(i64::from(*amazon_asn))
                    .tag_specifications(tag_spec(ResourceType::VpnGateway, tags))
                    .customize()
                    .config_override(no_retry())
                    .send()
                    .await
                    .map_err(|e| from_sdk("CreateVpnGateway", e))?;
                let id = out.vpn_gateway().and_then(|g| g.vpn_gateway_id()).ok_or_else(|| created_without_id("CreateVpnGateway"))?;
                Wait::Vgw { id: id.to_owned(), target }
            }
            // A refused repeat of an attach that went through is reported as EC2 words
            // it: the core decides from an observation whether it is done.
            AwsOp::AttachVpnGateway { vgw_id, vpc_id } => {
                c.attach_vpn_gateway().vpn_gateway_id(vgw_id).vpc_id(vpc_id).send().await.map_err(|e| from_sdk("AttachVpnGateway", e))?;
                Wait::Attachment { vgw_id: vgw_id.clone(), vpc_id: vpc_id.clone(), target }
            }
            AwsOp::DetachVpnGateway { vgw_id, vpc_id } => {
                let r = c.detach_vpn_gateway().vpn_gateway_id(vgw_id).vpc_id(vpc_id).send().await;
                tolerate_gone(r.map(drop).map_err(|e| from_sdk("DetachVpnGateway", e)))?;
                Wait::Attachment { vgw_id: vgw_id.clone(), vpc_id: vpc_id.clone(), target }
            }
            AwsOp::DeleteVpnGateway { vgw_id } => {
                let r = c.delete_vpn_gateway().vpn_gateway_id(vgw_id).send().await;
                tolerate_gone(r.map(drop).map_err(|e| from_sdk("DeleteVpnGateway", e)))?;
                Wait::Vgw { id: vgw_id.clone(), target }
            }
            // `RouteAlreadyExists` is reported as it is: the core decides from an
            // observation whether the route there is ours (via our VGW) or someone else's.
            AwsOp::CreateRoute { route_table_id, destination, vgw_id } => {
                c.create_route()
                    .route_table_id(route_table_id)
                    .destination_cidr_block(destination.to_string())
                    .gateway_id(vgw_id)
                    .send()
                    .await
                    .map_err(|e| from_sdk("CreateRoute", e))?;
                Wait::Route { route_table_id: route_table_id.clone(), destination: destination.to_string(), target }
            }
            AwsOp::DeleteRoute { route_table_id, destination } => {
                let r = c.delete_route().route_table_id(route_table_id).destination_cidr_block(destination.to_string()).send().await;
                tolerate_gone(r.map(drop).map_err(|e| from_sdk("DeleteRoute", e)))?;
                Wait::Route { route_table_id: route_table_id.clone(), destination: destination.to_string(), target }
            }
            AwsOp::CreateCustomerGateway { ip, bgp_asn, device_name, tags } => {
                let mut req = c
                    .create_customer_gateway()
                    .r#type(GatewayType::Ipsec1)
                    .ip_address(ip.to_string())
                    .tag_specifications(tag_spec(ResourceType::CustomerGateway, tags));
                req = match i32::try_from(*bgp_asn) {
                    Ok(asn) => req.bgp_asn(asn),
                    Err(_) => req.bgp_asn_extended(i64::from(*bgp_asn)),
                };
                if !device_name.is_empty() {
                    req = req.device_name(device_name);
                }
                let out = req.customize().config_override(no_retry()).send().await.map_err(|e| from_sdk("CreateCustomerGateway", e))?;
                // EC2 may answer with an existing gateway of the same IP, ASN and device
                // name, whoever's it is: the poll reads its tags back by id and the core
                // judges whose it is (`Reconciled::owned`).
                let id = out
                    .customer_gateway()
                    .and_then(|g| g.customer_gateway_id())
                    .ok_or_else(|| created_without_id("CreateCustomerGateway"))?;
                Wait::Cgw { id: id.to_owned(), target }
            }
            AwsOp::DeleteCustomerGateway { cgw_id } => {
                let r = c.delete_customer_gateway().customer_gateway_id(cgw_id).send().await;
                tolerate_gone(r.map(drop).map_err(|e| from_sdk("DeleteCustomerGateway", e)))?;
                Wait::Cgw { id: cgw_id.clone(), target }
            }
            AwsOp::CreateVpnConnection { cgw_id, vgw_id, static_routes_only, tunnels, tags } => {
                let mut options = VpnConnectionOptionsSpecification::builder().static_routes_only(*static_routes_only);
                if tunnels.iter().any(|t| t.inside_cidr.is_some() || t.psk.is_some()) {
                    for t in tunnels {
                        options = options.tunnel_options(
                            VpnTunnelOptionsSpecification::builder()
                                .set_tunnel_inside_cidr(t.inside_cidr.map(|c| c.to_string()))
                                .set_pre_shared_key(t.psk.as_ref().map(|k| k.expose().to_owned()))
                                .build(),
                        );
                    }
                }
                let out = c
                    .create_vpn_connection()
                    .r#type("ipsec.1")
                    .customer_gateway_id(cgw_id)
                    .vpn_gateway_id(vgw_id)
                    .options(options.build())
                    .tag_specifications(tag_spec(ResourceType::VpnConnection, tags))
                    .customize()
                    .config_override(no_retry())
                    .send()
                    .await
                    .map_err(|e| from_sdk("CreateVpnConnection", e))?;
                let id =
                    out.vpn_connection().and_then(|v| v.vpn_connection_id()).ok_or_else(|| created_without_id("CreateVpnConnection"))?;
                Wait::Vpn { id: id.to_owned(), target }
            }
            AwsOp::DeleteVpnConnection { vpn_id } => {
                let r = c.delete_vpn_connection().vpn_connection_id(vpn_id).send().await;
                tolerate_gone(r.map(drop).map_err(|e| from_sdk("DeleteVpnConnection", e)))?;
                Wait::Vpn { id: vpn_id.clone(), target }
            }
            AwsOp::CreateVpnConnectionRoute { vpn_id, destination } => {
                c.create_vpn_connection_route()
                    .vpn_connection_id(vpn_id)
                    .destination_cidr_block(destination.to_string())
                    .send()
                    .await
                    .map_err(|e| from_sdk("CreateVpnConnectionRoute", e))?;
                Wait::VpnRoute { vpn_id: vpn_id.clone(), destination: destination.to_string(), target }
            }
            AwsOp::DeleteVpnConnectionRoute { vpn_id, destination } => {
                let r =
                    c.delete_vpn_connection_route().vpn_connection_id(vpn_id).destination_cidr_block(destination.to_string()).send().await;
                tolerate_gone(r.map(drop).map_err(|e| from_sdk("DeleteVpnConnectionRoute", e)))?;
                Wait::VpnRoute { vpn_id: vpn_id.clone(), destination: destination.to_string(), target }
            }
            AwsOp::ModifyVpnConnection { vpn_id, cgw_id } => {
                c.modify_vpn_connection()
                    .vpn_connection_id(vpn_id)
                    .customer_gateway_id(cgw_id)
                    .send()
                    .await
                    .map_err(|e| from_sdk("ModifyVpnConnection", e))?;
                Wait::Vpn { id: vpn_id.clone(), target }
            }
            AwsOp::ModifyVpnTunnelOptions { vpn_id, outside_ip, psk, inside_cidr } => {
                let spec = ModifyVpnTunnelOptionsSpecification::builder()
                    .set_pre_shared_key(psk.as_ref().map(|k| k.expose().to_owned()))
                    .set_tunnel_inside_cidr(inside_cidr.map(|c| c.to_string()))
                    .build();
                c.modify_vpn_tunnel_options()
                    .vpn_connection_id(vpn_id)
                    .vpn_tunnel_outside_ip_address(outside_ip.to_string())
                    .tunnel_options(spec)
                    .send()
                    .await
                    .map_err(|e| from_sdk("ModifyVpnTunnelOptions", e))?;
                Wait::Tunnel { vpn_id: vpn_id.clone(), outside_ip: *outside_ip, inside_cidr: inside_cidr.map(|c| c.to_string()) }
            }
            AwsOp::Await { kind, id } => match kind {
                AwsResourceKind::VpnGateway => Wait::Vgw { id: id.clone(), target },
                AwsResourceKind::VgwAttachment => Wait::Attachment { vgw_id: id.clone(), vpc_id: self.vpc_id.clone(), target },
                AwsResourceKind::CustomerGateway => Wait::Cgw { id: id.clone(), target },
                AwsResourceKind::VpnConnection => Wait::Vpn { id: id.clone(), target },
            },
        })
    }

    async fn poll_wait(&self, wait: &Wait) -> Result<OpStatus, EndpointError> {
        let running = |every| Ok(OpStatus::Running { retry_after: Some(every) });
        let done = |id: &str, tags: Option<Tags>| Ok(OpStatus::Done(OpOutput { id: Some(id.to_owned()), tags, ..OpOutput::default() }));
        match wait {
            Wait::Vgw { id, target } => {
                let vgw = self.vgw_by_id(id).await?;
                match judge(*target, Phase::from(vgw.as_ref().map(|g| g.state))) {
                    Verdict::Done => done(id, vgw.map(|g| g.tags)),
                    Verdict::NotYet => running(POLL_GATEWAY),
                    Verdict::Failed(miss) => Err(missed(miss, "virtual private gateway", id)),
                }
            }
            Wait::Cgw { id, target } => {
                let cgw = self.cgw_by_id(id).await?;
                match judge(*target, Phase::from(cgw.as_ref().map(|g| g.state))) {
                    // Its tags, read back by id: the core judges whose it is.
                    Verdict::Done => done(id, cgw.map(|g| g.tags)),
                    Verdict::NotYet => running(POLL_GATEWAY),
                    Verdict::Failed(miss) => Err(missed(miss, "customer gateway", id)),
                }
            }
            Wait::Vpn { id, target } => {
                let vpn = self.vpn_by_id(id).await?;
                match judge(*target, Phase::from(vpn.as_ref().map(|v| v.state))) {
                    Verdict::Done => {
                        let tags = vpn.as_ref().map(|v| v.tags.clone());
                        let tunnels = vpn.filter(|v| v.state == AwsState::Available).map(|v| v.tunnels).unwrap_or_default();
                        Ok(OpStatus::Done(OpOutput { id: Some(id.clone()), public_ip: None, tunnels, tags }))
                    }
                    Verdict::NotYet => running(POLL_VPN),
                    Verdict::Failed(miss) => Err(missed(miss, "VPN connection", id)),
                }
            }
            Wait::Attachment { vgw_id, vpc_id, target } => {
                let vgw = self.vgw_by_id(vgw_id).await?;
                let state = vgw.as_ref().and_then(|g| g.attachments.iter().find(|a| &a.vpc_id == vpc_id)).map(|a| a.state);
                match judge(*target, Phase::from(state)) {
                    Verdict::Done => done(vgw_id, None),
                    Verdict::NotYet => running(POLL_GATEWAY),
                    Verdict::Failed(_) if vgw.is_none() => {
                        Err(local(ErrorKind::NotFound, "InvalidVpnGatewayID.NotFound", format!("VGW {vgw_id} is gone")))
                    }
                    Verdict::Failed(_) => Ok(OpStatus::Failed(local(
                        ErrorKind::Transient,
                        "IncorrectState",
                        format!("the attachment of {vgw_id} to {vpc_id} went away while attaching"),
                    ))),
                }
            }
            Wait::Route { route_table_id, destination, target } => {
                let dest: IpNet = destination.parse().map_err(|_| bad_handle(destination))?;
                let table = self.route_table_by_id(route_table_id).await?;
                let present = table.as_ref().is_some_and(|t| t.routes.iter().any(|r| r.destination == dest));
                match judge(*target, if present { Phase::Ready } else { Phase::Absent }) {
                    Verdict::Done => done(route_table_id, None),
                    Verdict::NotYet => running(POLL_GATEWAY),
                    Verdict::Failed(_) if table.is_none() => Err(local(
                        ErrorKind::NotFound,
                        "InvalidRouteTableID.NotFound",
                        format!("route table {route_table_id} does not exist"),
                    )),
                    // Describes are eventually consistent: the core polls again.
                    Verdict::Failed(_) => Err(local(
                        ErrorKind::Transient,
                        "RouteNotListed",
                        format!("route table {route_table_id} does not list the route to {destination} yet"),
                    )),
                }
            }
            Wait::VpnRoute { vpn_id, destination, target } => {
                let dest: IpNet = destination.parse().map_err(|_| bad_handle(destination))?;
                let vpn = self.vpn_by_id(vpn_id).await?.filter(|v| !v.state.is_gone());
                let state = vpn.as_ref().and_then(|v| v.routes.iter().find(|r| r.destination == dest)).map(|r| r.state);
                match judge(*target, Phase::from(state)) {
                    Verdict::Done => done(vpn_id, None),
                    Verdict::NotYet => running(POLL_GATEWAY),
                    Verdict::Failed(_) if vpn.is_none() => Ok(OpStatus::Failed(local(
                        ErrorKind::NotFound,
                        "InvalidVpnConnectionID.NotFound",
                        format!("VPN connection {vpn_id} went away before its route {destination} was ready"),
                    ))),
                    // Describes are eventually consistent: the core polls again.
                    Verdict::Failed(_) => Err(local(
                        ErrorKind::Transient,
                        "RouteNotListed",
                        format!("VPN connection {vpn_id} does not list its route to {destination} yet"),
                    )),
                }
            }
            Wait::Tunnel { vpn_id, outside_ip, inside_cidr } => {
                let vpn = self.vpn_by_id(vpn_id).await?.ok_or_else(|| {
                    local(ErrorKind::NotFound, "InvalidVpnConnectionID.NotFound", format!("VPN connection {vpn_id} does not exist"))
                })?;
                let tunnel = vpn.tunnels.iter().find(|t| t.outside_ip == *outside_ip);
                let applied = match (tunnel, inside_cidr) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(t), Some(c)) => t.inside_cidr.map(|n| n.to_string()).as_deref() == Some(c.as_str()),
                };
                if vpn.state == AwsState::Available && applied {
                    Ok(OpStatus::Done(OpOutput { id: Some(vpn_id.clone()), public_ip: None, tunnels: vpn.tunnels, tags: None }))
                } else if vpn.state.is_gone() {
                    Ok(OpStatus::Failed(local(
                        ErrorKind::NotFound,
                        "InvalidVpnConnectionID.NotFound",
                        format!("VPN connection {vpn_id} was deleted while its tunnel {outside_ip} was being modified"),
                    )))
                } else {
                    running(POLL_VPN)
                }
            }
        }
    }
}

/// The core's verdict that a wait will not end well, in EC2's terms. A resource not
/// described while we wait for it to be available may not be listed yet (describes are
/// eventually consistent), so that stays transient: the core polls again, within its
/// retry policy.
fn missed(miss: Miss, what: &str, id: &str) -> EndpointError {
    match miss {
        Miss::Vanished => local(
            ErrorKind::Transient,
            "ResourceWentAway",
            format!("{what} {id} was deleted (or never appeared) while vpnbridge waited for it to become available"),
        ),
        // EC2 has no failed state; nothing reports this phase.
        Miss::ProvisioningFailed => local(ErrorKind::Permanent, "ProvisioningFailed", format!("{what} {id} failed")),
    }
}

fn gone_is_none<T>(e: EndpointError) -> Result<Option<T>, EndpointError> {
    if is_gone(&e) { Ok(None) } else { Err(e) }
}

/// A delete that finds nothing to delete has done its job.
fn tolerate_gone(r: Result<(), EndpointError>) -> Result<(), EndpointError> {
    match r {
        Err(e) if is_gone(&e) || e.code == "InvalidVpnGatewayAttachment.NotFound" => Ok(()),
        other => other,
    }
}

fn created_without_id(op: &str) -> EndpointError {
    let mut e = bad_answer(format!("{op} answered without the new resource's id"));
    e.may_have_committed = true;
    e
}

fn bad_handle(what: &str) -> EndpointError {
    local(ErrorKind::Permanent, "InvalidHandle", format!("not an operation handle of the AWS adapter: {what}"))
}

/// The core's error for a failed start, with the ambiguity rule applied: a create whose
/// outcome is unknown must be re-observed, not retried.
fn start_failed(op: &AwsOp, mut e: EndpointError) -> EndpointError {
    if !op.creates_without_token() {
        e.may_have_committed = false;
    }
    e
}

fn end_of(vpn: &VpnConnection, cgw_ip: Ipv4Addr) -> Vec<Box<dyn Tunnel>> {
    vpn.tunnels
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let telemetry = vpn.telemetry.iter().find(|m| m.outside_ip == t.outside_ip);
            Box::new(TunnelEnd {
                cloud: CloudName::Aws,
                outside_ip: t.outside_ip,
                peer_ip: cgw_ip,
                instance: i,
                resource: vpn.id.clone(),
                inside_cidr: t.inside_cidr,
                psk: t.psk.clone(),
                status: match telemetry {
                    Some(m) => {
                        TunnelStatus { state: m.status, reason: m.status_message.clone(), last_change: m.last_status_change.clone() }
                    }
                    None => TunnelStatus {
                        state: TunnelState::Unknown,
                        reason: "EC2 reports no telemetry for this tunnel".into(),
                        last_change: None,
                    },
                },
            }) as Box<dyn Tunnel>
        })
        .collect()
}

#[async_trait]
impl VpnEndpoint<Aws> for AwsEndpoint {
    async fn observe(&self, owner: &Owner) -> Result<AwsObserved, EndpointError> {
        let (vpc, vpn_gateways, foreign, customer_gateways, vpn_connections) = tokio::try_join!(
            self.describe_vpc(),
            self.our_vgws(owner),
            self.foreign_vgw_on_vpc(owner),
            self.our_cgws(owner),
            self.our_vpns(owner),
        )?;
        let elsewhere = if vpn_gateways.is_empty() { self.vgws_elsewhere(owner).await? } else { Vec::new() };
        let deployment_of = foreign.iter().filter_map(|(id, d)| Some((id.clone(), d.clone()?))).collect();
        let foreign_vgw_on_vpc = foreign.map(|(id, _)| id);
        Ok(AwsObserved { vpc, vpn_gateways, foreign_vgw_on_vpc, customer_gateways, vpn_connections, elsewhere, deployment_of })
    }

    async fn start(&self, op: &AwsOp) -> Result<OpHandle, EndpointError> {
        let wait = self.start_op(op).await.map_err(|e| start_failed(op, e))?;
        Ok(OpHandle(wait.encode()))
    }

    async fn poll(&self, handle: &OpHandle) -> Result<OpStatus, EndpointError> {
        let wait = Wait::decode(&handle.0).ok_or_else(|| bad_handle(&handle.0))?;
        self.poll_wait(&wait).await
    }

    async fn tunnel_ends(&self, owner: &Owner) -> Result<Vec<Box<dyn Tunnel>>, EndpointError> {
        let (cgws, vpns) = tokio::try_join!(self.our_cgws(owner), self.our_vpns(owner))?;
        let mut ends = Vec::new();
        for vpn in vpns.iter().filter(|v| !v.state.is_gone()) {
            let Some(cgw) = cgws.iter().find(|c| c.id == vpn.customer_gateway_id) else { continue };
            ends.extend(end_of(vpn, cgw.ip));
        }
        Ok(ends)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The actions the crate's code calls: each `.operation_name()` sent on an SDK
    /// client (`c`, `client`, `self.client` for EC2 as `ec2:OperationName`; `self.ssm`
    /// for Systems Manager as `ssm:OperationName`).
    fn ec2_calls(source: &str) -> BTreeSet<String> {
        const VERBS: &[&str] =
            &["create_", "delete_", "describe_", "attach_", "detach_", "modify_", "enable_", "disable_", "get_", "send_"];
        let code = source.split("#[cfg(test)]").next().unwrap_or_default();
        let mut out = BTreeSet::new();
        for (at, _) in code.match_indices('.') {
            let rest = &code[at + 1..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit()).collect();
            if !rest[name.len()..].starts_with("()") || !VERBS.iter().any(|v| name.starts_with(v)) {
                continue;
            }
            let receiver: String = code[..at]
                .trim_end()
                .chars()
                .rev()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
                .chars()
                .rev()
                .collect();
            let service = if receiver == "ssm" { "ssm" } else { "ec2" };
            if receiver == "c" || receiver.ends_with("client") || receiver == "ssm" {
                let pascal: String = name
                    .split('_')
                    .map(|w| {
                        let mut c = w.chars();
                        c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
                    })
                    .collect();
                out.insert(format!("{service}:{pascal}"));
            }
        }
        out
    }

    /// Every EC2 action the adapter can call is allowed by `iam-policy.json`, and the
    /// policy allows nothing the code never calls (beyond tagging at creation). The
    /// list comes from the sources, so a new call without a policy line fails here.
    #[test]
    fn the_iam_policy_allows_every_call_the_adapter_makes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut called = BTreeSet::new();
        for entry in std::fs::read_dir(dir.join("src")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                called.extend(ec2_calls(&std::fs::read_to_string(&path).unwrap()));
            }
        }
        assert!(called.contains("ec2:ModifyVpnConnection") && called.contains("ec2:DescribeSecurityGroups"), "{called:?}");
        assert!(called.contains("ssm:SendCommand") && called.contains("ec2:DescribeInstances"), "{called:?}");
        let policy: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("iam-policy.json")).unwrap()).unwrap();
        let mut allowed = BTreeSet::new();
        for st in policy["Statement"].as_array().unwrap() {
            match &st["Action"] {
                serde_json::Value::String(a) => {
                    allowed.insert(a.clone());
                }
                serde_json::Value::Array(v) => allowed.extend(v.iter().filter_map(|a| a.as_str().map(str::to_owned))),
                other => panic!("Action {other}"),
            }
        }
        let missing: Vec<_> = called.difference(&allowed).collect();
        assert!(missing.is_empty(), "called but not in iam-policy.json: {missing:?}");
        let unused: Vec<_> = allowed.iter().filter(|a| !called.contains(*a) && *a != "ec2:CreateTags").collect();
        assert!(unused.is_empty(), "in iam-policy.json but never called: {unused:?}");
    }

    #[test]
    fn calls_are_read_from_the_code() {
        let src = "let r = c\n    .create_customer_gateway()\n; self.client.describe_vpcs().send(); self.describe_vpc(); x.builder();";
        assert_eq!(ec2_calls(src).into_iter().collect::<Vec<_>>(), ["ec2:CreateCustomerGateway", "ec2:DescribeVpcs"]);
    }

    /// EC2's states judged against each goal (the core's judgement, EC2's words).
    #[test]
    fn lifecycle_targets() {
        let lifecycle = |state: Option<AwsState>, target: Goal| match judge(target, Phase::from(state)) {
            Verdict::Done => Ok(true),
            Verdict::NotYet => Ok(false),
            Verdict::Failed(m) => Err(missed(m, "x", "x")),
        };
        assert!(lifecycle(Some(AwsState::Available), Goal::Ready).unwrap());
        assert!(!lifecycle(Some(AwsState::Pending), Goal::Ready).unwrap());
        assert!(lifecycle(Some(AwsState::Deleted), Goal::Ready).is_err());
        assert!(lifecycle(None, Goal::Gone).unwrap());
        assert!(lifecycle(Some(AwsState::Deleted), Goal::Gone).unwrap());
        assert!(!lifecycle(Some(AwsState::Deleting), Goal::Gone).unwrap());
        assert!(!lifecycle(Some(AwsState::Pending), Goal::Settled).unwrap());
        assert!(lifecycle(Some(AwsState::Available), Goal::Settled).unwrap());
    }

    #[test]
    fn only_tokenless_creates_stay_ambiguous() {
        let mut e = local(ErrorKind::Transient, "RequestTimeout", "t");
        e.may_have_committed = true;
        let create = AwsOp::CreateVpnGateway { amazon_asn: 64512, tags: Tags::new() };
        assert!(start_failed(&create, e.clone()).may_have_committed);
        let delete = AwsOp::DeleteVpnGateway { vgw_id: "vgw-1".into() };
        assert!(!start_failed(&delete, e).may_have_committed);
    }

    #[test]
    fn tunnels_from_the_document_when_the_api_has_none() {
        let doc = "<vpn_connection id=\"vpn-1\">\
            <ipsec_tunnel><vpn_gateway><tunnel_outside_address><ip_address>54.1.1.1</ip_address></tunnel_outside_address></vpn_gateway><ike><pre_shared_key>Key_number.two</pre_shared_key></ike></ipsec_tunnel>\
            <ipsec_tunnel><vpn_gateway><tunnel_outside_address><ip_address>3.1.1.1</ip_address></tunnel_outside_address></vpn_gateway><ike><pre_shared_key>Key_number.one</pre_shared_key></ike></ipsec_tunnel>\
            </vpn_connection>";
        let v = aws_sdk_ec2::types::VpnConnection::builder().vpn_connection_id("vpn-1").customer_gateway_configuration(doc).build();
        let t = tunnels_of(&v).unwrap();
        assert_eq!(t.iter().map(|t| t.outside_ip.to_string()).collect::<Vec<_>>(), ["3.1.1.1", "54.1.1.1"]);
        assert_eq!(t[0].psk.as_ref().map(Psk::expose), Some("Key_number.one"));
    }

    #[test]
    fn keys_in_secrets_manager_are_refused() {
        let opts = aws_sdk_ec2::types::VpnConnectionOptions::builder()
            .tunnel_options(aws_sdk_ec2::types::TunnelOption::builder().outside_ip_address("3.1.1.1").build())
            .build();
        let v = aws_sdk_ec2::types::VpnConnection::builder()
            .vpn_connection_id("vpn-1")
            .options(opts)
            .pre_shared_key_arn("arn:aws:secretsmanager:eu-west-1:1:secret:x")
            .build();
        let e = tunnels_of(&v).unwrap_err();
        assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Permanent, "PreSharedKeyInSecretsManager"));
        assert!(e.message.contains("PreSharedKeyStorage Standard"));
    }

    #[test]
    fn api_tunnel_options_are_sorted_and_win_over_the_document() {
        let t = |ip: &str, key: &str| {
            aws_sdk_ec2::types::TunnelOption::builder()
                .outside_ip_address(ip)
                .tunnel_inside_cidr("169.254.21.0/30")
                .pre_shared_key(key)
                .build()
        };
        let opts = aws_sdk_ec2::types::VpnConnectionOptions::builder()
            .static_routes_only(true)
            .tunnel_options(t("52.0.0.9", "Key_number.nine"))
            .tunnel_options(t("52.0.0.10", "Key_number.ten"))
            .build();
        let v = aws_sdk_ec2::types::VpnConnection::builder().vpn_connection_id("vpn-1").options(opts).build();
        let m = vpn_model(&v).unwrap();
        assert!(m.static_routes_only);
        assert_eq!(m.tunnels[0].outside_ip, Ipv4Addr::new(52, 0, 0, 9));
        assert_eq!(m.tunnels[1].psk.as_ref().map(Psk::expose), Some("Key_number.ten"));
    }
}
