//! `GET /slack/install` and `GET /slack/oauth_redirect`: Slack's OAuth v2 install flow, for
//! an app distributed to several workspaces (`SLACK_CLIENT_ID`, `SLACK_CLIENT_SECRET`,
//! `PUBLIC_URL`). Both answer 404 when the flow is not configured.
//!
//! The install page sets the state cookie and links to Slack; the redirect checks it
//! against the state Slack hands back ([`crate::slack::oauth::verify_state`]), exchanges the
//! code (`oauth.v2.access`) and stores the installation, its token sealed. Every answer is a
//! page a person reads; none of them shows a token, and none is cached.

use std::sync::Arc;

use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::AppState;
use crate::{
    config::OAuthConfig,
    model::{Installation, now_millis},
    slack::{api::SlackApi, oauth},
    store::seal::Sealer,
};

/// What the install flow needs.
#[derive(Debug, Clone)]
pub struct Install {
    /// The app's OAuth settings.
    pub oauth: OAuthConfig,
    /// Slack egress (for `oauth.v2.access`).
    pub slack: SlackApi,
    /// Seals the installations' tokens.
    pub sealer: Arc<Sealer>,
}

/// What Slack's redirect carries.
#[derive(Debug, Deserialize)]
pub struct Redirect {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn now_seconds() -> i64 {
    now_millis() / 1000
}

/// A page, with the state cookie set or cleared.
fn page(status: StatusCode, cookie: String, html: String) -> Response {
    let headers = [
        (header::SET_COOKIE, cookie),
        (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
        (header::CACHE_CONTROL, "no-store".to_owned()),
    ];
    (status, headers, html).into_response()
}

/// `GET /slack/install`: the *Add to Slack* page, with a fresh state bound to this browser.
pub async fn install(State(app): State<AppState>) -> Response {
    let Some(install) = &app.install else { return StatusCode::NOT_FOUND.into_response() };
    let state = hex::encode(rand::random::<[u8; 16]>());
    let secret = install.oauth.client_secret.expose_secret();
    let cookie = oauth::sign_state(&state, now_seconds() + oauth::STATE_SECONDS, secret);
    let authorize = oauth::authorize_url(&install.oauth.client_id, &install.oauth.redirect_uri(), &state);
    let secure = install.oauth.public_url.starts_with("https://");
    page(StatusCode::OK, oauth::set_cookie(Some(&cookie), secure), oauth::install_page(&authorize))
}

/// `GET /slack/oauth_redirect`: Slack sends the browser back here after the person chose.
pub async fn redirect(State(app): State<AppState>, headers: HeaderMap, Query(redirect): Query<Redirect>) -> Response {
    let Some(install) = &app.install else { return StatusCode::NOT_FOUND.into_response() };
    let secure = install.oauth.public_url.starts_with("https://");
    let failed = |status: StatusCode, why: &str| page(status, oauth::set_cookie(None, secure), oauth::failed_page(why));
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).and_then(oauth::cookie_in);
    let state = redirect.state.as_deref().unwrap_or_default();
    let secret = install.oauth.client_secret.expose_secret();
    if let Err(problem) = oauth::verify_state(cookie, state, now_seconds(), secret) {
        tracing::warn!(%problem, "refused an install redirect");
        return failed(StatusCode::BAD_REQUEST, &format!("The install could not be checked: {problem}"));
    }
    if let Some(error) = &redirect.error {
        let error = crate::helpdesk::limits::quote(error);
        return failed(StatusCode::OK, &format!("Slack did not install the app ({error})"));
    }
    let Some(code) = redirect.code.as_deref().filter(|c| !c.is_empty()) else {
        return failed(StatusCode::BAD_REQUEST, "Slack sent no install code");
    };
    let answer = match install.slack.oauth_access(&install.oauth, code).await {
        Ok(answer) => answer,
        Err(err) => {
            tracing::warn!(code = err.code(), "could not exchange an install code");
            return failed(StatusCode::BAD_GATEWAY, "Slack could not be reached to confirm the install");
        }
    };
    let access = match oauth::parse_access(&answer) {
        Ok(access) => access,
        Err(error) => {
            let error = crate::helpdesk::limits::quote(&error);
            tracing::warn!(%error, "Slack refused an install code");
            return failed(StatusCode::BAD_GATEWAY, &format!("Slack did not confirm the install ({error})"));
        }
    };
    let (owner_id, enterprise) = match &access.owner {
        crate::model::Owner::Team(team) => (team.as_str(), access.enterprise.as_ref().map(|e| e.as_str())),
        crate::model::Owner::Enterprise(enterprise) => (enterprise.as_str(), Some(enterprise.as_str())),
    };
    if !install.oauth.may_install(owner_id, enterprise) {
        tracing::warn!(owner = %access.owner, "refused an install by a workspace SLACK_INSTALL_ALLOWED does not list");
        return failed(StatusCode::FORBIDDEN, "This deployment does not serve that workspace; ask its operator");
    }
    let installation = Installation {
        owner: access.owner.clone(),
        enterprise: access.enterprise.clone(),
        bot_token: access.bot_token.clone(),
        bot_user: access.bot_user.clone(),
        bot_id: None,
        scopes: access.scopes.clone(),
        installer: access.installer.clone(),
        installed_at: now_millis(),
    };
    if let Err(err) = app.store.put_installation(&installation, &install.sealer).await {
        tracing::warn!(error = %err, "could not store an installation");
        return failed(StatusCode::SERVICE_UNAVAILABLE, "The installation could not be saved; please try again");
    }
    tracing::info!(
        owner = %access.owner,
        installer = access.installer.as_ref().map(tracing::field::display),
        "the app was installed"
    );
    page(StatusCode::OK, oauth::set_cookie(None, secure), oauth::installed_page(&access))
}
