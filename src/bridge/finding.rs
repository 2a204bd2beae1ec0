//! Finding tickets: `/helpdesk list` and `find`, the App Home tab, continuing a HelpDesk
//! ticket that has no thread yet, and the follow-up ticket a closed thread offers.
//!
//! Lists read the store's per-workspace index (most recently updated first), so they cost
//! no HelpDesk call; `find` asks the HelpDesk only for a ticket the bridge has never seen.
//!
//! Lists and `find` show a ticket only to people who can see its thread ([`Viewer`]): the
//! tickets of the channel asked from, and the person's own. Who asks and from where always
//! come from Slack's payload (the command, the click), never from a button's value, and a
//! known ticket the person cannot see is answered as if the bridge did not know it. The
//! Home tab shows only the user's own tickets (requested or assigned).

use futures_util::future::join_all;

use super::{Bridge, BridgeError, PENDING_TTL, open::OpenRequest, seconds, thread_of};
use crate::{
    helpdesk::HelpdeskError,
    ids::{PendingId, TeamId, TicketKey, TicketName, UserId},
    inbound::{BlockAction, SlashCommand},
    model::{Actor, HistoryEvent, PendingMessage, Place, TicketRecord, TicketStatus},
    slack::{
        controls::ListArgs,
        kit::Message,
        notices,
        ticket::{self, TicketRow},
    },
    store::{ListQuery, Viewer},
};

/// Tickets on one page of `/helpdesk list`.
pub(super) const PAGE: usize = 10;
/// Who runs a command, and from where.
fn command_viewer(command: &SlashCommand) -> Viewer {
    Viewer { user: command.user.clone(), channel: Some(command.channel.clone()) }
}

/// A stored ticket as a list row.
fn row<'a>(record: &'a TicketRecord, link: Option<&'a str>) -> TicketRow<'a> {
    TicketRow {
        ticket: record.ticket.ticket.as_str(),
        title: &record.title,
        status: record.status,
        assignee: record.assignee.as_ref(),
        created: Some(seconds(record.created_at)),
        updated: Some(seconds(record.updated_at)),
        link,
    }
}

impl Bridge {
    /// Links to the tickets' threads: the one stored with each, else asked of Slack.
    async fn links(&self, records: &[TicketRecord]) -> Vec<Option<String>> {
        let slack = self.slack();
        join_all(records.iter().map(|r| async move {
            match &r.permalink {
                Some(link) => Some(link.clone()),
                None => slack.permalink(&r.thread.channel, &r.thread.thread_ts).await.ok(),
            }
        }))
        .await
    }

    /// One page of a ticket list, as `viewer` may see it.
    async fn list_page(&self, team: &TeamId, viewer: Viewer, args: &ListArgs) -> Result<Message, BridgeError> {
        let query = ListQuery {
            status: args.status,
            text: Some(args.text.clone()).filter(|t| !t.is_empty()),
            involving: None,
            visible_to: Some(viewer),
            cursor: args.cursor,
            limit: PAGE,
        };
        let page = self.inner.store.list_tickets(team, &query).await?;
        let links = self.links(&page.tickets).await;
        let rows: Vec<TicketRow<'_>> =
            page.tickets.iter().zip(&links).map(|(record, link)| row(record, link.as_deref())).collect();
        let more = page.next.map(|next| ListArgs { cursor: next, shown: args.shown + rows.len(), ..args.clone() });
        let heading = notices::list_heading(args, rows.len());
        Ok(ticket::list(&heading, &rows, more.as_ref()))
    }

    /// `/helpdesk list [status] [words]`: the tickets of this channel and the caller's own.
    pub(super) async fn command_list(
        &self,
        team: &TeamId,
        command: &SlashCommand,
        args: &str,
    ) -> Result<Message, BridgeError> {
        self.list_page(team, command_viewer(command), &ListArgs::parse(args)).await
    }

    /// "More" under a list: the next page replaces the one shown. The button's value says
    /// only where the page starts; whose list it is comes from the click.
    pub(super) async fn list_more(
        &self,
        team: &TeamId,
        action: &BlockAction,
        args: Option<ListArgs>,
    ) -> Result<(), BridgeError> {
        let Some(args) = args else { return Ok(()) };
        let viewer = Viewer { user: action.user.clone(), channel: action.channel.clone() };
        let page = self.list_page(team, viewer, &args).await?;
        match &action.response_url {
            Some(url) => self.slack().respond(url, &page, true).await?,
            None => self.answer_click(action, &page).await,
        }
        Ok(())
    }

