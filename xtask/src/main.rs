//! `cargo xtask`: ChartLink's build and test automation, in Rust so it runs the same on every machine.
//!
//! - `cargo xtask ci [--skip-lint]`: the project's test command (the README and `.ci/run` call exactly this).
//! - `cargo xtask tools`: installs the external tools the tests drive (Chromium, chromedriver, Maven jars, a Python venv,
//!   kotlinc, npm's oidc-provider) if they are missing; prints "all tools present" when nothing was.
//! - `cargo xtask sandbox [ARGS...]`: `cargo run -p chartlink-sandbox -- ARGS`.
//! - `cargo xtask bindings`: generates the Kotlin and Swift bindings, runs the Kotlin host tests on the JVM against
//!   the sandbox and parses every Swift file (see bindings.rs).
//! - `cargo xtask size`: builds the mobile library as android/build-rust.sh does (for this host), says what is in it
//!   crate by crate, and fails when the stripped library is over its 5 MB budget (see size.rs).
//! - `cargo xtask swift`: where `swift` is on PATH, builds the Swift package (ios/) and runs its XCTest tests against
//!   the real library and the sandbox (see swift.rs).
//!
//! The alias lives in `.cargo/config.toml`; it works from any directory of the checkout. Tools go under
//! `<target dir>/tools` (`CARGO_TARGET_DIR` or `<root>/target`), never into git.
//!
//! To add a step: write a function returning `Result<(), String>` that names what failed, and call it through
//! [`Steps::run`] in [`ci`] so it gets a header, a wall time and fail-fast behaviour.

// What `cargo xtask ci` does, in order, and why:
//
// 1. fmt     `cargo fmt --all -- --check`. Cheapest check first: seconds, and formatting noise must not reach review.
// 2. clippy  `cargo clippy --workspace --all-targets -- -D warnings`. All targets, so tests, examples and benches are
//            linted too; `-D warnings` makes the workspace lints binding. Passed on the command line rather than
//            through RUSTFLAGS so that it does not invalidate the build cache that the test step then reuses.
// 3. tools   Installs Chromium + chromedriver, the Maven Central jars, the Python venv, kotlinc and npm's oidc-provider if
//            missing (see tools.rs). Before
//            the tests, so a test never half-installs something itself; idempotent and fast when all is there.
// 4. test    `cargo nextest run --workspace` when cargo-nextest is installed (one process per test: a test that
//            hangs or leaks a server or browser cannot disturb the others, and slow tests are reported), otherwise
//            `cargo test --workspace`. The tests find the tools through CHARTLINK_* variables set here (or at their
//            usual paths); a missing tool fails its test with the command that installs it, never a silent skip.
// 5. doctests `cargo test --workspace --doc`, only after nextest, which cannot run doctests. The examples in our
//            `///` docs are part of the public API's contract, so they are tests too.
// 6. bindings Generates Kotlin and Swift from the debug library with the pinned uniffi-bindgen, compiles all of
//            android/ against android-all + coroutines-android + JNA, runs android/'s JUnit tests and the Kotlin host
//            tests on the JVM (JNA) against the sandbox, and parses every Swift file (bindings.rs). Last: it builds
//            the FFI crate with the bindgen feature, the costliest unit, and tests what the Rust tests cannot reach.
// 7. swift   Where a Swift toolchain is on PATH: builds ios/ (the shell, the README's quickstart, the tests) with
//            SwiftPM against the same debug library and runs its XCTest tests against the sandbox (swift.rs). Where
//            there is none the step says so in one line; the bindings step's tree-sitter parse and signature checks
//            of the Swift are what remains there (they run everywhere).
// 8. size    Linux: builds the release library with the mobile settings (bindings/size-settings.sh, LTO), strips
//            it, prints its top contributors by crate and fails above 5,000,000 bytes (size.rs). Last, because it is
//            the only step that builds in release; it guards the budget the library was brought back under.
//
// Lint steps come first because they fail fastest; `--skip-lint` drops them for local iteration.

mod bindings;
mod cmd;
mod size;
mod swift;
mod tools;

