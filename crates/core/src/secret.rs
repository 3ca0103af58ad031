//! Secrets: the pre-shared keys of the tunnels.
//!
//! A [`Psk`] never prints (Debug and Display redact it) and is never serialised by
//! accident: it has no `Serialize` impl. The one way to read it is
//! [`Psk::expose`], which callers use only to hand it to a cloud API.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// Why a string cannot be a pre-shared key that both clouds accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PskError {
    #[error("is {0} characters long; AWS accepts 8 to 64")]
    Length(usize),
    #[error("contains {0:?}; only letters, digits, '.' and '_' are allowed")]
    Character(char),
    #[error("starts with '0', which AWS refuses")]
    LeadingZero,
}

/// A tunnel's pre-shared key, valid for both AWS (8-64 of `[A-Za-z0-9._]`, not
/// starting with `0`) and Azure.
#[derive(Clone)]
pub struct Psk(SecretString);

impl Psk {
    /// The alphabet of generated keys: letters and digits only, so the key survives
    /// any copy-paste and any shell.
    const ALPHABET: &'static [u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    /// Length of generated keys (AWS allows up to 64; 32 is 190 bits of entropy).
    pub const GENERATED_LEN: usize = 32;

    /// Checks `text` against both clouds' rules.
    pub fn new(text: &str) -> Result<Self, PskError> {
        Self::check(text)?;
        Ok(Self(SecretString::from(text.to_owned())))
    }

    /// The rules alone, without keeping the key.
    pub fn check(text: &str) -> Result<(), PskError> {
        let len = text.chars().count();
        if !(8..=64).contains(&len) {
            return Err(PskError::Length(len));
        }
        if let Some(c) = text.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '_')) {
            return Err(PskError::Character(c));
        }
        if text.starts_with('0') {
            return Err(PskError::LeadingZero);
        }
        Ok(())
    }

    /// A fresh random key that both clouds accept.
    pub fn generate() -> Self {
        use rand::Rng;
        let mut rng = rand::rng();
        let mut key = String::with_capacity(Self::GENERATED_LEN);
        while key.len() < Self::GENERATED_LEN {
            let c = Self::ALPHABET[rng.random_range(0..Self::ALPHABET.len())] as char;
            if key.is_empty() && c == '0' {
                continue;
            }
            key.push(c);
        }
        Self(SecretString::from(key))
    }

    /// The key itself, for handing it to a cloud API. Never log the result.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for Psk {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}
impl Eq for Psk {}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(<redacted>)")
    }
}

impl fmt::Display for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(sensitive)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_follow_both_clouds_rules() {
        for _ in 0..200 {
            let k = Psk::generate();
            Psk::check(k.expose()).unwrap();
        }
    }

    #[test]
    fn rules() {
        assert_eq!(Psk::check("short"), Err(PskError::Length(5)));
        assert_eq!(Psk::check("0abcdefgh"), Err(PskError::LeadingZero));
        assert_eq!(Psk::check("abc-defgh"), Err(PskError::Character('-')));
        assert!(Psk::check("Abc.def_123").is_ok());
        assert!(Psk::check(&"a".repeat(65)).is_err());
    }

    #[test]
    fn never_prints() {
        let k = Psk::new("SuperSecret123").unwrap();
        assert!(!format!("{k:?} {k}").contains("SuperSecret"));
    }
}
