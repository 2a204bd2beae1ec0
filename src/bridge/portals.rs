//! The HelpDesk portals the bridge serves: one client each, made once, the default first.
//!
//! A ticket belongs to the portal its key names (`TicketKey::host`), so every HelpDesk call
//! for a ticket goes to the portal it was opened on, whatever the channel's portal is now;
//! a channel's new tickets go to its portal (`/helpdesk config portal <name>`), else the
//! default.

use super::Defaults;
use crate::{helpdesk::HelpdeskClient, ids::TicketKey};

/// Whether two portal URLs are the same origin, however written (case, default port).
pub(crate) fn same_origin(a: &str, b: &str) -> bool {
    match (reqwest::Url::parse(a), reqwest::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => a == b,
    }
}

/// One portal.
#[derive(Debug, Clone)]
pub struct Portal {
    /// Its name.
    pub name: String,
    /// Its client.
    pub client: HelpdeskClient,
    /// Its default workspace and agent.
    pub defaults: Defaults,
}

/// Every portal, the default first (there is always one).
#[derive(Debug, Clone)]
pub struct Portals {
    list: Vec<Portal>,
}

impl Portals {
    /// The portals, the default first; `None` when there is none.
    pub fn new(list: Vec<Portal>) -> Option<Self> {
        (!list.is_empty()).then_some(Self { list })
    }

    /// The default portal.
    pub fn default_portal(&self) -> &Portal {
        &self.list[0]
    }

    /// A portal by name (any case).
    pub fn named(&self, name: &str) -> Option<&Portal> {
        self.list.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The portal a ticket was opened on, if it is still configured. With one portal, every
    /// ticket is its (a changed `DUPLO_HOST`, a migrated domain, keep their tickets); with
    /// several, a ticket of a host none of them has is no one's, rather than sent to
    /// another portal.
    pub fn of(&self, ticket: &TicketKey) -> Option<&Portal> {
        match self.list.as_slice() {
            [only] => Some(only),
            list => list.iter().find(|p| same_origin(p.client.host(), &ticket.host)),
        }
    }

    /// The portal a channel's settings name, else the default.
    pub fn for_channel(&self, name: Option<&str>) -> &Portal {
        name.and_then(|n| self.named(n)).unwrap_or_else(|| self.default_portal())
    }

    /// Every portal, the default first.
    pub fn all(&self) -> &[Portal] {
        &self.list
    }

    /// Every portal's name, the default first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|p| p.name.as_str())
    }

    /// Whether there is more than one.
    pub fn several(&self) -> bool {
        self.list.len() > 1
    }
}

#[cfg(test)]
mod tests {
    use super::same_origin;

    #[test]
    fn origins_compare_however_written() {
        assert!(same_origin("https://Prod.Example", "https://prod.example:443"));
        assert!(same_origin("http://127.0.0.1:8080", "http://127.0.0.1:8080"));
        assert!(!same_origin("https://prod.example", "https://qa.example"));
        assert!(!same_origin("https://prod.example", "http://prod.example"));
    }
}
