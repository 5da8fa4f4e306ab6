//! Provider directory search at the size of a national brand list: a deterministic synthetic User-access Brands
//! bundle of 20,000 providers (names like "Springfield Regional Medical Center", "Saint Mary's Children's Hospital",
//! "São José Clínica"; aliases; cities; one Endpoint each), parsed once with `Directory::from_bundle`, then
//! `search(query, 20)` for the queries a patient types: a full name, a prefix, a city, a typo, an accented name
//! typed without accents (and with them). The target is 5 ms per query.
//!
//! The build of the 20,000-provider directory is timed once and printed (`directory_build/from_bundle/20000 (one
//! run)`): it takes minutes, too long for criterion to repeat. Criterion measures the build at 1,000, 2,000 and
//! 4,000 providers instead, which shows how it grows.
//!
//! Run with `cargo bench -p chartlink-core --bench directory -j1`. The medians are in
//! `target/criterion/<group>/<bench>/new/estimates.json`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chartlink_core::directory::{Directory, fold};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use serde_json::{Value, json};

/// How many providers the synthetic directory holds.
const PROVIDERS: usize = 20_000;
/// Directory sizes whose build criterion repeats (the 20,000 build is timed once).
const BUILD_SIZES: &[usize] = &[1_000, 2_000, 4_000];
/// Results a search screen shows.
const LIMIT: usize = 20;

const BRAND_EXT: &str =
    "http://hl7.org/fhir/smart-app-launch/StructureDefinition/user-access-brand";

/// Cities, with the state they are in; some with accents, as in the Spanish and Portuguese names of US and
/// Latin-American brands.
const CITIES: &[(&str, &str)] = &[
    ("Springfield", "IL"),
    ("Shelbyville", "IL"),
    ("Riverside", "CA"),
    ("Franklin", "TN"),
    ("Greenville", "SC"),
    ("Bristol", "CT"),
    ("Clinton", "IA"),
    ("Fairview", "OR"),
    ("Salem", "MA"),
    ("Madison", "WI"),
    ("Georgetown", "TX"),
    ("Arlington", "VA"),
    ("Ashland", "KY"),
    ("Burlington", "VT"),
    ("Manchester", "NH"),
    ("Milton", "GA"),
    ("Newport", "RI"),
    ("Oxford", "MS"),
    ("Jackson", "MS"),
    ("Lexington", "KY"),
    ("Dover", "DE"),
    ("Hudson", "NY"),
    ("Kingston", "NY"),
    ("Lebanon", "PA"),
    ("Marion", "OH"),
    ("Mount Vernon", "WA"),
    ("Oakland", "CA"),
    ("Princeton", "NJ"),
    ("Richmond", "VA"),
    ("Rochester", "MN"),
    ("Cleveland", "OH"),
    ("Columbia", "MO"),
    ("Auburn", "AL"),
    ("Dayton", "OH"),
    ("Lancaster", "PA"),
    ("Plymouth", "MN"),
    ("Portland", "ME"),
    ("Trenton", "NJ"),
    ("Winchester", "VA"),
    ("Troy", "NY"),
    ("Boston", "MA"),
    ("Cincinnati", "OH"),
    ("Phoenix", "AZ"),
    ("Denver", "CO"),
    ("Seattle", "WA"),
    ("Baltimore", "MD"),
    ("Pittsburgh", "PA"),
    ("Charleston", "WV"),
    ("Savannah", "GA"),
    ("Tucson", "AZ"),
    ("San José", "CA"),
    ("São José", "SC"),
    ("São Paulo", "SP"),
    ("Bogotá", "DC"),
    ("Mayagüez", "PR"),
    ("Río Piedras", "PR"),
    ("Cañon City", "CO"),
    ("Española", "NM"),
    ("Peñasco", "NM"),
    ("Montréal", "QC"),
    ("Québec", "QC"),
    ("Trois-Rivières", "QC"),
];

/// What kind of provider a name says it is.
const KINDS: &[&str] = &[
    "Regional Medical Center",
    "Children's Hospital",
    "Community Hospital",
    "Memorial Hospital",
    "University Hospital",
    "General Hospital",
    "Family Medicine",
    "Medical Group",
    "Health System",
    "Orthopedic Clinic",
    "Cancer Center",
    "Heart Institute",
    "Women's Health",
    "Urgent Care",
    "Pediatrics",
    "Behavioral Health",
    "Eye Institute",
    "Dermatology Associates",
    "Rehabilitation Hospital",
    "Surgical Specialists",
    "Kidney Care",
    "Primary Care Partners",
    "Internal Medicine",
    "Sports Medicine",
    "Clínica",
];

