//! Taking a parsed Slack delivery in, and the one rule for what Slack is told: acknowledge
//! it, or let Slack deliver it again.
//!
//! Both transports follow this table; each only turns the [`Ack`] into its wire form (HTTP:
//! 200 or 503 without `X-Slack-No-Retry`; Socket Mode: an envelope ack or none). Something
//! that cannot be taken now (bot identity unknown, inbox full, store down, shutting down)
//! is never acknowledged, so nothing is dropped and no dedup mark is spent on it; whatever
//! is acknowledged is already durably in the store's inbox.

use crate::{
    dispatch::{Admission, DispatchError, Dispatcher},
    slack::ingress::Parsed,
};

/// What Slack is told about a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Acknowledge it: it was taken, is a duplicate, or asks for nothing.
    Now,
    /// Do not acknowledge it: Slack delivers it again later. Says why, for the answer.
    Redeliver(&'static str),
}

/// What became of a delivery that parsed.
#[derive(Debug)]
pub enum Intake {
    /// The Events API URL handshake (HTTP only); answer with this challenge.
    Challenge(String),
    /// Nothing to do, and why.
    Ignored(&'static str),
    /// The bot does not know who it is yet (`auth.test` pending), so events cannot be
    /// filtered.
    NotReady,
    /// Offered to the dispatcher, with its answer.
    Submitted(Result<Admission, DispatchError>),
    /// A form that must stay open, showing these (block id, message) problems.
    FormErrors(Vec<(&'static str, String)>),
}

impl Intake {
    /// Offers a parsed delivery to the dispatcher when it holds something to handle.
    /// `transport` names where it came from, for the logs.
    pub async fn take(dispatcher: &Dispatcher, parsed: Parsed, transport: &'static str) -> Self {
        match parsed {
            Parsed::Challenge(challenge) => Self::Challenge(challenge),
            Parsed::Ignored(why) => {
                tracing::debug!(transport, why, "ignored a Slack delivery");
                Self::Ignored(why)
            }
            Parsed::NotReady => Self::NotReady,
            Parsed::FormErrors(errors) => Self::FormErrors(errors),
            Parsed::Inbound(item) => {
                let submitted = dispatcher.submit(item).await;
                match &submitted {
                    Err(DispatchError::Store(err)) => {
                        tracing::warn!(transport, error = %err, "cannot take a Slack delivery; Slack will deliver it again");
                    }
                    Err(DispatchError::Full) => {
                        tracing::warn!(transport, "the inbox is full (INBOX_MAX_ITEMS); Slack will deliver it again");
                    }
                    _ => {}
                }
                Self::Submitted(submitted)
            }
        }
    }

    /// What the acknowledgement carries, when it carries something: a form's problems, as
    /// Slack's `response_action: errors` (an HTTP body, or a Socket Mode ack's `payload`).
    pub fn ack_payload(&self) -> Option<serde_json::Value> {
        let Self::FormErrors(errors) = self else { return None };
        let errors: serde_json::Map<String, serde_json::Value> =
            errors.iter().map(|(block, message)| ((*block).to_owned(), message.clone().into())).collect();
        Some(serde_json::json!({ "response_action": "errors", "errors": errors }))
    }

    /// Acknowledge, or let Slack redeliver: the rule both transports answer by.
    pub fn ack(&self) -> Ack {
        match self {
            Self::Challenge(_) | Self::Ignored(_) | Self::FormErrors(_) | Self::Submitted(Ok(_)) => Ack::Now,
            Self::NotReady => Ack::Redeliver("not ready: waiting for Slack auth.test"),
            Self::Submitted(Err(DispatchError::Full)) => Ack::Redeliver("the inbox is full; retry later"),
            Self::Submitted(Err(DispatchError::ShuttingDown)) => Ack::Redeliver("shutting down"),
            Self::Submitted(Err(DispatchError::Store(_))) => Ack::Redeliver("state store unavailable; retry later"),
        }
    }

    /// The outcome label of the requests metric.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Challenge(_) => "challenge",
            Self::Ignored(_) => "ignored",
            Self::FormErrors(_) => "form_errors",
            Self::NotReady => "not_ready",
            Self::Submitted(Ok(Admission::Accepted)) => "ok",
            Self::Submitted(Ok(Admission::Duplicate)) => "duplicate",
            Self::Submitted(Err(DispatchError::Full)) => "full",
            Self::Submitted(Err(DispatchError::ShuttingDown)) => "shutting_down",
            Self::Submitted(Err(DispatchError::Store(_))) => "unavailable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn only_what_was_taken_or_needs_nothing_is_acknowledged() {
        let now = [
            Intake::Challenge("c".to_owned()),
            Intake::Ignored("from a bot"),
            Intake::Submitted(Ok(Admission::Accepted)),
            Intake::Submitted(Ok(Admission::Duplicate)),
        ];
        assert!(now.iter().all(|intake| intake.ack() == Ack::Now));
        let later = [
            Intake::NotReady,
            Intake::Submitted(Err(DispatchError::Full)),
            Intake::Submitted(Err(DispatchError::ShuttingDown)),
            Intake::Submitted(Err(DispatchError::Store(StoreError::Unavailable("down".to_owned())))),
        ];
        assert!(later.iter().all(|intake| matches!(intake.ack(), Ack::Redeliver(_))));
    }

    #[test]
    fn a_form_with_errors_is_acknowledged_with_them() {
        let intake = Intake::FormErrors(vec![("agent", "Choose an agent of portal qa.".to_owned())]);
        assert_eq!(intake.ack(), Ack::Now);
        assert_eq!(
            intake.ack_payload(),
            Some(
                serde_json::json!({"response_action": "errors", "errors": {"agent": "Choose an agent of portal qa."}})
            )
        );
        assert_eq!(Intake::Ignored("x").ack_payload(), None);
    }
}
