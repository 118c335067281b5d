//! The activation writer: one task writes every activation, many to a transaction (group
//! commit). A request is answered only after the transaction holding it has committed,
//! so an answered activation is as durable as before; but concurrent activations share
//! one fsync and never wait on each other's write locks. A refused activation writes
//! nothing, so it does not disturb the others in its batch.

use anyhow::Context;
use sqlx::{Any, Transaction};
use tether_proto::ErrorCode;
use tether_proto::Secret;
use tether_proto::activation::ActivateRequest;
use tether_proto::random::{self, ALPHANUMERIC, LOWER_ALPHANUMERIC};
use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, Engine};
use crate::device_auth::Nonce;
use crate::devices;
use crate::error::{ApiError, ApiResult};
use crate::pairing_tokens::TokenRow;

/// Most activations in one transaction.
const MAX_BATCH: usize = 256;
/// Activations waiting for the writer before senders wait too.
const QUEUE: usize = 4096;
/// Times a batch is tried again after PostgreSQL aborted it to break a deadlock with
/// another node's batch (or a serialization failure): it wrote nothing, so it is safe.
const RETRIES: u32 = 5;

/// What an activation stored.
#[derive(Debug)]
pub(super) struct Bound {
    pub dev_id: String,
    pub dev_secret: Secret,
    pub generation: i64,
}

struct Job {
    token: TokenRow,
    req: ActivateRequest,
    nonce: Nonce,
    /// The host's `Tether-Platform`, if it sent one.
    platform: Option<String>,
    reply: oneshot::Sender<ApiResult<Bound>>,
}

/// The handle requests use to have an activation written.
#[derive(Debug, Clone)]
pub struct Binder {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("uuid", &self.req.uuid)
            .finish_non_exhaustive()
    }
}

impl Binder {
    /// Starts the writer on `db`; it ends when the last `Binder` is dropped.
    pub fn start(db: Db) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, queue));
        Self { jobs }
    }

    /// Checks the license, counts the activation against the token and creates, renews
    /// or moves the device; returns once that is committed.
    /// The request's nonce is recorded in the same transaction: a replay of it, even after
    /// a restart, is refused.
    pub(super) async fn bind(
        &self,
        token: TokenRow,
        req: ActivateRequest,
        nonce: Nonce,
        platform: Option<String>,
    ) -> ApiResult<Bound> {
        let stopped = || ApiError::Internal(anyhow::anyhow!("the activation writer stopped"));
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                token,
                req,
                nonce,
                platform,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(db: Db, mut queue: mpsc::Receiver<Job>) {
    let engine = Engine::of(&db);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let results = match write_retrying(&db, engine, &batch).await {
            Ok(results) => results,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), activations = batch.len(), "an activation batch failed to commit");
                batch
                    .iter()
                    .map(|_| {
                        Err(ApiError::Internal(anyhow::anyhow!(
                            "the activation was not stored: {e:#}"
                        )))
                    })
                    .collect()
            }
        };
        for (job, result) in batch.drain(..).zip(results) {
            let _ = job.reply.send(result);
        }
    }
}

/// [`write`], again while the database aborts it for a conflict with another writer.
async fn write_retrying(
    db: &Db,
    engine: Engine,
    batch: &[Job],
) -> anyhow::Result<Vec<ApiResult<Bound>>> {
    let mut tries = 0;
    loop {
        match write(db, engine, batch).await {
            Err(e) if tries < RETRIES && is_conflict(&e) => {
                tries += 1;
                tracing::warn!(error = %format!("{e:#}"), tries, activations = batch.len(), "an activation batch met a concurrent writer; trying again");
            }
            done => return done,
        }
    }
}

/// Whether PostgreSQL aborted a transaction to break a deadlock or a serialization
/// conflict (SQLSTATE 40P01, 40001).
fn is_conflict(e: &anyhow::Error) -> bool {
    e.downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .and_then(|e| e.code())
        .is_some_and(|code| code == "40P01" || code == "40001")
}

/// One transaction for the whole batch. A refused activation has written nothing (see
/// [`bind`]); a storage error fails the whole batch, which is then rolled back.
async fn write(db: &Db, engine: Engine, batch: &[Job]) -> anyhow::Result<Vec<ApiResult<Bound>>> {
    // On SQLite the write lock is taken up front, so nothing can commit between this
    // transaction's reads and its writes; on PostgreSQL each license read is locked.
    let mut tx = db.begin_with(engine.begin_write()).await?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        // The nonce is the batch's first write for this job; a replay writes nothing.
        if !job.nonce.record(&mut tx).await? {
            results.push(Err(crate::device_auth::replayed()));
            continue;
        }
        results.push(
            bind(
                &mut tx,
                engine,
                &job.token,
                &job.req,
                job.platform.as_deref(),
            )
            .await?,
        );
    }
    tx.commit().await?;
    Ok(results)
}

