//! Slack's AI-app surfaces: 👍 / 👎 feedback on the agent's replies, recorded on the ticket
//! through the real router and acknowledged to the clicker alone, and the assistant
//! thread's status and suggested prompts as the fake Slack receives them.

use helpdesk_bridge::{
    ids::{ChannelId, MessageTs, UserId},
    model::{Actor, HistoryEntry, HistoryEvent, Rating, Suggestion, TicketRecord, TicketStatus},
    slack::api::{SlackApi, SlackError},
    telemetry::Metrics,
};
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

use crate::support::{
    app::{Backend, Options, TestApp, spawn_app, test_config},
    fakes::{self, API, WORKSPACE_ID, mount_reply, seed},
    payloads::feedback_click,
};

/// The thread of the ticket the tests rate a reply in, and the reply.
const THREAD: &str = "1700000600.000100";
const REPLY: &str = "1700000600.000200";

/// `user` of `team` gives `REPLY` a `rating`; returns the answer only they see.
async fn rate(app: &TestApp, user: &str, team: &str, thread: &str, rating: Rating, trigger: &str) -> Value {
    let click = feedback_click(user, team, REPLY, thread, rating, trigger, &app.slack.uri());
    assert_eq!(app.post_interaction(&click).await.status(), 200);
    let answer = app.answer_body(trigger).await;
    fakes::assert_valid_message(&answer);
    assert_ne!(answer["response_type"], "in_channel", "only the clicker sees it: {answer}");
    assert_ne!(answer["replace_original"], true, "the rated reply stays as it is: {answer}");
    answer
}

async fn feedback_history(app: &TestApp, record: &TicketRecord) -> Vec<HistoryEntry> {
    let entries = app.store.history(&record.ticket).await.unwrap();
    entries.into_iter().filter(|e| matches!(e.event, HistoryEvent::Feedback { .. })).collect()
}

fn recorded(user: &str, rating: Rating) -> (Actor, HistoryEvent) {
    (Actor::User(UserId::new(user)), HistoryEvent::Feedback { rating, reply_ts: MessageTs::new(REPLY) })
}

fn record_only(content: &str) -> Value {
    json!({"content": content, "data": {}, "platform_context": {}, "message_mode": 1, "role": "user"})
}

