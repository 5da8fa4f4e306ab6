//! Finding the patient's provider: SMART 2.2 User-access Brands bundles and Epic-style Endpoint + Organization
//! bundles, merged into one list of providers with their portals and FHIR endpoints, searched by name, alias or
//! city — case- and accent-insensitive, prefix and small-typo tolerant, ranked.
//!
//! Search runs on an inverted index of folded tokens, so a query touches the distinct tokens, not every provider:
//! about a millisecond for 20,000 brands (see `benches/directory.rs`).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;
use url::Url;

use crate::discovery;
use crate::http::{Http, HttpError};

/// The pre-publication brand extension (portal details nested inside it); still read.
const BRAND_EXT: &str =
    "http://hl7.org/fhir/smart-app-launch/StructureDefinition/user-access-brand";
/// The published SMART 2.2 extensions (brands.md): the brand's logo, and each portal with its endpoints.
const ORGANIZATION_BRAND: &str = "http://hl7.org/fhir/StructureDefinition/organization-brand";
const ORGANIZATION_PORTAL: &str = "http://hl7.org/fhir/StructureDefinition/organization-portal";
/// Largest directory bundle [`fetch`] accepts: 20 MB (a SMART brands bundle of thousands of providers is a few MB).
/// The body is read as a stream, chunk by chunk, and never held beyond this: a bigger one answers
/// `DirectoryError::Http(HttpError::TooLarge { limit })` as soon as its `Content-Length` says so or, without one, once
/// that many bytes have arrived, and a cached copy stays as it was. The parse that follows streams the entries
/// ([`Directory::from_bundle`]), so memory follows the providers kept, not the JSON.
/// A host that loads a bigger directory on purpose uses [`fetch_with_limit`].
pub const DIRECTORY_BODY_LIMIT: usize = 20 * 1024 * 1024;

/// Whether an endpoint answered SMART discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndpointStatus {
    /// Not checked yet.
    Unknown,
    Working,
    /// Discovery failed: shown as not working, never offered as if it were.
    DiscoveryFailed,
}

/// A FHIR endpoint of a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderEndpoint {
    pub fhir_base: String,
    pub name: Option<String>,
    pub status: EndpointStatus,
}

/// A provider (brand) a patient recognises, with its portal and endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    pub id: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub cities: Vec<String>,
    pub portal_name: Option<String>,
    pub portal_url: Option<String>,
    pub logo_url: Option<String>,
    pub endpoints: Vec<ProviderEndpoint>,
    /// The Organization's identifiers (`system|value`, e.g. an NPI): two entries with one of them in common are one
    /// provider, and two that share only a name but carry different identifiers are two (SMART client req. 420).
    pub identifiers: Vec<String>,
}

/// Why a directory could not be loaded.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DirectoryError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("the directory is not a FHIR Bundle")]
    NotABundle,
    #[error("the directory server answered HTTP {0}")]
    Status(u16),
}

/// A downloaded directory with its ETag, for `If-None-Match` next time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedBundle {
    pub url: String,
    pub etag: Option<String>,
    /// Stored as the bundle's JSON text (a JSON array of numbers, as caches before this were, is still read: it
    /// made a 50 MB bundle a 186 MB file).
    #[serde(with = "body_text")]
    pub body: Vec<u8>,
}

mod body_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(body) {
            Ok(text) => s.serialize_str(text),
            // A bundle is JSON, so UTF-8; anything else is kept as it was, byte for byte.
            Err(_) => s.serialize_bytes(body),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Text(String),
        Bytes(Vec<u8>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(match Stored::deserialize(d)? {
            Stored::Text(t) => t.into_bytes(),
            Stored::Bytes(b) => b,
        })
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit<'a> {
    pub provider: &'a Provider,
    pub score: u32,
}

/// Providers and their search index.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    providers: Vec<Provider>,
    /// Folded token → (provider index, field weight).
    index: BTreeMap<String, Vec<(u32, u8)>>,
    /// Folded name → provider indexes, to merge duplicates without rescanning.
    by_name: HashMap<String, Vec<usize>>,
    /// Identifier (`system|value`) → provider index.
    by_identifier: HashMap<String, usize>,
}

/// A name as the duplicate check compares it: folded, single-spaced.
fn name_key(name: &str) -> String {
    fold(name).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Lower-case, accents removed, anything but letters and digits a separator.
pub fn fold(s: &str) -> String {
    s.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        // "Mary's" is one word ("marys"), not "mary" and a lone "s" that would match every word starting with s.
        .filter(|c| !matches!(c, '\'' | '\u{2019}'))
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect()
}

fn tokens(s: &str) -> impl Iterator<Item = String> + '_ {
    fold(s)
        .split_whitespace()
        .map(str::to_owned)
        .collect::<Vec<_>>()
        .into_iter()
}

