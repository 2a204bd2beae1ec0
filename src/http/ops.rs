//! Operations endpoints: liveness, readiness, metrics.

use std::{sync::atomic::Ordering, time::Duration};

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use super::AppState;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the store answers, Slack accepted the token, and in Socket Mode at least
/// one socket is connected. 503 with the failing checks otherwise.
pub async fn readyz(State(app): State<AppState>) -> Response {
    let store = matches!(tokio::time::timeout(Duration::from_secs(2), app.store.ping()).await, Ok(Ok(())));
    // Without SLACK_BOT_TOKEN there is no token of its own to check: installations are
    // checked as they are used.
    let slack_auth = app.identity.get().is_some() || app.installed_only;
    let socket = app.socket_connections.as_ref().map(|n| n.load(Ordering::SeqCst) > 0);
    let ready = store && slack_auth && socket.unwrap_or(true);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({
        "ready": ready,
        "checks": { "store": store, "slack_auth": slack_auth, "socket": socket },
    });
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text exposition. The inbox's gauges are read from the store
/// now (it is shared by every replica); if it does not answer in time they keep their last
/// values.
pub async fn metrics(State(app): State<AppState>) -> Response {
    if let Ok(Ok(stats)) = tokio::time::timeout(Duration::from_secs(1), app.store.inbox_stats()).await {
        app.metrics.inbox_depth.set(i64::try_from(stats.depth).unwrap_or(i64::MAX));
        app.metrics.inbox_oldest_wait_seconds.set(stats.oldest_wait.unwrap_or_default().as_secs_f64());
        app.metrics.inbox_leases.set(i64::try_from(stats.leased).unwrap_or(i64::MAX));
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], app.metrics.render())
        .into_response()
}
