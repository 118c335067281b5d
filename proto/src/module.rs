//! Hot updates of the pairing component, on every wire they cross: the protocol 15
//! notice the cloud sends, the outcome report a device sends back
//! (`POST /v1/devices/{dev_id}/module-status`), the update slots and swap measures the
//! host keeps and shows on its control socket, and a device's rollout in the API.

use serde::{Deserialize, Serialize};

/// A component bundle installed on a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledModule {
    /// The component's version.
    pub version: String,
    /// The bundle's sequence.
    pub sequence: u64,
    /// Hex SHA-256 of the component.
    pub sha256: String,
}

/// Where an update stands on a device.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateResult {
    /// Running, not yet committed.
    Probation,
    /// Committed.
    Applied,
    /// Never ran: the bundle was refused.
    Refused,
    /// Ran and failed on probation; the previous component runs again.
    RolledBack,
}

impl UpdateResult {
    /// The wire name.
    pub const fn name(self) -> &'static str {
        match self {
            UpdateResult::Probation => "probation",
            UpdateResult::Applied => "applied",
            UpdateResult::Refused => "refused",
            UpdateResult::RolledBack => "rolled_back",
        }
    }
}

/// How the last update ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateOutcome {
    /// The version it was about.
    pub version: String,
    /// Its sequence.
    pub sequence: u64,
    /// How it ended.
    pub result: UpdateResult,
    /// Why, for `refused` and `rolled_back`.
    pub reason: Option<String>,
    /// When, Unix seconds.
    pub at: u64,
}

/// The host's update slots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateSlots {
    /// The committed component; `None` is the built-in one.
    pub active: Option<InstalledModule>,
    /// What was active before it.
    pub previous: Option<InstalledModule>,
    /// A component running on probation, not yet committed.
    pub probation: Option<InstalledModule>,
    /// The highest sequence ever accepted; lower or equal ones are replays.
    pub last_sequence: u64,
    /// The last outcome.
    pub last_outcome: Option<UpdateOutcome>,
}

/// What a successful swap measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateReport {
    /// The new version.
    pub version: String,
    /// Its sequence.
    pub sequence: u64,
    /// Verify and compile (or load from the cache).
    pub prepare_ms: u64,
    /// Snapshot, restore, health and switch: the time events wait in the queue.
    pub pause_us: u64,
    /// From receiving the bundle to running the new component.
    pub total_ms: u64,
    /// How long it stays on probation.
    pub probation_secs: u64,
}

/// The component a host runs and its update slots (`ctl module-status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleStatus {
    /// The version in use.
    pub version: String,
    /// Whether it is on probation.
    pub on_probation: bool,
    /// The slots.
    pub slots: UpdateSlots,
    /// The last swap's measures, if one happened since the host started.
    pub last_swap: Option<UpdateReport>,
    /// Compiling, or loading from the compile cache, the component in use.
    pub load_ms: u64,
}

/// Protocol 15: a bundle is rolled out to the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateNotice {
    /// The module id in the cloud.
    pub module_id: i64,
    /// The component's version.
    pub version: String,
    /// The bundle's sequence.
    pub sequence: u64,
    /// Hex SHA-256 of the component.
    pub sha256: String,
    /// The bundle's size in bytes.
    pub size: u64,
    /// Where to download it, with a request signed by the dev-secret.
    pub url: String,
}

/// Body of `POST /v1/devices/{dev_id}/module-status`: an update's outcome.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleStatusReport {
    /// The component version the report is about.
    pub version: String,
    /// Its bundle sequence.
    pub sequence: u64,
    /// How the update ended.
    pub result: UpdateResult,
    /// Why, when refused or rolled back.
    pub reason: Option<String>,
    /// The version the device runs now.
    pub running: String,
}

/// A device's newest rollout, in `GET /v1/devices/{dev_id}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutView {
    /// The module id.
    pub module_id: i64,
    /// Its version.
    pub version: String,
    /// Its sequence.
    pub sequence: i64,
    /// `pending`, `notified`, or an [`UpdateResult`] the device reported.
    pub state: String,
    /// Why, when refused or rolled back.
    pub reason: Option<String>,
    /// Unix seconds of the last change.
    pub updated_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_round_trip, assert_unknown_field_refused};

    #[test]
    fn results_use_their_wire_names() {
        for result in [
            UpdateResult::Probation,
            UpdateResult::Applied,
            UpdateResult::Refused,
            UpdateResult::RolledBack,
        ] {
            assert_eq!(
                serde_json::to_value(result).expect("serialises"),
                result.name()
            );
        }
    }

    #[test]
    fn a_report_refuses_unknown_results_and_fields() {
        let json = r#"{"version":"0.2.0","sequence":2,"result":"rolled_back","reason":"failed_on_probation: x","running":"0.1.0"}"#;
        let report: ModuleStatusReport = serde_json::from_str(json).expect("parses");
        assert_eq!(report.result, UpdateResult::RolledBack);
        assert_round_trip(&report);
        assert!(
            serde_json::from_str::<ModuleStatusReport>(&json.replace("rolled_back", "exploded"))
                .is_err()
        );
        assert_unknown_field_refused::<ModuleStatusReport>(
            &json.replace("\"running\"", "\"x\":1,\"running\""),
            "x",
        );
    }

    #[test]
    fn module_status_and_notice_round_trip() {
        let status = ModuleStatus {
            version: "0.2.0".into(),
            on_probation: true,
            slots: UpdateSlots {
                probation: Some(InstalledModule {
                    version: "0.2.0".into(),
                    sequence: 2,
                    sha256: "aa".into(),
                }),
                last_sequence: 2,
                ..UpdateSlots::default()
            },
            last_swap: None,
            load_ms: 3,
        };
        assert_round_trip(&status);
        let notice: UpdateNotice = serde_json::from_str(
            r#"{"module_id":1,"version":"0.2.0","sequence":2,"sha256":"aa","size":10,"url":"http://c/v1/modules/1/bundle"}"#,
        )
        .expect("parses");
        assert_round_trip(&notice);
    }
}
