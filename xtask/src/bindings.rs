//! `cargo xtask bindings`: the host tests of the Kotlin and Swift bindings, and the Android compile check.
//!
//! 1. Checks that the README's Android quickstart is the sample file CI compiles (android/src/sample).
//! 2. Builds `chartlink-ffi` (debug, with its pinned `uniffi-bindgen` binary: feature `bindgen`) and the sandbox.
//! 3. Generates Kotlin and Swift from the built library into `<target>/bindings/{kotlin,swift}` (never committed).
//! 4. Compiles every Kotlin file of android/ (main, portable, sample) plus the generated bindings with kotlinc against
//!    the real Android framework classes (android-all), coroutines-android, JNA and, where its crate ships them,
//!    rustls-platform-verifier's classes, all from Maven Central (tools.rs). Any error fails the step.
//! 5. Compiles the JVM set (generated Kotlin + android/src/portable + android/src/test + bindings/tests/kotlin) and
//!    runs android/'s JUnit 5 tests with the JUnit console launcher.
//! 6. Starts the sandbox on a free loopback port and runs the Kotlin host tests on the JVM with JNA loading the
//!    library.
//! 7. Parses every generated and hand-written `.swift` file with tree-sitter-swift and fails on any syntax error,
//!    and compares `ChartLinkClient`'s signatures with the generated protocol as text. This catches syntax, not
//!    types; it runs everywhere, and is the only Swift check where no Swift toolchain exists. Where one does,
//!    `cargo xtask swift` (swift.rs) compiles ios/ and runs its tests.
//!
//! Each kotlinc run is skipped when its sources, classpath and options did not change. kotlinc, the Maven jars and
//! the Python venv come from `cargo xtask tools` (see tools.rs); `cargo xtask bindings` installs them when missing.

use std::collections::hash_map::DefaultHasher;
use std::ffi::OsString;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::{self, Tools};
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
pub(crate) struct Paths {
    pub(crate) debug: PathBuf,
    library: PathBuf,
    bindgen: PathBuf,
    pub(crate) sandbox: PathBuf,
    out: PathBuf,
    kotlin: PathBuf,
    pub(crate) swift: PathBuf,
    test_jar: PathBuf,
    android_jar: PathBuf,
}

impl Paths {
    pub(crate) fn new(ws: &Workspace) -> Self {
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
            android_jar: out.join("android-classes.jar"),
            out,
            debug,
        }
    }
}

/// The tool paths and jars the tests need.
struct Jvm {
    kotlinc: PathBuf,
    python: PathBuf,
    kotlin_stdlib: PathBuf,
    kotlin_test: PathBuf,
    jna: PathBuf,
    coroutines_core: PathBuf,
    coroutines_android: PathBuf,
    android_all: PathBuf,
    junit_console: PathBuf,
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
        let kotlinc = find("CHARTLINK_KOTLINC")?;
        let lib = |jar: &str| -> Result<PathBuf, String> {
            let path = kotlinc
                .parent()
                .and_then(Path::parent)
                .map(|home| home.join("lib").join(jar))
                .ok_or_else(|| format!("cannot find kotlinc's lib/ from {}", kotlinc.display()))?;
            if path.is_file() {
                Ok(path)
            } else {
                Err(format!("{} is missing from kotlinc's lib/", path.display()))
            }
        };
        Ok(Self {
            kotlin_stdlib: lib("kotlin-stdlib.jar")?,
            kotlin_test: lib("kotlin-test.jar")?,
            python: find("CHARTLINK_PYTHON")?,
            jna: tools.maven_jar(tools::JNA)?,
            coroutines_core: tools.maven_jar(tools::COROUTINES_CORE)?,
            coroutines_android: tools.maven_jar(tools::COROUTINES_ANDROID)?,
            android_all: tools.maven_jar(tools::ANDROID_ALL)?,
            junit_console: tools.maven_jar(tools::JUNIT_CONSOLE)?,
            kotlinc,
        })
    }

    /// The JVM classpath of the host tests and unit tests: `first`, then JNA, coroutines, kotlin-test, JUnit and
    /// the standard library (the same coroutines and JNA versions android/ ships with).
    fn classpath(&self, first: &[&Path]) -> Result<OsString, String> {
        join_classpath(first.iter().copied().chain([
            self.jna.as_path(),
            &self.coroutines_core,
            &self.kotlin_test,
            &self.junit_console,
            &self.kotlin_stdlib,
        ]))
    }

    /// What android/ is compiled against: the Android framework (android-all), coroutines-android + -core, JNA and,
    /// when its crate ships them, rustls-platform-verifier's classes. (java.* comes from the JDK: android-all has almost none).
    fn android_classpath(&self, verifier: Option<&Path>) -> Result<OsString, String> {
        join_classpath(
            [
                self.android_all.as_path(),
                &self.coroutines_android,
                &self.coroutines_core,
                &self.jna,
                &self.kotlin_stdlib,
            ]
            .into_iter()
            .chain(verifier),
        )
    }
}

