//! Loading the provider directory from the sandbox over loopback: the User-access Brands bundle found through the
//! SMART configuration, downloaded and revalidated by ETag, parsed, searched, and its endpoints checked by SMART
//! discovery. Requirement ids (SMART App Launch 2.2 client requirements CSV) are cited where a test shows one.
#![allow(clippy::unwrap_used)]

use chartlink_core::directory::{CachedBundle, Directory, EndpointStatus, fetch};
use chartlink_core::http::Http;
use chartlink_sandbox::{Config, Sandbox};
use serde_json::Value;

/// The brand bundle URL the sandbox advertises in its SMART configuration.
async fn brand_bundle_url(sb: &Sandbox) -> String {
    let conf: Value = reqwest::get(format!(
        "{}/.well-known/smart-configuration",
        sb.fhir_base()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    conf["user_access_brand_bundle"]
        .as_str()
        .expect("user_access_brand_bundle is advertised")
        .to_owned()
}

fn names(dir: &Directory, query: &str) -> Vec<String> {
    dir.search(query, 10)
        .into_iter()
        .map(|h| h.provider.name.clone())
        .collect()
}

/// Requirements 413, 414, 425, 426: the bundle is cached by ETag and revalidated with `If-None-Match`.
#[tokio::test]
async fn brand_bundle_is_cached_by_etag_and_revalidated() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let http = Http::new().unwrap();
    let url = brand_bundle_url(&sb).await;
    assert_eq!(url, format!("{}/brands.json", sb.base_url()));

    let first = fetch(&http, &url, None).await.unwrap();
    assert_eq!(first.url, url);
    let etag = first.etag.clone().expect("the sandbox sends an ETag");
    assert!(!first.body.is_empty());

    // Revalidating with the cache returns the cache unchanged.
    let second = fetch(&http, &url, Some(&first)).await.unwrap();
    assert_eq!(second, first);

    // …and it came from a 304, not a second download: a cache whose body differs but whose ETag is current comes
    // back as it is, which only the 304 path does.
    let marked = CachedBundle {
        body: b"cached copy".to_vec(),
        ..first.clone()
    };
    assert_eq!(fetch(&http, &url, Some(&marked)).await.unwrap(), marked);

    // What the server saw: the same request with If-None-Match answered 304 with no body…
    let client = reqwest::Client::new(); // Http::new() above installed the TLS provider
    let revalidated = client
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
    assert_eq!(revalidated.headers()["etag"], etag.as_str());
    assert!(revalidated.bytes().await.unwrap().is_empty());

    // …while a stale ETag gets the full bundle again.
    let stale = CachedBundle {
        etag: Some("\"stale\"".into()),
        body: b"old".to_vec(),
        ..first.clone()
    };
    assert_eq!(fetch(&http, &url, Some(&stale)).await.unwrap(), first);

    // A cache of another URL is not used for the condition.
    let other = CachedBundle {
        url: format!("{url}?other"),
        ..marked
    };
    assert_eq!(fetch(&http, &url, Some(&other)).await.unwrap(), first);

    sb.shutdown().await;
}

#[tokio::test]
async fn brand_bundle_is_searched_and_endpoints_checked() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let http = Http::new().unwrap();
    let url = brand_bundle_url(&sb).await;
    let cached = fetch(&http, &url, None).await.unwrap();
    let mut dir = Directory::from_bundle(&cached.body).unwrap();

    let health = dir
        .providers()
        .iter()
        .find(|p| p.name == "ChartLink Sandbox Health")
        .expect("primary brand");
    assert_eq!(health.aliases, ["CSH", "Sandbox Health System"]);
    assert_eq!(health.cities, ["Springfield"]);
    assert_eq!(
        health.portal_name.as_deref(),
        Some("ChartLink Sandbox MyChart")
    );
    assert!(
        health
            .logo_url
            .as_deref()
            .is_some_and(|l| l.starts_with("data:image/svg+xml"))
    );
    assert_eq!(health.endpoints.len(), 1);
    assert_eq!(health.endpoints[0].fhir_base, sb.fhir_base());
    assert_eq!(health.endpoints[0].status, EndpointStatus::Unknown);

    assert_eq!(names(&dir, "sandbox health")[0], "ChartLink Sandbox Health");
    assert_eq!(names(&dir, "CSH"), ["ChartLink Sandbox Health"]);
    assert_eq!(
        names(&dir, "shelbyvile"),
        ["Sandbox Children's Clinic"],
        "a city with a typo"
    );
    assert_eq!(names(&dir, "childrens")[0], "Sandbox Children's Clinic");
    assert_eq!(
        names(&dir, "offline regional")[0],
        "Offline Regional Medical Center"
    );

    dir.check_endpoints(&http).await;
    let status = |name: &str| -> Vec<EndpointStatus> {
        dir.providers()
            .iter()
            .find(|p| p.name == name)
            .unwrap()
            .endpoints
            .iter()
            .map(|e| e.status)
            .collect()
    };
    assert_eq!(
        status("ChartLink Sandbox Health"),
        [EndpointStatus::Working]
    );
    assert_eq!(
        status("Sandbox Children's Clinic"),
        [EndpointStatus::Working],
        "shares the sandbox endpoint"
    );
    assert_eq!(
        status("Offline Regional Medical Center"),
        [EndpointStatus::DiscoveryFailed],
        "nothing listens on the discard port"
    );

    sb.shutdown().await;
}

