//! The setup code on a device's label, the QR payload that carries it, and the pairing
//! verifier the device keeps in its place.
//!
//! A setup code is ten random digits (about 33 bits), which a person can type and which
//! an online guesser, held to a few tries per pairing window, cannot find. The device
//! never stores it: it keeps a [`PairingVerifier`], SPAKE2+'s registration record (`w0`
//! and `L = w1·P`) and the salt of the password hash that turned the code into `w0` and
//! `w1`. Whoever reads the verifier off a device must still guess the code against
//! Argon2id before posing as a provisioner.

use std::fmt;
use std::str::FromStr;

use spake2plus::{P256Sha256, VerifierRecord};

use crate::b64::B64;

/// Digits in a setup code.
pub const SETUP_CODE_DIGITS: usize = 10;
/// Bytes of the password hash's salt.
pub const SALT_LEN: usize = 16;
/// The prefix of a verifier's text form; it names the PAKE suite and the hash.
const VERIFIER_PREFIX: &str = "spake2p1:";
/// The QR payload's scheme and path.
const QR_PREFIX: &str = "tether:pair?";
/// The QR payload's format version.
const QR_VERSION: &str = "1";

/// Why a setup code, QR payload or verifier is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupCodeError {
    /// Not ten digits (spaces and dashes aside).
    #[error("a setup code has {SETUP_CODE_DIGITS} digits (spaces and dashes are ignored)")]
    Code,
    /// A QR payload that does not follow the format.
    #[error("not a Tether QR payload: {0}")]
    Qr(String),
    /// A verifier that does not parse.
    #[error("not a pairing verifier: {0}")]
    Verifier(&'static str),
    /// The random source failed.
    #[error("the random source failed")]
    Random,
}

/// A device's setup code: ten digits. `Debug` hides it; `Display` shows it grouped
/// `12345-67890`, for labels.
#[derive(Clone, PartialEq, Eq)]
pub struct SetupCode(String);

impl SetupCode {
    /// A new code from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, SetupCodeError> {
        crate::random::string(b"0123456789", SETUP_CODE_DIGITS)
            .map(Self)
            .map_err(|_| SetupCodeError::Random)
    }

    /// Parses a typed code: ten digits, with any spaces and dashes between them.
    pub fn parse(text: &str) -> Result<Self, SetupCodeError> {
        let digits: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if digits.len() != SETUP_CODE_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SetupCodeError::Code);
        }
        Ok(Self(digits))
    }

    /// The ten digits, ungrouped.
    pub fn digits(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SetupCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", &self.0[..5], &self.0[5..])
    }
}

impl fmt::Debug for SetupCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SetupCode(***)")
    }
}

/// What a device's QR code says: `tether:pair?v=1&pk=PRODUCT_KEY&uuid=UUID&code=DIGITS`.
#[derive(Clone, PartialEq, Eq)]
pub struct QrPayload {
    /// The product key.
    pub product_key: String,
    /// The license uuid.
    pub uuid: String,
    /// The setup code.
    pub code: SetupCode,
}

impl fmt::Debug for QrPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QrPayload")
            .field("product_key", &self.product_key)
            .field("uuid", &self.uuid)
            .finish_non_exhaustive()
    }
}

impl QrPayload {
    /// The payload's text (it holds the setup code: print it, never log it).
    pub fn encode(&self) -> String {
        format!(
            "{QR_PREFIX}v={QR_VERSION}&pk={}&uuid={}&code={}",
            self.product_key,
            self.uuid,
            self.code.digits()
        )
    }
}

impl FromStr for QrPayload {
    type Err = SetupCodeError;

    /// Parses a payload: every field once, nothing else, letters and digits only.
    fn from_str(text: &str) -> Result<Self, SetupCodeError> {
        let bad = |why: &str| SetupCodeError::Qr(why.to_owned());
        let query = text
            .trim()
            .strip_prefix(QR_PREFIX)
            .ok_or_else(|| bad("it must start with tether:pair?"))?;
        let (mut version, mut pk, mut uuid, mut code) = (None, None, None, None);
        for pair in query.split('&') {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| bad("a field has no ="))?;
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(bad("values are letters and digits"));
            }
            let slot = match key {
                "v" => &mut version,
                "pk" => &mut pk,
                "uuid" => &mut uuid,
                "code" => &mut code,
                _ => return Err(bad("an unknown field")),
            };
            if slot.replace(value).is_some() {
                return Err(bad("a field appears twice"));
            }
        }
        if version != Some(QR_VERSION) {
            return Err(bad("only version 1 is known"));
        }
        let (Some(pk), Some(uuid), Some(code)) = (pk, uuid, code) else {
            return Err(bad("pk, uuid and code are required"));
        };
        Ok(Self {
            product_key: pk.to_owned(),
            uuid: uuid.to_owned(),
            code: SetupCode::parse(code)?,
        })
    }
}

