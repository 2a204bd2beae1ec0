//! Ticket rendering (pure): the header with its controls, the lifecycle modals (status,
//! agent, history), ticket lists for `/helpdesk list` and `find`, and the App Home tab.
//!
//! Like the rest of the Slack rendering, nothing here does I/O or reads a clock: times come
//! in as Unix seconds and are shown with Slack's `<!date>` so every reader sees their own
//! time zone. Titles, comments and names are escaped with [`mrkdwn::inert_within`], so
//! nothing a person or agent typed can ping a channel from a header or a list (nor from
//! the notification text), and each is bounded after escaping, so every rendering stays
//! within Slack's limits whatever the text holds.

use serde_json::{Value, json};

use super::{
    blocks::{PortalLists, target_inputs},
    card::when,
    controls::{ContextTarget, ListArgs, ModalTarget, SHARE_VALUE, action, block, callback, continue_value, input},
    kit::{self, Button, FALLBACK_CHARS, Message, context, plain, section, user},
    mrkdwn,
};
use crate::{
    ids::{TicketName, UserId},
    model::{Actor, Decision, HistoryEntry, HistoryEvent, TicketStatus},
};

/// Characters of a status-change comment.
pub const COMMENT_CHARS: usize = 3000;
/// History entries the history modal shows (the newest ones).
pub const HISTORY_SHOWN: usize = 300;
/// Characters of a ticket's name wherever it is shown (names are short, like `DEVOPS-42`).
const TICKET_CHARS: usize = 60;
/// Characters of a ticket's title in a header, list or history.
const TITLE_CHARS: usize = 200;
/// Characters of an agent's name.
const AGENT_CHARS: usize = 100;
/// Characters of a quoted comment or reason in the history, and its lines.
const QUOTE_CHARS: usize = 500;
const QUOTE_LINES: usize = 10;
/// Entries of an approval trail `/helpdesk audit` shows in its answer (the newest ones).
pub const AUDIT_SHOWN: usize = 40;
/// Proposed commands a history line names (the rest are counted).
const PROPOSALS_LISTED: usize = 5;
/// Characters of one history line.
const HISTORY_LINE_CHARS: usize = 1500;

fn ticket_name(ticket: &str) -> String {
    mrkdwn::inert_within(ticket, TICKET_CHARS)
}

/// What the ticket header shows.
#[derive(Debug, Clone)]
pub struct HeaderView<'a> {
    /// The ticket's name, e.g. `DEVOPS-42`.
    pub ticket: &'a str,
    /// Its title.
    pub title: &'a str,
    /// The assigned agent's name.
    pub agent: &'a str,
    /// The status.
    pub status: TicketStatus,
    /// Who asked.
    pub requester: &'a UserId,
    /// Who owns it in Slack.
    pub assignee: Option<&'a UserId>,
    /// The ticket's chat page on the HelpDesk.
    pub url: &'a str,
    /// Why the thread no longer works this ticket, once it does not: the header then has
    /// no controls.
    pub retired: Option<Retired<'a>>,
}

/// Why a header's ticket is no longer its thread's.
#[derive(Debug, Clone, Copy)]
pub enum Retired<'a> {
    /// The ticket was deleted, by this person.
    Deleted {
        /// Who deleted it.
        by: &'a UserId,
    },
    /// The thread moved to another ticket (*Update context*).
    Moved {
        /// Who moved it.
        by: &'a UserId,
        /// The ticket it moved to.
        to: &'a str,
        /// Where that ticket is, in words ("portal qa, workspace devops").
        place: &'a str,
    },
}

/// A status as an option of a select.
fn status_option(status: TicketStatus) -> Value {
    let label = if status == TicketStatus::Open { "Reopen" } else { status.label() };
    json!({"text": plain(label, 75), "value": status.as_str()})
}

/// The ticket header: name, title, status, agent and people, then the controls: a status
/// select offering only the valid next states, an assignee select, "Switch agent",
/// "History", the HelpDesk link, and an overflow menu with a confirmed "Delete".
pub fn header(view: &HeaderView<'_>) -> Message {
    let title = mrkdwn::inert_within(view.title, TITLE_CHARS);
    let ticket = ticket_name(view.ticket);
    let text = mrkdwn::inert_within(&format!("Ticket {}: {}", view.ticket, view.title), FALLBACK_CHARS);
    match view.retired {
        Some(Retired::Deleted { by }) => {
            return Message {
                text,
                blocks: vec![
                    section(format!("🗑️ ~*{ticket}*  {title}~")),
                    context(format!(
                        "Deleted by {} on the HelpDesk. This thread no longer reaches an agent.",
                        user(by)
                    )),
                ],
            };
        }
        Some(Retired::Moved { by, to, place }) => {
            let to = ticket_name(to);
            let place = mrkdwn::inert_within(place, TITLE_CHARS);
            return Message {
                text,
                blocks: vec![
                    section(format!("↪️ *{ticket}*  {title}")),
                    context(format!(
                        "{} moved this thread to *{to}* ({place}); its messages go there now. \
                         *{ticket}* stays on the HelpDesk as it was.",
                        user(by)
                    )),
                    json!({"type": "actions", "block_id": block::TICKET_CONTROLS, "elements": [
                        kit::button(&Button::link("Open in HelpDesk", action::OPEN_HELPDESK, view.url))]}),
                ],
            };
        }
        None => {}
    }
    let mut facts = format!(
        "*Status:* {}  ·  *Agent:* {}  ·  *Requested by* {}",
        view.status.label(),
        mrkdwn::inert_within(view.agent, AGENT_CHARS),
        user(view.requester)
    );
    if let Some(assignee) = view.assignee {
        facts.push_str(&format!("  ·  *Assigned to* {}", user(assignee)));
    }
    let mut controls = Vec::new();
    let next = view.status.next();
    if !next.is_empty() {
        controls.push(json!({
            "type": "static_select",
            "action_id": action::STATUS,
            "placeholder": plain("Change status", 150),
            "options": next.iter().copied().map(status_option).collect::<Vec<_>>(),
        }));
    }
    if view.status != TicketStatus::Closed {
        let mut assign =
            json!({"type": "users_select", "action_id": action::ASSIGN, "placeholder": plain("Assign", 150)});
        if let Some(assignee) = view.assignee {
            assign["initial_user"] = json!(assignee.as_str());
        }
        controls.push(assign);
        controls.push(kit::button(&Button::action("Update context", action::CONTEXT, view.ticket)));
    }
    controls.push(kit::button(&Button::action("History", action::HISTORY, view.ticket)));
    controls.push(kit::button(&Button::link("Open in HelpDesk", action::OPEN_HELPDESK, view.url)));
    controls.push(json!({
        "type": "overflow",
        "action_id": action::MENU,
        "options": [{"text": plain("Delete ticket…", 75), "value": action::DELETE}],
        "confirm": {
            "title": plain(&format!("Delete {}?", view.ticket), 100),
            "text": {"type": "mrkdwn", "text": format!(
                "This deletes *{ticket}* on the HelpDesk with its history, and this thread stops reaching an agent. \
                 It cannot be undone. To keep the record, set the status to *Closed* instead.")},
            "confirm": plain("Delete", 30),
            "deny": plain("Keep it", 30),
            "style": "danger",
        },
    }));
    Message {
        text,
        blocks: vec![
            section(format!("🎫 *{ticket}*  {title}")),
            context(facts),
            json!({"type": "actions", "block_id": block::TICKET_CONTROLS, "elements": controls}),
        ],
    }
}

