//! What app developers reach for first (issue 21): a stored record's raw FHIR JSON by type and id (a "what's new"
//! row opens its record), and the active patient's whole record as a FHIR Bundle or NDJSON, across providers.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use chartlink_core::{Error, ExportFormat, RevocationPolicy};
use common::{Fixture, config, fast, record};
use serde_json::Value;

#[tokio::test]
async fn a_record_by_id_and_the_whole_record_as_a_bundle_and_as_ndjson() {
    let f = Fixture::new().await;
    let sdk = f.sdk(
        config(RevocationPolicy::KeepReadOnlyUntilConfirmed),
        Some(Fixture::robot("maria")),
    );
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    sdk.sync_with(&account.id, &fast(), &mut |_| {})
        .await
        .unwrap();

    // One record, as the provider sent it.
    let lab = sdk.lab_results().unwrap().into_iter().next().unwrap();
    let raw: Value =
        serde_json::from_str(&sdk.record_json("Observation", &lab.id).unwrap().unwrap()).unwrap();
    assert_eq!(raw["resourceType"], "Observation");
    assert_eq!(raw["id"], lab.id.as_str());
    assert_eq!(
        raw,
        f.sb.admin()
            .resource("Observation", &lab.id)
            .unwrap()
            .unwrap(),
        "the provider's resource, whole"
    );
    assert_eq!(sdk.record_json("Observation", "no-such-id").unwrap(), None);
    for (ty, id) in [
        ("observation", "x"),
        ("Observation", "../../x"),
        ("Observation", ""),
    ] {
        assert!(
            matches!(sdk.record_json(ty, id), Err(Error::InvalidInput(_))),
            "{ty} {id}"
        );
    }

    // The whole record: every stored resource once, the Patient first.
    let stored: BTreeSet<String> = record(&sdk, &account.id).into_iter().collect();
    let bundle: Value = serde_json::from_str(&sdk.export(ExportFormat::Bundle).unwrap()).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");
    assert!(bundle["timestamp"].as_str().unwrap().ends_with('Z'));
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(bundle["total"], entries.len());
    let in_bundle: BTreeSet<String> = entries
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        stored.is_subset(&in_bundle),
        "missing: {:?}",
        stored.difference(&in_bundle).collect::<Vec<_>>()
    );
    assert_eq!(entries[0]["resource"]["resourceType"], "Patient");
    let base = f.sb.fhir_base();
    assert!(entries.iter().all(|e| {
        e["fullUrl"]
            .as_str()
            .unwrap()
            .starts_with(base.trim_end_matches('/'))
    }));

    let ndjson = sdk.export(ExportFormat::Ndjson).unwrap();
    let lines: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), entries.len(), "one line per resource");
    assert_eq!(lines[0]["resourceType"], "Patient");
    assert!(ndjson.ends_with('\n'));

    // Locked: nothing leaves.
    sdk.lock();
    assert_eq!(sdk.export(ExportFormat::Ndjson).unwrap_err(), Error::Locked);
    assert_eq!(
        sdk.record_json("Observation", &lab.id).unwrap_err(),
        Error::Locked
    );
    f.sb.shutdown().await;
}
