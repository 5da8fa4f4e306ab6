//! Property tests ("fuzzing" without a fuzzing engine: `cargo fuzz` needs cargo-fuzz and libFuzzer, not
//! installed here) for every parser that reads what a server sends:
//!
//! - the token response: [`chartlink_core::token::classify`] under every status, and the whole code exchange of a link over real HTTP
//!   (the sandbox's token endpoint answering the fuzzed body),
//! - the SMART configuration and the CapabilityStatement fallback, through [`discover`] against a loopback HTTP
//!   server serving the fuzzed body,
//! - the id_token: [`jose::verify`] and [`jose::check_id_token`], also with validly signed tokens whose header and
//!   claims are fuzzed,
//! - a search Bundle page, through [`sync::sync_account`] against a loopback FHIR server serving the fuzzed page,
//!   and every view parser of [`views`] on what got stored and on fuzzed resources.
//!
//! Inputs: arbitrary bytes, arbitrary JSON (a recursive strategy with the field names these documents use), and
//! mutations of real documents (bytes flipped, inserted, deleted, cut; values replaced by huge or negative numbers,
//! deep nesting, very long strings, values of the wrong type). Properties: no panic (a debug build's integer
//! overflow counts), a typed error on garbage, the valid documents accepted. `PROPTEST_CASES` sets the number of
//! cases of every test (each test's default keeps it to seconds in a debug build).
#![allow(clippy::unwrap_used)]

mod common;

use common::RobotBrowser;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chartlink_core::account::{Accounts, Tokens};
use chartlink_core::discovery::{DiscoveryError, ScopeSyntax, ServerInfo, discover};
use chartlink_core::fhir::RetryPolicy;
use chartlink_core::http::Http;
use chartlink_core::jose::{self, Signer, SoftwareSigner};
use chartlink_core::scopes::GrantedScope;
use chartlink_core::store::{AccountKeys, Store};
use chartlink_core::sync::{SyncContext, SyncOptions, sync_account};
use chartlink_core::views;
use chartlink_core::{
    AccountStatus, AppConfig, ChartLink, Error, Host, LinkedAccount, ManualClock,
    MemorySecureStore, Secret,
};
use chartlink_sandbox::{Config, FaultKind, PortalRobot, Sandbox, ScriptedFault};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

// ---------------------------------------------------------------------------------------------------------------
// Set-up shared by the tests: one runtime, one sandbox, one loopback server
// ---------------------------------------------------------------------------------------------------------------

fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases: n,
        // Shrinking a failure over HTTP takes long; a few hundred steps find a small case.
        max_shrink_iters: 512,
        ..ProptestConfig::default()
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// A sandbox on the shared runtime, with real documents taken from it.
struct World {
    sandbox: Sandbox,
    smart_configuration: Value,
    capability_statement: Value,
    resources: Vec<Value>,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        runtime().block_on(async {
            let sandbox = Sandbox::start(Config::default()).await.unwrap();
            let _ = Http::new().unwrap();
            let get = |path: String| async move {
                reqwest::get(path)
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap()
            };
            let smart_configuration = get(format!(
                "{}/.well-known/smart-configuration",
                sandbox.fhir_base()
            ))
            .await;
            let capability_statement = get(format!("{}/metadata", sandbox.fhir_base())).await;
            let admin = sandbox.admin();
            let resources = admin
                .truth("daniel-chen", true)
                .unwrap()
                .into_iter()
                .filter_map(|(ty, id, _)| admin.resource(&ty, &id).unwrap())
                .collect();
            World {
                sandbox,
                smart_configuration,
                capability_statement,
                resources,
            }
        })
    })
}

/// What the loopback server answers for a path prefix.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

/// A loopback HTTP/1.1 server whose answers the test sets: the parsers see real HTTP, as from a server.
struct FuzzServer {
    base: String,
    routes: Arc<Mutex<Vec<(String, Answer)>>>,
    /// Serializes the tests that share it.
    turn: tokio::sync::Mutex<()>,
}

fn fuzz_server() -> &'static FuzzServer {
    static S: OnceLock<FuzzServer> = OnceLock::new();
    S.get_or_init(|| {
        let routes: Arc<Mutex<Vec<(String, Answer)>>> = Arc::default();
        let listener = runtime()
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let r = routes.clone();
        runtime().spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let routes = r.clone();
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&req);
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let answer = routes
                        .lock()
                        .unwrap()
                        .iter()
                        .find(|(prefix, _)| path.starts_with(prefix.as_str()))
                        .map(|(_, a)| a.clone())
                        .unwrap_or(Answer {
                            status: 404,
                            content_type: "text/plain".into(),
                            body: b"not found".to_vec(),
                        });
                    let head = format!(
                        "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        answer.status,
                        answer.content_type,
                        answer.body.len()
                    );
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(&answer.body).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        FuzzServer {
            base,
            routes,
            turn: tokio::sync::Mutex::new(()),
        }
    })
}

