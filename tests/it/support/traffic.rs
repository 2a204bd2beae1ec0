//! Slack's side of the replica tests: signed Events API deliveries spread round-robin over
//! the replicas that are up, redelivered elsewhere when a replica cannot be reached (as
//! Slack retries a delivery that failed), with every answer counted.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use helpdesk_bridge::slack::verify::{Verifier, unix_now};
use serde_json::{Value, json};

use super::{app::SECRET, payloads::message_event};

/// How long a delivery is retried before the test gives up on it.
const DELIVERY_PATIENCE: Duration = Duration::from_secs(30);

/// What the replicas answered.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Deliveries acknowledged (200).
    pub acked: u64,
    /// Other answers, by status: each is a refusal Slack would have to redeliver.
    pub refused: BTreeMap<u16, u64>,
    /// Attempts that reached no replica (refused connections, resets): redelivered elsewhere.
    pub unreachable: u64,
}

/// Deliveries to a changing set of replicas.
#[derive(Clone)]
pub struct Traffic {
    client: reqwest::Client,
    verifier: Arc<Verifier>,
    /// Each replica's base URL and whether it is in the rotation.
    targets: Arc<Mutex<Vec<(String, bool)>>>,
    next: Arc<AtomicUsize>,
    tally: Arc<Mutex<Tally>>,
}

/// A message event by `user` in the thread `thread_ts` of `channel` in workspace `team`.
pub fn thread_message(team: &str, channel: &str, user: &str, ts: &str, thread_ts: &str, text: &str) -> Value {
    let mut event = message_event(&format!("Ev{team}{channel}{ts}"), channel, user, ts, Some(thread_ts), text);
    event["team_id"] = json!(team);
    event["authorizations"][0]["team_id"] = json!(team);
    event
}

impl Traffic {
    /// Deliveries to the replicas at these base URLs, all in the rotation.
    pub fn new(bases: &[String]) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
            verifier: Arc::new(Verifier::new(SECRET.to_owned().into())),
            targets: Arc::new(Mutex::new(bases.iter().map(|b| (b.clone(), true)).collect())),
            next: Arc::new(AtomicUsize::new(0)),
            tally: Arc::new(Mutex::new(Tally::default())),
        }
    }

    /// Takes the replica at `base` out of the rotation (it is stopping) or puts it back.
    pub fn set_up(&self, base: &str, up: bool) {
        for target in self.targets.lock().unwrap().iter_mut() {
            if target.0 == base {
                target.1 = up;
            }
        }
    }

    /// What was answered so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().unwrap().clone()
    }

    /// The replica the next attempt goes to: the next one in the rotation.
    fn pick(&self) -> Option<String> {
        let targets = self.targets.lock().unwrap();
        let up: Vec<&String> = targets.iter().filter(|(_, up)| *up).map(|(base, _)| base).collect();
        (!up.is_empty()).then(|| up[self.next.fetch_add(1, Ordering::Relaxed) % up.len()].clone())
    }

    /// Delivers `body` to `/slack/events` of one replica after another until one answers
    /// 200, as Slack retries; every other outcome is counted. Panics if no replica takes
    /// it within [`DELIVERY_PATIENCE`].
    pub async fn deliver(&self, body: &Value) {
        let body = body.to_string();
        let deadline = tokio::time::Instant::now() + DELIVERY_PATIENCE;
        loop {
            if let Some(base) = self.pick() {
                let ts = unix_now().to_string();
                let signature = self.verifier.sign(&ts, body.as_bytes());
                let sent = self
                    .client
                    .post(format!("{base}/slack/events"))
                    .header("content-type", "application/json")
                    .header("x-slack-request-timestamp", ts)
                    .header("x-slack-signature", signature)
                    .body(body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status() == 200 => {
                        let _ = response.bytes().await;
                        self.tally.lock().unwrap().acked += 1;
                        return;
                    }
                    Ok(response) => {
                        *self.tally.lock().unwrap().refused.entry(response.status().as_u16()).or_default() += 1;
                    }
                    Err(_) => self.tally.lock().unwrap().unreachable += 1,
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "no replica took a delivery within {DELIVERY_PATIENCE:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
