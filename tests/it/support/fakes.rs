//! The stand-ins for Slack's Web API and the HelpDesk, as wiremock mounts, plus readers of
//! what they received and of the messages the bridge sent, and tickets seeded as the bridge
//! stores them. A stand-in can also answer on a [`Clock`]: late by a set delay, noting when
//! each request arrived.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, Request, Respond, ResponseTemplate,
    matchers::{any, method, path, path_regex},
};

/// wiremock's priority for mounts that say none.
const USUAL: u8 = 5;
/// The priority of mounts in front of the usual ones.
const IN_FRONT: u8 = 1;
/// The priority of a fallback behind every other mount.
const BEHIND: u8 = 10;

/// A request a stand-in received, and when.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// When it arrived (before its answer's delay).
    pub at: Instant,
    /// Its path.
    pub path: String,
    /// Its body (see [`body_of`]).
    pub body: Value,
}

/// A stand-in's own clock: the mounts it wraps note each request as it arrives, and answer
/// `delay` later.
#[derive(Clone, Default)]
pub struct Clock {
    delay: Duration,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
}

impl Clock {
    /// A clock whose answers are `delay` late.
    pub fn late_by(delay: Duration) -> Self {
        Self { delay, ..Self::default() }
    }

    /// How late the answers are.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// `answer`, noted and delayed on this clock.
    pub fn wrap<R: Respond>(&self, answer: R) -> impl Respond + use<R> {
        Clocked { clock: self.clone(), answer }
    }

    /// What arrived so far, in order.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().unwrap().clone()
    }
}

/// An answer on a [`Clock`].
struct Clocked<R> {
    clock: Clock,
    answer: R,
}

impl<R: Respond> Respond for Clocked<R> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let arrival = Arrival { at: Instant::now(), path: request.url.path().to_owned(), body: body_of(request) };
        self.clock.arrivals.lock().unwrap().push(arrival);
        self.answer.respond(request).set_delay(self.clock.delay)
    }
}

/// The HelpDesk workspace the fake knows.
pub const WORKSPACE_NAME: &str = "devops";
/// Its id (a 24-hex ObjectId, like the real ones).
pub const WORKSPACE_ID: &str = "5f5f5f5f5f5f5f5f5f5f5f01";
/// The agent the fake knows.
pub const AGENT_NAME: &str = "generic-agent";
/// Its id.
pub const AGENT_ID: &str = "6a6a6a6a6a6a6a6a6a6a6a01";
/// The HelpDesk API prefix.
pub const API: &str = "/v1/aiservicedesk";

/// `chat.postMessage`: every post gets a fresh, increasing ts.
struct Post(AtomicU64);

impl Respond for Post {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "channel": body["channel"], "ts": format!("1800000000.{n:06}"),
            "message": {"text": body["text"], "type": "message"}
        }))
    }
}

/// `users.info`: a name derived from the id.
struct Users;

impl Respond for Users {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let id = request.url.query_pairs().find(|(k, _)| k == "user").map(|(_, v)| v.into_owned()).unwrap_or_default();
        let mut user = json!({"id": id, "name": format!("user-{}", id.to_lowercase()), "real_name": format!("Real {id}"),
                     "profile": {"display_name": format!("Name{id}"), "real_name": format!("Real {id}")}});
        // Who someone is follows from their id: `UA…` workspace admins, `UO…` owners, `UG…`
        // guests, `UX…` people from another organisation (Slack Connect), `UE…` people whose
        // e-mail Slack gives (as it does to an app with `users:read.email`).
        match id.get(..2) {
            Some("UE") => user["profile"]["email"] = json!(format!("{}@example.com", id.to_lowercase())),
            Some("UA") => user["is_admin"] = json!(true),
            Some("UO") => user["is_owner"] = json!(true),
            Some("UG") => user["is_restricted"] = json!(true),
            Some("UX") => user["team_id"] = json!("TX"),
            _ => {}
        }
        ResponseTemplate::new(200).set_body_json(json!({"ok": true, "user": user}))
    }
}

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"ok": true}))
}

/// Every Web API method the bridge calls, answering as Slack does when all is well.
pub async fn mount_slack(slack: &MockServer) {
    mount_slack_answering(slack, &Clock::default(), USUAL).await;
}

/// The methods of [`mount_slack`] answered on `clock`, in front of those, and every other
/// method as Slack answers one it does not know (`unknown_method`), on `clock` too.
pub async fn mount_slack_on(slack: &MockServer, clock: &Clock) {
    mount_slack_answering(slack, clock, IN_FRONT).await;
    let unknown = ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "unknown_method"}));
    Mock::given(any()).respond_with(clock.wrap(unknown)).with_priority(BEHIND).mount(slack).await;
}

