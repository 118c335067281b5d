//! The data channel's security, protocol v2: a SPAKE2+ handshake (RFC 9383, suite
//! P256-SHA256-HKDF-SHA256-HMAC-SHA256) from the setup code, with key confirmation both
//! ways, then ChaCha20-Poly1305 frames whose nonces are per-direction counters.
//!
//! The device is SPAKE2+'s verifier (it holds only a [`PairingVerifier`]), the
//! provisioner its prover (it knows the setup code). Both sides use these types: the
//! pairing component for the device, the CLI for the provisioner.
//!
//! A frame that fails to open — tampered, replayed, reordered or cut — breaks the
//! [`Session`] for good: every later `open` and `seal` fails too.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use spake2plus::rand_core::{TryCryptoRng, TryRng, UnwrapErr};
use spake2plus::{
    ConfirmP, ConfirmV, Context, P256Sha256, Prover, ProverConfirming, ProverSecret, ShareP,
    ShareV, Verifier, VerifierConfirming,
};

use crate::setup_code::PairingVerifier;

/// The security mode `info` offers for v2: the PAKE, the code's hash, the AEAD.
pub const SECURITY_MODE: &str = "spake2p-p256-sha256+argon2id+chacha20poly1305";
/// SPAKE2+'s context string, binding every run to this protocol.
const CONTEXT: &[u8] = b"tether data channel v2";
/// HKDF labels of the two directions' keys.
const TO_DEVICE: &[u8] = b"tether v2 provisioner to device";
const TO_PROVISIONER: &[u8] = b"tether v2 device to provisioner";

/// Why a handshake or a frame failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecureError {
    /// A share or confirmation that does not parse (wrong length, not on the curve).
    #[error("a handshake message is malformed")]
    Malformed,
    /// The peer's key confirmation is wrong: it does not know the setup code.
    #[error("the key confirmation failed")]
    Confirmation,
    /// A frame did not open, or the session broke earlier.
    #[error("a frame failed to open")]
    Frame,
}

fn context() -> Context<'static> {
    Context {
        context: CONTEXT,
        prover_id: b"",
        verifier_id: b"",
    }
}

/// The operating system's CSPRNG, for the handshake's ephemeral scalars. A platform
/// without one cannot run the handshake; it panics rather than pick predictable scalars.
pub fn system_rng() -> UnwrapErr<SystemRng> {
    UnwrapErr(SystemRng)
}

/// `getrandom` as a `rand_core` source.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRng;

impl TryRng for SystemRng {
    type Error = getrandom::Error;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        getrandom::u32()
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        getrandom::u64()
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        getrandom::fill(dst)
    }
}

impl TryCryptoRng for SystemRng {}

/// The device's half of a handshake after `pake1`: it sent `shareV` and `confirmV` and
/// waits for the provisioner's `confirmP`.
pub struct DeviceHandshake(VerifierConfirming<P256Sha256>);

impl std::fmt::Debug for DeviceHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceHandshake")
    }
}

impl DeviceHandshake {
    /// Answers the provisioner's `shareP`: returns the state and `(shareV, confirmV)`.
    pub fn respond(
        verifier: &PairingVerifier,
        share_p: &[u8],
        rng: &mut (impl spake2plus::rand_core::CryptoRng + ?Sized),
    ) -> Result<(Self, Vec<u8>, Vec<u8>), SecureError> {
        let share_p =
            ShareP::<P256Sha256>::from_bytes(share_p).map_err(|_| SecureError::Malformed)?;
        let (started, share_v) = Verifier::start(verifier.record(), &context(), rng);
        let (confirming, confirm_v) = started
            .receive(&share_p)
            .map_err(|_| SecureError::Malformed)?;
        Ok((
            Self(confirming),
            share_v.as_bytes().to_vec(),
            confirm_v.as_bytes().to_vec(),
        ))
    }

    /// Checks `confirmP`; only a provisioner that knows the setup code passes.
    pub fn finish(self, confirm_p: &[u8]) -> Result<Session, SecureError> {
        let confirm_p =
            ConfirmP::<P256Sha256>::from_bytes(confirm_p).map_err(|_| SecureError::Malformed)?;
        let key = self
            .0
            .finish(&confirm_p)
            .map_err(|_| SecureError::Confirmation)?;
        Ok(Session::new(key.as_bytes(), Role::Device))
    }
}

