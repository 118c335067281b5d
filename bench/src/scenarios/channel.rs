//! `channel`: what the secure data channel costs the device. The real component in the
//! host runtime serves a provisioner (this process, with the CLI's handshake types)
//! through protocol 2 — `pake_params`, `pake1` (SPAKE2+: the verifier's share, `Z`, `V`,
//! the key schedule), `pake3` (key confirmation, session keys), a sealed `config` — and,
//! side by side, the plaintext protocol 1 `config`. Each call's wall time and the CPU time
//! of the thread that runs the component are measured.

use std::time::{Duration, Instant};

use anyhow::Context;
use tether_host::capabilities::{Command, DeviceIdentity, HostState, Kv, Signer};
use tether_host::component::DEFAULT_COMPONENT;
use tether_host::runtime::Instance;
use tether_host::runtime::wit::{ChannelData, ChannelOpen, Event};
use tether_host::{Runtime, RuntimeConfig};
use tether_proto::b64::B64;
use tether_proto::channel::{ChannelRequest, ClearReply, ClearRequest};
use tether_proto::secure::{ProvisionerHandshake, Session, system_rng};
use tether_proto::setup_code;
use tether_proto::{Secret, json_line};

use crate::Options;
use crate::report::Report;
use crate::stats::{Samples, show};

/// A call's wall time and its thread's CPU time.
#[derive(Default)]
struct Cost {
    wall: Samples,
    cpu: Samples,
}

impl Cost {
    fn add(&mut self, other: (Duration, Duration)) {
        self.wall.push(other.0);
        self.cpu.push(other.1);
    }
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// Feeds `bytes` on `conn`; returns the call's cost and the first line the component
/// sent back.
fn feed(
    instance: &mut Instance,
    conn: u32,
    bytes: Vec<u8>,
) -> anyhow::Result<((Duration, Duration), Vec<u8>)> {
    let event = Event::ChannelData(ChannelData { conn, data: bytes });
    let (wall, cpu) = (Instant::now(), thread_cpu());
    instance.handle(&event)?;
    let cost = (wall.elapsed(), thread_cpu().saturating_sub(cpu));
    let sent = instance
        .take_commands()
        .into_iter()
        .find_map(|c| match c {
            Command::ChannelSend { data, .. } => Some(data),
            _ => None,
        })
        .context("the component sent nothing")?;
    Ok((cost, sent))
}

fn one(line: Vec<u8>) -> anyhow::Result<ClearReply> {
    serde_json::from_slice(&line).context("not a protocol 2 reply")
}

/// Runs the scenario.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let rounds = if options.quick { 5 } else { 300 };
    let mut report = Report::new("channel", &["call", "n", "wall p50", "wall p99", "cpu p50"]);
    let dir = tempfile::tempdir().context("temp dir")?;
    let (code, verifier) = setup_code::issue().context("setup code")?;
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let loaded = runtime.load(DEFAULT_COMPONENT)?;
    let state = |name: &str| -> anyhow::Result<HostState> {
        let identity = DeviceIdentity {
            uuid: "benchuuid00000000000".into(),
            product_key: crate::cloud::PRODUCT_KEY.into(),
            authkey: Secret::new("0123456789abcdef0123456789abcdef"),
            iot_dns_url: "http://127.0.0.1:9".into(),
            pairing_verifier: Some(verifier.encode()),
            plaintext_channel: true,
        };
        let kv = Kv::open(&dir.path().join(name))?;
        let signer = Signer::new(
            Some(identity),
            Some(dir.path().join(format!("{name}.json"))),
        )?;
        Ok(runtime.host_state(kv, signer))
    };
    let mut instance = runtime.instantiate(&loaded, state("device")?)?;
    instance
        .init(None)?
        .map_err(|e| anyhow::anyhow!("init refused: {e}"))?;
    let config = ChannelRequest::Config {
        ssid: crate::rig::SSID.into(),
        passwd: Secret::new(crate::rig::WIFI_PASSWORD),
        token: Secret::new("AYabcdefghijkl"),
        traceparent: None,
    };

    // The provisioner's share of the work, once: Argon2id of the setup code.
    let started = Instant::now();
    let secret = setup_code::prover_secret(&code, verifier.salt()).context("derives")?;
    let argon = started.elapsed();

