//! The memory cap of one component instance. Growth past the cap traps with
//! [`MemoryCapExceeded`], so the host can tell an exhausted cap from other traps.

use wasmtime::ResourceLimiter;

/// Most table elements an instance may have; the pairing component needs a few hundred.
const MAX_TABLE_ELEMENTS: usize = 20_000;

/// The error a memory growth past the cap traps with.
#[derive(Debug, thiserror::Error)]
#[error("memory growth to {desired} bytes exceeds the cap of {cap} bytes")]
pub struct MemoryCapExceeded {
    /// The cap.
    pub cap: usize,
    /// The size asked for.
    pub desired: usize,
}

/// A `ResourceLimiter` that caps linear memory and tables.
#[derive(Debug, Clone, Copy)]
pub struct MemoryCap {
    cap: usize,
}

impl MemoryCap {
    /// A cap of `bytes` for linear memory.
    pub fn new(bytes: usize) -> Self {
        Self { cap: bytes }
    }

    /// The cap in bytes.
    pub fn bytes(self) -> usize {
        self.cap
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            return Err(wasmtime::Error::new(MemoryCapExceeded {
                cap: self.cap,
                desired,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
