//! The external tools the tests drive, installed on demand and found again quickly when present.
//!
//! - Debian packages: `chromium` + `chromium-driver` (a real headless browser for the end-to-end OAuth tests) and
//!   `maven` (Maven's client, for the artifacts below).
//! - A Python venv under `<target>/tools/venv`: `fhirclient` (SMART client-py, a second-opinion client against the
//!   sandbox), `requests`, and `tree-sitter` + `tree-sitter-swift` (the only Swift syntax check possible here).
//! - kotlinc from the npm package `kotlin-compiler`, unpacked under `<target>/tools/kotlin-compiler` (its `lib/`
//!   already holds kotlin-stdlib, kotlin-test and kotlinx-coroutines).
//! - `maven` (Debian) and, through it, from Maven Central into `<target>/tools/maven/jars` (local repository
//!   `<target>/tools/maven/repo`): android-all (the Android framework's classes), kotlinx-coroutines-android and
//!   -core-jvm, JNA (which the generated Kotlin loads the Rust library with) and the JUnit 5 console launcher: the classpath android/ is compiled and unit-tested against.
//!
//! - npm's `oidc-provider` (an OpenID Certified authorization server the interop tests put in front of the sandbox's
//!   FHIR API) and `fhirclient` (SMART's client-js): `npm ci` of the pinned `tests/oidc/package-lock.json` into
//!   `tests/oidc/node_modules` (about 30 MB, 46 packages, a few seconds; ignored by git), where the tests' node
//!   scripts import them from. fhirclient's browser-only WebCrypto polyfill (350 MB of React Native) is replaced by a
//!   stub in `tests/oidc/stubs` (its Node entry uses node:crypto).
//!
//! Everything else lives under the target dir, so `cargo clean` removes it; nothing is committed.

use crate::Workspace;
use crate::cmd;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian package, and the file it installs that tells it is there.
const DEBIAN_PACKAGES: [(&str, &str); 3] = [
    ("chromium", "/usr/bin/chromium"),
    ("chromium-driver", "/usr/bin/chromedriver"),
    // Maven's own client fetches the Android compile classpath and JUnit from Maven Central (see MAVEN_ARTIFACTS).
    ("maven", "/usr/bin/mvn"),
];

/// The Android framework's classes (API 36, Android 16), the real jar Robolectric ships: android/ is compiled
/// against it. A compile-time stand-in only: most of its classes need native code to run.
pub const ANDROID_ALL: &str = "org.robolectric:android-all:16-robolectric-13921718";
/// The same coroutines android/build.gradle.kts depends on (`-android` brings `Dispatchers.Main`).
pub const COROUTINES_ANDROID: &str = "org.jetbrains.kotlinx:kotlinx-coroutines-android:1.11.0";
pub const COROUTINES_CORE: &str = "org.jetbrains.kotlinx:kotlinx-coroutines-core-jvm:1.11.0";
/// JNA as android/build.gradle.kts has it (there as `@aar`, whose classes.jar holds the same classes as this jar);
/// 5.17+ has 16 KB-page-aligned native parts.
pub const JNA: &str = "net.java.dev.jna:jna:5.18.1";
/// The JUnit 5 platform's console launcher with the Jupiter API and engine: runs android/'s JVM unit tests.
pub const JUNIT_CONSOLE: &str = "org.junit.platform:junit-platform-console-standalone:6.1.3";
/// Everything `ensure` fetches from Maven Central, as `group:artifact:version[:type]`.
const MAVEN_ARTIFACTS: [&str; 5] = [
    ANDROID_ALL,
    COROUTINES_ANDROID,
    COROUTINES_CORE,
    JNA,
    JUNIT_CONSOLE,
];

/// pip requirement, and the module it provides (imported to tell a working install).
const PYTHON_PACKAGES: [(&str, &str); 4] = [
    ("fhirclient==4.3.2", "fhirclient"),
    ("requests", "requests"),
    ("tree-sitter==0.26.1", "tree_sitter"),
    ("tree-sitter-swift==0.7.4", "tree_sitter_swift"),
];

const KOTLIN_VERSION: &str = "2.4.20";

/// Prints, for each `name==version` or `name` argument, those not installed at that version or whose module
/// does not import. One interpreter start for all of them keeps `cargo xtask tools` fast.
const PYTHON_PROBE: &str = r#"
import importlib, importlib.metadata as md, sys
missing = []
for arg in sys.argv[1:]:
    spec, module = arg.split(" ")
    name, _, version = spec.partition("==")
    try:
        have = md.version(name)
        importlib.import_module(module)
    except Exception:
        missing.append(spec)
        continue
    if version and have != version:
        missing.append(spec)