/// The modal a status change opens: what changes, and an optional comment.
pub fn status_modal(ticket: &str, from: TicketStatus, to: TicketStatus, target: &ModalTarget) -> Value {
    json!({
        "type": "modal",
        "callback_id": callback::STATUS,
        "title": plain("Change status", 24),
        "submit": plain("Save", 24),
        "close": plain("Cancel", 24),
        "private_metadata": target.encode(),
        "blocks": [
            section(format!(
                "Move *{}* from *{}* to *{}*.",
                ticket_name(ticket),
                from.label(),
                to.label()
            )),
            {"type": "input", "block_id": input::COMMENT.0, "optional": true,
             "label": plain("Comment", 2000),
             "hint": plain("Posted in the thread and recorded on the ticket.", 2000),
             "element": {"type": "plain_text_input", "action_id": input::COMMENT.1, "multiline": true,
                         "max_length": COMMENT_CHARS}},
        ],
    })
}

/// What the *Update context* modal shows: where the ticket is, and where it may go.
#[derive(Debug, Clone)]
pub struct ContextModalView<'a> {
    /// The ticket's name.
    pub ticket: &'a str,
    /// Its portal's name.
    pub portal: &'a str,
    /// Its workspace, by name (its id when the name is unknown).
    pub workspace: &'a str,
    /// Its agent's name.
    pub agent: &'a str,
    /// Each portal's workspaces and agents, the ticket's portal first.
    pub lists: &'a [PortalLists],
    /// The ticket's workspace and agent as (portal, id), preselected.
    pub current: ((&'a str, &'a str), (&'a str, &'a str)),
    /// Portals that could not list their workspaces and agents (not offered).
    pub unlisted: &'a [String],
    /// Whether the channel shares thread messages at all (`/helpdesk config context`): the
    /// share box is offered only then.
    pub share_allowed: bool,
    /// The header's thread and ticket, handed back on submission.
    pub target: &'a ContextTarget,
}

/// The *Update context* modal: another agent for this ticket, or another portal or
/// workspace (a new ticket there for this thread), and whether the thread's messages go
/// along, off unless ticked, with the warning next to it.
pub fn context_modal(view: &ContextModalView<'_>) -> Value {
    let ticket = ticket_name(view.ticket);
    let several = view.lists.len() + view.unlisted.len() > 1;
    let portal =
        if several { format!("portal *{}*, ", mrkdwn::inert_within(view.portal, AGENT_CHARS)) } else { String::new() };
    let [workspace, agent] = target_inputs(view.lists, several, Some(view.current.0), Some(view.current.1));
    let mut blocks = vec![
        section(format!(
            "*{ticket}* is in {portal}workspace *{}*, worked by *{}*.",
            mrkdwn::inert_within(view.workspace, AGENT_CHARS),
            mrkdwn::inert_within(view.agent, AGENT_CHARS)
        )),
        workspace,
        agent,
        context(format!(
            "Another agent alone switches the agent of *{ticket}*. Another workspace or portal opens a new ticket \
             there for this thread; *{ticket}* stays on the HelpDesk as it is, with a note saying where the \
             thread went."
        )),
    ];
    if view.share_allowed {
        blocks.push(json!({"type": "input", "block_id": input::SHARE.0, "optional": true,
            "label": plain("Thread messages", 2000),
            "hint": plain("Only for a new ticket. What people wrote in this thread (not the agent's replies) \
                goes to the new ticket's agent, which answers it. Messages may hold secrets, passwords or \
                personal data: share them only if the new portal may see them.", 2000),
            "element": {"type": "checkboxes", "action_id": input::SHARE.1, "options": [{
                "text": plain("Share this thread's messages", 75),
                "description": plain("Off by default: they may contain secrets.", 75),
                "value": SHARE_VALUE}]}}));
    } else {
        blocks.push(context(
            "This channel does not share thread messages with tickets (`/helpdesk config context`), so the new \
             ticket starts without them."
                .to_owned(),
        ));
    }
    if !view.unlisted.is_empty() {
        let names: Vec<String> = view.unlisted.iter().map(|p| mrkdwn::inert_within(p, AGENT_CHARS)).collect();
        let which =
            if names.len() == 1 { format!("portal {}", names[0]) } else { format!("portals {}", names.join(", ")) };
        blocks.push(context(format!("Not offered: {which} could not list workspaces and agents just now.")));
    }
    json!({
        "type": "modal",
        "callback_id": callback::CONTEXT,
        "title": plain("Update context", 24),
        "submit": plain("Update", 24),
        "close": plain("Cancel", 24),
        "private_metadata": view.target.encode(),
        "blocks": blocks,
    })
}

fn actor(actor: &Actor) -> String {
    match actor {
        Actor::User(id) => user(id),
        Actor::Agent(name) => format!("🤖 {}", mrkdwn::inert_within(name, AGENT_CHARS)),
        Actor::Bridge => "The bridge".to_owned(),
    }
}

fn code(text: &str) -> String {
    mrkdwn::inline_code(text, 200)
}

/// `text` as a quote under a history line, bounded in characters (after escaping) and in
/// lines.
fn quoted(text: &str) -> String {
    let mut out = String::new();
    for (i, line) in mrkdwn::inert_within(text, QUOTE_CHARS).lines().enumerate() {
        if i == QUOTE_LINES {
            out.push_str("\n> …");
            break;
        }
        out.push_str("\n> ");
        out.push_str(line);
    }
    out
}

fn plural(count: usize, one: &str) -> String {
    if count == 1 { format!("1 {one}") } else { format!("{count} {one}s") }
}

