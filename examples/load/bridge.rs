//! The service under test: its store seeded with ticket threads, the release binary started
//! against the fakes, its resident memory read from `/proc`, and its stop.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use helpdesk_bridge::{
    ids::{AgentId, ChannelId, MessageTs, TeamId, ThreadKey, TicketKey, TicketName, UserId, WorkspaceId},
    model::{TicketRecord, TicketStatus},
    store::Store,
};

use crate::fake_slack::TEAM;

/// The signing secret the bridge is given and the generator signs with.
pub const SECRET: &str = "load-signing-secret";
/// The HelpDesk workspace of every seeded ticket.
pub const WORKSPACE: &str = "5f5f5f5f5f5f5f5f5f5f5f01";
/// The agent of every seeded ticket.
pub const AGENT: &str = "6a6a6a6a6a6a6a6a6a6a6a01";

/// Where the bridge keeps its state.
#[derive(Clone, Debug)]
pub enum Backend {
    /// Redis at this URL, under a key prefix of this run's own.
    Redis { url: String, prefix: String },
    /// The embedded store in this directory.
    Embedded { dir: PathBuf },
}

impl Backend {
    /// A store of its own for one phase, named by `tag`: a longer key prefix on Redis, a
    /// folder beside this one for the embedded store. Each phase starts with an empty inbox,
    /// as the in-memory queue it replaced started empty with every process.
    pub fn fresh(&self, tag: &str) -> Self {
        match self {
            Self::Redis { url, prefix } => Self::Redis { url: url.clone(), prefix: format!("{prefix}{tag}:") },
            Self::Embedded { dir } => Self::Embedded { dir: dir.with_file_name(format!("state-{tag}")) },
        }
    }

    /// Opens the store as the bridge will.
    pub fn open(&self) -> Result<Store, String> {
        match self {
            Self::Redis { url, prefix } => Store::redis(url, prefix),
            Self::Embedded { dir } => Store::embedded(dir),
        }
        .map_err(|e| format!("cannot open the store: {e}"))
    }

    /// `redis` or `embedded`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Redis { .. } => "redis",
            Self::Embedded { .. } => "embedded",
        }
    }
}

/// A thread the generator writes in: a ticket thread once [`seed`]ed.
#[derive(Clone, Debug)]
pub struct Thread {
    /// Its channel.
    pub channel: String,
    /// Its root message, the ticket header.
    pub ts: String,
    /// The ticket's name.
    pub ticket: String,
    /// Who opened it (and writes in it).
    pub requester: String,
}

/// `count` threads, `per_channel` to a channel, named from `tag`; they are ticket threads
/// only once [`seed`]ed.
pub fn threads(tag: &str, count: usize, per_channel: usize) -> Vec<Thread> {
    (0..count)
        .map(|n| Thread {
            channel: format!("C{tag}{:05}", n / per_channel.max(1)),
            ts: format!("1700000000.{n:06}"),
            ticket: format!("{tag}-{n}"),
            requester: format!("U{:03}", n % 50),
        })
        .collect()
}

/// Stores `count` Pending ticket threads, `per_channel` to a channel, named from `tag`, as
/// the bridge stores the tickets it opens.
pub async fn seed(
    backend: &Backend,
    helpdesk_url: &str,
    tag: &str,
    count: usize,
    per_channel: usize,
) -> Result<Vec<Thread>, String> {
    let store = backend.open()?;
    let threads = threads(tag, count, per_channel);
    for (n, thread) in threads.iter().enumerate() {
        let record = TicketRecord {
            thread: ThreadKey {
                team: TeamId::new(TEAM),
                channel: ChannelId::new(&thread.channel),
                thread_ts: MessageTs::new(&thread.ts),
            },
            ticket: TicketKey {
                host: helpdesk_url.to_owned(),
                workspace: WorkspaceId::new(WORKSPACE),
                ticket: TicketName::new(&thread.ticket),
            },
            title: format!("Load ticket {n}"),
            agent_id: AgentId::new(AGENT),
            agent_name: crate::fake_helpdesk::AGENT_NAME.to_owned(),
            agent_streams: None,
            requester: UserId::new(&thread.requester),
            assignee: None,
            status: TicketStatus::Pending,
            header_ts: Some(MessageTs::new(&thread.ts)),
            permalink: Some(format!("https://acme.slack.com/archives/{}/p{n}", thread.channel)),
            participants: vec![UserId::new(&thread.requester)],
            adopted: false,
            always_allow: Vec::new(),
            previous: Vec::new(),
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_000,
        };
        store.create_ticket(&record).await.map_err(|e| format!("cannot seed a ticket: {e}"))?;
    }
    Ok(threads)
}

/// Removes what a phase wrote: its Redis keys, or its embedded store's folder.
pub async fn purge(backend: &Backend) {
    match backend {
        Backend::Redis { .. } => {
            if let Ok(store) = backend.open()
                && let Err(err) = store.purge().await
            {
                eprintln!("load: could not remove this run's Redis keys: {err}");
            }
        }
        Backend::Embedded { dir } => {
            if let Err(err) = std::fs::remove_dir_all(dir)
                && err.kind() != std::io::ErrorKind::NotFound
            {
                eprintln!("load: could not remove {}: {err}", dir.display());
            }
        }
    }
}

