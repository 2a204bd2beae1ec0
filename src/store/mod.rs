//! Everything the bridge must remember, in one store with two backends.
//!
//! [`Store`] offers typed operations (map a thread to a ticket, mark an event seen, decide
//! on a card, …) and builds them once on a handful of primitives that both backends
//! implement: get, set-if-absent with a time to live, sorted-index and list reads, and one
//! atomic [`txn::Txn`]. One compare-and-set loop over whole serialized records
//! (`Store::modify`) gives every read-modify-write (card decisions, submission, status
//! changes) exactly-once semantics across tasks and replicas; each operation states only its
//! change. Every key and lock name is built in [`keys`]; callers pass domain values.
//! Slack's per-minute budgets are token buckets that every replica draws from ([`budget`],
//! Redis only).
//!
//! Backends: Redis (`REDIS_URL`; replicas share it; every key under `REDIS_KEY_PREFIX`) and
//! an embedded redb file in `STATE_DIR` (the default). Nothing the bridge needs is kept only
//! in process memory.

mod budget;
mod embedded;
mod inbox;
mod keys;
mod redis;
pub mod seal;
mod txn;

use std::{future::Future, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use self::seal::Sealer;
pub use self::{
    budget::{Allowance, LONGEST_HOLD},
    inbox::{Claim, Finished, InboxStats, Pushed},
    keys::Lock,
};
use self::{
    embedded::EmbeddedBackend,
    inbox::{Inbox, embedded::EmbeddedInbox, redis::RedisInbox},
    keys::{Keys, index_member},
    redis::RedisBackend,
    txn::{Expect, Txn, Write},
};
use crate::{
    config::StoreConfig,
    ids::{CardId, ChannelId, EnterpriseId, MessageTs, PendingId, TeamId, ThreadKey, TicketKey, UserId},
    model::{
        Approval, Card, CardState, ChannelRef, ChannelSettings, Decision, HistoryEntry, Installation, Owner,
        PendingMessage, Rating, TicketRecord, TicketStatus, UnixMillis, now_millis,
    },
};

/// How many history entries a ticket keeps; older ones are trimmed.
pub const HISTORY_CAP: usize = 500;
/// How many entries a ticket's approval trail keeps (the newest).
pub const APPROVAL_TRAIL_CAP: usize = 10_000;
/// How long a card is kept after its last change. Cards are not deleted with their
/// decisions, so without this they would pile up forever; a click on an expired card is
/// answered like a click on a card that never existed.
pub const CARD_TTL: Duration = Duration::from_secs(90 * 24 * 60 * 60);
/// How long a reader's Stop on a streamed message is remembered: longer than any turn.
const STOPPED_TTL: Duration = Duration::from_secs(60 * 60);
/// How long the record of a message's send to the HelpDesk is kept: far longer than any
/// lease, so an item taken over after its holder died always finds it.
pub const SEND_MARK_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a recorded rating is remembered, so that the same click again records nothing:
/// as long as a card, since a reply can be rated long after it was written.
pub const FEEDBACK_TTL: Duration = CARD_TTL;
/// How long one replica's streaming probe stands for all: replicas started within it do not
/// probe again (each probe is a `chat.startStream`, from Slack's Tier 2 budget of 20 a minute
/// that streamed replies start from).
pub const PROBE_TTL: Duration = Duration::from_secs(60 * 60);
/// The open-cards index scores a card by this minus its creation time, so that the oldest
/// lists first while the score stays positive and exact as a Redis score (a double).
const OPEN_CARDS_BASE: i64 = 1 << 52;
/// How long the bridge remembers which ticket a message was relayed to: its edit or
/// deletion within this time is recorded on the ticket.
pub const RELAYED_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// How often a compare-and-set is retried under contention before giving up.
const CAS_ATTEMPTS: usize = 100;

/// A store failure a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached now (Redis down or timing out); retry later.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Another process holds the embedded store's folder.
    #[error("another process is using the state directory {}; stop it or set a different STATE_DIR", .0.display())]
    Locked(PathBuf),
    /// The backend failed otherwise.
    #[error("the store failed: {0}")]
    Backend(String),
    /// A stored record does not decode.
    #[error("a stored record is corrupt: {0}")]
    Corrupt(String),
    /// A compare-and-set kept losing races.
    #[error("too much contention updating {0}")]
    Contention(String),
    /// A sealed secret did not open, or could not be sealed.
    #[error(transparent)]
    Sealed(#[from] seal::SealError),
}

#[derive(Clone, Debug)]
enum Backend {
    Redis(RedisBackend),
    Embedded(EmbeddedBackend),
}

/// The bridge's store: a cheap-to-clone handle.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    inbox: Inbox,
    keys: Keys,
}

/// What a read-modify-write makes of the value it read (see [`Store::modify`]).
enum Change<R> {
    /// Write nothing; answer this.
    Keep(R),
    /// Commit this transaction, guarded by the value read being unchanged; answer this if
    /// it is applied.
    Commit(Txn, R),
}

/// A held lock; release it with [`Store::unlock`], or let it expire.
#[derive(Debug, Clone)]
pub struct LockGuard {
    key: String,
    token: Vec<u8>,
}

/// What [`Store::create_ticket`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    /// The mapping was stored.
    Created,
    /// The thread already had a ticket; here it is.
    Exists(Box<TicketRecord>),
}

/// Which tickets [`Store::list_tickets`] returns.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only this status (all when `None`).
    pub status: Option<TicketStatus>,
    /// Only tickets whose title or name contains this, case-insensitively.
    pub text: Option<String>,
    /// Only tickets this user requested or is assigned.
    pub involving: Option<UserId>,
    /// Only tickets this person can see the thread of.
    pub visible_to: Option<Viewer>,
    /// Where to resume: the `next` of a previous page.
    pub cursor: usize,
    /// At most this many.
    pub limit: usize,
}

/// Someone looking for tickets, for [`ListQuery::visible_to`]: they see the tickets of the
/// channel they look from, and their own anywhere (requested, assigned, or written in).
/// Nobody else's DM or private channel shows, since a person can only ask from a channel
/// they are in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// Who is looking.
    pub user: UserId,
    /// The channel they look from, when there is one.
    pub channel: Option<ChannelId>,
}

impl Viewer {
    /// Whether the ticket's thread is one this person can see.
    pub fn sees(&self, record: &TicketRecord) -> bool {
        self.channel.as_ref() == Some(&record.thread.channel)
            || record.requester == self.user
            || record.assignee.as_ref() == Some(&self.user)
            || record.participants.contains(&self.user)
    }
}

