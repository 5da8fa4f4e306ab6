//! What the patient was billed: the claims a provider sent (Claim) and the insurer's answer to each
//! (ExplanationOfBenefit: what was billed, what the plan paid, what is left to the patient). The portal's billing
//! questions ("what was this charge?", "what do I owe?") are answered from these.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;
use std::fmt::Write as _;

/// An amount of money (FHIR Money).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Money {
    pub value: f64,
    /// The ISO 4217 code ("USD"), when the server gave one.
    pub currency: Option<String>,
}

impl Money {
    /// "125.00 USD" (money is shown to the cent; a currency-less amount is the number alone).
    pub fn display(&self) -> String {
        match &self.currency {
            Some(c) => format!("{:.2} {c}", self.value),
            None => format!("{:.2}", self.value),
        }
    }
}

/// One of the totals of an explanation of benefit: "Submitted Amount", "Benefit Amount", "Copay", ...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillingTotal {
    /// The category's name (its text, else a coding's display, else its code).
    pub category: String,
    pub amount: Money,
}

/// The insurer's explanation of one claim (ExplanationOfBenefit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplanationOfBenefit {
    pub id: String,
    pub source: Option<String>,
    /// The claim type ("institutional", "professional", "pharmacy", ...).
    pub kind: Option<String>,
    /// "active", "cancelled", ...
    pub status: String,
    /// How processing went ("complete", "error", "partial", "queued").
    pub outcome: Option<String>,
    /// The start of the billable period, else when it was created.
    pub date: Option<FhirDate>,
    /// Who provided the care, by the name the server gave (or the read path resolved).
    pub provider: Option<String>,
    /// Who pays: the insurer, else the coverage named.
    pub insurer: Option<String>,
    /// What was billed: the items' services and products, without duplicates.
    pub services: Vec<String>,
    /// The totals as the insurer adjudicated them.
    pub totals: Vec<BillingTotal>,
    /// What the insurer paid.
    pub payment: Option<Money>,
    /// What is left to the patient, when the insurer says so (a total in a patient-share category: "paid by
    /// patient", "member liability", or copay and deductible together).
    pub patient_pays: Option<Money>,
    /// The Claim it answers.
    pub claim_id: Option<String>,
}

/// The total categories that are the patient's share (CARIN Blue Button and the FHIR adjudication codes).
const PATIENT_SHARE: [&str; 3] = ["paidbypatient", "memberliability", "patientpay"];
/// Parts of the patient's share, added up when no total gives it whole.
const PATIENT_PARTS: [&str; 3] = ["copay", "deductible", "coinsurance"];

/// An explanation of benefit from an ExplanationOfBenefit.
pub fn explanation_of_benefit(r: &Value) -> Option<ExplanationOfBenefit> {
    let id = resource_id(r, "ExplanationOfBenefit")?;
    let totals: Vec<(Option<String>, BillingTotal)> = list(&r["total"])
        .iter()
        .filter_map(|t| {
            let amount = money(&t["amount"])?;
            let code = concept_code(&t["category"]);
            let category = concept_label(&t["category"])
                .or_else(|| code.clone())
                .unwrap_or_else(|| "Total".into());
            Some((code, BillingTotal { category, amount }))
        })
        .collect();
    let share = |codes: &[&str]| -> Vec<&Money> {
        totals
            .iter()
            .filter(|(c, _)| c.as_deref().is_some_and(|c| codes.contains(&c)))
            .map(|(_, t)| &t.amount)
            .collect()
    };
    let patient_pays = share(&PATIENT_SHARE)
        .first()
        .map(|m| (*m).clone())
        .or_else(|| sum(&share(&PATIENT_PARTS)));
    Some(ExplanationOfBenefit {
        id,
        source: None,
        kind: claim_type(r),
        status: status(r),
        outcome: string(&r["outcome"]),
        date: billing_date(r),
        provider: display(&r["provider"]),
        insurer: display(&r["insurer"]).or_else(|| insurance(r)),
        services: services(r),
        totals: totals.into_iter().map(|(_, t)| t).collect(),
        payment: money(&r["payment"]["amount"]),
        patient_pays,
        claim_id: reference_to(&r["claim"], "Claim"),
    })
}

super::view!(
    ExplanationOfBenefit,
    ["ExplanationOfBenefit"],
    explanation_of_benefit,
    date
);

/// A claim a provider sent for the patient's care (Claim).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub id: String,
    pub source: Option<String>,
    /// "institutional", "professional", "pharmacy", ...
    pub kind: Option<String>,
    /// "active", "cancelled", "draft", "entered-in-error".
    pub status: String,
    /// The start of the billable period, else when it was created.
    pub date: Option<FhirDate>,
    /// Who billed, by name.
    pub provider: Option<String>,
    /// The insurer, else the coverage the claim is made to.
    pub insurer: Option<String>,
    /// What was billed: the items' services and products, without duplicates.
    pub services: Vec<String>,
    /// The amount claimed.
    pub total: Option<Money>,
}

