//! The 14-character pairing token, `region(2) ‖ token(8) ‖ secret(4)` as in TuyaOS: parse,
//! format and generate. The first ten characters name the token in public (URLs, logs);
//! the last four are its secret and never appear in `Debug` output.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Total length of a pairing token in characters.
pub const TOKEN_LEN: usize = 14;
const REGION_LEN: usize = 2;
const ID_LEN: usize = 8;
const SECRET_LEN: usize = 4;

/// Why a string is not a pairing token. Messages name the fault but never echo the
/// secret part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token does not have exactly 14 characters.
    #[error("a pairing token has {TOKEN_LEN} characters, this one has {0}")]
    Length(usize),
    /// The region is not two upper-case ASCII letters.
    #[error("the region (characters 1-2) must be two upper-case letters A-Z")]
    Region,
    /// A character of the token part is not an ASCII letter or digit.
    #[error("character {0} of the token part (characters 3-10) is not a letter or digit")]
    TokenPart(usize),
    /// A character of the secret part is not an ASCII letter or digit.
    #[error("the secret part (characters 11-14) may hold only letters and digits")]
    SecretPart,
    /// The region given to `generate` is not two upper-case letters.
    #[error("region {0:?} is not two upper-case letters A-Z")]
    BadRegion(String),
    /// The operating system's random source failed.
    #[error("the random source failed: {0}")]
    Random(String),
}

/// A pairing token: region, public token id and secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PairingToken {
    /// All 14 characters; validated ASCII.
    text: String,
}

impl PairingToken {
    /// Parses a token, checking length and the alphabet of each part.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let count = text.chars().count();
        if count != TOKEN_LEN || text.len() != TOKEN_LEN {
            return Err(TokenError::Length(count));
        }
        let bytes = text.as_bytes();
        if !is_region(&bytes[..REGION_LEN]) {
            return Err(TokenError::Region);
        }
        let id = &bytes[REGION_LEN..REGION_LEN + ID_LEN];
        if let Some(pos) = id.iter().position(|b| !b.is_ascii_alphanumeric()) {
            return Err(TokenError::TokenPart(REGION_LEN + pos + 1));
        }
        if !bytes[REGION_LEN + ID_LEN..]
            .iter()
            .all(u8::is_ascii_alphanumeric)
        {
            return Err(TokenError::SecretPart);
        }
        Ok(Self {
            text: text.to_owned(),
        })
    }

    /// Generates a fresh token for `region` from the operating system's CSPRNG.
    pub fn generate(region: &str) -> Result<Self, TokenError> {
        if !is_region(region.as_bytes()) {
            return Err(TokenError::BadRegion(region.to_owned()));
        }
        let mut text = String::with_capacity(TOKEN_LEN);
        text.push_str(region);
        let random = crate::random::string(crate::random::ALPHANUMERIC, ID_LEN + SECRET_LEN)
            .map_err(|e| TokenError::Random(e.to_string()))?;
        text.push_str(&random);
        Ok(Self { text })
    }

    /// The region the token was issued for, such as `EU`.
    pub fn region(&self) -> &str {
        &self.text[..REGION_LEN]
    }

    /// The public part, `region ‖ token` (10 characters): safe to show and to use as a
    /// lookup key, since it cannot activate anything without the secret.
    pub fn public_id(&self) -> &str {
        &self.text[..REGION_LEN + ID_LEN]
    }

    /// The public part as a value of its own, for URLs and displays.
    pub fn public(&self) -> PublicId {
        PublicId(self.public_id().to_owned())
    }

    /// The `token ‖ secret` part that the cloud stores only as a hash.
    pub fn token_and_secret(&self) -> &str {
        &self.text[REGION_LEN..]
    }

    /// All 14 characters, secret included: for sending to the device or the cloud, never
    /// for logs.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for PairingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PairingToken({}****)", self.public_id())
    }
}

impl std::str::FromStr for PairingToken {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for PairingToken {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for PairingToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The public part of a pairing token, `region ‖ token` (10 characters): what URLs,
/// logs and displays name a token by. It cannot activate anything on its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PublicId(String);

impl PublicId {
    /// Length in characters.
    pub const LEN: usize = REGION_LEN + ID_LEN;

