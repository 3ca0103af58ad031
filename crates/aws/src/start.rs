//! Starting an operation: one EC2 call, then the [`Wait`] that `poll` evaluates.
//! Errors are EC2's, translated (`error::from_sdk`); whether a refusal means "already
//! done" or a returned gateway is someone else's is the core's decision.

use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::types::{
    GatewayType, ModifyVpnTunnelOptionsSpecification, ResourceType, Tag, TagSpecification, VpnConnectionOptionsSpecification,
    VpnTunnelOptionsSpecification,
};
use vpnbridge_core::endpoint::EndpointError;
use vpnbridge_core::goal::Goal;
use vpnbridge_core::model::Tags;
use vpnbridge_core::ops::{AwsOp, AwsResourceKind};

use crate::AwsEndpoint;
use crate::error::{from_sdk, is_gone};
use crate::handle::Wait;
use crate::observe::bad_answer;

/// The SDK config override that turns retries off for one call: a create without a
/// client token must not be repeated blindly.
pub(crate) fn no_retry() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::default().retry_config(RetryConfig::disabled())
}

pub(crate) fn tag_spec(kind: ResourceType, tags: &Tags) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()))
        .build()
}

impl AwsEndpoint {
    pub(crate) async fn start_op(&self, op: &AwsOp) -> Result<Wait, EndpointError> {
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
            AwsOp::EnableVgwRoutePropagation { route_table_id, vgw_id } => {
                c.enable_vgw_route_propagation()
                    .route_table_id(route_table_id)
                    .gateway_id(vgw_id)
                    .send()
                    .await
                    .map_err(|e| from_sdk("EnableVgwRoutePropagation", e))?;
                Wait::Propagation { route_table_id: route_table_id.clone(), vgw_id: vgw_id.clone(), target }
            }
            AwsOp::DisableVgwRoutePropagation { route_table_id, vgw_id } => {
                let r = c.disable_vgw_route_propagation().route_table_id(route_table_id).gateway_id(vgw_id).send().await;
                tolerate_gone(r.map(drop).map_err(|e| from_sdk("DisableVgwRoutePropagation", e)))?;
                Wait::Propagation { route_table_id: route_table_id.clone(), vgw_id: vgw_id.clone(), target }
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
                AwsResourceKind::VpnConnectionRoute { destination } => {
                    Wait::VpnRoute { vpn_id: id.clone(), destination: destination.to_string(), target }
                }
            },
        })
    }
}

/// A delete that finds nothing to delete has done its job.
pub(crate) fn tolerate_gone(r: Result<(), EndpointError>) -> Result<(), EndpointError> {
    match r {
        Err(e) if is_gone(&e) || e.code == "InvalidVpnGatewayAttachment.NotFound" => Ok(()),
        other => other,
    }
}

pub(crate) fn created_without_id(op: &str) -> EndpointError {
    let mut e = bad_answer(format!("{op} answered without the new resource's id"));
    e.may_have_committed = true;
    e
}

/// The core's error for a failed start, with the ambiguity rule applied: a create whose
/// outcome is unknown must be re-observed, not retried.
pub(crate) fn start_failed(op: &AwsOp, mut e: EndpointError) -> EndpointError {
    if !op.creates_without_token() {
        e.may_have_committed = false;
    }
    e
}

#[cfg(test)]
mod tests {
    use vpnbridge_core::endpoint::ErrorKind;

    use super::*;
    use crate::error::local;

    #[test]
    fn only_tokenless_creates_stay_ambiguous() {
        let mut e = local(ErrorKind::Transient, "RequestTimeout", "t");
        e.may_have_committed = true;
        let create = AwsOp::CreateVpnGateway { amazon_asn: 64512, tags: Tags::new() };
        assert!(start_failed(&create, e.clone()).may_have_committed);
        let delete = AwsOp::DeleteVpnGateway { vgw_id: "vgw-1".into() };
        assert!(!start_failed(&delete, e).may_have_committed);
    }
}
