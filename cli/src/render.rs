//! What the CLI prints: the health summary, lists of records, a lab trend as a chart in the terminal, and the same
//! trend as an SVG file.

use std::fmt::Write as _;

use chartlink_core::HealthSummary;
use chartlink_core::views::{
    self, Flag, LabResult, LabTrend, ObservationValue, flag_text, truncate,
};

use crate::term::field;

/// A result's value as text: `6.8 %`, `No growth`, `120/80 mm[Hg]` (neutralised for the terminal).
pub fn value_text(v: Option<&ObservationValue>) -> String {
    field(&views::value_text(v))
}

fn date_text(d: Option<&chartlink_core::views::FhirDate>) -> String {
    d.map(|d| field(&d.to_fhir_string()).chars().take(10).collect())
        .unwrap_or_else(|| "-".into())
}

/// One line per lab result.
pub fn lab_line(r: &LabResult) -> String {
    format!(
        "{:<10} {:<38} {:>14} {:<2}",
        date_text(r.date.as_ref()),
        truncate(&field(&r.name), 38),
        value_text(r.value.as_ref()),
        flag_text(&r.flag)
    )
}

/// The health summary, as the portal's home page would show it.
pub fn summary(s: &HealthSummary, restricted: bool) -> String {
    let mut out = String::new();
    if let Some(p) = &s.patient {
        let _ = writeln!(
            out,
            "{} (born {}, {})",
            field(&p.name),
            date_text(p.birth_date.as_ref()),
            field(p.gender.as_deref().unwrap_or("-"))
        );
    }
    if restricted {
        let _ = writeln!(
            out,
            "  (restricted proxy access: the provider withholds confidential items)"
        );
    }
    let list = |title: &str, items: Vec<String>, out: &mut String| {
        let _ = writeln!(out, "  {title} ({})", items.len());
        if items.is_empty() {
            let _ = writeln!(out, "    none recorded");
        }
        for i in items.iter().take(8) {
            let _ = writeln!(out, "    - {}", field(i));
        }
        if items.len() > 8 {
            let _ = writeln!(out, "    … and {} more", items.len() - 8);
        }
    };
    list(
        "Allergies",
        s.allergies
            .iter()
            .map(|a| {
                let reactions = if a.reactions.is_empty() {
                    String::new()
                } else {
                    format!(": {}", a.reactions.join(", "))
                };
                format!(
                    "{}{reactions}{}",
                    a.substance,
                    a.criticality
                        .as_deref()
                        .map(|c| format!(" [{c} criticality]"))
                        .unwrap_or_default()
                )
            })
            .collect(),
        &mut out,
    );
    list(
        "Medications",
        s.medications
            .iter()
            .map(|m| {
                format!(
                    "{}{}",
                    m.name,
                    m.dosage
                        .as_deref()
                        .map(|d| format!(" — {d}"))
                        .unwrap_or_default()
                )
            })
            .collect(),
        &mut out,
    );
    list(
        "Problems",
        s.problems.iter().map(|p| p.name.clone()).collect(),
        &mut out,
    );
    list(
        "Immunizations",
        s.immunizations
            .iter()
            .map(|i| format!("{} {}", date_text(i.date.as_ref()), i.vaccine))
            .collect(),
        &mut out,
    );
    let _ = writeln!(out, "  Latest results ({})", s.latest_results.len());
    for r in s.latest_results.iter().take(10) {
        let _ = writeln!(out, "    {}", lab_line(r));
    }
    out
}

/// The reference range of a trend and the span of `values` widened to include it: (low, high, min, max).
fn value_span(
    t: &LabTrend,
    values: impl Iterator<Item = f64>,
) -> (Option<f64>, Option<f64>, f64, f64) {
    let low = t
        .range
        .as_ref()
        .and_then(|r| r.low.as_ref())
        .map(|q| q.value);
    let high = t
        .range
        .as_ref()
        .and_then(|r| r.high.as_ref())
        .map(|q| q.value);
    let (min, max) = values
        .chain([low, high].into_iter().flatten())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    (low, high, min, max)
}

