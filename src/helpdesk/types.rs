//! The HelpDesk's records as the bridge reads them (workspaces, agents, tickets and their
//! statuses), decoded from its JSON with the tolerance of [`super::wire`], and how a
//! ticket's API status maps to the bridge's [`TicketStatus`].

use serde_json::Value;

use super::{limits, wire};
use crate::{
    ids::{AgentId, TicketName, WorkspaceId},
    model::{Suggestion, TicketStatus},
};

/// Ticket statuses as the API names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiStatus {
    /// `open`.
    Open,
    /// `inProgress`.
    InProgress,
    /// `waitingForUserInput`.
    WaitingForUserInput,
    /// `waitingForUserAgent`.
    WaitingForUserAgent,
    /// `closed` (needs a disposition).
    Closed,
}

impl ApiStatus {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::InProgress => "inProgress",
            Self::WaitingForUserInput => "waitingForUserInput",
            Self::WaitingForUserAgent => "waitingForUserAgent",
            Self::Closed => "closed",
        }
    }

    /// Parses the API's spelling (any case).
    pub fn parse(value: &str) -> Option<Self> {
        [Self::Open, Self::InProgress, Self::WaitingForUserInput, Self::WaitingForUserAgent, Self::Closed]
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(value))
    }

    /// How a status is sent to the HelpDesk: Open → `open`, Pending → `inProgress`,
    /// Resolved → `closed` with disposition `resolved`, Closed → `closed` keeping the
    /// disposition (in Slack, Closed is reached only from Resolved, whose disposition is
    /// `resolved`, unless the ticket came from the HelpDesk already closed otherwise).
    pub fn for_status(to: TicketStatus, kept: Option<Disposition>) -> (Self, Option<Disposition>) {
        match to {
            TicketStatus::Open => (Self::Open, None),
            TicketStatus::Pending => (Self::InProgress, None),
            TicketStatus::Resolved => (Self::Closed, Some(Disposition::Resolved)),
            TicketStatus::Closed => (Self::Closed, Some(kept.unwrap_or(Disposition::Resolved))),
        }
    }

    /// The bridge's status of a HelpDesk ticket: closed as resolved reads as Resolved (it
    /// may still be reopened), closed otherwise as Closed; the waiting states are Pending.
    pub fn ticket_status(self, disposition: Option<Disposition>) -> TicketStatus {
        match (self, disposition) {
            (Self::Open, _) => TicketStatus::Open,
            (Self::InProgress | Self::WaitingForUserInput | Self::WaitingForUserAgent, _) => TicketStatus::Pending,
            (Self::Closed, Some(Disposition::UnResolved)) => TicketStatus::Closed,
            (Self::Closed, _) => TicketStatus::Resolved,
        }
    }
}

/// How a closed ticket ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// `resolved`.
    Resolved,
    /// `unResolved`.
    UnResolved,
}

impl Disposition {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Resolved => "resolved",
            Self::UnResolved => "unResolved",
        }
    }

    /// Parses the API's spelling (any case).
    pub fn parse(value: &str) -> Option<Self> {
        [Self::Resolved, Self::UnResolved].into_iter().find(|d| d.as_str().eq_ignore_ascii_case(value))
    }
}

/// A HelpDesk ticket, as far as the bridge needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Its name, e.g. `DEVOPS-42`.
    pub name: TicketName,
    /// Its title.
    pub title: String,
    /// The assigned agent, when the ticket says.
    pub agent_id: Option<AgentId>,
    /// The current status (the last `history.statuses` entry; `open` when there is none).
    pub status: ApiStatus,
    /// How a closed ticket ended, when the HelpDesk says.
    pub disposition: Option<Disposition>,
    /// When it was created, Unix seconds, when the HelpDesk says.
    pub created: Option<i64>,
    /// When it last changed, Unix seconds, when the HelpDesk says.
    pub updated: Option<i64>,
}

/// A HelpDesk workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// Its id.
    pub id: WorkspaceId,
    /// Its name.
    pub name: String,
}

/// A HelpDesk agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Its id.
    pub id: AgentId,
    /// Its name.
    pub name: String,
    /// Whether replies should be read from the streaming endpoint.
    pub streams: bool,
    /// The prompts it suggests starting with (see [`Agent::prompt_suggestions`]).
    suggestions: Vec<Suggestion>,
}

impl Agent {
    /// The prompts the agent suggests starting a conversation with, from its record's
    /// `metaData.prompt_suggestions`: at most [`limits::SUGGESTIONS`], each title and
    /// message at most [`limits::SUGGESTION_BYTES`] (cut between characters); none when the
    /// record has none or they do not parse. Slack's own limits are applied where they are
    /// shown.
    pub fn prompt_suggestions(&self) -> &[Suggestion] {
        &self.suggestions
    }
}

