//! The real binary: configuration errors, `check`, and SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::json;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{path, query_param},
};

use crate::support::{app::mount_auth_test, eventually};

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_helpdesk-bridge"));
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

fn base_env(command: &mut Command, slack_url: &str, state_dir: &std::path::Path) {
    command
        .env("SLACK_BOT_TOKEN", "xoxb-test")
        .env("SLACK_SIGNING_SECRET", "secret")
        .env("SLACK_API_URL", slack_url)
        .env("DUPLO_HOST", "http://127.0.0.1:9")
        .env("DUPLO_TOKEN", "duplo-secret-token")
        .env("STATE_DIR", state_dir)
        .env("RUST_LOG", "info");
}

#[test]
fn configuration_errors_exit_2_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("SLACK_BOT_TOKEN", "")], "SLACK_BOT_TOKEN"),
        (&[("DUPLO_HOST", "not a url")], "DUPLO_HOST"),
        (&[("SLACK_SIGNING_SECRET", "")], "SLACK_SIGNING_SECRET"),
        (&[("LISTEN_ADDR", "everywhere")], "LISTEN_ADDR"),
        (&[("REDIS_URL", "localhost")], "REDIS_URL"),
        (&[("COMMAND_ALLOW", "^kubectl get ;(unclosed")], "COMMAND_ALLOW"),
        (&[("COMMAND_BLOCK", "[z-a]")], "COMMAND_BLOCK"),
        (&[("APPROVAL_TTL", "a day")], "APPROVAL_TTL"),
        (&[("APPROVALS_REQUIRED", "0")], "APPROVALS_REQUIRED"),
        (&[("TWO_PERSON_PATTERNS", "delete;(")], "TWO_PERSON_PATTERNS"),
        (&[("DESTRUCTIVE_PATTERNS", "\\bdelete\\b;*oops")], "DESTRUCTIVE_PATTERNS"),
    ];
    for (overrides, var) in cases {
        let mut command = binary();
        base_env(&mut command, "http://127.0.0.1:9/", dir.path());
        for (name, value) in *overrides {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(var), "{stderr}");
        assert!(!stderr.contains("duplo-secret-token") && !stderr.contains("xoxb-test"), "no secret in {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_dependency() {
    let dir = tempfile::tempdir().unwrap();
    let good = MockServer::start().await;
    mount_auth_test(&good, true).await;
    let helpdesk = MockServer::start().await;
    Mock::given(path("/v1/aiservicedesk/admin/data/workspaces"))
        .and(query_param("filters[name]", "devops"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"success": true, "data": {"items": [{"id": "65f0c0ffee0000000000abcd", "name": "DevOps"}]}}),
        ))
        .mount(&helpdesk)
        .await;
    Mock::given(path("/v1/aiservicedesk/admin/data/aiagents"))
        .and(query_param("filters[name]", "k8s-agent"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"data": {"items": [{"id": "a1", "name": "k8s-agent", "metaData": {"STREAMING_ENABLED": "true"}}]}}),
        ))
        .mount(&helpdesk)
        .await;
    let mut command = binary();
    base_env(&mut command, &good.uri(), dir.path());
    command.env("DUPLO_HOST", helpdesk.uri()).env("HELPDESK_WORKSPACE", "devops").env("HELPDESK_AGENT", "k8s-agent");
    command.env("STATE_ENCRYPTION_KEY", "ab".repeat(32));
    let output = tokio::task::spawn_blocking(move || command.arg("check").output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("ok      installations: 0 installed (); every token opens"), "{stdout}");
    assert!(stdout.contains("ok      slack: token accepted; bot user UBOT in team T1"), "{stdout}");
    assert!(stdout.contains("ok      store: embedded store reachable"), "{stdout}");
    assert!(
        stdout.contains("ok      helpdesk workspace: default workspace 'DevOps' is 65f0c0ffee0000000000abcd"),
        "{stdout}"
    );
    assert!(stdout.contains("ok      helpdesk agent: default agent 'k8s-agent' is a1 (streaming)"), "{stdout}");

    // An unknown default workspace fails the check and says which variable is wrong.
    let mut command = binary();
    base_env(&mut command, &good.uri(), dir.path());
    command.env("DUPLO_HOST", helpdesk.uri()).env("HELPDESK_WORKSPACE", "nope");
    let output = tokio::task::spawn_blocking(move || command.arg("check").output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(!output.status.success());
    assert!(stdout.contains("FAILED  helpdesk workspace: HELPDESK_WORKSPACE:"), "{stdout}");

    let bad = MockServer::start().await;
    mount_auth_test(&bad, false).await;
    let mut command = binary();
    base_env(&mut command, &bad.uri(), dir.path());
    let output = tokio::task::spawn_blocking(move || command.arg("check").output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(!output.status.success());
    assert!(stdout.contains("FAILED  slack:") && stdout.contains("invalid_auth"), "{stdout}");
    // The refused call is also logged, to a pipe here: as plain text, without colour codes.
    assert!(stdout.contains("Slack Web API call failed"), "{stdout}");
    assert!(!stdout.contains('\u{1b}'), "no ANSI escape codes in piped logs: {stdout:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_service_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let slack = MockServer::start().await;
    mount_auth_test(&slack, true).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut command = binary();
    base_env(&mut command, &slack.uri(), dir.path());
    command
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_FORMAT", "json")
        .env("SHUTDOWN_GRACE_SECONDS", "5");
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<_>>());

    let client = reqwest::Client::new();
    let ready = eventually(Duration::from_secs(15), || async {
        let response = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    assert!(ready.is_some(), "the binary became ready");

    let started = Instant::now();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(5), "stopped in {:?}", started.elapsed());
    let lines = lines.join().unwrap();
    assert!(lines.iter().any(|l| l.contains("helpdesk-bridge is listening")), "{lines:?}");
    assert!(lines.iter().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "LOG_FORMAT=json: {lines:?}");
    assert!(lines.iter().all(|l| !l.contains("duplo-secret-token") && !l.contains("xoxb-test")), "no secrets logged");
}

#[test]
fn plain_http_off_loopback_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in
        [("DUPLO_HOST", "http://acme.duplocloud.net"), ("SLACK_API_URL", "http://slack.example.com/api/")]
    {
        let mut command = binary();
        base_env(&mut command, "http://127.0.0.1:9/", dir.path());
        command.env(var, value);
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(var) && stderr.contains("ALLOW_INSECURE_HTTP=true"), "{stderr}");
    }
    // Allowed, the configuration is valid (the check then fails to reach the HelpDesk).
    let mut command = binary();
    base_env(&mut command, "http://127.0.0.1:9/", dir.path());
    command
        .env("DUPLO_HOST", "http://0.0.0.0:9")
        .env("ALLOW_INSECURE_HTTP", "true")
        .env("HELPDESK_TIMEOUT_SECONDS", "2");
    let output = command.arg("check").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_ne!(output.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("ok      configuration: valid"), "{stdout}");
}

