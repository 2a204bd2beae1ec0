//! Slack payloads in, [`Inbound`] out: the only place inbound Slack JSON is read.
//!
//! The same functions serve both transports: an HTTP body and a Socket Mode envelope's
//! payload carry the same JSON. Parsing uses slack-morphism's models. Filtering happens
//! here too, before anything is stored or queued: the bot's own messages and other bots'
//! messages (Bolt's rule: the bot's user id, or any `bot_id`), message subtypes that are
//! not human input, and top-level channel chatter that does not mention the bot.

use std::collections::BTreeMap;

use serde_json::Value;
use slack_morphism::prelude::{
    SlackCommandEvent, SlackEventCallbackBody, SlackInteractionActionContainer, SlackInteractionEvent,
    SlackMessageEventType, SlackPushEventCallback, SlackView, SlackViewStateValue,
};

use crate::{
    ids::{ChannelId, EnterpriseId, EventId, MessageTs, TeamId, UserId},
    inbound::{
        ActionItem, Authorized, BlockAction, Inbound, InboundKind, MessageChange, MessageShortcut, ResponseUrl,
        SharedFile, SlashCommand, UserMessage, ViewSubmission,
    },
    slack::identity::BotIdentity,
};

/// What a Slack payload turned out to be.
// The large variant is the common one; boxing it would only add an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// The Events API URL handshake; answer with this challenge.
    Challenge(String),
    /// Something to handle.
    Inbound(Inbound),
    /// Nothing to do, and why (for debug logs and metrics).
    Ignored(&'static str),
    /// An event arrived before the bot knows who it is (`auth.test` pending); Slack should
    /// deliver it again later.
    NotReady,
    /// A form submitted with inputs it cannot have: Slack keeps the form open and shows
    /// these (block id, message) under the inputs; nothing is handled.
    FormErrors(Vec<(&'static str, String)>),
}

/// A body that is not what Slack sends at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed Slack payload: {0}")]
pub struct Malformed(pub String);

/// Parses an Events API body (HTTP) or `events_api` envelope payload (Socket Mode).
pub fn parse_event(body: &[u8], me: Option<&BotIdentity>) -> Result<Parsed, Malformed> {
    let value: Value = serde_json::from_slice(body).map_err(|e| Malformed(e.to_string()))?;
    event_from_value(value, me)
}

/// Like [`parse_event`] where no `SLACK_BOT_TOKEN` says who the bot is (every workspace is
/// served by its installation): each event's own authorization, its installation's bot
/// user, does.
pub fn parse_installed_event(body: &[u8]) -> Result<Parsed, Malformed> {
    let value: Value = serde_json::from_slice(body).map_err(|e| Malformed(e.to_string()))?;
    let me = authorization(&value).map(|(installed, user)| BotIdentity {
        user_id: user,
        bot_id: None,
        // An org-wide installation's authorization names no workspace: the event's does.
        team_id: installed
            .team
            .or_else(|| text_at(&value, "team_id").map(TeamId::new))
            .unwrap_or_else(|| TeamId::new("")),
    });
    match (&me, value.get("type").and_then(Value::as_str)) {
        (None, Some("event_callback")) if uninstalled(&value).is_none() => {
            Ok(Parsed::Ignored("event without an authorization"))
        }
        _ => event_from_value(value, me.as_ref()),
    }
}

/// Like [`parse_event`], from an already-decoded JSON value.
pub fn event_from_value(value: Value, me: Option<&BotIdentity>) -> Result<Parsed, Malformed> {
    if !value.is_object() {
        return Err(Malformed("not a JSON object".to_owned()));
    }
    // The installation the delivery is for names the organisation; the event's own field
    // may be a shared channel's host's.
    let authorized = authorization(&value).map(|(installed, _)| installed);
    let enterprise = match &authorized {
        Some(installed) => installed.enterprise.as_ref().map(|e| e.as_str().to_owned()),
        None => text_at(&value, "enterprise_id"),
    };
    event_in(value, me).map(|parsed| {
        let mut parsed = parsed.in_enterprise(enterprise);
        if let Parsed::Inbound(item) = &mut parsed {
            item.authorized = authorized;
        }
        parsed
    })
}

/// The installation an event was delivered for, and its bot user: the event's first
/// authorization, when it is a bot's (the one this app has there).
fn authorization(event: &Value) -> Option<(Authorized, UserId)> {
    let authorization = event.pointer("/authorizations/0")?;
    if authorization.get("is_bot").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    let text = |name: &str| authorization.get(name).and_then(Value::as_str).filter(|v| !v.is_empty());
    let user = UserId::new(text("user_id")?);
    let installed = Authorized {
        team: text("team_id").map(TeamId::new),
        enterprise: text("enterprise_id").map(EnterpriseId::new),
        org_wide: authorization.get("is_enterprise_install").and_then(Value::as_bool) == Some(true),
    };
    Some((installed, user))
}

fn event_in(value: Value, me: Option<&BotIdentity>) -> Result<Parsed, Malformed> {
    match value.get("type").and_then(Value::as_str) {
        Some("url_verification") => {
            let challenge = value.get("challenge").and_then(Value::as_str).unwrap_or_default();
            Ok(Parsed::Challenge(challenge.to_owned()))
        }
        Some("event_callback") => {
            if let Some(parsed) = uninstalled(&value) {
                return Ok(parsed);
            }
            let bot = bot_for(&value, me);
            let me = bot.as_ref();
            if let Some(subtype @ ("message_changed" | "message_deleted")) =
                value.pointer("/event/subtype").and_then(Value::as_str)
            {
                let Some(me) = me else {
                    return Ok(Parsed::NotReady);
                };
                return Ok(change(&value, subtype == "message_deleted", me));
            }
            // Bolt drops any event from a bot; app_mention's model does not carry bot_id,
            // so look at the raw event.
            if value.pointer("/event/bot_id").is_some_and(|b| !b.is_null()) {
                return Ok(Parsed::Ignored("from a bot"));
            }
            let Some(me) = me else {
                return Ok(Parsed::NotReady);
            };
            // slack-morphism's file model has no size: the files are read from the raw event.
            let files = shared_files(value.pointer("/event/files"));
            // Read above already; and slack-morphism's model of them refuses an org-wide
            // installation's (its workspace is null), which would lose the whole event.
            let mut value = value;
            if let Some(fields) = value.as_object_mut() {
                fields.remove("authorizations");
            }
            match serde_json::from_value::<SlackPushEventCallback>(value) {
                Ok(callback) => Ok(from_callback(callback, me, files)),
                Err(_) => Ok(Parsed::Ignored("event_callback of an unknown shape")),
            }
        }
        Some("app_rate_limited") => Ok(Parsed::Ignored("app_rate_limited")),
        _ => Ok(Parsed::Ignored("unknown payload type")),
    }
}

/// `app_uninstalled`, or `tokens_revoked` naming the bot's token: the workspace's (or
/// organisation's) installation goes. `None` for any other event.
fn uninstalled(callback: &Value) -> Option<Parsed> {
    let text = |pointer: &str| callback.pointer(pointer).and_then(Value::as_str).filter(|v| !v.is_empty());
    match text("/event/type")? {
        "app_uninstalled" => {}
        "tokens_revoked" => {
            let bots = callback.pointer("/event/tokens/bot").and_then(Value::as_array);
            if bots.is_none_or(|b| b.is_empty()) {
                return Some(Parsed::Ignored("user tokens revoked"));
            }
        }
        _ => return None,
    }
    let (Some(team), Some(event_id)) = (text("/team_id"), text("/event_id")) else {
        return Some(Parsed::Ignored("uninstall event without its workspace"));
    };
    let org_wide = ["/is_enterprise_install", "/authorizations/0/is_enterprise_install"]
        .iter()
        .any(|p| callback.pointer(p).and_then(Value::as_bool) == Some(true));
    Some(Parsed::Inbound(Inbound {
        team: TeamId::new(team),
        enterprise: None,
        authorized: None,
        kind: InboundKind::Uninstalled {
            org_wide,
            event_time: callback.get("event_time").and_then(Value::as_i64).unwrap_or(i64::MAX / 1000),
            event_id: EventId::new(event_id),
        },
    }))
}

/// Who the bot is in the workspace an event is for: the event's own authorization when it
/// names another workspace than `me`'s (an installation there has another bot user), else
/// `me`. Ignoring the bot's own messages and finding its mentions depend on it.
fn bot_for(event: &Value, me: Option<&BotIdentity>) -> Option<BotIdentity> {
    let me = me?;
    match authorization(event) {
        // Another installation's bot (an org-wide one names no workspace: the event's).
        Some((installed, user)) if installed.team.as_ref() != Some(&me.team_id) && user != me.user_id => {
            let team = installed.team.or_else(|| text_at(event, "team_id").map(TeamId::new));
            Some(BotIdentity { user_id: user, bot_id: None, team_id: team.unwrap_or_else(|| me.team_id.clone()) })
        }
        _ => Some(me.clone()),
    }
}

/// A `message_changed` or `message_deleted` event as an edit or deletion of a person's
/// message. Only a person's edit counts as one (Slack marks it `edited`; it also sends
/// `message_changed` for unfurls and new replies), and only if the text changed; a message
/// with replies that is deleted becomes a tombstone (`message_changed` with subtype
/// `tombstone`), which is its deletion; bots' messages (the bridge's own included) are
/// ignored.
fn change(callback: &Value, deleted: bool, me: &BotIdentity) -> Parsed {
    let (Some(team), Some(event_id), Some(event)) =
        (text_at(callback, "team_id"), text_at(callback, "event_id"), callback.get("event"))
    else {
        return Parsed::Ignored("message change without team, event id or event");
    };
    // The message as it was (for a deletion) or is (for an edit), and as it was before.
    let previous = event.get("previous_message").unwrap_or(&Value::Null);
    let tombstone = |m: &Value| m.get("subtype").and_then(Value::as_str) == Some("tombstone");
    if deleted && tombstone(previous) {
        return Parsed::Ignored("deletion of a message already shown as deleted");
    }
    let now = event.get("message").unwrap_or(&Value::Null);
    let deleted = deleted || tombstone(now);
    let message = if deleted { previous } else { now };
    if !deleted && (now.get("edited").is_none() || now.get("edited") == previous.get("edited")) {
        return Parsed::Ignored("message change that is not a person's edit");
    }
    let by_bot = |m: &Value| {
        m.get("bot_id").is_some_and(|b| !b.is_null())
            || m.get("subtype").and_then(Value::as_str) == Some("bot_message")
            || text_at(m, "user").as_deref() == Some(me.user_id.as_str())
    };
    if by_bot(message) || by_bot(previous) {
        return Parsed::Ignored("change of a bot's message");
    }
    let ts = text_at(event, "deleted_ts").filter(|_| deleted).or_else(|| text_at(message, "ts"));
    let (Some(channel), Some(ts)) = (text_at(event, "channel"), ts) else {
        return Parsed::Ignored("message change without channel or ts");
    };
    let text = if deleted {
        None
    } else {
        let now = text_at(message, "text").unwrap_or_default();
        if text_at(previous, "text").as_deref() == Some(now.as_str()) {
            return Parsed::Ignored("message change that left the text as it was");
        }
        Some(now)
    };
    Parsed::Inbound(Inbound {
        team: TeamId::new(team),
        enterprise: None,
        authorized: None,
        kind: InboundKind::MessageChanged(MessageChange {
            event_id: EventId::new(event_id),
            channel: ChannelId::new(channel),
            ts: MessageTs::new(ts),
            thread_ts: text_at(message, "thread_ts").map(MessageTs::new),
            user: text_at(message, "user").map(UserId::new),
            text,
        }),
    })
}

/// The files an event's message shares (those Slack describes well enough to name).
fn shared_files(files: Option<&Value>) -> Vec<SharedFile> {
    let Some(files) = files.and_then(Value::as_array) else { return Vec::new() };
    let text = |f: &Value, field: &str| f.get(field).and_then(Value::as_str).unwrap_or_default().to_owned();
    files
        .iter()
        .filter(|f| f.get("mode").and_then(Value::as_str) != Some("tombstone"))
        .map(|f| SharedFile {
            name: Some(text(f, "name")).filter(|n| !n.is_empty()).unwrap_or_else(|| text(f, "title")),
            mimetype: text(f, "mimetype"),
            filetype: text(f, "filetype"),
            size: f.get("size").and_then(Value::as_u64).unwrap_or(0),
            url: ["url_private_download", "url_private"]
                .iter()
                .find_map(|k| f.get(*k).and_then(Value::as_str).map(str::to_owned)),
        })
        .map(|mut f| {
            // A file Slack does not describe (another organisation's) is still named.
            if f.name.is_empty() {
                f.name = "a file Slack did not describe".to_owned();
            }
            f
        })
        .collect()
}

fn from_callback(callback: SlackPushEventCallback, me: &BotIdentity, files: Vec<SharedFile>) -> Parsed {
    let team = TeamId::new(callback.team_id.0);
    let event_id = EventId::new(callback.event_id.0);
    match callback.event {
        SlackEventCallbackBody::Message(msg) => {
            if msg.hidden == Some(true) {
                return Parsed::Ignored("hidden message");
            }
            match msg.subtype {
                None | Some(SlackMessageEventType::FileShare | SlackMessageEventType::ThreadBroadcast) => {}
                Some(_) => return Parsed::Ignored("message subtype that is not human input"),
            }
            if msg.sender.bot_id.is_some() {
                return Parsed::Ignored("from a bot");
            }
            let (Some(user), Some(channel)) = (msg.sender.user, msg.origin.channel) else {
                return Parsed::Ignored("message without user or channel");
            };
            let channel = ChannelId::new(channel.0);
            let is_dm =
                msg.origin.channel_type.as_ref().is_some_and(|t| t.0 == "im") || channel.as_str().starts_with('D');
            let text = msg.content.and_then(|c| c.text).unwrap_or_default();
            message(
                team,
                Some(event_id),
                channel,
                user.0,
                msg.origin.ts.0,
                msg.origin.thread_ts.map(|t| t.0),
                text,
                is_dm,
                me,
            )
            .with_files(files)
        }
        SlackEventCallbackBody::AppMention(mention) => {
            let channel = ChannelId::new(mention.channel.0);
            let text = mention.content.text.unwrap_or_default();
            let thread_ts = mention.origin.thread_ts.map(|t| t.0);
            let is_dm = channel.as_str().starts_with('D');
            message(team, Some(event_id), channel, mention.user.0, mention.origin.ts.0, thread_ts, text, is_dm, me)
                .with_files(files)
        }
        SlackEventCallbackBody::AppHomeOpened(home) => {
            if home.tab.as_deref().is_some_and(|t| t != "home") {
                return Parsed::Ignored("app_home_opened on another tab");
            }
            Parsed::Inbound(Inbound {
                team,
                enterprise: None,
                authorized: None,
                kind: InboundKind::HomeOpened { user: UserId::new(home.user.0), event_id },
            })
        }
        SlackEventCallbackBody::AgentSessionStopped(stopped) => {
            let messages: Vec<MessageTs> =
                stopped.streaming_message_ts.unwrap_or_default().into_iter().map(|ts| MessageTs::new(ts.0)).collect();
            if messages.is_empty() {
                return Parsed::Ignored("agent_session_stopped without a streamed message");
            }
            Parsed::Inbound(Inbound {
                team,
                enterprise: None,
                authorized: None,
                kind: InboundKind::StreamStopped {
                    channel: ChannelId::new(stopped.channel.0),
                    messages,
                    user: stopped.user.map(|u| UserId::new(u.0)),
                    event_id,
                },
            })
        }
        _ => Parsed::Ignored("event type not handled"),
    }
}

#[allow(clippy::too_many_arguments)]
fn message(
    team: TeamId,
    event_id: Option<EventId>,
    channel: ChannelId,
    user: String,
    ts: String,
    thread_ts: Option<String>,
    text: String,
    is_dm: bool,
    me: &BotIdentity,
) -> Parsed {
    if user == me.user_id.as_str() {
        return Parsed::Ignored("the bot's own message");
    }
    let mentions_bot = mentions(&text, &me.user_id);
    let thread_ts = thread_ts.filter(|t| *t != ts);
    if thread_ts.is_none() && !is_dm && !mentions_bot {
        return Parsed::Ignored("channel message not addressed to the bot");
    }
    Parsed::Inbound(Inbound {
        team,
        enterprise: None,
        authorized: None,
        kind: InboundKind::Message(UserMessage {
            event_id,
            channel,
            user: UserId::new(user),
            ts: MessageTs::new(ts),
            thread_ts: thread_ts.map(MessageTs::new),
            text,
            mentions_bot,
            is_dm,
            files: Vec::new(),
        }),
    })
}

/// A field's text, when it is a non-empty string.
fn text_at(value: &Value, field: &str) -> Option<String> {
    value.get(field).and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_owned)
}

impl Parsed {
    /// The item, placed in the Enterprise Grid organisation Slack named, if any.
    fn in_enterprise(mut self, enterprise: Option<String>) -> Self {
        if let (Parsed::Inbound(item), Some(enterprise)) = (&mut self, enterprise.filter(|e| !e.is_empty())) {
            item.enterprise = Some(EnterpriseId::new(enterprise));
        }
        self
    }

    /// A parsed message with the files it shares.
    fn with_files(mut self, files: Vec<SharedFile>) -> Self {
        if let Parsed::Inbound(Inbound { kind: InboundKind::Message(message), .. }) = &mut self {
            message.files = files;
        }
        self
    }
}

/// Whether Slack markup mentions this user (`<@U1>` or `<@U1|name>`).
pub fn mentions(text: &str, user: &UserId) -> bool {
    let needle = format!("<@{user}");
    text.match_indices(&needle).any(|(i, _)| matches!(text.as_bytes().get(i + needle.len()), Some(b'>' | b'|')))
}

/// Parses an interactivity body: a form with one `payload` field holding JSON.
pub fn parse_interaction_form(body: &[u8]) -> Result<Parsed, Malformed> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|e| Malformed(e.to_string()))?;
    let payload = fields
        .into_iter()
        .find_map(|(k, v)| (k == "payload").then_some(v))
        .ok_or_else(|| Malformed("no payload field".to_owned()))?;
    let value: Value = serde_json::from_str(&payload).map_err(|e| Malformed(e.to_string()))?;
    interaction_from_value(value)
}