/// What a device keeps instead of its setup code: the salt and SPAKE2+'s registration
/// record. Its text form, `spake2p1:` and the base64url of salt ‖ record, goes into the
/// host's configuration. `Debug` hides it (`w0` in it lets a thief test guesses).
#[derive(Clone)]
pub struct PairingVerifier {
    salt: [u8; SALT_LEN],
    record: VerifierRecord<P256Sha256>,
}

impl PairingVerifier {
    /// The salt the provisioner hashes the code with.
    pub fn salt(&self) -> &[u8; SALT_LEN] {
        &self.salt
    }

    /// The registration record the device verifies with.
    pub fn record(&self) -> &VerifierRecord<P256Sha256> {
        &self.record
    }

    /// The text form.
    pub fn encode(&self) -> String {
        let mut bytes = self.salt.to_vec();
        bytes.extend_from_slice(self.record.to_bytes().as_ref());
        format!("{VERIFIER_PREFIX}{}", B64::encode(&bytes))
    }
}

impl FromStr for PairingVerifier {
    type Err = SetupCodeError;

    fn from_str(text: &str) -> Result<Self, SetupCodeError> {
        let body = text
            .trim()
            .strip_prefix(VERIFIER_PREFIX)
            .ok_or(SetupCodeError::Verifier("it must start with spake2p1:"))?;
        let bytes = B64::decode(body).ok_or(SetupCodeError::Verifier("not base64url"))?;
        if bytes.len() <= SALT_LEN {
            return Err(SetupCodeError::Verifier("too short"));
        }
        let (salt, record) = bytes.split_at(SALT_LEN);
        let record = VerifierRecord::from_bytes(record)
            .map_err(|_| SetupCodeError::Verifier("the record is not a valid w0 and L"))?;
        Ok(Self {
            salt: salt.try_into().expect("split at SALT_LEN"),
            record,
        })
    }
}

impl fmt::Debug for PairingVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PairingVerifier(***)")
    }
}

#[cfg(feature = "setup-code")]
pub use derive::{issue, prover_secret, verifier_for};

#[cfg(feature = "setup-code")]
mod derive {
    use spake2plus::{P256Sha256, ProverSecret};

    use super::{PairingVerifier, SALT_LEN, SetupCode, SetupCodeError};

    /// Argon2id's memory in KiB, passes and lanes. Part of the `spake2p1` format: a
    /// change needs a new prefix.
    const ARGON2_PARAMS: (u32, u32, u32) = (8 * 1024, 2, 1);
    /// Bytes of hash output: `w0s ‖ w1s`, 40 each for P-256 (RFC 9383 §3.2).
    const OUTPUT_LEN: usize = 80;

    /// The prover's secret (`w0`, `w1`) for a code and a salt: Argon2id over RFC 9383's
    /// `len(pw) ‖ pw ‖ len(idProver) ‖ idProver ‖ len(idVerifier) ‖ idVerifier`, with
    /// both identities empty (the salt is the device's own).
    pub fn prover_secret(
        code: &SetupCode,
        salt: &[u8],
    ) -> Result<ProverSecret<P256Sha256>, SetupCodeError> {
        let (m, t, p) = ARGON2_PARAMS;
        let params = argon2::Params::new(m, t, p, Some(OUTPUT_LEN))
            .expect("the parameters are within Argon2's bounds");
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut input = Vec::with_capacity(8 * 3 + code.digits().len());
        input.extend_from_slice(&(code.digits().len() as u64).to_le_bytes());
        input.extend_from_slice(code.digits().as_bytes());
        input.extend_from_slice(&0u64.to_le_bytes());
        input.extend_from_slice(&0u64.to_le_bytes());
        let mut output = zeroize::Zeroizing::new([0u8; OUTPUT_LEN]);
        argon
            .hash_password_into(&input, salt, output.as_mut())
            .map_err(|_| SetupCodeError::Verifier("the salt is too short for Argon2"))?;
        ProverSecret::from_pbkdf_output(output.as_ref())
            .map_err(|_| SetupCodeError::Verifier("the hash gave a zero scalar"))
    }

