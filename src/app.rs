//! Building and running the application: the one function `main` and the tests share.
//!
//! [`Application::build`] opens the store, builds the Slack client, the dispatcher and the
//! router, and binds the listener and the optional admin listener (port 0 works, for
//! tests). [`Application::run_until_stopped`] serves until the given shutdown future
//! resolves, then stops taking requests and Socket Mode envelopes, lets in-flight work
//! finish within the grace period, cancels what is left and returns. The whole shutdown,
//! HTTP connections included, fits in the grace period: a client still sending a request
//! cannot hold it longer.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, OnceLock, atomic::AtomicUsize},
    time::Duration,
};

use tokio::{net::TcpListener, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    bridge::{Bridge, Defaults, Policy, Portal, Portals, Ports},
    config::Config,
    dispatch::{Dispatcher, Handler},
    helpdesk::{HelpdeskClient, HelpdeskError},
    http::{
        AppState, Shared,
        listener::{Limits, Server},
    },
    model::Clock,
    slack::{
        api::{SlackApi, SlackError},
        identity::BotIdentity,
        socket::{self, SocketMode},
        verify::Verifier,
    },
    store::{Store, StoreError, seal::Sealer},
    telemetry::Metrics,
};

/// How often the embedded store deletes expired entries.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Why the application could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The Slack client could not be built.
    #[error(transparent)]
    Slack(#[from] SlackError),
    /// The HelpDesk client could not be built.
    #[error(transparent)]
    Helpdesk(#[from] HelpdeskError),
    /// No HelpDesk portal is configured.
    #[error("no HelpDesk portal is configured")]
    NoPortal,
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A built application, ready to run.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    /// Serves `/metrics`, `/healthz` and `/readyz` apart, when `ADMIN_LISTEN_ADDR` is set.
    admin_listener: Option<TcpListener>,
    limits: Limits,
    state: AppState,
    slack: SlackApi,
    tracker: TaskTracker,
    abort: CancellationToken,
    shutdown_grace: Duration,
    socket_mode: bool,
}

/// What a handler can be built from.
struct Parts<'a> {
    config: &'a Config,
    slack: &'a SlackApi,
    store: &'a Store,
    metrics: &'a Metrics,
    identity: &'a Arc<OnceLock<BotIdentity>>,
    abort: &'a CancellationToken,
    clock: &'a Clock,
}

impl Application {
    /// Builds the application with the bridge as the handler of inbound items.
    pub async fn build(config: Config) -> Result<Self, BuildError> {
        Self::assemble(config, |parts| {
            // One client per portal, made once.
            let mut portals = Vec::new();
            for portal in parts.config.all_portals() {
                portals.push(Portal {
                    client: HelpdeskClient::new(&portal.helpdesk, parts.metrics.clone())?,
                    defaults: Defaults {
                        workspace: portal.helpdesk.default_workspace.clone(),
                        agent: portal.helpdesk.default_agent.clone(),
                    },
                    name: portal.name,
                });
            }
            let portals = Portals::new(portals).ok_or(BuildError::NoPortal)?;
            Ok(Arc::new(Bridge::new(Ports {
                slack: parts.slack.clone(),
                portals,
                store: parts.store.clone(),
                identity: parts.identity.clone(),
                policy: Policy { approvers: parts.config.approvers.clone(), access: parts.config.access.clone() },
                destructive_patterns: parts.config.destructive_patterns.clone(),
                command_rules: parts.config.command_rules.clone(),
                approval_ttl: parts.config.approval_ttl,
                two_person: parts.config.two_person.clone(),
                abort: parts.abort.clone(),
                metrics: parts.metrics.clone(),
                turn_lock: parts.config.dispatch.lease,
                clock: parts.clock.clone(),
                sealer: sealer(parts.config),
                install_allowed: parts.config.slack.oauth.as_ref().map(|o| o.allowed.clone()).unwrap_or_default(),
            })))
        })
        .await
    }

    /// Builds the application with a given handler of inbound items.
    pub async fn build_with(config: Config, handler: Arc<dyn Handler>) -> Result<Self, BuildError> {
        Self::assemble(config, |_| Ok(handler)).await
    }

