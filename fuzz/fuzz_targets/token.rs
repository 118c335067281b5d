//! The pairing token parser: a device and the service both parse tokens from outside.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_proto::PairingToken;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = PairingToken::parse(text) {
        assert_eq!(token.expose(), text);
        assert_eq!(token.public_id().len(), 10);
        assert_eq!(PairingToken::parse(token.expose()).ok(), Some(token));
    }
});
