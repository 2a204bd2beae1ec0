//! Every sentence the bridge says in Slack: notices in threads, answers only the clicker
//! sees, announcements of changes, refusals and explanations.
//!
//! Pure functions, like the other renderers: typed facts in, a [`Message`] out. The bridge
//! decides *what* happened; only this module (with the other renderers) writes mrkdwn,
//! mentions (`<@…>`, `<!subteam^…>`) and emphasis. Anything that comes from people, the agent
//! or the HelpDesk (titles, names, error text) goes through [`blocks::notice`] or
//! [`mrkdwn::escape_inert`], so it cannot ping or break the layout. The snapshot test at the
//! bottom shows all of them.

use std::fmt::Display;

use super::{
    blocks,
    controls::{ListArgs, action},
    kit::{Button, Message},
    mrkdwn::{self, escape_inert},
};
use crate::{
    ids::{Approver, PendingId, UserId},
    model::{Delivery, Rating, RelayMode, TicketStatus},
};

/// A person, or a user group, as a live mention.
fn mention(approver: &Approver) -> String {
    match approver {
        Approver::User(id) => format!("<@{id}>"),
        Approver::Group(id) => format!("<!subteam^{id}>"),
    }
}

/// "Retry" for a kept message.
fn retry(pending: Option<&PendingId>) -> Vec<Button> {
    pending.map(|id| Button::action("Retry", action::RETRY, id.as_str())).into_iter().collect()
}

/// "Open a new ticket" (`action`) for a kept message, the main action of its notice.
fn new_ticket(action_id: &str, pending: Option<&PendingId>) -> Vec<Button> {
    pending.map(|id| Button::action("Open a new ticket", action_id, id.as_str()).primary()).into_iter().collect()
}

/// Who may decide on a ticket's commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deciders<'a> {
    /// The requester, when they may.
    pub requester: Option<&'a UserId>,
    /// Everyone listed, bridge-wide then for the channel.
    pub approvers: Vec<&'a Approver>,
}

impl Deciders<'_> {
    /// In words (mrkdwn).
    fn words(&self) -> String {
        let mut names: Vec<String> = self.requester.map(|r| format!("<@{r}> (who asked)")).into_iter().collect();
        names.extend(self.approvers.iter().map(|a| mention(a)));
        if names.is_empty() { "the approvers this bridge lists (none are set)".to_owned() } else { names.join(", ") }
    }
}

/// Who may change settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Administrators<'a> {
    /// `ADMINS`.
    pub listed: Vec<&'a Approver>,
    /// Whether the workspace's own admins and owners may too.
    pub workspace_admins: bool,
}

// === the store, the HelpDesk and sending ===

/// The store does not answer, so a message was not taken.
pub fn store_trouble() -> Message {
    blocks::notice(
        "⚠️ I could not record this message: my state store is not answering. Nothing was sent to the HelpDesk; \
         please send it again in a minute.",
        &[],
    )
}

