//! The ticket lifecycle end to end: status changes by the model's rules and their HelpDesk
//! calls, assignment, agent switches, comments, history, lists, find, delete and App Home.

use std::time::Duration;

use helpdesk_bridge::{
    ids::{ChannelId, MessageTs, TeamId, TicketName, UserId},
    model::{Actor, HistoryEvent, TicketRecord, TicketStatus},
    slack::{
        controls::{ListArgs, action, block, callback, continue_value, input},
        kit::{MESSAGE_BLOCKS, VIEW_BLOCKS, validate},
    },
};
use serde_json::{Value, json};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path, path_regex},
};

use crate::support::{
    app::{Backend, Options, TestApp, spawn_app},
    eventually,
    fakes::{self, AGENT_ID, API, WORKSPACE_ID, assert_valid_message, mount_reply, seed, text_of, thread},
    payloads::{
        self, block_action, click_from, inputs, mention_event, message_event, option, static_select, submission,
        text_input,
    },
};

const SECOND_AGENT: &str = "6a6a6a6a6a6a6a6a6a6a6a02";

/// Chooses `status` in the header's status select of the ticket whose thread is `ts`.
async fn choose_status(app: &TestApp, user: &str, ts: &str, status: &str, trigger: &str) {
    let select = json!({"type": "static_select", "action_id": action::STATUS, "block_id": block::TICKET_CONTROLS,
        "selected_option": option(status), "action_ts": "1.2"});
    let payload = block_action(user, "T1", ts, ts, select, json!({}), trigger, &app.slack.uri());
    assert_eq!(app.post_interaction(&payload).await.status(), 200);
}

/// Picks `to` in the header's users select, as Slack sends it (the choice is in the state).
async fn choose_assignee(app: &TestApp, user: &str, ts: &str, to: &str) {
    let select = json!({"type": "users_select", "action_id": action::ASSIGN, "block_id": block::TICKET_CONTROLS,
        "selected_user": to, "action_ts": "1.2"});
    let state =
        inputs([((block::TICKET_CONTROLS, action::ASSIGN), json!({"type": "users_select", "selected_user": to}))]);
    let payload = block_action(user, "T1", ts, ts, select, state, &format!("as-{to}"), &app.slack.uri());
    assert_eq!(app.post_interaction(&payload).await.status(), 200);
}

/// The modal opened with `trigger`.
async fn modal(app: &TestApp, trigger: &str) -> Value {
    let calls = app.wait_slack("views.open", 1, |c| c["trigger_id"] == trigger).await;
    let view = calls[0]["view"].clone();
    validate(view["blocks"].as_array().unwrap(), VIEW_BLOCKS).unwrap();
    let _: slack_morphism::prelude::SlackView = serde_json::from_value(view.clone()).unwrap();
    view
}

async fn status_puts(app: &TestApp, ticket: &str) -> Vec<Value> {
    app.helpdesk_calls("PUT", &format!("/{ticket}/status")).await
}

async fn stored(app: &TestApp, ts: &str) -> Option<TicketRecord> {
    app.store.ticket_by_thread(&thread(ts)).await.unwrap()
}

async fn wait_status(app: &TestApp, ts: &str, status: TicketStatus) -> TicketRecord {
    let record =
        eventually(Duration::from_secs(10), || async { stored(app, ts).await.filter(|r| r.status == status) }).await;
    record.unwrap_or_else(|| panic!("ticket of {ts} never became {status:?}"))
}

/// Thread posts (not header updates) whose text contains `needle`.
async fn thread_posts(app: &TestApp, ts: &str, needle: &str, n: usize) -> Vec<Value> {
    let posts = app.wait_slack("chat.postMessage", n, |c| c["thread_ts"] == ts && text_of(c).contains(needle)).await;
    posts.iter().for_each(assert_valid_message);
    posts
}

/// The newest header the fake Slack was sent for the thread `ts` (its root is the header).
async fn header(app: &TestApp, ts: &str, needle: &str) -> Value {
    let updates = app.wait_slack("chat.update", 1, |c| c["ts"] == ts && text_of(c).contains(needle)).await;
    let last = updates.last().unwrap().clone();
    assert_valid_message(&last);
    last
}

fn offered(header: &Value) -> Vec<String> {
    let controls = header["blocks"].as_array().unwrap().iter().find(|b| b["type"] == "actions").unwrap();
    let select = controls["elements"].as_array().unwrap().iter().find(|e| e["action_id"] == action::STATUS);
    select.map_or_else(Vec::new, |s| {
        s["options"].as_array().unwrap().iter().map(|o| o["value"].as_str().unwrap().to_owned()).collect()
    })
}

/// An open approval card on `record`'s ticket proposing `ls`, shown in the message `ts`.
fn open_card(record: &TicketRecord, id: &str, ts: &str) -> helpdesk_bridge::model::Card {
    helpdesk_bridge::model::Card {
        id: helpdesk_bridge::ids::CardId::new(id),
        ticket: record.ticket.clone(),
        thread: record.thread.clone(),
        messages: vec![MessageTs::new(ts)],
        commands: vec![helpdesk_bridge::model::ProposedCommand::new(
            Default::default(),
            String::new(),
            "ls".to_owned(),
        )],
        state: helpdesk_bridge::model::CardState::Open,
        created_at: 1,
        version: 0,
        sent: false,
        submitted_by: None,
        submitted_at: None,
    }
}

async fn history(app: &TestApp, record: &TicketRecord) -> Vec<helpdesk_bridge::model::HistoryEntry> {
    app.store.history(&record.ticket).await.unwrap()
}

