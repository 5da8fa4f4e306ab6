//! Lab results: Observations in the laboratory category (or with none), linked to the DiagnosticReports that list
//! them; the trend of one code for a chart, the newest result per code, and the small sealed projection (the
//! brief) the store keeps of each result so trends and summaries need not parse whole resources.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::observations::*;

/// One point of a [`LabTrend`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    pub date: FhirDate,
    pub value: f64,
    pub unit: Option<String>,
    pub flag: Flag,
}

/// The numeric history of one lab code, for a chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabTrend {
    pub code: String,
    /// The name of the latest result.
    pub name: String,
    /// The unit of the latest point; points carry their own (providers may differ).
    pub unit: Option<String>,
    /// Sorted by date, oldest first.
    pub points: Vec<TrendPoint>,
    /// The range of the latest result that has one.
    pub range: Option<ReferenceRange>,
}

/// Sets `report_id` of each result listed in a DiagnosticReport's `result` (references may be relative, absolute
/// or `urn:uuid:`). Results no report lists keep their `report_id`.
pub fn link_reports(results: &mut [LabResult], reports: &[Value]) {
    let mut report_of: HashMap<&str, &str> = HashMap::new();
    for report in reports {
        let Some(report_id) = report["id"].as_str() else {
            continue;
        };
        if report["resourceType"] != "DiagnosticReport" {
            continue;
        }
        for reference in list(&report["result"])
            .iter()
            .filter_map(|x| x["reference"].as_str())
        {
            if let Some(result_id) = reference_id(reference, "Observation") {
                report_of.insert(result_id, report_id);
            }
        }
    }
    for result in results {
        if let Some(report_id) = report_of.get(result.id.as_str()) {
            result.report_id = Some((*report_id).to_owned());
        }
    }
}

/// The numeric history of one code (e.g. LOINC "4548-4", HbA1c): the dated Quantity results, oldest first.
/// Results entered in error or cancelled are left out. `None` when no result has a numeric value.
pub fn lab_trend(results: &[LabResult], code: &str) -> Option<LabTrend> {
    let mut matching: Vec<&LabResult> = results
        .iter()
        .filter(|r| counts(r) && result_code(r) == Some(code))
        .collect();
    matching.sort_unstable_by_key(|r| instant(&r.date));
    let points: Vec<TrendPoint> = matching
        .iter()
        .filter_map(|r| match (&r.value, &r.date) {
            (Some(ObservationValue::Quantity(q)), Some(date)) => Some(TrendPoint {
                date: date.clone(),
                value: q.value,
                unit: q.unit.clone(),
                flag: r.flag,
            }),
            _ => None,
        })
        .collect();
    let latest = matching.last()?;
    let unit = points.last()?.unit.clone();
    Some(LabTrend {
        code: code.to_owned(),
        name: latest.name.clone(),
        unit,
        points,
        range: matching.iter().rev().find_map(|r| r.range.clone()),
    })
}

/// The newest result of each code (results without a code are grouped by name), newest first; undated results
/// count as oldest. Results entered in error or cancelled are left out.
pub fn latest_per_code(results: &[LabResult]) -> Vec<LabResult> {
    let mut newest: BTreeMap<&str, &LabResult> = BTreeMap::new();
    for r in results.iter().filter(|r| counts(r)) {
        let key = result_code(r).unwrap_or(r.name.as_str());
        let slot = newest.entry(key).or_insert(r);
        if instant(&r.date) > instant(&slot.date) {
            *slot = r;
        }
    }
    let mut latest: Vec<LabResult> = newest.into_values().cloned().collect();
    latest.sort_unstable_by_key(|r| Reverse(instant(&r.date)));
    latest
}

fn result_code(r: &LabResult) -> Option<&str> {
    r.code.as_ref()?.code.as_deref()
}

/// Whether a result belongs on a chart or a list: not withdrawn.
fn counts(r: &LabResult) -> bool {
    !matches!(r.status.as_str(), "entered-in-error" | "cancelled")
}

/// The version of [`LabBrief`] written now. A brief of another version (or none: the serialized `LabResult` of
/// earlier releases) is not decoded; the read falls back to parsing the resource.
const BRIEF_VERSION: u8 = 1;

/// The small projection of a lab result the store seals beside the resource (the brief), for trends and the
/// latest results. Private and versioned: renaming a field of the public [`LabResult`] cannot silently empty
/// trends, and an old or damaged brief is a fallback to the full parse, never a missing result. The store reads
/// `date` (with [`FhirDate`]'s serde shape) to choose the newest result per code.
#[derive(Debug, Serialize, Deserialize)]
struct LabBrief {
    v: u8,
    id: String,
    name: String,
    code: Option<CodeRef>,
    value: Option<ObservationValue>,
    range: Option<ReferenceRange>,
    flag: Flag,
    date: Option<FhirDate>,
    status: String,
    category: Vec<String>,
}

