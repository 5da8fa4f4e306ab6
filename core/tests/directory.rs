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
