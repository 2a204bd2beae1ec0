//! Every control the bridge puts into Slack, and what using one means.
//!
//! This module owns the wire side of interactivity: each `action_id`, `callback_id` and
//! input block id, and the codec of every button value and modal `private_metadata`. The
//! renderers ([`super::card`], [`super::ticket`], [`super::blocks`], [`super::notices`]) take
//! their ids and encoders from here; the bridge receives what a person did already decoded
//! into an [`Intent`], a [`Submission`] or a [`Shortcut`], the way a server turns a frame
//! into a command before applying it. Nothing here trusts a value for more than naming what
//! was clicked: who may act, and on what, is decided from the store.

use crate::{
    ids::{
        AgentId, Approver, CardId, ChannelId, MessageTs, PendingId, TeamId, ThreadKey, TicketKey, TicketName, UserId,
        WorkspaceId,
    },
    inbound::{ActionItem, MessageShortcut, ViewSubmission},
    model::{Rating, RelayMode, TicketStatus},
};

use super::markup;

/// Action ids of buttons, selects and menus.
pub mod action {
    /// Resend a message that failed.
    pub const RETRY: &str = "retry";
    /// Open the ticket-creation modal for a kept message.
    pub const CREATE: &str = "create_ticket";
    /// Open a new ticket for a thread whose ticket is gone from the HelpDesk.
    pub const REOPEN: &str = "open_new_ticket";
    /// Approve a command on a card.
    pub const APPROVE: &str = "card_approve";
    /// Reject a command on a card (opens the reason modal).
    pub const REJECT: &str = "card_reject";
    /// Ignore a command on a card.
    pub const IGNORE: &str = "card_ignore";
    /// Approve a command on a card, and the same command whenever it is proposed again on
    /// this ticket.
    pub const ALWAYS: &str = "card_always";
    /// Take a decision on a card back.
    pub const CHANGE: &str = "card_change";
    /// Send a card's decisions.
    pub const SUBMIT: &str = "card_submit";
    /// The prefix every card button shares.
    const CARD_PREFIX: &str = "card_";
    /// The header's status select.
    pub const STATUS: &str = "ticket_status";
    /// The header's users select.
    pub const ASSIGN: &str = "ticket_assign";
    /// The "Switch agent" button of headers posted before *Update context* replaced it.
    pub const AGENT: &str = "ticket_agent";
    /// The header's "Update context" button.
    pub const CONTEXT: &str = "ticket_context";
    /// The header's "History" button.
    pub const HISTORY: &str = "ticket_history";
    /// The header's overflow menu.
    pub const MENU: &str = "ticket_menu";
    /// The overflow option that deletes the ticket (an option value, not an action id).
    pub const DELETE: &str = "delete";
    /// "More" under a ticket list.
    pub const LIST_MORE: &str = "list_more";
    /// "Continue here" for a HelpDesk ticket without a thread.
    pub const CONTINUE: &str = "continue_ticket";
    /// "Open a new ticket" for a message in a closed ticket's thread.
    pub const FOLLOW_UP: &str = "follow_up_ticket";
    /// "Open in HelpDesk" link buttons.
    pub const OPEN_HELPDESK: &str = "open_helpdesk";
    /// The 👍 / 👎 feedback buttons under an agent's final reply.
    pub const FEEDBACK: &str = "reply_feedback";

    /// The link button for link `index` under an agent's reply.
    pub fn agent_link(index: usize) -> String {
        format!("agent_link_{index}")
    }

    /// Whether an action id is one of the approval card's.
    pub(super) fn is_card(id: &str) -> bool {
        id.starts_with(CARD_PREFIX)
    }
}

/// Block ids of the blocks that hold controls.
pub mod block {
    /// The ticket header's controls.
    pub const TICKET_CONTROLS: &str = "ticket_controls";
    /// The card's Submit row.
    pub const CARD_SUBMIT: &str = "card-submit";

    /// The section showing command `index` (from 0) of a card.
    pub fn card_command(index: usize) -> String {
        format!("cmd-{index}")
    }

    /// The buttons of command `index` (from 0) of a card.
    pub fn card_buttons(index: usize) -> String {
        format!("act-{index}")
    }
}

/// Callback ids of modals and of the message shortcut.
pub mod callback {
    /// The message shortcut (see `manifest.yml`).
    pub const SHORTCUT: &str = "open_ticket";
    /// The ticket-creation modal.
    pub const CREATE: &str = "create_ticket";
    /// The rejection-reason modal.
    pub const REJECT: &str = "reject_reason";
    /// The status-change modal.
    pub const STATUS: &str = "status_change";
    /// The switch-agent modal (opened before *Update context* replaced it).
    pub const AGENT: &str = "agent_switch";
    /// The *Update context* modal.
    pub const CONTEXT: &str = "update_context";
}

/// Block and action ids of modal inputs, as (block id, action id).
pub mod input {
    /// The creation modal's title.
    pub const TITLE: (&str, &str) = ("title", "title_input");
    /// The creation modal's workspace select.
    pub const WORKSPACE: (&str, &str) = ("workspace", "workspace_select");
    /// The creation and switch-agent modals' agent select.
    pub const AGENT: (&str, &str) = ("agent", "agent_select");
    /// The rejection modal's reason.
    pub const REASON: (&str, &str) = ("reason", "reason_input");
    /// The status modal's comment.
    pub const COMMENT: (&str, &str) = ("comment", "comment_input");
    /// The *Update context* modal's "Share this thread's messages" checkbox.
    pub const SHARE: (&str, &str) = ("share", "share_thread");
}

