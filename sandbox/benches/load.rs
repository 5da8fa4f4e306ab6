//! Loading a whole Synthea population: `cargo bench -p chartlink-sandbox --bench load`.
//!
//! Takes the Synthea sample bundles (`CHARTLINK_SYNTHEA`, else the repository's `tests/data/synthea-r4`), turns them into today's Synthea layout (the patient files name their practitioners by
//! `Practitioner?identifier=…` and the practitioners live only in `practitionerInformation*.json`), replicates
//! them with fresh ids into a temporary directory (`BENCH_COPIES` copies, 27 by default: 297 patients), then runs
//! the real binary `chartlink-sandbox --data DIR --db FILE` as a child process and measures the time until it
//! serves, its peak RSS (VmHWM, read from /proc before it exits), and the latency of `GET /fhir/metadata`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const NPI: &str = "http://hl7.org/fhir/sid/us-npi";

fn source_dir() -> PathBuf {
    if let Ok(d) = std::env::var("CHARTLINK_SYNTHEA") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/synthea-r4")
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Every UUID of the text with its first group moved by the copy number: the same UUID gives the same new one
/// within a copy (ids and `urn:uuid:` references stay consistent), different copies never share one.
fn recopy(text: &str, copy: u32) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut i = 0;
    while i + 36 <= b.len() {
        if b[i].is_ascii_hexdigit() && is_uuid(&b[i..i + 36]) {
            let first = u32::from_str_radix(&text[i..i + 8], 16).unwrap();
            out.push_str(&text[last..i]);
            out.push_str(&format!(
                "{:08x}",
                first.wrapping_add(copy.wrapping_mul(0x9E37_79B9))
            ));
            last = i + 8;
            i += 36;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// A patient bundle in today's Synthea layout: its Practitioner entries dropped, references to them conditional.
fn modernise(bundle: &mut Value, npi_of: &HashMap<String, String>) {
    let entries = bundle["entry"].as_array_mut().unwrap();
    entries.retain(|e| {
        !(e["resource"]["resourceType"] == "Practitioner"
            && npi_of.contains_key(e["resource"]["id"].as_str().unwrap_or("")))
    });
    fn walk(v: &mut Value, npi_of: &HashMap<String, String>) {
        match v {
            Value::Object(o) => {
                for (k, c) in o.iter_mut() {
                    if k == "reference"
                        && let Some(npi) = c
                            .as_str()
                            .and_then(|s| s.strip_prefix("urn:uuid:"))
                            .and_then(|u| npi_of.get(u))
                    {
                        *c = Value::String(format!("Practitioner?identifier={NPI}|{npi}"));
                    } else {
                        walk(c, npi_of);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|c| walk(c, npi_of)),
            _ => {}
        }
    }
    walk(bundle, npi_of);
}

fn population(copies: u32) -> (PathBuf, usize) {
    let src = source_dir();
    let dir = std::env::temp_dir().join(format!("chartlink-bench-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("Synthea sample data at {}: {e}", src.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut npi_of = HashMap::new();
    for f in files.iter().filter(|f| is_shared(f)) {
        let b: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        for e in b["entry"].as_array().unwrap() {
            let r = &e["resource"];
            if let Some(npi) = r["identifier"][0]["value"].as_str() {
                npi_of.insert(r["id"].as_str().unwrap().to_owned(), npi.to_owned());
            }
        }
        std::fs::copy(f, dir.join(f.file_name().unwrap())).unwrap();
    }
    let mut patients = 0;
    for f in files.iter().filter(|f| !is_shared(f)) {
        let mut b: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        modernise(&mut b, &npi_of);
        let text = serde_json::to_string_pretty(&b).unwrap();
        let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
        for copy in 0..copies {
            std::fs::write(
                dir.join(format!("{stem}_{copy:03}.json")),
                recopy(&text, copy),
            )
            .unwrap();
            patients += 1;
        }
    }
    (dir, patients)
}

fn is_shared(f: &Path) -> bool {
    let name = f.file_name().unwrap().to_string_lossy();
    name.starts_with("practitionerInformation") || name.starts_with("hospitalInformation")
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn get(addr: &str, path: &str) -> (Duration, usize) {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = Vec::new();
    s.read_to_end(&mut body).unwrap();
    assert!(body.starts_with(b"HTTP/1.1 200"), "{path} answers 200");
    (t.elapsed(), body.len())
}

fn run(data: &Path, db: Option<&Path>, label: &str) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chartlink-sandbox"));
    cmd.arg("--addr")
        .arg("127.0.0.1:0")
        .arg("--no-demo-data")
        .arg("--data")
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(db) = db {
        cmd.arg("--db").arg(db);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the sandbox starts")
            .expect("stdout is readable");
        if let Some(url) = line.strip_prefix("ChartLink sandbox EHR listening on http://") {
            break url.trim().to_owned();
        }
    };
    let load = started.elapsed();
    let hwm = vm_hwm_kib(pid);
    let counted = loop {
        let line = lines.next().expect("the banner").expect("stdout");
        if line.contains(" resources across ") {
            break line;
        }
    };
    let (first, size) = get(&addr, "/fhir/metadata");
    let mut times: Vec<Duration> = (0..50).map(|_| get(&addr, "/fhir/metadata").0).collect();
    times.sort();
    let hwm_after = vm_hwm_kib(pid);
    child.kill().unwrap();
    let _ = child.wait();
    println!(
        "{label}: {counted} Ready in {:.2} s, peak RSS {:.0} MiB ({:.0} MiB after 51 metadata GETs); \
         GET /fhir/metadata first {:.2} ms, median of 50 {:.2} ms, p90 {:.2} ms ({size} bytes)",
        load.as_secs_f64(),
        hwm as f64 / 1024.0,
        hwm_after as f64 / 1024.0,
        first.as_secs_f64() * 1e3,
        times[25].as_secs_f64() * 1e3,
        times[45].as_secs_f64() * 1e3,
    );
    // Keep draining stdout so the child never blocks on a full pipe before it is killed.
    for _ in lines {}
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not used.
    let copies: u32 = std::env::var("BENCH_COPIES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(27);
    let t = Instant::now();
    let (dir, patients) = population(copies);
    println!(
        "population: {patients} patients in {} files, {:.0} MiB of JSON, made in {:.1} s ({})",
        std::fs::read_dir(&dir).unwrap().count(),
        dir_bytes(&dir) as f64 / (1024.0 * 1024.0),
        t.elapsed().as_secs_f64(),
        dir.display()
    );
    let db = dir.with_extension("sqlite");
    run(&dir, Some(&db), "--data DIR --db FILE");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
    }
    if std::env::var_os("BENCH_IN_MEMORY").is_some() {
        run(&dir, None, "--data DIR (in memory)");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
