//! The HelpDesk's JSON as its real clients see it, and the tolerance it needs.
//!
//! Responses come as `{success, data: {...}}`, `{success, data: {items: [...]}}`, or bare,
//! with camelCase or PascalCase keys (`name`/`Name`, `id`/`Id`/`_id`, `metaData`/`MetaData`).
//! Rather than serde aliases (which fail when a body carries both spellings), fields are
//! read from the JSON value by a list of accepted names.

use serde_json::Value;

/// The object a response is about: `data` when it is an object, else the body itself.
pub fn unwrap_object(body: &Value) -> &Value {
    match field_value(body, &["data", "Data"]) {
        Some(data) if data.is_object() => data,
        _ => body,
    }
}

/// The list a response carries: `data.items`, `data` as a list, `items`, or the body as a list.
pub fn unwrap_items(body: &Value) -> &[Value] {
    let data = field_value(body, &["data", "Data"]);
    let candidates = [
        data.and_then(|d| field_value(d, &["items", "Items"])),
        data,
        field_value(body, &["items", "Items"]),
        Some(body),
    ];
    candidates.into_iter().flatten().find_map(Value::as_array).map_or(&[], Vec::as_slice)
}

/// The first present, non-null field among `names`.
pub fn field_value<'a>(object: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|name| object.get(*name).filter(|v| !v.is_null()))
}

