//! `cargo xtask size`: builds the mobile library as `android/build-rust.sh` builds it (the size-tuned release
//! profile, `bindings/size-settings.sh`, LTO through `cargo rustc --crate-type cdylib`, packed relocations) for this
//! host, strips it, says what is in it, crate by crate, and fails when it is over the budget.
//!
//! The host's x86_64 library stands in for Android's four: the same code, the same settings, sizes within a few
//! per cent of the arm64 build's. Linux only (it reads the ELF with binutils' `nm` and `strip`).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::{Workspace, cmd};

/// The most the stripped library may weigh, in bytes (MB = 10^6 bytes). A change that passes it must pay for
/// itself elsewhere, or argue for a new budget.
pub const BUDGET: u64 = 5_000_000;

/// How many contributors the report lists.
const TOP: usize = 12;

/// `library`: report on this unstripped library (an earlier build kept for comparison) instead of building.
pub fn run(ws: &Workspace, library: Option<&Path>) -> Result<(), String> {
    if !cfg!(target_os = "linux") {
        return Err("`cargo xtask size` reads an ELF library: run it on Linux".into());
    }
    if let Some(library) = library {
        let stripped = ws.target.join("libchartlink_ffi.report.stripped.so");
        return report(library, &stripped);
    }
    let script = format!(
        "set -euo pipefail; root={root}; source \"$root/bindings/size-settings.sh\"; \
         env \"${{size_env[@]}}\" cargo rustc -p chartlink-ffi --lib --crate-type cdylib --release \
         -- -C link-arg=-Wl,-z,pack-relative-relocs",
        root = shell_quote(&ws.root.display().to_string())
    );
    cmd::run(
        Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(&ws.root),
    )?;
    report(
        &ws.target.join("release/libchartlink_ffi.so"),
        &ws.target.join("release/libchartlink_ffi.stripped.so"),
    )
}

/// Strips `built` into `stripped`, reports both, and checks the budget.
fn report(built: &Path, stripped: &Path) -> Result<(), String> {
    cmd::run(Command::new("strip").arg("-o").arg(stripped).arg(built))?;
    let bytes = std::fs::metadata(stripped)
        .map_err(|e| format!("{}: {e}", stripped.display()))?
        .len();

    let nm = Command::new("nm")
        .args(["--size-sort", "--print-size", "--demangle"])
        .arg(built)
        .output()
        .map_err(|e| format!("could not start `nm`: {e}"))?;
    if !nm.status.success() {
        return Err(format!("`nm {}` failed ({})", built.display(), nm.status));
    }
    let symbols = String::from_utf8_lossy(&nm.stdout);
    let (by_owner, in_symbols) = contributors(&symbols);

    println!("\nThe stripped library: {bytes} bytes (budget {BUDGET}).");
    println!(
        "In named symbols: {in_symbols} bytes of the unstripped library, by crate (a generic function counts for the \
         crate of the type it was built for):"
    );
    let mut rows: Vec<_> = by_owner.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (owner, size) in rows.iter().take(TOP) {
        println!("  {size:>9}  {owner}");
    }
    let rest: u64 = rows.iter().skip(TOP).map(|r| r.1).sum();
    println!("  {rest:>9}  {} others", rows.len().saturating_sub(TOP));
    println!(
        "  (the stripped file's other bytes: unwind tables, string constants, the dynamic symbol and relocation tables)"
    );
    if bytes > BUDGET {
        return Err(format!(
            "the library is {bytes} bytes, over its budget of {BUDGET} by {}",
            bytes - BUDGET
        ));
    }
    Ok(())
}

