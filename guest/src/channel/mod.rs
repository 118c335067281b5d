//! The data channel's server, free of binding calls: connections, the v2 handshake and
//! sealed frames (from `tether_proto::secure`), the guessing guard, the pairing window,
//! timeouts and the connection cap. The bindings feed it bytes and the clock, perform
//! its [`Output`]s, and answer the [`ChannelRequest`]s it lets through.
//!
//! Who may do what:
//! - anyone: `info` in clear, which tells only the product key, the protocols and the
//!   security modes;
//! - a provisioner that proved it knows the setup code: `status`, `info`, `scan`, and —
//!   while the device is unpaired or its pairing window is open — `config` and `wifi`;
//! - plaintext v1, only behind the development switch, under the same window rule.
//!
//! A paired device with its window closed refuses handshakes, so it reveals nothing.

pub mod framing;
pub mod guard;

use std::collections::BTreeMap;

use tether_proto::b64::B64;
use tether_proto::channel::{
    ChannelError, ChannelReply, ChannelRequest, ClearReply, ClearRequest, PLAINTEXT_PROTOCOL,
    PROTOCOL_VERSION, PublicInfo, Refusal,
};
use tether_proto::secure::{DeviceHandshake, SECURITY_MODE, Session, system_rng};
use tether_proto::setup_code::PairingVerifier;

use framing::Lines;
use guard::{Guard, GuardRecord};

/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 8;
/// A handshake must be confirmed this long after the connection opened.
pub const HANDSHAKE_MS: u64 = 10_000;
/// An established session with nothing sent for this long is closed.
pub const IDLE_MS: u64 = 60_000;
/// How often deadlines are checked while there is something to check.
pub const SWEEP_MS: u32 = 1_000;
/// The longest pairing window.
pub const MAX_WINDOW_SECS: u32 = 3_600;

/// What the host says about the channel's security.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// The verifier of the device's setup code; without it no handshake can succeed.
    pub verifier: Option<PairingVerifier>,
    /// The development switch: plaintext v1 is also served.
    pub plaintext: bool,
    /// The product key `info` shows.
    pub product_key: String,
}

/// What the channel asks the bindings to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send bytes.
    Send(u32, Vec<u8>),
    /// Close after sending.
    Close(u32),
    /// Keep the guard's record in `kv`.
    Persist(GuardRecord),
    /// Arm the sweep timer.
    ArmSweep(u32),
    /// A line for the log (never a secret).
    Log(String),
}

/// The channel's state, for `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelStatus {
    /// Seconds the locally opened window has left.
    pub window_secs: Option<u32>,
    /// Locked by failed handshakes.
    pub locked: bool,
    /// Failed handshakes since the last success.
    pub failures: u32,
}

enum Stage {
    /// Nothing but `info` so far.
    Fresh,
    /// `pake_params` answered.
    Params,
    /// `pake2` sent; waiting for `confirmP`.
    Confirming(DeviceHandshake),
    /// Established.
    Open(Session),
    /// Plaintext v1 (development switch).
    Plain,
}

struct Conn {
    lines: Lines,
    stage: Stage,
    opened_ms: u64,
    last_ms: u64,
}

impl Conn {
    /// Whether closing it to make room costs nobody a handshake under way: only
    /// connections that have not asked for one. (A provisioner between `pake_params` and
    /// `pake1` is hashing the setup code; every stage but the session ends at
    /// [`HANDSHAKE_MS`] anyway.)
    fn evictable(&self) -> bool {
        matches!(self.stage, Stage::Fresh)
    }
}

/// The server.
pub struct Channel {
    setup: Setup,
    conns: BTreeMap<u32, Conn>,
    guard: Guard,
    window_until_ms: Option<u64>,
    window_used: bool,
    armed: bool,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("connections", &self.conns.len())
            .field("guard", &self.guard)
            .field("window_until_ms", &self.window_until_ms)
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// A server with the host's setup and the guard record `kv` held.
    pub fn new(setup: Setup, record: GuardRecord) -> Self {
        Self {
            setup,
            conns: BTreeMap::new(),
            guard: Guard::new(record),
            window_until_ms: None,
            window_used: false,
            armed: false,
        }
    }