async fn mount_slack_answering(slack: &MockServer, clock: &Clock, priority: u8) {
    let mount = |route: Mock| route.with_priority(priority).mount(slack);
    mount(Mock::given(path("/chat.postMessage")).respond_with(clock.wrap(Post(AtomicU64::new(1))))).await;
    for m in [
        "chat.update",
        "chat.postEphemeral",
        "reactions.add",
        "reactions.remove",
        "views.open",
        "views.update",
        "views.publish",
        "assistant.threads.setStatus",
        "assistant.threads.setSuggestedPrompts",
    ] {
        mount(Mock::given(path(format!("/{m}"))).respond_with(clock.wrap(ok()))).await;
    }
    // A workspace whose Slack does not stream natively; `StreamingSlack` mounts one that does.
    for m in ["chat.startStream", "chat.appendStream", "chat.stopStream"] {
        let refused = ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "unknown_method"}));
        mount(Mock::given(path(format!("/{m}"))).respond_with(clock.wrap(refused))).await;
    }
    mount(Mock::given(path("/users.info")).respond_with(clock.wrap(Users))).await;
    // A thread with nothing before the message (a test that needs more mounts its own).
    let replies = json!({"ok": true, "messages": [], "has_more": false});
    mount(
        Mock::given(path("/conversations.replies"))
            .respond_with(clock.wrap(ResponseTemplate::new(200).set_body_json(replies))),
    )
    .await;
    let dm = json!({"ok": true, "channel": {"id": "D0DM"}});
    mount(
        Mock::given(path("/conversations.open")).respond_with(clock.wrap(ResponseTemplate::new(200).set_body_json(dm))),
    )
    .await;
    let permalink = json!({"ok": true, "channel": "C1", "permalink": "https://acme.slack.com/archives/C1/p1"});
    mount(
        Mock::given(path("/chat.getPermalink"))
            .respond_with(clock.wrap(ResponseTemplate::new(200).set_body_json(permalink))),
    )
    .await;
    let upload = json!({"ok": true, "upload_url": format!("{}/upload/F1", slack.uri()), "file_id": "F1"});
    mount(
        Mock::given(path("/files.getUploadURLExternal"))
            .respond_with(clock.wrap(ResponseTemplate::new(200).set_body_json(upload))),
    )
    .await;
    mount(
        Mock::given(path_regex("^/upload/"))
            .respond_with(clock.wrap(ResponseTemplate::new(200).set_body_string("OK - 1"))),
    )
    .await;
    mount(Mock::given(path("/files.completeUploadExternal")).respond_with(clock.wrap(ok()))).await;
    mount(
        Mock::given(path_regex("^/respond/"))
            .respond_with(clock.wrap(ResponseTemplate::new(200).set_body_string("ok"))),
    )
    .await;
}

/// `POST tickets/{ws}`: a new ticket name per call, echoing the title.
struct CreateTicket(AtomicU64);

impl Respond for CreateTicket {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {
            "id": format!("t{n}"), "name": format!("DEVOPS-{n}"), "title": body["title"],
            "aiAgentId": body["aiAgentId"], "workspaceId": body["workspaceId"]
        }}))
    }
}

/// The agent record, streaming or not.
pub fn agent(streams: bool) -> Value {
    json!({"id": AGENT_ID, "name": AGENT_NAME, "metaData": {"STREAMING_ENABLED": if streams { "true" } else { "false" }}})
}

/// The HelpDesk's workspace, agent and ticket-creation routes. Sends are mounted per test.
pub async fn mount_helpdesk(helpdesk: &MockServer) {
    mount_helpdesk_answering(helpdesk, &Clock::default(), USUAL).await;
}

/// The routes of [`mount_helpdesk`] answered on `clock`, in front of those.
pub async fn mount_helpdesk_on(helpdesk: &MockServer, clock: &Clock) {
    mount_helpdesk_answering(helpdesk, clock, IN_FRONT).await;
}