print(" ".join(missing))
"#;

/// Where the installed tools are; `None` for one that is not installed.
#[derive(Debug)]
pub struct Tools {
    chromium: Option<PathBuf>,
    chromedriver: Option<PathBuf>,
    jna_jar: Option<PathBuf>,
    python: Option<PathBuf>,
    kotlinc: Option<PathBuf>,
    maven_jars: PathBuf,
}

impl Tools {
    /// What is installed now, without installing anything.
    pub fn locate(ws: &Workspace) -> Self {
        let existing = |path: PathBuf| path.is_file().then_some(path);
        Self {
            chromium: existing(PathBuf::from(DEBIAN_PACKAGES[0].1)),
            chromedriver: existing(PathBuf::from(DEBIAN_PACKAGES[1].1)),
            jna_jar: existing(maven_jars_dir(ws).join(maven_file_name(JNA))),
            python: existing(venv_python(ws)),
            kotlinc: existing(kotlinc(ws)),
            maven_jars: maven_jars_dir(ws),
        }
    }

    /// The jar of a `MAVEN_ARTIFACTS` entry, when it has been fetched.
    pub fn maven_jar(&self, coordinates: &str) -> Result<PathBuf, String> {
        let path = self.maven_jars.join(maven_file_name(coordinates));
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "{coordinates} is not fetched ({} is missing); run `cargo xtask tools`",
                path.display()
            ))
        }
    }

    /// The `CHARTLINK_*` variables through which tests find the tools (a test fails when its tool is missing).
    pub fn test_env(&self) -> Vec<(&'static str, &Path)> {
        [
            ("CHARTLINK_CHROMIUM", &self.chromium),
            ("CHARTLINK_CHROMEDRIVER", &self.chromedriver),
            ("CHARTLINK_PYTHON", &self.python),
            ("CHARTLINK_KOTLINC", &self.kotlinc),
            ("CHARTLINK_JNA_JAR", &self.jna_jar),
        ]
        .into_iter()
        .filter_map(|(name, path)| Some((name, path.as_deref()?)))
        .collect()
    }
}

/// Installs whatever is missing, then says where everything is. Fast (well under a second) when nothing is missing.
pub fn ensure(ws: &Workspace) -> Result<Tools, String> {
    let tools_dir = ws.tools_dir();
    fs::create_dir_all(&tools_dir)
        .map_err(|e| format!("cannot create {}: {e}", tools_dir.display()))?;
    let mut installed = ensure_debian_packages()?;
    installed |= ensure_python_venv(ws)?;
    installed |= ensure_kotlinc(ws)?;
    installed |= ensure_maven_artifacts(ws)?;
    installed |= ensure_oidc_provider(ws)?;
    if installed {
        println!("tools: installed what was missing; all tools present");
    } else {
        println!("all tools present");
    }
    Ok(Tools::locate(ws))
}

fn venv_dir(ws: &Workspace) -> PathBuf {
    ws.tools_dir().join("venv")
}

fn venv_python(ws: &Workspace) -> PathBuf {
    venv_dir(ws).join("bin").join("python")
}

fn kotlin_dir(ws: &Workspace) -> PathBuf {
    ws.tools_dir().join("kotlin-compiler")
}

fn kotlinc(ws: &Workspace) -> PathBuf {
    kotlin_dir(ws).join("package/bin/kotlinc-jvm")
}

fn maven_dir(ws: &Workspace) -> PathBuf {
    ws.tools_dir().join("maven")
}

fn maven_jars_dir(ws: &Workspace) -> PathBuf {
    maven_dir(ws).join("jars")
}

/// `group:artifact:version[:type]` -> `artifact-version.type`, the name `mvn dependency:copy` gives the file.
fn maven_file_name(coordinates: &str) -> String {
    let mut parts = coordinates.split(':').skip(1);
    let artifact = parts.next().unwrap_or_default();
    let version = parts.next().unwrap_or_default();
    let kind = parts.next().unwrap_or("jar");
    format!("{artifact}-{version}.{kind}")
}

