//! Slack budgets shared by replicas: the token buckets in Redis, drawn from by several
//! store handles under one prefix as replicas would, and two applications on one Redis
//! and one Slack, where a 429 one of them sees holds the other back.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use helpdesk_bridge::{
    model::{HistoryEvent, TicketStatus},
    store::{Allowance, Store},
};
use serde_json::json;
use wiremock::{Mock, ResponseTemplate, matchers::path};

use crate::support::{
    app::{Backend, Options, spawn_app},
    eventually,
    fakes::{mount_reply, seed},
    payloads::message_event,
    redis::{redis_url, unique_prefix},
    store::TestStore,
};

/// Replicas of one deployment: store handles of their own under one prefix.
async fn replicas(n: usize) -> (String, Vec<Store>) {
    let prefix = unique_prefix();
    let stores: Vec<Store> = (0..n).map(|_| Store::redis(&redis_url(), &prefix).unwrap()).collect();
    stores[0].ping().await.expect("Redis answers");
    (prefix, stores)
}

/// Every draw granted and every wait answered while `tasks` drawers (spread over the
/// replicas) draw as fast as they are allowed until `deadline`.
async fn draw_until(stores: &[Store], tasks: usize, allowance: Allowance, deadline: Instant) -> (usize, Vec<Duration>) {
    let granted = Arc::new(AtomicUsize::new(0));
    let mut drawers = Vec::new();
    for n in 0..tasks {
        let (store, granted) = (stores[n % stores.len()].clone(), granted.clone());
        drawers.push(tokio::spawn(async move {
            let mut waits = Vec::new();
            while Instant::now() < deadline {
                match store.draw_budget("posts", "C1", allowance, 0).await.unwrap() {
                    Some(Ok(())) => {
                        granted.fetch_add(1, Ordering::SeqCst);
                    }
                    Some(Err(wait)) => {
                        waits.push(wait);
                        tokio::time::sleep(wait.min(deadline.saturating_duration_since(Instant::now()))).await;
                    }
                    None => panic!("a Redis store shares its budgets"),
                }
            }
            waits
        }));
    }
    let mut waits = Vec::new();
    for drawer in drawers {
        waits.extend(drawer.await.unwrap());
    }
    (granted.load(Ordering::SeqCst), waits)
}

/// Four greedy drawers on two replicas get one budget between them, not one each: the
/// burst and then the refill rate, never more (`slack::pace`'s proptest bound, for the
/// shared bucket). Each wait is what one token takes to come back, so nobody spins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_drawing_at_once_share_one_budget() {
    let (_prefix, stores) = replicas(2).await;
    let allowance = Allowance::new(120, 5);
    let start = Instant::now();
    let (granted, waits) = draw_until(&stores, 4, allowance, start + Duration::from_secs(3)).await;
    let elapsed = start.elapsed().as_secs_f64();
    let most = f64::from(allowance.burst()) + allowance.per_second() * elapsed + 1.0;
    assert!(granted >= 5, "the burst is there at once: {granted}");
    assert!(granted as f64 <= most, "{granted} draws granted in {elapsed:.2} s; at most {most:.1} allowed");
    let one_token = Duration::from_secs_f64(1.0 / allowance.per_second()) + Duration::from_millis(1);
    assert!(!waits.is_empty(), "the drawers were made to wait");
    assert!(waits.iter().all(|w| *w >= Duration::from_millis(1) && *w <= one_token), "{waits:?}");
    stores[0].purge().await.unwrap();
}

/// A 429 one replica saw empties the bucket for every replica until its `Retry-After` has
/// passed, for that budget and key only; a shorter hold does not shorten it.
#[tokio::test]
async fn a_hold_back_from_one_replica_blocks_the_others() {
    let (_prefix, stores) = replicas(2).await;
    let (a, b) = (&stores[0], &stores[1]);
    let allowance = Allowance::new(50, 5);
    assert!(a.hold_back_budget("edits", "T1", Duration::from_secs(5)).await.unwrap());
    let wait = b.draw_budget("edits", "T1", allowance, 0).await.unwrap().unwrap().unwrap_err();
    assert!(wait > Duration::from_secs(4) && wait <= Duration::from_secs(5), "{wait:?}");
    assert!(b.hold_back_budget("edits", "T1", Duration::from_secs(1)).await.unwrap());
    let wait = a.draw_budget("edits", "T1", allowance, 0).await.unwrap().unwrap().unwrap_err();
    assert!(wait > Duration::from_secs(4), "the longer hold stays: {wait:?}");
    assert_eq!(b.draw_budget("edits", "T2", allowance, 0).await.unwrap(), Some(Ok(())), "another workspace");
    assert_eq!(b.draw_budget("reactions", "T1", allowance, 0).await.unwrap(), Some(Ok(())), "another budget");
    a.purge().await.unwrap();
}

