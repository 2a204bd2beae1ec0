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
//! Code cannot be closed from inside: every escape here also breaks runs of backticks with
//! a zero width space, so the only ```` ``` ```` in a rendering are the fences the bridge
//! wrote, each on its own line. A link whose label names another host than the one it goes
//! to shows the real host.
//!
//! Text is measured after escaping: the `*_within` functions cut by the escaped length,
//! between characters (never inside an entity), and [`split`] and [`cut`] shorten mrkdwn
//! that is already rendered, at line boundaries where they can, never inside an entity or
//! a `<…>` token, closing and reopening code fences across the cut.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// U+2060 WORD JOINER: invisible, and stops Slack from reading `@here` as a mention.
const JOINER: char = '\u{2060}';
/// U+200B ZERO WIDTH SPACE: put between two backticks, it looks the same but no run of
/// backticks can close (or open) a code block.
const BACKTICK_BREAK: char = '\u{200B}';
/// Characters the fences of [`code_block`] add around its text.
const CODE_BLOCK_FENCES: usize = 2 * (FENCE.len() + 1);

/// How a character of untrusted text is written into mrkdwn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `&<>` escaped and backtick runs broken: for code, where nothing else is parsed.
    Escape,
    /// Like [`Mode::Escape`], and every `@word` broken: for text where Slack reads mentions.
    Inert,
}

/// Writes one character of untrusted text. `previous` is the character written just
/// before it and `next` the one that follows in the source.
fn push_char(out: &mut String, mode: Mode, previous: Option<char>, c: char, next: Option<char>) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '`' => {
            if previous == Some('`') {
                out.push(BACKTICK_BREAK);
            }
            out.push('`');
        }
        '@' if mode == Mode::Inert => {
            out.push('@');
            if starts_mention(previous, next) {
                out.push(JOINER);
            }
        }
        c => out.push(c),
    }
}

/// Whether an `@` between `previous` and `next` starts a word Slack could read as a
/// mention. An email address (`ops@example.com`) has a word before its `@`.
fn starts_mention(previous: Option<char>, next: Option<char>) -> bool {
    previous.is_none_or(|p| !p.is_alphanumeric()) && next.is_some_and(|n| n.is_alphanumeric() || n == '_')
}

/// Writes untrusted `text` after what `out` holds already.
fn push_text(out: &mut String, mode: Mode, text: &str) {
    if mode == Mode::Inert {
        break_mention(out, text);
    }
    let mut previous = out.chars().next_back();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        push_char(out, mode, previous, c, chars.peek().copied());
        previous = Some(c);
    }
}

/// Puts a word joiner between a word-starting `@` that ends `out` and a word that `next`
/// starts: the two may come from different pieces of text (`@` then a link's label).
fn break_mention(out: &mut String, next: &str) {
    let mut last = out.chars().rev();
    let ends_with_at = last.next() == Some('@') && last.next().is_none_or(|p| !p.is_alphanumeric());
    if ends_with_at && next.chars().next().is_some_and(|n| n.is_alphanumeric() || n == '_') {
        out.push(JOINER);
    }
}

/// Escapes the three characters mrkdwn treats as control characters, and breaks runs of
/// backticks so that text inside a code block cannot end it.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_text(&mut out, Mode::Escape, text);
    out
}

fn escape_into(out: &mut String, text: &str) {
    push_text(out, Mode::Escape, text);
}

/// Escapes `text` and breaks every `@word` that starts a word, so no broadcast
/// (`@here`, `@channel`, `@everyone`) or user mention can come out of it.
pub fn escape_inert(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    push_inert(&mut out, text);
    out
}

fn push_inert(out: &mut String, text: &str) {
    push_text(out, Mode::Inert, text);
}

/// Untrusted text escaped to at most `max` characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fitted {
    /// The escaped text, ending with `…` when it was cut.
    pub text: String,
    /// Characters of the source it shows.
    pub shown: usize,
    /// Whether the source was cut.
    pub cut: bool,
}

/// Escapes `text` in `mode` to at most `max` characters of output. A cut falls between two
/// source characters, so never inside an entity, and is marked with `…`.
fn fit(text: &str, max: usize, mode: Mode) -> Fitted {
    let mut out = String::with_capacity(text.len());
    push_text(&mut out, mode, text);
    if out.chars().count() <= max {
        return Fitted { text: out, shown: text.chars().count(), cut: false };
    }
    let budget = max.saturating_sub(1);
    out.clear();
    let (mut len, mut shown) = (0, 0);
    let mut piece = String::new();
    let mut previous = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        piece.clear();
        push_char(&mut piece, mode, previous, c, chars.peek().copied());
        let piece_len = piece.chars().count();
        if len + piece_len > budget {
            break;
        }
        out.push_str(&piece);
        len += piece_len;
        shown += 1;
        previous = Some(c);
    }
    if max > 0 {
        out.push('…');
    }
    Fitted { text: out, shown, cut: true }
}

