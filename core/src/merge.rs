//! One person at several providers. Accounts are never merged on a guess: an OpenID `sub` is issuer-specific (two
//! providers may give two people the same `sub`, and one person two), so equal subjects mean nothing across
//! providers. The SDK suggests merges from what the records say (a shared identifier such as a national id or a
//! payer member id; or the same name, birth date and sex) and merges only what the host confirmed with the user.
//! Confirmed groups are kept in the host's secure store, next to the accounts.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::context::PatientContext;
use crate::error::{Error, Result};
use crate::host::SecureStore;

/// Where the confirmed groups are kept in the secure store.
pub const MERGES_KEY: &str = "chartlink/merged-patients";

/// Why two linked records look like one person's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MergeReason {
    /// Both Patient resources carry the same identifier (same system and value).
    SharedIdentifier,
    /// Same name, birth date and (when both give it) sex.
    SameNameAndBirthDate,
}

/// A suggested merge, for the host to show ("Is Ava Thompson at Lakeview the same person as at Riverside?").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeSuggestion {
    /// The patients (context ids) that look like one person.
    pub context_ids: Vec<String>,
    pub name: Option<String>,
    pub birth_date: Option<String>,
    pub providers: Vec<String>,
    pub reason: MergeReason,
}

/// The confirmed groups of account ids.
pub fn load(store: &dyn SecureStore) -> Result<Vec<Vec<String>>> {
    match store.get(MERGES_KEY).map_err(Error::from)? {
        None => Ok(Vec::new()),
        // An unreadable entry only loses the merges: the records are all still shown, one per account.
        Some(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or_default()),
    }
}

pub fn save(store: &dyn SecureStore, groups: &[Vec<String>]) -> Result<()> {
    let groups: Vec<&Vec<String>> = groups.iter().filter(|g| g.len() > 1).collect();
    if groups.is_empty() {
        return store.delete(MERGES_KEY).map_err(Error::from);
    }
    let bytes = serde_json::to_vec(&groups)
        .map_err(|e| Error::storage(crate::StorageKind::Other, e.to_string()))?;
    store.put(MERGES_KEY, &bytes).map_err(Error::from)
}

/// Adds a confirmed group (joining the groups it touches).
pub fn join(groups: &mut Vec<Vec<String>>, accounts: &[String]) {
    let mut joined: BTreeSet<String> = accounts.iter().cloned().collect();
    groups.retain(|g| {
        if g.iter().any(|a| joined.contains(a)) {
            joined.extend(g.iter().cloned());
            false
        } else {
            true
        }
    });
    groups.push(joined.into_iter().collect());
}

/// Merges the contexts whose accounts the user confirmed are one person (and nothing else).
pub fn apply(contexts: Vec<PatientContext>, groups: &[Vec<String>]) -> Vec<PatientContext> {
    let group_of = |c: &PatientContext| {
        groups
            .iter()
            .position(|g| c.account_ids.iter().any(|a| g.contains(a)))
    };
    let mut out: Vec<(Option<usize>, PatientContext)> = Vec::new();
    for c in contexts {
        let g = group_of(&c);
        match out.iter_mut().find(|(og, _)| g.is_some() && *og == g) {
            Some((_, o)) => {
                o.account_ids.extend(c.account_ids);
                o.providers.extend(c.providers);
                o.revoked &= c.revoked;
                o.restricted |= c.restricted;
                if o.name.is_none() {
                    o.name = c.name;
                }
                if o.birth_date.is_none() {
                    o.birth_date = c.birth_date;
                }
            }
            None => out.push((g, c)),
        }
    }
    out.into_iter().map(|(_, c)| c).collect()
}

/// Pairs of patients (each with its Patient resources) at different providers that look like one person.
pub fn suggest(patients: &[(PatientContext, Vec<Value>)]) -> Vec<MergeSuggestion> {
    let mut out = Vec::new();
    for (i, (a, pa)) in patients.iter().enumerate() {
        for (b, pb) in &patients[i + 1..] {
            if a.providers.iter().any(|p| b.providers.contains(p)) {
                continue; // one provider, two records: the provider's business, not a merge
            }
            let reason = if shares_identifier(pa, pb) {
                MergeReason::SharedIdentifier
            } else if same_demographics(a, pa, b, pb) {
                MergeReason::SameNameAndBirthDate
            } else {
                continue;
            };
            out.push(MergeSuggestion {
                context_ids: vec![a.id.clone(), b.id.clone()],
                name: a.name.clone(),
                birth_date: a.birth_date.clone(),
                providers: a.providers.iter().chain(&b.providers).cloned().collect(),
                reason,
            });
        }
    }
    out
}

