//! The domain: what an inbound item means for a ticket.
//!
//! [`Bridge`] is the dispatcher's [`Handler`]. It receives items already verified,
//! deduplicated and ordered per thread, and decides: open a ticket ([`open`]), relay a
//! message as an agent turn and stream the reply back ([`turn`], [`reply`]), decide on
//! proposed commands ([`approvals`]), change a ticket's status, assignee or agent
//! ([`lifecycle`]), record a rating of a reply ([`feedback`]), find tickets ([`finding`]),
//! or answer a slash command ([`commands`]). It talks to three ports: the HelpDesk client, Slack egress
//! and the store. It never sees wire JSON; Slack messages are built by
//! [`crate::slack::blocks`] from view structs.
//!
//! Failures are never silent: a HelpDesk or store failure is explained in the thread,
//! with a Retry button when the message did not get through.

mod access;
mod approvals;
mod commands;
mod context;
mod edits;
mod feedback;
mod files;
mod finding;
mod lifecycle;
mod open;
pub mod portals;
mod reply;
pub mod rules;
mod turn;
mod update_context;

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
    time::Duration,
};

pub use access::Policy;
use futures_util::future::{BoxFuture, join_all};
pub use portals::{Portal, Portals};
use tokio_util::sync::CancellationToken;

use crate::{
    dispatch::{Attempt, Handler},
    helpdesk::{HelpdeskClient, HelpdeskError},
    ids::{ChannelId, EnterpriseId, MessageTs, TeamId, ThreadKey, TicketKey, UserId},
    inbound::{BlockAction, Inbound, InboundKind, UserMessage, ViewSubmission},
    model::{
        Actor, Clock, CommandHasher, HistoryEntry, HistoryEvent, Installation, Owner, TicketRecord, UnixMillis,
        now_millis,
    },
    slack::{
        api::{SlackApi, SlackError},
        controls::{Intent, Submission},
        identity::BotIdentity,
        kit::Message,
        markup, notices,
    },
    store::{Store, StoreError, seal::Sealer},
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
    /// The idempotency key of the inbox item being handled: the one HelpDesk send an item
    /// makes is recorded under it, so that a taken-over item never sends blindly again.
    item: Option<Arc<str>>,
    /// The installation the item is served as; `None` is `SLACK_BOT_TOKEN`'s.
    workspace: Option<Arc<Workspace>>,
}

