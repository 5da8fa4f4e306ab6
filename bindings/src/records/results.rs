//! Results: lab results and their trends, vital signs, other observations and the reports that group them, with the
//! value and reference-range readers they share.

use chartlink_core::views::{
    self, Flag, ObservationKind, ObservationValue, Quantity, ReferenceRange,
};

use super::{FhirDate, all, date, mirror};

/// How a result compares to its reference range, as the lab said (never computed here). Core's own enum, exported
/// as it is (no mirror).
#[uniffi::remote(Enum)]
pub enum Flag {
    Normal,
    High,
    Low,
    CriticalHigh,
    CriticalLow,
    Abnormal,
    /// The lab gave no interpretation.
    Unknown,
}

mirror! {
    /// A code in a code system (SNOMED CT, ICD-10-CM, LOINC), with its display when the server sent one.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct Coding from views::CodeRef as c {
        system: Option<String>,
        code: Option<String>,
        display: Option<String>,
    }
}

/// One named part of a value measured together (systolic and diastolic blood pressure).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ValueComponent {
    pub name: String,
    pub value: f64,
    pub unit: Option<String>,
}

fn quantity_text(q: &Quantity) -> String {
    let mut text = format!("{}{}", q.comparator.as_deref().unwrap_or(""), q.value);
    if let Some(unit) = &q.unit {
        text.push(' ');
        text.push_str(unit);
    }
    text
}

/// (display text, number, unit, components) of an observation's value.
type ValueParts = (
    Option<String>,
    Option<f64>,
    Option<String>,
    Vec<ValueComponent>,
);

fn value_parts(value: Option<ObservationValue>) -> ValueParts {
    match value {
        None => (None, None, None, Vec::new()),
        Some(ObservationValue::Quantity(q)) => (
            Some(quantity_text(&q)),
            Some(q.value),
            q.unit.clone(),
            Vec::new(),
        ),
        Some(ObservationValue::Text(t)) => (Some(t), None, None, Vec::new()),
        Some(ObservationValue::Coded(c)) => (Some(c.label()), None, None, Vec::new()),
        Some(ObservationValue::Boolean(b)) => (
            Some(if b { "Yes" } else { "No" }.into()),
            None,
            None,
            Vec::new(),
        ),
        Some(ObservationValue::Components(parts)) => {
            let text = parts
                .iter()
                .map(|(name, q)| format!("{name} {}", quantity_text(q)))
                .collect::<Vec<_>>()
                .join(", ");
            let components = parts
                .into_iter()
                .map(|(name, q)| ValueComponent {
                    name,
                    value: q.value,
                    unit: q.unit,
                })
                .collect();
            (Some(text), None, None, components)
        }
    }
}

fn range_text(range: &Option<ReferenceRange>) -> Option<String> {
    let range = range.as_ref()?;
    if let Some(text) = &range.text {
        return Some(text.clone());
    }
    let unit = range
        .high
        .as_ref()
        .or(range.low.as_ref())
        .and_then(|q| q.unit.clone())
        .map(|u| format!(" {u}"))
        .unwrap_or_default();
    match (&range.low, &range.high) {
        (Some(low), Some(high)) => Some(format!("{}–{}{unit}", low.value, high.value)),
        (Some(low), None) => Some(format!(">= {}{unit}", low.value)),
        (None, Some(high)) => Some(format!("<= {}{unit}", high.value)),
        (None, None) => None,
    }
}

fn code_of(code: &Option<views::CodeRef>) -> Option<String> {
    code.as_ref().and_then(|c| c.code.clone())
}

/// One point of a `LabTrend`.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TrendPoint {
    /// When it was taken; `date.epoch_seconds` is the x axis.
    pub date: FhirDate,
    pub value: f64,
    pub unit: Option<String>,
    pub flag: Flag,
}

mirror! {
    /// One test over time, for a chart: points oldest first.
    #[derive(Debug, Clone, PartialEq, uniffi::Record)]
    pub struct LabTrend from views::LabTrend as t {
        code: String,
        /// The latest result's name.
        name: String,
        /// The latest point's unit (each point carries its own: providers may differ).
        unit: Option<String>,
        points: Vec<TrendPoint> = t
                    .points
                    .into_iter()
                    .map(|p| TrendPoint {
                        date: p.date.into(),
                        value: p.value,
                        unit: p.unit,
                        flag: p.flag,
                    })
                    .collect(),
        range_text: Option<String> = range_text(&t.range),
        /// The reference range's bounds, for a band behind the line.
        range_low: Option<f64> = t
                    .range
                    .as_ref()
                    .and_then(|r| r.low.as_ref())
                    .map(|q| q.value),
        range_high: Option<f64> = t
                    .range
                    .as_ref()
                    .and_then(|r| r.high.as_ref())
                    .map(|q| q.value),
    }
}

