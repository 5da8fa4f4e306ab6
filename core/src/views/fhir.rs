//! The FHIR readers every view uses, so that names, codes, dates, references and quantities are read one way
//! everywhere: [`FhirDate`] (partial dates kept at their precision), [`CodeRef`] and the concept readers
//! (`concept_name`, `preferred_code`, ...), references, human names and addresses, quantities, and the lenient
//! primitives (`string`, `list`) that accept a lone object where FHIR has an array.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) const LOINC: &str = "http://loinc.org";

pub(crate) static NULL: Value = Value::Null;

/// A FHIR date or dateTime at the precision given: "2019", "2019-05", "2019-05-03", "2019-05-03T10:00:00Z" (and
/// offsets such as "+02:00"). Fractional seconds are accepted and dropped; a time without an offset (not valid
/// FHIR, but seen) is kept with `offset_minutes: None` and read as UTC.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FhirDate {
    pub year: i32,
    pub month: Option<u8>,
    pub day: Option<u8>,
    /// Hour, minute, second; only present with a day.
    pub time: Option<(u8, u8, u8)>,
    /// The offset from UTC the time was written in; `Some(0)` for "Z".
    pub offset_minutes: Option<i16>,
}

impl FhirDate {
    /// Parses a FHIR date, dateTime or instant. `None` for anything else (garbage, impossible dates such as
    /// "2019-02-30", a time without a day).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (date, time) = match s.split_once('T') {
            Some((date, time)) => (date, Some(time)),
            None => (s, None),
        };
        let fields: Vec<&str> = date.split('-').collect();
        let (year, month, day): (i32, Option<u8>, Option<u8>) = match fields.as_slice() {
            [y] => (digits(y, 4)?, None, None),
            [y, m] => (digits(y, 4)?, Some(digits(m, 2)?), None),
            [y, m, d] => (digits(y, 4)?, Some(digits(m, 2)?), Some(digits(d, 2)?)),
            _ => return None,
        };
        let bad_month = month.is_some_and(|m| !(1..=12).contains(&m));
        let bad_day =
            matches!((month, day), (Some(m), Some(d)) if d == 0 || d > days_in_month(year, m));
        if year == 0 || bad_month || bad_day {
            return None;
        }
        let (time, offset_minutes) = match time {
            None => (None, None),
            Some(t) => {
                day?;
                let (clock, offset) = split_offset(t)?;
                (Some(parse_clock(clock)?), offset)
            }
        };
        Some(Self {
            year,
            month,
            day,
            time,
            offset_minutes,
        })
    }

    /// A key that sorts dates of mixed precision: the earliest instant the date covers, as Unix seconds (UTC; a
    /// date without a time is midnight UTC, "2019" is 1 January 2019).
    pub fn sort_key(&self) -> i64 {
        let days = days_from_civil(self.year, self.month.unwrap_or(1), self.day.unwrap_or(1));
        let (h, m, s) = self.time.unwrap_or((0, 0, 0));
        let seconds = i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(s);
        let offset = i64::from(self.offset_minutes.unwrap_or(0)) * 60;
        days * 86_400 + seconds - offset
    }

    /// The first instant after the period the date covers, as Unix seconds: "2019" ends at 1 January 2020, "2019-05"
    /// at 1 June, a day at the next midnight (UTC), a time one second later.
    pub fn end_key(&self) -> i64 {
        match (self.month, self.day, self.time) {
            (_, _, Some(_)) => self.sort_key() + 1,
            (Some(_), Some(_), None) => self.sort_key() + 86_400,
            (Some(12), None, None) => days_from_civil(self.year + 1, 1, 1) * 86_400,
            (Some(m), None, None) => days_from_civil(self.year, m + 1, 1) * 86_400,
            _ => days_from_civil(self.year + 1, 1, 1) * 86_400,
        }
    }

    /// Writes the date back at its precision ("2019-05", "2019-05-03T10:00:00+02:00"; UTC as "Z").
    pub fn to_fhir_string(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for FhirDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.year)?;
        if let Some(m) = self.month {
            write!(f, "-{m:02}")?;
        }
        if let Some(d) = self.day {
            write!(f, "-{d:02}")?;
        }
        if let Some((h, m, s)) = self.time {
            write!(f, "T{h:02}:{m:02}:{s:02}")?;
            match self.offset_minutes {
                Some(0) => write!(f, "Z")?,
                Some(o) => {
                    let sign = if o < 0 { '-' } else { '+' };
                    let o = o.unsigned_abs();
                    write!(f, "{sign}{:02}:{:02}", o / 60, o % 60)?;
                }
                None => {}
            }
        }
        Ok(())
    }
}

