//! A pairing component that misbehaves on request, for the host's tests only: `user-cfg`
//! with SSID `loop` spins forever, `grow` allocates without bound, `trap` panics,
//! `work:N` counts to N and returns; any other SSID is accepted. It is never shipped or embedded as a default.
//!
//! Its [`MODE`] marker selects a fault for the hot-update tests; they make variants of
//! the built component by rewriting the marker's last byte in its data segment.

// The code wit-bindgen generates needs `unsafe` for the canonical ABI; nothing else here does.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod bindings;

/// The fault marker: `TESTGUEST-MODE:` and one byte (see [`Mode`]).
pub static MODE: [u8; 16] = *b"TESTGUEST-MODE:0";

/// What the component does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `0`: misbehaves only on request (see above); never healthy.
    OnRequest,
    /// `i`: traps in `init`.
    TrapInInit,
    /// `h`: healthy, then spins in `handle`.
    LoopInHandle,
    /// `g`: healthy, then grows memory without bound in `handle`.
    GrowInHandle,
}

/// The mode the marker selects; read through `black_box` so the compiler keeps the byte
/// in memory, where a rewrite of the component can change it.
pub fn mode() -> Mode {
    match std::hint::black_box(&MODE)[15] {
        b'i' => Mode::TrapInInit,
        b'h' => Mode::LoopInHandle,
        b'g' => Mode::GrowInHandle,
        _ => Mode::OnRequest,
    }
}
