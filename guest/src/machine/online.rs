//! The MQTT phase: connecting with the activation's login, committing the network once
//! online (fail-safe: new Wi-Fi credentials are kept only after they brought the device
//! online), data-point commands and reports, credential renewal, and unbind or reset
//! from the cloud.

use tether_proto::ErrorCode;
use tether_proto::mqtt::{Envelope, Protocol};

use super::{Action, Clock, Level, Machine, NetState, Timer, keys, log, to_json};

impl Machine {
    pub(super) fn connect_mqtt(&mut self) -> Vec<Action> {
        let tls = self.tls();
        match &self.activation {
            Some(activation) => {
                let mut activation = activation.clone();
                // A TLS device names the scheme, so the host never connects in clear.
                if tls && !activation.mqtt_url.contains("://") {
                    activation.mqtt_url = format!("mqtts://{}", activation.mqtt_url);
                }
                vec![Action::MqttConnect(activation)]
            }
            None => Vec::new(),
        }
    }

    pub(super) fn on_mqtt_connected(&mut self, clock: Clock) -> Vec<Action> {
        if !matches!(self.state, NetState::MqttConnecting | NetState::Offline) {
            return Vec::new();
        }
        let Some(activation) = self.activation.clone() else {
            return Vec::new();
        };
        let mut actions = Vec::new();
        let moved = self.moving.take().is_some();
        if moved {
            actions.push(Action::CancelTimer(Timer::NetworkChange));
        }
        let paired = self.pending.take();
        if paired.is_some() || moved {
            self.timings.mqtt_ms = Some(self.elapsed_ms(clock));
            // Online with the new credentials: only now do they replace the old ones.
            if let Some(network) = self.joining.clone() {
                actions.push(Action::KvSet(keys::NETWORK, to_json(&network)));
                self.network = Some(network);
            }
            actions.push(Action::KvDelete(keys::PENDING));
            self.last_error = None;
        }
        if self.last_error == Some(ErrorCode::TlsFailed) {
            self.last_error = None;
        }
        self.mqtt_backoff.reset();
        self.enter(NetState::Online, clock);
        actions.push(Action::MqttSubscribe(activation.topic_in.clone()));
        if !self.data_points.is_empty() {
            actions.push(self.report(clock, serde_json::Value::Object(self.data_points.clone())));
        }
        actions.push(Action::SetTimer(
            Timer::RefreshCredentials,
            self.refresh_delay_ms(clock),
        ));
        actions.push(self.plan_endpoint_refresh(clock));
        actions.push(log(Level::Info, format!("online as {}", activation.dev_id)));
        if let Some(creds) = paired {
            actions.push(self.queue_report(creds.token, None, None));
        }
        actions.extend(self.send_report());
        actions
    }

    /// The session ended, or an attempt to open one failed (also when offline: a failed
    /// reconnect must schedule the next one).
    pub(super) fn on_mqtt_lost(&mut self, clock: Clock, code: ErrorCode) -> Vec<Action> {
        if !matches!(
            self.state,
            NetState::MqttConnecting | NetState::Online | NetState::Offline
        ) {
            return Vec::new();
        }
        if self.moving.is_some() {
            // The new network does not reach the broker: back to the old one.
            return self.fail_pairing(clock, code);
        }
        if self.state == NetState::Online && matches!(self.inflight, Some((super::Purpose::Dns, _)))
        {
            // A background lookup's answer would race the reconnect: it is dropped.
            self.inflight = None;
        }
        self.enter(NetState::Offline, clock);
        if code == ErrorCode::TlsFailed {
            // Shown in the status until the device is online again; retried over TLS only,
            // after looking up the endpoints and their CAs again.
            self.last_error = Some(code);
            self.endpoints_stale();
        }
        let mut actions = vec![
            Action::CancelTimer(Timer::RefreshCredentials),
            Action::CancelTimer(Timer::EndpointRefresh),
        ];
        if code == ErrorCode::MqttAuthFailed {
            actions.push(log(
                Level::Warn,
                "the broker refused the credentials; renewing them".into(),
            ));
            actions.extend(self.refresh_credentials());
        } else {
            let delay = self.mqtt_backoff.next_ms();
            actions.push(Action::SetTimer(Timer::MqttRetry, delay));
            actions.push(log(
                Level::Warn,
                format!("MQTT session lost ({code}); reconnecting in {delay} ms"),
            ));
        }
        actions
    }

    pub(super) fn on_mqtt_message(
        &mut self,
        clock: Clock,
        topic: &str,
        payload: &[u8],
    ) -> Vec<Action> {
        let ours = self
            .activation
            .as_ref()
            .is_some_and(|a| a.topic_in == topic);
        if !ours || self.state != NetState::Online {
            return Vec::new();
        }
        let envelope: Envelope = match serde_json::from_slice(payload) {
            Ok(e) => e,
            Err(e) => {
                return vec![log(
                    Level::Warn,
                    format!("ignored a malformed message: {e}"),
                )];
            }
        };
        match envelope.protocol {
            Protocol::DpCommand => self.on_command(clock, envelope.data),
            Protocol::Unbind => self.unbind(clock, false, "unbound by the cloud"),
            Protocol::Reset => self.unbind(clock, true, "reset by the cloud"),
            Protocol::ComponentUpdate => {
                vec![log(Level::Info, "a component update is available".into())]
            }
            other => vec![log(
                Level::Info,
                format!("ignored protocol {}", other.number()),
            )],
        }
    }

    /// Applies data points, keeps them, and reports the new values back.
    fn on_command(&mut self, clock: Clock, data: serde_json::Value) -> Vec<Action> {
        let serde_json::Value::Object(points) = data else {
            return vec![log(
                Level::Warn,
                "ignored a command whose data is not an object".into(),
            )];
        };
        for (id, value) in &points {
            self.data_points.insert(id.clone(), value.clone());
        }
        vec![
            Action::KvSet(keys::DATA_POINTS, to_json(&self.data_points)),
            self.report(clock, serde_json::Value::Object(points)),
        ]
    }

    fn report(&self, clock: Clock, data: serde_json::Value) -> Action {
        let topic = self
            .activation
            .as_ref()
            .map(|a| a.topic_out.clone())
            .unwrap_or_default();
        let envelope = Envelope {
            protocol: Protocol::DpReport,
            t: clock.unix,
            data,
        };
        Action::MqttPublish {
            topic,
            payload: to_json(&envelope),
        }
    }

    /// Forgets the activation (and with `reset_all` the network and data points too), back
    /// to awaiting credentials.
    pub(super) fn unbind(&mut self, clock: Clock, reset_all: bool, why: &str) -> Vec<Action> {
        let mut actions = self.stop_work();
        actions.extend(self.forget_activation());
        if reset_all {
            self.data_points.clear();
            self.network = None;
            actions.push(Action::KvDelete(keys::DATA_POINTS));
            actions.push(Action::KvDelete(keys::NETWORK));
        }
        self.pending = None;
        self.enter(NetState::AwaitingCredentials, clock);
        actions.push(log(Level::Info, format!("{why}: awaiting credentials")));
        actions
    }

    pub(super) fn forget_activation(&mut self) -> Vec<Action> {
        self.activation = None;
        vec![Action::SetBinding(None), Action::KvDelete(keys::ACTIVATION)]
    }
}
