//! Hostile clients against the real listener: connections that trickle headers or bodies,
//! unsigned requests announcing large bodies, more connections than the cap.
//!
//! Timeouts are short here so the tests run fast; every bound a test waits on is generous
//! and fails only when the limit is not enforced at all.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use helpdesk_bridge::{
    config::IngressConfig,
    inbound::InboundKind,
    slack::verify::{Verifier, unix_now},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinHandle,
};

use crate::support::{
    app::{Options, SECRET, spawn_app},
    eventually,
    payloads::message_event,
};

/// What a [`Slow`] client has done and seen so far.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Bytes of the trickled part written.
    pub written: usize,
    /// Everything the server sent.
    pub received: Vec<u8>,
    /// The server closed the connection (or reset it).
    pub closed: bool,
}

impl Seen {
    /// The status code of the first final (non-1xx) response received, if any.
    pub fn status(&self) -> Option<u16> {
        let text = String::from_utf8_lossy(&self.received);
        text.split("\r\n\r\n")
            .filter_map(|head| head.strip_prefix("HTTP/1.1 "))
            .filter_map(|rest| rest.get(..3)?.parse::<u16>().ok())
            .find(|code| *code >= 200)
    }
}

/// A client that sends one part of a request at once and the rest a byte at a time, and
/// keeps reading until the server closes the connection.
pub struct Slow {
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

impl Slow {
    /// Connects, writes `at_once`, then one byte of `trickled` every `every`.
    pub async fn start(addr: SocketAddr, at_once: Vec<u8>, trickled: Vec<u8>, every: Duration) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connects");
        let (mut reader, mut writer) = stream.into_split();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let task = tokio::spawn({
            let seen = seen.clone();
            async move {
                let mut writing = writer.write_all(&at_once).await.is_ok();
                let mut ticker = tokio::time::interval(every);
                let mut buf = [0u8; 4096];
                let mut next = 0;
                loop {
                    tokio::select! {
                        read = reader.read(&mut buf) => match read {
                            Ok(0) | Err(_) => break,
                            Ok(n) => seen.lock().unwrap().received.extend_from_slice(&buf[..n]),
                        },
                        _ = ticker.tick(), if writing && next < trickled.len() => {
                            if writer.write_all(&trickled[next..=next]).await.is_err() {
                                writing = false;
                                continue;
                            }
                            next += 1;
                            seen.lock().unwrap().written = next;
                        }
                    }
                }
                seen.lock().unwrap().closed = true;
            }
        });
        Self { seen, task }
    }

    /// What it has done and seen so far.
    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// Waits up to `patience` for the server to close the connection.
    pub async fn closed_within(mut self, patience: Duration) -> Option<Seen> {
        let ended = tokio::time::timeout(patience, &mut self.task).await.is_ok();
        ended.then(|| self.seen())
    }
}