struct Inner {
    slack: SlackApi,
    /// The HelpDesk portals, one client each.
    portals: Portals,
    store: Store,
    identity: Arc<OnceLock<BotIdentity>>,
    /// The bot's own display name, learned once: every mention names the bot, and its name
    /// is not worth a Slack call on the way to the HelpDesk each time the name cache expires.
    bot_name: OnceLock<String>,
    /// Who may decide and administer, and where tickets may go.
    policy: Policy,
    /// Commands matching these are marked destructive.
    destructive: regex::RegexSet,
    /// `COMMAND_ALLOW` and `COMMAND_BLOCK`, compiled.
    rules: rules::Rules,
    /// The same as written, to show them.
    command_rules: crate::config::CommandRules,
    /// How long a card takes decisions.
    approval_ttl: Duration,
    /// Commands that need several approvals (`None`: the destructive ones), and how many.
    two_person: (Option<regex::RegexSet>, u32),
    /// Fires when the shutdown grace period is nearly over: streaming replies stop
    /// waiting for the agent and finalize what they have.
    abort: CancellationToken,
    metrics: Metrics,
    /// How long a turn's ticket lock lasts unrenewed.
    turn_lock: Duration,
    /// What approvals are timed by.
    clock: Clock,
    /// Command fingerprints for logs and the audit trail, once the key is read.
    hasher: tokio::sync::OnceCell<CommandHasher>,
    /// Opens installations' tokens; `None` serves `SLACK_BOT_TOKEN`'s workspace alone.
    sealer: Option<Arc<Sealer>>,
    /// `SLACK_INSTALL_ALLOWED`: the installations that may be served (empty: any).
    install_allowed: Vec<String>,
    /// Workspaces whose organisation this process already wrote down.
    organisations_noted: std::sync::Mutex<std::collections::HashSet<TeamId>>,
    /// This process's own key, while the store cannot give the shared one.
    own_hasher: OnceLock<CommandHasher>,
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
    /// The HelpDesk portals, the default first.
    pub portals: Portals,
    /// The store.
    pub store: Store,
    /// The bot's identity, once known.
    pub identity: Arc<OnceLock<BotIdentity>>,
    /// Who may decide and administer, and where tickets may go.
    pub policy: Policy,
    /// Regular expressions marking commands as destructive (case-insensitive).
    pub destructive_patterns: Vec<String>,
    /// The command policy's service-wide rules.
    pub command_rules: crate::config::CommandRules,
    /// How long an approval card takes decisions (`APPROVAL_TTL`).
    pub approval_ttl: Duration,
    /// The two-person rule.
    pub two_person: crate::config::TwoPerson,
    /// Cancelled when in-flight replies must finalize (end of the shutdown grace).
    pub abort: CancellationToken,
    /// Metrics.
    pub metrics: Metrics,
    /// How long a turn's ticket lock lasts unrenewed (`LEASE_SECONDS`): the lock of a replica
    /// that died lapses as soon as its inbox leases do, so the replica taking over its
    /// threads is not held up by it.
    pub turn_lock: Duration,
    /// The clock approval cards are timed by.
    pub clock: Clock,
    /// `STATE_ENCRYPTION_KEY`'s sealer: with it, the workspaces installed in the store are
    /// served too, each with its own token.
    pub sealer: Option<Arc<Sealer>>,
    /// `SLACK_INSTALL_ALLOWED`: the workspace and organisation ids whose installations
    /// may be served (empty: any).
    pub install_allowed: Vec<String>,
}

/// The installation an item is served as, when it is not the one of `SLACK_BOT_TOKEN`: its
/// Slack egress (its bot token) and who its bot is.
struct Workspace {
    slack: SlackApi,
    identity: BotIdentity,
}

impl Bridge {
    /// A bridge over the given ports.
    pub fn new(ports: Ports) -> Self {
        let Ports {
            slack,
            portals,
            store,
            identity,
            policy,
            destructive_patterns,
            command_rules,
            approval_ttl,
            two_person,
            abort,
            metrics,
            turn_lock,
            clock,
            sealer,
            install_allowed,
        } = ports;
        // Checked when the configuration was read, like the destructive patterns.
        let rules = rules::Rules::lenient(&command_rules.allow, &command_rules.block);
        // The patterns were checked when the configuration was read; one that still fails
        // to compile leaves the set empty rather than stopping the bridge.
        let compile = |patterns: &[String], what: &str| {
            regex::RegexSetBuilder::new(patterns).case_insensitive(true).build().unwrap_or_else(|err| {
                tracing::error!(error = %err, "{what} patterns do not compile; none will match");
                regex::RegexSet::empty()
            })
        };
        let destructive = compile(&destructive_patterns, "destructive");
        let two_person = (two_person.patterns.as_deref().map(|p| compile(p, "two-person")), two_person.approvals);
        Self {
            inner: Arc::new(Inner {
                slack,
                portals,
                store,
                identity,
                bot_name: OnceLock::new(),
                policy,
                destructive,
                rules,
                command_rules,
                approval_ttl,
                two_person,
                abort,
                metrics,
                turn_lock,
                clock,
                hasher: tokio::sync::OnceCell::new(),
                own_hasher: OnceLock::new(),
                sealer,
                install_allowed,
                organisations_noted: std::sync::Mutex::default(),
            }),
            item: None,
            workspace: None,
        }
    }

