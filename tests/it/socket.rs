//! Socket Mode against a local fake of Slack's WebSocket endpoint.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_tungstenite::tungstenite::Message;
use wiremock::{Mock, ResponseTemplate, matchers::path};

use crate::support::{
    app::{Backend, Options, Persistent, Recorder, spawn_app},
    eventually,
    payloads::message_event,
};

/// What the fake server saw: acks (connection number, envelope id) and connections.
struct FakeSlackSockets {
    url: String,
    acks: mpsc::UnboundedReceiver<(usize, String)>,
    connections: Arc<AtomicUsize>,
}

/// Connection 1 is closed by the server after its envelope is acked; connection 2 gets a
/// `disconnect` envelope; later connections stay open.
async fn fake_slack_sockets() -> FakeSlackSockets {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/link/?ticket=t", listener.local_addr().unwrap());
    let (tx, acks) = mpsc::unbounded_channel();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let k = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
                let hello = json!({"type": "hello", "num_connections": k, "debug_info": {"host": "fake", "approximate_connection_time": 3600}, "connection_info": {"app_id": "A1"}});
                ws.send(Message::text(hello.to_string())).await.unwrap();
                let event = message_event(
                    &format!("EvSock{k}"),
                    "C1",
                    "U1",
                    &format!("1700000005.00000{k}"),
                    Some("1700000005.000000"),
                    &format!("via socket {k}"),
                );
                let envelope = json!({"envelope_id": format!("env-{k}"), "type": "events_api", "accepts_response_payload": false, "retry_attempt": 0, "retry_reason": "", "payload": event});
                ws.send(Message::text(envelope.to_string())).await.unwrap();
                while let Some(Ok(frame)) = ws.next().await {
                    if let Message::Text(text) = frame {
                        let ack: Value = serde_json::from_str(text.as_str()).unwrap();
                        let _ = tx.send((k, ack["envelope_id"].as_str().unwrap_or_default().to_owned()));
                        break;
                    }
                }
                match k {
                    1 => {
                        let _ = ws.close(None).await;
                    }
                    2 => {
                        let disconnect = json!({"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": "fake"}});
                        let _ = ws.send(Message::text(disconnect.to_string())).await;
                        while let Some(Ok(_)) = ws.next().await {}
                    }
                    _ => while let Some(Ok(_)) = ws.next().await {},
                }
            });
        }
    });
    FakeSlackSockets { url, acks, connections }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_are_acked_and_dropped_sockets_reconnect() {
    let mut sockets = fake_slack_sockets().await;
    let app = spawn_app(Options::default().config(|c| c.slack.app_token = Some("xapp-test".to_owned().into()))).await;
    Mock::given(path("/apps.connections.open"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "url": sockets.url})))
        .mount(&app.slack)
        .await;
    app.wait_ready().await;
    // The fake drops and replaces sockets from the start, so the check may flicker; it
    // must report a live socket.
    let live = eventually(Duration::from_secs(5), || async {
        let ready: Value = app.http.get(app.url("/readyz")).send().await.ok()?.json().await.ok()?;
        (ready["checks"]["socket"] == true).then_some(())
    })
    .await;
    assert!(live.is_some(), "/readyz never reported a live socket");

    // Every envelope is acked with its own id, on the connection it came on.
    let mut acked = Vec::new();
    while acked.len() < 4 {
        let ack = tokio::time::timeout(Duration::from_secs(15), sockets.acks.recv()).await.expect("an ack").unwrap();
        assert_eq!(ack.1, format!("env-{}", ack.0));
        acked.push(ack.0);
    }
    // The closed socket (1) and the one told to disconnect (2) were both replaced.
    assert!(sockets.connections.load(Ordering::SeqCst) >= 4);
    let taken = app.taken(4).await;
    assert!(taken.len() >= 4);
    let ready = eventually(Duration::from_secs(5), || async {
        let body: Value = app.http.get(app.url("/readyz")).send().await.ok()?.json().await.ok()?;
        (body["ready"] == true).then_some(())
    })
    .await;
    assert!(ready.is_some(), "ready again after reconnecting");
}

/// Two replicas in Socket Mode on one Redis, each with its own connections: whichever one
/// Slack delivers an envelope to acks it on that connection, every item is handled exactly
/// once, and the thread's items one at a time across both replicas (they share one inbox).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_in_socket_mode_share_one_inbox() {
    let mut sockets = fake_slack_sockets().await;
    let state = Persistent::new();
    // One recorder for both replicas, which notices two items of the thread in hand at once.
    let (busy, overlapped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let (hook_busy, hook_overlapped) = (busy.clone(), overlapped.clone());
    let recorder = Recorder {
        hook: Some(Arc::new(move |_| {
            let (busy, overlapped) = (hook_busy.clone(), hook_overlapped.clone());
            Box::pin(async move {
                if busy.fetch_add(1, Ordering::SeqCst) > 0 {
                    overlapped.store(true, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                busy.fetch_sub(1, Ordering::SeqCst);
            })
        })),
        ..Default::default()
    };
    let socket_mode = |c: &mut helpdesk_bridge::config::Config| c.slack.app_token = Some("xapp-test".to_owned().into());
    let first = spawn_app(state.recording(recorder.clone(), Backend::Redis).config(socket_mode)).await;
    let second = spawn_app(state.recording(recorder.clone(), Backend::Redis).config(socket_mode)).await;
    for app in [&first, &second] {
        Mock::given(path("/apps.connections.open"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "url": sockets.url})))
            .mount(&app.slack)
            .await;
    }
    // Two connections each, and the two the fake drops replaced: six envelopes.
    let mut acked = Vec::new();
    while acked.len() < 6 {
        let ack = tokio::time::timeout(Duration::from_secs(15), sockets.acks.recv()).await.expect("an ack").unwrap();
        assert_eq!(ack.1, format!("env-{}", ack.0));
        acked.push(ack.0);
    }
    let mut handled: Vec<String> = first
        .taken(acked.len())
        .await
        .into_iter()
        .map(|item| match item.kind {
            helpdesk_bridge::inbound::InboundKind::Message(m) => m.text,
            other => panic!("{other:?}"),
        })
        .collect();
    handled.sort();
    let mut expected: Vec<String> = acked.iter().map(|k| format!("via socket {k}")).collect();
    expected.sort();
    assert_eq!(handled, expected, "each envelope's message handled once, by one replica or the other");
    assert!(!overlapped.load(Ordering::SeqCst), "the thread's items were never in hand on both replicas at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_socket_the_app_is_not_ready() {
    let app = spawn_app(Options::default().config(|c| c.slack.app_token = Some("xapp-test".to_owned().into()))).await;
    Mock::given(path("/apps.connections.open"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "invalid_auth"})))
        .mount(&app.slack)
        .await;
    // Slack auth works, so only the socket keeps it from being ready.
    let auth = eventually(Duration::from_secs(10), || async {
        let body: Value = app.http.get(app.url("/readyz")).send().await.ok()?.json().await.ok()?;
        (body["checks"]["slack_auth"] == true).then_some(body)
    })
    .await
    .expect("auth.test succeeds");
    assert_eq!(auth["ready"], false);
    assert_eq!(auth["checks"]["socket"], false);
}
