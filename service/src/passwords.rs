//! Password checks on a few threads of their own, each reusing one Argon2 work area.
//! Argon2 needs 19 MiB per check; run on the blocking pool, every new thread's allocator
//! kept its own copy, and a login flood grew the service by hundreds of MiB. Here the
//! memory is at most [`MAX_WORKERS`] work areas, allocated once, and callers that find
//! every place taken for [`ADMISSION_WAIT`] are turned away (429) instead of queueing.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tether_proto::Secret;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// Most threads checking passwords (and so most work areas held).
pub const MAX_WORKERS: usize = 4;
/// How long a check may wait for a place before it is refused.
pub const ADMISSION_WAIT: Duration = Duration::from_secs(2);
/// Largest Argon2 memory cost a stored hash may ask for (KiB): 64 MiB.
const MAX_MEMORY_KIB: u32 = 64 * 1024;

/// Every place is taken: try again shortly.
#[derive(Debug, thiserror::Error)]
#[error("too many password checks at once")]
pub struct Busy;

struct Job {
    password: Secret,
    phc: String,
    reply: oneshot::Sender<bool>,
    _place: OwnedSemaphorePermit,
}

/// The password-check threads.
#[derive(Debug)]
pub struct PasswordChecks {
    jobs: Mutex<mpsc::Sender<Job>>,
    places: Arc<Semaphore>,
}

impl Default for PasswordChecks {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self::start(cores.clamp(1, MAX_WORKERS))
    }
}

impl PasswordChecks {
    /// Starts `workers` threads; they end when this is dropped. Twice as many checks may
    /// be admitted: one running and one waiting per thread.
    pub fn start(workers: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..workers {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-check-{n}"))
                .spawn(move || work(&queue));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "failed to start a password-check thread");
            }
        }
        Self {
            jobs: Mutex::new(jobs),
            places: Arc::new(Semaphore::new(2 * workers.max(1))),
        }
    }

    /// Whether `password` matches the PHC string `phc`.
    pub async fn verify(&self, password: Secret, phc: String) -> Result<bool, Busy> {
        let place = tokio::time::timeout(ADMISSION_WAIT, self.places.clone().acquire_owned())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            password,
            phc,
            reply,
            _place: place,
        };
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .map_err(|_| Busy)?;
        answer.await.map_err(|_| Busy)
    }
}

fn work(queue: &Mutex<mpsc::Receiver<Job>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = {
            let queue = queue.lock().unwrap_or_else(|p| p.into_inner());
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let ok = matches(&job.password, &job.phc, &mut memory);
        let _ = job.reply.send(ok);
    }
}

/// Checks `password` against a PHC string in `memory`, grown once to the hash's cost.
fn matches(password: &Secret, phc: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    if params.m_cost() > MAX_MEMORY_KIB {
        return false;
    }
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(
            password.expose().as_bytes(),
            salt,
            &mut out,
            &mut memory[..blocks],
        )
        .is_err()
    {
        return false;
    }
    out.as_slice().ct_eq(expected.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use argon2::PasswordHasher;
    use argon2::password_hash::SaltString;

    use super::*;

    fn phc(password: &str) -> String {
        let salt = SaltString::encode_b64(&[3u8; 16]).expect("salt");
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .expect("hashes")
            .to_string()
    }

    #[tokio::test]
    async fn checks_agree_with_argon2_and_refuse_malformed_hashes() {
        let checks = PasswordChecks::start(1);
        let stored = phc("correct horse");
        assert!(
            checks
                .verify(Secret::new("correct horse"), stored.clone())
                .await
                .expect("admitted")
        );
        assert!(
            !checks
                .verify(Secret::new("correct hors"), stored.clone())
                .await
                .expect("admitted")
        );
        assert!(
            !checks
                .verify(Secret::new("x"), "not a hash".into())
                .await
                .expect("admitted")
        );
        let greedy = stored.replace("m=19456", "m=4194304");
        assert!(
            !checks
                .verify(Secret::new("correct horse"), greedy)
                .await
                .expect("admitted")
        );
    }
}
