//! `sessions`: N devices, activated through the API, hold MQTT sessions with the embedded
//! broker on their JWTs. Measures the connect rate, the service's memory per session, and
//! commands through the API to the devices and their reports back, with all N connected.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttc::{
    AsyncClient, Event, MqttOptions, NetworkOptions, Packet, QoS, TlsConfiguration, Transport,
};
use serde_json::{Value, json};
use tether_proto::Secret;
use tether_proto::activation::ActivateResponse;
use tether_proto::api::{CommandRequest, DeviceView, LoginRequest, LoginResponse};
use tether_proto::mqtt::{Envelope, Protocol};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::mosquitto::Mosquitto;
use crate::Options;
use crate::cloud::{self, Seeded};
use crate::procs::{Memory, Server};
use crate::report::Report;
use crate::stats::{Samples, show};

/// Devices waiting to be told when a command reached them.
type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Instant>>>>;

/// `n` devices holding sessions with a service of their own.
pub struct Held {
    /// The service (stops when dropped).
    pub service: Server,
    _seeded: Seeded,
    devices: Vec<ActivateResponse>,
    clients: Vec<AsyncClient>,
    waiters: Waiters,
    /// From the first connect to the last SUBACK.
    pub connect_time: Duration,
    /// The service's memory after activating the devices, before they connect.
    pub before: Memory,
    /// Its memory with all connected.
    pub after: Memory,
}

impl Held {
    /// The service's resident memory per held session, in KiB.
    pub fn per_session_kib(&self) -> f64 {
        self.after.rss_growth_per(self.before, self.devices.len())
    }

    /// Sessions connected per second.
    pub fn connect_rate(&self) -> f64 {
        self.devices.len() as f64 / self.connect_time.as_secs_f64()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        for client in &self.clients {
            let _ = client.try_disconnect();
        }
    }
}

/// Seeds and activates `n` devices on a service of their own (over TLS when `tls`, its
/// MQTT clients then verifying the service's CA) and connects them all, 128 at a time.
pub async fn hold(n: usize, tls: bool) -> anyhow::Result<Held> {
    let what = if tls { "sessions (TLS)" } else { "sessions" };
    eprintln!("{what}: seeding {n} licenses");
    let seeded = Seeded::new(n).await?;
    let service = seeded.serve_with(tls)?;
    let devices = cloud::activate_all(&seeded, &service, 32).await?;
    let before = service.memory();
    let tls = service.mqtt_tls()?;

    eprintln!("{what}: connecting {n} devices");
    let waiters: Waiters = Arc::default();
    let (clients, connect_time) = connect_all(&devices, tls, &waiters).await?;
    wait_online_count(&service.client()?, &service.url(), n).await?;
    let after = service.memory();
    Ok(Held {
        service,
        _seeded: seeded,
        devices,
        clients,
        waiters,
        connect_time,
        before,
        after,
    })
}