/// Why a send to the HelpDesk failed, as far as people need to know.
pub enum SendFailure<'a> {
    /// The HelpDesk could not be reached.
    Connection,
    /// The HelpDesk did not answer in time.
    Timeout,
    /// The HelpDesk answered with a server error.
    Server(u16),
    /// The HelpDesk refused the bridge's token.
    Unauthorized,
    /// The HelpDesk rejected the message (its words, quoted).
    BadRequest(&'a str),
    /// The agent reported an error (its words, quoted).
    Stream(&'a str),
    /// Anything else.
    Other(&'a (dyn Display + Sync)),
}

/// The send failed before any reply; `retry` is the kept message.
pub fn send_failed(failure: &SendFailure<'_>, delivery: Delivery, retry_id: Option<&PendingId>) -> Message {
    let what = match failure {
        SendFailure::Connection => "I could not reach the HelpDesk".to_owned(),
        SendFailure::Timeout => "The HelpDesk did not answer in time".to_owned(),
        SendFailure::Server(status) => format!("The HelpDesk answered with an error ({status})"),
        SendFailure::Unauthorized => "The HelpDesk refused the bridge's token".to_owned(),
        SendFailure::BadRequest(message) => format!("The HelpDesk rejected the message ({message})"),
        SendFailure::Stream(message) => format!("The agent reported an error ({message})"),
        SendFailure::Other(err) => format!("The HelpDesk failed: {err}"),
    };
    let fate = match delivery {
        Delivery::NotDelivered => "Your message did not reach the ticket.",
        Delivery::Unknown => "Your message may or may not have reached the ticket.",
        Delivery::Delivered => "Your message reached the ticket.",
    };
    blocks::notice(&format!("⚠️ {what}. {fate}"), &retry(retry_id))
}

/// The HelpDesk no longer has the ticket; `reopen` is the kept message.
pub fn ticket_lost(ticket: &str, reopen: Option<&PendingId>) -> Message {
    let buttons = new_ticket(action::REOPEN, reopen);
    blocks::notice(
        &format!(
            "⚠️ Ticket {ticket} no longer exists on the HelpDesk, so your message was not delivered. \
             Open a new ticket for this thread to continue."
        ),
        &buttons,
    )
}

/// Why a reply stopped when the bridge shut down mid-reply (for the reply's last words).
pub fn bridge_restarting() -> String {
    "the bridge is restarting".to_owned()
}

/// Why a reply stopped when the agent reported an error (for [`reply_interrupted`]).
pub fn agent_reported(message: &str) -> String {
    format!("the agent reported an error: {message}")
}

/// The reply stopped at a cap.
pub fn reply_cut_short(reason: &str) -> Message {
    blocks::notice(&format!("⚠️ The agent's reply was cut short ({reason}). Your message reached the ticket."), &[])
}

/// A reader stopped the reply in Slack (`by`, when Slack said who).
pub fn reply_stopped(by: Option<&UserId>) -> Message {
    let who = by.map_or_else(|| "Someone".to_owned(), |user| format!("<@{user}>"));
    blocks::notice_mrkdwn(
        &format!(
            "⏹️ {who} stopped this reply in Slack, so the rest of this turn is not shown here. The ticket stays open: write in the thread to go on."
        ),
        &[],
    )
}

/// The reply stream broke after the message was delivered.
pub fn reply_interrupted(reason: &str, retry_id: Option<&PendingId>) -> Message {
    blocks::notice(
        &format!(
            "⚠️ The agent's reply was interrupted ({reason}). Your message reached the ticket; Retry asks the agent again."
        ),
        &retry(retry_id),
    )
}

/// A message not sent because the store did not answer; `retry` is the kept message.
pub fn not_sent_store_down(retry_id: Option<&PendingId>) -> Message {
    blocks::notice(
        "⚠️ I could not send this message: my state store is not answering. It was not sent.",
        &retry(retry_id),
    )
}

/// A message not sent because the bridge was shutting down; `retry` is the kept message.
pub fn not_sent_restarting(retry_id: Option<&PendingId>) -> Message {
    blocks::notice("⚠️ I restarted before sending this message to the agent. It was not sent.", &retry(retry_id))
}

/// A message whose send started on a replica that stopped before the turn ended: it may have
/// reached the agent, so it is not sent again unless someone asks; `send_again` is the kept
/// message.
pub fn may_not_have_reached(send_again: Option<&PendingId>) -> Message {
    let buttons: Vec<Button> =
        send_again.map(|id| Button::action("Send again", action::RETRY, id.as_str())).into_iter().collect();
    blocks::notice(
        "⚠️ I restarted while sending this message, so it may not have reached the agent. \
         Send again if the agent does not answer it (it may then read it twice).",
        &buttons,
    )
}

/// A Retry that was already used.
pub fn already_retried() -> Message {
    blocks::notice("This message was already retried.", &[])
}

/// Replaces a failure notice once someone pressed Retry.
pub fn retried_by(user: &UserId) -> Message {
    blocks::notice_mrkdwn(&format!("↻ Retried by <@{user}>."), &[])
}

/// A closed ticket takes no more messages.
pub fn closed_no_longer_reaches(ticket: &str) -> Message {
    blocks::notice(&format!("Ticket {ticket} is closed, so messages no longer reach its agent."), &[])
}

/// A message in a resolved ticket from someone who may not reopen it.
pub fn resolved_members_only(ticket: &str) -> Message {
    blocks::notice(
        &format!(
            "Ticket {ticket} is resolved, and only members of this workspace can reopen it; this message was not sent."
        ),
        &[],
    )
}

/// A message in a closed ticket's thread; `follow_up` is the kept message.
pub fn closed_thread(ticket: &str, follow_up: Option<&PendingId>) -> Message {
    let buttons = new_ticket(action::FOLLOW_UP, follow_up);
    blocks::notice(
        &format!(
            "Ticket {ticket} is closed, so this message was not sent to the agent. Open a new ticket to continue from it."
        ),
        &buttons,
    )
}

/// A comment the HelpDesk did not take.
pub fn comment_not_recorded(ticket: &str, err: &dyn Display) -> Message {
    blocks::notice(
        &format!("⚠️ I could not record this comment on ticket {ticket}: {err}. It is only here in Slack."),
        &[],
    )
}

/// An edit or deletion of a relayed message that could not be recorded on the ticket.
pub fn change_not_recorded(ticket: &str, deleted: bool, err: &dyn Display) -> Message {
    let what = if deleted { "that a message was deleted" } else { "the edited message" };
    blocks::notice(
        &format!("⚠️ I could not record {what} on ticket {ticket}: {err}. The agent has the earlier text."),
        &[],
    )
}

// === opening tickets ===

/// Files shared with a message that the agent did not get: each with why.
pub fn files_unread(files: &[(String, String)]) -> Message {
    let list: Vec<String> = files.iter().map(|(name, why)| format!("{name}: {why}")).collect();
    let lead =
        if files.len() == 1 { "The agent could not read this file" } else { "The agent could not read these files" };
    blocks::notice(&format!("📎 {lead}: {}.", list.join("; ")), &[])
}

/// The thread's earlier messages could not be read for a ticket opened inside it.
pub fn context_unread(err: &dyn Display) -> Message {
    blocks::notice(
        &format!(
            "⚠️ I could not read this thread's earlier messages ({err}), so the agent sees only the message that opened the ticket."
        ),
        &[],
    )
}

/// The placeholder a new ticket's header starts as.
pub fn opening(title: &str) -> Message {
    blocks::notice(&format!("🎫 Opening a ticket: {title}"), &[])
}

/// The placeholder a continued HelpDesk ticket's header starts as.
pub fn continuing(ticket: &str, title: &str) -> Message {
    blocks::notice(&format!("🎫 Continuing ticket {ticket}: {title}"), &[])
}

/// The shortcut on a thread that already is a ticket.
pub fn already_a_ticket(ticket: &str) -> Message {
    blocks::notice(&format!("This thread is already ticket {ticket}."), &[])
}

/// The workspace or agent could not be found.
pub fn target_unknown(err: &dyn Display) -> Message {
    blocks::notice(&format!("⚠️ I could not find the HelpDesk workspace or agent to open a ticket with: {err}"), &[])
}

/// No workspace and agent are set; `create` is the kept message.
pub fn no_target(create: &PendingId) -> Message {
    blocks::notice(
        "No HelpDesk workspace and agent are set for this channel yet. Create the ticket and choose them; \
         `/helpdesk config workspace <name> agent <name>` sets them for next time.",
        &[Button::action("Create ticket", action::CREATE, create.as_str()).primary()],
    )
}

/// Creating the ticket failed; `retry` is the kept message.
pub fn creation_failed(err: &dyn Display, retry_id: Option<&PendingId>) -> Message {
    blocks::notice(
        &format!("⚠️ I could not open a HelpDesk ticket: {err}. Nothing was sent to an agent yet."),
        &retry(retry_id),
    )
}

/// A creation request that is gone.
pub fn request_expired() -> Message {
    blocks::notice("This request has expired or was already turned into a ticket.", &[])
}

/// The HelpDesk could not list workspaces and agents.
pub fn cannot_list_targets(err: &dyn Display) -> Message {
    blocks::notice(&format!("⚠️ I could not list the HelpDesk's workspaces and agents: {err}"), &[])
}

/// None of the HelpDesk's workspaces or agents is allowed.
pub fn nothing_allowed() -> Message {
    blocks::notice(
        "None of the HelpDesk's workspaces or agents is one this bridge may use, so I cannot open a ticket. \
         Ask an administrator to check its allowed workspaces and agents.",
        &[],
    )
}

/// A creation form naming a workspace or agent that is not allowed.
pub fn target_not_allowed() -> Message {
    blocks::notice("That HelpDesk workspace or agent is not one this bridge may use; nothing was created.", &[])
}

/// *Open a new ticket* that was already used for a thread.
pub fn already_reopened() -> Message {
    blocks::notice("A new ticket was already opened for this thread.", &[])
}

/// *Open a new ticket* that was already used for a message.
pub fn already_followed_up() -> Message {
    blocks::notice("A new ticket was already opened from this message.", &[])
}

/// *Open a new ticket* in a closed ticket's thread.
pub fn closed_mention_me(ticket: &str) -> Message {
    blocks::notice(&format!("Ticket {ticket} is closed; mention me in the channel to open a new one."), &[])
}

/// *Open a new ticket* while the HelpDesk still has the old one.
pub fn still_on_helpdesk(ticket: &str) -> Message {
    blocks::notice(&format!("Ticket {ticket} is still on the HelpDesk."), &[])
}

// === who may act ===

/// Someone who may not act on a kept message: in a ticket's thread (`ticket`), only members
/// and deciders; outside one, only its author.
pub fn may_not_act(ticket: Option<&str>, author: &UserId) -> Message {
    let text = match ticket {
        Some(ticket) => format!(
            "Only members of this workspace can act on ticket {}; guests and people from other organisations \
             only when they may decide on its commands.",
            escape_inert(ticket)
        ),
        None => format!(
            "This is <@{author}>'s request, so only they can do this. To open a ticket of your own, mention me or \
             use `/helpdesk new`."
        ),
    };
    blocks::notice_mrkdwn(&text, &[])
}

/// Someone who may not decide on commands.
pub fn only_deciders(deciders: &Deciders<'_>) -> Message {
    blocks::notice_mrkdwn(&format!("Only {} can decide on these commands.", deciders.words()), &[])
}

/// Someone who may not delete a ticket.
pub fn only_deciders_delete(deciders: &Deciders<'_>) -> Message {
    blocks::notice_mrkdwn(
        &format!("Only {} can delete this ticket. Closing it is open to everyone here.", deciders.words()),
        &[],
    )
}

/// Someone who may not move a thread to a ticket in another workspace or portal.
pub fn only_deciders_move(deciders: &Deciders<'_>) -> Message {
    blocks::notice_mrkdwn(
        &format!(
            "Only {} can move this thread to a ticket in another workspace or portal. Switching its agent is open to everyone here.",
            deciders.words()
        ),
        &[],
    )
}

/// The thread's messages could not be read to share them with the ticket it moved to.
pub fn share_unread(err: &dyn Display) -> Message {
    blocks::notice(
        &format!("⚠️ I could not read this thread's messages ({err}), so they were not shared with the new ticket."),
        &[],
    )
}

/// Someone who may not change a ticket from its header.
pub fn members_only() -> Message {
    blocks::notice("Only members of this workspace can change this ticket.", &[])
}

// === approval cards ===

/// Proposals that could not be stored.
pub fn proposals_not_recorded(count: usize) -> Message {
    blocks::notice(
        &format!(
            "⚠️ The agent proposed {count} commands, but I could not record them (state store unavailable). \
             Ask the agent to propose them again."
        ),
        &[],
    )
}

/// What a withdrawn card's messages become.
pub fn card_withdrawn() -> Message {
    blocks::notice(
        "⚠️ I could not post all of the agent's proposed commands, so none can be decided here. \
         Ask the agent to propose them again.",
        &[],
    )
}

/// A click the bridge does not recognise.
pub fn not_my_button() -> Message {
    blocks::notice("This button is not one of mine.", &[])
}

/// A click on a card the store does not have.
pub fn card_gone() -> Message {
    blocks::notice("This approval card no longer exists.", &[])
}

/// A card click that did not come from the card's own messages.
pub fn not_this_card() -> Message {
    blocks::notice("This button does not belong to that card.", &[])
}

/// A click on a card whose ticket was deleted.
pub fn card_ticket_deleted() -> Message {
    blocks::notice("The ticket of this card was deleted.", &[])
}

/// A click on a card whose ticket is closed.
pub fn ticket_closed(ticket: &str) -> Message {
    blocks::notice(&format!("Ticket {ticket} is closed."), &[])
}

/// A click naming a command the card does not have.
pub fn no_such_command() -> Message {
    blocks::notice("That command is not on this card.", &[])
}

/// A ticket whose portal is no longer configured: its thread no longer reaches it.
pub fn portal_gone(err: &dyn Display) -> Message {
    blocks::notice(&format!("⚠️ Nothing was sent: {err}. Open a new ticket to go on."), &[])
}

/// A submitted card's decisions were not sent, being no longer current.
pub fn decisions_withheld() -> Message {
    blocks::notice(
        "The decisions on the earlier approval card were not sent: they are no longer current (the card expired, the ticket closed, or the agent proposed newer commands). Decide on the newest card if those commands are still needed.",
        &[],
    )
}

/// An Approve while the channel's command rules cannot be read: its block rules are
/// unknown, so nothing is approved.
pub fn rules_unreadable() -> Message {
    blocks::notice(
        "⚠️ I cannot read this channel's command rules right now, so I cannot tell whether a rule blocks this command. Nothing was approved; try again in a moment.",
        &[],
    )
}

/// A click on a command a block rule rejected.
pub fn blocked_by_rule(rule: &str) -> Message {
    let text = format!(
        "This command is blocked by the rule {}: it goes back to the agent rejected, and nobody may approve it.",
        mrkdwn::inline_code(rule, 200)
    );
    blocks::notice_mrkdwn(&text, &[])
}

/// Submit while command `number` has some of the approvals it needs, not all.
pub fn needs_more_approvals(number: usize, given: usize, needs: usize) -> Message {
    let text = format!(
        "Command {number} has {given} of the {needs} approvals it needs from different people. Get the rest, or reject or ignore it, then Submit."
    );
    blocks::notice(&text, &[])
}

/// A second Approve from the same person on a command that needs several people.
pub fn approved_already(needs: usize) -> Message {
    let text = format!("You approved this command already; it needs {needs} approvals from different people.");
    blocks::notice(&text, &[])
}

/// A click on a card past `APPROVAL_TTL`.
pub fn card_expired() -> Message {
    blocks::notice(
        "This card expired before it was submitted, so nothing on it was sent. Ask the agent to propose the commands again.",
        &[],
    )
}

/// *Always for this ticket* on a command that cannot have it (destructive, or not shown whole).
pub fn not_always() -> Message {
    blocks::notice(
        "This command cannot be approved for good: it is destructive, or the card cannot show all of it. Approve it once instead.",
        &[],
    )
}

/// *Always for this ticket* was recorded.
pub fn always_allowed(command: &str, ticket: &str) -> Message {
    let text = format!(
        "Approved. From now on {} is approved without a click whenever the agent proposes it on {}.",
        mrkdwn::inline_code(command, 300),
        escape_inert(ticket)
    );
    blocks::notice_mrkdwn(&text, &[])
}

/// A rule typed into `/helpdesk config allow|block` that is not a valid regular expression.
pub fn rule_invalid(problem: &str) -> Message {
    let text = format!("{}. Nothing was changed.", mrkdwn::escape_inert(problem));
    blocks::notice_mrkdwn(&text, &[])
}

/// Approve on a proposal nobody could see in full.
pub fn not_attached() -> Message {
    blocks::notice(
        "I could not attach all of this proposal to the thread, so nobody has seen all of it: it cannot be approved.",
        &[],
    )
}

/// Submit before any decision.
pub fn decide_first() -> Message {
    blocks::notice("Decide on at least one command first.", &[])
}

/// A click on an outdated rendering of a card.
pub fn card_changed() -> Message {
    blocks::notice(
        "This card changed since you looked at it (someone decided or it was submitted). Look again: it now shows what it is.",
        &[],
    )
}

/// A click on a submitted card.
pub fn already_submitted(by: Option<&UserId>) -> Message {
    let text = match by {
        Some(by) => format!("These decisions were already submitted by <@{by}>."),
        None => "These decisions were already submitted.".to_owned(),
    };
    blocks::notice_mrkdwn(&text, &[])
}

/// A click on a superseded card.
pub fn card_superseded() -> Message {
    blocks::notice_mrkdwn("A newer card replaced this one; decide there.", &[])
}

// === the ticket's life ===

/// The statuses a status may move to, in words ("Resolved or Open").
fn choices(from: TicketStatus) -> String {
    let next: Vec<&str> = from.next().iter().map(|s| s.label()).collect();
    if next.is_empty() { "nothing: it is final".to_owned() } else { next.join(" or ") }
}

/// A transition the model does not allow.
pub fn cannot_become(ticket: &str, from: TicketStatus, to: TicketStatus) -> Message {
    blocks::notice(
        &format!(
            "Ticket {ticket} is {}, so it cannot become {}. From {} it can become {}.",
            from.label(),
            to.label(),
            from.label(),
            choices(from)
        ),
        &[],
    )
}

/// A status change the HelpDesk did not take.
pub fn status_not_changed(ticket: &str, from: TicketStatus, to: TicketStatus, err: &dyn Display) -> Message {
    blocks::notice(
        &format!(
            "⚠️ I could not change ticket {ticket} to {} on the HelpDesk: {err}. It is still {}.",
            to.label(),
            from.label()
        ),
        &[],
    )
}

/// A change to a thread whose ticket is gone.
pub fn thread_ticket_gone() -> Message {
    blocks::notice("This thread's ticket no longer exists.", &[])
}

/// A header click on a ticket the store no longer maps.
pub fn not_in_slack() -> Message {
    blocks::notice("This ticket no longer exists in Slack.", &[])
}

/// What a person's status change was.
pub struct StatusChange<'a> {
    /// Who.
    pub by: &'a UserId,
    /// The ticket's name.
    pub ticket: &'a str,
    /// From.
    pub from: TicketStatus,
    /// To.
    pub to: TicketStatus,
    /// Their comment.
    pub comment: Option<&'a str>,
    /// Why the comment is not on the HelpDesk ticket, when it is not.
    pub comment_failed: Option<&'a (dyn Display + Sync)>,
}

/// A person changed the status.
pub fn status_changed(change: &StatusChange<'_>) -> Message {
    let mut line = format!(
        "🔄 <@{}> changed ticket {} from *{}* to *{}*.",
        change.by,
        escape_inert(change.ticket),
        change.from.label(),
        change.to.label()
    );
    if let Some(comment) = change.comment {
        line.push_str(&format!("\n> {}", escape_inert(comment).replace('\n', "\n> ")));
        if let Some(err) = change.comment_failed {
            // The HelpDesk's words are foreign text: inert, like everything else not ours.
            line.push_str(&format!(
                "\n⚠️ The comment could not be recorded on the HelpDesk ticket: {}",
                escape_inert(&err.to_string())
            ));
        }
    }
    if change.to == TicketStatus::Closed {
        line.push_str("\nMessages here no longer reach the agent.");
    }
    blocks::notice_mrkdwn(&line, &[])
}

/// A person assigned the ticket.
pub fn assigned(by: &UserId, ticket: &str, to: &UserId, was: Option<&UserId>) -> Message {
    let was = was.map(|f| format!(" (was <@{f}>)")).unwrap_or_default();
    let ticket = escape_inert(ticket);
    blocks::notice_mrkdwn(&format!("👤 <@{by}> assigned ticket {ticket} to <@{to}>{was}."), &[])
}

/// A switch to an agent that is not allowed.
pub fn agent_not_allowed(agent: &str) -> Message {
    blocks::notice(&format!("{agent} is not an agent this bridge may give tickets to; the agent is unchanged."), &[])
}

/// A switch to an agent the HelpDesk does not know.
pub fn agent_not_found(err: &dyn Display) -> Message {
    blocks::notice(&format!("⚠️ I could not find that agent on the HelpDesk: {err}. The agent is unchanged."), &[])
}

/// A switch the HelpDesk did not take.
pub fn agent_not_switched(ticket: &str, to: &str, err: &dyn Display, stays: &str) -> Message {
    blocks::notice(
        &format!("⚠️ I could not switch ticket {ticket} to {to} on the HelpDesk: {err}. It stays with {stays}."),
        &[],
    )
}

/// A person switched the agent.
pub fn agent_switched(by: &UserId, ticket: &str, from: &str, to: &str) -> Message {
    blocks::notice_mrkdwn(
        &format!(
            "🤖 <@{by}> switched ticket {} from {} to *{}*. Messages from now on go to {}.",
            escape_inert(ticket),
            escape_inert(from),
            escape_inert(to),
            escape_inert(to)
        ),
        &[],
    )
}

/// What became of a thread moved to a ticket elsewhere (*Update context*).
pub struct Moved<'a> {
    /// Who moved it.
    pub by: &'a UserId,
    /// The ticket it left.
    pub from: &'a str,
    /// The ticket it went to.
    pub to: &'a str,
    /// Where that ticket is, in words ("portal qa, workspace devops").
    pub place: &'a str,
    /// Whether the thread's messages went to the new ticket.
    pub shared: bool,
    /// Why the old ticket could not be given its note, when it could not.
    pub note_failed: Option<&'a (dyn Display + Sync)>,
}

