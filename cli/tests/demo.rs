//! The README's first command, `chartlink demo`, runs to the end as a real process: no terminal, no browser.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn the_demo_runs_to_the_end() {
    let out_dir = std::env::temp_dir().join(format!("cl-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let out = Command::new(env!("CARGO_BIN_EXE_chartlink"))
        .args(["demo", "--lock-seconds", "2", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "linked: patient maria-garcia",
        "linked: patient leo-garcia",
        "switched to Maria Garcia (Myself)",
        "switched to Leo Garcia (Child)",
        "Allergy to peanut",
        "Thyrotropin",
        "reading lab results now answers: Locked",
        "event: unlocked",
        "Done.",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    let svg = std::fs::read_to_string(out_dir.join("trend-3016-3.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
    // The demo's database holds no plaintext of what it printed.
    let db = std::fs::read(out_dir.join("chartlink.db")).unwrap();
    assert!(!db.windows(7).any(|w| w == b"Garcia " || w == b"peanut "));
    let _ = std::fs::remove_dir_all(&out_dir);
}