/// Parses an interaction payload (HTTP `payload` field, or a Socket Mode `interactive`
/// envelope's payload).
pub fn interaction_from_value(value: Value) -> Result<Parsed, Malformed> {
    if !value.is_object() {
        return Err(Malformed("not a JSON object".to_owned()));
    }
    let enterprise = value.pointer("/enterprise/id").and_then(Value::as_str).map(str::to_owned);
    interaction_in(value).map(|parsed| parsed.in_enterprise(enterprise))
}

fn interaction_in(value: Value) -> Result<Parsed, Malformed> {
    let Ok(event) = serde_json::from_value::<SlackInteractionEvent>(value) else {
        return Ok(Parsed::Ignored("interaction of an unknown type or shape"));
    };
    Ok(match event {
        SlackInteractionEvent::BlockActions(event) => {
            let Some(user) = event.user else {
                return Ok(Parsed::Ignored("block action without a user"));
            };
            let team = TeamId::new(event.team.id.0);
            let (channel, message_ts, view_id) = match &event.container {
                SlackInteractionActionContainer::Message(c) => {
                    let channel =
                        c.channel_id.clone().map(|c| c.0).or_else(|| event.channel.as_ref().map(|c| c.id.0.clone()));
                    (channel, Some(c.message_ts.0.clone()), None)
                }
                SlackInteractionActionContainer::MessageAttachment(c) => {
                    (c.channel_id.clone().map(|c| c.0), Some(c.message_ts.0.clone()), None)
                }
                SlackInteractionActionContainer::View(c) => (None, None, Some(c.view_id.0.clone())),
            };
            let thread_ts = event.message.as_ref().and_then(|m| m.origin.thread_ts.clone()).map(|t| t.0);
            let view = view_id.map(|id| (id, event.view.as_ref().and_then(view_metadata).unwrap_or_default()));
            let state = event.state.as_ref().map(|s| &s.values);
            let actions = event
                .actions
                .unwrap_or_default()
                .into_iter()
                .map(|a| {
                    let block_id = a.block_id.map(|b| b.0);
                    let from_state = || {
                        let block = block_id.as_ref()?;
                        let value = state?.get(&block.clone().into())?.get(&a.action_id)?;
                        state_value(value)
                    };
                    let value = a.value.or_else(|| a.selected_option.map(|o| o.value)).or_else(from_state);
                    ActionItem { action_id: a.action_id.0, block_id, value }
                })
                .collect();
            Parsed::Inbound(Inbound {
                team,
                enterprise: None,
                authorized: None,
                kind: InboundKind::Action(BlockAction {
                    user: UserId::new(user.id.0),
                    user_team: user.team_id.map(|t| TeamId::new(t.0)),
                    channel: channel.map(ChannelId::new),
                    message_ts: message_ts.map(MessageTs::new),
                    thread_ts: thread_ts.map(MessageTs::new),
                    view,
                    trigger_id: event.trigger_id.0,
                    response_url: event.response_url.map(|u| ResponseUrl::new(u.0.to_string())),
                    actions,
                }),
            })
        }
        SlackInteractionEvent::ViewSubmission(event) => {
            let values = event
                .view
                .state_params
                .state
                .map(|s| {
                    s.values
                        .into_iter()
                        .flat_map(|(block, actions)| {
                            actions.into_iter().filter_map(move |(action, value)| {
                                state_value(&value).map(|v| ((block.0.clone(), action.0), v))
                            })
                        })
                        .collect::<BTreeMap<_, _>>()
                })
                .unwrap_or_default();
            let (callback_id, private_metadata) = match &event.view.view {
                SlackView::Modal(m) => (
                    m.callback_id.clone().map(|c| c.0).unwrap_or_default(),
                    m.private_metadata.clone().unwrap_or_default(),
                ),
                SlackView::Home(h) => (
                    h.callback_id.clone().map(|c| c.0).unwrap_or_default(),
                    h.private_metadata.clone().unwrap_or_default(),
                ),
            };
            let view = ViewSubmission {
                user: UserId::new(event.user.id.0),
                user_team: event.user.team_id.map(|t| TeamId::new(t.0)),
                view_id: event.view.state_params.id.0,
                callback_id,
                private_metadata,
                values,
            };
            // Checked here, where Slack still waits for the answer: only then can the form
            // stay open with the problem shown under its input.
            let errors = super::controls::Submission::from_view(&view).form_errors();
            if !errors.is_empty() {
                return Ok(Parsed::FormErrors(errors));
            }
            Parsed::Inbound(Inbound {
                team: TeamId::new(event.team.id.0),
                enterprise: None,
                authorized: None,
                kind: InboundKind::ViewSubmission(view),
            })
        }
        SlackInteractionEvent::MessageAction(event) => {
            let (Some(channel), Some(message)) = (event.channel, event.message) else {
                return Ok(Parsed::Ignored("message shortcut without a message"));
            };
            Parsed::Inbound(Inbound {
                team: TeamId::new(event.team.id.0),
                enterprise: None,
                authorized: None,
                kind: InboundKind::Shortcut(MessageShortcut {
                    user: UserId::new(event.user.id.0),
                    callback_id: event.callback_id.0,
                    channel: ChannelId::new(channel.id.0),
                    message_ts: MessageTs::new(message.origin.ts.0),
                    thread_ts: message.origin.thread_ts.map(|t| MessageTs::new(t.0)),
                    text: message.content.text.unwrap_or_default(),
                    author: message.sender.user.map(|u| UserId::new(u.0)),
                    trigger_id: event.trigger_id.0,
                    response_url: ResponseUrl::new(event.response_url.0.to_string()),
                }),
            })
        }
        _ => Parsed::Ignored("interaction type not handled"),
    })
}

