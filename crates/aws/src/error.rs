//! EC2 errors as the core's [`EndpointError`]s: the code decides the [`ErrorKind`], the
//! message says what to do, and the request id is kept so AWS support can find the call.

use std::error::Error as StdError;

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::operation::RequestId;
use vpnbridge_core::endpoint::{CloudName, EndpointError, ErrorKind};

/// How the core should treat an EC2 error code (with the HTTP status, when there was a
/// response).
pub fn classify(code: &str, status: Option<u16>) -> ErrorKind {
    match code {
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" | "RequestThrottled" | "TooManyRequestsException" => {
            ErrorKind::Throttled
        }
        "InternalError" | "InternalFailure" | "ServiceUnavailable" | "Unavailable" | "RequestTimeout" | "RequestExpired" => {
            ErrorKind::Transient
        }
        // A state that settles by itself: a gateway still detaching, a CGW whose VPN
        // connections are still being deleted.
        "IncorrectState" | "DependencyViolation" | "InvalidVpnGatewayAttachment.InvalidState" => ErrorKind::Transient,
        // Someone else's resource is in the way.
        "InvalidVpcState"
        | "RouteAlreadyExists"
        | "InvalidCustomerGateway.DuplicateIpAddress"
        | "InvalidOption.Conflict"
        | "InvalidCidr.InUse"
        | "ForeignCustomerGateway" => ErrorKind::Conflict,
        // The configured VPC is a prerequisite, not something we create: its absence is
        // a configuration error.
        "InvalidVpcID.NotFound" => ErrorKind::Permanent,
        c if c.ends_with(".NotFound") => ErrorKind::NotFound,
        _ => match status {
            Some(s) if s >= 500 => ErrorKind::Transient,
            _ => ErrorKind::Permanent,
        },
    }
}

/// What the user should do about a permanent error, when there is more to say than
/// EC2's own message.
pub fn advice(code: &str) -> Option<&'static str> {
    Some(match code {
        "VpnGatewayLimitExceeded" => {
            "the region's quota of virtual private gateways (default 5) is used up: delete an unused VGW or request a quota increase in Service Quotas, then apply again"
        }
        "CustomerGatewayLimitExceeded" => {
            "the region's quota of customer gateways (default 50) is used up: delete unused CGWs or request a quota increase in Service Quotas, then apply again"
        }
        "VpnConnectionLimitExceeded" => {
            "the quota of Site-to-Site VPN connections (default 10 per VGW) is used up: delete unused connections or request a quota increase, then apply again"
        }
        "VpnGatewayAttachmentLimitExceeded" => "the VGW's attachment limit is reached: detach it from the other VPC first",
        "InvalidVpcID.NotFound" => "the configured VPC does not exist in this account and region: check aws.vpc_id and aws.region",
        "InvalidVpcState" => "the VPC already has a virtual private gateway attached: detach it, or point vpnbridge at another VPC",
        "InvalidParameterValue" | "InvalidParameterCombination" | "MissingParameter" => {
            "EC2 refused a value vpnbridge sent: check the field it names in the configuration (PSK, inside CIDR, ASN, prefixes)"
        }
        "AsnConflict" => "the customer gateway's BGP ASN equals the VGW's Amazon-side ASN: choose different ASNs",
        "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" => {
            "the credentials lack an EC2 permission vpnbridge needs: attach the policy in crates/aws/iam-policy.json"
        }
        "AuthFailure" | "InvalidClientTokenId" | "SignatureDoesNotMatch" | "UnrecognizedClientException" | "ExpiredToken" => {
            "AWS did not accept the credentials: check the profile or environment (aws sts get-caller-identity), or log in again (aws sso login)"
        }
        "OptInRequired" | "InvalidRegion" => "the region is not enabled for this account: enable it or choose another aws.region",
        _ => return None,
    })
}

fn error(kind: ErrorKind, code: &str, message: String, request_id: Option<String>, may_have_committed: bool) -> EndpointError {
    let message = match (kind, advice(code)) {
        (ErrorKind::Permanent | ErrorKind::Conflict, Some(a)) => format!("{message}; {a}"),
        _ => message,
    };
    let mut e = EndpointError::new(CloudName::Aws, kind, code, message);
    e.request_id = request_id;
    e.may_have_committed = may_have_committed;
    e
}

