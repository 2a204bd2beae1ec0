//! The HelpDesk client against a wiremock HelpDesk.

use std::time::Duration;

use helpdesk_bridge::{
    config::HelpdeskConfig,
    helpdesk::{HelpdeskClient, HelpdeskError},
    ids::{TicketName, WorkspaceId},
    telemetry::Metrics,
};
use serde_json::json;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method, path, query_param},
};

fn client(server: &MockServer) -> HelpdeskClient {
    let config = HelpdeskConfig {
        host: server.uri(),
        token: "duplo-token".to_owned().into(),
        default_workspace: None,
        default_agent: None,
        request_timeout: Duration::from_secs(2),
        stream_idle_timeout: Duration::from_secs(2),
    };
    HelpdeskClient::new(&config, Metrics::default()).unwrap()
}

const WS_PATH: &str = "/v1/aiservicedesk/admin/data/workspaces";
const AGENTS_PATH: &str = "/v1/aiservicedesk/admin/data/aiagents";

#[tokio::test]
async fn workspaces_are_found_by_exact_name_in_either_envelope_and_casing() {
    let server = MockServer::start().await;
    // The server-side filter is fuzzy; the client keeps the exact (case-insensitive) match.
    Mock::given(method("GET"))
        .and(path(WS_PATH))
        .and(query_param("filters[name]", "DevOps"))
        .and(header("authorization", "Bearer duplo-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {"items": [
            {"id": "65f0c0ffee0000000000aaaa", "name": "devops-sandbox"},
            {"id": "65f0c0ffee0000000000bbbb", "name": "devops"}
        ]}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(WS_PATH))
        .and(query_param("filters[name]", "Platform"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!([{"Id": "65f0c0ffee0000000000cccc", "Name": "platform"}])),
        )
        .mount(&server)
        .await;
    let helpdesk = client(&server);
    let devops = helpdesk.find_workspace("DevOps").await.unwrap();
    assert_eq!(devops.id, WorkspaceId::new("65f0c0ffee0000000000bbbb"));
    assert_eq!(devops.name, "devops");
    let platform = helpdesk.find_workspace("Platform").await.unwrap();
    assert_eq!(platform.id.as_str(), "65f0c0ffee0000000000cccc");
}

#[tokio::test]
async fn name_lookups_refuse_no_match_and_several_matches() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(AGENTS_PATH))
        .and(query_param("filters[name]", "k8s"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {"items": [
            {"id": "a1", "name": "K8s"}, {"_id": "a2", "Name": "k8S"}
        ]}})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(AGENTS_PATH))
        .and(query_param("filters[name]", "ghost"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"success": true, "data": {"items": [{"id": "a3", "name": "ghostwriter"}]}})),
        )
        .mount(&server)
        .await;
    let helpdesk = client(&server);
    assert_eq!(
        helpdesk.find_agent("k8s").await,
        Err(HelpdeskError::Ambiguous { kind: "agent", name: "k8s".to_owned(), count: 2 })
    );
    assert!(matches!(helpdesk.find_agent("ghost").await, Err(HelpdeskError::NotFound(_))));
}

#[tokio::test]
async fn ids_are_fetched_directly_and_streaming_comes_from_metadata() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{AGENTS_PATH}/65f0c0ffee00000000000001")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {
            "id": "65f0c0ffee00000000000001", "name": "k8s-agent", "doesSupportStreaming": false,
            "metaData": {"STREAMING_ENABLED": "true"}
        }})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{WS_PATH}/65f0c0ffee00000000000002")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {}})))
        .mount(&server)
        .await;
    let helpdesk = client(&server);
    let agent = helpdesk.find_agent("65f0c0ffee00000000000001").await.unwrap();
    assert!(agent.streams, "metaData.STREAMING_ENABLED wins over doesSupportStreaming");
    assert_eq!(agent.name, "k8s-agent");
    assert!(
        matches!(helpdesk.find_workspace("65f0c0ffee00000000000002").await, Err(HelpdeskError::NotFound(_))),
        "a record without an id means not found"
    );
}

#[tokio::test]
async fn errors_map_to_what_a_caller_acts_on() {
    let server = MockServer::start().await;
    let cases = [
        (401, "token expired", "unauthorized"),
        (403, "forbidden", "unauthorized"),
        (404, "no such workspace", "not_found"),
        (400, "Workspace not found", "not_found"),
        (400, "bad filter", "bad_request"),
        (500, "boom", "server_error"),
    ];
    let helpdesk = client(&server);
    for (status, body, code) in cases {
        server.reset().await;
        Mock::given(method("GET"))
            .and(path(WS_PATH))
            .respond_with(ResponseTemplate::new(status).set_body_string(body))
            .mount(&server)
            .await;
        let err = helpdesk.list_workspaces().await.expect_err("an error");
        assert_eq!(err.code(), code, "{status} {body}: {err}");
        assert!(err.to_string().contains(body), "the HelpDesk's words are kept: {err}");
        assert!(!err.to_string().contains("duplo-token"));
    }
    server.reset().await;
    Mock::given(method("GET"))
        .and(path(WS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>"))
        .mount(&server)
        .await;
    assert_eq!(helpdesk.list_workspaces().await.unwrap_err().code(), "malformed");
}

#[tokio::test]
async fn gets_retry_gateway_errors_then_succeed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(WS_PATH))
        .respond_with(ResponseTemplate::new(503).set_body_string("warming up"))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(WS_PATH))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": {"items": [{"id": "w1", "name": "devops"}]}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let workspaces = client(&server).list_workspaces().await.unwrap();
    assert_eq!(workspaces.len(), 1);
}

#[tokio::test]
async fn gets_give_up_after_three_tries_and_time_out() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(WS_PATH))
        .respond_with(ResponseTemplate::new(502))
        .expect(3)
        .mount(&server)
        .await;
    let err = client(&server).list_workspaces().await.unwrap_err();
    assert_eq!(err, HelpdeskError::Server { status: 502, message: String::new() });

    let slow = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(AGENTS_PATH))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&slow)
        .await;
    let started = std::time::Instant::now();
    assert_eq!(client(&slow).list_agents().await.unwrap_err(), HelpdeskError::Timeout);
    assert!(started.elapsed() < Duration::from_secs(9), "three 2 s tries, not three 5 s waits");
}

#[tokio::test]
async fn chat_urls_point_at_the_ticket_page() {
    let server = MockServer::start().await;
    let url = client(&server).chat_url(&WorkspaceId::new("65f0c0ffee0000000000abcd"), &TicketName::new("DEVOPS-42"));
    assert_eq!(url, format!("{}/app/ai/service-desk/65f0c0ffee0000000000abcd/tickets/chat/DEVOPS-42", server.uri()));
}
