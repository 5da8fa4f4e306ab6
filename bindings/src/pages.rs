//! Lists in pages and date ranges: a [`RecordQuery`] in, one `…Page` record out, for every list kind. Each kind is
//! one line of the `pages!` table below; the page records and the `…_page` reads are generated from it.

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

/// Reads of a page: `read_name => PageRecord(|sdk, query| core's page)`.
macro_rules! reads {
    ($($(#[$doc:meta])* $read:ident => $page:ident(|$sdk:ident, $q:ident| $core:expr);)*) => {
        #[uniffi::export]
        impl ChartLink {
            $(
                $(#[$doc])*
                pub async fn $read(&self, query: RecordQuery) -> Result<$page> {
                    let $sdk = self.inner.clone();
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

/// One line per record kind: `read_name => PageRecord(core view => FFI record)`, the page record and its read.
macro_rules! pages {
    ($($(#[$doc:meta])* $read:ident => $page:ident($view:ty => $record:ty);)*) => {
        page_records! { $($page($record);)* }
        reads! { $($(#[$doc])* $read => $page(|sdk, q| sdk.records_page::<$view>(&q));)* }
    };
}

page_records! { ObservationPage(Observation); }

reads! {
    /// A page of lab results, newest first.
    lab_results_page => ObservationPage(|sdk, q| sdk.lab_results_page(&q));
    /// A page of vital signs, newest first.
    vital_signs_page => ObservationPage(|sdk, q| sdk.vital_signs_page(&q));
    /// A page of the other observations (surveys, exams, social history, ...), newest first.
    observations_page => ObservationPage(|sdk, q| sdk.observations_page(&q));
}

pages! {
    /// A page of allergies, as stored.
    allergies_page => AllergyPage(views::Allergy => Allergy);
    /// A page of prescriptions, newest first.
    medications_page => MedicationPage(views::Medication => Medication);
    /// A page of medications dispensed, newest first.
    medication_dispenses_page => MedicationDispensePage(views::MedicationDispense => MedicationDispense);
    /// A page of medication statements, newest first.
    medication_statements_page => MedicationStatementPage(views::MedicationStatement => MedicationStatement);
    /// A page of immunizations, newest first.
    immunizations_page => ImmunizationPage(views::Immunization => Immunization);
    /// A page of the problem list, as stored.
    problems_page => ProblemPage(views::Problem => Problem);
    /// A page of visits, newest first.
    visits_page => VisitPage(views::Visit => Visit);
    /// A page of documents, newest first.
    documents_page => DocumentPage(views::Document => Document);
    /// A page of appointments, soonest first.
    appointments_page => AppointmentPage(views::Appointment => Appointment);
    /// A page of procedures, newest first.
    procedures_page => ProcedurePage(views::Procedure => Procedure);
    /// A page of reports, newest first.
    diagnostic_reports_page => DiagnosticReportPage(views::DiagnosticReport => DiagnosticReport);
    /// A page of imaging studies, newest first.
    imaging_studies_page => ImagingStudyPage(views::ImagingStudy => ImagingStudy);
    /// A page of care plans, newest first.
    care_plans_page => CarePlanPage(views::CarePlan => CarePlan);
    /// A page of goals, newest first.
    goals_page => GoalPage(views::Goal => Goal);
    /// A page of care teams.
    care_teams_page => CareTeamPage(views::CareTeam => CareTeam);
    /// A page of devices.
    devices_page => DevicePage(views::Device => Device);
    /// A page of orders and referrals, newest first.
    service_requests_page => ServiceRequestPage(views::ServiceRequest => ServiceRequest);
    /// A page of insurance coverages.
    coverages_page => CoveragePage(views::Coverage => Coverage);
    /// A page of explanations of benefit (what the patient was billed), newest first.
    explanations_of_benefit_page => ExplanationOfBenefitPage(views::ExplanationOfBenefit => ExplanationOfBenefit);
    /// A page of claims, newest first.
    claims_page => ClaimPage(views::Claim => Claim);
    /// A page of answered questionnaires, newest first.
    questionnaire_responses_page => QuestionnaireResponsePage(views::QuestionnaireResponse => QuestionnaireResponse);
}
