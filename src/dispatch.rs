//! The dispatcher: between "Slack delivered something" and "the bridge handles it".
//!
//! [`Dispatcher::submit`] is all the ack path does after parsing: record the item and its
//! dedup mark in the store's inbox, in one atomic and durable step, and answer. Slack is
//! acknowledged only for what the store holds, so an acknowledged item survives a crash,
//! a `kill -9` or a node drain; retries and double deliveries meet the dedup mark.
//!
//! Workers take the work from the inbox, not from this process: a claim loop leases an
//! order key (a thread, a card) whose items wait, and a worker handles that key's items one
//! at a time in inbox order, renewing the lease while a long turn runs. Whichever replica
//! recorded an item, any replica may handle it; items of one key never run concurrently,
//! and different keys run in parallel, at most `DISPATCH_WORKERS` at once per replica. A
//! replica that dies stops renewing; within `LEASE_SECONDS` another one takes its keys
//! over, unfinished item first. What a taken-over item may already have done (a message
//! sent to the HelpDesk) is the handler's to check: see [`Attempt`].
//!
//! At shutdown the claim loop stops, each worker finishes the item in hand and gives its
//! key back, and everything else stays in the inbox for the next process or another
//! replica. Memory holds only the items being handled.

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures_util::{FutureExt, future::BoxFuture};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::DispatchConfig,
    inbound::Inbound,
    model::{UnixMillis, now_millis},
    store::{Claim, Finished, Pushed, Store, StoreError},
    telemetry::Metrics,
};

/// How long an item's dedup mark lives: longer than Slack's retry schedule (about six
/// minutes) and its "delayed events" redelivery of up to two hours.
pub const DEDUP_TTL: Duration = Duration::from_secs(3 * 60 * 60);
/// How often an idle replica looks for items that other replicas recorded (its own wake it
/// at once).
const POLL: Duration = Duration::from_millis(100);
/// The longest wait between attempts when the store does not answer.
const STORE_BACKOFF: Duration = Duration::from_secs(2);

/// What handles dispatched items: the bridge.
pub trait Handler: Send + Sync + 'static {
    /// Handles one item. Items of one order key are never handled concurrently.
    fn handle(&self, item: Inbound, attempt: Attempt) -> BoxFuture<'static, ()>;

    /// Prepares what the first items would otherwise wait for (lookups that are cached),
    /// once the bot's identity is known; run in the background beside the first items.
    fn warm_up(&self) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }

    /// Periodic upkeep that no inbound item starts (closing approval cards whose time ran
    /// out); run every [`HOUSEKEEPING_EVERY`] once started, on every replica, so it must be
    /// safe to run concurrently with itself.
    fn housekeep(&self) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// How often [`Handler::housekeep`] runs.
pub const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);

/// What the handler is told about this attempt at an item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempt {
    /// The item was taken over from a worker whose lease ran out (its replica died): it may
    /// have been partly handled, so anything that must happen at most once must be checked
    /// against what the store recorded.
    pub taken_over: bool,
}

/// An item was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Recorded in the inbox for handling.
    Accepted,
    /// Already recorded (a retry or a double delivery); nothing to do.
    Duplicate,
}

/// An item could not be taken now; Slack should deliver it again later.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The inbox holds `INBOX_MAX_ITEMS` items.
    #[error("the inbox is full")]
    Full,
    /// The store could not record the item.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The service is stopping.
    #[error("shutting down")]
    ShuttingDown,
}

/// Records `item` in `store`'s inbox, deduplicated, unless `max_items` wait.
async fn push(store: &Store, item: Inbound, max_items: u64) -> Result<Pushed, StoreError> {
    let dedup = item.idempotency_key();
    let order_key = item.order_key();
    let envelope = serde_json::to_vec(&Envelope { at: now_millis(), item })
        .map_err(|e| StoreError::Backend(format!("cannot encode an inbound item: {e}")))?;
    store.inbox_push(&dedup, DEDUP_TTL, &order_key, &envelope, max_items).await
}

