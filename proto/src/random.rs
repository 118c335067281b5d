//! Random identifiers from the operating system's CSPRNG, drawn uniformly from an
//! alphabet (pairing tokens, license uuids and authkeys, dev-ids, dev-secrets).

/// Upper- and lower-case letters and digits.
pub const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Lower-case letters and digits.
pub const LOWER_ALPHANUMERIC: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// `len` characters drawn uniformly from `alphabet` (at most 256 distinct bytes).
pub fn string(alphabet: &[u8], len: usize) -> Result<String, getrandom::Error> {
    assert!(
        !alphabet.is_empty() && alphabet.len() <= 256,
        "an alphabet has 1-256 characters"
    );
    // Bytes at or above the largest multiple of the alphabet's size are redrawn, so that
    // every character is equally likely.
    let size = alphabet.len();
    let limit = 256 - 256 % size;
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf)?;
        for &b in buf.iter().filter(|&&b| usize::from(b) < limit) {
            if out.len() == len {
                break;
            }
            out.push(char::from(alphabet[usize::from(b) % size]));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_come_from_the_alphabet_in_even_numbers() {
        let sample = string(ALPHANUMERIC, 62 * 200).expect("random source works");
        let mut counts = [0u32; 256];
        for b in sample.bytes() {
            counts[usize::from(b)] += 1;
        }
        // Each of the 62 characters is expected 200 times; a biased mapping (b % 62 over
        // all 256 byte values) would push the first characters far above the rest.
        for &c in ALPHANUMERIC {
            let n = counts[usize::from(c)];
            assert!((110..=300).contains(&n), "{} seen {n} times", char::from(c));
        }
        assert_eq!(counts.iter().sum::<u32>(), 62 * 200);
    }

    #[test]
    fn lower_case_strings_have_no_capitals() {
        let s = string(LOWER_ALPHANUMERIC, 500).expect("random source works");
        assert_eq!(s.len(), 500);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
    }
}