/// [`escape_inert`], cut so the result has at most `max` characters.
pub fn inert_within(text: &str, max: usize) -> String {
    fit(text, max, Mode::Inert).text
}

/// Untrusted text as one line of plain text that cannot ping or form a control sequence,
/// for the few places Slack shows plain text outside Block Kit (an assistant thread's
/// status and loading messages): line breaks, control and bidirectional-override
/// characters become spaces and runs of spaces one, `<` and `>` become `‹` and `›` (so no
/// `<!here>` or `<@U…>` can form; nothing is escaped, since plain text would show the
/// entities), every `@word` and run of backticks is broken as in [`escape_inert`], and the
/// result is cut, between characters, to at most `max` characters.
pub fn inert_plain(text: &str, max: usize) -> String {
    let mut line = String::with_capacity(text.len());
    let mut chars = text.trim().chars().peekable();
    let mut previous = None;
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace()
                || c.is_control()
                || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                if previous.is_some_and(|p| p != ' ') {
                    line.push(' ');
                }
                previous = Some(' ');
                continue;
            }
            '<' => line.push('‹'),
            '>' => line.push('›'),
            '`' => {
                if previous == Some('`') {
                    line.push(BACKTICK_BREAK);
                }
                line.push('`');
            }
            '@' => {
                line.push('@');
                if starts_mention(previous, chars.peek().copied()) {
                    line.push(JOINER);
                }
            }
            c => line.push(c),
        }
        previous = Some(c);
    }
    if max == 0 {
        return String::new();
    }
    super::kit::truncate(line.trim_end(), max)
}

/// [`escape`], cut so the result has at most `max` characters.
pub fn escape_within(text: &str, max: usize) -> Fitted {
    fit(text, max, Mode::Escape)
}

/// `text` as a code block: escaped, with runs of backticks broken so nothing inside can
/// close it, between fences on their own lines.
pub fn code_block(text: &str) -> String {
    format!("{FENCE}\n{}\n{FENCE}", escape(text))
}

/// Characters [`code_block`] renders `text` into, for deciding whether it fits.
pub fn code_block_chars(text: &str) -> usize {
    escape(text).chars().count() + CODE_BLOCK_FENCES
}

/// [`code_block`] in at most `max` characters, fences included; the text is cut (and ends
/// with `…`) when it does not fit. `shown` counts the characters of `text` it shows.
pub fn code_block_within(text: &str, max: usize) -> Fitted {
    let body = fit(text, max.saturating_sub(CODE_BLOCK_FENCES), Mode::Escape);
    Fitted { text: format!("{FENCE}\n{}\n{FENCE}", body.text), ..body }
}

/// `text` as inline code of at most `max` characters: inline code cannot hold a backtick
/// or a line break in mrkdwn, so they become `ˋ` and spaces.
pub fn inline_code(text: &str, max: usize) -> String {
    inline(text, max, Mode::Escape)
}

fn inline(text: &str, max: usize, mode: Mode) -> String {
    let flat: String = text
        .chars()
        .map(|c| match c {
            '`' => 'ˋ',
            '\n' | '\r' => ' ',
            c => c,
        })
        .collect();
    format!("`{}`", fit(&flat, max.saturating_sub(2), mode).text)
}

// === where a link goes ===

/// Where a link really goes, as people should read it: the host of a web link, the
/// address of a mail link.
fn link_target(url: &str) -> Option<String> {
    if let Some(mail) = url.strip_prefix("mailto:") {
        let address = mail.split('?').next().unwrap_or_default().to_lowercase();
        return address.contains('@').then_some(address);
    }
    let parsed = reqwest::Url::parse(url).ok()?;
    parsed.host_str().map(|h| h.trim_end_matches('.').to_owned())
}

