//! The device runtime: one thread owns the component instance and feeds it provider
//! events and control requests one at a time, then hands the commands it issued to the
//! providers. A trap, a missed deadline or an exhausted memory cap is logged and the
//! instance is rebuilt from `kv` (as after a reboot); the host keeps running.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_proto::bundle::Bundle;

use anyhow::Context;
use serde::Serialize;
use tether_proto::ErrorCode;
use tokio::sync::{mpsc, oneshot};

use crate::config::{HostConfig, WifiBackendKind};
use crate::home::{Home, Prepared, RuntimeSource, UpdateReport};
use crate::providers::Providers;
use crate::runtime::wit::wifi::StationState;
use crate::runtime::wit::{Event, PairingStatus};
use crate::update::Refusal;
use crate::wifi::WifiBackend;
use crate::wifi::sim::SimWifi;
use crate::wifi::wpa::WpaSupplicant;
use crate::{Instance, Runtime, RuntimeConfig};

/// What `status` reports, in the form `ctl status --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StatusView {
    /// kebab-case state; `online` when online.
    pub state: String,
    /// The last error's wire name.
    pub last_error: Option<String>,
    /// Per-phase timings in milliseconds.
    pub timings: TimingsView,
    /// Device id once activated.
    pub dev_id: Option<String>,
    /// Router network.
    pub ssid: Option<String>,
    /// Pairing component version.
    pub version: String,
}

/// Per-phase timings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TimingsView {
    /// Joining the router.
    pub wifi_ms: Option<u32>,
    /// IoT DNS.
    pub dns_ms: Option<u32>,
    /// Activation.
    pub activate_ms: Option<u32>,
    /// MQTT connect.
    pub mqtt_ms: Option<u32>,
}

impl From<PairingStatus> for StatusView {
    fn from(s: PairingStatus) -> Self {
        Self {
            state: s.state.name().to_owned(),
            last_error: s.last_error.map(|c| ErrorCode::from(c).name().to_owned()),
            timings: TimingsView {
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
}

/// Inputs of the instance thread.
pub(crate) enum Input {
    Event(Event),
    UserCfg {
        ssid: String,
        passwd: String,
        token: String,
        reply: oneshot::Sender<Result<(), ErrorCode>>,
    },
    Status(oneshot::Sender<Option<StatusView>>),
    Reset(oneshot::Sender<()>),
    /// Check a bundle; the compile happens off this thread.
    CheckUpdate {
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<(Bundle, Arc<Runtime>), Refusal>>,
    },
    /// A bundle that failed to compile.
    Refused {
        bytes: Vec<u8>,
        refusal: Refusal,
        reply: oneshot::Sender<Refusal>,
    },
    /// Swap a compiled bundle in.
    Swap {
        prepared: Box<Prepared>,
        reply: oneshot::Sender<Result<UpdateReport, Refusal>>,
    },
    /// The installed component and the update slots.
    ModuleStatus(oneshot::Sender<serde_json::Value>),
    /// About once a second: probation checks.
    Tick,
    Stop,
}

/// A running device.
pub struct Device {
    inputs: mpsc::UnboundedSender<Input>,
    channel_addr: SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("channel_addr", &self.channel_addr)
            .finish_non_exhaustive()
    }
}

impl Device {
    /// Starts the providers, the control socket and the instance thread.
    pub async fn start(config: HostConfig, runtime_config: RuntimeConfig) -> anyhow::Result<Self> {
        Self::start_with(config, RuntimeSource::Own(runtime_config)).await
    }

    /// Like [`Device::start`], with the runtime from `source`.
    pub async fn start_with(config: HostConfig, source: RuntimeSource) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("failed to create {}", config.data_dir.display()))?;
        let wifi: Arc<dyn WifiBackend> = match config.wifi.backend {
            WifiBackendKind::Sim => Arc::new(SimWifi::new(config.wifi.sim.ap.clone())),
            WifiBackendKind::WpaSupplicant => Arc::new(
                WpaSupplicant::open(&config.wifi.wpa_supplicant.ctrl_socket, &config.data_dir)
                    .await?,
            ),
        };
        let (events_tx, mut events_rx) = mpsc::unbounded_channel();
        let providers = Providers::start(wifi, config.channel.listen, events_tx).await?;
        let channel_addr = providers.channel_addr();
        let (inputs, inputs_rx) = mpsc::unbounded_channel();
        let forward = inputs.clone();
        tokio::spawn(async move {
            while let Some(event) = events_rx.recv().await {
                if forward.send(Input::Event(event)).is_err() {
                    return;
                }
            }
        });
        crate::ctl::serve(&config.ctl.socket, inputs.clone())?;
        tick(inputs.clone());
        let notices = crate::update::remote::start(
            crate::update::remote::Cloud {
                identity: config.device_identity(),
                binding: config.data_dir.join("binding.json"),
                kv_dir: config.data_dir.join("kv"),
            },
            inputs.clone(),
        );
        if let Some(dir) = config.update.watch_dir.clone() {
            crate::update::watch::start(dir, inputs.clone());
        }

        let (ready_tx, ready_rx) = oneshot::channel();
        let handle = tokio::runtime::Handle::current();
        let thread = std::thread::Builder::new()
            .name("tether-instance".into())
            .spawn(move || {
                let _guard = handle.enter();
                run(config, source, providers, inputs_rx, ready_tx, notices);
            })?;
        ready_rx
            .await
            .context("the instance thread stopped while starting")??;
        Ok(Self {
            inputs,
            channel_addr,
            thread: Some(thread),
        })
    }

