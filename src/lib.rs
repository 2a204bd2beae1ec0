//! helpdesk-bridge: a Slack thread is a DuploCloud AI HelpDesk ticket.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view. The layout:
//!
//! - [`app`]: builds and runs the application; `main` and the tests share it.
//! - [`check`]: the `check` subcommand.
//! - [`config`]: settings from the environment and the command line, validated once.
//! - [`http`]: Slack's request URLs and the operations endpoints.
//! - [`slack`]: the Slack boundary: signatures, payload parsing, Socket Mode, Web API.
//! - [`helpdesk`]: the HelpDesk boundary: its API client and wire formats.
//! - [`inbound`]: the one transport-independent inbound type.
//! - [`dispatch`]: dedup, per-thread ordering, bounded workers.
//! - [`bridge`]: the domain: what an inbound item means for a ticket.
//! - [`store`]: everything remembered, in Redis or an embedded database.
//! - [`model`] and [`ids`]: the domain's records and identifiers.
//! - [`telemetry`]: logs and metrics.

pub mod app;
pub mod bridge;
pub mod check;
pub mod config;
pub mod dispatch;
pub mod helpdesk;
pub mod http;
pub mod ids;
pub mod inbound;
pub mod model;
pub mod slack;
pub mod store;
pub mod telemetry;
