//! The HelpDesk boundary: the DuploCloud AI HelpDesk API, as duploctl and the other real
//! clients call it. With `slack`, the only module that knows wire JSON.
//!
//! Every call goes to `{DUPLO_HOST}/v1/aiservicedesk/…` with `Authorization: Bearer` through
//! one `reqwest::Client` with explicit timeouts. GETs are retried on 502/503/504 and
//! connection failures with a short, capped backoff; sends never are (a second POST would
//! start a second agent turn).
//!
//! - [`events`]: the agent event model, from streamed events or a unary reply.
//! - [`sse`]: stream framing (SSE and NDJSON) into JSON payloads.
//! - [`wire`]: envelope and key-casing tolerance.

pub mod events;
pub mod sse;
pub mod wire;

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::{
    config::HelpdeskConfig,
    ids::{AgentId, TicketName, WorkspaceId},
    telemetry::Metrics,
};

/// How many times a GET is tried before its failure is reported.
const GET_ATTEMPTS: u32 = 3;
/// Pause before the second try; doubled for each further one.
const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// Connecting to the portal must not take longer than this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A HelpDesk failure a caller can act on. Messages carry the HelpDesk's own words, never
/// the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelpdeskError {
    /// 404, or a 400 saying "not found", or a name that matched nothing.
    #[error("not found: {0}")]
    NotFound(String),
    /// 401 or 403: the token is wrong or lacks rights.
    #[error("the HelpDesk refused the token: {0}")]
    Unauthorized(String),
    /// Any other 400.
    #[error("the HelpDesk rejected the request: {0}")]
    BadRequest(String),
    /// A 5xx or other unexpected status.
    #[error("the HelpDesk answered {status}: {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The body, shortened.
        message: String,
    },
    /// The request took too long.
    #[error("the HelpDesk did not answer in time")]
    Timeout,
    /// The portal could not be reached.
    #[error("cannot reach the HelpDesk: {0}")]
    Connection(String),
    /// The agent reported an error in its stream.
    #[error("the agent reported an error: {0}")]
    Stream(String),
    /// The answer was not what the API sends.
    #[error("the HelpDesk sent an unexpected reply: {0}")]
    Malformed(String),
    /// A name matched more than one record.
    #[error("{kind} '{name}' is ambiguous: {count} match")]
    Ambiguous {
        /// `workspace` or `agent`.
        kind: &'static str,
        /// The name looked up.
        name: String,
        /// How many matched.
        count: usize,
    },
}

impl HelpdeskError {
    /// A short label for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Unauthorized(_) => "unauthorized",
            Self::BadRequest(_) => "bad_request",
            Self::Server { .. } => "server_error",
            Self::Timeout => "timeout",
            Self::Connection(_) => "connection",
            Self::Stream(_) => "stream_error",
            Self::Malformed(_) => "malformed",
            Self::Ambiguous { .. } => "ambiguous",
        }
    }

    fn retryable(&self) -> bool {
        matches!(self, Self::Timeout | Self::Connection(_) | Self::Server { status: 502..=504, .. })
    }

    /// Maps a non-2xx status and its body as duploctl does.
    pub fn from_status(status: StatusCode, body: &str) -> Self {
        let message: String = body.trim().chars().take(500).collect();
        match status.as_u16() {
            404 => Self::NotFound(message),
            401 | 403 => Self::Unauthorized(message),
            400 if message.to_lowercase().contains("not found") => Self::NotFound(message),
            400 => Self::BadRequest(message),
            status => Self::Server { status, message },
        }
    }

    fn from_reqwest(err: &reqwest::Error) -> Self {
        if err.is_timeout() {
            Self::Timeout
        } else if err.is_decode() || err.is_body() {
            Self::Malformed(err.to_string())
        } else {
            Self::Connection(err.to_string())
        }
    }
}

/// A HelpDesk workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// Its id.
    pub id: WorkspaceId,
    /// Its name.
    pub name: String,
}

/// A HelpDesk agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Its id.
    pub id: AgentId,
    /// Its name.
    pub name: String,
    /// Whether replies should be read from the streaming endpoint.
    pub streams: bool,
}

/// The HelpDesk API of one portal.
#[derive(Clone)]
pub struct HelpdeskClient {
    http: reqwest::Client,
    host: String,
    api: Url,
    token: SecretString,
    request_timeout: Duration,
    metrics: Metrics,
}

