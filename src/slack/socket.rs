//! Socket Mode: Slack's events, interactions and slash commands over WebSockets.
//!
//! Two connections are kept open (Slack delivers each envelope on one of them), so a
//! refresh or a dropped socket on one never leaves the app deaf. Each connection loop:
//! `apps.connections.open` → connect → `hello` (now it counts as connected for `/readyz`)
//! → for each envelope: parse with the same ingress as HTTP, take it into the dispatcher
//! (one store round trip) and ack it with its `envelope_id`. An envelope that cannot be
//! taken (store down, queue full) is not acked, so Slack delivers it again: the rule is
//! [`super::intake`]'s, the same as for HTTP. `disconnect` envelopes, closed or silent
//! sockets and failed connects lead to a reconnect with capped exponential backoff.
//!
//! slack-morphism has a Socket Mode listener, but it reports no connection state (so
//! readiness could not follow the socket) and acks only after its own parse; this loop is
//! small and built on the same tokio-tungstenite.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::{
    dispatch::Dispatcher,
    slack::{
        api::SlackApi,
        identity::BotIdentity,
        ingress,
        intake::{Ack, Intake},
    },
    telemetry::{Metrics, TransportLabels},
};

/// Connections kept open at once.
pub const CONNECTIONS: usize = 2;
/// Longest wait between reconnect attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A socket that says nothing (not even a ping) for this long is presumed dead.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The envelope around every Socket Mode message.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    envelope_id: Option<String>,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    reason: Option<String>,
}

/// The Socket Mode client.
#[derive(Clone)]
pub struct SocketMode {
    api: SlackApi,
    dispatcher: Dispatcher,
    identity: Arc<OnceLock<BotIdentity>>,
    connected: Arc<AtomicUsize>,
    metrics: Metrics,
}

impl std::fmt::Debug for SocketMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketMode").field("connected", &self.connected.load(Ordering::Relaxed)).finish()
    }
}

enum Ended {
    /// Slack asked us to reconnect, or closed the socket after a hello.
    Reconnect,
    /// The connection failed before it was usable.
    Failed(String),
    /// Shutdown.
    Cancelled,
}

impl SocketMode {
    /// A client that feeds `dispatcher` and counts live sockets in `connected`.
    pub fn new(
        api: SlackApi,
        dispatcher: Dispatcher,
        identity: Arc<OnceLock<BotIdentity>>,
        connected: Arc<AtomicUsize>,
        metrics: Metrics,
    ) -> Self {
        Self { api, dispatcher, identity, connected, metrics }
    }

    /// Keeps one connection alive until `cancel` fires.
    pub async fn run(self, slot: usize, cancel: CancellationToken) {
        let mut backoff = Duration::from_secs(1);
        loop {
            match self.connect_once(&cancel).await {
                Ended::Cancelled => return,
                Ended::Reconnect => {
                    backoff = Duration::from_secs(1);
                    tracing::info!(slot, "Socket Mode connection ended; reconnecting");
                    // A short pause keeps a server that closes every socket at once from
                    // turning this loop into a busy one.
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(250)) => {}
                    }
                    continue;
                }
                Ended::Failed(reason) => {
                    tracing::warn!(slot, %reason, retry_in = ?backoff, "Socket Mode connection failed");
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn connect_once(&self, cancel: &CancellationToken) -> Ended {
        // Events cannot be filtered before the bot knows who it is.
        if self.identity.get().is_none() {
            return Ended::Failed("waiting for auth.test".to_owned());
        }
        let url = match self.api.open_socket_url().await {
            Ok(url) => url,
            Err(err) => return Ended::Failed(err.to_string()),
        };
        let mut socket =
            match tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(url.as_str())).await {
                Ok(Ok((socket, _))) => socket,
                Ok(Err(err)) => return Ended::Failed(err.to_string()),
                Err(_) => return Ended::Failed("connect timed out".to_owned()),
            };
        let mut live = LiveGuard { counter: &self.connected, counted: false };
        loop {
            let frame = tokio::select! {
                () = cancel.cancelled() => {
                    let _ = socket.close(None).await;
                    return Ended::Cancelled;
                }
                frame = tokio::time::timeout(IDLE_TIMEOUT, socket.next()) => frame,
            };
            let text = match frame {
                Err(_) => return ended(&live, "the socket went silent"),
                Ok(None) => return ended(&live, "the socket closed"),
                Ok(Some(Err(err))) => return ended(&live, &err.to_string()),
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(Message::Close(_)))) => return ended(&live, "Slack closed the socket"),
                Ok(Some(Ok(_))) => continue,
            };
            let Ok(envelope) = serde_json::from_str::<Envelope>(text.as_str()) else {
                tracing::debug!("ignoring a Socket Mode frame that is not an envelope");
                continue;
            };
            match envelope.kind.as_str() {
                "hello" => live.count(),
                "disconnect" => {
                    tracing::info!(
                        reason = envelope.reason.as_deref().unwrap_or("unknown"),
                        "Slack asked to reconnect"
                    );
                    let _ = socket.close(None).await;
                    return Ended::Reconnect;
                }
                _ => {
                    let started = std::time::Instant::now();
                    let Envelope { kind, envelope_id, payload, .. } = envelope;
                    let (ack, answer) = self.take(&kind, payload.unwrap_or(Value::Null)).await;
                    if let (true, Some(id)) = (ack, envelope_id.as_deref()) {
                        let mut frame = serde_json::json!({ "envelope_id": id });
                        if let Some(answer) = answer {
                            frame["payload"] = answer;
                        }
                        let frame = frame.to_string();
                        if let Err(err) = socket.send(Message::text(frame)).await {
                            return ended(&live, &err.to_string());
                        }
                    }
                    self.metrics
                        .ack_seconds
                        .get_or_create(&TransportLabels { transport: "socket" })
                        .observe(started.elapsed().as_secs_f64());
                }
            }
        }
    }

    /// Takes an envelope into the dispatcher; returns whether to ack it, and what the ack
    /// carries.
    async fn take(&self, kind: &str, payload: Value) -> (bool, Option<Value>) {
        let parsed = match kind {
            "events_api" => ingress::event_from_value(payload, self.identity.get()),
            "interactive" => ingress::interaction_from_value(payload),
            "slash_commands" => ingress::command_from_value(payload),
            other => {
                tracing::debug!(kind = other, "ignoring an unknown Socket Mode envelope type");
                return (true, None);
            }
        };
        let (outcome, ack, answer) = match parsed {
            Ok(parsed) => {
                let intake = Intake::take(&self.dispatcher, parsed, "socket").await;
                (intake.outcome(), intake.ack() == Ack::Now, intake.ack_payload())
            }
            // Acked: Slack would only deliver the same unreadable payload again.
            Err(err) => {
                tracing::debug!(error = %err, "malformed Socket Mode payload");
                ("malformed", true, None)
            }
        };
        self.metrics.request("socket", outcome);
        (ack, answer)
    }
}

/// Counts a socket as connected from its hello until it ends.
struct LiveGuard<'a> {
    counter: &'a AtomicUsize,
    counted: bool,
}

impl LiveGuard<'_> {
    fn count(&mut self) {
        if !self.counted {
            self.counted = true;
            self.counter.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.counter.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn ended(live: &LiveGuard<'_>, reason: &str) -> Ended {
    if live.counted { Ended::Reconnect } else { Ended::Failed(reason.to_owned()) }
}
