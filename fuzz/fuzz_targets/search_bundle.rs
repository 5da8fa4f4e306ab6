//! A search Bundle page: the compartment check and every record kind's parser on each of its resources, then the
//! links between them. Never a panic.
#![no_main]

use chartlink_core::views::{self, View};
use chartlink_core::sync;
use libfuzzer_sys::fuzz_target;

fn all<V: View>(resources: &[serde_json::Value]) {
    let related = views::Related::default();
    let mut records: Vec<V> = views::collect(resources, &related, "https://ehr.example/fhir");
    views::sort(&mut records);
}

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let resources: Vec<serde_json::Value> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["resource"].clone())
        .collect();
    for r in &resources {
        let _ = sync::belongs_to(r, "p1", "https://ehr.example/fhir");
        let _ = views::document_content(r);
    }
    all::<views::LabResult>(&resources);
    all::<views::VitalSign>(&resources);
    all::<views::Observation>(&resources);
    all::<views::Allergy>(&resources);
    all::<views::Medication>(&resources);
    all::<views::Immunization>(&resources);
    all::<views::Problem>(&resources);
    all::<views::Visit>(&resources);
    all::<views::Document>(&resources);
    all::<views::Appointment>(&resources);
    all::<views::Demographics>(&resources);
    all::<views::Procedure>(&resources);
    all::<views::DiagnosticReport>(&resources);
    all::<views::CarePlan>(&resources);
    all::<views::Goal>(&resources);
    all::<views::CareTeam>(&resources);
    all::<views::Device>(&resources);
    all::<views::ServiceRequest>(&resources);
    all::<views::Coverage>(&resources);
    all::<views::MedicationDispense>(&resources);
    all::<views::MedicationStatement>(&resources);
    all::<views::QuestionnaireResponse>(&resources);
    all::<views::ExplanationOfBenefit>(&resources);
    all::<views::Claim>(&resources);
    all::<views::ImagingStudy>(&resources);
});