/// One coding: a code in a code system, with its human-readable display when the server sent one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CodeRef {
    pub system: Option<String>,
    pub code: Option<String>,
    pub display: Option<String>,
}

impl CodeRef {
    /// What to show for this coding: the display, else "code (system)" with well-known systems named
    /// ("264868006 (SNOMED CT)"). Empty only for a CodeRef with neither code nor display, which the parsers never
    /// make.
    pub fn label(&self) -> String {
        match (&self.display, &self.code, &self.system) {
            (Some(display), _, _) => display.clone(),
            (None, Some(code), Some(system)) => format!("{code} ({})", system_name(system)),
            (None, Some(code), None) => code.clone(),
            (None, None, _) => String::new(),
        }
    }
}

/// A measured amount. `comparator` ("<", "<=", ">=", ">") matters: ">60" is not "60".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantity {
    pub value: f64,
    pub unit: Option<String>,
    pub comparator: Option<String>,
}

impl Quantity {
    /// The amount as a person reads it, the one rendering every client shows: its comparator, the number with all
    /// the digits the server sent and none it did not (`0.012`, not `0.01`; `0.001`, not `0.`), and its unit:
    /// `<0.5 mg/L`, `>60 mL/min/{1.73_m2}`, `6.8 %`. Rounding a lab value is a clinical error, so there is none.
    pub fn display(&self) -> String {
        // f64's Display is the shortest text that reads back as the same number: the server's digits (a trailing
        // zero of "1.50" excepted: FHIR decimals keep it, f64 cannot), never an exponent.
        let mut out = format!(
            "{}{}",
            self.comparator.as_deref().unwrap_or(""),
            if self.value == 0.0 { 0.0 } else { self.value }
        );
        if let Some(unit) = self.unit.as_deref().filter(|u| !u.is_empty()) {
            out.push(' ');
            out.push_str(unit);
        }
        out
    }
}

#[cfg(test)]
mod quantity_tests {
    use super::Quantity;

    #[test]
    fn a_quantity_keeps_its_comparator_and_every_digit() {
        let q = |value: f64, comparator: Option<&str>, unit: Option<&str>| Quantity {
            value,
            unit: unit.map(Into::into),
            comparator: comparator.map(Into::into),
        };
        assert_eq!(q(0.5, Some("<"), Some("mg/L")).display(), "<0.5 mg/L");
        assert_eq!(q(0.012, None, Some("ng/mL")).display(), "0.012 ng/mL");
        assert_eq!(q(0.001, None, None).display(), "0.001");
        assert_eq!(
            q(60.0, Some(">"), Some("mL/min/{1.73_m2}")).display(),
            ">60 mL/min/{1.73_m2}"
        );
        assert_eq!(q(120.0, None, Some("mm[Hg]")).display(), "120 mm[Hg]");
        assert_eq!(q(6.8, None, Some("%")).display(), "6.8 %");
        assert_eq!(q(0.00000012, None, None).display(), "0.00000012");
        assert_eq!(q(-0.0, None, None).display(), "0");
    }
}

pub(crate) fn human_name(name: &Value) -> Option<String> {
    string(&name["text"]).or_else(|| {
        // `family` is a string in R4 and a list in DSTU2.
        let parts: Vec<String> = list(&name["given"])
            .iter()
            .chain(list(&name["family"]))
            .filter_map(string)
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    })
}

pub(crate) fn address_line(address: &Value) -> Option<String> {
    string(&address["text"]).or_else(|| {
        let region = [&address["state"], &address["postalCode"]]
            .into_iter()
            .filter_map(string)
            .collect::<Vec<_>>()
            .join(" ");
        let parts: Vec<String> = list(&address["line"])
            .iter()
            .chain([&address["city"]])
            .filter_map(string)
            .chain((!region.is_empty()).then_some(region))
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    })
}

/// The id of a resource of type `ty`; `None` for another type or a missing id.
pub(crate) fn resource_id(r: &Value, ty: &str) -> Option<String> {
    if r["resourceType"] != ty {
        return None;
    }
    string(&r["id"])
}

pub(crate) fn status(r: &Value) -> String {
    string(&r["status"]).unwrap_or_else(|| "unknown".into())
}

