//! Updates from the cloud: a protocol 15 notice names a bundle, which is downloaded with
//! a request signed by the device's dev-secret and applied like any other; and every
//! new update outcome (probation, applied, refused, rolled back) is reported back to
//! `POST /v1/devices/{dev_id}/module-status`, signed the same way, at the API URL the
//! component handed over with `set-endpoints`.

use std::path::PathBuf;
use std::time::Duration;

use tether_proto::module::{ModuleStatusReport, UpdateNotice, UpdateOutcome};
use tether_proto::mqtt::{Envelope, Protocol};
use tokio::sync::mpsc;

use crate::capabilities::{DeviceIdentity, Key, Signer};
use crate::handle::DeviceHandle;
use crate::trust::CloudTrust;

/// How long a bundle download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an outcome report may take.
const REPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a protocol 15 notice carries.
pub(crate) type Notice = UpdateNotice;

/// The notice in an MQTT payload, if it is one.
pub(crate) fn notice(payload: &[u8]) -> Option<Notice> {
    let envelope: Envelope = serde_json::from_slice(payload).ok()?;
    if envelope.protocol != Protocol::ComponentUpdate {
        return None;
    }
    serde_json::from_value(envelope.data).ok()
}

/// Where the device's secrets and the endpoints the component stored are.
#[derive(Debug, Clone)]
pub(crate) struct Cloud {
    pub identity: DeviceIdentity,
    pub binding: PathBuf,
    pub endpoints: PathBuf,
    /// The factory trust; the delivered CAs are read with the endpoints.
    pub trust: CloudTrust,
}

impl Cloud {
    /// An HTTP client that trusts the factory CA and the CAs `signer` holds with the
    /// endpoints.
    fn http(&self, signer: &Signer) -> reqwest::Client {
        let mut trust = self.trust.clone();
        if let Some(endpoints) = signer.endpoints() {
            trust.deliver(&endpoints.ca);
        }
        trust.http()
    }

    /// Refuses a plain URL on a device that pins a cloud CA.
    fn check_scheme(&self, url: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.trust.pinned() || url.starts_with("https://"),
            "refused {url}: this device pins a cloud CA and talks https:// only"
        );
        Ok(())
    }

    fn signer(&self) -> anyhow::Result<Signer> {
        Ok(
            Signer::new(Some(self.identity.clone()), Some(self.binding.clone()))?
                .with_endpoints_file(self.endpoints.clone())?,
        )
    }
}

/// Starts the downloader and the outcome reporter; returns where notices go.
pub(crate) fn start(cloud: Cloud, device: DeviceHandle) -> mpsc::UnboundedSender<Notice> {
    let (notices, mut rx) = mpsc::unbounded_channel::<Notice>();
    let (c, d) = (cloud.clone(), device.clone());
    tokio::spawn(async move {
        while let Some(notice) = rx.recv().await {
            tracing::info!(version = %notice.version, sequence = notice.sequence, "update notice received");
            match download(&c, &notice).await {
                Ok(bytes) => match d.update(bytes).await {
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
    tokio::spawn(report_outcomes(cloud, device));
    notices
}

async fn download(cloud: &Cloud, notice: &Notice) -> anyhow::Result<Vec<u8>> {
    cloud.check_scheme(&notice.url)?;
    let url = reqwest::Url::parse(&notice.url)?;
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let signer = cloud.signer()?;
    let auth = signer
        .sign_request("GET", &path, b"", Key::DevSecret)
        .map_err(|e| anyhow::anyhow!("cannot sign: {e}"))?;
    let response = cloud
        .http(&signer)
        .get(url)
        .timeout(DOWNLOAD_TIMEOUT)
        .header("authorization", auth)
        .send()
        .await?
        .error_for_status()?;
    let max = tether_proto::bundle::MAX_COMPONENT + 8192;
    Ok(crate::providers::http::read_capped(response, max).await?)
}

/// Reports each new update outcome as the instance thread records it; retries every few
/// seconds until the cloud has it.
async fn report_outcomes(cloud: Cloud, device: DeviceHandle) {
    let mut outcomes = device.outcomes();
    let mut reported: Option<UpdateOutcome> = None;
    loop {
        let pending = outcomes.borrow_and_update().clone();
        if let Some(outcome) = pending.filter(|o| reported.as_ref() != Some(o)) {
            let running = device.module_status().await.map(|s| s.version);
            let Some(running) = running else { return };
            match report(&cloud, &outcome, running).await {
                Ok(()) => reported = Some(outcome),
                Err(e) => {
                    tracing::debug!(error = %format!("{e:#}"), "update outcome not reported yet");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        changed = outcomes.changed() => if changed.is_err() { return },
                    }
                    continue;
                }
            }
        }
        if outcomes.changed().await.is_err() {
            return;
        }
    }
}

async fn report(cloud: &Cloud, outcome: &UpdateOutcome, running: String) -> anyhow::Result<()> {
    let signer = cloud.signer()?;
    let dev_id = signer
        .dev_id()
        .ok_or_else(|| anyhow::anyhow!("the device is not activated"))?
        .to_owned();
    let base = signer
        .endpoints()
        .map(|e| e.http_url.clone())
        .ok_or_else(|| anyhow::anyhow!("no cloud endpoints stored yet"))?;
    cloud.check_scheme(&base)?;
    let path = format!("/v1/devices/{dev_id}/module-status");
    let body = serde_json::to_vec(&ModuleStatusReport {
        version: outcome.version.clone(),
        sequence: outcome.sequence,
        result: outcome.result,
        reason: outcome.reason.clone(),
        running,
    })?;
    let auth = signer
        .sign_request("POST", &path, &body, Key::DevSecret)
        .map_err(|e| anyhow::anyhow!("cannot sign: {e}"))?;
    cloud
        .http(&signer)
        .post(format!("{}{path}", base.trim_end_matches('/')))
        .timeout(REPORT_TIMEOUT)
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?
        .error_for_status()?;
    tracing::info!(result = outcome.result.name(), version = %outcome.version, "update outcome reported");
    Ok(())
}
