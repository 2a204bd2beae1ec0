//! The bridge's domain records: what it remembers about tickets, cards and channels.
//!
//! These types are shared by the store (which persists them) and the bridge (which decides
//! with them). They derive serde only because the store persists them; their JSON is a
//! storage format, never a wire format, and every field added later carries
//! `#[serde(default)]` so that records written by an older version still load.

use serde::{Deserialize, Serialize};

use crate::ids::{
    AgentId, CardId, ChannelId, EnterpriseId, MessageTs, TeamId, ThreadKey, TicketKey, TicketName, UserId, WorkspaceId,
};

/// Milliseconds since the Unix epoch; the store's only notion of time.
pub type UnixMillis = i64;

/// Milliseconds since the Unix epoch, now: the one clock the store and the bridge read.
pub fn now_millis() -> UnixMillis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| {
        // Millisecond timestamps fit an i64 for the next 292 million years.
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    })
}

/// The clock approvals are timed by: the system clock, moved on by however much it was
/// [`Clock::advance`]d. Nothing in the service advances it; tests do, to pass an
/// `APPROVAL_TTL` of hours without waiting for it. Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl Clock {
    /// Now, in milliseconds since the Unix epoch.
    pub fn now_millis(&self) -> UnixMillis {
        now_millis().saturating_add(self.offset.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Moves this clock (and its clones) on by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset.fetch_add(by, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Fingerprints of commands: log lines and the audit trail name a command by the first 16
/// hex digits of its HMAC-SHA-256 under the service's own key (kept in the store, shared
/// by replicas), so that the two can be matched without the text, which may hold a
/// secret, being logged, and without the fingerprint letting anyone who reads the logs
/// confirm a guess of the text.
#[derive(Clone)]
pub struct CommandHasher {
    key: std::sync::Arc<[u8]>,
}

impl std::fmt::Debug for CommandHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommandHasher")
    }
}

impl CommandHasher {
    /// A hasher keyed with `key`.
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.into() }
    }

    /// The fingerprint of `command`.
    pub fn hash(&self, command: &str) -> String {
        use hmac::{KeyInit, Mac};
        // HMAC takes a key of any length, so this never answers empty.
        let Ok(mut mac) = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(command.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..8])
    }
}

/// Where a ticket is in its life, per the ticket management model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Created, awaiting attention.
    Open,
    /// Work in progress or waiting for input.
    Pending,
    /// A solution was provided.
    Resolved,
    /// Finalised.
    Closed,
}

impl TicketStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [TicketStatus; 4] = [Self::Open, Self::Pending, Self::Resolved, Self::Closed];

    /// A stable lower-case name, used in store keys and commands.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Pending => "pending",
            Self::Resolved => "resolved",
            Self::Closed => "closed",
        }
    }

    /// Parses a lower-case name.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(value))
    }

    /// The status as people read it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Open => "Open",
            Self::Pending => "Pending",
            Self::Resolved => "Resolved",
            Self::Closed => "Closed",
        }
    }

    /// The statuses this one may move to, exactly as the ticket management model allows:
    /// Open → Pending → Resolved → Closed, and Pending or Resolved back to Open.
    pub fn next(self) -> &'static [TicketStatus] {
        match self {
            Self::Open => &[Self::Pending],
            Self::Pending => &[Self::Resolved, Self::Open],
            Self::Resolved => &[Self::Closed, Self::Open],
            Self::Closed => &[],
        }
    }

    /// Whether the model allows moving from this status to `to`.
    pub fn may_become(self, to: TicketStatus) -> bool {
        self.next().contains(&to)
    }
}