/// What the writer knows of a device before binding it.
#[derive(sqlx::FromRow)]
struct Known {
    product_key: String,
    dev_id: Option<String>,
    owner_id: Option<i64>,
    generation: Option<i64>,
    /// 1 when this token has counted this device already.
    counted: i64,
}

/// What [`Known`] is read with; on PostgreSQL it also locks the license's row until the
/// batch commits, so that two nodes activating one device take turns.
const KNOWN: &str = "SELECT l.product_key, d.dev_id, d.owner_id, d.generation,
        CASE WHEN EXISTS (SELECT 1 FROM activations a WHERE a.token_id = $1 AND a.uuid = l.uuid) THEN 1 ELSE 0 END AS counted
    FROM licenses l LEFT JOIN devices d ON d.uuid = l.uuid
    WHERE l.uuid = $2";

/// Checks the license, counts the activation against the token (once per device and
/// token, so a retried request is not refused as `token_used`) and creates, renews or
/// moves the device. Every refusal happens before the first write, so a refused
/// activation leaves the batch's transaction as it found it. The outer error is storage
/// failing; the inner one the activation refused.
async fn bind(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    token: &TokenRow,
    req: &ActivateRequest,
    platform: Option<&str>,
) -> anyhow::Result<ApiResult<Bound>> {
    let locked;
    let statement = match engine {
        Engine::Sqlite => KNOWN,
        Engine::Postgres => {
            locked = format!("{KNOWN} FOR UPDATE OF l");
            locked.as_str()
        }
    };
    let known: Option<Known> = sqlx::query_as(statement)
        .bind(&token.public_id)
        .bind(&req.uuid)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(known) = known.filter(|k| k.product_key == req.product_key) else {
        return Ok(Err(ApiError::BadRequest(
            "product_key does not match the device's license".into(),
        )));
    };
    let existing = match (known.dev_id, known.owner_id, known.generation) {
        (Some(dev_id), Some(owner), Some(generation)) => Some((dev_id, owner, generation)),
        _ => None,
    };
    if let Some((_, owner, _)) = &existing
        && *owner != token.owner_id
        && !req.reset
    {
        return Ok(Err(ApiError::pairing(ErrorCode::DevAlreadyBound)));
    }
    if known.counted == 0 {
        // The condition makes concurrent activations race safely: only as many succeed as
        // the token allows, whatever their interleaving. When it refuses it wrote nothing.
        let taken = sqlx::query(
            "UPDATE pairing_tokens SET used = used + 1 WHERE public_id = $1 AND used < max_devices",
        )
        .bind(&token.public_id)
        .execute(&mut **tx)
        .await?;
        if taken.rows_affected() == 0 {
            return Ok(Err(ApiError::pairing(ErrorCode::TokenUsed)));
        }
    }

    let now = crate::db_time(crate::unix_now());
    let dev_secret = Secret::new(random::string(ALPHANUMERIC, 32).context("random source")?);
    let (dev_id, generation) = match existing {
        // Same owner: keep the dev-id, rotate the secret and the generation.
        Some((dev_id, owner, generation)) if owner == token.owner_id => (dev_id, generation + 1),
        // Moved after a local reset, or new: a fresh dev-id.
        other => {
            if let Some((old, ..)) = other {
                devices::store::delete(&mut **tx, &old).await?;
            }
            (
                format!(
                    "d{}",
                    random::string(LOWER_ALPHANUMERIC, 19).context("random source")?
                ),
                1,
            )
        }
    };
    let binding = devices::store::Binding {
        dev_id: &dev_id,
        uuid: &req.uuid,
        owner_id: token.owner_id,
        product_key: &req.product_key,
        dev_secret: &dev_secret,
        generation,
        sw_ver: &req.sw_ver,
        module_version: &req.module_version,
        platform,
        activated_at: now,
    };
    devices::store::bind(&mut **tx, &binding).await?;
    sqlx::query(
        "INSERT INTO activations (token_id, uuid, dev_id, activated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (token_id, uuid) DO UPDATE SET dev_id = excluded.dev_id, activated_at = excluded.activated_at",
    )
    .bind(&token.public_id)
    .bind(&req.uuid)
    .bind(&dev_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(Ok(Bound {
        dev_id,
        dev_secret,
        generation,
    }))
}