impl Directory {
    /// The providers.
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// Parses one bundle (brands or endpoints) into a directory.
    ///
    /// Parsed as a stream: one entry at a time is read into JSON, and what a directory keeps of it (a provider's
    /// names, links and identifiers, an endpoint's base) is taken at once and the entry dropped, so memory follows
    /// the providers found, not the bundle's JSON tree (a 19 MB bundle took +506 MB as one tree).
    pub fn from_bundle(bytes: &[u8]) -> Result<Self, DirectoryError> {
        use serde::de::DeserializeSeed as _;
        let mut collected = Collected::default();
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let is_bundle = BundleSeed {
            on_resource: &mut |r: &Value| collected.add_resource(r),
        }
        .deserialize(&mut de)
        .and_then(|b| de.end().map(|()| b))
        .map_err(|_| DirectoryError::NotABundle)?;
        if !is_bundle {
            return Err(DirectoryError::NotABundle);
        }
        Ok(collected.link())
    }

    /// Merges another directory: providers with the same name (folded) become one, endpoints are deduplicated by
    /// FHIR base.
    pub fn merge(&mut self, other: Directory) {
        for p in other.providers {
            self.add_provider(p);
        }
        self.reindex();
    }

    /// Merges the Brand Bundle that an endpoint's own SMART configuration names (`user_access_brand_bundle`) over
    /// this (vendor-consolidated) directory: where both describe a provider, the endpoint's own names, portal and
    /// logo win (SMART client reqs. 415, 416).
    pub fn merge_preferred(&mut self, own: Directory) {
        for p in own.providers {
            self.add_provider_as(p, true);
        }
        self.reindex();
    }

    fn add_provider(&mut self, p: Provider) {
        self.add_provider_as(p, false);
    }

    /// The provider `p` is the same as, if any: one sharing an identifier; else, by name, one that carries no
    /// identifier, or any of that name when `p` carries none (a directory without identifiers).
    fn same_as(&self, p: &Provider, key: &str) -> Option<usize> {
        if let Some(i) = p
            .identifiers
            .iter()
            .find_map(|id| self.by_identifier.get(id))
        {
            return Some(*i);
        }
        let named = self.by_name.get(key)?;
        named
            .iter()
            .copied()
            .find(|i| p.identifiers.is_empty() || self.providers[*i].identifiers.is_empty())
    }

    /// Adds a provider (merged into the one it is the same as, if any) and says at which index it now is (until the
    /// next [`Directory::reindex`]).
    fn add_provider_as(&mut self, p: Provider, preferred: bool) -> usize {
        let key = name_key(&p.name);
        match self.same_as(&p, &key) {
            Some(i) => {
                for id in &p.identifiers {
                    self.by_identifier.entry(id.clone()).or_insert(i);
                }
                let existing = &mut self.providers[i];
                for id in p.identifiers {
                    if !existing.identifiers.contains(&id) {
                        existing.identifiers.push(id);
                    }
                }
                for e in p.endpoints {
                    if !existing
                        .endpoints
                        .iter()
                        .any(|x| x.fhir_base == e.fhir_base)
                    {
                        existing.endpoints.push(e);
                    }
                }
                for a in p.aliases {
                    if !existing.aliases.contains(&a) {
                        existing.aliases.push(a);
                    }
                }
                for c in p.cities {
                    if !existing.cities.contains(&c) {
                        existing.cities.push(c);
                    }
                }
                if preferred {
                    existing.portal_name = p.portal_name.or(existing.portal_name.take());
                    existing.portal_url = p.portal_url.or(existing.portal_url.take());
                    existing.logo_url = p.logo_url.or(existing.logo_url.take());
                } else {
                    existing.portal_name = existing.portal_name.take().or(p.portal_name);
                    existing.portal_url = existing.portal_url.take().or(p.portal_url);
                    existing.logo_url = existing.logo_url.take().or(p.logo_url);
                }
                i
            }
            None => {
                let i = self.providers.len();
                self.by_name.entry(key).or_default().push(i);
                for id in &p.identifiers {
                    self.by_identifier.entry(id.clone()).or_insert(i);
                }
                self.providers.push(p);
                i
            }
        }
    }

    fn reindex(&mut self) {
        // Providers in name order (stable results), then one pass that keeps each provider's best field weight per
        // token in a map before the posting lists are built.
        let mut order: Vec<usize> = (0..self.providers.len()).collect();
        order.sort_unstable_by(|a, b| {
            self.providers[*a]
                .name
                .cmp(&self.providers[*b].name)
                .then(self.providers[*a].id.cmp(&self.providers[*b].id))
        });
        let providers: Vec<Provider> = order.iter().map(|i| self.providers[*i].clone()).collect();
        self.providers = providers;
        self.by_name = HashMap::new();
        self.by_identifier = HashMap::new();
        for (i, p) in self.providers.iter().enumerate() {
            self.by_name.entry(name_key(&p.name)).or_default().push(i);
            for id in &p.identifiers {
                self.by_identifier.entry(id.clone()).or_insert(i);
            }
        }
        let mut weights: HashMap<String, HashMap<u32, u8>> = HashMap::new();
        for (i, p) in self.providers.iter().enumerate() {
            let fields = [
                (3u8, vec![p.name.clone()]),
                (2, p.aliases.clone()),
                (2, p.portal_name.iter().cloned().collect()),
                (1, p.cities.clone()),
            ];
            for (weight, values) in fields {
                for v in values {
                    for t in tokens(&v) {
                        let w = weights.entry(t).or_default().entry(i as u32).or_insert(0);
                        *w = (*w).max(weight);
                    }
                }
            }
        }
        self.index = weights
            .into_iter()
            .map(|(t, m)| {
                let mut list: Vec<(u32, u8)> = m.into_iter().collect();
                list.sort_unstable();
                (t, list)
            })
            .collect();
    }

