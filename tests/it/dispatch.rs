//! Ordering and concurrency of dispatched items, through the real router.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use helpdesk_bridge::inbound::InboundKind;
use tokio::sync::Notify;

use crate::support::{
    app::{Backend, Options, Persistent, Recorder, spawn_app},
    payloads::message_event,
};

/// Four threads' messages arrive interleaved and concurrently; each thread's messages are
/// handled in the order they arrived, while the handler takes a random while for each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_of_one_thread_are_handled_in_arrival_order() {
    let recorder = Recorder {
        hook: Some(Arc::new(|_| {
            Box::pin(async {
                let pause = rand::random::<u64>() % 4;
                tokio::time::sleep(Duration::from_millis(pause)).await;
            })
        })),
        ..Default::default()
    };
    let app = Arc::new(spawn_app(Options::recording(recorder)).await);
    const THREADS: usize = 4;
    const PER_THREAD: usize = 25;
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let app = app.clone();
            tokio::spawn(async move {
                for n in 0..PER_THREAD {
                    let thread = format!("1700000000.10000{t}");
                    let ts = format!("1700000001.{t}{n:05}");
                    let event = message_event(&format!("Ev{t}-{n}"), "C1", "U1", &ts, Some(&thread), &n.to_string());
                    assert_eq!(app.post_event(&event).await.status(), 200);
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let taken = app.taken(THREADS * PER_THREAD).await;
    let mut per_thread: HashMap<String, Vec<usize>> = HashMap::new();
    for item in &taken {
        let InboundKind::Message(m) = &item.kind else { panic!() };
        per_thread.entry(m.thread_ts.clone().unwrap().to_string()).or_default().push(m.text.parse().unwrap());
    }
    assert_eq!(per_thread.len(), THREADS);
    for (thread, order) in per_thread {
        assert_eq!(order, (0..PER_THREAD).collect::<Vec<_>>(), "thread {thread} out of order");
    }
}

/// A slow item in one thread does not hold up another thread: thread A's handler waits
/// until thread B's item has been handled, which would never happen if they were serial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_threads_run_in_parallel() {
    let b_done = Arc::new(Notify::new());
    let order = Arc::new(Mutex::new(Vec::new()));
    let hook_done = b_done.clone();
    let hook_order = order.clone();
    let recorder = Recorder {
        hook: Some(Arc::new(move |item| {
            let b_done = hook_done.clone();
            let order = hook_order.clone();
            Box::pin(async move {
                let InboundKind::Message(m) = &item.kind else { return };
                if m.text == "A" {
                    let waited = tokio::time::timeout(Duration::from_secs(5), b_done.notified()).await;
                    order.lock().unwrap().push(if waited.is_ok() { "A after B" } else { "A timed out" });
                } else {
                    order.lock().unwrap().push("B");
                    b_done.notify_one();
                }
            })
        })),
        ..Default::default()
    };
    let app = spawn_app(Options::recording(recorder)).await;
    let a = message_event("EvA", "C1", "U1", "1700000002.000001", Some("1700000002.000000"), "A");
    let b = message_event("EvB", "C1", "U1", "1700000003.000001", Some("1700000003.000000"), "B");
    assert_eq!(app.post_event(&a).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(app.post_event(&b).await.status(), 200);
    app.taken(2).await;
    assert_eq!(*order.lock().unwrap(), ["B", "A after B"]);
}

/// At shutdown the item in hand finishes, and the items behind it stay in the inbox: the
/// next process handles them, in order, on either store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_item_in_hand_and_leaves_the_rest_to_the_next_process() {
    for backend in [Backend::Redis, Backend::Embedded] {
        let state = Persistent::new();
        let started = Arc::new(Notify::new());
        let hook_started = started.clone();
        let recorder = Recorder {
            hook: Some(Arc::new(move |_| {
                hook_started.notify_one();
                Box::pin(tokio::time::sleep(Duration::from_millis(300)))
            })),
            ..Default::default()
        };
        let app = spawn_app(state.recording(recorder.clone(), backend)).await;
        for n in 0..3 {
            let ts = format!("1700000004.00000{}", n + 1);
            let event = message_event(&format!("EvS{n}"), "C1", "U1", &ts, Some("1700000004.000000"), &n.to_string());
            assert_eq!(app.post_event(&event).await.status(), 200);
        }
        tokio::time::timeout(Duration::from_secs(10), started.notified()).await.expect("the first item started");
        app.stop_keeping_state().await;
        let texts = |items: Vec<helpdesk_bridge::inbound::Inbound>| -> Vec<String> {
            items
                .into_iter()
                .map(|item| match item.kind {
                    InboundKind::Message(m) => m.text,
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(texts(recorder.taken()), ["0"], "{backend:?}: only the item in hand ran");

        let next = spawn_app(state.recording(Recorder::default(), backend)).await;
        assert_eq!(texts(next.taken(2).await), ["1", "2"], "{backend:?}: the rest, in order, after the restart");
        let metrics = next.metrics().await;
        assert!(metrics.contains("helpdesk_bridge_inbox_depth 0"), "{backend:?}: {metrics}");
        assert!(metrics.contains("helpdesk_bridge_inbox_wait_seconds_count 2"), "{backend:?}: {metrics}");
        assert!(
            metrics.contains(r#"helpdesk_bridge_inbox_items_total{outcome="handled"} 2"#),
            "{backend:?}: {metrics}"
        );
    }
}
