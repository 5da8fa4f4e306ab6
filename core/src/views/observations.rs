//! One record for every Observation, tagged by its kind ([`ObservationKind`]: lab result, vital sign, social
//! history, survey, exam, ...), with its value, reference range, interpretation flag, date and the report that lists
//! it. The kind is decided by the categories alone, so each Observation lands in exactly one of the lists: lab
//! results, vital signs, or the other observations. [`LabResult`] and [`VitalSign`] are the same record.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;

/// The value of a result or vital sign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ObservationValue {
    Quantity(Quantity),
    Text(String),
    /// A coded answer ("Negative", "Never smoker"); `display` holds the concept's text when it had one.
    Coded(CodeRef),
    Boolean(bool),
    /// Named parts measured together, e.g. systolic and diastolic blood pressure, in the server's order.
    Components(Vec<(String, Quantity)>),
}

/// How a result compares to its range, from the HL7 v3 interpretation codes N, H, L, HH, LL and A.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Flag {
    Normal,
    High,
    Low,
    CriticalHigh,
    CriticalLow,
    Abnormal,
    /// No interpretation was given (or none we know). Not computed from the range: the lab did not say.
    Unknown,
}

/// The reference range of a result (the first one the server gave).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceRange {
    pub low: Option<Quantity>,
    pub high: Option<Quantity>,
    pub text: Option<String>,
}

/// An Observation: a lab result, a vital sign, a survey answer, an exam finding, an imaging or procedure result,
/// smoking status, ... ([`Observation::kind`] says which).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// Which list shows it, from its categories.
    pub kind: ObservationKind,
    /// The DiagnosticReport that lists it (within the same provider), when one does.
    pub report_id: Option<String>,
    pub id: String,
    pub source: Option<String>,
    pub name: String,
    /// The LOINC coding when there is one, else the first coding with a code.
    pub code: Option<CodeRef>,
    pub value: Option<ObservationValue>,
    pub range: Option<ReferenceRange>,
    pub flag: Flag,
    /// effectiveDateTime, else effectivePeriod.start, effectiveInstant, issued.
    pub date: Option<FhirDate>,
    /// The Observation status ("final", "amended", ...); "unknown" when missing.
    pub status: String,
    /// The category codes ("survey", "social-history", ...); empty when the server gave none.
    pub category: Vec<String>,
}

/// A lab result (an Observation with the laboratory category, or none).
pub type LabResult = Observation;
/// A vital sign (an Observation with the vital-signs category, and not laboratory).
pub type VitalSign = Observation;

/// What kind of Observation it is, from its categories: a lab result when it has the laboratory category or none at
/// all, else a vital sign when it has vital-signs (or "vital-sign"), else the first other category we know (social
/// history, survey, exam, ...), else `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ObservationKind {
    Lab,
    VitalSign,
    /// Social history: the social-history category, or SDOH (US Core 4+).
    SocialHistory,
    Survey,
    Exam,
    Imaging,
    /// A procedure's result.
    Procedure,
    Therapy,
    Activity,
    FunctionalStatus,
    /// A category we do not know.
    Other,
}

impl ObservationKind {
    /// The kind of an Observation with these category codes.
    pub fn of(category: &[String]) -> Self {
        let has = |code: &str| category.iter().any(|c| c.eq_ignore_ascii_case(code));
        if category.is_empty() || has("laboratory") {
            Self::Lab
        } else if has("vital-signs") || has("vital-sign") {
            Self::VitalSign
        } else if has("social-history") || has("sdoh") {
            Self::SocialHistory
        } else if has("survey") {
            Self::Survey
        } else if has("exam") {
            Self::Exam
        } else if has("imaging") {
            Self::Imaging
        } else if has("procedure") {
            Self::Procedure
        } else if has("therapy") {
            Self::Therapy
        } else if has("activity") {
            Self::Activity
        } else if has("functional-status") {
            Self::FunctionalStatus
        } else {
            Self::Other
        }
    }

    /// Whether the "other observations" list shows it (neither a lab result nor a vital sign).
    pub fn is_other(self) -> bool {
        !matches!(self, Self::Lab | Self::VitalSign)
    }
}

/// LOINC codes of social history, whichever category a server files them under (Synthea puts smoking status
/// under "survey").
const SOCIAL_HISTORY_CODES: [&str; 8] = [
    "72166-2", // Tobacco smoking status
    "11367-0", // History of tobacco use
    "8663-7",  // Cigarettes smoked current (pack per day)
    "64234-8", // Tobacco use, packs per year
    "11331-6", // History of alcohol use
    "74013-4", // Alcoholic drinks per day
    "76689-9", // Sex assigned at birth
    "11341-5", // History of occupation
];

