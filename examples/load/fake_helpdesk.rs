//! A stand-in for the HelpDesk that streams every reply over time: `chunks` text deltas of
//! `chunk_size` characters, `gap` apart, then `done`.
//!
//! The first delta of each reply carries a marker naming the ticket, and the time it was
//! handed to the connection is recorded, so the relay figures can find the first Slack
//! edit showing it. It knows one workspace ([`WORKSPACE_NAME`]) and one streaming agent
//! ([`AGENT_NAME`]), creates tickets (`LOAD-1`, `LOAD-2`, …), and gives everything else the
//! bridge asks (status changes, say) a plain success. It can answer every request late
//! ([`FakeHelpdesk::set_latency`]; a reply's stream starts that late), for the slow-backend
//! critical path.
//!
//! While it is *held*, replies stop after their first delta and stay open until it is
//! released (or the bridge goes away): an agent turn that takes as long as the benchmark
//! wants, holding the bridge's worker for its thread.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{Request, header},
    response::Response,
};
use serde_json::json;
use tokio::sync::watch;

use crate::bridge::{AGENT, WORKSPACE};

/// The name of the one workspace it knows, for `HELPDESK_WORKSPACE`.
pub const WORKSPACE_NAME: &str = "load";
/// The name of the one agent it knows, for `HELPDESK_AGENT`.
pub const AGENT_NAME: &str = "load-agent";

/// How replies stream.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Deltas per reply.
    pub chunks: usize,
    /// Characters per delta.
    pub chunk_size: usize,
    /// Pause before each delta.
    pub gap: Duration,
}

impl Shape {
    /// In words, for the report.
    pub fn describe(&self) -> String {
        let total = self.gap * u32::try_from(self.chunks).unwrap_or(u32::MAX);
        format!(
            "Each reply: {} deltas of {} characters, {} ms apart ({:.1} s, {:.1} kB), then `done`.",
            self.chunks,
            self.chunk_size,
            self.gap.as_millis(),
            total.as_secs_f64(),
            (self.chunks * self.chunk_size) as f64 / 1000.0
        )
    }
}

#[derive(Default)]
struct Shared {
    shape: Mutex<Option<Shape>>,
    first_delta: Mutex<HashMap<String, Instant>>,
    done: Mutex<HashMap<String, Instant>>,
    /// Messages sent to each ticket so far.
    sends_to: Mutex<HashMap<String, usize>>,
    /// True while replies are held open after their first delta.
    held: watch::Sender<bool>,
    sends: AtomicUsize,
    /// Tickets created so far.
    created: AtomicUsize,
    /// How late every answer is, in milliseconds.
    latency_ms: AtomicUsize,
    open: AtomicUsize,
    most_open: AtomicUsize,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeHelpdesk {
    /// Its base URL, for `DUPLO_HOST`.
    pub url: String,
    shared: Arc<Shared>,
}

/// The marker the first delta of `ticket`'s reply starts with.
pub fn marker(ticket: &str) -> String {
    format!("first-{ticket}-")
}

impl FakeHelpdesk {
    /// Starts the fake on a free port.
    pub async fn start(shape: Shape) -> std::io::Result<Self> {
        let shared = Arc::new(Shared { shape: Mutex::new(Some(shape)), ..Shared::default() });
        let app = axum::Router::new().fallback(serve).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                eprintln!("load: the fake HelpDesk stopped: {err}");
            }
        });
        Ok(Self { url, shared })
    }

    /// Replies from now on stream this way.
    pub fn set_shape(&self, shape: Shape) {
        *self.shared.shape.lock().unwrap() = Some(shape);
    }

    /// When the first delta of `ticket`'s latest reply left.
    pub fn first_delta(&self, ticket: &str) -> Option<Instant> {
        self.shared.first_delta.lock().unwrap().get(ticket).copied()
    }

    /// When `ticket`'s latest reply ended (its `done` left).
    pub fn done(&self, ticket: &str) -> Option<Instant> {
        self.shared.done.lock().unwrap().get(ticket).copied()
    }

    /// Messages sent to tickets so far.
    pub fn sends(&self) -> usize {
        self.shared.sends.load(Ordering::Relaxed)
    }

    /// Messages sent to `ticket` so far.
    pub fn sends_to(&self, ticket: &str) -> usize {
        self.shared.sends_to.lock().unwrap().get(ticket).copied().unwrap_or_default()
    }

    /// Answers every request this late from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.latency_ms.store(usize::try_from(latency.as_millis()).unwrap_or(usize::MAX), Ordering::Relaxed);
    }

    /// Holds replies open after their first delta (`true`) or lets them finish (`false`).
    pub fn hold(&self, held: bool) {
        self.shared.held.send_replace(held);
    }

    /// Replies streaming now.
    pub fn open(&self) -> usize {
        self.shared.open.load(Ordering::Relaxed)
    }

    /// The most replies that streamed at once, since the last reset.
    pub fn take_most_open(&self) -> usize {
        self.shared.most_open.swap(self.open(), Ordering::Relaxed)
    }
}

