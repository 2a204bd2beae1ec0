//! Native streaming and the critical path (issue #17): how soon a reply's first text is
//! visible, how often each of many concurrent replies is updated and how fairly, and how long
//! a mention and a thread message take to show their reply when Slack and the HelpDesk are
//! slow.
//!
//! Every run starts a fresh service with the settings a user gets; the fake Slack either
//! streams natively (the default path) or refuses the stream methods, as a workspace without
//! them does, and the service falls back to editing a placeholder. Each seeded thread has a
//! channel of its own, so a reply's Slack calls are told apart by channel.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    Rig,
    bridge::{Bridge, Thread},
    fake_helpdesk::{self, AGENT_NAME, Shape, WORKSPACE_NAME},
    fake_slack::{Call, FakeSlack},
    ingress, limited, load_average, ms, secs, summary,
};

/// How late the slow backends answer, in the critical-path runs.
const LATE: Duration = Duration::from_secs(4);
/// The bound for a mention's first reply text, with both backends [`LATE`].
const MENTION_BOUND: Duration = Duration::from_secs(14);
/// The bound for a thread message's first reply text.
const THREAD_BOUND: Duration = Duration::from_secs(9);
/// The time between two critical-path turns: long enough for Slack's budgets to refill
/// between them (a turn takes a stream start and a stop, Tier 2: 20 a minute; or about
/// three edits, Tier 3: 50 a minute), so that each turn measures latency, not a queue.
const TURN_SPACING: Duration = Duration::from_secs(5);

/// Which way replies reach Slack.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    /// Slack streams natively.
    Native,
    /// Slack refuses the stream methods: placeholder and edits.
    Edits,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Self::Native => "native streaming",
            Self::Edits => "placeholder and edits (Slack refuses streaming)",
        }
    }

    /// Points the fake Slack this way.
    fn apply(self, slack: &FakeSlack) {
        slack.refuse_streaming(self == Self::Edits);
    }
}

/// What one reply looked like in Slack.
struct Reply {
    /// Whether it was streamed natively (a `chat.startStream` was let through).
    native: bool,
    /// When the HelpDesk sent its first delta and its end.
    first_delta: Instant,
    done: Instant,
    /// When the first update showing the first delta arrived.
    first_text: Option<Instant>,
    /// Its updates (edits, or stream starts, appends and stops), oldest first.
    updates: Vec<Instant>,
}

impl Reply {
    /// The longest wait for an update while the agent was writing: between the first delta,
    /// the updates before the HelpDesk's end, and that end.
    fn longest_gap(&self) -> Duration {
        let during = self.updates.iter().filter(|at| **at > self.first_delta && **at < self.done);
        let points: Vec<Instant> =
            std::iter::once(self.first_delta).chain(during.copied()).chain(std::iter::once(self.done)).collect();
        points.windows(2).map(|w| w[1].duration_since(w[0])).max().unwrap_or_default()
    }

    /// From the HelpDesk's end to the update that showed the whole reply (the last one).
    fn finish_lag(&self) -> Duration {
        self.updates.last().map_or(Duration::ZERO, |last| last.saturating_duration_since(self.done))
    }

    /// When it was updated, in seconds after the first delta, and when the HelpDesk ended it.
    fn timeline(&self) -> String {
        let since = |at: &Instant| format!("{:.2}", at.saturating_duration_since(self.first_delta).as_secs_f64());
        let updates: Vec<String> = self.updates.iter().map(since).collect();
        format!(
            "{} reply, done at {} s, longest gap {}: {}",
            if self.native { "streamed" } else { "edited" },
            since(&self.done),
            secs(self.longest_gap()),
            updates.join(" ")
        )
    }

    /// Updates a second while the HelpDesk streamed it.
    fn rate(&self) -> f64 {
        let during = self.updates.iter().filter(|at| **at >= self.first_delta && **at <= self.done).count();
        during as f64 / self.done.duration_since(self.first_delta).as_secs_f64().max(1e-3)
    }
}

