//! The pairing state machine, free of binding calls: inputs are `user_cfg`, events and
//! the current time; outputs are [`Action`]s that the bindings layer performs through
//! host imports. Its whole state can be snapshotted and restored, so a hot update can
//! carry a device mid-pairing.
//!
//! This version covers validation and joining the router; the cloud phases (IoT DNS,
//! activation, MQTT) follow the same pattern.

use serde::{Deserialize, Serialize};
use tether_proto::{ErrorCode, Secret};

use crate::validate::{Credentials, validate};

/// Snapshot format version; `restore` refuses others.
const SNAPSHOT_VERSION: u32 = 1;

/// The network-config state, after TuyaOS's `GW_WIFI_NW_STAT_E`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetState {
    /// Waiting for credentials.
    AwaitingCredentials,
    /// Joining the router.
    Connecting,
    /// Joined the router.
    StaConnected,
    /// Asking IoT DNS for the endpoints.
    EndpointLookup,
    /// Activating with the token.
    Activating,
    /// Connecting to MQTT.
    MqttConnecting,
    /// Online.
    Online,
    /// Activated, not online.
    Offline,
}

/// Per-phase durations in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Timings {
    /// Joining the router.
    pub wifi_ms: Option<u32>,
    /// IoT DNS lookup.
    pub dns_ms: Option<u32>,
    /// Activation.
    pub activate_ms: Option<u32>,
    /// MQTT connect.
    pub mqtt_ms: Option<u32>,
}

/// What `status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Current state.
    pub state: NetState,
    /// Last failure, cleared by success.
    pub last_error: Option<ErrorCode>,
    /// Per-phase durations.
    pub timings: Timings,
    /// Device id once activated.
    pub dev_id: Option<String>,
    /// Router network in use or being joined.
    pub ssid: Option<String>,
}

/// Happenings the machine reacts to (the bindings translate WIT events into these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The station joined `ssid` and has an address.
    WifiConnected {
        /// Network joined.
        ssid: String,
    },
    /// Joining failed.
    WifiFailed(ErrorCode),
    /// An established link was lost.
    WifiDisconnected(ErrorCode),
}

/// Work for the bindings layer to perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Join a router network.
    WifiConnect {
        /// Network name.
        ssid: String,
        /// Password.
        passwd: Secret,
    },
    /// Write a log line (never with secrets).
    Log(Level, String),
}

/// Log levels of [`Action::Log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Normal progress.
    Info,
    /// A handled failure.
    Warn,
}

/// The pairing state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    version: u32,
    state: NetState,
    last_error: Option<ErrorCode>,
    /// Credentials being tried; `None` when awaiting credentials.
    pending: Option<Credentials>,
    dev_id: Option<String>,
    timings: Timings,
    /// Monotonic time when the current phase began.
    phase_started_ms: u64,
}

impl Default for Machine {
    fn default() -> Self {
        Self::new()
    }
}

impl Machine {
    /// A device that has never been paired.
    pub fn new() -> Self {
        Self {
            version: SNAPSHOT_VERSION,
            state: NetState::AwaitingCredentials,
            last_error: None,
            pending: None,
            dev_id: None,
            timings: Timings::default(),
            phase_started_ms: 0,
        }
    }

    /// A machine from a snapshot taken by [`Machine::snapshot`].
    pub fn restore(snapshot: &[u8]) -> Result<Self, String> {
        let machine: Machine = serde_json::from_slice(snapshot)
            .map_err(|e| format!("snapshot is not readable: {e}"))?;
        if machine.version != SNAPSHOT_VERSION {
            return Err(format!(
                "snapshot version {} is not {SNAPSHOT_VERSION}",
                machine.version
            ));
        }
        machine.health()?;
        Ok(machine)
    }

