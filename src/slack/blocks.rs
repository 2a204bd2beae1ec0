//! Block Kit rendering: view models in, Slack messages and views out.
//!
//! Every function here is pure (no I/O, no clock): what the bridge wants to show is
//! described by a small view struct, and the result is the exact JSON Slack receives, split
//! to Slack's limits. Agent text goes through [`super::mrkdwn`], so nothing rendered here
//! can ping a channel, in the blocks or in the notification `text`, and code shown here
//! cannot be closed from inside. Limits are kept on the escaped text (escaping can make
//! text five times longer); what is cut is said, and the caller attaches the whole.
//! [`validate`] checks a rendering against slack-morphism's block types and Slack's
//! published limits; the tests run it over everything rendered.

use serde_json::{Value, json};

use super::{
    kit::{
        self, ACTION_ELEMENTS, BUTTON_LABEL_CHARS, Button, Choice, FALLBACK_CHARS, MESSAGE_BLOCKS, MESSAGE_CHARS,
        Message, SECTION_CHARS, URL_CHARS, Upload, actions, context, plain, section, sections, truncate,
    },
    mrkdwn,
};

/// Messages one agent reply may take before the rest goes into a file.
pub const REPLY_MESSAGES: usize = 8;
/// Characters of a command's output shown in the thread (escaped, as a code block); the
/// full output goes in a file.
pub const OUTPUT_PREVIEW_CHARS: usize = 2500;
/// Characters of an agent's name wherever it is shown.
const AGENT_CHARS: usize = 100;
/// Characters of the real host a misleading button label is followed by.
const HOST_CHARS: usize = 40;

/// The last `max` characters of `text`, with `…` before them when it is longer: the end of
/// a host name is the part that says whose it is.
fn tail(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_owned();
    }
    let mut out = String::from("…");
    out.extend(text.chars().skip(count - max.saturating_sub(1)));
    out
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
    let agent = mrkdwn::inert_within(view.agent, AGENT_CHARS);
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
            let fallback = format!("{agent} replied");
            let mut blocks: Vec<Value> = page.into_iter().map(section).collect();
            if i + 1 < count {
                blocks.extend(continued_below());
            }
            Message { text: fallback, blocks }
        })
        .collect();
    let mut footer = Vec::new();
    match &view.state {
        ReplyState::Streaming => {
            let status = view.status.filter(|s| !s.trim().is_empty()).unwrap_or("working…");
            footer.push(context(format!("⏳ *{agent}* · {}", mrkdwn::inert_within(status, 300))));
        }
        state => footer.extend(ending(&agent, state, !messages.is_empty())),
    }
    if truncated {
        footer.push(context("✂️ _The reply is too long for Slack; the full text is attached as a file._"));
    }
    match messages.last_mut() {
        Some(last) => last.blocks.extend(footer),
        None => messages.push(Message { text: format!("{agent} is working"), blocks: footer }),
    }
    ReplyPages { messages, truncated }
}

/// What closes a finished reply: a note when it was interrupted, or when the agent said
/// nothing. `agent` is already inert mrkdwn.
fn ending(agent: &str, state: &ReplyState, wrote: bool) -> Option<Value> {
    match state {
        ReplyState::Interrupted(reason) => {
            Some(context(format!("⚠️ _The reply was interrupted: {}_", mrkdwn::inert_within(reason, 500))))
        }
        ReplyState::Done if !wrote => Some(context(format!("_{agent} finished without a reply._"))),
        ReplyState::Done | ReplyState::Streaming => None,
    }
}

/// The note at the bottom of a streamed message that is full, whose reply goes on below.
pub fn continued_below() -> Vec<Value> {
    vec![context("_continued below_ ⤵")]
}

/// The closing note of a streamed reply as a message of its own, for when Slack had ended
/// the stream before it could carry it.
pub fn ending_note(agent: &str, blocks: Vec<Value>) -> Message {
    Message { text: format!("{} replied", mrkdwn::inert_within(agent, AGENT_CHARS)), blocks }
}