/// What the bridge remembers about one ticket and the Slack thread that is its conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TicketRecord {
    /// The Slack thread.
    pub thread: ThreadKey,
    /// The HelpDesk ticket.
    pub ticket: TicketKey,
    /// The ticket's title.
    pub title: String,
    /// The agent now assigned.
    pub agent_id: AgentId,
    /// That agent's display name.
    pub agent_name: String,
    /// Whether that agent advertises streamed replies, as last looked up (at the opening,
    /// the agent switch or a turn). A turn sends with it at once and checks it alongside the
    /// send; `None` (a record from before it was kept) is looked up before the send.
    #[serde(default)]
    pub agent_streams: Option<bool>,
    /// Who asked for help.
    pub requester: UserId,
    /// The Slack user who owns the ticket, if assigned.
    #[serde(default)]
    pub assignee: Option<UserId>,
    /// Lifecycle status.
    pub status: TicketStatus,
    /// The ticket header message, once posted.
    #[serde(default)]
    pub header_ts: Option<MessageTs>,
    /// A link to the thread, once asked of Slack (lists link every ticket to its thread).
    #[serde(default)]
    pub permalink: Option<String>,
    /// People who have written in the thread, in order of their first message.
    #[serde(default)]
    pub participants: Vec<UserId>,
    /// Opened on the HelpDesk and continued in Slack (`/helpdesk find`): its `requester` is
    /// who continued it, which gives no right to decide on its commands.
    #[serde(default)]
    pub adopted: bool,
    /// Commands approved with *Always for this ticket*, exactly as proposed: the same
    /// command proposed again on this ticket is approved without a click.
    #[serde(default)]
    pub always_allow: Vec<String>,
    /// The tickets this thread worked before this one, oldest first (*Update context* moved
    /// it to another portal or workspace): they stay on their HelpDesks, and their approval
    /// trails stay the thread's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous: Vec<TicketKey>,
    /// When the ticket was created.
    pub created_at: UnixMillis,
    /// When anything about the ticket last changed.
    pub updated_at: UnixMillis,
}

/// A person's decision on one proposed command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decision {
    /// Nobody has decided yet.
    #[default]
    Undecided,
    /// Run it.
    Approve,
    /// Do not run it; the reason goes to the agent.
    Reject {
        /// Optional feedback for the agent.
        #[serde(default)]
        reason: Option<String>,
    },
    /// Leave it unanswered: it is left out of the reply.
    Ignore,
}

/// A file a proposed command would create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposedFile {
    /// Path relative to the command's working directory.
    pub path: String,
    /// Full content.
    pub content: String,
}

/// Which protocol form a proposal came in, so the answer goes back in the same form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProposalForm {
    /// `cmds`: matched by command text.
    #[default]
    Command,
    /// `tool_calls`: matched by id.
    ToolCall,
    /// `approvals`: matched by id.
    Approval,
}

/// A tool call or approval as the card shows it, for sending back exactly that.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInvocation {
    /// The tool's name.
    pub name: String,
    /// Its input as the agent gave it, stored as the JSON text the card shows (`None` when
    /// the agent gave none); only the HelpDesk boundary reads it.
    #[serde(default)]
    pub input: Option<ToolInput>,
}

/// Whether a proposal's full text had to be attached to the thread, and was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Attachment {
    /// The card shows everything that would run.
    #[default]
    NotNeeded,
    /// The card shows a preview; the whole proposal is attached in the thread.
    Attached,
    /// The whole proposal could not be attached, so nobody saw it: it cannot be approved.
    Failed,
}

/// One command (or tool call) an agent proposed, and what was decided about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProposedCommand {
    /// The protocol form.
    #[serde(default)]
    pub form: ProposalForm,
    /// The agent's id for tool calls and approvals; empty for plain commands.
    #[serde(default)]
    pub id: String,
    /// The command text, or the tool's name and input rendered for people.
    pub command: String,
    /// For tool calls and approvals: the name and input the card shows and the answer carries.
    #[serde(default)]
    pub tool: Option<ToolInvocation>,
    /// Files the command would create.
    #[serde(default)]
    pub files: Vec<ProposedFile>,
    /// The agent's proposal in full (pretty JSON) when it had fields the card cannot show;
    /// those fields are never sent back, but people see them in the attached file.
    #[serde(default)]
    pub unshown: Option<String>,
    /// Whether the whole proposal is attached in the thread (needed when the card cannot
    /// show all of it).
    #[serde(default)]
    pub attachment: Attachment,
    /// The decision so far.
    #[serde(default)]
    pub decision: Decision,
    /// Who decided.
    #[serde(default)]
    pub decided_by: Option<UserId>,
    /// When.
    #[serde(default)]
    pub decided_at: Option<UnixMillis>,
    /// The command policy's verdict, when a rule decided it instead of a person.
    #[serde(default)]
    pub policy: Option<PolicyMark>,
    /// Approvals from different people it needs (the two-person rule); 0 or 1: one.
    #[serde(default)]
    pub needs: u32,
    /// Approvals given so far, while it needs more than one.
    #[serde(default)]
    pub approvals: Vec<Approval>,
}

