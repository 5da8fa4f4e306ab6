//! The data an app asks for, spelled in the server's scope syntax; and the scope the server granted, parsed so the
//! sync plan follows exactly what the patient allowed (a patient may untick categories at consent).

use serde::{Deserialize, Serialize};

use crate::discovery::{ScopeSyntax, ServerInfo};

const OBS_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

/// A kind of data an app can ask for. Each maps to one or more FHIR resource types (and Observation categories).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataCategory {
    Demographics,
    LabResults,
    VitalSigns,
    SocialHistory,
    Allergies,
    Medications,
    Immunizations,
    Problems,
    Procedures,
    Visits,
    Documents,
    Appointments,
    /// Observations outside labs, vitals and social history: surveys, exams, imaging, procedure results,
    /// therapy, activity, functional status.
    OtherObservations,
    /// Care plans, goals and care teams.
    CarePlans,
    /// Implants and other devices.
    Devices,
    /// Orders and referrals (ServiceRequest).
    Orders,
    /// Insurance and billing (Coverage; the claims and the insurer's explanations of benefit).
    Coverage,
    /// Answered questionnaires.
    Questionnaires,
}

impl DataCategory {
    /// Every category, in the order an app usually lists them.
    pub const ALL: [DataCategory; 18] = [
        Self::Demographics,
        Self::LabResults,
        Self::VitalSigns,
        Self::SocialHistory,
        Self::Allergies,
        Self::Medications,
        Self::Immunizations,
        Self::Problems,
        Self::Procedures,
        Self::Visits,
        Self::Documents,
        Self::Appointments,
        Self::OtherObservations,
        Self::CarePlans,
        Self::Devices,
        Self::Orders,
        Self::Coverage,
        Self::Questionnaires,
    ];

    /// The resource types (and, for Observations, the category) behind this data: the rows of
    /// [`crate::kinds`]' tables under this category.
    fn resources(self) -> Vec<(&'static str, Option<&'static str>)> {
        crate::kinds::resources_of(self)
    }
}

/// How to spell the data scopes for one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeStyle {
    pub syntax: ScopeSyntax,
    /// Category-restricted Observation scopes (`patient/Observation.rs?category=…`); v2 only.
    pub granular: bool,
}

impl ScopeStyle {
    /// What to ask `server` for: its scope syntax (from its capabilities, else the scopes it lists), and
    /// category-restricted scopes only when it lists some in `scopes_supported` or publishes no list (a server
    /// that lists its scopes and no category-restricted one is taken not to understand them: such servers drop
    /// them from the grant, so the whole type is asked for instead).
    pub fn for_server(server: &ServerInfo) -> Self {
        let granular = server.scope_syntax == ScopeSyntax::V2
            && server.lists_scope(|s| s.contains("?category=")) != Some(false);
        Self {
            syntax: server.scope_syntax,
            granular,
        }
    }
}

/// The scope that asks for one resource type (and Observation category).
fn resource_scope(ty: &str, obs_category: Option<&str>, style: ScopeStyle) -> String {
    match (style.syntax, obs_category) {
        (ScopeSyntax::V2, Some(c)) if style.granular => {
            format!("patient/{ty}.rs?category={OBS_CATEGORY}|{c}")
        }
        (ScopeSyntax::V2, _) => format!("patient/{ty}.rs"),
        (ScopeSyntax::V1, _) => format!("patient/{ty}.read"),
    }
}

/// The scope string of an authorization request: launch context, identity, offline access, and the wanted data in
/// one syntax (v2 with Observation category filters, or v1 with whole types).
pub fn request_scope(wanted: &[DataCategory], syntax: ScopeSyntax) -> String {
    request_scope_styled(
        wanted,
        ScopeStyle {
            syntax,
            granular: syntax == ScopeSyntax::V2,
        },
    )
}