/// The blocks at the bottom of a natively streamed reply when it ends (`chat.stopStream`):
/// the same closing notes as an edited reply's. `wrote`: whether any text was streamed.
pub fn stream_ending(agent: &str, state: &ReplyState, wrote: bool) -> Vec<Value> {
    ending(&mrkdwn::inert_within(agent, AGENT_CHARS), state, wrote).into_iter().collect()
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

/// What [`executed`] had to shorten of one command; the whole then belongs in a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shortened {
    /// The command itself was cut.
    pub command: bool,
    /// Its output was cut.
    pub output: bool,
}

/// The file for an executed command that the thread shows cut: the whole command and its
/// output when the command was cut, the whole output when only that was; `None` when nothing
/// was cut.
pub fn executed_file(command: &str, output: &str, shortened: &Shortened) -> Option<Upload> {
    let short = truncate(command, 60);
    if shortened.command {
        let content = format!("$ {command}\n\n{output}");
        Some(Upload { name: "command.txt".to_owned(), title: format!("Command {short} and its output"), content })
    } else if shortened.output {
        Some(Upload { name: "output.txt".to_owned(), title: format!("Output of {short}"), content: output.to_owned() })
    } else {
        None
    }
}

/// The file for links that did not fit their message: one `description: url` per line.
pub fn links_file(links: &[(String, String)]) -> Upload {
    let content = links.iter().map(|(url, description)| format!("{description}: {url}\n")).collect();
    Upload { name: "links.txt".to_owned(), title: "Links from the agent".to_owned(), content }
}

/// The file for a reply too long for the thread: the agent's Markdown, whole.
pub fn reply_file(markdown: &str) -> Upload {
    Upload { name: "reply.md".to_owned(), title: "The agent's full reply".to_owned(), content: markdown.to_owned() }
}

/// How an executed command starts.
const RAN: &str = "✅ Ran\n";

