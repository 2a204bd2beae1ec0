//! Who the bot is: learned from `auth.test` (egress), used to filter what arrives (ingress)
//! and to tell the bridge's own messages apart. It lives apart from both directions so that
//! neither depends on the other.

use crate::ids::{TeamId, UserId};

/// Who the bot is, from `auth.test`; needed to ignore its own messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    /// The bot's user id.
    pub user_id: UserId,
    /// The bot's bot id.
    pub bot_id: Option<String>,
    /// The workspace the token belongs to.
    pub team_id: TeamId,
}
