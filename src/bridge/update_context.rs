//! *Update context*: re-pointing a ticket thread from its header. Another agent alone is an
//! agent switch of the same ticket. Another workspace or portal opens a new ticket there
//! and moves the thread to it: the thread's mapping is replaced in one compare-and-set (so
//! every later message goes to the new ticket), the old ticket stays on its HelpDesk with a
//! record-only note saying where the thread went, its header says so, and a new header is
//! posted. The thread's messages go along only when the person ticks *Share this thread's
//! messages* (and the channel shares thread context at all).
//!
//! The form lists every portal's workspaces and agents (the ticket's portal first); its
//! submission is trusted for nothing but the choice: the ticket is the one mapped to the
//! thread, it must still be the one the form was opened for, and the choice is looked up
//! and checked against the allowed lists again on the portal it names.

use std::time::Duration;

use futures_util::future::join_all;

use super::{Bridge, BridgeError, Portal, now_millis};
use crate::store::Lock;
use crate::{
    helpdesk::HelpdeskError,
    ids::{AgentId, TeamId, ThreadKey, TicketKey, UserId, WorkspaceId},
    inbound::BlockAction,
    model::{Actor, ChannelRef, HistoryEvent, PendingMessage, Place, TicketRecord, TicketStatus},
    slack::{
        blocks::PortalLists,
        card::CardClosed,
        controls::{ContextTarget, Placed},
        kit,
        notices::{self, Moved},
        ticket::{self, ContextModalView, Retired},
    },
};

/// How long the form waits for a portal other than the first to list its workspaces and
/// agents: Slack's trigger expires three seconds after the click.
const LIST_WAIT: Duration = Duration::from_secs(2);

/// Where a move goes, looked up on its portal.
struct Destination<'a> {
    portal: &'a Portal,
    workspace: WorkspaceId,
    workspace_name: String,
    agent: AgentId,
    agent_name: String,
    streams: bool,
}

impl Destination<'_> {
    /// In words, for people and for the old ticket's note (the workspace's name is the
    /// HelpDesk's, kept to one line).
    fn place(&self, several: bool) -> String {
        let workspace = super::one_line(&self.workspace_name);
        if several {
            format!("portal {}, workspace {workspace}", self.portal.name)
        } else {
            format!("workspace {workspace}")
        }
    }
}

impl Bridge {
    /// Every portal's allowed workspaces and agents, `first` first, and the portals that did
    /// not answer in time. `first` must answer; the others are left out when they do not, or
    /// when they offer nothing allowed.
    pub(super) async fn portal_lists(&self, first: &Portal) -> Result<(Vec<PortalLists>, Vec<String>), HelpdeskError> {
        let order = std::iter::once(first).chain(self.inner.portals.all().iter().filter(|p| p.name != first.name));
        let listed = join_all(order.map(|portal| async move {
            let lists = async { tokio::try_join!(portal.client.list_workspaces(), portal.client.list_agents()) };
            let lists = if portal.name == first.name {
                lists.await
            } else {
                tokio::time::timeout(LIST_WAIT, lists).await.unwrap_or(Err(HelpdeskError::Timeout))
            };
            (portal, lists)
        }))
        .await;
        let (mut offered, mut unlisted) = (Vec::new(), Vec::new());
        for (portal, lists) in listed {
            let (workspaces, agents) = match lists {
                Ok(lists) => lists,
                Err(err) if portal.name == first.name => return Err(err),
                Err(err) => {
                    tracing::warn!(portal = %portal.name, error = %err, "a portal could not list its workspaces and agents");
                    unlisted.push(portal.name.clone());
                    continue;
                }
            };
            let lists = PortalLists {
                portal: portal.name.clone(),
                workspaces: workspaces
                    .into_iter()
                    .filter(|w| self.workspace_allowed(w.id.as_str(), &w.name))
                    .map(|w| (w.id.to_string(), w.name))
                    .collect(),
                agents: agents
                    .into_iter()
                    .filter(|a| self.agent_allowed(a.id.as_str(), &a.name))
                    .map(|a| (a.id.to_string(), a.name))
                    .collect(),
            };
            // A portal with nothing allowed to choose cannot take a ticket.
            if !lists.workspaces.is_empty() && !lists.agents.is_empty() {
                offered.push(lists);
            }
        }
        Ok((offered, unlisted))
    }

