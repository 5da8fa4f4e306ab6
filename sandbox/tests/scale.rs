//! A sandbox holding a whole population: `/metadata` from cached type counts, `--data` streamed file by file with
//! Synthea's cross-file practitioner references resolved, and usernames from names with accents.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chartlink_sandbox::loader::LOADED_PASSWORD;
use chartlink_sandbox::{Config, Sandbox};
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const NPI: &str = "http://hl7.org/fhir/sid/us-npi";
const SYNTHEA: &str = "https://github.com/synthetichealth/synthea";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cl-scale-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn metadata_types(sb: &Sandbox) -> HashSet<String> {
    let body: Value = browser()
        .get(format!("{}/metadata", sb.fhir_base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["resourceType"], "CapabilityStatement");
    body["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap().to_owned())
        .collect()
}

/// The "N resources across M types." line of the banner, which counts from the same cache.
fn banner_counts(sb: &Sandbox) -> (i64, usize) {
    let banner = sb.banner();
    let line = banner
        .lines()
        .find(|l| l.contains(" resources across "))
        .unwrap();
    let mut words = line.split_whitespace();
    let total = words.next().unwrap().parse().unwrap();
    let types = words.nth(2).unwrap().parse().unwrap();
    (total, types)
}

async fn admin_stats(sb: &Sandbox) -> Value {
    browser()
        .get(format!("{}/admin/stats", sb.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn metadata_follows_puts_and_deletes_without_recounting_the_database() {
    let sb = start().await;
    let first = metadata_types(&sb).await;
    assert!(first.contains("Observation") && !first.contains("ChargeItem"));
    let scans = sb.admin().stats().type_scans;
    assert_eq!(scans, 1, "the first /metadata counts the types once");
    let again = metadata_types(&sb).await;
    assert_eq!(again, first);
    assert_eq!(
        sb.admin().stats().type_scans,
        scans,
        "a second /metadata does not scan the database"
    );
    let (total, types) = banner_counts(&sb);

    // A resource of a new type appears, with its count.
    let item = json!({"resourceType": "ChargeItem", "id": "ci-1", "status": "billable",
        "subject": {"reference": "Patient/daniel-chen"}});
    sb.admin().put_resource(item.clone()).unwrap();
    assert!(metadata_types(&sb).await.contains("ChargeItem"));
    assert_eq!(banner_counts(&sb), (total + 1, types + 1));
    // A new version of it is not a new resource.
    sb.admin().put_resource(item.clone()).unwrap();
    assert_eq!(banner_counts(&sb), (total + 1, types + 1));
    // Deleted, the type goes away again; put back, it returns.
    assert!(sb.admin().delete_resource("ChargeItem", "ci-1").unwrap());
    assert!(!sb.admin().delete_resource("ChargeItem", "ci-1").unwrap());
    assert_eq!(metadata_types(&sb).await, first);
    assert_eq!(banner_counts(&sb), (total, types));
    sb.admin().put_resource(item).unwrap();
    assert!(metadata_types(&sb).await.contains("ChargeItem"));
    // An upload through the admin API counts too; a failed one changes nothing.
    sb.admin()
        .load(
            json!({"resourceType": "Bundle", "type": "collection", "entry": [
                {"resource": {"resourceType": "Basic", "id": "b-1"}},
                {"resource": {"resourceType": "Basic", "id": "b-2"}},
            ]}),
        )
        .unwrap();
    assert_eq!(banner_counts(&sb), (total + 3, types + 2));
    assert!(
        sb.admin()
            .load(json!({"resourceType": "Bundle", "entry": [
                {"resource": {"resourceType": "Basic", "id": "b-3"}},
                {"resource": {"resourceType": "Flag"}},
            ]}))
            .is_err()
    );
    assert_eq!(banner_counts(&sb), (total + 3, types + 2));
    assert!(metadata_types(&sb).await.contains("Basic"));
    assert!(!metadata_types(&sb).await.contains("Flag"));
    assert_eq!(
        sb.admin().stats().type_scans,
        scans,
        "edits keep the counts current without a rescan"
    );
    assert_eq!(admin_stats(&sb).await["type_scans"], scans);
    sb.shutdown().await;
}

fn write(dir: &Path, name: &str, v: &Value) {
    std::fs::write(dir.join(name), serde_json::to_string_pretty(v).unwrap()).unwrap();
}

/// A transaction Bundle as Synthea writes it: `urn:uuid:` full URLs and POST requests.
fn transaction(resources: Vec<Value>) -> Value {
    let entry: Vec<Value> = resources
        .into_iter()
        .map(|r| {
            json!({"fullUrl": format!("urn:uuid:{}", r["id"].as_str().unwrap()),
                "request": {"method": "POST", "url": r["resourceType"]}, "resource": r})
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entry})
}

/// A patient file in today's Synthea layout: practitioners and organizations by identifier, the rest by urn:uuid.
fn patient_file(patient: &str, given: &str, family: &str, npi: &str, org: &str) -> Value {
    let enc = format!("{patient}-enc");
    transaction(vec![
        json!({"resourceType": "Patient", "id": patient, "birthDate": "1980-02-03",
            "name": [{"use": "official", "given": [given], "family": family}]}),
        json!({"resourceType": "Encounter", "id": enc, "status": "finished",
            "subject": {"reference": format!("urn:uuid:{patient}")},
            "participant": [{"individual": {"reference": format!("Practitioner?identifier={NPI}|{npi}")}}],
            "serviceProvider": {"reference": format!("Organization?identifier={SYNTHEA}|{org}")},
            "period": {"start": "2020-01-01T10:00:00Z", "end": "2020-01-01T11:00:00Z"}}),
        json!({"resourceType": "Observation", "id": format!("{patient}-obs"), "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
            "subject": {"reference": format!("urn:uuid:{patient}")},
            "encounter": {"reference": format!("urn:uuid:{enc}")},
            "performer": [{"reference": format!("Practitioner?identifier={npi}")}],
            "effectiveDateTime": "2020-01-01T10:30:00Z"}),
    ])
}

fn population(dir: &Path) {
    // Upper-case patient file names sort before the shared files: the loader still reads those first.
    write(
        dir,
        "Adán_Núñez_a1.json",
        &patient_file("pat-a", "Adán", "Núñez", "1111", "org-1"),
    );
    write(
        dir,
        "Adán_Ortiz_b2.json",
        &patient_file("pat-b", "Adán12", "Ortiz", "2222", "org-2"),
    );
    write(
        dir,
        "Søren_Łukasz_c3.json",
        &patient_file("pat-c", "Søren", "Łukasz", "3333", "org-1"),
    );
    let practitioners: Vec<Value> = [("prac-1", "1111"), ("prac-2", "2222")]
        .iter()
        .map(|(id, npi)| {
            json!({"resourceType": "Practitioner", "id": id,
            "identifier": [{"system": NPI, "value": npi}], "name": [{"family": "Doctor"}]})
        })
        .collect();
    write(
        dir,
        "practitionerInformation1700000000000.json",
        &transaction(practitioners),
    );
    let orgs: Vec<Value> = ["org-1", "org-2"]
        .iter()
        .map(|id| {
            json!({"resourceType": "Organization", "id": id,
            "identifier": [{"system": SYNTHEA, "value": id}], "name": "Hospital"})
        })
        .collect();
    write(
        dir,
        "hospitalInformation1700000000000.json",
        &transaction(orgs),
    );
    std::fs::write(
        dir.join("extra.ndjson"),
        "{\"resourceType\":\"Observation\",\"id\":\"nd-1\",\"status\":\"final\",\"subject\":{\"reference\":\"Patient/pat-a\"},\"code\":{\"coding\":[{\"code\":\"x\"}]}}\n\n",
    )
    .unwrap();
}

#[tokio::test]
async fn a_directory_of_bundles_loads_file_by_file_with_cross_file_practitioners() {
    let dir = temp_dir("pop");
    population(&dir);
    let sb = start_with(Config {
        data: vec![dir.clone()],
        demo_data: false,
        ..Config::default()
    })
    .await;
    let admin = sb.admin();
    let enc = admin.resource("Encounter", "pat-a-enc").unwrap().unwrap();
    assert_eq!(enc["subject"]["reference"], "Patient/pat-a");
    assert_eq!(
        enc["participant"][0]["individual"]["reference"],
        "Practitioner/prac-1"
    );
    assert_eq!(enc["serviceProvider"]["reference"], "Organization/org-1");
    let obs = admin.resource("Observation", "pat-b-obs").unwrap().unwrap();
    assert_eq!(obs["encounter"]["reference"], "Encounter/pat-b-enc");
    assert_eq!(
        obs["performer"][0]["reference"], "Practitioner/prac-2",
        "an identifier without a system matches any system"
    );
    // Søren's practitioner is not in the practitioner file: the reference stays as it was.
    let c = admin.resource("Encounter", "pat-c-enc").unwrap().unwrap();
    assert_eq!(
        c["participant"][0]["individual"]["reference"],
        format!("Practitioner?identifier={NPI}|3333")
    );
    assert_eq!(c["serviceProvider"]["reference"], "Organization/org-1");
    assert!(admin.resource("Observation", "nd-1").unwrap().is_some());

    // A later upload may name practitioners stored before.
    let upload = transaction(vec![
        json!({"resourceType": "Practitioner", "id": "prac-3", "identifier": [{"system": NPI, "value": "3333"}]}),
        json!({"resourceType": "Encounter", "id": "late-enc", "status": "finished",
        "subject": {"reference": "Patient/pat-a"},
        "participant": [
            {"individual": {"reference": format!("Practitioner?identifier={NPI}|1111")}},
            {"individual": {"reference": format!("Practitioner?identifier={NPI}|3333")}},
        ]}),
    ]);
    assert!(admin.load(upload).unwrap().is_empty(), "no new patients");
    let late = admin.resource("Encounter", "late-enc").unwrap().unwrap();
    assert_eq!(
        late["participant"][0]["individual"]["reference"],
        "Practitioner/prac-1"
    );
    assert_eq!(
        late["participant"][1]["individual"]["reference"],
        "Practitioner/prac-3"
    );

    // Logins: accents folded, unique with a number, as before.
    let state: Value = browser()
        .get(format!("{}/admin/state", sb.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let users: Vec<(String, String, String)> = state["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["username"].as_str().unwrap().to_owned(),
                p["patient_id"].as_str().unwrap().to_owned(),
                p["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        users,
        [
            ("adan".into(), "pat-a".into(), "Adán Núñez".into()),
            ("adan2".into(), "pat-b".into(), "Adán Ortiz".into()),
            ("soren".into(), "pat-c".into(), "Søren Łukasz".into()),
        ]
    );

    // Adán logs in as "adan" and reads his Encounter with the practitioner resolved.
    let mut flow = Flow::start(&sb, "launch/patient patient/*.read").await;
    assert_eq!(flow.login("adan", LOADED_PASSWORD).await, StatusCode::OK);
    let code = flow.allow_all().await;
    let tokens: Value = flow.exchange(&code).await.json().await.unwrap();
    assert_eq!(tokens["patient"], "pat-a");
    let token = tokens["access_token"].as_str().unwrap();
    let (status, enc) = fhir_get(&sb, token, "Encounter/pat-a-enc").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        enc["participant"][0]["individual"]["reference"],
        "Practitioner/prac-1"
    );
    sb.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_broken_file_late_in_the_directory_leaves_the_database_empty() {
    let dir = temp_dir("broken");
    population(&dir);
    std::fs::write(
        dir.join("zz_broken.json"),
        "{\"resourceType\": \"Bundle\",\n  oops",
    )
    .unwrap();
    let db = dir.join("sandbox.db");
    let err = Sandbox::start(Config {
        data: vec![dir.clone()],
        db: Some(db.clone()),
        ..Config::default()
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("zz_broken.json") && err.contains("line 2"),
        "{err}"
    );
    // Nothing of the files before it (nor of the demo family) was kept: the next start fills the file afresh.
    std::fs::remove_file(dir.join("zz_broken.json")).unwrap();
    let sb = start_with(Config {
        data: vec![dir.clone()],
        db: Some(db),
        demo_data: false,
        ..Config::default()
    })
    .await;
    assert!(
        sb.admin()
            .resource("Encounter", "pat-a-enc")
            .unwrap()
            .is_some()
    );
    assert!(sb.admin().truth("daniel-chen", true).unwrap().is_empty());
    sb.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
