use super::query::tags;
use super::*;
use crate::account::AccountStatus;
use crate::discovery::ServerInfo;
use crate::kinds::OBSERVATION_CATEGORIES;
use crate::scopes::GrantedScope;
use serde_json::json;

fn account(scope: &str) -> LinkedAccount {
    LinkedAccount {
        id: "a1".into(),
        server: ServerInfo::for_tests("https://ehr.example/fhir"),
        client_id: "c".into(),
        redirect_uri: "app://cb".into(),
        patient_id: "p 1".into(),
        fhir_user: None,
        user_subject: None,
        granted: GrantedScope::parse(scope),
        linked_at_ms: 0,
        status: AccountStatus::Active,
        device_client_id: None,
        consent: Vec::new(),
        can_renew: true,
        user_name: None,
        linked_scope: None,
    }
}

#[test]
fn the_plan_follows_the_grant() {
    let a = account(
        "launch/patient patient/Patient.rs patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory patient/Condition.rs",
    );
    let keys: Vec<String> = plan(
        &a,
        &ServerSupport::default(),
        50,
        &Learned::default(),
        false,
    )
    .into_iter()
    .map(|q| q.key)
    .collect();
    assert_eq!(keys, ["Patient", "Condition", "Observation:laboratory"]);
    let q = plan(
        &a,
        &ServerSupport::default(),
        50,
        &Learned::default(),
        false,
    );
    assert_eq!(q[1].path, "Condition?patient=p+1&_count=50");
    assert_eq!(
        q[2].path,
        "Observation?patient=p+1&_count=50&category=laboratory"
    );
}

#[test]
fn every_observation_in_one_search_unless_the_server_wants_a_category_and_unsupported_types_are_skipped()
 {
    let a = account("patient/*.read");
    let cs = json!({"rest": [{"resource": [{"type": "Patient"}, {"type": "Observation", "searchParam": [{"name": "_lastUpdated"}]}]}]});
    let support = ServerSupport::from_capability_statement(&cs);
    let keys = |learned: &Learned, full: bool| -> Vec<String> {
        plan(&a, &support, 50, learned, full)
            .into_iter()
            .map(|q| q.key)
            .collect()
    };
    // The grant covers every Observation: one search (it finds the uncategorised ones and every spelling too).
    assert_eq!(keys(&Learned::default(), false), ["Patient", "Observation"]);
    // The server answered 400 to it once: one search per category from then on.
    let epic = Learned {
        observation_needs_category: true,
        ..Learned::default()
    };
    let fan_out = keys(&epic, false);
    assert_eq!(fan_out.len(), 1 + OBSERVATION_CATEGORIES.len());
    assert!(
        fan_out
            .iter()
            .all(|k| k == "Patient" || k.starts_with("Observation:"))
    );
    // A category the server does not support is skipped, except on a full pass (it may support it by then).
    let partial = Learned {
        unsupported: vec!["Observation:sdoh".into()],
        ..epic
    };
    assert!(!keys(&partial, false).contains(&"Observation:sdoh".to_owned()));
    assert!(keys(&partial, true).contains(&"Observation:sdoh".to_owned()));
    assert_eq!(support.last_updated, ["Observation"]);
}

#[test]
fn only_resources_naming_the_linked_patient_belong_to_the_record() {
    let base = "https://ehr.example/fhir";
    let yes = [
        json!({"resourceType": "Observation", "subject": {"reference": "Patient/p1"}}),
        json!({"resourceType": "Observation", "subject": {"reference": "https://ehr.example/fhir/Patient/p1"}}),
        json!({"resourceType": "Immunization", "patient": {"reference": "Patient/p1/_history/3"}}),
        json!({"resourceType": "Coverage", "beneficiary": {"reference": "Patient/p1"}}),
        json!({"resourceType": "Appointment", "participant": [{"actor": {"reference": "Practitioner/d"}}, {"actor": {"reference": "Patient/p1"}}]}),
        json!({"resourceType": "Patient", "id": "p1"}),
    ];
    for r in &yes {
        assert!(belongs_to(r, "p1", base), "{r}");
    }
    let no = [
        json!({"resourceType": "Condition", "subject": {"reference": "Patient/p2"}}),
        json!({"resourceType": "Condition", "subject": {"reference": "Patient/p10"}}),
        json!({"resourceType": "Condition", "subject": {"reference": "https://evil.example/fhir/Patient/p1"}}),
        json!({"resourceType": "Condition", "subject": {"reference": "https://ehr.example/fhirX/Patient/p1"}}),
        json!({"resourceType": "Condition", "subject": {"reference": "Group/p1"}}),
        json!({"resourceType": "Observation", "code": {"text": "no subject"}}),
        json!({"resourceType": "Observation", "subject": "Patient/p1"}),
        json!({"resourceType": "Patient", "id": "p2"}),
    ];
    for r in &no {
        assert!(!belongs_to(r, "p1", base), "{r}");
    }
}

#[test]
fn tags_prefer_loinc() {
    let r = json!({"code": {"coding": [{"system": "urn:local", "code": "X"}, {"system": "http://loinc.org", "code": "4548-4"}]},
        "category": [{"coding": [{"code": "laboratory"}]}]});
    assert_eq!(tags(&r), (Some("4548-4".into()), Some("laboratory".into())));
    assert_eq!(
        tags(&json!({"vaccineCode": {"coding": [{"code": "08"}]}})),
        (Some("08".into()), None)
    );
    assert_eq!(tags(&json!({"code": "odd"})), (None, None));
}
