//! The views over whole charts: the sandbox's synthetic population (every resource of a viewed type parses, lab
//! results carry values and flags, HbA1c trends, results link to their reports and notes to their visits) and the
//! real Synthea R4 bundles in `tests/data/synthea-r4` (nothing panics, every resource of a supported type yields
//! a view with a non-empty name). Run with `--nocapture` to see the counts.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use chartlink_core::views::{self, DocumentContent, Flag, LabResult, ObservationValue};
use serde_json::Value;

fn category_codes(r: &Value) -> Vec<String> {
    let categories = r["category"].as_array().cloned().unwrap_or_default();
    categories
        .iter()
        .flat_map(|c| c["coding"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["code"].as_str().map(str::to_owned))
        .collect()
}

fn of_patient(r: &Value, patient: &str) -> bool {
    let reference = format!("Patient/{patient}");
    r["subject"]["reference"] == reference.as_str()
        || r["patient"]["reference"] == reference.as_str()
}

/// Parses one resource with the parser of its type; the view's name, or `None` when the type has no view (or, for
/// an Observation, its category has none). Panics when a parser refuses a resource of its type.
fn view_name(r: &Value) -> Option<String> {
    let ty = r["resourceType"].as_str().unwrap_or_default();
    let id = r["id"].as_str().unwrap_or_default();
    let refused = format!("{ty}/{id} did not parse");
    let name = match ty {
        "Observation" => {
            let categories = category_codes(r);
            let lab = categories.is_empty() || categories.iter().any(|c| c == "laboratory");
            let vital = categories
                .iter()
                .any(|c| c == "vital-signs" || c == "vital-sign");
            // Every Observation lands in exactly one of lab results, vital signs and other observations.
            match (
                views::lab_result(r),
                views::vital_sign(r),
                views::other_observation(r),
            ) {
                (Some(l), None, None) => l.name,
                (None, Some(v), None) if vital && !lab => v.name,
                (None, None, Some(o)) if !lab && !vital => o.name,
                _ => panic!("{refused}"),
            }
        }
        "AllergyIntolerance" => views::allergy(r).expect(&refused).substance,
        "MedicationRequest" => views::medication(r).expect(&refused).name,
        "Immunization" => views::immunization(r).expect(&refused).vaccine,
        "Condition" => views::problem(r).expect(&refused).name,
        "Encounter" => views::visit(r).expect(&refused).kind,
        "DocumentReference" => views::document(r).expect(&refused).title,
        "Appointment" => views::appointment(r)
            .expect(&refused)
            .service
            .unwrap_or("appointment".into()),
        "Patient" => views::demographics(r).expect(&refused).name,
        "Procedure" => views::procedure(r).expect(&refused).name,
        "DiagnosticReport" => views::diagnostic_report(r).expect(&refused).name,
        "CarePlan" => views::care_plan(r).expect(&refused).title,
        "Goal" => views::goal(r).expect(&refused).description,
        "CareTeam" => views::care_team(r).expect(&refused).name,
        "Device" => views::device(r).expect(&refused).name,
        "ServiceRequest" => views::service_request(r).expect(&refused).name,
        "Coverage" => views::coverage(r).expect(&refused).payer,
        "MedicationDispense" => views::medication_dispense(r).expect(&refused).name,
        "MedicationStatement" => views::medication_statement(r).expect(&refused).name,
        "QuestionnaireResponse" => views::questionnaire_response(r).expect(&refused).title,
        "ExplanationOfBenefit" => {
            let e = views::explanation_of_benefit(r).expect(&refused);
            e.services
                .first()
                .cloned()
                .or(e.kind)
                .unwrap_or("billing".into())
        }
        "Claim" => {
            let c = views::claim(r).expect(&refused);
            c.services
                .first()
                .cloned()
                .or(c.kind)
                .unwrap_or("claim".into())
        }
        "ImagingStudy" => views::imaging_study(r).expect(&refused).name,
        "Binary" => {
            views::document_content(r).expect(&refused);
            "binary".into()
        }
        _ => return None,
    };
    assert!(!name.trim().is_empty(), "{ty}/{id} has an empty name");
    Some(name)
}

/// Every other parser must refuse a resource that is not its type.
fn only_its_own_parser_accepts(r: &Value) {
    let ty = r["resourceType"].as_str().unwrap_or_default();
    let accepted = [
        (
            "Observation",
            views::lab_result(r).is_some()
                || views::vital_sign(r).is_some()
                || views::other_observation(r).is_some(),
        ),
        ("Procedure", views::procedure(r).is_some()),
        ("DiagnosticReport", views::diagnostic_report(r).is_some()),
        ("CarePlan", views::care_plan(r).is_some()),
        ("Goal", views::goal(r).is_some()),
        ("CareTeam", views::care_team(r).is_some()),
        ("Device", views::device(r).is_some()),
        ("ServiceRequest", views::service_request(r).is_some()),
        ("Coverage", views::coverage(r).is_some()),
        (
            "ExplanationOfBenefit",
            views::explanation_of_benefit(r).is_some(),
        ),
        ("Claim", views::claim(r).is_some()),
        ("ImagingStudy", views::imaging_study(r).is_some()),
        (
            "MedicationDispense",
            views::medication_dispense(r).is_some(),
        ),
        (
            "MedicationStatement",
            views::medication_statement(r).is_some(),
        ),
        (
            "QuestionnaireResponse",
            views::questionnaire_response(r).is_some(),
        ),
        ("AllergyIntolerance", views::allergy(r).is_some()),
        ("MedicationRequest", views::medication(r).is_some()),
        ("Immunization", views::immunization(r).is_some()),
        ("Condition", views::problem(r).is_some()),
        ("Encounter", views::visit(r).is_some()),
        ("DocumentReference", views::document(r).is_some()),
        ("Appointment", views::appointment(r).is_some()),
        ("Patient", views::demographics(r).is_some()),
        ("Binary", views::document_content(r).is_some()),
    ];
    for (parser_type, yes) in accepted {
        assert!(
            !yes || parser_type == ty,
            "the {parser_type} parser accepted a {ty}"
        );
    }
}

#[test]
fn the_sandbox_population_parses_into_views() {
    let today = time::Date::from_calendar_date(2026, time::Month::November, 22).unwrap();
    let population = chartlink_sandbox::generator::generate(1, today, None);
    let resources = &population.resources;
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for r in resources {
        let ty = r["resourceType"].as_str().unwrap();
        let parsed = view_name(r).is_some();
        let entry = counts.entry(ty).or_default();
        entry.0 += 1;
        entry.1 += usize::from(parsed);
        only_its_own_parser_accepts(r);
    }
    println!("sandbox (type: resources, views): {counts:?}");

    // Every laboratory Observation is a LabResult with a value, and a flag whenever the lab gave one.
    let observations = resources
        .iter()
        .filter(|r| r["resourceType"] == "Observation");
    let labs_json: Vec<&Value> = observations
        .clone()
        .filter(|r| category_codes(r).contains(&"laboratory".to_owned()))
        .collect();
    let mut labs: Vec<LabResult> = labs_json
        .iter()
        .map(|r| views::lab_result(r).unwrap())
        .collect();
    for (lab, json) in labs.iter().zip(&labs_json) {
        assert!(lab.value.is_some(), "{} has no value", lab.id);
        assert!(lab.date.is_some(), "{} has no date", lab.id);
        let interpreted = json["interpretation"].is_array();
        assert_eq!(lab.flag != Flag::Unknown, interpreted, "{}", lab.id);
        if matches!(lab.value, Some(ObservationValue::Quantity(_))) {
            assert!(
                interpreted && lab.range.is_some(),
                "{} has no flag or range",
                lab.id
            );
        }
    }
    for r in observations.filter(|r| category_codes(r).contains(&"vital-signs".to_owned())) {
        assert!(views::vital_sign(r).unwrap().value.is_some());
    }
    let flags: BTreeMap<String, usize> = labs.iter().fold(BTreeMap::new(), |mut m, l| {
        *m.entry(format!("{:?}", l.flag)).or_default() += 1;
        m
    });
    println!("sandbox lab flags: {flags:?}");

    // Results link to the reports that list them: every numeric (panel) result has one.
    let reports: Vec<Value> = resources
        .iter()
        .filter(|r| r["resourceType"] == "DiagnosticReport")
        .cloned()
        .collect();
    views::link_reports(&mut labs, &reports);
    let linked = labs.iter().filter(|l| l.report_id.is_some()).count();
    println!(
        "sandbox: {linked} of {} lab results linked to {} reports",
        labs.len(),
        reports.len()
    );
    for lab in &labs {
        if matches!(lab.value, Some(ObservationValue::Quantity(_))) {
            assert!(lab.report_id.is_some(), "{} is in no report", lab.id);
        }
    }

    // Daniel Chen's HbA1c trend.
    let daniel: Vec<LabResult> = labs_json
        .iter()
        .zip(&labs)
        .filter(|(json, _)| of_patient(json, "daniel-chen"))
        .map(|(_, lab)| lab.clone())
        .collect();
    let trend = views::lab_trend(&daniel, "4548-4").unwrap();
    println!(
        "daniel-chen HbA1c: {} points, {} .. {}",
        trend.points.len(),
        trend.points.first().unwrap().value,
        trend.points.last().unwrap().value
    );
    assert!(trend.points.len() >= 20, "{}", trend.points.len());
    assert!(
        trend
            .points
            .windows(2)
            .all(|w| w[0].date.sort_key() <= w[1].date.sort_key())
    );
    assert!(trend.range.is_some() && trend.unit.is_some());
    let latest = views::latest_per_code(&daniel);
    let codes: HashSet<_> = latest.iter().map(|l| l.code.clone()).collect();
    assert_eq!(codes.len(), latest.len());
    assert!(
        latest
            .windows(2)
            .all(|w| w[0].date.as_ref().unwrap().sort_key()
                >= w[1].date.as_ref().unwrap().sort_key())
    );

    // Notes: each names a Binary of the population holding text or HTML, and belongs to a visit.
    let binaries: HashMap<&str, &Value> = resources
        .iter()
        .filter(|r| r["resourceType"] == "Binary")
        .map(|r| (r["id"].as_str().unwrap(), r))
        .collect();
    let documents: Vec<_> = resources.iter().filter_map(views::document).collect();
    for doc in &documents {
        let binary = binaries[doc.binary_id.as_deref().unwrap()];
        let content = views::document_content(binary).unwrap();
        assert!(
            matches!(content, DocumentContent::Text(_) | DocumentContent::Html(_)),
            "{}",
            doc.id
        );
        assert!(doc.date.is_some());
    }
    let mut visits: Vec<_> = resources.iter().filter_map(views::visit).collect();
    views::link_visit_documents(&mut visits, &documents);
    let attached: usize = visits.iter().map(|v| v.summary_document_ids.len()).sum();
    let with_visit = documents.iter().filter(|d| d.visit_id.is_some()).count();
    println!(
        "sandbox: {attached} of {} documents attached to {} visits",
        documents.len(),
        visits.len()
    );
    assert_eq!(attached, with_visit);
    assert!(with_visit > 0);
}

#[test]
fn real_synthea_bundles_parse_without_loss() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/synthea-r4");
    assert!(
        dir.is_dir(),
        "tests/data/synthea-r4 ships with the repository"
    );
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let (mut labs, mut reports) = (Vec::new(), Vec::new());
    for file in &files {
        let bundle: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        for entry in bundle["entry"].as_array().unwrap() {
            let r = &entry["resource"];
            let ty = r["resourceType"].as_str().unwrap().to_owned();
            let parsed = view_name(r).is_some();
            only_its_own_parser_accepts(r);
            let entry = counts.entry(ty).or_default();
            entry.0 += 1;
            entry.1 += usize::from(parsed);
            labs.extend(views::lab_result(r));
            if r["resourceType"] == "DiagnosticReport" {
                reports.push(r.clone());
            }
        }
    }
    println!(
        "synthea, {} bundles (type: resources, views): {counts:?}",
        files.len()
    );
    for ty in [
        "AllergyIntolerance",
        "MedicationRequest",
        "Immunization",
        "Condition",
        "Encounter",
        "Patient",
        "Observation",
        "Procedure",
        "DiagnosticReport",
        "CarePlan",
        "Goal",
        "ExplanationOfBenefit",
        "Claim",
        "ImagingStudy",
    ] {
        let (all, parsed) = counts[ty];
        assert_eq!(all, parsed, "{ty}");
    }
    // What the held-out bundles hold and ChartLink once dropped (issue 21).
    assert_eq!(
        ["ExplanationOfBenefit", "Claim", "ImagingStudy"].map(|t| counts[t].1),
        [104, 115, 4]
    );
    // References in transaction bundles are urn:uuid: ones.
    views::link_reports(&mut labs, &reports);
    let linked = labs.iter().filter(|l| l.report_id.is_some()).count();
    println!(
        "synthea: {linked} of {} lab results linked to {} reports",
        labs.len(),
        reports.len()
    );
    assert!(linked > 0);
}