/// The value of the *Update context* modal's share checkbox.
pub const SHARE_VALUE: &str = "share";

/// A workspace or agent as a form offers it: the portal it is on and its id. The portal is
/// `None` for a value without one (forms rendered before forms named portals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The portal's name, as the form named it.
    pub portal: Option<String>,
    /// The workspace's or agent's id on that portal.
    pub id: String,
}

impl Placed {
    /// The option value for `id` on `portal`. Portal names have no `/` (the configuration
    /// refuses one), so the first `/` ends the name whatever the id holds.
    pub fn value(portal: &str, id: &str) -> String {
        format!("{portal}/{id}")
    }

    /// A value as a form gives it back. A value without `/` names no portal; an older
    /// form's bare id that holds a `/` reads as a portal name, which no configured portal
    /// has, so it is refused rather than sent anywhere.
    fn parse(value: &str) -> Self {
        match value.split_once('/') {
            Some((portal, id)) if !portal.is_empty() => Self { portal: Some(portal.to_owned()), id: id.to_owned() },
            _ => Self { portal: None, id: value.to_owned() },
        }
    }
}

/// Longest rejection reason.
pub const REASON_CHARS: usize = 3000;
/// Characters of the search words a "More" button carries.
const SEARCH_CHARS: usize = 200;

/// What a card button names: the card, the command (none for Submit) and the card version
/// it was rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRef {
    /// The card.
    pub card: CardId,
    /// The command's position, for per-command buttons.
    pub index: Option<usize>,
    /// The version of the card the button was rendered in; `None` for buttons rendered before
    /// cards had versions (they count as outdated).
    pub version: Option<u64>,
}

/// The button value for command `index` (or Submit, with `None`) of card `id` at `version`.
pub fn card_value(id: &str, index: Option<usize>, version: u64) -> String {
    match index {
        Some(index) => format!("{id}:{index}:{version}"),
        None => format!("{id}::{version}"),
    }
}

impl CardRef {
    /// Parses a card button's value. Values of older cards (`id:index`, `id`) parse
    /// without a version.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(':');
        let card = parts.next().filter(|id| !id.is_empty())?;
        let index = match parts.next() {
            None | Some("") => None,
            Some(index) => Some(index.parse().ok()?),
        };
        let version = match parts.next() {
            None => None,
            Some(version) => Some(version.parse().ok()?),
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Self { card: CardId::new(card), index, version })
    }
}

/// Which card button was clicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardButton {
    /// Approve a command.
    Approve,
    /// Approve a command, and the same command on this ticket from now on.
    Always,
    /// Reject a command (asks why first).
    Reject,
    /// Ignore a command.
    Ignore,
    /// Take a decision back.
    Change,
    /// Send the decisions.
    Submit,
    /// A card button this version does not know.
    Unknown,
}

/// A header control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderControl {
    /// The status select; `None` when the chosen value is no status.
    Status(Option<TicketStatus>),
    /// The assignee select; `None` when the chosen value is no user id.
    Assign(Option<UserId>),
    /// "Update context" (and the "Switch agent" button of older headers).
    UpdateContext,
    /// "History".
    History,
    /// The overflow menu's "Delete ticket…".
    Delete,
    /// An overflow option this version does not know.
    Menu,
}

/// What `/helpdesk list` asks for, and what a "More" button carries: a status (or all),
/// words to search for, and where the page starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListArgs {
    /// The status asked for; `None` is all.
    pub status: Option<TicketStatus>,
    /// Words to search for.
    pub text: String,
    /// Where the page starts in the store's index.
    pub cursor: usize,
    /// How many matches earlier pages showed.
    pub shown: usize,
}

impl ListArgs {
    /// `[open|pending|resolved|closed|all] [words]`, as typed after `/helpdesk list`.
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        let (first, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        match (first.eq_ignore_ascii_case("all"), TicketStatus::parse(first)) {
            (true, _) => Self { text: rest.trim().to_owned(), ..Self::default() },
            (false, Some(status)) => Self { status: Some(status), text: rest.trim().to_owned(), ..Self::default() },
            (false, None) => Self { text: text.to_owned(), ..Self::default() },
        }
    }

    /// The "More" button's value: where the next page starts.
    pub fn encode(&self) -> String {
        let status = self.status.map_or("all", TicketStatus::as_str);
        let text: String = self.text.chars().take(SEARCH_CHARS).collect();
        format!("{status}|{}|{}|{text}", self.cursor, self.shown)
    }

    fn decode(value: &str) -> Option<Self> {
        let mut parts = value.splitn(4, '|');
        let status = match parts.next()? {
            "all" => None,
            other => Some(TicketStatus::parse(other)?),
        };
        let cursor = parts.next()?.parse().ok()?;
        let shown = parts.next()?.parse().ok()?;
        Some(Self { status, cursor, shown, text: parts.next().unwrap_or_default().to_owned() })
    }
}

/// The value a feedback button sends for `rating`.
pub fn feedback_value(rating: Rating) -> &'static str {
    rating.as_str()
}

/// The rating a feedback button's value names; `None` for a value no button sends.
fn feedback_rating(value: &str) -> Option<Rating> {
    [Rating::Positive, Rating::Negative].into_iter().find(|r| feedback_value(*r) == value)
}

/// The value of a "Continue in a new thread here" button: the ticket, and who ran `find`.
pub fn continue_value(ticket: &TicketName, finder: &UserId) -> String {
    format!("{ticket} {finder}")
}

