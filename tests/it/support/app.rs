//! The application under test: spawned on port 0 with the real router, its real
//! [`Config`] pointing at wiremock stand-ins for Slack and the HelpDesk, and posted to as
//! Slack would, signed.
//!
//! A test changes the configuration itself ([`Options::config`]) rather than through a copy
//! of its fields, so a new configuration field needs nothing here.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::future::BoxFuture;
use helpdesk_bridge::{
    app::Application,
    config::{
        AccessConfig, Config, DispatchConfig, HelpdeskConfig, IngressConfig, LogFormat, SlackConfig, StoreConfig,
        Streaming,
    },
    dispatch::{Attempt, Handler},
    inbound::Inbound,
    slack::verify::{Verifier, unix_now},
    store::Store,
};
use wiremock::{Mock, MockServer, ResponseTemplate, matchers::path};

use super::{
    eventually, fakes,
    payloads::click_from,
    redis::{redis_url, unique_prefix},
    store::purge_on_drop,
    streaming_slack::StreamingSlack,
};

/// The signing secret every test app uses.
pub const SECRET: &str = "test-signing-secret";
/// The bot's user id, as the fake auth.test reports it.
pub const BOT_USER: &str = "UBOT";
/// The bot's bot id.
pub const BOT_ID: &str = "BBOT";

/// Which store backend an app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The shared Redis, under a key prefix of the app's own.
    Redis,
    /// An embedded store in a folder of the app's own.
    Embedded,
}

/// Records what the dispatcher hands over, optionally after a per-item hook.
#[derive(Clone, Default)]
pub struct Recorder {
    /// What was handed over, in order.
    pub items: Arc<Mutex<Vec<Inbound>>>,
    /// Runs on each item before it is recorded (to hold the handler up, say).
    #[allow(clippy::type_complexity)]
    pub hook: Option<Arc<dyn Fn(Inbound) -> BoxFuture<'static, ()> + Send + Sync>>,
}

impl Recorder {
    /// What was handed over so far.
    pub fn taken(&self) -> Vec<Inbound> {
        self.items.lock().unwrap().clone()
    }
}

impl Handler for Recorder {
    fn handle(&self, item: Inbound, _attempt: Attempt) -> BoxFuture<'static, ()> {
        let this = self.clone();
        Box::pin(async move {
            if let Some(hook) = &this.hook {
                hook(item.clone()).await;
            }
            this.items.lock().unwrap().push(item);
        })
    }
}

/// A change a test makes to the app's [`Config`].
type Configure<'a> = Box<dyn FnOnce(&mut Config) + 'a>;

/// How [`spawn_app`] runs the app: on which backend, with which handler, whether Slack
/// accepts its token, and how its configuration differs from [`test_config`].
///
/// [`Options::default`] records what the dispatcher hands over, on Redis.
pub struct Options<'a> {
    backend: Backend,
    /// `None` runs the real bridge.
    recorder: Option<Recorder>,
    auth_ok: bool,
    configure: Vec<Configure<'a>>,
    native_streaming: bool,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Self::recording(Recorder::default())
    }
}

impl<'a> Options<'a> {
    /// The real bridge on the given backend.
    pub fn bridge(backend: Backend) -> Self {
        Self { backend, recorder: None, auth_ok: true, configure: Vec::new(), native_streaming: false }
    }

    /// `recorder` in place of the bridge, on Redis.
    pub fn recording(recorder: Recorder) -> Self {
        Self { recorder: Some(recorder), ..Self::bridge(Backend::Redis) }
    }

    /// The same on another backend.
    pub fn on(self, backend: Backend) -> Self {
        Self { backend, ..self }
    }

    /// The fake Slack refuses the bot token (`auth.test` answers `invalid_auth`).
    pub fn without_slack_auth(self) -> Self {
        Self { auth_ok: false, ..self }
    }

    /// The fake Slack streams natively ([`StreamingSlack`], in [`TestApp::streaming`]),
    /// from before the app starts, so its start-up probe finds streaming.
    pub fn natively_streaming(self) -> Self {
        Self { native_streaming: true, ..self }
    }

    /// Changes the configuration after [`test_config`] built it (changes apply in order).
    pub fn config(mut self, change: impl FnOnce(&mut Config) + 'a) -> Self {
        self.configure.push(Box::new(change));
        self
    }
}

/// Clears `HELPDESK_WORKSPACE` and `HELPDESK_AGENT`, which [`test_config`] sets.
pub fn without_defaults(config: &mut Config) {
    config.helpdesk.default_workspace = None;
    config.helpdesk.default_agent = None;
}

/// State that outlives one app: an embedded store folder and a Redis key prefix that
/// successive apps of a restart test share.
pub struct Persistent {
    dir: tempfile::TempDir,
    prefix: String,
}