    async fn assemble(
        config: Config,
        handler: impl FnOnce(&Parts<'_>) -> Result<Arc<dyn Handler>, BuildError>,
    ) -> Result<Self, BuildError> {
        let metrics = Metrics::default();
        let store = Store::open(&config.store)?;
        let slack = SlackApi::new(&config.slack, metrics.clone(), Some(store.clone()))?;
        let identity = Arc::new(OnceLock::new());
        let abort = CancellationToken::new();
        let clock = Clock::default();
        let handler = handler(&Parts {
            config: &config,
            slack: &slack,
            store: &store,
            metrics: &metrics,
            identity: &identity,
            abort: &abort,
            clock: &clock,
        })?;
        let tracker = TaskTracker::new();
        let dispatcher = Dispatcher::new(config.dispatch, store.clone(), handler, metrics.clone(), tracker.clone());
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .map_err(|source| BuildError::Bind { addr: config.listen_addr, source })?;
        let admin_listener = match config.admin_listen_addr {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|source| BuildError::Bind { addr, source })?),
            None => None,
        };
        let state = AppState::new(Shared {
            verifier: config.slack.signing_secret.clone().map(Verifier::new),
            dispatcher,
            store,
            metrics,
            identity,
            clock,
            socket_connections: config.socket_mode().then(|| Arc::new(AtomicUsize::new(0))),
            body_timeout: config.ingress.body_timeout,
            installed_only: config.slack.bot_token.is_none(),
            install: config
                .slack
                .oauth
                .clone()
                .zip(sealer(&config))
                .map(|(oauth, sealer)| crate::http::install::Install { oauth, slack: slack.clone(), sealer }),
        });
        Ok(Self {
            listener,
            admin_listener,
            limits: Limits {
                header_timeout: config.ingress.header_timeout,
                max_connections: config.ingress.max_connections,
            },
            state,
            slack,
            tracker,
            abort,
            shutdown_grace: config.shutdown_grace,
            socket_mode: config.socket_mode(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The admin listener's bound address, when there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listener.as_ref().and_then(|listener| listener.local_addr().ok())
    }

    /// The admin listener's bound port, when there is one.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin_addr().map(|addr| addr.port())
    }

    /// The shared state (for tests and the `check` command).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then drains and returns, all within the grace period.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let Self { listener, admin_listener, limits, state, slack, tracker, abort, shutdown_grace, socket_mode } = self;
        // `stop` ends intake (HTTP, sockets) and background loops; in-flight work goes on.
        let stop = CancellationToken::new();
        tracker.spawn({
            let stop = stop.clone();
            async move {
                tokio::select! {
                    () = shutdown => stop.cancel(),
                    () = stop.cancelled() => {}
                }
            }
        });
        if state.installed_only {
            tracing::info!("no SLACK_BOT_TOKEN: every workspace is served by its installation");
            state.dispatcher.start();
        } else {
            tracker.spawn(learn_identity(
                slack.clone(),
                state.identity.clone(),
                state.dispatcher.clone(),
                stop.clone(),
            ));
        }
        if state.store.kind() == "embedded" {
            tracker.spawn(sweep(state.store.clone(), stop.clone()));
        }
        if socket_mode && let Some(connections) = &state.socket_connections {
            {
                let client = SocketMode::new(
                    slack,
                    state.dispatcher.clone(),
                    state.identity.clone(),
                    connections.clone(),
                    state.metrics.clone(),
                );
                for slot in 0..socket::CONNECTIONS {
                    tracker.spawn(client.clone().run(slot, stop.clone()));
                }
            }
        }
        let admin_addr = admin_listener.as_ref().map(TcpListener::local_addr).transpose()?;
        tracing::info!(
            addr = %listener.local_addr()?,
            admin_addr = admin_addr.map(tracing::field::display),
            store = state.store.kind(),
            socket_mode,
            "helpdesk-bridge is listening"
        );
        let (public, admin) = match admin_listener {
            Some(admin) => (
                Server::start("public", listener, crate::http::public_router(state.clone()), limits, &tracker),
                Some(Server::start("admin", admin, crate::http::admin_router(state.clone()), limits, &tracker)),
            ),
            None => (Server::start("public", listener, crate::http::router(state.clone()), limits, &tracker), None),
        };
        stop.cancelled().await;
        let deadline = Instant::now() + shutdown_grace;
        tracing::info!(grace = ?shutdown_grace, "shutting down: finishing in-flight work");
        // Replies still streaming near the end of the grace period are finalized in Slack
        // with a note, rather than cut off mid-edit.
        let finalize = (shutdown_grace / 3).min(Duration::from_secs(5));
        // Requests in flight are acks (milliseconds) or bodies still arriving (bounded by the
        // body timeout); either way HTTP intake ends before the work is drained.
        let admin_stopped = async {
            if let Some(admin) = admin {
                admin.shutdown(deadline - finalize).await;
            }
        };
        tokio::join!(public.shutdown(deadline - finalize), admin_stopped);
        let remaining = (deadline - finalize).saturating_duration_since(Instant::now());
        if !state.dispatcher.drain(remaining).await {
            tracing::info!("in-flight replies are being finalized before exit");
            abort.cancel();
            if !state.dispatcher.drain(finalize).await {
                tracing::warn!("in-flight work did not finish within the grace period; abandoning it");
            }
        }
        Ok(())
    }
}

/// Calls `auth.test` until it succeeds (backing off to a minute), then remembers who the
/// bot is and starts taking work from the inbox (and warming the handler up: the first
/// mention does not wait for lookups that are cached). Until then `/readyz` is false and events are
/// answered 503, so Slack retries, and a backlog left by an earlier process waits.
async fn learn_identity(
    slack: SlackApi,
    identity: Arc<OnceLock<BotIdentity>>,
    dispatcher: Dispatcher,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        match slack.auth_test().await {
            Ok(me) => {
                tracing::info!(bot_user = %me.user_id, team = %me.team_id, "Slack auth.test succeeded");
                let _ = identity.set(me);
                dispatcher.start();
                return;
            }
            Err(err) => tracing::warn!(error = %err, retry_in = ?backoff, "Slack auth.test failed"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

async fn sweep(store: Store, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(SWEEP_EVERY) => {}
        }
        match store.sweep_expired().await {
            Ok(n) if n > 0 => tracing::debug!(removed = n, "swept expired store entries"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "sweeping expired store entries failed"),
        }
    }
}

/// `STATE_ENCRYPTION_KEY`'s sealer, when it is set (the configuration checked it).
fn sealer(config: &Config) -> Option<Arc<Sealer>> {
    use secrecy::ExposeSecret;
    let key = config.store.encryption_key.as_ref()?;
    match Sealer::from_hex(key.expose_secret()) {
        Ok(sealer) => Some(Arc::new(sealer)),
        Err(err) => {
            tracing::error!(error = %err, "STATE_ENCRYPTION_KEY does not make a key; installations are not served");
            None
        }
    }
}
