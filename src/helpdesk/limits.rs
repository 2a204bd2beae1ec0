//! How much the bridge takes in from the HelpDesk, at most.
//!
//! A hostile or broken HelpDesk must not be able to exhaust the bridge's memory or flood a
//! thread, so every input it sends is bounded where it is read: stream lines and events in
//! [`super::sse`], response bodies in the client, and what one agent turn may bring (text,
//! proposals, executed output, links) in [`super::events::TurnBudget`]. A turn that passes
//! a cap ends with a note saying which; HelpDesk error text is quoted only briefly
//! ([`quote`]) wherever it reaches Slack or the logs.

/// One KiB.
const KIB: usize = 1024;
/// One MiB.
const MIB: usize = 1024 * KIB;

/// The longest line of a reply stream (SSE or NDJSON); a longer one is dropped up to its
/// newline without being buffered.
pub const LINE_BYTES: usize = MIB;
/// The most data one SSE event may join across its `data:` lines.
pub const EVENT_BYTES: usize = MIB;
/// The most of a successful response body that is read (a unary reply, a lookup).
pub const BODY_BYTES: usize = 4 * MIB;
/// The most of an error response body that is read; only its start is ever quoted.
pub const ERROR_BODY_BYTES: usize = 64 * KIB;
/// The reply text of one turn, in bytes of Markdown. Slack shows eight messages of it and
/// attaches the rest as a file, so more would only cost memory.
pub const REPLY_TEXT_BYTES: usize = 256 * KIB;
/// Proposals in one turn.
pub const PROPOSALS: usize = 50;
/// One proposed command (or tool call with its input).
pub const COMMAND_BYTES: usize = 16 * KIB;
/// Files attached to one proposed command.
pub const FILES: usize = 20;
/// One proposed file, path and content.
pub const FILE_BYTES: usize = 256 * KIB;
/// All proposals of one turn together, as the agent sent them.
pub const PROPOSAL_SET_BYTES: usize = MIB;
/// Commands the agent ran, in one turn.
pub const EXECUTED: usize = 50;
/// What one executed command printed; longer output is cut with a note.
pub const OUTPUT_BYTES: usize = MIB;
/// Executed commands and their output together, in one turn.
pub const EXECUTED_BYTES: usize = 2 * MIB;
/// Links offered in one turn.
pub const LINKS: usize = 50;
/// Characters of a status line ("Running tool: kubectl") that are kept.
pub const STATUS_CHARS: usize = 300;
/// Prompt suggestions taken from an agent's record.
pub const SUGGESTIONS: usize = 4;
/// One prompt suggestion's title, or its message.
pub const SUGGESTION_BYTES: usize = 4 * KIB;
/// Characters of HelpDesk or agent error text quoted in the thread or the logs.
pub const QUOTE_CHARS: usize = 200;

/// A size for people: `256 KiB`, `1 MiB`, `16.1 KiB`. Tenths are rounded up, so a size
/// past a limit never reads as the limit itself.
pub fn size(bytes: usize) -> String {
    let (unit, name) = match bytes {
        b if b >= MIB => (MIB, "MiB"),
        b if b >= KIB => (KIB, "KiB"),
        b => return format!("{b} bytes"),
    };
    let tenths = bytes.saturating_mul(10).div_ceil(unit);
    if tenths % 10 == 0 { format!("{} {name}", tenths / 10) } else { format!("{}.{} {name}", tenths / 10, tenths % 10) }
}

/// Foreign text quoted briefly: control characters and bidirectional overrides become
/// spaces, runs of whitespace one space, and at most [`QUOTE_CHARS`] characters are kept
/// (`…` marks the cut). Works on characters, so it never splits one.
pub fn quote(text: &str) -> String {
    let mut out = String::new();
    let mut kept = 0;
    let mut space = false;
    for c in text.trim().chars() {
        let blank = c.is_whitespace() || c.is_control() || is_bidi_control(c);
        if blank {
            space = true;
            continue;
        }
        let extra = usize::from(space && kept > 0);
        if kept + extra + 1 > QUOTE_CHARS {
            out.push('…');
            return out;
        }
        if extra == 1 {
            out.push(' ');
        }
        out.push(c);
        kept += extra + 1;
        space = false;
    }
    out
}

/// Characters that reorder the text around them when displayed, so a quote could read
/// differently from what it says.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` cut to at most `max` bytes at a character boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if max >= text.len() {
        return text;
    }
    // A character is at most four bytes, so a boundary is at most three steps back.
    let end = (max.saturating_sub(3)..=max).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    text.get(..end).unwrap_or_default()
}

/// What was too large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversized {
    /// A line longer than [`LINE_BYTES`].
    Line,
    /// An SSE event whose data passed [`EVENT_BYTES`].
    Event,
}

impl std::fmt::Display for Oversized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Line => write!(f, "a line longer than {}", size(LINE_BYTES)),
            Self::Event => write!(f, "an event larger than {}", size(EVENT_BYTES)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size(256 * KIB), "256 KiB");
        assert_eq!(size(MIB), "1 MiB");
        assert_eq!(size(3 * MIB / 2), "1.5 MiB");
        assert_eq!(size(16 * KIB + 1), "16.1 KiB");
        assert_eq!(size(12), "12 bytes");
    }

    #[test]
    fn quotes_are_brief_single_line_and_free_of_controls() {
        assert_eq!(quote("  not\r\nfound\t\u{7}!\u{202e}  "), "not found !");
        let long = "é".repeat(500);
        let quoted = quote(&long);
        assert_eq!(quoted.chars().count(), QUOTE_CHARS + 1);
        assert!(quoted.ends_with('…'));
        assert_eq!(quote(&"a".repeat(QUOTE_CHARS)), "a".repeat(QUOTE_CHARS), "exactly the limit is not cut");
        assert_eq!(quote("\u{1b}[31m"), "[31m");
        assert_eq!(quote(""), "");
    }

    #[test]
    fn cuts_fall_on_character_boundaries() {
        assert_eq!(cut("日本語", 4), "日");
        assert_eq!(cut("日本語", 6), "日本");
        assert_eq!(cut("abc", 10), "abc");
        assert_eq!(cut("🙂🙂", 1), "");
    }

    proptest::proptest! {
        #[test]
        fn any_text_quotes_and_cuts_without_panicking(text in "(?s).{0,600}", max in 0usize..700) {
            let quoted = quote(&text);
            proptest::prop_assert!(quoted.chars().count() <= QUOTE_CHARS + 1);
            proptest::prop_assert!(!quoted.chars().any(|c| c.is_control()));
            proptest::prop_assert!(text.starts_with(cut(&text, max)));
        }
    }
}