/// A person moved the thread to a ticket elsewhere.
pub fn moved(moved: &Moved<'_>) -> Message {
    let (from, to) = (escape_inert(moved.from), escape_inert(moved.to));
    let mut text = format!(
        "↪️ <@{}> moved this thread from ticket {from} to *{to}* ({}). Messages here go to {to} from now on; \
         {from} stays on the HelpDesk as it was.",
        moved.by,
        escape_inert(moved.place)
    );
    text.push_str(if moved.shared {
        " The thread's earlier messages were shared with the new ticket."
    } else {
        " The thread's earlier messages were not shared."
    });
    if let Some(err) = moved.note_failed {
        text.push_str(&format!(" ⚠️ {from} could not be given a note saying so: {}.", escape_inert(&err.to_string())));
    }
    blocks::notice_mrkdwn(&text, &[])
}

/// A move the HelpDesk did not take: the thread stays on its ticket.
pub fn not_moved(ticket: &str, place: &str, err: &dyn Display) -> Message {
    blocks::notice(
        &format!("⚠️ I could not open a ticket in {place}: {err}. This thread stays on ticket {ticket}."),
        &[],
    )
}

/// An *Update context* that changes nothing.
pub fn context_unchanged(ticket: &str) -> Message {
    blocks::notice(&format!("Nothing changed: that is where ticket {ticket} already is, and who works it."), &[])
}

