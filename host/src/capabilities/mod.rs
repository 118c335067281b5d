//! What the host offers the component: one `HostState` per store, holding the WASI
//! context, the key-value store, the device identity, and the outbox of [`Command`]s.
//!
//! Imports never block. Those that start work (Wi-Fi, HTTP, MQTT, channel, timers) record
//! a command and return at once; the device runtime hands the commands to its IO
//! providers, whose outcomes come back later as `pairing.handle` events. Those that are
//! local (kv, device, clocks, log) are answered on the spot.

mod commands;
mod device;
mod imports;
mod kv;

pub use commands::{Command, MqttConnect, Outbox};
pub use device::{CloudEndpoints, DeviceIdentity, Key, Signer};
pub use kv::{Kv, KvError};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::runtime::bindings::wifi::StationState;
use crate::runtime::{CpuBudget, MemoryCap};

/// Per-store state: everything the component's imports reach.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) memory_cap: MemoryCap,
    pub(crate) cpu: CpuBudget,
    kv: Kv,
    device: Signer,
    outbox: Outbox,
    /// The station's state as the Wi-Fi provider last reported it.
    pub station: StationState,
    next_request_id: u32,
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState")
            .field("outbox", &self.outbox)
            .field("station", &self.station)
            .finish_non_exhaustive()
    }
}

impl HostState {
    /// State for one instance. The component gets WASI with nothing preopened, no
    /// environment and no arguments: only the clocks, randomness and a stderr that Rust's
    /// standard library expects.
    pub fn new(kv: Kv, device: Signer, memory_cap: MemoryCap, cpu: CpuBudget) -> Self {
        Self {
            wasi: WasiCtx::builder().inherit_stderr().build(),
            table: ResourceTable::new(),
            memory_cap,
            cpu,
            kv,
            device,
            outbox: Outbox::default(),
            station: StationState::Idle,
            next_request_id: 1,
        }
    }

    /// Continues where `old` (the instance being replaced) left off: the station state
    /// and the request-id counter, so ids of requests still in flight are not reused.
    pub fn carry_from(&mut self, old: &HostState) {
        self.station = old.station.clone();
        self.next_request_id = old.next_request_id;
    }

    /// The cloud endpoints the component stored, with their CAs.
    pub fn endpoints(&self) -> Option<&CloudEndpoints> {
        self.device.endpoints()
    }

    /// Takes the commands the component issued since the last call, in order.
    pub fn take_commands(&mut self) -> Vec<Command> {
        self.outbox.take()
    }

    fn request_id(&mut self) -> u32 {
        let id = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1).max(1);
        id
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