/// Whether a string is a 24-hex Mongo ObjectId, the form of workspace and agent ids.
pub(super) fn looks_like_id(value: &str) -> bool {
    value.len() == 24 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A ticket record; `None` without a name.
pub(super) fn ticket(value: &Value) -> Option<Ticket> {
    let name = wire::name(value)?;
    let last = wire::field_value(value, &["history", "History"])
        .and_then(|h| wire::field_value(h, &["statuses", "Statuses"]))
        .and_then(Value::as_array)
        .and_then(|all| all.last());
    let status = last
        .and_then(|s| wire::text(s, &["status", "Status"]))
        .or_else(|| wire::text(value, &["currentStatus", "status", "Status"]))
        .and_then(|s| ApiStatus::parse(&s))
        .unwrap_or(ApiStatus::Open);
    let disposition = last
        .and_then(|s| wire::text(s, &["disposition", "Disposition"]))
        .or_else(|| wire::text(value, &["disposition", "Disposition"]))
        .and_then(|d| Disposition::parse(&d));
    Some(Ticket {
        name: TicketName::new(name),
        title: wire::text(value, &["title", "Title"]).unwrap_or_default(),
        agent_id: wire::text(value, &["aiAgentId", "AIAgentId", "AiAgentId"]).map(AgentId::new),
        status,
        disposition,
        created: wire::seconds(value, &["createTime", "CreateTime", "createdAt"]),
        updated: wire::seconds(value, &["lastModified", "LastModified", "updatedAt"]),
    })
}

/// A workspace record; `None` without an id.
pub(super) fn workspace(value: &Value) -> Option<Workspace> {
    Some(Workspace { id: WorkspaceId::new(wire::id(value)?), name: wire::name(value).unwrap_or_default() })
}

/// An agent record; `None` without an id.
pub(super) fn agent(value: &Value) -> Option<Agent> {
    Some(Agent {
        id: AgentId::new(wire::id(value)?),
        name: wire::name(value).unwrap_or_default(),
        streams: wire::agent_streams(value),
        suggestions: wire::prompt_suggestions(value)
            .into_iter()
            .take(limits::SUGGESTIONS)
            .map(|(title, message)| Suggestion {
                title: limits::cut(&title, limits::SUGGESTION_BYTES).to_owned(),
                message: limits::cut(&message, limits::SUGGESTION_BYTES).to_owned(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_helpdesk_and_back() {
        assert_eq!(ApiStatus::for_status(TicketStatus::Open, None), (ApiStatus::Open, None));
        assert_eq!(ApiStatus::for_status(TicketStatus::Pending, None), (ApiStatus::InProgress, None));
        assert_eq!(
            ApiStatus::for_status(TicketStatus::Resolved, None),
            (ApiStatus::Closed, Some(Disposition::Resolved))
        );
        assert_eq!(
            ApiStatus::for_status(TicketStatus::Closed, Some(Disposition::UnResolved)),
            (ApiStatus::Closed, Some(Disposition::UnResolved))
        );
        for status in TicketStatus::ALL {
            let (api, disposition) = ApiStatus::for_status(status, None);
            let back = api.ticket_status(disposition);
            assert!(back == status || (status == TicketStatus::Closed && back == TicketStatus::Resolved));
        }
        assert_eq!(ApiStatus::WaitingForUserInput.ticket_status(None), TicketStatus::Pending);
        assert_eq!(ApiStatus::Closed.ticket_status(Some(Disposition::UnResolved)), TicketStatus::Closed);
    }

    #[test]
    fn agents_offer_at_most_four_bounded_suggestions() {
        let long = "日".repeat(limits::SUGGESTION_BYTES);
        let listed: Vec<String> = (0..6).map(|i| format!("prompt {i}")).chain([long]).collect();
        let record = serde_json::json!({"id": "a", "name": "k8s", "metaData": {
            "prompt_suggestions": serde_json::to_string(&listed).unwrap()}});
        let found = agent(&record).unwrap();
        let titles: Vec<&str> = found.prompt_suggestions().iter().map(|s| s.title.as_str()).collect();
        assert_eq!(titles, ["prompt 0", "prompt 1", "prompt 2", "prompt 3"]);
        let long_first = serde_json::json!({"id": "a", "metaData": {
            "prompt_suggestions": serde_json::to_string(&[&listed[6]]).unwrap()}});
        let cut = agent(&long_first).unwrap().prompt_suggestions()[0].clone();
        assert!(cut.title.len() <= limits::SUGGESTION_BYTES && cut.title.chars().all(|c| c == '日'));
        assert!(!cut.title.is_empty());
        let garbage = serde_json::json!({"id": "a", "metaData": {"prompt_suggestions": "{oops"}});
        assert!(agent(&garbage).unwrap().prompt_suggestions().is_empty());
    }

    #[test]
    fn ids_are_24_hex() {
        assert!(looks_like_id("65f0c0ffee0000000000abcd"));
        assert!(!looks_like_id("devops"));
        assert!(!looks_like_id("65f0c0ffee0000000000abcz"));
    }
}
