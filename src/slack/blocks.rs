//! Block Kit rendering: view models in, Slack messages and views out.
//!
//! Every function here is pure (no I/O, no clock): what the bridge wants to show is
//! described by a small view struct, and the result is the exact JSON Slack receives, split
//! to Slack's limits. Agent text goes through [`super::mrkdwn`], so nothing rendered here
//! can ping a channel. [`validate`] checks a rendering against slack-morphism's block
//! types and Slack's published limits; the tests run it over everything rendered.

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
/// Messages one agent reply may take before the rest goes into a file.
pub const REPLY_MESSAGES: usize = 8;
/// Characters of a command's output shown in the thread; the full output goes in a file.
pub const OUTPUT_PREVIEW_CHARS: usize = 2500;

/// A message: the blocks, and the plain `text` Slack shows in notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Notification and screen-reader text.
    pub text: String,
    /// The blocks.
    pub blocks: Vec<Value>,
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
    /// Green for the one main action.
    pub primary: bool,
}

impl Button {
    /// A button that sends `action_id` with `value`.
    pub fn action(label: &str, action_id: &str, value: impl Into<String>) -> Self {
        Self {
            label: label.to_owned(),
            action_id: action_id.to_owned(),
            value: Some(value.into()),
            url: None,
            primary: false,
        }
    }

    /// A button that opens `url`.
    pub fn link(label: &str, action_id: &str, url: &str) -> Self {
        Self {
            label: label.to_owned(),
            action_id: action_id.to_owned(),
            value: None,
            url: Some(url.to_owned()),
            primary: false,
        }
    }

    /// Marks the button as the main action.
    pub fn primary(mut self) -> Self {
        self.primary = true;
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
    if b.primary {
        v["style"] = json!("primary");
    }
    v
}

pub(crate) fn actions(buttons: &[Button]) -> Vec<Value> {
    buttons
        .chunks(ACTION_ELEMENTS)
        .map(|chunk| json!({"type": "actions", "elements": chunk.iter().map(button).collect::<Vec<_>>()}))
        .collect()
}

/// Cuts `text` to at most `max` characters, marking the cut with an ellipsis.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Slack's mention syntax for a user: renders as their name.
pub(crate) fn user(id: &UserId) -> String {
    format!("<@{}>", mrkdwn::escape(id.as_str()))
}

// === agent replies ===

/// Where a reply is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyState {
    /// Text is still arriving.
    Streaming,
    /// The turn ended.
    Done,
    /// The turn ended early; the reason is shown under the text.
    Interrupted(String),
}

/// A reply as far as it has come.
#[derive(Debug, Clone)]
pub struct ReplyView<'a> {
    /// The agent's name.
    pub agent: &'a str,
    /// The text so far, in the agent's Markdown.
    pub markdown: &'a str,
    /// The agent's latest status line ("Running tool: kubectl").
    pub status: Option<&'a str>,
    /// Streaming, done or interrupted.
    pub state: ReplyState,
}

/// A reply rendered into as many messages as it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyPages {
    /// The messages, in thread order.
    pub messages: Vec<Message>,
    /// Whether text was left out (it then belongs in a file; the last message says so).
    pub truncated: bool,
}

/// Renders a reply. Text is split into sections of at most [`SECTION_CHARS`] and messages
/// of at most [`MESSAGE_CHARS`]; past [`REPLY_MESSAGES`] messages the rest is left out
/// with a visible note.
pub fn reply(view: &ReplyView<'_>) -> ReplyPages {
    let converted = mrkdwn::from_markdown(view.markdown);
    let sections = mrkdwn::split(&converted, SECTION_CHARS);
    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut page_chars = 0;
    for s in sections {
        let len = s.chars().count();
        match pages.last_mut() {
            // One section of room is kept for the status line and notes.
            Some(page) if page_chars + len <= MESSAGE_CHARS && page.len() < MESSAGE_BLOCKS - 4 => {
                page_chars += len;
                page.push(s);
            }
            _ => {
                page_chars = len;
                pages.push(vec![s]);
            }
        }
    }
    let truncated = pages.len() > REPLY_MESSAGES;
    pages.truncate(REPLY_MESSAGES);
    let count = pages.len();
    let mut messages: Vec<Message> = pages
        .into_iter()
        .enumerate()
        .map(|(i, page)| {
            let fallback = format!("{} replied", view.agent);
            let mut blocks: Vec<Value> = page.into_iter().map(section).collect();
            if i + 1 < count {
                blocks.push(context("_continued below_ ⤵"));
            }
            Message { text: fallback, blocks }
        })
        .collect();
    let agent = mrkdwn::escape_inert(view.agent);
    let mut footer = Vec::new();
    match &view.state {
        ReplyState::Streaming => {
            let status = view.status.filter(|s| !s.trim().is_empty()).unwrap_or("working…");
            footer.push(context(format!("⏳ *{agent}* · {}", mrkdwn::escape_inert(&truncate(status, 300)))));
        }
        ReplyState::Done if messages.is_empty() => {
            footer.push(context(format!("_{agent} finished without a reply._")));
        }
        ReplyState::Done => {}
        ReplyState::Interrupted(reason) => footer
            .push(context(format!("⚠️ _The reply was interrupted: {}_", mrkdwn::escape_inert(&truncate(reason, 500))))),
    }
    if truncated {
        footer.push(context("✂️ _The reply is too long for Slack; the full text is attached as a file._"));
    }
    match messages.last_mut() {
        Some(last) => last.blocks.extend(footer),
        None => messages.push(Message { text: format!("{} is working", view.agent), blocks: footer }),
    }
    ReplyPages { messages, truncated }
}