/// The bytes of every named symbol of `nm --print-size --demangle` output, summed by the crate they belong to, and
/// their total.
fn contributors(nm: &str) -> (HashMap<String, u64>, u64) {
    let mut by_owner: HashMap<String, u64> = HashMap::new();
    let mut total = 0;
    for line in nm.lines() {
        // "<address> <size> <type> <name>"
        let mut parts = line.splitn(4, ' ');
        let (Some(address), Some(size), Some(kind), Some(name)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (Ok(_), Ok(size), 1) = (
            u64::from_str_radix(address, 16),
            u64::from_str_radix(size, 16),
            kind.len(),
        ) else {
            continue;
        };
        total += size;
        *by_owner.entry(owner(name)).or_default() += size;
    }
    (by_owner, total)
}

/// Which crate (or C library) a demangled symbol belongs to. A generic function of std (`drop_in_place<T>`, `<T as
/// Trait>::f`) is charged to the crate of `T`, where the code came from.
fn owner(name: &str) -> String {
    if name.starts_with("UNIFFI_META_") {
        return "uniffi metadata (UNIFFI_META_*)".into();
    }
    if name.starts_with("uniffi_chartlink") || name.starts_with("ffi_chartlink") {
        return "chartlink_ffi".into();
    }
    if name.contains("{{vtable.shim}}") {
        // The body of a closure called through `Box<dyn FnOnce>`: its name no longer says whose.
        return "boxed closures (the FFI's blocking calls, mostly)".into();
    }
    if !name.contains("::") {
        return if name.starts_with("sqlite3") || name.starts_with("sqlite") {
            "SQLite (C)".into()
        } else if name.starts_with("ring_core") {
            "ring".into()
        } else {
            "C and unnamed (SQLite's static functions, ring's assembly, ...)".into()
        };
    }
    let mut rest = name;
    let mut found = None;
    // Peel `<T as Trait>`, `&`, `dyn`, and std's generic wrappers down to the first crate that is not std's.
    for _ in 0..8 {
        rest = rest.trim_start_matches(['<', '&', '(', '[', '*']);
        for prefix in ["mut ", "const ", "dyn ", "unsafe "] {
            rest = rest.strip_prefix(prefix).unwrap_or(rest);
        }
        let krate: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if krate.is_empty() {
            break;
        }
        let after = &rest[krate.len()..];
        if !after.starts_with("::") && !after.starts_with('[') {
            // A type parameter (`<T as http::AnyClone>`): the trait's crate.
            match rest.find(" as ") {
                Some(at) => {
                    rest = &rest[at + 4..];
                    continue;
                }
                None => break,
            }
        }
        if found.is_none() {
            found = Some(krate.clone());
        }
        if !matches!(krate.as_str(), "core" | "alloc" | "std") {
            return krate;
        }
        // Into the first generic argument, if any (`core::ptr::drop_in_place<tokio::...>`).
        match rest.find('<') {
            Some(at) => rest = &rest[at + 1..],
            None => break,
        }
    }
    match found.as_deref() {
        Some("core" | "alloc" | "std") | None => "std (core, alloc, std)".into(),
        Some(other) => other.into(),
    }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_charged_to_the_crate_their_code_came_from() {
        for (symbol, crate_) in [
            (
                "tokio::runtime::task::raw::poll::h46d3f8ec3685ecb2",
                "tokio",
            ),
            (
                "core::ptr::drop_in_place<chartlink_core::sync::Pass>::h1",
                "chartlink_core",
            ),
            (
                "<rustls::msgs::handshake::ClientHelloPayload as rustls::msgs::codec::Codec>::read::h9",
                "rustls",
            ),
            (
                "<&mut serde_json::de::Deserializer<R> as serde_core::de::Deserializer>::f::h1",
                "serde_json",
            ),
            (
                "<core[c1f1a4ba060b9bfa]::cell::once::OnceCell<addr2line[39b0]::line::Lines>>::try_init",
                "addr2line",
            ),
            (
                "core::ops::function::FnOnce::call_once{{vtable.shim}}::h2b",
                "boxed closures (the FFI's blocking calls, mostly)",
            ),
            ("core::fmt::write::h1", "std (core, alloc, std)"),
            ("<T as http::extensions::AnyClone>::clone_box", "http"),
            (
                "<T as alloc::string::ToString>::to_string",
                "std (core, alloc, std)",
            ),
            ("sqlite3VdbeExec", "SQLite (C)"),
            ("ring_core_0_17_14__chacha20_poly1305_seal_avx2", "ring"),
            (
                "UNIFFI_META_CHARTLINK_FFI_METHOD_X",
                "uniffi metadata (UNIFFI_META_*)",
            ),
            (
                "uniffi_chartlink_ffi_fn_method_chartlink_sync",
                "chartlink_ffi",
            ),
        ] {
            assert_eq!(owner(symbol), crate_, "{symbol}");
        }
    }

    #[test]
    fn nm_lines_are_summed_by_owner() {
        let nm = "0000000000001000 0000000000000010 t tokio::a::h1\n\
                  0000000000002000 0000000000000020 T tokio::b::h2\n\
                  0000000000003000 0000000000000100 t sqlite3Select\n\
                  not a symbol line\n";
        let (by_owner, total) = contributors(nm);
        assert_eq!(by_owner["tokio"], 0x30);
        assert_eq!(by_owner["SQLite (C)"], 0x100);
        assert_eq!(total, 0x130);
    }
}