/// The brief of a lab result Observation and its sort key (the clinical date), for the store; `None` for any
/// other resource.
pub(crate) fn lab_brief(r: &Value) -> Option<(Vec<u8>, i64)> {
    let lab = lab_result(r)?;
    let key = lab.date.as_ref().map_or(i64::MIN, FhirDate::sort_key);
    let brief = LabBrief {
        v: BRIEF_VERSION,
        id: lab.id,
        name: lab.name,
        code: lab.code,
        value: lab.value,
        range: lab.range,
        flag: lab.flag,
        date: lab.date,
        status: lab.status,
        category: lab.category,
    };
    serde_json::to_vec(&brief).ok().map(|b| (b, key))
}

/// The lab result of a brief; `None` when it is of another version or does not decode (then parse the resource).
pub(crate) fn decode_brief(bytes: &[u8]) -> Option<LabResult> {
    #[derive(Deserialize)]
    struct Version {
        v: Option<u8>,
    }
    if serde_json::from_slice::<Version>(bytes).ok()?.v != Some(BRIEF_VERSION) {
        return None;
    }
    let b: LabBrief = serde_json::from_slice(bytes).ok()?;
    Some(LabResult {
        kind: ObservationKind::Lab,
        id: b.id,
        source: None,
        name: b.name,
        code: b.code,
        value: b.value,
        range: b.range,
        flag: b.flag,
        date: b.date,
        status: b.status,
        report_id: None,
        category: b.category,
    })
}

