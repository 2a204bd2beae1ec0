//! What people do to their messages after the fact: an edit or a deletion, in Slack, of a
//! message that reached a ticket is recorded on that ticket (record-only: the agent is not
//! woken, and the original message is not sent again) and in its history.
//!
//! Which ticket a message reached is remembered when it is relayed
//! ([`crate::store::Store::note_relayed`]); a message that never reached one (a bot's, or one
//! older than [`crate::store::RELAYED_TTL`], or written before the thread was a ticket) is
//! left alone, and so is a message that reached an earlier ticket of the thread.

use super::{Bridge, BridgeError};
use crate::{
    ids::{MessageTs, TeamId},
    inbound::MessageChange,
    model::{Actor, HistoryEvent, TicketRecord, TicketStatus},
    slack::notices,
};

impl Bridge {
    /// Remembers that the person's message `ts` (if the relayed message was one) reached
    /// the ticket; a failure is logged: only a later edit would go unrecorded.
    pub(super) async fn note_relayed(&self, record: &TicketRecord, ts: Option<&MessageTs>) {
        let Some(ts) = ts else { return };
        if let Err(err) = self.inner.store.note_relayed(&record.thread, ts, &record.ticket).await {
            tracing::warn!(ticket = %record.ticket.ticket, error = %err, "could not remember a relayed message");
        }
    }

    /// A person edited or deleted a message.
    pub(super) async fn on_message_changed(&self, team: &TeamId, change: &MessageChange) -> Result<(), BridgeError> {
        let store = &self.inner.store;
        let thread = change.thread(team);
        // A closed ticket's thread no longer reaches it.
        let Some(record) = store.ticket_by_thread(&thread).await?.filter(|r| r.status != TicketStatus::Closed) else {
            return Ok(());
        };
        if !store.relayed_to(&thread, &change.ts, &record.ticket).await? {
            return Ok(());
        }
        let who = match &change.user {
            Some(user) => self.name_of(user).await,
            None => "Someone".to_owned(),
        };
        let (content, event) = match &change.text {
            Some(text) => {
                let plain = self.plain_text(text).await;
                (
                    format!("{who} edited a message in Slack: {plain}"),
                    HistoryEvent::MessageEdited { ts: change.ts.clone() },
                )
            }
            None => {
                // Whoever deleted it (its author, or an admin), it was this person's message.
                (
                    format!("A message by {who} was deleted in Slack."),
                    HistoryEvent::MessageDeleted { ts: change.ts.clone() },
                )
            }
        };
        let actor = match (&change.text, &change.user) {
            (Some(_), Some(user)) => Actor::User(user.clone()),
            // Who deleted it Slack does not say.
            _ => Actor::Bridge,
        };
        match self.mirror(&record, content).await {
            Ok(()) => {
                tracing::info!(ticket = %record.ticket.ticket, thread = %thread, deleted = change.text.is_none(), "recorded a change to a relayed message");
                self.record(&record, actor, event).await;
            }
            Err(err) => {
                let note = notices::change_not_recorded(record.ticket.ticket.as_str(), change.text.is_none(), &err);
                self.tell(&record.thread, &note).await;
            }
        }
        Ok(())
    }
}
