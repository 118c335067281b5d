//! A wrapper for secrets (passwords, authkeys, dev-secrets, JWTs) that never shows its
//! content in `Debug` output, so a stray `?value` in a log line cannot leak it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret string. It serialises as the plain string (it must cross the wire), but its
/// `Debug` form is redacted and it has no `Display`.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where the value must be used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_value_but_serde_carries_it() {
        let secret = Secret::new("hunter22");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(
            serde_json::to_string(&secret).expect("serialises"),
            "\"hunter22\""
        );
        assert_eq!(secret.expose(), "hunter22");
    }
}