/// Executed commands and their output, as code blocks within the section limit after
/// escaping. Returns the messages and, for each command, what was cut (the whole then
/// belongs in a file; the messages say so).
pub fn executed(commands: &[ExecutedView<'_>]) -> (Vec<Message>, Vec<Shortened>) {
    let mut shortened = Vec::with_capacity(commands.len());
    let mut blocks = Vec::new();
    for c in commands {
        let command = mrkdwn::code_block_within(c.command, SECTION_CHARS - RAN.chars().count());
        blocks.push(section(format!("{RAN}{}", command.text)));
        if command.cut {
            blocks.push(context(format!(
                "✂️ _Command shortened at {} of {} characters; the whole command is attached as a file._",
                command.shown,
                c.command.chars().count()
            )));
        }
        let output = c.output.trim_end();
        if output.is_empty() {
            blocks.push(context("_no output_"));
            shortened.push(Shortened { command: command.cut, output: false });
            continue;
        }
        let shown = mrkdwn::code_block_within(output, OUTPUT_PREVIEW_CHARS);
        blocks.push(section(shown.text));
        if shown.cut {
            blocks.push(context(format!(
                "✂️ _Output truncated at {} of {} characters; the full output is attached as a file._",
                shown.shown,
                output.chars().count()
            )));
        }
        shortened.push(Shortened { command: command.cut, output: shown.cut });
    }
    let messages = pack(blocks, "Commands the agent ran");
    (messages, shortened)
}

/// Characters of the text list of links a message shows; the rest go in a file.
const LINK_LIST_CHARS: usize = 9000;

/// A button label for a link: the agent's label, followed by the real host when the label
/// names another one.
fn link_label(label: &str, url: &str) -> String {
    match mrkdwn::misleading_label(label, url) {
        Some(real) => {
            let suffix = format!(" ({})", tail(&real, HOST_CHARS));
            let room = BUTTON_LABEL_CHARS.saturating_sub(suffix.chars().count());
            format!("{}{suffix}", truncate(label, room))
        }
        None => label.to_owned(),
    }
}

/// Links the agent offers, as buttons (with a text list for any a button cannot carry).
/// A label that names another host than its link shows the real one. Returns the message
/// and whether some links did not fit in it (the whole list then belongs in a file; the
/// message says so).
pub fn links(links: &[(String, String)]) -> (Message, bool) {
    let mut buttons = Vec::new();
    let mut listed = Vec::new();
    for (i, (url, description)) in links.iter().enumerate() {
        let label = if description.trim().is_empty() { url.as_str() } else { description.as_str() };
        let web = url.starts_with("https://") || url.starts_with("http://");
        if web && url.chars().count() <= URL_CHARS && buttons.len() < ACTION_ELEMENTS * 2 {
            buttons.push(Button::link(&link_label(label, url), &super::controls::action::agent_link(i), url));
        } else {
            listed.push(format!("• {}", mrkdwn::inert_within(&format!("{label}: {url}"), 500)));
        }
    }
    let mut blocks = vec![section("🔗 *Links from the agent*")];
    blocks.extend(actions(&buttons));
    let (mut chunk, mut used, mut left_out) = (String::new(), 0, 0);
    for item in &listed {
        let len = item.chars().count() + 1;
        if used + len > LINK_LIST_CHARS {
            left_out += 1;
            continue;
        }
        if chunk.chars().count() + len > SECTION_CHARS {
            blocks.push(section(std::mem::take(&mut chunk)));
        }
        if !chunk.is_empty() {
            chunk.push('\n');
        }
        chunk.push_str(item);
        used += len;
    }
    if !chunk.is_empty() {
        blocks.push(section(chunk));
    }
    if left_out > 0 {
        let more = if left_out == 1 { "1 more link".to_owned() } else { format!("{left_out} more links") };
        blocks.push(context(format!("✂️ _…and {more}; the whole list is attached as a file._")));
    }
    (Message { text: "Links from the agent".to_owned(), blocks }, left_out > 0)
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

/// A short notice from the bridge, with optional buttons. `text` is plain text, and may
/// hold anyone's words: it is escaped and made inert, in the blocks and in the
/// notification text alike.
pub fn notice(text: &str, buttons: &[Button]) -> Message {
    let mut blocks = sections(&mrkdwn::escape_inert(text), MESSAGE_CHARS);
    blocks.extend(actions(buttons));
    Message { text: mrkdwn::inert_within(text, FALLBACK_CHARS), blocks }
}

/// A notice whose text is already mrkdwn the bridge wrote itself (for mentions of users
/// and bold labels); only call it with text that contains no agent or user input
/// except through [`mrkdwn::escape_inert`]. The notification text is the same mrkdwn, as
/// inert as the blocks, so the bridge's own mentions stay and nothing else comes alive.
pub fn notice_mrkdwn(text: &str, buttons: &[Button]) -> Message {
    let mut blocks = sections(text, MESSAGE_CHARS);
    blocks.extend(actions(buttons));
    Message { text: mrkdwn::cut(text, FALLBACK_CHARS), blocks }
}

// === the "create ticket" modal ===

/// One portal's workspaces and agents, as the creation and *Update context* forms offer
/// them: (id, name) each.
#[derive(Debug, Clone, Default)]
pub struct PortalLists {
    /// The portal's name.
    pub portal: String,
    /// Its workspaces to choose from.
    pub workspaces: Vec<Choice>,
    /// Its agents to choose from.
    pub agents: Vec<Choice>,
}

/// The workspace and agent inputs of a form, grouped by portal when there are several;
/// `several` says whether the form speaks of portals at all (a portal that could not be
/// listed is one); `workspace` and `agent` preselect (portal, id).
pub(crate) fn target_inputs(
    lists: &[PortalLists],
    several: bool,
    workspace: Option<(&str, &str)>,
    agent: Option<(&str, &str)>,
) -> [Value; 2] {
    use super::controls::input;
    let portals = |pick: fn(&PortalLists) -> &[Choice]| -> Vec<kit::PortalChoices<'_>> {
        lists.iter().map(|l| (l.portal.as_str(), pick(l))).collect()
    };
    let where_label = if several { "Portal and workspace" } else { "Workspace" };
    [
        kit::placed_select(input::WORKSPACE, where_label, &portals(|l| &l.workspaces), workspace),
        kit::placed_select(input::AGENT, "Agent", &portals(|l| &l.agents), agent),
    ]
}

/// What the ticket-creation modal offers.
#[derive(Debug, Clone)]
pub struct CreateModalView<'a> {
    /// The title to start from.
    pub title: &'a str,
    /// Each portal's workspaces and agents, the channel's portal first.
    pub lists: &'a [PortalLists],
    /// Preselected workspace, as (portal, id).
    pub workspace: Option<(&'a str, &'a str)>,
    /// Preselected agent, as (portal, id).
    pub agent: Option<(&'a str, &'a str)>,
    /// Opaque context handed back on submission.
    pub private_metadata: &'a str,
}

