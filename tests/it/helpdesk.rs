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
    client_for(&server.uri(), Duration::from_secs(2), Duration::from_secs(60), false)
}

/// A client of the HelpDesk at `host`, with the given stream idle timeout and lookup cache.
pub fn client_for(host: &str, idle: Duration, cache_ttl: Duration, force_streaming: bool) -> HelpdeskClient {
    let config = HelpdeskConfig {
        host: host.to_owned(),
        token: "duplo-token".to_owned().into(),
        default_workspace: None,
        default_agent: None,
        request_timeout: Duration::from_secs(2),
        stream_idle_timeout: idle,
        cache_ttl,
        force_streaming,
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
            "metaData": {"STREAMING_ENABLED": "true",
                "prompt_suggestions": r#"[{"title": "Crashing pods", "message": "Which pods are crashing?"}, "Disk usage"]"#}
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
    let suggested: Vec<(&str, &str)> =
        agent.prompt_suggestions().iter().map(|s| (s.title.as_str(), s.message.as_str())).collect();
    assert_eq!(suggested, [("Crashing pods", "Which pods are crashing?"), ("Disk usage", "Disk usage")]);
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

mod tickets {
    use std::time::Duration;

    use futures_util::StreamExt;
    use helpdesk_bridge::{
        helpdesk::{ApiStatus, Disposition, HelpdeskError, OutgoingMessage, ReplyStream, events::AgentEvent},
        ids::{AgentId, TicketName, WorkspaceId},
        model::{Decision, ProposalForm, ProposedCommand},
    };
    use serde_json::json;
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{body_json, header, method, path},
    };

    use super::client;

    const WS: &str = "65f0c0ffee0000000000abcd";
    const T: &str = "/v1/aiservicedesk/tickets/65f0c0ffee0000000000abcd";

    fn ws() -> WorkspaceId {
        WorkspaceId::new(WS)
    }

    async fn collect(stream: ReplyStream) -> Vec<Result<AgentEvent, HelpdeskError>> {
        stream.collect().await
    }

    #[tokio::test]
    async fn create_sends_duploctls_body_and_reads_every_response_shape() {
        let server = MockServer::start().await;
        let expected = json!({"title": "Disk full", "aiAgentId": "a1", "workspaceId": WS, "source": "helpdesk", "Origin": "slack"});
        let shapes = [
            json!({"success": true, "data": {"name": "DEVOPS-1", "id": "x"}}),
            json!({"Name": "DEVOPS-1", "AIAgentId": "a1"}),
            json!({"ticket": {"name": "DEVOPS-1"}, "message": "legacy"}),
        ];
        for shape in shapes {
            server.reset().await;
            Mock::given(method("POST"))
                .and(path(T))
                .and(header("authorization", "Bearer duplo-token"))
                .and(body_json(&expected))
                .respond_with(ResponseTemplate::new(200).set_body_json(&shape))
                .expect(1)
                .mount(&server)
                .await;
            let ticket = client(&server).create_ticket(&ws(), "Disk full", &AgentId::new("a1")).await.unwrap();
            assert_eq!(ticket.name, TicketName::new("DEVOPS-1"), "{shape}");
            assert_eq!(ticket.title, "Disk full");
            assert_eq!(ticket.status, ApiStatus::Open);
        }
        server.reset().await;
        Mock::given(method("POST"))
            .and(path(T))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {"name": "null"}})))
            .mount(&server)
            .await;
        let err = client(&server).create_ticket(&ws(), "x", &AgentId::new("a1")).await.unwrap_err();
        assert_eq!(err.code(), "malformed");
    }

    #[tokio::test]
    async fn lifecycle_calls_hit_duploctls_routes() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!("{T}/DEVOPS-1")))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"name": "DEVOPS-1", "title": "t", "aiAgentId": "a1",
                "history": {"statuses": [{"status": "open"}, {"status": "inProgress"}]}})),
            )
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(path(format!("{T}/DEVOPS-1/status")))
            .and(body_json(json!({"status": "closed", "disposition": "resolved"})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(path(format!("{T}/DEVOPS-1/status")))
            .and(body_json(json!({"status": "inProgress"})))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(path(format!("{T}/DEVOPS-1/assignee/a2")))
            .respond_with(ResponseTemplate::new(200))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .and(path(format!("{T}/DEVOPS-1")))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&server)
            .await;

        let helpdesk = client(&server);
        let name = TicketName::new("DEVOPS-1");
        let ticket = helpdesk.ticket(&ws(), &name).await.unwrap();
        assert_eq!((ticket.status, ticket.agent_id.clone()), (ApiStatus::InProgress, Some(AgentId::new("a1"))));
        helpdesk.set_status(&ws(), &name, ApiStatus::Closed, Some(Disposition::Resolved)).await.unwrap();
        helpdesk.set_status(&ws(), &name, ApiStatus::InProgress, None).await.unwrap();
        assert_eq!(
            helpdesk.set_status(&ws(), &name, ApiStatus::Closed, None).await.unwrap_err().code(),
            "bad_request",
            "checked before sending"
        );
        helpdesk.reassign(&ws(), &name, &AgentId::new("a2")).await.unwrap();
        helpdesk.delete_ticket(&ws(), &name).await.unwrap();
    }

    #[tokio::test]
    async fn unary_sends_carry_decisions_and_are_never_retried() {
        let server = MockServer::start().await;
        let data = json!({"cmds": [{"command": "kubectl get pods", "execute": true}, {"command": "rm -rf /", "execute": false, "rejection_reason": "no"}]});
        Mock::given(method("POST"))
            .and(path(format!("{T}/DEVOPS-1/sendMessage")))
            .and(body_json(json!({"content": "", "data": data, "platform_context": {}})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"role": "assistant", "content": "Ran it.",
                "data": {"executed_cmds": [{"command": "kubectl get pods", "output": "web-1 Running"}]}})))
            .expect(1)
            .mount(&server)
            .await;
        let decided = |command: &str, decision| ProposedCommand {
            decision,
            ..ProposedCommand::new(ProposalForm::Command, String::new(), command.to_owned())
        };
        let decisions = vec![
            decided("kubectl get pods", Decision::Approve),
            decided("rm -rf /", Decision::Reject { reason: Some("no".to_owned()) }),
        ];
        let message = OutgoingMessage { content: String::new(), decisions, record_only: false };
        let events =
            collect(client(&server).send_message(&ws(), &TicketName::new("DEVOPS-1"), &message, false).await.unwrap())
                .await;
        let events: Vec<_> = events.into_iter().map(Result::unwrap).collect();
        assert_eq!(events[0], AgentEvent::TextDelta("Ran it.".to_owned()));
        assert!(matches!(&events[1], AgentEvent::Executed(e) if e[0].output == "web-1 Running"));

        let down = MockServer::start().await;
        Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).expect(1).mount(&down).await;
        let err = client(&down).send_message(&ws(), &TicketName::new("DEVOPS-1"), &message, false).await.err().unwrap();
        assert_eq!(err.code(), "server_error");
        // `expect(1)` is verified when `down` drops: exactly one POST.
    }

    #[tokio::test]
    async fn record_only_messages_do_not_wake_the_agent() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(format!("{T}/DEVOPS-1/sendMessage")))
            .and(body_json(json!({"content": "note: checked the LB", "data": {}, "platform_context": {}, "message_mode": 1, "role": "user"})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"role": "assistant", "content": ""})))
            .expect(1)
            .mount(&server)
            .await;
        let message =
            OutgoingMessage { content: "note: checked the LB".to_owned(), decisions: Vec::new(), record_only: true };
        let events =
            collect(client(&server).send_message(&ws(), &TicketName::new("DEVOPS-1"), &message, false).await.unwrap())
                .await;
        assert_eq!(
            events.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            [AgentEvent::Done { stop_reason: None }]
        );
    }

    #[tokio::test]
    async fn a_streaming_agent_behind_the_unary_endpoint_is_recovered() {
        let server = MockServer::start().await;
        let ndjson = "{\"type\":\"text_delta\",\"text\":\"Hello \"}\n{\"type\":\"text_delta\",\"text\":\"there\"}\n{\"type\":\"done\"}\n";
        Mock::given(method("POST"))
            .and(path(format!("{T}/DEVOPS-1/sendMessage")))
            .respond_with(ResponseTemplate::new(400).set_body_json(ndjson))
            .mount(&server)
            .await;
        let message = OutgoingMessage { content: "hi".to_owned(), decisions: Vec::new(), record_only: false };
        let events =
            collect(client(&server).send_message(&ws(), &TicketName::new("DEVOPS-1"), &message, false).await.unwrap())
                .await;
        let text: String = events
            .into_iter()
            .filter_map(|e| match e.unwrap() {
                AgentEvent::TextDelta(t) => Some(t),
                _ => None,
            })
            .collect();
        assert_eq!(text, "Hello there");

        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_string("title is required"))
            .mount(&server)
            .await;
        let err =
            client(&server).send_message(&ws(), &TicketName::new("DEVOPS-1"), &message, false).await.err().unwrap();
        assert_eq!(err, HelpdeskError::BadRequest("title is required".to_owned()));
    }

    #[tokio::test]
    async fn streaming_sends_ask_for_sse_and_end_at_done_or_error() {
        let server = MockServer::start().await;
        let sse = "event: message\ndata: {\"type\":\"intermittent_update\",\"text\":\"Thinking...\"}\n\n\
                   event: message\ndata: {\"type\":\"text_delta\",\"text\":\"Pods are \"}\n\n\
                   data: {\"type\":\"text_delta\",\"text\":\"OOMKilled.\"}\n\n\
                   data: {\"type\":\"commands\",\"commands\":[{\"command\":\"kubectl describe pod web-1\",\"execute\":false}]}\n\n\
                   data: {\"type\":\"done\",\"stop_reason\":\"tool_use\"}\n\ndata: {\"type\":\"text_delta\",\"text\":\"after done\"}\n\n";
        Mock::given(method("POST"))
            .and(path(format!("{T}/DEVOPS-1/sendMessageStreaming")))
            .and(header("accept", "text/event-stream"))
            .respond_with(
                ResponseTemplate::new(200).insert_header("content-type", "text/event-stream").set_body_string(sse),
            )
            .expect(1)
            .mount(&server)
            .await;
        let message = OutgoingMessage { content: "why?".to_owned(), decisions: Vec::new(), record_only: false };
        let events: Vec<_> =
            collect(client(&server).send_message(&ws(), &TicketName::new("DEVOPS-1"), &message, true).await.unwrap())
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
        assert_eq!(events.len(), 5, "{events:?}");
        assert_eq!(events[0], AgentEvent::Status("Thinking...".to_owned()));
        assert!(matches!(&events[3], AgentEvent::Proposed(p) if p[0].command == "kubectl describe pod web-1"));
        assert_eq!(events[4], AgentEvent::Done { stop_reason: Some("tool_use".to_owned()) });

        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_string("data: {\"type\":\"text_delta\",\"text\":\"par\"}\n\ndata: {\"type\":\"error\",\"error\":\"model overloaded\"}\n\n"))
            .mount(&server)
            .await;
        let events: Vec<_> =
            collect(client(&server).send_message(&ws(), &TicketName::new("DEVOPS-1"), &message, true).await.unwrap())
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
        assert_eq!(events, [AgentEvent::TextDelta("par".to_owned()), AgentEvent::Error("model overloaded".to_owned())]);

        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(404).set_body_string("Ticket not found"))
            .mount(&server)
            .await;
        let err =
            client(&server).send_message(&ws(), &TicketName::new("DEVOPS-1"), &message, true).await.err().unwrap();
        assert_eq!(err.code(), "not_found");
    }

    /// A tiny HTTP server that writes an SSE body chunk by chunk, each chunk only when the
    /// test releases it, so the test can tell streamed events from buffered ones.
    async fn timed_sse_server(chunks: Vec<&'static str>, release: tokio::sync::mpsc::UnboundedReceiver<()>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut release = release;
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                request.extend_from_slice(&buf[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
                .await
                .unwrap();
            for chunk in chunks {
                if release.recv().await.is_none() {
                    return;
                }
                let frame = format!("{:x}\r\n{chunk}\r\n", chunk.len());
                socket.write_all(frame.as_bytes()).await.unwrap();
                socket.flush().await.unwrap();
            }
            let _ = release.recv().await;
            let _ = socket.write_all(b"0\r\n\r\n").await;
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn streamed_events_surface_as_they_arrive_and_silence_times_out() {
        let (release, gate) = tokio::sync::mpsc::unbounded_channel();
        let chunks = vec![
            "data: {\"type\":\"text_delta\",\"text\":\"first\"}\n\n",
            "data: {\"type\":\"text_d",
            "elta\",\"text\":\"second\"}\n\ndata: {\"type\":\"done\"}\n\n",
        ];
        let host = timed_sse_server(chunks, gate).await;
        let helpdesk = super::client_for(&host, Duration::from_millis(800), Duration::from_secs(60), false);
        let message = OutgoingMessage { content: "go".to_owned(), decisions: Vec::new(), record_only: false };
        release.send(()).unwrap();
        let mut stream = helpdesk.send_message(&ws(), &TicketName::new("DEVOPS-1"), &message, true).await.unwrap();
        // Only the first chunk has been written: its event must arrive before any more is.
        let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("the first event streams")
            .unwrap()
            .unwrap();
        assert_eq!(first, AgentEvent::TextDelta("first".to_owned()));
        release.send(()).unwrap();
        release.send(()).unwrap();
        let second = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(second, AgentEvent::TextDelta("second".to_owned()), "an event split across chunks is whole");
        assert_eq!(stream.next().await.unwrap().unwrap(), AgentEvent::Done { stop_reason: None });
        assert!(stream.next().await.is_none());

        // A stream that goes silent past the idle timeout ends as interrupted, after the text it had.
        let (release, gate) = tokio::sync::mpsc::unbounded_channel();
        let host =
            timed_sse_server(vec!["data: {\"type\":\"text_delta\",\"text\":\"partial\"}\n\n", "never sent"], gate)
                .await;
        let helpdesk = super::client_for(&host, Duration::from_millis(500), Duration::from_secs(60), false);
        release.send(()).unwrap();
        let events: Vec<_> =
            collect(helpdesk.send_message(&ws(), &TicketName::new("DEVOPS-1"), &message, true).await.unwrap()).await;
        assert_eq!(events[0], Ok(AgentEvent::TextDelta("partial".to_owned())));
        assert!(
            matches!(&events[1], Err(HelpdeskError::Interrupted(why)) if why.contains("HELPDESK_STREAM_IDLE_SECONDS")),
            "{:?}",
            events[1]
        );
        assert_eq!(events.len(), 2);
        drop(release);
    }
}

mod choice {
    use std::time::Duration;

    use helpdesk_bridge::{helpdesk::HelpdeskClient, ids::AgentId};
    use serde_json::json;
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{method, path, query_param},
    };

    fn client(server: &MockServer, cache_ttl: Duration, force_streaming: bool) -> HelpdeskClient {
        super::client_for(&server.uri(), Duration::from_secs(2), cache_ttl, force_streaming)
    }

    /// Streaming is chosen as duploctl chooses: the agent's `STREAMING_ENABLED`, or forced;
    /// the lookup is cached for the configured time.
    #[tokio::test]
    async fn the_streaming_choice_follows_the_agent_and_is_cached() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/aiservicedesk/admin/data/aiagents/a1"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(
                    json!({"data": {"id": "a1", "name": "k8s", "metaData": {"STREAMING_ENABLED": "true"}}}),
                ),
            )
            .expect(2)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/aiservicedesk/admin/data/aiagents/a2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {"id": "a2", "name": "plain"}})))
            .expect(1)
            .mount(&server)
            .await;
        let cached = client(&server, Duration::from_millis(300), false);
        assert!(cached.should_stream(&AgentId::new("a1")).await.unwrap());
        assert!(cached.should_stream(&AgentId::new("a1")).await.unwrap(), "served from the cache");
        assert!(!cached.should_stream(&AgentId::new("a2")).await.unwrap());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(cached.should_stream(&AgentId::new("a1")).await.unwrap(), "fetched again after the TTL");

        let forced = client(&server, Duration::from_secs(60), true);
        assert!(forced.should_stream(&AgentId::new("a2")).await.unwrap(), "forced without a lookup");
    }

    /// Opening a ticket finds the agent by name; choosing how to send to it then asks the
    /// HelpDesk nothing more.
    #[tokio::test]
    async fn an_agent_found_by_name_answers_the_streaming_choice_from_the_cache() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/aiservicedesk/admin/data/aiagents"))
            .and(query_param("filters[name]", "k8s"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {"items": [
                {"id": "a1", "name": "k8s", "metaData": {"STREAMING_ENABLED": "true"}}
            ]}})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/aiservicedesk/admin/data/aiagents/a1"))
            .respond_with(ResponseTemplate::new(500))
            .expect(0)
            .mount(&server)
            .await;
        let helpdesk = client(&server, Duration::from_secs(60), false);
        let found = helpdesk.find_agent("k8s").await.unwrap();
        assert!(helpdesk.should_stream(&found.id).await.unwrap(), "the agent's flag, from the cache");
        assert!(!helpdesk.forces_streaming());
    }
}

