//! A ticket's life from its header: status changes (with an optional comment), assignment,
//! agent switches, history, deletion, comments (`note:` messages) that are recorded
//! without waking the agent, and what a closed ticket's thread does with a message.
//!
//! Every change goes to the HelpDesk first and is stored only when the HelpDesk took it,
//! so a HelpDesk failure leaves the ticket as it was (and the thread says so). Changes to
//! one ticket are serialized by a `life:` store lock, across replicas. A header click is
//! trusted for nothing but where it happened: the ticket is the one mapped to the clicked
//! header's thread, the transition is checked against the model again, and so is who may
//! make it.

use std::time::Duration;

use super::{Bridge, BridgeError, PENDING_TTL, open::title_from};
use crate::{
    helpdesk::{ApiStatus, HelpdeskError, OutgoingMessage},
    ids::{AgentId, TeamId, ThreadKey, UserId},
    inbound::{BlockAction, UserMessage},
    model::{Actor, CardState, ChannelRef, HistoryEvent, PendingMessage, Place, TicketRecord, TicketStatus},
    slack::{
        card::CardClosed,
        controls::{HeaderControl, ModalTarget},
        kit,
        notices::{self, StatusChange},
        ticket::{self, HeaderView, Retired},
    },
    store::Lock,
};

/// One lifecycle change at a time per ticket; a change takes a HelpDesk call or two.
const LIFE_LOCK_TTL: Duration = Duration::from_secs(30);
/// How long a change waits for another change of the same ticket.
const LIFE_LOCK_WAIT: Duration = Duration::from_secs(10);
/// The prefix that makes a thread message a comment.
const NOTE_PREFIX: &str = "note:";
/// The reaction on a message recorded as a comment.
const NOTED: &str = "memo";

/// Why a status change did not happen.
#[derive(Debug)]
pub(super) enum Refusal {
    /// The model does not allow it from the ticket's status now.
    Invalid { ticket: String, from: TicketStatus, to: TicketStatus },
    /// The HelpDesk did not take it; the status is unchanged.
    Helpdesk { ticket: String, from: TicketStatus, to: TicketStatus, err: HelpdeskError },
    /// The thread has no ticket (any more).
    Gone,
}

impl Refusal {
    /// What to tell people.
    pub(super) fn explain(&self) -> kit::Message {
        match self {
            Self::Invalid { ticket, from, to } => notices::cannot_become(ticket, *from, *to),
            Self::Helpdesk { ticket, from, to, err } => notices::status_not_changed(ticket, *from, *to, err),
            Self::Gone => notices::thread_ticket_gone(),
        }
    }
}

impl Bridge {
    /// Renders the header of a ticket as it stands.
    pub(super) fn render_header(&self, record: &TicketRecord, retired: Option<Retired<'_>>) -> kit::Message {
        let url = crate::helpdesk::chat_url(&record.ticket.host, &record.ticket.workspace, &record.ticket.ticket);
        ticket::header(&HeaderView {
            ticket: record.ticket.ticket.as_str(),
            title: &record.title,
            agent: &record.agent_name,
            status: record.status,
            requester: &record.requester,
            assignee: record.assignee.as_ref(),
            url: &url,
            retired,
        })
    }

    /// Re-renders a posted header in place.
    pub(super) async fn refresh_header(&self, record: &TicketRecord, retired: Option<Retired<'_>>) {
        let Some(ts) = &record.header_ts else { return };
        let message = self.render_header(record, retired);
        if let Err(err) = self.slack().update(&record.thread.team, &record.thread.channel, ts, &message).await {
            tracing::warn!(ticket = %record.ticket.ticket, code = err.code(), "could not update the ticket header");
        }
    }

