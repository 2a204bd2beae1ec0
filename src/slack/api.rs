//! Slack egress: every Web API call goes through here, on slack-morphism's client.
//!
//! One hyper client with slack-morphism's rate control (retries on 429 after
//! `Retry-After`), pointed at `SLACK_API_URL`. Every answer's `ok` is checked by the
//! client; failures become a [`SlackError`] and are counted by method and error code.
//!
//! The calls the bridge makes in bulk draw from [`Budget`]s first, so they stay within
//! Slack's published limits instead of provoking 429s: message edits and reactions from
//! their workspace's Tier 3 budgets, posts from their channel's one-a-second budget. On a
//! Redis store the budgets are shared by every replica. These calls go through a second
//! client without slack-morphism's retries: the bridge retries them itself, so that each
//! 429's `Retry-After` first holds back the shared budget, and with it every replica.
//! slack-morphism's own throttle cannot do this: without a team on the token it paces
//! `chat.postMessage` to one a second for the whole app, all channels together, and no
//! tier at all.
//!
//! Messages are sent as the JSON [`super::blocks`] rendered, through slack-morphism's
//! generic calls, so a rendering reaches Slack byte for byte as it was tested.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use slack_morphism::{errors::SlackClientError, prelude::*};

use super::{
    kit::{Message, Upload},
    mrkdwn,
    pace::{Budget, Turnstile},
    stream::StreamPart,
};
use crate::{
    config::{SlackConfig, Streaming},
    ids::{ChannelId, MessageTs, TeamId, UserId},
    model::Suggestion,
    slack::identity::BotIdentity,
    store::Store,
    telemetry::Metrics,
};

/// How long what `users.info` said about a person (name, role, organisation) and a user
/// group's members are remembered. Short, because roles decide who may approve commands: a
/// demoted admin or a guest's changed account takes effect within this time.
const NAME_TTL: Duration = Duration::from_secs(5 * 60);
/// A burst of edits a workspace may make before the per-minute rate applies.
const UPDATE_BURST: u32 = 5;
/// Edits a progress edit leaves in the budget for edits that finish something.
const PROGRESS_RESERVE: u32 = 2;
/// `reactions.add` calls a workspace may make a minute (Tier 3), and their burst.
const REACTIONS_PER_MINUTE: u32 = 50;
const REACTION_BURST: u32 = 5;
/// Posts a channel may take a minute ("one message per second per channel"), and the
/// short burst Slack allows.
const POSTS_PER_MINUTE: u32 = 60;
const POST_BURST: u32 = 3;

/// `chat.startStream` and `chat.stopStream` calls a workspace may make a minute (Tier 2),
/// and their burst.
const STREAM_ENDS_PER_MINUTE: u32 = 20;
const STREAM_END_BURST: u32 = 5;
/// `chat.appendStream` calls a workspace may make at once (Tier 4).
const APPEND_BURST: u32 = 10;

/// How often a paced call turned away with 429 is tried again, each time after the hold.
const PACED_RETRIES: u32 = 3;
/// How long a 429 without `Retry-After` holds a budget back.
const RATE_LIMITED_HOLD: Duration = Duration::from_secs(30);

/// The budgets a reply's progress updates draw from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Progress {
    /// `chat.update` of a placeholder.
    Edit,
    /// `chat.appendStream` of a streamed message.
    Append,
}

/// Whether a paced call's first draw from its budget was made already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drawn {
    Yes,
    No,
}

/// The slack-morphism client type used everywhere.
pub type SlackHttpClient = SlackClient<SlackClientHyperHttpsConnector>;

/// A failed Slack Web API call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SlackError {
    /// Slack answered `ok: false`.
    #[error("Slack answered {method} with {code}")]
    Api {
        /// The method called.
        method: &'static str,
        /// Slack's error code, e.g. `channel_not_found`.
        code: String,
    },
    /// Slack kept answering 429 past the retry budget.
    #[error("Slack rate-limited {method}")]
    RateLimited {
        /// The method called.
        method: &'static str,
        /// What Slack asked for.
        retry_after: Option<Duration>,
    },
    /// Slack did not answer within `SLACK_TIMEOUT_SECONDS` (retries included).
    #[error("Slack did not answer {method} in time")]
    Timeout {
        /// The method called.
        method: &'static str,
    },
    /// Slack could not be reached or answered garbage.
    #[error("could not call Slack {method}: {detail}")]
    Transport {
        /// The method called.
        method: &'static str,
        /// What went wrong.
        detail: String,
    },
}

impl SlackError {
    fn from_client(method: &'static str, err: SlackClientError) -> Self {
        match err {
            SlackClientError::ApiError(e) => Self::Api { method, code: e.code },
            SlackClientError::RateLimitError(e) => Self::RateLimited { method, retry_after: e.retry_after },
            other => Self::Transport { method, detail: other.to_string() },
        }
    }

    /// Slack's error code, when Slack answered `ok: false`.
    pub fn api_code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether Slack refused because the bot is not in the channel (or cannot see it).
    pub fn not_a_member(&self) -> bool {
        matches!(self.api_code(), Some("not_in_channel" | "channel_not_found"))
    }

    /// Whether Slack refuses native streaming to this token, app or channel: the reply is
    /// shown with edits instead.
    pub fn refuses_streaming(&self) -> bool {
        matches!(
            self.api_code(),
            Some(
                "unknown_method"
                    | "not_allowed_token_type"
                    | "method_not_supported_for_channel_type"
                    | "missing_scope"
                    | "feature_not_enabled"
                    | "not_allowed"
            )
        )
    }

    /// Whether Slack ended a streamed message: past its lifetime or its length, or no
    /// longer streaming. The reply goes on in a new message.
    pub fn ended_stream(&self) -> bool {
        matches!(self.api_code(), Some("message_not_in_streaming_state" | "stream_expired"))
    }

    /// Whether Slack found a streamed message full: it is still streaming, and is finished
    /// before the reply goes on in a new one.
    pub fn message_full(&self) -> bool {
        self.api_code() == Some("msg_too_long")
    }

    /// Whether a reader stopped the streamed message in Slack.
    pub fn stopped_by_user(&self) -> bool {
        self.api_code() == Some("stopped_by_user")
    }