/// Drops the resource scopes a server that publishes `scopes_supported` does not list: some servers refuse the whole
/// request for one unknown scope (Keycloak answers `invalid_scope`, so the link failed), and what is not asked for
/// shows as not granted ([`compare_grant`]). A list with a wildcard for the context and permission
/// (`patient/*.rs`, `patient/*.read`, `patient/*.*`) covers every type. Scopes that grant no data (`openid`,
/// `fhirUser`, `launch/patient`, `offline_access`) are kept; a server without a list is asked for everything.
pub fn only_listed(scope: &str, server: &ServerInfo) -> String {
    let Some(listed) = server.metadata.scopes_supported.as_ref() else {
        return scope.to_owned();
    };
    // What the listed scopes allow between them: a wildcard (`patient/*.rs`) covers every type with those
    // permissions or fewer (`patient/Practitioner.r`), as a grant of it would.
    let offered = GrantedScope::parse(&listed.join(" "));
    scope
        .split_ascii_whitespace()
        .filter(|t| {
            listed.iter().any(|l| l == t) || parse_resource(t).is_none_or(|r| offered.covers(&r))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What to ask for in the one retry after the server refused a link's scope with `invalid_scope` (at the
/// authorization redirect or the token endpoint), or `None` when a retry would ask the same again.
///
/// - A server that publishes `scopes_supported`: only what it lists. The first request already dropped unlisted
///   resource scopes ([`only_listed`]) but kept the ones that grant no data (`openid`, `fhirUser`,
///   `offline_access`, `launch/patient`); the retry drops those too unless listed (a Keycloak realm without a
///   `fhirUser` client scope refuses the whole request for it). A listed wildcard still covers the types it covers.
/// - A server that publishes no list: the SDK cannot tell which scope was refused, and guessing another spelling
///   (v1 for v2, a whole type for a category-restricted one) could ask for more than the first request did. So the
///   retry asks for the minimal patient request: `launch/patient` and the patient's own Patient resource, in the
///   spelling of the first request. It is always a subset of what was asked (never wider), and what it leaves out
///   is reported as not granted (the link's consent and its `LinkLimited` event; without `offline_access` the link
///   cannot renew and ends at the access token's expiry, keeping the record): the patient gets a working link and
///   the host the exact list of what the provider refused, instead of a failed link.
///
/// Only one retry: a retry that is refused again is the link's error.
pub fn retry_after_invalid_scope(asked: &str, server: &ServerInfo) -> Option<String> {
    let tokens: Vec<&str> = asked.split_ascii_whitespace().collect();
    let retry: Vec<&str> = match server.metadata.scopes_supported.as_ref() {
        Some(listed) => {
            let offered = GrantedScope::parse(&listed.join(" "));
            tokens
                .iter()
                .copied()
                .filter(|t| {
                    listed.iter().any(|l| l == t)
                        || parse_resource(t).is_some_and(|r| offered.covers(&r))
                })
                .collect()
        }
        None => tokens
            .iter()
            .copied()
            .filter(|t| {
                matches!(
                    *t,
                    "launch/patient" | "patient/Patient.rs" | "patient/Patient.read"
                )
            })
            .collect(),
    };
    (!retry.is_empty() && retry.len() < tokens.len()).then(|| retry.join(" "))
}

/// [`request_scope`] in a negotiated [`ScopeStyle`].
pub fn request_scope_styled(wanted: &[DataCategory], style: ScopeStyle) -> String {
    let mut parts: Vec<String> = ["launch/patient", "openid", "fhirUser", "offline_access"]
        .map(String::from)
        .to_vec();
    for category in wanted {
        for (ty, obs_category) in category.resources() {
            let scope = resource_scope(ty, obs_category, style);
            if !parts.contains(&scope) {
                parts.push(scope);
            }
        }
    }
    // The names of the doctors, places and medicines the records point to (read only: they are not the patient's
    // record, and nothing searches them).
    if wanted.iter().any(|c| *c != DataCategory::Demographics) {
        for ty in crate::views::REFERENCED_TYPES {
            let scope = match style.syntax {
                ScopeSyntax::V2 => format!("patient/{ty}.r"),
                ScopeSyntax::V1 => format!("patient/{ty}.read"),
            };
            parts.push(scope);
        }
    }
    parts.join(" ")
}

/// What the provider granted of one kind of data the app asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Consent {
    /// Granted as asked.
    Granted,
    /// Not granted as asked, but a broader granted scope covers it (`patient/Observation.rs` for labs).
    Covered,
    /// Some of the record types behind it are granted or covered, others are not.
    Partial,
    /// Nothing of it was granted: it will not be synced.
    NotGranted,
}

/// The consent result for one data category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryConsent {
    pub category: DataCategory,
    pub consent: Consent,
}

/// Compares the granted scope with what was asked (`requested`, in `style`), per wanted category: exactly
/// granted, covered by a broader grant (the fallback: no new request is needed), partly, or not at all.
pub fn compare_grant(
    wanted: &[DataCategory],
    style: ScopeStyle,
    granted: &GrantedScope,
) -> Vec<CategoryConsent> {
    let tokens: Vec<&str> = granted.raw.split_ascii_whitespace().collect();
    let mut out: Vec<CategoryConsent> = Vec::new();
    for &category in wanted {
        if out.iter().any(|c| c.category == category) {
            continue;
        }
        let (mut exact, mut covered, mut missing) = (0, 0, 0);
        for (ty, obs_category) in category.resources() {
            let asked = resource_scope(ty, obs_category, style);
            if tokens.contains(&asked.as_str()) {
                exact += 1;
            } else if granted.can_search(ty)
                && obs_category.is_none_or(|c| {
                    granted
                        .searchable_categories(ty)
                        .is_none_or(|cats| cats.iter().any(|g| g == c))
                })
            {
                covered += 1;
            } else {
                missing += 1;
            }
        }
        let consent = match (exact, covered, missing) {
            (_, 0, 0) => Consent::Granted,
            (_, _, 0) => Consent::Covered,
            (0, 0, _) => Consent::NotGranted,
            _ => Consent::Partial,
        };
        out.push(CategoryConsent { category, consent });
    }
    out
}

/// One granted resource scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantedResource {
    /// `None` for `*`.
    pub resource_type: Option<String>,
    pub read: bool,
    pub search: bool,
    /// Category codes the scope is limited to (empty: all).
    pub categories: Vec<String>,
}

