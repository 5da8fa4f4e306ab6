//! The patient's chart: allergies, medications, immunizations, problems, procedures, visits, documents,
//! appointments, demographics and the health summary.

use chartlink_core as core;
use chartlink_core::views;

use super::{Coding, FhirDate, Observation, all, date, mirror};

mirror! {
    /// An allergy or intolerance.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct Allergy from views::Allergy as a {
        id: String,
        substance: String,
        reactions: Vec<String>,
        /// "mild", "moderate", "severe".
        severity: Option<String>,
        /// "low", "high", "unable-to-assess".
        criticality: Option<String>,
        /// "active", "inactive", "resolved".
        clinical_status: Option<String>,
        recorded: Option<FhirDate> => date,
        source: Option<String>,
    }
}

mirror! {
    /// A prescription.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct Medication from views::Medication as m {
        id: String,
        name: String,
        /// The dosage instructions ("1 tablet by mouth twice daily").
        dosage: Option<String>,
        /// "active", "completed", "stopped", ...
        status: String,
        prescriber: Option<String>,
        authored: Option<FhirDate> => date,
        /// When the order runs out (may be in the future for an active order).
        ended: Option<FhirDate> => date,
        /// Why it was prescribed ("Acute bronchitis"), as coded or named by the problem it points to.
        reason: Vec<String>,
        /// The problems (Condition ids) given as the reason: `problems()` has them.
        reason_ids: Vec<String>,
        source: Option<String>,
    }
}

mirror! {
    /// An imaging study (X-ray, ultrasound, CT, MRI) as the imaging system recorded it; the images are not fetched.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct ImagingStudy from views::ImagingStudy as s {
        id: String,
        /// The description, else the procedure, else the modalities ("Ultrasound").
        name: String,
        /// "available", "registered", "cancelled", ...
        status: String,
        started: Option<FhirDate> => date,
        /// "Ultrasound", "Computed Radiography", ...
        modalities: Vec<String>,
        procedures: Vec<String>,
        /// The body parts imaged.
        body_sites: Vec<String>,
        description: Option<String>,
        series_count: Option<i64> = s.series_count.map(i64::from),
        instance_count: Option<i64> = s.instance_count.map(i64::from),
        reason: Vec<String>,
        source: Option<String>,
    }
}

mirror! {
    /// A vaccination.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct Immunization from views::Immunization as i {
        id: String,
        vaccine: String,
        date: Option<FhirDate> => date,
        /// "completed", "not-done", "entered-in-error".
        status: String,
        lot: Option<String>,
        source: Option<String>,
    }
}

mirror! {
    /// A problem or diagnosis.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct Problem from views::Problem as p {
        id: String,
        name: String,
        /// Its codes (typically SNOMED CT and ICD-10-CM).
        codes: Vec<Coding> = p.codes.into_iter().map(Into::into).collect(),
        /// "active", "resolved", "remission", ...
        clinical_status: Option<String>,
        onset: Option<FhirDate> => date,
        recorded: Option<FhirDate> => date,
        resolved: Option<FhirDate> => date,
        category: Vec<String>,
        source: Option<String>,
    }
}

mirror! {
    /// A visit.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct Visit from views::Visit as v {
        id: String,
        /// "Office visit", "Ambulatory visit", ...
        kind: String,
        start: Option<FhirDate> => date,
        end: Option<FhirDate> => date,
        provider: Option<String>,
        location: Option<String> = v.location_or_org,
        reason: Option<String>,
        /// The documents written for it (after-visit summary, notes): ids for `document_content`.
        summary_document_ids: Vec<String>,
        source: Option<String>,
    }
}

mirror! {
    /// A clinical document (note, after-visit summary); its content comes from `document_content`.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct Document from views::Document as d {
        id: String,
        title: String,
        date: Option<FhirDate> => date,
        /// "Progress note", "Discharge summary", ...
        kind: Option<String>,
        content_type: Option<String>,
        /// Whether there is content to fetch.
        has_content: bool = d.binary_id.is_some(),
        visit_id: Option<String>,
        source: Option<String>,
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

mirror! {
    /// An appointment.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct Appointment from views::Appointment as a {
        id: String,
        start: Option<FhirDate> => date,
        end: Option<FhirDate> => date,
        /// "booked", "fulfilled", "cancelled", ...
        status: String,
        description: Option<String>,
        /// The clinicians and places, by name.
        with_whom: Vec<String>,
        service: Option<String>,
        source: Option<String>,
    }
}

mirror! {
    /// Who the record is about.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct Demographics from views::Demographics as d {
        id: String,
        name: String,
        birth_date: Option<FhirDate> => date,
        gender: Option<String>,
        phone: Option<String>,
        email: Option<String>,
        address: Option<String>,
        /// The medical record number.
        mrn: Option<String>,
        source: Option<String>,
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

mirror! {
    /// A condition a relative had.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct FamilyCondition from views::FamilyCondition as c {
        name: String,
        /// When it began, as recorded: an age ("at 50 years"), an age range, a date or a text.
        onset: Option<String>,
        outcome: Option<String>,
        /// The relative died of it.
        contributed_to_death: bool,
    }
}

mirror! {
    /// One relative and the conditions they had (FamilyMemberHistory).
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct FamilyHistory from views::FamilyHistory as f {
        id: String,
        /// Who, to the patient ("Father", "Maternal grandmother").
        relationship: String,
        name: Option<String>,
        sex: Option<String>,
        status: String,
        /// Whether and when the relative died: "yes", an age ("at 67 years"), a date or a text.
        deceased: Option<String>,
        conditions: Vec<FamilyCondition> => all,
        /// When the history was taken.
        date: Option<FhirDate> => date,
        source: Option<String>,
    }
}
