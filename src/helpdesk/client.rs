//! The HelpDesk client: one portal's API, called as duploctl and the other real clients
//! call it.
//!
//! Every call goes to `{DUPLO_HOST}/v1/aiservicedesk/…` with `Authorization: Bearer` through
//! one `reqwest::Client` with explicit timeouts. GETs are retried on 502/503/504 and
//! connection failures with a short, capped backoff; sends never are (a second POST would
//! start a second agent turn). Bodies are read only up to [`limits::BODY_BYTES`] (error
//! bodies up to [`limits::ERROR_BODY_BYTES`]). Request bodies are written here, the answer
//! to an approval card included.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{
    decisions,
    error::HelpdeskError,
    events::{self, AgentEvent},
    limits,
    sse::{ReplyStream, event_stream, recover_streamed_reply},
    types::{self, Agent, ApiStatus, Disposition, Ticket, Workspace, looks_like_id},
    wire,
};
use crate::{
    config::HelpdeskConfig,
    ids::{AgentId, TicketName, WorkspaceId},
    model::ProposedCommand,
    telemetry::Metrics,
};

/// What to send to a ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    /// The text (may be empty for a pure approval).
    pub content: String,
    /// A submitted card's proposals with their decisions: the approved and rejected ones go
    /// back to the agent (as `cmds`, `tool_calls` or `approvals`, in the form each came in);
    /// empty when the message answers no card.
    pub decisions: Vec<ProposedCommand>,
    /// Record on the ticket without waking the agent (`message_mode: 1`).
    pub record_only: bool,
}

impl OutgoingMessage {
    /// Whether the message answers any proposal (approves or rejects one), so that sending
    /// it hands the agent decisions.
    pub fn answers_proposals(&self) -> bool {
        decisions::answers_any(&self.decisions)
    }

    /// The body of `sendMessage` / `sendMessageStreaming`.
    fn body(&self) -> Value {
        let mut body = serde_json::json!({
            "content": self.content,
            "data": decisions::data(&self.decisions),
            "platform_context": {},
        });
        if self.record_only {
            body["message_mode"] = Value::from(1);
            body["role"] = Value::from("user");
        }
        body
    }
}

/// How many times a GET is tried before its failure is reported.
const GET_ATTEMPTS: u32 = 3;
/// Pause before the second try; doubled for each further one.
const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// Connecting to the portal must not take longer than this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The HelpDesk API of one portal.
#[derive(Clone)]
pub struct HelpdeskClient {
    http: reqwest::Client,
    host: String,
    api: Url,
    token: SecretString,
    request_timeout: Duration,
    force_streaming: bool,
    cache: Arc<Lookups>,
    metrics: Metrics,
}

/// Recent workspace and agent lookups, by the name or id asked for and by `id:<id>`, for
/// `HELPDESK_CACHE_SECONDS`.
/// The lock is only held to read or write the map, never across a request.
#[derive(Debug, Default)]
struct Lookups {
    ttl: Duration,
    workspaces: Cache<Workspace>,
    agents: Cache<Agent>,
}

/// Cached values with the time they were fetched.
type Cache<T> = Mutex<HashMap<String, (Instant, T)>>;

impl Lookups {
    fn get<T: Clone>(&self, map: &Cache<T>, key: &str) -> Option<T> {
        let map = map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, value)| value.clone())
    }

    fn put<T>(&self, map: &Cache<T>, key: &str, value: T) {
        let mut map = map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, (at, _)| at.elapsed() < self.ttl);
        map.insert(key.to_owned(), (Instant::now(), value));
    }
}

