//! Opening tickets: from a mention, a DM, `/helpdesk new`, the message shortcut, or the
//! creation modal; and the ticket header that names the ticket in its thread.
//!
//! Exactly one ticket per thread: the dispatcher runs one item per thread at a time on a
//! replica, a store lock per thread covers replicas, and the store's mapping is created
//! only if absent. Whoever loses waits for the winner's mapping and relays to it.

use std::time::Duration;

use super::{Bridge, BridgeError, PENDING_TTL, Portal, now_millis, thread_of};
use crate::{
    helpdesk::HelpdeskError,
    ids::{AgentId, ChannelId, MessageTs, PendingId, TeamId, ThreadKey, TicketKey, UserId, WorkspaceId},
    inbound::{BlockAction, MessageShortcut, UserMessage},
    model::{Actor, ChannelRef, ChannelSettings, HistoryEvent, PendingMessage, Place, TicketRecord, TicketStatus},
    slack::{
        blocks::{self, CreateModalView},
        controls::{Placed, Shortcut},
        kit::{self, Choice},
        markup::without_mention,
        notices,
    },
    store::{CreateOutcome, Lock},
};

/// How long one replica may take to open a thread's ticket before another may try.
const OPEN_LOCK_TTL: Duration = Duration::from_secs(60);
/// Characters of a ticket title.
const TITLE_CHARS: usize = 100;

/// Where a ticket is opened and who works it.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// The portal's name.
    pub(super) portal: String,
    pub(super) workspace: WorkspaceId,
    pub(super) agent: AgentId,
    pub(super) agent_name: String,
    /// Whether the agent advertises streamed replies, when its lookup said so.
    pub(super) streams: Option<bool>,
}

/// A ticket to open.
#[derive(Debug, Clone)]
pub(super) struct OpenRequest {
    /// The thread that becomes the ticket's conversation.
    pub(super) thread: ThreadKey,
    /// Who asked.
    pub(super) requester: UserId,
    /// The ticket's title.
    pub(super) title: String,
    /// The first message for the agent, if any.
    pub(super) first: Option<PendingMessage>,
    /// The header already posted (the channel post of `/helpdesk new`), if any.
    pub(super) header_ts: Option<MessageTs>,
    /// Workspace and agent, when already chosen.
    pub(super) target: Option<Target>,
}

impl OpenRequest {
    /// A ticket for a kept message (after a Retry, or when the old ticket is gone).
    pub(super) fn from_pending(thread: ThreadKey, requester: UserId, pending: PendingMessage) -> Self {
        let title = if pending.title.is_empty() { title_from(&pending.content) } else { pending.title.clone() };
        Self {
            thread,
            requester,
            title,
            first: (!pending.content.is_empty()).then_some(pending),
            header_ts: None,
            target: None,
        }
    }

    /// What to keep for a Retry or the creation modal: the first message, or, without one,
    /// the title alone.
    fn pending(&self) -> PendingMessage {
        self.first.clone().unwrap_or_else(|| PendingMessage {
            place: Place::Thread(self.thread.clone()),
            author: self.requester.clone(),
            message_ts: None,
            content: String::new(),
            title: self.title.clone(),
            card: None,
        })
    }
}

/// A ticket title from a message: its first non-empty line without the bot's mention,
/// at most 100 characters, cut at a word.
pub(super) fn title_from(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    let line = line.trim_start_matches(['>', ' ']).trim();
    if line.chars().count() <= TITLE_CHARS {
        return if line.is_empty() { "Help request from Slack".to_owned() } else { line.to_owned() };
    }
    let cut: String = line.chars().take(TITLE_CHARS - 1).collect();
    let cut = match cut.rfind(char::is_whitespace) {
        Some(space) if space > TITLE_CHARS / 2 => &cut[..space],
        _ => cut.as_str(),
    };
    format!("{}…", cut.trim_end())
}

