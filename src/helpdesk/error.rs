//! What can go wrong talking to the HelpDesk, in terms a caller can act on.
//!
//! Statuses map as duploctl maps them; the HelpDesk's own words are quoted briefly
//! ([`limits::quote`]), never the token.

use reqwest::StatusCode;

use super::limits::{self, Oversized};

/// A HelpDesk failure a caller can act on. Messages quote the HelpDesk's own words briefly
/// ([`limits::quote`]), never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelpdeskError {
    /// 404, or a 400 saying "not found", or a name that matched nothing.
    #[error("not found: {0}")]
    NotFound(String),
    /// 401 or 403: the token is wrong or lacks rights.
    #[error("the HelpDesk refused the token: {0}")]
    Unauthorized(String),
    /// Any other 400.
    #[error("the HelpDesk rejected the request: {0}")]
    BadRequest(String),
    /// A 5xx or other unexpected status.
    #[error("the HelpDesk answered {status}: {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The body, shortened.
        message: String,
    },
    /// The request took too long.
    #[error("the HelpDesk did not answer in time")]
    Timeout,
    /// The ticket belongs to a portal that is no longer configured (`PORTALS_FILE`).
    #[error("this ticket's HelpDesk portal ({0}) is no longer configured")]
    Unconfigured(String),
    /// The portal could not be reached.
    #[error("cannot reach the HelpDesk: {0}")]
    Connection(String),
    /// The agent reported an error in its stream.
    #[error("the agent reported an error: {0}")]
    Stream(String),
    /// The answer was not what the API sends.
    #[error("the HelpDesk sent an unexpected reply: {0}")]
    Malformed(String),
    /// A reply stream broke off or went silent part-way.
    #[error("the reply stream broke off: {0}")]
    Interrupted(String),
    /// The HelpDesk sent more than the bridge takes in ([`limits`]); the text says what.
    #[error("{0}")]
    Oversized(String),
    /// A name matched more than one record.
    #[error("{kind} '{name}' is ambiguous: {count} match")]
    Ambiguous {
        /// `workspace` or `agent`.
        kind: &'static str,
        /// The name looked up.
        name: String,
        /// How many matched.
        count: usize,
    },
}

impl HelpdeskError {
    /// A short label for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Unauthorized(_) => "unauthorized",
            Self::BadRequest(_) => "bad_request",
            Self::Server { .. } => "server_error",
            Self::Timeout => "timeout",
            Self::Unconfigured(_) => "unconfigured",
            Self::Connection(_) => "connection",
            Self::Stream(_) => "stream_error",
            Self::Malformed(_) => "malformed",
            Self::Interrupted(_) => "interrupted",
            Self::Oversized(_) => "oversized",
            Self::Ambiguous { .. } => "ambiguous",
        }
    }

    /// Whether a GET that failed so may be tried again.
    pub(super) fn retryable(&self) -> bool {
        matches!(self, Self::Timeout | Self::Connection(_) | Self::Server { status: 502..=504, .. })
    }

    /// Maps a non-2xx status and its body as duploctl does; the body is quoted briefly.
    pub fn from_status(status: StatusCode, body: &str) -> Self {
        let message = limits::quote(body);
        match status.as_u16() {
            404 => Self::NotFound(message),
            401 | 403 => Self::Unauthorized(message),
            400 if message.to_lowercase().contains("not found") => Self::NotFound(message),
            400 => Self::BadRequest(message),
            status => Self::Server { status, message },
        }
    }

    pub(super) fn from_reqwest(err: &reqwest::Error) -> Self {
        if err.is_timeout() {
            Self::Timeout
        } else if err.is_decode() || err.is_body() {
            Self::Malformed(err.to_string())
        } else {
            Self::Connection(err.to_string())
        }
    }

    /// A successful answer past [`limits::BODY_BYTES`].
    pub(super) fn too_large() -> Self {
        Self::Oversized(format!(
            "the HelpDesk's answer was larger than {}, so it was not shown",
            limits::size(limits::BODY_BYTES)
        ))
    }

    /// The error a reply ends with when the HelpDesk sent something too large in it.
    pub(super) fn oversized(what: Oversized) -> Self {
        Self::Oversized(format!("the HelpDesk sent {what} in the agent's reply; the rest was not shown"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_as_duploctl_maps_them() {
        let cases = [
            (404, "gone", HelpdeskError::NotFound("gone".to_owned())),
            (401, "bad token", HelpdeskError::Unauthorized("bad token".to_owned())),
            (403, "no", HelpdeskError::Unauthorized("no".to_owned())),
            (400, "Ticket DEVOPS-9 Not Found", HelpdeskError::NotFound("Ticket DEVOPS-9 Not Found".to_owned())),
            (400, "title required", HelpdeskError::BadRequest("title required".to_owned())),
            (503, "down", HelpdeskError::Server { status: 503, message: "down".to_owned() }),
        ];
        for (status, body, expected) in cases {
            assert_eq!(HelpdeskError::from_status(StatusCode::from_u16(status).unwrap(), body), expected);
        }
    }

    #[test]
    fn error_bodies_are_quoted_briefly() {
        let body = format!("\u{1b}[31mboom\r\n{}", "é".repeat(1 << 20));
        let HelpdeskError::Server { status: 500, message } =
            HelpdeskError::from_status(StatusCode::from_u16(500).unwrap(), &body)
        else {
            panic!("a server error")
        };
        assert_eq!(message, format!("[31mboom {}…", "é".repeat(limits::QUOTE_CHARS - "[31mboom ".len())));
        let long = "Ticket DEVOPS-9 not found ".repeat(100);
        assert!(matches!(
            HelpdeskError::from_status(StatusCode::BAD_REQUEST, &long),
            HelpdeskError::NotFound(m) if m.chars().count() == limits::QUOTE_CHARS + 1
        ));
    }
}