/// An *Update context* form for a ticket the thread no longer works, or a closed one.
pub fn context_stale(ticket: &str) -> Message {
    blocks::notice(
        &format!(
            "Nothing changed: this thread no longer works ticket {ticket} as the form showed it (it moved, closed or was deleted)."
        ),
        &[],
    )
}

/// A deletion the HelpDesk did not take.
pub fn not_deleted(ticket: &str, err: &dyn Display) -> Message {
    blocks::notice(&format!("⚠️ I could not delete ticket {ticket} on the HelpDesk: {err}. Nothing was deleted."), &[])
}

/// A person deleted the ticket.
pub fn deleted(by: &UserId, ticket: &str) -> Message {
    blocks::notice_mrkdwn(
        &format!(
            "🗑️ <@{by}> deleted ticket {}. This thread no longer reaches an agent; mention me in the channel to open a new ticket.",
            escape_inert(ticket)
        ),
        &[],
    )
}

// === finding tickets ===

/// The heading of a page of `/helpdesk list` showing `shown` rows.
pub fn list_heading(args: &ListArgs, shown: usize) -> String {
    let first = args.shown;
    let what = args.status.map_or("All", TicketStatus::label);
    let mut heading = format!("{what} tickets");
    if !args.text.is_empty() {
        heading.push_str(&format!(" matching “{}”", args.text));
    }
    if shown > 0 {
        heading.push_str(&format!(" ({}–{})", first + 1, first + shown));
    }
    heading
}