impl Bridge {
    /// A mention or DM outside a ticket thread opens a ticket in that thread.
    pub(super) async fn open_from_message(&self, team: &TeamId, message: &UserMessage) -> Result<(), BridgeError> {
        let thread = message.thread(team);
        let unmentioned = without_mention(&message.text, self.bot_user());
        let (title_source, mut content, files, context) = tokio::join!(
            self.plain_text(&unmentioned),
            self.plain_text(&message.text),
            self.read_files(&thread, &message.files),
            self.thread_context(team, message)
        );
        // The request first (with its files), then the conversation that led to it.
        content.push_str(&files);
        if let Some(context) = context {
            content = format!("{content}\n\n{context}");
        }
        let first = PendingMessage {
            place: Place::Thread(thread.clone()),
            author: message.user.clone(),
            message_ts: Some(message.ts.clone()),
            content,
            title: title_from(&title_source),
            card: None,
        };
        self.open(OpenRequest {
            thread,
            requester: message.user.clone(),
            title: first.title.clone(),
            first: Some(first),
            header_ts: None,
            target: None,
        })
        .await
    }

    /// The message shortcut: a ticket from any message, answered in its thread.
    pub(super) async fn on_shortcut(&self, team: &TeamId, shortcut: MessageShortcut) -> Result<(), BridgeError> {
        let Some(Shortcut::OpenTicket) = Shortcut::from_shortcut(&shortcut) else { return Ok(()) };
        let thread_ts = shortcut.thread_ts.clone().unwrap_or_else(|| shortcut.message_ts.clone());
        let thread = thread_of(team, &shortcut.channel, &thread_ts);
        if let Some(existing) = self.inner.store.ticket_by_thread(&thread).await? {
            let note = notices::already_a_ticket(existing.ticket.ticket.as_str());
            self.slack().respond(&shortcut.response_url, &note, false).await?;
            return Ok(());
        }
        let text = self.plain_text(&shortcut.text).await;
        let link = self.slack().permalink(&shortcut.channel, &shortcut.message_ts).await.ok();
        let author = match &shortcut.author {
            Some(author) => format!(" by @{}", self.name_of(author).await),
            None => String::new(),
        };
        let quoted: String = text.lines().map(|l| format!("> {l}\n")).collect();
        let source =
            link.map_or_else(|| format!("(a Slack message{author})"), |l| format!("(Slack message{author}: {l})"));
        let first = PendingMessage {
            place: Place::Thread(thread.clone()),
            author: shortcut.user.clone(),
            message_ts: Some(shortcut.message_ts.clone()),
            content: format!("{quoted}{source}"),
            title: title_from(&text),
            card: None,
        };
        self.open(OpenRequest {
            thread,
            requester: shortcut.user.clone(),
            title: first.title.clone(),
            first: Some(first),
            header_ts: None,
            target: None,
        })
        .await
    }

    /// Opens a ticket, or asks for a workspace and agent when none is configured.
    pub(super) async fn open(&self, request: OpenRequest) -> Result<(), BridgeError> {
        let target = match request.target.clone() {
            Some(target) => target,
            None => match self.resolve_target(&request.thread.team, &request.thread.channel).await {
                Ok(Some(target)) => target,
                Ok(None) => return self.prompt_create(request).await,
                Err(err) => {
                    self.show_or_tell(&request, &notices::target_unknown(&err)).await;
                    return Err(err);
                }
            },
        };
        let store = &self.inner.store;
        let Some(guard) = store.try_lock(Lock::Open(&request.thread), OPEN_LOCK_TTL).await? else {
            // Another replica is opening this thread's ticket; relay to it once it exists.
            let Some(record) = self.wait_for_ticket(&request.thread).await? else {
                return self.creation_failed(&request, &HelpdeskError::Timeout).await;
            };
            return match request.first {
                Some(first) => self.turn(record, first).await,
                None => Ok(()),
            };
        };
        let result = self.open_locked(request, target).await;
        self.release(&guard).await;
        result
    }

