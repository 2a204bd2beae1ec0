//! The durable inbox: what the ack path records, how workers lease keys, take over the keys
//! of a dead holder, and never send a message blindly twice. Store-level behaviour runs on
//! both backends; the send rule runs through the real router.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use helpdesk_bridge::{
    model::TicketStatus,
    slack::controls::action,
    store::{Finished, Pushed, SendMark, Store},
};

use crate::support::{
    app::{Backend, Options, spawn_app},
    fakes::{assert_valid_message, seed, text_of},
    on_both_stores,
    payloads::{click, message_event},
};

on_both_stores!(
    a_key_is_leased_to_one_worker_and_its_items_come_in_order,
    a_dedup_mark_and_its_item_are_recorded_together,
    a_full_inbox_refuses_without_spending_the_mark,
    a_lapsed_lease_is_taken_over_and_fences_its_old_holder,
    a_renewed_lease_is_not_taken_over,
    a_released_key_goes_back_to_the_waiting_ones,
    concurrent_workers_never_share_a_key,
    send_marks_record_how_far_a_send_got,
);

const LEASE: Duration = Duration::from_secs(30);
const MAX: u64 = 1_000_000;

async fn push(store: &Store, key: &str, item: &str) -> Pushed {
    store.inbox_push(&format!("dedup:{item}"), Duration::from_secs(600), key, item.as_bytes(), MAX).await.unwrap()
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

async fn a_key_is_leased_to_one_worker_and_its_items_come_in_order(store: &Store) {
    for (key, item) in [("a", "a1"), ("b", "b1"), ("a", "a2"), ("a", "a3")] {
        assert_eq!(push(store, key, item).await, Pushed::Accepted);
    }
    assert_eq!(store.inbox_stats().await.unwrap().depth, 4);
    let a = store.inbox_claim(LEASE).await.unwrap().expect("a waits");
    assert_eq!((a.key.as_str(), text(&a.head), a.taken_over), ("a", "a1", false));
    let b = store.inbox_claim(LEASE).await.unwrap().expect("b waits");
    assert_eq!((b.key.as_str(), text(&b.head)), ("b", "b1"));
    assert!(store.inbox_claim(LEASE).await.unwrap().is_none(), "a is leased, so nothing else waits");
    assert_eq!(store.inbox_stats().await.unwrap().leased, 2);
    // An item recorded for a leased key waits behind the lease, not as a new key.
    assert_eq!(push(store, "b", "b2").await, Pushed::Accepted);
    assert!(store.inbox_claim(LEASE).await.unwrap().is_none());
    assert_eq!(store.inbox_done(&a, LEASE, true).await.unwrap(), Finished::Next(b"a2".to_vec()));
    assert_eq!(store.inbox_done(&a, LEASE, true).await.unwrap(), Finished::Next(b"a3".to_vec()));
    assert_eq!(store.inbox_done(&a, LEASE, true).await.unwrap(), Finished::Released);
    assert_eq!(store.inbox_done(&b, LEASE, true).await.unwrap(), Finished::Next(b"b2".to_vec()));
    assert_eq!(store.inbox_done(&b, LEASE, true).await.unwrap(), Finished::Released);
    let stats = store.inbox_stats().await.unwrap();
    assert_eq!((stats.depth, stats.leased, stats.oldest_wait), (0, 0, None));
    assert!(store.inbox_claim(LEASE).await.unwrap().is_none());
}

async fn a_dedup_mark_and_its_item_are_recorded_together(store: &Store) {
    assert_eq!(push(store, "a", "x").await, Pushed::Accepted);
    assert_eq!(push(store, "a", "x").await, Pushed::Duplicate, "the retry meets the mark");
    assert_eq!(store.inbox_stats().await.unwrap().depth, 1);
    assert!(!store.mark_once("dedup:x", Duration::from_secs(60)).await.unwrap(), "the mark is the store's usual one");
    let claim = store.inbox_claim(LEASE).await.unwrap().unwrap();
    assert_eq!(store.inbox_done(&claim, LEASE, true).await.unwrap(), Finished::Released);
    assert_eq!(push(store, "a", "x").await, Pushed::Duplicate, "handled items stay marked");
}

async fn a_full_inbox_refuses_without_spending_the_mark(store: &Store) {
    let ttl = Duration::from_secs(600);
    assert_eq!(store.inbox_push("d1", ttl, "a", b"1", 2).await.unwrap(), Pushed::Accepted);
    assert_eq!(store.inbox_push("d2", ttl, "b", b"2", 2).await.unwrap(), Pushed::Accepted);
    assert_eq!(store.inbox_push("d3", ttl, "c", b"3", 2).await.unwrap(), Pushed::Full);
    let claim = store.inbox_claim(LEASE).await.unwrap().unwrap();
    store.inbox_done(&claim, LEASE, true).await.unwrap();
    assert_eq!(store.inbox_push("d3", ttl, "c", b"3", 2).await.unwrap(), Pushed::Accepted, "the redelivery fits now");
}

async fn a_lapsed_lease_is_taken_over_and_fences_its_old_holder(store: &Store) {
    push(store, "a", "a1").await;
    push(store, "a", "a2").await;
    let short = Duration::from_millis(200);
    let first = store.inbox_claim(short).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = store.inbox_claim(LEASE).await.unwrap().expect("the lapsed key is taken over");
    assert_eq!((second.key.as_str(), text(&second.head), second.taken_over), ("a", "a1", true));
    assert!(second.token > first.token, "a later lease has a larger fencing token");
    assert!(!store.inbox_renew(&first, LEASE).await.unwrap(), "the old holder cannot renew");
    assert_eq!(store.inbox_done(&first, LEASE, true).await.unwrap(), Finished::Lost, "nor finish the item");
    assert_eq!(store.inbox_done(&second, LEASE, true).await.unwrap(), Finished::Next(b"a2".to_vec()));
    assert_eq!(store.inbox_done(&second, LEASE, true).await.unwrap(), Finished::Released);
    assert_eq!(store.inbox_stats().await.unwrap().depth, 0);
}

async fn a_renewed_lease_is_not_taken_over(store: &Store) {
    push(store, "a", "a1").await;
    let lease = Duration::from_secs(2);
    let claim = store.inbox_claim(lease).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(store.inbox_renew(&claim, lease).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(store.inbox_claim(lease).await.unwrap().is_none(), "renewed until 3 s, so still held at 2.5 s");
}

async fn a_released_key_goes_back_to_the_waiting_ones(store: &Store) {
    push(store, "a", "a1").await;
    let claim = store.inbox_claim(LEASE).await.unwrap().unwrap();
    store.inbox_release(&claim).await.unwrap();
    let again = store.inbox_claim(LEASE).await.unwrap().expect("the key waits again");
    assert_eq!((again.key.as_str(), text(&again.head), again.taken_over), ("a", "a1", false));
    assert_eq!(store.inbox_done(&again, LEASE, false).await.unwrap(), Finished::Released);
}

async fn concurrent_workers_never_share_a_key(store: &Store) {
    const KEYS: usize = 5;
    const PER_KEY: usize = 12;
    for n in 0..PER_KEY {
        for k in 0..KEYS {
            push(store, &format!("k{k}"), &format!("k{k}:{n:02}")).await;
        }
    }
    let held = Arc::new(Mutex::new(HashSet::new()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (store, held, seen) = (store.clone(), held.clone(), seen.clone());
            tokio::spawn(async move {
                while let Some(mut claim) = store.inbox_claim(LEASE).await.unwrap() {
                    assert!(held.lock().unwrap().insert(claim.key.clone()), "{} held twice", claim.key);
                    loop {
                        seen.lock().unwrap().push(String::from_utf8(claim.head.clone()).unwrap());
                        tokio::task::yield_now().await;
                        // Give the key back now and then, so that keys change hands.
                        let more = !rand::random::<u8>().is_multiple_of(3);
                        if !more {
                            held.lock().unwrap().remove(&claim.key);
                        }
                        match store.inbox_done(&claim, LEASE, more).await.unwrap() {
                            Finished::Next(next) => claim.head = next,
                            Finished::Released => break,
                            Finished::Lost => panic!("no lease lapses here"),
                        }
                    }
                    held.lock().unwrap().remove(&claim.key);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), KEYS * PER_KEY, "every item once");
    for k in 0..KEYS {
        let order: Vec<&String> = seen.iter().filter(|s| s.starts_with(&format!("k{k}:"))).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "key k{k} in order");
    }
    assert_eq!(store.inbox_stats().await.unwrap().depth, 0);
}

async fn send_marks_record_how_far_a_send_got(store: &Store) {
    assert_eq!(store.begin_send("msg:T1:C1:1.1").await.unwrap(), None, "the first attempt goes ahead");
    assert_eq!(store.begin_send("msg:T1:C1:1.1").await.unwrap(), Some(SendMark::Started));
    store.mark_send("msg:T1:C1:1.1", SendMark::Accepted).await.unwrap();
    assert_eq!(store.begin_send("msg:T1:C1:1.1").await.unwrap(), Some(SendMark::Accepted));
    store.mark_send("msg:T1:C1:1.1", SendMark::Finished).await.unwrap();
    assert_eq!(store.begin_send("msg:T1:C1:1.1").await.unwrap(), Some(SendMark::Finished));
    assert_eq!(store.begin_send("msg:T1:C1:1.2").await.unwrap(), None, "another message is another send");
}

/// The embedded store belongs to one process: keys that process held when it was killed are
/// taken over by the next one, unfinished item first.
#[tokio::test]
async fn an_embedded_restart_takes_over_what_was_leased() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::embedded(dir.path()).unwrap();
        push(&store, "a", "a1").await;
        push(&store, "a", "a2").await;
        push(&store, "b", "b1").await;
        let held = store.inbox_claim(LEASE).await.unwrap().unwrap();
        assert_eq!(text(&held.head), "a1");
    }
    let store = Store::embedded(dir.path()).unwrap();
    let mut claims = Vec::new();
    while let Some(claim) = store.inbox_claim(LEASE).await.unwrap() {
        claims.push((claim.key.clone(), String::from_utf8(claim.head.clone()).unwrap(), claim.taken_over));
    }
    claims.sort();
    assert_eq!(claims, [("a".to_owned(), "a1".to_owned(), true), ("b".to_owned(), "b1".to_owned(), false)]);
    assert_eq!(store.inbox_stats().await.unwrap().depth, 3);
}

const ROOT: &str = "1700000000.000100";

/// A message whose send had started on a replica that died is not sent again by the one
/// that takes it over: the thread says it may not have reached the agent and offers *Send
/// again*, which sends it exactly once. A send that was accepted gets the interrupted-reply
/// note instead, and one that finished gets nothing.
#[tokio::test]
async fn a_taken_over_send_is_never_repeated_blindly() {
    for backend in [Backend::Redis, Backend::Embedded] {
        let app = spawn_app(Options::bridge(backend)).await;
        seed(&app.store, ROOT, "DEVOPS-1", TicketStatus::Open, "U1", 1).await;
        // What a replica that died mid-send left behind, for three messages of the thread.
        app.store.begin_send("msg:T1:C1:1700000000.000200").await.unwrap();
        app.store.begin_send("msg:T1:C1:1700000000.000300").await.unwrap();
        app.store.mark_send("msg:T1:C1:1700000000.000300", SendMark::Accepted).await.unwrap();
        app.store.begin_send("msg:T1:C1:1700000000.000400").await.unwrap();
        app.store.mark_send("msg:T1:C1:1700000000.000400", SendMark::Finished).await.unwrap();
        for (n, ts) in ["200", "300", "400", "500"].iter().enumerate() {
            let event = message_event(&format!("Ev{n}"), "C1", "U1", &format!("1700000000.000{ts}"), Some(ROOT), ts);
            assert_eq!(app.post_event(&event).await.status(), 200);
        }
        let sent = app.sends("DEVOPS-1", 1).await;
        assert_eq!(sent[0]["content"], "500", "{backend:?}: only the message never started is sent");
        let maybe = app.wait_slack("chat.postMessage", 1, |c| text_of(c).contains("may not have reached")).await;
        assert_valid_message(&maybe[0]);
        let button = &maybe[0]["blocks"][1]["elements"][0];
        assert_eq!(
            (button["text"]["text"].as_str(), button["action_id"].as_str()),
            (Some("Send again"), Some(action::RETRY))
        );
        let cut = app.wait_slack("chat.postMessage", 1, |c| text_of(c).contains("reply was interrupted")).await;
        assert!(text_of(&cut[0]).contains("restarting"), "{backend:?}: {}", text_of(&cut[0]));

        let value = button["value"].as_str().unwrap();
        let press = click("U1", "1800000000.000009", ROOT, action::RETRY, value, "tr-again");
        assert_eq!(app.post_interaction(&press).await.status(), 200);
        let sent = app.sends("DEVOPS-1", 2).await;
        assert_eq!(sent[1]["content"], "200", "{backend:?}: Send again sends it");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let contents: Vec<_> =
            app.helpdesk_calls("POST", "/DEVOPS-1/sendMessage").await.iter().map(|c| c["content"].clone()).collect();
        assert_eq!(contents, ["500", "200"], "{backend:?}: nothing else was sent");
    }
}