/// One history entry in words (mrkdwn): who did what.
pub fn describe(entry: &HistoryEntry) -> String {
    let what = match &entry.event {
        HistoryEvent::Created { title } => {
            format!("opened the ticket: _{}_", mrkdwn::inert_within(title, TITLE_CHARS))
        }
        HistoryEvent::MessageRelayed => "sent a message to the agent".to_owned(),
        HistoryEvent::MessageEdited { .. } => "edited a message in Slack; the new text is on the ticket".to_owned(),
        HistoryEvent::MessageDeleted { .. } => "deleted a message in Slack; the ticket notes it".to_owned(),
        HistoryEvent::StatusChanged { from, to, comment } => {
            let mut line = format!("changed the status from *{}* to *{}*", from.label(), to.label());
            if let Some(comment) = comment.as_deref().filter(|c| !c.trim().is_empty()) {
                line.push_str(&quoted(comment));
            }
            line
        }
        HistoryEvent::AssigneeChanged { from, to } => match (from, to) {
            (None, Some(to)) => format!("assigned the ticket to {}", user(to)),
            (Some(from), Some(to)) => format!("reassigned the ticket from {} to {}", user(from), user(to)),
            (Some(from), None) => format!("unassigned {}", user(from)),
            (None, None) => "left the ticket unassigned".to_owned(),
        },
        HistoryEvent::AgentChanged { from, to } => {
            format!(
                "switched the agent from *{}* to *{}*",
                mrkdwn::inert_within(from, AGENT_CHARS),
                mrkdwn::inert_within(to, AGENT_CHARS)
            )
        }
        HistoryEvent::Comment { text } => format!("commented:{}", quoted(text)),
        HistoryEvent::Moved { from, to, place } => format!(
            "moved this Slack thread from *{}* to *{}* ({})",
            ticket_name(from.as_str()),
            ticket_name(to.as_str()),
            mrkdwn::inert_within(place, TITLE_CHARS)
        ),
        HistoryEvent::CommandsProposed { count, commands, .. } => {
            let mut line = format!("proposed {}", plural(*count, "command"));
            if !commands.is_empty() {
                let shown: Vec<String> = commands.iter().take(PROPOSALS_LISTED).map(|c| code(c)).collect();
                line = format!("{line}: {}", shown.join(", "));
                if commands.len() > PROPOSALS_LISTED {
                    line.push_str(&format!(" and {} more", commands.len() - PROPOSALS_LISTED));
                }
            }
            line
        }
        HistoryEvent::CommandDecided { command, decision, rule, always, approvals, needs, .. } => {
            let by = match (rule, always) {
                (Some(rule), _) => format!(" by rule {}", mrkdwn::inline_code(rule, 200)),
                (None, true) => " (always allowed on this ticket)".to_owned(),
                (None, false) if *needs > 1 && *decision == Decision::Approve => {
                    let mut tally = format!(" (approval {} of {needs}", approvals.len());
                    let before: Vec<String> = approvals.iter().rev().skip(1).rev().map(user).collect();
                    if !before.is_empty() {
                        tally.push_str(&format!(", after {}", before.join(", ")));
                    }
                    tally.push(')');
                    tally
                }
                (None, false) => String::new(),
            };
            let what = match decision {
                Decision::Approve => format!("approved {}", code(command)),
                // A rule's rejection reason only repeats the rule.
                Decision::Reject { .. } if rule.is_some() => format!("rejected {}", code(command)),
                Decision::Reject { reason: Some(reason) } => {
                    format!("rejected {}{}", code(command), quoted(reason))
                }
                Decision::Reject { reason: None } => format!("rejected {}", code(command)),
                Decision::Ignore => format!("ignored {}", code(command)),
                Decision::Undecided => format!("took back the decision on {}", code(command)),
            };
            format!("{what}{by}")
        }
        HistoryEvent::CommandAlwaysAllowed { command, .. } => {
            format!("allowed {} for good on this ticket", code(command))
        }
        HistoryEvent::CardExpired { .. } => {
            "closed an approval card that expired unsubmitted: nothing on it was sent".to_owned()
        }
        HistoryEvent::CommandsWithheld { .. } => {
            "did not send the decisions of a card that was no longer current".to_owned()
        }
        HistoryEvent::CommandsSubmitted { summary, .. } => match summary {
            Some(summary) => format!("sent the command decisions to the agent: {}", mrkdwn::inert_within(summary, 200)),
            None => "sent the command decisions to the agent".to_owned(),
        },
        HistoryEvent::MetadataUpdated { change } => mrkdwn::inert_within(change, QUOTE_CHARS),
        HistoryEvent::Feedback { rating, .. } => format!("rated the agent's reply {}", rating.emoji()),
    };
    format!("{} · {} {what}", when(entry.at.div_euclid(1000)), actor(&entry.actor))
}

/// The history modal: the ticket's timeline, oldest first (the newest
/// [`HISTORY_SHOWN`] when there are more, and fewer when long entries would not fit the
/// modal), packed into sections within Slack's limits. It says how many older entries
/// it leaves out.
pub fn history_modal(ticket: &str, title: &str, entries: &[HistoryEntry]) -> Value {
    let mut skipped = entries.len().saturating_sub(HISTORY_SHOWN);
    // Sections of whole lines, each with the number of entries it holds.
    let mut chunks: Vec<(String, usize)> = Vec::new();
    for entry in entries.get(skipped..).unwrap_or_default() {
        let line = mrkdwn::cut(&describe(entry), HISTORY_LINE_CHARS);
        match chunks.last_mut() {
            Some((chunk, count)) if chunk.chars().count() + line.chars().count() < kit::SECTION_CHARS => {
                chunk.push('\n');
                chunk.push_str(&line);
                *count += 1;
            }
            _ => chunks.push((line, 1)),
        }
    }
    // The heading and the note take two blocks; the newest sections get the rest.
    let room = kit::VIEW_BLOCKS - 2;
    let dropped = chunks.len().saturating_sub(room);
    skipped += chunks.drain(..dropped).map(|(_, count)| count).sum::<usize>();
    let mut out = vec![section(format!("*{}*  {}", ticket_name(ticket), mrkdwn::inert_within(title, TITLE_CHARS)))];
    if skipped > 0 {
        let older = if skipped == 1 { "1 older entry is".to_owned() } else { format!("{skipped} older entries are") };
        out.push(context(format!("{older} not shown.")));
    }
    if entries.is_empty() {
        out.push(context("Nothing is recorded for this ticket yet.".to_owned()));
    }
    out.extend(chunks.into_iter().map(|(chunk, _)| section(chunk)));
    json!({
        "type": "modal",
        "title": plain("Ticket history", 24),
        "close": plain("Close", 24),
        "blocks": out,
    })
}

/// How the whole of a long trail reached the person who asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditFile {
    /// The trail fits the answer: no file.
    NotNeeded,
    /// Sent as a file in the person's direct messages with the app.
    Sent,
    /// It could not be sent.
    Failed,
}

/// Where the part of a trail an answer shows starts: the newest entries, at most
/// [`AUDIT_SHOWN`] of them and as many as fit a message beside the heading.
fn audit_start(entries: &[HistoryEntry]) -> usize {
    let mut room = kit::MESSAGE_CHARS - 1000;
    let mut start = entries.len();
    for entry in entries.iter().rev().take(AUDIT_SHOWN) {
        let line = mrkdwn::cut(&describe(entry), HISTORY_LINE_CHARS).chars().count() + 3;
        if line > room {
            break;
        }
        room -= line;
        start -= 1;
    }
    start
}

/// Whether a trail is answered in a message alone (else also as [`audit_file`]).
pub fn audit_fits(entries: &[HistoryEntry]) -> bool {
    audit_start(entries) == 0
}

/// The answer to `/helpdesk audit`: the ticket's approval trail (`entries`, oldest first),
/// the newest [`AUDIT_SHOWN`] when there are more, saying how
/// the whole reached the asker.
pub fn audit(ticket: &str, title: &str, entries: &[HistoryEntry], file: AuditFile) -> Message {
    let shown = entries.get(audit_start(entries)..).unwrap_or_default();
    let mut lines =
        vec![format!("*Approval trail of {}*  {}", ticket_name(ticket), mrkdwn::inert_within(title, TITLE_CHARS))];
    if entries.is_empty() {
        lines.push("No command has been proposed on this ticket.".to_owned());
    }
    match file {
        AuditFile::NotNeeded => {}
        AuditFile::Sent => lines.push(format!(
            "The newest {} of {} entries; the whole trail is in a file I sent you in a direct message.",
            shown.len(),
            entries.len()
        )),
        AuditFile::Failed => lines.push(format!(
            "The newest {} of {} entries; I could not send you the whole trail as a file.",
            shown.len(),
            entries.len()
        )),
    }
    lines.extend(shown.iter().map(|e| format!("• {}", mrkdwn::cut(&describe(e), HISTORY_LINE_CHARS))));
    super::blocks::notice_mrkdwn(&lines.join("\n"), &[])
}