/// What sets apart the several sites of one kind in one city.
const SUFFIXES: &[&str] = &[
    "",
    "North",
    "South",
    "East",
    "West",
    "Downtown",
    "Midtown",
    "Lakeside",
    "Hillcrest",
    "Westgate",
    "Northside",
    "Parkview",
    "at Main Street",
    "at Oak Avenue",
];

/// Patron saints, in English and in the Spanish of a "Clínica".
const SAINTS: &[(&str, &str)] = &[
    ("Mary", "Santa María"),
    ("Joseph", "San José"),
    ("Luke", "San Lucas"),
    ("Francis", "San Francisco"),
    ("Vincent", "San Vicente"),
    ("Elizabeth", "Santa Isabel"),
    ("Anthony", "San Antonio"),
    ("Jude", "San Judas Tadeo"),
    ("Agnes", "Santa Inés"),
    ("Catherine", "Santa Catalina"),
    ("Peter", "San Pedro"),
    ("John", "San Juan"),
];

/// A tiny deterministic generator (SplitMix64), so the directory is the same on every machine and version.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One synthetic brand before it becomes FHIR.
struct Brand {
    name: String,
    aliases: Vec<String>,
    cities: Vec<(&'static str, &'static str)>,
}

/// Names the queries look for, always in the directory (the shuffle would otherwise drop some).
const LANDMARKS: &[(&str, (&str, &str))] = &[
    ("Springfield Regional Medical Center", ("Springfield", "IL")),
    ("Saint Mary's Children's Hospital", ("Boston", "MA")),
    ("São José Clínica", ("São José", "SC")),
];

/// The initials of the capitalised words of a name, e.g. "SRMC" for "Springfield Regional Medical Center".
fn acronym(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|w| w.chars().next())
        .filter(|c| c.is_uppercase())
        .collect()
}

/// `count` distinct brands (at most about 25,000): the landmarks, then every "{City} {Kind} {Suffix}" and
/// "Saint {Saint}'s {Kind} {Suffix}" (with either word order for the clinics: "São José Clínica", "Clínica Bogotá",
/// "Clínica San José"), shuffled.
fn brands(count: usize) -> Vec<Brand> {
    let mut rng = SplitMix(0xC4A2_7151_A4B0);
    let mut candidates: Vec<(String, (&'static str, &'static str))> = Vec::new();
    for &(city, state) in CITIES {
        for kind in KINDS {
            for suffix in SUFFIXES {
                let name = match (*kind, rng.below(2)) {
                    ("Clínica", 0) => format!("Clínica {city} {suffix}"),
                    _ => format!("{city} {kind} {suffix}"),
                };
                candidates.push((name.trim().to_owned(), (city, state)));
            }
        }
    }
    for (saint, santo) in SAINTS {
        for kind in KINDS {
            for suffix in SUFFIXES {
                let city = CITIES[rng.below(CITIES.len())];
                let name = if *kind == "Clínica" {
                    format!("Clínica {santo} {suffix}")
                } else {
                    format!("Saint {saint}'s {kind} {suffix}")
                };
                candidates.push((name.trim().to_owned(), city));
            }
        }
    }
    // Fisher-Yates with the fixed seed.
    for i in (1..candidates.len()).rev() {
        let j = rng.below(i + 1);
        candidates.swap(i, j);
    }
    let landmarks = LANDMARKS
        .iter()
        .map(|(name, (city, state))| ((*name).to_owned(), (*city, *state)));
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(count);
    for (name, city) in landmarks.chain(candidates) {
        if out.len() == count {
            break;
        }
        // The directory merges providers whose folded names are equal; keep 20,000 distinct ones.
        if !seen.insert(fold(&name)) {
            continue;
        }
        let mut aliases = Vec::new();
        if rng.below(3) == 0 {
            aliases.push(acronym(&name));
        }
        if rng.below(5) == 0 {
            aliases.push(format!("{} General", city.0));
        }
        let mut cities = vec![city];
        if rng.below(4) == 0 {
            cities.push(CITIES[rng.below(CITIES.len())]);
        }
        out.push(Brand {
            name,
            aliases,
            cities,
        });
    }
    assert_eq!(out.len(), count, "enough distinct names");
    out
}

