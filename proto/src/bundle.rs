//! Signed bundles of a pairing component: the component's bytes and a manifest signed
//! with an ed25519 key. The signature covers the manifest's exact bytes, and the manifest
//! holds the SHA-256 and size of the component, so neither the version, the sequence,
//! the world nor the bytes can be changed under a valid signature.
//!
//! Layout: `TETHERB1` | manifest length (u32, big-endian) | manifest (JSON) |
//! signature (64 bytes) | component bytes.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::platform::Engine;
use crate::version::Version;

/// The WIT world (and package version) every pairing component implements.
pub const PAIRING_WORLD: &str = "tether:pairing/pairing@0.1.0";

/// The first bytes of every bundle.
pub const MAGIC: &[u8; 8] = b"TETHERB1";
/// What the signature is over: this context, then the manifest bytes.
const CONTEXT: &[u8] = b"tether-bundle-v1\n";
/// Manifests are small; anything bigger is not one.
const MAX_MANIFEST: usize = 4096;
/// Components bigger than this are refused before hashing.
pub const MAX_COMPONENT: usize = 16 << 20;

/// What a bundle says about its component. Every field is signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The component's version (`MAJOR.MINOR.PATCH`).
    pub version: String,
    /// Increases with every bundle a key signs; a device never accepts one it has passed.
    pub sequence: u64,
    /// The WIT world and package version the component implements.
    pub world: String,
    /// Lower-case hex SHA-256 of the component bytes.
    pub sha256: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// The oldest `tether-host` that may run it.
    pub min_host_version: String,
    /// Hex of the signing key's public half.
    pub key: String,
    /// Set when the bundle carries code precompiled for one platform, for hosts without
    /// the compiler, instead of a portable component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precompiled: Option<Precompiled>,
}

/// What precompiled code in a bundle is for. Signed with the rest of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Precompiled {
    /// The target triple of the hosts that may run it.
    pub target: String,
    /// The engine it was compiled for.
    pub engine: Engine,
    /// `wasmtime-VERSION` of the compiler: only the same version loads it.
    pub runtime: String,
    /// Hex SHA-256 of the portable component it was compiled from; every bundle of one
    /// module has the same.
    pub source_sha256: String,
}

impl Manifest {
    /// Hex SHA-256 of the portable component: of the bundle's bytes, or of the source
    /// they were compiled from.
    pub fn source_sha256(&self) -> &str {
        self.precompiled
            .as_ref()
            .map_or(&self.sha256, |p| &p.source_sha256)
    }
}

/// Why a bundle was refused. [`BundleError::name`] is the reason reported to the cloud.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Not a bundle, or a damaged one.
    #[error("not a valid bundle: {0}")]
    Malformed(String),
    /// Signed by a key the device does not trust.
    #[error("the bundle is signed by an untrusted key {0}")]
    UntrustedKey(String),
    /// The signature does not match the manifest.
    #[error("the bundle's signature is not valid")]
    BadSignature,
    /// The component bytes do not match the manifest's hash or size.
    #[error("the component does not match the signed hash (corrupted or altered)")]
    Corrupted,
}

impl BundleError {
    /// Stable snake_case name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::UntrustedKey(_) => "untrusted_key",
            Self::BadSignature => "bad_signature",
            Self::Corrupted => "corrupted",
        }
    }
}

/// A parsed bundle; [`Bundle::verify`] checks it.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The manifest.
    pub manifest: Manifest,
    manifest_bytes: Vec<u8>,
    signature: [u8; 64],
    /// The component.
    pub component: Vec<u8>,
}

impl Bundle {
    /// Signs a portable `component` into bundle bytes. `version` and `min_host_version`
    /// must be `MAJOR.MINOR.PATCH`.
    pub fn sign(
        component: &[u8],
        version: &str,
        sequence: u64,
        world: &str,
        min_host_version: &str,
        key: &SigningKey,
    ) -> Result<Vec<u8>, BundleError> {
        Self::sign_code(
            component,
            None,
            version,
            sequence,
            world,
            min_host_version,
            key,
        )
    }

