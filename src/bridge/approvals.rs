//! Command approvals: the agent's proposals as a card; decisions by authorised people only;
//! one submission that carries the decisions back to the agent.
//!
//! Every click is checked against the store, never the payload: the button names a card
//! and a position, the card must exist, belong to the thread the click came from and
//! still be open, and the clicker must be the requester or an approver. Decisions and
//! submission are compare-and-set in the store, so double clicks, concurrent clicks,
//! replicas and redeliveries end in one state and at most one message to the HelpDesk.

use super::{Bridge, BridgeError, now_millis, seconds};
use crate::{
    ids::{CardId, TeamId, UserId},
    inbound::{ActionItem, BlockAction, ViewSubmission},
    model::{
        Actor, Card, CardState, ChannelRef, Decision, HistoryEvent, PendingMessage, ProposalForm, ProposedCommand,
        TicketRecord, TicketStatus,
    },
    slack::{
        blocks::{self, Message},
        card::{self, CardStatus, CardView, CommandView, DecisionView, actions},
    },
    store::{DecideOutcome, SubmitOutcome},
};

/// Files longer than the card shows are attached; this many at most per card.
const ATTACHED_FILES: usize = 10;

impl Bridge {
    /// Whether a command matches a destructive pattern.
    fn destructive(&self, command: &str) -> bool {
        self.inner.destructive.is_match(command)
    }

    /// The card's messages, as they should look now.
    fn render_card(&self, card: &Card, agent: &str, closed: Option<&str>) -> Vec<Message> {
        let url = self.inner.helpdesk.chat_url(&card.ticket.workspace, &card.ticket.ticket);
        let status = match (card.state, closed) {
            (_, Some(why)) => CardStatus::Closed(why),
            (CardState::Open, None) => CardStatus::Open,
            (CardState::Submitted, None) => match (&card.submitted_by, card.submitted_at) {
                (Some(by), Some(at)) => CardStatus::Submitted(by, seconds(at)),
                _ => CardStatus::Closed("Submitted."),
            },
            (CardState::Superseded, None) => CardStatus::Superseded,
        };
        let commands = card
            .commands
            .iter()
            .map(|c| CommandView {
                text: &c.command,
                kind: match c.form {
                    ProposalForm::Command => None,
                    ProposalForm::ToolCall => Some("tool call"),
                    ProposalForm::Approval => Some("approval"),
                },
                files: c.files.iter().map(|f| (f.path.as_str(), f.content.as_str())).collect(),
                decision: match &c.decision {
                    Decision::Undecided => DecisionView::Undecided,
                    Decision::Approve => DecisionView::Approved,
                    Decision::Reject { reason } => DecisionView::Rejected(reason.as_deref()),
                    Decision::Ignore => DecisionView::Ignored,
                },
                decided: c.decided_by.as_ref().zip(c.decided_at.map(seconds)),
                destructive: self.destructive(&c.command),
            })
            .collect();
        card::render(&CardView {
            id: card.id.as_str(),
            ticket: card.ticket.ticket.as_str(),
            agent,
            commands,
            status,
            url: &url,
        })
    }

    /// Re-renders a card in place.
    async fn show_card(&self, card: &Card, agent: &str, closed: Option<&str>) {
        let thread = &card.thread;
        for (ts, message) in card.messages.iter().zip(self.render_card(card, agent, closed)) {
            if let Err(err) = self.inner.slack.update(&thread.team, &thread.channel, ts, &message).await {
                tracing::warn!(card = %card.id, code = err.code(), "could not update an approval card");
            }
        }
    }

    /// The agent proposed commands: a new card replaces the ticket's open one.
    pub(super) async fn propose(&self, record: &TicketRecord, commands: Vec<ProposedCommand>) {
        let card = Card {
            id: CardId::new(format!("{:016x}", rand::random::<u64>())),
            ticket: record.ticket.clone(),
            thread: record.thread.clone(),
            messages: Vec::new(),
            commands,
            state: CardState::Open,
            created_at: now_millis(),
            submitted_by: None,
            submitted_at: None,
        };
        let superseded = match self.inner.store.put_card(&card).await {
            Ok(superseded) => superseded,
            Err(err) => {
                tracing::warn!(ticket = %record.ticket.ticket, error = %err, "could not store an approval card");
                let note = blocks::notice(
                    &format!(
                        "⚠️ The agent proposed {} commands, but I could not record them (state store unavailable). \
                         Ask the agent to propose them again.",
                        card.commands.len()
                    ),
                    &[],
                );
                self.tell(&record.thread, &note).await;
                return;
            }
        };
        let mut posted = Vec::new();
        for message in self.render_card(&card, &record.agent_name, None) {
            if let Some(ts) = self.tell(&record.thread, &message).await {
                posted.push(ts);
            }
        }
        let card = match self.inner.store.set_card_messages(&card.id, posted).await {
            Ok(Some(stored)) => stored,
            Ok(None) => card,
            Err(err) => {
                tracing::warn!(card = %card.id, error = %err, "could not record where the card is");
                card
            }
        };
        if let Some(old) = superseded {
            self.show_card(&old, &record.agent_name, None).await;
        }
        self.attach_long_files(&card).await;
        self.record(
            record,
            Actor::Agent(record.agent_name.clone()),
            HistoryEvent::CommandsProposed { card: card.id.clone(), count: card.commands.len() },
        )
        .await;
    }

