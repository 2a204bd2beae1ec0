//! `/helpdesk …`: the slash command. Slash commands cannot run inside threads, so it opens
//! tickets with a header post of their own and configures channels; everything a ticket
//! offers later lives on its header and cards.

use super::{
    Bridge, BridgeError, PENDING_TTL,
    open::{OpenRequest, title_from},
    thread_of,
};
use crate::{
    ids::{ChannelId, MessageTs, TeamId},
    inbound::SlashCommand,
    model::{ChannelRef, PendingMessage},
    slack::{
        blocks::{self, Message},
        mrkdwn,
    },
};

/// What `/helpdesk help` says.
fn help(command: &str) -> Message {
    let c = mrkdwn::escape(command);
    blocks::notice_mrkdwn(
        &format!(
            "*HelpDesk in Slack*\n\
             • `{c} new <title> | <first message>`: open a ticket here, e.g. `{c} new Pods crash in prod | web-1 restarts every minute`\n\
             • `{c} config workspace <name> agent <name>`: where this channel's tickets go, e.g. `{c} config workspace devops agent generic-agent`\n\
             • `{c} config`: show this channel's settings\n\
             • `{c} help`: this list\n\
             You can also mention me in a channel, message me directly, or use the *Open HelpDesk ticket* message shortcut."
        ),
        &[],
    )
}

/// Splits `workspace <name> agent <name>` (either part optional) into its names.
fn parse_config(text: &str) -> Result<(Option<String>, Option<String>), String> {
    let mut workspace: Option<Vec<&str>> = None;
    let mut agent: Option<Vec<&str>> = None;
    let mut current: Option<&mut Vec<&str>> = None;
    for word in text.split_whitespace() {
        match word.to_ascii_lowercase().as_str() {
            "workspace" => current = Some(workspace.insert(Vec::new())),
            "agent" => current = Some(agent.insert(Vec::new())),
            _ => match current.as_mut() {
                Some(words) => words.push(word),
                None => return Err(format!("I did not understand `{word}`.")),
            },
        }
    }
    let joined = |words: Option<Vec<&str>>| -> Result<Option<String>, String> {
        match words {
            None => Ok(None),
            Some(w) if w.is_empty() => Err("a name is missing after `workspace` or `agent`.".to_owned()),
            Some(w) => Ok(Some(w.join(" "))),
        }
    };
    Ok((joined(workspace)?, joined(agent)?))
}

