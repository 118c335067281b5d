//! The IO providers that carry out the component's commands and post the outcomes back
//! as events: Wi-Fi (through a backend), HTTP, MQTT, the data channel and timers. They
//! run on tokio; the instance never waits for them.

mod channel;
pub(crate) mod http;
mod mqtt;
mod timers;

use std::net::SocketAddr;
use std::sync::Arc;

use tether_proto::ErrorCode;
use tokio::sync::mpsc::UnboundedSender;

pub use channel::ChannelServer;

use crate::capabilities::Command;
use crate::runtime::wit::{Event, WitErrorCode};
use crate::trust::CloudTrust;
use crate::wifi::WifiBackend;

/// Where providers post events.
pub type Events = UnboundedSender<Event>;

/// All providers of one device.
pub struct Providers {
    wifi: Arc<dyn WifiBackend>,
    http: http::HttpProvider,
    mqtt: mqtt::MqttProvider,
    /// What cloud connections trust; HTTP and MQTT take it as they start.
    trust: CloudTrust,
    channel: ChannelServer,
    timers: timers::Timers,
    events: Events,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("channel", &self.channel.addr())
            .finish_non_exhaustive()
    }
}

impl Providers {
    /// Starts the providers; the channel listens on `channel_listen`, and the cloud
    /// connections trust what `trust` does.
    pub async fn start(
        wifi: Arc<dyn WifiBackend>,
        channel_listen: SocketAddr,
        trust: CloudTrust,
        events: Events,
    ) -> anyhow::Result<Self> {
        let channel = ChannelServer::start(channel_listen, events.clone()).await?;
        Ok(Self {
            http: http::HttpProvider::new(wifi.clone(), events.clone()),
            mqtt: mqtt::MqttProvider::new(wifi.clone(), events.clone()),
            trust,
            timers: timers::Timers::new(events.clone()),
            wifi,
            channel,
            events,
        })
    }

    /// Takes the CAs IoT DNS delivered (as the component stored them with the endpoints)
    /// for the connections opened from now on.
    pub fn deliver_cas(&mut self, cas: &[String]) {
        if self.trust.deliver(cas) {
            tracing::info!(cas = cas.len(), "the cloud's CAs from IoT DNS are trusted");
        }
    }

    /// The component has taken `n` bytes of channel connection `conn`.
    pub fn channel_consumed(&self, conn: u32, n: usize) {
        self.channel.consumed(conn, n);
    }

    /// The data channel's bound address.
    pub fn channel_addr(&self) -> SocketAddr {
        self.channel.addr()
    }

    /// Starts the work a command asks for.
    pub fn dispatch(&mut self, command: Command) {
        tracing::debug!(?command, "dispatch");
        match command {
            Command::WifiConnect { ssid, passwd } => {
                let (wifi, events) = (self.wifi.clone(), self.events.clone());
                tokio::spawn(async move {
                    let event = match wifi.connect(&ssid, passwd.expose()).await {
                        Ok(link) => Event::WifiConnected(link),
                        Err(code) => Event::WifiFailed(code.into()),
                    };
                    let _ = events.send(event);
                });
            }
            Command::WifiDisconnect => {
                let (wifi, events) = (self.wifi.clone(), self.events.clone());
                tokio::spawn(async move {
                    wifi.disconnect().await;
                    let _ = events.send(Event::WifiDisconnected(
                        ErrorCode::NetworkUnreachable.into(),
                    ));
                });
            }
            Command::WifiScan => {
                let (wifi, events) = (self.wifi.clone(), self.events.clone());
                tokio::spawn(async move {
                    let aps = wifi.scan().await.unwrap_or_default();
                    let _ = events.send(Event::WifiScanDone(aps));
                });
            }
            Command::WifiStartAp(ap) => {
                let wifi = self.wifi.clone();
                tokio::spawn(async move {
                    if let Err(code) = wifi.start_ap(ap).await {
                        tracing::warn!(%code, "soft AP failed to start");
                    }
                });
            }
            Command::WifiStopAp => {
                let wifi = self.wifi.clone();
                tokio::spawn(async move { wifi.stop_ap().await });
            }
            Command::HttpStart { id, request } => self.http.start(id, request, &self.trust),
            Command::HttpCancel(id) => self.http.cancel(id),
            Command::MqttConnect(options) => self.mqtt.connect(options, &self.trust),
            Command::MqttSubscribe { topic, qos } => self.mqtt.subscribe(topic, qos),
            Command::MqttPublish {
                topic,
                payload,
                qos,
            } => self.mqtt.publish(topic, payload, qos),
            Command::MqttDisconnect => self.mqtt.disconnect(),
            Command::ChannelSend { conn, data } => self.channel.send(conn, data),
            Command::ChannelClose(conn) => self.channel.close(conn),
            Command::TimerSet { id, after_ms } => self.timers.set(id, after_ms),
            Command::TimerCancel(id) => self.timers.cancel(id),
        }
    }
}

/// The WIT form of a code.
fn wit(code: ErrorCode) -> WitErrorCode {
    code.into()
}
