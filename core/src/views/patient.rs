//! Who the record is about (Patient).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;

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

super::view!(
    Demographics,
    ["Patient"],
    demographics,
    birth_date,
    AsStored
);

impl Line for Demographics {
    fn line(&self) -> String {
        format!(
            "{} (born {}, {}) MRN {}",
            self.name,
            day(self.birth_date.as_ref()),
            self.gender.as_deref().unwrap_or("-"),
            opt(&self.mrn)
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
}
