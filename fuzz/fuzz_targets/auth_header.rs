//! The `Tether-HMAC` Authorization header parser, which reads whatever a client sends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_proto::signing::AuthHeader;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(header) = AuthHeader::parse(text) {
        // What parses prints back to a header that parses to the same thing.
        let again = AuthHeader::parse(&header.to_string()).expect("our own header parses");
        assert_eq!(again, header);
        let _ = header.verify(b"key", "POST", "/", b"", header.t);
    }
});