use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "ChartLink build and test automation"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// The project's test command: fmt, clippy, tools, tests (nextest + doctests, or cargo test).
    Ci {
        /// Skip `cargo fmt --check` and `cargo clippy` (for local iteration; CI never skips them).
        #[arg(long)]
        skip_lint: bool,
    },
    /// Install the tools the tests use (Chromium, chromedriver, Maven Central jars, Python venv, kotlinc, npm's
    /// oidc-provider) if missing.
    Tools,
    /// Host tests of the bindings: generate Kotlin and Swift, run the Kotlin tests on the JVM against the sandbox,
    /// parse every Swift file (installs kotlinc, the Maven jars and the venv when missing).
    Bindings,
    /// Build the Swift package (ios/) and run its tests against the real library and the sandbox (needs `swift` on
    /// PATH; Swift for Linux will do).
    Swift,
    /// Write `ChartLinkKit+Extensions.swift` (the Swift client's list reads, `Identifiable` records) beside the generated
    /// `ChartLinkKit.swift` in DIR: ios/build-xcframework.sh calls it after uniffi-bindgen.
    #[command(hide = true)]
    SwiftLists { dir: PathBuf },
    /// Build the mobile library as android/build-rust.sh does (for this host), report what is in it by crate, and
    /// fail when the stripped library is over its budget (5 MB). Linux only.
    Size {
        /// Report on this unstripped library (an earlier build kept for comparison) instead of building one.
        #[arg(long)]
        library: Option<PathBuf>,
    },
    /// Run the local SMART-on-FHIR sandbox EHR: `cargo run -p chartlink-sandbox -- ARGS`.
    #[command(disable_help_flag = true)]
    Sandbox {
        /// Arguments for chartlink-sandbox, `--help` included.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

/// The checkout xtask belongs to, and where build output and tools go.
#[derive(Debug)]
pub struct Workspace {
    root: PathBuf,
    target: PathBuf,
}

impl Workspace {
    /// Found from where xtask was compiled (`xtask/..`), so any working directory will do.
    fn locate() -> Result<Self, String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask/ has a parent: the workspace root")
            .to_path_buf();
        // Cargo resolves a relative CARGO_TARGET_DIR against the working directory; so do we.
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) if !dir.is_empty() => std::path::absolute(&dir)
                .map_err(|e| format!("bad CARGO_TARGET_DIR {}: {e}", Path::new(&dir).display()))?,
            _ => root.join("target"),
        };
        Ok(Self { root, target })
    }

    /// Where `cargo xtask tools` installs what it fetches.
    pub fn tools_dir(&self) -> PathBuf {
        self.target.join("tools")
    }

    /// A `cargo` command run at the workspace root, with the same cargo that runs xtask.
    fn cargo(&self) -> Command {
        let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        command.current_dir(&self.root);
        command
    }
}

/// Numbered, timed steps that stop at the first failure.
#[derive(Debug)]
struct Steps {
    done: usize,
    total: usize,
}

impl Steps {
    /// A step that cannot run on this machine: one line that says why, counted so the total stays honest.
    fn skip(&mut self, name: &str, why: &str) {
        self.done += 1;
        println!(
            "\n==> [{}/{}] {name}: SKIPPED: {why}",
            self.done, self.total
        );
    }

    fn run<T>(
        &mut self,
        name: &str,
        step: impl FnOnce() -> Result<T, String>,
    ) -> Result<T, String> {
        self.done += 1;
        println!("\n==> [{}/{}] {name}", self.done, self.total);
        let started = Instant::now();
        let result = step();
        let took = human(started.elapsed());
        match result {
            Ok(value) => {
                println!("<== {name}: ok ({took})");
                Ok(value)
            }
            Err(e) => {
                println!("<== {name}: FAILED ({took})");
                Err(format!("step `{name}` failed after {took}: {e}"))
            }
        }
    }
}

