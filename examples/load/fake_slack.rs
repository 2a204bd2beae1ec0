//! A stand-in for Slack's Web API that enforces Slack's published rate limits.
//!
//! Every method the bridge calls answers as Slack does when all is well, unless the call
//! breaks a limit; then it answers `429` with `Retry-After` and `ratelimited`, as Slack
//! does. The limits are Slack's published ones, evaluated over sliding 60-second windows
//! (stricter than Slack's per-minute windows):
//!
//! - `chat.postMessage`: 60 a minute per channel ("one message per second per channel");
//! - Tier 2 (`chat.startStream`, `chat.stopStream`): 20 a minute per workspace, per method;
//! - Tier 3 (`chat.update`, `reactions.add`): 50 a minute per workspace, per method;
//! - Tier 4 (`chat.appendStream`, `users.info`, `chat.getPermalink`, `chat.postEphemeral`,
//!   `views.*`): 100.
//!
//! It streams natively as Slack does (`chat.startStream` answers a new message's ts, and a
//! start naming no channel `channel_not_found`), unless told to refuse streaming; then the
//! three stream methods answer `unknown_method`, as for a workspace or token without them.
//! It can also answer every call late ([`FakeSlack::set_latency`]), for the slow-backend
//! critical path.
//!
//! Slack counts "per app per workspace", that is per bot token; each service the load tool
//! starts gets a token of its own, as if each ran in its own workspace, so one phase's
//! calls do not count against the next.
//!
//! Each call that writes a reply (`chat.update`, `chat.postMessage`, `reactions.add` and
//! the three stream methods) let through is logged with the time it arrived, for the relay
//! figures and to count calls per window afterwards.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
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

/// The workspace every event and record belongs to.
pub const TEAM: &str = "T1";
/// The bot's user id.
pub const BOT_USER: &str = "UBOT";

const WINDOW: Duration = Duration::from_secs(60);

/// The methods whose calls are logged.
const LOGGED: [&str; 6] =
    ["chat.update", "chat.postMessage", "reactions.add", "chat.startStream", "chat.appendStream", "chat.stopStream"];

/// Slack's native streaming methods.
const STREAM_METHODS: [&str; 3] = ["chat.startStream", "chat.appendStream", "chat.stopStream"];

/// The methods that change what a reply shows: its placeholder's edits and its stream's
/// start, appends and stop.
pub const UPDATES: [&str; 4] = ["chat.update", "chat.startStream", "chat.appendStream", "chat.stopStream"];

/// One logged call as it arrived.
#[derive(Clone, Debug)]
pub struct Call {
    /// When it arrived.
    pub at: Instant,
    /// The method.
    pub method: String,
    /// The channel it was in.
    pub channel: String,
    /// The message it edited (`chat.update`), streamed (the stream methods; for a start,
    /// the ts it answered) or reacted to, or the thread it posted in.
    pub ts: String,
    /// The whole request body, to look for text in.
    pub body: String,
}

#[derive(Default)]
struct Shared {
    windows: Mutex<HashMap<(String, String), VecDeque<Instant>>>,
    calls: Mutex<HashMap<String, u64>>,
    limited: Mutex<HashMap<String, u64>>,
    log: Mutex<Vec<Call>>,
    posts: AtomicU64,
    /// How late every answer is, in milliseconds.
    latency_ms: AtomicU64,
    /// Whether the stream methods answer `unknown_method`.
    refuses_streaming: AtomicBool,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeSlack {
    /// Its base URL, for `SLACK_API_URL`.
    pub url: String,
    shared: Arc<Shared>,
}

impl FakeSlack {
    /// Starts the fake on a free port.
    pub async fn start() -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new().fallback(serve).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/", listener.local_addr()?);
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                eprintln!("load: the fake Slack stopped: {err}");
            }
        });
        Ok(Self { url, shared })
    }

    /// Calls answered so far, by method (429s included).
    pub fn calls(&self) -> HashMap<String, u64> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// 429s answered so far, by method.
    pub fn limited(&self) -> HashMap<String, u64> {
        self.shared.limited.lock().unwrap().clone()
    }

    /// The calls that changed what a reply shows ([`UPDATES`]) that were let through, oldest
    /// first.
    pub fn updates(&self) -> Vec<Call> {
        self.shared.log.lock().unwrap().iter().filter(|c| UPDATES.contains(&c.method.as_str())).cloned().collect()
    }

    /// All calls let through since the log was last cleared, oldest first.
    pub fn log(&self) -> Vec<Call> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Answers every call this late from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.latency_ms.store(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// How late every call is answered.
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.shared.latency_ms.load(Ordering::Relaxed))
    }

    /// Refuses Slack's stream methods from now on (`true`), as a workspace without them
    /// does, or serves them (`false`).
    pub fn refuse_streaming(&self, refuse: bool) {
        self.shared.refuses_streaming.store(refuse, Ordering::Relaxed);
    }

    /// The calls of a logged `method` that were let through, oldest first.
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.shared.log.lock().unwrap().iter().filter(|c| c.method == method).cloned().collect()
    }

    /// Forgets the call log (between phases).
    pub fn clear_log(&self) {
        self.shared.log.lock().unwrap().clear();
    }
}

