//! The pairing state machine, free of binding calls: inputs are `user_cfg`, events and
//! the clock; outputs are [`Action`]s that the bindings layer performs through host
//! imports. Its whole state can be snapshotted and restored, so a hot update can carry a
//! device mid-pairing; the parts that must survive a reboot are also written to `kv`.
//!
//! The flow: awaiting credentials → connecting (Wi-Fi) → sta-connected → endpoint lookup
//! (IoT DNS) → activating → MQTT connecting → online; offline and reconnecting after a
//! loss. `cloud.rs` holds the HTTP phases, `online.rs` the MQTT session.

mod backoff;
mod cloud;
mod online;
mod refresh;
mod reports;
mod types;

use serde::{Deserialize, Serialize};
use tether_proto::{ErrorCode, Secret};

pub use types::*;

use crate::validate::{Credentials, validate};
use backoff::Backoff;

/// Snapshot format version; `restore` refuses others.
const SNAPSHOT_VERSION: u32 = 2;
/// Attempts at joining a new network before giving up with the reason.
pub const WIFI_ATTEMPTS: u32 = 3;
/// Pause between attempts at joining a new network.
pub const WIFI_RETRY_MS: u32 = 1_000;
/// How long a paired device's move to another network may take before it goes back.
pub const NETWORK_CHANGE_MS: u32 = 60_000;

/// The clock, read by the bindings for every input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Monotonic milliseconds.
    pub mono_ms: u64,
    /// Wall-clock Unix seconds.
    pub unix: u64,
}

/// The pairing state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    version: u32,
    state: NetState,
    last_error: Option<ErrorCode>,
    timings: PhaseTimings,
    /// When the current phase began (monotonic ms).
    phase_started_ms: u64,
    identity: Identity,
    /// Credentials of the pairing under way.
    pending: Option<Credentials>,
    /// The network a paired device is moving to (no new pairing).
    #[serde(default)]
    moving: Option<Network>,
    /// The network the station is joining or on.
    joining: Option<Network>,
    /// The network that last went online.
    network: Option<Network>,
    activation: Option<Activation>,
    endpoints: Option<Endpoints>,
    data_points: serde_json::Map<String, serde_json::Value>,
    /// A local reset happened since the last activation.
    reset: bool,
    wifi_attempts: u32,
    cloud_backoff: Backoff,
    mqtt_backoff: Backoff,
    /// When the pairing under way began (Unix seconds).
    pairing_since: u64,
    /// The cloud request awaiting an answer, and its id once started.
    inflight: Option<(Purpose, Option<u32>)>,
    /// The wall clock when that request was signed (Unix seconds).
    #[serde(default)]
    inflight_signed_at: u64,
    /// Pairing reports the cloud has not had yet, oldest first (`reports.rs`).
    #[serde(default)]
    reports: Vec<reports::QueuedReport>,
    /// The report request in flight, and its id once started.
    #[serde(default)]
    report_inflight: Option<Option<u32>>,
    /// Failed deliveries of the oldest report.
    #[serde(default)]
    report_tries: u8,
    /// The provisioner's trace context of the pairing under way (`traceparent`).
    #[serde(default)]
    trace: Option<String>,
}

impl Machine {
    /// A machine for a device that has never been paired.
    pub fn new(identity: Identity, seed: u64) -> Self {
        Self {
            version: SNAPSHOT_VERSION,
            state: NetState::AwaitingCredentials,
            last_error: None,
            timings: PhaseTimings::default(),
            phase_started_ms: 0,
            identity,
            pending: None,
            moving: None,
            joining: None,
            network: None,
            activation: None,
            endpoints: None,
            data_points: serde_json::Map::new(),
            reset: false,
            wifi_attempts: 0,
            cloud_backoff: Backoff::cloud(seed),
            mqtt_backoff: Backoff::mqtt(seed.rotate_left(17)),
            pairing_since: 0,
            inflight: None,
            inflight_signed_at: 0,
            reports: Vec::new(),
            report_inflight: None,
            report_tries: 0,
            trace: None,
        }
    }