    /// A connection opened. At the cap, the least recently active connection that has
    /// not begun a handshake makes room; if every one has, the new one is refused as
    /// busy (for at most [`HANDSHAKE_MS`], when unconfirmed handshakes end).
    pub fn opened(&mut self, conn: u32, now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        if self.conns.len() >= MAX_CONNECTIONS {
            let oldest = self
                .conns
                .iter()
                .filter(|(_, c)| c.evictable())
                .min_by_key(|(_, c)| c.last_ms)
                .map(|(id, _)| *id);
            match oldest {
                Some(old) => {
                    self.conns.remove(&old);
                    out.extend(refuse(old, ChannelError::Busy, "closed to make room", None));
                }
                None => {
                    return refuse(
                        conn,
                        ChannelError::Busy,
                        "too many handshakes under way",
                        None,
                    );
                }
            }
        }
        self.conns.insert(
            conn,
            Conn {
                lines: Lines::default(),
                stage: Stage::Fresh,
                opened_ms: now_ms,
                last_ms: now_ms,
            },
        );
        out.extend(self.arm());
        out
    }

    /// Bytes arrived. Returns the requests to answer (each with [`Channel::reply`]) and
    /// what to do. `bound` says whether the device is paired.
    pub fn data(
        &mut self,
        conn: u32,
        bytes: &[u8],
        now_ms: u64,
        bound: bool,
    ) -> (Vec<(u32, ChannelRequest)>, Vec<Output>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            // A connection from before a restart or an update: its session is gone.
            return (Vec::new(), vec![Output::Close(conn)]);
        };
        c.last_ms = now_ms;
        let lines = match c.lines.push(bytes) {
            Ok(lines) => lines,
            Err(framing::TooLong) => {
                return (
                    Vec::new(),
                    self.drop_with(conn, ChannelError::BadRequest, "line too long"),
                );
            }
        };
        let mut requests = Vec::new();
        let mut out = Vec::new();
        for line in lines {
            match self.line(conn, &line, now_ms, bound) {
                Step::Deliver(request) => requests.push((conn, request)),
                Step::Out(more) => out.extend(more),
                Step::End(more) => {
                    out.extend(more);
                    break;
                }
            }
        }
        (requests, out)
    }

    /// Answers a request on its connection: sealed in a session, in clear for v1.
    pub fn reply(&mut self, conn: u32, reply: &ChannelReply) -> Vec<Output> {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Vec::new();
        };
        match &mut c.stage {
            Stage::Open(session) => match session.seal(&line(reply)) {
                Ok(data) => vec![Output::Send(
                    conn,
                    clear(&ClearReply::Sealed { data: B64(data) }),
                )],
                Err(_) => {
                    self.conns.remove(&conn);
                    vec![Output::Close(conn)]
                }
            },
            Stage::Plain => vec![Output::Send(conn, line(reply))],
            _ => Vec::new(),
        }
    }

    /// A connection closed.
    pub fn closed(&mut self, conn: u32) {
        self.conns.remove(&conn);
    }

    /// The sweep timer fired: handshakes and sessions past their deadline end, and an
    /// expired window closes.
    pub fn sweep(&mut self, now_ms: u64) -> Vec<Output> {
        self.armed = false;
        let mut out = Vec::new();
        if self.window_until_ms.is_some_and(|until| now_ms >= until) {
            self.close_window();
            out.push(Output::Log("the pairing window closed".into()));
        }
        let expired: Vec<(u32, bool)> = self
            .conns
            .iter()
            .filter_map(|(id, c)| match c.stage {
                Stage::Open(_) | Stage::Plain => {
                    (now_ms.saturating_sub(c.last_ms) >= IDLE_MS).then_some((*id, false))
                }
                _ => (now_ms.saturating_sub(c.opened_ms) >= HANDSHAKE_MS).then_some((*id, true)),
            })
            .collect();
        for (id, handshake) in expired {
            let why = if handshake {
                "the handshake took too long"
            } else {
                "the session sat idle"
            };
            out.extend(self.drop_with(id, ChannelError::Timeout, why));
        }
        out.extend(self.arm());
        out
    }

    /// Opens the pairing window for `secs` (at most [`MAX_WINDOW_SECS`]); this also
    /// unlocks a channel locked by failed handshakes.
    pub fn open_window(&mut self, now_ms: u64, secs: u32) -> Vec<Output> {
        let secs = secs.clamp(1, MAX_WINDOW_SECS);
        self.window_until_ms = Some(now_ms + u64::from(secs) * 1_000);
        self.window_used = false;
        self.guard.reset();
        let mut out = vec![
            Output::Persist(self.guard.record()),
            Output::Log(format!("the pairing window is open for {secs} s")),
        ];
        out.extend(self.arm());
        out
    }

    /// Closes the window.
    pub fn close_window(&mut self) {
        self.window_until_ms = None;
        self.window_used = false;
    }

    /// The device is online after a pairing or a network change: a window that served
    /// it closes.
    pub fn paired(&mut self) -> Option<Output> {
        if self.window_used && self.window_until_ms.is_some() {
            self.close_window();
            return Some(Output::Log(
                "pairing succeeded: the pairing window closed".into(),
            ));
        }
        None
    }

    /// The channel's state.
    pub fn status(&self, now_ms: u64) -> ChannelStatus {
        ChannelStatus {
            window_secs: self.window_secs(now_ms),
            locked: self.guard.locked(),
            failures: self.guard.record().failures,
        }
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    fn window_secs(&self, now_ms: u64) -> Option<u32> {
        self.window_until_ms
            .filter(|until| *until > now_ms)
            .map(|until| u32::try_from((until - now_ms).div_ceil(1_000)).unwrap_or(u32::MAX))
    }

    fn accepting(&self, now_ms: u64, bound: bool) -> bool {
        !bound || self.window_secs(now_ms).is_some()
    }

    fn arm(&mut self) -> Option<Output> {
        let needed = !self.conns.is_empty() || self.window_until_ms.is_some();
        (needed && !std::mem::replace(&mut self.armed, true)).then_some(Output::ArmSweep(SWEEP_MS))
    }

    fn drop_with(&mut self, conn: u32, code: ChannelError, message: &str) -> Vec<Output> {
        self.conns.remove(&conn);
        refuse(conn, code, message, None)
    }

    fn line(&mut self, conn: u32, line: &[u8], now_ms: u64, bound: bool) -> Step {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Step::End(Vec::new());
        };
        if let Stage::Plain = c.stage {
            return self.plain(conn, line, now_ms, bound);
        }
        let request = match serde_json::from_slice::<ClearRequest>(line) {
            Ok(request) => request,
            Err(_) if self.setup.plaintext && matches!(c.stage, Stage::Fresh) => {
                c.stage = Stage::Plain;
                return self.plain(conn, line, now_ms, bound);
            }
            Err(_) if serde_json::from_slice::<ChannelRequest>(line).is_ok() => {
                return Step::End(self.drop_with(
                    conn,
                    ChannelError::Unsupported,
                    "plaintext (protocol 1) is off on this device: use the setup code",
                ));
            }
            Err(e) => {
                return Step::End(self.drop_with(
                    conn,
                    ChannelError::BadRequest,
                    &format!("not a request: {e}"),
                ));
            }
        };
        let stage = std::mem::replace(&mut c.stage, Stage::Fresh);
        match (stage, request) {
            (Stage::Open(session), ClearRequest::Sealed { data }) => {
                self.sealed(conn, session, &data.0, now_ms, bound)
            }
            (stage @ (Stage::Fresh | Stage::Params), ClearRequest::Info {}) => {
                c.stage = stage;
                Step::Out(vec![Output::Send(
                    conn,
                    clear(&ClearReply::Info(self.public_info())),
                )])
            }
            (Stage::Fresh, ClearRequest::PakeParams {}) => self.params(conn, now_ms, bound),
            (Stage::Params, ClearRequest::Pake1 { share_p }) => {
                self.pake1(conn, &share_p.0, now_ms, bound)
            }
            (Stage::Confirming(handshake), ClearRequest::Pake3 { confirm_p }) => {
                self.pake3(conn, handshake, &confirm_p.0, now_ms)
            }
            _ => Step::End(self.drop_with(
                conn,
                ChannelError::BadRequest,
                "that message is out of order",
            )),
        }
    }

    fn public_info(&self) -> PublicInfo {
        let mut protocols = Vec::new();
        if self.setup.plaintext {
            protocols.push(PLAINTEXT_PROTOCOL);
        }
        protocols.push(PROTOCOL_VERSION);
        PublicInfo {
            product_key: self.setup.product_key.clone(),
            protocols,
            security: self
                .setup
                .verifier
                .iter()
                .map(|_| SECURITY_MODE.to_owned())
                .collect(),
        }
    }

    /// Whether a handshake may go on now; the refusal ends the connection.
    fn admit(&mut self, conn: u32, now_ms: u64, bound: bool) -> Result<(), Step> {
        if self.setup.verifier.is_none() {
            return Err(Step::End(self.drop_with(
                conn,
                ChannelError::Unsupported,
                "this device has no pairing verifier",
            )));
        }
        if !self.accepting(now_ms, bound) {
            return Err(Step::End(self.drop_with(
                conn,
                ChannelError::WindowClosed,
                "the device is paired: open its pairing window first",
            )));
        }
        match self.guard.check(now_ms) {
            Ok(()) => Ok(()),
            Err(guard::Refusal::Locked) => Err(Step::End(self.drop_with(
                conn,
                ChannelError::Locked,
                "too many failed handshakes: open the pairing window on the device",
            ))),
            Err(guard::Refusal::Backoff(ms)) => {
                self.conns.remove(&conn);
                Err(Step::End(refuse(
                    conn,
                    ChannelError::Backoff,
                    "a handshake failed recently",
                    Some(ms),
                )))
            }
        }
    }

    fn params(&mut self, conn: u32, now_ms: u64, bound: bool) -> Step {
        if let Err(step) = self.admit(conn, now_ms, bound) {
            return step;
        }
        let verifier = self
            .setup
            .verifier
            .as_ref()
            .expect("admitted with a verifier");
        let reply = ClearReply::PakeParams {
            mode: SECURITY_MODE.to_owned(),
            salt: B64(verifier.salt().to_vec()),
        };
        self.set_stage(conn, Stage::Params);
        Step::Out(vec![Output::Send(conn, clear(&reply))])
    }

    fn pake1(&mut self, conn: u32, share_p: &[u8], now_ms: u64, bound: bool) -> Step {
        if let Err(step) = self.admit(conn, now_ms, bound) {
            return step;
        }
        self.guard.attempt(now_ms);
        let mut out = vec![Output::Persist(self.guard.record())];
        let verifier = self
            .setup
            .verifier
            .as_ref()
            .expect("admitted with a verifier");
        match DeviceHandshake::respond(verifier, share_p, &mut system_rng()) {
            Ok((handshake, share_v, confirm_v)) => {
                self.set_stage(conn, Stage::Confirming(handshake));
                let reply = ClearReply::Pake2 {
                    share_v: B64(share_v),
                    confirm_v: B64(confirm_v),
                };
                out.push(Output::Send(conn, clear(&reply)));
                Step::Out(out)
            }
            Err(_) => {
                out.extend(self.drop_with(conn, ChannelError::BadRequest, "a malformed share"));
                Step::End(out)
            }
        }
    }

    fn pake3(
        &mut self,
        conn: u32,
        handshake: DeviceHandshake,
        confirm_p: &[u8],
        now_ms: u64,
    ) -> Step {
        match handshake.finish(confirm_p) {
            Ok(session) => {
                self.guard.confirmed();
                self.set_stage(conn, Stage::Open(session));
                let mut out = vec![
                    Output::Persist(self.guard.record()),
                    Output::Log("a provisioner proved the setup code".into()),
                ];
                let ready = ChannelReply::Ready {
                    window_secs: self.window_secs(now_ms),
                };
                out.extend(self.reply(conn, &ready));
                Step::Out(out)
            }
            Err(_) => {
                let failures = self.guard.record().failures;
                let mut out = vec![Output::Log(format!(
                    "a handshake failed its key confirmation ({failures} failed in a row)"
                ))];
                out.extend(self.drop_with(conn, ChannelError::AuthFailed, "wrong setup code"));
                Step::End(out)
            }
        }
    }

    fn sealed(
        &mut self,
        conn: u32,
        mut session: Session,
        data: &[u8],
        now_ms: u64,
        bound: bool,
    ) -> Step {
        let Ok(plain) = session.open(data) else {
            return Step::End(self.drop_with(
                conn,
                ChannelError::BadFrame,
                "a frame failed to open",
            ));
        };
        self.set_stage(conn, Stage::Open(session));
        match serde_json::from_slice::<ChannelRequest>(&plain) {
            Ok(request) => self.gate(conn, request, now_ms, bound),
            Err(e) => Step::Out(self.reply(
                conn,
                &ChannelReply::Refused(Refusal {
                    code: ChannelError::BadRequest,
                    message: format!("not a request: {e}"),
                    retry_after_ms: None,
                }),
            )),
        }
    }

    fn plain(&mut self, conn: u32, line: &[u8], now_ms: u64, bound: bool) -> Step {
        match serde_json::from_slice::<ChannelRequest>(line) {
            Ok(request) => self.gate(conn, request, now_ms, bound),
            Err(e) => Step::End(self.drop_with(
                conn,
                ChannelError::BadRequest,
                &format!("not a request: {e}"),
            )),
        }
    }

    /// Lets a request through, unless it changes the network outside the window.
    fn gate(&mut self, conn: u32, request: ChannelRequest, now_ms: u64, bound: bool) -> Step {
        let configures = matches!(
            request,
            ChannelRequest::Config { .. } | ChannelRequest::Wifi { .. }
        );
        if !configures {
            return Step::Deliver(request);
        }
        if !self.accepting(now_ms, bound) {
            return Step::Out(self.reply(
                conn,
                &ChannelReply::Refused(Refusal {
                    code: ChannelError::WindowClosed,
                    message: "the pairing window is closed".into(),
                    retry_after_ms: None,
                }),
            ));
        }
        if self.window_until_ms.is_some() {
            self.window_used = true;
        }
        Step::Deliver(request)
    }

    fn set_stage(&mut self, conn: u32, stage: Stage) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.stage = stage;
        }
    }
}