/// The modal that creates a ticket when the channel has no defaults.
pub fn create_modal(view: &CreateModalView<'_>) -> Value {
    let [workspace, agent] = target_inputs(view.lists, view.lists.len() > 1, view.workspace, view.agent);
    json!({
        "type": "modal",
        "callback_id": super::controls::callback::CREATE,
        "title": plain("New HelpDesk ticket", 24),
        "submit": plain("Create", 24),
        "close": plain("Cancel", 24),
        "private_metadata": view.private_metadata,
        "blocks": [
            {"type": "input", "block_id": super::controls::input::TITLE.0, "label": plain("Title", 2000), "element": {
                "type": "plain_text_input", "action_id": super::controls::input::TITLE.1, "max_length": 100,
                "initial_value": truncate(view.title, 100)}},
            workspace,
            agent,
        ],
    })
}

// === feedback on a reply ===

/// Slack's 👍 / 👎 feedback buttons, as the block to append under an agent's final reply
/// (on the last message of a reply that takes several, or on `chat.stopStream`'s
/// `blocks`). A click comes back as the [`super::controls::action::FEEDBACK`] action on
/// the clicked message, its value naming the rating; the message itself says which reply.
/// No `block_id`: Slack gives each message its own.
pub fn feedback() -> Value {
    use super::controls::{action, feedback_value};
    use crate::model::Rating;
    let button = |rating: Rating, label: &str| {
        json!({"text": plain(rating.emoji(), BUTTON_LABEL_CHARS), "value": feedback_value(rating),
            "accessibility_label": truncate(label, BUTTON_LABEL_CHARS)})
    };
    json!({"type": "context_actions", "elements": [{
        "type": "feedback_buttons",
        "action_id": action::FEEDBACK,
        "positive_button": button(Rating::Positive, "This reply helped"),
        "negative_button": button(Rating::Negative, "This reply did not help"),
    }]})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slack::kit::{VIEW_BLOCKS, button, validate};
    use crate::slack::mrkdwn::tests::inert_problem;

    fn valid(m: &Message) {
        validate(&m.blocks, MESSAGE_BLOCKS).unwrap();
        assert!(m.text.chars().count() <= FALLBACK_CHARS);
    }

    /// Every text of a message as Slack reads it: the notification text, then each
    /// section's and context element's mrkdwn.
    fn texts(m: &Message) -> Vec<String> {
        let mut out = vec![m.text.clone()];
        for block in &m.blocks {
            out.extend(block["text"]["text"].as_str().map(str::to_owned));
            for element in block["elements"].as_array().into_iter().flatten() {
                out.extend(element["text"].as_str().map(str::to_owned));
            }
        }
        out
    }

    /// Valid Block Kit, and nothing in it (notification text included) can ping or break
    /// out of a code block.
    fn valid_and_inert(m: &Message) -> Result<(), String> {
        validate(&m.blocks, MESSAGE_BLOCKS).map_err(|e| e.to_string())?;
        if m.text.chars().count() > FALLBACK_CHARS {
            return Err(format!("fallback of {} characters", m.text.chars().count()));
        }
        for text in texts(m) {
            if let Some(problem) = inert_problem(&text) {
                return Err(format!("{problem} in {text:?}"));
            }
            if text.contains("<@") {
                return Err(format!("a mention in {text:?}"));
            }
        }
        Ok(())
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
        let output_cut: Vec<bool> = cut.iter().map(|c| c.output).collect();
        assert_eq!(output_cut, vec![false, true, false]);
        assert!(cut.iter().all(|c| !c.command));
        messages.iter().for_each(valid);
        insta::assert_json_snapshot!(messages[0].blocks);
    }

    #[test]
    fn executed_code_cannot_be_closed_from_inside() {
        let (messages, cut) =
            executed(&[ExecutedView { command: "echo ```\n@here <!channel>", output: "```\n<!here> *live*\n```" }]);
        assert_eq!(cut, vec![Shortened::default()]);
        valid_and_inert(&messages[0]).unwrap();
        assert_eq!(
            messages[0].blocks[0]["text"]["text"],
            "✅ Ran\n```\necho `\u{200B}`\u{200B}`\n@here &lt;!channel&gt;\n```"
        );
        assert_eq!(
            messages[0].blocks[1]["text"]["text"],
            "```\n`\u{200B}`\u{200B}`\n&lt;!here&gt; *live*\n`\u{200B}`\u{200B}`\n```"
        );
    }

    #[test]
    fn executed_commands_and_outputs_fit_after_escaping() {
        let command = format!("echo {}", "&".repeat(2990));
        let output = "<".repeat(2500);
        let (messages, cut) = executed(&[ExecutedView { command: &command, output: &output }]);
        assert_eq!(cut, vec![Shortened { command: true, output: true }]);
        assert_eq!(messages.len(), 1);
        valid_and_inert(&messages[0]).unwrap();
        let blocks = &messages[0].blocks;
        let shown_command = blocks[0]["text"]["text"].as_str().unwrap();
        assert!(shown_command.chars().count() <= SECTION_CHARS);
        assert_eq!(shown_command, format!("✅ Ran\n```\necho {}…\n```", "&amp;".repeat(596)));
        assert_eq!(
            blocks[1]["elements"][0]["text"],
            "✂️ _Command shortened at 601 of 2995 characters; the whole command is attached as a file._"
        );
        assert_eq!(blocks[2]["text"]["text"], format!("```\n{}…\n```", "&lt;".repeat(622)));
        assert_eq!(
            blocks[3]["elements"][0]["text"],
            "✂️ _Output truncated at 622 of 2500 characters; the full output is attached as a file._"
        );
        let (_, cut) = executed(&[ExecutedView { command: &"x".repeat(2986), output: "" }]);
        assert_eq!(cut, vec![Shortened::default()], "2,986 plain characters still fit");
        let (_, cut) = executed(&[ExecutedView { command: &"x".repeat(2987), output: "" }]);
        assert_eq!(cut, vec![Shortened { command: true, output: false }]);
    }

    #[test]
    fn links_become_buttons() {
        let (m, more) = links(&[
            ("https://grafana.example.com/d/1".to_owned(), "CPU dashboard".to_owned()),
            ("ftp://old.example.com".to_owned(), "archive".to_owned()),
        ]);
        assert!(!more);
        valid(&m);
        insta::assert_json_snapshot!(m.blocks);
    }

    #[test]
    fn link_buttons_show_the_real_host() {
        let long_label = format!("good.example {}", "x".repeat(100));
        let long_host = format!("https://{}.evil.example/", "a".repeat(60));
        let (m, _) = links(&[
            ("https://evil.example/x".to_owned(), "https://good.example".to_owned()),
            ("https://evil.example".to_owned(), "good.example".to_owned()),
            ("https://good.example@evil.example/".to_owned(), "".to_owned()),
            ("https://grafana.example.com/d/1".to_owned(), "grafana.example.com".to_owned()),
            ("https://evil.example".to_owned(), "Grafana".to_owned()),
            (long_host.clone(), long_label),
        ]);
        valid(&m);
        let labels: Vec<&str> =
            m.blocks[1]["elements"].as_array().unwrap().iter().map(|b| b["text"]["text"].as_str().unwrap()).collect();
        assert_eq!(
            labels[..5],
            [
                "https://good.example (evil.example)",
                "good.example (evil.example)",
                "https://good.example@evil.example/ (evil.example)",
                "grafana.example.com",
                "Grafana",
            ]
        );
        assert_eq!(labels[5].chars().count(), BUTTON_LABEL_CHARS);
        assert!(labels[5].starts_with("good.example xxx"), "{}", labels[5]);
        assert!(labels[5].ends_with(" (…aaaaaaaaaaaaaaaaaaaaaaaaaa.evil.example)"), "{}", labels[5]);
    }

    #[test]
    fn links_past_the_message_go_to_a_file() {
        let many: Vec<(String, String)> = (0..100)
            .map(|i| (format!("ftp://files.example/{i}"), format!("archive {i} & more <!here> {}", "d".repeat(200))))
            .collect();
        let (m, more) = links(&many);
        assert!(more);
        valid_and_inert(&m).unwrap();
        let note = m.blocks.last().unwrap()["elements"][0]["text"].as_str().unwrap();
        assert!(note.ends_with("more links; the whole list is attached as a file._"), "{note}");
    }

    #[test]
    fn notices_are_inert_in_the_notification_too() {
        let m = notice("The HelpDesk said: <!channel> @here &lt;!everyone&gt; <@U1>", &[]);
        valid_and_inert(&m).unwrap();
        let expected =
            "The HelpDesk said: &lt;!channel&gt; @\u{2060}here &amp;lt;!everyone&amp;gt; &lt;@\u{2060}U1&gt;";
        assert_eq!(m.text, expected);
        assert_eq!(m.blocks[0]["text"]["text"], expected);

        let line = format!("↻ Retried by <@U1>: {}", mrkdwn::escape_inert("<!channel> @here"));
        let m = notice_mrkdwn(&line, &[]);
        assert_eq!(m.text, "↻ Retried by <@U1>: &lt;!channel&gt; @\u{2060}here", "the bridge's mention stays");
        assert_eq!(m.blocks[0]["text"]["text"], m.text);
        assert!(inert_problem(&m.text).is_none());
    }

    #[test]
    fn long_notices_split_instead_of_being_refused() {
        let text = "a & b < c\n".repeat(700);
        let m = notice(&text, &[Button::action("Retry", "retry", "v")]);
        valid_and_inert(&m).unwrap();
        let sections: Vec<&str> = m.blocks.iter().filter_map(|b| b["text"]["text"].as_str()).collect();
        assert!(sections.len() > 1);
        assert_eq!(sections.join("\n"), mrkdwn::escape_inert(text.trim_end()), "nothing lost");
        assert_eq!(m.blocks.last().unwrap()["type"], "actions");

        let huge = notice(&"&".repeat(5000), &[]);
        valid_and_inert(&huge).unwrap();
        let last = huge.blocks.last().unwrap()["text"]["text"].as_str().unwrap();
        assert!(last.ends_with("&amp;…"), "the cut is visible and outside an entity");
        assert!(huge.text.ends_with("&amp;…") && huge.text.chars().count() <= FALLBACK_CHARS);
    }

    #[test]
    fn reply_fallbacks_and_footers_are_inert() {
        let agent = "<!channel> @here";
        let pages = reply(&ReplyView {
            agent,
            markdown: "",
            status: Some(&"<!here> &".repeat(100)),
            state: ReplyState::Streaming,
        });
        valid_and_inert(&pages.messages[0]).unwrap();
        assert_eq!(pages.messages[0].text, "&lt;!channel&gt; @\u{2060}here is working");
        let footer = pages.messages[0].blocks[0]["elements"][0]["text"].as_str().unwrap();
        assert!(footer.chars().count() <= 400, "{footer}");
        let pages = reply(&ReplyView { agent, markdown: "hi", status: None, state: ReplyState::Done });
        assert_eq!(pages.messages[0].text, "&lt;!channel&gt; @\u{2060}here replied");
    }

    #[test]
    fn create_modal_snapshot() {
        let prod = PortalLists {
            portal: "prod".to_owned(),
            workspaces: vec![("ws1".to_owned(), "devops".to_owned())],
            agents: vec![("ag1".to_owned(), "generic-agent".to_owned()), ("ag2".to_owned(), "k8s".to_owned())],
        };
        let v = create_modal(&CreateModalView {
            title: "Disk full",
            lists: std::slice::from_ref(&prod),
            workspace: Some(("prod", "ws1")),
            agent: None,
            private_metadata: "p1",
        });
        let view: slack_morphism::prelude::SlackView = serde_json::from_value(v.clone()).unwrap();
        assert!(matches!(view, slack_morphism::prelude::SlackView::Modal(_)));
        validate(v["blocks"].as_array().unwrap(), VIEW_BLOCKS).unwrap();
        insta::assert_json_snapshot!(v);
    }

    #[test]
    fn create_modal_groups_the_choices_of_several_portals() {
        let lists = [
            PortalLists {
                portal: "prod".to_owned(),
                workspaces: vec![("ws1".to_owned(), "devops".to_owned())],
                agents: vec![("ag1".to_owned(), "generic-agent".to_owned())],
            },
            PortalLists {
                portal: "qa".to_owned(),
                // The same id on another portal is another choice.
                workspaces: vec![("ws1".to_owned(), "devops".to_owned()), ("x".repeat(160), "long".to_owned())],
                agents: Vec::new(),
            },
        ];
        let v = create_modal(&CreateModalView {
            title: "Disk full",
            lists: &lists,
            workspace: Some(("qa", "ws1")),
            agent: Some(("qa", "ag1")),
            private_metadata: "p1",
        });
        let _: slack_morphism::prelude::SlackView = serde_json::from_value(v.clone()).unwrap();
        validate(v["blocks"].as_array().unwrap(), VIEW_BLOCKS).unwrap();
        let workspace = &v["blocks"][1];
        assert_eq!(workspace["label"]["text"], "Portal and workspace");
        let groups = workspace["element"]["option_groups"].as_array().unwrap();
        let labels: Vec<&str> = groups.iter().map(|g| g["label"]["text"].as_str().unwrap()).collect();
        assert_eq!(labels, ["Portal prod", "Portal qa"]);
        let values: Vec<&str> = groups
            .iter()
            .flat_map(|g| g["options"].as_array().unwrap())
            .map(|o| o["value"].as_str().unwrap())
            .collect();
        assert_eq!(values, ["prod/ws1", "qa/ws1"], "an id too long for a value is left out, not cut");
        assert_eq!(workspace["element"]["initial_option"]["value"], "qa/ws1");
        let agent = &v["blocks"][2]["element"];
        assert_eq!(agent["options"].as_array().unwrap().len(), 1, "a portal without agents is no group");
        assert!(agent.get("initial_option").is_none(), "qa has no such agent to preselect");
    }

    #[test]
    fn validate_refuses_what_slack_refuses() {
        assert!(validate(&[json!({"type": "sektion"})], 50).is_err());
        assert!(validate(&[section("x".repeat(3001))], 50).is_err());
        assert!(validate(&vec![section("x"); 51], 50).is_err());
        let many: Vec<Button> = (0..26).map(|i| Button::action("b", &format!("a{i}"), "v")).collect();
        let block = json!({"type": "actions", "elements": many.iter().map(button).collect::<Vec<_>>()});
        assert!(validate(&[block], 50).is_err());
        assert!(validate(&[context("x".repeat(3001))], 50).is_err());
        assert!(validate(&[context("x".repeat(3000))], 50).is_ok());
        assert!(validate(&[json!({"type": "header", "text": plain(&"x".repeat(151), 200)})], 50).is_err());
        let mut confirmed = button(&Button::action("Go", "go", "v"));
        confirmed["confirm"] = json!({"title": plain("Sure?", 100), "text": {"type": "mrkdwn", "text": "x".repeat(301)},
            "confirm": plain("Yes", 30), "deny": plain("No", 30)});
        assert!(validate(&[json!({"type": "actions", "elements": [confirmed]})], 50).is_err());
        let long_url = button(&Button::link("Go", "go", &format!("https://x.example/{}", "a".repeat(3000))));
        assert!(validate(&[json!({"type": "actions", "elements": [long_url]})], 50).is_err());
    }

    /// Text built to hurt: escapes that grow, fences, mentions and broadcasts. The tests
    /// repeat it to reach past the limits (generating long strings is what costs time).
    const HOSTILE: &str = "(?s)(.|[&<>`@\n]|```|<!here>|<!channel>|<!subteam\\^S1>|<@U1>|@here|@everyone|&amp;){0,200}";
    /// The same, short.
    const HOSTILE_SHORT: &str = "(?s)(.|[&<>`@\n]|```|<!here>|<@U1>|@here|&amp;){0,30}";

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

        #[test]
        fn any_agent_markdown_renders_inert(markdown in HOSTILE, repeat in 1usize..40, agent in HOSTILE, status in HOSTILE) {
            let markdown = markdown.repeat(repeat);
            for state in [ReplyState::Streaming, ReplyState::Done, ReplyState::Interrupted(status.repeat(repeat))] {
                let pages = reply(&ReplyView { agent: &agent, markdown: &markdown, status: Some(&status), state });
                for message in &pages.messages {
                    proptest::prop_assert_eq!(valid_and_inert(message), Ok(()));
                }
            }
        }

        #[test]
        fn any_command_renders_inert_in_its_code_blocks(
            commands in proptest::collection::vec((HOSTILE, HOSTILE), 1..4),
            repeat in 1usize..40,
        ) {
            // Repeated, the texts reach past every limit.
            let long: Vec<(String, String)> = commands.iter().map(|(c, o)| (c.repeat(repeat), o.repeat(repeat))).collect();
            let views: Vec<ExecutedView<'_>> = long.iter().map(|(command, output)| ExecutedView { command, output }).collect();
            let (messages, cut) = executed(&views);
            proptest::prop_assert_eq!(cut.len(), views.len());
            for message in &messages {
                proptest::prop_assert_eq!(valid_and_inert(message), Ok(()));
                for block in &message.blocks {
                    let Some(text) = block["text"]["text"].as_str() else { continue };
                    // A command's or output's block is one code block and nothing after it.
                    proptest::prop_assert_eq!(text.matches("```").count(), 2, "{:?}", text);
                    proptest::prop_assert!(text.ends_with("\n```"), "{:?}", text);
                }
            }
            for (cut, (command, output)) in cut.iter().zip(&long) {
                let command_fits = mrkdwn::code_block_chars(command) + RAN.chars().count() <= SECTION_CHARS;
                proptest::prop_assert_eq!(cut.command, !command_fits);
                proptest::prop_assert_eq!(cut.output, mrkdwn::code_block_chars(output.trim_end()) > OUTPUT_PREVIEW_CHARS);
                // What fits is shown exactly as the agent sent it.
                let all = serde_json::to_string(&messages.iter().map(|m| &m.blocks).collect::<Vec<_>>()).unwrap();
                if command_fits {
                    let shown = serde_json::to_string(&format!("{RAN}{}", mrkdwn::code_block(command))).unwrap();
                    proptest::prop_assert!(all.contains(&shown));
                }
            }
        }

        #[test]
        fn any_notice_is_valid_and_inert(text in HOSTILE, repeat in 1usize..80) {
            let text = text.repeat(repeat);
            proptest::prop_assert_eq!(valid_and_inert(&notice(&text, &[Button::action("Retry", "retry", "v")])), Ok(()));
            let line = format!("*{}* said", mrkdwn::escape_inert(&text));
            let m = notice_mrkdwn(&line, &[]);
            validate(&m.blocks, MESSAGE_BLOCKS).unwrap();
            for t in texts(&m) {
                proptest::prop_assert_eq!(inert_problem(&t), None);
            }
        }
    }

    proptest::proptest! {
        // Seventy links a case: fewer cases keep the suite quick.
        #![proptest_config(proptest::test_runner::Config::with_cases(64))]

        #[test]
        fn any_links_render_valid(links_in in proptest::collection::vec((HOSTILE_SHORT, HOSTILE_SHORT), 0..70), repeat in 1usize..30) {
            let pairs: Vec<(String, String)> = links_in
                .into_iter()
                .enumerate()
                .map(|(i, (u, d))| (if i % 3 == 0 { format!("https://x.example/{u}") } else { u }, d.repeat(repeat)))
                .collect();
            let (m, _) = links(&pairs);
            proptest::prop_assert_eq!(valid_and_inert(&m), Ok(()));
        }
    }

    #[test]
    fn feedback_buttons_snapshot() {
        let block = feedback();
        validate(std::slice::from_ref(&block), MESSAGE_BLOCKS).unwrap();
        let typed: slack_morphism::prelude::SlackBlock = serde_json::from_value(block.clone()).unwrap();
        assert!(matches!(typed, slack_morphism::prelude::SlackBlock::ContextActions(_)), "{typed:?}");
        let buttons = &block["elements"][0];
        assert_ne!(buttons["positive_button"]["value"], buttons["negative_button"]["value"]);
        insta::assert_json_snapshot!(block);
    }
}