    /// The ticket whose header was clicked. Only the header the bridge posted for a thread
    /// counts: a click anywhere else names no ticket.
    async fn clicked_ticket(&self, team: &TeamId, action: &BlockAction) -> Result<Option<TicketRecord>, BridgeError> {
        let (Some(channel), Some(ts)) = (&action.channel, &action.message_ts) else { return Ok(None) };
        let thread_ts = action.thread_ts.clone().unwrap_or_else(|| ts.clone());
        let thread = ThreadKey { team: team.clone(), channel: channel.clone(), thread_ts };
        let record = self.inner.store.ticket_by_thread(&thread).await?;
        let record = record.filter(|r| r.header_ts.as_ref() == Some(ts));
        if record.is_none() {
            self.answer_click(action, &notices::not_in_slack()).await;
        }
        Ok(record)
    }

    /// A click on a header control.
    pub(super) async fn on_header_action(
        &self,
        team: &TeamId,
        action: &BlockAction,
        control: HeaderControl,
    ) -> Result<(), BridgeError> {
        let Some(record) = self.clicked_ticket(team, action).await? else { return Ok(()) };
        if control == HeaderControl::History {
            return self.show_history(action, &record).await;
        }
        if !self.may_manage(&record, &action.user, action.user_team.as_ref()).await {
            self.answer_click(action, &notices::members_only()).await;
            return Ok(());
        }
        match control {
            HeaderControl::Status(Some(to)) => self.ask_status(action, &record, to).await,
            HeaderControl::Assign(Some(to)) => self.assign(action, &record, to).await,
            HeaderControl::UpdateContext => self.ask_context(action, &record).await,
            HeaderControl::Delete => self.delete(action, &record).await,
            HeaderControl::Status(None)
            | HeaderControl::Assign(None)
            | HeaderControl::History
            | HeaderControl::Menu => Ok(()),
        }
    }

    /// The status select: checks the transition, then opens the comment modal.
    async fn ask_status(
        &self,
        action: &BlockAction,
        record: &TicketRecord,
        to: TicketStatus,
    ) -> Result<(), BridgeError> {
        if !record.status.may_become(to) {
            let refusal = Refusal::Invalid { ticket: record.ticket.ticket.to_string(), from: record.status, to };
            self.answer_click(action, &refusal.explain()).await;
            self.refresh_header(record, None).await;
            return Ok(());
        }
        let target = ModalTarget::new(&record.thread, Some((record.status, to)));
        let view = ticket::status_modal(record.ticket.ticket.as_str(), record.status, to, &target);
        self.slack().open_view(&action.trigger_id, &view).await?;
        Ok(())
    }

    /// The status modal was submitted: change the status, with its comment.
    pub(super) async fn on_status_view(
        &self,
        team: &TeamId,
        user: &UserId,
        user_team: Option<&TeamId>,
        target: &ModalTarget,
        comment: Option<String>,
    ) -> Result<(), BridgeError> {
        let Some((from, to)) = target.transition else { return Ok(()) };
        let thread = target.thread(team);
        let Some(record) = self.inner.store.ticket_by_thread(&thread).await? else { return Ok(()) };
        if !self.may_manage(&record, user, user_team).await {
            return Ok(());
        }
        if let Err(refusal) = self.change_status(&thread, from, to, Actor::User(user.clone()), comment).await {
            self.tell(&thread, &refusal.explain()).await;
        }
        Ok(())
    }

