//! The simulated AWS account: VPCs and route tables (prerequisites), VGWs, CGWs,
//! Site-to-Site VPN connections, and the EC2 operations on them.
//!
//! One account, one region's worth of quotas: VPCs carry their region (an endpoint for
//! another region does not see them); VGWs, CGWs and VPN connections are counted
//! against one set of regional quotas.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};
use vpnbridge_core::config::{reserved_inside_cidr, valid_amazon_asn};
use vpnbridge_core::endpoint::ErrorKind;
use vpnbridge_core::model::{AttachmentState, AwsState, AwsTunnelOptions, Tags};
use vpnbridge_core::ops::TunnelSpec;
use vpnbridge_core::secret::Psk;

use super::{ApiError, Phase, World, pool_ip, psk_serde};
use crate::latency::ms;

/// Regional quotas (AWS defaults).
pub const VGW_QUOTA: usize = 5;
pub const CGW_QUOTA: usize = 50;
pub const VPN_PER_VGW_QUOTA: usize = 10;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AwsWorld {
    /// Mutating EC2 calls received, failed ones included.
    pub mutating_calls: u64,
    next_outside_ip: u32,
    pub vpcs: BTreeMap<String, AwsVpc>,
    pub route_tables: BTreeMap<String, AwsRouteTable>,
    pub vpn_gateways: BTreeMap<String, AwsVgw>,
    pub customer_gateways: BTreeMap<String, AwsCgw>,
    pub vpn_connections: BTreeMap<String, AwsVpnConnection>,
    /// Security groups of the VPCs (prerequisites; the probe's instance is in all of
    /// its VPC's groups).
    #[serde(default)]
    pub security_groups: BTreeMap<String, super::SecurityGroup>,
    /// EC2 instances named by `[probe] aws_instance` (the users' test VMs).
    #[serde(default)]
    pub instances: BTreeMap<String, super::ProbeHost>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsVpc {
    pub id: String,
    pub region: String,
    pub cidrs: Vec<Ipv4Net>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsRouteTable {
    pub id: String,
    pub vpc_id: String,
    pub main: bool,
    pub routes: Vec<AwsRoute>,
    pub propagating_vgws: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsRoute {
    pub destination: IpNet,
    /// `local`, `vgw-…`, `igw-…`, …
    pub target: String,
    /// `CreateRouteTable` or `CreateRoute`.
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsVgw {
    pub id: String,
    /// The region it was created in ("" in worlds saved before regions were kept).
    #[serde(default)]
    pub region: String,
    pub phase: Phase<AwsState>,
    pub amazon_asn: u32,
    /// Every attachment ever made, latest last (detached ones stay, like EC2 shows).
    pub attachments: Vec<AwsAttachment>,
    pub tags: Tags,
}

impl AwsVgw {
    /// The attachment that is attaching, attached or detaching, if any.
    pub fn live_attachment(&self) -> Option<&AwsAttachment> {
        self.attachments.iter().find(|a| a.phase.state != AttachmentState::Detached)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsAttachment {
    pub vpc_id: String,
    pub phase: Phase<AttachmentState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsCgw {
    pub id: String,
    /// The region it was created in ("" in worlds saved before regions were kept).
    #[serde(default)]
    pub region: String,
    pub phase: Phase<AwsState>,
    pub ip: Ipv4Addr,
    pub bgp_asn: u32,
    pub device_name: Option<String>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsVpnConnection {
    pub id: String,
    /// The region it was created in ("" in worlds saved before regions were kept).
    #[serde(default)]
    pub region: String,
    pub phase: Phase<AwsState>,
    pub customer_gateway_id: String,
    pub vpn_gateway_id: String,
    pub static_routes_only: bool,
    /// In AWS's own order.
    pub tunnels: Vec<AwsTunnel>,
    pub routes: Vec<AwsVpnRoute>,
    pub tags: Tags,
    /// The customer gateway a running `ModifyVpnConnection` moves the connection to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_customer_gateway_id: Option<String>,
    /// A `Modify*` in progress: from when to when. The connection stays provisioned
    /// (its other tunnel keeps carrying traffic); EC2 describes it `modifying`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modification: Option<(u64, u64)>,
}

impl AwsVpnConnection {
    /// The state EC2 describes at `now`: a modification shows as `modifying` only
    /// after [`MODIFY_VISIBLE_AFTER_MS`]; before that the connection reads `available`.
    pub fn described_state(&self, now: u64) -> AwsState {
        match (self.phase.state, self.modification) {
            (AwsState::Available, Some((from, to))) if now < to && now >= from.saturating_add(MODIFY_VISIBLE_AFTER_MS) => {
                AwsState::Modifying
            }
            (s, _) => s,
        }
    }

    /// Whether the connection forwards at all: `available`, or `modifying` (AWS changes
    /// one tunnel endpoint at a time; the tunnels not being changed stay up).
    pub fn carries_traffic(&self) -> bool {
        self.phase.state == AwsState::Available
    }

    /// Applies the changes of a modification whose time is up (at `now`).
    pub(crate) fn settle_modifications(&mut self, now: u64) {
        for t in &mut self.tunnels {
            if let Some(u) = t.modifying_until
                && now >= u
            {
                t.modifying_until = None;
                t.since = u;
                if let Some(change) = t.pending.take() {
                    if let Some(k) = change.psk {
                        t.psk = k;
                    }
                    if let Some(c) = change.inside_cidr {
                        t.inside_cidr = c;
                    }
                }
            }
        }
        if let Some((_, to)) = self.modification
            && now >= to
        {
            self.modification = None;
            if let Some(cgw) = self.pending_customer_gateway_id.take() {
                self.customer_gateway_id = cgw;
            }
        }
    }

    /// The tunnels ordered by outside IP (AWS's own order is not guaranteed).
    pub fn sorted_tunnels(&self) -> impl Iterator<Item = &AwsTunnel> {
        let mut v: Vec<_> = self.tunnels.iter().collect();
        v.sort_by_key(|t| t.outside_ip);
        v.into_iter()
    }

    /// The tunnels' options as EC2's `Options.TunnelOptions` reports them, in AWS's own
    /// order (the core matches them to its slots by value).
    pub fn tunnel_options(&self) -> Vec<AwsTunnelOptions> {
        self.tunnels
            .iter()
            .map(|t| AwsTunnelOptions {
                outside_ip: t.outside_ip,
                inside_cidr: Some(t.inside_cidr),
                psk: Some(t.psk.clone()),
                ike_versions: t.ike_versions.clone(),
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsTunnel {
    pub outside_ip: Ipv4Addr,
    pub inside_cidr: Ipv4Net,
    #[serde(with = "psk_serde")]
    pub psk: Psk,
    pub ike_versions: Vec<String>,
    /// While `ModifyVpnTunnelOptions` runs, the tunnel is down until this time.
    pub modifying_until: Option<u64>,
    /// The options a running `ModifyVpnTunnelOptions` will put in place when it ends:
    /// until then EC2 still describes the old ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<TunnelChange>,
    /// When the tunnel's current options took effect.
    pub since: u64,
}

/// What a `ModifyVpnTunnelOptions` in progress changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelChange {
    #[serde(default, with = "psk_serde_opt")]
    pub psk: Option<Psk>,
    pub inside_cidr: Option<Ipv4Net>,
}

mod psk_serde_opt {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use vpnbridge_core::secret::Psk;

    pub fn serialize<S: Serializer>(k: &Option<Psk>, s: S) -> Result<S::Ok, S::Error> {
        k.as_ref().map(Psk::expose).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Psk>, D::Error> {
        Option::<String>::deserialize(d)?.map(|k| Psk::new(&k).map_err(serde::de::Error::custom)).transpose()
    }
}

/// How long after a `Modify*` call EC2 may still describe the connection as it was
/// (`available`, old options) before it turns `modifying`: describes are eventually
/// consistent, so a waiter that stops at the first `available` stops too early.
pub const MODIFY_VISIBLE_AFTER_MS: u64 = 5_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsVpnRoute {
    pub destination: IpNet,
    pub phase: Phase<AwsState>,
}

fn e400(kind: ErrorKind, code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(400, kind, code, message)
}

fn vgw_not_found(id: &str) -> ApiError {
    e400(ErrorKind::NotFound, "InvalidVpnGatewayID.NotFound", format!("The virtual private gateway ID '{id}' does not exist"))
}

fn cgw_not_found(id: &str) -> ApiError {
    e400(ErrorKind::NotFound, "InvalidCustomerGatewayID.NotFound", format!("The customer gateway ID '{id}' does not exist"))
}

fn vpn_not_found(id: &str) -> ApiError {
    e400(ErrorKind::NotFound, "InvalidVpnConnectionID.NotFound", format!("The vpnConnection ID '{id}' does not exist"))
}

fn vpc_not_found(id: &str) -> ApiError {
    e400(ErrorKind::NotFound, "InvalidVpcID.NotFound", format!("VpcID {id} does not exist."))
}

fn rtb_not_found(id: &str) -> ApiError {
    e400(ErrorKind::NotFound, "InvalidRouteTableID.NotFound", format!("The routeTable ID '{id}' does not exist"))
}

/// Checks a tunnel inside CIDR against EC2's rules (the message names the rule broken).
pub fn check_inside_cidr(net: Ipv4Net) -> Result<(), ApiError> {
    let link_local: Ipv4Net = "169.254.0.0/16".parse().expect("literal");
    let why = if net.prefix_len() != 30 {
        Some("must be a /30")
    } else if net.trunc() != net {
        Some("is not a network address")
    } else if !link_local.contains(&net) {
        Some("must be within 169.254.0.0/16")
    } else if reserved_inside_cidr(net) {
        Some("is reserved (169.254.0.0/30 to 169.254.5.0/30 and 169.254.169.252/30 cannot be used)")
    } else {
        None
    };
    match why {
        Some(why) => Err(e400(ErrorKind::Permanent, "InvalidParameterValue", format!("The tunnel inside CIDR {net} {why}."))),
        None => Ok(()),
    }
}

fn check_psk(text: &str) -> Result<(), ApiError> {
    Psk::check(text).map_err(|e| {
        e400(
            ErrorKind::Permanent,
            "InvalidParameterValue",
            format!("The pre-shared key {e}. Allowed characters are alphanumeric, period and underscore; it must be 8-64 characters and cannot start with zero."),
        )
    })
}

impl AwsWorld {
    fn live_vgws(&self) -> impl Iterator<Item = &AwsVgw> {
        self.vpn_gateways.values().filter(|v| v.phase.state != AwsState::Deleted)
    }

    /// Inside CIDRs used by live connections on `vgw_id` (all but `except`'s tunnel).
    fn inside_cidrs_on(&self, vgw_id: &str, except: Option<(&str, Ipv4Addr)>) -> Vec<Ipv4Net> {
        self.vpn_connections
            .values()
            .filter(|v| v.vpn_gateway_id == vgw_id && v.phase.state != AwsState::Deleted)
            .flat_map(|v| v.tunnels.iter().map(move |t| (v.id.as_str(), t)))
            .filter(|(id, t)| except != Some((id, t.outside_ip)))
            .flat_map(|(_, t)| std::iter::once(t.inside_cidr).chain(t.pending.as_ref().and_then(|p| p.inside_cidr)))
            .collect()
    }

    /// The VPC `vpc_id` as an endpoint in `region` sees it.
    pub fn vpc_in(&self, region: &str, vpc_id: &str) -> Option<&AwsVpc> {
        self.vpcs.get(vpc_id).filter(|v| v.region == region)
    }
}

/// The EC2 API. Every method here is one mutating call.
impl World {
    fn aws_call(&mut self) -> u64 {
        self.aws.mutating_calls += 1;
        self.now_ms
    }

    /// CreateVpnGateway (type ipsec.1).
    pub fn create_vpn_gateway(&mut self, amazon_asn: u32, tags: &Tags) -> Result<AwsVgw, ApiError> {
        let now = self.aws_call();
        if !valid_amazon_asn(amazon_asn) {
            return Err(e400(
                ErrorKind::Permanent,
                "InvalidParameterValue",
                format!("Invalid value '{amazon_asn}' for AmazonSideAsn: use 64512-65534 or 4200000000-4294967294."),
            ));
        }
        if self.aws.live_vgws().count() >= VGW_QUOTA {
            return Err(e400(
                ErrorKind::Permanent,
                "VpnGatewayLimitExceeded",
                format!("The maximum number of virtual private gateways ({VGW_QUOTA}) has been reached."),
            ));
        }
        let id = self.ec2_id("vgw");
        let vgw = AwsVgw {
            id: id.clone(),
            region: String::new(),
            phase: Phase::timed(AwsState::Pending, now, ms(self.latency.aws_vpn_gateway)),
            amazon_asn,
            attachments: Vec::new(),
            tags: tags.clone(),
        };
        self.aws.vpn_gateways.insert(id, vgw.clone());
        Ok(vgw)
    }

    /// AttachVpnGateway; returns the attachment's state.
    pub fn attach_vpn_gateway(&mut self, region: &str, vpc_id: &str, vgw_id: &str) -> Result<AttachmentState, ApiError> {
        let now = self.aws_call();
        if self.aws.vpc_in(region, vpc_id).is_none() {
            return Err(vpc_not_found(vpc_id));
        }
        let vgw = self.aws.vpn_gateways.get(vgw_id).filter(|v| v.phase.state != AwsState::Deleted).ok_or_else(|| vgw_not_found(vgw_id))?;
        match vgw.phase.state {
            AwsState::Available => {}
            AwsState::Pending => {
                return Err(e400(
                    ErrorKind::Transient,
                    "InvalidVpnGatewayState",
                    format!("The vpn gateway {vgw_id} is not available yet."),
                ));
            }
            _ => {
                return Err(e400(ErrorKind::Permanent, "InvalidVpnGatewayState", format!("The vpn gateway {vgw_id} is being deleted.")));
            }
        }
        if let Some(a) = vgw.live_attachment() {
            if a.vpc_id == vpc_id && a.phase.state != AttachmentState::Detaching {
                // Attaching again to the same VPC: answered with the attachment as it is.
                return Ok(a.phase.state);
            }
            return Err(e400(
                ErrorKind::Conflict,
                "VpnGatewayAttachmentLimitExceeded",
                format!("The vpn gateway {vgw_id} is already attached to {} ({:?}).", a.vpc_id, a.phase.state),
            ));
        }
        if let Some(other) = self.aws.live_vgws().find(|v| {
            v.id != vgw_id && v.live_attachment().is_some_and(|a| a.vpc_id == vpc_id && a.phase.state != AttachmentState::Detaching)
        }) {
            return Err(e400(
                ErrorKind::Conflict,
                "InvalidVpcState",
                format!("The VPC {vpc_id} already has a virtual private gateway attached: {}.", other.id),
            ));
        }
        let dur = ms(self.latency.aws_vgw_attach);
        let vgw = self.aws.vpn_gateways.get_mut(vgw_id).expect("checked");
        vgw.attachments.retain(|a| a.phase.state != AttachmentState::Detached || a.vpc_id != vpc_id);
        vgw.attachments.push(AwsAttachment { vpc_id: vpc_id.to_owned(), phase: Phase::timed(AttachmentState::Attaching, now, dur) });
        Ok(AttachmentState::Attaching)
    }

    /// DetachVpnGateway.
    pub fn detach_vpn_gateway(&mut self, vpc_id: &str, vgw_id: &str) -> Result<(), ApiError> {
        let now = self.aws_call();
        let dur = ms(self.latency.aws_vgw_detach);
        let vgw =
            self.aws.vpn_gateways.get_mut(vgw_id).filter(|v| v.phase.state != AwsState::Deleted).ok_or_else(|| vgw_not_found(vgw_id))?;
        let Some(a) = vgw.attachments.iter_mut().find(|a| a.vpc_id == vpc_id && a.phase.state != AttachmentState::Detached) else {
            return Err(e400(
                ErrorKind::NotFound,
                "InvalidVpnGatewayAttachment.NotFound",
                format!("The attachment with vpn gateway ID '{vgw_id}' and vpc ID '{vpc_id}' does not exist"),
            ));
        };
        if a.phase.state != AttachmentState::Detaching {
            a.phase.go(AttachmentState::Detaching, now, dur);
        }
        Ok(())
    }

    /// DeleteVpnGateway; the VGW must be detached and have no VPN connections.
    pub fn delete_vpn_gateway(&mut self, vgw_id: &str) -> Result<(), ApiError> {
        let now = self.aws_call();
        let dur = ms(self.latency.aws_vpn_gateway_delete);
        let vgw = self.aws.vpn_gateways.get(vgw_id).ok_or_else(|| vgw_not_found(vgw_id))?;
        if vgw.phase.state.is_gone() {
            return Ok(());
        }
        if let Some(a) = vgw.live_attachment() {
            let kind = if a.phase.state == AttachmentState::Detaching { ErrorKind::Transient } else { ErrorKind::Permanent };
            return Err(e400(
                kind,
                "IncorrectState",
                format!("The vpn gateway {vgw_id} is {:?} to {}; detach it first.", a.phase.state, a.vpc_id),
            ));
        }
        let users: Vec<_> = self
            .aws
            .vpn_connections
            .values()
            .filter(|v| v.vpn_gateway_id == vgw_id && v.phase.state != AwsState::Deleted)
            .map(|v| (v.id.clone(), v.phase.state))
            .collect();
        if !users.is_empty() {
            let kind = if users.iter().all(|(_, s)| *s == AwsState::Deleting) { ErrorKind::Transient } else { ErrorKind::Permanent };
            let ids: Vec<_> = users.into_iter().map(|(id, _)| id).collect();
            return Err(e400(kind, "IncorrectState", format!("The vpn gateway {vgw_id} still has VPN connections: {}.", ids.join(", "))));
        }
        self.aws.vpn_gateways.get_mut(vgw_id).expect("checked").phase.go(AwsState::Deleting, now, dur);
        Ok(())
    }

    /// CreateRoute with a VGW target.
    pub fn create_route(&mut self, route_table_id: &str, destination: IpNet, vgw_id: &str) -> Result<bool, ApiError> {
        self.aws_call();
        let rtb = self.aws.route_tables.get(route_table_id).ok_or_else(|| rtb_not_found(route_table_id))?;
        let vgw =
            self.aws.vpn_gateways.get(vgw_id).filter(|v| v.phase.state != AwsState::Deleted).ok_or_else(|| {
                e400(ErrorKind::NotFound, "InvalidGatewayID.NotFound", format!("The gateway ID '{vgw_id}' does not exist"))
            })?;
        let attached = vgw
            .live_attachment()
            .is_some_and(|a| a.vpc_id == rtb.vpc_id && matches!(a.phase.state, AttachmentState::Attaching | AttachmentState::Attached));
        if !attached {
            return Err(e400(
                ErrorKind::Permanent,
                "InvalidParameterValue",
                format!("route table {route_table_id} and network gateway {vgw_id} belong to different networks"),
            ));
        }
        if rtb.routes.iter().any(|r| r.destination == destination) {
            return Err(e400(ErrorKind::Conflict, "RouteAlreadyExists", format!("The route identified by {destination} already exists")));
        }
        let rtb = self.aws.route_tables.get_mut(route_table_id).expect("checked");
        rtb.routes.push(AwsRoute { destination, target: vgw_id.to_owned(), origin: "CreateRoute".to_owned() });
        Ok(true)
    }

    /// EnableVgwRoutePropagation: the table learns the VGW's BGP routes. The VGW must be
    /// attached (or attaching) to the table's VPC; enabling twice changes nothing.
    pub fn enable_vgw_route_propagation(&mut self, route_table_id: &str, vgw_id: &str) -> Result<(), ApiError> {
        self.aws_call();
        let rtb = self.aws.route_tables.get(route_table_id).ok_or_else(|| rtb_not_found(route_table_id))?;
        let vgw = self.aws.vpn_gateways.get(vgw_id).filter(|v| !v.phase.state.is_gone()).ok_or_else(|| vgw_not_found(vgw_id))?;
        let attached = vgw
            .live_attachment()
            .is_some_and(|a| a.vpc_id == rtb.vpc_id && matches!(a.phase.state, AttachmentState::Attaching | AttachmentState::Attached));
        if !attached {
            return Err(e400(
                ErrorKind::Permanent,
                "Gateway.NotAttached",
                format!("resource {vgw_id} is not attached to network {}", rtb.vpc_id),
            ));
        }
        let rtb = self.aws.route_tables.get_mut(route_table_id).expect("checked");
        if !rtb.propagating_vgws.iter().any(|v| v == vgw_id) {
            rtb.propagating_vgws.push(vgw_id.to_owned());
        }
        Ok(())
    }

    /// DisableVgwRoutePropagation; the propagated routes go with it.
    pub fn disable_vgw_route_propagation(&mut self, route_table_id: &str, vgw_id: &str) -> Result<(), ApiError> {
        self.aws_call();
        let rtb = self.aws.route_tables.get_mut(route_table_id).ok_or_else(|| rtb_not_found(route_table_id))?;
        rtb.propagating_vgws.retain(|v| v != vgw_id);
        Ok(())
    }

    /// DeleteRoute.
    pub fn delete_route(&mut self, route_table_id: &str, destination: IpNet) -> Result<(), ApiError> {
        self.aws_call();
        let rtb = self.aws.route_tables.get_mut(route_table_id).ok_or_else(|| rtb_not_found(route_table_id))?;
        let Some(i) = rtb.routes.iter().position(|r| r.destination == destination) else {
            return Err(e400(
                ErrorKind::NotFound,
                "InvalidRoute.NotFound",
                format!("no route with destination-cidr-block {destination} in route table {route_table_id}"),
            ));
        };
        if rtb.routes[i].target == "local" {
            return Err(e400(
                ErrorKind::Permanent,
                "InvalidParameterValue",
                format!("cannot remove local route {destination} in route table {route_table_id}"),
            ));
        }
        rtb.routes.remove(i);
        Ok(())
    }

    /// CreateCustomerGateway (type ipsec.1). Like EC2, a request with the same type, IP
    /// and ASN as an existing (not deleted) CGW whose device name is the requested one,
    /// or which has none, returns that CGW unchanged, tags and all, even if it belongs
    /// to someone else.
    pub fn create_customer_gateway(
        &mut self,
        ip: Ipv4Addr,
        bgp_asn: u32,
        device_name: Option<&str>,
        tags: &Tags,
    ) -> Result<AwsCgw, ApiError> {
        let now = self.aws_call();
        if bgp_asn == 0 {
            return Err(e400(ErrorKind::Permanent, "InvalidParameterValue", "Invalid value '0' for BgpAsn."));
        }
        if device_name.is_some_and(|d| d.len() > 255) {
            return Err(e400(ErrorKind::Permanent, "InvalidParameterValue", "DeviceName is longer than 255 characters."));
        }
        if let Some(existing) = self.aws.customer_gateways.values().find(|c| {
            !c.phase.state.is_gone()
                && c.ip == ip
                && c.bgp_asn == bgp_asn
                && (c.device_name.is_none() || c.device_name.as_deref() == device_name)
        }) {
            return Ok(existing.clone());
        }
        if self.aws.customer_gateways.values().filter(|c| c.phase.state != AwsState::Deleted).count() >= CGW_QUOTA {
            return Err(e400(
                ErrorKind::Permanent,
                "CustomerGatewayLimitExceeded",
                format!("The maximum number of customer gateways ({CGW_QUOTA}) has been reached."),
            ));
        }
        let id = self.ec2_id("cgw");
        let cgw = AwsCgw {
            id: id.clone(),
            region: String::new(),
            phase: Phase::timed(AwsState::Pending, now, ms(self.latency.aws_customer_gateway)),
            ip,
            bgp_asn,
            device_name: device_name.map(str::to_owned),
            tags: tags.clone(),
        };
        self.aws.customer_gateways.insert(id, cgw.clone());
        Ok(cgw)
    }

    /// DeleteCustomerGateway; refused while a VPN connection (not yet deleted) uses it.
    pub fn delete_customer_gateway(&mut self, cgw_id: &str) -> Result<(), ApiError> {
        let now = self.aws_call();
        let dur = ms(self.latency.aws_customer_gateway_delete);
        let cgw = self.aws.customer_gateways.get(cgw_id).ok_or_else(|| cgw_not_found(cgw_id))?;
        if cgw.phase.state.is_gone() {
            return Ok(());
        }
        let users: Vec<_> = self
            .aws
            .vpn_connections
            .values()
            .filter(|v| v.customer_gateway_id == cgw_id && v.phase.state != AwsState::Deleted)
            .map(|v| (v.id.clone(), v.phase.state))
            .collect();
        if !users.is_empty() {
            let kind = if users.iter().all(|(_, s)| *s == AwsState::Deleting) { ErrorKind::Transient } else { ErrorKind::Permanent };
            let ids: Vec<_> = users.into_iter().map(|(id, _)| id).collect();
            return Err(e400(
                kind,
                "DependencyViolation",
                format!("The customer gateway {cgw_id} is in use by VPN connection(s) {}.", ids.join(", ")),
            ));
        }
        self.aws.customer_gateways.get_mut(cgw_id).expect("checked").phase.go(AwsState::Deleting, now, dur);
        Ok(())
    }

    /// CreateVpnConnection (type ipsec.1) between a CGW and a VGW, with up to two
    /// tunnels' options (applied in AWS's tunnel order, which here is ascending outside
    /// IP); missing keys and inside CIDRs are generated.
    pub fn create_vpn_connection(
        &mut self,
        cgw_id: &str,
        vgw_id: &str,
        static_routes_only: bool,
        tunnel_options: &[TunnelSpec],
        tags: &Tags,
    ) -> Result<AwsVpnConnection, ApiError> {
        let now = self.aws_call();
        let cgw =
            self.aws.customer_gateways.get(cgw_id).filter(|c| c.phase.state != AwsState::Deleted).ok_or_else(|| cgw_not_found(cgw_id))?;
        let vgw = self.aws.vpn_gateways.get(vgw_id).filter(|v| v.phase.state != AwsState::Deleted).ok_or_else(|| vgw_not_found(vgw_id))?;
        match cgw.phase.state {
            AwsState::Available => {}
            AwsState::Pending => {
                return Err(e400(
                    ErrorKind::Transient,
                    "InvalidCustomerGatewayState",
                    format!("The customer gateway {cgw_id} is not available yet."),
                ));
            }
            _ => {
                return Err(e400(
                    ErrorKind::Permanent,
                    "InvalidCustomerGatewayState",
                    format!("The customer gateway {cgw_id} is being deleted."),
                ));
            }
        }
        match vgw.phase.state {
            AwsState::Available => {}
            AwsState::Pending => {
                return Err(e400(
                    ErrorKind::Transient,
                    "InvalidVpnGatewayState",
                    format!("The vpn gateway {vgw_id} is not available yet."),
                ));
            }
            _ => return Err(e400(ErrorKind::Permanent, "InvalidVpnGatewayState", format!("The vpn gateway {vgw_id} is being deleted."))),
        }
        if cgw.bgp_asn == vgw.amazon_asn {
            return Err(e400(
                ErrorKind::Permanent,
                "AsnConflict",
                format!(
                    "The customer gateway's BGP ASN ({}) must differ from the virtual private gateway's Amazon side ASN ({}).",
                    cgw.bgp_asn, vgw.amazon_asn
                ),
            ));
        }
        let live = |v: &&AwsVpnConnection| v.phase.state != AwsState::Deleted;
        if let Some(v) =
            self.aws.vpn_connections.values().filter(live).find(|v| v.vpn_gateway_id == vgw_id && v.customer_gateway_id == cgw_id)
        {
            return Err(e400(
                ErrorKind::Conflict,
                "InvalidOption.Conflict",
                format!("A VPN connection between {cgw_id} and {vgw_id} already exists: {}.", v.id),
            ));
        }
        let cgw_ip = cgw.ip;
        if let Some(v) = self.aws.vpn_connections.values().filter(live).find(|v| {
            v.customer_gateway_id != cgw_id && self.aws.customer_gateways.get(&v.customer_gateway_id).is_some_and(|c| c.ip == cgw_ip)
        }) {
            return Err(e400(
                ErrorKind::Conflict,
                "InvalidCustomerGateway.DuplicateIpAddress",
                format!("Conflict among chosen gateway IP addresses: {cgw_ip} is already used by VPN connection {}.", v.id),
            ));
        }
        if self.aws.vpn_connections.values().filter(live).filter(|v| v.vpn_gateway_id == vgw_id).count() >= VPN_PER_VGW_QUOTA {
            return Err(e400(
                ErrorKind::Permanent,
                "VpnConnectionLimitExceeded",
                format!("The maximum number of VPN connections ({VPN_PER_VGW_QUOTA}) on {vgw_id} has been reached."),
            ));
        }
        if tunnel_options.len() > 2 {
            return Err(e400(
                ErrorKind::Permanent,
                "InvalidParameterValue",
                "A VPN connection has two tunnels; more than two TunnelOptions were given.",
            ));
        }
        let mut used = self.aws.inside_cidrs_on(vgw_id, None);
        for spec in tunnel_options {
            if let Some(k) = &spec.psk {
                check_psk(k.expose())?;
            }
            if let Some(net) = spec.inside_cidr {
                check_inside_cidr(net)?;
                if used.contains(&net) {
                    return Err(e400(
                        ErrorKind::Permanent,
                        "InvalidCidr.InUse",
                        format!("The tunnel inside CIDR {net} is already in use on {vgw_id}."),
                    ));
                }
                used.push(net);
            }
        }
        let mut tunnels = Vec::new();
        // EC2 does not promise that TunnelOptions[0] lands on the lower outside IP
        // (terraform-provider-aws #5809, #19079): every other connection gets its
        // options the other way round, so both orders occur in every deployment.
        let swapped = (self.aws.next_outside_ip / 2) % 2 == 1;
        for i in 0..2 {
            let spec = tunnel_options.get(i);
            let inside_cidr = match spec.and_then(|s| s.inside_cidr) {
                Some(net) => net,
                None => {
                    let net = free_inside_cidr(&used);
                    used.push(net);
                    net
                }
            };
            let psk = spec.and_then(|s| s.psk.clone()).unwrap_or_else(Psk::generate);
            let n = self.aws.next_outside_ip;
            self.aws.next_outside_ip += 1;
            let base = if (i == 0) != swapped { Ipv4Addr::new(3, 112, 0, 0) } else { Ipv4Addr::new(52, 68, 0, 0) };
            tunnels.push(AwsTunnel {
                outside_ip: pool_ip(base, n),
                inside_cidr,
                psk,
                ike_versions: vec!["ikev1".to_owned(), "ikev2".to_owned()],
                modifying_until: None,
                pending: None,
                since: now,
            });
        }
        let id = self.ec2_id("vpn");
        let vpn = AwsVpnConnection {
            id: id.clone(),
            region: String::new(),
            phase: Phase::timed(AwsState::Pending, now, ms(self.latency.aws_vpn_connection)),
            customer_gateway_id: cgw_id.to_owned(),
            vpn_gateway_id: vgw_id.to_owned(),
            static_routes_only,
            tunnels,
            routes: Vec::new(),
            tags: tags.clone(),
            pending_customer_gateway_id: None,
            modification: None,
        };
        self.aws.vpn_connections.insert(id, vpn.clone());
        Ok(vpn)
    }

    /// DeleteVpnConnection.
    pub fn delete_vpn_connection(&mut self, vpn_id: &str) -> Result<(), ApiError> {
        let now = self.aws_call();
        let dur = ms(self.latency.aws_vpn_connection_delete);
        let vpn = self.aws.vpn_connections.get_mut(vpn_id).ok_or_else(|| vpn_not_found(vpn_id))?;
        if !vpn.phase.state.is_gone() {
            vpn.phase.go(AwsState::Deleting, now, dur);
        }
        Ok(())
    }

    /// CreateVpnConnectionRoute (static connections only).
    pub fn create_vpn_connection_route(&mut self, vpn_id: &str, destination: IpNet) -> Result<(), ApiError> {
        let now = self.aws_call();
        let dur = ms(self.latency.aws_vpn_connection_route);
        let vpn =
            self.aws.vpn_connections.get_mut(vpn_id).filter(|v| v.phase.state != AwsState::Deleted).ok_or_else(|| vpn_not_found(vpn_id))?;
        if vpn.phase.state == AwsState::Deleting {
            return Err(e400(
                ErrorKind::Permanent,
                "InvalidVpnConnection.InvalidState",
                format!("The VPN connection {vpn_id} is being deleted."),
            ));
        }
        if !vpn.static_routes_only {
            return Err(e400(
                ErrorKind::Permanent,
                "InvalidVpnConnection.InvalidType",
                format!("The VPN connection {vpn_id} does not support static routes (it uses BGP)."),
            ));
        }
        if vpn.routes.iter().any(|r| r.destination == destination && r.phase.state != AwsState::Deleting) {
            return Err(e400(ErrorKind::Conflict, "RouteAlreadyExists", format!("The route identified by {destination} already exists")));
        }
        vpn.routes.retain(|r| r.destination != destination);
        vpn.routes.push(AwsVpnRoute { destination, phase: Phase::timed(AwsState::Pending, now, dur) });
        Ok(())
    }

    /// DeleteVpnConnectionRoute.
    pub fn delete_vpn_connection_route(&mut self, vpn_id: &str, destination: IpNet) -> Result<(), ApiError> {
        let now = self.aws_call();
        let dur = ms(self.latency.aws_vpn_connection_route_delete);
        let vpn =
            self.aws.vpn_connections.get_mut(vpn_id).filter(|v| v.phase.state != AwsState::Deleted).ok_or_else(|| vpn_not_found(vpn_id))?;
        let Some(r) = vpn.routes.iter_mut().find(|r| r.destination == destination) else {
            return Err(e400(
                ErrorKind::NotFound,
                "InvalidRoute.NotFound",
                format!("no route with destination-cidr-block {destination} in VPN connection {vpn_id}"),
            ));
        };
        if r.phase.state != AwsState::Deleting {
            r.phase.go(AwsState::Deleting, now, dur);
        }
        Ok(())
    }

    /// ModifyVpnConnection with a new customer gateway: outside IPs and tunnel options
    /// are kept; both tunnels go down until the returned virtual time.
    pub fn modify_vpn_connection(&mut self, vpn_id: &str, cgw_id: &str) -> Result<u64, ApiError> {
        let now = self.aws_call();
        let dur = ms(self.latency.aws_modify_vpn_connection);
        let vpn =
            self.aws.vpn_connections.get(vpn_id).filter(|v| v.phase.state != AwsState::Deleted).ok_or_else(|| vpn_not_found(vpn_id))?;
        // EC2 answers 400 InvalidVpnConnection.InvalidState, which is not retried (the
        // AWS adapter classifies it permanent): a caller must wait for `available` first.
        if vpn.phase.state != AwsState::Available || vpn.tunnels.iter().any(|t| t.modifying_until.is_some()) {
            return Err(e400(
                ErrorKind::Permanent,
                "InvalidVpnConnection.InvalidState",
                format!("The VPN connection {vpn_id} is {:?} or being modified; it cannot be modified now.", vpn.phase.state),
            ));
        }
        match self.aws.customer_gateways.get(cgw_id) {
            Some(c) if c.phase.state == AwsState::Available => {}
            Some(c) => {
                return Err(e400(
                    ErrorKind::Transient,
                    "InvalidCustomerGatewayState",
                    format!("The customer gateway {cgw_id} is {:?}, not available.", c.phase.state),
                ));
            }
            None => {
                return Err(ApiError::new(
                    400,
                    ErrorKind::NotFound,
                    "InvalidCustomerGatewayID.NotFound",
                    format!("The customer gateway ID '{cgw_id}' does not exist"),
                ));
            }
        }
        let vpn = self.aws.vpn_connections.get_mut(vpn_id).expect("checked");
        vpn.pending_customer_gateway_id = Some(cgw_id.to_owned());
        vpn.modification = Some((now, now.saturating_add(dur)));
        for t in &mut vpn.tunnels {
            t.modifying_until = Some(now.saturating_add(dur));
        }
        Ok(now.saturating_add(dur))
    }

    /// ModifyVpnTunnelOptions for the tunnel with `outside_ip`: the connection goes
    /// `modifying` (described so after [`MODIFY_VISIBLE_AFTER_MS`]), the tunnel is
    /// down while AWS replaces it, and the new options are in place (and described)
    /// when it is `available` again.
    pub fn modify_vpn_tunnel_options(
        &mut self,
        vpn_id: &str,
        outside_ip: Ipv4Addr,
        psk: Option<&Psk>,
        inside_cidr: Option<Ipv4Net>,
    ) -> Result<AwsVpnConnection, ApiError> {
        let now = self.aws_call();
        let dur = ms(self.latency.aws_modify_vpn_tunnel_options);
        let vpn =
            self.aws.vpn_connections.get(vpn_id).filter(|v| v.phase.state != AwsState::Deleted).ok_or_else(|| vpn_not_found(vpn_id))?;
        // Not retried, as for ModifyVpnConnection: a caller waits for `available` first.
        if vpn.phase.state != AwsState::Available {
            return Err(e400(
                ErrorKind::Permanent,
                "InvalidVpnConnection.InvalidState",
                format!("The VPN connection {vpn_id} is {:?}, not available.", vpn.phase.state),
            ));
        }
        if vpn.tunnels.iter().any(|t| t.modifying_until.is_some()) {
            return Err(e400(
                ErrorKind::Transient,
                "IncorrectState",
                format!("A tunnel of VPN connection {vpn_id} is already being modified."),
            ));
        }
        if !vpn.tunnels.iter().any(|t| t.outside_ip == outside_ip) {
            return Err(e400(
                ErrorKind::Permanent,
                "InvalidParameterValue",
                format!("The VPN connection {vpn_id} has no tunnel with outside IP address {outside_ip}."),
            ));
        }
        if let Some(k) = psk {
            check_psk(k.expose())?;
        }
        if let Some(net) = inside_cidr {
            check_inside_cidr(net)?;
            if self.aws.inside_cidrs_on(&vpn.vpn_gateway_id, Some((vpn_id, outside_ip))).contains(&net) {
                return Err(e400(
                    ErrorKind::Permanent,
                    "InvalidCidr.InUse",
                    format!("The tunnel inside CIDR {net} is already in use on {}.", vpn.vpn_gateway_id),
                ));
            }
        }
        let vpn = self.aws.vpn_connections.get_mut(vpn_id).expect("checked");
        vpn.modification = Some((now, now.saturating_add(dur)));
        let t = vpn.tunnels.iter_mut().find(|t| t.outside_ip == outside_ip).expect("checked");
        t.pending = Some(TunnelChange { psk: psk.cloned(), inside_cidr });
        t.modifying_until = Some(now.saturating_add(dur));
        t.since = now;
        Ok(vpn.clone())
    }
}

/// The first /30 in 169.254.0.0/16 (from 169.254.10.0) that is neither reserved nor used.
fn free_inside_cidr(used: &[Ipv4Net]) -> Ipv4Net {
    (10u8..=255)
        .flat_map(|c| (0u8..64).map(move |d| Ipv4Net::new(Ipv4Addr::new(169, 254, c, d * 4), 30).expect("valid prefix")))
        .find(|n| !reserved_inside_cidr(*n) && !used.contains(n))
        .expect("169.254.0.0/16 has room")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_cidr_rules() {
        let c = |s: &str| check_inside_cidr(s.parse().unwrap()).map_err(|e| e.message);
        assert!(c("169.254.10.0/30").is_ok());
        assert!(c("169.254.10.0/29").unwrap_err().contains("/30"));
        assert!(c("169.254.10.1/30").unwrap_err().contains("network address"));
        assert!(c("10.0.0.0/30").unwrap_err().contains("169.254.0.0/16"));
        assert!(c("169.254.3.0/30").unwrap_err().contains("reserved"));
        assert!(c("169.254.169.252/30").unwrap_err().contains("reserved"));
    }

    #[test]
    fn bad_keys_are_invalid_parameter_values() {
        // A core `Psk` is valid by construction, so this rule is only reachable here.
        for bad in ["short", "0leadingzero", "has-a-dash", &"a".repeat(65)] {
            let e = check_psk(bad).unwrap_err();
            assert_eq!((e.code.as_str(), e.kind), ("InvalidParameterValue", ErrorKind::Permanent), "{bad}");
        }
        assert!(check_psk("Good_key.123").is_ok());
    }

    #[test]
    fn free_inside_cidrs_skip_used_ones() {
        let a = free_inside_cidr(&[]);
        assert_eq!(a.to_string(), "169.254.10.0/30");
        assert_eq!(free_inside_cidr(&[a]).to_string(), "169.254.10.4/30");
    }
}
