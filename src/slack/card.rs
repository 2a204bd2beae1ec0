//! The approval card: the commands one agent turn proposed, with Approve, Reject and
//! Ignore per command and one Submit. Pure rendering, like [`super::blocks`].
//!
//! Buttons carry only the card's opaque id and a command's position; what a command says
//! always comes from the store. A card with more commands than one message holds continues
//! in further messages, a command never split across two.

use serde_json::{Value, json};

use super::{
    blocks::{self, Message},
    mrkdwn,
};
use crate::ids::UserId;

/// Action ids of the card's buttons.
pub mod actions {
    /// Approve a command.
    pub const APPROVE: &str = "card_approve";
    /// Reject a command (opens the reason modal).
    pub const REJECT: &str = "card_reject";
    /// Ignore a command.
    pub const IGNORE: &str = "card_ignore";
    /// Take a decision back.
    pub const CHANGE: &str = "card_change";
    /// Send the decisions.
    pub const SUBMIT: &str = "card_submit";
}

/// Callback id of the rejection-reason modal.
pub const REJECT_MODAL: &str = "reject_reason";
/// Block and action id of its input.
pub const REJECT_REASON: (&str, &str) = ("reason", "reason_input");
/// Longest rejection reason.
pub const REASON_CHARS: usize = 3000;
/// Lines of a proposed file shown on the card.
const FILE_PREVIEW_LINES: usize = 8;
/// Characters of a proposed file shown on the card.
const FILE_PREVIEW_CHARS: usize = 600;
/// Files per command shown on the card (the rest are attached).
const FILES_SHOWN: usize = 3;

/// A decision as the card shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionView<'a> {
    /// Still open.
    Undecided,
    /// Approved.
    Approved,
    /// Rejected, maybe with a reason.
    Rejected(Option<&'a str>),
    /// Ignored.
    Ignored,
}

/// One proposed command on the card.
#[derive(Debug, Clone)]
pub struct CommandView<'a> {
    /// The command (or tool call) as people should read it.
    pub text: &'a str,
    /// "tool call" or "approval" for the newer forms.
    pub kind: Option<&'a str>,
    /// Files it would create: (path, content).
    pub files: Vec<(&'a str, &'a str)>,
    /// What was decided.
    pub decision: DecisionView<'a>,
    /// Who decided, and when (Unix seconds).
    pub decided: Option<(&'a UserId, i64)>,
    /// Matches a destructive pattern.
    pub destructive: bool,
}

/// Where the card is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardStatus<'a> {
    /// Decisions may be made.
    Open,
    /// Sent, by whom and when (Unix seconds).
    Submitted(&'a UserId, i64),
    /// A newer card replaced it.
    Superseded,
    /// The ticket is closed or deleted.
    Closed(&'a str),
}

/// The whole card.
#[derive(Debug, Clone)]
pub struct CardView<'a> {
    /// The card's id, for button values.
    pub id: &'a str,
    /// The ticket's name.
    pub ticket: &'a str,
    /// The agent's name.
    pub agent: &'a str,
    /// The commands, in the agent's order.
    pub commands: Vec<CommandView<'a>>,
    /// Open, submitted, superseded or closed.
    pub status: CardStatus<'a>,
    /// The ticket's page on the HelpDesk.
    pub url: &'a str,
}

/// A time Slack renders in each reader's own time zone, with a UTC fallback.
pub fn when(seconds: i64) -> String {
    let fallback = jiff::Timestamp::from_second(seconds)
        .map_or_else(|_| seconds.to_string(), |t| t.strftime("%Y-%m-%d %H:%M UTC").to_string());
    format!("<!date^{seconds}^{{date_short_pretty}} at {{time}}|{fallback}>")
}

/// The button value for command `index` of card `id`.
pub fn value(id: &str, index: usize) -> String {
    format!("{id}:{index}")
}