    /// Moves a ticket from `from` to `to`: checked against the model and the ticket's
    /// status now, sent to the HelpDesk, then stored, recorded, shown on the header and,
    /// for a person's change, announced in the thread (with the comment, which also goes
    /// to the HelpDesk ticket as a record-only message).
    pub(super) async fn change_status(
        &self,
        thread: &ThreadKey,
        from: TicketStatus,
        to: TicketStatus,
        actor: Actor,
        comment: Option<String>,
    ) -> Result<TicketRecord, Refusal> {
        let Ok(Some(record)) = self.inner.store.ticket_by_thread(thread).await else { return Err(Refusal::Gone) };
        let work = async move {
            let store = &self.inner.store;
            let Ok(Some(record)) = store.ticket_by_thread(thread).await else { return Err(Refusal::Gone) };
            let name = record.ticket.ticket.to_string();
            if record.status != from || !from.may_become(to) {
                return Err(Refusal::Invalid { ticket: name, from: record.status, to });
            }
            let (status, disposition) = ApiStatus::for_status(to, None);
            let (workspace, ticket) = (&record.ticket.workspace, &record.ticket.ticket);
            let set = match self.helpdesk_of(&record.ticket) {
                Ok(helpdesk) => helpdesk.set_status(workspace, ticket, status, disposition).await,
                Err(err) => Err(err),
            };
            if let Err(err) = set {
                tracing::warn!(ticket = %name, error = %err, "the HelpDesk refused a status change");
                return Err(Refusal::Helpdesk { ticket: name, from, to, err });
            }
            let stored = store
                .update_ticket(thread, |r| {
                    r.status = to;
                    true
                })
                .await;
            let record = match stored {
                Ok(Some(record)) => record,
                Ok(None) => return Err(Refusal::Gone),
                Err(err) => {
                    // The HelpDesk has the change; the header shows it on the next change.
                    tracing::warn!(ticket = %name, error = %err, "could not store a status change");
                    TicketRecord { status: to, ..record }
                }
            };
            let event = HistoryEvent::StatusChanged { from, to, comment: comment.clone() };
            self.record(&record, actor.clone(), event).await;
            self.refresh_header(&record, None).await;
            if to == TicketStatus::Closed {
                self.close_open_card(&record, CardClosed::TicketClosed).await;
            }
            if let Actor::User(user) = &actor {
                let mut comment_failed = None;
                if let Some(comment) = &comment {
                    let text = format!("Status changed to {} by {}: {comment}", to.label(), self.name_of(user).await);
                    comment_failed = self.mirror(&record, text).await.err();
                }
                let change = StatusChange {
                    by: user,
                    ticket: &name,
                    from,
                    to,
                    comment: comment.as_deref(),
                    comment_failed: comment_failed.as_ref().map(|err| err as &(dyn std::fmt::Display + Sync)),
                };
                self.tell(&record.thread, &notices::status_changed(&change)).await;
            }
            Ok(record)
        };
        self.with_life_lock(&record, work).await
    }

    /// Runs `work` holding the ticket's `life:` lock (or without it, after waiting a little
    /// for it; the work checks the stored state anyway).
    pub(super) async fn with_life_lock<T>(
        &self,
        record: &TicketRecord,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let guard = self.wait_lock(Lock::Life(&record.ticket)).await;
        let result = work.await;
        if let Some(guard) = guard {
            self.release(&guard).await;
        }
        result
    }

    /// Takes a lifecycle lock, waiting a little for another change to finish; without it
    /// (store trouble or a long wait) the change goes ahead, checked by the stored status.
    async fn wait_lock(&self, lock: Lock<'_>) -> Option<crate::store::LockGuard> {
        let deadline = tokio::time::Instant::now() + LIFE_LOCK_WAIT;
        loop {
            match self.inner.store.try_lock(lock, LIFE_LOCK_TTL).await {
                Ok(Some(guard)) => return Some(guard),
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => return None,
            }
        }
    }

    /// After the agent's first reply, an Open ticket becomes Pending.
    pub(super) async fn first_reply(&self, record: &TicketRecord) {
        if record.status != TicketStatus::Open {
            return;
        }
        let actor = Actor::Agent(record.agent_name.clone());
        match self.change_status(&record.thread, TicketStatus::Open, TicketStatus::Pending, actor, None).await {
            Ok(_) | Err(Refusal::Invalid { .. } | Refusal::Gone) => {}
            Err(refusal) => {
                self.tell(&record.thread, &refusal.explain()).await;
            }
        }
    }