/// Connects every device's client, 128 connects in flight at once, and waits until each
/// has its SUBACK; the clients and the time from the first connect to the last SUBACK.
async fn connect_all(
    devices: &[ActivateResponse],
    tls: Option<Arc<rustls::ClientConfig>>,
    waiters: &Waiters,
) -> anyhow::Result<(Vec<AsyncClient>, Duration)> {
    let n = devices.len();
    let (connected_tx, mut connected_rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let gate = Arc::new(Semaphore::new(128));
    let started = Instant::now();
    let mut clients = Vec::with_capacity(n);
    for device in devices {
        let (gate, connected, waiters) = (gate.clone(), connected_tx.clone(), waiters.clone());
        clients.push(connect(device, tls.clone(), gate, connected, waiters).await?);
    }
    for done in 1..=n {
        match tokio::time::timeout(Duration::from_secs(60), connected_rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => anyhow::bail!("a device could not connect: {e}"),
            _ => anyhow::bail!("only {} of {n} devices connected within a minute", done - 1),
        }
        if done % 1000 == 0 {
            eprintln!(
                "  … {done}/{n} connected ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok((clients, started.elapsed()))
}

/// The same devices and clients against mosquitto: its RSS per session, or `None` when
/// mosquitto is not installed.
async fn mosquitto_per_session(devices: &[ActivateResponse]) -> anyhow::Result<Option<f64>> {
    let Some(broker) = Mosquitto::start(devices)? else {
        eprintln!("sessions: mosquitto is not installed (apt-get install mosquitto); no peer");
        return Ok(None);
    };
    eprintln!("sessions: the same {} devices on mosquitto", devices.len());
    let moved: Vec<_> = devices.iter().map(|d| broker.device(d)).collect();
    let before = broker.memory();
    let (clients, _) = connect_all(&moved, None, &Waiters::default()).await?;
    let after = broker.memory();
    for client in &clients {
        let _ = client.try_disconnect();
    }
    Ok(Some(after.rss_growth_per(before, devices.len())))
}

/// Runs the scenario.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let n = options.sessions;
    let samples = if options.quick { 10 } else { 300 };
    let held = hold(n, false).await?;
    let (http, url) = (held.service.client()?, held.service.url());
    let (devices, waiters) = (&held.devices, &held.waiters);
    let (connect_time, before, after) = (held.connect_time, held.before, held.after);

    eprintln!("sessions: {samples} commands with {n} sessions up");
    let access = login(&http, &url).await?;
    let mut delivery = Samples::with_capacity(samples);
    let mut round_trip = Samples::with_capacity(samples);
    for k in 0..samples {
        let device = &devices[(k * 7919) % n];
        let mut data = serde_json::Map::new();
        data.insert("2".into(), k.into());
        let (arrived_tx, arrived) = oneshot::channel();
        waiters
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .insert(device.dev_id.clone(), arrived_tx);
        let sent = Instant::now();
        http.post(format!("{url}/v1/devices/{}/commands", device.dev_id))
            .bearer_auth(&access)
            .json(&CommandRequest { data: data.clone() })
            .send()
            .await?
            .error_for_status()?;
        let reached = tokio::time::timeout(Duration::from_secs(10), arrived)
            .await
            .context("a command did not reach its device")??;
        delivery.push(reached - sent);
        loop {
            let view: DeviceView = http
                .get(format!("{url}/v1/devices/{}", device.dev_id))
                .bearer_auth(&access)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            if view.last_report.as_ref().and_then(Value::as_object) == Some(&data) {
                round_trip.push(sent.elapsed());
                break;
            }
            anyhow::ensure!(
                sent.elapsed() < Duration::from_secs(10),
                "no report for command {k}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let per_session = held.per_session_kib();
    let devices = held.devices.clone();
    drop(held);
    let peer = mosquitto_per_session(&devices).await?;
    let mut report = Report::new("sessions", &["measure", "value"]);
    report.row(vec!["sessions held".into(), n.to_string()]);
    report.row(vec![
        "connect: all sessions up in".into(),
        show(connect_time),
    ]);
    report.row(vec![
        "connect rate".into(),
        format!("{:.0}/s", n as f64 / connect_time.as_secs_f64()),
    ]);
    report.row(vec![
        "service RSS before connects".into(),
        format!("{:.1} MiB", before.rss_mib()),
    ]);
    report.row(vec![
        "service RSS with all connected".into(),
        format!("{:.1} MiB", after.rss_mib()),
    ]);
    report.row(vec![
        "service RSS per session".into(),
        format!("{per_session:.1} KiB"),
    ]);
    if let Some(peer) = peer {
        report.row(vec![
            "mosquitto RSS per session (same clients, password file)".into(),
            format!("{peer:.1} KiB"),
        ]);
        report.row(vec![
            "service / mosquitto per session".into(),
            format!("{:.1} ×", per_session / peer.max(0.01)),
        ]);
    }
    for (what, s) in [
        ("command: API call to device, p50/p99", &delivery),
        ("command to report stored, p50/p99", &round_trip),
    ] {
        report.row(vec![
            what.into(),
            format!("{} / {}", show(s.p50()), show(s.p99())),
        ]);
    }
    report.note("a report is seen stored by polling GET /v1/devices/{id} every 1 ms");
    report.target(
        "sessions on this machine",
        ">= 10000",
        n.to_string(),
        n >= 10_000,
    );
    report.data("connect_secs", json!(connect_time.as_secs_f64()));
    report.data(
        "rss_kib",
        json!({"before": before.rss_kib, "after": after.rss_kib, "per_session": per_session,
               "mosquitto_per_session": peer}),
    );
    report.data("delivery", delivery.json());
    report.data("round_trip", round_trip.json());
    Ok(report)
}

/// Starts one device's MQTT client; it answers each command with a report of its data.
async fn connect(
    device: &ActivateResponse,
    tls: Option<Arc<rustls::ClientConfig>>,
    gate: Arc<Semaphore>,
    connected: mpsc::UnboundedSender<Result<(), String>>,
    waiters: Waiters,
) -> anyhow::Result<AsyncClient> {
    let address = device.mqtt.url.trim_start_matches("mqtt://");
    let (host, port) = address.rsplit_once(':').context("broker address")?;
    let mut mqtt = MqttOptions::new(&device.mqtt.client_id, host, port.parse()?);
    mqtt.set_credentials(&device.mqtt.username, device.mqtt.password.expose());
    mqtt.set_keep_alive(Duration::from_secs(60));
    if let Some(config) = tls {
        mqtt.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    }
    let (client, mut events) = AsyncClient::new(mqtt, 8);
    // As the device host does.
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    events.set_network_options(network);
    let (inbound, out, dev_id) = (
        device.topics.inbound.clone(),
        device.topics.out.clone(),
        device.dev_id.clone(),
    );
    let sender = client.clone();
    tokio::spawn(async move {
        let mut permit = gate.acquire_owned().await.ok();
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    permit.take();
                    let _ = sender.subscribe(&inbound, QoS::AtLeastOnce).await;
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = connected.send(Ok(()));
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let Ok(command) = serde_json::from_slice::<Envelope>(&p.payload) else {
                        continue;
                    };
                    if command.protocol != Protocol::DpCommand {
                        continue;
                    }
                    if let Some(waiter) = waiters.lock().ok().and_then(|mut w| w.remove(&dev_id)) {
                        let _ = waiter.send(Instant::now());
                    }
                    let report = Envelope {
                        protocol: Protocol::DpReport,
                        t: tether_service::unix_now(),
                        data: command.data,
                    };
                    if let Ok(payload) = serde_json::to_vec(&report) {
                        let _ = sender.publish(&out, QoS::AtLeastOnce, false, payload).await;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if permit.is_some() {
                        let _ = connected.send(Err(e.to_string()));
                    }
                    return;
                }
            }
        }
    });
    Ok(client)
}

async fn wait_online_count(http: &reqwest::Client, url: &str, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = http
            .get(format!("{url}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let online = metrics
            .lines()
            .find_map(|l| l.strip_prefix("tether_mqtt_sessions_online "))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if online >= n {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the service counts {online} of {n} sessions online"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Logs the bench's account in at `url`; its access token.
pub(super) async fn login(http: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let body = LoginRequest {
        username: cloud::USER.into(),
        password: Secret::new(cloud::PASSWORD),
    };
    let answer: LoginResponse = http
        .post(format!("{url}/v1/auth/token"))
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(answer.access_token.expose().to_owned())
}