fn json_body(value: &serde_json::Value) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(value.to_string()))
        .expect("a static response")
}

async fn serve(State(shared): State<Arc<Shared>>, request: Request<Body>) -> Response {
    let path = request.uri().path().to_owned();
    tokio::time::sleep(Duration::from_millis(shared.latency_ms.load(Ordering::Relaxed) as u64)).await;
    let found = |data: serde_json::Value| json_body(&json!({"success": true, "data": data}));
    let workspace = json!({"id": WORKSPACE, "name": WORKSPACE_NAME});
    let agent = json!({"id": AGENT, "name": AGENT_NAME, "metaData": {"STREAMING_ENABLED": "true"}});
    if path.contains("/admin/data/aiagents/") {
        return found(agent);
    }
    if path.ends_with("/admin/data/aiagents") {
        return found(json!({"items": [agent]}));
    }
    if path.ends_with("/admin/data/workspaces") {
        return found(json!({"items": [workspace]}));
    }
    if path.contains("/admin/data/workspaces/") {
        return found(workspace);
    }
    if request.method() == axum::http::Method::POST && path.ends_with(&format!("/tickets/{WORKSPACE}")) {
        let n = shared.created.fetch_add(1, Ordering::Relaxed) + 1;
        let body = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        return found(json!({"id": format!("t{n}"), "name": format!("LOAD-{n}"), "title": body["title"],
            "aiAgentId": AGENT, "workspaceId": WORKSPACE}));
    }
    if !path.ends_with("/sendMessageStreaming") {
        return found(json!({}));
    }
    let ticket = path.rsplit('/').nth(1).unwrap_or_default().to_owned();
    // The request body is read so the client sees a normal exchange; its content is not needed.
    let _ = axum::body::to_bytes(request.into_body(), 1 << 20).await;
    shared.sends.fetch_add(1, Ordering::Relaxed);
    *shared.sends_to.lock().unwrap().entry(ticket.clone()).or_default() += 1;
    let shape = shared.shape.lock().unwrap().expect("a shape is set at start");
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let open = shared.open.fetch_add(1, Ordering::Relaxed) + 1;
    shared.most_open.fetch_max(open, Ordering::Relaxed);
    tokio::spawn(async move {
        let filler: String = "lorem ipsum dolor sit amet ".chars().cycle().take(shape.chunk_size).collect();
        for i in 0..shape.chunks {
            tokio::time::sleep(shape.gap).await;
            let text = if i == 0 { format!("{}{filler}", marker(&ticket)) } else { filler.clone() };
            let frame = format!("event: message\ndata: {}\n\n", json!({"type": "text_delta", "text": text}));
            if i == 0 {
                shared.first_delta.lock().unwrap().insert(ticket.clone(), Instant::now());
            }
            if tx.send(Ok(Bytes::from(frame))).await.is_err() {
                break;
            }
            if i == 0 {
                let mut held = shared.held.subscribe();
                tokio::select! {
                    _ = held.wait_for(|held| !*held) => {}
                    () = tx.closed() => break,
                }
            }
        }
        let done = "event: message\ndata: {\"type\":\"done\",\"stop_reason\":\"end_turn\"}\n\n";
        let _ = tx.send(Ok(Bytes::from(done))).await;
        shared.done.lock().unwrap().insert(ticket.clone(), Instant::now());
        shared.open.fetch_sub(1, Ordering::Relaxed);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .expect("a static response")
}
