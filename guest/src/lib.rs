//! The pairing component. `machine` and `validate` are plain Rust with no binding calls,
//! unit-tested natively; `bindings` (built only for wasm) translates between the WIT
//! contract and the machine and performs the machine's actions through host imports.

pub mod channel;
pub mod machine;
pub mod validate;

// The code wit-bindgen generates needs `unsafe` for the canonical ABI; nothing else here does.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod bindings;

/// The component's version, reported in `status`.
#[cfg(not(feature = "next"))]
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The component's version, reported in `status`: the `next` feature builds the
/// demonstration update, which also adds its version to every data-channel reply.
#[cfg(feature = "next")]
pub const VERSION: &str = "0.2.0";
