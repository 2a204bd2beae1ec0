//! Slack's OAuth v2 install flow on the wire: the *Add to Slack* link, the state that binds
//! an install to the browser that started it, `oauth.v2.access`'s answer, and the pages a
//! person sees. Pure: times come in as Unix seconds, randomness as the state to use.
//!
//! The state travels twice: in the link to Slack (which hands it back on the redirect) and
//! in a short-lived cookie signed with the app's client secret. The redirect is taken only
//! when both agree, the cookie's signature holds and it has not expired, so a redirect
//! someone else started (login CSRF, a link pasted into another browser) installs nothing.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::{
    ids::{EnterpriseId, TeamId, UserId},
    model::Owner,
};

/// The cookie that carries the signed state.
pub const COOKIE: &str = "hb_install_state";
/// How long an install may take from *Add to Slack* to the redirect.
pub const STATE_SECONDS: i64 = 600;
/// Slack's authorize page.
const AUTHORIZE: &str = "https://slack.com/oauth/v2/authorize";
/// The bot scopes the install asks for: those of `manifest.yml`.
pub const BOT_SCOPES: &[&str] = &[
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "chat:write",
    "chat:write.public",
    "assistant:write",
    "commands",
    "users:read",
    "users:read.email",
    "im:write",
    "usergroups:read",
    "reactions:write",
    "files:write",
    "files:read",
];

/// Why a redirect's state is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateProblem {
    /// No state cookie: the install was started in another browser, or long ago.
    #[error("this browser did not start the install (or its cookie was lost)")]
    NoCookie,
    /// The cookie is not one the bridge signed, or the state differs.
    #[error("the install link does not match this browser's")]
    Mismatch,
    /// The cookie is older than [`STATE_SECONDS`].
    #[error("the install took too long")]
    Expired,
}