/// Where a lifecycle modal's submission applies: the header's thread, and for a status
/// change the transition the person saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModalTarget {
    /// The thread's channel.
    pub channel: ChannelId,
    /// The thread.
    pub thread_ts: MessageTs,
    /// For a status change: from and to, as the person saw them.
    pub transition: Option<(TicketStatus, TicketStatus)>,
}

impl ModalTarget {
    /// The target for `thread`.
    pub fn new(thread: &ThreadKey, transition: Option<(TicketStatus, TicketStatus)>) -> Self {
        Self { channel: thread.channel.clone(), thread_ts: thread.thread_ts.clone(), transition }
    }

    /// The modal's `private_metadata`.
    pub fn encode(&self) -> String {
        let mut out = format!("{} {}", self.channel, self.thread_ts);
        if let Some((from, to)) = self.transition {
            out.push_str(&format!(" {} {}", from.as_str(), to.as_str()));
        }
        out
    }

    fn decode(text: &str) -> Option<Self> {
        let mut words = text.split(' ');
        let channel = ChannelId::new(words.next().filter(|w| !w.is_empty())?);
        let thread_ts = MessageTs::new(words.next()?);
        let transition = match (words.next(), words.next()) {
            (Some(from), Some(to)) => Some((TicketStatus::parse(from)?, TicketStatus::parse(to)?)),
            _ => None,
        };
        Some(Self { channel, thread_ts, transition })
    }

    /// The thread in workspace `team`.
    pub fn thread(&self, team: &TeamId) -> ThreadKey {
        ThreadKey { team: team.clone(), channel: self.channel.clone(), thread_ts: self.thread_ts.clone() }
    }
}

/// What a click meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Retry: resend the kept message.
    Retry {
        /// The kept message.
        pending: PendingId,
    },
    /// *Open a new ticket* for a thread whose ticket is gone from the HelpDesk.
    Reopen {
        /// The kept message.
        pending: PendingId,
    },
    /// *Create ticket*: open the creation modal for a kept message.
    Create {
        /// The kept message.
        pending: PendingId,
    },
    /// A card button; `card` is `None` when its value names no card.
    Card {
        /// Which button.
        button: CardButton,
        /// What it names.
        card: Option<CardRef>,
    },
    /// A ticket header control.
    Header(HeaderControl),
    /// "More" under a list; `None` when the value is not a page.
    ListMore(Option<ListArgs>),
    /// "Continue in a new thread here"; `None` when the value is outdated.
    Continue(Option<(TicketName, UserId)>),
    /// "Open a new ticket" under a closed ticket's message.
    FollowUp {
        /// The kept message.
        pending: PendingId,
    },
    /// 👍 or 👎 under an agent's reply (the clicked message).
    Feedback(Rating),
    /// A link button or anything else that needs no handling.
    None,
}

impl Intent {
    /// What one action of a block action means.
    pub fn from_action(item: &ActionItem) -> Self {
        let value = item.value.clone().unwrap_or_default();
        match item.action_id.as_str() {
            action::RETRY => Self::Retry { pending: PendingId::new(value) },
            action::REOPEN => Self::Reopen { pending: PendingId::new(value) },
            action::CREATE => Self::Create { pending: PendingId::new(value) },
            id if action::is_card(id) => {
                let button = match id {
                    action::APPROVE => CardButton::Approve,
                    action::ALWAYS => CardButton::Always,
                    action::REJECT => CardButton::Reject,
                    action::IGNORE => CardButton::Ignore,
                    action::CHANGE => CardButton::Change,
                    action::SUBMIT => CardButton::Submit,
                    _ => CardButton::Unknown,
                };
                Self::Card { button, card: CardRef::parse(&value) }
            }
            action::LIST_MORE => Self::ListMore(ListArgs::decode(&value)),
            action::CONTINUE => Self::Continue(
                value.split_once(' ').and_then(|(ticket, finder)| Some((TicketName::new(ticket), user_id(finder)?))),
            ),
            action::FOLLOW_UP => Self::FollowUp { pending: PendingId::new(value) },
            action::STATUS => Self::Header(HeaderControl::Status(TicketStatus::parse(&value))),
            action::ASSIGN => Self::Header(HeaderControl::Assign(user_id(&value))),
            action::AGENT | action::CONTEXT => Self::Header(HeaderControl::UpdateContext),
            action::HISTORY => Self::Header(HeaderControl::History),
            action::MENU if value == action::DELETE => Self::Header(HeaderControl::Delete),
            action::MENU => Self::Header(HeaderControl::Menu),
            action::FEEDBACK => feedback_rating(&value).map_or(Self::None, Self::Feedback),
            _ => Self::None,
        }
    }
}

/// A user id as a select gives it (`U…` or `W…`, letters and digits).
fn user_id(value: &str) -> Option<UserId> {
    let valid = value.len() > 1
        && matches!(value.as_bytes()[0], b'U' | b'W')
        && value.bytes().all(|b| b.is_ascii_alphanumeric());
    valid.then(|| UserId::new(value))
}

