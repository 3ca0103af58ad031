//! [`Ec2TestVm`]: the user's EC2 test instance for the probe. It reads the instance
//! (`DescribeInstances`: state, private IP, security groups), asks Systems Manager
//! whether it is a managed instance (`DescribeInstanceInformation`: agent online,
//! platform), checks that its own security groups let ICMP in from the VNet
//! (`DescribeSecurityGroups`, per instance), and runs scripts with SSM Run Command
//! (`SendCommand` with `AWS-RunShellScript` or `AWS-RunPowerShellScript`, then
//! `GetCommandInvocation` until the invocation ends).

use std::net::Ipv4Addr;

use async_trait::async_trait;
use ipnet::Ipv4Net;
use vpnbridge_core::endpoint::EndpointError;
use vpnbridge_core::probe::ProbeError;
use vpnbridge_core::probe::output::Os;
use vpnbridge_core::probe::vm::{RunState, TestVm, VmFacts};

use crate::AwsSettings;
use crate::error::from_sdk;
use crate::preflight::{allows_icmp_from, inbound_rules};

/// The SSM documents the probe runs (the IAM policy scopes `ssm:SendCommand` to them).
pub const SHELL_DOCUMENT: &str = "AWS-RunShellScript";
pub const POWERSHELL_DOCUMENT: &str = "AWS-RunPowerShellScript";

/// One EC2 instance the probe runs its pings on.
#[derive(Debug, Clone)]
pub struct Ec2TestVm {
    client: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
    instance_id: String,
}

const AGENT_FIX: &str = "install and start the SSM agent on it, and attach an instance profile whose role has the \
     AmazonSSMManagedInstanceCore policy (the instance then registers with Systems Manager within minutes)";

fn probe_error(what: &str, e: &EndpointError) -> ProbeError {
    let hint = match e.code.as_str() {
        "AccessDeniedException" | "UnauthorizedOperation" | "AccessDenied" => {
            " (the IAM policy needs ssm:SendCommand on the instance and the AWS-Run*Script documents, ssm:GetCommandInvocation, \
             ssm:DescribeInstanceInformation and ec2:DescribeInstances: see iam-policy.json)"
        }
        "InvalidInstanceId" => " (the instance is not a managed instance of Systems Manager, or its agent is offline)",
        _ => "",
    };
    ProbeError(format!("{what}: {e}{hint}"))
}

impl Ec2TestVm {
    /// Clients through `aws-config`'s default chain, as [`crate::AwsEndpoint::connect`]
    /// (`aws.endpoint` serves SSM too: an emulator answers both).
    pub async fn connect(settings: &AwsSettings, instance_id: impl Into<String>) -> Result<Self, EndpointError> {
        let sdk = crate::sdk_config(settings).await?;
        Ok(Self::from_clients(aws_sdk_ec2::Client::new(&sdk), aws_sdk_ssm::Client::new(&sdk), instance_id))
    }

    /// On already configured clients (tests).
    pub fn from_clients(client: aws_sdk_ec2::Client, ssm: aws_sdk_ssm::Client, instance_id: impl Into<String>) -> Self {
        Self { client, ssm, instance_id: instance_id.into() }
    }
}

#[async_trait]
impl TestVm for Ec2TestVm {
    fn describe(&self) -> String {
        format!("EC2 instance {}", self.instance_id)
    }

