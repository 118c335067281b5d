//! The channel server driven by a real provisioner (the CLI's handshake types) and by
//! attackers: wrong codes, replays, tampering, idle connections, a closed window.

use tether_proto::ErrorCode;
use tether_proto::Secret;
use tether_proto::secure::{ProvisionerHandshake, Session};
use tether_proto::setup_code::{self, SetupCode};

use super::*;

struct Rig {
    channel: Channel,
    code: SetupCode,
    now: u64,
}

fn rig(plaintext: bool) -> Rig {
    let (code, verifier) = setup_code::issue().expect("issues");
    let setup = Setup {
        verifier: Some(verifier),
        plaintext,
        product_key: "p1aaaaaaaaaaaaaa".into(),
    };
    Rig {
        channel: Channel::new(setup, GuardRecord::default()),
        code,
        now: 1_000,
    }
}

fn sent(out: &[Output], conn: u32) -> Vec<ClearReply> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(c, bytes) if *c == conn => {
                Some(serde_json::from_slice(bytes).expect("replies are JSON"))
            }
            _ => None,
        })
        .collect()
}

/// The one sealed reply sent on `conn`, opened.
fn unseal(out: &[Output], conn: u32, session: &mut Session) -> ChannelReply {
    match sent(out, conn).as_slice() {
        [ClearReply::Sealed { data }] => {
            serde_json::from_slice(&session.open(&data.0).expect("opens")).expect("json")
        }
        other => panic!("expected one sealed reply, got {other:?}"),
    }
}

fn closed(out: &[Output], conn: u32) -> bool {
    out.contains(&Output::Close(conn))
}

