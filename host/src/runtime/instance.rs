//! One running instance of a pairing component: typed calls into its `pairing` export,
//! each under the call deadline, with failures turned into [`RuntimeError`]s. After a
//! failure the instance refuses further calls, since a trapped component's state cannot be
//! trusted; the runtime can instantiate a fresh one.

use tether_proto::ErrorCode;
use wasmtime::{PoolConcurrencyLimitError, Store, Trap};

use super::bindings::Pairing;
use super::bindings::export::{ChannelState, Event, PairingStatus};
use super::limits::MemoryCapExceeded;
use super::{RuntimeConfig, RuntimeError};
use crate::capabilities::{Command, HostState};

/// A live component instance and its store.
pub struct Instance {
    store: Store<HostState>,
    pairing: Pairing,
    config: RuntimeConfig,
    poisoned: Option<RuntimeError>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Instance {
    pub(super) fn new(store: Store<HostState>, pairing: Pairing, config: RuntimeConfig) -> Self {
        Self {
            store,
            pairing,
            config,
            poisoned: None,
        }
    }

    /// `init`: start, restoring from a snapshot if given. `Ok(Err(reason))` is the
    /// component refusing the snapshot.
    pub fn init(&mut self, snapshot: Option<&[u8]>) -> Result<Result<(), String>, RuntimeError> {
        self.call(|p, s| p.pairing().call_init(s, snapshot))
    }

    /// `user-cfg`: the seed API. `Ok(Err(code))` is the component refusing the arguments.
    pub fn user_cfg(
        &mut self,
        ssid: &str,
        passwd: &str,
        token: &str,
    ) -> Result<Result<(), ErrorCode>, RuntimeError> {
        let result = self.call(|p, s| p.pairing().call_user_cfg(s, ssid, passwd, token))?;
        Ok(result.map_err(ErrorCode::from))
    }

    /// `handle`: feeds one event.
    pub fn handle(&mut self, event: &Event) -> Result<(), RuntimeError> {
        self.call(|p, s| p.pairing().call_handle(s, event))
    }

    /// `status`.
    pub fn status(&mut self) -> Result<PairingStatus, RuntimeError> {
        self.call(|p, s| p.pairing().call_status(s))
    }

    /// The data channel's guard and pairing window.
    pub fn channel_status(&mut self) -> Result<ChannelState, RuntimeError> {
        self.call(|p, s| p.pairing().call_channel_status(s))
    }

    /// `snapshot`.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, RuntimeError> {
        self.call(|p, s| p.pairing().call_snapshot(s))
    }

    /// `health`: `Ok(Err(reason))` is the component reporting itself unhealthy.
    pub fn health(&mut self) -> Result<Result<(), String>, RuntimeError> {
        self.call(|p, s| p.pairing().call_health(s))
    }

    /// `reset`: local factory reset.
    pub fn reset(&mut self) -> Result<(), RuntimeError> {
        self.call(|p, s| p.pairing().call_reset(s))
    }

    /// Opens the pairing window for `secs` seconds, or closes it.
    pub fn pairing_window(&mut self, secs: Option<u32>) -> Result<(), RuntimeError> {
        match secs {
            Some(secs) => self.call(|p, s| p.pairing().call_open_window(s, secs)),
            None => self.call(|p, s| p.pairing().call_close_window(s)),
        }
    }

    /// Commands the component issued since the last call, oldest first.
    pub fn take_commands(&mut self) -> Vec<Command> {
        self.store.data_mut().take_commands()
    }

    /// The host state, for the providers that report into it.
    pub fn host(&mut self) -> &mut HostState {
        self.store.data_mut()
    }

    /// Whether an earlier call failed, making the instance unusable.
    pub fn failure(&self) -> Option<&RuntimeError> {
        self.poisoned.as_ref()
    }

    fn call<R>(
        &mut self,
        f: impl FnOnce(&Pairing, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, RuntimeError> {
        if let Some(earlier) = &self.poisoned {
            return Err(RuntimeError::Poisoned(earlier.to_string()));
        }
        let ticks = self.store.data_mut().cpu.start();
        self.store.set_epoch_deadline(ticks);
        f(&self.pairing, &mut self.store).map_err(|e| {
            let err = classify(&e, &self.config);
            self.poisoned = Some(err.clone());
            err
        })
    }
}

/// Names what stopped a call.
pub(super) fn classify(error: &wasmtime::Error, config: &RuntimeConfig) -> RuntimeError {
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return RuntimeError::DeadlineExceeded(config.call_deadline);
    }
    if let Some(cap) = error
        .chain()
        .find_map(|e| e.downcast_ref::<MemoryCapExceeded>())
    {
        return RuntimeError::MemoryExhausted { cap: cap.cap };
    }
    if error.chain().any(|e| e.is::<PoolConcurrencyLimitError>()) {
        return RuntimeError::NoSlot(format!("{error:#}"));
    }
    RuntimeError::Trap(format!("{error:#}"))
}
