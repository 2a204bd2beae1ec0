//! Slack's request URLs: verify, parse, take into the dispatcher, answer. Nothing else.
//!
//! Every route reads the raw body (at most [`MAX_BODY`] bytes, else 413), verifies its
//! signature over those exact bytes (else 401, before anything is parsed or stored), parses
//! it (malformed: 400; unknown types: 200 and ignored) and submits the result to the
//! dispatcher, whose only I/O is one store write. The response is Slack's ack; the HelpDesk
//! and the Web API are never called from here.

use std::time::Instant;

use axum::{
    Json,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{
    app::AppState,
    dispatch::{Admission, DispatchError},
    slack::ingress::{self, Malformed, Parsed},
    telemetry::TransportLabels,
};

/// The largest body accepted; Slack's payloads are far smaller.
pub const MAX_BODY: usize = 1024 * 1024;

/// `POST /slack/events`: the Events API.
pub async fn events(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let identity = app.identity.clone();
    serve(&app, "/slack/events", &headers, body, move |bytes| ingress::parse_event(bytes, identity.get())).await
}

/// `POST /slack/interactivity`: buttons, modals, shortcuts.
pub async fn interactivity(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    serve(&app, "/slack/interactivity", &headers, body, ingress::parse_interaction_form).await
}

/// `POST /slack/commands`: slash commands.
pub async fn commands(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    serve(&app, "/slack/commands", &headers, body, ingress::parse_command_form).await
}

async fn serve(
    app: &AppState,
    route: &'static str,
    headers: &HeaderMap,
    body: Body,
    parse: impl FnOnce(&[u8]) -> Result<Parsed, Malformed>,
) -> Response {
    let started = Instant::now();
    let (outcome, response) = match read_body(headers, body).await {
        Some(bytes) => handle(app, route, headers, &bytes, parse).await,
        None => ("too_large", (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response()),
    };
    app.metrics.request(route, outcome);
    app.metrics
        .ack_seconds
        .get_or_create(&TransportLabels { transport: "http" })
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn read_body(headers: &HeaderMap, body: Body) -> Option<Bytes> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return None;
    }
    axum::body::to_bytes(body, MAX_BODY).await.ok()
}

async fn handle(
    app: &AppState,
    route: &'static str,
    headers: &HeaderMap,
    body: &[u8],
    parse: impl FnOnce(&[u8]) -> Result<Parsed, Malformed>,
) -> (&'static str, Response) {
    // Slack's certificate probe for slash commands carries no signature and asks nothing.
    if route == "/slack/commands" && ingress::is_ssl_check(body) {
        return ("ssl_check", StatusCode::OK.into_response());
    }
    let Some(verifier) = &app.verifier else {
        return (
            "bad_signature",
            (StatusCode::UNAUTHORIZED, "HTTP requests are not accepted in Socket Mode").into_response(),
        );
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(err) = verifier.verify(header("x-slack-signature"), header("x-slack-request-timestamp"), body) {
        tracing::debug!(route, error = %err, "refused a Slack request");
        return ("bad_signature", (StatusCode::UNAUTHORIZED, err.to_string()).into_response());
    }
    let retry = header("x-slack-retry-num");
    match parse(body) {
        Err(err) => {
            tracing::debug!(route, error = %err, "malformed Slack request");
            ("malformed", (StatusCode::BAD_REQUEST, "malformed request body").into_response())
        }
        Ok(Parsed::Challenge(challenge)) => {
            ("challenge", Json(serde_json::json!({ "challenge": challenge })).into_response())
        }
        Ok(Parsed::Ignored(why)) => {
            tracing::debug!(route, why, "ignored a Slack request");
            ("ignored", StatusCode::OK.into_response())
        }
        Ok(Parsed::NotReady) => ("not_ready", unavailable("not ready: waiting for Slack auth.test")),
        Ok(Parsed::Inbound(item)) => match app.dispatcher.submit(item).await {
            Ok(Admission::Accepted) => ("ok", StatusCode::OK.into_response()),
            Ok(Admission::Duplicate) => {
                tracing::debug!(route, retry, "duplicate delivery ignored");
                ("duplicate", StatusCode::OK.into_response())
            }
            Err(DispatchError::Busy) => ("busy", unavailable("too busy; retry later")),
            Err(DispatchError::ShuttingDown) => ("shutting_down", unavailable("shutting down")),
            Err(DispatchError::Store(err)) => {
                tracing::warn!(route, error = %err, "cannot take a Slack request; Slack will retry it");
                ("unavailable", unavailable("state store unavailable; retry later"))
            }
        },
    }
}

/// 503 without `X-Slack-No-Retry`: Slack delivers the request again later, so nothing is
/// lost while the store or the queue is unavailable.
fn unavailable(message: &'static str) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, message).into_response()
}
