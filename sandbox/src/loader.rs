//! Filling the sandbox: the generated demo family, and real FHIR R4 data from `--data` — Bundles (transaction,
//! batch, collection, searchset), single resources, or NDJSON, from files or directories. `urn:uuid:` references
//! of transaction bundles (as Synthea writes them) and conditional references by identifier
//! (`Practitioner?identifier=system|value`, as newer Synthea writes them) are rewritten to `Type/id`. Files are
//! streamed one at a time. Every Patient found gets a portal login. Resource types the sandbox does not know are stored and served as they are.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;
use time::Date;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::Config;
use crate::generator::{self, ProxyKind};
use crate::store::{Bulk, PersonRow, ProxyRow, Store, StoreError};

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
///
/// `--data` is streamed: one file (or NDJSON line) at a time is parsed, its `urn:uuid:` and conditional
/// references resolved, written and dropped, so memory stays at the size of the largest file. Only what
/// resolution across files needs is kept: the ids of Practitioners, Organizations, Locations and Patients by
/// identifier, for `Practitioner?identifier=system|value` references (Synthea writes its practitioners and
/// hospitals once, in `practitionerInformation*.json` / `hospitalInformation*.json`, which load first). The whole
/// fill is one transaction, so a broken file still leaves the store untouched.
pub fn fill(db: &mut Store, config: &Config, today: Date, now: i64) -> Result<(), LoadError> {
    let files = data_files(&config.data)?;
    let mut loader = Loader::new(db.usernames()?);
    let mut bulk = db.bulk()?;
    if config.demo_data {
        let population = generator::generate(config.seed, today, config.large_patient);
        for person in &population.people {
            let row = PersonRow {
                patient_id: person.patient_id.clone(),
                display_name: person.display_name.clone(),
                birth_date: person.birth_date.to_string(),
                username: person.login.as_ref().map(|l| l.username.clone()),
            };
            if let Some(u) = &row.username {
                loader.logins.used.insert(u.clone());
            }
            bulk.put_person(&row, person.login.as_ref().map(|l| l.password.as_str()))?;
            for link in &person.proxy_for {
                bulk.put_proxy(&ProxyRow {
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
        for r in population.resources {
            bulk.put(r, now)?;
        }
    }
    for f in &files {
        for_each_document(f, |doc| loader.document(&mut bulk, doc, f, now))?;
    }
    bulk.commit()?;
    Ok(())
}

/// Loads one more document (a Bundle or a resource) into a running store, in one transaction; conditional
/// references may name resources stored before. Returns the people (with logins) made for new Patients.
pub fn load_document(
    db: &mut Store,
    document: Value,
    path: &Path,
    now: i64,
) -> Result<Vec<(PersonRow, String)>, LoadError> {
    let mut loader = Loader::new(db.usernames()?);
    let mut bulk = db.bulk()?;
    loader.document(&mut bulk, document, path, now)?;
    bulk.commit()?;
    Ok(loader.made)
}

/// Stores resources (references already resolved) and makes a login for each new Patient among them. Returns the
/// people made.
pub fn load_into(
    db: &mut Store,
    resources: Vec<Value>,
    now: i64,
) -> Result<Vec<(PersonRow, String)>, LoadError> {
    let mut loader = Loader::new(db.usernames()?);
    let mut bulk = db.bulk()?;
    for r in resources {
        loader.store(&mut bulk, r, now)?;
    }
    bulk.commit()?;
    Ok(loader.made)
}

/// The files of the `--data` paths, in load order: each directory's `.json`/`.ndjson` files sorted by name, and
/// Synthea's shared practitioner and hospital files first, so the patient files' references to them resolve.
pub fn data_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for path in paths {
        if !path.is_dir() {
            out.push(path.clone());
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|source| LoadError::Io {
                path: path.clone(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                !p.is_dir()
                    && matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("json" | "ndjson")
                    )
            })
            .collect();
        files.sort();
        out.extend(files);
    }
    out.sort_by_key(|p| !is_shared_file(p));
    Ok(out)
}

/// Synthea's once-per-population files, which patient files reference by identifier.
fn is_shared_file(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
        n.starts_with("practitionerInformation") || n.starts_with("hospitalInformation")
    })
}

/// Reads a file or every `.json`/`.ndjson` file of a directory and returns all their resources at once. For small
/// inputs; [`fill`] streams instead.
pub fn load_path(path: &Path) -> Result<Vec<Value>, LoadError> {
    let mut out = Vec::new();
    for f in data_files(&[path.to_owned()])? {
        for_each_document(&f, |doc| {
            out.extend(resources_of(doc, &f)?);
            Ok(())
        })?;
    }
    Ok(out)
}

/// Parses one file and hands each JSON document of it (the file, or each NDJSON line) to `each`, one at a time.
fn for_each_document(
    path: &Path,
    mut each: impl FnMut(Value) -> Result<(), LoadError>,
) -> Result<(), LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    if path.extension().and_then(|e| e.to_str()) == Some("ndjson") {
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(io)?;
            if line.trim().is_empty() {
                continue;
            }
            let v = serde_json::from_str(&line).map_err(|e| json_error(path, &e, n + 1))?;
            each(v)?;
        }
        return Ok(());
    }
    let mut bytes = Vec::new();
    std::io::BufReader::new(file)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| json_error(path, &e, 0))?;
    drop(bytes);
    each(v)
}