    /// The app left workspace `team` (or its organisation, for an org-wide install) at
    /// `at`: its installation is removed, unless it was installed again since, and its
    /// requests are no longer served.
    async fn uninstalled(&self, team: &TeamId, enterprise: Option<&EnterpriseId>, org_wide: bool, at: UnixMillis) {
        if self.inner.sealer.is_none() {
            tracing::info!(team = %team, "the app was uninstalled from a workspace (no installations are stored)");
            return;
        }
        let owner = match enterprise {
            Some(enterprise) if org_wide => Owner::Enterprise(enterprise.clone()),
            _ => Owner::Team(team.clone()),
        };
        match patiently(|| self.inner.store.remove_installation(&owner, at)).await {
            Ok(true) => {
                tracing::info!(owner = %owner, "removed an installation: the app was uninstalled or its token revoked")
            }
            Ok(false) => {
                tracing::info!(owner = %owner, "nothing to remove: no installation, or one made after the uninstall")
            }
            Err(err) => {
                tracing::warn!(owner = %owner, error = %err, "could not remove an uninstalled workspace's installation")
            }
        }
    }

    /// Whether `SLACK_INSTALL_ALLOWED` (when set) lets this installation be served: one
    /// kept before the list was set or narrowed is not.
    fn may_serve(&self, installation: &Installation) -> bool {
        let allowed = &self.inner.install_allowed;
        let owner = match &installation.owner {
            Owner::Team(team) => team.as_str(),
            Owner::Enterprise(enterprise) => enterprise.as_str(),
        };
        let ok = allowed.is_empty()
            || allowed
                .iter()
                .any(|id| id == owner || installation.enterprise.as_ref().is_some_and(|e| e.as_str() == id));
        if !ok {
            tracing::warn!(owner = %installation.owner, "an installation SLACK_INSTALL_ALLOWED does not list is not served");
        }
        ok
    }

    /// Slack egress as the installation being served.
    fn slack(&self) -> &SlackApi {
        self.workspace.as_ref().map_or(&self.inner.slack, |w| &w.slack)
    }

    /// The bridge serving workspace `team`: as its installation in the store when there is
    /// one (its own, else its organisation's org-wide one), and installations are served;
    /// else as `SLACK_BOT_TOKEN`'s. `None` for a
    /// workspace with neither: it is never served with another workspace's token.
    async fn serving(&self, team: &TeamId, enterprise: Option<&EnterpriseId>, org_wide: bool) -> Option<Self> {
        let Some(sealer) = &self.inner.sealer else { return Some(self.clone()) };
        let store = &self.inner.store;
        let mut found = match (enterprise, org_wide) {
            // Delivered for the organisation's installation: that one, whatever the workspace has.
            (Some(enterprise), true) => {
                let owner = Owner::Enterprise(enterprise.clone());
                patiently(|| store.installation(&owner, sealer)).await
            }
            _ => patiently(|| store.installation_for(team, enterprise, sealer)).await,
        };
        // What the bridge does on its own (an expiry, a policy submission) names no
        // organisation: for a workspace without an installation of its own, the one a
        // request of it last named is remembered (read only then: not on every item).
        let mut remembered = None;
        if enterprise.is_none() && matches!(found, Ok(None)) {
            remembered = store.team_enterprise(team).await.ok().flatten();
            if let Some(organisation) = &remembered {
                found = patiently(|| store.installation_for(team, Some(organisation), sealer)).await;
            }
        }
        let enterprise = enterprise.or(remembered.as_ref());
        let found = found.map(|found| found.filter(|i| self.may_serve(i)));
        if let (Ok(Some(installation)), Some(enterprise)) = (&found, enterprise)
            && matches!(installation.owner, Owner::Enterprise(_))
            && remembered.is_none()
            && self
                .inner
                .organisations_noted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(team.clone())
            && let Err(err) = store.note_team_enterprise(team, enterprise).await
        {
            tracing::warn!(team = %team, error = %err, "could not remember the workspace's organisation");
        }
        match found {
            Ok(Some(installation)) => {
                let identity = BotIdentity {
                    user_id: installation.bot_user.clone(),
                    bot_id: installation.bot_id.clone(),
                    team_id: team.clone(),
                };
                let slack = self.inner.slack.as_bot(&installation.bot_token, &installation.owner.key(), team);
                Some(Self { workspace: Some(Arc::new(Workspace { slack, identity })), ..self.clone() })
            }
            // SLACK_BOT_TOKEN's own workspace, also while the store cannot say: its own token.
            Ok(None) | Err(_) if self.inner.identity.get().is_some_and(|me| me.team_id == *team) => Some(self.clone()),
            Ok(None) => {
                tracing::warn!(team = %team, "no installation serves this workspace; its request is ignored");
                None
            }
            Err(StoreError::Sealed(err)) => {
                tracing::error!(team = %team, error = %err, "the workspace's installation does not open; is STATE_ENCRYPTION_KEY the one it was stored with?");
                None
            }
            Err(err) => {
                tracing::warn!(team = %team, error = %err, "could not read the workspace's installation; its request is ignored");
                None
            }
        }
    }
}

