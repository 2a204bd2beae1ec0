//! The one inbound type: what a person did in Slack, whatever the transport.
//!
//! HTTP requests and Socket Mode envelopes are both turned into an [`Inbound`] by
//! `slack::ingress`; everything after that (dedup, ordering, the bridge) sees only this.
//! It carries no wire JSON: ids are newtypes, text is text. The inbox stores it serialized
//! (serde's derived form, a storage format like the store's records). One kind is the
//! service's own, never Slack's: [`InboundKind::PolicySubmission`], queued by the bridge
//! (`dispatch::enqueue`) so that it is handled durably and in its thread's order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{CardId, ChannelId, EnterpriseId, EventId, MessageTs, TeamId, ThreadKey, UserId};

/// Something a person did in Slack that the bridge may act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inbound {
    /// The workspace it happened in.
    pub team: TeamId,
    /// Its Enterprise Grid organisation, when Slack named one: an org-wide installation
    /// serves the workspace when it has none of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enterprise: Option<EnterpriseId>,
    /// For an event, the installation Slack delivered it for (its authorization): in a
    /// channel shared between workspaces, `team` may be the channel's host, not the
    /// installation whose token must answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorized: Option<Authorized>,
    /// What happened.
    pub kind: InboundKind,
}

/// The installation an event was delivered for, as its authorization names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorized {
    /// The installation's workspace (Slack names none for an org-wide installation).
    pub team: Option<TeamId>,
    /// Its organisation, on Enterprise Grid.
    pub enterprise: Option<EnterpriseId>,
    /// An org-wide installation.
    pub org_wide: bool,
}

/// The kinds of inbound item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InboundKind {
    /// A human message: a mention, a DM, or a reply in a thread.
    Message(UserMessage),
    /// A `/helpdesk …` slash command.
    Command(SlashCommand),
    /// A button, menu or select was used on a message or a view.
    Action(BlockAction),
    /// A modal was submitted.
    ViewSubmission(ViewSubmission),
    /// The message shortcut was used on a message.
    Shortcut(MessageShortcut),
    /// A reader pressed Stop on a streamed reply (`agent_session_stopped`).
    StreamStopped {
        /// Where.
        channel: ChannelId,
        /// The streamed messages it stopped.
        messages: Vec<MessageTs>,
        /// Who pressed it, when Slack said.
        user: Option<UserId>,
        /// The event that carried it.
        event_id: EventId,
    },
    /// The service's own: a card whose every command the command policy decided, to be
    /// submitted once the turn that proposed it has ended (it waits behind that turn in the
    /// thread's order).
    PolicySubmission {
        /// The card.
        card: CardId,
        /// The ticket's thread, whose order it waits in.
        thread: ThreadKey,
    },
    /// A person edited or deleted one of their messages (`message_changed` with new text,
    /// `message_deleted`).
    MessageChanged(MessageChange),
    /// Someone opened the app's Home tab.
    HomeOpened {
        /// Who.
        user: UserId,
        /// The event that carried it.
        event_id: EventId,
    },
    /// The app was uninstalled from the item's workspace, or its bot token revoked
    /// (`app_uninstalled`, `tokens_revoked`): the installation goes.
    Uninstalled {
        /// Whether it was the organisation's org-wide installation.
        org_wide: bool,
        /// When Slack sent it (Unix seconds): an installation made after it stays. Read
        /// from an item stored before it was kept: any time (the removal goes ahead).
        #[serde(default = "any_time")]
        event_time: i64,
        /// The event that carried it.
        event_id: EventId,
    },
}

/// An uninstall whose time is not known: later than any installation.
fn any_time() -> i64 {
    i64::MAX / 1000
}

/// An edit or deletion of a person's message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageChange {
    /// The event that carried it.
    pub event_id: EventId,
    /// Where.
    pub channel: ChannelId,
    /// The message that changed.
    pub ts: MessageTs,
    /// The thread it is in, if it is a reply.
    pub thread_ts: Option<MessageTs>,
    /// Who wrote it, when Slack says.
    pub user: Option<UserId>,
    /// Its new text, in Slack markup; `None` when it was deleted.
    pub text: Option<String>,
}

impl MessageChange {
    /// The thread the message is in (its own, if it is not a reply).
    pub fn thread(&self, team: &TeamId) -> ThreadKey {
        ThreadKey {
            team: team.clone(),
            channel: self.channel.clone(),
            thread_ts: self.thread_ts.clone().unwrap_or_else(|| self.ts.clone()),
        }
    }
}

/// A human message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserMessage {
    /// The event that carried it, when it came through the Events API.
    pub event_id: Option<EventId>,
    /// Where.
    pub channel: ChannelId,
    /// Who wrote it.
    pub user: UserId,
    /// The message's own timestamp.
    pub ts: MessageTs,
    /// The thread it is in, if it is a reply.
    pub thread_ts: Option<MessageTs>,
    /// Its text, in Slack markup.
    pub text: String,
    /// Whether it mentions the bot.
    pub mentions_bot: bool,
    /// Whether it is in a direct message with the bot.
    pub is_dm: bool,
    /// Files shared with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<SharedFile>,
}