    /// "Update context": the form, with the ticket's workspace and agent chosen.
    pub(super) async fn ask_context(&self, action: &BlockAction, record: &TicketRecord) -> Result<(), BridgeError> {
        let Some(portal) = self.inner.portals.of(&record.ticket) else {
            let err = HelpdeskError::Unconfigured(record.ticket.host.clone());
            self.answer_click(action, &notices::portal_gone(&err)).await;
            return Ok(());
        };
        let (lists, unlisted) = match self.portal_lists(portal).await {
            Ok(lists) => lists,
            Err(err) => {
                self.answer_click(action, &notices::cannot_list_targets(&err)).await;
                return Err(err.into());
            }
        };
        if lists.first().is_none_or(|l| l.portal != portal.name) {
            self.answer_click(action, &notices::nothing_allowed()).await;
            return Ok(());
        }
        let workspace = &record.ticket.workspace;
        let workspace_name = lists[0].workspaces.iter().find(|(id, _)| id == workspace.as_str()).map(|(_, n)| n);
        let share_allowed = self.shares_context(&record.thread).await;
        let target = ContextTarget::new(&record.thread, &record.ticket);
        let view = ticket::context_modal(&ContextModalView {
            ticket: record.ticket.ticket.as_str(),
            portal: &portal.name,
            workspace: workspace_name.map_or(workspace.as_str(), String::as_str),
            agent: &record.agent_name,
            lists: &lists,
            current: ((&portal.name, workspace.as_str()), (&portal.name, record.agent_id.as_str())),
            unlisted: &unlisted,
            share_allowed,
            target: &target,
        });
        self.slack().open_view(&action.trigger_id, &view).await?;
        Ok(())
    }

    /// Whether the thread's channel shares thread messages with tickets; settings that
    /// cannot be read share nothing.
    pub(super) async fn shares_context(&self, thread: &ThreadKey) -> bool {
        let channel = ChannelRef { team: thread.team.clone(), channel: thread.channel.clone() };
        match self.inner.store.channel_settings(&channel).await {
            Ok(settings) => !settings.context_off,
            Err(err) => {
                tracing::warn!(error = %err, "could not read whether the channel shares thread context");
                false
            }
        }
    }

    /// Answers the person who submitted a form, in the thread, for them alone.
    async fn privately(&self, thread: &ThreadKey, user: &UserId, note: &kit::Message) {
        if let Err(err) = self.slack().ephemeral(&thread.channel, user, Some(&thread.thread_ts), note).await {
            tracing::warn!(code = err.code(), "could not answer an Update context form");
        }
    }

