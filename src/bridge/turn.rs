//! Relaying: a thread message becomes an agent turn, and the reply streams back.
//!
//! One turn at a time per ticket. On one replica the dispatcher already runs a thread's
//! items in order, one at a time; a store lock per ticket makes that true across replicas,
//! so a message that arrives during a turn waits and goes next, in order.

use std::time::Duration;

use super::{
    Bridge, BridgeError, PENDING_TTL, action,
    open::OpenRequest,
    patiently,
    reply::{self, Outcome},
};
use crate::{
    helpdesk::{HelpdeskError, OutgoingMessage, events::decisions_data},
    inbound::{BlockAction, UserMessage},
    model::{Actor, HistoryEvent, PendingMessage, TicketRecord, TicketStatus},
    slack::blocks::{self, Button},
    store::Lock,
};

/// A turn may hold its ticket this long; agent turns that run tools take minutes.
const TURN_LOCK_TTL: Duration = Duration::from_secs(15 * 60);
/// How often a waiting turn checks whether the ticket is free.
const TURN_POLL: Duration = Duration::from_millis(200);

/// Reactions on the person's message once its turn ended.
const DONE: &str = "white_check_mark";
const FAILED: &str = "warning";

/// Whether a failed send reached the HelpDesk, as far as the bridge can tell.
enum Delivery {
    NotDelivered,
    Unknown,
    Delivered,
}

/// What the agent reads when a message would have carried decisions that were already sent
/// (or may have been): they are not sent again.
const NOT_RESENT: &str = "\n\n(Note from the Slack bridge: the decisions on your earlier proposals may already have \
     reached you and are not sent again. If those commands are still needed, propose them again.)";

/// Whether a failed send can have reached the HelpDesk. Only a send the HelpDesk refused
/// before the agent saw it counts as not delivered; a server error or a broken connection may
/// come after the message was taken.
fn delivery(err: &HelpdeskError) -> Delivery {
    match err {
        // A connection error may come after the request was written (a reset mid-turn), so
        // only a refusal the HelpDesk answered is certain.
        HelpdeskError::Unauthorized(_) | HelpdeskError::BadRequest(_) => Delivery::NotDelivered,
        HelpdeskError::Stream(_) => Delivery::Delivered,
        _ => Delivery::Unknown,
    }
}

/// What went wrong, in words for the thread, and whether the message got through.
fn describe(err: &HelpdeskError) -> (String, Delivery) {
    match err {
        HelpdeskError::Connection(_) => ("I could not reach the HelpDesk".to_owned(), Delivery::NotDelivered),
        HelpdeskError::Timeout => ("The HelpDesk did not answer in time".to_owned(), Delivery::Unknown),
        HelpdeskError::Server { status, .. } => {
            (format!("The HelpDesk answered with an error ({status})"), Delivery::NotDelivered)
        }
        HelpdeskError::Unauthorized(_) => {
            ("The HelpDesk refused the bridge's token".to_owned(), Delivery::NotDelivered)
        }
        HelpdeskError::BadRequest(message) => {
            (format!("The HelpDesk rejected the message ({message})"), Delivery::NotDelivered)
        }
        HelpdeskError::Stream(message) => (format!("The agent reported an error ({message})"), Delivery::Delivered),
        other => (format!("The HelpDesk failed: {other}"), Delivery::Unknown),
    }
}