/// A field as text: strings as they are, numbers and booleans written out.
pub fn text(object: &Value, names: &[&str]) -> Option<String> {
    match field_value(object, names)? {
        Value::String(s) if !s.is_empty() && s != "null" => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The id of a record (`id`, `Id`, `_id`, `ID`).
pub fn id(object: &Value) -> Option<String> {
    text(object, &["id", "Id", "_id", "ID"])
}

/// The name of a record (`name`, `Name`).
pub fn name(object: &Value) -> Option<String> {
    text(object, &["name", "Name"])
}

/// An agent's metadata map (`metaData`, in any casing).
fn agent_meta(agent: &Value) -> Option<&Value> {
    field_value(agent, &["metaData", "metadata", "MetaData", "Metadata"])
}

/// Whether an agent streams: `metaData.STREAMING_ENABLED` is `"true"` (any case, trimmed).
/// `doesSupportStreaming` is deliberately ignored: duploctl found it reports false for
/// agents that do stream.
pub fn agent_streams(agent: &Value) -> bool {
    agent_meta(agent)
        .and_then(|meta| text(meta, &["STREAMING_ENABLED"]))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The prompts an agent suggests, as (title, message): `metaData.prompt_suggestions`,
/// whose inner shape is not documented. It is a JSON string (the metadata is a string map;
/// the JSON itself is taken too) holding a list whose entries are strings (each both title
/// and message) or objects with a `title` and one of `message`, `prompt`, `text`. Anything
/// else is no list; an entry of another shape, or with an empty title or message, is
/// skipped. Texts are as the HelpDesk wrote them; the caller bounds them.
pub fn prompt_suggestions(agent: &Value) -> Vec<(String, String)> {
    let Some(raw) = agent_meta(agent).and_then(|meta| field_value(meta, &["prompt_suggestions", "PROMPT_SUGGESTIONS"]))
    else {
        return Vec::new();
    };
    let parsed;
    let list = match raw {
        Value::String(json) => match serde_json::from_str::<Value>(json) {
            Ok(value) => {
                parsed = value;
                &parsed
            }
            Err(_) => return Vec::new(),
        },
        other => other,
    };
    let entry = |item: &Value| -> Option<(String, String)> {
        let (title, message) = match item {
            Value::String(prompt) => (prompt.clone(), prompt.clone()),
            Value::Object(_) => (
                text(item, &["title", "Title"])?,
                text(item, &["message", "prompt", "text", "Message", "Prompt", "Text"])?,
            ),
            _ => return None,
        };
        let (title, message) = (title.trim(), message.trim());
        (!title.is_empty() && !message.is_empty()).then(|| (title.to_owned(), message.to_owned()))
    };
    list.as_array().map_or_else(Vec::new, |items| items.iter().filter_map(entry).collect())
}

/// A time field as Unix seconds: an RFC 3339 string, or a number of seconds or milliseconds.
pub fn seconds(object: &Value, names: &[&str]) -> Option<i64> {
    match field_value(object, names)? {
        Value::String(text) => text.parse::<jiff::Timestamp>().ok().map(jiff::Timestamp::as_second),
        // Numbers past the year 2286 in seconds are taken as milliseconds.
        Value::Number(n) => n.as_i64().map(|n| if n > 9_999_999_999 { n / 1000 } else { n }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn envelopes_unwrap_in_every_shape() {
        let item = json!({"id": "1"});
        for body in [
            json!({"success": true, "data": {"items": [item.clone()]}}),
            json!({"Success": true, "Data": {"Items": [item.clone()]}}),
            json!({"success": true, "data": [item.clone()]}),
            json!({"items": [item.clone()]}),
            json!([item.clone()]),
        ] {
            assert_eq!(unwrap_items(&body), std::slice::from_ref(&item), "{body}");
        }
        assert!(unwrap_items(&json!({"success": true, "data": {}})).is_empty());
        assert_eq!(unwrap_object(&json!({"success": true, "data": {"name": "x"}})), &json!({"name": "x"}));
        assert_eq!(unwrap_object(&json!({"name": "x"})), &json!({"name": "x"}));
        assert_eq!(unwrap_object(&json!({"data": null, "name": "x"})), &json!({"data": null, "name": "x"}));
    }

    #[test]
    fn fields_accept_both_casings_and_odd_values() {
        assert_eq!(id(&json!({"Id": "a"})), Some("a".to_owned()));
        assert_eq!(id(&json!({"_id": 42})), Some("42".to_owned()));
        assert_eq!(id(&json!({"id": null, "Id": "b"})), Some("b".to_owned()));
        assert_eq!(name(&json!({"Name": "DevOps", "name": "devops"})), Some("devops".to_owned()));
        assert_eq!(name(&json!({"name": "null"})), None, "the string \"null\" is no name");
        assert_eq!(id(&json!({"id": {"$oid": "x"}})), None);
    }

    #[test]
    fn prompt_suggestions_are_read_tolerantly() {
        let agent = |suggestions: Value| json!({"id": "a", "metaData": {"prompt_suggestions": suggestions}});
        let pair = |title: &str, message: &str| (title.to_owned(), message.to_owned());
        assert_eq!(
            prompt_suggestions(&agent(json!(r#"["Check pods", "  Is a disk full?  ", "", 7]"#))),
            vec![pair("Check pods", "Check pods"), pair("Is a disk full?", "Is a disk full?")]
        );
        let objects = r#"[{"title": "Pods", "message": "Which pods crash?"}, {"title": "Disk", "prompt": "Disk usage?"},
            {"Title": "Logs", "text": "Show errors"}, {"title": "No message"}, {"message": "No title"},
            {"title": " ", "message": "blank title"}, ["nested"], null]"#;
        assert_eq!(
            prompt_suggestions(&agent(json!(objects))),
            vec![pair("Pods", "Which pods crash?"), pair("Disk", "Disk usage?"), pair("Logs", "Show errors")]
        );
        assert_eq!(
            prompt_suggestions(&agent(json!([{"title": "Raw", "message": "JSON, not a string"}]))),
            vec![pair("Raw", "JSON, not a string")],
            "the JSON itself is taken too"
        );
        assert_eq!(
            prompt_suggestions(&json!({"MetaData": {"prompt_suggestions": "[\"Cased\"]"}})),
            vec![pair("Cased", "Cased")]
        );
        for garbage in [
            json!("not json"),
            json!("{\"title\": \"an object, not a list\"}"),
            json!("\"a string\""),
            json!("[1, 2"),
            json!(""),
            json!(42),
            json!({"prompts": ["wrapped"]}),
        ] {
            assert!(prompt_suggestions(&agent(garbage.clone())).is_empty(), "{garbage}");
        }
        assert!(prompt_suggestions(&json!({"id": "a"})).is_empty());
        assert!(prompt_suggestions(&json!({"metaData": "not a map"})).is_empty());
    }

    #[test]
    fn streaming_is_read_from_metadata_only() {
        assert!(agent_streams(&json!({"metaData": {"STREAMING_ENABLED": " TRUE "}})));
        assert!(agent_streams(&json!({"MetaData": {"STREAMING_ENABLED": true}})));
        assert!(!agent_streams(&json!({"metaData": {"STREAMING_ENABLED": "false"}, "doesSupportStreaming": true})));
        assert!(!agent_streams(&json!({"doesSupportStreaming": true})));
    }

    proptest::proptest! {
        #[test]
        fn any_prompt_suggestions_parse_without_panicking(raw in "(?s)\\PC{0,300}|[\\[\\]{}\",:a-z ]{0,300}") {
            let _ = prompt_suggestions(&json!({"metaData": {"prompt_suggestions": raw}}));
        }
    }
}
