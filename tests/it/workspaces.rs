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

/// [`bearers`] for `needle` once there is one, within 15 s; panics saying `what` otherwise.
async fn answered(app: &TestApp, needle: &str, what: &str) -> Vec<String> {
    let seen = eventually(Duration::from_secs(15), || async {
        let seen = bearers(app, needle).await;
        (!seen.is_empty()).then_some(seen)
    })
    .await;
    seen.unwrap_or_else(|| panic!("{what}"))
}

/// Waits until every item taken in has been handled.
async fn drained(app: &TestApp) {
    let done = eventually(Duration::from_secs(15), || async {
        app.store.inbox_stats().await.ok().filter(|s| s.depth == 0).map(drop)
    })
    .await;
    assert!(done.is_some(), "the inbox drained");
}

/// A workspace's installation with bot `bot` and token `token`.
fn installed(owner: Owner, token: &str, bot: &str) -> Installation {
    let enterprise = match &owner {
        Owner::Enterprise(enterprise) => Some(enterprise.clone()),
        Owner::Team(_) => None,
    };
    Installation {
        owner,
        enterprise,
        bot_token: token.to_owned().into(),
        bot_user: UserId::new(bot),
        bot_id: None,
        scopes: Vec::new(),
        installer: None,
        installed_at: 1,
    }
}

/// The Authorization header and method of every Slack call whose body or query mentions
/// `needle`.
async fn bearers(app: &TestApp, needle: &str) -> Vec<String> {
    let requests = app.slack.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| {
            String::from_utf8_lossy(&r.body).contains(needle) || r.url.query().is_some_and(|q| q.contains(needle))
        })
        .filter_map(|r| {
            r.headers.get("authorization").and_then(|h| h.to_str().ok()).map(|h| format!("{h} {}", r.url.path()))
        })
        .collect()
}