    /// The whole state, for `restore` in a new instance.
    pub fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("the machine's state always serialises")
    }

    /// The seed API: validates the arguments, then starts joining the router. New
    /// credentials replace any pairing under way.
    pub fn user_cfg(
        &mut self,
        now_ms: u64,
        ssid: &str,
        passwd: &str,
        token: &str,
    ) -> Result<Vec<Action>, ErrorCode> {
        let creds = validate(ssid, passwd, token)?;
        let actions = vec![
            Action::Log(
                Level::Info,
                format!(
                    "credentials accepted for network {:?}, token {}",
                    creds.ssid,
                    creds.token().public_id()
                ),
            ),
            Action::WifiConnect {
                ssid: creds.ssid.clone(),
                passwd: creds.passwd.clone(),
            },
        ];
        self.pending = Some(creds);
        self.last_error = None;
        self.timings = Timings::default();
        self.enter(NetState::Connecting, now_ms);
        Ok(actions)
    }

    /// Reacts to one event.
    pub fn handle(&mut self, now_ms: u64, event: Event) -> Vec<Action> {
        match (self.state, event) {
            (NetState::Connecting, Event::WifiConnected { ssid }) => {
                self.timings.wifi_ms = Some(self.elapsed_ms(now_ms));
                self.enter(NetState::StaConnected, now_ms);
                vec![Action::Log(Level::Info, format!("joined network {ssid:?}"))]
            }
            (NetState::Connecting, Event::WifiFailed(code)) => {
                self.timings.wifi_ms = Some(self.elapsed_ms(now_ms));
                self.fail(code, now_ms)
            }
            (state, event) => vec![Action::Log(
                Level::Warn,
                format!("ignored {event:?} in state {state:?}"),
            )],
        }
    }

    /// Local factory reset: back to awaiting credentials with nothing remembered.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Current progress.
    pub fn status(&self) -> Status {
        Status {
            state: self.state,
            last_error: self.last_error,
            timings: self.timings,
            dev_id: self.dev_id.clone(),
            ssid: self.pending.as_ref().map(|c| c.ssid.clone()),
        }
    }

    /// Checks the invariants between the state and what it needs.
    pub fn health(&self) -> Result<(), String> {
        let needs_credentials = matches!(
            self.state,
            NetState::Connecting
                | NetState::StaConnected
                | NetState::EndpointLookup
                | NetState::Activating
        );
        if needs_credentials && self.pending.is_none() {
            return Err(format!("state {:?} without credentials", self.state));
        }
        let needs_dev_id = matches!(
            self.state,
            NetState::MqttConnecting | NetState::Online | NetState::Offline
        );
        if needs_dev_id && self.dev_id.is_none() {
            return Err(format!("state {:?} without a dev-id", self.state));
        }
        Ok(())
    }

    fn fail(&mut self, code: ErrorCode, now_ms: u64) -> Vec<Action> {
        self.last_error = Some(code);
        self.pending = None;
        self.enter(NetState::AwaitingCredentials, now_ms);
        vec![Action::Log(
            Level::Warn,
            format!("pairing failed: {code}; awaiting credentials"),
        )]
    }

    fn enter(&mut self, state: NetState, now_ms: u64) {
        self.state = state;
        self.phase_started_ms = now_ms;
    }

    fn elapsed_ms(&self, now_ms: u64) -> u32 {
        u32::try_from(now_ms.saturating_sub(self.phase_started_ms)).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "EUab12CD34wxYZ";

    fn configured() -> Machine {
        let mut m = Machine::new();
        m.user_cfg(1_000, "home", "correct horse", TOKEN)
            .expect("valid");
        m
    }

    #[test]
    fn valid_credentials_start_joining_the_router() {
        let mut m = Machine::new();
        let actions = m
            .user_cfg(1_000, "home", "correct horse", TOKEN)
            .expect("valid");
        assert!(actions.contains(&Action::WifiConnect {
            ssid: "home".into(),
            passwd: Secret::new("correct horse"),
        }));
        assert_eq!(m.status().state, NetState::Connecting);
        assert_eq!(m.status().ssid.as_deref(), Some("home"));
    }

    #[test]
    fn log_lines_carry_neither_password_nor_token_secret() {
        let mut m = Machine::new();
        let actions = m
            .user_cfg(0, "home", "correct horse", TOKEN)
            .expect("valid");
        for action in actions {
            if let Action::Log(_, line) = action {
                assert!(
                    !line.contains("correct horse") && !line.contains("wxYZ"),
                    "{line}"
                );
            }
        }
    }

    #[test]
    fn invalid_arguments_leave_the_machine_untouched() {
        let mut m = configured();
        let before = m.clone();
        assert_eq!(
            m.user_cfg(2_000, "home", &"p".repeat(70), TOKEN),
            Err(ErrorCode::InvalidParm)
        );
        assert_eq!(
            m.user_cfg(2_000, "home", "correct horse", "bad"),
            Err(ErrorCode::TokenInvalid)
        );
        assert_eq!(m, before);
    }

    #[test]
    fn joining_the_router_records_the_wifi_timing() {
        let mut m = configured();
        m.handle(
            1_250,
            Event::WifiConnected {
                ssid: "home".into(),
            },
        );
        let status = m.status();
        assert_eq!(status.state, NetState::StaConnected);
        assert_eq!(status.timings.wifi_ms, Some(250));
        assert_eq!(status.last_error, None);
    }

    #[test]
    fn a_wifi_failure_returns_to_awaiting_credentials_with_the_reason() {
        let mut m = configured();
        m.handle(1_400, Event::WifiFailed(ErrorCode::PasswdError));
        let status = m.status();
        assert_eq!(status.state, NetState::AwaitingCredentials);
        assert_eq!(status.last_error, Some(ErrorCode::PasswdError));
        assert_eq!(status.timings.wifi_ms, Some(400));
        assert!(m.health().is_ok());
    }

    #[test]
    fn events_out_of_place_are_ignored() {
        let mut m = Machine::new();
        let before = m.clone();
        m.handle(5, Event::WifiConnected { ssid: "x".into() });
        assert_eq!(m, before);
    }

    #[test]
    fn snapshot_and_restore_carry_the_pairing_under_way() {
        let m = configured();
        let restored = Machine::restore(&m.snapshot()).expect("restores");
        assert_eq!(restored, m);
    }

    #[test]
    fn restore_refuses_garbage_other_versions_and_broken_invariants() {
        assert!(Machine::restore(b"not json").is_err());
        let mut other = serde_json::to_value(configured()).expect("serialises");
        other["version"] = 2.into();
        let err = Machine::restore(other.to_string().as_bytes()).expect_err("wrong version");
        assert!(err.contains("version 2"), "{err}");
        let mut broken = serde_json::to_value(Machine::new()).expect("serialises");
        broken["state"] = "online".into();
        let err = Machine::restore(broken.to_string().as_bytes()).expect_err("no dev-id");
        assert!(err.contains("without a dev-id"), "{err}");
    }

    #[test]
    fn reset_forgets_everything() {
        let mut m = configured();
        m.reset();
        assert_eq!(m, Machine::new());
    }
}
