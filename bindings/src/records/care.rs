//! Care and coverage: care plans, goals, care teams, devices, orders, insurance, billing (claims and explanations of
//! benefit), medication history and answered questionnaires.

use chartlink_core::views;

use super::{FhirDate, all, date};

/// A care plan.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CarePlan {
    pub id: String,
    pub title: String,
    pub status: String,
    pub intent: Option<String>,
    pub categories: Vec<String>,
    pub description: Option<String>,
    pub start: Option<FhirDate>,
    pub end: Option<FhirDate>,
    pub activities: Vec<String>,
    pub addresses: Vec<String>,
    pub source: Option<String>,
}

impl From<views::CarePlan> for CarePlan {
    fn from(p: views::CarePlan) -> Self {
        Self {
            id: p.id,
            title: p.title,
            status: p.status,
            intent: p.intent,
            categories: p.categories,
            description: p.description,
            start: date(p.start),
            end: date(p.end),
            activities: p.activities,
            addresses: p.addresses,
            source: p.source,
        }
    }
}

/// A goal.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Goal {
    pub id: String,
    pub description: String,
    pub lifecycle_status: String,
    pub achievement: Option<String>,
    pub start: Option<FhirDate>,
    pub due: Option<FhirDate>,
    pub targets: Vec<String>,
    pub addresses: Vec<String>,
    pub source: Option<String>,
}

impl From<views::Goal> for Goal {
    fn from(g: views::Goal) -> Self {
        Self {
            id: g.id,
            description: g.description,
            lifecycle_status: g.lifecycle_status,
            achievement: g.achievement,
            start: date(g.start),
            due: date(g.due),
            targets: g.targets,
            addresses: g.addresses,
            source: g.source,
        }
    }
}

/// One member of a care team.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CareTeamMember {
    pub name: String,
    pub role: Option<String>,
}

impl From<views::CareTeamMember> for CareTeamMember {
    fn from(m: views::CareTeamMember) -> Self {
        Self {
            name: m.name,
            role: m.role,
        }
    }
}

/// A care team.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CareTeam {
    pub id: String,
    pub name: String,
    pub status: String,
    pub start: Option<FhirDate>,
    pub end: Option<FhirDate>,
    pub members: Vec<CareTeamMember>,
    pub managing_organizations: Vec<String>,
    pub source: Option<String>,
}

impl From<views::CareTeam> for CareTeam {
    fn from(t: views::CareTeam) -> Self {
        Self {
            id: t.id,
            name: t.name,
            status: t.status,
            start: date(t.start),
            end: date(t.end),
            members: all(t.members),
            managing_organizations: t.managing_organizations,
            source: t.source,
        }
    }
}

/// An implant or other device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Device {
    pub id: String,
    pub name: String,
    pub kind: Option<String>,
    pub status: String,
    /// The unique device identifier (human-readable form when given).
    pub udi: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial_number: Option<String>,
    pub lot_number: Option<String>,
    pub manufactured: Option<FhirDate>,
    pub expires: Option<FhirDate>,
    pub source: Option<String>,
}

impl From<views::Device> for Device {
    fn from(d: views::Device) -> Self {
        Self {
            id: d.id,
            name: d.name,
            kind: d.kind,
            status: d.status,
            udi: d.udi,
            manufacturer: d.manufacturer,
            model: d.model,
            serial_number: d.serial_number,
            lot_number: d.lot_number,
            manufactured: date(d.manufactured),
            expires: date(d.expires),
            source: d.source,
        }
    }
}

/// An order or referral.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ServiceRequest {
    pub id: String,
    pub name: String,
    pub status: String,
    pub intent: Option<String>,
    pub categories: Vec<String>,
    pub authored: Option<FhirDate>,
    pub occurrence: Option<FhirDate>,
    pub requester: Option<String>,
    pub performer: Option<String>,
    pub reason: Option<String>,
    pub source: Option<String>,
}

impl From<views::ServiceRequest> for ServiceRequest {
    fn from(r: views::ServiceRequest) -> Self {
        Self {
            id: r.id,
            name: r.name,
            status: r.status,
            intent: r.intent,
            categories: r.categories,
            authored: date(r.authored),
            occurrence: date(r.occurrence),
            requester: r.requester,
            performer: r.performer,
            reason: r.reason,
            source: r.source,
        }
    }
}

/// An insurance coverage.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Coverage {
    pub id: String,
    pub payer: String,
    pub kind: Option<String>,
    pub status: String,
    pub plan: Option<String>,
    pub member_id: Option<String>,
    pub relationship: Option<String>,
    pub start: Option<FhirDate>,
    pub end: Option<FhirDate>,
    pub source: Option<String>,
}

impl From<views::Coverage> for Coverage {
    fn from(c: views::Coverage) -> Self {
        Self {
            id: c.id,
            payer: c.payer,
            kind: c.kind,
            status: c.status,
            plan: c.plan,
            member_id: c.member_id,
            relationship: c.relationship,
            start: date(c.start),
            end: date(c.end),
            source: c.source,
        }
    }
}

/// An amount of money.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Money {
    pub value: f64,
    /// ISO 4217 ("USD"), when the server gave one.
    pub currency: Option<String>,
    /// As shown: "125.00 USD".
    pub text: String,
}

