//! Child processes, run so that a failure says which command failed and why.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// How many lines of a failed command's stderr an error repeats.
const STDERR_TAIL_LINES: usize = 15;

/// Runs `cmd` with the terminal's stdin/stdout/stderr; fails if it cannot start or exits non-zero.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("could not start `{}`: {e}", display(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", display(cmd)))
    }
}

/// Like [`run`], but also keeps the last lines of stderr (still echoed live) and puts them in the error, so that a
/// failed install explains itself even when its output scrolled away.
pub fn run_keeping_stderr_tail(cmd: &mut Command) -> Result<(), String> {
    let shown = display(cmd);
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
    if let Some(stderr) = child.stderr.take() {
        let mut reader = BufReader::new(stderr);
        let mut line = Vec::new();
        // Reading to the end before `wait` cannot deadlock: stdout is not piped.
        while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            // Echoing is best effort: a closed terminal must not hide the child's exit status.
            let _ = std::io::stderr().write_all(&line);
            if tail.len() == STDERR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(String::from_utf8_lossy(&line).trim_end().to_owned());
            line.clear();
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("could not wait for `{shown}`: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let mut message = format!("`{shown}` failed ({status})");
    if !tail.is_empty() {
        message.push_str("; last lines of its stderr:");
        for line in &tail {
            message.push_str("\n    ");
            message.push_str(line);
        }
    }
    Err(message)
}

/// Runs `cmd` with stdout captured and returns it; stderr goes to the terminal.
pub fn stdout_of(cmd: &mut Command) -> Result<String, String> {
    let output = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not start `{}`: {e}", display(cmd)))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!("`{}` failed ({})", display(cmd), output.status))
    }
}

/// Like [`stdout_of`], for binary output.
pub fn stdout_bytes_of(cmd: &mut Command) -> Result<Vec<u8>, String> {
    let output = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not start `{}`: {e}", display(cmd)))?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(format!("`{}` failed ({})", display(cmd), output.status))
    }
}

/// Whether `cmd` starts and exits zero; its output is discarded. For probes such as `cargo nextest --version`.
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The first executable file called `name` on `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// `cmd` as a shell line a person could paste (program and arguments; env vars set on it are not shown).
pub fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c));
    if plain {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
