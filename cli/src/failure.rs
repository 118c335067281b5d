//! Why a command failed, and the exit code each class of failure gets (listed in
//! `tether --help`).

use std::process::ExitCode;

use tether_proto::ErrorCode;
use tether_proto::channel::ChannelError;

/// Exit codes by class of failure.
pub const EXIT_CODES: &str = "Exit codes: 0 success; 1 internal error; 2 usage; 3 server or device unreachable; \
4 not logged in or wrong credentials; 5 not found; 6 pairing token refused (invalid, expired, used); \
7 Wi-Fi failure (wrong password, network not found, DHCP, association); 8 the cloud refused the device \
(already bound, signature, activation, IoT DNS); 9 timed out; 10 invalid input; 11 wrong setup code; \
12 the device's channel is locked by failed attempts or backing off (open its pairing window); \
13 the device is paired and its pairing window is closed; 14 the device does not trust the cloud's TLS \
certificate (wrong CA, expired, another name).";

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The server or the device cannot be reached.
    #[error("{0}")]
    Unreachable(String),
    /// Not logged in, or wrong credentials.
    #[error("{0}")]
    Auth(String),
    /// Nothing of that kind exists for this user.
    #[error("{0}")]
    NotFound(String),
    /// A pairing failure with its code.
    #[error("{code}: {message}")]
    Pairing {
        /// The code.
        code: ErrorCode,
        /// Detail.
        message: String,
    },
    /// No outcome in time.
    #[error("{0}")]
    Timeout(String),
    /// The input was refused.
    #[error("{0}")]
    Invalid(String),
    /// The device's data channel refused.
    #[error("{code}: {message}")]
    Channel {
        /// Why.
        code: ChannelError,
        /// Detail.
        message: String,
    },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl Failure {
    /// The failure for an API error code.
    pub fn from_api(status: u16, code: &str, message: &str) -> Self {
        if let Some(code) = ErrorCode::from_name(code) {
            return Self::Pairing {
                code,
                message: message.to_owned(),
            };
        }
        match (status, code) {
            (401 | 403, _) => Self::Auth(message.to_owned()),
            (404, _) => Self::NotFound(message.to_owned()),
            (_, "bad_request" | "payload_too_large" | "unsupported_media_type") => {
                Self::Invalid(message.to_owned())
            }
            _ => Self::Other(format!("{code}: {message}")),
        }
    }

    /// The process exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Self::Other(_) => 1,
            Self::Unreachable(_) => 3,
            Self::Auth(_) => 4,
            Self::NotFound(_) => 5,
            Self::Pairing { code, .. } => match code {
                ErrorCode::TokenInvalid | ErrorCode::TokenExpired | ErrorCode::TokenUsed => 6,
                ErrorCode::PasswdError
                | ErrorCode::ApNotFound
                | ErrorCode::DhcpFailed
                | ErrorCode::CantConnectAp => 7,
                ErrorCode::DevAlreadyBound
                | ErrorCode::SignatureError
                | ErrorCode::ActivateFailed
                | ErrorCode::DnsFailed => 8,
                ErrorCode::Timeout => 9,
                ErrorCode::InvalidParm => 10,
                ErrorCode::NetworkUnreachable => 3,
                ErrorCode::TlsFailed => 14,
                ErrorCode::MqttAuthFailed | ErrorCode::Busy | ErrorCode::Internal => 1,
            },
            Self::Timeout(_) => 9,
            Self::Invalid(_) => 10,
            Self::Channel { code, .. } => match code {
                ChannelError::AuthFailed => 11,
                ChannelError::Locked | ChannelError::Backoff => 12,
                ChannelError::WindowClosed => 13,
                ChannelError::Busy => 3,
                ChannelError::Timeout => 9,
                ChannelError::Unsupported => 10,
                ChannelError::BadRequest | ChannelError::BadFrame => 1,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_map_to_their_class() {
        assert!(matches!(
            Failure::from_api(409, "token_used", "x"),
            Failure::Pairing {
                code: ErrorCode::TokenUsed,
                ..
            }
        ));
        assert!(matches!(
            Failure::from_api(401, "unauthorized", "x"),
            Failure::Auth(_)
        ));
        assert!(matches!(
            Failure::from_api(404, "not_found", "x"),
            Failure::NotFound(_)
        ));
        assert!(matches!(
            Failure::from_api(400, "bad_request", "x"),
            Failure::Invalid(_)
        ));
        assert_eq!(
            Failure::Pairing {
                code: ErrorCode::PasswdError,
                message: String::new()
            }
            .exit_code(),
            ExitCode::from(7)
        );
        assert_eq!(
            Failure::Pairing {
                code: ErrorCode::TokenExpired,
                message: String::new()
            }
            .exit_code(),
            ExitCode::from(6)
        );
    }
}