/// A server that answers every request with a `size`-byte directory bundle (chunked, no `Content-Length`, unless
/// `with_length`), and counts the bytes it managed to send.
async fn huge_directory(
    size: usize,
    with_length: bool,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/brands.json", listener.local_addr().unwrap());
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut req = [0u8; 4096];
                let _ = sock.read(&mut req).await;
                let head = if with_length {
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/fhir+json\r\ncontent-length: {size}\r\n\r\n"
                    )
                } else {
                    "HTTP/1.1 200 OK\r\ncontent-type: application/fhir+json\r\ntransfer-encoding: chunked\r\n\r\n"
                        .to_owned()
                };
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                // One provider after another: valid JSON all the way, a bundle a parser would take whole.
                let entry = r#"{"resource":{"resourceType":"Organization","id":"o","name":"Hospital","alias":["A"]}},"#;
                let chunk: String = entry.repeat((1 << 20) / entry.len());
                let mut written = 0;
                while written < size {
                    let part = &chunk.as_bytes()[..chunk.len().min(size - written)];
                    let framed = if with_length {
                        part.to_vec()
                    } else {
                        [format!("{:x}\r\n", part.len()).as_bytes(), part, b"\r\n"].concat()
                    };
                    if sock.write_all(&framed).await.is_err() {
                        return;
                    }
                    written += part.len();
                    counter.store(written, Ordering::SeqCst);
                }
                if !with_length {
                    let _ = sock.write_all(b"0\r\n\r\n").await;
                }
            });
        }
    });
    (url, sent)
}

/// Issue 20: a hostile 50 MB directory (streamed without a length, or announced with one) is refused with the typed
/// `TooLarge` at the documented cap, read chunk by chunk and stopped there (the server could not send it all), and
/// the cached copy the app holds is still what it loads. Before: the cap was 256 MB, the 50 MB bundle was taken
/// whole and parsed (467 MB RSS).
#[tokio::test]
async fn a_directory_past_the_cap_is_refused_while_it_streams() {
    use chartlink_core::directory::DIRECTORY_BODY_LIMIT;
    use chartlink_core::directory::DirectoryError;
    use chartlink_core::http::HttpError;
    assert_eq!(DIRECTORY_BODY_LIMIT, 20 * 1024 * 1024);
    let http = Http::new().unwrap();
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let cache = fetch(&http, &brand_bundle_url(&sb).await, None)
        .await
        .unwrap();
    let providers = Directory::from_bundle(&cache.body)
        .unwrap()
        .providers()
        .len();
    assert!(providers > 0);
    for with_length in [false, true] {
        let (url, sent) = huge_directory(50 * 1024 * 1024, with_length).await;
        let stale = CachedBundle {
            url: url.clone(),
            ..cache.clone()
        };
        let err = fetch(&http, &url, Some(&stale)).await.unwrap_err();
        assert_eq!(
            err,
            DirectoryError::Http(HttpError::TooLarge {
                limit: DIRECTORY_BODY_LIMIT
            }),
            "with_length: {with_length}"
        );
        // Give the server a moment to notice the closed connection.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let sent = sent.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            sent < DIRECTORY_BODY_LIMIT + 8 * 1024 * 1024,
            "the client stopped reading at the cap (sent {sent}, with_length: {with_length})"
        );
        // The copy the app holds is untouched and still loads.
        assert_eq!(
            Directory::from_bundle(&stale.body)
                .unwrap()
                .providers()
                .len(),
            providers
        );
    }
    sb.shutdown().await;
}
