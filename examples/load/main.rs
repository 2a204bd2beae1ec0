//! The load and relay benchmark: the real service, built in release mode, against a local
//! fake Slack that enforces Slack's published rate limits and a local fake HelpDesk that
//! streams replies over time, on either store backend.
//!
//! ```text
//! cargo build --release --bins --examples
//! target/release/examples/load --backend redis
//! target/release/examples/load --backend embedded
//! target/release/examples/load --backend redis --only backlog,takeover,replicas
//! ```
//!
//! The service runs with the settings a user gets by default; the tool sets only URLs,
//! secrets, the store and a short shutdown grace. It reports, as Markdown ready for
//! `BENCHMARKS.md`:
//! - **relay**: from a reply's first delta leaving the HelpDesk to the first Slack edit
//!   showing it; edits per message per second; 429s provoked;
//! - **memory**: resident memory idle, and at its peak while 200 tickets stream at once;
//! - **ingress**: signed message events into existing ticket threads at fixed rates and at
//!   saturation: acks per second, ack latency p50/p99/max, refusals;
//! - **backlog** ([`backlog`]): resident memory with 300 000 items waiting in the inbox, and
//!   how fast the inbox drains once the workers are free;
//! - **takeover** ([`replicas`]): two replicas on one store, the one handling a thread's
//!   turn killed with `kill -9`: how soon the other takes the thread over;
//! - **replicas** ([`replicas`]): three replicas of one workspace streaming replies at
//!   once: 429s and the most edits in any minute, against Slack's budget;
//! - **streaming** ([`streaming`]): first visible text on Slack's native streaming, update
//!   pace and fairness of 2, 20 and 200 concurrent replies (and of 2 on the edit path), and
//!   the critical path of a mention and a thread message with both backends answering 4 s
//!   late, on both paths.
//!
//! Every phase but relay and memory has a store of its own ([`Backend::fresh`]), removed
//! afterwards. It is a benchmark, not a test: it prints figures and judges nothing.

mod backlog;
mod bridge;
mod fake_helpdesk;
mod fake_slack;
mod ingress;
mod replicas;
mod streaming;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use bridge::{Backend, Bridge, Setup, Thread};
use clap::Parser;
use fake_helpdesk::{FakeHelpdesk, Shape};
use fake_slack::FakeSlack;

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "Load and relay benchmark of helpdesk-bridge against local fakes")]
struct Options {
    /// The store backend: `redis` or `embedded`.
    #[arg(long, default_value = "redis")]
    backend: String,
    /// The Redis server for the `redis` backend.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// The service binary (default: the release binary beside this example).
    #[arg(long)]
    bridge: Option<PathBuf>,
    /// Fixed ingress rates, events per second.
    #[arg(long, value_delimiter = ',', default_value = "500,1000")]
    rates: Vec<u32>,
    /// Seconds each fixed-rate ingress run lasts.
    #[arg(long, default_value = "30")]
    seconds: u64,
    /// How many times each fixed-rate run is repeated (each on a fresh service).
    #[arg(long, default_value = "3")]
    repeat: usize,
    /// Seconds the saturation run lasts.
    #[arg(long, default_value = "10")]
    saturation_seconds: u64,
    /// Connections sending at once in the saturation run.
    #[arg(long, default_value = "32")]
    connections: usize,
    /// Ticket threads the ingress events go to.
    #[arg(long, default_value = "1000")]
    threads: usize,
    /// Tickets streaming at once in the memory run.
    #[arg(long, default_value = "200")]
    streams: usize,
    /// Replies measured one after another in the relay run, and in the streaming run's
    /// first-text part (0: no such part).
    #[arg(long, default_value = "10")]
    relays: usize,
    /// How long to let the memory run's replies finish in Slack (they wait for Slack's
    /// per-workspace edit budget).
    #[arg(long, default_value = "330")]
    drain_seconds: u64,
    /// Items the backlog run leaves waiting in the inbox.
    #[arg(long, default_value = "300000")]
    backlog: u64,
    /// Ticket threads whose agent turns the backlog run holds open, to keep every worker
    /// busy (at least `DISPATCH_WORKERS`, 256 by default).
    #[arg(long, default_value = "300")]
    hold_threads: usize,
    /// How long the backlog run waits for the inbox to drain, in seconds.
    #[arg(long, default_value = "600")]
    backlog_drain_seconds: u64,
    /// How many `kill -9` take-overs the takeover run measures.
    #[arg(long, default_value = "5")]
    takeovers: usize,
    /// How long after a kill the takeover run waits for the thread's next item, in seconds.
    #[arg(long, default_value = "120")]
    takeover_seconds: u64,
    /// Replicas of one workspace in the replicas run.
    #[arg(long, default_value = "3")]
    replicas: usize,
    /// Tickets that get a message (and stream a reply) at once in the replicas run.
    #[arg(long, default_value = "150")]
    replica_tickets: usize,
    /// The services' `RUST_LOG` (their logs go to the run's folder).
    #[arg(long, default_value = "warn")]
    bridge_log: String,
    /// A setting for the services, `NAME=value` (repeatable). Figures are taken with the
    /// defaults; this is for an older binary's settings (see `BENCHMARKS.md`).
    #[arg(long)]
    bridge_env: Vec<String>,
    /// Concurrent replies in the streaming runs (0: none).
    #[arg(long, value_delimiter = ',', default_value = "2,20,200")]
    concurrent: Vec<usize>,
    /// Concurrent replies in the streaming runs on the edit path, Slack refusing to stream
    /// (0: none).
    #[arg(long, value_delimiter = ',', default_value = "2,20")]
    edit_concurrent: Vec<usize>,
    /// Print, for streaming runs of at most 20 replies, when each reply was updated.
    #[arg(long)]
    timelines: bool,
    /// Mentions (and thread messages) measured on each path in the critical-path runs (0:
    /// no such runs).
    #[arg(long, default_value = "10")]
    critical: usize,
    /// Run only these parts: `relay`, `memory`, `ingress`, `backlog`, `takeover`,
    /// `replicas`, `streaming` (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "relay,memory,ingress,backlog,takeover,replicas,streaming")]
    only: Vec<String>,
}