/// Fetches the missing `MAVEN_ARTIFACTS` from Maven Central with Maven's own client, its local repository under
/// the tools dir (never `~/.m2`). Each file is copied into a staging dir and renamed into place when complete.
/// Returns whether it fetched anything; with every jar present it starts no process at all.
fn ensure_maven_artifacts(ws: &Workspace) -> Result<bool, String> {
    let jars = maven_jars_dir(ws);
    let missing: Vec<&str> = MAVEN_ARTIFACTS
        .iter()
        .copied()
        .filter(|coordinates| !jars.join(maven_file_name(coordinates)).is_file())
        .collect();
    if missing.is_empty() {
        println!(
            "tools: {} Maven Central artifacts present ({})",
            MAVEN_ARTIFACTS.len(),
            jars.display()
        );
        return Ok(false);
    }
    let staging = maven_dir(ws).join("jars.partial");
    let io = |what: &str, path: &Path, e: std::io::Error| {
        format!("cannot {what} {}: {e}", path.display())
    };
    for dir in [&jars, &staging] {
        fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    }
    for coordinates in missing {
        println!("tools: fetching {coordinates} from Maven Central");
        let mut mvn = Command::new("mvn");
        mvn.current_dir(maven_dir(ws))
            .args(["--batch-mode", "--quiet", "-Dstyle.color=never"])
            .arg(format!(
                "-Dmaven.repo.local={}",
                maven_dir(ws).join("repo").display()
            ))
            .arg("dependency:copy")
            .arg(format!("-Dartifact={coordinates}"))
            .arg(format!("-DoutputDirectory={}", staging.display()));
        cmd::run_keeping_stderr_tail(&mut mvn)?;
        let name = maven_file_name(coordinates);
        fs::rename(staging.join(&name), jars.join(&name))
            .map_err(|e| io("move into place", &jars.join(&name), e))?;
    }
    Ok(true)
}

/// `npm ci` in tests/oidc when its node_modules were not installed from the current package-lock.json (a stamp
/// inside node_modules holds the lock they came from). Returns whether it installed anything.
fn ensure_oidc_provider(ws: &Workspace) -> Result<bool, String> {
    let dir = ws.root.join("tests").join("oidc");
    let lock_path = dir.join("package-lock.json");
    let lock =
        fs::read(&lock_path).map_err(|e| format!("cannot read {}: {e}", lock_path.display()))?;
    let modules = dir.join("node_modules");
    let stamp = modules.join(".chartlink-installed-lock.json");
    let installed = modules.join("oidc-provider").join("package.json").is_file()
        && fs::read(&stamp).is_ok_and(|s| s == lock);
    if installed {
        println!("tools: oidc-provider present ({})", modules.display());
        return Ok(false);
    }
    if cmd::find_on_path("npm").is_none() {
        return Err(
            "npm is not installed (the tests need node and npm: see the README's Set up)".into(),
        );
    }
    println!(
        "tools: npm ci in {} (oidc-provider, fhirclient: about 30 MB)",
        dir.display()
    );
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund", "--loglevel=warn"])
        .current_dir(&dir);
    cmd::run_keeping_stderr_tail(&mut npm)?;
    fs::write(&stamp, &lock).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(true)
}

/// Returns whether it installed anything.
fn ensure_debian_packages() -> Result<bool, String> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .filter(|(_, file)| !Path::new(file).exists())
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        let all: Vec<&str> = DEBIAN_PACKAGES.iter().map(|(p, _)| *p).collect();
        println!("tools: Debian packages present ({})", all.join(", "));
        return Ok(false);
    }
    let install_args = ["install", "-y", "--no-install-recommends"];
    let sudo = if is_root()? {
        false
    } else if cmd::find_on_path("sudo").is_some() {
        true
    } else {
        return Err(format!(
            "missing Debian packages ({}) and this user is neither root nor has sudo; as root, run:\n    \
             apt-get update && DEBIAN_FRONTEND=noninteractive apt-get {} {}",
            missing.join(", "),
            install_args.join(" "),
            missing.join(" ")
        ));
    };
    let apt_get = |args: &[&str]| {
        let mut command = if sudo {
            let mut c = Command::new("sudo");
            c.args(["DEBIAN_FRONTEND=noninteractive", "apt-get"]);
            c
        } else {
            let mut c = Command::new("apt-get");
            c.env("DEBIAN_FRONTEND", "noninteractive");
            c
        };
        command.args(args);
        println!("tools: running `{}`", cmd::display(&command));
        cmd::run_keeping_stderr_tail(&mut command)
    };
    println!("tools: installing Debian packages {}", missing.join(" "));
    apt_get(&["update"])?;
    apt_get(&[&install_args[..], &missing[..]].concat())?;
    for (package, file) in DEBIAN_PACKAGES {
        if !Path::new(file).exists() {
            return Err(format!(
                "apt-get installed {package} but {file} is still missing"
            ));
        }
    }
    Ok(true)
}

