//! The typed views a patient app shows (lab results, vitals, allergies, medications, immunizations, problems,
//! visits, documents, appointments, demographics), parsed from raw FHIR R4 resources as `serde_json::Value`.
//!
//! Real exports are untidy, so every parser is lenient: it returns `None` only when the resource is not its type
//! (or has no id), and otherwise fills what it finds. Names are never empty: `code.text`, else a coding's display,
//! else "code (system)", else a placeholder such as "Unnamed result". Arrays given as a lone object, STU3-style
//! codes where R4 has a CodeableConcept, `_field` primitive extensions and unknown extensions are all tolerated, and
//! no input can make a parser panic.
//!
//! Dates keep the precision the server gave ([`FhirDate`]): "2019-05" stays a month, and [`FhirDate::sort_key`]
//! orders mixed precisions. After parsing, [`link_reports`] and [`link_visit_documents`] connect results to their
//! reports and notes to their visits; [`lab_trend`] and [`latest_per_code`] build the lab screens. Every view has a
//! `source` that is left `None` here: the store fills in which provider it came from.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const LOINC: &str = "http://loinc.org";

/// Standard base64 that also accepts missing padding (some servers strip it).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

static NULL: Value = Value::Null;

// ---------------------------------------------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------------------------------------

/// A laboratory result (an Observation in the laboratory category, or with no category at all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabResult {
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
    /// The DiagnosticReport that lists this result; set by [`link_reports`].
    pub report_id: Option<String>,
    /// The category codes ("laboratory", ...).
    pub category: Vec<String>,
}

/// A vital sign (an Observation in the vital-signs category): a [`LabResult`] without a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VitalSign {
    pub id: String,
    pub source: Option<String>,
    pub name: String,
    pub code: Option<CodeRef>,
    /// Blood pressure comes as [`ObservationValue::Components`].
    pub value: Option<ObservationValue>,
    pub range: Option<ReferenceRange>,
    pub flag: Flag,
    pub date: Option<FhirDate>,
    pub status: String,
    pub category: Vec<String>,
}

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

/// An allergy or intolerance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Allergy {
    pub id: String,
    pub source: Option<String>,
    pub substance: String,
    /// The manifestations of every reaction, without duplicates.
    pub reactions: Vec<String>,
    /// The most severe reaction's severity ("mild", "moderate", "severe").
    pub severity: Option<String>,
    /// "low", "high" or "unable-to-assess".
    pub criticality: Option<String>,
    /// "active", "inactive" or "resolved".
    pub clinical_status: Option<String>,
    pub recorded: Option<FhirDate>,
}

/// A prescription (MedicationRequest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Medication {
    pub id: String,
    pub source: Option<String>,
    pub name: String,
    /// The dosage instructions as written, else a rendering of the structured dose and timing.
    pub dosage: Option<String>,
    pub status: String,
    pub prescriber: Option<String>,
    pub authored: Option<FhirDate>,
    /// The end of the period the order covers (timing bounds, else the dispense validity). For an active order
    /// this may be in the future: it is when the order runs out, not when the patient stopped.
    pub ended: Option<FhirDate>,
}

/// A vaccination given (or recorded as not given: see `status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Immunization {
    pub id: String,
    pub source: Option<String>,
    pub vaccine: String,
    pub date: Option<FhirDate>,
    /// "completed", "not-done" or "entered-in-error".
    pub status: String,
    pub lot: Option<String>,
}

/// A problem or diagnosis (Condition).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub id: String,
    pub source: Option<String>,
    pub name: String,
    /// Every coding with a code (typically SNOMED CT and ICD-10-CM).
    pub codes: Vec<CodeRef>,
    pub clinical_status: Option<String>,
    pub onset: Option<FhirDate>,
    pub recorded: Option<FhirDate>,
    /// When it abated (resolved or in remission), if it did.
    pub resolved: Option<FhirDate>,
    /// The category codes ("problem-list-item", "encounter-diagnosis", ...).
    pub category: Vec<String>,
}

/// A visit (Encounter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Visit {
    pub id: String,
    pub source: Option<String>,
    /// The encounter type, else its class ("Ambulatory visit"), else "Visit".
    pub kind: String,
    pub start: Option<FhirDate>,
    pub end: Option<FhirDate>,
    pub provider: Option<String>,
    pub location_or_org: Option<String>,
    pub reason: Option<String>,
    /// The documents written for this visit; set by [`link_visit_documents`].
    pub summary_document_ids: Vec<String>,
}

/// A clinical document (DocumentReference); its content is a Binary read separately, see [`document_content`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    pub source: Option<String>,
    pub title: String,
    pub date: Option<FhirDate>,
    /// The document type ("Progress note").
    pub kind: Option<String>,
    pub content_type: Option<String>,
    /// The id of the Binary holding the content, from an attachment URL "Binary/<id>" (relative or absolute).
    pub binary_id: Option<String>,
    /// The Encounter the document belongs to.
    pub visit_id: Option<String>,
}

/// The content of a document, ready to show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DocumentContent {
    Text(String),
    Html(String),
    Pdf(Vec<u8>),
    Other {
        content_type: String,
        bytes: Vec<u8>,
    },
}

/// A booked, past or cancelled appointment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Appointment {
    pub id: String,
    pub source: Option<String>,
    pub start: Option<FhirDate>,
    pub end: Option<FhirDate>,
    /// "booked", "fulfilled", "cancelled", ...
    pub status: String,
    pub description: Option<String>,
    /// The participants other than the patient (clinicians, locations), by display name.
    pub with_whom: Vec<String>,
    pub service: Option<String>,
}

/// Who the record is about (Patient).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Demographics {
    pub id: String,
    pub source: Option<String>,
    /// The official (or usual) name: its text, else given and family names.
    pub name: String,
    pub birth_date: Option<FhirDate>,
    pub gender: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// The home address (else the first) on one line.
    pub address: Option<String>,
    /// The medical record number: the identifier typed "MR" (or "MRN").
    pub mrn: Option<String>,
}

