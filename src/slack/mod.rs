//! The Slack boundary: the only module (with `helpdesk`) that knows Slack's wire formats.
//!
//! - [`verify`]: request signatures.
//! - [`ingress`]: Slack payloads (HTTP or Socket Mode) into [`crate::inbound::Inbound`].
//! - [`socket`]: the Socket Mode connection loop.
//! - [`api`]: Web API calls (egress), rate-controlled.

pub mod api;
pub mod ingress;
pub mod socket;
pub mod verify;
