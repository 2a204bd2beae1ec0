//! Shared test support: stores on both backends, signing, polling.

use std::{future::Future, time::Duration};

use helpdesk_bridge::store::Store;

/// The Redis the tests use.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("hb-test:{:016x}:", rand::random::<u64>())
}

/// A store under test and what keeps it alive; Redis keys are purged when dropped.
pub struct TestStore {
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
        if self.store.kind() == "redis" {
            let store = self.store.clone();
            // Purge on a fresh runtime: the test's runtime may already be shutting down.
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread().enable_all().build().map(|rt| rt.block_on(store.purge()))
            })
            .join();
        }
    }
}

/// Polls `check` until it returns `Some`, for at most `patience`.
pub async fn eventually<T, F, Fut>(patience: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A redis-server of this test's own, on a free port, for tests that stop and restart it
/// (the shared server must stay up for the tests running beside them).
pub struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    /// Starts a server and waits until it accepts connections.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = Self { port, child: None };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("private redis-server did not start on port {}", self.port);
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would) and waits for it to be gone.
    pub fn stop(mut self) -> Self {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self
    }

    /// Starts it again on the same port.
    pub fn restart(mut self) -> Self {
        self.spawn();
        self
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
