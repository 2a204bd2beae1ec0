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

    let store = match Store::open(&config.store) {
        Ok(store) => match store.ping().await {
            Ok(()) => Ok(format!("{} store reachable", store.kind())),
            Err(err) => Err(err.to_string()),
        },
        Err(err) => Err(err.to_string()),
    };
    line("store", store);

    // `auth.test` draws from no budget.
    let slack = match SlackApi::new(&config.slack, Metrics::default(), None) {
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
