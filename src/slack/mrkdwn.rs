//! Agent Markdown into Slack mrkdwn, safe to post: escaped, unable to ping, split to limits.
//!
//! Agents write CommonMark (with GitHub tables). Slack's mrkdwn is a different, smaller
//! language: `*bold*`, `_italic_`, `~strike~`, code, quotes, and `<url|label>` links, with
//! `&`, `<` and `>` as the only characters that must be escaped. The conversion parses the
//! Markdown (pulldown-cmark) and writes mrkdwn, so formatting the agent did not intend
//! cannot leak through, and text the agent wrote can never become a Slack control sequence:
//! `<!here>` arrives escaped, and a bare `@here`, `@channel` or `@name` gets an invisible
//! word joiner after its `@` so Slack cannot link it.
//!
//! [`split`] cuts the result into pieces no longer than a section block allows, at line
//! boundaries where it can, closing and reopening code fences across the cut.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// U+2060 WORD JOINER: invisible, and stops Slack from reading `@here` as a mention.
const JOINER: char = '\u{2060}';

/// Escapes the three characters mrkdwn treats as control characters.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

/// Escapes `text` and breaks every `@word` that starts a word, so no broadcast
/// (`@here`, `@channel`, `@everyone`) or user mention can come out of it.
pub fn escape_inert(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    push_inert(&mut out, text);
    out
}

fn push_inert(out: &mut String, text: &str) {
    let mut previous: Option<char> = out.chars().next_back();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '@' => {
                out.push('@');
                // An email address (`ops@example.com`) has a word before its `@`; leave it.
                let starts_word = previous.is_none_or(|p| !p.is_alphanumeric());
                if starts_word && chars.peek().is_some_and(|n| n.is_alphanumeric() || *n == '_') {
                    out.push(JOINER);
                }
            }
            c => out.push(c),
        }
        previous = Some(c);
    }
}

/// Converts agent Markdown to mrkdwn.
pub fn from_markdown(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut writer = Writer::default();
    for event in Parser::new_ext(markdown, options) {
        writer.event(event);
    }
    writer.finish()
}

/// A table being collected; it is written as a code block once complete.
#[derive(Default)]
struct Table {
    rows: Vec<Vec<String>>,
    head_rows: usize,
    in_head: bool,
}

#[derive(Default)]
struct Writer {
    /// Finished output, and nested buffers for quotes and link labels.
    stack: Vec<String>,
    out: String,
    lists: Vec<Option<u64>>,
    links: Vec<String>,
    in_code_block: bool,
    in_heading: bool,
    table: Option<Table>,
}

impl Writer {
    fn buf(&mut self) -> &mut String {
        self.stack.last_mut().unwrap_or(&mut self.out)
    }

    /// Starts a block on a fresh line, with a blank line between top-level blocks.
    fn block_break(&mut self) {
        let in_list = !self.lists.is_empty();
        let buf = self.buf();
        if buf.is_empty() {
            return;
        }
        if !buf.ends_with('\n') {
            buf.push('\n');
        }
        if !in_list && !buf.ends_with("\n\n") {
            buf.push('\n');
        }
    }

    fn line_break(&mut self) {
        let buf = self.buf();
        if !buf.is_empty() && !buf.ends_with('\n') {
            buf.push('\n');
        }
    }

    fn text(&mut self, text: &str) {
        if let Some(table) = self.table.as_mut() {
            if let Some(cell) = table.rows.last_mut().and_then(|r| r.last_mut()) {
                cell.push_str(text);
            }
            return;
        }
        if self.in_code_block {
            let buf = self.buf();
            escape_into(buf, text);
        } else {
            let buf = self.buf();
            push_inert(buf, text);
        }
    }

