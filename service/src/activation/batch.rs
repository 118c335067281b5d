//! One round of the activation writer: the activations of distinct devices, written with
//! a few statements whatever their number (the nonces, one read of licenses, devices and
//! earlier activations, one of the tokens, then the token counts, the devices and the
//! activations, each one multi-row statement). Every check happens on what this
//! transaction read, in request order, before the first write; on PostgreSQL the license
//! and token rows read are locked until the commit, so other nodes' writers take turns.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use tether_proto::random::{self, ALPHANUMERIC, LOWER_ALPHANUMERIC};
use tether_proto::{ErrorCode, Secret};

use crate::db::{self, Engine};
use crate::devices;
use crate::error::{ApiError, ApiResult};

use super::writer::Job;

/// What an activation stored.
#[derive(Debug)]
pub(super) struct Bound {
    pub dev_id: String,
    pub dev_secret: Secret,
    pub generation: i64,
}

/// What the round knows of a device before binding it.
struct Known {
    product_key: String,
    /// Its current binding: dev-id, owner, generation.
    bound: Option<(String, i64, i64)>,
    /// Whether this token has counted this device already (a retried request).
    counted: bool,
    /// Whether an operator revoked its license.
    revoked: bool,
}

/// A token as the round read it.
struct Token {
    used: i64,
    max_devices: i64,
    revoked: i64,
    expires_at: i64,
    /// Devices this round adds to `used`.
    taken: i64,
}

/// Writes `asks` (each device at most once) in `tx`; an answer per ask, in order. The
/// outer error is storage failing; an inner one an activation refused.
pub(super) async fn round(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    asks: &[&Job],
) -> anyhow::Result<Vec<ApiResult<Bound>>> {
    let fresh = record_nonces(tx, asks).await?;
    let live: Vec<&Job> = asks
        .iter()
        .copied()
        .filter(|a| fresh.contains(&(a.nonce.signer.as_str(), a.nonce.nonce.as_str())))
        .collect();
    let known = read_known(tx, engine, &live).await?;
    let mut tokens = read_tokens(tx, engine, &live).await?;

    let now = crate::db_time(crate::unix_now());
    let mut moved = Vec::new();
    let mut decided = Vec::with_capacity(asks.len());
    for ask in asks {
        if !fresh.contains(&(ask.nonce.signer.as_str(), ask.nonce.nonce.as_str())) {
            decided.push(Err(crate::device_auth::replayed()));
            continue;
        }
        decided.push(decide(ask, &known, &mut tokens, now, &mut moved)?);
    }

    let mut bindings = Vec::new();
    let mut activations = Vec::new();
    for (ask, answer) in asks.iter().zip(&decided) {
        if let Ok(bound) = answer {
            bindings.push(devices::store::Binding {
                dev_id: &bound.dev_id,
                uuid: &ask.req.uuid,
                owner_id: ask.token.owner_id,
                product_key: &ask.req.product_key,
                dev_secret: &bound.dev_secret,
                generation: bound.generation,
                sw_ver: &ask.req.sw_ver,
                module_version: &ask.req.module_version,
                platform: ask.platform.as_deref(),
                activated_at: now,
            });
            activations.push((
                ask.token.public_id.as_str(),
                ask.req.uuid.as_str(),
                bound.dev_id.as_str(),
            ));
        }
    }
    count_tokens(tx, &tokens).await?;
    devices::store::delete_all(&mut **tx, &moved).await?;
    devices::store::bind_all(&mut **tx, &bindings).await?;
    record_activations(tx, &activations, now).await?;
    Ok(decided)
}

