//! The durable inbox with the real binary (issue #16): replicas on one Redis through a
//! crash and a rolling restart, the embedded store through `kill -9`, a burst that must not
//! be held in memory, and SIGTERM in the middle of a streaming turn.
//!
//! Each test runs `helpdesk-bridge` as child processes against in-test fakes: a Slack that
//! enforces rate limits across every process calling it ([`LimitedSlack`]) and a HelpDesk
//! that records every message with its ticket ([`RecordingHelpdesk`]). Events are signed as
//! Slack signs them and redelivered to another replica when one cannot be reached, as Slack
//! retries. The tests assert what crosses the boundaries (what the HelpDesk received, in
//! which order; what Slack was asked; what the acks said) and bound their own time; they
//! assert no duration.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use helpdesk_bridge::{
    ids::{AgentId, ChannelId, MessageTs, PendingId, TeamId, ThreadKey, TicketKey, TicketName, UserId, WorkspaceId},
    model::{TicketRecord, TicketStatus},
    slack::controls::action,
    store::{Lock, Store},
};
use tokio::sync::mpsc;

use crate::support::{
    app::SECRET,
    eventually,
    fakes::{AGENT_ID, AGENT_NAME, WORKSPACE_ID, assert_valid_message, text_of},
    limited_slack::{Call, LimitedSlack},
    recording_helpdesk::{RecordingHelpdesk, Reply, Sent},
    redis::PrivateRedis,
    replica::{Replica, one_at_a_time},
    traffic::{Traffic, thread_message},
};

/// What the bridge says in a thread when a send that started on a replica that died is not
/// repeated.
const MAY_NOT_HAVE_REACHED: &str = "may not have reached the agent";
/// The key prefix of every replica test's store.
const PREFIX: &str = "hb-replicas:";

/// A seeded ticket thread.
#[derive(Clone, Debug)]
struct Thread {
    team: String,
    channel: String,
    root: String,
    ticket: String,
    requester: String,
}

impl Thread {
    /// Thread `n`: in workspace `T{n / per_team}`'s one channel.
    fn new(n: usize, per_team: usize) -> Self {
        let team = n / per_team;
        Self {
            team: format!("T{team:03}"),
            channel: format!("C{team:03}"),
            root: format!("1700000000.{n:06}"),
            ticket: format!("DEVOPS-{n}"),
            requester: format!("U{n:03}"),
        }
    }

    fn key(&self) -> ThreadKey {
        ThreadKey {
            team: TeamId::new(&self.team),
            channel: ChannelId::new(&self.channel),
            thread_ts: MessageTs::new(&self.root),
        }
    }
}

/// Stores the ticket of `thread` as the bridge stores the tickets it opens: Pending (so a
/// reply changes no status), its requester its only participant (so messages go to the agent
/// as written).
async fn seed(store: &Store, thread: &Thread, helpdesk_url: &str) {
    let record = TicketRecord {
        thread: thread.key(),
        ticket: TicketKey {
            host: helpdesk_url.to_owned(),
            workspace: WorkspaceId::new(WORKSPACE_ID),
            ticket: TicketName::new(&thread.ticket),
        },
        title: format!("Seeded {}", thread.ticket),
        agent_id: AgentId::new(AGENT_ID),
        agent_name: AGENT_NAME.to_owned(),
        agent_streams: None,
        requester: UserId::new(&thread.requester),
        assignee: None,
        status: TicketStatus::Pending,
        header_ts: Some(MessageTs::new(&thread.root)),
        permalink: Some(format!("https://acme.slack.com/archives/{}/p{}", thread.channel, thread.root)),
        participants: vec![UserId::new(&thread.requester)],
        adopted: false,
        always_allow: Vec::new(),
        previous: Vec::new(),
        created_at: 1,
        updated_at: 1,
    };
    store.create_ticket(&record).await.unwrap();
}

/// One message the test sends: its number, thread, ts and text.
#[derive(Clone, Debug)]
struct Message {
    n: usize,
    thread: usize,
    ts: String,
    text: String,
}

