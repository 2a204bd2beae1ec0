//! Slack ingress through the real router: verification, limits, parsing, dedup, filtering.

use std::time::Duration;

use helpdesk_bridge::{
    inbound::{InboundKind, UserMessage},
    slack::{
        controls::callback,
        verify::{Verifier, unix_now},
    },
};
use serde_json::json;

use crate::support::{
    app::{BOT_ID, BOT_USER, Backend, Options, Recorder, SECRET, spawn_app},
    eventually,
    payloads::{callback, mention_event, message_event},
    redis::PrivateRedis,
};

fn message(item: &helpdesk_bridge::inbound::Inbound) -> &UserMessage {
    match &item.kind {
        InboundKind::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test]
async fn url_verification_returns_the_challenge() {
    let app = spawn_app(Options::default()).await;
    let body = json!({"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"});
    let response = app.post_event(&body).await;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["challenge"], "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");
}

#[tokio::test]
async fn bad_signatures_get_401_and_change_nothing() {
    let app = spawn_app(Options::default()).await;
    let event = mention_event("EvSig", "C1", "U1", "1700000000.000100", "<@UBOT> help");
    let body = event.to_string();
    let now = unix_now();
    let good = Verifier::new(SECRET.to_owned().into());
    let wrong = Verifier::new("not-the-secret".to_owned().into());
    let cases: Vec<(&str, Option<String>, Option<String>, String)> = vec![
        (
            "tampered body",
            Some(now.to_string()),
            Some(good.sign(&now.to_string(), body.as_bytes())),
            body.replace("help", "hack"),
        ),
        ("wrong secret", Some(now.to_string()), Some(wrong.sign(&now.to_string(), body.as_bytes())), body.clone()),
        (
            "stale",
            Some((now - 600).to_string()),
            Some(good.sign(&(now - 600).to_string(), body.as_bytes())),
            body.clone(),
        ),
        (
            "future",
            Some((now + 600).to_string()),
            Some(good.sign(&(now + 600).to_string(), body.as_bytes())),
            body.clone(),
        ),
        ("no signature", Some(now.to_string()), None, body.clone()),
        ("no timestamp", None, Some(good.sign(&now.to_string(), body.as_bytes())), body.clone()),
    ];
    for route in ["/slack/events", "/slack/interactivity", "/slack/commands"] {
        for (case, ts, signature, sent) in &cases {
            let mut request =
                app.http.post(app.url(route)).header("content-type", "application/json").body(sent.clone());
            if let Some(ts) = ts {
                request = request.header("x-slack-request-timestamp", ts);
            }
            if let Some(signature) = signature {
                request = request.header("x-slack-signature", signature);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{route}: {case}");
        }
    }
    // No side effect: nothing was handled and no dedup mark was set, so the genuine request
    // is handled when it comes.
    assert!(app.recorder.taken().is_empty());
    assert_eq!(app.post_event(&event).await.status(), 200);
    assert_eq!(app.taken(1).await.len(), 1);
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let app = spawn_app(Options::default()).await;
    let big = "x".repeat(1024 * 1024 + 1);
    let response = app.post_signed("/slack/events", "application/json", big).await;
    assert_eq!(response.status(), 413);
    let chunked = reqwest::Body::wrap_stream(futures_util::stream::iter(
        (0..20).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 64 * 1024])),
    ));
    let response = app.http.post(app.url("/slack/interactivity")).body(chunked).send().await.unwrap();
    assert_eq!(response.status(), 413, "a body without Content-Length is cut off at the limit too");
}

#[tokio::test]
async fn malformed_bodies_get_400() {
    let app = spawn_app(Options::default()).await;
    let cases = [
        ("/slack/events", "application/json", "{not json"),
        ("/slack/events", "application/json", "[1,2,3]"),
        ("/slack/interactivity", "application/x-www-form-urlencoded", "nopayload=1"),
        ("/slack/interactivity", "application/x-www-form-urlencoded", "payload=%7Bbroken"),
        ("/slack/commands", "application/x-www-form-urlencoded", "team_id=T1&text=no+command+fields"),
    ];
    for (route, content_type, body) in cases {
        let response = app.post_signed(route, content_type, body).await;
        assert_eq!(response.status(), 400, "{route} {body}");
    }
    assert!(app.recorder.taken().is_empty());
}

