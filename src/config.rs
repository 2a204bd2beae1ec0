//! Configuration: every setting is an environment variable and a CLI flag, validated once.
//!
//! [`Cli`] is what clap parses (everything optional, so that a missing setting is reported
//! by us, naming the variable, instead of by clap's usage dump). [`Cli::validate`] turns it
//! into a [`Config`] whose fields are already checked and typed, or a [`ConfigError`] that
//! names the variable and what is wrong with it. Secrets are [`SecretString`]s, so neither
//! `Debug` nor a log line can print them.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};
use secrecy::SecretString;

use crate::{bridge::rules, ids::Approver};

/// The command line and environment, as parsed; see [`Cli::validate`].
///
/// Its `Debug` shows no token, secret or Redis URL (they are plain `String`s here, before
/// validation makes them `SecretString`s).
#[derive(Parser)]
#[command(name = "helpdesk-bridge", version, about = "Brings the DuploCloud AI HelpDesk into Slack")]
pub struct Cli {
    /// What to do; serving is the default.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Slack bot token (xoxb-…).
    #[arg(long, env = "SLACK_BOT_TOKEN", hide_env_values = true)]
    pub slack_bot_token: Option<String>,
    /// Verifies HTTP requests from Slack; required unless SLACK_APP_TOKEN is set.
    #[arg(long, env = "SLACK_SIGNING_SECRET", hide_env_values = true)]
    pub slack_signing_secret: Option<String>,
    /// App-level token (xapp-…); when set, events arrive over Socket Mode.
    #[arg(long, env = "SLACK_APP_TOKEN", hide_env_values = true)]
    pub slack_app_token: Option<String>,
    /// The app's client id: with SLACK_CLIENT_SECRET and PUBLIC_URL, workspaces install the
    /// app at /slack/install.
    #[arg(long, env = "SLACK_CLIENT_ID")]
    pub slack_client_id: Option<String>,
    /// The app's client secret (OAuth).
    #[arg(long, env = "SLACK_CLIENT_SECRET", hide_env_values = true)]
    pub slack_client_secret: Option<String>,
    /// Where Slack and browsers reach this deployment (`https://bridge.example.com`): the
    /// install's redirect URL is under it.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Comma-separated Slack workspace (`T…`) and organisation (`E…`) ids that may install
    /// the app; unset: any workspace Slack lets install it.
    #[arg(long, env = "SLACK_INSTALL_ALLOWED")]
    pub slack_install_allowed: Option<String>,
    /// Slack Web API base URL.
    #[arg(long, env = "SLACK_API_URL", default_value = "https://slack.com/api/")]
    pub slack_api_url: String,
    /// Message edits (`chat.update`) per minute per workspace, shared by all streaming replies
    /// and, on Redis, by all replicas.
    #[arg(long, env = "SLACK_UPDATES_PER_MINUTE", default_value = "50")]
    pub slack_updates_per_minute: String,
    /// How replies reach Slack: `auto` (native streaming, falling back to edits where
    /// Slack refuses it), `native` or `edits`.
    #[arg(long, env = "SLACK_STREAMING", default_value = "auto")]
    pub slack_streaming: String,
    /// Stream appends (`chat.appendStream`) per minute per workspace, shared by all
    /// streaming replies and, on Redis, by all replicas.
    #[arg(long, env = "SLACK_APPENDS_PER_MINUTE", default_value = "100")]
    pub slack_appends_per_minute: String,
    /// Seconds one Slack Web API call may take, waits for rate limits included.
    #[arg(long, env = "SLACK_TIMEOUT_SECONDS", default_value = "30")]
    pub slack_timeout_seconds: String,
    /// Bytes of a text file shared in a ticket thread that the agent gets inline; larger
    /// files are named, not read.
    #[arg(long, env = "FILE_INLINE_MAX_BYTES", default_value = "65536")]
    pub file_inline_max_bytes: String,
    /// A TOML file listing several HelpDesk portals (instead of `DUPLO_HOST` and
    /// `DUPLO_TOKEN`): `[[portal]]` entries with `name`, `host`, `token_env` and optional
    /// `workspace`, `agent` and `default`.
    #[arg(long, env = "PORTALS_FILE")]
    pub portals_file: Option<PathBuf>,
    /// HelpDesk portal base URL.
    #[arg(long, env = "DUPLO_HOST")]
    pub duplo_host: Option<String>,
    /// HelpDesk bearer token.
    #[arg(long, env = "DUPLO_TOKEN", hide_env_values = true)]
    pub duplo_token: Option<String>,
    /// Default HelpDesk workspace for new tickets: name or id.
    #[arg(long, env = "HELPDESK_WORKSPACE")]
    pub helpdesk_workspace: Option<String>,
    /// Default HelpDesk agent for new tickets: name or id.
    #[arg(long, env = "HELPDESK_AGENT")]
    pub helpdesk_agent: Option<String>,
    /// When set, all state lives in this Redis.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Namespace for every Redis key.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "helpdesk-bridge:")]
    pub redis_key_prefix: String,
    /// Folder of the embedded store (used when REDIS_URL is unset).
    #[arg(long, env = "STATE_DIR", default_value = "./data")]
    pub state_dir: PathBuf,
    /// 64 hex digits: the key installations' bot tokens are sealed with in the store; when
    /// set, the workspaces installed in the store are served too.
    #[arg(long, env = "STATE_ENCRYPTION_KEY", hide_env_values = true)]
    pub state_encryption_key: Option<String>,
    /// HTTP listen address.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:3000")]
    pub listen_addr: String,
    /// Extra Slack user ids or user-group ids allowed to decide on commands.
    #[arg(long, env = "APPROVERS")]
    pub approvers: Option<String>,
    /// Slack user ids or user-group ids who may change `/helpdesk config`.
    #[arg(long, env = "ADMINS")]
    pub admins: Option<String>,
    /// Only `ADMINS` may change settings, not the workspace's admins and owners.
    #[arg(long, env = "ADMINS_ONLY", default_value = "false")]
    pub admins_only: String,
    /// Whether the person who opened a ticket may decide on its commands.
    #[arg(long, env = "REQUESTER_MAY_APPROVE", default_value = "true")]
    pub requester_may_approve: String,
    /// HelpDesk workspaces (names or ids, comma-separated) tickets may go to; all when unset.
    #[arg(long, env = "ALLOWED_WORKSPACES")]
    pub allowed_workspaces: Option<String>,
    /// HelpDesk agents (names or ids, comma-separated) tickets may use; all when unset.
    #[arg(long, env = "ALLOWED_AGENTS")]
    pub allowed_agents: Option<String>,
    /// Commands matching any of these regular expressions (`;`-separated, case-insensitive)
    /// are marked destructive and ask for confirmation before approval.
    #[arg(long, env = "DESTRUCTIVE_PATTERNS", default_value = DEFAULT_DESTRUCTIVE)]
    pub destructive_patterns: String,
    /// Commands needing approvals from two different people (`;`-separated regular
    /// expressions); unset: those matching `DESTRUCTIVE_PATTERNS`.
    #[arg(long, env = "TWO_PERSON_PATTERNS")]
    pub two_person_patterns: Option<String>,
    /// Approvals a two-person command needs (1 turns the rule off).
    #[arg(long, env = "APPROVALS_REQUIRED", default_value = "2")]
    pub approvals_required: String,
    /// Commands matching any of these (`;`-separated, case-insensitive) are approved without
    /// a click, unless destructive or blocked.
    #[arg(long, env = "COMMAND_ALLOW", default_value = "")]
    pub command_allow: String,
    /// Commands matching any of these are rejected, and nobody may approve them.
    #[arg(long, env = "COMMAND_BLOCK", default_value = "")]
    pub command_block: String,
    /// Log format: `text` or `json`.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// How long an approval card takes decisions: `24h`, `90m`, `3600s` or `3600`.
    #[arg(long, env = "APPROVAL_TTL", default_value = "24h")]
    pub approval_ttl: String,
    /// Seconds to finish in-flight work after SIGTERM or ctrl-c.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value = "20")]
    pub shutdown_grace_seconds: String,
    /// Seconds a unary HelpDesk request may take.
    #[arg(long, env = "HELPDESK_TIMEOUT_SECONDS", default_value = "60")]
    pub helpdesk_timeout_seconds: String,
    /// Seconds a HelpDesk stream may stay silent before it counts as broken.
    #[arg(long, env = "HELPDESK_STREAM_IDLE_SECONDS", default_value = "300")]
    pub helpdesk_stream_idle_seconds: String,
    /// Seconds HelpDesk workspace and agent lookups are cached.
    #[arg(long, env = "HELPDESK_CACHE_SECONDS", default_value = "60")]
    pub helpdesk_cache_seconds: String,
    /// Always use the streaming send endpoint, whatever the agent advertises.
    #[arg(long, env = "HELPDESK_FORCE_STREAMING", default_value = "false")]
    pub helpdesk_force_streaming: String,
    /// Items the inbox may hold (across replicas) before Slack is asked to retry later.
    #[arg(long, env = "INBOX_MAX_ITEMS", default_value = "1000000")]
    pub inbox_max_items: String,
    /// Seconds a replica's lease on a thread's work lasts without renewal: how soon another
    /// replica takes over the work of one that died.
    #[arg(long, env = "LEASE_SECONDS", default_value = "30")]
    pub lease_seconds: String,
    /// Threads whose items are handled concurrently.
    #[arg(long, env = "DISPATCH_WORKERS", default_value = "256")]
    pub dispatch_workers: String,
    /// When set, `/metrics` (and `/healthz`, `/readyz`) are served on this address, and the
    /// public listener answers 404 for `/metrics`.
    #[arg(long, env = "ADMIN_LISTEN_ADDR")]
    pub admin_listen_addr: Option<String>,
    /// Accept `http://` for `DUPLO_HOST` and `SLACK_API_URL` on hosts other than loopback.
    #[arg(long, env = "ALLOW_INSECURE_HTTP", default_value = "false")]
    pub allow_insecure_http: String,
    /// Seconds a client may take to send a request's headers.
    #[arg(long, env = "HTTP_HEADER_TIMEOUT_SECONDS", default_value = "10")]
    pub http_header_timeout_seconds: String,
    /// Seconds a client may take to send a request's body.
    #[arg(long, env = "HTTP_BODY_TIMEOUT_SECONDS", default_value = "10")]
    pub http_body_timeout_seconds: String,
    /// Connections served at once on each listener.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", default_value = "1024")]
    pub http_max_connections: String,
}

