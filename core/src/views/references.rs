//! References resolved: the names of the practitioners, organizations, locations and medications that records
//! point to without naming them (Synthea's exports, and many servers, give `{"reference": "Practitioner/1"}` with no
//! `display`). Sync finds those references ([`unnamed_references`]) and fetches each resource once; the read path
//! fills the missing `display` of every reference from them ([`Names::fill`]) before any view parses its records,
//! so a visit names its doctor and place, a prescription its drug and prescriber, with no change to the views.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::fhir::*;

/// The types whose names are resolved.
pub const REFERENCED_TYPES: [&str; 4] = ["Practitioner", "Organization", "Location", "Medication"];

/// Every reference in `r` to a [`REFERENCED_TYPES`] resource that carries no `display`, as (type, id). Only
/// relative references and absolute ones under the record's own FHIR base: another server's resources are not
/// fetched with this server's token.
pub fn unnamed_references(r: &Value, base: &str, out: &mut BTreeSet<(String, String)>) {
    walk(r, &mut |obj| {
        if obj.get("display").and_then(Value::as_str).is_some() {
            return;
        }
        if let Some(target) = obj
            .get("reference")
            .and_then(Value::as_str)
            .and_then(|s| target(s, base))
        {
            out.insert(target);
        }
    });
}

/// The (type, id) a reference names when it is one of [`REFERENCED_TYPES`] on this server.
fn target(reference: &str, base: &str) -> Option<(String, String)> {
    let reference = reference.trim();
    let relative = match reference.strip_prefix(base.trim_end_matches('/')) {
        Some(rest) => rest.strip_prefix('/')?,
        // Another server's resource: an absolute URL elsewhere, a URN, or a protocol-relative reference
        // (`//host/fhir/Practitioner/1` names `host`'s Practitioner/1, not this server's: read as relative, a
        // doctor's name would come from the wrong resource).
        None if reference.contains("://")
            || reference.starts_with("//")
            || reference.starts_with("urn:") =>
        {
            return None;
        }
        None => reference,
    };
    let (ty, id) = reference_parts(relative)?;
    let ty = ty?;
    let valid_id = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    (REFERENCED_TYPES.contains(&ty) && valid_id).then(|| (ty.to_owned(), id.to_owned()))
}

/// What a referenced resource is called: a practitioner's name (with its prefix: "Dr. Anna Lee"), an
/// organization's or location's name, a medication's code.
pub fn name_of(r: &Value) -> Option<String> {
    match r["resourceType"].as_str()? {
        "Practitioner" => list(&r["name"]).first().and_then(|n| {
            string(&n["text"]).or_else(|| {
                let parts: Vec<String> = list(&n["prefix"])
                    .iter()
                    .chain(list(&n["given"]))
                    .chain(list(&n["family"]))
                    .filter_map(string)
                    .collect();
                (!parts.is_empty()).then(|| parts.join(" "))
            })
        }),
        "Organization" | "Location" => string(&r["name"]),
        "Medication" => concept_name(&r["code"]),
        _ => None,
    }
}

/// The names of one provider's referenced resources, by `Type/id`.
#[derive(Debug, Default, Clone)]
pub struct Names(HashMap<String, String>);

impl Names {
    /// From the stored referenced resources of one account.
    pub fn from_resources<'a>(resources: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut map = HashMap::new();
        for r in resources {
            if let (Some(ty), Some(id), Some(name)) =
                (r["resourceType"].as_str(), r["id"].as_str(), name_of(r))
            {
                map.insert(format!("{ty}/{id}"), name);
            }
        }
        Self(map)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Gives every reference in `r` that names no one the name of what it points to, when known.
    pub fn fill(&self, r: &mut Value, base: &str) {
        if self.0.is_empty() {
            return;
        }
        walk_mut(r, &mut |obj| {
            if obj.get("display").and_then(Value::as_str).is_some() {
                return;
            }
            let Some((ty, id)) = obj
                .get("reference")
                .and_then(Value::as_str)
                .and_then(|s| target(s, base))
            else {
                return;
            };
            if let Some(name) = self.0.get(&format!("{ty}/{id}")) {
                obj.insert("display".into(), Value::String(name.clone()));
            }
        });
    }
}