impl FuzzServer {
    fn set(&self, routes: Vec<(&str, Answer)>) {
        *self.routes.lock().unwrap() = routes.into_iter().map(|(p, a)| (p.to_owned(), a)).collect();
    }
}

fn json_answer(status: u16, body: Vec<u8>) -> Answer {
    Answer {
        status,
        content_type: "application/json".into(),
        body,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------------------------

const FIELDS: &[&str] = &[
    "access_token",
    "token_type",
    "expires_in",
    "scope",
    "refresh_token",
    "patient",
    "id_token",
    "need_patient_banner",
    "encounter",
    "error",
    "issuer",
    "jwks_uri",
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "registration_endpoint",
    "management_endpoint",
    "capabilities",
    "code_challenge_methods_supported",
    "rest",
    "security",
    "extension",
    "url",
    "valueUri",
    "resourceType",
    "type",
    "entry",
    "resource",
    "link",
    "relation",
    "id",
    "meta",
    "versionId",
    "lastUpdated",
    "code",
    "coding",
    "system",
    "display",
    "text",
    "category",
    "status",
    "valueQuantity",
    "value",
    "unit",
    "effectiveDateTime",
    "issued",
    "referenceRange",
    "low",
    "high",
    "interpretation",
    "subject",
    "reference",
    "content",
    "attachment",
    "data",
    "contentType",
    "date",
    "period",
    "start",
    "end",
    "clinicalStatus",
    "onsetDateTime",
    "reaction",
    "manifestation",
    "medicationCodeableConcept",
    "dosageInstruction",
    "vaccineCode",
    "occurrenceDateTime",
    "name",
    "given",
    "family",
    "birthDate",
    "gender",
    "identifier",
    "result",
    "context",
    "encounter",
    "alg",
    "kid",
    "kty",
    "crv",
    "x",
    "y",
    "n",
    "e",
    "keys",
    "iss",
    "aud",
    "exp",
    "sub",
    "fhirUser",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(FIELDS).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
    ]
}

fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,24}",
        Just(String::new()),
        proptest::sample::select(vec![
            "Bearer",
            "S256",
            "laboratory",
            "vital-signs",
            "Bundle",
            "searchset",
            "next",
            "Observation",
            "Patient",
            "Condition",
            "2019-02-30",
            "2024-02-29T25:61:61+14:00",
            "0000",
            "9999-12-31T23:59:59Z",
            "-1",
            "1e309",
            "NaN",
            "http://loinc.org",
            "4548-4",
            "../../../etc",
            "//evil.example/x",
            "javascript:alert(1)",
            "urn:uuid:1",
            "Observation/",
            "\u{feff}",
            "ES384",
            "RS256",
            "EC",
            "P-384",
        ])
        .prop_map(str::to_owned),
        (1usize..64).prop_map(|n| "é".repeat(n)),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        proptest::sample::select(vec![
            json!(0),
            json!(-1),
            json!(1),
            json!(3600),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(i64::MAX),
            json!(9_223_372_036_854_775u64),
            json!(18_446_744_073_709_551u64),
            json!(1e308),
            json!(-1e308),
            json!(0.1),
            json!(-0.0),
        ]),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        nasty_string().prop_map(Value::String),
    ]
}

/// Arbitrary JSON, nested up to 6 deep.
fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn deep(n: usize) -> Value {
    let mut v = json!("bottom");
    for i in 0..n {
        v = if i % 2 == 0 {
            json!([v])
        } else {
            json!({"resource": v})
        };
    }
    v
}

/// A value to put where a valid one was: huge and negative numbers, deep nesting, long strings, wrong types.
fn nasty_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => number(),
        2 => nasty_string().prop_map(Value::String),
        1 => (10_000usize..300_000).prop_map(|n| Value::String("A".repeat(n))),
        1 => (1usize..120).prop_map(deep),
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(json!({})),
        1 => Just(json!([])),
        2 => json_value(),
    ]
}

/// One change to a JSON document: the value at a path (chosen by the selectors) replaced, removed, or a key added.
#[derive(Debug, Clone)]
enum Edit {
    Replace(Vec<u32>, Value),
    Remove(Vec<u32>),
    Add(Vec<u32>, String, Value),
}

fn edit() -> impl Strategy<Value = Edit> {
    let path = proptest::collection::vec(any::<u32>(), 0..6);
    prop_oneof![
        4 => (path.clone(), nasty_value()).prop_map(|(p, v)| Edit::Replace(p, v)),
        1 => path.clone().prop_map(Edit::Remove),
        1 => (path, key(), nasty_value()).prop_map(|(p, k, v)| Edit::Add(p, k, v)),
    ]
}