/// Redacts what may hold a secret and shows the rest. A field added later is left out
/// until it is listed here, so a new secret cannot reach a log through this by default.
impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn redacted(value: &Option<String>) -> Option<&'static str> {
            value.as_ref().map(|_| "[redacted]")
        }
        f.debug_struct("Cli")
            .field("command", &self.command)
            .field("slack_bot_token", &redacted(&self.slack_bot_token))
            .field("slack_signing_secret", &redacted(&self.slack_signing_secret))
            .field("slack_app_token", &redacted(&self.slack_app_token))
            .field("slack_client_id", &self.slack_client_id)
            .field("slack_client_secret", &redacted(&self.slack_client_secret))
            .field("public_url", &self.public_url)
            .field("slack_install_allowed", &self.slack_install_allowed)
            .field("slack_api_url", &self.slack_api_url)
            .field("slack_updates_per_minute", &self.slack_updates_per_minute)
            .field("slack_streaming", &self.slack_streaming)
            .field("slack_appends_per_minute", &self.slack_appends_per_minute)
            .field("slack_timeout_seconds", &self.slack_timeout_seconds)
            .field("file_inline_max_bytes", &self.file_inline_max_bytes)
            .field("portals_file", &self.portals_file)
            .field("duplo_host", &self.duplo_host)
            .field("duplo_token", &redacted(&self.duplo_token))
            .field("helpdesk_workspace", &self.helpdesk_workspace)
            .field("helpdesk_agent", &self.helpdesk_agent)
            .field("redis_url", &redacted(&self.redis_url))
            .field("state_encryption_key", &redacted(&self.state_encryption_key))
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("state_dir", &self.state_dir)
            .field("listen_addr", &self.listen_addr)
            .field("admin_listen_addr", &self.admin_listen_addr)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("http_header_timeout_seconds", &self.http_header_timeout_seconds)
            .field("http_body_timeout_seconds", &self.http_body_timeout_seconds)
            .field("http_max_connections", &self.http_max_connections)
            .field("approvers", &self.approvers)
            .field("destructive_patterns", &self.destructive_patterns)
            .field("command_allow", &self.command_allow)
            .field("command_block", &self.command_block)
            .field("approval_ttl", &self.approval_ttl)
            .field("two_person_patterns", &self.two_person_patterns)
            .field("approvals_required", &self.approvals_required)
            .field("log_format", &self.log_format)
            .field("shutdown_grace_seconds", &self.shutdown_grace_seconds)
            .field("helpdesk_timeout_seconds", &self.helpdesk_timeout_seconds)
            .field("helpdesk_stream_idle_seconds", &self.helpdesk_stream_idle_seconds)
            .field("helpdesk_cache_seconds", &self.helpdesk_cache_seconds)
            .field("helpdesk_force_streaming", &self.helpdesk_force_streaming)
            .field("inbox_max_items", &self.inbox_max_items)
            .field("lease_seconds", &self.lease_seconds)
            .field("dispatch_workers", &self.dispatch_workers)
            .finish_non_exhaustive()
    }
}

/// The default destructive patterns: deleting, dropping, truncating, terminating,
/// destroying, force-removing, scaling to zero, wiping disks, rebooting.
pub const DEFAULT_DESTRUCTIVE: &str = r"\bdelete\b;\bdel\b;\brm\s+(-\w+\s+)*-\w*[rf];\bdrop\s+(table|database|schema|index|user)\b;\btruncate\b;\bterminate\b;\bdestroy\b;\bpurge\b;--replicas[=\s]+0\b;\bscale\b.*\s0\s*$;desired[-_]?count[=\s]+0\b;\bmkfs\b;\bdd\s+if=;\bshutdown\b;\breboot\b;\bkill\s+-9\b;\bdrain\b;--force\b";

/// What the binary was asked to do.
#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Validate the configuration, call Slack auth.test and resolve the HelpDesk defaults.
    Check,
    /// Serve (the default).
    Serve,
}

/// A setting that is missing or invalid: names the variable and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong with it, in words.
    pub problem: String,
}

