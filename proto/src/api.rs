//! The bodies of the cloud API that users and admins call (login, devices, commands,
//! modules and rollouts). The service serves them and the CLI reads them: both use these
//! types. The device-facing bodies live in `activation`, `iot_dns`, `reports` and
//! `module`; the token bodies in `token_status`.

use serde::{Deserialize, Serialize};

use crate::Secret;
use crate::module::{RolloutView, UpdateOutcome};

/// Body of `POST /v1/auth/token`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Account name.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._-]{1,64}$"))]
    pub username: String,
    /// Password.
    #[cfg_attr(feature = "openapi", schema(value_type = String, max_length = 1024))]
    pub password: Secret,
}

/// Answer to a login.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResponse {
    /// The JWT to send as `Authorization: Bearer …`.
    pub access_token: Secret,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// A device as its owner sees it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceView {
    /// Device id.
    pub dev_id: String,
    /// License uuid.
    pub uuid: String,
    /// Product.
    pub product_key: String,
    /// Whether an MQTT session is up.
    pub online: bool,
    /// Last connect, disconnect or report, Unix seconds.
    pub last_seen: Option<i64>,
    /// The data points of the last report (protocol 4).
    pub last_report: Option<serde_json::Value>,
    /// Firmware version at activation.
    pub sw_ver: String,
    /// Pairing component version: at activation, then as the device reports updates.
    pub module_version: String,
    /// When it was activated, Unix seconds.
    pub activated_at: i64,
    /// The last update outcome the device reported.
    pub module_outcome: Option<UpdateOutcome>,
    /// What code its host runs (`target=…; engine=…; compiler=…; runtime=…`), as the
    /// host said at activation.
    #[serde(default)]
    pub platform: Option<String>,
    /// The newest component rollout to it (only in `GET /v1/devices/{dev_id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutView>,
}

/// Body of `POST /v1/devices/{dev_id}/commands`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// Data points to set, by id.
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// Answer to a command.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandAccepted {
    /// The device.
    pub dev_id: String,
    /// Whether it was online, so got the command now.
    pub online: bool,
    /// With `?wait`: the device acknowledged the command (answered with 200). Without,
    /// absent: the command was queued to the session (202), not confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<bool>,
}

/// A stored module (a signed component bundle), as the API shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleView {
    /// Module id.
    pub id: i64,
    /// Component version.
    pub version: String,
    /// Bundle sequence.
    pub sequence: i64,
    /// Hex SHA-256 of the portable component (every bundle of the module was made from
    /// it).
    pub sha256: String,
    /// Size in bytes of the first bundle's code.
    pub size: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// The bundles stored for it: `portable`, or `TARGET/ENGINE` for precompiled code.
    pub variants: Vec<String>,
}

/// Body of `POST /v1/modules/{id}/rollouts`: a product or a list of devices.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RolloutRequest {
    /// Every device of this product, including ones activated later.
    Product(ProductTarget),
    /// These devices.
    Devices(DeviceTargets),
}

/// A rollout to a product.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductTarget {
    /// The product.
    pub product_key: String,
}

/// A rollout to listed devices.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceTargets {
    /// Their dev-ids.
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub devices: Vec<String>,
}

/// Answer to `POST /v1/modules/{id}/rollouts`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutCreated {
    /// The rollout.
    pub rollout_id: i64,
    /// The module rolled out.
    pub module_id: i64,
    /// Its component version.
    pub version: String,
    /// Devices it targets now.
    pub targeted: usize,
    /// Devices notified at once (online ones).
    pub notified: usize,
}

/// `GET /.well-known/jwks.json`: the keys that verify the service's JWTs (RFC 7517).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// One public key (an Ed25519 key in RFC 8037 form).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type, `OKP`.
    pub kty: String,
    /// Curve, `Ed25519`.
    pub crv: String,
    /// Algorithm, `EdDSA`.
    pub alg: String,
    /// Use, `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// Key id.
    pub kid: String,
    /// The public key, base64url without padding.
    pub x: String,
}

impl Jwk {
    /// An Ed25519 signing key.
    pub fn ed25519(kid: impl Into<String>, x: impl Into<String>) -> Self {
        Self {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            alg: "EdDSA".into(),
            use_: "sig".into(),
            kid: kid.into(),
            x: x.into(),
        }
    }
}

/// Body of `POST /v1/devices/{dev_id}/transfer`: offer the device to another account.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// The account that should own it.
    pub to: String,
}

/// An offer to hand a device from one account to another, until the other accepts or
/// declines it, the owner cancels it, or it expires.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferOffer {
    /// The device.
    pub dev_id: String,
    /// Its owner now.
    pub from: String,
    /// The account it is offered to.
    pub to: String,
    /// When the offer lapses, Unix seconds.
    pub expires_at: u64,
}

/// Where a license stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenseState {
    /// No device has activated with it.
    Unused,
    /// A device is bound with it.
    Active,
    /// An operator revoked it: it activates no device again.
    Revoked,
}

impl LicenseState {
    /// The wire name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unused => "unused",
            Self::Active => "active",
            Self::Revoked => "revoked",
        }
    }

    /// The state of a wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Unused, Self::Active, Self::Revoked]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// A license as `GET /v1/licenses` lists it (admins): never its authkey or setup code.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseView {
    /// The device identity.
    pub uuid: String,
    /// Its product.
    pub product_key: String,
    /// Unused, active or revoked.
    pub state: LicenseState,
    /// The device bound with it, when active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_id: Option<String>,
    /// The account that owns that device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// When it was issued, Unix seconds.
    pub created_at: u64,
    /// When it was revoked, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_round_trip, assert_unknown_field_refused};

    #[test]
    fn login_bodies_hide_secrets_and_refuse_unknown_fields() {
        let login: LoginRequest =
            serde_json::from_str(r#"{"username":"ann","password":"hunter22"}"#).expect("parses");
        assert!(!format!("{login:?}").contains("hunter22"));
        assert_unknown_field_refused::<LoginRequest>(
            r#"{"username":"ann","password":"x","admin":true}"#,
            "admin",
        );
    }

    #[test]
    fn a_device_view_round_trips_with_and_without_its_rollout() {
        let json = r#"{"dev_id":"d-1","uuid":"u","product_key":"p","online":true,"last_seen":5,"last_report":{"1":true},"sw_ver":"1.0.0","module_version":"0.1.0","activated_at":4,"module_outcome":{"version":"0.2.0","sequence":2,"result":"applied","reason":null,"at":6}}"#;
        let view: DeviceView = serde_json::from_str(json).expect("parses");
        assert_eq!(view.rollout, None);
        assert!(
            !serde_json::to_string(&view)
                .expect("serialises")
                .contains("rollout")
        );
        assert_round_trip(&view);
    }

    #[test]
    fn a_jwk_has_the_rfc_8037_fields() {
        let set = JwkSet {
            keys: vec![Jwk::ed25519("k1", "abc")],
        };
        assert_eq!(
            serde_json::to_string(&set).expect("serialises"),
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"sig","kid":"k1","x":"abc"}]}"#
        );
    }

    #[test]
    fn a_rollout_names_a_product_or_devices() {
        let product: RolloutRequest =
            serde_json::from_str(r#"{"product_key":"p"}"#).expect("parses");
        assert!(matches!(product, RolloutRequest::Product(_)));
        let devices: RolloutRequest =
            serde_json::from_str(r#"{"devices":["d-1"]}"#).expect("parses");
        assert_round_trip(&devices);
        assert!(serde_json::from_str::<RolloutRequest>(r#"{"everyone":true}"#).is_err());
    }
}