fn ci(ws: &Workspace, skip_lint: bool) -> Result<(), String> {
    let started = Instant::now();
    let nextest = cmd::succeeds(ws.cargo().args(["nextest", "--version"]));
    let mut steps = Steps {
        done: 0,
        // tools, test, bindings, swift (run or skipped), size (run or skipped), + fmt and clippy, + doctests after
        // nextest.
        total: 5 + usize::from(!skip_lint) * 2 + usize::from(nextest),
    };
    // A toolchain without the rustfmt or clippy component (a minimal rustup profile) says so in one line and runs
    // every other step: the lints are worth less than the tests they would otherwise block.
    let has_fmt = cmd::succeeds(ws.cargo().args(["fmt", "--version"]));
    let has_clippy = cmd::succeeds(ws.cargo().args(["clippy", "--version"]));
    if skip_lint {
        println!("skipping fmt and clippy (--skip-lint)");
    } else {
        if has_fmt {
            steps.run("fmt", || {
                cmd::run(ws.cargo().args(["fmt", "--all", "--", "--check"]))
                    .map_err(|e| format!("{e}\n    run `cargo fmt --all` to fix the formatting"))
            })?;
        } else {
            steps.skip(
                "fmt",
                "rustfmt is not installed (rustup component add rustfmt)",
            );
        }
        if has_clippy {
            steps.run("clippy", || {
                cmd::run(ws.cargo().args([
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ]))
            })?;
        } else {
            steps.skip(
                "clippy",
                "clippy is not installed (rustup component add clippy)",
            );
        }
    }
    let tools = steps.run("tools", || tools::ensure(ws))?;
    let with_tool_env = |command: &mut Command| {
        for (name, path) in tools.test_env() {
            command.env(name, path);
        }
    };
    for (name, path) in tools.test_env() {
        println!("test env: {name}={}", path.display());
    }
    if nextest {
        steps.run("test", || {
            let mut test = ws.cargo();
            test.args(["nextest", "run", "--workspace"]);
            with_tool_env(&mut test);
            cmd::run(&mut test)
        })?;
        steps.run("doctests", || {
            let mut doc = ws.cargo();
            doc.args(["test", "--workspace", "--doc"]);
            with_tool_env(&mut doc);
            cmd::run(&mut doc)
        })?;
    } else {
        steps.run(
            "test (cargo-nextest not installed; using cargo test)",
            || {
                let mut test = ws.cargo();
                test.args(["test", "--workspace"]);
                with_tool_env(&mut test);
                cmd::run(&mut test)
            },
        )?;
    }
    steps.run("bindings (Kotlin on the JVM, Swift parse)", || {
        bindings::run(ws, &tools)
    })?;
    if swift::available() {
        steps.run("swift (build ios/, XCTest against the sandbox)", || {
            swift::run(ws)
        })?;
    } else {
        steps.skip(
            "swift",
            "no Swift toolchain on PATH: ios/ was parsed and its signatures checked (bindings), not compiled",
        );
    }
    if cfg!(target_os = "linux") {
        steps.run("size (the release library within its budget)", || {
            size::run(ws, None)
        })?;
    } else {
        steps.skip(
            "size",
            "`cargo xtask size` reads an ELF library: Linux only",
        );
    }
    println!(
        "\nci: all {} steps passed in {}",
        steps.total,
        human(started.elapsed())
    );
    Ok(())
}

fn sandbox(ws: &Workspace, args: &[OsString]) -> Result<(), String> {
    cmd::run(
        ws.cargo()
            .args(["run", "-p", "chartlink-sandbox", "--"])
            .args(args),
    )
}

fn human(elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = elapsed.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = Workspace::locate().and_then(|ws| match cli.task {
        Task::Ci { skip_lint } => ci(&ws, skip_lint),
        Task::Tools => tools::ensure(&ws).map(|_| ()),
        Task::Bindings => tools::ensure(&ws).and_then(|tools| bindings::run(&ws, &tools)),
        Task::Swift => swift::run(&ws),
        Task::SwiftLists { dir } => bindings::write_swift_list_reads(&dir),
        Task::Size { library } => size::run(&ws, library.as_deref()),
        Task::Sandbox { args } => sandbox(&ws, &args),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's Android quickstart is the file `cargo xtask bindings` compiles against android-all.
    #[test]
    fn readme_android_quickstart_is_the_compiled_sample() {
        let ws = Workspace::locate().expect("workspace");
        if let Err(e) = bindings::check_readme_quickstart(&ws) {
            panic!("{e}");
        }
    }

    /// The README's Swift quickstart is the file `cargo xtask swift` compiles (and its tests run).
    #[test]
    fn readme_swift_quickstart_is_the_compiled_sample() {
        let ws = Workspace::locate().expect("workspace");
        if let Err(e) = swift::check_readme_quickstart(&ws) {
            panic!("{e}");
        }
    }
}