/// The parts every phase shares.
struct Rig {
    options: Options,
    binary: PathBuf,
    backend: Backend,
    slack: FakeSlack,
    helpdesk: FakeHelpdesk,
    dir: PathBuf,
}

impl Rig {
    /// Starts a service on `backend`; `token` names its workspace (`None`: one of its own).
    async fn start_on(&self, name: &str, backend: &Backend, token: Option<&str>) -> Result<Bridge, String> {
        self.start_as(name, backend, token, &[]).await
    }

    /// Starts a service of its own workspace on `backend` with `settings` (`NAME=value`) as
    /// well, e.g. the default HelpDesk workspace and agent a mention opens tickets with.
    async fn start_with(&self, name: &str, backend: &Backend, settings: &[String]) -> Result<Bridge, String> {
        self.start_as(name, backend, None, settings).await
    }

    async fn start_as(
        &self,
        name: &str,
        backend: &Backend,
        token: Option<&str>,
        settings: &[String],
    ) -> Result<Bridge, String> {
        let env: Vec<String> = settings.iter().chain(&self.options.bridge_env).cloned().collect();
        Bridge::start(Setup {
            binary: &self.binary,
            backend,
            slack_url: &self.slack.url,
            helpdesk_url: &self.helpdesk.url,
            token,
            log: self.dir.join(format!("{name}.log")),
            log_filter: &self.options.bridge_log,
            env: &env,
        })
        .await
    }

