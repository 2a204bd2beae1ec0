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
    ids::{TeamId, UserId},
    model::{ChannelRef, TicketRecord},
};

use super::Bridge;

/// Who may decide and administer, besides what Slack says about people.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// `APPROVERS`: user and user-group ids who may decide on commands.
    pub approvers: Vec<String>,
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

/// A user-group id (`S…`); user ids start with `U` or `W`.
pub(super) fn is_group(id: &str) -> bool {
    id.starts_with('S')
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
        match self.inner.slack.person(user).await {
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

    /// Whether `user` is a member of one of the user groups in `listed`.
    async fn in_groups(&self, listed: &[&String], user: &UserId) -> bool {
        for group in listed.iter().filter(|id| is_group(id)) {
            match self.inner.slack.group_members(group).await {
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
        let listed_by_id = access.admins.iter().any(|a| a == user.as_str());
        let who = self.who(user, team, user_team).await;
        if who.external || who.guest {
            return listed_by_id;
        }
        if listed_by_id {
            return true;
        }
        let admins: Vec<&String> = access.admins.iter().collect();
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
        let globally_by_id = policy.approvers.iter().any(|a| a == user.as_str());
        let who = self.who(user, &record.thread.team, user_team).await;
        if who.external {
            return globally_by_id;
        }
        let channel = ChannelRef { team: record.thread.team.clone(), channel: record.thread.channel.clone() };
        let settings = self.inner.store.channel_settings(&channel).await.unwrap_or_default();
        let by_id = globally_by_id || settings.approvers.iter().any(|a| a == user.as_str());
        if who.guest {
            return by_id;
        }
        if requester || by_id {
            return true;
        }
        let listed: Vec<&String> = policy.approvers.iter().chain(settings.approvers.iter()).collect();
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

    /// The refusal for someone who may not act on a kept message (mrkdwn).
    pub(super) fn may_not_act(record: Option<&TicketRecord>, author: &UserId) -> String {
        match record {
            Some(record) => format!(
                "Only members of this workspace can act on ticket {}; guests and people from other organisations \
                 only when they may decide on its commands.",
                crate::slack::mrkdwn::escape_inert(record.ticket.ticket.as_str())
            ),
            None => format!(
                "This is <@{author}>'s request, so only they can do this. To open a ticket of your own, mention me or \
                 use `/helpdesk new`."
            ),
        }
    }

    /// Who may decide on a ticket's commands, in words for a refusal (mrkdwn).
    pub(super) async fn deciders(&self, record: &TicketRecord) -> String {
        let channel = ChannelRef { team: record.thread.team.clone(), channel: record.thread.channel.clone() };
        let settings = self.inner.store.channel_settings(&channel).await.unwrap_or_default();
        let mut names = Vec::new();
        if self.policy().access.requester_may_approve && !record.adopted {
            names.push(format!("<@{}> (who asked)", record.requester));
        }
        names.extend(self.policy().approvers.iter().chain(settings.approvers.iter()).map(|id| mention(id)));
        if names.is_empty() { "the approvers this bridge lists (none are set)".to_owned() } else { names.join(", ") }
    }

    /// Who may change settings, in words for a refusal (mrkdwn).
    pub(super) fn administrators(&self) -> String {
        let access = &self.policy().access;
        let mut names: Vec<String> = access.admins.iter().map(|id| mention(id)).collect();
        if !access.admins_only {
            names.push("this workspace's admins and owners".to_owned());
        }
        names.join(", ")
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

/// A user or user-group id as a Slack mention (names for people, handles for groups).
pub(super) fn mention(id: &str) -> String {
    if is_group(id) { format!("<!subteam^{id}>") } else { format!("<@{id}>") }
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

    #[test]
    fn mentions_tell_groups_from_people() {
        assert_eq!(mention("S1"), "<!subteam^S1>");
        assert_eq!(mention("U1"), "<@U1>");
    }
}