/// Parses a button value back into (card id, command index).
pub fn parse_value(value: &str) -> Option<(&str, Option<usize>)> {
    match value.split_once(':') {
        Some((id, index)) => Some((id, Some(index.parse().ok()?))),
        None if !value.is_empty() => Some((value, None)),
        None => None,
    }
}

fn button(label: &str, action: &str, value: &str, style: Option<&str>) -> Value {
    let mut b = json!({"type": "button", "text": {"type": "plain_text", "text": label, "emoji": true},
        "action_id": action, "value": value});
    if let Some(style) = style {
        b["style"] = json!(style);
    }
    b
}

fn command_blocks(view: &CardView<'_>, index: usize, command: &CommandView<'_>) -> Vec<Value> {
    let live = view.status == CardStatus::Open;
    let mut head = format!("*{}.*", index + 1);
    if let Some(kind) = command.kind {
        head.push_str(&format!(" _{}_", mrkdwn::escape(kind)));
    }
    if command.destructive {
        head.push_str(" ⚠️ *destructive*");
    }
    let text = blocks::truncate(command.text, 2700);
    let mut out = vec![json!({"type": "section", "block_id": format!("cmd-{index}"),
        "text": {"type": "mrkdwn", "text": format!("{head}\n```\n$ {}\n```", mrkdwn::escape(&text))}})];
    for (path, content) in command.files.iter().take(FILES_SHOWN) {
        let preview: String = content.lines().take(FILE_PREVIEW_LINES).collect::<Vec<_>>().join("\n");
        let preview = blocks::truncate(&preview, FILE_PREVIEW_CHARS);
        let long = content.lines().count() > FILE_PREVIEW_LINES || content.chars().count() > FILE_PREVIEW_CHARS;
        let mut file =
            format!("📄 `{}`\n```\n{}\n```", mrkdwn::escape(&blocks::truncate(path, 200)), mrkdwn::escape(&preview));
        if long {
            file.push_str("\n_Shortened here; the whole file is attached in the thread._");
        }
        out.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": file}}));
    }
    if command.files.len() > FILES_SHOWN {
        out.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
            "text": format!("…and {} more files, attached in the thread.", command.files.len() - FILES_SHOWN)}]}));
    }
    let decided = command.decided.map(|(user, at)| format!(" by <@{}> {}", mrkdwn::escape(user.as_str()), when(at)));
    let label = match &command.decision {
        DecisionView::Undecided => None,
        DecisionView::Approved => Some("✅ *Approved*".to_owned()),
        DecisionView::Rejected(None) => Some("❌ *Rejected*".to_owned()),
        DecisionView::Rejected(Some(reason)) => {
            Some(format!("❌ *Rejected*: {}", mrkdwn::escape_inert(&blocks::truncate(reason, 500))))
        }
        DecisionView::Ignored => Some("➖ *Ignored*".to_owned()),
    };
    if let Some(label) = label {
        out.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
            "text": format!("{label}{}", decided.unwrap_or_default())}]}));
    }
    if live {
        let v = value(view.id, index);
        let elements = if command.decision == DecisionView::Undecided {
            let mut approve = button("Approve", actions::APPROVE, &v, Some("primary"));
            if command.destructive {
                approve["confirm"] = json!({
                    "title": {"type": "plain_text", "text": "Run a destructive command?"},
                    "text": {"type": "mrkdwn", "text": format!("This command matches a destructive pattern:\n`{}`",
                        mrkdwn::escape(&blocks::truncate(command.text, 200)))},
                    "confirm": {"type": "plain_text", "text": "Approve"},
                    "deny": {"type": "plain_text", "text": "Cancel"},
                    "style": "danger"
                });
            }
            vec![
                approve,
                button("Reject", actions::REJECT, &v, Some("danger")),
                button("Ignore", actions::IGNORE, &v, None),
            ]
        } else {
            vec![button("Change", actions::CHANGE, &v, None)]
        };
        out.push(json!({"type": "actions", "block_id": format!("act-{index}"), "elements": elements}));
    }
    out
}