/// The review's finding against the release binary: slow connections kept the process
/// alive past the shutdown grace. Now SIGTERM ends it within the grace, whatever they do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_not_held_by_connections_trickling_headers() {
    let dir = tempfile::tempdir().unwrap();
    let slack = MockServer::start().await;
    mount_auth_test(&slack, true).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut command = binary();
    base_env(&mut command, &slack.uri(), dir.path());
    command.env("LISTEN_ADDR", format!("127.0.0.1:{port}")).env("SHUTDOWN_GRACE_SECONDS", "3");
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let client = reqwest::Client::new();
    let ready = eventually(Duration::from_secs(15), || async {
        let response = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    assert!(ready.is_some(), "the binary became ready");

    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let head = crate::hostile_ingress::endless_head(addr, 4096);
    let mut junk = Vec::new();
    for _ in 0..20 {
        junk.push(crate::hostile_ingress::Slow::start(addr, Vec::new(), head.clone(), Duration::from_millis(50)).await);
    }
    let trickling =
        eventually(Duration::from_secs(10), || async { junk.iter().all(|j| j.seen().written >= 3).then_some(()) })
            .await;
    assert!(trickling.is_some());

    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    // The grace (3 s) plus the default header timeout (10 s): generous, and far shorter than
    // the minutes these clients would keep trickling.
    let deadline = Instant::now() + Duration::from_secs(13);
    let exited = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let Some(status) = exited else {
        let _ = child.kill();
        panic!("the binary was still running past the grace plus the header timeout");
    };
    assert_eq!(status.code(), Some(0));
    for client in junk {
        let seen = client.closed_within(Duration::from_secs(5)).await.expect("closed by the exit");
        assert!(seen.written < head.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portals_files_are_checked_whole_at_start_and_each_portal_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portals.toml");
    // A portal whose token variable is not set stops the start, naming the entry.
    std::fs::write(
        &file,
        "[[portal]]\nname = \"qa\"\nhost = \"https://qa.example\"\ntoken_env = \"HB_TEST_NO_SUCH_TOKEN\"\n",
    )
    .unwrap();
    let mut command = binary();
    base_env(&mut command, "http://127.0.0.1:9", dir.path());
    command.env_remove("DUPLO_HOST").env_remove("DUPLO_TOKEN").env("PORTALS_FILE", &file);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("PORTALS_FILE") && stderr.contains("portal 'qa': token_env HB_TEST_NO_SUCH_TOKEN is not set"),
        "{stderr}"
    );
    // Both forms at once are refused too.
    let mut command = binary();
    base_env(&mut command, "http://127.0.0.1:9", dir.path());
    command.env("PORTALS_FILE", &file);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is set together with DUPLO_HOST"));

    // `check` asks every portal, with its own token.
    let slack = MockServer::start().await;
    mount_auth_test(&slack, true).await;
    let prod = MockServer::start().await;
    Mock::given(path("/v1/aiservicedesk/admin/data/workspaces"))
        .and(wiremock::matchers::header("authorization", "Bearer tok-prod"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"success": true, "data": {"items": [{"id": "65f0c0ffee0000000000abcd", "name": "DevOps"}]}}),
        ))
        .mount(&prod)
        .await;
    let qa = MockServer::start().await;
    Mock::given(path("/v1/aiservicedesk/admin/data/workspaces"))
        .respond_with(ResponseTemplate::new(401).set_body_string("bad token"))
        .mount(&qa)
        .await;
    std::fs::write(
        &file,
        format!(
            "[[portal]]\nname = \"prod\"\nhost = \"{}\"\ntoken_env = \"HB_TEST_PROD_TOKEN\"\nworkspace = \"devops\"\n\n\
             [[portal]]\nname = \"qa\"\nhost = \"{}\"\ntoken_env = \"HB_TEST_QA_TOKEN\"\n",
            prod.uri(),
            qa.uri()
        ),
    )
    .unwrap();
    let mut command = binary();
    base_env(&mut command, &slack.uri(), dir.path());
    command
        .env_remove("DUPLO_HOST")
        .env_remove("DUPLO_TOKEN")
        .env("PORTALS_FILE", &file)
        .env("HB_TEST_PROD_TOKEN", "tok-prod")
        .env("HB_TEST_QA_TOKEN", "tok-qa");
    let output = tokio::task::spawn_blocking(move || command.arg("check").output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stdout.contains("ok      helpdesk workspace [prod]: default workspace 'DevOps' is 65f0c0ffee0000000000abcd"),
        "{stdout}"
    );
    assert!(stdout.contains("FAILED  helpdesk workspace [qa]:"), "{stdout}");
    assert!(!stdout.contains("tok-"), "no token in {stdout}");
}
