//! Native streaming end to end: an agent's turn through the real router into Slack's
//! stream methods (a stateful stand-in), with tool steps as tasks, fallback to edits where
//! Slack refuses, replies that outlive a stream, Stop, 429s and fair pacing.

use std::time::{Duration, Instant};

use helpdesk_bridge::config::Streaming;
use serde_json::json;

use crate::support::{
    app::{Backend, Options, TestApp, spawn_app},
    eventually,
    fakes::{self, text_of, thread},
    payloads::message_event,
    streaming_slack::{Streamed, StreamingSlack},
    timed::{Script, TimedHelpdesk},
};

const ROOT: &str = "1700000000.000100";

async fn seed_ticket(app: &TestApp, ts: &str, ticket: &str) {
    let record = fakes::seed(&app.store, ts, ticket, helpdesk_bridge::model::TicketStatus::Open, "U1", 1).await;
    assert_eq!(record.thread, thread(ts));
}

/// An app whose HelpDesk plays `scripts` and whose Slack streams natively.
async fn streaming_app(
    scripts: Vec<Script>,
    change: impl FnOnce(&mut helpdesk_bridge::config::Config),
) -> (TestApp, TimedHelpdesk, StreamingSlack) {
    let timed = TimedHelpdesk::start(scripts).await;
    let app = spawn_app(Options::bridge(Backend::Embedded).natively_streaming().config(|c| {
        c.helpdesk.host.clone_from(&timed.url);
        c.helpdesk.force_streaming = true;
        change(c);
    }))
    .await;
    let slack = app.streaming.clone().expect("the fake streams");
    (app, timed, slack)
}

/// Waits until `n` streamed messages were stopped or finished.
async fn finished(slack: &StreamingSlack, n: usize) -> Vec<Streamed> {
    let done = eventually(Duration::from_secs(30), || async {
        let messages = slack.messages();
        let closed =
            messages.iter().filter(|m| !m.streaming && (m.stop.is_some() || m.finished_with.is_some())).count();
        (closed >= n && messages.iter().all(|m| !m.streaming)).then_some(messages)
    })
    .await;
    done.unwrap_or_else(|| panic!("streams never finished: {:#?}", slack.log()))
}

/// How many edits show `needle`.
async fn edited(app: &TestApp, needle: &str) -> usize {
    app.slack_calls("chat.update").await.into_iter().filter(|u| text_of(u).contains(needle)).count()
}

/// What a reader sees of a streamed message: its text without the invisible joiners that
/// keep mentions inert.
fn visible(text: &str) -> String {
    text.replace('\u{2060}', "")
}

#[tokio::test]
async fn a_reply_streams_its_text_and_tool_steps_in_order() {
    let script = Script {
        first_after: Duration::ZERO,
        events: vec![
            json!({"type": "intermittent_update", "text": "Running tool: kubectl get pods"}),
            json!({"type": "text_delta", "text": "Two pods "}),
            json!({"type": "intermittent_update", "text": "Running tool: kubectl logs"}),
            json!({"type": "text_delta", "text": "are crashing; @here "}),
            json!({"type": "text_delta", "text": "the logs say OOM."}),
        ],
        gap: Duration::from_millis(150),
        end: crate::support::timed::End::Done,
    };
    let (app, _timed, slack) = streaming_app(vec![script], |_| {}).await;
    seed_ticket(&app, ROOT, "DEVOPS-1").await;
    app.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(ROOT), "why do pods crash?")).await;
    let messages = finished(&slack, 1).await;

    assert_eq!(messages.len(), 1, "one streamed message: {messages:#?}");
    let message = &messages[0];
    assert_eq!(message.start["channel"], "C1");
    assert_eq!(message.start["thread_ts"], ROOT);
    assert_eq!(message.start["recipient_user_id"], "U1", "addressed to whoever wrote");
    assert_eq!(message.start["recipient_team_id"], "T1");
    assert_eq!(message.start["task_display_mode"], "timeline");
    assert!(message.appends.len() >= 2, "the text came in appends as it was written: {message:#?}");
    let stop = message.stop.as_ref().expect("stopped");
    let stop_text = stop["chunks"].as_array().into_iter().flatten().any(|c| c["type"] == "markdown_text");
    assert!(!stop_text, "nothing was left for the stop: {stop:#}");
    assert!(stop["blocks"].to_string().contains("feedback_buttons"), "the finished reply can be rated: {stop:#}");
    assert_eq!(visible(&message.text), "Two pods are crashing; @here the logs say OOM.");
    assert!(!message.text.contains("@here"), "agent text cannot ping: {:?}", message.text);
    let steps: Vec<(String, String)> = message
        .tasks
        .iter()
        .map(|t| (t["title"].as_str().unwrap().to_owned(), t["status"].as_str().unwrap().to_owned()))
        .collect();
    let get = "Running tool: kubectl get pods".to_owned();
    let logs = "Running tool: kubectl logs".to_owned();
    assert_eq!(
        steps,
        vec![
            (get.clone(), "in_progress".to_owned()),
            (get, "complete".to_owned()),
            (logs.clone(), "in_progress".to_owned()),
            (logs, "complete".to_owned()),
        ],
        "each status line is a task that runs, then completes"
    );
    // No placeholder was posted and nothing edited: the stream is the reply.
    let posts = app.slack_calls("chat.postMessage").await;
    assert!(posts.iter().all(|p| !text_of(p).contains("working")), "{posts:#?}");
    // Appends keep at least 250 ms apart.
    for pair in message.appends.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(240), "appends {:?} apart", pair[1] - pair[0]);
    }
}