#[tokio::test]
async fn a_rating_is_recorded_once_on_the_ticket_and_told_to_the_clicker_alone() {
    let app = spawn_app(Options::bridge(Backend::Embedded)).await;
    mount_reply(&app.helpdesk, "DEVOPS-7", json!({"role": "assistant", "content": "", "data": {}})).await;
    let record = seed(&app.store, THREAD, "DEVOPS-7", TicketStatus::Pending, "U1", 1_000).await;

    let answer = rate(&app, "U2", "T1", THREAD, Rating::Positive, "fb-1").await;
    assert_eq!(fakes::text_of(&answer), "Thanks — your 👍 was recorded on ticket DEVOPS-7.");
    let sends = app.sends("DEVOPS-7", 1).await;
    assert_eq!(
        sends,
        [record_only(
            "Feedback from Slack: NameU2 (U2) rated the agent's reply 👍 (message https://acme.slack.com/archives/C1/p1)"
        )]
    );
    let permalinks = app.slack_calls("chat.getPermalink").await;
    assert_eq!(permalinks.last().unwrap()["message_ts"], REPLY, "the link names the rated reply");
    let history = feedback_history(&app, &record).await;
    assert_eq!(
        history.iter().map(|e| (e.actor.clone(), e.event.clone())).collect::<Vec<_>>(),
        [recorded("U2", Rating::Positive)]
    );
    assert!(app.metrics().await.contains("helpdesk_bridge_feedback_total{rating=\"positive\"} 1"));

    // The same person, the same reply, the same rating: thanked, not recorded again.
    let again = rate(&app, "U2", "T1", THREAD, Rating::Positive, "fb-2").await;
    assert_eq!(fakes::text_of(&again), "Thanks — your 👍 on this reply is already recorded on ticket DEVOPS-7.");
    assert_eq!(app.helpdesk_calls("POST", "/DEVOPS-7/sendMessage").await.len(), 1);
    assert_eq!(feedback_history(&app, &record).await.len(), 1);

    // A change of mind, and someone else's rating, are new.
    rate(&app, "U2", "T1", THREAD, Rating::Negative, "fb-3").await;
    rate(&app, "U3", "T1", THREAD, Rating::Positive, "fb-4").await;
    let sends = app.sends("DEVOPS-7", 3).await;
    assert_eq!(sends.len(), 3);
    assert_eq!(
        sends[1]["content"],
        "Feedback from Slack: NameU2 (U2) rated the agent's reply 👎 (message https://acme.slack.com/archives/C1/p1)"
    );
    let history = feedback_history(&app, &record).await;
    assert_eq!(
        history.iter().map(|e| (e.actor.clone(), e.event.clone())).collect::<Vec<_>>(),
        [recorded("U2", Rating::Positive), recorded("U2", Rating::Negative), recorded("U3", Rating::Positive)]
    );
    let metrics = app.metrics().await;
    assert!(metrics.contains("helpdesk_bridge_feedback_total{rating=\"positive\"} 2"), "{metrics}");
    assert!(metrics.contains("helpdesk_bridge_feedback_total{rating=\"negative\"} 1"), "{metrics}");
    // Nothing was said in the thread: the ticket's readers are not told who rated what.
    let posts = app.slack_calls("chat.postMessage").await;
    assert!(posts.iter().all(|p| p["thread_ts"] != THREAD), "{posts:#?}");
}

#[tokio::test]
async fn outsiders_and_threads_without_a_ticket_record_nothing() {
    let app = spawn_app(Options::bridge(Backend::Redis)).await;
    mount_reply(&app.helpdesk, "DEVOPS-8", json!({"role": "assistant", "content": "", "data": {}})).await;
    let record = seed(&app.store, THREAD, "DEVOPS-8", TicketStatus::Open, "U1", 1_000).await;

    // `UX…` is someone from another organisation, `UG…` a guest (see the fake users.info).
    for (user, team, trigger) in [("UX9", "TX", "out-1"), ("UG4", "T1", "out-2")] {
        let refused = rate(&app, user, team, THREAD, Rating::Negative, trigger).await;
        assert_eq!(
            fakes::text_of(&refused),
            "Only members of this workspace can rate the agent's replies on this ticket."
        );
    }
    let gone = rate(&app, "U2", "T1", "1700000999.000100", Rating::Positive, "gone-1").await;
    assert_eq!(
        fakes::text_of(&gone),
        "This thread is no longer a HelpDesk ticket, so there is nothing to record your rating on."
    );
    assert!(app.helpdesk_calls("POST", "/sendMessage").await.is_empty());
    assert!(feedback_history(&app, &record).await.is_empty());
    assert!(!app.metrics().await.contains("helpdesk_bridge_feedback_total"));
}

