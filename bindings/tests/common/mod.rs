//! Host capabilities written the way a shell writes them, shared by the FFI's Rust tests: a secure store in memory
//! and a portal browser that completes the sandbox's pages.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::sync::Mutex;

use chartlink_ffi::{AuthBrowser, BrowserError, SecureStore, SecureStoreError};
use chartlink_sandbox::PortalRobot;

#[derive(Default)]
pub struct Store(pub Mutex<BTreeMap<String, Vec<u8>>>);

impl SecureStore for Store {
    fn get(&self, key: String) -> Result<Option<Vec<u8>>, SecureStoreError> {
        Ok(self.0.lock().unwrap().get(&key).cloned())
    }
    fn put(&self, key: String, value: Vec<u8>) -> Result<(), SecureStoreError> {
        self.0.lock().unwrap().insert(key, value);
        Ok(())
    }
    fn delete(&self, key: String) -> Result<(), SecureStoreError> {
        self.0.lock().unwrap().remove(&key);
        Ok(())
    }
    fn keys(&self, prefix: String) -> Result<Vec<String>, SecureStoreError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect())
    }
}

pub struct Portal(pub PortalRobot);

#[async_trait::async_trait]
impl AuthBrowser for Portal {
    async fn authorize(&self, url: String, _redirect_uri: String) -> Result<String, BrowserError> {
        self.0
            .authorize(&url)
            .await
            .map_err(|e| BrowserError::Failed {
                reason: e.to_string(),
            })
    }
}
