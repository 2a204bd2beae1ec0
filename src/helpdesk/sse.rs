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
//! Memory is bounded whatever the server sends: a line longer than
//! [`limits::LINE_BYTES`] is dropped up to its newline as it arrives (never buffered
//! whole), an event whose data passes [`limits::EVENT_BYTES`] is dropped up to its blank
//! line, and each is reported as a [`Frame::Oversized`] in its place in the stream.
//! Payloads that are not JSON objects are skipped. Nothing here can panic on input.
//!
//! On top of the framing sits the adapter from a reply to [`AgentEvent`]s: `event_stream`
//! turns a streamed response into events as they arrive, and `recover_streamed_reply`
//! recovers the reply a streaming agent sent inside a unary error body. Both end a reply at
//! the first thing too large, as [`HelpdeskError::Oversized`].

use std::{collections::VecDeque, pin::Pin};

use futures_util::{Stream, StreamExt};
use serde_json::Value;

use super::{
    error::HelpdeskError,
    events::{AgentEvent, decode_event},
    limits::{self, Oversized},
};

/// An agent's reply, as it arrives: the same events whether it streamed or not.
pub type ReplyStream = Pin<Box<dyn Stream<Item = Result<AgentEvent, HelpdeskError>> + Send>>;

/// What a stream yields, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A JSON object.
    Payload(Value),
    /// Something too large was dropped here.
    Oversized(Oversized),
}

/// Turns stream bytes into JSON objects, as they arrive.
#[derive(Debug, Default)]
pub struct StreamParser {
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// The current line is too long: its bytes are dropped until its newline.
    dropping_line: bool,
    /// `data:` lines of the current SSE event.
    data: Vec<String>,
    /// Their bytes, with the newlines that will join them.
    data_bytes: usize,
    /// The current event is too large: its data lines are dropped until it ends.
    dropping_event: bool,
}

impl StreamParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; returns the payloads completed by it, in order. Oversized input is
    /// dropped without a trace here; [`StreamParser::push_frames`] reports it.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Value> {
        payloads(self.push_frames(chunk))
    }

    /// Ends the stream: a last line without a newline and a last event without a blank line
    /// still count.
    pub fn finish(&mut self) -> Vec<Value> {
        payloads(self.finish_frames())
    }

    /// Feeds a chunk; returns the payloads it completed and where input was dropped, in
    /// stream order.
    pub fn push_frames(&mut self, chunk: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(end);
            self.extend_line(head, &mut out);
            rest = tail.get(1..).unwrap_or_default();
            let line = std::mem::take(&mut self.line);
            if std::mem::take(&mut self.dropping_line) {
                continue;
            }
            self.line_done(&line, &mut out);
        }
        self.extend_line(rest, &mut out);
        out
    }

    /// [`StreamParser::finish`], reporting dropped input too.
    pub fn finish_frames(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        let line = std::mem::take(&mut self.line);
        if !std::mem::take(&mut self.dropping_line) && !line.is_empty() {
            self.line_done(&line, &mut out);
        }
        self.dispatch(&mut out);
        out
    }

    /// Bytes held for unfinished lines and events; never much more than
    /// [`limits::LINE_BYTES`] + [`limits::EVENT_BYTES`].
    pub fn buffered(&self) -> usize {
        self.line.capacity() + self.data.iter().map(String::capacity).sum::<usize>()
    }

    /// Adds bytes to the current line, or drops them (and the line) when it grows too long.
    fn extend_line(&mut self, bytes: &[u8], out: &mut Vec<Frame>) {
        if self.dropping_line || bytes.is_empty() {
            return;
        }
        let needed = self.line.len() + bytes.len();
        if needed <= limits::LINE_BYTES {
            if self.line.capacity() < needed {
                // Grow as a Vec would, but never past the limit.
                let target = (self.line.capacity() * 2).max(needed).min(limits::LINE_BYTES);
                self.line.reserve_exact(target - self.line.len());
            }
            self.line.extend_from_slice(bytes);
            return;
        }
        // A data line that is cut away leaves the rest of its event meaningless.
        let mut head: Vec<u8> = self.line.iter().take(5).copied().collect();
        head.extend(bytes.iter().take(5 - head.len()));
        if head == b"data:" && !self.data.is_empty() {
            self.drop_event();
        }
        self.line = Vec::new();
        self.dropping_line = true;
        out.push(Frame::Oversized(Oversized::Line));
    }

    fn drop_event(&mut self) {
        self.data = Vec::new();
        self.data_bytes = 0;
        self.dropping_event = true;
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<Frame>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = String::from_utf8_lossy(line);
        let line = line.as_ref();
        if line.trim().is_empty() {
            self.dispatch(out);
            return;
        }
        if let Some(data) = field(line, "data") {
            if self.dropping_event {
                return;
            }
            if self.data.is_empty()
                && let Some(value) = object(data)
            {
                out.push(Frame::Payload(value));
                return;
            }
            let joined = self.data_bytes + usize::from(!self.data.is_empty()) + data.len();
            if joined > limits::EVENT_BYTES {
                self.drop_event();
                out.push(Frame::Oversized(Oversized::Event));
                return;
            }
            self.data_bytes = joined;
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
            && let Some(value) = line.get(start..).and_then(object)
        {
            self.dispatch(out);
            out.push(Frame::Payload(value));
        }
    }

    /// Ends the current SSE event: its data, joined, is one payload (or one per line).
    fn dispatch(&mut self, out: &mut Vec<Frame>) {
        self.dropping_event = false;
        self.data_bytes = 0;
        if self.data.is_empty() {
            return;
        }
        let lines = std::mem::take(&mut self.data);
        if let Some(value) = object(&lines.join("\n")) {
            out.push(Frame::Payload(value));
            return;
        }
        // Some servers put one JSON document on each data line without blank lines.
        out.extend(lines.iter().filter_map(|l| object(l)).map(Frame::Payload));
    }
}