/// What kind of Observation it is, from its categories. Core's own enum, exported as it is.
#[uniffi::remote(Enum)]
pub enum ObservationKind {
    /// A lab result (the laboratory category, or none): `labResults`.
    Lab,
    /// A vital sign: `vitalSigns`.
    VitalSign,
    /// Social history (the social-history or sdoh category).
    SocialHistory,
    Survey,
    Exam,
    Imaging,
    /// A procedure's result.
    Procedure,
    Therapy,
    Activity,
    FunctionalStatus,
    /// A category ChartLink does not know.
    Other,
}

/// An Observation: a lab result, a vital sign, a survey answer, an exam finding, smoking status, an imaging
/// measurement, ... (`kind` says which; `labResults`, `vitalSigns` and `observations` each list their kinds). Blood
/// pressure comes as `components` (systolic, diastolic) with `value_text` "Systolic 120 mmHg, Diastolic 80 mmHg".
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Observation {
    pub id: String,
    pub kind: ObservationKind,
    pub name: String,
    /// The LOINC code when there is one (pass it to `lab_trend`).
    pub code: Option<String>,
    /// The value as the lab wrote it ("7.2 %", "<5 mg/L", "Negative").
    pub value_text: Option<String>,
    /// The number, for numeric results.
    pub numeric_value: Option<f64>,
    pub unit: Option<String>,
    pub components: Vec<ValueComponent>,
    /// The reference range ("4.0–5.6 %").
    pub range_text: Option<String>,
    pub flag: Flag,
    pub date: Option<FhirDate>,
    /// "final", "amended", "preliminary", ...
    pub status: String,
    /// The category codes ("laboratory", "survey", "social-history", ...).
    pub category: Vec<String>,
    /// The report (DiagnosticReport) that lists it, at the same provider.
    pub report_id: Option<String>,
    /// The provider it came from (its FHIR base).
    pub source: Option<String>,
}

impl From<views::Observation> for Observation {
    fn from(o: views::Observation) -> Self {
        let code = code_of(&o.code);
        let range_text = range_text(&o.range);
        let (value_text, numeric_value, unit, components) = value_parts(o.value);
        Self {
            id: o.id,
            kind: o.kind,
            name: o.name,
            code,
            value_text,
            numeric_value,
            unit,
            components,
            range_text,
            flag: o.flag,
            date: date(o.date),
            status: o.status,
            category: o.category,
            report_id: o.report_id,
            source: o.source,
        }
    }
}

mirror! {
    /// A report (lab panel, imaging, pathology) with the results it lists that are on the device.
    #[derive(Debug, Clone, PartialEq, uniffi::Record)]
    pub struct DiagnosticReport from views::DiagnosticReport as r {
        id: String,
        name: String,
        code: Option<String> = code_of(&r.code),
        status: String,
        category: Vec<String>,
        date: Option<FhirDate> => date,
        issued: Option<FhirDate> => date,
        performer: Option<String>,
        conclusion: Option<String>,
        /// Every result it lists, by id (some may not be on the device: see `results`).
        result_ids: Vec<String>,
        results: Vec<Observation> => all,
        visit_id: Option<String>,
        source: Option<String>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(value: f64, unit: &str) -> Quantity {
        Quantity {
            value,
            unit: Some(unit.into()),
            comparator: None,
        }
    }

    #[test]
    fn values_become_text_number_and_unit() {
        let (text, number, unit, parts) =
            value_parts(Some(ObservationValue::Quantity(q(7.2, "%"))));
        assert_eq!(
            (text.as_deref(), number, unit.as_deref()),
            (Some("7.2 %"), Some(7.2), Some("%"))
        );
        assert!(parts.is_empty());
        let below = Quantity {
            comparator: Some("<".into()),
            ..q(5.0, "mg/L")
        };
        assert_eq!(
            value_parts(Some(ObservationValue::Quantity(below)))
                .0
                .as_deref(),
            Some("<5 mg/L")
        );
        let bp = ObservationValue::Components(vec![
            ("Systolic".into(), q(120.0, "mmHg")),
            ("Diastolic".into(), q(80.0, "mmHg")),
        ]);
        let (text, number, _, parts) = value_parts(Some(bp));
        assert_eq!(
            text.as_deref(),
            Some("Systolic 120 mmHg, Diastolic 80 mmHg")
        );
        assert_eq!((number, parts.len()), (None, 2));
    }

    #[test]
    fn ranges_read_as_text() {
        let range = |low, high, text: Option<&str>| {
            Some(ReferenceRange {
                low,
                high,
                text: text.map(Into::into),
            })
        };
        assert_eq!(
            range_text(&range(Some(q(4.0, "%")), Some(q(5.6, "%")), None)).as_deref(),
            Some("4–5.6 %")
        );
        assert_eq!(
            range_text(&range(None, Some(q(200.0, "mg/dL")), None)).as_deref(),
            Some("<= 200 mg/dL")
        );
        assert_eq!(
            range_text(&range(None, None, Some("negative"))).as_deref(),
            Some("negative")
        );
        assert_eq!(range_text(&None), None);
    }
}