/// A non-blank string, trimmed.
pub(crate) fn string(v: &Value) -> Option<String> {
    let s = v.as_str()?.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// The elements of a list, accepting a lone value where FHIR has an array (some servers send one).
pub(crate) fn list(v: &Value) -> &[Value] {
    match v {
        Value::Array(items) => items,
        Value::Null => &[],
        other => std::slice::from_ref(other),
    }
}

/// The first element of a list (or the lone value), else null.
pub(crate) fn first(v: &Value) -> &Value {
    list(v).first().unwrap_or(&NULL)
}

pub(crate) fn date(v: &Value) -> Option<FhirDate> {
    v.as_str().and_then(FhirDate::parse)
}

/// The first of the candidates that holds a date.
pub(crate) fn first_date(candidates: &[&Value]) -> Option<FhirDate> {
    candidates.iter().find_map(|v| date(v))
}

pub(crate) fn instant(date: &Option<FhirDate>) -> Option<i64> {
    date.as_ref().map(FhirDate::sort_key)
}

pub(crate) fn quantity(v: &Value) -> Option<Quantity> {
    let number = &v["value"];
    let value = number
        .as_f64()
        .or_else(|| number.as_str()?.trim().parse().ok())
        .filter(|x: &f64| x.is_finite())?;
    Some(Quantity {
        value,
        unit: string(&v["unit"]).or_else(|| string(&v["code"])),
        comparator: string(&v["comparator"]),
    })
}

pub(crate) fn coding(c: &Value) -> Option<CodeRef> {
    let coding = CodeRef {
        system: string(&c["system"]),
        code: string(&c["code"]),
        display: string(&c["display"]),
    };
    (coding.code.is_some() || coding.display.is_some()).then_some(coding)
}

pub(crate) fn codings(concept: &Value) -> Vec<CodeRef> {
    list(&concept["coding"]).iter().filter_map(coding).collect()
}

/// The LOINC coding of a concept, else its first coding with a code.
pub(crate) fn preferred_code(concept: &Value) -> Option<CodeRef> {
    let coded: Vec<CodeRef> = codings(concept)
        .into_iter()
        .filter(|c| c.code.is_some())
        .collect();
    let loinc = coded
        .iter()
        .position(|c| c.system.as_deref() == Some(LOINC));
    coded.into_iter().nth(loinc.unwrap_or(0))
}

/// A concept's text, else the first display of its codings.
pub(crate) fn concept_label(concept: &Value) -> Option<String> {
    string(&concept["text"]).or_else(|| codings(concept).into_iter().find_map(|c| c.display))
}

/// A concept's label, else "code (system)" of its first coding: never empty when `Some`.
pub(crate) fn concept_name(concept: &Value) -> Option<String> {
    concept_label(concept).or_else(|| {
        codings(concept)
            .into_iter()
            .find(|c| c.code.is_some())
            .map(|c| c.label())
    })
}

/// A coded answer: the first coding, its display replaced by the concept's text when there is one.
pub(crate) fn coded(concept: &Value) -> Option<CodeRef> {
    let first = codings(concept).into_iter().next();
    let text = string(&concept["text"]);
    match first {
        Some(c) => Some(CodeRef {
            display: text.or(c.display),
            ..c
        }),
        None => text.map(|t| CodeRef {
            system: None,
            code: None,
            display: Some(t),
        }),
    }
}

/// The code of a status concept ("active"); STU3 sent a plain code string.
pub(crate) fn concept_code(concept: &Value) -> Option<String> {
    string(concept)
        .or_else(|| {
            list(&concept["coding"])
                .iter()
                .find_map(|c| string(&c["code"]))
        })
        .or_else(|| string(&concept["text"]))
}

/// The codes (else texts) of a list of category concepts.
pub(crate) fn category_codes(categories: &Value) -> Vec<String> {
    list(categories)
        .iter()
        .filter_map(|c| {
            list(&c["coding"])
                .iter()
                .find_map(|x| string(&x["code"]))
                .or_else(|| string(&c["text"]))
                .or_else(|| string(c))
        })
        .collect()
}

/// A reference's type and id: "Observation/1", "https://x/fhir/Observation/1/_history/2" (type and id) or
/// "urn:uuid:1" (no type). `None` for contained ("#x") and other references.
pub(crate) fn reference_parts(reference: &str) -> Option<(Option<&str>, &str)> {
    let reference = reference.trim();
    if let Some(uuid) = reference.strip_prefix("urn:uuid:") {
        return (!uuid.is_empty()).then_some((None, uuid));
    }
    let path = reference.split(['?', '#']).next()?;
    let path = path.split("/_history/").next()?;
    let mut segments = path.rsplit('/');
    let id = segments.next().filter(|s| !s.is_empty())?;
    let ty = segments.next().filter(|s| !s.is_empty())?;
    Some((Some(ty), id))
}

/// The id a reference points to, when it points to a `ty` (or names no type).
pub(crate) fn reference_id<'a>(reference: &'a str, ty: &str) -> Option<&'a str> {
    match reference_parts(reference)? {
        (None, id) => Some(id),
        (Some(t), id) if t == ty => Some(id),
        _ => None,
    }
}

