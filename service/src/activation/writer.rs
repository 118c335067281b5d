//! The activation writer: one task writes every activation, many to a transaction (group
//! commit). A request is answered only after the transaction holding it has committed,
//! so an answered activation is as durable as before; but concurrent activations share
//! one fsync and never wait on each other's write locks. A refused activation writes
//! nothing, so it does not disturb the others in its batch.

use std::collections::HashSet;

use tether_proto::activation::ActivateRequest;
use tokio::sync::{mpsc, oneshot};

use super::batch::Bound;
use crate::db::{Db, Engine};
use crate::device_auth::Nonce;
use crate::error::{ApiError, ApiResult};
use crate::pairing_tokens::TokenRow;

/// Most activations in one transaction.
const MAX_BATCH: usize = 256;
/// Activations waiting for the writer before senders wait too.
const QUEUE: usize = 4096;
/// Times a batch is tried again after PostgreSQL aborted it to break a deadlock with
/// another node's batch (or a serialization failure): it wrote nothing, so it is safe.
const RETRIES: u32 = 5;

/// One activation to write, and where its answer goes.
pub(super) struct Job {
    pub token: TokenRow,
    pub req: ActivateRequest,
    pub nonce: Nonce,
    /// The host's `Tether-Platform`, if it sent one.
    pub platform: Option<String>,
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

/// One transaction for the whole batch, written in rounds of a few statements each (see
/// [`super::batch`]). A device appears at most once per round, so that a retried request
/// in the same batch sees the first one's writes. A refused activation has written
/// nothing; a storage error fails the whole batch, which is then rolled back.
async fn write(db: &Db, engine: Engine, batch: &[Job]) -> anyhow::Result<Vec<ApiResult<Bound>>> {
    // On SQLite the write lock is taken up front, so nothing can commit between this
    // transaction's reads and its writes; on PostgreSQL the rows read are locked.
    let mut tx = db.begin_with(engine.begin_write()).await?;
    let mut results: Vec<Option<ApiResult<Bound>>> = batch.iter().map(|_| None).collect();
    let mut pending: Vec<usize> = (0..batch.len()).collect();
    while !pending.is_empty() {
        let mut seen = HashSet::new();
        let (round, later): (Vec<usize>, Vec<usize>) = pending
            .into_iter()
            .partition(|&i| seen.insert(batch[i].req.uuid.as_str()));
        let answers = super::batch::round(
            &mut tx,
            engine,
            &round.iter().map(|&i| &batch[i]).collect::<Vec<_>>(),
        )
        .await?;
        for (i, answer) in round.into_iter().zip(answers) {
            results[i] = Some(answer);
        }
        pending = later;
    }
    tx.commit().await?;
    Ok(results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(ApiError::Internal(anyhow::anyhow!(
                    "an activation was not written"
                )))
            })
        })
        .collect())
}
