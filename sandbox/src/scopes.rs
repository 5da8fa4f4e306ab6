//! SMART scopes in v1 (`patient/Observation.read`) and v2 (`patient/Observation.rs?category=…`) syntax: parsing,
//! the access decision for a resource, and the data categories the consent page lets a patient untick.

use std::fmt;

/// The system of the Observation category codes.
pub const OBSERVATION_CATEGORY_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/observation-category";

/// The Observation categories as the consent page groups them when an app asks for Observations in v2 syntax:
/// each line is one tickable item granting every category code in it. "vital-sign" is Synthea's spelling;
/// "sdoh" and "functional-status" are US Core's additions to the code system.
pub const CONSENT_OBSERVATION_GROUPS: [(&str, &[&str]); 4] = [
    ("Lab results", &["laboratory"]),
    ("Vital signs", &["vital-signs", "vital-sign"]),
    (
        "Social history (such as smoking status)",
        &["social-history", "sdoh"],
    ),
    (
        "Other observations (surveys, exams, imaging and more)",
        &[
            "imaging",
            "procedure",
            "survey",
            "exam",
            "therapy",
            "activity",
            "functional-status",
        ],
    ),
];

/// Resource types the sandbox's patient compartment serves, in the order the consent page lists them.
pub const PATIENT_TYPES: [&str; 25] = [
    "Patient",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationDispense",
    "MedicationStatement",
    "Immunization",
    "Condition",
    "FamilyMemberHistory",
    "Observation",
    "DiagnosticReport",
    "Procedure",
    "ImagingStudy",
    "Encounter",
    "DocumentReference",
    "Binary",
    "Appointment",
    "CarePlan",
    "Goal",
    "CareTeam",
    "Device",
    "ServiceRequest",
    "Coverage",
    "ExplanationOfBenefit",
    "Claim",
    "QuestionnaireResponse",
];

/// A scope the sandbox could not understand.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unsupported scope {0:?}")]
pub struct ScopeError(pub String);

/// What an interaction needs from a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    Read,
    Search,
}

/// One `context/Type.permissions[?category=…]` scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceScope {
    pub context: String,
    /// `None` for `*`.
    pub resource_type: Option<String>,
    pub read: bool,
    pub search: bool,
    pub write: bool,
    /// v2 category filters as (system, code); an empty list means every category.
    pub categories: Vec<(Option<String>, String)>,
    pub v2: bool,
    text: String,
}

impl ResourceScope {
    /// Parses `patient/Observation.rs?category=http://…|laboratory` or `patient/*.read`.
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        let err = || ScopeError(s.to_owned());
        let (context, rest) = s.split_once('/').ok_or_else(err)?;
        if !matches!(context, "patient" | "user" | "system") {
            return Err(err());
        }
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let (ty, perms) = path.rsplit_once('.').ok_or_else(err)?;
        let resource_type = match ty {
            "*" => None,
            t if !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric()) => {
                Some(t.to_owned())
            }
            _ => return Err(err()),
        };
        let (read, search, write, v2) = match perms {
            "read" => (true, true, false, false),
            "write" => (false, false, true, false),
            "*" => (true, true, true, false),
            p if is_v2_permission(p) => (
                p.contains('r'),
                p.contains('s'),
                p.contains(['c', 'u', 'd']),
                true,
            ),
            _ => return Err(err()),
        };
        let mut categories = Vec::new();
        if let Some(q) = query {
            if !v2 {
                return Err(err());
            }
            for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
                if k != "category" || v.is_empty() {
                    return Err(err());
                }
                categories.push(match v.split_once('|') {
                    Some((sys, code)) => (Some(sys.to_owned()), code.to_owned()),
                    None => (None, v.into_owned()),
                });
            }
        }
        Ok(Self {
            context: context.to_owned(),
            resource_type,
            read,
            search,
            write,
            categories,
            v2,
            text: s.to_owned(),
        })
    }

    fn covers_type(&self, ty: &str) -> bool {
        self.resource_type.as_deref().is_none_or(|t| t == ty)
    }

    fn allows_interaction(&self, interaction: Interaction) -> bool {
        match interaction {
            Interaction::Read => self.read,
            Interaction::Search => self.search,
        }
    }

    fn covers_category(&self, system: Option<&str>, code: &str) -> bool {
        self.categories.is_empty()
            || self.categories.iter().any(|(s, c)| {
                c == code && (s.is_none() || system.is_none() || s.as_deref() == system)
            })
    }
}

