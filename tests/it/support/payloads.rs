//! What Slack sends the bridge, built as Slack builds it: Events API envelopes and
//! events, and interaction payloads (button clicks, selects, modal submissions, shortcuts).
//! Signing them is [`super::app::TestApp::post_signed`]'s part.

use helpdesk_bridge::{
    model::Rating,
    slack::{
        blocks,
        controls::{action, callback, feedback_value, input},
    },
};
use serde_json::{Map, Value, json};

use super::{
    app::BOT_USER,
    fakes::{AGENT_ID, WORKSPACE_ID},
};

/// A Slack message event as the Events API delivers it.
pub fn message_event(
    event_id: &str,
    channel: &str,
    user: &str,
    ts: &str,
    thread_ts: Option<&str>,
    text: &str,
) -> Value {
    let mut event = json!({
        "type": "message", "channel": channel, "user": user, "text": text, "ts": ts,
        "event_ts": ts, "channel_type": if channel.starts_with('D') { "im" } else { "channel" },
        "client_msg_id": format!("cm-{event_id}"),
        "blocks": [{"type": "rich_text", "block_id": "b1", "elements": [{"type": "rich_text_section", "elements": [
            {"type": "text", "text": text}, {"type": "broadcast", "range": "here"}, {"type": "emoji", "name": "wave"}
        ]}]}]
    });
    if let Some(thread_ts) = thread_ts {
        event["thread_ts"] = json!(thread_ts);
    }
    callback(event_id, event)
}

/// A `message_changed` event: `user` edited their message `ts` (in `thread_ts`), which
/// read `before`, to read `text`.
pub fn edit_event(
    event_id: &str,
    channel: &str,
    user: &str,
    ts: &str,
    thread_ts: &str,
    before: &str,
    text: &str,
) -> Value {
    let message = |text: &str| json!({"type": "message", "user": user, "text": text, "ts": ts, "thread_ts": thread_ts});
    let mut now = message(text);
    now["edited"] = json!({"user": user, "ts": "1800000000.000001"});
    callback(
        event_id,
        json!({"type": "message", "subtype": "message_changed", "hidden": true, "channel": channel,
               "ts": "1800000000.000002", "event_ts": "1800000000.000002", "channel_type": "channel",
               "message": now, "previous_message": message(before)}),
    )
}

/// A `message_changed` event as Slack sends it when a message with replies is deleted: the
/// message `ts` of `user`, which read `before`, becomes a tombstone.
pub fn tombstone_event(event_id: &str, channel: &str, user: &str, ts: &str, before: &str) -> Value {
    callback(
        event_id,
        json!({"type": "message", "subtype": "message_changed", "hidden": true, "channel": channel,
               "ts": "1800000000.000004", "event_ts": "1800000000.000004", "channel_type": "channel",
               "message": {"type": "message", "subtype": "tombstone", "user": "USLACKBOT", "hidden": true,
                           "text": "This message was deleted.", "ts": ts, "thread_ts": ts, "reply_count": 2},
               "previous_message": {"type": "message", "user": user, "text": before, "ts": ts, "thread_ts": ts}}),
    )
}

/// A `message_deleted` event: `user`'s message `ts` (in `thread_ts`), which read `before`.
pub fn delete_event(event_id: &str, channel: &str, user: &str, ts: &str, thread_ts: &str, before: &str) -> Value {
    callback(
        event_id,
        json!({"type": "message", "subtype": "message_deleted", "hidden": true, "channel": channel,
               "ts": "1800000000.000003", "event_ts": "1800000000.000003", "deleted_ts": ts, "channel_type": "channel",
               "previous_message": {"type": "message", "user": user, "text": before, "ts": ts, "thread_ts": thread_ts}}),
    )
}

