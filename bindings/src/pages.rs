//! The reads of every list kind, from one table: its whole list (`allergies()`), and a page of it within a date
//! range (`allergies_page(query)` → `AllergyPage`). Each kind is one line of the `pages!` table at the end; the
//! page records and both reads are generated from it. Observations are one record with three lists (lab results,
//! vital signs, the others), in the `reads!` table.

use chartlink_core as core;
use chartlink_core::views;

use crate::records::{self, *};
use crate::runtime::run_blocking;
use crate::{ChartLink, ChartLinkError, Result};

/// Which part of a list to read. Every field is optional: `RecordQuery()` is the whole list.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct RecordQuery {
    /// Records dated on or after this FHIR date ("2024", "2024-06", "2024-06-01"), at its precision.
    #[uniffi(default = None)]
    pub from: Option<String>,
    /// Records dated on or before this FHIR date, at its precision ("2024" runs through 31 December). With either
    /// bound, undated records are left out.
    #[uniffi(default = None)]
    pub to: Option<String>,
    /// At most this many records (1 to 1000); null/nil: all that are left.
    #[uniffi(default = None)]
    pub limit: Option<i64>,
    /// The previous page's `nextCursor`; null/nil: the first page. A cursor from before a sync that changed the
    /// list, a patient switch or another range is refused with `InvalidInput`: read again from the first page.
    #[uniffi(default = None)]
    pub cursor: Option<String>,
}

impl TryFrom<RecordQuery> for core::RecordQuery {
    type Error = ChartLinkError;

    fn try_from(q: RecordQuery) -> Result<Self> {
        let date = |text: Option<String>, which: &str| -> Result<Option<views::FhirDate>> {
            text.map(|t| {
                views::FhirDate::parse(&t).ok_or_else(|| {
                    ChartLinkError::InvalidInput(format!(
                        "`{which}` is not a FHIR date (2024, 2024-06 or 2024-06-01)"
                    ))
                })
            })
            .transpose()
        };
        let limit = q
            .limit
            .map(|l| {
                usize::try_from(l)
                    .ok()
                    .filter(|l| (1..=core::MAX_PAGE).contains(l))
                    .ok_or_else(|| {
                        ChartLinkError::InvalidInput(format!(
                            "a page holds 1 to {} records",
                            core::MAX_PAGE
                        ))
                    })
            })
            .transpose()?;
        Ok(core::RecordQuery {
            from: date(q.from, "from")?,
            to: date(q.to, "to")?,
            limit,
            cursor: q.cursor,
        })
    }
}

/// A page record: `PageRecord(FFI record)`.
macro_rules! page_records {
    ($($page:ident($record:ty);)*) => {
        $(
            /// One page of a list, as a `RecordQuery` asked for.
            #[derive(Debug, Clone, PartialEq, uniffi::Record)]
            pub struct $page {
                pub records: Vec<$record>,
                /// Pass it as `RecordQuery.cursor` for the next page; null/nil on the last one.
                pub next_cursor: Option<String>,
                /// How many records the whole list has within the date range.
                pub total: i64,
            }
        )*
    };
}

