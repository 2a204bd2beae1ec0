//! Who may act, end to end: settings changed by administrators only, allowed workspaces and
//! agents, requesters that stay who asked, kept messages acted on by the right people, and
//! thread messages that cannot crash their handler.

use std::time::Duration;

use helpdesk_bridge::{
    ids::{Approver, ChannelId, TeamId, TicketName, UserId},
    model::{ChannelRef, TicketStatus},
    slack::controls::{action, continue_value},
};
use serde_json::{Value, json};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path},
};

use crate::support::{
    app::{Backend, Options, TestApp, spawn_app, without_defaults},
    eventually,
    fakes::{self, API, WORKSPACE_ID, mount_reply, seed, text_of, thread},
    payloads::{create_submission, mention_event, message_event},
};

const BOTH: [Backend; 2] = [Backend::Redis, Backend::Embedded];

async fn approvers(app: &TestApp, channel: &str) -> Vec<String> {
    let key = ChannelRef { team: TeamId::new("T1"), channel: ChannelId::new(channel) };
    app.store.channel_settings(&key).await.unwrap().approvers.iter().map(ToString::to_string).collect()
}

/// The first button of the newest Slack message (post or edit) whose text contains `needle`.
async fn button_of(app: &TestApp, needle: &str) -> Value {
    let found = eventually(Duration::from_secs(15), || async {
        let mut all = app.slack_calls("chat.postMessage").await;
        all.extend(app.slack_calls("chat.update").await);
        all.into_iter().rev().find(|m| text_of(m).contains(needle))
    })
    .await;
    let message = found.unwrap_or_else(|| panic!("no message shows {needle:?}"));
    let actions = message["blocks"].as_array().unwrap().iter().find(|b| b["type"] == "actions").cloned();
    actions.expect("a button")["elements"][0].clone()
}

#[tokio::test]
async fn only_administrators_change_settings() {
    for backend in BOTH {
        let app = spawn_app(Options::bridge(backend)).await;
        // The review's probe: someone makes themselves an approver. Refused, nothing stored.
        app.post_command("U9", "C1", "config approvers <@U9>", "self").await;
        let refusal = app.answer("self").await;
        assert!(refusal.contains("Only") && refusal.contains("admins and owners"), "{refusal}");
        assert!(approvers(&app, "C1").await.is_empty(), "{backend:?}");
        // Anyone may look.
        app.post_command("U9", "C1", "config", "look").await;
        assert!(app.answer("look").await.contains("This channel's tickets go to"));
        // Guests may not, even when Slack calls them admins of nothing.
        app.post_command("UG1", "C1", "config relay mentions", "guest").await;
        assert!(app.answer("guest").await.contains("Only"));
        // A workspace admin and an owner may.
        app.post_command("UA1", "C1", "config approvers <@U6>", "admin").await;
        assert!(app.answer("admin").await.contains("✅"));
        assert_eq!(approvers(&app, "C1").await, ["U6"], "{backend:?}");
        app.post_command("UO1", "C1", "config approvers none", "owner").await;
        assert!(app.answer("owner").await.contains("✅"));
        assert!(approvers(&app, "C1").await.is_empty());
    }
}

#[tokio::test]
async fn admins_only_leaves_settings_to_the_listed_admins() {
    let options = Options::bridge(Backend::Redis).config(|c| {
        c.access.admins = ["U5", "S7"].into_iter().map(|id| Approver::parse(id).expect("an admin id")).collect();
        c.access.admins_only = true;
    });
    let app = spawn_app(options).await;
    Mock::given(path("/usergroups.users.list"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "users": ["U8"]})))
        .mount(&app.slack)
        .await;
    app.post_command("UA1", "C1", "config approvers <@UA1>", "ws-admin").await;
    let refusal = app.answer("ws-admin").await;
    assert!(refusal.contains("<@U5>") && refusal.contains("<!subteam^S7>"), "{refusal}");
    assert!(!refusal.contains("admins and owners"), "{refusal}");
    assert!(approvers(&app, "C1").await.is_empty());
    app.post_command("U5", "C1", "config approvers <@U6>", "listed").await;
    assert!(app.answer("listed").await.contains("✅"));
    app.post_command("U8", "C1", "config approvers <@U6> <@U8>", "group").await;
    assert!(app.answer("group").await.contains("✅"));
    assert_eq!(approvers(&app, "C1").await, ["U6", "U8"]);
}