    /// Signs `code` into bundle bytes: precompiled code when `precompiled` says for
    /// what, else a portable component.
    pub fn sign_code(
        component: &[u8],
        precompiled: Option<Precompiled>,
        version: &str,
        sequence: u64,
        world: &str,
        min_host_version: &str,
        key: &SigningKey,
    ) -> Result<Vec<u8>, BundleError> {
        for v in [version, min_host_version] {
            Version::parse(v).map_err(|e| BundleError::Malformed(e.to_string()))?;
        }
        if component.len() > MAX_COMPONENT {
            return Err(BundleError::Malformed(format!(
                "the component is larger than {MAX_COMPONENT} bytes"
            )));
        }
        let manifest = Manifest {
            version: version.to_owned(),
            sequence,
            world: world.to_owned(),
            sha256: hex::encode(Sha256::digest(component)),
            size: component.len() as u64,
            min_host_version: min_host_version.to_owned(),
            key: hex::encode(key.verifying_key().as_bytes()),
            precompiled,
        };
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| BundleError::Malformed(e.to_string()))?;
        let signature = key.sign(&signed_message(&manifest_bytes)).to_bytes();
        let bundle = Self {
            manifest,
            manifest_bytes,
            signature,
            component: component.to_vec(),
        };
        Ok(bundle.to_bytes())
    }

    /// Splits bundle bytes into their parts, checking only the structure.
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        let bad = |why: &str| BundleError::Malformed(why.to_owned());
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| bad("it does not start with TETHERB1"))?;
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("it is truncated"))?;
        let len = u32::from_be_bytes(*len) as usize;
        if len > MAX_MANIFEST || rest.len() < len + 64 {
            return Err(bad("its manifest length is wrong"));
        }
        let (manifest_bytes, rest) = rest.split_at(len);
        let (signature, component) = rest
            .split_first_chunk::<64>()
            .ok_or_else(|| bad("it is truncated"))?;
        let manifest: Manifest = serde_json::from_slice(manifest_bytes)
            .map_err(|e| BundleError::Malformed(format!("its manifest is not readable: {e}")))?;
        Ok(Self {
            manifest,
            manifest_bytes: manifest_bytes.to_vec(),
            signature: *signature,
            component: component.to_vec(),
        })
    }

    /// Checks the signing key against `trusted`, the signature over the manifest, and
    /// the component against the manifest's hash and size.
    pub fn verify(&self, trusted: &[VerifyingKey]) -> Result<(), BundleError> {
        let key = trusted
            .iter()
            .find(|k| hex::encode(k.as_bytes()) == self.manifest.key)
            .ok_or_else(|| BundleError::UntrustedKey(short(&self.manifest.key)))?;
        key.verify(
            &signed_message(&self.manifest_bytes),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| BundleError::BadSignature)?;
        let hash_ok = hex::encode(Sha256::digest(&self.component)) == self.manifest.sha256;
        if !hash_ok || self.component.len() as u64 != self.manifest.size {
            return Err(BundleError::Corrupted);
        }
        Ok(())
    }

    /// The bundle's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let len = u32::try_from(self.manifest_bytes.len()).unwrap_or(u32::MAX);
        let mut out =
            Vec::with_capacity(8 + 4 + self.manifest_bytes.len() + 64 + self.component.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.manifest_bytes);
        out.extend_from_slice(&self.signature);
        out.extend_from_slice(&self.component);
        out
    }
}

fn signed_message(manifest: &[u8]) -> Vec<u8> {
    [CONTEXT, manifest].concat()
}

fn short(key: &str) -> String {
    key.chars().take(16).collect()
}

/// Reads a public key from its hex form (64 hex digits).
pub fn public_key_from_hex(text: &str) -> Result<VerifyingKey, BundleError> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| BundleError::Malformed("a public key is 64 hex digits".into()))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| BundleError::Malformed("not an ed25519 public key".into()))
}