    /// The data channel's bound address.
    pub fn channel_addr(&self) -> SocketAddr {
        self.channel_addr
    }

    /// The seed API.
    pub async fn user_cfg(&self, ssid: &str, passwd: &str, token: &str) -> Result<(), ErrorCode> {
        user_cfg(&self.inputs, ssid, passwd, token).await
    }

    /// Current status.
    pub async fn status(&self) -> Option<StatusView> {
        status(&self.inputs).await
    }

    /// Applies a signed bundle (see [`crate::update`]).
    pub async fn update(&self, bundle: Vec<u8>) -> Result<UpdateReport, Refusal> {
        update(&self.inputs, bundle).await
    }

    /// The installed component and the update slots.
    pub async fn module_status(&self) -> Option<serde_json::Value> {
        module_status(&self.inputs).await
    }

    /// Local factory reset: forgets the binding and waits for credentials again.
    pub async fn reset(&self) -> bool {
        reset(&self.inputs).await
    }

    /// Stops the instance thread (providers stop with the tokio runtime).
    pub fn stop(mut self) {
        let _ = self.inputs.send(Input::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Control requests, shared by [`Device`] and the control socket.
pub(crate) async fn user_cfg(
    inputs: &Inputs,
    ssid: &str,
    passwd: &str,
    token: &str,
) -> Result<(), ErrorCode> {
    let (reply, answer) = oneshot::channel();
    let input = Input::UserCfg {
        ssid: ssid.into(),
        passwd: passwd.into(),
        token: token.into(),
        reply,
    };
    inputs.send(input).map_err(|_| ErrorCode::Internal)?;
    answer.await.unwrap_or(Err(ErrorCode::Internal))
}

pub(crate) async fn status(inputs: &Inputs) -> Option<StatusView> {
    let (reply, answer) = oneshot::channel();
    inputs.send(Input::Status(reply)).ok()?;
    answer.await.ok().flatten()
}

/// Applies a bundle: checked on the instance thread, compiled on a blocking thread
/// (events keep flowing meanwhile), then swapped in on the instance thread.
pub(crate) async fn update(inputs: &Inputs, bytes: Vec<u8>) -> Result<UpdateReport, Refusal> {
    let stopping = || Refusal::Storage("the device is stopping".into());
    let started = Instant::now();
    let (reply, answer) = oneshot::channel();
    inputs
        .send(Input::CheckUpdate {
            bytes: bytes.clone(),
            reply,
        })
        .map_err(|_| stopping())?;
    let (bundle, runtime) = answer.await.map_err(|_| stopping())??;
    let component = bundle.component.clone();
    let compiled = tokio::task::spawn_blocking(move || runtime.load(&component))
        .await
        .map_err(|e| Refusal::Invalid(format!("the compile task failed: {e}")))
        .and_then(|r| r.map_err(|e| Refusal::Invalid(e.to_string())));
    let loaded = match compiled {
        Ok(loaded) => loaded,
        Err(refusal) => {
            let (reply, answer) = oneshot::channel();
            inputs
                .send(Input::Refused {
                    bytes,
                    refusal,
                    reply,
                })
                .map_err(|_| stopping())?;
            return Err(answer.await.map_err(|_| stopping())?);
        }
    };
    let prepared = Box::new(Prepared {
        bundle,
        bytes,
        loaded,
        started,
        prepare: started.elapsed(),
    });
    let (reply, answer) = oneshot::channel();
    inputs
        .send(Input::Swap { prepared, reply })
        .map_err(|_| stopping())?;
    answer.await.map_err(|_| stopping())?
}

pub(crate) async fn module_status(inputs: &Inputs) -> Option<serde_json::Value> {
    let (reply, answer) = oneshot::channel();
    inputs.send(Input::ModuleStatus(reply)).ok()?;
    answer.await.ok()
}

/// Sends [`Input::Tick`] every second until the device stops.
fn tick(inputs: Inputs) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if inputs.send(Input::Tick).is_err() {
                return;
            }
        }
    });
}

