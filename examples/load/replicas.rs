//! Runs with several replicas of one installation: one store (a Redis key prefix) and one
//! bot token, so the fake Slack counts their calls against one workspace's limits.
//!
//! - **takeover**: two replicas; a thread's agent turn is held open by the fake HelpDesk on
//!   whichever replica took it, and the thread's next message waits behind it. That replica
//!   is killed with `kill -9`. Measured from the kill: when the other replica took the
//!   thread's lease over (its take-over counter), when the thread got its notice about the
//!   cut-off turn, and when the next message reached the HelpDesk.
//! - **replicas**: three replicas; tickets get a message each, spread over the replicas,
//!   and their replies stream at once. Counted: the fake Slack's 429s, and the most calls
//!   of each limited method in any 60 s, against Slack's budget.
//!
//! Both need a store that replicas share, so they run on Redis only.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use futures_util::future::join_all;

use crate::{
    Rig,
    bridge::{self, Backend, Bridge},
    fake_helpdesk::Shape,
    ingress, load_average, most_within, secs, summary,
};

/// What one take-over took, from the kill.
#[derive(Default)]
struct Takeover {
    /// The surviving replica counted a take-over.
    lease: Option<Duration>,
    /// The thread was told its turn was cut off (or may not have reached the agent).
    notice: Option<Duration>,
    /// The thread's next message reached the HelpDesk.
    next: Option<Duration>,
}

/// The texts of the notices a taken-over turn ends with.
const TAKEN_OVER_NOTICES: [&str; 2] = ["reply was interrupted", "may not have reached"];

/// Starts `count` replicas on `backend`, all with the bot token `token`.
async fn start_replicas(
    rig: &Rig,
    name: &str,
    backend: &Backend,
    token: &str,
    count: usize,
) -> Result<Vec<Bridge>, String> {
    let mut replicas = Vec::with_capacity(count);
    for n in 0..count {
        replicas.push(rig.start_on(&format!("{name}-{n}"), backend, Some(token)).await?);
    }
    Ok(replicas)
}

/// Whether the phases of this module can run; says why not otherwise.
fn shared_store(rig: &Rig, part: &str) -> bool {
    let shared = matches!(rig.backend, Backend::Redis { .. });
    if !shared {
        println!("\n## {part}\n\nSkipped: replicas share a store only on Redis.");
    }
    shared
}

