//! A streaming reply: a small state machine per reply that keeps Slack showing the newest
//! text without breaking Slack's limits, on one of two surfaces.
//!
//! - **Native streaming** (`chat.startStream` / `appendStream` / `stopStream`). The message
//!   is started as the turn starts. Text goes out as inert Markdown, in batches at most every
//!   [`APPEND_INTERVAL`]. The agent's status lines become tasks of a timeline. A message that
//!   Slack ends (past its lifetime, no longer streaming) or that is full (12,000 characters),
//!   or older than [`STREAM_LIFETIME`], is finished, and the reply goes on in a new streamed
//!   message in the same thread. What Slack did not take is carried over, so the thread shows
//!   the agent's text exactly once. A reader who presses Stop stops the relay of the turn.
//! - **Edits**: a placeholder posted as the turn starts and edited at most every
//!   [`EDIT_INTERVAL`]. It is used where Slack refuses native streaming, which is then
//!   remembered per workspace, with `SLACK_STREAMING=edits`, and when the workspace's
//!   stream starts are spent.
//!
//! Progress updates (appends, edits) queue at the workspace's turnstile for their budget
//! ([`SlackApi::progress_turn`]), so concurrent replies share it round robin. Only once its
//! turn has come does a reply take its newest text. Text keeps arriving while an update waits
//! or is in flight, so intermediate states coalesce and stale ones are never queued. The
//! final state is always sent. Reading the HelpDesk's stream never waits on Slack.
//!
//! Where the reply is shown (the message and how much was written) is kept in the store
//! while the turn runs ([`crate::store::ReplyMark`]). A replica that takes the turn over
//! after a restart can then finish a streamed message instead of leaving it "streaming".
//!
//! Every event of a turn passes the turn's [`TurnBudget`] first: a turn that passes a cap
//! (reply text, proposals, executed output, links) stops reading there and ends like an
//! interrupted reply, the cap's note as the reason; proposals past their cap leave the
//! turn with none, so no card is made from them.

use std::{sync::Arc, time::Duration};

use futures_util::{StreamExt, future::BoxFuture};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    helpdesk::{
        ReplyStream,
        events::{Admitted, AgentEvent, Exceeded, ExecutedCommand, Link, TurnBudget},
    },
    ids::{MessageTs, ThreadKey, UserId},
    model::ProposedCommand,
    slack::{
        api::{Progress, SlackApi, SlackError},
        blocks::{self, ExecutedView, ReplyState, ReplyView},
        kit::Message,
        notices,
        stream::{Inert, STREAM_MESSAGE_CHARS, StreamPart, Task, TaskState},
    },
    store::{ReplyMark, Store},
};

/// The least time between two edits of one message.
pub(super) const EDIT_INTERVAL: Duration = Duration::from_secs(1);
/// The least time between two appends to one streamed message.
pub(super) const APPEND_INTERVAL: Duration = Duration::from_millis(250);
/// How long one streamed message is used before the reply goes on in a new one. Slack
/// ends streams after some minutes (about five, by reports); one finished before that is
/// never left stuck "streaming".
pub(super) const STREAM_LIFETIME: Duration = Duration::from_secs(4 * 60);
/// How long the final edit may take once shutdown asked replies to finish.
const FINAL_EDIT_AT_SHUTDOWN: Duration = Duration::from_secs(3);
/// How often the final state of a reply is tried again when Slack rate-limits, times out
/// or cannot be reached; the waits double from [`FINAL_RETRY_PAUSE`].
const FINAL_RETRIES: u32 = 4;
/// The first wait before the final state is tried again.
const FINAL_RETRY_PAUSE: Duration = Duration::from_secs(1);
/// How long a stream Slack ended waits to hear whether a reader's Stop ended it.
const STOP_NOTICE_WAIT: Duration = Duration::from_secs(1);
/// How often, at most, the store learns how much of a reply was written.
const MARK_INTERVAL: Duration = Duration::from_secs(2);

/// One Slack message of an edited reply, and what it shows now.
#[derive(Debug, Clone)]
struct Page {
    ts: Option<MessageTs>,
    shown: Option<Message>,
}

/// One streamed message of a reply, and what of the reply it holds.
#[derive(Debug)]
struct Streamed {
    ts: MessageTs,
    started: Instant,
    /// The inert text Slack took into this message.
    shown: String,
    shown_chars: usize,
    /// Its tasks, as last sent or about to be.
    tasks: Vec<Task>,
    /// Indexes of the tasks whose state Slack has not seen yet.
    changed: Vec<usize>,
    /// The number of the next task: counted over the whole reply, so that a task carried
    /// into a new message never shares its id with a later one.
    next_task: usize,
}

