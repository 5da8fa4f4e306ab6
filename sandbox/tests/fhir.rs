//! The FHIR API, the proxy rules, data loading and fault injection, against a running sandbox over real HTTP.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chartlink_sandbox::{Config, FaultConfig, FaultKind, ScriptedFault};
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const LAB: &str = "Observation?category=laboratory";

fn ids(resources: &[Value]) -> Vec<String> {
    resources
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn paging_follows_opaque_next_links_to_every_result() {
    let sb = start().await;
    let t = link(&sb, "daniel", Some("daniel-chen"), ALL_SCOPES).await;
    let token = t["access_token"].as_str().unwrap();
    let (status, first) = fhir_get(&sb, token, "Observation?category=laboratory&_count=7").await;
    assert_eq!(status, StatusCode::OK);
    let total = first["total"].as_u64().unwrap() as usize;
    assert!(total > 50, "Daniel has years of labs");
    let next = first["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap()["url"]
        .as_str()
        .unwrap();
    assert!(
        !next.contains("category") && !next.contains("_count"),
        "next links are opaque: {next}"
    );
    let all = search_all(&sb, token, "Observation?category=laboratory&_count=7").await;
    let unique: HashSet<String> = ids(&all).into_iter().collect();
    assert_eq!(all.len(), total);
    assert_eq!(unique.len(), total, "no duplicates across pages");
    let (status, body) = fhir_get(&sb, token, "Observation?_getpages=damaged!").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["resourceType"], "OperationOutcome");
    // Paging is stable while the record changes: a new resource appears on a later page, none repeats.
    let (_, page1) = fhir_get(&sb, token, "Observation?category=laboratory&_count=10").await;
    let mut seen: Vec<String> = ids(&page1["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].clone())
        .collect::<Vec<_>>());
    let new_obs = json!({"resourceType": "Observation", "id": "added-mid-paging", "status": "final",
        "subject": {"reference": "Patient/daniel-chen"},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]}, "effectiveDateTime": "2026-01-01"});
    sb.admin().put_resource(new_obs).unwrap();
    let mut url = page1["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    loop {
        let resp = browser().get(&url).bearer_auth(token).send().await.unwrap();
        let b: Value = resp.json().await.unwrap();
        seen.extend(ids(&b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"].clone())
            .collect::<Vec<_>>()));
        match b["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
        {
            Some(n) => url = n["url"].as_str().unwrap().to_owned(),
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len());
    assert!(seen.contains(&"Observation/added-mid-paging".to_owned()));
    sb.shutdown().await;
}

#[tokio::test]
async fn observation_needs_a_category_like_epic_unless_switched_off() {
    let sb = start().await;
    let t = link(&sb, "ava", None, ALL_SCOPES).await;
    let token = t["access_token"].as_str().unwrap();
    let (status, body) = fhir_get(&sb, token, "Observation").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert_eq!(body["issue"][0]["code"], "required");
    assert_eq!(
        fhir_get(&sb, token, "Observation?code=http://loinc.org|8302-2")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    sb.admin().set_category_rule(false);
    let (status, body) = fhir_get(&sb, token, "Observation").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["total"].as_u64().unwrap() > 0);
    sb.shutdown().await;
}

#[tokio::test]
async fn search_parameters_filter_by_code_date_and_last_updated() {
    let sb = start().await;
    let t = link(&sb, "daniel", Some("daniel-chen"), ALL_SCOPES).await;
    let token = t["access_token"].as_str().unwrap();
    let a1c = search_all(
        &sb,
        token,
        "Observation?category=laboratory&code=http://loinc.org|4548-4&_count=1000",
    )
    .await;
    assert!(a1c.len() >= 20, "quarterly HbA1c over years");
    assert!(
        a1c.iter()
            .all(|o| o["code"]["coding"][0]["code"] == "4548-4")
    );
    let recent = search_all(
        &sb,
        token,
        "Observation?category=laboratory&code=4548-4&date=ge2024-01-01&_count=1000",
    )
    .await;
    assert!(!recent.is_empty() && recent.len() < a1c.len());
    assert!(
        recent
            .iter()
            .all(|o| o["effectiveDateTime"].as_str().unwrap() >= "2024-01-01")
    );
    let older = search_all(
        &sb,
        token,
        "Observation?category=laboratory&code=4548-4&date=lt2024-01-01&_count=1000",
    )
    .await;
    assert_eq!(older.len() + recent.len(), a1c.len());
    // _lastUpdated: an edited resource is found by a later _lastUpdated=gt.
    let before = chartlink_sandbox::clock::instant(sb.admin().now());
    sb.admin().advance_clock(5);
    let mut edited = a1c[0].clone();
    edited["status"] = json!("amended");
    sb.admin().put_resource(edited).unwrap();
    let changed = search_all(
        &sb,
        token,
        &format!("Observation?category=laboratory&_lastUpdated=gt{before}"),
    )
    .await;
    assert_eq!(ids(&changed), ids(&a1c[..1]));
    assert_eq!(changed[0]["meta"]["versionId"], "2");
    assert_eq!(changed[0]["status"], "amended");
    let (status, one) = fhir_get(
        &sb,
        token,
        &format!("Observation?_id={}", a1c[1]["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!((status, one["total"].as_u64()), (StatusCode::OK, Some(1)));
    assert_eq!(
        fhir_get(&sb, token, "Observation?category=laboratory&date=notadate")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        fhir_get(&sb, token, "Observation?category=laboratory&_count=ten")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn every_type_is_served_and_binaries_carry_note_content() {
    let sb = start().await;
    let t = link(&sb, "maria", Some("maria-garcia"), ALL_SCOPES).await;
    let token = t["access_token"].as_str().unwrap();
    for ty in [
        "AllergyIntolerance",
        "MedicationRequest",
        "Immunization",
        "Condition",
        "Procedure",
        "Encounter",
        "DiagnosticReport",
        "DocumentReference",
        "Appointment",
        "Observation?category=vital-signs",
        "Observation?category=social-history",
    ] {
        let (status, body) = fhir_get(&sb, token, ty).await;
        assert_eq!(status, StatusCode::OK, "{ty}");
        assert!(body["total"].as_u64().unwrap() > 0, "{ty} has data");
    }
    let docs = search_all(&sb, token, "DocumentReference").await;
    let url = docs[0]["content"][0]["attachment"]["url"].as_str().unwrap();
    let content_type = docs[0]["content"][0]["attachment"]["contentType"]
        .as_str()
        .unwrap();
    let raw = browser()
        .get(format!("{}/{url}", sb.fhir_base()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::OK);
    assert!(
        raw.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(content_type)
    );
    assert!(!raw.text().await.unwrap().is_empty());
    let (status, binary) = fhir_get(&sb, token, url).await;
    assert_eq!(
        (status, binary["resourceType"].as_str()),
        (StatusCode::OK, Some("Binary"))
    );
    assert!(binary["data"].is_string());
    let (status, body) = fhir_get(&sb, token, "Observation/does-not-exist").await;
    assert_eq!(
        (status, body["resourceType"].as_str()),
        (StatusCode::NOT_FOUND, Some("OperationOutcome"))
    );
    let (status, _) = fhir_get(&sb, token, "AllergyIntolerance?patient=leo-garcia").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "another patient's compartment"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn without_a_valid_token_the_answer_is_401_with_an_outcome() {
    let sb = start().await;
    for auth in [None, Some("Bearer nonsense"), Some("Basic abc")] {
        let mut req = browser().get(format!("{}/Patient/ava-thompson", sb.fhir_base()));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(
            resp.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        assert_eq!(
            resp.json::<Value>().await.unwrap()["resourceType"],
            "OperationOutcome"
        );
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn v1_and_v2_scopes_limit_types_and_categories() {
    let sb = start().await;
    let v1 = link(
        &sb,
        "ava",
        None,
        "launch/patient patient/Observation.read patient/Patient.read",
    )
    .await;
    let token = v1["access_token"].as_str().unwrap();
    assert_eq!(
        v1["scope"],
        "launch/patient patient/Observation.read patient/Patient.read"
    );
    assert_eq!(
        fhir_get(&sb, token, "Observation?category=vital-signs")
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        fhir_get(&sb, token, "Condition").await.0,
        StatusCode::FORBIDDEN
    );
    let lab_only = "launch/patient patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory";
    let v2 = link(&sb, "ava", None, lab_only).await;
    let token = v2["access_token"].as_str().unwrap();
    assert_eq!(fhir_get(&sb, token, LAB).await.0, StatusCode::OK);
    assert_eq!(
        fhir_get(&sb, token, "Observation?category=vital-signs")
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        fhir_get(&sb, token, "Observation?category=laboratory,vital-signs")
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // Reading a vital sign by id is refused too.
    sb.admin().set_category_rule(false);
    let all = link(&sb, "ava", None, ALL_SCOPES).await;
    let vitals = search_all(
        &sb,
        all["access_token"].as_str().unwrap(),
        "Observation?category=vital-signs",
    )
    .await;
    let (status, _) = fhir_get(
        &sb,
        token,
        &format!("Observation/{}", vitals[0]["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Without a category parameter, results are limited to the granted categories.
    let got = search_all(&sb, token, "Observation").await;
    assert!(!got.is_empty());
    assert!(
        got.iter()
            .all(|o| o["category"][0]["coding"][0]["code"] == "laboratory")
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn proxy_age_rules_hide_confidential_items_of_a_teenager() {
    let sb = start().await;
    let parent = link(&sb, "maria", Some("sofia-garcia"), ALL_SCOPES).await;
    let token = parent["access_token"].as_str().unwrap();
    sb.admin().set_category_rule(false);
    let mut seen = Vec::new();
    for ty in [
        "Observation",
        "Condition",
        "MedicationRequest",
        "DocumentReference",
        "Encounter",
        "Immunization",
        "AllergyIntolerance",
        "DiagnosticReport",
        "Procedure",
        "Appointment",
        "Binary",
        "Patient",
    ] {
        seen.extend(search_all(&sb, token, ty).await);
    }
    let full = sb.admin().truth("sofia-garcia", true).unwrap();
    let limited = sb.admin().truth("sofia-garcia", false).unwrap();
    assert!(full.len() > limited.len(), "Sofia has confidential items");
    let mut got: Vec<String> = ids(&seen);
    got.sort();
    let mut want: Vec<String> = limited
        .iter()
        .filter(|(t, _, _)| t != "RelatedPerson")
        .map(|(t, i, _)| format!("{t}/{i}"))
        .collect();
    want.sort();
    assert_eq!(
        got, want,
        "the parent sees exactly the non-confidential record"
    );
    let hidden = full.iter().find(|r| !limited.contains(r)).unwrap();
    let (status, _) = fhir_get(&sb, token, &format!("{}/{}", hidden.0, hidden.1)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a confidential item is not there for the parent"
    );
    // A 9-year-old's record is seen whole; Ava sees her own confidential items.
    let leo = link(&sb, "maria", Some("leo-garcia"), ALL_SCOPES).await;
    let leo_all = search_all(&sb, leo["access_token"].as_str().unwrap(), "Condition").await;
    assert_eq!(
        leo_all.len(),
        sb.admin()
            .truth("leo-garcia", true)
            .unwrap()
            .iter()
            .filter(|r| r.0 == "Condition")
            .count()
    );
    let ava = link(&sb, "ava", None, ALL_SCOPES).await;
    let ava_all = sb.admin().truth("ava-thompson", true).unwrap();
    assert!(ava_all.len() > sb.admin().truth("ava-thompson", false).unwrap().len());
    let (status, _) = {
        let c = ava_all
            .iter()
            .find(|r| !sb.admin().truth("ava-thompson", false).unwrap().contains(r))
            .unwrap();
        fhir_get(
            &sb,
            ava["access_token"].as_str().unwrap(),
            &format!("{}/{}", c.0, c.1),
        )
        .await
    };
    assert_eq!(
        status,
        StatusCode::OK,
        "a teenager sees her own confidential items"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn proxy_access_ends_at_eighteen_and_when_authorization_ends() {
    let sb = start().await;
    let sofia = link(&sb, "maria", Some("sofia-garcia"), ALL_SCOPES).await;
    let wei = link(&sb, "daniel", Some("wei-chen"), ALL_SCOPES).await;
    let leo = link(&sb, "maria", Some("leo-garcia"), ALL_SCOPES).await;
    // The legal proxy authorization is withdrawn: the grant dies with it.
    sb.admin().end_proxy("daniel-chen", "wei-chen").unwrap();
    assert_eq!(
        fhir_get(
            &sb,
            wei["access_token"].as_str().unwrap(),
            "Patient/wei-chen"
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&sb, wei["refresh_token"].as_str().unwrap()).await.1["error"],
        "invalid_grant"
    );
    // Three years later Sofia is 18 and Leo 12: her parent's access ends, his goes on.
    sb.admin().advance_clock(3 * 366 * 86_400);
    let (status, body) = refresh(&sb, sofia["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, body) = refresh(&sb, leo["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The picker no longer offers Sofia or Wei.
    let mut flow = Flow::start(&sb, ALL_SCOPES).await;
    flow.login("maria", "maria-demo").await;
    assert!(
        !flow.page.contains("patient-sofia-garcia") && flow.page.contains("patient-leo-garcia")
    );
    let mut flow = Flow::start(&sb, ALL_SCOPES).await;
    flow.login("daniel", "daniel-demo").await;
    assert!(
        !flow.page.contains("Which account"),
        "Daniel now has only his own record"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn the_same_seed_gives_the_same_data() {
    let a = start_with(Config {
        seed: 7,
        ..Config::default()
    })
    .await;
    let b = start_with(Config {
        seed: 7,
        ..Config::default()
    })
    .await;
    let c = start_with(Config {
        seed: 8,
        ..Config::default()
    })
    .await;
    let (ta, tb) = (
        a.admin().truth("daniel-chen", true).unwrap(),
        b.admin().truth("daniel-chen", true).unwrap(),
    );
    assert_eq!(ta, tb);
    let id = &ta.iter().find(|r| r.0 == "Observation").unwrap().1;
    assert_eq!(
        a.admin().resource("Observation", id).unwrap(),
        b.admin().resource("Observation", id).unwrap()
    );
    let values = |s: &chartlink_sandbox::Sandbox| -> Vec<Value> {
        ta.iter()
            .filter(|r| r.0 == "Observation")
            .take(50)
            .filter_map(|r| s.admin().resource("Observation", &r.1).unwrap())
            .map(|o| o["valueQuantity"].clone())
            .collect()
    };
    assert_ne!(values(&a), values(&c), "another seed varies the values");
    for s in [a, b, c] {
        s.shutdown().await;
    }
}

#[tokio::test]
async fn deleted_resources_disappear_and_edits_bump_the_version() {
    let sb = start().await;
    let t = link(&sb, "ava", None, ALL_SCOPES).await;
    let token = t["access_token"].as_str().unwrap();
    let allergies = search_all(&sb, token, "Immunization").await;
    let victim = allergies[0]["id"].as_str().unwrap().to_owned();
    assert!(sb.admin().delete_resource("Immunization", &victim).unwrap());
    let after = search_all(&sb, token, "Immunization").await;
    assert_eq!(after.len(), allergies.len() - 1);
    assert!(!ids(&after).contains(&format!("Immunization/{victim}")));
    assert_eq!(
        fhir_get(&sb, token, &format!("Immunization/{victim}"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let mut changed = after[0].clone();
    changed["lotNumber"] = json!("NEWLOT");
    assert_eq!(sb.admin().put_resource(changed.clone()).unwrap(), 2);
    let (_, read) = fhir_get(
        &sb,
        token,
        &format!("Immunization/{}", changed["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(read["meta"]["versionId"], "2");
    assert_eq!(read["lotNumber"], "NEWLOT");
    sb.shutdown().await;
}

// ---- faults ----

async fn lab_status(
    sb: &chartlink_sandbox::Sandbox,
    token: &str,
) -> Result<
    (
        StatusCode,
        reqwest::header::HeaderMap,
        Result<Value, String>,
    ),
    String,
> {
    let resp = browser()
        .get(format!("{}/{LAB}", sb.fhir_base()))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = match resp.bytes().await {
        Ok(b) => serde_json::from_slice::<Value>(&b).map_err(|e| format!("json: {e}")),
        Err(e) => Err(format!("body: {e}")),
    };
    Ok((status, headers, body))
}

#[tokio::test]
async fn each_fault_can_be_injected() {
    let sb = start().await;
    let t = link(&sb, "ava", None, ALL_SCOPES).await;
    let token = t["access_token"].as_str().unwrap();
    let script = |kind: FaultKind| ScriptedFault {
        path_prefix: "/fhir/Observation".into(),
        kind,
        count: 1,
    };
    sb.admin()
        .script_fault(script(FaultKind::Status { status: 503 }));
    let (status, _, body) = lab_status(&sb, token).await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body.unwrap()["resourceType"], "OperationOutcome");
    sb.admin().script_fault(script(FaultKind::RateLimit {
        retry_after_secs: 3,
    }));
    let (status, headers, _) = lab_status(&sb, token).await.unwrap();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "3");
    sb.admin().script_fault(script(FaultKind::Truncate));
    let (status, _, body) = lab_status(&sb, token).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.unwrap_err().starts_with("json"),
        "truncated JSON does not parse"
    );
    sb.admin().script_fault(script(FaultKind::Reset));
    match lab_status(&sb, token).await {
        Err(_) => {}
        Ok((_, _, body)) => assert!(
            body.unwrap_err().starts_with("body"),
            "the connection is cut mid-body"
        ),
    }
    sb.admin()
        .script_fault(script(FaultKind::Latency { ms: 300 }));
    let started = Instant::now();
    let (status, _, _) = lab_status(&sb, token).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
    // After the scripted faults, requests succeed again.
    assert_eq!(lab_status(&sb, token).await.unwrap().0, StatusCode::OK);
    assert_eq!(sb.admin().faults_injected(), 5);
    // Tokens that expire early, and a clock that moves past expiry.
    assert_eq!(sb.admin().expire_access_tokens(None).unwrap(), 1);
    assert_eq!(
        lab_status(&sb, token).await.unwrap().0,
        StatusCode::UNAUTHORIZED
    );
    let (_, fresh) = refresh(&sb, t["refresh_token"].as_str().unwrap()).await;
    let fresh_token = fresh["access_token"].as_str().unwrap();
    assert_eq!(
        lab_status(&sb, fresh_token).await.unwrap().0,
        StatusCode::OK
    );
    sb.admin().advance_clock(3601);
    assert_eq!(
        lab_status(&sb, fresh_token).await.unwrap().0,
        StatusCode::UNAUTHORIZED
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn random_faults_are_deterministic_for_a_seed() {
    async fn pattern(seed: u64) -> Vec<u16> {
        let faults = FaultConfig {
            error_rate: 0.3,
            rate_limit_rate: 0.2,
            retry_after_secs: 1,
            ..FaultConfig::default()
        };
        let sb = start_with(Config {
            seed,
            ..Config::default()
        })
        .await;
        let t = link(&sb, "ava", None, ALL_SCOPES).await;
        sb.admin().set_faults(faults);
        let mut out = Vec::new();
        for _ in 0..40 {
            out.push(
                lab_status(&sb, t["access_token"].as_str().unwrap())
                    .await
                    .unwrap()
                    .0
                    .as_u16(),
            );
        }
        sb.shutdown().await;
        out
    }
    let (a, b, c) = (pattern(3).await, pattern(3).await, pattern(4).await);
    assert_eq!(a, b);
    assert_ne!(a, c);
    let failures = a.iter().filter(|s| **s != 200).count();
    assert!((8..=32).contains(&failures), "about half fail: {failures}");
    assert!(a.contains(&429) && (a.contains(&500) || a.contains(&503)));
}

// ---- data loading and bad input ----

fn synthea_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/synthea-r4")
}

#[tokio::test]
async fn real_synthea_bundles_are_served_with_logins() {
    let dir = synthea_dir();
    assert!(
        dir.is_dir(),
        "tests/data/synthea-r4 ships with the repository"
    );
    let sb = start_with(Config {
        data: vec![dir.clone()],
        demo_data: false,
        ..Config::default()
    })
    .await;
    let state: Value = browser()
        .get(format!("{}/admin/state", sb.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let people = state["people"].as_array().unwrap();
    let patients_in_files: usize = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let b: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            b["entry"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["resource"]["resourceType"] == "Patient")
                .count()
        })
        .sum();
    assert_eq!(
        people.len(),
        patients_in_files,
        "a login for every Patient in the files"
    );
    let first = &people[0];
    let user = first["username"].as_str().unwrap();
    let patient = first["patient_id"].as_str().unwrap();
    // v1 scopes: Observation unfiltered by category (real data has odd category codes such as "vital-sign").
    let mut flow = Flow::start(&sb, "launch/patient patient/*.read").await;
    assert_eq!(
        flow.login(user, chartlink_sandbox::loader::LOADED_PASSWORD)
            .await,
        StatusCode::OK
    );
    let code = flow.allow_all().await;
    let tokens: Value = flow.exchange(&code).await.json().await.unwrap();
    assert_eq!(tokens["patient"], patient);
    let token = tokens["access_token"].as_str().unwrap();
    sb.admin().set_category_rule(false);
    let obs = search_all(&sb, token, "Observation?_count=1000").await;
    let truth = sb.admin().truth(patient, true).unwrap();
    assert_eq!(
        obs.len(),
        truth.iter().filter(|r| r.0 == "Observation").count()
    );
    assert!(
        obs.iter()
            .all(|o| o["subject"]["reference"] == format!("Patient/{patient}")),
        "urn:uuid references resolved"
    );
    // Types the sandbox does not know (Claim, ExplanationOfBenefit, ...) are stored and served as they are.
    let unknown = truth
        .iter()
        .find(|r| r.0 == "ExplanationOfBenefit" || r.0 == "Claim")
        .expect("Synthea has claims");
    sb.shutdown().await;
    let sb2 = start_with(Config {
        data: vec![dir],
        demo_data: false,
        ..Config::default()
    })
    .await;
    assert!(
        sb2.admin()
            .resource(&unknown.0, &unknown.1)
            .unwrap()
            .is_some()
    );
    sb2.shutdown().await;
}

#[tokio::test]
async fn broken_data_files_fail_clearly_and_damage_nothing() {
    let dir = std::env::temp_dir().join(format!("cl-sandbox-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.json");
    std::fs::write(
        &broken,
        "{\"resourceType\": \"Bundle\", \"entry\": [ {\"resource\": ",
    )
    .unwrap();
    let db = dir.join("sandbox.db");
    let _ = std::fs::remove_file(&db);
    // A database with data in it...
    let sb = start_with(Config {
        db: Some(db.clone()),
        ..Config::default()
    })
    .await;
    let before = sb.admin().truth("daniel-chen", true).unwrap();
    sb.shutdown().await;
    // ...is reused as it is; a broken file is refused with its name and place.
    let err = chartlink_sandbox::Sandbox::start(Config {
        data: vec![broken.clone()],
        ..Config::default()
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("broken.json") && err.contains("line 1"),
        "{err}"
    );
    let sb = start_with(Config {
        db: Some(db.clone()),
        ..Config::default()
    })
    .await;
    assert_eq!(sb.admin().truth("daniel-chen", true).unwrap(), before);
    let resp = browser().post(format!("{}/admin/resources", sb.base_url())).body("{\"resourceType\": \"Bundle\", \"entry\": [{\"resource\": {\"resourceType\": \"Patient\"}}]}").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(sb.admin().truth("daniel-chen", true).unwrap(), before);
    sb.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_database_file_keeps_grants_across_restarts() {
    let dir = std::env::temp_dir().join(format!("cl-sandbox-db-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("s.db");
    let _ = std::fs::remove_file(&db);
    let sb = start_with(Config {
        db: Some(db.clone()),
        ..Config::default()
    })
    .await;
    let t = link(&sb, "ava", None, ALL_SCOPES).await;
    sb.shutdown().await;
    let sb = start_with(Config {
        db: Some(db.clone()),
        ..Config::default()
    })
    .await;
    let (status, body) = refresh(&sb, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    sb.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn malformed_requests_get_clear_errors() {
    let sb = start_with(Config {
        max_body_bytes: 4096,
        ..Config::default()
    })
    .await;
    let http = browser();
    let token_url = format!("{}/oauth2/token", sb.base_url());
    let resp = http
        .post(&token_url)
        .body(vec![0xff, 0xfe, b'=', 0x00])
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.json::<Value>().await.unwrap()["error"].is_string());
    let (status, body) = token_form(&sb, &[("grant_type", "password"), ("username", "x")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    let (status, body) = token_form(
        &sb,
        &[
            ("grant_type", "refresh_token"),
            ("grant_type", "refresh_token"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (status, body) = token_form(
        &sb,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", "unknown"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let huge = "a".repeat(10_000);
    let resp = http
        .post(&token_url)
        .form(&[("grant_type", huge.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let resp = http
        .post(format!("{}/portal/consent", sb.base_url()))
        .body("%%%garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("This request has expired")
    );
    let resp = http
        .post(format!("{}/oauth2/register", sb.base_url()))
        .bearer_auth("x")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = http
        .put(format!("{}/admin/faults", sb.base_url()))
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = http
        .get(format!("{}/no/such/page", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // The server is still healthy.
    let t = link(&sb, "ava", None, ALL_SCOPES).await;
    assert_eq!(
        fhir_get(
            &sb,
            t["access_token"].as_str().unwrap(),
            "Patient/ava-thompson"
        )
        .await
        .0,
        StatusCode::OK
    );
    sb.shutdown().await;
}
