//! Shared test support: stores on both backends, signing, polling.

use std::{future::Future, time::Duration};

use helpdesk_bridge::store::Store;

/// The Redis the tests use.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("hb-test:{:016x}:", rand::random::<u64>())
}

/// A store under test and what keeps it alive; Redis keys are purged when dropped.
pub struct TestStore {
    pub store: Store,
    /// Keeps the embedded store's folder alive as long as the store.
    pub _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    /// A Redis store under a fresh prefix. Fails loudly when no Redis answers.
    pub async fn redis() -> Self {
        let store = Store::redis(&redis_url(), &unique_prefix()).expect("valid REDIS_URL");
        if let Err(err) = store.ping().await {
            panic!(
                "no Redis answers at {} ({err}). Start one with `redis-server --daemonize yes` \
                 or point REDIS_URL at one.",
                redis_url()
            );
        }
        Self { store, _dir: None }
    }

    /// An embedded store in a fresh temporary folder.
    pub fn embedded() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::embedded(dir.path()).expect("embedded store opens");
        Self { store, _dir: Some(dir) }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if self.store.kind() == "redis" {
            let store = self.store.clone();
            // Purge on a fresh runtime: the test's runtime may already be shutting down.
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread().enable_all().build().map(|rt| rt.block_on(store.purge()))
            })
            .join();
        }
    }
}

/// Polls `check` until it returns `Some`, for at most `patience`.
pub async fn eventually<T, F, Fut>(patience: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A redis-server of this test's own, on a free port, for tests that stop and restart it
/// (the shared server must stay up for the tests running beside them).
pub struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
    /// Where an append-only file keeps the data across restarts, when it should.
    dir: Option<tempfile::TempDir>,
}

