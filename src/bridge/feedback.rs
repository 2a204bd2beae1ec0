//! 👍 / 👎 on the agent's replies: Slack's feedback buttons, recorded on the ticket.
//!
//! A click names only the message it was on; the ticket is the one mapped to that
//! message's thread. Whoever may take part in the ticket (`may_manage`) may rate; the
//! rating goes to the HelpDesk ticket as a record-only message (the agent is not woken)
//! and into the ticket's history, and only the clicker is told. The same person giving the
//! same reply the same rating again is thanked without recording it twice (a store mark,
//! given back when the recording fails, so that nothing is lost silently: the person is
//! told and can click again).

use super::{Bridge, BridgeError, patiently};
use crate::{
    ids::{MessageTs, TeamId, ThreadKey, UserId},
    inbound::BlockAction,
    model::{Actor, HistoryEvent, Rating, TicketRecord},
    slack::notices,
};

/// What the clicker is told when the store cannot say whether the rating was recorded.
const STORE_DOWN: &str = "my state store is not answering";

impl Bridge {
    /// A click on a reply's feedback buttons.
    pub(super) async fn on_feedback(
        &self,
        team: &TeamId,
        action: &BlockAction,
        rating: Rating,
    ) -> Result<(), BridgeError> {
        let (Some(channel), Some(reply)) = (&action.channel, &action.message_ts) else { return Ok(()) };
        let thread_ts = action.thread_ts.clone().unwrap_or_else(|| reply.clone());
        let thread = ThreadKey { team: team.clone(), channel: channel.clone(), thread_ts };
        let store = &self.inner.store;
        let record = match patiently(|| store.ticket_by_thread(&thread)).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                self.answer_click(action, &notices::feedback_no_ticket()).await;
                return Ok(());
            }
            Err(err) => {
                self.answer_click(action, &notices::feedback_not_recorded(None, rating, &STORE_DOWN)).await;
                return Err(err.into());
            }
        };
        let ticket = record.ticket.ticket.as_str();
        let user = &action.user;
        if !self.may_manage(&record, user, action.user_team.as_ref()).await {
            self.answer_click(action, &notices::feedback_members_only()).await;
            return Ok(());
        }
        match patiently(|| store.claim_feedback(&thread, reply, user, rating)).await {
            Ok(true) => {}
            Ok(false) => {
                self.answer_click(action, &notices::feedback_already_recorded(ticket, rating)).await;
                return Ok(());
            }
            Err(err) => {
                self.answer_click(action, &notices::feedback_not_recorded(Some(ticket), rating, &STORE_DOWN)).await;
                return Err(err.into());
            }
        }
        if let Err(err) = self.mirror(&record, self.feedback_text(&record, reply, user, rating).await).await {
            if let Err(store_err) = patiently(|| store.release_feedback(&thread, reply, user, rating)).await {
                tracing::warn!(ticket, error = %store_err, "could not give back a rating that was not recorded");
            }
            self.answer_click(action, &notices::feedback_not_recorded(Some(ticket), rating, &err)).await;
            return Err(err.into());
        }
        let event = HistoryEvent::Feedback { rating, reply_ts: reply.clone() };
        self.record(&record, Actor::User(user.clone()), event).await;
        self.inner.metrics.feedback(rating);
        tracing::info!(ticket, rating = rating.as_str(), "recorded a rating of the agent's reply");
        self.answer_click(action, &notices::feedback_recorded(ticket, rating)).await;
        Ok(())
    }

    /// The record-only message that tells the HelpDesk ticket who rated which reply: the
    /// reply by its Slack link, or by its timestamp when Slack cannot give one.
    async fn feedback_text(&self, record: &TicketRecord, reply: &MessageTs, user: &UserId, rating: Rating) -> String {
        let message = match self.slack().permalink(&record.thread.channel, reply).await {
            Ok(link) => link,
            Err(err) => {
                tracing::debug!(code = err.code(), "no permalink for a rated reply; naming it by its timestamp");
                reply.to_string()
            }
        };
        let name = self.name_of(user).await;
        format!("Feedback from Slack: {name} ({user}) rated the agent's reply {} (message {message})", rating.emoji())
    }
}