impl Persistent {
    /// A fresh folder and prefix.
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap(), prefix: unique_prefix() }
    }

    /// The real bridge on `backend`, keeping its state here.
    pub fn options(&self, backend: Backend) -> Options<'_> {
        self.keep(Options::bridge(backend))
    }

    /// `recorder` in place of the bridge on `backend`, keeping its state here.
    pub fn recording(&self, recorder: Recorder, backend: Backend) -> Options<'_> {
        self.keep(Options::recording(recorder).on(backend))
    }

    fn keep<'a>(&'a self, options: Options<'a>) -> Options<'a> {
        options.config(|config| {
            config.store.state_dir = self.dir.path().to_path_buf();
            config.store.key_prefix.clone_from(&self.prefix);
        })
    }
}

/// The application under test, with its stand-ins.
pub struct TestApp {
    /// The public listener's address.
    pub addr: SocketAddr,
    /// The admin listener's address, when there is one.
    pub admin_addr: Option<SocketAddr>,
    /// The fake Slack Web API.
    pub slack: MockServer,
    /// The fake HelpDesk (unused when a test points the app at another).
    pub helpdesk: MockServer,
    /// What the dispatcher handed over, when the app records instead of bridging.
    pub recorder: Recorder,
    /// The fake Slack's native streaming, when the options asked for it.
    pub streaming: Option<StreamingSlack>,
    /// The app's own store.
    pub store: Store,
    /// The clock the app times approvals by; a test moves it on to pass `APPROVAL_TTL`.
    pub clock: helpdesk_bridge::model::Clock,
    dispatcher: helpdesk_bridge::dispatch::Dispatcher,
    /// A client for calling the app.
    pub http: reqwest::Client,
    verifier: Verifier,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
    /// Leave the Redis keys in place when dropped (a restart test reads them again).
    keep_state: bool,
}

/// The configuration of every test app before its test changes it: the fake Slack at
/// `slack_url`, the HelpDesk at `helpdesk_url` with the fake's workspace and agent as
/// defaults, the store on `backend` (a fresh Redis key prefix, or `state_dir`), port 0.
pub fn test_config(slack_url: &str, helpdesk_url: &str, backend: Backend, state_dir: &Path) -> Config {
    Config {
        slack: SlackConfig {
            bot_token: Some("xoxb-test".to_owned().into()),
            signing_secret: Some(SECRET.to_owned().into()),
            app_token: None,
            api_url: format!("{slack_url}/"),
            updates_per_minute: 600,
            streaming: Streaming::Auto,
            appends_per_minute: 600,
            timeout: Duration::from_secs(10),
            file_inline_max_bytes: 64 * 1024,
            oauth: None,
        },
        helpdesk: HelpdeskConfig {
            host: helpdesk_url.to_owned(),
            token: "duplo-token".to_owned().into(),
            default_workspace: Some(fakes::WORKSPACE_NAME.to_owned()),
            default_agent: Some(fakes::AGENT_NAME.to_owned()),
            request_timeout: Duration::from_secs(5),
            stream_idle_timeout: Duration::from_secs(5),
            cache_ttl: Duration::from_secs(60),
            force_streaming: false,
        },
        portals: Vec::new(),
        store: StoreConfig {
            redis_url: (backend == Backend::Redis).then(|| redis_url().into()),
            key_prefix: unique_prefix(),
            state_dir: state_dir.to_path_buf(),
            encryption_key: None,
        },
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        admin_listen_addr: None,
        ingress: IngressConfig::default(),
        approvers: Vec::new(),
        access: AccessConfig::default(),
        destructive_patterns: helpdesk_bridge::config::DEFAULT_DESTRUCTIVE.split(';').map(str::to_owned).collect(),
        command_rules: helpdesk_bridge::config::CommandRules::default(),
        approval_ttl: Duration::from_secs(24 * 60 * 60),
        two_person: helpdesk_bridge::config::TwoPerson::default(),
        log_format: LogFormat::Text,
        shutdown_grace: Duration::from_secs(5),
        dispatch: DispatchConfig { inbox_max_items: 1_000_000, lease: Duration::from_secs(30), workers: 64 },
    }
}

/// Mounts Slack's `auth.test` on the fake Slack.
pub async fn mount_auth_test(slack: &MockServer, ok: bool) {
    let body = if ok {
        serde_json::json!({"ok": true, "url": "https://acme.slack.com/", "team": "Acme", "user": "helpdesk",
            "team_id": "T1", "user_id": BOT_USER, "bot_id": BOT_ID})
    } else {
        serde_json::json!({"ok": false, "error": "invalid_auth"})
    };
    Mock::given(path("/auth.test")).respond_with(ResponseTemplate::new(200).set_body_json(body)).mount(slack).await;
}

