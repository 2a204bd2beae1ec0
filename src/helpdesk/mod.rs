//! The HelpDesk boundary: the DuploCloud AI HelpDesk API, as duploctl and the other real
//! clients call it. With `slack`, the only module that knows wire JSON: the rest of the
//! bridge hands over and gets back typed values ([`OutgoingMessage`], [`Ticket`],
//! [`AgentEvent`](events::AgentEvent), …).
//!
//! - `client`: [`HelpdeskClient`], its requests and the bodies it sends.
//! - `decisions`: the answer to an approval card (`cmds`, `tool_calls`, `approvals`).
//! - `error`: [`HelpdeskError`].
//! - [`events`]: the agent event model, from streamed events or a unary reply.
//! - [`limits`]: how much the bridge takes in, at most.
//! - [`sse`]: stream framing (SSE and NDJSON), and the adapter from a reply to events.
//! - `types`: workspaces, agents and tickets as decoded, and the status mapping.
//! - `wire`: envelope and key-casing tolerance.

mod client;
mod decisions;
mod error;
pub mod events;
pub mod limits;
pub mod sse;
mod types;
mod wire;

pub use self::{
    client::{HelpdeskClient, OutgoingMessage, chat_url},
    error::HelpdeskError,
    sse::ReplyStream,
    types::{Agent, ApiStatus, Disposition, Ticket, Workspace},
};