/// Renders the card into as many messages as it needs.
pub fn render(view: &CardView<'_>) -> Vec<Message> {
    let count = view.commands.len();
    let noun = if count == 1 { "command" } else { "commands" };
    let intro = json!({"type": "section", "text": {"type": "mrkdwn", "text": format!(
        "🛠️ *{}* asks to run {count} {noun} on *{}*. Approve, reject or ignore each, then Submit.",
        mrkdwn::escape_inert(view.agent), mrkdwn::escape_inert(view.ticket))}});
    let fallback = format!("{} asks to run {count} {noun}", view.agent);
    let mut messages: Vec<Message> = vec![Message { text: fallback.clone(), blocks: vec![intro] }];
    let budget = blocks::MESSAGE_BLOCKS - 3;
    for (index, command) in view.commands.iter().enumerate() {
        let group = command_blocks(view, index, command);
        let chars: usize = group.iter().filter_map(|b| b["text"]["text"].as_str()).map(|t| t.chars().count()).sum();
        let last = messages.last_mut().expect("one message at least");
        let used: usize =
            last.blocks.iter().filter_map(|b| b["text"]["text"].as_str()).map(|t| t.chars().count()).sum();
        if last.blocks.len() + group.len() > budget || used + chars > blocks::MESSAGE_CHARS {
            messages.push(Message { text: format!("{fallback} (continued)"), blocks: group });
        } else {
            last.blocks.extend(group);
        }
    }
    let footer = match &view.status {
        CardStatus::Open => json!({"type": "actions", "block_id": "card-submit", "elements": [
            button("Submit", actions::SUBMIT, view.id, Some("primary")),
            {"type": "button", "text": {"type": "plain_text", "text": "Open in HelpDesk", "emoji": true},
             "action_id": "open_helpdesk", "url": view.url}
        ]}),
        CardStatus::Submitted(user, at) => json!({"type": "context", "elements": [{"type": "mrkdwn",
            "text": format!("📨 Submitted by <@{}> {}", mrkdwn::escape(user.as_str()), when(*at))}]}),
        CardStatus::Superseded => json!({"type": "context", "elements": [{"type": "mrkdwn",
            "text": "⏭️ A newer card replaced this one; decide there."}]}),
        CardStatus::Closed(why) => json!({"type": "context", "elements": [{"type": "mrkdwn",
            "text": format!("🔒 {}", mrkdwn::escape_inert(why))}]}),
    };
    if let Some(last) = messages.last_mut() {
        last.blocks.push(footer);
    }
    messages
}

