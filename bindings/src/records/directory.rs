//! The provider directory in the FFI: [`ProviderDirectory`] finds the patient's provider by name, alias or city in
//! SMART User-access Brands bundles (and Epic-style Endpoint bundles), with the endpoints whose discovery failed
//! marked, so a picker never offers a dead one as if it worked.
//!
//! Stored: with a `cache_dir`, each downloaded bundle is kept with its ETag (the next load sends `If-None-Match`,
//! and works offline from the copy) and the endpoint marks of `check_endpoints` are kept and applied on the next
//! load. Nothing in it is personal: directories are public.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use chartlink_core::directory::{
    self, CachedBundle, Directory, DirectoryError, EndpointStatus, Provider, ProviderEndpoint,
};
use chartlink_core::http::{Http, HttpError};

use crate::cancel::CancelToken;
use crate::error::ChartLinkError;
use crate::runtime::{guard, run_blocking, run_cancellable};

type Result<T> = std::result::Result<T, ChartLinkError>;

/// Whether an endpoint answered SMART discovery. Core's own enum, exported as it is.
#[uniffi::remote(Enum)]
pub enum EndpointStatus {
    /// Not checked yet.
    Unknown,
    Working,
    /// Discovery failed: show it as not working; never offer it as if it were.
    DiscoveryFailed,
}

/// A FHIR endpoint of a provider: pass `fhir_base` to `link`. Core's own record, exported as it is.
#[uniffi::remote(Record)]
pub struct ProviderEndpoint {
    pub fhir_base: String,
    pub name: Option<String>,
    pub status: EndpointStatus,
}

/// A provider (brand) a patient recognises, with its portal and endpoints. Core's own record, exported as it is.
#[uniffi::remote(Record)]
pub struct Provider {
    pub id: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub cities: Vec<String>,
    pub portal_name: Option<String>,
    pub portal_url: Option<String>,
    pub logo_url: Option<String>,
    pub endpoints: Vec<ProviderEndpoint>,
    /// The Organization's identifiers (`system|value`): entries sharing one are one provider.
    pub identifiers: Vec<String>,
}

impl From<DirectoryError> for ChartLinkError {
    fn from(e: DirectoryError) -> Self {
        match e {
            DirectoryError::Http(HttpError::InvalidUrl(m)) => ChartLinkError::InvalidInput(m),
            DirectoryError::Http(HttpError::Network(f)) => {
                ChartLinkError::from(chartlink_core::Error::Network(f))
            }
            DirectoryError::NotABundle => ChartLinkError::InvalidInput(e.to_string()),
            DirectoryError::Http(_) | DirectoryError::Status(_) => ChartLinkError::from(
                chartlink_core::Error::Server(chartlink_core::ServerFailure {
                    status: match &e {
                        DirectoryError::Status(s) => Some(*s),
                        _ => None,
                    },
                    message: e.to_string(),
                }),
            ),
        }
    }
}

/// Providers to pick from, searched as the user types. Build one with `load_provider_directory` (downloads, cached)
/// or `ProviderDirectory.from_bundle` (a bundle the app ships).
#[derive(Debug, uniffi::Object)]
pub struct ProviderDirectory {
    directory: RwLock<Directory>,
    cache_dir: Option<PathBuf>,
}

/// A stable file name for a URL's cached copy (FNV-1a: the name must not change between app versions).
fn cache_file(dir: &std::path::Path, url: &str) -> PathBuf {
    let hash = url.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    dir.join(format!("directory-{hash:016x}.json"))
}

const MARKS_FILE: &str = "directory-endpoint-marks.json";

fn status_name(s: EndpointStatus) -> &'static str {
    match s {
        EndpointStatus::Unknown => "unknown",
        EndpointStatus::Working => "working",
        EndpointStatus::DiscoveryFailed => "discovery-failed",
    }
}

fn status_of(name: &str) -> EndpointStatus {
    match name {
        "working" => EndpointStatus::Working,
        "discovery-failed" => EndpointStatus::DiscoveryFailed,
        _ => EndpointStatus::Unknown,
    }
}

