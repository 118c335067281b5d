//! Line assembly for one channel connection: bytes arrive split and merged anyhow; whole
//! lines come out, without their `\n` (and a `\r` before it), blank lines skipped. A line
//! longer than [`MAX_LINE`] is an error.

/// Longest line accepted, in bytes (a sealed frame of the largest request fits).
pub const MAX_LINE: usize = 16 * 1024;

/// A connection's bytes not yet part of a complete line, and how far they have been
/// searched for a line end (so a line sent a byte at a time is scanned once, not once
/// per byte).
#[derive(Debug, Default)]
pub struct Lines {
    bytes: Vec<u8>,
    scanned: usize,
}

/// A line over [`MAX_LINE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

impl Lines {
    /// Adds bytes; returns the lines they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, TooLong> {
        self.bytes.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(at) = self.bytes[self.scanned..].iter().position(|&b| b == b'\n') {
            let end = self.scanned + at;
            let mut line: Vec<u8> = self.bytes.drain(..=end).collect();
            self.scanned = 0;
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > MAX_LINE {
                return Err(TooLong);
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                lines.push(line);
            }
        }
        self.scanned = self.bytes.len();
        if self.bytes.len() > MAX_LINE {
            return Err(TooLong);
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_out_whole_however_the_bytes_arrive() {
        let mut lines = Lines::default();
        assert!(lines.push(b"{\"a\":").expect("fits").is_empty());
        let out = lines.push(b"1}\r\n\n  \n{\"b\":2}\n{\"c\"").expect("fits");
        assert_eq!(out, vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]);
        assert_eq!(
            lines.push(b":3}\n").expect("fits"),
            vec![b"{\"c\":3}".to_vec()]
        );
    }

    #[test]
    fn a_line_over_the_limit_is_an_error_even_before_it_ends() {
        let mut lines = Lines::default();
        assert_eq!(lines.push(&vec![b'a'; MAX_LINE + 1]), Err(TooLong));
        let mut lines = Lines::default();
        let mut long = vec![b'a'; MAX_LINE + 1];
        long.push(b'\n');
        assert_eq!(lines.push(&long), Err(TooLong));
        let mut lines = Lines::default();
        for _ in 0..MAX_LINE {
            lines.push(b"a").expect("fits so far");
        }
        assert_eq!(lines.push(b"a"), Err(TooLong));
    }
}
