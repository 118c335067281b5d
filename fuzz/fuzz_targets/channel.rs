//! The data channel's framing and request parsing, fed in pieces as the network would.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_guest::channel::{Channel, MAX_LINE, Output};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the piece size; the rest is the stream.
    let Some((&size, stream)) = data.split_first() else {
        return;
    };
    let piece = usize::from(size).max(1);
    let mut channel = Channel::default();
    channel.opened(7);
    let mut fed = 0;
    for chunk in stream.chunks(piece) {
        let (_, out) = channel.data(7, chunk);
        fed += chunk.len();
        if out.iter().any(|o| matches!(o, Output::Close(7))) {
            return;
        }
        assert!(fed <= MAX_LINE + piece || stream[..fed].contains(&b'\n'));
    }
});