/// `/helpdesk find` without a ticket.
pub fn find_usage(command: &str) -> Message {
    blocks::notice(&format!("Usage: {command} find <TICKET>, e.g. {command} find DEVOPS-42"), &[])
}

/// `/helpdesk audit` without a ticket.
pub fn audit_usage(command: &str) -> Message {
    blocks::notice(&format!("Usage: {command} audit <TICKET>, e.g. {command} audit DEVOPS-42"), &[])
}

/// `/helpdesk audit` of a ticket the bridge has no thread for, or whose thread the caller
/// cannot see (answered alike, so that its existence is not told).
pub fn audit_unknown(name: &str) -> Message {
    blocks::notice(&format!("I have no ticket {name} whose approval trail you can see."), &[])
}

/// `/helpdesk audit` by someone who sees the ticket but may not read its trail.
pub fn audit_refused(name: &str) -> Message {
    blocks::notice(
        &format!(
            "Only the requester of {name} and the people who may approve its commands can read its approval trail."
        ),
        &[],
    )
}

/// A ticket `find` does not show: unknown, or not the caller's to see.
pub fn no_such_ticket(name: &str) -> Message {
    blocks::notice(&format!("There is no ticket {name} in this channel's HelpDesk workspace."), &[])
}

/// `find` in a channel with no workspace to look in.
pub fn nowhere_to_look(name: &str) -> Message {
    blocks::notice(
        &format!(
            "I know no ticket {name}, and this channel has no HelpDesk workspace to look in. Set one with /helpdesk config workspace <name> agent <name>."
        ),
        &[],
    )
}

/// `find` could not ask the HelpDesk.
pub fn cannot_look_up(name: &str, err: &dyn Display) -> Message {
    blocks::notice(&format!("⚠️ I could not look up ticket {name} on the HelpDesk: {err}"), &[])
}

/// A *Continue* button whose value is outdated.
pub fn outdated_button() -> Message {
    blocks::notice("This button is outdated; run /helpdesk find again.", &[])
}

/// *Continue* could not read the ticket.
pub fn cannot_read(name: &str, err: &dyn Display) -> Message {
    blocks::notice(&format!("⚠️ I could not read ticket {name} from the HelpDesk: {err}"), &[])
}

/// *Continue* on a ticket worked by an agent that is not allowed.
pub fn agent_not_usable(name: &str, agent: &str) -> Message {
    blocks::notice(&format!("Ticket {name} is worked by {agent}, an agent this bridge may not use here."), &[])
}

// === `/helpdesk` ===

/// What `/helpdesk help` says.
pub fn help(command: &str) -> Message {
    let c = mrkdwn::escape(command);
    blocks::notice_mrkdwn(
        &format!(
            "*HelpDesk in Slack*\n\
             • `{c} new <title> | <first message>`: open a ticket here, e.g. `{c} new Pods crash in prod | web-1 restarts every minute`\n\
             • `{c} list [open|pending|resolved|closed|all] [words]`: tickets here, most recently updated first, e.g. `{c} list open disk`\n\
             • `{c} find <TICKET>`: a ticket and its thread, e.g. `{c} find DEVOPS-42`; a HelpDesk ticket without a thread can be continued here\n\
             • `{c} config workspace <name> agent <name>`: where this channel's tickets go, e.g. `{c} config workspace devops agent generic-agent`\n\
             • `{c} config default workspace <name> agent <name>`: where tickets go in every channel of this Slack workspace that sets none\n\
             • `{c} config approvers @person @group`: who besides the requester may approve commands here (`none` clears)\n\
             • `{c} config relay mentions`: only thread messages that mention me wake the agent; the rest are recorded as comments (`relay all` undoes it)\n\
             • `{c} config allow <regex>` / `{c} config block <regex>`: commands approved without a click here, or never run (`none` clears)\n\
             • `{c} config context off`: a ticket opened inside a thread starts from the mention alone, without the thread's earlier messages (`context on` undoes it)\n\
             • `{c} audit <TICKET>`: who proposed, approved, rejected and sent each command of a ticket, e.g. `{c} audit DEVOPS-42`\n\
             • `{c} config`: show this channel's settings (changing them is for administrators)\n\
             • `{c} help`: this list, e.g. `{c} help`\n\
             In a ticket's thread, start a message with `note:` to record a comment without waking the agent, e.g. `note: restarted web-1 by hand`. \
             The ticket header changes status, assigns, switches agent, shows history and deletes. \
             You can also mention me in a channel, message me directly, or use the *Open HelpDesk ticket* message shortcut; \
             your tickets are on my Home tab."
        ),
        &[],
    )
}

/// An unknown subcommand: said above the help.
pub fn unknown_subcommand(command: &str, other: &str) -> Message {
    let mut unknown = help(command);
    unknown
        .blocks
        .insert(0, blocks::notice(&format!("I don't know `{other}`; here is what I can do."), &[]).blocks.remove(0));
    unknown
}

/// `/helpdesk new` without a title.
pub fn new_usage(command: &str) -> Message {
    blocks::notice(&format!("Usage: {command} new <title> | <first message>"), &[])
}

/// The channel's settings could not be read.
pub fn cannot_read_settings(err: &dyn Display) -> Message {
    blocks::notice(&format!("⚠️ I could not look up this channel's HelpDesk settings: {err}"), &[])
}