/// One person's approval of a command that needs several.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Who.
    pub by: UserId,
    /// When.
    pub at: UnixMillis,
}

/// What the command policy decided about a proposal, and by which rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyMark {
    /// Approved or rejected by the rule.
    pub verdict: PolicyVerdict,
    /// The rule, as it was written (for the ticket's own list, the command itself).
    pub rule: String,
    /// Where the rule comes from.
    #[serde(default)]
    pub source: RuleSource,
}

/// Where a command rule comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RuleSource {
    /// `COMMAND_ALLOW` / `COMMAND_BLOCK`, or the channel's lists.
    #[default]
    Rules,
    /// The ticket's own list: someone chose *Always for this ticket* on this command.
    Ticket,
}

/// A command policy's verdict on a proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyVerdict {
    /// An allow rule matched (and no block rule; the command is not destructive): approved
    /// without a click.
    Allowed,
    /// A block rule matched: rejected, and nobody may approve it.
    Blocked,
}

impl ProposedCommand {
    /// A proposal nobody has decided on yet, with no files and nothing the card cannot show.
    pub fn new(form: ProposalForm, id: String, command: String) -> Self {
        Self {
            form,
            id,
            command,
            tool: None,
            files: Vec::new(),
            unshown: None,
            attachment: Attachment::NotNeeded,
            decision: Decision::Undecided,
            decided_by: None,
            decided_at: None,
            policy: None,
            needs: 1,
            approvals: Vec::new(),
        }
    }

    /// Whether it waits for more approvals: some given, not yet enough.
    pub fn partly_approved(&self) -> bool {
        self.decision == Decision::Undecided && !self.approvals.is_empty()
    }

    /// Whether a block rule rejected it: no click may approve it.
    pub fn blocked(&self) -> bool {
        self.policy.as_ref().is_some_and(|p| p.verdict == PolicyVerdict::Blocked)
    }
}

/// Where an approval card is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardState {
    /// Decisions may be made and changed.
    Open,
    /// The decisions were sent; nothing may change.
    Submitted,
    /// A newer card replaced this one.
    Superseded,
}

/// An approval card: the commands one agent turn proposed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Card {
    /// The card's id (opaque; buttons carry it).
    pub id: CardId,
    /// The ticket the commands were proposed on.
    pub ticket: TicketKey,
    /// The ticket's thread.
    pub thread: ThreadKey,
    /// The Slack messages the card is rendered in (more than one when it is long).
    #[serde(default)]
    pub messages: Vec<MessageTs>,
    /// The proposals, in the agent's order.
    pub commands: Vec<ProposedCommand>,
    /// Open, submitted or superseded.
    pub state: CardState,
    /// When the card was created.
    pub created_at: UnixMillis,
    /// Bumped on every change people can see (a decision, a submission): a click names the
    /// version it saw, and a click on an older rendering is refused.
    #[serde(default)]
    pub version: u64,
    /// Its decisions went to the HelpDesk (or may have): they are never sent again.
    #[serde(default)]
    pub sent: bool,
    /// Who submitted it.
    #[serde(default)]
    pub submitted_by: Option<UserId>,
    /// When it was submitted.
    #[serde(default)]
    pub submitted_at: Option<UnixMillis>,
}

/// A tool call's or approval's `input` as the agent sent it, kept as JSON text so that the
/// answer carries back exactly the input the card showed. Opaque: only the HelpDesk boundary
/// makes one or reads it; it is stored as that text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ToolInput(String);

impl ToolInput {
    /// Keeps an agent's input, given as JSON text.
    pub fn from_json_text(text: String) -> Self {
        Self(text)
    }

    /// The input as the JSON text it was kept as.
    pub fn json_text(&self) -> &str {
        &self.0
    }
}

/// Where a kept message goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// A thread that exists.
    Thread(ThreadKey),
    /// A thread not posted yet: the ticket's header is posted in this channel first, and
    /// its thread is the ticket's (`/helpdesk new`, a follow-up to a closed ticket).
    NewThreadIn(ChannelRef),
}