    /// Writes `text` on the HelpDesk ticket without waking the agent.
    pub(super) async fn mirror(&self, record: &TicketRecord, text: String) -> Result<(), HelpdeskError> {
        use futures_util::StreamExt;
        let message = OutgoingMessage { content: text, decisions: Vec::new(), record_only: true };
        let (workspace, ticket) = (&record.ticket.workspace, &record.ticket.ticket);
        let sent = match self.helpdesk_of(&record.ticket) {
            Ok(helpdesk) => helpdesk.send_message(workspace, ticket, &message, false).await,
            Err(err) => Err(err),
        };
        let mut reply = match sent {
            Ok(reply) => reply,
            Err(err) => {
                tracing::warn!(ticket = %ticket, error = %err, "could not record a message on the HelpDesk ticket");
                return Err(err);
            }
        };
        // A record-only message has no agent turn; whatever comes back is drained.
        while reply.next().await.is_some() {}
        Ok(())
    }

    /// If `message` is a comment rather than a turn, returns its text: a `note:` message,
    /// or, in a channel relaying only mentions, any message that does not mention the bot.
    pub(super) async fn comment_text(&self, record: &TicketRecord, message: &UserMessage) -> Option<String> {
        let text = message.text.trim_start();
        // `get` rather than slicing: the prefix's length may fall inside a multi-byte character.
        if let Some(prefix) = text.get(..NOTE_PREFIX.len())
            && prefix.eq_ignore_ascii_case(NOTE_PREFIX)
        {
            return Some(text[NOTE_PREFIX.len()..].trim().to_owned());
        }
        if message.mentions_bot {
            return None;
        }
        let channel =
            crate::model::ChannelRef { team: record.thread.team.clone(), channel: record.thread.channel.clone() };
        let settings = self.inner.store.channel_settings(&channel).await.unwrap_or_default();
        (settings.relay_mode == crate::model::RelayMode::Mentions).then(|| text.to_owned())
    }

    /// Records a comment on the HelpDesk ticket (record-only, the agent is not woken) and
    /// in the ticket's history, and marks the message 📝.
    pub(super) async fn comment(&self, record: &TicketRecord, message: &UserMessage, text: &str) {
        let (plain, files) = tokio::join!(self.plain_text(text), self.read_files(&record.thread, &message.files));
        if plain.trim().is_empty() && files.is_empty() {
            return;
        }
        let content = format!("{}: {plain}{files}", self.name_of(&message.user).await);
        match self.mirror(record, content).await {
            Ok(()) => {
                let event = HistoryEvent::Comment { text: plain };
                tokio::join!(
                    self.record(record, Actor::User(message.user.clone()), event),
                    self.note_relayed(record, Some(&message.ts))
                );
                let _ = self.slack().react(&record.thread.team, &message.channel, &message.ts, NOTED).await;
            }
            Err(err) => {
                self.tell(&record.thread, &notices::comment_not_recorded(record.ticket.ticket.as_str(), &err)).await;
            }
        }
    }

    /// The assignee select: assigns the ticket to the chosen person.
    async fn assign(&self, action: &BlockAction, record: &TicketRecord, to: UserId) -> Result<(), BridgeError> {
        let mut from = None;
        let updated = self
            .inner
            .store
            .update_ticket(&record.thread, |r| {
                from = r.assignee.clone();
                if r.assignee.as_ref() == Some(&to) {
                    return false;
                }
                r.assignee = Some(to.clone());
                true
            })
            .await?;
        let Some(updated) = updated else { return Ok(()) };
        if from.as_ref() == Some(&to) {
            return Ok(());
        }
        let event = HistoryEvent::AssigneeChanged { from: from.clone(), to: Some(to.clone()) };
        self.record(&updated, Actor::User(action.user.clone()), event).await;
        self.refresh_header(&updated, None).await;
        let note = notices::assigned(&action.user, updated.ticket.ticket.as_str(), &to, from.as_ref());
        self.tell(&updated.thread, &note).await;
        Ok(())
    }