/// One page of [`Store::list_tickets`].
#[derive(Debug, Clone, Default)]
pub struct TicketPage {
    /// Tickets, most recently updated first.
    pub tickets: Vec<TicketRecord>,
    /// The cursor of the next page, if there is one.
    pub next: Option<usize>,
}

/// How far sending an inbound message to the HelpDesk got, as recorded before and after
/// each step (see [`Store::begin_send`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendMark {
    /// The send was about to start; it may or may not have reached the agent.
    Started,
    /// The HelpDesk took the message; its reply was streaming.
    Accepted,
    /// The turn ended.
    Finished,
}

impl SendMark {
    fn as_bytes(self) -> &'static [u8] {
        match self {
            Self::Started => b"started",
            Self::Accepted => b"accepted",
            Self::Finished => b"finished",
        }
    }

    fn from_bytes(raw: &[u8]) -> Self {
        match raw {
            b"accepted" => Self::Accepted,
            b"finished" => Self::Finished,
            // Anything else is treated as the least certain state: nothing is resent blindly.
            _ => Self::Started,
        }
    }
}

/// Where a reply is shown in Slack and how far it got, kept while its turn runs so that a
/// replica taking the turn over after a restart can finish the message cleanly (see
/// [`Store::mark_reply`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyMark {
    /// The channel of the message.
    pub channel: ChannelId,
    /// The message showing the reply now.
    pub ts: MessageTs,
    /// Whether it is a natively streamed message (else a placeholder being edited).
    pub streamed: bool,
    /// Characters of the agent's reply written to Slack so far.
    pub written: usize,
}

/// What a decision on a card came to.
#[derive(Debug, Clone, PartialEq)]
pub enum DecideOutcome {
    /// Recorded; the card as it now stands.
    Decided(Card),
    /// The card no longer takes decisions (submitted or superseded).
    Closed(Card),
    /// The card has no command at that position.
    NoSuchCommand(Card),
    /// A block rule rejected that command; nobody may decide on it.
    Blocked(Card),
    /// The command needs approvals from different people, and this one approved already.
    AlreadyApproved(Card),
    /// The card changed since the version the decider saw; nothing was recorded.
    Changed(Card),
    /// No such card.
    Missing,
}

/// What a submission came to.
#[derive(Debug, Clone, PartialEq)]
pub enum SubmitOutcome {
    /// This call submitted the card; send its decisions.
    Submitted(Card),
    /// Someone (or something) else already closed it; send nothing.
    Closed(Card),
    /// The card changed since the version the submitter saw; nothing was submitted.
    Changed(Card),
    /// No such card.
    Missing,
}

