//! A HelpDesk stand-in that streams replies over time (wiremock answers all at once):
//! server-sent events with set gaps, ending cleanly, breaking off, or going silent.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{body::Body, extract::State, http::Request, response::Response};
use bytes::Bytes;
use serde_json::{Value, json};

/// How a scripted stream ends.
#[derive(Clone, Debug)]
pub enum End {
    /// A `done` event.
    Done,
    /// The connection breaks without `done`.
    Break,
    /// Nothing more is sent for this long (past the bridge's idle timeout).
    Silence(Duration),
}

/// One scripted reply.
#[derive(Clone, Debug)]
pub struct Script {
    /// Pause before the first event.
    pub first_after: Duration,
    /// The events' JSON, in order.
    pub events: Vec<Value>,
    /// Pause between events.
    pub gap: Duration,
    /// How it ends.
    pub end: End,
}

impl Script {
    /// Text deltas `gap` apart, then `done`.
    pub fn deltas(chunks: &[&str], gap: Duration) -> Self {
        Self {
            first_after: Duration::ZERO,
            events: chunks.iter().map(|c| json!({"type": "text_delta", "text": c})).collect(),
            gap,
            end: End::Done,
        }
    }
}

/// A request the server saw, and when its reply finished.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub body: Value,
    pub arrived: Instant,
    pub finished: Option<Instant>,
}

#[derive(Clone, Default)]
struct Shared {
    scripts: Arc<Mutex<VecDeque<Script>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// The running server.
pub struct TimedHelpdesk {
    pub url: String,
    shared: Shared,
}

impl TimedHelpdesk {
    /// Starts a server that plays `scripts` in order, one per send (the last repeats).
    /// Other requests (status changes) are answered `200 {}` and not recorded.
    pub async fn start(scripts: Vec<Script>) -> Self {
        let shared = Shared { scripts: Arc::new(Mutex::new(scripts.into())), ..Shared::default() };
        let url = super::serve(axum::Router::new().fallback(serve).with_state(shared.clone())).await;
        Self { url, shared }
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

async fn serve(State(shared): State<Shared>, request: Request<Body>) -> Response {
    let path = request.uri().path().to_owned();
    if !path.contains("/sendMessage") {
        return Response::builder().header("content-type", "application/json").body(Body::from("{}")).unwrap();
    }
    let bytes = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let index = {
        let mut seen = shared.seen.lock().unwrap();
        seen.push(Seen { path, body, arrived: Instant::now(), finished: None });
        seen.len() - 1
    };
    let script = {
        let mut scripts = shared.scripts.lock().unwrap();
        if scripts.len() > 1 { scripts.pop_front().unwrap() } else { scripts.front().cloned().expect("a script") }
    };
    let seen = shared.seen.clone();
    let stream = async_stream(script, move || {
        seen.lock().unwrap()[index].finished = Some(Instant::now());
    });
    Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(stream)).unwrap()
}

fn async_stream(
    script: Script,
    on_end: impl FnOnce() + Send + 'static,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        tokio::time::sleep(script.first_after).await;
        for (i, event) in script.events.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(script.gap).await;
            }
            let frame = format!("event: message\ndata: {event}\n\n");
            if tx.send(Ok(Bytes::from(frame))).await.is_err() {
                return;
            }
        }
        match script.end {
            End::Done => {
                let _ = tx
                    .send(Ok(Bytes::from("event: message\ndata: {\"type\":\"done\",\"stop_reason\":\"end_turn\"}\n\n")))
                    .await;
            }
            End::Break => {
                // Let what was sent reach the client before the connection breaks.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = tx.send(Err(std::io::Error::other("connection reset by the test"))).await;
            }
            End::Silence(pause) => tokio::time::sleep(pause).await,
        }
        on_end();
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}
