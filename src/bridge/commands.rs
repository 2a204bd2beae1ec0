//! `/helpdesk …`: the slash command. Slash commands cannot run inside threads, so it opens
//! tickets with a header post of their own and configures channels; everything a ticket
//! offers later lives on its header and cards.

use super::{
    Bridge, BridgeError, PENDING_TTL,
    open::{OpenRequest, title_from},
    rules, thread_of,
};
use crate::{
    ids::TeamId,
    inbound::SlashCommand,
    model::{ChannelRef, ChannelSettings, PendingMessage, Place},
    slack::{
        controls::{ConfigArgs, Subcommand, workspace_defaults},
        kit::Message,
        notices::{self, Settings},
    },
};

impl Bridge {
    /// A `/helpdesk` command.
    pub(super) async fn on_command(&self, team: &TeamId, command: SlashCommand) -> Result<(), BridgeError> {
        let answer = match Subcommand::parse(&command.text) {
            Subcommand::New(args) => return self.command_new(team, &command, args).await,
            Subcommand::Config(args) => self.command_config(team, &command, args).await?,
            Subcommand::List(args) => self.command_list(team, &command, args).await?,
            Subcommand::Find(args) => self.command_find(team, &command, args).await?,
            Subcommand::Audit(args) => self.command_audit(team, &command, args).await?,
            Subcommand::Help => notices::help(&command.command),
            Subcommand::Unknown(other) => notices::unknown_subcommand(&command.command, &other),
        };
        self.slack().respond(&command.response_url, &answer, false).await?;
        Ok(())
    }

    /// `/helpdesk new <title> | <first message>`: a header post in the channel whose thread
    /// is the ticket.
    async fn command_new(
        &self,
        team: &TeamId,
        command: &SlashCommand,
        args: Option<(&str, &str)>,
    ) -> Result<(), BridgeError> {
        let slack = self.slack();
        let Some((title, first)) = args else {
            slack.respond(&command.response_url, &notices::new_usage(&command.command), false).await?;
            return Ok(());
        };
        let title = title_from(&self.plain_text(title).await);
        let content = self.plain_text(first).await;
        let pending = PendingMessage {
            place: Place::NewThreadIn(ChannelRef { team: team.clone(), channel: command.channel.clone() }),
            author: command.user.clone(),
            message_ts: None,
            content,
            title: title.clone(),
            card: None,
        };
        let target = match self.resolve_target(team, &command.channel).await {
            Ok(target) => target,
            Err(err) => {
                slack.respond(&command.response_url, &notices::cannot_read_settings(&err), false).await?;
                return Err(err);
            }
        };
        let Some(target) = target else {
            // No defaults: choose workspace and agent in the modal (the trigger lasts 3 s).
            let id = self.inner.store.put_pending(&pending, PENDING_TTL).await?;
            return self.show_create_modal(&command.trigger_id, &id, &title, Some(&*command.response_url)).await;
        };
        let ts = match slack.post(&command.channel, None, &notices::opening(&title)).await {
            Ok(ts) => ts,
            Err(err) => {
                let why = notices::cannot_post_here(err.not_a_member(), &err);
                slack.respond(&command.response_url, &why, false).await?;
                return Err(err.into());
            }
        };
        let thread = thread_of(team, &command.channel, &ts);
        let first = (!pending.content.trim().is_empty()).then(|| PendingMessage {
            place: Place::Thread(thread.clone()),
            card: None,
            ..pending
        });
        self.open(OpenRequest {
            thread,
            requester: command.user.clone(),
            title,
            first,
            header_ts: Some(ts),
            target: Some(target),
        })
        .await
    }