/// Identifiers that name a person beyond one provider. A provider's own record numbers (MRN, type `MR`) do not:
/// two providers may well use the same number for two people under a system string they both copied.
fn identifiers(patients: &[Value]) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for p in patients {
        for id in p["identifier"].as_array().into_iter().flatten() {
            let is_mrn = id["type"]["coding"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["code"] == "MR");
            if let (Some(system), Some(value), false) =
                (id["system"].as_str(), id["value"].as_str(), is_mrn)
                && !system.trim().is_empty()
                && !value.trim().is_empty()
            {
                out.insert((system.trim().to_owned(), value.trim().to_owned()));
            }
        }
    }
    out
}

fn shares_identifier(a: &[Value], b: &[Value]) -> bool {
    !identifiers(a).is_disjoint(&identifiers(b))
}

fn same_demographics(a: &PatientContext, pa: &[Value], b: &PatientContext, pb: &[Value]) -> bool {
    let fold = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    let gender = |p: &[Value]| {
        p.iter()
            .find_map(|r| r["gender"].as_str().map(str::to_owned))
    };
    let genders_agree = match (gender(pa), gender(pb)) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    matches!((&a.name, &b.name), (Some(x), Some(y)) if fold(x) == fold(y))
        && a.birth_date.is_some()
        && a.birth_date == b.birth_date
        && genders_agree
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::context::Relation;
    use serde_json::json;

    fn ctx(id: &str, provider: &str, name: &str, sub: &str) -> PatientContext {
        PatientContext {
            id: id.into(),
            account_ids: vec![id.into()],
            name: Some(name.into()),
            birth_date: Some("1990-02-03".into()),
            relation: Relation::Myself,
            restricted: false,
            providers: vec![provider.into()],
            user_subject: Some(sub.into()),
            revoked: false,
        }
    }

    #[test]
    fn the_same_subject_at_two_providers_is_not_a_merge_and_only_confirmed_groups_merge() {
        // Two different people who happen to have the same `sub` at two issuers.
        let a = ctx("a", "https://one/fhir", "Ava Thompson", "patient-1");
        let b = ctx("b", "https://two/fhir", "Noah Park", "patient-1");
        assert_eq!(apply(vec![a.clone(), b.clone()], &[]).len(), 2);
        let pa = vec![json!({"resourceType": "Patient", "gender": "female"})];
        let pb = vec![json!({"resourceType": "Patient", "gender": "male"})];
        assert!(suggest(&[(a.clone(), pa.clone()), (b.clone(), pb)]).is_empty());
        // The same person at two providers, under two subjects: suggested, merged once confirmed.
        let a2 = ctx("c", "https://two/fhir", "ava  THOMPSON", "x-77");
        let s = suggest(&[(a.clone(), pa.clone()), (a2.clone(), pa.clone())]);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].reason, MergeReason::SameNameAndBirthDate);
        assert_eq!(s[0].context_ids, ["a", "c"]);
        let mut groups = Vec::new();
        join(&mut groups, &["a".into(), "c".into()]);
        let merged = apply(vec![a, b, a2], &groups);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].account_ids, ["a", "c"]);
    }

    #[test]
    fn a_shared_identifier_is_a_stronger_hint_but_record_numbers_are_not() {
        let a = ctx("a", "https://one/fhir", "Ava Thompson", "1");
        let b = ctx("b", "https://two/fhir", "Ava Thompson-Reyes", "2");
        let ssn = json!({"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-12-3456"});
        let mrn =
            json!({"system": "urn:mrn", "value": "100", "type": {"coding": [{"code": "MR"}]}});
        let pa = vec![json!({"identifier": [ssn, mrn]})];
        let pb = vec![json!({"identifier": [ssn]})];
        let s = suggest(&[(a.clone(), pa.clone()), (b.clone(), pb)]);
        assert_eq!(s[0].reason, MergeReason::SharedIdentifier);
        let only_mrn = vec![json!({"identifier": [mrn]})];
        assert!(suggest(&[(a, only_mrn.clone()), (b, only_mrn)]).is_empty());
    }
}