/// The per-minute limit of a method and what it is counted per (a channel, or the
/// workspace's token), if Slack limits it.
fn limit(method: &str, token: &str, body: &Value) -> Option<(usize, String)> {
    match method {
        "chat.postMessage" => Some((60, format!("{token} {}", body["channel"].as_str().unwrap_or_default()))),
        "chat.startStream" | "chat.stopStream" => Some((20, token.to_owned())),
        "chat.update" | "reactions.add" => Some((50, token.to_owned())),
        "chat.appendStream" | "users.info" | "chat.getPermalink" | "chat.postEphemeral" | "views.open"
        | "views.update" | "views.publish" => Some((100, token.to_owned())),
        _ => None,
    }
}

/// Takes a place in the method's window, or says how long until one frees up.
fn admit(shared: &Shared, method: &str, token: &str, body: &Value, now: Instant) -> Result<(), Duration> {
    let Some((per_minute, scope)) = limit(method, token, body) else { return Ok(()) };
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

fn json_response(value: &Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
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

async fn serve(State(shared): State<Arc<Shared>>, request: Request<Body>) -> Response {
    let now = Instant::now();
    let method = request.uri().path().trim_start_matches('/').to_owned();
    let query = request.uri().query().map(str::to_owned);
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim_start_matches("Bearer ")
        .to_owned();
    let bytes = axum::body::to_bytes(request.into_body(), 4 << 20).await.unwrap_or_default();
    let body = fields(query.as_deref(), &bytes);
    *shared.calls.lock().unwrap().entry(method.clone()).or_default() += 1;
    let latency = Duration::from_millis(shared.latency_ms.load(Ordering::Relaxed));
    if STREAM_METHODS.contains(&method.as_str()) {
        let refusal = if shared.refuses_streaming.load(Ordering::Relaxed) {
            Some("unknown_method")
        } else if body["channel"].as_str().unwrap_or_default().is_empty() {
            Some("channel_not_found")
        } else {
            None
        };
        if let Some(error) = refusal {
            tokio::time::sleep(latency).await;
            return json_response(&json!({"ok": false, "error": error}));
        }
    }
    if let Err(wait) = admit(&shared, &method, &token, &body, now) {
        *shared.limited.lock().unwrap().entry(method).or_default() += 1;
        let seconds = wait.as_secs().max(1).to_string();
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, seconds), (header::CONTENT_TYPE, "application/json".to_owned())],
            r#"{"ok":false,"error":"ratelimited"}"#,
        )
            .into_response();
    }
    // A new message's ts, for a post or a stream's start.
    let new_ts = || format!("1900000000.{:06}", shared.posts.fetch_add(1, Ordering::Relaxed));
    let created = matches!(method.as_str(), "chat.postMessage" | "chat.startStream").then(new_ts);
    if LOGGED.contains(&method.as_str()) {
        let field = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
        shared.log.lock().unwrap().push(Call {
            at: now,
            method: method.clone(),
            channel: field("channel"),
            ts: match method.as_str() {
                "chat.postMessage" => field("thread_ts"),
                "chat.startStream" => created.clone().unwrap_or_default(),
                "reactions.add" => field("timestamp"),
                _ => field("ts"),
            },
            body: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    tokio::time::sleep(latency).await;
    match method.as_str() {
        "auth.test" => json_response(&json!({
            "ok": true, "url": "https://acme.slack.com/", "team": "Acme", "user": "helpdesk",
            "team_id": TEAM, "user_id": BOT_USER, "bot_id": "BBOT"
        })),
        "chat.postMessage" | "chat.startStream" => {
            json_response(&json!({"ok": true, "channel": body["channel"], "ts": created.unwrap_or_default()}))
        }
        "chat.update" | "chat.appendStream" | "chat.stopStream" => {
            json_response(&json!({"ok": true, "channel": body["channel"], "ts": body["ts"]}))
        }
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