/// A claim from a Claim.
pub fn claim(r: &Value) -> Option<Claim> {
    let id = resource_id(r, "Claim")?;
    Some(Claim {
        id,
        source: None,
        kind: claim_type(r),
        status: status(r),
        date: billing_date(r),
        provider: display(&r["provider"]),
        insurer: display(&r["insurer"]).or_else(|| insurance(r)),
        services: services(r),
        total: money(&r["total"]),
    })
}

super::view!(Claim, ["Claim"], claim, date);

/// A Money: a finite value (a number, or a number as text), with its currency.
fn money(v: &Value) -> Option<Money> {
    let number = &v["value"];
    let value = number
        .as_f64()
        .or_else(|| number.as_str()?.trim().parse().ok())
        .filter(|x: &f64| x.is_finite())?;
    Some(Money {
        value,
        currency: string(&v["currency"]),
    })
}

/// The sum of amounts in one currency (`None` for none, or for mixed currencies).
fn sum(amounts: &[&Money]) -> Option<Money> {
    let first = amounts.first()?;
    amounts
        .iter()
        .all(|m| m.currency == first.currency)
        .then(|| Money {
            value: amounts.iter().map(|m| m.value).sum(),
            currency: first.currency.clone(),
        })
}

/// The claim type: its text or display, else its code ("institutional" is clearer than the code system's URL).
fn claim_type(r: &Value) -> Option<String> {
    concept_label(&r["type"]).or_else(|| concept_code(&r["type"]))
}

fn billing_date(r: &Value) -> Option<FhirDate> {
    first_date(&[&r["billablePeriod"]["start"], &r["created"]])
}

/// The coverage a claim is made to, by the name the server gave: the focal one first.
fn insurance(r: &Value) -> Option<String> {
    let insurance = list(&r["insurance"]);
    insurance
        .iter()
        .filter(|i| i["focal"] == true)
        .chain(insurance)
        .find_map(|i| display(&i["coverage"]))
}

/// The names of the billed items' services (productOrService; STU3's `service`), without duplicates.
fn services(r: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in list(&r["item"]) {
        let name =
            concept_name(&item["productOrService"]).or_else(|| concept_name(&item["service"]));
        if let Some(name) = name.filter(|n| !out.contains(n)) {
            out.push(name);
        }
    }
    out
}

impl Line for ExplanationOfBenefit {
    fn line(&self) -> String {
        let totals: Vec<String> = self
            .totals
            .iter()
            .map(|t| format!("{} {}", t.category, t.amount.display()))
            .collect();
        let mut out = format!(
            "{:<10} {} [{}] {} / {}: {}; {}; paid {}",
            day(self.date.as_ref()),
            opt(&self.kind),
            self.status,
            opt(&self.provider),
            opt(&self.insurer),
            self.services.join(", "),
            totals.join(", "),
            money_text(&self.payment)
        );
        if let Some(p) = &self.patient_pays {
            let _ = write!(out, "; you pay {}", p.display());
        }
        out
    }
}

