//! Per-minute budgets that every replica draws from: token buckets kept in Redis.
//!
//! A budget (Slack's `chat.update` allowance of a workspace, the posts of a channel) is
//! one bucket per key. On Redis each draw is one Lua script that refills the bucket by the
//! time elapsed, takes a token or says how long to wait, atomically across replicas, and
//! reads the time from Redis itself so that the replicas' clocks do not matter. A bucket
//! left alone is full again within a minute, and its key expires soon after, so idle
//! buckets cost nothing. The embedded store serves a single process, which keeps its
//! buckets in memory (`slack::pace`): its draws answer `None`.

use std::{sync::LazyLock, time::Duration};

use redis::Script;

use super::{Backend, Store, StoreError};

/// How long a bucket outlives its last draw. Longer than any bucket takes to fill up again
/// (at most a minute: the burst is at most half the budget, and the other half refills it),
/// so a bucket that expires was full anyway.
const IDLE_TTL: Duration = Duration::from_secs(2 * 60);
/// The longest a budget is held back: beyond any `Retry-After` Slack sends, and short
/// enough that a garbled one cannot silence a workspace for good.
pub const LONGEST_HOLD: Duration = Duration::from_secs(60 * 60);

/// Takes a token from a bucket. `KEYS[1]`: the bucket, a hash of `tokens`, `at` (when they
/// were counted) and `blocked` (no tokens before then), times in Redis's milliseconds.
/// `ARGV`: the budget per minute, the burst, the reserve to leave, the idle time to live
/// (ms). Returns 0 when a token was taken, else the milliseconds to wait (at least 1).
const DRAW_SCRIPT: &str = r"
local key = KEYS[1]
local burst = tonumber(ARGV[2])
local rate = (tonumber(ARGV[1]) - burst) / 60000
local needed = 1 + tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', key, 'tokens', 'at', 'blocked')
local blocked = tonumber(state[3]) or 0
if blocked > now then return blocked - now end
local tokens = burst
local at = tonumber(state[2])
if at then tokens = math.min(burst, (tonumber(state[1]) or 0) + math.max(0, now - at) * rate) end
if tokens < needed then return math.max(1, math.ceil((needed - tokens) / rate)) end
redis.call('HSET', key, 'tokens', tokens - 1, 'at', now, 'blocked', 0)
redis.call('PEXPIRE', key, ARGV[4])
return 0
";

/// Empties a bucket until a time. `KEYS[1]`: the bucket. `ARGV`: how long to hold it back
/// (ms), the idle time to live (ms). A longer hold already in place stays. Returns the
/// milliseconds the bucket is now held back.
const HOLD_BACK_SCRIPT: &str = r"
local key = KEYS[1]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local till = now + tonumber(ARGV[1])
local blocked = tonumber(redis.call('HGET', key, 'blocked')) or 0
if blocked > till then till = blocked end
redis.call('HSET', key, 'tokens', 0, 'at', till, 'blocked', till)
redis.call('PEXPIRE', key, till - now + tonumber(ARGV[2]))
return till - now
";

static DRAW: LazyLock<Script> = LazyLock::new(|| Script::new(DRAW_SCRIPT));
static HOLD_BACK: LazyLock<Script> = LazyLock::new(|| Script::new(HOLD_BACK_SCRIPT));

/// A per-minute budget: at most `per_minute` draws per key in any 60 seconds, up to a
/// burst of them at once. The burst comes out of the minute's budget, and the rest refills
/// evenly, so no 60-second window ever holds more than the budget, however draws fall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    per_minute: u32,
    burst: u32,
}

impl Allowance {
    /// `per_minute` draws a minute (at least 2), up to `burst` at once (at least 1, at most
    /// half the budget).
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let per_minute = per_minute.max(2);
        Self { per_minute, burst: burst.clamp(1, per_minute / 2) }
    }

    /// Draws a minute.
    pub fn per_minute(self) -> u32 {
        self.per_minute
    }

    /// Draws at once, from a full bucket.
    pub fn burst(self) -> u32 {
        self.burst
    }

    /// Tokens added per second.
    pub fn per_second(self) -> f64 {
        f64::from(self.per_minute - self.burst) / 60.0
    }

    /// A reserve a draw may ask to leave, lowered to what the burst can hold besides the
    /// draw itself (a larger one could never be met).
    pub fn reserve(self, wanted: u32) -> u32 {
        wanted.min(self.burst - 1)
    }
}

impl Store {
    /// Takes one draw from the shared budget `name` of `key` (a workspace, a channel), if
    /// that leaves `reserve` draws in the bucket; else `Err(wait)`: how long until it would.
    /// `None` on the embedded store, whose one process keeps its budgets itself.
    pub async fn draw_budget(
        &self,
        name: &str,
        key: &str,
        allowance: Allowance,
        reserve: u32,
    ) -> Result<Option<Result<(), Duration>>, StoreError> {
        let Backend::Redis(redis) = &self.backend else { return Ok(None) };
        let args = [
            u64::from(allowance.per_minute),
            u64::from(allowance.burst),
            u64::from(allowance.reserve(reserve)),
            millis(IDLE_TTL),
        ];
        let wait: u64 = redis.run_script(&DRAW, &[self.keys.budget(name, key)], &args).await?;
        Ok(Some(if wait == 0 { Ok(()) } else { Err(Duration::from_millis(wait)) }))
    }

    /// Empties the shared budget `name` of `key` and holds it back for `hold` (Slack's
    /// `Retry-After`, at most [`LONGEST_HOLD`]), for every replica; a longer hold already in
    /// place stays. False on the embedded store, which shares nothing.
    pub async fn hold_back_budget(&self, name: &str, key: &str, hold: Duration) -> Result<bool, StoreError> {
        let Backend::Redis(redis) = &self.backend else { return Ok(false) };
        let args = [millis(hold.min(LONGEST_HOLD)), millis(IDLE_TTL)];
        let _held: u64 = redis.run_script(&HOLD_BACK, &[self.keys.budget(name, key)], &args).await?;
        Ok(true)
    }
}

/// Whole milliseconds, saturating.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowances_are_kept_within_what_a_bucket_can_do() {
        let tiny = Allowance::new(0, 0);
        assert_eq!((tiny.per_minute(), tiny.burst()), (2, 1));
        assert_eq!(tiny.reserve(5), 0, "a burst of one leaves nothing over");
        let greedy = Allowance::new(50, 40);
        assert_eq!(greedy.burst(), 25, "the burst is at most half the budget");
        assert!((greedy.per_second() - 25.0 / 60.0).abs() < 1e-9);
        assert_eq!(Allowance::new(60, 5).reserve(2), 2);
    }
}
