//! Filling the sandbox: the generated demo family, and real FHIR R4 data from `--data` — Bundles (transaction,
//! batch, collection, searchset), single resources, or NDJSON, from files or directories. `urn:uuid:` references
//! of transaction bundles (as Synthea writes them) are rewritten to `Type/id`. Every Patient found gets a portal
//! login. Resource types the sandbox does not know are stored and served as they are.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use time::Date;

use crate::Config;
use crate::generator::{self, ProxyKind};
use crate::store::{PersonRow, ProxyRow, Store, StoreError};

/// The password of every login made for loaded patients.
pub const LOADED_PASSWORD: &str = "sandbox-demo";

/// Why data could not be loaded. Names the file and the place; never quotes the content.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON at line {line}, column {column}: {message}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Shape { path: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Fills an empty store from the configuration. Runs before the server accepts connections.
pub fn fill(db: &mut Store, config: &Config, today: Date, now: i64) -> Result<(), LoadError> {
    // Read every file before writing anything, so a broken file leaves the store untouched.
    let mut loaded = Vec::new();
    for path in &config.data {
        loaded.extend(load_path(path)?);
    }
    if config.demo_data {
        let population = generator::generate(config.seed, today, config.large_patient);
        for person in &population.people {
            let row = PersonRow {
                patient_id: person.patient_id.clone(),
                display_name: person.display_name.clone(),
                birth_date: person.birth_date.to_string(),
                username: person.login.as_ref().map(|l| l.username.clone()),
            };
            db.put_person(&row, person.login.as_ref().map(|l| l.password.as_str()))?;
            for link in &person.proxy_for {
                db.put_proxy(&ProxyRow {
                    proxy_patient: person.patient_id.clone(),
                    patient_id: link.patient_id.clone(),
                    kind: match link.kind {
                        ProxyKind::Parent => "parent".into(),
                        ProxyKind::LegalProxy => "legal-proxy".into(),
                    },
                    related_person_id: link.related_person_id.clone(),
                    ended_at: None,
                })?;
            }
        }
        db.put_all(population.resources, now)?;
    }
    load_into(db, loaded, now)?;
    Ok(())
}

/// Stores loaded resources and makes a login for each new Patient among them. Returns the people made.
pub fn load_into(
    db: &mut Store,
    resources: Vec<Value>,
    now: i64,
) -> Result<Vec<(PersonRow, String)>, LoadError> {
    let existing: Vec<String> = db
        .people()?
        .into_iter()
        .filter_map(|p| p.username)
        .collect();
    let people = people_from(&resources, &existing);
    db.put_all(resources, now)?;
    for (p, _) in &people {
        db.put_person(p, Some(LOADED_PASSWORD))?;
    }
    Ok(people)
}

/// Reads a file or every `.json`/`.ndjson` file of a directory (sorted by name).
pub fn load_path(path: &Path) -> Result<Vec<Value>, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_owned(),
        source,
    };
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("json" | "ndjson")
                )
            })
            .collect();
        files.sort();
        let mut out = Vec::new();
        for f in files {
            out.extend(load_path(&f)?);
        }
        return Ok(out);
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    if path.extension().and_then(|e| e.to_str()) == Some("ndjson") {
        let mut out = Vec::new();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v = serde_json::from_str(line).map_err(|e| json_error(path, &e, n + 1))?;
            out.extend(resources_of(v, path)?);
        }
        return Ok(out);
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| json_error(path, &e, 0))?;
    resources_of(v, path)
}

fn json_error(path: &Path, e: &serde_json::Error, line_offset: usize) -> LoadError {
    let (line, column) = if line_offset > 0 {
        (line_offset, e.column())
    } else {
        (e.line(), e.column())
    };
    // serde_json's message may quote a bit of the input: keep only its category.
    let message = match e.classify() {
        serde_json::error::Category::Eof => "the file ends too early",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected value",
        serde_json::error::Category::Io => "read error",
    };
    LoadError::Json {
        path: path.to_owned(),
        line,
        column,
        message: message.into(),
    }
}

