//! Identifier newtypes shared by every module.
//!
//! Slack and the HelpDesk both identify things with bare strings; mixing up a channel id and
//! a user id, or a ticket name and a workspace id, type-checks as `String` and fails at run
//! time. Each id here is its own type so the compiler keeps them apart.

use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a raw id as received from its source.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The raw id.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A Slack workspace (team) id, `T…`.
    TeamId
);
string_id!(
    /// A Slack conversation id: channel `C…`, private channel `G…` or DM `D…`.
    ChannelId
);
string_id!(
    /// A Slack Enterprise Grid organisation id, `E…`.
    EnterpriseId
);
string_id!(
    /// A Slack user id, `U…` or `W…`.
    UserId
);
string_id!(
    /// A message the bridge keeps for a button (Retry, *Open a new ticket*, *Create ticket*):
    /// an opaque random id, the only thing the button carries.
    PendingId
);
string_id!(
    /// A Slack user-group id, `S…`.
    GroupId
);

/// Who may be listed as an approver or administrator: a person or a user group. Parsed once,
/// from configuration or from `/helpdesk config`; stored as the bare id.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Approver {
    /// A person, `U…` or `W…`.
    User(UserId),
    /// A user group, `S…`.
    Group(GroupId),
}

impl Approver {
    /// A bare Slack id: `U`, `W` (people) or `S` (groups), then upper-case letters and digits.
    pub fn parse(id: &str) -> Option<Self> {
        let valid = id.len() > 1 && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        match id.as_bytes().first() {
            Some(b'U' | b'W') if valid => Some(Self::User(UserId::new(id))),
            Some(b'S') if valid => Some(Self::Group(GroupId::new(id))),
            _ => None,
        }
    }

    /// The bare id.
    pub fn as_str(&self) -> &str {
        match self {
            Self::User(id) => id.as_str(),
            Self::Group(id) => id.as_str(),
        }
    }

    /// Whether this names `user` by id.
    pub fn is(&self, user: &UserId) -> bool {
        matches!(self, Self::User(id) if id == user)
    }
}

/// The bare id, as configuration and the settings audit log have always shown it.
impl fmt::Debug for Approver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Approver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Approver {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<Approver> for String {
    fn from(approver: Approver) -> Self {
        approver.as_str().to_owned()
    }
}

impl TryFrom<String> for Approver {
    type Error = String;
    fn try_from(id: String) -> Result<Self, Self::Error> {
        Self::parse(&id).ok_or_else(|| format!("'{id}' is not a Slack user or user-group id"))
    }
}

string_id!(
    /// A Slack message timestamp (`1712345678.000100`); a thread is named by its parent's.
    MessageTs
);
string_id!(
    /// A Slack Events API `event_id`, unique per event across workspaces.
    EventId
);
string_id!(
    /// A HelpDesk workspace id (a 24-hex Mongo ObjectId on current portals).
    WorkspaceId
);
string_id!(
    /// A HelpDesk agent id.
    AgentId
);
string_id!(
    /// A HelpDesk ticket name such as `DEVOPS-42`: the human key the API paths take.
    TicketName
);
string_id!(
    /// An approval card id, minted by the bridge; opaque to Slack.
    CardId
);

/// A Slack thread: the conversation a ticket lives in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ThreadKey {
    /// The workspace the thread is in.
    pub team: TeamId,
    /// The conversation the thread is in.
    pub channel: ChannelId,
    /// The timestamp of the thread's parent message.
    pub thread_ts: MessageTs,
}

impl fmt::Display for ThreadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.team, self.channel, self.thread_ts)
    }
}

/// A HelpDesk ticket, fully qualified: one bridge may talk to tickets of several workspaces.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TicketKey {
    /// The portal base URL, normalised (scheme and host, no trailing slash).
    pub host: String,
    /// The workspace the ticket lives in.
    pub workspace: WorkspaceId,
    /// The ticket's name.
    pub ticket: TicketName,
}

impl fmt::Display for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.host, self.workspace, self.ticket)
    }
}
