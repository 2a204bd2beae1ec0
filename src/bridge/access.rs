//! Who may act: the one place that answers it, for every path that changes something.
//!
//! Clicks, modal submissions, slash commands, thread messages that carry decisions and
//! Retry / *Open a new ticket* all ask here. The rules, in the order they apply:
//!
//! - **Administer** (`/helpdesk config` changes): `ADMINS` (by user id, or as members of a
//!   listed user group) and, unless `ADMINS_ONLY`, the workspace's own admins and owners.
//!   Guests and people from other organisations only when listed in `ADMINS` by user id.
//! - **Decide** on commands: with `REQUESTER_MAY_APPROVE=false` never the requester. Then the
//!   Slack Connect rule: someone from another organisation only when listed in `APPROVERS` by
//!   user id, whatever the channel lists say. Guests only when listed by user id (`APPROVERS`
//!   or the channel's approvers). Otherwise the requester, and everyone listed by id or as a
//!   member of a listed group.
//! - **Manage** a ticket (status, assignment, agent, Retry, a new ticket from a kept message):
//!   members of the workspace; guests and people from other organisations only as deciders.
//!
//! What Slack says about a person comes from `users.info` (remembered for a few minutes); when
//! Slack cannot say, the person counts as a guest from another organisation: the rules fail
//! closed.

use crate::{
    config::AccessConfig,
    ids::{Approver, TeamId, UserId},
    model::{ChannelRef, ChannelSettings, TicketRecord},
    slack::{
        kit::Message,
        notices::{self, Administrators, Deciders},
    },
};

use super::Bridge;

/// Who may decide and administer, besides what Slack says about people.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// `APPROVERS`: people and user groups who may decide on commands.
    pub approvers: Vec<Approver>,
    /// Admins, requester rule and the allowed workspaces and agents.
    pub access: AccessConfig,
}

/// A person, as far as access goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Who {
    /// From another organisation (Slack Connect).
    pub(super) external: bool,
    /// A multi- or single-channel guest.
    pub(super) guest: bool,
    /// An admin or owner of the workspace.
    pub(super) admin: bool,
}

/// Whether a workspace or agent, by id and name, is in an allow list (empty allows all).
pub(super) fn allowed(list: &[String], id: &str, name: &str) -> bool {
    list.is_empty() || list.iter().any(|a| a.eq_ignore_ascii_case(id) || a.eq_ignore_ascii_case(name))
}

impl Bridge {
    fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// What Slack says about `user` in workspace `home`. `user_team` is the clicker's own
    /// workspace as the interaction payload gave it, when it did.
    pub(super) async fn who(&self, user: &UserId, home: &TeamId, user_team: Option<&TeamId>) -> Who {
        let from_payload = user_team.is_some_and(|team| team != home);
        match self.slack().person(user).await {
            Ok(person) => Who {
                external: from_payload || person.stranger || person.team.as_ref().is_some_and(|team| team != home),
                guest: person.guest,
                admin: person.admin,
            },
            Err(err) => {
                // Fail closed: someone Slack cannot describe decides only when listed by id in
                // `APPROVERS`, like a person from another organisation.
                tracing::warn!(user = %user, code = err.code(), "could not look up a person; treating them as external");
                Who { external: true, guest: true, admin: false }
            }
        }
    }

    /// The settings of a ticket's channel (defaults when the store cannot say).
    pub(super) async fn channel_settings(&self, record: &TicketRecord) -> ChannelSettings {
        let channel = ChannelRef { team: record.thread.team.clone(), channel: record.thread.channel.clone() };
        self.inner.store.channel_settings(&channel).await.unwrap_or_default()
    }

    /// Whether `user` is a member of one of the user groups in `listed`.
    async fn in_groups(&self, listed: &[&Approver], user: &UserId) -> bool {
        let groups = listed.iter().filter_map(|a| match a {
            Approver::Group(group) => Some(group),
            Approver::User(_) => None,
        });
        for group in groups {
            match self.slack().group_members(group.as_str()).await {
                Ok(members) if members.contains(user) => return true,
                Ok(_) => {}
                Err(err) => tracing::warn!(group = %group, code = err.code(), "could not read a user group"),
            }
        }
        false
    }