/// Checks one activation against what the round read and counts it against its token;
/// the device's new binding, or the refusal.
fn decide(
    ask: &Job,
    known: &HashMap<String, Known>,
    tokens: &mut HashMap<String, Token>,
    now: i64,
    moved: &mut Vec<String>,
) -> anyhow::Result<ApiResult<Bound>> {
    let Some(device) = known
        .get(&ask.req.uuid)
        .filter(|k| k.product_key == ask.req.product_key)
    else {
        return Ok(Err(ApiError::BadRequest(
            "product_key does not match the device's license".into(),
        )));
    };
    if device.revoked {
        return Ok(Err(ApiError::LicenseRevoked));
    }
    let Some(token) = tokens.get_mut(&ask.token.public_id) else {
        return Ok(Err(ApiError::pairing(ErrorCode::TokenInvalid)));
    };
    // The state as this transaction sees it, which another node may have changed since
    // the request was checked.
    if token.revoked != 0 {
        return Ok(Err(super::revoked()));
    }
    if now >= token.expires_at {
        return Ok(Err(ApiError::pairing(ErrorCode::TokenExpired)));
    }
    if let Some((_, owner, _)) = &device.bound
        && *owner != ask.token.owner_id
        && !ask.req.reset
    {
        return Ok(Err(ApiError::pairing(ErrorCode::DevAlreadyBound)));
    }
    if !device.counted {
        if token.used + token.taken >= token.max_devices {
            return Ok(Err(ApiError::pairing(ErrorCode::TokenUsed)));
        }
        token.taken += 1;
    }
    let dev_secret = Secret::new(random::string(ALPHANUMERIC, 32).context("random source")?);
    let (dev_id, generation) = match &device.bound {
        // Same owner: keep the dev-id, rotate the secret and the generation.
        Some((dev_id, owner, generation)) if *owner == ask.token.owner_id => {
            (dev_id.clone(), generation + 1)
        }
        // Moved after a local reset, or new: a fresh dev-id.
        other => {
            if let Some((old, ..)) = other {
                moved.push(old.clone());
            }
            let fresh = random::string(LOWER_ALPHANUMERIC, 19).context("random source")?;
            (format!("d{fresh}"), 1)
        }
    };
    Ok(Ok(Bound {
        dev_id,
        dev_secret,
        generation,
    }))
}

/// Records every ask's nonce in one statement; the `(signer, nonce)` pairs that were new
/// (a replay's was recorded before and writes nothing).
async fn record_nonces<'a>(
    tx: &mut Transaction<'_, Any>,
    asks: &[&'a Job],
) -> anyhow::Result<HashSet<(&'a str, &'a str)>> {
    if asks.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = format!(
        "INSERT INTO device_nonces (signer, nonce, expires_at) VALUES {}
         ON CONFLICT (signer, nonce) DO NOTHING RETURNING signer, nonce",
        db::rows(asks.len(), 3, 1)
    );
    let mut query = sqlx::query_as::<_, (String, String)>(&sql);
    for ask in asks {
        query = query
            .bind(&ask.nonce.signer)
            .bind(&ask.nonce.nonce)
            .bind(ask.nonce.expires_at);
    }
    let inserted: HashSet<(String, String)> =
        query.fetch_all(&mut **tx).await?.into_iter().collect();
    Ok(asks
        .iter()
        .map(|a| (a.nonce.signer.as_str(), a.nonce.nonce.as_str()))
        .filter(|(s, n)| inserted.contains(&((*s).to_owned(), (*n).to_owned())))
        .collect())
}

/// The licenses of `asks`, with each device's binding and whether its token counted it
/// already; on PostgreSQL the license rows stay locked until the commit.
async fn read_known(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    asks: &[&Job],
) -> anyhow::Result<HashMap<String, Known>> {
    if asks.is_empty() {
        return Ok(HashMap::new());
    }
    let mut sql = format!(
        "WITH asked (uuid, token_id) AS (VALUES {})
         SELECT l.uuid, l.product_key, l.revoked_at, d.dev_id, d.owner_id, d.generation,
           CASE WHEN EXISTS (SELECT 1 FROM activations a WHERE a.token_id = asked.token_id AND a.uuid = asked.uuid)
             THEN 1 ELSE 0 END AS counted
         FROM asked JOIN licenses l ON l.uuid = asked.uuid LEFT JOIN devices d ON d.uuid = l.uuid
         ORDER BY l.uuid",
        db::rows(asks.len(), 2, 1)
    );
    if engine == Engine::Postgres {
        sql.push_str(" FOR UPDATE OF l");
    }
    let mut query = sqlx::query(&sql);
    for ask in asks {
        query = query.bind(&ask.req.uuid).bind(&ask.token.public_id);
    }
    let rows = query.fetch_all(&mut **tx).await?;
    rows.iter()
        .map(|row| Ok((row.try_get("uuid")?, known(row)?)))
        .collect()
}