impl Streamed {
    fn new(ts: MessageTs, next_task: usize) -> Self {
        Self {
            ts,
            started: Instant::now(),
            shown: String::new(),
            shown_chars: 0,
            tasks: Vec::new(),
            changed: Vec::new(),
            next_task,
        }
    }

    /// The task changes Slack has not seen.
    fn task_changes(&self) -> Vec<Task> {
        self.changed.iter().filter_map(|&i| self.tasks.get(i).cloned()).collect()
    }

    /// The agent says what it is doing now: a new line finishes the running task and starts
    /// one for itself.
    fn observe(&mut self, status: &str) {
        let status = status.trim();
        if status.is_empty() || self.tasks.last().is_some_and(|t| t.title == status) {
            return;
        }
        self.settle(TaskState::Complete);
        self.next_task += 1;
        self.tasks.push(Task {
            id: format!("t{}", self.next_task),
            title: status.to_owned(),
            state: TaskState::InProgress,
        });
        self.changed.push(self.tasks.len() - 1);
    }

    /// The running task, if any, ends as `state`.
    fn settle(&mut self, state: TaskState) {
        if let Some(last) = self.tasks.last_mut()
            && last.state == TaskState::InProgress
        {
            last.state = state;
            let index = self.tasks.len() - 1;
            if !self.changed.contains(&index) {
                self.changed.push(index);
            }
        }
    }

    /// Whether this message should not take more: full, or old enough that Slack may end it.
    fn spent(&self) -> bool {
        self.shown_chars >= STREAM_MESSAGE_CHARS || self.started.elapsed() >= STREAM_LIFETIME
    }
}

/// A natively streamed reply: its current message, and text not yet in Slack.
#[derive(Debug)]
struct Native {
    current: Streamed,
    /// Inert text made from the agent's deltas that Slack has not taken yet.
    pending: String,
    inert: Inert,
    /// Characters of the reply written to Slack, across its messages.
    written: usize,
    /// The messages this reply finished before the current one.
    earlier: usize,
}

/// How a reply is shown.
#[derive(Debug)]
enum Surface {
    Edits(Vec<Page>),
    Native(Native),
}

/// What a progress update found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shown {
    /// Shown, or to be tried again with the next update.
    Going,
    /// A reader stopped the streamed reply in Slack: nothing more of this turn is shown.
    Stopped(Stopped),
}

/// A reader stopped a streamed reply in Slack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stopped {
    /// Who, when Slack said (`agent_session_stopped`).
    pub(super) by: Option<UserId>,
}

/// The newest state of a reply, ready for its surface.
enum Update {
    /// Every message of an edited reply, and the latest status line.
    Pages(Vec<Message>, Option<String>),
    /// New text and the status lines since the last update of a streamed one.
    Delta { text: String, statuses: Vec<String> },
}

/// The Slack side of a reply: the messages it occupies.
pub(super) struct Writer {
    slack: SlackApi,
    thread: ThreadKey,
    agent: String,
    /// Whose message started the turn: a streamed reply is addressed to them.
    recipient: UserId,
    surface: Surface,
    /// Where the reply is recorded for a take-over, and where Stops are noted.
    store: Store,
    /// The inbox item of the turn, whose reply is recorded.
    item: Option<Arc<str>>,
    marked_at: Option<Instant>,
    /// In a direct message (an assistant thread): the thread's status shows the agent
    /// working, until Slack refuses it.
    status: Option<ThreadStatus>,
    /// The reply's final state reached Slack (a streamed message was stopped).
    closed: bool,
}

/// The status line of a direct message's thread (`assistant.threads.setStatus`).
#[derive(Debug, Default)]
struct ThreadStatus {
    /// The agent's line shown now.
    shown: Option<String>,
    /// Slack refused the method for this token or app: not asked again this reply.
    refused: bool,
}

impl Writer {
    /// A writer for a reply in `thread` by `agent` to `recipient`'s message, recording in
    /// `store` where the reply of the inbox item `item` is shown.
    pub(super) fn new(
        slack: SlackApi,
        thread: ThreadKey,
        agent: String,
        recipient: UserId,
        store: Store,
        item: Option<Arc<str>>,
    ) -> Self {
        let status = thread.channel.as_str().starts_with('D').then(ThreadStatus::default);
        Self {
            slack,
            thread,
            agent,
            recipient,
            surface: Surface::Edits(Vec::new()),
            store,
            item,
            marked_at: None,
            status,
            closed: false,
        }
    }

