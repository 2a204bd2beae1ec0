//! The event generator: signed Slack message events into the seeded ticket threads, at a
//! fixed rate (open loop: a request goes out on schedule whether or not earlier ones were
//! answered) or as fast as a set of connections can go.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hmac::{KeyInit, Mac};
use serde_json::json;

use crate::{
    bridge::{SECRET, Thread},
    fake_slack::{BOT_USER, TEAM},
};

/// What a run measured.
#[derive(Debug, Default)]
pub struct Report {
    /// Requests sent.
    pub sent: u64,
    /// Answered 200.
    pub acked: u64,
    /// Answered, but not 200 (the bridge asked Slack to deliver it again).
    pub refused: u64,
    /// Not answered at all (a connection error or a timeout).
    pub errors: u64,
    /// The run's length, from the first request to the last answer.
    pub elapsed: Duration,
    /// Ack latencies of the acked requests, sorted.
    pub latencies: Vec<Duration>,
    /// How far behind schedule the generator fell at worst (fixed-rate runs).
    pub worst_lag: Duration,
}

impl Report {
    /// The latency below which `p` of the acks fell.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }

    /// Acked events per second.
    pub fn rate(&self) -> f64 {
        self.acked as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Makes signed events; shared by every sender.
pub struct Events {
    threads: Vec<Thread>,
    next: AtomicU64,
    run: String,
    events_url: String,
}

impl Events {
    /// Events into `threads`, round robin, for the bridge at `bridge_url`; `run` keeps the
    /// event ids of different runs apart. Messages are numbered from 0, and a message's
    /// number makes its ts, which Slack's retries and the dedup mark know it by.
    pub fn new(threads: Vec<Thread>, bridge_url: &str, run: &str) -> Self {
        Self { threads, next: AtomicU64::new(0), run: run.to_owned(), events_url: format!("{bridge_url}/slack/events") }
    }

    /// The same, numbered from `first`: for another message into threads that had some.
    pub fn starting_at(self, first: u64) -> Self {
        self.next.store(first, Ordering::Relaxed);
        self
    }

    /// The next event's body and its signature headers.
    fn next(&self) -> (String, String, String) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let thread = &self.threads[(n as usize) % self.threads.len()];
        let ts = format!("1800000000.{n:06}");
        let event = json!({
            "type": "message", "channel": thread.channel, "user": thread.requester,
            "text": format!("load message {n}: is the deployment healthy?"), "ts": ts, "event_ts": ts,
            "thread_ts": thread.ts, "channel_type": "channel", "client_msg_id": format!("cm-{}-{n}", self.run)
        });
        signed(&event, &format!("Ev{}{n}", self.run))
    }

    /// Sends one event and says how it was answered.
    async fn send(&self, client: &reqwest::Client) -> Answer {
        let (body, timestamp, signature) = self.next();
        post(client, &self.events_url, body, timestamp, signature).await
    }
}

/// `event` in Slack's Events API envelope under `event_id`, with its signature headers:
/// the body, its timestamp and its signature.
fn signed(event: &serde_json::Value, event_id: &str) -> (String, String, String) {
    let body = json!({
        "token": "deprecated", "team_id": TEAM, "api_app_id": "A1", "type": "event_callback",
        "event_id": event_id, "event_time": 1_800_000_000,
        "authorizations": [{"enterprise_id": null, "team_id": TEAM, "user_id": BOT_USER, "is_bot": true,
            "is_enterprise_install": false}],
        "is_ext_shared_channel": false, "event_context": "4-eyJldCI6Im1lc3NhZ2UifQ",
        "event": event
    })
    .to_string();
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
        .to_string();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    let signature = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    (body, timestamp, signature)
}

/// Posts a signed event and says how it was answered.
async fn post(client: &reqwest::Client, url: &str, body: String, timestamp: String, signature: String) -> Answer {
    let started = Instant::now();
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", timestamp)
        .header("x-slack-signature", signature)
        .body(body)
        .send()
        .await;
    let Ok(response) = sent else { return Answer::None };
    let ok = response.status().is_success();
    // The ack's body is read so the connection can be reused.
    let _ = response.bytes().await;
    if ok { Answer::Acked(started.elapsed()) } else { Answer::Refused }
}

/// Sends `user`'s mention of the bot as a new message `ts` in `channel` (not in a thread:
/// it opens a ticket) to the bridge at `bridge_url`; whether it was acked.
pub async fn mention(bridge_url: &str, channel: &str, user: &str, ts: &str) -> bool {
    let event = json!({
        "type": "app_mention", "channel": channel, "user": user, "ts": ts, "event_ts": ts,
        "text": format!("<@{BOT_USER}> the checkout pods crash-loop in prod"), "client_msg_id": format!("cm-{ts}")
    });
    let (body, timestamp, signature) = signed(&event, &format!("EvMention{channel}{ts}"));
    let answer = post(&client(), &format!("{bridge_url}/slack/events"), body, timestamp, signature).await;
    matches!(answer, Answer::Acked(_))
}

/// How the bridge answered one event.
#[derive(Clone, Copy)]
enum Answer {
    /// 200, after this long.
    Acked(Duration),
    /// Another status: Slack would deliver it again.
    Refused,
    /// No answer.
    None,
}

/// Sends message number `n` into `thread` through the bridge at `bridge_url`; whether it
/// was acked.
pub async fn send_one(thread: &Thread, bridge_url: &str, run: &str, n: u64) -> bool {
    let events = Events::new(vec![thread.clone()], bridge_url, run).starting_at(n);
    matches!(events.send(&client()).await, Answer::Acked(_))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(256)
        .build()
        .expect("a plain HTTP client")
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    refused: u64,
    errors: u64,
}

impl Tally {
    fn count(&mut self, answer: Answer) {
        match answer {
            Answer::Acked(latency) => self.latencies.push(latency),
            Answer::Refused => self.refused += 1,
            Answer::None => self.errors += 1,
        }
    }

