//! The `code` of a reply on the data channel and the control socket: `ok`, an error
//! code's name, or `update_refused` (a bundle the host would not install).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ErrorCode;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyCode {
    /// Done.
    Ok,
    /// A pairing error.
    Error(ErrorCode),
    /// The host refused a component bundle (only on the control socket's `module-load`).
    UpdateRefused,
}

impl ReplyCode {
    /// The wire name.
    pub const fn name(self) -> &'static str {
        match self {
            ReplyCode::Ok => "ok",
            ReplyCode::Error(code) => code.name(),
            ReplyCode::UpdateRefused => "update_refused",
        }
    }

    /// The OPRT number the C API returns: 0 for `ok`, and a refused update is an
    /// internal error there.
    pub const fn oprt(self) -> i32 {
        match self {
            ReplyCode::Ok => 0,
            ReplyCode::Error(code) => code.oprt(),
            ReplyCode::UpdateRefused => ErrorCode::Internal.oprt(),
        }
    }

    /// The code with this wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ok" => Some(ReplyCode::Ok),
            "update_refused" => Some(ReplyCode::UpdateRefused),
            other => ErrorCode::from_name(other).map(ReplyCode::Error),
        }
    }
}

impl From<Result<(), ErrorCode>> for ReplyCode {
    fn from(result: Result<(), ErrorCode>) -> Self {
        match result {
            Ok(()) => ReplyCode::Ok,
            Err(code) => ReplyCode::Error(code),
        }
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for ReplyCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ReplyCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown reply code `{name}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_oprt_numbers_round_trip() {
        let mut all = vec![ReplyCode::Ok, ReplyCode::UpdateRefused];
        all.extend(ErrorCode::ALL.iter().copied().map(ReplyCode::Error));
        for code in all {
            let json = serde_json::to_string(&code).expect("serialises");
            assert_eq!(json, format!("\"{}\"", code.name()));
            assert_eq!(
                serde_json::from_str::<ReplyCode>(&json).expect("parses"),
                code
            );
        }
        assert_eq!(ReplyCode::Ok.oprt(), 0);
        assert_eq!(
            ReplyCode::Error(ErrorCode::TokenInvalid).oprt(),
            ErrorCode::TokenInvalid.oprt()
        );
        assert!(serde_json::from_str::<ReplyCode>("\"maybe\"").is_err());
    }
}