    /// Providers matching every word of `query` (exactly, as a prefix, or with a small typo), best first.
    pub fn search(&self, query: &str, limit: usize) -> Vec<Hit<'_>> {
        let words: Vec<String> = tokens(query).collect();
        if words.is_empty() {
            return Vec::new();
        }
        let mut total: HashMap<u32, u32> = HashMap::new();
        for (n, word) in words.iter().enumerate() {
            let mut best: HashMap<u32, u32> = HashMap::new();
            let mut consider = |token: &str, quality: u32| {
                if let Some(list) = self.index.get(token) {
                    for (idx, weight) in list {
                        let score = quality * u32::from(*weight);
                        let e = best.entry(*idx).or_insert(0);
                        *e = (*e).max(score);
                    }
                }
            };
            // Exact and prefix matches: a range of the sorted token map.
            for (token, _) in self.index.range(word.clone()..) {
                if !token.starts_with(word.as_str()) {
                    break;
                }
                consider(token, if token == word { 4 } else { 3 });
            }
            // Small typos, for words long enough that a typo is not a different word.
            let max_typos = match word.chars().count() {
                0..=3 => 0,
                4..=7 => 1,
                _ => 2,
            };
            if max_typos > 0 {
                // Typos are looked for among tokens with the same first letter (people rarely mistype the first
                // letter), a range of the sorted map rather than every token.
                let len = word.chars().count();
                let first: String = word.chars().take(1).collect();
                for (token, _) in self.index.range(first.clone()..) {
                    if !token.starts_with(first.as_str()) {
                        break;
                    }
                    let tl = token.chars().count();
                    if tl + max_typos < len
                        || tl > len + max_typos
                        || token.starts_with(word.as_str())
                    {
                        continue;
                    }
                    if strsim::damerau_levenshtein(word, token) <= max_typos {
                        consider(token, 1);
                    }
                }
            }
            if n == 0 {
                total = best;
            } else {
                total.retain(|idx, score| match best.get(idx) {
                    Some(s) => {
                        *score += s;
                        true
                    }
                    None => false,
                });
            }
            if total.is_empty() {
                return Vec::new();
            }
        }
        let folded_query = fold(query).split_whitespace().collect::<Vec<_>>().join(" ");
        let mut hits: Vec<Hit<'_>> = total
            .into_iter()
            .map(|(idx, score)| {
                let provider = &self.providers[idx as usize];
                let bonus = if fold(&provider.name).starts_with(&folded_query) {
                    5
                } else {
                    0
                };
                Hit {
                    provider,
                    score: score + bonus,
                }
            })
            .collect();
        hits.sort_unstable_by(|a, b| {
            b.score
                .cmp(&a.score)
                .then(a.provider.name.len().cmp(&b.provider.name.len()))
                .then(a.provider.name.cmp(&b.provider.name))
        });
        hits.truncate(limit);
        hits
    }

    /// Sets the status of every endpoint with this FHIR base (a mark remembered from an earlier check). Returns
    /// whether one matched.
    pub fn mark(&mut self, fhir_base: &str, status: EndpointStatus) -> bool {
        let base = fhir_base.trim_end_matches('/');
        let mut found = false;
        for e in self
            .providers
            .iter_mut()
            .flat_map(|p| p.endpoints.iter_mut())
        {
            if e.fhir_base == base {
                e.status = status;
                found = true;
            }
        }
        found
    }

    /// Checks every endpoint's SMART discovery and marks it working or failed.
    pub async fn check_endpoints(&mut self, http: &Http) {
        for p in &mut self.providers {
            for e in &mut p.endpoints {
                e.status = match discovery::discover(http, &e.fhir_base).await {
                    Ok(_) => EndpointStatus::Working,
                    Err(_) => EndpointStatus::DiscoveryFailed,
                };
            }
        }
    }
}

/// A portal or logo URL an app may open or load: https (http only on this computer). A directory is data from
/// elsewhere: a `javascript:`, `file:` or plain-http link in it never reaches the app, the CLI or a web view.
fn web_link(raw: String) -> Option<String> {
    let url = Url::parse(raw.trim()).ok()?;
    discovery::is_secure_transport(&url).then(|| url.to_string())
}

/// A logo an app may load: a [`web_link`], or an inline image (`data:image/...`, which SMART's brands.md allows for
/// logos: an image loads nothing and navigates nowhere).
fn logo_link(raw: String) -> Option<String> {
    let inline = raw
        .trim()
        .get(..11)
        .is_some_and(|p| p.eq_ignore_ascii_case("data:image/"));
    if inline {
        Some(raw.trim().to_owned())
    } else {
        web_link(raw)
    }
}

