//! The Wasmtime runtime for the pairing component, sized for small boards: one engine with
//! a pooling allocator for a few instances, a CPU-time budget on every call (checked at
//! epoch interruptions), a memory cap per instance, and `instantiate_pre` done once per
//! component.
//! A trap, a missed deadline or an exhausted cap comes back as a [`RuntimeError`]; the
//! host never aborts and can instantiate again.

pub(crate) mod bindings;
mod cpu;
mod epoch;
mod instance;
mod limits;
#[cfg(not(feature = "compiler"))]
mod precompiled;
mod wasi;

use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

pub use instance::Instance;

/// The WIT types the host and its callers exchange with the component.
pub mod wit {
    pub use super::bindings::export::*;
    pub use super::bindings::{WitErrorCode, http, mqtt, wifi};
}
pub use cpu::CpuBudget;
pub use limits::{MemoryCap, MemoryCapExceeded};

use crate::capabilities::HostState;
use bindings::{Pairing, PairingPre};

/// The WIT world every pairing component must implement.
pub const WORLD: &str = tether_proto::bundle::PAIRING_WORLD;

/// Tunables of the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Linear memory cap per instance, in bytes.
    pub memory_cap: usize,
    /// Budget of every call into a component, instantiation included, in CPU time of
    /// the calling thread: time spent waiting for a core does not count, so a busy board
    /// does not stop a healthy component. The longest legitimate call, the data
    /// channel's SPAKE2+ step, takes about 10 ms of CPU.
    pub call_deadline: Duration,
    /// How many instances may exist at once (a running one plus an update candidate,
    /// with room to spare).
    pub instance_slots: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            memory_cap: 16 << 20,
            call_deadline: Duration::from_secs(1),
            instance_slots: 4,
        }
    }
}

/// Why a component could not be loaded or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The call ran past its deadline and was interrupted.
    #[error(
        "the component used more than its {0:?} of CPU time in one call (its deadline) and was stopped"
    )]
    DeadlineExceeded(Duration),
    /// The instance tried to grow its memory past the cap.
    #[error("the component tried to use more than its {cap} byte memory cap and was stopped")]
    MemoryExhausted {
        /// The cap in bytes.
        cap: usize,
    },
    /// The component trapped (a panic, an unreachable, a bad memory access...).
    #[error("the component trapped: {0}")]
    Trap(String),
    /// The instance failed before and may not be entered again.
    #[error(
        "the component instance is unusable after an earlier failure ({0}); instantiate it again"
    )]
    Poisoned(String),
    /// The bytes are not a component of the pairing world.
    #[error("not a valid pairing component: {0}")]
    Invalid(String),
    /// Every instance slot is in use.
    #[error("no instance slot is free: {0}")]
    NoSlot(String),
    /// The engine could not be set up.
    #[error("failed to set up the runtime: {0}")]
    Setup(String),
}

/// A compiled component, checked against the world and pre-instantiated.
#[derive(Clone)]
pub struct LoadedComponent {
    pre: PairingPre<HostState>,
    component: Component,
    /// Size of the component in bytes.
    pub size: usize,
    /// How long compiling and linking took.
    pub compile_time: Duration,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("size", &self.size)
            .field("compile_time", &self.compile_time)
            .finish_non_exhaustive()
    }
}

impl LoadedComponent {
    /// The names of the component's imports, for diagnostics.
    pub fn import_names(&self, runtime: &Runtime) -> Vec<String> {
        let ty = self.component.component_type();
        ty.imports(&runtime.engine)
            .map(|(name, _)| name.to_owned())
            .collect()
    }

    /// The names of the component's exports.
    pub fn export_names(&self, runtime: &Runtime) -> Vec<String> {
        let ty = self.component.component_type();
        ty.exports(&runtime.engine)
            .map(|(name, _)| name.to_owned())
            .collect()
    }
}