    /// Shows the agent working in a direct message's thread, with its latest status line
    /// (`line`) as the loading message; `None` with `done` clears it. Only a changed line is
    /// sent, and a refusal ends it for this reply: the status only decorates.
    async fn show_status(&mut self, line: Option<&str>, done: bool) {
        let Some(status) = &mut self.status else { return };
        if status.refused || (!done && status.shown.as_deref() == line && status.shown.is_some()) {
            return;
        }
        let (text, loading): (&str, Vec<String>) = if done {
            ("", Vec::new())
        } else {
            ("is working…", line.map(|l| vec![l.to_owned()]).unwrap_or_default())
        };
        status.shown = if done { None } else { Some(line.unwrap_or_default().to_owned()) };
        if let Err(err) = self.slack.set_status(&self.thread.channel, &self.thread.thread_ts, text, &loading).await {
            tracing::debug!(thread = %self.thread, code = err.code(), "could not set the thread's status");
            if matches!(err, SlackError::Api { .. }) {
                status.refused = true;
            }
        }
    }

    /// Shows that the agent is working: starts a streamed message, or, where Slack does not
    /// stream (or its stream starts are spent), posts the placeholder.
    pub(super) async fn start(&mut self) {
        self.show_status(None, false).await;
        let team = &self.thread.team;
        if self.slack.streams_in(team, &self.thread.channel) {
            let started = self
                .slack
                .start_stream(
                    team,
                    &self.thread.channel,
                    &self.thread.thread_ts,
                    &self.recipient,
                    &StreamPart::default(),
                )
                .await;
            match started {
                Ok(Some(ts)) => {
                    let current = Streamed::new(ts, 0);
                    self.surface = Surface::Native(Native {
                        current,
                        pending: String::new(),
                        inert: Inert::default(),
                        written: 0,
                        earlier: 0,
                    });
                    self.mark(true).await;
                    return;
                }
                Ok(None) => {
                    tracing::debug!(thread = %self.thread, "no stream start left in the budget; this reply is edited")
                }
                Err(err) if err.refuses_streaming() => self.slack.streaming_refused(team, &self.thread.channel, &err),
                Err(err) => {
                    tracing::warn!(thread = %self.thread, code = err.code(), "could not start a streamed reply; this reply is edited")
                }
            }
        }
        let view = ReplyView { agent: &self.agent, markdown: "", status: None, state: ReplyState::Streaming };
        let pages = blocks::reply(&view).messages;
        let _ = self.show_pages(pages, false).await;
        self.mark(true).await;
    }

    /// The budget this reply's progress updates draw from, and their least interval.
    fn pace(&self) -> (Progress, Duration) {
        match self.surface {
            Surface::Edits(_) => (Progress::Edit, EDIT_INTERVAL),
            Surface::Native(_) => (Progress::Append, APPEND_INTERVAL),
        }
    }

    /// The newest state for this surface: all pages for edits, the text not yet handed
    /// over (`unsent`, emptied) for a stream.
    fn update(&self, markdown: &str, unsent: &mut String, statuses: &mut Vec<String>, status: Option<&str>) -> Update {
        match self.surface {
            Surface::Edits(_) => {
                unsent.clear();
                statuses.clear();
                let view = ReplyView { agent: &self.agent, markdown, status, state: ReplyState::Streaming };
                Update::Pages(blocks::reply(&view).messages, status.map(str::to_owned))
            }
            Surface::Native(_) => Update::Delta { text: std::mem::take(unsent), statuses: std::mem::take(statuses) },
        }
    }

    /// Records where the reply is shown: at once when `now`, else at most every
    /// [`MARK_INTERVAL`]. A failure only weakens what a take-over can do, so it is logged.
    async fn mark(&mut self, now: bool) {
        let Some(item) = &self.item else { return };
        if !now && self.marked_at.is_some_and(|at| at.elapsed() < MARK_INTERVAL) {
            return;
        }
        let mark = match &self.surface {
            Surface::Native(native) => ReplyMark {
                channel: self.thread.channel.clone(),
                ts: native.current.ts.clone(),
                streamed: true,
                written: native.written,
            },
            Surface::Edits(pages) => {
                let Some(ts) = pages.iter().rev().find_map(|p| p.ts.clone()) else { return };
                ReplyMark { channel: self.thread.channel.clone(), ts, streamed: false, written: 0 }
            }
        };
        self.marked_at = Some(Instant::now());
        if let Err(err) = self.store.mark_reply(item, &mark).await {
            tracing::warn!(error = %err, "could not record where a reply is shown");
        }
    }