fn mac(secret: &str, signed: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(signed.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The cookie value for `state`, valid until `expires` (Unix seconds): state, expiry and
/// their signature under `secret`.
pub fn sign_state(state: &str, expires: i64, secret: &str) -> String {
    let signed = format!("{state}.{expires}");
    format!("{signed}.{}", mac(secret, &signed))
}

/// Checks the cookie value against the state Slack handed back, at `now`.
pub fn verify_state(cookie: Option<&str>, state: &str, now: i64, secret: &str) -> Result<(), StateProblem> {
    let cookie = cookie.ok_or(StateProblem::NoCookie)?;
    let (signed, signature) = cookie.rsplit_once('.').ok_or(StateProblem::Mismatch)?;
    if !bool::from(mac(secret, signed).as_bytes().ct_eq(signature.as_bytes())) {
        return Err(StateProblem::Mismatch);
    }
    let (cookie_state, expires) = signed.split_once('.').ok_or(StateProblem::Mismatch)?;
    if !bool::from(cookie_state.as_bytes().ct_eq(state.as_bytes())) || state.is_empty() {
        return Err(StateProblem::Mismatch);
    }
    let expires: i64 = expires.parse().map_err(|_| StateProblem::Mismatch)?;
    if now > expires {
        return Err(StateProblem::Expired);
    }
    Ok(())
}

/// The `Set-Cookie` value that keeps `value` for the install (or, with `None`, forgets
/// it). `Secure` whenever the public URL is https; only the install routes see it.
pub fn set_cookie(value: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match value {
        Some(value) => {
            format!("{COOKIE}={value}; Path=/slack; Max-Age={STATE_SECONDS}; HttpOnly; SameSite=Lax{secure}")
        }
        None => format!("{COOKIE}=; Path=/slack; Max-Age=0; HttpOnly; SameSite=Lax{secure}"),
    }
}

/// The state cookie's value in a `Cookie` header.
pub fn cookie_in(header: &str) -> Option<&str> {
    header.split(';').filter_map(|pair| pair.trim().split_once('=')).find(|(name, _)| *name == COOKIE).map(|(_, v)| v)
}

/// Slack's authorize link for this app, asking for [`BOT_SCOPES`].
pub fn authorize_url(client_id: &str, redirect_uri: &str, state: &str) -> String {
    let query = serde_urlencoded::to_string([
        ("client_id", client_id),
        ("scope", &BOT_SCOPES.join(",")),
        ("redirect_uri", redirect_uri),
        ("state", state),
    ])
    .unwrap_or_default();
    format!("{AUTHORIZE}?{query}")
}

/// What `oauth.v2.access` granted.
#[derive(Debug, Clone)]
pub struct Access {
    /// Who installed: the organisation for an org-wide install, else the workspace.
    pub owner: Owner,
    /// The workspace's name, for the success page (none for an org-wide install).
    pub team_name: Option<String>,
    /// The organisation, on Enterprise Grid.
    pub enterprise: Option<EnterpriseId>,
    /// The bot token.
    pub bot_token: secrecy::SecretString,
    /// The bot's user id.
    pub bot_user: UserId,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// Who installed it.
    pub installer: Option<UserId>,
}

/// `oauth.v2.access`'s answer; the error is Slack's code, or what is missing.
pub fn parse_access(answer: &Value) -> Result<Access, String> {
    let text = |pointer: &str| answer.pointer(pointer).and_then(Value::as_str).filter(|v| !v.is_empty());
    if answer.get("ok").and_then(Value::as_bool) != Some(true) {
        return Err(text("/error").unwrap_or("unknown_error").to_owned());
    }
    // A rotating token lapses in twelve hours; serving it would need its refresh token.
    if answer.get("refresh_token").is_some() || answer.get("expires_in").is_some() {
        return Err("token rotation is on for this app; turn it off to install it here".to_owned());
    }
    let bot_token = text("/access_token").filter(|t| t.starts_with("xoxb-")).ok_or("no bot token in the answer")?;
    let bot_user = text("/bot_user_id").ok_or("no bot user in the answer")?;
    let enterprise = text("/enterprise/id").map(EnterpriseId::new);
    let org_wide = answer.get("is_enterprise_install").and_then(Value::as_bool).unwrap_or(false);
    let owner = match (&enterprise, text("/team/id")) {
        (Some(enterprise), _) if org_wide => Owner::Enterprise(enterprise.clone()),
        (_, Some(team)) => Owner::Team(TeamId::new(team)),
        _ => return Err("no workspace in the answer".to_owned()),
    };
    Ok(Access {
        owner,
        team_name: text("/team/name").map(str::to_owned),
        enterprise,
        bot_token: bot_token.to_owned().into(),
        bot_user: UserId::new(bot_user),
        scopes: text("/scope").map(|s| s.split(',').map(str::to_owned).collect()).unwrap_or_default(),
        installer: text("/authed_user/id").map(UserId::new),
    })
}

/// Text made safe inside HTML.
fn html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head>\
         <body style=\"font-family:sans-serif;max-width:36rem;margin:4rem auto\"><h1>{}</h1>{body}</body></html>",
        html(title),
        html(title)
    )
}

/// The *Add to Slack* page.
pub fn install_page(authorize: &str) -> String {
    page(
        "Install HelpDesk",
        &format!(
            "<p>Add the DuploCloud AI HelpDesk to your Slack workspace: mention it, DM it or use \
             <code>/helpdesk new</code> to open a ticket, and the thread becomes the ticket.</p>\
             <p><a href=\"{}\"><img alt=\"Add to Slack\" height=\"40\" width=\"139\" \
             src=\"https://platform.slack-edge.com/img/add_to_slack.png\"></a></p>",
            html(authorize)
        ),
    )
}

/// The page after a successful install.
pub fn installed_page(access: &Access) -> String {
    let place = match (&access.owner, &access.team_name) {
        (Owner::Enterprise(_), _) => "every workspace of your organisation".to_owned(),
        (Owner::Team(_), Some(name)) => html(name),
        (Owner::Team(team), None) => html(team.as_str()),
    };
    page(
        "HelpDesk is installed",
        &format!(
            "<p>HelpDesk is installed in {place}. Invite it to a channel and mention it to open a \
             ticket, or send it a direct message.</p>"
        ),
    )
}

