//! Slack's native streaming methods as a stateful stand-in, mounted over the fake Slack:
//! `chat.startStream`, `chat.appendStream` and `chat.stopStream` keep each streamed
//! message's text, tasks and state, and can end streams as Slack does (after a lifetime),
//! refuse appends with 429 and `Retry-After`, or report that a reader pressed Stop.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::path};

/// One streamed message as the fake saw it.
#[derive(Clone, Debug)]
pub struct Streamed {
    pub ts: String,
    /// The `chat.startStream` body.
    pub start: Value,
    pub started: Instant,
    /// The Markdown it took, in order.
    pub text: String,
    /// Every task update, in order.
    pub tasks: Vec<Value>,
    /// When each append was taken.
    pub appends: Vec<Instant>,
    /// Whether it is still streaming.
    pub streaming: bool,
    /// The `chat.stopStream` body, once stopped.
    pub stop: Option<Value>,
    /// The `markdown_text` of a `chat.update` that finished it after Slack ended it.
    pub finished_with: Option<String>,
}

#[derive(Default)]
struct State {
    next: u64,
    messages: Vec<Streamed>,
    /// Streams end this long after they start.
    lifetime: Option<Duration>,
    /// Appends answered 429 with this `Retry-After` (seconds), counting down.
    limited: usize,
    retry_after: u64,
    /// When the nth append (counted from 1) arrives, a reader has pressed Stop.
    stop_at_append: Option<usize>,
    appends_seen: usize,
    /// Every stream call: when, the method, the body.
    log: Vec<(Instant, String, Value)>,
    /// How late every answer comes.
    delay: Duration,
}

/// The stand-in; clones share its state.
#[derive(Clone, Default)]
pub struct StreamingSlack {
    state: Arc<Mutex<State>>,
}

fn body_of(request: &Request) -> Value {
    serde_json::from_slice(&request.body).unwrap_or_default()
}

fn ok(extra: Value) -> ResponseTemplate {
    let mut body = json!({"ok": true});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    ResponseTemplate::new(200).set_body_json(body)
}

fn refused(code: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": code}))
}

/// Splits a call's chunks into its Markdown and its task updates.
fn chunks(body: &Value) -> (String, Vec<Value>) {
    let mut text = body["markdown_text"].as_str().unwrap_or_default().to_owned();
    let mut tasks = Vec::new();
    for chunk in body["chunks"].as_array().into_iter().flatten() {
        match chunk["type"].as_str() {
            Some("markdown_text") => text.push_str(chunk["text"].as_str().unwrap_or_default()),
            Some("task_update") => tasks.push(chunk.clone()),
            _ => {}
        }
    }
    (text, tasks)
}

impl State {
    fn expire(&mut self) {
        if let Some(lifetime) = self.lifetime {
            for message in &mut self.messages {
                if message.streaming && message.started.elapsed() >= lifetime {
                    message.streaming = false;
                }
            }
        }
    }

    fn message(&mut self, body: &Value) -> Option<&mut Streamed> {
        let ts = body["ts"].as_str()?;
        self.messages.iter_mut().find(|m| m.ts == ts)
    }
}

impl Respond for StreamingSlack {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let delay = self.state.lock().unwrap().delay;
        self.answer(request).set_delay(delay)
    }
}

