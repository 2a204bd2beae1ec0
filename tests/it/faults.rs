//! Faults: the HelpDesk failing in every way it can, Slack rate-limiting, refusing and
//! hanging, Redis going away under traffic, and SIGTERM in the middle of a reply. Each
//! test bounds its own time and asserts what people see and what crosses the boundaries.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use helpdesk_bridge::model::TicketStatus;
use serde_json::json;
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path},
};

use crate::support::{
    app::{Backend, Options, TestApp, spawn_app},
    eventually,
    fakes::{API, WORKSPACE_ID, assert_valid_message, mount_reply, seed, text_of, thread},
    payloads::message_event,
    redis::PrivateRedis,
    timed::{End, Script, TimedHelpdesk},
};

const ROOT: &str = "1700000000.000100";
/// Messages sent through the Redis restart: Slack's 1 post per second per channel paces
/// their replies, so more would only make the test longer.
const MESSAGES: u32 = 16;

/// A thread post containing `needle`, validated.
async fn said(app: &TestApp, needle: &str) -> serde_json::Value {
    let posts = app.wait_slack("chat.postMessage", 1, |c| text_of(c).contains(needle)).await;
    assert_valid_message(&posts[0]);
    posts[0].clone()
}

/// The reply message (posted, then edited) whose text contains `needle`.
async fn replied(app: &TestApp, needle: &str) {
    app.wait_slack("chat.update", 1, |c| text_of(c).contains(needle)).await;
}