/// The replies in `threads` as the fakes logged them since `since`.
fn replies(
    slack: &FakeSlack,
    helpdesk: &fake_helpdesk::FakeHelpdesk,
    threads: &[Thread],
    since: Instant,
) -> Vec<Reply> {
    let log: Vec<Call> = slack.log().into_iter().filter(|c| c.at >= since).collect();
    let mut by_channel: HashMap<&str, Vec<&Call>> = HashMap::new();
    for call in &log {
        by_channel.entry(call.channel.as_str()).or_default().push(call);
    }
    threads
        .iter()
        .filter_map(|thread| {
            let first_delta = helpdesk.first_delta(&thread.ticket)?;
            let done = helpdesk.done(&thread.ticket)?;
            let calls = by_channel.remove(thread.channel.as_str()).unwrap_or_default();
            // Edits of the ticket's header are not the reply's.
            let updates: Vec<&Call> = calls
                .into_iter()
                .filter(|c| crate::fake_slack::UPDATES.contains(&c.method.as_str()) && c.ts != thread.ts)
                .collect();
            let marker = fake_helpdesk::marker(&thread.ticket);
            Some(Reply {
                native: updates.iter().any(|c| c.method == "chat.startStream"),
                first_delta,
                done,
                first_text: updates.iter().find(|c| c.body.contains(&marker)).map(|c| c.at),
                updates: updates.iter().map(|c| c.at).collect(),
            })
        })
        .collect()
}

/// One table row for `replies`: how many, first-text latency, update rate, longest gaps
/// and their ratio.
fn row(label: &str, replies: &[&Reply]) -> String {
    if replies.is_empty() {
        return format!("| {label} | 0 | — | — | — | — | — | — |");
    }
    let latencies: Vec<Duration> =
        replies.iter().filter_map(|r| r.first_text.map(|at| at.saturating_duration_since(r.first_delta))).collect();
    let (latency, slowest) = summary(latencies);
    let mut rates: Vec<f64> = replies.iter().map(|r| r.rate()).collect();
    rates.sort_by(f64::total_cmp);
    let gaps: Vec<Duration> = replies.iter().map(|r| r.longest_gap()).collect();
    let (shortest_gap, longest_gap) =
        (gaps.iter().min().copied().unwrap_or_default(), gaps.iter().max().copied().unwrap_or_default());
    let (finish, slowest_finish) = summary(replies.iter().map(|r| r.finish_lag()).collect());
    format!(
        "| {label} | {} | {} / {} | {:.2} ({:.2}–{:.2}) | {} – {} | **{:.2}** | {} / {} |",
        replies.len(),
        ms(latency),
        ms(slowest),
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1],
        secs(shortest_gap),
        secs(longest_gap),
        longest_gap.as_secs_f64() / shortest_gap.as_secs_f64().max(1e-3),
        secs(finish),
        secs(slowest_finish)
    )
}

/// The header of [`row`]'s table.
const HEADER: &str = "| replies | how many | first text after the first delta, median / slowest | updates per reply per second while the agent streamed, median (range) | longest gap between updates while the agent wrote, least – most | fairness (most / least longest gap) | whole reply shown after the agent's end, median / slowest |\n|---|---|---|---|---|---|---|";

/// Waits until `ready` says yes or `limit` passes; whether it said yes.
async fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if ready() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ready()
}

/// Starts a fresh service for one run named `tag`, with `threads` ticket threads seeded.
async fn fresh(rig: &Rig, tag: &str, threads: usize) -> Result<(crate::bridge::Backend, Vec<Thread>, Bridge), String> {
    let backend = rig.backend.fresh(tag);
    let seeded = rig.seed_on(&backend, tag, threads, 1).await?;
    let bridge = rig.start_on(&format!("streaming-{tag}"), &backend, None).await?;
    // Let the start-up warm-up (the streaming probe among it) finish and the budgets fill.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok((backend, seeded, bridge))
}

/// `count` replies streaming at once on `path`: first text, update pace and fairness.
async fn concurrent(rig: &Rig, count: usize, path: Path, run: usize) -> Result<(), String> {
    let tag = format!("S{count}{}{run}", if path == Path::Native { "n" } else { "e" });
    path.apply(&rig.slack);
    let (backend, threads, bridge) = fresh(rig, &tag, count).await?;
    let limited_before = limited(&rig.slack);
    let sends_before = rig.helpdesk.sends();
    let reactions_before = rig.slack.calls_of("reactions.add").len();
    let since = Instant::now();
    let events = Arc::new(ingress::Events::new(threads.clone(), &bridge.url, &tag));
    let report = ingress::fixed_rate(events, 1000, Duration::from_secs_f64(count as f64 / 1000.0)).await;
    let streamed = wait_until(Duration::from_secs(120), || {
        rig.helpdesk.sends().saturating_sub(sends_before) >= count && rig.helpdesk.open() == 0
    })
    .await;
    let finished = wait_until(Duration::from_secs(rig.options.drain_seconds), || {
        rig.slack.calls_of("reactions.add").len().saturating_sub(reactions_before) >= count
    })
    .await;
    let took = since.elapsed();
    let all = replies(&rig.slack, &rig.helpdesk, &threads, since);
    let provoked = limited(&rig.slack).saturating_sub(limited_before);
    bridge.stop().await;
    crate::bridge::purge(&backend).await;
    Path::Native.apply(&rig.slack);
    if rig.options.timelines && count <= 20 {
        for reply in &all {
            eprintln!("{}", reply.timeline());
        }
    }
    let native: Vec<&Reply> = all.iter().filter(|r| r.native).collect();
    let edited: Vec<&Reply> = all.iter().filter(|r| !r.native).collect();
    println!(
        "\n### {count} replies at once, {} (acked {} of {count}; every turn finished: {}, {} after the messages; \
         the agent done streaming: {streamed}; 429s provoked: **{provoked}**)\n",
        path.name(),
        report.acked,
        finished,
        secs(took)
    );
    println!("{HEADER}");
    println!("{}", row("all", &all.iter().collect::<Vec<_>>()));
    if !native.is_empty() && !edited.is_empty() {
        println!("{}", row("streamed natively", &native));
        println!("{}", row("edited (no stream start left in the Tier 2 budget)", &edited));
    }
    Ok(())
}