    fn marker(&mut self, marker: &str) {
        if self.table.is_none() && !self.in_heading {
            self.buf().push_str(marker);
        }
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) => self.text(&text),
            Event::Code(code) => {
                if self.table.is_some() {
                    self.text(&code);
                } else {
                    // Inline code cannot hold a backtick in mrkdwn.
                    let code = escape(&code.replace('`', "ˋ"));
                    let buf = self.buf();
                    buf.push('`');
                    buf.push_str(&code);
                    buf.push('`');
                }
            }
            Event::Html(html) | Event::InlineHtml(html) => self.text(&html),
            Event::InlineMath(math) | Event::DisplayMath(math) => self.text(&math),
            Event::FootnoteReference(name) => self.text(&format!("[{name}]")),
            Event::SoftBreak | Event::HardBreak => {
                if self.table.is_some() {
                    self.text(" ");
                } else {
                    self.buf().push('\n');
                }
            }
            Event::Rule => {
                self.block_break();
                self.buf().push_str("──────────\n");
            }
            Event::TaskListMarker(done) => self.buf().push_str(if done { "☑ " } else { "☐ " }),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph => self.block_break(),
            Tag::Heading { .. } => {
                self.block_break();
                self.buf().push('*');
                self.in_heading = true;
            }
            Tag::BlockQuote(_) => {
                self.block_break();
                self.stack.push(String::new());
            }
            Tag::CodeBlock(_) => {
                self.block_break();
                self.buf().push_str("```\n");
                self.in_code_block = true;
            }
            Tag::List(start) => {
                if self.lists.is_empty() {
                    self.block_break();
                } else {
                    self.line_break();
                }
                self.lists.push(start);
            }
            Tag::Item => {
                self.line_break();
                let depth = self.lists.len().saturating_sub(1);
                let bullet = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let bullet = format!("{n}. ");
                        *n += 1;
                        bullet
                    }
                    _ => if depth == 0 { "• " } else { "◦ " }.to_owned(),
                };
                let buf = self.buf();
                buf.push_str(&"    ".repeat(depth));
                buf.push_str(&bullet);
            }
            Tag::Table(_) => {
                self.block_break();
                self.table = Some(Table::default());
            }
            Tag::TableHead => {
                if let Some(table) = self.table.as_mut() {
                    table.in_head = true;
                    table.rows.push(Vec::new());
                }
            }
            Tag::TableRow => {
                if let Some(table) = self.table.as_mut() {
                    table.rows.push(Vec::new());
                }
            }
            Tag::TableCell => {
                if let Some(row) = self.table.as_mut().and_then(|t| t.rows.last_mut()) {
                    row.push(String::new());
                }
            }
            Tag::Emphasis => self.marker("_"),
            Tag::Strong => self.marker("*"),
            Tag::Strikethrough => self.marker("~"),
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                self.links.push(dest_url.into_string());
                self.stack.push(String::new());
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => self.line_break(),
            TagEnd::Heading(_) => {
                self.in_heading = false;
                let buf = self.buf();
                let trimmed = buf.trim_end().len();
                buf.truncate(trimmed);
                buf.push_str("*\n");
            }
            TagEnd::BlockQuote(_) => {
                let quoted = self.stack.pop().unwrap_or_default();
                let buf = self.buf();
                for line in quoted.trim_end_matches('\n').lines() {
                    buf.push_str("> ");
                    buf.push_str(line);
                    buf.push('\n');
                }
            }
            TagEnd::CodeBlock => {
                self.in_code_block = false;
                self.line_break();
                self.buf().push_str("```\n");
            }
            TagEnd::List(_) => {
                self.lists.pop();
                self.line_break();
            }
            TagEnd::Item => self.line_break(),
            TagEnd::TableHead => {
                if let Some(table) = self.table.as_mut() {
                    table.in_head = false;
                    table.head_rows = table.rows.len();
                }
            }
            TagEnd::Table => {
                if let Some(table) = self.table.take() {
                    let rendered = render_table(&table);
                    let buf = self.buf();
                    buf.push_str("```\n");
                    escape_into(buf, &rendered);
                    buf.push_str("```\n");
                }
            }
            TagEnd::Emphasis => self.marker("_"),
            TagEnd::Strong => self.marker("*"),
            TagEnd::Strikethrough => self.marker("~"),
            TagEnd::Link | TagEnd::Image => {
                let label = self.stack.pop().unwrap_or_default();
                let url = self.links.pop().unwrap_or_default();
                self.link(&url, &label);
            }
            _ => {}
        }
    }

    /// Writes a link. Only web and mail links become Slack links; anything else (a
    /// relative path, `javascript:`, a Slack `<!…>` sequence in disguise) stays text.
    fn link(&mut self, url: &str, label: &str) {
        if self.table.is_some() {
            return;
        }
        let safe = (url.starts_with("https://") || url.starts_with("http://") || url.starts_with("mailto:"))
            && !url.chars().any(|c| c.is_whitespace() || matches!(c, '<' | '>' | '|'));
        let url_escaped = url.replace('&', "&amp;");
        let buf = self.buf();
        if safe {
            buf.push('<');
            buf.push_str(&url_escaped);
            let label = label.trim();
            if !label.is_empty() && label != url {
                buf.push('|');
                // A pipe would end the label early.
                buf.push_str(&label.replace('|', "∣"));
            }
            buf.push('>');
        } else {
            buf.push_str(label);
            if !url.is_empty() && label.trim() != url {
                buf.push_str(" (");
                push_inert(buf, url);
                buf.push(')');
            }
        }
    }

    fn finish(mut self) -> String {
        // Unclosed quote or link buffers (malformed input) are kept, not lost.
        while let Some(rest) = self.stack.pop() {
            self.buf().push_str(&rest);
        }
        let trimmed = self.out.trim_end().len();
        self.out.truncate(trimmed);
        self.out
    }
}

