//! The top-level keys: the deployment's `name`, `mode`, `tunnels_per_connection` and
//! where the pre-shared keys come from (`psk`).

use super::error::{Problem, problem};
use super::schema::{Checker, Section, closest};
use super::{Mode, PskSource};
use crate::secret::{Psk, PskError};

/// What the top-level walk produced; `None` fields had an error reported.
#[derive(Debug)]
pub(super) struct TopPart {
    pub(super) name: Option<String>,
    pub(super) mode: Option<Mode>,
    pub(super) tunnels_per_connection: Option<u8>,
    pub(super) psk: Option<PskSource>,
}

impl Checker<'_> {
    pub(super) fn top(&mut self, s: &Section<'_, '_>, env: &dyn Fn(&str) -> Option<String>) -> TopPart {
        let name = self.string(s, "name").and_then(|n| self.checked("name", &n, |s| check_name(s).map(|()| s.clone())));

        let mode = match &self.string(s, "mode") {
            None => Some(Mode::StaticHa).filter(|_| !s.has("mode")),
            Some(m) => self.checked("mode", m, |s| parse_mode(s)),
        };
        let effective_mode = mode.unwrap_or(Mode::StaticHa);

        let tunnels_per_connection = match self.integer(s, "tunnels_per_connection") {
            None if s.has("tunnels_per_connection") => None,
            None => Some(if effective_mode == Mode::BgpHa { 2 } else { 1 }),
            Some(n) => {
                let mode_known = mode.is_some();
                self.checked("tunnels_per_connection", &n, |&n| check_tunnels_per_connection(n, effective_mode, mode_known))
            }
        };

        let psk = match self.string(s, "psk") {
            None if s.has("psk") => None,
            None => Some(PskSource::Generate),
            Some(p) => self.checked("psk", &p, |s| parse_psk(s, env)),
        };
        TopPart { name, mode, tunnels_per_connection, psk }
    }
}

fn check_name(s: &str) -> Result<(), Problem> {
    let why = "it prefixes Azure resource names such as <name>-lng-1-1 and is the vpnbridge:deployment tag value";
    let fix = || {
        let suggestion = suggest_name(s);
        format!("use 1-40 lowercase letters, digits and '-', starting with a letter, e.g. name = {suggestion:?}")
    };
    let len = s.chars().count();
    if len == 0 {
        return Err(problem(format!("is empty; {why}"), fix()));
    }
    if len > 40 {
        return Err(problem(format!("is {len} characters long; at most 40 are allowed ({why})"), fix()));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(problem(format!("contains {c:?}; only lowercase letters, digits and '-' are allowed ({why})"), fix()));
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(problem(format!("must start with a lowercase letter ({why})"), fix()));
    }
    if s.ends_with('-') {
        return Err(problem(format!("must not end with '-' ({why})"), fix()));
    }
    Ok(())
}

/// A valid name close to `s`.
fn suggest_name(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' };
        if out.is_empty() && !c.is_ascii_lowercase() {
            continue;
        }
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    out.truncate(40);
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() { "azure-aws".to_owned() } else { out }
}

