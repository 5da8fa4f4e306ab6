//! A [`SecureStore`] for desktops and tests: plaintext files in a private directory. Not for phones (the shells
//! use the Keychain and the Android Keystore); it lives in the CLI, not in the SDK's core.

use std::path::PathBuf;

use chartlink_core::{SecureStore, SecureStoreError};

/// A [`SecureStore`] in a directory of 0600 files: the desktop stand-in for the Keychain. Each key is one file,
/// written to a temporary name and renamed, so a crash never leaves half a token.
#[derive(Debug)]
pub struct FileSecureStore {
    dir: PathBuf,
}

impl FileSecureStore {
    /// Uses (and creates, mode 0700) `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, SecureStoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .map_err(|e| SecureStoreError(format!("cannot create the key directory: {e}")))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        }
        Ok(Self { dir })
    }

    fn path(&self, key: &str) -> PathBuf {
        // Keys are ours (`chartlink/account/<id>`); hex-encode so any key is a safe file name.
        let name: String = key.bytes().map(|b| format!("{b:02x}")).collect();
        self.dir.join(name)
    }
}

fn io(e: std::io::Error) -> SecureStoreError {
    SecureStoreError(e.kind().to_string())
}

impl SecureStore for FileSecureStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SecureStoreError> {
        match std::fs::read(self.path(key)) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), SecureStoreError> {
        use std::io::Write;
        use std::sync::atomic::{AtomicU64, Ordering};
        // A temporary name of its own per write (process id and a counter): two processes, or two threads, writing
        // the same key never share, truncate or rename away each other's temporary file. The rename is atomic, so
        // a reader sees the old value or the new one, and the last writer wins.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let path = self.path(key);
        let tmp = path.with_extension(format!(
            "{}-{}.tmp",
            std::process::id(),
            WRITES.fetch_add(1, Ordering::Relaxed)
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let written = (|| {
            let mut f = options.open(&tmp)?;
            f.write_all(value)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            // The rename itself is durable once the directory is synced.
            #[cfg(unix)]
            std::fs::File::open(&self.dir)?.sync_all()?;
            Ok(())
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(io)
    }

    fn delete(&self, key: &str) -> Result<(), SecureStoreError> {
        match std::fs::remove_file(self.path(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        }
    }

    fn keys(&self, prefix: &str) -> Result<Vec<String>, SecureStoreError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            // Every name we write is ASCII hex; a name that is not UTF-8 is not ours and cannot be read as a key.
            let name = entry.map_err(io)?.file_name();
            let Some(name) = name.to_str() else {
                return Err(SecureStoreError(
                    "the key directory holds a file whose name is not UTF-8 (not a ChartLink key)"
                        .into(),
                ));
            };
            if name.len() % 2 != 0 || name.contains('.') || !name.is_ascii() {
                continue;
            }
            let bytes: Option<Vec<u8>> = (0..name.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&name[i..i + 2], 16).ok())
                .collect();
            if let Some(key) = bytes.and_then(|b| String::from_utf8(b).ok())
                && key.starts_with(prefix)
            {
                out.push(key);
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn exercise(store: &dyn SecureStore) {
        assert_eq!(store.get("chartlink/a/1").expect("get"), None);
        store.put("chartlink/a/1", b"one").expect("put");
        store.put("chartlink/b/2", b"two").expect("put");
        let mut keys = store.keys("chartlink/a/").expect("keys");
        keys.sort();
        assert_eq!(keys, ["chartlink/a/1"]);
        store.put("chartlink/a/1", b"uno").expect("put");
        assert_eq!(
            store.get("chartlink/a/1").expect("get").as_deref(),
            Some(&b"uno"[..])
        );
        store.delete("chartlink/a/1").expect("delete");
        store.delete("chartlink/a/1").expect("delete twice");
        assert_eq!(store.get("chartlink/a/1").expect("get"), None);
    }

    #[test]
    fn file_store_behaves_and_is_private() {
        let dir = std::env::temp_dir().join(format!("cl-secure-{}", std::process::id()));
        let store = FileSecureStore::new(&dir).expect("store");
        exercise(&store);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let f = std::fs::read_dir(&dir)
                .expect("dir")
                .next()
                .expect("a file")
                .expect("entry");
            assert_eq!(
                f.metadata().expect("meta").permissions().mode() & 0o777,
                0o600
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Two writers of one key at once (two CLI runs refreshing one account) never fail and never leave a torn or
    /// temporary file: every read sees one whole value.
    #[test]
    fn concurrent_writers_of_one_key_never_fail_or_tear() {
        let dir = std::env::temp_dir().join(format!("cl-secure-race-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = std::sync::Arc::new(FileSecureStore::new(&dir).expect("store"));
        let values: Vec<Vec<u8>> = (0..4u8).map(|i| vec![b'a' + i; 4096]).collect();
        let writers: Vec<_> = values
            .iter()
            .cloned()
            .map(|v| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        store
                            .put("chartlink/account/x", &v)
                            .expect("a write failed");
                    }
                })
            })
            .collect();
        for _ in 0..200 {
            if let Some(seen) = store.get("chartlink/account/x").expect("get") {
                assert!(
                    values.contains(&seen),
                    "a torn value of {} bytes",
                    seen.len()
                );
            }
        }
        for w in writers {
            w.join().expect("writer");
        }
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "temporary files left: {names:?}");
        assert_eq!(
            store.keys("chartlink/").expect("keys"),
            ["chartlink/account/x"]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn a_file_name_that_is_not_utf8_is_an_error_not_a_panic() {
        use std::os::unix::ffi::OsStrExt;
        let dir = std::env::temp_dir().join(format!("cl-secure-utf8-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = FileSecureStore::new(&dir).expect("store");
        store.put("chartlink/a/1", b"one").expect("put");
        std::fs::write(
            dir.join(std::ffi::OsStr::from_bytes(b"\xff\xfe\xfd\xfc")),
            b"x",
        )
        .expect("stray file");
        let err = store.keys("chartlink/").expect_err("an error");
        assert!(err.0.contains("not UTF-8"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Through the SDK: a stray file in the key directory is a typed error at start, not a panic.
    #[cfg(unix)]
    #[test]
    fn the_sdk_answers_a_stray_key_file_with_a_typed_error() {
        use std::os::unix::ffi::OsStrExt;
        let dir = std::env::temp_dir().join(format!("cl-secure-sdk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = FileSecureStore::new(&dir).expect("store");
        std::fs::write(dir.join(std::ffi::OsStr::from_bytes(b"\xff\xfe")), b"x")
            .expect("stray file");
        let host = chartlink_core::Host::new(std::sync::Arc::new(store));
        let err = chartlink_core::ChartLink::new(
            chartlink_core::AppConfig::new("chartlink-demo", "http://127.0.0.1/callback"),
            host,
        )
        .expect_err("an error");
        assert!(
            matches!(&err, chartlink_core::Error::Storage(f)
                if f.kind == chartlink_core::StorageKind::SecureStore && f.message.contains("not UTF-8")),
            "{err:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