impl Place {
    /// The workspace.
    pub fn team(&self) -> &TeamId {
        match self {
            Self::Thread(thread) => &thread.team,
            Self::NewThreadIn(channel) => &channel.team,
        }
    }

    /// The channel.
    pub fn channel(&self) -> &ChannelId {
        match self {
            Self::Thread(thread) => &thread.channel,
            Self::NewThreadIn(channel) => &channel.channel,
        }
    }

    /// The thread, once there is one.
    pub fn thread(&self) -> Option<&ThreadKey> {
        match self {
            Self::Thread(thread) => Some(thread),
            Self::NewThreadIn(_) => None,
        }
    }
}

/// A message the bridge holds on to: one whose sending failed (for its Retry button), or
/// one that opens a ticket once a workspace and agent are chosen in the modal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredPending", into = "StoredPending")]
pub struct PendingMessage {
    /// Where it goes.
    pub place: Place,
    /// Who wrote it.
    pub author: UserId,
    /// The Slack message it came from, for reactions.
    pub message_ts: Option<MessageTs>,
    /// The text for the agent, already plain.
    pub content: String,
    /// A title for the ticket it opens, when the thread has none yet.
    pub title: String,
    /// A submitted card whose decisions go with this message.
    pub card: Option<CardId>,
}

/// A [`PendingMessage`] as stored: a thread whose ts is empty, and a flag, stand for a thread
/// not posted yet. Kept so records written by earlier versions (and replicas mid-upgrade)
/// read the same.
#[derive(Serialize, Deserialize)]
struct StoredPending {
    thread: ThreadKey,
    author: UserId,
    #[serde(default)]
    message_ts: Option<MessageTs>,
    content: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    card: Option<CardId>,
    #[serde(default)]
    new_thread: bool,
}

impl From<StoredPending> for PendingMessage {
    fn from(stored: StoredPending) -> Self {
        let StoredPending { thread, author, message_ts, content, title, card, new_thread } = stored;
        // Earlier versions also kept `new_thread` on a message whose header was already
        // posted (its thread then has a ts): only an empty ts means "not posted yet".
        let place = if new_thread && thread.thread_ts.as_str().is_empty() {
            Place::NewThreadIn(ChannelRef { team: thread.team, channel: thread.channel })
        } else {
            Place::Thread(thread)
        };
        Self { place, author, message_ts, content, title, card }
    }
}

impl From<PendingMessage> for StoredPending {
    fn from(pending: PendingMessage) -> Self {
        let PendingMessage { place, author, message_ts, content, title, card } = pending;
        let (thread, new_thread) = match place {
            Place::Thread(thread) => (thread, false),
            Place::NewThreadIn(ChannelRef { team, channel }) => {
                (ThreadKey { team, channel, thread_ts: MessageTs::new("") }, true)
            }
        };
        Self { thread, author, message_ts, content, title, card, new_thread }
    }
}

/// Who did something recorded in a ticket's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// A Slack user.
    User(UserId),
    /// A HelpDesk agent, by name.
    Agent(String),
    /// The bridge itself.
    Bridge,
}

/// Who installed the app: a workspace, or an Enterprise Grid organisation (an org-wide
/// install serves every workspace of the organisation).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A workspace's own installation.
    Team(TeamId),
    /// An organisation's org-wide installation.
    Enterprise(EnterpriseId),
}

impl Owner {
    /// The owner as the store names it (`team:T…`, `org:E…`).
    pub fn key(&self) -> String {
        match self {
            Self::Team(team) => format!("team:{team}"),
            Self::Enterprise(enterprise) => format!("org:{enterprise}"),
        }
    }