/// The provisioner's half of a handshake after it sent `shareP`.
pub struct ProvisionerHandshake(Prover<P256Sha256>);

impl std::fmt::Debug for ProvisionerHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProvisionerHandshake")
    }
}

impl ProvisionerHandshake {
    /// Starts a run: returns the state and `shareP` for `pake1`.
    pub fn start(
        secret: &ProverSecret<P256Sha256>,
        rng: &mut (impl spake2plus::rand_core::CryptoRng + ?Sized),
    ) -> (Self, Vec<u8>) {
        let (prover, share_p) = Prover::start(secret, &context(), rng);
        (Self(prover), share_p.as_bytes().to_vec())
    }

    /// Checks the device's `confirmV` ([`SecureError::Confirmation`] means a wrong setup
    /// code, or a device that is not the one on the label); returns `confirmP` for
    /// `pake3` and the session.
    pub fn finish(
        self,
        share_v: &[u8],
        confirm_v: &[u8],
    ) -> Result<(Vec<u8>, Session), SecureError> {
        let share_v =
            ShareV::<P256Sha256>::from_bytes(share_v).map_err(|_| SecureError::Malformed)?;
        let confirm_v =
            ConfirmV::<P256Sha256>::from_bytes(confirm_v).map_err(|_| SecureError::Malformed)?;
        let confirming: ProverConfirming<P256Sha256> = self
            .0
            .receive(&share_v)
            .map_err(|_| SecureError::Malformed)?;
        let (confirm_p, key) = confirming
            .finish(&confirm_v)
            .map_err(|_| SecureError::Confirmation)?;
        Ok((
            confirm_p.as_bytes().to_vec(),
            Session::new(key.as_bytes(), Role::Provisioner),
        ))
    }
}

/// Which end of the channel a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The pairing component.
    Device,
    /// The CLI or app.
    Provisioner,
}

/// One direction's key and frame counter.
struct Direction {
    cipher: ChaCha20Poly1305,
    label: &'static [u8],
    counter: u64,
}

impl Direction {
    fn new(shared: &[u8], label: &'static [u8]) -> Self {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(None, shared)
            .expand(label, key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 length");
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key.as_ref())),
            label,
            counter: 0,
        }
    }

    /// The next nonce: four zero bytes and the counter, big-endian.
    fn nonce(&mut self) -> Option<[u8; 12]> {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&self.counter.to_be_bytes());
        self.counter = self.counter.checked_add(1)?;
        Some(nonce)
    }
}

/// An established session: seals what this side sends, opens what the peer sent, each
/// frame under the next counter of its direction.
pub struct Session {
    send: Direction,
    recv: Direction,
    broken: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("sent", &self.send.counter)
            .field("received", &self.recv.counter)
            .field("broken", &self.broken)
            .finish()
    }
}

impl Session {
    /// Keys for both directions from SPAKE2+'s shared key.
    pub fn new(shared: &[u8], role: Role) -> Self {
        let (send, recv) = match role {
            Role::Device => (TO_PROVISIONER, TO_DEVICE),
            Role::Provisioner => (TO_DEVICE, TO_PROVISIONER),
        };
        Self {
            send: Direction::new(shared, send),
            recv: Direction::new(shared, recv),
            broken: false,
        }
    }

    /// Encrypts and authenticates one frame.
    pub fn seal(&mut self, plain: &[u8]) -> Result<Vec<u8>, SecureError> {
        let nonce = self.send.nonce().filter(|_| !self.broken);
        let Some(nonce) = nonce else {
            self.broken = true;
            return Err(SecureError::Frame);
        };
        let payload = Payload {
            msg: plain,
            aad: self.send.label,
        };
        self.send
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .map_err(|_| SecureError::Frame)
    }

    /// Checks and decrypts the peer's next frame; any failure breaks the session.
    pub fn open(&mut self, sealed: &[u8]) -> Result<Vec<u8>, SecureError> {
        let nonce = self.recv.nonce().filter(|_| !self.broken);
        let opened = nonce.and_then(|nonce| {
            let payload = Payload {
                msg: sealed,
                aad: self.recv.label,
            };
            self.recv
                .cipher
                .decrypt(Nonce::from_slice(&nonce), payload)
                .ok()
        });
        if opened.is_none() {
            self.broken = true;
        }
        opened.ok_or(SecureError::Frame)
    }
}

#[cfg(test)]
mod tests;