    /// A short label for metrics: the error code, `ratelimited`, `timeout` or `transport`.
    pub fn code(&self) -> &str {
        match self {
            Self::Api { code, .. } => code,
            Self::RateLimited { .. } => "ratelimited",
            Self::Timeout { .. } => "timeout",
            Self::Transport { .. } => "transport",
        }
    }
}

/// The Slack Web API, authenticated as the bot.
#[derive(Clone)]
pub struct SlackApi {
    client: Arc<SlackHttpClient>,
    /// For the calls paced by [`Budget`]s: without slack-morphism's own 429 retries, so that
    /// every 429 reaches the shared budget (and holds back every replica) before the retry.
    paced: Arc<SlackHttpClient>,
    bot_token: SlackApiToken,
    app_token: Option<SlackApiToken>,
    metrics: Metrics,
    /// How long one call may take, slack-morphism's 429 retries included.
    timeout: Duration,
    edits: Arc<Budget<TeamId>>,
    reactions: Arc<Budget<TeamId>>,
    posts: Arc<Budget<ChannelId>>,
    appends: Arc<Budget<TeamId>>,
    stream_starts: Arc<Budget<TeamId>>,
    stream_stops: Arc<Budget<TeamId>>,
    /// Where concurrent replies queue for their progress updates, per budget and workspace.
    progress: Arc<Turnstile<(Progress, TeamId)>>,
    streaming: Streaming,
    /// Workspaces (`T…`) and channels (`T…/C…`) where Slack refused native streaming (in
    /// `auto`).
    no_streaming: Arc<Mutex<std::collections::HashSet<String>>>,
    /// Who asked (the installation's owner; empty for `SLACK_BOT_TOKEN`): what Slack says
    /// about a person (a stranger or not, an e-mail) depends on whose token asks, so the
    /// answers are remembered per asker.
    asker: Arc<str>,
    /// The workspace whose budgets an installation's calls draw on (its own, whatever
    /// workspace hosts the channel); `None` for `SLACK_BOT_TOKEN`, whose calls draw on the
    /// budgets of the workspace they name.
    budget_team: Option<TeamId>,
    people: Remembered<(Arc<str>, UserId), Person>,
    groups: Remembered<(Arc<str>, String), Vec<UserId>>,
    /// Downloads of shared files (slack-morphism reads JSON answers, not file bytes), with
    /// the bot token, only from Slack itself ([`SlackApi::download`]).
    files: reqwest::Client,
    /// The Web API's origin: a file there (a local stand-in) may be read too.
    api_origin: Option<reqwest::Url>,
    /// The Web API's base URL, without a trailing slash.
    api_url: String,
    /// Bytes of a shared file read at most (`FILE_INLINE_MAX_BYTES`).
    file_max: usize,
}

/// A shared file, downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Download {
    /// Its bytes, all of them.
    Whole(Vec<u8>),
    /// It is larger than the bridge reads.
    TooLarge,
}

/// Remembered answers, by key, with the time they were fetched.
type Remembered<K, V> = Arc<Mutex<HashMap<K, (V, Instant)>>>;

/// A remembered answer younger than [`NAME_TTL`]. The lock is held only for the lookup.
fn recall<K: std::hash::Hash + Eq, V: Clone>(cache: &Remembered<K, V>, key: &K) -> Option<V> {
    let cache = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    cache.get(key).filter(|(_, at)| at.elapsed() < NAME_TTL).map(|(value, _)| value.clone())
}

/// Remembers an answer, forgetting the expired ones.
fn remember<K: std::hash::Hash + Eq, V>(cache: &Remembered<K, V>, key: K, value: V) {
    let mut cache = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    cache.retain(|_, (_, at)| at.elapsed() < NAME_TTL);
    cache.insert(key, (value, Instant::now()));
}

impl std::fmt::Debug for SlackApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlackApi")
    }
}

