//! Block Kit primitives: messages, buttons, sections, selects, Slack's limits, and
//! [`validate`], which checks any rendering against slack-morphism's block types and those
//! limits. The screens ([`super::blocks`], [`super::card`], [`super::ticket`],
//! [`super::notices`]) are built from these; nothing here knows what the bridge shows.

use serde_json::{Value, json};

use super::mrkdwn;
use crate::ids::UserId;

/// Characters in one section's text.
pub const SECTION_CHARS: usize = 3000;
/// Blocks in one message.
pub const MESSAGE_BLOCKS: usize = 50;
/// Blocks in a modal or the Home tab.
pub const VIEW_BLOCKS: usize = 100;
/// Characters of section text one message carries; Slack refuses much longer messages
/// (`msg_blocks_too_long`) even when every block is within its own limit.
pub const MESSAGE_CHARS: usize = 12_000;
/// Characters of a message's `text` fallback.
pub const FALLBACK_CHARS: usize = 4000;
/// Elements of one actions block.
pub const ACTION_ELEMENTS: usize = 25;
/// Characters of a button label.
pub const BUTTON_LABEL_CHARS: usize = 75;
/// Longest button value.
pub const BUTTON_VALUE_BYTES: usize = 2000;
/// Longest value of a select's option.
pub const OPTION_VALUE_BYTES: usize = 150;
/// Characters of a header block's text.
pub const HEADER_CHARS: usize = 150;
/// Characters of a section's field.
pub const FIELD_CHARS: usize = 2000;
/// Characters of a confirmation dialog's text.
pub const CONFIRM_CHARS: usize = 300;
/// Characters of a link button's URL.
pub const URL_CHARS: usize = 3000;
/// A message: the blocks, and the plain `text` Slack shows in notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Notification and screen-reader text.
    pub text: String,
    /// The blocks.
    pub blocks: Vec<Value>,
}

/// A file to attach in a thread: what Slack names it, its title, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The file name.
    pub name: String,
    /// The title Slack shows above it.
    pub title: String,
    /// Its content.
    pub content: String,
}

/// A button.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    /// Its label.
    pub label: String,
    /// What it does, as the bridge's action id.
    pub action_id: String,
    /// An opaque value (an id), never content.
    pub value: Option<String>,
    /// A link it opens instead.
    pub url: Option<String>,
    /// Its colour, if not the default.
    pub style: Option<Style>,
}

/// A button's colour: green for the one main action, red for one that cannot be undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Green.
    Primary,
    /// Red.
    Danger,
}

impl Button {
    /// A button that sends `action_id` with `value`.
    pub fn action(label: &str, action_id: &str, value: impl Into<String>) -> Self {
        Self {
            label: label.to_owned(),
            action_id: action_id.to_owned(),
            value: Some(value.into()),
            url: None,
            style: None,
        }
    }

    /// A button that opens `url`.
    pub fn link(label: &str, action_id: &str, url: &str) -> Self {
        Self {
            label: label.to_owned(),
            action_id: action_id.to_owned(),
            value: None,
            url: Some(url.to_owned()),
            style: None,
        }
    }

    /// Marks the button as the main action.
    pub fn primary(mut self) -> Self {
        self.style = Some(Style::Primary);
        self
    }

    /// Marks the button as one that cannot be undone.
    pub fn danger(mut self) -> Self {
        self.style = Some(Style::Danger);
        self
    }
}

pub(crate) fn plain(text: &str, max: usize) -> Value {
    json!({"type": "plain_text", "text": truncate(text, max), "emoji": true})
}

pub(crate) fn section(mrkdwn: impl Into<String>) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn.into()}, "expand": true})
}

pub(crate) fn context(mrkdwn: impl Into<String>) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn.into()}]})
}

