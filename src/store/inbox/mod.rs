//! The inbox: the durable work queue between Slack's acknowledgement and the bridge.
//!
//! An item is recorded with its dedup mark in one atomic, durable step ([`Store::inbox_push`]),
//! and only then does Slack get its acknowledgement. Items are kept per *order key* (a
//! thread, a card) in arrival order. A worker claims a key ([`Store::inbox_claim`]) and gets
//! a lease on it with a fencing token: while the lease lives, nobody else works that key, so
//! a key's items are handled one at a time, in order, across replicas. The worker renews the
//! lease while it handles an item, and finishes the item with [`Store::inbox_done`], which
//! removes it only if the lease is still its own (the fencing token) and hands over the next
//! item of the key. A replica that dies stops renewing; once its lease has passed, the next
//! claim anywhere takes the key over, with the unfinished item still at its head.
//!
//! Keys that wait for a worker are kept in the order they became ready, so a busy thread does
//! not starve the others: a worker that gives a key back (at shutdown) puts it behind them.
//!
//! Two backends, one contract: on Redis every operation is one Lua script (one round trip,
//! atomic across replicas; see [`redis`]); on the embedded store one writer thread applies
//! operations in batches, one redb transaction and one fsync per batch, so concurrent acks
//! share a disk flush (group commit; see [`embedded`]).

pub(super) mod embedded;
pub(super) mod redis;

use std::time::Duration;

use super::{Store, StoreError};

/// What [`Store::inbox_push`] did with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Recorded durably; it will be handled.
    Accepted,
    /// Its dedup mark was already set: it was recorded before.
    Duplicate,
    /// The inbox holds its maximum number of items; nothing was recorded.
    Full,
}

/// A key claimed by a worker, with the item at its head.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The order key.
    pub key: String,
    /// The fencing token of this lease: a later lease on the key has a larger one.
    pub token: u64,
    /// The item to handle now, as it was pushed.
    pub head: Vec<u8>,
    /// The key was leased by a worker whose lease ran out (a replica died or hung): its head
    /// item may have been started.
    pub taken_over: bool,
}

/// What became of a finished item (see [`Store::inbox_done`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// Removed; the key's next item, still under this lease.
    Next(Vec<u8>),
    /// Removed; the key is given back (it was empty, or the worker asked to stop).
    Released,
    /// Not removed: the lease was no longer this worker's (it ran out and someone took the
    /// key over), so the item stays for the new holder.
    Lost,
}

/// How the inbox stands, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxStats {
    /// Items recorded and not yet finished.
    pub depth: u64,
    /// How long the key waiting longest for a worker has waited.
    pub oldest_wait: Option<Duration>,
    /// Keys under a lease.
    pub leased: u64,
}

/// The backend half of the inbox.
#[derive(Clone, Debug)]
pub(super) enum Inbox {
    Redis(redis::RedisInbox),
    Embedded(embedded::EmbeddedInbox),
}

/// Lease lengths in milliseconds, as the backends take them.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Store {
    /// Records an item under `order_key`, with its dedup mark `dedup` (kept for
    /// `dedup_ttl`), atomically and durably, unless the mark is already set or `max_items`
    /// are waiting.
    pub async fn inbox_push(
        &self,
        dedup: &str,
        dedup_ttl: Duration,
        order_key: &str,
        item: &[u8],
        max_items: u64,
    ) -> Result<Pushed, StoreError> {
        let mark = self.keys.mark(dedup);
        match &self.inbox {
            Inbox::Redis(inbox) => inbox.push(&self.keys, &mark, millis(dedup_ttl), order_key, item, max_items).await,
            Inbox::Embedded(inbox) => inbox.push(mark, dedup_ttl, order_key, item, max_items).await,
        }
    }

    /// Claims the key that has waited longest (or one whose lease ran out) for `lease`;
    /// `None` when no key waits.
    pub async fn inbox_claim(&self, lease: Duration) -> Result<Option<Claim>, StoreError> {
        match &self.inbox {
            Inbox::Redis(inbox) => inbox.claim(&self.keys, millis(lease)).await,
            Inbox::Embedded(inbox) => inbox.claim(lease).await,
        }
    }

    /// Extends a lease to `lease` from now; false when it is no longer the claim's.
    pub async fn inbox_renew(&self, claim: &Claim, lease: Duration) -> Result<bool, StoreError> {
        match &self.inbox {
            Inbox::Redis(inbox) => inbox.renew(&self.keys, claim, millis(lease)).await,
            Inbox::Embedded(inbox) => inbox.renew(claim, lease).await,
        }
    }

    /// Removes the claim's head item (if the lease is still its own) and, when `more`, keeps
    /// the lease for `lease` and hands over the key's next item; otherwise gives the key back.
    pub async fn inbox_done(&self, claim: &Claim, lease: Duration, more: bool) -> Result<Finished, StoreError> {
        match &self.inbox {
            Inbox::Redis(inbox) => inbox.done(&self.keys, claim, millis(lease), more).await,
            Inbox::Embedded(inbox) => inbox.done(claim, lease, more).await,
        }
    }

    /// Gives a claimed key back without finishing its head item, for another worker.
    pub async fn inbox_release(&self, claim: &Claim) -> Result<(), StoreError> {
        match &self.inbox {
            Inbox::Redis(inbox) => inbox.release(&self.keys, claim).await,
            Inbox::Embedded(inbox) => inbox.release(claim).await,
        }
    }

    /// How the inbox stands.
    pub async fn inbox_stats(&self) -> Result<InboxStats, StoreError> {
        match &self.inbox {
            Inbox::Redis(inbox) => inbox.stats(&self.keys).await,
            Inbox::Embedded(inbox) => inbox.stats().await,
        }
    }
}