// ---------------------------------------------------------------------------------------------------------------
// Parsers
// ---------------------------------------------------------------------------------------------------------------

/// A lab result from an Observation. `None` when it is not an Observation or has a category list without
/// "laboratory" (an Observation with no category at all counts as a lab result).
pub fn lab_result(r: &Value) -> Option<LabResult> {
    let result = observation(r)?;
    let lab = result.category.is_empty()
        || result
            .category
            .iter()
            .any(|c| c.eq_ignore_ascii_case("laboratory"));
    lab.then_some(result)
}

/// A vital sign from an Observation in the "vital-signs" category (or "vital-sign", as some exports spell it).
pub fn vital_sign(r: &Value) -> Option<VitalSign> {
    let vital =
        |c: &String| c.eq_ignore_ascii_case("vital-signs") || c.eq_ignore_ascii_case("vital-sign");
    let LabResult {
        id,
        source,
        name,
        code,
        value,
        range,
        flag,
        date,
        status,
        category,
        report_id: _,
    } = observation(r).filter(|o| o.category.iter().any(vital))?;
    Some(VitalSign {
        id,
        source,
        name,
        code,
        value,
        range,
        flag,
        date,
        status,
        category,
    })
}

/// An allergy from an AllergyIntolerance.
pub fn allergy(r: &Value) -> Option<Allergy> {
    let id = resource_id(r, "AllergyIntolerance")?;
    let reactions = list(&r["reaction"]);
    let mut manifestations = Vec::new();
    for name in reactions
        .iter()
        .flat_map(|x| list(&x["manifestation"]))
        .filter_map(concept_name)
    {
        if !manifestations.contains(&name) {
            manifestations.push(name);
        }
    }
    let substance = concept_name(&r["code"])
        .or_else(|| reactions.iter().find_map(|x| concept_name(&x["substance"])))
        .unwrap_or_else(|| "Unknown substance".into());
    Some(Allergy {
        id,
        source: None,
        substance,
        reactions: manifestations,
        severity: reactions
            .iter()
            .filter_map(|x| string(&x["severity"]))
            .max_by_key(|s| severity_rank(s)),
        criticality: string(&r["criticality"]),
        clinical_status: concept_code(&r["clinicalStatus"]),
        recorded: first_date(&[&r["recordedDate"], &r["assertedDate"]]),
    })
}

/// A medication from a MedicationRequest: the name from medicationCodeableConcept, medicationReference.display
/// or a contained Medication.
pub fn medication(r: &Value) -> Option<Medication> {
    let id = resource_id(r, "MedicationRequest")?;
    let name = concept_name(&r["medicationCodeableConcept"])
        .or_else(|| string(&r["medicationReference"]["display"]))
        .or_else(|| contained_medication(r))
        .unwrap_or_else(|| "Unnamed medication".into());
    let instructions = list(&r["dosageInstruction"]);
    let texts: Vec<String> = instructions
        .iter()
        .filter_map(|d| string(&d["text"]).or_else(|| string(&d["patientInstruction"])))
        .collect();
    let dosage = if texts.is_empty() {
        instructions.first().and_then(structured_dosage)
    } else {
        Some(texts.join("; "))
    };
    let bounds = &first(&r["dosageInstruction"])["timing"]["repeat"]["boundsPeriod"];
    Some(Medication {
        id,
        source: None,
        name,
        dosage,
        status: status(r),
        prescriber: string(&r["requester"]["display"]),
        authored: date(&r["authoredOn"]),
        ended: first_date(&[
            &bounds["end"],
            &r["dispenseRequest"]["validityPeriod"]["end"],
        ]),
    })
}

/// An immunization, dated from occurrenceDateTime or occurrenceString (when that holds a date).
pub fn immunization(r: &Value) -> Option<Immunization> {
    let id = resource_id(r, "Immunization")?;
    Some(Immunization {
        id,
        source: None,
        vaccine: concept_name(&r["vaccineCode"]).unwrap_or_else(|| "Unnamed vaccine".into()),
        date: first_date(&[&r["occurrenceDateTime"], &r["occurrenceString"], &r["date"]]),
        status: status(r),
        lot: string(&r["lotNumber"]),
    })
}

/// A problem from a Condition.
pub fn problem(r: &Value) -> Option<Problem> {
    let id = resource_id(r, "Condition")?;
    Some(Problem {
        id,
        source: None,
        name: concept_name(&r["code"]).unwrap_or_else(|| "Unnamed problem".into()),
        codes: codings(&r["code"])
            .into_iter()
            .filter(|c| c.code.is_some())
            .collect(),
        clinical_status: concept_code(&r["clinicalStatus"]),
        onset: first_date(&[
            &r["onsetDateTime"],
            &r["onsetPeriod"]["start"],
            &r["onsetString"],
        ]),
        recorded: first_date(&[&r["recordedDate"], &r["assertedDate"]]),
        resolved: first_date(&[&r["abatementDateTime"], &r["abatementPeriod"]["start"]]),
        category: category_codes(&r["category"]),
    })
}

/// A visit from an Encounter: its type, else its class.
pub fn visit(r: &Value) -> Option<Visit> {
    let id = resource_id(r, "Encounter")?;
    let kind = list(&r["type"])
        .iter()
        .find_map(concept_name)
        .or_else(|| class_name(&r["class"]))
        .unwrap_or_else(|| "Visit".into());
    let provider = list(&r["participant"]).iter().find_map(|p| {
        string(&p["individual"]["display"]).or_else(|| string(&p["actor"]["display"]))
    });
    let location = list(&r["location"])
        .iter()
        .find_map(|l| string(&l["location"]["display"]));
    let reason = list(&r["reasonCode"])
        .iter()
        .find_map(concept_name)
        .or_else(|| {
            list(&r["reasonReference"])
                .iter()
                .find_map(|x| string(&x["display"]))
        });
    Some(Visit {
        id,
        source: None,
        kind,
        start: date(&r["period"]["start"]),
        end: date(&r["period"]["end"]),
        provider,
        location_or_org: location.or_else(|| string(&r["serviceProvider"]["display"])),
        reason,
        summary_document_ids: Vec::new(),
    })
}