impl Observation {
    /// Whether it is social history: the social-history (or sdoh) category, or a social-history code in any.
    pub fn is_social_history(&self) -> bool {
        let by_category = self
            .category
            .iter()
            .any(|c| c.eq_ignore_ascii_case("social-history") || c.eq_ignore_ascii_case("sdoh"));
        let by_code = self.code.as_ref().is_some_and(|c| {
            c.system.as_deref() == Some(LOINC)
                && c.code
                    .as_deref()
                    .is_some_and(|code| SOCIAL_HISTORY_CODES.contains(&code))
        });
        by_category || by_code
    }
}

/// Any Observation, whatever its category (`None` for another resource or one without an id).
pub fn any_observation(r: &Value) -> Option<Observation> {
    let id = resource_id(r, "Observation")?;
    let category = category_codes(&r["category"]);
    Some(Observation {
        kind: ObservationKind::of(&category),
        report_id: None,
        id,
        source: None,
        name: concept_name(&r["code"]).unwrap_or_else(|| "Unnamed result".into()),
        code: preferred_code(&r["code"]),
        value: observation_value(r),
        range: reference_range(r),
        flag: flag(&r["interpretation"]),
        date: first_date(&[
            &r["effectiveDateTime"],
            &r["effectivePeriod"]["start"],
            &r["effectiveInstant"],
            &r["issued"],
        ]),
        status: status(r),
        category,
    })
}

/// A lab result from an Observation. `None` when it is not an Observation or has a category list without
/// "laboratory" (an Observation with no category at all counts as a lab result).
pub fn lab_result(r: &Value) -> Option<Observation> {
    any_observation(r).filter(|o| o.kind == ObservationKind::Lab)
}

/// A vital sign from an Observation in the "vital-signs" category (or "vital-sign", as some exports spell it)
/// and not in the laboratory category.
pub fn vital_sign(r: &Value) -> Option<Observation> {
    any_observation(r).filter(|o| o.kind == ObservationKind::VitalSign)
}

/// An Observation shown as neither lab result nor vital sign.
pub fn other_observation(r: &Value) -> Option<Observation> {
    any_observation(r).filter(|o| o.kind.is_other())
}

/// Social history (smoking status, alcohol use, ...) from whichever category carries it.
pub fn social_history(r: &Value) -> Option<Observation> {
    any_observation(r).filter(Observation::is_social_history)
}

pub(super) fn observation_value(r: &Value) -> Option<ObservationValue> {
    let integer = || {
        let value = r["valueInteger"].as_f64()?;
        Some(ObservationValue::Quantity(Quantity {
            value,
            unit: None,
            comparator: None,
        }))
    };
    let components = || {
        let parts: Vec<(String, Quantity)> = list(&r["component"])
            .iter()
            .filter_map(|c| Some((concept_name(&c["code"])?, quantity(&c["valueQuantity"])?)))
            .collect();
        (!parts.is_empty()).then_some(ObservationValue::Components(parts))
    };
    quantity(&r["valueQuantity"])
        .map(ObservationValue::Quantity)
        .or_else(|| string(&r["valueString"]).map(ObservationValue::Text))
        .or_else(|| coded(&r["valueCodeableConcept"]).map(ObservationValue::Coded))
        .or_else(|| r["valueBoolean"].as_bool().map(ObservationValue::Boolean))
        .or_else(integer)
        .or_else(|| string(&r["valueDateTime"]).map(ObservationValue::Text))
        .or_else(|| string(&r["valueTime"]).map(ObservationValue::Text))
        .or_else(components)
}

pub(super) fn reference_range(r: &Value) -> Option<ReferenceRange> {
    let range = list(&r["referenceRange"]).first()?;
    let range = ReferenceRange {
        low: quantity(&range["low"]),
        high: quantity(&range["high"]),
        text: string(&range["text"]),
    };
    let empty = range.low.is_none() && range.high.is_none() && range.text.is_none();
    (!empty).then_some(range)
}

/// The first interpretation we recognise, by code (N, H, L, HH, LL, A, ...) or else by text ("High").
pub(super) fn flag(interpretation: &Value) -> Flag {
    let concepts = list(interpretation);
    let by_code = concepts
        .iter()
        .flat_map(|c| list(&c["coding"]))
        .find_map(|c| flag_of(c["code"].as_str()?));
    by_code
        .or_else(|| concepts.iter().find_map(|c| flag_of(c["text"].as_str()?)))
        .unwrap_or(Flag::Unknown)
}

