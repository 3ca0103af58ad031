//! Reading EC2: the describes `observe`, `poll` and `tunnel_ends` make, and their
//! translation into the core's model (SDK-free mirrors of EC2's shapes). Ours are
//! found by the one ownership filter, [`OwnerTag`].

use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::Region;
use aws_sdk_ec2::primitives::DateTimeFormat;
use aws_sdk_ec2::types::{Filter, Tag};
use ipnet::{IpNet, Ipv4Net};
use vpnbridge_core::endpoint::{EndpointError, ErrorKind};
use vpnbridge_core::model::{
    AttachmentState, AwsState, CustomerGateway, Elsewhere, ForeignVpnConnection, Owner, RouteTable, TAG_DEPLOYMENT, Tags, TunnelState,
    VgwAttachment, VgwTelemetry, Vpc, VpcRoute, VpnConnection, VpnConnectionRoute, VpnGateway,
};

use crate::AwsEndpoint;
use crate::error::{from_sdk, is_gone, local};
use crate::tunnels::tunnels_of;

pub(crate) fn filter(name: &str, value: impl Into<String>) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// This deployment's resources, as EC2 is asked for them and as their tags are read
/// back: one shape for every list. The describe is filtered on the tag server-side,
/// and each answer is checked again on our side (an emulator, or a future API change,
/// that ignores the filter must not make someone else's resource ours).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnerTag<'a>(pub(crate) &'a Owner);

impl OwnerTag<'_> {
    /// The `tag:vpnbridge:deployment=<name>` filter.
    pub(crate) fn filter(self) -> Filter {
        filter(&format!("tag:{TAG_DEPLOYMENT}"), self.0.deployment.clone())
    }

    /// Whether a described resource's tags (as EC2 returns them, before anything else
    /// of it is read) make it ours.
    pub(crate) fn owns(self, tags: &[Tag]) -> bool {
        self.0.owns(&tags_of(tags))
    }
}

pub(crate) fn tags_of(tags: &[Tag]) -> Tags {
    tags.iter().filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned()))).collect()
}

pub(crate) fn aws_state(s: &str) -> AwsState {
    match s {
        "available" => AwsState::Available,
        "deleting" => AwsState::Deleting,
        "deleted" => AwsState::Deleted,
        "modifying" => AwsState::Modifying,
        // pending, and anything new: not settled yet
        _ => AwsState::Pending,
    }
}

pub(crate) fn attachment_state(s: &str) -> AttachmentState {
    match s {
        "attached" => AttachmentState::Attached,
        "detaching" => AttachmentState::Detaching,
        "detached" => AttachmentState::Detached,
        _ => AttachmentState::Attaching,
    }
}

pub(crate) fn bad_answer(what: String) -> EndpointError {
    local(ErrorKind::Transient, "UnexpectedResponse", what)
}

pub(crate) fn vgw_model(g: &aws_sdk_ec2::types::VpnGateway) -> Option<VpnGateway> {
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

pub(crate) fn cgw_model(c: &aws_sdk_ec2::types::CustomerGateway) -> Result<CustomerGateway, EndpointError> {
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

/// The inside CIDRs of someone else's VPN connection's tunnels, as far as it tells: its
/// keys kept in Secrets Manager, or a configuration document we cannot read, are no
/// reason to fail (the planner only looks for the CIDRs it pins).
fn foreign_inside_cidrs(v: &aws_sdk_ec2::types::VpnConnection) -> Vec<Ipv4Net> {
    let options: Vec<Ipv4Net> =
        v.options().map(|o| o.tunnel_options()).unwrap_or_default().iter().filter_map(|t| t.tunnel_inside_cidr()?.parse().ok()).collect();
    if !options.is_empty() {
        return options;
    }
    tunnels_of(v).map(|ts| ts.into_iter().filter_map(|t| t.inside_cidr).collect()).unwrap_or_default()
}

pub(crate) fn vpn_model(v: &aws_sdk_ec2::types::VpnConnection) -> Result<VpnConnection, EndpointError> {
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
                accepted_route_count: t.accepted_route_count().and_then(|n| u32::try_from(n).ok()),
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

pub(crate) fn route_table_model(t: &aws_sdk_ec2::types::RouteTable) -> Option<RouteTable> {
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
                    propagated: r.origin().is_some_and(|o| o.as_str() == "EnableVgwRoutePropagation"),
                })
            })
            .collect(),
        propagating_vgws: t.propagating_vgws().iter().filter_map(|p| p.gateway_id().map(str::to_owned)).collect(),
    })
}