    /// Parses a public id: a region and the token part.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        if text.len() != Self::LEN || text.chars().count() != Self::LEN {
            return Err(TokenError::Length(text.chars().count()));
        }
        let bytes = text.as_bytes();
        if !is_region(&bytes[..REGION_LEN]) {
            return Err(TokenError::Region);
        }
        if let Some(pos) = bytes[REGION_LEN..]
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
        {
            return Err(TokenError::TokenPart(REGION_LEN + pos + 1));
        }
        Ok(Self(text.to_owned()))
    }

    /// The ten characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PublicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for PublicId {
    type Error = TokenError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<PublicId> for String {
    fn from(id: PublicId) -> Self {
        id.0
    }
}

fn is_region(bytes: &[u8]) -> bool {
    bytes.len() == REGION_LEN && bytes.iter().all(u8::is_ascii_uppercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_well_formed_token_parses_into_its_parts() {
        let token = PairingToken::parse("EUab12CD34wxYZ").expect("valid token");
        assert_eq!(token.region(), "EU");
        assert_eq!(token.public_id(), "EUab12CD34");
        assert_eq!(token.token_and_secret(), "ab12CD34wxYZ");
        assert_eq!(token.expose(), "EUab12CD34wxYZ");
        assert_eq!(token.public().as_str(), "EUab12CD34");
    }

    #[test]
    fn a_public_id_is_checked_like_the_token_it_names() {
        assert_eq!(
            PublicId::parse("EUab12CD34").map(|p| p.to_string()),
            Ok("EUab12CD34".to_owned())
        );
        assert_eq!(
            PublicId::parse("EUab12CD34wxYZ"),
            Err(TokenError::Length(14))
        );
        assert_eq!(PublicId::parse("euab12CD34"), Err(TokenError::Region));
        assert_eq!(PublicId::parse("EUab/2CD34"), Err(TokenError::TokenPart(5)));
        assert!(serde_json::from_str::<PublicId>("\"EU\"").is_err());
    }

    #[test]
    fn each_malformation_has_its_own_error() {
        assert_eq!(PairingToken::parse("EUab12"), Err(TokenError::Length(6)));
        assert_eq!(
            PairingToken::parse("EUab12CD34wxYZ0"),
            Err(TokenError::Length(15))
        );
        assert_eq!(
            PairingToken::parse("euab12CD34wxYZ"),
            Err(TokenError::Region)
        );
        assert_eq!(
            PairingToken::parse("EUab-2CD34wxYZ"),
            Err(TokenError::TokenPart(5))
        );
        assert_eq!(
            PairingToken::parse("EUab12CD34wx!Z"),
            Err(TokenError::SecretPart)
        );
        // Fourteen bytes but fewer characters: length is counted in characters.
        assert_eq!(
            PairingToken::parse("EUab12CD34wxé"),
            Err(TokenError::Length(13))
        );
    }

    #[test]
    fn error_messages_never_echo_the_secret() {
        let err = PairingToken::parse("EUab12CD34wx!Z").expect_err("bad secret");
        assert!(!err.to_string().contains("wx!Z"));
    }

    #[test]
    fn debug_hides_the_secret_part() {
        let token = PairingToken::parse("EUab12CD34wxYZ").expect("valid token");
        let shown = format!("{token:?}");
        assert!(shown.contains("EUab12CD34"));
        assert!(!shown.contains("wxYZ"));
    }

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = PairingToken::generate("US").expect("random source works");
        let b = PairingToken::generate("US").expect("random source works");
        assert_eq!(a.region(), "US");
        assert_eq!(PairingToken::parse(a.expose()), Ok(a.clone()));
        assert_ne!(a, b);
    }

    #[test]
    fn generate_refuses_a_bad_region() {
        assert_eq!(
            PairingToken::generate("eu"),
            Err(TokenError::BadRegion("eu".into()))
        );
    }

    #[test]
    fn serde_uses_the_plain_string_and_validates() {
        let token: PairingToken = serde_json::from_str("\"EUab12CD34wxYZ\"").expect("valid token");
        assert_eq!(
            serde_json::to_string(&token).expect("serialises"),
            "\"EUab12CD34wxYZ\""
        );
        let err = serde_json::from_str::<PairingToken>("\"nope\"").expect_err("invalid");
        assert!(err.to_string().contains("14 characters"));
    }
}
