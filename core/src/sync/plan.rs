//! Planning: from the grant and the server's CapabilityStatement, which queries a sync runs and in what order.

use super::*;

/// The searched types, in the order they are synced (Patient is read, not searched): the searched rows of
/// [`crate::kinds::RESOURCE_KINDS`]. Only the granted ones are searched (see [`plan`]).
pub fn searched_types() -> impl Iterator<Item = &'static str> {
    crate::kinds::searched_types()
}

/// One planned query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedQuery {
    /// Stable name: `Patient`, `Condition`, `Observation:laboratory`.
    pub key: String,
    pub resource_type: String,
    /// Path and query relative to the FHIR base.
    pub path: String,
    pub read: bool,
}

/// What the server's CapabilityStatement says matters for planning.
#[derive(Debug, Clone, Default)]
pub struct ServerSupport {
    /// Types the server lists (empty: unknown, assume all).
    pub types: Vec<String>,
    /// Types whose search supports `_lastUpdated`.
    pub last_updated: Vec<String>,
}

impl ServerSupport {
    /// Reads a CapabilityStatement.
    pub fn from_capability_statement(cs: &Value) -> Self {
        let mut out = Self::default();
        for rest in cs["rest"].as_array().into_iter().flatten() {
            let global_lu = rest["searchParam"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == "_lastUpdated");
            for r in rest["resource"].as_array().into_iter().flatten() {
                let Some(ty) = r["type"].as_str() else {
                    continue;
                };
                out.types.push(ty.to_owned());
                if global_lu
                    || r["searchParam"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| p["name"] == "_lastUpdated")
                {
                    out.last_updated.push(ty.to_owned());
                }
            }
        }
        out
    }

    fn supports(&self, ty: &str) -> bool {
        self.types.is_empty() || self.types.iter().any(|t| t == ty)
    }
}

/// What earlier syncs of an account learned about its server, kept in the query bookkeeping (`last_error` marks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    /// The server answered 400 to an Observation search without a category (Epic does): fan out per category.
    pub observation_needs_category: bool,
    /// Queries the server answered 400 before any page (a category it does not know): skipped until the next full
    /// pass, and not reported as failures.
    pub unsupported: Vec<String>,
    /// The page size the server accepted after it refused the one asked for (a 400 to `_count`, then a page at
    /// [`super::FALLBACK_PAGE_SIZE`]): asked first from then on, so that no sync is refused again for it, for
    /// [`PAGE_SIZE_RETRY_MS`]. Then the larger size is asked again: a server that raised its limit gets full pages,
    /// one that did not refuses once more and is remembered again.
    pub page_size: Option<usize>,
}

/// How long a page size a server refused is not asked again: 30 days.
pub const PAGE_SIZE_RETRY_MS: i64 = 30 * 24 * 3600 * 1000;

/// The page size of a `{PAGE_SIZE_MARK}{size}@{unix ms}` mark while it holds at `now_ms`. A mark without its time
/// (written before it had one), or stamped more than a day ahead of `now_ms` (the clock was off), has lapsed: the
/// worst that costs is one refused request.
fn remembered_page_size(mark: &str, now_ms: i64) -> Option<usize> {
    let (size, at) = mark.strip_prefix(PAGE_SIZE_MARK)?.split_once('@')?;
    let (size, at) = (size.parse::<usize>().ok()?, at.parse::<i64>().ok()?);
    let age = now_ms.checked_sub(at)?;
    (size > 0 && (-24 * 3600 * 1000..PAGE_SIZE_RETRY_MS).contains(&age)).then_some(size)
}

/// The bookkeeping row of an account's accepted page size (its `last_error` is [`PAGE_SIZE_MARK`] and the size). No
/// FHIR type has this name; it holds no data and is never withdrawn.
pub const PAGE_SIZE_KEY: &str = "~page-size";
/// The prefix of the mark that remembers the page size a server accepted.
pub const PAGE_SIZE_MARK: &str = "accepted-page-size:";

/// The mark of the unfiltered Observation query once the server asked for a category.
pub const NEEDS_CATEGORY: &str = "needs-category";
/// The mark of a query the server does not support (a 400 before any page).
pub const UNSUPPORTED: &str = "unsupported-search";
/// The mark of a query the server answered 403: not shared; it does not keep a full pass open.
pub const NOT_PERMITTED: &str = "not-permitted";

impl Learned {
    /// Reads the marks from the store, as they hold at `now_ms`.
    /// The marks are in the clear part of the state (no health data), so a locked sync reads them too.
    pub fn load(
        store: &Store,
        account: &str,
        now_ms: i64,
    ) -> std::result::Result<Self, StoreError> {
        let mut out = Self::default();
        for key in store.query_keys(account)? {
            let st = store.query_state_clear(account, &key)?;
            match st.last_error.as_deref() {
                Some(NEEDS_CATEGORY) if key == "Observation" => {
                    out.observation_needs_category = true
                }
                Some(UNSUPPORTED) => out.unsupported.push(key),
                Some(m) if key == PAGE_SIZE_KEY => out.page_size = remembered_page_size(m, now_ms),
                _ => {}
            }
        }
        Ok(out)
    }
}

/// Whether the grant lets resources of `ty` be read (a `.r`/`.read` scope for the type or `*`).
pub(super) fn can_read(granted: &crate::scopes::GrantedScope, ty: &str) -> bool {
    granted
        .resources
        .iter()
        .any(|r| r.read && r.resource_type.as_deref().is_none_or(|t| t == ty))
}