/// The HelpDesk of `app` also has a second agent, `k8s-agent`.
async fn mount_second_agent(app: &TestApp) {
    let second = json!({"id": "6a6a6a6a6a6a6a6a6a6a6a02", "name": "k8s-agent", "metaData": {}});
    Mock::given(method("GET"))
        .and(path(format!("{API}/admin/data/aiagents")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"success": true, "data": {"items": [fakes::agent(false), second.clone()]}})),
        )
        .with_priority(1)
        .mount(&app.helpdesk)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/admin/data/aiagents/6a6a6a6a6a6a6a6a6a6a6a02")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": second})))
        .mount(&app.helpdesk)
        .await;
}

#[tokio::test]
async fn allowed_agents_limit_settings_the_creation_form_and_its_submission() {
    for backend in BOTH {
        let options = Options::bridge(backend)
            .config(without_defaults)
            .config(|c| c.access.allowed_agents = vec!["k8s-agent".to_owned()]);
        let app = spawn_app(options).await;
        mount_second_agent(&app).await;
        app.post_command("UA1", "C1", "config workspace devops agent generic-agent", "cfg").await;
        assert!(app.answer("cfg").await.contains("not one this bridge may"), "{backend:?}");
        let key = ChannelRef { team: TeamId::new("T1"), channel: ChannelId::new("C1") };
        assert_eq!(app.store.channel_settings(&key).await.unwrap().agent, None);

        app.post_event(&mention_event("Ev1", "C1", "U1", "1700000000.000100", "<@UBOT> help")).await;
        let create = button_of(&app, "No HelpDesk workspace").await;
        let pending = create["value"].as_str().unwrap().to_owned();
        app.press("U1", "1800000000.000001", "1700000000.000100", action::CREATE, &pending, "form").await;
        let opened = app.wait_slack("views.open", 1, |v| v["trigger_id"] == "form").await;
        let agents: Vec<Value> = opened[0]["view"]["blocks"][2]["element"]["options"].as_array().unwrap().clone();
        let names: Vec<&str> = agents.iter().map(|o| o["text"]["text"].as_str().unwrap()).collect();
        assert_eq!(names, ["k8s-agent"], "{backend:?}: the form lists only allowed agents");
        // A submission naming the agent the form did not offer creates nothing.
        app.post_interaction(&create_submission("U1", "V1", &pending, "forged")).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(app.helpdesk_calls("POST", &format!("/tickets/{WORKSPACE_ID}")).await.is_empty(), "{backend:?}");
        assert!(
            app.store.pending(&helpdesk_bridge::ids::PendingId::new(pending.as_str())).await.unwrap().is_some(),
            "the request is kept for a proper choice"
        );
    }
}

