//! `/helpdesk …`: the slash command. Slash commands cannot run inside threads, so it opens
//! tickets with a header post of their own and configures channels; everything a ticket
//! offers later lives on its header and cards.

use super::{
    Bridge, BridgeError, PENDING_TTL,
    open::{OpenRequest, title_from},
    thread_of,
};
use crate::{
    ids::{MessageTs, TeamId},
    inbound::SlashCommand,
    model::{ChannelRef, PendingMessage, RelayMode},
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
             • `{c} list [open|pending|resolved|closed|all] [words]`: tickets here, most recently updated first, e.g. `{c} list open disk`\n\
             • `{c} find <TICKET>`: a ticket and its thread, e.g. `{c} find DEVOPS-42`; a HelpDesk ticket without a thread can be continued here\n\
             • `{c} config workspace <name> agent <name>`: where this channel's tickets go, e.g. `{c} config workspace devops agent generic-agent`\n\
             • `{c} config approvers @person @group`: who besides the requester may approve commands here (`none` clears)\n\
             • `{c} config relay mentions`: only thread messages that mention me wake the agent; the rest are recorded as comments (`relay all` undoes it)\n\
             • `{c} config`: show this channel's settings (changing them is for administrators)\n\
             • `{c} help`: this list, e.g. `{c} help`\n\
             In a ticket's thread, start a message with `note:` to record a comment without waking the agent, e.g. `note: restarted web-1 by hand`. \
             The ticket header changes status, assigns, switches agent, shows history and deletes. \
             You can also mention me in a channel, message me directly, or use the *Open HelpDesk ticket* message shortcut; \
             your tickets are on my Home tab."
        ),
        &[],
    )
}

/// What `/helpdesk config …` asks to set.
#[derive(Debug, Default, PartialEq, Eq)]
struct ConfigArgs {
    workspace: Option<String>,
    agent: Option<String>,
    /// User and user-group ids; `Some(empty)` clears the list.
    approvers: Option<Vec<String>>,
    /// How thread messages reach the agent.
    relay: Option<RelayMode>,
}

/// An approver as typed: a mention (`<@U1|ann>`, `<!subteam^S1|@ops>`) or a bare id.
fn approver_id(word: &str) -> Option<String> {
    let inner = word.trim_start_matches('<').trim_end_matches('>');
    let inner = inner.split('|').next().unwrap_or(inner);
    let id = inner.trim_start_matches('@').trim_start_matches("!subteam^");
    let valid = id.len() > 1
        && matches!(id.as_bytes()[0], b'U' | b'W' | b'S')
        && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    valid.then(|| id.to_owned())
}