    /// `/helpdesk config …`: shows (anyone) or changes (administrators only) where this
    /// channel's tickets go, who approves and how messages are relayed.
    async fn command_config(&self, team: &TeamId, command: &SlashCommand, args: &str) -> Result<Message, BridgeError> {
        if let Some(rest) = workspace_defaults(args) {
            return self.command_config_defaults(team, command, rest).await;
        }
        let channel = &command.channel;
        let key = ChannelRef { team: team.clone(), channel: channel.clone() };
        let store = &self.inner.store;
        let mut settings = store.channel_settings(&key).await?;
        let ConfigArgs { workspace, agent, approvers, relay, context, portal, allow, block } =
            match ConfigArgs::parse(args) {
                Ok(parsed) => parsed,
                Err(problem) => return Ok(notices::config_usage(&problem)),
            };
        let nothing_to_change = [workspace.is_none(), agent.is_none(), approvers.is_none(), relay.is_none()];
        let unchanged = allow.is_none() && block.is_none() && context.is_none() && portal.is_none();
        if nothing_to_change.iter().all(|none| *none) && unchanged {
            // Where tickets go now: the channel's own, else its Slack workspace's defaults,
            // else the portal's.
            let effective = self.effective_settings(&key).await?;
            let current = self.inner.portals.for_channel(effective.portal.as_deref());
            let defaults = &current.defaults;
            return Ok(notices::settings(&Settings {
                portal: self.inner.portals.several().then_some(current.name.as_str()),
                workspace: settings.workspace_name.as_deref(),
                agent: settings.agent_name.as_deref(),
                default_workspace: effective.workspace_name.as_deref().or(defaults.workspace.as_deref()),
                default_agent: effective.agent_name.as_deref().or(defaults.agent.as_deref()),
                approvers: self.inner.policy.approvers.iter().chain(settings.approvers.iter()).collect(),
                relay: settings.relay_mode,
                context: !settings.context_off,
                allow: self.rules_shown(&settings.command_allow, true),
                block: self.rules_shown(&settings.command_block, false),
            }));
        }
        if !self.may_administer(team, &command.user, None).await {
            tracing::info!(team = %team, channel = %channel, user = %command.user, "refused a settings change");
            return Ok(notices::settings_refused(&self.administrators(), &command.command));
        }
        let before = settings.clone();
        // New rules are added to the channel's list, all or none of them; `none` clears it.
        for (typed, list) in [(allow, &mut settings.command_allow), (block, &mut settings.command_block)] {
            let Some(typed) = typed else { continue };
            let added = rules::split(&typed);
            if let Err(err) = rules::check(&added) {
                return Ok(notices::rule_invalid(&err.to_string()));
            }
            if added.is_empty() {
                list.clear();
            }
            for rule in added {
                if !list.contains(&rule) {
                    list.push(rule);
                }
            }
        }
        if let Some(approvers) = approvers {
            settings.approvers = approvers;
        }
        if let Some(relay) = relay {
            settings.relay_mode = relay;
        }
        if let Some(on) = context {
            settings.context_off = !on;
        }
        // A workspace or agent named without a portal is of the portal the channel's tickets
        // go to now, the Slack workspace's default one included; the channel keeps its name.
        if portal.is_none() && settings.portal.is_none() && (workspace.is_some() || agent.is_some()) {
            settings.portal = self.effective_settings(&key).await?.portal;
        }
        if let Err(refusal) = self.set_target(&mut settings, portal, workspace, agent).await {
            return Ok(refusal);
        }
        let portal = self.inner.portals.for_channel(settings.portal.as_deref());
        store.set_channel_settings(&key, &settings).await?;
        // The audit trail of who changed what: settings decide where tickets go and who
        // approves commands, so every change is logged with its before and after.
        tracing::info!(
            team = %team,
            channel = %channel,
            user = %command.user,
            before = ?before,
            after = ?settings,
            "channel settings changed"
        );
        Ok(notices::settings_changed(&Settings {
            portal: self.inner.portals.several().then_some(portal.name.as_str()),
            workspace: settings.workspace_name.as_deref(),
            agent: settings.agent_name.as_deref(),
            default_workspace: None,
            default_agent: None,
            approvers: self.inner.policy.approvers.iter().chain(settings.approvers.iter()).collect(),
            relay: settings.relay_mode,
            context: !settings.context_off,
            allow: self.rules_shown(&settings.command_allow, true),
            block: self.rules_shown(&settings.command_block, false),
        }))
    }