/// Polls every 50 ms until `ready` holds or `limit` passed; whether it held.
async fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if ready() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// One take-over: two replicas, the turn's holder killed; `None` when the setup failed (said
/// in the report).
async fn one_takeover(rig: &Rig, run: usize) -> Result<Option<Takeover>, String> {
    let tag = format!("K{run}");
    let backend = rig.backend.fresh(&tag);
    let thread = rig.seed_on(&backend, &tag, 1, 1).await?.remove(0);
    let mut replicas =
        start_replicas(rig, &format!("takeover-{run}"), &backend, &format!("xoxb-load-{tag}"), 2).await?;
    rig.helpdesk.hold(true);
    let started = ingress::send_one(&thread, &replicas[0].url, &tag, 0).await
        && wait_until(Duration::from_secs(20), || rig.helpdesk.first_delta(&thread.ticket).is_some()).await
        && ingress::send_one(&thread, &replicas[1].url, &tag, 1).await;
    let mut holder = None;
    for (n, replica) in replicas.iter().enumerate() {
        if replica.metrics().await.sum("helpdesk_bridge_inbox_leases_held", &[]) > 0 {
            holder = Some(n);
        }
    }
    let Some(holder) = holder.filter(|_| started) else {
        println!("| {} | the turn did not start on either replica | — | — | — |", run + 1);
        rig.helpdesk.hold(false);
        for replica in replicas {
            replica.stop().await;
        }
        bridge::purge(&backend).await;
        return Ok(None);
    };
    let killed = replicas.remove(holder);
    let survivor = replicas.remove(0);
    killed.kill();
    let at = Instant::now();
    let mut took = Takeover::default();
    while took.next.is_none() && at.elapsed() < Duration::from_secs(rig.options.takeover_seconds) {
        if took.lease.is_none() && survivor.metrics().await.sum("helpdesk_bridge_inbox_takeovers_total", &[]) > 0 {
            took.lease = Some(at.elapsed());
        }
        if took.notice.is_none()
            && rig.slack.calls_of("chat.postMessage").iter().any(|post| {
                post.at >= at && post.ts == thread.ts && TAKEN_OVER_NOTICES.iter().any(|n| post.body.contains(n))
            })
        {
            took.notice = Some(at.elapsed());
        }
        if rig.helpdesk.sends_to(&thread.ticket) >= 2 {
            took.next = Some(at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rig.helpdesk.hold(false);
    survivor.stop().await;
    bridge::purge(&backend).await;
    let show = |d: Option<Duration>| d.map_or_else(|| format!("not within {} s", rig.options.takeover_seconds), secs);
    println!(
        "| {} | replica {} of 2 | {} | {} | {} |",
        run + 1,
        holder + 1,
        show(took.lease),
        show(took.notice),
        show(took.next)
    );
    Ok(Some(took))
}

/// `kill -9` take-overs, one after another, each on a store of its own.
pub async fn takeover(rig: &Rig) -> Result<(), String> {
    let part = "Take-over after kill -9";
    if !shared_store(rig, part) {
        return Ok(());
    }
    let runs = rig.options.takeovers;
    println!("\n## {part} ({runs} runs, two replicas on one Redis prefix, default LEASE_SECONDS)\n");
    println!(
        "A ticket thread's agent turn is held open by the fake HelpDesk on the replica that took \
         it; the thread's next message is acked by the other replica and waits behind it. The \
         holder is killed with SIGKILL. Times from the kill; each run waits at most {} s.\n",
        rig.options.takeover_seconds
    );
    rig.helpdesk.set_shape(Shape { chunks: 5, chunk_size: 40, gap: Duration::ZERO });
    println!("| run | killed | lease taken over | notice in the thread | next message sent to the agent |");
    println!("|---|---|---|---|---|");
    let mut all = Vec::new();
    for run in 0..runs {
        all.extend(one_takeover(rig, run).await?);
    }
    let median = |pick: fn(&Takeover) -> Option<Duration>| {
        let values: Vec<Duration> = all.iter().filter_map(pick).collect();
        if values.len() < all.len() || values.is_empty() {
            format!("{} of {} runs within the limit", values.len(), all.len())
        } else {
            secs(summary(values).0)
        }
    };
    println!("| median | | {} | {} | {} |", median(|t| t.lease), median(|t| t.notice), median(|t| t.next));
    Ok(())
}

/// The most calls of `method` in any 60 s of `calls`, over every scope (a channel for
/// posts, the workspace otherwise) taken apart by `scope`.
fn most_in_a_minute(calls: &[crate::fake_slack::Call], scope: impl Fn(&crate::fake_slack::Call) -> String) -> usize {
    let mut by_scope: HashMap<String, Vec<Instant>> = HashMap::new();
    for call in calls {
        by_scope.entry(scope(call)).or_default().push(call.at);
    }
    by_scope.values().map(|times| most_within(times, Duration::from_secs(60))).max().unwrap_or_default()
}

/// Replicas of one workspace streaming replies at once: Slack's limits across all of them.
pub async fn shared_budgets(rig: &Rig) -> Result<(), String> {
    let part = "Replicas sharing one workspace's Slack budget";
    if !shared_store(rig, part) {
        return Ok(());
    }
    let options = &rig.options;
    let (count, tickets) = (options.replicas.max(1), options.replica_tickets);
    println!("\n## {part} ({count} replicas, one bot token, one Redis prefix)\n");
    let backend = rig.backend.fresh("S");
    let threads = rig.seed_on(&backend, "S", tickets, 5).await?;
    let replicas = start_replicas(rig, "replica", &backend, "xoxb-load-shared", count).await?;
    let shape = Shape { chunks: 20, chunk_size: 50, gap: Duration::from_millis(250) };
    rig.helpdesk.set_shape(shape);
    println!(
        "{tickets} tickets in {} channels each get one message, sent to the replicas in turn. {} \
         Load average (1, 5, 15 min) at the start: {}.\n",
        tickets.div_ceil(5),
        shape.describe(),
        load_average()
    );
    rig.slack.clear_log();
    let limited_before = rig.slack.limited();
    let started = Instant::now();
    let sends = replicas.iter().enumerate().map(|(n, replica)| {
        let mine: Vec<_> = threads.iter().skip(n).step_by(count).cloned().collect();
        let duration = Duration::from_secs_f64(mine.len() as f64 / 50.0);
        // Numbered apart: messages of two replicas' senders in one channel must not share a ts.
        let events = ingress::Events::new(mine, &replica.url, &format!("S{n}")).starting_at((n * tickets) as u64);
        ingress::fixed_rate(std::sync::Arc::new(events), 50, duration)
    });
    let acked: u64 = join_all(sends).await.iter().map(|r| r.acked).sum();
    let mut recorded = 0;
    for replica in &replicas {
        recorded += replica.counts().await.accepted;
    }
    let finished =
        wait_until(Duration::from_secs(options.drain_seconds), || rig.slack.calls_of("reactions.add").len() >= tickets)
            .await;
    let took = started.elapsed();
    let mut handled = Vec::new();
    for replica in &replicas {
        handled.push(replica.metrics().await.sum("helpdesk_bridge_inbox_items_total", &[]).to_string());
    }
    for replica in replicas {
        replica.stop().await;
    }
    bridge::purge(&backend).await;

    let limited = rig.slack.limited();
    let (updates, posts, reactions) = (
        rig.slack.calls_of("chat.update"),
        rig.slack.calls_of("chat.postMessage"),
        rig.slack.calls_of("reactions.add"),
    );
    println!("| what | value | Slack's budget |\n|---|---|---|");
    println!("| messages acked, recorded | {acked}, {recorded} of {tickets} | — |");
    println!("| items handled, by replica | {} | — |", handled.join(" / "));
    println!(
        "| turns finished (✅ or ⚠️ on the message) | {} of {tickets}, {} after the first message{} | — |",
        reactions.len().min(tickets),
        secs(took),
        if finished { "" } else { " (limit reached)" }
    );
    println!(
        "| `chat.update`: calls, most in any 60 s (workspace) | {}, **{}** | 50 |",
        updates.len(),
        most_in_a_minute(&updates, |_| String::new())
    );
    for (method, budget) in [("chat.appendStream", 100), ("chat.startStream", 20), ("chat.stopStream", 20)] {
        let calls = rig.slack.calls_of(method);
        println!(
            "| `{method}`: calls, most in any 60 s (workspace) | {}, {} | {budget} |",
            calls.len(),
            most_in_a_minute(&calls, |_| String::new())
        );
    }
    println!(
        "| `reactions.add`: calls, most in any 60 s (workspace) | {}, {} | 50 |",
        reactions.len(),
        most_in_a_minute(&reactions, |_| String::new())
    );
    println!(
        "| `chat.postMessage`: calls, most in any 60 s in one channel | {}, {} | 60 |",
        posts.len(),
        most_in_a_minute(&posts, |c| c.channel.clone())
    );
    let mut provoked: Vec<_> = limited
        .iter()
        .map(|(method, n)| (method.clone(), n.saturating_sub(limited_before.get(method).copied().unwrap_or_default())))
        .filter(|(_, n)| *n > 0)
        .collect();
    provoked.sort();
    let provoked = if provoked.is_empty() {
        "**0**".to_owned()
    } else {
        provoked.iter().map(|(m, n)| format!("{m}: {n}")).collect::<Vec<_>>().join(", ")
    };
    println!("| 429s provoked | {provoked} | 0 |");
    Ok(())
}
