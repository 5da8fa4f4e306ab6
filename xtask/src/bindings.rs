//! `cargo xtask bindings`: the host tests of the Kotlin and Swift bindings.
//!
//! 1. Builds `chartlink-ffi` (debug, with its pinned `uniffi-bindgen` binary: feature `bindgen`) and the sandbox.
//! 2. Generates Kotlin and Swift from the built library into `<target>/bindings/{kotlin,swift}` (never committed).
//! 3. Compiles the generated Kotlin + the platform-independent Kotlin shell (`android/src/portable`) + the tests
//!    (`bindings/tests/kotlin`) with kotlinc (skipped when none of them changed), starts the sandbox on a free
//!    loopback port, and runs the tests on the JVM with JNA loading the library.
//! 4. Parses every generated and hand-written `.swift` file with tree-sitter-swift and fails on any syntax error
//!    (no Swift compiler exists on these machines; this catches syntax, not types).
//!
//! kotlinc, JNA and the Python venv come from `cargo xtask tools` (see tools.rs); `cargo xtask bindings` installs
//! them when missing.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::Tools;
use crate::{Workspace, cmd, human};

/// The JVM test's main class (bindings/tests/kotlin/ChartLinkHostTest.kt).
const KOTLIN_TEST_MAIN: &str = "dev.chartlink.sdk.test.ChartLinkHostTestKt";
/// A hung JVM (a native deadlock, a test waiting forever) fails the step instead of hanging CI.
const KOTLIN_TEST_TIMEOUT: Duration = Duration::from_secs(600);
/// What the sandbox prints first: "ChartLink sandbox EHR listening on http://127.0.0.1:PORT".
const SANDBOX_BANNER: &str = "listening on ";

/// Parses each file named on the command line with tree-sitter-swift and prints every ERROR or MISSING node as
/// `path:line:column`. Two gaps of the 0.7.4 grammar give false errors on valid generated code, so they are rewritten
/// first, keeping line numbers: an attribute alone inside `#if swift(...) ... #endif`, and the empty closure
/// `{ () }`.
const SWIFT_PARSE: &str = r#"
import re, sys
import tree_sitter, tree_sitter_swift

parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))

def rewrite(text):
    lines = text.split("\n")
    for i in range(len(lines) - 2):
        if (re.fullmatch(r"\s*#if swift\([^)]*\)\s*", lines[i])
                and re.fullmatch(r"\s*@\w+(\(.*\))?\s*", lines[i + 1])
                and re.fullmatch(r"\s*#endif\s*", lines[i + 2])):
            lines[i] = lines[i + 1] = lines[i + 2] = ""
    return "\n".join(lines).replace("{ () }", "{ }")

def problems(node, out):
    if node.is_error or node.is_missing:
        out.append(node)
    elif node.has_error:
        for child in node.children:
            problems(child, out)

bad = 0
for path in sys.argv[1:]:
    source = rewrite(open(path, encoding="utf-8").read())
    found = []
    problems(parser.parse(source.encode()).root_node, found)
    lines = source.split("\n")
    for node in found[:20]:
        row, col = node.start_point
        what = "missing " + node.type if node.is_missing else "syntax error"
        print(f"{path}:{row + 1}:{col + 1}: {what}: {lines[row].strip()[:120]}")
    bad += bool(found)
print(f"swift: {len(sys.argv) - 1 - bad} of {len(sys.argv) - 1} files parse cleanly (tree-sitter-swift)")
sys.exit(1 if bad else 0)
"#;

/// Where the pieces are.
struct Paths {
    debug: PathBuf,
    library: PathBuf,
    bindgen: PathBuf,
    sandbox: PathBuf,
    out: PathBuf,
    kotlin: PathBuf,
    swift: PathBuf,
    test_jar: PathBuf,
}