async fn every_transition(backend: Backend) {
    let app = spawn_app(Options::bridge(backend)).await;
    let statuses = TicketStatus::ALL;
    let mut case = 0;
    for from in statuses {
        for to in statuses.into_iter().filter(|to| *to != from) {
            case += 1;
            let ts = format!("1700000100.{case:06}");
            let name = format!("DEVOPS-{}", 100 + case);
            seed(&app.store, &ts, &name, from, "U1", 1_000).await;
            let trigger = format!("st-{case}");
            choose_status(&app, "U2", &ts, to.as_str(), &trigger).await;
            if !from.may_become(to) {
                let said = app.valid_answer(&trigger).await;
                assert!(said.contains(&format!("cannot become {}", to.label())), "{from:?}→{to:?}: {said}");
                assert!(status_puts(&app, &name).await.is_empty(), "{from:?}→{to:?} reached the HelpDesk");
                assert_eq!(stored(&app, &ts).await.unwrap().status, from);
                continue;
            }
            let view = modal(&app, &trigger).await;
            assert_eq!(view["callback_id"], callback::STATUS);
            assert!(text_of(&view).contains(&format!("from *{}* to *{}*", from.label(), to.label())));
            let comment = format!("because case {case}");
            let values = inputs([(input::COMMENT, text_input(&comment))]);
            let metadata = view["private_metadata"].as_str().unwrap();
            let submitted = submission("U2", &format!("V{case}"), callback::STATUS, metadata, values);
            assert_eq!(app.post_interaction(&submitted).await.status(), 200);

            let record = wait_status(&app, &ts, to).await;
            let expected = match to {
                TicketStatus::Open => json!({"status": "open"}),
                TicketStatus::Pending => json!({"status": "inProgress"}),
                TicketStatus::Resolved | TicketStatus::Closed => json!({"status": "closed", "disposition": "resolved"}),
            };
            assert_eq!(status_puts(&app, &name).await, vec![expected], "{from:?}→{to:?}");
            let announced = thread_posts(&app, &ts, &format!("from *{}* to *{}*", from.label(), to.label()), 1).await;
            assert!(text_of(&announced[0]).contains(&comment));
            let mirrored = app.helpdesk_calls("POST", &format!("/{name}/sendMessage")).await;
            assert_eq!(mirrored.len(), 1, "the comment is recorded on the ticket");
            assert_eq!(mirrored[0]["message_mode"], 1);
            assert!(mirrored[0]["content"].as_str().unwrap().ends_with(&comment));
            let shown = header(&app, &ts, &format!("*Status:* {}", to.label())).await;
            let next: Vec<String> = to.next().iter().map(|s| s.as_str().to_owned()).collect();
            assert_eq!(offered(&shown), next);
            let entries = history(&app, &record).await;
            assert!(entries.iter().any(|e| e.actor == Actor::User(UserId::new("U2"))
                && e.event == HistoryEvent::StatusChanged { from, to, comment: Some(comment.clone()) }));
        }
    }
    assert_eq!(case, 12);
}

#[tokio::test]
async fn every_transition_follows_the_model_embedded() {
    every_transition(Backend::Embedded).await;
}

#[tokio::test]
async fn every_transition_follows_the_model_redis() {
    every_transition(Backend::Redis).await;
}

#[tokio::test]
async fn the_first_reply_makes_a_ticket_pending_and_a_helpdesk_failure_keeps_the_status() {
    let app = spawn_app(Options::bridge(Backend::Embedded)).await;
    mount_reply(&app.helpdesk, "DEVOPS-1", json!({"role": "assistant", "content": "On it.", "data": {}})).await;
    let root = "1700000200.000100";
    app.post_event(&mention_event("Ev1", "C1", "U1", root, "<@UBOT> disk full on db-1")).await;
    let record = wait_status(&app, root, TicketStatus::Pending).await;
    assert_eq!(status_puts(&app, "DEVOPS-1").await, vec![json!({"status": "inProgress"})]);
    let by_agent = eventually(Duration::from_secs(10), || async {
        history(&app, &record).await.into_iter().find(|e| {
            matches!(e.actor, Actor::Agent(_))
                && matches!(
                    e.event,
                    HistoryEvent::StatusChanged { from: TicketStatus::Open, to: TicketStatus::Pending, .. }
                )
        })
    })
    .await;
    assert!(by_agent.is_some(), "the automatic change is recorded as the agent's");

    Mock::given(method("PUT"))
        .and(path(format!("{API}/tickets/{WORKSPACE_ID}/DEVOPS-1/status")))
        .respond_with(ResponseTemplate::new(503).set_body_string("maintenance"))
        .with_priority(1)
        .mount(&app.helpdesk)
        .await;
    let header_ts = record.header_ts.clone().unwrap();
    let select = json!({"type": "static_select", "action_id": action::STATUS, "block_id": block::TICKET_CONTROLS,
        "selected_option": option("resolved"), "action_ts": "1.2"});
    let payload = block_action("U1", "T1", header_ts.as_str(), root, select, json!({}), "st-f", &app.slack.uri());
    app.post_interaction(&payload).await;
    let view = modal(&app, "st-f").await;
    let metadata = view["private_metadata"].as_str().unwrap();
    app.post_interaction(&submission("U1", "Vf", callback::STATUS, metadata, json!({}))).await;
    let told = thread_posts(&app, root, "could not change ticket DEVOPS-1 to Resolved", 1).await;
    assert!(text_of(&told[0]).contains("It is still Pending"), "{}", text_of(&told[0]));
    assert_eq!(stored(&app, root).await.unwrap().status, TicketStatus::Pending);
}