/// The resources of one JSON document: a Bundle's entries (with `urn:uuid:` references resolved), or itself.
pub(crate) fn resources_of(v: Value, path: &Path) -> Result<Vec<Value>, LoadError> {
    let shape = |message: &str| LoadError::Shape {
        path: path.to_owned(),
        message: message.to_owned(),
    };
    if !v.is_object() {
        return Err(shape("expected a FHIR resource or Bundle (a JSON object)"));
    }
    if v["resourceType"] != "Bundle" {
        return if v["resourceType"].is_string() && v["id"].is_string() {
            Ok(vec![v])
        } else {
            Err(shape("a resource needs resourceType and id"))
        };
    }
    let entries = v["entry"].as_array().cloned().unwrap_or_default();
    let mut uuids: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, mut entry) in entries.into_iter().enumerate() {
        let Some(resource) = entry.get_mut("resource").map(Value::take) else {
            continue;
        };
        let Some(ty) = resource["resourceType"].as_str().map(str::to_owned) else {
            return Err(shape(&format!(
                "entry {i} has a resource without resourceType"
            )));
        };
        let full_url = entry["fullUrl"].as_str().unwrap_or_default();
        let id = match resource["id"].as_str() {
            Some(id) => id.to_owned(),
            None => match full_url.strip_prefix("urn:uuid:") {
                Some(uuid) => uuid.to_owned(),
                None => return Err(shape(&format!("entry {i} has a resource without id"))),
            },
        };
        if full_url.starts_with("urn:") {
            uuids.insert(full_url.to_owned(), format!("{ty}/{id}"));
        }
        let mut resource = resource;
        resource["id"] = Value::String(id);
        out.push(resource);
    }
    if !uuids.is_empty() {
        for r in &mut out {
            rewrite_references(r, &uuids);
        }
    }
    Ok(out)
}

fn rewrite_references(v: &mut Value, map: &HashMap<String, String>) {
    match v {
        Value::Object(o) => {
            for (k, child) in o.iter_mut() {
                if k == "reference"
                    && let Some(target) = child.as_str().and_then(|s| map.get(s))
                {
                    *child = Value::String(target.clone());
                } else {
                    rewrite_references(child, map);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rewrite_references(i, map)),
        _ => {}
    }
}

/// A person and login for each Patient: the username is the first given name in lower-case ASCII, made unique
/// with a number.
fn people_from(resources: &[Value], taken: &[String]) -> Vec<(PersonRow, String)> {
    let mut used: Vec<String> = taken.to_vec();
    let mut out = Vec::new();
    for p in resources.iter().filter(|r| r["resourceType"] == "Patient") {
        let Some(id) = p["id"].as_str() else { continue };
        let name = &p["name"][0];
        let given = name["given"][0].as_str().unwrap_or("patient");
        let family = name["family"].as_str().unwrap_or("");
        let display: String = format!("{given} {family}")
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect();
        let base: String = given
            .chars()
            .filter(char::is_ascii_alphabetic)
            .collect::<String>()
            .to_ascii_lowercase();
        let base = if base.is_empty() {
            "patient".to_owned()
        } else {
            base
        };
        let mut username = base.clone();
        let mut n = 2;
        while used.contains(&username) {
            username = format!("{base}{n}");
            n += 1;
        }
        used.push(username.clone());
        let row = PersonRow {
            patient_id: id.to_owned(),
            display_name: display.trim().to_owned(),
            birth_date: p["birthDate"].as_str().unwrap_or("1970-01-01").to_owned(),
            username: Some(username),
        };
        out.push((row, LOADED_PASSWORD.to_owned()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transaction_bundles_resolve_uuid_references() {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "name": [{"given": ["Ána3"], "family": "Ruiz"}]}},
            {"fullUrl": "urn:uuid:o1", "resource": {"resourceType": "Observation", "subject": {"reference": "urn:uuid:p1"}}},
        ]});
        let out = resources_of(bundle, Path::new("x.json")).expect("load");
        assert_eq!(out[0]["id"], "p1");
        assert_eq!(out[1]["subject"]["reference"], "Patient/p1");
        let people = people_from(&out, &["na".to_owned()]);
        assert_eq!(people[0].0.username.as_deref(), Some("na2"));
        assert_eq!(people[0].0.display_name, "Ána Ruiz");
    }

    #[test]
    fn broken_json_names_the_place_not_the_content() {
        let dir = std::env::temp_dir().join(format!("cl-loader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("broken.json");
        std::fs::write(
            &f,
            "{\"resourceType\": \"Patient\", \"name\": \"SECRET\",\n  oops}",
        )
        .expect("write");
        let err = load_path(&f).expect_err("must fail").to_string();
        assert!(
            err.contains("broken.json") && err.contains("line 2"),
            "{err}"
        );
        assert!(!err.contains("SECRET"));
        let nd = dir.join("x.ndjson");
        std::fs::write(&nd, "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n\n{bad\n")
            .expect("write");
        assert!(
            load_path(&nd)
                .expect_err("must fail")
                .to_string()
                .contains("line 3")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
