//! A token endpoint's answer: any status, content type and body. Never panics; only a JSON `invalid_grant` below
//! 500 means the grant is gone; a lifetime never overflows.
#![no_main]

use chartlink_core::http::Response;
use chartlink_core::token::{MAX_LIFETIME_SECS, TokenError, classify};
use libfuzzer_sys::fuzz_target;
use reqwest::header::{HeaderMap, HeaderValue};

fuzz_target!(|data: &[u8]| {
    let Some((&head, body)) = data.split_first() else {
        return;
    };
    let status = [200u16, 400, 401, 403, 429, 500, 503][usize::from(head % 7)];
    let json = head & 0x80 != 0;
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static(if json { "application/json" } else { "text/html" }),
    );
    let resp = Response {
        status: reqwest::StatusCode::from_u16(status).unwrap_or(reqwest::StatusCode::OK),
        headers,
        body: body.to_vec(),
    };
    match classify(&resp) {
        Ok(t) => {
            assert_eq!(status, 200);
            assert!(t.expires_in_secs.is_none_or(|s| s <= MAX_LIFETIME_SECS));
            let _ = t.expires_at_ms(i64::MAX);
            let _ = t.expires_at_ms(i64::MIN);
        }
        Err(TokenError::GrantGone { .. }) => assert!(json && (400..500).contains(&status) && status != 429),
        Err(_) => {}
    }
});