    /// Sets where tickets go in `settings`: a portal (another one drops the workspace and
    /// agent of the old), then a workspace and an agent looked up on it and checked against
    /// the allowed lists. The error is what to answer.
    async fn set_target(
        &self,
        settings: &mut ChannelSettings,
        portal: Option<String>,
        workspace: Option<String>,
        agent: Option<String>,
    ) -> Result<(), Message> {
        if let Some(name) = &portal {
            let Some(chosen) = self.inner.portals.named(name) else {
                return Err(notices::portal_unknown(name, &self.inner.portals.names().collect::<Vec<_>>()));
            };
            let current = self.inner.portals.for_channel(settings.portal.as_deref());
            if !current.name.eq_ignore_ascii_case(&chosen.name) {
                settings.workspace = None;
                settings.workspace_name = None;
                settings.agent = None;
                settings.agent_name = None;
            }
            settings.portal = Some(chosen.name.clone());
        }
        let helpdesk = &self.inner.portals.for_channel(settings.portal.as_deref()).client;
        if let Some(name) = &workspace {
            match helpdesk.find_workspace(name).await {
                Ok(found) if !self.workspace_allowed(found.id.as_str(), &found.name) => {
                    return Err(notices::workspace_refused(&found.name));
                }
                Ok(found) => {
                    settings.workspace = Some(found.id);
                    settings.workspace_name = Some(found.name);
                }
                Err(err) => return Err(notices::workspace_error(name, &err)),
            }
        }
        if let Some(name) = &agent {
            match helpdesk.find_agent(name).await {
                Ok(found) if !self.agent_allowed(found.id.as_str(), &found.name) => {
                    return Err(notices::agent_refused(&found.name));
                }
                Ok(found) => {
                    settings.agent = Some(found.id);
                    settings.agent_name = Some(found.name);
                }
                Err(err) => return Err(notices::agent_error(name, &err)),
            }
        }
        Ok(())
    }

    /// `/helpdesk config default …`: this Slack workspace's portal, workspace and agent for
    /// the channels that set none (each installation its own), shown to anyone, changed by
    /// administrators.
    async fn command_config_defaults(
        &self,
        team: &TeamId,
        command: &SlashCommand,
        args: &str,
    ) -> Result<Message, BridgeError> {
        let store = &self.inner.store;
        let mut defaults = store.team_defaults(team).await?;
        let ConfigArgs { workspace, agent, portal, approvers, relay, context, allow, block } =
            match ConfigArgs::parse(args) {
                Ok(parsed) => parsed,
                Err(problem) => return Ok(notices::defaults_usage(&problem)),
            };
        if approvers.is_some() || relay.is_some() || context.is_some() || allow.is_some() || block.is_some() {
            return Ok(notices::defaults_usage("Only the portal, workspace and agent have Slack-workspace defaults."));
        }
        let view = |defaults: &ChannelSettings| {
            let portal = self.inner.portals.for_channel(defaults.portal.as_deref());
            let several = self.inner.portals.several();
            notices::TeamDefaults {
                portal: several.then(|| portal.name.clone()),
                workspace: defaults.workspace_name.clone().or_else(|| portal.defaults.workspace.clone()),
                agent: defaults.agent_name.clone().or_else(|| portal.defaults.agent.clone()),
            }
        };
        if workspace.is_none() && agent.is_none() && portal.is_none() {
            return Ok(notices::team_defaults(&view(&defaults), false));
        }
        if !self.may_administer(team, &command.user, None).await {
            tracing::info!(team = %team, user = %command.user, "refused a change of the workspace's defaults");
            return Ok(notices::settings_refused(&self.administrators(), &command.command));
        }
        let before = defaults.clone();
        if let Err(refusal) = self.set_target(&mut defaults, portal, workspace, agent).await {
            return Ok(refusal);
        }
        store.set_team_defaults(team, &defaults).await?;
        tracing::info!(team = %team, user = %command.user, before = ?before, after = ?defaults, "workspace defaults changed");
        Ok(notices::team_defaults(&view(&defaults), true))
    }

    /// The command rules in force: `COMMAND_ALLOW` (or `COMMAND_BLOCK`) then the channel's.
    fn rules_shown<'a>(&'a self, channel: &'a [String], allow: bool) -> Vec<&'a str> {
        let service = if allow { &self.inner.command_rules.allow } else { &self.inner.command_rules.block };
        service.iter().chain(channel).map(String::as_str).collect()
    }
}