    /// Files too long for the card go into the thread whole.
    async fn attach_long_files(&self, card: &Card) {
        let long: Vec<&crate::model::ProposedFile> = card
            .commands
            .iter()
            .flat_map(|c| c.files.iter().enumerate())
            .filter(|(i, f)| *i >= 3 || f.content.lines().count() > 8 || f.content.chars().count() > 600)
            .map(|(_, f)| f)
            .take(ATTACHED_FILES)
            .collect();
        for file in long {
            let name = file.path.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("file.txt");
            let title = format!("Proposed file {}", file.path);
            let thread = &card.thread;
            if let Err(err) =
                self.inner.slack.upload(&thread.channel, &thread.thread_ts, name, &title, &file.content).await
            {
                tracing::warn!(card = %card.id, code = err.code(), "could not attach a proposed file");
            }
        }
    }

    /// Whether `user` may decide on this ticket's commands. Approvers listed by user id
    /// always may; a guest from another organisation (Slack Connect) may only then; the
    /// requester and members of listed user groups may otherwise.
    pub(super) async fn may_decide(&self, record: &TicketRecord, user: &UserId, user_team: Option<&TeamId>) -> bool {
        let channel = ChannelRef { team: record.thread.team.clone(), channel: record.thread.channel.clone() };
        let settings = self.inner.store.channel_settings(&channel).await.unwrap_or_default();
        let listed: Vec<String> = self.inner.approvers.iter().chain(settings.approvers.iter()).cloned().collect();
        if listed.iter().any(|a| a == user.as_str()) {
            return true;
        }
        if user_team.is_some_and(|team| team != &record.thread.team) {
            return false;
        }
        if &record.requester == user {
            return true;
        }
        let groups: Vec<String> = listed.into_iter().filter(|a| a.starts_with('S')).collect();
        for group in &groups {
            match self.inner.slack.group_members(group).await {
                Ok(members) if members.contains(user) => return true,
                Ok(_) => {}
                Err(err) => tracing::warn!(group = %group, code = err.code(), "could not read a user group"),
            }
        }
        false
    }

    /// Who may decide, for the refusal message.
    pub(super) async fn deciders(&self, record: &TicketRecord) -> String {
        let channel = ChannelRef { team: record.thread.team.clone(), channel: record.thread.channel.clone() };
        let settings = self.inner.store.channel_settings(&channel).await.unwrap_or_default();
        let mut names = vec![format!("<@{}> (who asked)", record.requester)];
        for id in self.inner.approvers.iter().chain(settings.approvers.iter()) {
            names.push(if id.starts_with('S') { format!("<!subteam^{id}>") } else { format!("<@{id}>") });
        }
        names.join(", ")
    }