impl Line for Claim {
    fn line(&self) -> String {
        format!(
            "{:<10} {} [{}] {}: {}; {}",
            day(self.date.as_ref()),
            opt(&self.kind),
            self.status,
            opt(&self.provider),
            self.services.join(", "),
            money_text(&self.total)
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::views::test_support::*;
    use serde_json::json;

    /// As Synthea writes them (references resolved by the loader; the read path fills provider names).
    #[test]
    fn an_explanation_of_benefit() {
        let r = json!({"resourceType": "ExplanationOfBenefit", "id": "eob", "status": "active",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "institutional"}]},
            "billablePeriod": {"start": "2019-05-03T10:00:00Z", "end": "2020-05-03T10:00:00Z"},
            "created": "2019-05-03T10:30:00Z", "insurer": {"display": "Medicaid"},
            "provider": {"reference": "Practitioner/1", "display": "Dr. Anna Lee"},
            "claim": {"reference": "Claim/c1"}, "outcome": "complete",
            "item": [{"productOrService": {"text": "Encounter for check up (procedure)"}},
                {"productOrService": {"coding": [{"code": "185349003", "display": "Encounter for check up (procedure)"}]}},
                {"productOrService": {"text": "Influenza vaccine"}}],
            "total": [{"category": {"coding": [{"code": "submitted", "display": "Submitted Amount"}], "text": "Submitted Amount"},
                "amount": {"value": 125, "currency": "USD"}},
                {"category": {"coding": [{"code": "copay"}]}, "amount": {"value": "20.5", "currency": "USD"}},
                {"category": {"coding": [{"code": "deductible"}]}, "amount": {"value": 10, "currency": "USD"}}],
            "payment": {"amount": {"value": 94.5, "currency": "USD"}}});
        let e = explanation_of_benefit(&r).unwrap();
        assert_eq!(
            (e.kind.as_deref(), e.outcome.as_deref(), e.date),
            (
                Some("institutional"),
                Some("complete"),
                Some(d("2019-05-03T10:00:00Z"))
            )
        );
        assert_eq!(
            (
                e.provider.as_deref(),
                e.insurer.as_deref(),
                e.claim_id.as_deref()
            ),
            (Some("Dr. Anna Lee"), Some("Medicaid"), Some("c1"))
        );
        assert_eq!(
            e.services,
            ["Encounter for check up (procedure)", "Influenza vaccine"]
        );
        let totals: Vec<(&str, f64)> = e
            .totals
            .iter()
            .map(|t| (t.category.as_str(), t.amount.value))
            .collect();
        assert_eq!(
            totals,
            [
                ("Submitted Amount", 125.0),
                ("copay", 20.5),
                ("deductible", 10.0)
            ]
        );
        assert_eq!(
            e.payment.as_ref().map(Money::display).as_deref(),
            Some("94.50 USD")
        );
        // Copay and deductible together, as no total gives the patient's share whole.
        assert_eq!(e.patient_pays.unwrap().display(), "30.50 USD");
        // A patient-share total wins over the parts.
        let mut given = r.clone();
        given["total"][2] =
            json!({"category": {"coding": [{"code": "paidbypatient"}]}, "amount": {"value": 42}});
        assert_eq!(
            explanation_of_benefit(&given).unwrap().patient_pays,
            Some(Money {
                value: 42.0,
                currency: None
            })
        );
    }

    #[test]
    fn a_claim() {
        let r = json!({"resourceType": "Claim", "id": "c1", "status": "active",
            "type": {"coding": [{"code": "pharmacy"}]}, "created": "2019-05-03",
            "provider": {"display": "Good Health Clinic"},
            "insurance": [{"coverage": {"display": "other"}}, {"focal": true, "coverage": {"display": "Medicaid"}}],
            "item": [{"productOrService": {"text": "Naproxen sodium 220 MG Oral Tablet"}}],
            "total": {"value": 255, "currency": "USD"}});
        let c = claim(&r).unwrap();
        assert_eq!(
            (
                c.kind.as_deref(),
                c.date,
                c.provider.as_deref(),
                c.insurer.as_deref()
            ),
            (
                Some("pharmacy"),
                Some(d("2019-05-03")),
                Some("Good Health Clinic"),
                Some("Medicaid")
            )
        );
        assert_eq!(c.services, ["Naproxen sodium 220 MG Oral Tablet"]);
        assert_eq!(c.total.unwrap().display(), "255.00 USD");
    }

    /// Wrong shapes, missing parts and impossible amounts leave fields empty; nothing panics.
    #[test]
    fn hostile_billing_records() {
        for total in [
            json!({"value": "NaN"}),
            json!({"value": "1e400"}),
            json!({"value": [1]}),
            json!("125"),
            json!(null),
        ] {
            let r = json!({"resourceType": "Claim", "id": "c", "total": total, "item": 5,
                "insurance": [{"focal": "yes", "coverage": 3}], "type": [], "billablePeriod": "2019"});
            let c = claim(&r).unwrap();
            assert_eq!(
                (c.total, c.kind, c.date, c.insurer),
                (None, None, None, None)
            );
        }
        let r = json!({"resourceType": "ExplanationOfBenefit", "id": "e",
            "total": [{"amount": {"value": 5}}, {"category": "x"}, 7, {"category": {"coding": [{"code": "copay"}]},
                "amount": {"value": 1, "currency": "USD"}}, {"category": {"coding": [{"code": "deductible"}]},
                "amount": {"value": 1, "currency": "EUR"}}],
            "payment": {"amount": "12"}, "item": [{"productOrService": {"coding": 1}}, null]});
        let e = explanation_of_benefit(&r).unwrap();
        assert_eq!(e.totals.len(), 3);
        assert_eq!(e.totals[0].category, "Total");
        // Mixed currencies are not added up.
        assert_eq!((e.payment, e.patient_pays), (None, None));
        assert!(e.services.is_empty());
        assert!(claim(&json!({"resourceType": "ExplanationOfBenefit", "id": "e"})).is_none());
        assert!(explanation_of_benefit(&json!({"resourceType": "Claim", "id": "c"})).is_none());
    }
}