#[tokio::test]
async fn where_slack_refuses_streaming_replies_are_edited_and_it_is_remembered() {
    let timed = TimedHelpdesk::start(vec![Script::deltas(&["Hello ", "there."], Duration::from_millis(100))]).await;
    let app = spawn_app(Options::bridge(Backend::Embedded).config(|c| {
        c.helpdesk.host.clone_from(&timed.url);
        c.helpdesk.force_streaming = true;
    }))
    .await;
    seed_ticket(&app, ROOT, "DEVOPS-1").await;
    app.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(ROOT), "first")).await;
    assert!(
        eventually(Duration::from_secs(15), || async { (edited(&app, "there.").await >= 1).then_some(()) })
            .await
            .is_some()
    );
    app.post_event(&message_event("Ev2", "C1", "U1", "1700000000.000300", Some(ROOT), "second")).await;
    assert!(
        eventually(Duration::from_secs(15), || async { (edited(&app, "there.").await >= 2).then_some(()) })
            .await
            .is_some()
    );
    let starts = app.slack_calls("chat.startStream").await;
    assert_eq!(starts.len(), 1, "after Slack refused once, the workspace is not asked again: {starts:#?}");
}

#[tokio::test]
async fn a_reply_outlives_streams_that_slack_ends_with_every_word_once() {
    let words: Vec<String> = (0..24).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let expected: String = words.concat();
    let (app, _timed, slack) = streaming_app(vec![Script::deltas(&refs, Duration::from_millis(150))], |_| {}).await;
    let slack = slack.ending_after(Duration::from_millis(1200));
    seed_ticket(&app, ROOT, "DEVOPS-1").await;
    app.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(ROOT), "long answer please")).await;
    let done = eventually(Duration::from_secs(30), || async {
        let messages = slack.messages();
        let last_stopped = messages.last().is_some_and(|m| m.stop.is_some());
        (messages.len() >= 2 && last_stopped).then_some(messages)
    })
    .await;
    let messages = done.unwrap_or_else(|| panic!("the reply never ended: {:#?}", slack.log()));
    let whole: String = messages.iter().map(|m| visible(&m.text)).collect();
    assert_eq!(whole, expected, "the text across messages is the agent's, nothing lost or repeated");
    for message in &messages[..messages.len() - 1] {
        assert_eq!(message.start["thread_ts"], ROOT, "every part is in the thread");
        // Slack ended it; an edit with exactly the text it took finishes it.
        if message.stop.is_none() {
            assert_eq!(message.finished_with.as_deref(), Some(message.text.as_str()), "{message:#?}");
        }
    }
    let posts = app.slack_calls("chat.postMessage").await;
    assert!(posts.iter().all(|p| !text_of(p).contains("interrupted")), "nothing was cut: {posts:#?}");
}

