//! SMART client reqs. 1 and 318 over real TLS: a local test CA (rcgen) signs a server certificate, a rustls server
//! serves a SMART configuration and a token endpoint over HTTPS, and the SDK's HTTP client discovers and POSTs a
//! token request through it, with TLS 1.2 or later. The same server is refused when its CA is not trusted and when
//! the certificate names another host. (Before issue 15 the TLS rows were shown only with plain HTTP on loopback
//! and a refused `http://` URL.)
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use chartlink_core::discovery;
use chartlink_core::http::Http;
use chartlink_core::token;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "ChartLink test CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn root_der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    /// A server certificate for `names`, and its key.
    fn leaf(&self, names: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }
}

/// A minimal HTTPS server: the SMART configuration, a 404 CapabilityStatement and a token endpoint. Returns its
/// port and the TLS versions of the connections it accepted.
async fn serve(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> (u16, Arc<Mutex<Vec<rustls::ProtocolVersion>>>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let versions = Arc::new(Mutex::new(Vec::new()));
    let seen = versions.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Some(v) = tls.get_ref().1.protocol_version() {
                    seen.lock().unwrap().push(v);
                }
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                let base = format!("https://localhost:{port}");
                let (status, body) = match path.as_str() {
                    "/fhir/.well-known/smart-configuration" => (
                        "200 OK",
                        serde_json::json!({
                            "issuer": format!("{base}/fhir"),
                            "authorization_endpoint": format!("{base}/authorize"),
                            "token_endpoint": format!("{base}/token"),
                            "code_challenge_methods_supported": ["S256"],
                            "capabilities": ["permission-v2"],
                        })
                        .to_string(),
                    ),
                    "/token" => (
                        "200 OK",
                        r#"{"access_token":"opaque","token_type":"Bearer","expires_in":300}"#
                            .to_owned(),
                    ),
                    _ => ("404 Not Found", "{}".to_owned()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, versions)
}

/// Client reqs. 1, 318: discovery and a token request over TLS 1.2+, with the server's certificate verified.
#[tokio::test]
async fn discovery_and_token_requests_go_over_verified_tls() {
    let ca = TestCa::new();
    let (cert, key) = ca.leaf(&["localhost"]);
    let (port, versions) = serve(cert, key).await;
    let http = Http::with_roots(&[ca.root_der()]).unwrap();
    let base = format!("https://localhost:{port}/fhir");
    let info = discovery::discover(&http, &base).await.unwrap();
    assert_eq!(info.token_endpoint.scheme(), "https");
    let answer = token::request(
        &http,
        &info.token_endpoint,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "r"),
            ("client_id", "c"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(answer.expires_in_secs, Some(300));
    let versions = versions.lock().unwrap().clone();
    assert!(!versions.is_empty());
    assert!(
        versions.iter().all(|v| matches!(
            v,
            rustls::ProtocolVersion::TLSv1_2 | rustls::ProtocolVersion::TLSv1_3
        )),
        "{versions:?}"
    );
}

/// Client req. 1 ("authenticated servers"): a certificate from an untrusted CA, or one naming another host, is
/// refused before anything is sent.
#[tokio::test]
async fn untrusted_or_misnamed_certificates_are_refused() {
    let ca = TestCa::new();
    let (cert, key) = ca.leaf(&["localhost"]);
    let (port, _) = serve(cert, key).await;
    let other_ca = TestCa::new();
    let untrusting = Http::with_roots(&[other_ca.root_der()]).unwrap();
    let err = discovery::discover(&untrusting, &format!("https://localhost:{port}/fhir"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            discovery::DiscoveryError::Http(chartlink_core::http::HttpError::Network(f))
                if f.kind == chartlink_core::NetworkKind::Certificate
        ),
        "a refused certificate is named as such: {err:?}"
    );
    let trusting = Http::with_roots(&[ca.root_der()]).unwrap();
    // The certificate names `localhost`, not 127.0.0.1.
    let err = discovery::discover(&trusting, &format!("https://127.0.0.1:{port}/fhir"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            discovery::DiscoveryError::Http(chartlink_core::http::HttpError::Network(f))
                if f.kind == chartlink_core::NetworkKind::Certificate
        ),
        "a refused certificate is named as such: {err:?}"
    );
    // And the platform's roots do not include a local test CA either.
    let platform = Http::new().unwrap();
    assert!(
        discovery::discover(&platform, &format!("https://localhost:{port}/fhir"))
            .await
            .is_err()
    );
}