/// A document from a DocumentReference. Title: the attachment's title, else the type's text or display, else the
/// description, else the type's code.
pub fn document(r: &Value) -> Option<Document> {
    let id = resource_id(r, "DocumentReference")?;
    let attachments: Vec<&Value> = list(&r["content"])
        .iter()
        .map(|c| &c["attachment"])
        .collect();
    // Prefer the attachment we can fetch: one whose URL names a Binary.
    let attachment = attachments
        .iter()
        .find(|a| attachment_binary(a).is_some())
        .or(attachments.first())
        .copied()
        .unwrap_or(&NULL);
    let title = string(&attachment["title"])
        .or_else(|| concept_label(&r["type"]))
        .or_else(|| string(&r["description"]))
        .or_else(|| concept_name(&r["type"]))
        .unwrap_or_else(|| "Document".into());
    let visit_id = list(&r["context"]["encounter"])
        .iter()
        .find_map(|e| reference_id(e["reference"].as_str()?, "Encounter"))
        .map(str::to_owned);
    Some(Document {
        id,
        source: None,
        title,
        date: first_date(&[
            &r["date"],
            &r["context"]["period"]["start"],
            &attachment["creation"],
        ]),
        kind: concept_name(&r["type"]),
        content_type: string(&attachment["contentType"]),
        binary_id: attachment_binary(attachment),
        visit_id,
    })
}

/// An appointment.
pub fn appointment(r: &Value) -> Option<Appointment> {
    let id = resource_id(r, "Appointment")?;
    let with_whom = list(&r["participant"])
        .iter()
        .map(|p| &p["actor"])
        .filter(|actor| {
            let reference = actor["reference"].as_str().and_then(reference_parts);
            !matches!(reference, Some((Some("Patient"), _)))
        })
        .filter_map(|actor| string(&actor["display"]))
        .collect();
    Some(Appointment {
        id,
        source: None,
        start: date(&r["start"]),
        end: date(&r["end"]),
        status: status(r),
        description: string(&r["description"]),
        with_whom,
        service: list(&r["serviceType"])
            .iter()
            .find_map(concept_name)
            .or_else(|| concept_name(&r["appointmentType"])),
    })
}

/// Demographics from a Patient.
pub fn demographics(r: &Value) -> Option<Demographics> {
    let id = resource_id(r, "Patient")?;
    let names = list(&r["name"]);
    let name = names
        .iter()
        .find(|n| matches!(n["use"].as_str(), Some("official" | "usual")))
        .and_then(human_name)
        .or_else(|| names.iter().find_map(human_name))
        .unwrap_or_else(|| "Unnamed patient".into());
    let addresses = list(&r["address"]);
    let address = addresses
        .iter()
        .find(|a| a["use"] == "home")
        .and_then(address_line)
        .or_else(|| addresses.iter().find_map(address_line));
    let mrn = list(&r["identifier"])
        .iter()
        .find(|i| is_mrn(&i["type"]))
        .and_then(|i| string(&i["value"]));
    Some(Demographics {
        id,
        source: None,
        name,
        birth_date: date(&r["birthDate"]),
        gender: string(&r["gender"]),
        phone: telecom(r, "phone"),
        email: telecom(r, "email"),
        address,
        mrn,
    })
}

/// The content of a Binary resource (base64 `data`, with or without padding or line breaks). `None` when it is
/// not a Binary or holds no decodable data.
pub fn document_content(binary: &Value) -> Option<DocumentContent> {
    if binary["resourceType"] != "Binary" {
        return None;
    }
    // R4 calls it `data`; STU3 called it `content`.
    let data = binary["data"]
        .as_str()
        .or_else(|| binary["content"].as_str())?;
    let data: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = BASE64.decode(data).ok()?;
    let content_type = binary["contentType"]
        .as_str()
        .unwrap_or("application/octet-stream");
    Some(document_content_raw(content_type, bytes))
}

