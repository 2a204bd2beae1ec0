//! Many workspaces on one deployment: each served with its own installation's token, a
//! workspace without one never served with another's.

use std::time::Duration;

use helpdesk_bridge::{
    ids::{TeamId, UserId},
    model::{Installation, Owner},
    store::seal::Sealer,
};
use serde_json::{Value, json};

use crate::support::{
    app::{BOT_USER, Backend, Options, TestApp, spawn_app},
    eventually,
    fakes::{self, mount_reply},
    payloads::mention_event,
};

const KEY: &str = "5a1f0c3e7b2d4f6a8c0e1a3b5d7f9e2c4a6b8d0f1e3c5a7b9d2f4e6a8c0b1d3e";

/// A mention of the bot in `team`, whose installation's bot user is `bot`.
fn mention_in(team: &str, bot: &str, event_id: &str, channel: &str, ts: &str, text: &str) -> Value {
    let mut event = mention_event(event_id, channel, "U1", ts, &format!("<@{bot}> {text}"));
    event["team_id"] = json!(team);
    event["authorizations"] = json!([{"enterprise_id": null, "team_id": team, "user_id": bot, "is_bot": true, "is_enterprise_install": false}]);
    event
}

/// The Authorization header and method of every Slack call whose body mentions `needle`.
async fn bearers(app: &TestApp, needle: &str) -> Vec<String> {
    let requests = app.slack.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains(needle))
        .filter_map(|r| {
            r.headers.get("authorization").and_then(|h| h.to_str().ok()).map(|h| format!("{h} {}", r.url.path()))
        })
        .collect()
}

#[tokio::test]
async fn each_workspace_is_answered_with_its_own_token_and_an_unknown_one_not_at_all() {
    let app =
        spawn_app(Options::bridge(Backend::Redis).config(|c| c.store.encryption_key = Some(KEY.to_owned().into())))
            .await;
    let sealer = Sealer::from_hex(KEY).unwrap();
    let installation = Installation {
        owner: Owner::Team(TeamId::new("T2")),
        enterprise: None,
        bot_token: "xoxb-second-workspace".to_owned().into(),
        bot_user: UserId::new("UBOT2"),
        bot_id: Some("B2".to_owned()),
        scopes: vec!["chat:write".to_owned()],
        installer: Some(UserId::new("U9")),
        installed_at: 1,
    };
    app.store.put_installation(&installation, &sealer).await.unwrap();
    mount_reply(&app.helpdesk, "DEVOPS-1", json!({"role": "assistant", "content": "Reply one.", "data": {}})).await;
    mount_reply(&app.helpdesk, "DEVOPS-2", json!({"role": "assistant", "content": "Reply two.", "data": {}})).await;

    // SLACK_BOT_TOKEN's own workspace, and the installed one.
    app.post_event(&mention_in("T1", BOT_USER, "Ev1", "C1", "1700000000.000100", "first")).await;
    app.post_event(&mention_in("T2", "UBOT2", "Ev2", "C2", "1700000000.000200", "second")).await;
    let answered = eventually(Duration::from_secs(15), || async {
        let one = bearers(&app, "Reply one.").await;
        let two = bearers(&app, "Reply two.").await;
        (!one.is_empty() && !two.is_empty()).then_some((one, two))
    })
    .await;
    let Some((one, two)) = answered else {
        panic!("both replied; posts: {:#?}", app.slack_calls("chat.postMessage").await)
    };
    assert!(one.iter().all(|b| b.starts_with("Bearer xoxb-test ")), "{one:?} / {two:?}");
    assert!(two.iter().all(|b| b.starts_with("Bearer xoxb-second-workspace ")), "{two:?}");
    let in_c2 = bearers(&app, "\"C2\"").await;
    assert!(!in_c2.is_empty() && in_c2.iter().all(|b| b.starts_with("Bearer xoxb-second-workspace ")), "{in_c2:?}");
    // The second workspace's bot mention is its own bot user's: stripped from the title.
    let created = app.helpdesk_calls("POST", &format!("/tickets/{}", fakes::WORKSPACE_ID)).await;
    assert!(created.iter().any(|c| c["title"] == "second"), "{created:?}");

    // A workspace nobody installed: acknowledged, then nothing is created or posted there.
    let response = app.post_event(&mention_in("T3", "UBOT3", "Ev3", "C3", "1700000000.000300", "third")).await;
    assert_eq!(response.status(), 200);
    let handled = eventually(Duration::from_secs(15), || async {
        app.store.inbox_stats().await.ok().filter(|s| s.depth == 0).map(drop)
    })
    .await;
    assert!(handled.is_some(), "the inbox drained");
    let posts = app.slack_calls("chat.postMessage").await;
    assert!(posts.iter().all(|p| p["channel"] != "C3"), "{posts:?}");
    assert!(
        !app.helpdesk_calls("POST", &format!("/tickets/{}", fakes::WORKSPACE_ID))
            .await
            .iter()
            .any(|c| c["title"] == "third")
    );
}
