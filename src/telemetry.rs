//! Logging and metrics.
//!
//! Logs go through `tracing`, as text or JSON, filtered by `RUST_LOG` (default `info`).
//! Nothing secret and no message body is logged at `info` or above: bodies appear only at
//! `debug`, tokens never (they are `SecretString`s).
//!
//! Metrics live in a [`Metrics`] registry owned by the application rather than a global
//! recorder, so that several applications in one process (the test suite) keep separate
//! counts and `/metrics` shows only its own.

use std::{
    io::IsTerminal,
    sync::{Arc, atomic::AtomicU64},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Installs the global tracing subscriber. Call once, from `main`.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => {
            let ansi = colour(std::io::stdout().is_terminal(), std::env::var_os("NO_COLOR"));
            registry.with(fmt::layer().with_target(false).with_ansi(ansi)).init();
        }
        LogFormat::Json => registry.with(fmt::layer().json().flatten_event(true)).init(),
    }
}

/// Whether text logs are coloured: only on a terminal (escape codes in a file or a log
/// pipeline are noise), and never when `NO_COLOR` is set to anything (no-color.org).
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|value| value.is_empty())
}

/// Labels of an HTTP request count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route, e.g. `/slack/events`.
    pub route: &'static str,
    /// What became of the request, e.g. `ok`, `bad_signature`, `duplicate`.
    pub outcome: &'static str,
}

/// Labels of an outbound call count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The Slack method (`chat.update`) or HelpDesk operation (`send_message`).
    pub operation: String,
    /// `ok` or an error code.
    pub outcome: String,
}

/// Labels of an ack-latency observation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabels {
    /// `http` or `socket`.
    pub transport: &'static str,
}

/// The application's metrics, rendered at `/metrics`.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Inbound requests by route and outcome.
    pub requests: Family<RouteLabels, Counter>,
    /// Seconds from receiving a Slack request to acknowledging it.
    pub ack_seconds: Family<TransportLabels, Histogram>,
    /// Inbound items dropped as already seen.
    pub dedup_hits: Counter,
    /// Slack Web API calls by method and outcome.
    pub slack_calls: Family<CallLabels, Counter>,
    /// HelpDesk calls by operation and outcome.
    pub helpdesk_calls: Family<CallLabels, Counter>,
    /// Tickets opened from Slack.
    pub tickets_opened: Counter,
    /// Agent turns by outcome (`ok`, `interrupted`, `failed`).
    pub turns: Family<OutcomeLabels, Counter>,
    /// Inbox items this replica finished, by outcome (`handled`, `panicked`, `undecodable`,
    /// `lost_lease`).
    pub inbox_items: Family<OutcomeLabels, Counter>,
    /// Inbox keys this replica took over from a holder whose lease ran out.
    pub inbox_takeovers: Counter,
    /// Seconds from an item's recording to the start of its handling.
    pub inbox_wait_seconds: Histogram,
    /// Items recorded in the inbox and not yet finished (store-wide; read at scrape time).
    pub inbox_depth: Gauge,
    /// Seconds the key waiting longest for a worker has waited (store-wide).
    pub inbox_oldest_wait_seconds: Gauge<f64, AtomicU64>,
    /// Inbox keys under a lease (store-wide).
    pub inbox_leases: Gauge,
    /// Inbox keys this replica holds a lease on now.
    pub inbox_leases_held: Gauge,
    /// Ratings of the agent's replies recorded on tickets, by rating (`positive`,
    /// `negative`).
    pub feedback: Family<RatingLabels, Counter>,
    /// Command decisions by verdict and source.
    pub approval_decisions: Family<DecisionLabels, Counter>,
}

/// Labels of a command decision count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `approved`, `approved_partly` (one of several approvals), `rejected`, `ignored` or
    /// `undone`.
    pub verdict: &'static str,
    /// `person`, `policy` (a rule) or `always` (the ticket's always-allowed list).
    pub source: &'static str,
}

/// Labels of a rating count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RatingLabels {
    /// `positive` or `negative`.
    pub rating: &'static str,
}

