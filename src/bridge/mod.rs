//! The domain: what an inbound item means for a ticket.
//!
//! [`Bridge`] is the dispatcher's [`Handler`]. It receives items already verified,
//! deduplicated and ordered per thread, and decides: open a ticket ([`open`]), relay a
//! message as an agent turn and stream the reply back ([`turn`], [`reply`]), decide on
//! proposed commands ([`approvals`]), change a ticket's status, assignee or agent
//! ([`lifecycle`]), find tickets ([`finding`]), or answer a slash command ([`commands`]). It talks to three ports: the HelpDesk client, Slack egress
//! and the store. It never sees wire JSON; Slack messages are built by
//! [`crate::slack::blocks`] from view structs.
//!
//! Failures are never silent: a HelpDesk or store failure is explained in the thread,
//! with a Retry button when the message did not get through.

mod access;
mod approvals;
mod commands;
mod finding;
mod lifecycle;
mod open;
mod reply;
mod turn;

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
    time::Duration,
};

pub use access::Policy;
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::{
    dispatch::Handler,
    helpdesk::{HelpdeskClient, HelpdeskError},
    ids::{ChannelId, MessageTs, TeamId, ThreadKey, UserId},
    inbound::{BlockAction, Inbound, InboundKind, UserMessage},
    model::{Actor, HistoryEntry, HistoryEvent, TicketRecord, now_millis},
    slack::{
        api::{SlackApi, SlackError},
        blocks::{self, Message},
        identity::BotIdentity,
        markup, ticket,
    },
    store::{Store, StoreError},
    telemetry::Metrics,
};

/// How long a message whose sending failed can still be retried.
const PENDING_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a message waits out a store outage (Redis restarting) before the thread is
/// told; most restarts take a second or two.
const STORE_PATIENCE: Duration = Duration::from_secs(10);
/// How often a waiting message tries the store again.
const STORE_RETRY: Duration = Duration::from_millis(200);

/// Runs a store operation, trying again while the store is unavailable, up to
/// [`STORE_PATIENCE`]. Other failures are returned at once.
async fn patiently<T, F, Fut>(mut operation: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let deadline = tokio::time::Instant::now() + STORE_PATIENCE;
    loop {
        match operation().await {
            Err(StoreError::Unavailable(_)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(STORE_RETRY).await;
            }
            other => return other,
        }
    }
}

/// Action ids of the bridge's own buttons.
mod action {
    /// Resend a message that failed.
    pub const RETRY: &str = "retry";
    /// Open the ticket-creation modal.
    pub const CREATE: &str = "create_ticket";
    /// Open a new ticket for a thread whose ticket is gone from the HelpDesk.
    pub const REOPEN: &str = "open_new_ticket";
}

/// The message shortcut's callback id (see `manifest.yml`).
pub const SHORTCUT_CALLBACK: &str = "open_ticket";

/// Why handling an item failed; reported in the thread where possible, and logged.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The store did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Slack refused a call.
    #[error(transparent)]
    Slack(#[from] SlackError),
    /// The HelpDesk refused a call.
    #[error(transparent)]
    Helpdesk(#[from] HelpdeskError),
}

/// Where tickets are opened when a channel has no settings of its own.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    /// `HELPDESK_WORKSPACE`: a name or id.
    pub workspace: Option<String>,
    /// `HELPDESK_AGENT`: a name or id.
    pub agent: Option<String>,
}

/// The bridge between Slack threads and HelpDesk tickets.
#[derive(Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

struct Inner {
    slack: SlackApi,
    helpdesk: HelpdeskClient,
    store: Store,
    identity: Arc<OnceLock<BotIdentity>>,
    defaults: Defaults,
    /// Who may decide and administer, and where tickets may go.
    policy: Policy,
    /// Commands matching these are marked destructive.
    destructive: regex::RegexSet,
    /// Fires when the shutdown grace period is nearly over: streaming replies stop
    /// waiting for the agent and finalize what they have.
    abort: CancellationToken,
    metrics: Metrics,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bridge")
    }
}

/// What the bridge is built from.
#[derive(Debug)]
pub struct Ports {
    /// Slack egress.
    pub slack: SlackApi,
    /// The HelpDesk.
    pub helpdesk: HelpdeskClient,
    /// The store.
    pub store: Store,
    /// The bot's identity, once known.
    pub identity: Arc<OnceLock<BotIdentity>>,
    /// Default workspace and agent.
    pub defaults: Defaults,
    /// Who may decide and administer, and where tickets may go.
    pub policy: Policy,
    /// Regular expressions marking commands as destructive (case-insensitive).
    pub destructive_patterns: Vec<String>,
    /// Cancelled when in-flight replies must finalize (end of the shutdown grace).
    pub abort: CancellationToken,
    /// Metrics.
    pub metrics: Metrics,
}

impl Bridge {
    /// A bridge over the given ports.
    pub fn new(ports: Ports) -> Self {
        let Ports { slack, helpdesk, store, identity, defaults, policy, destructive_patterns, abort, metrics } = ports;
        // The patterns were checked when the configuration was read; one that still fails
        // to compile leaves the set empty rather than stopping the bridge.
        let destructive =
            regex::RegexSetBuilder::new(&destructive_patterns).case_insensitive(true).build().unwrap_or_else(|err| {
                tracing::error!(error = %err, "destructive patterns do not compile; none will be marked");
                regex::RegexSet::empty()
            });
        Self {
            inner: Arc::new(Inner { slack, helpdesk, store, identity, defaults, policy, destructive, abort, metrics }),
        }
    }
}