/// The whole approval trail as a plain-text file: one line per entry, its fields separated
/// by tabs: UTC time, who acted (a user id, the agent, or the bridge for rules and expiry),
/// the card, what happened, and each command in full with its hash (`hash`, the service's
/// [`crate::model::CommandHasher`]). A line break or tab inside a command, reason or name
/// is written as `\n` or `\t`, a backslash doubled, other control characters as `\u{…}`
/// ([`flat`]), so that no text can forge an entry.
pub fn audit_file(ticket: &str, entries: &[HistoryEntry], hash: &dyn Fn(&str) -> String) -> kit::Upload {
    let mut out = format!("Approval trail of ticket {ticket}: {} entries, oldest first.\n\n", entries.len());
    for entry in entries {
        let at = jiff::Timestamp::from_millisecond(entry.at).map_or_else(|_| entry.at.to_string(), |t| t.to_string());
        let who = match (&entry.actor, &entry.event) {
            (Actor::User(_), HistoryEvent::CommandDecided { who: Some(who), .. }) => flat(who),
            (Actor::User(id), _) => id.to_string(),
            (Actor::Agent(name), _) => format!("agent {}", flat(name)),
            (Actor::Bridge, _) => "bridge".to_owned(),
        };
        out.push_str(&format!("{at}\t{who}\t{}\n", audit_line(&entry.event, hash)));
    }
    kit::Upload { name: format!("{ticket}-approvals.txt"), title: format!("Approval trail of {ticket}"), content: out }
}

/// `text` on one line of the audit file: a backslash doubled, line breaks and tabs as
/// `\n`, `\r`, `\t`, other control characters (and Unicode line separators) as `\u{…}`.
fn flat(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out
}

/// One trail entry as plain text (no markup: it goes in a file).
fn audit_line(event: &HistoryEvent, hash: &dyn Fn(&str) -> String) -> String {
    let command = |c: &str| format!("[{}] {}", hash(c), flat(c));
    match event {
        HistoryEvent::CommandsProposed { card, count, commands } => {
            let mut line = format!("card {card}\tproposed {}", plural(*count, "command"));
            for (i, c) in commands.iter().enumerate() {
                line.push_str(&format!("\n\t\t  {}. {}", i + 1, command(c)));
            }
            line
        }
        HistoryEvent::CommandDecided { card, command: c, decision, rule, always, approvals, needs, .. } => {
            let verb = match decision {
                Decision::Approve => "approved".to_owned(),
                Decision::Reject { reason: Some(reason) } => format!("rejected ({})", flat(reason)),
                Decision::Reject { reason: None } => "rejected".to_owned(),
                Decision::Ignore => "ignored".to_owned(),
                Decision::Undecided => "took back the decision on".to_owned(),
            };
            let how = match (rule, always) {
                (Some(rule), _) => format!(" by rule {}", flat(rule)),
                (None, true) => " (always allowed on this ticket)".to_owned(),
                (None, false) if *needs > 1 && *decision == Decision::Approve => {
                    let who: Vec<String> = approvals.iter().map(ToString::to_string).collect();
                    format!(" (approval {} of {needs}: {})", approvals.len(), who.join(", "))
                }
                (None, false) => String::new(),
            };
            format!("card {card}\t{verb}{how}: {}", command(c))
        }
        HistoryEvent::CommandAlwaysAllowed { card, command: c } => {
            format!("card {card}\tallowed for good on this ticket: {}", command(c))
        }
        HistoryEvent::CommandsSubmitted { card, summary } => {
            format!(
                "card {card}\tsent the decisions to the agent{}",
                summary.as_ref().map_or_else(String::new, |s| format!(": {s}"))
            )
        }
        HistoryEvent::CardExpired { card } => format!("card {card}\texpired unsubmitted; nothing on it was sent"),
        HistoryEvent::CommandsWithheld { card } => {
            format!("card {card}\tdecisions not sent: no longer current when they would have gone")
        }
        _ => String::new(),
    }
}

/// A ticket as a list shows it.
#[derive(Debug, Clone)]
pub struct TicketRow<'a> {
    /// Its name.
    pub ticket: &'a str,
    /// Its title.
    pub title: &'a str,
    /// Its status.
    pub status: TicketStatus,
    /// Its Slack assignee.
    pub assignee: Option<&'a UserId>,
    /// Created, Unix seconds, when known.
    pub created: Option<i64>,
    /// Last updated, Unix seconds, when known.
    pub updated: Option<i64>,
    /// A link to its thread, when it has one.
    pub link: Option<&'a str>,
}

/// The blocks of one ticket row: its name (linked to its thread) and title, then status,
/// assignee and times.
fn row(row: &TicketRow<'_>) -> [Value; 2] {
    let name = ticket_name(row.ticket);
    let linkable = |l: &&str| {
        l.starts_with("https://")
            && l.chars().count() <= kit::URL_CHARS
            && !l.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '|' | '>' | '<' | '`'))
    };
    let name = match row.link.filter(linkable) {
        Some(link) => format!("<{}|{name}>", link.replace('&', "&amp;")),
        None => name,
    };
    let mut facts = vec![format!("*{}*", row.status.label())];
    facts.push(row.assignee.map_or_else(|| "Unassigned".to_owned(), |a| format!("Assigned to {}", user(a))));
    facts.extend(row.created.map(|t| format!("Created {}", when(t))));
    facts.extend(row.updated.map(|t| format!("Updated {}", when(t))));
    [section(format!("*{name}*  {}", mrkdwn::inert_within(row.title, TITLE_CHARS))), context(facts.join("  ·  "))]
}