fn child(v: &mut Value, sel: u32) -> Option<&mut Value> {
    match v {
        Value::Object(m) if !m.is_empty() => {
            let i = sel as usize % m.len();
            m.values_mut().nth(i)
        }
        Value::Array(a) if !a.is_empty() => {
            let i = sel as usize % a.len();
            a.get_mut(i)
        }
        _ => None,
    }
}

fn apply(doc: &mut Value, e: &Edit) {
    let (path, last) = match e {
        Edit::Replace(p, _) | Edit::Remove(p) | Edit::Add(p, _, _) => (p, p.last().copied()),
    };
    let mut at = doc;
    // Walk to the parent of the target.
    for sel in path.iter().take(path.len().saturating_sub(1)) {
        if child(at, *sel).is_none() {
            break;
        }
        at = child(at, *sel).unwrap();
    }
    match e {
        Edit::Replace(_, v) => match child(at, last.unwrap_or(0)) {
            Some(target) => *target = v.clone(),
            None => *at = v.clone(),
        },
        Edit::Remove(_) => match at {
            Value::Object(m) if !m.is_empty() => {
                let k = m.keys().nth(last.unwrap_or(0) as usize % m.len()).cloned();
                if let Some(k) = k {
                    m.remove(&k);
                }
            }
            Value::Array(a) if !a.is_empty() => {
                let i = last.unwrap_or(0) as usize % a.len();
                a.remove(i);
            }
            _ => {}
        },
        Edit::Add(_, k, v) => {
            if let Value::Object(m) = at {
                m.insert(k.clone(), v.clone());
            } else if let Value::Array(a) = at {
                a.push(v.clone());
            }
        }
    }
}

/// One change to the bytes of a document.
#[derive(Debug, Clone)]
enum ByteEdit {
    Flip(u32, u8),
    Insert(u32, Vec<u8>),
    Delete(u32, u16),
    Cut(u32),
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        3 => (any::<u32>(), 1u8..=255).prop_map(|(i, m)| ByteEdit::Flip(i, m)),
        2 => (any::<u32>(), prop_oneof![
            proptest::collection::vec(any::<u8>(), 1..16),
            proptest::sample::select(vec![b"{".to_vec(), b"}".to_vec(), b"[".to_vec(), b"\"".to_vec(),
                b",".to_vec(), b"\\u0000".to_vec(), b"\\ud800".to_vec(), b"99999999999999999999999".to_vec(),
                b"-".to_vec(), b"null".to_vec(), b"\xff\xfe".to_vec()]),
        ]).prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        2 => (any::<u32>(), 1u16..64).prop_map(|(i, n)| ByteEdit::Delete(i, n)),
        1 => any::<u32>().prop_map(ByteEdit::Cut),
    ]
}

fn apply_bytes(bytes: &mut Vec<u8>, e: &ByteEdit) {
    let at = |i: u32, len: usize| if len == 0 { 0 } else { i as usize % (len + 1) };
    match e {
        ByteEdit::Flip(i, m) if !bytes.is_empty() => {
            let n = bytes.len();
            bytes[*i as usize % n] ^= m;
        }
        ByteEdit::Flip(..) => {}
        ByteEdit::Insert(i, b) => {
            let p = at(*i, bytes.len());
            bytes.splice(p..p, b.iter().copied());
        }
        ByteEdit::Delete(i, n) => {
            let p = at(*i, bytes.len());
            let end = (p + *n as usize).min(bytes.len());
            bytes.drain(p..end);
        }
        ByteEdit::Cut(i) => {
            let p = at(*i, bytes.len());
            bytes.truncate(p);
        }
    }
}

/// A seed mutated: JSON edits, then byte edits (either list may be empty, so the seed itself comes up too).
fn mutated(seeds: Vec<Value>) -> impl Strategy<Value = Vec<u8>> {
    (
        0..seeds.len(),
        proptest::collection::vec(edit(), 0..4),
        proptest::collection::vec(byte_edit(), 0..3),
    )
        .prop_map(move |(i, edits, byte_edits)| {
            let mut doc = seeds[i].clone();
            for e in &edits {
                apply(&mut doc, e);
            }
            let mut bytes = serde_json::to_vec(&doc).unwrap();
            for e in &byte_edits {
                apply_bytes(&mut bytes, e);
            }
            bytes
        })
}

fn mutated_values(seeds: Vec<Value>) -> impl Strategy<Value = Value> {
    (0..seeds.len(), proptest::collection::vec(edit(), 0..5)).prop_map(move |(i, edits)| {
        let mut doc = seeds[i].clone();
        for e in &edits {
            apply(&mut doc, e);
        }
        doc
    })
}

/// Bytes a server might send for a document of which `seeds` are valid examples.
fn document(seeds: Vec<Value>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..512),
        2 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        5 => mutated(seeds),
    ]
}

// ---------------------------------------------------------------------------------------------------------------
// The token response
// ---------------------------------------------------------------------------------------------------------------

