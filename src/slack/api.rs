//! Slack egress: every Web API call goes through here, on slack-morphism's client.
//!
//! One hyper client with slack-morphism's rate control (per-tier budgets, retries on 429
//! after `Retry-After`), pointed at `SLACK_API_URL`. Every answer's `ok` is checked by the
//! client; failures become a [`SlackError`] and are counted by method and error code.

use std::{sync::Arc, time::Duration};

use secrecy::ExposeSecret;
use slack_morphism::{errors::SlackClientError, prelude::*};

use crate::{
    config::SlackConfig,
    ids::{TeamId, UserId},
    slack::ingress::BotIdentity,
    telemetry::Metrics,
};

/// The slack-morphism client type used everywhere.
pub type SlackHttpClient = SlackClient<SlackClientHyperHttpsConnector>;

/// A failed Slack Web API call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SlackError {
    /// Slack answered `ok: false`.
    #[error("Slack answered {method} with {code}")]
    Api {
        /// The method called.
        method: &'static str,
        /// Slack's error code, e.g. `channel_not_found`.
        code: String,
    },
    /// Slack kept answering 429 past the retry budget.
    #[error("Slack rate-limited {method}")]
    RateLimited {
        /// The method called.
        method: &'static str,
        /// What Slack asked for.
        retry_after: Option<Duration>,
    },
    /// Slack could not be reached or answered garbage.
    #[error("could not call Slack {method}: {detail}")]
    Transport {
        /// The method called.
        method: &'static str,
        /// What went wrong.
        detail: String,
    },
}

impl SlackError {
    fn from_client(method: &'static str, err: SlackClientError) -> Self {
        match err {
            SlackClientError::ApiError(e) => Self::Api { method, code: e.code },
            SlackClientError::RateLimitError(e) => Self::RateLimited { method, retry_after: e.retry_after },
            other => Self::Transport { method, detail: other.to_string() },
        }
    }

    /// A short label for metrics: the error code, `ratelimited` or `transport`.
    pub fn code(&self) -> &str {
        match self {
            Self::Api { code, .. } => code,
            Self::RateLimited { .. } => "ratelimited",
            Self::Transport { .. } => "transport",
        }
    }
}

/// The Slack Web API, authenticated as the bot.
#[derive(Clone)]
pub struct SlackApi {
    client: Arc<SlackHttpClient>,
    bot_token: SlackApiToken,
    app_token: Option<SlackApiToken>,
    metrics: Metrics,
}

impl std::fmt::Debug for SlackApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlackApi")
    }
}

impl SlackApi {
    /// Builds the client. Fails only if the system's root certificates cannot be loaded.
    pub fn new(config: &SlackConfig, metrics: Metrics) -> Result<Self, SlackError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| SlackError::Transport { method: "init", detail: format!("no root certificates: {e}") })?
            // SLACK_API_URL may be plain http for a local stand-in; Slack itself is https.
            .https_or_http()
            .enable_http1()
            .build();
        let rate_control =
            SlackApiRateControlConfig::new().with_max_retries(3).with_max_delay_timeout(Duration::from_secs(30));
        // slack-morphism joins the base and the method with its own slash.
        let base = config.api_url.trim_end_matches('/');
        let connector = SlackClientHyperConnector::from(https).with_slack_api_url(base).with_rate_control(rate_control);
        Ok(Self {
            client: Arc::new(SlackClient::new(connector)),
            bot_token: SlackApiToken::new(config.bot_token.expose_secret().to_owned().into()),
            app_token: config.app_token.as_ref().map(|t| SlackApiToken::new(t.expose_secret().to_owned().into())),
            metrics,
        })
    }

    /// Counts a call's outcome and converts its error.
    fn record<T>(&self, method: &'static str, result: ClientResult<T>) -> Result<T, SlackError> {
        match result {
            Ok(value) => {
                self.metrics.slack_call(method, "ok");
                Ok(value)
            }
            Err(err) => {
                let err = SlackError::from_client(method, err);
                self.metrics.slack_call(method, err.code());
                tracing::warn!(method, error = %err, "Slack Web API call failed");
                Err(err)
            }
        }
    }

    /// `auth.test`: who the bot is.
    pub async fn auth_test(&self) -> Result<BotIdentity, SlackError> {
        let session = self.client.open_session(&self.bot_token);
        let response = self.record("auth.test", session.auth_test().await)?;
        Ok(BotIdentity {
            user_id: UserId::new(response.user_id.0),
            bot_id: response.bot_id.map(|b| b.0),
            team_id: TeamId::new(response.team_id.0),
        })
    }

    /// `apps.connections.open`: a Socket Mode WebSocket URL (needs the app-level token).
    pub async fn open_socket_url(&self) -> Result<String, SlackError> {
        let token = self
            .app_token
            .as_ref()
            .ok_or(SlackError::Api { method: "apps.connections.open", code: "no_app_token".to_owned() })?;
        let session = self.client.open_session(token);
        let response = self.record(
            "apps.connections.open",
            session.apps_connections_open(&SlackApiAppsConnectionOpenRequest::new()).await,
        )?;
        Ok(response.url.0.to_string())
    }
}
