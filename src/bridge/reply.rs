//! A streaming reply: a small state machine per reply that keeps Slack showing the newest
//! text without breaking Slack's limits.
//!
//! The reply's messages are posted as soon as the turn starts and edited as text arrives.
//! Each message is edited at most about once a second; every edit also draws from the
//! workspace's `chat.update` budget ([`crate::slack::pace`]), and when that budget is
//! contended, edits that only show progress give way to final ones. Text keeps arriving while an
//! edit is in flight or waiting for budget; the next edit then shows the newest text, so
//! intermediate states coalesce and stale ones are never queued. The final state is always
//! sent. Reading the HelpDesk's stream never waits on Slack.
//!
//! Every event of a turn passes the turn's [`TurnBudget`] first: a turn that passes a cap
//! (reply text, proposals, executed output, links) stops reading there and ends like an
//! interrupted reply, the cap's note as the reason; proposals past their cap leave the
//! turn with none, so no card is made from them.

use std::time::Duration;

use futures_util::{StreamExt, future::BoxFuture};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    helpdesk::{
        ReplyStream,
        events::{Admitted, AgentEvent, Exceeded, ExecutedCommand, Link, TurnBudget},
    },
    ids::{MessageTs, ThreadKey},
    model::ProposedCommand,
    slack::{
        api::{SlackApi, SlackError},
        blocks::{self, ExecutedView, ReplyState, ReplyView},
        kit::Message,
        notices,
    },
};

/// The least time between two edits of one message.
pub(super) const EDIT_INTERVAL: Duration = Duration::from_secs(1);
/// How long the final edit may take once shutdown asked replies to finish.
const FINAL_EDIT_AT_SHUTDOWN: Duration = Duration::from_secs(3);
/// How often the final state of a reply is tried again when Slack rate-limits, times out
/// or cannot be reached; the waits double from [`FINAL_RETRY_PAUSE`].
const FINAL_RETRIES: u32 = 4;
/// The first wait before the final state is tried again.
const FINAL_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// One Slack message of a reply, and what it shows now.
#[derive(Debug, Clone)]
struct Page {
    ts: Option<MessageTs>,
    shown: Option<Message>,
}

/// The Slack side of a reply: the messages it occupies.
pub(super) struct Writer {
    slack: SlackApi,
    thread: ThreadKey,
    agent: String,
    pages: Vec<Page>,
}

impl Writer {
    /// A writer for a reply in `thread` by `agent`.
    pub(super) fn new(slack: SlackApi, thread: ThreadKey, agent: String) -> Self {
        Self { slack, thread, agent, pages: Vec::new() }
    }

    /// Shows the reply placeholder (the agent's name and "working…").
    pub(super) async fn start(&mut self) {
        let view = ReplyView { agent: &self.agent, markdown: "", status: None, state: ReplyState::Streaming };
        let pages = blocks::reply(&view).messages;
        let _ = self.show(pages, false).await;
    }

