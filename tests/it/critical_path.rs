//! The critical path: with Slack and the HelpDesk each answering every request 4 s late,
//! a mention's first reply text is in Slack within 14 s (ticket creation, send, one Slack
//! write) and a thread message's within 9 s (send, one Slack write), measured by the
//! stand-ins' own clocks; the send never waits on Slack, and two mentions in one channel do
//! not wait for each other.

use std::time::{Duration, Instant};

use helpdesk_bridge::{ids::AgentId, model::TicketStatus, store::Store};
use serde_json::json;
use wiremock::{
    Mock,
    matchers::{method, path},
};

use crate::support::{
    app::{Backend, Options, TestApp, spawn_app, without_defaults},
    eventually,
    fakes::{self, API, Arrival, Clock, WORKSPACE_ID, thread},
    payloads::{mention_event, message_event},
};

/// How late every answer of the stand-ins is.
const LATE: Duration = Duration::from_secs(4);
/// The issue's bound for a mention that opens a ticket.
const MENTION_BOUND: Duration = Duration::from_secs(14);
/// The issue's bound for a message in a ticket's thread.
const THREAD_BOUND: Duration = Duration::from_secs(9);
/// How long the test waits for anything at all.
const PATIENCE: Duration = Duration::from_secs(40);

/// What the agent answers on `ticket`: text that names the ticket, so each thread's reply
/// can be told apart whatever order the tickets were created in.
fn answer(ticket: &str) -> String {
    format!("All pods of {ticket} are healthy again")
}

/// Answers sends to `ticket` with [`answer`], on `clock`.
async fn mount_answer(app: &TestApp, clock: &Clock, ticket: &str) {
    let reply = json!({"role": "assistant", "content": answer(ticket), "data": {}});
    Mock::given(method("POST"))
        .and(path(format!("{API}/tickets/{WORKSPACE_ID}/{ticket}/sendMessage")))
        .respond_with(clock.wrap(wiremock::ResponseTemplate::new(200).set_body_json(reply)))
        .mount(&app.helpdesk)
        .await;
}

/// An app whose Slack and HelpDesk answer everything [`LATE`] (timeouts well past it),
/// with the clocks that noted what arrived.
async fn slow_app(options: Options<'_>) -> (TestApp, Clock, Clock) {
    let app = spawn_app(options.config(|c| {
        c.slack.timeout = PATIENCE;
        c.helpdesk.request_timeout = PATIENCE;
        c.helpdesk.stream_idle_timeout = PATIENCE;
    }))
    .await;
    let (slack, helpdesk) = (Clock::late_by(LATE), Clock::late_by(LATE));
    fakes::mount_slack_on(&app.slack, &slack).await;
    fakes::mount_helpdesk_on(&app.helpdesk, &helpdesk).await;
    for ticket in ["DEVOPS-1", "DEVOPS-2"] {
        mount_answer(&app, &helpdesk, ticket).await;
    }
    (app, slack, helpdesk)
}

/// Waits for the first arrival after `start` that `pick` chooses.
async fn first(clock: &Clock, start: Instant, what: &str, pick: impl Fn(&Arrival) -> bool) -> Arrival {
    let found = eventually(PATIENCE, || async { clock.arrivals().into_iter().find(|a| a.at > start && pick(a)) }).await;
    found.unwrap_or_else(|| panic!("never arrived: {what}; saw {:#?}", clock.arrivals()))
}

/// Whether a request carries `text` anywhere in its body (whatever the method: an edit, a
/// post, a stream's chunk).
fn carries(arrival: &Arrival, text: &str) -> bool {
    arrival.body.to_string().contains(text)
}

/// The ticket a thread became, once it is one.
async fn ticket_of(store: &Store, ts: &str) -> String {
    let record = eventually(PATIENCE, || async { store.ticket_by_thread(&thread(ts)).await.unwrap() }).await;
    record.unwrap_or_else(|| panic!("thread {ts} never became a ticket")).ticket.ticket.to_string()
}

/// Until every inbox item was handled (a thread's next message then starts at once).
async fn settled(store: &Store) {
    let done = eventually(PATIENCE * 2, || async { (store.inbox_stats().await.ok()?.depth == 0).then_some(()) }).await;
    assert!(done.is_some(), "the inbox never emptied");
}

/// What one turn looked like to the stand-ins.
struct Turn {
    /// When the first request carrying the reply text was answered: the text is in Slack.
    shown: Duration,
    /// When the HelpDesk send arrived.
    sent: Duration,
    /// The send.
    send: Arrival,
}

