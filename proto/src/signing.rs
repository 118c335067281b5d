//! Device request signing (docs/PROTOCOL.md):
//! `Authorization: Tether-HMAC uuid=<uuid>,t=<unix secs>,nonce=<16 hex>,sig=<hex>` with
//! `sig = HMAC-SHA256(key, METHOD "\n" PATH "\n" t "\n" nonce "\n" hex(SHA-256(body)))`.
//!
//! `PATH` is the request target exactly as sent, query included. The key is the factory
//! authkey (principal `uuid`) or, after activation, the dev-secret (principal `dev_id`).
//! This module checks the signature and the timestamp window; remembering nonces to
//! refuse replays needs state, so it belongs to the verifier (the service).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The authorization scheme name.
pub const SCHEME: &str = "Tether-HMAC";
/// How far a request's timestamp may be from the verifier's clock, in seconds.
pub const MAX_SKEW_SECS: u64 = 300;
/// Length of a nonce in hex digits (8 random bytes).
pub const NONCE_HEX_LEN: usize = 16;
/// Longest principal (uuid or dev-id) accepted in a header.
const MAX_PRINCIPAL_LEN: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// Who signed a request, and so which secret verifies it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A device before activation, signing with its authkey.
    Uuid(String),
    /// An activated device, signing with its dev-secret.
    DevId(String),
}

impl Principal {
    /// The header field that names the signer (`uuid` or `dev_id`) and its value.
    pub fn field(&self) -> (&'static str, &str) {
        match self {
            Principal::Uuid(v) => ("uuid", v),
            Principal::DevId(v) => ("dev_id", v),
        }
    }
}

/// Why a signed request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header does not use the `Tether-HMAC` scheme.
    #[error("the authorization scheme must be {SCHEME}")]
    Scheme,
    /// The header is not of the documented form.
    #[error("malformed authorization header: {0}")]
    Malformed(&'static str),
    /// The timestamp is outside the accepted window.
    #[error("request timestamp {t} is more than {MAX_SKEW_SECS} s from the server clock {now}")]
    Skew {
        /// The request's timestamp.
        t: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// The signature does not match.
    #[error("the signature does not match")]
    Mismatch,
}

/// A parsed or freshly made `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader {
    /// Who signed.
    pub principal: Principal,
    /// Unix seconds when signed.
    pub t: u64,
    /// 16 lowercase hex digits, unique per request.
    pub nonce: String,
    /// The HMAC-SHA256 signature.
    pub sig: [u8; 32],
}

/// The exact string that is signed.
pub fn canonical_string(method: &str, path: &str, t: u64, nonce: &str, body: &[u8]) -> String {
    let body_hash = hex::encode(Sha256::digest(body));
    format!("{method}\n{path}\n{t}\n{nonce}\n{body_hash}")
}

fn mac(key: &[u8], method: &str, path: &str, t: u64, nonce: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(canonical_string(method, path, t, nonce, body).as_bytes());
    mac
}

/// A fresh random nonce from the operating system's CSPRNG.
pub fn new_nonce() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; NONCE_HEX_LEN / 2];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

impl AuthHeader {
    /// Signs a request.
    pub fn sign(
        principal: Principal,
        key: &[u8],
        t: u64,
        nonce: String,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Self {
        let sig = mac(key, method, path, t, &nonce, body)
            .finalize()
            .into_bytes()
            .into();
        Self {
            principal,
            t,
            nonce,
            sig,
        }
    }

    /// Checks the timestamp window against `now` (Unix seconds), then the signature in
    /// constant time.
    pub fn verify(
        &self,
        key: &[u8],
        method: &str,
        path: &str,
        body: &[u8],
        now: u64,
    ) -> Result<(), SignatureError> {
        if self.t.abs_diff(now) > MAX_SKEW_SECS {
            return Err(SignatureError::Skew { t: self.t, now });
        }
        mac(key, method, path, self.t, &self.nonce, body)
            .verify_slice(&self.sig)
            .map_err(|_| SignatureError::Mismatch)
    }

    /// Parses the value of an `Authorization` header.
    pub fn parse(value: &str) -> Result<Self, SignatureError> {
        let rest = value
            .strip_prefix(SCHEME)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or(SignatureError::Scheme)?;
        let (mut principal, mut t, mut nonce, mut sig) = (None, None, None, None);
        for part in rest.split(',') {
            let (key, val) = part
                .trim()
                .split_once('=')
                .ok_or(SignatureError::Malformed("each field must be key=value"))?;
            match key {
                "uuid" => set_once(&mut principal, Principal::Uuid(parse_principal(val)?))?,
                "dev_id" => set_once(&mut principal, Principal::DevId(parse_principal(val)?))?,
                "t" => set_once(&mut t, parse_time(val)?)?,
                "nonce" => set_once(&mut nonce, parse_nonce(val)?)?,
                "sig" => set_once(&mut sig, parse_sig(val)?)?,
                _ => return Err(SignatureError::Malformed("unknown field")),
            }
        }
        Ok(Self {
            principal: principal.ok_or(SignatureError::Malformed("uuid or dev_id is missing"))?,
            t: t.ok_or(SignatureError::Malformed("t is missing"))?,
            nonce: nonce.ok_or(SignatureError::Malformed("nonce is missing"))?,
            sig: sig.ok_or(SignatureError::Malformed("sig is missing"))?,
        })
    }
}

impl fmt::Display for AuthHeader {
    /// The header value, ready to send.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (field, who) = self.principal.field();
        write!(
            f,
            "{SCHEME} {field}={who},t={},nonce={},sig={}",
            self.t,
            self.nonce,
            hex::encode(self.sig)
        )
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<(), SignatureError> {
    match slot.replace(value) {
        None => Ok(()),
        Some(_) => Err(SignatureError::Malformed("a field appears twice")),
    }
}

fn parse_principal(val: &str) -> Result<String, SignatureError> {
    let ok = !val.is_empty()
        && val.len() <= MAX_PRINCIPAL_LEN
        && val
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(val.to_owned())
    } else {
        Err(SignatureError::Malformed(
            "uuid or dev_id must be 1-64 letters, digits, '-' or '_'",
        ))
    }
}

fn parse_time(val: &str) -> Result<u64, SignatureError> {
    if val.is_empty() || !val.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Malformed("t must be Unix seconds"));
    }
    val.parse()
        .map_err(|_| SignatureError::Malformed("t must be Unix seconds"))
}

