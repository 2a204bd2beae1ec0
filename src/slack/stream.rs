//! Slack's native streaming vocabulary: what a streamed reply is made of, and agent text
//! made safe for it, piece by piece.
//!
//! A streamed message (`chat.startStream` / `appendStream` / `stopStream`) takes Markdown
//! as the agent wrote it (`markdown_text` chunks) and tool steps as `task_update` chunks
//! shown in a timeline. Agent text reaches Slack as it arrives, so it is made inert as it
//! arrives too: [`Inert`] breaks every broadcast or mention (`@here`, `<!channel>`,
//! `<@U1>`) with an invisible word joiner, holding back at most the one character whose
//! meaning depends on the next. Whatever way the text is cut into deltas, the pieces join
//! into exactly what the whole text would give, so nothing is lost or repeated across
//! appends and streams.

use serde_json::{Value, json};

/// U+2060 WORD JOINER: invisible, and stops Slack from reading what follows as a mention.
const JOINER: char = '\u{2060}';
/// Characters of a task title Slack takes.
const TASK_TITLE_CHARS: usize = 256;
/// Characters one streamed message holds (`markdown_text` across all its chunks).
pub const STREAM_MESSAGE_CHARS: usize = 12_000;

/// Agent Markdown made inert for a streamed message, fed in deltas.
#[derive(Debug, Default, Clone)]
pub struct Inert {
    /// The last character given out, for the word-start rule.
    previous: Option<char>,
    /// A character held back until the next one shows what it is (`@` or `<`).
    held: Option<char>,
}

impl Inert {
    /// Makes `delta` inert, returning what may be shown now; a trailing `@` or `<` is held
    /// back for the next delta (or [`Inert::finish`]).
    pub fn push(&mut self, delta: &str) -> String {
        let mut out = String::with_capacity(delta.len() + 4);
        for c in delta.chars() {
            if let Some(held) = self.held.take() {
                self.emit(&mut out, held, Some(c));
            }
            if matches!(c, '@' | '<') {
                self.held = Some(c);
            } else {
                self.emit(&mut out, c, None);
            }
        }
        out
    }

    /// What is still held back, at the end of the text.
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        if let Some(held) = self.held.take() {
            self.emit(&mut out, held, None);
        }
        out
    }

    fn emit(&mut self, out: &mut String, c: char, next: Option<char>) {
        out.push(c);
        let breaks = match c {
            // `<!here>`, `<@U1>`, `<#C1>`, `<!subteam^S1>`: Slack's control sequences.
            '<' => next.is_some_and(|n| matches!(n, '!' | '@' | '#')),
            // A bare `@here` or `@name`; an address (`ops@example.com`) has a word before it.
            '@' => {
                self.previous.is_none_or(|p| !p.is_alphanumeric())
                    && next.is_some_and(|n| n.is_alphanumeric() || n == '_')
            }
            _ => false,
        };
        if breaks {
            out.push(JOINER);
        }
        self.previous = Some(c);
    }
}

/// Where a tool step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Running now.
    InProgress,
    /// Finished.
    Complete,
    /// The turn failed while it ran.
    Error,
}

impl TaskState {
    fn wire(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Complete => "complete",
            Self::Error => "error",
        }
    }
}

/// One tool step or reasoning line of the agent, shown as a task of the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Stable within the streamed message (`t1`, `t2`, …).
    pub id: String,
    /// What the agent said it is doing.
    pub title: String,
    /// Where it stands.
    pub state: TaskState,
}

/// What one stream call carries: text, then task updates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamPart {
    /// Inert Markdown to append.
    pub markdown: String,
    /// Tasks whose state changed.
    pub tasks: Vec<Task>,
}

impl StreamPart {
    /// Nothing to send.
    pub fn is_empty(&self) -> bool {
        self.markdown.is_empty() && self.tasks.is_empty()
    }

    /// The `chunks` array of a stream call: the text first, then each task update.
    pub fn chunks(&self) -> Vec<Value> {
        let mut chunks = Vec::with_capacity(self.tasks.len() + 1);
        if !self.markdown.is_empty() {
            chunks.push(json!({"type": "markdown_text", "text": self.markdown}));
        }
        for task in &self.tasks {
            chunks.push(json!({
                "type": "task_update",
                "id": task.id,
                "title": task_title(&task.title),
                "status": task.state.wire(),
            }));
        }
        chunks
    }
}

/// A task title within Slack's limit, cut between characters, without control sequences.
fn task_title(title: &str) -> String {
    let mut inert = Inert::default();
    let mut safe = inert.push(title.trim());
    safe.push_str(&inert.finish());
    if safe.chars().count() <= TASK_TITLE_CHARS {
        return if safe.is_empty() { "Working".to_owned() } else { safe };
    }
    let mut cut: String = safe.chars().take(TASK_TITLE_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn whole(text: &str) -> String {
        let mut inert = Inert::default();
        let mut out = inert.push(text);
        out.push_str(&inert.finish());
        out
    }

    #[test]
    fn broadcasts_and_mentions_cannot_ping() {
        let out = whole("hey @here and <!channel> and <@U123> and <#C1>, mail ops@example.com, a < b");
        assert!(!out.contains("@here"), "{out}");
        assert!(!out.contains("<!channel>"), "{out}");
        assert!(!out.contains("<@U123>"), "{out}");
        assert!(!out.contains("<#C1>"), "{out}");
        assert!(out.contains("ops@example.com"), "addresses stay whole: {out}");
        assert!(out.contains("a < b"), "{out}");
        assert_eq!(
            out.replace(JOINER, ""),
            "hey @here and <!channel> and <@U123> and <#C1>, mail ops@example.com, a < b"
        );
    }

    #[test]
    fn a_mention_split_across_deltas_is_still_broken() {
        let mut inert = Inert::default();
        let mut out = inert.push("ping <");
        assert_eq!(out, "ping ", "the `<` waits for what follows");
        out.push_str(&inert.push("!here> @"));
        out.push_str(&inert.push("channel"));
        out.push_str(&inert.finish());
        assert!(!out.contains("<!here>") && !out.contains("@channel"), "{out}");
    }

    #[test]
    fn task_updates_are_chunks_after_the_text() {
        let part = StreamPart {
            markdown: "Looking.".to_owned(),
            tasks: vec![Task {
                id: "t1".to_owned(),
                title: "Running tool: kubectl".to_owned(),
                state: TaskState::InProgress,
            }],
        };
        assert_eq!(
            Value::Array(part.chunks()),
            json!([
                {"type": "markdown_text", "text": "Looking."},
                {"type": "task_update", "id": "t1", "title": "Running tool: kubectl", "status": "in_progress"},
            ])
        );
        let long = "é".repeat(400);
        assert_eq!(task_title(&long).chars().count(), TASK_TITLE_CHARS);
    }

    proptest! {
        /// However the text is cut into deltas, the pieces join into the whole text's
        /// rendering: nothing lost, nothing repeated.
        #[test]
        fn deltas_join_into_the_whole(text in "[a-z@<!# ]{0,60}", cuts in proptest::collection::vec(0usize..60, 0..6)) {
            let chars: Vec<char> = text.chars().collect();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(chars.len())).collect();
            cuts.sort_unstable();
            let mut inert = Inert::default();
            let mut out = String::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([chars.len()]) {
                let piece: String = chars[start..cut.max(start)].iter().collect();
                out.push_str(&inert.push(&piece));
                start = cut.max(start);
            }
            out.push_str(&inert.finish());
            prop_assert_eq!(&out, &whole(&text));
            prop_assert_eq!(out.replace(JOINER, ""), text);
        }
    }
}
