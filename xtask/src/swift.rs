//! `cargo xtask swift`: builds the Swift package (ios/) and runs its tests against the real library and the sandbox,
//! where a Swift toolchain is on `PATH` (Swift for Linux: swiftc, SwiftPM, XCTest, Foundation). No Python, kotlinc
//! or other tool of `cargo xtask tools` is needed.
//!
//! 1. Checks that the README's Swift quickstart is the sample file the package compiles (ios/Sources/ChartLinkSample).
//! 2. Builds `chartlink-ffi` (debug, with `uniffi-bindgen` and the test-support hooks) and the sandbox, as the
//!    bindings step does, and generates the Swift bindings into `<target>/bindings/swift`.
//! 3. Copies the generated `ChartLinkKit.swift` into ios/Sources/ChartLinkKit/Generated/ and `ChartLinkFFI.h` beside
//!    the committed module map in ios/Sources/ChartLinkFFI/ (both gitignored; rewritten only when they changed, so
//!    SwiftPM's incremental build holds).
//! 4. `swift build` of every target (the shell, the sample, the tests) with `--scratch-path <target>/swift-build`,
//!    linking `libchartlink_ffi` from `<target>/debug` (`-Xlinker -L`).
//! 5. Starts two sandboxes (the same seed: one family at two providers, for the merge test) and runs `swift test`
//!    with `CHARTLINK_SANDBOX`, `CHARTLINK_SANDBOX_2` and `LD_LIBRARY_PATH`; a run longer than [`SWIFT_TEST_TIMEOUT`]
//!    is stopped and fails.
//!
//! On Linux the Apple-only files of ios/ (Keychain, ASWebAuthenticationSession, BGTaskScheduler, SwiftUI/UIKit)
//! compile to nothing (`#if canImport(...)`); the step lists which files those are.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::bindings::{self, Paths, Sandbox};
use crate::{Workspace, cmd, human};

/// The README's Swift quickstart: this file, verbatim, in a ```swift block.
pub(crate) const SWIFT_SAMPLE: &str = "ios/Sources/ChartLinkSample/Quickstart.swift";
/// A hung test (a native deadlock, a call that never returns) fails the step instead of hanging CI.
const SWIFT_TEST_TIMEOUT: Duration = Duration::from_secs(600);
/// What a file compiled only on Apple platforms starts with (after its comments).
const APPLE_ONLY: &str = "#if canImport(";

/// Whether a Swift toolchain can be run here.
pub(crate) fn available() -> bool {
    cmd::find_on_path("swift").is_some() && cmd::succeeds(Command::new("swift").arg("--version"))
}

pub(crate) fn check_readme_quickstart(ws: &Workspace) -> Result<(), String> {
    bindings::check_readme_block(ws, "swift", SWIFT_SAMPLE, "Swift")
}

/// `cargo xtask swift`.
pub fn run(ws: &Workspace) -> Result<(), String> {
    if !available() {
        return Err(
            "no Swift toolchain: `swift` is not on PATH (https://www.swift.org/install/)".into(),
        );
    }
    check_readme_quickstart(ws)?;
    let paths = Paths::new(ws);
    bindings::build_library(ws)?;
    bindings::generate_language(&paths, "swift", &paths.swift)?;
    let ios = ws.root.join("ios");
    install_generated(&paths.swift, &ios)?;
    report_platform_files(&ios)?;

    let scratch = ws.target.join("swift-build");
    let swift = |subcommand: &str| {
        let mut command = Command::new("swift");
        command
            .arg(subcommand)
            .arg("--package-path")
            .arg(&ios)
            .arg("--scratch-path")
            .arg(&scratch)
            .arg("-Xlinker")
            .arg(format!("-L{}", paths.debug.display()))
            .env("LD_LIBRARY_PATH", library_path(&paths.debug))
            .stdin(Stdio::null());
        command
    };

    let started = Instant::now();
    cmd::run(swift("build").arg("--build-tests"))
        .map_err(|e| format!("{e}\n    the Swift package (ios/) does not build"))?;
    let build_time = started.elapsed();
    println!(
        "swift: built ios/ (ChartLinkKit, ChartLinkSample, ChartLinkKitTests) in {}",
        human(build_time)
    );

    let first = Sandbox::start(&paths.sandbox)?;
    let second = Sandbox::start(&paths.sandbox)?;
    println!(
        "swift: sandboxes at {} and {}",
        first.base_url, second.base_url
    );
    let mut test = swift("test");
    test.arg("--skip-build")
        .env("CHARTLINK_SANDBOX", &first.base_url)
        .env("CHARTLINK_SANDBOX_2", &second.base_url)
        // The tests provoke panics on purpose; their backtraces would bury the report.
        .env("RUST_BACKTRACE", "0");
    let started = Instant::now();
    let executed = run_with_timeout(&mut test, SWIFT_TEST_TIMEOUT)?;
    let test_time = started.elapsed();
    drop((first, second));
    let count = executed
        .ok_or("swift test printed no \"Executed N tests\" line: were the XCTest tests found?")?;
    if count == 0 {
        return Err("swift test ran no tests".into());
    }
    println!(
        "swift: build {}, {count} XCTest tests passed against the sandbox in {}",
        human(build_time),
        human(test_time)
    );
    Ok(())
}