impl ConfigError {
    fn new(var: &'static str, problem: impl Into<String>) -> Self {
        Self { var, problem: problem.into() }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Slack tokens and endpoints.
    pub slack: SlackConfig,
    /// The default HelpDesk portal and its defaults.
    pub helpdesk: HelpdeskConfig,
    /// `PORTALS_FILE`'s portals, the default (`helpdesk`) first; empty in the one-portal
    /// form of `DUPLO_HOST` and `DUPLO_TOKEN` (see [`Config::all_portals`]).
    pub portals: Vec<PortalConfig>,
    /// Where state lives.
    pub store: StoreConfig,
    /// HTTP listen address.
    pub listen_addr: SocketAddr,
    /// Where `/metrics`, `/healthz` and `/readyz` are served apart, if anywhere.
    pub admin_listen_addr: Option<SocketAddr>,
    /// Limits every HTTP listener keeps against slow or hostile clients.
    pub ingress: IngressConfig,
    /// Extra Slack user or user-group ids allowed to decide on commands.
    pub approvers: Vec<Approver>,
    /// Who may administer and decide beyond the defaults.
    pub access: AccessConfig,
    /// Regular expressions (already checked) marking commands as destructive.
    pub destructive_patterns: Vec<String>,
    /// The command policy's allow and block rules (already checked).
    pub command_rules: CommandRules,
    /// Who must approve what (already checked).
    pub two_person: TwoPerson,
    /// How long an approval card takes decisions; after that it is closed, unsent.
    pub approval_ttl: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// How long in-flight work may take to finish at shutdown.
    pub shutdown_grace: Duration,
    /// Dispatcher bounds.
    pub dispatch: DispatchConfig,
}

/// Who may change settings, who may decide, and where tickets may go.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// `ADMINS`: user and user-group ids who may change `/helpdesk config`.
    pub admins: Vec<Approver>,
    /// `ADMINS_ONLY`: the workspace's own admins and owners may not change settings.
    pub admins_only: bool,
    /// `REQUESTER_MAY_APPROVE`: the requester may decide on their ticket's commands.
    pub requester_may_approve: bool,
    /// `ALLOWED_WORKSPACES`: names or ids; empty allows every workspace.
    pub allowed_workspaces: Vec<String>,
    /// `ALLOWED_AGENTS`: names or ids; empty allows every agent.
    pub allowed_agents: Vec<String>,
}

impl Default for AccessConfig {
    /// The settings' defaults: workspace admins and owners administer, the requester may
    /// decide, every workspace and agent is allowed.
    fn default() -> Self {
        Self {
            admins: Vec::new(),
            admins_only: false,
            requester_may_approve: true,
            allowed_workspaces: Vec::new(),
            allowed_agents: Vec::new(),
        }
    }
}

/// Slack settings.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// Bot token (xoxb-): its workspace is served with it. `None` only with the install
    /// flow, where every workspace is served by its installation.
    pub bot_token: Option<SecretString>,
    /// Signing secret; `None` only in Socket Mode.
    pub signing_secret: Option<SecretString>,
    /// App-level token; `Some` selects Socket Mode.
    pub app_token: Option<SecretString>,
    /// Web API base URL, always ending in `/`.
    pub api_url: String,
    /// `chat.update` calls per minute per workspace (Slack's Tier 3 allows about 50).
    pub updates_per_minute: u32,
    /// How replies reach Slack.
    pub streaming: Streaming,
    /// `chat.appendStream` calls per minute per workspace (Slack's Tier 4 allows about 100).
    pub appends_per_minute: u32,
    /// How long one Web API call may take, waits for rate limits included.
    pub timeout: Duration,
    /// Bytes of a shared text file the agent gets inline (`FILE_INLINE_MAX_BYTES`).
    pub file_inline_max_bytes: usize,
    /// The OAuth install flow, when the app is distributed.
    pub oauth: Option<OAuthConfig>,
}

/// Slack's OAuth v2 install flow (`SLACK_CLIENT_ID`, `SLACK_CLIENT_SECRET`, `PUBLIC_URL`).
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret; it also signs the install's state cookie.
    pub client_secret: SecretString,
    /// The deployment's public base URL, without a trailing slash.
    pub public_url: String,
    /// Workspace and organisation ids that may install the app; empty: any.
    pub allowed: Vec<String>,
}

impl OAuthConfig {
    /// Whether an install by `owner` (in organisation `enterprise`) may be kept.
    pub fn may_install(&self, owner: &str, enterprise: Option<&str>) -> bool {
        self.allowed.is_empty() || self.allowed.iter().any(|id| id == owner || Some(id.as_str()) == enterprise)
    }

    /// The redirect URL the install returns to (as `manifest.yml` lists it).
    pub fn redirect_uri(&self) -> String {
        format!("{}/slack/oauth_redirect", self.public_url)
    }
}

/// How an agent's reply reaches Slack (`SLACK_STREAMING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streaming {
    /// Slack's native streaming (`chat.startStream`), and message edits in a workspace
    /// whose Slack refuses it (remembered for that workspace).
    Auto,
    /// Native streaming, never given up for the workspace: a refusal is logged as an error
    /// and that reply is shown with edits (nothing is lost); the next reply tries again.
    Native,
    /// A placeholder message edited as the reply arrives.
    Edits,
}

/// HelpDesk settings.
#[derive(Debug, Clone)]
pub struct HelpdeskConfig {
    /// Portal base URL: scheme, host and port, no trailing slash.
    pub host: String,
    /// Bearer token.
    pub token: SecretString,
    /// Default workspace (name or id) for new tickets.
    pub default_workspace: Option<String>,
    /// Default agent (name or id) for new tickets.
    pub default_agent: Option<String>,
    /// Timeout of a unary request.
    pub request_timeout: Duration,
    /// Longest silence tolerated on a stream.
    pub stream_idle_timeout: Duration,
    /// How long workspace and agent lookups are cached.
    pub cache_ttl: Duration,
    /// Always use the streaming send endpoint.
    pub force_streaming: bool,
}

impl Config {
    /// Every portal, the default first: `PORTALS_FILE`'s, or the one of `helpdesk`, named
    /// [`DEFAULT_PORTAL`].
    pub fn all_portals(&self) -> Vec<PortalConfig> {
        if self.portals.is_empty() {
            vec![PortalConfig { name: DEFAULT_PORTAL.to_owned(), helpdesk: self.helpdesk.clone() }]
        } else {
            self.portals.clone()
        }
    }
}

/// The name of the one portal of `DUPLO_HOST` and `DUPLO_TOKEN`.
pub const DEFAULT_PORTAL: &str = "default";

/// One HelpDesk portal.
#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// Its name, as `/helpdesk config portal <name>` and the creation form use it.
    pub name: String,
    /// How to reach it, and its default workspace and agent.
    pub helpdesk: HelpdeskConfig,
}

/// Words of `/helpdesk config` that cannot name a portal.
const PORTAL_WORDS: &[&str] =
    &["workspace", "agent", "approvers", "relay", "context", "portal", "allow", "block", "none"];

/// A `[[portal]]` entry of `PORTALS_FILE`, as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PortalEntry {
    name: String,
    host: String,
    token_env: String,
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    default: bool,
}

/// `PORTALS_FILE`, as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PortalsFile {
    #[serde(default)]
    portal: Vec<PortalEntry>,
}

