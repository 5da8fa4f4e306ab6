//! Care and coverage: care plans, goals, care teams, devices, orders, insurance, billing (claims and explanations of
//! benefit), medication history and answered questionnaires.

use chartlink_core::views;

use super::{FhirDate, all, date, mirror};

mirror! {
    /// A care plan.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct CarePlan from views::CarePlan as p {
        id: String,
        title: String,
        status: String,
        intent: Option<String>,
        categories: Vec<String>,
        description: Option<String>,
        start: Option<FhirDate> => date,
        end: Option<FhirDate> => date,
        activities: Vec<String>,
        addresses: Vec<String>,
        source: Option<String>,
    }
}

mirror! {
    /// A goal.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct Goal from views::Goal as g {
        id: String,
        description: String,
        lifecycle_status: String,
        achievement: Option<String>,
        start: Option<FhirDate> => date,
        due: Option<FhirDate> => date,
        targets: Vec<String>,
        addresses: Vec<String>,
        source: Option<String>,
    }
}

mirror! {
    /// One member of a care team.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct CareTeamMember from views::CareTeamMember as m {
        name: String,
        role: Option<String>,
    }
}

mirror! {
    /// A care team.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct CareTeam from views::CareTeam as t {
        id: String,
        name: String,
        status: String,
        start: Option<FhirDate> => date,
        end: Option<FhirDate> => date,
        members: Vec<CareTeamMember> => all,
        managing_organizations: Vec<String>,
        source: Option<String>,
    }
}

mirror! {
    /// An implant or other device.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct Device from views::Device as d {
        id: String,
        name: String,
        kind: Option<String>,
        status: String,
        /// The unique device identifier (human-readable form when given).
        udi: Option<String>,
        manufacturer: Option<String>,
        model: Option<String>,
        serial_number: Option<String>,
        lot_number: Option<String>,
        manufactured: Option<FhirDate> => date,
        expires: Option<FhirDate> => date,
        source: Option<String>,
    }
}

mirror! {
    /// An order or referral.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct ServiceRequest from views::ServiceRequest as r {
        id: String,
        name: String,
        status: String,
        intent: Option<String>,
        categories: Vec<String>,
        authored: Option<FhirDate> => date,
        occurrence: Option<FhirDate> => date,
        requester: Option<String>,
        performer: Option<String>,
        reason: Option<String>,
        source: Option<String>,
    }
}

mirror! {
    /// An insurance coverage.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct Coverage from views::Coverage as c {
        id: String,
        payer: String,
        kind: Option<String>,
        status: String,
        plan: Option<String>,
        member_id: Option<String>,
        relationship: Option<String>,
        start: Option<FhirDate> => date,
        end: Option<FhirDate> => date,
        source: Option<String>,
    }
}

mirror! {
    /// An amount of money.
    #[derive(Debug, Clone, PartialEq, uniffi::Record)]
    pub struct Money from views::Money as m {
        value: f64,
        /// ISO 4217 ("USD"), when the server gave one.
        currency: Option<String> = m.currency.clone(),
        /// As shown: "125.00 USD".
        text: String = m.display(),
    }
}

/// One total of an explanation of benefit ("Submitted Amount", "Copay", ...).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct BillingTotal {
    pub category: String,
    pub amount: Money,
}

mirror! {
    /// The insurer's explanation of one claim: what was billed, what the plan paid, what is left to the patient.
    #[derive(Debug, Clone, PartialEq, uniffi::Record)]
    pub struct ExplanationOfBenefit from views::ExplanationOfBenefit as e {
        id: String,
        /// "institutional", "professional", "pharmacy", ...
        kind: Option<String>,
        status: String,
        /// "complete", "error", "partial", "queued".
        outcome: Option<String>,
        /// The start of the billable period, else when it was created.
        date: Option<FhirDate> => date,
        provider: Option<String>,
        insurer: Option<String>,
        /// What was billed.
        services: Vec<String>,
        totals: Vec<BillingTotal> = e
                    .totals
                    .into_iter()
                    .map(|t| BillingTotal {
                        category: t.category,
                        amount: t.amount.into(),
                    })
                    .collect(),
        /// What the insurer paid.
        payment: Option<Money> = e.payment.map(Money::from),
        /// What is left to the patient, when the insurer says so.
        patient_pays: Option<Money> = e.patient_pays.map(Money::from),
        /// The claim it answers (`claims()`).
        claim_id: Option<String>,
        source: Option<String>,
    }
}

mirror! {
    /// A claim a provider sent for the patient's care.
    #[derive(Debug, Clone, PartialEq, uniffi::Record)]
    pub struct Claim from views::Claim as c {
        id: String,
        /// "institutional", "professional", "pharmacy", ...
        kind: Option<String>,
        status: String,
        /// The start of the billable period, else when it was created.
        date: Option<FhirDate> => date,
        provider: Option<String>,
        insurer: Option<String>,
        services: Vec<String>,
        /// The amount claimed.
        total: Option<Money> = c.total.map(Money::from),
        source: Option<String>,
    }
}

mirror! {
    /// A medication handed out by a pharmacy.
    #[derive(Debug, Clone, PartialEq, uniffi::Record)]
    pub struct MedicationDispense from views::MedicationDispense as m {
        id: String,
        name: String,
        status: String,
        quantity: Option<String>,
        days_supply: Option<f64>,
        dosage: Option<String>,
        prepared: Option<FhirDate> => date,
        handed_over: Option<FhirDate> => date,
        prescription_id: Option<String>,
        source: Option<String>,
    }
}

mirror! {
    /// A medication the patient takes or took, as recorded (older servers).
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct MedicationStatement from views::MedicationStatement as m {
        id: String,
        name: String,
        status: String,
        dosage: Option<String>,
        taken: Option<FhirDate> => date,
        ended: Option<FhirDate> => date,
        asserted: Option<FhirDate> => date,
        information_source: Option<String>,
        reason: Option<String>,
        source: Option<String>,
    }
}

mirror! {
    /// One answered question.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct QuestionAnswer from views::QuestionAnswer as a {
        question: String,
        answer: String,
    }
}

mirror! {
    /// An answered questionnaire.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct QuestionnaireResponse from views::QuestionnaireResponse as q {
        id: String,
        title: String,
        status: String,
        authored: Option<FhirDate> => date,
        author: Option<String>,
        answers: Vec<QuestionAnswer> => all,
        source: Option<String>,
    }
}