impl fmt::Display for ResourceScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn is_v2_permission(p: &str) -> bool {
    // v2 permissions are a non-empty subsequence of "cruds", in that order.
    let mut order = "cruds".chars();
    !p.is_empty() && p.chars().all(|c| order.by_ref().any(|o| o == c))
}

/// A parsed scope string: the launch and identity scopes plus the resource scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes {
    pub openid: bool,
    pub fhir_user: bool,
    pub profile: bool,
    pub launch_patient: bool,
    pub offline_access: bool,
    pub online_access: bool,
    pub resources: Vec<ResourceScope>,
}

impl Scopes {
    /// Parses a space-separated scope string; an unknown scope is an error (`invalid_scope`).
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        let mut out = Self::default();
        for token in s.split_ascii_whitespace() {
            match token {
                "openid" => out.openid = true,
                "fhirUser" => out.fhir_user = true,
                "profile" => out.profile = true,
                "launch/patient" => out.launch_patient = true,
                "offline_access" => out.offline_access = true,
                "online_access" => out.online_access = true,
                // `launch` (EHR launch) has no meaning in a standalone launch; it is accepted and ignored.
                "launch" => {}
                t => {
                    let scope = ResourceScope::parse(t)?;
                    if !out.resources.contains(&scope) {
                        out.resources.push(scope);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether any resource scope lets `interaction` reach `ty` at all.
    pub fn allows_type(&self, ty: &str, interaction: Interaction) -> bool {
        self.resources
            .iter()
            .any(|s| s.covers_type(ty) && s.allows_interaction(interaction))
    }

    /// Whether a resource of `ty` carrying `categories` may be returned.
    pub fn allows(
        &self,
        ty: &str,
        interaction: Interaction,
        categories: &[(Option<String>, String)],
    ) -> bool {
        self.resources.iter().any(|s| {
            s.covers_type(ty)
                && s.allows_interaction(interaction)
                && (s.categories.is_empty()
                    || categories
                        .iter()
                        .any(|(sys, code)| s.covers_category(sys.as_deref(), code)))
        })
    }

    /// Whether a search restricted to `category` (as given in the query) stays inside the grant.
    pub fn allows_search_category(&self, ty: &str, system: Option<&str>, code: &str) -> bool {
        self.resources.iter().any(|s| {
            s.covers_type(ty)
                && s.allows_interaction(Interaction::Search)
                && s.covers_category(system, code)
        })
    }

    /// The categories of `ty` a search may return, as (system, code): `None` when a scope covers every category.
    pub fn search_categories(&self, ty: &str) -> Option<Vec<(Option<String>, String)>> {
        let matching: Vec<&ResourceScope> = self
            .resources
            .iter()
            .filter(|s| s.covers_type(ty) && s.search)
            .collect();
        if matching.is_empty() || matching.iter().any(|s| s.categories.is_empty()) {
            return None;
        }
        Some(
            matching
                .iter()
                .flat_map(|s| s.categories.iter().cloned())
                .collect(),
        )
    }

    /// Whether any v2 scope is present (the server then answers with v2 syntax).
    pub fn uses_v2(&self) -> bool {
        self.resources.iter().any(|s| s.v2)
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        let flags = [
            (self.launch_patient, "launch/patient"),
            (self.openid, "openid"),
            (self.fhir_user, "fhirUser"),
            (self.profile, "profile"),
            (self.offline_access, "offline_access"),
            (self.online_access, "online_access"),
        ];
        parts.extend(
            flags
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, s)| (*s).to_owned()),
        );
        parts.extend(self.resources.iter().map(ToString::to_string));
        f.write_str(&parts.join(" "))
    }
}

/// One tickable line of the consent page: what the patient reads and the scope(s) it grants (space-separated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentItem {
    pub label: String,
    pub scope: String,
}

/// The data categories of a request, as the consent page shows them. Wildcards are spelled out per type and v2
/// Observation scopes per category, so that a patient can untick "Vital signs" but share "Lab results".
pub fn consent_items(requested: &Scopes) -> Vec<ConsentItem> {
    consent_items_with(requested, true)
}

/// [`consent_items`]; `granular` false for a server that does not know category-restricted scopes (see
/// [`crate::Quirks::drop_granular_scopes`]): whole-type Observation scopes stay one item.
pub fn consent_items_with(requested: &Scopes, granular: bool) -> Vec<ConsentItem> {
    let mut items: Vec<ConsentItem> = Vec::new();
    // Scopes with the same label are one item (an app asking for "vital-signs" and "vital-sign" separately
    // still sees one "Vital signs" line); an item may grant several scopes (space-separated).
    let mut push = |label: String, scope: String| {
        if items.iter().any(|i| i.scope.split(' ').any(|s| s == scope)) {
            return;
        }
        match items.iter_mut().find(|i| i.label == label) {
            Some(item) => {
                item.scope.push(' ');
                item.scope.push_str(&scope);
            }
            None => items.push(ConsentItem { label, scope }),
        }
    };
    for s in &requested.resources {
        let perms = s.text.rsplit_once('.').map(|(_, p)| p).unwrap_or("read");
        let perms = perms.split('?').next().unwrap_or(perms);
        let types: Vec<&str> = match &s.resource_type {
            Some(t) => vec![t.as_str()],
            None => PATIENT_TYPES.to_vec(),
        };
        for ty in types {
            if ty == "Observation" && s.v2 && s.categories.is_empty() && granular {
                for (label, codes) in CONSENT_OBSERVATION_GROUPS {
                    let scopes: Vec<String> = codes
                        .iter()
                        .map(|code| {
                            format!(
                                "{}/Observation.{perms}?category={OBSERVATION_CATEGORY_SYSTEM}|{code}",
                                s.context
                            )
                        })
                        .collect();
                    push(label.to_owned(), scopes.join(" "));
                }
            } else if s.resource_type.is_none() {
                push(
                    type_label(ty).to_owned(),
                    format!("{}/{ty}.{perms}", s.context),
                );
            } else {
                let label = match s.categories.first() {
                    Some((_, code)) => category_label(code),
                    None => type_label(ty).to_owned(),
                };
                push(label, s.text.clone());
            }
        }
    }
    items
}

fn category_label(code: &str) -> String {
    CONSENT_OBSERVATION_GROUPS
        .iter()
        .find(|(_, codes)| codes.contains(&code))
        .map(|(label, _)| (*label).to_owned())
        .unwrap_or_else(|| format!("Records in category {code}"))
}

/// What the portal calls each resource type.
pub fn type_label(ty: &str) -> &str {
    match ty {
        "Patient" => "Your demographics (name, birth date, contact details)",
        "AllergyIntolerance" => "Allergies",
        "MedicationRequest" => "Medications",
        "Immunization" => "Immunizations",
        "Condition" => "Health issues (problem list)",
        "Observation" => "Test results, vital signs and social history",
        "DiagnosticReport" => "Test reports",
        "Procedure" => "Procedures",
        "Encounter" => "Visits",
        "DocumentReference" => "Clinical notes and after-visit summaries",
        "Binary" => "Contents of documents",
        "Appointment" => "Appointments",
        "MedicationDispense" => "Medications dispensed",
        "MedicationStatement" => "Medications you take (as recorded)",
        "CarePlan" => "Care plans",
        "Goal" => "Goals",
        "CareTeam" => "Care team",
        "Device" => "Implants and devices",
        "ServiceRequest" => "Orders and referrals",
        "Coverage" => "Insurance",
        "ExplanationOfBenefit" => {
            "What your insurer paid and what you owe (explanations of benefit)"
        }
        "Claim" => "Bills sent to your insurer (claims)",
        "ImagingStudy" => "Imaging studies (X-rays, scans)",
        "FamilyMemberHistory" => "Family history",
        "QuestionnaireResponse" => "Questionnaires you answered",
        // One line for the four: what the records point to, so the app can name them.
        "Practitioner" | "Organization" | "Location" | "Medication" => {
            "Names of your care providers, places of care and medicines"
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> Vec<(Option<String>, String)> {
        vec![(
            Some(OBSERVATION_CATEGORY_SYSTEM.into()),
            "laboratory".into(),
        )]
    }

    #[test]
    fn v1_read_allows_read_and_search() {
        let s = Scopes::parse("patient/Observation.read").expect("parse");
        assert!(s.allows("Observation", Interaction::Search, &lab()));
        assert!(s.allows("Observation", Interaction::Read, &[]));
        assert!(!s.allows("Condition", Interaction::Read, &[]));
        assert!(!s.uses_v2());
    }

    #[test]
    fn v2_permissions_are_checked_per_letter() {
        let s = Scopes::parse("patient/Observation.s").expect("parse");
        assert!(s.allows("Observation", Interaction::Search, &lab()));
        assert!(!s.allows("Observation", Interaction::Read, &lab()));
        assert!(
            Scopes::parse("patient/Observation.sr").is_err(),
            "letters must keep the cruds order"
        );
        assert!(Scopes::parse("patient/Observation.x").is_err());
    }

    #[test]
    fn v2_category_filter_limits_categories() {
        let q = format!("patient/Observation.rs?category={OBSERVATION_CATEGORY_SYSTEM}|laboratory");
        let s = Scopes::parse(&q).expect("parse");
        assert!(s.allows("Observation", Interaction::Read, &lab()));
        let vitals = vec![(
            Some(OBSERVATION_CATEGORY_SYSTEM.to_owned()),
            "vital-signs".to_owned(),
        )];
        assert!(!s.allows("Observation", Interaction::Read, &vitals));
        assert!(s.allows_search_category("Observation", None, "laboratory"));
        assert!(!s.allows_search_category("Observation", None, "vital-signs"));
    }

    #[test]
    fn wildcard_type_and_identity_scopes() {
        let s = Scopes::parse("launch/patient openid fhirUser offline_access patient/*.rs")
            .expect("parse");
        assert!(s.openid && s.fhir_user && s.offline_access && s.launch_patient);
        assert!(s.allows("Immunization", Interaction::Read, &[]));
        assert_eq!(
            s.to_string(),
            "launch/patient openid fhirUser offline_access patient/*.rs"
        );
    }

    #[test]
    fn garbage_scopes_are_refused() {
        for bad in [
            "patient/Observation",
            "doctor/Observation.read",
            "patient/Obs-ervation.read",
            "patient/Observation.read?category=x",
        ] {
            assert!(Scopes::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn consent_expands_v2_observations_by_category() {
        let s =
            Scopes::parse("patient/Observation.rs patient/AllergyIntolerance.rs").expect("parse");
        let items = consent_items(&s);
        let labels: Vec<&str> = items.iter().map(|i| i.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "Lab results",
                "Vital signs",
                "Social history (such as smoking status)",
                "Other observations (surveys, exams, imaging and more)",
                "Allergies"
            ]
        );
        let other = Scopes::parse(&items[3].scope).expect("reparse");
        assert!(other.allows_search_category("Observation", None, "survey"));
        assert!(!other.allows_search_category("Observation", None, "laboratory"));
        assert!(
            Scopes::parse(&items[0].scope)
                .expect("reparse")
                .allows_search_category("Observation", None, "laboratory")
        );
    }

    #[test]
    fn consent_spells_out_wildcards_in_the_request_syntax() {
        let s = Scopes::parse("patient/*.read").expect("parse");
        let items = consent_items(&s);
        assert_eq!(items.len(), PATIENT_TYPES.len());
        assert!(items.iter().all(|i| i.scope.ends_with(".read")));
    }

    #[test]
    fn consent_groups_category_spellings_into_one_item() {
        // The SDK asks per category, Synthea's "vital-sign" beside "vital-signs": one "Vital signs" line.
        let q = |code: &str| {
            format!("patient/Observation.rs?category={OBSERVATION_CATEGORY_SYSTEM}|{code}")
        };
        let request = [
            q("vital-signs"),
            q("vital-sign"),
            q("survey"),
            q("functional-status"),
            "patient/Goal.rs".to_owned(),
        ]
        .join(" ");
        let items = consent_items(&Scopes::parse(&request).expect("parse"));
        let labels: Vec<&str> = items.iter().map(|i| i.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "Vital signs",
                "Other observations (surveys, exams, imaging and more)",
                "Goals"
            ]
        );
        let vitals = Scopes::parse(&items[0].scope).expect("reparse");
        assert!(vitals.allows_search_category("Observation", None, "vital-sign"));
        assert!(vitals.allows_search_category("Observation", None, "vital-signs"));
        let unfiltered = consent_items(&Scopes::parse("patient/Observation.rs").expect("parse"));
        let other = Scopes::parse(&unfiltered[3].scope).expect("reparse");
        assert!(other.allows_search_category("Observation", None, "functional-status"));
        let social = Scopes::parse(&unfiltered[2].scope).expect("reparse");
        assert!(social.allows_search_category("Observation", None, "sdoh"));
    }
}
