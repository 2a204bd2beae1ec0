//! Budgets for Web API calls that Slack limits per minute.
//!
//! Slack evaluates its limits in per-minute windows: `chat.update` and `reactions.add` are
//! Tier 3 (about 50 calls a minute per workspace each), and `chat.postMessage` allows one
//! message a second per channel with short bursts. A [`Budget`] is a token bucket per key
//! (a workspace, a channel) that every such call draws from; when it is empty, the caller
//! waits. Its refill rate leaves room for its burst, so no 60-second window ever holds more
//! than the budget's calls, however the calls fall. Streams never queue stale edits behind
//! it: a stream asks for a token, and only then renders its newest text. Calls that only
//! show progress may be asked to leave a reserve in the bucket, so that when the budget is
//! contended the calls that finish something (a reply's final text) go first. A 429 that got
//! through anyway (another app on the token) empties the bucket until Slack's `Retry-After`
//! has passed.
//!
//! On a Redis store the buckets live in Redis ([`Store::draw_budget`]), one per key for
//! every replica together, and outlive restarts: the budget is the workspace's whole
//! budget however many replicas draw from it, and a 429 one replica sees holds back all of
//! them. With the embedded store (one process), and for a draw Redis cannot answer, the
//! bucket is this process's own [`Pacer`].
//!
//! Progress updates of concurrent replies (edits, stream appends) queue for their budget at
//! a [`Turnstile`], so the budget is shared round robin rather than won by whoever retries
//! first. The turnstile is this process's: across replicas the budget stays exact, and each
//! replica's replies share fairly among themselves.

