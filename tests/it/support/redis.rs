//! Redis for tests: the shared server's URL, key prefixes no other test uses, and servers
//! of a test's own that it may stop and restart.

use std::time::Duration;

/// The Redis the tests use.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("hb-test:{:016x}:", rand::random::<u64>())
}

/// A redis-server of this test's own, on a free port, for tests that stop and restart it
/// (the shared server must stay up for the tests running beside them).
pub struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
    /// Where an append-only file keeps the data across restarts, when it should.
    dir: Option<tempfile::TempDir>,
}

impl PrivateRedis {
    /// Starts a server and waits until it accepts connections.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = Self { port, child: None, dir: None };
        server.spawn();
        server
    }

    /// Starts a server that keeps its data in an append-only file, and whose
    /// [`PrivateRedis::stop`] is a graceful shutdown (SIGTERM), as in a maintenance restart:
    /// the restarted server has everything it acknowledged.
    pub fn persistent() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = Self { port, child: None, dir: Some(tempfile::tempdir().unwrap()) };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut args = vec!["--port".to_owned(), self.port.to_string(), "--bind".into(), "127.0.0.1".into()];
        match &self.dir {
            Some(dir) => args.extend(
                ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--dir"]
                    .map(str::to_owned)
                    .into_iter()
                    .chain([dir.path().display().to_string()]),
            ),
            None => args.extend(["--save", "", "--appendonly", "no"].map(str::to_owned)),
        }
        let child = std::process::Command::new("redis-server")
            .args(&args)
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

    /// Stops the server and waits for it to be gone: a kill, as a crash would, or for a
    /// persistent server a graceful shutdown.
    pub fn stop(mut self) -> Self {
        if let Some(mut child) = self.child.take() {
            if self.dir.is_some() {
                let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            } else {
                let _ = child.kill();
            }
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
