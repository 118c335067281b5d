//! The device's wall clock: the system's, corrected by what the cloud says the time is.
//! A board without a real-time clock boots in 1970; signed requests stamped then would be
//! refused, TLS certificates would not be valid yet, and credentials would never seem to
//! expire. Every answer from the cloud carries a `Date` header (authenticated when the
//! cloud is reached over TLS): when it differs from the system clock by more than
//! [`MIN_CORRECTION_SECS`], the difference becomes the offset this host adds from then on
//! (to signatures, to the component's `unix-secs` and to TLS checks). Until the time is
//! learned, a system clock before [`FLOOR`] (this release's date) is not trusted, and TLS
//! checks every part of a certificate except that it is valid yet.
//!
//! One offset serves the whole process: its devices share one system clock.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// No real clock reads earlier than this release (2026-12-01T00:00:00Z).
pub const FLOOR: u64 = 1_796_083_200;

/// Smaller differences are left alone: `Date` has whole seconds and answers take time.
pub const MIN_CORRECTION_SECS: i64 = 30;

static OFFSET_SECS: AtomicI64 = AtomicI64::new(0);
static LEARNED: AtomicBool = AtomicBool::new(false);

/// The system clock in Unix seconds (0 before 1970).
fn system_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The time now as best this host knows it, in Unix seconds.
pub fn unix_secs() -> u64 {
    corrected(system_secs(), OFFSET_SECS.load(Ordering::Relaxed))
}

fn corrected(system: u64, offset: i64) -> u64 {
    system.saturating_add_signed(offset)
}

/// Whether the time can be trusted: learned from the cloud, or a system clock that is not
/// before this release.
pub fn trusted() -> bool {
    LEARNED.load(Ordering::Relaxed) || system_secs() >= FLOOR
}

/// Takes the time from the `Date` header of a cloud answer; returns the offset it set, if
/// it changed. A header that does not parse, or a date before [`FLOOR`], is ignored.
pub fn learn(date: &str) -> Option<i64> {
    let cloud = httpdate::parse_http_date(date)
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs();
    let offset = offset_for(cloud, system_secs())?;
    LEARNED.store(true, Ordering::Relaxed);
    let before = OFFSET_SECS.swap(offset, Ordering::Relaxed);
    (before != offset).then(|| {
        tracing::info!(
            offset_secs = offset,
            "the system clock is off; using the cloud's time"
        );
        offset
    })
}

/// The offset that puts `system` on `cloud`: none for a date before [`FLOOR`], zero for
/// a small difference.
fn offset_for(cloud: u64, system: u64) -> Option<i64> {
    if cloud < FLOOR {
        return None;
    }
    let diff = i64::try_from(cloud).ok()? - i64::try_from(system).ok()?;
    Some(if diff.abs() < MIN_CORRECTION_SECS {
        0
    } else {
        diff
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_fifty_years_behind_is_put_right_and_small_differences_are_left_alone() {
        let cloud = FLOOR + 86_400;
        let behind = cloud - 50 * 31_557_600;
        let offset = offset_for(cloud, behind).expect("a date after the floor");
        assert_eq!(corrected(behind, offset), cloud);
        assert_eq!(offset_for(cloud, cloud - 5), Some(0));
        assert_eq!(offset_for(cloud, cloud + 3600), Some(-3600));
        // A cloud that claims a time before this release is not believed.
        assert_eq!(offset_for(FLOOR - 1, behind), None);
        assert_eq!(corrected(10, -20), 0);
    }

    #[test]
    fn only_a_well_formed_date_after_the_floor_is_learned() {
        assert_eq!(learn("yesterday"), None);
        assert_eq!(learn("Thu, 01 Jan 1970 00:00:00 GMT"), None);
        // The system clock here is right: a date equal to it changes nothing.
        let now = httpdate::fmt_http_date(SystemTime::now());
        assert_eq!(learn(&now), None);
        assert!(trusted());
    }
}