fn join_classpath<'a>(parts: impl IntoIterator<Item = &'a Path>) -> Result<OsString, String> {
    std::env::join_paths(parts).map_err(|e| format!("bad classpath: {e}"))
}

/// `cargo xtask bindings`, after tools are in place.
pub fn run(ws: &Workspace, tools: &Tools) -> Result<(), String> {
    let jvm = Jvm::from(tools)?;
    let paths = Paths::new(ws);
    check_readme_quickstart(ws)?;

    build_library(ws)?;
    generate(&paths)?;
    compile_android(ws, &jvm, &paths)?;
    let jvm_sources = jvm_sources(ws, &paths)?;
    compile_kotlin(
        &jvm,
        &jvm.classpath(&[])?,
        &jvm_sources,
        &paths.test_jar,
        &["-jvm-target", "17"],
        "the JVM set (bindings, android/src/portable, host tests, unit tests)",
    )?;
    run_unit_tests(&jvm, &paths)?;
    run_kotlin_tests(&jvm, &paths)?;
    parse_swift(ws, &jvm, &paths)
}

/// Builds the debug `chartlink-ffi` library (with the `test-support` hooks the host tests call), its pinned
/// `uniffi-bindgen` and the sandbox: one build for the library and the generator, with the same features, so the
/// library is not built twice. Shared with `cargo xtask swift`.
pub(crate) fn build_library(ws: &Workspace) -> Result<(), String> {
    let started = Instant::now();
    cmd::run(ws.cargo().args([
        "build",
        "-p",
        "chartlink-ffi",
        "--features",
        "chartlink-ffi/bindgen,chartlink-ffi/test-support",
        "-p",
        "chartlink-sandbox",
    ]))?;
    println!(
        "bindings: built the library, uniffi-bindgen and the sandbox in {}",
        human(started.elapsed())
    );
    Ok(())
}

fn generate(paths: &Paths) -> Result<(), String> {
    generate_language(paths, "kotlin", &paths.kotlin)?;
    generate_language(paths, "swift", &paths.swift)?;
    println!(
        "bindings: generated Kotlin and Swift into {}",
        paths.out.display()
    );
    Ok(())
}

/// Generates one language's bindings from the built library into `dir` (cleared first); for Swift, also
/// `ChartLinkClient`'s list reads ([`SWIFT_LIST_READS`]).
pub(crate) fn generate_language(paths: &Paths, language: &str, dir: &Path) -> Result<(), String> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    generate_with_bindgen(paths, language, dir)?;
    if language == "swift" {
        write_swift_list_reads(dir)?;
    }
    Ok(())
}

/// The generated extensions of the Swift shell (ios/): `ChartLinkClient`'s list reads, forwarded to the generated
/// object, and `Identifiable` for every generated record with an `id`.
pub(crate) const SWIFT_LIST_READS: &str = "ChartLinkKit+Extensions.swift";

/// Writes [`SWIFT_LIST_READS`] beside the generated `ChartLinkKit.swift` in `dir` (`cargo xtask swift`, and
/// ios/build-xcframework.sh through `cargo xtask swift-lists DIR`).
pub(crate) fn write_swift_list_reads(dir: &Path) -> Result<(), String> {
    let generated = dir.join("ChartLinkKit.swift");
    let text = fs::read_to_string(&generated)
        .map_err(|e| format!("cannot read {}: {e}", generated.display()))?;
    let out = dir.join(SWIFT_LIST_READS);
    fs::write(&out, swift_list_reads(&text)?)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))
}