pub(super) fn flag_of(code: &str) -> Option<Flag> {
    Some(match code.trim().to_ascii_uppercase().as_str() {
        "N" | "NORMAL" => Flag::Normal,
        "H" | "HU" | "H>" | "HIGH" => Flag::High,
        "L" | "LU" | "L<" | "LOW" => Flag::Low,
        "HH" | "CRITICAL HIGH" => Flag::CriticalHigh,
        "LL" | "CRITICAL LOW" => Flag::CriticalLow,
        "A" | "AA" | "ABNORMAL" => Flag::Abnormal,
        _ => return None,
    })
}

/// Every Observation is one view, whatever its kind; the lists (lab results, vital signs, the others) are its kinds.
impl super::View for Observation {
    const RESOURCE_TYPES: &'static [&'static str] = &["Observation"];
    const RELATED: &'static [&'static str] = &["DiagnosticReport"];
    fn parse(resource: &Value) -> Option<Self> {
        any_observation(resource)
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn date(&self) -> Option<&FhirDate> {
        self.date.as_ref()
    }
    fn set_source(&mut self, source: &str) {
        self.source = Some(source.to_owned());
    }
    fn link(records: &mut [Self], related: &super::Related) {
        super::link_reports(records, related.of("DiagnosticReport"));
    }
}

