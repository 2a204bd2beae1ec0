//! The HTTP listener: hyper's HTTP/1 server under limits a slow or hostile client cannot
//! get around.
//!
//! `axum::serve` waits for request headers as long as a client cares to send them, caps
//! nothing, and at shutdown waits for every connection to close. Here:
//!
//! - every connection has a header read timeout, for each request and for the wait for the
//!   next one on a kept-alive connection, so a client trickling headers is closed;
//! - at most [`Limits::max_connections`] are served at once. At the cap a new connection
//!   takes the place of the one idle longest (no request in flight: most likely a client
//!   still trickling its headers), so junk connections held open cannot keep Slack out;
//!   only when every connection has a request in flight is the new one closed at once;
//! - the accept loop and every connection task run on the application's `TaskTracker`. At
//!   shutdown, connections with no request in flight are closed at once and the others
//!   finish their request until a deadline, after which they are dropped.
//!
//! Body limits belong to the routes that read bodies (`http::slack`), which know what they
//! expect; a request is "in flight" from its complete head to its response, body included.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, response::Response};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinHandle,
    time::Instant,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// How long the accept loop pauses after an error that is not about one connection (out of
/// file descriptors, say), so it does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// A listener being served; [`Server::shutdown`] stops it.
#[derive(Debug)]
pub struct Server {
    name: &'static str,
    /// Ends the accept loop and asks connections to close.
    stop: CancellationToken,
    /// Drops the connections still open.
    force: CancellationToken,
    accepting: JoinHandle<()>,
    /// This listener's connection tasks (they are on the application's tracker too).
    connections: TaskTracker,
}

impl Server {
    /// Starts accepting on `listener` and serving `router`. The accept loop and every
    /// connection task are spawned on `tracker`.
    pub fn start(
        name: &'static str,
        listener: TcpListener,
        router: Router,
        limits: Limits,
        tracker: &TaskTracker,
    ) -> Self {
        let stop = CancellationToken::new();
        let force = CancellationToken::new();
        let connections = TaskTracker::new();
        let accepting = tracker.spawn(accept(Accept {
            name,
            listener,
            router,
            limits,
            registry: Arc::new(Registry::new(limits.max_connections)),
            stop: stop.clone(),
            force: force.clone(),
            tracker: tracker.clone(),
            connections: connections.clone(),
        }));
        Self { name, stop, force, accepting, connections }
    }

    /// Stops accepting, closes the connections that have no request in flight, lets the
    /// others finish theirs until `deadline`, then drops what is left. Returns once every
    /// connection task has ended.
    pub async fn shutdown(self, deadline: Instant) {
        self.stop.cancel();
        // The accept loop spawns nothing after it ends, so the count below is final.
        let _ = self.accepting.await;
        self.connections.close();
        if tokio::time::timeout_at(deadline, self.connections.wait()).await.is_err() {
            tracing::warn!(listener = self.name, "closing HTTP connections still open at the shutdown deadline");
            self.force.cancel();
            self.connections.wait().await;
        }
    }
}

struct Accept {
    name: &'static str,
    listener: TcpListener,
    router: Router,
    limits: Limits,
    registry: Arc<Registry>,
    stop: CancellationToken,
    force: CancellationToken,
    tracker: TaskTracker,
    connections: TaskTracker,
}

async fn accept(this: Accept) {
    loop {
        let accepted = tokio::select! {
            () = this.stop.cancelled() => return,
            accepted = this.listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) if is_about_one_connection(&err) => continue,
            Err(err) => {
                tracing::warn!(listener = this.name, error = %err, "accepting a connection failed");
                tokio::select! {
                    () = this.stop.cancelled() => return,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let Some(slot) = this.registry.admit() else {
            tracing::debug!(listener = this.name, %peer, "connection closed: every connection has a request in flight");
            continue;
        };
        // Responses are small and written at once; waiting to coalesce them only adds latency.
        let _ = stream.set_nodelay(true);
        let connection =
            serve_connection(stream, this.router.clone(), this.limits, slot, this.stop.clone(), this.force.clone());
        this.tracker.spawn(this.connections.track_future(connection));
    }
}

fn is_about_one_connection(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::Interrupted
    )
}

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    limits: Limits,
    slot: Slot,
    stop: CancellationToken,
    force: CancellationToken,
) {
    let service = Counted { inner: TowerToHyperService::new(router), activity: slot.activity.clone() };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        ended = connection.as_mut() => {
            if let Err(err) = ended {
                tracing::debug!(error = %err, "HTTP connection ended with an error");
            }
            return;
        }
        () = slot.evicted.cancelled() => {
            tracing::debug!("closed an idle HTTP connection to make room for a new one");
            return;
        }
        () = stop.cancelled() => {}
    }
    // Nothing is owed to a connection without a request in flight, and one that is still
    // sending headers would otherwise hold the shutdown until its header timeout.
    if slot.activity.is_idle() {
        return;
    }
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        ended = connection.as_mut() => {
            if let Err(err) = ended {
                tracing::debug!(error = %err, "HTTP connection ended with an error during shutdown");
            }
        }
        () = force.cancelled() => {}
    }
}

