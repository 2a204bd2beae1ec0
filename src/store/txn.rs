//! The one atomic primitive both backends implement: check some keys, then apply some writes.
//!
//! Every multi-key change the store makes (create a mapping both ways and index it, supersede
//! a card while posting its successor, submit a card exactly once) is a [`Txn`]: all checks
//! hold and all writes apply, or nothing changes. Redis runs it as one Lua script, redb as
//! one write transaction, so the domain code above is written once.

use std::time::Duration;

/// What a check expects of a key.
#[derive(Debug, Clone)]
pub(crate) enum Expect {
    /// The key holds nothing (or only an expired value).
    Absent,
    /// The key holds exactly these bytes.
    Equals(Vec<u8>),
}

/// One write of a transaction.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    /// Set a value, with an optional time to live.
    Put { key: String, value: Vec<u8>, ttl: Option<Duration> },
    /// Remove a value.
    Delete { key: String },
    /// Add (or move) a member of a sorted index; higher scores list first.
    IndexAdd { index: String, member: String, score: i64 },
    /// Remove a member of a sorted index.
    IndexRemove { index: String, member: String },
    /// Append to a list, keeping only its newest `cap` entries.
    Append { key: String, value: Vec<u8>, cap: usize },
    /// Remove a whole list.
    DeleteList { key: String },
}

/// A set of checks and the writes to apply if they all hold.
#[derive(Debug, Clone, Default)]
pub(crate) struct Txn {
    pub(crate) checks: Vec<(String, Expect)>,
    pub(crate) writes: Vec<Write>,
}

impl Txn {
    pub(crate) fn check(mut self, key: impl Into<String>, expect: Expect) -> Self {
        self.checks.push((key.into(), expect));
        self
    }

    pub(crate) fn write(mut self, write: Write) -> Self {
        self.writes.push(write);
        self
    }

    pub(crate) fn put(self, key: impl Into<String>, value: Vec<u8>) -> Self {
        self.write(Write::Put { key: key.into(), value, ttl: None })
    }

    pub(crate) fn delete(self, key: impl Into<String>) -> Self {
        self.write(Write::Delete { key: key.into() })
    }
}