impl AwsEndpoint {
    pub(crate) async fn describe_vpc(&self) -> Result<Option<Vpc>, EndpointError> {
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

    pub(crate) async fn describe_vgws(&self, filters: Vec<Filter>) -> Result<Vec<aws_sdk_ec2::types::VpnGateway>, EndpointError> {
        let out =
            self.client.describe_vpn_gateways().set_filters(Some(filters)).send().await.map_err(|e| from_sdk("DescribeVpnGateways", e))?;
        Ok(out.vpn_gateways().to_vec())
    }

    pub(crate) async fn our_vgws(&self, owner: &Owner) -> Result<Vec<VpnGateway>, EndpointError> {
        let ours = OwnerTag(owner);
        Ok(self
            .describe_vgws(vec![ours.filter()])
            .await?
            .iter()
            .filter(|g| ours.owns(g.tags()))
            .filter_map(vgw_model)
            .filter(|g| g.state != AwsState::Deleted)
            .collect())
    }

    /// A VGW of someone else attached to our VPC, with the deployment its tag names.
    pub(crate) async fn foreign_vgw_on_vpc(&self, owner: &Owner) -> Result<Option<(String, Option<String>)>, EndpointError> {
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
    pub(crate) async fn vgws_elsewhere(&self, owner: &Owner) -> Result<Vec<Elsewhere>, EndpointError> {
        let here = self.client.config().region().map(|r| r.as_ref().to_owned()).unwrap_or_default();
        let regions = self.client.describe_regions().send().await.map_err(|e| from_sdk("DescribeRegions", e))?;
        let others: Vec<String> =
            regions.regions().iter().filter_map(|r| r.region_name().map(str::to_owned)).filter(|r| *r != here).collect();
        let reads = others.iter().map(|region| async move {
            let client = Client::from_conf(self.client.config().to_builder().region(Region::new(region.clone())).build());
            let ours = OwnerTag(owner);
            let out = client.describe_vpn_gateways().filters(ours.filter()).send().await.map_err(|e| from_sdk("DescribeVpnGateways", e))?;
            Ok::<_, EndpointError>(
                out.vpn_gateways()
                    .iter()
                    .filter(|g| ours.owns(g.tags()))
                    .filter_map(vgw_model)
                    .filter(|g| !g.state.is_gone())
                    .map(|g| Elsewhere { kind: "virtual private gateway".into(), id: g.id, place: format!("region {region}") })
                    .collect::<Vec<_>>(),
            )
        });
        Ok(futures::future::try_join_all(reads).await?.into_iter().flatten().collect())
    }

    pub(crate) async fn our_cgws(&self, owner: &Owner) -> Result<Vec<CustomerGateway>, EndpointError> {
        let ours = OwnerTag(owner);
        let out = self
            .client
            .describe_customer_gateways()
            .filters(ours.filter())
            .send()
            .await
            .map_err(|e| from_sdk("DescribeCustomerGateways", e))?;
        let mut cgws = Vec::new();
        for c in out.customer_gateways().iter().filter(|c| ours.owns(c.tags())) {
            let cgw = cgw_model(c)?;
            if cgw.state != AwsState::Deleted {
                cgws.push(cgw);
            }
        }
        Ok(cgws)
    }

    /// Every customer gateway in the region, split by the ownership check: ours, and
    /// the others (among which the planner looks for one EC2 would return for ours, by
    /// IP, ASN and device name). One unfiltered describe, so observe stays one per kind.
    pub(crate) async fn all_cgws(&self, owner: &Owner) -> Result<(Vec<CustomerGateway>, Vec<CustomerGateway>), EndpointError> {
        let ours = OwnerTag(owner);
        let out = self.client.describe_customer_gateways().send().await.map_err(|e| from_sdk("DescribeCustomerGateways", e))?;
        let (mut mine, mut others) = (Vec::new(), Vec::new());
        for c in out.customer_gateways() {
            if ours.owns(c.tags()) {
                mine.push(cgw_model(c)?);
            } else if let Ok(cgw) = cgw_model(c) {
                // Someone else's that does not read as one (no IPv4 address: a
                // certificate-based gateway) is nothing EC2 would return for ours.
                others.push(cgw);
            }
        }
        let live = |c: &CustomerGateway| c.state != AwsState::Deleted;
        Ok((mine.into_iter().filter(live).collect(), others.into_iter().filter(live).collect()))
    }

    /// Every VPN connection in the region, split by the ownership check: ours, and the
    /// others (of which the planner needs those on a customer gateway of ours: EC2
    /// refuses a second one between the same gateways, and a gateway's delete while in
    /// use). One unfiltered describe.
    pub(crate) async fn all_vpns(&self, owner: &Owner) -> Result<(Vec<VpnConnection>, Vec<ForeignVpnConnection>), EndpointError> {
        let ours = OwnerTag(owner);
        let out = self.client.describe_vpn_connections().send().await.map_err(|e| from_sdk("DescribeVpnConnections", e))?;
        let (mut mine, mut others) = (Vec::new(), Vec::new());
        for v in out.vpn_connections() {
            if v.state().map(|s| s.as_str()) == Some("deleted") {
                continue;
            }
            if ours.owns(v.tags()) {
                mine.push(vpn_model(v)?);
                continue;
            }
            others.push(ForeignVpnConnection {
                id: v.vpn_connection_id().unwrap_or_default().to_owned(),
                state: aws_state(v.state().map(|s| s.as_str()).unwrap_or("pending")),
                customer_gateway_id: v.customer_gateway_id().unwrap_or_default().to_owned(),
                vpn_gateway_id: v.vpn_gateway_id().unwrap_or_default().trim().to_owned(),
                inside_cidrs: foreign_inside_cidrs(v),
                tags: tags_of(v.tags()),
            });
        }
        Ok((mine, others))
    }

    pub(crate) async fn our_vpns(&self, owner: &Owner) -> Result<Vec<VpnConnection>, EndpointError> {
        let ours = OwnerTag(owner);
        let out = self
            .client
            .describe_vpn_connections()
            .filters(ours.filter())
            .send()
            .await
            .map_err(|e| from_sdk("DescribeVpnConnections", e))?;
        let mut vpns = Vec::new();
        for v in out.vpn_connections().iter().filter(|v| ours.owns(v.tags())) {
            if v.state().map(|s| s.as_str()) == Some("deleted") {
                continue;
            }
            vpns.push(vpn_model(v)?);
        }
        Ok(vpns)
    }

    /// One resource by id, `None` when EC2 no longer knows it.
    pub(crate) async fn vgw_by_id(&self, id: &str) -> Result<Option<VpnGateway>, EndpointError> {
        match self.client.describe_vpn_gateways().vpn_gateway_ids(id).send().await {
            Ok(o) => Ok(o.vpn_gateways().iter().filter_map(vgw_model).find(|g| g.id == id)),
            Err(e) => gone_is_none(from_sdk("DescribeVpnGateways", e)),
        }
    }

    pub(crate) async fn cgw_by_id(&self, id: &str) -> Result<Option<CustomerGateway>, EndpointError> {
        match self.client.describe_customer_gateways().customer_gateway_ids(id).send().await {
            Ok(o) => o.customer_gateways().iter().filter(|c| c.customer_gateway_id() == Some(id)).map(cgw_model).next().transpose(),
            Err(e) => gone_is_none(from_sdk("DescribeCustomerGateways", e)),
        }
    }

    pub(crate) async fn vpn_by_id(&self, id: &str) -> Result<Option<VpnConnection>, EndpointError> {
        match self.client.describe_vpn_connections().vpn_connection_ids(id).send().await {
            Ok(o) => o.vpn_connections().iter().filter(|v| v.vpn_connection_id() == Some(id)).map(vpn_model).next().transpose(),
            Err(e) => gone_is_none(from_sdk("DescribeVpnConnections", e)),
        }
    }

    pub(crate) async fn route_table_by_id(&self, id: &str) -> Result<Option<RouteTable>, EndpointError> {
        match self.client.describe_route_tables().route_table_ids(id).send().await {
            Ok(o) => Ok(o.route_tables().iter().filter_map(route_table_model).find(|t| t.id == id)),
            Err(e) => gone_is_none(from_sdk("DescribeRouteTables", e)),
        }
    }
}

pub(crate) fn gone_is_none<T>(e: EndpointError) -> Result<Option<T>, EndpointError> {
    if is_gone(&e) { Ok(None) } else { Err(e) }
}
