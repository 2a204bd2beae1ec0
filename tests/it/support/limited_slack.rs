//! A Slack Web API stand-in that enforces rate limits, for the replica tests: every process
//! that calls it counts against the same windows, so replicas that do not share their
//! budgets are caught with a `429`.
//!
//! Limits are counted over sliding 60-second windows, stricter than Slack's per-minute
//! ones: `chat.postMessage` per channel (60, "one a second"), `chat.update` per workspace
//! (the budget the bridge is configured with, `SLACK_UPDATES_PER_MINUTE`), `reactions.add`
//! per workspace (Tier 3, 50), and Tier 4 methods per workspace (100). A call past a limit
//! is answered `429` with `Retry-After` and `ratelimited`, as Slack does, and counted. A
//! channel's workspace is what the test declared ([`LimitedSlack::channel_in`]), `T1`
//! otherwise.
//!
//! Every call let through is recorded with its body, and each post gets a fresh ts.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{Request, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::app::{BOT_ID, BOT_USER};

const WINDOW: Duration = Duration::from_secs(60);

/// One call the fake let through.
#[derive(Clone, Debug)]
pub struct Call {
    /// The Web API method.
    pub method: String,
    /// Its fields: JSON bodies as they are, forms and query strings as objects.
    pub body: Value,
    /// The ts a `chat.postMessage` was given.
    pub ts: Option<String>,
}

struct Shared {
    updates_per_minute: usize,
    workspaces: Mutex<HashMap<String, String>>,
    windows: Mutex<HashMap<(String, String), VecDeque<Instant>>>,
    limited: Mutex<HashMap<String, u64>>,
    calls: Mutex<Vec<Call>>,
    posts: AtomicU64,
}

/// The running fake.
#[derive(Clone)]
pub struct LimitedSlack {
    /// Its base URL, for `SLACK_API_URL`.
    pub url: String,
    shared: Arc<Shared>,
}

impl LimitedSlack {
    /// Starts the fake with a `chat.update` budget of `updates_per_minute` per workspace.
    pub async fn start(updates_per_minute: usize) -> Self {
        let shared = Arc::new(Shared {
            updates_per_minute,
            workspaces: Mutex::new(HashMap::new()),
            windows: Mutex::new(HashMap::new()),
            limited: Mutex::new(HashMap::new()),
            calls: Mutex::new(Vec::new()),
            posts: AtomicU64::new(1),
        });
        let url = super::serve(axum::Router::new().fallback(serve).with_state(shared.clone())).await + "/";
        Self { url, shared }
    }

    /// Declares that `channel` belongs to workspace `team`.
    pub fn channel_in(&self, channel: &str, team: &str) {
        self.shared.workspaces.lock().unwrap().insert(channel.to_owned(), team.to_owned());
    }

