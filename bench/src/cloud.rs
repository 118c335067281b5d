//! A cloud to measure against: a service data dir seeded with an account, licenses and
//! pairing tokens before the service starts, and the device's side of activation (a
//! request signed with the license's authkey).

use anyhow::Context;
use tether_proto::Secret;
use tether_proto::activation::{ActivateRequest, ActivateResponse};
use tether_service::licenses::License;
use tether_service::local::{self, Account};
use tether_service::users::Role;

use crate::procs::{Kind, Server};

/// The product every bench device belongs to.
pub const PRODUCT_KEY: &str = "pbench000000000a";
/// The account that owns the tokens.
pub const USER: &str = "bench";
/// Its password.
pub const PASSWORD: &str = "bench-password-1";
/// Devices per token (the service's maximum).
pub const PER_TOKEN: usize = tether_service::pairing_tokens::MAX_DEVICES as usize;
/// The activation path.
pub const ACTIVATE: &str = "/v1/devices/activate";

/// A service data dir with `licenses.len()` devices' licenses and enough tokens for all.
#[derive(Debug)]
pub struct Seeded {
    /// The data dir (removed on drop).
    pub dir: tempfile::TempDir,
    /// The licenses.
    pub licenses: Vec<License>,
    /// Pairing tokens; device `i` uses `tokens[i / PER_TOKEN]`.
    pub tokens: Vec<String>,
    /// The PostgreSQL database of the registry; `None`: SQLite in the data dir.
    pub database: Option<Secret>,
}

impl Seeded {
    /// Seeds a fresh data dir for `devices` devices.
    pub async fn new(devices: usize) -> anyhow::Result<Self> {
        Self::new_on(devices, None).await
    }

    /// Seeds a fresh data dir for `devices` devices, with the registry in the PostgreSQL
    /// `database` when given.
    pub async fn new_on(devices: usize, database: Option<Secret>) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("tether-bench-")
            .tempdir()
            .context("cannot create a data dir")?;
        let account = Account {
            name: USER,
            password: PASSWORD,
            role: Role::User,
        };
        let seeded = local::seed(
            dir.path(),
            database.as_ref(),
            &[account],
            PRODUCT_KEY,
            devices,
        )
        .await?;
        let (owner, licenses) = (seeded.account_ids[0], seeded.licenses);
        let db = tether_service::db::open(dir.path(), database.as_ref()).await?;
        // The service loads the same key from the data dir when it starts.
        let keys = tether_service::keys::Keys::load_or_create(dir.path())?;
        let mut tokens = Vec::new();
        for _ in 0..devices.div_ceil(PER_TOKEN) {
            let (token, _) = tether_service::pairing_tokens::insert(
                &db,
                keys.token_hash_key(),
                tether_service::config::DEFAULT_REGION,
                owner,
                u32::try_from(PER_TOKEN)?,
                3600,
            )
            .await?;
            tokens.push(token.expose().to_owned());
        }
        db.close().await;
        Ok(Self {
            dir,
            licenses,
            tokens,
            database,
        })
    }

    /// The token device `i` pairs with.
    pub fn token(&self, i: usize) -> &str {
        &self.tokens[i / PER_TOKEN]
    }

    /// Starts the service on this data dir, as a child process.
    pub fn serve(&self) -> anyhow::Result<Server> {
        self.serve_with(false)
    }

    /// Starts the service on this data dir, over TLS when `tls`.
    pub fn serve_with(&self, tls: bool) -> anyhow::Result<Server> {
        let kind = if tls { Kind::ServiceTls } else { Kind::Service };
        Server::start_on(kind, self.dir.path(), self.database.as_ref())
    }
}

/// A signed activation request of `license` with `token`: the body and the
/// `Authorization` value, made ahead so that signing is not part of what is measured.
pub fn activation(license: &License, token: &str) -> anyhow::Result<(Vec<u8>, String)> {
    let req = ActivateRequest {
        uuid: license.uuid.clone(),
        product_key: license.product_key.clone(),
        token: Secret::new(token),
        sw_ver: "1.0.0".into(),
        module_version: "0.1.0".into(),
        reset: false,
        timings: None,
    };
    local::signed_activation(&license.uuid, license.authkey.expose(), &req)
}

/// Activates every license of `seeded` with `concurrency` requests in flight, printing
/// progress; returns the answers in license order.
pub async fn activate_all(
    seeded: &Seeded,
    service: &Server,
    concurrency: usize,
) -> anyhow::Result<Vec<ActivateResponse>> {
    let client = service.client()?;
    let url = service.url();
    let n = seeded.licenses.len();
    let mut answers: Vec<Option<ActivateResponse>> = (0..n).map(|_| None).collect();
    let started = std::time::Instant::now();
    let mut next = 0;
    let mut inflight = tokio::task::JoinSet::new();
    let mut done = 0;
    while done < n {
        while next < n && inflight.len() < concurrency {
            let (body, header) = activation(&seeded.licenses[next], seeded.token(next))?;
            let request = client
                .post(format!("{url}{ACTIVATE}"))
                .header("authorization", header)
                .header("content-type", "application/json")
                .body(body);
            let i = next;
            inflight.spawn(async move {
                let response = request.send().await?.error_for_status()?;
                anyhow::Ok((i, response.json::<ActivateResponse>().await?))
            });
            next += 1;
        }
        let Some(joined) = inflight.join_next().await else {
            break;
        };
        let (i, answer) = joined.context("an activation task failed")??;
        answers[i] = Some(answer);
        done += 1;
        if done % 1000 == 0 || done == n {
            eprintln!(
                "  … {done}/{n} devices activated ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    answers
        .into_iter()
        .map(|a| a.context("a device was not activated"))
        .collect()
}
