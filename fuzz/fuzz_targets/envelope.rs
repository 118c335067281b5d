//! The MQTT envelope every message between cloud and device carries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_proto::mqtt::Envelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(data) {
        let bytes = serde_json::to_vec(&envelope).expect("encodes");
        let again: Envelope = serde_json::from_slice(&bytes).expect("round trip");
        assert_eq!(again.protocol, envelope.protocol);
    }
});