impl Paths {
    fn new(ws: &Workspace) -> Self {
        let debug = ws.target.join("debug");
        let out = ws.target.join("bindings");
        let exe = std::env::consts::EXE_SUFFIX;
        Self {
            library: debug.join(format!(
                "{}chartlink_ffi{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            )),
            bindgen: debug.join(format!("uniffi-bindgen{exe}")),
            sandbox: debug.join(format!("chartlink-sandbox{exe}")),
            kotlin: out.join("kotlin"),
            swift: out.join("swift"),
            test_jar: out.join("kotlin-tests.jar"),
            out,
            debug,
        }
    }
}

/// The tool paths the tests need, by the names tools.rs gives them.
struct Jvm {
    kotlinc: PathBuf,
    jna: PathBuf,
    python: PathBuf,
}

impl Jvm {
    fn from(tools: &Tools) -> Result<Self, String> {
        let env = tools.test_env();
        let find = |name: &str| {
            env.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, p)| p.to_path_buf())
                .ok_or_else(|| format!("{name} is not installed; run `cargo xtask tools`"))
        };
        Ok(Self {
            kotlinc: find("CHARTLINK_KOTLINC")?,
            jna: find("CHARTLINK_JNA_JAR")?,
            python: find("CHARTLINK_PYTHON")?,
        })
    }

    /// kotlinc's `lib/`: kotlin-stdlib, kotlin-test and kotlinx-coroutines-core-jvm.
    fn lib(&self, jar: &str) -> Result<PathBuf, String> {
        let path = self
            .kotlinc
            .parent()
            .and_then(Path::parent)
            .map(|home| home.join("lib").join(jar))
            .ok_or_else(|| format!("cannot find kotlinc's lib/ from {}", self.kotlinc.display()))?;
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{} is missing from kotlinc's lib/", path.display()))
        }
    }

    fn classpath(&self, first: &[&Path]) -> Result<std::ffi::OsString, String> {
        let mut parts: Vec<PathBuf> = first.iter().map(|p| p.to_path_buf()).collect();
        parts.push(self.jna.clone());
        for jar in [
            "kotlinx-coroutines-core-jvm.jar",
            "kotlin-test.jar",
            "kotlin-stdlib.jar",
        ] {
            parts.push(self.lib(jar)?);
        }
        std::env::join_paths(parts).map_err(|e| format!("bad classpath: {e}"))
    }
}

/// `cargo xtask bindings`, after tools are in place.
pub fn run(ws: &Workspace, tools: &Tools) -> Result<(), String> {
    let jvm = Jvm::from(tools)?;
    let paths = Paths::new(ws);

    let started = Instant::now();
    // One build for the library and the generator: the same features, so the library is not built twice.
    cmd::run(ws.cargo().args([
        "build",
        "-p",
        "chartlink-ffi",
        "--features",
        "bindgen",
        "-p",
        "chartlink-sandbox",
    ]))?;
    println!(
        "bindings: built the library, uniffi-bindgen and the sandbox in {}",
        human(started.elapsed())
    );

    generate(&paths)?;
    let kotlin_sources = kotlin_sources(ws, &paths)?;
    compile_kotlin(&jvm, &paths, &kotlin_sources)?;
    run_kotlin_tests(&jvm, &paths)?;
    parse_swift(ws, &jvm, &paths)
}

fn generate(paths: &Paths) -> Result<(), String> {
    for (language, dir) in [("kotlin", &paths.kotlin), ("swift", &paths.swift)] {
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
        }
        cmd::run(
            Command::new(&paths.bindgen)
                .arg("generate")
                .arg(&paths.library)
                .args([
                    "--language",
                    language,
                    "--no-format",
                    "--metadata-no-deps",
                    "--out-dir",
                ])
                .arg(dir),
        )?;
    }
    println!(
        "bindings: generated Kotlin and Swift into {}",
        paths.out.display()
    );
    Ok(())
}