#[tokio::test]
async fn a_reader_pressing_stop_stops_the_relay_and_the_ticket_goes_on() {
    let words: Vec<String> = (0..20).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let (app, timed, slack) = streaming_app(
        vec![Script::deltas(&refs, Duration::from_millis(100)), Script::deltas(&["Second answer."], Duration::ZERO)],
        |_| {},
    )
    .await;
    let slack = slack.stopped_at_append(2);
    seed_ticket(&app, ROOT, "DEVOPS-1").await;
    app.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(ROOT), "go on forever")).await;
    let told = eventually(Duration::from_secs(15), || async {
        app.slack_calls("chat.postMessage").await.into_iter().find(|p| text_of(p).contains("stopped this reply"))
    })
    .await;
    let told = told.unwrap_or_else(|| panic!("nobody was told: {:#?}", slack.log()));
    assert_eq!(told["thread_ts"], ROOT);
    let stops = slack.log().into_iter().filter(|(_, m, _)| m == "chat.stopStream").count();
    assert_eq!(stops, 0, "a stream the reader stopped is not stopped again");
    // The ticket takes the next message.
    app.post_event(&message_event("Ev2", "C1", "U1", "1700000000.000300", Some(ROOT), "next")).await;
    let next = eventually(Duration::from_secs(15), || async {
        slack.messages().into_iter().find(|m| visible(&m.text).contains("Second answer.") && m.stop.is_some())
    })
    .await;
    assert!(next.is_some(), "the next turn streams: {:#?}", slack.log());
    assert_eq!(timed.seen().len(), 2, "both messages reached the ticket");
}

#[tokio::test]
async fn a_429_on_append_is_waited_out_for_its_retry_after() {
    let (app, _timed, slack) =
        streaming_app(vec![Script::deltas(&["one ", "two ", "three"], Duration::from_millis(100))], |_| {}).await;
    let slack = slack.limiting(1, 2);
    seed_ticket(&app, ROOT, "DEVOPS-1").await;
    app.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(ROOT), "count")).await;
    let messages = finished(&slack, 1).await;
    assert_eq!(visible(&messages[0].text), "one two three");
    let appends: Vec<Instant> =
        slack.log().into_iter().filter(|(_, m, _)| m == "chat.appendStream").map(|(at, _, _)| at).collect();
    assert!(appends.len() >= 2, "{appends:?}");
    let gap = appends[1] - appends[0];
    assert!(gap >= Duration::from_millis(1950), "the retry came {gap:?} after the 429, not after Retry-After (2 s)");
}

/// Two replies streaming at once share a small append budget round robin: neither waits
/// much longer between its updates than the other.
#[tokio::test]
async fn concurrent_replies_share_a_small_budget_fairly() {
    let words: Vec<String> = (0..100).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let (app, _timed, slack) = streaming_app(vec![Script::deltas(&refs, Duration::from_millis(60))], |c| {
        c.slack.appends_per_minute = 40;
    })
    .await;
    seed_ticket(&app, ROOT, "DEVOPS-1").await;
    seed_ticket(&app, "1700000001.000100", "DEVOPS-2").await;
    app.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(ROOT), "a")).await;
    app.post_event(&message_event("Ev2", "C1", "U1", "1700000001.000200", Some("1700000001.000100"), "b")).await;
    let messages = finished(&slack, 2).await;
    // Both streamed at once, and the budget held them back.
    assert_eq!(messages.len(), 2, "{messages:#?}");
    let apart = if messages[0].started > messages[1].started {
        messages[0].started - messages[1].started
    } else {
        messages[1].started - messages[0].started
    };
    assert!(apart < Duration::from_secs(1), "the replies overlapped");
    for message in &messages {
        let span = *message.appends.last().unwrap() - message.started;
        assert!(message.appends.len() >= 3 && span > Duration::from_secs(5), "paced, not all at once: {message:#?}");
    }
    let longest_gaps: Vec<Duration> = messages
        .iter()
        .map(|m| {
            // From the stream's start, so a reply that waited for its first update counts too.
            let mut times = vec![m.started];
            times.extend(&m.appends);
            times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
        })
        .collect();
    assert_eq!(longest_gaps.len(), 2, "{messages:#?}");
    let (short, long) = (longest_gaps[0].min(longest_gaps[1]), longest_gaps[0].max(longest_gaps[1]));
    assert!(
        long.as_secs_f64() <= 1.5 * short.as_secs_f64(),
        "the longest gaps between updates were {longest_gaps:?}: not a fair share"
    );
    for message in &messages {
        assert!(visible(&message.text).ends_with("w99 "), "each reply is whole");
    }
}

