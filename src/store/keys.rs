//! Every key and lock name the store writes, built in one place.
//!
//! Callers hand the store domain values (a thread, a ticket, a card id, a [`Lock`]); only this
//! module turns them into strings. The strings are a storage format shared by replicas of
//! different versions during an upgrade, so each one must stay byte-for-byte what it is.

use crate::{
    ids::{CardId, ChannelId, MessageTs, ThreadKey, TicketKey, UserId},
    model::{ChannelRef, Rating, TicketStatus},
};

/// A named lock, as the bridge asks for it; [`crate::store::Store::try_lock`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock<'a> {
    /// Opening the ticket of a thread: one ticket per thread, across replicas.
    Open(&'a ThreadKey),
    /// An agent turn on a ticket: one turn at a time, across replicas.
    Turn(&'a TicketKey),
    /// A status change (or deletion) of a ticket, so two changes do not interleave.
    Life(&'a TicketKey),
}

/// Builds the store's keys under one prefix (`REDIS_KEY_PREFIX`; empty for the embedded
/// store, which has its own file).
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned() }
    }

    /// The prefix every key starts with.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, suffix: std::fmt::Arguments<'_>) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// A thread's ticket record.
    pub(crate) fn thread(&self, thread: &ThreadKey) -> String {
        self.indexed_thread(&index_member(thread))
    }

    /// A thread's ticket record, from the thread as a ticket index lists it.
    pub(crate) fn indexed_thread(&self, member: &str) -> String {
        self.key(format_args!("thread:{member}"))
    }

    /// The ticket → thread mapping that versions before this one wrote. Nothing reads or
    /// writes it now; deleting a ticket still removes it, so that none is left behind.
    pub(crate) fn legacy_ticket(&self, ticket: &TicketKey) -> String {
        self.key(format_args!("ticket:{ticket}"))
    }

    /// A workspace's ticket index: all tickets, or those of one status.
    pub(crate) fn index(&self, team: &crate::ids::TeamId, status: Option<TicketStatus>) -> String {
        self.key(format_args!("idx:{team}:{}", status.map_or("all", TicketStatus::as_str)))
    }

    /// An installation of the app, by its owner's key (`team:T…` or `org:E…`).
    pub(crate) fn installation(&self, owner: &str) -> String {
        self.key(format_args!("install:{owner}"))
    }

    /// A Slack workspace's defaults for its channels.
    pub(crate) fn team_defaults(&self, team: &crate::ids::TeamId) -> String {
        self.key(format_args!("teamdefaults:{team}"))
    }

    /// The organisation a workspace belongs to, as its requests named it.
    pub(crate) fn team_enterprise(&self, team: &crate::ids::TeamId) -> String {
        self.key(format_args!("teamorg:{team}"))
    }

    /// The index of every installation, by owner key.
    pub(crate) fn installations(&self) -> String {
        self.key(format_args!("idx:installs"))
    }

    /// A card.
    pub(crate) fn card(&self, card: &CardId) -> String {
        self.key(format_args!("card:{card}"))
    }

    /// The id of a ticket's latest card, open or not.
    pub(crate) fn latest_card(&self, ticket: &TicketKey) -> String {
        self.key(format_args!("lastcard:{ticket}"))
    }

    /// The pointer to a ticket's open card.
    pub(crate) fn open_card(&self, ticket: &TicketKey) -> String {
        self.key(format_args!("opencard:{ticket}"))
    }

    /// Every open approval card, oldest first (the younger, the lower its score), so that
    /// the ones whose time ran out are found without a scan.
    pub(crate) fn open_cards(&self) -> String {
        self.key(format_args!("idx:opencards"))
    }

    /// The key of the service's command fingerprints ([`crate::model::CommandHasher`]).
    pub(crate) fn hash_key(&self) -> String {
        self.key(format_args!("meta:hashkey"))
    }

    /// A ticket's approval trail: its approval entries, kept apart from the timeline so
    /// that a busy thread does not push them out.
    pub(crate) fn approval_trail(&self, ticket: &TicketKey) -> String {
        self.key(format_args!("trail:{ticket}"))
    }

    /// A ticket's timeline.
    pub(crate) fn history(&self, ticket: &TicketKey) -> String {
        self.key(format_args!("hist:{ticket}"))
    }

    /// A dedup mark, by the marked thing's own key (e.g. an inbound item's idempotency key).
    pub(crate) fn mark(&self, key: &str) -> String {
        self.key(format_args!("mark:{key}"))
    }

    /// Which ticket a person's message was relayed to.
    pub(crate) fn relayed(&self, thread: &ThreadKey, ts: &MessageTs) -> String {
        self.key(format_args!("relayed:{thread}:{ts}"))
    }

    /// The mark of the replica that probes whether `team`'s Slack streams natively.
    pub(crate) fn streaming_probe(&self, team: &crate::ids::TeamId) -> String {
        self.mark(&format!("probe:{team}"))
    }

    /// The mark of a rating recorded on a reply: by whom, which rating, on which message
    /// (a message ts is unique in its channel, so the thread is not part of it).
    pub(crate) fn feedback(&self, thread: &ThreadKey, reply: &MessageTs, user: &UserId, rating: Rating) -> String {
        self.mark(&format!("feedback:{}:{}:{reply}:{user}:{}", thread.team, thread.channel, rating.as_str()))
    }

    /// A lock.
    pub(crate) fn lock(&self, lock: Lock<'_>) -> String {
        match lock {
            Lock::Open(thread) => self.key(format_args!("lock:open:{thread}")),
            Lock::Turn(ticket) => self.key(format_args!("lock:turn:{ticket}")),
            Lock::Life(ticket) => self.key(format_args!("lock:life:{ticket}")),
        }
    }

    /// A pending message.
    pub(crate) fn pending(&self, id: &str) -> String {
        self.key(format_args!("pending:{id}"))
    }

    /// A channel's settings.
    pub(crate) fn channel(&self, channel: &ChannelRef) -> String {
        self.key(format_args!("chan:{}:{}", channel.team, channel.channel))
    }

    /// The inbox's list of an order key's items (with an empty key: the lists' common prefix).
    pub(crate) fn inbox_queue(&self, order_key: &str) -> String {
        self.key(format_args!("inbox:q:{order_key}"))
    }

    /// The inbox's keys waiting for a worker, by when they became ready.
    pub(crate) fn inbox_ready(&self) -> String {
        self.key(format_args!("inbox:ready"))
    }

    /// The inbox's leased keys, by when their leases run out.
    pub(crate) fn inbox_leased(&self) -> String {
        self.key(format_args!("inbox:leased"))
    }

    /// The fencing token of each inbox lease.
    pub(crate) fn inbox_owners(&self) -> String {
        self.key(format_args!("inbox:owners"))
    }

    /// The counter inbox fencing tokens are drawn from.
    pub(crate) fn inbox_fence(&self) -> String {
        self.key(format_args!("inbox:fence"))
    }

    /// How many items the inbox holds.
    pub(crate) fn inbox_count(&self) -> String {
        self.key(format_args!("inbox:count"))
    }

    /// Who stopped a streamed message in Slack.
    pub(crate) fn stopped(&self, channel: &ChannelId, ts: &MessageTs) -> String {
        self.key(format_args!("stopped:{channel}:{ts}"))
    }

    /// Where an inbound message's reply is shown in Slack, and how far it got.
    pub(crate) fn reply(&self, key: &str) -> String {
        self.key(format_args!("reply:{key}"))
    }

    /// Whether an inbound message's send to the HelpDesk started, was accepted or finished.
    pub(crate) fn send(&self, key: &str) -> String {
        self.key(format_args!("send:{key}"))
    }

    /// The bucket of the per-minute budget `name` (e.g. `edits`) of `key` (a workspace, a
    /// channel), shared by the replicas.
    pub(crate) fn budget(&self, name: &str, key: &str) -> String {
        self.key(format_args!("budget:{name}:{key}"))
    }
}

