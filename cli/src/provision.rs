//! `tether provision`: hands a device the router's credentials and a pairing token over
//! its data channel, then follows it until it is online or has failed, showing each
//! phase. The device's own status (over the channel) shows every phase and Wi-Fi
//! failures; the token's long-poll confirms the activation in the cloud.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tether_proto::ErrorCode;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::client::Api;
use crate::failure::Failure;

/// How often the device's status is asked for.
const POLL: Duration = Duration::from_millis(150);

/// What a successful provisioning reports.
#[derive(Debug)]
pub struct Provisioned {
    /// The device id.
    pub dev_id: String,
    /// The device's per-phase timings.
    pub timings: Value,
    /// The public part of the token used.
    pub token: String,
}

/// One connection to a device's data channel.
#[derive(Debug)]
pub struct Channel {
    lines: Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
}

impl Channel {
    /// Connects to the channel at `device` (HOST:PORT).
    pub async fn open(device: &str) -> Result<Self, Failure> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(device))
            .await
            .map_err(|_| Failure::Unreachable(format!("the device at {device} did not answer")))?
            .map_err(|e| {
                Failure::Unreachable(format!("cannot reach the device at {device}: {e}"))
            })?;
        let (reader, writer) = stream.into_split();
        Ok(Self {
            lines: BufReader::new(reader).lines(),
            writer,
        })
    }

    /// Sends one request line and reads the answer line.
    pub async fn ask(&mut self, request: &Value) -> Result<Value, Failure> {
        let lost =
            |e: std::io::Error| Failure::Unreachable(format!("the device's channel failed: {e}"));
        self.writer
            .write_all(format!("{request}\n").as_bytes())
            .await
            .map_err(lost)?;
        let line = tokio::time::timeout(Duration::from_secs(5), self.lines.next_line())
            .await
            .map_err(|_| Failure::Timeout("the device did not answer on its channel".into()))?
            .map_err(lost)?
            .ok_or_else(|| Failure::Unreachable("the device closed its channel".into()))?;
        serde_json::from_str(&line).map_err(|_| {
            Failure::Other(format!(
                "the device answered something that is not JSON: {line}"
            ))
        })
    }
}

/// Provisions the device at `device` (HOST:PORT) with the router's credentials and
/// `token` (all 14 characters), reporting phases through `progress`.
pub async fn provision(
    api: &Api,
    device: &str,
    ssid: &str,
    password: &str,
    token: &str,
    deadline: Duration,
    mut progress: impl FnMut(&str),
) -> Result<Provisioned, Failure> {
    let started = Instant::now();
    let mut channel = Channel::open(device).await?;
    let ack = channel
        .ask(&json!({"type": "config", "ssid": ssid, "passwd": password, "token": token}))
        .await?;
    match ack["code"].as_str() {
        Some("ok") => progress("credentials accepted by the device"),
        Some(code) => return Err(refusal(code, "the device refused the credentials")),
        None => {
            return Err(Failure::Other(format!(
                "unexpected answer from the device: {ack}"
            )));
        }
    }
    let public = &token[..token.len().min(10)];
    let mut last_state = String::new();
    loop {
        if started.elapsed() > deadline {
            return Err(Failure::Timeout(format!(
                "the device did not come online within {} s",
                deadline.as_secs()
            )));
        }
        let status = match channel.ask(&json!({"type": "status"})).await {
            Ok(status) => status,
            // The device may leave its soft AP once it joins the router: follow the token.
            Err(Failure::Unreachable(_)) => {
                return follow_token(
                    api,
                    public,
                    deadline.saturating_sub(started.elapsed()),
                    &mut progress,
                )
                .await;
            }
            Err(e) => return Err(e),
        };
        let state = status["state"].as_str().unwrap_or("unknown").to_owned();
        if state != last_state {
            progress(&state);
            last_state.clone_from(&state);
        }
        // A device that was online before keeps its previous network when the new
        // settings fail, and says why.
        if state == "online"
            && let Some(code) = status["last_error"].as_str()
        {
            return Err(refusal(
                code,
                "the device could not use these settings and went back to its previous network",
            ));
        }
        if state == "online"
            && let Some(dev_id) = status["dev_id"].as_str()
        {
            confirm(api, public, dev_id).await?;
            return Ok(Provisioned {
                dev_id: dev_id.to_owned(),
                timings: status["timings"].clone(),
                token: public.to_owned(),
            });
        }
        if state == "awaiting-credentials"
            && let Some(code) = status["last_error"].as_str()
        {
            return Err(refusal(code, "pairing failed"));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The cloud agrees: the token lists the device.
async fn confirm(api: &Api, public: &str, dev_id: &str) -> Result<(), Failure> {
    let status = api
        .call(
            Method::GET,
            &format!("/v1/pairing-tokens/{public}"),
            None,
            Duration::from_secs(30),
        )
        .await?;
    let listed = status["devices"]
        .as_array()
        .is_some_and(|d| d.iter().any(|x| x["dev_id"] == dev_id));
    if listed {
        Ok(())
    } else {
        Err(Failure::Other(format!(
            "the device reports {dev_id} but the token does not list it"
        )))
    }
}

async fn follow_token(
    api: &Api,
    public: &str,
    left: Duration,
    progress: &mut impl FnMut(&str),
) -> Result<Provisioned, Failure> {
    progress("following the pairing token");
    let until = Instant::now() + left;
    while Instant::now() < until {
        let wait = until
            .saturating_duration_since(Instant::now())
            .as_secs()
            .clamp(1, 30);
        let status = api
            .call(
                Method::GET,
                &format!("/v1/pairing-tokens/{public}?wait={wait}"),
                None,
                Duration::from_secs(wait + 10),
            )
            .await?;
        if let Some(device) = status["devices"].as_array().and_then(|d| d.last()) {
            let dev_id = device["dev_id"].as_str().unwrap_or_default().to_owned();
            return Ok(Provisioned {
                dev_id,
                timings: Value::Null,
                token: public.to_owned(),
            });
        }
        if let Some(failure) = status["failures"].as_array().and_then(|f| f.last()) {
            return Err(refusal(
                failure["code"].as_str().unwrap_or("internal"),
                "the device reported a failure",
            ));
        }
        match status["state"].as_str() {
            Some("expired") => {
                return Err(Failure::Pairing {
                    code: ErrorCode::TokenExpired,
                    message: "the pairing token expired".into(),
                });
            }
            Some("revoked") => {
                return Err(Failure::Pairing {
                    code: ErrorCode::TokenInvalid,
                    message: "the pairing token was revoked".into(),
                });
            }
            _ => {}
        }
    }
    Err(Failure::Timeout(
        "no device activated with the token in time".into(),
    ))
}

fn refusal(code: &str, context: &str) -> Failure {
    match ErrorCode::from_name(code) {
        Some(code) => Failure::Pairing {
            code,
            message: format!("{context}: {}", code.description()),
        },
        None => Failure::Other(format!("{context}: {code}")),
    }
}
