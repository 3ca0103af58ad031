//! Which Azure cloud an ARM endpoint belongs to, and the token authority it needs.
//!
//! A sovereign cloud has its own ARM endpoint and its own Microsoft Entra ID authority;
//! a token from one cloud's authority is refused by another's ARM (and the identity
//! may not even exist there). azure_identity 0.21 takes the authority from
//! `AZURE_AUTHORITY_HOST` and falls back to the public cloud's
//! (`TokenCredentialOptions::default`, `token_credentials/options.rs`): so a known
//! sovereign endpoint with the variable unset would ask the public cloud for tokens.
//! [`check_authority`] refuses that before any request. Endpoints of no known cloud
//! (the ARM fake on loopback, a proxy) are not checked.

use azure_core::Url;
use azure_core::authority_hosts as login;
use azure_core::resource_manager_endpoint as arm;

use crate::SetupError;

/// The environment variable azure_identity 0.21 reads the authority from.
pub const AUTHORITY_ENV: &str = "AZURE_AUTHORITY_HOST";

/// A cloud azure_core 0.21 knows: its name, ARM endpoint and authority.
struct Cloud {
    name: &'static str,
    arm: &'static Url,
    authority: &'static Url,
}

fn clouds() -> [Cloud; 4] {
    [
        Cloud { name: "the Azure public cloud", arm: &arm::AZURE_PUBLIC_CLOUD, authority: &login::AZURE_PUBLIC_CLOUD },
        Cloud { name: "Azure US Government", arm: &arm::AZURE_US_GOVERNMENT_CLOUD, authority: &login::AZURE_US_GOVERNMENT_CLOUD },
        Cloud { name: "Azure operated by 21Vianet (China)", arm: &arm::AZURE_CHINA_CLOUD, authority: &login::AZURE_CHINA_CLOUD },
        Cloud { name: "Azure Germany (retired)", arm: &arm::AZURE_GERMANY_CLOUD, authority: &login::AZURE_GERMANY_CLOUD },
    ]
}

fn same_host(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port() == b.port()
}

/// Checks that tokens for `endpoint` would come from its cloud's authority:
/// `authority` is `AZURE_AUTHORITY_HOST` (`None` or empty: unset, so azure_identity
/// uses the public cloud's). Passes for an endpoint of no known cloud.
pub(crate) fn check_authority(endpoint: &Url, authority: Option<&str>) -> Result<(), SetupError> {
    let Some(cloud) = clouds().into_iter().find(|c| same_host(c.arm, endpoint)) else { return Ok(()) };
    let given = authority.map(str::trim).filter(|a| !a.is_empty());
    let effective = match given {
        Some(a) => {
            Url::parse(a).map_err(|e| SetupError::Authority { authority: a.to_owned(), variable: AUTHORITY_ENV, reason: e.to_string() })?
        }
        None => (*login::AZURE_PUBLIC_CLOUD).clone(),
    };
    if same_host(cloud.authority, &effective) {
        return Ok(());
    }
    let expected = cloud.authority.as_str().trim_end_matches('/').to_owned();
    let authority = match given {
        Some(a) => format!("{a} ({AUTHORITY_ENV})"),
        None => format!(
            "{} ({AUTHORITY_ENV} is not set, so azure_identity uses the public cloud's)",
            login::AZURE_PUBLIC_CLOUD.as_str().trim_end_matches('/')
        ),
    };
    Err(SetupError::WrongAuthority {
        endpoint: endpoint.as_str().trim_end_matches('/').to_owned(),
        cloud: cloud.name,
        authority,
        variable: AUTHORITY_ENV,
        expected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("a URL")
    }

    #[test]
    fn a_sovereign_endpoint_needs_its_own_authority() {
        let gov = url("https://management.usgovcloudapi.net");
        assert!(check_authority(&gov, Some("https://login.microsoftonline.us")).is_ok());
        assert!(check_authority(&gov, Some("https://login.microsoftonline.us/")).is_ok());
        let china = url("https://management.chinacloudapi.cn/");
        assert!(check_authority(&china, Some("https://login.chinacloudapi.cn")).is_ok());
        for (endpoint, authority) in [(&gov, None), (&gov, Some("")), (&gov, Some("https://login.microsoftonline.com")), (&china, None)] {
            let e = check_authority(endpoint, authority).expect_err("refused");
            let text = e.to_string();
            assert!(text.contains(endpoint.as_str().trim_end_matches('/')), "names the endpoint: {text}");
            assert!(text.contains("login.microsoftonline.com"), "names the authority in use: {text}");
            assert!(text.contains("AZURE_AUTHORITY_HOST="), "says the fix: {text}");
        }
        let e = check_authority(&china, Some("https://login.microsoftonline.us")).expect_err("refused").to_string();
        assert!(e.contains("AZURE_AUTHORITY_HOST=https://login.chinacloudapi.cn") && e.contains("login.microsoftonline.us"), "{e}");
    }

    #[test]
    fn the_public_cloud_takes_the_default_and_refuses_a_sovereign_authority() {
        let public = url("https://management.azure.com/");
        assert!(check_authority(&public, None).is_ok());
        assert!(check_authority(&public, Some("https://login.microsoftonline.com/")).is_ok());
        let e = check_authority(&public, Some("https://login.chinacloudapi.cn")).expect_err("refused").to_string();
        assert!(e.contains("AZURE_AUTHORITY_HOST=https://login.microsoftonline.com"), "{e}");
    }

    #[test]
    fn other_endpoints_are_not_checked() {
        for e in ["http://127.0.0.1:8443", "https://arm-proxy.example.com"] {
            assert!(check_authority(&url(e), None).is_ok());
            assert!(check_authority(&url(e), Some("https://login.microsoftonline.us")).is_ok());
        }
    }

    #[test]
    fn an_authority_that_is_not_a_url_is_refused() {
        let e = check_authority(&url("https://management.usgovcloudapi.net"), Some("login.microsoftonline.us")).expect_err("refused");
        assert!(matches!(e, SetupError::Authority { .. }), "{e}");
    }
}
