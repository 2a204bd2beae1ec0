//! The real binary as a replica: started with an environment of the test's own, stopped as
//! a crash stops it (`kill -9`) or as a deployment does (SIGTERM), started again with the
//! same environment, and read from outside: readiness, `/metrics`, resident memory, log.

use std::{
    fs::OpenOptions,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use super::eventually;

/// How long a replica may take to become ready.
const READY_WITHIN: Duration = Duration::from_secs(20);
/// How long a replica may take to exit after SIGTERM: beyond any grace a test configures.
const EXIT_WITHIN: Duration = Duration::from_secs(30);

/// A running (or stopped) `helpdesk-bridge` process.
pub struct Replica {
    /// A name for messages (`a`, `b`, …).
    pub name: String,
    env: Vec<(String, String)>,
    port: u16,
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

/// Held by a test while its replicas run: such tests start processes that keep both cores
/// busy, so they take turns rather than slow each other past their own time bounds.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for the other replica tests to finish; the guard lets the next one run.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}

/// A free port on the loopback interface (released at once, for the child to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Replica {
    /// Starts the binary with `env` (and nothing else but `PATH` and `LISTEN_ADDR`) and waits
    /// until `/readyz` says ready.
    pub async fn start(name: &str, env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut replica = Self {
            name: name.to_owned(),
            env: env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
            port: free_port(),
            child: None,
            log: dir.path().join("replica.log"),
            _dir: dir,
            http: reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap(),
        };
        replica.spawn();
        replica.wait_ready().await;
        replica
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_helpdesk-bridge"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("LISTEN_ADDR", format!("127.0.0.1:{}", self.port))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(command.spawn().expect("the helpdesk-bridge binary starts"));
    }

    /// Waits until `/readyz` says ready; panics with the log's tail otherwise.
    pub async fn wait_ready(&self) {
        let ready = eventually(READY_WITHIN, || async {
            let response = self.http.get(self.url("/readyz")).send().await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
        assert!(ready.is_some(), "replica {} never became ready; its log ends:\n{}", self.name, self.log_tail(30));
    }

    /// Its base URL, `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The URL of `path` on it.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills it as a crash would (SIGKILL) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks it to stop (SIGTERM) and waits for it to exit.
    pub async fn sigterm(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the replica runs");
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if started.elapsed() > EXIT_WITHIN {
                let _ = child.kill();
                let _ = child.wait();
                panic!("replica {} did not exit within {EXIT_WITHIN:?} of SIGTERM:\n{}", self.name, self.log_tail(30));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts it again with the same environment and port, and waits until it is ready.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "replica {} is still running", self.name);
        self.spawn();
        self.wait_ready().await;
    }

    /// Its resident memory in bytes (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss(&self) -> u64 {
        let pid = self.pid().expect("the replica runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/<pid>/status");
        let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS in kB");
        kib * 1024
    }

    /// What `/metrics` shows now.
    pub async fn metrics(&self) -> String {
        match self.http.get(self.url("/metrics")).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The value of the metric line that starts with `series` (name and labels, exactly).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.metrics().await;
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.split_whitespace().next()?.parse().ok())
    }

    /// The last `lines` lines of its log (every start of it appends to one file).
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill9();
    }
}
