//! The secure data channel (protocol 2) against attackers, with the real `tether`
//! binary, the real component in the real host, and raw clients where an attacker
//! would forge bytes: no secret in clear, wrong setup codes, tampered and replayed
//! frames, a paired device outside and inside its pairing window, idle connections.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tether_proto::b64::B64;
use tether_proto::channel::{ChannelRequest, ClearReply, ClearRequest};
use tether_proto::secure::{ProvisionerHandshake, Session, system_rng};
use tether_proto::setup_code::{self, SetupCode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use super::World;

/// A relay in front of the device's channel that keeps every byte of every connection:
/// what a radio next to the device would capture.
struct Tap {
    addr: String,
    /// Everything, both ways.
    all: Arc<Mutex<Vec<u8>>>,
    /// What provisioners sent, connection by connection.
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Tap {
    async fn start(device: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("addr").to_string();
        let all: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sent: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let (all2, sent2) = (all.clone(), sent.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = TcpStream::connect(device).await.expect("device accepts");
                let index = {
                    let mut sent = sent2.lock().expect("lock");
                    sent.push(Vec::new());
                    sent.len() - 1
                };
                let (cr, cw) = client.into_split();
                let (ur, uw) = upstream.into_split();
                let (a, b) = (all2.clone(), all2.clone());
                let s = sent2.clone();
                tokio::spawn(pump(cr, uw, a, Some((s, index))));
                tokio::spawn(pump(ur, cw, b, None));
            }
        });
        Self { addr, all, sent }
    }

    fn captured(&self) -> Vec<u8> {
        self.all.lock().expect("lock").clone()
    }
}

type Record = Option<(Arc<Mutex<Vec<Vec<u8>>>>, usize)>;

async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    all: Arc<Mutex<Vec<u8>>>,
    record: Record,
) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        all.lock().expect("lock").extend_from_slice(&buf[..n]);
        if let Some((sent, i)) = &record {
            sent.lock().expect("lock")[*i].extend_from_slice(&buf[..n]);
        }
    }
    let _ = to.shutdown().await;
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A client that speaks the protocol by hand, as an attacker's tool would.
struct Raw {
    lines: Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
}

impl Raw {
    async fn connect(addr: &str) -> Self {
        let (r, writer) = TcpStream::connect(addr)
            .await
            .expect("connects")
            .into_split();
        Self {
            lines: BufReader::new(r).lines(),
            writer,
        }
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = self.writer.write_all(bytes).await;
    }

    async fn send(&mut self, request: &ClearRequest) {
        self.send_bytes(&tether_proto::json_line(request)).await;
    }

    /// The next line, or `None` once the device closed the connection.
    async fn recv(&mut self) -> Option<Value> {
        let line = tokio::time::timeout(Duration::from_secs(15), self.lines.next_line())
            .await
            .expect("the device answers or closes in time")
            .ok()??;
        Some(serde_json::from_str(&line).expect("a JSON line"))
    }

    /// Proves `code`: the session, or the refusal's code.
    async fn handshake(addr: &str, code: &SetupCode) -> (Self, Result<Session, String>) {
        let mut raw = Self::connect(addr).await;
        raw.send(&ClearRequest::PakeParams {}).await;
        let params: ClearReply =
            serde_json::from_value(raw.recv().await.expect("params")).expect("a reply");
        let ClearReply::PakeParams { salt, .. } = params else {
            return (raw, Err(format!("{params:?}")));
        };
        let secret = setup_code::prover_secret(code, &salt.0).expect("derives");
        let (prover, share_p) = ProvisionerHandshake::start(&secret, &mut system_rng());
        raw.send(&ClearRequest::Pake1 {
            share_p: B64(share_p),
        })
        .await;
        let pake2: ClearReply =
            serde_json::from_value(raw.recv().await.expect("pake2")).expect("a reply");
        let ClearReply::Pake2 { share_v, confirm_v } = pake2 else {
            return (raw, Err(format!("{pake2:?}")));
        };
        let (confirm_p, mut session) = match prover.finish(&share_v.0, &confirm_v.0) {
            Ok(done) => done,
            Err(e) => return (raw, Err(e.to_string())),
        };
        raw.send(&ClearRequest::Pake3 {
            confirm_p: B64(confirm_p),
        })
        .await;
        match serde_json::from_value::<ClearReply>(raw.recv().await.expect("ready"))
            .expect("a reply")
        {
            ClearReply::Sealed { data } => {
                session.open(&data.0).expect("the ready frame opens");
                (raw, Ok(session))
            }
            other => (raw, Err(format!("{other:?}"))),
        }
    }
}

/// `tether wifi` of the world's device to `ssid`.
fn wifi(w: &World, ssid: &str, password: &str) -> (i32, String, String) {
    let channel = w.channel();
    w.tether(&[
        "wifi",
        "--device",
        &channel,
        "--setup-code",
        &w.setup_code,
        "--ssid",
        ssid,
        "--password",
        password,
    ])
}