/// The reads of a list kind: the whole list, and a page of it.
/// `list, list_page => PageRecord(FFI record, |sdk| core's list, |sdk, query| core's page)`.
macro_rules! reads {
    ($(
        $(#[$doc:meta])*
        $list:ident, $read:ident => $page:ident($record:ty, |$s1:ident| $all:expr, |$s2:ident, $q:ident| $core:expr);
    )*) => {
        #[uniffi::export]
        impl ChartLink {
            $(
                $(#[$doc])*
                pub async fn $list(&self) -> Result<Vec<$record>> {
                    let $s1 = self.inner.clone();
                    run_blocking(move || Ok(records::all($all?))).await
                }

                $(#[$doc])*
                /// One page of it, within a date range (see `RecordQuery`).
                pub async fn $read(&self, query: RecordQuery) -> Result<$page> {
                    let $s2 = self.inner.clone();
                    run_blocking(move || {
                        let $q: core::RecordQuery = query.try_into()?;
                        let page = $core?;
                        Ok($page {
                            records: records::all(page.records),
                            next_cursor: page.next_cursor,
                            total: records::count(page.total),
                        })
                    })
                    .await
                }
            )*
        }
    };
}

/// One line per record kind: `list, list_page => PageRecord(core view => FFI record)`: its page record, its list
/// and its page, read through core's one read path (`ChartLink::records`).
macro_rules! pages {
    ($($(#[$doc:meta])* $list:ident, $read:ident => $page:ident($view:ty => $record:ty);)*) => {
        page_records! { $($page($record);)* }
        reads! {
            $(
                $(#[$doc])*
                $list, $read => $page($record, |sdk| sdk.records::<$view>(), |sdk, q| sdk.records_page::<$view>(&q));
            )*
        }
    };
}

page_records! { ObservationPage(Observation); }

reads! {
    /// Lab results, newest first.
    lab_results, lab_results_page => ObservationPage(Observation, |sdk| sdk.lab_results(), |sdk, q| sdk.lab_results_page(&q));
    /// Vital signs, newest first.
    vital_signs, vital_signs_page => ObservationPage(Observation, |sdk| sdk.vital_signs(), |sdk, q| sdk.vital_signs_page(&q));
    /// Observations that are neither lab results nor vital signs (surveys, exams, imaging, social history),
    /// newest first.
    observations, observations_page => ObservationPage(Observation, |sdk| sdk.observations(), |sdk, q| sdk.observations_page(&q));
}

pages! {
    /// Allergies and intolerances.
    allergies, allergies_page => AllergyPage(views::Allergy => Allergy);
    /// Prescriptions, newest first.
    medications, medications_page => MedicationPage(views::Medication => Medication);
    /// Medications dispensed, newest first.
    medication_dispenses, medication_dispenses_page => MedicationDispensePage(views::MedicationDispense => MedicationDispense);
    /// Medications taken as recorded (older servers), newest first.
    medication_statements, medication_statements_page => MedicationStatementPage(views::MedicationStatement => MedicationStatement);
    /// Vaccinations, newest first.
    immunizations, immunizations_page => ImmunizationPage(views::Immunization => Immunization);
    /// The problem list.
    problems, problems_page => ProblemPage(views::Problem => Problem);
    /// Visits, newest first, with their documents.
    visits, visits_page => VisitPage(views::Visit => Visit);
    /// Documents (notes, after-visit summaries), newest first.
    documents, documents_page => DocumentPage(views::Document => Document);
    /// Appointments, soonest first.
    appointments, appointments_page => AppointmentPage(views::Appointment => Appointment);
    /// Procedures, newest first.
    procedures, procedures_page => ProcedurePage(views::Procedure => Procedure);
    /// Reports (lab panels, imaging, pathology), newest first, with their results.
    diagnostic_reports, diagnostic_reports_page => DiagnosticReportPage(views::DiagnosticReport => DiagnosticReport);
    /// Imaging studies (X-ray, ultrasound, CT, MRI), newest first.
    imaging_studies, imaging_studies_page => ImagingStudyPage(views::ImagingStudy => ImagingStudy);
    /// Care plans, newest first.
    care_plans, care_plans_page => CarePlanPage(views::CarePlan => CarePlan);
    /// Goals, newest first.
    goals, goals_page => GoalPage(views::Goal => Goal);
    /// Care teams.
    care_teams, care_teams_page => CareTeamPage(views::CareTeam => CareTeam);
    /// Implants and other devices.
    devices, devices_page => DevicePage(views::Device => Device);
    /// Orders and referrals, newest first.
    service_requests, service_requests_page => ServiceRequestPage(views::ServiceRequest => ServiceRequest);
    /// Insurance coverages.
    coverages, coverages_page => CoveragePage(views::Coverage => Coverage);
    /// What the patient was billed, as the insurers explained it (ExplanationOfBenefit), newest first.
    explanations_of_benefit, explanations_of_benefit_page => ExplanationOfBenefitPage(views::ExplanationOfBenefit => ExplanationOfBenefit);
    /// The claims providers sent for the patient's care, newest first.
    claims, claims_page => ClaimPage(views::Claim => Claim);
    /// Answered questionnaires, newest first.
    questionnaire_responses, questionnaire_responses_page => QuestionnaireResponsePage(views::QuestionnaireResponse => QuestionnaireResponse);
}