/// The portals of a `PORTALS_FILE` (its text), the default first, each built on `shared`
/// (timeouts and caching) with the token read through `token`; an error names the entry.
fn portals_from(
    text: &str,
    shared: &HelpdeskConfig,
    allow_insecure: bool,
    token: impl Fn(&str) -> Option<String>,
) -> Result<Vec<PortalConfig>, ConfigError> {
    const VAR: &str = "PORTALS_FILE";
    let file: PortalsFile =
        toml::from_str(text).map_err(|e| ConfigError::new(VAR, format!("is not valid: {}", e.message())))?;
    if file.portal.is_empty() {
        return Err(ConfigError::new(VAR, "lists no [[portal]]"));
    }
    if file.portal.iter().filter(|p| p.default).count() > 1 {
        return Err(ConfigError::new(VAR, "marks more than one portal as the default"));
    }
    let mut portals: Vec<PortalConfig> = Vec::new();
    for entry in file.portal {
        let name = entry.name.trim().to_owned();
        let at = |what: String| ConfigError::new(VAR, format!("portal '{name}': {what}"));
        // A name is typed after `/helpdesk config portal` and starts forms' option values
        // (`portal/id`): one word, and no `/`.
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return Err(ConfigError::new(
                VAR,
                format!("portal name '{name}' must be one word of letters, digits, '-', '_' or '.'"),
            ));
        }
        if portals.iter().any(|p| p.name.eq_ignore_ascii_case(&name)) {
            return Err(ConfigError::new(VAR, format!("portal '{name}' is listed twice")));
        }
        if PORTAL_WORDS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(ConfigError::new(VAR, format!("portal name '{name}' is a word of /helpdesk config")));
        }
        let host = normalise_host(&entry.host, allow_insecure).map_err(|e| at(format!("host {}", e.problem)))?;
        if reqwest::Url::parse(&host).is_err() {
            return Err(at(format!("host '{}' is not a valid URL", entry.host)));
        }
        if let Some(other) = portals.iter().find(|p| crate::bridge::portals::same_origin(&p.helpdesk.host, &host)) {
            return Err(at(format!("host {host} is also portal '{}''s", other.name)));
        }
        let Some(secret) = token(&entry.token_env).filter(|t| !t.trim().is_empty()) else {
            return Err(at(format!("token_env {} is not set", entry.token_env)));
        };
        let portal = PortalConfig {
            name,
            helpdesk: HelpdeskConfig {
                host,
                token: secret.trim().to_owned().into(),
                default_workspace: entry.workspace.filter(|w| !w.trim().is_empty()),
                default_agent: entry.agent.filter(|a| !a.trim().is_empty()),
                ..shared.clone()
            },
        };
        if entry.default {
            portals.insert(0, portal);
        } else {
            portals.push(portal);
        }
    }
    Ok(portals)
}

/// Store settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Redis URL (may carry a password); `None` selects the embedded store.
    pub redis_url: Option<SecretString>,
    /// Prefix of every Redis key.
    pub key_prefix: String,
    /// Folder of the embedded store.
    pub state_dir: PathBuf,
    /// `STATE_ENCRYPTION_KEY` (checked: 64 hex digits): installations are served only with it.
    pub encryption_key: Option<SecretString>,
}

/// Limits of the HTTP listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngressConfig {
    /// How long a client may take to send a request's headers (each request of a
    /// connection, and the wait for the next one on a kept-alive connection).
    pub header_timeout: Duration,
    /// How long a client may take to send the body of a request to a Slack route.
    pub body_timeout: Duration,
    /// Connections served at once on each listener.
    pub max_connections: usize,
}

/// Default of `HTTP_HEADER_TIMEOUT_SECONDS`.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of `HTTP_BODY_TIMEOUT_SECONDS`.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of `HTTP_MAX_CONNECTIONS`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

impl Default for IngressConfig {
    /// The production limits.
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The inbox and its workers.
#[derive(Debug, Clone, Copy)]
pub struct DispatchConfig {
    /// `INBOX_MAX_ITEMS`: items the inbox may hold; past it Slack is told to retry later.
    pub inbox_max_items: u64,
    /// `LEASE_SECONDS`: how long a lease on an order key lasts without renewal.
    pub lease: Duration,
    /// `DISPATCH_WORKERS`: order keys this replica works on at once.
    pub workers: usize,
}

impl Cli {
    /// Checks every setting and returns the typed configuration, or the first problem found.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        // Without the install flow, the one token is required; with it, optional.
        let oauth_set = non_empty(&self.slack_client_id).is_some();
        let bot_token = match non_empty(&self.slack_bot_token) {
            Some(token) if !token.starts_with("xoxb-") => {
                return Err(ConfigError::new("SLACK_BOT_TOKEN", "must be a bot token starting with xoxb-"));
            }
            Some(token) => Some(token),
            None if oauth_set && non_empty(&self.slack_app_token).is_none() => None,
            None => Some(required("SLACK_BOT_TOKEN", &self.slack_bot_token, "the bot token (xoxb-…)")?),
        };
        let app_token = non_empty(&self.slack_app_token);
        if let Some(token) = &app_token
            && !token.starts_with("xapp-")
        {
            {
                return Err(ConfigError::new("SLACK_APP_TOKEN", "must be an app-level token starting with xapp-"));
            }
        }
        let signing_secret = non_empty(&self.slack_signing_secret);
        if signing_secret.is_none() && app_token.is_none() {
            return Err(ConfigError::new(
                "SLACK_SIGNING_SECRET",
                "is required to verify Slack's HTTP requests (or set SLACK_APP_TOKEN for Socket Mode)",
            ));
        }
        let encryption_key = non_empty(&self.state_encryption_key);
        if let Some(key) = &encryption_key {
            crate::store::seal::Sealer::from_hex(key)
                .map_err(|e| ConfigError::new("STATE_ENCRYPTION_KEY", e.to_string()))?;
        }
        let allow_insecure = boolean("ALLOW_INSECURE_HTTP", &self.allow_insecure_http)?;
        let oauth = match (
            non_empty(&self.slack_client_id),
            non_empty(&self.slack_client_secret),
            non_empty(&self.public_url),
        ) {
            (None, None, None) => None,
            (Some(client_id), Some(client_secret), Some(public_url)) => {
                if encryption_key.is_none() {
                    return Err(ConfigError::new(
                        "STATE_ENCRYPTION_KEY",
                        "is required with SLACK_CLIENT_ID: installed workspaces' tokens are stored sealed with it",
                    ));
                }
                let public_url = http_url("PUBLIC_URL", &public_url, allow_insecure)?.trim_end_matches('/').to_owned();
                let allowed: Vec<String> = self
                    .slack_install_allowed
                    .iter()
                    .flat_map(|list| list.split(','))
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned)
                    .collect();
                if let Some(bad) = allowed.iter().find(|id| !(id.starts_with('T') || id.starts_with('E'))) {
                    return Err(ConfigError::new(
                        "SLACK_INSTALL_ALLOWED",
                        format!("'{bad}' is not a Slack workspace (T…) or organisation (E…) id"),
                    ));
                }
                Some(OAuthConfig { client_id, client_secret: client_secret.into(), public_url, allowed })
            }
            (client_id, client_secret, _) => {
                let missing = if client_id.is_none() {
                    "SLACK_CLIENT_ID"
                } else if client_secret.is_none() {
                    "SLACK_CLIENT_SECRET"
                } else {
                    "PUBLIC_URL"
                };
                return Err(ConfigError::new(
                    missing,
                    "is required for the install flow (SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and PUBLIC_URL go together)",
                ));
            }
        };
        let api_url = http_url("SLACK_API_URL", &self.slack_api_url, allow_insecure)?;
        let api_url = if api_url.ends_with('/') { api_url } else { format!("{api_url}/") };