impl std::fmt::Debug for HelpdeskClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HelpdeskClient").field("host", &self.host).finish()
    }
}

/// Whether a string is a 24-hex Mongo ObjectId, the form of workspace and agent ids.
pub fn looks_like_id(value: &str) -> bool {
    value.len() == 24 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

impl HelpdeskClient {
    /// A client for the configured portal.
    pub fn new(config: &HelpdeskConfig, metrics: Metrics) -> Result<Self, HelpdeskError> {
        let api = Url::parse(&format!("{}/v1/aiservicedesk/", config.host))
            .map_err(|e| HelpdeskError::Connection(format!("invalid DUPLO_HOST: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            // Streams set no total timeout; unary calls set theirs per request.
            .read_timeout(config.stream_idle_timeout)
            .user_agent(concat!("helpdesk-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HelpdeskError::Connection(e.to_string()))?;
        Ok(Self {
            http,
            host: config.host.clone(),
            api,
            token: config.token.clone(),
            request_timeout: config.request_timeout,
            metrics,
        })
    }

    /// The portal's base URL.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The ticket's chat page in the HelpDesk UI.
    pub fn chat_url(&self, workspace: &WorkspaceId, ticket: &TicketName) -> String {
        let mut url = Url::parse(&self.host).unwrap_or_else(|_| self.api.clone());
        url.set_query(None);
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.clear().extend([
                "app",
                "ai",
                "service-desk",
                workspace.as_str(),
                "tickets",
                "chat",
                ticket.as_str(),
            ]);
        }
        url.to_string()
    }

    /// The URL of an API path given as segments (each percent-encoded), plus a raw query.
    fn url(&self, segments: &[&str], query: Option<&str>) -> Url {
        let mut url = self.api.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url.set_query(query);
        url
    }

    /// A GET, retried on transient failures, answered as JSON.
    async fn get(
        &self,
        operation: &'static str,
        segments: &[&str],
        query: Option<&str>,
    ) -> Result<Value, HelpdeskError> {
        let url = self.url(segments, query);
        let mut attempt = 1;
        loop {
            let result = self.send_json(Method::GET, url.clone(), None).await;
            match result {
                Err(err) if err.retryable() && attempt < GET_ATTEMPTS => {
                    tracing::debug!(operation, attempt, error = %err, "retrying a HelpDesk GET");
                    tokio::time::sleep(RETRY_PAUSE * 2u32.pow(attempt - 1)).await;
                    attempt += 1;
                }
                result => {
                    let outcome = result.as_ref().map_or_else(HelpdeskError::code, |_| "ok");
                    self.metrics.helpdesk_call(operation, outcome);
                    return result;
                }
            }
        }
    }

    async fn send_json(&self, method: Method, url: Url, body: Option<&Value>) -> Result<Value, HelpdeskError> {
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(self.token.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.request_timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| HelpdeskError::from_reqwest(&e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| HelpdeskError::from_reqwest(&e))?;
        if !status.is_success() {
            return Err(HelpdeskError::from_status(status, &text));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .map_err(|e| HelpdeskError::Malformed(format!("{e}: {}", text.chars().take(200).collect::<String>())))
    }

    /// Every workspace (`GET admin/data/workspaces`).
    pub async fn list_workspaces(&self) -> Result<Vec<Workspace>, HelpdeskError> {
        self.list(&WORKSPACES).await
    }

    /// A workspace by id.
    pub async fn workspace(&self, id: &WorkspaceId) -> Result<Workspace, HelpdeskError> {
        self.by_id(&WORKSPACES, id.as_str()).await
    }

    /// A workspace by name (exact, case-insensitive) or by id.
    pub async fn find_workspace(&self, name_or_id: &str) -> Result<Workspace, HelpdeskError> {
        self.find(&WORKSPACES, name_or_id).await
    }

    /// Every agent (`GET admin/data/aiagents`).
    pub async fn list_agents(&self) -> Result<Vec<Agent>, HelpdeskError> {
        self.list(&AGENTS).await
    }

    /// An agent by id.
    pub async fn agent(&self, id: &AgentId) -> Result<Agent, HelpdeskError> {
        self.by_id(&AGENTS, id.as_str()).await
    }

    /// An agent by name (exact, case-insensitive) or by id.
    pub async fn find_agent(&self, name_or_id: &str) -> Result<Agent, HelpdeskError> {
        self.find(&AGENTS, name_or_id).await
    }

    async fn list<T>(&self, c: &Collection<T>) -> Result<Vec<T>, HelpdeskError> {
        let body = self.get(c.list_op, &["admin", "data", c.path], None).await?;
        Ok(wire::unwrap_items(&body).iter().filter_map(c.parse).collect())
    }

    async fn by_id<T>(&self, c: &Collection<T>, id: &str) -> Result<T, HelpdeskError> {
        let body = self.get(c.get_op, &["admin", "data", c.path, id], None).await?;
        (c.parse)(wire::unwrap_object(&body)).ok_or_else(|| HelpdeskError::NotFound(format!("{} '{id}'", c.kind)))
    }

    /// The server-side name filter may be fuzzy: keep exact case-insensitive matches, and
    /// refuse to guess between several.
    async fn find<T>(&self, c: &Collection<T>, name_or_id: &str) -> Result<T, HelpdeskError> {
        if looks_like_id(name_or_id) {
            return self.by_id(c, name_or_id).await;
        }
        let body = self.get(c.find_op, &["admin", "data", c.path], Some(&name_filter(name_or_id))).await?;
        let mut matches: Vec<T> = wire::unwrap_items(&body)
            .iter()
            .filter_map(c.parse)
            .filter(|item| (c.name_of)(item).eq_ignore_ascii_case(name_or_id))
            .collect();
        match matches.len() {
            0 => Err(HelpdeskError::NotFound(format!("{} '{name_or_id}' not found", c.kind))),
            1 => Ok(matches.remove(0)),
            count => Err(HelpdeskError::Ambiguous { kind: c.kind, name: name_or_id.to_owned(), count }),
        }
    }
}

/// An admin collection the client looks records up in.
struct Collection<T> {
    kind: &'static str,
    path: &'static str,
    list_op: &'static str,
    get_op: &'static str,
    find_op: &'static str,
    parse: fn(&Value) -> Option<T>,
    name_of: fn(&T) -> &str,
}

const WORKSPACES: Collection<Workspace> = Collection {
    kind: "workspace",
    path: "workspaces",
    list_op: "list_workspaces",
    get_op: "get_workspace",
    find_op: "find_workspace",
    parse: workspace,
    name_of: |w| &w.name,
};

const AGENTS: Collection<Agent> = Collection {
    kind: "agent",
    path: "aiagents",
    list_op: "list_agents",
    get_op: "get_agent",
    find_op: "find_agent",
    parse: agent,
    name_of: |a| &a.name,
};

/// `filters[name]=<value>` with the brackets written literally, as duploctl sends it.
fn name_filter(name: &str) -> String {
    let encoded = serde_urlencoded::to_string([("v", name)]).unwrap_or_default();
    format!("filters[name]={}", encoded.trim_start_matches("v="))
}

fn workspace(value: &Value) -> Option<Workspace> {
    Some(Workspace { id: WorkspaceId::new(wire::id(value)?), name: wire::name(value).unwrap_or_default() })
}

fn agent(value: &Value) -> Option<Agent> {
    Some(Agent {
        id: AgentId::new(wire::id(value)?),
        name: wire::name(value).unwrap_or_default(),
        streams: wire::agent_streams(value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_as_duploctl_maps_them() {
        let cases = [
            (404, "gone", HelpdeskError::NotFound("gone".to_owned())),
            (401, "bad token", HelpdeskError::Unauthorized("bad token".to_owned())),
            (403, "no", HelpdeskError::Unauthorized("no".to_owned())),
            (400, "Ticket DEVOPS-9 Not Found", HelpdeskError::NotFound("Ticket DEVOPS-9 Not Found".to_owned())),
            (400, "title required", HelpdeskError::BadRequest("title required".to_owned())),
            (503, "down", HelpdeskError::Server { status: 503, message: "down".to_owned() }),
        ];
        for (status, body, expected) in cases {
            assert_eq!(HelpdeskError::from_status(StatusCode::from_u16(status).unwrap(), body), expected);
        }
    }

    #[test]
    fn name_filters_keep_literal_brackets_and_encode_the_value() {
        assert_eq!(name_filter("dev ops&x"), "filters[name]=dev+ops%26x");
    }

    #[test]
    fn ids_are_24_hex() {
        assert!(looks_like_id("65f0c0ffee0000000000abcd"));
        assert!(!looks_like_id("devops"));
        assert!(!looks_like_id("65f0c0ffee0000000000abcz"));
    }
}