    async fn open_locked(&self, mut request: OpenRequest, target: Target) -> Result<(), BridgeError> {
        let store = &self.inner.store;
        if let Some(existing) = store.ticket_by_thread(&request.thread).await? {
            return match request.first {
                Some(first) => self.turn(existing, first).await,
                None => Ok(()),
            };
        }
        // Alongside the creation: the header's placeholder, so that the header is in place
        // (above the reply) before the first turn starts, and the agent's streaming flag when
        // the channel's settings named the agent without looking it up.
        let helpdesk = &self.target_portal(&target).client;
        let create = helpdesk.create_ticket(&target.workspace, &request.title, &target.agent);
        let opening = async {
            match request.header_ts {
                Some(_) => None,
                None => self.tell(&request.thread, &notices::opening(&request.title)).await,
            }
        };
        let streams = async {
            match target.streams {
                None if !helpdesk.forces_streaming() => helpdesk.should_stream(&target.agent).await.ok(),
                known => known,
            }
        };
        let (created, opening, streams) = tokio::join!(create, opening, streams);
        if opening.is_some() {
            request.header_ts = opening;
        }
        let created = match created {
            Ok(created) => created,
            Err(err) => return self.creation_failed(&request, &err).await,
        };
        let agent_id = created.agent_id.clone().unwrap_or(target.agent.clone());
        let now = now_millis();
        let record = TicketRecord {
            thread: request.thread.clone(),
            ticket: TicketKey {
                host: helpdesk.host().to_owned(),
                workspace: target.workspace.clone(),
                ticket: created.name.clone(),
            },
            title: created.title.clone(),
            agent_streams: streams.filter(|_| agent_id == target.agent),
            agent_id,
            agent_name: target.agent_name.clone(),
            requester: request.requester.clone(),
            assignee: None,
            status: TicketStatus::Open,
            header_ts: request.header_ts.clone(),
            permalink: None,
            participants: request.first.iter().map(|f| f.author.clone()).collect(),
            adopted: false,
            always_allow: Vec::new(),
            previous: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        let record = match store.create_ticket(&record).await? {
            CreateOutcome::Created => record,
            CreateOutcome::Exists(existing) => {
                // Only possible if the open lock expired mid-creation; undo ours.
                tracing::warn!(thread = %request.thread, "thread got a ticket while this one was created; deleting ours");
                if let Err(err) = helpdesk.delete_ticket(&target.workspace, &created.name).await {
                    tracing::warn!(ticket = %created.name, error = %err, "could not delete the duplicate ticket");
                }
                if let Some(ts) = request.header_ts.as_ref().filter(|ts| existing.header_ts.as_ref() != Some(*ts)) {
                    let note = notices::already_a_ticket(existing.ticket.ticket.as_str());
                    if let Err(err) =
                        self.slack().update(&request.thread.team, &request.thread.channel, ts, &note).await
                    {
                        tracing::warn!(code = err.code(), "could not retire the header placeholder");
                    }
                }
                *existing
            }
        };
        tracing::info!(ticket = %record.ticket.ticket, thread = %record.thread, "opened a ticket");
        self.inner.metrics.tickets_opened.inc();
        self.record(
            &record,
            Actor::User(request.requester.clone()),
            HistoryEvent::Created { title: record.title.clone() },
        )
        .await;
        // The turn needs nothing of the header: the header is shown alongside it (see
        // `show_header` for why that is safe).
        match request.first {
            Some(first) => {
                let (_, turned) = tokio::join!(self.show_header(record.clone()), self.turn(record, first));
                turned
            }
            None => {
                self.show_header(record).await;
                Ok(())
            }
        }
    }

    /// The channel's workspace and agent, else the configured defaults; `None` when
    /// neither says.
    pub(super) async fn resolve_target(
        &self,
        team: &TeamId,
        channel: &ChannelId,
    ) -> Result<Option<Target>, BridgeError> {
        let channel = ChannelRef { team: team.clone(), channel: channel.clone() };
        let mut settings = self.effective_settings(&channel).await?;
        // Settings stored before ALLOWED_WORKSPACES / ALLOWED_AGENTS were narrowed no longer
        // count, and neither do defaults outside them: the creation form offers what is allowed.
        if let Some(id) = &settings.workspace
            && !self.workspace_allowed(id.as_str(), settings.workspace_name.as_deref().unwrap_or_default())
        {
            settings.workspace = None;
        }
        if let Some(id) = &settings.agent
            && !self.agent_allowed(id.as_str(), settings.agent_name.as_deref().unwrap_or_default())
        {
            settings.agent = None;
        }
        // A portal the configuration no longer has: the channel's workspace and agent were
        // its, so they are not asked of another; the default portal's defaults apply.
        if let Some(name) = settings.portal.as_deref().filter(|n| self.inner.portals.named(n).is_none()) {
            tracing::warn!(channel = %channel.channel, portal = %name, "the channel's portal is no longer configured; using the default portal");
            settings.workspace = None;
            settings.agent = None;
        }
        let portal = self.inner.portals.for_channel(settings.portal.as_deref());
        let (defaults, helpdesk) = (&portal.defaults, &portal.client);
        // The two lookups do not depend on each other: they run together.
        let workspace = async {
            Ok::<_, HelpdeskError>(match (settings.workspace, &defaults.workspace) {
                (Some(id), _) => Some(id),
                (None, Some(name)) => {
                    let found = helpdesk.find_workspace(name).await?;
                    self.workspace_allowed(found.id.as_str(), &found.name).then_some(found.id)
                }
                (None, None) => None,
            })
        };
        let agent = async {
            Ok::<_, HelpdeskError>(match (settings.agent, &defaults.agent) {
                (Some(id), _) => {
                    let name = settings.agent_name.unwrap_or_else(|| id.to_string());
                    Some((id, name, None))
                }
                (None, Some(name)) => {
                    let agent = helpdesk.find_agent(name).await?;
                    self.agent_allowed(agent.id.as_str(), &agent.name).then_some((
                        agent.id,
                        agent.name,
                        Some(agent.streams),
                    ))
                }
                (None, None) => None,
            })
        };
        let (workspace, agent) = tokio::try_join!(workspace, agent)?;
        Ok(workspace.zip(agent).map(|(workspace, (agent, agent_name, streams))| Target {
            portal: portal.name.clone(),
            workspace,
            agent,
            agent_name,
            streams,
        }))
    }

    /// Resolves the configured default workspace and agent, and the bot's own name, so that
    /// the first mention after a start finds them known. Failures are only logged: a mention
    /// looks them up again.
    pub(super) async fn warm_caches(&self) {
        // Every portal's defaults, together.
        let defaults = futures_util::future::join_all(self.inner.portals.all().iter().map(|portal| async move {
            let (defaults, helpdesk) = (&portal.defaults, &portal.client);
            if let Some(name) = &defaults.workspace
                && let Err(err) = helpdesk.find_workspace(name).await
            {
                tracing::warn!(portal = %portal.name, workspace = %name, error = %err, "could not look up the default workspace");
            }
            if let Some(name) = &defaults.agent
                && let Err(err) = helpdesk.find_agent(name).await
            {
                tracing::warn!(portal = %portal.name, agent = %name, error = %err, "could not look up the default agent");
            }
        }));
        let me = async {
            if let Some(me) = self.bot_user()
                && self.display_name(me).await.is_none()
            {
                tracing::debug!("could not learn the bot's own name");
            }
        };
        // Whether this workspace's Slack streams natively: a refusal learned now costs the
        // first reply nothing. One replica probes for all (a probe spends a stream start); the
        // others learn a refusal from their first reply.
        let streams = async {
            if let Some(me) = self.inner.identity.get() {
                let claimed = self.inner.store.claim_streaming_probe(&me.team_id).await;
                if let Err(err) = &claimed {
                    tracing::debug!(error = %err, "could not claim the streaming probe; probing anyway");
                }
                if claimed.unwrap_or(true) {
                    self.slack().probe_streaming(&me.team_id).await;
                }
            }
        };
        tokio::join!(defaults, me, streams);
        tracing::debug!("the warm-up is over");
    }

    /// The portal `target` names (it came from the configuration; the default otherwise).
    fn target_portal(&self, target: &Target) -> &Portal {
        self.inner.portals.for_channel(Some(&target.portal))
    }

    /// The portal of the channel where `place` is.
    pub(super) async fn channel_portal(&self, place: &Place) -> Result<&Portal, BridgeError> {
        let channel = match place {
            Place::Thread(thread) => ChannelRef { team: thread.team.clone(), channel: thread.channel.clone() },
            Place::NewThreadIn(channel) => channel.clone(),
        };
        let settings = self.effective_settings(&channel).await?;
        Ok(self.inner.portals.for_channel(settings.portal.as_deref()))
    }

    /// A channel's settings with its Slack workspace's defaults (`/helpdesk config default
    /// …`) filling in what the channel does not set: the portal, for a channel that names
    /// no portal, workspace or agent (a workspace or agent it names is of the portal it
    /// has), and the workspace and agent when they are of the portal the channel's tickets
    /// go to.
    pub(super) async fn effective_settings(&self, channel: &ChannelRef) -> Result<ChannelSettings, BridgeError> {
        let store = &self.inner.store;
        let (mut settings, defaults) =
            tokio::try_join!(store.channel_settings(channel), store.team_defaults(&channel.team))?;
        if settings.portal.is_none() && settings.workspace.is_none() && settings.agent.is_none() {
            settings.portal.clone_from(&defaults.portal);
        }
        let portal_of = |s: &ChannelSettings| self.inner.portals.for_channel(s.portal.as_deref()).name.clone();
        if portal_of(&settings) == portal_of(&defaults) {
            if settings.workspace.is_none() {
                settings.workspace = defaults.workspace;
                settings.workspace_name = defaults.workspace_name;
            }
            if settings.agent.is_none() {
                settings.agent = defaults.agent;
                settings.agent_name = defaults.agent_name;
            }
        }
        Ok(settings)
    }

    /// Waits (bounded) for another replica to finish opening a thread's ticket.
    async fn wait_for_ticket(&self, thread: &ThreadKey) -> Result<Option<TicketRecord>, BridgeError> {
        let deadline = tokio::time::Instant::now() + OPEN_LOCK_TTL;
        while tokio::time::Instant::now() < deadline {
            if let Some(record) = self.inner.store.ticket_by_thread(thread).await? {
                return Ok(Some(record));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(None)
    }

    /// Asks for a workspace and agent with a button that opens the creation modal.
    async fn prompt_create(&self, request: OpenRequest) -> Result<(), BridgeError> {
        let pending = request.pending();
        let id = self.inner.store.put_pending(&pending, PENDING_TTL).await?;
        self.show_or_tell(&request, &notices::no_target(&id)).await;
        Ok(())
    }

    /// Shows a notice in the header already posted (for `/helpdesk new`), or in the thread.
    async fn show_or_tell(&self, request: &OpenRequest, note: &kit::Message) {
        match &request.header_ts {
            Some(ts) => {
                if let Err(err) = self.slack().update(&request.thread.team, &request.thread.channel, ts, note).await {
                    tracing::warn!(error = %err, "could not update the ticket header");
                }
            }
            None => {
                self.tell(&request.thread, note).await;
            }
        }
    }

    /// Creating the ticket failed: say so, with a Retry that opens it with the same message.
    async fn creation_failed(&self, request: &OpenRequest, err: &HelpdeskError) -> Result<(), BridgeError> {
        tracing::warn!(thread = %request.thread, error = %err, "could not create a HelpDesk ticket");
        let pending = request.pending();
        let kept = self.inner.store.put_pending(&pending, PENDING_TTL).await.ok();
        self.show_or_tell(request, &notices::creation_failed(err, kept.as_ref())).await;
        Ok(())
    }

    /// Shows the ticket header (in place of the one posted, else as a new message) and
    /// remembers where it is, then a link to the thread for lists.
    ///
    /// It may run alongside the ticket's first turn. It renders the stored record, read under
    /// the ticket's `life:` lock as every status change is, so a change the turn made (Open
    /// to Pending) is not overwritten by an older rendering; and it writes only the header's
    /// own fields, each with `update_ticket`'s compare-and-set, so no change of the turn's is
    /// lost.
    pub(super) async fn show_header(&self, record: TicketRecord) -> TicketRecord {
        let record = self.with_life_lock(&record, self.place_header(record.clone())).await;
        if record.header_ts.is_none() || record.permalink.is_some() {
            return record;
        }
        let thread = &record.thread;
        let Ok(permalink) = self.slack().permalink(&thread.channel, &thread.thread_ts).await else { return record };
        let stored = self
            .inner
            .store
            .update_ticket(thread, |r| {
                let changed = r.permalink.as_ref() != Some(&permalink);
                r.permalink = Some(permalink.clone());
                changed
            })
            .await;
        match stored {
            Ok(Some(updated)) => updated,
            _ => TicketRecord { permalink: Some(permalink), ..record },
        }
    }

    /// Renders the ticket as stored now into its header, posting the header if there is
    /// none yet, and stores where it is.
    async fn place_header(&self, record: TicketRecord) -> TicketRecord {
        let store = &self.inner.store;
        let record = match store.ticket_by_thread(&record.thread).await {
            Ok(Some(current)) => current,
            // Deleted meanwhile: there is no ticket to show.
            Ok(None) => return record,
            Err(err) => {
                tracing::warn!(error = %err, "could not re-read the ticket; showing the header as it was read before");
                record
            }
        };
        let message = self.render_header(&record, None);
        let thread = &record.thread;
        if let Some(ts) = &record.header_ts {
            if let Err(err) = self.slack().update(&thread.team, &thread.channel, ts, &message).await {
                tracing::warn!(ticket = %record.ticket.ticket, error = %err, "could not update the ticket header");
            }
            return record;
        }
        let Some(ts) = self.tell(thread, &message).await else { return record };
        let stored = store
            .update_ticket(thread, |r| {
                r.header_ts = Some(ts.clone());
                true
            })
            .await;
        match stored {
            Ok(Some(updated)) => updated,
            _ => TicketRecord { header_ts: Some(ts), ..record },
        }
    }

    /// The "Create ticket" button: the creation modal, with the HelpDesk's own lists.
    pub(super) async fn open_create_modal(
        &self,
        action: &BlockAction,
        pending_id: &PendingId,
    ) -> Result<(), BridgeError> {
        let Some(pending) = self.inner.store.pending(pending_id).await? else {
            self.answer_click(action, &notices::request_expired()).await;
            return Ok(());
        };
        // Whoever completes the form would choose where someone else's request goes: only
        // the person who asked may; anyone else can open a ticket of their own.
        if pending.author != action.user {
            self.answer_click(action, &notices::may_not_act(None, &pending.author)).await;
            return Ok(());
        }
        self.show_create_modal(&action.trigger_id, pending_id, &pending.title, action.response_url.as_deref()).await
    }

    /// Opens the creation modal for a kept message, offering only the allowed workspaces and
    /// agents. When the HelpDesk cannot list them, or none is allowed, and a `response_url` is
    /// given, that is told there.
    pub(super) async fn show_create_modal(
        &self,
        trigger_id: &str,
        pending_id: &PendingId,
        title: &str,
        response_url: Option<&str>,
    ) -> Result<(), BridgeError> {
        let Some(kept) = self.inner.store.pending(pending_id).await? else { return Ok(()) };
        // Every portal is offered, the channel's first.
        let portal = self.channel_portal(&kept.place).await?;
        let lists = match self.portal_lists(portal).await {
            Ok((lists, _)) => lists,
            Err(err) => {
                if let Some(url) = response_url {
                    self.slack().respond(url, &notices::cannot_list_targets(&err), false).await?;
                }
                return Err(err.into());
            }
        };
        let Some(first) = lists.first() else {
            // An empty menu is not valid Block Kit, and there is nothing to choose anyway.
            tracing::warn!("no HelpDesk workspace or agent is allowed; check ALLOWED_WORKSPACES and ALLOWED_AGENTS");
            if let Some(url) = response_url {
                self.slack().respond(url, &notices::nothing_allowed(), false).await?;
            }
            return Ok(());
        };
        // A lone choice on the channel's portal is made already.
        fn only<'a>(portal: &'a str, choices: &'a [Choice]) -> Option<(&'a str, &'a str)> {
            (choices.len() == 1).then(|| (portal, choices[0].0.as_str()))
        }
        let channel_first = first.portal == portal.name;
        let (workspace, agent) = if channel_first {
            (only(&first.portal, &first.workspaces), only(&first.portal, &first.agents))
        } else {
            (None, None)
        };
        let view = blocks::create_modal(&CreateModalView {
            title,
            lists: &lists,
            workspace,
            agent,
            private_metadata: pending_id.as_str(),
        });
        self.slack().open_view(trigger_id, &view).await?;
        Ok(())
    }

    /// The creation modal was submitted: its ticket opens.
    pub(super) async fn on_create_view(
        &self,
        team: &TeamId,
        user: &UserId,
        pending_id: &PendingId,
        title: Option<String>,
        target: Option<(Placed, Placed)>,
    ) -> Result<(), BridgeError> {
        let store = &self.inner.store;
        let Some(kept) = store.pending(pending_id).await? else {
            return Ok(());
        };
        if kept.author != *user {
            tracing::warn!(user = %user, "a creation form was submitted by someone else than who asked");
            return Ok(());
        }
        let Some((workspace, agent)) = target else {
            return Ok(());
        };
        // The form names the portal of its choices (the same one: Slack was told to keep the
        // form open otherwise); a form without names offered the channel's portal.
        let channel_portal = self.channel_portal(&kept.place).await?;
        let Some(portal) = self.chosen_portal((&workspace, &agent), channel_portal) else {
            tracing::warn!(user = %user, "a creation form named a portal that is not configured");
            let known: Vec<&str> = self.inner.portals.names().collect();
            let named = workspace.portal.as_deref().or(agent.portal.as_deref()).unwrap_or_default();
            let thread_ts = kept.place.thread().map(|thread| &thread.thread_ts);
            let note = notices::portal_unknown(named, &known);
            if let Err(err) = self.slack().ephemeral(kept.place.channel(), user, thread_ts, &note).await {
                tracing::warn!(code = err.code(), "could not explain a refused creation");
            }
            return Ok(());
        };
        let (workspace, agent) = (WorkspaceId::new(workspace.id), AgentId::new(agent.id));
        let helpdesk = &portal.client;
        // The form offered only allowed choices; a submission is checked again all the same.
        let (found_workspace, found_agent) = tokio::join!(helpdesk.workspace(&workspace), helpdesk.agent(&agent));
        let workspace_name = found_workspace.map_or_else(|_| workspace.to_string(), |w| w.name);
        let (agent_name, streams) =
            found_agent.map_or_else(|_| (agent.to_string(), None), |a| (a.name, Some(a.streams)));
        if !self.workspace_allowed(workspace.as_str(), &workspace_name)
            || !self.agent_allowed(agent.as_str(), &agent_name)
        {
            tracing::warn!(user = %user, workspace = %workspace, agent = %agent, "refused a ticket for a workspace or agent that is not allowed");
            let note = notices::target_not_allowed();
            let thread_ts = kept.place.thread().map(|thread| &thread.thread_ts);
            if let Err(err) = self.slack().ephemeral(kept.place.channel(), user, thread_ts, &note).await {
                tracing::warn!(code = err.code(), "could not explain a refused creation");
            }
            return Ok(());
        }
        let Some(mut pending) = store.take_pending(pending_id).await? else {
            return Ok(());
        };
        let title = title.unwrap_or(pending.title.clone());
        let target = Target { portal: portal.name.clone(), workspace, agent, agent_name, streams };
        let (thread, header_ts) = match &pending.place {
            Place::Thread(thread) => (thread.clone(), None),
            Place::NewThreadIn(channel) => {
                let ts = self.slack().post(&channel.channel, None, &notices::opening(&title)).await?;
                (thread_of(team, &channel.channel, &ts), Some(ts))
            }
        };
        pending.place = Place::Thread(thread.clone());
        let first =
            (!pending.content.trim().is_empty()).then(|| PendingMessage { title: title.clone(), ..pending.clone() });
        self.open(OpenRequest {
            thread,
            requester: pending.author.clone(),
            title,
            first,
            header_ts,
            target: Some(target),
        })
        .await
    }

    /// "Open a new ticket" for a thread whose ticket the HelpDesk no longer has.
    pub(super) async fn reopen(&self, action: &BlockAction, pending_id: &PendingId) -> Result<(), BridgeError> {
        let store = &self.inner.store;
        let Some(kept) = store.pending(pending_id).await? else {
            self.answer_click(action, &notices::already_reopened()).await;
            return Ok(());
        };
        // Only a message kept in a thread offers this button.
        let Some(thread) = kept.place.thread().cloned() else {
            self.answer_click(action, &notices::request_expired()).await;
            return Ok(());
        };
        let old = store.ticket_by_thread(&thread).await?;
        if !self.may_act_on_kept(old.as_ref(), &kept.author, &action.user, action.user_team.as_ref()).await {
            self.answer_click(action, &self.may_not_act(old.as_ref(), &kept.author)).await;
            return Ok(());
        }
        if let Some(old) = &old {
            if old.status == TicketStatus::Closed {
                self.answer_click(action, &notices::closed_mention_me(old.ticket.ticket.as_str())).await;
                return Ok(());
            }
            let gone = match self.helpdesk_of(&old.ticket) {
                Ok(helpdesk) => helpdesk.ticket(&old.ticket.workspace, &old.ticket.ticket).await,
                // A portal no longer configured cannot have it either.
                Err(_) => Err(HelpdeskError::NotFound(old.ticket.ticket.to_string())),
            };
            if !matches!(gone, Err(HelpdeskError::NotFound(_))) {
                self.answer_click(action, &notices::still_on_helpdesk(old.ticket.ticket.as_str())).await;
                return Ok(());
            }
        }
        let Some(mut pending) = store.take_pending(pending_id).await? else {
            self.answer_click(action, &notices::already_reopened()).await;
            return Ok(());
        };
        if old.is_some() {
            store.delete_ticket(&thread).await?;
        }
        // A new ticket never inherits decisions made on the old one's commands.
        pending.card = None;
        let requester = pending.author.clone();
        self.open(OpenRequest::from_pending(thread, requester, pending)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_first_lines_cut_at_a_word() {
        assert_eq!(title_from("\n  Pods crash in prod  \nmore detail"), "Pods crash in prod");
        assert_eq!(title_from(""), "Help request from Slack");
        let long = "word ".repeat(40);
        let title = title_from(&long);
        assert!(title.chars().count() <= 100, "{title}");
        assert!(title.ends_with("word…"), "{title}");
        let unbroken = "x".repeat(150);
        assert_eq!(title_from(&unbroken).chars().count(), 100);
    }
}
