//! The handshake against RFC 9383's test vectors, and the frames against tampering,
//! replay, reordering and truncation.

use spake2plus::rand_core::{Infallible, TryCryptoRng, TryRng, UnwrapErr};
use spake2plus::{P256Sha256, ProverSecret};

use super::*;
use crate::setup_code::{self, SetupCode};

/// RFC 9383, Appendix C: SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256.
mod rfc9383 {
    pub const CONTEXT: &[u8] = b"SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256 Test Vectors";
    pub const ID_PROVER: &[u8] = b"client";
    pub const ID_VERIFIER: &[u8] = b"server";
    pub const W0: &str = "bb8e1bbcf3c48f62c08db243652ae55d3e5586053fca77102994f23ad95491b3";
    pub const W1: &str = "7e945f34d78785b8a3ef44d0df5a1a97d6b3b460409a345ca7830387a74b1dba";
    pub const L: &str = "04eb7c9db3d9a9eb1f8adab81b5794c1f13ae3e225efbe91ea487425854c7fc00f00bfedcbd09b2400142d40a14f2064ef31dfaa903b91d1faea7093d835966efd";
    pub const X: &str = "d1232c8e8693d02368976c174e2088851b8365d0d79a9eee709c6a05a2fad539";
    pub const SHARE_P: &str = "04ef3bd051bf78a2234ec0df197f7828060fe9856503579bb1733009042c15c0c1de127727f418b5966afadfdd95a6e4591d171056b333dab97a79c7193e341727";
    pub const Y: &str = "717a72348a182085109c8d3917d6c43d59b224dc6a7fc4f0483232fa6516d8b3";
    pub const SHARE_V: &str = "04c0f65da0d11927bdf5d560c69e1d7d939a05b0e88291887d679fcadea75810fb5cc1ca7494db39e82ff2f50665255d76173e09986ab46742c798a9a68437b048";
    pub const CONFIRM_P: &str = "926cc713504b9b4d76c9162ded04b5493e89109f6d89462cd33adc46fda27527";
    pub const CONFIRM_V: &str = "9747bcc4f8fe9f63defee53ac9b07876d907d55047e6ff2def2e7529089d3e68";
    pub const K_SHARED: &str = "0c5f8ccd1413423a54f6c1fb26ff01534a87f893779c6e68666d772bfd91f3e7";
}

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).expect("test vectors are hex")
}

/// Yields one fixed scalar: the 64 bytes the suite reduces, big-endian.
struct FixedScalar(Vec<u8>);

impl TryRng for FixedScalar {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        unreachable!("the suite draws bytes")
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        unreachable!("the suite draws bytes")
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        assert_eq!(dst.len(), 64, "the suite draws 64 bytes per scalar");
        dst[..32].fill(0);
        dst[32..].copy_from_slice(&self.0);
        Ok(())
    }
}

impl TryCryptoRng for FixedScalar {}

#[test]
fn the_pake_reproduces_rfc_9383s_test_vectors() {
    use rfc9383::*;
    // w0 and w1 below the group order come through the reduction unchanged.
    let mut pbkdf = vec![0u8; 8];
    pbkdf.extend(unhex(W0));
    pbkdf.extend([0u8; 8]);
    pbkdf.extend(unhex(W1));
    let secret = ProverSecret::<P256Sha256>::from_pbkdf_output(&pbkdf).expect("registers");
    let record = secret.verifier_record();
    let mut expected_record = unhex(W0);
    expected_record.extend(unhex(L));
    assert_eq!(
        record.to_bytes().as_ref(),
        expected_record.as_slice(),
        "w0 ‖ L"
    );

    let context = Context {
        context: CONTEXT,
        prover_id: ID_PROVER,
        verifier_id: ID_VERIFIER,
    };
    let mut x = UnwrapErr(FixedScalar(unhex(X)));
    let mut y = UnwrapErr(FixedScalar(unhex(Y)));
    let (prover, share_p) = Prover::start(&secret, &context, &mut x);
    assert_eq!(
        share_p.as_bytes().as_ref(),
        unhex(SHARE_P).as_slice(),
        "shareP"
    );
    let (verifier, share_v) = Verifier::start(&record, &context, &mut y);
    assert_eq!(
        share_v.as_bytes().as_ref(),
        unhex(SHARE_V).as_slice(),
        "shareV"
    );
    let (verifier, confirm_v) = verifier.receive(&share_p).expect("verifier receives");
    assert_eq!(
        confirm_v.as_bytes().as_ref(),
        unhex(CONFIRM_V).as_slice(),
        "confirmV"
    );
    let (confirm_p, prover_key) = prover
        .receive(&share_v)
        .expect("prover receives")
        .finish(&confirm_v)
        .expect("confirmV checks");
    assert_eq!(
        confirm_p.as_bytes().as_ref(),
        unhex(CONFIRM_P).as_slice(),
        "confirmP"
    );
    let verifier_key = verifier.finish(&confirm_p).expect("confirmP checks");
    assert_eq!(
        prover_key.as_bytes().as_ref(),
        unhex(K_SHARED).as_slice(),
        "K_shared"
    );
    assert_eq!(verifier_key.as_bytes().as_ref(), unhex(K_SHARED).as_slice());
}

