//! The service's EdDSA signing key (created on first start, stored with mode 0600 and
//! reused) and the JWTs it signs: API access tokens for users and MQTT passwords for
//! devices. The public half is served as a JWKS so an external broker can verify devices.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// File name of the key inside the data dir: the 32-byte Ed25519 seed.
pub const FILE: &str = "signing-key.ed25519";
/// File name of the key pairing-token hashes are made with: 32 random bytes.
pub const TOKEN_HASH_FILE: &str = "token-hash.key";
/// Audience of user access tokens.
pub const API_AUDIENCE: &str = "tether-api";
/// Audience of device MQTT passwords.
pub const MQTT_AUDIENCE: &str = "tether-mqtt";

/// PKCS#8 v1 header of an Ed25519 private key, followed by the 32-byte seed.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Claims of a user access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserClaims {
    /// User id.
    pub sub: String,
    /// `tether-api`.
    pub aud: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// `admin` or `user`.
    pub role: String,
}

/// The topics a device may use, carried in its MQTT password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    /// Topics it may publish to.
    pub publish: Vec<String>,
    /// Topic filters it may subscribe to.
    pub subscribe: Vec<String>,
}

/// Claims of a device MQTT password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceClaims {
    /// Device id.
    pub sub: String,
    /// `tether-mqtt`.
    pub aud: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// The device generation the password was issued for; a newer activation or an
    /// unbind makes it stale.
    pub generation: i64,
    /// Allowed topics.
    pub acl: Acl,
}

/// The signing key and its verifying half.
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Base64url of the public key (the JWK `x`).
    public_x: String,
    /// Key id: the first 16 hex digits of SHA-256 of the public key.
    kid: String,
    /// The key of pairing-token hashes (HMAC-SHA256), so that a dump of the database
    /// alone does not let anyone test guesses of a token's secret.
    token_hash_key: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Loads the key from `data_dir`, creating it (mode 0600) on first start.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Self> {
        let seed = load_or_create_secret(&data_dir.join(FILE), "signing key")?;
        let token_hash_key =
            load_or_create_secret(&data_dir.join(TOKEN_HASH_FILE), "token hash key")?;
        Self::from_seed(&seed, token_hash_key)
    }

    /// The key pairing-token hashes are made with.
    pub fn token_hash_key(&self) -> &[u8; 32] {
        &self.token_hash_key
    }

    fn from_seed(seed: &[u8; 32], token_hash_key: [u8; 32]) -> anyhow::Result<Self> {
        let public = SigningKey::from_bytes(seed).verifying_key().to_bytes();
        let mut pkcs8 = PKCS8_ED25519_PREFIX.to_vec();
        pkcs8.extend_from_slice(seed);
        let public_x = URL_SAFE_NO_PAD.encode(public);
        let decoding = DecodingKey::from_ed_components(&public_x).context("public key")?;
        let kid = hex::encode(&Sha256::digest(public)[..8]);
        Ok(Self {
            encoding: EncodingKey::from_ed_der(&pkcs8),
            decoding,
            public_x,
            kid,
            token_hash_key,
        })
    }

    /// Signs claims.
    pub fn sign<C: Serialize>(&self, claims: &C) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).context("failed to sign a JWT")
    }

    /// Verifies a token's signature, expiry and audience.
    pub fn verify<C: for<'de> Deserialize<'de>>(&self, token: &str, audience: &str) -> Option<C> {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[audience]);
        validation.leeway = 0;
        jsonwebtoken::decode::<C>(token, &self.decoding, &validation)
            .ok()
            .map(|d| d.claims)
    }

    /// The public key as a JSON Web Key Set.
    pub fn jwks(&self) -> tether_proto::api::JwkSet {
        tether_proto::api::JwkSet {
            keys: vec![tether_proto::api::Jwk::ed25519(&self.kid, &self.public_x)],
        }
    }
}

/// Reads a 32-byte secret from `path`, creating it (mode 0600) if it does not exist.
fn load_or_create_secret(path: &Path, what: &str) -> anyhow::Result<[u8; 32]> {
    match std::fs::read(path) {
        Ok(bytes) => bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} is not a 32-byte {what}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path, what),
        Err(e) => Err(e).with_context(|| format!("failed to read {}", path.display())),
    }
}

fn create(path: &Path, what: &str) -> anyhow::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("the random source failed: {e}"))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(&seed)?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "created a new {what}");
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn claims(exp: u64) -> UserClaims {
        UserClaims {
            sub: "1".into(),
            aud: API_AUDIENCE.into(),
            exp,
            iat: 0,
            role: "user".into(),
        }
    }

    #[test]
    fn the_key_is_created_once_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = Keys::load_or_create(dir.path()).expect("created");
        let mode = std::fs::metadata(dir.path().join(FILE))
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let token = first.sign(&claims(crate::unix_now() + 60)).expect("signs");
        let second = Keys::load_or_create(dir.path()).expect("reloaded");
        let back: UserClaims = second
            .verify(&token, API_AUDIENCE)
            .expect("verifies after reload");
        assert_eq!(back.sub, "1");
        assert_eq!(first.jwks(), second.jwks());
    }

    #[test]
    fn wrong_audience_expiry_and_tampering_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys = Keys::load_or_create(dir.path()).expect("created");
        let token = keys.sign(&claims(crate::unix_now() + 60)).expect("signs");
        assert!(keys.verify::<UserClaims>(&token, MQTT_AUDIENCE).is_none());
        let expired = keys.sign(&claims(crate::unix_now() - 1)).expect("signs");
        assert!(keys.verify::<UserClaims>(&expired, API_AUDIENCE).is_none());
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(keys.verify::<UserClaims>(&tampered, API_AUDIENCE).is_none());
        let other = tempfile::tempdir().expect("temp dir");
        let stranger = Keys::load_or_create(other.path()).expect("created");
        assert!(
            stranger
                .verify::<UserClaims>(&token, API_AUDIENCE)
                .is_none()
        );
    }
}
