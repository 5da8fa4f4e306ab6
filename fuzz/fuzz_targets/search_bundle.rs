//! A search Bundle page: the compartment check and every view on each of its resources. Never a panic.
#![no_main]

use chartlink_core::{sync, views};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for e in bundle["entry"].as_array().into_iter().flatten() {
        let r = &e["resource"];
        let _ = sync::belongs_to(r, "p1", "https://ehr.example/fhir");
        let _ = views::lab_result(r);
        let _ = views::vital_sign(r);
        let _ = views::allergy(r);
        let _ = views::medication(r);
        let _ = views::immunization(r);
        let _ = views::problem(r);
        let _ = views::visit(r);
        let _ = views::document(r);
        let _ = views::appointment(r);
        let _ = views::demographics(r);
        let _ = views::document_content(r);
    }
});