        let shared = HelpdeskConfig {
            host: String::new(),
            token: String::new().into(),
            default_workspace: non_empty(&self.helpdesk_workspace),
            default_agent: non_empty(&self.helpdesk_agent),
            request_timeout: seconds("HELPDESK_TIMEOUT_SECONDS", &self.helpdesk_timeout_seconds)?,
            stream_idle_timeout: seconds("HELPDESK_STREAM_IDLE_SECONDS", &self.helpdesk_stream_idle_seconds)?,
            cache_ttl: seconds("HELPDESK_CACHE_SECONDS", &self.helpdesk_cache_seconds)?,
            force_streaming: boolean("HELPDESK_FORCE_STREAMING", &self.helpdesk_force_streaming)?,
        };
        let portals = match &self.portals_file {
            Some(path) => {
                if non_empty(&self.duplo_host).is_some() || non_empty(&self.duplo_token).is_some() {
                    return Err(ConfigError::new(
                        "PORTALS_FILE",
                        "is set together with DUPLO_HOST or DUPLO_TOKEN; list every portal in the file instead",
                    ));
                }
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::new("PORTALS_FILE", format!("cannot read {}: {e}", path.display())))?;
                portals_from(&text, &shared, allow_insecure, |var| std::env::var(var).ok())?
            }
            None => {
                let host = required(
                    "DUPLO_HOST",
                    &self.duplo_host,
                    "the HelpDesk portal URL, e.g. https://acme.duplocloud.net (or list portals in PORTALS_FILE)",
                )?;
                let host = normalise_host(&host, allow_insecure)?;
                let token = required("DUPLO_TOKEN", &self.duplo_token, "the HelpDesk bearer token")?;
                let helpdesk = HelpdeskConfig { host, token: token.into(), ..shared };
                vec![PortalConfig { name: DEFAULT_PORTAL.to_owned(), helpdesk }]
            }
        };
        let helpdesk = portals[0].helpdesk.clone();
        let portals = if self.portals_file.is_some() { portals } else { Vec::new() };

        let redis_url = non_empty(&self.redis_url);
        if let Some(url) = &redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://"))
        {
            return Err(ConfigError::new("REDIS_URL", "must start with redis://, rediss:// or unix://"));
        }
        let listen_addr: SocketAddr = self.listen_addr.parse().map_err(|_| {
            ConfigError::new("LISTEN_ADDR", format!("'{}' is not an address like 0.0.0.0:3000", self.listen_addr))
        })?;
        let admin_listen_addr = match non_empty(&self.admin_listen_addr) {
            None => None,
            Some(value) => Some(value.parse::<SocketAddr>().map_err(|_| {
                ConfigError::new("ADMIN_LISTEN_ADDR", format!("'{value}' is not an address like 127.0.0.1:9090"))
            })?),
        };
        if let Some(admin) = admin_listen_addr
            && admin == listen_addr
            && admin.port() != 0
        {
            return Err(ConfigError::new("ADMIN_LISTEN_ADDR", "must differ from LISTEN_ADDR"));
        }
        let ingress = IngressConfig {
            header_timeout: Duration::from_secs(positive(
                "HTTP_HEADER_TIMEOUT_SECONDS",
                &self.http_header_timeout_seconds,
            )? as u64),
            body_timeout: Duration::from_secs(
                positive("HTTP_BODY_TIMEOUT_SECONDS", &self.http_body_timeout_seconds)? as u64
            ),
            max_connections: positive("HTTP_MAX_CONNECTIONS", &self.http_max_connections)?,
        };
        let approvers = parse_approvers("APPROVERS", self.approvers.as_deref().unwrap_or(""))?;
        let access = AccessConfig {
            admins: parse_approvers("ADMINS", self.admins.as_deref().unwrap_or(""))?,
            admins_only: boolean("ADMINS_ONLY", &self.admins_only)?,
            requester_may_approve: boolean("REQUESTER_MAY_APPROVE", &self.requester_may_approve)?,
            allowed_workspaces: names(self.allowed_workspaces.as_deref()),
            allowed_agents: names(self.allowed_agents.as_deref()),
        };
        if access.admins_only && access.admins.is_empty() {
            return Err(ConfigError::new("ADMINS_ONLY", "is true but ADMINS is empty: nobody could change settings"));
        }
        let destructive_patterns = parse_patterns("DESTRUCTIVE_PATTERNS", &self.destructive_patterns)?;
        let command_rules = CommandRules {
            allow: parse_patterns("COMMAND_ALLOW", &self.command_allow)?,
            block: parse_patterns("COMMAND_BLOCK", &self.command_block)?,
        };
        let streaming = match self.slack_streaming.trim().to_ascii_lowercase().as_str() {
            "auto" => Streaming::Auto,
            "native" => Streaming::Native,
            "edits" => Streaming::Edits,
            other => {
                return Err(ConfigError::new("SLACK_STREAMING", format!("'{other}' is not auto, native or edits")));
            }
        };
        let log_format = match self.log_format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::new("LOG_FORMAT", format!("'{other}' is neither text nor json")));
            }
        };

        Ok(Config {
            slack: SlackConfig {
                bot_token: bot_token.map(Into::into),
                signing_secret: signing_secret.map(Into::into),
                app_token: app_token.map(Into::into),
                api_url,
                updates_per_minute: u32::try_from(positive(
                    "SLACK_UPDATES_PER_MINUTE",
                    &self.slack_updates_per_minute,
                )?)
                .map_err(|_| ConfigError::new("SLACK_UPDATES_PER_MINUTE", "is too large"))?,
                streaming,
                appends_per_minute: u32::try_from(positive(
                    "SLACK_APPENDS_PER_MINUTE",
                    &self.slack_appends_per_minute,
                )?)
                .map_err(|_| ConfigError::new("SLACK_APPENDS_PER_MINUTE", "is too large"))?,
                timeout: Duration::from_secs(positive("SLACK_TIMEOUT_SECONDS", &self.slack_timeout_seconds)? as u64),
                file_inline_max_bytes: positive("FILE_INLINE_MAX_BYTES", &self.file_inline_max_bytes)?,
                oauth,
            },
            helpdesk,
            portals,
            store: StoreConfig {
                redis_url: redis_url.map(Into::into),
                key_prefix: self.redis_key_prefix.clone(),
                state_dir: self.state_dir.clone(),
                encryption_key: encryption_key.map(Into::into),
            },
            listen_addr,
            admin_listen_addr,
            ingress,
            approvers,
            access,
            destructive_patterns,
            command_rules,
            approval_ttl: duration("APPROVAL_TTL", &self.approval_ttl)?,
            two_person: TwoPerson {
                patterns: match &self.two_person_patterns {
                    Some(value) if !value.trim().is_empty() => Some(parse_patterns("TWO_PERSON_PATTERNS", value)?),
                    _ => None,
                },
                approvals: match self.approvals_required.trim().parse::<u32>() {
                    Ok(n @ 1..=5) => n,
                    _ => {
                        let problem = format!("'{}' is not a number of approvals from 1 to 5", self.approvals_required);
                        return Err(ConfigError::new("APPROVALS_REQUIRED", problem));
                    }
                },
            },
            log_format,
            shutdown_grace: seconds("SHUTDOWN_GRACE_SECONDS", &self.shutdown_grace_seconds)?,
            dispatch: DispatchConfig {
                inbox_max_items: positive("INBOX_MAX_ITEMS", &self.inbox_max_items)? as u64,
                lease: match seconds("LEASE_SECONDS", &self.lease_seconds)? {
                    lease if lease >= Duration::from_secs(3) => lease,
                    _ => return Err(ConfigError::new("LEASE_SECONDS", "must be at least 3 seconds")),
                },
                workers: positive("DISPATCH_WORKERS", &self.dispatch_workers)?,
            },
        })
    }
}