/// `ChartLinkClient`'s list reads, from the generated `ChartLinkProtocol`: every method whose one parameter is
/// `query: RecordQuery?` (a line of core's `record_lists!` table, or an Observation list) is forwarded to the
/// generated object, with its documentation and the query defaulting to nil. So a new list needs no line in the
/// Swift shell, as Kotlin's `ChartLinkInterface by sdk` needs none.
fn swift_list_reads(generated: &str) -> Result<String, String> {
    let start = generated
        .find("public protocol ChartLinkProtocol")
        .ok_or("the generated Swift has no ChartLinkProtocol")?;
    let protocol = &generated[start..];
    let protocol = &protocol[..protocol.find("\n}").unwrap_or(protocol.len())];
    let mut out = String::from(
        "// Generated by `cargo xtask` from the generated ChartLinkProtocol: every list read of the SDK, forwarded to\n\
         // the generated object. Do not edit; never committed.\n\n\
         extension ChartLinkClient {\n",
    );
    let mut doc: Vec<&str> = Vec::new();
    let mut in_doc = false;
    let mut count = 0;
    for line in protocol.lines().map(str::trim) {
        if line.starts_with("/**") {
            in_doc = true;
            doc.clear();
        }
        if in_doc {
            doc.push(line);
            in_doc = !line.ends_with("*/");
            continue;
        }
        let Some(rest) = line.strip_prefix("func ") else {
            if !line.is_empty() {
                doc.clear();
            }
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let effects = rest[name.len()..]
            .strip_prefix("(query: RecordQuery?)")
            .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "));
        if let Some(effects) = effects.filter(|e| e.starts_with("async throws -> ")) {
            for d in &doc {
                let indent = if d.starts_with("/**") {
                    "    "
                } else {
                    "     "
                };
                out.push_str(&format!("{indent}{d}\n"));
            }
            out.push_str(&format!(
                "    public func {name}(query: RecordQuery? = nil) {effects} {{ try await sdk.{name}(query: query) }}\n\n"
            ));
            count += 1;
        }
        doc.clear();
    }
    if count == 0 {
        return Err(
            "the generated ChartLinkProtocol has no list reads (`func x(query: RecordQuery?)`)"
                .into(),
        );
    }
    out.push_str("}\n\n");
    out.push_str(
        "// Records with an `id` are Identifiable, so SwiftUI lists take them as they are: `List(labs) { lab in ... }`,\n\
         // `ForEach(patients) { ... }`.\n",
    );
    for name in swift_records_with_id(generated)? {
        out.push_str(&format!("extension {name}: Identifiable {{}}\n"));
    }
    Ok(out)
}

/// The generated records with an `id: String`, after checking that every generated record is immutable (`let`
/// fields: `generate_immutable_records` in bindings/uniffi.toml).
fn swift_records_with_id(generated: &str) -> Result<Vec<String>, String> {
    let mut with_id = Vec::new();
    for part in generated.split("\npublic struct ").skip(1) {
        let name: String = part.chars().take_while(|c| c.is_alphanumeric()).collect();
        let body = &part[..part.find("\n}").unwrap_or(part.len())];
        if body.contains("public var ") {
            return Err(format!(
                "generated Swift record {name} is mutable (`var` fields)"
            ));
        }
        if body.contains("public let id: String\n") {
            with_id.push(name);
        }
    }
    if with_id.is_empty() {
        return Err("the generated Swift has no record with an `id`".into());
    }
    Ok(with_id)
}

fn generate_with_bindgen(paths: &Paths, language: &str, dir: &Path) -> Result<(), String> {
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
    )
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

/// What runs on the JVM: the generated Kotlin, the platform-independent shell (android/src/portable: the client,
/// and the plain classes the Android adapters are built on), the host tests and android/'s JUnit tests.
fn jvm_sources(ws: &Workspace, paths: &Paths) -> Result<Vec<PathBuf>, String> {
    let mut sources = Vec::new();
    files_with_extension(&paths.kotlin, "kt", &mut sources)?;
    for dir in [
        "android/src/portable/kotlin",
        "android/src/test/kotlin",
        "bindings/tests/kotlin",
    ] {
        files_with_extension(&ws.root.join(dir), "kt", &mut sources)?;
    }
    Ok(sources)
}

/// android/'s source folders that the Android library (and its sample) is made of; every `.kt` file under them is
/// compiled against android-all. `src/test` is JVM-only (JUnit).
const ANDROID_SOURCE_DIRS: [&str; 3] = [
    "android/src/main/kotlin",
    "android/src/portable/kotlin",
    "android/src/sample/kotlin",
];

/// Compiles every Kotlin file of android/ plus the generated bindings against the real Android framework classes,
/// coroutines-android, JNA and the verifier's classes: any error fails the step. A check, not a build (Gradle on
/// a machine with the Android SDK builds the aar); the jar is kept only to skip an unchanged recompile.
fn compile_android(ws: &Workspace, jvm: &Jvm, paths: &Paths) -> Result<(), String> {
    let mut sources = Vec::new();
    files_with_extension(&paths.kotlin, "kt", &mut sources)?;
    let generated = sources.len();
    for dir in ANDROID_SOURCE_DIRS {
        files_with_extension(&ws.root.join(dir), "kt", &mut sources)?;
    }
    // Every .kt file of android/ must be in one of the compiled folders: none escapes the check.
    let mut everywhere = Vec::new();
    files_with_extension(&ws.root.join("android"), "kt", &mut everywhere)?;
    let stray: Vec<String> = everywhere
        .iter()
        .filter(|p| !sources.contains(p) && !p.starts_with(ws.root.join("android/src/test")))
        .map(|p| p.display().to_string())
        .collect();
    if !stray.is_empty() {
        return Err(format!(
            "Kotlin files outside the compiled source folders ({}): {}",
            ANDROID_SOURCE_DIRS.join(", "),
            stray.join(", ")
        ));
    }
    let verifier = verifier_classes(ws, paths)?;
    let label = format!(
        "android/ ({} files + {generated} generated) against {}, {}, {}{}",
        sources.len() - generated,
        tools::ANDROID_ALL,
        tools::COROUTINES_ANDROID,
        tools::JNA,
        if verifier.is_some() {
            " and rustls-platform-verifier's classes"
        } else {
            ""
        },
    );
    compile_kotlin(
        jvm,
        &jvm.android_classpath(verifier.as_deref())?,
        &sources,
        &paths.android_jar,
        // android-all holds android.* but not java.* (Robolectric runs it on a JDK): java.* comes from the JDK, so a
        // JDK-only API (java.net.http, ...) would not be caught here.
        &["-jvm-target", "17"],
        &label,
    )
}

/// rustls-platform-verifier's Android classes, from the Maven repository folder (`maven/`) its crate
/// `rustls-platform-verifier-android` ships in some releases: group, artifact and version are read from that
/// folder's maven-metadata.xml, and classes.jar is extracted from the aar. `None` when the locked crate ships no such
/// folder (0.2.0 publishes its aar only to the upstream project's own Maven archive, which these machines cannot
/// reach): android/ has no compile-time reference to those classes (Rust calls them through JNI), so the compile
/// check stays complete without them.
fn verifier_classes(ws: &Workspace, paths: &Paths) -> Result<Option<PathBuf>, String> {
    let metadata = cmd::stdout_of(ws.cargo().args([
        "metadata",
        "--format-version",
        "1",
        "--filter-platform",
        "aarch64-linux-android",
        "--offline",
    ]))
    .or_else(|_| {
        cmd::stdout_of(ws.cargo().args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            "aarch64-linux-android",
        ]))
    })?;
    let metadata: serde_json::Value =
        serde_json::from_str(&metadata).map_err(|e| format!("bad cargo metadata: {e}"))?;
    let crate_dir = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "rustls-platform-verifier-android")
        .and_then(|p| p["manifest_path"].as_str())
        .and_then(|m| Path::new(m).parent().map(Path::to_path_buf))
        .ok_or("rustls-platform-verifier-android is not in the Android dependency graph")?;
    let maven = crate_dir.join("maven");
    let mut listings = Vec::new();
    if maven.is_dir() {
        files_with_extension(&maven, "xml", &mut listings)?;
    }
    let Some(listing) = listings
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n == "maven-metadata.xml"))
    else {
        println!(
            "bindings: {} ships no maven/ folder; android/ does not reference the verifier's classes at compile time",
            crate_dir
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        return Ok(None);
    };
    let xml = fs::read_to_string(listing)
        .map_err(|e| format!("cannot read {}: {e}", listing.display()))?;
    let tag = |name: &str| {
        xml.split_once(&format!("<{name}>"))
            .and_then(|(_, rest)| rest.split_once(&format!("</{name}>")))
            .map(|(value, _)| value.trim().to_owned())
            .ok_or_else(|| format!("{} has no <{name}>", listing.display()))
    };
    let (group, artifact) = (tag("groupId")?, tag("artifactId")?);
    let version = tag("release").or_else(|_| tag("version"))?;
    let aar = maven
        .join(group.replace('.', "/"))
        .join(&artifact)
        .join(&version)
        .join(format!("{artifact}-{version}.aar"));
    let jar = paths.out.join(format!("{artifact}-{version}-classes.jar"));
    if !jar.is_file() {
        let bytes =
            cmd::stdout_bytes_of(Command::new("unzip").arg("-p").arg(&aar).arg("classes.jar"))?;
        fs::write(&jar, bytes).map_err(|e| format!("cannot write {}: {e}", jar.display()))?;
    }
    println!(
        "bindings: rustls-platform-verifier classes {group}:{artifact}:{version} from {}",
        aar.display()
    );
    Ok(Some(jar))
}