/// A trend as a character chart: `height` rows, one column per point (up to `width`), the reference range dotted.
pub fn chart(t: &LabTrend, width: usize, height: usize) -> String {
    let pts = &t.points;
    if pts.is_empty() {
        return format!("{}: no numeric results\n", field(&t.name));
    }
    let step = pts.len().div_ceil(width.max(1));
    let shown: Vec<&chartlink_core::views::TrendPoint> = pts.iter().step_by(step.max(1)).collect();
    let (low, high, min, mut max) = value_span(t, shown.iter().map(|p| p.value));
    if (max - min).abs() < f64::EPSILON {
        max = min + 1.0;
    }
    let row_of = |v: f64| (((max - v) / (max - min)) * (height as f64 - 1.0)).round() as usize;
    let mut grid = vec![vec![' '; shown.len()]; height];
    for v in [low, high].into_iter().flatten() {
        let r = row_of(v);
        for c in grid[r].iter_mut() {
            *c = '·';
        }
    }
    for (i, p) in shown.iter().enumerate() {
        grid[row_of(p.value)][i] = if matches!(
            p.flag,
            Flag::High | Flag::Low | Flag::CriticalHigh | Flag::CriticalLow
        ) {
            '◆'
        } else {
            '●'
        };
    }
    let unit = field(t.unit.as_deref().unwrap_or_default());
    let mut out = format!("{} ({}), {} results\n", field(&t.name), unit, pts.len());
    for (r, row) in grid.iter().enumerate() {
        let v = max - (max - min) * r as f64 / (height as f64 - 1.0);
        let _ = writeln!(out, "{v:>8.1} │{}", row.iter().collect::<String>());
    }
    let first = pts
        .first()
        .map(|p| field(&p.date.to_fhir_string()))
        .unwrap_or_default();
    let last = pts
        .last()
        .map(|p| field(&p.date.to_fhir_string()))
        .unwrap_or_default();
    let _ = writeln!(out, "{:>8} └{}", "", "─".repeat(shown.len()));
    let (first, last) = (
        first.get(..10).unwrap_or(&first),
        last.get(..10).unwrap_or(&last),
    );
    let gap = shown.len().saturating_sub(first.len() + last.len()).max(3);
    let _ = writeln!(out, "{:>10}{first}{}{last}", "", " ".repeat(gap));
    let _ = writeln!(out, "{:>10}● result  ◆ flagged  · reference range", "");
    out
}

/// Text for an SVG element or attribute: neutralised like terminal output (XML 1.0 does not even allow most
/// control characters), then with `& < > " '` escaped.
pub fn xml_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in field(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Noncharacters, not allowed in XML either.
            '\u{FFFE}' | '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The trend as an SVG image.
pub fn svg(t: &LabTrend) -> String {
    let (w, h, pad) = (720.0, 360.0, 50.0);
    let pts = &t.points;
    let xs: Vec<f64> = pts.iter().map(|p| p.date.sort_key() as f64).collect();
    let (x0, x1) = (
        xs.iter().cloned().fold(f64::INFINITY, f64::min),
        xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
    );
    let (low, high, y0, y1) = value_span(t, pts.iter().map(|p| p.value));
    let margin = (y1 - y0).abs() * 0.1 + 0.1;
    // Lab values are rarely negative: do not draw the axis below zero for them.
    let (y0, y1) = (
        if y0 >= 0.0 {
            (y0 - margin).max(0.0)
        } else {
            y0 - margin
        },
        y1 + margin,
    );
    let sx = |x: f64| {
        if x1 > x0 {
            pad + (x - x0) / (x1 - x0) * (w - 2.0 * pad)
        } else {
            w / 2.0
        }
    };
    let sy = |y: f64| h - pad - (y - y0) / (y1 - y0) * (h - 2.0 * pad);
    let esc = |s: &str| xml_text(s);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{pad}\" y=\"28\" font-size=\"16\" font-weight=\"bold\">{} ({})</text>\n",
        esc(&t.name),
        esc(t.unit.as_deref().unwrap_or(""))
    );
    if let (Some(l), Some(hh)) = (low, high) {
        let _ = writeln!(
            out,
            "<rect x=\"{pad}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#e3f2e1\"/>",
            sy(hh),
            w - 2.0 * pad,
            sy(l) - sy(hh)
        );
    }
    let _ = writeln!(
        out,
        "<line x1=\"{pad}\" y1=\"{:.1}\" x2=\"{pad}\" y2=\"{pad}\" stroke=\"#555\"/><line x1=\"{pad}\" y1=\"{0:.1}\" x2=\"{:.1}\" y2=\"{0:.1}\" stroke=\"#555\"/>",
        h - pad,
        w - pad
    );
    for i in 0..=4 {
        let v = y0 + (y1 - y0) * f64::from(i) / 4.0;
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v:.1}</text>",
            pad - 6.0,
            sy(v) + 4.0
        );
    }
    let line: Vec<String> = pts
        .iter()
        .zip(&xs)
        .map(|(p, x)| format!("{:.1},{:.1}", sx(*x), sy(p.value)))
        .collect();
    let _ = writeln!(
        out,
        "<polyline fill=\"none\" stroke=\"#0b5394\" stroke-width=\"2\" points=\"{}\"/>",
        line.join(" ")
    );
    for (p, x) in pts.iter().zip(&xs) {
        let color = if matches!(
            p.flag,
            Flag::High | Flag::Low | Flag::CriticalHigh | Flag::CriticalLow
        ) {
            "#c62828"
        } else {
            "#0b5394"
        };
        let _ = writeln!(
            out,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{color}\"><title>{} {}</title></circle>",
            sx(*x),
            sy(p.value),
            esc(&p.date.to_string()),
            p.value
        );
    }
    if let (Some(first), Some(last)) = (pts.first(), pts.last()) {
        let day = |d: &chartlink_core::views::FhirDate| {
            esc(&d.to_fhir_string().chars().take(10).collect::<String>())
        };
        let _ = writeln!(
            out,
            "<text x=\"{pad}\" y=\"{:.1}\">{}</text><text x=\"{:.1}\" y=\"{0:.1}\" text-anchor=\"end\">{}</text>",
            h - pad + 18.0,
            day(&first.date),
            w - pad,
            day(&last.date)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// A data category as the user reads it.
pub fn category_label(c: chartlink_core::DataCategory) -> &'static str {
    use chartlink_core::DataCategory as D;
    match c {
        D::Demographics => "demographics",
        D::LabResults => "lab results",
        D::VitalSigns => "vital signs",
        D::SocialHistory => "social history",
        D::Allergies => "allergies",
        D::Medications => "medications",
        D::Immunizations => "immunizations",
        D::Problems => "problems",
        D::Procedures => "procedures",
        D::Visits => "visits",
        D::Documents => "documents",
        D::Appointments => "appointments",
        D::OtherObservations => "other observations",
        D::CarePlans => "care plans",
        D::Devices => "devices",
        D::Orders => "orders",
        D::Coverage => "insurance",
        D::Questionnaires => "questionnaires",
    }
}

/// What the provider granted, after `linked …`: the kinds of data it did not share, and whether access lasts.
pub fn consent_lines(account: &chartlink_core::LinkedAccount) -> String {
    use chartlink_core::Consent;
    let mut out = String::new();
    let list = |want: Consent| -> Vec<&'static str> {
        account
            .consent
            .iter()
            .filter(|c| c.consent == want)
            .map(|c| category_label(c.category))
            .collect()
    };
    let (none, part) = (list(Consent::NotGranted), list(Consent::Partial));
    if none.is_empty() && part.is_empty() {
        out.push_str("shared: everything asked for\n");
    }
    if !none.is_empty() {
        out.push_str(&format!(
            "not shared by the provider (will not sync): {}\n",
            none.join(", ")
        ));
    }
    if !part.is_empty() {
        out.push_str(&format!("shared only in part: {}\n", part.join(", ")));
    }
    if !account.can_renew {
        out.push_str(
            "access will not last: the provider issued no refresh token, so you will have to link again when \
             this session ends\n",
        );
    }
    out
}