fn label() -> (SetupCode, PairingVerifier) {
    setup_code::issue().expect("issues a code")
}

/// A full handshake; returns (provisioner, device) sessions.
fn handshake(
    code: &SetupCode,
    verifier: &PairingVerifier,
) -> Result<(Session, Session), SecureError> {
    let secret = setup_code::prover_secret(code, verifier.salt()).expect("derives");
    let (prover, share_p) = ProvisionerHandshake::start(&secret, &mut system_rng());
    let (device, share_v, confirm_v) =
        DeviceHandshake::respond(verifier, &share_p, &mut system_rng())?;
    let (confirm_p, provisioner) = prover.finish(&share_v, &confirm_v)?;
    Ok((provisioner, device.finish(&confirm_p)?))
}

#[test]
fn the_right_code_gives_both_sides_one_session_and_a_wrong_one_fails_confirmation() {
    let (code, verifier) = label();
    let (mut provisioner, mut device) = handshake(&code, &verifier).expect("pairs");
    let frame = provisioner.seal(b"hello").expect("seals");
    assert!(
        !frame.windows(5).any(|w| w == b"hello"),
        "the frame is encrypted"
    );
    assert_eq!(device.open(&frame).expect("opens"), b"hello");
    let back = device.seal(b"world").expect("seals");
    assert_eq!(provisioner.open(&back).expect("opens"), b"world");

    let wrong = SetupCode::parse("0000000000").expect("parses");
    assert_eq!(
        handshake(&wrong, &verifier).err(),
        Some(SecureError::Confirmation),
        "the provisioner sees the device's confirmation fail"
    );
}

#[test]
fn a_device_refuses_a_forged_confirmation_and_malformed_shares() {
    let (code, verifier) = label();
    let secret = setup_code::prover_secret(&code, verifier.salt()).expect("derives");
    let (_, share_p) = ProvisionerHandshake::start(&secret, &mut system_rng());
    let (device, _, confirm_v) =
        DeviceHandshake::respond(&verifier, &share_p, &mut system_rng()).expect("responds");
    // Echoing confirmV, or any 32 bytes, is not knowing the code.
    assert_eq!(
        device.finish(&confirm_v).err(),
        Some(SecureError::Confirmation)
    );
    for bad in [&[][..], &[4u8; 65][..], &share_p[..64]] {
        assert_eq!(
            DeviceHandshake::respond(&verifier, bad, &mut system_rng()).err(),
            Some(SecureError::Malformed)
        );
    }
}

#[test]
fn tampered_replayed_reordered_and_truncated_frames_break_the_session() {
    let (code, verifier) = label();
    type Attack = fn(Vec<Vec<u8>>) -> Vec<Vec<u8>>;
    let attacks: [Attack; 4] = [
        |mut f| {
            f[0][3] ^= 0x01;
            f
        },
        |f| vec![f[0].clone(), f[0].clone()],
        |f| vec![f[1].clone(), f[0].clone()],
        |mut f| {
            let cut = f[0].len() - 1;
            f[0].truncate(cut);
            f
        },
    ];
    for (i, attack) in attacks.into_iter().enumerate() {
        let (mut provisioner, mut device) = handshake(&code, &verifier).expect("pairs");
        let frames = vec![
            provisioner.seal(b"first").expect("seals"),
            provisioner.seal(b"second").expect("seals"),
        ];
        let frames = attack(frames);
        let results: Vec<_> = frames.iter().map(|f| device.open(f)).collect();
        assert!(results.iter().any(Result::is_err), "attack {i} was noticed");
        // Once broken, even the genuine next frame does not open.
        let next = provisioner.seal(b"third").expect("seals");
        assert_eq!(device.open(&next), Err(SecureError::Frame), "attack {i}");
        assert_eq!(device.seal(b"reply"), Err(SecureError::Frame), "attack {i}");
    }
    // A frame sent one way does not open as coming the other way.
    let (mut provisioner, _) = handshake(&code, &verifier).expect("pairs");
    let mine = provisioner.seal(b"mine").expect("seals");
    assert_eq!(provisioner.open(&mine), Err(SecureError::Frame));
}

#[test]
fn a_recorded_session_replayed_against_a_new_handshake_gets_nowhere() {
    let (code, verifier) = label();
    let secret = setup_code::prover_secret(&code, verifier.salt()).expect("derives");
    let (prover, share_p) = ProvisionerHandshake::start(&secret, &mut system_rng());
    let (_, share_v, confirm_v) =
        DeviceHandshake::respond(&verifier, &share_p, &mut system_rng()).expect("responds");
    let (confirm_p, mut recorded) = prover.finish(&share_v, &confirm_v).expect("pairs");
    let frame = recorded.seal(b"config").expect("seals");
    // The device draws a fresh share for the replayed shareP, so the old confirmP fails.
    let (replayed, _, _) =
        DeviceHandshake::respond(&verifier, &share_p, &mut system_rng()).expect("responds");
    assert_eq!(
        replayed.finish(&confirm_p).err(),
        Some(SecureError::Confirmation)
    );
    // And the old frame means nothing to a session with new keys.
    let (_, mut fresh) = handshake(&code, &verifier).expect("pairs");
    assert_eq!(fresh.open(&frame), Err(SecureError::Frame));
}