/// Compiles `sources` into `jar` with kotlinc, unless the same sources, classpath and options were compiled last
/// time (kotlinc takes 30-60 CPU-s a set).
fn compile_kotlin(
    jvm: &Jvm,
    classpath: &OsString,
    sources: &[PathBuf],
    jar: &Path,
    options: &[&str],
    label: &str,
) -> Result<(), String> {
    let mut hasher = DefaultHasher::new();
    jvm.kotlinc.hash(&mut hasher);
    classpath.hash(&mut hasher);
    options.hash(&mut hasher);
    for source in sources {
        source.hash(&mut hasher);
        fs::read(source)
            .map_err(|e| format!("cannot read {}: {e}", source.display()))?
            .hash(&mut hasher);
    }
    let stamp = jar.with_extension("stamp");
    let digest = format!("{:016x}", hasher.finish());
    if jar.is_file() && fs::read_to_string(&stamp).is_ok_and(|s| s == digest) {
        println!("bindings: unchanged since the last compile: {label}");
        return Ok(());
    }
    let started = Instant::now();
    let _ = fs::remove_file(&stamp);
    cmd::run(
        Command::new(&jvm.kotlinc)
            .arg("-nowarn")
            .args(options)
            .arg("-cp")
            .arg(classpath)
            .args(sources)
            .arg("-d")
            .arg(jar),
    )
    .map_err(|e| format!("{e}\n    kotlinc failed to compile {label}"))?;
    fs::write(&stamp, digest).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    println!(
        "bindings: compiled {label} with kotlinc in {}",
        human(started.elapsed())
    );
    Ok(())
}