pub(crate) fn button(b: &Button) -> Value {
    let mut v = json!({"type": "button", "text": plain(&b.label, BUTTON_LABEL_CHARS), "action_id": b.action_id});
    if let Some(value) = &b.value {
        v["value"] = json!(value);
    }
    if let Some(url) = &b.url {
        v["url"] = json!(url);
    }
    match b.style {
        Some(Style::Primary) => v["style"] = json!("primary"),
        Some(Style::Danger) => v["style"] = json!("danger"),
        None => {}
    }
    v
}

pub(crate) fn actions(buttons: &[Button]) -> Vec<Value> {
    buttons
        .chunks(ACTION_ELEMENTS)
        .map(|chunk| json!({"type": "actions", "elements": chunk.iter().map(button).collect::<Vec<_>>()}))
        .collect()
}

/// Cuts plain `text` to at most `max` characters, marking the cut with an ellipsis. For
/// plain text only: text that is escaped afterwards grows, so mrkdwn is cut with
/// [`mrkdwn::inert_within`] and friends instead.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Sections holding `mrkdwn` (already escaped and inert), split to the section limit;
/// past `max_chars` in all, the rest is cut with a visible `…`.
pub(crate) fn sections(mrkdwn: &str, max_chars: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut used = 0;
    for piece in mrkdwn::split(mrkdwn, SECTION_CHARS) {
        let len = piece.chars().count();
        if used + len > max_chars {
            let room = max_chars.saturating_sub(used);
            if room >= 20 {
                out.push(section(mrkdwn::cut(&piece, room)));
            }
            break;
        }
        used += len;
        out.push(section(piece));
    }
    out
}

/// Slack's mention syntax for a user: renders as their name.
pub(crate) fn user(id: &UserId) -> String {
    format!("<@{}>", mrkdwn::escape(id.as_str()))
}

/// A choice in a select menu: (value, label).
pub type Choice = (String, String);

/// One portal's choices for a select: the portal's name and its (id, label) choices.
pub type PortalChoices<'a> = (&'a str, &'a [Choice]);