#[tokio::test]
async fn edits_mode_never_streams() {
    let (app, _timed, slack) =
        streaming_app(vec![Script::deltas(&["Plain ", "edits."], Duration::from_millis(50))], |c| {
            c.slack.streaming = Streaming::Edits;
        })
        .await;
    seed_ticket(&app, ROOT, "DEVOPS-1").await;
    app.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(ROOT), "hi")).await;
    let edited = eventually(Duration::from_secs(15), || async {
        app.slack_calls("chat.update").await.into_iter().find(|u| text_of(u).contains("edits."))
    })
    .await;
    assert!(edited.is_some());
    assert!(slack.log().iter().all(|(_, m, _)| m == "chat.update"), "{:#?}", slack.log());
}

/// A replica that died mid-reply left a streamed message behind: the replica that takes
/// the message over finds it in the store, stops the stream with the interrupted note, and
/// does not send the message again.
#[tokio::test]
async fn a_stream_left_behind_by_a_dead_replica_is_finished_on_take_over() {
    let (app, timed, slack) = streaming_app(vec![Script::deltas(&["unused"], Duration::ZERO)], |_| {}).await;
    seed_ticket(&app, ROOT, "DEVOPS-1").await;
    // The dead replica's stream, and how far its turn got.
    let started = app.slack.uri().parse::<reqwest::Url>().map(|base| base.join("chat.startStream").unwrap()).unwrap();
    let body = json!({"channel": "C1", "thread_ts": ROOT, "recipient_user_id": "U1", "recipient_team_id": "T1"});
    let answer: serde_json::Value = app.http.post(started).json(&body).send().await.unwrap().json().await.unwrap();
    let ts = answer["ts"].as_str().unwrap().to_owned();
    let item = "msg:T1:C1:1700000000.000200";
    assert_eq!(app.store.begin_send(item).await.unwrap(), None);
    app.store.mark_send(item, helpdesk_bridge::store::SendMark::Accepted).await.unwrap();
    let mark = helpdesk_bridge::store::ReplyMark {
        channel: helpdesk_bridge::ids::ChannelId::new("C1"),
        ts: helpdesk_bridge::ids::MessageTs::new(ts.clone()),
        streamed: true,
        written: 120,
    };
    app.store.mark_reply(item, &mark).await.unwrap();

    app.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(ROOT), "mid-reply")).await;
    let messages = finished(&slack, 1).await;
    let stop = messages.iter().find(|m| m.ts == ts).and_then(|m| m.stop.clone());
    let stop = stop.unwrap_or_else(|| panic!("the stream left behind was not stopped: {:#?}", slack.log()));
    assert!(stop.to_string().contains("interrupted"), "it says the reply was cut: {stop:#}");
    assert!(timed.seen().is_empty(), "the message is not sent again");
}