#[tokio::test]
async fn helpdesk_500_and_garbage_are_explained_and_the_next_message_works() {
    let app = spawn_app(Options::bridge(Backend::Embedded)).await;
    seed(&app.store, ROOT, "DEVOPS-1", TicketStatus::Pending, "U1", 1).await;
    let send = format!("{API}/tickets/{WORKSPACE_ID}/DEVOPS-1/sendMessage");
    Mock::given(method("POST"))
        .and(path(send.clone()))
        .respond_with(ResponseTemplate::new(500).set_body_string("NullReferenceException"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.helpdesk)
        .await;
    Mock::given(method("POST"))
        .and(path(send))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>gateway says hi</html>"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&app.helpdesk)
        .await;
    mount_reply(&app.helpdesk, "DEVOPS-1", json!({"role": "assistant", "content": "All good now.", "data": {}})).await;

    app.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(ROOT), "one")).await;
    let failed = app.wait_slack("chat.update", 1, |c| text_of(c).contains("answered with an error (500)")).await;
    assert!(text_of(&failed[0]).contains("did not reach the ticket"));
    assert_eq!(failed[0]["blocks"][1]["elements"][0]["text"]["text"], "Retry");

    app.post_event(&message_event("Ev2", "C1", "U1", "1700000000.000300", Some(ROOT), "two")).await;
    let garbage = app.wait_slack("chat.update", 1, |c| text_of(c).contains("may or may not have reached")).await;
    assert_valid_message(&garbage[0]);

    app.post_event(&message_event("Ev3", "C1", "U1", "1700000000.000400", Some(ROOT), "three")).await;
    replied(&app, "All good now.").await;
    let sent: Vec<String> = app
        .helpdesk_calls("POST", "/DEVOPS-1/sendMessage")
        .await
        .iter()
        .map(|b| b["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sent, ["one", "two", "three"], "each message sent once, none retried on its own");
    let counted = app.metrics().await;
    assert!(counted.contains(r#"helpdesk_bridge_turns_total{outcome="failed"} 2"#), "{counted}");
}

#[tokio::test]
async fn hanging_and_cut_streams_are_explained_and_the_next_message_works() {
    let silent = Script { end: End::Silence(Duration::from_secs(5)), ..Script::deltas(&["thinking "], Duration::ZERO) };
    let cut = Script { end: End::Break, ..Script::deltas(&["half ", "way"], Duration::from_millis(20)) };
    let timed = TimedHelpdesk::start(vec![silent, cut, Script::deltas(&["fine"], Duration::ZERO)]).await;
    let app = spawn_app(Options::bridge(Backend::Redis).config(|c| {
        c.helpdesk.host.clone_from(&timed.url);
        c.helpdesk.force_streaming = true;
        c.helpdesk.request_timeout = Duration::from_secs(1);
        c.helpdesk.stream_idle_timeout = Duration::from_secs(1);
    }))
    .await;
    seed(&app.store, ROOT, "DEVOPS-1", TicketStatus::Pending, "U1", 1).await;
    app.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(ROOT), "one")).await;
    said(&app, "The agent's reply was interrupted").await;
    app.post_event(&message_event("Ev2", "C1", "U1", "1700000000.000300", Some(ROOT), "two")).await;
    replied(&app, "half way").await;
    app.post_event(&message_event("Ev3", "C1", "U1", "1700000000.000400", Some(ROOT), "three")).await;
    let done = eventually(Duration::from_secs(10), || async {
        app.slack_calls("chat.update").await.into_iter().find(|c| {
            let text = text_of(c);
            text.contains("fine") && !text.contains("interrupted")
        })
    })
    .await;
    assert!(done.is_some(), "the third message gets its whole reply");
    let notices = app.slack_calls("chat.postMessage").await;
    assert_eq!(notices.iter().filter(|c| text_of(c).contains("was interrupted")).count(), 2);
}

#[tokio::test]
async fn slack_429_storms_refusals_and_timeouts_lose_nothing_and_are_counted() {
    let app = spawn_app(Options::bridge(Backend::Embedded).config(|c| c.slack.timeout = Duration::from_secs(1))).await;
    seed(&app.store, ROOT, "DEVOPS-1", TicketStatus::Pending, "U1", 1).await;
    // Five 429s in a row: more than the three retries of a paced call, so one edit fails
    // through and the final state must be tried again. Each 429 is a call of its own, held
    // back by its Retry-After in the (shared) budget before the next.
    Mock::given(path("/chat.update"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "0")
                .set_body_json(json!({"ok": false, "error": "ratelimited"})),
        )
        .up_to_n_times(5)
        .with_priority(1)
        .mount(&app.slack)
        .await;
    Mock::given(path("/reactions.add"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "invalid_name"})))
        .with_priority(1)
        .mount(&app.slack)
        .await;
    Mock::given(path("/users.info"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)).set_body_json(json!({"ok": true})))
        .with_priority(1)
        .mount(&app.slack)
        .await;
    mount_reply(&app.helpdesk, "DEVOPS-1", json!({"role": "assistant", "content": "Survived the storm.", "data": {}}))
        .await;

    app.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(ROOT), "ask <@U5> too")).await;
    let sent = eventually(Duration::from_secs(15), || async {
        app.helpdesk_calls("POST", "/DEVOPS-1/sendMessage").await.pop()
    })
    .await
    .expect("the message reached the HelpDesk despite Slack timing out on names");
    assert_eq!(sent["content"], "ask @U5 too", "a name Slack cannot give in time stays an id");
    let expected = [
        r#"helpdesk_bridge_slack_calls_total{operation="reactions.add",outcome="invalid_name"}"#,
        r#"helpdesk_bridge_slack_calls_total{operation="users.info",outcome="timeout"}"#,
        r#"helpdesk_bridge_slack_calls_total{operation="chat.update",outcome="ratelimited"} 5"#,
        r#"helpdesk_bridge_slack_calls_total{operation="chat.update",outcome="ok"} 1"#,
    ];
    let counted = eventually(Duration::from_secs(30), || async {
        let counted = app.metrics().await;
        expected.iter().all(|e| counted.contains(e)).then_some(counted)
    })
    .await;
    assert!(counted.is_some(), "the storm is counted and the final edit got through: {}", app.metrics().await);
    let last = app.slack_calls("chat.update").await.pop().unwrap();
    assert!(text_of(&last).contains("Survived the storm."), "the last edit is the whole reply");
    // Pacing held: no two successful edits of the reply less than the 429's second apart.
    let updates = app.slack.received_requests().await.unwrap();
    let update_count = updates.iter().filter(|r| r.url.path() == "/chat.update").count();
    assert!(update_count <= 12, "a storm is waited out, not hammered: {update_count} calls");
}