impl Config {
    /// Whether events arrive over Socket Mode rather than HTTP.
    pub fn socket_mode(&self) -> bool {
        self.slack.app_token.is_some()
    }
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

fn required(var: &'static str, value: &Option<String>, what: &str) -> Result<String, ConfigError> {
    non_empty(value).ok_or_else(|| ConfigError::new(var, format!("is required: {what}")))
}

/// A base URL of `http(s)://host…`. Plain `http://` would carry the bot token or the
/// HelpDesk token in clear, so it is accepted only for a loopback host (tests, a local
/// proxy) or when `ALLOW_INSECURE_HTTP` says so.
fn http_url(var: &'static str, value: &str, allow_insecure: bool) -> Result<String, ConfigError> {
    let value = value.trim();
    let (secure, rest) = match (value.strip_prefix("https://"), value.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => {
            return Err(ConfigError::new(var, format!("'{value}' must start with https:// (or http:// on loopback)")));
        }
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(ConfigError::new(var, format!("'{value}' has no host")));
    }
    if !secure && !allow_insecure && !is_loopback_url(value) {
        return Err(ConfigError::new(
            var,
            format!(
                "'{value}' must use https:// (over http:// the token travels in clear); http:// is accepted \
                 only for loopback hosts, or set ALLOW_INSECURE_HTTP=true to allow it anyway"
            ),
        ));
    }
    Ok(value.to_owned())
}

/// Whether a URL's host is loopback: `localhost`, `127.0.0.0/8` or `::1`. The host is
/// taken by the same URL parser the HTTP clients use, so `http://127.0.0.1@evil.example`
/// or `http://127.0.0.1.evil.example` is not mistaken for loopback.
fn is_loopback_url(value: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(value) else {
        return false;
    };
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => {
            let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
            bare.parse::<std::net::IpAddr>().is_ok_and(|ip| match ip {
                std::net::IpAddr::V4(v4) => v4.is_loopback(),
                std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
            })
        }
        None => false,
    }
}

/// Reduces a portal URL to `scheme://host[:port]`, as duploctl does: users paste the URL
/// of whatever page they were on.
fn normalise_host(value: &str, allow_insecure: bool) -> Result<String, ConfigError> {
    let url = http_url("DUPLO_HOST", value, allow_insecure)?;
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", &url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return Err(ConfigError::new("DUPLO_HOST", format!("'{value}' has no valid host")));
    }
    Ok(format!("{scheme}://{authority}"))
}

fn seconds(var: &'static str, value: &str) -> Result<Duration, ConfigError> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| ConfigError::new(var, format!("'{value}' is not a whole number of seconds")))
}

/// A positive duration: a whole number with an optional unit, `s`, `m`, `h` or `d`
/// (seconds when none).
fn duration(var: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let value = value.trim();
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let unit = match unit.trim() {
        "" | "s" => Some(1),
        "m" => Some(60),
        "h" => Some(60 * 60),
        "d" => Some(24 * 60 * 60),
        _ => None,
    };
    match (number.parse::<u64>(), unit) {
        (Ok(n), Some(unit)) if n > 0 => Ok(Duration::from_secs(n.saturating_mul(unit))),
        _ => Err(ConfigError::new(var, format!("'{value}' is not a duration like 24h, 90m or 3600s"))),
    }
}

fn boolean(var: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" | "" => Ok(false),
        _ => Err(ConfigError::new(var, format!("'{value}' is neither true nor false"))),
    }
}

fn positive(var: &'static str, value: &str) -> Result<usize, ConfigError> {
    match value.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError::new(var, format!("'{value}' is not a positive whole number"))),
    }
}

/// `;`-separated regular expressions, each of which must compile (one that does not is
/// named, with `var`).
fn parse_patterns(var: &'static str, value: &str) -> Result<Vec<String>, ConfigError> {
    let patterns = rules::split(value);
    rules::check(&patterns).map_err(|e| ConfigError::new(var, e.to_string()))?;
    Ok(patterns)
}

/// The two-person rule: which commands need more than one approval, and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwoPerson {
    /// `TWO_PERSON_PATTERNS`; `None`: the destructive patterns.
    pub patterns: Option<Vec<String>>,
    /// `APPROVALS_REQUIRED`: approvals from different people such a command needs.
    pub approvals: u32,
}

impl Default for TwoPerson {
    fn default() -> Self {
        Self { patterns: None, approvals: 2 }
    }
}

/// The command policy's rules from the environment: `COMMAND_ALLOW` and `COMMAND_BLOCK`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandRules {
    /// Allow rules.
    pub allow: Vec<String>,
    /// Block rules.
    pub block: Vec<String>,
}

/// A comma-separated list of names or ids, trimmed, empty entries dropped.
fn names(value: Option<&str>) -> Vec<String> {
    value.unwrap_or_default().split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect()
}

