//! The one table of what ChartLink reads, per FHIR resource type: the data category the patient shares it under
//! (and so the scopes asked for), whether and in what order a sync searches it, and the record kind it counts as
//! (background counts, "what's new"). Observations are split by category in a table of their own. The sync plan,
//! the scopes, the locked path's counts and the export read these tables instead of keeping lists of their own.
//!
//! The lists a patient app reads are a table here too ([`record_lists!`](crate::record_lists)): core's reads, the
//! FFI's reads and the CLI's commands are generated from it, and the FFI exports [`RecordKind`] from the same
//! declaration ([`record_kind!`](crate::record_kind)).
//!
//! Adding a FHIR type is a row in [`RESOURCE_KINDS`], a line in `record_lists!` (and a [`RecordKind`] when it
//! counts as a kind of its own), its view in `views/` (with its one line of text, `views::Line`), and its FFI
//! mirror: three files.

use crate::scopes::DataCategory;

/// Declares [`RecordKind`] with the attributes given: core's derives here, and the FFI's `#[uniffi::remote(Enum)]`,
/// which must restate the variants (so they are stated once, here).
#[macro_export]
#[doc(hidden)]
macro_rules! record_kind {
    ($(#[$attr:meta])*) => {
        /// The kind of record a "new results" notice counts (the app says "3 new lab results").
        $(#[$attr])*
        pub enum RecordKind {
            LabResult,
            VitalSign,
            /// Other observations (surveys, exams, social history, ...).
            Observation,
            Medication,
            MedicationDispense,
            MedicationStatement,
            Allergy,
            Problem,
            /// A relative's history (FamilyMemberHistory).
            FamilyHistory,
            Immunization,
            Visit,
            Document,
            Appointment,
            Procedure,
            Report,
            CarePlan,
            Goal,
            CareTeam,
            Device,
            Order,
            Coverage,
            /// What the patient was billed (ExplanationOfBenefit, Claim).
            Billing,
            ImagingStudy,
            Questionnaire,
            Demographics,
            Other,
        }
    };
}

record_kind!(#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]);

/// The lists of records a patient app reads (Observations aside: one record with three lists, read by category),
/// one line each: `read => View, CliCommand;` under the list's description. It hands the table to the macro named
/// `$then`, which builds its part from it: core's `ChartLink::{read}()` (api/records.rs), the FFI's
/// `{read}(query)` (bindings/src/pages.rs) and the CLI's `chartlink {cli-command}` with its help text. `View` is
/// the type in `views`, and the FFI record of the same name.
#[macro_export]
#[doc(hidden)]
macro_rules! record_lists {
    ($then:ident) => {
        $then! {
            /// Allergies and intolerances (AllergyIntolerance).
            allergies => Allergy, Allergies;
            /// Prescriptions (MedicationRequest), newest first, with what each is for.
            medications => Medication, Meds;
            /// Medications dispensed (MedicationDispense), newest first.
            medication_dispenses => MedicationDispense, Dispenses;
            /// Medications taken, as recorded (MedicationStatement; older servers), newest first.
            medication_statements => MedicationStatement, MedStatements;
            /// Vaccinations (Immunization), newest first.
            immunizations => Immunization, Immunizations;
            /// Conditions and diagnoses: the problem list (Condition).
            problems => Problem, Problems;
            /// Family history: the conditions of the patient's relatives (FamilyMemberHistory), newest first.
            family_history => FamilyHistory, FamilyHistory;
            /// Visits and admissions (Encounter), newest first, with their documents.
            visits => Visit, Visits;
            /// Clinical notes and documents (DocumentReference), newest first.
            documents => Document, Documents;
            /// Appointments, past and coming (Appointment), soonest first.
            appointments => Appointment, Appointments;
            /// Procedures and operations (Procedure), newest first.
            procedures => Procedure, Procedures;
            /// Reports: lab panels, imaging, pathology (DiagnosticReport), newest first, with their results.
            diagnostic_reports => DiagnosticReport, Reports;
            /// Imaging studies: X-rays, ultrasounds, CT and MRI scans, with their modality and body site
            /// (ImagingStudy), newest first.
            imaging_studies => ImagingStudy, Imaging;
            /// Care plans (CarePlan), newest first.
            care_plans => CarePlan, CarePlans;
            /// Health goals (Goal), newest first.
            goals => Goal, Goals;
            /// Care teams: who looks after the patient (CareTeam).
            care_teams => CareTeam, CareTeams;
            /// Implants and other devices (Device).
            devices => Device, Devices;
            /// Orders and referrals (ServiceRequest), newest first.
            service_requests => ServiceRequest, Orders;
            /// Insurance coverages (Coverage).
            coverages => Coverage, Coverage;
            /// What the patient was billed, as the insurer explained it: services, totals, what it paid and what
            /// the patient owes (ExplanationOfBenefit), newest first.
            explanations_of_benefit => ExplanationOfBenefit, Billing;
            /// The claims providers sent to the patient's insurer: services and the amount claimed (Claim), newest
            /// first.
            claims => Claim, Claims;
            /// Answered questionnaires (QuestionnaireResponse), newest first.
            questionnaire_responses => QuestionnaireResponse, Questionnaires;
        }
    };
}

/// What ChartLink does with one FHIR resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceKind {
    pub resource_type: &'static str,
    /// What the patient shares it under (the scopes asked for it).
    pub category: DataCategory,
    /// What it counts as (Observations: by their category, see [`OBSERVATION_CATEGORIES`]).
    pub record_kind: RecordKind,
    /// Searched by a sync (`{type}?patient=…`), in the order of this table; `false`: read some other way (the
    /// Patient by id, a Binary from its document).
    pub searched: bool,
}

const fn row(
    resource_type: &'static str,
    category: DataCategory,
    record_kind: RecordKind,
    searched: bool,
) -> ResourceKind {
    ResourceKind {
        resource_type,
        category,
        record_kind,
        searched,
    }
}

/// Every type ChartLink reads. The order is the sync's order (and so the order of the scopes asked for).
pub const RESOURCE_KINDS: &[ResourceKind] = &[
    row(
        "Patient",
        DataCategory::Demographics,
        RecordKind::Demographics,
        false,
    ),
    row(
        "AllergyIntolerance",
        DataCategory::Allergies,
        RecordKind::Allergy,
        true,
    ),
    row(
        "MedicationRequest",
        DataCategory::Medications,
        RecordKind::Medication,
        true,
    ),
    row(
        "MedicationDispense",
        DataCategory::Medications,
        RecordKind::MedicationDispense,
        true,
    ),
    // What older servers record instead of (or beside) prescriptions.
    row(
        "MedicationStatement",
        DataCategory::Medications,
        RecordKind::MedicationStatement,
        true,
    ),
    row(
        "Immunization",
        DataCategory::Immunizations,
        RecordKind::Immunization,
        true,
    ),
    row(
        "Condition",
        DataCategory::Problems,
        RecordKind::Problem,
        true,
    ),
    // Shared with the problem list: the conditions of the patient's relatives.
    row(
        "FamilyMemberHistory",
        DataCategory::Problems,
        RecordKind::FamilyHistory,
        true,
    ),
    // Its category and kind come from OBSERVATION_CATEGORIES; this row's are for an Observation of none.
    row(
        "Observation",
        DataCategory::OtherObservations,
        RecordKind::Observation,
        true,
    ),
    row(
        "DiagnosticReport",
        DataCategory::LabResults,
        RecordKind::Report,
        true,
    ),
    row(
        "Procedure",
        DataCategory::Procedures,
        RecordKind::Procedure,
        true,
    ),
    // An imaging study is a procedure as the imaging system records it.
    row(
        "ImagingStudy",
        DataCategory::Procedures,
        RecordKind::ImagingStudy,
        true,
    ),
    row("Encounter", DataCategory::Visits, RecordKind::Visit, true),
    row(
        "DocumentReference",
        DataCategory::Documents,
        RecordKind::Document,
        true,
    ),
    row(
        "Appointment",
        DataCategory::Appointments,
        RecordKind::Appointment,
        true,
    ),
    row(
        "CarePlan",
        DataCategory::CarePlans,
        RecordKind::CarePlan,
        true,
    ),
    row("Goal", DataCategory::CarePlans, RecordKind::Goal, true),
    row(
        "CareTeam",
        DataCategory::CarePlans,
        RecordKind::CareTeam,
        true,
    ),
    row("Device", DataCategory::Devices, RecordKind::Device, true),
    row(
        "ServiceRequest",
        DataCategory::Orders,
        RecordKind::Order,
        true,
    ),
    row(
        "Coverage",
        DataCategory::Coverage,
        RecordKind::Coverage,
        true,
    ),
    // What the patient was billed: the claims and the insurer's explanation of each.
    row(
        "ExplanationOfBenefit",
        DataCategory::Coverage,
        RecordKind::Billing,
        true,
    ),
    row("Claim", DataCategory::Coverage, RecordKind::Billing, true),
    row(
        "QuestionnaireResponse",
        DataCategory::Questionnaires,
        RecordKind::Questionnaire,
        true,
    ),
    // A document's content, fetched from its DocumentReference.
    row("Binary", DataCategory::Documents, RecordKind::Other, false),
];

/// The Observation categories ChartLink knows, in the order a sync fans out over them when the server needs a
/// category (Epic does): the observation-category code system, "functional-status" (US Core), "sdoh" (US Core 4+)
/// and Synthea's "vital-sign". Each with the data category it is shared under and the record kind it counts as.
pub const OBSERVATION_CATEGORIES: &[(&str, DataCategory, RecordKind)] = &[
    (
        "laboratory",
        DataCategory::LabResults,
        RecordKind::LabResult,
    ),
    (
        "vital-signs",
        DataCategory::VitalSigns,
        RecordKind::VitalSign,
    ),
    // How Synthea (and servers loaded from it) spell it.
    (
        "vital-sign",
        DataCategory::VitalSigns,
        RecordKind::VitalSign,
    ),
    (
        "social-history",
        DataCategory::SocialHistory,
        RecordKind::Observation,
    ),
    ("sdoh", DataCategory::SocialHistory, RecordKind::Observation),
    (
        "survey",
        DataCategory::OtherObservations,
        RecordKind::Observation,
    ),
    (
        "exam",
        DataCategory::OtherObservations,
        RecordKind::Observation,
    ),
    (
        "imaging",
        DataCategory::OtherObservations,
        RecordKind::Observation,
    ),
    (
        "procedure",
        DataCategory::OtherObservations,
        RecordKind::Observation,
    ),
    (
        "therapy",
        DataCategory::OtherObservations,
        RecordKind::Observation,
    ),
    (
        "activity",
        DataCategory::OtherObservations,
        RecordKind::Observation,
    ),
    (
        "functional-status",
        DataCategory::OtherObservations,
        RecordKind::Observation,
    ),
];

/// The row of a resource type, when ChartLink reads it.
pub fn of_type(resource_type: &str) -> Option<&'static ResourceKind> {
    RESOURCE_KINDS
        .iter()
        .find(|k| k.resource_type == resource_type)
}

/// The types a sync searches, in order.
pub fn searched_types() -> impl Iterator<Item = &'static str> {
    RESOURCE_KINDS
        .iter()
        .filter(|k| k.searched)
        .map(|k| k.resource_type)
}