/// A table as aligned plain-text columns (it goes into a code block).
fn render_table(table: &Table) -> String {
    let columns = table.rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in &table.rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.trim().chars().count());
        }
    }
    let mut out = String::new();
    for (r, row) in table.rows.iter().enumerate() {
        let cells: Vec<String> = (0..columns)
            .map(|i| {
                let cell = row.get(i).map_or("", |c| c.trim());
                format!("{cell:<width$}", width = widths[i])
            })
            .collect();
        out.push_str(cells.join(" | ").trim_end());
        out.push('\n');
        if r + 1 == table.head_rows {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat((*w).max(1))).collect();
            out.push_str(&rule.join("-+-"));
            out.push('\n');
        }
    }
    out
}

/// Splits mrkdwn into pieces of at most `max` characters, preferring line boundaries and
/// never cutting inside an `&…;` entity. A code block cut in two is closed at the end of
/// one piece and reopened at the start of the next, so both render as code.
pub fn split(text: &str, max: usize) -> Vec<String> {
    // Room for a closing fence and a reopening one.
    let budget = max.saturating_sub(2 * (FENCE.len() + 1)).max(16);
    let mut pieces = Pieces::default();
    for line in text.split_inclusive('\n') {
        let mut rest = line;
        loop {
            let rest_len = rest.chars().count();
            if pieces.len + rest_len <= budget {
                pieces.push(rest, rest_len);
                break;
            }
            if pieces.len > pieces.reopened {
                pieces.cut();
                continue;
            }
            // A single line longer than a piece: cut it.
            let cut = safe_cut(rest, budget.saturating_sub(pieces.len));
            pieces.push(&rest[..cut], rest[..cut].chars().count());
            rest = &rest[cut..];
            if rest.is_empty() {
                break;
            }
            pieces.cut();
        }
        if line.trim_start().starts_with(FENCE) {
            pieces.in_fence = !pieces.in_fence;
        }
    }
    pieces.finish()
}

const FENCE: &str = "```";

/// Pieces being cut from a text, and the one being filled.
#[derive(Default)]
struct Pieces {
    done: Vec<String>,
    current: String,
    /// Characters in `current`.
    len: usize,
    /// Characters of a reopened fence at the start of `current`.
    reopened: usize,
    in_fence: bool,
}

impl Pieces {
    fn push(&mut self, text: &str, chars: usize) {
        self.current.push_str(text);
        self.len += chars;
    }

    /// Ends the current piece (closing an open code block) and starts the next one
    /// (reopening it).
    fn cut(&mut self) {
        let mut piece = std::mem::take(&mut self.current);
        if self.in_fence {
            if !piece.ends_with('\n') {
                piece.push('\n');
            }
            piece.push_str(FENCE);
        }
        let piece = piece.trim_end_matches('\n');
        if !piece.trim().is_empty() && piece != FENCE {
            self.done.push(piece.to_owned());
        }
        self.len = 0;
        self.reopened = 0;
        if self.in_fence {
            self.current.push_str(FENCE);
            self.current.push('\n');
            self.len = FENCE.len() + 1;
            self.reopened = self.len;
        }
    }

    fn finish(mut self) -> Vec<String> {
        let mut last = std::mem::take(&mut self.current);
        if self.in_fence && !last.trim_end().ends_with(FENCE) {
            // An unclosed fence (a reply still streaming) renders as code only when closed.
            last.push_str(if last.ends_with('\n') { FENCE } else { "\n```" });
        }
        let last = last.trim_end_matches('\n');
        if !last.trim().is_empty() && last != FENCE {
            self.done.push(last.to_owned());
        }
        self.done
    }
}