/// Labels of an outcome count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// What became of it.
    pub outcome: &'static str,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("helpdesk_bridge");
        let requests = Family::<RouteLabels, Counter>::default();
        registry.register("requests", "Inbound requests by route and outcome", requests.clone());
        // Acks are sub-millisecond when healthy; the buckets reach 3 s, Slack's deadline.
        let ack_seconds = Family::<TransportLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1.0, 3.0])
        });
        registry.register("ack_seconds", "Time to acknowledge a Slack request", ack_seconds.clone());
        let dedup_hits = Counter::default();
        registry.register("dedup_hits", "Inbound items dropped as already handled", dedup_hits.clone());
        let slack_calls = Family::<CallLabels, Counter>::default();
        registry.register("slack_calls", "Slack Web API calls by method and outcome", slack_calls.clone());
        let helpdesk_calls = Family::<CallLabels, Counter>::default();
        registry.register("helpdesk_calls", "HelpDesk calls by operation and outcome", helpdesk_calls.clone());
        let tickets_opened = Counter::default();
        registry.register("tickets_opened", "Tickets opened from Slack", tickets_opened.clone());
        let turns = Family::<OutcomeLabels, Counter>::default();
        registry.register("turns", "Agent turns by outcome", turns.clone());
        let inbox_items = Family::<OutcomeLabels, Counter>::default();
        registry.register("inbox_items", "Inbox items this replica finished, by outcome", inbox_items.clone());
        let inbox_takeovers = Counter::default();
        registry.register(
            "inbox_takeovers",
            "Inbox keys taken over after their holder's lease ran out",
            inbox_takeovers.clone(),
        );
        let inbox_wait_seconds = Histogram::new([0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10.0, 30.0, 60.0, 300.0, 1800.0]);
        registry.register(
            "inbox_wait_seconds",
            "Time from recording an item to starting to handle it",
            inbox_wait_seconds.clone(),
        );
        let inbox_depth = Gauge::default();
        registry.register("inbox_depth", "Items recorded in the inbox and not yet finished", inbox_depth.clone());
        let inbox_oldest_wait_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "inbox_oldest_wait_seconds",
            "How long the inbox key waiting longest for a worker has waited",
            inbox_oldest_wait_seconds.clone(),
        );
        let inbox_leases = Gauge::default();
        registry.register("inbox_leases", "Inbox keys under a lease, across replicas", inbox_leases.clone());
        let inbox_leases_held = Gauge::default();
        registry.register("inbox_leases_held", "Inbox keys this replica holds a lease on", inbox_leases_held.clone());
        let feedback = Family::<RatingLabels, Counter>::default();
        registry.register("feedback", "Ratings of the agent's replies recorded on tickets", feedback.clone());
        let approval_decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "approval_decisions",
            "Decisions on proposed commands by verdict and source",
            approval_decisions.clone(),
        );
        Self {
            registry: Arc::new(registry),
            requests,
            ack_seconds,
            dedup_hits,
            slack_calls,
            helpdesk_calls,
            tickets_opened,
            turns,
            inbox_items,
            inbox_takeovers,
            inbox_wait_seconds,
            inbox_depth,
            inbox_oldest_wait_seconds,
            inbox_leases,
            inbox_leases_held,
            feedback,
            approval_decisions,
        }
    }
}

impl Metrics {
    /// Counts one inbound request.
    pub fn request(&self, route: &'static str, outcome: &'static str) {
        self.requests.get_or_create(&RouteLabels { route, outcome }).inc();
    }

    /// Counts one Slack Web API call.
    pub fn slack_call(&self, method: &str, outcome: &str) {
        let labels = CallLabels { operation: method.to_owned(), outcome: outcome.to_owned() };
        self.slack_calls.get_or_create(&labels).inc();
    }

    /// Counts one HelpDesk call.
    pub fn helpdesk_call(&self, operation: &str, outcome: &str) {
        let labels = CallLabels { operation: operation.to_owned(), outcome: outcome.to_owned() };
        self.helpdesk_calls.get_or_create(&labels).inc();
    }

    /// Counts one agent turn.
    pub fn turn(&self, outcome: &'static str) {
        self.turns.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Counts one decision on a proposed command.
    pub fn approval_decision(&self, verdict: &'static str, source: &'static str) {
        self.approval_decisions.get_or_create(&DecisionLabels { verdict, source }).inc();
    }

    /// Counts one rating recorded on a ticket.
    pub fn feedback(&self, rating: crate::model::Rating) {
        self.feedback.get_or_create(&RatingLabels { rating: rating.as_str() }).inc();
    }

    /// Counts one finished inbox item.
    pub fn inbox_item(&self, outcome: &'static str) {
        self.inbox_items.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())), "an empty NO_COLOR does not count");
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None), "a file or a pipe gets plain text");
    }
}