#[tokio::test]
async fn a_resolved_thread_reopens_and_a_closed_one_offers_a_new_ticket() {
    let app = spawn_app(Options::bridge(Backend::Redis)).await;
    mount_reply(&app.helpdesk, "DEVOPS-5", json!({"role": "assistant", "content": "Back on it.", "data": {}})).await;
    mount_reply(&app.helpdesk, "DEVOPS-1", json!({"role": "assistant", "content": "New ticket.", "data": {}})).await;
    let (resolved, closed) = ("1700000300.000100", "1700000300.000200");
    seed(&app.store, resolved, "DEVOPS-5", TicketStatus::Resolved, "U1", 1_000).await;
    seed(&app.store, closed, "DEVOPS-6", TicketStatus::Closed, "U1", 1_000).await;

    app.post_event(&message_event("Ev1", "C1", "U1", "1700000300.000300", Some(resolved), "it broke again")).await;
    wait_status(&app, resolved, TicketStatus::Pending).await;
    let puts = status_puts(&app, "DEVOPS-5").await;
    assert_eq!(puts, vec![json!({"status": "open"}), json!({"status": "inProgress"})]);
    let sent = app.helpdesk_calls("POST", "/DEVOPS-5/sendMessage").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["content"], "it broke again");
    thread_posts(&app, resolved, "from *Resolved* to *Open*", 1).await;

    app.post_event(&message_event("Ev2", "C1", "U3", "1700000300.000400", Some(closed), "still slow")).await;
    let notice = thread_posts(&app, closed, "is closed", 1).await;
    assert!(app.helpdesk_calls("POST", "/DEVOPS-6/sendMessage").await.is_empty());
    let button = &notice[0]["blocks"].as_array().unwrap().last().unwrap()["elements"][0];
    assert_eq!(button["action_id"], action::FOLLOW_UP);
    let value = button["value"].as_str().unwrap().to_owned();
    let notice_ts = "1700000300.000500";
    app.press("U3", notice_ts, notice_ts, action::FOLLOW_UP, &value, "fu-1").await;
    let first = eventually(Duration::from_secs(10), || async {
        app.helpdesk_calls("POST", "/DEVOPS-1/sendMessage").await.pop()
    })
    .await
    .expect("the new ticket gets the message");
    assert_eq!(first["content"], "(Follow-up to ticket DEVOPS-6) still slow");
    let created = app.helpdesk_calls("POST", &format!("/tickets/{WORKSPACE_ID}")).await;
    assert_eq!(created[0]["title"], "still slow");
    let top = app.slack_calls("chat.postMessage").await;
    assert!(top.iter().any(|c| c.get("thread_ts").is_none() && text_of(c).contains("Opening a ticket: still slow")));
    // A second click opens nothing more.
    app.press("U3", notice_ts, notice_ts, action::FOLLOW_UP, &value, "fu-2").await;
    assert!(app.valid_answer("fu-2").await.contains("already opened"));
    assert_eq!(app.helpdesk_calls("POST", &format!("/tickets/{WORKSPACE_ID}")).await.len(), 1);
}

