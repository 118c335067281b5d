//! The Tether device host: runs the pairing component in Wasmtime with deadlines, a memory
//! cap and the host capabilities it imports.

mod atomic_file;
pub mod capabilities;
pub mod component;
pub mod runtime;

pub use runtime::{Instance, LoadedComponent, Runtime, RuntimeConfig, RuntimeError};
