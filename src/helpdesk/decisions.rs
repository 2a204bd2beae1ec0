//! The answer to an approval card, as the HelpDesk reads it: the `cmds`, `tool_calls` and
//! `approvals` of a message's `data`. Only the client writes it, when it serialises a send;
//! the rest of the bridge hands over decided [`ProposedCommand`]s.
//!
//! Each proposal goes back in the form it came in: `cmds` (`command`, `files` and
//! `execute`, plus `rejection_reason` when rejected with one), `tool_calls` and `approvals`
//! (matched by `id`, with the `name` and `input` shown). Exactly the fields the card showed
//! go back, never the agent's original object: a field nobody saw cannot ride along with
//! `execute: true`. Ignored and undecided proposals are left out, which is how the agent
//! reads "ignored".

use serde_json::{Map, Value, json};

use crate::model::{Decision, ProposalForm, ProposedCommand, ToolInput};

/// A kept tool input as JSON again; `None` when what was kept does not parse.
fn input_json(input: &ToolInput) -> Option<Value> {
    serde_json::from_str(input.json_text()).ok()
}

/// A decided proposal: whether to run it, and why not when a reason was given.
fn answer(command: &ProposedCommand) -> Option<(bool, Option<&str>)> {
    match &command.decision {
        Decision::Approve => Some((true, None)),
        Decision::Reject { reason } => Some((false, reason.as_deref().filter(|r| !r.trim().is_empty()))),
        Decision::Ignore | Decision::Undecided => None,
    }
}

/// Whether any of `commands` was approved or rejected, so that [`data`] has something to
/// say.
pub(super) fn answers_any(commands: &[ProposedCommand]) -> bool {
    commands.iter().any(|c| answer(c).is_some())
}

