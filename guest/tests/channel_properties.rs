//! Property tests of the data channel's framing and parsing: whatever bytes arrive, in
//! whatever pieces, the channel never panics, closes a connection whose line grows past
//! the limit, and finds the same requests as when the stream arrives whole (plaintext
//! protocol 1, the development switch on, where requests are visible to the test).

use proptest::prelude::*;
use tether_guest::channel::framing::MAX_LINE;
use tether_guest::channel::guard::GuardRecord;
use tether_guest::channel::{Channel, Output, Setup};
use tether_proto::channel::ChannelRequest;

/// Feeds `stream` to a fresh connection in pieces cut at `cuts`; the requests seen and
/// whether the connection was closed.
fn feed(stream: &[u8], cuts: &[usize]) -> (Vec<ChannelRequest>, bool) {
    let setup = Setup {
        verifier: None,
        plaintext: true,
        product_key: "p0123456789abcde".into(),
    };
    let mut channel = Channel::new(setup, GuardRecord::default());
    channel.opened(1, 0);
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.push(0);
    points.push(stream.len());
    points.sort_unstable();
    let mut requests = Vec::new();
    for pair in points.windows(2) {
        let (got, out) = channel.data(1, &stream[pair[0]..pair[1]], 0, false);
        requests.extend(got.into_iter().map(|(_, request)| request));
        if out.iter().any(|o| matches!(o, Output::Close(1))) {
            return (requests, true);
        }
    }
    (requests, false)
}

fn request_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#"{"type":"status"}"#.to_owned()),
        Just(r#"{"type":"scan"}"#.to_owned()),
        ("[ -~]{0,32}", "[ -~]{0,64}", "[A-Za-z0-9]{14}").prop_map(|(s, p, t)| {
            serde_json::json!({"type": "config", "ssid": s, "passwd": p, "token": t}).to_string()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_in_any_pieces_never_panic(
        stream in proptest::collection::vec(any::<u8>(), 0..4096),
        cuts in proptest::collection::vec(any::<usize>(), 0..16),
    ) {
        let _ = feed(&stream, &cuts);
    }

    #[test]
    fn valid_requests_are_found_however_the_stream_is_cut(
        lines in proptest::collection::vec(request_line(), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..32),
    ) {
        let stream: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
        let (whole, closed_whole) = feed(&stream, &[]);
        let (pieces, closed_pieces) = feed(&stream, &cuts);
        prop_assert!(!closed_whole && !closed_pieces);
        prop_assert_eq!(whole.len(), lines.len());
        prop_assert_eq!(whole, pieces);
    }

    #[test]
    fn a_line_over_the_limit_closes_the_connection_in_any_pieces(
        extra in 1usize..4096,
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let stream = vec![b'a'; MAX_LINE + extra];
        let (requests, closed) = feed(&stream, &cuts);
        prop_assert!(requests.is_empty());
        prop_assert!(closed);
    }
}