impl Bridge {
    /// A message in a ticket thread: a comment (recorded without waking the agent), or a
    /// participant's turn. A Closed ticket takes neither and offers a new ticket; a message
    /// in a Resolved ticket's thread reopens it first.
    pub(super) async fn relay(&self, record: TicketRecord, message: &UserMessage) -> Result<(), BridgeError> {
        if record.status == TicketStatus::Closed {
            return self.closed_thread(&record, message).await;
        }
        if let Some(text) = self.comment_text(&record, message).await {
            self.comment(&record, message, &text).await;
            return Ok(());
        }
        let record = if record.status == TicketStatus::Resolved {
            if !self.may_manage(&record, &message.user, None).await {
                let line = format!(
                    "Ticket {} is resolved, and only members of this workspace can reopen it; this message was not sent.",
                    record.ticket.ticket
                );
                self.tell(&record.thread, &blocks::notice(&line, &[])).await;
                return Ok(());
            }
            let actor = Actor::User(message.user.clone());
            match self.change_status(&record.thread, TicketStatus::Resolved, TicketStatus::Open, actor, None).await {
                Ok(reopened) => reopened,
                Err(refusal) => {
                    self.tell(&record.thread, &blocks::notice(&refusal.explain(), &[])).await;
                    return Ok(());
                }
            }
        } else {
            record
        };
        let author = message.user.clone();
        let record = if record.participants.contains(&author) {
            record
        } else {
            let updated = self
                .inner
                .store
                .update_ticket(&record.thread, |r| {
                    if r.participants.contains(&author) {
                        return false;
                    }
                    r.participants.push(author.clone());
                    true
                })
                .await?;
            updated.unwrap_or(record)
        };
        let mut content = self.plain_text(&message.text).await;
        if record.participants.len() > 1 {
            content = format!("{}: {content}", self.name_of(&author).await);
        }
        let card = self.ride_along(&record, &author).await;
        let pending = PendingMessage {
            thread: record.thread.clone(),
            author,
            message_ts: Some(message.ts.clone()),
            content,
            title: String::new(),
            new_thread: false,
            card,
        };
        self.turn(record, pending).await
    }