fn known(row: &AnyRow) -> sqlx::Result<Known> {
    let dev_id: Option<String> = row.try_get("dev_id")?;
    let owner: Option<i64> = row.try_get("owner_id")?;
    let generation: Option<i64> = row.try_get("generation")?;
    Ok(Known {
        product_key: row.try_get("product_key")?,
        bound: dev_id
            .zip(owner)
            .zip(generation)
            .map(|((d, o), g)| (d, o, g)),
        counted: row.try_get::<i64, _>("counted")? != 0,
        revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
    })
}

/// The tokens of `asks` as they stand now; on PostgreSQL their rows stay locked until
/// the commit, so counts on several nodes add up.
async fn read_tokens(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    asks: &[&Job],
) -> anyhow::Result<HashMap<String, Token>> {
    let ids: Vec<&str> = asks
        .iter()
        .map(|a| a.token.public_id.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut sql = format!(
        "SELECT public_id, used, max_devices, revoked, expires_at FROM pairing_tokens
         WHERE public_id IN ({}) ORDER BY public_id",
        db::list(ids.len(), 1)
    );
    if engine == Engine::Postgres {
        sql.push_str(" FOR UPDATE");
    }
    let mut query = sqlx::query_as::<_, (String, i64, i64, i64, i64)>(&sql);
    for id in &ids {
        query = query.bind(*id);
    }
    Ok(query
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|(id, used, max_devices, revoked, expires_at)| {
            let token = Token {
                used,
                max_devices,
                revoked,
                expires_at,
                taken: 0,
            };
            (id, token)
        })
        .collect())
}

/// Adds each token's new devices to its count, in one statement.
async fn count_tokens(
    tx: &mut Transaction<'_, Any>,
    tokens: &HashMap<String, Token>,
) -> anyhow::Result<()> {
    let taken: Vec<(&String, i64)> = tokens
        .iter()
        .filter(|(_, t)| t.taken > 0)
        .map(|(id, t)| (id, t.taken))
        .collect();
    if taken.is_empty() {
        return Ok(());
    }
    let cases: String = (0..taken.len())
        .map(|i| format!(" WHEN ${} THEN ${}", 2 * i + 1, 2 * i + 2))
        .collect();
    let sql = format!(
        "UPDATE pairing_tokens SET used = used + CASE public_id{cases} ELSE 0 END
         WHERE public_id IN ({})",
        db::list(taken.len(), 2 * taken.len() + 1)
    );
    let mut query = sqlx::query(&sql);
    for (id, n) in &taken {
        query = query.bind(id.as_str()).bind(*n);
    }
    for (id, _) in &taken {
        query = query.bind(id.as_str());
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// One row per (token, device): which device the token activated, and when.
async fn record_activations(
    tx: &mut Transaction<'_, Any>,
    activations: &[(&str, &str, &str)],
    now: i64,
) -> anyhow::Result<()> {
    if activations.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO activations (token_id, uuid, dev_id, activated_at) VALUES {}
         ON CONFLICT (token_id, uuid) DO UPDATE SET dev_id = excluded.dev_id, activated_at = excluded.activated_at",
        db::rows(activations.len(), 4, 1)
    );
    let mut query = sqlx::query(&sql);
    for (token, uuid, dev_id) in activations {
        query = query.bind(*token).bind(*uuid).bind(*dev_id).bind(now);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}
