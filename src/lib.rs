//! helpdesk-bridge: a Slack thread is a DuploCloud AI HelpDesk ticket.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view. In short:
//!
//! - [`config`]: settings from the environment and the command line, validated once.
//! - [`store`]: everything remembered (mappings, dedup marks, locks, cards, history), in
//!   Redis or an embedded database.
//! - [`model`] and [`ids`]: the domain's records and identifiers.
//! - [`telemetry`]: logs and metrics.

pub mod config;
pub mod ids;
pub mod model;
pub mod store;
pub mod telemetry;