impl Bridge {
    /// A `/helpdesk` command.
    pub(super) async fn on_command(&self, team: &TeamId, command: SlashCommand) -> Result<(), BridgeError> {
        let text = command.text.trim();
        let (sub, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        let answer = match sub.to_ascii_lowercase().as_str() {
            "new" => return self.command_new(team, &command, rest.trim()).await,
            "config" => self.command_config(team, &command.channel, rest.trim()).await?,
            "" | "help" => help(&command.command),
            other => {
                let mut unknown = help(&command.command);
                unknown.blocks.insert(
                    0,
                    blocks::notice(&format!("I don't know `{other}`; here is what I can do."), &[]).blocks.remove(0),
                );
                unknown
            }
        };
        self.inner.slack.respond(&command.response_url, &answer, false).await?;
        Ok(())
    }

    /// `/helpdesk new <title> | <first message>`: a header post in the channel whose thread
    /// is the ticket.
    async fn command_new(&self, team: &TeamId, command: &SlashCommand, args: &str) -> Result<(), BridgeError> {
        let slack = &self.inner.slack;
        let (title, first) = args.split_once('|').unwrap_or((args, ""));
        let title = title_from(&self.plain_text(title.trim()).await);
        if args.trim().is_empty() {
            let usage = blocks::notice(&format!("Usage: {} new <title> | <first message>", command.command), &[]);
            slack.respond(&command.response_url, &usage, false).await?;
            return Ok(());
        }
        let content = self.plain_text(first.trim()).await;
        let channel_thread = thread_of(team, &command.channel, &MessageTs::new(""));
        let pending = PendingMessage {
            thread: channel_thread.clone(),
            author: command.user.clone(),
            message_ts: None,
            content,
            title: title.clone(),
            new_thread: true,
            card: None,
        };
        let target = match self.resolve_target(team, &command.channel).await {
            Ok(target) => target,
            Err(err) => {
                let note =
                    blocks::notice(&format!("⚠️ I could not look up this channel's HelpDesk settings: {err}"), &[]);
                slack.respond(&command.response_url, &note, false).await?;
                return Err(err);
            }
        };
        let Some(target) = target else {
            // No defaults: choose workspace and agent in the modal (the trigger lasts 3 s).
            let id = self.inner.store.put_pending(&pending, PENDING_TTL).await?;
            return self.show_create_modal(&command.trigger_id, &id, &title, Some(&command.response_url)).await;
        };
        let placeholder = blocks::notice(&format!("🎫 Opening a ticket: {title}"), &[]);
        let ts = match slack.post(&command.channel, None, &placeholder).await {
            Ok(ts) => ts,
            Err(err) => {
                let why = match err.api_code() {
                    Some("not_in_channel" | "channel_not_found") => {
                        "I can't post in this channel. Invite me first (`/invite @HelpDesk`), then try again."
                            .to_owned()
                    }
                    _ => format!("⚠️ I could not post the ticket in this channel: {err}"),
                };
                slack.respond(&command.response_url, &blocks::notice(&why, &[]), false).await?;
                return Err(err.into());
            }
        };
        let thread = thread_of(team, &command.channel, &ts);
        let first = (!pending.content.trim().is_empty()).then(|| PendingMessage {
            thread: thread.clone(),
            new_thread: false,
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

    /// `/helpdesk config …`: shows or sets where this channel's tickets go.
    async fn command_config(&self, team: &TeamId, channel: &ChannelId, args: &str) -> Result<Message, BridgeError> {
        let key = ChannelRef { team: team.clone(), channel: channel.clone() };
        let store = &self.inner.store;
        let mut settings = store.channel_settings(&key).await?;
        let (workspace, agent) = match parse_config(args) {
            Ok(parsed) => parsed,
            Err(problem) => {
                return Ok(blocks::notice(
                    &format!("{problem} Usage: /helpdesk config workspace <name> agent <name>"),
                    &[],
                ));
            }
        };
        if workspace.is_none() && agent.is_none() {
            let describe = |name: &Option<String>, default: &Option<String>| match (name, default) {
                (Some(name), _) => name.clone(),
                (None, Some(default)) => format!("{default} (the bridge's default)"),
                (None, None) => "not set".to_owned(),
            };
            let defaults = &self.inner.defaults;
            return Ok(blocks::notice(
                &format!(
                    "This channel's tickets go to workspace: {}; agent: {}.",
                    describe(&settings.workspace_name, &defaults.workspace),
                    describe(&settings.agent_name, &defaults.agent)
                ),
                &[],
            ));
        }
        let helpdesk = &self.inner.helpdesk;
        if let Some(name) = &workspace {
            match helpdesk.find_workspace(name).await {
                Ok(found) => {
                    settings.workspace = Some(found.id);
                    settings.workspace_name = Some(found.name);
                }
                Err(err) => return Ok(blocks::notice(&format!("⚠️ Workspace '{name}': {err}"), &[])),
            }
        }
        if let Some(name) = &agent {
            match helpdesk.find_agent(name).await {
                Ok(found) => {
                    settings.agent = Some(found.id);
                    settings.agent_name = Some(found.name);
                }
                Err(err) => return Ok(blocks::notice(&format!("⚠️ Agent '{name}': {err}"), &[])),
            }
        }
        store.set_channel_settings(&key, &settings).await?;
        Ok(blocks::notice(
            &format!(
                "✅ New tickets in this channel go to workspace {} with agent {}.",
                settings.workspace_name.as_deref().unwrap_or("(the bridge's default)"),
                settings.agent_name.as_deref().unwrap_or("(the bridge's default)")
            ),
            &[],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_arguments_parse() {
        assert_eq!(
            parse_config("workspace dev ops agent generic-agent"),
            Ok((Some("dev ops".to_owned()), Some("generic-agent".to_owned())))
        );
        assert_eq!(parse_config("agent k8s"), Ok((None, Some("k8s".to_owned()))));
        assert_eq!(parse_config(""), Ok((None, None)));
        assert!(parse_config("devops").is_err());
        assert!(parse_config("workspace").is_err());
    }

    #[test]
    fn help_is_valid_block_kit() {
        let m = help("/helpdesk");
        blocks::validate(&m.blocks, blocks::MESSAGE_BLOCKS).unwrap();
    }
}