fn code_of(w: &World) -> SetupCode {
    SetupCode::parse(&w.setup_code).expect("a setup code")
}

fn wrong_code(w: &World) -> String {
    let right = code_of(w);
    let wrong = if right.digits() == "0000000000" {
        "1111111111"
    } else {
        "0000000000"
    };
    wrong.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pairing_over_v2_puts_no_password_token_or_setup_code_on_the_wire() {
    let w = World::new().await;
    let tap = Tap::start(w.device.channel_addr()).await;
    let token = w.json(&["token", "create", "--json"])["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let (code, out, err) = w.provision_at(
        &tap.addr,
        &["--password", "correct horse", "--token", &token, "--json"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let bytes = tap.captured();
    assert!(
        contains(&bytes, "pake1") && contains(&bytes, "sealed"),
        "it was protocol 2"
    );
    let digits = code_of(&w).digits().to_owned();
    for secret in [
        "correct horse",
        &token,
        &token[10..],
        &w.setup_code,
        &digits,
    ] {
        assert!(
            !contains(&bytes, secret),
            "{secret:?} crossed the channel in clear"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_setup_codes_fail_reveal_nothing_and_the_fifth_locks_the_channel() {
    let w = World::new().await;
    let wrong = wrong_code(&w);
    let uuid = w.device.status().await.expect("status");
    for attempt in 0..5u32 {
        let (code, out, err) = w.tether(&[
            "provision",
            "--device",
            &w.channel(),
            "--setup-code",
            &wrong,
            "--ssid",
            "home",
            "--password",
            "correct horse",
        ]);
        assert_eq!(code, 11, "attempt {attempt}: {out}{err}");
        assert!(err.contains("auth_failed"), "{err}");
        assert!(!err.contains("awaiting") && uuid.dev_id.is_none());
        // The next attempt must wait, twice as long each time.
        let (code, _, err) = w.scan(&wrong, &[]);
        assert_eq!(code, 12, "{err}");
        assert!(
            err.contains(if attempt < 4 { "backoff" } else { "locked" }),
            "{err}"
        );
        tokio::time::sleep(Duration::from_millis(500 << attempt) + Duration::from_millis(100))
            .await;
    }
    // Locked: the right code too, however long one waits.
    let (code, _, err) = w.scan(&w.setup_code, &[]);
    assert_eq!(code, 12, "{err}");
    assert!(err.contains("locked"), "{err}");
    let status = w.device.status().await.expect("status");
    assert_eq!(
        status.channel.map(|c| (c.locked, c.failures)),
        Some((true, 5))
    );
    // Opening the window on the device (a local act) unlocks it; the label's QR payload
    // carries the code as well as the typed code does.
    assert!(w.device.pairing_window(Some(60)).await);
    let (code, _, err) = w.tether(&["scan", "--device", &w.channel(), "--qr", "tether:pair?v=9"]);
    assert_eq!(code, 10, "a malformed payload is invalid input: {err}");
    let (code, out, err) = w.tether(&["scan", "--device", &w.channel(), "--qr", &w.qr, "--json"]);
    assert_eq!(code, 0, "{err}");
    let aps: Value = serde_json::from_str(out.trim()).expect("json");
    assert!(
        aps.as_array()
            .is_some_and(|a| a.iter().any(|ap| ap["ssid"] == "office")),
        "{aps}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_frames_end_the_session_and_a_replayed_session_achieves_nothing() {
    let w = World::new().await;
    let code = code_of(&w);
    let addr = w.channel();
    let status = ChannelRequest::Status {};
    for attack in ["flip", "replay", "reorder"] {
        let (mut raw, session) = Raw::handshake(&addr, &code).await;
        let mut session = session.expect("the right code pairs");
        let first = session
            .seal(&tether_proto::json_line(&status))
            .expect("seals");
        let second = session
            .seal(&tether_proto::json_line(&status))
            .expect("seals");
        let frames = match attack {
            "flip" => {
                let mut f = first.clone();
                f[5] ^= 0x04;
                vec![f]
            }
            "replay" => vec![first.clone(), first],
            _ => vec![second, first],
        };
        let mut answers = Vec::new();
        for frame in frames {
            raw.send(&ClearRequest::Sealed { data: B64(frame) }).await;
            answers.push(raw.recv().await);
        }
        let refusal = answers.iter().flatten().find(|a| a["type"] == "refused");
        assert_eq!(
            refusal.map(|r| r["code"].clone()),
            Some(json!("bad_frame")),
            "{attack}: {answers:?}"
        );
        assert_eq!(raw.recv().await, None, "{attack}: the session is closed");
    }

    // A whole recorded pairing, replayed after the device was reset, pairs nothing.
    let tap = Tap::start(w.device.channel_addr()).await;
    let (code_ok, out, err) = w.provision_at(&tap.addr, &["--password", "correct horse"]);
    assert_eq!(code_ok, 0, "{out}{err}");
    assert!(w.device.reset().await);
    let recorded = tap.sent.lock().expect("lock")[0].clone();
    let mut raw = Raw::connect(&addr).await;
    raw.send_bytes(&recorded).await;
    let mut answers = Vec::new();
    while let Some(answer) = raw.recv().await {
        answers.push(answer);
    }
    assert!(
        answers
            .iter()
            .any(|a| a["type"] == "refused" && a["code"] == "auth_failed"),
        "{answers:?}"
    );
    assert!(
        !answers.iter().any(|a| a["type"] == "sealed"),
        "{answers:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = w.device.status().await.expect("status");
    assert_eq!(status.state.name(), "awaiting-credentials", "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paired_device_says_nothing_outside_its_window_and_moves_networks_inside_it() {
    let w = World::new().await;
    let done = w.provision_json(&["--password", "correct horse", "--json"]);
    let dev_id = done["dev_id"].as_str().expect("dev_id").to_owned();

    // Outside the window: config is refused, and nothing reveals the dev id or network.
    let (code, out, err) = w.provision(&["--password", "correct horse"]);
    assert_eq!(code, 13, "{out}{err}");
    let mut seen = Vec::new();
    for probe in [
        &b"{\"type\":\"info\"}\n"[..],
        b"{\"type\":\"pake_params\"}\n",
        b"{\"type\":\"status\"}\n",
        b"{\"type\":\"config\",\"ssid\":\"evil\",\"passwd\":\"evil password\",\"token\":\"EUaaaaaaaaAAAA\"}\n",
    ] {
        let mut raw = Raw::connect(&w.channel()).await;
        raw.send_bytes(probe).await;
        seen.push(raw.recv().await.expect("an answer"));
    }
    let text = serde_json::to_string(&seen).expect("json");
    assert!(!text.contains(&dev_id) && !text.contains("home"), "{text}");
    assert_eq!(seen[1]["code"], "window_closed", "{text}");
    let status = w.device.status().await.expect("status");
    assert_eq!(
        (status.state.name(), status.ssid.as_deref()),
        ("online", Some("home"))
    );

    // Inside it, the owner moves the device to another router; it stays bound.
    assert!(w.device.pairing_window(Some(120)).await);
    let (code, out, err) = wifi(&w, "office", "office password");
    assert_eq!(code, 0, "{out}{err}");
    let status = w.device.status().await.expect("status");
    assert_eq!(status.dev_id.as_deref(), Some(dev_id.as_str()));
    assert_eq!(
        (status.state.name(), status.ssid.as_deref()),
        ("online", Some("office"))
    );
    assert_eq!(
        status.channel.and_then(|c| c.window_secs),
        None,
        "success closed the window"
    );
    assert_eq!(w.json(&["device", &dev_id, "--json"])["online"], true);

    // A wrong password for the next network: back on office, still bound.
    assert!(w.device.pairing_window(Some(120)).await);
    let (code, _, err) = wifi(&w, "home", "not the password");
    assert_eq!(code, 7, "{err}");
    assert!(
        err.contains("passwd_error") && err.contains("old one"),
        "{err}"
    );
    let status = w.device.status().await.expect("status");
    assert_eq!(
        (status.ssid.as_deref(), status.dev_id.as_deref()),
        (Some("office"), Some(dev_id.as_str()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_block_provisioning() {
    let w = World::new().await;
    let mut idle = Vec::new();
    for _ in 0..12 {
        idle.push(
            TcpStream::connect(w.device.channel_addr())
                .await
                .expect("connects"),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = w.provision_json(&["--password", "correct horse", "--json"]);
    assert!(done["dev_id"].as_str().is_some(), "{done}");
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_works_only_behind_the_development_switch_and_the_cli_warns() {
    let w = World::new().await;
    let (code, _, err) = w.scan_plaintext();
    assert_eq!(code, 10, "the switch is off: {err}");
    assert!(
        err.contains("unsupported") && err.contains("warning"),
        "{err}"
    );

    let w = World::with(|config| config.channel.plaintext = true).await;
    let (code, out, err) = w.scan_plaintext();
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("warning: protocol 1 in clear"), "{err}");
    assert!(out.contains("office"), "{out}");
    // The window rule holds in clear too: once paired, no config.
    w.provision_json(&["--password", "correct horse", "--json"]);
    let (code, _, err) = w.tether(&[
        "provision",
        "--device",
        &w.channel(),
        "--plaintext",
        "--ssid",
        "home",
        "--password",
        "correct horse",
    ]);
    assert_eq!(code, 13, "{err}");
}
