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

/// Lists in pages and date ranges (issue 21): the pages of a list, each after the last record of the one before,
/// are the list; a date range keeps the records whose date falls in it, at the date's precision; a sync between two
/// pages (a new result at the top) skips and repeats nothing; a page after a record that is gone is refused.
#[tokio::test]
async fn lists_come_in_pages_and_date_ranges_and_a_sync_between_pages_skips_nothing() {
    use chartlink_core::views::{FhirDate, LabResult};
    use chartlink_core::{Page, RecordQuery};

    let f = Fixture::new().await;
    let sdk = f.sdk(
        config(RevocationPolicy::KeepReadOnlyUntilConfirmed),
        Some(Fixture::robot("maria")),
    );
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    sdk.sync_with(&account.id, &fast(), &mut |_| {})
        .await
        .unwrap();
    let all = sdk.lab_results().unwrap();
    assert!(all.len() > 25, "a real record: {}", all.len());

    // One Observation record, tagged by its kind: the three lists are its kinds, and together every Observation.
    use chartlink_core::views::{Observation, ObservationKind};
    let vitals = sdk.vital_signs().unwrap();
    let others = sdk.observations().unwrap();
    assert!(all.iter().all(|o| o.kind == ObservationKind::Lab));
    assert!(vitals.iter().all(|o| o.kind == ObservationKind::VitalSign));
    assert!(others.iter().all(|o| o.kind.is_other()));
    assert!(!vitals.is_empty() && !others.is_empty());
    let every: Vec<Observation> = sdk.records().unwrap();
    assert_eq!(every.len(), all.len() + vitals.len() + others.len());
    assert!(
        all.iter().any(|o| o.report_id.is_some()),
        "lab results link to their reports"
    );
    assert!(
        every
            .iter()
            .all(|o| o.kind == ObservationKind::of(&o.category)),
        "the kind is the categories'"
    );
    assert!(
        others.iter().any(|o| o.kind != ObservationKind::Other),
        "the other observations name their kind (survey, exam, social history, ...)"
    );

    // Every page, each after the last record of the one before, in order: the whole list, once.
    let mut paged: Vec<LabResult> = Vec::new();
    let mut query = RecordQuery {
        limit: Some(10),
        ..Default::default()
    };
    let mut pages = 0;
    loop {
        let page: Page<LabResult> = sdk.lab_results_page(&query).unwrap();
        assert_eq!(page.total, all.len());
        assert!(page.records.len() <= 10);
        paged.extend(page.records);
        pages += 1;
        match page.next_after {
            Some(after) => query.after = Some(after),
            None => break,
        }
    }
    assert_eq!(pages, all.len().div_ceil(10));
    assert_eq!(paged, all, "the pages are the list");

    // A date range, at the bounds' precision: a year runs through 31 December.
    let year = all[all.len() / 2].date.as_ref().unwrap().year;
    let in_year: Vec<&LabResult> = all
        .iter()
        .filter(|r| r.date.as_ref().is_some_and(|d| d.year == year))
        .collect();
    let ranged: Page<LabResult> = sdk
        .lab_results_page(&RecordQuery {
            from: FhirDate::parse(&year.to_string()),
            to: FhirDate::parse(&year.to_string()),
            ..Default::default()
        })
        .unwrap();
    assert!(!in_year.is_empty());
    assert_eq!(ranged.records.iter().collect::<Vec<_>>(), in_year);
    assert_eq!(ranged.total, in_year.len());
    assert_eq!(ranged.next_after, None);
    let since: Page<LabResult> = sdk
        .lab_results_page(&RecordQuery {
            from: FhirDate::parse(&format!("{}-01-01", year + 1)),
            ..Default::default()
        })
        .unwrap();
    assert!(
        since
            .records
            .iter()
            .all(|r| r.date.as_ref().unwrap().year > year)
    );

    // Bad queries are typed errors.
    let first: Page<LabResult> = sdk
        .lab_results_page(&RecordQuery {
            limit: Some(5),
            ..Default::default()
        })
        .unwrap();
    let after = first.next_after.clone().unwrap();
    assert_eq!(
        after, first.records[4].id,
        "the next page starts after the last record"
    );
    for (label, bad) in [
        (
            "limit 0",
            RecordQuery {
                limit: Some(0),
                ..Default::default()
            },
        ),
        (
            "limit too large",
            RecordQuery {
                limit: Some(chartlink_core::MAX_PAGE + 1),
                ..Default::default()
            },
        ),
        (
            "a range that ends before it starts",
            RecordQuery {
                from: FhirDate::parse("2020"),
                to: FhirDate::parse("2019"),
                ..Default::default()
            },
        ),
        (
            "after a record that is not in the list",
            RecordQuery {
                after: Some("no-such-record".into()),
                ..Default::default()
            },
        ),
        (
            "after a record outside the range",
            RecordQuery {
                after: Some(after.clone()),
                from: FhirDate::parse("2999"),
                ..Default::default()
            },
        ),
    ] {
        assert!(
            matches!(sdk.lab_results_page(&bad), Err(Error::InvalidInput(_))),
            "{label}"
        );
    }
    let after_a_lab_among_vitals = sdk.vital_signs_page(&RecordQuery {
        after: Some(after.clone()),
        ..Default::default()
    });
    assert!(matches!(
        after_a_lab_among_vitals,
        Err(Error::InvalidInput(_))
    ));
    let conditions = sdk.problems().unwrap();
    let first_two: Page<chartlink_core::views::Problem> = sdk
        .records_page(&RecordQuery {
            limit: Some(2),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(first_two.total, conditions.len());
    assert_eq!(first_two.records[..], conditions[..2.min(conditions.len())]);

    // A sync between two pages brings a new result at the top: the next page still starts where the first ended.
    let mut newest =
        f.sb.admin()
            .resource("Observation", &all[0].id)
            .unwrap()
            .unwrap();
    newest["id"] = "paging-new-result".into();
    newest["effectiveDateTime"] = "2099-01-01T00:00:00Z".into();
    f.sb.admin().put_resource(newest).unwrap();
    // An incremental sync, likely within the same second as the last one's search (`_lastUpdated=ge`).
    sdk.sync_with(&account.id, &fast(), &mut |_| {})
        .await
        .unwrap();
    let second: Page<LabResult> = sdk
        .lab_results_page(&RecordQuery {
            limit: Some(5),
            after: Some(after),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        second.records,
        all[5..10],
        "nothing skipped or repeated across the sync"
    );
    let again: Page<LabResult> = sdk
        .lab_results_page(&RecordQuery {
            limit: Some(5),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(again.records[0].id, "paging-new-result");
    assert_eq!(again.total, all.len() + 1);

    // The record a page would start after is deleted at the provider (and by the next full pass here): refused.
    f.sb.admin()
        .delete_resource("Observation", &again.records[1].id)
        .unwrap();
    let full = chartlink_core::SyncOptions {
        force_full: true,
        ..fast()
    };
    sdk.sync_with(&account.id, &full, &mut |_| {})
        .await
        .unwrap();
    let gone = sdk.lab_results_page(&RecordQuery {
        after: Some(again.records[1].id.clone()),
        ..Default::default()
    });
    assert!(
        matches!(&gone, Err(Error::InvalidInput(m)) if m.contains("not in the list")),
        "{gone:?}"
    );
    f.sb.shutdown().await;
}

/// A record kind added as one line of the lists table (issue 21's proof): the provider files a relative's history,
/// a sync brings it, `family_history()` shows it, by id and in pages, and it counts as its own kind.
#[tokio::test]
async fn a_family_history_the_provider_files_syncs_and_reads() {
    use chartlink_core::RecordQuery;
    use chartlink_core::views::FamilyHistory;

    let f = Fixture::new().await;
    let sdk = f.sdk(
        config(RevocationPolicy::KeepReadOnlyUntilConfirmed),
        Some(Fixture::robot("maria")),
    );
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    let patient = sdk.accounts().unwrap()[0].patient_id.clone();
    for (id, relationship, date) in [
        ("fmh-father", "Father", "2024-02-03"),
        ("fmh-mother", "Mother", "2025-06-07"),
    ] {
        f.sb.admin()
            .put_resource(serde_json::json!({
                "resourceType": "FamilyMemberHistory", "id": id, "status": "completed",
                "patient": {"reference": format!("Patient/{patient}")}, "date": date,
                "relationship": {"text": relationship},
                "condition": [{"code": {"text": "Type 2 diabetes"}, "onsetAge": {"value": 50, "unit": "a"}}]
            }))
            .unwrap();
    }
    let report = sdk
        .sync_with(&account.id, &fast(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        report
            .per_kind
            .get(&chartlink_core::RecordKind::FamilyHistory),
        Some(&2),
        "{:?}",
        report.per_kind
    );
    let all: Vec<FamilyHistory> = sdk.family_history().unwrap();
    let who: Vec<_> = all.iter().map(|h| h.relationship.as_str()).collect();
    assert_eq!(who, ["Mother", "Father"], "newest first");
    assert_eq!(all[0].conditions[0].onset.as_deref(), Some("at 50 years"));
    assert!(all[0].source.is_some());
    let page = sdk
        .records_page::<FamilyHistory>(&RecordQuery {
            to: chartlink_core::views::FhirDate::parse("2024"),
            ..RecordQuery::default()
        })
        .unwrap();
    assert_eq!(page.records, all[1..]);
    let raw = sdk
        .record_json("FamilyMemberHistory", "fmh-father")
        .unwrap()
        .unwrap();
    assert!(raw.contains("Type 2 diabetes"));

    // By id, typed: the record its list shows; none for an id no provider holds; a type without a view is refused.
    use chartlink_core::{AnyRecord, Error};
    assert_eq!(
        sdk.record("FamilyMemberHistory", "fmh-father").unwrap(),
        Some(AnyRecord::FamilyHistory(all[1].clone()))
    );
    assert_eq!(
        sdk.record("FamilyMemberHistory", "fmh-nobody").unwrap(),
        None
    );
    let lab = sdk.lab_results().unwrap().remove(0);
    assert_eq!(
        sdk.record("Observation", &lab.id).unwrap(),
        Some(AnyRecord::Observation(lab))
    );
    let report = sdk.diagnostic_reports().unwrap().remove(0);
    assert_eq!(
        sdk.record("DiagnosticReport", &report.id).unwrap(),
        Some(AnyRecord::DiagnosticReport(report)),
        "linked to its results as the list shows it"
    );
    for (ty, id) in [
        ("Binary", "x"),
        ("observation", "x"),
        ("Observation", "../x"),
    ] {
        assert!(
            matches!(sdk.record(ty, id), Err(Error::InvalidInput(_))),
            "{ty} {id}"
        );
    }
}