/// The same fairness on the edit path: two replies edited from a small workspace budget.
#[tokio::test]
async fn concurrent_edited_replies_share_a_small_budget_fairly() {
    let words: Vec<String> = (0..100).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let timed = TimedHelpdesk::start(vec![Script::deltas(&refs, Duration::from_millis(80))]).await;
    let app = spawn_app(Options::bridge(Backend::Embedded).config(|c| {
        c.helpdesk.host.clone_from(&timed.url);
        c.helpdesk.force_streaming = true;
        c.slack.streaming = Streaming::Edits;
        c.slack.updates_per_minute = 30;
    }))
    .await;
    let log = fakes::UpdateLog::mount(&app.slack).await;
    seed_ticket(&app, ROOT, "DEVOPS-1").await;
    seed_ticket(&app, "1700000001.000100", "DEVOPS-2").await;
    app.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(ROOT), "a")).await;
    app.post_event(&message_event("Ev2", "C1", "U1", "1700000001.000200", Some("1700000001.000100"), "b")).await;
    let both_done = eventually(Duration::from_secs(60), || async {
        let finals = log
            .updates()
            .into_iter()
            .filter(|(_, b)| text_of(b).contains("w99") && !text_of(b).contains("working"))
            .count();
        (finals >= 2).then_some(())
    })
    .await;
    assert!(both_done.is_some(), "both replies finished: {:#?}", log.updates().len());
    let updates = log.updates();
    let mut by_message: std::collections::BTreeMap<String, Vec<Instant>> = std::collections::BTreeMap::new();
    for (at, body) in &updates {
        let ts = body["ts"].as_str().unwrap_or_default().to_owned();
        if ts != ROOT && ts != "1700000001.000100" {
            by_message.entry(ts).or_default().push(*at);
        }
    }
    // The gaps while both replies were streaming: up to the first reply's last edit.
    let end = by_message.values().filter_map(|t| t.last().copied()).min().unwrap();
    let longest_gaps: Vec<Duration> = by_message
        .values()
        .map(|times| {
            let times: Vec<Instant> = times.iter().copied().filter(|t| *t <= end).collect();
            times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
        })
        .collect();
    assert_eq!(longest_gaps.len(), 2, "{by_message:#?}");
    let (short, long) = (longest_gaps[0].min(longest_gaps[1]), longest_gaps[0].max(longest_gaps[1]));
    assert!(
        long.as_secs_f64() <= 1.5 * short.as_secs_f64(),
        "the longest gaps between edits were {longest_gaps:?}: not a fair share"
    );
}

/// Slack says who pressed Stop with an `agent_session_stopped` event, and ends the stream:
/// the turn stops relaying (no new message is started for the rest) and names them.
#[tokio::test]
async fn the_thread_says_who_stopped_a_reply() {
    let words: Vec<String> = (0..40).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let (app, _timed, slack) = streaming_app(vec![Script::deltas(&refs, Duration::from_millis(100))], |_| {}).await;
    seed_ticket(&app, ROOT, "DEVOPS-1").await;
    app.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(ROOT), "go")).await;
    let streaming = eventually(Duration::from_secs(15), || async {
        slack.messages().into_iter().find(|m| !m.appends.is_empty()).map(|m| m.ts)
    })
    .await;
    let ts = streaming.expect("a reply streams");
    app.post_event(&crate::support::payloads::stream_stopped_event("EvStop", "C1", ROOT, &ts, "U2")).await;
    // Slack ends the stream once the event is out; the bridge must not take that for an
    // expiry and go on in a new message.
    tokio::time::sleep(Duration::from_millis(100)).await;
    slack.stop_now(&ts);
    let told = eventually(Duration::from_secs(15), || async {
        app.slack_calls("chat.postMessage").await.into_iter().find(|p| text_of(p).contains("stopped this reply"))
    })
    .await;
    let told = told.unwrap_or_else(|| panic!("nobody was told: {:#?}", slack.log()));
    assert!(text_of(&told).contains("<@U2>"), "it names who stopped it: {}", text_of(&told));
    assert_eq!(slack.messages().len(), 1, "the reply did not go on in a new message: {:#?}", slack.log());
}