fn token_seeds() -> Vec<Value> {
    vec![
        json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600,
            "scope": "launch/patient openid fhirUser offline_access patient/Patient.rs patient/Observation.rs patient/Condition.rs",
            "patient": "leo-garcia", "refresh_token": "rt-1", "need_patient_banner": true}),
        json!({"access_token": "at-2", "token_type": "bearer", "patient": "leo-garcia"}),
    ]
}

proptest! {
    #![proptest_config(cases(4096))]

    /// The token answer classifier under the statuses a token endpoint answers with, then every field the SDK
    /// uses (a lifetime is clamped: the expiry never overflows).
    #[test]
    fn token_response_parse_never_panics(
        body in document(token_seeds()),
        status in prop::sample::select(vec![200u16, 400, 401, 429, 500, 503]),
        json_type in any::<bool>(),
    ) {
        let mut headers = reqwest::header::HeaderMap::new();
        let ct = if json_type { "application/json" } else { "text/html" };
        headers.insert("content-type", reqwest::header::HeaderValue::from_static(ct));
        let resp = chartlink_core::http::Response {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            headers,
            body,
        };
        match chartlink_core::token::classify(&resp) {
            Ok(t) => {
                prop_assert_eq!(status, 200);
                let _ = t.access.expose().len();
                let _ = t.expires_at_ms(i64::MAX);
                let _ = t.expires_at_ms(i64::MIN);
                prop_assert!(t.expires_in_secs.is_none_or(|s| s <= chartlink_core::token::MAX_LIFETIME_SECS));
            }
            Err(chartlink_core::token::TokenError::GrantGone { .. }) => {
                // Only a well-formed JSON OAuth error below 500 ends a grant.
                prop_assert!(json_type && (400..500).contains(&status) && status != 429);
            }
            Err(_) => {}
        }
    }
}

fn link_sdk() -> ChartLink {
    let host = Host {
        secure_store: Arc::new(MemorySecureStore::default()),
        browser: Some(Arc::new(RobotBrowser(PortalRobot::allowing(
            "maria",
            "maria-demo",
            Some("leo-garcia"),
        )))),
        clock: Arc::new(ManualClock::new()),
        listener: None,
    };
    ChartLink::new(
        AppConfig::new("chartlink-demo", "chartlink-demo://callback"),
        host,
    )
    .unwrap()
}

/// Links through the sandbox's portal while its token endpoint answers the code exchange with `status` and `body`.
fn link_with_token_answer(
    status: u16,
    content_type: &str,
    body: Vec<u8>,
) -> Result<LinkedAccount, Error> {
    let w = world();
    let s = fuzz_server();
    runtime().block_on(async {
        let _turn = s.turn.lock().await;
        w.sandbox.admin().clear_faults();
        w.sandbox.admin().script_fault(ScriptedFault {
            path_prefix: "/oauth2/token".into(),
            kind: FaultKind::Body {
                status,
                content_type: content_type.into(),
                body: String::from_utf8_lossy(&body).into_owned(),
            },
            count: 1,
        });
        let r = link_sdk().link(&w.sandbox.fhir_base()).await;
        w.sandbox.admin().clear_faults();
        r
    })
}

#[test]
fn a_valid_token_answer_links() {
    for seed in token_seeds() {
        let account =
            link_with_token_answer(200, "application/json", serde_json::to_vec(&seed).unwrap())
                .unwrap();
        assert_eq!(account.patient_id, "leo-garcia");
    }
}

/// Found by the property below (a value of its number list): `expires_in` is a u64 the server picks, and the SDK
/// adds it in milliseconds to the clock as an i64 (core/src/link.rs:349), which overflows in a debug build and wraps
/// in a release build. Whatever the SDK does with such an answer (refuse it, or clamp the lifetime), it must not
/// panic.
#[test]
fn an_absurd_expires_in_at_the_code_exchange_does_not_panic() {
    for expires_in in [9_223_372_036_854_775u64, u64::MAX / 1000, u64::MAX] {
        let mut body = token_seeds()[0].clone();
        body["expires_in"] = json!(expires_in);
        let r = std::panic::catch_unwind(|| {
            link_with_token_answer(200, "application/json", serde_json::to_vec(&body).unwrap())
        });
        assert!(
            r.is_ok(),
            "expires_in {expires_in} panicked the code exchange"
        );
    }
}

