//! The integration suite: one binary, one module per capability.
//!
//! Tests talk to a real Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`), each under
//! its own random key prefix, and to the real HTTP router of the real application, with
//! wiremock standing in for Slack and the HelpDesk.

mod support;

mod approvals;
mod binary;
mod bridge;
mod budgets;
mod critical_path;
mod dispatch;
mod faults;
mod feedback;
mod helpdesk;
mod hostile_ingress;
mod inbox;
mod ingress;
mod lifecycle;
mod render;
mod replicas;
mod safety;
mod socket;
mod store;
mod streaming;
mod workspaces;
