//! The data channel's framing, its clear messages and the protocol 1 requests, fed in
//! pieces as the network would.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_guest::channel::framing::MAX_LINE;
use tether_guest::channel::guard::GuardRecord;
use tether_guest::channel::{Channel, Output, Setup};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the piece size; the rest is the stream.
    let Some((&size, stream)) = data.split_first() else {
        return;
    };
    let piece = usize::from(size).max(1);
    let setup = Setup {
        verifier: None,
        plaintext: size % 2 == 0,
        product_key: "p0123456789abcde".into(),
    };
    let mut channel = Channel::new(setup, GuardRecord::default());
    channel.opened(7, 0);
    let mut fed = 0;
    for chunk in stream.chunks(piece) {
        let (_, out) = channel.data(7, chunk, 0, false);
        fed += chunk.len();
        if out.iter().any(|o| matches!(o, Output::Close(7))) {
            return;
        }
        assert!(fed <= MAX_LINE + piece || stream[..fed].contains(&b'\n'));
    }
});
