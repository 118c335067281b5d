//! Validation of the `user-cfg` arguments, with the typed error each fault earns.

use tether_proto::{ErrorCode, PairingToken, Secret};

/// Longest SSID, in bytes (IEEE 802.11).
pub const MAX_SSID_BYTES: usize = 32;
/// Shortest WPA passphrase, in characters.
pub const MIN_PASSPHRASE: usize = 8;
/// Longest WPA passphrase, in characters.
pub const MAX_PASSPHRASE: usize = 63;
/// Length of a raw WPA pre-shared key written as hex digits.
pub const PSK_HEX_LEN: usize = 64;

/// Router credentials and token that passed validation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Credentials {
    /// Router network name.
    pub ssid: String,
    /// Router password (empty for an open network).
    pub passwd: Secret,
    /// Pairing token.
    pub token: Secret,
}

impl Credentials {
    /// The parsed pairing token. Credentials are only built from a valid token.
    pub fn token(&self) -> PairingToken {
        PairingToken::parse(self.token.expose()).expect("validated when the credentials were built")
    }
}

/// Checks `user-cfg`'s arguments: SSID 1-32 bytes; password empty (open network), 8-63
/// printable ASCII characters (a WPA passphrase) or 64 hex digits (a raw PSK); a
/// well-formed pairing token.
pub fn validate(ssid: &str, passwd: &str, token: &str) -> Result<Credentials, ErrorCode> {
    validate_network(ssid, passwd)?;
    PairingToken::parse(token).map_err(|_| ErrorCode::TokenInvalid)?;
    Ok(Credentials {
        ssid: ssid.to_owned(),
        passwd: Secret::new(passwd),
        token: Secret::new(token),
    })
}

/// Checks router credentials alone (a network change needs no token).
pub fn validate_network(ssid: &str, passwd: &str) -> Result<(), ErrorCode> {
    if ssid.is_empty() || ssid.len() > MAX_SSID_BYTES || !is_valid_password(passwd) {
        return Err(ErrorCode::InvalidParm);
    }
    Ok(())
}

fn is_valid_password(passwd: &str) -> bool {
    let printable = |b: u8| (0x20..=0x7e).contains(&b);
    let len = passwd.len();
    len == 0
        || ((MIN_PASSPHRASE..=MAX_PASSPHRASE).contains(&len) && passwd.bytes().all(printable))
        || (len == PSK_HEX_LEN && passwd.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "EUab12CD34wxYZ";

    #[test]
    fn valid_arguments_are_accepted() {
        for passwd in ["", "12345678", &"p".repeat(63), &"aB0f".repeat(16)] {
            let creds = validate("home", passwd, TOKEN).expect("valid");
            assert_eq!(creds.passwd.expose(), passwd);
            assert_eq!(creds.token().region(), "EU");
        }
        assert!(validate(&"s".repeat(32), "12345678", TOKEN).is_ok());
        // 32 bytes of UTF-8 is still a valid SSID.
        assert!(validate(&"é".repeat(16), "12345678", TOKEN).is_ok());
    }

    #[test]
    fn ssid_out_of_range_is_invalid_parm() {
        assert_eq!(validate("", "12345678", TOKEN), Err(ErrorCode::InvalidParm));
        assert_eq!(
            validate(&"s".repeat(33), "12345678", TOKEN),
            Err(ErrorCode::InvalidParm)
        );
        assert_eq!(
            validate(&"é".repeat(17), "12345678", TOKEN),
            Err(ErrorCode::InvalidParm)
        );
    }

    #[test]
    fn passwords_outside_the_wpa_forms_are_invalid_parm() {
        let bad = [
            "1234567".to_owned(),  // too short for a passphrase
            "p".repeat(70),        // too long
            "g".repeat(64),        // 64 characters but not hex
            "pässwörd".to_owned(), // not ASCII
            "tab\there1".to_owned(),
        ];
        for passwd in bad {
            assert_eq!(
                validate("home", &passwd, TOKEN),
                Err(ErrorCode::InvalidParm),
                "{passwd:?}"
            );
        }
    }

    #[test]
    fn a_malformed_token_is_token_invalid() {
        for token in ["", "EUab12CD34wxY", "euab12CD34wxYZ", "EUab12CD34wx!Z"] {
            assert_eq!(
                validate("home", "12345678", token),
                Err(ErrorCode::TokenInvalid),
                "{token}"
            );
        }
    }

    #[test]
    fn the_password_check_comes_before_the_token_check() {
        // Both are bad: the caller hears about the first argument at fault.
        assert_eq!(
            validate("home", "short", "bad"),
            Err(ErrorCode::InvalidParm)
        );
    }
}