impl Message {
    /// Message `n` in thread `thread` (of `threads`, round robin).
    fn new(n: usize, threads: usize) -> Self {
        Self {
            n,
            thread: n % threads,
            ts: format!("1700000100.{n:06}"),
            text: format!("m{n:05} in thread {}", n % threads),
        }
    }

    /// The message's number, from its text (as the HelpDesk or a kept message has it).
    fn number(text: &str) -> Option<usize> {
        text.strip_prefix('m')?.split(' ').next()?.parse().ok()
    }

    fn event(&self, thread: &Thread) -> serde_json::Value {
        thread_message(&thread.team, &thread.channel, &thread.requester, &self.ts, &thread.root, &self.text)
    }
}

/// The environment every replica of a test shares (the store's is added by the test).
fn base_env(slack: &LimitedSlack, helpdesk: &RecordingHelpdesk) -> Vec<(&'static str, String)> {
    vec![
        ("SLACK_BOT_TOKEN", "xoxb-replicas".to_owned()),
        ("SLACK_SIGNING_SECRET", SECRET.to_owned()),
        ("SLACK_API_URL", slack.url.clone()),
        ("DUPLO_HOST", helpdesk.url.clone()),
        ("DUPLO_TOKEN", "duplo-token".to_owned()),
    ]
}

/// Delivers `messages` in order per thread (a thread's next message leaves once the one
/// before was acknowledged, so "the order Slack sent them" is well defined), threads in
/// parallel, each message on schedule at `rate` a second; returns once all were
/// acknowledged.
async fn deliver_at_rate(traffic: &Traffic, threads: &[Thread], messages: &[Message], rate: u32) {
    let mut queues = Vec::new();
    let mut senders = Vec::new();
    for _ in threads {
        let (tx, mut rx) = mpsc::unbounded_channel::<serde_json::Value>();
        queues.push(tx);
        let traffic = traffic.clone();
        senders.push(tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                traffic.deliver(&event).await;
            }
        }));
    }
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let started = tokio::time::Instant::now();
    for (i, message) in messages.iter().enumerate() {
        tokio::time::sleep_until(started + interval * u32::try_from(i).unwrap()).await;
        queues[message.thread].send(message.event(&threads[message.thread])).unwrap();
    }
    drop(queues);
    for sender in senders {
        sender.await.expect("every message was delivered");
    }
}

/// Values of the keys matching `pattern` in the Redis at `url`.
async fn redis_values(url: &str, pattern: &str) -> HashMap<String, String> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(&mut conn).await.unwrap();
    if keys.is_empty() {
        return HashMap::new();
    }
    let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await.unwrap();
    keys.into_iter().zip(values).filter_map(|(k, v)| Some((k, v?))).collect()
}

/// The key of the send mark of `message` in `thread` (the store's byte-stable key names).
fn send_mark(thread: &Thread, message: &Message) -> String {
    format!("{PREFIX}send:msg:{}:{}:{}", thread.team, thread.channel, message.ts)
}

/// The turn locks in the Redis at `url`, for a failure's account: how many, the longest
/// they still live, and their tickets.
async fn turn_locks(url: &str) -> String {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{PREFIX}lock:turn:*")).query_async(&mut conn).await.unwrap();
    let mut longest = 0_i64;
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL").arg(key).query_async(&mut conn).await.unwrap();
        longest = longest.max(ttl);
    }
    let tickets: Vec<&str> = keys.iter().filter_map(|k| k.rsplit('/').next()).collect();
    format!("{} turn locks still held, the longest for {} s more: {tickets:?}", keys.len(), longest / 1000)
}

