//! Relaying: a thread message becomes an agent turn, and the reply streams back.
//!
//! One turn at a time per ticket. On one replica the dispatcher already runs a thread's
//! items in order, one at a time; a store lock per ticket makes that true across replicas,
//! so a message that arrives during a turn waits and goes next, in order.

use std::time::Duration;

use super::{
    Bridge, BridgeError, PENDING_TTL,
    open::OpenRequest,
    patiently,
    reply::{self, Outcome},
};
use crate::{
    helpdesk::{HelpdeskError, OutgoingMessage},
    ids::{CardId, PendingId},
    inbound::{BlockAction, UserMessage},
    model::{Actor, Delivery, HistoryEvent, PendingMessage, Place, ProposedCommand, TicketRecord, TicketStatus},
    slack::{
        kit,
        notices::{self, SendFailure},
    },
    store::{Lock, LockGuard, SendMark},
};

/// How often a waiting turn checks whether the ticket is free.
const TURN_POLL: Duration = Duration::from_millis(200);

/// Reactions on the person's message once its turn ended.
const DONE: &str = "white_check_mark";
const FAILED: &str = "warning";

/// What the agent reads when a message would have carried decisions that were already sent
/// (or may have been): they are not sent again.
const NOT_RESENT: &str = "\n\n(Note from the Slack bridge: the decisions on your earlier proposals may already have \
     reached you and are not sent again. If those commands are still needed, propose them again.)";