/// The byte index at most `max_chars` characters in, moved back so that it does not cut
/// an entity (`&amp;`) or, when possible, a word.
fn safe_cut(text: &str, max_chars: usize) -> usize {
    let max_chars = max_chars.max(1);
    let mut end = text.char_indices().nth(max_chars).map_or(text.len(), |(i, _)| i);
    if end == text.len() {
        return end;
    }
    if let Some(amp) = text[..end].rfind('&')
        && !text[amp..end].contains(';')
        && end - amp <= 6
        && amp > 0
    {
        end = amp;
    }
    if let Some(space) = text[..end].rfind(' ')
        && space > end / 2
    {
        end = space + 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_the_common_markdown() {
        let md = "# Disk full\n\nThe **root** volume is _98%_ full, see `df -h`.\n\n\
                  - first\n- second\n  1. nested\n\n> quoted *text*\n\n```bash\nrm -rf /tmp/a && echo <done>\n```\n\n\
                  [runbook](https://example.com/run?a=1&b=2) ~~old~~";
        insta::assert_snapshot!(from_markdown(md));
    }

    #[test]
    fn tables_become_aligned_code_blocks() {
        let md = "| Pod | Status |\n|---|---|\n| web-1 | Running |\n| db-0 | CrashLoopBackOff |";
        insta::assert_snapshot!(from_markdown(md));
    }

    #[test]
    fn nothing_the_agent_writes_can_ping() {
        let out =
            from_markdown("<!channel> <!here|here> @here @channel @everyone <@U123> hi @alice, mail ops@example.com");
        assert!(!out.contains("<!"), "{out}");
        assert!(!out.contains("<@"), "{out}");
        for word in ["@here", "@channel", "@everyone", "@alice"] {
            assert!(!out.contains(word), "{word} survived in {out}");
        }
        assert!(out.contains("ops@example.com"), "emails are left alone: {out}");
        assert!(out.contains("&lt;!channel&gt;"), "{out}");
    }

    #[test]
    fn unsafe_links_stay_text() {
        let out = from_markdown("[click](javascript:alert(1)) [x](<!here>) [ok](https://a.example/x|y)");
        assert!(!out.contains("<javascript"), "{out}");
        assert!(!out.contains("<!here"), "{out}");
        assert!(!out.contains("<https://a.example/x|y"), "a pipe in the URL is not a link: {out}");
    }

    #[test]
    fn escapes_control_characters_everywhere() {
        let out = from_markdown("a < b && c > d\n\n`x<y>`\n\n```\n<tag> & </tag>\n```");
        assert!(!out.contains('<') || out.matches('<').count() == 0, "{out}");
        assert!(out.contains("a &lt; b &amp;&amp; c &gt; d"), "{out}");
        assert!(out.contains("`x&lt;y&gt;`"), "{out}");
        assert!(out.contains("&lt;tag&gt; &amp; &lt;/tag&gt;"), "{out}");
    }

    #[test]
    fn split_respects_the_limit_and_keeps_everything() {
        let text = (0..400).map(|i| format!("line {i} with some words &amp; more")).collect::<Vec<_>>().join("\n");
        let pieces = split(&text, 3000);
        assert!(pieces.len() > 1);
        for piece in &pieces {
            assert!(piece.chars().count() <= 3000, "{}", piece.chars().count());
        }
        assert_eq!(pieces.join("\n"), text);
    }

    #[test]
    fn split_reopens_code_fences() {
        let code = (0..300).map(|i| format!("output row {i:04} ............")).collect::<Vec<_>>().join("\n");
        let text = format!("before\n```\n{code}\n```\nafter");
        let pieces = split(&text, 1000);
        assert!(pieces.len() > 2);
        for piece in &pieces {
            assert_eq!(piece.matches("```").count() % 2, 0, "unbalanced fences in {piece}");
            assert!(piece.chars().count() <= 1000);
        }
        assert!(pieces.last().unwrap().ends_with("after"));
    }

    #[test]
    fn split_cuts_long_lines_outside_entities() {
        let text = "&amp;".repeat(1000);
        for piece in split(&text, 3000) {
            assert!(piece.chars().count() <= 3000);
            assert!(piece.starts_with("&amp;") && piece.ends_with("&amp;"), "cut inside an entity");
        }
    }

    #[test]
    fn an_unclosed_fence_is_closed_for_display() {
        let pieces = split("Running:\n```\nkubectl get pods", 3000);
        assert_eq!(pieces, vec!["Running:\n```\nkubectl get pods\n```".to_owned()]);
    }

    proptest::proptest! {
        #[test]
        fn conversion_and_splitting_never_panic(input in "\\PC{0,400}", max in 20usize..400) {
            let out = from_markdown(&input);
            proptest::prop_assert!(!out.contains("<!"));
            for piece in split(&out, max) {
                proptest::prop_assert!(piece.chars().count() <= max);
            }
        }
    }
}