/// The same sum on refresh (core/src/account.rs:343): a refresh answered with an absurd `expires_in`.
#[test]
fn an_absurd_expires_in_on_refresh_does_not_panic() {
    let w = world();
    let s = fuzz_server();
    for expires_in in [9_223_372_036_854_775u64, u64::MAX / 1000] {
        let clock = Arc::new(ManualClock::new());
        let host = Host {
            secure_store: Arc::new(MemorySecureStore::default()),
            browser: Some(Arc::new(RobotBrowser(PortalRobot::allowing(
                "maria",
                "maria-demo",
                Some("leo-garcia"),
            )))),
            clock: clock.clone(),
            listener: None,
        };
        let config = AppConfig {
            // The clock jumps by hours; the idle lock must not fire.
            lock: chartlink_core::LockConfig {
                timeout_ms: 365 * 24 * 3600 * 1000,
                warning_ms: None,
                background_grace_ms: 0,
            },
            ..AppConfig::new("chartlink-demo", "chartlink-demo://callback")
        };
        let sdk = ChartLink::new(config, host).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime().block_on(async {
                let _turn = s.turn.lock().await;
                w.sandbox.admin().clear_faults();
                let account = sdk.link(&w.sandbox.fhir_base()).await.unwrap();
                let mut body = token_seeds()[0].clone();
                body["expires_in"] = json!(expires_in);
                w.sandbox.admin().script_fault(ScriptedFault {
                    path_prefix: "/oauth2/token".into(),
                    kind: FaultKind::Body {
                        status: 200,
                        content_type: "application/json".into(),
                        body: body.to_string(),
                    },
                    count: 1,
                });
                // Two hours later the access token is due for a refresh.
                clock.advance_ms(2 * 3600 * 1000);
                let first = sdk.access_token(&account.id).await;
                // And once more, with whatever expiry the SDK stored.
                clock.advance_ms(2 * 3600 * 1000);
                let second = sdk.access_token(&account.id).await;
                w.sandbox.admin().clear_faults();
                eprintln!("refresh with expires_in {expires_in}: {first:?} then {second:?}");
                (first.is_ok(), second.is_ok())
            })
        }));
        assert!(r.is_ok(), "expires_in {expires_in} on refresh panicked");
    }
}