/// What a message answering a card carries.
enum Carried {
    /// The card's decisions.
    Decisions(Vec<ProposedCommand>),
    /// None, and this note for the agent instead.
    Not(&'static str),
    /// None yet: the block rules in force cannot be read, so the message waits for a Retry.
    Unchecked,
}

/// Said to the agent instead of decisions that are no longer current.
const NOT_CURRENT: &str = "\n\n(Note from the Slack bridge: the decisions on your earlier proposals are not sent: \
     they are no longer current (the approval card expired, the ticket closed, or newer proposals replaced them). \
     If those commands are still needed, propose them again.)";

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

/// What went wrong, for the thread, and whether the message got through as people are told.
fn describe(err: &HelpdeskError) -> (SendFailure<'_>, Delivery) {
    match err {
        HelpdeskError::Connection(_) => (SendFailure::Connection, Delivery::NotDelivered),
        HelpdeskError::Timeout => (SendFailure::Timeout, Delivery::Unknown),
        HelpdeskError::Server { status, .. } => (SendFailure::Server(*status), Delivery::NotDelivered),
        HelpdeskError::Unauthorized(_) => (SendFailure::Unauthorized, Delivery::NotDelivered),
        HelpdeskError::BadRequest(message) => (SendFailure::BadRequest(message), Delivery::NotDelivered),
        HelpdeskError::Stream(message) => (SendFailure::Stream(message), Delivery::Delivered),
        other => (SendFailure::Other(other), Delivery::Unknown),
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
        // A ticket whose portal is gone: said before its files are read or its card spent.
        if let Err(err) = self.helpdesk_of(&record.ticket) {
            self.tell(&record.thread, &notices::portal_gone(&err)).await;
            return Err(err.into());
        }
        if let Some(text) = self.comment_text(&record, message).await {
            self.comment(&record, message, &text).await;
            return Ok(());
        }
        let record = if record.status == TicketStatus::Resolved {
            if !self.may_manage(&record, &message.user, None).await {
                self.tell(&record.thread, &notices::resolved_members_only(record.ticket.ticket.as_str())).await;
                return Ok(());
            }
            let actor = Actor::User(message.user.clone());
            match self.change_status(&record.thread, TicketStatus::Resolved, TicketStatus::Open, actor, None).await {
                Ok(reopened) => reopened,
                Err(refusal) => {
                    self.tell(&record.thread, &refusal.explain()).await;
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
        let (mut content, files) =
            tokio::join!(self.plain_text(&message.text), self.read_files(&record.thread, &message.files));
        if record.participants.len() > 1 {
            content = format!("{}: {content}", self.name_of(&author).await);
        }
        content.push_str(&files);
        let card = self.ride_along(&record, &author).await;
        let pending = PendingMessage {
            place: Place::Thread(record.thread.clone()),
            author,
            message_ts: Some(message.ts.clone()),
            content,
            title: String::new(),
            card,
        };
        self.turn(record, pending).await
    }

    /// One agent turn: waits for the ticket to be free, sends, streams the reply back,
    /// then hands on what the agent ran, linked and proposed.
    pub(super) async fn turn(&self, record: TicketRecord, message: PendingMessage) -> Result<(), BridgeError> {
        let store = &self.inner.store;
        let guard = loop {
            match patiently(|| store.try_lock(Lock::Turn(&record.ticket), self.inner.turn_lock)).await {
                Ok(Some(guard)) => break guard,
                Ok(None) => {}
                Err(err) => {
                    self.offer_retry(&record, &message, notices::not_sent_store_down).await;
                    return Err(err.into());
                }
            }
            tokio::select! {
                () = self.inner.abort.cancelled() => {
                    // Shutting down before this message's turn came: keep it for a Retry.
                    self.offer_retry(&record, &message, notices::not_sent_restarting).await;
                    return Ok(());
                }
                () = tokio::time::sleep(TURN_POLL) => {}
            }
        };
        self.turn_holding(record, message, guard).await
    }

    /// [`Bridge::turn`] once its ticket's `turn:` lock is taken (and given back here). A
    /// moved thread's first message goes through this with the lock taken before the move,
    /// so that no message of the thread reaches the new ticket before it.
    pub(super) async fn turn_holding(
        &self,
        record: TicketRecord,
        message: PendingMessage,
        guard: LockGuard,
    ) -> Result<(), BridgeError> {
        let store = &self.inner.store;
        // The ticket may have changed (agent switch, status) while this turn waited; the
        // thread may even have moved to another ticket, whose turn lock this is not.
        let record = match patiently(|| store.ticket_by_thread(&record.thread)).await {
            Ok(Some(current)) if current.ticket != record.ticket => {
                self.release(&guard).await;
                return Box::pin(self.turn(current, message)).await;
            }
            Ok(current) => current.unwrap_or(record),
            Err(err) => {
                tracing::warn!(error = %err, "could not re-read the ticket; sending with what was read before");
                record
            }
        };
        // The lock lasts as long as an inbox lease, so a dead replica's lapses as fast; a turn
        // renews it every third of that, so a long stream never outlives it.
        let ttl = self.inner.turn_lock;
        let renew = async {
            loop {
                tokio::time::sleep(ttl / 3).await;
                match store.extend_lock(&guard, ttl).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(ticket = %record.ticket.ticket, "the turn lock was lost mid-turn"),
                    Err(err) => tracing::warn!(error = %err, "could not renew the turn lock; trying again"),
                }
            }
        };
        // The agent's streaming flag kept on the ticket is checked beside the turn (the lookup
        // is cached), so that a change reaches the next turn and this one waits for nothing.
        let check = async {
            if self.helpdesk_of(&record.ticket).is_ok_and(|h| !h.forces_streaming()) && record.agent_streams.is_some() {
                self.learn_streaming(&record).await;
            }
        };
        let result = tokio::select! {
            (result, ()) = async { tokio::join!(self.turn_locked(&record, &message), check) } => result,
            never = renew => never,
        };
        self.release(&guard).await;
        result
    }

    /// What a message answering card `id` carries. Only to the ticket the card was proposed
    /// on (the thread may have a new one since), only while current (not past its TTL, the
    /// ticket not closed, no newer card: however late the send, a Retry), only once the
    /// block rules in force now are known, and only by whoever claims the card first; a
    /// submitted card's decisions no longer change.
    async fn carried(&self, record: &TicketRecord, id: &CardId) -> Result<Carried, BridgeError> {
        let store = &self.inner.store;
        let Some(card) = store.card(id).await?.filter(|c| c.ticket == record.ticket && c.thread == record.thread)
        else {
            return Ok(Carried::Not(NOT_RESENT));
        };
        if card.sent {
            return Ok(Carried::Not(NOT_RESENT));
        }
        if !self.still_current(record, &card).await? {
            self.withheld(record, id).await;
            return Ok(Carried::Not(NOT_CURRENT));
        }
        let Some(blocks) = self.blocks_now(record, &card.commands).await else {
            return Ok(Carried::Unchecked);
        };
        if !store.claim_card_send(id).await? {
            return Ok(Carried::Not(NOT_RESENT));
        }
        let mut commands = card.commands;
        self.apply_blocks(record, id, &mut commands, blocks).await;
        Ok(Carried::Decisions(commands))
    }

    async fn turn_locked(&self, record: &TicketRecord, message: &PendingMessage) -> Result<(), BridgeError> {
        let slack = self.slack();
        let thread = &record.thread;
        // A ticket whose portal is gone: said before anything (a card's decisions) is spent.
        let helpdesk = match self.helpdesk_of(&record.ticket) {
            Ok(helpdesk) => helpdesk,
            Err(err) => {
                self.tell(thread, &notices::portal_gone(&err)).await;
                return Err(err.into());
            }
        };

        // A submitted card's decisions go with the message, read from the store, at most once
        // ever: the card is claimed before the send, and a card claimed before (a Retry after
        // a send that may have arrived) goes without them, asking the agent to propose again.
        let mut content = message.content.clone();
        let store = &self.inner.store;
        let decisions = match &message.card {
            Some(id) => match self.carried(record, id).await? {
                Carried::Decisions(decisions) => decisions,
                Carried::Not(note) => {
                    content.push_str(note);
                    Vec::new()
                }
                Carried::Unchecked => {
                    // Nothing approved goes out unchecked, nor is the card spent: a Retry
                    // sends it once the rules can be read.
                    self.offer_retry(record, message, notices::not_sent_store_down).await;
                    return Ok(());
                }
            },
            None => Vec::new(),
        };
        // The agent (and the ticket's record on the HelpDesk) learns who decided what.
        if decisions.iter().any(|c| c.decision != crate::model::Decision::Undecided) {
            content.push_str(&self.attribution(&decisions).await);
        }
        if let Some(earlier) = self.begin_send(record, message).await? {
            return self.not_resent(record, message, earlier).await;
        }
        let mut writer = reply::Writer::new(
            slack.clone(),
            thread.clone(),
            record.agent_name.clone(),
            message.author.clone(),
            store.clone(),
            self.item.clone(),
        );
        let outgoing = OutgoingMessage { content, decisions, record_only: false };
        let carried = message.card.as_ref().filter(|_| outgoing.answers_proposals());
        // The send waits on nothing in Slack: the placeholder is posted alongside it (and is
        // there before the reply is read, or a failure replaces it). The agent's streaming
        // flag is the ticket's (checked beside the turn, see `turn`); only a ticket that has
        // none yet has its agent looked up first.
        let send = async {
            let streaming = helpdesk.forces_streaming()
                || match record.agent_streams {
                    Some(known) => known,
                    None => self.learn_streaming(record).await.unwrap_or(false),
                };
            helpdesk.send_message(&record.ticket.workspace, &record.ticket.ticket, &outgoing, streaming).await
        };
        let ((), sent) = tokio::join!(writer.start(), send);
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
        self.mark_send(SendMark::Accepted).await;
        tokio::join!(
            self.record(record, Actor::User(message.author.clone()), HistoryEvent::MessageRelayed),
            self.note_relayed(record, message.message_ts.as_ref()),
        );
        let Outcome { writer, markdown, unsent, error, executed, links, proposed, capped, stopped } =
            reply::stream(writer, events, &self.inner.abort).await;
        if let Some(stopped) = stopped {
            return self.stopped_in_slack(record, message, stopped).await;
        }
        let closed = writer.finish(&markdown, &unsent, error.as_deref(), self.inner.abort.is_cancelled()).await;
        if !proposed.is_empty() {
            self.propose(record, proposed).await;
        }
        reply::follow_up(slack, thread, &executed, &links).await;
        if thread.channel.as_str().starts_with('D') {
            self.suggest_prompts(record).await;
        }
        self.inner.metrics.turn(if error.is_some() { "interrupted" } else { "ok" });
        if error.is_none() || !markdown.is_empty() {
            self.first_reply(record).await;
        }
        match &error {
            // A turn ended at a cap: a Retry would end the same way, so none is offered.
            Some(reason) if capped => {
                self.tell(thread, &notices::reply_cut_short(reason)).await;
            }
            Some(reason) => self.stream_broke(record, message, reason).await,
            None => {}
        }
        self.finish_reactions(message, error.is_none()).await;
        // A reply whose end did not reach Slack (a shutdown's hurry) stays `Accepted`: the
        // replica that takes the item over finishes its stream.
        if closed {
            self.mark_send(SendMark::Finished).await;
        }
        Ok(())
    }

    /// A reader stopped the reply in Slack: the rest of the turn is not relayed (the HelpDesk
    /// stream is dropped), the thread says who stopped it, and the ticket takes the next
    /// message as usual.
    async fn stopped_in_slack(
        &self,
        record: &TicketRecord,
        message: &PendingMessage,
        stopped: reply::Stopped,
    ) -> Result<(), BridgeError> {
        tracing::info!(thread = %record.thread, ticket = %record.ticket.ticket, by = ?stopped.by, "a reader stopped a streamed reply");
        self.inner.metrics.turn("stopped");
        self.tell(&record.thread, &notices::reply_stopped(stopped.by.as_ref())).await;
        self.finish_reactions(message, true).await;
        self.mark_send(SendMark::Finished).await;
        Ok(())
    }

    /// A reader pressed Stop on a streamed reply (`agent_session_stopped`): noted, so the
    /// turn whose stream it was stops relaying and says who stopped it. It runs beside the
    /// turn, not behind it.
    pub(super) async fn on_stream_stopped(
        &self,
        channel: &crate::ids::ChannelId,
        messages: &[crate::ids::MessageTs],
        user: Option<&crate::ids::UserId>,
    ) -> Result<(), BridgeError> {
        for ts in messages {
            self.inner.store.note_stream_stopped(channel, ts, user).await?;
        }
        Ok(())
    }

    /// After a reply in a direct message, the agent's own prompt suggestions (its
    /// `prompt_suggestions`, at most four) are offered as the thread's suggested prompts.
    async fn suggest_prompts(&self, record: &TicketRecord) {
        let found = match self.helpdesk_of(&record.ticket) {
            Ok(helpdesk) => helpdesk.agent(&record.agent_id).await,
            Err(err) => Err(err),
        };
        let agent = match found {
            Ok(agent) => agent,
            Err(err) => {
                tracing::debug!(error = %err, "could not read the agent's prompt suggestions");
                return;
            }
        };
        let thread = &record.thread;
        if let Err(err) =
            self.slack().set_suggested_prompts(&thread.channel, &thread.thread_ts, agent.prompt_suggestions()).await
        {
            tracing::debug!(thread = %thread, code = err.code(), "could not set the thread's suggested prompts");
        }
    }

    /// Records, before the send, that this item's send starts. `Some(mark)`: an earlier
    /// attempt at this item (on a replica that died) got that far, and nothing is sent.
    async fn begin_send(
        &self,
        record: &TicketRecord,
        message: &PendingMessage,
    ) -> Result<Option<SendMark>, BridgeError> {
        let Some(item) = &self.item else { return Ok(None) };
        match patiently(|| self.inner.store.begin_send(item)).await {
            Ok(earlier) => Ok(earlier),
            Err(err) => {
                self.offer_retry(record, message, notices::not_sent_store_down).await;
                Err(err.into())
            }
        }
    }

    /// The agent's streaming flag, looked up (the lookup is cached) and kept on the ticket
    /// when it changed, so that later turns, after a restart too, send without waiting for
    /// it. `None` when the HelpDesk could not say.
    async fn learn_streaming(&self, record: &TicketRecord) -> Option<bool> {
        let asked = match self.helpdesk_of(&record.ticket) {
            Ok(helpdesk) => helpdesk.should_stream(&record.agent_id).await,
            Err(err) => Err(err),
        };
        let streams = match asked {
            Ok(streams) => streams,
            Err(err) => {
                tracing::debug!(error = %err, "could not read the agent's streaming flag");
                return None;
            }
        };
        if record.agent_streams != Some(streams) {
            let agent = &record.agent_id;
            let kept = self
                .inner
                .store
                .update_ticket(&record.thread, |r| {
                    // Only for the agent looked up: a switch meanwhile brought its own flag.
                    let changed = r.agent_id == *agent && r.agent_streams != Some(streams);
                    if changed {
                        r.agent_streams = Some(streams);
                    }
                    changed
                })
                .await;
            if let Err(err) = kept {
                tracing::debug!(error = %err, "could not keep the agent's streaming flag");
            }
        }
        Some(streams)
    }

    /// Records how far this item's send got; a failure only weakens what a take-over can
    /// tell, so it is logged, not fatal.
    async fn mark_send(&self, mark: SendMark) {
        if let Some(item) = &self.item
            && let Err(err) = self.inner.store.mark_send(item, mark).await
        {
            tracing::warn!(error = %err, ?mark, "could not record how far a send got");
        }
    }

    /// An earlier attempt at this item started its send and its replica died before the turn
    /// ended. The message is not sent again blindly: a send that started may have reached the
    /// agent, so the thread says so and offers *Send again*; a reply that was streaming is
    /// closed with a note. A turn that had ended needs nothing.
    async fn not_resent(
        &self,
        record: &TicketRecord,
        message: &PendingMessage,
        earlier: SendMark,
    ) -> Result<(), BridgeError> {
        let ticket = record.ticket.ticket.as_str();
        let note = match earlier {
            SendMark::Finished => return Ok(()),
            SendMark::Started => {
                tracing::warn!(thread = %record.thread, ticket, "a message may not have reached the agent: its replica stopped mid-send; offering Send again");
                self.close_left_behind(record).await;
                self.keep(message)
                    .await
                    .map_or_else(|| notices::may_not_have_reached(None), |id| notices::may_not_have_reached(Some(&id)))
            }
            SendMark::Accepted => {
                tracing::warn!(thread = %record.thread, ticket, "an agent reply was cut off: its replica stopped mid-reply");
                self.close_left_behind(record).await;
                let reason = notices::bridge_restarting();
                self.keep(message).await.map_or_else(
                    || notices::reply_interrupted(&reason, None),
                    |id| notices::reply_interrupted(&reason, Some(&id)),
                )
            }
        };
        self.tell(&record.thread, &note).await;
        self.finish_reactions(message, false).await;
        Ok(())
    }

    /// Finishes the reply an earlier attempt at this item left in Slack, as far as the store
    /// recorded where it is.
    async fn close_left_behind(&self, record: &TicketRecord) {
        let Some(item) = &self.item else { return };
        match self.inner.store.reply_mark(item).await {
            Ok(Some(mark)) => {
                reply::close_left_behind(self.slack(), &record.thread.team, &record.agent_name, &mark).await;
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "could not read where a cut-off reply is shown"),
        }
    }

    /// Keeps a message for a Retry (or Send again) button.
    async fn keep(&self, message: &PendingMessage) -> Option<PendingId> {
        match self.inner.store.put_pending(message, PENDING_TTL).await {
            Ok(id) => Some(id),
            Err(err) => {
                tracing::warn!(error = %err, "could not keep the message for a retry");
                None
            }
        }
    }

    /// Marks the person's message ✅ or ⚠️ once its turn ended. One reaction per turn:
    /// `reactions.add` is a Tier 3 method (about 50 a minute per workspace), and the reply
    /// placeholder already shows that the agent is working.
    async fn finish_reactions(&self, message: &PendingMessage, ok: bool) {
        if let Some(ts) = &message.message_ts {
            let _ = self
                .slack()
                .react(message.place.team(), message.place.channel(), ts, if ok { DONE } else { FAILED })
                .await;
        }
    }

    /// The send failed before any reply: what to say, with a button to resend the same
    /// message (or to open a new ticket when the HelpDesk lost this one).
    async fn failure_note(&self, record: &TicketRecord, message: &PendingMessage, err: &HelpdeskError) -> kit::Message {
        tracing::warn!(ticket = %record.ticket.ticket, error = %err, "sending to the HelpDesk failed");
        let kept = match self.inner.store.put_pending(message, PENDING_TTL).await {
            Ok(id) => Some(id),
            Err(err) => {
                tracing::warn!(error = %err, "could not keep the message for a retry");
                None
            }
        };
        if let HelpdeskError::NotFound(_) = err {
            return notices::ticket_lost(record.ticket.ticket.as_str(), kept.as_ref());
        }
        let (failure, delivery) = describe(err);
        notices::send_failed(&failure, delivery, kept.as_ref())
    }

    /// The reply stream broke after the message was delivered.
    async fn stream_broke(&self, record: &TicketRecord, message: &PendingMessage, reason: &str) {
        if self.inner.abort.is_cancelled() {
            return;
        }
        self.offer_retry(record, message, |kept| notices::reply_interrupted(reason, kept)).await;
    }

    /// Keeps the message for a Retry and tells the thread what happened (`note` gets the
    /// kept message's id, when it could be kept).
    async fn offer_retry(
        &self,
        record: &TicketRecord,
        message: &PendingMessage,
        note: impl FnOnce(Option<&PendingId>) -> kit::Message,
    ) {
        let kept = match self.inner.store.put_pending(message, PENDING_TTL).await {
            Ok(id) => Some(id),
            Err(err) => {
                tracing::warn!(error = %err, "could not keep the message for a retry");
                None
            }
        };
        self.tell(&record.thread, &note(kept.as_ref())).await;
    }

    /// The Retry button: resends the kept message once, however often it is clicked; only
    /// for someone who may act on the ticket (`may_act_on_kept`), never into a Closed ticket.
    /// Decisions it carried go again only if they certainly never arrived (see `turn_locked`);
    /// into a new ticket (the old one is gone) they never go.
    pub(super) async fn retry(
        &self,
        team: &crate::ids::TeamId,
        action: &BlockAction,
        pending_id: &PendingId,
    ) -> Result<(), BridgeError> {
        let store = &self.inner.store;
        let Some(kept) = store.pending(pending_id).await? else {
            self.answer_click(action, &notices::already_retried()).await;
            return Ok(());
        };
        // Only a message kept in a thread offers Retry.
        let Some(thread) = kept.place.thread().cloned() else {
            self.answer_click(action, &notices::already_retried()).await;
            return Ok(());
        };
        let record = store.ticket_by_thread(&thread).await?;
        if !self.may_act_on_kept(record.as_ref(), &kept.author, &action.user, action.user_team.as_ref()).await {
            self.answer_click(action, &self.may_not_act(record.as_ref(), &kept.author)).await;
            return Ok(());
        }
        if let Some(record) = record.as_ref().filter(|r| r.status == TicketStatus::Closed) {
            self.answer_click(action, &notices::closed_no_longer_reaches(record.ticket.ticket.as_str())).await;
            return Ok(());
        }
        let Some(mut pending) = store.take_pending(pending_id).await? else {
            self.answer_click(action, &notices::already_retried()).await;
            return Ok(());
        };
        if let (Some(channel), Some(ts)) = (&action.channel, &action.message_ts) {
            let done = notices::retried_by(&action.user);
            if let Err(err) = self.slack().update(team, channel, ts, &done).await {
                tracing::debug!(error = %err, "could not mark the failure notice as retried");
            }
        }
        match store.ticket_by_thread(&thread).await? {
            Some(record) => self.turn(record, pending).await,
            None => {
                pending.card = None;
                let requester = pending.author.clone();
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