    /// The portal a form's choice is on: the one its values name (both the same one), or,
    /// for values that name none (a form from before forms named portals), `fallback`.
    /// `None` when they name two, or one that is not configured.
    pub(super) fn chosen_portal<'a>(
        &'a self,
        (workspace, agent): (&Placed, &Placed),
        fallback: &'a Portal,
    ) -> Option<&'a Portal> {
        match (&workspace.portal, &agent.portal) {
            (Some(a), Some(b)) if a != b => None,
            (Some(name), _) | (None, Some(name)) => self.inner.portals.named(name),
            (None, None) => Some(fallback),
        }
    }

    /// The *Update context* form was submitted.
    pub(super) async fn on_context_view(
        &self,
        team: &TeamId,
        (user, user_team): (&UserId, Option<&TeamId>),
        target: &ContextTarget,
        choice: Option<(Placed, Placed)>,
        share: bool,
    ) -> Result<(), BridgeError> {
        let thread = target.thread(team);
        let stale = notices::context_stale(target.ticket.ticket.as_str());
        let Some(record) = self.inner.store.ticket_by_thread(&thread).await? else {
            self.privately(&thread, user, &stale).await;
            return Ok(());
        };
        if record.ticket != target.ticket || record.status == TicketStatus::Closed {
            self.privately(&thread, user, &stale).await;
            return Ok(());
        }
        if !self.may_manage(&record, user, user_team).await {
            self.privately(&thread, user, &notices::members_only()).await;
            return Ok(());
        }
        let Some((workspace, agent)) = choice else { return Ok(()) };
        let Some(here) = self.inner.portals.of(&record.ticket) else {
            let err = HelpdeskError::Unconfigured(record.ticket.host.clone());
            self.privately(&thread, user, &notices::portal_gone(&err)).await;
            return Ok(());
        };
        let Some(portal) = self.chosen_portal((&workspace, &agent), here) else {
            let named = workspace.portal.as_deref().or(agent.portal.as_deref()).unwrap_or_default();
            let known: Vec<&str> = self.inner.portals.names().collect();
            self.privately(&thread, user, &notices::portal_unknown(named, &known)).await;
            return Ok(());
        };
        let (workspace, agent) = (WorkspaceId::new(workspace.id), AgentId::new(agent.id));
        if portal.name == here.name && workspace == record.ticket.workspace {
            if agent == record.agent_id {
                self.privately(&thread, user, &notices::context_unchanged(record.ticket.ticket.as_str())).await;
                return Ok(());
            }
            return self.switch_agent(&record, user, agent).await;
        }
        // A new ticket elsewhere, perhaps with the thread's messages: for the people the
        // ticket is for, as deleting it is.
        if record.requester != *user && !self.may_decide(&record, user, user_team).await {
            let settings = self.channel_settings(&record).await;
            self.privately(&thread, user, &notices::only_deciders_move(&self.deciders(&record, &settings))).await;
            return Ok(());
        }
        let Some(destination) = self.destination(&record, portal, workspace, agent).await else { return Ok(()) };
        let share = share && self.shares_context(&thread).await;
        let work = async {
            // Read again under the lock: a status change, a delete or another move may have
            // gone first.
            match self.inner.store.ticket_by_thread(&thread).await? {
                Some(old) if old.ticket == record.ticket && old.status != TicketStatus::Closed => {
                    self.move_thread(&old, user, &destination, share).await
                }
                _ => {
                    self.privately(&thread, user, &stale).await;
                    Ok(())
                }
            }
        };
        self.with_life_lock(&record, work).await
    }

    /// The chosen workspace and agent, looked up on their portal and checked against the
    /// allowed lists; `None` (the thread told why) when they cannot take the ticket.
    async fn destination<'p>(
        &self,
        record: &TicketRecord,
        portal: &'p Portal,
        workspace: WorkspaceId,
        agent: AgentId,
    ) -> Option<Destination<'p>> {
        let helpdesk = &portal.client;
        let (found_workspace, found_agent) = tokio::join!(helpdesk.workspace(&workspace), helpdesk.agent(&agent));
        let looked_up = found_workspace.and_then(|w| found_agent.map(|a| (w, a)));
        let (found_workspace, found_agent) = match looked_up {
            Ok(found) => found,
            Err(err) => {
                let place = format!("portal {}", portal.name);
                self.tell(&record.thread, &notices::not_moved(record.ticket.ticket.as_str(), &place, &err)).await;
                return None;
            }
        };
        if !self.workspace_allowed(workspace.as_str(), &found_workspace.name)
            || !self.agent_allowed(agent.as_str(), &found_agent.name)
        {
            tracing::warn!(workspace = %workspace, agent = %agent, "refused a move to a workspace or agent that is not allowed");
            self.tell(&record.thread, &notices::target_not_allowed()).await;
            return None;
        }
        Some(Destination {
            portal,
            workspace,
            workspace_name: found_workspace.name,
            agent,
            agent_name: found_agent.name,
            streams: found_agent.streams,
        })
    }

    /// Opens the ticket at `to` and moves the thread to it (run under the old ticket's
    /// `life:` lock, `old` read under it). Nothing changes here unless the HelpDesk created
    /// the ticket; a thread that changed meanwhile keeps its ticket, and the new one is
    /// deleted again. The new ticket's `turn:` lock is taken before the thread moves and
    /// held until its first message went, so no later message of the thread overtakes it.
    async fn move_thread(
        &self,
        old: &TicketRecord,
        user: &UserId,
        to: &Destination<'_>,
        share: bool,
    ) -> Result<(), BridgeError> {
        let (store, helpdesk) = (&self.inner.store, &to.portal.client);
        let several = self.inner.portals.several();
        let place = to.place(several);
        let old_name = old.ticket.ticket.clone();
        let created = match helpdesk.create_ticket(&to.workspace, &old.title, &to.agent).await {
            Ok(created) => created,
            Err(err) => {
                tracing::warn!(ticket = %old_name, error = %err, "could not open the ticket a thread was moved to");
                self.tell(&old.thread, &notices::not_moved(old_name.as_str(), &place, &err)).await;
                return Err(err.into());
            }
        };
        let key = TicketKey { host: helpdesk.host().to_owned(), workspace: to.workspace.clone(), ticket: created.name };
        let turn = match store.try_lock(Lock::Turn(&key), self.inner.turn_lock).await {
            Ok(guard) => guard,
            Err(err) => {
                tracing::warn!(error = %err, "could not take the new ticket's turn lock; moving without it");
                None
            }
        };
        let now = now_millis();
        let agent_id = created.agent_id.unwrap_or_else(|| to.agent.clone());
        // Built from the record as stored, so nothing a turn or a click changed is undone.
        let moved = store
            .update_ticket(&old.thread, |r| {
                if r.ticket != old.ticket || r.status == TicketStatus::Closed {
                    return false;
                }
                let mut previous = std::mem::take(&mut r.previous);
                previous.push(r.ticket.clone());
                *r = TicketRecord {
                    ticket: key.clone(),
                    title: created.title.clone(),
                    agent_streams: Some(to.streams).filter(|_| agent_id == to.agent),
                    agent_id: agent_id.clone(),
                    agent_name: to.agent_name.clone(),
                    status: TicketStatus::Open,
                    header_ts: None,
                    adopted: false,
                    always_allow: Vec::new(),
                    previous,
                    created_at: now,
                    updated_at: now,
                    ..r.clone()
                };
                true
            })
            .await;
        let moved = match moved {
            Ok(Some(stored)) if stored.ticket == key => Ok(stored),
            Ok(_) => Err(None),
            // The write may have landed before the error: the thread says which ticket it has.
            Err(err) => match store.ticket_by_thread(&old.thread).await {
                Ok(Some(stored)) if stored.ticket == key => Ok(stored),
                _ => Err(Some(err)),
            },
        };
        let new = match moved {
            Ok(new) => new,
            Err(err) => {
                if let Some(guard) = &turn {
                    self.release(guard).await;
                }
                // The thread keeps what it has; the ticket nobody will use is not left behind.
                if let Err(err) = helpdesk.delete_ticket(&to.workspace, &key.ticket).await {
                    tracing::warn!(ticket = %key.ticket, error = %err, "could not delete the unused ticket");
                }
                return match err {
                    Some(err) => {
                        self.tell(&old.thread, &notices::not_moved(old_name.as_str(), &place, &err)).await;
                        Err(err.into())
                    }
                    None => {
                        self.privately(&old.thread, user, &notices::context_stale(old_name.as_str())).await;
                        Ok(())
                    }
                };
            }
        };
        tracing::info!(from = %old_name, to = %new.ticket.ticket, thread = %new.thread, "moved a thread to another ticket");
        self.inner.metrics.tickets_opened.inc();
        let event = HistoryEvent::Moved { from: old_name.clone(), to: new.ticket.ticket.clone(), place: place.clone() };
        let actor = Actor::User(user.clone());
        tokio::join!(
            self.record(old, actor.clone(), event.clone()),
            self.record(&new, actor.clone(), HistoryEvent::Created { title: new.title.clone() }),
        );
        self.record(&new, actor, event).await;
        // The old ticket's proposals are not the new ticket's to receive.
        self.close_open_card(old, CardClosed::MovedTicket).await;
        // A display name is the person's to choose: kept to one line in what the agent reads.
        let by = super::one_line(&self.name_of(user).await);
        let note = format!(
            "This Slack thread moved to ticket {} ({place}), by {by} ({user}). Its messages go there now; this ticket stays as it was.",
            new.ticket.ticket
        );
        let note_failed = self.mirror(old, note).await.err();
        let new_name = new.ticket.ticket.as_str();
        let retired = Retired::Moved { by: user, to: new_name, place: &place };
        let (_, new) = tokio::join!(self.refresh_header(old, Some(retired)), self.show_header(new.clone()));
        let shared = if share { self.share_thread(&new).await } else { None };
        let moved = Moved {
            by: user,
            from: old_name.as_str(),
            to: new.ticket.ticket.as_str(),
            place: &place,
            shared: shared.is_some(),
            note_failed: note_failed.as_ref().map(|err| err as &(dyn std::fmt::Display + Sync)),
        };
        self.tell(&new.thread, &notices::moved(&moved)).await;
        let old_place = match self.inner.portals.of(&old.ticket) {
            Some(portal) if several => format!("portal {}", portal.name),
            _ => "the same HelpDesk".to_owned(),
        };
        let continues = format!(
            "This ticket continues {old_name} ({old_place}), from the same Slack thread, moved here by {by} ({user})."
        );
        let first = shared.map(|context| PendingMessage {
            place: Place::Thread(new.thread.clone()),
            author: user.clone(),
            message_ts: None,
            content: format!("{continues}\n\n{context}"),
            title: new.title.clone(),
            card: None,
        });
        match (first, turn) {
            (Some(first), Some(guard)) => self.turn_holding(new, first, guard).await,
            (Some(first), None) => self.turn(new, first).await,
            (None, turn) => {
                let unshared = format!("{continues} The thread's earlier messages were not shared.");
                if let Err(err) = self.mirror(&new, unshared).await {
                    tracing::warn!(ticket = %new.ticket.ticket, error = %err, "could not note where a moved ticket came from");
                }
                if let Some(guard) = &turn {
                    self.release(guard).await;
                }
                Ok(())
            }
        }
    }

    /// The thread's messages by people so far, for a moved thread's new ticket; `None` (the
    /// thread told why) when Slack will not give them, or there are none.
    async fn share_thread(&self, record: &TicketRecord) -> Option<String> {
        match self.thread_messages(&record.thread, None).await {
            Ok(context) => context,
            Err(err) => {
                tracing::warn!(code = err.code(), "could not read the thread's messages to share them");
                self.tell(&record.thread, &notices::share_unread(&err)).await;
                None
            }
        }
    }
}