/// An `agent_session_stopped` event: `user` pressed Stop on the streamed message `ts`.
pub fn stream_stopped_event(event_id: &str, channel: &str, thread_ts: &str, ts: &str, user: &str) -> Value {
    callback(
        event_id,
        json!({
            "type": "agent_session_stopped", "channel": channel, "thread_ts": thread_ts,
            "streaming_message_ts": [ts], "user": user, "event_ts": "1800000100.000100"
        }),
    )
}

/// An `app_mention` event.
pub fn mention_event(event_id: &str, channel: &str, user: &str, ts: &str, text: &str) -> Value {
    callback(
        event_id,
        json!({
            "type": "app_mention", "channel": channel, "user": user, "text": text, "ts": ts, "event_ts": ts,
            "client_msg_id": format!("cm-{event_id}")
        }),
    )
}

/// Wraps an event in the Events API envelope.
pub fn callback(event_id: &str, event: Value) -> Value {
    let mut envelope = json!({
        "token": "deprecated", "team_id": "T1", "api_app_id": "A1", "event": null,
        "type": "event_callback", "event_id": event_id, "event_time": 1_700_000_000,
        "authorizations": [{"enterprise_id": null, "team_id": "T1", "user_id": BOT_USER, "is_bot": true, "is_enterprise_install": false}],
        "is_ext_shared_channel": false, "event_context": "4-eyJldCI6Im1lc3NhZ2UifQ"
    });
    envelope["event"] = event;
    envelope
}

/// A `block_actions` payload: `user` clicked the button `action_id` (with `value`) on the
/// message `message_ts` in `thread_ts`.
pub fn click(user: &str, message_ts: &str, thread_ts: &str, action_id: &str, value: &str, trigger: &str) -> Value {
    click_from(user, "T1", message_ts, thread_ts, action_id, value, trigger, "https://hooks.invalid")
}

/// Like [`click`], by a user of `user_team`, answered at `{respond}/respond/{trigger}`.
#[allow(clippy::too_many_arguments)]
pub fn click_from(
    user: &str,
    user_team: &str,
    message_ts: &str,
    thread_ts: &str,
    action_id: &str,
    value: &str,
    trigger: &str,
    respond: &str,
) -> Value {
    let button = json!({"action_id": action_id, "block_id": "b", "text": {"type": "plain_text", "text": "x"},
        "value": value, "type": "button", "action_ts": "1700000001.000000"});
    block_action(user, user_team, message_ts, thread_ts, button, json!({}), trigger, respond)
}

/// A `block_actions` payload for any element (`action`), with the message's input `state`
/// as Slack sends it alongside.
#[allow(clippy::too_many_arguments)]
pub fn block_action(
    user: &str,
    user_team: &str,
    message_ts: &str,
    thread_ts: &str,
    action: Value,
    state: Value,
    trigger: &str,
    respond: &str,
) -> Value {
    let mut payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": user.to_lowercase(), "name": user.to_lowercase(), "team_id": user_team},
        "api_app_id": "A1", "token": "x",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": "C1", "is_ephemeral": false},
        "trigger_id": trigger, "team": {"id": "T1", "domain": "acme"},
        "channel": {"id": "C1", "name": "ops"},
        "message": {"type": "message", "user": "UBOT", "ts": message_ts, "thread_ts": thread_ts, "text": "notice"},
        "response_url": format!("{respond}/respond/{trigger}"),
    });
    payload["actions"] = Value::Array(vec![action]);
    payload["state"] = json!({});
    payload["state"]["values"] = state;
    payload
}