/// Replies one at a time, five seconds apart, on the native path: how soon the first delta
/// is visible.
async fn first_text(rig: &Rig) -> Result<(), String> {
    let count = rig.options.relays;
    Path::Native.apply(&rig.slack);
    let (backend, threads, bridge) = fresh(rig, "F", count).await?;
    let limited_before = limited(&rig.slack);
    let since = Instant::now();
    for thread in &threads {
        if !ingress::send_one(thread, &bridge.url, "F", 0).await {
            println!("- the event for {} was not acked", thread.ticket);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = replies(&rig.slack, &rig.helpdesk, &threads, since);
    let provoked = limited(&rig.slack).saturating_sub(limited_before);
    bridge.stop().await;
    crate::bridge::purge(&backend).await;
    println!("\n### {count} replies one at a time, native streaming (429s provoked: **{provoked}**)\n");
    println!("{HEADER}");
    println!("{}", row("all", &all.iter().collect::<Vec<_>>()));
    let streamed = all.iter().filter(|r| r.native).count();
    println!("\n{streamed} of {} replies were streamed natively.", all.len());
    Ok(())
}

/// Waits until `count` more turns than `reactions_before` were marked ✅, and then until
/// the last mark was answered (the turn, and the thread's worker, are free only then).
async fn turns_ended(rig: &Rig, reactions_before: usize, count: usize) {
    wait_until(Duration::from_secs(120), || {
        rig.slack.calls_of("reactions.add").len().saturating_sub(reactions_before) >= count
    })
    .await;
    tokio::time::sleep(rig.slack.latency() + Duration::from_secs(1)).await;
}

/// When a reply's first text was in Slack, `start` counting: the first call in `channel`
/// that arrived after `start` carrying a first delta's marker, plus Slack's answer time.
fn shown(slack: &FakeSlack, channel: &str, start: Instant) -> Option<Duration> {
    slack
        .log()
        .into_iter()
        .find(|c| c.channel == channel && c.at > start && c.body.contains("first-LOAD-"))
        .map(|c| c.at + slack.latency() - start)
}

/// With the fake Slack and HelpDesk answering everything [`LATE`], mentions that open
/// tickets and then one message in each ticket's thread, on `path`: how long until the
/// reply's first text is in Slack, by the fakes' own clocks.
async fn critical_path(rig: &Rig, path: Path) -> Result<(Vec<Duration>, Vec<Duration>), String> {
    let count = rig.options.critical;
    let tag = format!("CP{}", if path == Path::Native { "n" } else { "e" });
    path.apply(&rig.slack);
    let backend = rig.backend.fresh(&tag);
    let settings = [format!("HELPDESK_WORKSPACE={WORKSPACE_NAME}"), format!("HELPDESK_AGENT={AGENT_NAME}")];
    rig.slack.set_latency(LATE);
    rig.helpdesk.set_latency(LATE);
    let bridge = rig.start_with(&format!("critical-{tag}"), &backend, &settings).await;
    let bridge = match bridge {
        Ok(bridge) => bridge,
        Err(err) => {
            rig.slack.set_latency(Duration::ZERO);
            rig.helpdesk.set_latency(Duration::ZERO);
            return Err(err);
        }
    };
    // The warm-up looks the default workspace and agent up and probes streaming.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(40) {
        let metrics = bridge.metrics().await;
        if metrics.sum("helpdesk_bridge_helpdesk_calls_total", &["operation=\"find_agent\"", "outcome=\"ok\""]) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(LATE).await;
    let reactions_before = rig.slack.calls_of("reactions.add").len();
    let channels: Vec<String> = (0..count).map(|n| format!("C{tag}{n:03}")).collect();
    let roots: Vec<String> = (0..count).map(|n| format!("1800000100.{n:06}")).collect();
    let mut starts = Vec::new();
    for (channel, root) in channels.iter().zip(&roots) {
        starts.push(Instant::now());
        if !ingress::mention(&bridge.url, channel, "U001", root).await {
            println!("- the mention in {channel} was not acked");
        }
        tokio::time::sleep(TURN_SPACING).await;
    }
    turns_ended(rig, reactions_before, count).await;
    let mentions: Vec<Duration> =
        channels.iter().zip(&starts).filter_map(|(channel, start)| shown(&rig.slack, channel, *start)).collect();
    let reactions_before = rig.slack.calls_of("reactions.add").len();
    let mut starts = Vec::new();
    for (channel, root) in channels.iter().zip(&roots) {
        let thread =
            Thread { channel: channel.clone(), ts: root.clone(), ticket: String::new(), requester: "U001".into() };
        starts.push(Instant::now());
        if !ingress::send_one(&thread, &bridge.url, &tag, 0).await {
            println!("- the message in {channel} was not acked");
        }
        tokio::time::sleep(TURN_SPACING).await;
    }
    turns_ended(rig, reactions_before, count).await;
    let messages: Vec<Duration> =
        channels.iter().zip(&starts).filter_map(|(channel, start)| shown(&rig.slack, channel, *start)).collect();
    bridge.stop().await;
    crate::bridge::purge(&backend).await;
    rig.slack.set_latency(Duration::ZERO);
    rig.helpdesk.set_latency(Duration::ZERO);
    Path::Native.apply(&rig.slack);
    Ok((mentions, messages))
}

/// One row of the critical-path table.
fn critical_row(label: &str, path: Path, shown: &[Duration], wanted: usize, bound: Duration) -> String {
    let (median, worst) = summary(shown.to_vec());
    format!(
        "| {label} | {} | {} of {wanted} | **{}** | {} | {} |",
        path.name(),
        shown.len(),
        secs(median),
        secs(worst),
        secs(bound)
    )
}

/// Every streaming figure of issue #17.
pub async fn run(rig: &Rig) -> Result<(), String> {
    println!(
        "\n## Native streaming and the critical path\n\nLoad average (1, 5, 15 min) at the start: {}.\n",
        load_average()
    );
    if rig.options.relays > 0 {
        let shape = Shape { chunks: 20, chunk_size: 50, gap: Duration::from_millis(50) };
        rig.helpdesk.set_shape(shape);
        println!("First text. {}", shape.describe());
        first_text(rig).await?;
    }
    let shape = Shape { chunks: 100, chunk_size: 60, gap: Duration::from_millis(200) };
    rig.helpdesk.set_shape(shape);
    println!("\nConcurrent replies. {}", shape.describe());
    // The smaller runs are short and vary more from run to run: each is repeated.
    let runs = |count: usize| if count <= 20 { rig.options.repeat.max(1) } else { 1 };
    let counts = |path| match path {
        Path::Native => rig.options.concurrent.clone(),
        Path::Edits => rig.options.edit_concurrent.clone(),
    };
    for path in [Path::Native, Path::Edits] {
        for count in counts(path).into_iter().filter(|count| *count > 0) {
            for run in 0..runs(count) {
                concurrent(rig, count, path, run).await?;
            }
        }
    }
    if rig.options.critical == 0 {
        return Ok(());
    }
    let shape = Shape { chunks: 3, chunk_size: 40, gap: Duration::ZERO };
    rig.helpdesk.set_shape(shape);
    println!(
        "\n### Critical path, Slack and the HelpDesk each answering every request {} late\n\n{} mentions that \
         open tickets, {} s apart, each in a channel of its own, then one message in each ticket's thread once \
         every turn ended. From the event's delivery to the bridge until the first Slack call carrying the \
         reply's first text was answered, by the fakes' clocks. {}\n",
        secs(LATE),
        rig.options.critical,
        TURN_SPACING.as_secs(),
        shape.describe()
    );
    println!("| turn | path | measured | p50 | slowest | the issue's bound |\n|---|---|---|---|---|---|");
    for path in [Path::Native, Path::Edits] {
        let (mentions, messages) = critical_path(rig, path).await?;
        let wanted = rig.options.critical;
        println!("{}", critical_row("mention (opens a ticket)", path, &mentions, wanted, MENTION_BOUND));
        println!("{}", critical_row("message in a ticket's thread", path, &messages, wanted, THREAD_BOUND));
    }
    println!("\nLoad average at the end: {}.", load_average());
    Ok(())
}