/// Progress edits leave the reserve in the shared bucket for edits that finish
/// something, whichever replica makes them.
#[tokio::test]
async fn progress_leaves_the_shared_reserve_to_what_finishes() {
    let (_prefix, stores) = replicas(2).await;
    // A slow refill: nothing comes back while the test runs.
    let allowance = Allowance::new(10, 5);
    let draw = |n: usize, reserve: u32| stores[n % 2].draw_budget("edits", "T1", allowance, reserve);
    for n in 0..3 {
        assert_eq!(draw(n, 2).await.unwrap(), Some(Ok(())), "progress edit {n}");
    }
    assert!(draw(3, 2).await.unwrap().unwrap().is_err(), "the reserve is kept");
    assert_eq!(draw(4, 0).await.unwrap(), Some(Ok(())));
    assert_eq!(draw(5, 0).await.unwrap(), Some(Ok(())));
    assert!(draw(6, 0).await.unwrap().unwrap().is_err(), "the budget is spent");
    assert!(draw(7, 9).await.unwrap().unwrap().is_err(), "a reserve past the burst is lowered, not refused");
    stores[0].purge().await.unwrap();
}

/// A restarted replica starts from the bucket as the others left it, not a full one; an
/// idle bucket's key expires (it is full again by then).
#[tokio::test]
async fn a_restart_does_not_refill_the_budget_and_idle_buckets_expire() {
    let (prefix, stores) = replicas(1).await;
    let allowance = Allowance::new(10, 3);
    for _ in 0..3 {
        assert_eq!(stores[0].draw_budget("posts", "C1", allowance, 0).await.unwrap(), Some(Ok(())));
    }
    drop(stores);
    let restarted = Store::redis(&redis_url(), &prefix).unwrap();
    assert!(restarted.draw_budget("posts", "C1", allowance, 0).await.unwrap().unwrap().is_err());
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg(format!("{prefix}budget:posts:C1")).query_async(&mut conn).await.unwrap();
    assert!(ttl > 60_000 && ttl <= 120_000, "bucket TTL {ttl} ms");
    restarted.purge().await.unwrap();
}

/// The embedded store serves one process, which keeps its budgets in memory.
#[tokio::test]
async fn the_embedded_store_shares_no_budget() {
    let store = TestStore::embedded();
    let allowance = Allowance::new(10, 3);
    assert_eq!(store.store.draw_budget("posts", "C1", allowance, 0).await.unwrap(), None);
    assert!(!store.store.hold_back_budget("posts", "C1", Duration::from_secs(5)).await.unwrap());
}

/// Two replicas of the bridge on one Redis and one Slack. Slack answers one replica's
/// reaction with a 429 asking for 30 s; the other replica then records a note in the same
/// workspace but does not react until then, while the shared bucket says how long is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_one_replica_sees_holds_back_the_other() {
    let prefix = unique_prefix();
    let first = spawn_app(Options::bridge(Backend::Redis).config(|c| c.store.key_prefix.clone_from(&prefix))).await;
    let (slack_url, helpdesk_url) = (first.slack.uri(), first.helpdesk.uri());
    let second = spawn_app(Options::bridge(Backend::Redis).config(|c| {
        c.store.key_prefix.clone_from(&prefix);
        c.slack.api_url = format!("{slack_url}/");
        c.helpdesk.host.clone_from(&helpdesk_url);
    }))
    .await;
    let limited = |retry_after: &str| {
        ResponseTemplate::new(429)
            .insert_header("Retry-After", retry_after)
            .set_body_json(json!({"ok": false, "error": "ratelimited"}))
    };
    // The very first 429 holds the shared budget back: the bridge retries paced calls itself.
    Mock::given(path("/reactions.add"))
        .respond_with(limited("30"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&first.slack)
        .await;
    let root = "1700000000.000100";
    let record = seed(&first.store, root, "DEVOPS-1", TicketStatus::Open, "U1", 1).await;
    mount_reply(&first.helpdesk, "DEVOPS-1", json!({"role": "assistant", "content": "Noted.", "data": {}})).await;

    first.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(root), "note: one")).await;
    first.wait_slack("reactions.add", 1, |_| true).await;
    let held = eventually(Duration::from_secs(10), || async {
        let answer = first.store.draw_budget("reactions", "T1", Allowance::new(50, 5), 0).await.unwrap();
        answer.and_then(Result::err).filter(|wait| *wait > Duration::from_secs(20))
    })
    .await;
    assert!(held.is_some(), "the 429's Retry-After holds back the workspace's shared reactions");

    second.post_event(&message_event("Ev2", "C1", "U2", "1700000000.000300", Some(root), "note: two")).await;
    let noted = eventually(Duration::from_secs(10), || async {
        let entries = second.store.history(&record.ticket).await.unwrap();
        entries.iter().any(|e| e.event == HistoryEvent::Comment { text: "two".into() }).then_some(())
    })
    .await;
    assert!(noted.is_some(), "the second replica recorded its note");
    // Its reaction comes next, unless the shared budget holds it back, as it does.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(first.slack_calls("reactions.add").await.len(), 1, "no reaction during the hold");
}