fn payloads(frames: Vec<Frame>) -> Vec<Value> {
    frames
        .into_iter()
        .filter_map(|f| match f {
            Frame::Payload(value) => Some(value),
            Frame::Oversized(_) => None,
        })
        .collect()
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
    payloads(parse_all_frames(body))
}

/// Parses a whole body at once, reporting dropped input too.
pub fn parse_all_frames(body: &[u8]) -> Vec<Frame> {
    let mut parser = StreamParser::new();
    let mut out = parser.push_frames(body);
    out.extend(parser.finish_frames());
    out
}

/// The event a frame carries, if any; input dropped as too large is an error that ends the
/// reply.
fn frame_event(frame: Frame) -> Option<Result<AgentEvent, HelpdeskError>> {
    match frame {
        Frame::Payload(value) => decode_event(&value).map(Ok),
        Frame::Oversized(what) => Some(Err(HelpdeskError::oversized(what))),
    }
}

/// A streaming agent reached through the unary endpoint makes the HelpDesk answer 400 with
/// the agent's NDJSON inside a JSON string (older portals: 500 with `Error {json}` lines).
/// Recovers the reply from the error body when it holds one; a line or event past the caps,
/// or a body that was `cut` at its limit, ends it with an error, as in a stream.
pub(super) fn recover_streamed_reply(body: &str, cut: bool) -> Option<Vec<Result<AgentEvent, HelpdeskError>>> {
    let text = serde_json::from_str::<String>(body).unwrap_or_else(|_| body.to_owned());
    let mut events = Vec::new();
    let mut useful = false;
    let mut done = false;
    for item in parse_all_frames(text.as_bytes()).into_iter().filter_map(frame_event) {
        let failed = item.is_err();
        if let Ok(event) = &item {
            useful |=
                matches!(event, AgentEvent::TextDelta(t) if !t.is_empty()) || matches!(event, AgentEvent::Proposed(_));
            done |= matches!(event, AgentEvent::Done { .. });
        }
        events.push(item);
        if failed {
            done = true;
            break;
        }
    }
    if !useful {
        return None;
    }
    if !done {
        events.push(if cut { Err(HelpdeskError::too_large()) } else { Ok(AgentEvent::Done { stop_reason: None }) });
    }
    Some(events)
}