/// In a direct message the thread's status shows the agent working (its status line as
/// the loading message) and clears at the end; the agent's prompt suggestions follow the
/// reply; the finished reply can be rated.
#[tokio::test]
async fn a_direct_message_shows_status_suggestions_and_feedback() {
    use wiremock::{
        Mock, ResponseTemplate,
        matchers::{method, path},
    };
    let app = spawn_app(Options::bridge(Backend::Embedded)).await;
    let mut agent = fakes::agent(false);
    agent["metaData"]["prompt_suggestions"] =
        json!(r#"[{"title": "Check pods", "message": "Are my pods healthy?"}, "Show recent deploys"]"#);
    Mock::given(method("GET"))
        .and(path(format!("{}/admin/data/aiagents/{}", fakes::API, fakes::AGENT_ID)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": agent})))
        .with_priority(1)
        .mount(&app.helpdesk)
        .await;
    let reply = json!({"role": "assistant", "content": "All good.", "data": {}});
    fakes::mount_reply(&app.helpdesk, "DEVOPS-1", reply).await;
    app.post_event(&message_event("Ev1", "D9", "U1", "1700000000.000300", None, "are we ok?")).await;
    let offered = eventually(Duration::from_secs(15), || async {
        app.slack_calls("assistant.threads.setSuggestedPrompts").await.into_iter().next()
    })
    .await;
    let offered = offered.expect("the agent's suggestions were offered");
    assert_eq!(offered["channel_id"], "D9");
    assert_eq!(offered["thread_ts"], "1700000000.000300");
    assert_eq!(offered["prompts"][0], json!({"title": "Check pods", "message": "Are my pods healthy?"}));
    assert_eq!(offered["prompts"].as_array().map(Vec::len), Some(2));

    let statuses = app.slack_calls("assistant.threads.setStatus").await;
    assert!(statuses.len() >= 2, "{statuses:#?}");
    assert_eq!(statuses[0]["status"], "is working…");
    assert_eq!(statuses.last().unwrap()["status"], "", "cleared when the turn ended");

    let finals = app.slack_calls("chat.update").await;
    let last = finals.iter().rev().find(|u| text_of(u).contains("All good.")).expect("the reply");
    assert!(last["blocks"].to_string().contains("feedback_buttons"), "the reply can be rated: {last:#}");
}

/// A reply longer than one streamed message holds (12,000 characters) goes on in a new
/// message: every character once, each message within Slack's limit, and the step that
/// was running goes on in the new message.
#[tokio::test]
async fn a_reply_past_a_messages_length_goes_on_in_a_new_message() {
    let lines: Vec<String> = (0..130).map(|i| format!("{i:03} {}\n", "x".repeat(95))).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let mut script = Script::deltas(&refs, Duration::from_millis(5));
    script.events.insert(0, json!({"type": "intermittent_update", "text": "Reading logs"}));
    let (app, _timed, slack) = streaming_app(vec![script], |_| {}).await;
    seed_ticket(&app, ROOT, "DEVOPS-1").await;
    app.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(ROOT), "dump it")).await;
    let messages = finished(&slack, 2).await;
    assert_eq!(messages.len(), 2, "{:#?}", messages.iter().map(|m| m.text.chars().count()).collect::<Vec<_>>());
    for message in &messages {
        assert!(message.text.chars().count() <= 12_000, "within Slack's limit");
        assert!(message.stop.is_some(), "each message was finished");
    }
    let whole: String = messages.iter().map(|m| visible(&m.text)).collect();
    assert_eq!(whole, lines.concat());
    let first_stop = messages[0].stop.as_ref().unwrap();
    assert!(first_stop["blocks"].to_string().contains("continued below"), "{first_stop:#}");
    let carried = messages[1].start["chunks"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "task_update" && c["title"] == "Reading logs" && c["status"] == "in_progress");
    assert!(carried, "the running step goes on in the new message: {:#}", messages[1].start);
}

/// The critical path on the native path: with Slack and the HelpDesk each answering in
/// 4 s, a thread message's first reply text is in Slack within 9 s, because the stream
/// starts alongside the send (measured by the fakes' clocks).
#[tokio::test]
async fn a_streamed_reply_starts_alongside_the_send() {
    let late = Duration::from_secs(4);
    let mut script = Script::deltas(&["First words.", " More."], Duration::from_millis(100));
    script.first_after = late;
    let (app, timed, slack) = streaming_app(vec![script], |_| {}).await;
    let slack = slack.answering_after(late);
    seed_ticket(&app, ROOT, "DEVOPS-1").await;
    let start = Instant::now();
    app.post_event(&message_event("Ev1", "C1", "U1", "1700000000.000200", Some(ROOT), "status?")).await;
    let first_text = eventually(Duration::from_secs(30), || async {
        slack
            .log()
            .into_iter()
            .find(|(_, method, body)| method == "chat.appendStream" && body.to_string().contains("First words."))
    })
    .await;
    let (arrived, _, _) = first_text.unwrap_or_else(|| panic!("no text streamed: {:#?}", slack.log()));
    let shown = arrived + late - start;
    let sent = timed.seen()[0].arrived - start;
    assert!(sent < Duration::from_secs(1), "the send waited on Slack: {sent:?}");
    assert!(shown <= Duration::from_secs(9), "the first text took {shown:?}");
}