impl Store {
    /// Opens the store the configuration selects.
    pub fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        match config.redis_url.as_ref() {
            Some(url) => Self::redis(secrecy::ExposeSecret::expose_secret(url), &config.key_prefix),
            None => Self::embedded(&config.state_dir),
        }
    }

    /// A Redis store with every key under `prefix`. Call it inside a Tokio runtime: the
    /// connection manager runs a task of its own.
    pub fn redis(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let backend = RedisBackend::connect(url)?;
        let inbox = Inbox::Redis(RedisInbox::new(backend.connection()));
        Ok(Self { backend: Backend::Redis(backend), inbox, keys: Keys::new(prefix) })
    }

    /// An embedded store in `dir`.
    pub fn embedded(dir: &std::path::Path) -> Result<Self, StoreError> {
        let backend = EmbeddedBackend::open(dir)?;
        let inbox = Inbox::Embedded(EmbeddedInbox::start(&backend.database())?);
        Ok(Self { backend: Backend::Embedded(backend), inbox, keys: Keys::new("") })
    }

    /// `redis` or `embedded`.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Redis(_) => "redis",
            Backend::Embedded(_) => "embedded",
        }
    }

    // === primitives ===

    /// Whether the backend answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Redis(b) => b.ping().await,
            Backend::Embedded(b) => b.ping(),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.backend {
            Backend::Redis(b) => b.get(key).await,
            Backend::Embedded(b) => b.get(key),
        }
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        match &self.backend {
            Backend::Redis(b) => b.get_many(keys).await,
            Backend::Embedded(b) => b.get_many(keys),
        }
    }

    async fn set_nx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Redis(b) => b.set_nx(key, value, ttl).await,
            Backend::Embedded(b) => b.set_nx(key, value, ttl).await,
        }
    }

    async fn index_range(&self, index: &str, start: usize, count: usize) -> Result<Vec<String>, StoreError> {
        match &self.backend {
            Backend::Redis(b) => b.index_range(index, start, count).await,
            Backend::Embedded(b) => b.index_range(index, start, count),
        }
    }

    async fn list_range(&self, key: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        match &self.backend {
            Backend::Redis(b) => b.list_range(key).await,
            Backend::Embedded(b) => b.list_range(key),
        }
    }

    async fn commit(&self, txn: Txn) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Redis(b) => b.commit(txn).await,
            Backend::Embedded(b) => b.commit(txn).await,
        }
    }

    /// Deletes expired entries (embedded only; Redis expires keys itself).
    pub async fn sweep_expired(&self) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::Redis(_) => Ok(0),
            Backend::Embedded(b) => b.sweep().await,
        }
    }

    /// Deletes every key under this store's Redis prefix. For tests and decommissioning;
    /// a no-op on the embedded store (delete its folder instead).
    pub async fn purge(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Redis(b) if !self.keys.prefix().is_empty() => b.delete_prefix(self.keys.prefix()).await,
            _ => Ok(()),
        }
    }

    // === compare-and-set ===

    /// The one read-modify-write: reads `key`, lets `change` decide on what it holds, and
    /// commits the decided transaction only if `key` still holds exactly those bytes (the
    /// whole serialized record). A lost race reads again and asks `change` again, up to
    /// [`CAS_ATTEMPTS`] times; `what` names the record in the contention error. `change` is
    /// asynchronous for the changes that must read a second key (an open-card pointer)
    /// afresh on every attempt; the others use [`Store::modify`].
    async fn modify_raw<R, F, Fut>(
        &self,
        key: &str,
        what: &(dyn std::fmt::Display + Sync),
        mut change: F,
    ) -> Result<R, StoreError>
    where
        F: FnMut(Option<Vec<u8>>) -> Fut,
        Fut: Future<Output = Result<Change<R>, StoreError>>,
    {
        for _ in 0..CAS_ATTEMPTS {
            let raw = self.get(key).await?;
            let expect = raw.clone().map_or(Expect::Absent, Expect::Equals);
            match change(raw).await? {
                Change::Keep(answer) => return Ok(answer),
                Change::Commit(txn, answer) => {
                    if self.commit(txn.check(key, expect)).await? {
                        return Ok(answer);
                    }
                }
            }
        }
        Err(StoreError::Contention(what.to_string()))
    }

    /// [`Store::modify_raw`] on a JSON record, with a change that needs no other read.
    async fn modify<T: DeserializeOwned, R>(
        &self,
        key: &str,
        what: &(dyn std::fmt::Display + Sync),
        mut change: impl FnMut(Option<T>) -> Result<Change<R>, StoreError>,
    ) -> Result<R, StoreError> {
        self.modify_raw(key, what, |raw| {
            std::future::ready(raw.as_deref().map(decode).transpose().and_then(&mut change))
        })
        .await
    }

    /// [`Store::modify`] on a card that exists: a missing card answers `missing`, and a
    /// changed card is written back (with its time to live renewed) unless `change` keeps it.
    async fn modify_card<R>(
        &self,
        id: &CardId,
        missing: impl Fn() -> R,
        mut change: impl FnMut(&mut Card) -> Change<R>,
    ) -> Result<R, StoreError> {
        let key = self.keys.card(id);
        self.modify(&key, id, |card: Option<Card>| {
            let Some(mut card) = card else { return Ok(Change::Keep(missing())) };
            Ok(match change(&mut card) {
                Change::Keep(answer) => Change::Keep(answer),
                Change::Commit(txn, answer) => Change::Commit(txn.write(put_card(key.clone(), &card)), answer),
            })
        })
        .await
    }

    // === dedup and locks ===

    /// Marks `key` as seen for `ttl`; true only for the first caller, across replicas.
    pub async fn mark_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.set_nx(&self.keys.mark(key), b"1", ttl).await
    }

    /// The key the service fingerprints commands with, made on first use and shared by
    /// every replica.
    pub async fn hash_key(&self) -> Result<Vec<u8>, StoreError> {
        let key = self.keys.hash_key();
        if let Some(existing) = self.get(&key).await? {
            return Ok(existing);
        }
        let fresh: [u8; 32] = rand::random();
        // Durably and without a time to live: a lost key would change every fingerprint.
        let txn = Txn::default().check(&key, Expect::Absent).write(Write::Put {
            key: key.clone(),
            value: fresh.to_vec(),
            ttl: None,
        });
        self.commit(txn).await?;
        // Whoever set it first, this is the key.
        Ok(self.get(&key).await?.unwrap_or_else(|| fresh.to_vec()))
    }

    /// Marks `user`'s `rating` of the reply `reply` in `thread` as recorded, for
    /// [`FEEDBACK_TTL`]; true only for the first caller, across replicas. A rating whose
    /// recording then fails is given back with [`Store::release_feedback`], so that the next
    /// click records it.
    pub async fn claim_feedback(
        &self,
        thread: &ThreadKey,
        reply: &MessageTs,
        user: &UserId,
        rating: Rating,
    ) -> Result<bool, StoreError> {
        self.set_nx(&self.keys.feedback(thread, reply, user, rating), b"1", FEEDBACK_TTL).await
    }

    /// Remembers, for [`RELAYED_TTL`], that the message `ts` in `thread` reached `ticket`, so
    /// that its later edit or deletion is recorded there.
    pub async fn note_relayed(&self, thread: &ThreadKey, ts: &MessageTs, ticket: &TicketKey) -> Result<(), StoreError> {
        let txn = Txn::default().write(Write::Put {
            key: self.keys.relayed(thread, ts),
            value: relayed_value(ticket).into_bytes(),
            ttl: Some(RELAYED_TTL),
        });
        self.commit(txn).await.map(drop)
    }

    /// The ticket the message `ts` in `thread` was relayed to, if it was (within
    /// [`RELAYED_TTL`]).
    pub async fn relayed_to(&self, thread: &ThreadKey, ts: &MessageTs, ticket: &TicketKey) -> Result<bool, StoreError> {
        let raw = self.get(&self.keys.relayed(thread, ts)).await?;
        Ok(raw.is_some_and(|raw| {
            let raw = String::from_utf8_lossy(&raw);
            // Marks written before threads could move name the ticket alone.
            raw == relayed_value(ticket) || (!raw.contains('\n') && raw == ticket.ticket.as_str())
        }))
    }

    /// Claims the probe of whether `team`'s Slack streams natively, for [`PROBE_TTL`]; true
    /// only for the first caller, across replicas.
    pub async fn claim_streaming_probe(&self, team: &TeamId) -> Result<bool, StoreError> {
        self.set_nx(&self.keys.streaming_probe(team), b"1", PROBE_TTL).await
    }

    /// Forgets a claimed rating that could not be recorded.
    pub async fn release_feedback(
        &self,
        thread: &ThreadKey,
        reply: &MessageTs,
        user: &UserId,
        rating: Rating,
    ) -> Result<(), StoreError> {
        self.commit(Txn::default().delete(self.keys.feedback(thread, reply, user, rating))).await.map(drop)
    }

    /// Takes `lock` for at most `ttl`, or returns `None` if someone holds it.
    pub async fn try_lock(&self, lock: Lock<'_>, ttl: Duration) -> Result<Option<LockGuard>, StoreError> {
        let key = self.keys.lock(lock);
        let token = format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>()).into_bytes();
        Ok(self.set_nx(&key, &token, ttl).await?.then_some(LockGuard { key, token }))
    }

    /// Extends a lock we still hold to `ttl` from now; false when it is no longer ours (it
    /// expired and someone else took it).
    pub async fn extend_lock(&self, guard: &LockGuard, ttl: Duration) -> Result<bool, StoreError> {
        let txn = Txn::default().check(&guard.key, Expect::Equals(guard.token.clone())).write(Write::Put {
            key: guard.key.clone(),
            value: guard.token.clone(),
            ttl: Some(ttl),
        });
        self.commit(txn).await
    }

    /// Releases a lock if it is still ours (it may have expired and been taken since).
    pub async fn unlock(&self, guard: &LockGuard) -> Result<(), StoreError> {
        let txn = Txn::default().check(&guard.key, Expect::Equals(guard.token.clone())).delete(&guard.key);
        self.commit(txn).await.map(drop)
    }

    // === sends ===

    /// Records, durably, that the send of the message keyed `key` starts now. `None`: this
    /// is the first attempt, go ahead. `Some(mark)`: an earlier attempt (on a replica that
    /// died, or before a restart) got that far, and the message must not be sent blindly.
    pub async fn begin_send(&self, key: &str) -> Result<Option<SendMark>, StoreError> {
        let key = self.keys.send(key);
        let txn = Txn::default().check(&key, Expect::Absent).write(Write::Put {
            key: key.clone(),
            value: SendMark::Started.as_bytes().to_vec(),
            ttl: Some(SEND_MARK_TTL),
        });
        if self.commit(txn).await? {
            return Ok(None);
        }
        Ok(Some(self.get(&key).await?.map_or(SendMark::Started, |raw| SendMark::from_bytes(&raw))))
    }

    /// Records, durably, how far the send of the message keyed `key` got.
    pub async fn mark_send(&self, key: &str, mark: SendMark) -> Result<(), StoreError> {
        let key = self.keys.send(key);
        let txn = Txn::default().write(Write::Put { key, value: mark.as_bytes().to_vec(), ttl: Some(SEND_MARK_TTL) });
        self.commit(txn).await.map(drop)
    }

    /// Records where the reply to the message keyed `key` is shown and how far it got.
    pub async fn mark_reply(&self, key: &str, mark: &ReplyMark) -> Result<(), StoreError> {
        let txn = Txn::default().write(Write::Put {
            key: self.keys.reply(key),
            value: encode(mark),
            ttl: Some(SEND_MARK_TTL),
        });
        self.commit(txn).await.map(drop)
    }

    /// Where the reply to the message keyed `key` was shown, if a turn recorded it.
    pub async fn reply_mark(&self, key: &str) -> Result<Option<ReplyMark>, StoreError> {
        self.get(&self.keys.reply(key)).await?.map(|raw| decode(&raw)).transpose()
    }

    /// Records that `user` (when Slack said who) stopped the streamed message `ts`.
    pub async fn note_stream_stopped(
        &self,
        channel: &ChannelId,
        ts: &MessageTs,
        user: Option<&UserId>,
    ) -> Result<(), StoreError> {
        let value = user.map_or_else(Vec::new, |u| u.as_str().as_bytes().to_vec());
        let txn =
            Txn::default().write(Write::Put { key: self.keys.stopped(channel, ts), value, ttl: Some(STOPPED_TTL) });
        self.commit(txn).await.map(drop)
    }

    /// Whether a reader stopped the streamed message `ts`: `Some(who)` if so, `who` when
    /// Slack said.
    pub async fn stream_stopped_by(
        &self,
        channel: &ChannelId,
        ts: &MessageTs,
    ) -> Result<Option<Option<UserId>>, StoreError> {
        let raw = self.get(&self.keys.stopped(channel, ts)).await?;
        Ok(raw.map(|raw| String::from_utf8(raw).ok().filter(|u| !u.is_empty()).map(UserId::new)))
    }

    // === installations ===

    /// Stores (or replaces, on a reinstall) an installation, its bot token sealed for its
    /// owner under `sealer`.
    pub async fn put_installation(&self, installation: &Installation, sealer: &Sealer) -> Result<(), StoreError> {
        use secrecy::ExposeSecret;
        let owner = installation.owner.key();
        let sealed = sealer.seal(installation.bot_token.expose_secret().as_bytes(), &owner)?;
        let stored = StoredInstallation {
            enterprise: installation.enterprise.clone(),
            bot_token_sealed: hex::encode(sealed),
            bot_user: installation.bot_user.clone(),
            bot_id: installation.bot_id.clone(),
            scopes: installation.scopes.clone(),
            installer: installation.installer.clone(),
            installed_at: installation.installed_at,
        };
        let txn = Txn::default().put(self.keys.installation(&owner), encode(&stored)).write(Write::IndexAdd {
            index: self.keys.installations(),
            member: owner,
            score: installation.installed_at,
        });
        self.commit(txn).await.map(drop)
    }

    /// The installation that serves workspace `team`: its own, else its organisation's
    /// org-wide one (`enterprise`, when the request names one).
    pub async fn installation_for(
        &self,
        team: &TeamId,
        enterprise: Option<&EnterpriseId>,
        sealer: &Sealer,
    ) -> Result<Option<Installation>, StoreError> {
        if let Some(found) = self.installation(&Owner::Team(team.clone()), sealer).await? {
            return Ok(Some(found));
        }
        match enterprise {
            Some(enterprise) => self.installation(&Owner::Enterprise(enterprise.clone()), sealer).await,
            None => Ok(None),
        }
    }

    /// The installation `owner` made, its token opened.
    pub async fn installation(&self, owner: &Owner, sealer: &Sealer) -> Result<Option<Installation>, StoreError> {
        let key = owner.key();
        let Some(raw) = self.get(&self.keys.installation(&key)).await? else { return Ok(None) };
        let stored: StoredInstallation = decode(&raw)?;
        let sealed = hex::decode(&stored.bot_token_sealed).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let token = String::from_utf8(sealer.open(&sealed, &key)?).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some(Installation {
            owner: owner.clone(),
            enterprise: stored.enterprise,
            bot_token: token.into(),
            bot_user: stored.bot_user,
            bot_id: stored.bot_id,
            scopes: stored.scopes,
            installer: stored.installer,
            installed_at: stored.installed_at,
        }))
    }

    /// Removes the installation `owner` made (uninstalled, or its tokens revoked) if it was
    /// installed before `before`: an uninstall handled late leaves a reinstall that came
    /// after it alone. Whether one was removed.
    pub async fn remove_installation(&self, owner: &Owner, before: UnixMillis) -> Result<bool, StoreError> {
        let member = owner.key();
        let key = self.keys.installation(&member);
        self.modify(&key, &member, |stored: Option<StoredInstallation>| {
            Ok(match stored {
                Some(stored) if stored.installed_at < before => {
                    let txn = Txn::default()
                        .delete(&key)
                        .write(Write::IndexRemove { index: self.keys.installations(), member: member.clone() });
                    Change::Commit(txn, true)
                }
                _ => Change::Keep(false),
            })
        })
        .await
    }

    /// Remembers that workspace `team` belongs to organisation `enterprise` (as a request
    /// of it said), for what the bridge does in it unasked.
    pub async fn note_team_enterprise(&self, team: &TeamId, enterprise: &EnterpriseId) -> Result<(), StoreError> {
        let txn = Txn::default().put(self.keys.team_enterprise(team), enterprise.as_str().as_bytes().to_vec());
        self.commit(txn).await.map(drop)
    }

    /// The organisation workspace `team` was last seen in, if any.
    pub async fn team_enterprise(&self, team: &TeamId) -> Result<Option<EnterpriseId>, StoreError> {
        let raw = self.get(&self.keys.team_enterprise(team)).await?;
        Ok(raw.map(|r| EnterpriseId::new(String::from_utf8_lossy(&r).into_owned())))
    }

    /// Every installation's owner, the newest first.
    pub async fn installation_owners(&self) -> Result<Vec<Owner>, StoreError> {
        const MOST: usize = 10_000;
        let members = self.index_range(&self.keys.installations(), 0, MOST).await?;
        Ok(members.iter().filter_map(|m| Owner::parse(m)).collect())
    }

    // === tickets ===

    /// Stores a new thread → ticket mapping, unless the thread already has a ticket.
    pub async fn create_ticket(&self, record: &TicketRecord) -> Result<CreateOutcome, StoreError> {
        let thread_key = self.keys.thread(&record.thread);
        let member = index_member(&record.thread);
        let txn = Txn::default()
            .check(&thread_key, Expect::Absent)
            .put(&thread_key, encode(record))
            .write(Write::IndexAdd {
                index: self.keys.index(&record.thread.team, None),
                member: member.clone(),
                score: record.updated_at,
            })
            .write(Write::IndexAdd {
                index: self.keys.index(&record.thread.team, Some(record.status)),
                member,
                score: record.updated_at,
            });
        if self.commit(txn).await? {
            return Ok(CreateOutcome::Created);
        }
        match self.ticket_by_thread(&record.thread).await? {
            Some(existing) => Ok(CreateOutcome::Exists(Box::new(existing))),
            None => Err(StoreError::Contention(record.thread.to_string())),
        }
    }

    /// The ticket of a thread. One read: the record lives under the thread's key.
    pub async fn ticket_by_thread(&self, thread: &ThreadKey) -> Result<Option<TicketRecord>, StoreError> {
        self.get(&self.keys.thread(thread)).await?.map(|b| decode(&b)).transpose()
    }

    /// Changes a ticket record atomically. `change` edits the record and returns whether to
    /// write it; it may run more than once under contention. `updated_at` is set to now.
    /// Returns the record as stored afterwards, or `None` when the thread has no ticket.
    pub async fn update_ticket(
        &self,
        thread: &ThreadKey,
        mut change: impl FnMut(&mut TicketRecord) -> bool,
    ) -> Result<Option<TicketRecord>, StoreError> {
        let key = self.keys.thread(thread);
        self.modify(&key, thread, |before: Option<TicketRecord>| {
            let Some(before) = before else { return Ok(Change::Keep(None)) };
            let mut after = before.clone();
            if !change(&mut after) {
                return Ok(Change::Keep(Some(before)));
            }
            after.updated_at = now_millis().max(before.updated_at);
            let member = index_member(thread);
            let mut txn = Txn::default().put(&key, encode(&after)).write(Write::IndexAdd {
                index: self.keys.index(&thread.team, None),
                member: member.clone(),
                score: after.updated_at,
            });
            if before.status != after.status {
                txn = txn.write(Write::IndexRemove {
                    index: self.keys.index(&thread.team, Some(before.status)),
                    member: member.clone(),
                });
            }
            txn = txn.write(Write::IndexAdd {
                index: self.keys.index(&thread.team, Some(after.status)),
                member,
                score: after.updated_at,
            });
            if before.ticket != after.ticket {
                txn = txn.delete(self.keys.legacy_ticket(&before.ticket));
            }
            Ok(Change::Commit(txn, Some(after)))
        })
        .await
    }

    /// Removes a thread's ticket, its index entries, open card pointer and history. Returns
    /// what was removed.
    pub async fn delete_ticket(&self, thread: &ThreadKey) -> Result<Option<TicketRecord>, StoreError> {
        let key = self.keys.thread(thread);
        self.modify(&key, thread, |record: Option<TicketRecord>| {
            let Some(record) = record else { return Ok(Change::Keep(None)) };
            let member = index_member(thread);
            let mut txn = Txn::default();
            // The tickets a moved thread worked before go with it: nothing else names them.
            for earlier in &record.previous {
                txn = txn
                    .write(Write::DeleteList { key: self.keys.history(earlier) })
                    .write(Write::DeleteList { key: self.keys.approval_trail(earlier) })
                    .delete(self.keys.latest_card(earlier));
            }
            let txn = txn
                .delete(&key)
                .delete(self.keys.legacy_ticket(&record.ticket))
                .delete(self.keys.open_card(&record.ticket))
                .write(Write::DeleteList { key: self.keys.history(&record.ticket) })
                .write(Write::DeleteList { key: self.keys.approval_trail(&record.ticket) })
                .delete(self.keys.latest_card(&record.ticket))
                .write(Write::IndexRemove { index: self.keys.index(&thread.team, None), member: member.clone() })
                .write(Write::IndexRemove { index: self.keys.index(&thread.team, Some(record.status)), member });
            Ok(Change::Commit(txn, Some(record)))
        })
        .await
    }

    /// Tickets of a workspace, most recently updated first, filtered and paged.
    pub async fn list_tickets(&self, team: &TeamId, query: &ListQuery) -> Result<TicketPage, StoreError> {
        const SCAN: usize = 200;
        let index = self.keys.index(team, query.status);
        let text = query.text.as_deref().map(str::to_lowercase).filter(|t| !t.is_empty());
        let limit = query.limit.max(1);
        let mut page = TicketPage::default();
        let mut position = query.cursor;
        loop {
            let members = self.index_range(&index, position, SCAN).await?;
            if members.is_empty() {
                return Ok(page);
            }
            let keys: Vec<String> = members.iter().map(|m| self.keys.indexed_thread(m)).collect();
            let records = self.get_many(&keys).await?;
            for raw in records {
                position += 1;
                let Some(raw) = raw else { continue };
                let record: TicketRecord = decode(&raw)?;
                let text_ok = text.as_deref().is_none_or(|t| {
                    let named = |key: &TicketKey| key.ticket.as_str().to_lowercase().contains(t);
                    record.title.to_lowercase().contains(t)
                        || named(&record.ticket)
                        || record.previous.iter().any(named)
                });
                let user_ok = query
                    .involving
                    .as_ref()
                    .is_none_or(|u| &record.requester == u || record.assignee.as_ref() == Some(u));
                let visible = query.visible_to.as_ref().is_none_or(|viewer| viewer.sees(&record));
                if text_ok && user_ok && visible {
                    if page.tickets.len() == limit {
                        page.next = Some(position - 1);
                        return Ok(page);
                    }
                    page.tickets.push(record);
                }
            }
        }
    }

    // === cards ===

    /// Stores a new card as its ticket's open card. An older open card of the same ticket
    /// is marked superseded in the same transaction and returned, so its buttons can go.
    pub async fn put_card(&self, card: &Card) -> Result<Option<Card>, StoreError> {
        let pointer = self.keys.open_card(&card.ticket);
        let pointer = &pointer;
        self.modify_raw(pointer, &card.id, |current| async move {
            let mut txn = Txn::default().write(put_card(self.keys.card(&card.id), card)).write(Write::Put {
                key: pointer.clone(),
                value: card.id.as_str().as_bytes().to_vec(),
                ttl: Some(CARD_TTL),
            });
            // The latest card stays named after it closes: a late send of an older one can
            // tell it is no longer current.
            txn = txn.write(Write::Put {
                key: self.keys.latest_card(&card.ticket),
                value: card.id.as_str().as_bytes().to_vec(),
                ttl: Some(CARD_TTL),
            });
            let listed = Write::IndexAdd {
                index: self.keys.open_cards(),
                member: card.id.as_str().to_owned(),
                score: OPEN_CARDS_BASE.saturating_sub(card.created_at),
            };
            txn = txn.write(listed);
            let mut superseded = None;
            if let Some(old_id) = &current {
                let old_key = self.keys.card(&CardId::new(String::from_utf8_lossy(old_id)));
                if let Some(raw) = self.get(&old_key).await? {
                    let mut old: Card = decode(&raw)?;
                    if old.state == CardState::Open && old.id != card.id {
                        old.state = CardState::Superseded;
                        txn = txn
                            .check(&old_key, Expect::Equals(raw))
                            .write(put_card(old_key, &old))
                            .write(Write::IndexRemove { index: self.keys.open_cards(), member: old.id.to_string() });
                        superseded = Some(old);
                    }
                }
            }
            Ok(Change::Commit(txn, superseded))
        })
        .await
    }

    /// Up to `count` open cards created at or before `before`, oldest first. A card that
    /// has gone (its key expired) or closed without leaving the list is dropped from it.
    pub async fn open_cards_before(&self, before: UnixMillis, count: usize) -> Result<Vec<Card>, StoreError> {
        let index = self.keys.open_cards();
        let ids = self.index_range(&index, 0, count).await?;
        let keys: Vec<String> = ids.iter().map(|id| self.keys.card(&CardId::new(id.clone()))).collect();
        let mut due = Vec::new();
        for (id, raw) in ids.into_iter().zip(self.get_many(&keys).await?) {
            // A card that does not decode cannot be closed here: it leaves the list rather
            // than stop every later pass at it.
            let card = match raw.as_deref().map(decode::<Card>).transpose() {
                Ok(card) => card.filter(|c| c.state == CardState::Open),
                Err(err) => {
                    tracing::warn!(card = %id, error = %err, "an open card does not decode; no longer expiring it");
                    None
                }
            };
            match card {
                Some(card) if card.created_at <= before => due.push(card),
                // The list is oldest first: the rest are younger.
                Some(_) => break,
                None => {
                    self.commit(Txn::default().write(Write::IndexRemove { index: index.clone(), member: id })).await?;
                }
            }
        }
        Ok(due)
    }

    /// The id of the ticket's latest card, open or not (`None` for a ticket whose cards all
    /// predate this record).
    pub async fn latest_card(&self, ticket: &TicketKey) -> Result<Option<CardId>, StoreError> {
        let raw = self.get(&self.keys.latest_card(ticket)).await?;
        Ok(raw.map(|r| CardId::new(String::from_utf8_lossy(&r).into_owned())))
    }

    /// A card by id.
    pub async fn card(&self, id: &CardId) -> Result<Option<Card>, StoreError> {
        self.get(&self.keys.card(id)).await?.map(|b| decode(&b)).transpose()
    }

    /// The ticket's open card, if any.
    pub async fn open_card(&self, ticket: &TicketKey) -> Result<Option<Card>, StoreError> {
        let Some(id) = self.get(&self.keys.open_card(ticket)).await? else {
            return Ok(None);
        };
        let card = self.card(&CardId::new(String::from_utf8_lossy(&id))).await?;
        Ok(card.filter(|c| c.state == CardState::Open))
    }

    /// Replaces the card's message list (after it was posted or re-rendered).
    pub async fn set_card_messages(
        &self,
        id: &CardId,
        messages: Vec<crate::ids::MessageTs>,
    ) -> Result<Option<Card>, StoreError> {
        self.modify_card(
            id,
            || None,
            |card| {
                card.messages.clone_from(&messages);
                Change::Commit(Txn::default(), Some(card.clone()))
            },
        )
        .await
    }

    /// Records a decision on the command at `index`, if the card is still open and, when
    /// `seen` is given, still at the version the decider saw. Bumps the card's version.
    pub async fn decide_seen(
        &self,
        id: &CardId,
        index: usize,
        decision: Decision,
        by: &UserId,
        at: UnixMillis,
        seen: Option<u64>,
    ) -> Result<DecideOutcome, StoreError> {
        self.decide_needing(id, index, (decision, by, at), seen, 1).await
    }

    /// [`Store::decide_seen`], with an approval counting only once `needs` different people
    /// (or the command's own `needs`, if more) approved: a card stored before the two-person
    /// rule knows no `needs` of its own.
    pub async fn decide_needing(
        &self,
        id: &CardId,
        index: usize,
        (decision, by, at): (Decision, &UserId, UnixMillis),
        seen: Option<u64>,
        needs: u32,
    ) -> Result<DecideOutcome, StoreError> {
        self.modify_card(
            id,
            || DecideOutcome::Missing,
            |card| {
                if card.state != CardState::Open {
                    return Change::Keep(DecideOutcome::Closed(card.clone()));
                }
                if seen.is_some_and(|v| v != card.version) {
                    return Change::Keep(DecideOutcome::Changed(card.clone()));
                }
                let Some(command) = card.commands.get_mut(index) else {
                    return Change::Keep(DecideOutcome::NoSuchCommand(card.clone()));
                };
                // A block rule's rejection stands whoever asks.
                if command.blocked() {
                    return Change::Keep(DecideOutcome::Blocked(card.clone()));
                }
                // A command that needs several approvals is approved by the last one needed,
                // each from a different person; anything else starts its count again.
                command.needs = command.needs.max(needs);
                if decision == Decision::Approve && command.needs > 1 {
                    if command.approvals.iter().any(|a| a.by == *by) {
                        return Change::Keep(DecideOutcome::AlreadyApproved(card.clone()));
                    }
                    command.approvals.push(Approval { by: by.clone(), at });
                    if command.approvals.len() < command.needs as usize {
                        card.version += 1;
                        return Change::Commit(Txn::default(), DecideOutcome::Decided(card.clone()));
                    }
                } else {
                    command.approvals.clear();
                }
                command.decision = decision.clone();
                command.decided_by = Some(by.clone());
                command.decided_at = Some(at);
                // A person's decision replaces an allow rule's.
                command.policy = None;
                card.version += 1;
                Change::Commit(Txn::default(), DecideOutcome::Decided(card.clone()))
            },
        )
        .await
    }

    /// Closes an open card as submitted. Exactly one caller, across tasks and replicas,
    /// gets [`SubmitOutcome::Submitted`]; every other gets [`SubmitOutcome::Closed`].
    pub async fn submit(&self, id: &CardId, by: &UserId, at: UnixMillis) -> Result<SubmitOutcome, StoreError> {
        self.close_card(id, CardState::Submitted, Some((by, at)), None).await
    }

    /// Like [`Store::submit`], but only if the card is still at the version the submitter saw.
    pub async fn submit_seen(
        &self,
        id: &CardId,
        by: &UserId,
        at: UnixMillis,
        seen: u64,
    ) -> Result<SubmitOutcome, StoreError> {
        self.close_card(id, CardState::Submitted, Some((by, at)), Some(seen)).await
    }

    /// Marks a card's decisions as sent (or about to be). True for exactly one caller, ever,
    /// across tasks and replicas: decisions reach the HelpDesk at most once.
    pub async fn claim_card_send(&self, id: &CardId) -> Result<bool, StoreError> {
        self.set_card_sent(id, true).await
    }

    /// Undoes [`Store::claim_card_send`] when the send certainly did not reach the HelpDesk.
    pub async fn release_card_send(&self, id: &CardId) -> Result<bool, StoreError> {
        self.set_card_sent(id, false).await
    }

    /// Sets a card's `sent` flag; true when this call changed it.
    async fn set_card_sent(&self, id: &CardId, sent: bool) -> Result<bool, StoreError> {
        self.modify_card(
            id,
            || false,
            |card| {
                if card.sent == sent {
                    return Change::Keep(false);
                }
                card.sent = sent;
                Change::Commit(Txn::default(), true)
            },
        )
        .await
    }

    /// Closes an open card as superseded (e.g. its ticket was closed or deleted).
    pub async fn supersede(&self, id: &CardId) -> Result<SubmitOutcome, StoreError> {
        self.close_card(id, CardState::Superseded, None, None).await
    }

    /// Closes an open card (still at version `seen`, when given) and clears its ticket's
    /// open-card pointer if it still points at this card.
    async fn close_card(
        &self,
        id: &CardId,
        state: CardState,
        by: Option<(&UserId, UnixMillis)>,
        seen: Option<u64>,
    ) -> Result<SubmitOutcome, StoreError> {
        let key = &self.keys.card(id);
        self.modify_raw(key, id, |raw| async move {
            let Some(raw) = raw else { return Ok(Change::Keep(SubmitOutcome::Missing)) };
            let mut card: Card = decode(&raw)?;
            if card.state != CardState::Open {
                return Ok(Change::Keep(SubmitOutcome::Closed(card)));
            }
            if seen.is_some_and(|v| v != card.version) {
                return Ok(Change::Keep(SubmitOutcome::Changed(card)));
            }
            card.state = state;
            card.version += 1;
            if let Some((user, at)) = by {
                card.submitted_by = Some(user.clone());
                card.submitted_at = Some(at);
            }
            let pointer = self.keys.open_card(&card.ticket);
            let current = self.get(&pointer).await?;
            let mut txn = Txn::default()
                .check(&pointer, current.clone().map_or(Expect::Absent, Expect::Equals))
                .write(put_card(key.clone(), &card))
                .write(Write::IndexRemove { index: self.keys.open_cards(), member: id.to_string() });
            if current.as_deref() == Some(id.as_str().as_bytes()) {
                txn = txn.delete(&pointer);
            }
            Ok(Change::Commit(txn, SubmitOutcome::Submitted(card)))
        })
        .await
    }

    // === history ===

    /// Appends to a ticket's timeline (trimmed to the newest [`HISTORY_CAP`] entries).
    /// An approval entry also joins the ticket's approval trail (up to
    /// [`APPROVAL_TRAIL_CAP`] entries), in the same transaction.
    pub async fn append_history(&self, ticket: &TicketKey, entry: &HistoryEntry) -> Result<(), StoreError> {
        let value = encode(entry);
        let mut txn = Txn::default().write(Write::Append {
            key: self.keys.history(ticket),
            value: value.clone(),
            cap: HISTORY_CAP,
        });
        if entry.event.is_approval() {
            txn = txn.write(Write::Append { key: self.keys.approval_trail(ticket), value, cap: APPROVAL_TRAIL_CAP });
        }
        self.commit(txn).await.map(drop)
    }

    /// A ticket's approval trail, oldest first: its own list, after the approval entries of
    /// its timeline from before the list began (recorded by an older version).
    pub async fn approval_trail(&self, ticket: &TicketKey) -> Result<Vec<HistoryEntry>, StoreError> {
        let trail: Vec<HistoryEntry> = self
            .list_range(&self.keys.approval_trail(ticket))
            .await?
            .iter()
            .map(|b| decode(b))
            .collect::<Result<_, _>>()?;
        let began = trail.first().map_or(UnixMillis::MAX, |first| first.at);
        let mut earlier: Vec<HistoryEntry> =
            self.history(ticket).await?.into_iter().filter(|e| e.event.is_approval() && e.at < began).collect();
        earlier.extend(trail);
        Ok(earlier)
    }

    /// A ticket's timeline, oldest first.
    pub async fn history(&self, ticket: &TicketKey) -> Result<Vec<HistoryEntry>, StoreError> {
        self.list_range(&self.keys.history(ticket)).await?.iter().map(|b| decode(b)).collect()
    }

    // === pending messages ===

    /// Keeps a message that could not be sent yet (for a Retry button, or until a ticket
    /// is created in a modal) for `ttl`. Returns its opaque id.
    pub async fn put_pending(&self, pending: &PendingMessage, ttl: Duration) -> Result<PendingId, StoreError> {
        let id = PendingId::new(format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>()));
        let key = self.keys.pending(id.as_str());
        if self.set_nx(&key, &encode(pending), ttl).await? { Ok(id) } else { Err(StoreError::Contention(key)) }
    }

    /// A pending message, left in place.
    pub async fn pending(&self, id: &PendingId) -> Result<Option<PendingMessage>, StoreError> {
        self.get(&self.keys.pending(id.as_str())).await?.map(|b| decode(&b)).transpose()
    }

    /// Takes a pending message away: exactly one caller, across replicas, gets it.
    pub async fn take_pending(&self, id: &PendingId) -> Result<Option<PendingMessage>, StoreError> {
        let key = self.keys.pending(id.as_str());
        let Some(raw) = self.get(&key).await? else {
            return Ok(None);
        };
        let pending = decode(&raw)?;
        let taken = self.commit(Txn::default().check(&key, Expect::Equals(raw)).delete(&key)).await?;
        Ok(taken.then_some(pending))
    }

    // === channel settings ===

    /// A channel's settings (defaults when never set).
    pub async fn channel_settings(&self, channel: &ChannelRef) -> Result<ChannelSettings, StoreError> {
        let key = self.keys.channel(channel);
        Ok(self.get(&key).await?.map(|b| decode(&b)).transpose()?.unwrap_or_default())
    }

    /// A Slack workspace's defaults for its channels (`/helpdesk config default …`): only
    /// the portal, workspace and agent are used.
    pub async fn team_defaults(&self, team: &TeamId) -> Result<ChannelSettings, StoreError> {
        let key = self.keys.team_defaults(team);
        Ok(self.get(&key).await?.map(|b| decode(&b)).transpose()?.unwrap_or_default())
    }

    /// Replaces a Slack workspace's defaults.
    pub async fn set_team_defaults(&self, team: &TeamId, defaults: &ChannelSettings) -> Result<(), StoreError> {
        let key = self.keys.team_defaults(team);
        self.commit(Txn::default().put(key, encode(defaults))).await.map(drop)
    }

    /// Replaces a channel's settings.
    pub async fn set_channel_settings(
        &self,
        channel: &ChannelRef,
        settings: &ChannelSettings,
    ) -> Result<(), StoreError> {
        let key = self.keys.channel(channel);
        self.commit(Txn::default().put(key, encode(settings))).await.map(drop)
    }
}

