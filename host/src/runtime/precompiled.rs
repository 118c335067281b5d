//! Loading on a host built without the compiler: the component must have been compiled
//! ahead of time for this host (`tether-host precompile`), with the same engine settings.

use wasmtime::component::Component;
use wasmtime::{Engine, Precompiled};

use super::RuntimeError;

/// Loads a precompiled component.
pub(super) fn load(engine: &Engine, bytes: &[u8]) -> Result<Component, RuntimeError> {
    match Engine::detect_precompiled(bytes) {
        Some(Precompiled::Component) => {}
        Some(Precompiled::Module) => {
            return Err(RuntimeError::Invalid(
                "a precompiled core module, not a component".into(),
            ));
        }
        None => {
            return Err(RuntimeError::Invalid(
                "this host is built without the compiler and runs only components precompiled for it (tether-host precompile)".into(),
            ));
        }
    }
    // SAFETY: precompiled code runs natively, so its bytes must be trusted, not merely
    // valid. They reach this host only as the operator's `component` file or inside a
    // bundle whose signature by a trusted key and whose hash were checked before this
    // call. Wasmtime itself refuses artifacts of another version, architecture, or engine
    // configuration.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize(engine, bytes) };
    component.map_err(|e| RuntimeError::Invalid(format!("{e:#}")))
}
