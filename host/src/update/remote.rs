//! Updates from the cloud: a protocol 15 notice names a bundle, which is downloaded with
//! a request signed by the device's dev-secret and applied like any other; and every
//! new update outcome (probation, applied, refused, rolled back) is reported back to
//! `POST /v1/devices/{dev_id}/module-status`, signed the same way.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tether_proto::mqtt::{Envelope, Protocol};
use tokio::sync::mpsc;

use crate::capabilities::{DeviceIdentity, Key, Kv, Signer};
use crate::daemon::{self, Inputs};

/// What a protocol 15 notice carries.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Notice {
    /// Component version.
    pub version: String,
    /// Bundle sequence.
    pub sequence: u64,
    /// Where to download the bundle.
    pub url: String,
}

/// The notice in an MQTT payload, if it is one.
pub(crate) fn notice(payload: &[u8]) -> Option<Notice> {
    let envelope: Envelope = serde_json::from_slice(payload).ok()?;
    if envelope.protocol != Protocol::ComponentUpdate {
        return None;
    }
    serde_json::from_value(envelope.data).ok()
}

/// Where the device's secrets and stored endpoints are.
#[derive(Debug, Clone)]
pub(crate) struct Cloud {
    pub identity: DeviceIdentity,
    pub binding: PathBuf,
    pub kv_dir: PathBuf,
}

impl Cloud {
    fn signer(&self) -> anyhow::Result<Signer> {
        Ok(Signer::new(
            Some(self.identity.clone()),
            Some(self.binding.clone()),
        )?)
    }

    /// The API base URL the component got from IoT DNS (its stored `endpoints`).
    fn api_url(&self) -> Option<String> {
        let kv = Kv::open(&self.kv_dir).ok()?;
        let bytes = kv.get("endpoints").ok()??;
        let endpoints: Value = serde_json::from_slice(&bytes).ok()?;
        endpoints["http_url"].as_str().map(str::to_owned)
    }
}

/// Starts the downloader and the outcome reporter; returns where notices go.
pub(crate) fn start(cloud: Cloud, inputs: Inputs) -> mpsc::UnboundedSender<Notice> {
    let (notices, mut rx) = mpsc::unbounded_channel::<Notice>();
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap_or_default();
    let (c, i, h) = (cloud.clone(), inputs.clone(), http.clone());
    tokio::spawn(async move {
        while let Some(notice) = rx.recv().await {
            tracing::info!(version = %notice.version, sequence = notice.sequence, "update notice received");
            match download(&c, &h, &notice).await {
                Ok(bytes) => match daemon::update(&i, bytes).await {
                    Ok(report) => {
                        tracing::info!(version = %report.version, pause_us = report.pause_us, "update from the cloud applied")
                    }
                    Err(refusal) => {
                        tracing::warn!(reason = refusal.name(), error = %refusal, "update from the cloud refused")
                    }
                },
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot download the update"),
            }
        }
    });
    tokio::spawn(report_outcomes(cloud, http, inputs));
    notices
}

async fn download(
    cloud: &Cloud,
    http: &reqwest::Client,
    notice: &Notice,
) -> anyhow::Result<Vec<u8>> {
    let url = reqwest::Url::parse(&notice.url)?;
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let auth = cloud
        .signer()?
        .sign_request("GET", &path, b"", Key::DevSecret)
        .map_err(|e| anyhow::anyhow!("cannot sign: {e}"))?;
    let response = http
        .get(url)
        .header("authorization", auth)
        .send()
        .await?
        .error_for_status()?;
    let max = tether_proto::bundle::MAX_COMPONENT + 8192;
    Ok(crate::providers::http::read_capped(response, max).await?)
}

/// Reports each new `last_outcome` of the update slots; retries every few seconds until
/// the cloud has it.
async fn report_outcomes(cloud: Cloud, http: reqwest::Client, inputs: Inputs) {
    let mut reported: Option<Value> = None;
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        let Some(status) = daemon::module_status(&inputs).await else {
            return;
        };
        let outcome = status["slots"]["last_outcome"].clone();
        if outcome.is_null() || reported.as_ref() == Some(&outcome) {
            continue;
        }
        match report(&cloud, &http, &outcome, &status["version"]).await {
            Ok(()) => reported = Some(outcome),
            Err(e) => tracing::debug!(error = %format!("{e:#}"), "update outcome not reported yet"),
        }
    }
}

async fn report(
    cloud: &Cloud,
    http: &reqwest::Client,
    outcome: &Value,
    running: &Value,
) -> anyhow::Result<()> {
    let signer = cloud.signer()?;
    let dev_id = signer
        .dev_id()
        .ok_or_else(|| anyhow::anyhow!("the device is not activated"))?
        .to_owned();
    let base = cloud
        .api_url()
        .ok_or_else(|| anyhow::anyhow!("no cloud endpoints stored yet"))?;
    let path = format!("/v1/devices/{dev_id}/module-status");
    let body = serde_json::to_vec(&json!({
        "version": outcome["version"],
        "sequence": outcome["sequence"],
        "result": outcome["result"],
        "reason": outcome["reason"],
        "running": running,
    }))?;
    let auth = signer
        .sign_request("POST", &path, &body, Key::DevSecret)
        .map_err(|e| anyhow::anyhow!("cannot sign: {e}"))?;
    http.post(format!("{}{path}", base.trim_end_matches('/')))
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?
        .error_for_status()?;
    tracing::info!(result = %outcome["result"], version = %outcome["version"], "update outcome reported");
    Ok(())
}