fn put_card(key: String, card: &Card) -> Write {
    Write::Put { key, value: encode(card), ttl: Some(CARD_TTL) }
}

/// An installation as stored: its bot token sealed (hex), never in clear.
#[derive(Serialize, Deserialize)]
struct StoredInstallation {
    enterprise: Option<EnterpriseId>,
    bot_token_sealed: String,
    bot_user: UserId,
    bot_id: Option<String>,
    scopes: Vec<String>,
    installer: Option<UserId>,
    installed_at: UnixMillis,
}

/// A relayed message's mark: the whole key of its ticket, since names repeat across
/// portals and workspaces (a moved thread's tickets may share one).
fn relayed_value(ticket: &TicketKey) -> String {
    format!("{}\n{}\n{}", ticket.host, ticket.workspace, ticket.ticket)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Records are plain data (strings, numbers, enums); serializing them cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ids::MessageTs,
        model::{ChannelRef, Place},
    };

    /// A kept message whose thread is not posted yet is stored as earlier versions stored it
    /// (a thread with an empty ts, and `new_thread`), so replicas of either version read it.
    #[test]
    fn pending_messages_keep_their_stored_shape() {
        let channel = ChannelRef { team: TeamId::new("T1"), channel: ChannelId::new("C1") };
        let pending = PendingMessage {
            place: Place::NewThreadIn(channel.clone()),
            author: UserId::new("U1"),
            message_ts: None,
            content: "first".to_owned(),
            title: "Disk full".to_owned(),
            card: None,
        };
        let stored = String::from_utf8(encode(&pending)).unwrap();
        assert_eq!(
            stored,
            r#"{"thread":{"team":"T1","channel":"C1","thread_ts":""},"author":"U1","message_ts":null,"content":"first","title":"Disk full","card":null,"new_thread":true}"#
        );
        assert_eq!(decode::<PendingMessage>(stored.as_bytes()).unwrap(), pending);
        let thread = ThreadKey { team: channel.team, channel: channel.channel, thread_ts: MessageTs::new("1.2") };
        let older = r#"{"thread":{"team":"T1","channel":"C1","thread_ts":"1.2"},"author":"U1","content":"hi"}"#;
        let read: PendingMessage = decode(older.as_bytes()).unwrap();
        assert_eq!(read.place, Place::Thread(thread));
        assert_eq!((read.title.as_str(), read.card, read.message_ts), ("", None, None));
        // Earlier versions kept `new_thread` on a message whose header was already posted.
        let posted = r#"{"thread":{"team":"T1","channel":"C1","thread_ts":"1.2"},"author":"U1","content":"hi","new_thread":true}"#;
        assert_eq!(decode::<PendingMessage>(posted.as_bytes()).unwrap().place, read.place);
    }

    /// A stored approver that no longer parses is left out; the channel's other settings and
    /// approvers still read.
    #[test]
    fn a_bad_stored_approver_does_not_hide_the_channels_settings() {
        let stored = r#"{"agent_name":"k8s","relay_mode":"mentions","approvers":["U6","not an id","S9"]}"#;
        let settings: crate::model::ChannelSettings = decode(stored.as_bytes()).unwrap();
        assert_eq!(settings.agent_name.as_deref(), Some("k8s"));
        assert_eq!(settings.approvers, ["U6", "S9"]);
        assert_eq!(settings.relay_mode, crate::model::RelayMode::Mentions);
    }
}
