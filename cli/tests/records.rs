//! `chartlink export` and `chartlink record` through the real binary (issue 21), and a help text for every command.
#![allow(clippy::unwrap_used)]

mod common;

use chartlink_sandbox::{Config, PortalRobot, Sandbox};
use common::{chartlink, link, temp_dir};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_record_print_fhir() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let dir = temp_dir("export");
    let (out, _) = link(
        &sandbox.fhir_base(),
        &dir,
        PortalRobot::allowing("daniel", "daniel-demo", Some("daniel-chen")),
    )
    .await;
    assert!(
        out.status.success(),
        "link: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A kind added as one line of core's lists table gets its command and its line.
    sandbox
        .admin()
        .put_resource(serde_json::json!({"resourceType": "FamilyMemberHistory", "id": "cli-fmh",
            "status": "completed", "patient": {"reference": "Patient/daniel-chen"},
            "relationship": {"text": "Father"}, "deceasedAge": {"value": 70, "unit": "a"},
            "condition": [{"code": {"text": "Type 2 diabetes"}, "onsetAge": {"value": 50, "unit": "a"}},
                          {"code": {"text": "Stroke"}, "contributedToDeath": true}]}))
        .unwrap();
    assert!(chartlink(&dir).arg("sync").status().unwrap().success());
    let family = chartlink(&dir).arg("family-history").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&family.stdout),
        "Father [deceased at 70 years]: Type 2 diabetes (at 50 years); Stroke, cause of death\n"
    );
    let family = chartlink(&dir)
        .args(["--json", "family-history"])
        .output()
        .unwrap();
    let family: Value = serde_json::from_slice(&family.stdout).unwrap();
    assert_eq!(family[0]["id"], "cli-fmh");

    let bundle = chartlink(&dir)
        .args(["export", "--format", "bundle"])
        .output()
        .unwrap();
    assert!(
        bundle.status.success(),
        "{}",
        String::from_utf8_lossy(&bundle.stderr)
    );
    let bundle: Value = serde_json::from_slice(&bundle.stdout).unwrap();
    assert_eq!(bundle["type"], "collection");
    let entries = bundle["entry"].as_array().unwrap();
    assert!(entries.len() > 50, "{}", entries.len());

    let ndjson = chartlink(&dir)
        .args(["export", "--format", "ndjson"])
        .output()
        .unwrap();
    assert!(ndjson.status.success());
    let lines: Vec<Value> = String::from_utf8(ndjson.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), entries.len());

    // To a file: created new, private; an existing file is not overwritten.
    let file = dir.join("record.ndjson");
    let written = chartlink(&dir)
        .args(["export", "--format", "ndjson", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(written.status.success());
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().lines().count(),
        lines.len()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let again = chartlink(&dir)
        .args(["export", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(7),
        "an existing file is not overwritten"
    );

    let obs = lines
        .iter()
        .find(|r| r["resourceType"] == "Observation")
        .unwrap();
    let id = obs["id"].as_str().unwrap();
    let one = chartlink(&dir)
        .args(["record", "Observation", id])
        .output()
        .unwrap();
    assert!(one.status.success());
    let one: Value = serde_json::from_slice(&one.stdout).unwrap();
    assert_eq!(&one, obs);
    let missing = chartlink(&dir)
        .args(["record", "Observation", "nope"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));

    // Lists in pages and date ranges: the pages, each after the last record of the one before, are the list.
    let json = |args: &[&str]| -> (Option<i32>, Value) {
        let out = chartlink(&dir).arg("--json").args(args).output().unwrap();
        let value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code(), value)
    };
    let (code, all) = json(&["labs"]);
    assert_eq!(code, Some(0));
    let all = all.as_array().unwrap().clone();
    assert!(all.len() > 10, "{}", all.len());
    assert!(all.iter().all(|l| l["kind"] == "Lab"));
    let mut paged: Vec<Value> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut args = vec!["labs", "--limit", "7"];
        if let Some(a) = &after {
            args.extend(["--after", a.as_str()]);
        }
        let (code, page) = json(&args);
        assert_eq!(code, Some(0), "{page}");
        assert_eq!(page["total"], all.len());
        paged.extend(page["records"].as_array().unwrap().iter().cloned());
        match page["next_after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, all, "the pages are the list");
    let year = all[all.len() / 2]["date"]["year"]
        .as_i64()
        .unwrap()
        .to_string();
    let (code, ranged) = json(&["labs", "--from", &year, "--to", &year]);
    assert_eq!(code, Some(0));
    assert!(!ranged["records"].as_array().unwrap().is_empty());
    let text = chartlink(&dir)
        .args(["labs", "--limit", "3"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("next page: --after "));
    let (code, _) = json(&["labs", "--from", "last week"]);
    assert_eq!(code, Some(2), "a bad date is invalid input");
    let (code, _) = json(&["vitals", "--after", all[0]["id"].as_str().unwrap()]);
    assert_eq!(code, Some(2), "after a record of another list");
    let _ = std::fs::remove_dir_all(&dir);
    sandbox.shutdown().await;
}

/// Every command says what it does in `chartlink --help`.
#[test]
fn every_command_has_help_text() {
    let dir = temp_dir("help");
    let out = chartlink(&dir).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert!(commands.len() > 30, "{help}");
    let bare: Vec<&&str> = commands
        .iter()
        .filter(|l| l.split_whitespace().count() < 2)
        .collect();
    assert!(bare.is_empty(), "commands without help text: {bare:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `chartlink sync` on a locked store runs the SDK's background sync (issue 21): counts only, nothing readable until
/// `chartlink unlock`, and then the new result is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_while_locked_runs_the_background_sync() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let dir = temp_dir("locked-sync");
    let (out, _) = link(
        &sandbox.fhir_base(),
        &dir,
        PortalRobot::allowing("daniel", "daniel-demo", Some("daniel-chen")),
    )
    .await;
    assert!(out.status.success());
    assert!(chartlink(&dir).arg("sync").status().unwrap().success());
    sandbox.admin().advance_clock(3600);
    sandbox
        .admin()
        .put_resource(serde_json::json!({
            "resourceType": "Observation", "id": "cli-locked-lab", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "99321-0", "display": "Zebra antibody"}], "text": "Zebra antibody"},
            "subject": {"reference": "Patient/daniel-chen"}, "effectiveDateTime": "2026-11-30",
            "valueQuantity": {"value": 31.4159, "unit": "mg/dL"}}))
        .unwrap();

    assert!(chartlink(&dir).arg("lock").status().unwrap().success());
    let locked = chartlink(&dir).arg("sync").output().unwrap();
    let text = String::from_utf8_lossy(&locked.stdout);
    assert!(
        locked.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&locked.stderr)
    );
    assert!(text.contains("1 LabResult"), "{text}");
    for secret in ["Zebra", "31.4159", "cli-locked-lab", "99321-0"] {
        assert!(!text.contains(secret), "the locked sync printed {secret}");
    }
    assert_eq!(
        chartlink(&dir).arg("labs").status().unwrap().code(),
        Some(4),
        "still locked"
    );

    assert!(chartlink(&dir).arg("unlock").status().unwrap().success());
    let labs = chartlink(&dir).arg("labs").output().unwrap();
    assert!(String::from_utf8_lossy(&labs.stdout).contains("Zebra antibody"));
    let _ = std::fs::remove_dir_all(&dir);
    sandbox.shutdown().await;
}