// === what the agent ran, and links ===

/// A command the agent ran.
#[derive(Debug, Clone)]
pub struct ExecutedView<'a> {
    /// The command.
    pub command: &'a str,
    /// What it printed.
    pub output: &'a str,
}

/// Executed commands and their output. Returns the messages and, for each command,
/// whether its output was cut (the full output then belongs in a file).
pub fn executed(commands: &[ExecutedView<'_>]) -> (Vec<Message>, Vec<bool>) {
    let mut cut = Vec::with_capacity(commands.len());
    let mut blocks = Vec::new();
    for c in commands {
        let command = truncate(c.command, SECTION_CHARS - 40);
        blocks.push(section(format!("✅ Ran\n```\n{}\n```", mrkdwn::escape(&command))));
        let output = c.output.trim_end();
        let was_cut = output.chars().count() > OUTPUT_PREVIEW_CHARS;
        cut.push(was_cut);
        if output.is_empty() {
            blocks.push(context("_no output_"));
            continue;
        }
        let shown: String = output.chars().take(OUTPUT_PREVIEW_CHARS).collect();
        blocks.push(section(format!("```\n{}\n```", mrkdwn::escape(&shown))));
        if was_cut {
            blocks.push(context(format!(
                "✂️ _Output truncated at {OUTPUT_PREVIEW_CHARS} of {} characters; the full output is attached as a file._",
                output.chars().count()
            )));
        }
    }
    let messages = pack(blocks, "Commands the agent ran");
    (messages, cut)
}

/// Links the agent offers, as buttons (with a text list for any a button cannot carry).
pub fn links(links: &[(String, String)]) -> Message {
    let mut buttons = Vec::new();
    let mut listed = Vec::new();
    for (i, (url, description)) in links.iter().enumerate() {
        let label = if description.trim().is_empty() { url.as_str() } else { description.as_str() };
        let web = url.starts_with("https://") || url.starts_with("http://");
        if web && url.chars().count() <= 3000 && buttons.len() < ACTION_ELEMENTS * 2 {
            buttons.push(Button::link(label, &format!("agent_link_{i}"), url));
        } else {
            listed.push(format!("• {}", mrkdwn::escape_inert(&truncate(&format!("{label}: {url}"), 500))));
        }
    }
    let mut blocks = vec![section("🔗 *Links from the agent*")];
    blocks.extend(actions(&buttons));
    if !listed.is_empty() {
        blocks.push(section(truncate(&listed.join("\n"), SECTION_CHARS)));
    }
    Message { text: "Links from the agent".to_owned(), blocks }
}

/// Packs blocks into messages within the block and character limits.
fn pack(blocks: Vec<Value>, fallback: &str) -> Vec<Message> {
    let mut messages: Vec<Message> = Vec::new();
    let mut chars = 0;
    for block in blocks {
        let len = block_chars(&block);
        match messages.last_mut() {
            Some(m) if m.blocks.len() < MESSAGE_BLOCKS && chars + len <= MESSAGE_CHARS => {
                chars += len;
                m.blocks.push(block);
            }
            _ => {
                chars = len;
                messages.push(Message { text: fallback.to_owned(), blocks: vec![block] });
            }
        }
    }
    messages
}

fn block_chars(block: &Value) -> usize {
    block["text"]["text"].as_str().map_or(0, |t| t.chars().count())
}

// === notices ===

/// A short notice from the bridge, with optional buttons. `text` is plain text.
pub fn notice(text: &str, buttons: &[Button]) -> Message {
    let mut blocks = vec![section(mrkdwn::escape_inert(&truncate(text, SECTION_CHARS)))];
    blocks.extend(actions(buttons));
    Message { text: truncate(text, FALLBACK_CHARS), blocks }
}

/// A notice whose text is already mrkdwn the bridge wrote itself (for mentions of users
/// and bold labels); only call it with text that contains no agent or user input
/// except through [`mrkdwn::escape_inert`].
pub fn notice_mrkdwn(text: &str, buttons: &[Button]) -> Message {
    let mut blocks = vec![section(truncate(text, SECTION_CHARS))];
    blocks.extend(actions(buttons));
    Message { text: truncate(&super::markup::unescape(text), FALLBACK_CHARS), blocks }
}

// === the "create ticket" modal ===

/// A choice in a select menu: (value, label).
pub type Choice = (String, String);

/// What the ticket-creation modal offers.
#[derive(Debug, Clone)]
pub struct CreateModalView<'a> {
    /// The title to start from.
    pub title: &'a str,
    /// HelpDesk workspaces to choose from.
    pub workspaces: &'a [Choice],
    /// Agents to choose from.
    pub agents: &'a [Choice],
    /// Preselected workspace id.
    pub workspace: Option<&'a str>,
    /// Preselected agent id.
    pub agent: Option<&'a str>,
    /// Opaque context handed back on submission.
    pub private_metadata: &'a str,
}