    /// Makes Slack show `messages`: edits pages whose content changed, posts new ones. With
    /// `drawn`, the first edit uses the call [`SlackApi::progress_turn`] drew. Returns the
    /// last failure, if a page could not be shown.
    async fn show_pages(&mut self, messages: Vec<Message>, mut drawn: bool) -> Result<(), SlackError> {
        let Surface::Edits(pages) = &mut self.surface else { return Ok(()) };
        let mut failure = Ok(());
        for (i, message) in messages.into_iter().enumerate() {
            if pages.len() <= i {
                pages.push(Page { ts: None, shown: None });
            }
            let page = &mut pages[i];
            if page.shown.as_ref() == Some(&message) {
                continue;
            }
            let (team, channel) = (&self.thread.team, &self.thread.channel);
            let result = match &page.ts {
                Some(ts) if drawn => {
                    drawn = false;
                    self.slack.update_drawn(team, channel, ts, &message).await
                }
                Some(ts) => self.slack.update(team, channel, ts, &message).await,
                None => match self.slack.post(channel, Some(&self.thread.thread_ts), &message).await {
                    Ok(ts) => {
                        page.ts = Some(ts);
                        Ok(())
                    }
                    Err(err) => Err(err),
                },
            };
            match result {
                Ok(()) => page.shown = Some(message),
                // The next edit retries with newer content; the final one is retried.
                Err(err) => {
                    tracing::warn!(thread = %self.thread, code = err.code(), "could not show the reply");
                    failure = Err(err);
                }
            }
        }
        failure
    }

    /// Shows pages in their final state, trying again while Slack's trouble is passing
    /// (rate limits, timeouts, connection failures): the end of a reply is what people read.
    async fn show_final(&mut self, messages: Vec<Message>) {
        let mut pause = FINAL_RETRY_PAUSE;
        for _ in 0..FINAL_RETRIES {
            match self.show_pages(messages.clone(), false).await {
                Err(err) if passing(&err) => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                _ => return,
            }
        }
        let _ = self.show_pages(messages, false).await;
    }

    /// Shows progress with the call its turn drew; the writer back, and whether a reader
    /// stopped the reply.
    async fn show_progress(mut self, update: Update) -> (Self, Shown) {
        let line = match &update {
            Update::Delta { statuses, .. } => statuses.last().cloned(),
            Update::Pages(_, line) => line.clone(),
        };
        if let Some(line) = &line {
            self.show_status(Some(line), false).await;
        }
        let shown = match update {
            Update::Pages(pages, _) => {
                let _ = self.show_pages(pages, true).await;
                Shown::Going
            }
            Update::Delta { text, statuses } => {
                if let Surface::Native(native) = &mut self.surface {
                    let inert = native.inert.push(&text);
                    native.pending.push_str(&inert);
                    for status in &statuses {
                        native.current.observe(status);
                    }
                }
                self.stream_out(true, false).await
            }
        };
        self.mark(false).await;
        (self, shown)
    }

    /// Streams what is pending (text and task changes): appends what fits in the current
    /// message, and goes on in a new message when Slack ended the stream or the message is
    /// spent. `drawn`: the first append's call was drawn already. `last`: this is the end of
    /// the reply, so failures that pass are waited out rather than left for the next update.
    async fn stream_out(&mut self, mut drawn: bool, last: bool) -> Shown {
        let mut pause = FINAL_RETRY_PAUSE;
        let mut tries = 0;
        loop {
            let Surface::Native(native) = &mut self.surface else { return Shown::Going };
            if native.pending.is_empty() && native.current.changed.is_empty() {
                return Shown::Going;
            }
            if native.current.spent() {
                if let Err(err) = self.continue_stream(false).await {
                    return self.stream_failed(&err).await;
                }
                continue;
            }
            let Surface::Native(native) = &mut self.surface else { return Shown::Going };
            let room = STREAM_MESSAGE_CHARS - native.current.shown_chars;
            let text = take_chars(&native.pending, room);
            let part = StreamPart { markdown: text.to_owned(), tasks: native.current.task_changes() };
            let ts = native.current.ts.clone();
            if !drawn {
                self.slack.progress_turn(Progress::Append, &self.thread.team).await;
            }
            drawn = false;
            match self.slack.append_stream(&self.thread.team, &self.thread.channel, &ts, &part).await {
                Ok(()) => {
                    let Surface::Native(native) = &mut self.surface else { return Shown::Going };
                    let chars = part.markdown.chars().count();
                    native.current.shown.push_str(&part.markdown);
                    native.current.shown_chars += chars;
                    native.written += chars;
                    native.pending.drain(..part.markdown.len());
                    native.current.changed.clear();
                }
                Err(err) if err.stopped_by_user() => return Shown::Stopped(self.stopped_by(&ts).await),
                Err(err) if err.message_full() => {
                    // Slack counts differently than we do: the message is full, so it is
                    // finished and the text goes on in a new one.
                    if let Surface::Native(native) = &mut self.surface {
                        native.current.shown_chars = STREAM_MESSAGE_CHARS;
                    }
                }
                Err(err) if err.ended_stream() => {
                    if let Some(by) = self.stopped_here(&ts).await {
                        return Shown::Stopped(by);
                    }
                    tracing::info!(thread = %self.thread, code = err.code(), "Slack ended a streamed reply; it goes on in a new message");
                    if let Err(err) = self.continue_stream(true).await {
                        return self.stream_failed(&err).await;
                    }
                }
                Err(err) if last && passing(&err) && tries < FINAL_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                // Kept pending: the next update sends it with whatever came since.
                Err(_) => return Shown::Going,
            }
        }
    }