impl std::fmt::Debug for HelpdeskClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HelpdeskClient").field("host", &self.host).finish()
    }
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
            force_streaming: config.force_streaming,
            cache: Arc::new(Lookups { ttl: config.cache_ttl, ..Lookups::default() }),
            metrics,
        })
    }

    /// The portal's base URL.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The ticket's chat page in the HelpDesk UI.
    pub fn chat_url(&self, workspace: &WorkspaceId, ticket: &TicketName) -> String {
        chat_url(&self.host, workspace, ticket)
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
        let answer = self.exchange(method, url, body, limits::ERROR_BODY_BYTES).await?;
        if !answer.status.is_success() {
            return Err(HelpdeskError::from_status(answer.status, &answer.body));
        }
        if answer.cut {
            return Err(HelpdeskError::too_large());
        }
        json_body(&answer.body)
    }

    /// Sends a request and reads its answer: a successful body up to
    /// [`limits::BODY_BYTES`], an error body up to `error_limit`; the rest is left unread.
    async fn exchange(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        error_limit: usize,
    ) -> Result<Answer, HelpdeskError> {
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
        let limit = if status.is_success() { limits::BODY_BYTES } else { error_limit };
        let (bytes, cut) = read_capped(response, limit).await?;
        Ok(Answer { status, body: String::from_utf8_lossy(&bytes).into_owned(), cut })
    }

    /// Every workspace (`GET admin/data/workspaces`).
    pub async fn list_workspaces(&self) -> Result<Vec<Workspace>, HelpdeskError> {
        self.list(&WORKSPACES).await
    }

    /// A workspace by id.
    pub async fn workspace(&self, id: &WorkspaceId) -> Result<Workspace, HelpdeskError> {
        self.by_id(&WORKSPACES, id.as_str()).await
    }

    /// A workspace by name (exact, case-insensitive) or by id; cached briefly.
    pub async fn find_workspace(&self, name_or_id: &str) -> Result<Workspace, HelpdeskError> {
        self.find_cached(&WORKSPACES, name_or_id).await
    }

    /// Every agent (`GET admin/data/aiagents`).
    pub async fn list_agents(&self) -> Result<Vec<Agent>, HelpdeskError> {
        self.list(&AGENTS).await
    }

    /// An agent by id.
    pub async fn agent(&self, id: &AgentId) -> Result<Agent, HelpdeskError> {
        self.by_id(&AGENTS, id.as_str()).await
    }

    /// An agent by name (exact, case-insensitive) or by id; cached briefly.
    pub async fn find_agent(&self, name_or_id: &str) -> Result<Agent, HelpdeskError> {
        self.find_cached(&AGENTS, name_or_id).await
    }

    /// Whether a send to a ticket of this agent should stream: forced by configuration, or
    /// the agent advertises it (duploctl's rule). The agent lookup is cached, and an agent
    /// found by name ([`HelpdeskClient::find_agent`]) is cached by id too, so resolving a
    /// ticket's agent and choosing how to send to it take one lookup.
    pub async fn should_stream(&self, agent: &AgentId) -> Result<bool, HelpdeskError> {
        if self.force_streaming {
            return Ok(true);
        }
        let key = id_key(agent.as_str());
        if let Some(hit) = self.cache.get(&self.cache.agents, &key) {
            return Ok(hit.streams);
        }
        let found = self.agent(agent).await?;
        let streams = found.streams;
        self.cache.put(&self.cache.agents, &key, found);
        Ok(streams)
    }

    /// Whether configuration forces every send to stream (`HELPDESK_FORCE_STREAMING`),
    /// whatever the agent advertises.
    pub fn forces_streaming(&self) -> bool {
        self.force_streaming
    }

    /// Creates a ticket; returns it (the name is what later calls use).
    pub async fn create_ticket(
        &self,
        workspace: &WorkspaceId,
        title: &str,
        agent: &AgentId,
    ) -> Result<Ticket, HelpdeskError> {
        let body = serde_json::json!({
            "title": title,
            "aiAgentId": agent.as_str(),
            "workspaceId": workspace.as_str(),
            // duploctl's keys, with Slack as the origin.
            "source": "helpdesk",
            "Origin": "slack",
        });
        let url = self.url(&["tickets", workspace.as_str()], None);
        let reply = self.unretried("create_ticket", Method::POST, url, Some(&body)).await?;
        let object = wire::unwrap_object(&reply);
        // Legacy portals answered `{ticket: {...}, message}`.
        let object = if wire::name(object).is_none() {
            wire::field_value(object, &["ticket", "Ticket"]).unwrap_or(object)
        } else {
            object
        };
        let mut created = types::ticket(object).ok_or_else(|| {
            HelpdeskError::Malformed(format!(
                "could not extract the ticket name from the create response: {}",
                limits::quote(&reply.to_string())
            ))
        })?;
        if created.title.is_empty() {
            title.clone_into(&mut created.title);
        }
        created.agent_id.get_or_insert_with(|| agent.clone());
        Ok(created)
    }

    /// A ticket by name.
    pub async fn ticket(&self, workspace: &WorkspaceId, name: &TicketName) -> Result<Ticket, HelpdeskError> {
        let body = self.get("get_ticket", &["tickets", workspace.as_str(), name.as_str()], None).await?;
        types::ticket(wire::unwrap_object(&body)).ok_or_else(|| HelpdeskError::NotFound(format!("ticket '{name}'")))
    }

    /// Sets a ticket's status; closing needs a disposition.
    pub async fn set_status(
        &self,
        workspace: &WorkspaceId,
        name: &TicketName,
        status: ApiStatus,
        disposition: Option<Disposition>,
    ) -> Result<(), HelpdeskError> {
        let mut body = serde_json::json!({ "status": status.as_str() });
        match (status, disposition) {
            (ApiStatus::Closed, None) => {
                return Err(HelpdeskError::BadRequest(
                    "a disposition (resolved or unResolved) is required when closing".to_owned(),
                ));
            }
            (_, Some(disposition)) => body["disposition"] = Value::from(disposition.as_str()),
            (_, None) => {}
        }
        let url = self.url(&["tickets", workspace.as_str(), name.as_str(), "status"], None);
        self.unretried("set_status", Method::PUT, url, Some(&body)).await.map(drop)
    }

    /// Assigns another agent to a ticket.
    pub async fn reassign(
        &self,
        workspace: &WorkspaceId,
        name: &TicketName,
        agent: &AgentId,
    ) -> Result<(), HelpdeskError> {
        let url = self.url(&["tickets", workspace.as_str(), name.as_str(), "assignee", agent.as_str()], None);
        self.unretried("reassign", Method::PUT, url, None).await.map(drop)
    }

    /// Deletes a ticket.
    pub async fn delete_ticket(&self, workspace: &WorkspaceId, name: &TicketName) -> Result<(), HelpdeskError> {
        let url = self.url(&["tickets", workspace.as_str(), name.as_str()], None);
        self.unretried("delete_ticket", Method::DELETE, url, None).await.map(drop)
    }

    /// Sends a message to a ticket and returns the agent's reply as events. `streaming`
    /// picks `sendMessageStreaming` (choose it as duploctl does: forced, or the agent
    /// streams). Never retried: a second send would start a second agent turn.
    pub async fn send_message(
        &self,
        workspace: &WorkspaceId,
        name: &TicketName,
        message: &OutgoingMessage,
        streaming: bool,
    ) -> Result<ReplyStream, HelpdeskError> {
        let body = message.body();
        if streaming {
            self.send_streaming(workspace, name, &body).await
        } else {
            self.send_unary(workspace, name, &body).await
        }
    }

    async fn send_unary(
        &self,
        workspace: &WorkspaceId,
        name: &TicketName,
        body: &Value,
    ) -> Result<ReplyStream, HelpdeskError> {
        const OPERATION: &str = "send_message";
        let url = self.url(&["tickets", workspace.as_str(), name.as_str(), "sendMessage"], None);
        // Error bodies are read whole (within the body cap): a streaming agent's reply may be
        // inside one.
        let answer = match self.exchange(Method::POST, url, Some(body), limits::BODY_BYTES).await {
            Ok(answer) => answer,
            Err(err) => {
                self.metrics.helpdesk_call(OPERATION, err.code());
                return Err(err);
            }
        };
        let events: Vec<Result<AgentEvent, HelpdeskError>> = if !answer.status.is_success() {
            let err = HelpdeskError::from_status(answer.status, &answer.body);
            self.metrics.helpdesk_call(OPERATION, err.code());
            match err {
                HelpdeskError::BadRequest(_) | HelpdeskError::Server { .. } => {
                    recover_streamed_reply(&answer.body, answer.cut).ok_or(err)?
                }
                err => return Err(err),
            }
        } else if answer.cut {
            // The message reached the HelpDesk and was answered: the turn took place, and
            // its reply is what cannot be shown.
            self.metrics.helpdesk_call(OPERATION, "oversized");
            vec![Err(HelpdeskError::too_large())]
        } else {
            let reply = json_body(&answer.body);
            self.metrics.helpdesk_call(OPERATION, reply.as_ref().map_or_else(HelpdeskError::code, |_| "ok"));
            events::reply_events(&reply?).into_iter().map(Ok).collect()
        };
        Ok(Box::pin(futures_util::stream::iter(events)))
    }

    async fn send_streaming(
        &self,
        workspace: &WorkspaceId,
        name: &TicketName,
        body: &Value,
    ) -> Result<ReplyStream, HelpdeskError> {
        let url = self.url(&["tickets", workspace.as_str(), name.as_str(), "sendMessageStreaming"], None);
        let response = self
            .http
            .post(url)
            .bearer_auth(self.token.expose_secret())
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(body)
            .send()
            .await
            .map_err(|e| HelpdeskError::from_reqwest(&e));
        let response = match response {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                let status = r.status();
                let text = match read_capped(r, limits::ERROR_BODY_BYTES).await {
                    Ok((bytes, _)) => String::from_utf8_lossy(&bytes).into_owned(),
                    Err(_) => String::new(),
                };
                let err = HelpdeskError::from_status(status, &text);
                self.metrics.helpdesk_call("send_message_streaming", err.code());
                return Err(err);
            }
            Err(err) => {
                self.metrics.helpdesk_call("send_message_streaming", err.code());
                return Err(err);
            }
        };
        self.metrics.helpdesk_call("send_message_streaming", "ok");
        Ok(Box::pin(event_stream(response.bytes_stream())))
    }

    /// A call that is never retried (writes), answered as JSON.
    async fn unretried(
        &self,
        operation: &'static str,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Value, HelpdeskError> {
        let result = self.send_json(method, url, body).await;
        self.metrics.helpdesk_call(operation, result.as_ref().map_or_else(HelpdeskError::code, |_| "ok"));
        result
    }

    async fn list<T>(&self, c: &Collection<T>) -> Result<Vec<T>, HelpdeskError> {
        let body = self.get(c.list_op, &["admin", "data", c.path], None).await?;
        Ok(wire::unwrap_items(&body).iter().filter_map(c.parse).collect())
    }

    async fn by_id<T>(&self, c: &Collection<T>, id: &str) -> Result<T, HelpdeskError> {
        let body = self.get(c.get_op, &["admin", "data", c.path, id], None).await?;
        (c.parse)(wire::unwrap_object(&body)).ok_or_else(|| HelpdeskError::NotFound(format!("{} '{id}'", c.kind)))
    }

    async fn find_cached<T: Clone>(&self, c: &Collection<T>, name_or_id: &str) -> Result<T, HelpdeskError> {
        let cache = (c.cache)(&self.cache);
        if let Some(hit) = self.cache.get(cache, name_or_id) {
            return Ok(hit);
        }
        let found = self.find(c, name_or_id).await?;
        self.cache.put(cache, name_or_id, found.clone());
        self.cache.put(cache, &id_key((c.id_of)(&found)), found.clone());
        Ok(found)
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
    id_of: fn(&T) -> &str,
    cache: fn(&Lookups) -> &Cache<T>,
}