    /// A switch-agent modal opened before *Update context* replaced it was submitted.
    pub(super) async fn on_agent_view(
        &self,
        team: &TeamId,
        user: &UserId,
        user_team: Option<&TeamId>,
        target: &ModalTarget,
        agent: AgentId,
    ) -> Result<(), BridgeError> {
        let thread = target.thread(team);
        let Some(record) = self.inner.store.ticket_by_thread(&thread).await? else { return Ok(()) };
        if !self.may_manage(&record, user, user_team).await {
            return Ok(());
        }
        self.switch_agent(&record, user, agent).await
    }

    /// Reassigns a ticket to another agent on its HelpDesk, then here. The caller checked
    /// who may.
    pub(super) async fn switch_agent(
        &self,
        record: &TicketRecord,
        user: &UserId,
        agent: AgentId,
    ) -> Result<(), BridgeError> {
        if record.agent_id == agent {
            return Ok(());
        }
        let (thread, store) = (&record.thread, &self.inner.store);
        let helpdesk = self.helpdesk_of(&record.ticket)?;
        let (name, streams) = match helpdesk.agent(&agent).await {
            Ok(found) if !self.agent_allowed(found.id.as_str(), &found.name) => {
                tracing::warn!(user = %user, agent = %agent, "refused a switch to an agent that is not allowed");
                self.tell(thread, &notices::agent_not_allowed(&found.name)).await;
                return Ok(());
            }
            Ok(found) => (found.name, found.streams),
            Err(err) => {
                self.tell(thread, &notices::agent_not_found(&err)).await;
                return Err(err.into());
            }
        };
        let work = async {
            let switched = helpdesk.reassign(&record.ticket.workspace, &record.ticket.ticket, &agent).await;
            match switched {
                Err(err) => {
                    let ticket = record.ticket.ticket.as_str();
                    self.tell(thread, &notices::agent_not_switched(ticket, &name, &err, &record.agent_name)).await;
                    Err(err.into())
                }
                Ok(()) => {
                    let before = record.agent_name.clone();
                    let updated = store
                        .update_ticket(thread, |r| {
                            // The thread may have moved to another ticket meanwhile.
                            if r.ticket != record.ticket {
                                return false;
                            }
                            r.agent_id = agent.clone();
                            r.agent_name = name.clone();
                            r.agent_streams = Some(streams);
                            true
                        })
                        .await;
                    match updated {
                        Ok(Some(updated)) => {
                            // The old agent's proposals are not the new agent's to receive.
                            self.close_open_card(&updated, CardClosed::MovedAgent).await;
                            let event = HistoryEvent::AgentChanged { from: before.clone(), to: name.clone() };
                            self.record(&updated, Actor::User(user.clone()), event).await;
                            self.refresh_header(&updated, None).await;
                            let ticket = updated.ticket.ticket.as_str();
                            self.tell(thread, &notices::agent_switched(user, ticket, &before, &name)).await;
                            Ok(())
                        }
                        Ok(None) => Ok(()),
                        Err(err) => Err(err.into()),
                    }
                }
            }
        };
        self.with_life_lock(record, work).await
    }

    /// "History": the thread's timeline in a modal (a moved thread's earlier tickets first).
    async fn show_history(&self, action: &BlockAction, record: &TicketRecord) -> Result<(), BridgeError> {
        let mut entries = Vec::new();
        for key in record.previous.iter().chain([&record.ticket]) {
            entries.extend(self.inner.store.history(key).await?);
        }
        let view = ticket::history_modal(record.ticket.ticket.as_str(), &record.title, &entries);
        self.slack().open_view(&action.trigger_id, &view).await?;
        Ok(())
    }