/// A granted scope string, parsed. Unknown scopes are kept as text but grant nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantedScope {
    pub raw: String,
    pub resources: Vec<GrantedResource>,
    pub offline_access: bool,
    pub openid: bool,
}

impl GrantedScope {
    /// Parses v1 and v2 scopes, including v2 category filters.
    pub fn parse(raw: &str) -> Self {
        let mut out = GrantedScope {
            raw: raw.to_owned(),
            ..Default::default()
        };
        for token in raw.split_ascii_whitespace() {
            match token {
                "offline_access" | "online_access" => out.offline_access = true,
                "openid" => out.openid = true,
                t => {
                    if let Some(r) = parse_resource(t) {
                        out.resources.push(r);
                    }
                }
            }
        }
        out
    }

    /// What of `self` (a scope a refresh answered with) the patient granted at link (`ceiling`): a refresh may
    /// narrow the grant but never widen it (a server answering `patient/*.rs` to an app linked for Condition only
    /// must not make the next sync store labs the patient did not share). The intersection of the two sets of
    /// permissions: each token of `self` that `ceiling` covers, and each token of `ceiling` that `self` covers
    /// (so `patient/*.rs` answered to a grant of `patient/Condition.rs` keeps `patient/Condition.rs`). Tokens that
    /// grant no data (`openid`, `fhirUser`, `launch/patient`, `offline_access`) are taken as answered.
    pub fn within(&self, ceiling: &GrantedScope) -> GrantedScope {
        let mut kept: Vec<&str> = Vec::new();
        for t in self.raw.split_ascii_whitespace() {
            let keep = match parse_resource(t) {
                Some(r) => ceiling.covers(&r),
                None => true,
            };
            if keep && !kept.contains(&t) {
                kept.push(t);
            }
        }
        for t in ceiling.raw.split_ascii_whitespace() {
            if let Some(r) = parse_resource(t)
                && self.covers(&r)
                && !kept.contains(&t)
            {
                kept.push(t);
            }
        }
        GrantedScope::parse(&kept.join(" "))
    }

    /// Whether this grant allows everything `r` allows (each of its permissions, for its type and categories).
    fn covers(&self, r: &GrantedResource) -> bool {
        let allows = |perm: fn(&GrantedResource) -> bool| {
            self.resources.iter().any(|g| {
                perm(g)
                    && (g.resource_type.is_none() || g.resource_type == r.resource_type)
                    && (g.categories.is_empty()
                        || (!r.categories.is_empty()
                            && r.categories.iter().all(|c| g.categories.contains(c))))
            })
        };
        (!r.read || allows(|g| g.read)) && (!r.search || allows(|g| g.search))
    }