impl SlackApi {
    /// Builds the client, with its budgets in `store` when that is Redis (shared by the
    /// replicas) and in this process otherwise. Fails only if the system's root
    /// certificates cannot be loaded.
    pub fn new(config: &SlackConfig, metrics: Metrics, store: Option<Store>) -> Result<Self, SlackError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| SlackError::Transport { method: "init", detail: format!("no root certificates: {e}") })?
            // SLACK_API_URL may be plain http for a local stand-in; Slack itself is https.
            .https_or_http()
            .enable_http1()
            .build();
        let rate_control =
            SlackApiRateControlConfig::new().with_max_retries(3).with_max_delay_timeout(Duration::from_secs(30));
        // slack-morphism joins the base and the method with its own slash.
        let base = config.api_url.trim_end_matches('/');
        let api_origin = reqwest::Url::parse(base).ok();
        let files = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(config.timeout)
            // A download Slack sends elsewhere is not the file (a sign-in page without
            // `files:read`): not followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SlackError::Transport { method: "init", detail: format!("file client: {e}") })?;
        let plain = SlackClientHyperConnector::from(https).with_slack_api_url(base);
        let connector = plain.clone().with_rate_control(rate_control);
        Ok(Self {
            client: Arc::new(SlackClient::new(connector)),
            paced: Arc::new(SlackClient::new(plain)),
            // Without SLACK_BOT_TOKEN every call goes out as an installation (`as_bot`); an
            // empty token answers `not_authed` to anything that does not.
            bot_token: SlackApiToken::new(
                config.bot_token.as_ref().map(|t| t.expose_secret().to_owned()).unwrap_or_default().into(),
            ),
            app_token: config.app_token.as_ref().map(|t| SlackApiToken::new(t.expose_secret().to_owned().into())),
            metrics,
            timeout: config.timeout,
            edits: Arc::new(Budget::new("edits", config.updates_per_minute, UPDATE_BURST, store.clone())),
            reactions: Arc::new(Budget::new("reactions", REACTIONS_PER_MINUTE, REACTION_BURST, store.clone())),
            posts: Arc::new(Budget::new("posts", POSTS_PER_MINUTE, POST_BURST, store.clone())),
            appends: Arc::new(Budget::new("appends", config.appends_per_minute, APPEND_BURST, store.clone())),
            stream_starts: Arc::new(Budget::new(
                "stream-starts",
                STREAM_ENDS_PER_MINUTE,
                STREAM_END_BURST,
                store.clone(),
            )),
            stream_stops: Arc::new(Budget::new("stream-stops", STREAM_ENDS_PER_MINUTE, STREAM_END_BURST, store)),
            progress: Arc::new(Turnstile::default()),
            streaming: config.streaming,
            no_streaming: Arc::new(Mutex::new(std::collections::HashSet::new())),
            asker: Arc::from(""),
            budget_team: None,
            people: Arc::new(Mutex::new(HashMap::new())),
            groups: Arc::new(Mutex::new(HashMap::new())),
            files,
            api_origin,
            api_url: base.to_owned(),
            file_max: config.file_inline_max_bytes,
        })
    }

    /// The same client and budgets, calling as another installation's bot (its token),
    /// `asker` naming the installation. Slack's budgets are kept per workspace and channel
    /// already, so each installation draws on its own; what Slack says about people is
    /// remembered per installation.
    pub fn as_bot(&self, token: &SecretString, asker: &str, team: &TeamId) -> Self {
        Self {
            bot_token: SlackApiToken::new(token.expose_secret().to_owned().into()),
            asker: Arc::from(asker),
            budget_team: Some(team.clone()),
            ..self.clone()
        }
    }

    /// The workspace whose budgets (and streaming refusals) a call about `team` goes by:
    /// Slack's limits are per token's workspace, and an installation's token is its own.
    fn budget_key<'a>(&'a self, team: &'a TeamId) -> &'a TeamId {
        self.budget_team.as_ref().unwrap_or(team)
    }

    /// `oauth.v2.access`: exchanges an install's code for its tokens, authenticated as the
    /// app (client id and secret), not as a bot. Its answer, whatever Slack said; read with
    /// [`super::oauth::parse_access`]. slack-morphism's model of it drops the organisation
    /// (`enterprise`, `is_enterprise_install`), which Enterprise Grid installs need.
    pub async fn oauth_access(
        &self,
        oauth: &crate::config::OAuthConfig,
        code: &str,
    ) -> Result<serde_json::Value, SlackError> {
        const METHOD: &str = "oauth.v2.access";
        let form = [
            ("client_id", oauth.client_id.as_str()),
            ("client_secret", oauth.client_secret.expose_secret()),
            ("code", code),
            ("redirect_uri", &oauth.redirect_uri()),
        ];
        let transport =
            |e: reqwest::Error| SlackError::Transport { method: METHOD, detail: e.without_url().to_string() };
        let response =
            self.files.post(format!("{}/{METHOD}", self.api_url)).form(&form).send().await.map_err(transport)?;
        response.json().await.map_err(transport)
    }

    /// Bytes of a shared file read at most.
    pub fn file_max(&self) -> usize {
        self.file_max
    }

    /// Downloads a file shared in Slack (`url_private_download`, with `files:read`): at most
    /// [`SlackApi::file_max`] bytes, else [`Download::TooLarge`]. The bot token goes only to
    /// Slack's own file host (`https://files.slack.com`) or the Web API's origin; any other
    /// URL is refused unread. A web page is taken for Slack's sign-in page unless the file
    /// is one (`html_ok`).
    pub async fn download(&self, url: &str, html_ok: bool) -> Result<Download, SlackError> {
        const METHOD: &str = "files.download";
        let transport = |detail: String| SlackError::Transport { method: METHOD, detail };
        let url = reqwest::Url::parse(url).map_err(|_| transport("not a URL".to_owned()))?;
        let slack_files =
            url.scheme() == "https" && matches!(url.host_str(), Some("files.slack.com" | "files.slack-gov.com"));
        let api = self.api_origin.as_ref().is_some_and(|api| api.origin() == url.origin());
        if !slack_files && !api {
            return Err(transport(format!("{} is not Slack's file host", url.host_str().unwrap_or("?"))));
        }
        let token = self.bot_token.token_value.0.as_str();
        let host = url.host_str().map(str::to_owned);
        let mut response = match self.files.get(url).bearer_auth(token).send().await {
            Ok(response) => response,
            Err(err) if err.is_timeout() => return Err(SlackError::Timeout { method: METHOD }),
            Err(err) => return Err(transport(err.without_url().to_string())),
        };
        // Without `files:read` Slack sends the download on to a sign-in page, or serves one.
        let page = response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let page = page.is_some_and(|t| t.starts_with("text/html")) && !html_ok;
        if response.status().is_redirection() || page || response.url().host_str() != host.as_deref() {
            self.metrics.slack_call(METHOD, "error");
            return Err(transport("Slack did not give the file (is the files:read scope granted?)".to_owned()));
        }
        if !response.status().is_success() {
            self.metrics.slack_call(METHOD, "error");
            return Err(transport(format!("HTTP {}", response.status().as_u16())));
        }
        if response.content_length().is_some_and(|n| n > self.file_max as u64) {
            self.metrics.slack_call(METHOD, "ok");
            return Ok(Download::TooLarge);
        }
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > self.file_max {
                        self.metrics.slack_call(METHOD, "ok");
                        return Ok(Download::TooLarge);
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(err) if err.is_timeout() => return Err(SlackError::Timeout { method: METHOD }),
                Err(err) => return Err(transport(err.without_url().to_string())),
            }
        }
        self.metrics.slack_call(METHOD, "ok");
        Ok(Download::Whole(bytes))
    }

    /// Makes a call within the timeout, counts its outcome and converts its error.
    async fn call<T>(
        &self,
        method: &'static str,
        call: impl std::future::Future<Output = ClientResult<T>>,
    ) -> Result<T, SlackError> {
        let result = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(SlackError::from_client(method, err)),
            Err(_) => Err(SlackError::Timeout { method }),
        };
        match &result {
            Ok(_) => self.metrics.slack_call(method, "ok"),
            Err(err) => {
                self.metrics.slack_call(method, err.code());
                tracing::warn!(method, error = %err, "Slack Web API call failed");
            }
        }
        result
    }

    /// `auth.test`: who the bot is.
    pub async fn auth_test(&self) -> Result<BotIdentity, SlackError> {
        let session = self.client.open_session(&self.bot_token);
        let response = self.call("auth.test", session.auth_test()).await?;
        Ok(BotIdentity {
            user_id: UserId::new(response.user_id.0),
            bot_id: response.bot_id.map(|b| b.0),
            team_id: TeamId::new(response.team_id.0),
        })
    }

    /// `apps.connections.open`: a Socket Mode WebSocket URL (needs the app-level token).
    pub async fn open_socket_url(&self) -> Result<String, SlackError> {
        let token = self
            .app_token
            .as_ref()
            .ok_or(SlackError::Api { method: "apps.connections.open", code: "no_app_token".to_owned() })?;
        let session = self.client.open_session(token);
        let request = SlackApiAppsConnectionOpenRequest::new();
        let response = self.call("apps.connections.open", session.apps_connections_open(&request)).await?;
        Ok(response.url.0.to_string())
    }

    /// `assistant.threads.setStatus`: shows the app working in a DM or assistant thread
    /// ("<app> is working…"), with `loading_messages` rotating under it; an empty `status`
    /// clears it (Slack also clears it when the app replies, or after two minutes). Every
    /// text goes out as an inert plain line ([`mrkdwn::inert_plain`]): at most
    /// [`STATUS_CHARS`] of status and [`LOADING_MESSAGES`] loading messages of at most
    /// [`LOADING_CHARS`], the empty ones left out. Slack allows 600 a minute per workspace,
    /// so it draws from none of the bridge's budgets; a caller still sends a change, not
    /// every event.
    pub async fn set_status(
        &self,
        channel: &ChannelId,
        thread_ts: &MessageTs,
        status: &str,
        loading_messages: &[String],
    ) -> Result<(), SlackError> {
        let body = status_body(channel, thread_ts, status, loading_messages);
        self.post_json::<Ignored>("assistant.threads.setStatus", &body, &SLACK_TIER4_METHOD_CONFIG).await.map(drop)
    }

    /// `assistant.threads.setSuggestedPrompts`: offers the first [`PROMPTS`] suggestions as
    /// prompts in a DM or assistant thread, each title and message an inert plain line (at
    /// most [`PROMPT_TITLE_CHARS`] and [`PROMPT_MESSAGE_CHARS`]); suggestions left empty are
    /// dropped, and with none left nothing is called. Tier 3.
    pub async fn set_suggested_prompts(
        &self,
        channel: &ChannelId,
        thread_ts: &MessageTs,
        prompts: &[Suggestion],
    ) -> Result<(), SlackError> {
        let Some(body) = prompts_body(channel, thread_ts, prompts) else { return Ok(()) };
        let method = "assistant.threads.setSuggestedPrompts";
        self.post_json::<Ignored>(method, &body, &SLACK_TIER3_METHOD_CONFIG).await.map(drop)
    }
}