    /// Every call let through so far, oldest first.
    pub fn all(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// The calls of `method` let through so far, oldest first.
    pub fn calls(&self, method: &str) -> Vec<Call> {
        self.shared.calls.lock().unwrap().iter().filter(|c| c.method == method).cloned().collect()
    }

    /// `429`s answered so far, by method.
    pub fn limited(&self) -> HashMap<String, u64> {
        self.shared.limited.lock().unwrap().clone()
    }

    /// The posts made in the thread `thread_ts` of `channel`, oldest first.
    pub fn posts_in(&self, channel: &str, thread_ts: &str) -> Vec<Call> {
        self.calls("chat.postMessage")
            .into_iter()
            .filter(|c| c.body["channel"] == channel && c.body["thread_ts"] == thread_ts)
            .collect()
    }

    /// The edits of the message `ts` of `channel`, oldest first.
    pub fn updates_of(&self, channel: &str, ts: &str) -> Vec<Call> {
        self.calls("chat.update").into_iter().filter(|c| c.body["channel"] == channel && c.body["ts"] == ts).collect()
    }
}

/// The per-minute limit of a call and what it is counted per, if the fake limits it.
fn limit(shared: &Shared, method: &str, body: &Value) -> Option<(usize, String)> {
    let channel = body["channel"].as_str().unwrap_or_default();
    let workspace = || shared.workspaces.lock().unwrap().get(channel).cloned().unwrap_or_else(|| "T1".to_owned());
    match method {
        "chat.postMessage" => Some((60, channel.to_owned())),
        "chat.update" => Some((shared.updates_per_minute, workspace())),
        "reactions.add" => Some((50, workspace())),
        "users.info" | "chat.getPermalink" | "chat.postEphemeral" | "views.open" | "views.update" | "views.publish" => {
            Some((100, workspace()))
        }
        _ => None,
    }
}

/// Takes a place in the call's window, or says how long until one frees up.
fn admit(shared: &Shared, method: &str, body: &Value, now: Instant) -> Result<(), Duration> {
    let Some((per_minute, scope)) = limit(shared, method, body) else { return Ok(()) };
    let mut windows = shared.windows.lock().unwrap();
    let window = windows.entry((method.to_owned(), scope)).or_default();
    while window.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
        window.pop_front();
    }
    if window.len() >= per_minute {
        let oldest = *window.front().expect("a full window has calls");
        return Err(WINDOW - now.duration_since(oldest));
    }
    window.push_back(now);
    Ok(())
}

/// A request's fields: JSON bodies as they are, forms and query strings as objects.
fn fields(query: Option<&str>, bytes: &Bytes) -> Value {
    if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        return value;
    }
    let pairs: Vec<(String, String)> = if bytes.is_empty() {
        serde_urlencoded::from_str(query.unwrap_or_default()).unwrap_or_default()
    } else {
        serde_urlencoded::from_bytes(bytes).unwrap_or_default()
    };
    Value::Object(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

fn json_response(value: &Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

async fn serve(State(shared): State<Arc<Shared>>, request: Request<Body>) -> Response {
    let now = Instant::now();
    let method = request.uri().path().trim_start_matches('/').to_owned();
    let query = request.uri().query().map(str::to_owned);
    let bytes = axum::body::to_bytes(request.into_body(), 4 << 20).await.unwrap_or_default();
    let body = fields(query.as_deref(), &bytes);
    if let Err(wait) = admit(&shared, &method, &body, now) {
        *shared.limited.lock().unwrap().entry(method).or_default() += 1;
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [
                (header::RETRY_AFTER, wait.as_secs().max(1).to_string()),
                (header::CONTENT_TYPE, "application/json".into()),
            ],
            r#"{"ok":false,"error":"ratelimited"}"#,
        )
            .into_response();
    }
    let ts = (method == "chat.postMessage")
        .then(|| format!("1900000000.{:06}", shared.posts.fetch_add(1, Ordering::SeqCst)));
    shared.calls.lock().unwrap().push(Call { method: method.clone(), body: body.clone(), ts: ts.clone() });
    match method.as_str() {
        "auth.test" => json_response(&json!({
            "ok": true, "url": "https://acme.slack.com/", "team": "Acme", "user": "helpdesk",
            "team_id": "T1", "user_id": BOT_USER, "bot_id": BOT_ID
        })),
        "chat.postMessage" => json_response(&json!({"ok": true, "channel": body["channel"], "ts": ts})),
        "chat.update" => json_response(&json!({"ok": true, "channel": body["channel"], "ts": body["ts"]})),
        "users.info" => {
            let id = body["user"].as_str().unwrap_or_default();
            json_response(&json!({"ok": true, "user": {"id": id, "name": id.to_lowercase(),
                "profile": {"display_name": format!("Person {id}"), "real_name": format!("Person {id}")}}}))
        }
        "chat.getPermalink" => json_response(&json!({"ok": true, "channel": body["channel"],
            "permalink": format!("https://acme.slack.com/archives/{}/p1", body["channel"].as_str().unwrap_or_default())})),
        _ => json_response(&json!({"ok": true})),
    }
}