impl StreamingSlack {
    fn answer(&self, request: &Request) -> ResponseTemplate {
        let method = request.url.path().trim_start_matches('/').to_owned();
        let body = body_of(request);
        let mut state = self.state.lock().unwrap();
        state.log.push((Instant::now(), method.clone(), body.clone()));
        state.expire();
        match method.as_str() {
            // The bridge's start-up probe: a start that names no channel.
            "chat.startStream" if body["channel"].as_str().is_none_or(str::is_empty) => refused("channel_not_found"),
            "chat.startStream" => {
                state.next += 1;
                let ts = format!("1800000000.{:06}", state.next);
                let (text, tasks) = chunks(&body);
                state.messages.push(Streamed {
                    ts: ts.clone(),
                    start: body.clone(),
                    started: Instant::now(),
                    text,
                    tasks,
                    appends: Vec::new(),
                    streaming: true,
                    stop: None,
                    finished_with: None,
                });
                ok(json!({"channel": body["channel"], "ts": ts}))
            }
            "chat.appendStream" => {
                state.appends_seen += 1;
                if state.stop_at_append == Some(state.appends_seen) {
                    if let Some(message) = state.message(&body) {
                        message.streaming = false;
                    }
                    return refused("stopped_by_user");
                }
                if state.limited > 0 {
                    state.limited -= 1;
                    return ResponseTemplate::new(429)
                        .insert_header("Retry-After", state.retry_after.to_string().as_str())
                        .set_body_json(json!({"ok": false, "error": "ratelimited"}));
                }
                let (text, tasks) = chunks(&body);
                match state.message(&body) {
                    Some(message) if message.streaming => {
                        message.text.push_str(&text);
                        message.tasks.extend(tasks);
                        message.appends.push(Instant::now());
                        ok(json!({"channel": body["channel"], "ts": body["ts"]}))
                    }
                    Some(_) => refused("message_not_in_streaming_state"),
                    None => refused("message_not_found"),
                }
            }
            "chat.stopStream" => match state.message(&body) {
                Some(message) if message.streaming => {
                    let (text, tasks) = chunks(&body);
                    message.text.push_str(&text);
                    message.tasks.extend(tasks);
                    message.streaming = false;
                    message.stop = Some(body.clone());
                    ok(json!({"channel": body["channel"], "ts": body["ts"]}))
                }
                Some(_) => refused("message_not_in_streaming_state"),
                None => refused("message_not_found"),
            },
            "chat.update" => {
                if let Some(markdown) = body["markdown_text"].as_str().map(str::to_owned)
                    && let Some(message) = state.message(&body)
                {
                    if message.streaming {
                        return refused("streaming_state_conflict");
                    }
                    message.finished_with = Some(markdown);
                }
                ok(json!({"channel": body["channel"], "ts": body["ts"]}))
            }
            _ => refused("unknown_method"),
        }
    }
}

impl StreamingSlack {
    /// Every answer comes `delay` late (the call is logged when it arrives).
    pub fn answering_after(self, delay: Duration) -> Self {
        self.state.lock().unwrap().delay = delay;
        self
    }

    /// Mounts the stream methods (and `chat.update`, which finishes stopped streams) over
    /// `slack`'s other fakes.
    pub async fn mount(slack: &MockServer) -> Self {
        let fake = Self::default();
        for method in ["chat.startStream", "chat.appendStream", "chat.stopStream", "chat.update"] {
            Mock::given(path(format!("/{method}"))).respond_with(fake.clone()).with_priority(1).mount(slack).await;
        }
        fake
    }

    /// Streams end `lifetime` after they start, as Slack's do after some minutes.
    pub fn ending_after(self, lifetime: Duration) -> Self {
        self.state.lock().unwrap().lifetime = Some(lifetime);
        self
    }

    /// The first `count` appends are answered 429 with `Retry-After: seconds`.
    pub fn limiting(self, count: usize, seconds: u64) -> Self {
        {
            let mut state = self.state.lock().unwrap();
            state.limited = count;
            state.retry_after = seconds;
        }
        self
    }

    /// A reader presses Stop before the `nth` append.
    pub fn stopped_at_append(self, nth: usize) -> Self {
        self.state.lock().unwrap().stop_at_append = Some(nth);
        self
    }

    /// Slack stops streaming `ts` (as it does when a reader presses Stop): later appends
    /// are answered `message_not_in_streaming_state`.
    pub fn stop_now(&self, ts: &str) {
        let mut state = self.state.lock().unwrap();
        if let Some(message) = state.messages.iter_mut().find(|m| m.ts == ts) {
            message.streaming = false;
        }
    }

    /// The streamed messages so far, in the order they started.
    pub fn messages(&self) -> Vec<Streamed> {
        self.state.lock().unwrap().messages.clone()
    }

    /// Every stream call so far: when, which method, the body.
    pub fn log(&self) -> Vec<(Instant, String, Value)> {
        self.state.lock().unwrap().log.clone()
    }
}
