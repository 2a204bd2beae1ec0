//! The inbox on the embedded store: redb tables written by one thread, in batches.
//!
//! Every operation is sent to a writer thread, which takes whatever has queued up, applies
//! it all in one write transaction and commits once: with `Durability::Immediate` when the
//! batch records or removes an item (so acknowledged items and finished ones survive a
//! `kill -9`), without an fsync when it only moves keys between waiting and leased. A burst of
//! concurrent acks therefore shares one fsync.
//!
//! Leases live in the writer's memory: the embedded store belongs to one process, so only a
//! restart can end a lease. Claims that were never made durable are rebuilt at start: every
//! key with items that is not waiting was being worked by the previous process, and goes back
//! to waiting as taken over.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::{Claim, Finished, InboxStats, Pushed};
use crate::{
    model::now_millis,
    store::{
        StoreError,
        embedded::{EXPIRY, KV, backend, encode, expiry_of, live},
    },
};

/// (order key, sequence) → item: each key's items in arrival order.
const ITEMS: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("inbox_items");
/// (sequence, order key) → since when it waits (Unix millis): keys waiting for a worker.
const READY: TableDefinition<'_, (u64, &str), i64> = TableDefinition::new("inbox_ready");
/// order key → its sequence in [`READY`].
const READY_KEYS: TableDefinition<'_, &str, u64> = TableDefinition::new("inbox_ready_keys");
/// Counters: `seq` (the last sequence handed out) and `count` (items held).
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("inbox_meta");

/// Answers an operation once its batch's commit succeeded (`None`) or failed.
type Answer = Box<dyn FnOnce(Option<&StoreError>)>;

/// Operations a batch takes at most; more wait for the next batch.
const BATCH: usize = 1024;

enum Op {
    Push {
        mark: String,
        ttl: Duration,
        key: String,
        item: Vec<u8>,
        max: u64,
        reply: oneshot::Sender<Result<Pushed, StoreError>>,
    },
    Claim {
        lease: Duration,
        reply: oneshot::Sender<Result<Option<Claim>, StoreError>>,
    },
    Renew {
        key: String,
        token: u64,
        lease: Duration,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    Done {
        key: String,
        token: u64,
        lease: Duration,
        more: bool,
        reply: oneshot::Sender<Result<Finished, StoreError>>,
    },
    Release {
        key: String,
        token: u64,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Stats {
        reply: oneshot::Sender<Result<InboxStats, StoreError>>,
    },
}

/// A handle on the writer thread.
#[derive(Clone)]
pub(crate) struct EmbeddedInbox {
    ops: mpsc::UnboundedSender<Op>,
}

impl std::fmt::Debug for EmbeddedInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedInbox")
    }
}

/// What the writer keeps in memory.
struct Writer {
    /// The store's handles own the database; the writer only borrows it per batch, so the
    /// file is closed (and can be opened again) as soon as the last handle is dropped.
    db: Weak<Database>,
    /// Leased keys: token and when the lease runs out.
    leases: HashMap<String, (u64, Instant)>,
    /// Keys the previous process held when it stopped; their next claim is a take-over.
    orphans: HashSet<String>,
    next_token: u64,
}

fn gone() -> StoreError {
    StoreError::Backend("the inbox writer stopped".to_owned())
}

impl EmbeddedInbox {
    /// Recovers the inbox left by a previous process and starts the writer thread. The
    /// thread ends when the last handle is dropped.
    pub(crate) fn start(db: &Arc<Database>) -> Result<Self, StoreError> {
        let orphans = recover(db)?;
        let (ops, rx) = mpsc::unbounded_channel();
        let writer = Writer { db: Arc::downgrade(db), leases: HashMap::new(), orphans, next_token: 0 };
        std::thread::Builder::new()
            .name("inbox-writer".to_owned())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the inbox writer: {e}")))?;
        Ok(Self { ops })
    }

