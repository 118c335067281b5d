//! The one mapping between Tether's pairing error codes, their snake_case wire names (HTTP
//! error bodies, channel replies) and their negative OPRT numbers (the C API).
//!
//! The generic codes keep TuyaOS's numbers (`OPRT_COM_ERROR = -1`, `OPRT_INVALID_PARM =
//! -2`), which every TuyaOS generation agrees on. TuyaOS generations disagree beyond -4,
//! so the pairing-specific codes take a block of their own from -2001 on; those numbers
//! are fixed and never reused.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = ($name:literal, $oprt:literal, $c_name:literal, $text:literal), )+) => {
        /// A pairing failure, one case per `error-code` of the WIT contract.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )+
        }

        impl ErrorCode {
            /// Every code, in WIT order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The stable snake_case name used on the wire.
            pub const fn name(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name,)+ }
            }

            /// The fixed negative OPRT number used by the C API.
            pub const fn oprt(self) -> i32 {
                match self { $(ErrorCode::$variant => $oprt,)+ }
            }

            /// The C macro name of the OPRT number, such as `OPRT_TOKEN_INVALID`.
            pub const fn c_name(self) -> &'static str {
                match self { $(ErrorCode::$variant => $c_name,)+ }
            }

            /// A one-line explanation for people.
            pub const fn description(self) -> &'static str {
                match self { $(ErrorCode::$variant => $text,)+ }
            }

            /// The code with this wire name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some(ErrorCode::$variant),)+ _ => None }
            }

            /// The code with this OPRT number.
            pub fn from_oprt(oprt: i32) -> Option<Self> {
                match oprt { $($oprt => Some(ErrorCode::$variant),)+ _ => None }
            }
        }
    };
}

error_codes! {
    /// An argument is malformed or out of range.
    InvalidParm = ("invalid_parm", -2, "OPRT_INVALID_PARM", "an argument is malformed or out of range"),
    /// The pairing token is malformed or unknown.
    TokenInvalid = ("token_invalid", -2001, "OPRT_TOKEN_INVALID", "the pairing token is malformed or unknown"),
    /// The pairing token has expired.
    TokenExpired = ("token_expired", -2002, "OPRT_TOKEN_EXPIRED", "the pairing token has expired"),
    /// The pairing token is used up.
    TokenUsed = ("token_used", -2003, "OPRT_TOKEN_USED", "the pairing token has already been used"),
    /// No access point with that SSID was found.
    ApNotFound = ("ap_not_found", -2004, "OPRT_AP_NOT_FOUND", "no access point with that SSID was found"),
    /// The access point refused the password.
    PasswdError = ("passwd_error", -2005, "OPRT_PASSWD_ERROR", "the access point refused the password"),
    /// Association failed for another reason.
    CantConnectAp = ("cant_connect_ap", -2006, "OPRT_CANT_CONNECT_AP", "could not associate with the access point"),
    /// DHCP gave no address.
    DhcpFailed = ("dhcp_failed", -2007, "OPRT_DHCP_FAILED", "the router's DHCP gave no address"),
    /// The IoT DNS lookup failed.
    DnsFailed = ("dns_failed", -2008, "OPRT_DNS_FAILED", "the cloud endpoint lookup (IoT DNS) failed"),
    /// The cloud refused activation.
    ActivateFailed = ("activate_failed", -2009, "OPRT_ACTIVATE_FAILED", "the cloud refused the activation"),
    /// The request signature was rejected.
    SignatureError = ("signature_error", -2010, "OPRT_SIGNATURE_ERROR", "the cloud rejected the device's signature"),
    /// The device is bound to another user.
    DevAlreadyBound = ("dev_already_bound", -2011, "OPRT_DEV_ALREADY_BOUND", "the device is bound to another user; reset it first"),
    /// The broker refused the MQTT credentials.
    MqttAuthFailed = ("mqtt_auth_failed", -2012, "OPRT_MQTT_AUTH_FAILED", "the MQTT broker refused the device's credentials"),
    /// The network cannot be reached.
    NetworkUnreachable = ("network_unreachable", -2013, "OPRT_NETWORK_UNREACHABLE", "the network cannot be reached"),
    /// An operation timed out.
    Timeout = ("timeout", -2014, "OPRT_PAIRING_TIMEOUT", "the operation timed out"),
    /// Another operation is under way.
    Busy = ("busy", -2015, "OPRT_BUSY", "another operation is under way"),
    /// A TLS connection to the cloud failed: the peer's certificate is not trusted,
    /// expired or for another name, or a plain connection was asked of a pinned device.
    TlsFailed = ("tls_failed", -2016, "OPRT_TLS_FAILED", "the cloud's TLS certificate was not trusted (wrong CA, expired or another name)"),
    /// An internal failure.
    Internal = ("internal", -1, "OPRT_COM_ERROR", "an internal error occurred"),
}