fn parse_nonce(val: &str) -> Result<String, SignatureError> {
    if val.len() == NONCE_HEX_LEN && val.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(val.to_ascii_lowercase())
    } else {
        Err(SignatureError::Malformed("nonce must be 16 hex digits"))
    }
}

fn parse_sig(val: &str) -> Result<[u8; 32], SignatureError> {
    let mut sig = [0u8; 32];
    hex::decode_to_slice(val, &mut sig)
        .map_err(|_| SignatureError::Malformed("sig must be 64 hex digits"))?;
    Ok(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors computed independently (Python's `hmac` and `hashlib`), committed so that
    /// every implementation of the scheme can check itself against them.
    struct Vector {
        key: &'static str,
        method: &'static str,
        path: &'static str,
        t: u64,
        nonce: &'static str,
        body: &'static [u8],
        body_hash: &'static str,
        sig: &'static str,
    }

    const VECTORS: &[Vector] = &[
        Vector {
            key: "0123456789abcdef0123456789abcdef",
            method: "POST",
            path: "/v1/devices/activate",
            t: 1_700_000_000,
            nonce: "00112233aabbccdd",
            body: br#"{"uuid":"tether0123456789abcd"}"#,
            body_hash: "3167e2722524d6029be45e0a780acb8b13be0d78e1954664344e67104515dc0f",
            sig: "ce7b7439780575bba6be8fc2e760a57d09968f96cda3791ad381e958178d29fc",
        },
        Vector {
            key: "0123456789abcdef0123456789abcdef",
            method: "GET",
            path: "/v1/pairing-tokens/EUab12CD34?wait=5",
            t: 1_700_000_300,
            nonce: "ffeeddccbbaa9988",
            body: b"",
            body_hash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sig: "aa8d016d4522882d3039e0938656e7ff2ea30c49fc5e10f91abb0043bcd34ac1",
        },
        Vector {
            key: "devsecretdevsecretdevsecret12345",
            method: "POST",
            path: "/v1/devices/d-7f3a/mqtt-credentials",
            t: 1_799_999_999,
            nonce: "0a0b0c0d0e0f1011",
            body: b"{}",
            body_hash: "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            sig: "dc69e4f94e7f015d90562e46532f1a0719b07d28fd5ce4a51664dc13ed185f1e",
        },
    ];

    fn signed(v: &Vector) -> AuthHeader {
        AuthHeader::sign(
            Principal::Uuid("tether0123456789abcd".into()),
            v.key.as_bytes(),
            v.t,
            v.nonce.into(),
            v.method,
            v.path,
            v.body,
        )
    }

    #[test]
    fn signatures_match_the_committed_vectors() {
        for v in VECTORS {
            let canonical = canonical_string(v.method, v.path, v.t, v.nonce, v.body);
            assert_eq!(
                canonical,
                format!(
                    "{}\n{}\n{}\n{}\n{}",
                    v.method, v.path, v.t, v.nonce, v.body_hash
                )
            );
            assert_eq!(hex::encode(signed(v).sig), v.sig, "vector {}", v.path);
        }
    }

    #[test]
    fn a_signed_header_verifies_inside_the_window() {
        for v in VECTORS {
            let header = signed(v);
            let check = |now| header.verify(v.key.as_bytes(), v.method, v.path, v.body, now);
            assert_eq!(check(v.t), Ok(()));
            assert_eq!(check(v.t + MAX_SKEW_SECS), Ok(()));
            assert_eq!(check(v.t - MAX_SKEW_SECS), Ok(()));
        }
    }

    #[test]
    fn a_skewed_clock_is_refused_in_either_direction() {
        let v = &VECTORS[0];
        let header = signed(v);
        for now in [v.t + MAX_SKEW_SECS + 1, v.t - MAX_SKEW_SECS - 1] {
            assert_eq!(
                header.verify(v.key.as_bytes(), v.method, v.path, v.body, now),
                Err(SignatureError::Skew { t: v.t, now })
            );
        }
    }

    #[test]
    fn any_change_to_the_request_breaks_the_signature() {
        let v = &VECTORS[0];
        let header = signed(v);
        let key = v.key.as_bytes();
        let mismatch = Err(SignatureError::Mismatch);
        assert_eq!(
            header.verify(b"another key", v.method, v.path, v.body, v.t),
            mismatch
        );
        assert_eq!(header.verify(key, "PUT", v.path, v.body, v.t), mismatch);
        assert_eq!(
            header.verify(key, v.method, "/v1/other", v.body, v.t),
            mismatch
        );
        assert_eq!(header.verify(key, v.method, v.path, b"{}", v.t), mismatch);
        let mut other_nonce = header.clone();
        other_nonce.nonce = "0000000000000000".into();
        assert_eq!(
            other_nonce.verify(key, v.method, v.path, v.body, v.t),
            mismatch
        );
    }

    #[test]
    fn the_header_formats_and_parses_back() {
        let header = signed(&VECTORS[0]);
        let text = header.to_string();
        assert_eq!(
            text,
            format!(
                "Tether-HMAC uuid=tether0123456789abcd,t=1700000000,nonce=00112233aabbccdd,sig={}",
                VECTORS[0].sig
            )
        );
        assert_eq!(AuthHeader::parse(&text), Ok(header));

        let dev = AuthHeader {
            principal: Principal::DevId("d-7f3a".into()),
            ..signed(&VECTORS[2])
        };
        assert_eq!(AuthHeader::parse(&dev.to_string()), Ok(dev));
    }

    #[test]
    fn fields_may_come_in_any_order_with_spaces() {
        let header = signed(&VECTORS[0]);
        let text = format!(
            "Tether-HMAC sig={}, nonce=00112233aabbccdd, t=1700000000, uuid=tether0123456789abcd",
            VECTORS[0].sig
        );
        assert_eq!(AuthHeader::parse(&text), Ok(header));
    }

    #[test]
    fn malformed_headers_are_refused_with_a_reason() {
        let sig = VECTORS[0].sig;
        let ok_tail = format!("t=1,nonce=00112233aabbccdd,sig={sig}");
        let cases = [
            ("Bearer abc".to_owned(), SignatureError::Scheme),
            (
                format!("Tether-HMACuuid=a,{ok_tail}"),
                SignatureError::Scheme,
            ),
            (
                format!("Tether-HMAC {ok_tail}"),
                SignatureError::Malformed("uuid or dev_id is missing"),
            ),
            (
                format!("Tether-HMAC uuid=a,uuid=b,{ok_tail}"),
                SignatureError::Malformed("a field appears twice"),
            ),
            (
                format!("Tether-HMAC uuid=a,dev_id=b,{ok_tail}"),
                SignatureError::Malformed("a field appears twice"),
            ),
            (
                format!("Tether-HMAC uuid=a b,{ok_tail}"),
                SignatureError::Malformed(
                    "uuid or dev_id must be 1-64 letters, digits, '-' or '_'",
                ),
            ),
            (
                format!("Tether-HMAC uuid=a,t=-5,nonce=00112233aabbccdd,sig={sig}"),
                SignatureError::Malformed("t must be Unix seconds"),
            ),
            (
                format!("Tether-HMAC uuid=a,t=1,nonce=0011,sig={sig}"),
                SignatureError::Malformed("nonce must be 16 hex digits"),
            ),
            (
                "Tether-HMAC uuid=a,t=1,nonce=00112233aabbccdd,sig=zz".to_owned(),
                SignatureError::Malformed("sig must be 64 hex digits"),
            ),
            (
                "Tether-HMAC uuid=a,t=1,nonce=00112233aabbccdd".to_owned(),
                SignatureError::Malformed("sig is missing"),
            ),
            (
                format!("Tether-HMAC uuid=a,x=1,{ok_tail}"),
                SignatureError::Malformed("unknown field"),
            ),
            (
                "Tether-HMAC uuid".to_owned(),
                SignatureError::Malformed("each field must be key=value"),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(AuthHeader::parse(&text), Err(want), "{text}");
        }
    }

    #[test]
    fn nonces_are_fresh_hex() {
        let a = new_nonce().expect("random source works");
        let b = new_nonce().expect("random source works");
        assert_eq!(a.len(), NONCE_HEX_LEN);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
