//! A SMART client nobody here wrote — SMART's client-py (PyPI `fhirclient` 4.3.2) — completes a standalone launch
//! against the sandbox: discovery through the CapabilityStatement, the portal's login and account picker, the
//! code exchange with a client secret, and typed reads and searches with client-py's strict FHIR models.
#![allow(clippy::unwrap_used)]

use chartlink_sandbox::{Config, Sandbox};
use chartlink_tests::{tool, workspace_root};
use serde_json::Value;

#[tokio::test]
async fn client_py_completes_a_standalone_launch() {
    let python = tool(
        "CHARTLINK_PYTHON",
        &workspace_root()
            .join("target/tools/venv/bin/python")
            .to_string_lossy(),
    );
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let script = workspace_root().join("tests/py/client_py_launch.py");
    let fhir = sb.fhir_base();
    let out = tokio::process::Command::new(python)
        .arg(&script)
        .args([fhir.as_str(), "daniel", "daniel-demo", "wei-chen"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client-py failed:\n{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["patient_id"], "wei-chen");
    assert_eq!(summary["name"], "Wei Chen");
    assert_eq!(summary["ready"], true);
    assert!(summary["conditions"].as_u64().unwrap() > 0);
    assert!(!summary["first_lab_units"].as_array().unwrap().is_empty());
    let grants = sb.admin().grants().unwrap();
    assert_eq!(grants[0].client_id, "client-py");
    assert_eq!(grants[0].patient_id, "wei-chen");
    sb.shutdown().await;
}