#[tokio::test]
async fn someone_elses_create_button_does_not_make_them_the_requester() {
    for backend in BOTH {
        let app = spawn_app(Options::bridge(backend).config(without_defaults)).await;
        mount_reply(&app.helpdesk, "DEVOPS-1", json!({"role": "assistant", "content": "Hi.", "data": {}})).await;
        app.post_event(&mention_event("Ev1", "C1", "U1", "1700000000.000100", "<@UBOT> disk full")).await;
        let create = button_of(&app, "No HelpDesk workspace").await;
        let pending = create["value"].as_str().unwrap().to_owned();
        app.press("U2", "1800000000.000001", "1700000000.000100", action::CREATE, &pending, "other").await;
        let refusal = app.answer("other").await;
        assert!(refusal.contains("<@U1>") && refusal.contains("of your own"), "{refusal}");
        assert!(app.slack_calls("views.open").await.is_empty(), "{backend:?}: no form for someone else");
        // Nor does a submission of the form by someone else create anything.
        app.post_interaction(&create_submission("U2", "V1", &pending, "mine now")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(app.helpdesk_calls("POST", &format!("/tickets/{WORKSPACE_ID}")).await.is_empty());
        // The person who asked completes it and stays the requester.
        app.press("U1", "1800000000.000001", "1700000000.000100", action::CREATE, &pending, "own").await;
        app.wait_slack("views.open", 1, |v| v["trigger_id"] == "own").await;
        app.post_interaction(&create_submission("U1", "V2", &pending, "Disk full")).await;
        let record = eventually(Duration::from_secs(10), || async {
            app.store.ticket_by_thread(&thread("1700000000.000100")).await.ok()?
        })
        .await
        .expect("a ticket");
        assert_eq!(record.requester, UserId::new("U1"), "{backend:?}");
    }
}

#[tokio::test]
async fn a_new_ticket_from_a_closed_thread_keeps_its_author_as_requester() {
    for backend in BOTH {
        let app = spawn_app(Options::bridge(backend)).await;
        mount_reply(&app.helpdesk, "DEVOPS-1", json!({"role": "assistant", "content": "On it.", "data": {}})).await;
        let closed = "1700000300.000200";
        seed(&app.store, closed, "DEVOPS-6", TicketStatus::Closed, "U1", 1_000).await;
        app.post_event(&message_event("Ev1", "C1", "U2", "1700000300.000400", Some(closed), "still slow")).await;
        let button = button_of(&app, "is closed").await;
        let value = button["value"].as_str().unwrap().to_owned();
        // A guest may not act on the closed ticket's thread.
        app.press("UG9", "1800000000.000005", closed, action::FOLLOW_UP, &value, "guest").await;
        assert!(app.answer("guest").await.contains("Only members"), "{backend:?}");
        // A colleague may, and the new ticket is the author's.
        app.press("U3", "1800000000.000005", closed, action::FOLLOW_UP, &value, "colleague").await;
        let record = eventually(Duration::from_secs(10), || async {
            let page = app.store.list_tickets(&TeamId::new("T1"), &Default::default()).await.ok()?;
            page.tickets.into_iter().find(|r| r.ticket.ticket.as_str() == "DEVOPS-1")
        })
        .await
        .expect("a new ticket");
        assert_eq!(record.requester, UserId::new("U2"), "{backend:?}: the clicker is not the requester");
    }
}

#[tokio::test]
async fn continue_is_only_for_whoever_ran_find() {
    let app = spawn_app(Options::bridge(Backend::Embedded)).await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/tickets/{WORKSPACE_ID}/DEVOPS-77")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {
            "name": "DEVOPS-77", "title": "VPN drops", "aiAgentId": fakes::AGENT_ID}})))
        .mount(&app.helpdesk)
        .await;
    let found_by_u1 = continue_value(&TicketName::new("DEVOPS-77"), &UserId::new("U1"));
    app.press("U2", "1700000600.000900", "1700000600.000900", action::CONTINUE, &found_by_u1, "not-mine").await;
    assert!(app.answer("not-mine").await.contains("<@U1>"));
    // A value from before it named the finder: deliberately not the codec's shape.
    app.press("U2", "1700000600.000900", "1700000600.000900", action::CONTINUE, "DEVOPS-77", "old").await;
    assert!(app.answer("old").await.contains("find again"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let page = app.store.list_tickets(&TeamId::new("T1"), &Default::default()).await.unwrap();
    assert!(page.tickets.is_empty(), "nothing was continued");
}

#[tokio::test]
async fn multibyte_thread_messages_are_relayed_not_dropped() {
    for backend in BOTH {
        let app = spawn_app(Options::bridge(backend)).await;
        mount_reply(&app.helpdesk, "DEVOPS-1", json!({"role": "assistant", "content": "ok", "data": {}})).await;
        let root = "1700000000.000100";
        seed(&app.store, root, "DEVOPS-1", TicketStatus::Pending, "U1", 1).await;
        for (i, text) in ["日本語", "🙂🙂", "nötë: ü"].iter().enumerate() {
            let ts = format!("1700000000.00020{i}");
            app.post_event(&message_event(&format!("Ev{i}"), "C1", "U1", &ts, Some(root), text)).await;
        }
        let sent = eventually(Duration::from_secs(15), || async {
            let calls = app.helpdesk_calls("POST", "/DEVOPS-1/sendMessage").await;
            (calls.len() >= 3).then_some(calls)
        })
        .await
        .expect("all three relayed");
        let contents: Vec<&str> = sent.iter().map(|s| s["content"].as_str().unwrap()).collect();
        assert_eq!(contents, ["日本語", "🙂🙂", "nötë: ü"], "{backend:?}");
    }
}

#[tokio::test]
async fn settings_and_defaults_outside_the_allowed_agents_open_nothing() {
    let options = Options::bridge(Backend::Embedded).config(|c| c.access.allowed_agents = vec!["k8s-agent".to_owned()]);
    let app = spawn_app(options).await;
    mount_second_agent(&app).await;
    // A channel configured before the list was narrowed, and a default agent outside it.
    let key = ChannelRef { team: TeamId::new("T1"), channel: ChannelId::new("C1") };
    let settings = helpdesk_bridge::model::ChannelSettings {
        agent: Some(helpdesk_bridge::ids::AgentId::new(fakes::AGENT_ID)),
        agent_name: Some(fakes::AGENT_NAME.to_owned()),
        ..Default::default()
    };
    app.store.set_channel_settings(&key, &settings).await.unwrap();
    app.post_event(&mention_event("Ev1", "C1", "U1", "1700000000.000100", "<@UBOT> help")).await;
    button_of(&app, "No HelpDesk workspace").await;
    assert!(app.helpdesk_calls("POST", &format!("/tickets/{WORKSPACE_ID}")).await.is_empty());
}

#[tokio::test]
async fn only_members_reopen_a_resolved_ticket() {
    let app = spawn_app(Options::bridge(Backend::Redis)).await;
    let resolved = "1700000300.000100";
    seed(&app.store, resolved, "DEVOPS-5", TicketStatus::Resolved, "U1", 1_000).await;
    app.post_event(&message_event("Ev1", "C1", "UG1", "1700000300.000300", Some(resolved), "reopen please")).await;
    app.wait_slack("chat.postMessage", 1, |m| text_of(m).contains("only members of this workspace can reopen it"))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.helpdesk_calls("PUT", "/DEVOPS-5/status").await.is_empty(), "not reopened");
    assert!(app.helpdesk_calls("POST", "/DEVOPS-5/sendMessage").await.is_empty(), "nothing relayed");
    let record = app.store.ticket_by_thread(&thread(resolved)).await.unwrap().unwrap();
    assert_eq!(record.status, TicketStatus::Resolved);
}

