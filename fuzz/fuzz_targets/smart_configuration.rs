//! A `.well-known/smart-configuration` document and a CapabilityStatement: never a panic, every endpoint accepted
//! is HTTPS or loopback HTTP.
#![no_main]

use chartlink_core::discovery::{is_secure_transport, parse_capability_statement, parse_smart_configuration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let base = url::Url::parse("https://ehr.example/fhir").expect("base");
    if let Ok(info) = parse_smart_configuration(base.clone(), &doc) {
        assert!(is_secure_transport(&info.token_endpoint));
        assert!(is_secure_transport(&info.authorization_endpoint));
    }
    let _ = parse_capability_statement(base, &doc);
});