/// android/'s JUnit 5 tests (android/src/test/kotlin), run by the JUnit platform's console launcher: the plain
/// classes the Android adapters are built on (redirect matching, the started-activity counter, the Keystore
/// store's record format, the link state). No native library is loaded.
fn run_unit_tests(jvm: &Jvm, paths: &Paths) -> Result<(), String> {
    let started = Instant::now();
    cmd::run(
        Command::new("java")
            .arg("-jar")
            .arg(&jvm.junit_console)
            .args([
                "execute",
                "--disable-banner",
                "--disable-ansi-colors",
                "--details=tree",
                "--fail-if-no-tests",
            ])
            .arg("--class-path")
            .arg(jvm.classpath(&[&paths.test_jar])?)
            .arg("--scan-class-path")
            .arg(&paths.test_jar)
            // The host tests (package dev.chartlink.sdk.test) need the sandbox and run next, on their own.
            .args(["--exclude-package", "dev.chartlink.sdk.test"])
            .stdin(Stdio::null()),
    )
    .map_err(|e| format!("{e}\n    android/'s JVM unit tests failed (see the tree above)"))?;
    println!(
        "bindings: android/ JVM unit tests passed in {}",
        human(started.elapsed())
    );
    Ok(())
}

/// The README's Android quickstart is the sample file that `compile_android` compiles: the README must contain it
/// verbatim (between its ```kotlin fence lines).
pub(crate) const ANDROID_SAMPLE: &str =
    "android/src/sample/kotlin/dev/chartlink/sample/Quickstart.kt";

pub(crate) fn check_readme_quickstart(ws: &Workspace) -> Result<(), String> {
    check_readme_block(ws, "kotlin", ANDROID_SAMPLE, "Android")
}

