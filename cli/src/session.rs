//! Where the CLI keeps things: the platform's data directory (or `--data-dir`), the encrypted database there, the
//! store key and tokens in 0600 files (the desktop stand-in for the Keychain), and a small session file with the
//! active patient and the idle lock's state, since each command is a new process.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The portal's web timeout, which desktop hosts follow.
pub const DESKTOP_IDLE_MS: i64 = 20 * 60 * 1000;

/// The platform's data directory for ChartLink: `$XDG_DATA_HOME/chartlink` or `~/.local/share/chartlink` on Linux,
/// `~/Library/Application Support/chartlink` on macOS, `%APPDATA%\chartlink` on Windows.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CHARTLINK_DATA_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    if cfg!(target_os = "macos") {
        home.join("Library/Application Support/chartlink")
    } else if cfg!(windows) {
        std::env::var_os("APPDATA")
            .map(PathBuf::from)
            .unwrap_or(home)
            .join("chartlink")
    } else {
        std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".local/share"))
            .join("chartlink")
    }
}

/// What survives between commands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Session {
    pub client_id: Option<String>,
    pub active_patient: Option<String>,
    pub last_activity_ms: i64,
    pub locked: bool,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Session {
    fn path(dir: &Path) -> PathBuf {
        dir.join("session.json")
    }

    /// Reads the session (a missing or damaged file is a fresh session).
    pub fn load(dir: &Path) -> Self {
        std::fs::read(Self::path(dir))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Writes the session.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        // A temporary file of this process's own: two CLI runs saving at once never rename away each other's file
        // (which failed one of them with "entity not found"); the last rename wins, whole.
        let tmp = Self::path(dir).with_extension(format!("{}.tmp", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, Self::path(dir)).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }

    /// Whether the idle lock holds: locked explicitly, or idle longer than the desktop timeout (a clock set back
    /// counts as activity now, not as more time).
    pub fn is_locked(&self, now: i64) -> bool {
        self.locked || (self.last_activity_ms > 0 && now - self.last_activity_ms >= DESKTOP_IDLE_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_for_twenty_minutes_locks() {
        let s = Session {
            last_activity_ms: 1_000,
            ..Session::default()
        };
        assert!(!s.is_locked(1_000 + DESKTOP_IDLE_MS - 1));
        assert!(s.is_locked(1_000 + DESKTOP_IDLE_MS));
        assert!(
            Session {
                locked: true,
                ..Session::default()
            }
            .is_locked(0)
        );
        assert!(
            !Session::default().is_locked(now_ms()),
            "a fresh session is open"
        );
    }

    #[test]
    fn sessions_round_trip_and_tolerate_damage() {
        let dir = std::env::temp_dir().join(format!("cl-cli-session-{}", std::process::id()));
        let s = Session {
            active_patient: Some("a".into()),
            last_activity_ms: 5,
            ..Session::default()
        };
        s.save(&dir).expect("save");
        assert_eq!(Session::load(&dir).active_patient.as_deref(), Some("a"));
        std::fs::write(dir.join("session.json"), b"{broken").expect("write");
        assert_eq!(Session::load(&dir).active_patient, None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