/// Counters read from the service's `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Events accepted (recorded in the inbox).
    pub accepted: u64,
    /// Requests acknowledged, as timed by the service.
    pub acks: u64,
    /// Of those, the ones acknowledged within 2 ms of arriving.
    pub acks_within_2ms: u64,
}

/// The gauge of items recorded in the inbox and not finished yet (store-wide).
pub const INBOX_DEPTH: &str = "helpdesk_bridge_inbox_depth";

/// A `/metrics` text in the Prometheus exposition format.
pub struct Metrics(String);

impl Metrics {
    /// The sum of the samples of `name` (every label set) whose line contains each of
    /// `labels`.
    pub fn sum(&self, name: &str, labels: &[&str]) -> u64 {
        self.0
            .lines()
            .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
            .filter(|l| labels.iter().all(|label| l.contains(label)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|n| n as u64)
            .sum()
    }
}

/// The resident memory of process `pid` in bytes (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The highest resident memory of a process, sampled every 100 ms while this lives.
pub struct PeakRss {
    peak: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    /// Starts sampling process `pid`.
    pub fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let sampler = tokio::spawn({
            let peak = peak.clone();
            async move {
                loop {
                    peak.fetch_max(rss_of(pid).unwrap_or_default(), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        Self { peak, sampler }
    }

    /// The highest sample so far, in bytes.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.sampler.abort();
    }
}

/// The running service.
pub struct Bridge {
    child: Child,
    /// Where it listens.
    pub url: String,
    /// Its log.
    pub log: PathBuf,
}

/// The release binary next to this example (`target/release/helpdesk-bridge`).
pub fn default_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/examples/load → target/<profile>/helpdesk-bridge
    exe.parent().and_then(Path::parent).map(|dir| dir.join("helpdesk-bridge")).unwrap_or_default()
}

/// What the bridge is pointed at.
pub struct Setup<'a> {
    /// The binary.
    pub binary: &'a Path,
    /// The store.
    pub backend: &'a Backend,
    /// The fake Slack's URL.
    pub slack_url: &'a str,
    /// The fake HelpDesk's URL.
    pub helpdesk_url: &'a str,
    /// Its bot token, which names its workspace to the fake Slack; `None`: a workspace of
    /// its own. Replicas of one installation share one.
    pub token: Option<&'a str>,
    /// Where its log goes.
    pub log: PathBuf,
    /// Its `RUST_LOG`.
    pub log_filter: &'a str,
    /// More settings, as `NAME=value` (for an older binary that needs its own).
    pub env: &'a [String],
}

impl Bridge {
    /// Starts the binary and waits until `/readyz` says ready.
    pub async fn start(setup: Setup<'_>) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let log =
            std::fs::File::create(&setup.log).map_err(|e| format!("cannot write {}: {e}", setup.log.display()))?;
        let err_log = log.try_clone().map_err(|e| e.to_string())?;
        let mut command = Command::new(setup.binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SLACK_BOT_TOKEN", setup.token.map_or_else(|| format!("xoxb-load-{port}"), str::to_owned))
            .env("SLACK_SIGNING_SECRET", SECRET)
            .env("SLACK_API_URL", setup.slack_url)
            .env("DUPLO_HOST", setup.helpdesk_url)
            .env("DUPLO_TOKEN", "load-token")
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("SHUTDOWN_GRACE_SECONDS", "3")
            .env("RUST_LOG", setup.log_filter)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log);
        match setup.backend {
            Backend::Redis { url, prefix } => command.env("REDIS_URL", url).env("REDIS_KEY_PREFIX", prefix),
            Backend::Embedded { dir } => command.env("STATE_DIR", dir),
        };
        command.envs(setup.env.iter().filter_map(|pair| pair.split_once('=')));
        let child = command.spawn().map_err(|e| format!("cannot start {}: {e}", setup.binary.display()))?;
        let bridge = Self { child, url: format!("http://127.0.0.1:{port}"), log: setup.log };
        let client = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(response) = client.get(format!("{}/readyz", bridge.url)).send().await
                && response.status().is_success()
            {
                return Ok(bridge);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("the bridge did not become ready; see {}", bridge.log.display()))
    }

    /// Its `/metrics` text, empty if it does not answer.
    pub async fn metrics(&self) -> Metrics {
        let text = match reqwest::get(format!("{}/metrics", self.url)).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        Metrics(text)
    }

    /// What its own metrics say so far.
    pub async fn counts(&self) -> Counts {
        let metrics = self.metrics().await;
        Counts {
            accepted: metrics.sum("helpdesk_bridge_requests_total", &["/slack/events", "outcome=\"ok\""]),
            acks: metrics.sum("helpdesk_bridge_ack_seconds_count", &[]),
            acks_within_2ms: metrics.sum("helpdesk_bridge_ack_seconds_bucket", &["le=\"0.002\""]),
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory in bytes (`VmRSS`).
    pub fn rss(&self) -> Option<u64> {
        rss_of(self.pid())
    }

    /// Kills it at once (`SIGKILL`, as `kill -9`): no shutdown, no lease given back.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks it to stop (SIGTERM), waits for its exit and returns how long that took.
    pub async fn stop(mut self) -> Duration {
        let started = Instant::now();
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        while started.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        started.elapsed()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