    /// A click on a card button.
    pub(super) async fn on_card_action(
        &self,
        team: &TeamId,
        action: &BlockAction,
        item: &ActionItem,
    ) -> Result<(), BridgeError> {
        let value = item.value.as_deref().unwrap_or_default();
        let Some((card_id, index)) = card::parse_value(value) else {
            self.explain(action, "This button is not one of mine.").await;
            return Ok(());
        };
        let store = &self.inner.store;
        let Some(card) = store.card(&CardId::new(card_id)).await? else {
            self.explain(action, "This approval card no longer exists.").await;
            return Ok(());
        };
        // The click must come from one of this card's own messages.
        let from_card = action.channel.as_ref() == Some(&card.thread.channel)
            && card.thread.team == *team
            && action.message_ts.as_ref().is_some_and(|ts| card.messages.contains(ts));
        if !from_card {
            tracing::warn!(card = %card.id, user = %action.user, "a card action did not come from the card's messages");
            self.explain(action, "This button does not belong to that card.").await;
            return Ok(());
        }
        let Some(record) = store.ticket_by_thread(&card.thread).await?.filter(|r| r.ticket == card.ticket) else {
            self.close_card(&card, "The ticket was deleted; these commands can no longer be decided.").await?;
            self.explain(action, "The ticket of this card was deleted.").await;
            return Ok(());
        };
        if record.status == TicketStatus::Closed {
            self.close_card(&card, "The ticket is closed; these commands can no longer be decided.").await?;
            self.explain(action, &format!("Ticket {} is closed.", record.ticket.ticket)).await;
            return Ok(());
        }
        if card.state != CardState::Open {
            self.stale(action, &card, &record).await;
            return Ok(());
        }
        if !self.may_decide(&record, &action.user, action.user_team.as_ref()).await {
            let who = self.deciders(&record).await;
            self.explain_mrkdwn(action, &format!("Only {who} can decide on these commands.")).await;
            return Ok(());
        }
        let command = match index {
            Some(i) if i < card.commands.len() => Some(i),
            Some(_) => {
                self.explain(action, "That command is not on this card.").await;
                return Ok(());
            }
            None => None,
        };
        match (item.action_id.as_str(), command) {
            (actions::APPROVE, Some(i)) => self.decide(&record, &card, i, Decision::Approve, &action.user).await,
            (actions::IGNORE, Some(i)) => self.decide(&record, &card, i, Decision::Ignore, &action.user).await,
            (actions::CHANGE, Some(i)) => self.decide(&record, &card, i, Decision::Undecided, &action.user).await,
            (actions::REJECT, Some(i)) => {
                let metadata = card::value(card.id.as_str(), i);
                let modal = card::reject_modal(&card.commands[i].command, &metadata);
                self.inner.slack.open_view(&action.trigger_id, &modal).await?;
                Ok(())
            }
            (actions::SUBMIT, None) => {
                if card.commands.iter().all(|c| c.decision == Decision::Undecided) {
                    self.explain(action, "Decide on at least one command first.").await;
                    return Ok(());
                }
                self.submit(&record, &card.id, &action.user).await
            }
            _ => {
                self.explain(action, "This button is not one of mine.").await;
                Ok(())
            }
        }
    }

    /// The rejection-reason modal was submitted.
    pub(super) async fn on_reject_view(&self, team: &TeamId, view: &ViewSubmission) -> Result<(), BridgeError> {
        let Some((card_id, Some(index))) = card::parse_value(&view.private_metadata) else {
            return Ok(());
        };
        let store = &self.inner.store;
        let Some(card) = store.card(&CardId::new(card_id)).await? else {
            return Ok(());
        };
        let Some(record) = store.ticket_by_thread(&card.thread).await?.filter(|r| r.ticket == card.ticket) else {
            return Ok(());
        };
        if card.thread.team != *team
            || index >= card.commands.len()
            || !self.may_decide(&record, &view.user, view.user_team.as_ref()).await
        {
            tracing::warn!(card = %card.id, user = %view.user, "a rejection was refused");
            return Ok(());
        }
        let reason = view
            .values
            .get(&(card::REJECT_REASON.0.to_owned(), card::REJECT_REASON.1.to_owned()))
            .map(|r| blocks::truncate(r.trim(), card::REASON_CHARS))
            .filter(|r| !r.is_empty());
        self.decide(&record, &card, index, Decision::Reject { reason }, &view.user).await
    }

    async fn decide(
        &self,
        record: &TicketRecord,
        card: &Card,
        index: usize,
        decision: Decision,
        by: &UserId,
    ) -> Result<(), BridgeError> {
        match self.inner.store.decide(&card.id, index, decision.clone(), by, now_millis()).await? {
            DecideOutcome::Decided(updated) => {
                self.show_card(&updated, &record.agent_name, None).await;
                self.record(
                    record,
                    Actor::User(by.clone()),
                    HistoryEvent::CommandDecided {
                        card: card.id.clone(),
                        command: updated.commands[index].command.clone(),
                        decision,
                    },
                )
                .await;
            }
            DecideOutcome::Closed(closed) => self.show_card(&closed, &record.agent_name, None).await,
            DecideOutcome::NoSuchCommand(_) | DecideOutcome::Missing => {}
        }
        Ok(())
    }

    /// Submits a card exactly once and sends its decisions to the agent.
    async fn submit(&self, record: &TicketRecord, card: &CardId, by: &UserId) -> Result<(), BridgeError> {
        let Some(submitted) = self.close_for_sending(record, card, by).await? else {
            return Ok(());
        };
        let content = summary(&submitted.commands);
        let message = PendingMessage {
            thread: record.thread.clone(),
            author: by.clone(),
            message_ts: None,
            content,
            title: String::new(),
            new_thread: false,
            card: Some(submitted.id.clone()),
        };
        self.turn(record.clone(), message).await
    }