fn view_metadata(view: &SlackView) -> Option<String> {
    match view {
        SlackView::Modal(m) => m.private_metadata.clone(),
        SlackView::Home(h) => h.private_metadata.clone(),
    }
}

fn state_value(value: &SlackViewStateValue) -> Option<String> {
    value
        .value
        .clone()
        .or_else(|| value.selected_option.as_ref().map(|o| o.value.clone()))
        .or_else(|| value.selected_user.as_ref().map(|u| u.0.clone()))
        .or_else(|| value.selected_conversation.as_ref().map(|c| c.0.clone()))
        .or_else(|| value.selected_channel.as_ref().map(|c| c.0.clone()))
        // Checkboxes: the ticked options' values, comma-separated ("" when none is ticked).
        .or_else(|| {
            value.selected_options.as_ref().map(|o| o.iter().map(|o| o.value.as_str()).collect::<Vec<_>>().join(","))
        })
}

/// Whether a slash-command body is Slack's unsigned `ssl_check` probe.
pub fn is_ssl_check(body: &[u8]) -> bool {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .is_ok_and(|fields| fields.iter().any(|(k, v)| k == "ssl_check" && v == "1"))
}

/// Parses a slash-command form body.
pub fn parse_command_form(body: &[u8]) -> Result<Parsed, Malformed> {
    let event: SlackCommandEvent = serde_urlencoded::from_bytes(body).map_err(|e| Malformed(e.to_string()))?;
    // slack-morphism's command model has no organisation: it is read from the form itself.
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let enterprise = fields.into_iter().find_map(|(k, v)| (k == "enterprise_id").then_some(v));
    Ok(command(event).in_enterprise(enterprise))
}

