//! Resolving references: each Practitioner, Organization, Location and Medication that the synced records point to
//! without naming it is read once (deduplicated across the whole sync, at most `concurrency` at a time within the
//! client's permits) and kept under the query key `ref:{type}`, so the views can name a visit's doctor and place and
//! a prescription's drug. Reads rather than `_include`: every server supports them, and each resource is fetched
//! once however many records point to it, and not again until a full pass refreshes the names.
//!
//! These resources are not the patient's record: they are not counted as new results, and a server that does not
//! let a patient app read them (403) only means the names stay as the server gave them.

use std::collections::HashSet;

use super::plan::can_read;
use super::*;

/// Reads the referenced resources in `found` that are not stored yet (all of them when `reconcile`, which then
/// also removes the ones no record points to any more).
pub(super) async fn resolve(
    wave: &Wave<'_, '_>,
    found: BTreeSet<(String, String)>,
    reconcile: bool,
    report: &mut SyncReport,
) -> Result<()> {
    let (store, keys, account) = (wave.ctx.store, wave.keys, wave.account);
    let id = account.id.as_str();
    let mut wanted = Vec::new();
    for (ty, rid) in found {
        if !can_read(&account.granted, &ty) {
            continue;
        }
        // Locked, what is stored cannot be looked up (no keyed hash): every reference found is read.
        let stored = match keys {
            Writer::Keys(k) => store.contains(k, id, &ty, &rid).map_err(Error::from)?,
            Writer::Locked(_) => false,
        };
        if reconcile || !stored {
            wanted.push((ty, rid));
        }
    }
    let refused: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
    let fhir = wave.fhir;
    let results: Vec<(String, std::result::Result<Option<Value>, FhirError>)> =
        futures_util::stream::iter(wanted)
            .map(|(ty, rid)| {
                let refused = &refused;
                async move {
                    if refused
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .contains(&ty)
                    {
                        return (ty, Err(FhirError::Forbidden));
                    }
                    let url = match fhir.resolve(&format!("{ty}/{rid}")) {
                        Ok(u) => u,
                        Err(e) => return (ty, Err(e)),
                    };
                    let got = match fhir.get_json(&url).await {
                        // The resource named must be the one asked for.
                        Ok(v) if v["resourceType"] == ty.as_str() && v["id"] == rid.as_str() => {
                            Ok(Some(v))
                        }
                        Ok(_) => Err(FhirError::Malformed(
                            "the server answered another resource".into(),
                        )),
                        Err(FhirError::NotFound) => Ok(None),
                        Err(FhirError::Forbidden) => {
                            refused
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(ty.clone());
                            Err(FhirError::Forbidden)
                        }
                        Err(e) => Err(e),
                    };
                    (ty, got)
                }
            })
            .buffer_unordered(wave.options.concurrency.max(1))
            .collect()
            .await;
    let mut complete = true;
    let mut failed: BTreeMap<String, (bool, String)> = BTreeMap::new();
    for (ty, got) in results {
        match got {
            Ok(Some(v)) => {
                store
                    .write(|tx| {
                        // No `since`: referenced resources are never "new results".
                        let query = format!("{REFERENCED}:{ty}");
                        keys.put_page(tx, id, &query, wave.pass, None, wave.ctx.now_ms, &[&v])
                            .map(|_| ())
                    })
                    .map_err(Error::from)?;
            }
            Ok(None) => {}
            Err(FhirError::Token(e)) => return Err(e),
            Err(FhirError::Locked) => return Err(Error::Locked),
            Err(FhirError::Local(e)) => return Err(e.into()),
            Err(e) => {
                complete = false;
                failed
                    .entry(ty)
                    .or_insert((e == FhirError::Forbidden, e.to_string()));
            }
        }
    }
    for (ty, (not_granted, reason)) in failed {
        report.failures.push(QueryFailure {
            query: format!("{REFERENCED}:{ty}"),
            not_granted,
            reason,
        });
    }
    if reconcile && complete {
        for ty in crate::views::REFERENCED_TYPES {
            store
                .write(|tx| keys.reconcile(tx, id, &format!("{REFERENCED}:{ty}"), wave.pass))
                .map_err(Error::from)?;
        }
    }
    Ok(())
}