    /// One agent turn: waits for the ticket to be free, sends, streams the reply back,
    /// then hands on what the agent ran, linked and proposed.
    pub(super) async fn turn(&self, record: TicketRecord, message: PendingMessage) -> Result<(), BridgeError> {
        let store = &self.inner.store;
        let guard = loop {
            match patiently(|| store.try_lock(Lock::Turn(&record.ticket), TURN_LOCK_TTL)).await {
                Ok(Some(guard)) => break guard,
                Ok(None) => {}
                Err(err) => {
                    self.offer_retry(
                        &record,
                        &message,
                        "⚠️ I could not send this message: my state store is not answering. It was not sent.",
                    )
                    .await;
                    return Err(err.into());
                }
            }
            tokio::select! {
                () = self.inner.abort.cancelled() => {
                    // Shutting down before this message's turn came: keep it for a Retry.
                    self.offer_retry(&record, &message, "⚠️ I restarted before sending this message to the agent. It was not sent.").await;
                    return Ok(());
                }
                () = tokio::time::sleep(TURN_POLL) => {}
            }
        };
        // The ticket may have changed (agent switch, status) while this turn waited.
        let record = match patiently(|| store.ticket_by_thread(&record.thread)).await {
            Ok(current) => current.unwrap_or(record),
            Err(err) => {
                tracing::warn!(error = %err, "could not re-read the ticket; sending with what was read before");
                record
            }
        };
        // A long stream must not outlive its lock: another replica would start a second turn.
        let renew = async {
            loop {
                tokio::time::sleep(TURN_LOCK_TTL / 3).await;
                match store.extend_lock(&guard, TURN_LOCK_TTL).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(ticket = %record.ticket.ticket, "the turn lock was lost mid-turn"),
                    Err(err) => tracing::warn!(error = %err, "could not renew the turn lock; trying again"),
                }
            }
        };
        let result = tokio::select! {
            result = self.turn_locked(&record, &message) => result,
            never = renew => never,
        };
        self.release(&guard).await;
        result
    }

    async fn turn_locked(&self, record: &TicketRecord, message: &PendingMessage) -> Result<(), BridgeError> {
        let slack = &self.inner.slack;
        let thread = &record.thread;
        // A submitted card's decisions go with the message, read from the store, at most once
        // ever: the card is claimed before the send, and a card claimed before (a Retry after
        // a send that may have arrived) goes without them, asking the agent to propose again.
        let mut content = message.content.clone();
        let store = &self.inner.store;
        let data = match &message.card {
            // Only to the ticket the card was proposed on (the thread may have a new one since),
            // and only by whoever claims it first; a submitted card's decisions no longer change.
            Some(id) => match store.card(id).await? {
                Some(card)
                    if card.ticket == record.ticket
                        && card.thread == record.thread
                        && store.claim_card_send(id).await? =>
                {
                    decisions_data(&card.commands)
                }
                _ => {
                    content.push_str(NOT_RESENT);
                    serde_json::json!({})
                }
            },
            None => serde_json::json!({}),
        };
        let mut writer = reply::Writer::new(slack.clone(), thread.clone(), record.agent_name.clone());
        writer.start().await;

        let helpdesk = &self.inner.helpdesk;
        let streaming = helpdesk.should_stream(&record.agent_id).await.unwrap_or_else(|err| {
            tracing::debug!(error = %err, "could not read the agent's streaming flag; sending unary");
            false
        });
        let carried = message.card.as_ref().filter(|_| data.as_object().is_some_and(|d| !d.is_empty()));
        let outgoing = OutgoingMessage { content, data, record_only: false };
        let sent = helpdesk.send_message(&record.ticket.workspace, &record.ticket.ticket, &outgoing, streaming).await;
        let events = match sent {
            Ok(events) => events,
            Err(err) => {
                self.inner.metrics.turn("failed");
                // Only a send that certainly never arrived may carry the decisions again.
                if let (Some(card), Delivery::NotDelivered) = (carried, delivery(&err))
                    && let Err(err) = self.inner.store.release_card_send(card).await
                {
                    tracing::warn!(error = %err, "could not release a card for a resend; it will not be resent");
                }
                let note = self.failure_note(record, message, &err).await;
                writer.replace(note).await;
                self.finish_reactions(message, false).await;
                return Ok(());
            }
        };
        self.record(record, Actor::User(message.author.clone()), HistoryEvent::MessageRelayed).await;
        let Outcome { writer, markdown, error, executed, links, proposed, capped } =
            reply::stream(writer, events, &self.inner.abort).await;
        writer.finish(&markdown, error.as_deref(), self.inner.abort.is_cancelled()).await;
        if !proposed.is_empty() {
            self.propose(record, proposed).await;
        }
        reply::follow_up(slack, thread, &executed, &links).await;
        self.inner.metrics.turn(if error.is_some() { "interrupted" } else { "ok" });
        if error.is_none() || !markdown.is_empty() {
            self.first_reply(record).await;
        }
        match &error {
            // A turn ended at a cap: a Retry would end the same way, so none is offered.
            Some(reason) if capped => {
                let line = format!("⚠️ The agent's reply was cut short ({reason}). Your message reached the ticket.");
                self.tell(thread, &blocks::notice(&line, &[])).await;
            }
            Some(reason) => self.stream_broke(record, message, reason).await,
            None => {}
        }
        self.finish_reactions(message, error.is_none()).await;
        Ok(())
    }

    /// Marks the person's message ✅ or ⚠️ once its turn ended. One reaction per turn:
    /// `reactions.add` is a Tier 3 method (about 50 a minute per workspace), and the reply
    /// placeholder already shows that the agent is working.
    async fn finish_reactions(&self, message: &PendingMessage, ok: bool) {
        if let Some(ts) = &message.message_ts {
            let _ = self
                .inner
                .slack
                .react(&message.thread.team, &message.thread.channel, ts, if ok { DONE } else { FAILED })
                .await;
        }
    }

    /// The send failed before any reply: what to say, with a button to resend the same
    /// message (or to open a new ticket when the HelpDesk lost this one).
    async fn failure_note(
        &self,
        record: &TicketRecord,
        message: &PendingMessage,
        err: &HelpdeskError,
    ) -> blocks::Message {
        tracing::warn!(ticket = %record.ticket.ticket, error = %err, "sending to the HelpDesk failed");
        let kept = match self.inner.store.put_pending(message, PENDING_TTL).await {
            Ok(id) => Some(id),
            Err(err) => {
                tracing::warn!(error = %err, "could not keep the message for a retry");
                None
            }
        };
        if let HelpdeskError::NotFound(_) = err {
            let buttons: Vec<Button> =
                kept.into_iter().map(|id| Button::action("Open a new ticket", action::REOPEN, id).primary()).collect();
            return blocks::notice(
                &format!(
                    "⚠️ Ticket {} no longer exists on the HelpDesk, so your message was not delivered. \
                     Open a new ticket for this thread to continue.",
                    record.ticket.ticket
                ),
                &buttons,
            );
        }
        let (what, delivery) = describe(err);
        let fate = match delivery {
            Delivery::NotDelivered => "Your message did not reach the ticket.",
            Delivery::Unknown => "Your message may or may not have reached the ticket.",
            Delivery::Delivered => "Your message reached the ticket.",
        };
        let buttons: Vec<Button> = kept.into_iter().map(|id| Button::action("Retry", action::RETRY, id)).collect();
        blocks::notice(&format!("⚠️ {what}. {fate}"), &buttons)
    }

    /// The reply stream broke after the message was delivered.
    async fn stream_broke(&self, record: &TicketRecord, message: &PendingMessage, reason: &str) {
        if self.inner.abort.is_cancelled() {
            return;
        }
        self.offer_retry(
            record,
            message,
            &format!("⚠️ The agent's reply was interrupted ({reason}). Your message reached the ticket; Retry asks the agent again."),
        )
        .await;
    }

    async fn offer_retry(&self, record: &TicketRecord, message: &PendingMessage, text: &str) {
        let mut buttons = Vec::new();
        match self.inner.store.put_pending(message, PENDING_TTL).await {
            Ok(id) => buttons.push(Button::action("Retry", action::RETRY, id)),
            Err(err) => tracing::warn!(error = %err, "could not keep the message for a retry"),
        }
        self.tell(&record.thread, &blocks::notice(text, &buttons)).await;
    }

    /// The Retry button: resends the kept message once, however often it is clicked; only
    /// for someone who may act on the ticket (`may_act_on_kept`), never into a Closed ticket.
    /// Decisions it carried go again only if they certainly never arrived (see `turn_locked`);
    /// into a new ticket (the old one is gone) they never go.
    pub(super) async fn retry(
        &self,
        team: &crate::ids::TeamId,
        action: &BlockAction,
        pending_id: &str,
    ) -> Result<(), BridgeError> {
        let store = &self.inner.store;
        let Some(kept) = store.pending(pending_id).await? else {
            self.explain(action, "This message was already retried.").await;
            return Ok(());
        };
        let record = store.ticket_by_thread(&kept.thread).await?;
        if !self.may_act_on_kept(record.as_ref(), &kept.author, &action.user, action.user_team.as_ref()).await {
            self.explain_mrkdwn(action, &Self::may_not_act(record.as_ref(), &kept.author)).await;
            return Ok(());
        }
        if let Some(record) = record.as_ref().filter(|r| r.status == TicketStatus::Closed) {
            let line = format!("Ticket {} is closed, so messages no longer reach its agent.", record.ticket.ticket);
            self.explain(action, &line).await;
            return Ok(());
        }
        let Some(mut pending) = store.take_pending(pending_id).await? else {
            self.explain(action, "This message was already retried.").await;
            return Ok(());
        };
        if let (Some(channel), Some(ts)) = (&action.channel, &action.message_ts) {
            let done = blocks::notice_mrkdwn(&format!("↻ Retried by <@{}>.", action.user), &[]);
            if let Err(err) = self.inner.slack.update(team, channel, ts, &done).await {
                tracing::debug!(error = %err, "could not mark the failure notice as retried");
            }
        }
        match store.ticket_by_thread(&pending.thread).await? {
            Some(record) => self.turn(record, pending).await,
            None => {
                pending.card = None;
                let (thread, requester) = (pending.thread.clone(), pending.author.clone());
                self.open(OpenRequest::from_pending(thread, requester, pending)).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_send_that_certainly_never_arrived_counts_as_not_delivered() {
        let not = |err: HelpdeskError| matches!(delivery(&err), Delivery::NotDelivered);
        assert!(!not(HelpdeskError::Connection("reset".to_owned())));
        assert!(not(HelpdeskError::BadRequest("no".to_owned())));
        assert!(!not(HelpdeskError::Timeout));
        assert!(!not(HelpdeskError::Server { status: 502, message: "bad gateway".to_owned() }));
        assert!(matches!(delivery(&HelpdeskError::Stream("x".to_owned())), Delivery::Delivered));
    }
}