fn read_marks(dir: &std::path::Path) -> BTreeMap<String, String> {
    std::fs::read(dir.join(MARKS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

impl ProviderDirectory {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Directory> {
        self.directory.read().unwrap_or_else(|e| e.into_inner())
    }

    fn new(mut directory: Directory, cache_dir: Option<PathBuf>) -> Arc<Self> {
        if let Some(dir) = &cache_dir {
            for (base, status) in read_marks(dir) {
                directory.mark(&base, status_of(&status));
            }
        }
        Arc::new(Self {
            directory: RwLock::new(directory),
            cache_dir,
        })
    }
}

#[uniffi::export]
impl ProviderDirectory {
    /// A directory from one bundle the app has (brands or endpoints, FHIR JSON). `InvalidInput` when it is not a
    /// FHIR Bundle.
    #[uniffi::constructor]
    pub fn from_bundle(bundle: Vec<u8>) -> Result<Arc<Self>> {
        guard(|| Ok(Self::new(Directory::from_bundle(&bundle)?, None)))
    }

    /// Up to `limit` providers matching `query` (name, alias or city; case- and accent-insensitive, prefix and
    /// small-typo tolerant), best first. In memory and fast (about a millisecond for 20,000 brands): call it as
    /// the user types.
    pub fn search(&self, query: String, limit: i32) -> Vec<Provider> {
        crate::runtime::guard_or(Vec::new(), || {
            self.read()
                .search(&query, usize::try_from(limit).unwrap_or(0))
                .into_iter()
                .map(|hit| hit.provider.clone())
                .collect()
        })
    }

    /// Every provider, in the order the bundles listed them.
    pub fn providers(&self) -> Vec<Provider> {
        crate::runtime::guard_or(Vec::new(), || self.read().providers().to_vec())
    }

    /// Checks every endpoint's SMART discovery and marks it `Working` or `DiscoveryFailed` (kept in the cache
    /// directory, applied on the next load). Returns how many failed. Takes a while for a big directory: pass a
    /// `CancelToken` (Swift) or cancel the coroutine (Kotlin) to stop; marks already made are kept.
    #[uniffi::method(default(cancel = None))]
    pub async fn check_endpoints(self: Arc<Self>, cancel: Option<Arc<CancelToken>>) -> Result<i64> {
        run_cancellable(cancel, async move {
            let http = Http::new().map_err(chartlink_core::Error::from)?;
            let bases: Vec<String> = self
                .read()
                .providers()
                .iter()
                .flat_map(|p| p.endpoints.iter().map(|e| e.fhir_base.clone()))
                .collect();
            let mut failed = 0;
            for base in bases {
                let status = match chartlink_core::discovery::discover(&http, &base).await {
                    Ok(_) => EndpointStatus::Working,
                    Err(_) => EndpointStatus::DiscoveryFailed,
                };
                failed += i64::from(status == EndpointStatus::DiscoveryFailed);
                self.directory
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .mark(&base, status);
                if let Some(dir) = self.cache_dir.clone() {
                    let mut marks = read_marks(&dir);
                    marks.insert(base, status_name(status).to_owned());
                    let _ = std::fs::write(
                        dir.join(MARKS_FILE),
                        serde_json::to_vec(&marks).unwrap_or_default(),
                    );
                }
            }
            Ok(failed)
        })
        .await
    }
}

/// Downloads the directory bundles at `urls` (SMART brands bundles, Epic-style endpoint bundles) and merges them
/// (a provider listed twice becomes one). With `cache_dir`, each bundle is stored with its ETag: the next load
/// revalidates it (`If-None-Match`) and falls back to the stored copy when the network fails. `Network` when a
/// bundle cannot be fetched and none is stored, `InvalidInput` for a bad URL or a body that is not a Bundle.
#[uniffi::export(default(cache_dir = None, cancel = None))]
pub async fn load_provider_directory(
    urls: Vec<String>,
    cache_dir: Option<String>,
    cancel: Option<Arc<CancelToken>>,
) -> Result<Arc<ProviderDirectory>> {
    run_cancellable(cancel, async move {
        let http = Http::new().map_err(chartlink_core::Error::from)?;
        let cache_dir = cache_dir.map(PathBuf::from);
        let mut merged = Directory::default();
        for url in urls {
            let cached_path = cache_dir.as_deref().map(|d| cache_file(d, &url));
            let cached: Option<CachedBundle> = cached_path
                .as_ref()
                .and_then(|p| std::fs::read(p).ok())
                .and_then(|b| serde_json::from_slice(&b).ok());
            let bundle = match directory::fetch(&http, &url, cached.as_ref()).await {
                Ok(fetched) => {
                    if let (Some(path), Some(dir)) = (&cached_path, &cache_dir) {
                        let _ = std::fs::create_dir_all(dir);
                        let _ =
                            std::fs::write(path, serde_json::to_vec(&fetched).unwrap_or_default());
                    }
                    fetched.body
                }
                Err(DirectoryError::Http(HttpError::Network(_)) | DirectoryError::Status(_))
                    if cached.is_some() =>
                {
                    cached.map(|c| c.body).unwrap_or_default()
                }
                Err(e) => return Err(e.into()),
            };
            // Parsing a big bundle is CPU work: off the runtime's async threads.
            let parsed = run_blocking(move || Ok(Directory::from_bundle(&bundle)?)).await?;
            merged.merge(parsed);
        }
        Ok(ProviderDirectory::new(merged, cache_dir))
    })
    .await
}
