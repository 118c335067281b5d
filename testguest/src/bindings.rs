//! The WIT exports of the misbehaving component.

use exports::pairing::{ChannelState, Event, Guest, NetState, PairingStatus, Timings};
use tether::pairing::types::ErrorCode;

wit_bindgen::generate!({ path: "../wit", world: "pairing" });

struct Misbehaving;

impl Guest for Misbehaving {
    fn init(snapshot: Option<Vec<u8>>) -> Result<(), String> {
        if crate::mode() == crate::Mode::TrapInInit {
            panic!("asked to trap in init");
        }
        match snapshot.as_deref() {
            Some(b"loop") => spin(),
            _ => Ok(()),
        }
    }

    fn user_cfg(ssid: String, _passwd: String, _token: String) -> Result<(), ErrorCode> {
        match ssid.as_str() {
            "loop" => spin(),
            "grow" => grow(),
            "trap" => panic!("asked to trap"),
            work => {
                if let Some(n) = work.strip_prefix("work:").and_then(|n| n.parse().ok()) {
                    count_to(n);
                }
                Ok(())
            }
        }
    }

    fn handle(_ev: Event) {
        match crate::mode() {
            crate::Mode::LoopInHandle => spin(),
            crate::Mode::GrowInHandle => grow(),
            _ => {}
        }
    }

    fn status() -> PairingStatus {
        PairingStatus {
            state: NetState::AwaitingCredentials,
            last_error: None,
            timings: Timings {
                wifi_ms: None,
                dns_ms: None,
                activate_ms: None,
                mqtt_ms: None,
            },
            dev_id: None,
            ssid: None,
            version: "misbehaving".to_owned(),
        }
    }

    fn snapshot() -> Vec<u8> {
        Vec::new()
    }

    fn health() -> Result<(), String> {
        match crate::mode() {
            crate::Mode::LoopInHandle | crate::Mode::GrowInHandle => Ok(()),
            _ => Err("this component is never healthy".to_owned()),
        }
    }

    fn reset() {}

    fn open_window(_secs: u32) {}

    fn close_window() {}

    fn channel_status() -> ChannelState {
        ChannelState {
            window_secs: None,
            locked: false,
            failures: 0,
        }
    }
}

/// Spins until the host's deadline interrupts it.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Computes for `n` steps, then returns: a healthy call that takes a known amount of CPU.
fn count_to(n: u64) {
    let mut i: u64 = 0;
    while std::hint::black_box(i) < n {
        i += 1;
    }
}

/// Allocates and touches memory until the host's cap stops it.
fn grow() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

export!(Misbehaving);