impl PrivateRedis {
    /// Starts a server and waits until it accepts connections.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = Self { port, child: None, dir: None };
        server.spawn();
        server
    }

    /// Starts a server that keeps its data in an append-only file, and whose
    /// [`PrivateRedis::stop`] is a graceful shutdown (SIGTERM), as in a maintenance restart:
    /// the restarted server has everything it acknowledged.
    pub fn persistent() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = Self { port, child: None, dir: Some(tempfile::tempdir().unwrap()) };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut args = vec!["--port".to_owned(), self.port.to_string(), "--bind".into(), "127.0.0.1".into()];
        match &self.dir {
            Some(dir) => args.extend(
                ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--dir"]
                    .map(str::to_owned)
                    .into_iter()
                    .chain([dir.path().display().to_string()]),
            ),
            None => args.extend(["--save", "", "--appendonly", "no"].map(str::to_owned)),
        }
        let child = std::process::Command::new("redis-server")
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("private redis-server did not start on port {}", self.port);
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server and waits for it to be gone: a kill, as a crash would, or for a
    /// persistent server a graceful shutdown.
    pub fn stop(mut self) -> Self {
        if let Some(mut child) = self.child.take() {
            if self.dir.is_some() {
                let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            } else {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        self
    }

    /// Starts it again on the same port.
    pub fn restart(mut self) -> Self {
        self.spawn();
        self
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub use app::*;

pub mod fakes;
pub mod timed;

mod app {
    use std::{
        net::SocketAddr,
        path::PathBuf,
        sync::{Arc, Mutex},
        time::Duration,
    };

    use futures_util::future::BoxFuture;
    use helpdesk_bridge::{
        app::Application,
        config::{
            AccessConfig, Config, DispatchConfig, HelpdeskConfig, IngressConfig, LogFormat, SlackConfig, StoreConfig,
        },
        dispatch::Handler,
        inbound::Inbound,
        slack::verify::{Verifier, unix_now},
        store::Store,
    };
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::path};

    use super::{eventually, redis_url, unique_prefix};

    /// The signing secret every test app uses.
    pub const SECRET: &str = "test-signing-secret";
    /// The bot's user id, as the fake auth.test reports it.
    pub const BOT_USER: &str = "UBOT";
    /// The bot's bot id.
    pub const BOT_ID: &str = "BBOT";

    /// Which store backend an app runs on.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Backend {
        Redis,
        Embedded,
    }

    /// Records what the dispatcher hands over, optionally after a per-item hook.
    #[derive(Clone, Default)]
    pub struct Recorder {
        pub items: Arc<Mutex<Vec<Inbound>>>,
        #[allow(clippy::type_complexity)]
        pub hook: Option<Arc<dyn Fn(Inbound) -> BoxFuture<'static, ()> + Send + Sync>>,
    }

    impl Recorder {
        pub fn taken(&self) -> Vec<Inbound> {
            self.items.lock().unwrap().clone()
        }
    }

    impl Handler for Recorder {
        fn handle(&self, item: Inbound) -> BoxFuture<'static, ()> {
            let this = self.clone();
            Box::pin(async move {
                if let Some(hook) = &this.hook {
                    hook(item.clone()).await;
                }
                this.items.lock().unwrap().push(item);
            })
        }
    }

    /// Options of [`spawn_app`].
    pub struct Options {
        pub backend: Backend,
        pub recorder: Recorder,
        pub app_token: Option<String>,
        pub redis_url: Option<String>,
        pub auth_ok: bool,
        pub queue_capacity: usize,
        /// Run the real bridge instead of recording what the dispatcher hands over.
        pub bridge: bool,
        /// `HELPDESK_WORKSPACE` / `HELPDESK_AGENT` (names the fake HelpDesk knows).
        pub defaults: bool,
        /// Point `DUPLO_HOST` somewhere else than the wiremock HelpDesk.
        pub helpdesk_url: Option<String>,
        /// `HELPDESK_FORCE_STREAMING`.
        pub force_streaming: bool,
        /// `HELPDESK_STREAM_IDLE_SECONDS` and the unary timeout.
        pub helpdesk_timeout: Duration,
        /// An embedded store folder to reuse (for restart tests).
        pub state_dir: Option<PathBuf>,
        /// A Redis key prefix to reuse (for restart tests).
        pub key_prefix: Option<String>,
        /// `SLACK_UPDATES_PER_MINUTE`.
        pub updates_per_minute: u32,
        /// `SHUTDOWN_GRACE_SECONDS`.
        pub shutdown_grace: Duration,
        /// `APPROVERS`.
        pub approvers: Vec<String>,
        /// `ADMINS`, `ADMINS_ONLY`, `REQUESTER_MAY_APPROVE`, `ALLOWED_WORKSPACES`, `ALLOWED_AGENTS`.
        pub access: AccessConfig,
        /// `SLACK_TIMEOUT_SECONDS`.
        pub slack_timeout: Duration,
        /// `HTTP_HEADER_TIMEOUT_SECONDS`, `HTTP_BODY_TIMEOUT_SECONDS`, `HTTP_MAX_CONNECTIONS`.
        pub ingress: IngressConfig,
        /// Serve `/metrics` on an admin listener (`ADMIN_LISTEN_ADDR`) on a port of its own.
        pub admin_listener: bool,
    }

    impl Default for Options {
        fn default() -> Self {
            Self {
                backend: Backend::Redis,
                recorder: Recorder::default(),
                app_token: None,
                redis_url: None,
                auth_ok: true,
                queue_capacity: 1024,
                bridge: false,
                defaults: true,
                helpdesk_url: None,
                force_streaming: false,
                helpdesk_timeout: Duration::from_secs(5),
                state_dir: None,
                key_prefix: None,
                updates_per_minute: 600,
                shutdown_grace: Duration::from_secs(5),
                approvers: Vec::new(),
                access: AccessConfig::default(),
                slack_timeout: Duration::from_secs(10),
                ingress: IngressConfig::default(),
                admin_listener: false,
            }
        }
    }

    /// State that outlives one app: an embedded store folder and a Redis key prefix that
    /// successive apps of a restart test share.
    pub struct Persistent {
        dir: tempfile::TempDir,
        prefix: String,
    }

    impl Persistent {
        pub fn new() -> Self {
            Self { dir: tempfile::tempdir().unwrap(), prefix: super::unique_prefix() }
        }

        /// Options of an app on this state.
        pub fn options(&self, backend: Backend) -> Options {
            Options {
                state_dir: Some(self.dir.path().to_path_buf()),
                key_prefix: Some(self.prefix.clone()),
                ..Options::bridge(backend)
            }
        }
    }

    impl Options {
        /// The real bridge on the given backend, with default workspace and agent.
        pub fn bridge(backend: Backend) -> Self {
            Self { backend, bridge: true, ..Self::default() }
        }
    }

    /// The application under test, with its stand-ins.
    pub struct TestApp {
        pub addr: SocketAddr,
        /// The admin listener's address, when there is one.
        pub admin_addr: Option<SocketAddr>,
        pub slack: MockServer,
        pub helpdesk: MockServer,
        pub recorder: Recorder,
        pub store: Store,
        pub http: reqwest::Client,
        verifier: Verifier,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
        _dir: Option<tempfile::TempDir>,
        /// Leave the Redis keys in place when dropped (a restart test reads them again).
        keep_state: bool,
    }

    /// A configuration pointing at the given stand-ins.
    pub fn test_config(slack_url: &str, backend: Backend, state_dir: PathBuf, redis: Option<String>) -> Config {
        Config {
            slack: SlackConfig {
                bot_token: "xoxb-test".to_owned().into(),
                signing_secret: Some(SECRET.to_owned().into()),
                app_token: None,
                api_url: format!("{slack_url}/"),
                updates_per_minute: 600,
                timeout: Duration::from_secs(10),
            },
            helpdesk: HelpdeskConfig {
                host: "http://127.0.0.1:9".to_owned(),
                token: "duplo-token".to_owned().into(),
                default_workspace: None,
                default_agent: None,
                request_timeout: Duration::from_secs(5),
                stream_idle_timeout: Duration::from_secs(5),
                cache_ttl: Duration::from_secs(60),
                force_streaming: false,
            },
            store: StoreConfig {
                redis_url: (backend == Backend::Redis).then(|| redis.unwrap_or_else(redis_url).into()),
                key_prefix: unique_prefix(),
                state_dir,
            },
            listen_addr: "127.0.0.1:0".parse().unwrap(),
            admin_listen_addr: None,
            ingress: IngressConfig::default(),
            approvers: Vec::new(),
            access: AccessConfig::default(),
            destructive_patterns: helpdesk_bridge::config::DEFAULT_DESTRUCTIVE.split(';').map(str::to_owned).collect(),
            log_format: LogFormat::Text,
            shutdown_grace: Duration::from_secs(5),
            dispatch: DispatchConfig { queue_capacity: 1024, workers: 64 },
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

    /// Starts the application on port 0 with a fake Slack and returns once it is serving
    /// (and, when `auth_ok`, ready).
    pub async fn spawn_app(options: Options) -> TestApp {
        let slack = MockServer::start().await;
        mount_auth_test(&slack, options.auth_ok).await;
        let helpdesk = MockServer::start().await;
        if options.bridge {
            super::fakes::mount_slack(&slack).await;
            super::fakes::mount_helpdesk(&helpdesk).await;
        }
        let dir = tempfile::tempdir().unwrap();
        let state_dir = options.state_dir.clone().unwrap_or_else(|| dir.path().join("state"));
        let mut config = test_config(&slack.uri(), options.backend, state_dir, options.redis_url.clone());
        config.dispatch.queue_capacity = options.queue_capacity;
        config.slack.updates_per_minute = options.updates_per_minute;
        config.slack.timeout = options.slack_timeout;
        config.shutdown_grace = options.shutdown_grace;
        config.approvers =
            options.approvers.iter().filter_map(|id| helpdesk_bridge::ids::Approver::parse(id)).collect();
        config.access = options.access.clone();
        config.ingress = options.ingress;
        if options.admin_listener {
            config.admin_listen_addr = Some("127.0.0.1:0".parse().unwrap());
        }
        if let Some(prefix) = &options.key_prefix {
            config.store.key_prefix.clone_from(prefix);
        }
        if let Some(token) = &options.app_token {
            config.slack.app_token = Some(token.clone().into());
        }
        config.helpdesk.host = options.helpdesk_url.clone().unwrap_or_else(|| helpdesk.uri());
        config.helpdesk.force_streaming = options.force_streaming;
        config.helpdesk.request_timeout = options.helpdesk_timeout;
        config.helpdesk.stream_idle_timeout = options.helpdesk_timeout;
        if options.defaults {
            config.helpdesk.default_workspace = Some(super::fakes::WORKSPACE_NAME.to_owned());
            config.helpdesk.default_agent = Some(super::fakes::AGENT_NAME.to_owned());
        }
        let app = if options.bridge {
            Application::build(config).await.expect("app builds")
        } else {
            Application::build_with(config, Arc::new(options.recorder.clone())).await.expect("app builds")
        };
        if let Err(err) = app.state().store.ping().await {
            panic!(
                "the store does not answer ({err}); for Redis, start one with `redis-server --daemonize yes` or set REDIS_URL"
            );
        }
        let addr = app.local_addr();
        let admin_addr = app.admin_addr();
        let store = app.state().store.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        let test = TestApp {
            addr,
            admin_addr,
            slack,
            helpdesk,
            recorder: options.recorder,
            store,
            http: reqwest::Client::new(),
            verifier: Verifier::new(SECRET.to_owned().into()),
            stop: Some(tx),
            server: Some(server),
            _dir: Some(dir),
            keep_state: false,
        };
        if options.auth_ok && options.app_token.is_none() {
            test.wait_ready().await;
        }
        test
    }

    impl TestApp {
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
        pub async fn post_signed(
            &self,
            route: &str,
            content_type: &str,
            body: impl Into<Vec<u8>>,
        ) -> reqwest::Response {
            self.post_signed_with(route, content_type, body, &[]).await
        }

        /// Like [`post_signed`], with extra headers.
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

        /// Posts a signed slash command.
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

        /// Waits until the handler has taken `n` items, and returns them.
        pub async fn taken(&self, n: usize) -> Vec<Inbound> {
            let items = eventually(Duration::from_secs(10), || async {
                let items = self.recorder.taken();
                (items.len() >= n).then_some(items)
            })
            .await;
            items.unwrap_or_else(|| panic!("expected {n} handled items, got {:?}", self.recorder.taken()))
        }

        /// JSON bodies (or query parameters, for GETs) of the fake Slack's calls of `method`.
        pub async fn slack_calls(&self, method: &str) -> Vec<serde_json::Value> {
            super::fakes::calls(&self.slack, &format!("/{method}")).await
        }

        /// Waits until the fake Slack saw `n` calls of `method` matching `pred`; returns them.
        pub async fn wait_slack(
            &self,
            method: &str,
            n: usize,
            pred: impl Fn(&serde_json::Value) -> bool,
        ) -> Vec<serde_json::Value> {
            let found = eventually(Duration::from_secs(15), || async {
                let calls: Vec<_> = self.slack_calls(method).await.into_iter().filter(|c| pred(c)).collect();
                (calls.len() >= n).then_some(calls)
            })
            .await;
            match found {
                Some(calls) => calls,
                None => panic!("expected {n} matching {method} calls; saw {:#?}", self.slack_calls(method).await),
            }
        }

        /// JSON bodies the fake HelpDesk received on paths ending with `suffix`.
        pub async fn helpdesk_calls(&self, method: &str, suffix: &str) -> Vec<serde_json::Value> {
            super::fakes::helpdesk_calls(&self.helpdesk, method, suffix).await
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

        /// Stops the app as SIGTERM would and waits for it to return.
        pub async fn stop(mut self) -> std::io::Result<()> {
            self.shut_down().await
        }

        /// Like [`TestApp::stop`], keeping the fakes to read what reached them.
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
            if self.store.kind() == "redis" && !self.keep_state {
                let store = self.store.clone();
                let _ = std::thread::spawn(move || {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map(|rt| rt.block_on(store.purge()))
                })
                .join();
            }
        }
    }

    /// A Slack message event as the Events API delivers it.
    pub fn message_event(
        event_id: &str,
        channel: &str,
        user: &str,
        ts: &str,
        thread_ts: Option<&str>,
        text: &str,
    ) -> serde_json::Value {
        let mut event = serde_json::json!({
            "type": "message", "channel": channel, "user": user, "text": text, "ts": ts,
            "event_ts": ts, "channel_type": if channel.starts_with('D') { "im" } else { "channel" },
            "client_msg_id": format!("cm-{event_id}"),
            "blocks": [{"type": "rich_text", "block_id": "b1", "elements": [{"type": "rich_text_section", "elements": [
                {"type": "text", "text": text}, {"type": "broadcast", "range": "here"}, {"type": "emoji", "name": "wave"}
            ]}]}]
        });
        if let Some(thread_ts) = thread_ts {
            event["thread_ts"] = serde_json::json!(thread_ts);
        }
        callback(event_id, event)
    }

    /// An `app_mention` event.
    pub fn mention_event(event_id: &str, channel: &str, user: &str, ts: &str, text: &str) -> serde_json::Value {
        callback(
            event_id,
            serde_json::json!({
                "type": "app_mention", "channel": channel, "user": user, "text": text, "ts": ts, "event_ts": ts,
                "client_msg_id": format!("cm-{event_id}")
            }),
        )
    }

    /// Wraps an event in the Events API envelope.
    pub fn callback(event_id: &str, event: serde_json::Value) -> serde_json::Value {
        let mut envelope = serde_json::json!({
            "token": "deprecated", "team_id": "T1", "api_app_id": "A1", "event": null,
            "type": "event_callback", "event_id": event_id, "event_time": 1_700_000_000,
            "authorizations": [{"enterprise_id": null, "team_id": "T1", "user_id": BOT_USER, "is_bot": true, "is_enterprise_install": false}],
            "is_ext_shared_channel": false, "event_context": "4-eyJldCI6Im1lc3NhZ2UifQ"
        });
        envelope["event"] = event;
        envelope
    }
}