/// A file shared with a message, as the event describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedFile {
    /// Its name.
    pub name: String,
    /// Its MIME type, as Slack says (may be empty).
    pub mimetype: String,
    /// Slack's file type (`text`, `yaml`, `png`, …; may be empty).
    pub filetype: String,
    /// Its size in bytes.
    pub size: u64,
    /// Where its bytes are (`url_private_download`), read with the bot token.
    pub url: Option<String>,
}

impl UserMessage {
    /// The thread this message belongs to (its own, if it starts one).
    pub fn thread(&self, team: &TeamId) -> ThreadKey {
        ThreadKey {
            team: team.clone(),
            channel: self.channel.clone(),
            thread_ts: self.thread_ts.clone().unwrap_or_else(|| self.ts.clone()),
        }
    }
}

/// An interaction's `response_url`: anyone holding it may post answers for 30 minutes, so
/// it is handled as a secret (its `Debug` does not show it).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseUrl(String);

impl ResponseUrl {
    /// Wraps the URL Slack gave.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }
}

impl std::ops::Deref for ResponseUrl {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ResponseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseUrl([redacted])")
    }
}

/// A slash command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlashCommand {
    /// Where it was typed.
    pub channel: ChannelId,
    /// Who typed it.
    pub user: UserId,
    /// The command, e.g. `/helpdesk`.
    pub command: String,
    /// Everything after the command.
    pub text: String,
    /// For opening a modal (valid for 3 s).
    pub trigger_id: String,
    /// For answering (5 times within 30 minutes).
    pub response_url: ResponseUrl,
}

/// One action (button, select, …) a person took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionItem {
    /// The element's `action_id`.
    pub action_id: String,
    /// The block it is in.
    pub block_id: Option<String>,
    /// A button's value, or a select's chosen value.
    pub value: Option<String>,
}

/// Actions on a message or view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockAction {
    /// Who clicked.
    pub user: UserId,
    /// The clicker's own workspace (differs from the team for Slack Connect guests).
    pub user_team: Option<TeamId>,
    /// The channel of the message clicked on, if any.
    pub channel: Option<ChannelId>,
    /// The message clicked on, if any.
    pub message_ts: Option<MessageTs>,
    /// That message's thread, if it is a reply.
    pub thread_ts: Option<MessageTs>,
    /// The view clicked in, if any: (view id, private metadata).
    pub view: Option<(String, String)>,
    /// For opening a modal (valid for 3 s).
    pub trigger_id: String,
    /// For answering.
    pub response_url: Option<ResponseUrl>,
    /// What was clicked (usually one).
    pub actions: Vec<ActionItem>,
}

/// A modal submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewSubmission {
    /// Who submitted.
    pub user: UserId,
    /// The submitter's own workspace.
    pub user_team: Option<TeamId>,
    /// The view's id.
    pub view_id: String,
    /// The view's `callback_id`.
    pub callback_id: String,
    /// The view's private metadata.
    pub private_metadata: String,
    /// Input values by (block id, action id).
    #[serde(with = "entries")]
    pub values: BTreeMap<(String, String), String>,
}

/// The message shortcut, used on a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageShortcut {
    /// Who used it.
    pub user: UserId,
    /// The shortcut's `callback_id`.
    pub callback_id: String,
    /// Where the message is.
    pub channel: ChannelId,
    /// The message.
    pub message_ts: MessageTs,
    /// The message's thread, if it is a reply.
    pub thread_ts: Option<MessageTs>,
    /// The message's text.
    pub text: String,
    /// Who wrote the message.
    pub author: Option<UserId>,
    /// For opening a modal.
    pub trigger_id: String,
    /// For answering.
    pub response_url: ResponseUrl,
}

/// A map with compound keys, stored as a list of entries (JSON keys are strings only).
mod entries {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    type Values = BTreeMap<(String, String), String>;

    pub(super) fn serialize<S: Serializer>(values: &Values, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(values.iter())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Values, D::Error> {
        Ok(Vec::<((String, String), String)>::deserialize(deserializer)?.into_iter().collect())
    }
}

impl Inbound {
    /// The key under which handling this item is recorded, so it is handled once across
    /// retries, replicas and double deliveries. A message is keyed by where it is, not by
    /// its event: Slack delivers a mention both as `app_mention` and as `message`, with
    /// different event ids and the same channel and ts.
    pub fn idempotency_key(&self) -> String {
        match &self.kind {
            InboundKind::Message(m) => format!("msg:{}:{}:{}", self.team, m.channel, m.ts),
            InboundKind::Command(c) => format!("cmd:{}", c.trigger_id),
            InboundKind::Action(a) => format!("act:{}", a.trigger_id),
            InboundKind::ViewSubmission(v) => format!("view:{}", v.view_id),
            InboundKind::Shortcut(s) => format!("short:{}", s.trigger_id),
            InboundKind::HomeOpened { event_id, .. }
            | InboundKind::StreamStopped { event_id, .. }
            | InboundKind::Uninstalled { event_id, .. } => format!("evt:{event_id}"),
            InboundKind::MessageChanged(change) => format!("evt:{}", change.event_id),
            InboundKind::PolicySubmission { card, .. } => format!("policy:{card}"),
        }
    }