/// Whether the grant still covers the data a query (by its key) brought in: what consent withdrawal checks.
pub(super) fn covered(account: &LinkedAccount, key: &str) -> bool {
    let granted = &account.granted;
    let all_observations = || {
        granted.can_search("Observation") && granted.searchable_categories("Observation").is_none()
    };
    match key.split_once(':') {
        Some(("Observation", c)) => {
            granted.can_search("Observation")
                && granted
                    .searchable_categories("Observation")
                    .is_none_or(|cs| cs.iter().any(|x| x == c))
        }
        Some((REFERENCED, ty)) => can_read(granted, ty),
        Some(_) => false,
        None if key == "Patient" => can_read(granted, "Patient"),
        None if key == PAGE_SIZE_KEY => true,
        None if key == "Observation" => all_observations(),
        None => granted.can_search(key),
    }
}

/// The prefix of the keys under which referenced resources (a visit's doctor, a prescription's drug) are kept.
pub const REFERENCED: &str = "ref";

/// Plans the queries of an account: nothing the patient did not grant, nothing the server does not offer.
///
/// Observations: one search without a category when the grant covers every category (it also finds the
/// uncategorised ones and every spelling); per category when the grant names categories, or when the server asked
/// for one (see [`Learned`]). Queries the server does not support are skipped, except on a full pass. Searches ask
/// for `page_size` results a page, or the smaller page size the server accepted after refusing a larger one.
pub fn plan(
    account: &LinkedAccount,
    support: &ServerSupport,
    page_size: usize,
    learned: &Learned,
    full: bool,
) -> Vec<PlannedQuery> {
    let pid = url_encode(&account.patient_id);
    let granted = &account.granted;
    let page_size = learned.page_size.map_or(page_size, |p| p.min(page_size));
    let mut out = Vec::new();
    if can_read(granted, "Patient") {
        out.push(PlannedQuery {
            key: "Patient".into(),
            resource_type: "Patient".into(),
            path: format!("Patient/{pid}"),
            read: true,
        });
    }
    for ty in searched_types() {
        if !granted.can_search(ty) || !support.supports(ty) {
            continue;
        }
        let base = format!("{ty}?patient={pid}&_count={page_size}");
        if ty == "Observation" {
            let categories = match granted.searchable_categories(ty) {
                Some(list) => list,
                None if learned.observation_needs_category => crate::kinds::OBSERVATION_CATEGORIES
                    .iter()
                    .map(|(c, _, _)| (*c).to_owned())
                    .collect(),
                None => {
                    out.push(PlannedQuery {
                        key: ty.into(),
                        resource_type: ty.into(),
                        path: base,
                        read: false,
                    });
                    continue;
                }
            };
            for c in categories {
                out.push(PlannedQuery {
                    key: format!("Observation:{c}"),
                    resource_type: ty.into(),
                    path: format!("{base}&category={}", url_encode(&c)),
                    read: false,
                });
            }
        } else {
            out.push(PlannedQuery {
                key: ty.into(),
                resource_type: ty.into(),
                path: base,
                read: false,
            });
        }
    }
    if !full {
        out.retain(|q| !learned.unsupported.contains(&q.key));
    }
    out
}

pub(super) fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The order queries start in: those that tend to have the longest chains of pages (results, vital signs,
/// documents with their contents, visits) first, so that the chain that sets the sync's floor starts at once and
/// the short queries fill the other slots around it.
pub(super) fn longest_first(queries: &[PlannedQuery]) -> Vec<usize> {
    let rank = |q: &PlannedQuery| match q.key.as_str() {
        "Observation:laboratory" | "Observation" => 0,
        "Observation:vital-signs" => 1,
        "DocumentReference" => 2,
        "Encounter" => 3,
        k if k.starts_with("Observation:") => 4,
        _ => 5,
    };
    let mut order: Vec<usize> = (0..queries.len()).collect();
    order.sort_unstable_by_key(|&i| (rank(&queries[i]), i));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_page_size_lapses_after_a_month_and_on_an_odd_clock() {
        let day = 24 * 3600 * 1000;
        let now = 1_800_000_000_000;
        let mark = |at: i64| format!("{PAGE_SIZE_MARK}100@{at}");
        assert_eq!(remembered_page_size(&mark(now), now), Some(100));
        assert_eq!(remembered_page_size(&mark(now - 29 * day), now), Some(100));
        assert_eq!(
            remembered_page_size(&mark(now - 30 * day), now),
            None,
            "a month on: asked again"
        );
        assert_eq!(
            remembered_page_size(&mark(now + day / 2), now),
            Some(100),
            "a clock a little behind"
        );
        assert_eq!(
            remembered_page_size(&mark(now + 2 * day), now),
            None,
            "stamped in the future"
        );
        for odd in [
            format!("{PAGE_SIZE_MARK}100"),
            format!("{PAGE_SIZE_MARK}0@{now}"),
            format!("{PAGE_SIZE_MARK}x@{now}"),
            format!("{PAGE_SIZE_MARK}100@{}", i64::MIN),
            "something else".to_owned(),
        ] {
            assert_eq!(remembered_page_size(&odd, now), None, "{odd}");
        }
    }
}