/// The README contains the file `sample` verbatim as a ```` ```language ```` block.
pub(crate) fn check_readme_block(
    ws: &Workspace,
    language: &str,
    sample: &str,
    platform: &str,
) -> Result<(), String> {
    let read = |path: &Path| {
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let text = read(&ws.root.join(sample))?;
    let readme = read(&ws.root.join("README.md"))?;
    if readme.contains(&format!("```{language}\n{text}```\n")) {
        Ok(())
    } else {
        Err(format!(
            "README.md's {platform} quickstart differs from {sample}, which CI compiles: copy the file into \
             the README's ```{language} block"
        ))
    }
}

/// The sandbox, stopped when dropped.
pub(crate) struct Sandbox {
    child: Child,
    pub(crate) base_url: String,
}

impl Sandbox {
    pub(crate) fn start(binary: &Path) -> Result<Self, String> {
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
    let mut hand_written = Vec::new();
    files_with_extension(&ws.root.join("ios"), "swift", &mut hand_written)?;
    // ios/Sources/ChartLinkKit/Generated/ is `cargo xtask swift`'s copy of the generated file (untracked), possibly
    // older than the one just generated: the generated file is checked from target/ only.
    files.extend(
        hand_written
            .into_iter()
            .filter(|f| !f.components().any(|c| c.as_os_str() == "Generated")),
    );
    if generated == 0 || files.len() == generated {
        return Err("no generated or no hand-written Swift found to parse".into());
    }
    let script = paths.out.join("swift_parse.py");
    fs::write(&script, SWIFT_PARSE)
        .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    cmd::run(Command::new(&jvm.python).arg(&script).args(&files))
        .map_err(|_| "a Swift file does not parse (see the lines above)".to_owned())?;
    swift_client_conforms(ws, &files)?;
    swift_records_identifiable(&paths.swift)
}

/// Every generated Swift record with an `id: String` is `Identifiable` (through the generated extensions), and the
/// records are immutable (`let` fields).
fn swift_records_identifiable(generated_dir: &Path) -> Result<(), String> {
    let read =
        |p: &Path| fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let with_id = swift_records_with_id(&read(&generated_dir.join("ChartLinkKit.swift"))?)?;
    let extensions = read(&generated_dir.join(SWIFT_LIST_READS))?;
    let missing: Vec<&String> = with_id
        .iter()
        .filter(|n| !extensions.contains(&format!("extension {n}: Identifiable {{}}")))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{SWIFT_LIST_READS} lacks `extension X: Identifiable {{}}` for {missing:?}"
        ));
    }
    println!(
        "swift: all {} records with an id are Identifiable",
        with_id.len()
    );
    Ok(())
}

/// `ChartLinkClient` (ios/) declares conformance to the generated `ChartLinkProtocol`, so a method added to the
/// FFI without its wrapper there breaks the Swift build. Where no Swift compiler runs, the signatures are compared
/// as text: for every `func` of the protocol the client must declare the same name, parameter labels and
/// types, effects (`async`, `throws`) and return type (default values, which the protocol cannot have, are
/// ignored). A read that became `async` in the FFI but not in the client fails here.
fn swift_client_conforms(ws: &Workspace, files: &[PathBuf]) -> Result<(), String> {
    let read =
        |p: &Path| fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let protocol_text = files
        .iter()
        .map(|f| read(f))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .find_map(|text| {
            let start = text.find("public protocol ChartLinkProtocol")?;
            let body = &text[start..];
            let end = body.find("\n}").unwrap_or(body.len());
            Some(body[..end].to_owned())
        })
        .ok_or("the generated Swift has no ChartLinkProtocol")?;
    let protocol = swift_signatures(&protocol_text);
    // The hand-written client and its generated list reads.
    let mut client_text = read(
        &ws.root
            .join("ios/Sources/ChartLinkKit/ChartLinkClient.swift"),
    )?;
    for f in files.iter().filter(|f| f.ends_with(SWIFT_LIST_READS)) {
        client_text.push_str(&read(f)?);
    }
    let client = swift_signatures(&client_text);
    let wanted: Vec<&String> = protocol.values().flatten().collect();
    let wrong: Vec<String> = protocol
        .iter()
        .flat_map(|(name, sigs)| sigs.iter().map(move |sig| (name, sig)))
        .filter(|(name, sig)| client.get(*name).is_none_or(|have| !have.contains(sig)))
        .map(|(name, sig)| match client.get(name) {
            None => format!("missing: {sig}"),
            Some(found) => format!("{sig} (the client has: {})", found.join(" | ")),
        })
        .collect();
    if wrong.is_empty() {
        println!(
            "swift: ChartLinkClient has all {} methods of ChartLinkProtocol, with the same signatures",
            wanted.len()
        );
        Ok(())
    } else {
        Err(format!(
            "ios/Sources/ChartLinkKit/ChartLinkClient.swift does not match ChartLinkProtocol:\n  {}",
            wrong.join("\n  ")
        ))
    }
}