    /// Starts from what `kv` held at boot: an activated device reconnects (Wi-Fi, then
    /// cached endpoints or IoT DNS, then MQTT; no activation); a device whose pairing
    /// was interrupted waits for credentials and says why.
    pub fn boot(
        clock: Clock,
        identity: Identity,
        stored: Stored,
        seed: u64,
    ) -> (Self, Vec<Action>) {
        let mut m = Self::new(identity, seed);
        m.network = stored.network;
        m.activation = stored.activation;
        m.endpoints = stored.endpoints;
        m.data_points = stored.data_points;
        m.reset = stored.reset;
        m.reports = stored.reports;
        m.reports.truncate(reports::MAX_QUEUED);
        // The host may not have them yet (it kept none before it asked for them).
        let mut actions: Vec<Action> = m.endpoints.iter().map(Endpoints::for_host).collect();
        if let Some(pending) = stored.pending {
            // A pairing was under way when the device stopped: it did not finish.
            m.last_error = Some(pending.last_error.unwrap_or(ErrorCode::Internal));
            actions.push(Action::KvDelete(keys::PENDING));
            actions.push(log(
                Level::Warn,
                format!("pairing with {:?} was interrupted", pending.ssid),
            ));
        }
        match (&m.activation, m.network.clone()) {
            (Some(_), Some(network)) => {
                m.enter(NetState::Connecting, clock);
                actions.extend(m.join(network));
            }
            _ => m.enter(NetState::AwaitingCredentials, clock),
        }
        (m, actions)
    }

    /// A machine from a snapshot taken by [`Machine::snapshot`].
    pub fn restore(snapshot: &[u8]) -> Result<Self, String> {
        let machine: Machine = serde_json::from_slice(snapshot)
            .map_err(|e| format!("snapshot is not readable: {e}"))?;
        if machine.version != SNAPSHOT_VERSION {
            return Err(format!(
                "snapshot version {} is not {SNAPSHOT_VERSION}",
                machine.version
            ));
        }
        machine.health()?;
        Ok(machine)
    }