/// What the client reads from a HelpDesk that sends too much: never more than its caps, and
/// an error a caller can show instead.
mod caps {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        time::Duration,
    };

    use futures_util::StreamExt;
    use helpdesk_bridge::{
        helpdesk::{HelpdeskError, OutgoingMessage, events::AgentEvent, limits},
        ids::{TicketName, WorkspaceId},
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{method, path},
    };

    const T: &str = "/v1/aiservicedesk/tickets/65f0c0ffee0000000000abcd";

    fn ws() -> WorkspaceId {
        WorkspaceId::new("65f0c0ffee0000000000abcd")
    }

    fn message() -> OutgoingMessage {
        OutgoingMessage { content: "go".to_owned(), decisions: Vec::new(), record_only: false }
    }

    /// A server that answers every request with `status` and a chunked body that never
    /// ends, counting the connections the client closed. Only a client that stops reading
    /// gets an answer.
    async fn endless(status: &'static str) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let closed = Arc::new(AtomicUsize::new(0));
        let counter = closed.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
                    );
                    if socket.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "[".repeat(64 * 1024));
                    while socket.write_all(chunk.as_bytes()).await.is_ok() {}
                    counter.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        (format!("http://{addr}"), closed)
    }

    /// A body that never ends is read up to the cap, then left: the answer is "too large"
    /// (a client that kept reading would never answer, or time out after its 2 s), and the
    /// connection is closed rather than drained.
    #[tokio::test]
    async fn an_endless_body_is_read_only_up_to_the_cap() {
        let (host, closed) = endless("200 OK").await;
        let helpdesk = super::client_for(&host, Duration::from_secs(30), Duration::from_secs(60), false);
        let err = helpdesk.list_workspaces().await.unwrap_err();
        assert_eq!(
            err,
            HelpdeskError::Oversized("the HelpDesk's answer was larger than 4 MiB, so it was not shown".to_owned())
        );
        assert_eq!(err.code(), "oversized");
        let events: Vec<_> = helpdesk
            .send_message(&ws(), &TicketName::new("DEVOPS-1"), &message(), false)
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(events, [Err(err)], "a unary reply too large to show ends the turn with the note");
        let both_closed = crate::support::eventually(Duration::from_secs(10), || async {
            (closed.load(Ordering::SeqCst) == 2).then_some(())
        })
        .await;
        assert!(both_closed.is_some(), "the client hung up on both endless bodies");

        let (host, _) = endless("500 Internal Server Error").await;
        let helpdesk = super::client_for(&host, Duration::from_secs(30), Duration::from_secs(60), false);
        let err = helpdesk.list_agents().await.unwrap_err();
        assert_eq!(
            err,
            HelpdeskError::Server { status: 500, message: format!("{}…", "[".repeat(limits::QUOTE_CHARS)) }
        );
    }

    #[tokio::test]
    async fn error_bodies_are_quoted_briefly_and_plainly() {
        let server = MockServer::start().await;
        let body = format!("Ticket\r\n\tDEVOPS-1\u{1b}[2J {}", "é".repeat(1 << 20));
        Mock::given(method("POST"))
            .and(path(format!("{T}/DEVOPS-1/sendMessage")))
            .respond_with(ResponseTemplate::new(400).set_body_string(body))
            .mount(&server)
            .await;
        let err =
            super::client(&server).send_message(&ws(), &TicketName::new("DEVOPS-1"), &message(), false).await.err();
        let expected =
            format!("Ticket DEVOPS-1 [2J {}…", "é".repeat(limits::QUOTE_CHARS - "Ticket DEVOPS-1 [2J ".len()));
        assert_eq!(err, Some(HelpdeskError::BadRequest(expected.clone())));
        assert_eq!(err.unwrap().to_string(), format!("the HelpDesk rejected the request: {expected}"));

        server.reset().await;
        Mock::given(method("POST"))
            .and(path(format!("{T}/DEVOPS-1/sendMessageStreaming")))
            .respond_with(ResponseTemplate::new(503).set_body_string(format!("down\n{}", "z".repeat(1 << 20))))
            .mount(&server)
            .await;
        let err =
            super::client(&server).send_message(&ws(), &TicketName::new("DEVOPS-1"), &message(), true).await.err();
        let expected = format!("down {}…", "z".repeat(limits::QUOTE_CHARS - 5));
        assert_eq!(err, Some(HelpdeskError::Server { status: 503, message: expected }));
    }

    #[tokio::test]
    async fn a_stream_line_past_the_cap_ends_the_stream_after_what_came_before() {
        let server = MockServer::start().await;
        let sse = format!(
            "data: {{\"type\":\"text_delta\",\"text\":\"before\"}}\n\n\
             data: {{\"type\":\"text_delta\",\"text\":\"{}\"}}\n\n\
             data: {{\"type\":\"text_delta\",\"text\":\"after\"}}\n\ndata: {{\"type\":\"done\"}}\n\n",
            "x".repeat(5 << 20)
        );
        Mock::given(method("POST"))
            .and(path(format!("{T}/DEVOPS-1/sendMessageStreaming")))
            .respond_with(
                ResponseTemplate::new(200).insert_header("content-type", "text/event-stream").set_body_string(sse),
            )
            .mount(&server)
            .await;
        let events: Vec<_> = super::client(&server)
            .send_message(&ws(), &TicketName::new("DEVOPS-1"), &message(), true)
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(
            events,
            [
                Ok(AgentEvent::TextDelta("before".to_owned())),
                Err(HelpdeskError::Oversized(
                    "the HelpDesk sent a line longer than 1 MiB in the agent's reply; the rest was not shown"
                        .to_owned()
                )),
            ]
        );
    }

    /// A streaming agent's reply inside an error body that was cut at the cap is not passed
    /// off as whole: what came is kept, and the turn ends with the note.
    #[tokio::test]
    async fn a_recovered_reply_cut_at_the_cap_ends_with_the_note() {
        let server = MockServer::start().await;
        let line = format!("Error {{\"type\":\"text_delta\",\"text\":\"{}\"}}\n", "t".repeat(512 * 1024));
        let body = line.repeat(10);
        Mock::given(method("POST"))
            .and(path(format!("{T}/DEVOPS-1/sendMessage")))
            .respond_with(ResponseTemplate::new(500).set_body_string(body))
            .mount(&server)
            .await;
        let events: Vec<_> = super::client(&server)
            .send_message(&ws(), &TicketName::new("DEVOPS-1"), &message(), false)
            .await
            .unwrap()
            .collect()
            .await;
        let whole = (limits::BODY_BYTES / line.len()).min(10);
        assert_eq!(events.len(), whole + 1, "the whole lines within the cap, then the note");
        assert!(events[..whole].iter().all(|e| matches!(e, Ok(AgentEvent::TextDelta(t)) if t.len() == 512 * 1024)));
        assert_eq!(
            events.last(),
            Some(&Err(HelpdeskError::Oversized(
                "the HelpDesk's answer was larger than 4 MiB, so it was not shown".to_owned()
            )))
        );
    }
}
