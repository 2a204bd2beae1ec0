//! The HTTP surface: Slack's three request URLs and the operations endpoints.
//!
//! - [`slack`]: `POST /slack/events`, `/slack/interactivity`, `/slack/commands`.
//! - [`install`]: `GET /slack/install`, `/slack/oauth_redirect` (the OAuth install flow).
//! - [`ops`]: `GET /healthz`, `/readyz`, `/metrics`.
//! - [`listener`]: the server they run on, with header timeouts, a connection cap and a
//!   bounded shutdown.
//!
//! With `ADMIN_LISTEN_ADDR` the operations endpoints are also served on a listener of their
//! own ([`admin_router`]) and `/metrics` leaves the public one ([`public_router`]); load
//! balancers keep `/healthz` and `/readyz` on the public address.
//!
//! [`AppState`] is what every handler shares; `app` builds it and hands it to the routers,
//! so nothing here depends on `app`.

pub mod install;
pub mod listener;
pub mod ops;
pub mod slack;

use std::{
    ops::Deref,
    sync::{Arc, OnceLock, atomic::AtomicUsize},
    time::Duration,
};

use axum::{
    Router,
    routing::{get, post},
};
use tower_http::trace::{HttpMakeClassifier, TraceLayer};

use crate::{
    dispatch::Dispatcher,
    slack::{identity::BotIdentity, verify::Verifier},
    store::Store,
    telemetry::Metrics,
};

/// What the HTTP handlers share; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

/// The shared parts behind [`AppState`].
#[derive(Debug)]
pub struct Shared {
    /// Verifies HTTP requests; `None` in Socket Mode without a signing secret.
    pub verifier: Option<Verifier>,
    /// Takes inbound items.
    pub dispatcher: Dispatcher,
    /// The store.
    pub store: Store,
    /// Metrics.
    pub metrics: Metrics,
    /// The bot's identity, once `auth.test` succeeded.
    pub identity: Arc<OnceLock<BotIdentity>>,
    /// The clock approvals are timed by (tests move it on).
    pub clock: crate::model::Clock,
    /// Live Socket Mode connections; `None` when events come over HTTP.
    pub socket_connections: Option<Arc<AtomicUsize>>,
    /// How long a client may take to send the body of a request to a Slack route.
    pub body_timeout: Duration,
    /// The OAuth install flow, when the app is distributed.
    pub install: Option<install::Install>,
    /// No `SLACK_BOT_TOKEN`: every workspace is served by its installation, and no
    /// `auth.test` is waited for.
    pub installed_only: bool,
}

impl AppState {
    /// Shares `shared` among the handlers.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Every route on one listener: what is served when there is no admin listener.
pub fn router(state: AppState) -> Router {
    public_routes().route("/metrics", get(ops::metrics)).layer(trace()).with_state(state)
}

/// The public listener's routes when an admin listener serves the metrics: `/metrics` is
/// not found here.
pub fn public_router(state: AppState) -> Router {
    public_routes().layer(trace()).with_state(state)
}

/// The admin listener's routes: `/healthz`, `/readyz` and `/metrics`, nothing from Slack.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .layer(trace())
        .with_state(state)
}

fn public_routes() -> Router<AppState> {
    Router::new()
        .route("/slack/events", post(slack::events))
        .route("/slack/interactivity", post(slack::interactivity))
        .route("/slack/commands", post(slack::commands))
        .route("/slack/install", get(install::install))
        .route("/slack/oauth_redirect", get(install::redirect))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
}

fn trace() -> TraceLayer<HttpMakeClassifier> {
    TraceLayer::new_for_http()
}
