//! The Tether device host: runs the pairing component in Wasmtime with deadlines, a memory
//! cap and the host capabilities it imports, and carries out its work with IO providers
//! (Wi-Fi backends, HTTP, MQTT, the data channel, timers).

mod atomic_file;
pub mod capabilities;
pub mod clock;
pub mod component;
pub mod config;
pub mod ctl;
pub mod daemon;
mod handle;
mod home;
pub mod platform;
pub mod providers;
pub mod runtime;
pub mod trust;
pub mod update;
pub mod wifi;

pub use handle::DeviceHandle;
pub use home::{RuntimeSource, SharedRuntime};
pub use runtime::{Instance, LoadedComponent, Runtime, RuntimeConfig, RuntimeError};
pub use tether_proto::module::UpdateReport;
