//! The thin layer between the WIT contract and the state machine: it converts WIT types,
//! reads the clock, and performs the machine's actions through host imports. It holds no
//! pairing logic of its own.

use std::cell::RefCell;

use tether_proto::ErrorCode;

use crate::machine::{self, Action, Machine};

wit_bindgen::generate!({ path: "../wit", world: "pairing" });

use exports::pairing::{Event, Guest, NetState, PairingStatus, Timings};
use tether::pairing::types::ErrorCode as WitErrorCode;
use tether::pairing::{log, timer, wifi};

tether_proto::wit_error_code_conversions!(WitErrorCode);

thread_local! {
    static MACHINE: RefCell<Machine> = RefCell::new(Machine::new());
}

struct Component;

impl Guest for Component {
    fn init(snapshot: Option<Vec<u8>>) -> Result<(), String> {
        let machine = match snapshot {
            Some(bytes) => Machine::restore(&bytes)?,
            None => Machine::new(),
        };
        MACHINE.with_borrow_mut(|m| *m = machine);
        Ok(())
    }

    fn user_cfg(ssid: String, passwd: String, token: String) -> Result<(), WitErrorCode> {
        let now = timer::monotonic_ms();
        let actions = MACHINE
            .with_borrow_mut(|m| m.user_cfg(now, &ssid, &passwd, &token))
            .map_err(WitErrorCode::from)?;
        perform(actions);
        Ok(())
    }

    fn handle(ev: Event) {
        let Some(event) = translate(ev) else { return };
        let now = timer::monotonic_ms();
        let actions = MACHINE.with_borrow_mut(|m| m.handle(now, event));
        perform(actions);
    }

    fn status() -> PairingStatus {
        let s = MACHINE.with_borrow(Machine::status);
        PairingStatus {
            state: net_state(s.state),
            last_error: s.last_error.map(WitErrorCode::from),
            timings: Timings {
                wifi_ms: s.timings.wifi_ms,
                dns_ms: s.timings.dns_ms,
                activate_ms: s.timings.activate_ms,
                mqtt_ms: s.timings.mqtt_ms,
            },
            dev_id: s.dev_id,
            ssid: s.ssid,
            version: crate::VERSION.to_owned(),
        }
    }

    fn snapshot() -> Vec<u8> {
        MACHINE.with_borrow(Machine::snapshot)
    }

    fn health() -> Result<(), String> {
        MACHINE.with_borrow(Machine::health)
    }

    fn reset() {
        MACHINE.with_borrow_mut(Machine::reset);
    }
}

/// Translates the events this version of the machine reacts to; the rest are dropped.
fn translate(ev: Event) -> Option<machine::Event> {
    match ev {
        Event::WifiConnected(link) => Some(machine::Event::WifiConnected { ssid: link.ssid }),
        Event::WifiFailed(code) => Some(machine::Event::WifiFailed(code.into())),
        Event::WifiDisconnected(code) => Some(machine::Event::WifiDisconnected(code.into())),
        _ => None,
    }
}

/// Performs actions; an import that refuses at once is fed back as the matching failure.
fn perform(actions: Vec<Action>) {
    let mut queue = actions;
    while !queue.is_empty() {
        let mut follow_up = Vec::new();
        for action in queue {
            match action {
                Action::WifiConnect { ssid, passwd } => {
                    if let Err(code) = wifi::connect(&ssid, passwd.expose()) {
                        let now = timer::monotonic_ms();
                        let event = machine::Event::WifiFailed(ErrorCode::from(code));
                        follow_up.extend(MACHINE.with_borrow_mut(|m| m.handle(now, event)));
                    }
                }
                Action::Log(level, line) => {
                    let level = match level {
                        machine::Level::Info => log::Level::Info,
                        machine::Level::Warn => log::Level::Warn,
                    };
                    log::log(level, &line);
                }
            }
        }
        queue = follow_up;
    }
}

fn net_state(state: machine::NetState) -> NetState {
    match state {
        machine::NetState::AwaitingCredentials => NetState::AwaitingCredentials,
        machine::NetState::Connecting => NetState::Connecting,
        machine::NetState::StaConnected => NetState::StaConnected,
        machine::NetState::EndpointLookup => NetState::EndpointLookup,
        machine::NetState::Activating => NetState::Activating,
        machine::NetState::MqttConnecting => NetState::MqttConnecting,
        machine::NetState::Online => NetState::Online,
        machine::NetState::Offline => NetState::Offline,
    }
}

export!(Component);