    /// Whether resources of `ty` may be searched at all.
    pub fn can_search(&self, ty: &str) -> bool {
        self.resources
            .iter()
            .any(|r| r.search && r.resource_type.as_deref().is_none_or(|t| t == ty))
    }

    /// The categories of `ty` that may be searched: `None` means every category, `Some(list)` only those.
    pub fn searchable_categories(&self, ty: &str) -> Option<Vec<String>> {
        let matching: Vec<&GrantedResource> = self
            .resources
            .iter()
            .filter(|r| r.search && r.resource_type.as_deref().is_none_or(|t| t == ty))
            .collect();
        if matching.iter().any(|r| r.categories.is_empty()) {
            return None;
        }
        let mut cats: Vec<String> = matching
            .iter()
            .flat_map(|r| r.categories.iter().cloned())
            .collect();
        cats.sort_unstable();
        cats.dedup();
        Some(cats)
    }
}

fn parse_resource(t: &str) -> Option<GrantedResource> {
    let (context, rest) = t.split_once('/')?;
    if !matches!(context, "patient" | "user") {
        return None;
    }
    let (path, query) = rest
        .split_once('?')
        .map_or((rest, None), |(p, q)| (p, Some(q)));
    let (ty, perms) = path.rsplit_once('.')?;
    let (read, search) = match perms {
        "read" | "*" => (true, true),
        "write" => (false, false),
        p if !p.is_empty() && p.chars().all(|c| "cruds".contains(c)) => {
            (p.contains('r'), p.contains('s'))
        }
        _ => return None,
    };
    let categories = query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k == "category")
                .map(|(_, v)| v.rsplit('|').next().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    Some(GrantedResource {
        resource_type: (ty != "*").then(|| ty.to_owned()),
        read,
        search,
        categories,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_use_one_syntax() {
        let v2 = request_scope(
            &[DataCategory::LabResults, DataCategory::VitalSigns],
            ScopeSyntax::V2,
        );
        assert!(v2.contains("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"));
        assert!(!v2.contains(".read"));
        let v1 = request_scope(
            &[DataCategory::LabResults, DataCategory::VitalSigns],
            ScopeSyntax::V1,
        );
        assert_eq!(v1.matches("patient/Observation.read").count(), 1, "{v1}");
        assert!(!v1.contains(".rs"));
        assert!(v1.starts_with("launch/patient openid fhirUser offline_access"));
    }

    #[test]
    fn granted_scopes_follow_categories() {
        let g = GrantedScope::parse(
            "launch/patient offline_access patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory patient/Condition.read",
        );
        assert!(g.offline_access);
        assert!(
            g.can_search("Observation")
                && g.can_search("Condition")
                && !g.can_search("Immunization")
        );
        assert_eq!(
            g.searchable_categories("Observation"),
            Some(vec!["laboratory".to_owned()])
        );
        assert_eq!(g.searchable_categories("Condition"), None);
        let wild = GrantedScope::parse("patient/*.read");
        assert!(wild.can_search("Anything"));
    }

    #[test]
    fn odd_scopes_grant_nothing() {
        let g = GrantedScope::parse(
            "system/*.read patient/Observation patient/Observation.xyz  \t garbage",
        );
        assert!(g.resources.is_empty());
    }

    #[test]
    fn every_category_and_record_kind_is_asked_for() {
        let v2 = request_scope(&DataCategory::ALL, ScopeSyntax::V2);
        for code in ["vital-sign", "sdoh", "survey", "exam", "functional-status"] {
            assert!(v2.contains(&format!("{OBS_CATEGORY}|{code}")), "{code}");
        }
        // Every type a sync searches (Observations by category, above).
        for ty in crate::kinds::searched_types().filter(|t| *t != "Observation") {
            assert!(v2.contains(&format!("patient/{ty}.rs")), "{ty}");
        }
    }

    fn server(caps: &[&str], scopes: Option<&[&str]>) -> ServerInfo {
        let base = url::Url::parse("https://ehr.example/fhir").expect("url");
        ServerInfo {
            fhir_base: base.clone(),
            issuer: None,
            authorization_endpoint: base.clone(),
            token_endpoint: base,
            revocation_endpoint: None,
            registration_endpoint: None,
            management_endpoint: None,
            jwks_uri: None,
            capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
            scope_syntax: if caps.contains(&"permission-v2") {
                ScopeSyntax::V2
            } else {
                ScopeSyntax::V1
            },
            legacy_discovery: false,
            iss_parameter_supported: false,
            metadata: crate::discovery::ServerMetadata {
                scopes_supported: scopes.map(|l| l.iter().map(|s| (*s).to_owned()).collect()),
                ..Default::default()
            },
        }
    }

    /// Issue 15: category-restricted scopes only for a server that lists some, or lists nothing (client reqs. 131,
    /// 132, 147); v1 servers get whole types in v1 syntax; never a wildcard (client reqs. 46, 148).
    #[test]
    fn the_scope_style_follows_the_server() {
        let granular = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory";
        let unlisted = ScopeStyle::for_server(&server(&["permission-v2"], None));
        assert!(unlisted.granular);
        let listed = ScopeStyle::for_server(&server(
            &["permission-v2"],
            Some(&["openid", "patient/Observation.rs", granular]),
        ));
        assert!(listed.granular);
        let coarse = ScopeStyle::for_server(&server(
            &["permission-v2"],
            Some(&["openid", "patient/Observation.rs", "patient/Condition.rs"]),
        ));
        assert!(!coarse.granular);
        let scope = request_scope_styled(
            &[DataCategory::LabResults, DataCategory::VitalSigns],
            coarse,
        );
        assert_eq!(
            scope.matches("patient/Observation.rs").count(),
            1,
            "{scope}"
        );
        assert!(!scope.contains('?') && !scope.contains('*'), "{scope}");
        let v1 = ScopeStyle::for_server(&server(&["permission-v1"], None));
        assert_eq!((v1.syntax, v1.granular), (ScopeSyntax::V1, false));
        let only = request_scope_styled(&[DataCategory::Allergies], unlisted);
        let searched: Vec<&str> = only.split(' ').filter(|s| s.ends_with(".rs")).collect();
        assert_eq!(
            searched,
            ["patient/AllergyIntolerance.rs"],
            "only what is wanted is searched (client req. 46): {only}"
        );
        assert!(
            only.starts_with(
                "launch/patient openid fhirUser offline_access patient/AllergyIntolerance.rs"
            ),
            "{only}"
        );
        for s in only.split(' ').skip(5) {
            let ty = s
                .strip_prefix("patient/")
                .and_then(|t| t.strip_suffix(".r"))
                .unwrap_or_default();
            assert!(
                crate::views::REFERENCED_TYPES.contains(&ty),
                "only reads of referenced types besides: {s}"
            );
        }
    }

    /// Issue 15: the grant compared with the request, per category.
    #[test]
    fn the_grant_is_compared_with_what_was_asked() {
        let style = ScopeStyle {
            syntax: ScopeSyntax::V2,
            granular: true,
        };
        let wanted = [
            DataCategory::LabResults,
            DataCategory::VitalSigns,
            DataCategory::Allergies,
            DataCategory::Immunizations,
        ];
        let lab = format!("patient/Observation.rs?category={OBS_CATEGORY}|laboratory");
        let get = |granted: &str, c: DataCategory| {
            compare_grant(&wanted, style, &GrantedScope::parse(granted))
                .into_iter()
                .find(|x| x.category == c)
                .map(|x| x.consent)
        };
        let exact = format!("{lab} patient/DiagnosticReport.rs patient/AllergyIntolerance.rs");
        assert_eq!(
            get(&exact, DataCategory::LabResults),
            Some(Consent::Granted)
        );
        assert_eq!(
            get(&exact, DataCategory::VitalSigns),
            Some(Consent::NotGranted)
        );
        assert_eq!(
            get(&exact, DataCategory::Immunizations),
            Some(Consent::NotGranted)
        );
        // A coarser grant covers the category-restricted request; v1 `.read` covers v2 `.rs`.
        let broad = "patient/Observation.rs patient/DiagnosticReport.read patient/*.read";
        assert_eq!(get(broad, DataCategory::LabResults), Some(Consent::Covered));
        assert_eq!(get(broad, DataCategory::VitalSigns), Some(Consent::Covered));
        assert_eq!(
            get(broad, DataCategory::Immunizations),
            Some(Consent::Covered)
        );
        // Reports without lab Observations: in part.
        assert_eq!(
            get("patient/DiagnosticReport.rs", DataCategory::LabResults),
            Some(Consent::Partial)
        );
        // Read without search does not cover a search.
        assert_eq!(
            get("patient/AllergyIntolerance.r", DataCategory::Allergies),
            Some(Consent::NotGranted)
        );
    }

    /// A refresh never widens the grant: what the patient shared at link is the ceiling; narrowing is taken.
    #[test]
    fn a_refreshed_scope_is_held_within_the_linked_grant() {
        let linked = GrantedScope::parse(
            "openid fhirUser offline_access patient/Patient.rs patient/Condition.rs",
        );
        let wider = GrantedScope::parse("patient/*.rs user/*.rs offline_access");
        let held = wider.within(&linked);
        assert!(held.can_search("Condition"));
        assert!(!held.can_search("Observation"), "{}", held.raw);
        assert!(!held.can_search("AllergyIntolerance"));
        assert!(held.offline_access);
        // Narrowing is taken.
        let narrower = GrantedScope::parse("patient/Patient.rs");
        let held = narrower.within(&linked);
        assert!(!held.can_search("Condition"));
        assert!(held.can_search("Patient"));
        // Categories: a wider category grant is held to the linked categories.
        let linked = GrantedScope::parse(
            "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
        );
        let held = GrantedScope::parse("patient/Observation.rs").within(&linked);
        assert_eq!(
            held.searchable_categories("Observation").map(|c| c.len()),
            Some(1),
            "{}",
            held.raw
        );
        // The same answer again changes nothing.
        let same = GrantedScope::parse("patient/Patient.rs patient/Condition.rs");
        assert_eq!(same.within(&same).raw, same.raw);
    }

    /// After `invalid_scope`: a listed server is asked only for what it lists, identity scopes included; a server
    /// without a list for the minimal patient request; never the same request again, never a wider one.
    #[test]
    fn the_retry_after_invalid_scope_asks_only_listed_or_minimal_scopes() {
        let server = |listed: Option<Vec<&str>>| {
            let mut s = ServerInfo::for_tests("https://kc.example/fhir");
            s.metadata.scopes_supported = listed.map(|l| l.into_iter().map(String::from).collect());
            s
        };
        let asked =
            "launch/patient openid fhirUser offline_access patient/Patient.rs patient/Condition.rs";
        assert_eq!(
            retry_after_invalid_scope(
                asked,
                &server(Some(vec![
                    "openid",
                    "launch/patient",
                    "offline_access",
                    "patient/*.rs"
                ]))
            )
            .as_deref(),
            Some("launch/patient openid offline_access patient/Patient.rs patient/Condition.rs")
        );
        assert_eq!(
            retry_after_invalid_scope(asked, &server(None)).as_deref(),
            Some("launch/patient patient/Patient.rs")
        );
        // Everything asked is listed: the same request again would be refused again.
        assert_eq!(
            retry_after_invalid_scope(
                asked,
                &server(Some(vec![
                    "openid",
                    "fhirUser",
                    "launch/patient",
                    "offline_access",
                    "patient/*.rs"
                ]))
            ),
            None
        );
        assert_eq!(
            retry_after_invalid_scope("launch/patient patient/Patient.read", &server(None)),
            None
        );
    }

    /// A server that lists its scopes is asked only for the resource scopes it lists (Keycloak refuses the whole
    /// request for one it does not know); a wildcard in the list covers every type; identity scopes stay.
    #[test]
    fn only_listed_resource_scopes_are_asked_for() {
        let server = |listed: Option<Vec<&str>>| {
            let mut s = ServerInfo::for_tests("https://kc.example/fhir");
            s.metadata.scopes_supported = listed.map(|l| l.into_iter().map(String::from).collect());
            s
        };
        let asked = "launch/patient openid fhirUser offline_access patient/Patient.rs patient/Condition.rs patient/Observation.rs";
        assert_eq!(only_listed(asked, &server(None)), asked);
        assert_eq!(
            only_listed(
                asked,
                &server(Some(vec![
                    "openid",
                    "patient/Patient.rs",
                    "patient/Condition.rs"
                ]))
            ),
            "launch/patient openid fhirUser offline_access patient/Patient.rs patient/Condition.rs"
        );
        assert_eq!(
            only_listed(asked, &server(Some(vec!["patient/*.rs"]))),
            asked
        );
        assert_eq!(
            only_listed(
                "openid patient/Observation.read",
                &server(Some(vec!["patient/*.read"]))
            ),
            "openid patient/Observation.read"
        );
    }
}