/// What a modal submission meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submission {
    /// The creation modal.
    Create {
        /// The kept message it creates a ticket for.
        pending: PendingId,
        /// The title, when one was typed.
        title: Option<String>,
        /// The chosen workspace and agent, when both were chosen.
        target: Option<(Placed, Placed)>,
    },
    /// The rejection modal; `card` is `None` unless it names a command at a version.
    Reject {
        /// The card, command and version the modal was opened for.
        card: Option<(CardId, usize, u64)>,
        /// Why, trimmed and bounded; `None` when empty.
        reason: Option<String>,
    },
    /// The status modal.
    Status {
        /// Its thread and transition, when the metadata names them.
        target: Option<ModalTarget>,
        /// The comment, trimmed; `None` when empty.
        comment: Option<String>,
    },
    /// The switch-agent modal.
    Agent {
        /// Its thread, when the metadata names one.
        target: Option<ModalTarget>,
        /// The chosen agent.
        agent: Option<AgentId>,
    },
    /// The *Update context* modal.
    Context {
        /// Its thread and ticket, when the metadata names them.
        target: Option<ContextTarget>,
        /// The chosen workspace and agent, when both were chosen.
        choice: Option<(Placed, Placed)>,
        /// Whether "Share this thread's messages" was ticked.
        share: bool,
    },
    /// A modal this version does not know.
    Unknown,
}

impl Submission {
    /// What a view submission means.
    pub fn from_view(view: &ViewSubmission) -> Self {
        let value = |ids: (&str, &str)| view.values.get(&(ids.0.to_owned(), ids.1.to_owned())).cloned();
        let placed = |ids: (&str, &str)| value(ids).map(|v| Placed::parse(&v));
        match view.callback_id.as_str() {
            callback::CREATE => Self::Create {
                pending: PendingId::new(view.private_metadata.clone()),
                title: value(input::TITLE).filter(|t| !t.trim().is_empty()),
                target: placed(input::WORKSPACE).zip(placed(input::AGENT)),
            },
            callback::REJECT => Self::Reject {
                card: CardRef::parse(&view.private_metadata).and_then(|r| Some((r.card, r.index?, r.version?))),
                reason: value(input::REASON)
                    .map(|r| super::kit::truncate(r.trim(), REASON_CHARS))
                    .filter(|r| !r.is_empty()),
            },
            callback::STATUS => Self::Status {
                target: ModalTarget::decode(&view.private_metadata),
                comment: value(input::COMMENT).map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()),
            },
            callback::AGENT => Self::Agent {
                target: ModalTarget::decode(&view.private_metadata),
                agent: value(input::AGENT).map(AgentId::new),
            },
            callback::CONTEXT => Self::Context {
                target: ContextTarget::decode(&view.private_metadata),
                choice: placed(input::WORKSPACE).zip(placed(input::AGENT)),
                share: value(input::SHARE).is_some_and(|v| v.split(',').any(|o| o == SHARE_VALUE)),
            },
            _ => Self::Unknown,
        }
    }

    /// What the form must show instead of closing, as (block id, message): a workspace and
    /// an agent of two different portals cannot open a ticket. Empty when it may close.
    pub fn form_errors(&self) -> Vec<(&'static str, String)> {
        let (Self::Create { target: Some((workspace, agent)), .. }
        | Self::Context { choice: Some((workspace, agent)), .. }) = self
        else {
            return Vec::new();
        };
        match (&workspace.portal, &agent.portal) {
            (Some(of_workspace), Some(of_agent)) if of_workspace != of_agent => {
                let portal = super::kit::truncate(of_workspace, 60);
                vec![(input::AGENT.0, format!("Choose an agent of portal {portal}, the workspace's portal."))]
            }
            _ => Vec::new(),
        }
    }
}

/// Where an *Update context* submission applies: the header's thread, and the ticket the
/// person saw there, whole (names repeat across portals and workspaces): a thread that has
/// moved on to another ticket since is not changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextTarget {
    /// The thread's channel.
    pub channel: ChannelId,
    /// The thread.
    pub thread_ts: MessageTs,
    /// The ticket the modal was opened for.
    pub ticket: TicketKey,
}

impl ContextTarget {
    /// The target for `ticket` in `thread`.
    pub fn new(thread: &ThreadKey, ticket: &TicketKey) -> Self {
        Self { channel: thread.channel.clone(), thread_ts: thread.thread_ts.clone(), ticket: ticket.clone() }
    }

    /// The modal's `private_metadata`: one field a line (no id holds a line break).
    pub fn encode(&self) -> String {
        let TicketKey { host, workspace, ticket } = &self.ticket;
        format!("{}\n{}\n{host}\n{workspace}\n{ticket}", self.channel, self.thread_ts)
    }

    fn decode(text: &str) -> Option<Self> {
        let fields: Vec<&str> = text.split('\n').collect();
        let [channel, thread_ts, host, workspace, ticket] = fields.as_slice() else { return None };
        if [channel, thread_ts, host, workspace, ticket].iter().any(|f| f.is_empty()) {
            return None;
        }
        Some(Self {
            channel: ChannelId::new(*channel),
            thread_ts: MessageTs::new(*thread_ts),
            ticket: TicketKey {
                host: (*host).to_owned(),
                workspace: WorkspaceId::new(*workspace),
                ticket: TicketName::new(*ticket),
            },
        })
    }

    /// The thread in workspace `team`.
    pub fn thread(&self, team: &TeamId) -> ThreadKey {
        ThreadKey { team: team.clone(), channel: self.channel.clone(), thread_ts: self.thread_ts.clone() }
    }
}