fn refusal(out: &[Output], conn: u32) -> ChannelError {
    match sent(out, conn).as_slice() {
        [ClearReply::Refused(r)] => r.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

impl Rig {
    fn send(
        &mut self,
        conn: u32,
        request: &ClearRequest,
        bound: bool,
    ) -> (Vec<(u32, ChannelRequest)>, Vec<Output>) {
        self.channel
            .data(conn, &tether_proto::json_line(request), self.now, bound)
    }

    /// A handshake with `code`; returns the provisioner's session, or the refusal.
    fn handshake(
        &mut self,
        conn: u32,
        code: &SetupCode,
        bound: bool,
    ) -> Result<Session, ChannelError> {
        self.channel.opened(conn, self.now);
        let (_, out) = self.send(conn, &ClearRequest::PakeParams {}, bound);
        let salt = match sent(&out, conn).as_slice() {
            [ClearReply::PakeParams { salt, .. }] => salt.0.clone(),
            [ClearReply::Refused(r)] => return Err(r.code),
            other => panic!("unexpected {other:?}"),
        };
        let secret = setup_code::prover_secret(code, &salt).expect("derives");
        let (prover, share_p) = ProvisionerHandshake::start(&secret, &mut system_rng());
        let (_, out) = self.send(
            conn,
            &ClearRequest::Pake1 {
                share_p: B64(share_p),
            },
            bound,
        );
        let (share_v, confirm_v) = match sent(&out, conn).as_slice() {
            [ClearReply::Pake2 { share_v, confirm_v }] => (share_v.0.clone(), confirm_v.0.clone()),
            [ClearReply::Refused(r)] => return Err(r.code),
            other => panic!("unexpected {other:?}"),
        };
        let (confirm_p, mut session) = match prover.finish(&share_v, &confirm_v) {
            Ok(done) => done,
            Err(_) => {
                // A provisioner with the wrong code stops here; the device still counts it.
                self.channel.closed(conn);
                return Err(ChannelError::AuthFailed);
            }
        };
        let (_, out) = self.send(
            conn,
            &ClearRequest::Pake3 {
                confirm_p: B64(confirm_p),
            },
            bound,
        );
        match sent(&out, conn).as_slice() {
            [ClearReply::Refused(r)] => Err(r.code),
            _ => {
                let ready = unseal(&out, conn, &mut session);
                assert!(matches!(ready, ChannelReply::Ready { .. }), "{ready:?}");
                Ok(session)
            }
        }
    }

    fn sealed(
        &mut self,
        conn: u32,
        session: &mut Session,
        request: &ChannelRequest,
        bound: bool,
    ) -> (Vec<(u32, ChannelRequest)>, Vec<Output>) {
        let data = session
            .seal(&tether_proto::json_line(request))
            .expect("seals");
        self.send(conn, &ClearRequest::Sealed { data: B64(data) }, bound)
    }
}

fn config() -> ChannelRequest {
    ChannelRequest::Config {
        ssid: "home".into(),
        passwd: Secret::new("correct horse"),
        token: Secret::new("EUab12CD34wxYZ"),
        traceparent: None,
    }
}

#[test]
fn a_provisioner_with_the_code_gets_a_session_and_its_requests_through() {
    let mut r = rig(false);
    let code = r.code.clone();
    let mut session = r.handshake(1, &code, false).expect("pairs");
    let (requests, out) = r.sealed(1, &mut session, &config(), false);
    assert_eq!(requests, vec![(1, config())]);
    assert!(out.is_empty());
    let out = r.channel.reply(
        1,
        &ChannelReply::Ack {
            code: tether_proto::ReplyCode::Ok,
        },
    );
    let ack = unseal(&out, 1, &mut session);
    assert_eq!(
        ack,
        ChannelReply::Ack {
            code: tether_proto::ReplyCode::Ok
        }
    );
    assert_eq!(r.channel.status(r.now).failures, 0);
}

#[test]
fn info_in_clear_says_only_the_product_the_protocols_and_the_modes() {
    let mut r = rig(false);
    r.channel.opened(1, r.now);
    let (_, out) = r.send(1, &ClearRequest::Info {}, true);
    assert_eq!(
        sent(&out, 1),
        vec![ClearReply::Info(PublicInfo {
            product_key: "p1aaaaaaaaaaaaaa".into(),
            protocols: vec![2],
            security: vec![SECURITY_MODE.into()],
        })]
    );
    assert!(!closed(&out, 1));
}

#[test]
fn wrong_codes_back_off_then_lock_until_the_window_opens() {
    let mut r = rig(false);
    let wrong = SetupCode::parse("0000000000").expect("parses");
    for i in 0..guard::MAX_FAILURES {
        assert_eq!(
            r.handshake(10 + i, &wrong, false).err(),
            Some(ChannelError::AuthFailed)
        );
        // Straight away, the next handshake must wait.
        r.channel.opened(50 + i, r.now);
        let (_, out) = r.send(50 + i, &ClearRequest::PakeParams {}, false);
        let code = refusal(&out, 50 + i);
        if i + 1 < guard::MAX_FAILURES {
            assert_eq!(code, ChannelError::Backoff);
            let ClearReply::Refused(Refusal {
                retry_after_ms: Some(ms),
                ..
            }) = &sent(&out, 50 + i)[0]
            else {
                panic!("backoff without a wait");
            };
            r.now += ms;
        } else {
            assert_eq!(code, ChannelError::Locked);
        }
    }
    // Even the right code is locked out now, however long one waits.
    r.now += 3_600_000;
    let code = r.code.clone();
    assert_eq!(
        r.handshake(90, &code, false).err(),
        Some(ChannelError::Locked)
    );
    let out = r.channel.open_window(r.now, 60);
    assert!(out.contains(&Output::Persist(GuardRecord::default())));
    assert!(r.handshake(91, &code, false).is_ok());
}

#[test]
fn a_paired_device_refuses_handshakes_and_config_outside_its_window() {
    let mut r = rig(false);
    let code = r.code.clone();
    // An unpaired device's session, still open when the device pairs.
    let mut early = r.handshake(1, &code, false).expect("pairs");
    assert_eq!(
        r.handshake(2, &code, true).err(),
        Some(ChannelError::WindowClosed)
    );
    let (requests, out) = r.sealed(1, &mut early, &config(), true);
    assert!(requests.is_empty());
    let refused = unseal(&out, 1, &mut early);
    assert!(matches!(
        refused,
        ChannelReply::Refused(Refusal {
            code: ChannelError::WindowClosed,
            ..
        })
    ));
    // Status still answers on it.
    let (requests, _) = r.sealed(1, &mut early, &ChannelRequest::Status {}, true);
    assert_eq!(requests, vec![(1, ChannelRequest::Status {})]);

    r.channel.open_window(r.now, 30);
    assert_eq!(r.channel.status(r.now).window_secs, Some(30));
    let mut session = r.handshake(3, &code, true).expect("pairs in the window");
    let wifi = ChannelRequest::Wifi {
        ssid: "new".into(),
        passwd: Secret::new("new password"),
    };
    let (requests, _) = r.sealed(3, &mut session, &wifi, true);
    assert_eq!(requests, vec![(3, wifi)]);
    assert!(r.channel.paired().is_some(), "success closes a used window");
    assert_eq!(r.channel.status(r.now).window_secs, None);
    // And a window left unused expires on its own.
    r.channel.open_window(r.now, 5);
    assert!(r.channel.paired().is_none());
    r.now += 5_000;
    r.channel.sweep(r.now);
    assert_eq!(
        r.handshake(4, &code, true).err(),
        Some(ChannelError::WindowClosed)
    );
}

#[test]
fn tampered_replayed_and_reordered_frames_end_the_session() {
    let mut r = rig(false);
    let code = r.code.clone();
    for (conn, attack) in [(1u32, 0), (2, 1), (3, 2)] {
        let mut session = r.handshake(conn, &code, false).expect("pairs");
        let first = session
            .seal(&tether_proto::json_line(&ChannelRequest::Status {}))
            .expect("seals");
        let second = session
            .seal(&tether_proto::json_line(&config()))
            .expect("seals");
        let frames = match attack {
            0 => {
                let mut f = first.clone();
                f[0] ^= 0x80;
                vec![f]
            }
            1 => vec![first.clone(), first.clone()],
            _ => vec![second.clone(), first.clone()],
        };
        let mut ended = false;
        let mut delivered = Vec::new();
        for frame in frames {
            let (requests, out) = r.send(conn, &ClearRequest::Sealed { data: B64(frame) }, false);
            delivered.extend(requests);
            if closed(&out, conn) {
                assert_eq!(refusal(&out, conn), ChannelError::BadFrame);
                ended = true;
                break;
            }
        }
        assert!(ended, "attack {attack} ended the session");
        assert!(
            !delivered
                .iter()
                .any(|(_, q)| matches!(q, ChannelRequest::Config { .. })),
            "attack {attack}"
        );
        assert_eq!(r.channel.connections(), 0);
    }
}

#[test]
fn idle_connections_make_room_and_stalled_handshakes_time_out() {
    let mut r = rig(false);
    for conn in 1..=MAX_CONNECTIONS as u32 {
        r.channel.opened(conn, r.now);
        r.now += 1;
    }
    // A fifth connection closes the oldest idle one and gets through.
    let code = r.code.clone();
    assert!(r.handshake(99, &code, false).is_ok());
    assert_eq!(r.channel.connections(), MAX_CONNECTIONS);
    // Connections stuck mid-handshake are closed at the deadline.
    r.now += HANDSHAKE_MS;
    let out = r.channel.sweep(r.now);
    assert_eq!(
        r.channel.connections(),
        1,
        "only the established session stays"
    );
    assert!(closed(&out, 2) && closed(&out, 3) && closed(&out, 4));
    r.now += IDLE_MS;
    r.channel.sweep(r.now);
    assert_eq!(r.channel.connections(), 0, "an idle session closes too");
}

#[test]
fn plaintext_is_refused_unless_the_development_switch_is_on() {
    let line = tether_proto::json_line(&config());
    let mut off = rig(false);
    off.channel.opened(1, off.now);
    let (requests, out) = off.channel.data(1, &line, off.now, false);
    assert!(requests.is_empty());
    assert_eq!(refusal(&out, 1), ChannelError::Unsupported);

    let mut on = rig(true);
    on.channel.opened(1, on.now);
    let (requests, _) = on.channel.data(1, &line, on.now, false);
    assert_eq!(requests, vec![(1, config())]);
    let out = on.channel.reply(
        1,
        &ChannelReply::Ack {
            code: tether_proto::ReplyCode::Error(ErrorCode::TokenInvalid),
        },
    );
    assert!(
        matches!(&out[..], [Output::Send(1, bytes)] if bytes.starts_with(b"{\"type\":\"ack\""))
    );
    // Still under the window rule once paired.
    on.channel.opened(2, on.now);
    let (requests, _) = on.channel.data(2, &line, on.now, true);
    assert!(requests.is_empty());
}

#[test]
fn garbage_and_out_of_order_messages_end_the_connection() {
    for bad in [
        &b"hello\n"[..],
        b"\xff\xfe\n",
        b"{\"type\":\"pake3\",\"confirm_p\":\"AA\"}\n",
        b"{\"type\":\"sealed\",\"data\":\"AA\"}\n",
    ] {
        let mut r = rig(false);
        r.channel.opened(7, r.now);
        let (_, out) = r.channel.data(7, bad, r.now, false);
        assert_eq!(refusal(&out, 7), ChannelError::BadRequest);
        assert_eq!(r.channel.connections(), 0);
    }
}