/// The "may not have reached the agent" notices among `posts`, each with the message its
/// *Send again* button keeps (read from `store`): the number of that message, and the
/// thread the notice was posted in.
async fn maybe_not_reached(store: &Store, posts: &[Call]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for post in posts.iter().filter(|p| text_of(&p.body).contains(MAY_NOT_HAVE_REACHED)) {
        assert_valid_message(&post.body);
        let button = &post.body["blocks"][1]["elements"][0];
        assert_eq!(button["action_id"], action::RETRY, "the notice offers Send again: {:#}", post.body);
        assert_eq!(button["text"]["text"], "Send again");
        let id = PendingId::new(button["value"].as_str().unwrap());
        let kept = store.pending(&id).await.unwrap().expect("Send again keeps the message");
        let n = Message::number(&kept.content).unwrap_or_else(|| panic!("a kept message of this test: {kept:?}"));
        let thread = post.body["thread_ts"].as_str().unwrap_or_default().to_owned();
        found.push((n, thread));
    }
    found
}

/// Checks what the HelpDesk received against what was sent: every message exactly once,
/// except those in `maybe` (reported with *Send again*), which arrived at most once; and each
/// ticket's messages in the order they were sent.
fn assert_each_message_once_in_order(messages: &[Message], threads: &[Thread], sent: &[Sent], maybe: &HashSet<usize>) {
    let mut counts: HashMap<usize, usize> = HashMap::new();
    let mut per_ticket: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for s in sent {
        let n = Message::number(&s.content).unwrap_or_else(|| panic!("the HelpDesk got a message never sent: {s:?}"));
        *counts.entry(n).or_default() += 1;
        per_ticket.entry(s.ticket.as_str()).or_default().push(n);
    }
    let twice: Vec<usize> = counts.iter().filter(|(_, c)| **c > 1).map(|(n, _)| *n).collect();
    assert!(twice.is_empty(), "messages the HelpDesk got more than once: {twice:?}");
    let lost: Vec<usize> =
        messages.iter().map(|m| m.n).filter(|n| !counts.contains_key(n) && !maybe.contains(n)).collect();
    assert!(lost.is_empty(), "messages that never reached the HelpDesk and were not reported: {lost:?}");
    for message in messages {
        let ticket = &threads[message.thread].ticket;
        if counts.contains_key(&message.n) {
            assert!(
                per_ticket.get(ticket.as_str()).is_some_and(|ns| ns.contains(&message.n)),
                "m{} went to its ticket",
                message.n
            );
        }
    }
    for (ticket, order) in per_ticket {
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(order, sorted, "{ticket}'s messages reached the HelpDesk in the order Slack sent them");
    }
}

/// Waits until the inbox of `store` is empty and nothing is leased; panics after `patience`
/// with `explain()`'s account of what is stuck.
async fn wait_drained<F, Fut>(store: &Store, patience: Duration, explain: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let drained = eventually(patience, || async {
        let stats = store.inbox_stats().await.ok()?;
        (stats.depth == 0 && stats.leased == 0).then_some(())
    })
    .await;
    if drained.is_none() {
        let stats = store.inbox_stats().await;
        panic!("the inbox did not drain within {patience:?}: {stats:?}\n{}", explain().await);
    }
}