/// Implements `From` both ways between [`ErrorCode`] and the `error-code` enum that a WIT
/// binding generator (wit-bindgen in the component, wasmtime's `bindgen!` in the host)
/// made from `wit/pairing.wit`. Both sides name the cases alike, so the generated matches
/// are exhaustive: a case added to the WIT but not here fails to compile.
#[macro_export]
macro_rules! wit_error_code_conversions {
    ($wit:ident) => {
        $crate::wit_error_code_conversions!(@impl $wit;
            InvalidParm, TokenInvalid, TokenExpired, TokenUsed, ApNotFound, PasswdError,
            CantConnectAp, DhcpFailed, DnsFailed, ActivateFailed, SignatureError,
            DevAlreadyBound, MqttAuthFailed, NetworkUnreachable, Timeout, Busy, TlsFailed,
            Internal);
    };
    (@impl $wit:ident; $($case:ident),+) => {
        impl From<$wit> for $crate::ErrorCode {
            fn from(code: $wit) -> Self {
                match code { $($wit::$case => $crate::ErrorCode::$case,)+ }
            }
        }
        impl From<$crate::ErrorCode> for $wit {
            fn from(code: $crate::ErrorCode) -> Self {
                match code { $($crate::ErrorCode::$case => $wit::$case,)+ }
            }
        }
    };
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown error code `{name}`")))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_numbers_and_c_names_are_unique_and_round_trip() {
        let mut names = HashSet::new();
        let mut numbers = HashSet::new();
        let mut c_names = HashSet::new();
        for &code in ErrorCode::ALL {
            assert!(names.insert(code.name()), "duplicate name {}", code.name());
            assert!(
                numbers.insert(code.oprt()),
                "duplicate number {}",
                code.oprt()
            );
            assert!(c_names.insert(code.c_name()));
            assert!(code.oprt() < 0, "{code} must be negative");
            assert!(code.c_name().starts_with("OPRT_"));
            assert_eq!(ErrorCode::from_name(code.name()), Some(code));
            assert_eq!(ErrorCode::from_oprt(code.oprt()), Some(code));
        }
        assert_eq!(ErrorCode::ALL.len(), 18);
    }

    #[test]
    fn generic_codes_keep_tuyaos_numbers() {
        assert_eq!(ErrorCode::Internal.oprt(), -1);
        assert_eq!(ErrorCode::InvalidParm.oprt(), -2);
        assert_eq!(ErrorCode::from_oprt(0), None);
    }

    #[test]
    fn serde_uses_the_wire_name() {
        let json = serde_json::to_string(&ErrorCode::DevAlreadyBound).expect("serialises");
        assert_eq!(json, "\"dev_already_bound\"");
        let back: ErrorCode = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, ErrorCode::DevAlreadyBound);
        let err = serde_json::from_str::<ErrorCode>("\"nope\"").expect_err("unknown");
        assert!(err.to_string().contains("unknown error code `nope`"));
    }
}
