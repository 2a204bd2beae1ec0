//! The domain: what an inbound item means for a ticket.
//!
//! [`Bridge`] is the dispatcher's [`Handler`]. It receives items already verified,
//! deduplicated and ordered per thread.

use futures_util::future::BoxFuture;

use crate::{dispatch::Handler, inbound::Inbound};

/// The bridge between Slack threads and HelpDesk tickets.
#[derive(Debug, Default)]
pub struct Bridge {}

impl Bridge {
    /// A bridge.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Handler for Bridge {
    fn handle(&self, item: Inbound) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            tracing::debug!(team = %item.team, order_key = %item.order_key(), "inbound item received");
        })
    }
}