/// Three replicas of the real binary share one Redis. 1,000 signed message events arrive at
/// a fixed rate, spread over 80 ticket threads in 40 workspaces (a channel each) and
/// round-robin over the replicas. Mid-run one replica is killed (`kill -9`) and another is
/// stopped (SIGTERM) and started again with the same environment; Slack's retries are
/// played by redelivering to a live replica what could not reach one.
///
/// Afterwards every message reached the HelpDesk exactly once, except those whose send had
/// started on the killed replica, which are reported in their thread with *Send again*; each
/// ticket's messages arrived in the order Slack sent them; no delivery was refused while
/// Redis was up; and the replicas together stayed within the Slack budgets the fake enforces
/// over all of them (`chat.update` at the configured 40 a minute per workspace, posts per
/// channel, reactions per workspace): no 429.
///
/// Why 40 workspaces: every turn ends with a reaction, and Slack allows 50 `reactions.add` a
/// minute per workspace, a budget the bridge does not let anyone raise; 25 messages per
/// workspace fit in well under a minute. The edit budget is set low enough that the
/// workspace's turns contend for it, so a replica drawing from a budget of its own would
/// overspend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_one_redis_lose_and_repeat_nothing_through_a_crash_and_a_restart() {
    let _turn = one_at_a_time().await;
    const TEAMS: usize = 40;
    const PER_TEAM: usize = 2;
    const MESSAGES: usize = 1000;
    const RATE: u32 = 40;
    const UPDATES_PER_MINUTE: usize = 40;
    const KILL_AT: usize = 400;
    const RESTART_AT: usize = 600;
    let started = Instant::now();

    let redis = PrivateRedis::start();
    let store = Store::redis(&redis.url(), PREFIX).unwrap();
    let slack = LimitedSlack::start(UPDATES_PER_MINUTE).await;
    let reply =
        Reply::Stream { chunks: vec!["Looking ".to_owned(), "into it.".to_owned()], gap: Duration::from_millis(50) };
    let helpdesk = RecordingHelpdesk::start(reply).await;
    // The agent takes a moment to accept each message, so that sends are in flight.
    helpdesk.set_latency(Duration::from_millis(300));
    let threads: Vec<Thread> = (0..TEAMS * PER_TEAM).map(|n| Thread::new(n, PER_TEAM)).collect();
    for thread in &threads {
        slack.channel_in(&thread.channel, &thread.team);
        seed(&store, thread, &helpdesk.url).await;
    }
    let messages: Vec<Message> = (0..MESSAGES).map(|n| Message::new(n, threads.len())).collect();

    let mut env = base_env(&slack, &helpdesk);
    env.extend([
        ("REDIS_URL", redis.url()),
        ("REDIS_KEY_PREFIX", PREFIX.to_owned()),
        ("LEASE_SECONDS", "3".to_owned()),
        ("SHUTDOWN_GRACE_SECONDS", "10".to_owned()),
        ("SLACK_UPDATES_PER_MINUTE", UPDATES_PER_MINUTE.to_string()),
    ]);
    let mut replicas = Vec::new();
    for name in ["a", "b", "c"] {
        let mut own = env.clone();
        own.push(("DUPLO_TOKEN", format!("token-{name}")));
        replicas.push(Replica::start(name, &own).await);
    }
    let traffic = Traffic::new(&replicas.iter().map(Replica::base).collect::<Vec<_>>());
    let victim = replicas.remove(0);
    let restarted = replicas.remove(0);
    let bystander = replicas.remove(0);

    // The crash and the restart happen while events keep coming, on the same clock.
    let interval = Duration::from_secs_f64(1.0 / f64::from(RATE));
    let run_started = tokio::time::Instant::now();
    let chaos = {
        let (traffic, helpdesk, redis_url) = (traffic.clone(), helpdesk.clone(), redis.url());
        let (mut victim, mut restarted) = (victim, restarted);
        tokio::spawn(async move {
            tokio::time::sleep_until(run_started + interval * u32::try_from(KILL_AT).unwrap()).await;
            // The agent stalls for a moment, and the replica dies with sends in flight.
            helpdesk.close_gate();
            let victim_token = format!("token-{}", victim.name);
            let held = eventually(Duration::from_secs(10), || async {
                let held: Vec<String> =
                    helpdesk.held().into_iter().filter(|s| s.token == victim_token).map(|s| s.content).collect();
                (held.len() >= 2).then_some(held)
            })
            .await
            .expect("the replica to kill has sends in flight");
            victim.kill9();
            // What was mid-send at the kill: the send marks the moment the victim is gone.
            let in_flight: HashMap<String, String> = redis_values(&redis_url, &format!("{PREFIX}send:*"))
                .await
                .into_iter()
                .filter(|(_, mark)| mark != "finished")
                .collect();
            helpdesk.open_gate();
            // Deliveries keep going to the dead replica until the load balancer notices.
            tokio::time::sleep(Duration::from_secs(1)).await;
            traffic.set_up(&victim.base(), false);
            tokio::time::sleep_until(run_started + interval * u32::try_from(RESTART_AT).unwrap()).await;
            traffic.set_up(&restarted.base(), false);
            let exit = restarted.sigterm().await;
            restarted.restart().await;
            traffic.set_up(&restarted.base(), true);
            (in_flight, held, restarted, exit)
        })
    };
    deliver_at_rate(&traffic, &threads, &messages, RATE).await;
    let (in_flight_at_kill, held_at_kill, restarted, exit) = chaos.await.expect("the crash and the restart happened");
    assert!(exit.success(), "SIGTERM ends a replica cleanly: {exit:?}\n{}", restarted.log_tail(20));
    let sending_took = started.elapsed();

    wait_drained(&store, Duration::from_secs(60), || async {
        let locks = turn_locks(&redis.url()).await;
        let sent = helpdesk.sent();
        format!(
            "{locks}\nthe HelpDesk got {} of {MESSAGES} messages\n\
             bystander's log:\n{}\nrestarted replica's log:\n{}",
            sent.len(),
            bystander.log_tail(15),
            restarted.log_tail(15)
        )
    })
    .await;

    let tally = traffic.tally();
    assert!(tally.refused.is_empty(), "no delivery was refused while Redis was up: {tally:?}");
    assert_eq!(tally.acked, MESSAGES as u64, "{tally:?}");
    assert!(slack.limited().is_empty(), "the replicas together kept within Slack's limits: 429s {:?}", slack.limited());

    // The killed replica's sends are the ones unfinished at the kill that stayed unfinished:
    // the live replicas finished theirs, and a taken-over send is never marked again.
    let now = redis_values(&redis.url(), &format!("{PREFIX}send:*")).await;
    let victims: HashMap<usize, &str> = messages
        .iter()
        .filter_map(|m| {
            let key = send_mark(&threads[m.thread], m);
            let at_kill = in_flight_at_kill.get(&key)?;
            (now.get(&key).map(String::as_str) != Some("finished")).then_some((m.n, at_kill.as_str()))
        })
        .collect();
    let started_on_victim: HashSet<usize> =
        victims.iter().filter(|(_, mark)| **mark == "started").map(|(n, _)| *n).collect();
    let posts = slack.calls("chat.postMessage");
    let maybe = maybe_not_reached(&store, &posts).await;
    let mut reported = HashSet::new();
    for (n, thread_ts) in &maybe {
        assert!(reported.insert(*n), "m{n} was reported twice");
        assert_eq!(thread_ts, &threads[messages[*n].thread].root, "m{n} is reported in its own thread");
    }
    assert_eq!(
        reported, started_on_victim,
        "exactly the sends that had started on the killed replica are reported with Send again"
    );
    let held: HashSet<usize> = held_at_kill.iter().filter_map(|c| Message::number(c)).collect();
    assert!(held.is_subset(&reported), "among them those the HelpDesk held at the kill: {held:?}");
    assert!(reported.len() <= victims.len(), "no more reports than sends in flight at the kill");
    let sent = helpdesk.sent();
    assert_each_message_once_in_order(&messages, &threads, &sent, &reported);

    let by_replica = sent.iter().fold(BTreeMap::<&str, usize>::new(), |mut by, s| {
        *by.entry(s.token.as_str()).or_default() += 1;
        by
    });
    eprintln!(
        "three replicas: {} sends {by_replica:?}, {} reported with Send again ({} in flight on the killed replica), \
         {} unreachable attempts redelivered; Slack: {} posts, {} edits, {} reactions; \
         sending took {sending_took:?}, all {:?}",
        sent.len(),
        reported.len(),
        victims.len(),
        tally.unreachable,
        posts.len(),
        slack.calls("chat.update").len(),
        slack.calls("reactions.add").len(),
        started.elapsed()
    );
    drop(bystander);
}

