//! The patient's chart: allergies, medications, immunizations, problems, procedures, visits, documents,
//! appointments, demographics and the health summary.

use chartlink_core as core;
use chartlink_core::views;

use super::{Coding, FhirDate, Observation, all, date};

/// An allergy or intolerance.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Allergy {
    pub id: String,
    pub substance: String,
    pub reactions: Vec<String>,
    /// "mild", "moderate", "severe".
    pub severity: Option<String>,
    /// "low", "high", "unable-to-assess".
    pub criticality: Option<String>,
    /// "active", "inactive", "resolved".
    pub clinical_status: Option<String>,
    pub recorded: Option<FhirDate>,
    pub source: Option<String>,
}

impl From<views::Allergy> for Allergy {
    fn from(a: views::Allergy) -> Self {
        Self {
            id: a.id,
            substance: a.substance,
            reactions: a.reactions,
            severity: a.severity,
            criticality: a.criticality,
            clinical_status: a.clinical_status,
            recorded: date(a.recorded),
            source: a.source,
        }
    }
}

/// A prescription.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Medication {
    pub id: String,
    pub name: String,
    /// The dosage instructions ("1 tablet by mouth twice daily").
    pub dosage: Option<String>,
    /// "active", "completed", "stopped", ...
    pub status: String,
    pub prescriber: Option<String>,
    pub authored: Option<FhirDate>,
    /// When the order runs out (may be in the future for an active order).
    pub ended: Option<FhirDate>,
    /// Why it was prescribed ("Acute bronchitis"), as coded or named by the problem it points to.
    pub reason: Vec<String>,
    /// The problems (Condition ids) given as the reason: `problems()` has them.
    pub reason_ids: Vec<String>,
    pub source: Option<String>,
}

impl From<views::Medication> for Medication {
    fn from(m: views::Medication) -> Self {
        Self {
            id: m.id,
            name: m.name,
            dosage: m.dosage,
            status: m.status,
            prescriber: m.prescriber,
            authored: date(m.authored),
            ended: date(m.ended),
            reason: m.reason,
            reason_ids: m.reason_ids,
            source: m.source,
        }
    }
}

/// An imaging study (X-ray, ultrasound, CT, MRI) as the imaging system recorded it; the images are not fetched.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ImagingStudy {
    pub id: String,
    /// The description, else the procedure, else the modalities ("Ultrasound").
    pub name: String,
    /// "available", "registered", "cancelled", ...
    pub status: String,
    pub started: Option<FhirDate>,
    /// "Ultrasound", "Computed Radiography", ...
    pub modalities: Vec<String>,
    pub procedures: Vec<String>,
    /// The body parts imaged.
    pub body_sites: Vec<String>,
    pub description: Option<String>,
    pub series_count: Option<i64>,
    pub instance_count: Option<i64>,
    pub reason: Vec<String>,
    pub source: Option<String>,
}

impl From<views::ImagingStudy> for ImagingStudy {
    fn from(s: views::ImagingStudy) -> Self {
        Self {
            id: s.id,
            name: s.name,
            status: s.status,
            started: date(s.started),
            modalities: s.modalities,
            procedures: s.procedures,
            body_sites: s.body_sites,
            description: s.description,
            series_count: s.series_count.map(i64::from),
            instance_count: s.instance_count.map(i64::from),
            reason: s.reason,
            source: s.source,
        }
    }
}

/// A vaccination.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Immunization {
    pub id: String,
    pub vaccine: String,
    pub date: Option<FhirDate>,
    /// "completed", "not-done", "entered-in-error".
    pub status: String,
    pub lot: Option<String>,
    pub source: Option<String>,
}

impl From<views::Immunization> for Immunization {
    fn from(i: views::Immunization) -> Self {
        Self {
            id: i.id,
            vaccine: i.vaccine,
            date: date(i.date),
            status: i.status,
            lot: i.lot,
            source: i.source,
        }
    }
}

/// A problem or diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Problem {
    pub id: String,
    pub name: String,
    /// Its codes (typically SNOMED CT and ICD-10-CM).
    pub codes: Vec<Coding>,
    /// "active", "resolved", "remission", ...
    pub clinical_status: Option<String>,
    pub onset: Option<FhirDate>,
    pub recorded: Option<FhirDate>,
    pub resolved: Option<FhirDate>,
    pub category: Vec<String>,
    pub source: Option<String>,
}

impl From<views::Problem> for Problem {
    fn from(p: views::Problem) -> Self {
        Self {
            id: p.id,
            name: p.name,
            codes: p.codes.into_iter().map(Into::into).collect(),
            clinical_status: p.clinical_status,
            onset: date(p.onset),
            recorded: date(p.recorded),
            resolved: date(p.resolved),
            category: p.category,
            source: p.source,
        }
    }
}

/// A visit.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Visit {
    pub id: String,
    /// "Office visit", "Ambulatory visit", ...
    pub kind: String,
    pub start: Option<FhirDate>,
    pub end: Option<FhirDate>,
    pub provider: Option<String>,
    pub location: Option<String>,
    pub reason: Option<String>,
    /// The documents written for it (after-visit summary, notes): ids for `document_content`.
    pub summary_document_ids: Vec<String>,
    pub source: Option<String>,
}