/// Callback id of the ticket-creation modal.
pub const CREATE_MODAL: &str = "create_ticket";
/// Block and action ids of its inputs.
pub const CREATE_TITLE: (&str, &str) = ("title", "title_input");
/// The workspace select.
pub const CREATE_WORKSPACE: (&str, &str) = ("workspace", "workspace_select");
/// The agent select.
pub const CREATE_AGENT: (&str, &str) = ("agent", "agent_select");

pub(crate) fn select(ids: (&str, &str), label: &str, choices: &[Choice], selected: Option<&str>) -> Value {
    let option = |(value, text): &Choice| json!({"text": plain(text, 75), "value": truncate(value, 150)});
    let mut element = json!({
        "type": "static_select",
        "action_id": ids.1,
        "placeholder": plain(&format!("Choose {}", label.to_lowercase()), 150),
        "options": choices.iter().take(100).map(option).collect::<Vec<_>>(),
    });
    if let Some(chosen) = selected.and_then(|s| choices.iter().take(100).find(|(v, _)| v == s)) {
        element["initial_option"] = option(chosen);
    }
    json!({"type": "input", "block_id": ids.0, "label": plain(label, 2000), "element": element})
}

/// The modal that creates a ticket when the channel has no defaults.
pub fn create_modal(view: &CreateModalView<'_>) -> Value {
    json!({
        "type": "modal",
        "callback_id": CREATE_MODAL,
        "title": plain("New HelpDesk ticket", 24),
        "submit": plain("Create", 24),
        "close": plain("Cancel", 24),
        "private_metadata": view.private_metadata,
        "blocks": [
            {"type": "input", "block_id": CREATE_TITLE.0, "label": plain("Title", 2000), "element": {
                "type": "plain_text_input", "action_id": CREATE_TITLE.1, "max_length": 100,
                "initial_value": truncate(view.title, 100)}},
            select(CREATE_WORKSPACE, "Workspace", view.workspaces, view.workspace),
            select(CREATE_AGENT, "Agent", view.agents, view.agent),
        ],
    })
}

// === validation ===

/// Why a rendering would be refused by Slack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Block Kit: {0}")]
pub struct Invalid(pub String);