/// The embedded store through `kill -9`: 500 messages in 50 threads are acknowledged while
/// the HelpDesk holds every send, so that all but each thread's first wait in the inbox; the
/// process is killed with a send in flight in every thread and started again on the same
/// `STATE_DIR`. Every message then reaches the HelpDesk exactly once, in order per thread,
/// except the ones that were in flight, which reached it once and are each reported with
/// *Send again*, since the bridge cannot know whether the agent got them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_keeps_its_backlog_through_kill_9() {
    let _turn = one_at_a_time().await;
    const THREADS: usize = 50;
    const MESSAGES: usize = 500;
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let slack = LimitedSlack::start(120).await;
    let helpdesk = RecordingHelpdesk::start(Reply::Unary("Noted.".to_owned())).await;
    let threads: Vec<Thread> = (0..THREADS).map(|n| Thread::new(n, 1)).collect();
    {
        let store = Store::embedded(dir.path()).unwrap();
        for thread in &threads {
            slack.channel_in(&thread.channel, &thread.team);
            seed(&store, thread, &helpdesk.url).await;
        }
    }
    let mut env = base_env(&slack, &helpdesk);
    env.extend([("STATE_DIR", dir.path().display().to_string()), ("SLACK_UPDATES_PER_MINUTE", "120".to_owned())]);
    helpdesk.close_gate();
    let mut replica = Replica::start("embedded", &env).await;
    let traffic = Traffic::new(&[replica.base()]);
    let messages: Vec<Message> = (0..MESSAGES).map(|n| Message::new(n, THREADS)).collect();
    deliver_at_rate(&traffic, &threads, &messages, 1000).await;
    assert_eq!(traffic.tally().acked, MESSAGES as u64, "every message was acknowledged: {:?}", traffic.tally());

    // Each thread's first message is at the HelpDesk, held; the rest wait in the inbox.
    let held = eventually(Duration::from_secs(30), || async {
        let held = helpdesk.held();
        (held.len() >= THREADS).then_some(held)
    })
    .await
    .unwrap_or_else(|| {
        panic!("a send per thread reached the HelpDesk: {:?}\n{}", helpdesk.sent(), replica.log_tail(20))
    });
    assert_eq!(helpdesk.sent().len(), THREADS, "one send per thread at a time");
    replica.kill9();
    helpdesk.open_gate();
    replica.restart().await;

    let drained = eventually(Duration::from_secs(60), || async {
        let depth = replica.metric("helpdesk_bridge_inbox_depth").await?;
        let leases = replica.metric("helpdesk_bridge_inbox_leases").await?;
        (depth == 0.0 && leases == 0.0).then_some(())
    })
    .await;
    if drained.is_none() {
        let inbox: Vec<String> = replica
            .metrics()
            .await
            .lines()
            .filter(|l| l.starts_with("helpdesk_bridge_inbox"))
            .map(str::to_owned)
            .collect();
        let log = replica.log_tail(10);
        replica.kill9();
        let store = Store::embedded(dir.path()).unwrap();
        let mut locked = Vec::new();
        for thread in &threads {
            let record = store.ticket_by_thread(&thread.key()).await.unwrap().expect("seeded");
            if store.try_lock(Lock::Turn(&record.ticket), Duration::from_millis(1)).await.unwrap().is_none() {
                locked.push(thread.ticket.clone());
            }
        }
        panic!(
            "the inbox did not drain after the restart: the HelpDesk got {} of {MESSAGES}; {inbox:?}\n\
             tickets whose turn lock the killed process still holds: {} {locked:?}\n{log}",
            helpdesk.sent().len(),
            locked.len(),
        );
    }
    let exit = replica.sigterm().await;
    assert!(exit.success(), "{exit:?}");

    assert!(slack.limited().is_empty(), "no 429: {:?}", slack.limited());
    let store = Store::embedded(dir.path()).unwrap();
    let maybe = maybe_not_reached(&store, &slack.calls("chat.postMessage")).await;
    let reported: HashSet<usize> = maybe.iter().map(|(n, _)| *n).collect();
    assert_eq!(reported.len(), maybe.len(), "each message is reported once: {maybe:?}");
    let in_flight: HashSet<usize> = held.iter().filter_map(|s| Message::number(&s.content)).collect();
    assert_eq!(reported, in_flight, "exactly the sends in flight at the kill are reported");
    let sent = helpdesk.sent();
    assert_each_message_once_in_order(&messages, &threads, &sent, &reported);
    assert!(
        held.iter().all(|h| sent.iter().filter(|s| s.content == h.content).count() == 1),
        "the messages in flight at the kill were not sent again"
    );
    eprintln!("embedded kill -9: {} sends, {} reported, all {:?}", sent.len(), reported.len(), started.elapsed());
}