/// The bot cannot post in the channel: not invited, or another reason.
pub fn cannot_post_here(not_a_member: bool, err: &dyn Display) -> Message {
    let why = if not_a_member {
        "I can't post in this channel. Invite me first (`/invite @HelpDesk`), then try again.".to_owned()
    } else {
        format!("⚠️ I could not post the ticket in this channel: {err}")
    };
    blocks::notice(&why, &[])
}

/// `/helpdesk config` arguments that do not parse.
pub fn config_usage(problem: &str) -> Message {
    blocks::notice(
        &format!(
            "{problem} Usage: /helpdesk config workspace <name> agent <name> approvers <@person> <@group> relay <mentions|all>"
        ),
        &[],
    )
}

/// The relay mode in words.
fn relay_words(mode: RelayMode) -> &'static str {
    match mode {
        RelayMode::All => "Every thread message goes to the agent (`note:` messages are comments).",
        RelayMode::Mentions => "Only thread messages that mention me go to the agent; the rest are comments.",
    }
}

/// Approvers as Slack mentions (names for people, handles for groups).
fn mentions(approvers: &[&Approver]) -> String {
    let listed: Vec<String> = approvers.iter().map(|a| mention(a)).collect();
    if listed.is_empty() { "nobody else".to_owned() } else { listed.join(", ") }
}

/// A channel's settings, as `/helpdesk config` shows them.
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    /// The HelpDesk portal, when there are several.
    pub portal: Option<&'a str>,
    /// The workspace's name, if set.
    pub workspace: Option<&'a str>,
    /// The agent's name, if set.
    pub agent: Option<&'a str>,
    /// The bridge's default workspace, if any.
    pub default_workspace: Option<&'a str>,
    /// The bridge's default agent, if any.
    pub default_agent: Option<&'a str>,
    /// Approvers besides the requester, bridge-wide then for the channel.
    pub approvers: Vec<&'a Approver>,
    /// How thread messages are relayed.
    pub relay: RelayMode,
    /// Whether a ticket opened mid-thread takes the thread's earlier messages along.
    pub context: bool,
    /// Command allow rules, bridge-wide then for the channel.
    pub allow: Vec<&'a str>,
    /// Command block rules, bridge-wide then for the channel.
    pub block: Vec<&'a str>,
}

/// The command rules in force, whether thread context is shared, and the portal, as
/// sentences.
fn rules_words(settings: &Settings<'_>) -> String {
    let list = |rules: &[&str]| rules.iter().map(|r| mrkdwn::inline_code(r, 200)).collect::<Vec<_>>().join(", ");
    let mut words = String::new();
    if let Some(portal) = settings.portal {
        words.push_str(&format!(" HelpDesk portal: {}.", escape_inert(portal)));
    }
    if !settings.context {
        words.push_str(" A ticket opened inside a thread starts from the mention alone (`context off`).");
    }
    if !settings.allow.is_empty() {
        words.push_str(&format!(" Approved without a click (unless destructive): {}.", list(&settings.allow)));
    }
    if !settings.block.is_empty() {
        words.push_str(&format!(" Blocked, nobody may approve: {}.", list(&settings.block)));
    }
    words
}

/// `/helpdesk config` with nothing to change.
pub fn settings(settings: &Settings<'_>) -> Message {
    let describe = |name: Option<&str>, default: Option<&str>| match (name, default) {
        (Some(name), _) => name.to_owned(),
        (None, Some(default)) => format!("{default} (the bridge's default)"),
        (None, None) => "not set".to_owned(),
    };
    blocks::notice_mrkdwn(
        &format!(
            "This channel's tickets go to workspace: {}; agent: {}. Approvers here, besides who asked: {}. {}{}",
            escape_inert(&describe(settings.workspace, settings.default_workspace)),
            escape_inert(&describe(settings.agent, settings.default_agent)),
            mentions(&settings.approvers),
            relay_words(settings.relay),
            rules_words(settings)
        ),
        &[],
    )
}

/// A Slack workspace's defaults for its channels.
#[derive(Debug, Clone, Default)]
pub struct TeamDefaults {
    /// The portal, when there are several.
    pub portal: Option<String>,
    /// The workspace's name (the bridge's default when the Slack workspace sets none).
    pub workspace: Option<String>,
    /// The agent's name (likewise).
    pub agent: Option<String>,
}

/// `/helpdesk config default`: the Slack workspace's defaults, as they are or as `changed`.
pub fn team_defaults(defaults: &TeamDefaults, changed: bool) -> Message {
    let portal = defaults.portal.as_deref().map(|p| format!("portal {}, ", escape_inert(p))).unwrap_or_default();
    let text = format!(
        "{}Channels of this Slack workspace without settings of their own send new tickets to {portal}workspace {} with agent {}. \
         `/helpdesk config default workspace <name> agent <name>` changes this; `/helpdesk config` sets a channel's own.",
        if changed { "✅ " } else { "" },
        escape_inert(defaults.workspace.as_deref().unwrap_or("(none: the creation form asks)")),
        escape_inert(defaults.agent.as_deref().unwrap_or("(none: the creation form asks)")),
    );
    blocks::notice_mrkdwn(&text, &[])
}

/// A `/helpdesk config default …` that cannot be done.
pub fn defaults_usage(problem: &str) -> Message {
    blocks::notice(
        &format!("{problem} Usage: /helpdesk config default [portal <name>] workspace <name> agent <name>"),
        &[],
    )
}

/// `/helpdesk config` changed the settings.
pub fn settings_changed(settings: &Settings<'_>) -> Message {
    blocks::notice_mrkdwn(
        &format!(
            "✅ New tickets in this channel go to workspace {} with agent {}. Approvers here, besides who asked: {}. {}{}",
            escape_inert(settings.workspace.unwrap_or("(the bridge's default)")),
            escape_inert(settings.agent.unwrap_or("(the bridge's default)")),
            mentions(&settings.approvers),
            relay_words(settings.relay),
            rules_words(settings)
        ),
        &[],
    )
}

/// Someone who may not change settings.
pub fn settings_refused(admins: &Administrators<'_>, command: &str) -> Message {
    let mut names: Vec<String> = admins.listed.iter().map(|a| mention(a)).collect();
    if admins.workspace_admins {
        names.push("this workspace's admins and owners".to_owned());
    }
    blocks::notice_mrkdwn(
        &format!(
            "Only {} can change this channel's HelpDesk settings. `{}` shows them.",
            names.join(", "),
            mrkdwn::escape(command)
        ),
        &[],
    )
}

/// `/helpdesk config portal <name>` naming no configured portal.
pub fn portal_unknown(name: &str, known: &[&str]) -> Message {
    blocks::notice(&format!("There is no HelpDesk portal '{name}'. The portals are: {}.", known.join(", ")), &[])
}

/// A workspace that is not allowed.
pub fn workspace_refused(name: &str) -> Message {
    blocks::notice(&format!("Workspace '{name}' is not one this bridge may open tickets in."), &[])
}