const WORKSPACES: Collection<Workspace> = Collection {
    kind: "workspace",
    path: "workspaces",
    list_op: "list_workspaces",
    get_op: "get_workspace",
    find_op: "find_workspace",
    parse: types::workspace,
    name_of: |w| &w.name,
    id_of: |w| w.id.as_str(),
    cache: |l| &l.workspaces,
};

const AGENTS: Collection<Agent> = Collection {
    kind: "agent",
    path: "aiagents",
    list_op: "list_agents",
    get_op: "get_agent",
    find_op: "find_agent",
    parse: types::agent,
    name_of: |a| &a.name,
    id_of: |a| a.id.as_str(),
    cache: |l| &l.agents,
};

/// The cache key of a record by its id, apart from the keys of names (a name may look
/// like anything).
fn id_key(id: &str) -> String {
    format!("id:{id}")
}

/// `filters[name]=<value>` with the brackets written literally, as duploctl sends it.
fn name_filter(name: &str) -> String {
    let encoded = serde_urlencoded::to_string([("v", name)]).unwrap_or_default();
    format!("filters[name]={}", encoded.trim_start_matches("v="))
}

/// A response, read up to a limit.
struct Answer {
    status: StatusCode,
    body: String,
    /// The body went on past the limit.
    cut: bool,
}