impl Drop for Slow {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A request head that takes `padding` bytes more than a real one, so that trickled a byte
/// at a time it is never complete within a test.
pub fn endless_head(addr: SocketAddr, padding: usize) -> Vec<u8> {
    format!(
        "POST /slack/events HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nx-padding: {}\r\n\r\n",
        "a".repeat(padding)
    )
    .into_bytes()
}

/// The head of a signed `POST` of `body` to `route`, as Slack sends it, with extra lines.
fn signed_head(addr: SocketAddr, route: &str, body: &[u8], extra: &str) -> Vec<u8> {
    let ts = unix_now().to_string();
    let signature = Verifier::new(SECRET.to_owned().into()).sign(&ts, body);
    format!(
        "POST {route} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         x-slack-request-timestamp: {ts}\r\nx-slack-signature: {signature}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes()
}

/// 50 connections trickling request headers a byte at a time neither delay a signed
/// request (answered and dispatched while they trickle) nor hold the shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_connections_delay_neither_a_signed_request_nor_shutdown() {
    let grace = Duration::from_secs(2);
    let ingress = IngressConfig { header_timeout: Duration::from_secs(10), ..IngressConfig::default() };
    let mut app = spawn_app(Options::default().config(|c| {
        c.shutdown_grace = grace;
        c.ingress = ingress;
    }))
    .await;
    // 4 KiB at 20 bytes a second: minutes, far past every bound below.
    let head = endless_head(app.addr, 4096);
    let mut junk = Vec::new();
    for _ in 0..50 {
        junk.push(Slow::start(app.addr, Vec::new(), head.clone(), Duration::from_millis(50)).await);
    }
    let trickling =
        eventually(Duration::from_secs(10), || async { junk.iter().all(|j| j.seen().written >= 3).then_some(()) })
            .await;
    assert!(trickling.is_some(), "the slow clients are sending headers");

    let event = message_event("EvSlow", "C1", "U1", "1700000000.001100", Some("1700000000.000100"), "still there?");
    let answered = tokio::time::timeout(Duration::from_secs(10), app.post_event(&event)).await;
    assert_eq!(answered.expect("answered while they trickle").status(), 200);
    let taken = app.taken(1).await;
    let InboundKind::Message(message) = &taken[0].kind else { panic!("{taken:?}") };
    assert_eq!(message.text, "still there?");
    let seen: Vec<Seen> = junk.iter().map(Slow::seen).collect();
    assert!(
        seen.iter().all(|s| !s.closed && s.received.is_empty() && s.written < head.len()),
        "answered and dispatched while all 50 were still trickling: {:?}",
        seen.iter().filter(|s| s.closed).count()
    );

    let bound = grace + ingress.header_timeout;
    let stopped = tokio::time::timeout(bound, app.shut_down()).await;
    assert!(stopped.is_ok(), "run_until_stopped did not return within the grace plus the header timeout");
    stopped.unwrap().expect("a clean stop");
    for (n, client) in junk.into_iter().enumerate() {
        let seen = client.closed_within(Duration::from_secs(10)).await;
        let seen = seen.unwrap_or_else(|| panic!("slow client {n} is still connected after the app stopped"));
        assert!(seen.written < head.len(), "closed while still sending its headers");
        assert_eq!(seen.status(), None, "nothing was answered to a request never complete");
    }
}

/// A client that trickles its headers past the header timeout is disconnected.
#[tokio::test]
async fn a_request_head_trickling_past_the_header_timeout_is_cut_off() {
    let ingress = IngressConfig { header_timeout: Duration::from_secs(1), ..IngressConfig::default() };
    let app = spawn_app(Options::default().config(|c| c.ingress = ingress)).await;
    let head = endless_head(app.addr, 4096);
    let client = Slow::start(app.addr, Vec::new(), head.clone(), Duration::from_millis(50)).await;
    // The head would take more than 200 s; the bound is far past the 1 s timeout.
    let seen = client.closed_within(Duration::from_secs(30)).await.expect("the server closed the connection");
    assert!(seen.written < head.len(), "cut off before the head was complete ({} bytes)", seen.written);
    assert_eq!(seen.status(), None);
    assert!(app.recorder.taken().is_empty());
}

/// Without the signature headers, or with ones that cannot be valid (stale, malformed),
/// the answer is 401 before any of the body is sent; a declared body past the limit is 413.
#[tokio::test]
async fn requests_failing_the_header_checks_are_refused_before_their_body() {
    // A server that waited for the body would not answer within the bound below.
    let ingress = IngressConfig { body_timeout: Duration::from_secs(120), ..IngressConfig::default() };
    let app = spawn_app(Options::default().config(|c| c.ingress = ingress)).await;
    let now = unix_now();
    let well_formed = format!("v0={}", "0".repeat(64));
    let cases: Vec<(&str, String, u16)> = vec![
        ("no signature headers", String::new(), 401),
        ("no signature", format!("x-slack-request-timestamp: {now}\r\n"), 401),
        ("no timestamp", format!("x-slack-signature: {well_formed}\r\n"), 401),
        (
            "stale timestamp",
            format!("x-slack-request-timestamp: {}\r\nx-slack-signature: {well_formed}\r\n", now - 600),
            401,
        ),
        (
            "future timestamp",
            format!("x-slack-request-timestamp: {}\r\nx-slack-signature: {well_formed}\r\n", now + 600),
            401,
        ),
        (
            "timestamp far out of range",
            format!("x-slack-request-timestamp: -9223372036854775808\r\nx-slack-signature: {well_formed}\r\n"),
            401,
        ),
        ("malformed signature", format!("x-slack-request-timestamp: {now}\r\nx-slack-signature: v0=zz\r\n"), 401),
        ("unsigned, over the limit", "content-length: 1048577\r\n".to_owned(), 413),
    ];
    let mut refused = 0;
    for route in ["/slack/events", "/slack/interactivity", "/slack/commands"] {
        for (case, headers, expected) in &cases {
            let length = if headers.contains("content-length") { "" } else { "content-length: 1048576\r\n" };
            let head = format!(
                "POST {route} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n{length}{headers}\r\n",
                app.addr
            );
            let client = Slow::start(app.addr, head.into_bytes(), Vec::new(), Duration::from_secs(1)).await;
            let answered = eventually(Duration::from_secs(10), || async { client.seen().status() }).await;
            assert_eq!(
                answered,
                Some(*expected),
                "{route}: {case}: {:?}",
                String::from_utf8_lossy(&client.seen().received)
            );
            if *expected == 401 {
                refused += 1;
            }
        }
    }
    assert!(app.recorder.taken().is_empty());
    let metrics = app.metrics().await;
    let bad = ["/slack/events", "/slack/interactivity", "/slack/commands"].map(|route| {
        format!(r#"helpdesk_bridge_requests_total{{route="{route}",outcome="bad_signature"}} {}"#, refused / 3)
    });
    for line in bad {
        assert!(metrics.contains(&line), "missing {line} in\n{metrics}");
    }
}

/// A signed request whose body trickles past the body timeout is refused (408, or the
/// connection closed) before the body is complete, and nothing is dispatched.
#[tokio::test]
async fn a_body_trickling_past_the_body_timeout_is_refused() {
    let ingress = IngressConfig { body_timeout: Duration::from_secs(1), ..IngressConfig::default() };
    let app = spawn_app(Options::default().config(|c| c.ingress = ingress)).await;
    let event = message_event("EvTrickle", "C1", "U1", "1700000000.001200", Some("1700000000.000100"), "slowly");
    let body = event.to_string().into_bytes();
    let head = signed_head(app.addr, "/slack/events", &body, "");
    // At 20 bytes a second the body takes far longer than the bound below.
    assert!(body.len() > 300);
    let client = Slow::start(app.addr, head, body.clone(), Duration::from_millis(50)).await;
    let seen = client.closed_within(Duration::from_secs(10)).await.expect("refused within the bound");
    assert!(seen.written < body.len(), "refused before the body was complete ({} bytes)", seen.written);
    assert!(matches!(seen.status(), Some(408) | None), "{:?}", String::from_utf8_lossy(&seen.received));
    let metrics = app.metrics().await;
    let line = r#"helpdesk_bridge_requests_total{route="/slack/events",outcome="body_timeout"} 1"#;
    assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(app.recorder.taken().is_empty(), "nothing was dispatched");

    // The same request sent at once is accepted: the refusal was about time alone.
    assert_eq!(app.post_event(&event).await.status(), 200);
    assert_eq!(app.taken(1).await.len(), 1);
}

/// At the connection cap, connections sending headers give way to a new one, so junk held
/// open cannot keep a signed request out.
#[tokio::test]
async fn at_the_connection_cap_idle_junk_makes_room_for_a_signed_request() {
    let ingress = IngressConfig { header_timeout: Duration::from_secs(60), max_connections: 8, ..Default::default() };
    let app = spawn_app(Options::default().config(|c| c.ingress = ingress)).await;
    let head = endless_head(app.addr, 4096);
    let mut junk = Vec::new();
    for _ in 0..8 {
        junk.push(Slow::start(app.addr, Vec::new(), head.clone(), Duration::from_millis(50)).await);
    }
    let trickling =
        eventually(Duration::from_secs(10), || async { junk.iter().all(|j| j.seen().written >= 3).then_some(()) })
            .await;
    assert!(trickling.is_some());

    // A client of its own: no kept-alive connection from the readiness checks.
    let event = message_event("EvCap", "C1", "U1", "1700000000.001300", Some("1700000000.000100"), "let me in");
    let body = event.to_string();
    let ts = unix_now().to_string();
    let signature = Verifier::new(SECRET.to_owned().into()).sign(&ts, body.as_bytes());
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .post(app.url("/slack/events"))
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", signature)
        .body(body)
        .send()
        .await
        .expect("the signed request gets a connection");
    assert_eq!(response.status(), 200);
    let taken = app.taken(1).await;
    let InboundKind::Message(message) = &taken[0].kind else { panic!("{taken:?}") };
    assert_eq!(message.text, "let me in");

    let closed = eventually(Duration::from_secs(10), || async {
        let closed: Vec<usize> = (0..junk.len()).filter(|&n| junk[n].seen().closed).collect();
        (!closed.is_empty()).then_some(closed)
    })
    .await;
    assert_eq!(closed, Some(vec![0]), "exactly the oldest junk connection made room");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(junk.iter().filter(|j| j.seen().closed).count(), 1, "the others are still held");
}

/// When every connection at the cap has a request in flight, a new connection is closed at
/// once rather than queued behind them.
#[tokio::test]
async fn at_the_connection_cap_with_every_request_in_flight_a_new_connection_is_closed() {
    let ingress = IngressConfig { body_timeout: Duration::from_secs(60), max_connections: 4, ..Default::default() };
    let app = spawn_app(Options::default().config(|c| c.ingress = ingress)).await;
    let event = message_event("EvBusy", "C1", "U1", "1700000000.001400", Some("1700000000.000100"), "busy");
    let body = event.to_string().into_bytes();
    let mut busy = Vec::new();
    for _ in 0..4 {
        // `Expect: 100-continue` makes the server say when the route starts reading the body.
        let head = signed_head(app.addr, "/slack/events", &body, "expect: 100-continue\r\n");
        busy.push(Slow::start(app.addr, head, body.clone(), Duration::from_millis(500)).await);
    }
    let reading = eventually(Duration::from_secs(10), || async {
        busy.iter()
            .all(|b| String::from_utf8_lossy(&b.seen().received).starts_with("HTTP/1.1 100 Continue"))
            .then_some(())
    })
    .await;
    assert!(reading.is_some(), "every request is in flight");

    let probe = format!("GET /healthz HTTP/1.1\r\nhost: {}\r\n\r\n", app.addr).into_bytes();
    let client = Slow::start(app.addr, probe, Vec::new(), Duration::from_secs(1)).await;
    let seen = client.closed_within(Duration::from_secs(10)).await.expect("closed at once");
    assert!(seen.received.is_empty(), "closed without an answer: {:?}", String::from_utf8_lossy(&seen.received));
    assert!(busy.iter().all(|b| !b.seen().closed), "the requests in flight go on");
}