/// A page of `/helpdesk list`: a heading, the rows, and "More" when there is a next page
/// (`more` says where it starts).
pub fn list(heading: &str, rows: &[TicketRow<'_>], more: Option<&ListArgs>) -> Message {
    let mut out = vec![section(format!("*{}*", mrkdwn::inert_within(heading, QUOTE_CHARS)))];
    if rows.is_empty() {
        out.push(context("No tickets match.".to_owned()));
    }
    out.extend(rows.iter().flat_map(row));
    if let Some(more) = more {
        out.extend(kit::actions(&[Button::action("More", action::LIST_MORE, more.encode())]));
    }
    Message { text: mrkdwn::inert_within(heading, FALLBACK_CHARS), blocks: out }
}

/// `/helpdesk find`: one ticket, and a "Continue here" button when it has no thread yet
/// (`continuer` is who may press it: whoever ran `find`).
pub fn found(ticket: &TicketRow<'_>, continuer: Option<&UserId>) -> Message {
    let mut out = Vec::from(row(ticket));
    match continuer {
        Some(finder) => {
            out.push(context("This ticket has no Slack thread yet.".to_owned()));
            let value = continue_value(&TicketName::new(ticket.ticket), finder);
            // A name too long for a button's value (no real ticket's) cannot be continued.
            if value.len() <= kit::BUTTON_VALUE_BYTES {
                out.extend(kit::actions(&[
                    Button::action("Continue in a new thread here", action::CONTINUE, value).primary()
                ]));
            }
        }
        None if ticket.link.is_none() => out.push(context("Its thread could not be linked.".to_owned())),
        None => {}
    }
    let text = mrkdwn::inert_within(&format!("Ticket {}: {}", ticket.ticket, ticket.title), FALLBACK_CHARS);
    Message { text, blocks: out }
}

/// The App Home tab: the user's tickets (requested or assigned), open ones first: the
/// first [`HOME_ROWS`] of `rows`. `more` counts the tickets the caller left out for space;
/// the note under the rows counts those and any rows past [`HOME_ROWS`].
pub fn home(rows: &[TicketRow<'_>], more: usize) -> Value {
    let more = more + rows.len().saturating_sub(HOME_ROWS);
    let rows = rows.get(..HOME_ROWS).unwrap_or(rows);
    let mut out = vec![
        json!({"type": "header", "text": plain("Your HelpDesk tickets", 150)}),
        context("Tickets you asked for or are assigned, open ones first. Each links to its thread.".to_owned()),
        json!({"type": "divider"}),
    ];
    if rows.is_empty() {
        out.push(section(
            "You have no tickets yet. Mention me in a channel, send me a direct message, or use `/helpdesk new` \
             to open one."
                .to_owned(),
        ));
    }
    out.extend(rows.iter().flat_map(row));
    if more > 0 {
        out.push(context(format!("…and {more} more: use `/helpdesk list` to see them all.")));
    }
    json!({"type": "home", "blocks": out})
}

/// How many ticket rows fit the Home tab with its heading and footer.
pub const HOME_ROWS: usize = (kit::VIEW_BLOCKS - 4) / 2;

#[cfg(test)]
mod tests {
    use slack_morphism::prelude::SlackView;

    use super::*;
    use crate::ids::{ChannelId, MessageTs, TeamId, ThreadKey};

    fn target() -> ModalTarget {
        let thread =
            ThreadKey { team: TeamId::new("T1"), channel: ChannelId::new("C1"), thread_ts: MessageTs::new("1.2") };
        ModalTarget::new(&thread, None)
    }
    use crate::{ids::CardId, slack::mrkdwn::tests::inert_problem};

    fn view_is_valid(view: &Value) {
        let typed: SlackView = serde_json::from_value(view.clone()).unwrap();
        let _ = typed;
        kit::validate(view["blocks"].as_array().unwrap(), kit::VIEW_BLOCKS).unwrap();
        assert_inert(view);
    }

    /// Every mrkdwn text in `value`, at any depth.
    fn mrkdwn_texts(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if map.get("type").and_then(Value::as_str) == Some("mrkdwn")
                    && let Some(text) = map.get("text").and_then(Value::as_str)
                {
                    out.push(text.to_owned());
                }
                map.values().for_each(|v| mrkdwn_texts(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| mrkdwn_texts(v, out)),
            _ => {}
        }
    }

    /// No text in `value` can ping or break out of code, and user mentions are only the
    /// bridge's (`<@U…>` of the ids the view was given).
    fn assert_inert(value: &Value) {
        let mut texts = Vec::new();
        mrkdwn_texts(value, &mut texts);
        for text in texts {
            assert_eq!(inert_problem(&text), None, "{text:?}");
            for (i, _) in text.match_indices("<@") {
                assert!(text[i..].starts_with("<@U1>") || text[i..].starts_with("<@U2>"), "{text:?}");
            }
        }
    }

    fn message_is_valid(m: &Message) {
        kit::validate(&m.blocks, kit::MESSAGE_BLOCKS).unwrap();
        assert!(m.text.chars().count() <= FALLBACK_CHARS);
        assert_eq!(inert_problem(&m.text), None, "{:?}", m.text);
        assert!(!m.text.contains("<@"), "{:?}", m.text);
        assert_inert(&Value::Array(m.blocks.clone()));
    }

    fn sample(status: TicketStatus, requester: &UserId, assignee: Option<&UserId>) -> Message {
        header(&HeaderView {
            ticket: "DEVOPS-42",
            title: "Pods in <prod> crash @here",
            agent: "generic-agent",
            status,
            requester,
            assignee,
            url: "https://portal.example.com/app/ai/service-desk/ws/tickets/chat/DEVOPS-42",
            retired: None,
        })
    }

    fn offered(m: &Message) -> Vec<String> {
        let controls = &m.blocks[2]["elements"];
        let select = controls.as_array().unwrap().iter().find(|e| e["action_id"] == action::STATUS);
        select.map_or_else(Vec::new, |s| {
            s["options"].as_array().unwrap().iter().map(|o| o["value"].as_str().unwrap().to_owned()).collect()
        })
    }

    #[test]
    fn header_snapshot() {
        let (requester, assignee) = (UserId::new("U1"), UserId::new("U2"));
        let m = sample(TicketStatus::Pending, &requester, Some(&assignee));
        kit::validate(&m.blocks, kit::MESSAGE_BLOCKS).unwrap();
        assert!(!m.blocks[0].to_string().contains("@here"), "a title cannot ping");
        insta::assert_json_snapshot!(m.blocks);
    }

    #[test]
    fn the_status_control_offers_only_valid_next_states() {
        let requester = UserId::new("U1");
        let cases = [
            (TicketStatus::Open, vec!["pending"]),
            (TicketStatus::Pending, vec!["resolved", "open"]),
            (TicketStatus::Resolved, vec!["closed", "open"]),
            (TicketStatus::Closed, vec![]),
        ];
        for (status, expected) in cases {
            let m = sample(status, &requester, None);
            kit::validate(&m.blocks, kit::MESSAGE_BLOCKS).unwrap();
            assert_eq!(offered(&m), expected, "from {status:?}");
        }
    }

    #[test]
    fn a_deleted_header_has_no_controls() {
        let (requester, by) = (UserId::new("U1"), UserId::new("U9"));
        let m = header(&HeaderView {
            ticket: "DEVOPS-42",
            title: "t",
            agent: "a",
            status: TicketStatus::Open,
            requester: &requester,
            assignee: None,
            url: "https://x",
            retired: Some(Retired::Deleted { by: &by }),
        });
        kit::validate(&m.blocks, kit::MESSAGE_BLOCKS).unwrap();
        assert!(m.blocks.iter().all(|b| b["type"] != "actions"));
        assert!(m.blocks[1].to_string().contains("<@U9>"));
        // A moved thread's old header keeps only the way to the old ticket.
        let m = header(&HeaderView {
            retired: Some(Retired::Moved { by: &by, to: "QA-7", place: "portal qa, workspace devops" }),
            ..HeaderView {
                ticket: "DEVOPS-42",
                title: "t",
                agent: "a",
                status: TicketStatus::Pending,
                requester: &requester,
                assignee: None,
                url: "https://x",
                retired: None,
            }
        });
        kit::validate(&m.blocks, kit::MESSAGE_BLOCKS).unwrap();
        assert_eq!(
            m.blocks[1]["elements"][0]["text"],
            "<@U9> moved this thread to *QA-7* (portal qa, workspace devops); its messages go there now. \
             *DEVOPS-42* stays on the HelpDesk as it was."
        );
        let controls = m.blocks[2]["elements"].as_array().unwrap();
        assert_eq!(controls.len(), 1);
        assert_eq!(
            (&controls[0]["action_id"], &controls[0]["url"]),
            (&json!(action::OPEN_HELPDESK), &json!("https://x"))
        );
    }

    #[test]
    fn lifecycle_modals_are_valid_views() {
        view_is_valid(&status_modal("DEVOPS-1", TicketStatus::Pending, TicketStatus::Resolved, &target()));
    }

    fn context_view<'a>(
        ticket: &'a str,
        lists: &'a [PortalLists],
        unlisted: &'a [String],
        target: &'a ContextTarget,
    ) -> ContextModalView<'a> {
        ContextModalView {
            ticket,
            portal: "prod",
            workspace: "devops",
            agent: "generic-agent",
            lists,
            current: (("prod", "ws1"), ("prod", "a2")),
            unlisted,
            share_allowed: true,
            target,
        }
    }

    fn key(name: &str) -> crate::ids::TicketKey {
        crate::ids::TicketKey {
            host: "https://prod.example".to_owned(),
            workspace: crate::ids::WorkspaceId::new("ws1"),
            ticket: TicketName::new(name),
        }
    }

    fn portal(name: &str) -> PortalLists {
        PortalLists {
            portal: name.to_owned(),
            workspaces: vec![("ws1".to_owned(), "devops".to_owned())],
            agents: vec![("a1".to_owned(), "generic".to_owned()), ("a2".to_owned(), "k8s".to_owned())],
        }
    }

    #[test]
    fn context_modal_snapshot() {
        let thread = crate::ids::ThreadKey {
            team: crate::ids::TeamId::new("T1"),
            channel: crate::ids::ChannelId::new("C1"),
            thread_ts: crate::ids::MessageTs::new("1.2"),
        };
        let target = ContextTarget::new(&thread, &key("DEVOPS-1"));
        let lists = [portal("prod"), portal("qa")];
        let v = context_modal(&context_view("DEVOPS-1", &lists, &["dev".to_owned()], &target));
        view_is_valid(&v);
        assert_eq!(v["private_metadata"], "C1\n1.2\nhttps://prod.example\nws1\nDEVOPS-1");
        assert_eq!(v["blocks"][1]["element"]["initial_option"]["value"], "prod/ws1");
        assert_eq!(v["blocks"][2]["element"]["initial_option"]["value"], "prod/a2");
        let share = &v["blocks"][4];
        assert_eq!(share["optional"], true);
        assert!(share["element"].get("initial_options").is_none(), "sharing is off unless ticked");
        insta::assert_json_snapshot!(v);
        // One portal: nothing says "portal", and the options are not grouped.
        let one = context_modal(&ContextModalView {
            share_allowed: false,
            ..context_view("DEVOPS-1", &lists[..1], &[], &target)
        });
        view_is_valid(&one);
        assert!(one["blocks"].as_array().unwrap().iter().all(|b| b["block_id"] != input::SHARE.0), "no share box");
        assert!(!one["blocks"][0]["text"]["text"].as_str().unwrap().contains("portal"));
        assert!(one["blocks"][1]["element"]["options"].is_array());
    }

    #[test]
    fn history_snapshot_and_limits() {
        let u = UserId::new("U1");
        let at = 1_800_000_000_000;
        let entries = vec![
            HistoryEntry {
                at,
                actor: Actor::User(u.clone()),
                event: HistoryEvent::Created { title: "Disk @channel".into() },
            },
            HistoryEntry {
                at: at + 1000,
                actor: Actor::Agent("generic-agent".into()),
                event: HistoryEvent::StatusChanged {
                    from: TicketStatus::Open,
                    to: TicketStatus::Pending,
                    comment: None,
                },
            },
            HistoryEntry {
                at: at + 2000,
                actor: Actor::User(u.clone()),
                event: HistoryEvent::AssigneeChanged { from: None, to: Some(UserId::new("U2")) },
            },
            HistoryEntry {
                at: at + 3000,
                actor: Actor::User(u.clone()),
                event: HistoryEvent::CommandDecided {
                    card: CardId::new("c1"),
                    command: "kubectl delete pod `web-1`".into(),
                    decision: Decision::Reject { reason: Some("not in prod <!here>".into()) },
                    rule: None,
                    always: false,
                    approvals: vec![],
                    needs: 0,
                    who: None,
                },
            },
            HistoryEntry {
                at: at + 3100,
                actor: Actor::Bridge,
                event: HistoryEvent::CommandDecided {
                    card: CardId::new("c2"),
                    command: "rm -rf /".into(),
                    decision: Decision::Reject { reason: Some("blocked by policy: rm -rf".into()) },
                    rule: Some("rm -rf".into()),
                    always: false,
                    approvals: vec![],
                    needs: 0,
                    who: None,
                },
            },
            HistoryEntry {
                at: at + 3200,
                actor: Actor::Bridge,
                event: HistoryEvent::CommandDecided {
                    card: CardId::new("c2"),
                    command: "kubectl get pods".into(),
                    decision: Decision::Approve,
                    rule: None,
                    always: true,
                    approvals: vec![],
                    needs: 0,
                    who: None,
                },
            },
            HistoryEntry {
                at: at + 3210,
                actor: Actor::User(u.clone()),
                event: HistoryEvent::CommandDecided {
                    card: CardId::new("c2"),
                    command: "kubectl delete ns staging".into(),
                    decision: Decision::Approve,
                    rule: None,
                    always: false,
                    approvals: vec![u.clone()],
                    needs: 2,
                    who: None,
                },
            },
            HistoryEntry {
                at: at + 3220,
                actor: Actor::User(UserId::new("U2")),
                event: HistoryEvent::CommandDecided {
                    card: CardId::new("c2"),
                    command: "kubectl delete ns staging".into(),
                    decision: Decision::Approve,
                    rule: None,
                    always: false,
                    approvals: vec![u.clone(), UserId::new("U2")],
                    needs: 2,
                    who: None,
                },
            },
            HistoryEntry {
                at: at + 3300,
                actor: Actor::Bridge,
                event: HistoryEvent::CardExpired { card: CardId::new("c3") },
            },
            HistoryEntry {
                at: at + 4000,
                actor: Actor::User(u.clone()),
                event: HistoryEvent::StatusChanged {
                    from: TicketStatus::Pending,
                    to: TicketStatus::Resolved,
                    comment: Some("fixed by restarting".into()),
                },
            },
        ];
        let v = history_modal("DEVOPS-42", "Disk full", &entries);
        view_is_valid(&v);
        assert!(!v.to_string().contains("<!here>") && !v.to_string().contains("@channel"));
        insta::assert_json_snapshot!(v);

        let comment = HistoryEvent::Comment { text: "x".repeat(2000) };
        let many: Vec<HistoryEntry> =
            (0..500).map(|i| HistoryEntry { at: at + i, actor: Actor::Bridge, event: comment.clone() }).collect();
        let v = history_modal("DEVOPS-42", "Disk full", &many);
        view_is_valid(&v);
        assert!(v.to_string().contains("200 older entries"));
    }

    #[test]
    fn feedback_reads_as_who_rated_what() {
        let entry = |rating| HistoryEntry {
            at: 1_800_000_000_000,
            actor: Actor::User(UserId::new("U1")),
            event: HistoryEvent::Feedback { rating, reply_ts: crate::ids::MessageTs::new("1800000000.000100") },
        };
        let up = describe(&entry(crate::model::Rating::Positive));
        assert!(up.ends_with("<@U1> rated the agent's reply 👍"), "{up}");
        assert!(describe(&entry(crate::model::Rating::Negative)).ends_with("rated the agent's reply 👎"));
    }

    #[test]
    fn hostile_ticket_text_stays_inert_and_within_limits() {
        let hostile = format!("<!channel> @here ``` &lt;!here&gt; {}", "&<>".repeat(1500));
        // A ticket's name is also its buttons' value, which Slack caps at 2,000.
        let name: String = hostile.chars().take(1000).collect();
        let u = UserId::new("U1");
        for status in TicketStatus::ALL {
            let m = header(&HeaderView {
                ticket: &name,
                title: &hostile,
                agent: &hostile,
                status,
                requester: &u,
                assignee: Some(&u),
                url: "https://x",
                retired: None,
            });
            message_is_valid(&m);
        }
        let m = header(&HeaderView {
            ticket: "DEVOPS-1",
            title: "<!here> down",
            agent: "a",
            status: TicketStatus::Open,
            requester: &u,
            assignee: None,
            url: "https://x",
            retired: None,
        });
        assert_eq!(m.text, "Ticket DEVOPS-1: &lt;!here&gt; down", "the notification is escaped too");
        view_is_valid(&status_modal(&hostile, TicketStatus::Open, TicketStatus::Pending, &target()));
        let lists = [portal(&hostile)];
        let unlisted = [hostile.clone()];
        let context_target = ContextTarget {
            channel: crate::ids::ChannelId::new("C1"),
            thread_ts: crate::ids::MessageTs::new("1.2"),
            ticket: key("D-1"),
        };
        let hostile_view = ContextModalView {
            workspace: &hostile,
            agent: &hostile,
            portal: &hostile,
            ..context_view(&hostile, &lists, &unlisted, &context_target)
        };
        view_is_valid(&context_modal(&hostile_view));
        let moved = header(&HeaderView {
            ticket: &name,
            title: &hostile,
            agent: "a",
            status: TicketStatus::Open,
            requester: &u,
            assignee: None,
            url: "https://x",
            retired: Some(Retired::Moved { by: &u, to: &name, place: &hostile }),
        });
        message_is_valid(&moved);

        let row = TicketRow {
            ticket: &hostile,
            title: &hostile,
            status: TicketStatus::Open,
            assignee: None,
            created: None,
            updated: None,
            link: Some("https://acme.slack.com/archives/C1/p1?a=1&b=<!here>"),
        };
        let m = list(&format!("Tickets matching “{hostile}”"), std::slice::from_ref(&row), Some(&ListArgs::default()));
        message_is_valid(&m);
        message_is_valid(&found(&row, Some(&UserId::new("U1"))));
        let linked = TicketRow { link: Some("https://acme.slack.com/archives/C1/p1?a=1&b=2"), ..row.clone() };
        let m = found(&linked, None);
        assert!(
            m.blocks[0]["text"]["text"]
                .as_str()
                .unwrap()
                .starts_with("*<https://acme.slack.com/archives/C1/p1?a=1&amp;b=2|")
        );

        let rows = vec![row; HOME_ROWS + 5];
        let v = home(&rows, 3);
        view_is_valid(&v);
        assert!(v.to_string().contains("…and 8 more"), "rows past the tab are counted, not dropped silently");
    }

    fn trail(at: i64) -> Vec<HistoryEntry> {
        let (ann, bob) = (UserId::new("U1"), UserId::new("U2"));
        let card = CardId::new("c1");
        let decided = |command: &str, decision: Decision, rule: Option<&str>, approvals: Vec<UserId>, needs| {
            HistoryEvent::CommandDecided {
                card: card.clone(),
                command: command.into(),
                decision,
                rule: rule.map(Into::into),
                always: false,
                approvals,
                needs,
                who: None,
            }
        };
        let events = [
            (
                Actor::Agent("generic-agent".into()),
                HistoryEvent::CommandsProposed {
                    card: card.clone(),
                    count: 3,
                    commands: vec![
                        "kubectl get pods".into(),
                        "rm -rf /tmp/x <!here>".into(),
                        "kubectl delete ns old".into(),
                    ],
                },
            ),
            (Actor::Bridge, decided("kubectl get pods", Decision::Approve, Some("^kubectl get "), vec![], 1)),
            (
                Actor::Bridge,
                decided(
                    "rm -rf /tmp/x <!here>",
                    Decision::Reject { reason: Some("blocked by policy: rm -rf".into()) },
                    Some("rm -rf"),
                    vec![],
                    1,
                ),
            ),
            (Actor::User(ann.clone()), decided("kubectl delete ns old", Decision::Approve, None, vec![ann.clone()], 2)),
            (
                Actor::User(bob.clone()),
                decided("kubectl delete ns old", Decision::Approve, None, vec![ann, bob.clone()], 2),
            ),
            (
                Actor::User(bob),
                HistoryEvent::CommandsSubmitted {
                    card: card.clone(),
                    summary: Some("Approved 2 commands, rejected 1 command.".into()),
                },
            ),
            (Actor::Bridge, HistoryEvent::CardExpired { card: CardId::new("c2") }),
        ];
        events
            .into_iter()
            .zip(0..)
            .map(|((actor, event), i)| HistoryEntry { at: at + i * 1000, actor, event })
            .collect()
    }

    #[test]
    fn the_audit_trail_names_who_decided_what_and_files_a_long_one() {
        let at = 1_800_000_000_000;
        let entries = trail(at);
        assert!(entries.iter().all(|e| e.event.is_approval()));
        assert!(!HistoryEvent::MessageRelayed.is_approval());
        assert!(audit_fits(&entries));
        let m = audit("DEVOPS-42", "Disk @channel", &entries, AuditFile::NotNeeded);
        kit::validate(&m.blocks, kit::MESSAGE_BLOCKS).unwrap();
        assert_inert(&Value::Array(m.blocks.clone()));
        insta::assert_json_snapshot!(m.blocks);

        // Past what a message holds: the newest entries, and the whole in a file.
        let long: Vec<HistoryEntry> = (0..10).flat_map(|i| trail(at + i * 10_000)).collect();
        assert!(!audit_fits(&long));
        let m = audit("DEVOPS-42", "Disk", &long, AuditFile::Sent);
        kit::validate(&m.blocks, kit::MESSAGE_BLOCKS).unwrap();
        let text = m.blocks.iter().map(|b| b.to_string()).collect::<String>();
        assert!(text.contains("The newest 40 of 70 entries; the whole trail is in a file"), "{text}");
        let failed = audit("DEVOPS-42", "Disk", &long, AuditFile::Failed);
        assert!(failed.text.contains("could not send you the whole trail"), "{}", failed.text);

        let hash = |c: &str| format!("h{}", c.chars().count());
        let file = audit_file("DEVOPS-42", &long, &hash);
        assert_eq!(file.name, "DEVOPS-42-approvals.txt");
        let lines: Vec<&str> = file.content.lines().collect();
        assert_eq!(lines[0], "Approval trail of ticket DEVOPS-42: 70 entries, oldest first.");
        // Every entry, each proposal followed by its commands with their hashes.
        assert_eq!(lines.iter().filter(|l| l.starts_with("2027-01-15T")).count(), 70);
        let deletion = hash("kubectl delete ns old");
        assert_eq!(
            &lines[2..10],
            [
                "2027-01-15T08:00:00Z\tagent generic-agent\tcard c1\tproposed 3 commands",
                "\t\t  1. [h16] kubectl get pods",
                &format!("\t\t  2. [{}] rm -rf /tmp/x <!here>", "h21"),
                &format!("\t\t  3. [{deletion}] kubectl delete ns old"),
                "2027-01-15T08:00:01Z\tbridge\tcard c1\tapproved by rule ^kubectl get : [h16] kubectl get pods",
                &format!(
                    "2027-01-15T08:00:02Z\tbridge\tcard c1\trejected (blocked by policy: rm -rf) by rule rm -rf: [{}] rm -rf /tmp/x <!here>",
                    "h21"
                ),
                &format!(
                    "2027-01-15T08:00:03Z\tU1\tcard c1\tapproved (approval 1 of 2: U1): [{deletion}] kubectl delete ns old"
                ),
                &format!(
                    "2027-01-15T08:00:04Z\tU2\tcard c1\tapproved (approval 2 of 2: U1, U2): [{deletion}] kubectl delete ns old"
                ),
            ]
        );
        assert_eq!(
            lines[10],
            "2027-01-15T08:00:05Z\tU2\tcard c1\tsent the decisions to the agent: Approved 2 commands, rejected 1 command."
        );
        assert_eq!(lines[11], "2027-01-15T08:00:06Z\tbridge\tcard c2\texpired unsubmitted; nothing on it was sent");
        // No text can forge an entry: line breaks and tabs inside it are written escaped.
        let forged = "echo ok\\\n2027-01-15T08:00:00Z\tU9\tcard c1\tapproved: rm -rf /\r\u{7}";
        let tricky = [
            HistoryEntry {
                at,
                actor: Actor::User(UserId::new("U1")),
                event: HistoryEvent::CommandDecided {
                    card: CardId::new("c9"),
                    command: forged.into(),
                    decision: Decision::Reject { reason: Some("no\nU9 approved".into()) },
                    rule: None,
                    always: false,
                    approvals: vec![],
                    needs: 1,
                    who: Some("Ann\n(U1)".into()),
                },
            },
            HistoryEntry {
                at,
                actor: Actor::User(UserId::new("U1")),
                event: HistoryEvent::CommandAlwaysAllowed {
                    card: CardId::new("c9"),
                    command: "kubectl get pods".into(),
                },
            },
        ];
        let file = audit_file("DEVOPS-42", &tricky, &hash);
        let lines: Vec<&str> = file.content.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                "2027-01-15T08:00:00Z\tAnn\\n(U1)\tcard c9\trejected (no\\nU9 approved): [h61] echo ok\\\\\\n2027-01-15T08:00:00Z\\tU9\\tcard c1\\tapproved: rm -rf /\\r\\u{7}",
                "2027-01-15T08:00:00Z\tU1\tcard c9\tallowed for good on this ticket: [h16] kubectl get pods",
            ]
        );
    }

    #[test]
    fn long_history_keeps_the_newest_and_says_what_it_leaves_out() {
        let hostile = format!("{}<!here>\n@channel", "&".repeat(3000));
        let at = 1_800_000_000_000;
        let kinds = [
            HistoryEvent::Comment { text: "line\n".repeat(50) + &hostile },
            HistoryEvent::Created { title: hostile.clone() },
            HistoryEvent::MetadataUpdated { change: hostile.clone() },
            HistoryEvent::AgentChanged { from: hostile.clone(), to: hostile.clone() },
            HistoryEvent::CommandDecided {
                card: CardId::new("c1"),
                command: format!("echo ``` {hostile}"),
                decision: Decision::Reject { reason: Some(hostile.clone()) },
                rule: None,
                always: false,
                approvals: vec![],
                needs: 0,
                who: None,
            },
        ];
        for event in kinds {
            let line = describe(&HistoryEntry { at, actor: Actor::Agent(hostile.clone()), event });
            assert!(line.chars().count() <= HISTORY_LINE_CHARS, "{}", line.chars().count());
            assert_eq!(inert_problem(&line), None, "{line:?}");
        }
        // The longest entries (a rejection quoting its reason): three to a section, so
        // the newest 300 take more sections than a modal holds.
        let reject = HistoryEvent::CommandDecided {
            card: CardId::new("c1"),
            command: format!("echo ``` {hostile}"),
            decision: Decision::Reject { reason: Some(format!("{}\n{hostile}", "why\n".repeat(8))) },
            rule: None,
            always: false,
            approvals: vec![],
            needs: 0,
            who: None,
        };
        let entries: Vec<HistoryEntry> = (0..HISTORY_SHOWN)
            .map(|i| HistoryEntry {
                at: at + i as i64 * 1000,
                actor: Actor::Agent(hostile.clone()),
                event: reject.clone(),
            })
            .collect();
        let v = history_modal("DEVOPS-42", &hostile, &entries);
        view_is_valid(&v);
        let shown = v["blocks"].as_array().unwrap();
        assert_eq!(shown.len(), kit::VIEW_BLOCKS);
        let note = shown[1]["elements"][0]["text"].as_str().unwrap();
        assert!(note.ends_with(" older entries are not shown."), "{note}");
        let last = shown.last().unwrap()["text"]["text"].as_str().unwrap();
        assert!(last.contains(&when(at.div_euclid(1000) + HISTORY_SHOWN as i64 - 1)), "the newest entry is shown");
    }

    #[test]
    fn lists_link_rows_and_page() {
        let u = UserId::new("U2");
        let rows: Vec<TicketRow<'_>> = (0..15)
            .map(|i| TicketRow {
                ticket: "DEVOPS-1",
                title: "Disk full",
                status: TicketStatus::ALL[i % 4],
                assignee: (i % 2 == 0).then_some(&u),
                created: Some(1_800_000_000),
                updated: Some(1_800_000_100),
                link: Some("https://acme.slack.com/archives/C1/p1800000000000100"),
            })
            .collect();
        let m = list("Open tickets", &rows, Some(&ListArgs::default()));
        kit::validate(&m.blocks, kit::MESSAGE_BLOCKS).unwrap();
        assert!(m.blocks[1]["text"]["text"].as_str().unwrap().starts_with("*<https://acme.slack.com/archives/"));
        assert_eq!(m.blocks.last().unwrap()["elements"][0]["action_id"], action::LIST_MORE);
        let empty = list("Closed tickets matching “x”", &[], None);
        kit::validate(&empty.blocks, kit::MESSAGE_BLOCKS).unwrap();
        assert!(empty.blocks[1].to_string().contains("No tickets match"));
        let evil = TicketRow { link: Some("https://x|<!channel>"), ..rows[0].clone() };
        assert!(!list("h", &[evil], None).blocks[1].to_string().contains("<!channel>"));
    }

    #[test]
    fn found_and_home_render_valid() {
        let row = TicketRow {
            ticket: "DEVOPS-7",
            title: "VPN",
            status: TicketStatus::Open,
            assignee: None,
            created: Some(1),
            updated: None,
            link: None,
        };
        let m = found(&row, Some(&UserId::new("U1")));
        kit::validate(&m.blocks, kit::MESSAGE_BLOCKS).unwrap();
        assert_eq!(m.blocks.last().unwrap()["elements"][0]["action_id"], action::CONTINUE);
        let rows = vec![row; HOME_ROWS];
        let v = home(&rows, 3);
        view_is_valid(&v);
        assert!(v.to_string().contains("3 more"));
        view_is_valid(&home(&[], 0));
    }

    proptest::proptest! {
        #[test]
        fn any_ticket_text_renders_valid_block_kit(
            title in "(?s)(.|[&<>`@]|```|<!here>|<@U9>|@channel){0,400}",
            name in "(.|[&<>`@]|<!here>){1,40}",
            comment in "(?s)(.|[&<>`@\n]|```|<!channel>){0,3000}",
        ) {
            let u = UserId::new("U1");
            for status in TicketStatus::ALL {
                let m = header(&HeaderView {
                    ticket: &name, title: &title, agent: &title, status, requester: &u, assignee: Some(&u),
                    url: "https://x", retired: None,
                });
                message_is_valid(&m);
                proptest::prop_assert!(!m.blocks[0].to_string().contains("<!"));
            }
            let entry = HistoryEntry {
                at: 0,
                actor: Actor::Agent(title.clone()),
                event: HistoryEvent::StatusChanged { from: TicketStatus::Open, to: TicketStatus::Pending, comment: Some(comment.clone()) },
            };
            view_is_valid(&history_modal(&name, &title, &[entry.clone(), entry]));
            let row = TicketRow { ticket: &name, title: &title, status: TicketStatus::Open, assignee: None, created: Some(0), updated: None, link: Some(&comment) };
            let more = ListArgs { text: name.clone(), ..ListArgs::default() };
            message_is_valid(&list(&title, std::slice::from_ref(&row), Some(&more)));
            message_is_valid(&found(&row, Some(&u)));
            view_is_valid(&home(std::slice::from_ref(&row), 0));
        }
    }
}