    /// Whether `user` may change `/helpdesk config` settings in workspace `team`.
    pub(super) async fn may_administer(&self, team: &TeamId, user: &UserId, user_team: Option<&TeamId>) -> bool {
        let access = &self.policy().access;
        let listed_by_id = access.admins.iter().any(|a| a.is(user));
        let who = self.who(user, team, user_team).await;
        if who.external || who.guest {
            return listed_by_id;
        }
        if listed_by_id {
            return true;
        }
        let admins: Vec<&Approver> = access.admins.iter().collect();
        if self.in_groups(&admins, user).await {
            return true;
        }
        !access.admins_only && who.admin
    }

    /// Whether `user` may decide on this ticket's commands (see the module's rules).
    pub(super) async fn may_decide(&self, record: &TicketRecord, user: &UserId, user_team: Option<&TeamId>) -> bool {
        let policy = self.policy();
        // Whoever continued a HelpDesk ticket in Slack did not ask for its commands.
        let requester = &record.requester == user && !record.adopted;
        if requester && !policy.access.requester_may_approve {
            return false;
        }
        let globally_by_id = policy.approvers.iter().any(|a| a.is(user));
        let who = self.who(user, &record.thread.team, user_team).await;
        if who.external {
            return globally_by_id;
        }
        let settings = self.channel_settings(record).await;
        let by_id = globally_by_id || settings.approvers.iter().any(|a| a.is(user));
        if who.guest {
            return by_id;
        }
        if requester || by_id {
            return true;
        }
        let listed: Vec<&Approver> = policy.approvers.iter().chain(settings.approvers.iter()).collect();
        self.in_groups(&listed, user).await
    }

    /// Whether `user` may change a ticket (status, assignee, agent) or act on its kept
    /// messages: members of the workspace may; guests and people from other organisations
    /// only as people who may decide on its commands.
    pub(super) async fn may_manage(&self, record: &TicketRecord, user: &UserId, user_team: Option<&TeamId>) -> bool {
        let who = self.who(user, &record.thread.team, user_team).await;
        if who.external || who.guest {
            return self.may_decide(record, user, user_team).await;
        }
        true
    }

    /// Whether `user` may act on a message the bridge kept for `author` (Retry, *Open a new
    /// ticket*, *Create ticket*): in a ticket's thread, whoever may manage the ticket (the
    /// author stays the author, and the requester stays the requester); outside one (no
    /// ticket yet), only the author.
    pub(super) async fn may_act_on_kept(
        &self,
        record: Option<&TicketRecord>,
        author: &UserId,
        user: &UserId,
        user_team: Option<&TeamId>,
    ) -> bool {
        match record {
            Some(record) => self.may_manage(record, user, user_team).await,
            None => user == author,
        }
    }

    /// The refusal for someone who may not act on a kept message for `author`.
    pub(super) fn may_not_act(&self, record: Option<&TicketRecord>, author: &UserId) -> Message {
        notices::may_not_act(record.map(|r| r.ticket.ticket.as_str()), author)
    }

    /// Who may decide on a ticket's commands, for a refusal; `settings` are its channel's.
    pub(super) fn deciders<'a>(&'a self, record: &'a TicketRecord, settings: &'a ChannelSettings) -> Deciders<'a> {
        let requester = (self.policy().access.requester_may_approve && !record.adopted).then_some(&record.requester);
        Deciders { requester, approvers: self.policy().approvers.iter().chain(settings.approvers.iter()).collect() }
    }

    /// Who may change settings, for a refusal.
    pub(super) fn administrators(&self) -> Administrators<'_> {
        let access = &self.policy().access;
        Administrators { listed: access.admins.iter().collect(), workspace_admins: !access.admins_only }
    }

    /// Whether tickets may go to this HelpDesk workspace.
    pub(super) fn workspace_allowed(&self, id: &str, name: &str) -> bool {
        allowed(&self.policy().access.allowed_workspaces, id, name)
    }

    /// Whether tickets may use this HelpDesk agent.
    pub(super) fn agent_allowed(&self, id: &str, name: &str) -> bool {
        allowed(&self.policy().access.allowed_agents, id, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_match_ids_and_names_in_any_case() {
        let list = vec!["devops".to_owned(), "ws-9".to_owned()];
        assert!(allowed(&list, "ws-1", "DevOps"));
        assert!(allowed(&list, "WS-9", "other"));
        assert!(!allowed(&list, "ws-2", "prod"));
        assert!(allowed(&[], "anything", "at all"));
    }
}
