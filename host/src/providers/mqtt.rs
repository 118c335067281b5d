//! The device's one MQTT session (rumqttc), over TLS for `mqtts://` with the device's
//! cloud trust. The provider never reconnects by itself: a
//! lost or refused session is reported, and the component decides what to do.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event as MqttEvent, MqttOptions,
    NetworkOptions, Packet, QoS, TlsConfiguration, Transport,
};
use tether_proto::ErrorCode;
use tokio::task::JoinHandle;

use super::{Events, wit};
use crate::capabilities::MqttConnect;
use crate::runtime::wit::Event;
use crate::runtime::wit::mqtt::{DisconnectInfo, Message, Qos};
use crate::trust::CloudTrust;
use crate::wifi::WifiBackend;

/// Largest packet either way.
const MAX_PACKET: usize = 64 * 1024;

pub struct MqttProvider {
    wifi: Arc<dyn WifiBackend>,
    events: Events,
    session: Option<(AsyncClient, JoinHandle<()>)>,
}

impl MqttProvider {
    pub fn new(wifi: Arc<dyn WifiBackend>, events: Events) -> Self {
        Self {
            wifi,
            events,
            session: None,
        }
    }

    /// Starts a session (over TLS for `mqtts://`, trusting what `trust` does).
    pub fn connect(&mut self, options: MqttConnect, trust: &CloudTrust) {
        self.disconnect();
        let lost = |code: ErrorCode, message: String| {
            Event::MqttDisconnected(DisconnectInfo {
                code: wit(code),
                message,
            })
        };
        if !self.wifi.link_up() {
            let _ = self.events.send(lost(
                ErrorCode::NetworkUnreachable,
                "no station link".into(),
            ));
            return;
        }
        let Some((tls, host, port)) = broker(&options.url) else {
            let _ = self.events.send(lost(
                ErrorCode::InvalidParm,
                format!("not a broker address: {}", options.url),
            ));
            return;
        };
        let transport = match (tls, trust.tls()) {
            (false, _) if trust.pinned() => {
                let _ = self.events.send(lost(
                    ErrorCode::TlsFailed,
                    "refused: this device pins a cloud CA and talks mqtts:// only".into(),
                ));
                return;
            }
            (false, _) => Transport::Tcp,
            (true, Some(config)) => Transport::tls_with_config(TlsConfiguration::Rustls(config)),
            (true, None) => {
                let _ = self.events.send(lost(
                    ErrorCode::TlsFailed,
                    "no CA to verify the broker with: set cloud_ca".into(),
                ));
                return;
            }
        };
        let mut mqtt = MqttOptions::new(options.client_id, host, port);
        mqtt.set_transport(transport);
        mqtt.set_credentials(options.username, options.password.expose());
        mqtt.set_keep_alive(Duration::from_secs(u64::from(
            options.keep_alive_secs.max(5),
        )));
        mqtt.set_max_packet_size(MAX_PACKET, MAX_PACKET);
        let (client, mut eventloop) = AsyncClient::new(mqtt, 64);
        // Reports and acks are small packets sent one at a time: no Nagle delay.
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let events = self.events.clone();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                        let _ = events.send(Event::MqttConnected);
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                        let _ = events.send(Event::MqttMessage(Message {
                            topic: p.topic,
                            payload: p.payload.to_vec(),
                        }));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let code = match &e {
                            ConnectionError::ConnectionRefused(
                                ConnectReturnCode::BadUserNamePassword
                                | ConnectReturnCode::NotAuthorized,
                            ) => ErrorCode::MqttAuthFailed,
                            ConnectionError::Tls(_) => ErrorCode::TlsFailed,
                            e if crate::trust::is_tls_failure(e) => ErrorCode::TlsFailed,
                            _ => ErrorCode::NetworkUnreachable,
                        };
                        let _ = events.send(lost(code, e.to_string()));
                        return;
                    }
                }
            }
        });
        self.session = Some((client, task));
    }

    pub fn subscribe(&mut self, topic: String, qos: Qos) {
        if let Some((client, _)) = &self.session
            && let Err(e) = client.try_subscribe(topic, qos_of(qos))
        {
            tracing::warn!(error = %e, "MQTT subscribe not queued");
        }
    }

    pub fn publish(&mut self, topic: String, payload: Vec<u8>, qos: Qos) {
        if let Some((client, _)) = &self.session
            && let Err(e) = client.try_publish(topic, qos_of(qos), false, payload)
        {
            tracing::warn!(error = %e, "MQTT publish not queued");
        }
    }

    /// Ends the session without an event.
    pub fn disconnect(&mut self) {
        if let Some((client, task)) = self.session.take() {
            let _ = client.try_disconnect();
            task.abort();
        }
    }
}

impl Drop for MqttProvider {
    /// A stopped device leaves the broker at once rather than at its keep-alive.
    fn drop(&mut self) {
        self.disconnect();
    }
}

fn qos_of(qos: Qos) -> QoS {
    match qos {
        Qos::AtMostOnce => QoS::AtMostOnce,
        Qos::AtLeastOnce => QoS::AtLeastOnce,
    }
}

/// Whether the address asks for TLS, and its host and port: `host:port`,
/// `mqtt://host:port` or `mqtts://host:port`.
fn broker(url: &str) -> Option<(bool, String, u16)> {
    let (tls, rest) = match url.strip_prefix("mqtts://") {
        Some(rest) => (true, rest),
        None => (false, url.strip_prefix("mqtt://").unwrap_or(url)),
    };
    let (host, port) = rest.rsplit_once(':')?;
    Some((
        tls,
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::broker;

    #[test]
    fn broker_addresses_parse() {
        assert_eq!(
            broker("127.0.0.1:1883"),
            Some((false, "127.0.0.1".into(), 1883))
        );
        assert_eq!(
            broker("mqtt://broker.example:1883"),
            Some((false, "broker.example".into(), 1883))
        );
        assert_eq!(
            broker("mqtts://broker.example:8883"),
            Some((true, "broker.example".into(), 8883))
        );
        assert_eq!(broker("[::1]:1883"), Some((false, "::1".into(), 1883)));
        assert_eq!(broker("broker"), None);
    }
}