/// What `unlink` did at the provider (RFC 7009).
pub fn unlink_line(r: chartlink_core::Revocation) -> &'static str {
    use chartlink_core::Revocation as R;
    match r {
        R::Revoked => "unlinked: the provider revoked this app's access; local data removed",
        R::AccessTokenLapses => {
            "unlinked: the provider revokes only refresh tokens and this link had none; its access lapses when \
             the current session ends; local data removed"
        }
        R::NoEndpoint => {
            "unlinked here: the provider offers no way to revoke access from an app; remove ChartLink in the \
             provider's portal; local data removed"
        }
        R::Unreachable => {
            "unlinked here: the provider could not be reached to revoke access; remove ChartLink in the \
             provider's portal; local data removed"
        }
        R::Refused => {
            "unlinked here: the provider refused to revoke access; remove ChartLink in the provider's portal; \
             local data removed"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::HOSTILE;
    use chartlink_core::views::{Allergy, Demographics, Medication, Quantity, TrendPoint};
    use serde_json::json;

    /// Clinical values print as the server sent them: the comparator kept, no rounding (`<0.5` was `0.5`, `0.012`
    /// was `0.01` and `0.001` was `0.`).
    #[test]
    fn values_keep_their_comparator_and_precision() {
        let q = |value: f64, comparator: Option<&str>, unit: Option<&str>| {
            ObservationValue::Quantity(Quantity {
                value,
                unit: unit.map(Into::into),
                comparator: comparator.map(Into::into),
            })
        };
        assert_eq!(
            value_text(Some(&q(0.5, Some("<"), Some("mg/L")))),
            "<0.5 mg/L"
        );
        assert_eq!(
            value_text(Some(&q(0.012, None, Some("ng/mL")))),
            "0.012 ng/mL"
        );
        assert_eq!(value_text(Some(&q(0.001, None, None))), "0.001");
        assert_eq!(value_text(Some(&q(6.8, None, Some("%")))), "6.8 %");
        let bp = ObservationValue::Components(vec![
            (
                "systolic".into(),
                Quantity {
                    value: 120.0,
                    unit: Some("mm[Hg]".into()),
                    comparator: None,
                },
            ),
            (
                "diastolic".into(),
                Quantity {
                    value: 80.0,
                    unit: Some("mm[Hg]".into()),
                    comparator: None,
                },
            ),
        ]);
        assert_eq!(value_text(Some(&bp)), "120 mm[Hg] / 80 mm[Hg]");
    }

    /// Whether `s` holds anything a terminal acts on or that reorders or hides text.
    fn assert_terminal_safe(s: &str) {
        for c in s.chars() {
            assert!(
                c == '\n' || !c.is_control(),
                "control U+{:04X} in {s:?}",
                c as u32
            );
            assert!(
                !matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'),
                "bidi/invisible U+{:04X} in {s:?}",
                c as u32
            );
        }
        assert!(
            !s.contains("http://evil"),
            "a hyperlink target survived: {s:?}"
        );
    }

    fn date(s: &str) -> chartlink_core::views::FhirDate {
        chartlink_core::views::FhirDate::parse(s).expect("date")
    }

    fn lab(name: &str, value: &str, unit: &str) -> LabResult {
        serde_json::from_value(json!({
            "id": "o1", "source": null, "name": name,
            "code": {"system": "http://loinc.org", "code": "718-7", "display": name},
            "value": {"Text": value}, "range": {"low": {"value": 1.0, "unit": unit, "comparator": null}, "high": null, "text": name},
            "flag": "High", "date": date("2024-03-01"), "status": "final", "report_id": null, "category": ["laboratory"],
            "kind": "Lab"
        }))
        .expect("a LabResult")
    }

    #[test]
    fn hostile_strings_never_reach_the_terminal_through_the_renderer() {
        for h in HOSTILE {
            let line = lab_line(&lab(h, h, h));
            assert_terminal_safe(&line);
            assert!(!line.contains('\n'), "one result is one line: {line:?}");

            let summary_text = summary(
                &HealthSummary {
                    patient: Some(Demographics {
                        id: "p".into(),
                        source: None,
                        name: (*h).into(),
                        birth_date: Some(date("1980-01-02")),
                        gender: Some((*h).into()),
                        phone: None,
                        email: None,
                        address: None,
                        mrn: None,
                    }),
                    allergies: vec![Allergy {
                        id: "a".into(),
                        source: None,
                        substance: (*h).into(),
                        reactions: vec![(*h).into(), "hives".into()],
                        severity: None,
                        criticality: Some((*h).into()),
                        clinical_status: None,
                        recorded: None,
                    }],
                    medications: vec![Medication {
                        id: "m".into(),
                        source: None,
                        name: (*h).into(),
                        dosage: Some((*h).into()),
                        status: "active".into(),
                        prescriber: None,
                        authored: None,
                        ended: None,
                        reason: vec![(*h).into()],
                        reason_ids: Vec::new(),
                    }],
                    immunizations: Vec::new(),
                    problems: Vec::new(),
                    latest_results: vec![lab(h, h, h)],
                },
                false,
            );
            assert_terminal_safe(&summary_text);
            // The summary's own lines only: a newline in a field does not forge one.
            assert_eq!(summary_text.lines().count(), 11, "{summary_text}");

            let trend = LabTrend {
                code: "718-7".into(),
                name: (*h).into(),
                unit: Some((*h).into()),
                points: vec![TrendPoint {
                    date: date("2024-01-01"),
                    value: 12.0,
                    unit: Some((*h).into()),
                    flag: Flag::Normal,
                }],
                range: None,
            };
            let c = chart(&trend, 60, 6);
            assert_terminal_safe(&c);
            assert_eq!(c.lines().count(), 10, "{c}");

            let image = svg(&trend);
            assert_terminal_safe(&image);
            let title = image.lines().nth(2).expect("the title line");
            assert!(
                !title.contains('\u{1B}') && !title.contains("<script"),
                "{title}"
            );
        }
    }

    #[test]
    fn svg_text_is_xml_escaped() {
        let trend = LabTrend {
            code: "x".into(),
            name: "<script>alert(\"x\")</script> & 'y'".into(),
            unit: Some("mg/dL</text><a href=\"javascript:1\">".into()),
            points: Vec::new(),
            range: None,
        };
        let image = svg(&trend);
        assert!(
            !image.contains("<script") && !image.contains("<a "),
            "{image}"
        );
        assert!(image.contains(
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &apos;y&apos; (mg/dL&lt;/text&gt;&lt;a href=&quot;javascript:1&quot;&gt;)"
        ), "{image}");
        assert_eq!(xml_text("a\u{0}b\u{1B}[2Jc\u{FFFE}"), "abc");
    }
}
