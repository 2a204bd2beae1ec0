//! The backlog run: resident memory while a large backlog waits in the inbox, and how fast
//! the inbox drains once the workers are free.
//!
//! The service's workers (`DISPATCH_WORKERS`) are all kept busy first: one message into
//! each of `--hold-threads` ticket threads starts an agent turn that the fake HelpDesk holds
//! open after its first delta. Then `--backlog` messages into threads that are not tickets
//! are acked at saturation; no worker is free, so every one of them waits in the inbox.
//! The service's memory is read then. When the HelpDesk lets the held turns finish, their
//! final edits wait for Slack's edit budget before their workers are free; then the workers
//! go through the backlog. A message in a thread that is not a ticket costs its worker one
//! store lookup and nothing at Slack or the HelpDesk, so the drain rate is the inbox's own
//! pace: claiming a thread, handing over its items one after another, finishing each.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    Rig,
    bridge::{self, Bridge, INBOX_DEPTH, PeakRss},
    ingress, load_average, mib, ms, secs,
};

/// How the inbox depth fell while the backlog drained.
struct Drain {
    /// (time since the held turns were let go, items in the inbox), every half second.
    samples: Vec<(Duration, u64)>,
}

impl Drain {
    /// When the depth first fell to `depth` or below.
    fn reached(&self, depth: u64) -> Option<Duration> {
        self.samples.iter().find(|(_, d)| *d <= depth).map(|(at, _)| *at)
    }
}

/// Waits until the number of replies the fake HelpDesk holds open stops growing (for two
/// seconds), at most 60 s, and returns it.
async fn wait_for_held_turns(rig: &Rig) -> usize {
    let started = Instant::now();
    let (mut open, mut since) = (0, Instant::now());
    while started.elapsed() < Duration::from_secs(60) {
        let now = rig.helpdesk.open();
        if now != open {
            (open, since) = (now, Instant::now());
        } else if open > 0 && since.elapsed() >= Duration::from_secs(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    open
}

/// Samples the inbox depth every half second until at most `floor` items are left (what the
/// held threads may still hold), or `limit` has passed.
async fn drain(bridge: &Bridge, floor: u64, limit: Duration) -> Drain {
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < limit {
        let depth = bridge.metrics().await.sum(INBOX_DEPTH, &[]);
        samples.push((started.elapsed(), depth));
        if depth <= floor {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Drain { samples }
}

/// Runs the backlog phase on a store of its own.
pub async fn run(rig: &Rig) -> Result<(), String> {
    let options = &rig.options;
    let backend = rig.backend.fresh("B");
    println!("\n## Backlog ({} items waiting in the inbox, {} backend)\n", options.backlog, backend.name());
    println!(
        "Every worker is kept busy by an agent turn held open by the fake HelpDesk ({} ticket \
         threads get a message); then messages into {} threads that are not tickets are acked \
         at saturation by {} connections until {} were acked, and wait in the inbox. Default \
         settings. Load average (1, 5, 15 min) at the start: {}.\n",
        options.hold_threads,
        options.threads,
        options.connections,
        options.backlog,
        load_average()
    );
    let held = rig.seed_on(&backend, "BH", options.hold_threads, 1).await?;
    let bridge = rig.start_on("backlog", &backend, None).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = bridge.rss().unwrap_or_default();
    rig.helpdesk.hold(true);
    let hold_events = Arc::new(ingress::Events::new(held, &bridge.url, "BH"));
    let duration = Duration::from_secs_f64(options.hold_threads as f64 / 200.0);
    let hold_report = ingress::fixed_rate(hold_events, 200, duration).await;
    let holding = wait_for_held_turns(rig).await;

    let peak = PeakRss::start(bridge.pid());
    let waiting = ingress::Events::new(bridge::threads("BW", options.threads, 20), &bridge.url, "BW");
    let limit = Duration::from_secs(600);
    let report = ingress::saturate(Arc::new(waiting), options.connections, limit, options.backlog).await;
    let peak_acking = peak.peak();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting_rss = bridge.rss().unwrap_or_default();
    let depth = bridge.metrics().await.sum(INBOX_DEPTH, &[]);

    rig.helpdesk.hold(false);
    let floor = options.hold_threads as u64;
    let drained = drain(&bridge, floor, Duration::from_secs(options.backlog_drain_seconds)).await;
    let peak_overall = peak.peak();
    drop(peak);
    let after = bridge.rss().unwrap_or_default();
    bridge.stop().await;
    bridge::purge(&backend).await;

    let start = drained.samples.first().map_or(depth, |(_, d)| *d);
    let fraction = |f: f64| floor + ((start.saturating_sub(floor)) as f64 * f) as u64;
    let (t90, t10) = (drained.reached(fraction(0.9)), drained.reached(fraction(0.1)));
    let rate = match (t90, t10) {
        (Some(a), Some(b)) if b > a => {
            format!("{:.0} items/s", (fraction(0.9) - fraction(0.1)) as f64 / (b - a).as_secs_f64())
        }
        _ => "— (did not drain within the limit)".to_owned(),
    };
    let last = drained.samples.last().copied().unwrap_or_default();
    println!("| what | value |\n|---|---|");
    println!("| resident memory idle (ready, 2 s after start) | {} |", mib(idle));
    println!("| messages that started a held turn (acked of sent) | {} of {} |", hold_report.acked, hold_report.sent);
    println!("| agent turns held open (workers busy) | {holding} |");
    println!(
        "| backlog: sent, acked, refused (not 200), no answer | {}, {}, {}, {} |",
        report.sent, report.acked, report.refused, report.errors
    );
    println!(
        "| backlog: acked/s, p50, p99, max | {:.0}/s, {}, {}, {} |",
        report.rate(),
        ms(report.percentile(50.0)),
        ms(report.percentile(99.0)),
        ms(report.latencies.last().copied().unwrap_or_default())
    );
    println!("| items in the inbox (bridge's gauge), 2 s after the last ack | {depth} |");
    println!("| resident memory at its peak while acking | {} |", mib(peak_acking));
    println!("| resident memory with the backlog waiting | {} |", mib(waiting_rss));
    println!("| held turns let go → inbox down by 10 % of the backlog | {} |", t90.map_or("—".to_owned(), secs));
    println!("| drain rate, from 90 % to 10 % of the backlog left | {rate} |");
    println!("| items left when the drain run stopped, after | {} items, {} |", last.1, secs(last.0));
    println!("| resident memory at its peak, whole run | {} |", mib(peak_overall));
    println!("| resident memory at the end | {} |", mib(after));
    Ok(())
}