    /// The owner a [`Owner::key`] names.
    pub fn parse(key: &str) -> Option<Self> {
        match key.split_once(':')? {
            ("team", team) if !team.is_empty() => Some(Self::Team(TeamId::new(team))),
            ("org", enterprise) if !enterprise.is_empty() => Some(Self::Enterprise(EnterpriseId::new(enterprise))),
            _ => None,
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

/// An installation of the app: what serving a workspace (or an organisation) takes. The
/// bot token is stored sealed (`store::seal`) and never logged (`SecretString`).
#[derive(Clone, Debug)]
pub struct Installation {
    /// Who made it: a workspace, or an organisation for an org-wide install
    /// (`is_enterprise_install`).
    pub owner: Owner,
    /// The organisation, on Enterprise Grid (a workspace's own install names it too).
    pub enterprise: Option<EnterpriseId>,
    /// The bot token (`xoxb-…`).
    pub bot_token: secrecy::SecretString,
    /// The bot's user id in the workspace.
    pub bot_user: UserId,
    /// The bot's bot id, when Slack gave it.
    pub bot_id: Option<String>,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// Who installed it.
    pub installer: Option<UserId>,
    /// When.
    pub installed_at: UnixMillis,
}

/// One entry of a ticket's timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When it happened.
    pub at: UnixMillis,
    /// Who did it.
    pub actor: Actor,
    /// What happened.
    pub event: HistoryEvent,
}

/// What happened to a ticket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HistoryEvent {
    /// The ticket was created.
    Created {
        /// Its title.
        title: String,
    },
    /// A thread message went to the agent.
    MessageRelayed,
    /// The status changed.
    StatusChanged {
        /// Before.
        from: TicketStatus,
        /// After.
        to: TicketStatus,
        /// The comment given with the change.
        #[serde(default)]
        comment: Option<String>,
    },
    /// The Slack assignee changed.
    AssigneeChanged {
        /// Before.
        from: Option<UserId>,
        /// After.
        to: Option<UserId>,
    },
    /// The HelpDesk agent changed.
    AgentChanged {
        /// Before (name).
        from: String,
        /// After (name).
        to: String,
    },
    /// A comment was recorded without waking the agent.
    Comment {
        /// The comment text.
        text: String,
    },
    /// The agent proposed commands.
    CommandsProposed {
        /// The card that shows them.
        card: CardId,
        /// How many.
        count: usize,
        /// The commands, as shown on the card.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        commands: Vec<String>,
    },
    /// Someone decided on a command.
    CommandDecided {
        /// The card.
        card: CardId,
        /// The command text.
        command: String,
        /// The decision.
        decision: Decision,
        /// The rule that decided it, when a rule did (the ticket's own list: `None` with the
        /// bridge as the actor and `always` set).
        #[serde(default)]
        rule: Option<String>,
        /// Decided by the ticket's always-allowed list.
        #[serde(default)]
        always: bool,
        /// For a command that needs several approvals (`needs` > 1), who has approved it so
        /// far, this approval included.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        approvals: Vec<UserId>,
        /// How many approvals from different people the command needs (0 or 1: one).
        #[serde(default)]
        needs: u32,
        /// How the person who decided was known when they did: display name, user id and,
        /// when Slack gives it, e-mail (`None` for rules and for older entries).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        who: Option<String>,
    },
    /// Someone chose *Always for this ticket*: the command joined the ticket's list.
    CommandAlwaysAllowed {
        /// The card it was chosen on.
        card: CardId,
        /// The command, exactly.
        command: String,
    },
    /// A submitted card's decisions were not sent: by the time they would have gone, they
    /// were no longer current (past the TTL, the ticket closed, or a newer card).
    CommandsWithheld {
        /// The card.
        card: CardId,
    },
    /// An approval card expired before anyone submitted it; nothing on it was sent.
    CardExpired {
        /// The card.
        card: CardId,
    },
    /// A card's decisions went to the agent.
    CommandsSubmitted {
        /// The card.
        card: CardId,
        /// What was sent, in a line ("Approved 2 commands, rejected 1 command.").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
    },
    /// A person edited, in Slack, a message that had reached the ticket; the new text was
    /// recorded on the ticket without waking the agent.
    MessageEdited {
        /// The message.
        ts: MessageTs,
    },
    /// A person deleted, in Slack, a message that had reached the ticket; that was recorded
    /// on the ticket without waking the agent.
    MessageDeleted {
        /// The message.
        ts: MessageTs,
    },
    /// The thread moved to another ticket (*Update context*, to another portal or workspace);
    /// recorded on both tickets.
    Moved {
        /// The ticket the thread left (it stays on its HelpDesk as it was).
        from: TicketName,
        /// The ticket the thread went to.
        to: TicketName,
        /// Where `to` is, in words ("portal qa, workspace devops").
        place: String,
    },
    /// Title or other fields changed.
    MetadataUpdated {
        /// What changed, in words.
        change: String,
    },
    /// Someone rated one of the agent's replies with Slack's feedback buttons.
    Feedback {
        /// 👍 or 👎.
        rating: Rating,
        /// The reply rated (the Slack message clicked).
        reply_ts: MessageTs,
    },
}

impl HistoryEvent {
    /// Whether the entry belongs to a ticket's approval trail: proposals, decisions (by
    /// people and by rules), *Always for this ticket*, submissions and expiries.
    pub fn is_approval(&self) -> bool {
        matches!(
            self,
            Self::CommandsProposed { .. }
                | Self::CommandDecided { .. }
                | Self::CommandAlwaysAllowed { .. }
                | Self::CommandsSubmitted { .. }
                | Self::CommandsWithheld { .. }
                | Self::CardExpired { .. }
        )
    }
}

/// A rating of one of the agent's replies: 👍 or 👎.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    /// 👍: the reply helped.
    Positive,
    /// 👎: it did not.
    Negative,
}