/// `count` brands as a User-access Brands bundle: an Organization (with the brand extension and a portal) and an
/// Endpoint per brand.
fn bundle(count: usize) -> Vec<u8> {
    let mut entries: Vec<Value> = Vec::with_capacity(2 * count);
    for (i, b) in brands(count).iter().enumerate() {
        entries.push(json!({"resource": {
            "resourceType": "Organization",
            "id": format!("brand-{i}"),
            "name": b.name,
            "alias": b.aliases,
            "address": b.cities.iter().map(|(city, state)| json!({"city": city, "state": state})).collect::<Vec<_>>(),
            "endpoint": [{"reference": format!("Endpoint/ep-{i}")}],
            "extension": [{"url": BRAND_EXT, "extension": [
                {"url": "brandLogo", "valueUrl": format!("https://brand{i}.example.org/logo.svg")},
                {"url": "portal", "extension": [
                    {"url": "portalName", "valueString": "MyChart"},
                    {"url": "portalUrl", "valueUrl": format!("https://mychart.brand{i}.example.org")},
                    {"url": "portalEndpoint", "valueReference": {"reference": format!("Endpoint/ep-{i}")}},
                ]},
            ]}],
        }}));
        entries.push(json!({"resource": {
            "resourceType": "Endpoint",
            "id": format!("ep-{i}"),
            "status": "active",
            "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
            "payloadType": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type", "code": "none"}]}],
            "address": format!("https://fhir.brand{i}.example.org/api/FHIR/R4"),
        }}));
    }
    serde_json::to_vec(&json!({
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": "2025-06-01T00:00:00Z",
        "entry": entries,
    }))
    .unwrap_or_default()
}

/// The queries, with a label for the report.
const QUERIES: &[(&str, &str)] = &[
    ("full_name", "Springfield Regional Medical Center"),
    ("prefix", "spring"),
    ("city", "Cincinnati"),
    ("typo", "childrns hosptial"),
    ("unaccented", "sao jose"),
    ("saint", "saint mary's children's"),
    ("accented_name", "São José Clínica"),
];

/// Counts the heap in use and its peak, so the parse's own peak shows (the process's resident size does not: the
/// allocator keeps what building the bundle freed).
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator as it is; only sizes are counted. (The benchmark's only
// unsafe code: a global allocator cannot be written without it.)
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: a pointer this allocator returned, with its layout.
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static HEAP: Counting = Counting;

fn bench(c: &mut Criterion) {
    let body = bundle(PROVIDERS);
    // Built once here (and measured by criterion at smaller sizes below).
    let before = IN_USE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let started = Instant::now();
    let dir = Directory::from_bundle(&body).unwrap_or_default();
    eprintln!(
        "directory_build/from_bundle/{PROVIDERS} (one run): {:.2?} for a {:.1} MB bundle; peak heap +{:.1} MB while \
         parsing, {:.1} MB kept",
        started.elapsed(),
        body.len() as f64 / 1e6,
        PEAK.load(Ordering::Relaxed).saturating_sub(before) as f64 / 1e6,
        IN_USE.load(Ordering::Relaxed).saturating_sub(before) as f64 / 1e6,
    );
    assert_eq!(
        dir.providers().len(),
        PROVIDERS,
        "every brand is a provider"
    );

    let mut search = c.benchmark_group("directory_search");
    for (label, query) in QUERIES {
        let hits = dir.search(query, LIMIT);
        eprintln!(
            "{label:>10} {query:?}: {} hits, first {:?}",
            hits.len(),
            hits.first().map(|h| h.provider.name.as_str())
        );
        search.bench_function(*label, |b| {
            b.iter(|| dir.search(black_box(query), black_box(LIMIT)).len())
        });
    }
    search.finish();

    // The build at sizes criterion can repeat, to show how it grows with the directory.
    let mut build = c.benchmark_group("directory_build");
    build.sample_size(10);
    build.sampling_mode(SamplingMode::Flat);
    build.warm_up_time(Duration::from_millis(1));
    build.measurement_time(Duration::from_secs(1));
    for size in BUILD_SIZES {
        let body = bundle(*size);
        build.throughput(Throughput::Elements(*size as u64));
        build.bench_with_input(BenchmarkId::new("from_bundle", size), &body, |b, body| {
            b.iter(|| {
                Directory::from_bundle(black_box(body))
                    .map(|d| d.providers().len())
                    .unwrap_or_default()
            })
        });
    }
    build.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