/// Approvers (and admins) are Slack user ids (`U…`, `W…`) or user-group ids (`S…`), separated
/// by commas or spaces; anything else is almost certainly a name pasted by mistake.
fn parse_approvers(var: &'static str, value: &str) -> Result<Vec<Approver>, ConfigError> {
    value
        .split([',', ' ', '\n', '\t'])
        .filter(|s| !s.is_empty())
        .map(|id| {
            Approver::parse(id).ok_or_else(|| {
                ConfigError::new(var, format!("'{id}' is not a Slack user id (U…/W…) or user-group id (S…)"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> HelpdeskConfig {
        HelpdeskConfig {
            host: String::new(),
            token: String::new().into(),
            default_workspace: Some("env-workspace".to_owned()),
            default_agent: None,
            request_timeout: Duration::from_secs(5),
            stream_idle_timeout: Duration::from_secs(5),
            cache_ttl: Duration::from_secs(60),
            force_streaming: false,
        }
    }

    fn portals(text: &str) -> Result<Vec<PortalConfig>, ConfigError> {
        let tokens = |var: &str| match var {
            "PROD_TOKEN" => Some("tok-prod".to_owned()),
            "QA_TOKEN" => Some("tok-qa".to_owned()),
            _ => None,
        };
        portals_from(text, &shared(), false, tokens)
    }

    #[test]
    fn portal_files_list_portals_the_default_first_and_name_the_bad_entry() {
        let listed = portals(
            r#"
            [[portal]]
            name = "qa"
            host = "https://qa.duplocloud.net/"
            token_env = "QA_TOKEN"

            [[portal]]
            name = "prod"
            host = "https://prod.duplocloud.net"
            token_env = "PROD_TOKEN"
            workspace = "devops"
            agent = "k8s"
            default = true
            "#,
        )
        .unwrap();
        let names: Vec<&str> = listed.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["prod", "qa"], "the default first");
        assert_eq!(listed[0].helpdesk.host, "https://prod.duplocloud.net");
        assert_eq!(secrecy::ExposeSecret::expose_secret(&listed[0].helpdesk.token), "tok-prod");
        assert_eq!(listed[0].helpdesk.default_agent.as_deref(), Some("k8s"));
        assert_eq!(listed[1].helpdesk.host, "https://qa.duplocloud.net");
        assert_eq!(listed[1].helpdesk.default_workspace, None, "each portal its own defaults");

        let entry = |name: &str, host: &str, token: &str| {
            format!("[[portal]]\nname = \"{name}\"\nhost = \"{host}\"\ntoken_env = \"{token}\"\n")
        };
        let refused = [
            (entry("prod", "https://p.example", "NOPE"), "portal 'prod': token_env NOPE is not set"),
            (
                entry("prod", "https://p.example", "PROD_TOKEN") + &entry("Prod", "https://q.example", "QA_TOKEN"),
                "portal 'Prod' is listed twice",
            ),
            (
                entry("qa", "ftp://q.example", "QA_TOKEN"),
                "portal 'qa': host 'ftp://q.example' must start with https://",
            ),
            (entry("qa", "http://q.example", "QA_TOKEN"), "portal 'qa': host 'http://q.example' must use https://"),
            (
                entry("two words", "https://q.example", "QA_TOKEN"),
                "portal name 'two words' must be one word of letters, digits, '-', '_' or '.'",
            ),
            (
                entry("qa/eu", "https://q.example", "QA_TOKEN"),
                "portal name 'qa/eu' must be one word of letters, digits, '-', '_' or '.'",
            ),
            (String::new(), "lists no [[portal]]"),
            (
                entry("prod", "https://p.example", "PROD_TOKEN") + &entry("qa", "https://P.example:443", "QA_TOKEN"),
                "portal 'qa': host https://P.example:443 is also portal 'prod''s",
            ),
            (
                entry("qa", "https://q.example:99999", "QA_TOKEN"),
                "portal 'qa': host 'https://q.example:99999' is not a valid URL",
            ),
            (entry("agent", "https://q.example", "QA_TOKEN"), "portal name 'agent' is a word of /helpdesk config"),
            (
                entry("a", "https://a.example", "QA_TOKEN").replace("[[portal]]", "[[portal]]\ndefault = true")
                    + &entry("b", "https://b.example", "QA_TOKEN").replace("[[portal]]", "[[portal]]\ndefault = true"),
                "marks more than one portal as the default",
            ),
            ("[[portal]]\nname = \"x\"\n".to_owned(), "is not valid: missing field `host`"),
            (
                entry("qa", "https://q.example", "QA_TOKEN") + "colour = \"red\"\n",
                "is not valid: unknown field `colour`",
            ),
        ];
        for (text, problem) in refused {
            let err = portals(&text).expect_err(&text);
            assert_eq!(err.var, "PORTALS_FILE");
            assert!(err.problem.starts_with(problem), "{:?} for {text}", err.problem);
        }
    }

    #[test]
    fn durations_take_a_unit_or_mean_seconds() {
        let hours = |h: u64| Duration::from_secs(h * 3600);
        let ok = |value: &str| duration("APPROVAL_TTL", value).ok();
        assert_eq!(ok("24h"), Some(hours(24)));
        assert_eq!(ok(" 90m "), Some(Duration::from_secs(5400)));
        assert_eq!(ok("2d"), Some(hours(48)));
        assert_eq!(ok("3600"), Some(hours(1)));
        assert_eq!(ok("45s"), Some(Duration::from_secs(45)));
        for bad in ["", "0h", "h", "1.5h", "10 weeks", "-1s"] {
            let err = duration("APPROVAL_TTL", bad).unwrap_err();
            assert!(err.to_string().contains("APPROVAL_TTL"), "{bad}: {err}");
        }
    }

    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["helpdesk-bridge"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("arguments parse")
    }

    const BASE: [&str; 6] = [
        "--slack-bot-token=xoxb-1",
        "--slack-signing-secret=s",
        "--duplo-host=https://acme.duplocloud.net/app/ai?x=1",
        "--duplo-token=t",
        "--listen-addr=127.0.0.1:0",
        "--state-dir=/tmp/x",
    ];

    #[test]
    fn valid_configuration_is_typed_and_normalised() {
        let config = cli(&BASE).validate().expect("valid");
        assert_eq!(config.helpdesk.host, "https://acme.duplocloud.net");
        assert_eq!(config.slack.api_url, "https://slack.com/api/");
        assert!(!config.socket_mode());
        assert_eq!(config.shutdown_grace, Duration::from_secs(20));
        assert_eq!((config.dispatch.inbox_max_items, config.dispatch.lease), (1_000_000, Duration::from_secs(30)));
        assert!(config.access.requester_may_approve && !config.access.admins_only);
        assert!(config.access.admins.is_empty() && config.access.allowed_workspaces.is_empty());
    }

    #[test]
    fn access_settings_parse() {
        let mut args = BASE.to_vec();
        args.extend([
            "--admins=U1A, S2B",
            "--admins-only=true",
            "--requester-may-approve=false",
            "--allowed-workspaces=devops, ws-2 ,",
            "--allowed-agents=k8s-agent",
        ]);
        let access = cli(&args).validate().expect("valid").access;
        assert_eq!(access.admins, ["U1A", "S2B"]);
        assert!(access.admins_only && !access.requester_may_approve);
        assert_eq!(access.allowed_workspaces, ["devops", "ws-2"]);
        assert_eq!(access.allowed_agents, ["k8s-agent"]);
    }

    #[test]
    fn the_install_flow_takes_its_three_settings_and_a_key() {
        let key = format!("--state-encryption-key={}", "ab".repeat(32));
        let mut args = BASE.to_vec();
        args.extend(["--slack-client-id=1.2", "--slack-client-secret=s", "--public-url=https://b.example/", &key]);
        let config = cli(&args).validate().expect("valid");
        let oauth = config.slack.oauth.expect("the install flow");
        assert_eq!(oauth.redirect_uri(), "https://b.example/slack/oauth_redirect");
        assert!(config.store.encryption_key.is_some());
        assert!(!format!("{:?}", cli(&args)).contains(&"ab".repeat(32)), "the key is not in the debug output");
        assert!(cli(&BASE).validate().expect("valid").slack.oauth.is_none());
        // With the install flow the bridge's own token is optional (not in Socket Mode).
        let without: Vec<&str> = args.iter().copied().filter(|a| !a.starts_with("--slack-bot-token")).collect();
        assert!(cli(&without).validate().expect("valid").slack.bot_token.is_none());
        let mut socket = without.clone();
        socket.push("--slack-app-token=xapp-1");
        assert_eq!(cli(&socket).validate().expect_err("needs a token").var, "SLACK_BOT_TOKEN");
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&[&str], &str)] = &[
            (&["--slack-bot-token=xoxp-1"], "SLACK_BOT_TOKEN"),
            (&["--slack-signing-secret="], "SLACK_SIGNING_SECRET"),
            (&["--slack-app-token=xoxb-nope"], "SLACK_APP_TOKEN"),
            (&["--duplo-host=acme.duplocloud.net"], "DUPLO_HOST"),
            (&["--redis-url=localhost:6379"], "REDIS_URL"),
            (&["--listen-addr=3000"], "LISTEN_ADDR"),
            (&["--approvers=U123,alice"], "APPROVERS"),
            (&["--admins=ops-team"], "ADMINS"),
            (&["--admins-only=true"], "ADMINS_ONLY"),
            (&["--requester-may-approve=maybe"], "REQUESTER_MAY_APPROVE"),
            (&["--log-format=xml"], "LOG_FORMAT"),
            (&["--dispatch-workers=0"], "DISPATCH_WORKERS"),
            (&["--inbox-max-items=0"], "INBOX_MAX_ITEMS"),
            (&["--lease-seconds=1"], "LEASE_SECONDS"),
            (&["--state-encryption-key=abcd"], "STATE_ENCRYPTION_KEY"),
            (&["--slack-client-id=1.2"], "SLACK_CLIENT_SECRET"),
            (&["--slack-client-id=1.2", "--slack-client-secret=s"], "PUBLIC_URL"),
            (&["--slack-client-secret=s", "--public-url=https://b.example"], "SLACK_CLIENT_ID"),
            (
                &["--slack-client-id=1.2", "--slack-client-secret=s", "--public-url=https://b.example"],
                "STATE_ENCRYPTION_KEY",
            ),
            (
                &[
                    "--slack-client-id=1.2",
                    "--slack-client-secret=s",
                    "--public-url=https://b.example",
                    "--state-encryption-key=abababababababababababababababababababababababababababababababab",
                    "--slack-install-allowed=T1, U2",
                ],
                "SLACK_INSTALL_ALLOWED",
            ),
        ];
        for (overrides, var) in cases {
            let flag = |a: &&str| a.split('=').next().unwrap_or_default().to_owned();
            let overridden: Vec<String> = overrides.iter().map(flag).collect();
            let mut args: Vec<&str> = BASE.iter().copied().filter(|a| !overridden.contains(&flag(a))).collect();
            args.extend_from_slice(overrides);
            let err = cli(&args).validate().expect_err(var);
            assert_eq!(err.var, *var, "{overrides:?}");
        }
    }

    #[test]
    fn socket_mode_needs_no_signing_secret() {
        let mut args: Vec<&str> = BASE.iter().copied().filter(|a| !a.starts_with("--slack-signing")).collect();
        args.push("--slack-app-token=xapp-1");
        let config = cli(&args).validate().expect("valid");
        assert!(config.socket_mode());
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let config = cli(&[
            "--slack-bot-token=xoxb-SECRET1",
            "--slack-signing-secret=SECRET2",
            "--duplo-host=https://h",
            "--duplo-token=SECRET3",
            "--redis-url=redis://:SECRET4@h",
        ])
        .validate()
        .expect("valid");
        let debug = format!("{config:?}");
        for secret in ["SECRET1", "SECRET2", "SECRET3", "SECRET4"] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
    }

    #[test]
    fn the_debug_of_the_command_line_shows_no_secret() {
        let cli = cli(&[
            "--slack-bot-token=xoxb-SECRET1",
            "--slack-signing-secret=SECRET2",
            "--slack-app-token=xapp-SECRET3",
            "--duplo-host=https://acme.duplocloud.net",
            "--duplo-token=SECRET4",
            "--redis-url=redis://:SECRET5@h",
        ]);
        let debug = format!("{cli:?}");
        for secret in ["SECRET1", "SECRET2", "SECRET3", "SECRET4", "SECRET5"] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
        assert!(debug.contains(r#"slack_bot_token: Some("[redacted]")"#), "{debug}");
        assert!(
            debug.contains(r#"duplo_host: Some("https://acme.duplocloud.net")"#),
            "what is not secret is shown: {debug}"
        );
        let pretty = format!("{cli:#?}");
        assert!(!pretty.contains("SECRET"), "{pretty}");
    }

    /// `DUPLO_HOST` and `SLACK_API_URL` with the given value and `ALLOW_INSECURE_HTTP`.
    fn with_urls(var: &str, value: &str, allow: Option<&str>) -> Result<Config, ConfigError> {
        let flag = if var == "DUPLO_HOST" { "--duplo-host" } else { "--slack-api-url" };
        let arg = format!("{flag}={value}");
        let mut args: Vec<String> = BASE.iter().filter(|a| !a.starts_with(flag)).map(|a| (*a).to_owned()).collect();
        args.push(arg);
        if let Some(allow) = allow {
            args.push(format!("--allow-insecure-http={allow}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&args).validate()
    }

    #[test]
    fn plain_http_is_refused_except_on_loopback_or_when_allowed() {
        for var in ["DUPLO_HOST", "SLACK_API_URL"] {
            for insecure in [
                "http://acme.duplocloud.net",
                "http://10.0.0.7:8080/",
                "http://0.0.0.0:3000",
                "http://127.0.0.1.evil.example/",
                "http://127.0.0.1@evil.example/",
                "http://localhost.evil.example",
                "http://[::2]/",
            ] {
                let err = with_urls(var, insecure, None).expect_err(insecure);
                assert_eq!(err.var, var, "{insecure}");
                assert!(err.problem.contains("ALLOW_INSECURE_HTTP=true"), "says how to allow it: {err}");
                assert!(with_urls(var, insecure, Some("false")).is_err(), "{insecure}");
                assert!(with_urls(var, insecure, Some("true")).is_ok(), "allowed: {insecure}");
            }
            for loopback in [
                "http://127.0.0.1:9",
                "http://127.8.9.10/api/",
                "http://localhost:3000",
                "http://LOCALHOST",
                "http://[::1]:8080/",
                "http://[::ffff:127.0.0.1]/",
                "https://acme.duplocloud.net",
            ] {
                assert!(with_urls(var, loopback, None).is_ok(), "{var}={loopback}");
            }
        }
        let err = with_urls("DUPLO_HOST", "http://h", Some("maybe")).expect_err("not a boolean");
        assert_eq!(err.var, "ALLOW_INSECURE_HTTP");
    }

    #[test]
    fn listener_settings_default_to_the_production_limits() {
        let config = cli(&BASE).validate().expect("valid");
        assert_eq!(config.admin_listen_addr, None);
        assert_eq!(
            config.ingress,
            IngressConfig {
                header_timeout: Duration::from_secs(10),
                body_timeout: Duration::from_secs(10),
                max_connections: 1024
            }
        );
        assert_eq!(config.ingress, IngressConfig::default());

        let mut args = BASE.to_vec();
        args.extend([
            "--admin-listen-addr=127.0.0.1:9090",
            "--http-header-timeout-seconds=3",
            "--http-body-timeout-seconds=4",
            "--http-max-connections=5",
        ]);
        let config = cli(&args).validate().expect("valid");
        assert_eq!(config.admin_listen_addr, Some("127.0.0.1:9090".parse().unwrap()));
        assert_eq!(
            config.ingress,
            IngressConfig {
                header_timeout: Duration::from_secs(3),
                body_timeout: Duration::from_secs(4),
                max_connections: 5
            }
        );

        let cases: &[(&str, &str)] = &[
            ("--admin-listen-addr=metrics", "ADMIN_LISTEN_ADDR"),
            ("--http-header-timeout-seconds=0", "HTTP_HEADER_TIMEOUT_SECONDS"),
            ("--http-body-timeout-seconds=soon", "HTTP_BODY_TIMEOUT_SECONDS"),
            ("--http-max-connections=0", "HTTP_MAX_CONNECTIONS"),
        ];
        for (arg, var) in cases {
            let mut args = BASE.to_vec();
            args.push(arg);
            assert_eq!(cli(&args).validate().expect_err(arg).var, *var);
        }
        let mut same = BASE.iter().copied().filter(|a| !a.starts_with("--listen-addr")).collect::<Vec<_>>();
        same.extend(["--listen-addr=0.0.0.0:3000", "--admin-listen-addr=0.0.0.0:3000"]);
        assert_eq!(cli(&same).validate().expect_err("same address").var, "ADMIN_LISTEN_ADDR");
    }

    #[test]
    fn approvers_accept_users_and_groups() {
        assert_eq!(parse_approvers("APPROVERS", "U1AB, S9XY W2CD").unwrap(), ["U1AB", "S9XY", "W2CD"]);
    }
}