/// Calls `f` on every object in `v` (depth-first). Depth is bounded: a hostile document cannot exhaust the stack.
fn walk(v: &Value, f: &mut dyn FnMut(&serde_json::Map<String, Value>)) {
    fn go(v: &Value, f: &mut dyn FnMut(&serde_json::Map<String, Value>), depth: usize) {
        if depth > 64 {
            return;
        }
        match v {
            Value::Object(m) => {
                f(m);
                for x in m.values() {
                    go(x, f, depth + 1);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| go(x, f, depth + 1)),
            _ => {}
        }
    }
    go(v, f, 0);
}

fn walk_mut(v: &mut Value, f: &mut dyn FnMut(&mut serde_json::Map<String, Value>)) {
    fn go(v: &mut Value, f: &mut dyn FnMut(&mut serde_json::Map<String, Value>), depth: usize) {
        if depth > 64 {
            return;
        }
        match v {
            Value::Object(m) => {
                f(m);
                for x in m.values_mut() {
                    go(x, f, depth + 1);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| go(x, f, depth + 1)),
            _ => {}
        }
    }
    go(v, f, 0);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    const BASE: &str = "https://ehr.example/fhir";

    #[test]
    fn unnamed_references_on_this_server_are_found_and_filled() {
        let mut encounter = json!({
            "resourceType": "Encounter", "id": "e",
            "participant": [{"individual": {"reference": "Practitioner/p1"}}],
            "location": [{"location": {"reference": "https://ehr.example/fhir/Location/l1"}}],
            "serviceProvider": {"reference": "Organization/o1", "display": "Named already"},
            "subject": {"reference": "Patient/x"},
            "basedOn": [{"reference": "https://elsewhere.example/fhir/Practitioner/p9"}],
        });
        let mut found = BTreeSet::new();
        unnamed_references(&encounter, BASE, &mut found);
        let found: Vec<(String, String)> = found.into_iter().collect();
        assert_eq!(
            found,
            [
                ("Location".to_owned(), "l1".to_owned()),
                ("Practitioner".to_owned(), "p1".to_owned())
            ]
        );
        let names = Names::from_resources(&[
            json!({"resourceType": "Practitioner", "id": "p1", "name": [{"prefix": ["Dr."], "given": ["Anna"], "family": "Lee"}]}),
            json!({"resourceType": "Location", "id": "l1", "name": "Lakeview Clinic"}),
            json!({"resourceType": "Organization", "id": "o1", "name": "Not used: the reference has a display"}),
        ]);
        names.fill(&mut encounter, BASE);
        assert_eq!(
            encounter["participant"][0]["individual"]["display"],
            "Dr. Anna Lee"
        );
        assert_eq!(
            encounter["location"][0]["location"]["display"],
            "Lakeview Clinic"
        );
        assert_eq!(encounter["serviceProvider"]["display"], "Named already");
        assert!(encounter["basedOn"][0].get("display").is_none());
        let v = crate::views::visit(&encounter).unwrap();
        assert_eq!(v.provider.as_deref(), Some("Dr. Anna Lee"));
        assert_eq!(v.location_or_org.as_deref(), Some("Lakeview Clinic"));
    }

    #[test]
    fn odd_references_are_ignored() {
        for bad in [
            "Practitioner/",
            "Practitioner/../../admin",
            "urn:uuid:1234",
            "#contained",
            "Practitioner/a b",
            "//elsewhere.example/fhir/Practitioner/p1",
            "//ehr.example/fhir/Practitioner/p1",
            "",
        ] {
            assert_eq!(target(bad, BASE), None, "{bad}");
        }
        let deep = (0..200).fold(
            json!({"reference": "Practitioner/p"}),
            |v, _| json!({ "x": v }),
        );
        let mut found = BTreeSet::new();
        unnamed_references(&deep, BASE, &mut found);
        assert!(found.is_empty(), "depth is bounded");
    }
}