/// Splits `workspace <name> agent <name> approvers <@user> <@group>…` (each part optional).
fn parse_config(text: &str) -> Result<ConfigArgs, String> {
    #[derive(Clone, Copy)]
    enum Part {
        Workspace,
        Agent,
        Approvers,
        Relay,
    }
    let mut words: [Option<Vec<&str>>; 4] = [None, None, None, None];
    let mut current: Option<Part> = None;
    for word in text.split_whitespace() {
        let part = match word.to_ascii_lowercase().as_str() {
            "workspace" => Some(Part::Workspace),
            "agent" => Some(Part::Agent),
            "approvers" => Some(Part::Approvers),
            "relay" => Some(Part::Relay),
            _ => None,
        };
        match (part, current) {
            (Some(part), _) => {
                words[part as usize] = Some(Vec::new());
                current = Some(part);
            }
            (None, Some(part)) => words[part as usize].get_or_insert_with(Vec::new).push(word),
            (None, None) => return Err(format!("I did not understand `{word}`.")),
        }
    }
    let [workspace, agent, approvers, relay] = words;
    let name = |words: Option<Vec<&str>>, what: &str| -> Result<Option<String>, String> {
        match words {
            None => Ok(None),
            Some(w) if w.is_empty() => Err(format!("a name is missing after `{what}`.")),
            Some(w) => Ok(Some(w.join(" "))),
        }
    };
    let approvers = match approvers {
        None => None,
        Some(words) if words.len() == 1 && words[0].eq_ignore_ascii_case("none") => Some(Vec::new()),
        Some(words) if words.is_empty() => return Err("name people or groups after `approvers`, or `none`.".to_owned()),
        Some(words) => Some(
            words
                .iter()
                .map(|w| approver_id(w).ok_or_else(|| format!("`{w}` is not a person or a user group.")))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let relay = match relay.as_deref() {
        None => None,
        Some([mode]) if mode.eq_ignore_ascii_case("mentions") => Some(RelayMode::Mentions),
        Some([mode]) if mode.eq_ignore_ascii_case("all") => Some(RelayMode::All),
        Some(_) => return Err("`relay` takes `mentions` or `all`.".to_owned()),
    };
    Ok(ConfigArgs { workspace: name(workspace, "workspace")?, agent: name(agent, "agent")?, approvers, relay })
}

impl Bridge {
    /// A `/helpdesk` command.
    pub(super) async fn on_command(&self, team: &TeamId, command: SlashCommand) -> Result<(), BridgeError> {
        let text = command.text.trim();
        let (sub, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        let answer = match sub.to_ascii_lowercase().as_str() {
            "new" => return self.command_new(team, &command, rest.trim()).await,
            "config" => self.command_config(team, &command, rest.trim()).await?,
            "list" => self.command_list(team, &command, rest).await?,
            "find" => self.command_find(team, &command, rest).await?,
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
        if args.trim().is_empty() {
            let usage = blocks::notice(&format!("Usage: {} new <title> | <first message>", command.command), &[]);
            slack.respond(&command.response_url, &usage, false).await?;
            return Ok(());
        }
        let (title, first) = args.split_once('|').unwrap_or((args, ""));
        let title = title_from(&self.plain_text(title.trim()).await);
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
            return self.show_create_modal(&command.trigger_id, &id, &title, Some(&*command.response_url)).await;
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

    /// `/helpdesk config …`: shows (anyone) or changes (administrators only) where this
    /// channel's tickets go, who approves and how messages are relayed.
    async fn command_config(&self, team: &TeamId, command: &SlashCommand, args: &str) -> Result<Message, BridgeError> {
        let channel = &command.channel;
        let key = ChannelRef { team: team.clone(), channel: channel.clone() };
        let store = &self.inner.store;
        let mut settings = store.channel_settings(&key).await?;
        let ConfigArgs { workspace, agent, approvers, relay } = match parse_config(args) {
            Ok(parsed) => parsed,
            Err(problem) => {
                return Ok(blocks::notice(
                    &format!(
                        "{problem} Usage: /helpdesk config workspace <name> agent <name> approvers <@person> <@group> relay <mentions|all>"
                    ),
                    &[],
                ));
            }
        };
        if workspace.is_none() && agent.is_none() && approvers.is_none() && relay.is_none() {
            let describe = |name: &Option<String>, default: &Option<String>| match (name, default) {
                (Some(name), _) => name.clone(),
                (None, Some(default)) => format!("{default} (the bridge's default)"),
                (None, None) => "not set".to_owned(),
            };
            let defaults = &self.inner.defaults;
            return Ok(blocks::notice_mrkdwn(
                &format!(
                    "This channel's tickets go to workspace: {}; agent: {}. Approvers here, besides who asked: {}. {}",
                    mrkdwn::escape_inert(&describe(&settings.workspace_name, &defaults.workspace)),
                    mrkdwn::escape_inert(&describe(&settings.agent_name, &defaults.agent)),
                    mentions(self.inner.policy.approvers.iter().chain(settings.approvers.iter())),
                    relay_words(settings.relay_mode)
                ),
                &[],
            ));
        }
        if !self.may_administer(team, &command.user, None).await {
            tracing::info!(team = %team, channel = %channel, user = %command.user, "refused a settings change");
            return Ok(blocks::notice_mrkdwn(
                &format!(
                    "Only {} can change this channel's HelpDesk settings. `{}` shows them.",
                    self.administrators(),
                    mrkdwn::escape(&command.command)
                ),
                &[],
            ));
        }
        let before = settings.clone();
        if let Some(approvers) = approvers {
            settings.approvers = approvers;
        }
        if let Some(relay) = relay {
            settings.relay_mode = relay;
        }
        let helpdesk = &self.inner.helpdesk;
        if let Some(name) = &workspace {
            match helpdesk.find_workspace(name).await {
                Ok(found) if !self.workspace_allowed(found.id.as_str(), &found.name) => {
                    let refusal = format!("Workspace '{}' is not one this bridge may open tickets in.", found.name);
                    return Ok(blocks::notice(&refusal, &[]));
                }
                Ok(found) => {
                    settings.workspace = Some(found.id);
                    settings.workspace_name = Some(found.name);
                }
                Err(err) => return Ok(blocks::notice(&format!("⚠️ Workspace '{name}': {err}"), &[])),
            }
        }
        if let Some(name) = &agent {
            match helpdesk.find_agent(name).await {
                Ok(found) if !self.agent_allowed(found.id.as_str(), &found.name) => {
                    let refusal = format!("Agent '{}' is not one this bridge may give tickets to.", found.name);
                    return Ok(blocks::notice(&refusal, &[]));
                }
                Ok(found) => {
                    settings.agent = Some(found.id);
                    settings.agent_name = Some(found.name);
                }
                Err(err) => return Ok(blocks::notice(&format!("⚠️ Agent '{name}': {err}"), &[])),
            }
        }
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
        Ok(blocks::notice_mrkdwn(
            &format!(
                "✅ New tickets in this channel go to workspace {} with agent {}. Approvers here, besides who asked: {}. {}",
                mrkdwn::escape_inert(settings.workspace_name.as_deref().unwrap_or("(the bridge's default)")),
                mrkdwn::escape_inert(settings.agent_name.as_deref().unwrap_or("(the bridge's default)")),
                mentions(self.inner.policy.approvers.iter().chain(settings.approvers.iter())),
                relay_words(settings.relay_mode)
            ),
            &[],
        ))
    }
}

/// The relay mode in words.
fn relay_words(mode: RelayMode) -> &'static str {
    match mode {
        RelayMode::All => "Every thread message goes to the agent (`note:` messages are comments).",
        RelayMode::Mentions => "Only thread messages that mention me go to the agent; the rest are comments.",
    }
}

/// Approver ids as Slack mentions (names for people, handles for groups).
fn mentions<'a>(ids: impl Iterator<Item = &'a String>) -> String {
    let listed: Vec<String> = ids.map(|id| super::access::mention(id)).collect();
    if listed.is_empty() { "nobody else".to_owned() } else { listed.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_arguments_parse() {
        assert_eq!(
            parse_config("workspace dev ops agent generic-agent"),
            Ok(ConfigArgs {
                workspace: Some("dev ops".to_owned()),
                agent: Some("generic-agent".to_owned()),
                approvers: None,
                relay: None
            })
        );
        assert_eq!(
            parse_config("agent k8s"),
            Ok(ConfigArgs { agent: Some("k8s".to_owned()), ..ConfigArgs::default() })
        );
        assert_eq!(parse_config(""), Ok(ConfigArgs::default()));
        assert_eq!(
            parse_config("approvers <@U12|ann> <!subteam^S9|@ops> W3").map(|a| a.approvers),
            Ok(Some(vec!["U12".to_owned(), "S9".to_owned(), "W3".to_owned()]))
        );
        assert_eq!(parse_config("approvers none").map(|a| a.approvers), Ok(Some(Vec::new())));
        assert_eq!(parse_config("relay mentions").map(|a| a.relay), Ok(Some(RelayMode::Mentions)));
        assert_eq!(parse_config("relay ALL").map(|a| a.relay), Ok(Some(RelayMode::All)));
        assert!(parse_config("relay some").is_err());
        assert!(parse_config("approvers bob").is_err());
        assert!(parse_config("devops").is_err());
        assert!(parse_config("workspace").is_err());
    }

    #[test]
    fn help_is_valid_block_kit() {
        let m = help("/helpdesk");
        blocks::validate(&m.blocks, blocks::MESSAGE_BLOCKS).unwrap();
    }
}
