//! Servers that answer badly: malformed or oversized discovery documents, HTML where JSON belongs, missing fields,
//! and token responses without `expires_in` or with `bearer` in lower case. Each gets a typed error or the tolerant
//! handling the spec allows; nothing panics.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chartlink_core::{
    AppConfig, ChartLink, ClientAuth, DataCategory, Error, Host, ManualClock, MemorySecureStore,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A tiny HTTP server that answers every request with the response `route` gives for its path.
async fn serve(route: fn(&str) -> (u16, &'static str, Vec<u8>)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (status, ct, body) = route(&path);
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: {ct}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    format!("http://{addr}/fhir")
}

fn sdk() -> ChartLink {
    let host = Host {
        secure_store: Arc::new(MemorySecureStore::default()),
        browser: None,
        clock: Arc::new(ManualClock::new()),
        listener: None,
    };
    let config = AppConfig {
        client_id: "app".into(),
        redirect_uri: "app://cb".into(),
        wanted: vec![DataCategory::LabResults],
        client_auth: ClientAuth::Public,
        app_name: "t".into(),
        data_dir: None,
        // These tests jump the clock by hours; the idle lock has its own tests.
        lock: chartlink_core::LockConfig {
            timeout_ms: 365 * 24 * 3600 * 1000,
            warning_ms: None,
            background_grace_ms: 0,
        },
        revocation: chartlink_core::RevocationPolicy::PurgeNow,
    };
    ChartLink::new(config, host).unwrap()
}

fn conf(extra: &str) -> Vec<u8> {
    format!(r#"{{"authorization_endpoint":"/authorize","token_endpoint":"/token","code_challenge_methods_supported":["S256"]{extra}}}"#).into_bytes()
}

// A discovery failure is its own error class (issue 15: it was reported as an authorization failure).
#[tokio::test]
async fn discovery_failures_are_typed() {
    let html = serve(|_| (200, "text/html", b"<html>Log in to MyChart</html>".to_vec())).await;
    assert!(
        matches!(sdk().discover(&html).await.unwrap_err(), Error::Discovery(m) if m.contains("JSON"))
    );
    let huge = serve(|_| (200, "application/json", vec![b' '; 3 * 1024 * 1024])).await;
    assert!(
        matches!(sdk().discover(&huge).await.unwrap_err(), Error::Discovery(m) if m.contains("larger"))
    );
    let broken = serve(|_| {
        (
            200,
            "application/json",
            b"{\"authorization_endpoint\": ".to_vec(),
        )
    })
    .await;
    assert!(
        matches!(sdk().discover(&broken).await.unwrap_err(), Error::Discovery(m) if m.contains("malformed"))
    );
    let missing = serve(|_| {
        (
            200,
            "application/json",
            br#"{"token_endpoint":"/t","code_challenge_methods_supported":["S256"]}"#.to_vec(),
        )
    })
    .await;
    assert!(
        matches!(sdk().discover(&missing).await.unwrap_err(), Error::Discovery(m) if m.contains("authorization_endpoint"))
    );
    let wrong_type = serve(|_| (200, "application/json", br#"{"capabilities": 7}"#.to_vec())).await;
    assert!(matches!(
        sdk().discover(&wrong_type).await.unwrap_err(),
        Error::Discovery(_)
    ));
    let not_smart = serve(|_| (404, "text/plain", b"nope".to_vec())).await;
    assert!(
        matches!(sdk().discover(&not_smart).await.unwrap_err(), Error::Discovery(m) if m.contains("404"))
    );
    let no_pkce = serve(|_| {
        (
            200,
            "application/json",
            br#"{"authorization_endpoint":"/a","token_endpoint":"/t"}"#.to_vec(),
        )
    })
    .await;
    assert!(
        matches!(sdk().discover(&no_pkce).await.unwrap_err(), Error::Discovery(m) if m.contains("S256"))
    );
    assert!(matches!(
        sdk().discover("not a url").await.unwrap_err(),
        Error::InvalidInput(_)
    ));
    assert!(
        sdk()
            .discover("http://127.0.0.1:1/fhir")
            .await
            .unwrap_err()
            .is_transient()
    );
}

#[tokio::test]
async fn a_lenient_token_response_is_accepted() {
    // No expires_in, "bearer" in lower case, no scope (the requested scope is then granted), no refresh token.
    let base = serve(|path| {
        if path.starts_with("/fhir/.well-known") {
            (
                200,
                "application/json",
                conf(r#","capabilities":["permission-v1"]"#),
            )
        } else {
            (
                200,
                "application/json",
                br#"{"access_token":"at","token_type":"bearer","patient":"p1"}"#.to_vec(),
            )
        }
    })
    .await;
    let sdk = sdk();
    let req = sdk.begin_link(&base).await.unwrap();
    let state = req
        .url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let account = sdk
        .complete_link(&format!("app://cb?code=c&state={state}"))
        .await
        .unwrap();
    assert_eq!(account.patient_id, "p1");
    assert!(
        account.granted.raw.contains("patient/Observation.read"),
        "v1 server, v1 scopes"
    );
    assert!(!account.granted.offline_access || account.granted.raw.contains("offline_access"));
    assert_eq!(sdk.access_token(&account.id).await.unwrap().expose(), "at");
}

#[tokio::test]
async fn bad_token_responses_are_refused() {
    for body in [
        r#"{"token_type":"Bearer","patient":"p"}"#,
        r#"{"access_token":"a","token_type":"Bearer"}"#,
        "not json at all",
        r#"{"error":"invalid_grant"}"#,
    ] {
        static BODY: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
        *BODY.lock().unwrap() = body.to_owned();
        let base = serve(|path| {
            if path.starts_with("/fhir/.well-known") {
                (200, "application/json", conf(""))
            } else {
                let b = BODY.lock().unwrap().clone();
                let status = if b.contains("error") { 400 } else { 200 };
                (status, "application/json", b.into_bytes())
            }
        })
        .await;
        let sdk = sdk();
        let req = sdk.begin_link(&base).await.unwrap();
        let state = req
            .url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .into_owned();
        let err = sdk
            .complete_link(&format!("app://cb?code=c&state={state}"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Authorization(_)), "{body}: {err:?}");
    }
}

/// Starts a link at `base` and completes it with `extra` query parameters on the redirect.
async fn complete(base: &str, extra: &str) -> Result<chartlink_core::LinkedAccount, Error> {
    let sdk = sdk();
    let req = sdk.begin_link(base).await.unwrap();
    let state = req
        .url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    sdk.complete_link(&format!("app://cb?code=c&state={state}{extra}"))
        .await
}

#[tokio::test]
async fn server_numbers_are_clamped_and_only_bearer_tokens_are_used() {
    // A lifetime no clock can add (it used to overflow and panic debug builds), as a float, a string, negative.
    static BODY: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
    for expires in [
        "1e300",
        "18446744073709551615",
        "\"99999999999999999999\"",
        "-3600",
    ] {
        *BODY.lock().unwrap() = format!(
            r#"{{"access_token":"at","token_type":"Bearer","patient":"p1","expires_in":{expires}}}"#
        );
        let base = serve(|path| {
            if path.starts_with("/fhir/.well-known") {
                (200, "application/json", conf(""))
            } else {
                (
                    200,
                    "application/json",
                    BODY.lock().unwrap().clone().into_bytes(),
                )
            }
        })
        .await;
        let account = complete(&base, "").await.unwrap();
        assert_eq!(account.patient_id, "p1", "{expires}");
    }
    // DPoP-bound or unknown token types are refused, not sent as Bearer.
    for tt in ["DPoP", "mac", ""] {
        *BODY.lock().unwrap() =
            format!(r#"{{"access_token":"at","token_type":"{tt}","patient":"p1"}}"#);
        let base = serve(|path| {
            if path.starts_with("/fhir/.well-known") {
                (200, "application/json", conf(""))
            } else {
                (
                    200,
                    "application/json",
                    BODY.lock().unwrap().clone().into_bytes(),
                )
            }
        })
        .await;
        let err = complete(&base, "").await.unwrap_err();
        assert!(
            matches!(&err, Error::Authorization(f) if f.reason == chartlink_core::AuthorizationReason::InvalidAnswer && f.message.contains("Bearer")),
            "{tt}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_server_that_always_sends_iss_is_not_trusted_without_it() {
    // RFC 9207 §2.4: the server advertises authorization_response_iss_parameter_supported.
    let base = serve(|path| {
        if path.starts_with("/fhir/.well-known") {
            (
                200,
                "application/json",
                conf(r#","authorization_response_iss_parameter_supported":true"#),
            )
        } else {
            (
                200,
                "application/json",
                br#"{"access_token":"at","token_type":"Bearer","patient":"p1"}"#.to_vec(),
            )
        }
    })
    .await;
    let err = complete(&base, "").await.unwrap_err();
    assert!(
        matches!(&err, Error::Authorization(f) if f.reason == chartlink_core::AuthorizationReason::Mismatch && f.message.contains("iss")),
        "{err:?}"
    );
    let iss = url::form_urlencoded::byte_serialize(base.as_bytes()).collect::<String>();
    assert!(complete(&base, &format!("&iss={iss}")).await.is_ok());
}

#[tokio::test]
async fn an_oauth_error_description_is_shown_sanitised_and_bounded() {
    let base = serve(|path| {
        if path.starts_with("/fhir/.well-known") {
            (200, "application/json", conf(""))
        } else {
            let long = "x".repeat(5000);
            (
                400,
                "application/json",
                format!(
                    "{{\"error\":\"invalid_request\",\"error_description\":\"Invalid redirect_uri \\u001b[2J\\u202e {long}\"}}"
                )
                .into_bytes(),
            )
        }
    })
    .await;
    let err = complete(&base, "").await.unwrap_err();
    let Error::Authorization(f) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(f.reason, chartlink_core::AuthorizationReason::Refused);
    let m = &f.message;
    assert!(m.contains("Invalid redirect_uri"), "{m}");
    assert!(
        !m.chars().any(|c| c.is_control() || c == '\u{202e}'),
        "{m:?}"
    );
    assert!(m.len() < 400, "{}", m.len());
}