impl Handler for Bridge {
    fn handle(&self, item: Inbound, attempt: Attempt) -> BoxFuture<'static, ()> {
        let this = Self { inner: self.inner.clone(), item: Some(item.idempotency_key().into()), workspace: None };
        Box::pin(async move {
            // An uninstall needs no token: the installation it removes is what gives one.
            if let InboundKind::Uninstalled { org_wide, event_time, .. } = &item.kind {
                let at = event_time.saturating_mul(1000);
                return this.uninstalled(&item.team, item.enterprise.as_ref(), *org_wide, at).await;
            }
            // An event is served as the installation it was delivered for.
            let (team, enterprise, org_wide) = match &item.authorized {
                Some(installed) => (
                    installed.team.as_ref().unwrap_or(&item.team),
                    installed.enterprise.as_ref().or(item.enterprise.as_ref()),
                    installed.org_wide,
                ),
                None => (&item.team, item.enterprise.as_ref(), false),
            };
            let Some(this) = this.serving(team, enterprise, org_wide).await else { return };
            if attempt.taken_over {
                this.log_takeover(&item).await;
            }
            this.dispatch(item).await;
        })
    }

    fn warm_up(&self) -> BoxFuture<'static, ()> {
        let this = self.clone();
        Box::pin(async move { this.warm_caches().await })
    }

    fn housekeep(&self) -> BoxFuture<'static, ()> {
        let this = self.clone();
        Box::pin(async move { this.expire_due().await })
    }
}

impl Bridge {
    /// Logs, at warn, that an item is handled again after the replica handling it died.
    async fn log_takeover(&self, item: &Inbound) {
        match &item.kind {
            InboundKind::Message(message) => {
                let thread = message.thread(&item.team);
                let ticket = self.inner.store.ticket_by_thread(&thread).await.ok().flatten().map(|r| r.ticket.ticket);
                tracing::warn!(
                    thread = %thread,
                    ticket = ticket.as_ref().map(tracing::field::display),
                    "taking over a message whose replica stopped mid-item"
                );
            }
            _ => {
                tracing::warn!(team = %item.team, order_key = %item.order_key(), "taking over an item whose replica stopped mid-item")
            }
        }
    }