#[tokio::test]
async fn assignment_and_agent_switch_are_recorded() {
    let app = spawn_app(Options::bridge(Backend::Redis)).await;
    let second = json!({"id": SECOND_AGENT, "name": "k8s-agent", "metaData": {"STREAMING_ENABLED": "false"}});
    Mock::given(method("GET"))
        .and(path(format!("{API}/admin/data/aiagents")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {"items": [
            fakes::agent(false), second.clone()]}})))
        .with_priority(1)
        .mount(&app.helpdesk)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/admin/data/aiagents/{SECOND_AGENT}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": second})))
        .mount(&app.helpdesk)
        .await;
    Mock::given(method("PUT"))
        .and(path_regex(format!("^{API}/tickets/{WORKSPACE_ID}/DEVOPS-7/assignee/")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .mount(&app.helpdesk)
        .await;
    mount_reply(&app.helpdesk, "DEVOPS-7", json!({"role": "assistant", "content": "k8s here.", "data": {}})).await;
    let ts = "1700000400.000100";
    let record = seed(&app.store, ts, "DEVOPS-7", TicketStatus::Pending, "U1", 1_000).await;

    choose_assignee(&app, "U1", ts, "U7").await;
    header(&app, ts, "*Assigned to* <@U7>").await;
    choose_assignee(&app, "U2", ts, "U8").await;
    let shown = header(&app, ts, "*Assigned to* <@U8>").await;
    let assign = &shown["blocks"][2]["elements"].as_array().unwrap().iter().find(|e| e["action_id"] == action::ASSIGN);
    assert_eq!(assign.unwrap()["initial_user"], "U8");
    thread_posts(&app, ts, "assigned ticket DEVOPS-7 to <@U8> (was <@U7>)", 1).await;
    let entries = history(&app, &record).await;
    let changes: Vec<&HistoryEvent> =
        entries.iter().map(|e| &e.event).filter(|e| matches!(e, HistoryEvent::AssigneeChanged { .. })).collect();
    assert_eq!(
        changes,
        vec![
            &HistoryEvent::AssigneeChanged { from: None, to: Some(UserId::new("U7")) },
            &HistoryEvent::AssigneeChanged { from: Some(UserId::new("U7")), to: Some(UserId::new("U8")) },
        ]
    );

    // An open card of the old agent's proposals: it must not go to the new agent.
    let card = open_card(&record, "c-old-agent", "1700000400.000150");
    app.store.put_card(&card).await.unwrap();

    // The header's "Update context" (and the "Switch agent" of headers posted before it)
    // opens one form: the ticket's workspace and agent chosen.
    let shown = header(&app, ts, "DEVOPS-7").await;
    let controls = shown["blocks"][2]["elements"].as_array().unwrap();
    assert!(controls.iter().any(|e| e["action_id"] == action::CONTEXT && e["text"]["text"] == "Update context"));
    assert!(controls.iter().all(|e| e["action_id"] != action::AGENT));
    app.press("U1", ts, ts, action::AGENT, "DEVOPS-7", "ag-1").await;
    let view = modal(&app, "ag-1").await;
    assert_eq!(view["callback_id"], callback::CONTEXT);
    assert_eq!(view["blocks"][2]["element"]["options"].as_array().unwrap().len(), 2);
    assert_eq!(view["blocks"][1]["element"]["initial_option"]["value"], format!("default/{WORKSPACE_ID}"));
    assert_eq!(view["blocks"][2]["element"]["initial_option"]["value"], format!("default/{AGENT_ID}"));
    let metadata = view["private_metadata"].as_str().unwrap();
    // The same workspace and agent: nothing changes, and only the submitter is told.
    let same = inputs([
        (input::WORKSPACE, static_select(&format!("default/{WORKSPACE_ID}"))),
        (input::AGENT, static_select(&format!("default/{AGENT_ID}"))),
    ]);
    app.post_interaction(&submission("U1", "Va0", callback::CONTEXT, metadata, same)).await;
    app.wait_slack("chat.postEphemeral", 1, |c| text_of(c).contains("Nothing changed")).await;
    let values = inputs([
        (input::WORKSPACE, static_select(&format!("default/{WORKSPACE_ID}"))),
        (input::AGENT, static_select(&format!("default/{SECOND_AGENT}"))),
    ]);
    app.post_interaction(&submission("U1", "Va", callback::CONTEXT, metadata, values)).await;
    thread_posts(&app, ts, "Messages from now on go to k8s-agent", 1).await;
    let puts = app.helpdesk_calls("PUT", &format!("/DEVOPS-7/assignee/{SECOND_AGENT}")).await;
    assert_eq!(puts.len(), 1, "reassigned on the HelpDesk once");
    let now = stored(&app, ts).await.unwrap();
    assert_eq!((now.agent_id.as_str(), now.agent_name.as_str()), (SECOND_AGENT, "k8s-agent"));
    header(&app, ts, "*Agent:* k8s-agent").await;
    let closed = app.store.card(&card.id).await.unwrap().unwrap();
    assert_eq!(closed.state, helpdesk_bridge::model::CardState::Superseded, "the old agent's card is closed");
    let entries = history(&app, &record).await;
    assert!(entries.iter().any(
        |e| e.event == HistoryEvent::AgentChanged { from: "generic-agent".to_owned(), to: "k8s-agent".to_owned() }
    ));

    // The next turn goes to the new agent, and the reply is signed with its name.
    app.post_event(&message_event("Ev1", "C1", "U1", "1700000400.000200", Some(ts), "hello k8s")).await;
    app.wait_slack("chat.update", 1, |c| text_of(c).contains("k8s here.")).await;
    app.wait_slack("chat.postMessage", 1, |c| c["thread_ts"] == ts && c["text"] == "k8s-agent is working").await;
    let asked: Vec<_> = app.helpdesk.received_requests().await.unwrap();
    assert!(asked.iter().any(|r| r.url.path().ends_with(&format!("/aiagents/{SECOND_AGENT}"))));

    app.press("U5", ts, ts, action::HISTORY, "DEVOPS-7", "hi-1").await;
    let view = modal(&app, "hi-1").await;
    let timeline = text_of(&view);
    assert!(timeline.contains("reassigned the ticket from <@U7> to <@U8>"), "{timeline}");
    assert!(timeline.contains("switched the agent from *generic-agent* to *k8s-agent*"), "{timeline}");
    assert!(timeline.contains("sent a message to the agent"), "{timeline}");

    // A switch-agent form opened before this version still switches.
    let values = inputs([(input::AGENT, static_select(AGENT_ID))]);
    let old_form = format!("C1 {ts}");
    app.post_interaction(&submission("U1", "Vb", callback::AGENT, &old_form, values)).await;
    thread_posts(&app, ts, "Messages from now on go to generic-agent", 1).await;
    assert_eq!(app.helpdesk_calls("PUT", &format!("/DEVOPS-7/assignee/{AGENT_ID}")).await.len(), 1);
}

#[tokio::test]
async fn notes_are_record_only_and_mentions_mode_makes_comments() {
    let app = spawn_app(Options::bridge(Backend::Embedded)).await;
    mount_reply(&app.helpdesk, "DEVOPS-8", json!({"role": "assistant", "content": "Turn.", "data": {}})).await;
    let ts = "1700000500.000100";
    let record = seed(&app.store, ts, "DEVOPS-8", TicketStatus::Pending, "U1", 1_000).await;

    app.post_event(&message_event("Ev1", "C1", "U1", "1700000500.000200", Some(ts), "Note: restarted web-1 by hand"))
        .await;
    let noted = eventually(Duration::from_secs(10), || async {
        app.helpdesk_calls("POST", "/DEVOPS-8/sendMessage").await.pop()
    })
    .await
    .expect("the note reaches the HelpDesk");
    assert_eq!(noted["message_mode"], 1);
    assert_eq!(noted["content"], "NameU1: restarted web-1 by hand");
    app.wait_slack("reactions.add", 1, |c| c["name"] == "memo" && c["timestamp"] == "1700000500.000200").await;
    let entries = history(&app, &record).await;
    assert!(entries.iter().any(|e| e.event == HistoryEvent::Comment { text: "restarted web-1 by hand".into() }));

    app.post_command("UA1", "C1", "config relay mentions", "cfg-1").await;
    assert!(app.valid_answer("cfg-1").await.contains("Only thread messages that mention me go to the agent"));
    app.post_event(&message_event("Ev2", "C1", "U2", "1700000500.000300", Some(ts), "fyi the disk is at 91%")).await;
    app.post_event(&message_event("Ev3", "C1", "U2", "1700000500.000400", Some(ts), "<@UBOT> what now?")).await;
    let sends = eventually(Duration::from_secs(10), || async {
        let calls = app.helpdesk_calls("POST", "/DEVOPS-8/sendMessage").await;
        (calls.len() >= 3).then_some(calls)
    })
    .await
    .expect("a comment and a turn");
    assert_eq!(sends[1]["message_mode"], 1);
    assert_eq!(sends[1]["content"], "NameU2: fyi the disk is at 91%");
    assert!(sends[2].get("message_mode").is_none(), "a mention is a turn: {}", sends[2]);
    assert!(sends[2]["content"].as_str().unwrap().contains("what now?"));
    // No reply placeholder was posted for either comment: only the turn has one.
    app.wait_slack("chat.update", 1, |c| text_of(c).contains("Turn.")).await;
    let placeholders = app.slack_calls("chat.postMessage").await;
    assert_eq!(placeholders.iter().filter(|c| c["thread_ts"] == ts).count(), 1, "{placeholders:#?}");
}

async fn list_with_hundreds(backend: Backend) {
    let app = spawn_app(Options::bridge(backend)).await;
    let statuses = TicketStatus::ALL;
    for i in 0..300_i64 {
        let ts = format!("1700001000.{i:06}");
        let status = statuses[usize::try_from(i).unwrap() % 4];
        seed(&app.store, &ts, &format!("OPS-{i}"), status, "U1", 1_700_000_000_000 + i * 60_000).await;
    }
    app.post_command("U1", "C1", "list", "ls-1").await;
    let first = app.valid_answer("ls-1").await;
    assert!(first.starts_with("*All tickets (1–10)*"), "{first}");
    let names: Vec<&str> =
        first.lines().filter(|l| l.starts_with("*<")).filter_map(|l| l.split('|').nth(1)?.split('>').next()).collect();
    let newest: Vec<String> = (290..300).rev().map(|i| format!("OPS-{i}")).collect();
    assert_eq!(names, newest, "most recently updated first");

    let mut seen: Vec<String> = Vec::new();
    let mut trigger = "ls-2".to_owned();
    app.post_command("U1", "C1", "list open ops-1", &trigger).await;
    loop {
        let body = app.answer_body(&trigger).await;
        assert_valid_message(&body);
        let blocks = body["blocks"].as_array().unwrap();
        for pair in blocks[1..].chunks(2).filter(|c| c[0]["type"] == "section") {
            let text = pair[0]["text"]["text"].as_str().unwrap();
            assert!(text.contains("Seeded OPS-1"), "{text}");
            assert!(text.starts_with("*<https://acme.slack.com/archives/C1/p"), "linked to its thread: {text}");
            assert!(pair[1]["elements"][0]["text"].as_str().unwrap().starts_with("*Open*"));
            seen.push(text.split('|').nth(1).unwrap().split('>').next().unwrap().to_owned());
        }
        let Some(more) = blocks.last().filter(|b| b["type"] == "actions") else { break };
        let value = more["elements"][0]["value"].as_str().unwrap().to_owned();
        trigger = format!("ls-more-{}", seen.len());
        app.press("U1", "1700009999.000001", "1700009999.000001", action::LIST_MORE, &value, &trigger).await;
        let replaced = eventually(Duration::from_secs(10), || async {
            let calls = app.slack_calls(&format!("respond/{trigger}")).await;
            calls.last().map(|c| c["replace_original"] == true)
        })
        .await;
        assert_eq!(replaced, Some(true), "More replaces the page");
    }
    let expected: Vec<String> = (0..300)
        .rev()
        .filter(|i| i % 4 == 0 && format!("OPS-{i}").starts_with("OPS-1"))
        .map(|i| format!("OPS-{i}"))
        .collect();
    assert!(expected.len() > 20, "the search spans pages");
    assert_eq!(seen, expected, "every open match once, newest first");

    app.post_command("U1", "C1", "list closed nothing-matches-this", "ls-3").await;
    assert!(app.valid_answer("ls-3").await.contains("No tickets match"));
}

#[tokio::test]
async fn list_filters_searches_orders_and_pages_hundreds_embedded() {
    list_with_hundreds(Backend::Embedded).await;
}

#[tokio::test]
async fn list_filters_searches_orders_and_pages_hundreds_redis() {
    list_with_hundreds(Backend::Redis).await;
}

#[tokio::test]
async fn find_links_known_tickets_and_continues_helpdesk_ones() {
    let app = spawn_app(Options::bridge(Backend::Embedded)).await;
    let ts = "1700000600.000100";
    seed(&app.store, ts, "DEVOPS-9", TicketStatus::Pending, "U1", 1_000).await;
    app.post_command("U1", "C1", "find devops-9", "fd-1").await;
    let said = app.valid_answer("fd-1").await;
    assert!(said.contains("<https://acme.slack.com/archives/C1/p1700000600000100|DEVOPS-9>"), "{said}");

    Mock::given(method("GET"))
        .and(path(format!("{API}/tickets/{WORKSPACE_ID}/DEVOPS-77")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {
            "name": "DEVOPS-77", "title": "VPN drops", "aiAgentId": AGENT_ID,
            "createTime": "2026-11-01T10:00:00Z",
            "history": {"statuses": [{"status": "open"}, {"status": "inProgress"}]}}})))
        .mount(&app.helpdesk)
        .await;
    mount_reply(&app.helpdesk, "DEVOPS-77", json!({"role": "assistant", "content": "Hello again.", "data": {}})).await;
    app.post_command("U4", "C1", "find DEVOPS-77", "fd-2").await;
    let body = app.answer_body("fd-2").await;
    assert_valid_message(&body);
    assert!(text_of(&body).contains("*Pending*") && text_of(&body).contains("no Slack thread yet"));
    let button = &body["blocks"].as_array().unwrap().last().unwrap()["elements"][0];
    // The button names the ticket and who ran `find`: only they may continue it.
    let value = continue_value(&TicketName::new("DEVOPS-77"), &UserId::new("U4"));
    assert_eq!(
        (button["action_id"].as_str(), button["value"].as_str()),
        (Some(action::CONTINUE), Some(value.as_str()))
    );

    app.press("U4", "1700000600.000900", "1700000600.000900", action::CONTINUE, &value, "fd-3").await;
    let record = eventually(Duration::from_secs(10), || async {
        let page = app.store.list_tickets(&TeamId::new("T1"), &Default::default()).await.ok()?;
        page.tickets.into_iter().find(|r| r.ticket.ticket.as_str() == "DEVOPS-77")
    })
    .await
    .expect("the HelpDesk ticket has a thread now");
    assert_eq!(record.status, TicketStatus::Pending);
    assert_eq!(record.requester, UserId::new("U4"));
    assert!(record.adopted, "who continued a HelpDesk ticket did not ask for its commands");
    assert_eq!(record.header_ts.as_ref(), Some(&record.thread.thread_ts));
    let post = app.slack_calls("chat.postMessage").await;
    assert!(post.iter().any(|c| c.get("thread_ts").is_none() && text_of(c).contains("Continuing ticket DEVOPS-77")));
    header(&app, record.thread.thread_ts.as_str(), "DEVOPS-77").await;
    app.post_event(&message_event(
        "Ev1",
        "C1",
        "U4",
        "1700000699.000001",
        Some(record.thread.thread_ts.as_str()),
        "again?",
    ))
    .await;
    let sent = eventually(Duration::from_secs(10), || async {
        app.helpdesk_calls("POST", "/DEVOPS-77/sendMessage").await.pop()
    })
    .await;
    assert_eq!(sent.unwrap()["content"], "again?");

    app.post_command("U1", "C1", "find NOPE-1", "fd-4").await;
    assert!(app.valid_answer("fd-4").await.contains("There is no ticket NOPE-1"));
    app.post_command("U1", "C1", "find", "fd-5").await;
    assert!(app.valid_answer("fd-5").await.contains("find DEVOPS-42"));
}