    /// "Delete ticket" (confirmed in Slack): deletes on the HelpDesk, then the mapping; the
    /// header and any open card say so, and the thread stops relaying.
    async fn delete(&self, action: &BlockAction, record: &TicketRecord) -> Result<(), BridgeError> {
        let requester =
            record.requester == action.user && self.may_manage(record, &action.user, action.user_team.as_ref()).await;
        if !requester && !self.may_decide(record, &action.user, action.user_team.as_ref()).await {
            let settings = self.channel_settings(record).await;
            self.answer_click(action, &notices::only_deciders_delete(&self.deciders(record, &settings))).await;
            return Ok(());
        }
        // Under the ticket's lifecycle lock, as a move is: a thread that moved to another
        // ticket while this click waited does not lose that one.
        self.with_life_lock(record, async {
            match self.inner.store.ticket_by_thread(&record.thread).await? {
                Some(current) if current.ticket == record.ticket => self.delete_locked(action, &current).await,
                _ => {
                    self.answer_click(action, &notices::not_in_slack()).await;
                    Ok(())
                }
            }
        })
        .await
    }

    async fn delete_locked(&self, action: &BlockAction, record: &TicketRecord) -> Result<(), BridgeError> {
        let (workspace, name) = (&record.ticket.workspace, &record.ticket.ticket);
        let deleted = match self.helpdesk_of(&record.ticket) {
            Ok(helpdesk) => helpdesk.delete_ticket(workspace, name).await,
            Err(err) => Err(err),
        };
        match deleted {
            // Already gone there: finish the job here.
            Ok(()) | Err(HelpdeskError::NotFound(_)) => {}
            Err(err) => {
                self.tell(&record.thread, &notices::not_deleted(name.as_str(), &err)).await;
                return Err(err.into());
            }
        }
        let card = self.inner.store.open_card(&record.ticket).await?;
        self.inner.store.delete_ticket(&record.thread).await?;
        tracing::info!(ticket = %name, thread = %record.thread, "deleted a ticket");
        self.refresh_header(record, Some(Retired::Deleted { by: &action.user })).await;
        if let Some(card) = card
            && let Err(err) = self.close_card(&card, CardClosed::TicketDeleted).await
        {
            tracing::warn!(error = %err, "could not close the deleted ticket's card");
        }
        self.tell(&record.thread, &notices::deleted(&action.user, name.as_str())).await;
        Ok(())
    }

    /// A message in a closed ticket's thread: not relayed; a button offers a new ticket
    /// that starts from this message.
    pub(super) async fn closed_thread(&self, record: &TicketRecord, message: &UserMessage) -> Result<(), BridgeError> {
        let content = self.plain_text(&message.text).await;
        let pending = PendingMessage {
            place: Place::NewThreadIn(ChannelRef {
                team: record.thread.team.clone(),
                channel: record.thread.channel.clone(),
            }),
            author: message.user.clone(),
            message_ts: None,
            content: format!("(Follow-up to ticket {}) {content}", record.ticket.ticket),
            title: title_from(&content),
            card: None,
        };
        let kept = match self.inner.store.put_pending(&pending, PENDING_TTL).await {
            Ok(id) => Some(id),
            Err(err) => {
                tracing::warn!(error = %err, "could not keep the message for a new ticket");
                None
            }
        };
        self.tell(&record.thread, &notices::closed_thread(record.ticket.ticket.as_str(), kept.as_ref())).await;
        Ok(())
    }

    /// Closes the ticket's open card, if any, saying why.
    pub(super) async fn close_open_card(&self, record: &TicketRecord, why: CardClosed) {
        match self.inner.store.open_card(&record.ticket).await {
            Ok(Some(card)) if card.state == CardState::Open => {
                if let Err(err) = self.close_card(&card, why).await {
                    tracing::warn!(error = %err, "could not close the ticket's card");
                }
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "could not read the ticket's card"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_valid_next_states() {
        let refusal = Refusal::Invalid { ticket: "D-1".into(), from: TicketStatus::Open, to: TicketStatus::Closed };
        assert_eq!(
            refusal.explain().text,
            "Ticket D-1 is Open, so it cannot become Closed. From Open it can become Pending."
        );
        let closed = Refusal::Invalid { ticket: "D-1".into(), from: TicketStatus::Closed, to: TicketStatus::Open };
        assert!(closed.explain().text.ends_with("nothing: it is final."));
    }
}