    /// The whole state, for `restore` in a new instance.
    pub fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("the machine's state always serialises")
    }

    /// The seed API: validates the arguments, then starts pairing with them. New
    /// credentials replace any pairing under way.
    pub fn user_cfg(
        &mut self,
        clock: Clock,
        ssid: &str,
        passwd: &str,
        token: &str,
    ) -> Result<Vec<Action>, ErrorCode> {
        let creds = validate(ssid, passwd, token)?;
        let mut actions = vec![log(
            Level::Info,
            format!(
                "credentials accepted for network {:?}, token {}",
                creds.ssid,
                creds.token().public_id()
            ),
        )];
        actions.extend(self.stop_work());
        let pending = Pending {
            ssid: creds.ssid.clone(),
            last_error: None,
        };
        actions.push(Action::KvSet(keys::PENDING, to_json(&pending)));
        let network = Network {
            ssid: creds.ssid.clone(),
            passwd: creds.passwd.clone(),
        };
        self.pending = Some(creds);
        self.trace = None;
        self.moving = None;
        self.last_error = None;
        self.timings = PhaseTimings::default();
        self.wifi_attempts = 0;
        self.cloud_backoff.reset();
        self.pairing_since = clock.unix;
        self.enter(NetState::Connecting, clock);
        actions.extend(self.join(network));
        Ok(actions)
    }

    /// Joins the pairing under way to the provisioner's trace (a `traceparent` that came
    /// with its credentials): its cloud requests and its report carry it. A malformed
    /// one is ignored, as the trace context specification asks.
    pub fn set_trace(&mut self, traceparent: &str) -> Vec<Action> {
        if self.pending.is_none() {
            return Vec::new();
        }
        match tether_proto::trace::TraceParent::parse(traceparent) {
            Ok(parent) => {
                self.trace = Some(parent.to_string());
                vec![log(
                    Level::Info,
                    format!("pairing in trace {}", parent.trace_id_hex()),
                )]
            }
            Err(e) => vec![log(Level::Warn, format!("trace context ignored: {e}"))],
        }
    }

    /// A paired device moves to another router without pairing again: it joins the new
    /// network and goes online there with its binding; only then does the new network
    /// replace the old one. Any failure on the way, or [`NETWORK_CHANGE_MS`] without
    /// success, takes it back to the old network, with the reason in `last_error`.
    pub fn change_network(
        &mut self,
        clock: Clock,
        ssid: &str,
        passwd: &str,
    ) -> Result<Vec<Action>, ErrorCode> {
        crate::validate::validate_network(ssid, passwd)?;
        if self.activation.is_none() || self.network.is_none() {
            return Err(ErrorCode::InvalidParm);
        }
        if self.pending.is_some() {
            return Err(ErrorCode::Busy);
        }
        let network = Network {
            ssid: ssid.to_owned(),
            passwd: Secret::new(passwd),
        };
        let mut actions = vec![log(
            Level::Info,
            format!("moving to network {ssid:?}; the previous one stays until then"),
        )];
        actions.extend(self.stop_work());
        self.moving = Some(network.clone());
        self.last_error = None;
        self.wifi_attempts = 0;
        self.enter(NetState::Connecting, clock);
        actions.extend(self.join(network));
        actions.push(Action::SetTimer(Timer::NetworkChange, NETWORK_CHANGE_MS));
        Ok(actions)
    }

    /// Whether the MQTT session is up.
    pub fn is_online(&self) -> bool {
        self.state == NetState::Online
    }

    /// Whether the device is paired (activated).
    pub fn is_bound(&self) -> bool {
        self.activation.is_some()
    }

    /// Reacts to one event.
    pub fn handle(&mut self, clock: Clock, event: Event) -> Vec<Action> {
        match event {
            Event::WifiConnected { ssid } => self.on_wifi_connected(clock, &ssid),
            Event::WifiFailed(code) => self.on_wifi_failed(clock, code),
            Event::WifiDisconnected(code) => self.on_wifi_lost(clock, code),
            Event::TimerFired(Timer::WifiRetry) => match self.joining.clone() {
                Some(network)
                    if self.state == NetState::Connecting || self.state == NetState::Offline =>
                {
                    self.join(network)
                }
                _ => Vec::new(),
            },
            Event::HttpResponse {
                id,
                status,
                retry_after,
                body,
            } => self.on_http_response(clock, id, status, retry_after, &body),
            Event::HttpFailed { id, code } => self.on_http_failed(clock, id, code),
            Event::TimerFired(Timer::CloudRetry) => self.retry_cloud(clock),
            Event::MqttConnected => self.on_mqtt_connected(clock),
            Event::MqttDisconnected(code) => self.on_mqtt_lost(clock, code),
            Event::MqttMessage { topic, payload } => self.on_mqtt_message(clock, &topic, &payload),
            Event::TimerFired(Timer::MqttRetry) => self.reconnect(clock),
            Event::TimerFired(Timer::EndpointRefresh) => self.refresh_endpoints(),
            Event::TimerFired(Timer::RefreshCredentials) => self.refresh_credentials(),
            Event::TimerFired(Timer::NetworkChange) if self.moving.is_some() => {
                self.fail_pairing(clock, ErrorCode::Timeout)
            }
            Event::TimerFired(Timer::NetworkChange) => Vec::new(),
        }
    }

    /// The bindings started (and signed) the cloud request of the last `Action::Http`, for
    /// `purpose`, at wall-clock `unix`.
    pub fn request_started(&mut self, purpose: Purpose, id: u32, unix: u64) {
        if purpose == Purpose::Report {
            if let Some(slot) = &mut self.report_inflight {
                *slot = Some(id);
            }
        } else if let Some((_, slot)) = &mut self.inflight {
            *slot = Some(id);
            self.inflight_signed_at = unix;
        }
    }

    /// Local factory reset: forgets the network, activation and data points; the next
    /// activation tells the cloud with `reset: true`.
    pub fn reset(&mut self, clock: Clock) -> Vec<Action> {
        let mut actions = self.stop_work();
        actions.extend(self.forget_activation());
        actions.extend([
            Action::KvDelete(keys::NETWORK),
            Action::KvDelete(keys::PENDING),
            Action::KvDelete(keys::DATA_POINTS),
            Action::KvDelete(keys::REPORTS),
        ]);
        actions.push(Action::KvSet(keys::RESET, b"true".to_vec()));
        let (identity, seed) = (self.identity.clone(), self.cloud_backoff.seed());
        *self = Self::new(identity, seed);
        self.reset = true;
        self.enter(NetState::AwaitingCredentials, clock);
        actions.push(log(
            Level::Info,
            "factory reset: awaiting credentials".into(),
        ));
        actions
    }

    /// Updates what the host says about the device (after a restore, say).
    pub fn set_identity(&mut self, identity: Identity) {
        self.identity = identity;
    }

    /// Current progress.
    pub fn status(&self) -> DeviceStatus {
        DeviceStatus {
            state: self.state,
            last_error: self.last_error,
            timings: self.timings,
            dev_id: self.activation.as_ref().map(|a| a.dev_id.clone()),
            ssid: self
                .joining
                .as_ref()
                .or(self.network.as_ref())
                .map(|n| n.ssid.clone()),
            version: crate::VERSION.to_owned(),
            channel: None,
        }
    }

    /// The data points.
    pub fn data_points(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.data_points
    }

    /// Checks the invariants between the state and what it needs.
    pub fn health(&self) -> Result<(), String> {
        let pairing = matches!(self.state, NetState::EndpointLookup | NetState::Activating);
        if pairing && self.pending.is_none() && self.activation.is_none() {
            return Err(format!(
                "state {:?} without credentials or activation",
                self.state
            ));
        }
        if self.state == NetState::Connecting && self.joining.is_none() {
            return Err("connecting without a network".into());
        }
        let needs_activation = matches!(
            self.state,
            NetState::MqttConnecting | NetState::Online | NetState::Offline
        );
        if needs_activation && self.activation.is_none() {
            return Err(format!("state {:?} without an activation", self.state));
        }
        Ok(())
    }

    fn join(&mut self, network: Network) -> Vec<Action> {
        self.joining = Some(network.clone());
        vec![Action::WifiConnect(network)]
    }

    fn on_wifi_connected(&mut self, clock: Clock, ssid: &str) -> Vec<Action> {
        if !matches!(self.state, NetState::Connecting | NetState::Offline) {
            return vec![log(
                Level::Warn,
                format!("joined {ssid:?} unexpectedly in state {:?}", self.state),
            )];
        }
        if self.pending.is_some() {
            self.timings.wifi_ms = Some(self.elapsed_ms(clock));
        }
        self.wifi_attempts = 0;
        self.enter(NetState::StaConnected, clock);
        let mut actions = vec![log(Level::Info, format!("joined network {ssid:?}"))];
        actions.extend(self.after_wifi(clock));
        actions
    }

    fn on_wifi_failed(&mut self, clock: Clock, code: ErrorCode) -> Vec<Action> {
        if self.state != NetState::Connecting && self.state != NetState::Offline {
            return Vec::new();
        }
        let pairing_network = (self.pending.as_ref().map(|p| p.ssid.clone()))
            .or_else(|| self.moving.as_ref().map(|n| n.ssid.clone()));
        let joining_pending = pairing_network.is_some()
            && pairing_network == self.joining.as_ref().map(|n| n.ssid.clone());
        if !joining_pending {
            // The committed network of an activated device: keep trying, with backoff.
            self.enter(NetState::Offline, clock);
            let delay = self.mqtt_backoff.next_ms();
            return vec![
                Action::SetTimer(Timer::WifiRetry, delay),
                log(
                    Level::Warn,
                    format!("network lost ({code}); retrying in {delay} ms"),
                ),
            ];
        }
        self.wifi_attempts += 1;
        self.timings.wifi_ms = Some(self.elapsed_ms(clock));
        if self.wifi_attempts < WIFI_ATTEMPTS {
            return vec![
                Action::SetTimer(Timer::WifiRetry, WIFI_RETRY_MS),
                log(
                    Level::Warn,
                    format!(
                        "joining failed ({code}), attempt {} of {WIFI_ATTEMPTS}",
                        self.wifi_attempts
                    ),
                ),
            ];
        }
        self.fail_pairing(clock, code)
    }

    fn on_wifi_lost(&mut self, clock: Clock, code: ErrorCode) -> Vec<Action> {
        match self.state {
            NetState::AwaitingCredentials | NetState::Connecting => Vec::new(),
            _ if self.pending.is_some() || self.moving.is_some() => {
                // Lost the new network mid-pairing: join it again.
                let mut actions = self.stop_work();
                self.enter(NetState::Connecting, clock);
                if let Some(network) = self.joining.clone() {
                    actions.extend(self.join(network));
                }
                actions
            }
            _ => {
                let mut actions = self.stop_work();
                self.enter(NetState::Offline, clock);
                actions.push(log(
                    Level::Warn,
                    format!("network lost ({code}); rejoining"),
                ));
                if let Some(network) = self.joining.clone().or_else(|| self.network.clone()) {
                    actions.extend(self.join(network));
                }
                actions
            }
        }
    }

    /// Ends a pairing that cannot succeed: the reason is kept, and a device that was
    /// online before goes back to its previous network (fail-safe).
    fn fail_pairing(&mut self, clock: Clock, code: ErrorCode) -> Vec<Action> {
        let failed_in = self.state;
        let mut actions = self.stop_work();
        if let Some(creds) = &self.pending {
            let phase = reports::phase_of(failed_in);
            let elapsed = Some(self.elapsed_ms(clock));
            let slot = match phase {
                Some(reports::Phase::Dns) => &mut self.timings.dns_ms,
                Some(reports::Phase::Activation) => &mut self.timings.activate_ms,
                Some(reports::Phase::Mqtt) => &mut self.timings.mqtt_ms,
                _ => &mut self.timings.wifi_ms,
            };
            if slot.is_none() {
                *slot = elapsed;
            }
            let token = creds.token.clone();
            actions.push(self.queue_report(token, Some(code), phase));
            // A refusal by the cloud: the router is still joined, so it can hear of it
            // now. A device with a previous network tells it from there, once online.
            let reached_cloud =
                matches!(failed_in, NetState::EndpointLookup | NetState::Activating);
            if reached_cloud && self.network.is_none() {
                actions.extend(self.send_report());
            }
        }
        self.last_error = Some(code);
        self.pending = None;
        self.moving = None;
        self.inflight = None;
        actions.push(Action::KvDelete(keys::PENDING));
        actions.push(log(Level::Warn, format!("pairing failed: {code}")));
        match (&self.activation, self.network.clone()) {
            (Some(_), Some(previous)) => {
                actions.push(log(
                    Level::Info,
                    format!("returning to the previous network {:?}", previous.ssid),
                ));
                self.enter(NetState::Connecting, clock);
                actions.extend(self.join(previous));
            }
            _ => {
                self.joining = None;
                self.enter(NetState::AwaitingCredentials, clock);
            }
        }
        actions
    }

    /// Stops timers and sessions of whatever was under way.
    fn stop_work(&mut self) -> Vec<Action> {
        self.inflight = None;
        let mut actions: Vec<Action> = [
            Timer::WifiRetry,
            Timer::CloudRetry,
            Timer::MqttRetry,
            Timer::RefreshCredentials,
            Timer::NetworkChange,
            Timer::EndpointRefresh,
        ]
        .into_iter()
        .map(Action::CancelTimer)
        .collect();
        if matches!(
            self.state,
            NetState::MqttConnecting | NetState::Online | NetState::Offline
        ) {
            actions.push(Action::MqttDisconnect);
        }
        actions
    }

    fn enter(&mut self, state: NetState, clock: Clock) {
        self.state = state;
        self.phase_started_ms = clock.mono_ms;
    }

    fn elapsed_ms(&self, clock: Clock) -> u32 {
        u32::try_from(clock.mono_ms.saturating_sub(self.phase_started_ms)).unwrap_or(u32::MAX)
    }
}

fn log(level: Level, line: String) -> Action {
    Action::Log(level, line)
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records always serialise")
}

#[cfg(test)]
mod tests;
