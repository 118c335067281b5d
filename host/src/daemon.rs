//! The device runtime: one thread owns the component instance and feeds it provider
//! events and control requests one at a time, then hands the commands it issued to the
//! providers. A trap, a missed deadline or an exhausted memory cap is logged and the
//! instance is rebuilt from `kv` (as after a reboot); the host keeps running.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{HostConfig, WifiBackendKind};
use crate::handle::{DeviceHandle, Input};
use crate::home::{Home, RuntimeSource};
use crate::providers::Providers;
use crate::runtime::wit::Event;
use crate::runtime::wit::wifi::StationState;
use crate::trust::CloudTrust;
use crate::update::remote::{self, Notice};
use crate::wifi::WifiBackend;
use crate::wifi::sim::SimWifi;
use crate::wifi::wpa::WpaSupplicant;
use crate::{Instance, RuntimeConfig};

/// Component failures (traps, missed deadlines, exhausted memory) of every device in
/// this process.
static FAILURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many times a pairing component failed and was restarted, in this process (the
/// fleet benchmark checks that healthy components never are).
pub fn component_failures() -> u64 {
    FAILURES.load(std::sync::atomic::Ordering::Relaxed)
}

/// A running device: its handle, and the instance thread it owns. It derefs to its
/// [`DeviceHandle`], so requests go the same way whoever makes them.
pub struct Device {
    handle: DeviceHandle,
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
        if config.channel.plaintext {
            tracing::warn!(
                "channel.plaintext is on: the data channel also serves protocol 1, where the \
                 Wi-Fi password and the token cross the air in clear (development only)"
            );
        }
        let wifi: Arc<dyn WifiBackend> = match config.wifi.backend {
            WifiBackendKind::Sim => Arc::new(SimWifi::new(config.wifi.sim.ap.clone())),
            WifiBackendKind::WpaSupplicant => {
                let ctrl = &config.wifi.wpa_supplicant.ctrl_socket;
                let wpa = WpaSupplicant::open(ctrl, &config.data_dir).await?;
                tracing::info!(ctrl = %ctrl.display(), "attached to wpa_supplicant");
                Arc::new(wpa)
            }
        };
        let (events_tx, mut events_rx) = mpsc::unbounded_channel();
        let trust = CloudTrust::new(config.cloud_ca.as_deref())?;
        let providers =
            Providers::start(wifi, config.channel.listen, trust.clone(), events_tx).await?;
        let channel_addr = providers.channel_addr();
        let (inputs, inputs_rx) = mpsc::unbounded_channel();
        let (outcomes, outcomes_rx) = watch::channel(None);
        let handle = DeviceHandle::new(inputs, outcomes_rx);
        let forward = handle.clone();
        tokio::spawn(async move {
            while let Some(event) = events_rx.recv().await {
                if !forward.send(Input::Event(event)) {
                    return;
                }
            }
        });
        crate::ctl::serve(&config.ctl.socket, handle.clone())?;
        tick(handle.clone());
        let notices = remote::start(
            remote::Cloud {
                identity: config.device_identity(),
                binding: config.data_dir.join("binding.json"),
                endpoints: config.data_dir.join("endpoints.json"),
                trust,
            },
            handle.clone(),
        );
        if let Some(dir) = config.update.watch_dir.clone() {
            crate::update::watch::start(dir, handle.clone());
        }

        let (ready_tx, ready_rx) = oneshot::channel();
        let tokio_handle = tokio::runtime::Handle::current();
        let wiring = Wiring {
            inputs: inputs_rx,
            ready: ready_tx,
            notices,
            outcomes,
        };
        let thread = std::thread::Builder::new()
            .name("tether-instance".into())
            .spawn(move || {
                let _guard = tokio_handle.enter();
                run(config, source, providers, wiring);
            })?;
        ready_rx
            .await
            .context("the instance thread stopped while starting")??;
        Ok(Self {
            handle,
            channel_addr,
            thread: Some(thread),
        })
    }

    /// The data channel's bound address.
    pub fn channel_addr(&self) -> SocketAddr {
        self.channel_addr
    }

    /// A handle for another task.
    pub fn handle(&self) -> DeviceHandle {
        self.handle.clone()
    }

    /// Stops the instance thread (providers stop with the tokio runtime).
    pub fn stop(mut self) {
        self.handle.send(Input::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sends [`Input::Tick`] every second until the device stops.
fn tick(handle: DeviceHandle) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if !handle.send(Input::Tick) {
                return;
            }
        }
    });
}

impl std::ops::Deref for Device {
    type Target = DeviceHandle;

    fn deref(&self) -> &DeviceHandle {
        &self.handle
    }
}

/// The instance thread's ends of the channels.
struct Wiring {
    inputs: mpsc::UnboundedReceiver<Input>,
    ready: oneshot::Sender<anyhow::Result<()>>,
    notices: mpsc::UnboundedSender<Notice>,
    outcomes: watch::Sender<Option<tether_proto::module::UpdateOutcome>>,
}

fn run(config: HostConfig, source: RuntimeSource, mut providers: Providers, wiring: Wiring) {
    let Wiring {
        mut inputs,
        ready,
        notices,
        outcomes,
    } = wiring;
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
                    && let Some(notice) = remote::notice(&message.payload)
                {
                    let _ = notices.send(notice);
                }
                let handled = instance.handle(&event);
                if let Event::ChannelData(data) = &event {
                    providers.channel_consumed(data.conn, data.data.len());
                }
                handled
            }
            Input::UserCfg {
                ssid,
                passwd,
                token,
                reply,
            } => instance
                .user_cfg(&ssid, passwd.expose(), token.expose())
                .map(|r| {
                    let _ = reply.send(r);
                }),
            Input::Status(reply) => instance.status().and_then(|s| {
                let mut status: tether_proto::status::DeviceStatus = s.into();
                status.channel = Some(instance.channel_status()?.into());
                let _ = reply.send(status);
                Ok(())
            }),
            Input::Window(secs, reply) => instance.pairing_window(secs).map(|()| {
                let _ = reply.send(());
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
            FAILURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(error = %e, "the pairing component failed; restarting it");
            if let Err(e) = home.recover(&mut instance, &e) {
                tracing::error!(error = %format!("{e:#}"), "cannot restart the pairing component");
                return;
            }
        }
        // Every input passes here: compare first, clone only on a change.
        outcomes.send_if_modified(|last| {
            let now = home.last_outcome();
            if last.as_ref() == now {
                return false;
            }
            *last = now.cloned();
            true
        });
        dispatch(&mut instance, &mut providers);
    }
}

fn dispatch(instance: &mut Instance, providers: &mut Providers) {
    // The CAs the component stored with the endpoints apply to what it starts next.
    if let Some(endpoints) = instance.host().endpoints() {
        providers.deliver_cas(&endpoints.ca);
    }
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
