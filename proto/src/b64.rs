//! Bytes that travel in JSON as unpadded base64url text: the handshake's shares and
//! confirmations and the sealed frames of the data channel.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A byte string, written as unpadded base64url.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct B64(pub Vec<u8>);

impl B64 {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// The text form.
    pub fn encode(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Bytes from the text form.
    pub fn decode(text: &str) -> Option<Vec<u8>> {
        URL_SAFE_NO_PAD.decode(text).ok()
    }
}

impl From<&[u8]> for B64 {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl fmt::Debug for B64 {
    /// The length only: these are public values, but long ones.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "B64({} bytes)", self.0.len())
    }
}

impl Serialize for B64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&Self::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for B64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::decode(&text)
            .map(Self)
            .ok_or_else(|| serde::de::Error::custom("not unpadded base64url"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_as_base64url_and_bad_text_is_refused() {
        let b = B64(vec![0xfb, 0xff, 0x00, 0x01]);
        let text = serde_json::to_string(&b).expect("serialises");
        assert_eq!(text, "\"-_8AAQ\"");
        assert_eq!(serde_json::from_str::<B64>(&text).expect("parses"), b);
        for bad in ["\"+/8AAQ\"", "\"-_8AAQ==\"", "\"!\"", "12"] {
            assert!(serde_json::from_str::<B64>(bad).is_err(), "{bad}");
        }
    }
}