pub(crate) async fn reset(inputs: &Inputs) -> bool {
    let (reply, answer) = oneshot::channel();
    inputs.send(Input::Reset(reply)).is_ok() && answer.await.is_ok()
}

/// The sending side of the instance thread's inputs.
pub(crate) type Inputs = mpsc::UnboundedSender<Input>;

fn run(
    config: HostConfig,
    source: RuntimeSource,
    mut providers: Providers,
    mut inputs: mpsc::UnboundedReceiver<Input>,
    ready: oneshot::Sender<anyhow::Result<()>>,
    notices: mpsc::UnboundedSender<crate::update::remote::Notice>,
) {
    let mut home = match Home::boot(config, source) {
        Ok(home) => home,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut instance = match home.fresh() {
        Ok(i) => i,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    dispatch(&mut instance, &mut providers);
    while let Some(input) = inputs.blocking_recv() {
        let outcome = match input {
            Input::Stop => break,
            Input::Event(event) => {
                track_station(&mut instance, &event);
                // Update notices are the host's business; the component sees them too.
                if let Event::MqttMessage(message) = &event
                    && let Some(notice) = crate::update::remote::notice(&message.payload)
                {
                    let _ = notices.send(notice);
                }
                instance.handle(&event)
            }
            Input::UserCfg {
                ssid,
                passwd,
                token,
                reply,
            } => instance.user_cfg(&ssid, &passwd, &token).map(|r| {
                let _ = reply.send(r);
            }),
            Input::Status(reply) => instance.status().map(|s| {
                let _ = reply.send(Some(s.into()));
            }),
            Input::Reset(reply) => instance.reset().map(|()| {
                let _ = reply.send(());
            }),
            Input::CheckUpdate { bytes, reply } => {
                let _ = reply.send(home.check(&bytes));
                Ok(())
            }
            Input::Refused {
                bytes,
                refusal,
                reply,
            } => {
                let _ = reply.send(home.refused(&bytes, refusal));
                Ok(())
            }
            Input::Swap { prepared, reply } => {
                let _ = reply.send(home.swap(&mut instance, *prepared));
                Ok(())
            }
            Input::ModuleStatus(reply) => {
                let _ = reply.send(home.module_status());
                Ok(())
            }
            Input::Tick => {
                if let Err(e) = home.tick(&mut instance) {
                    tracing::error!(error = %format!("{e:#}"), "cannot roll back the pairing component");
                    return;
                }
                Ok(())
            }
        };
        if let Err(e) = outcome {
            tracing::error!(error = %e, "the pairing component failed; restarting it");
            if let Err(e) = home.recover(&mut instance, &e) {
                tracing::error!(error = %format!("{e:#}"), "cannot restart the pairing component");
                return;
            }
        }
        dispatch(&mut instance, &mut providers);
    }
}

fn dispatch(instance: &mut Instance, providers: &mut Providers) {
    for command in instance.take_commands() {
        providers.dispatch(command);
    }
}

/// Keeps the station state that `wifi.station` answers from.
fn track_station(instance: &mut Instance, event: &Event) {
    let station = match event {
        Event::WifiConnected(link) => StationState::Connected(link.clone()),
        Event::WifiFailed(_) | Event::WifiDisconnected(_) => StationState::Idle,
        _ => return,
    };
    instance.host().station = station;
}