/// Characters of an assistant thread's status.
pub const STATUS_CHARS: usize = 100;
/// Loading messages one status rotates through, at most (Slack's limit).
pub const LOADING_MESSAGES: usize = 10;
/// Characters of one loading message.
pub const LOADING_CHARS: usize = 200;
/// Suggested prompts one thread shows, at most (Slack's limit).
pub const PROMPTS: usize = 4;
/// Characters of a suggested prompt's title.
pub const PROMPT_TITLE_CHARS: usize = 75;
/// Characters of the message a suggested prompt sends.
pub const PROMPT_MESSAGE_CHARS: usize = 1000;

/// The body of `assistant.threads.setStatus`.
fn status_body(channel: &ChannelId, thread_ts: &MessageTs, status: &str, loading_messages: &[String]) -> Value {
    let status = mrkdwn::inert_plain(status, STATUS_CHARS);
    let mut body = json!({"channel_id": channel.as_str(), "thread_ts": thread_ts.as_str(), "status": status});
    let loading: Vec<String> = loading_messages
        .iter()
        .map(|m| mrkdwn::inert_plain(m, LOADING_CHARS))
        .filter(|m| !m.is_empty())
        .take(LOADING_MESSAGES)
        .collect();
    // A cleared status has nothing to rotate.
    if !status.is_empty() && !loading.is_empty() {
        body["loading_messages"] = json!(loading);
    }
    body
}

/// The body of `assistant.threads.setSuggestedPrompts`; `None` when no prompt is left.
fn prompts_body(channel: &ChannelId, thread_ts: &MessageTs, prompts: &[Suggestion]) -> Option<Value> {
    let prompts: Vec<Value> = prompts
        .iter()
        .map(|p| {
            (mrkdwn::inert_plain(&p.title, PROMPT_TITLE_CHARS), mrkdwn::inert_plain(&p.message, PROMPT_MESSAGE_CHARS))
        })
        .filter(|(title, message)| !title.is_empty() && !message.is_empty())
        .take(PROMPTS)
        .map(|(title, message)| json!({"title": title, "message": message}))
        .collect();
    (!prompts.is_empty())
        .then(|| json!({"channel_id": channel.as_str(), "thread_ts": thread_ts.as_str(), "prompts": prompts}))
}

/// How a channel is remembered among the places Slack does not stream in.
fn channel_key(team: &TeamId, channel: &ChannelId) -> String {
    format!("{team}/{channel}")
}

/// What `chat.postMessage` answers.
#[derive(Deserialize)]
struct Posted {
    ts: String,
}

/// What `conversations.open` answers.
#[derive(Deserialize)]
struct Opened {
    channel: OpenedChannel,
}

#[derive(Deserialize)]
struct OpenedChannel {
    id: String,
}

/// What `chat.getPermalink` answers.
#[derive(Deserialize)]
struct Permalink {
    permalink: String,
}

/// One page of `conversations.replies`.
#[derive(Deserialize)]
struct Replies {
    #[serde(default)]
    messages: Vec<Reply>,
    #[serde(default)]
    response_metadata: Option<NextCursor>,
}

#[derive(Deserialize)]
struct NextCursor {
    #[serde(default)]
    next_cursor: String,
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    ts: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    bot_id: Option<String>,
    #[serde(default)]
    subtype: Option<String>,
}

/// A message of a thread, as `conversations.replies` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadReply {
    /// Who wrote it (`None` for some bots and system messages).
    pub user: Option<UserId>,
    /// When.
    pub ts: MessageTs,
    /// Its text, in Slack markup.
    pub text: String,
    /// Written by a bot (or an app), or a system message rather than a person's.
    pub bot: bool,
}

/// What `users.info` answers, as far as names, roles and organisations go.
#[derive(Deserialize)]
struct UserInfo {
    user: UserRecord,
}

