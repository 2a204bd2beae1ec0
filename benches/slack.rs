//! The Slack side's hot paths: verifying a request, parsing and routing one inbound event,
//! rendering a 10 kB agent reply (Markdown → mrkdwn → split into blocks), and rendering an
//! approval card of 10 commands.
//!
//! Run with `cargo bench --bench slack`. These run on every request or every streamed
//! edit; targets (one core of the 2-core build machine): verify well under 10 µs, parse and
//! route under 20 µs, a 10 kB reply under 1 ms, a 10-command card under 200 µs. Figures are
//! in BENCHMARKS.md.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use helpdesk_bridge::{
    ids::{TeamId, UserId},
    inbound::Inbound,
    slack::{
        blocks::{ReplyState, ReplyView, reply},
        card::{AttachmentView, CardStatus, CardView, CommandView, DecisionView, render},
        identity::BotIdentity,
        ingress::{Parsed, parse_event},
        verify::Verifier,
    },
};
use std::hint::black_box;

/// A message event into a ticket thread, as the Events API delivers one (about 1.3 kB).
fn event_body() -> Vec<u8> {
    serde_json::json!({
        "token": "deprecated", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
        "event_id": "Ev0123456789", "event_time": 1_700_000_000,
        "authorizations": [{"enterprise_id": null, "team_id": "T1", "user_id": "UBOT", "is_bot": true,
                            "is_enterprise_install": false}],
        "is_ext_shared_channel": false, "event_context": "4-eyJldCI6Im1lc3NhZ2UifQ",
        "event": {
            "type": "message", "channel": "C1", "user": "U1", "ts": "1700000000.000200",
            "thread_ts": "1700000000.000100", "event_ts": "1700000000.000200", "channel_type": "channel",
            "client_msg_id": "5f3e1c1a-0000-4000-8000-000000000001",
            "text": "<@U2> the pods in <#C9|prod> are crashing again, see <https://grafana.example.com/d/1|CPU>",
            "blocks": [{"type": "rich_text", "block_id": "b1", "elements": [{"type": "rich_text_section",
                "elements": [{"type": "user", "user_id": "U2"}, {"type": "text", "text": " the pods in "},
                             {"type": "channel", "channel_id": "C9"}, {"type": "text", "text": " are crashing again"}]}]}]
        }
    })
    .to_string()
    .into_bytes()
}

/// A 10 kB agent reply: headings, lists, code, a table, links.
fn agent_reply() -> String {
    let section = "## Findings\n\nThe pod `web-1` was **OOMKilled** 14 times in the last hour; its limit is \
        256Mi while the working set peaks at 310Mi. See <https://grafana.example.com/d/mem|memory>.\n\n\
        - raise the limit to 512Mi\n- add a `readinessProbe`\n- check @oncall before restarting\n\n\
        ```yaml\nresources:\n  limits:\n    memory: 512Mi\n```\n\n| pod | restarts | state |\n|---|---|---|\n\
        | web-1 | 14 | CrashLoopBackOff |\n| web-2 | 0 | Running |\n\n";
    let mut out = String::new();
    while out.len() < 10 * 1024 {
        out.push_str(section);
    }
    out
}

fn benches(c: &mut Criterion) {
    let body = event_body();
    let verifier = Verifier::new("8f742231b10e8888abcd99yyyzzz85a5".to_owned().into());
    let now = 1_700_000_000_i64;
    let timestamp = now.to_string();
    let signature = verifier.sign(&timestamp, &body);
    c.bench_function("verify_signature", |b| {
        b.iter(|| verifier.verify_at(Some(&signature), Some(&timestamp), black_box(&body), now).unwrap());
    });

    let me = BotIdentity { user_id: UserId::new("UBOT"), bot_id: Some("BBOT".to_owned()), team_id: TeamId::new("T1") };
    let mut group = c.benchmark_group("ingress");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("parse_and_route_event", |b| {
        b.iter(|| match parse_event(black_box(&body), Some(&me)).unwrap() {
            Parsed::Inbound(item) => {
                let item: Inbound = item;
                black_box((item.idempotency_key(), item.order_key()));
            }
            other => panic!("not routed: {other:?}"),
        });
    });
    group.finish();

    let markdown = agent_reply();
    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Bytes(markdown.len() as u64));
    group.bench_function("reply_10kb", |b| {
        b.iter(|| {
            let view = ReplyView {
                agent: "generic-agent",
                markdown: black_box(&markdown),
                status: None,
                state: ReplyState::Done,
            };
            black_box(reply(&view))
        });
    });
    group.finish();

    let user = UserId::new("U1");
    let file = "apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: mem\nspec:\n  limits:\n  - default:\n      memory: 512Mi\n";
    let commands: Vec<String> =
        (0..10).map(|i| format!("kubectl -n prod rollout restart deployment/web-{i}")).collect();
    c.bench_function("card_10_commands", |b| {
        b.iter(|| {
            let view = CardView {
                id: "c0ffee",
                version: 3,
                ticket: "DEVOPS-42",
                agent: "generic-agent",
                commands: commands
                    .iter()
                    .enumerate()
                    .map(|(i, text)| CommandView {
                        text,
                        form: helpdesk_bridge::model::ProposalForm::Command,
                        files: if i % 3 == 0 { vec![("limits.yaml", file)] } else { Vec::new() },
                        decision: if i % 2 == 0 { DecisionView::Approved } else { DecisionView::Undecided },
                        decided: (i % 2 == 0).then_some((&user, 1_800_000_000)),
                        destructive: i == 9,
                        always: i != 9 && i % 3 != 0,
                        approvals: (Vec::new(), if i == 9 { 2 } else { 1 }),
                        attachment: AttachmentView::NotNeeded,
                    })
                    .collect(),
                status: CardStatus::Open,
                url: "https://portal.example.com/app/ai/service-desk/ws/tickets/chat/DEVOPS-42",
            };
            black_box(render(&view))
        });
    });
}

criterion_group!(slack, benches);
criterion_main!(slack);
