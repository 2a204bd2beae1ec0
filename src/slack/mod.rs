//! The Slack boundary: the only module (with `helpdesk`) that knows Slack's wire formats.
//!
//! - [`verify`]: request signatures.
//! - [`identity`]: who the bot is (`auth.test`), shared by ingress, egress and the bridge.
//! - [`ingress`]: Slack payloads (HTTP or Socket Mode) into [`crate::inbound::Inbound`].
//! - [`intake`]: a parsed delivery into the dispatcher, and the one rule for acknowledging
//!   it or letting Slack redeliver, which both transports follow.
//! - [`socket`]: the Socket Mode connection loop.
//! - [`api`]: Web API calls (egress), rate-controlled.
//! - [`kit`]: Block Kit primitives (messages, buttons, sections, selects), Slack's limits
//!   and validation.
//! - [`blocks`]: reply, executed-command, link and notice screens and the creation modal
//!   (pure).
//! - [`card`]: the approval card and the rejection modal (pure).
//! - [`controls`]: every action, callback and input id and value codec; clicks, modal
//!   submissions and shortcuts decoded into typed intents.
//! - [`notices`]: every sentence the bridge says in Slack (pure).
//! - [`oauth`]: the OAuth v2 install flow on the wire: the authorize link, the signed state
//!   cookie, `oauth.v2.access`'s answer and the install pages (pure).
//! - [`ticket`]: the ticket header, lifecycle modals, lists and the Home tab (pure).
//! - [`mrkdwn`]: agent Markdown into safe, split mrkdwn.
//! - [`pace`]: per-minute budgets for Slack calls, and the turnstile that shares them fairly.
//! - [`markup`]: Slack markup into plain text for the agent.
//! - [`stream`]: native streaming chunks, and agent text made inert delta by delta.

pub mod api;
pub mod blocks;
pub mod card;
pub mod controls;
pub mod identity;
pub mod ingress;
pub mod intake;
pub mod kit;
pub mod markup;
pub mod mrkdwn;
pub mod notices;
pub mod oauth;
pub mod pace;
pub mod socket;
pub mod stream;
pub mod ticket;
pub mod verify;
