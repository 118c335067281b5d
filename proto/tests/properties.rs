//! Property tests of every parser of outside input in the protocol crate: arbitrary
//! input never panics and is either refused or parsed into something well-formed, and
//! what we produce parses back to itself. They run in the normal test run; `fuzz/` runs
//! the same parsers coverage-guided for longer.

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use tether_proto::PairingToken;
use tether_proto::activation::{ActivateRequest, ActivateResponse, CredentialsResponse};
use tether_proto::bundle::{Bundle, PAIRING_WORLD};
use tether_proto::iot_dns::{UrlConfigRequest, UrlConfigResponse};
use tether_proto::mqtt::Envelope;
use tether_proto::signing::{AuthHeader, Principal};
use tether_proto::token_status::TokenStatus;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_is_refused_or_a_well_formed_token(text in any::<String>()) {
        if let Ok(token) = PairingToken::parse(&text) {
            prop_assert_eq!(token.expose(), text.as_str());
            prop_assert_eq!(token.public_id().len(), 10);
            prop_assert!(token.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn tokens_of_the_right_shape_parse_and_keep_their_parts(
        region in "[A-Z]{2}", id in "[A-Za-z0-9]{8}", secret in "[A-Za-z0-9]{4}",
    ) {
        let text = format!("{region}{id}{secret}");
        let token = PairingToken::parse(&text).expect("well-formed");
        prop_assert_eq!(token.region(), region.as_str());
        prop_assert_eq!(token.public_id(), format!("{region}{id}"));
        // The secret never shows in Debug (unless the public part happens to hold it).
        let shown = format!("{token:?}");
        let public = format!("{region}{id}");
        let hidden = !shown.contains(&secret) || public.contains(&secret);
        prop_assert!(hidden);
    }

    #[test]
    fn any_header_text_is_refused_or_parsed_without_panic(text in any::<String>()) {
        let _ = AuthHeader::parse(&text);
        let _ = AuthHeader::parse(&format!("Tether-HMAC {text}"));
    }

    #[test]
    fn a_signed_header_round_trips_and_verifies_only_unchanged(
        uuid in "[a-z0-9]{20}", key in any::<[u8; 32]>(), t in 1_000_000u64..4_000_000_000,
        nonce in "[0-9a-f]{16}", path in "/[a-z/]{0,40}", body in any::<Vec<u8>>(), flip in any::<usize>(),
    ) {
        let header = AuthHeader::sign(Principal::Uuid(uuid), &key, t, nonce, "POST", &path, &body);
        let parsed = AuthHeader::parse(&header.to_string()).expect("our own header parses");
        prop_assert_eq!(&parsed, &header);
        prop_assert!(parsed.verify(&key, "POST", &path, &body, t).is_ok());
        let mut tampered = body.clone();
        if tampered.is_empty() {
            tampered.push(0);
        } else {
            let at = flip % tampered.len();
            tampered[at] ^= 1;
        }
        prop_assert!(parsed.verify(&key, "POST", &path, &tampered, t).is_err());
    }

    #[test]
    fn any_bytes_are_refused_or_a_bundle_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Bundle::parse(&bytes);
        let mut with_magic = b"TETHERB1".to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = Bundle::parse(&with_magic);
    }

    #[test]
    fn a_signed_bundle_round_trips_and_any_change_fails_verification(
        component in proptest::collection::vec(any::<u8>(), 1..512), sequence in any::<u64>(),
        flip in any::<usize>(), cut in any::<usize>(),
    ) {
        let key = SigningKey::from_bytes(&[5; 32]);
        let bytes = Bundle::sign(&component, "1.2.3", sequence, PAIRING_WORLD, "0.1.0", &key)
            .expect("signs");
        let bundle = Bundle::parse(&bytes).expect("parses");
        prop_assert_eq!(&bundle.component, &component);
        prop_assert_eq!(bundle.manifest.sequence, sequence);
        prop_assert!(bundle.verify(&[key.verifying_key()]).is_ok());
        let mut flipped = bytes.clone();
        let at = 8 + flip % (flipped.len() - 8);
        flipped[at] ^= 0x40;
        if let Ok(changed) = Bundle::parse(&flipped) {
            prop_assert!(changed.verify(&[key.verifying_key()]).is_err());
        }
        let truncated = &bytes[..cut % bytes.len()];
        if let Ok(changed) = Bundle::parse(truncated) {
            prop_assert!(changed.verify(&[key.verifying_key()]).is_err());
        }
    }

    #[test]
    fn any_bytes_are_refused_or_parsed_as_cloud_and_mqtt_bodies(bytes in any::<Vec<u8>>()) {
        let _ = serde_json::from_slice::<Envelope>(&bytes);
        let _ = serde_json::from_slice::<UrlConfigRequest>(&bytes);
        let _ = serde_json::from_slice::<UrlConfigResponse>(&bytes);
        let _ = serde_json::from_slice::<ActivateRequest>(&bytes);
        let _ = serde_json::from_slice::<ActivateResponse>(&bytes);
        let _ = serde_json::from_slice::<CredentialsResponse>(&bytes);
        let _ = serde_json::from_slice::<TokenStatus>(&bytes);
    }

    #[test]
    fn deeply_nested_json_is_refused_not_a_stack_overflow(depth in 100usize..100_000) {
        let nested = format!("{{\"protocol\":5,\"t\":0,\"data\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
        let parsed = serde_json::from_str::<Envelope>(&nested);
        prop_assert_eq!(parsed.is_ok(), depth < 127);
    }

    #[test]
    fn envelopes_round_trip(protocol in prop::sample::select(vec![4u32, 5, 8, 11, 15]), t in any::<u64>(), key in "[0-9]{1,3}", value in any::<i64>()) {
        let text = format!("{{\"protocol\":{protocol},\"t\":{t},\"data\":{{\"{key}\":{value}}}}}");
        let envelope: Envelope = serde_json::from_str(&text).expect("parses");
        let again: Envelope = serde_json::from_slice(&serde_json::to_vec(&envelope).expect("encodes")).expect("parses");
        prop_assert_eq!(envelope, again);
    }
}