    async fn seed_on(
        &self,
        backend: &Backend,
        tag: &str,
        count: usize,
        per_channel: usize,
    ) -> Result<Vec<Thread>, String> {
        bridge::seed(backend, &self.helpdesk.url, tag, count, per_channel).await
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The slowest and the median of some durations.
fn summary(mut values: Vec<Duration>) -> (Duration, Duration) {
    values.sort_unstable();
    let median = values.get(values.len() / 2).copied().unwrap_or_default();
    (median, values.last().copied().unwrap_or_default())
}

/// The most of `times` (oldest first) that fall within any `window`.
fn most_within(times: &[Instant], window: Duration) -> usize {
    let (mut end, mut most) = (0, 0);
    for (start, at) in times.iter().enumerate() {
        while times.get(end).is_some_and(|t| t.duration_since(*at) < window) {
            end += 1;
        }
        most = most.max(end - start);
    }
    most
}

/// The machine's load averages over 1, 5 and 15 minutes (`/proc/loadavg`): other work on
/// the machine shows in latencies, so each table says how busy it was.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Per edited message: the shortest gap between two of its edits and the most edits it got
/// within any one second.
fn edit_pace(updates: &[fake_slack::Call]) -> (Option<Duration>, usize, usize) {
    let mut by_message: HashMap<(&str, &str), Vec<Instant>> = HashMap::new();
    for update in updates {
        by_message.entry((&update.channel, &update.ts)).or_default().push(update.at);
    }
    let shortest = by_message.values().flat_map(|times| times.windows(2).map(|w| w[1].duration_since(w[0]))).min();
    let most_in_a_second =
        by_message.values().map(|times| most_within(times, Duration::from_secs(1))).max().unwrap_or_default();
    (shortest, most_in_a_second, by_message.len())
}

/// Replies measured one at a time on an idle service: first text latency and edit pace.
async fn relay(rig: &Rig, bridge: &Bridge, threads: Vec<Thread>) {
    println!("\n## Relay ({} replies, one every 5 s)\n", threads.len());
    let shape = Shape { chunks: 20, chunk_size: 50, gap: Duration::from_millis(50) };
    rig.helpdesk.set_shape(shape);
    println!("{}\n", shape.describe());
    rig.slack.clear_log();
    let limited_before = limited(&rig.slack);
    for thread in &threads {
        if !ingress::send_one(thread, &bridge.url, &format!("R{}", thread.ticket), 0).await {
            println!("- the event for {} was not acked", thread.ticket);
        }
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let updates = rig.slack.updates();
    let mut latencies = Vec::new();
    for thread in &threads {
        let marker = fake_helpdesk::marker(&thread.ticket);
        let Some(left) = rig.helpdesk.first_delta(&thread.ticket) else {
            println!("- {}: the HelpDesk never streamed", thread.ticket);
            continue;
        };
        match updates.iter().find(|u| u.at >= left && u.body.contains(&marker)) {
            Some(update) => latencies.push(update.at.duration_since(left)),
            None => println!("- {}: no Slack edit showed the first delta", thread.ticket),
        }
    }
    let (median, worst) = summary(latencies.clone());
    let (shortest, most, messages) = edit_pace(&updates);
    let provoked = limited(&rig.slack).saturating_sub(limited_before);
    println!("| what | value |\n|---|---|");
    println!("| first delta → first Slack edit showing it, median | {} |", ms(median));
    println!("| same, slowest of {} | {} |", latencies.len(), ms(worst));
    println!("| edits | {} on {messages} messages |", updates.len());
    println!("| shortest gap between two edits of one message | {} |", shortest.map_or("—".to_owned(), ms));
    println!("| most edits of one message within any 1 s | {most} |");
    println!("| 429s provoked | {provoked} |");
}

/// Resident memory idle, then while `threads.len()` replies stream at once.
async fn memory(rig: &Rig, bridge: &Bridge, threads: Vec<Thread>, idle: u64) {
    let count = threads.len();
    println!("\n## Memory ({count} tickets streaming at once)\n");
    let shape = Shape { chunks: 100, chunk_size: 60, gap: Duration::from_millis(200) };
    rig.helpdesk.set_shape(shape);
    println!("{}\n", shape.describe());
    rig.slack.clear_log();
    rig.helpdesk.take_most_open();
    let calls_before = rig.slack.calls();
    let limited_before = limited(&rig.slack);
    let sends_before = rig.helpdesk.sends();
    let events = Arc::new(ingress::Events::new(threads, &bridge.url, "M"));
    let report = ingress::fixed_rate(events, 1000, Duration::from_secs_f64(count as f64 / 1000.0)).await;
    let started = Instant::now();
    let mut peak = 0;
    // Sample until every reply has been sent and has finished streaming.
    while started.elapsed() < Duration::from_secs(120) {
        peak = peak.max(bridge.rss().unwrap_or_default());
        if rig.helpdesk.sends().saturating_sub(sends_before) >= count && rig.helpdesk.open() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let streamed = started.elapsed();
    let most_open = rig.helpdesk.take_most_open();
    let after_streams = bridge.rss().unwrap_or_default();
    // The replies' last edits and reactions wait for Slack's per-workspace budgets.
    let reactions = |calls: &HashMap<String, u64>| calls.get("reactions.add").copied().unwrap_or_default();
    let drain = Instant::now();
    while drain.elapsed() < Duration::from_secs(rig.options.drain_seconds) {
        if reactions(&rig.slack.calls()).saturating_sub(reactions(&calls_before)) >= count as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let finished = reactions(&rig.slack.calls()).saturating_sub(reactions(&calls_before));
    let drained = drain.elapsed();
    let after_drain = bridge.rss().unwrap_or_default();
    let updates = rig.slack.updates();
    let (shortest, most, messages) = edit_pace(&updates);
    let provoked = limited(&rig.slack).saturating_sub(limited_before);
    println!("| what | value |\n|---|---|");
    println!("| resident memory idle (ready, 2 s after start) | {} |", mib(idle));
    println!("| events acked | {} of {count} |", report.acked);
    println!("| replies streaming at once, at most | {most_open} |");
    println!("| resident memory at its peak while they streamed | {} |", mib(peak));
    println!("| all replies streamed from the HelpDesk within | {:.1} s |", streamed.as_secs_f64());
    println!("| resident memory once they had streamed | {} |", mib(after_streams));
    println!(
        "| turns finished in Slack (last edit and ✅) | {finished} of {count}, {:.0} s later |",
        drained.as_secs_f64()
    );
    println!("| resident memory then | {} |", mib(after_drain));
    println!("| edits | {} on {messages} messages |", updates.len());
    println!("| shortest gap between two edits of one message | {} |", shortest.map_or("—".to_owned(), ms));
    println!("| most edits of one message within any 1 s | {most} |");
    println!("| 429s provoked | {provoked} |");
}

/// One row of an ingress table (see [`INGRESS_HEADER`]).
fn print_ingress(label: &str, report: &ingress::Report, counts: bridge::Counts, limited: u64, rss: u64, depth: u64) {
    let within = if counts.acks == 0 { 0.0 } else { counts.acks_within_2ms as f64 * 100.0 / counts.acks as f64 };
    println!(
        "| {label} | {} | {} | {} | {} | {} | {:.0}/s | {} | {} | {} | {within:.2} % | {} | {} | {depth} | {limited} |",
        report.sent,
        report.acked,
        counts.accepted,
        report.refused,
        report.errors,
        report.rate(),
        ms(report.percentile(50.0)),
        ms(report.percentile(99.0)),
        ms(report.latencies.last().copied().unwrap_or_default()),
        ms(report.worst_lag),
        mib(rss)
    );
}

/// The header of an ingress table (see [`print_ingress`]).
const INGRESS_HEADER: &str = "| run | sent | acked | recorded (bridge's count) | refused (not 200) | no answer | acked/s | p50 | p99 | max | acked within 2 ms (bridge's own timing) | generator lag, worst | RSS after | in the inbox after | 429s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

/// 429s the fake Slack has answered so far.
fn limited(slack: &FakeSlack) -> u64 {
    slack.limited().values().sum()
}

/// Message events into existing ticket threads at fixed rates, then at saturation, each on
/// a fresh service.
async fn ingress_runs(rig: &Rig) -> Result<(), String> {
    let options = &rig.options;
    println!(
        "\n## Ingress ({} s per fixed-rate run, {} s at saturation, {} ticket threads in {} channels, {} backend)\n",
        options.seconds,
        options.saturation_seconds,
        options.threads,
        options.threads.div_ceil(20),
        rig.backend.name()
    );
    println!(
        "Every event is a person's message in a ticket thread: acked once its signature is \
         verified, it is parsed and it is recorded with its dedup mark in the store's inbox, \
         durably; then a worker relays it to the agent at the pace Slack's limits allow. The \
         service runs with its default settings (`INBOX_MAX_ITEMS` 1 000 000); each run has a \
         store of its own. Load average (1, 5, 15 min) at the start: {}.\n",
        load_average()
    );
    println!("{INGRESS_HEADER}");
    let mut runs: Vec<(String, Option<u32>)> = options
        .rates
        .iter()
        .flat_map(|r| std::iter::repeat_n((format!("{r} events/s"), Some(*r)), options.repeat.max(1)))
        .collect();
    runs.push((format!("saturation, {} connections", options.connections), None));
    for (i, (label, rate)) in runs.into_iter().enumerate() {
        let tag = format!("I{i}");
        let backend = rig.backend.fresh(&tag);
        let threads = rig.seed_on(&backend, &tag, options.threads, 20).await?;
        let bridge = rig.start_on(&format!("ingress-{i}"), &backend, None).await?;
        let limited_before = limited(&rig.slack);
        let events = Arc::new(ingress::Events::new(threads, &bridge.url, &tag));
        // Warm the connection pool and the service's caches; not counted.
        let warm = ingress::fixed_rate(events.clone(), 200, Duration::from_secs(1)).await;
        let before = bridge.counts().await;
        if before.accepted != warm.acked {
            println!("- the bridge counted {} of {} warm-up events as recorded", before.accepted, warm.acked);
        }
        let report = match rate {
            Some(rate) => ingress::fixed_rate(events, rate, Duration::from_secs(options.seconds)).await,
            None => {
                let duration = Duration::from_secs(options.saturation_seconds);
                ingress::saturate(events, options.connections, duration, u64::MAX).await
            }
        };
        let rss = bridge.rss().unwrap_or_default();
        let after = bridge.counts().await;
        let depth = bridge.metrics().await.sum(bridge::INBOX_DEPTH, &[]);
        let counts = bridge::Counts {
            accepted: after.accepted.saturating_sub(before.accepted),
            acks: after.acks.saturating_sub(before.acks),
            acks_within_2ms: after.acks_within_2ms.saturating_sub(before.acks_within_2ms),
        };
        print_ingress(&label, &report, counts, limited(&rig.slack).saturating_sub(limited_before), rss, depth);
        bridge.stop().await;
        bridge::purge(&backend).await;
    }
    println!("\nLoad average at the end: {}.", load_average());
    Ok(())
}

async fn run(options: Options) -> Result<(), String> {
    let binary = options.bridge.clone().unwrap_or_else(bridge::default_binary);
    if !binary.is_file() {
        return Err(format!(
            "no service binary at {}; build it with `cargo build --release --bins --examples`",
            binary.display()
        ));
    }
    let dir = std::env::temp_dir().join(format!("helpdesk-bridge-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let backend = match options.backend.as_str() {
        "redis" => Backend::Redis {
            url: options.redis_url.clone(),
            prefix: format!("helpdesk-bridge-load-{}:", std::process::id()),
        },
        "embedded" => Backend::Embedded { dir: dir.join("state") },
        other => return Err(format!("unknown backend {other}; use redis or embedded")),
    };
    let slack = FakeSlack::start().await.map_err(|e| e.to_string())?;
    let shape = Shape { chunks: 3, chunk_size: 40, gap: Duration::ZERO };
    let helpdesk = FakeHelpdesk::start(shape).await.map_err(|e| e.to_string())?;
    let rig = Rig { options, binary, backend, slack, helpdesk, dir };
    println!("# helpdesk-bridge load run\n");
    println!(
        "Binary `{}`, {} store, {} cores, load average {}, logs in `{}`.",
        rig.binary.display(),
        rig.backend.name(),
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        load_average(),
        rig.dir.display()
    );
    let wants = |part: &str| rig.options.only.iter().any(|p| p == part);
    if wants("relay") || wants("memory") {
        let relays = rig.seed_on(&rig.backend, "R", rig.options.relays, 1).await?;
        let streams = rig.seed_on(&rig.backend, "M", rig.options.streams, 1).await?;
        let bridge = rig.start_on("relay-memory", &rig.backend, None).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle = bridge.rss().unwrap_or_default();
        if wants("relay") {
            relay(&rig, &bridge, relays).await;
        }
        if wants("memory") {
            memory(&rig, &bridge, streams, idle).await;
        }
        bridge.stop().await;
    }
    if wants("ingress") {
        ingress_runs(&rig).await?;
    }
    if wants("backlog") {
        backlog::run(&rig).await?;
    }
    if wants("takeover") {
        replicas::takeover(&rig).await?;
    }
    if wants("replicas") {
        replicas::shared_budgets(&rig).await?;
    }
    if wants("streaming") {
        streaming::run(&rig).await?;
    }
    let limited = rig.slack.limited();
    println!("\n## Slack calls over the whole run\n");
    let mut calls: Vec<_> = rig.slack.calls().into_iter().collect();
    calls.sort();
    println!("| method | calls | 429s |\n|---|---|---|");
    for (method, n) in calls {
        println!("| {method} | {n} | {} |", limited.get(&method).copied().unwrap_or_default());
    }
    bridge::purge(&rig.backend).await;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let options = Options::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("load: no runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("load: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
