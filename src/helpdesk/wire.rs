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

/// Whether an agent streams: `metaData.STREAMING_ENABLED` is `"true"` (any case, trimmed).
/// `doesSupportStreaming` is deliberately ignored: duploctl found it reports false for
/// agents that do stream.
pub fn agent_streams(agent: &Value) -> bool {
    field_value(agent, &["metaData", "metadata", "MetaData", "Metadata"])
        .and_then(|meta| text(meta, &["STREAMING_ENABLED"]))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
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
    fn streaming_is_read_from_metadata_only() {
        assert!(agent_streams(&json!({"metaData": {"STREAMING_ENABLED": " TRUE "}})));
        assert!(agent_streams(&json!({"MetaData": {"STREAMING_ENABLED": true}})));
        assert!(!agent_streams(&json!({"metaData": {"STREAMING_ENABLED": "false"}, "doesSupportStreaming": true})));
        assert!(!agent_streams(&json!({"doesSupportStreaming": true})));
    }
}
