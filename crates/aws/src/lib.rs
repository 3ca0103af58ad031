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
mod observe;
mod poll;
mod preflight;
mod probe;
mod start;
mod tunnels;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::{BehaviorVersion, Region};
use vpnbridge_core::endpoint::{Aws, EndpointError, ErrorKind, OpHandle, OpStatus, Tunnel, VpnEndpoint};
use vpnbridge_core::model::{AwsObserved, Owner};
use vpnbridge_core::ops::AwsOp;

pub use config_xml::{ConfigTunnel, parse as parse_customer_gateway_configuration};
pub use error::{advice, classify};
pub use preflight::{Preflight, QuotaNeed, Quotas};
pub use probe::{Ec2TestVm, POWERSHELL_DOCUMENT, SHELL_DOCUMENT};

use crate::error::local;
use crate::handle::Wait;
pub(crate) use crate::observe::filter;
use crate::poll::bad_handle;
use crate::start::start_failed;
use crate::tunnels::end_of;

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

#[async_trait]
impl VpnEndpoint<Aws> for AwsEndpoint {
    async fn observe(&self, owner: &Owner) -> Result<AwsObserved, EndpointError> {
        let (vpc, vpn_gateways, foreign, (customer_gateways, foreign_customer_gateways), (vpn_connections, mut foreign_vpn_connections)) =
            tokio::try_join!(
                self.describe_vpc(),
                self.our_vgws(owner),
                self.foreign_vgw_on_vpc(owner),
                self.all_cgws(owner),
                self.all_vpns(owner),
            )?;
        foreign_vpn_connections.retain(|v| {
            customer_gateways.iter().any(|c| c.id == v.customer_gateway_id) || vpn_gateways.iter().any(|g| g.id == v.vpn_gateway_id)
        });
        let elsewhere = if vpn_gateways.is_empty() { self.vgws_elsewhere(owner).await? } else { Vec::new() };
        let deployment_of = foreign.iter().filter_map(|(id, d)| Some((id.clone(), d.clone()?))).collect();
        let foreign_vgw_on_vpc = foreign.map(|(id, _)| id);
        Ok(AwsObserved {
            vpc,
            vpn_gateways,
            foreign_vgw_on_vpc,
            customer_gateways,
            vpn_connections,
            foreign_customer_gateways,
            foreign_vpn_connections,
            elsewhere,
            deployment_of,
        })
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
        assert!(called.contains("ec2:EnableVgwRoutePropagation") && called.contains("ec2:DisableVgwRoutePropagation"), "{called:?}");
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
}