/// A workspace the HelpDesk could not find.
pub fn workspace_error(name: &str, err: &dyn Display) -> Message {
    blocks::notice(&format!("⚠️ Workspace '{name}': {err}"), &[])
}

/// An agent that is not allowed.
pub fn agent_refused(name: &str) -> Message {
    blocks::notice(&format!("Agent '{name}' is not one this bridge may give tickets to."), &[])
}

/// An agent the HelpDesk could not find.
pub fn agent_error(name: &str, err: &dyn Display) -> Message {
    blocks::notice(&format!("⚠️ Agent '{name}': {err}"), &[])
}

// === feedback on the agent's replies ===

/// A rating was recorded on the ticket (said to the clicker alone).
pub fn feedback_recorded(ticket: &str, rating: Rating) -> Message {
    blocks::notice(&format!("Thanks — your {} was recorded on ticket {ticket}.", rating.emoji()), &[])
}

/// The same person gave this reply the same rating before; nothing new was recorded.
pub fn feedback_already_recorded(ticket: &str, rating: Rating) -> Message {
    blocks::notice(
        &format!("Thanks — your {} on this reply is already recorded on ticket {ticket}.", rating.emoji()),
        &[],
    )
}

/// The rating could not be recorded (the HelpDesk or the store failed); `ticket` when it
/// is known.
pub fn feedback_not_recorded(ticket: Option<&str>, rating: Rating, err: &dyn Display) -> Message {
    let on = ticket.map(|t| format!(" on ticket {t}")).unwrap_or_default();
    blocks::notice(
        &format!(
            "⚠️ I could not record your {}{on}: {err}. Nothing was recorded; please try again in a minute.",
            rating.emoji()
        ),
        &[],
    )
}

/// A rating in a thread that is no longer a ticket.
pub fn feedback_no_ticket() -> Message {
    blocks::notice("This thread is no longer a HelpDesk ticket, so there is nothing to record your rating on.", &[])
}