    /// A streamed reply could not go on: a stopped stream shows what it took, and the
    /// turn's end says the reply was cut.
    async fn stream_failed(&self, err: &SlackError) -> Shown {
        if err.stopped_by_user() {
            let ts = self.current_ts();
            return Shown::Stopped(self.stopped_by(&ts).await);
        }
        tracing::warn!(thread = %self.thread, code = err.code(), "could not continue a streamed reply in a new message");
        Shown::Going
    }

    /// The streamed message showing the reply now.
    fn current_ts(&self) -> MessageTs {
        match &self.surface {
            Surface::Native(native) => native.current.ts.clone(),
            Surface::Edits(_) => self.thread.thread_ts.clone(),
        }
    }

    /// Whether a reader stopped `ts` (Slack then ends the stream too, and says who with an
    /// `agent_session_stopped` event that may come a moment after): `Some(who)` if so.
    async fn stopped_here(&self, ts: &MessageTs) -> Option<Stopped> {
        let deadline = Instant::now() + STOP_NOTICE_WAIT;
        loop {
            match self.store.stream_stopped_by(&self.thread.channel, ts).await {
                Ok(Some(by)) => return Some(Stopped { by }),
                Ok(None) if Instant::now() < deadline => tokio::time::sleep(STOP_NOTICE_WAIT / 5).await,
                Ok(None) => return None,
                Err(err) => {
                    tracing::debug!(error = %err, "could not read whether a reader stopped a stream");
                    return None;
                }
            }
        }
    }

    /// Who stopped `ts`, as far as the store heard in a moment.
    async fn stopped_by(&self, ts: &MessageTs) -> Stopped {
        self.stopped_here(ts).await.unwrap_or(Stopped { by: None })
    }