/// Resource types whose ids are remembered by identifier during a load, for conditional references.
const BY_IDENTIFIER: [&str; 5] = [
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "Patient",
];

/// One load: the logins made so far and what conditional references resolve to.
struct Loader {
    logins: Logins,
    /// `Type`, system (`*` for any) and value of an identifier, to `Type/id`; `None` remembers that the store had
    /// none either.
    by_identifier: HashMap<(String, String, String), Option<String>>,
    made: Vec<(PersonRow, String)>,
}

impl Loader {
    fn new(taken: Vec<String>) -> Self {
        Self {
            logins: Logins {
                used: taken.into_iter().collect(),
            },
            by_identifier: HashMap::new(),
            made: Vec::new(),
        }
    }

    /// Resolves, stores and drops the resources of one document.
    fn document(
        &mut self,
        bulk: &mut Bulk<'_>,
        doc: Value,
        path: &Path,
        now: i64,
    ) -> Result<(), LoadError> {
        let (mut resources, uuids) = split(doc, path)?;
        for r in &resources {
            self.learn(r);
        }
        let mut failed = None;
        for r in &mut resources {
            rewrite_references(r, &mut |reference: &str| {
                if reference.starts_with("urn:") {
                    return uuids.get(reference).cloned();
                }
                let (ty, query) = reference.split_once('?')?;
                match self.conditional(bulk, ty, query) {
                    Ok(found) => found,
                    Err(e) => {
                        failed.get_or_insert(e);
                        None
                    }
                }
            });
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
        for r in resources {
            self.store(bulk, r, now)?;
        }
        Ok(())
    }

    fn store(&mut self, bulk: &mut Bulk<'_>, r: Value, now: i64) -> Result<(), LoadError> {
        let person = (r["resourceType"] == "Patient")
            .then(|| self.logins.person(&r))
            .flatten();
        bulk.put(r, now)?;
        if let Some(p) = person {
            bulk.put_person(&p, Some(LOADED_PASSWORD))?;
            self.made.push((p, LOADED_PASSWORD.to_owned()));
        }
        Ok(())
    }

    /// Remembers a resource's identifiers when references may name it by them.
    fn learn(&mut self, r: &Value) {
        let Some(ty) = r["resourceType"]
            .as_str()
            .filter(|t| BY_IDENTIFIER.contains(t))
        else {
            return;
        };
        let Some(id) = r["id"].as_str() else { return };
        for ident in r["identifier"].as_array().into_iter().flatten() {
            let Some(value) = ident["value"].as_str() else {
                continue;
            };
            let target = Some(format!("{ty}/{id}"));
            if let Some(system) = ident["system"].as_str() {
                self.by_identifier
                    .insert((ty.into(), system.into(), value.into()), target.clone());
            }
            self.by_identifier
                .insert((ty.into(), "*".into(), value.into()), target);
        }
    }

    /// `Type?identifier=[system|]value` to `Type/id`, from this load or the store.
    fn conditional(
        &mut self,
        bulk: &Bulk<'_>,
        ty: &str,
        query: &str,
    ) -> Result<Option<String>, crate::store::StoreError> {
        if ty.is_empty() || !ty.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Ok(None);
        }
        let mut params = url::form_urlencoded::parse(query.as_bytes());
        let (Some((name, token)), None) = (params.next(), params.next()) else {
            return Ok(None);
        };
        if name != "identifier" {
            return Ok(None);
        }
        let (system, value) = match token.split_once('|') {
            Some((s, v)) if !s.is_empty() => (s.to_owned(), v.to_owned()),
            Some((_, v)) => ("*".to_owned(), v.to_owned()),
            None => ("*".to_owned(), token.into_owned()),
        };
        let key = (ty.to_owned(), system, value);
        if let Some(found) = self.by_identifier.get(&key) {
            return Ok(found.clone());
        }
        let system = (key.1 != "*").then_some(key.1.as_str());
        let found = bulk
            .find_by_identifier(ty, system, &key.2)?
            .map(|id| format!("{ty}/{id}"));
        self.by_identifier.insert(key, found.clone());
        Ok(found)
    }
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
    let (mut out, uuids) = split(v, path)?;
    if !uuids.is_empty() {
        for r in &mut out {
            rewrite_references(r, &mut |s| uuids.get(s).cloned());
        }
    }
    Ok(out)
}

