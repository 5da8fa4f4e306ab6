//! What the FHIR search needs to know about a resource, taken from its JSON: the patient whose compartment holds
//! it, its categories and codes, the date a `date=` search compares, and whether it is marked confidential.
//!
//! Real data is untidy (partial dates, missing codes, categories as one object or as a list), so every field is
//! optional and anything unexpected is simply not indexed.

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// The indexed columns of one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    pub patient: Option<String>,
    /// Space-delimited `system|code` tokens, with a leading and trailing space for exact `instr` matches.
    pub categories: String,
    pub codes: String,
    /// The resource's clinical date as a half-open range of Unix seconds.
    pub date: Option<(i64, i64)>,
    pub confidential: bool,
}

/// Confidentiality codes (v3-Confidentiality) that hide an item from the parent of a 13 to 17 year old.
const CONFIDENTIAL_CODES: [&str; 2] = ["R", "V"];

/// Indexes one resource.
pub fn index(resource: &Value) -> Index {
    let ty = resource["resourceType"].as_str().unwrap_or_default();
    Index {
        patient: patient_of(ty, resource),
        categories: tokens(codings(&resource["category"])),
        codes: tokens(
            ["code", "medicationCodeableConcept", "vaccineCode", "type"]
                .iter()
                .flat_map(|f| codings(&resource[*f])),
        ),
        date: date_of(ty, resource),
        confidential: resource["meta"]["security"]
            .as_array()
            .is_some_and(|labels| {
                labels
                    .iter()
                    .any(|l| CONFIDENTIAL_CODES.contains(&l["code"].as_str().unwrap_or("")))
            }),
    }
}

/// The category codings of a resource as (system, code) pairs.
pub fn categories(resource: &Value) -> Vec<(Option<String>, String)> {
    codings(&resource["category"])
        .map(|(s, c)| (s.map(str::to_owned), c.to_owned()))
        .collect()
}

fn patient_of(ty: &str, r: &Value) -> Option<String> {
    if ty == "Patient" {
        return r["id"].as_str().map(str::to_owned);
    }
    let reference = |v: &Value| -> Option<String> {
        let s = v["reference"].as_str()?;
        let id = s.rsplit_once("Patient/").map(|(_, id)| id)?;
        let id = id.split('/').next().unwrap_or(id);
        (!id.is_empty()).then(|| id.to_owned())
    };
    for field in ["subject", "patient", "beneficiary", "individual"] {
        if let Some(id) = reference(&r[field]) {
            return Some(id);
        }
    }
    if let Some(participants) = r["participant"].as_array() {
        return participants.iter().find_map(|p| reference(&p["actor"]));
    }
    None
}

/// A `Binary` belongs to the patient of the resource named in its `securityContext`.
pub fn security_context(r: &Value) -> Option<(&str, &str)> {
    r["securityContext"]["reference"].as_str()?.split_once('/')
}

fn codings(v: &Value) -> impl Iterator<Item = (Option<&str>, &str)> {
    let concepts: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![v],
        _ => Vec::new(),
    };
    concepts
        .into_iter()
        .filter_map(|c| c["coding"].as_array())
        .flatten()
        .filter_map(|c| Some((c["system"].as_str(), c["code"].as_str()?)))
}

fn tokens<'a>(pairs: impl Iterator<Item = (Option<&'a str>, &'a str)>) -> String {
    let mut out = String::from(" ");
    for (system, code) in pairs {
        if code.contains(' ') || system.is_some_and(|s| s.contains(' ')) {
            continue;
        }
        out.push_str(system.unwrap_or(""));
        out.push('|');
        out.push_str(code);
        out.push(' ');
    }
    out
}

fn date_of(ty: &str, r: &Value) -> Option<(i64, i64)> {
    let candidates: &[&str] = match ty {
        "Observation" | "DiagnosticReport" => &[
            "effectiveDateTime",
            "effectivePeriod.start",
            "effectiveInstant",
            "issued",
        ],
        "Condition" => &["onsetDateTime", "onsetPeriod.start", "recordedDate"],
        "Procedure" => &["performedDateTime", "performedPeriod.start"],
        "Encounter" => &["period.start"],
        "Immunization" => &["occurrenceDateTime"],
        "MedicationRequest" => &["authoredOn"],
        "DocumentReference" => &["date", "context.period.start"],
        "Appointment" => &["start"],
        "AllergyIntolerance" => &["recordedDate", "onsetDateTime"],
        "Patient" => &["birthDate"],
        _ => &["date", "effectiveDateTime", "period.start"],
    };
    candidates.iter().find_map(|path| {
        let v = path.split('.').fold(r, |v, key| &v[key]);
        v.as_str().and_then(parse_range)
    })
}

