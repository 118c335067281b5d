//! The custom data channel's framing: JSON lines over the host's channel connections,
//! each parsed into a [`ChannelRequest`] (the messages live in `tether_proto::channel`).
//! Anything malformed gets an `error` reply and the connection is closed. This module
//! only frames and parses; the bindings answer the requests.

use std::collections::BTreeMap;

use tether_proto::ErrorCode;
use tether_proto::channel::{ChannelReply, ChannelRequest};

/// Longest line accepted, in bytes.
pub const MAX_LINE: usize = 64 * 1024;
/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 4;

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
    pub fn data(&mut self, conn: u32, bytes: &[u8]) -> (Vec<ChannelRequest>, Vec<Output>) {
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

fn parse(line: &[u8]) -> Result<Option<ChannelRequest>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "a line must be UTF-8".to_owned())?;
    let text = text.trim_end_matches('\r');
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| format!("not a valid request: {e}"))
}

/// A reply as one line. The `next` build (the demonstration update) also adds its
/// version to every reply, so the swap is visible on the wire.
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

/// The answer to `config`.
pub fn ack(result: Result<(), ErrorCode>) -> Vec<u8> {
    line(&ChannelReply::Ack {
        code: result.into(),
    })
}

fn refuse(conn: u32, code: ErrorCode, message: &str) -> Vec<Output> {
    let reply = ChannelReply::Error {
        code,
        message: message.to_owned(),
    };
    vec![Output::Send(conn, line(&reply)), Output::Close(conn)]
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use tether_proto::Secret;

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
                ChannelRequest::Config {
                    ssid: "home".into(),
                    passwd: Secret::new("correct horse"),
                    token: Secret::new("EUab12CD34wxYZ")
                },
                ChannelRequest::Status {},
                ChannelRequest::Info {},
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
            b"{\"type\":\"ack\",\"code\":\"ok\"}\n".to_vec()
        );
        let v: Value = serde_json::from_slice(&ack(Err(ErrorCode::TokenInvalid))).expect("json");
        assert_eq!(v["code"], "token_invalid");
    }
}