/// What a directory keeps of a bundle's entries while it streams: each Organization added at once as a provider
/// (merged with the one it is the same as; its endpoints linked at the end), with the references that link it;
/// each Endpoint's base and name.
#[derive(Default)]
struct Collected {
    dir: Directory,
    organizations: Vec<OrgLinks>,
    /// `Endpoint/{id}` → the endpoint (a later entry with the same id replaces an earlier one).
    endpoints: HashMap<String, EndpointEntry>,
    /// (managing Organization reference, Endpoint id), in bundle order.
    managed: Vec<(String, String)>,
}

/// How an Organization links to its endpoints; `index` is its provider in the directory being built.
struct OrgLinks {
    index: usize,
    id: Option<String>,
    /// The endpoints it names (`endpoint`, and its portal's `portalEndpoint`).
    refs: Vec<String>,
    /// The endpoint it is contained in (Epic puts the Organization inside the Endpoint).
    containing: Vec<String>,
}

struct EndpointEntry {
    endpoint: Option<ProviderEndpoint>,
    name: Option<String>,
}

impl Collected {
    fn add_org(&mut self, org: &Value, containing: Vec<String>) {
        if let Some((provider, id, refs)) = org_entry(org) {
            let index = self.dir.add_provider_as(provider, false);
            self.organizations.push(OrgLinks {
                index,
                id,
                refs,
                containing,
            });
        }
    }

    fn add_resource(&mut self, r: &Value) {
        match r["resourceType"].as_str() {
            Some("Endpoint") => {
                let Some(id) = r["id"].as_str() else {
                    return;
                };
                let key = format!("Endpoint/{id}");
                if let Some(org) = r["managingOrganization"]["reference"].as_str() {
                    self.managed.push((org.to_owned(), id.to_owned()));
                }
                for c in r["contained"].as_array().into_iter().flatten() {
                    if c["resourceType"] == "Organization" {
                        self.add_org(c, vec![key.clone()]);
                    }
                }
                self.endpoints.insert(
                    key,
                    EndpointEntry {
                        endpoint: endpoint_of(r),
                        name: r["name"].as_str().map(str::to_owned),
                    },
                );
            }
            Some("Organization") => self.add_org(r, Vec::new()),
            _ => {}
        }
    }

    /// Links each Organization to the endpoints it names, that name it as their managing organization, or that
    /// contain it; endpoints with no organization stand alone under their own name.
    fn link(self) -> Directory {
        let Collected {
            mut dir,
            organizations,
            endpoints,
            managed,
        } = self;
        // Organization reference → endpoints pointing at it (Epic-style managingOrganization), in bundle order.
        let mut by_org: HashMap<&str, Vec<&str>> = HashMap::new();
        for (org, id) in &managed {
            by_org.entry(org.as_str()).or_default().push(id.as_str());
        }
        let mut used: HashSet<String> = HashSet::new();
        for org in organizations {
            let mut refs = org.refs;
            if let Some(id) = &org.id
                && let Some(list) = by_org.get(format!("Organization/{id}").as_str())
            {
                refs.extend(list.iter().map(|e| format!("Endpoint/{e}")));
            }
            refs.extend(org.containing);
            for r in refs {
                if let Some(ep) = endpoints.get(&r) {
                    if let Some(e) = &ep.endpoint {
                        let have = &mut dir.providers[org.index].endpoints;
                        if !have.iter().any(|x| x.fhir_base == e.fhir_base) {
                            have.push(e.clone());
                        }
                    }
                    used.insert(r);
                }
            }
        }
        let mut lone: Vec<(&String, &EndpointEntry)> = endpoints
            .iter()
            .filter(|(k, _)| !used.contains(*k))
            .collect();
        lone.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (key, ep) in lone {
            if let (Some(name), Some(e)) = (&ep.name, &ep.endpoint) {
                dir.add_provider(Provider {
                    id: key.clone(),
                    name: name.clone(),
                    aliases: Vec::new(),
                    cities: Vec::new(),
                    portal_name: None,
                    portal_url: None,
                    logo_url: None,
                    endpoints: vec![e.clone()],
                    identifiers: Vec::new(),
                });
            }
        }
        dir.reindex();
        dir
    }
}

