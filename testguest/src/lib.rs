//! A pairing component that misbehaves on request, for the host's tests only: `user-cfg`
//! with SSID `loop` spins forever, `grow` allocates without bound, `trap` panics; any
//! other SSID is accepted. It is never shipped or embedded as a default.

// The code wit-bindgen generates needs `unsafe` for the canonical ABI; nothing else here does.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod bindings;