impl From<views::Money> for Money {
    fn from(m: views::Money) -> Self {
        Self {
            text: m.display(),
            value: m.value,
            currency: m.currency,
        }
    }
}

/// One total of an explanation of benefit ("Submitted Amount", "Copay", ...).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct BillingTotal {
    pub category: String,
    pub amount: Money,
}

/// The insurer's explanation of one claim: what was billed, what the plan paid, what is left to the patient.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ExplanationOfBenefit {
    pub id: String,
    /// "institutional", "professional", "pharmacy", ...
    pub kind: Option<String>,
    pub status: String,
    /// "complete", "error", "partial", "queued".
    pub outcome: Option<String>,
    /// The start of the billable period, else when it was created.
    pub date: Option<FhirDate>,
    pub provider: Option<String>,
    pub insurer: Option<String>,
    /// What was billed.
    pub services: Vec<String>,
    pub totals: Vec<BillingTotal>,
    /// What the insurer paid.
    pub payment: Option<Money>,
    /// What is left to the patient, when the insurer says so.
    pub patient_pays: Option<Money>,
    /// The claim it answers (`claims()`).
    pub claim_id: Option<String>,
    pub source: Option<String>,
}

impl From<views::ExplanationOfBenefit> for ExplanationOfBenefit {
    fn from(e: views::ExplanationOfBenefit) -> Self {
        Self {
            id: e.id,
            kind: e.kind,
            status: e.status,
            outcome: e.outcome,
            date: date(e.date),
            provider: e.provider,
            insurer: e.insurer,
            services: e.services,
            totals: e
                .totals
                .into_iter()
                .map(|t| BillingTotal {
                    category: t.category,
                    amount: t.amount.into(),
                })
                .collect(),
            payment: e.payment.map(Money::from),
            patient_pays: e.patient_pays.map(Money::from),
            claim_id: e.claim_id,
            source: e.source,
        }
    }
}

/// A claim a provider sent for the patient's care.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Claim {
    pub id: String,
    /// "institutional", "professional", "pharmacy", ...
    pub kind: Option<String>,
    pub status: String,
    /// The start of the billable period, else when it was created.
    pub date: Option<FhirDate>,
    pub provider: Option<String>,
    pub insurer: Option<String>,
    pub services: Vec<String>,
    /// The amount claimed.
    pub total: Option<Money>,
    pub source: Option<String>,
}

impl From<views::Claim> for Claim {
    fn from(c: views::Claim) -> Self {
        Self {
            id: c.id,
            kind: c.kind,
            status: c.status,
            date: date(c.date),
            provider: c.provider,
            insurer: c.insurer,
            services: c.services,
            total: c.total.map(Money::from),
            source: c.source,
        }
    }
}

/// A medication handed out by a pharmacy.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct MedicationDispense {
    pub id: String,
    pub name: String,
    pub status: String,
    pub quantity: Option<String>,
    pub days_supply: Option<f64>,
    pub dosage: Option<String>,
    pub prepared: Option<FhirDate>,
    pub handed_over: Option<FhirDate>,
    pub prescription_id: Option<String>,
    pub source: Option<String>,
}

impl From<views::MedicationDispense> for MedicationDispense {
    fn from(m: views::MedicationDispense) -> Self {
        Self {
            id: m.id,
            name: m.name,
            status: m.status,
            quantity: m.quantity,
            days_supply: m.days_supply,
            dosage: m.dosage,
            prepared: date(m.prepared),
            handed_over: date(m.handed_over),
            prescription_id: m.prescription_id,
            source: m.source,
        }
    }
}

/// A medication the patient takes or took, as recorded (older servers).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MedicationStatement {
    pub id: String,
    pub name: String,
    pub status: String,
    pub dosage: Option<String>,
    pub taken: Option<FhirDate>,
    pub ended: Option<FhirDate>,
    pub asserted: Option<FhirDate>,
    pub information_source: Option<String>,
    pub reason: Option<String>,
    pub source: Option<String>,
}

impl From<views::MedicationStatement> for MedicationStatement {
    fn from(m: views::MedicationStatement) -> Self {
        Self {
            id: m.id,
            name: m.name,
            status: m.status,
            dosage: m.dosage,
            taken: date(m.taken),
            ended: date(m.ended),
            asserted: date(m.asserted),
            information_source: m.information_source,
            reason: m.reason,
            source: m.source,
        }
    }
}

/// One answered question.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct QuestionAnswer {
    pub question: String,
    pub answer: String,
}

impl From<views::QuestionAnswer> for QuestionAnswer {
    fn from(a: views::QuestionAnswer) -> Self {
        Self {
            question: a.question,
            answer: a.answer,
        }
    }
}

/// An answered questionnaire.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct QuestionnaireResponse {
    pub id: String,
    pub title: String,
    pub status: String,
    pub authored: Option<FhirDate>,
    pub author: Option<String>,
    pub answers: Vec<QuestionAnswer>,
    pub source: Option<String>,
}

impl From<views::QuestionnaireResponse> for QuestionnaireResponse {
    fn from(q: views::QuestionnaireResponse) -> Self {
        Self {
            id: q.id,
            title: q.title,
            status: q.status,
            authored: date(q.authored),
            author: q.author,
            answers: all(q.answers),
            source: q.source,
        }
    }
}