impl Rating {
    /// A stable lower-case name, used in store keys and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Positive => "positive",
            Self::Negative => "negative",
        }
    }

    /// The rating as people see it, in Slack and on the HelpDesk ticket alike.
    pub fn emoji(self) -> &'static str {
        match self {
            Self::Positive => "👍",
            Self::Negative => "👎",
        }
    }
}

/// A prompt the agent suggests starting a conversation with: a short title people click,
/// and the message it sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suggestion {
    /// What the suggestion shows.
    pub title: String,
    /// What clicking it sends to the agent.
    pub message: String,
}

/// How thread messages in a channel reach the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RelayMode {
    /// Every human message is a turn.
    #[default]
    All,
    /// Only messages that mention the bot are turns; the rest are comments.
    Mentions,
}

/// Per-channel settings over the global defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ChannelSettings {
    /// Default workspace for new tickets.
    #[serde(default)]
    pub workspace: Option<WorkspaceId>,
    /// Its name, for display.
    #[serde(default)]
    pub workspace_name: Option<String>,
    /// Default agent for new tickets.
    #[serde(default)]
    pub agent: Option<AgentId>,
    /// Its name, for display.
    #[serde(default)]
    pub agent_name: Option<String>,
    /// How thread messages are relayed.
    #[serde(default)]
    pub relay_mode: RelayMode,
    /// Extra approvers for this channel (user or user-group ids).
    #[serde(default, deserialize_with = "lenient_approvers")]
    pub approvers: Vec<crate::ids::Approver>,
    /// This channel's command allow rules (case-insensitive regular expressions), besides
    /// `COMMAND_ALLOW`.
    #[serde(default)]
    pub command_allow: Vec<String>,
    /// This channel's command block rules, besides `COMMAND_BLOCK`.
    #[serde(default)]
    pub command_block: Vec<String>,
    /// A ticket opened by a mention inside an existing thread starts without the thread's
    /// earlier messages (`/helpdesk config context off`).
    #[serde(default)]
    pub context_off: bool,
    /// The HelpDesk portal this channel's new tickets go to (`None`: the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portal: Option<String>,
}

/// Stored approvers; one that no longer parses is left out (and logged) rather than making
/// the channel's whole settings unreadable.
fn lenient_approvers<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<crate::ids::Approver>, D::Error> {
    let ids = Vec::<String>::deserialize(deserializer)?;
    Ok(ids
        .into_iter()
        .filter_map(|id| {
            let parsed = crate::ids::Approver::parse(&id);
            if parsed.is_none() {
                tracing::warn!(approver = %id, "a stored approver is not a Slack user or group id; ignored");
            }
            parsed
        })
        .collect())
}

/// A channel, for settings lookups.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChannelRef {
    /// The workspace.
    pub team: TeamId,
    /// The channel.
    pub channel: ChannelId,
}

/// Whether a failed send reached the HelpDesk, as far as the bridge can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Refused before the agent saw it.
    NotDelivered,
    /// It may or may not have arrived.
    Unknown,
    /// It arrived (the failure came after).
    Delivered,
}