    async fn ask<T>(&self, op: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.ops.send(op(reply)).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    pub(crate) async fn push(
        &self,
        mark: String,
        ttl: Duration,
        key: &str,
        item: &[u8],
        max: u64,
    ) -> Result<Pushed, StoreError> {
        self.ask(|reply| Op::Push { mark, ttl, key: key.to_owned(), item: item.to_vec(), max, reply }).await
    }

    pub(crate) async fn claim(&self, lease: Duration) -> Result<Option<Claim>, StoreError> {
        self.ask(|reply| Op::Claim { lease, reply }).await
    }

    pub(crate) async fn renew(&self, claim: &Claim, lease: Duration) -> Result<bool, StoreError> {
        self.ask(|reply| Op::Renew { key: claim.key.clone(), token: claim.token, lease, reply }).await
    }

    pub(crate) async fn done(&self, claim: &Claim, lease: Duration, more: bool) -> Result<Finished, StoreError> {
        self.ask(|reply| Op::Done { key: claim.key.clone(), token: claim.token, lease, more, reply }).await
    }

    pub(crate) async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        self.ask(|reply| Op::Release { key: claim.key.clone(), token: claim.token, reply }).await
    }

    pub(crate) async fn stats(&self) -> Result<InboxStats, StoreError> {
        self.ask(|reply| Op::Stats { reply }).await
    }
}

/// Puts every key with items back among the waiting ones, recounts the items, and returns
/// the keys that were leased (not waiting) when the previous process stopped.
fn recover(db: &Database) -> Result<HashSet<String>, StoreError> {
    let txn = db.begin_write().map_err(backend)?;
    let mut orphans = HashSet::new();
    {
        let items = txn.open_table(ITEMS).map_err(backend)?;
        let mut ready = txn.open_table(READY).map_err(backend)?;
        let mut ready_keys = txn.open_table(READY_KEYS).map_err(backend)?;
        let mut meta = txn.open_table(META).map_err(backend)?;
        let mut seq = meta.get("seq").map_err(backend)?.map_or(0, |v| v.value());
        let mut count = 0u64;
        let mut previous: Option<String> = None;
        let now = now_millis();
        for entry in items.iter().map_err(backend)? {
            let (key, _) = entry.map_err(backend)?;
            let (key, _) = key.value();
            count += 1;
            if previous.as_deref() == Some(key) {
                continue;
            }
            previous = Some(key.to_owned());
            if ready_keys.get(key).map_err(backend)?.is_none() {
                seq += 1;
                ready.insert((seq, key), now).map_err(backend)?;
                ready_keys.insert(key, seq).map_err(backend)?;
                orphans.insert(key.to_owned());
            }
        }
        meta.insert("seq", seq).map_err(backend)?;
        meta.insert("count", count).map_err(backend)?;
    }
    txn.commit().map_err(backend)?;
    Ok(orphans)
}

/// The first item of `key`, if any.
fn head(txn: &WriteTransaction, key: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
    let items = txn.open_table(ITEMS).map_err(backend)?;
    let mut range = items.range((key, 0u64)..=(key, u64::MAX)).map_err(backend)?;
    match range.next() {
        Some(entry) => {
            let (k, v) = entry.map_err(backend)?;
            Ok(Some((k.value().1, v.value().to_vec())))
        }
        None => Ok(None),
    }
}

fn counter(txn: &WriteTransaction, name: &str) -> Result<u64, StoreError> {
    let meta = txn.open_table(META).map_err(backend)?;
    Ok(meta.get(name).map_err(backend)?.map_or(0, |v| v.value()))
}

fn set_counter(txn: &WriteTransaction, name: &str, value: u64) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META).map_err(backend)?;
    meta.insert(name, value).map_err(backend)?;
    Ok(())
}

/// Puts `key` at the back of the waiting keys, unless it already waits.
fn make_ready(txn: &WriteTransaction, key: &str) -> Result<(), StoreError> {
    let mut ready_keys = txn.open_table(READY_KEYS).map_err(backend)?;
    if ready_keys.get(key).map_err(backend)?.is_some() {
        return Ok(());
    }
    let seq = counter(txn, "seq")? + 1;
    set_counter(txn, "seq", seq)?;
    ready_keys.insert(key, seq).map_err(backend)?;
    let mut ready = txn.open_table(READY).map_err(backend)?;
    ready.insert((seq, key), now_millis()).map_err(backend)?;
    Ok(())
}

