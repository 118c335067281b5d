//! The provisioner's end of a device's data channel: connect, read the public `info`,
//! prove the setup code (SPAKE2+), then ask over sealed frames. Protocol 1, in clear,
//! only when asked for explicitly (a device with its development switch on).

use std::time::Duration;

use serde::de::DeserializeOwned;
use tether_proto::b64::B64;
use tether_proto::channel::{
    ChannelError, ChannelReply, ChannelRequest, ClearReply, ClearRequest, PublicInfo, Refusal,
};
use tether_proto::secure::{ProvisionerHandshake, SECURITY_MODE, SecureError, Session, system_rng};
use tether_proto::setup_code::{self, SetupCode};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::failure::Failure;

/// How long the device has to answer one message.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// One connection to a device's data channel.
#[derive(Debug)]
pub struct DeviceChannel {
    lines: Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
    session: Option<Session>,
    plaintext: bool,
}

/// How to talk to the device.
#[derive(Debug, Clone)]
pub enum Security {
    /// Protocol 2 with the setup code from the label.
    SetupCode(SetupCode),
    /// Protocol 1 in clear (a device with its development switch on).
    Plaintext,
}

impl DeviceChannel {
    /// Connects to the channel at `device` (HOST:PORT).
    pub async fn connect(device: &str) -> Result<Self, Failure> {
        let stream = tokio::time::timeout(ANSWER_WITHIN, TcpStream::connect(device))
            .await
            .map_err(|_| Failure::Unreachable(format!("the device at {device} did not answer")))?
            .map_err(|e| {
                Failure::Unreachable(format!("cannot reach the device at {device}: {e}"))
            })?;
        let (reader, writer) = stream.into_split();
        Ok(Self {
            lines: BufReader::new(reader).lines(),
            writer,
            session: None,
            plaintext: false,
        })
    }

    /// Connects and sets up `security`: the handshake, or nothing for plaintext.
    pub async fn open(device: &str, security: &Security) -> Result<Self, Failure> {
        let mut channel = Self::connect(device).await?;
        match security {
            Security::SetupCode(code) => {
                channel.authenticate(code).await?;
            }
            Security::Plaintext => channel.plaintext = true,
        }
        Ok(channel)
    }

    /// What anyone may learn about the device.
    pub async fn info(&mut self) -> Result<PublicInfo, Failure> {
        match self.clear(&ClearRequest::Info {}).await? {
            ClearReply::Info(info) => Ok(info),
            other => Err(unexpected(&other)),
        }
    }