use std::{
    collections::HashMap,
    fmt::Display,
    hash::Hash,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::Semaphore;

use crate::store::{Allowance, LONGEST_HOLD, Store, StoreError};

/// How long draws stay in this process after Redis failed one, so that an outage costs
/// calls one failed round trip a second rather than one each.
const STORE_REST: Duration = Duration::from_secs(1);

/// Keys beyond this many make the pacer forget the buckets that are full again.
const REMEMBERED_KEYS: usize = 1024;

/// A token bucket per key, in this process.
#[derive(Debug)]
pub struct Pacer<K> {
    /// Tokens added per second.
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    blocked_until: Option<Instant>,
}

impl<K: Hash + Eq + Clone> Pacer<K> {
    /// A pacer allowing at most `per_minute` calls per key in any 60 seconds, up to `burst`
    /// of them at once. The burst is capped at half the budget, and the rest of the budget
    /// refills evenly over the minute.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self::with(Allowance::new(per_minute, burst))
    }

    fn with(allowance: Allowance) -> Self {
        Self { rate: allowance.per_second(), burst: f64::from(allowance.burst()), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token now, leaving at least `reserve` behind, or says how long to wait.
    fn try_take(&self, key: &K, reserve: u32, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > REMEMBERED_KEYS && !buckets.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| {
                b.blocked_until.is_some_and(|until| until > now)
                    || b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket { tokens: self.burst, at: now, blocked_until: None });
        if let Some(until) = bucket.blocked_until {
            if until > now {
                return Err(until - now);
            }
            bucket.blocked_until = None;
        }
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        let needed = 1.0 + f64::from(reserve);
        if bucket.tokens >= needed {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            // At least a millisecond: a wait that rounds to nothing would only spin.
            Err(Duration::from_secs_f64((needed - bucket.tokens) / self.rate).max(Duration::from_millis(1)))
        }
    }

    /// Slack said 429: no calls for `key` until `retry_after` (at most [`LONGEST_HOLD`])
    /// has passed.
    pub fn back_off(&self, key: &K, retry_after: Duration) {
        let retry_after = retry_after.min(LONGEST_HOLD);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(key.clone()).or_insert(Bucket { tokens: 0.0, at: now, blocked_until: None });
        bucket.tokens = 0.0;
        bucket.at = now + retry_after;
        bucket.blocked_until = Some(now + retry_after);
    }
}

/// Serves the callers of one key one at a time, first come, first served.
///
/// Concurrent streaming replies draw their progress updates from one workspace budget.
/// Were each to wait and retry on its own, the reply whose timer happened to fire after a
/// refill would win again and again. Through a turnstile, a reply asks for its next update
/// behind every reply already waiting: the budget goes round robin, and no reply waits
/// longer than the others between its updates. (tokio's semaphore hands out permits in the
/// order they were asked for.)
#[derive(Debug)]
pub struct Turnstile<K> {
    lanes: Mutex<HashMap<K, Arc<Semaphore>>>,
}

impl<K: Hash + Eq + Clone> Default for Turnstile<K> {
    fn default() -> Self {
        Self { lanes: Mutex::new(HashMap::new()) }
    }
}

impl<K: Hash + Eq + Clone> Turnstile<K> {
    /// Runs `work` when every caller of `key` that came before has had its turn.
    pub async fn through<F: Future>(&self, key: &K, work: F) -> F::Output {
        let lane = {
            let mut lanes = self.lanes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if lanes.len() > REMEMBERED_KEYS {
                // Lanes nobody holds or waits on are forgotten.
                lanes.retain(|_, lane| Arc::strong_count(lane) > 1);
            }
            Arc::clone(lanes.entry(key.clone()).or_insert_with(|| Arc::new(Semaphore::new(1))))
        };
        // The semaphore is never closed, so acquiring only waits.
        let _turn = lane.acquire_owned().await;
        work.await
    }
}

/// A per-minute budget per key, shared by every replica and restart when the store is
/// Redis, and this process's own otherwise.
#[derive(Debug)]
pub struct Budget<K> {
    /// Names the budget's buckets in the store (`edits`, `posts`, …); stable across
    /// versions, since replicas of two versions share them during an upgrade.
    name: &'static str,
    allowance: Allowance,
    store: Option<Store>,
    local: Pacer<K>,
    /// Until when the store is not asked, after it failed a draw.
    store_rests_until: Mutex<Option<Instant>>,
}

impl<K: Hash + Eq + Clone + Display> Budget<K> {
    /// A budget named `name` allowing at most `per_minute` calls per key in any 60
    /// seconds, up to `burst` of them at once (see [`Allowance`]), kept in `store` when it
    /// is Redis.
    pub fn new(name: &'static str, per_minute: u32, burst: u32, store: Option<Store>) -> Self {
        let allowance = Allowance::new(per_minute, burst);
        Self { name, allowance, store, local: Pacer::with(allowance), store_rests_until: Mutex::new(None) }
    }

    /// The store, unless it failed a moment ago.
    fn store(&self) -> Option<&Store> {
        let store = self.store.as_ref()?;
        let mut rests = self.store_rests_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match *rests {
            Some(until) if until > Instant::now() => None,
            _ => {
                *rests = None;
                Some(store)
            }
        }
    }

    /// The store failed: draws stay in this process for a moment.
    fn store_failed(&self, err: &StoreError) {
        tracing::debug!(budget = self.name, error = %err, "the shared Slack budget is unavailable; pacing in this process");
        let mut rests = self.store_rests_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *rests = Some(Instant::now() + STORE_REST);
    }

    /// Takes a call for `key` now if that leaves `reserve` calls over, or says how long
    /// until it would: from the shared bucket, or this process's when there is none or
    /// Redis does not answer (a Slack call is not failed for a budget).
    async fn take(&self, key: &K, reserve: u32) -> Result<(), Duration> {
        if let Some(store) = self.store() {
            match store.draw_budget(self.name, &key.to_string(), self.allowance, reserve).await {
                Ok(Some(answer)) => return answer,
                Ok(None) => {}
                Err(err) => self.store_failed(&err),
            }
        }
        self.local.try_take(key, self.allowance.reserve(reserve), Instant::now())
    }

    /// Takes a call for `key` now if that leaves `reserve` calls over (lowered to what
    /// the burst can hold), or says how long until it would.
    pub async fn try_acquire_leaving(&self, key: &K, reserve: u32) -> Result<(), Duration> {
        self.take(key, reserve).await
    }

    /// Waits until `key` may make one more call, and takes it.
    pub async fn acquire(&self, key: &K) {
        self.acquire_leaving(key, 0).await;
    }

    /// Waits until `key` may make one more call that leaves `reserve` calls over, and
    /// takes it.
    pub async fn acquire_leaving(&self, key: &K, reserve: u32) {
        while let Err(wait) = self.take(key, reserve).await {
            tokio::time::sleep(wait).await;
        }
    }

    /// Slack said 429: no calls for `key` until `retry_after` (at most [`LONGEST_HOLD`])
    /// has passed, in any replica.
    pub async fn back_off(&self, key: &K, retry_after: Duration) {
        // Held here too, for the draws this process makes while Redis is away.
        self.local.back_off(key, retry_after);
        if let Some(store) = self.store()
            && let Err(err) = store.hold_back_budget(self.name, &key.to_string(), retry_after).await
        {
            self.store_failed(&err);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ids::TeamId;

    #[test]
    fn a_burst_then_the_rate() {
        let pacer = Pacer::new(60, 3);
        let team = TeamId::new("T1");
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(pacer.try_take(&team, 0, t0).is_ok());
        }
        // The burst came out of the minute's budget: 57 more over the minute.
        let wait = pacer.try_take(&team, 0, t0).unwrap_err();
        assert!(wait > Duration::from_millis(1050) && wait < Duration::from_millis(1060), "{wait:?}");
        assert!(pacer.try_take(&team, 0, t0 + Duration::from_millis(1060)).is_ok());
        assert!(pacer.try_take(&TeamId::new("T2"), 0, t0).is_ok(), "workspaces have their own budgets");
    }

    #[test]
    fn a_429_blocks_the_key_for_retry_after() {
        let pacer = Pacer::new(600, 10);
        let team = TeamId::new("T1");
        pacer.back_off(&team, Duration::from_secs(5));
        let wait = pacer.try_take(&team, 0, Instant::now()).unwrap_err();
        assert!(wait > Duration::from_secs(4), "{wait:?}");
    }

    #[test]
    fn idle_keys_are_forgotten_and_busy_ones_kept() {
        let pacer = Pacer::new(60, 3);
        let t0 = Instant::now();
        for n in 0..=REMEMBERED_KEYS {
            pacer.try_take(&n, 0, t0).unwrap();
        }
        // Much later every bucket is full again, so a new key clears them out.
        let later = t0 + Duration::from_secs(60);
        pacer.try_take(&usize::MAX, 0, later).unwrap();
        assert_eq!(pacer.buckets.lock().unwrap().len(), 1);
        // A key that is still paying for its burst is remembered.
        for _ in 0..3 {
            pacer.try_take(&0, 0, later).unwrap();
        }
        for n in 1..=REMEMBERED_KEYS {
            pacer.try_take(&n, 0, later).unwrap();
        }
        assert!(pacer.try_take(&0, 0, later).is_err(), "key 0 kept its empty bucket");
    }

    #[test]
    fn progress_gives_way_to_what_finishes() {
        let pacer = Pacer::new(60, 5);
        let t0 = Instant::now();
        // Progress may use the burst down to the reserve, and no further.
        for _ in 0..3 {
            assert!(pacer.try_take(&"T1", 2, t0).is_ok());
        }
        let wait = pacer.try_take(&"T1", 2, t0).unwrap_err();
        assert!(wait > Duration::from_millis(1000), "{wait:?}");
        // What finishes something still gets through at once.
        assert!(pacer.try_take(&"T1", 0, t0).is_ok());
        assert!(pacer.try_take(&"T1", 0, t0).is_ok());
        assert!(pacer.try_take(&"T1", 0, t0).is_err());
    }

    #[test]
    fn a_garbled_retry_after_holds_back_for_an_hour_at_most() {
        let pacer = Pacer::new(60, 3);
        pacer.back_off(&"T1", Duration::MAX);
        let wait = pacer.try_take(&"T1", 0, Instant::now()).unwrap_err();
        assert!(wait <= LONGEST_HOLD && wait > LONGEST_HOLD - Duration::from_secs(60), "{wait:?}");
    }

    #[tokio::test]
    async fn without_a_shared_store_the_budget_is_this_processes() {
        let budget = Budget::new("edits", 60, 3, None);
        let team = TeamId::new("T1");
        for _ in 0..3 {
            assert_eq!(budget.try_acquire_leaving(&team, 0).await, Ok(()));
        }
        assert!(budget.try_acquire_leaving(&team, 0).await.is_err());
        budget.back_off(&TeamId::new("T2"), Duration::from_secs(5)).await;
        assert!(budget.try_acquire_leaving(&TeamId::new("T2"), 0).await.unwrap_err() > Duration::from_secs(4));
    }

    /// Redis refusing connections fails no Slack call: the draw is this process's.
    #[tokio::test]
    async fn a_store_that_does_not_answer_leaves_pacing_to_this_process() {
        let store = Store::redis("redis://127.0.0.1:1", "hb-unit:").unwrap();
        let budget = Budget::new("posts", 60, 3, Some(store));
        let channel = crate::ids::ChannelId::new("C1");
        for _ in 0..3 {
            assert_eq!(budget.try_acquire_leaving(&channel, 0).await, Ok(()));
        }
        let wait = budget.try_acquire_leaving(&channel, 0).await.unwrap_err();
        assert!(wait > Duration::from_millis(1000), "the local bucket's wait: {wait:?}");
        budget.back_off(&channel, Duration::from_secs(5)).await;
        assert!(budget.try_acquire_leaving(&channel, 0).await.unwrap_err() > Duration::from_secs(4));
    }

    /// Waiters are served in the order they came, so a caller that had its turn queues
    /// behind those already waiting.
    #[tokio::test]
    async fn a_turnstile_serves_in_arrival_order() {
        let turnstile = Arc::new(Turnstile::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(tokio::sync::Notify::new());
        let first = {
            let (turnstile, gate) = (Arc::clone(&turnstile), Arc::clone(&gate));
            tokio::spawn(async move { turnstile.through(&"T1", gate.notified()).await })
        };
        tokio::task::yield_now().await;
        let mut waiters = Vec::new();
        for n in 0..5 {
            let (turnstile, order) = (Arc::clone(&turnstile), Arc::clone(&order));
            waiters.push(tokio::spawn(async move {
                turnstile.through(&"T1", async { order.lock().unwrap().push(n) }).await;
            }));
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        first.await.unwrap();
        for waiter in waiters {
            waiter.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }

    proptest! {
        /// However callers arrive, and however greedy they are, no 60-second window holds
        /// more calls than the budget: the window Slack evaluates.
        #[test]
        fn no_minute_exceeds_the_budget(
            per_minute in 2u32..120,
            burst in 1u32..20,
            calls in proptest::collection::vec((0u64..5_000, 0u32..3), 1..400),
        ) {
            let pacer = Pacer::new(per_minute, burst);
            let t0 = Instant::now();
            let mut now = t0;
            let mut times = Vec::new();
            let most_reserve = burst.clamp(1, per_minute.max(2) / 2) - 1;
            for (gap, reserve) in calls {
                now += Duration::from_millis(gap);
                // A caller that waits exactly as long as it is told, as `acquire` does.
                loop {
                    match pacer.try_take(&"T1", reserve.min(most_reserve), now) {
                        Ok(()) => break,
                        Err(wait) => now += wait,
                    }
                }
                times.push(now);
            }
            let budget = per_minute.max(2) as usize;
            for (i, start) in times.iter().enumerate() {
                let within = times[i..].iter().take_while(|t| t.duration_since(*start) < Duration::from_secs(60)).count();
                prop_assert!(within <= budget, "{within} calls in a minute from call {i}, budget {budget}");
            }
        }
    }
}