    /// Finishes the current streamed message and starts the next one, which takes the
    /// running task and as much pending text as fits. `ended`: Slack ended the stream
    /// already, so the message is finished with an edit of exactly the text it took.
    async fn continue_stream(&mut self, ended: bool) -> Result<(), SlackError> {
        let Surface::Native(native) = &mut self.surface else { return Ok(()) };
        let (team, channel) = (&self.thread.team, &self.thread.channel);
        let old_ts = native.current.ts.clone();
        let shown = native.current.shown.clone();
        // The step running now goes on in the next message.
        let running: Vec<Task> =
            native.current.tasks.iter().filter(|t| t.state == TaskState::InProgress).cloned().collect();
        let mut finished = ended;
        if !ended {
            let below = blocks::continued_below();
            native.current.settle(TaskState::Complete);
            let part = StreamPart { markdown: String::new(), tasks: native.current.task_changes() };
            match self.slack.stop_stream(team, channel, &old_ts, &part, &below).await {
                Ok(()) => {}
                Err(err) if err.ended_stream() => finished = true,
                Err(err) if err.stopped_by_user() => return Err(err),
                Err(err) => {
                    tracing::warn!(thread = %self.thread, code = err.code(), "could not finish a full streamed message")
                }
            }
        }
        if finished && let Err(err) = self.slack.finish_stopped_stream(team, channel, &old_ts, &shown).await {
            tracing::warn!(thread = %self.thread, code = err.code(), "could not finish a message Slack stopped streaming");
        }
        // Text goes in appends, never in the start: a start that timed out may have made a
        // message after all, and text in it would then show twice.
        let part = StreamPart { markdown: String::new(), tasks: running.clone() };
        let mut pause = FINAL_RETRY_PAUSE;
        let mut tries = 0;
        let ts = loop {
            let started = self.slack.start_stream(team, channel, &self.thread.thread_ts, &self.recipient, &part).await;
            match started {
                Ok(Some(ts)) => break ts,
                // Out of stream starts: this one must happen, so it waits a while for one.
                Ok(None) if tries < 4 * FINAL_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(FINAL_RETRY_PAUSE).await;
                }
                Ok(None) => return Err(SlackError::RateLimited { method: "chat.startStream", retry_after: None }),
                Err(err) if passing(&err) && tries < FINAL_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(err) => return Err(err),
            }
        };
        let Surface::Native(native) = &mut self.surface else { return Ok(()) };
        native.earlier += 1;
        native.current = Streamed::new(ts, native.current.next_task);
        native.current.tasks = running;
        self.mark(true).await;
        Ok(())
    }

    /// Replaces the reply with a notice (the send failed before any reply).
    pub(super) async fn replace(mut self, notice: Message) {
        match &self.surface {
            Surface::Native(native) => {
                let (team, channel, ts) = (&self.thread.team, &self.thread.channel, &native.current.ts);
                let stopped = self.slack.stop_stream(team, channel, ts, &StreamPart::default(), &notice.blocks).await;
                if let Err(err) = stopped {
                    tracing::warn!(thread = %self.thread, code = err.code(), "could not finish a streamed reply; posting the notice");
                    if let Err(err) = self.slack.post(channel, Some(&self.thread.thread_ts), &notice).await {
                        tracing::warn!(thread = %self.thread, code = err.code(), "could not post a notice");
                    }
                }
            }
            Surface::Edits(_) => self.show_final(vec![notice]).await,
        }
    }

    /// Renders the final state (attaching a text too long for Slack's messages as a file;
    /// a streamed reply goes on in new messages instead). `unsent`: text the progress
    /// updates did not hand over yet. Returns whether the final state reached Slack: when
    /// it did not (a shutdown's hurry), a streamed message may still be streaming, and a
    /// replica taking the turn over finishes it.
    pub(super) async fn finish(mut self, markdown: &str, unsent: &str, error: Option<&str>, hurry: bool) -> bool {
        let state = match error {
            Some(reason) => ReplyState::Interrupted(reason.to_owned()),
            None => ReplyState::Done,
        };
        self.show_status(None, true).await;
        // A whole reply can be rated; an interrupted one is not the agent's answer.
        let rated = error.is_none() && !markdown.trim().is_empty();
        if let Surface::Native(_) = self.surface {
            let finish = self.finish_stream(unsent, &state, rated);
            if !hurry {
                finish.await;
            } else if tokio::time::timeout(FINAL_EDIT_AT_SHUTDOWN, finish).await.is_err() {
                tracing::warn!(thread = %self.thread, "the end of a streamed reply did not go out before shutdown");
            }
            return self.closed;
        }
        let view = ReplyView { agent: &self.agent, markdown, status: None, state };
        let mut pages = blocks::reply(&view);
        if rated && let Some(last) = pages.messages.last_mut() {
            last.blocks.push(blocks::feedback());
        }
        let mut closed = true;
        if hurry {
            if tokio::time::timeout(FINAL_EDIT_AT_SHUTDOWN, self.show_pages(pages.messages, false)).await.is_err() {
                tracing::warn!(thread = %self.thread, "the final edit of a reply did not finish before shutdown");
                closed = false;
            }
        } else {
            self.show_final(pages.messages).await;
        }
        if pages.truncated
            && let Err(err) =
                self.slack.upload(&self.thread.channel, &self.thread.thread_ts, &blocks::reply_file(markdown)).await
        {
            tracing::warn!(thread = %self.thread, code = err.code(), "could not attach the full reply");
        }
        closed
    }

    /// Streams the rest of the text, then stops the stream with the tasks settled and the
    /// reply's closing note at the bottom.
    async fn finish_stream(&mut self, unsent: &str, state: &ReplyState, rated: bool) {
        if let Surface::Native(native) = &mut self.surface {
            let mut rest = native.inert.push(unsent);
            rest.push_str(&native.inert.finish());
            native.pending.push_str(&rest);
        }
        if let Shown::Stopped(_) = self.stream_out(false, true).await {
            return;
        }
        let Surface::Native(native) = &mut self.surface else { return };
        native.current.settle(if matches!(state, ReplyState::Interrupted(_)) {
            TaskState::Error
        } else {
            TaskState::Complete
        });
        let wrote = native.written > 0;
        let mut ending = blocks::stream_ending(&self.agent, state, wrote);
        if rated {
            ending.push(blocks::feedback());
        }
        // Text the appends could not deliver goes with the stop, so none is left behind.
        let room = STREAM_MESSAGE_CHARS.saturating_sub(native.current.shown_chars);
        let rest = take_chars(&native.pending, room).to_owned();
        if rest.len() < native.pending.len() {
            tracing::warn!(thread = %self.thread, "the end of a streamed reply could not be shown in full");
        }
        let part = StreamPart { markdown: rest, tasks: native.current.task_changes() };
        let (team, channel, ts) = (&self.thread.team, &self.thread.channel, native.current.ts.clone());
        let shown = format!("{}{}", native.current.shown, part.markdown);
        let mut pause = FINAL_RETRY_PAUSE;
        let mut extras = true;
        for _ in 0..=FINAL_RETRIES {
            let blocks: &[serde_json::Value] = if extras { &ending } else { &[] };
            match self.slack.stop_stream(team, channel, &ts, &part, blocks).await {
                Ok(()) => {
                    self.closed = true;
                    return;
                }
                Err(err) if passing(&err) => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                // A stop Slack refuses for its blocks would leave the message streaming for
                // good: it goes again without them.
                Err(SlackError::Api { .. }) if extras && !ending.is_empty() => extras = false,
                Err(err) if err.ended_stream() => {
                    if let Err(err) = self.slack.finish_stopped_stream(team, channel, &ts, &shown).await {
                        tracing::warn!(thread = %self.thread, code = err.code(), "could not finish a message Slack stopped streaming");
                    }
                    self.closed = true;
                    if !ending.is_empty() {
                        let note = blocks::ending_note(&self.agent, ending);
                        let _ = self.slack.post(channel, Some(&self.thread.thread_ts), &note).await;
                    }
                    return;
                }
                _ => return,
            }
        }
    }
}