/// `dir` first, then whatever `LD_LIBRARY_PATH` held.
fn library_path(dir: &Path) -> std::ffi::OsString {
    let mut parts = vec![dir.to_path_buf()];
    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
        parts.extend(std::env::split_paths(&old));
    }
    std::env::join_paths(parts).unwrap_or_else(|_| dir.as_os_str().to_owned())
}

/// Copies the generated Swift and C header where the package expects them.
fn install_generated(generated: &Path, ios: &Path) -> Result<(), String> {
    for (from, to) in [
        (
            "ChartLinkKit.swift",
            "Sources/ChartLinkKit/Generated/ChartLinkKit.swift",
        ),
        (
            bindings::SWIFT_LIST_READS,
            "Sources/ChartLinkKit/Generated/ChartLinkKit+Extensions.swift",
        ),
        ("ChartLinkFFI.h", "Sources/ChartLinkFFI/ChartLinkFFI.h"),
    ] {
        let from = generated.join(from);
        let to = ios.join(to);
        let text = fs::read(&from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        if fs::read(&to).is_ok_and(|old| old == text) {
            continue;
        }
        if let Some(dir) = to.parent() {
            fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        fs::write(&to, text).map_err(|e| format!("cannot write {}: {e}", to.display()))?;
    }
    // A file an older xtask generated there (Generated/ is never committed) would be compiled too: it goes.
    let generated_dir = ios.join("Sources/ChartLinkKit/Generated");
    let keep = ["ChartLinkKit.swift", bindings::SWIFT_LIST_READS];
    for entry in fs::read_dir(&generated_dir)
        .map_err(|e| format!("cannot list {}: {e}", generated_dir.display()))?
        .flatten()
    {
        if !keep.iter().any(|k| entry.file_name() == *k) {
            fs::remove_file(entry.path())
                .map_err(|e| format!("cannot remove {}: {e}", entry.path().display()))?;
        }
    }
    // The package's module map is the committed one (no `use "Darwin"`); the generated one is for the XCFramework.
    let modulemap = ios.join("Sources/ChartLinkFFI/module.modulemap");
    let text = fs::read_to_string(&modulemap)
        .map_err(|e| format!("cannot read {}: {e}", modulemap.display()))?;
    if text.lines().any(|l| l.trim_start().starts_with("use ")) {
        return Err(format!(
            "{} has `use` lines: on Linux there is no Darwin module",
            modulemap.display()
        ));
    }
    Ok(())
}

/// Prints which hand-written Swift files of ios/Sources are compiled here and which only on Apple platforms (those
/// whose code is all inside `#if canImport(...)`).
fn report_platform_files(ios: &Path) -> Result<(), String> {
    let mut files = Vec::new();
    swift_files(&ios.join("Sources"), &mut files)?;
    let (mut here, mut apple) = (Vec::new(), Vec::new());
    for file in files {
        if file.components().any(|c| c.as_os_str() == "Generated") {
            continue;
        }
        let text = fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let name = file
            .strip_prefix(ios)
            .unwrap_or(&file)
            .display()
            .to_string();
        if apple_only(&text) {
            apple.push(name);
        } else {
            here.push(name);
        }
    }
    println!(
        "swift: compiled here: {}\nswift: Apple platforms only (#if canImport): {}",
        here.join(", "),
        apple.join(", ")
    );
    Ok(())
}

/// Whether all of a file's code sits in one `#if canImport(...)` block: its first line that is not a comment or
/// blank opens it, and its last such line closes it.
fn apple_only(text: &str) -> bool {
    let mut code = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"));
    let first = code.next().unwrap_or("");
    let last = code.next_back().unwrap_or("");
    first.starts_with(APPLE_ONLY) && last == "#endif"
}

fn swift_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            swift_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "swift") {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

/// Runs `command` in its own process group with stdout echoed line by line; returns the test count of XCTest's
/// last "Executed N tests" line. Past `timeout` the whole group (swift test and the xctest runner it started) is
/// killed and the step fails.
fn run_with_timeout(command: &mut Command, timeout: Duration) -> Result<Option<u64>, String> {
    let shown = cmd::display(command);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(command, 0);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    let stdout = child.stdout.take().ok_or("swift test has no stdout")?;
    let (lines_tx, lines_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut executed = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some(n) = executed_count(&line) {
                executed = Some(n);
            }
        }
        let _ = lines_tx.send(executed);
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("could not wait for swift test: {e}"))?
        {
            break status;
        }
        if started.elapsed() > timeout {
            // The negative pid names the process group: swift test and the xctest runner it started.
            if cfg!(unix) {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "the Swift tests did not finish within {}: `{shown}`",
                human(timeout)
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let executed = lines_rx
        .recv_timeout(Duration::from_secs(10))
        .ok()
        .flatten();
    let _ = reader.join();
    if status.success() {
        Ok(executed)
    } else {
        Err(format!(
            "the Swift tests failed ({status}) after {}: `{shown}`",
            human(started.elapsed())
        ))
    }
}

/// `Executed 33 tests, with 0 failures (0 unexpected) in ...` → 33.
fn executed_count(line: &str) -> Option<u64> {
    let rest = line.trim().strip_prefix("Executed ")?;
    let (count, rest) = rest.split_once(' ')?;
    if rest.starts_with("test") {
        count.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executed_lines_give_the_test_count() {
        assert_eq!(
            executed_count(
                "\t Executed 33 tests, with 0 failures (0 unexpected) in 11.123 (11.123) seconds"
            ),
            Some(33)
        );
        assert_eq!(
            executed_count("Executed 1 test, with 0 failures (0 unexpected) in 0.4 (0.4) seconds"),
            Some(1)
        );
        assert_eq!(executed_count("Test Case 'X.testY' passed"), None);
    }

    #[test]
    fn apple_only_files_are_wholly_inside_can_import() {
        assert!(apple_only(
            "// doc\n#if canImport(Security)\nimport Security\nstruct A {}\n#endif\n"
        ));
        assert!(!apple_only(
            "import Foundation\n#if canImport(Darwin)\nimport Darwin\n#endif\n"
        ));
        assert!(!apple_only(
            "#if canImport(UIKit)\nimport UIKit\n#endif\nstruct Portable {}\n"
        ));
    }

    /// Every hand-written file of ios/Sources that is not Apple-only is portable Swift (compiled on Linux): the
    /// Apple-only ones are exactly the files that need Apple frameworks.
    #[test]
    fn the_apple_only_files_are_the_framework_adapters() {
        let ws = Workspace::locate().expect("workspace");
        let mut files = Vec::new();
        swift_files(&ws.root.join("ios/Sources/ChartLinkKit"), &mut files).expect("ios sources");
        let mut apple: Vec<String> = files
            .iter()
            .filter(|f| !f.components().any(|c| c.as_os_str() == "Generated"))
            .filter(|f| apple_only(&fs::read_to_string(f).expect("read")))
            .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        apple.sort();
        assert_eq!(
            apple,
            [
                "BackgroundRefresh.swift",
                "ChartLinkApple.swift",
                "KeychainSecureStore.swift",
                "ScenePhaseForwarder.swift",
                "WebAuthenticationBrowser.swift",
            ]
        );
    }
}
