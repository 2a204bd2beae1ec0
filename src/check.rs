//! `helpdesk-bridge check`: is this deployment able to work? A short readable report.
//!
//! Each check prints one line, `ok` or `FAILED` with the reason; the command exits non-zero
//! when any failed. It changes nothing.

use crate::{config::Config, helpdesk::HelpdeskClient, slack::api::SlackApi, store::Store, telemetry::Metrics};

/// Some check failed; the report says which.
#[derive(Debug, thiserror::Error)]
#[error("{0} check(s) failed")]
pub struct CheckFailed(pub usize);

/// Runs every check, printing the report to stdout.
pub async fn run(config: &Config) -> Result<(), CheckFailed> {
    let mut failed = 0;
    let mut line = |name: &str, result: Result<String, String>| match result {
        Ok(detail) => println!("ok      {name}: {detail}"),
        Err(reason) => {
            failed += 1;
            println!("FAILED  {name}: {reason}");
        }
    };
    let transport = if config.socket_mode() { "Socket Mode" } else { "HTTP request URLs" };
    line("configuration", Ok(format!("valid; events over {transport}")));

    let opened = Store::open(&config.store);
    let store = match &opened {
        Ok(store) => match store.ping().await {
            Ok(()) => Ok(format!("{} store reachable", store.kind())),
            Err(err) => Err(err.to_string()),
        },
        Err(err) => Err(err.to_string()),
    };
    line("store", store);
    if let (Ok(store), Some(key)) = (&opened, &config.store.encryption_key) {
        line("installations", installations(store, key).await);
    }

    // `auth.test` draws from no budget.
    let slack = match SlackApi::new(&config.slack, Metrics::default(), None) {
        Ok(_) if config.slack.bot_token.is_none() => {
            Ok("no SLACK_BOT_TOKEN: every workspace is served by its installation".to_owned())
        }
        Ok(api) => match api.auth_test().await {
            Ok(me) => Ok(format!("token accepted; bot user {} in team {}", me.user_id, me.team_id)),
            Err(err) => Err(err.to_string()),
        },
        Err(err) => Err(err.to_string()),
    };
    line("slack", slack);

    for portal in config.all_portals() {
        // One portal is named for what it is; several, by name.
        let name = |what: &str| {
            if config.portals.is_empty() { what.to_owned() } else { format!("{what} [{}]", portal.name) }
        };
        // Where the default came from: the environment, or the portal's entry in the file.
        let setting = |var: &str, key: &str| {
            if config.portals.is_empty() { var.to_owned() } else { format!("PORTALS_FILE {key}") }
        };
        let helpdesk_config = &portal.helpdesk;
        match HelpdeskClient::new(helpdesk_config, Metrics::default()) {
            Err(err) => line(&name("helpdesk"), Err(err.to_string())),
            Ok(helpdesk) => {
                let workspace = match &helpdesk_config.default_workspace {
                    Some(workspace) => helpdesk
                        .find_workspace(workspace)
                        .await
                        .map(|w| format!("default workspace '{}' is {}", w.name, w.id))
                        .map_err(|e| format!("{}: {e}", setting("HELPDESK_WORKSPACE", "workspace"))),
                    None => helpdesk
                        .list_workspaces()
                        .await
                        .map(|all| format!("token accepted; {} workspace(s); no default workspace set", all.len()))
                        .map_err(|e| e.to_string()),
                };
                line(&name("helpdesk workspace"), workspace);
                if let Some(agent) = &helpdesk_config.default_agent {
                    let agent = helpdesk
                        .find_agent(agent)
                        .await
                        .map(|a| {
                            let mode = if a.streams { "streaming" } else { "unary" };
                            format!("default agent '{}' is {} ({mode})", a.name, a.id)
                        })
                        .map_err(|e| format!("{}: {e}", setting("HELPDESK_AGENT", "agent")));
                    line(&name("helpdesk agent"), agent);
                }
            }
        }
    }

    if failed == 0 { Ok(()) } else { Err(CheckFailed(failed)) }
}

/// The installed workspaces and organisations, each opened with `STATE_ENCRYPTION_KEY` (a
/// token that does not open is one the bridge cannot serve).
async fn installations(store: &Store, key: &secrecy::SecretString) -> Result<String, String> {
    use secrecy::ExposeSecret;
    let sealer = crate::store::seal::Sealer::from_hex(key.expose_secret()).map_err(|e| e.to_string())?;
    let owners = store.installation_owners().await.map_err(|e| e.to_string())?;
    let mut unopened = Vec::new();
    for owner in &owners {
        if store.installation(owner, &sealer).await.is_err() {
            unopened.push(owner.to_string());
        }
    }
    let names: Vec<String> = owners.iter().map(ToString::to_string).collect();
    if unopened.is_empty() {
        Ok(format!("{} installed ({}); every token opens", owners.len(), names.join(", ")))
    } else {
        Err(format!(
            "{} of {} do not open with STATE_ENCRYPTION_KEY: {}",
            unopened.len(),
            owners.len(),
            unopened.join(", ")
        ))
    }
}
