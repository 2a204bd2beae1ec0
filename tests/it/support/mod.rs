//! Shared test support, by concern: [`app`] spawns the real application against
//! stand-ins, [`seen`] reads what those stand-ins received, [`payloads`] builds what Slack
//! sends, [`fakes`] mounts the wiremock Slack and HelpDesk, [`timed`] streams replies over
//! time, [`store`] and [`redis`] give stores and Redis servers of a test's own. For the
//! tests that run the real binary as replicas: [`replica`] starts and stops the processes,
//! [`limited_slack`] is a Slack that enforces rate limits across all of them,
//! [`recording_helpdesk`] a HelpDesk that records every message, and [`traffic`] delivers
//! signed events to whichever replicas are up.

use std::{future::Future, time::Duration};

pub mod app;
pub mod fakes;
pub mod limited_slack;
pub mod payloads;
pub mod recording_helpdesk;
pub mod redis;
pub mod replica;
pub mod seen;
pub mod store;
pub mod streaming_slack;
pub mod timed;
pub mod traffic;

/// Serves `app` on a free loopback port in the background; returns `http://<addr>`.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

/// Runs each listed test body (an `async fn(&Store)` beside the call) against the Redis
/// backend and the embedded backend, in modules `redis_backend` and `embedded_backend`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod redis_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let store = crate::support::store::TestStore::redis().await;
                    super::$name(&store.store).await;
                }
            )*
        }
        mod embedded_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let store = crate::support::store::TestStore::embedded();
                    super::$name(&store.store).await;
                }
            )*
        }
    };
}
pub(crate) use on_both_stores;

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