/// Every `func` declaration in Swift text, normalised: `name(label: Type, ...) async throws -> Ret`, with default
/// values, `public`/`open` and whitespace differences removed. Keyed by name (a name may be overloaded).
fn swift_signatures(text: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for rest in text.split("func ").skip(1) {
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        // The declaration ends at its body or at the end of the line (a protocol requirement).
        let end = rest.find(['{', '\n']).unwrap_or(rest.len());
        let decl = &rest[..end];
        let Some(open) = decl.find('(') else { continue };
        let Some(close) = decl.rfind(')') else {
            continue;
        };
        if close < open {
            continue;
        }
        let params: Vec<String> = decl[open + 1..close]
            .split(',')
            .map(|p| {
                p.split('=')
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .filter(|p| !p.is_empty())
            .collect();
        let effects = decl[close + 1..].replace("->", " -> ");
        let effects = effects.split_whitespace().collect::<Vec<_>>().join(" ");
        let generics = &decl[name.len()..open];
        out.entry(name.clone()).or_default().push(
            format!("{name}{generics}({}) {effects}", params.join(", "))
                .trim_end()
                .to_owned(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{swift_list_reads, swift_signatures};

    #[test]
    fn the_swift_list_reads_forward_every_read_that_takes_a_query() {
        let generated = "public protocol ChartLinkProtocol: AnyObject, Sendable {\n\
            \x20   /**\n\
            \x20    * Implants and other devices (Device).\n\
            \x20    */\n\
            \x20   func devices(query: RecordQuery?) async throws  -> [Device]\n\
            \x20   \n\
            \x20   /**\n\
            \x20    * One test over time.\n\
            \x20    */\n\
            \x20   func labTrend(code: String) async throws  -> LabTrend?\n\
            \x20   \n\
            \x20   func labResults(query: RecordQuery?) async throws  -> [ClinicalObservation]\n\
            \n}\n\
            public struct Device: Equatable {\n    public let id: String\n    public let name: String\n}\n\
            public struct FhirDate: Equatable {\n    public let year: Int32\n}\n";
        let out = swift_list_reads(generated).expect("generated");
        assert!(out.contains(
            "    /**\n     * Implants and other devices (Device).\n     */\n    public func devices(query: RecordQuery? = nil) async throws -> [Device] { try await sdk.devices(query: query) }"
        ), "{out}");
        assert!(out.contains(
            "\n    public func labResults(query: RecordQuery? = nil) async throws -> [ClinicalObservation] { try await sdk.labResults(query: query) }"
        ), "{out}");
        assert!(
            !out.contains("labTrend") && !out.contains("One test"),
            "{out}"
        );
        assert!(
            out.contains("\nextension Device: Identifiable {}\n"),
            "{out}"
        );
        assert!(!out.contains("FhirDate: Identifiable"), "{out}");
        assert_eq!(
            swift_signatures(&out).len(),
            2,
            "the generated reads parse as two methods"
        );
        assert!(swift_list_reads("public protocol ChartLinkProtocol {\n}").is_err());
        let mutable = generated.replace("public let name", "public var name");
        assert!(
            swift_list_reads(&mutable).is_err(),
            "a mutable record is refused"
        );
    }

    #[test]
    fn swift_signatures_ignore_defaults_and_spacing_but_not_effects() {
        let protocol = swift_signatures(
            "    func sync(accountId: String, cancel: CancelToken?) async throws  -> SyncReport\n    func lock() throws \n",
        );
        let client = swift_signatures(
            "public func sync(accountId: String, cancel: CancelToken? = nil) async throws -> SyncReport {\n}\npublic func lock() throws { try sdk.lock() }\n",
        );
        assert_eq!(protocol, client);
        let sync_read = swift_signatures(
            "public func sync(accountId: String, cancel: CancelToken?) throws -> SyncReport {",
        );
        assert_ne!(protocol["sync"], sync_read["sync"]);
    }
}