/// Takes `key` out of the waiting keys.
fn unready(txn: &WriteTransaction, key: &str) -> Result<(), StoreError> {
    let mut ready_keys = txn.open_table(READY_KEYS).map_err(backend)?;
    if let Some(seq) = ready_keys.remove(key).map_err(backend)?.map(|v| v.value()) {
        let mut ready = txn.open_table(READY).map_err(backend)?;
        ready.remove((seq, key)).map_err(backend)?;
    }
    Ok(())
}

impl Writer {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Op>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.apply(batch);
        }
    }

    /// Applies a batch in one transaction. Answers are sent only after the commit, so an
    /// acknowledged push is on disk; if the commit fails, every operation gets the error and
    /// the in-memory leases are put back as they were.
    fn apply(&mut self, batch: Vec<Op>) {
        // Only claims, finishes, releases and renewals change the in-memory leases; a batch of
        // acks alone (the hot path) has nothing to put back if its commit fails.
        let changes_leases = batch.iter().any(|op| !matches!(op, Op::Push { .. } | Op::Stats { .. }));
        let before = changes_leases.then(|| (self.leases.clone(), self.orphans.clone(), self.next_token));
        let mut answers: Vec<Answer> = Vec::with_capacity(batch.len());
        let Some(db) = self.db.upgrade() else {
            let closed = StoreError::Backend("the embedded store is closed".to_owned());
            for op in batch {
                self.one_failed(op, &closed);
            }
            return;
        };
        let outcome = db.begin_write().map_err(backend).and_then(|mut txn| {
            let durable = batch.iter().any(|op| matches!(op, Op::Push { .. } | Op::Done { .. }));
            txn.set_durability(if durable { Durability::Immediate } else { Durability::None }).map_err(backend)?;
            for op in batch {
                answers.push(self.one(&txn, op));
            }
            txn.commit().map_err(backend)
        });
        drop(db);
        let failure = outcome.err();
        if failure.is_some()
            && let Some((leases, orphans, next_token)) = before
        {
            self.leases = leases;
            self.orphans = orphans;
            self.next_token = next_token;
        }
        for answer in answers {
            answer(failure.as_ref());
        }
    }

    /// Applies one operation and returns how to answer it once the batch's fate is known.
    fn one(&mut self, txn: &WriteTransaction, op: Op) -> Answer {
        match op {
            Op::Push { mark, ttl, key, item, max, reply } => {
                answer(reply, self.push(txn, &mark, ttl, &key, &item, max))
            }
            Op::Claim { lease, reply } => answer(reply, self.claim(txn, lease)),
            Op::Renew { key, token, lease, reply } => answer(reply, Ok(self.renew(&key, token, lease))),
            Op::Done { key, token, lease, more, reply } => answer(reply, self.done(txn, &key, token, lease, more)),
            Op::Release { key, token, reply } => answer(reply, self.release(txn, &key, token)),
            Op::Stats { reply } => answer(reply, self.stats(txn)),
        }
    }

    /// Answers an operation with a failure without applying it.
    fn one_failed(&self, op: Op, err: &StoreError) {
        fn fail<T>(reply: oneshot::Sender<Result<T, StoreError>>, err: &StoreError) {
            // The asker may have stopped waiting; nothing to do then.
            let _ = reply.send(Err(StoreError::Backend(err.to_string())));
        }
        match op {
            Op::Push { reply, .. } => fail(reply, err),
            Op::Claim { reply, .. } => fail(reply, err),
            Op::Renew { reply, .. } => fail(reply, err),
            Op::Done { reply, .. } => fail(reply, err),
            Op::Release { reply, .. } => fail(reply, err),
            Op::Stats { reply } => fail(reply, err),
        }
    }

    fn push(
        &mut self,
        txn: &WriteTransaction,
        mark: &str,
        ttl: Duration,
        key: &str,
        item: &[u8],
        max: u64,
    ) -> Result<Pushed, StoreError> {
        let now = now_millis();
        let mut kv = txn.open_table(KV).map_err(backend)?;
        if kv.get(mark).map_err(backend)?.is_some_and(|v| live(v.value(), now).is_some()) {
            return Ok(Pushed::Duplicate);
        }
        let count = counter(txn, "count")?;
        if count >= max {
            return Ok(Pushed::Full);
        }
        let at = expiry_of(Some(ttl), now);
        kv.insert(mark, encode(b"1", at).as_slice()).map_err(backend)?;
        txn.open_table(EXPIRY).map_err(backend)?.insert((at, mark), ()).map_err(backend)?;
        let seq = counter(txn, "seq")? + 1;
        set_counter(txn, "seq", seq)?;
        txn.open_table(ITEMS).map_err(backend)?.insert((key, seq), item).map_err(backend)?;
        set_counter(txn, "count", count + 1)?;
        if !self.leases.contains_key(key) {
            make_ready(txn, key)?;
        }
        Ok(Pushed::Accepted)
    }

    fn claim(&mut self, txn: &WriteTransaction, lease: Duration) -> Result<Option<Claim>, StoreError> {
        let now = Instant::now();
        let expired = self.leases.iter().find(|(_, (_, until))| *until <= now).map(|(key, _)| key.clone());
        let (key, taken_over) = match expired {
            Some(key) => (key, true),
            None => {
                let first = {
                    let ready = txn.open_table(READY).map_err(backend)?;
                    let mut iter = ready.iter().map_err(backend)?;
                    iter.next().transpose().map_err(backend)?.map(|(k, _)| k.value().1.to_owned())
                };
                let Some(key) = first else { return Ok(None) };
                unready(txn, &key)?;
                let orphan = self.orphans.remove(&key);
                (key, orphan)
            }
        };
        let Some((_, item)) = head(txn, &key)? else {
            self.leases.remove(&key);
            return Ok(None);
        };
        self.next_token += 1;
        self.leases.insert(key.clone(), (self.next_token, now + lease));
        Ok(Some(Claim { key, token: self.next_token, head: item, taken_over }))
    }

    fn renew(&mut self, key: &str, token: u64, lease: Duration) -> bool {
        match self.leases.get_mut(key) {
            Some((held, until)) if *held == token => {
                *until = Instant::now() + lease;
                true
            }
            _ => false,
        }
    }

    fn done(
        &mut self,
        txn: &WriteTransaction,
        key: &str,
        token: u64,
        lease: Duration,
        more: bool,
    ) -> Result<Finished, StoreError> {
        if self.leases.get(key).map(|(held, _)| *held) != Some(token) {
            return Ok(Finished::Lost);
        }
        if let Some((seq, _)) = head(txn, key)? {
            txn.open_table(ITEMS).map_err(backend)?.remove((key, seq)).map_err(backend)?;
            set_counter(txn, "count", counter(txn, "count")?.saturating_sub(1))?;
        }
        match head(txn, key)? {
            Some((_, next)) if more => {
                self.leases.insert(key.to_owned(), (token, Instant::now() + lease));
                Ok(Finished::Next(next))
            }
            Some(_) => {
                self.leases.remove(key);
                make_ready(txn, key)?;
                Ok(Finished::Released)
            }
            None => {
                self.leases.remove(key);
                Ok(Finished::Released)
            }
        }
    }

    fn release(&mut self, txn: &WriteTransaction, key: &str, token: u64) -> Result<(), StoreError> {
        if self.leases.get(key).map(|(held, _)| *held) != Some(token) {
            return Ok(());
        }
        self.leases.remove(key);
        if head(txn, key)?.is_some() {
            make_ready(txn, key)?;
        }
        Ok(())
    }

    fn stats(&self, txn: &WriteTransaction) -> Result<InboxStats, StoreError> {
        let ready = txn.open_table(READY).map_err(backend)?;
        let oldest =
            ready.iter().map_err(backend)?.next().transpose().map_err(backend)?.map(|(_, since)| since.value());
        Ok(InboxStats {
            depth: counter(txn, "count")?,
            oldest_wait: oldest
                .map(|since| Duration::from_millis(now_millis().saturating_sub(since).max(0).unsigned_abs())),
            leased: self.leases.len() as u64,
        })
    }
}

/// Holds an operation's result until the batch commits: a failed commit turns every answer
/// into that failure.
fn answer<T: Send + 'static>(reply: oneshot::Sender<Result<T, StoreError>>, result: Result<T, StoreError>) -> Answer {
    Box::new(move |failure| {
        let result = match failure {
            Some(err) => Err(StoreError::Backend(err.to_string())),
            None => result,
        };
        // The asker may have given up waiting (its task was cancelled); nothing to do then.
        let _ = reply.send(result);
    })
}