async fn mount_helpdesk_answering(helpdesk: &MockServer, clock: &Clock, priority: u8) {
    let mount = |route: Mock| route.with_priority(priority).mount(helpdesk);
    let data =
        |data: Value| clock.wrap(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": data})));
    let workspace = json!({"id": WORKSPACE_ID, "name": WORKSPACE_NAME});
    let get = |route: String| Mock::given(method("GET")).and(path(route));
    mount(get(format!("{API}/admin/data/workspaces")).respond_with(data(json!({"items": [workspace]})))).await;
    mount(get(format!("{API}/admin/data/workspaces/{WORKSPACE_ID}")).respond_with(data(workspace))).await;
    mount(get(format!("{API}/admin/data/aiagents")).respond_with(data(json!({"items": [agent(false)]})))).await;
    mount(get(format!("{API}/admin/data/aiagents/{AGENT_ID}")).respond_with(data(agent(false)))).await;
    mount(
        Mock::given(method("POST"))
            .and(path(format!("{API}/tickets/{WORKSPACE_ID}")))
            .respond_with(clock.wrap(CreateTicket(AtomicU64::new(1)))),
    )
    .await;
    mount(
        Mock::given(method("PUT"))
            .and(path_regex(format!("^{API}/tickets/{WORKSPACE_ID}/[^/]+/status$")))
            .respond_with(data(json!({}))),
    )
    .await;
}

/// Mounts a unary reply on `sendMessage` of `ticket`.
pub async fn mount_reply(helpdesk: &MockServer, ticket: &str, reply: Value) {
    Mock::given(method("POST"))
        .and(path(format!("{API}/tickets/{WORKSPACE_ID}/{ticket}/sendMessage")))
        .respond_with(ResponseTemplate::new(200).set_body_json(reply))
        .mount(helpdesk)
        .await;
}

/// A request's body as JSON: JSON bodies as they are, form bodies and query strings as
/// objects of their fields.
fn body_of(request: &Request) -> Value {
    if let Ok(value) = serde_json::from_slice::<Value>(&request.body) {
        return value;
    }
    let pairs: Vec<(String, String)> = if request.body.is_empty() {
        request.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
    } else {
        serde_urlencoded::from_bytes(&request.body).unwrap_or_default()
    };
    Value::Object(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

/// Bodies of the requests `server` received on exactly `path`.
pub async fn calls(server: &MockServer, path: &str) -> Vec<Value> {
    server.received_requests().await.unwrap_or_default().iter().filter(|r| r.url.path() == path).map(body_of).collect()
}

/// Bodies of the HelpDesk requests with this method whose path ends with `suffix`.
pub async fn helpdesk_calls(server: &MockServer, method: &str, suffix: &str) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method.as_str() == method && r.url.path().ends_with(suffix))
        .map(body_of)
        .collect()
}

/// The text of every section and context element of a message body, joined.
pub fn text_of(body: &Value) -> String {
    let mut out = Vec::new();
    for block in body["blocks"].as_array().into_iter().flatten() {
        if let Some(t) = block["text"]["text"].as_str() {
            out.push(t.to_owned());
        }
        for e in block["elements"].as_array().into_iter().flatten() {
            if let Some(t) = e["text"].as_str() {
                out.push(t.to_owned());
            }
            if let Some(t) = e["text"]["text"].as_str() {
                out.push(t.to_owned());
            }
        }
    }
    out.join("\n")
}

/// Checks a message body Slack would receive: valid Block Kit within the limits.
pub fn assert_valid_message(body: &Value) {
    let blocks = body["blocks"].as_array().cloned().unwrap_or_default();
    helpdesk_bridge::slack::kit::validate(&blocks, helpdesk_bridge::slack::kit::MESSAGE_BLOCKS)
        .unwrap_or_else(|e| panic!("{e}\nin {body:#}"));
    let text = body["text"].as_str().unwrap_or_default();
    assert!(text.chars().count() <= 4000, "fallback text too long");
}

/// Records every `chat.update` with the time it arrived (for pacing checks).
#[derive(Clone, Default)]
pub struct UpdateLog(Clock);

impl UpdateLog {
    /// Mounts the log in front of the default `chat.update` answer.
    pub async fn mount(slack: &MockServer) -> Self {
        let log = Self::default();
        Mock::given(path("/chat.update")).respond_with(log.0.wrap(ok())).with_priority(IN_FRONT).mount(slack).await;
        log
    }

    /// The updates so far, oldest first.
    pub fn updates(&self) -> Vec<(Instant, Value)> {
        self.0.arrivals().into_iter().map(|arrival| (arrival.at, arrival.body)).collect()
    }
}

/// The thread `ts` of C1 in T1, the channel and workspace the fake Slack's payloads come from.
pub fn thread(ts: &str) -> helpdesk_bridge::ids::ThreadKey {
    use helpdesk_bridge::ids::{ChannelId, MessageTs, TeamId, ThreadKey};
    ThreadKey { team: TeamId::new("T1"), channel: ChannelId::new("C1"), thread_ts: MessageTs::new(ts) }
}

/// A ticket stored as the bridge stores one, in thread `ts` of C1 whose header is the
/// thread's root message; times are milliseconds.
pub async fn seed(
    store: &helpdesk_bridge::store::Store,
    ts: &str,
    name: &str,
    status: helpdesk_bridge::model::TicketStatus,
    requester: &str,
    updated_at: i64,
) -> helpdesk_bridge::model::TicketRecord {
    use helpdesk_bridge::{
        ids::{AgentId, MessageTs, TicketKey, TicketName, UserId, WorkspaceId},
        model::TicketRecord,
    };
    let record = TicketRecord {
        thread: thread(ts),
        ticket: TicketKey {
            host: "http://helpdesk".to_owned(),
            workspace: WorkspaceId::new(WORKSPACE_ID),
            ticket: TicketName::new(name),
        },
        title: format!("Seeded {name}"),
        agent_id: AgentId::new(AGENT_ID),
        agent_name: AGENT_NAME.to_owned(),
        agent_streams: None,
        requester: UserId::new(requester),
        assignee: None,
        status,
        header_ts: Some(MessageTs::new(ts)),
        permalink: Some(format!("https://acme.slack.com/archives/C1/p{}", ts.replace('.', ""))),
        participants: vec![UserId::new(requester)],
        adopted: false,
        always_allow: Vec::new(),
        previous: Vec::new(),
        created_at: updated_at,
        updated_at,
    };
    store.create_ticket(&record).await.unwrap();
    record
}