    /// Marks a card submitted (exactly one caller wins), shows it so, and records it.
    async fn close_for_sending(
        &self,
        record: &TicketRecord,
        card: &CardId,
        by: &UserId,
    ) -> Result<Option<Card>, BridgeError> {
        match self.inner.store.submit(card, by, now_millis()).await? {
            SubmitOutcome::Submitted(submitted) => {
                self.show_card(&submitted, &record.agent_name, None).await;
                self.record(
                    record,
                    Actor::User(by.clone()),
                    HistoryEvent::CommandsSubmitted { card: submitted.id.clone() },
                )
                .await;
                Ok(Some(submitted))
            }
            SubmitOutcome::Closed(closed) => {
                self.show_card(&closed, &record.agent_name, None).await;
                Ok(None)
            }
            SubmitOutcome::Missing => Ok(None),
        }
    }

    /// A thread message while the open card has decisions: they go with it.
    pub(super) async fn ride_along(&self, record: &TicketRecord, by: &UserId) -> Option<CardId> {
        let card = match self.inner.store.open_card(&record.ticket).await {
            Ok(Some(card)) => card,
            Ok(None) => return None,
            Err(err) => {
                tracing::warn!(ticket = %record.ticket.ticket, error = %err, "could not read the open card");
                return None;
            }
        };
        if card.commands.iter().all(|c| c.decision == Decision::Undecided) {
            return None;
        }
        match self.close_for_sending(record, &card.id, by).await {
            Ok(Some(submitted)) => Some(submitted.id),
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(card = %card.id, error = %err, "could not submit the card's decisions");
                None
            }
        }
    }

    /// Closes a card whose ticket is closed or deleted, and shows why.
    pub(super) async fn close_card(&self, card: &Card, why: &str) -> Result<(), BridgeError> {
        if card.state == CardState::Open {
            self.inner.store.supersede(&card.id).await?;
        }
        let agent = match self.inner.store.ticket_by_thread(&card.thread).await? {
            Some(record) => record.agent_name,
            None => "The agent".to_owned(),
        };
        self.show_card(card, &agent, Some(why)).await;
        Ok(())
    }

    /// A click on a card that is no longer open: say so, and show the card as it is.
    async fn stale(&self, action: &BlockAction, card: &Card, record: &TicketRecord) {
        let text = match card.state {
            CardState::Submitted => match &card.submitted_by {
                Some(by) => format!("These decisions were already submitted by <@{by}>."),
                None => "These decisions were already submitted.".to_owned(),
            },
            CardState::Superseded => "A newer card replaced this one; decide there.".to_owned(),
            CardState::Open => return,
        };
        self.explain_mrkdwn(action, &text).await;
        self.show_card(card, &record.agent_name, None).await;
    }

    /// Tells the clicker something only they see, in mrkdwn the bridge wrote.
    pub(super) async fn explain_mrkdwn(&self, action: &BlockAction, text: &str) {
        self.answer_click(action, &blocks::notice_mrkdwn(text, &[])).await;
    }
}

/// A one-line summary of a card's decisions, sent as the message's text.
fn summary(commands: &[ProposedCommand]) -> String {
    let count = |f: fn(&Decision) -> bool| commands.iter().filter(|c| f(&c.decision)).count();
    let approved = count(|d| matches!(d, Decision::Approve));
    let rejected = count(|d| matches!(d, Decision::Reject { .. }));
    let ignored = commands.len() - approved - rejected;
    let plural = |n: usize| if n == 1 { "command" } else { "commands" };
    let mut parts = Vec::new();
    if approved > 0 {
        parts.push(format!("approved {approved} {}", plural(approved)));
    }
    if rejected > 0 {
        parts.push(format!("rejected {rejected} {}", plural(rejected)));
    }
    if ignored > 0 {
        parts.push(format!("ignored {ignored} {}", plural(ignored)));
    }
    let mut line = parts.join(", ");
    if let Some(first) = line.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    format!("{line}.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(decision: Decision) -> ProposedCommand {
        ProposedCommand {
            form: ProposalForm::Command,
            id: String::new(),
            command: "ls".to_owned(),
            files: Vec::new(),
            original: None,
            decision,
            decided_by: None,
            decided_at: None,
        }
    }

    #[test]
    fn summaries_count_each_decision() {
        let commands = vec![
            with(Decision::Approve),
            with(Decision::Approve),
            with(Decision::Reject { reason: None }),
            with(Decision::Undecided),
        ];
        assert_eq!(summary(&commands), "Approved 2 commands, rejected 1 command, ignored 1 command.");
        assert_eq!(summary(&[with(Decision::Ignore)]), "Ignored 1 command.");
    }
}