/// An Organization as a provider (its endpoints are linked later), with its id and the endpoint references it
/// names; `None` without a name.
fn org_entry(org: &Value) -> Option<(Provider, Option<String>, Vec<String>)> {
    let name = org["name"].as_str().filter(|n| !n.trim().is_empty())?;
    let ext = |url: &str| -> Option<&Value> {
        org["extension"]
            .as_array()?
            .iter()
            .find(|e| e["url"] == url)
    };
    let legacy = ext(BRAND_EXT);
    let brand = ext(ORGANIZATION_BRAND).or(legacy);
    let portal = ext(ORGANIZATION_PORTAL).or_else(|| {
        legacy?["extension"]
            .as_array()?
            .iter()
            .find(|e| e["url"] == "portal")
    });
    let mut refs: Vec<String> = org["endpoint"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["reference"].as_str().map(str::to_owned))
        .collect();
    // `portalEndpoint` (published form) names the portal's endpoints too.
    refs.extend(
        portal
            .and_then(|p| p["extension"].as_array())
            .into_iter()
            .flatten()
            .filter(|e| e["url"] == "portalEndpoint")
            .filter_map(|e| e["valueReference"]["reference"].as_str().map(str::to_owned)),
    );
    let sub = |parent: Option<&Value>, url: &str, field: &str| -> Option<String> {
        parent?["extension"]
            .as_array()?
            .iter()
            .find(|e| e["url"] == url)?[field]
            .as_str()
            .map(str::to_owned)
    };
    let provider = Provider {
        id: org["id"].as_str().unwrap_or(name).to_owned(),
        name: name.trim().to_owned(),
        aliases: org["alias"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        cities: org["address"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["city"].as_str().map(str::to_owned))
            .collect(),
        portal_name: sub(portal, "portalName", "valueString"),
        portal_url: sub(portal, "portalUrl", "valueUrl").and_then(web_link),
        logo_url: sub(brand, "brandLogo", "valueUrl")
            .and_then(logo_link)
            .or_else(|| sub(portal, "portalLogo", "valueUrl").and_then(logo_link)),
        endpoints: Vec::new(),
        identifiers: org["identifier"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| {
                let value = i["value"].as_str()?.trim();
                (!value.is_empty())
                    .then(|| format!("{}|{value}", i["system"].as_str().unwrap_or("").trim()))
            })
            .collect(),
    };
    Some((provider, org["id"].as_str().map(str::to_owned), refs))
}

/// Reads a bundle as a stream: `resourceType` (whether it is a Bundle) and each `entry[].resource`, handed to
/// `on_resource` one at a time and then dropped; every other member is skipped unread. A member of an unexpected
/// shape (an `entry` that is not an array, an entry without a resource) is skipped, as the tree walk did.
struct BundleSeed<'a, F: FnMut(&Value)> {
    on_resource: &'a mut F,
}

impl<'de, F: FnMut(&Value)> serde::de::DeserializeSeed<'de> for BundleSeed<'_, F> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F: FnMut(&Value)> serde::de::Visitor<'de> for BundleSeed<'_, F> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a FHIR Bundle")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut is_bundle = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "resourceType" => is_bundle = map.next_value::<Value>()? == "Bundle",
                "entry" => map.next_value_seed(EntriesSeed {
                    on_resource: &mut *self.on_resource,
                })?,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(is_bundle)
    }
}

/// A bundle's `entry`: each element read alone, its `resource` handed on.
struct EntriesSeed<'a, F: FnMut(&Value)> {
    on_resource: &'a mut F,
}

impl<'de, F: FnMut(&Value)> serde::de::DeserializeSeed<'de> for EntriesSeed<'_, F> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, F: FnMut(&Value)> serde::de::Visitor<'de> for EntriesSeed<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of entries")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(entry) = seq.next_element::<Value>()? {
            (self.on_resource)(&entry["resource"]);
        }
        Ok(())
    }

    // Anything else where the list should be: no entries (JSON that is valid but not FHIR).
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(())
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

fn endpoint_of(ep: &Value) -> Option<ProviderEndpoint> {
    let address = ep["address"].as_str()?;
    let url = Url::parse(address.trim()).ok()?;
    if !discovery::is_secure_transport(&url) {
        return None;
    }
    Some(ProviderEndpoint {
        fhir_base: address.trim().trim_end_matches('/').to_owned(),
        name: ep["name"].as_str().map(str::to_owned),
        status: EndpointStatus::Unknown,
    })
}

/// Downloads a directory bundle, sending `If-None-Match` when a cached copy has an ETag; a 304 returns the cache.
/// At most [`DIRECTORY_BODY_LIMIT`] bytes.
pub async fn fetch(
    http: &Http,
    url: &str,
    cached: Option<&CachedBundle>,
) -> Result<CachedBundle, DirectoryError> {
    fetch_with_limit(http, url, cached, DIRECTORY_BODY_LIMIT).await
}