#[tokio::test]
async fn a_helpdesk_failure_is_explained_and_the_next_click_records() {
    let app = spawn_app(Options::bridge(Backend::Embedded)).await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/tickets/{WORKSPACE_ID}/DEVOPS-9/sendMessage")))
        .respond_with(ResponseTemplate::new(500).set_body_string("database down"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.helpdesk)
        .await;
    mount_reply(&app.helpdesk, "DEVOPS-9", json!({"role": "assistant", "content": "", "data": {}})).await;
    let record = seed(&app.store, THREAD, "DEVOPS-9", TicketStatus::Pending, "U1", 1_000).await;

    let failed = fakes::text_of(&rate(&app, "U2", "T1", THREAD, Rating::Positive, "fail-1").await);
    assert!(failed.starts_with("⚠️ I could not record your 👍 on ticket DEVOPS-9: "), "{failed}");
    assert!(failed.ends_with("Nothing was recorded; please try again in a minute."), "{failed}");
    assert!(feedback_history(&app, &record).await.is_empty());

    // The failed rating was not kept as recorded: the same click again records it.
    let answer = rate(&app, "U2", "T1", THREAD, Rating::Positive, "fail-2").await;
    assert_eq!(fakes::text_of(&answer), "Thanks — your 👍 was recorded on ticket DEVOPS-9.");
    assert_eq!(app.sends("DEVOPS-9", 2).await.len(), 2, "one failed send, one that went through, no retry");
    assert_eq!(feedback_history(&app, &record).await.len(), 1);
}

/// A Slack client of the fake Slack at `slack`.
fn slack_api(slack: &MockServer) -> SlackApi {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&slack.uri(), "http://helpdesk.invalid", Backend::Embedded, dir.path());
    SlackApi::new(&config.slack, Metrics::default(), None).unwrap()
}

#[tokio::test]
async fn thread_status_and_suggested_prompts_reach_slack_inert_and_within_its_limits() {
    let slack = MockServer::start().await;
    fakes::mount_slack(&slack).await;
    let api = slack_api(&slack);
    let (channel, thread) = (ChannelId::new("D1"), MessageTs::new(THREAD));

    let loading: Vec<String> = (0..12).map(|i| format!("Running tool {i} <!here>")).collect();
    api.set_status(&channel, &thread, "is working on DEVOPS-7…", &loading).await.unwrap();
    api.set_status(&channel, &thread, "", &loading).await.unwrap();
    let statuses = fakes::calls(&slack, "/assistant.threads.setStatus").await;
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[0]["channel_id"], "D1");
    assert_eq!(statuses[0]["thread_ts"], THREAD);
    assert_eq!(statuses[0]["status"], "is working on DEVOPS-7…");
    let rotating = statuses[0]["loading_messages"].as_array().unwrap();
    assert_eq!(rotating.len(), 10, "Slack takes at most ten");
    assert_eq!(rotating[0], "Running tool 0 ‹!here›");
    assert_eq!(statuses[1], json!({"channel_id": "D1", "thread_ts": THREAD, "status": ""}), "an empty status clears");

    let prompt = |title: &str, message: &str| Suggestion { title: title.to_owned(), message: message.to_owned() };
    let prompts: Vec<Suggestion> =
        (0..6).map(|i| prompt(&format!("Prompt {i}"), &format!("Ask {i} @channel"))).collect();
    api.set_suggested_prompts(&channel, &thread, &prompts).await.unwrap();
    api.set_suggested_prompts(&channel, &thread, &[]).await.unwrap();
    let offered = fakes::calls(&slack, "/assistant.threads.setSuggestedPrompts").await;
    assert_eq!(offered.len(), 1, "no prompts, no call");
    let sent = offered[0]["prompts"].as_array().unwrap();
    assert_eq!(sent.len(), 4, "Slack shows at most four");
    assert_eq!(sent[0], json!({"title": "Prompt 0", "message": "Ask 0 @\u{2060}channel"}));
    assert_eq!((offered[0]["channel_id"].clone(), offered[0]["thread_ts"].clone()), (json!("D1"), json!(THREAD)));
}

#[tokio::test]
async fn a_refused_status_is_an_error_the_caller_can_act_on() {
    let slack = MockServer::start().await;
    Mock::given(path("/assistant.threads.setStatus"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "not_allowed_token_type"})))
        .mount(&slack)
        .await;
    let api = slack_api(&slack);
    let refused = api.set_status(&ChannelId::new("C1"), &MessageTs::new(THREAD), "is working…", &[]).await;
    assert!(
        matches!(&refused, Err(SlackError::Api { method: "assistant.threads.setStatus", code }) if code == "not_allowed_token_type"),
        "{refused:?}"
    );
}
