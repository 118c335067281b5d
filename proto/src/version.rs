//! `MAJOR.MINOR.PATCH` versions of components and hosts, compared numerically.

use std::fmt;

/// A version such as `1.4.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Incompatible changes.
    pub major: u64,
    /// Added features.
    pub minor: u64,
    /// Fixes.
    pub patch: u64,
}

/// A string that is not `MAJOR.MINOR.PATCH`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAJOR.MINOR.PATCH version")]
pub struct VersionError(String);

impl Version {
    /// Parses `MAJOR.MINOR.PATCH` (decimal numbers, no leading `v`).
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let bad = || VersionError(text.to_owned());
        let mut parts = text.split('.').map(|p| {
            if p.is_empty() || p.len() > 19 || !p.bytes().all(|b| b.is_ascii_digit()) {
                Err(bad())
            } else {
                p.parse::<u64>().map_err(|_| bad())
            }
        });
        let (Some(major), Some(minor), Some(patch), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        Ok(Self {
            major: major?,
            minor: minor?,
            patch: patch?,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_compare_numerically() {
        let v = |s| Version::parse(s).expect("valid");
        assert!(v("0.10.0") > v("0.9.9"));
        assert!(v("1.0.0") > v("0.99.99"));
        assert_eq!(v("1.2.3").to_string(), "1.2.3");
        for bad in [
            "", "1", "1.2", "1.2.3.4", "v1.2.3", "1.-2.3", "1..3", "1.2.x",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }
}