/// The modal asking why a command is rejected.
pub fn reject_modal(command: &str, private_metadata: &str) -> Value {
    json!({
        "type": "modal",
        "callback_id": REJECT_MODAL,
        "title": {"type": "plain_text", "text": "Reject command"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": private_metadata,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn",
                "text": format!("```\n$ {}\n```", mrkdwn::escape(&blocks::truncate(command, 2800)))}},
            {"type": "input", "block_id": REJECT_REASON.0, "optional": true,
             "label": {"type": "plain_text", "text": "Why? (the agent reads this)"},
             "element": {"type": "plain_text_input", "action_id": REJECT_REASON.1, "multiline": true,
                         "max_length": REASON_CHARS}}
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(user: &'a UserId, status: CardStatus<'a>) -> CardView<'a> {
        CardView {
            id: "c1",
            ticket: "DEVOPS-7",
            agent: "k8s-agent",
            commands: vec![
                CommandView {
                    text: "kubectl get pods -n prod | grep -v Running > /tmp/out",
                    kind: None,
                    files: vec![],
                    decision: DecisionView::Undecided,
                    decided: None,
                    destructive: false,
                },
                CommandView {
                    text: "kubectl delete pod web-1 -n prod",
                    kind: None,
                    files: vec![("fix.yaml", "apiVersion: v1\nkind: Pod\n")],
                    decision: DecisionView::Rejected(Some("not during business hours")),
                    decided: Some((user, 1_700_000_000)),
                    destructive: true,
                },
                CommandView {
                    text: "restart_service {\"name\":\"api\"}",
                    kind: Some("tool call"),
                    files: vec![],
                    decision: DecisionView::Undecided,
                    decided: None,
                    destructive: false,
                },
            ],
            status,
            url: "https://portal.example.com/app/ai/service-desk/ws/tickets/chat/DEVOPS-7",
        }
    }

    fn valid(messages: &[Message]) {
        for m in messages {
            blocks::validate(&m.blocks, blocks::MESSAGE_BLOCKS).unwrap();
        }
    }

    #[test]
    fn open_card_snapshot() {
        let user = UserId::new("U1");
        let messages = render(&sample(&user, CardStatus::Open));
        assert_eq!(messages.len(), 1);
        valid(&messages);
        insta::assert_json_snapshot!(messages[0].blocks);
    }

    #[test]
    fn submitted_and_superseded_cards_have_no_live_buttons() {
        let user = UserId::new("U1");
        for status in
            [CardStatus::Submitted(&user, 1_700_000_100), CardStatus::Superseded, CardStatus::Closed("closed")]
        {
            let messages = render(&sample(&user, status));
            valid(&messages);
            let json = serde_json::to_string(&messages[0].blocks).unwrap();
            assert!(!json.contains("card_approve") && !json.contains("card_submit"), "{json}");
        }
    }

    #[test]
    fn destructive_commands_ask_for_confirmation() {
        let user = UserId::new("U1");
        let mut view = sample(&user, CardStatus::Open);
        view.commands[1].decision = DecisionView::Undecided;
        let messages = render(&view);
        let approve = messages[0].blocks.iter().find(|b| b["block_id"] == "act-1").unwrap()["elements"][0].clone();
        assert_eq!(approve["confirm"]["style"], "danger");
        let approve_safe = messages[0].blocks.iter().find(|b| b["block_id"] == "act-0").unwrap()["elements"][0].clone();
        assert!(approve_safe.get("confirm").is_none());
    }

    #[test]
    fn many_commands_and_long_files_continue_in_more_messages() {
        let user = UserId::new("U1");
        let long_file = "line of config\n".repeat(500);
        let texts: Vec<String> = (0..60).map(|i| format!("echo {i} {}", "x".repeat(200))).collect();
        let view = CardView {
            commands: texts
                .iter()
                .map(|t| CommandView {
                    text: t,
                    kind: None,
                    files: vec![("a.conf", long_file.as_str())],
                    decision: DecisionView::Undecided,
                    decided: None,
                    destructive: false,
                })
                .collect(),
            ..sample(&user, CardStatus::Open)
        };
        let messages = render(&view);
        assert!(messages.len() > 1);
        valid(&messages);
        let all = serde_json::to_string(&messages.iter().map(|m| &m.blocks).collect::<Vec<_>>()).unwrap();
        for i in 0..60 {
            assert!(all.contains(&format!("\"c1:{i}\"")), "command {i} lost");
        }
        assert!(all.contains("card_submit"));
    }

    #[test]
    fn values_round_trip() {
        assert_eq!(parse_value(&value("abc", 3)), Some(("abc", Some(3))));
        assert_eq!(parse_value("abc"), Some(("abc", None)));
        assert_eq!(parse_value("abc:x"), None);
        assert_eq!(parse_value(""), None);
    }

    #[test]
    fn the_reject_modal_is_a_valid_view() {
        let v = reject_modal("rm -rf /tmp/x", "c1:0");
        let view: slack_morphism::prelude::SlackView = serde_json::from_value(v.clone()).unwrap();
        assert!(matches!(view, slack_morphism::prelude::SlackView::Modal(_)));
        blocks::validate(v["blocks"].as_array().unwrap(), blocks::VIEW_BLOCKS).unwrap();
    }
}