    /// Makes Slack show `messages`: edits pages whose content changed, posts new ones.
    /// `progress` edits are not made while the workspace's edit budget is contended
    /// (`Ok(Some(wait))`: try again after `wait`), so the edits that finish something go
    /// first. Returns the last failure, if a page could not be shown.
    async fn show(&mut self, messages: Vec<Message>, progress: bool) -> Result<Option<Duration>, SlackError> {
        let mut failure = Ok(None);
        for (i, message) in messages.into_iter().enumerate() {
            if self.pages.len() <= i {
                self.pages.push(Page { ts: None, shown: None });
            }
            let page = &mut self.pages[i];
            if page.shown.as_ref() == Some(&message) {
                continue;
            }
            let result = match &page.ts {
                Some(ts) if progress => {
                    match self.slack.update_progress(&self.thread.team, &self.thread.channel, ts, &message).await {
                        Ok(Some(wait)) => return Ok(Some(wait)),
                        other => other.map(drop),
                    }
                }
                Some(ts) => self.slack.update(&self.thread.team, &self.thread.channel, ts, &message).await,
                None => match self.slack.post(&self.thread.channel, Some(&self.thread.thread_ts), &message).await {
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

    /// Shows the final state, trying again while Slack's trouble is passing (rate limits,
    /// timeouts, connection failures): the end of a reply is what people read.
    async fn show_final(&mut self, messages: Vec<Message>) {
        let mut pause = FINAL_RETRY_PAUSE;
        for _ in 0..FINAL_RETRIES {
            match self.show(messages.clone(), false).await {
                Err(SlackError::RateLimited { .. } | SlackError::Timeout { .. } | SlackError::Transport { .. }) => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                _ => return,
            }
        }
        let _ = self.show(messages, false).await;
    }

    /// Shows progress; the writer back, and how long to wait before trying again if the
    /// edit was deferred.
    async fn show_progress(mut self, messages: Vec<Message>) -> (Self, Option<Duration>) {
        let deferred = self.show(messages, true).await.ok().flatten();
        (self, deferred)
    }

    /// Replaces the reply with a notice (the send failed before any reply).
    pub(super) async fn replace(mut self, notice: Message) {
        self.show_final(vec![notice]).await;
    }

    /// Renders the final state. Returns whether the text was too long for Slack (the
    /// caller then attaches it as a file).
    pub(super) async fn finish(mut self, markdown: &str, error: Option<&str>, hurry: bool) -> bool {
        let state = match error {
            Some(reason) => ReplyState::Interrupted(reason.to_owned()),
            None => ReplyState::Done,
        };
        let view = ReplyView { agent: &self.agent, markdown, status: None, state };
        let pages = blocks::reply(&view);
        if hurry {
            if tokio::time::timeout(FINAL_EDIT_AT_SHUTDOWN, self.show(pages.messages, false)).await.is_err() {
                tracing::warn!(thread = %self.thread, "the final edit of a reply did not finish before shutdown");
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
        pages.truncated
    }
}

/// What a turn produced besides its text.
pub(super) struct Outcome {
    /// The writer, for the final edit.
    pub(super) writer: Writer,
    /// The reply text.
    pub(super) markdown: String,
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
}

/// Reads the agent's events to the end, keeping Slack up to date as text arrives.
pub(super) async fn stream(writer: Writer, mut events: ReplyStream, abort: &CancellationToken) -> Outcome {
    let agent = writer.agent.clone();
    let mut markdown = String::new();
    let mut status: Option<String> = None;
    let mut error = None;
    let mut executed = Vec::new();
    let mut links = Vec::new();
    let mut proposed = Vec::new();
    let mut budget = TurnBudget::new();
    let mut capped = false;

    let mut idle = Some(writer);
    let mut inflight: Option<BoxFuture<'static, (Writer, Option<Duration>)>> = None;
    let mut dirty = false;
    let mut ended = false;
    // The first text may show at once; the placeholder was not an edit.
    let mut next_edit = Instant::now();
    // The per-message pace, kept by the final edit too.
    let mut paced_until = Instant::now();

    loop {
        if ended && inflight.is_none() {
            break;
        }
        tokio::select! {
            () = abort.cancelled(), if !ended => {
                error = Some(notices::bridge_restarting());
                ended = true;
            }
            (writer, deferred) = async { inflight.as_mut().expect("guarded by the branch condition").await }, if inflight.is_some() => {
                idle = Some(writer);
                inflight = None;
                match deferred {
                    Some(wait) => {
                        // The newest text waits for the budget. An earlier page of a long
                        // reply may have been edited before the deferral, so the pace holds.
                        dirty = true;
                        paced_until = Instant::now() + EDIT_INTERVAL;
                        next_edit = Instant::now() + wait.max(EDIT_INTERVAL);
                    }
                    None => {
                        paced_until = Instant::now() + EDIT_INTERVAL;
                        next_edit = paced_until;
                    }
                }
            }
            event = events.next(), if !ended => match event {
                Some(Ok(event)) => {
                    let Admitted { event, exceeded } = budget.admit(event);
                    match event {
                        Some(AgentEvent::TextDelta(text)) => {
                            markdown.push_str(&text);
                            dirty = true;
                        }
                        Some(AgentEvent::Status(line)) => {
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
            () = tokio::time::sleep_until(next_edit), if dirty && !ended && inflight.is_none() && idle.is_some() => {
                let Some(writer) = idle.take() else { continue };
                let view = ReplyView { agent: &agent, markdown: &markdown, status: status.as_deref(), state: ReplyState::Streaming };
                let pages = blocks::reply(&view).messages;
                inflight = Some(Box::pin(writer.show_progress(pages)));
                dirty = false;
            }
        }
    }
    let writer = idle.unwrap_or_else(|| unreachable!("the loop ends only with no edit in flight"));
    if !abort.is_cancelled() {
        // The final edit keeps the per-message pace too.
        tokio::time::sleep_until(paced_until).await;
    }
    Outcome { writer, markdown, error, executed, links, proposed, capped }
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
