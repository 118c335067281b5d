//! The thin layer between the WIT contract and the sans-IO core: it converts WIT types,
//! reads the clock and `kv`, performs the machine's actions through host imports (an
//! import that refuses at once is fed back as the matching failure event), and answers
//! data-channel requests. It holds no pairing logic of its own.

use std::cell::RefCell;

use tether_proto::channel::{
    AccessPoint, ChannelReply, ChannelRequest, DeviceInfo, PROTOCOL_VERSION,
};
use tether_proto::status::ChannelView;
use tether_proto::{ErrorCode, ReplyCode};

use crate::channel::guard::GuardRecord;
use crate::channel::{Channel, Output, Setup};
use crate::machine::{self, Action, Clock, Event as MachineEvent, Machine, Stored, keys};

wit_bindgen::generate!({ path: "../wit", world: "pairing" });

use exports::pairing::{ChannelState, Event, Guest, NetState, PairingStatus, Timings};
use tether::pairing::types::ErrorCode as WitErrorCode;
use tether::pairing::{device, http, kv, log, mqtt, timer, wifi};

tether_proto::wit_error_code_conversions!(WitErrorCode);

/// MQTT keep-alive the device asks for.
const KEEP_ALIVE_SECS: u16 = 60;
/// The channel's sweep timer (the machine's timers are numbered from 1).
const SWEEP_TIMER: u32 = 100;
/// Where the channel's guard keeps its count of failed handshakes.
const GUARD_KEY: &str = "channel_guard";

struct State {
    machine: Machine,
    channel: Channel,
    /// Channel connections waiting for a scan's results.
    scan_waiters: Vec<u32>,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with_borrow_mut(|s| {
        let state = s.get_or_insert_with(|| State {
            machine: Machine::new(identity(), seed()),
            channel: new_channel(),
            scan_waiters: Vec::new(),
        });
        f(state)
    })
}

struct Component;

impl Guest for Component {
    fn init(snapshot: Option<Vec<u8>>) -> Result<(), String> {
        let (machine, actions) = match snapshot {
            Some(bytes) => {
                let mut m = Machine::restore(&bytes)?;
                m.set_identity(identity());
                (m, Vec::new())
            }
            None => Machine::boot(clock(), identity(), stored(), seed()),
        };
        STATE.with_borrow_mut(|s| {
            *s = Some(State {
                machine,
                channel: new_channel(),
                scan_waiters: Vec::new(),
            })
        });
        perform(actions);
        Ok(())
    }

    fn user_cfg(ssid: String, passwd: String, token: String) -> Result<(), WitErrorCode> {
        let actions = with(|s| s.machine.user_cfg(clock(), &ssid, &passwd, &token))
            .map_err(WitErrorCode::from)?;
        perform(actions);
        Ok(())
    }

    fn handle(ev: Event) {
        let event = match ev {
            Event::WifiScanDone(aps) => return scan_done(&aps),
            Event::ChannelOpened(open) => {
                let now = clock().mono_ms;
                return outputs(with(|s| s.channel.opened(open.conn, now)));
            }
            Event::ChannelData(data) => return channel_data(data.conn, &data.data),
            Event::TimerFired(SWEEP_TIMER) => {
                let now = clock().mono_ms;
                return outputs(with(|s| s.channel.sweep(now)));
            }
            Event::ChannelClosed(conn) => {
                return with(|s| {
                    s.channel.closed(conn);
                    s.scan_waiters.retain(|c| *c != conn);
                });
            }
            Event::WifiConnected(link) => MachineEvent::WifiConnected { ssid: link.ssid },
            Event::WifiFailed(code) => MachineEvent::WifiFailed(code.into()),
            Event::WifiDisconnected(code) => MachineEvent::WifiDisconnected(code.into()),
            Event::HttpResponse(r) => {
                let retry_after = r
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                    .and_then(|(_, v)| v.trim().parse().ok());
                MachineEvent::HttpResponse {
                    id: r.id,
                    status: r.status,
                    retry_after,
                    body: r.body,
                }
            }
            Event::HttpFailed(f) => MachineEvent::HttpFailed {
                id: f.id,
                code: f.code.into(),
            },
            Event::MqttConnected => MachineEvent::MqttConnected,
            Event::MqttMessage(m) => MachineEvent::MqttMessage {
                topic: m.topic,
                payload: m.payload,
            },
            Event::MqttDisconnected(d) => MachineEvent::MqttDisconnected(d.code.into()),
            Event::TimerFired(id) => match machine::Timer::from_id(id) {
                Some(t) => MachineEvent::TimerFired(t),
                None => return,
            },
        };
        feed(event);
    }