/// What a label appears to name: hosts (`good.example`, `https://good.example/x`) and
/// mail addresses, lowercased, hosts in their punycode form.
fn named_targets(label: &str) -> Vec<String> {
    let label = super::markup::unescape(label).replace([JOINER, BACKTICK_BREAK], "");
    let separators = |c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '(' | ')' | '[' | ']' | '{' | '}' | '"' | '\'' | ',' | ';' | '|' | '<' | '>' | '*' | '_' | '~' | '`'
            )
    };
    let mut named = Vec::new();
    for word in label.split(separators) {
        let word = word.trim_matches(|c: char| !c.is_alphanumeric());
        if word.is_empty() {
            continue;
        }
        if word.contains("://") {
            if let Some(host) = reqwest::Url::parse(word).ok().and_then(|u| u.host_str().map(str::to_owned)) {
                named.push(host.trim_end_matches('.').to_owned());
            }
            continue;
        }
        if let Some((user, domain)) = word.rsplit_once('@') {
            if let Some(host) = host_like(domain) {
                named.push(format!("{}@{host}", user.to_lowercase()));
                named.push(host);
            }
            continue;
        }
        let host = word.split(['/', '?', '#']).next().unwrap_or(word);
        named.extend(host_like(host));
    }
    named
}

/// `word` as a host, if it reads like one: a dotted name whose last label is a word of two
/// or more letters (or punycode), or a dotted-quad address.
fn host_like(word: &str) -> Option<String> {
    let host = word.split(':').next().unwrap_or(word);
    let dotted_quad =
        host.split('.').count() == 4 && host.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let parsed = reqwest::Url::parse(&format!("https://{host}/")).ok()?;
    let normal = parsed.host_str()?.trim_end_matches('.').to_owned();
    let tld = normal.rsplit('.').next().unwrap_or_default();
    let named = normal.contains('.')
        && (dotted_quad
            || tld.starts_with("xn--")
            || (tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic)));
    named.then_some(normal)
}