/// The connections of one listener, so that a new one can take the place of an idle one.
struct Registry {
    max: usize,
    epoch: Instant,
    next_id: AtomicU64,
    /// Touched only in short synchronous blocks.
    live: Mutex<HashMap<u64, Entry>>,
}

struct Entry {
    activity: Arc<Activity>,
    evicted: CancellationToken,
}

impl Registry {
    fn new(max: usize) -> Self {
        Self { max: max.max(1), epoch: Instant::now(), next_id: AtomicU64::new(0), live: Mutex::new(HashMap::new()) }
    }

    /// Takes a place for a new connection; at the cap, the place of the connection idle
    /// longest. `None` when every connection has a request in flight.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let activity = Arc::new(Activity::new(self.epoch));
        let evicted = CancellationToken::new();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        if live.len() >= self.max {
            let victim = live
                .iter()
                .filter(|(_, entry)| entry.activity.is_idle())
                .min_by_key(|(id, entry)| (entry.activity.idle_since(), **id))
                .map(|(id, _)| *id)?;
            if let Some(entry) = live.remove(&victim) {
                entry.evicted.cancel();
            }
        }
        live.insert(id, Entry { activity: activity.clone(), evicted: evicted.clone() });
        drop(live);
        Some(Slot { id, activity, evicted, registry: self.clone() })
    }

    fn leave(&self, id: u64) {
        self.live.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }
}

/// A connection's place in the [`Registry`]; given back when the connection task ends.
struct Slot {
    id: u64,
    activity: Arc<Activity>,
    evicted: CancellationToken,
    registry: Arc<Registry>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.leave(self.id);
    }
}

/// Whether a connection has a request in flight, and since when it has not.
struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `epoch` when the connection was accepted or last answered.
    idle_since: AtomicU64,
}

impl Activity {
    fn new(epoch: Instant) -> Self {
        let activity = Self { epoch, in_flight: AtomicUsize::new(0), idle_since: AtomicU64::new(0) };
        activity.touch();
        activity
    }

    fn touch(&self) {
        let millis = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.idle_since.store(millis, Ordering::SeqCst);
    }

    fn idle_since(&self) -> u64 {
        self.idle_since.load(Ordering::SeqCst)
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
    }
}

/// Marks a request in flight until it is answered (or abandoned).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::SeqCst);
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Stamp first, so whoever sees the connection idle also sees since when.
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The router as a hyper service that counts the connection's requests in flight. hyper
/// writes a response (our bodies are whole) and flushes it in the same poll in which the
/// service's future completes, so a connection seen idle owes no unsent answer.
#[derive(Clone)]
struct Counted {
    inner: TowerToHyperService<Router>,
    activity: Arc<Activity>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Counted {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::enter(&self.activity);
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(in_flight);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_the_cap_the_connection_idle_longest_makes_room() {
        let registry = Arc::new(Registry::new(3));
        let first = registry.admit().expect("room");
        let busy = registry.admit().expect("room");
        let _request = InFlight::enter(&busy.activity);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let third = registry.admit().expect("room");
        assert!(!first.evicted.is_cancelled() && !busy.evicted.is_cancelled() && !third.evicted.is_cancelled());

        let fourth = registry.admit().expect("an idle connection makes room");
        assert!(first.evicted.is_cancelled(), "the one idle longest goes");
        assert!(!busy.evicted.is_cancelled(), "a request in flight is never cut");
        assert!(!third.evicted.is_cancelled());

        let _third_request = InFlight::enter(&third.activity);
        let _fourth_request = InFlight::enter(&fourth.activity);
        assert!(registry.admit().is_none(), "every connection is answering: the new one is refused");
        assert_eq!(registry.live.lock().unwrap().len(), 3);

        drop(first);
        drop(busy);
        assert_eq!(registry.live.lock().unwrap().len(), 2, "an ended connection gives its place back");
        assert!(registry.admit().is_some());
    }

    #[test]
    fn a_finished_request_makes_the_connection_idle_since_then() {
        let activity = Arc::new(Activity::new(Instant::now()));
        let accepted = activity.idle_since();
        let request = InFlight::enter(&activity);
        assert!(!activity.is_idle());
        std::thread::sleep(Duration::from_millis(5));
        drop(request);
        assert!(activity.is_idle());
        assert!(activity.idle_since() > accepted);
    }
}
