//! The default pairing component, built by `build.rs` from `guest/` and embedded in the
//! host binary so a device runs without any other file.

/// The bytes of the built-in pairing component (only hosts with the compiler can run it).
#[cfg(feature = "compiler")]
pub const DEFAULT_COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tether_guest.wasm"));

/// The built-in component, or why this host has none.
pub fn builtin() -> anyhow::Result<&'static [u8]> {
    #[cfg(feature = "compiler")]
    return Ok(DEFAULT_COMPONENT);
    #[cfg(not(feature = "compiler"))]
    anyhow::bail!(
        "this host is built without the compiler and has no built-in component: set `component` in its config to one precompiled for it (tether-host precompile)"
    )
}

/// The version of the built-in component (the guest crate shares the workspace version).
pub const DEFAULT_COMPONENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The demonstration update: the pairing component built with its `next` feature
/// (version 0.2.0, which adds its version to every data-channel reply).
#[cfg(feature = "demo")]
pub const NEXT_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/tether_guest_next.wasm"));