/// Parses a Socket Mode `slash_commands` envelope payload.
pub fn command_from_value(value: Value) -> Result<Parsed, Malformed> {
    let enterprise = text_at(&value, "enterprise_id");
    let event: SlackCommandEvent = serde_json::from_value(value).map_err(|e| Malformed(e.to_string()))?;
    Ok(command(event).in_enterprise(enterprise))
}

fn command(event: SlackCommandEvent) -> Parsed {
    Parsed::Inbound(Inbound {
        team: TeamId::new(event.team_id.0),
        enterprise: None,
        authorized: None,
        kind: InboundKind::Command(SlashCommand {
            channel: ChannelId::new(event.channel_id.0),
            user: UserId::new(event.user_id.0),
            command: event.command.0,
            text: event.text.unwrap_or_default(),
            trigger_id: event.trigger_id.0,
            response_url: ResponseUrl::new(event.response_url.0.to_string()),
        }),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::*;

    #[test]
    fn without_a_token_of_its_own_an_event_is_its_installations() {
        let event = |authorization: Value| {
            let body = serde_json::json!({"token": "t", "type": "event_callback", "team_id": "T6", "api_app_id": "A1",
                "event_id": "Ev1", "event_time": 1_700_000_000, "authorizations": [authorization],
                "event": {"type": "app_mention", "channel": "C1", "user": "U1", "text": "<@UORG> hi", "ts": "1.1",
                    "event_ts": "1.1", "client_msg_id": "cm-1"}});
            parse_installed_event(body.to_string().as_bytes()).unwrap()
        };
        // An org-wide installation's authorization names no workspace: the event's is used.
        let org = event(serde_json::json!({"team_id": null, "user_id": "UORG", "is_bot": true,
            "enterprise_id": "E1", "is_enterprise_install": true}));
        let Parsed::Inbound(item) = org else { panic!("{org:?}") };
        assert_eq!(
            item.authorized,
            Some(Authorized { team: None, enterprise: Some(EnterpriseId::new("E1")), org_wide: true })
        );
        assert!(
            matches!(item.kind, InboundKind::Message(ref m) if m.mentions_bot),
            "its bot user is the mentioned one"
        );
        // A person's authorization is not the bot's.
        let person = event(serde_json::json!({"team_id": "T6", "user_id": "U1", "is_bot": false}));
        assert_eq!(person, Parsed::Ignored("event without an authorization"));
    }

    #[test]
    fn uninstalls_and_revoked_bot_tokens_name_their_installation() {
        let event = |event: Value, extra: Value| {
            let mut callback = serde_json::json!({"type": "event_callback", "team_id": "T5", "event_id": "Ev1", "event_time": 1_700_000_000,
                "authorizations": [{"team_id": "T5", "user_id": "UB", "is_bot": true, "enterprise_id": "E1", "is_enterprise_install": false}]});
            callback["event"] = event;
            if let (Some(callback), Value::Object(extra)) = (callback.as_object_mut(), extra) {
                callback.extend(extra);
            }
            event_from_value(callback, None).unwrap()
        };
        let removed = |org_wide: bool| {
            Parsed::Inbound(Inbound {
                team: TeamId::new("T5"),
                enterprise: Some(EnterpriseId::new("E1")),
                authorized: Some(Authorized {
                    team: Some(TeamId::new("T5")),
                    enterprise: Some(EnterpriseId::new("E1")),
                    org_wide: false,
                }),
                kind: InboundKind::Uninstalled { org_wide, event_time: 1_700_000_000, event_id: EventId::new("Ev1") },
            })
        };
        // Before the bot knows who it is, too: no identity is needed to forget an installation.
        assert_eq!(event(serde_json::json!({"type": "app_uninstalled"}), Value::Null), removed(false));
        let org = serde_json::json!({"is_enterprise_install": true});
        assert_eq!(event(serde_json::json!({"type": "app_uninstalled"}), org), removed(true));
        let bot = serde_json::json!({"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["UB"]}});
        assert_eq!(event(bot, Value::Null), removed(false));
        let users = serde_json::json!({"type": "tokens_revoked", "tokens": {"oauth": ["U1"]}});
        assert_eq!(event(users, Value::Null), Parsed::Ignored("user tokens revoked"));
    }

    /// Keys Slack payloads use, so generated JSON reaches past the first `match`.
    const KEYS: &[&str] = &[
        "type",
        "event",
        "user",
        "channel",
        "text",
        "ts",
        "thread_ts",
        "actions",
        "view",
        "team",
        "id",
        "state",
        "values",
        "block_id",
        "action_id",
        "value",
        "selected_option",
        "container",
        "message",
        "trigger_id",
        "response_url",
        "callback_id",
        "private_metadata",
        "team_id",
        "bot_id",
        "subtype",
        "channel_type",
        "event_id",
        "authorizations",
        "user_id",
        "command",
        "message_ts",
        "channel_id",
    ];

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            prop_oneof![
                ".{0,24}",
                Just("event_callback".to_owned()),
                Just("message".to_owned()),
                Just("app_mention".to_owned()),
                Just("block_actions".to_owned()),
                Just("view_submission".to_owned()),
                Just("message_action".to_owned()),
                Just("url_verification".to_owned())
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 96, 8, |inner| {
            let key = prop_oneof![proptest::sample::select(KEYS).prop_map(str::to_owned), "[a-z_]{1,10}"];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((key, inner), 0..8)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    fn me() -> BotIdentity {
        BotIdentity { user_id: UserId::new("UBOT"), bot_id: Some("BBOT".to_owned()), team_id: TeamId::new("T1") }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_event(&body, Some(&me()));
            let _ = parse_interaction_form(&body);
            let _ = parse_command_form(&body);
            let _ = is_ssl_check(&body);
        }

        #[test]
        fn arbitrary_json_never_panics(value in json(), event in json(), payload in json()) {
            let _ = event_from_value(value.clone(), Some(&me()));
            let _ = event_from_value(value.clone(), None);
            let _ = interaction_from_value(value.clone());
            let _ = command_from_value(value);
            let envelope = serde_json::json!({"type": "event_callback", "team_id": "T1", "event_id": "Ev1", "event": event});
            let _ = event_from_value(envelope, Some(&me()));
            let mut interaction = payload;
            if let Value::Object(fields) = &mut interaction {
                fields.insert("type".to_owned(), Value::from("block_actions"));
            }
            let _ = interaction_from_value(interaction.clone());
            let form = serde_urlencoded::to_string([("payload", interaction.to_string())]).unwrap();
            let _ = parse_interaction_form(form.as_bytes());
        }
    }
}