/// What one line led to.
enum Step {
    /// A request to answer.
    Deliver(ChannelRequest),
    /// Outputs; the connection goes on.
    Out(Vec<Output>),
    /// Outputs; the connection is over.
    End(Vec<Output>),
}

/// A reply as one line (the payload of a sealed frame, or a v1 line). The `next` build
/// (the demonstration update) also adds its version to every reply, so the swap is
/// visible on the wire.
pub fn line(reply: &ChannelReply) -> Vec<u8> {
    #[cfg(feature = "next")]
    {
        let mut value = serde_json::to_value(reply).expect("channel replies always serialise");
        if let Some(fields) = value.as_object_mut() {
            fields.insert("version".into(), crate::VERSION.into());
        }
        tether_proto::json_line(&value)
    }
    #[cfg(not(feature = "next"))]
    tether_proto::json_line(reply)
}

fn clear(reply: &ClearReply) -> Vec<u8> {
    tether_proto::json_line(reply)
}

fn refuse(
    conn: u32,
    code: ChannelError,
    message: &str,
    retry_after_ms: Option<u64>,
) -> Vec<Output> {
    let reply = ClearReply::Refused(Refusal {
        code,
        message: message.to_owned(),
        retry_after_ms,
    });
    vec![Output::Send(conn, clear(&reply)), Output::Close(conn)]
}

#[cfg(test)]
mod tests;
