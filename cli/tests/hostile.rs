//! The real `chartlink` binary against the sandbox EHR: a record whose texts hold terminal escape sequences, C1
//! controls and bidi overrides prints none of them, and `chartlink sync` says (with its exit code) when nothing
//! or only a part of the record could be synced.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chartlink_sandbox::{Config, FaultKind, PortalRobot, Sandbox, ScriptedFault};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Texts a hostile (or broken) server could send.
const HOSTILE: &str = "\u{1B}]8;;http://evil.example/\u{07}Planted-text\u{1B}]8;;\u{07} \u{1B}[31;1mRED\u{1B}[0m\u{1B}[2J\u{1B}[H \u{9B}32mC1\u{9B}0m \u{9D}0;title\u{9C} abc\u{202E}fdp.exe\u{2066}x\u{2069}\u{200F} NUL\u{0}here Normal\rCRITICAL line\nforged";

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cl-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn chartlink(data_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chartlink"));
    c.arg("--data-dir").arg(data_dir);
    // No xdg-open/open on the PATH: `chartlink link` cannot launch a browser, the test plays the browser.
    c.env("PATH", data_dir.join("no-bin"));
    c
}

fn run(data_dir: &Path, args: &[&str]) -> Output {
    chartlink(data_dir).args(args).output().unwrap()
}

/// `chartlink link FHIR-BASE` as a process: reads the authorization URL it prints, logs in on the portal as
/// Maria with the sandbox's robot, and brings the redirect to the CLI's loopback listener.
async fn link(sandbox: &Sandbox, data_dir: &Path) {
    let mut child = chartlink(data_dir)
        .args(["link", &sandbox.fhir_base()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let url = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stderr).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.starts_with("http"))
            .expect("the CLI prints the authorization URL");
        // Keep draining stderr so the child never blocks on it.
        std::thread::spawn(move || lines.for_each(drop));
        url
    })
    .await
    .unwrap();
    let redirect = PortalRobot::allowing("maria", "maria-demo", Some("maria-garcia"))
        .authorize(&url)
        .await
        .unwrap();
    let u = url::Url::parse(&redirect).unwrap();
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", u.port().unwrap()))
        .await
        .unwrap();
    let target = format!("{}?{}", u.path(), u.query().unwrap_or_default());
    sock.write_all(format!("GET {target} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = sock.read_to_end(&mut answer).await;
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "link failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Rewrites the first live resource of `ty` in Maria's record that `pick` accepts with `edit`.
fn plant(sandbox: &Sandbox, ty: &str, pick: impl Fn(&Value) -> bool, edit: impl Fn(&mut Value)) {
    let admin = sandbox.admin();
    let mut r = admin
        .truth("maria-garcia", true)
        .unwrap()
        .into_iter()
        .filter(|(t, _, _)| t == ty)
        .filter_map(|(_, id, _)| admin.resource(ty, &id).unwrap())
        .find(|r| pick(r))
        .unwrap_or_else(|| panic!("Maria has no {ty}"));
    edit(&mut r);
    admin.put_resource(r).unwrap();
}

/// Sets `text` and every coding's `display` of a CodeableConcept.
fn hostile_concept(c: &mut Value) {
    c["text"] = json!(HOSTILE);
    if let Some(codings) = c["coding"].as_array_mut() {
        for coding in codings {
            coding["display"] = json!(HOSTILE);
        }
    }
}

/// The first byte sequence of `out` that a terminal acts on, or that reorders or hides text.
fn unsafe_bytes(out: &[u8]) -> Option<String> {
    if let Some(i) = out
        .iter()
        .position(|&b| (b < 0x20 && b != b'\n') || b == 0x7F)
    {
        return Some(format!("control byte {:#04x} at {i}", out[i]));
    }
    let text = String::from_utf8_lossy(out);
    text.chars()
        .find(|&c| {
            ('\u{80}'..='\u{9F}').contains(&c)
                || matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        })
        .map(|c| format!("U+{:04X}", c as u32))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_record_prints_no_escape_sequences_controls_or_bidi_overrides() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let is_lab = |r: &Value| {
        r["category"].to_string().contains("laboratory") && r["valueQuantity"].is_object()
    };
    plant(
        &sandbox,
        "Patient",
        |_| true,
        |p| {
            p["name"] = json!([{"use": "official", "text": HOSTILE, "given": [HOSTILE], "family": HOSTILE}]);
        },
    );
    plant(
        &sandbox,
        "AllergyIntolerance",
        |_| true,
        |a| {
            hostile_concept(&mut a["code"]);
        },
    );
    plant(&sandbox, "Observation", is_lab, |o| {
        hostile_concept(&mut o["code"]);
        o["valueQuantity"]["unit"] = json!(HOSTILE);
    });
    plant(
        &sandbox,
        "Condition",
        |_| true,
        |c| {
            hostile_concept(&mut c["code"]);
        },
    );
    let dir = temp_dir("hostile");
    link(&sandbox, &dir).await;
    let sync = run(&dir, &["sync"]);
    assert!(
        sync.status.success(),
        "sync: {}",
        String::from_utf8_lossy(&sync.stderr)
    );

    let mut seen_hostile = 0;
    for args in [
        &["patients"][..],
        &["labs"],
        &["allergies"],
        &["problems"],
        &["meds"],
        &["sync"],
        &["--json", "patients"],
        &["--json", "labs"],
        &["--json", "allergies"],
        &["--json", "problems"],
    ] {
        let out = run(&dir, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            if let Some(bad) = unsafe_bytes(bytes) {
                panic!(
                    "{args:?} {stream}: {bad} in\n{}",
                    String::from_utf8_lossy(bytes)
                );
            }
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !args.contains(&"--json") {
            // JSON keeps the text as data (escaped); on the terminal, the hyperlink's target is gone.
            assert!(!stdout.contains("http://evil"), "{args:?}: {stdout}");
        }
        if stdout.contains("Planted-text") {
            seen_hostile += 1;
            if !args.contains(&"--json") {
                assert!(
                    !stdout.lines().any(|l| l.starts_with("forged")),
                    "a newline in a field forged a line: {stdout}"
                );
            }
        }
        if args.contains(&"--json") {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(
                v.to_string().contains("\u{202E}") == stdout.contains("\\u202e"),
                "JSON keeps the data, escaped: {stdout}"
            );
        }
    }
    assert!(
        seen_hostile >= 6,
        "the planted texts were shown ({seen_hostile} outputs)"
    );
    let _ = std::fs::remove_dir_all(&dir);
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_exits_non_zero_when_the_server_fails_every_request_and_8_when_only_a_part_synced() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let dir = temp_dir("sync-fail");
    link(&sandbox, &dir).await;

    sandbox.admin().script_fault(ScriptedFault {
        path_prefix: "/fhir/Condition".into(),
        kind: FaultKind::Status { status: 400 },
        count: 1000,
    });
    let out = run(&dir, &["sync"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "a partial sync: {stderr}");
    assert!(
        stderr.contains("synced in part") && stderr.contains("Condition"),
        "{stderr}"
    );

    sandbox.admin().clear_faults();
    sandbox.admin().script_fault(ScriptedFault {
        path_prefix: "/fhir/".into(),
        kind: FaultKind::Status { status: 400 },
        count: 100_000,
    });
    let out = run(&dir, &["--json", "sync"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "every request failed: {stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("nothing could be synced"), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report[0]["synced"], json!(false), "{report}");

    let _ = std::fs::remove_dir_all(&dir);
    sandbox.shutdown().await;
}
