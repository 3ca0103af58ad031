//! What is wrong with a config file: one [`ConfigError`] per problem, all of them in
//! [`ConfigErrors`], and [`ConfigWarning`]s for what is legal but probably not meant.

use std::fmt;
use std::path::PathBuf;

/// One problem in a config file: where it is, what is wrong and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted path of the field (`azure.gateway_sku`, `aws.cidrs[1]`), or "" for a
    /// problem with the file itself (syntax, missing file).
    pub field: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.problem)?;
        if !self.fix.is_empty() {
            write!(f, "\n  fix: {}", self.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// How many errors [`ConfigErrors`] shows in full; a last line counts the others.
pub const SHOWN_ERRORS: usize = 100;

/// Every problem found in a config file (never empty when returned by [`load`] or
/// [`parse`]), in file order. All of them are kept; the display shows the first
/// [`SHOWN_ERRORS`] and says how many more there are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_errors(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// One message per error, the first [`SHOWN_ERRORS`] of them, then (if there are
    /// more) one line saying how many were left out: what the CLI shows and puts in JSON.
    pub fn messages(&self) -> Vec<String> {
        let mut out: Vec<String> = self.0.iter().take(SHOWN_ERRORS).map(ToString::to_string).collect();
        if let Some(more) = more_errors_line(self.0.len()) {
            out.push(more);
        }
        out
    }
}

fn more_errors_line(total: usize) -> Option<String> {
    (total > SHOWN_ERRORS).then(|| {
        let more = total - SHOWN_ERRORS;
        format!("... and {more} more error{} not shown: fix these and run again", if more == 1 { "" } else { "s" })
    })
}

fn render_errors(errors: &[ConfigError]) -> String {
    let mut out = String::new();
    for (i, e) in errors.iter().take(SHOWN_ERRORS).enumerate() {
        let prefix = format!("{}. ", i + 1);
        let indent = " ".repeat(prefix.len());
        for (j, line) in e.to_string().lines().enumerate() {
            out.push_str(if j == 0 { &prefix } else { &indent });
            out.push_str(line);
            out.push('\n');
        }
    }
    if let Some(more) = more_errors_line(errors.len()) {
        out.push_str(&more);
        out.push('\n');
    }
    let n = errors.len();
    let file = errors.first().map(|e| e.file.display().to_string()).unwrap_or_default();
    out.push_str(&format!("{n} error{} in {file}", if n == 1 { "" } else { "s" }));
    out
}

/// Something legal but probably not what was meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// What is wrong with a value and what to do, before it is given a place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    pub(super) problem: String,
    pub(super) fix: String,
}

pub(super) fn problem(problem: impl Into<String>, fix: impl Into<String>) -> Problem {
    Problem { problem: problem.into(), fix: fix.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_numbers_and_counts() {
        let errs = ConfigErrors(vec![
            ConfigError { file: "f.toml".into(), field: "a".into(), line: Some(1), column: Some(2), problem: "p".into(), fix: "x".into() },
            ConfigError { file: "f.toml".into(), field: String::new(), line: None, column: None, problem: "q".into(), fix: String::new() },
        ]);
        assert_eq!(errs.to_string(), "1. f.toml:1:2: a: p\n     fix: x\n2. f.toml: q\n2 errors in f.toml");
    }
}