    fn add(&mut self, other: Self) {
        self.latencies.extend(other.latencies);
        self.refused += other.refused;
        self.errors += other.errors;
    }
}

/// Sends `rate` events a second for `duration`, each on schedule.
pub async fn fixed_rate(events: Arc<Events>, rate: u32, duration: Duration) -> Report {
    let client = client();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let total = (f64::from(rate) * duration.as_secs_f64()) as u64;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let started = Instant::now();
    let mut worst_lag = Duration::ZERO;
    let tasks = tokio_util::task::TaskTracker::new();
    for n in 0..total {
        let due = started + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        worst_lag = worst_lag.max(Instant::now().saturating_duration_since(due));
        let (events, client, tally) = (events.clone(), client.clone(), tally.clone());
        tasks.spawn(async move {
            let answer = events.send(&client).await;
            tally.lock().unwrap().count(answer);
        });
    }
    tasks.close();
    tasks.wait().await;
    finish(&tally, total, started.elapsed(), worst_lag)
}

/// `connections` senders, each sending its next event when the last was answered, for
/// `duration` or until `most` events were sent, whichever comes first.
pub async fn saturate(events: Arc<Events>, connections: usize, duration: Duration, most: u64) -> Report {
    let client = client();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks = tokio_util::task::TaskTracker::new();
    for _ in 0..connections {
        let (events, client, tally, sent) = (events.clone(), client.clone(), tally.clone(), sent.clone());
        tasks.spawn(async move {
            let mut mine = Tally::default();
            while started.elapsed() < duration && sent.fetch_add(1, Ordering::Relaxed) < most {
                mine.count(events.send(&client).await);
            }
            tally.lock().unwrap().add(mine);
        });
    }
    tasks.close();
    tasks.wait().await;
    // Each sender counted one more than it sent when it stopped for `most`.
    let sent = sent.load(Ordering::Relaxed).min(most);
    finish(&tally, sent, started.elapsed(), Duration::ZERO)
}

fn finish(tally: &Mutex<Tally>, sent: u64, elapsed: Duration, worst_lag: Duration) -> Report {
    let mut tally = tally.lock().unwrap();
    let mut latencies = std::mem::take(&mut tally.latencies);
    latencies.sort_unstable();
    Report {
        sent,
        acked: latencies.len() as u64,
        refused: tally.refused,
        errors: tally.errors,
        elapsed,
        latencies,
        worst_lag,
    }
}
