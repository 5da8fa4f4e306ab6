//! Orders and referrals (ServiceRequest): a lab test ordered, a referral to a specialist, imaging requested.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;

/// An order or referral.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRequest {
    pub id: String,
    pub source: Option<String>,
    /// What is requested (its code), else "Order".
    pub name: String,
    /// "active", "completed", "revoked", ...
    pub status: String,
    /// "order", "plan", "proposal", ...
    pub intent: Option<String>,
    pub categories: Vec<String>,
    pub authored: Option<FhirDate>,
    /// When it is to happen: occurrenceDateTime, else occurrencePeriod.start.
    pub occurrence: Option<FhirDate>,
    /// Who asked, by the name the server gave.
    pub requester: Option<String>,
    /// Who is asked to do it.
    pub performer: Option<String>,
    pub reason: Option<String>,
}

/// An order from a ServiceRequest.
pub fn service_request(r: &Value) -> Option<ServiceRequest> {
    let id = resource_id(r, "ServiceRequest")?;
    Some(ServiceRequest {
        id,
        source: None,
        name: concept_name(&r["code"]).unwrap_or_else(|| "Order".into()),
        status: status(r),
        intent: string(&r["intent"]),
        categories: concept_names(&r["category"]),
        authored: date(&r["authoredOn"]),
        occurrence: first_date(&[&r["occurrenceDateTime"], &r["occurrencePeriod"]["start"]]),
        requester: display(&r["requester"]),
        performer: list(&r["performer"]).iter().find_map(display),
        reason: concept_names(&r["reasonCode"])
            .into_iter()
            .next()
            .or_else(|| list(&r["reasonReference"]).iter().find_map(display)),
    })
}

super::view!(
    ServiceRequest,
    ["ServiceRequest"],
    service_request,
    authored
);

impl Line for ServiceRequest {
    fn line(&self) -> String {
        dated(
            self.authored.as_ref(),
            &self.name,
            &self.status,
            opt(&self.requester),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::views::test_support::*;
    use serde_json::json;

    #[test]
    fn a_referral() {
        let r = json!({"resourceType": "ServiceRequest", "id": "sr", "status": "active", "intent": "order",
            "category": [{"text": "Referral"}], "code": {"text": "Cardiology consult"}, "authoredOn": "2024-02-01",
            "requester": {"display": "Dr. Lee"}, "performer": [{"display": "Heart Center"}],
            "reasonCode": [{"text": "Palpitations"}]});
        let s = service_request(&r).unwrap();
        assert_eq!(
            (s.name.as_str(), s.categories.clone()),
            ("Cardiology consult", vec!["Referral".to_owned()])
        );
        assert_eq!(
            (s.requester.as_deref(), s.performer.as_deref()),
            (Some("Dr. Lee"), Some("Heart Center"))
        );
        assert_eq!(
            (s.authored, s.reason.as_deref()),
            (Some(d("2024-02-01")), Some("Palpitations"))
        );
    }
}