/// Translates an SDK error of operation `op`. Whether the request may have been carried
/// out: yes for timeouts, failures after dispatch and 5xx answers other than throttling;
/// no for an EC2 client error (it was refused) or a request that could not be built.
pub fn from_sdk<E>(op: &str, e: SdkError<E, HttpResponse>) -> EndpointError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match &e {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let err = ctx.err();
            let code = err.code().unwrap_or(if status >= 500 { "InternalError" } else { "Unknown" }).to_owned();
            let kind = classify(&code, Some(status));
            let message = format!("{op}: {}", err.message().unwrap_or("(no message)"));
            let request_id = err
                .meta()
                .request_id()
                .map(str::to_owned)
                .or_else(|| {
                    ctx.raw().headers().get("x-amzn-requestid").or_else(|| ctx.raw().headers().get("x-amz-request-id")).map(str::to_owned)
                })
                .or_else(|| ctx.raw().body().bytes().and_then(request_id_in_body));
            // A throttled request was refused, not carried out; any other 5xx may have been.
            error(kind, &code, message, request_id, status >= 500 && kind != ErrorKind::Throttled)
        }
        SdkError::TimeoutError(_) => {
            error(ErrorKind::Transient, "RequestTimeout", format!("{op}: no answer in time ({})", DisplayErrorContext(&e)), None, true)
        }
        SdkError::DispatchFailure(_) => {
            error(ErrorKind::Transient, "DispatchFailure", format!("{op}: could not reach EC2 ({})", DisplayErrorContext(&e)), None, true)
        }
        SdkError::ResponseError(_) => {
            error(ErrorKind::Transient, "ResponseError", format!("{op}: unreadable answer ({})", DisplayErrorContext(&e)), None, true)
        }
        _ => error(ErrorKind::Permanent, "ConstructionFailure", format!("{op}: {}", DisplayErrorContext(&e)), None, false),
    }
}

/// The `<RequestID>` of an EC2 error body (`<Response><Errors>…</Errors><RequestID>`),
/// which the SDK's EC2 error parser does not keep.
fn request_id_in_body(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let doc = roxmltree::Document::parse(text).ok()?;
    let id = doc.root_element().children().find(|n| n.is_element() && n.tag_name().name().eq_ignore_ascii_case("RequestID"))?;
    id.text().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

/// An error the adapter raises itself (not from EC2).
pub fn local(kind: ErrorKind, code: &str, message: impl Into<String>) -> EndpointError {
    error(kind, code, message.into(), None, false)
}

/// Whether `e` says the resource is already gone (a delete that finds nothing is done).
pub fn is_gone(e: &EndpointError) -> bool {
    e.kind == ErrorKind::NotFound || e.code == "InvalidVpcID.NotFound"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_are_throttled() {
        for code in ["RequestLimitExceeded", "Throttling"] {
            assert_eq!(classify(code, Some(503)), ErrorKind::Throttled, "{code}");
            assert_eq!(classify(code, Some(400)), ErrorKind::Throttled, "{code}");
        }
    }

    #[test]
    fn server_errors_are_transient_client_errors_permanent() {
        assert_eq!(classify("InternalError", Some(500)), ErrorKind::Transient);
        assert_eq!(classify("SomethingNew", Some(503)), ErrorKind::Transient);
        assert_eq!(classify("SomethingNew", Some(400)), ErrorKind::Permanent);
        assert_eq!(classify("SomethingNew", None), ErrorKind::Permanent);
    }

    #[test]
    fn quotas_are_permanent_with_advice() {
        for code in ["VpnConnectionLimitExceeded", "CustomerGatewayLimitExceeded", "VpnGatewayLimitExceeded"] {
            assert_eq!(classify(code, Some(400)), ErrorKind::Permanent, "{code}");
            let e = error(classify(code, Some(400)), code, "Limit reached".into(), Some("req-1".into()), false);
            assert!(e.message.contains("quota"), "{e}");
            assert!(e.to_string().contains("request id req-1"), "{e}");
        }
    }

    #[test]
    fn request_id_from_the_error_body() {
        let body = b"<?xml version=\"1.0\"?><Response><Errors><Error><Code>X</Code><Message>m</Message></Error></Errors><RequestID>ab-12</RequestID></Response>";
        assert_eq!(request_id_in_body(body).as_deref(), Some("ab-12"));
        assert_eq!(request_id_in_body(b"not xml"), None);
    }

    #[test]
    fn not_found_codes() {
        assert_eq!(classify("InvalidVpnGatewayID.NotFound", Some(400)), ErrorKind::NotFound);
        assert_eq!(classify("InvalidCustomerGatewayID.NotFound", Some(400)), ErrorKind::NotFound);
        assert_eq!(classify("InvalidVpnConnectionID.NotFound", Some(400)), ErrorKind::NotFound);
        assert_eq!(classify("InvalidRoute.NotFound", Some(400)), ErrorKind::NotFound);
        // The VPC is configuration, not a resource of ours.
        assert_eq!(classify("InvalidVpcID.NotFound", Some(400)), ErrorKind::Permanent);
        assert!(advice("InvalidVpcID.NotFound").is_some_and(|a| a.contains("aws.vpc_id")));
    }

    #[test]
    fn conflicts_and_settling_states() {
        assert_eq!(classify("InvalidVpcState", Some(400)), ErrorKind::Conflict);
        assert_eq!(classify("RouteAlreadyExists", Some(400)), ErrorKind::Conflict);
        assert_eq!(classify("IncorrectState", Some(400)), ErrorKind::Transient);
        assert_eq!(classify("InvalidParameterValue", Some(400)), ErrorKind::Permanent);
    }
}
