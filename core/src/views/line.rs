//! Each record as one line of plain text ([`Line`]): what a list shows before the record is opened. The CLI prints
//! it (through its terminal filter: the text is the server's), and a test can compare it. Never for logs: it is
//! health information.

use super::{FhirDate, Flag, Money, ObservationValue, Quantity};

/// The record in one line of plain text ("2024-05-02 Knee arthroscopy [completed] Torn meniscus"). Every
/// [`View`](super::View) has one, written beside its parser.
pub trait Line {
    fn line(&self) -> String;
}

/// A result's value as text: `6.8 %`, `<0.5 mg/L`, `No growth`, `120 mm[Hg] / 80 mm[Hg]`, with the comparator and
/// every digit the server sent, never rounded; "-" when there is none.
pub fn value_text(v: Option<&ObservationValue>) -> String {
    let q = Quantity::display;
    match v {
        Some(ObservationValue::Quantity(x)) => q(x),
        Some(ObservationValue::Text(t)) => t.clone(),
        Some(ObservationValue::Coded(c)) => {
            c.display.clone().or(c.code.clone()).unwrap_or_default()
        }
        Some(ObservationValue::Boolean(b)) => if *b { "yes" } else { "no" }.into(),
        Some(ObservationValue::Components(parts)) => parts
            .iter()
            .map(|(_, p)| q(p))
            .collect::<Vec<_>>()
            .join(" / "),
        None => "-".into(),
    }
}

/// The flag as a short label (`H`, `L`, `HH`, `LL`, `A`), empty when normal or unknown.
pub fn flag_text(f: &Flag) -> &'static str {
    match f {
        Flag::High => "H",
        Flag::Low => "L",
        Flag::CriticalHigh => "HH",
        Flag::CriticalLow => "LL",
        Flag::Abnormal => "A",
        Flag::Normal | Flag::Unknown => "",
    }
}

/// At most `n` characters, the last an ellipsis when cut.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!(
            "{}…",
            s.chars().take(n.saturating_sub(1)).collect::<String>()
        )
    }
}

/// A date as a list's first column: the day ("2024-05-02", or less when the server gave less), "-" when none.
pub(crate) fn day(d: Option<&FhirDate>) -> String {
    d.map(|d| d.to_fhir_string().chars().take(10).collect())
        .unwrap_or_else(|| "-".into())
}

/// A date at the precision the server gave, with its time ("" when there is none).
pub(crate) fn full_date(d: Option<&FhirDate>) -> String {
    d.map(FhirDate::to_fhir_string).unwrap_or_default()
}

/// The common shape of a dated record's line: "2024-05-02 Knee arthroscopy [completed] Torn meniscus".
pub(crate) fn dated(date: Option<&FhirDate>, name: &str, status: &str, detail: &str) -> String {
    format!("{:<10} {name} [{status}] {detail}", day(date))
}

pub(crate) fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

pub(crate) fn money_text(m: &Option<Money>) -> String {
    m.as_ref().map(Money::display).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helpers_keep_what_the_server_sent() {
        assert_eq!(truncate("Hemoglobin A1c", 20), "Hemoglobin A1c");
        assert_eq!(truncate("Hemoglobin A1c", 8), "Hemoglo…");
        assert_eq!(truncate("abc", 0), "…");
        let d = FhirDate::parse("2024-05-02T09:30:00Z");
        assert_eq!(day(d.as_ref()), "2024-05-02");
        assert_eq!(day(FhirDate::parse("2019-05").as_ref()), "2019-05");
        assert_eq!(day(None), "-");
        assert_eq!(full_date(d.as_ref()), "2024-05-02T09:30:00Z");
        assert_eq!(value_text(None), "-");
        assert_eq!(flag_text(&Flag::CriticalLow), "LL");
    }
}