impl Handler for Bridge {
    fn handle(&self, item: Inbound) -> BoxFuture<'static, ()> {
        let this = self.clone();
        Box::pin(async move { this.dispatch(item).await })
    }
}

impl Bridge {
    async fn dispatch(&self, item: Inbound) {
        let Inbound { team, kind } = item;
        let outcome = match kind {
            InboundKind::Message(message) => self.on_message(&team, message).await,
            InboundKind::Command(command) => self.on_command(&team, command).await,
            InboundKind::Action(action) => self.on_action(&team, action).await,
            InboundKind::ViewSubmission(view) => self.on_view(&team, view).await,
            InboundKind::Shortcut(shortcut) => self.on_shortcut(&team, shortcut).await,
            InboundKind::HomeOpened { user, .. } => self.on_home(&team, &user).await,
        };
        if let Err(err) = outcome {
            tracing::warn!(team = %team, error = %err, "handling an inbound item failed");
        }
    }

    /// A human message: relay it if its thread is a ticket, or open one if it asks to.
    async fn on_message(&self, team: &TeamId, message: UserMessage) -> Result<(), BridgeError> {
        let thread = message.thread(team);
        let record = match patiently(|| self.inner.store.ticket_by_thread(&thread)).await {
            Ok(record) => record,
            Err(err) => {
                // The message is not lost silently: the person is told to resend it.
                if message.mentions_bot || message.is_dm {
                    self.tell(&thread, &store_trouble()).await;
                }
                return Err(err.into());
            }
        };
        match record {
            Some(record) => self.relay(record, &message).await,
            None if message.mentions_bot || message.is_dm => self.open_from_message(team, &message).await,
            None => Ok(()),
        }
    }

    async fn on_action(&self, team: &TeamId, action: BlockAction) -> Result<(), BridgeError> {
        for item in &action.actions {
            let value = item.value.as_deref().unwrap_or_default();
            match item.action_id.as_str() {
                action::RETRY => self.retry(team, &action, value).await?,
                action::REOPEN => self.reopen(team, &action, value).await?,
                action::CREATE => self.open_create_modal(&action, value).await?,
                id if id.starts_with("card_") => self.on_card_action(team, &action, item).await?,
                ticket::actions::LIST_MORE => self.list_more(team, &action, value).await?,
                ticket::actions::CONTINUE => self.continue_ticket(team, &action, value).await?,
                ticket::actions::FOLLOW_UP => self.follow_up(team, &action, value).await?,
                id @ (ticket::actions::STATUS
                | ticket::actions::ASSIGN
                | ticket::actions::AGENT
                | ticket::actions::HISTORY
                | ticket::actions::MENU) => self.on_header_action(team, &action, id, value).await?,
                // Link buttons (Open in HelpDesk, agent links) also report their clicks.
                _ => tracing::debug!(action_id = %item.action_id, "action needs no handling"),
            }
        }
        Ok(())
    }

    /// Posts a message in a thread; a failure is logged (there is nowhere else to say it).
    async fn tell(&self, thread: &ThreadKey, message: &Message) -> Option<MessageTs> {
        match self.inner.slack.post(&thread.channel, Some(&thread.thread_ts), message).await {
            Ok(ts) => Some(ts),
            Err(err) => {
                tracing::warn!(thread = %thread, error = %err, code = err.code(), "could not post in the thread");
                None
            }
        }
    }

    /// Appends to a ticket's history; a failure is logged, not fatal.
    async fn record(&self, record: &TicketRecord, actor: Actor, event: HistoryEvent) {
        let entry = HistoryEntry { at: now_millis(), actor, event };
        if let Err(err) = self.inner.store.append_history(&record.ticket, &entry).await {
            tracing::warn!(ticket = %record.ticket.ticket, error = %err, "could not record ticket history");
        }
    }

    /// Slack markup as plain text for the agent, with mentioned users' names resolved.
    async fn plain_text(&self, text: &str) -> String {
        let mut names = HashMap::new();
        for id in markup::mentioned_users(text) {
            let user = UserId::new(id.clone());
            if let Some(name) = self.inner.slack.user_name(&user).await {
                names.insert(id, name);
            }
        }
        markup::to_plain(text, &names)
    }

    /// A user's name, or their id when Slack cannot say.
    async fn name_of(&self, user: &UserId) -> String {
        self.inner.slack.user_name(user).await.unwrap_or_else(|| user.to_string())
    }

    fn bot_user(&self) -> Option<&UserId> {
        self.inner.identity.get().map(|me| &me.user_id)
    }
}

impl Bridge {
    /// Releases a lock, waiting out a short store outage: a lock left behind would hold
    /// its ticket's next turns until it expires.
    async fn release(&self, guard: &crate::store::LockGuard) {
        if let Err(err) = patiently(|| self.inner.store.unlock(guard)).await {
            tracing::warn!(error = %err, "could not release a lock; it expires on its own");
        }
    }
}

/// The notice for a store that does not answer.
fn store_trouble() -> Message {
    blocks::notice(
        "⚠️ I could not record this message: my state store is not answering. Nothing was sent to the HelpDesk; \
         please send it again in a minute.",
        &[],
    )
}

/// Unix seconds of a stored time (milliseconds), as Slack's `<!date>` wants them.
fn seconds(millis: i64) -> i64 {
    millis.div_euclid(1000)
}

/// The thread a channel post starts.
fn thread_of(team: &TeamId, channel: &ChannelId, ts: &MessageTs) -> ThreadKey {
    ThreadKey { team: team.clone(), channel: channel.clone(), thread_ts: ts.clone() }
}
