//! Incremental framing of a HelpDesk reply stream into JSON payloads.
//!
//! The HelpDesk streams Server-Sent Events; some backends write bare NDJSON lines instead,
//! and error paths prefix lines with text. [`StreamParser`] accepts all of it, fed in
//! arbitrary chunks:
//!
//! - lines end in `\n` or `\r\n`; a line split across chunks is kept until it is whole;
//! - `data:` lines are collected until a blank line and joined with `\n` (the SSE spec);
//!   a `data:` line that is a complete JSON object on its own is delivered at once, so a
//!   server that never sends blank lines (duploctl's reading) still streams;
//! - `event:`, `id:`, `retry:` and `:` comment lines are ignored: the event's kind is the
//!   JSON `type`, not the SSE event name;
//! - any other line starting with `{` is one NDJSON event; anything else is skipped.
//!
//! Payloads that are not JSON objects are skipped. Nothing here can panic on input.

use serde_json::Value;

/// Turns stream bytes into JSON objects, as they arrive.
#[derive(Debug, Default)]
pub struct StreamParser {
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// `data:` lines of the current SSE event.
    data: Vec<String>,
}

impl StreamParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; returns the payloads completed by it, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Value> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, &mut out);
        }
        self.line.extend_from_slice(rest);
        out
    }

    /// Ends the stream: a last line without a newline and a last event without a blank line
    /// still count.
    pub fn finish(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, &mut out);
        }
        self.dispatch(&mut out);
        out
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<Value>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = String::from_utf8_lossy(line);
        let line = line.as_ref();
        if line.trim().is_empty() {
            self.dispatch(out);
            return;
        }
        if let Some(data) = field(line, "data") {
            if self.data.is_empty()
                && let Some(value) = object(data)
            {
                out.push(value);
                return;
            }
            self.data.push(data.to_owned());
            return;
        }
        if line.starts_with(':')
            || field(line, "event").is_some()
            || field(line, "id").is_some()
            || field(line, "retry").is_some()
        {
            return;
        }
        // Not SSE: a bare NDJSON line, possibly behind a prefix such as "Error ".
        if let Some(start) = line.find('{')
            && let Some(value) = object(&line[start..])
        {
            self.dispatch(out);
            out.push(value);
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Value>) {
        if self.data.is_empty() {
            return;
        }
        let lines = std::mem::take(&mut self.data);
        if let Some(value) = object(&lines.join("\n")) {
            out.push(value);
            return;
        }
        // Some servers put one JSON document on each data line without blank lines.
        out.extend(lines.iter().filter_map(|l| object(l)));
    }
}

/// The value of an SSE field line (`name:value`, one optional space after the colon).
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let value = line.strip_prefix(name)?.strip_prefix(':')?;
    Some(value.strip_prefix(' ').unwrap_or(value))
}

fn object(text: &str) -> Option<Value> {
    serde_json::from_str::<Value>(text.trim()).ok().filter(Value::is_object)
}

/// Parses a whole body at once.
pub fn parse_all(body: &[u8]) -> Vec<Value> {
    let mut parser = StreamParser::new();
    let mut out = parser.push(body);
    out.extend(parser.finish());
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const STREAM: &str = "event: message\r\ndata: {\"type\":\"text_delta\",\"text\":\"Hel\"}\r\n\r\n: keepalive\n\
        id: 7\nretry: 1000\nevent: message\ndata: {\"type\":\"text_delta\",\ndata: \"text\":\"lo\"}\n\n\
        garbage that is not json\n{\"type\":\"intermittent_update\",\"text\":\"Thinking...\"}\n\
        data: [1,2]\n\ndata: not json\n\nevent: error\ndata: {\"type\":\"done\",\"stop_reason\":\"end_turn\"}";

    fn expected() -> Vec<Value> {
        vec![
            json!({"type": "text_delta", "text": "Hel"}),
            json!({"type": "text_delta", "text": "lo"}),
            json!({"type": "intermittent_update", "text": "Thinking..."}),
            json!({"type": "done", "stop_reason": "end_turn"}),
        ]
    }

    #[test]
    fn a_mixed_stream_yields_its_objects_in_order() {
        assert_eq!(parse_all(STREAM.as_bytes()), expected());
    }

    #[test]
    fn any_split_into_chunks_yields_the_same() {
        let bytes = STREAM.as_bytes();
        for cut in 0..bytes.len() {
            let mut parser = StreamParser::new();
            let mut out = parser.push(&bytes[..cut]);
            out.extend(parser.push(&bytes[cut..]));
            out.extend(parser.finish());
            assert_eq!(out, expected(), "split at {cut}");
        }
        let mut parser = StreamParser::new();
        let mut out: Vec<Value> = bytes.iter().flat_map(|b| parser.push(std::slice::from_ref(b))).collect();
        out.extend(parser.finish());
        assert_eq!(out, expected(), "byte by byte");
    }

    #[test]
    fn data_lines_without_blank_lines_stream_at_once() {
        let mut parser = StreamParser::new();
        assert_eq!(
            parser.push(b"data: {\"type\":\"text_delta\",\"text\":\"a\"}\n"),
            [json!({"type": "text_delta", "text": "a"})]
        );
        assert_eq!(
            parser.push(b"data: {\"type\":\"text_delta\",\"text\":\"b\"}\n"),
            [json!({"type": "text_delta", "text": "b"})]
        );
    }

    #[test]
    fn prefixed_error_lines_are_recovered() {
        let body = "Error {\"type\":\"text_delta\",\"text\":\"x\"}\n{\"type\":\"done\"}";
        assert_eq!(parse_all(body.as_bytes()), [json!({"type": "text_delta", "text": "x"}), json!({"type": "done"})]);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 0..16)) {
            let mut parser = StreamParser::new();
            for chunk in &chunks {
                for value in parser.push(chunk) {
                    proptest::prop_assert!(value.is_object());
                }
            }
            parser.finish();
        }
    }
}