    /// Items with the same key are handled one after another, in arrival order; items
    /// with different keys run in parallel. Messages (and the shortcut, which may open a
    /// ticket) order by thread; a card's clicks order by the card's message, so they never
    /// wait behind an agent turn; commands and views are independent.
    pub fn order_key(&self) -> String {
        match &self.kind {
            InboundKind::Message(m) => format!("thread:{}", m.thread(&self.team)),
            // Behind the relay of the message it changes.
            InboundKind::MessageChanged(change) => format!("thread:{}", change.thread(&self.team)),
            InboundKind::Shortcut(s) => {
                format!("thread:{}:{}:{}", self.team, s.channel, s.thread_ts.as_ref().unwrap_or(&s.message_ts))
            }
            InboundKind::Action(a) => match (&a.channel, &a.message_ts) {
                (Some(channel), Some(ts)) => format!("msg:{}:{channel}:{ts}", self.team),
                _ => format!("act:{}", a.trigger_id),
            },
            InboundKind::Command(c) => format!("cmd:{}", c.trigger_id),
            InboundKind::ViewSubmission(v) => format!("view:{}", v.view_id),
            InboundKind::HomeOpened { user, .. } => format!("home:{}:{user}", self.team),
            InboundKind::Uninstalled { .. } => format!("install:{}", self.team),
            // Not behind the thread: the turn it stops is what holds the thread.
            InboundKind::StreamStopped { event_id, .. } => format!("stop:{event_id}"),
            // Behind the thread: after the turn that proposed the card.
            InboundKind::PolicySubmission { thread, .. } => format!("thread:{thread}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind survives the inbox: what is stored reads back as the same item.
    #[test]
    fn items_read_back_as_they_were_stored() {
        let team = TeamId::new("T1");
        let kinds = [
            InboundKind::Uninstalled { org_wide: true, event_time: 1_700_000_000, event_id: EventId::new("Ev8") },
            InboundKind::MessageChanged(MessageChange {
                event_id: EventId::new("Ev9"),
                channel: ChannelId::new("C1"),
                ts: MessageTs::new("1.3"),
                thread_ts: Some(MessageTs::new("1.2")),
                user: Some(UserId::new("U1")),
                text: None,
            }),
            InboundKind::Message(UserMessage {
                event_id: Some(EventId::new("Ev1")),
                channel: ChannelId::new("C1"),
                user: UserId::new("U1"),
                ts: MessageTs::new("1.2"),
                thread_ts: None,
                text: "héllo 🙂".to_owned(),
                mentions_bot: true,
                is_dm: false,
                files: Vec::new(),
            }),
            InboundKind::ViewSubmission(ViewSubmission {
                user: UserId::new("U1"),
                user_team: None,
                view_id: "V1".to_owned(),
                callback_id: "cb".to_owned(),
                private_metadata: "{}".to_owned(),
                values: BTreeMap::from([(("b".to_owned(), "a".to_owned()), "v".to_owned())]),
            }),
            InboundKind::HomeOpened { user: UserId::new("U1"), event_id: EventId::new("Ev2") },
            InboundKind::StreamStopped {
                channel: ChannelId::new("C1"),
                messages: vec![MessageTs::new("1.2")],
                user: Some(UserId::new("U1")),
                event_id: EventId::new("Ev3"),
            },
        ];
        for kind in kinds {
            let item = Inbound { team: team.clone(), enterprise: None, authorized: None, kind };
            let stored = serde_json::to_vec(&item).unwrap();
            assert_eq!(serde_json::from_slice::<Inbound>(&stored).unwrap(), item);
        }
    }

    #[test]
    fn a_response_url_never_shows_in_debug_output() {
        let command = SlashCommand {
            channel: ChannelId::new("C1"),
            user: UserId::new("U1"),
            command: "/helpdesk".to_owned(),
            text: "list".to_owned(),
            trigger_id: "t".to_owned(),
            response_url: ResponseUrl::new("https://hooks.slack.com/commands/T1/1/SECRETPART"),
        };
        let debug = format!("{command:?}");
        assert!(!debug.contains("SECRETPART") && debug.contains("[redacted]"), "{debug}");
        assert_eq!(&*command.response_url, "https://hooks.slack.com/commands/T1/1/SECRETPART");
    }
}
