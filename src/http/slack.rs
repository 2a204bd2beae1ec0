//! Slack's request URLs: verify, parse, take into the dispatcher, answer. Nothing else.
//!
//! Before any of the body is read, a request must carry both signature headers, the
//! signature shaped like one and the timestamp within five minutes (else 401 at once), and
//! declare no more than [`MAX_BODY`] bytes (else 413). The body is then read within the
//! body timeout (else 408) and up to [`MAX_BODY`] (else 413), its signature verified over
//! those exact bytes (else 401, before anything is parsed or stored), parsed (malformed:
//! 400; unknown types: 200 and ignored) and submitted to the dispatcher, whose only I/O is
//! one store write. The response is Slack's ack; the HelpDesk and the Web API are never
//! called from here.
//!
//! A request without signature headers can only be Slack's unsigned `ssl_check` probe for
//! slash commands, a short form: its body is read only up to [`MAX_UNSIGNED_BODY`] (a larger
//! declared length is refused with 401 at once, a larger undeclared one with 413), within
//! the same timeout.

use std::time::Instant;

use axum::{
    Json,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::AppState;
use crate::{
    dispatch::Admission,
    slack::{
        ingress::{self, Malformed, Parsed},
        intake::{Ack, Intake},
        verify::{self, VerifyError},
    },
    telemetry::TransportLabels,
};

/// The largest body accepted; Slack's payloads are far smaller.
pub const MAX_BODY: usize = 1024 * 1024;

/// The largest body read from a request without signature headers; Slack's `ssl_check`
/// probe (`ssl_check=1&token=…`) is far smaller.
pub const MAX_UNSIGNED_BODY: usize = 4 * 1024;

/// `POST /slack/events`: the Events API.
pub async fn events(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let identity = app.identity.clone();
    let installed_only = app.installed_only;
    serve(&app, "/slack/events", &headers, body, move |bytes| match identity.get() {
        None if installed_only => ingress::parse_installed_event(bytes),
        me => ingress::parse_event(bytes, me),
    })
    .await
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
    let (outcome, response) = match read_body(app, route, headers, body).await {
        Ok(bytes) => handle(app, route, headers, &bytes, parse).await,
        Err(refused) => refused,
    };
    app.metrics.request(route, outcome);
    app.metrics
        .ack_seconds
        .get_or_create(&TransportLabels { transport: "http" })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Reads the body once the headers allow it, or says why not (outcome and answer).
async fn read_body(
    app: &AppState,
    route: &'static str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, (&'static str, Response)> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (signature, timestamp) = (header("x-slack-signature"), header("x-slack-request-timestamp"));
    let limit = if app.verifier.is_some() && signature.is_some() && timestamp.is_some() {
        if let Err(err) = verify::check_headers(signature, timestamp) {
            tracing::debug!(route, error = %err, "refused a Slack request before its body");
            return Err(refused(err));
        }
        MAX_BODY
    } else {
        if declared.is_some_and(|n| n > MAX_UNSIGNED_BODY) {
            tracing::debug!(route, "refused an unsigned request before its body");
            return Err(unsigned(app));
        }
        MAX_UNSIGNED_BODY
    };
    match tokio::time::timeout(app.body_timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(too_large()),
        Err(_) => {
            tracing::debug!(route, "a request body did not arrive in time");
            Err(("body_timeout", (StatusCode::REQUEST_TIMEOUT, "request body not received in time").into_response()))
        }
    }
}

fn too_large() -> (&'static str, Response) {
    ("too_large", (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response())
}

fn refused(err: VerifyError) -> (&'static str, Response) {
    ("bad_signature", (StatusCode::UNAUTHORIZED, err.to_string()).into_response())
}

/// The answer to a request that is not signed (and is not an `ssl_check` probe).
fn unsigned(app: &AppState) -> (&'static str, Response) {
    match &app.verifier {
        Some(_) => refused(VerifyError::MissingHeaders),
        None => socket_mode_refusal(),
    }
}

fn socket_mode_refusal() -> (&'static str, Response) {
    ("bad_signature", (StatusCode::UNAUTHORIZED, "HTTP requests are not accepted in Socket Mode").into_response())
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
        return socket_mode_refusal();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(err) = verifier.verify(header("x-slack-signature"), header("x-slack-request-timestamp"), body) {
        tracing::debug!(route, error = %err, "refused a Slack request");
        return refused(err);
    }
    let parsed = match parse(body) {
        Ok(parsed) => parsed,
        Err(err) => {
            tracing::debug!(route, error = %err, "malformed Slack request");
            return ("malformed", (StatusCode::BAD_REQUEST, "malformed request body").into_response());
        }
    };
    let intake = Intake::take(&app.dispatcher, parsed, "http").await;
    if matches!(intake, Intake::Submitted(Ok(Admission::Duplicate))) {
        tracing::debug!(route, retry = header("x-slack-retry-num"), "duplicate delivery ignored");
    }
    let response = match (&intake, intake.ack()) {
        (Intake::Challenge(challenge), _) => Json(serde_json::json!({ "challenge": challenge })).into_response(),
        (_, Ack::Now) => match intake.ack_payload() {
            Some(payload) => Json(payload).into_response(),
            None => StatusCode::OK.into_response(),
        },
        (_, Ack::Redeliver(why)) => unavailable(why),
    };
    (intake.outcome(), response)
}

/// 503 without `X-Slack-No-Retry`: Slack delivers the request again later, so nothing is
/// lost while the store or the queue is unavailable.
fn unavailable(message: &'static str) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, message).into_response()
}