/// Content fetched raw (a Binary read with `Accept` set to its type) by its Content-Type: HTML, plain text, PDF
/// (also recognised by its magic bytes under a generic type) or other. Text is read as UTF-8, invalid bytes replaced.
pub fn document_content_raw(content_type: &str, bytes: Vec<u8>) -> DocumentContent {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let text = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .trim_start_matches('\u{feff}')
            .to_owned()
    };
    match mime.as_str() {
        "application/pdf" => DocumentContent::Pdf(bytes),
        _ if bytes.starts_with(b"%PDF-") => DocumentContent::Pdf(bytes),
        "text/html" | "application/xhtml+xml" => DocumentContent::Html(text(&bytes)),
        "text/plain" => DocumentContent::Text(text(&bytes)),
        _ => DocumentContent::Other {
            content_type: content_type.to_owned(),
            bytes,
        },
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Linking and lab screens
// ---------------------------------------------------------------------------------------------------------------

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

/// Sets each visit's `summary_document_ids` to the documents whose `visit_id` is that visit, in the documents'
/// order. Visits and documents match only within one `source`: two providers may use the same ids.
pub fn link_visit_documents(visits: &mut [Visit], documents: &[Document]) {
    let mut by_visit: HashMap<(Option<&str>, &str), Vec<String>> = HashMap::new();
    for doc in documents {
        if let Some(visit_id) = &doc.visit_id {
            by_visit
                .entry((doc.source.as_deref(), visit_id.as_str()))
                .or_default()
                .push(doc.id.clone());
        }
    }
    for visit in visits {
        let key = (visit.source.as_deref(), visit.id.as_str());
        visit.summary_document_ids = by_visit.get(&key).cloned().unwrap_or_default();
    }
}

/// The numeric history of one code (e.g. LOINC "4548-4", HbA1c): the dated Quantity results, oldest first.
/// Results entered in error or cancelled are left out. `None` when no result has a numeric value.
pub fn lab_trend(results: &[LabResult], code: &str) -> Option<LabTrend> {
    let mut matching: Vec<&LabResult> = results
        .iter()
        .filter(|r| counts(r) && result_code(r) == Some(code))
        .collect();
    matching.sort_by_key(|r| instant(&r.date));
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
    latest.sort_by_key(|r| Reverse(instant(&r.date)));
    latest
}

// ---------------------------------------------------------------------------------------------------------------
// Reading FHIR JSON
// ---------------------------------------------------------------------------------------------------------------

/// The parts every Observation view shares; the category decides lab or vital.
fn observation(r: &Value) -> Option<LabResult> {
    let id = resource_id(r, "Observation")?;
    Some(LabResult {
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
        report_id: None,
        category: category_codes(&r["category"]),
    })
}

fn observation_value(r: &Value) -> Option<ObservationValue> {
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

fn reference_range(r: &Value) -> Option<ReferenceRange> {
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
fn flag(interpretation: &Value) -> Flag {
    let concepts = list(interpretation);
    let by_code = concepts
        .iter()
        .flat_map(|c| list(&c["coding"]))
        .find_map(|c| flag_of(c["code"].as_str()?));
    by_code
        .or_else(|| concepts.iter().find_map(|c| flag_of(c["text"].as_str()?)))
        .unwrap_or(Flag::Unknown)
}

fn flag_of(code: &str) -> Option<Flag> {
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

fn contained_medication(r: &Value) -> Option<String> {
    let local = r["medicationReference"]["reference"]
        .as_str()?
        .strip_prefix('#')?;
    list(&r["contained"])
        .iter()
        .find(|c| c["resourceType"] == "Medication" && c["id"] == local)
        .and_then(|m| concept_name(&m["code"]))
}

/// "1 tablet, twice a day, as needed" from a dosage without text.
fn structured_dosage(dosage: &Value) -> Option<String> {
    let dose = quantity(&first(&dosage["doseAndRate"])["doseQuantity"]).map(|q| match q.unit {
        Some(unit) => format!("{} {unit}", q.value),
        None => q.value.to_string(),
    });
    let timing = timing_phrase(&dosage["timing"]["repeat"]);
    let as_needed = (dosage["asNeededBoolean"] == true).then(|| "as needed".to_owned());
    let parts: Vec<String> = [dose, timing, as_needed].into_iter().flatten().collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// "twice a day", "once every 2 weeks" from a Timing.repeat.
fn timing_phrase(repeat: &Value) -> Option<String> {
    let frequency = repeat["frequency"].as_u64().unwrap_or(1);
    let period = repeat["period"].as_f64()?;
    let unit = match repeat["periodUnit"].as_str()? {
        "s" => "second",
        "min" => "minute",
        "h" => "hour",
        "d" => "day",
        "wk" => "week",
        "mo" => "month",
        "a" => "year",
        _ => return None,
    };
    let times = match frequency {
        1 => "once".to_owned(),
        2 => "twice".to_owned(),
        n => format!("{n} times"),
    };
    Some(if (period - 1.0).abs() < f64::EPSILON {
        format!("{times} a {unit}")
    } else {
        format!("{times} every {period} {unit}s")
    })
}

fn class_name(class: &Value) -> Option<String> {
    // R4 has a Coding; R5 (and some servers) a CodeableConcept.
    let class = list(class).first()?;
    if class["coding"].is_array() || class["text"].is_string() {
        return concept_name(class);
    }
    string(&class["display"]).or_else(|| {
        let code = class["code"].as_str()?;
        let name = match code {
            "AMB" => "Ambulatory visit",
            "EMER" => "Emergency visit",
            "IMP" | "ACUTE" | "NONAC" => "Hospital stay",
            "OBSENC" => "Observation stay",
            "VR" => "Virtual visit",
            "HH" => "Home visit",
            other => other,
        };
        Some(name.to_owned())
    })
}

fn attachment_binary(attachment: &Value) -> Option<String> {
    reference_id(attachment["url"].as_str()?, "Binary").map(str::to_owned)
}

fn human_name(name: &Value) -> Option<String> {
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

fn address_line(address: &Value) -> Option<String> {
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

fn is_mrn(identifier_type: &Value) -> bool {
    let coded = list(&identifier_type["coding"])
        .iter()
        .any(|c| c["code"] == "MR");
    let text = identifier_type["text"].as_str().unwrap_or_default().trim();
    coded || text.eq_ignore_ascii_case("MRN") || text.eq_ignore_ascii_case("Medical Record Number")
}

fn telecom(r: &Value, system: &str) -> Option<String> {
    list(&r["telecom"])
        .iter()
        .filter(|t| t["system"] == system && t["use"] != "old")
        .find_map(|t| string(&t["value"]))
}

fn severity_rank(severity: &str) -> u8 {
    match severity {
        "severe" => 3,
        "moderate" => 2,
        "mild" => 1,
        _ => 0,
    }
}

/// The id of a resource of type `ty`; `None` for another type or a missing id.
fn resource_id(r: &Value, ty: &str) -> Option<String> {
    if r["resourceType"] != ty {
        return None;
    }
    string(&r["id"])
}

fn status(r: &Value) -> String {
    string(&r["status"]).unwrap_or_else(|| "unknown".into())
}

/// A non-blank string, trimmed.
fn string(v: &Value) -> Option<String> {
    let s = v.as_str()?.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// The elements of a list, accepting a lone value where FHIR has an array (some servers send one).
fn list(v: &Value) -> &[Value] {
    match v {
        Value::Array(items) => items,
        Value::Null => &[],
        other => std::slice::from_ref(other),
    }
}

/// The first element of a list (or the lone value), else null.
fn first(v: &Value) -> &Value {
    list(v).first().unwrap_or(&NULL)
}

fn date(v: &Value) -> Option<FhirDate> {
    v.as_str().and_then(FhirDate::parse)
}

/// The first of the candidates that holds a date.
fn first_date(candidates: &[&Value]) -> Option<FhirDate> {
    candidates.iter().find_map(|v| date(v))
}

fn instant(date: &Option<FhirDate>) -> Option<i64> {
    date.as_ref().map(FhirDate::sort_key)
}

fn quantity(v: &Value) -> Option<Quantity> {
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

fn coding(c: &Value) -> Option<CodeRef> {
    let coding = CodeRef {
        system: string(&c["system"]),
        code: string(&c["code"]),
        display: string(&c["display"]),
    };
    (coding.code.is_some() || coding.display.is_some()).then_some(coding)
}

fn codings(concept: &Value) -> Vec<CodeRef> {
    list(&concept["coding"]).iter().filter_map(coding).collect()
}

/// The LOINC coding of a concept, else its first coding with a code.
fn preferred_code(concept: &Value) -> Option<CodeRef> {
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
fn concept_label(concept: &Value) -> Option<String> {
    string(&concept["text"]).or_else(|| codings(concept).into_iter().find_map(|c| c.display))
}

/// A concept's label, else "code (system)" of its first coding: never empty when `Some`.
fn concept_name(concept: &Value) -> Option<String> {
    concept_label(concept).or_else(|| {
        codings(concept)
            .into_iter()
            .find(|c| c.code.is_some())
            .map(|c| c.label())
    })
}

/// A coded answer: the first coding, its display replaced by the concept's text when there is one.
fn coded(concept: &Value) -> Option<CodeRef> {
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
fn concept_code(concept: &Value) -> Option<String> {
    string(concept)
        .or_else(|| {
            list(&concept["coding"])
                .iter()
                .find_map(|c| string(&c["code"]))
        })
        .or_else(|| string(&concept["text"]))
}

/// The codes (else texts) of a list of category concepts.
fn category_codes(categories: &Value) -> Vec<String> {
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
fn reference_parts(reference: &str) -> Option<(Option<&str>, &str)> {
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
fn reference_id<'a>(reference: &'a str, ty: &str) -> Option<&'a str> {
    match reference_parts(reference)? {
        (None, id) => Some(id),
        (Some(t), id) if t == ty => Some(id),
        _ => None,
    }
}

fn result_code(r: &LabResult) -> Option<&str> {
    r.code.as_ref()?.code.as_deref()
}

/// Whether a result belongs on a chart or a list: not withdrawn.
fn counts(r: &LabResult) -> bool {
    !matches!(r.status.as_str(), "entered-in-error" | "cancelled")
}

fn system_name(system: &str) -> &str {
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

// ---------------------------------------------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------------------------------------------

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
    use serde_json::json;

    fn d(s: &str) -> FhirDate {
        FhirDate::parse(s).unwrap()
    }

    fn q(value: f64, unit: &str) -> Quantity {
        Quantity {
            value,
            unit: Some(unit.into()),
            comparator: None,
        }
    }

    fn lab_concept(code: &str, display: &str) -> Value {
        json!({"coding": [{"system": LOINC, "code": code, "display": display}], "text": display})
    }

    fn category(code: &str) -> Value {
        json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": code}]}])
    }

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

    #[test]
    fn names_fall_back_to_display_then_code() {
        let named = |code: Value| {
            lab_result(&json!({"resourceType": "Observation", "id": "x", "code": code}))
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
            lab_result(&r).unwrap().value
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
    fn blood_pressure_is_a_vital_with_components() {
        let part = |code: &str, name: &str, v: f64| {
            json!({"code": lab_concept(code, name),
            "valueQuantity": {"value": v, "unit": "mm[Hg]"}})
        };
        let r = json!({
            "resourceType": "Observation", "id": "bp", "status": "final",
            "category": {"coding": [{"code": "vital-signs"}]},
            "code": lab_concept("85354-9", "Blood pressure"),
            "effectivePeriod": {"start": "2024-03-01T08:30:00-06:00"},
            "component": [part("8480-6", "Systolic", 128.0), part("8462-4", "Diastolic", 82.0), {"code": {}}],
        });
        let vital = vital_sign(&r).unwrap();
        assert_eq!(vital.name, "Blood pressure");
        assert_eq!(vital.date, Some(d("2024-03-01T08:30:00-06:00")));
        let expected = vec![
            ("Systolic".to_owned(), q(128.0, "mm[Hg]")),
            ("Diastolic".to_owned(), q(82.0, "mm[Hg]")),
        ];
        assert_eq!(vital.value, Some(ObservationValue::Components(expected)));
        assert!(
            lab_result(&r).is_none(),
            "a category list without laboratory"
        );
        let synthea_spelling =
            json!({"resourceType": "Observation", "id": "ef", "category": category("vital-sign")});
        assert!(vital_sign(&synthea_spelling).is_some());
    }

    #[test]
    fn interpretation_codes_and_texts_give_flags() {
        let flagged = |interpretation: Value| {
            let r =
                json!({"resourceType": "Observation", "id": "x", "interpretation": interpretation});
            lab_result(&r).unwrap().flag
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
            lab_result(&r).unwrap().date.map(|d| d.to_fhir_string())
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
    fn allergies() {
        let r = json!({
            "resourceType": "AllergyIntolerance", "id": "al",
            "clinicalStatus": {"coding": [{"code": "active"}]}, "criticality": "high",
            "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "7980", "display": "Penicillin G"}]},
            "recordedDate": "2015-06",
            "reaction": [
                {"manifestation": [{"text": "Hives"}, {"coding": [{"display": "Wheezing"}]}], "severity": "moderate"},
                {"manifestation": {"text": "Hives"}, "severity": "severe"},
            ],
        });
        let a = allergy(&r).unwrap();
        assert_eq!(a.substance, "Penicillin G");
        assert_eq!(a.reactions, ["Hives", "Wheezing"]);
        assert_eq!(a.severity.as_deref(), Some("severe"));
        assert_eq!(a.criticality.as_deref(), Some("high"));
        assert_eq!(a.clinical_status.as_deref(), Some("active"));
        assert_eq!(a.recorded, Some(d("2015-06")));
        let stu3 = json!({"resourceType": "AllergyIntolerance", "id": "old", "clinicalStatus": "active",
            "assertedDate": "2001"});
        let a = allergy(&stu3).unwrap();
        assert_eq!(
            (a.substance.as_str(), a.clinical_status.as_deref()),
            ("Unknown substance", Some("active"))
        );
        assert_eq!(a.recorded, Some(d("2001")));
    }

    #[test]
    fn medications() {
        let r = json!({
            "resourceType": "MedicationRequest", "id": "m", "status": "active",
            "medicationCodeableConcept": {"coding": [{"code": "860975", "display": "Metformin 500 MG Oral Tablet"}]},
            "requester": {"reference": "Practitioner/1", "display": "Dr. Anna Lee"},
            "authoredOn": "2024-01-10T09:00:00Z",
            "dosageInstruction": [{"text": "1 tablet twice daily with meals"}],
            "dispenseRequest": {"validityPeriod": {"start": "2024-01-10", "end": "2025-01-10"}},
        });
        let m = medication(&r).unwrap();
        assert_eq!(m.name, "Metformin 500 MG Oral Tablet");
        assert_eq!(m.dosage.as_deref(), Some("1 tablet twice daily with meals"));
        assert_eq!(m.prescriber.as_deref(), Some("Dr. Anna Lee"));
        assert_eq!(
            (m.authored, m.ended),
            (Some(d("2024-01-10T09:00:00Z")), Some(d("2025-01-10")))
        );
        let by_reference = json!({"resourceType": "MedicationRequest", "id": "r",
            "medicationReference": {"reference": "Medication/9", "display": "Lisinopril 10 mg"}});
        assert_eq!(medication(&by_reference).unwrap().name, "Lisinopril 10 mg");
        let contained = json!({"resourceType": "MedicationRequest", "id": "c",
            "contained": [{"resourceType": "Medication", "id": "med1", "code": {"text": "Albuterol inhaler"}}],
            "medicationReference": {"reference": "#med1"},
            "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 2, "unit": "puffs"}}],
                "timing": {"repeat": {"frequency": 1, "period": 4, "periodUnit": "h"}}, "asNeededBoolean": true,
                "_text": {"extension": []}}]});
        let m = medication(&contained).unwrap();
        assert_eq!(m.name, "Albuterol inhaler");
        assert_eq!(
            m.dosage.as_deref(),
            Some("2 puffs, once every 4 hours, as needed")
        );
        assert_eq!(m.status, "unknown");
        let bare = medication(&json!({"resourceType": "MedicationRequest", "id": "b"})).unwrap();
        assert_eq!(
            (bare.name.as_str(), bare.dosage),
            ("Unnamed medication", None)
        );
    }

    #[test]
    fn immunizations() {
        let r = json!({"resourceType": "Immunization", "id": "i", "status": "completed",
            "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}]},
            "occurrenceDateTime": "2023-10-02T10:00:00-05:00", "lotNumber": "AB1234"});
        let i = immunization(&r).unwrap();
        assert_eq!(i.vaccine, "140 (CVX)");
        assert_eq!(
            (i.date, i.lot.as_deref()),
            (Some(d("2023-10-02T10:00:00-05:00")), Some("AB1234"))
        );
        let string = json!({"resourceType": "Immunization", "id": "s", "vaccineCode": {"text": "Tetanus"},
            "occurrenceString": "2019-05"});
        assert_eq!(immunization(&string).unwrap().date, Some(d("2019-05")));
        let vague =
            json!({"resourceType": "Immunization", "id": "v", "occurrenceString": "as a child"});
        assert_eq!(immunization(&vague).unwrap().date, None);
    }

    #[test]
    fn problems_keep_every_code() {
        let r = json!({
            "resourceType": "Condition", "id": "p",
            "clinicalStatus": {"coding": [{"code": "resolved"}]},
            "category": [{"coding": [{"code": "problem-list-item"}]}],
            "code": {"coding": [
                {"system": "http://snomed.info/sct", "code": "44054006", "display": "Diabetes mellitus type 2"},
                {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"},
                {"display": "no code"}]},
            "onsetDateTime": "2015", "recordedDate": "2015-03-04", "abatementDateTime": "2020-01",
        });
        let p = problem(&r).unwrap();
        assert_eq!(p.name, "Diabetes mellitus type 2");
        let codes: Vec<_> = p.codes.iter().map(|c| c.code.as_deref().unwrap()).collect();
        assert_eq!(codes, ["44054006", "E11.9"]);
        assert_eq!(p.clinical_status.as_deref(), Some("resolved"));
        assert_eq!(
            (p.onset, p.recorded, p.resolved),
            (Some(d("2015")), Some(d("2015-03-04")), Some(d("2020-01")))
        );
        assert_eq!(p.category, ["problem-list-item"]);
    }

    #[test]
    fn visits_from_type_or_class() {
        let r = json!({
            "resourceType": "Encounter", "id": "e",
            "class": {"code": "AMB"},
            "type": {"text": "Office visit"},
            "period": {"start": "2024-03-01T08:30:00Z", "end": "2024-03-01T09:00:00Z"},
            "participant": [{"type": [{"text": "attender"}]}, {"individual": {"display": "Dr. Anna Lee"}}],
            "serviceProvider": {"display": "Lakeview Clinic"},
            "reasonCode": [{"coding": [{"display": "Cough"}]}],
        });
        let v = visit(&r).unwrap();
        assert_eq!(v.kind, "Office visit");
        assert_eq!(v.provider.as_deref(), Some("Dr. Anna Lee"));
        assert_eq!(v.location_or_org.as_deref(), Some("Lakeview Clinic"));
        assert_eq!(v.reason.as_deref(), Some("Cough"));
        assert_eq!(v.end, Some(d("2024-03-01T09:00:00Z")));
        let class_only = json!({"resourceType": "Encounter", "id": "c", "class": {"code": "EMER"},
            "location": [{"location": {"display": "ED"}}], "reasonReference": [{"display": "Fall"}]});
        let v = visit(&class_only).unwrap();
        assert_eq!(
            (
                v.kind.as_str(),
                v.location_or_org.as_deref(),
                v.reason.as_deref()
            ),
            ("Emergency visit", Some("ED"), Some("Fall"))
        );
        assert_eq!(
            visit(&json!({"resourceType": "Encounter", "id": "n"}))
                .unwrap()
                .kind,
            "Visit"
        );
    }

    #[test]
    fn documents_and_their_visits() {
        let r = json!({
            "resourceType": "DocumentReference", "id": "doc",
            "type": {"coding": [{"system": LOINC, "code": "11506-3", "display": "Progress note"}]},
            "date": "2024-03-01T12:00:00Z",
            "content": [{"attachment": {"contentType": "text/html", "url": "https://ehr.example/fhir/Binary/b-1",
                "title": "Visit note"}}],
            "context": {"encounter": [{"reference": "Encounter/e-1"}]},
        });
        let doc = document(&r).unwrap();
        assert_eq!(
            (doc.title.as_str(), doc.kind.as_deref()),
            ("Visit note", Some("Progress note"))
        );
        assert_eq!(
            (doc.binary_id.as_deref(), doc.visit_id.as_deref()),
            (Some("b-1"), Some("e-1"))
        );
        assert_eq!(doc.content_type.as_deref(), Some("text/html"));
        let untitled = json!({"resourceType": "DocumentReference", "id": "u", "description": "Scanned letter",
            "content": [{"attachment": {"url": "urn:x:elsewhere"}}, {"attachment": {"url": "Binary/b-2",
            "creation": "2020-02"}}], "context": {"encounter": {"reference": "Encounter/e-2"}}});
        let doc = document(&untitled).unwrap();
        assert_eq!(
            (doc.title.as_str(), doc.binary_id.as_deref()),
            ("Scanned letter", Some("b-2"))
        );
        assert_eq!(
            (doc.date, doc.visit_id.as_deref()),
            (Some(d("2020-02")), Some("e-2"))
        );
        let coded = json!({"resourceType": "DocumentReference", "id": "c", "type": {"coding": [{"system": LOINC, "code": "34133-9"}]}});
        assert_eq!(document(&coded).unwrap().title, "34133-9 (LOINC)");
        let bare = document(&json!({"resourceType": "DocumentReference", "id": "b"})).unwrap();
        assert_eq!((bare.title.as_str(), bare.binary_id), ("Document", None));

        let mut visits = vec![visit(&json!({"resourceType": "Encounter", "id": "e-1"})).unwrap()];
        visits[0].summary_document_ids = vec!["stale".into()];
        let docs = [document(&r).unwrap(), document(&untitled).unwrap()];
        link_visit_documents(&mut visits, &docs);
        assert_eq!(visits[0].summary_document_ids, ["doc"]);
        visits[0].source = Some("other-provider".into());
        link_visit_documents(&mut visits, &docs);
        assert!(
            visits[0].summary_document_ids.is_empty(),
            "same id, another provider"
        );
    }

    #[test]
    fn binaries_of_each_kind() {
        let binary = |content_type: &str, bytes: &[u8]| {
            json!({"resourceType": "Binary", "id": "b", "contentType": content_type,
                "data": base64::engine::general_purpose::STANDARD.encode(bytes)})
        };
        assert_eq!(
            document_content(&binary("text/plain; charset=utf-8", b"Seen today.")),
            Some(DocumentContent::Text("Seen today.".into()))
        );
        assert_eq!(
            document_content(&binary("text/html", b"<p>Hi</p>")),
            Some(DocumentContent::Html("<p>Hi</p>".into()))
        );
        let pdf = b"%PDF-1.4\n...".to_vec();
        assert_eq!(
            document_content(&binary("application/pdf", &pdf)),
            Some(DocumentContent::Pdf(pdf.clone()))
        );
        assert_eq!(
            document_content(&binary("application/octet-stream", &pdf)),
            Some(DocumentContent::Pdf(pdf))
        );
        let rtf = document_content(&binary("text/rtf", b"{\\rtf1}")).unwrap();
        assert_eq!(
            rtf,
            DocumentContent::Other {
                content_type: "text/rtf".into(),
                bytes: b"{\\rtf1}".to_vec()
            }
        );
        // Line breaks and missing padding are tolerated; broken base64 and other resources are not content.
        let wrapped = json!({"resourceType": "Binary", "contentType": "text/plain", "data": "U2Vl\nbiB0b2RheS4"});
        assert_eq!(
            document_content(&wrapped),
            Some(DocumentContent::Text("Seen today.".into()))
        );
        assert_eq!(
            document_content(&json!({"resourceType": "Binary", "data": "!!!"})),
            None
        );
        assert_eq!(document_content(&json!({"resourceType": "Binary"})), None);
        assert_eq!(
            document_content(&json!({"resourceType": "Patient", "data": "AA=="})),
            None
        );
        assert_eq!(
            document_content_raw("TEXT/HTML", vec![0xef, 0xbb, 0xbf, b'x', 0xff]),
            DocumentContent::Html("x\u{fffd}".into())
        );
    }

    #[test]
    fn appointments_list_who_but_the_patient() {
        let r = json!({
            "resourceType": "Appointment", "id": "ap", "status": "booked", "description": "Follow-up visit",
            "start": "2026-12-01T15:00:00Z", "end": "2026-12-01T15:30:00Z",
            "serviceType": [{"text": "Office Visit"}],
            "participant": [
                {"actor": {"reference": "Patient/p1", "display": "Maria Garcia"}},
                {"actor": {"reference": "Practitioner/d1", "display": "Dr. Anna Lee"}},
                {"actor": {"display": "Lakeview Clinic"}},
                {"actor": {"reference": "Practitioner/d2"}},
            ],
        });
        let a = appointment(&r).unwrap();
        assert_eq!(a.with_whom, ["Dr. Anna Lee", "Lakeview Clinic"]);
        assert_eq!(
            (
                a.status.as_str(),
                a.description.as_deref(),
                a.service.as_deref()
            ),
            ("booked", Some("Follow-up visit"), Some("Office Visit"))
        );
        assert_eq!(a.start, Some(d("2026-12-01T15:00:00Z")));
    }

    #[test]
    fn demographics_with_primitive_extensions() {
        let r = json!({
            "resourceType": "Patient", "id": "pat",
            "extension": [{"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": "F"}],
            "identifier": [{"system": "urn:ssn", "value": "999"},
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "value": "MRN-1"}],
            "name": [{"use": "maiden", "family": "Kerluke", "given": ["Cathryn"]},
                {"use": "official", "family": "Windler", "given": ["Cathryn", "A."], "prefix": ["Mrs."]}],
            "telecom": [{"system": "phone", "value": "555-0100", "use": "old"}, {"system": "phone", "value": "555-0199"},
                {"system": "email", "value": "c@example.org"}],
            "gender": "female",
            "birthDate": "1924-12-30", "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1924-12-30T04:00:00Z"}]},
            "address": [{"use": "work", "text": "1 Main St"}, {"use": "home", "line": ["427 Tillman Crossing"],
                "city": "Boston", "state": "MA", "postalCode": "02108", "country": "US"}],
        });
        let p = demographics(&r).unwrap();
        assert_eq!(p.name, "Cathryn A. Windler");
        assert_eq!(p.birth_date, Some(d("1924-12-30")));
        assert_eq!(
            (p.phone.as_deref(), p.email.as_deref()),
            (Some("555-0199"), Some("c@example.org"))
        );
        assert_eq!(
            p.address.as_deref(),
            Some("427 Tillman Crossing, Boston, MA 02108")
        );
        assert_eq!(
            (p.mrn.as_deref(), p.gender.as_deref()),
            (Some("MRN-1"), Some("female"))
        );
        let only_extension = json!({"resourceType": "Patient", "id": "x",
            "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]},
            "name": [{"family": ["Old", "Style"]}], "identifier": [{"type": {"text": "MRN"}, "value": "42"}]});
        let p = demographics(&only_extension).unwrap();
        assert_eq!(
            (p.name.as_str(), p.birth_date, p.mrn.as_deref()),
            ("Old Style", None, Some("42"))
        );
        assert_eq!(
            demographics(&json!({"resourceType": "Patient", "id": "n"}))
                .unwrap()
                .name,
            "Unnamed patient"
        );
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

    #[test]
    fn no_input_panics() {
        let inputs = [
            json!(null),
            json!(1),
            json!("Observation"),
            json!([]),
            json!({}),
            json!({"resourceType": 3, "id": 4}),
        ];
        let types = [
            "Observation",
            "AllergyIntolerance",
            "MedicationRequest",
            "Immunization",
            "Condition",
            "Encounter",
            "DocumentReference",
            "Appointment",
            "Patient",
            "Binary",
        ];
        // Every field the parsers read, set to values of the wrong shape.
        let odd = [
            json!(null),
            json!(7),
            json!("x"),
            json!([1, "a", null, {}]),
            json!({"coding": 5, "text": []}),
            json!(true),
        ];
        let fields = [
            "id",
            "code",
            "category",
            "valueQuantity",
            "valueString",
            "valueCodeableConcept",
            "valueBoolean",
            "valueInteger",
            "component",
            "interpretation",
            "referenceRange",
            "effectiveDateTime",
            "effectivePeriod",
            "issued",
            "status",
            "reaction",
            "clinicalStatus",
            "recordedDate",
            "criticality",
            "medicationCodeableConcept",
            "medicationReference",
            "contained",
            "dosageInstruction",
            "requester",
            "authoredOn",
            "dispenseRequest",
            "vaccineCode",
            "occurrenceDateTime",
            "occurrenceString",
            "lotNumber",
            "onsetDateTime",
            "abatementDateTime",
            "type",
            "class",
            "period",
            "participant",
            "location",
            "serviceProvider",
            "reasonCode",
            "reasonReference",
            "content",
            "context",
            "description",
            "date",
            "start",
            "end",
            "serviceType",
            "appointmentType",
            "name",
            "telecom",
            "address",
            "identifier",
            "birthDate",
            "gender",
            "data",
            "contentType",
        ];
        let mut all = inputs.to_vec();
        for ty in types {
            for v in &odd {
                let mut r = json!({"resourceType": ty, "id": "x"});
                for f in fields.iter().filter(|f| **f != "id") {
                    r[*f] = v.clone();
                }
                all.push(r);
            }
        }
        for r in &all {
            let _ = (
                lab_result(r),
                vital_sign(r),
                allergy(r),
                medication(r),
                immunization(r),
                problem(r),
            );
            let _ = (
                visit(r),
                document(r),
                appointment(r),
                demographics(r),
                document_content(r),
            );
            for view in [
                lab_result(r).map(|x| x.name),
                allergy(r).map(|x| x.substance),
                medication(r).map(|x| x.name),
                immunization(r).map(|x| x.vaccine),
                problem(r).map(|x| x.name),
                visit(r).map(|x| x.kind),
                document(r).map(|x| x.title),
                demographics(r).map(|x| x.name),
            ]
            .into_iter()
            .flatten()
            {
                assert!(!view.is_empty());
            }
        }
        let mut results = [result("a", "1", "2024", Some(1.0))];
        link_reports(&mut results, &all);
    }
}