    async fn inspect(&self, icmp_from: &[Ipv4Net]) -> Result<VmFacts, ProbeError> {
        let id = &self.instance_id;
        let c = &self.client;
        let missing = |why: String| VmFacts { private_ip: Ipv4Addr::UNSPECIFIED, os: Os::Linux, errors: vec![why], warnings: Vec::new() };
        let described = match c.describe_instances().instance_ids(id).send().await.map_err(|e| from_sdk("DescribeInstances", e)) {
            Ok(d) => d,
            Err(e) if e.code.starts_with("InvalidInstanceID") => {
                return Ok(missing(format!("EC2 instance {id} does not exist in this region: fix [probe] aws_instance ({})", e.code)));
            }
            Err(e) => return Err(probe_error(&format!("reading EC2 instance {id}"), &e)),
        };
        let Some(instance) = described.reservations().iter().flat_map(|r| r.instances()).find(|i| i.instance_id() == Some(id)) else {
            return Ok(missing(format!("EC2 instance {id} does not exist in this region: fix [probe] aws_instance")));
        };
        let mut errors = Vec::new();
        let state = instance.state().and_then(|s| s.name()).map(|n| n.as_str().to_owned()).unwrap_or_else(|| "unknown".into());
        if state != "running" {
            errors.push(format!(
                "EC2 instance {id} is {state}: Run Command needs it running; start it (`aws ec2 start-instances --instance-ids {id}`)"
            ));
        }
        let private_ip = instance.private_ip_address().and_then(|s| s.parse::<Ipv4Addr>().ok()).unwrap_or(Ipv4Addr::UNSPECIFIED);
        if private_ip.is_unspecified() && errors.is_empty() {
            errors.push(format!("EC2 instance {id} has no private IPv4 address: it cannot be pinged"));
        }

        // Managed by Systems Manager, agent online, and on which platform.
        let info = self
            .ssm
            .describe_instance_information()
            .filters(
                aws_sdk_ssm::types::InstanceInformationStringFilter::builder()
                    .key("InstanceIds")
                    .values(id)
                    .build()
                    .map_err(|e| ProbeError(format!("building the DescribeInstanceInformation filter: {e}")))?,
            )
            .send()
            .await
            .map_err(|e| from_sdk("DescribeInstanceInformation", e))
            .map_err(|e| probe_error(&format!("asking Systems Manager about {id}"), &e))?;
        let mut os = Os::Linux;
        match info.instance_information_list().iter().find(|i| i.instance_id() == Some(id)) {
            None => errors.push(format!("EC2 instance {id} is not a managed instance of Systems Manager: {AGENT_FIX}")),
            Some(i) => {
                let ping = i.ping_status().map(|p| p.as_str().to_owned()).unwrap_or_default();
                if ping != "Online" {
                    errors.push(format!("the SSM agent of EC2 instance {id} is {ping} (not Online): {AGENT_FIX}"));
                }
                if i.platform_type().is_some_and(|p| p.as_str() == "Windows") {
                    os = Os::Windows;
                }
            }
        }

        // The instance's own security groups, not any group of the VPC.
        let groups: Vec<String> = instance.security_groups().iter().filter_map(|g| g.group_id().map(str::to_owned)).collect();
        if groups.is_empty() {
            errors.push(format!(
                "EC2 instance {id} is in no security group, so nothing lets ICMP in from the VNet ({}): give it a group that allows ICMP from there",
                icmp_from.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ));
        } else {
            let described = c
                .describe_security_groups()
                .set_group_ids(Some(groups.clone()))
                .send()
                .await
                .map_err(|e| from_sdk("DescribeSecurityGroups", e))
                .map_err(|e| probe_error(&format!("reading the security groups of {id}"), &e))?;
            let rules = inbound_rules(described.security_groups());
            for prefix in icmp_from {
                if !rules.iter().any(|(proto, port, ranges)| allows_icmp_from(proto, *port, ranges, *prefix)) {
                    errors.push(format!(
                        "no security group of EC2 instance {id} ({}) lets ICMP in from the VNet's {prefix}: allow it with \
                         `aws ec2 authorize-security-group-ingress --group-id {} --protocol icmp --port -1 --cidr {prefix}`",
                        groups.join(", "),
                        groups[0]
                    ));
                }
            }
        }
        Ok(VmFacts { private_ip, os, errors, warnings: Vec::new() })
    }

    async fn start(&self, os: Os, script: &str) -> Result<String, ProbeError> {
        let document = match os {
            Os::Linux => SHELL_DOCUMENT,
            Os::Windows => POWERSHELL_DOCUMENT,
        };
        let sent = self
            .ssm
            .send_command()
            .document_name(document)
            .instance_ids(&self.instance_id)
            .parameters("commands", script.lines().map(str::to_owned).collect())
            .comment("vpnbridge probe: ping across the VPN")
            .send()
            .await
            .map_err(|e| from_sdk("SendCommand", e))
            .map_err(|e| probe_error(&format!("sending the command to EC2 instance {}", self.instance_id), &e))?;
        sent.command()
            .and_then(|c| c.command_id())
            .map(str::to_owned)
            .ok_or_else(|| ProbeError("SendCommand answered without a CommandId".to_owned()))
    }

    async fn poll(&self, id: &str) -> Result<RunState, ProbeError> {
        let got = self.ssm.get_command_invocation().command_id(id).instance_id(&self.instance_id).send().await;
        let out = match got.map_err(|e| from_sdk("GetCommandInvocation", e)) {
            Ok(o) => o,
            // Right after SendCommand the invocation may not be visible yet.
            Err(e) if e.code == "InvocationDoesNotExist" => return Ok(RunState::Running),
            Err(e) => return Err(probe_error(&format!("reading the command on EC2 instance {}", self.instance_id), &e)),
        };
        let status = out.status().map(|s| s.as_str().to_owned()).unwrap_or_default();
        Ok(match status.as_str() {
            "Pending" | "InProgress" | "Delayed" => RunState::Running,
            "Success" => RunState::Done {
                stdout: out.standard_output_content().unwrap_or_default().to_owned(),
                stderr: out.standard_error_content().unwrap_or_default().to_owned(),
            },
            other => RunState::Failed(format!(
                "SSM status {other} ({}), exit code {}: {}",
                out.status_details().unwrap_or("no details"),
                out.response_code(),
                out.standard_error_content().map(str::trim).filter(|s| !s.is_empty()).unwrap_or("no error output")
            )),
        })
    }
}
