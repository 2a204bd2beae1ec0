//! A HelpDesk stand-in for the replica tests: it records every message sent to a ticket
//! (which ticket, the content, which replica sent it, whether its reply finished) and
//! answers with a short reply, unary or streamed, after a set latency. Sends can be held at
//! a gate, so that a test has them in flight for as long as it likes.
//!
//! The agent's streaming flag is answered from [`Reply`]; everything else (status changes)
//! gets a plain success.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{Request, header},
    response::Response,
};
use serde_json::{Value, json};

/// How the HelpDesk answers a send.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A unary JSON reply with this text.
    Unary(String),
    /// Server-sent events: these text deltas, `gap` apart, then `done`.
    Stream {
        /// The deltas.
        chunks: Vec<String>,
        /// The pause before each delta.
        gap: Duration,
    },
}

/// One message the HelpDesk received.
#[derive(Clone, Debug)]
pub struct Sent {
    /// The ticket's name.
    pub ticket: String,
    /// The message's `content`.
    pub content: String,
    /// The sender's bearer token (the replica, when each has its own `DUPLO_TOKEN`).
    pub token: String,
    /// Its reply was begun (its headers sent): the sender knows the HelpDesk took it.
    pub answered: bool,
    /// The reply was sent to the end.
    pub finished: bool,
}

struct Shared {
    reply: Mutex<Reply>,
    latency: Mutex<Duration>,
    open: tokio::sync::watch::Sender<bool>,
    sent: Mutex<Vec<Sent>>,
}

/// The running fake.
#[derive(Clone)]
pub struct RecordingHelpdesk {
    /// Its base URL, for `DUPLO_HOST`.
    pub url: String,
    shared: Arc<Shared>,
}

impl RecordingHelpdesk {
    /// Starts the fake answering every send with `reply`, its gate open.
    pub async fn start(reply: Reply) -> Self {
        let (open, _) = tokio::sync::watch::channel(true);
        let shared = Arc::new(Shared {
            reply: Mutex::new(reply),
            latency: Mutex::new(Duration::ZERO),
            open,
            sent: Mutex::new(Vec::new()),
        });
        let url = super::serve(axum::Router::new().fallback(serve).with_state(shared.clone())).await;
        Self { url, shared }
    }

    /// Sends from now on get `reply`.
    pub fn set_reply(&self, reply: Reply) {
        *self.shared.reply.lock().unwrap() = reply;
    }

    /// Sends from now on are answered (the reply's headers sent) only after `latency`: the
    /// time the agent takes to accept a message.
    pub fn set_latency(&self, latency: Duration) {
        *self.shared.latency.lock().unwrap() = latency;
    }

    /// Holds every send (received and recorded, not answered) until [`Self::open_gate`].
    pub fn close_gate(&self) {
        self.shared.open.send_replace(false);
    }

    /// Answers the held sends and lets the next ones through.
    pub fn open_gate(&self) {
        self.shared.open.send_replace(true);
    }

    /// The messages received and not answered yet (held at the gate, or waiting out the
    /// latency), in arrival order.
    pub fn held(&self) -> Vec<Sent> {
        self.sent().into_iter().filter(|s| !s.answered).collect()
    }

    /// Every message received so far, in arrival order.
    pub fn sent(&self) -> Vec<Sent> {
        self.shared.sent.lock().unwrap().clone()
    }
}

fn json_body(value: &Value) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(value.to_string()))
        .expect("a static response")
}

async fn serve(State(shared): State<Arc<Shared>>, request: Request<Body>) -> Response {
    let path = request.uri().path().to_owned();
    let streams = matches!(*shared.reply.lock().unwrap(), Reply::Stream { .. });
    if path.contains("/admin/data/aiagents/") {
        let id = path.rsplit('/').next().unwrap_or_default();
        return json_body(&json!({"success": true, "data": {"id": id, "name": super::fakes::AGENT_NAME,
            "metaData": {"STREAMING_ENABLED": if streams { "true" } else { "false" }}}}));
    }
    if !path.ends_with("/sendMessage") && !path.ends_with("/sendMessageStreaming") {
        return json_body(&json!({"success": true, "data": {}}));
    }
    let ticket = path.rsplit('/').nth(1).unwrap_or_default().to_owned();
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim_start_matches("Bearer ")
        .to_owned();
    let bytes = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let content = body["content"].as_str().unwrap_or_default().to_owned();
    let index = {
        let mut sent = shared.sent.lock().unwrap();
        sent.push(Sent { ticket, content, token, answered: false, finished: false });
        sent.len() - 1
    };
    // Held sends wait here; a replica that dies meanwhile drops the connection, and this
    // future with it.
    let mut open = shared.open.subscribe();
    let _ = open.wait_for(|open| *open).await;
    let latency = *shared.latency.lock().unwrap();
    tokio::time::sleep(latency).await;
    shared.sent.lock().unwrap()[index].answered = true;
    let reply = shared.reply.lock().unwrap().clone();
    let finished = move |shared: &Shared| shared.sent.lock().unwrap()[index].finished = true;
    match reply {
        Reply::Unary(text) => {
            finished(&shared);
            json_body(&json!({"role": "assistant", "content": text, "data": {}}))
        }
        Reply::Stream { chunks, gap } => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
            tokio::spawn(async move {
                for chunk in chunks {
                    tokio::time::sleep(gap).await;
                    let frame = format!("event: message\ndata: {}\n\n", json!({"type": "text_delta", "text": chunk}));
                    if tx.send(Ok(Bytes::from(frame))).await.is_err() {
                        return;
                    }
                }
                let done = "event: message\ndata: {\"type\":\"done\",\"stop_reason\":\"end_turn\"}\n\n";
                if tx.send(Ok(Bytes::from(done))).await.is_ok() {
                    finished(&shared);
                }
            });
            let stream =
                futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(Body::from_stream(stream))
                .expect("a static response")
        }
    }
}