/// Turns a byte stream into agent events as they arrive. Ends after `done` or an `error`
/// event; a transport failure or a silence past the read timeout ends it with an error.
pub(super) fn event_stream<S, B, E>(bytes: S) -> impl Stream<Item = Result<AgentEvent, HelpdeskError>> + Send
where
    S: Stream<Item = Result<B, E>> + Send + Unpin + 'static,
    B: AsRef<[u8]>,
    E: Into<reqwest::Error>,
{
    struct State<S> {
        bytes: S,
        parser: StreamParser,
        ready: VecDeque<Result<AgentEvent, HelpdeskError>>,
        finished: bool,
    }
    impl<S> State<S> {
        /// Queues the events of parsed frames; input dropped as too large ends the stream.
        fn take(&mut self, frames: Vec<Frame>) {
            for item in frames.into_iter().filter_map(frame_event) {
                let failed = item.is_err();
                self.ready.push_back(item);
                if failed {
                    return;
                }
            }
        }
    }
    let state = State { bytes, parser: StreamParser::new(), ready: VecDeque::new(), finished: false };
    futures_util::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.ready.pop_front() {
                if matches!(event, Ok(AgentEvent::Done { .. } | AgentEvent::Error(_)) | Err(_)) {
                    state.ready.clear();
                    state.finished = true;
                }
                return Some((event, state));
            }
            if state.finished {
                return None;
            }
            match state.bytes.next().await {
                Some(Ok(chunk)) => {
                    let frames = state.parser.push_frames(chunk.as_ref());
                    state.take(frames);
                }
                Some(Err(err)) => {
                    state.finished = true;
                    let err: reqwest::Error = err.into();
                    let why = if err.is_timeout() {
                        "the HelpDesk sent nothing for longer than HELPDESK_STREAM_IDLE_SECONDS".to_owned()
                    } else {
                        "the connection to the HelpDesk was lost".to_owned()
                    };
                    return Some((Err(HelpdeskError::Interrupted(why)), state));
                }
                None => {
                    let frames = state.parser.finish_frames();
                    state.take(frames);
                    // A clean end without `done` still ends the turn.
                    state.ready.push_back(Ok(AgentEvent::Done { stop_reason: None }));
                }
            }
        }
    })
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

    const DELTA: &str = "data: {\"type\":\"text_delta\",\"text\":\"after\"}\n\n";

    /// A line past the limit is dropped as it arrives (the buffer never holds it), reported
    /// once where it was, and the stream goes on after its newline.
    #[test]
    fn an_endless_line_is_dropped_without_buffering_it() {
        let mut parser = StreamParser::new();
        let mut frames = parser.push_frames(b"data: {\"type\":\"text_delta\",\"text\":\"before\"}\n\ndata: \"");
        let chunk = vec![b'x'; 64 * 1024];
        let mut most = 0;
        for _ in 0..160 {
            frames.extend(parser.push_frames(&chunk));
            most = most.max(parser.buffered());
        }
        assert!(most <= limits::LINE_BYTES, "10 MiB without a newline held at most the limit: {most}");
        assert_eq!(parser.buffered(), 0, "the dropped line is not kept at all");
        frames.extend(parser.push_frames(b"still the same line\n"));
        frames.extend(parser.push_frames(DELTA.as_bytes()));
        frames.extend(parser.finish_frames());
        assert_eq!(
            frames,
            [
                Frame::Payload(json!({"type": "text_delta", "text": "before"})),
                Frame::Oversized(Oversized::Line),
                Frame::Payload(json!({"type": "text_delta", "text": "after"})),
            ]
        );
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_kept() {
        let prefix = "{\"type\":\"text_delta\",\"text\":\"";
        let text = "y".repeat(limits::LINE_BYTES - prefix.len() - 2);
        let line = format!("{prefix}{text}\"}}");
        assert_eq!(line.len(), limits::LINE_BYTES);
        assert_eq!(
            parse_all_frames(format!("{line}\n").as_bytes()),
            [Frame::Payload(json!({"type": "text_delta", "text": text}))]
        );
        let over = format!("{prefix}{text}x\"}}\n");
        assert_eq!(parse_all_frames(over.as_bytes()), [Frame::Oversized(Oversized::Line)]);
    }

    /// Data lines each within the line limit can still add up past the event limit: the
    /// event is dropped up to its blank line, reported once, and the next one parses.
    #[test]
    fn an_event_past_the_limit_is_dropped_up_to_its_end() {
        let mut parser = StreamParser::new();
        let mut frames = parser.push_frames(b"data: {\"type\":\"text_delta\",\ndata: \"text\":\"");
        let piece = format!("data: {}\n", "z".repeat(100 * 1024));
        let mut most = 0;
        for _ in 0..30 {
            frames.extend(parser.push_frames(piece.as_bytes()));
            most = most.max(parser.buffered());
        }
        assert!(most <= limits::EVENT_BYTES + limits::LINE_BYTES, "{most}");
        frames.extend(parser.push_frames(b"data: \"}\n\n"));
        frames.extend(parser.push_frames(DELTA.as_bytes()));
        assert_eq!(
            frames,
            [Frame::Oversized(Oversized::Event), Frame::Payload(json!({"type": "text_delta", "text": "after"}))]
        );
        assert_eq!(parser.buffered(), 0);
    }

    /// A data line cut away in the middle of an event takes the event with it: what is
    /// left of it is never delivered as if it were whole.
    #[test]
    fn a_cut_data_line_drops_its_event() {
        let huge = "w".repeat(limits::LINE_BYTES);
        let body = format!("data: {{\"type\":\"text_delta\",\ndata: {huge}\ndata: \"text\":\"x\"}}\n\n{DELTA}");
        assert_eq!(
            parse_all_frames(body.as_bytes()),
            [Frame::Oversized(Oversized::Line), Frame::Payload(json!({"type": "text_delta", "text": "after"}))]
        );
        let ndjson = format!("{{\"type\":\"text_delta\",\"text\":\"{huge}\"}}\n{{\"type\":\"done\"}}\n");
        assert_eq!(
            parse_all_frames(ndjson.as_bytes()),
            [Frame::Oversized(Oversized::Line), Frame::Payload(json!({"type": "done"}))]
        );
        assert_eq!(parse_all(ndjson.as_bytes()), [json!({"type": "done"})], "push and parse_all only drop");
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

    #[test]
    fn recovered_replies_stop_at_the_caps() {
        let huge = format!("{{\"type\":\"text_delta\",\"text\":\"{}\"}}", "h".repeat(limits::LINE_BYTES));
        let body =
            format!("Error {{\"type\":\"text_delta\",\"text\":\"kept\"}}\nError {huge}\nError {{\"type\":\"done\"}}\n");
        let reason = "the HelpDesk sent a line longer than 1 MiB in the agent's reply; the rest was not shown";
        assert_eq!(
            recover_streamed_reply(&body, false),
            Some(vec![Ok(AgentEvent::TextDelta("kept".to_owned())), Err(HelpdeskError::Oversized(reason.to_owned()))])
        );
        let cut = "Error {\"type\":\"text_delta\",\"text\":\"kept\"}\nError {\"type\":\"text_del";
        assert_eq!(
            recover_streamed_reply(cut, true),
            Some(vec![Ok(AgentEvent::TextDelta("kept".to_owned())), Err(HelpdeskError::too_large())])
        );
        assert_eq!(
            recover_streamed_reply("Error {\"type\":\"text_delta\",\"text\":\"kept\"}\n", false),
            Some(vec![Ok(AgentEvent::TextDelta("kept".to_owned())), Ok(AgentEvent::Done { stop_reason: None })]),
            "a whole body without done still ends the turn"
        );
        assert_eq!(recover_streamed_reply("title is required", false), None);
    }
}