/// Parses a FHIR `date`, `dateTime` or `instant` (or a search value without its prefix) as the range it covers:
/// "2019" is the whole year, "2019-05" the month, "2019-05-03" the day, a date-time one second.
pub fn parse_range(s: &str) -> Option<(i64, i64)> {
    let s = s.trim();
    let ymd: Vec<&str> = s.get(..10.min(s.len()))?.split('-').collect();
    match (s.len(), ymd.as_slice()) {
        (4, [y]) => {
            let y: i32 = y.parse().ok()?;
            Some((
                ts(Date::from_calendar_date(y, Month::January, 1).ok()?),
                ts(Date::from_calendar_date(y + 1, Month::January, 1).ok()?),
            ))
        }
        (7, [y, m]) => {
            let (y, m): (i32, u8) = (y.parse().ok()?, m.parse().ok()?);
            let start = Date::from_calendar_date(y, Month::try_from(m).ok()?, 1).ok()?;
            let next = if m == 12 {
                Date::from_calendar_date(y + 1, Month::January, 1)
            } else {
                Date::from_calendar_date(y, Month::try_from(m + 1).ok()?, 1)
            };
            Some((ts(start), ts(next.ok()?)))
        }
        (10, [_, _, _]) => {
            let d =
                Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
            Some((ts(d), ts(d) + 86_400))
        }
        _ => {
            let t = OffsetDateTime::parse(s, &Rfc3339).ok()?.unix_timestamp();
            Some((t, t + 1))
        }
    }
}

fn ts(d: Date) -> i64 {
    PrimitiveDateTime::new(d, Time::MIDNIGHT)
        .assume_utc()
        .unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn observation_is_indexed() {
        let obs = json!({
            "resourceType": "Observation", "id": "o1",
            "subject": {"reference": "Patient/p1"},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
            "effectiveDateTime": "2024-03-01T10:00:00Z",
            "meta": {"security": [{"code": "R"}]}
        });
        let ix = index(&obs);
        assert_eq!(ix.patient.as_deref(), Some("p1"));
        assert!(
            ix.categories.contains(
                " http://terminology.hl7.org/CodeSystem/observation-category|laboratory "
            )
        );
        assert!(ix.codes.contains("|4548-4 "));
        assert_eq!(ix.date.map(|(a, b)| b - a), Some(1));
        assert!(ix.confidential);
    }

    #[test]
    fn partial_dates_cover_their_period() {
        let (a, b) = parse_range("2019-05").expect("month");
        assert_eq!(b - a, 31 * 86_400);
        let (a, b) = parse_range("2020").expect("year");
        assert_eq!(b - a, 366 * 86_400);
        assert_eq!(
            parse_range("2019-12").map(|(a, b)| b - a),
            Some(31 * 86_400)
        );
        assert!(parse_range("yesterday").is_none());
        assert!(parse_range("2019-13").is_none());
        assert!(parse_range("").is_none());
    }

    #[test]
    fn odd_shapes_do_not_break_indexing() {
        let odd = json!({"resourceType": "Condition", "category": {"coding": [{"code": "problem-list-item"}]},
            "code": {"text": "no coding"}, "subject": {"display": "no reference"}, "onsetDateTime": 42});
        let ix = index(&odd);
        assert_eq!(ix.patient, None);
        assert_eq!(ix.categories, " |problem-list-item ");
        assert_eq!(ix.date, None);
    }

    #[test]
    fn appointment_patient_comes_from_participants() {
        let appt = json!({"resourceType": "Appointment", "participant": [
            {"actor": {"display": "Dr. X"}}, {"actor": {"reference": "Patient/leo"}}]});
        assert_eq!(index(&appt).patient.as_deref(), Some("leo"));
    }
}