/// The record kind of an Observation category (`None`: not one ChartLink knows).
pub fn observation_category_kind(code: &str) -> Option<RecordKind> {
    OBSERVATION_CATEGORIES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, _, k)| *k)
}

/// The resource types (and, for Observations, the category) shared under a data category, in table order:
/// Observation categories first, then the other types.
pub fn resources_of(category: DataCategory) -> Vec<(&'static str, Option<&'static str>)> {
    let observations = OBSERVATION_CATEGORIES
        .iter()
        .filter(|(_, c, _)| *c == category)
        .map(|(code, _, _)| ("Observation", Some(*code)));
    let others = RESOURCE_KINDS
        .iter()
        .filter(|k| k.category == category && k.resource_type != "Observation")
        .map(|k| (k.resource_type, None));
    observations.chain(others).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_once_and_every_category_shares_something() {
        let mut types: Vec<&str> = RESOURCE_KINDS.iter().map(|k| k.resource_type).collect();
        types.sort_unstable();
        let before = types.len();
        types.dedup();
        assert_eq!(types.len(), before, "a type listed twice");
        for category in DataCategory::ALL {
            assert!(!resources_of(category).is_empty(), "{category:?}");
        }
        assert_eq!(
            of_type("Claim").map(|k| k.record_kind),
            Some(RecordKind::Billing)
        );
        assert_eq!(of_type("Basic"), None);
        assert_eq!(
            observation_category_kind("vital-sign"),
            Some(RecordKind::VitalSign)
        );
        assert!(searched_types().all(|t| t != "Patient" && t != "Binary"));
    }
}
