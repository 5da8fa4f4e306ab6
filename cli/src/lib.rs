//! What other programs reuse from the `chartlink` CLI: the desktop key store.

pub mod file_store;

pub use file_store::FileSecureStore;