/// Reads the turn in thread `ts` on `ticket` that started at `start`: when the reply text
/// was in Slack, when the send arrived at the HelpDesk, and that the send did not wait for
/// the post announcing the turn (the last post in the thread before the text) to be
/// answered.
async fn turn(slack: &Clock, helpdesk: &Clock, start: Instant, ts: &str, ticket: &str) -> Turn {
    let text = first(slack, start, "the reply text", |a| carries(a, &answer(ticket))).await;
    let send = first(helpdesk, start, "the send", |a| a.path.ends_with(&format!("/{ticket}/sendMessage"))).await;
    let announced = slack
        .arrivals()
        .into_iter()
        .rev()
        .find(|a| a.at > start && a.at < text.at && a.body["thread_ts"] == ts)
        .unwrap_or_else(|| panic!("no post announced the turn in {ts}: {:#?}", slack.arrivals()));
    assert!(
        send.at < announced.at + slack.delay(),
        "the send waited for Slack: it arrived {:?} after the announcing post ({}) was answered",
        send.at - (announced.at + slack.delay()),
        announced.path
    );
    Turn { shown: text.at + slack.delay() - start, sent: send.at - start, send }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mentions_and_thread_messages_reach_slack_within_the_bounds() {
    let (app, slack, helpdesk) = slow_app(Options::bridge(Backend::Redis)).await;
    // The start-up warm-up has looked up the default workspace and agent, and the bot's name.
    let warm = eventually(PATIENCE, || async {
        let metrics = app.metrics().await;
        let answered = |call: &str| metrics.contains(&format!(r#"operation="{call}",outcome="ok"}}"#));
        // … and learnt that this Slack does not stream natively.
        let probed = metrics.contains(r#"operation="chat.startStream",outcome="unknown_method"}"#);
        (answered("find_workspace") && answered("find_agent") && answered("users.info") && probed).then_some(())
    })
    .await;
    assert!(warm.is_some(), "the warm-up never finished: {}", app.metrics().await);

    // Two mentions in one channel at once: neither waits for the other.
    let roots = ["1700000000.000100", "1700000000.000200"];
    let start = Instant::now();
    for (n, root) in roots.iter().enumerate() {
        let event = mention_event(&format!("Ev{n}"), "C1", "U1", root, "<@UBOT> pods crash in prod");
        assert_eq!(app.post_event(&event).await.status(), 200);
    }
    for root in roots {
        let ticket = ticket_of(&app.store, root).await;
        let Turn { shown, sent, .. } = turn(&slack, &helpdesk, start, root, &ticket).await;
        eprintln!("mention in {root} ({ticket}): sent after {sent:?}, reply text in Slack after {shown:?}");
        assert!(shown <= MENTION_BOUND, "a mention's reply text took {shown:?}");
        assert!(sent < LATE * 2, "only the ticket's creation goes before the send: sent after {sent:?}");
    }
    let created = fakes::helpdesk_calls(&app.helpdesk, "POST", &format!("/tickets/{WORKSPACE_ID}")).await;
    assert_eq!(created.len(), 2, "one ticket per mention");

    // A message in the first ticket's thread, once the mentions' turns are over.
    settled(&app.store).await;
    let ticket = ticket_of(&app.store, roots[0]).await;
    let start = Instant::now();
    let event = message_event("Ev9", "C1", "U1", "1700000000.000900", Some(roots[0]), "and the web tier?");
    assert_eq!(app.post_event(&event).await.status(), 200);
    let Turn { shown, sent, send } = turn(&slack, &helpdesk, start, roots[0], &ticket).await;
    assert_eq!(send.body["content"], "and the web tier?");
    eprintln!("thread message ({ticket}): sent after {sent:?}, reply text in Slack after {shown:?}");
    assert!(sent < LATE, "the send waited for a remote call: sent after {sent:?}");
    assert!(shown <= THREAD_BOUND, "a thread message's reply text took {shown:?}");
}

/// After a restart nothing is cached: the ticket's record says how the agent answers, so the
/// send goes at once and the agent's lookup runs beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_message_after_a_restart_is_sent_without_looking_the_agent_up_first() {
    let (app, slack, helpdesk) = slow_app(Options::bridge(Backend::Embedded).config(without_defaults)).await;
    let root = "1700000000.000100";
    fakes::seed(&app.store, root, "DEVOPS-1", TicketStatus::Open, "U1", 1).await;
    app.store
        .update_ticket(&thread(root), |r| {
            r.agent_streams = Some(false);
            true
        })
        .await
        .unwrap();

    // The start-up warm-up has learnt that this Slack does not stream natively.
    let probed = eventually(PATIENCE, || async {
        let metrics = app.metrics().await;
        metrics.contains(r#"operation="chat.startStream",outcome="unknown_method"}"#).then_some(())
    })
    .await;
    assert!(probed.is_some(), "the warm-up never probed streaming: {}", app.metrics().await);
    let start = Instant::now();
    let event = message_event("Ev1", "C1", "U1", "1700000000.000200", Some(root), "is it fixed?");
    assert_eq!(app.post_event(&event).await.status(), 200);
    let Turn { shown, sent, .. } = turn(&slack, &helpdesk, start, root, "DEVOPS-1").await;
    eprintln!("thread message after a restart: sent after {sent:?}, reply text in Slack after {shown:?}");
    assert!(sent < LATE, "the send waited for a remote call: sent after {sent:?}");
    assert!(shown <= THREAD_BOUND, "a thread message's reply text took {shown:?}");
    let lookup = format!("/admin/data/aiagents/{}", fakes::AGENT_ID);
    first(&helpdesk, start, "the agent's lookup beside the send", |a| a.path.ends_with(&lookup)).await;
    let record = app.store.ticket_by_thread(&thread(root)).await.unwrap().expect("mapped");
    assert_eq!((record.agent_id, record.agent_streams), (AgentId::new(fakes::AGENT_ID), Some(false)));
}