#[tokio::test]
async fn unknown_event_and_payload_types_are_acknowledged_and_ignored() {
    let app = spawn_app(Options::default()).await;
    let bodies = [
        json!({"type": "something_new", "team_id": "T1"}),
        callback("EvUnknown", json!({"type": "reaction_added", "user": "U1", "reaction": "eyes"})),
        json!({"type": "app_rate_limited", "team_id": "T1", "minute_rate_limited": 1518467820, "api_app_id": "A1"}),
    ];
    for body in &bodies {
        assert_eq!(app.post_event(body).await.status(), 200, "{body}");
    }
    let response = app.post_interaction(&json!({"type": "some_future_interaction", "team": {"id": "T1"}})).await;
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(app.recorder.taken().is_empty());
}

async fn retries_of_one_event_are_handled_once(backend: Backend) {
    let app = spawn_app(Options::default().on(backend)).await;
    let event = message_event("EvRetry", "C1", "U1", "1700000000.000200", Some("1700000000.000100"), "disk is full");
    assert_eq!(app.post_event(&event).await.status(), 200);
    for retry in ["1", "2", "3"] {
        let response = app
            .post_signed_with(
                "/slack/events",
                "application/json",
                event.to_string(),
                &[("x-slack-retry-num", retry), ("x-slack-retry-reason", "http_timeout")],
            )
            .await;
        assert_eq!(response.status(), 200, "a retry is acknowledged, not refused");
    }
    let taken = app.taken(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(app.recorder.taken().len(), 1, "handled exactly once: {taken:?}");
    assert_eq!(message(&taken[0]).text, "disk is full");
}

#[tokio::test]
async fn retries_of_one_event_are_handled_once_redis() {
    retries_of_one_event_are_handled_once(Backend::Redis).await;
}

#[tokio::test]
async fn retries_of_one_event_are_handled_once_embedded() {
    retries_of_one_event_are_handled_once(Backend::Embedded).await;
}

/// A mention arrives twice, as `app_mention` and as `message`, with different event ids.
#[tokio::test]
async fn a_mention_delivered_twice_is_handled_once() {
    let app = spawn_app(Options::default()).await;
    let ts = "1700000000.000300";
    let text = "<@UBOT> pods are crash-looping in ns-a";
    assert_eq!(app.post_event(&message_event("EvMsg", "C1", "U1", ts, None, text)).await.status(), 200);
    assert_eq!(app.post_event(&mention_event("EvMention", "C1", "U1", ts, text)).await.status(), 200);
    let taken = app.taken(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(app.recorder.taken().len(), 1);
    let m = message(&taken[0]);
    assert!(m.mentions_bot);
    assert_eq!(m.thread_ts, None);
    assert_eq!(m.user.as_str(), "U1");
}

#[tokio::test]
async fn own_bot_and_non_human_messages_are_ignored() {
    let app = spawn_app(Options::default()).await;
    let thread = Some("1700000000.000100");
    let mut own = message_event("Ev1", "C1", BOT_USER, "1700000000.000401", thread, "agent reply");
    let mut from_bot = message_event("Ev2", "C1", "U2", "1700000000.000402", thread, "another bot");
    from_bot["event"]["bot_id"] = json!("BOTHER");
    let mut our_bot_id = message_event("Ev3", "C1", "U3", "1700000000.000403", thread, "ours");
    our_bot_id["event"]["bot_id"] = json!(BOT_ID);
    let mut edited = message_event("Ev4", "C1", "U1", "1700000000.000404", thread, "edited");
    edited["event"]["subtype"] = json!("message_changed");
    let mut joined = message_event("Ev5", "C1", "U1", "1700000000.000405", None, "<@UBOT> joined");
    joined["event"]["subtype"] = json!("channel_join");
    let chatter = message_event("Ev6", "C1", "U1", "1700000000.000406", None, "lunch?");
    for body in [&mut own, &mut from_bot, &mut our_bot_id, &mut edited, &mut joined] {
        assert_eq!(app.post_event(body).await.status(), 200);
    }
    assert_eq!(app.post_event(&chatter).await.status(), 200);

    // Human input that does count: a plain thread reply, a file share, a broadcast reply, a DM.
    let reply = message_event("Ev7", "C1", "U1", "1700000000.000407", thread, "here are the logs");
    let mut file = message_event("Ev8", "C1", "U1", "1700000000.000408", thread, "screenshot");
    file["event"]["subtype"] = json!("file_share");
    let mut broadcast = message_event("Ev9", "C1", "U1", "1700000000.000409", thread, "also to channel");
    broadcast["event"]["subtype"] = json!("thread_broadcast");
    let dm = message_event("Ev10", "D1", "U1", "1700000000.000410", None, "help me");
    for body in [&reply, &file, &broadcast, &dm] {
        assert_eq!(app.post_event(body).await.status(), 200);
    }
    let taken = app.taken(4).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut texts: Vec<_> = app.recorder.taken().iter().map(|i| message(i).text.clone()).collect();
    texts.sort();
    assert_eq!(texts, ["also to channel", "help me", "here are the logs", "screenshot"], "{taken:?}");
    assert!(app.recorder.taken().iter().any(|i| message(i).is_dm));
}

#[tokio::test]
async fn slash_commands_and_ssl_checks() {
    let app = spawn_app(Options::default()).await;
    let ssl = app
        .http
        .post(app.url("/slack/commands"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("ssl_check=1&token=x")
        .send()
        .await
        .unwrap();
    assert_eq!(ssl.status(), 200, "the unsigned ssl_check probe is answered");

    let form = "token=x&team_id=T1&team_domain=acme&channel_id=C1&channel_name=ops&user_id=U1&user_name=alice\
        &command=%2Fhelpdesk&text=new+Disk+full+%7C+prod+db+at+95%25&api_app_id=A1\
        &response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1%2F1%2Fabc&trigger_id=13345224609.738474920.8088930838d88f008e0";
    assert_eq!(app.post_signed("/slack/commands", "application/x-www-form-urlencoded", form).await.status(), 200);
    let taken = app.taken(1).await;
    let InboundKind::Command(command) = &taken[0].kind else { panic!("{taken:?}") };
    assert_eq!(command.command, "/helpdesk");
    assert_eq!(command.text, "new Disk full | prod db at 95%");
    assert_eq!(command.channel.as_str(), "C1");
    assert_eq!(&*command.response_url, "https://hooks.slack.com/commands/T1/1/abc");
}

#[tokio::test]
async fn block_actions_become_actions_with_their_context() {
    let app = spawn_app(Options::default()).await;
    // The parser passes action ids and values through untouched, so these are deliberately
    // not the bridge's own (an old card value without a version).
    let payload = json!({
        "type": "block_actions",
        "user": {"id": "U1", "username": "alice", "name": "alice", "team_id": "T2"},
        "api_app_id": "A1", "token": "x",
        "container": {"type": "message", "message_ts": "1700000000.000900", "channel_id": "C1", "is_ephemeral": false},
        "trigger_id": "111.222.abc", "team": {"id": "T1", "domain": "acme"},
        "channel": {"id": "C1", "name": "ops"},
        "message": {"type": "message", "user": "UBOT", "ts": "1700000000.000900", "thread_ts": "1700000000.000100", "text": "card",
            "blocks": [{"type": "actions", "block_id": "cmd-0", "elements": [{"type": "button", "action_id": "approve",
                "text": {"type": "plain_text", "text": "Approve"}, "value": "card1:0"}]}]},
        "response_url": "https://hooks.slack.com/actions/T1/1/xyz",
        "actions": [{"action_id": "approve", "block_id": "cmd-0", "text": {"type": "plain_text", "text": "Approve", "emoji": true},
            "value": "card1:0", "type": "button", "action_ts": "1700000001.000000"}],
        "state": {"values": {}}
    });
    assert_eq!(app.post_interaction(&payload).await.status(), 200);
    let taken = app.taken(1).await;
    let InboundKind::Action(action) = &taken[0].kind else { panic!("{taken:?}") };
    assert_eq!(action.user.as_str(), "U1");
    assert_eq!(action.user_team.as_ref().map(|t| t.as_str()), Some("T2"), "a Slack Connect clicker's own team is kept");
    assert_eq!(action.message_ts.as_ref().map(|t| t.as_str()), Some("1700000000.000900"));
    assert_eq!(action.thread_ts.as_ref().map(|t| t.as_str()), Some("1700000000.000100"));
    assert_eq!(action.actions[0].action_id, "approve");
    assert_eq!(action.actions[0].value.as_deref(), Some("card1:0"));
    // Slack redelivering the same payload changes nothing.
    assert_eq!(app.post_interaction(&payload).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(app.recorder.taken().len(), 1);
}

#[tokio::test]
async fn view_submissions_and_message_shortcuts_are_parsed() {
    let app = spawn_app(Options::default()).await;
    // The metadata and the input ids are opaque to the parser, so they are deliberately
    // not the bridge's own shapes: only the callback ids are.
    let view = json!({
        "type": "view_submission", "team": {"id": "T1", "domain": "acme"},
        "user": {"id": "U1", "username": "alice", "name": "alice", "team_id": "T1"},
        "api_app_id": "A1", "token": "x", "trigger_id": "9.9.a",
        "view": {"id": "V1", "team_id": "T1", "type": "modal", "callback_id": callback::REJECT, "private_metadata": "card1:1",
            "hash": "h1", "title": {"type": "plain_text", "text": "Reject"}, "blocks": [],
            "state": {"values": {"reason": {"text": {"type": "plain_text_input", "value": "not in prod"}}}}}
    });
    assert_eq!(app.post_interaction(&view).await.status(), 200);
    let shortcut = json!({
        "type": "message_action", "token": "x", "action_ts": "1.2", "callback_id": callback::SHORTCUT, "trigger_id": "7.7.b",
        "team": {"id": "T1", "domain": "acme"}, "user": {"id": "U2", "name": "bob"},
        "channel": {"id": "C1", "name": "ops"},
        "message": {"type": "message", "user": "U3", "ts": "1700000000.000500", "text": "prod is down"},
        "response_url": "https://hooks.slack.com/app/T1/1/zzz"
    });
    assert_eq!(app.post_interaction(&shortcut).await.status(), 200);
    let taken = app.taken(2).await;
    let submission = taken.iter().find_map(|i| match &i.kind {
        InboundKind::ViewSubmission(v) => Some(v.clone()),
        _ => None,
    });
    let submission = submission.expect("a view submission");
    assert_eq!(submission.callback_id, callback::REJECT);
    assert_eq!(submission.private_metadata, "card1:1");
    assert_eq!(
        submission.values.get(&("reason".to_owned(), "text".to_owned())).map(String::as_str),
        Some("not in prod")
    );
    let short = taken.iter().find_map(|i| match &i.kind {
        InboundKind::Shortcut(s) => Some(s.clone()),
        _ => None,
    });
    let short = short.expect("a shortcut");
    assert_eq!(short.text, "prod is down");
    assert_eq!(short.author.as_ref().map(|u| u.as_str()), Some("U3"));
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app(Options::default()).await;
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value = app.http.get(app.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready, json!({"ready": true, "checks": {"store": true, "slack_auth": true, "socket": null}}));

    let event = message_event("EvM", "C1", "U1", "1700000000.000600", Some("1700000000.000100"), "hi");
    app.post_event(&event).await;
    app.post_event(&event).await;
    app.post_signed("/slack/events", "application/json", "{").await;
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for expected in [
        r#"helpdesk_bridge_requests_total{route="/slack/events",outcome="ok"} 1"#,
        r#"helpdesk_bridge_requests_total{route="/slack/events",outcome="duplicate"} 1"#,
        r#"helpdesk_bridge_requests_total{route="/slack/events",outcome="malformed"} 1"#,
        "helpdesk_bridge_dedup_hits_total 1",
        r#"helpdesk_bridge_ack_seconds_count{transport="http"} 3"#,
        r#"helpdesk_bridge_slack_calls_total{operation="auth.test",outcome="ok"} 1"#,
    ] {
        assert!(metrics.contains(expected), "missing {expected} in\n{metrics}");
    }
}

/// Until Slack accepts the token the bot cannot tell its own messages apart, so events
/// are refused with 503 (Slack retries them) and `/readyz` says why.
#[tokio::test]
async fn without_slack_auth_events_are_deferred_not_lost() {
    let app = spawn_app(Options::default().without_slack_auth()).await;
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["slack_auth"], false);
    let event = message_event("EvEarly", "C1", "U1", "1700000000.000700", Some("1700000000.000100"), "early");
    assert_eq!(app.post_event(&event).await.status(), 503);
    assert!(app.recorder.taken().is_empty());
}

/// With the store down the ack says 503 (so Slack redelivers) and marks nothing; once the
/// store is back, the redelivery is handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_defers_events_without_losing_them() {
    let redis = PrivateRedis::start();
    let app = spawn_app(Options::default().config(|c| c.store.redis_url = Some(redis.url().into()))).await;
    let redis = redis.stop();
    let event = message_event("EvOutage", "C1", "U1", "1700000000.000800", Some("1700000000.000100"), "still there?");
    assert_eq!(app.post_event(&event).await.status(), 503);
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);

    let _redis = redis.restart();
    let accepted =
        eventually(Duration::from_secs(10), || async { (app.post_event(&event).await.status() == 200).then_some(()) })
            .await;
    assert!(accepted.is_some());
    let taken = app.taken(1).await;
    assert_eq!(message(&taken[0]).text, "still there?");
}

/// Past `INBOX_MAX_ITEMS` the ack is 503, and the dedup mark is not spent, so the
/// redelivery goes through once there is room.
#[tokio::test]
async fn a_full_inbox_asks_slack_to_retry() {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let hook_gate = gate.clone();
    let recorder = Recorder {
        hook: Some(std::sync::Arc::new(move |_| {
            let gate = hook_gate.clone();
            Box::pin(async move {
                let _ = gate.acquire().await.map(|p| p.forget());
            })
        })),
        ..Default::default()
    };
    let app = spawn_app(Options::recording(recorder).config(|c| c.dispatch.inbox_max_items = 2)).await;
    let events: Vec<_> = (0..3)
        .map(|n| {
            message_event(
                &format!("EvQ{n}"),
                "C1",
                "U1",
                &format!("1700000000.00100{n}"),
                Some("1700000000.000100"),
                &format!("m{n}"),
            )
        })
        .collect();
    assert_eq!(app.post_event(&events[0]).await.status(), 200);
    assert_eq!(app.post_event(&events[1]).await.status(), 200);
    assert_eq!(app.post_event(&events[2]).await.status(), 503, "the third does not fit");
    gate.add_permits(10);
    app.taken(2).await;
    assert_eq!(app.post_event(&events[2]).await.status(), 200, "the redelivery is accepted");
    assert_eq!(app.taken(3).await.len(), 3);
}

/// Home-tab opens are deduplicated by their event id, so Slack's retry a minute later is
/// still recognised, while a second, genuine open is not swallowed.
#[tokio::test]
async fn app_home_opened_is_deduplicated_by_event_id() {
    let app = spawn_app(Options::default()).await;
    let open = |id: &str| {
        callback(
            id,
            json!({"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home", "event_ts": "1.2"}),
        )
    };
    assert_eq!(app.post_event(&open("EvHome1")).await.status(), 200);
    let retry = app
        .post_signed_with(
            "/slack/events",
            "application/json",
            open("EvHome1").to_string(),
            &[("x-slack-retry-num", "2")],
        )
        .await;
    assert_eq!(retry.status(), 200);
    assert_eq!(app.post_event(&open("EvHome2")).await.status(), 200);
    let messages_tab = callback(
        "EvHome3",
        json!({"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "messages", "event_ts": "1.3"}),
    );
    assert_eq!(app.post_event(&messages_tab).await.status(), 200);
    app.taken(2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let taken = app.recorder.taken();
    assert_eq!(taken.len(), 2, "{taken:?}");
    assert!(taken.iter().all(|i| matches!(&i.kind, InboundKind::HomeOpened { user, .. } if user.as_str() == "U1")));
}

/// With `ADMIN_LISTEN_ADDR` the metrics are served only on the admin listener; the public
/// listener keeps the health and readiness checks load balancers use.
#[tokio::test]
async fn an_admin_listener_takes_the_metrics_off_the_public_one() {
    let app =
        spawn_app(Options::default().config(|c| c.admin_listen_addr = Some("127.0.0.1:0".parse().unwrap()))).await;
    let admin = app.admin_addr.expect("an admin listener");
    assert_ne!(admin.port(), app.addr.port());
    let get = |url: String| {
        let http = app.http.clone();
        async move { http.get(url).send().await.expect("answered") }
    };
    let admin_url = |path: &str| format!("http://{admin}{path}");
    let event = message_event("EvAdmin", "C1", "U1", "1700000000.000950", Some("1700000000.000100"), "hi");
    assert_eq!(app.post_event(&event).await.status(), 200);
    app.taken(1).await;

    let health = get(app.url("/healthz")).await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
    let ready = get(app.url("/readyz")).await;
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready, json!({"ready": true, "checks": {"store": true, "slack_auth": true, "socket": null}}));
    assert_eq!(get(app.url("/metrics")).await.status(), 404, "no metrics on the public listener");

    let health = get(admin_url("/healthz")).await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
    let ready: serde_json::Value = get(admin_url("/readyz")).await.json().await.unwrap();
    assert_eq!(ready, json!({"ready": true, "checks": {"store": true, "slack_auth": true, "socket": null}}));
    let metrics = get(admin_url("/metrics")).await;
    assert_eq!(metrics.status(), 200);
    assert_eq!(metrics.headers()["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let metrics = metrics.text().await.unwrap();
    let counted = r#"helpdesk_bridge_requests_total{route="/slack/events",outcome="ok"} 1"#;
    assert!(metrics.contains(counted), "the admin listener shows the public one's requests:\n{metrics}");

    // Nothing of Slack's is served on the admin listener.
    let body = event.to_string();
    let ts = unix_now().to_string();
    let signature = Verifier::new(SECRET.to_owned().into()).sign(&ts, body.as_bytes());
    for route in ["/slack/events", "/slack/interactivity", "/slack/commands"] {
        let response = app
            .http
            .post(admin_url(route))
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", &ts)
            .header("x-slack-signature", &signature)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{route}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(app.recorder.taken().len(), 1);
}

/// Without `ADMIN_LISTEN_ADDR` there is one listener, serving everything.
#[tokio::test]
async fn without_an_admin_listener_the_metrics_stay_on_the_public_one() {
    let app = spawn_app(Options::default()).await;
    assert_eq!(app.admin_addr, None);
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains(r#"helpdesk_bridge_slack_calls_total{operation="auth.test",outcome="ok"} 1"#),
        "{metrics}"
    );
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(app.http.get(app.url("/readyz")).send().await.unwrap().status(), 200);
}
