//! The local control socket: JSON lines over a unix socket, used by `tether-host ctl` and
//! the C API. Requests: `{"cmd":"user-cfg","ssid","passwd","token"}` →
//! `{"code":"ok","oprt":0}` or the error's code and OPRT number; `{"cmd":"status"}` →
//! the status; `{"cmd":"reset"}` → `{"code":"ok","oprt":0}`; `{"cmd":"module-load",
//! "path"}` applies a bundle file; `{"cmd":"module-status"}` → the installed component and
//! the update slots.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use serde_json::{Value, json};
use tether_proto::ErrorCode;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::daemon::{self, Inputs};

/// Longest request line.
const MAX_LINE: usize = 4096;

#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
enum Request {
    UserCfg {
        ssid: String,
        passwd: String,
        token: String,
    },
    Status {},
    Reset {},
    /// Apply the bundle file at `path` (read by the host).
    ModuleLoad {
        path: std::path::PathBuf,
    },
    ModuleStatus {},
}

/// The answer for a result code.
pub fn code_reply(result: Result<(), ErrorCode>) -> Value {
    match result {
        Ok(()) => json!({"code": "ok", "oprt": 0}),
        Err(code) => {
            json!({"code": code.name(), "oprt": code.oprt(), "message": code.description()})
        }
    }
}

/// Listens on `path` (mode 0600; a stale socket file is replaced).
pub(crate) fn serve(path: &Path, inputs: Inputs) -> anyhow::Result<()> {
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
            tokio::spawn(session(stream, inputs.clone()));
        }
    });
    Ok(())
}

async fn session(stream: UnixStream, inputs: Inputs) {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader.take(MAX_LINE as u64 * 64)).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = if line.len() > MAX_LINE {
            code_reply(Err(ErrorCode::InvalidParm))
        } else {
            match serde_json::from_str::<Request>(&line) {
                Ok(Request::UserCfg {
                    ssid,
                    passwd,
                    token,
                }) => code_reply(daemon::user_cfg(&inputs, &ssid, &passwd, &token).await),
                Ok(Request::Status {}) => match daemon::status(&inputs).await {
                    Some(status) => serde_json::to_value(status).unwrap_or(Value::Null),
                    None => code_reply(Err(ErrorCode::Internal)),
                },
                Ok(Request::Reset {}) => code_reply(if daemon::reset(&inputs).await {
                    Ok(())
                } else {
                    Err(ErrorCode::Internal)
                }),
                Ok(Request::ModuleLoad { path }) => module_load(&inputs, &path).await,
                Ok(Request::ModuleStatus {}) => daemon::module_status(&inputs)
                    .await
                    .unwrap_or_else(|| code_reply(Err(ErrorCode::Internal))),
                Err(e) => {
                    json!({"code": "invalid_parm", "oprt": ErrorCode::InvalidParm.oprt(), "message": e.to_string()})
                }
            }
        };
        let mut bytes = reply.to_string().into_bytes();
        bytes.push(b'\n');
        if writer.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

/// `module-load`: `{"code":"ok", "report":{…}}`, or `{"code":"update_refused",
/// "reason", "message"}`.
async fn module_load(inputs: &Inputs, path: &Path) -> Value {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) => {
            return json!({"code": "invalid_parm", "oprt": ErrorCode::InvalidParm.oprt(),
                "message": format!("cannot read {}: {e}", path.display())});
        }
    };
    match daemon::update(inputs, bytes).await {
        Ok(report) => json!({"code": "ok", "oprt": 0, "report": report}),
        Err(refusal) => json!({"code": "update_refused", "oprt": ErrorCode::Internal.oprt(),
            "reason": refusal.name(), "message": refusal.to_string()}),
    }
}

/// Sends one request to a running host and returns its answer.
pub async fn request(path: &Path, request: &Value) -> anyhow::Result<Value> {
    let stream = UnixStream::connect(path).await.with_context(|| {
        format!(
            "cannot reach a running tether-host at {} (is `tether-host run` up?)",
            path.display()
        )
    })?;
    let (reader, mut writer) = stream.into_split();
    let mut line = request.to_string().into_bytes();
    line.push(b'\n');
    writer
        .write_all(&line)
        .await
        .context("failed to send the request")?;
    let mut answer = String::new();
    BufReader::new(reader)
        .read_line(&mut answer)
        .await
        .context("failed to read the answer")?;
    serde_json::from_str(&answer).context("the host answered something that is not JSON")
}
