//! The embedded backend: one process, persistent, nothing else to install.
//!
//! A redb database in `STATE_DIR/state.redb` with ACID write transactions, so a crash or
//! `kill -9` leaves either the old or the new state. redb locks the file, so a second
//! process on the same folder gets [`StoreError::Locked`] rather than corrupting it.
//!
//! Values carry their expiry (8 bytes, little-endian Unix millis, 0 for none) in front of
//! the payload; an expired value reads as absent and [`EmbeddedBackend::sweep`] deletes it
//! later. Reads run inline (they take microseconds); writes run on the blocking pool because
//! a durable commit waits for the disk. Dedup marks commit without fsync: losing the newest
//! few in a crash only lets Slack's retry of the same event through once more, which the
//! per-thread creation lock still absorbs.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::{
    StoreError,
    txn::{Expect, Txn, Write},
};
use crate::model::now_millis;

/// Memory redb may use to cache pages. Its default (1 GiB) lets a long inbox backlog grow
/// the process by hundreds of megabytes; the working set (the heads of the waiting keys,
/// recent tickets and cards) is small, and the operating system caches the file anyway.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// key → expiry-prefixed value.
pub(super) const KV: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("kv");
/// (expiry, key) → (): what to sweep, oldest first. May hold stale entries; the sweeper
/// checks the value's own expiry before deleting.
pub(super) const EXPIRY: TableDefinition<'_, (u64, &str), ()> = TableDefinition::new("expiry");
/// (index, inverted score, member) → (): sorted indexes, highest score first.
const INDEX: TableDefinition<'_, (&str, u64, &str), ()> = TableDefinition::new("index");
/// (index, member) → inverted score: to move or remove a member.
const INDEX_MEMBERS: TableDefinition<'_, (&str, &str), u64> = TableDefinition::new("index_members");
/// (list, sequence) → value: append-only capped lists.
const LISTS: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("lists");

/// An embedded, file-backed store backend.
#[derive(Clone)]
pub(crate) struct EmbeddedBackend {
    db: Arc<Database>,
    path: PathBuf,
}

impl std::fmt::Debug for EmbeddedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBackend").field("path", &self.path).finish()
    }
}

pub(super) fn backend<E: std::fmt::Display>(err: E) -> StoreError {
    StoreError::Backend(err.to_string())
}

pub(super) fn expiry_of(ttl: Option<Duration>, now: i64) -> u64 {
    ttl.map_or(0, |ttl| (now.max(0) as u64).saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)).max(1))
}

pub(super) fn encode(value: &[u8], expiry: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&expiry.to_le_bytes());
    out.extend_from_slice(value);
    out
}

/// The payload of a stored value, or `None` when it has expired.
pub(super) fn live(stored: &[u8], now: i64) -> Option<&[u8]> {
    let (expiry, payload) = stored.split_at_checked(8)?;
    let expiry = u64::from_le_bytes(expiry.try_into().ok()?);
    (expiry == 0 || expiry > now.max(0) as u64).then_some(payload)
}

fn invert(score: i64) -> u64 {
    u64::MAX - score.max(0) as u64
}

impl EmbeddedBackend {
    /// Opens (or creates) the database in `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Backend(format!("cannot create STATE_DIR {}: {e}", dir.display())))?;
        let path = dir.join("state.redb");
        let db = Database::builder().set_cache_size(CACHE_BYTES).create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(dir.to_path_buf()),
            other => StoreError::Backend(format!("cannot open {}: {other}", path.display())),
        })?;
        let txn = db.begin_write().map_err(backend)?;
        {
            txn.open_table(KV).map_err(backend)?;
            txn.open_table(EXPIRY).map_err(backend)?;
            txn.open_table(INDEX).map_err(backend)?;
            txn.open_table(INDEX_MEMBERS).map_err(backend)?;
            txn.open_table(LISTS).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        Ok(Self { db: Arc::new(db), path })
    }

    /// The database, for the inbox's writer.
    pub(crate) fn database(&self) -> Arc<Database> {
        self.db.clone()
    }

    pub(crate) fn ping(&self) -> Result<(), StoreError> {
        self.db.begin_read().map(drop).map_err(backend)
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = now_millis();
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(KV).map_err(backend)?;
        let value = table.get(key).map_err(backend)?;
        Ok(value.and_then(|v| live(v.value(), now).map(<[u8]>::to_vec)))
    }

    pub(crate) fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let now = now_millis();
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(KV).map_err(backend)?;
        keys.iter()
            .map(|key| {
                let value = table.get(key.as_str()).map_err(backend)?;
                Ok(value.and_then(|v| live(v.value(), now).map(<[u8]>::to_vec)))
            })
            .collect()
    }

    pub(crate) fn index_range(&self, index: &str, start: usize, count: usize) -> Result<Vec<String>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(INDEX).map_err(backend)?;
        let upper = format!("{index}\0");
        let range = table.range((index, 0u64, "")..(upper.as_str(), 0u64, "")).map_err(backend)?;
        range.skip(start).take(count).map(|entry| entry.map(|(k, _)| k.value().2.to_owned()).map_err(backend)).collect()
    }

    pub(crate) fn list_range(&self, key: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(LISTS).map_err(backend)?;
        let range = table.range((key, 0u64)..=(key, u64::MAX)).map_err(backend)?;
        range.map(|entry| entry.map(|(_, v)| v.value().to_vec()).map_err(backend)).collect()
    }

    pub(crate) async fn set_nx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let txn = Txn::default().check(key, Expect::Absent).write(Write::Put {
            key: key.to_owned(),
            value: value.to_vec(),
            ttl: Some(ttl),
        });
        self.run(txn, Durability::None).await
    }

    pub(crate) async fn commit(&self, txn: Txn) -> Result<bool, StoreError> {
        self.run(txn, Durability::Immediate).await
    }

    async fn run(&self, txn: Txn, durability: Durability) -> Result<bool, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || apply(&db, txn, durability))
            .await
            .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    /// Deletes values whose time to live has passed; returns how many.
    pub(crate) async fn sweep(&self) -> Result<usize, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || sweep(&db, now_millis()))
            .await
            .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

