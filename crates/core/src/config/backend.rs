//! What both clouds' tables have: `backend` (simulator or real cloud) and `endpoint` (an
//! API endpoint override).

use super::Backend;
use super::error::{Problem, problem};
use super::schema::{Checker, Section, closest};

impl Checker<'_> {
    /// `endpoint` of `table`: `Some(None)` when absent or "".
    pub(super) fn endpoint(&mut self, table: &Section<'_, '_>) -> Option<Option<String>> {
        match self.string(table, "endpoint") {
            None if table.has("endpoint") => None,
            None => Some(None),
            Some(v) => self.checked(&table.field("endpoint"), &v, |s| parse_endpoint(s)),
        }
    }
}

pub(super) fn parse_backend(s: &str, real: &str, other_side: &str) -> Result<Backend, Problem> {
    if s == "sim" {
        Ok(Backend::Sim)
    } else if s == real {
        Ok(Backend::Real)
    } else {
        let hint = if s == other_side {
            format!("\"{other_side}\" is the [{other_side}] table's backend; ")
        } else {
            closest(s, &["sim", real]).map(|c| format!("did you mean {c:?}? ")).unwrap_or_default()
        };
        Err(problem(
            format!("{s:?} is not a backend"),
            format!("{hint}use \"sim\" (the embedded simulator) or \"{real}\" (the real cloud)"),
        ))
    }
}

fn parse_endpoint(s: &str) -> Result<Option<String>, Problem> {
    if s.is_empty() {
        return Ok(None);
    }
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !s.chars().any(char::is_whitespace) => Ok(Some(s.to_owned())),
        _ => Err(problem(
            format!("{s:?} is not an http:// or https:// URL"),
            "write the full URL, e.g. \"http://127.0.0.1:8080\", or \"\" for the cloud's default endpoint",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(parse_endpoint("").unwrap(), None);
        assert_eq!(parse_endpoint("http://127.0.0.1:8080").unwrap().as_deref(), Some("http://127.0.0.1:8080"));
        assert!(parse_endpoint("https://").is_err());
        assert!(parse_endpoint("ftp://x").is_err());
        assert!(parse_endpoint("localhost:8080").is_err());
    }
}