/// A `block_actions` payload of Slack's feedback buttons: `user` of `user_team` gave the
/// agent's reply `reply_ts` (in `thread_ts`, its message carrying the bridge's feedback
/// block as Slack echoes it back, with the `block_id` Slack gave it) a `rating`, answered at
/// `{respond}/respond/{trigger}`.
#[allow(clippy::too_many_arguments)]
pub fn feedback_click(
    user: &str,
    user_team: &str,
    reply_ts: &str,
    thread_ts: &str,
    rating: Rating,
    trigger: &str,
    respond: &str,
) -> Value {
    let mut block = blocks::feedback();
    block["block_id"] = json!("Fb8Qx");
    let clicked = json!({"type": "feedback_buttons", "action_id": action::FEEDBACK, "block_id": "Fb8Qx",
        "text": {"type": "plain_text", "text": rating.emoji(), "emoji": true}, "value": feedback_value(rating),
        "action_ts": "1700000001.000000"});
    let mut payload = block_action(user, user_team, reply_ts, thread_ts, clicked, json!({}), trigger, respond);
    payload["message"]["blocks"] = json!([
        {"type": "section", "block_id": "r1", "text": {"type": "mrkdwn", "text": "Restarted web-1.", "verbatim": false}},
        block
    ]);
    payload["message"]["bot_id"] = json!(super::app::BOT_ID);
    payload
}

/// A `view_submission` of the modal `callback_id` with these input `values`.
pub fn submission(user: &str, view_id: &str, callback_id: &str, metadata: &str, values: Value) -> Value {
    let mut payload = json!({
        "type": "view_submission", "team": {"id": "T1", "domain": "acme"},
        "user": {"id": user, "username": "u", "name": "u", "team_id": "T1"},
        "api_app_id": "A1", "token": "x", "trigger_id": "9.9.s",
        "view": {"id": view_id, "team_id": "T1", "type": "modal", "callback_id": callback_id,
            "private_metadata": metadata, "hash": "h1", "title": {"type": "plain_text", "text": "Modal"}, "blocks": [],
            "state": {}}
    });
    payload["view"]["state"]["values"] = values;
    payload
}

/// A modal's `state.values`: each input's element state under its (block id, action id).
pub fn inputs<'a>(entries: impl IntoIterator<Item = ((&'a str, &'a str), Value)>) -> Value {
    let mut values = Map::new();
    for ((block, action), element) in entries {
        values.entry(block).or_insert_with(|| json!({}))[action] = element;
    }
    Value::Object(values)
}

/// A plain text input's state, as Slack sends it.
pub fn text_input(value: &str) -> Value {
    json!({"type": "plain_text_input", "value": value})
}

/// A static select's state with `value` chosen, as Slack sends it.
pub fn static_select(value: &str) -> Value {
    json!({"type": "static_select", "selected_option": option(value)})
}

/// A `view_submission` of the rejection-reason modal.
pub fn reject_submission(user: &str, view_id: &str, metadata: &str, reason: &str) -> Value {
    let values = inputs([(input::REASON, text_input(reason))]);
    submission(user, view_id, callback::REJECT, metadata, values)
}

/// A static select's chosen option, as Slack sends it.
pub fn option(value: &str) -> Value {
    json!({"text": {"type": "plain_text", "text": value}, "value": value})
}

/// A `view_submission` of the creation modal.
pub fn create_submission(user: &str, view_id: &str, metadata: &str, title: &str) -> Value {
    let values = inputs([
        (input::TITLE, text_input(title)),
        (input::WORKSPACE, static_select(WORKSPACE_ID)),
        (input::AGENT, static_select(AGENT_ID)),
    ]);
    submission(user, view_id, callback::CREATE, metadata, values)
}

/// The message shortcut used by `user` on the message `ts` written by `author`.
pub fn shortcut(user: &str, author: &str, ts: &str, text: &str, response_url: &str) -> Value {
    json!({
        "type": "message_action", "token": "x", "action_ts": "1.2", "callback_id": callback::SHORTCUT,
        "trigger_id": format!("sc-{ts}"), "team": {"id": "T1", "domain": "acme"}, "user": {"id": user, "name": "bob"},
        "channel": {"id": "C1", "name": "ops"},
        "message": {"type": "message", "user": author, "ts": ts, "text": text},
        "response_url": response_url
    })
}
