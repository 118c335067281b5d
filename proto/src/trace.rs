//! W3C trace context (`traceparent`, version 00): one trace id follows a pairing from the
//! provisioner over the data channel to the device's cloud requests and the service's
//! logs. `00-<trace id, 32 hex>-<parent span id, 16 hex>-<flags, 2 hex>`, lower-case;
//! all-zero ids are invalid. Parsing is strict, since every header is outside input.

use std::fmt;

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace every span of one pairing shares.
    pub trace_id: [u8; 16],
    /// The span of the sender.
    pub span_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

/// Why a `traceparent` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    /// Not `00-` then 32, 16 and 2 lower-case hex digits joined by `-`.
    #[error("a traceparent is 00-<32 hex>-<16 hex>-<2 hex>, in lower case")]
    Malformed,
    /// The trace id or span id is all zeros.
    #[error("a traceparent's ids may not be all zeros")]
    ZeroId,
}

/// The length of a version 00 `traceparent`.
pub const TRACEPARENT_LEN: usize = 55;

impl TraceParent {
    /// A new trace with a random trace id and span id, sampled.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        // All zeros is invalid; the odds of drawing it are nil, but redraw anyway.
        while trace_id == [0; 16] || span_id == [0; 8] {
            getrandom::fill(&mut trace_id)?;
            getrandom::fill(&mut span_id)?;
        }
        Ok(Self {
            trace_id,
            span_id,
            flags: 1,
        })
    }

    /// The same trace, from a new span of this sender.
    pub fn child(&self) -> Result<Self, getrandom::Error> {
        let mut span_id = [0u8; 8];
        while span_id == [0; 8] {
            getrandom::fill(&mut span_id)?;
        }
        Ok(Self { span_id, ..*self })
    }

    /// Parses a `traceparent` header value.
    pub fn parse(text: &str) -> Result<Self, TraceError> {
        let bytes = text.as_bytes();
        let lower_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
        let shaped = bytes.len() == TRACEPARENT_LEN
            && text.starts_with("00-")
            && bytes[35] == b'-'
            && bytes[52] == b'-'
            && [3..35, 36..52, 53..55]
                .into_iter()
                .all(|r| bytes[r].iter().all(lower_hex));
        if !shaped {
            return Err(TraceError::Malformed);
        }
        let mut out = Self {
            trace_id: [0; 16],
            span_id: [0; 8],
            flags: 0,
        };
        let mut flags = [0u8; 1];
        hex::decode_to_slice(&text[3..35], &mut out.trace_id).map_err(|_| TraceError::Malformed)?;
        hex::decode_to_slice(&text[36..52], &mut out.span_id).map_err(|_| TraceError::Malformed)?;
        hex::decode_to_slice(&text[53..55], &mut flags).map_err(|_| TraceError::Malformed)?;
        out.flags = flags[0];
        if out.trace_id == [0; 16] || out.span_id == [0; 8] {
            return Err(TraceError::ZeroId);
        }
        Ok(out)
    }

    /// The trace id as 32 lower-case hex digits, as logs show it.
    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            hex::encode(self.trace_id),
            hex::encode(self.span_id),
            self.flags
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_traceparent_round_trips_and_a_child_keeps_the_trace() {
        let parsed = TraceParent::parse(EXAMPLE).expect("valid");
        assert_eq!(parsed.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.flags, 1);
        assert_eq!(parsed.to_string(), EXAMPLE);
        let child = parsed.child().expect("random");
        assert_eq!(child.trace_id, parsed.trace_id);
        assert_ne!(child.span_id, parsed.span_id);
        let fresh = TraceParent::generate().expect("random");
        assert_eq!(TraceParent::parse(&fresh.to_string()), Ok(fresh));
    }

    #[test]
    fn hostile_traceparents_are_refused() {
        for bad in [
            "",
            "00",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-011",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0é",
        ] {
            assert_eq!(
                TraceParent::parse(bad),
                Err(TraceError::Malformed),
                "{bad:?}"
            );
        }
        let zero_trace = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        assert_eq!(TraceParent::parse(zero_trace), Err(TraceError::ZeroId));
        let zero_span = "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01";
        assert_eq!(TraceParent::parse(zero_span), Err(TraceError::ZeroId));
    }
}