#[derive(Deserialize)]
struct UserRecord {
    #[serde(default)]
    name: String,
    #[serde(default)]
    real_name: Option<String>,
    #[serde(default)]
    profile: Option<UserProfile>,
    #[serde(default)]
    team_id: Option<String>,
    #[serde(default)]
    is_admin: bool,
    #[serde(default)]
    is_owner: bool,
    #[serde(default)]
    is_primary_owner: bool,
    #[serde(default)]
    is_restricted: bool,
    #[serde(default)]
    is_ultra_restricted: bool,
    #[serde(default)]
    is_stranger: bool,
}

/// What Slack says about a person: the facts access rules need, and a name to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Display name, else real name, else handle; `None` when Slack gave none.
    pub name: Option<String>,
    /// The person's home workspace (another organisation's for Slack Connect users).
    pub team: Option<TeamId>,
    /// A workspace admin or owner (`is_admin`, `is_owner`, `is_primary_owner`).
    pub admin: bool,
    /// A multi- or single-channel guest (`is_restricted`, `is_ultra_restricted`).
    pub guest: bool,
    /// Slack marks the person as a stranger (an external user this workspace does not share a
    /// channel with).
    pub stranger: bool,
    /// Their e-mail address: Slack gives it only when the app has `users:read.email`.
    pub email: Option<String>,
}

#[derive(Deserialize)]
struct UserProfile {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    real_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

/// What `usergroups.users.list` answers.
#[derive(Deserialize)]
struct GroupMembers {
    #[serde(default)]
    users: Vec<String>,
}

/// Answers whose content the bridge does not need.
#[derive(Deserialize)]
struct Ignored {}

/// `files.getUploadURLExternal`'s answer.
#[derive(Deserialize)]
struct UploadTarget {
    upload_url: String,
    file_id: String,
}

fn message_body(channel: &ChannelId, message: &Message) -> Value {
    json!({
        "channel": channel.as_str(),
        "text": message.text,
        "blocks": message.blocks,
        "unfurl_links": false,
        "unfurl_media": false,
    })
}

impl SlackApi {
    /// POSTs a JSON body to a Web API method as the bot, counting the outcome.
    async fn post_json<R: for<'de> Deserialize<'de> + Send>(
        &self,
        method: &'static str,
        body: &Value,
        rate: &SlackApiMethodRateControlConfig,
    ) -> Result<R, SlackError> {
        let session = self.client.open_session(&self.bot_token);
        self.call(method, session.http_session_api.http_post(method, body, Some(rate))).await
    }

    /// GETs a Web API method with query parameters as the bot, counting the outcome.
    async fn get_json<R: for<'de> Deserialize<'de> + Send>(
        &self,
        method: &'static str,
        params: &[(&str, &str)],
        rate: &SlackApiMethodRateControlConfig,
    ) -> Result<R, SlackError> {
        let session = self.client.open_session(&self.bot_token);
        let params: Vec<(&str, Option<&str>)> = params.iter().map(|(k, v)| (*k, Some(*v))).collect();
        self.call(method, session.http_session_api.http_get(method, &params, Some(rate))).await
    }

    /// `chat.postMessage`, in a thread when `thread_ts` is given. Returns the new message's ts.
    pub async fn post(
        &self,
        channel: &ChannelId,
        thread_ts: Option<&MessageTs>,
        message: &Message,
    ) -> Result<MessageTs, SlackError> {
        let mut body = message_body(channel, message);
        if let Some(ts) = thread_ts {
            body["thread_ts"] = json!(ts.as_str());
        }
        let posted: Posted =
            self.paced(&self.posts, channel, "chat.postMessage", &body, Drawn::No, PACED_RETRIES).await?;
        Ok(MessageTs::new(posted.ts))
    }

    /// `chat.update`, drawing from the workspace's edit budget first.
    pub async fn update(
        &self,
        team: &TeamId,
        channel: &ChannelId,
        ts: &MessageTs,
        message: &Message,
    ) -> Result<(), SlackError> {
        self.edit(team, channel, ts, message, Drawn::No).await
    }

    /// Waits this reply's turn at the workspace's `kind` budget, behind the replies already
    /// waiting, and draws one call from it: the budget goes round robin among concurrent
    /// replies. An edit leaves a small reserve, so that under contention the edits that
    /// finish something (final replies, cards, headers) go first. The drawn call is then made
    /// with [`SlackApi::update_drawn`] or [`SlackApi::append_stream`], with the newest
    /// content at that moment.
    pub async fn progress_turn(&self, kind: Progress, team: &TeamId) {
        let team = self.budget_key(team);
        let draw = async {
            match kind {
                Progress::Edit => self.edits.acquire_leaving(team, PROGRESS_RESERVE).await,
                Progress::Append => self.appends.acquire(team).await,
            }
        };
        self.progress.through(&(kind, team.clone()), draw).await;
    }

    /// `chat.update` with a call drawn by [`SlackApi::progress_turn`].
    pub async fn update_drawn(
        &self,
        team: &TeamId,
        channel: &ChannelId,
        ts: &MessageTs,
        message: &Message,
    ) -> Result<(), SlackError> {
        self.edit(team, channel, ts, message, Drawn::Yes).await
    }

    /// `chat.update`, paced by the workspace's edit budget.
    async fn edit(
        &self,
        team: &TeamId,
        channel: &ChannelId,
        ts: &MessageTs,
        message: &Message,
        drawn: Drawn,
    ) -> Result<(), SlackError> {
        let mut body = message_body(channel, message);
        body["ts"] = json!(ts.as_str());
        self.paced::<_, Ignored>(&self.edits, self.budget_key(team), "chat.update", &body, drawn, PACED_RETRIES)
            .await
            .map(drop)
    }