    /// Proves the setup code; returns the seconds the device's pairing window has left
    /// (none when it was not opened locally).
    pub async fn authenticate(&mut self, code: &SetupCode) -> Result<Option<u32>, Failure> {
        let salt = match self.clear(&ClearRequest::PakeParams {}).await? {
            ClearReply::PakeParams { mode, salt } if mode == SECURITY_MODE => salt,
            ClearReply::PakeParams { mode, .. } => {
                return Err(Failure::Other(format!(
                    "the device offers the security mode {mode:?}, which this CLI does not know"
                )));
            }
            other => return Err(unexpected(&other)),
        };
        let code = code.clone();
        // Argon2id: not on the async threads.
        let secret = tokio::task::spawn_blocking(move || setup_code::prover_secret(&code, &salt.0))
            .await
            .map_err(|e| Failure::Other(format!("the setup code hash failed: {e}")))?
            .map_err(|e| Failure::Other(format!("the setup code hash failed: {e}")))?;
        let (prover, share_p) = ProvisionerHandshake::start(&secret, &mut system_rng());
        let (share_v, confirm_v) = match self
            .clear(&ClearRequest::Pake1 {
                share_p: B64(share_p),
            })
            .await?
        {
            ClearReply::Pake2 { share_v, confirm_v } => (share_v, confirm_v),
            other => return Err(unexpected(&other)),
        };
        let (confirm_p, session) =
            prover
                .finish(&share_v.0, &confirm_v.0)
                .map_err(|e| match e {
                    SecureError::Confirmation => Failure::Channel {
                        code: ChannelError::AuthFailed,
                        message: "wrong setup code (or not the device on the label)".into(),
                    },
                    other => {
                        Failure::Other(format!("the device's handshake is malformed: {other}"))
                    }
                })?;
        self.session = Some(session);
        let reply = self
            .clear(&ClearRequest::Pake3 {
                confirm_p: B64(confirm_p),
            })
            .await?;
        match self.unseal(reply)? {
            ChannelReply::Ready { window_secs } => Ok(window_secs),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends one request (sealed in a session, in clear for protocol 1) and returns the
    /// answer; a refusal is a [`Failure::Channel`].
    pub async fn ask(&mut self, request: &ChannelRequest) -> Result<ChannelReply, Failure> {
        if self.plaintext {
            self.send(&tether_proto::json_line(request)).await?;
            return match self.read().await? {
                ChannelReply::Refused(refusal) => Err(refused(refusal)),
                reply => Ok(reply),
            };
        }
        let session = self.session.as_mut().ok_or_else(|| {
            Failure::Other("no session: authenticate with the setup code first".into())
        })?;
        let data = session
            .seal(&tether_proto::json_line(request))
            .map_err(|e| Failure::Other(format!("cannot seal the request: {e}")))?;
        let reply = self
            .clear(&ClearRequest::Sealed { data: B64(data) })
            .await?;
        match self.unseal(reply)? {
            ChannelReply::Refused(refusal) => Err(refused(refusal)),
            reply => Ok(reply),
        }
    }

    /// Sends raw bytes (for tests that play an attacker).
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.writer
            .write_all(bytes)
            .await
            .map_err(|e| Failure::Unreachable(format!("the device's channel failed: {e}")))
    }

    /// Reads one line as `T`.
    pub async fn read<T: DeserializeOwned>(&mut self) -> Result<T, Failure> {
        let line = tokio::time::timeout(ANSWER_WITHIN, self.lines.next_line())
            .await
            .map_err(|_| Failure::Timeout("the device did not answer on its channel".into()))?
            .map_err(|e| Failure::Unreachable(format!("the device's channel failed: {e}")))?
            .ok_or_else(|| Failure::Unreachable("the device closed its channel".into()))?;
        serde_json::from_str(&line).map_err(|e| {
            Failure::Other(format!(
                "the device answered something this CLI does not understand ({e}): {line}"
            ))
        })
    }

    /// One clear request and its answer; a refusal is a [`Failure::Channel`].
    async fn clear(&mut self, request: &ClearRequest) -> Result<ClearReply, Failure> {
        self.send(&tether_proto::json_line(request)).await?;
        match self.read().await? {
            ClearReply::Refused(refusal) => Err(refused(refusal)),
            reply => Ok(reply),
        }
    }

    fn unseal(&mut self, reply: ClearReply) -> Result<ChannelReply, Failure> {
        let ClearReply::Sealed { data } = reply else {
            return Err(unexpected(&reply));
        };
        let session = self
            .session
            .as_mut()
            .ok_or_else(|| Failure::Other("a sealed answer outside a session".into()))?;
        let plain = session.open(&data.0).map_err(|_| Failure::Channel {
            code: ChannelError::BadFrame,
            message: "the device's answer failed to open: the session is over".into(),
        })?;
        serde_json::from_slice(&plain).map_err(|e| {
            Failure::Other(format!("the device's sealed answer is not understood: {e}"))
        })
    }
}

fn refused(refusal: Refusal) -> Failure {
    let message = match refusal.retry_after_ms {
        Some(ms) => format!(
            "{} (try again in {:.1} s)",
            refusal.message,
            ms as f64 / 1000.0
        ),
        None => refusal.message,
    };
    Failure::Channel {
        code: refusal.code,
        message,
    }
}

fn unexpected(reply: &impl std::fmt::Debug) -> Failure {
    Failure::Other(format!("unexpected answer from the device: {reply:?}"))
}