    let (mut v1, mut params, mut pake1, mut pake3, mut sealed) = Default::default();
    let (mut v2_wall, mut v2_cpu) = (Samples::default(), Samples::default());
    for round in 0..rounds {
        let conn = 2 * round + 1;
        let open = |conn| {
            Event::ChannelOpened(ChannelOpen {
                conn,
                peer: "bench".into(),
            })
        };

        // Protocol 1: one plaintext line, one answer.
        instance.handle(&open(conn))?;
        let (cost, ack) = feed(&mut instance, conn, json_line(&config))?;
        anyhow::ensure!(ack.starts_with(b"{\"type\":\"ack\""), "no ack");
        Cost::add(&mut v1, cost);
        instance.handle(&Event::ChannelClosed(conn))?;
        instance.take_commands();

        // Protocol 2: the handshake, then the same request sealed.
        let conn = conn + 1;
        instance.handle(&open(conn))?;
        instance.take_commands();
        let (c1, r) = feed(&mut instance, conn, json_line(&ClearRequest::PakeParams {}))?;
        anyhow::ensure!(
            matches!(one(r)?, ClearReply::PakeParams { .. }),
            "no params"
        );
        let (prover, share_p) = ProvisionerHandshake::start(&secret, &mut system_rng());
        let (c2, r) = feed(
            &mut instance,
            conn,
            json_line(&ClearRequest::Pake1 {
                share_p: B64(share_p),
            }),
        )?;
        let ClearReply::Pake2 { share_v, confirm_v } = one(r)? else {
            anyhow::bail!("no pake2");
        };
        let (confirm_p, mut session): (Vec<u8>, Session) = prover
            .finish(&share_v.0, &confirm_v.0)
            .map_err(|e| anyhow::anyhow!("the device's confirmation failed: {e}"))?;
        let (c3, r) = feed(
            &mut instance,
            conn,
            json_line(&ClearRequest::Pake3 {
                confirm_p: B64(confirm_p),
            }),
        )?;
        let ClearReply::Sealed { data } = one(r)? else {
            anyhow::bail!("no session");
        };
        session
            .open(&data.0)
            .map_err(|e| anyhow::anyhow!("ready: {e}"))?;
        let frame = session
            .seal(&json_line(&config))
            .map_err(|e| anyhow::anyhow!("seal: {e}"))?;
        let (c4, r) = feed(
            &mut instance,
            conn,
            json_line(&ClearRequest::Sealed { data: B64(frame) }),
        )?;
        let ClearReply::Sealed { data } = one(r)? else {
            anyhow::bail!("no sealed ack");
        };
        session
            .open(&data.0)
            .map_err(|e| anyhow::anyhow!("ack: {e}"))?;
        for (cost, into) in [
            (c1, &mut params),
            (c2, &mut pake1),
            (c3, &mut pake3),
            (c4, &mut sealed),
        ] {
            Cost::add(into, cost);
        }
        v2_wall.push(c1.0 + c2.0 + c3.0 + c4.0);
        v2_cpu.push(c1.1 + c2.1 + c3.1 + c4.1);
        instance.handle(&Event::ChannelClosed(conn))?;
        instance.take_commands();
    }

    let rows: [(&str, &Cost); 5] = [
        ("v1 plaintext: config → ack", &v1),
        ("v2 pake_params → salt", &params),
        ("v2 pake1 → pake2 (SPAKE2+ verifier)", &pake1),
        ("v2 pake3 → ready (confirmation, keys)", &pake3),
        ("v2 sealed config → sealed ack", &sealed),
    ];
    for (name, cost) in rows {
        add(&mut report, name, &cost.wall, &cost.cpu);
    }
    add(&mut report, "v2 total on the device", &v2_wall, &v2_cpu);
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    report.note(format!(
        "v2 / v1 on the device: wall {:.0}x, CPU {:.0}x (p50); the provisioner's Argon2id of the setup code: {}",
        ratio(v2_wall.p50(), v1.wall.p50()),
        ratio(v2_cpu.p50(), v1.cpu.p50()),
        show(argon)
    ));
    report.target(
        "the key exchange and a sealed config on the device, wall p99",
        "<= 50 ms",
        show(v2_wall.p99()),
        v2_wall.p99() <= Duration::from_millis(50),
    );
    report.data("v2_total_wall", v2_wall.json());
    report.data("v2_total_cpu", v2_cpu.json());
    report.data("v1_wall", v1.wall.json());
    report.data("v1_cpu", v1.cpu.json());
    Ok(report)
}

fn add(report: &mut Report, what: &str, wall: &Samples, cpu: &Samples) {
    report.row(vec![
        what.to_owned(),
        wall.len().to_string(),
        show(wall.p50()),
        show(wall.p99()),
        show(cpu.p50()),
    ]);
}