/// How a ticket index lists a thread.
pub(crate) fn index_member(thread: &ThreadKey) -> String {
    thread.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ChannelId, MessageTs, TeamId, TicketName, WorkspaceId};

    #[test]
    fn keys_keep_the_names_older_replicas_use() {
        let keys = Keys::new("p:");
        let thread = ThreadKey {
            team: TeamId::new("T1"),
            channel: ChannelId::new("C1"),
            thread_ts: MessageTs::new("1700000000.000100"),
        };
        let ticket = TicketKey {
            host: "https://h".to_owned(),
            workspace: WorkspaceId::new("w"),
            ticket: TicketName::new("DEVOPS-1"),
        };
        let channel = ChannelRef { team: TeamId::new("T1"), channel: ChannelId::new("C1") };
        assert_eq!(keys.thread(&thread), "p:thread:T1:C1:1700000000.000100");
        assert_eq!(keys.indexed_thread("T1:C1:1"), "p:thread:T1:C1:1");
        assert_eq!(keys.legacy_ticket(&ticket), "p:ticket:https://h/w/DEVOPS-1");
        assert_eq!(keys.index(&TeamId::new("T1"), None), "p:idx:T1:all");
        assert_eq!(keys.index(&TeamId::new("T1"), Some(TicketStatus::Pending)), "p:idx:T1:pending");
        assert_eq!(keys.card(&CardId::new("c1")), "p:card:c1");
        assert_eq!(keys.open_card(&ticket), "p:opencard:https://h/w/DEVOPS-1");
        assert_eq!(keys.history(&ticket), "p:hist:https://h/w/DEVOPS-1");
        assert_eq!(keys.mark("evt:E1"), "p:mark:evt:E1");
        assert_eq!(keys.lock(Lock::Open(&thread)), "p:lock:open:T1:C1:1700000000.000100");
        assert_eq!(keys.lock(Lock::Turn(&ticket)), "p:lock:turn:https://h/w/DEVOPS-1");
        assert_eq!(keys.lock(Lock::Life(&ticket)), "p:lock:life:https://h/w/DEVOPS-1");
        assert_eq!(keys.pending("abc"), "p:pending:abc");
        assert_eq!(keys.channel(&channel), "p:chan:T1:C1");
        assert_eq!(keys.inbox_queue("thread:T1:C1:1"), "p:inbox:q:thread:T1:C1:1");
        assert_eq!(keys.inbox_queue(""), "p:inbox:q:");
        assert_eq!(
            [keys.inbox_ready(), keys.inbox_leased(), keys.inbox_owners(), keys.inbox_fence(), keys.inbox_count()],
            ["p:inbox:ready", "p:inbox:leased", "p:inbox:owners", "p:inbox:fence", "p:inbox:count"]
        );
        assert_eq!(keys.send("msg:T1:C1:1.2"), "p:send:msg:T1:C1:1.2");
        assert_eq!(
            keys.feedback(&thread, &MessageTs::new("1800000000.000001"), &UserId::new("U9"), Rating::Negative),
            "p:mark:feedback:T1:C1:1800000000.000001:U9:negative"
        );
        assert_eq!(keys.streaming_probe(&TeamId::new("T1")), "p:mark:probe:T1");
    }

    #[test]
    fn budget_buckets_are_named_by_budget_and_key() {
        let keys = Keys::new("p:");
        assert_eq!(keys.budget("edits", "T1"), "p:budget:edits:T1");
        assert_eq!(keys.budget("posts", "C1"), "p:budget:posts:C1");
    }
}