    /// `/helpdesk find <TICKET>`: a ticket the bridge knows and the caller can see, with a
    /// link to its thread; else the HelpDesk's ticket of that name in this channel's
    /// workspace, with a button to continue it here. A known ticket the caller cannot see
    /// is answered exactly as one the bridge does not know, so its existence is not told.
    pub(super) async fn command_find(
        &self,
        team: &TeamId,
        command: &SlashCommand,
        args: &str,
    ) -> Result<Message, BridgeError> {
        let Some(name) = args.split_whitespace().next() else {
            return Ok(notices::find_usage(&command.command));
        };
        if let Some(record) = self.visible_ticket(team, name, &command_viewer(command)).await? {
            let link = self.links(std::slice::from_ref(&record)).await.remove(0);
            return Ok(ticket::found(&row(&record, link.as_deref()), None));
        }
        // A ticket whose thread the caller cannot see is not looked up on the HelpDesk either:
        // its title and status would tell what the thread is about.
        if self.known_ticket(team, name).await?.is_some() {
            return Ok(notices::no_such_ticket(name));
        }
        let Some(target) = self.resolve_target(team, &command.channel).await? else {
            return Ok(notices::nowhere_to_look(name));
        };
        let helpdesk = &self.inner.portals.for_channel(Some(&target.portal)).client;
        match helpdesk.ticket(&target.workspace, &TicketName::new(name)).await {
            Ok(found) => {
                let view = TicketRow {
                    ticket: found.name.as_str(),
                    title: &found.title,
                    status: found.status.ticket_status(found.disposition),
                    assignee: None,
                    created: found.created,
                    updated: found.updated,
                    link: None,
                };
                Ok(ticket::found(&view, Some(&command.user)))
            }
            Err(HelpdeskError::NotFound(_)) => Ok(notices::no_such_ticket(name)),
            Err(err) => Ok(notices::cannot_look_up(name, &err)),
        }
    }

    /// `/helpdesk audit <TICKET>`: the ticket's approval trail, for its requester and the
    /// people who may decide on its commands; the newest entries in the
    /// answer and, when they are not all, the whole trail as a file in the asker's direct
    /// messages with the app (never in the channel).
    pub(super) async fn command_audit(
        &self,
        team: &TeamId,
        command: &SlashCommand,
        args: &str,
    ) -> Result<Message, BridgeError> {
        let Some(name) = args.split_whitespace().next() else {
            return Ok(notices::audit_usage(&command.command));
        };
        let user = &command.user;
        let Some(record) = self.known_ticket(team, name).await? else {
            return Ok(notices::audit_unknown(name));
        };
        // The trail holds every command in full: it is for the people the card was for.
        let allowed = record.requester == *user || self.may_decide(&record, user, None).await;
        if !allowed {
            let seen = command_viewer(command).sees(&record);
            return Ok(if seen { notices::audit_refused(name) } else { notices::audit_unknown(name) });
        }
        // A thread moved by *Update context* keeps the trails of the tickets it worked before.
        let mut entries = Vec::new();
        for key in record.previous.iter().chain([&record.ticket]) {
            entries.extend(self.inner.store.approval_trail(key).await?);
        }
        tracing::info!(ticket = %record.ticket.ticket, user = %user, entries = entries.len(), "approval trail read");
        let ticket_name = record.ticket.ticket.as_str();
        let file = if ticket::audit_fits(&entries) {
            ticket::AuditFile::NotNeeded
        } else {
            let hasher = self.hasher().await;
            let file = ticket::audit_file(ticket_name, &entries, &|c| hasher.hash(c));
            let slack = self.slack();
            let sent = match slack.open_dm(user).await {
                Ok(dm) => slack.upload_into(&dm, None, &file).await,
                Err(err) => Err(err),
            };
            match sent {
                Ok(()) => ticket::AuditFile::Sent,
                Err(err) => {
                    tracing::warn!(ticket = %ticket_name, code = err.code(), "could not send an approval trail as a file");
                    ticket::AuditFile::Failed
                }
            }
        };
        Ok(ticket::audit(ticket_name, &record.title, &entries, file))
    }