/// [`fetch`] with another cap on the body (`limit` bytes; beyond it `DirectoryError::Http(HttpError::TooLarge)`).
pub async fn fetch_with_limit(
    http: &Http,
    url: &str,
    cached: Option<&CachedBundle>,
    limit: usize,
) -> Result<CachedBundle, DirectoryError> {
    let parsed = Url::parse(url).map_err(|_| HttpError::InvalidUrl("directory URL".into()))?;
    // The list of providers decides where the patient signs in: fetched over TLS only (http only on loopback).
    if !discovery::is_secure_transport(&parsed) {
        return Err(HttpError::InvalidUrl("the directory URL must be https".into()).into());
    }
    let mut req = http
        .client()
        .get(parsed)
        .header("accept", "application/fhir+json, application/json");
    if let Some(etag) = cached
        .filter(|c| c.url == url)
        .and_then(|c| c.etag.as_deref())
    {
        req = req.header("if-none-match", etag);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| HttpError::Network(crate::http::failure(&e)))?;
    if resp.status().as_u16() == 304
        && let Some(c) = cached
    {
        return Ok(c.clone());
    }
    if !resp.status().is_success() {
        return Err(DirectoryError::Status(resp.status().as_u16()));
    }
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Chunk by chunk, refused once past the limit (never read whole first).
    let body = crate::http::read(resp, limit).await?.body;
    Ok(CachedBundle {
        url: url.to_owned(),
        etag,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn brands() -> Value {
        json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Organization", "id": "b1", "name": "Clínica Sagrada Família",
                "alias": ["CSF"], "address": [{"city": "São Paulo"}], "endpoint": [{"reference": "Endpoint/e1"}],
                "extension": [{"url": BRAND_EXT, "extension": [
                    {"url": "brandLogo", "valueUrl": "https://csf.example/logo.png"},
                    {"url": "portal", "extension": [{"url": "portalName", "valueString": "MeuPortal"}, {"url": "portalUrl", "valueUrl": "https://portal.csf.example"}]}]}]}},
            {"resource": {"resourceType": "Endpoint", "id": "e1", "address": "https://fhir.csf.example/r4/"}},
            {"resource": {"resourceType": "Organization", "id": "b2", "name": "Sagrada Health", "address": [{"city": "Boston"}]}},
            {"resource": {"resourceType": "Organization", "id": "b3", "name": "Boston Children's Hospital", "address": [{"city": "Boston"}]}},
        ]})
    }

    fn epic() -> Value {
        json!({"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "Endpoint", "id": "x", "name": "Boston Children's Hospital", "address": "https://epic.bch.example/api/FHIR/R4"}},
            {"resource": {"resourceType": "Endpoint", "id": "y", "name": "Mercy Health", "address": "https://mercy.example/FHIR/R4",
                "contained": [{"resourceType": "Organization", "id": "o", "name": "Mercy Health", "address": [{"city": "Cincinnati"}]}]}},
            {"resource": {"resourceType": "Endpoint", "id": "z", "name": "Bad", "address": "ftp://nope"}},
        ]})
    }

    fn dir() -> Directory {
        let mut d = Directory::from_bundle(brands().to_string().as_bytes()).expect("brands");
        d.merge(Directory::from_bundle(epic().to_string().as_bytes()).expect("epic"));
        d
    }

    fn names(d: &Directory, q: &str) -> Vec<String> {
        d.search(q, 10)
            .into_iter()
            .map(|h| h.provider.name.clone())
            .collect()
    }

    #[test]
    fn brands_and_endpoints_merge() {
        let d = dir();
        let bch = d
            .providers()
            .iter()
            .find(|p| p.name == "Boston Children's Hospital")
            .expect("merged");
        assert_eq!(bch.endpoints.len(), 1);
        assert_eq!(bch.cities, ["Boston"]);
        let csf = d.providers().iter().find(|p| p.id == "b1").expect("brand");
        assert_eq!(csf.portal_name.as_deref(), Some("MeuPortal"));
        assert_eq!(csf.endpoints[0].fhir_base, "https://fhir.csf.example/r4");
        let mercy = d
            .providers()
            .iter()
            .find(|p| p.name == "Mercy Health")
            .expect("contained org");
        assert_eq!(mercy.cities, ["Cincinnati"]);
        assert!(
            !d.providers().iter().any(|p| p.name == "Bad"),
            "non-http endpoints are dropped"
        );
    }

    #[test]
    fn search_ignores_case_and_accents_and_allows_prefixes_and_typos() {
        let d = dir();
        assert_eq!(names(&d, "clinica sagrada")[0], "Clínica Sagrada Família");
        assert_eq!(names(&d, "SAO PAULO"), ["Clínica Sagrada Família"]);
        assert_eq!(names(&d, "csf"), ["Clínica Sagrada Família"]);
        assert_eq!(names(&d, "meuportal"), ["Clínica Sagrada Família"]);
        assert_eq!(names(&d, "bost child")[0], "Boston Children's Hospital");
        assert_eq!(
            names(&d, "bostno"),
            ["Boston Children's Hospital", "Sagrada Health"],
            "one transposition"
        );
        assert_eq!(
            names(&d, "sagrada")[0],
            "Sagrada Health",
            "a name starting with the query ranks first"
        );
        assert!(names(&d, "zzzz").is_empty());
        assert!(names(&d, "  ").is_empty());
    }

    #[test]
    fn marks_set_the_status_of_every_endpoint_with_that_base() {
        let mut d = dir();
        let status = |d: &Directory| {
            d.providers()
                .iter()
                .flat_map(|p| &p.endpoints)
                .find(|e| e.fhir_base == "https://fhir.csf.example/r4")
                .map(|e| e.status)
        };
        assert_eq!(status(&d), Some(EndpointStatus::Unknown));
        // The base as a directory writes it, with or without the trailing slash.
        assert!(d.mark(
            "https://fhir.csf.example/r4/",
            EndpointStatus::DiscoveryFailed
        ));
        assert_eq!(status(&d), Some(EndpointStatus::DiscoveryFailed));
        assert!(!d.mark("https://unknown.example/fhir", EndpointStatus::Working));
    }

    #[test]
    fn bad_bundles_are_typed_errors() {
        assert_eq!(
            Directory::from_bundle(b"not json").err(),
            Some(DirectoryError::NotABundle)
        );
        assert_eq!(
            Directory::from_bundle(br#"{"resourceType":"Patient"}"#).err(),
            Some(DirectoryError::NotABundle)
        );
        let odd = json!({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Organization", "name": 5}}, {"nothing": true}]});
        assert!(
            Directory::from_bundle(odd.to_string().as_bytes())
                .expect("tolerant")
                .providers()
                .is_empty()
        );
        // Streamed, the members may come in any order; an `entry` of another shape holds nothing; trailing garbage
        // is not a bundle.
        let entry_first = br#"{"entry": [{"resource": {"resourceType": "Endpoint", "id": "e", "name": "Lone Clinic",
            "address": "https://lone.example/fhir"}}], "type": "collection", "resourceType": "Bundle"}"#;
        let dir = Directory::from_bundle(entry_first).expect("a bundle");
        assert_eq!(dir.providers().len(), 1);
        assert_eq!(dir.providers()[0].name, "Lone Clinic");
        for shape in [
            r#""entry": {"a": 1}"#,
            r#""entry": "x""#,
            r#""entry": null"#,
            r#""entry": 7"#,
        ] {
            let text = format!(r#"{{"resourceType": "Bundle", {shape}}}"#);
            assert!(
                Directory::from_bundle(text.as_bytes())
                    .expect(shape)
                    .providers()
                    .is_empty()
            );
        }
        assert_eq!(
            Directory::from_bundle(br#"{"resourceType": "Bundle"} {"#).err(),
            Some(DirectoryError::NotABundle)
        );
        assert_eq!(
            Directory::from_bundle(br#"[{"resourceType": "Bundle"}]"#).err(),
            Some(DirectoryError::NotABundle)
        );
    }

    /// The published SMART 2.2 brand extensions (`organization-brand`, `organization-portal` with
    /// `portalEndpoint`), and the endpoint's own bundle preferred over a vendor's (client reqs. 415, 416).
    #[test]
    fn published_brand_extensions_are_read_and_the_endpoints_own_bundle_wins() {
        let own = json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Organization", "id": "gh", "name": "Good Health",
                "extension": [
                    {"url": ORGANIZATION_BRAND, "extension": [{"url": "brandLogo", "valueUrl": "https://gh.example/logo.svg"}]},
                    {"url": ORGANIZATION_PORTAL, "extension": [
                        {"url": "portalName", "valueString": "GoodHealthCentral"},
                        {"url": "portalUrl", "valueUrl": "https://central.gh.example"},
                        {"url": "portalEndpoint", "valueReference": {"reference": "Endpoint/r4"}}]}]}},
            {"resource": {"resourceType": "Endpoint", "id": "r4", "address": "https://fhir.gh.example/r4"}}]});
        let own = Directory::from_bundle(own.to_string().as_bytes()).expect("bundle");
        let p = &own.providers()[0];
        assert_eq!(p.portal_name.as_deref(), Some("GoodHealthCentral"));
        assert_eq!(p.logo_url.as_deref(), Some("https://gh.example/logo.svg"));
        assert_eq!(p.endpoints[0].fhir_base, "https://fhir.gh.example/r4");
        let vendor = json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Endpoint", "id": "x", "name": "Good Health", "address": "https://fhir.gh.example/r4",
                "contained": [{"resourceType": "Organization", "name": "Good Health",
                    "extension": [{"url": BRAND_EXT, "extension": [{"url": "portal", "extension": [
                        {"url": "portalName", "valueString": "Old Portal Name"}]}]}]}]}}]});
        let mut dir = Directory::from_bundle(vendor.to_string().as_bytes()).expect("vendor");
        assert_eq!(
            dir.providers()[0].portal_name.as_deref(),
            Some("Old Portal Name")
        );
        let mut plain = Directory::from_bundle(vendor.to_string().as_bytes()).expect("vendor");
        plain.merge(Directory::from_bundle(own_bytes().as_bytes()).expect("own"));
        assert_eq!(
            plain.providers()[0].portal_name.as_deref(),
            Some("Old Portal Name")
        );
        dir.merge_preferred(Directory::from_bundle(own_bytes().as_bytes()).expect("own"));
        assert_eq!(dir.providers().len(), 1);
        assert_eq!(
            dir.providers()[0].portal_name.as_deref(),
            Some("GoodHealthCentral")
        );
        assert_eq!(dir.providers()[0].endpoints.len(), 1);
    }

    fn own_bytes() -> String {
        json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Organization", "id": "gh", "name": "Good Health",
                "extension": [{"url": ORGANIZATION_PORTAL, "extension": [
                    {"url": "portalName", "valueString": "GoodHealthCentral"},
                    {"url": "portalEndpoint", "valueReference": {"reference": "Endpoint/r4"}}]}]}},
            {"resource": {"resourceType": "Endpoint", "id": "r4", "address": "https://fhir.gh.example/r4"}}]})
        .to_string()
    }

    /// Portal and logo links from a directory are https (http only on loopback): `javascript:`, `file:` and
    /// plain-http links are dropped before they reach an app, the CLI or the FFI.
    #[test]
    fn only_web_links_reach_the_app() {
        let bundle = |portal: &str, logo: &str| {
            json!({"resourceType": "Bundle", "type": "collection", "entry": [
                {"resource": {"resourceType": "Organization", "id": "o", "name": "Mercy Health",
                    "extension": [
                        {"url": ORGANIZATION_BRAND, "extension": [{"url": "brandLogo", "valueUrl": logo}]},
                        {"url": ORGANIZATION_PORTAL, "extension": [
                            {"url": "portalName", "valueString": "MyMercy"},
                            {"url": "portalUrl", "valueUrl": portal},
                            {"url": "portalEndpoint", "valueReference": {"reference": "Endpoint/e"}}]}]}},
                {"resource": {"resourceType": "Endpoint", "id": "e", "address": "https://fhir.mercy.example/r4"}}]})
        };
        for (portal, logo) in [
            ("javascript:alert(document.cookie)", "file:///etc/passwd"),
            ("http://portal.mercy.example/", "javascript:alert(1)"),
            (
                "data:text/html,<script>alert(1)</script>",
                "data:text/html,<b>x</b>",
            ),
        ] {
            let d = Directory::from_bundle(&serde_json::to_vec(&bundle(portal, logo)).expect("ok"))
                .expect("ok");
            let p = d.search("mercy", 1)[0].provider;
            assert_eq!(
                p.portal_name.as_deref(),
                Some("MyMercy"),
                "the portal was read"
            );
            assert_eq!(p.portal_url, None, "{portal}");
            assert_eq!(p.logo_url, None, "{logo}");
        }
        let d = Directory::from_bundle(
            &serde_json::to_vec(&bundle(
                "https://my.mercy.example/",
                "https://mercy.example/logo.png",
            ))
            .expect("ok"),
        )
        .expect("ok");
        let p = d.search("mercy", 1)[0].provider;
        assert_eq!(p.portal_url.as_deref(), Some("https://my.mercy.example/"));
        assert_eq!(
            p.logo_url.as_deref(),
            Some("https://mercy.example/logo.png")
        );
    }

    /// The cache holds the bundle as text (a 50 MB bundle was a 186 MB array of numbers); old caches still read.
    #[test]
    fn the_cache_holds_the_bundle_as_text_and_reads_old_caches() {
        let c = CachedBundle {
            url: "https://dir.example/brands.json".into(),
            etag: Some("\"1\"".into()),
            body: br#"{"resourceType":"Bundle"}"#.to_vec(),
        };
        let stored = serde_json::to_string(&c).expect("ok");
        assert!(stored.len() < 120, "{stored}");
        assert_eq!(
            serde_json::from_str::<CachedBundle>(&stored).expect("ok"),
            c
        );
        let old = r#"{"url":"https://dir.example/brands.json","etag":null,"body":[123,125]}"#;
        assert_eq!(
            serde_json::from_str::<CachedBundle>(old).expect("ok").body,
            b"{}"
        );
    }

    #[tokio::test]
    async fn a_directory_over_plain_http_is_refused() {
        let http = crate::http::Http::new().expect("ok");
        let err = fetch(&http, "http://directory.example/brands.json", None)
            .await
            .expect_err("an error");
        assert!(err.to_string().contains("https"), "{err}");
    }

    /// Providers are one when they share an `Organization.identifier`, and two hospitals that only share a name
    /// (two "St. Mary's" with different NPIs) stay two (SMART client req. 420); without identifiers, names merge.
    #[test]
    fn providers_merge_by_identifier_not_only_by_name() {
        let org = |id: &str, name: &str, npi: Option<&str>, ep: &str| {
            let mut o = json!({"resource": {"resourceType": "Organization", "id": id, "name": name,
                "endpoint": [{"reference": format!("Endpoint/{ep}")}]}});
            if let Some(npi) = npi {
                o["resource"]["identifier"] =
                    json!([{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi}]);
            }
            o
        };
        let ep = |id: &str, address: &str| json!({"resource": {"resourceType": "Endpoint", "id": id, "address": address}});
        let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
            org("a", "St. Mary's Hospital", Some("1111111111"), "ea"), ep("ea", "https://a.example/fhir"),
            org("b", "St. Mary's Hospital", Some("2222222222"), "eb"), ep("eb", "https://b.example/fhir"),
            org("c", "Saint Marys Health (Riverside)", Some("1111111111"), "ec"), ep("ec", "https://c.example/fhir"),
        ]});
        let d = Directory::from_bundle(bundle.to_string().as_bytes()).expect("bundle");
        let marys: Vec<&Provider> = d
            .providers()
            .iter()
            .filter(|p| p.name.contains("Mary"))
            .collect();
        assert_eq!(marys.len(), 2, "two hospitals that share a name: {marys:?}");
        let npi1 = marys
            .iter()
            .find(|p| p.identifiers.iter().any(|i| i.ends_with("|1111111111")))
            .expect("the first");
        let bases: Vec<&str> = npi1
            .endpoints
            .iter()
            .map(|e| e.fhir_base.as_str())
            .collect();
        assert_eq!(
            bases.len(),
            2,
            "the same NPI under another name is the same provider: {bases:?}"
        );
        // Without identifiers, one name is one provider, as before.
        let plain = json!({"resourceType": "Bundle", "type": "collection", "entry": [
            org("x", "Good Health", None, "ex"), ep("ex", "https://x.example/fhir"),
            org("y", "Good Health", None, "ey"), ep("ey", "https://y.example/fhir"),
        ]});
        let d = Directory::from_bundle(plain.to_string().as_bytes()).expect("bundle");
        assert_eq!(d.providers().len(), 1);
        assert_eq!(d.providers()[0].endpoints.len(), 2);
    }
}
