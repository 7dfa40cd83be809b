//! `Secret`: a credential that cannot be printed, logged or serialised by accident.
//!
//! `Debug` and `Display` show `***`; there is no `Serialize`. The one way to the value is
//! `expose()`, which the signing code and the two views that reveal a new secret (create and
//! rotate) call by name, so every disclosure is visible in a grep.

use std::fmt;

use base64::Engine;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// A new signing secret: `whsec_` + base64 of 32 random bytes. Works as a raw HMAC key for
    /// the seeds' senders and as a Standard Webhooks key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS random source is available");
        Secret(format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ))
    }

    /// The value itself. Call only to sign or verify, or to show a secret the caller just made.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{:?}", Some(&s)), "Some(Secret(***))");
        assert_eq!(s.expose(), "hunter2-hunter2");
    }

    #[test]
    fn generated_secrets_are_distinct_whsec_keys() {
        let (a, b) = (Secret::generate(), Secret::generate());
        assert_ne!(a, b);
        assert!(a.expose().starts_with("whsec_"));
        let key = a.expose().trim_start_matches("whsec_");
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(key)
                .unwrap()
                .len(),
            32
        );
    }
}