/// The lab results of one account's briefs; when any of them does not decode (an older release wrote it, or it
/// is damaged), the results of the resources from `full`, parsed whole, instead.
pub fn results_from_briefs<B: AsRef<[u8]>, E>(
    briefs: &[B],
    full: impl FnOnce() -> Result<Vec<Value>, E>,
) -> Result<Vec<LabResult>, E> {
    let decoded: Option<Vec<LabResult>> = briefs.iter().map(|b| decode_brief(b.as_ref())).collect();
    match decoded {
        Some(results) if !briefs.is_empty() => Ok(results),
        _ => Ok(full()?.iter().filter_map(lab_result).collect()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::views::test_support::*;
    use serde_json::json;

    #[test]
    fn a_lab_result_with_everything() {
        let r = json!({
            "resourceType": "Observation", "id": "a1c-1", "status": "final",
            "category": category("laboratory"),
            "code": {"coding": [{"system": "urn:local", "code": "A1C"}, {"system": LOINC, "code": "4548-4"}],
                "text": "Hemoglobin A1c"},
            "effectiveDateTime": "2024-03-01T08:30:00Z", "issued": "2024-03-02T08:30:00Z",
            "valueQuantity": {"value": 7.9, "unit": "%"},
            "interpretation": [{"coding": [{"code": "H"}]}],
            "referenceRange": [{"low": {"value": 4.0, "unit": "%"}, "high": {"value": 5.6, "unit": "%"}}],
        });
        let lab = lab_result(&r).unwrap();
        assert_eq!(lab.name, "Hemoglobin A1c");
        assert_eq!(
            lab.code.as_ref().unwrap().code.as_deref(),
            Some("4548-4"),
            "LOINC preferred"
        );
        assert_eq!(lab.value, Some(ObservationValue::Quantity(q(7.9, "%"))));
        assert_eq!(lab.flag, Flag::High);
        assert_eq!(lab.date, Some(d("2024-03-01T08:30:00Z")));
        assert_eq!(lab.range.unwrap().high, Some(q(5.6, "%")));
        assert_eq!(lab.category, ["laboratory"]);
        assert_eq!(
            (lab.status.as_str(), lab.report_id, lab.source),
            ("final", None, None)
        );
        assert!(vital_sign(&r).is_none());
    }

    #[test]
    fn a_bare_observation_is_still_a_lab_result() {
        let lab = lab_result(&json!({"resourceType": "Observation", "id": "x"})).unwrap();
        assert_eq!(lab.name, "Unnamed result");
        assert_eq!(
            (lab.value, lab.flag, lab.date, lab.status.as_str()),
            (None, Flag::Unknown, None, "unknown")
        );
        // Not an Observation, no id, or another category.
        assert!(lab_result(&json!({"resourceType": "Condition", "id": "x"})).is_none());
        assert!(lab_result(&json!({"resourceType": "Observation"})).is_none());
        let social = json!({"resourceType": "Observation", "id": "s", "category": category("social-history")});
        assert!(lab_result(&social).is_none());
        assert!(vital_sign(&social).is_none());
    }

    fn result(id: &str, code: &str, date: &str, value: Option<f64>) -> LabResult {
        let mut r = json!({"resourceType": "Observation", "id": id, "status": "final",
            "code": lab_concept(code, code), "effectiveDateTime": date});
        if let Some(v) = value {
            r["valueQuantity"] = json!({"value": v, "unit": "%"});
        } else {
            r["valueString"] = json!("pending");
        }
        lab_result(&r).unwrap()
    }

    #[test]
    fn trends_are_sorted_numeric_points_of_one_code() {
        let mut results = vec![
            result("c", "4548-4", "2024-06", Some(7.1)),
            result("a", "4548-4", "2023-01-05T08:00:00Z", Some(8.0)),
            result("x", "2345-7", "2024-07-01", Some(99.0)),
            result("t", "4548-4", "2024-08-01", None),
            result("b", "4548-4", "2023-06-01", Some(7.6)),
            result("e", "4548-4", "2024-09-01", Some(9.9)),
        ];
        results[5].status = "entered-in-error".into();
        results[1].range = Some(ReferenceRange {
            low: None,
            high: Some(q(5.6, "%")),
            text: None,
        });
        let trend = lab_trend(&results, "4548-4").unwrap();
        let values: Vec<f64> = trend.points.iter().map(|p| p.value).collect();
        assert_eq!(values, [8.0, 7.6, 7.1]);
        assert_eq!(
            (trend.unit.as_deref(), trend.name.as_str()),
            (Some("%"), "4548-4")
        );
        assert_eq!(trend.range.unwrap().high, Some(q(5.6, "%")));
        assert!(lab_trend(&results, "0000-0").is_none());
    }

    #[test]
    fn latest_per_code_is_newest_first() {
        let results = [
            result("old", "4548-4", "2023-01-01", Some(8.0)),
            result("glucose", "2345-7", "2024-07-01", Some(99.0)),
            result("new", "4548-4", "2024-01-01", Some(7.0)),
            result("undated", "2093-3", "", Some(180.0)),
        ];
        let latest: Vec<String> = latest_per_code(&results)
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(latest, ["glucose", "new", "undated"]);
    }

    #[test]
    fn reports_link_by_any_reference_form() {
        let mut results = vec![
            result("o1", "1", "2024", Some(1.0)),
            result("o2", "2", "2024", Some(1.0)),
            result("o3", "3", "2024", Some(1.0)),
            result("o4", "4", "2024", Some(1.0)),
        ];
        let reports = [
            json!({"resourceType": "DiagnosticReport", "id": "r1", "result": [
                {"reference": "Observation/o1"}, {"reference": "https://ehr/fhir/Observation/o2/_history/3"},
                {"reference": "Specimen/o4"}, {"display": "no reference"}]}),
            json!({"resourceType": "DiagnosticReport", "id": "r2", "result": {"reference": "urn:uuid:o3"}}),
            json!({"resourceType": "Observation", "id": "r3", "result": [{"reference": "Observation/o4"}]}),
            json!("not a resource"),
        ];
        link_reports(&mut results, &reports);
        let linked: Vec<Option<&str>> = results.iter().map(|r| r.report_id.as_deref()).collect();
        assert_eq!(linked, [Some("r1"), Some("r1"), Some("r2"), None]);
    }

    #[test]
    fn briefs_round_trip_and_fall_back_to_the_full_parse() {
        let r = json!({"resourceType": "Observation", "id": "a1c", "status": "final",
            "category": category("laboratory"), "code": lab_concept("4548-4", "HbA1c"),
            "effectiveDateTime": "2024-03-01", "valueQuantity": {"value": 7.1, "unit": "%"}});
        let (brief, key) = lab_brief(&r).unwrap();
        assert_eq!(key, d("2024-03-01").sort_key());
        let full = lab_result(&r).unwrap();
        assert_eq!(decode_brief(&brief).as_ref(), Some(&full));
        // An unknown version, an older release's serialized LabResult, garbage: not decoded.
        let mut future: serde_json::Value = serde_json::from_slice(&brief).unwrap();
        future["v"] = json!(2);
        let old = serde_json::to_vec(&full).unwrap();
        let renamed = String::from_utf8(brief.clone())
            .unwrap()
            .replace("\"name\"", "\"title\"");
        for bad in [
            serde_json::to_vec(&future).unwrap(),
            old,
            renamed.into_bytes(),
            b"{".to_vec(),
        ] {
            assert_eq!(decode_brief(&bad), None);
            // The results then come from the resources, parsed whole: the trend is not emptied.
            let got = results_from_briefs(&[brief.clone(), bad], || Ok::<_, ()>(vec![r.clone()]));
            assert_eq!(got, Ok(vec![full.clone()]));
        }
        let fast = results_from_briefs(&[brief], || Err("not read"));
        assert_eq!(fast, Ok(vec![full.clone()]));
        let none = results_from_briefs::<Vec<u8>, ()>(&[], || Ok(vec![r.clone()]));
        assert_eq!(
            none,
            Ok(vec![full]),
            "no briefs: records synced before briefs existed"
        );
    }
}