/// The real target to show next to `label` when the label could make people believe the
/// link goes somewhere else: it names another host (or address) than `url`'s, the target
/// hides behind user info (`https://good.example@evil.example`), or the label names a
/// host that only looks like a familiar one (an internationalised name, shown as punycode).
pub fn misleading_label(label: &str, url: &str) -> Option<String> {
    let target = link_target(url)?;
    let userinfo = reqwest::Url::parse(url).is_ok_and(|u| !u.username().is_empty() || u.password().is_some());
    if userinfo {
        return Some(target);
    }
    let named = named_targets(label);
    if named.is_empty() {
        return None;
    }
    let mail_domain = target.rsplit_once('@').map(|(_, d)| d.to_owned());
    let matches = |name: &String| match &mail_domain {
        Some(domain) => name == &target || name == domain,
        None => name == &target || target.ends_with(&format!(".{name}")),
    };
    let lookalike = target.split('.').any(|part| part.starts_with("xn--"));
    (lookalike || !named.iter().all(matches)).then_some(target)
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
    /// Open block quotes; only the outermost is marked, as Slack shows one level.
    quotes: usize,
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
                    let buf = self.buf();
                    // A backtick just before would make the opening one a longer run.
                    if buf.ends_with('`') {
                        buf.push(BACKTICK_BREAK);
                    }
                    // Unlike a code block, inline code is not reopened when a long line is
                    // split, so what it holds must be inert on its own.
                    buf.push_str(&inline(&code, usize::MAX, Mode::Inert));
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
                self.quotes += 1;
                if self.quotes == 1 {
                    self.stack.push(String::new());
                }
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
                        *n = n.saturating_add(1);
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
                self.quotes = self.quotes.saturating_sub(1);
                if self.quotes > 0 {
                    self.line_break();
                    return;
                }
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
    /// relative path, `javascript:`, a Slack `<!…>` sequence in disguise) stays text. A
    /// label that names another place than the link goes to is followed by the real one.
    fn link(&mut self, url: &str, label: &str) {
        if self.table.is_some() {
            return;
        }
        let safe = (url.starts_with("https://") || url.starts_with("http://") || url.starts_with("mailto:"))
            && !url.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '|' | '`'));
        let url_escaped = url.replace('&', "&amp;");
        let buf = self.buf();
        if safe {
            // A label cannot hold a link, or Slack would end this one early.
            let label = label.trim().replace('<', "&lt;").replace('>', "&gt;").replace('|', "∣");
            buf.push('<');
            buf.push_str(&url_escaped);
            if let Some(real) = misleading_label(&label, url) {
                buf.push('|');
                if !label.is_empty() {
                    buf.push_str(&label);
                    buf.push(' ');
                }
                buf.push('(');
                escape_into(buf, &real.replace('|', "∣"));
                buf.push(')');
            } else if !label.is_empty() && super::markup::unescape(&label) != url {
                buf.push('|');
                buf.push_str(&label);
            }
            buf.push('>');
        } else {
            break_mention(buf, label);
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
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.trim().chars().count());
        }
    }
    let mut out = String::new();
    for (r, row) in table.rows.iter().enumerate() {
        let cells: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(i, width)| {
                let cell = row.get(i).map_or("", |c| c.trim());
                format!("{cell:<width$}")
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

/// Splits mrkdwn into pieces of at most `max` characters (for `max` of 20 or more),
/// preferring line boundaries and never cutting inside an `&…;` entity or a `<…>` token
/// when it can avoid it. A code block cut in two is closed at the end of one piece and
/// reopened at the start of the next (inside a quote too), so both render as code.
pub fn split(text: &str, max: usize) -> Vec<String> {
    // Room for a closing fence and a reopening one, each with a quote marker.
    let budget = max.saturating_sub(2 * (QUOTED_FENCE_CHARS + 1)).max(8);
    let mut pieces = Pieces::default();
    for line in text.split_inclusive('\n') {
        let mut rest = line;
        // A closing fence always fits: its room is kept free while a code block is open.
        let room = match (&pieces.fence, fence_prefix(line)) {
            (Some(_), Some(_)) => budget + QUOTED_FENCE_CHARS + 1,
            _ => budget,
        };
        loop {
            let rest_len = rest.chars().count();
            if pieces.len + rest_len <= room {
                pieces.push(rest, rest_len);
                break;
            }
            if pieces.len > pieces.reopened {
                pieces.cut();
                continue;
            }
            // A single line longer than a piece: cut it.
            let cut = safe_cut(rest, budget.saturating_sub(pieces.len));
            let (head, tail) = rest.split_at(cut);
            pieces.push(head, head.chars().count());
            rest = tail;
            if rest.is_empty() {
                break;
            }
            pieces.cut();
        }
        if let Some(prefix) = fence_prefix(line) {
            pieces.fence = match pieces.fence {
                Some(_) => None,
                None => Some(prefix.to_owned()),
            };
        }
    }
    pieces.finish()
}

/// Shortens mrkdwn to at most `max` characters (at least 20), like the first piece of
/// [`split`] followed by `…`: fences stay balanced, and no entity or token is cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut first = split(text, max.saturating_sub(2)).into_iter().next().unwrap_or_default();
    if first.ends_with(FENCE) {
        first.push('\n');
    }
    first.push('…');
    first
}

const FENCE: &str = "```";
/// Characters of the longest fence line [`split`] writes: a quoted one.
const QUOTED_FENCE_CHARS: usize = "> ```".len();

/// The quote marker before a fence, when `line` is a fence line (`"```"` or `"> ```"`).
fn fence_prefix(line: &str) -> Option<&str> {
    let prefix = if line.starts_with("> ") {
        "> "
    } else if line.starts_with('>') {
        ">"
    } else {
        ""
    };
    line.get(prefix.len()..).is_some_and(|body| body.trim_start().starts_with(FENCE)).then_some(prefix)
}

/// Pieces being cut from a text, and the one being filled.
#[derive(Default)]
struct Pieces {
    done: Vec<String>,
    current: String,
    /// Characters in `current`.
    len: usize,
    /// Characters of a reopened fence at the start of `current`.
    reopened: usize,
    /// The quote marker of the code block the text is in, if it is in one.
    fence: Option<String>,
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
        if let Some(prefix) = &self.fence {
            if !piece.ends_with('\n') {
                piece.push('\n');
            }
            piece.push_str(prefix);
            piece.push_str(FENCE);
        }
        let piece = piece.trim_end_matches('\n');
        if !piece.trim().is_empty() && piece != FENCE {
            self.done.push(piece.to_owned());
        }
        self.len = 0;
        self.reopened = 0;
        if let Some(prefix) = &self.fence {
            self.current.push_str(prefix);
            self.current.push_str(FENCE);
            self.current.push('\n');
            self.len = prefix.chars().count() + FENCE.len() + 1;
            self.reopened = self.len;
        }
    }

    fn finish(mut self) -> Vec<String> {
        let mut last = std::mem::take(&mut self.current);
        if let Some(prefix) = &self.fence {
            // An unclosed fence (a reply still streaming) renders as code only when closed.
            if !last.ends_with('\n') {
                last.push('\n');
            }
            last.push_str(prefix);
            last.push_str(FENCE);
        }
        let last = last.trim_end_matches('\n');
        if !last.trim().is_empty() && last != FENCE {
            self.done.push(last.to_owned());
        }
        self.done
    }
}