/// A vital sign shows its flag; the other observations (the lab results have a view of their own) their
/// categories.
impl Line for Observation {
    fn line(&self) -> String {
        let tail = if self.kind == crate::views::ObservationKind::VitalSign {
            flag_text(&self.flag).to_string()
        } else {
            format!("[{}]", self.category.join(", "))
        };
        format!(
            "{:<10} {:<38} {:>14} {tail}",
            day(self.date.as_ref()),
            truncate(&self.name, 38),
            value_text(self.value.as_ref()),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn names_fall_back_to_display_then_code() {
        let named = |code: Value| {
            any_observation(&json!({"resourceType": "Observation", "id": "x", "code": code}))
                .unwrap()
                .name
        };
        assert_eq!(
            named(
                json!({"coding": [{"system": LOINC, "code": "630-4", "display": "Urine culture"}]})
            ),
            "Urine culture"
        );
        assert_eq!(
            named(json!({"coding": [{"system": LOINC, "code": "630-4"}]})),
            "630-4 (LOINC)"
        );
        assert_eq!(
            named(json!({"coding": [{"system": "urn:x", "code": "7"}]})),
            "7 (urn:x)"
        );
        assert_eq!(
            named(json!({"coding": {"code": "7"}, "text": "  "})),
            "7",
            "a lone coding, blank text"
        );
        assert_eq!(named(json!({"text": ""})), "Unnamed result");
    }

    #[test]
    fn values_of_every_kind() {
        let value = |v: Value| {
            let mut r = json!({"resourceType": "Observation", "id": "x"});
            r.as_object_mut()
                .unwrap()
                .extend(v.as_object().unwrap().clone());
            any_observation(&r).unwrap().value
        };
        assert_eq!(
            value(json!({"valueString": "Not fasting"})),
            Some(ObservationValue::Text("Not fasting".into()))
        );
        let culture = value(json!({"valueCodeableConcept":
            {"coding": [{"system": "http://snomed.info/sct", "code": "264868006"}], "text": "No growth"}}));
        let Some(ObservationValue::Coded(c)) = culture else {
            panic!("{culture:?}")
        };
        assert_eq!(
            (c.code.as_deref(), c.display.as_deref()),
            (Some("264868006"), Some("No growth"))
        );
        let bare = value(
            json!({"valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "260385009"}]}}),
        );
        let Some(ObservationValue::Coded(c)) = bare else {
            panic!("{bare:?}")
        };
        assert_eq!(
            (c.display.as_deref(), c.label()),
            (None, "260385009 (SNOMED CT)".to_owned())
        );
        assert_eq!(
            value(json!({"valueBoolean": false})),
            Some(ObservationValue::Boolean(false))
        );
        let count = value(json!({"valueInteger": 3}));
        assert_eq!(
            count,
            Some(ObservationValue::Quantity(Quantity {
                value: 3.0,
                unit: None,
                comparator: None
            }))
        );
        let above = value(
            json!({"valueQuantity": {"value": "60", "comparator": ">", "code": "mL/min/{1.73_m2}"}}),
        );
        let expected = Quantity {
            value: 60.0,
            unit: Some("mL/min/{1.73_m2}".into()),
            comparator: Some(">".into()),
        };
        assert_eq!(above, Some(ObservationValue::Quantity(expected)));
        assert_eq!(
            value(json!({"valueQuantity": {"unit": "mg/dL"}})),
            None,
            "a quantity without a value"
        );
        assert_eq!(
            value(json!({"dataAbsentReason": {"text": "Specimen hemolyzed"}})),
            None
        );
    }

    #[test]
    fn interpretation_codes_and_texts_give_flags() {
        let flagged = |interpretation: Value| {
            let r =
                json!({"resourceType": "Observation", "id": "x", "interpretation": interpretation});
            any_observation(&r).unwrap().flag
        };
        let coded = |code: &str| {
            flagged(
                json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": code}]}]),
            )
        };
        assert_eq!(coded("N"), Flag::Normal);
        assert_eq!(coded("H"), Flag::High);
        assert_eq!(coded("L"), Flag::Low);
        assert_eq!(coded("HH"), Flag::CriticalHigh);
        assert_eq!(coded("LL"), Flag::CriticalLow);
        assert_eq!(coded("A"), Flag::Abnormal);
        assert_eq!(coded("?"), Flag::Unknown);
        assert_eq!(
            flagged(json!({"text": "High"})),
            Flag::High,
            "a lone concept, text only"
        );
        assert_eq!(
            flagged(json!([{"coding": [{"code": "IND"}]}, {"coding": [{"code": "LL"}]}])),
            Flag::CriticalLow
        );
        assert_eq!(flagged(json!("H")), Flag::Unknown, "not a concept");
    }

    #[test]
    fn observation_dates_fall_back_in_order() {
        let dated = |fields: Value| {
            let mut r = json!({"resourceType": "Observation", "id": "x"});
            r.as_object_mut()
                .unwrap()
                .extend(fields.as_object().unwrap().clone());
            any_observation(&r)
                .unwrap()
                .date
                .map(|d| d.to_fhir_string())
        };
        assert_eq!(
            dated(json!({"effectiveDateTime": "2019-05", "issued": "2019-06-01T00:00:00Z"}))
                .as_deref(),
            Some("2019-05")
        );
        assert_eq!(
            dated(json!({"effectiveDateTime": "soon", "effectiveInstant": "2019-05-03T10:00:00Z"}))
                .as_deref(),
            Some("2019-05-03T10:00:00Z")
        );
        assert_eq!(
            dated(json!({"issued": "2019-06-01T00:00:00Z"})).as_deref(),
            Some("2019-06-01T00:00:00Z")
        );
        assert_eq!(
            dated(
                json!({"_effectiveDateTime": {"extension": [{"url": "x", "valueCode": "unknown"}]}})
            ),
            None
        );
    }

    #[test]
    fn each_observation_has_one_view_and_smoking_status_is_social_history_in_any_category() {
        let obs = |category: Value, code: &str| {
            json!({"resourceType": "Observation", "id": "x", "category": category,
                "code": {"coding": [{"system": LOINC, "code": code}]}})
        };
        let cat = |c: &str| json!([{"coding": [{"code": c}]}]);
        let smoking = obs(cat("survey"), "72166-2");
        assert!(other_observation(&smoking).is_some());
        assert!(
            social_history(&smoking).is_some(),
            "Synthea files it under survey"
        );
        assert!(social_history(&obs(cat("survey"), "44249-1")).is_none());
        assert!(social_history(&obs(cat("sdoh"), "x")).is_some());
        for (category, kind) in [
            (json!(null), ObservationKind::Lab),
            (cat("laboratory"), ObservationKind::Lab),
            (cat("vital-sign"), ObservationKind::VitalSign),
            (
                json!([{"coding": [{"code": "vital-signs"}]}, {"coding": [{"code": "laboratory"}]}]),
                ObservationKind::Lab,
            ),
            (cat("exam"), ObservationKind::Exam),
            (cat("survey"), ObservationKind::Survey),
            (cat("sdoh"), ObservationKind::SocialHistory),
            (
                json!([{"text": "Functional status"}]),
                ObservationKind::Other,
            ),
        ] {
            let o = any_observation(&obs(category.clone(), "1")).unwrap();
            assert_eq!(ObservationKind::of(&o.category), kind, "{category}");
            assert_eq!(o.kind, kind);
            assert_eq!(
                other_observation(&obs(category, "1")).is_some(),
                kind.is_other()
            );
        }
    }
}