proptest! {
    #![proptest_config(cases(200))]

    /// The whole code exchange over HTTP with a fuzzed token endpoint answer: a typed error or an account, no panic.
    #[test]
    fn the_code_exchange_survives_any_token_answer(
        status in prop_oneof![6 => Just(200u16), 1 => Just(400u16), 1 => Just(401u16), 1 => Just(503u16), 1 => Just(429u16)],
        content_type in prop_oneof![4 => Just("application/json"), 1 => Just("text/html"), 1 => Just("application/json;charset=UTF-8")],
        body in document(token_seeds()),
    ) {
        match link_with_token_answer(status, content_type, body.clone()) {
            Ok(account) => {
                prop_assert!(status == 200);
                prop_assert!(!account.patient_id.is_empty());
            }
            Err(e) => prop_assert!(matches!(e, Error::Authorization(_) | Error::Network(_) | Error::AccessRevoked), "{e:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The SMART configuration
// ---------------------------------------------------------------------------------------------------------------

fn discover_with(well_known: Answer, metadata: Answer) -> Result<ServerInfo, DiscoveryError> {
    let s = fuzz_server();
    runtime().block_on(async {
        let _turn = s.turn.lock().await;
        s.set(vec![
            ("/fhir/.well-known/smart-configuration", well_known),
            ("/fhir/metadata", metadata),
        ]);
        let http = Http::new().unwrap();
        discover(&http, &format!("{}/fhir", s.base)).await
    })
}

fn not_found() -> Answer {
    Answer {
        status: 404,
        content_type: "text/plain".into(),
        body: b"nope".to_vec(),
    }
}

#[test]
fn the_real_smart_configuration_and_capability_statement_are_accepted() {
    let w = world();
    let info = discover_with(
        json_answer(200, serde_json::to_vec(&w.smart_configuration).unwrap()),
        not_found(),
    )
    .unwrap();
    assert!(!info.legacy_discovery);
    let info = discover_with(
        not_found(),
        json_answer(200, serde_json::to_vec(&w.capability_statement).unwrap()),
    )
    .unwrap();
    assert!(info.legacy_discovery);
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn discovery_survives_any_smart_configuration(body in document(vec![world().smart_configuration.clone()])) {
        let parsed = serde_json::from_slice::<Value>(&body);
        match discover_with(json_answer(200, body), not_found()) {
            Ok(info) => {
                prop_assert!(parsed.is_ok(), "accepted a body that is not JSON");
                prop_assert!(matches!(info.scope_syntax, ScopeSyntax::V1 | ScopeSyntax::V2));
            }
            Err(DiscoveryError::InvalidBase) => prop_assert!(false, "the base is fine"),
            Err(_) => {}
        }
    }

    #[test]
    fn discovery_survives_any_capability_statement(body in document(vec![world().capability_statement.clone()])) {
        let parsed = serde_json::from_slice::<Value>(&body);
        if let Ok(info) = discover_with(not_found(), json_answer(200, body)) {
            prop_assert!(parsed.is_ok());
            prop_assert!(info.legacy_discovery);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The id_token
// ---------------------------------------------------------------------------------------------------------------

fn signer() -> &'static SoftwareSigner {
    static S: OnceLock<SoftwareSigner> = OnceLock::new();
    S.get_or_init(|| SoftwareSigner::generate().unwrap())
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS over any header and claims, validly signed with the test key.
fn signed(header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(&serde_json::to_vec(header).unwrap()),
        b64(&serde_json::to_vec(claims).unwrap())
    );
    let sig = signer().sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64(&sig))
}

const ISSUER: &str = "https://ehr.example/fhir";
const CLIENT: &str = "chartlink-demo";

fn valid_claims() -> Value {
    json!({"iss": ISSUER, "aud": CLIENT, "sub": "maria", "exp": 2_000_000_000i64, "iat": 1_700_000_000i64,
        "fhirUser": "https://ehr.example/fhir/Patient/maria-garcia"})
}

fn valid_header() -> Value {
    json!({"alg": "ES384", "typ": "JWT", "kid": signer().key_id()})
}

fn jwks() -> Value {
    json!({"keys": [signer().public_jwk()]})
}

#[test]
fn a_valid_id_token_verifies() {
    let claims = jose::verify(&signed(&valid_header(), &valid_claims()), &jwks()).unwrap();
    jose::check_id_token(&claims, ISSUER, CLIENT, 1_900_000_000, 300).unwrap();
}

proptest! {
    #![proptest_config(cases(2048))]

    /// Fuzzed bytes of a real token, against the real or a fuzzed JWKS.
    #[test]
    fn verify_survives_any_token_text(
        token in mutated(vec![Value::String(signed(&valid_header(), &valid_claims()))])
            .prop_map(|b| String::from_utf8_lossy(&b).trim_matches('"').to_owned()),
        keys in prop_oneof![3 => Just(jwks()), 1 => mutated_values(vec![jwks()]), 1 => json_value()],
    ) {
        let _ = jose::verify(&token, &keys);
    }

    /// Validly signed tokens with fuzzed headers and claims: what check_id_token gets from a server that signs
    /// nonsense.
    #[test]
    fn id_token_claim_checks_survive_any_claims(
        header in prop_oneof![3 => Just(valid_header()), 1 => mutated_values(vec![valid_header()])],
        claims in prop_oneof![4 => mutated_values(vec![valid_claims()]), 1 => json_value()],
        now in prop_oneof![Just(1_900_000_000i64), any::<i64>()],
        skew in prop_oneof![Just(300i64), any::<i64>()],
    ) {
        if let Ok(c) = jose::verify(&signed(&header, &claims), &jwks()) {
            // What was signed, as JSON reads it back (floats may round).
            let reread: Value = serde_json::from_slice(&serde_json::to_vec(&claims).unwrap()).unwrap();
            prop_assert_eq!(&c, &reread);
            let _ = jose::check_id_token(&c, ISSUER, CLIENT, now, skew);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// A search Bundle page, through the sync engine
// ---------------------------------------------------------------------------------------------------------------

const SCOPE: &str = "launch/patient patient/Patient.rs patient/Condition.rs patient/DocumentReference.rs \
    patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory";

fn bundle_seeds() -> Vec<Value> {
    let w = world();
    let of = |ty: &str| -> Vec<Value> {
        w.resources
            .iter()
            .filter(|r| r["resourceType"] == ty)
            .take(12)
            .cloned()
            .collect()
    };
    let page = |entries: Vec<Value>, next: bool| {
        let mut b = json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(),
            "meta": {"lastUpdated": "2024-05-01T10:00:00Z"},
            "link": [{"relation": "self", "url": "Observation?patient=p1"}],
            "entry": entries.into_iter().map(|r| json!({"fullUrl": format!("{}/{}", r["resourceType"].as_str().unwrap_or(""), r["id"].as_str().unwrap_or("")), "resource": r, "search": {"mode": "match"}})).collect::<Vec<_>>()});
        if next {
            b["link"]
                .as_array_mut()
                .unwrap()
                .push(json!({"relation": "next", "url": "Observation?patient=p1&page=2"}));
        }
        b
    };
    let mut mixed = of("Observation");
    mixed.extend(of("Condition"));
    mixed.extend(of("DocumentReference"));
    vec![
        page(mixed, false),
        page(of("Observation"), true),
        page(of("DocumentReference"), false),
        json!({"resourceType": "Bundle", "type": "searchset", "total": 0}),
    ]
}

fn fake_account(base: &str) -> (LinkedAccount, Tokens) {
    let fhir = Url::parse(&format!("{base}/fhir")).unwrap();
    let account = LinkedAccount {
        id: "fuzz".into(),
        server: ServerInfo {
            iss_parameter_supported: false,
            fhir_base: fhir.clone(),
            issuer: None,
            authorization_endpoint: fhir.clone(),
            token_endpoint: fhir,
            revocation_endpoint: None,
            registration_endpoint: None,
            management_endpoint: None,
            jwks_uri: None,
            capabilities: vec![],
            scope_syntax: ScopeSyntax::V2,
            legacy_discovery: false,
            metadata: Default::default(),
        },
        client_id: "c".into(),
        redirect_uri: "app://cb".into(),
        patient_id: "p1".into(),
        fhir_user: None,
        user_subject: None,
        granted: GrantedScope::parse(SCOPE),
        linked_at_ms: 0,
        status: AccountStatus::Active,
        device_client_id: None,
        consent: Vec::new(),
        can_renew: true,
        user_name: None,
        linked_scope: None,
    };
    let tokens = Tokens {
        access: Secret::new("opaque"),
        access_expires_at_ms: None,
        access_issued_at_ms: None,
        refresh: None,
        device_key: None,
    };
    (account, tokens)
}

/// What one sync against a server answering every search with `page` did, and the views of what it stored.
struct PageRun {
    report: Result<chartlink_core::SyncReport, Error>,
    stored: Vec<Value>,
}

fn sync_page(page: Vec<u8>, patient: Option<Vec<u8>>) -> PageRun {
    let s = fuzz_server();
    runtime().block_on(async {
        let _turn = s.turn.lock().await;
        let patient = patient.unwrap_or_else(|| {
            serde_json::to_vec(
                &json!({"resourceType": "Patient", "id": "p1", "name": [{"text": "P One"}]}),
            )
            .unwrap()
        });
        s.set(vec![
            ("/fhir/metadata", not_found()),
            ("/fhir/Patient/", json_answer(200, patient)),
            // The seeds' next link: a last, empty page.
            (
                "/fhir/Observation?patient=p1&page=2",
                json_answer(
                    200,
                    br#"{"resourceType":"Bundle","type":"searchset"}"#.to_vec(),
                ),
            ),
            (
                "/fhir/Binary/",
                Answer {
                    status: 200,
                    content_type: "text/plain".into(),
                    body: b"a note".to_vec(),
                },
            ),
            ("/fhir/", json_answer(200, page)),
        ]);
        let http = Http::new().unwrap();
        let accounts = Accounts::load(
            Arc::new(MemorySecureStore::default()),
            Arc::new(ManualClock::new()),
            http.clone(),
            Default::default(),
        )
        .unwrap();
        let (account, tokens) = fake_account(&s.base);
        let account = accounts.insert(account, tokens).unwrap();
        let store = Store::open_in_memory().unwrap();
        let keys = AccountKeys::derive(&[7u8; 32], &account.id).unwrap();
        let ctx = SyncContext {
            http: &http,
            accounts: &accounts,
            store: &store,
            now_ms: 1_700_000_000_000,
        };
        let options = SyncOptions {
            max_pages: 5,
            retry: RetryPolicy {
                attempts: 1,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(1),
            },
            ..SyncOptions::default()
        };
        let never = || false;
        let report = sync_account(
            &ctx,
            &account,
            chartlink_core::sync::Writer::Keys(&keys),
            &options,
            &mut |_| {},
            &never,
        )
        .await;
        let mut stored = Vec::new();
        for ty in ["Patient", "Observation", "Condition", "DocumentReference"] {
            stored.extend(store.of_type(&keys, &account.id, ty).unwrap());
        }
        PageRun { report, stored }
    })
}

/// Every view parser over a set of resources (as the SDK's read paths run them).
fn run_views(resources: &[Value]) {
    let mut labs: Vec<views::LabResult> = resources.iter().filter_map(views::lab_result).collect();
    let mut visits: Vec<views::Visit> = resources.iter().filter_map(views::visit).collect();
    let docs: Vec<views::Document> = resources.iter().filter_map(views::document).collect();
    for r in resources {
        let _ = views::vital_sign(r);
        let _ = views::allergy(r);
        let _ = views::medication(r);
        let _ = views::immunization(r);
        let _ = views::problem(r);
        let _ = views::appointment(r);
        let _ = views::demographics(r);
        let _ = views::document_content(r);
        if let Some(d) = r.as_str().and_then(views::FhirDate::parse) {
            let _ = d.sort_key();
            let _ = d.to_fhir_string();
        }
    }
    views::link_reports(&mut labs, resources);
    views::link_visit_documents(&mut visits, &docs);
    let latest = views::latest_per_code(&labs);
    for l in latest.iter().chain(labs.iter()) {
        if let Some(code) = l.code.as_ref().and_then(|c| c.code.as_deref()) {
            let _ = views::lab_trend(&labs, code);
        }
        if let Some(d) = &l.date {
            let _ = d.sort_key();
            let _ = d.to_fhir_string();
        }
    }
    for d in &docs {
        let _ = d.date.as_ref().map(|d| d.sort_key());
    }
}

#[test]
fn real_search_pages_are_stored_whole() {
    for seed in bundle_seeds() {
        // The pages are another patient's record served to an account linked to `p1`: they name p1 here, since
        // the sync refuses what belongs to anyone else (see `a_page_of_another_patient_is_refused`).
        let seed: Value = serde_json::from_str(
            &seed
                .to_string()
                .replace("Patient/daniel-chen", "Patient/p1"),
        )
        .unwrap();
        let run = sync_page(serde_json::to_vec(&seed).unwrap(), None);
        let report = run.report.unwrap();
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        let searched = ["Observation", "Condition", "DocumentReference"];
        let mut want: Vec<(String, String)> = seed["entry"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|e| &e["resource"])
            .filter(|r| searched.contains(&r["resourceType"].as_str().unwrap_or("")))
            .map(|r| {
                (
                    r["resourceType"].as_str().unwrap().to_owned(),
                    r["id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        want.push(("Patient".into(), "p1".into()));
        want.sort();
        want.dedup();
        let mut got: Vec<(String, String)> = run
            .stored
            .iter()
            .map(|r| {
                (
                    r["resourceType"].as_str().unwrap().to_owned(),
                    r["id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        got.sort();
        assert_eq!(got, want);
        run_views(&run.stored);
    }
}

#[test]
fn a_page_of_another_patient_is_refused() {
    for seed in bundle_seeds() {
        let run = sync_page(serde_json::to_vec(&seed).unwrap(), None);
        let report = run.report.unwrap();
        let entries = seed["entry"].as_array().map_or(0, Vec::len);
        assert!(report.refused > 0 || entries == 0, "{entries} entries");
        assert!(
            run.stored.iter().all(|r| r["resourceType"] == "Patient"),
            "only the linked patient's own Patient resource is stored"
        );
    }
}

proptest! {
    #![proptest_config(cases(256))]

    /// A fuzzed search page answers every search: the sync ends with a report (a failing query is a typed failure in
    /// it) and nothing panics, neither the sync nor the views over what it stored.
    #[test]
    fn the_sync_survives_any_search_page(
        page in document(bundle_seeds()),
        patient in prop_oneof![3 => Just(None), 1 => document(vec![json!({"resourceType": "Patient", "id": "p1", "birthDate": "2015-06-01", "name": [{"given": ["P"], "family": "One"}]})]).prop_map(Some)],
    ) {
        let is_bundle = serde_json::from_slice::<Value>(&page)
            .is_ok_and(|v| v.is_object() && v["resourceType"] == "Bundle");
        let run = sync_page(page, patient);
        let report = run.report.unwrap();
        if !is_bundle {
            prop_assert!(
                report.failures.iter().any(|f| f.query == "Condition"),
                "a page that is not a Bundle fails its query: {:?}", report.failures
            );
        }
        run_views(&run.stored);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The views, directly
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn the_views_read_the_real_record() {
    let w = world();
    let of = |ty: &'static str| w.resources.iter().filter(move |r| r["resourceType"] == ty);
    assert!(of("Observation").any(|r| views::lab_result(r).is_some()));
    assert!(of("Observation").any(|r| views::vital_sign(r).is_some()));
    for (ty, parse) in [
        (
            "AllergyIntolerance",
            (|r| views::allergy(r).is_some()) as fn(&Value) -> bool,
        ),
        ("MedicationRequest", |r| views::medication(r).is_some()),
        ("Immunization", |r| views::immunization(r).is_some()),
        ("Condition", |r| views::problem(r).is_some()),
        ("Encounter", |r| views::visit(r).is_some()),
        ("DocumentReference", |r| views::document(r).is_some()),
        ("Appointment", |r| views::appointment(r).is_some()),
        ("Patient", |r| views::demographics(r).is_some()),
        ("Binary", |r| views::document_content(r).is_some()),
    ] {
        let all: Vec<&Value> = of(ty).collect();
        let read = all.iter().filter(|r| parse(r)).count();
        assert_eq!(read, all.len(), "{ty}: {read} of {} read", all.len());
    }
    run_views(&w.resources);
}

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn the_views_survive_any_resource(
        resources in proptest::collection::vec(
            prop_oneof![4 => mutated_values(world().resources.clone()), 1 => json_value()],
            1..12,
        ),
    ) {
        run_views(&resources);
    }

    #[test]
    fn fhir_dates_survive_any_text(s in prop_oneof![
        "\\PC{0,40}",
        "[0-9]{1,6}(-[0-9]{1,3}(-[0-9]{1,3}(T[0-9]{1,3}:[0-9]{1,3}(:[0-9]{1,3}(\\.[0-9]{0,12})?)?(Z|[+-][0-9]{1,3}:[0-9]{1,3})?)?)?)?",
    ]) {
        if let Some(d) = views::FhirDate::parse(&s) {
            let _ = d.sort_key();
            let again = views::FhirDate::parse(&d.to_fhir_string());
            prop_assert!(again.is_some(), "{s:?} parsed but its own output did not");
        }
    }

    #[test]
    fn document_content_survives_any_bytes(ct in "\\PC{0,30}", bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = views::document_content_raw(&ct, bytes);
    }
}