    /// A new setup code and the verifier a device keeps for it.
    pub fn issue() -> Result<(SetupCode, PairingVerifier), SetupCodeError> {
        let code = SetupCode::generate()?;
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt).map_err(|_| SetupCodeError::Random)?;
        Ok((code.clone(), verifier_for(&code, salt)?))
    }

    /// The verifier for a given code and salt.
    pub fn verifier_for(
        code: &SetupCode,
        salt: [u8; SALT_LEN],
    ) -> Result<PairingVerifier, SetupCodeError> {
        let record = prover_secret(code, &salt)?.verifier_record();
        Ok(PairingVerifier { salt, record })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_with_separators_show_grouped_and_hide_in_debug() {
        let code = SetupCode::parse("12345 67890").expect("parses");
        assert_eq!(code, SetupCode::parse("1234-567-890").expect("parses"));
        assert_eq!(code.to_string(), "12345-67890");
        assert_eq!(format!("{code:?}"), "SetupCode(***)");
        for bad in [
            "",
            "123456789",
            "12345678901",
            "12345x7890",
            "１２３４５６７８９０",
        ] {
            assert_eq!(SetupCode::parse(bad), Err(SetupCodeError::Code), "{bad}");
        }
        let generated = SetupCode::generate().expect("random");
        assert_eq!(generated.digits().len(), SETUP_CODE_DIGITS);
        assert_ne!(generated, SetupCode::generate().expect("random"));
    }

    #[test]
    fn qr_payloads_round_trip_and_refuse_anything_else() {
        let qr = QrPayload {
            product_key: "p1aaaaaaaaaaaaaa".into(),
            uuid: "u1bbbbbbbbbbbbbbbbbb".into(),
            code: SetupCode::parse("0123456789").expect("parses"),
        };
        let text = qr.encode();
        assert_eq!(
            text,
            "tether:pair?v=1&pk=p1aaaaaaaaaaaaaa&uuid=u1bbbbbbbbbbbbbbbbbb&code=0123456789"
        );
        assert_eq!(text.parse::<QrPayload>().expect("parses"), qr);
        assert!(!format!("{qr:?}").contains("0123456789"));
        for bad in [
            "tether:pair?v=2&pk=a&uuid=b&code=0123456789",
            "tether:pair?v=1&pk=a&uuid=b",
            "tether:pair?v=1&pk=a&uuid=b&code=0123456789&x=1",
            "tether:pair?v=1&pk=a&pk=a&uuid=b&code=0123456789",
            "tether:pair?v=1&pk=a%20&uuid=b&code=0123456789",
            "tether:pair?v=1&pk=a&uuid=b&code=123",
            "https://example.com/?v=1",
        ] {
            assert!(bad.parse::<QrPayload>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_verifier_round_trips_as_text_and_hides_in_debug() {
        let (code, verifier) = issue().expect("issues");
        let text = verifier.encode();
        assert!(text.starts_with("spake2p1:"));
        let back: PairingVerifier = text.parse().expect("parses");
        assert_eq!(back.encode(), text);
        assert_eq!(format!("{back:?}"), "PairingVerifier(***)");
        // The same code and salt give the same record; another code does not.
        let again = prover_secret(&code, back.salt()).expect("derives");
        assert_eq!(
            again.verifier_record().to_bytes().as_ref(),
            back.record().to_bytes().as_ref()
        );
        let other = SetupCode::parse("0000000000").expect("parses");
        let wrong = prover_secret(&other, back.salt()).expect("derives");
        assert_ne!(
            wrong.verifier_record().to_bytes().as_ref(),
            back.record().to_bytes().as_ref()
        );
        for bad in [
            "",
            "spake2p1:",
            "spake2p1:AAAA",
            "spake2p2:AAAA",
            &text[..text.len() - 4],
        ] {
            assert!(bad.parse::<PairingVerifier>().is_err(), "{bad}");
        }
    }
}