    fn status() -> PairingStatus {
        let s = with(|s| s.machine.status());
        PairingStatus {
            state: net_state(s.state),
            last_error: s.last_error.map(WitErrorCode::from),
            timings: Timings {
                wifi_ms: s.timings.wifi_ms,
                dns_ms: s.timings.dns_ms,
                activate_ms: s.timings.activate_ms,
                mqtt_ms: s.timings.mqtt_ms,
            },
            dev_id: s.dev_id,
            ssid: s.ssid,
            version: s.version,
        }
    }

    fn open_window(secs: u32) {
        let now = clock().mono_ms;
        outputs(with(|s| s.channel.open_window(now, secs)));
    }

    fn close_window() {
        with(|s| s.channel.close_window());
    }

    fn channel_status() -> ChannelState {
        let c = channel_view();
        ChannelState {
            window_secs: c.window_secs,
            locked: c.locked,
            failures: c.failures,
        }
    }

    fn snapshot() -> Vec<u8> {
        with(|s| s.machine.snapshot())
    }

    fn health() -> Result<(), String> {
        with(|s| s.machine.health())
    }

    fn reset() {
        let actions = with(|s| s.machine.reset(clock()));
        perform(actions);
    }
}

fn clock() -> Clock {
    Clock {
        mono_ms: timer::monotonic_ms(),
        unix: timer::unix_secs(),
    }
}

fn identity() -> machine::Identity {
    let id = device::identity();
    machine::Identity {
        uuid: id.uuid,
        product_key: id.product_key,
        sw_ver: id.sw_ver,
        iot_dns_url: id.iot_dns_url,
    }
}

fn new_channel() -> Channel {
    let setup = device::pairing_setup();
    let verifier = setup.verifier.and_then(|text| match text.parse() {
        Ok(verifier) => Some(verifier),
        Err(e) => {
            log::log(
                log::Level::Error,
                &format!("the pairing verifier is unusable: {e}"),
            );
            None
        }
    });
    let record: GuardRecord = kv::get(GUARD_KEY)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    Channel::new(
        Setup {
            verifier,
            plaintext: setup.plaintext,
            product_key: identity().product_key,
        },
        record,
    )
}

fn channel_view() -> ChannelView {
    let now = clock().mono_ms;
    let c = with(|s| s.channel.status(now));
    ChannelView {
        window_secs: c.window_secs,
        locked: c.locked,
        failures: c.failures,
    }
}

fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    // Only the retry jitter depends on it; a fixed seed would merely synchronise retries.
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// The records the machine keeps, as `kv` holds them; unreadable ones count as absent.
fn stored() -> Stored {
    fn read<T: serde::de::DeserializeOwned>(key: &str) -> Option<T> {
        kv::get(key).and_then(|bytes| serde_json::from_slice(&bytes).ok())
    }
    Stored {
        network: read(keys::NETWORK),
        activation: read(keys::ACTIVATION),
        endpoints: read(keys::ENDPOINTS),
        data_points: read(keys::DATA_POINTS).unwrap_or_default(),
        pending: read(keys::PENDING),
        reset: kv::get(keys::RESET).is_some(),
        reports: read(keys::REPORTS).unwrap_or_default(),
    }
}

fn feed(event: MachineEvent) {
    let actions = with(|s| s.machine.handle(clock(), event));
    perform(actions);
    // After every event: cheap, no status built.
    let paired = with(|s| s.machine.is_online().then(|| s.channel.paired()).flatten());
    outputs(paired.into_iter().collect());
}

/// Performs actions in order; failures that imports report at once become events.
fn perform(actions: Vec<Action>) {
    let mut follow_up = Vec::new();
    for action in actions {
        if let Some(event) = perform_one(action) {
            follow_up.push(event);
        }
    }
    for event in follow_up {
        feed(event);
    }
}