/// A document's resources (each with an id) and what its `urn:` full URLs stand for, without copying entries.
fn split(v: Value, path: &Path) -> Result<(Vec<Value>, HashMap<String, String>), LoadError> {
    let shape = |message: &str| LoadError::Shape {
        path: path.to_owned(),
        message: message.to_owned(),
    };
    let Value::Object(mut doc) = v else {
        return Err(shape("expected a FHIR resource or Bundle (a JSON object)"));
    };
    if doc.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return if doc.get("resourceType").is_some_and(Value::is_string)
            && doc.get("id").is_some_and(Value::is_string)
        {
            Ok((vec![Value::Object(doc)], HashMap::new()))
        } else {
            Err(shape("a resource needs resourceType and id"))
        };
    }
    let entries = match doc.remove("entry") {
        Some(Value::Array(entries)) => entries,
        _ => Vec::new(),
    };
    drop(doc);
    let mut uuids: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, mut entry) in entries.into_iter().enumerate() {
        let Some(mut resource) = entry.get_mut("resource").map(Value::take) else {
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
        resource["id"] = Value::String(id);
        out.push(resource);
    }
    Ok((out, uuids))
}

/// Replaces every `reference` that `resolve` knows (`urn:uuid:…`, `Type?identifier=…`) with `Type/id`.
fn rewrite_references(v: &mut Value, resolve: &mut impl FnMut(&str) -> Option<String>) {
    match v {
        Value::Object(o) => {
            for (k, child) in o.iter_mut() {
                if k == "reference" {
                    if let Some(s) = child.as_str()
                        && (s.starts_with("urn:") || s.contains('?'))
                        && let Some(target) = resolve(s)
                    {
                        *child = Value::String(target);
                    }
                } else {
                    rewrite_references(child, resolve);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| rewrite_references(i, resolve)),
        _ => {}
    }
}

/// The logins in use; new ones are made from the patient's first given name.
#[derive(Debug, Default)]
struct Logins {
    used: HashSet<String>,
}

impl Logins {
    /// A person and login for a Patient: the username is the first given name folded to lower-case ASCII
    /// ("Adán" is "adan", "Łukasz" "lukasz"), made unique with a number.
    fn person(&mut self, p: &Value) -> Option<PersonRow> {
        let id = p["id"].as_str()?;
        let name = &p["name"][0];
        let given = name["given"][0].as_str().unwrap_or("patient");
        let family = name["family"].as_str().unwrap_or("");
        let display: String = format!("{given} {family}")
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect();
        let mut base: String = fold_to_ascii(given)
            .chars()
            .filter(char::is_ascii_alphabetic)
            .collect::<String>()
            .to_ascii_lowercase();
        if base.is_empty() {
            base = "patient".to_owned();
        }
        let mut username = base.clone();
        let mut n = 2;
        while self.used.contains(&username) {
            username = format!("{base}{n}");
            n += 1;
        }
        self.used.insert(username.clone());
        Some(PersonRow {
            patient_id: id.to_owned(),
            display_name: display.trim().to_owned(),
            birth_date: p["birthDate"].as_str().unwrap_or("1970-01-01").to_owned(),
            username: Some(username),
        })
    }
}

/// Latin letters without their accents (NFD, combining marks dropped), and the common letters that do not
/// decompose spelled in ASCII. Other characters are kept as they are.
pub fn fold_to_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.nfd().filter(|c| !is_combining_mark(*c)) {
        match c {
            'ß' | 'ẞ' => out.push_str("ss"),
            'ø' | 'Ø' => out.push('o'),
            'æ' | 'Æ' => out.push_str("ae"),
            'œ' | 'Œ' => out.push_str("oe"),
            'ł' | 'Ł' => out.push('l'),
            'đ' | 'Đ' | 'ð' | 'Ð' => out.push('d'),
            'þ' | 'Þ' => out.push_str("th"),
            'ı' => out.push('i'),
            c => out.push(c),
        }
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
        let mut logins = Logins {
            used: HashSet::from(["ana".to_owned()]),
        };
        let person = logins.person(&out[0]).expect("a person");
        assert_eq!(person.username.as_deref(), Some("ana2"));
        assert_eq!(person.display_name, "Ána Ruiz");
    }

    #[test]
    fn usernames_fold_accents_and_letters_that_do_not_decompose() {
        for (given, user) in [
            ("Adán", "adan"),
            ("Núñez", "nunez"),
            ("Łukasz", "lukasz"),
            ("Søren", "soren"),
            ("Æsa", "aesa"),
            ("Đorđe", "dorde"),
            ("Þóra", "thora"),
            ("Jöße", "josse"),
            ("李", "patient"),
        ] {
            let mut logins = Logins::default();
            let p = json!({"resourceType": "Patient", "id": "x", "name": [{"given": [given]}]});
            assert_eq!(
                logins.person(&p).and_then(|p| p.username).as_deref(),
                Some(user),
                "{given}"
            );
        }
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