#[tokio::test]
async fn each_workspace_is_answered_with_its_own_token_and_an_unknown_one_not_at_all() {
    let prefix = crate::support::redis::unique_prefix();
    let key_prefix = prefix.clone();
    let app = spawn_app(Options::bridge(Backend::Redis).config(move |c| {
        c.store.encryption_key = Some(KEY.to_owned().into());
        c.store.key_prefix = key_prefix;
    }))
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
    // The same channel, shared by the two workspaces (Slack Connect) and hosted by T1: the
    // delivery for T2's installation names T1 as the event's workspace, and its
    // authorization T2; it is answered with T2's token.
    let mut shared = mention_in("T2", "UBOT2", "Ev2", "C1", "1700000000.000200", "second");
    shared["team_id"] = json!("T1");
    app.post_event(&shared).await;
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
    let in_t2_thread = bearers(&app, "1700000000.000200").await;
    assert!(
        !in_t2_thread.is_empty() && in_t2_thread.iter().all(|b| b.starts_with("Bearer xoxb-second-workspace ")),
        "{in_t2_thread:?}"
    );
    let in_t1_thread = bearers(&app, "1700000000.000100").await;
    assert!(in_t1_thread.iter().all(|b| b.starts_with("Bearer xoxb-test ")), "{in_t1_thread:?}");
    // Each workspace draws on Slack budgets of its own (shared by the replicas in Redis):
    // once both turns are over (the ✅ reaction comes last), the same budgets, one set each.
    let client = redis::Client::open(crate::support::redis::redis_url()).unwrap();
    let budgets = || async {
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{prefix}budget:*")).query_async(&mut conn).await.unwrap();
        let of = |team: &str| -> Vec<String> {
            let mut names: Vec<String> = keys
                .iter()
                .filter_map(|k| k.strip_prefix(&format!("{prefix}budget:"))?.strip_suffix(&format!(":{team}")))
                .map(str::to_owned)
                .collect();
            names.sort();
            names
        };
        (of("T1"), of("T2"))
    };
    let apart = eventually(Duration::from_secs(15), || async {
        let (one, two) = budgets().await;
        (one.contains(&"reactions".to_owned()) && one == two).then_some(one)
    })
    .await;
    assert!(apart.is_some(), "one set of budgets per workspace: {:?}", budgets().await);
    // The second workspace's bot mention is its own bot user's: stripped from the title.
    let created = app.helpdesk_calls("POST", &format!("/tickets/{}", fakes::WORKSPACE_ID)).await;
    assert!(created.iter().any(|c| c["title"] == "second"), "{created:?}");

    // A workspace nobody installed: acknowledged, then nothing is created or posted there.
    let response = app.post_event(&mention_in("T3", "UBOT3", "Ev3", "C3", "1700000000.000300", "third")).await;
    assert_eq!(response.status(), 200);
    drained(&app).await;
    assert!(bearers(&app, "C3").await.is_empty(), "no Slack call at all for the unknown workspace");
    assert!(
        !app.helpdesk_calls("POST", &format!("/tickets/{}", fakes::WORKSPACE_ID))
            .await
            .iter()
            .any(|c| c["title"] == "third")
    );
    // Without SLACK_CLIENT_ID there is no install flow.
    assert_eq!(app.http.get(app.url("/slack/install")).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn the_install_flow_binds_its_state_stores_the_installation_and_an_uninstall_removes_it() {
    use helpdesk_bridge::config::OAuthConfig;
    use wiremock::{
        Mock, ResponseTemplate,
        matchers::{body_string_contains, method, path},
    };
    let app = spawn_app(Options::bridge(Backend::Embedded).config(|c| {
        c.store.encryption_key = Some(KEY.to_owned().into());
        c.slack.oauth = Some(OAuthConfig {
            client_id: "123.456".to_owned(),
            client_secret: "client-secret".to_owned().into(),
            public_url: "https://bridge.example.com".to_owned(),
            allowed: vec!["T5".to_owned()],
        });
    }))
    .await;
    let outsider = json!({"ok": true, "access_token": "xoxb-outsider", "bot_user_id": "UBOT6", "team": {"id": "T6"},
        "is_enterprise_install": false, "authed_user": {"id": "U6"}});
    Mock::given(method("POST"))
        .and(path("/oauth.v2.access"))
        .and(body_string_contains("code=outsider-code"))
        .respond_with(ResponseTemplate::new(200).set_body_json(outsider))
        .mount(&app.slack)
        .await;
    let granted = json!({"ok": true, "access_token": "xoxb-fifth", "token_type": "bot", "scope": "chat:write,commands",
        "bot_user_id": "UBOT5", "app_id": "A1", "team": {"id": "T5", "name": "Acme <Ops>"}, "enterprise": null,
        "is_enterprise_install": false, "authed_user": {"id": "U5"}});
    Mock::given(method("POST"))
        .and(path("/oauth.v2.access"))
        .and(body_string_contains("code=good-code"))
        .respond_with(ResponseTemplate::new(200).set_body_json(granted))
        .mount(&app.slack)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth.v2.access"))
        .and(body_string_contains("code=used-code"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "invalid_code"})))
        .mount(&app.slack)
        .await;
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // The install page: a state in the link to Slack, the same state in a signed cookie.
    let page = browser.get(app.url("/slack/install")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("Secure") && cookie.contains("SameSite=Lax"), "{cookie}");
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let body = page.text().await.unwrap();
    let link = body.split("href=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().replace("&amp;", "&");
    assert!(link.starts_with("https://slack.com/oauth/v2/authorize?client_id=123.456&scope="), "{link}");
    assert!(link.contains("redirect_uri=https%3A%2F%2Fbridge.example.com%2Fslack%2Foauth_redirect"), "{link}");
    let state = link.split("state=").nth(1).unwrap().to_owned();
    let redirect = |query: String, cookie: Option<String>| {
        let mut request = browser.get(app.url(&format!("/slack/oauth_redirect?{query}")));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };

    // Another browser (no cookie), or another state: refused, and Slack is not even asked.
    let foreign = redirect(format!("code=good-code&state={state}"), None).await.unwrap();
    assert_eq!(foreign.status(), 400);
    assert!(foreign.text().await.unwrap().contains("this browser did not start the install"));
    let forged = redirect("code=good-code&state=0000".to_owned(), Some(cookie.clone())).await.unwrap();
    assert_eq!(forged.status(), 400);
    assert!(app.slack_calls("oauth.v2.access").await.is_empty(), "no code was exchanged");
    // A code Slack refuses: said, nothing stored.
    let refused = redirect(format!("code=used-code&state={state}"), Some(cookie.clone())).await.unwrap();
    assert_eq!(refused.status(), 502);
    assert!(refused.text().await.unwrap().contains("Slack did not confirm the install (invalid_code)"));
    // A workspace the operator did not list: not kept.
    let other = redirect(format!("code=outsider-code&state={state}"), Some(cookie.clone())).await.unwrap();
    assert_eq!(other.status(), 403);
    assert!(other.text().await.unwrap().contains("does not serve that workspace"));
    let sealer = Sealer::from_hex(KEY).unwrap();
    assert!(app.store.installation_for(&TeamId::new("T6"), None, &sealer).await.unwrap().is_none());
    // The real thing: exchanged as the app, stored sealed, and the browser told where.
    let done = redirect(format!("code=good-code&state={state}"), Some(cookie.clone())).await.unwrap();
    assert_eq!(done.status(), 200);
    assert!(done.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"), "the state is spent");
    assert!(done.text().await.unwrap().contains("HelpDesk is installed in Acme &lt;Ops&gt;"));
    let exchanged = app.slack_calls("oauth.v2.access").await;
    let last = exchanged.last().unwrap();
    assert_eq!(
        (&last["client_id"], &last["client_secret"], &last["code"], &last["redirect_uri"]),
        (
            &json!("123.456"),
            &json!("client-secret"),
            &json!("good-code"),
            &json!("https://bridge.example.com/slack/oauth_redirect")
        )
    );
    let stored = app.store.installation_for(&TeamId::new("T5"), None, &sealer).await.unwrap().expect("installed");
    assert_eq!((stored.bot_user.as_str(), stored.installer), ("UBOT5", Some(UserId::new("U5"))));
    assert_eq!(secrecy::ExposeSecret::expose_secret(&stored.bot_token), "xoxb-fifth");

    // The new workspace is served with its token.
    mount_reply(&app.helpdesk, "DEVOPS-1", json!({"role": "assistant", "content": "Hello five.", "data": {}})).await;
    app.post_event(&mention_in("T5", "UBOT5", "Ev5", "C5", "1700000000.000500", "hi")).await;
    let served = answered(&app, "Hello five.", "the installed workspace was answered").await;
    assert!(served.iter().all(|b| b.starts_with("Bearer xoxb-fifth ")), "{served:?}");

    // An uninstall sent before this install (handled late) leaves it alone.
    let mut stale = crate::support::payloads::callback("Ev5b", json!({"type": "app_uninstalled"}));
    stale["team_id"] = json!("T5");
    assert_eq!(app.post_event(&stale).await.status(), 200);
    drained(&app).await;
    assert!(app.store.installation_for(&TeamId::new("T5"), None, &sealer).await.unwrap().is_some(), "still installed");
    // Uninstalled now (its bot token revoked): the installation goes, and the workspace is
    // no longer served.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut uninstall =
        crate::support::payloads::callback("Ev6", json!({"type": "tokens_revoked", "tokens": {"bot": ["UBOT5"]}}));
    uninstall["team_id"] = json!("T5");
    uninstall["event_time"] = json!(now + 1);
    assert_eq!(app.post_event(&uninstall).await.status(), 200);
    let gone = eventually(Duration::from_secs(15), || async {
        app.store.installation_for(&TeamId::new("T5"), None, &sealer).await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(gone.is_some(), "the installation was removed");
    app.post_event(&mention_in("T5", "UBOT5", "Ev7", "C5", "1700000000.000700", "still there?")).await;
    drained(&app).await;
    let created = app.helpdesk_calls("POST", &format!("/tickets/{}", fakes::WORKSPACE_ID)).await;
    assert!(created.iter().all(|c| c["title"] != "still there?"), "{created:?}");
}

#[tokio::test]
async fn an_org_wide_install_serves_every_workspace_of_its_organisation() {
    use helpdesk_bridge::ids::EnterpriseId;
    let app =
        spawn_app(Options::bridge(Backend::Redis).config(|c| c.store.encryption_key = Some(KEY.to_owned().into())))
            .await;
    let sealer = Sealer::from_hex(KEY).unwrap();
    let org = installed(Owner::Enterprise(EnterpriseId::new("E1")), "xoxb-whole-org", "UORG");
    app.store.put_installation(&org, &sealer).await.unwrap();
    mount_reply(&app.helpdesk, "DEVOPS-1", json!({"role": "assistant", "content": "Org one.", "data": {}})).await;
    mount_reply(&app.helpdesk, "DEVOPS-2", json!({"role": "assistant", "content": "Org two.", "data": {}})).await;
    let in_org = |team: &str, event_id: &str, ts: &str, text: &str| {
        let mut event = mention_in(team, "UORG", event_id, "C1", ts, text);
        event["enterprise_id"] = json!("E1");
        event["authorizations"][0]["enterprise_id"] = json!("E1");
        event["authorizations"][0]["is_enterprise_install"] = json!(true);
        // As Slack sends an org-wide installation's authorization: no workspace.
        event["authorizations"][0]["team_id"] = Value::Null;
        event
    };
    app.post_event(&in_org("T6", "Ev1", "1700000000.000100", "from six")).await;
    app.post_event(&in_org("T7", "Ev2", "1700000000.000200", "from seven")).await;
    let served = eventually(Duration::from_secs(15), || async {
        let one = bearers(&app, "Org one.").await;
        let two = bearers(&app, "Org two.").await;
        (!one.is_empty() && !two.is_empty()).then_some([one, two].concat())
    })
    .await
    .expect("both workspaces of the organisation were answered");
    assert!(served.iter().all(|b| b.starts_with("Bearer xoxb-whole-org ")), "{served:?}");
    // The organisation is remembered for what the bridge does unasked in those workspaces.
    assert_eq!(app.store.team_enterprise(&TeamId::new("T6")).await.unwrap(), Some(EnterpriseId::new("E1")));
    // A workspace outside the organisation is not served by it.
    app.post_event(&mention_in("T8", "UORG", "Ev3", "C8", "1700000000.000300", "outsider")).await;
    drained(&app).await;
    let created = app.helpdesk_calls("POST", &format!("/tickets/{}", fakes::WORKSPACE_ID)).await;
    assert!(created.iter().all(|c| c["title"] != "outsider"), "{created:?}");
}

/// `/helpdesk config …` typed by `user` in workspace `team`.
async fn command_in(app: &TestApp, team: &str, user: &str, text: &str, trigger: &str) {
    let response_url = format!("{}/respond/{trigger}", app.slack.uri());
    let form = serde_urlencoded::to_string([
        ("team_id", team),
        ("channel_id", "C1"),
        ("user_id", user),
        ("command", "/helpdesk"),
        ("text", text),
        ("response_url", response_url.as_str()),
        ("trigger_id", trigger),
    ])
    .unwrap();
    let response = app.post_signed("/slack/commands", "application/x-www-form-urlencoded", form).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn each_workspace_keeps_its_own_helpdesk_defaults() {
    let app = spawn_app(Options::bridge(Backend::Embedded).config(|c| {
        crate::support::app::without_defaults(c);
        c.store.encryption_key = Some(KEY.to_owned().into());
    }))
    .await;
    let sealer = Sealer::from_hex(KEY).unwrap();
    let second = installed(Owner::Team(TeamId::new("T2")), "xoxb-second-workspace", "UBOT2");
    app.store.put_installation(&second, &sealer).await.unwrap();
    // A member of T2 may read them, not set them; an administrator of T2 sets them.
    command_in(&app, "T2", "U5", "config default workspace devops agent generic-agent", "d-0").await;
    assert!(app.first_answer("d-0").await.contains("Only"), "{}", app.first_answer("d-0").await);
    command_in(&app, "T2", "UA1", "config default workspace devops agent generic-agent", "d-1").await;
    let answer = app.first_answer("d-1").await;
    assert!(answer.contains("send new tickets to workspace devops with agent generic-agent"), "{answer}");
    command_in(&app, "T2", "U5", "config default", "d-2").await;
    assert!(app.first_answer("d-2").await.contains("workspace devops with agent generic-agent"));
    command_in(&app, "T2", "UA1", "config default relay mentions", "d-3").await;
    assert!(app.first_answer("d-3").await.contains("Only the portal, workspace and agent"));

    // T2's mention opens a ticket in its default workspace at once; T1, which set none,
    // is asked where (the creation form), as before.
    mount_reply(&app.helpdesk, "DEVOPS-1", json!({"role": "assistant", "content": "Two's default.", "data": {}})).await;
    app.post_event(&mention_in("T2", "UBOT2", "Ev1", "C2", "1700000000.000100", "disk full")).await;
    let served = answered(&app, "Two's default.", "T2's ticket opened in its default workspace").await;
    assert!(served.iter().all(|b| b.starts_with("Bearer xoxb-second-workspace ")), "{served:?}");
    app.post_event(&mention_in("T1", BOT_USER, "Ev2", "C1", "1700000000.000200", "printer on fire")).await;
    let asked = eventually(Duration::from_secs(15), || async {
        let posts = app.slack_calls("chat.postMessage").await;
        posts.into_iter().find(|p| p["channel"] == "C1" && p.to_string().contains("No HelpDesk workspace"))
    })
    .await;
    assert!(asked.is_some(), "T1 has no defaults: the creation form is offered");
    let created = app.helpdesk_calls("POST", &format!("/tickets/{}", fakes::WORKSPACE_ID)).await;
    assert_eq!(created.len(), 1, "{created:?}");
}

#[tokio::test]
async fn without_a_bot_token_every_workspace_is_served_by_its_installation() {
    use helpdesk_bridge::config::OAuthConfig;
    let app = spawn_app(Options::bridge(Backend::Embedded).config(|c| {
        c.slack.bot_token = None;
        c.store.encryption_key = Some(KEY.to_owned().into());
        c.slack.oauth = Some(OAuthConfig {
            client_id: "123.456".to_owned(),
            client_secret: "client-secret".to_owned().into(),
            public_url: "https://bridge.example.com".to_owned(),
            allowed: Vec::new(),
        });
    }))
    .await;
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "no token of its own to wait for");
    let sealer = Sealer::from_hex(KEY).unwrap();
    let ninth = installed(Owner::Team(TeamId::new("T9")), "xoxb-ninth", "UBOT9");
    app.store.put_installation(&ninth, &sealer).await.unwrap();
    mount_reply(&app.helpdesk, "DEVOPS-1", json!({"role": "assistant", "content": "Ninth here.", "data": {}})).await;
    app.post_event(&mention_in("T9", "UBOT9", "Ev1", "C9", "1700000000.000100", "hello nine")).await;
    let served = answered(&app, "Ninth here.", "the installed workspace was answered").await;
    assert!(served.iter().all(|b| b.starts_with("Bearer xoxb-ninth ")), "{served:?}");
    let created = app.helpdesk_calls("POST", &format!("/tickets/{}", fakes::WORKSPACE_ID)).await;
    assert_eq!(created[0]["title"], "hello nine", "the mention of the installation's own bot user is stripped");
    assert!(app.slack_calls("auth.test").await.is_empty(), "no token of its own to test");
    // The team the test harness's token would have served is nobody's now.
    app.post_event(&mention_in("T1", BOT_USER, "Ev2", "C1", "1700000000.000200", "anyone?")).await;
    drained(&app).await;
    assert!(bearers(&app, "anyone").await.is_empty());
    assert_eq!(app.helpdesk_calls("POST", &format!("/tickets/{}", fakes::WORKSPACE_ID)).await.len(), 1);
}
