//! `DeviceHandle`: the one way into a running device. The control socket, the update
//! tasks and the embedding program each hold a clone; every request becomes an
//! [`Input`] for the instance thread, which answers on a oneshot channel.

use std::sync::Arc;
use std::time::Instant;

use tether_proto::bundle::Bundle;
use tether_proto::module::{ModuleStatus, UpdateOutcome, UpdateReport};
use tether_proto::status::DeviceStatus;
use tether_proto::{ErrorCode, Secret};
use tokio::sync::{mpsc, oneshot, watch};

use crate::Runtime;
use crate::home::Prepared;
use crate::runtime::wit::Event;
use crate::update::Refusal;

/// What the instance thread is asked to do.
pub(crate) enum Input {
    Event(Event),
    UserCfg {
        ssid: String,
        passwd: Secret,
        token: Secret,
        reply: oneshot::Sender<Result<(), ErrorCode>>,
    },
    Status(oneshot::Sender<DeviceStatus>),
    Reset(oneshot::Sender<()>),
    /// Open the pairing window for so many seconds, or close it.
    Window(Option<u32>, oneshot::Sender<()>),
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
    ModuleStatus(oneshot::Sender<ModuleStatus>),
    /// About once a second: probation checks.
    Tick,
    Stop,
}

/// A cloneable handle on a running device. Every call fails (with `internal`, `None` or
/// a storage refusal) once the device has stopped.
#[derive(Clone)]
pub struct DeviceHandle {
    inputs: mpsc::UnboundedSender<Input>,
    outcomes: watch::Receiver<Option<UpdateOutcome>>,
}

impl std::fmt::Debug for DeviceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceHandle")
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

impl DeviceHandle {
    pub(crate) fn new(
        inputs: mpsc::UnboundedSender<Input>,
        outcomes: watch::Receiver<Option<UpdateOutcome>>,
    ) -> Self {
        Self { inputs, outcomes }
    }

    /// Whether the device has stopped.
    pub fn is_stopped(&self) -> bool {
        self.inputs.is_closed()
    }

    /// Hands the instance thread an input; false once it has stopped.
    pub(crate) fn send(&self, input: Input) -> bool {
        self.inputs.send(input).is_ok()
    }

    /// The seed API: router credentials and a pairing token.
    pub async fn user_cfg(&self, ssid: &str, passwd: &str, token: &str) -> Result<(), ErrorCode> {
        let (reply, answer) = oneshot::channel();
        let input = Input::UserCfg {
            ssid: ssid.to_owned(),
            passwd: Secret::new(passwd),
            token: Secret::new(token),
            reply,
        };
        if !self.send(input) {
            return Err(ErrorCode::Internal);
        }
        answer.await.unwrap_or(Err(ErrorCode::Internal))
    }

    /// The device's pairing status; `None` once it has stopped.
    pub async fn status(&self) -> Option<DeviceStatus> {
        let (reply, answer) = oneshot::channel();
        self.send(Input::Status(reply)).then_some(())?;
        answer.await.ok()
    }

    /// Local factory reset: forgets the binding and waits for credentials again.
    pub async fn reset(&self) -> bool {
        let (reply, answer) = oneshot::channel();
        self.send(Input::Reset(reply)) && answer.await.is_ok()
    }

    /// Opens the data channel's pairing window for `secs` seconds, or closes it with
    /// `None`.
    pub async fn pairing_window(&self, secs: Option<u32>) -> bool {
        let (reply, answer) = oneshot::channel();
        self.send(Input::Window(secs, reply)) && answer.await.is_ok()
    }

    /// The component in use and the update slots; `None` once the device has stopped.
    pub async fn module_status(&self) -> Option<ModuleStatus> {
        let (reply, answer) = oneshot::channel();
        self.send(Input::ModuleStatus(reply)).then_some(())?;
        answer.await.ok()
    }

    /// Every new update outcome, as the instance thread records it.
    pub fn outcomes(&self) -> watch::Receiver<Option<UpdateOutcome>> {
        self.outcomes.clone()
    }

    /// Applies a signed bundle: checked on the instance thread, compiled on a blocking
    /// thread (events keep flowing meanwhile), then swapped in on the instance thread.
    pub async fn update(&self, bytes: Vec<u8>) -> Result<UpdateReport, Refusal> {
        let stopping = || Refusal::Storage("the device is stopping".into());
        let started = Instant::now();
        let (reply, answer) = oneshot::channel();
        let check = Input::CheckUpdate {
            bytes: bytes.clone(),
            reply,
        };
        if !self.send(check) {
            return Err(stopping());
        }
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
                let refused = Input::Refused {
                    bytes,
                    refusal,
                    reply,
                };
                if !self.send(refused) {
                    return Err(stopping());
                }
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
        if !self.send(Input::Swap { prepared, reply }) {
            return Err(stopping());
        }
        answer.await.map_err(|_| stopping())?
    }
}
