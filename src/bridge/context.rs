//! Thread context: when a ticket opens from a mention inside a thread that is not yet a
//! ticket, the agent reads the conversation that led to it. The thread's earlier messages
//! by people (not bots, not the bridge) go with the first message, newest kept within
//! [`CONTEXT_MESSAGES`] and [`CONTEXT_BYTES`], each with its author's display name and
//! time; a channel can turn this off (`/helpdesk config context off`).

use std::collections::HashMap;

use futures_util::future::join_all;

use super::Bridge;
use crate::{
    ids::{MessageTs, TeamId, ThreadKey, UserId},
    inbound::UserMessage,
    model::ChannelRef,
    slack::{api::SlackError, notices},
};

/// Earlier messages a ticket opened mid-thread takes along, at most (the newest).
pub const CONTEXT_MESSAGES: usize = 50;
/// Bytes of them, at most (the newest that fit).
pub const CONTEXT_BYTES: usize = 20 * 1024;

/// A message's ts as (seconds, fraction), to order and date it.
fn ts_key(ts: &MessageTs) -> (i64, u64) {
    let (seconds, fraction) = ts.as_str().split_once('.').unwrap_or((ts.as_str(), "0"));
    (seconds.parse().unwrap_or(0), fraction.parse().unwrap_or(0))
}

/// One earlier message: who (display name), when (Unix seconds), what (plain text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Earlier {
    pub(super) name: String,
    pub(super) at: i64,
    pub(super) text: String,
}

/// `text` cut to at most `max` bytes, at a character boundary, with `…` when cut.
fn cut_to_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let room = max.saturating_sub('…'.len_utf8());
    format!("{}…", crate::helpdesk::limits::cut(text, room))
}

/// The context block that follows the first message: the newest messages that fit the
/// caps, oldest first; `None` when there are none.
pub(super) fn context_block(earlier: &[Earlier]) -> Option<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut bytes = 0;
    for message in earlier.iter().rev().take(CONTEXT_MESSAGES) {
        let when = jiff::Timestamp::from_second(message.at)
            .map_or_else(|_| message.at.to_string(), |t| t.strftime("%Y-%m-%d %H:%M UTC").to_string());
        // A message's own line breaks are indented, so no text can pass for another message.
        let text = message.text.trim().replace('\n', "\n    ");
        let line = format!("[{when}] {}: {text}", message.name);
        let room = CONTEXT_BYTES.saturating_sub(bytes);
        if line.len() + 1 > room {
            // The newest message alone may be cut to fit; older ones that do not fit are left out.
            if lines.is_empty() {
                lines.push(cut_to_bytes(&line, room.saturating_sub(1)));
            }
            break;
        }
        bytes += line.len() + 1;
        lines.push(line);
    }
    if lines.is_empty() {
        return None;
    }
    lines.reverse();
    let count = lines.len();
    let heading = if count == 1 {
        "Earlier in this Slack thread (1 message):".to_owned()
    } else {
        format!("Earlier in this Slack thread ({count} messages, oldest first):")
    };
    Some(format!("{heading}\n{}", lines.join("\n")))
}

impl Bridge {
    /// The context a ticket opened by `message` takes along: `None` unless the message is a
    /// reply inside an existing thread, the channel shares context, and the thread has
    /// earlier messages by people. A thread Slack will not give is said in the thread, and
    /// the ticket opens without it.
    pub(super) async fn thread_context(&self, team: &TeamId, message: &UserMessage) -> Option<String> {
        let thread_ts = message.thread_ts.as_ref().filter(|t| **t != message.ts)?;
        let channel = ChannelRef { team: team.clone(), channel: message.channel.clone() };
        // Sharing is a privacy choice: settings that cannot be read share nothing.
        match self.inner.store.channel_settings(&channel).await {
            Ok(settings) if !settings.context_off => {}
            Ok(_) => return None,
            Err(err) => {
                tracing::warn!(error = %err, "could not read whether the channel shares thread context");
                return None;
            }
        }
        let thread = ThreadKey { team: team.clone(), channel: message.channel.clone(), thread_ts: thread_ts.clone() };
        match self.thread_messages(&thread, Some(&message.ts)).await {
            Ok(block) => block,
            Err(err) => {
                tracing::warn!(code = err.code(), "could not read the thread's earlier messages");
                self.tell(&thread, &notices::context_unread(&err)).await;
                None
            }
        }
    }

    /// The thread's messages by people, written before `before` (all so far with `None`),
    /// as a context block: the newest within the caps, oldest first; `None` when there are
    /// none.
    pub(super) async fn thread_messages(
        &self,
        thread: &ThreadKey,
        before: Option<&MessageTs>,
    ) -> Result<Option<String>, SlackError> {
        let replies = self.slack().replies(&thread.channel, &thread.thread_ts, before).await?;
        let me = self.bot_user();
        let before = before.map(ts_key);
        let people: Vec<_> = replies
            .into_iter()
            .filter(|r| !r.bot && before.is_none_or(|b| ts_key(&r.ts) < b) && !r.text.trim().is_empty())
            .filter(|r| r.user.is_some() && r.user.as_ref() != me)
            .collect();
        let newest = &people[people.len().saturating_sub(CONTEXT_MESSAGES)..];
        // Each author's name once, then the texts (their mentions resolved).
        let mut authors: Vec<&UserId> = newest.iter().filter_map(|r| r.user.as_ref()).collect();
        authors.sort();
        authors.dedup();
        let names: HashMap<&UserId, String> =
            join_all(authors.into_iter().map(|u| async move { (u, self.name_of(u).await) }))
                .await
                .into_iter()
                .collect();
        let texts = join_all(newest.iter().map(|r| self.plain_text(&r.text))).await;
        let earlier: Vec<Earlier> = newest
            .iter()
            .zip(texts)
            .filter_map(|(r, text)| {
                let name = names.get(r.user.as_ref()?)?.clone();
                Some(Earlier { name, at: ts_key(&r.ts).0, text })
            })
            .collect();
        Ok(context_block(&earlier))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(n: usize, text: &str) -> Earlier {
        Earlier { name: format!("Person {n}"), at: 1_800_000_000 + n as i64 * 60, text: text.to_owned() }
    }

    #[test]
    fn the_newest_messages_that_fit_go_oldest_first() {
        assert_eq!(context_block(&[]), None);
        assert_eq!(
            context_block(&[said(0, "web-1 restarts"), said(1, " since the deploy\n")]).unwrap(),
            "Earlier in this Slack thread (2 messages, oldest first):\n\
             [2027-01-15 08:00 UTC] Person 0: web-1 restarts\n[2027-01-15 08:01 UTC] Person 1: since the deploy"
        );
        // At most fifty: the newest.
        let many: Vec<Earlier> = (0..80).map(|n| said(n, "x")).collect();
        let block = context_block(&many).unwrap();
        assert!(block.starts_with("Earlier in this Slack thread (50 messages"));
        assert!(block.contains("Person 30: x") && !block.contains("Person 29: x"));
        // At most 20 kB: the newest that fit, whole.
        let big: Vec<Earlier> = (0..10).map(|n| said(n, &"é".repeat(1500))).collect();
        let block = context_block(&big).unwrap();
        assert!(block.len() <= CONTEXT_BYTES + 100, "{}", block.len());
        assert!(block.contains("Person 9: ") && !block.contains("Person 3: "));
        // One message longer than that alone is cut, on a character boundary.
        let block = context_block(&[said(0, &"é".repeat(30_000))]).unwrap();
        assert!(block.len() <= CONTEXT_BYTES + 100);
    }
}