/// "The patient pressed Deny" is not "the server refused" (issue 21): its own exit code and words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pressing_deny_has_its_own_exit_code() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let dir = temp_dir("deny");
    let mut robot = PortalRobot::allowing("daniel", "daniel-demo", Some("daniel-chen"));
    robot.allow = false;
    let (out, _) = link(&sandbox.fhir_base(), &dir, robot).await;
    assert_eq!(
        out.status.code(),
        Some(12),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    sandbox.shutdown().await;
}

/// `patients` says which record must be linked again (issue 20), and keeps showing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patients_marks_a_record_that_must_be_linked_again() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    sandbox.admin().set_refresh_tokens(false);
    let dir = temp_dir("relink");
    let (out, _) = link(
        &sandbox.fhir_base(),
        &dir,
        PortalRobot::allowing("daniel", "daniel-demo", Some("daniel-chen")),
    )
    .await;
    assert!(out.status.success());
    assert!(chartlink(&dir).arg("sync").status().unwrap().success());
    sandbox.admin().expire_access_tokens(None).unwrap();
    assert_eq!(
        chartlink(&dir).arg("sync").status().unwrap().code(),
        Some(9)
    );
    let patients = chartlink(&dir).arg("patients").output().unwrap();
    let text = String::from_utf8_lossy(&patients.stdout);
    assert!(
        text.contains("access must be renewed: link again"),
        "{text}"
    );
    let json = chartlink(&dir)
        .args(["--json", "patients"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[0]["relink_needed"], true);
    assert!(
        chartlink(&dir)
            .arg("labs")
            .output()
            .unwrap()
            .status
            .success(),
        "the record stays readable"
    );
    let _ = std::fs::remove_dir_all(&dir);
    sandbox.shutdown().await;
}

/// An empty list says why (issue 20): a kind the patient did not share at the portal is named as not shared, not
/// printed as nothing with exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_list_says_the_provider_did_not_share_it() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let dir = temp_dir("not-shared");
    let mut robot = PortalRobot::allowing("daniel", "daniel-demo", Some("daniel-chen"));
    robot.untick = vec!["Immunizations".into()];
    let (out, _) = link(&sandbox.fhir_base(), &dir, robot).await;
    assert!(out.status.success());
    assert!(chartlink(&dir).arg("sync").status().unwrap().success());
    let shots = chartlink(&dir).arg("immunizations").output().unwrap();
    assert!(shots.status.success());
    let text = String::from_utf8_lossy(&shots.stdout);
    assert!(text.contains("did not share"), "{text}");
    let labs = chartlink(&dir).arg("labs").output().unwrap();
    assert!(!String::from_utf8_lossy(&labs.stdout).contains("(none"));
    let _ = std::fs::remove_dir_all(&dir);
    sandbox.shutdown().await;
}