fn is_root() -> Result<bool, String> {
    Ok(cmd::stdout_of(Command::new("id").arg("-u"))?.trim() == "0")
}

/// Returns whether it installed anything.
fn ensure_python_venv(ws: &Workspace) -> Result<bool, String> {
    let venv = venv_dir(ws);
    let python = venv_python(ws);
    let mut installed = false;
    if !python.is_file() {
        println!("tools: creating Python venv {}", venv.display());
        let mut create = Command::new("python3");
        create.args(["-m", "venv"]).arg(&venv);
        cmd::run_keeping_stderr_tail(&mut create)?;
        installed = true;
    }
    let mut probe = Command::new(&python);
    probe.args(["-c", PYTHON_PROBE]);
    probe.args(PYTHON_PACKAGES.map(|(spec, module)| format!("{spec} {module}")));
    let missing = cmd::stdout_of(&mut probe).map_err(|e| {
        format!(
            "{e}\n    the venv looks broken; remove {} and retry",
            venv.display()
        )
    })?;
    let missing: Vec<&str> = missing.split_whitespace().collect();
    if missing.is_empty() {
        if !installed {
            println!("tools: Python venv present ({})", venv.display());
        }
        return Ok(installed);
    }
    println!(
        "tools: pip installing {} into {}",
        missing.join(" "),
        venv.display()
    );
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "install", "--disable-pip-version-check"])
        .args(&missing);
    cmd::run_keeping_stderr_tail(&mut pip)?;
    Ok(true)
}

/// Returns whether it installed anything. Unpacks into a staging dir that is renamed into place only when complete,
/// so an interrupted install is never mistaken for a working one.
fn ensure_kotlinc(ws: &Workspace) -> Result<bool, String> {
    let dir = kotlin_dir(ws);
    let stamp = dir.join("VERSION");
    let current = fs::read_to_string(&stamp).unwrap_or_default();
    if kotlinc(ws).is_file() && current.trim() == KOTLIN_VERSION {
        println!(
            "tools: kotlinc {KOTLIN_VERSION} present ({})",
            dir.display()
        );
        return Ok(false);
    }
    let io = |what: &str, path: &Path, e: std::io::Error| {
        format!("cannot {what} {}: {e}", path.display())
    };
    let staging = ws.tools_dir().join("kotlin-compiler.partial");
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| io("remove", &staging, e))?;
    }
    fs::create_dir_all(&staging).map_err(|e| io("create", &staging, e))?;

    println!("tools: fetching kotlin-compiler@{KOTLIN_VERSION} with npm pack (about 90 MB)");
    let mut pack = Command::new("npm");
    pack.args([
        "pack",
        "--loglevel=warn",
        &format!("kotlin-compiler@{KOTLIN_VERSION}"),
    ])
    .current_dir(&staging);
    cmd::run_keeping_stderr_tail(&mut pack)?;
    let tarball = fs::read_dir(&staging)
        .map_err(|e| io("read", &staging, e))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "tgz"))
        .ok_or_else(|| format!("npm pack left no .tgz in {}", staging.display()))?;

    println!("tools: unpacking {}", tarball.display());
    let mut untar = Command::new("tar");
    untar.arg("xzf").arg(&tarball).arg("-C").arg(&staging);
    cmd::run_keeping_stderr_tail(&mut untar)?;
    fs::remove_file(&tarball).map_err(|e| io("remove", &tarball, e))?;
    make_executable(&staging.join("package/bin"))?;
    fs::write(staging.join("VERSION"), KOTLIN_VERSION)
        .map_err(|e| io("write", &staging.join("VERSION"), e))?;

    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| io("remove", &dir, e))?;
    }
    fs::rename(&staging, &dir).map_err(|e| io("move into place", &dir, e))?;
    if !kotlinc(ws).is_file() {
        return Err(format!(
            "kotlin-compiler@{KOTLIN_VERSION} unpacked without {}",
            kotlinc(ws).display()
        ));
    }
    Ok(true)
}

/// npm tarballs do not always keep the executable bit of `bin/*`.
#[cfg(unix)]
fn make_executable(bin: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let entries = fs::read_dir(bin).map_err(|e| format!("cannot read {}: {e}", bin.display()))?;
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let metadata =
            fs::metadata(&path).map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
        if metadata.is_file() {
            let mut permissions = metadata.permissions();
            permissions.set_mode(permissions.mode() | 0o755);
            fs::set_permissions(&path, permissions)
                .map_err(|e| format!("cannot chmod {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_executable(_bin: &Path) -> Result<(), String> {
    Ok(())
}
