//! The watched update directory: every second, each `*.bundle` file in it is applied,
//! then renamed to `NAME.bundle.applied` or `NAME.bundle.refused` so it is tried once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::handle::DeviceHandle;

/// Starts watching `dir` (created if missing).
pub(crate) fn start(dir: PathBuf, device: DeviceHandle) {
    tokio::spawn(async move {
        if let Err(e) = tokio::fs::create_dir_all(&dir).await {
            tracing::error!(dir = %dir.display(), error = %e, "cannot create the update directory");
            return;
        }
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            for path in bundles(&dir).await {
                if !apply(&path, &device).await {
                    return;
                }
            }
        }
    });
}

async fn bundles(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "bundle") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Applies one file; false once the device has stopped.
async fn apply(path: &Path, device: &DeviceHandle) -> bool {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read the bundle");
            return true;
        }
    };
    if device.is_stopped() {
        return false;
    }
    let suffix = match device.update(bytes).await {
        Ok(report) => {
            tracing::info!(file = %path.display(), version = %report.version, "bundle applied from the update directory");
            "applied"
        }
        Err(refusal) => {
            tracing::warn!(file = %path.display(), reason = refusal.name(), error = %refusal, "bundle from the update directory refused");
            "refused"
        }
    };
    let mut done = path.as_os_str().to_owned();
    done.push(".");
    done.push(suffix);
    if let Err(e) = tokio::fs::rename(path, PathBuf::from(done)).await {
        tracing::error!(file = %path.display(), error = %e, "cannot mark the bundle as done");
    }
    true
}
