//! Commands that imports record for the IO providers, and the bounded outbox holding them.
//! Secret-bearing fields are wrapped so that logging a command never leaks them.

use std::fmt;

use tether_proto::{ErrorCode, Secret};

use crate::runtime::bindings::{http, mqtt, wifi};

/// Most commands one call into the component may queue; a component that issues more is
/// refused with `busy` rather than growing the host's memory without bound.
pub const MAX_PENDING_COMMANDS: usize = 256;

/// MQTT connection settings with the password kept secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConnect {
    /// Broker address.
    pub url: String,
    /// Client id.
    pub client_id: String,
    /// Username.
    pub username: String,
    /// Password (a JWT).
    pub password: Secret,
    /// Keep-alive interval in seconds.
    pub keep_alive_secs: u16,
}

/// Work the component asked the host to start.
#[derive(Clone)]
pub enum Command {
    /// Scan for access points.
    WifiScan,
    /// Join a network.
    WifiConnect {
        /// Network name.
        ssid: String,
        /// Password.
        passwd: Secret,
    },
    /// Drop the station link.
    WifiDisconnect,
    /// Start the soft access point.
    WifiStartAp(wifi::SoftAp),
    /// Stop the soft access point.
    WifiStopAp,
    /// Start an HTTP request.
    HttpStart {
        /// Id the outcome event will carry.
        id: u32,
        /// The request (its body may hold a pairing token: never logged).
        request: http::Request,
    },
    /// Abandon an HTTP request.
    HttpCancel(u32),
    /// Connect the MQTT session.
    MqttConnect(MqttConnect),
    /// Subscribe.
    MqttSubscribe {
        /// Topic filter.
        topic: String,
        /// Delivery guarantee.
        qos: mqtt::Qos,
    },
    /// Publish.
    MqttPublish {
        /// Topic.
        topic: String,
        /// Payload.
        payload: Vec<u8>,
        /// Delivery guarantee.
        qos: mqtt::Qos,
    },
    /// End the MQTT session.
    MqttDisconnect,
    /// Send bytes on a channel connection.
    ChannelSend {
        /// Connection.
        conn: u32,
        /// Bytes.
        data: Vec<u8>,
    },
    /// Close a channel connection.
    ChannelClose(u32),
    /// Arm a timer.
    TimerSet {
        /// Timer name.
        id: u32,
        /// Delay.
        after_ms: u32,
    },
    /// Disarm a timer.
    TimerCancel(u32),
}

impl fmt::Debug for Command {
    /// Names and sizes only: passwords, tokens in bodies and payloads stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::WifiScan => f.write_str("WifiScan"),
            Command::WifiConnect { ssid, .. } => write!(f, "WifiConnect({ssid:?})"),
            Command::WifiDisconnect => f.write_str("WifiDisconnect"),
            Command::WifiStartAp(ap) => write!(f, "WifiStartAp({:?})", ap.ssid),
            Command::WifiStopAp => f.write_str("WifiStopAp"),
            Command::HttpStart { id, request } => write!(
                f,
                "HttpStart(#{id} {:?} {}, {} body bytes)",
                request.method,
                request.url,
                request.body.len()
            ),
            Command::HttpCancel(id) => write!(f, "HttpCancel(#{id})"),
            Command::MqttConnect(c) => write!(f, "MqttConnect({} as {})", c.url, c.client_id),
            Command::MqttSubscribe { topic, qos } => write!(f, "MqttSubscribe({topic} {qos:?})"),
            Command::MqttPublish { topic, payload, .. } => {
                write!(f, "MqttPublish({topic}, {} bytes)", payload.len())
            }
            Command::MqttDisconnect => f.write_str("MqttDisconnect"),
            Command::ChannelSend { conn, data } => {
                write!(f, "ChannelSend(#{conn}, {} bytes)", data.len())
            }
            Command::ChannelClose(conn) => write!(f, "ChannelClose(#{conn})"),
            Command::TimerSet { id, after_ms } => write!(f, "TimerSet({id}, {after_ms} ms)"),
            Command::TimerCancel(id) => write!(f, "TimerCancel({id})"),
        }
    }
}

/// The queue of commands not yet handed to providers.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: Vec<Command>,
}

impl Outbox {
    /// Queues a command, refusing with `busy` when the queue is full.
    pub fn push(&mut self, command: Command) -> Result<(), ErrorCode> {
        if self.queue.len() >= MAX_PENDING_COMMANDS {
            return Err(ErrorCode::Busy);
        }
        self.queue.push(command);
        Ok(())
    }

    /// Takes every queued command, oldest first.
    pub fn take(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbox_refuses_with_busy_when_full_and_empties_on_take() {
        let mut outbox = Outbox::default();
        for id in 0..MAX_PENDING_COMMANDS {
            outbox
                .push(Command::TimerCancel(id as u32))
                .expect("room left");
        }
        assert_eq!(outbox.push(Command::WifiScan), Err(ErrorCode::Busy));
        assert_eq!(outbox.take().len(), MAX_PENDING_COMMANDS);
        assert!(outbox.push(Command::WifiScan).is_ok());
    }

    #[test]
    fn debug_output_carries_no_secrets_or_bodies() {
        let commands = [
            Command::WifiConnect {
                ssid: "home".into(),
                passwd: Secret::new("hunter22"),
            },
            Command::MqttConnect(MqttConnect {
                url: "127.0.0.1:1883".into(),
                client_id: "d-1".into(),
                username: "d-1".into(),
                password: Secret::new("eyJhbGciOi.jwt"),
                keep_alive_secs: 60,
            }),
            Command::HttpStart {
                id: 3,
                request: http::Request {
                    method: http::Method::Post,
                    url: "http://cloud/v1/devices/activate".into(),
                    headers: vec![],
                    body: br#"{"token":"EUab12CD34wxYZ"}"#.to_vec(),
                    timeout_ms: 5_000,
                },
            },
        ];
        let shown = format!("{commands:?}");
        for secret in ["hunter22", "eyJhbGciOi", "wxYZ"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
