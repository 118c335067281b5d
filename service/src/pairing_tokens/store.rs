//! Pairing tokens at rest: only a keyed hash of `token ‖ secret` is stored (HMAC-SHA256
//! with the data dir's token-hash key), so a dump of the database is not enough to test
//! guesses of the 4-character secret; the public id (`region ‖ token`) is the key.
//! Presented tokens are checked here, with a bound on wrong secrets per token.

use std::time::Duration;

use anyhow::Context;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tether_proto::token_status::TokenState;
use tether_proto::{ErrorCode, PairingToken, Secret};

use crate::app::AppState;
use crate::db::Db;
use crate::error::ApiError;
use crate::rate_limit::FailureLimit;

/// Wrong secrets accepted for one public id per [`GUESS_WINDOW`]: past them the token
/// is refused even with the right secret until the window ends (429), so an online guess
/// of its 62⁴ secrets is hopeless within a token's lifetime.
pub const MAX_WRONG_SECRETS: u32 = 10;
/// See [`MAX_WRONG_SECRETS`].
pub const GUESS_WINDOW: Duration = Duration::from_secs(600);

/// How the stored hash of new tokens is made.
const SCHEME: &str = "hmac-sha256";
/// The unkeyed hash of tokens created before keyed hashes (still accepted while they live).
const LEGACY_SCHEME: &str = "sha256";

/// A token row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    /// `region ‖ token`.
    pub public_id: String,
    /// The hash of `token ‖ secret`, made as `hash_scheme` says.
    pub secret_hash: Vec<u8>,
    /// `hmac-sha256` or (older tokens) `sha256`.
    pub hash_scheme: String,
    /// Creator.
    pub owner_id: i64,
    /// Device limit.
    pub max_devices: i64,
    /// Devices activated.
    pub used: i64,
    /// Expiry.
    pub expires_at: i64,
    /// 1 when revoked by its owner.
    pub revoked: i64,
}

impl TokenRow {
    /// Where the token stands at `now`.
    pub fn state(&self, now: u64) -> TokenState {
        if self.revoked != 0 {
            TokenState::Revoked
        } else if self.used >= self.max_devices {
            TokenState::Complete
        } else if now >= crate::from_db_time(self.expires_at) {
            TokenState::Expired
        } else {
            TokenState::Pending
        }
    }

    /// Whether `token` carries this row's secret (constant time).
    pub fn secret_matches(&self, key: &[u8; 32], token: &PairingToken) -> bool {
        let expected = match self.hash_scheme.as_str() {
            SCHEME => keyed_hash(key, token),
            LEGACY_SCHEME => Sha256::digest(token.token_and_secret().as_bytes()).to_vec(),
            _ => return false,
        };
        expected.as_slice().ct_eq(&self.secret_hash).into()
    }
}

fn keyed_hash(key: &[u8; 32], token: &PairingToken) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(token.token_and_secret().as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The columns of a [`TokenRow`].
const ROW: &str =
    "public_id, secret_hash, hash_scheme, owner_id, max_devices, used, expires_at, revoked";

/// Loads a token by public id.
pub async fn load(db: &Db, public_id: &str) -> sqlx::Result<Option<TokenRow>> {
    sqlx::query_as(&format!(
        "SELECT {ROW} FROM pairing_tokens WHERE public_id = $1"
    ))
    .bind(public_id)
    .fetch_optional(db)
    .await
}

/// An owner's newest tokens, at most `limit`.
pub async fn newest_of(db: &Db, owner: i64, limit: i64) -> sqlx::Result<Vec<TokenRow>> {
    sqlx::query_as(&format!(
        "SELECT {ROW} FROM pairing_tokens WHERE owner_id = $1
         ORDER BY created_at DESC, public_id LIMIT $2"
    ))
    .bind(owner)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Finds the token a device presents, checking its secret. Unknown tokens and wrong
/// secrets are both `token_invalid`, so a guess learns nothing; a token that has seen
/// [`MAX_WRONG_SECRETS`] wrong secrets is refused for the rest of the window.
pub async fn find_presented(
    state: &AppState,
    presented: &Secret,
) -> Result<(PairingToken, TokenRow), ApiError> {
    let token = PairingToken::parse(presented.expose()).map_err(|e| ApiError::Pairing {
        code: ErrorCode::TokenInvalid,
        message: format!("the pairing token is malformed: {e}"),
    })?;
    let guesses = &state.limits.token_guesses;
    guesses.refuse_if_spent(token.public_id()).await?;
    let row = state
        .token_rows
        .get_or_load(token.public_id(), load(&state.db, token.public_id()))
        .await?;
    match row {
        Some(row) if row.secret_matches(state.keys.token_hash_key(), &token) => Ok((token, row)),
        _ => {
            // Counted whether or not the public id exists, so both answer alike.
            let _ = guesses.fail(token.public_id()).await;
            Err(ApiError::pairing(ErrorCode::TokenInvalid))
        }
    }
}

/// A limit of wrong secrets per public id.
pub fn guess_limit() -> FailureLimit {
    FailureLimit::new(MAX_WRONG_SECRETS, GUESS_WINDOW)
}

/// Stores a new token of `owner` for `region`; returns it with its expiry (Unix secs).
/// The caller checks the limits.
pub async fn insert(
    db: &Db,
    key: &[u8; 32],
    region: &str,
    owner: i64,
    max_devices: u32,
    ttl_secs: u64,
) -> anyhow::Result<(PairingToken, u64)> {
    let token = PairingToken::generate(region).context("failed to generate a token")?;
    let now = crate::unix_now();
    let expires_at = now + ttl_secs;
    sqlx::query(
        "INSERT INTO pairing_tokens (public_id, secret_hash, hash_scheme, owner_id, region, max_devices, expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(token.public_id())
    .bind(keyed_hash(key, &token))
    .bind(SCHEME)
    .bind(owner)
    .bind(token.region())
    .bind(i64::from(max_devices))
    .bind(crate::db_time(expires_at))
    .bind(crate::db_time(now))
    .execute(db)
    .await
    .context("failed to store the token")?;
    Ok((token, expires_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(hash: Vec<u8>, scheme: &str) -> TokenRow {
        TokenRow {
            public_id: String::new(),
            secret_hash: hash,
            hash_scheme: scheme.into(),
            owner_id: 1,
            max_devices: 1,
            used: 0,
            expires_at: 0,
            revoked: 0,
        }
    }

    #[test]
    fn a_keyed_hash_needs_the_key_and_legacy_hashes_still_match() {
        let token = PairingToken::generate("EU").expect("random source");
        let other = PairingToken::generate("EU").expect("random source");
        let key = [7u8; 32];
        let keyed = row(keyed_hash(&key, &token), SCHEME);
        assert!(keyed.secret_matches(&key, &token));
        assert!(!keyed.secret_matches(&[8u8; 32], &token), "another key");
        assert!(!keyed.secret_matches(&key, &other));
        // A dump holds the hash, not the key: the unkeyed hash of the right token differs.
        assert_ne!(
            keyed.secret_hash,
            Sha256::digest(token.token_and_secret().as_bytes()).to_vec()
        );
        let legacy = row(
            Sha256::digest(token.token_and_secret().as_bytes()).to_vec(),
            LEGACY_SCHEME,
        );
        assert!(legacy.secret_matches(&key, &token));
        assert!(!row(keyed.secret_hash.clone(), "rot13").secret_matches(&key, &token));
    }
}
