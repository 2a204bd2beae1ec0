//! Files shared in a ticket thread reach the agent with their message: a text file (a log,
//! YAML, JSON, source…) up to `FILE_INLINE_MAX_BYTES` is read (`files:read`) and inlined as
//! a fenced block under its name; any other file is named with its size and type, and the
//! thread is told which files the agent could not read, and why. A message that only
//! shares files is a message like any other.

use futures_util::future::join_all;

use super::{Bridge, one_line};
use crate::{
    ids::ThreadKey,
    inbound::SharedFile,
    slack::{api::Download, kit, notices},
};

/// Slack file types read as text (besides `text/*` and a few textual MIME types).
const TEXT_TYPES: &[&str] = &[
    "text",
    "log",
    "yaml",
    "yml",
    "json",
    "xml",
    "csv",
    "tsv",
    "markdown",
    "md",
    "shell",
    "sh",
    "bash",
    "zsh",
    "python",
    "py",
    "rust",
    "rs",
    "go",
    "javascript",
    "js",
    "typescript",
    "ts",
    "java",
    "kotlin",
    "scala",
    "c",
    "cpp",
    "csharp",
    "ruby",
    "php",
    "perl",
    "swift",
    "sql",
    "diff",
    "patch",
    "toml",
    "ini",
    "dockerfile",
    "terraform",
    "hcl",
    "powershell",
    "properties",
    "config",
    "conf",
    "env",
];
/// Textual MIME types outside `text/*`.
const TEXT_MIME: &[&str] = &[
    "application/json",
    "application/x-yaml",
    "application/yaml",
    "application/xml",
    "application/javascript",
    "application/x-sh",
    "application/toml",
    "application/x-ndjson",
];
/// Files of one message read at most (Slack shares at most ten).
const FILES_READ: usize = 10;
/// Characters of a file's name in the thread's notice.
const NAME_CHARS: usize = 100;

/// Whether a shared file is one to read as text.
fn text_like(file: &SharedFile) -> bool {
    let mime = file.mimetype.to_ascii_lowercase();
    mime.starts_with("text/")
        || TEXT_MIME.contains(&mime.as_str())
        || TEXT_TYPES.contains(&file.filetype.to_ascii_lowercase().as_str())
}

/// A size for people, as Slack shows one: `812 B`, `12.1 KB`, `64 KB`, `1.2 MB`.
pub(super) fn size(bytes: u64) -> String {
    let (value, unit) = match bytes {
        0..1024 => return format!("{bytes} B"),
        1024..1_048_576 => (bytes as f64 / 1024.0, "KB"),
        _ => (bytes as f64 / 1_048_576.0, "MB"),
    };
    let value = format!("{value:.1}");
    format!("{} {unit}", value.strip_suffix(".0").unwrap_or(&value))
}

/// `text` fenced so that nothing in it closes the fence: one backtick more than its
/// longest run, and at least three.
pub(super) fn fenced(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat((longest + 1).max(3));
    format!("{fence}\n{}\n{fence}", text.trim_end_matches('\n'))
}

/// What became of one file: inlined, or not read, and why.
enum Read {
    Inline(String),
    Unread(String),
}

impl Bridge {
    /// The files of a message as the agent gets them: text to append to the message, and
    /// the files it could not read (name, why), which the thread is told about.
    pub(super) async fn read_files(&self, thread: &ThreadKey, files: &[SharedFile]) -> String {
        if files.is_empty() {
            return String::new();
        }
        let max = self.slack().file_max();
        let results = join_all(files.iter().take(FILES_READ).map(|file| self.read_file(file, max))).await;
        let mut out = String::new();
        let mut unread: Vec<(String, String)> = Vec::new();
        for (file, read) in files.iter().zip(results) {
            match read {
                Read::Inline(text) => {
                    let name = one_line(&file.name);
                    out.push_str(&format!("\n\nFile `{name}` ({}):\n{}", size(file.size), fenced(&text)));
                }
                Read::Unread(why) => {
                    let kind = if file.mimetype.is_empty() { file.filetype.clone() } else { file.mimetype.clone() };
                    out.push_str(&format!(
                        "\n\nFile `{}` ({}, {}) was shared but not included: {why}.",
                        one_line(&file.name),
                        size(file.size),
                        if kind.is_empty() { "unknown type" } else { kind.as_str() }
                    ));
                    unread.push((kit::truncate(&one_line(&file.name), NAME_CHARS), why));
                }
            }
        }
        for file in files.iter().skip(FILES_READ) {
            let name = kit::truncate(&one_line(&file.name), NAME_CHARS);
            unread.push((name, format!("only the first {FILES_READ} files are read")));
        }
        if !unread.is_empty() {
            self.tell(thread, &notices::files_unread(&unread)).await;
        }
        out
    }

    async fn read_file(&self, file: &SharedFile, max: usize) -> Read {
        if !text_like(file) {
            return Read::Unread("it is not a text file".to_owned());
        }
        if file.size > max as u64 {
            return Read::Unread(format!("it is larger than {}", size(max as u64)));
        }
        let Some(url) = &file.url else {
            return Read::Unread("Slack gave no link to download it".to_owned());
        };
        let html = file.mimetype.eq_ignore_ascii_case("text/html");
        match self.slack().download(url, html).await {
            Ok(Download::Whole(bytes)) => match String::from_utf8(bytes) {
                Ok(text) => Read::Inline(text),
                Err(_) => Read::Unread("it is not UTF-8 text".to_owned()),
            },
            Ok(Download::TooLarge) => Read::Unread(format!("it is larger than {}", size(max as u64))),
            Err(err) => {
                tracing::warn!(code = err.code(), "could not download a shared file");
                Read::Unread(format!("it could not be downloaded ({err})"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, mimetype: &str, filetype: &str) -> SharedFile {
        SharedFile { name: name.into(), mimetype: mimetype.into(), filetype: filetype.into(), size: 1, url: None }
    }

    #[test]
    fn text_files_are_known_by_type_and_fences_cannot_be_closed() {
        assert!(text_like(&file("app.log", "text/plain", "text")));
        assert!(text_like(&file("values.yaml", "application/octet-stream", "yaml")));
        assert!(text_like(&file("x.json", "application/json", "")));
        assert!(!text_like(&file("core", "application/octet-stream", "binary")));
        assert!(!text_like(&file("shot.png", "image/png", "png")));
        assert_eq!(fenced("a\n"), "```\na\n```");
        assert_eq!(fenced("x ``` y ```` z"), "`````\nx ``` y ```` z\n`````");
        assert_eq!(
            [size(812), size(12_345), size(65_536), size(1_234_567)],
            ["812 B", "12.1 KB", "64 KB", "1.2 MB"].map(String::from)
        );
    }
}
