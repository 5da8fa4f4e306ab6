//! Dates as the FFI carries them: [`FhirDate`], typed and sortable while keeping FHIR's partial dates.

use std::cmp::Ordering;

use chartlink_core::views;

/// How much of a date the server gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, uniffi::Enum)]
pub enum DatePrecision {
    /// "2019"
    Year,
    /// "2019-05"
    Month,
    /// "2019-05-03"
    Day,
    /// "2019-05-03T10:15:00Z" (a dateTime or instant with its offset).
    DateTime,
}

/// A FHIR date, dateTime or instant at the precision the server gave: "2019", "2019-05", "2019-05-03" or a full
/// time. Show `text` (or format the parts at `precision`: never invent a day for "2019-05"); sort with the natural
/// order (Kotlin `Comparable`, Swift `Comparable`): by the earliest instant the date covers, a coarser date first
/// when two start together ("2019" before "2019-01-01"). `epoch_seconds` places it on a time axis.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
#[uniffi::export(Ord)]
pub struct FhirDate {
    /// As FHIR writes it, at its precision ("2019-05", "2019-05-03T10:15:00+02:00"; UTC as "Z").
    pub text: String,
    pub precision: DatePrecision,
    pub year: i32,
    /// 1 to 12, when the precision is a month or finer.
    pub month: Option<i32>,
    /// 1 to 31, when the precision is a day or finer.
    pub day: Option<i32>,
    /// Hour, minute and second as seconds since midnight in the written offset, for `DateTime`.
    pub seconds_of_day: Option<i32>,
    /// The offset from UTC the time was written in, in minutes (`Some(0)` for "Z"); none for a date, or a time
    /// written without an offset (read as UTC).
    pub offset_minutes: Option<i32>,
    /// The earliest instant the date covers, in Unix seconds (UTC; a date is read from midnight UTC, "2019" from
    /// 1 January 2019).
    pub epoch_seconds: i64,
}

impl Ord for FhirDate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch_seconds
            .cmp(&other.epoch_seconds)
            .then(self.precision.cmp(&other.precision))
            // Same start and precision: the text (an offset's spelling) decides, so that the order agrees with ==.
            .then_with(|| self.text.cmp(&other.text))
    }
}

impl PartialOrd for FhirDate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl From<views::FhirDate> for FhirDate {
    fn from(d: views::FhirDate) -> Self {
        let precision = match (d.month, d.day, d.time) {
            (_, Some(_), Some(_)) => DatePrecision::DateTime,
            (_, Some(_), None) => DatePrecision::Day,
            (Some(_), None, _) => DatePrecision::Month,
            (None, _, _) => DatePrecision::Year,
        };
        Self {
            text: d.to_string(),
            precision,
            epoch_seconds: d.sort_key(),
            year: d.year,
            month: d.month.map(i32::from),
            day: d.day.map(i32::from),
            seconds_of_day: d
                .time
                .map(|(h, m, s)| i32::from(h) * 3600 + i32::from(m) * 60 + i32::from(s)),
            offset_minutes: d.offset_minutes.map(i32::from),
        }
    }
}

/// A core date as the FFI's.
pub(crate) fn date(d: Option<views::FhirDate>) -> Option<FhirDate> {
    d.map(Into::into)
}

/// A date the core keeps as text (a patient's birth date): typed when it parses, else none.
pub(crate) fn parse_date(text: Option<&str>) -> Option<FhirDate> {
    text.and_then(views::FhirDate::parse).map(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> FhirDate {
        views::FhirDate::parse(s).expect(s).into()
    }

    #[test]
    fn partial_dates_keep_their_precision_and_text() {
        assert_eq!(d("2019").precision, DatePrecision::Year);
        assert_eq!(d("2019-05").precision, DatePrecision::Month);
        assert_eq!(d("2019-05").month, Some(5));
        assert_eq!(d("2019-05").day, None);
        assert_eq!(d("2019-05-03").precision, DatePrecision::Day);
        let t = d("2019-05-03T10:15:30+02:00");
        assert_eq!(t.precision, DatePrecision::DateTime);
        assert_eq!(t.text, "2019-05-03T10:15:30+02:00");
        assert_eq!(t.seconds_of_day, Some(10 * 3600 + 15 * 60 + 30));
        assert_eq!(t.offset_minutes, Some(120));
        assert_eq!(t.epoch_seconds, d("2019-05-03T08:15:30Z").epoch_seconds);
    }

    #[test]
    fn dates_of_mixed_precision_sort_by_their_start_coarser_first() {
        let mut dates = [
            d("2019-05-03T10:00:00Z"),
            d("2019-05"),
            d("2018"),
            d("2019-05-03"),
            d("2019-05-01"),
            d("2019-05-03T12:00:00+02:00"),
        ];
        dates.sort_unstable();
        let texts: Vec<&str> = dates.iter().map(|d| d.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "2018",
                "2019-05",
                "2019-05-01",
                "2019-05-03",
                "2019-05-03T10:00:00Z",
                "2019-05-03T12:00:00+02:00",
            ]
        );
        // The order agrees with equality.
        assert_eq!(d("2019-05").cmp(&d("2019-05")), Ordering::Equal);
        assert_ne!(
            d("2019-05-03T10:00:00Z").cmp(&d("2019-05-03T12:00:00+02:00")),
            Ordering::Equal
        );
    }
}