/// Checks blocks against slack-morphism's block types (every block must be a known type
/// with a valid body) and Slack's limits for a message (`max_blocks` 50) or a view (100).
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
            chars += n;
            if n > SECTION_CHARS || n == 0 {
                return Err(Invalid(format!("section text of {n} characters")));
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
        if block["type"] == "context" && block["elements"].as_array().map_or(0, Vec::len) > 10 {
            return Err(Invalid("context block with more than 10 elements".to_owned()));
        }
        for element in block["elements"].as_array().into_iter().flatten() {
            if element["type"] == "button" {
                let label = element["text"]["text"].as_str().unwrap_or_default().chars().count();
                let value = element["value"].as_str().unwrap_or_default().len();
                let action = element["action_id"].as_str().unwrap_or_default().len();
                if label == 0 || label > BUTTON_LABEL_CHARS || value > 2000 || action > 255 {
                    return Err(Invalid(format!("button out of limits: {element}")));
                }
            }
        }
    }
    if max_blocks == MESSAGE_BLOCKS && chars > MESSAGE_CHARS {
        return Err(Invalid(format!("{chars} characters of section text in one message")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(m: &Message) {
        validate(&m.blocks, MESSAGE_BLOCKS).unwrap();
        assert!(m.text.chars().count() <= FALLBACK_CHARS);
    }

    #[test]
    fn streaming_reply_snapshot() {
        let pages = reply(&ReplyView {
            agent: "generic-agent",
            markdown: "Checking **pods**:\n\n```\nkubectl get pods\n",
            status: Some("Running tool: kubectl"),
            state: ReplyState::Streaming,
        });
        assert_eq!(pages.messages.len(), 1);
        valid(&pages.messages[0]);
        insta::assert_json_snapshot!(pages.messages[0].blocks);
    }

    #[test]
    fn empty_and_interrupted_replies_say_so() {
        let done = reply(&ReplyView { agent: "a", markdown: "", status: None, state: ReplyState::Done });
        assert_eq!(done.messages.len(), 1);
        assert!(done.messages[0].blocks[0]["elements"][0]["text"].as_str().unwrap().contains("without a reply"));
        let cut = reply(&ReplyView {
            agent: "a",
            markdown: "partial",
            status: None,
            state: ReplyState::Interrupted("the HelpDesk closed the stream".to_owned()),
        });
        let last = cut.messages[0].blocks.last().unwrap();
        assert!(last["elements"][0]["text"].as_str().unwrap().contains("interrupted"));
        valid(&cut.messages[0]);
    }

    #[test]
    fn long_replies_split_within_limits_and_truncate_visibly() {
        let paragraph = "word ".repeat(300);
        let markdown = (0..30).map(|i| format!("## Part {i}\n\n{paragraph}")).collect::<Vec<_>>().join("\n\n");
        let pages = reply(&ReplyView { agent: "a", markdown: &markdown, status: None, state: ReplyState::Done });
        assert!(pages.messages.len() > 1);
        assert!(!pages.truncated);
        pages.messages.iter().for_each(valid);

        let huge = "x ".repeat(60_000);
        let pages = reply(&ReplyView { agent: "a", markdown: &huge, status: None, state: ReplyState::Done });
        assert!(pages.truncated);
        assert_eq!(pages.messages.len(), REPLY_MESSAGES);
        pages.messages.iter().for_each(valid);
        let last = pages.messages.last().unwrap().blocks.last().unwrap().to_string();
        assert!(last.contains("attached as a file"));
    }

    #[test]
    fn executed_output_is_truncated_with_a_note() {
        let long = "line\n".repeat(2000);
        let (messages, cut) = executed(&[
            ExecutedView { command: "kubectl get pods -n <ns>", output: "web-1 Running" },
            ExecutedView { command: "journalctl", output: &long },
            ExecutedView { command: "true", output: "" },
        ]);
        assert_eq!(cut, vec![false, true, false]);
        messages.iter().for_each(valid);
        insta::assert_json_snapshot!(messages[0].blocks);
    }

    #[test]
    fn links_become_buttons() {
        let m = links(&[
            ("https://grafana.example.com/d/1".to_owned(), "CPU dashboard".to_owned()),
            ("ftp://old.example.com".to_owned(), "archive".to_owned()),
        ]);
        valid(&m);
        insta::assert_json_snapshot!(m.blocks);
    }

    #[test]
    fn create_modal_snapshot() {
        let workspaces = vec![("ws1".to_owned(), "devops".to_owned())];
        let agents = vec![("ag1".to_owned(), "generic-agent".to_owned()), ("ag2".to_owned(), "k8s".to_owned())];
        let v = create_modal(&CreateModalView {
            title: "Disk full",
            workspaces: &workspaces,
            agents: &agents,
            workspace: Some("ws1"),
            agent: None,
            private_metadata: "p1",
        });
        let view: slack_morphism::prelude::SlackView = serde_json::from_value(v.clone()).unwrap();
        assert!(matches!(view, slack_morphism::prelude::SlackView::Modal(_)));
        validate(v["blocks"].as_array().unwrap(), VIEW_BLOCKS).unwrap();
        insta::assert_json_snapshot!(v);
    }

    #[test]
    fn validate_refuses_what_slack_refuses() {
        assert!(validate(&[json!({"type": "sektion"})], 50).is_err());
        assert!(validate(&[section("x".repeat(3001))], 50).is_err());
        assert!(validate(&vec![section("x"); 51], 50).is_err());
        let many: Vec<Button> = (0..26).map(|i| Button::action("b", &format!("a{i}"), "v")).collect();
        let block = json!({"type": "actions", "elements": many.iter().map(button).collect::<Vec<_>>()});
        assert!(validate(&[block], 50).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_text_renders_valid_block_kit(markdown in "(?s).{0,6000}", status in proptest::option::of(".{0,300}")) {
            for state in [ReplyState::Streaming, ReplyState::Done, ReplyState::Interrupted("cut".to_owned())] {
                let pages = reply(&ReplyView { agent: "a <@U1>", markdown: &markdown, status: status.as_deref(), state });
                for message in &pages.messages {
                    validate(&message.blocks, MESSAGE_BLOCKS).unwrap();
                    proptest::prop_assert!(message.text.chars().count() <= FALLBACK_CHARS);
                    proptest::prop_assert!(!message.blocks.iter().any(|b| b.to_string().contains("<!")));
                }
            }
        }
    }
}