fn perform_one(action: Action) -> Option<MachineEvent> {
    match action {
        Action::WifiConnect(n) => wifi::connect(&n.ssid, n.passwd.expose())
            .err()
            .map(|c| MachineEvent::WifiFailed(c.into())),
        Action::Http(req) => start_request(req),
        Action::MqttConnect(a) => {
            let options = mqtt::ConnectOptions {
                url: a.mqtt_url,
                client_id: a.client_id,
                username: a.username,
                password: a.password.expose().to_owned(),
                keep_alive_secs: KEEP_ALIVE_SECS,
            };
            mqtt::connect(&options)
                .err()
                .map(|c| MachineEvent::MqttDisconnected(c.into()))
        }
        Action::MqttSubscribe(topic) => {
            warn_on(mqtt::subscribe(&topic, mqtt::Qos::AtLeastOnce), "subscribe")
        }
        Action::MqttPublish { topic, payload } => warn_on(
            mqtt::publish(&topic, &payload, mqtt::Qos::AtLeastOnce),
            "publish",
        ),
        Action::MqttDisconnect => {
            mqtt::disconnect();
            None
        }
        Action::SetTimer(t, ms) => {
            timer::set(t as u32, ms);
            None
        }
        Action::CancelTimer(t) => {
            timer::cancel(t as u32);
            None
        }
        Action::KvSet(key, value) => warn_on(kv::set(key, &value), "kv write"),
        Action::KvDelete(key) => warn_on(kv::delete(key), "kv delete"),
        Action::SetBinding(binding) => {
            let binding = binding.map(|(dev_id, secret)| device::Binding {
                dev_id,
                dev_secret: secret.expose().to_owned(),
            });
            warn_on(device::set_binding(binding.as_ref()), "storing the binding")
        }
        Action::SetEndpoints {
            http_url,
            mqtt_url,
            ca,
        } => warn_on(
            device::set_endpoints(&device::CloudEndpoints {
                http_url,
                mqtt_url,
                ca,
            }),
            "storing the endpoints",
        ),
        Action::Log(level, line) => {
            let level = match level {
                machine::Level::Info => log::Level::Info,
                machine::Level::Warn => log::Level::Warn,
            };
            log::log(level, &line);
            None
        }
    }
}

fn warn_on(result: Result<(), WitErrorCode>, what: &str) -> Option<MachineEvent> {
    if let Err(code) = result {
        log::log(
            log::Level::Warn,
            &format!("{what} failed: {}", ErrorCode::from(code)),
        );
    }
    None
}

/// Signs and starts a cloud request; a refusal becomes the request's failure.
fn start_request(req: machine::HttpRequest) -> Option<MachineEvent> {
    let purpose = req.purpose;
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    // The provisioner's trace, from a span of this device's own.
    let span = req
        .trace
        .as_deref()
        .and_then(|t| tether_proto::trace::TraceParent::parse(t).ok())
        .and_then(|parent| parent.child().ok());
    if let Some(span) = span {
        headers.push(("traceparent".to_owned(), span.to_string()));
    }
    if let Some(sign) = req.sign {
        let signer = match sign {
            machine::SignWith::Authkey => device::Signer::Authkey,
            machine::SignWith::DevSecret => device::Signer::DevSecret,
        };
        match device::sign_request("POST", &req.path, &req.body, signer) {
            Ok(value) => headers.push(("authorization".to_owned(), value)),
            Err(code) => return Some(refused(purpose, code)),
        }
    }
    let request = http::Request {
        method: http::Method::Post,
        url: req.url,
        headers,
        body: req.body,
        timeout_ms: req.timeout_ms,
    };
    match http::start(&request) {
        Ok(id) => {
            with(|s| s.machine.request_started(purpose, id, timer::unix_secs()));
            None
        }
        Err(code) => Some(refused(purpose, code)),
    }
}

/// A request that never started: it is given id 0 so its failure matches it.
fn refused(purpose: machine::Purpose, code: WitErrorCode) -> MachineEvent {
    with(|s| s.machine.request_started(purpose, 0, timer::unix_secs()));
    MachineEvent::HttpFailed {
        id: 0,
        code: code.into(),
    }
}

