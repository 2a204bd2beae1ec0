//! The store's hot operations on both backends: the dedup mark every inbound item sets,
//! the thread lookup every thread message needs, and a card decision.
//!
//! Run with `cargo bench --bench store` (needs Redis at `REDIS_URL`, default
//! `redis://127.0.0.1:6379`). Before timing, it counts the Redis commands one inbound
//! message costs on the hot path (dedup mark + thread lookup) and prints the figure.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use criterion::{Criterion, criterion_group, criterion_main};
use helpdesk_bridge::{
    ids::{AgentId, CardId, ChannelId, MessageTs, TeamId, ThreadKey, TicketKey, TicketName, UserId, WorkspaceId},
    model::{Card, CardState, Decision, ProposedCommand, TicketRecord, TicketStatus},
    store::Store,
};

fn thread() -> ThreadKey {
    ThreadKey { team: TeamId::new("T1"), channel: ChannelId::new("C1"), thread_ts: MessageTs::new("1700000000.000100") }
}

fn ticket() -> TicketKey {
    TicketKey {
        host: "https://acme.duplocloud.net".to_owned(),
        workspace: WorkspaceId::new("65f0c0ffee0000000000abcd"),
        ticket: TicketName::new("DEVOPS-1"),
    }
}

async fn seed(store: &Store) {
    let record = TicketRecord {
        thread: thread(),
        ticket: ticket(),
        title: "Pods crash-looping".to_owned(),
        agent_id: AgentId::new("a1"),
        agent_name: "k8s".to_owned(),
        agent_streams: None,
        requester: UserId::new("U1"),
        assignee: None,
        status: TicketStatus::Pending,
        header_ts: Some(MessageTs::new("1700000000.000200")),
        permalink: None,
        participants: Vec::new(),
        adopted: false,
        always_allow: Vec::new(),
        previous: Vec::new(),
        created_at: 1,
        updated_at: 1,
    };
    store.create_ticket(&record).await.unwrap();
    let command = |c: &str| ProposedCommand::new(Default::default(), String::new(), c.to_owned());
    let card = Card {
        id: CardId::new("bench"),
        ticket: ticket(),
        thread: thread(),
        messages: vec![MessageTs::new("1700000000.000300")],
        commands: (0..10).map(|n| command(&format!("kubectl get pods -n ns-{n}"))).collect(),
        state: CardState::Open,
        created_at: 1,
        version: 0,
        sent: false,
        submitted_by: None,
        submitted_at: None,
    };
    store.put_card(&card).await.unwrap();
}

/// Redis commands one inbound thread message costs on the hot path.
async fn redis_round_trips_per_message(store: &Store, url: &str) -> f64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let processed = |info: String| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    const MESSAGES: u64 = 1000;
    let before: String = redis::cmd("INFO").arg("stats").query_async(&mut conn).await.unwrap();
    for n in 0..MESSAGES {
        store.mark_once(&format!("msg:T1:C1:rt{n}"), Duration::from_secs(60)).await.unwrap();
        store.ticket_by_thread(&thread()).await.unwrap();
    }
    let after: String = redis::cmd("INFO").arg("stats").query_async(&mut conn).await.unwrap();
    // The first INFO is counted in `after`.
    (processed(after) - processed(before) - 1) as f64 / MESSAGES as f64
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let _inside = runtime.enter();
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("hb-bench:{:016x}:", rand::random::<u64>());
    let redis = Store::redis(&url, &prefix).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let embedded = Store::embedded(dir.path()).unwrap();
    runtime.block_on(async {
        redis.ping().await.expect("a Redis server at REDIS_URL");
        seed(&redis).await;
        seed(&embedded).await;
        let trips = redis_round_trips_per_message(&redis, &url).await;
        println!("redis: {trips:.2} round trips per inbound message (dedup mark + thread lookup)");
    });

    for (name, store) in [("redis", &redis), ("embedded", &embedded)] {
        let mut group = c.benchmark_group(format!("store/{name}"));
        let counter = AtomicU64::new(0);
        group.bench_function("dedup_mark", |b| {
            b.to_async(&runtime).iter(|| async {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                store.mark_once(&format!("evt:bench{n}"), Duration::from_secs(60)).await.unwrap()
            })
        });
        group.bench_function("thread_lookup", |b| {
            b.to_async(&runtime).iter(|| async { store.ticket_by_thread(&thread()).await.unwrap() })
        });
        let flip = AtomicU64::new(0);
        group.bench_function("card_decision", |b| {
            b.to_async(&runtime).iter(|| async {
                let n = flip.fetch_add(1, Ordering::Relaxed);
                let decision = if n.is_multiple_of(2) { Decision::Approve } else { Decision::Ignore };
                store
                    .decide_seen(&CardId::new("bench"), (n % 10) as usize, decision, &UserId::new("U1"), n as i64, None)
                    .await
                    .unwrap()
            })
        });
        group.finish();
    }
    runtime.block_on(redis.purge()).unwrap();
}

criterion_group!(store_benches, benches);
criterion_main!(store_benches);