fn files_with_extension(dir: &Path, extension: &str, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            files_with_extension(&path, extension, out)?;
        } else if path.extension().is_some_and(|e| e == extension) {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

/// The generated Kotlin, the platform-independent shell and the tests.
fn kotlin_sources(ws: &Workspace, paths: &Paths) -> Result<Vec<PathBuf>, String> {
    let mut sources = Vec::new();
    files_with_extension(&paths.kotlin, "kt", &mut sources)?;
    files_with_extension(
        &ws.root.join("android/src/portable/kotlin"),
        "kt",
        &mut sources,
    )?;
    files_with_extension(&ws.root.join("bindings/tests/kotlin"), "kt", &mut sources)?;
    Ok(sources)
}

/// Compiles the Kotlin into one jar, unless the same sources were compiled last time (kotlinc takes ~50 s).
fn compile_kotlin(jvm: &Jvm, paths: &Paths, sources: &[PathBuf]) -> Result<(), String> {
    let mut hasher = DefaultHasher::new();
    jvm.kotlinc.hash(&mut hasher);
    for source in sources {
        source.hash(&mut hasher);
        fs::read(source)
            .map_err(|e| format!("cannot read {}: {e}", source.display()))?
            .hash(&mut hasher);
    }
    let stamp = paths.out.join("kotlin-tests.stamp");
    let digest = format!("{:016x}", hasher.finish());
    if paths.test_jar.is_file() && fs::read_to_string(&stamp).is_ok_and(|s| s == digest) {
        println!(
            "bindings: Kotlin unchanged since the last compile; reusing {}",
            paths.test_jar.display()
        );
        return Ok(());
    }
    let started = Instant::now();
    let _ = fs::remove_file(&stamp);
    cmd::run(
        Command::new(&jvm.kotlinc)
            .args(["-nowarn", "-cp"])
            .arg(jvm.classpath(&[])?)
            .args(sources)
            .arg("-d")
            .arg(&paths.test_jar),
    )?;
    fs::write(&stamp, digest).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    println!(
        "bindings: compiled {} Kotlin files with kotlinc in {}",
        sources.len(),
        human(started.elapsed())
    );
    Ok(())
}

/// The sandbox, stopped when dropped.
struct Sandbox {
    child: Child,
    base_url: String,
}

impl Sandbox {
    fn start(binary: &Path) -> Result<Self, String> {
        let mut child = Command::new(binary)
            .args(["--addr", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("the sandbox has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        // Keep draining so the sandbox never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let mut sandbox = Self {
            child,
            base_url: String::new(),
        };
        match first.split_once(SANDBOX_BANNER) {
            Some((_, url)) if url.starts_with("http://") => {
                sandbox.base_url = url.trim().to_owned();
                Ok(sandbox)
            }
            _ => Err(format!(
                "the sandbox did not start (its first line: {first:?})"
            )),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_kotlin_tests(jvm: &Jvm, paths: &Paths) -> Result<(), String> {
    let sandbox = Sandbox::start(&paths.sandbox)?;
    println!("bindings: sandbox at {}", sandbox.base_url);
    let mut java = Command::new("java");
    java.arg(format!("-Djna.library.path={}", paths.debug.display()))
        .arg(format!("-Dchartlink.sandbox={}", sandbox.base_url))
        .arg("-cp")
        .arg(jvm.classpath(&[&paths.test_jar])?)
        .arg(KOTLIN_TEST_MAIN)
        // The tests provoke panics on purpose; their backtraces would bury the report.
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null());
    let shown = cmd::display(&java);
    let started = Instant::now();
    let mut child = java.spawn().map_err(|e| {
        format!("could not start `{shown}`: {e}\n    the Kotlin tests need a JDK: apt-get install default-jdk-headless")
    })?;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("could not wait for java: {e}"))?
        {
            break status;
        }
        if started.elapsed() > KOTLIN_TEST_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "the Kotlin tests did not finish within {}",
                human(KOTLIN_TEST_TIMEOUT)
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let took = human(started.elapsed());
    drop(sandbox);
    if status.success() {
        println!("bindings: Kotlin host tests passed on the JVM in {took}");
        Ok(())
    } else {
        Err(format!(
            "the Kotlin host tests failed ({status}) after {took}: `{shown}`"
        ))
    }
}

fn parse_swift(ws: &Workspace, jvm: &Jvm, paths: &Paths) -> Result<(), String> {
    let mut files = Vec::new();
    files_with_extension(&paths.swift, "swift", &mut files)?;
    let generated = files.len();
    files_with_extension(&ws.root.join("ios"), "swift", &mut files)?;
    if generated == 0 || files.len() == generated {
        return Err("no generated or no hand-written Swift found to parse".into());
    }
    let script = paths.out.join("swift_parse.py");
    fs::write(&script, SWIFT_PARSE)
        .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    cmd::run(Command::new(&jvm.python).arg(&script).args(&files))
        .map_err(|_| "a Swift file does not parse (see the lines above)".to_owned())
}