/// Finishes a reply that a replica which stopped left behind: a streamed message is stopped
/// with the interrupted note at its bottom, so it never stays "streaming" (Slack keeps what
/// it took). A placeholder is left as it is; the thread's note says what happened.
pub(super) async fn close_left_behind(slack: &SlackApi, team: &crate::ids::TeamId, agent: &str, mark: &ReplyMark) {
    if !mark.streamed {
        return;
    }
    let state = ReplyState::Interrupted(notices::bridge_restarting());
    let ending = blocks::stream_ending(agent, &state, mark.written > 0);
    match slack.stop_stream(team, &mark.channel, &mark.ts, &StreamPart::default(), &ending).await {
        Ok(()) => tracing::info!(ts = %mark.ts, "finished a streamed reply left behind by a stopped replica"),
        // Slack ended it already: it is not streaming any more.
        Err(err) if err.ended_stream() => {}
        Err(err) => tracing::warn!(ts = %mark.ts, code = err.code(), "could not finish a streamed reply left behind"),
    }
}

/// Trouble that passes: worth waiting out for the final state of a reply.
fn passing(err: &SlackError) -> bool {
    matches!(err, SlackError::RateLimited { .. } | SlackError::Timeout { .. } | SlackError::Transport { .. })
}

/// The longest start of `text` with at most `chars` characters, cut between characters.
fn take_chars(text: &str, chars: usize) -> &str {
    match text.char_indices().nth(chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// What a turn produced besides its text.
pub(super) struct Outcome {
    /// The writer, for the final edit.
    pub(super) writer: Writer,
    /// The reply text.
    pub(super) markdown: String,
    /// Text the progress updates did not hand to the writer yet.
    pub(super) unsent: String,
    /// Why the reply ended early, if it did: a broken stream, an agent error, or a cap
    /// the turn passed (then the cap's note).
    pub(super) error: Option<String>,
    /// Commands the agent ran.
    pub(super) executed: Vec<ExecutedCommand>,
    /// Links it offered.
    pub(super) links: Vec<Link>,
    /// Commands it proposed; none when they passed a cap (`error` then says so).
    pub(super) proposed: Vec<ProposedCommand>,
    /// The turn ended at a cap: asking the agent again would end the same way.
    pub(super) capped: bool,
    /// A reader stopped the reply in Slack: nothing more of the turn is shown.
    pub(super) stopped: Option<Stopped>,
}

/// The step a reply's progress update is at.
enum Step {
    /// Waiting for its turn at the workspace's budget.
    Turn(BoxFuture<'static, ()>),
    /// Being shown, with the writer.
    Show(BoxFuture<'static, (Writer, Shown)>),
}

/// Reads the agent's events to the end, keeping Slack up to date as text arrives.
pub(super) async fn stream(writer: Writer, mut events: ReplyStream, abort: &CancellationToken) -> Outcome {
    let agent = writer.agent.clone();
    let mut markdown = String::new();
    let mut unsent = String::new();
    let mut status: Option<String> = None;
    // Every status line since the last update: each is a step of a streamed reply.
    let mut statuses: Vec<String> = Vec::new();
    let mut error = None;
    let mut executed = Vec::new();
    let mut links = Vec::new();
    let mut proposed = Vec::new();
    let mut budget = TurnBudget::new();
    let mut capped = false;
    let mut stopped = None;

    let mut idle = Some(writer);
    let mut step: Option<Step> = None;
    let mut dirty = false;
    let mut ended = false;
    // The first text may show at once; starting the reply was not an update.
    let mut next_update = Instant::now();

    loop {
        if ended && !matches!(step, Some(Step::Show(_))) {
            break;
        }
        tokio::select! {
            () = abort.cancelled(), if !ended => {
                error = Some(notices::bridge_restarting());
                ended = true;
            }
            done = async {
                match step.as_mut() {
                    Some(Step::Turn(turn)) => {
                        turn.await;
                        None
                    }
                    Some(Step::Show(show)) => Some(show.await),
                    None => std::future::pending().await,
                }
            }, if step.is_some() => match done {
                None => {
                    let writer = idle.take().unwrap_or_else(|| unreachable!("a turn is taken only by an idle writer"));
                    let update = writer.update(&markdown, &mut unsent, &mut statuses, status.as_deref());
                    step = Some(Step::Show(Box::pin(writer.show_progress(update))));
                    dirty = false;
                }
                Some((writer, shown)) => {
                    next_update = Instant::now() + writer.pace().1;
                    idle = Some(writer);
                    step = None;
                    if let Shown::Stopped(stop) = shown {
                        stopped = Some(stop);
                        ended = true;
                    }
                }
            },
            event = events.next(), if !ended => match event {
                Some(Ok(event)) => {
                    let Admitted { event, exceeded } = budget.admit(event);
                    match event {
                        Some(AgentEvent::TextDelta(text)) => {
                            markdown.push_str(&text);
                            unsent.push_str(&text);
                            dirty = true;
                        }
                        Some(AgentEvent::Status(line)) => {
                            statuses.push(line.clone());
                            status = Some(line);
                            dirty = true;
                        }
                        Some(AgentEvent::Executed(ran)) => executed.extend(ran),
                        Some(AgentEvent::Links(offered)) => links.extend(offered),
                        Some(AgentEvent::Proposed(commands)) => proposed.extend(commands),
                        Some(AgentEvent::Done { .. }) => ended = true,
                        Some(AgentEvent::Error(message)) => {
                            error = Some(notices::agent_reported(&message));
                            ended = true;
                        }
                        None => {}
                    }
                    if let Some(exceeded) = exceeded {
                        tracing::warn!(agent = %agent, cap = %exceeded, "an agent turn passed a cap and was ended");
                        if matches!(exceeded, Exceeded::Proposals(_)) {
                            // Part of a proposal set is not what the agent proposed.
                            proposed.clear();
                        }
                        error = Some(exceeded.to_string());
                        capped = true;
                        ended = true;
                    }
                }
                None => ended = true,
                Some(Err(err)) => {
                    capped = matches!(err, crate::helpdesk::HelpdeskError::Oversized(_));
                    error = Some(err.to_string());
                    ended = true;
                }
            },
            () = tokio::time::sleep_until(next_update), if dirty && !ended && step.is_none() => {
                let Some(writer) = idle.as_ref() else { continue };
                let (kind, _) = writer.pace();
                let (slack, team) = (writer.slack.clone(), writer.thread.team.clone());
                step = Some(Step::Turn(Box::pin(async move { slack.progress_turn(kind, &team).await })));
            }
        }
    }
    let writer = idle.unwrap_or_else(|| unreachable!("the loop ends only with no update in flight"));
    if !abort.is_cancelled() && stopped.is_none() {
        // The final update keeps the per-message pace too.
        tokio::time::sleep_until(next_update).await;
    }
    Outcome { writer, markdown, unsent, error, executed, links, proposed, capped, stopped }
}

/// After the reply: what the agent ran and its links. Whatever the messages had to cut
/// is attached whole: a cut output as `output.txt`, a cut command as `command.txt` (the
/// whole command, then its output), links that did not fit as `links.txt`.
pub(super) async fn follow_up(slack: &SlackApi, thread: &ThreadKey, executed: &[ExecutedCommand], links: &[Link]) {
    if !executed.is_empty() {
        let views: Vec<ExecutedView<'_>> =
            executed.iter().map(|c| ExecutedView { command: &c.command, output: &c.output }).collect();
        let (messages, shortened) = blocks::executed(&views);
        for message in &messages {
            if let Err(err) = slack.post(&thread.channel, Some(&thread.thread_ts), message).await {
                tracing::warn!(thread = %thread, code = err.code(), "could not post the executed commands");
            }
        }
        for (command, shortened) in executed.iter().zip(shortened) {
            let Some(file) = blocks::executed_file(&command.command, &command.output, &shortened) else { continue };
            if let Err(err) = slack.upload(&thread.channel, &thread.thread_ts, &file).await {
                tracing::warn!(thread = %thread, code = err.code(), "could not attach a command's output");
            }
        }
    }
    if !links.is_empty() {
        let pairs: Vec<(String, String)> = links.iter().map(|l| (l.url.clone(), l.description.clone())).collect();
        let (message, left_out) = blocks::links(&pairs);
        if let Err(err) = slack.post(&thread.channel, Some(&thread.thread_ts), &message).await {
            tracing::warn!(thread = %thread, code = err.code(), "could not post the agent's links");
        }
        if left_out
            && let Err(err) = slack.upload(&thread.channel, &thread.thread_ts, &blocks::links_file(&pairs)).await
        {
            tracing::warn!(thread = %thread, code = err.code(), "could not attach the agent's links");
        }
    }
}