/// Records an item the service makes itself (see [`crate::inbound::InboundKind::PolicySubmission`]) in
/// the inbox, durably and once: the workers find it as they find Slack's. Such items are
/// few (one per card), so they are not turned away when the inbox is full.
pub async fn enqueue(store: &Store, item: Inbound) -> Result<(), StoreError> {
    push(store, item, u64::MAX).await.map(drop)
}

/// An item as the inbox holds it.
#[derive(Serialize, Deserialize)]
struct Envelope {
    /// When it was recorded.
    at: UnixMillis,
    item: Inbound,
}

struct Inner {
    store: Store,
    handler: Arc<dyn Handler>,
    metrics: Metrics,
    config: DispatchConfig,
    /// Keys being worked on at once by this replica.
    workers: Arc<Semaphore>,
    /// Wakes the claim loop when this replica recorded an item.
    wake: Notify,
    /// Ends claiming; workers finish their item in hand and give their key back.
    stop: CancellationToken,
    tracker: TaskTracker,
}

/// Records inbound items in the inbox and hands them to the [`Handler`], deduplicated and
/// ordered per key across replicas.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").field("idle_workers", &self.inner.workers.available_permits()).finish()
    }
}

impl Dispatcher {
    /// A dispatcher whose workers will run on `tracker` once [`Dispatcher::start`]ed.
    pub fn new(
        config: DispatchConfig,
        store: Store,
        handler: Arc<dyn Handler>,
        metrics: Metrics,
        tracker: TaskTracker,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                handler,
                metrics,
                workers: Arc::new(Semaphore::new(config.workers)),
                config,
                wake: Notify::new(),
                stop: CancellationToken::new(),
                tracker,
            }),
        }
    }

    /// Records an item in the inbox, deduplicated. Returns once it is durably recorded,
    /// never after handling.
    pub async fn submit(&self, item: Inbound) -> Result<Admission, DispatchError> {
        if self.inner.stop.is_cancelled() {
            return Err(DispatchError::ShuttingDown);
        }
        let pushed = push(&self.inner.store, item, self.inner.config.inbox_max_items).await?;
        match pushed {
            Pushed::Accepted => {
                self.inner.wake.notify_one();
                Ok(Admission::Accepted)
            }
            Pushed::Duplicate => {
                self.inner.metrics.dedup_hits.inc();
                Ok(Admission::Duplicate)
            }
            Pushed::Full => Err(DispatchError::Full),
        }
    }

    /// Starts taking work from the inbox, and warms the handler up beside it
    /// ([`Handler::warm_up`]; given up at shutdown).
    pub fn start(&self) {
        let warm_up = self.inner.handler.warm_up();
        let stop = self.inner.stop.clone();
        self.inner.tracker.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = warm_up => {}
            }
        });
        self.inner.tracker.spawn(claim_loop(self.inner.clone()));
        let (handler, stop) = (self.inner.handler.clone(), self.inner.stop.clone());
        self.inner.tracker.spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(HOUSEKEEPING_EVERY) => handler.housekeep().await,
                }
            }
        });
    }

    /// Runs the handler's upkeep once, now (the loop started by [`Dispatcher::start`] runs
    /// it every [`HOUSEKEEPING_EVERY`]).
    pub async fn housekeep(&self) {
        self.inner.handler.housekeep().await;
    }

    /// Stops taking items and waits up to `grace` for the items in hand (and everything else
    /// on the tracker) to finish. Returns whether everything finished. Items not yet taken
    /// stay in the inbox.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.inner.stop.cancel();
        self.inner.tracker.close();
        tokio::time::timeout(grace, self.inner.tracker.wait()).await.is_ok()
    }
}