/// 20,000 events at the default settings (the embedded store, every limit at its default),
/// each a reply in a thread that is no ticket, which the bridge records and then handles by
/// finding no ticket: all are acknowledged, none refused; the process does not hold the
/// backlog in memory; and the backlog drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_20000_events_is_acknowledged_without_holding_the_backlog_in_memory() {
    let _turn = one_at_a_time().await;
    const EVENTS: usize = 20_000;
    const THREADS: usize = 200;
    const SENDERS: usize = 32;
    /// Generous: an in-memory backlog of 20,000 items would be about as large on its own.
    const MOST_GROWTH: u64 = 40 << 20;
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let slack = LimitedSlack::start(50).await;
    let helpdesk = RecordingHelpdesk::start(Reply::Unary("unused".to_owned())).await;
    let mut env = base_env(&slack, &helpdesk);
    env.push(("STATE_DIR", dir.path().display().to_string()));
    let replica = Replica::start("burst", &env).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = replica.rss();

    let traffic = Traffic::new(&[replica.base()]);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (traffic, next) = (traffic.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= EVENTS {
                        return;
                    }
                    let root = format!("1700000000.{:06}", n % THREADS);
                    let ts = format!("1700000100.{n:06}");
                    traffic.deliver(&thread_message("T1", "C1", "U1", &ts, &root, &format!("chatter {n}"))).await;
                }
            })
        })
        .collect();
    let mut peak = before;
    let mut deepest = 0.0_f64;
    while senders.iter().any(|s| !s.is_finished()) {
        peak = peak.max(replica.rss());
        if let Some(depth) = replica.metric("helpdesk_bridge_inbox_depth").await {
            deepest = deepest.max(depth);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for sender in senders {
        sender.await.expect("every event was delivered");
    }
    let after = replica.rss();
    peak = peak.max(after);
    let burst_took = started.elapsed();

    let tally = traffic.tally();
    assert_eq!(tally.acked, EVENTS as u64, "{tally:?}");
    assert!(tally.refused.is_empty() && tally.unreachable == 0, "none refused: {tally:?}");
    assert!(
        peak.saturating_sub(before) < MOST_GROWTH,
        "resident memory grew by {} MiB during the burst ({} MiB before, {} MiB at the peak, {} MiB after)",
        peak.saturating_sub(before) >> 20,
        before >> 20,
        peak >> 20,
        after >> 20
    );
    let drained = eventually(Duration::from_secs(120), || async {
        (replica.metric("helpdesk_bridge_inbox_depth").await? == 0.0).then_some(())
    })
    .await;
    assert!(drained.is_some(), "the backlog drains: {}", replica.metrics().await);
    assert!(helpdesk.sent().is_empty(), "threads that are no tickets reach no agent");
    let called: HashSet<String> = slack.all().into_iter().map(|c| c.method).collect();
    // At start the bridge asks who it is, learns its own name and whether Slack streams
    // natively (the warm-up's probe, which names no channel).
    let reads = HashSet::from(["auth.test".to_owned(), "users.info".to_owned(), "chat.startStream".to_owned()]);
    let probes: Vec<_> = slack.all().into_iter().filter(|c| c.method == "chat.startStream").collect();
    assert!(probes.len() <= 1 && probes.iter().all(|c| c.body["channel"] == ""), "one probe at most: {probes:?}");
    assert!(called.is_subset(&reads), "nothing is said in threads that are no tickets: {called:?}");
    eprintln!(
        "burst of {EVENTS}: acknowledged in {burst_took:?}, deepest inbox seen {deepest}, RSS {} MiB before, \
         {} MiB at the peak, {} MiB after; drained after {:?}",
        before >> 20,
        peak >> 20,
        after >> 20,
        started.elapsed()
    );
}

/// A replica is stopped (SIGTERM) while a thread's reply streams: the reply is finalised
/// with a note saying why it stops, the message is not sent again and the reply not
/// repeated after the restart, and the thread's next message is handled by the restarted
/// replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_finalises_the_reply_and_the_thread_goes_on_after_the_restart() {
    let _turn = one_at_a_time().await;
    let redis = PrivateRedis::start();
    let store = Store::redis(&redis.url(), PREFIX).unwrap();
    let slack = LimitedSlack::start(50).await;
    let chunks: Vec<String> = (0..40).map(|i| format!("part{i} ")).collect();
    let helpdesk = RecordingHelpdesk::start(Reply::Stream { chunks, gap: Duration::from_millis(250) }).await;
    let thread = Thread::new(0, 1);
    slack.channel_in(&thread.channel, &thread.team);
    seed(&store, &thread, &helpdesk.url).await;
    let mut env = base_env(&slack, &helpdesk);
    env.extend([
        ("REDIS_URL", redis.url()),
        ("REDIS_KEY_PREFIX", PREFIX.to_owned()),
        ("SHUTDOWN_GRACE_SECONDS", "3".to_owned()),
    ]);
    let mut replica = Replica::start("streaming", &env).await;
    let traffic = Traffic::new(&[replica.base()]);
    let threads = [thread.clone()];
    let first = Message::new(0, 1);
    traffic.deliver(&first.event(&thread)).await;

    let reply_ts = eventually(Duration::from_secs(15), || async {
        let post = slack.posts_in(&thread.channel, &thread.root).into_iter().next()?;
        let ts = post.ts?;
        slack.updates_of(&thread.channel, &ts).iter().any(|u| text_of(&u.body).contains("part2")).then_some(ts)
    })
    .await
    .unwrap_or_else(|| panic!("the reply streams into Slack\n{}", replica.log_tail(20)));
    let exit = replica.sigterm().await;
    assert!(exit.success(), "a clean exit: {exit:?}\n{}", replica.log_tail(20));

    let last = slack.updates_of(&thread.channel, &reply_ts).pop().expect("the reply was edited");
    assert_valid_message(&last.body);
    let text = text_of(&last.body);
    assert!(text.contains("part0 part1 part2"), "the partial reply is kept: {text}");
    assert!(text.contains("The reply was interrupted: the bridge is restarting"), "finalised with the note: {text}");
    assert!(!text.contains("part39"), "the agent had not finished: {text}");

    helpdesk.set_reply(Reply::Stream {
        chunks: vec!["All ".to_owned(), "done.".to_owned()],
        gap: Duration::from_millis(20),
    });
    replica.restart().await;
    let second = Message::new(1, 1);
    traffic.deliver(&second.event(&thread)).await;
    let finished = eventually(Duration::from_secs(20), || async {
        let posts = slack.posts_in(&thread.channel, &thread.root);
        let ts = posts.get(1)?.ts.clone()?;
        let last = slack.updates_of(&thread.channel, &ts).pop()?;
        let text = text_of(&last.body);
        (text.contains("All done.") && !text.contains("interrupted")).then_some(())
    })
    .await;
    assert!(finished.is_some(), "the next message gets its whole reply after the restart\n{}", replica.log_tail(20));

    let sent = helpdesk.sent();
    let contents: Vec<&str> = sent.iter().map(|s| s.content.as_str()).collect();
    assert_eq!(contents, [first.text.as_str(), second.text.as_str()], "each message reached the HelpDesk once");
    assert!(!sent[0].finished && sent[1].finished, "the first reply was cut by the stop, the second one whole");
    let posts: Vec<String> = slack.posts_in(&thread.channel, &thread.root).iter().map(|p| text_of(&p.body)).collect();
    assert_eq!(posts.len(), 2, "one reply per message, and no notice: {posts:#?}");
    let last = slack.updates_of(&thread.channel, &reply_ts).pop().expect("the first reply");
    assert!(text_of(&last.body).contains("the bridge is restarting"), "the first reply was not edited again");
    assert!(slack.limited().is_empty(), "no 429: {:?}", slack.limited());
    assert_each_message_once_in_order(&[first, second], &threads, &helpdesk.sent(), &HashSet::new());
}