/// The `data` of a message that answers `commands` (`{}` when none was decided).
pub(super) fn data(commands: &[ProposedCommand]) -> Value {
    let mut data = Map::new();
    for command in commands {
        let Some((execute, reason)) = answer(command) else { continue };
        let mut entry = Map::new();
        let key = match command.form {
            ProposalForm::Command => {
                entry.insert("command".to_owned(), json!(command.command));
                if !command.files.is_empty() {
                    let files: Vec<Value> =
                        command.files.iter().map(|f| json!({"file_path": f.path, "file_content": f.content})).collect();
                    entry.insert("files".to_owned(), Value::Array(files));
                }
                "cmds"
            }
            ProposalForm::ToolCall | ProposalForm::Approval => {
                entry.insert("id".to_owned(), json!(command.id));
                if let Some(tool) = &command.tool {
                    entry.insert("name".to_owned(), json!(tool.name));
                    // The input goes back as the JSON the card showed (it was written from it).
                    if let Some(input) = tool.input.as_ref().and_then(input_json) {
                        entry.insert("input".to_owned(), input);
                    }
                }
                if command.form == ProposalForm::ToolCall { "tool_calls" } else { "approvals" }
            }
        };
        entry.insert("execute".to_owned(), json!(execute));
        if let Some(reason) = reason {
            entry.insert("rejection_reason".to_owned(), json!(reason));
        }
        if let Value::Array(list) = data.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
            list.push(Value::Object(entry));
        }
    }
    Value::Object(data)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::helpdesk::events::{AgentEvent, reply_events};

    #[test]
    fn decisions_go_back_in_the_form_they_came_in_with_only_the_shown_fields() {
        let reply = json!({"content": "", "data": {
            "cmds": [
                {"command": "kubectl get pods", "execute": false, "uid": "u1"},
                {"command": "kubectl delete pod web-1", "execute": false},
                {"command": "cat > fix.yaml", "execute": false,
                 "files": [{"file_path": "fix.yaml", "file_content": "a: 1"}]},
                {"command": "echo ignored", "execute": false},
                {"command": "ls", "Command": "rm -rf /", "execute": false}
            ],
            "tool_calls": [{"id": "t1", "name": "restart", "input": {"svc": "api"}, "execute": false, "extra": 1}],
            "approvals": [{"id": "a1", "type": "command", "name": "scale", "input": {}, "execute": false}]
        }});
        let Some(AgentEvent::Proposed(mut proposed)) =
            reply_events(&reply).into_iter().find(|e| matches!(e, AgentEvent::Proposed(_)))
        else {
            panic!("proposals")
        };
        proposed[0].decision = Decision::Approve;
        proposed[1].decision = Decision::Reject { reason: Some("not now".to_owned()) };
        proposed[2].decision = Decision::Approve;
        proposed[3].decision = Decision::Ignore;
        proposed[4].decision = Decision::Approve;
        proposed[5].decision = Decision::Reject { reason: None };
        proposed[6].decision = Decision::Approve;
        assert_eq!(
            data(&proposed),
            json!({
                "cmds": [
                    {"command": "kubectl get pods", "execute": true},
                    {"command": "kubectl delete pod web-1", "execute": false, "rejection_reason": "not now"},
                    {"command": "cat > fix.yaml", "execute": true,
                     "files": [{"file_path": "fix.yaml", "file_content": "a: 1"}]},
                    {"command": "ls", "execute": true}
                ],
                "tool_calls": [{"id": "t1", "name": "restart", "input": {"svc": "api"}, "execute": false}],
                "approvals": [{"id": "a1", "name": "scale", "input": {}, "execute": true}]
            })
        );
    }

    #[test]
    fn only_approvals_and_rejections_answer() {
        let mut proposed = vec![ProposedCommand::new(ProposalForm::Command, String::new(), "ls".to_owned())];
        assert!(!answers_any(&proposed));
        assert_eq!(data(&proposed), json!({}));
        proposed[0].decision = Decision::Ignore;
        assert!(!answers_any(&proposed));
        proposed[0].decision = Decision::Reject { reason: Some(" ".to_owned()) };
        assert!(answers_any(&proposed));
        assert_eq!(data(&proposed), json!({"cmds": [{"command": "ls", "execute": false}]}));
    }

    /// A proposal object: known and unknown keys, strings, nested objects.
    fn proposal_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,40}".prop_map(Value::from),
        ];
        let value = leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map("[a-z_A-Z]{1,12}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        let key = prop_oneof![
            Just("command".to_owned()),
            Just("Command".to_owned()),
            Just("files".to_owned()),
            Just("execute".to_owned()),
            Just("id".to_owned()),
            Just("name".to_owned()),
            Just("input".to_owned()),
            "[a-z_A-Z]{1,12}",
        ];
        proptest::collection::btree_map(key, value, 0..6).prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    proptest::proptest! {
        #[test]
        fn any_proposal_goes_back_as_exactly_the_displayed_fields(
            entries in proptest::collection::vec(proposal_json(), 0..4),
            form in 0usize..3,
        ) {
            let key = ["cmds", "tool_calls", "approvals"][form];
            let reply = json!({"content": "", "data": {key: entries}});
            let proposed: Vec<ProposedCommand> = reply_events(&reply)
                .into_iter()
                .filter_map(|e| if let AgentEvent::Proposed(p) = e { Some(p) } else { None })
                .flatten()
                .map(|mut p| { p.decision = Decision::Approve; p })
                .collect();
            let answer = data(&proposed);
            let sent = answer.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
            proptest::prop_assert_eq!(sent.len(), proposed.len());
            for (entry, shown) in sent.iter().zip(&proposed) {
                let object = entry.as_object().unwrap();
                match shown.form {
                    ProposalForm::Command => {
                        // Only the command and files the card shows, and the decision.
                        for k in object.keys() {
                            proptest::prop_assert!(["command", "files", "execute"].contains(&k.as_str()), "{k}");
                        }
                        proptest::prop_assert_eq!(&object["command"], &json!(shown.command));
                        let files: Vec<Value> = shown.files.iter()
                            .map(|f| json!({"file_path": f.path, "file_content": f.content})).collect();
                        proptest::prop_assert_eq!(object.get("files").cloned().unwrap_or(json!([])), json!(files));
                    }
                    _ => {
                        for k in object.keys() {
                            proptest::prop_assert!(["id", "name", "input", "execute"].contains(&k.as_str()), "{k}");
                        }
                        // The card shows "name input": what goes back renders to the same text.
                        let name = object["name"].as_str().unwrap();
                        let shown_again = match object.get("input") {
                            Some(input) => format!("{name} {input}"),
                            None => name.to_owned(),
                        };
                        proptest::prop_assert_eq!(shown_again, shown.command.clone());
                        proptest::prop_assert_eq!(&object["id"], &json!(shown.id));
                    }
                }
                proptest::prop_assert_eq!(&object["execute"], &json!(true));
            }
        }
    }
}