/// An input with a select of workspaces or agents, each option's value naming its portal
/// ([`super::controls::Placed`]); grouped by portal when there are several. `selected` is
/// (portal, id). An id too long for an option value is left out rather than cut into
/// another id; portals without choices are left out (an empty group is not valid).
pub(crate) fn placed_select(
    ids: (&str, &str),
    label: &str,
    portals: &[PortalChoices<'_>],
    selected: Option<(&str, &str)>,
) -> Value {
    use super::controls::Placed;
    const OPTIONS: usize = 100;
    let options = |portal: &str, choices: &[Choice]| -> Vec<Value> {
        choices
            .iter()
            .map(|(id, text)| (Placed::value(portal, id), text))
            .filter(|(value, _)| value.len() <= OPTION_VALUE_BYTES)
            .take(OPTIONS)
            .map(|(value, text)| json!({"text": plain(text, 75), "value": value}))
            .collect()
    };
    let portals: Vec<(&str, Vec<Value>)> =
        portals.iter().map(|(p, c)| (*p, options(p, c))).filter(|(_, o)| !o.is_empty()).take(OPTIONS).collect();
    let mut element = json!({
        "type": "static_select",
        "action_id": ids.1,
        "placeholder": plain(&format!("Choose {}", label.to_lowercase()), 150),
    });
    match portals.as_slice() {
        [(_, options)] => element["options"] = json!(options),
        many => {
            let group = |(portal, options): &(&str, Vec<Value>)| json!({"label": plain(&format!("Portal {portal}"), 75), "options": options});
            element["option_groups"] = json!(many.iter().map(group).collect::<Vec<_>>());
        }
    }
    if let Some((portal, id)) = selected {
        let value = Placed::value(portal, id);
        let chosen = portals.iter().flat_map(|(_, o)| o).find(|o| o["value"] == value.as_str());
        if let Some(chosen) = chosen {
            element["initial_option"] = chosen.clone();
        }
    }
    json!({"type": "input", "block_id": ids.0, "label": plain(label, 2000), "element": element})
}

/// Why a rendering would be refused by Slack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Block Kit: {0}")]
pub struct Invalid(pub String);

/// Checks blocks against slack-morphism's block types (every block must be a known type
/// with a valid body) and Slack's limits for a message (`max_blocks` 50) or a view (100):
/// every text as Slack receives it, that is after escaping, within its element's limit
/// (sections and context elements 3000, fields 2000, headers 150), buttons, confirmation
/// dialogs and the message's total.
pub fn validate(blocks: &[Value], max_blocks: usize) -> Result<(), Invalid> {
    use slack_morphism::prelude::SlackBlock;
    if blocks.len() > max_blocks {
        return Err(Invalid(format!("{} blocks, at most {max_blocks} allowed", blocks.len())));
    }
    let mut chars = 0;
    for block in blocks {
        let typed: SlackBlock = serde_json::from_value(block.clone()).map_err(|e| Invalid(format!("{e}: {block}")))?;
        if matches!(typed, SlackBlock::Unknown(_)) {
            return Err(Invalid(format!("not a known block: {block}")));
        }
        if let Some(text) = block["text"]["text"].as_str() {
            let n = text.chars().count();
            let max = if block["type"] == "header" { HEADER_CHARS } else { SECTION_CHARS };
            if block["type"] == "section" {
                chars += n;
            }
            if n > max || n == 0 {
                return Err(Invalid(format!("{} text of {n} characters", block["type"])));
            }
        }
        if let Some(fields) = block["fields"].as_array() {
            let longest = fields.iter().filter_map(|f| f["text"].as_str()).map(|t| t.chars().count()).max();
            if fields.len() > 10 || longest.is_some_and(|n| n > FIELD_CHARS) {
                return Err(Invalid("section fields out of limits".to_owned()));
            }
        }
        if let Some(id) = block["block_id"].as_str()
            && id.len() > 255
        {
            return Err(Invalid("block_id longer than 255".to_owned()));
        }
        if block["type"] == "actions" {
            let elements = block["elements"].as_array().map_or(0, Vec::len);
            if elements == 0 || elements > ACTION_ELEMENTS {
                return Err(Invalid(format!("actions block with {elements} elements")));
            }
        }
        if block["type"] == "context" {
            let elements = block["elements"].as_array().map_or(0, Vec::len);
            if elements == 0 || elements > 10 {
                return Err(Invalid(format!("context block with {elements} elements")));
            }
            for element in block["elements"].as_array().into_iter().flatten() {
                let n = element["text"].as_str().map_or(0, |t| t.chars().count());
                if n > SECTION_CHARS {
                    return Err(Invalid(format!("context text of {n} characters")));
                }
            }
        }
        for element in block["elements"].as_array().into_iter().flatten().chain(block.get("accessory")) {
            if element["type"] == "button" {
                let label = element["text"]["text"].as_str().unwrap_or_default().chars().count();
                let value = element["value"].as_str().unwrap_or_default().len();
                let action = element["action_id"].as_str().unwrap_or_default().len();
                let url = element["url"].as_str().unwrap_or_default().chars().count();
                if label == 0
                    || label > BUTTON_LABEL_CHARS
                    || value > BUTTON_VALUE_BYTES
                    || action > 255
                    || url > URL_CHARS
                {
                    return Err(Invalid(format!("button out of limits: {element}")));
                }
            }
            if let Some(text) = element["confirm"]["text"]["text"].as_str()
                && text.chars().count() > CONFIRM_CHARS
            {
                return Err(Invalid(format!("confirmation text of {} characters", text.chars().count())));
            }
        }
    }
    if max_blocks == MESSAGE_BLOCKS && chars > MESSAGE_CHARS {
        return Err(Invalid(format!("{chars} characters of section text in one message")));
    }
    Ok(())
}
