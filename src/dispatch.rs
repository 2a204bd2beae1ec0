//! The dispatcher: between "Slack delivered something" and "the bridge handles it".
//!
//! [`Dispatcher::submit`] is all the ack path does after parsing: take a slot of the bounded
//! queue (or answer "busy", so Slack retries later), set the item's dedup mark in the store
//! (so retries, replicas and double deliveries are handled once), and queue it. That is one
//! store round trip and no other I/O.
//!
//! Items with the same [`Inbound::order_key`] (a thread, a card) are handled one at a time
//! in arrival order by one worker task; different keys run in parallel, at most
//! `DISPATCH_WORKERS` at once. A worker exists only while its key has items, and every
//! worker is spawned on the application's [`TaskTracker`], so shutdown waits for them.

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::{FutureExt, future::BoxFuture};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::task::TaskTracker;

use crate::{
    config::DispatchConfig,
    inbound::Inbound,
    store::{Store, StoreError},
    telemetry::Metrics,
};

/// How long an item's dedup mark lives: longer than Slack's retry schedule (about six
/// minutes) and its "delayed events" redelivery of up to two hours.
pub const DEDUP_TTL: Duration = Duration::from_secs(3 * 60 * 60);

/// What handles dispatched items: the bridge.
pub trait Handler: Send + Sync + 'static {
    /// Handles one item. Items of one order key are never handled concurrently.
    fn handle(&self, item: Inbound) -> BoxFuture<'static, ()>;
}

/// An item was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Queued for handling.
    Accepted,
    /// Already handled (or being handled); nothing to do.
    Duplicate,
}

/// An item could not be taken now; Slack should deliver it again later.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The queue is full.
    #[error("too many items are waiting")]
    Busy,
    /// The dedup mark could not be set.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The service is stopping.
    #[error("shutting down")]
    ShuttingDown,
}

struct Job {
    item: Inbound,
    /// Held until the item is handled: the queue's bound counts waiting and running items.
    _slot: OwnedSemaphorePermit,
}

struct Inner {
    store: Store,
    handler: Arc<dyn Handler>,
    metrics: Metrics,
    /// Live workers by order key. Senders are only used while this lock is held, and a
    /// worker only leaves (after finding its queue empty) while holding it, so an item is
    /// never sent to a worker that is about to exit.
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<Job>>>,
    /// Waiting plus running items.
    capacity: Arc<Semaphore>,
    /// Keys being worked on at once.
    workers: Arc<Semaphore>,
    tracker: TaskTracker,
}

/// Hands inbound items to the [`Handler`], deduplicated and ordered per key.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").field("available", &self.inner.capacity.available_permits()).finish()
    }
}

impl Dispatcher {
    /// A dispatcher whose workers run on `tracker`.
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
                queues: Mutex::new(HashMap::new()),
                capacity: Arc::new(Semaphore::new(config.queue_capacity)),
                workers: Arc::new(Semaphore::new(config.workers)),
                tracker,
            }),
        }
    }

    /// Deduplicates and queues an item. Returns once it is queued, never after handling.
    pub async fn submit(&self, item: Inbound) -> Result<Admission, DispatchError> {
        if self.inner.tracker.is_closed() {
            return Err(DispatchError::ShuttingDown);
        }
        let slot = self.inner.capacity.clone().try_acquire_owned().map_err(|_| DispatchError::Busy)?;
        if !self.inner.store.mark_once(&item.idempotency_key(), DEDUP_TTL).await? {
            self.inner.metrics.dedup_hits.inc();
            return Ok(Admission::Duplicate);
        }
        self.enqueue(Job { item, _slot: slot });
        Ok(Admission::Accepted)
    }

    fn enqueue(&self, job: Job) {
        let key = job.item.order_key();
        let mut queues = self.inner.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let job = match queues.get(&key) {
            // A send fails only if the worker died (a panic escaped); start a new one.
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        // The receiver is alive: it is moved into the worker below.
        let _ = tx.send(job);
        queues.insert(key.clone(), tx);
        drop(queues);
        self.inner.tracker.spawn(work(self.inner.clone(), key, rx));
    }

    /// Stops taking items and waits up to `grace` for queued and running ones to finish.
    /// Returns whether everything finished.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.inner.tracker.close();
        tokio::time::timeout(grace, self.inner.tracker.wait()).await.is_ok()
    }
}

async fn work(inner: Arc<Inner>, key: String, mut rx: mpsc::UnboundedReceiver<Job>) {
    // The semaphore is never closed, so acquiring only waits.
    let _worker = inner.workers.clone().acquire_owned().await;
    loop {
        let job = {
            let mut queues = inner.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match rx.try_recv() {
                Ok(job) => job,
                Err(_) => {
                    queues.remove(&key);
                    return;
                }
            }
        };
        let handled = AssertUnwindSafe(inner.handler.handle(job.item)).catch_unwind().await;
        if handled.is_err() {
            tracing::error!(order_key = %key, "handling an inbound item panicked; continuing with the next");
        }
    }
}