/// Leases waiting keys while this replica has idle workers, and starts a worker on each.
async fn claim_loop(inner: Arc<Inner>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let permit = tokio::select! {
            () = inner.stop.cancelled() => return,
            permit = inner.workers.clone().acquire_owned() => permit,
        };
        // The semaphore is never closed.
        let Ok(permit) = permit else { return };
        match inner.store.inbox_claim(inner.config.lease).await {
            Ok(Some(claim)) => {
                backoff = Duration::from_millis(100);
                inner.tracker.spawn(work(inner.clone(), claim, permit));
            }
            Ok(None) => {
                drop(permit);
                tokio::select! {
                    () = inner.stop.cancelled() => return,
                    () = inner.wake.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
            Err(err) => {
                drop(permit);
                tracing::warn!(error = %err, retry_in = ?backoff, "cannot take work from the inbox");
                tokio::select! {
                    () = inner.stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(STORE_BACKOFF);
            }
        }
    }
}

/// Handles a leased key's items in order until it has none, or the replica stops.
async fn work(inner: Arc<Inner>, mut claim: Claim, _permit: OwnedSemaphorePermit) {
    inner.metrics.inbox_leases_held.inc();
    loop {
        if claim.taken_over {
            inner.metrics.inbox_takeovers.inc();
            tracing::warn!(order_key = %claim.key, "took over an inbox key whose holder's lease ran out");
        }
        let outcome = match serde_json::from_slice::<Envelope>(&claim.head) {
            Ok(envelope) => {
                let waited = now_millis().saturating_sub(envelope.at).max(0);
                inner.metrics.inbox_wait_seconds.observe(waited as f64 / 1000.0);
                handle(&inner, &claim, envelope.item).await
            }
            Err(err) => {
                tracing::error!(order_key = %claim.key, error = %err, "an inbox item does not decode; dropping it");
                "undecodable"
            }
        };
        match finish(&inner, &claim).await {
            Some(Finished::Next(next)) => {
                inner.metrics.inbox_item(outcome);
                claim.head = next;
                claim.taken_over = false;
            }
            Some(Finished::Released) => {
                inner.metrics.inbox_item(outcome);
                break;
            }
            Some(Finished::Lost) => {
                inner.metrics.inbox_item("lost_lease");
                tracing::warn!(
                    order_key = %claim.key,
                    "the inbox lease ran out while an item was handled; its new holder has the key"
                );
                break;
            }
            None => break,
        }
    }
    inner.metrics.inbox_leases_held.dec();
}

/// Runs the handler on one item, renewing the key's lease meanwhile. A panic is contained:
/// the item counts as handled and the key goes on.
async fn handle(inner: &Inner, claim: &Claim, item: Inbound) -> &'static str {
    let attempt = Attempt { taken_over: claim.taken_over };
    let handled = AssertUnwindSafe(inner.handler.handle(item, attempt)).catch_unwind();
    let renew = async {
        loop {
            tokio::time::sleep(inner.config.lease / 3).await;
            match inner.store.inbox_renew(claim, inner.config.lease).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(order_key = %claim.key, "lost the inbox lease mid-item"),
                Err(err) => tracing::warn!(error = %err, "could not renew an inbox lease; trying again"),
            }
        }
    };
    tokio::select! {
        handled = handled => match handled {
            Ok(()) => "handled",
            Err(_) => {
                tracing::error!(order_key = %claim.key, "handling an inbound item panicked; continuing with the next");
                "panicked"
            }
        },
        never = renew => never,
    }
}

/// Marks the claim's head item finished and takes the key's next one (or gives the key back
/// when stopping), trying again while the store does not answer. `None`: the store stayed
/// unreachable through shutdown; the item stays in the inbox and is handled again later
/// (what must happen at most once is guarded in the store, see [`Attempt`]).
async fn finish(inner: &Inner, claim: &Claim) -> Option<Finished> {
    let mut backoff = Duration::from_millis(50);
    loop {
        let more = !inner.stop.is_cancelled();
        match inner.store.inbox_done(claim, inner.config.lease, more).await {
            Ok(finished) => return Some(finished),
            Err(err) if inner.stop.is_cancelled() => {
                tracing::warn!(order_key = %claim.key, error = %err, "could not finish an inbox item before stopping");
                return None;
            }
            Err(err) => {
                tracing::warn!(order_key = %claim.key, error = %err, retry_in = ?backoff, "could not finish an inbox item");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(STORE_BACKOFF);
            }
        }
    }
}