fn outputs(outputs: Vec<Output>) {
    for output in outputs {
        match output {
            Output::Send(conn, bytes) => channel_send(conn, &bytes),
            Output::Close(conn) => tether::pairing::channel::close(conn),
            Output::Persist(record) => {
                let bytes = serde_json::to_vec(&record).expect("the guard record serialises");
                warn_on(kv::set(GUARD_KEY, &bytes), "storing the channel guard");
            }
            Output::ArmSweep(ms) => timer::set(SWEEP_TIMER, ms),
            Output::Log(line) => log::log(log::Level::Info, &line),
        }
    }
}

/// Sends on a connection; a connection that is gone needs no answer.
fn channel_send(conn: u32, bytes: &[u8]) {
    let _ = tether::pairing::channel::send(conn, bytes);
}

fn channel_data(conn: u32, bytes: &[u8]) {
    let now = clock().mono_ms;
    let (requests, out) = with(|s| {
        let bound = s.machine.is_bound();
        s.channel.data(conn, bytes, now, bound)
    });
    for (conn, request) in requests {
        answer(conn, request);
    }
    outputs(out);
}

/// Answers a request the channel let through.
fn answer(conn: u32, request: ChannelRequest) {
    let reply = match request {
        ChannelRequest::Config {
            ssid,
            passwd,
            token,
            traceparent,
        } => {
            let result =
                Component::user_cfg(ssid, passwd.expose().to_owned(), token.expose().to_owned());
            if let (Ok(()), Some(traceparent)) = (&result, traceparent) {
                perform(with(|s| s.machine.set_trace(&traceparent)));
            }
            ChannelReply::Ack {
                code: result.map_err(ErrorCode::from).into(),
            }
        }
        ChannelRequest::Wifi { ssid, passwd } => {
            let result = with(|s| s.machine.change_network(clock(), &ssid, passwd.expose()));
            let code = ReplyCode::from(result.as_ref().map(|_| ()).map_err(|e| *e));
            if let Ok(actions) = result {
                perform(actions);
            }
            ChannelReply::Ack { code }
        }
        ChannelRequest::Status {} => {
            let mut status = with(|s| s.machine.status());
            status.channel = Some(channel_view());
            ChannelReply::Status(status)
        }
        ChannelRequest::Info {} => {
            let id = identity();
            ChannelReply::Info(DeviceInfo {
                uuid: id.uuid,
                product_key: id.product_key,
                sw_ver: id.sw_ver,
                module_version: crate::VERSION.to_owned(),
                protocol: PROTOCOL_VERSION,
                features: vec![tether_proto::channel::FEATURE_TRACE.to_owned()],
            })
        }
        ChannelRequest::Scan {} => {
            // One scan serves every connection waiting for one.
            let first = with(|s| {
                let first = s.scan_waiters.is_empty();
                if !s.scan_waiters.contains(&conn) {
                    s.scan_waiters.push(conn);
                }
                first
            });
            match if first { wifi::scan() } else { Ok(()) } {
                Ok(()) => return,
                Err(code) => {
                    with(|s| s.scan_waiters.clear());
                    ChannelReply::Error {
                        code: code.into(),
                        message: "scan failed".into(),
                    }
                }
            }
        }
    };
    reply_on(conn, &reply);
}

fn reply_on(conn: u32, reply: &ChannelReply) {
    let out = with(|s| s.channel.reply(conn, reply));
    outputs(out);
}

fn scan_done(aps: &[wifi::AccessPoint]) {
    let aps: Vec<AccessPoint> = aps
        .iter()
        .map(|ap| AccessPoint {
            ssid: ap.ssid.clone(),
            bssid: ap.bssid.clone(),
            rssi: ap.rssi,
            channel: ap.channel,
            security: format!("{:?}", ap.security).to_lowercase(),
        })
        .collect();
    let reply = ChannelReply::Scan { aps };
    for conn in with(|s| std::mem::take(&mut s.scan_waiters)) {
        reply_on(conn, &reply);
    }
}

fn net_state(state: machine::NetState) -> NetState {
    match state {
        machine::NetState::AwaitingCredentials => NetState::AwaitingCredentials,
        machine::NetState::Connecting => NetState::Connecting,
        machine::NetState::StaConnected => NetState::StaConnected,
        machine::NetState::EndpointLookup => NetState::EndpointLookup,
        machine::NetState::Activating => NetState::Activating,
        machine::NetState::MqttConnecting => NetState::MqttConnecting,
        machine::NetState::Online => NetState::Online,
        machine::NetState::Offline => NetState::Offline,
    }
}

export!(Component);
