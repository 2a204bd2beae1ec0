//! The stand-ins for Slack's Web API and the HelpDesk, as wiremock mounts, plus readers of
//! what they received and of the messages the bridge sent, and tickets seeded as the bridge
//! stores them.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, Request, Respond, ResponseTemplate,
    matchers::{method, path, path_regex},
};

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
        // guests, `UX…` people from another organisation (Slack Connect).
        match id.get(..2) {
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
    Mock::given(path("/chat.postMessage")).respond_with(Post(AtomicU64::new(1))).mount(slack).await;
    for m in [
        "chat.update",
        "chat.postEphemeral",
        "reactions.add",
        "reactions.remove",
        "views.open",
        "views.update",
        "views.publish",
    ] {
        Mock::given(path(format!("/{m}"))).respond_with(ok()).mount(slack).await;
    }
    Mock::given(path("/users.info")).respond_with(Users).mount(slack).await;
    Mock::given(path("/chat.getPermalink"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"ok": true, "channel": "C1", "permalink": "https://acme.slack.com/archives/C1/p1"}),
            ),
        )
        .mount(slack)
        .await;
    Mock::given(path("/files.getUploadURLExternal"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"ok": true, "upload_url": format!("{}/upload/F1", slack.uri()), "file_id": "F1"}),
            ),
        )
        .mount(slack)
        .await;
    Mock::given(path_regex("^/upload/"))
        .respond_with(ResponseTemplate::new(200).set_body_string("OK - 1"))
        .mount(slack)
        .await;
    Mock::given(path("/files.completeUploadExternal")).respond_with(ok()).mount(slack).await;
    Mock::given(path_regex("^/respond/"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(slack)
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
    let workspace = json!({"id": WORKSPACE_ID, "name": WORKSPACE_NAME});
    Mock::given(method("GET"))
        .and(path(format!("{API}/admin/data/workspaces")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {"items": [workspace]}})),
        )
        .mount(helpdesk)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/admin/data/workspaces/{WORKSPACE_ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": workspace})))
        .mount(helpdesk)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/admin/data/aiagents")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {"items": [agent(false)]}})),
        )
        .mount(helpdesk)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/admin/data/aiagents/{AGENT_ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": agent(false)})))
        .mount(helpdesk)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/tickets/{WORKSPACE_ID}")))
        .respond_with(CreateTicket(AtomicU64::new(1)))
        .mount(helpdesk)
        .await;
    Mock::given(method("PUT"))
        .and(path_regex(format!("^{API}/tickets/{WORKSPACE_ID}/[^/]+/status$")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {}})))
        .mount(helpdesk)
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
pub struct UpdateLog(std::sync::Arc<std::sync::Mutex<Vec<(std::time::Instant, Value)>>>);

impl Respond for UpdateLog {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.lock().unwrap().push((std::time::Instant::now(), body_of(request)));
        ok()
    }
}

impl UpdateLog {
    /// Mounts the log in front of the default `chat.update` answer.
    pub async fn mount(slack: &MockServer) -> Self {
        let log = Self::default();
        Mock::given(path("/chat.update")).respond_with(log.clone()).with_priority(1).mount(slack).await;
        log
    }

    /// The updates so far, oldest first.
    pub fn updates(&self) -> Vec<(std::time::Instant, Value)> {
        self.0.lock().unwrap().clone()
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
        requester: UserId::new(requester),
        assignee: None,
        status,
        header_ts: Some(MessageTs::new(ts)),
        permalink: Some(format!("https://acme.slack.com/archives/C1/p{}", ts.replace('.', ""))),
        participants: vec![UserId::new(requester)],
        adopted: false,
        created_at: updated_at,
        updated_at,
    };
    store.create_ticket(&record).await.unwrap();
    record
}
