//! One refresh per grant at a time, across every process and every SDK instance that shares it.
//!
//! Two app processes on one data directory (two CLI runs, an Android job beside the app's own client, an iOS app and
//! its extension, a restored copy) hold the same rotating refresh token. If both spend it, a strict provider takes
//! the second use for a stolen token and ends the grant (RFC 9700 §4.14.2; oidc-provider does exactly that). So a
//! refresh first takes an exclusive lock file in the data directory (`locks/refresh-<account>.lock`, an advisory
//! `flock` that the OS releases when the process dies, so a crash never leaves it held), and in this process an
//! async mutex per account (so that in-memory SDKs sharing a secure store in one process are serialised too, and a
//! waiting task never blocks a runtime thread). The caller then reads the tokens again: the one that waited uses the
//! rotated token the other stored.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::error::{Error, NetworkKind, Result, StorageKind};

/// How long a refresh waits for another process's refresh before giving up (transiently): longer than one token
/// request can take with its timeouts.
const WAIT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(20);

/// Held while a refresh runs; dropping it releases both locks.
#[derive(Debug)]
pub(super) struct RefreshLock {
    _file: Option<File>,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

fn local(account: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let mut map = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    // Forget the locks nobody holds or waits for (only the map refers to them), so the map stays small.
    map.retain(|_, m| Arc::strong_count(m) > 1);
    map.entry(account.to_owned()).or_default().clone()
}

/// Takes the refresh lock of `account` (a file in `dir` when there is one).
pub(super) async fn acquire(dir: Option<&Path>, account: &str) -> Result<RefreshLock> {
    let local = local(account).lock_owned().await;
    let file = match dir {
        Some(dir) => Some(lock_file(dir, account).await?),
        None => None,
    };
    Ok(RefreshLock {
        _file: file,
        _local: local,
    })
}

async fn lock_file(dir: &Path, account: &str) -> Result<File> {
    let locks = dir.join("locks");
    let io = |e: std::io::Error| {
        let kind = if e.kind() == std::io::ErrorKind::StorageFull {
            StorageKind::Full
        } else {
            StorageKind::Other
        };
        Error::storage(kind, format!("the refresh lock: {}", e.kind()))
    };
    std::fs::create_dir_all(&locks).map_err(io)?;
    // The account id is ours (hex); anything else is kept out of the file name.
    let name: String = account
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(64)
        .collect();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(locks.join(format!("refresh-{name}.lock")))
        .map_err(io)?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if started.elapsed() < WAIT => {
                tokio::time::sleep(POLL).await;
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Error::network(
                    NetworkKind::TimedOut,
                    "another process has been renewing access for too long; try again",
                ));
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_second_holder_waits_for_the_first_even_through_another_file_handle() {
        let dir = std::env::temp_dir().join(format!("cl-refresh-lock-{}", std::process::id()));
        let first = lock_file(&dir, "abc").await.unwrap();
        // A second open file description (as another process has) cannot take it while the first holds it.
        let other = OpenOptions::new()
            .write(true)
            .open(dir.join("locks/refresh-abc.lock"))
            .unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        let waiter = tokio::spawn({
            let dir = dir.clone();
            async move { lock_file(&dir, "abc").await.map(|_| Instant::now()) }
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        let released = Instant::now();
        drop(first);
        let got = waiter.await.unwrap().unwrap();
        assert!(got >= released, "the waiter got the lock while it was held");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