impl From<views::Visit> for Visit {
    fn from(v: views::Visit) -> Self {
        Self {
            id: v.id,
            kind: v.kind,
            start: date(v.start),
            end: date(v.end),
            provider: v.provider,
            location: v.location_or_org,
            reason: v.reason,
            summary_document_ids: v.summary_document_ids,
            source: v.source,
        }
    }
}

/// A clinical document (note, after-visit summary); its content comes from `document_content`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Document {
    pub id: String,
    pub title: String,
    pub date: Option<FhirDate>,
    /// "Progress note", "Discharge summary", ...
    pub kind: Option<String>,
    pub content_type: Option<String>,
    /// Whether there is content to fetch.
    pub has_content: bool,
    pub visit_id: Option<String>,
    pub source: Option<String>,
}

impl From<views::Document> for Document {
    fn from(d: views::Document) -> Self {
        Self {
            id: d.id,
            title: d.title,
            date: date(d.date),
            kind: d.kind,
            content_type: d.content_type,
            has_content: d.binary_id.is_some(),
            visit_id: d.visit_id,
            source: d.source,
        }
    }
}

/// The content of a document, ready to show.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum DocumentContent {
    Text {
        text: String,
    },
    Html {
        html: String,
    },
    Pdf {
        bytes: Vec<u8>,
    },
    Other {
        content_type: String,
        bytes: Vec<u8>,
    },
}

impl From<views::DocumentContent> for DocumentContent {
    fn from(c: views::DocumentContent) -> Self {
        match c {
            views::DocumentContent::Text(text) => Self::Text { text },
            views::DocumentContent::Html(html) => Self::Html { html },
            views::DocumentContent::Pdf(bytes) => Self::Pdf { bytes },
            views::DocumentContent::Other {
                content_type,
                bytes,
            } => Self::Other {
                content_type,
                bytes,
            },
        }
    }
}

/// An appointment.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Appointment {
    pub id: String,
    pub start: Option<FhirDate>,
    pub end: Option<FhirDate>,
    /// "booked", "fulfilled", "cancelled", ...
    pub status: String,
    pub description: Option<String>,
    /// The clinicians and places, by name.
    pub with_whom: Vec<String>,
    pub service: Option<String>,
    pub source: Option<String>,
}

impl From<views::Appointment> for Appointment {
    fn from(a: views::Appointment) -> Self {
        Self {
            id: a.id,
            start: date(a.start),
            end: date(a.end),
            status: a.status,
            description: a.description,
            with_whom: a.with_whom,
            service: a.service,
            source: a.source,
        }
    }
}

/// Who the record is about.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Demographics {
    pub id: String,
    pub name: String,
    pub birth_date: Option<FhirDate>,
    pub gender: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    /// The medical record number.
    pub mrn: Option<String>,
    pub source: Option<String>,
}

impl From<views::Demographics> for Demographics {
    fn from(d: views::Demographics) -> Self {
        Self {
            id: d.id,
            name: d.name,
            birth_date: date(d.birth_date),
            gender: d.gender,
            phone: d.phone,
            email: d.email,
            address: d.address,
            mrn: d.mrn,
            source: d.source,
        }
    }
}

/// The active patient's summary: what the portal's home page shows.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct HealthSummary {
    pub patient: Option<Demographics>,
    pub allergies: Vec<Allergy>,
    /// Active medications.
    pub medications: Vec<Medication>,
    pub immunizations: Vec<Immunization>,
    /// Active problems.
    pub problems: Vec<Problem>,
    /// The newest result of each test, newest first.
    pub latest_results: Vec<Observation>,
}

/// A procedure (surgery, screening, counselling, therapy).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Procedure {
    pub id: String,
    pub name: String,
    pub codes: Vec<Coding>,
    /// "completed", "in-progress", "not-done", ...
    pub status: String,
    pub performed: Option<FhirDate>,
    pub performed_end: Option<FhirDate>,
    pub performer: Option<String>,
    pub location: Option<String>,
    pub reason: Option<String>,
    pub body_site: Option<String>,
    pub outcome: Option<String>,
    pub visit_id: Option<String>,
    pub source: Option<String>,
}

impl From<views::Procedure> for Procedure {
    fn from(p: views::Procedure) -> Self {
        Self {
            id: p.id,
            name: p.name,
            codes: all(p.codes),
            status: p.status,
            performed: date(p.performed),
            performed_end: date(p.performed_end),
            performer: p.performer,
            location: p.location,
            reason: p.reason,
            body_site: p.body_site,
            outcome: p.outcome,
            visit_id: p.visit_id,
            source: p.source,
        }
    }
}

impl From<core::HealthSummary> for HealthSummary {
    fn from(s: core::HealthSummary) -> Self {
        Self {
            patient: s.patient.map(Into::into),
            allergies: all(s.allergies),
            medications: all(s.medications),
            immunizations: all(s.immunizations),
            problems: all(s.problems),
            latest_results: all(s.latest_results),
        }
    }
}