fn parse_mode(s: &str) -> Result<Mode, Problem> {
    match s {
        "static-ha" => Ok(Mode::StaticHa),
        "bgp-ha" => Ok(Mode::BgpHa),
        _ => {
            let hint = closest(s, &["static-ha", "bgp-ha"]).map(|c| format!("did you mean {c:?}? ")).unwrap_or_default();
            Err(problem(
                format!("{s:?} is not a mode"),
                format!(r#"{hint}use "static-ha" (static routes, 2 or 4 tunnels) or "bgp-ha" (BGP, 4 tunnels)"#),
            ))
        }
    }
}

fn check_tunnels_per_connection(n: i128, mode: Mode, mode_known: bool) -> Result<u8, Problem> {
    match (mode, n) {
        (Mode::StaticHa, 1 | 2) => Ok(n as u8),
        (Mode::BgpHa, 2) => Ok(2),
        (Mode::BgpHa, _) if mode_known => Err(problem(
            format!("is {n}; bgp-ha uses both tunnels of both AWS VPN connections"),
            "set tunnels_per_connection = 2 or remove it (2 is the bgp-ha default)",
        )),
        _ => Err(problem(
            format!("is {n}; an AWS VPN connection has exactly two tunnels, so 1 or 2 of them can be used (2 or 4 tunnels in all)"),
            "set tunnels_per_connection = 1 (2 tunnels) or 2 (4 tunnels)",
        )),
    }
}

fn valid_env_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The rule a key breaks, without a word of the key itself.
fn psk_rule(e: &PskError) -> String {
    match e {
        PskError::Length(n) => format!("is {n} characters long; AWS accepts 8 to 64"),
        PskError::Character(_) => "contains a character other than letters, digits, '.' and '_'".to_owned(),
        PskError::LeadingZero => "starts with '0', which AWS refuses".to_owned(),
    }
}

fn parse_psk(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<PskSource, Problem> {
    const RULES: &str = "8-64 letters, digits, '.' or '_', not starting with '0'";
    match s {
        "generate" => return Ok(PskSource::Generate),
        "aws" => return Ok(PskSource::Aws),
        _ => {}
    }
    if let Some(var) = s.strip_prefix("env:") {
        // What follows `env:` may be a pasted key rather than a variable's name: it is
        // printed only when it looks like a conventional name (upper case, digits, '_').
        let conventional = !var.is_empty() && var.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !valid_env_name(var) {
            return Err(problem(
                "the value after env: is not an environment variable name (it is not shown: it may be a pasted key)",
                "write psk = \"env:NAME\" with NAME made of letters, digits and '_', e.g. \"env:VPNBRIDGE_PSK\"; if that was a real key, consider it exposed and rotate it",
            ));
        }
        let Some(value) = env(var) else {
            if !conventional {
                return Err(problem(
                    "the environment variable named after env: is not set (its name is not shown: it does not look like a variable name and may be a pasted key)",
                    format!(
                        "export the key ({RULES}) in a variable such as VPNBRIDGE_PSK and write psk = \"env:VPNBRIDGE_PSK\"; if that was a real key, consider it exposed and rotate it"
                    ),
                ));
            }
            return Err(problem(
                format!("environment variable {var} is not set"),
                format!("export {var}=<key> ({RULES}) before running vpnbridge, or use psk = \"generate\""),
            ));
        };
        return match Psk::new(&value) {
            Ok(key) => Ok(PskSource::Env { var: var.to_owned(), key }),
            Err(e) => Err(problem(
                format!("the key in environment variable {var} {}", psk_rule(&e)),
                format!("set {var} to {RULES}, or use psk = \"generate\""),
            )),
        };
    }
    // Not a key source. Never echo the value: it may be a key pasted in by mistake.
    let hint = if s.eq_ignore_ascii_case("generate") {
        "did you mean \"generate\"? "
    } else if s.eq_ignore_ascii_case("aws") {
        "did you mean \"aws\"? "
    } else {
        ""
    };
    Err(problem(
        "is not a key source: pre-shared keys never live in this file (the value is not shown)",
        format!(
            "{hint}use psk = \"generate\" (vpnbridge makes the keys), \"aws\" (AWS makes them) or \"env:NAME\" (export the key in NAME); if this was a real key, consider it exposed and rotate it"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse;
    use crate::config::testing::*;

    #[test]
    fn names() {
        assert!(check_name("azure-aws").is_ok());
        assert!(check_name("a").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("Azure").is_err());
        assert!(check_name("1abc").is_err());
        assert!(check_name("abc-").is_err());
        assert!(check_name(&"a".repeat(41)).is_err());
        assert!(check_name(&"a".repeat(40)).is_ok());
        assert_eq!(suggest_name("My_VPN--Prod-"), "my-vpn-prod");
    }

    #[test]
    fn psk_sources_never_echo_a_key() {
        let env = |k: &str| match k {
            "GOOD" => Some("Abcdefgh_123".to_owned()),
            "BAD" => Some("Abc-defgh".to_owned()),
            _ => None,
        };
        assert_eq!(parse_psk("generate", &env).unwrap(), PskSource::Generate);
        assert_eq!(parse_psk("aws", &env).unwrap(), PskSource::Aws);
        assert!(matches!(parse_psk("env:GOOD", &env).unwrap(), PskSource::Env { var, .. } if var == "GOOD"));
        let bad = parse_psk("env:BAD", &env).unwrap_err();
        assert!(!format!("{bad:?}").contains("Abc"));
        assert!(!format!("{bad:?}").contains("'-'"));
        assert!(parse_psk("env:UNSET", &env).unwrap_err().problem.contains("UNSET"));
        // A key pasted after env: is never printed back.
        for pasted in ["Zq7xK2mPqR9tLw4N", "Zq7x-K2m.PqR9"] {
            let e = parse_psk(&format!("env:{pasted}"), &env).unwrap_err();
            assert!(!format!("{}{}", e.problem, e.fix).contains(pasted), "{e:?}");
            assert!(e.fix.contains("rotate"), "{e:?}");
        }
        assert!(parse_psk("env:", &env).is_err());
        let literal = parse_psk("MySecretKey123", &env).unwrap_err();
        assert!(!format!("{literal:?}").contains("MySecret"));
        assert!(parse_psk("Generate", &env).unwrap_err().fix.contains("did you mean \"generate\""));
        let loaded = parse(&replace("psk = \"generate\"", "psk = \"env:GOOD\""), Path::new("t.toml"), &env).unwrap();
        assert!(!format!("{loaded:?}").contains("Abcdefgh_123"));
    }
}