/// Starts the application on port 0 with a fake Slack and HelpDesk and returns once it is
/// serving (and, when Slack accepts its token and it uses no socket, ready).
pub async fn spawn_app(options: Options<'_>) -> TestApp {
    let slack = MockServer::start().await;
    mount_auth_test(&slack, options.auth_ok).await;
    let helpdesk = MockServer::start().await;
    if options.recorder.is_none() {
        fakes::mount_slack(&slack).await;
        fakes::mount_helpdesk(&helpdesk).await;
    }
    let streaming = match options.native_streaming {
        true => Some(StreamingSlack::mount(&slack).await),
        false => None,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&slack.uri(), &helpdesk.uri(), options.backend, &dir.path().join("state"));
    for change in options.configure {
        change(&mut config);
    }
    let uses_socket = config.slack.app_token.is_some();
    let app = match &options.recorder {
        None => Application::build(config).await,
        Some(recorder) => Application::build_with(config, Arc::new(recorder.clone())).await,
    }
    .expect("app builds");
    if let Err(err) = app.state().store.ping().await {
        panic!(
            "the store does not answer ({err}); for Redis, start one with `redis-server --daemonize yes` or set REDIS_URL"
        );
    }
    let addr = app.local_addr();
    let admin_addr = app.admin_addr();
    let store = app.state().store.clone();
    let (clock, dispatcher) = (app.state().clock.clone(), app.state().dispatcher.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let test = TestApp {
        addr,
        admin_addr,
        slack,
        helpdesk,
        recorder: options.recorder.unwrap_or_default(),
        streaming,
        store,
        clock,
        dispatcher,
        http: reqwest::Client::new(),
        verifier: Verifier::new(SECRET.to_owned().into()),
        stop: Some(tx),
        server: Some(server),
        _dir: Some(dir),
        keep_state: false,
    };
    if options.auth_ok && !uses_socket {
        test.wait_ready().await;
    }
    test
}

impl TestApp {
    /// Runs the app's periodic upkeep now, as its timer would within a minute.
    pub async fn housekeep(&self) {
        self.dispatcher.housekeep().await;
    }

    /// The URL of `path` on the public listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until `/readyz` says ready.
    pub async fn wait_ready(&self) {
        let ready = eventually(Duration::from_secs(10), || async {
            let response = self.http.get(self.url("/readyz")).send().await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
        assert!(ready.is_some(), "the app never became ready");
    }

    /// Posts a body signed as Slack would, now.
    pub async fn post_signed(&self, route: &str, content_type: &str, body: impl Into<Vec<u8>>) -> reqwest::Response {
        self.post_signed_with(route, content_type, body, &[]).await
    }

    /// Like [`TestApp::post_signed`], with extra headers.
    pub async fn post_signed_with(
        &self,
        route: &str,
        content_type: &str,
        body: impl Into<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let body = body.into();
        let ts = unix_now().to_string();
        let signature = self.verifier.sign(&ts, &body);
        let mut request = self
            .http
            .post(self.url(route))
            .header("content-type", content_type)
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", signature);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(body).send().await.expect("request sent")
    }

    /// Posts a signed Events API body.
    pub async fn post_event(&self, body: &serde_json::Value) -> reqwest::Response {
        self.post_signed("/slack/events", "application/json", body.to_string()).await
    }

    /// Posts a signed slash command, answered at `{fake Slack}/respond/{trigger}`.
    pub async fn post_command(&self, user: &str, channel: &str, text: &str, trigger: &str) -> reqwest::Response {
        let response_url = format!("{}/respond/{trigger}", self.slack.uri());
        let form = serde_urlencoded::to_string([
            ("token", "deprecated"),
            ("team_id", "T1"),
            ("team_domain", "acme"),
            ("channel_id", channel),
            ("channel_name", "ops"),
            ("user_id", user),
            ("user_name", "someone"),
            ("command", "/helpdesk"),
            ("text", text),
            ("api_app_id", "A1"),
            ("response_url", response_url.as_str()),
            ("trigger_id", trigger),
        ])
        .unwrap();
        self.post_signed("/slack/commands", "application/x-www-form-urlencoded", form).await
    }

    /// Posts a signed interaction payload.
    pub async fn post_interaction(&self, payload: &serde_json::Value) -> reqwest::Response {
        let form = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
        self.post_signed("/slack/interactivity", "application/x-www-form-urlencoded", form).await
    }

    /// Clicks the button `action` (with `value`) on the message `message_ts` in thread
    /// `thread_ts`, as `user` of T1, answered at `{fake Slack}/respond/{trigger}`; checks the
    /// click was acknowledged.
    pub async fn press(&self, user: &str, message_ts: &str, thread_ts: &str, action: &str, value: &str, trigger: &str) {
        let payload = click_from(user, "T1", message_ts, thread_ts, action, value, trigger, &self.slack.uri());
        assert_eq!(self.post_interaction(&payload).await.status(), 200);
    }

    /// Stops the app and lets it go, leaving its stored state for the next app.
    pub async fn stop_keeping_state(mut self) {
        self.keep_state = true;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    /// Stops the app as SIGTERM would and waits for it to return, keeping the fakes to read
    /// what reached them.
    pub async fn shut_down(&mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.server.take().expect("still running").await.expect("server task")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if !self.keep_state {
            purge_on_drop(&self.store);
        }
    }
}