/// The names of a list of concepts (a lone concept counts as a list of one), without duplicates.
pub(crate) fn concept_names(concepts: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in list(concepts).iter().filter_map(concept_name) {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// The display of a Reference (who or what it points to, as the server named it). Only the display: resolving
/// the reference is another concern.
pub(crate) fn display(reference: &Value) -> Option<String> {
    string(&reference["display"])
}

/// The id a Reference field points to, when it points to a `ty`.
pub(crate) fn reference_to(reference: &Value, ty: &str) -> Option<String> {
    reference_id(reference["reference"].as_str()?, ty).map(str::to_owned)
}

/// The start and end of a Period.
pub(crate) fn period(p: &Value) -> (Option<FhirDate>, Option<FhirDate>) {
    (date(&p["start"]), date(&p["end"]))
}

/// A Quantity as text: "30 tablets", "<5 mg/L" ([`Quantity::display`]).
pub(crate) fn quantity_text(q: &Quantity) -> String {
    q.display()
}

pub(crate) fn system_name(system: &str) -> &str {
    match system {
        LOINC => "LOINC",
        "http://snomed.info/sct" => "SNOMED CT",
        "http://hl7.org/fhir/sid/icd-10-cm" => "ICD-10-CM",
        "http://hl7.org/fhir/sid/icd-10" => "ICD-10",
        "http://www.nlm.nih.gov/research/umls/rxnorm" => "RxNorm",
        "http://hl7.org/fhir/sid/cvx" => "CVX",
        other => other,
    }
}

/// Exactly `len` ASCII digits, as a number of type `T`.
fn digits<T: TryFrom<u32>>(s: &str, len: usize) -> Option<T> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    T::try_from(s.parse::<u32>().ok()?).ok()
}

/// Splits "10:00:00+02:00" into the clock and the offset in minutes ("Z" is 0; none is `None`).
fn split_offset(t: &str) -> Option<(&str, Option<i16>)> {
    if let Some(clock) = t.strip_suffix(['Z', 'z']) {
        return Some((clock, Some(0)));
    }
    let Some(at) = t.rfind(['+', '-']) else {
        return Some((t, None));
    };
    let (clock, offset) = t.split_at(at);
    let (sign, hh_mm) = offset.split_at(1);
    let (hours, minutes) = hh_mm.split_once(':')?;
    let (hours, minutes): (i16, i16) = (digits(hours, 2)?, digits(minutes, 2)?);
    if hours > 14 || minutes > 59 {
        return None;
    }
    let minutes = hours * 60 + minutes;
    Some((clock, Some(if sign == "-" { -minutes } else { minutes })))
}

/// "10:00:00", "10:00:00.123" or (leniently) "10:00".
fn parse_clock(clock: &str) -> Option<(u8, u8, u8)> {
    let clock = match clock.split_once('.') {
        Some((whole, fraction)) => {
            let valid = !fraction.is_empty() && fraction.bytes().all(|b| b.is_ascii_digit());
            valid.then_some(whole)?
        }
        None => clock,
    };
    let fields: Vec<&str> = clock.split(':').collect();
    let (h, m, s): (u8, u8, u8) = match fields.as_slice() {
        [h, m] => (digits(h, 2)?, digits(m, 2)?, 0),
        [h, m, s] => (digits(h, 2)?, digits(m, 2)?, digits(s, 2)?),
        _ => return None,
    };
    // 60 seconds: a leap second, which FHIR allows.
    (h < 24 && m < 60 && s <= 60).then_some((h, m, s))
}

fn days_in_month(year: i32, month: u8) -> u8 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let month = i64::from(month);
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::views::test_support::*;

    #[test]
    fn dates_keep_their_precision() {
        let year = d("2019");
        assert_eq!(
            (year.year, year.month, year.day, year.time),
            (2019, None, None, None)
        );
        let month = d("2019-05");
        assert_eq!((month.month, month.day), (Some(5), None));
        let day = d("2019-05-03");
        assert_eq!((day.month, day.day, day.time), (Some(5), Some(3), None));
        let utc = d("2019-05-03T10:00:00Z");
        assert_eq!((utc.time, utc.offset_minutes), (Some((10, 0, 0)), Some(0)));
        let plus = d("2019-05-03T10:00:00+02:00");
        assert_eq!(plus.offset_minutes, Some(120));
        let minus = d("2019-05-03T10:00:00.123-05:30");
        assert_eq!(
            (minus.time, minus.offset_minutes),
            (Some((10, 0, 0)), Some(-330))
        );
        // Not valid FHIR, but seen: no seconds, no offset.
        let bare = d("2019-05-03T10:30");
        assert_eq!((bare.time, bare.offset_minutes), (Some((10, 30, 0)), None));
        for s in [
            "2019",
            "2019-05",
            "2019-05-03",
            "2019-05-03T10:00:00Z",
            "2019-05-03T10:00:00+02:00",
            "2019-05-03T10:00:00-00:30",
        ] {
            assert_eq!(d(s).to_fhir_string(), s);
        }
        assert_eq!(
            d("2019-05-03T10:00:00+00:00").to_fhir_string(),
            "2019-05-03T10:00:00Z"
        );
    }

    #[test]
    fn a_date_ends_where_its_precision_ends() {
        assert_eq!(d("2019").end_key(), d("2020").sort_key());
        assert_eq!(d("2019-05").end_key(), d("2019-06-01").sort_key());
        assert_eq!(d("2019-12").end_key(), d("2020-01-01").sort_key());
        assert_eq!(d("2019-02-28").end_key(), d("2019-03-01").sort_key());
        assert_eq!(
            d("2019-05-03T10:00:00Z").end_key(),
            d("2019-05-03T10:00:01Z").sort_key()
        );
    }

    #[test]
    fn sort_keys_are_unix_seconds_and_order_mixed_precisions() {
        assert_eq!(d("1970-01-01").sort_key(), 0);
        assert_eq!(d("1970").sort_key(), 0);
        assert_eq!(d("2000-03-01T00:00:00Z").sort_key(), 951_868_800);
        assert_eq!(d("1969-12-31T23:59:59Z").sort_key(), -1);
        // 10:00 at +02:00 is 08:00 UTC.
        assert_eq!(
            d("2019-05-03T10:00:00+02:00").sort_key(),
            d("2019-05-03T08:00:00Z").sort_key()
        );
        let mut dates: Vec<FhirDate> = [
            "2019-05-03T10:00:00Z",
            "2020",
            "2019-05",
            "2019",
            "2019-05-03",
            "2018-12-31T23:00:00-05:00",
        ]
        .into_iter()
        .map(d)
        .collect();
        dates.sort_by_key(FhirDate::sort_key);
        let sorted: Vec<String> = dates.iter().map(FhirDate::to_fhir_string).collect();
        assert_eq!(
            sorted,
            [
                "2019",
                "2018-12-31T23:00:00-05:00",
                "2019-05",
                "2019-05-03",
                "2019-05-03T10:00:00Z",
                "2020"
            ]
        );
    }

    #[test]
    fn garbage_is_not_a_date() {
        for s in [
            "",
            "yesterday",
            "19",
            "20190",
            "2019-5",
            "2019-13",
            "2019-00",
            "2019-02-29",
            "2019-04-31",
            "0000",
            "2019-05-03T",
            "2019-05T10:00:00Z",
            "2019-05-03T25:00:00Z",
            "2019-05-03T10:61:00Z",
            "2019-05-03T10:00:00+15:00",
            "2019-05-03T10:00:00+0200",
            "2019-05-03T10:00:00.Z",
            "2019-05-03-01",
            "２０１９",
            "2019-05-03T10:00:00Z extra",
        ] {
            assert_eq!(FhirDate::parse(s), None, "{s:?}");
        }
        assert!(FhirDate::parse("2020-02-29").is_some());
        assert!(FhirDate::parse(" 2020-02-29 ").is_some());
    }

    #[test]
    fn references_parse_without_panicking() {
        assert_eq!(reference_parts("Binary/abc"), Some((Some("Binary"), "abc")));
        assert_eq!(
            reference_parts("http://x/fhir/Binary/abc?x=1"),
            Some((Some("Binary"), "abc"))
        );
        for odd in [
            "",
            "#contained",
            "abc",
            "/",
            "Binary/",
            "urn:uuid:",
            "//",
            "?/#",
        ] {
            assert_eq!(reference_id(odd, "Binary"), None, "{odd:?}");
        }
    }
}