/// A rating from someone who may not take part in the ticket.
pub fn feedback_members_only() -> Message {
    blocks::notice("Only members of this workspace can rate the agent's replies on this ticket.", &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ids::GroupId, slack::kit};

    /// Every notice as its fallback text and blocks, each valid Block Kit.
    #[test]
    fn every_sentence() {
        let (ann, bob) = (UserId::new("U1ANN"), UserId::new("U2BOB"));
        let p1 = PendingId::new("p1");
        let (group, person) = (Approver::Group(GroupId::new("S1OPS")), Approver::User(UserId::new("U3CAT")));
        let err = "the HelpDesk answered 500 <!channel>";
        let deciders = Deciders { requester: Some(&ann), approvers: vec![&group, &person] };
        let nobody = Deciders { requester: None, approvers: Vec::new() };
        let settings_shown = Settings {
            portal: Some("prod"),
            workspace: None,
            agent: Some("k8s <!here>"),
            default_workspace: Some("devops"),
            default_agent: None,
            approvers: vec![&person, &group],
            relay: RelayMode::Mentions,
            context: false,
            allow: Vec::new(),
            block: Vec::new(),
        };
        let change = StatusChange {
            by: &ann,
            ticket: "DEVOPS-1",
            from: TicketStatus::Pending,
            to: TicketStatus::Closed,
            comment: Some("done\n<!channel> *now*"),
            comment_failed: Some(&err),
        };
        let all: Vec<(&str, Message)> = vec![
            ("store_trouble", store_trouble()),
            ("send_failed connection", send_failed(&SendFailure::Connection, Delivery::NotDelivered, Some(&p1))),
            ("send_failed timeout", send_failed(&SendFailure::Timeout, Delivery::Unknown, None)),
            ("send_failed server", send_failed(&SendFailure::Server(502), Delivery::NotDelivered, Some(&p1))),
            ("send_failed token", send_failed(&SendFailure::Unauthorized, Delivery::NotDelivered, None)),
            ("send_failed rejected", send_failed(&SendFailure::BadRequest("too long"), Delivery::NotDelivered, None)),
            ("send_failed stream", send_failed(&SendFailure::Stream("boom"), Delivery::Delivered, None)),
            ("send_failed other", send_failed(&SendFailure::Other(&err), Delivery::Unknown, None)),
            ("ticket_lost", ticket_lost("DEVOPS-1", Some(&p1))),
            ("reply_cut_short", reply_cut_short("the reply is too long")),
            ("reply_interrupted", reply_interrupted("connection reset", Some(&p1))),
            ("not_sent_store_down", not_sent_store_down(Some(&p1))),
            ("not_sent_restarting", not_sent_restarting(None)),
            ("may_not_have_reached", may_not_have_reached(Some(&p1))),
            ("already_retried", already_retried()),
            ("retried_by", retried_by(&ann)),
            ("closed_no_longer_reaches", closed_no_longer_reaches("DEVOPS-1")),
            ("resolved_members_only", resolved_members_only("DEVOPS-1")),
            ("closed_thread", closed_thread("DEVOPS-1", Some(&p1))),
            ("comment_not_recorded", comment_not_recorded("DEVOPS-1", &err)),
            ("change_not_recorded edit", change_not_recorded("DEVOPS-1", false, &err)),
            ("change_not_recorded delete", change_not_recorded("DEVOPS-1", true, &err)),
            ("context_unread", context_unread(&err)),
            (
                "files_unread",
                files_unread(&[
                    ("core <!here>".to_owned(), "it is not a text file".to_owned()),
                    ("big.log".to_owned(), "it is larger than 64 KB".to_owned()),
                ]),
            ),
            ("opening", opening("Disk full <!here>")),
            ("continuing", continuing("DEVOPS-1", "Disk full")),
            ("already_a_ticket", already_a_ticket("DEVOPS-1")),
            ("target_unknown", target_unknown(&err)),
            ("no_target", no_target(&p1)),
            ("creation_failed", creation_failed(&err, Some(&p1))),
            ("request_expired", request_expired()),
            ("cannot_list_targets", cannot_list_targets(&err)),
            ("nothing_allowed", nothing_allowed()),
            ("target_not_allowed", target_not_allowed()),
            ("already_reopened", already_reopened()),
            ("already_followed_up", already_followed_up()),
            ("closed_mention_me", closed_mention_me("DEVOPS-1")),
            ("still_on_helpdesk", still_on_helpdesk("DEVOPS-1")),
            ("may_not_act ticket", may_not_act(Some("DEVOPS-1 <!here>"), &ann)),
            ("may_not_act request", may_not_act(None, &ann)),
            ("only_deciders", only_deciders(&deciders)),
            ("only_deciders none", only_deciders(&nobody)),
            ("only_deciders_delete", only_deciders_delete(&deciders)),
            ("only_deciders_move", only_deciders_move(&deciders)),
            ("share_unread", share_unread(&err)),
            ("members_only", members_only()),
            ("proposals_not_recorded", proposals_not_recorded(3)),
            ("card_withdrawn", card_withdrawn()),
            ("not_my_button", not_my_button()),
            ("card_gone", card_gone()),
            ("not_this_card", not_this_card()),
            ("card_ticket_deleted", card_ticket_deleted()),
            ("ticket_closed", ticket_closed("DEVOPS-1")),
            ("no_such_command", no_such_command()),
            ("not_attached", not_attached()),
            ("blocked_by_rule", blocked_by_rule("rm -rf `/`")),
            ("rules_unreadable", rules_unreadable()),
            ("decisions_withheld", decisions_withheld()),
            ("portal_unknown", portal_unknown("qa", &["prod", "staging"])),
            (
                "portal_gone",
                portal_gone(&"this ticket's HelpDesk portal (https://old.example) is no longer configured"),
            ),
            ("not_always", not_always()),
            ("card_expired", card_expired()),
            ("needs_more_approvals", needs_more_approvals(2, 1, 2)),
            ("approved_already", approved_already(2)),
            ("always_allowed", always_allowed("kubectl rollout restart deploy/web <!here>", "DEVOPS-1")),
            ("rule_invalid", rule_invalid("`(oops` is not a valid regular expression: unclosed group")),
            ("decide_first", decide_first()),
            ("card_changed", card_changed()),
            ("already_submitted", already_submitted(Some(&bob))),
            ("already_submitted anonymous", already_submitted(None)),
            ("card_superseded", card_superseded()),
            ("cannot_become", cannot_become("DEVOPS-1", TicketStatus::Closed, TicketStatus::Open)),
            ("status_not_changed", status_not_changed("DEVOPS-1", TicketStatus::Open, TicketStatus::Pending, &err)),
            ("thread_ticket_gone", thread_ticket_gone()),
            ("not_in_slack", not_in_slack()),
            ("status_changed", status_changed(&change)),
            ("assigned", assigned(&ann, "DEVOPS-1 <!here>", &bob, Some(&ann))),
            (
                "moved",
                moved(&Moved {
                    by: &ann,
                    from: "DEVOPS-1",
                    to: "QA-7 <!here>",
                    place: "portal qa, workspace *devops*",
                    shared: true,
                    note_failed: None,
                }),
            ),
            (
                "moved unshared, note failed",
                moved(&Moved {
                    by: &ann,
                    from: "DEVOPS-1",
                    to: "QA-7",
                    place: "workspace devops",
                    shared: false,
                    note_failed: Some(&err),
                }),
            ),
            ("not_moved", not_moved("DEVOPS-1", "portal qa, workspace devops", &err)),
            ("context_unchanged", context_unchanged("DEVOPS-1")),
            (
                "team_defaults",
                team_defaults(
                    &TeamDefaults {
                        portal: Some("qa".to_owned()),
                        workspace: Some("devops <!here>".to_owned()),
                        agent: None,
                    },
                    true,
                ),
            ),
            ("defaults_usage", defaults_usage("Only the portal, workspace and agent have Slack-workspace defaults.")),
            ("context_stale", context_stale("DEVOPS-1")),
            ("agent_not_allowed", agent_not_allowed("prod-admin")),
            ("agent_not_found", agent_not_found(&err)),
            ("agent_not_switched", agent_not_switched("DEVOPS-1", "k8s", &err, "generic")),
            ("agent_switched", agent_switched(&ann, "DEVOPS-1", "generic", "k8s *bold*")),
            ("not_deleted", not_deleted("DEVOPS-1", &err)),
            ("deleted", deleted(&ann, "DEVOPS-1")),
            ("find_usage", find_usage("/helpdesk")),
            ("audit_usage", audit_usage("/helpdesk")),
            ("audit_unknown", audit_unknown("DEVOPS-9")),
            ("audit_refused", audit_refused("DEVOPS-1")),
            ("no_such_ticket", no_such_ticket("DEVOPS-9")),
            ("nowhere_to_look", nowhere_to_look("DEVOPS-9")),
            ("cannot_look_up", cannot_look_up("DEVOPS-9", &err)),
            ("outdated_button", outdated_button()),
            ("cannot_read", cannot_read("DEVOPS-9", &err)),
            ("agent_not_usable", agent_not_usable("DEVOPS-9", "prod-admin")),
            ("help", help("/helpdesk")),
            ("unknown_subcommand", unknown_subcommand("/helpdesk", "frobnicate")),
            ("new_usage", new_usage("/helpdesk")),
            ("cannot_read_settings", cannot_read_settings(&err)),
            ("cannot_post_here member", cannot_post_here(true, &err)),
            ("cannot_post_here other", cannot_post_here(false, &err)),
            ("config_usage", config_usage("I did not understand `x`.")),
            ("settings", settings(&settings_shown)),
            (
                "settings with rules",
                settings(&Settings {
                    allow: vec!["^kubectl get "],
                    block: vec!["rm -rf", "<!here> `x`"],
                    ..settings_shown.clone()
                }),
            ),
            ("settings_changed", settings_changed(&Settings { relay: RelayMode::All, ..settings_shown })),
            (
                "settings_refused",
                settings_refused(&Administrators { listed: vec![&person], workspace_admins: true }, "/helpdesk"),
            ),
            ("workspace_refused", workspace_refused("prod")),
            ("workspace_error", workspace_error("prod", &err)),
            ("agent_refused", agent_refused("prod-admin")),
            ("agent_error", agent_error("prod-admin", &err)),
            ("feedback_recorded", feedback_recorded("DEVOPS-1", Rating::Positive)),
            ("feedback_already_recorded", feedback_already_recorded("DEVOPS-1", Rating::Negative)),
            ("feedback_not_recorded", feedback_not_recorded(Some("DEVOPS-1"), Rating::Positive, &err)),
            ("feedback_not_recorded unknown", feedback_not_recorded(None, Rating::Negative, &"the store is down")),
            ("feedback_no_ticket", feedback_no_ticket()),
            ("feedback_members_only", feedback_members_only()),
        ];
        for (name, message) in &all {
            kit::validate(&message.blocks, kit::MESSAGE_BLOCKS).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(!message.text.contains("<!channel>") && !message.text.contains("<!here>"), "{name} pings");
        }
        let shown: Vec<serde_json::Value> = all
            .iter()
            .map(|(name, m)| serde_json::json!({"notice": name, "text": m.text, "blocks": m.blocks}))
            .collect();
        insta::assert_json_snapshot!(shown);
        let help = help("/helpdesk");
        kit::validate(&help.blocks, kit::MESSAGE_BLOCKS).unwrap();
        let headings = [
            list_heading(&ListArgs::default(), 0),
            list_heading(&ListArgs { status: Some(TicketStatus::Open), text: "disk".into(), cursor: 20, shown: 20 }, 5),
        ];
        assert_eq!(headings, ["All tickets".to_owned(), "Open tickets matching “disk” (21–25)".to_owned()]);
    }
}