/// What a `/helpdesk …` command asks for, with the rest of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subcommand<'a> {
    /// `new <title> | <first message>`: the title and the first message (trimmed; either may
    /// be empty), or `None` when nothing follows `new`.
    New(Option<(&'a str, &'a str)>),
    /// `config …`.
    Config(&'a str),
    /// `list …`.
    List(&'a str),
    /// `find <TICKET>`.
    Find(&'a str),
    /// `audit <TICKET>`.
    Audit(&'a str),
    /// `help`, or nothing.
    Help,
    /// Anything else (the word, in lower case).
    Unknown(String),
}

impl<'a> Subcommand<'a> {
    /// The subcommand in a slash command's text.
    pub fn parse(text: &'a str) -> Self {
        let text = text.trim();
        let (sub, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        match sub.to_ascii_lowercase().as_str() {
            "new" => {
                let args = rest.trim();
                Self::New((!args.is_empty()).then(|| {
                    let (title, first) = args.split_once('|').unwrap_or((args, ""));
                    (title.trim(), first.trim())
                }))
            }
            "config" => Self::Config(rest.trim()),
            "list" => Self::List(rest),
            "find" => Self::Find(rest),
            "audit" => Self::Audit(rest),
            "" | "help" => Self::Help,
            other => Self::Unknown(other.to_owned()),
        }
    }
}

/// What `/helpdesk config …` asks to set.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ConfigArgs {
    /// A workspace, by name or id.
    pub workspace: Option<String>,
    /// An agent, by name or id.
    pub agent: Option<String>,
    /// People and user groups; `Some(empty)` clears the list.
    pub approvers: Option<Vec<Approver>>,
    /// How thread messages reach the agent.
    pub relay: Option<RelayMode>,
    /// Whether a ticket opened mid-thread takes the thread's earlier messages along.
    pub context: Option<bool>,
    /// The HelpDesk portal this channel's tickets go to.
    pub portal: Option<String>,
    /// Command rules to add to the channel's allow list (`;`-separated, as typed);
    /// `Some("")` clears the list.
    pub allow: Option<String>,
    /// The same for the block list.
    pub block: Option<String>,
}

/// The rest of `/helpdesk config default …`: the Slack workspace's defaults rather than the
/// channel's settings.
pub fn workspace_defaults(text: &str) -> Option<&str> {
    let text = text.trim_start();
    let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    word.eq_ignore_ascii_case("default").then_some(rest)
}

/// `allow <rules>` / `block <rules>` / `… none`: the rest of the text is the rules, whole
/// (spaces and the other settings' keywords may be part of a regular expression). Slack's
/// escaping (`&lt;`, `&gt;`, `&amp;`) is undone, and one pair of backticks around them is
/// taken off.
fn rules_part(text: &str) -> Option<Result<(bool, String), String>> {
    let text = text.trim_start();
    let (keyword, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let allow = match keyword.to_ascii_lowercase().as_str() {
        "allow" => true,
        "block" => false,
        _ => return None,
    };
    let rest = markup::unescape(rest.trim_start());
    let rest = rest.trim_end_matches(['\n', '\r']);
    let rest = rest.strip_prefix('`').and_then(|r| r.strip_suffix('`')).unwrap_or(rest);
    if rest.trim().is_empty() {
        return Some(Err(format!("give a rule (a regular expression) after `{keyword}`, or `none`.")));
    }
    let rules = if rest.trim().eq_ignore_ascii_case("none") { String::new() } else { rest.to_owned() };
    Some(Ok((allow, rules)))
}

/// An approver as typed: a mention (`<@U1|ann>`, `<!subteam^S1|@ops>`) or a bare id.
fn approver_id(word: &str) -> Option<Approver> {
    let inner = word.trim_start_matches('<').trim_end_matches('>');
    let inner = inner.split('|').next().unwrap_or(inner);
    Approver::parse(inner.trim_start_matches('@').trim_start_matches("!subteam^"))
}

impl ConfigArgs {
    /// Splits `workspace <name> agent <name> approvers <@user> <@group>…` (each part
    /// optional); the error says what is wrong, for the person who typed it.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(rules) = rules_part(text) {
            let (allow, rules) = rules?;
            let (allow, block) = if allow { (Some(rules), None) } else { (None, Some(rules)) };
            return Ok(Self { allow, block, ..Self::default() });
        }
        #[derive(Clone, Copy)]
        enum Part {
            Workspace,
            Agent,
            Approvers,
            Relay,
            Context,
            Portal,
        }
        let mut words: [Option<Vec<&str>>; 6] = [None, None, None, None, None, None];
        let mut current: Option<Part> = None;
        for word in text.split_whitespace() {
            let part = match word.to_ascii_lowercase().as_str() {
                "workspace" => Some(Part::Workspace),
                "agent" => Some(Part::Agent),
                "approvers" => Some(Part::Approvers),
                "relay" => Some(Part::Relay),
                "context" => Some(Part::Context),
                "portal" => Some(Part::Portal),
                _ => None,
            };
            match (part, current) {
                (Some(part), _) => {
                    words[part as usize] = Some(Vec::new());
                    current = Some(part);
                }
                (None, Some(part)) => words[part as usize].get_or_insert_with(Vec::new).push(word),
                (None, None) => return Err(format!("I did not understand `{word}`.")),
            }
        }
        let [workspace, agent, approvers, relay, context, portal] = words;
        let name = |words: Option<Vec<&str>>, what: &str| -> Result<Option<String>, String> {
            match words {
                None => Ok(None),
                Some(w) if w.is_empty() => Err(format!("a name is missing after `{what}`.")),
                Some(w) => Ok(Some(w.join(" "))),
            }
        };
        let approvers = match approvers {
            None => None,
            Some(words) if words.len() == 1 && words[0].eq_ignore_ascii_case("none") => Some(Vec::new()),
            Some(words) if words.is_empty() => {
                return Err("name people or groups after `approvers`, or `none`.".to_owned());
            }
            Some(words) => Some(
                words
                    .iter()
                    .map(|w| approver_id(w).ok_or_else(|| format!("`{w}` is not a person or a user group.")))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let relay = match relay.as_deref() {
            None => None,
            Some([mode]) if mode.eq_ignore_ascii_case("mentions") => Some(RelayMode::Mentions),
            Some([mode]) if mode.eq_ignore_ascii_case("all") => Some(RelayMode::All),
            Some(_) => return Err("`relay` takes `mentions` or `all`.".to_owned()),
        };
        let context = match context.as_deref() {
            None => None,
            Some([on]) if on.eq_ignore_ascii_case("on") => Some(true),
            Some([off]) if off.eq_ignore_ascii_case("off") => Some(false),
            Some(_) => return Err("`context` takes `on` or `off`.".to_owned()),
        };
        Ok(Self {
            workspace: name(workspace, "workspace")?,
            agent: name(agent, "agent")?,
            approvers,
            relay,
            context,
            portal: name(portal, "portal")?,
            allow: None,
            block: None,
        })
    }
}

/// What a message shortcut meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortcut {
    /// *Open HelpDesk ticket* on a message.
    OpenTicket,
}

impl Shortcut {
    /// What a shortcut means; `None` for one this version does not know.
    pub fn from_shortcut(shortcut: &MessageShortcut) -> Option<Self> {
        (shortcut.callback_id == callback::SHORTCUT).then_some(Self::OpenTicket)
    }
}

/// The `private_metadata` of the rejection modal for command `index` of `card` at
/// `version`.
pub fn reject_metadata(card: &CardId, index: usize, version: u64) -> String {
    card_value(card.as_str(), Some(index), version)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn click(action_id: &str, value: &str) -> Intent {
        Intent::from_action(&ActionItem {
            action_id: action_id.to_owned(),
            block_id: None,
            value: Some(value.to_owned()),
        })
    }

    #[test]
    fn values_round_trip_with_the_version() {
        let click = |card: &str, index, version| Some(CardRef { card: CardId::new(card), index, version });
        assert_eq!(CardRef::parse(&card_value("abc", Some(3), 7)), click("abc", Some(3), Some(7)));
        assert_eq!(CardRef::parse(&card_value("abc", None, 7)), click("abc", None, Some(7)));
        assert_eq!(CardRef::parse("abc:3"), click("abc", Some(3), None), "an old card's button has no version");
        assert_eq!(CardRef::parse("abc"), click("abc", None, None));
        assert_eq!(CardRef::parse("abc:x"), None);
        assert_eq!(CardRef::parse("abc:1:2:3"), None);
        assert_eq!(CardRef::parse(""), None);
    }

    #[test]
    fn config_arguments_parse() {
        assert_eq!(
            ConfigArgs::parse("workspace dev ops agent generic-agent"),
            Ok(ConfigArgs {
                workspace: Some("dev ops".to_owned()),
                agent: Some("generic-agent".to_owned()),
                approvers: None,
                relay: None,
                context: None,
                portal: None,
                allow: None,
                block: None,
            })
        );
        assert_eq!(ConfigArgs::parse("context OFF"), Ok(ConfigArgs { context: Some(false), ..ConfigArgs::default() }));
        assert_eq!(ConfigArgs::parse("context on"), Ok(ConfigArgs { context: Some(true), ..ConfigArgs::default() }));
        assert!(ConfigArgs::parse("context").is_err() && ConfigArgs::parse("context maybe").is_err());
        assert_eq!(
            ConfigArgs::parse("agent k8s"),
            Ok(ConfigArgs { agent: Some("k8s".to_owned()), ..ConfigArgs::default() })
        );
        assert_eq!(ConfigArgs::parse(""), Ok(ConfigArgs::default()));
        assert_eq!(
            ConfigArgs::parse("approvers <@U12|ann> <!subteam^S9|@ops> W3")
                .map(|a| a.approvers.map(|list| list.iter().map(ToString::to_string).collect::<Vec<_>>())),
            Ok(Some(vec!["U12".to_owned(), "S9".to_owned(), "W3".to_owned()]))
        );
        assert_eq!(ConfigArgs::parse("approvers none").map(|a| a.approvers), Ok(Some(Vec::new())));
        assert_eq!(ConfigArgs::parse("relay mentions").map(|a| a.relay), Ok(Some(RelayMode::Mentions)));
        assert_eq!(ConfigArgs::parse("relay ALL").map(|a| a.relay), Ok(Some(RelayMode::All)));
        assert!(ConfigArgs::parse("relay some").is_err());
        assert!(ConfigArgs::parse("approvers bob").is_err());
        assert!(ConfigArgs::parse("devops").is_err());
        assert!(ConfigArgs::parse("workspace").is_err());
    }

    #[test]
    fn rule_arguments_keep_the_rules_whole() {
        let allow = |text: &str| ConfigArgs::parse(text).map(|a| a.allow);
        // Spaces and other settings' keywords are part of the rule; backticks keep a space
        // at its end; Slack's escapes are undone.
        assert_eq!(allow("allow `^kubectl get `"), Ok(Some("^kubectl get ".to_owned())));
        assert_eq!(allow("ALLOW ^helm list agent x"), Ok(Some("^helm list agent x".to_owned())));
        assert_eq!(
            ConfigArgs::parse("block ^curl .* &gt; /etc;rm").map(|a| a.block),
            Ok(Some("^curl .* > /etc;rm".to_owned()))
        );
        assert_eq!(allow("allow none"), Ok(Some(String::new())), "none clears");
        assert!(allow("allow").is_err() && allow("block   ").is_err(), "a rule is needed");
    }

    /// The ids Slack knows the app by: the shortcut's is in `manifest.yml`, and buttons and
    /// modals already posted carry the others, so none may change.
    #[test]
    fn wire_ids_stay_what_slack_has() {
        assert!(include_str!("../../manifest.yml").contains(&format!("callback_id: {}", callback::SHORTCUT)));
        let actions = [
            action::RETRY,
            action::CREATE,
            action::REOPEN,
            action::APPROVE,
            action::REJECT,
            action::IGNORE,
            action::CHANGE,
            action::SUBMIT,
            action::STATUS,
            action::ASSIGN,
            action::AGENT,
            action::CONTEXT,
            action::HISTORY,
            action::MENU,
            action::DELETE,
            action::LIST_MORE,
            action::CONTINUE,
            action::FOLLOW_UP,
            action::OPEN_HELPDESK,
            action::FEEDBACK,
        ];
        assert_eq!(
            actions,
            [
                "retry",
                "create_ticket",
                "open_new_ticket",
                "card_approve",
                "card_reject",
                "card_ignore",
                "card_change",
                "card_submit",
                "ticket_status",
                "ticket_assign",
                "ticket_agent",
                "ticket_context",
                "ticket_history",
                "ticket_menu",
                "delete",
                "list_more",
                "continue_ticket",
                "follow_up_ticket",
                "open_helpdesk",
                "reply_feedback",
            ]
        );
        assert_eq!([feedback_value(Rating::Positive), feedback_value(Rating::Negative)], ["positive", "negative"]);
        assert_eq!(
            [
                callback::SHORTCUT,
                callback::CREATE,
                callback::REJECT,
                callback::STATUS,
                callback::AGENT,
                callback::CONTEXT
            ],
            ["open_ticket", "create_ticket", "reject_reason", "status_change", "agent_switch", "update_context"]
        );
        assert_eq!(
            [input::TITLE, input::WORKSPACE, input::AGENT, input::REASON, input::COMMENT, input::SHARE],
            [
                ("title", "title_input"),
                ("workspace", "workspace_select"),
                ("agent", "agent_select"),
                ("reason", "reason_input"),
                ("comment", "comment_input"),
                ("share", "share_thread")
            ]
        );
        assert_eq!((SHARE_VALUE, Placed::value("qa", "w/1")), ("share", "qa/w/1".to_owned()));
        assert_eq!(
            [block::TICKET_CONTROLS, block::CARD_SUBMIT, &block::card_command(2), &block::card_buttons(2)],
            ["ticket_controls", "card-submit", "cmd-2", "act-2"]
        );
    }

    #[test]
    fn subcommands_parse() {
        assert_eq!(Subcommand::parse(" NEW  Disk full | web-1 "), Subcommand::New(Some(("Disk full", "web-1"))));
        assert_eq!(Subcommand::parse("new Disk full"), Subcommand::New(Some(("Disk full", ""))));
        assert_eq!(Subcommand::parse("new  "), Subcommand::New(None));
        assert_eq!(Subcommand::parse("list open disk"), Subcommand::List("open disk"));
        assert_eq!(Subcommand::parse(""), Subcommand::Help);
        assert_eq!(Subcommand::parse("Frob x"), Subcommand::Unknown("frob".to_owned()));
    }

    #[test]
    fn clicks_decode_into_intents() {
        assert_eq!(click("retry", "p1"), Intent::Retry { pending: PendingId::new("p1") });
        assert_eq!(
            click("card_approve", "c1:0:4"),
            Intent::Card {
                button: CardButton::Approve,
                card: Some(CardRef { card: CardId::new("c1"), index: Some(0), version: Some(4) })
            }
        );
        assert_eq!(click("card_new_kind", ":1"), Intent::Card { button: CardButton::Unknown, card: None });
        assert_eq!(
            click("ticket_status", "resolved"),
            Intent::Header(HeaderControl::Status(Some(TicketStatus::Resolved)))
        );
        assert_eq!(click("ticket_assign", "U123"), Intent::Header(HeaderControl::Assign(Some(UserId::new("U123")))));
        assert_eq!(click("ticket_assign", "C123"), Intent::Header(HeaderControl::Assign(None)));
        assert_eq!(click("ticket_menu", "delete"), Intent::Header(HeaderControl::Delete));
        assert_eq!(click("ticket_context", "DEVOPS-1"), Intent::Header(HeaderControl::UpdateContext));
        assert_eq!(click("ticket_agent", "DEVOPS-1"), Intent::Header(HeaderControl::UpdateContext), "older headers");
        assert_eq!(
            click("continue_ticket", "DEVOPS-1 U9"),
            Intent::Continue(Some((TicketName::new("DEVOPS-1"), UserId::new("U9"))))
        );
        assert_eq!(click("continue_ticket", "DEVOPS-1"), Intent::Continue(None));
        assert_eq!(click("continue_ticket", "DEVOPS-1 <!channel>"), Intent::Continue(None), "the finder is a user id");
        assert_eq!(click("open_helpdesk", ""), Intent::None);
        assert_eq!(click("reply_feedback", "positive"), Intent::Feedback(Rating::Positive));
        assert_eq!(click("reply_feedback", "negative"), Intent::Feedback(Rating::Negative));
        assert_eq!(click("reply_feedback", "Positive"), Intent::None, "only the values the buttons send");
        assert_eq!(click("reply_feedback", ""), Intent::None);
    }

    #[test]
    fn list_arguments_parse_and_round_trip() {
        assert_eq!(ListArgs::parse(""), ListArgs::default());
        assert_eq!(ListArgs::parse("open"), ListArgs { status: Some(TicketStatus::Open), ..ListArgs::default() });
        assert_eq!(ListArgs::parse("ALL disk full"), ListArgs { text: "disk full".into(), ..ListArgs::default() });
        assert_eq!(
            ListArgs::parse("Resolved  vpn"),
            ListArgs { status: Some(TicketStatus::Resolved), text: "vpn".into(), ..ListArgs::default() }
        );
        assert_eq!(ListArgs::parse("disk"), ListArgs { text: "disk".into(), ..ListArgs::default() });
        let args = ListArgs { status: Some(TicketStatus::Pending), text: "a|b c".into(), cursor: 30, shown: 20 };
        assert_eq!(ListArgs::decode(&args.encode()), Some(args));
        assert_eq!(ListArgs::decode("nonsense"), None);
        assert_eq!(ListArgs::decode("open|x|0|"), None);
    }

    #[test]
    fn modal_metadata_round_trips_and_refuses_garbage() {
        let thread =
            ThreadKey { team: TeamId::new("T1"), channel: ChannelId::new("C1"), thread_ts: MessageTs::new("1.2") };
        let target = ModalTarget::new(&thread, Some((TicketStatus::Pending, TicketStatus::Resolved)));
        let back = ModalTarget::decode(&target.encode()).unwrap();
        assert_eq!(back.thread(&TeamId::new("T1")), thread);
        assert_eq!(back.transition, Some((TicketStatus::Pending, TicketStatus::Resolved)));
        assert!(ModalTarget::decode("").is_none());
        assert!(ModalTarget::decode("C1 1.2 open nonsense").is_none());
        assert!(ModalTarget::decode(&ModalTarget::new(&thread, None).encode()).unwrap().transition.is_none());
        let key = TicketKey {
            host: "https://qa.example".to_owned(),
            workspace: WorkspaceId::new("ws 1"),
            ticket: TicketName::new("DEVOPS-1"),
        };
        let target = ContextTarget::new(&thread, &key);
        assert_eq!(ContextTarget::decode(&target.encode()), Some(target));
        assert_eq!(ContextTarget::decode("C1\n1.2\nh\nw"), None, "a context target names its whole ticket");
        assert_eq!(ContextTarget::decode("C1\n1.2\nh\n\nD-1"), None);
        assert_eq!(ContextTarget::decode("C1\n1.2\nh\nw\nD-1\nmore"), None);
    }

    #[test]
    fn submissions_decode_their_fields() {
        let view = |callback: &str, metadata: &str, values: &[((&str, &str), &str)]| ViewSubmission {
            user: UserId::new("U1"),
            user_team: None,
            view_id: "V1".to_owned(),
            callback_id: callback.to_owned(),
            private_metadata: metadata.to_owned(),
            values: values
                .iter()
                .map(|((block, action), value)| ((block.to_string(), action.to_string()), value.to_string()))
                .collect::<BTreeMap<_, _>>(),
        };
        assert_eq!(
            Submission::from_view(&view("reject_reason", "c1:2:5", &[(input::REASON, "  too risky ")])),
            Submission::Reject { card: Some((CardId::new("c1"), 2, 5)), reason: Some("too risky".to_owned()) }
        );
        assert_eq!(
            Submission::from_view(&view("reject_reason", "c1::5", &[(input::REASON, "  ")])),
            Submission::Reject { card: None, reason: None }
        );
        assert_eq!(
            Submission::from_view(&view("create_ticket", "p1", &[(input::WORKSPACE, "w"), (input::TITLE, " ")])),
            Submission::Create { pending: PendingId::new("p1"), title: None, target: None }
        );
        let placed = |portal: Option<&str>, id: &str| Placed { portal: portal.map(str::to_owned), id: id.to_owned() };
        let create = view("create_ticket", "p1", &[(input::WORKSPACE, "w1"), (input::AGENT, "qa/a1")]);
        let create = Submission::from_view(&create);
        assert_eq!(
            create,
            Submission::Create {
                pending: PendingId::new("p1"),
                title: None,
                target: Some((placed(None, "w1"), placed(Some("qa"), "a1")))
            },
            "a bare value (an older form) names no portal"
        );
        assert!(create.form_errors().is_empty());
        let context = [(input::WORKSPACE, "prod/w1"), (input::AGENT, "qa/a1"), (input::SHARE, "share")];
        let context = Submission::from_view(&view("update_context", "C1\n1.2\nh\nw\nD-1", &context));
        assert_eq!(
            context,
            Submission::Context {
                target: Some(ContextTarget {
                    channel: ChannelId::new("C1"),
                    thread_ts: MessageTs::new("1.2"),
                    ticket: TicketKey {
                        host: "h".to_owned(),
                        workspace: WorkspaceId::new("w"),
                        ticket: TicketName::new("D-1")
                    }
                }),
                choice: Some((placed(Some("prod"), "w1"), placed(Some("qa"), "a1"))),
                share: true,
            }
        );
        assert_eq!(
            context.form_errors(),
            [("agent", "Choose an agent of portal prod, the workspace's portal.".to_owned())]
        );
        let unshared = Submission::from_view(&view("update_context", "C1\n1.2\nh\nw\nD-1", &[(input::SHARE, "")]));
        assert!(matches!(unshared, Submission::Context { share: false, choice: None, .. }));
        assert_eq!(Submission::from_view(&view("other", "", &[])), Submission::Unknown);
    }
}
