//! `helpdesk-bridge check`: is this deployment able to work? A short readable report.
//!
//! Each check prints one line, `ok` or `FAILED` with the reason; the command exits non-zero
//! when any failed. It changes nothing.

use crate::{config::Config, slack::api::SlackApi, store::Store, telemetry::Metrics};

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

    let slack = match SlackApi::new(&config.slack, Metrics::default()) {
        Ok(api) => match api.auth_test().await {
            Ok(me) => Ok(format!("token accepted; bot user {} in team {}", me.user_id, me.team_id)),
            Err(err) => Err(err.to_string()),
        },
        Err(err) => Err(err.to_string()),
    };
    line("slack", slack);

    if failed == 0 { Ok(()) } else { Err(CheckFailed(failed)) }
}