#[tokio::test]
async fn delete_asks_the_right_people_and_ends_the_thread() {
    let app = spawn_app(Options::bridge(Backend::Redis)).await;
    let proposal = json!({"role": "assistant", "content": "Run this?", "data": {"cmds": [
        {"command": "df -h", "execute": false}]}});
    mount_reply(&app.helpdesk, "DEVOPS-1", proposal).await;
    Mock::given(method("DELETE"))
        .and(path(format!("{API}/tickets/{WORKSPACE_ID}/DEVOPS-1")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .mount(&app.helpdesk)
        .await;
    let root = "1700000700.000100";
    app.post_event(&mention_event("Ev1", "C1", "U1", root, "<@UBOT> check disks")).await;
    let (record, card) = eventually(Duration::from_secs(15), || async {
        let record = app.store.ticket_by_thread(&thread(root)).await.ok()??;
        let card = app.store.open_card(&record.ticket).await.ok()??;
        (!card.messages.is_empty()).then_some((record, card))
    })
    .await
    .expect("a ticket with an open card");
    let header_ts = record.header_ts.clone().unwrap();
    let menu = |user: &str, trigger: &str| {
        let overflow = json!({"type": "overflow", "action_id": action::MENU, "block_id": block::TICKET_CONTROLS,
            "selected_option": option(action::DELETE), "action_ts": "1.2"});
        block_action(user, "T1", header_ts.as_str(), root, overflow, json!({}), trigger, &app.slack.uri())
    };

    app.post_interaction(&menu("U9", "del-1")).await;
    assert!(app.valid_answer("del-1").await.contains("can delete this ticket"));
    assert!(app.helpdesk_calls("DELETE", "/DEVOPS-1").await.is_empty());

    app.post_interaction(&menu("U1", "del-2")).await;
    let gone = eventually(Duration::from_secs(10), || async {
        app.store.ticket_by_thread(&thread(root)).await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(gone.is_some(), "the mapping is removed");
    assert_eq!(app.helpdesk_calls("DELETE", "/DEVOPS-1").await.len(), 1);
    let deleted = app
        .wait_slack("chat.update", 1, |c| c["ts"] == header_ts.as_str() && text_of(c).contains("Deleted by <@U1>"))
        .await;
    assert_valid_message(&deleted[0]);
    assert!(deleted[0]["blocks"].as_array().unwrap().iter().all(|b| b["type"] != "actions"));
    let card_ts = card.messages[0].as_str();
    let closed = app.wait_slack("chat.update", 1, |c| c["ts"] == card_ts && text_of(c).contains("deleted")).await;
    assert!(!closed[0].to_string().contains(action::APPROVE), "the card has no live buttons");
    thread_posts(&app, root, "deleted ticket DEVOPS-1", 1).await;

    let before = app.helpdesk_calls("POST", "/DEVOPS-1/sendMessage").await.len();
    app.post_event(&message_event("Ev2", "C1", "U1", "1700000700.000900", Some(root), "are you there?")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.helpdesk_calls("POST", "/DEVOPS-1/sendMessage").await.len(), before, "no relay after delete");
}

#[tokio::test]
async fn app_home_shows_the_users_tickets_open_first() {
    let app = spawn_app(Options::bridge(Backend::Embedded)).await;
    seed(&app.store, "1700000800.000001", "DEVOPS-21", TicketStatus::Resolved, "U1", 5_000).await;
    seed(&app.store, "1700000800.000002", "DEVOPS-22", TicketStatus::Open, "U1", 1_000).await;
    seed(&app.store, "1700000800.000003", "DEVOPS-23", TicketStatus::Open, "U2", 9_000).await;
    let mut assigned = seed(&app.store, "1700000800.000004", "DEVOPS-24", TicketStatus::Pending, "U2", 2_000).await;
    assigned.assignee = Some(UserId::new("U1"));
    app.store
        .update_ticket(&assigned.thread, |r| {
            r.assignee = Some(UserId::new("U1"));
            true
        })
        .await
        .unwrap();
    let event = json!({"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home", "event_ts": "1.2"});
    app.post_event(&payloads::callback("EvHome", event)).await;
    let published = app.wait_slack("views.publish", 1, |c| c["user_id"] == "U1").await;
    let view = &published[0]["view"];
    assert_eq!(view["type"], "home");
    validate(view["blocks"].as_array().unwrap(), VIEW_BLOCKS).unwrap();
    let text = text_of(view);
    let order: Vec<usize> =
        ["DEVOPS-22", "DEVOPS-24", "DEVOPS-21"].iter().map(|t| text.find(t).unwrap_or_else(|| panic!("{t}"))).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "open first: {text}");
    assert!(!text.contains("DEVOPS-23"), "not the user's");
}

#[tokio::test]
async fn help_names_every_subcommand_with_an_example() {
    let app = spawn_app(Options::bridge(Backend::Embedded)).await;
    app.post_command("U1", "C1", "help", "hp-1").await;
    let said = app.valid_answer("hp-1").await;
    for example in [
        "/helpdesk new Pods crash",
        "/helpdesk list open disk",
        "/helpdesk find DEVOPS-42",
        "/helpdesk config workspace devops",
        "/helpdesk config approvers",
        "/helpdesk config relay mentions",
        "note: restarted",
    ] {
        assert!(said.contains(example), "help lacks {example}: {said}");
    }
    let body = app.slack_calls("respond/hp-1").await.pop().unwrap();
    validate(body["blocks"].as_array().unwrap(), MESSAGE_BLOCKS).unwrap();
}

/// A ticket stored in thread `ts` of `channel`, requested by `requester`.
async fn seed_in(app: &TestApp, channel: &str, ts: &str, name: &str, requester: &str, updated_at: i64) {
    let mut record = seed(&app.store, ts, name, TicketStatus::Open, requester, updated_at).await;
    if channel == "C1" {
        return;
    }
    // Seeded tickets live in C1: move this one.
    app.store.delete_ticket(&record.thread).await.unwrap();
    record.thread.channel = ChannelId::new(channel);
    record.permalink = Some(format!("https://acme.slack.com/archives/{channel}/p{}", ts.replace('.', "")));
    app.store.create_ticket(&record).await.unwrap();
}

/// The ticket names a list answer shows, and its "More" button's value.
async fn list_answer(app: &TestApp, trigger: &str) -> (Vec<String>, Option<String>) {
    let body = app.answer_body(trigger).await;
    assert_valid_message(&body);
    let names = text_of(&body)
        .lines()
        .filter(|l| l.starts_with("*<"))
        .filter_map(|l| Some(l.split('|').nth(1)?.split('>').next()?.to_owned()))
        .collect();
    let more = body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .and_then(|b| b["elements"][0]["value"].as_str().map(str::to_owned));
    (names, more)
}

/// Every ticket `/helpdesk list` shows `user` in `channel`, following "More" to the end.
async fn list_all(app: &TestApp, user: &str, channel: &str, tag: &str) -> Vec<String> {
    app.post_command(user, channel, "list", &format!("{tag}-0")).await;
    let (mut names, mut more) = list_answer(app, &format!("{tag}-0")).await;
    let mut n = 0;
    while let Some(value) = more {
        n += 1;
        let trigger = format!("{tag}-{n}");
        more_click(app, user, channel, &value, &trigger).await;
        let (page, next) = list_answer(app, &trigger).await;
        names.extend(page);
        more = next;
    }
    names
}

/// `user` clicks "More" with `value` under a list in `channel`.
async fn more_click(app: &TestApp, user: &str, channel: &str, value: &str, trigger: &str) {
    let mut payload = click_from(
        user,
        "T1",
        "1700009999.000001",
        "1700009999.000001",
        action::LIST_MORE,
        value,
        trigger,
        &app.slack.uri(),
    );
    payload["channel"]["id"] = json!(channel);
    payload["container"]["channel_id"] = json!(channel);
    assert_eq!(app.post_interaction(&payload).await.status(), 200);
}

async fn lists_find_and_home_show_only_visible_tickets(backend: Backend) {
    let app = spawn_app(Options::bridge(backend)).await;
    // Interleaved in time: C1's tickets by U1, the private C2's by U2, a DM of U9's, and
    // one of U7's own in C3.
    for i in 0..12_i64 {
        seed_in(&app, "C1", &format!("1700002000.{i:06}"), &format!("OPS-{i}"), "U1", 10_000 + i * 10).await;
        seed_in(&app, "C2", &format!("1700002100.{i:06}"), &format!("PRIV-{i}"), "U2", 10_005 + i * 10).await;
    }
    seed_in(&app, "D9", "1700002200.000001", "DM-1", "U9", 10_200).await;
    seed_in(&app, "C3", "1700002300.000001", "MINE-1", "U7", 10_300).await;
    let ops: Vec<String> = (0..12).rev().map(|i| format!("OPS-{i}")).collect();
    let private: Vec<String> = (0..12).rev().map(|i| format!("PRIV-{i}")).collect();
    let interleaved: Vec<String> = (0..12).rev().flat_map(|i| [format!("PRIV-{i}"), format!("OPS-{i}")]).collect();

    let seen = list_all(&app, "U7", "C1", "u7").await;
    assert_eq!(seen, [vec!["MINE-1".to_owned()], ops.clone()].concat(), "this channel's and the caller's own");
    let seen = list_all(&app, "U2", "C1", "u2").await;
    assert_eq!(seen, interleaved, "the private channel's tickets are listed for their requester");
    let seen = list_all(&app, "U9", "C1", "u9").await;
    assert_eq!(seen, [vec!["DM-1".to_owned()], ops.clone()].concat(), "and the DM's for its owner");
    let seen = list_all(&app, "U7", "C2", "u7c2").await;
    assert_eq!(seen, [vec!["MINE-1".to_owned()], private].concat(), "a channel's tickets to who asks there");

    // A "More" value taken from U2's list, or made up, pages only what the clicker sees.
    app.post_command("U2", "C1", "list", "u2-more").await;
    let (_, more) = list_answer(&app, "u2-more").await;
    more_click(&app, "U7", "C1", &more.expect("U2's list has pages"), "u7-borrowed").await;
    let (page, _) = list_answer(&app, "u7-borrowed").await;
    assert!(!page.is_empty() && page.iter().all(|n| n.starts_with("OPS-")), "{page:?}");
    let made_up = ListArgs { text: "PRIV".into(), ..Default::default() }.encode();
    more_click(&app, "U7", "C1", &made_up, "u7-made-up").await;
    let (page, more) = list_answer(&app, "u7-made-up").await;
    assert_eq!((page, more), (Vec::<String>::new(), None));
    assert!(app.valid_answer("u7-made-up").await.contains("No tickets match."));

    // `find` of a ticket U7 cannot see answers as for one the bridge never knew.
    for name in ["PRIV-3", "DM-1", "NOPE-1"] {
        let trigger = format!("find-{name}");
        app.post_command("U7", "C1", &format!("find {name}"), &trigger).await;
        assert_eq!(
            app.valid_answer(&trigger).await,
            format!("There is no ticket {name} in this channel's HelpDesk workspace.")
        );
    }
    assert!(
        app.helpdesk_calls("GET", "/PRIV-3").await.is_empty(),
        "a ticket the caller cannot see is not looked up on the HelpDesk either (its title would tell)"
    );
    app.post_command("U2", "C1", "find priv-3", "find-own").await;
    assert!(
        app.valid_answer("find-own").await.contains("<https://acme.slack.com/archives/C2/p1700002100000003|PRIV-3>")
    );
    app.post_command("U7", "C1", "find OPS-3", "find-here").await;
    assert!(app.valid_answer("find-here").await.contains("|OPS-3>"));

    // The Home tab: only the user's own tickets.
    for user in ["U7", "U9"] {
        let event = json!({"type": "app_home_opened", "user": user, "channel": "D1", "tab": "home", "event_ts": "1.2"});
        app.post_event(&payloads::callback(&format!("EvHome{user}"), event)).await;
    }
    let home = |user: &'static str| {
        let app = &app;
        async move { text_of(&app.wait_slack("views.publish", 1, |c| c["user_id"] == user).await[0]["view"]) }
    };
    let text = home("U7").await;
    assert!(
        text.contains("MINE-1") && !text.contains("OPS-") && !text.contains("PRIV-") && !text.contains("DM-1"),
        "{text}"
    );
    let text = home("U9").await;
    assert!(text.contains("DM-1") && !text.contains("OPS-") && !text.contains("MINE-1"), "{text}");
}

#[tokio::test]
async fn lists_find_and_home_show_only_visible_tickets_embedded() {
    lists_find_and_home_show_only_visible_tickets(Backend::Embedded).await;
}

#[tokio::test]
async fn lists_find_and_home_show_only_visible_tickets_redis() {
    lists_find_and_home_show_only_visible_tickets(Backend::Redis).await;
}

#[tokio::test]
async fn update_context_to_another_workspace_moves_without_sharing_when_the_channel_keeps_threads_private() {
    const OTHER: &str = "ws-2";
    let app = spawn_app(Options::bridge(Backend::Embedded)).await;
    let data = |data: Value| ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": data}));
    let other = json!({"id": OTHER, "name": "payments"});
    Mock::given(method("GET"))
        .and(path(format!("{API}/admin/data/workspaces")))
        .respond_with(data(json!({"items": [{"id": WORKSPACE_ID, "name": fakes::WORKSPACE_NAME}, other.clone()]})))
        .with_priority(1)
        .mount(&app.helpdesk)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/admin/data/workspaces/{OTHER}")))
        .respond_with(data(other))
        .mount(&app.helpdesk)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/tickets/{OTHER}")))
        .respond_with(data(json!({"id": "t9", "name": "PAY-1", "title": "Pods crash", "aiAgentId": AGENT_ID})))
        .mount(&app.helpdesk)
        .await;
    // The first attempt: the HelpDesk refuses to open the ticket.
    Mock::given(method("POST"))
        .and(path(format!("{API}/tickets/{OTHER}")))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.helpdesk)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/tickets/{OTHER}/PAY-1/sendMessage")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"role": "assistant", "content": "", "data": {}})))
        .mount(&app.helpdesk)
        .await;
    mount_reply(&app.helpdesk, "DEVOPS-7", json!({"role": "assistant", "content": "", "data": {}})).await;
    let ts = "1700000700.000100";
    let record = seed(&app.store, ts, "DEVOPS-7", TicketStatus::Pending, "U1", 1_000).await;
    let card = open_card(&record, "c-before-move", "1700000700.000150");
    app.store.put_card(&card).await.unwrap();
    app.post_command("UA1", "C1", "config context off", "cfg").await;
    assert!(app.first_answer("cfg").await.contains("starts from the mention alone"));

    app.press("U1", ts, ts, action::CONTEXT, "DEVOPS-7", "ctx-1").await;
    let view = modal(&app, "ctx-1").await;
    let blocks = view["blocks"].as_array().unwrap();
    assert!(blocks.iter().all(|b| b["block_id"] != input::SHARE.0), "no share box where threads stay private");
    assert!(text_of(&view).contains("does not share thread messages"), "{}", text_of(&view));
    // One portal: its options are not grouped.
    let offered: Vec<&str> =
        blocks[1]["element"]["options"].as_array().unwrap().iter().map(|o| o["value"].as_str().unwrap()).collect();
    assert_eq!(offered, [format!("default/{WORKSPACE_ID}"), format!("default/{OTHER}")]);
    // Even a submission that ticks it (forged) shares nothing.
    let values = inputs([
        (input::WORKSPACE, static_select(&format!("default/{OTHER}"))),
        (input::AGENT, static_select(&format!("default/{AGENT_ID}"))),
        (input::SHARE, json!({"type": "checkboxes", "selected_options": [option("share")]})),
    ]);
    let metadata = view["private_metadata"].as_str().unwrap();
    app.post_interaction(&submission("U1", "V0", callback::CONTEXT, metadata, values.clone())).await;
    thread_posts(&app, ts, "I could not open a ticket in workspace payments", 1).await;
    assert_eq!(stored(&app, ts).await.unwrap().ticket, record.ticket, "nothing moved");
    app.post_interaction(&submission("U1", "V1", callback::CONTEXT, metadata, values)).await;
    thread_posts(&app, ts, "The thread's earlier messages were not shared.", 1).await;
    let notes = eventually(Duration::from_secs(10), || async {
        let notes = app.helpdesk_calls("POST", "/PAY-1/sendMessage").await;
        (!notes.is_empty()).then_some(notes)
    })
    .await
    .expect("the new ticket is told where it came from");
    assert_eq!(notes.len(), 1, "one record-only note, no turn");
    assert_eq!(notes[0]["message_mode"], 1);
    assert_eq!(
        notes[0]["content"],
        "This ticket continues DEVOPS-7 (the same HelpDesk), from the same Slack thread, moved here by NameU1 (U1). \
         The thread's earlier messages were not shared."
    );
    assert!(app.slack_calls("conversations.replies").await.is_empty(), "the thread was not even read");
    let old_note = app.helpdesk_calls("POST", "/DEVOPS-7/sendMessage").await;
    assert!(old_note[0]["content"].as_str().unwrap().contains("moved to ticket PAY-1 (workspace payments)"));
    let closed = app.store.card(&card.id).await.unwrap().unwrap();
    assert_ne!(closed.state, helpdesk_bridge::model::CardState::Open, "the old ticket's proposals cannot be decided");
    let now = stored(&app, ts).await.unwrap();
    assert_eq!((now.ticket.workspace.as_str(), now.ticket.ticket.as_str()), (OTHER, "PAY-1"));
    assert!(now.always_allow.is_empty() && now.assignee == record.assignee);
}
