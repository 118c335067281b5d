//! The local control socket (mode 0600): its server, which turns each request line into
//! a call on the [`DeviceHandle`], and [`CtlClient`], which `tether-host ctl` uses. The
//! messages are `tether_proto::ctl`'s; the C API speaks the same lines.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::de::DeserializeOwned;
use tether_proto::ctl::{CtlAnswer, CtlReply, CtlRequest, MAX_LINE, MAX_WINDOW_SECS};
use tether_proto::module::ModuleStatus;
use tether_proto::status::DeviceStatus;
use tether_proto::{ErrorCode, json_line};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::handle::DeviceHandle;

/// Listens on `path` (mode 0600; a stale socket file is replaced).
pub(crate) fn serve(path: &Path, device: DeviceHandle) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).context("failed to remove a stale control socket");
        }
        _ => {}
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("failed to listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(session(stream, device.clone()));
        }
    });
    Ok(())
}

async fn session(stream: UnixStream, device: DeviceHandle) {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader.take(MAX_LINE as u64 * 64)).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = if line.len() > MAX_LINE {
            json_line(&CtlReply::of(Err(ErrorCode::InvalidParm)))
        } else {
            match serde_json::from_str::<CtlRequest>(&line) {
                Ok(request) => answer(&device, request).await,
                Err(e) => json_line(&CtlReply::error(ErrorCode::InvalidParm, e.to_string())),
            }
        };
        if writer.write_all(&reply).await.is_err() {
            return;
        }
    }
}

/// The reply line to one request.
async fn answer(device: &DeviceHandle, request: CtlRequest) -> Vec<u8> {
    let internal = || CtlReply::of(Err(ErrorCode::Internal));
    match request {
        CtlRequest::UserCfg {
            ssid,
            passwd,
            token,
        } => {
            let result = device
                .user_cfg(&ssid, passwd.expose(), token.expose())
                .await;
            json_line(&CtlReply::of(result))
        }
        CtlRequest::Status {} => match device.status().await {
            Some(status) => json_line(&status),
            None => json_line(&internal()),
        },
        CtlRequest::Reset {} => json_line(&if device.reset().await {
            CtlReply::of(Ok(()))
        } else {
            internal()
        }),
        CtlRequest::ModuleLoad { path } => json_line(&module_load(device, &path).await),
        CtlRequest::ModuleStatus {} => match device.module_status().await {
            Some(status) => json_line(&status),
            None => json_line(&internal()),
        },
        CtlRequest::PairingOpen { secs } if !(1..=MAX_WINDOW_SECS).contains(&secs) => {
            json_line(&CtlReply::error(
                ErrorCode::InvalidParm,
                format!("a pairing window lasts 1-{MAX_WINDOW_SECS} s"),
            ))
        }
        CtlRequest::PairingOpen { secs } => json_line(&CtlReply::of(
            device
                .pairing_window(Some(secs))
                .await
                .then_some(())
                .ok_or(ErrorCode::Internal),
        )),
        CtlRequest::PairingClose {} => json_line(&CtlReply::of(
            device
                .pairing_window(None)
                .await
                .then_some(())
                .ok_or(ErrorCode::Internal),
        )),
    }
}

/// `module-load`: the bundle file is read by the host, then applied.
async fn module_load(device: &DeviceHandle, path: &Path) -> CtlReply {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) => {
            return CtlReply::error(
                ErrorCode::InvalidParm,
                format!("cannot read {}: {e}", path.display()),
            );
        }
    };
    match device.update(bytes).await {
        Ok(report) => CtlReply::applied(report),
        Err(refusal) => CtlReply::update_refused(refusal.name(), refusal.to_string()),
    }
}

/// A client of a running host's control socket: one connection per request.
#[derive(Debug, Clone)]
pub struct CtlClient {
    socket: PathBuf,
}

impl CtlClient {
    /// A client for the socket at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }

    /// Sends `request` and parses the answer line as `T`.
    pub async fn ask<T: DeserializeOwned>(&self, request: &CtlRequest) -> anyhow::Result<T> {
        let stream = UnixStream::connect(&self.socket).await.with_context(|| {
            format!(
                "cannot reach a running tether-host at {} (is `tether-host run` up?)",
                self.socket.display()
            )
        })?;
        let (reader, mut writer) = stream.into_split();
        writer
            .write_all(&json_line(request))
            .await
            .context("failed to send the request")?;
        let mut answer = String::new();
        BufReader::new(reader)
            .take(MAX_LINE as u64 * 64)
            .read_line(&mut answer)
            .await
            .context("failed to read the answer")?;
        serde_json::from_str(&answer)
            .with_context(|| format!("the host answered something unexpected: {answer}"))
    }

    /// The device's status, or why the host could not give it.
    pub async fn status(&self) -> anyhow::Result<CtlAnswer<DeviceStatus>> {
        self.ask(&CtlRequest::Status {}).await
    }

    /// The component in use and the update slots, or why the host could not give them.
    pub async fn module_status(&self) -> anyhow::Result<CtlAnswer<ModuleStatus>> {
        self.ask(&CtlRequest::ModuleStatus {}).await
    }

    /// Any request answered with a [`CtlReply`] (`user-cfg`, `reset`, `module-load`).
    pub async fn command(&self, request: &CtlRequest) -> anyhow::Result<CtlReply> {
        self.ask(request).await
    }
}
