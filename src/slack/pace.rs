//! A workspace-wide budget for message edits.
//!
//! `chat.update` is a Tier 3 method: about 50 calls a minute per workspace, shared by every
//! reply streaming at once. [`Pacer`] is a token bucket per workspace that every edit draws
//! from; when it is empty, the caller waits. Streams never queue stale edits behind it: a
//! stream asks for a token, and only then renders its newest text. A 429 that got through
//! anyway (another replica, another app on the token) empties the bucket until Slack's
//! `Retry-After` has passed.
//!
//! The bucket lives in this process; several replicas each get the full budget, so set
//! `SLACK_UPDATES_PER_MINUTE` to the workspace budget divided by the replica count.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::ids::TeamId;

/// A token bucket per workspace.
#[derive(Debug)]
pub struct Pacer {
    per_minute: f64,
    burst: f64,
    buckets: Mutex<HashMap<TeamId, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    blocked_until: Option<Instant>,
}

impl Pacer {
    /// A pacer allowing `per_minute` calls per workspace, with bursts of up to `burst`.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_minute: f64::from(per_minute.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token now, or says how long to wait for one.
    fn try_take(&self, team: &TeamId, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(team.clone()).or_insert(Bucket { tokens: self.burst, at: now, blocked_until: None });
        if let Some(until) = bucket.blocked_until {
            if until > now {
                return Err(until - now);
            }
            bucket.blocked_until = None;
        }
        let rate = self.per_minute / 60.0;
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    /// Waits until the workspace may make one more call, and takes it.
    pub async fn acquire(&self, team: &TeamId) {
        loop {
            // The lock is released before sleeping.
            match self.try_take(team, Instant::now()) {
                Ok(()) => return,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// Slack said 429: no calls for this workspace until `retry_after` has passed.
    pub fn back_off(&self, team: &TeamId, retry_after: Duration) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(team.clone()).or_insert(Bucket { tokens: 0.0, at: now, blocked_until: None });
        bucket.tokens = 0.0;
        bucket.at = now + retry_after;
        bucket.blocked_until = Some(now + retry_after);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let pacer = Pacer::new(60, 3);
        let team = TeamId::new("T1");
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(pacer.try_take(&team, t0).is_ok());
        }
        let wait = pacer.try_take(&team, t0).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::from_millis(900), "{wait:?}");
        assert!(pacer.try_take(&team, t0 + Duration::from_secs(1)).is_ok());
        assert!(pacer.try_take(&TeamId::new("T2"), t0).is_ok(), "workspaces have their own budgets");
    }

    #[test]
    fn a_429_blocks_the_workspace_for_retry_after() {
        let pacer = Pacer::new(600, 10);
        let team = TeamId::new("T1");
        pacer.back_off(&team, Duration::from_secs(5));
        let wait = pacer.try_take(&team, Instant::now()).unwrap_err();
        assert!(wait > Duration::from_secs(4), "{wait:?}");
    }
}