    /// Makes a call paced by `budget` under `key`: draws from the budget (unless the first
    /// draw was `drawn` already), and on a 429 holds the budget back for Slack's `Retry-After`
    /// (for every replica, when the budget is shared), then draws and tries again, up to
    /// `retries` times.
    async fn paced<K, R>(
        &self,
        budget: &Budget<K>,
        key: &K,
        method: &'static str,
        body: &Value,
        drawn: Drawn,
        retries: u32,
    ) -> Result<R, SlackError>
    where
        K: std::hash::Hash + Eq + Clone + std::fmt::Display + Send + Sync,
        R: for<'de> Deserialize<'de> + Send,
    {
        let mut attempt = 0;
        loop {
            if attempt > 0 || drawn == Drawn::No {
                budget.acquire(key).await;
            }
            let session = self.paced.open_session(&self.bot_token);
            let result = self.call(method, session.http_session_api.http_post(method, body, None)).await;
            match result {
                Err(SlackError::RateLimited { retry_after, method }) => {
                    budget.back_off(key, retry_after.unwrap_or(RATE_LIMITED_HOLD)).await;
                    if attempt == retries {
                        return Err(SlackError::RateLimited { retry_after, method });
                    }
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Whether replies in `channel` of `team` stream natively: not with
    /// `SLACK_STREAMING=edits`, nor in `auto` once Slack refused it for the workspace (or,
    /// for a kind of channel it does not stream in, for the channel).
    pub fn streams_in(&self, team: &TeamId, channel: &ChannelId) -> bool {
        let team = self.budget_key(team);
        match self.streaming {
            Streaming::Edits => false,
            Streaming::Native => true,
            Streaming::Auto => {
                let refused = self.no_streaming.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                !refused.contains(team.as_str()) && !refused.contains(&channel_key(team, channel))
            }
        }
    }

    /// Slack refused native streaming in `channel` of `team` with `err`: in `auto` the
    /// workspace's replies use edits from now on (only the channel's, when Slack refused the
    /// kind of channel); with `native` it is an error to fix, and the next reply tries again.
    pub fn streaming_refused(&self, team: &TeamId, channel: &ChannelId, err: &SlackError) {
        let team = self.budget_key(team);
        match self.streaming {
            Streaming::Native => {
                tracing::error!(team = %team, code = err.code(), "Slack refused native streaming (SLACK_STREAMING=native); this reply is shown with edits");
            }
            _ => {
                let key = if err.api_code() == Some("method_not_supported_for_channel_type") {
                    channel_key(team, channel)
                } else {
                    team.as_str().to_owned()
                };
                let mut refused = self.no_streaming.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if refused.insert(key) {
                    tracing::warn!(team = %team, code = err.code(), "Slack refused native streaming; replies in this workspace use message edits");
                }
            }
        }
    }

    /// Asks Slack whether `team`'s token may stream natively, without streaming anything: a
    /// `chat.startStream` that names no channel. Slack refuses an unknown method or a token
    /// that may not stream before it looks at the arguments, so a refusal is remembered as a
    /// real one would be, and any other answer says nothing against streaming.
    pub async fn probe_streaming(&self, team: &TeamId) {
        if self.streaming != Streaming::Auto || !self.streams_in(team, &ChannelId::new("")) {
            return;
        }
        let body = json!({"channel": ""});
        let answer = self
            .paced::<_, Ignored>(&self.stream_starts, self.budget_key(team), "chat.startStream", &body, Drawn::No, 0)
            .await;
        match answer {
            Err(err) if err.refuses_streaming() => self.streaming_refused(team, &ChannelId::new(""), &err),
            Err(err) => tracing::debug!(team = %team, code = err.code(), "Slack's streaming probe answered"),
            Ok(_) => {}
        }
    }

    /// `chat.startStream`: a streamed reply in a thread, to `recipient` (the person whose
    /// message started the turn; Slack wants one outside DMs), with `part` as its first
    /// content. Starts only if the workspace's Tier 2 budget has room now: `Ok(None)`
    /// otherwise, and the reply is better shown with edits than kept waiting.
    pub async fn start_stream(
        &self,
        team: &TeamId,
        channel: &ChannelId,
        thread_ts: &MessageTs,
        recipient: &UserId,
        part: &StreamPart,
    ) -> Result<Option<MessageTs>, SlackError> {
        if self.stream_starts.try_acquire_leaving(self.budget_key(team), 0).await.is_err() {
            return Ok(None);
        }
        let mut body = json!({
            "channel": channel.as_str(),
            "thread_ts": thread_ts.as_str(),
            "recipient_user_id": recipient.as_str(),
            "recipient_team_id": team.as_str(),
            "task_display_mode": "timeline",
        });
        if !part.is_empty() {
            body["chunks"] = Value::Array(part.chunks());
        }
        let started: Posted = self
            .paced(&self.stream_starts, self.budget_key(team), "chat.startStream", &body, Drawn::Yes, PACED_RETRIES)
            .await?;
        Ok(Some(MessageTs::new(started.ts)))
    }

    /// `chat.appendStream`, with a call drawn by [`SlackApi::progress_turn`].
    pub async fn append_stream(
        &self,
        team: &TeamId,
        channel: &ChannelId,
        ts: &MessageTs,
        part: &StreamPart,
    ) -> Result<(), SlackError> {
        let body = json!({"channel": channel.as_str(), "ts": ts.as_str(), "chunks": part.chunks()});
        self.paced::<_, Ignored>(
            &self.appends,
            self.budget_key(team),
            "chat.appendStream",
            &body,
            Drawn::Yes,
            PACED_RETRIES,
        )
        .await
        .map(drop)
    }

    /// `chat.stopStream`: finishes a streamed message with `part` and `blocks` at its
    /// bottom, waiting for the workspace's Tier 2 budget.
    pub async fn stop_stream(
        &self,
        team: &TeamId,
        channel: &ChannelId,
        ts: &MessageTs,
        part: &StreamPart,
        blocks: &[Value],
    ) -> Result<(), SlackError> {
        let mut body = json!({"channel": channel.as_str(), "ts": ts.as_str()});
        if !part.is_empty() {
            body["chunks"] = Value::Array(part.chunks());
        }
        if !blocks.is_empty() {
            body["blocks"] = Value::Array(blocks.to_vec());
        }
        self.paced::<_, Ignored>(
            &self.stream_stops,
            self.budget_key(team),
            "chat.stopStream",
            &body,
            Drawn::No,
            PACED_RETRIES,
        )
        .await
        .map(drop)
    }

    /// `chat.update` of a streamed message that Slack stopped streaming on its own: the
    /// only way to finish one (`markdown_text`, up to 12,000 characters, replaces its text).
    pub async fn finish_stopped_stream(
        &self,
        team: &TeamId,
        channel: &ChannelId,
        ts: &MessageTs,
        markdown: &str,
    ) -> Result<(), SlackError> {
        let body = json!({"channel": channel.as_str(), "ts": ts.as_str(), "markdown_text": markdown});
        self.paced::<_, Ignored>(&self.edits, self.budget_key(team), "chat.update", &body, Drawn::No, PACED_RETRIES)
            .await
            .map(drop)
    }

    /// `chat.postEphemeral`: a message only `user` sees.
    pub async fn ephemeral(
        &self,
        channel: &ChannelId,
        user: &UserId,
        thread_ts: Option<&MessageTs>,
        message: &Message,
    ) -> Result<(), SlackError> {
        let mut body = message_body(channel, message);
        body["user"] = json!(user.as_str());
        if let Some(ts) = thread_ts {
            body["thread_ts"] = json!(ts.as_str());
        }
        self.post_json::<Ignored>("chat.postEphemeral", &body, &SLACK_TIER4_METHOD_CONFIG).await.map(drop)
    }

    /// Answers through an interaction's `response_url` (ephemeral unless `in_channel`);
    /// works where the bot is not a member, which `chat.postEphemeral` does not.
    pub async fn respond(
        &self,
        response_url: &str,
        message: &Message,
        replace_original: bool,
    ) -> Result<(), SlackError> {
        let url: reqwest::Url = response_url
            .parse()
            .map_err(|_| SlackError::Transport { method: "response_url", detail: "not a URL".to_owned() })?;
        let blocks: Vec<SlackBlock> = serde_json::from_value(Value::Array(message.blocks.clone()))
            .map_err(|e| SlackError::Transport { method: "response_url", detail: format!("blocks: {e}") })?;
        let request = SlackApiPostWebhookMessageRequest::new(
            SlackMessageContent::new().with_text(message.text.clone()).with_blocks(blocks),
        )
        .with_replace_original(replace_original);
        self.call("response_url", self.client.post_webhook_message(&url, &request)).await.map(drop)
    }

    /// `reactions.add`, drawing from the workspace's reaction budget first; adding one that
    /// is already there is not an error. A reaction only decorates, so one that Slack turns
    /// away is not retried: its thread's next items do not wait out the hold for it.
    pub async fn react(
        &self,
        team: &TeamId,
        channel: &ChannelId,
        ts: &MessageTs,
        name: &str,
    ) -> Result<(), SlackError> {
        let body = json!({"channel": channel.as_str(), "timestamp": ts.as_str(), "name": name});
        match self
            .paced::<_, Ignored>(&self.reactions, self.budget_key(team), "reactions.add", &body, Drawn::No, 0)
            .await
        {
            Err(SlackError::Api { code, .. }) if code == "already_reacted" => Ok(()),
            other => other.map(drop),
        }
    }

    /// `views.open`: shows a modal (the trigger id is valid for 3 s).
    pub async fn open_view(&self, trigger_id: &str, view: &Value) -> Result<(), SlackError> {
        let body = json!({"trigger_id": trigger_id, "view": view});
        self.post_json::<Ignored>("views.open", &body, &SLACK_TIER4_METHOD_CONFIG).await.map(drop)
    }

    /// `views.publish`: sets what `user` sees on the app's Home tab.
    pub async fn publish_home(&self, user: &UserId, view: &Value) -> Result<(), SlackError> {
        let body = json!({"user_id": user.as_str(), "view": view});
        self.post_json::<Ignored>("views.publish", &body, &SLACK_TIER4_METHOD_CONFIG).await.map(drop)
    }

    /// `conversations.open`: the app's direct-message channel with `user`.
    pub async fn open_dm(&self, user: &UserId) -> Result<ChannelId, SlackError> {
        let body = json!({"users": user.as_str()});
        let opened: Opened = self.post_json("conversations.open", &body, &SLACK_TIER3_METHOD_CONFIG).await?;
        Ok(ChannelId::new(opened.channel.id))
    }

    /// `conversations.replies`: the messages of a thread written before `before` (all of
    /// them with `None`), oldest first; at most `REPLY_PAGES` pages of 200, so a thread
    /// longer than that is read to that bound and no further.
    pub async fn replies(
        &self,
        channel: &ChannelId,
        thread_ts: &MessageTs,
        before: Option<&MessageTs>,
    ) -> Result<Vec<ThreadReply>, SlackError> {
        const REPLY_PAGES: usize = 5;
        let mut all = Vec::new();
        let mut cursor = String::new();
        for _ in 0..REPLY_PAGES {
            let mut params = vec![("channel", channel.as_str()), ("ts", thread_ts.as_str()), ("limit", "200")];
            if let Some(before) = before {
                params.extend([("latest", before.as_str()), ("inclusive", "false")]);
            }
            if !cursor.is_empty() {
                params.push(("cursor", cursor.as_str()));
            }
            let page: Replies = self.get_json("conversations.replies", &params, &SLACK_TIER3_METHOD_CONFIG).await?;
            all.extend(page.messages.into_iter().map(|m| ThreadReply {
                bot: m.bot_id.is_some()
                    || m.subtype.as_deref().is_some_and(|s| s != "thread_broadcast" && s != "file_share"),
                user: m.user.filter(|u| !u.is_empty()).map(UserId::new),
                ts: MessageTs::new(m.ts),
                text: m.text,
            }));
            match page.response_metadata.map(|m| m.next_cursor).filter(|c| !c.is_empty()) {
                Some(next) => cursor = next,
                None => break,
            }
        }
        Ok(all)
    }

    /// `chat.getPermalink`: a link to a message.
    pub async fn permalink(&self, channel: &ChannelId, ts: &MessageTs) -> Result<String, SlackError> {
        let params = [("channel", channel.as_str()), ("message_ts", ts.as_str())];
        let link: Permalink = self.get_json("chat.getPermalink", &params, &SLACK_TIER4_METHOD_CONFIG).await?;
        Ok(link.permalink)
    }

    /// A user's display name (`users.info`, remembered for a while). `None` when Slack
    /// cannot say; callers then show the id.
    pub async fn user_name(&self, user: &UserId) -> Option<String> {
        self.person(user).await.ok().and_then(|p| p.name)
    }

    /// `users.info`: what Slack says about a person, remembered for a few minutes.
    pub async fn person(&self, user: &UserId) -> Result<Person, SlackError> {
        let key = (self.asker.clone(), user.clone());
        if let Some(person) = recall(&self.people, &key) {
            return Ok(person);
        }
        let params = [("user", user.as_str())];
        let info: UserInfo = self.get_json("users.info", &params, &SLACK_TIER4_METHOD_CONFIG).await?;
        let record = info.user;
        let profile = record.profile.unwrap_or(UserProfile { display_name: None, real_name: None, email: None });
        let email = profile.email.filter(|e| !e.trim().is_empty());
        let name = [profile.display_name, profile.real_name, record.real_name, Some(record.name)]
            .into_iter()
            .flatten()
            .map(|n| n.trim().to_owned())
            .find(|n| !n.is_empty());
        let person = Person {
            name,
            team: record.team_id.filter(|t| !t.is_empty()).map(TeamId::new),
            admin: record.is_admin || record.is_owner || record.is_primary_owner,
            guest: record.is_restricted || record.is_ultra_restricted,
            stranger: record.is_stranger,
            email,
        };
        remember(&self.people, key, person.clone());
        Ok(person)
    }

    /// The members of a user group (`usergroups.users.list`, remembered for a while).
    pub async fn group_members(&self, group: &str) -> Result<Vec<UserId>, SlackError> {
        let key = (self.asker.clone(), group.to_owned());
        if let Some(members) = recall(&self.groups, &key) {
            return Ok(members);
        }
        let params = [("usergroup", group)];
        let listed: GroupMembers = self.get_json("usergroups.users.list", &params, &SLACK_TIER2_METHOD_CONFIG).await?;
        let members: Vec<UserId> = listed.users.into_iter().map(UserId::new).collect();
        remember(&self.groups, key, members.clone());
        Ok(members)
    }

    /// Uploads `content` as a file into a thread (Slack's external upload flow:
    /// get an upload URL, send the bytes, complete the upload into the channel).
    pub async fn upload(&self, channel: &ChannelId, thread_ts: &MessageTs, file: &Upload) -> Result<(), SlackError> {
        self.upload_into(channel, Some(thread_ts), file).await
    }

    /// Uploads `content` as a file into a channel, in a thread when `thread_ts` is given.
    pub async fn upload_into(
        &self,
        channel: &ChannelId,
        thread_ts: Option<&MessageTs>,
        file: &Upload,
    ) -> Result<(), SlackError> {
        let Upload { name: filename, title, content } = file;
        let length = content.len().to_string();
        let params = [("filename", filename.as_str()), ("length", length.as_str())];
        let target: UploadTarget =
            self.get_json("files.getUploadURLExternal", &params, &SLACK_TIER4_METHOD_CONFIG).await?;
        let upload_url: reqwest::Url = target
            .upload_url
            .parse()
            .map_err(|_| SlackError::Transport { method: "files.upload", detail: "bad upload URL".to_owned() })?;
        let request = SlackApiFilesUploadViaUrlRequest::new(
            SlackFileUploadUrl::new(upload_url),
            content.as_bytes().to_vec(),
            "text/plain".to_owned(),
        );
        let session = self.client.open_session(&self.bot_token);
        self.call("files.upload", session.files_upload_via_url(&request)).await?;
        let mut body = json!({
            "files": [{"id": target.file_id, "title": title}],
            "channel_id": channel.as_str(),
        });
        if let Some(ts) = thread_ts {
            body["thread_ts"] = json!(ts.as_str());
        }
        self.post_json::<Ignored>("files.completeUploadExternal", &body, &SLACK_TIER4_METHOD_CONFIG).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place() -> (ChannelId, MessageTs) {
        (ChannelId::new("D1"), MessageTs::new("1700000000.000100"))
    }

    #[test]
    fn statuses_are_inert_lines_within_slacks_limits() {
        let (channel, ts) = place();
        let loading: Vec<String> = ["Running tool: kubectl <!here>".to_owned(), "  ".to_owned()]
            .into_iter()
            .chain((0..20).map(|i| format!("step {i}")))
            .collect();
        let body = status_body(&channel, &ts, "is working… @channel", &loading);
        assert_eq!(body["channel_id"], "D1");
        assert_eq!(body["thread_ts"], "1700000000.000100");
        assert_eq!(body["status"], "is working… @\u{2060}channel");
        let sent = body["loading_messages"].as_array().unwrap();
        assert_eq!(sent.len(), LOADING_MESSAGES, "at most ten, the blank one left out");
        assert_eq!(sent[0], "Running tool: kubectl ‹!here›");
        assert_eq!(sent[1], "step 0");
        let long = status_body(&channel, &ts, &"é".repeat(500), &["x".repeat(500)]);
        assert_eq!(long["status"].as_str().unwrap().chars().count(), STATUS_CHARS);
        assert_eq!(long["loading_messages"][0].as_str().unwrap().chars().count(), LOADING_CHARS);
        let cleared = status_body(&channel, &ts, "", &loading);
        assert_eq!(cleared, json!({"channel_id": "D1", "thread_ts": "1700000000.000100", "status": ""}));
    }

    #[test]
    fn prompts_are_at_most_four_inert_lines() {
        let (channel, ts) = place();
        let prompt = |title: &str, message: &str| Suggestion { title: title.to_owned(), message: message.to_owned() };
        let prompts = [
            prompt("Check pods", "Which pods are crashing?\n<!channel>"),
            prompt("", "no title"),
            prompt(&"t".repeat(200), "long title"),
            prompt("Disk", "Is a disk full?"),
            prompt("Logs", "Show the errors"),
            prompt("Fifth", "never shown"),
        ];
        let body = prompts_body(&channel, &ts, &prompts).unwrap();
        let sent = body["prompts"].as_array().unwrap();
        assert_eq!(sent.len(), PROMPTS);
        assert_eq!(sent[0], json!({"title": "Check pods", "message": "Which pods are crashing? ‹!channel›"}));
        assert_eq!(sent[1]["title"].as_str().unwrap().chars().count(), PROMPT_TITLE_CHARS);
        assert_eq!(sent[3]["title"], "Logs");
        assert_eq!(prompts_body(&channel, &ts, &[prompt(" ", "x")]), None);
        assert_eq!(prompts_body(&channel, &ts, &[]), None);
    }
}