/// Reads at most `limit` bytes of a body, chunk by chunk; `true` when there was more (the
/// rest is not read: dropping the response closes the connection).
async fn read_capped(mut response: reqwest::Response, limit: usize) -> Result<(Vec<u8>, bool), HelpdeskError> {
    let expected = response.content_length().and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
    let mut body = Vec::with_capacity(expected.min(limit));
    while let Some(chunk) = response.chunk().await.map_err(|e| HelpdeskError::from_reqwest(&e))? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(chunk.get(..room).unwrap_or_default());
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// A body as JSON; empty is `null`.
fn json_body(text: &str) -> Result<Value, HelpdeskError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|e| HelpdeskError::Malformed(format!("{e}: {}", limits::quote(text))))
}

/// A ticket's chat page in the UI of the portal at `host` (its base URL).
pub fn chat_url(host: &str, workspace: &WorkspaceId, ticket: &TicketName) -> String {
    let Ok(mut url) = Url::parse(host) else { return host.to_owned() };
    url.set_query(None);
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.clear().extend(["app", "ai", "service-desk", workspace.as_str(), "tickets", "chat", ticket.as_str()]);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_filters_keep_literal_brackets_and_encode_the_value() {
        assert_eq!(name_filter("dev ops&x"), "filters[name]=dev+ops%26x");
    }
}
