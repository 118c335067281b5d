//! Pairing reports: how each pairing attempt ended, told to the cloud
//! (`POST /v1/pairing-reports`, signed with the authkey) when the device can reach it.
//! A success goes out once the device is online; a refusal by the cloud at once, while
//! the router is still joined; a failure the cloud never saw (a wrong Wi-Fi password, a
//! lookup that never answered) waits in `kv` until the device next reaches the cloud: back
//! online on its previous network, or at its next pairing's endpoint lookup.
//!
//! Bounded: at most [`MAX_QUEUED`] wait (the oldest goes first), one is in flight at a
//! time, and each is tried at most [`MAX_TRIES`] times.

use serde::{Deserialize, Serialize};
pub(super) use tether_proto::reports::Phase;
use tether_proto::reports::{Outcome, PairingReport};
use tether_proto::{ErrorCode, Secret};

use super::{Action, HttpRequest, Level, Machine, NetState, Purpose, SignWith, keys, log, to_json};

/// Reports kept for the cloud at most.
pub const MAX_QUEUED: usize = 4;
/// Attempts at delivering one report.
pub const MAX_TRIES: u8 = 3;
/// Deadline of one report request.
const REPORT_TIMEOUT_MS: u32 = 10_000;
const PATH: &str = "/v1/pairing-reports";

/// A report waiting for the cloud, with the trace of the pairing it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedReport {
    /// What the cloud is told.
    pub report: PairingReport,
    /// The provisioner's trace context of that pairing, if it gave one.
    #[serde(default)]
    pub trace: Option<String>,
}

/// The phase a pairing was in when it ended in `state`.
pub(super) fn phase_of(state: NetState) -> Option<Phase> {
    match state {
        NetState::Connecting | NetState::StaConnected => Some(Phase::Wifi),
        NetState::EndpointLookup => Some(Phase::Dns),
        NetState::Activating => Some(Phase::Activation),
        NetState::MqttConnecting => Some(Phase::Mqtt),
        _ => None,
    }
}

impl Machine {
    /// Keeps how the pairing with `token` ended, for the cloud; the oldest report goes
    /// when [`MAX_QUEUED`] wait already (the one in flight stays).
    pub(super) fn queue_report(
        &mut self,
        token: Secret,
        code: Option<ErrorCode>,
        phase: Option<Phase>,
    ) -> Action {
        if self.reports.len() >= MAX_QUEUED {
            let oldest = usize::from(self.report_inflight.is_some());
            if oldest < self.reports.len() {
                self.reports.remove(oldest);
            }
        }
        let report = PairingReport {
            token,
            outcome: if code.is_some() {
                Outcome::Failure
            } else {
                Outcome::Success
            },
            code,
            phase,
            message: None,
            timings: self.timings,
        };
        self.reports.push(QueuedReport {
            report,
            // The pairing is over: its trace goes with its report only.
            trace: self.trace.take(),
        });
        self.keep_reports()
    }

    /// Sends the oldest waiting report if the cloud is known and none is in flight.
    pub(super) fn send_report(&mut self) -> Vec<Action> {
        let (Some(queued), Some(endpoints), None) =
            (self.reports.first(), &self.endpoints, self.report_inflight)
        else {
            return Vec::new();
        };
        self.report_inflight = Some(None);
        vec![Action::Http(HttpRequest {
            purpose: Purpose::Report,
            url: format!("{}{PATH}", endpoints.http_url.trim_end_matches('/')),
            path: PATH.into(),
            body: to_json(&queued.report),
            sign: Some(SignWith::Authkey),
            timeout_ms: REPORT_TIMEOUT_MS,
            trace: queued.trace.clone(),
        })]
    }

    /// Whether `id` is the report in flight.
    pub(super) fn is_report(&self, id: u32) -> bool {
        self.report_inflight == Some(Some(id))
    }

    /// The answer to the report in flight: delivered or refused for good (a 4xx other
    /// than 429), it is done; otherwise it is tried again at the next chance, up to
    /// [`MAX_TRIES`] times. Then the next report goes.
    pub(super) fn on_report_answer(&mut self, status: Option<u16>) -> Vec<Action> {
        self.report_inflight = None;
        let delivered = status.is_some_and(|s| (200..300).contains(&s));
        let refused = status.is_some_and(|s| (400..500).contains(&s) && s != 429);
        let mut actions = Vec::new();
        if delivered || refused {
            self.reports.remove(0);
            self.report_tries = 0;
            if refused {
                actions.push(log(
                    Level::Warn,
                    format!(
                        "the cloud refused a pairing report ({})",
                        status.unwrap_or(0)
                    ),
                ));
            }
        } else {
            self.report_tries += 1;
            if self.report_tries < MAX_TRIES {
                actions.push(self.keep_reports());
                return actions;
            }
            self.reports.remove(0);
            self.report_tries = 0;
            actions.push(log(
                Level::Warn,
                format!("a pairing report was dropped after {MAX_TRIES} tries"),
            ));
        }
        actions.push(self.keep_reports());
        actions.extend(self.send_report());
        actions
    }

    /// The waiting reports, written to `kv` (or forgotten there when none wait).
    fn keep_reports(&self) -> Action {
        if self.reports.is_empty() {
            Action::KvDelete(keys::REPORTS)
        } else {
            Action::KvSet(keys::REPORTS, to_json(&self.reports))
        }
    }
}
