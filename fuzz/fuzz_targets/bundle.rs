//! The bundle format: a host parses bundles from the cloud or a watched directory, the
//! service parses uploads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_proto::bundle::Bundle;

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = Bundle::parse(data) {
        let key = ed25519_key();
        assert!(bundle.verify(&[key]).is_err(), "a random bundle verified");
    }
});

fn ed25519_key() -> ed25519_dalek::VerifyingKey {
    tether_proto::bundle::public_key_from_hex(
        "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29",
    )
    .expect("a valid key")
}
