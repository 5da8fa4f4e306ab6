//! An id_token: any text against a JWKS, then the claim checks on any claims. Never a panic.
#![no_main]

use chartlink_core::jose::{check_id_token, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let jwks = serde_json::json!({"keys": [
        {"kty": "EC", "crv": "P-384", "kid": "k", "x": "AAAA", "y": "AAAA"},
        {"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"}
    ]});
    let _ = verify(&text, &jwks);
    if let Ok(claims) = serde_json::from_slice::<serde_json::Value>(data) {
        for now in [0, 1_700_000_000, i64::MAX, i64::MIN] {
            let _ = check_id_token(&claims, "https://ehr.example/fhir", "app", now, 120);
        }
    }
});