/// Redis is stopped and restarted (with its append-only file) while messages keep coming;
/// the fake Slack redelivers what was refused, as Slack does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_under_traffic_loses_and_duplicates_nothing() {
    let redis = PrivateRedis::persistent();
    let app = Arc::new(
        spawn_app(Options::bridge(Backend::Redis).config(|c| c.store.redis_url = Some(redis.url().into()))).await,
    );
    let threads: Vec<String> = (1..=3).map(|i| format!("1700000000.00010{i}")).collect();
    for (i, ts) in threads.iter().enumerate() {
        let name = format!("DEVOPS-{}", i + 1);
        seed(&app.store, ts, &name, TicketStatus::Pending, "U1", 1).await;
        mount_reply(&app.helpdesk, &name, json!({"role": "assistant", "content": "ok", "data": {}})).await;
    }
    let saw_unready = Arc::new(AtomicBool::new(false));
    let sender = {
        let (app, threads, saw_unready) = (app.clone(), threads.clone(), saw_unready.clone());
        tokio::spawn(async move {
            for n in 0..MESSAGES {
                let thread = &threads[n as usize % threads.len()];
                let ts = format!("1700000001.{n:06}");
                let event = message_event(&format!("Ev{n}"), "C1", "U1", &ts, Some(thread), &format!("message {n}"));
                // Slack redelivers a refused event (here: at once, then every 200 ms).
                let mut delivered = false;
                for _ in 0..100 {
                    if app.post_event(&event).await.status() == 200 {
                        delivered = true;
                        break;
                    }
                    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
                    if ready.status() == 503 {
                        saw_unready.store(true, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                assert!(delivered, "message {n} was never accepted");
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let redis = redis.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _redis = redis.restart();
    sender.await.expect("the sender finished");
    assert!(saw_unready.load(Ordering::SeqCst), "/readyz said not ready during the outage");
    let ready = eventually(Duration::from_secs(10), || async {
        (app.http.get(app.url("/readyz")).send().await.ok()?.status() == 200).then_some(())
    })
    .await;
    assert!(ready.is_some(), "/readyz is ready again after the restart");

    let counts = eventually(Duration::from_secs(30), || async {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for body in app.helpdesk_calls("POST", "/sendMessage").await {
            *counts.entry(body["content"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
        }
        (counts.len() == MESSAGES as usize).then_some(counts)
    })
    .await;
    let Some(counts) = counts else {
        let sent = app.helpdesk_calls("POST", "/sendMessage").await;
        let notices: Vec<String> = app.slack_calls("chat.postMessage").await.iter().map(text_of).collect();
        panic!("not every message reached the HelpDesk: {} sent: {sent:?}\nthread notices: {notices:#?}", sent.len());
    };
    assert!(counts.values().all(|n| *n == 1), "no message was sent twice: {counts:?}");
    for ts in &threads {
        assert!(app.store.ticket_by_thread(&thread(ts)).await.unwrap().is_some(), "the mapping of {ts} survived");
    }
}

#[tokio::test]
async fn sigterm_during_a_streaming_reply_finalizes_it_with_a_note() {
    let chunks: Vec<String> = (0..40).map(|i| format!("part{i} ")).collect();
    let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
    let timed = TimedHelpdesk::start(vec![Script::deltas(&refs, Duration::from_millis(250))]).await;
    let mut app = spawn_app(Options::bridge(Backend::Embedded).config(|c| {
        c.helpdesk.host.clone_from(&timed.url);
        c.helpdesk.force_streaming = true;
        c.shutdown_grace = Duration::from_secs(3);
    }))
    .await;
    seed(&app.store, ROOT, "DEVOPS-1", TicketStatus::Pending, "U1", 1).await;
    app.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(ROOT), "go")).await;
    replied(&app, "part2").await;
    let started = std::time::Instant::now();
    app.shut_down().await.expect("a clean exit");
    assert!(started.elapsed() < Duration::from_secs(6), "the grace period bounds the exit");
    let last = app.slack_calls("chat.update").await.into_iter().rev().find(|c| text_of(c).contains("part"));
    let last = last.expect("the reply was edited");
    assert_valid_message(&last);
    let text = text_of(&last);
    assert!(text.contains("part0 part1 part2"), "the partial reply is kept: {text}");
    assert!(text.contains("the bridge is restarting"), "with a note saying why it stops: {text}");
    assert!(!text.contains("part39"), "the agent had not finished");
}

// === a HelpDesk that sends too much ===

/// The newest reply page (edited or, past the first, posted) whose text contains `needle`,
/// validated.
async fn final_page(app: &TestApp, needle: &str) -> serde_json::Value {
    let found = eventually(Duration::from_secs(40), || async {
        let mut pages = app.slack_calls("chat.postMessage").await;
        pages.extend(app.slack_calls("chat.update").await);
        pages.into_iter().rev().find(|c| text_of(c).contains(needle))
    })
    .await;
    let body = found.unwrap_or_else(|| panic!("no reply page shows {needle:?}"));
    assert_valid_message(&body);
    body
}

/// The context line a reply ends with when it was interrupted for `reason`.
fn interrupted_footer(reason: &str) -> String {
    format!("⚠️ _The reply was interrupted: {reason}_")
}

/// The thread notice after an interrupted reply.
/// The thread notice of a turn that ended at a cap (no Retry: it would end the same way).
fn capped_notice(reason: &str) -> String {
    format!("⚠️ The agent's reply was cut short ({reason}). Your message reached the ticket.")
}

/// The next message in the thread gets its whole reply: the bridge kept working.
async fn next_message_works(app: &TestApp, event: &str, ts: &str, reply: &str) {
    app.post_event(&message_event(event, "C1", "U1", ts, Some(ROOT), "and now?")).await;
    let done = eventually(Duration::from_secs(40), || async {
        app.slack_calls("chat.update").await.into_iter().find(|c| {
            let text = text_of(c);
            text.contains(reply) && !text.contains("interrupted")
        })
    })
    .await;
    assert!(done.is_some(), "the next message got its whole reply");
}

#[tokio::test]
async fn a_5_mib_stream_line_ends_the_turn_with_a_note_and_the_next_message_works() {
    let app = spawn_app(Options::bridge(Backend::Redis).config(|c| c.helpdesk.force_streaming = true)).await;
    seed(&app.store, ROOT, "DEVOPS-1", TicketStatus::Pending, "U1", 1).await;
    let send = format!("{API}/tickets/{WORKSPACE_ID}/DEVOPS-1/sendMessageStreaming");
    let flood = format!(
        "data: {{\"type\":\"text_delta\",\"text\":\"Before the flood. \"}}\n\n\
         data: {{\"type\":\"text_delta\",\"text\":\"{}\"}}\n\n\
         data: {{\"type\":\"text_delta\",\"text\":\"never shown\"}}\n\ndata: {{\"type\":\"done\"}}\n\n",
        "x".repeat(5 << 20)
    );
    Mock::given(method("POST"))
        .and(path(send.clone()))
        .respond_with(
            ResponseTemplate::new(200).insert_header("content-type", "text/event-stream").set_body_string(flood),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.helpdesk)
        .await;
    Mock::given(method("POST"))
        .and(path(send))
        .respond_with(ResponseTemplate::new(200).insert_header("content-type", "text/event-stream").set_body_string(
            "data: {\"type\":\"text_delta\",\"text\":\"Calm again.\"}\n\ndata: {\"type\":\"done\"}\n\n",
        ))
        .mount(&app.helpdesk)
        .await;

    app.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(ROOT), "one")).await;
    let reason = "the HelpDesk sent a line longer than 1 MiB in the agent's reply; the rest was not shown";
    let note = said(&app, "The agent's reply was cut short").await;
    assert_eq!(note["blocks"][0]["text"]["text"], capped_notice(reason));
    assert_eq!(note["blocks"].as_array().unwrap().len(), 1, "no Retry button");
    let last = final_page(&app, "Before the flood.").await;
    let text = text_of(&last);
    assert!(text.ends_with(&interrupted_footer(reason)), "{text}");
    assert!(!text.contains("xxxx") && !text.contains("never shown"), "nothing of or after the line: {text}");

    next_message_works(&app, "Ev2", "1700000000.000300", "Calm again.").await;
    let sent: Vec<String> = app
        .helpdesk_calls("POST", "/DEVOPS-1/sendMessageStreaming")
        .await
        .iter()
        .map(|b| b["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sent, ["one", "and now?"]);
    let counted = app.metrics().await;
    assert!(counted.contains(r#"helpdesk_bridge_turns_total{outcome="interrupted"} 1"#), "{counted}");
    assert!(counted.contains(r#"helpdesk_bridge_turns_total{outcome="ok"} 1"#), "{counted}");
}

#[tokio::test]
async fn a_reply_past_the_text_cap_is_cut_there_with_a_note_and_attached_whole() {
    let app = spawn_app(Options::bridge(Backend::Embedded)).await;
    seed(&app.store, ROOT, "DEVOPS-1", TicketStatus::Pending, "U1", 1).await;
    let send = format!("{API}/tickets/{WORKSPACE_ID}/DEVOPS-1/sendMessage");
    // 300 KiB of words, then a marker past the cap.
    let content = format!("{}THE-END", "word ".repeat(300 * 1024 / 5));
    Mock::given(method("POST"))
        .and(path(send))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"role": "assistant", "content": content})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.helpdesk)
        .await;
    mount_reply(&app.helpdesk, "DEVOPS-1", json!({"role": "assistant", "content": "Short this time.", "data": {}}))
        .await;

    app.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(ROOT), "tell me everything")).await;
    let reason = "the agent's reply exceeded 256 KiB; the rest was not shown";
    let last = final_page(&app, "The reply was interrupted").await;
    let text = text_of(&last);
    assert!(text.contains(&interrupted_footer(reason)), "{text}");
    assert!(text.contains("the full text is attached as a file"), "{text}");
    let note = said(&app, "The agent's reply was cut short").await;
    assert_eq!(note["blocks"][0]["text"]["text"], capped_notice(reason));
    assert_eq!(note["blocks"].as_array().unwrap().len(), 1, "no Retry button");
    let uploads = app.slack_calls("files.getUploadURLExternal").await;
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0]["filename"], "reply.md");
    assert_eq!(uploads[0]["length"], "262144", "the attached reply is exactly the first 256 KiB");
    let pages = app.slack_calls("chat.update").await;
    assert!(pages.iter().all(|c| !text_of(c).contains("THE-END")), "nothing past the cap is shown");

    next_message_works(&app, "Ev2", "1700000000.000300", "Short this time.").await;
    assert_eq!(app.helpdesk_calls("POST", "/DEVOPS-1/sendMessage").await.len(), 2);
}

#[tokio::test]
async fn proposals_past_their_cap_make_no_card_and_say_so() {
    let app = spawn_app(Options::bridge(Backend::Redis)).await;
    let record = seed(&app.store, ROOT, "DEVOPS-1", TicketStatus::Pending, "U1", 1).await;
    let send = format!("{API}/tickets/{WORKSPACE_ID}/DEVOPS-1/sendMessage");
    let cmds: Vec<serde_json::Value> =
        (0..51).map(|i| json!({"command": format!("kubectl delete pod web-{i}"), "execute": false})).collect();
    Mock::given(method("POST"))
        .and(path(send))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"role": "assistant", "content": "Here is my plan.", "data": {"cmds": cmds}})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.helpdesk)
        .await;
    mount_reply(&app.helpdesk, "DEVOPS-1", json!({"role": "assistant", "content": "Fewer now.", "data": {}})).await;

    app.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(ROOT), "fix it")).await;
    let reason = "the agent proposed more than the bridge can show safely (more than 50 proposals in one turn), \
                  so no approval card was made";
    let note = said(&app, "The agent's reply was cut short").await;
    assert_eq!(note["blocks"][0]["text"]["text"], capped_notice(reason));
    assert_eq!(note["blocks"].as_array().unwrap().len(), 1, "no Retry button");
    let last = final_page(&app, "Here is my plan.").await;
    assert!(text_of(&last).ends_with(&interrupted_footer(reason)), "{}", text_of(&last));

    next_message_works(&app, "Ev2", "1700000000.000300", "Fewer now.").await;
    assert_eq!(app.store.open_card(&record.ticket).await.unwrap(), None, "no card was made");
    let posts = app.slack_calls("chat.postMessage").await;
    assert!(posts.iter().all(|c| !c.to_string().contains("kubectl delete pod")), "no command was shown");
}