#[tokio::test]
async fn continue_refuses_a_ticket_worked_by_an_agent_that_is_not_allowed() {
    let options =
        Options::bridge(Backend::Embedded).config(|c| c.access.allowed_agents = vec![fakes::AGENT_NAME.to_owned()]);
    let app = spawn_app(options).await;
    mount_second_agent(&app).await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/tickets/{WORKSPACE_ID}/DEVOPS-78")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {
            "name": "DEVOPS-78", "title": "Cluster down", "aiAgentId": "6a6a6a6a6a6a6a6a6a6a6a02"}})))
        .mount(&app.helpdesk)
        .await;
    let found_by_u1 = continue_value(&TicketName::new("DEVOPS-78"), &UserId::new("U1"));
    app.press("U1", "1700000600.000900", "1700000600.000900", action::CONTINUE, &found_by_u1, "cont").await;
    assert!(app.answer("cont").await.contains("may not use"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let page = app.store.list_tickets(&TeamId::new("T1"), &Default::default()).await.unwrap();
    assert!(page.tickets.is_empty(), "nothing was continued");
}

#[tokio::test]
async fn without_defaults_only_the_author_chooses_where_a_follow_up_goes() {
    let app = spawn_app(Options::bridge(Backend::Embedded).config(without_defaults)).await;
    let closed = "1700000300.000200";
    seed(&app.store, closed, "DEVOPS-6", TicketStatus::Closed, "U1", 1_000).await;
    app.post_event(&message_event("Ev1", "C1", "U2", "1700000300.000400", Some(closed), "still slow")).await;
    let value = button_of(&app, "is closed").await["value"].as_str().unwrap().to_owned();
    app.press("U3", "1800000000.000005", closed, action::FOLLOW_UP, &value, "colleague").await;
    assert!(app.answer("colleague").await.contains("<@U2>"));
    assert!(app.slack_calls("views.open").await.is_empty(), "no form for someone else");
    app.press("U2", "1800000000.000005", closed, action::FOLLOW_UP, &value, "author").await;
    app.wait_slack("views.open", 1, |v| v["trigger_id"] == "author").await;
}
