//! The HTTP surface: Slack's three request URLs and the operations endpoints.
//!
//! - [`slack`]: `POST /slack/events`, `/slack/interactivity`, `/slack/commands`.
//! - [`ops`]: `GET /healthz`, `/readyz`, `/metrics`.

pub mod ops;
pub mod slack;

use axum::{
    Router,
    routing::{get, post},
};

use crate::app::AppState;

/// The application's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/slack/events", post(slack::events))
        .route("/slack/interactivity", post(slack::interactivity))
        .route("/slack/commands", post(slack::commands))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