/// The byte index at most `max_chars` characters in, moved back so that it does not cut
/// an entity (`&amp;`), a `<…>` token or, when possible, a word.
fn safe_cut(text: &str, max_chars: usize) -> usize {
    let max_chars = max_chars.max(1);
    let mut end = text.char_indices().nth(max_chars).map_or(text.len(), |(i, _)| i);
    if end == text.len() {
        return end;
    }
    let head = |end: usize| text.get(..end).unwrap_or_default();
    if let Some(amp) = head(end).rfind('&')
        && !head(end)[amp..].contains(';')
        && end - amp <= 6
        && amp > 0
    {
        end = amp;
    }
    if let Some(open) = head(end).rfind('<')
        && !head(end)[open..].contains('>')
        && open > 0
    {
        end = open;
    }
    if let Some(space) = head(end).rfind(' ')
        && space > end / 2
    {
        end = space + 1;
    }
    // `ops@here` is an address; cut before its `@`, and the next piece would start with a
    // bare `@here`.
    if text.get(end..).is_some_and(|rest| rest.starts_with('@'))
        && let Some((before, _)) = head(end).char_indices().next_back()
        && before > 0
    {
        end = before;
    }
    end
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Checks rendered mrkdwn for what agent text must never produce: a Slack control
    /// sequence (`<!…>` other than the bridge's dates, `<@…>`), a fence that is not on its
    /// own line, unbalanced fences, or a bare broadcast outside code. Returns why not.
    pub(crate) fn inert_problem(mrkdwn: &str) -> Option<String> {
        if mrkdwn.match_indices("<!").any(|(i, _)| !mrkdwn[i..].starts_with("<!date^")) {
            return Some("a live <! sequence".to_owned());
        }
        let mut fences = 0;
        let mut in_fence = false;
        let mut outside = String::new();
        for line in mrkdwn.lines() {
            let count = line.matches(FENCE).count();
            if count > 0 {
                let body = line.strip_prefix("> ").unwrap_or(line);
                if body != FENCE || count != 1 {
                    return Some(format!("a fence that is not a line of its own: {line:?}"));
                }
                fences += 1;
                in_fence = !in_fence;
                continue;
            }
            if !in_fence {
                outside.push_str(line);
                outside.push('\n');
            }
        }
        if fences % 2 != 0 {
            return Some(format!("{fences} fences"));
        }
        // Inline code and link targets are not read for mentions; they separate words.
        let mut plain = String::new();
        let (mut code, mut token) = (false, false);
        for c in outside.chars() {
            match c {
                '`' if !token => {
                    code = !code;
                    plain.push(' ');
                }
                '<' if !code => {
                    token = true;
                    plain.push(' ');
                }
                '|' | '>' if token => token = false,
                '\n' => {
                    code = false;
                    plain.push(c);
                }
                _ if !code && !token => plain.push(c),
                _ => {}
            }
        }
        for (i, _) in plain.match_indices('@') {
            let before = plain[..i].chars().next_back();
            let after = &plain[i + 1..];
            if before.is_none_or(|b| !b.is_alphanumeric())
                && ["here", "channel", "everyone"].iter().any(|w| after.starts_with(w))
            {
                return Some(format!("a bare broadcast in {plain:?}"));
            }
        }
        if plain.contains("<@") {
            return Some("a user mention".to_owned());
        }
        None
    }

    /// The text of the code block in `mrkdwn` as the source had it (escapes and backtick
    /// breaks undone).
    fn code_content(mrkdwn: &str) -> Option<String> {
        let inner = mrkdwn.split_once("```\n")?.1.rsplit_once("\n```")?.0;
        let unbroken = inner.replace("`\u{200B}`", "``").replace("`\u{200B}`", "``");
        Some(super::super::markup::unescape(&unbroken))
    }

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
        let out = from_markdown("[run](https://a.example/```)\n\n@here");
        assert!(!out.contains("```"), "a backtick in a URL is not a link: {out}");
        assert_eq!(inert_problem(&out), None, "{out}");
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
    fn an_agent_code_block_cannot_be_closed_from_inside() {
        // A four-backtick fence holds three backticks as text; so does a tilde fence.
        let md = "````\nls\n```\n@here <!channel> *bold*\n````\n\n~~~\necho ```\n@channel\n~~~\n\ndone";
        let out = from_markdown(md);
        assert_eq!(inert_problem(&out), None, "{out}");
        assert_eq!(out.matches(FENCE).count(), 4, "only the bridge's fences: {out}");
        assert_eq!(
            out,
            "```\nls\n`\u{200B}`\u{200B}`\n@here &lt;!channel&gt; *bold*\n```\n\n```\necho `\u{200B}`\u{200B}`\n@channel\n```\n\ndone"
        );
    }

    #[test]
    fn backticks_outside_code_open_nothing() {
        let out = from_markdown("before ``` @here\n\nand `` ` `` then ```` x");
        assert_eq!(inert_problem(&out), None, "{out}");
        assert!(!out.contains(FENCE), "{out}");
        assert!(out.contains("`ˋ`"), "a backtick in inline code is shown as ˋ: {out}");
        let table = from_markdown("| a | b |\n|---|---|\n| ``` | @here |");
        assert_eq!(table.matches(FENCE).count(), 2, "{table}");
        assert!(table.contains("`\u{200B}`\u{200B}`"), "{table}");
    }

    #[test]
    fn code_blocks_hold_any_text() {
        let text = "rm -rf /tmp/x && echo '```' > f\n``````\n<!here> @channel";
        let block = code_block(text);
        assert_eq!(inert_problem(&block), None, "{block}");
        assert!(block.starts_with("```\nrm -rf /tmp/x &amp;&amp; echo '`\u{200B}`\u{200B}`' &gt; f\n"), "{block}");
        assert!(block.ends_with("\n&lt;!here&gt; @channel\n```"), "{block}");
        assert_eq!(code_block_chars(text), block.chars().count());
        assert_eq!(code_content(&block).as_deref(), Some(text));
        assert_eq!(split(&block, 3000), vec![block.clone()], "broken backticks do not toggle split");
    }

    #[test]
    fn code_blocks_fit_by_their_escaped_length() {
        let text = "&".repeat(1000);
        let whole = code_block_within(&text, 10_000);
        assert_eq!((whole.shown, whole.cut), (1000, false));
        assert_eq!(whole.text, code_block(&text));
        let fitted = code_block_within(&text, 100);
        assert!(fitted.cut);
        assert_eq!(fitted.text.chars().count(), 8 + 18 * 5 + 1, "{}", fitted.text);
        assert_eq!(fitted.shown, 18);
        assert_eq!(fitted.text, format!("```\n{}…\n```", "&amp;".repeat(18)));
    }

    #[test]
    fn text_fits_by_its_escaped_length_between_characters() {
        assert_eq!(inert_within("a<b", 10), "a&lt;b");
        assert_eq!(inert_within("<<<<", 10), "&lt;&lt;…", "never cut inside an entity");
        assert_eq!(inert_within("@here now", 4), "@\u{2060}h…");
        assert_eq!(inert_within("日本語🙂🙂", 3), "日本…");
        assert_eq!(inert_within("anything", 0), "");
        let within = escape_within("``````", 6);
        assert_eq!(within.text, "`\u{200B}`\u{200B}`…");
        assert_eq!((within.shown, within.cut), (3, true));
        assert_eq!(inline_code("a`b\nc <d>", 100), "`aˋb c &lt;d&gt;`");
        assert_eq!(inline_code(&"&".repeat(100), 20), format!("`{}…`", "&amp;".repeat(3)));
    }

    #[test]
    fn a_link_shows_where_it_goes() {
        let cases = [
            (
                "[https://good.example](https://evil.example/x)",
                "<https://evil.example/x|https://good.example (evil.example)>",
            ),
            ("[good.example](https://evil.example)", "<https://evil.example|good.example (evil.example)>"),
            (
                "[see www.good.example/login now](https://evil.example)",
                "<https://evil.example|see www.good.example/login now (evil.example)>",
            ),
            ("[**good.example**](https://evil.example)", "<https://evil.example|*good.example* (evil.example)>"),
            (
                "[Good.Example](https://good.example.evil.example)",
                "<https://good.example.evil.example|Good.Example (good.example.evil.example)>",
            ),
            (
                "[the dashboard](https://good.example@evil.example/)",
                "<https://good.example@evil.example/|the dashboard (evil.example)>",
            ),
            (
                "[ops@good.example](mailto:attacker@evil.example)",
                "<mailto:attacker@evil.example|ops@good.example (attacker@evil.example)>",
            ),
            ("[gооgle.com](https://gооgle.com/)", "<https://gооgle.com/|gооgle.com (xn--ggle-55da.com)>"),
            // Labels that name the target, or no host at all, stay as they are.
            ("[runbook](https://evil.example/x)", "<https://evil.example/x|runbook>"),
            ("[good.example](https://good.example/a)", "<https://good.example/a|good.example>"),
            ("[example.com docs](https://docs.example.com)", "<https://docs.example.com|example.com docs>"),
            ("[https://good.example/a?b=1](https://good.example/a?b=1)", "<https://good.example/a?b=1>"),
            ("[ops@good.example](mailto:ops@good.example)", "<mailto:ops@good.example|ops@good.example>"),
            ("[version 1.2.3](https://good.example)", "<https://good.example|version 1.2.3>"),
        ];
        for (markdown, expected) in cases {
            assert_eq!(from_markdown(markdown), expected, "{markdown}");
        }
        assert_eq!(from_markdown("<https://a.example/?x=1&y=2>"), "<https://a.example/?x=1&amp;y=2>");
    }

    #[test]
    fn misleading_labels_name_the_real_target() {
        assert_eq!(misleading_label("good.example", "https://evil.example").as_deref(), Some("evil.example"));
        assert_eq!(misleading_label("10.0.0.1", "https://10.0.0.2/").as_deref(), Some("10.0.0.2"));
        assert_eq!(misleading_label("CPU dashboard", "https://evil.example"), None);
        assert_eq!(misleading_label("grafana.example.com", "https://grafana.example.com/d/1"), None);
        assert_eq!(misleading_label("docs", "ftp://old.example"), None, "a label naming no host is its own");
        assert_eq!(misleading_label("see it", "https://good.example@evil.example/").as_deref(), Some("evil.example"));
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
    fn split_reopens_quoted_code_fences() {
        let code = (0..100).map(|i| format!("row {i:03} ``` @here")).collect::<Vec<_>>().join("\n");
        let out = from_markdown(&format!("> look:\n>\n> ````\n> {}\n> ````\n\nafter", code.replace('\n', "\n> ")));
        let pieces = split(&out, 500);
        assert!(pieces.len() > 2);
        for piece in &pieces {
            assert_eq!(inert_problem(piece), None, "{piece}");
            assert!(piece.chars().count() <= 500);
        }
        assert!(pieces[1].starts_with("> ```\n> row"), "{}", pieces[1]);
    }

    #[test]
    fn split_cuts_long_lines_outside_entities_and_tokens() {
        let text = "&amp;".repeat(1000);
        for piece in split(&text, 3000) {
            assert!(piece.chars().count() <= 3000);
            assert!(piece.starts_with("&amp;") && piece.ends_with("&amp;"), "cut inside an entity");
        }
        let text = format!("{} <@U1> {}", "x".repeat(95), "y".repeat(50));
        let pieces = split(&text, 112);
        assert!(pieces.iter().any(|p| p.contains("<@U1>")), "{pieces:?}");
        for n in 1..80 {
            let text = format!("{}ops@here.example", "a".repeat(n));
            for piece in split(&text, 40) {
                assert!(!piece.starts_with('@'), "a cut before an address's @ leaves a bare @here: {piece}");
            }
        }
    }

    #[test]
    fn cases_proptest_found() {
        assert_eq!(from_markdown("`0`"), "`0`");
        assert_eq!(from_markdown("``@\nhere"), "`\u{200B}`@\nhere");
        assert_eq!(inert_problem(&from_markdown("@``here")), None);
        assert_eq!(from_markdown("@<herehttps://e.x/>"), "@\u{2060}herehttps://e.x/");
        let out = from_markdown("a `x https://e.x/@here` b");
        assert_eq!(out, "a `x https://e.x/@\u{2060}here` b", "inline code may be split away from its backticks");
    }

    #[test]
    fn an_unclosed_fence_is_closed_for_display() {
        let pieces = split("Running:\n```\nkubectl get pods", 3000);
        assert_eq!(pieces, vec!["Running:\n```\nkubectl get pods\n```".to_owned()]);
        assert_eq!(split("Running:\n```", 3000), vec!["Running:\n```\n```".to_owned()]);
    }

    #[test]
    fn cut_keeps_fences_balanced() {
        let text = format!("*Output*\n```\n{}\n```\nafter", "row\n".repeat(300));
        let out = cut(&text, 200);
        assert!(out.chars().count() <= 200, "{}", out.chars().count());
        assert_eq!(inert_problem(&out), None, "{out}");
        assert!(out.ends_with("```\n…"), "{out}");
        assert_eq!(cut("short", 200), "short");
    }

    #[test]
    fn plain_lines_are_inert_single_lines() {
        assert_eq!(inert_plain("  Running tool:\n kubectl\t get pods  ", 100), "Running tool: kubectl get pods");
        assert_eq!(
            inert_plain("ping <!here> and <@U1> @channel", 100),
            "ping ‹!here› and ‹@\u{2060}U1› @\u{2060}channel"
        );
        assert_eq!(inert_plain("mail ops@example.com, R&D", 100), "mail ops@example.com, R&D");
        assert_eq!(inert_plain("a\u{202e}b\u{0}c", 100), "a b c");
        assert_eq!(inert_plain("ééééé", 3), "éé…", "cut between characters");
        assert_eq!(inert_plain(" \n ", 10), "");
        assert_eq!(inert_plain("x", 0), "");
        assert_eq!(inert_plain("```", 10), "`\u{200B}`\u{200B}`");
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

        #[test]
        fn any_markdown_renders_inert(input in "(?s)(\\PC|[`>@\n*_~\\[\\]()<!|&#-]|here|channel|https://e\\.x/){0,300}", max in 40usize..3000) {
            let out = from_markdown(&input);
            proptest::prop_assert_eq!(inert_problem(&out), None, "{:?}", out);
            for piece in split(&out, max) {
                proptest::prop_assert!(piece.chars().count() <= max);
                proptest::prop_assert_eq!(inert_problem(&piece), None, "{:?}", piece);
            }
            let shortened = cut(&out, max);
            proptest::prop_assert!(shortened.chars().count() <= max);
            proptest::prop_assert_eq!(inert_problem(&shortened), None, "{:?}", shortened);
        }

        #[test]
        fn any_code_round_trips_through_its_block(text in "(?s)([^\r\u{200B}]|`{1,5}|<!here>|@channel){0,200}") {
            let block = code_block(&text);
            proptest::prop_assert_eq!(inert_problem(&block), None, "{:?}", block);
            proptest::prop_assert_eq!(code_content(&block), Some(text.clone()));
            // The same text as an agent's fenced block, with a fence longer than any run in it.
            let fence = "`".repeat(text.split(|c| c != '`').map(str::len).max().unwrap_or(0).max(2) + 1);
            let markdown = format!("{fence}\n{text}\n{fence}\n\n@here after");
            let out = from_markdown(&markdown);
            proptest::prop_assert_eq!(inert_problem(&out), None, "{:?}", out);
            proptest::prop_assert_eq!(out.matches(FENCE).count(), 2, "{:?}", out);
            proptest::prop_assert!(out.ends_with("```\n\n@\u{2060}here after"), "{:?}", out);
        }

        #[test]
        fn any_text_is_safe_to_cut(text in "(?s)\\PC{0,300}|[&<>`@ ]{0,300}", max in 0usize..400) {
            let fitted = escape_within(&text, max);
            proptest::prop_assert!(fitted.text.chars().count() <= max);
            proptest::prop_assert_eq!(fitted.cut, escape(&text).chars().count() > max);
            if !fitted.cut {
                proptest::prop_assert_eq!(&fitted.text, &escape(&text));
            }
            let inert = inert_within(&text, max);
            proptest::prop_assert!(inert.chars().count() <= max);
            proptest::prop_assert_eq!(inert_problem(&inert), None, "{:?}", inert);
            proptest::prop_assert!(code_block_within(&text, max.max(9)).text.chars().count() <= max.max(9));
            proptest::prop_assert!(inline_code(&text, max.max(3)).chars().count() <= max.max(3));
            let line = inert_plain(&text, max);
            proptest::prop_assert!(line.chars().count() <= max);
            proptest::prop_assert!(!line.contains(['<', '>', '\n']) && !line.chars().any(char::is_control), "{:?}", line);
            proptest::prop_assert_eq!(inert_problem(&line), None, "{:?}", line);
            let _ = safe_cut(&text, max);
            let _ = misleading_label(&text, "https://good.example/");
            if max >= 20 {
                proptest::prop_assert!(cut(&text, max).chars().count() <= max);
                for piece in split(&text, max) {
                    proptest::prop_assert!(piece.chars().count() <= max);
                }
            }
        }
    }
}