/// The engine and linker shared by every component and instance.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    config: RuntimeConfig,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Sets up the engine, the epoch ticker and the linker with every host import.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        Self::build(config, engine_config(&config))
    }

    /// Like [`Runtime::new`], with Wasmtime's compile cache in `cache_dir`: compiled code
    /// is kept there, keyed by the engine's compatibility hash and the component's bytes,
    /// so a restart loads a component without compiling it again.
    #[cfg(feature = "compiler")]
    pub fn with_cache(
        config: RuntimeConfig,
        cache_dir: &std::path::Path,
    ) -> Result<Self, RuntimeError> {
        let setup = |e: wasmtime::Error| RuntimeError::Setup(format!("compile cache: {e:#}"));
        let mut cache = wasmtime::CacheConfig::new();
        cache.with_directory(cache_dir);
        let mut wasm = engine_config(&config);
        wasm.cache(Some(wasmtime::Cache::new(cache).map_err(setup)?));
        Self::build(config, wasm)
    }

    fn build(config: RuntimeConfig, wasm: Config) -> Result<Self, RuntimeError> {
        let setup = |e: wasmtime::Error| RuntimeError::Setup(format!("{e:#}"));
        let engine = Engine::new(&wasm).map_err(setup)?;
        epoch::start(&engine).map_err(|e| RuntimeError::Setup(format!("epoch thread: {e}")))?;
        let mut linker = Linker::new(&engine);
        wasi::add_to_linker(&mut linker).map_err(setup)?;
        Pairing::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(setup)?;
        Ok(Self {
            engine,
            linker,
            config,
        })
    }

    /// The runtime's tunables.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Compiles `bytes` (on a host built without the compiler: loads `bytes` precompiled
    /// for it by `tether-host precompile`), checks that every import is one the host
    /// provides and that the `pairing` export has the world's shape, and pre-instantiates
    /// it.
    pub fn load(&self, bytes: &[u8]) -> Result<LoadedComponent, RuntimeError> {
        let invalid = |e: wasmtime::Error| RuntimeError::Invalid(format!("{e:#}"));
        let started = Instant::now();
        #[cfg(feature = "compiler")]
        let component = Component::new(&self.engine, bytes).map_err(invalid)?;
        #[cfg(not(feature = "compiler"))]
        let component = precompiled::load(&self.engine, bytes)?;
        let instance_pre = self.linker.instantiate_pre(&component).map_err(invalid)?;
        let pre = PairingPre::new(instance_pre).map_err(invalid)?;
        Ok(LoadedComponent {
            pre,
            component,
            size: bytes.len(),
            compile_time: started.elapsed(),
        })
    }

    /// Compiles `bytes` for a host of this runtime's configuration on `target` (a
    /// Wasmtime target: a triple for native code, `pulley32` or `pulley64` for the
    /// interpreter, see [`crate::platform::wasmtime_target`]; `None` for this host), for
    /// hosts built without the compiler.
    #[cfg(feature = "compiler")]
    pub fn precompile(
        config: RuntimeConfig,
        target: Option<&str>,
        bytes: &[u8],
    ) -> Result<Vec<u8>, RuntimeError> {
        let mut wasm = engine_config(&config);
        if let Some(triple) = target {
            wasm.target(triple)
                .map_err(|e| RuntimeError::Setup(format!("target {triple}: {e:#}")))?;
        }
        let engine = Engine::new(&wasm).map_err(|e| RuntimeError::Setup(format!("{e:#}")))?;
        engine
            .precompile_component(bytes)
            .map_err(|e| RuntimeError::Invalid(format!("{e:#}")))
    }

    /// The state for a new instance, with this runtime's memory cap.
    pub fn host_state(
        &self,
        kv: crate::capabilities::Kv,
        signer: crate::capabilities::Signer,
    ) -> HostState {
        HostState::new(
            kv,
            signer,
            MemoryCap::new(self.config.memory_cap),
            CpuBudget::new(self.config.call_deadline),
        )
    }

    /// Instantiates a loaded component into a fresh store holding `host`.
    pub fn instantiate(
        &self,
        component: &LoadedComponent,
        host: HostState,
    ) -> Result<Instance, RuntimeError> {
        let mut store = Store::new(&self.engine, host);
        store.limiter(|state| &mut state.memory_cap);
        store.epoch_deadline_callback(|mut cx| Ok(cx.data_mut().cpu.on_deadline()));
        let ticks = store.data_mut().cpu.start();
        store.set_epoch_deadline(ticks);
        match component.pre.instantiate(&mut store) {
            Ok(pairing) => Ok(Instance::new(store, pairing, self.config)),
            Err(e) => Err(instance::classify(&e, &self.config)),
        }
    }
}

fn engine_config(config: &RuntimeConfig) -> Config {
    let slots = config.instance_slots.max(1);
    // A component built by Rust for wasm32-wasip2 holds a few core instances (the program
    // and the shims the component linker adds) and one or two memories; leave headroom.
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(slots)
        .max_core_instances_per_component(16)
        .total_core_instances(slots * 16)
        .max_memories_per_component(4)
        .total_memories(slots * 4)
        .max_tables_per_component(8)
        .total_tables(slots * 8)
        .max_memory_size(config.memory_cap);

    let mut wasm = Config::new();
    let engine = crate::platform::engine();
    if engine == tether_proto::platform::Engine::Pulley {
        let pulley = crate::platform::wasmtime_target(crate::platform::TARGET, engine);
        // A known name; Wasmtime refuses only names it cannot parse.
        if let Err(e) = wasm.target(&pulley) {
            tracing::error!(error = %e, "cannot select Pulley");
        }
    }
    wasm.wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        // Reserve only the cap plus a small guard per memory: boards have little address
        // space, and explicit bounds checks cost the pairing logic next to nothing.
        .memory_reservation(config.memory_cap as u64)
        .memory_guard_size(64 << 10)
        .memory_reservation_for_growth(0);
    wasm
}
