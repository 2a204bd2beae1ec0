//! Stores under test on both backends, each cleaned up when dropped.

use helpdesk_bridge::store::Store;

use super::redis::{redis_url, unique_prefix};

/// A store under test and what keeps it alive; Redis keys are purged when dropped.
pub struct TestStore {
    /// The store.
    pub store: Store,
    /// Keeps the embedded store's folder alive as long as the store.
    pub _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    /// A Redis store under a fresh prefix. Fails loudly when no Redis answers.
    pub async fn redis() -> Self {
        let store = Store::redis(&redis_url(), &unique_prefix()).expect("valid REDIS_URL");
        if let Err(err) = store.ping().await {
            panic!(
                "no Redis answers at {} ({err}). Start one with `redis-server --daemonize yes` \
                 or point REDIS_URL at one.",
                redis_url()
            );
        }
        Self { store, _dir: None }
    }

    /// An embedded store in a fresh temporary folder.
    pub fn embedded() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::embedded(dir.path()).expect("embedded store opens");
        Self { store, _dir: Some(dir) }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        purge_on_drop(&self.store);
    }
}

/// Purges a Redis store's keys (an embedded store's folder goes with its owner), on a fresh
/// runtime: the test's runtime may already be shutting down when its store is dropped.
pub fn purge_on_drop(store: &Store) {
    if store.kind() == "redis" {
        let store = store.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().map(|rt| rt.block_on(store.purge()))
        })
        .join();
    }
}