    /// A ticket the bridge has a thread for, by name (any case), in this Slack workspace,
    /// whoever may see it. What is shown to a person goes through
    /// [`Bridge::visible_ticket`] instead.
    async fn known_ticket(&self, team: &TeamId, name: &str) -> Result<Option<TicketRecord>, BridgeError> {
        self.ticket_named(team, name, None).await
    }

    /// A ticket the bridge has a thread for, by name (any case), if `viewer` can see it.
    async fn visible_ticket(
        &self,
        team: &TeamId,
        name: &str,
        viewer: &Viewer,
    ) -> Result<Option<TicketRecord>, BridgeError> {
        self.ticket_named(team, name, Some(viewer.clone())).await
    }

    async fn ticket_named(
        &self,
        team: &TeamId,
        name: &str,
        viewer: Option<Viewer>,
    ) -> Result<Option<TicketRecord>, BridgeError> {
        let mut query =
            ListQuery { text: Some(name.to_owned()), visible_to: viewer, limit: 50, ..ListQuery::default() };
        loop {
            let page = self.inner.store.list_tickets(team, &query).await?;
            // A thread that moved to another ticket is found by the names it had too.
            let named = |key: &TicketKey| key.ticket.as_str().eq_ignore_ascii_case(name);
            if let Some(record) = page.tickets.into_iter().find(|r| named(&r.ticket) || r.previous.iter().any(named)) {
                return Ok(Some(record));
            }
            match page.next {
                Some(next) => query.cursor = next,
                None => return Ok(None),
            }
        }
    }

    /// "Continue in a new thread here": a header in the channel whose thread becomes the
    /// HelpDesk ticket's conversation. The button names the ticket only; the workspace is
    /// this channel's, and the ticket is read from the HelpDesk again.
    pub(super) async fn continue_ticket(
        &self,
        team: &TeamId,
        action: &BlockAction,
        what: Option<(TicketName, UserId)>,
    ) -> Result<(), BridgeError> {
        let Some(channel) = action.channel.clone() else { return Ok(()) };
        // The button is for whoever ran `find`: they become the requester, nobody else.
        let Some((name, finder)) = what else {
            self.answer_click(action, &notices::outdated_button()).await;
            return Ok(());
        };
        if finder != action.user {
            self.answer_click(action, &notices::may_not_act(None, &finder)).await;
            return Ok(());
        }
        let name = name.as_str();
        // One thread per ticket: a ticket that already has one is not continued again, and its
        // thread is shown only to someone who can see it.
        if let Some(record) = self.known_ticket(team, name).await? {
            let viewer = Viewer { user: action.user.clone(), channel: Some(channel.clone()) };
            if viewer.sees(&record) {
                let link = self.links(std::slice::from_ref(&record)).await.remove(0);
                self.answer_click(action, &ticket::found(&row(&record, link.as_deref()), None)).await;
            } else {
                self.answer_click(action, &notices::no_such_ticket(name)).await;
            }
            return Ok(());
        }
        let Some(target) = self.resolve_target(team, &channel).await? else { return Ok(()) };
        let helpdesk = &self.inner.portals.for_channel(Some(&target.portal)).client;
        let found = match helpdesk.ticket(&target.workspace, &TicketName::new(name)).await {
            Ok(found) => found,
            Err(err) => {
                self.answer_click(action, &notices::cannot_read(name, &err)).await;
                return Err(err.into());
            }
        };
        let (agent_id, agent_name, agent_streams) = match &found.agent_id {
            Some(id) if id != &target.agent => {
                let (name, streams) =
                    helpdesk.agent(id).await.map_or_else(|_| (id.to_string(), None), |a| (a.name, Some(a.streams)));
                (id.clone(), name, streams)
            }
            _ => (target.agent.clone(), target.agent_name.clone(), target.streams),
        };
        if !self.agent_allowed(agent_id.as_str(), &agent_name) {
            self.answer_click(action, &notices::agent_not_usable(name, &agent_name)).await;
            return Ok(());
        }
        let placeholder = notices::continuing(found.name.as_str(), &found.title);
        let ts = self.slack().post(&channel, None, &placeholder).await?;
        let now = super::now_millis();
        let record = TicketRecord {
            thread: thread_of(team, &channel, &ts),
            ticket: TicketKey {
                host: helpdesk.host().to_owned(),
                workspace: target.workspace.clone(),
                ticket: found.name.clone(),
            },
            title: if found.title.is_empty() { found.name.to_string() } else { found.title.clone() },
            agent_id,
            agent_name,
            agent_streams,
            requester: action.user.clone(),
            assignee: None,
            status: found.status.ticket_status(found.disposition),
            header_ts: Some(ts),
            permalink: None,
            participants: Vec::new(),
            adopted: true,
            always_allow: Vec::new(),
            previous: Vec::new(),
            created_at: found.created.map_or(now, |s| s * 1000),
            updated_at: now,
        };
        self.inner.store.create_ticket(&record).await?;
        let record = self.show_header(record).await;
        let change = "continued in a Slack thread".to_owned();
        self.record(&record, Actor::User(action.user.clone()), HistoryEvent::MetadataUpdated { change }).await;
        let link = record.permalink.clone();
        let done = ticket::found(&row(&record, link.as_deref()), None);
        if let Some(url) = &action.response_url {
            self.slack().respond(url, &done, true).await?;
        }
        Ok(())
    }

