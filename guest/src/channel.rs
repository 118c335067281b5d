//! The custom data channel, protocol v1: JSON lines over the host's channel connections.
//! Requests: `{"type":"config","ssid","passwd","token"}` → `{"type":"ack","code"}`,
//! `{"type":"status"}`, `{"type":"scan"}`, `{"type":"info"}`. Anything malformed gets
//! `{"type":"error","code","message"}` and the connection is closed. This module only
//! frames and parses; the bindings answer the requests.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};
use tether_proto::ErrorCode;

/// Longest line accepted, in bytes.
pub const MAX_LINE: usize = 64 * 1024;
/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 4;
/// Protocol version, reported by `info`.
pub const PROTOCOL_VERSION: u32 = 1;

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Router credentials and a pairing token: the seed API.
    Config {
        /// Network name.
        ssid: String,
        /// Password.
        passwd: String,
        /// Pairing token.
        token: String,
    },
    /// Current progress.
    Status {},
    /// Scan for access points.
    Scan {},
    /// Identity and versions.
    Info {},
}

/// What the channel asks the host to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send bytes.
    Send(u32, Vec<u8>),
    /// Close after sending.
    Close(u32),
}

/// A connection's bytes not yet part of a complete line, and how far they have been
/// searched for a line end (so a line sent a byte at a time is scanned once, not once
/// per byte).
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    scanned: usize,
}

/// Line assembly for every open connection.
#[derive(Debug, Default)]
pub struct Channel {
    buffers: BTreeMap<u32, Pending>,
}

impl Channel {
    /// A connection opened; beyond [`MAX_CONNECTIONS`] it is refused.
    pub fn opened(&mut self, conn: u32) -> Vec<Output> {
        if self.buffers.len() >= MAX_CONNECTIONS {
            return refuse(conn, ErrorCode::Busy, "too many channel connections");
        }
        self.buffers.insert(conn, Pending::default());
        Vec::new()
    }

    /// Bytes arrived: complete lines become requests; a bad line ends the connection.
    pub fn data(&mut self, conn: u32, bytes: &[u8]) -> (Vec<Request>, Vec<Output>) {
        let Some(pending) = self.buffers.get_mut(&conn) else {
            return (Vec::new(), Vec::new());
        };
        pending.bytes.extend_from_slice(bytes);
        let mut requests = Vec::new();
        while let Some(at) = pending.bytes[pending.scanned..]
            .iter()
            .position(|&b| b == b'\n')
        {
            let end = pending.scanned + at;
            let line: Vec<u8> = pending.bytes.drain(..=end).collect();
            pending.scanned = 0;
            match parse(&line[..line.len() - 1]) {
                Ok(Some(request)) => requests.push(request),
                Ok(None) => {}
                Err(message) => {
                    self.buffers.remove(&conn);
                    return (requests, refuse(conn, ErrorCode::InvalidParm, &message));
                }
            }
        }
        pending.scanned = pending.bytes.len();
        if pending.bytes.len() > MAX_LINE {
            self.buffers.remove(&conn);
            return (
                requests,
                refuse(
                    conn,
                    ErrorCode::InvalidParm,
                    &format!("a line may be at most {MAX_LINE} bytes"),
                ),
            );
        }
        (requests, Vec::new())
    }

    /// A connection closed; a half-sent line is dropped.
    pub fn closed(&mut self, conn: u32) {
        self.buffers.remove(&conn);
    }

    /// The connections open.
    pub fn connections(&self) -> impl Iterator<Item = u32> + '_ {
        self.buffers.keys().copied()
    }
}

fn parse(line: &[u8]) -> Result<Option<Request>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "a line must be UTF-8".to_owned())?;
    let text = text.trim_end_matches('\r');
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| format!("not a valid request: {e}"))
}

/// One JSON line.
pub fn line(value: &Value) -> Vec<u8> {
    #[cfg(feature = "next")]
    let value = &{
        let mut v = value.clone();
        if let Some(fields) = v.as_object_mut() {
            fields.insert("version".into(), crate::VERSION.into());
        }
        v
    };
    let mut bytes = serde_json::to_vec(value).expect("JSON values always serialise");
    bytes.push(b'\n');
    bytes
}

/// The answer to `config`.
pub fn ack(result: Result<(), ErrorCode>) -> Vec<u8> {
    let code = result.err().map_or("ok", ErrorCode::name);
    line(&json!({"type": "ack", "code": code}))
}

fn refuse(conn: u32, code: ErrorCode, message: &str) -> Vec<Output> {
    vec![
        Output::Send(
            conn,
            line(&json!({"type": "error", "code": code.name(), "message": message})),
        ),
        Output::Close(conn),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(outputs: &[Output]) -> Value {
        match outputs {
            [Output::Send(_, bytes), Output::Close(_)] => {
                serde_json::from_slice(bytes).expect("json")
            }
            other => panic!("expected an error and a close, got {other:?}"),
        }
    }

    #[test]
    fn requests_are_parsed_from_lines_split_and_merged_anyhow() {
        let mut ch = Channel::default();
        ch.opened(1);
        let (reqs, out) = ch.data(
            1,
            br#"{"type":"config","ssid":"home","passwd":"correct horse","tok"#,
        );
        assert!(reqs.is_empty() && out.is_empty(), "half a line waits");
        let (reqs, out) = ch.data(
            1,
            b"en\":\"EUab12CD34wxYZ\"}\r\n{\"type\":\"status\"}\n\n{\"type\":\"info\"}\n",
        );
        assert!(out.is_empty());
        assert_eq!(
            reqs,
            vec![
                Request::Config {
                    ssid: "home".into(),
                    passwd: "correct horse".into(),
                    token: "EUab12CD34wxYZ".into()
                },
                Request::Status {},
                Request::Info {},
            ]
        );
    }

    #[test]
    fn garbage_invalid_utf8_and_unknown_requests_get_an_error_and_a_close() {
        for bad in [
            &b"hello\n"[..],
            b"\xff\xfe\n",
            b"{\"type\":\"reboot\"}\n",
            b"{\"type\":\"config\",\"ssid\":\"x\"}\n",
            b"{\"type\":\"status\",\"x\":1}\n",
        ] {
            let mut ch = Channel::default();
            ch.opened(7);
            let (_, out) = ch.data(7, bad);
            let err = error_of(&out);
            assert_eq!(err["type"], "error");
            assert_eq!(err["code"], "invalid_parm");
            assert_eq!(ch.connections().count(), 0);
        }
    }

    #[test]
    fn a_line_over_64_kib_is_refused() {
        let mut ch = Channel::default();
        ch.opened(2);
        let (_, out) = ch.data(2, &vec![b'a'; MAX_LINE + 1]);
        assert!(
            error_of(&out)["message"]
                .as_str()
                .expect("message")
                .contains("at most")
        );
    }

    #[test]
    fn connections_beyond_the_limit_are_refused_as_busy() {
        let mut ch = Channel::default();
        for conn in 0..MAX_CONNECTIONS as u32 {
            assert!(ch.opened(conn).is_empty());
        }
        assert_eq!(error_of(&ch.opened(99))["code"], "busy");
        ch.closed(0);
        assert!(ch.opened(100).is_empty());
    }

    #[test]
    fn acks_carry_ok_or_the_error_name() {
        assert_eq!(
            ack(Ok(())),
            b"{\"code\":\"ok\",\"type\":\"ack\"}\n".to_vec()
        );
        let v: Value = serde_json::from_slice(&ack(Err(ErrorCode::TokenInvalid))).expect("json");
        assert_eq!(v["code"], "token_invalid");
    }
}