    async fn dispatch(&self, item: Inbound) {
        let Inbound { team, kind, .. } = item;
        let outcome = match kind {
            InboundKind::Message(message) => self.on_message(&team, message).await,
            InboundKind::Command(command) => self.on_command(&team, command).await,
            InboundKind::Action(action) => self.on_action(&team, action).await,
            InboundKind::ViewSubmission(view) => self.on_view(&team, view).await,
            InboundKind::Shortcut(shortcut) => self.on_shortcut(&team, shortcut).await,
            InboundKind::HomeOpened { user, .. } => self.on_home(&team, &user).await,
            InboundKind::Uninstalled { .. } => Ok(()),
            InboundKind::MessageChanged(change) => self.on_message_changed(&team, &change).await,
            InboundKind::PolicySubmission { card, thread } => self.submit_by_policy(&card, &thread).await,
            InboundKind::StreamStopped { channel, messages, user, .. } => {
                self.on_stream_stopped(&channel, &messages, user.as_ref()).await
            }
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
                    self.tell(&thread, &notices::store_trouble()).await;
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

    /// A click: decoded at the edge, matched here.
    async fn on_action(&self, team: &TeamId, action: BlockAction) -> Result<(), BridgeError> {
        for item in &action.actions {
            match Intent::from_action(item) {
                Intent::Retry { pending } => self.retry(team, &action, &pending).await?,
                Intent::Reopen { pending } => self.reopen(&action, &pending).await?,
                Intent::Create { pending } => self.open_create_modal(&action, &pending).await?,
                Intent::Card { button, card } => self.on_card_action(team, &action, button, card).await?,
                Intent::ListMore(args) => self.list_more(team, &action, args).await?,
                Intent::Continue(what) => self.continue_ticket(team, &action, what).await?,
                Intent::FollowUp { pending } => self.follow_up(team, &action, &pending).await?,
                Intent::Header(control) => self.on_header_action(team, &action, control).await?,
                Intent::Feedback(rating) => self.on_feedback(team, &action, rating).await?,
                // Link buttons (Open in HelpDesk, agent links) also report their clicks.
                Intent::None => tracing::debug!(action_id = %item.action_id, "action needs no handling"),
            }
        }
        Ok(())
    }

    /// A modal submission: decoded at the edge, matched here.
    async fn on_view(&self, team: &TeamId, view: ViewSubmission) -> Result<(), BridgeError> {
        let (user, user_team) = (&view.user, view.user_team.as_ref());
        match Submission::from_view(&view) {
            Submission::Create { pending, title, target } => {
                self.on_create_view(team, user, &pending, title, target).await
            }
            Submission::Reject { card: Some((card, index, seen)), reason } => {
                self.on_reject_view(team, (user, user_team), (&card, index, seen), reason).await
            }
            Submission::Status { target: Some(target), comment } => {
                self.on_status_view(team, user, user_team, &target, comment).await
            }
            Submission::Agent { target: Some(target), agent: Some(agent) } => {
                self.on_agent_view(team, user, user_team, &target, agent).await
            }
            Submission::Context { target: Some(target), choice, share } => {
                self.on_context_view(team, (user, user_team), &target, choice, share).await
            }
            Submission::Reject { .. }
            | Submission::Status { .. }
            | Submission::Agent { .. }
            | Submission::Context { .. }
            | Submission::Unknown => Ok(()),
        }
    }

    /// Posts a message in a thread; a failure is logged (there is nowhere else to say it).
    async fn tell(&self, thread: &ThreadKey, message: &Message) -> Option<MessageTs> {
        match self.slack().post(&thread.channel, Some(&thread.thread_ts), message).await {
            Ok(ts) => Some(ts),
            Err(err) => {
                tracing::warn!(thread = %thread, error = %err, code = err.code(), "could not post in the thread");
                None
            }
        }
    }

    /// Answers a click with a message only the clicker sees: through the interaction's
    /// `response_url` (which works where the bot is not a member), else as an ephemeral.
    async fn answer_click(&self, action: &BlockAction, note: &Message) {
        let sent = match (&action.response_url, &action.channel) {
            (Some(url), _) => self.slack().respond(url, note, false).await,
            (None, Some(channel)) => {
                self.slack().ephemeral(channel, &action.user, action.thread_ts.as_ref(), note).await
            }
            (None, None) => Ok(()),
        };
        if let Err(err) = sent {
            tracing::warn!(code = err.code(), "could not answer a click");
        }
    }

    /// The client of the portal `ticket` was opened on; a portal no longer configured is
    /// refused rather than asked in another portal's place.
    fn helpdesk_of(&self, ticket: &TicketKey) -> Result<&HelpdeskClient, HelpdeskError> {
        self.inner.portals.of(ticket).map(|p| &p.client).ok_or_else(|| HelpdeskError::Unconfigured(ticket.host.clone()))
    }

    /// Now, by the clock approvals are timed by (history is stamped by it too, so that a
    /// ticket's trail reads in the order its cards were decided).
    fn now(&self) -> UnixMillis {
        self.inner.clock.now_millis()
    }

    /// Appends to a ticket's history; a failure is logged, not fatal.
    async fn record(&self, record: &TicketRecord, actor: Actor, event: HistoryEvent) {
        self.record_on(&record.ticket, actor, event).await;
    }

    /// [`Bridge::record`] by the ticket's key alone.
    async fn record_on(&self, ticket: &TicketKey, actor: Actor, event: HistoryEvent) {
        let entry = HistoryEntry { at: self.now(), actor, event };
        if let Err(err) = self.inner.store.append_history(ticket, &entry).await {
            tracing::warn!(ticket = %ticket.ticket, error = %err, "could not record ticket history");
        }
    }

    /// The service's command fingerprints, keyed from the store once; while the store
    /// cannot give the key, a key of this process's own (its fingerprints match no other
    /// replica's, and are not kept).
    async fn hasher(&self) -> CommandHasher {
        let made = self
            .inner
            .hasher
            .get_or_try_init(|| async { self.inner.store.hash_key().await.map(|key| CommandHasher::new(&key)) })
            .await;
        match made {
            Ok(hasher) => hasher.clone(),
            Err(err) => {
                tracing::warn!(error = %err, "could not read the command fingerprint key");
                self.inner.own_hasher.get_or_init(|| CommandHasher::new(&rand::random::<[u8; 32]>())).clone()
            }
        }
    }

    /// Slack markup as plain text for the agent, with mentioned users' names resolved
    /// (together).
    async fn plain_text(&self, text: &str) -> String {
        let lookups = markup::mentioned_users(text).into_iter().map(|id| async move {
            let name = self.display_name(&UserId::new(id.clone())).await;
            name.map(|name| (id, name))
        });
        let names: HashMap<String, String> = join_all(lookups).await.into_iter().flatten().collect();
        markup::to_plain(text, &names)
    }

    /// A user's name, or their id when Slack cannot say.
    async fn name_of(&self, user: &UserId) -> String {
        self.display_name(user).await.unwrap_or_else(|| user.to_string())
    }

    /// A user's display name (`users.info`, remembered a while); the bot's own is asked of
    /// Slack once and kept.
    async fn display_name(&self, user: &UserId) -> Option<String> {
        // Another installation's bot has a name of its own (the people cache keeps it a while).
        if self.bot_user() != Some(user) || self.workspace.is_some() {
            return self.slack().user_name(user).await;
        }
        if let Some(name) = self.inner.bot_name.get() {
            return Some(name.clone());
        }
        let name = self.slack().user_name(user).await?;
        Some(self.inner.bot_name.get_or_init(|| name).clone())
    }

    fn bot_user(&self) -> Option<&UserId> {
        match &self.workspace {
            Some(workspace) => Some(&workspace.identity.user_id),
            None => self.inner.identity.get().map(|me| &me.user_id),
        }
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

/// `text` on one line and free of backticks, for a code span in what the agent reads (a
/// command, a rule, a person's or a file's name): line breaks and other control characters
/// become spaces, a backtick a look-alike, so that it can neither end the span nor pass
/// for another line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '`' => 'ˋ',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// Unix seconds of a stored time (milliseconds), as the renderers take times.
fn seconds(millis: i64) -> i64 {
    millis.div_euclid(1000)
}

/// The thread a channel post starts.
fn thread_of(team: &TeamId, channel: &ChannelId, ts: &MessageTs) -> ThreadKey {
    ThreadKey { team: team.clone(), channel: channel.clone(), thread_ts: ts.clone() }
}