    /// The App Home tab: the user's own tickets (requested or assigned), open ones first.
    /// `involving` is the whole filter, so the Home tab never lists a ticket of someone
    /// else's, wherever its thread is.
    pub(super) async fn on_home(&self, team: &TeamId, user: &UserId) -> Result<(), BridgeError> {
        let mut tickets = Vec::new();
        let mut query = ListQuery { involving: Some(user.clone()), limit: 200, ..ListQuery::default() };
        loop {
            let page = self.inner.store.list_tickets(team, &query).await?;
            tickets.extend(page.tickets);
            match page.next {
                Some(next) => query.cursor = next,
                None => break,
            }
        }
        // Stable: within a status, most recently updated first, as the index gave them.
        tickets.sort_by_key(|r| TicketStatus::ALL.iter().position(|s| *s == r.status));
        let more = tickets.len().saturating_sub(ticket::HOME_ROWS);
        tickets.truncate(ticket::HOME_ROWS);
        let rows: Vec<TicketRow<'_>> = tickets.iter().map(|r| row(r, r.permalink.as_deref())).collect();
        self.slack().publish_home(user, &ticket::home(&rows, more)).await?;
        Ok(())
    }

    /// "Open a new ticket" under a closed thread's message: a new ticket with a header of its
    /// own in the channel, starting from that message (once, however often it is clicked).
    pub(super) async fn follow_up(
        &self,
        team: &TeamId,
        action: &BlockAction,
        pending_id: &PendingId,
    ) -> Result<(), BridgeError> {
        let store = &self.inner.store;
        let Some(kept) = store.pending(pending_id).await? else {
            self.answer_click(action, &notices::already_followed_up()).await;
            return Ok(());
        };
        // The closed ticket whose thread the button is in decides who may act for the author.
        let clicked = match (&action.channel, &action.thread_ts) {
            (Some(channel), Some(ts)) => store.ticket_by_thread(&thread_of(team, channel, ts)).await?,
            _ => None,
        };
        if !self.may_act_on_kept(clicked.as_ref(), &kept.author, &action.user, action.user_team.as_ref()).await {
            self.answer_click(action, &self.may_not_act(clicked.as_ref(), &kept.author)).await;
            return Ok(());
        }
        let channel = kept.place.channel().clone();
        let target = self.resolve_target(team, &channel).await?;
        // Without a default, the author chooses where the ticket goes (the form is theirs).
        if target.is_none() && kept.author != action.user {
            self.answer_click(action, &notices::may_not_act(None, &kept.author)).await;
            return Ok(());
        }
        let Some(pending) = store.take_pending(pending_id).await? else {
            self.answer_click(action, &notices::already_followed_up()).await;
            return Ok(());
        };
        let Some(target) = target else {
            let id = self.inner.store.put_pending(&pending, PENDING_TTL).await?;
            return self
                .show_create_modal(&action.trigger_id, &id, &pending.title, action.response_url.as_deref())
                .await;
        };
        let placeholder = notices::opening(&pending.title);
        let ts = self.slack().post(&channel, None, &placeholder).await?;
        let thread = thread_of(team, &channel, &ts);
        let title = pending.title.clone();
        let requester = pending.author.clone();
        let first = PendingMessage { place: Place::Thread(thread.clone()), card: None, ..pending };
        self.open(OpenRequest {
            thread,
            requester,
            title,
            first: Some(first),
            header_ts: Some(ts),
            target: Some(target),
        })
        .await
    }
}