fn apply(db: &Database, txn: Txn, durability: Durability) -> Result<bool, StoreError> {
    let now = now_millis();
    let mut write = db.begin_write().map_err(backend)?;
    write.set_durability(durability).map_err(backend)?;
    {
        let mut kv = write.open_table(KV).map_err(backend)?;
        for (key, expect) in &txn.checks {
            let current = kv.get(key.as_str()).map_err(backend)?;
            let current = current.as_ref().and_then(|v| live(v.value(), now));
            let holds = match expect {
                Expect::Absent => current.is_none(),
                Expect::Equals(value) => current == Some(value.as_slice()),
            };
            if !holds {
                return Ok(false);
            }
        }
        let mut expiry = write.open_table(EXPIRY).map_err(backend)?;
        let mut index = write.open_table(INDEX).map_err(backend)?;
        let mut members = write.open_table(INDEX_MEMBERS).map_err(backend)?;
        let mut lists = write.open_table(LISTS).map_err(backend)?;
        for op in txn.writes {
            match op {
                Write::Put { key, value, ttl } => {
                    let at = expiry_of(ttl, now);
                    kv.insert(key.as_str(), encode(&value, at).as_slice()).map_err(backend)?;
                    if at > 0 {
                        expiry.insert((at, key.as_str()), ()).map_err(backend)?;
                    }
                }
                Write::Delete { key } => {
                    kv.remove(key.as_str()).map_err(backend)?;
                }
                Write::IndexAdd { index: name, member, score } => {
                    let old = members.get((name.as_str(), member.as_str())).map_err(backend)?.map(|v| v.value());
                    if let Some(old) = old {
                        index.remove((name.as_str(), old, member.as_str())).map_err(backend)?;
                    }
                    let inverted = invert(score);
                    index.insert((name.as_str(), inverted, member.as_str()), ()).map_err(backend)?;
                    members.insert((name.as_str(), member.as_str()), inverted).map_err(backend)?;
                }
                Write::IndexRemove { index: name, member } => {
                    let old = members.remove((name.as_str(), member.as_str())).map_err(backend)?.map(|v| v.value());
                    if let Some(old) = old {
                        index.remove((name.as_str(), old, member.as_str())).map_err(backend)?;
                    }
                }
                Write::Append { key, value, cap } => {
                    // One scan gives the next sequence number and the entries past the cap.
                    let seqs: Vec<u64> = lists
                        .range((key.as_str(), 0u64)..=(key.as_str(), u64::MAX))
                        .map_err(backend)?
                        .map(|e| e.map(|(k, _)| k.value().1).map_err(backend))
                        .collect::<Result<_, _>>()?;
                    let next = seqs.last().map_or(0, |s| s + 1);
                    lists.insert((key.as_str(), next), value.as_slice()).map_err(backend)?;
                    let excess = (seqs.len() + 1).saturating_sub(cap.max(1)).min(seqs.len());
                    for seq in &seqs[..excess] {
                        lists.remove((key.as_str(), *seq)).map_err(backend)?;
                    }
                }
                Write::DeleteList { key } => {
                    lists.retain_in((key.as_str(), 0u64)..=(key.as_str(), u64::MAX), |_, _| false).map_err(backend)?;
                }
            }
        }
    }
    write.commit().map_err(backend)?;
    Ok(true)
}

fn sweep(db: &Database, now: i64) -> Result<usize, StoreError> {
    let write = db.begin_write().map_err(backend)?;
    let mut removed = 0;
    {
        let mut kv = write.open_table(KV).map_err(backend)?;
        let mut expiry = write.open_table(EXPIRY).map_err(backend)?;
        let due: Vec<(u64, String)> = expiry
            .range((0u64, "")..(now.max(0) as u64, ""))
            .map_err(backend)?
            .map(|e| e.map(|(k, _)| (k.value().0, k.value().1.to_owned())).map_err(backend))
            .collect::<Result<_, _>>()?;
        for (at, key) in due {
            expiry.remove((at, key.as_str())).map_err(backend)?;
            let expired = kv.get(key.as_str()).map_err(backend)?.is_some_and(|v| live(v.value(), now).is_none());
            if expired {
                kv.remove(key.as_str()).map_err(backend)?;
                removed += 1;
            }
        }
    }
    write.commit().map_err(backend)?;
    Ok(removed)
}
