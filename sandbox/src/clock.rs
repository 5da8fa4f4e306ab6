//! The sandbox clock: real time plus an offset that tests and the admin API can advance.
//!
//! Everything that expires (portal sessions, codes, tokens, client assertions) and the ages used by the proxy rules
//! read this clock, so a test can jump an hour ahead instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use time::{Date, OffsetDateTime};

/// Wall-clock time shifted by an adjustable offset.
#[derive(Debug, Default)]
pub struct Clock {
    offset_secs: AtomicI64,
}

impl Clock {
    /// Seconds since the Unix epoch, as the sandbox sees it.
    pub fn now(&self) -> i64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        real + self.offset_secs.load(Ordering::SeqCst)
    }

    /// The current instant as a date-time in UTC.
    pub fn now_datetime(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.now()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Today's date in UTC.
    pub fn today(&self) -> Date {
        self.now_datetime().date()
    }

    /// Moves the clock forward (or back, with a negative value) by `secs`.
    pub fn advance(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::SeqCst);
    }
}

/// Formats a Unix time as a FHIR `instant` (`2024-05-01T10:00:00Z`).
pub fn instant(secs: i64) -> String {
    let dt = OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    dt.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// Whole years between `birth` and `on`.
pub fn age_on(birth: Date, on: Date) -> i32 {
    let mut years = on.year() - birth.year();
    if (on.month() as u8, on.day()) < (birth.month() as u8, birth.day()) {
        years -= 1;
    }
    years
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn advancing_moves_now() {
        let clock = Clock::default();
        let before = clock.now();
        clock.advance(3600);
        assert!(clock.now() >= before + 3600);
    }

    #[test]
    fn age_counts_birthdays() {
        assert_eq!(age_on(date!(2010 - 06 - 15), date!(2023 - 06 - 14)), 12);
        assert_eq!(age_on(date!(2010 - 06 - 15), date!(2023 - 06 - 15)), 13);
        assert_eq!(age_on(date!(2008 - 02 - 29), date!(2026 - 02 - 28)), 17);
    }

    #[test]
    fn instant_is_rfc3339_utc() {
        assert_eq!(instant(0), "1970-01-01T00:00:00Z");
    }
}