/// Reads a signing key from its hex form (the 32-byte seed, 64 hex digits).
pub fn signing_key_from_hex(text: &str) -> Result<SigningKey, BundleError> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| BundleError::Malformed("a signing key is 64 hex digits".into()))?;
    Ok(SigningKey::from_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORLD: &str = "tether:pairing/pairing@0.1.0";

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn signed(component: &[u8]) -> Vec<u8> {
        Bundle::sign(component, "1.2.3", 7, WORLD, "0.1.0", &key(1)).expect("signs")
    }

    #[test]
    fn a_signed_bundle_parses_and_verifies_against_its_key() {
        let bytes = signed(b"\0asm component");
        let bundle = Bundle::parse(&bytes).expect("parses");
        assert_eq!(bundle.manifest.version, "1.2.3");
        assert_eq!(bundle.manifest.sequence, 7);
        assert_eq!(bundle.component, b"\0asm component");
        bundle
            .verify(&[key(2).verifying_key(), key(1).verifying_key()])
            .expect("valid");
        assert_eq!(
            Bundle::parse(&bundle.to_bytes()).expect("again").to_bytes(),
            bytes
        );
    }

    #[test]
    fn another_key_altered_bytes_or_an_altered_manifest_are_refused() {
        let bytes = signed(b"\0asm component");
        let bundle = Bundle::parse(&bytes).expect("parses");
        assert!(matches!(
            bundle.verify(&[key(2).verifying_key()]),
            Err(BundleError::UntrustedKey(_))
        ));

        let mut corrupted = bytes.clone();
        let last = corrupted.len() - 1;
        corrupted[last] ^= 1;
        let bundle = Bundle::parse(&corrupted).expect("parses");
        assert_eq!(
            bundle.verify(&[key(1).verifying_key()]),
            Err(BundleError::Corrupted)
        );

        // The same length, a different version: the signature no longer matches.
        let text = String::from_utf8_lossy(&bytes).replace("\"1.2.3\"", "\"9.2.3\"");
        let swapped = Bundle::parse(text.as_bytes()).expect("parses");
        assert_eq!(swapped.manifest.version, "9.2.3");
        assert_eq!(
            swapped.verify(&[key(1).verifying_key()]),
            Err(BundleError::BadSignature)
        );
    }

    #[test]
    fn damaged_bundles_are_malformed_not_a_panic() {
        let bytes = signed(b"x");
        for cut in [0, 4, 8, 11, 12, 40, bytes.len() - 2] {
            let _ = Bundle::parse(&bytes[..cut]);
        }
        assert!(matches!(
            Bundle::parse(b"nonsense"),
            Err(BundleError::Malformed(_))
        ));
        assert!(matches!(
            Bundle::sign(b"x", "1.2", 1, WORLD, "0.1.0", &key(1)),
            Err(BundleError::Malformed(_))
        ));
    }

    #[test]
    fn precompiled_code_names_its_platform_under_the_signature() {
        let source = hex::encode(Sha256::digest(b"\0asm component"));
        let precompiled = Precompiled {
            target: "aarch64-unknown-linux-musl".into(),
            engine: Engine::Native,
            runtime: "wasmtime-48.0.8".into(),
            source_sha256: source.clone(),
        };
        let bytes = Bundle::sign_code(
            b"ELF code",
            Some(precompiled.clone()),
            "1.2.3",
            7,
            WORLD,
            "0.1.0",
            &key(1),
        )
        .expect("signs");
        let bundle = Bundle::parse(&bytes).expect("parses");
        bundle.verify(&[key(1).verifying_key()]).expect("valid");
        assert_eq!(bundle.manifest.precompiled, Some(precompiled));
        assert_eq!(bundle.manifest.source_sha256(), source);

        // Another target under the same signature: refused.
        let at = bytes
            .windows(7)
            .position(|w| w == b"aarch64")
            .expect("the target is in the manifest");
        let mut moved = bytes.clone();
        moved[at..at + 7].copy_from_slice(b"riscv64");
        let moved = Bundle::parse(&moved).expect("parses");
        assert_eq!(
            moved.verify(&[key(1).verifying_key()]),
            Err(BundleError::BadSignature)
        );
        // A portable bundle's manifest has no such field, as before.
        let portable = Bundle::parse(&signed(b"x")).expect("parses");
        assert!(!String::from_utf8_lossy(&portable.to_bytes()).contains("precompiled"));
    }

    #[test]
    fn keys_read_from_hex() {
        let k = key(3);
        let public = public_key_from_hex(&hex::encode(k.verifying_key().as_bytes())).expect("pk");
        assert_eq!(public, k.verifying_key());
        let secret = signing_key_from_hex(&hex::encode(k.to_bytes())).expect("sk");
        assert_eq!(secret.verifying_key(), k.verifying_key());
        assert!(public_key_from_hex("abc").is_err());
    }
}