/// The page when an install did not happen, saying why and how to start again.
pub fn failed_page(why: &str) -> String {
    page(
        "HelpDesk was not installed",
        &format!("<p>{}.</p><p><a href=\"/slack/install\">Start again</a>.</p>", html(why)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_holds_only_for_the_browser_that_started_it_in_time() {
        let cookie = sign_state("abc123", 1_000, "secret");
        assert_eq!(verify_state(Some(&cookie), "abc123", 999, "secret"), Ok(()));
        assert_eq!(verify_state(Some(&cookie), "abc123", 1_001, "secret"), Err(StateProblem::Expired));
        assert_eq!(verify_state(Some(&cookie), "other", 999, "secret"), Err(StateProblem::Mismatch));
        assert_eq!(verify_state(Some(&cookie), "abc123", 999, "another secret"), Err(StateProblem::Mismatch));
        assert_eq!(verify_state(None, "abc123", 999, "secret"), Err(StateProblem::NoCookie));
        let longer = cookie.replace(".1000.", ".9999.");
        assert_eq!(verify_state(Some(&longer), "abc123", 999, "secret"), Err(StateProblem::Mismatch), "signed");
        assert_eq!(verify_state(Some("garbage"), "abc123", 999, "secret"), Err(StateProblem::Mismatch));
        assert_eq!(cookie_in(&format!("a=1; {COOKIE}={cookie}; b=2")), Some(cookie.as_str()));
        assert_eq!(cookie_in("a=1"), None);
    }

    #[test]
    fn the_install_asks_for_the_manifests_scopes() {
        let manifest = include_str!("../../manifest.yml");
        let bot: Vec<&str> = manifest
            .lines()
            .skip_while(|l| l.trim() != "bot:")
            .skip(1)
            .take_while(|l| l.trim_start().starts_with("- "))
            .map(|l| l.trim().trim_start_matches("- "))
            .collect();
        assert_eq!(bot, BOT_SCOPES);
        let url = authorize_url("123.456", "https://bridge.example.com/slack/oauth_redirect", "s t");
        assert!(url.starts_with("https://slack.com/oauth/v2/authorize?client_id=123.456&scope=app_mentions%3Aread%2C"));
        assert!(url.ends_with("&redirect_uri=https%3A%2F%2Fbridge.example.com%2Fslack%2Foauth_redirect&state=s+t"));
    }

    #[test]
    fn access_answers_name_their_owner() {
        let team = serde_json::json!({"ok": true, "access_token": "xoxb-1", "token_type": "bot", "scope": "chat:write,commands",
            "bot_user_id": "UB", "team": {"id": "T2", "name": "Acme <Ops>"}, "enterprise": null,
            "is_enterprise_install": false, "authed_user": {"id": "U9"}});
        let access = parse_access(&team).unwrap();
        assert_eq!(access.owner, Owner::Team(TeamId::new("T2")));
        assert!(!format!("{access:?}").contains("xoxb-1"), "the token is not in the debug output");
        let rotating = serde_json::json!({"ok": true, "access_token": "xoxe.xoxb-1", "refresh_token": "xoxe-1",
            "expires_in": 43200, "bot_user_id": "UB", "team": {"id": "T2"}});
        assert!(parse_access(&rotating).is_err(), "a rotating token is refused");
        assert_eq!((access.scopes.len(), access.installer.clone()), (2, Some(UserId::new("U9"))));
        assert!(installed_page(&access).contains("Acme &lt;Ops&gt;"), "names are escaped");
        let org = serde_json::json!({"ok": true, "access_token": "xoxb-2", "bot_user_id": "UB", "team": null,
            "enterprise": {"id": "E1", "name": "Org"}, "is_enterprise_install": true});
        assert_eq!(parse_access(&org).unwrap().owner, Owner::Enterprise(EnterpriseId::new("E1")));
        assert_eq!(
            parse_access(&serde_json::json!({"ok": false, "error": "invalid_code"})).err().as_deref(),
            Some("invalid_code")
        );
        let user_token =
            serde_json::json!({"ok": true, "access_token": "xoxp-1", "bot_user_id": "UB", "team": {"id": "T2"}});
        assert!(parse_access(&user_token).is_err(), "only a bot token installs");
        assert!(failed_page("<script>").contains("&lt;script&gt;"));
    }
}
