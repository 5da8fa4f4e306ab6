//! The database's files: private modes, truncation and damage detection, moving a damaged file aside, resets.

use super::*;

/// Creates the database file with mode 0600 (SQLite gives its `-wal` and `-shm` files the mode of the database), and
/// narrows existing files to 0600.
pub(super) fn create_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|e| io(&e))?;
        }
        for p in [
            path.to_owned(),
            sibling(path, "-wal"),
            sibling(path, "-shm"),
        ] {
            if let Ok(m) = std::fs::metadata(&p)
                && m.permissions().mode() & 0o077 != 0
            {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| io(&e))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Whether the database file is shorter than its header says (a copy cut off, a full disk): SQLite itself would only
/// notice when it reads a missing page. Only decided when the header's size is valid and no WAL holds pages.
pub(super) fn is_truncated(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 100];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(meta) = f.metadata() else {
        return false;
    };
    if f.read_exact(&mut header).is_err() || &header[..16] != b"SQLite format 3\0" {
        return false; // empty, or not a database: SQLite answers that itself
    }
    // Pages in a WAL, or a hot rollback journal, are SQLite's to apply first.
    let wal_in_use = ["-wal", "-journal"]
        .iter()
        .any(|s| std::fs::metadata(sibling(path, s)).is_ok_and(|m| m.len() > 0));
    let be32 =
        |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let size_valid = be32(24) == be32(92);
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n => u64::from(n),
    };
    let pages = u64::from(be32(28));
    !wal_in_use && size_valid && meta.len() < pages * page_size
}

/// `path` with `suffix` appended to its file name (`chartlink.db` -> `chartlink.db-wal`).
pub(super) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// The prefix of the moved-aside copies of a damaged database (`chartlink.corrupt-<unix seconds>`).
pub(super) fn aside_prefix(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{stem}.corrupt-")
}

impl Store {
    /// Moves a damaged database aside (kept for a bug report until a purge or reset deletes it).
    pub(super) fn move_aside(path: &Path) -> Result<PathBuf> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let aside = path.with_file_name(format!("{}{stamp}", aside_prefix(path)));
        std::fs::rename(path, &aside).map_err(|e| io(&e))?;
        for p in [sibling(path, "-wal"), sibling(path, "-shm")] {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&e)),
                _ => {}
            }
        }
        let _ = std::fs::remove_file(path.with_extension("rebuild"));
        Ok(aside)
    }

    /// Deletes the moved-aside copies of a damaged database next to `path`. Returns how many were deleted.
    pub fn delete_moved_aside(path: &Path) -> Result<usize> {
        let Some(dir) = path.parent() else {
            return Ok(0);
        };
        let prefix = aside_prefix(path);
        let mut n = 0;
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(&e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io(&e))?;
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
            {
                std::fs::remove_file(entry.path()).map_err(|e| io(&e))?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Deletes the database at `path` with its `-wal`/`-shm` files, its rebuild mark and its moved-aside copies: the
    /// reset of a store that can never be opened again. No connection to it may be open.
    pub fn delete_files(path: &Path) -> Result<()> {
        for p in [
            path.to_owned(),
            sibling(path, "-wal"),
            sibling(path, "-shm"),
            path.with_extension("rebuild"),
        ] {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&e)),
                _ => {}
            }
        }
        Self::delete_moved_aside(path)?;
        Ok(())
    }

    /// SQLite's full integrity check. A damaged file is marked so that the next open rebuilds it.
    pub fn check_integrity(&self) -> Result<bool> {
        let ok: String = self
            .conn()
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .unwrap_or_default();
        if ok != "ok" {
            self.mark_for_rebuild();
            return Ok(false);
        }
        Ok(true)
    }

    pub(super) fn mark_for_rebuild(&self) {
        if let Some(p) = &self.path {
            let _ = std::fs::write(p.with_extension("rebuild"), b"");
        }
    }

    pub(super) fn open_checked(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io(&e))?;
        }
        if path.with_extension("rebuild").exists() {
            return Err(StoreError::Corrupt);
        }
        create_private(path)?;
        if is_truncated(path) {
            return Err(StoreError::Corrupt);
        }
        let conn = Connection::open(path)?;
        // Short waits inside SQLite; `open_with` retries for longer.
        conn.busy_timeout(Duration::from_millis(200))?;
        // A cheap check at open (a damaged header or a file that is not a database fails here); the full
        // integrity check runs at the start of each full-pass sync and marks the file for rebuild at the next open.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })?;
        Self::setup(conn, Some(path.to_owned()))
    }
}