#[tokio::test]
async fn a_1_mib_error_body_is_quoted_briefly_and_the_next_message_works() {
    let app = spawn_app(Options::bridge(Backend::Embedded)).await;
    seed(&app.store, ROOT, "DEVOPS-1", TicketStatus::Pending, "U1", 1).await;
    let send = format!("{API}/tickets/{WORKSPACE_ID}/DEVOPS-1/sendMessage");
    let body = format!("Bad request:\u{7}\r\n\u{202e}{}", "x".repeat(1 << 20));
    Mock::given(method("POST"))
        .and(path(send))
        .respond_with(ResponseTemplate::new(400).set_body_string(body))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.helpdesk)
        .await;
    mount_reply(&app.helpdesk, "DEVOPS-1", json!({"role": "assistant", "content": "Accepted now.", "data": {}})).await;

    app.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(ROOT), "one")).await;
    let failed = app.wait_slack("chat.update", 1, |c| text_of(c).contains("rejected the message")).await;
    assert_valid_message(&failed[0]);
    let quoted = format!("Bad request: {}…", "x".repeat(200 - "Bad request: ".len()));
    assert_eq!(
        failed[0]["blocks"][0]["text"]["text"],
        format!("⚠️ The HelpDesk rejected the message ({quoted}). Your message did not reach the ticket.")
    );
    assert!(failed[0].to_string().len() < 4096, "nothing more of the body reached Slack");

    next_message_works(&app, "Ev2", "1700000000.000300", "Accepted now.").await;
}
