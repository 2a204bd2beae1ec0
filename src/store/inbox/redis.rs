//! The inbox on Redis: a list per order key, a sorted set of keys waiting for a worker
//! (scored by when they became ready), a sorted set of leased keys (scored by when the lease
//! runs out), a hash of each lease's fencing token, a counter of tokens and one of items.
//!
//! Every operation is one Lua script, so each is one round trip and atomic across replicas.
//! The claim script names a key's list from the key it picks, so the inbox needs a single
//! Redis (or a primary with replicas), not Redis Cluster; the rest of the store has the same
//! need. Lease times come from the caller's clock; replicas' clocks only need to agree to
//! well within a lease (NTP does).

use redis::{Script, Value, aio::ConnectionManager};

use super::{Claim, Finished, InboxStats, Pushed};
use crate::{
    model::now_millis,
    store::{StoreError, keys::Keys, redis::map_err},
};

/// KEYS: mark, queue, ready, leased, count. ARGV: item, mark ttl ms, max items, order key,
/// now ms. Returns 1 recorded, 0 duplicate, -1 full.
const PUSH: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if tonumber(redis.call('GET', KEYS[5]) or '0') >= tonumber(ARGV[3]) then return -1 end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('INCR', KEYS[5])
if not redis.call('ZSCORE', KEYS[4], ARGV[4]) then
  redis.call('ZADD', KEYS[3], 'NX', ARGV[5], ARGV[4])
end
return 1
";

/// KEYS: ready, leased, owners, fence. ARGV: now ms, lease ms, queue key prefix. Returns
/// nil, or {key, token, head item, 1 if taken over}.
const CLAIM: &str = r"
local now = tonumber(ARGV[1])
for _ = 1, 16 do
  local key, taken = nil, 0
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1)
  if #expired > 0 then
    key = expired[1]
    taken = 1
  else
    local ready = redis.call('ZRANGE', KEYS[1], 0, 0)
    if #ready == 0 then return false end
    key = ready[1]
    redis.call('ZREM', KEYS[1], key)
  end
  local head = redis.call('LINDEX', ARGV[3] .. key, 0)
  if head then
    local token = redis.call('INCR', KEYS[4])
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), key)
    redis.call('HSET', KEYS[3], key, token)
    return {key, token, head, taken}
  end
  redis.call('ZREM', KEYS[2], key)
  redis.call('HDEL', KEYS[3], key)
end
return false
";

/// KEYS: leased, owners. ARGV: key, token, new expiry ms. Returns 1 renewed, 0 not ours.
const RENEW: &str = r"
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
return 1
";

/// KEYS: ready, leased, owners, count, queue. ARGV: key, token, now ms, lease ms, more
/// (1/0). Returns -1 not ours, 0 released, or the next item.
const DONE: &str = r"
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return -1 end
redis.call('LPOP', KEYS[5])
redis.call('DECR', KEYS[4])
local head = redis.call('LINDEX', KEYS[5], 0)
if head and ARGV[5] == '1' then
  redis.call('ZADD', KEYS[2], tonumber(ARGV[3]) + tonumber(ARGV[4]), ARGV[1])
  return head
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if head then redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) end
return 0
";

/// KEYS: ready, leased, owners, queue. ARGV: key, token, now ms.
const RELEASE: &str = r"
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('LLEN', KEYS[4]) > 0 then redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) end
return 1
";

/// The inbox's scripts on the store's Redis connection.
#[derive(Clone)]
pub(crate) struct RedisInbox {
    conn: ConnectionManager,
    scripts: std::sync::Arc<Scripts>,
}

/// The scripts, hashed once.
struct Scripts {
    push: Script,
    claim: Script,
    renew: Script,
    done: Script,
    release: Script,
}

impl std::fmt::Debug for RedisInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisInbox")
    }
}

impl RedisInbox {
    pub(crate) fn new(conn: ConnectionManager) -> Self {
        let scripts = Scripts {
            push: Script::new(PUSH),
            claim: Script::new(CLAIM),
            renew: Script::new(RENEW),
            done: Script::new(DONE),
            release: Script::new(RELEASE),
        };
        Self { conn, scripts: std::sync::Arc::new(scripts) }
    }

    pub(crate) async fn push(
        &self,
        keys: &Keys,
        mark: &str,
        ttl_ms: u64,
        order_key: &str,
        item: &[u8],
        max_items: u64,
    ) -> Result<Pushed, StoreError> {
        let answer: i64 = self
            .scripts
            .push
            .key(mark)
            .key(keys.inbox_queue(order_key))
            .key(keys.inbox_ready())
            .key(keys.inbox_leased())
            .key(keys.inbox_count())
            .arg(item)
            .arg(ttl_ms)
            .arg(max_items)
            .arg(order_key)
            .arg(now_millis())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(match answer {
            1 => Pushed::Accepted,
            0 => Pushed::Duplicate,
            _ => Pushed::Full,
        })
    }

    pub(crate) async fn claim(&self, keys: &Keys, lease_ms: u64) -> Result<Option<Claim>, StoreError> {
        let claimed: Option<(String, u64, Vec<u8>, i64)> = self
            .scripts
            .claim
            .key(keys.inbox_ready())
            .key(keys.inbox_leased())
            .key(keys.inbox_owners())
            .key(keys.inbox_fence())
            .arg(now_millis())
            .arg(lease_ms)
            .arg(keys.inbox_queue(""))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(claimed.map(|(key, token, head, taken)| Claim { key, token, head, taken_over: taken == 1 }))
    }

    pub(crate) async fn renew(&self, keys: &Keys, claim: &Claim, lease_ms: u64) -> Result<bool, StoreError> {
        let renewed: i64 = self
            .scripts
            .renew
            .key(keys.inbox_leased())
            .key(keys.inbox_owners())
            .arg(&claim.key)
            .arg(claim.token)
            .arg(now_millis().max(0).unsigned_abs().saturating_add(lease_ms))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(renewed == 1)
    }

    pub(crate) async fn done(
        &self,
        keys: &Keys,
        claim: &Claim,
        lease_ms: u64,
        more: bool,
    ) -> Result<Finished, StoreError> {
        let answer: Value = self
            .scripts
            .done
            .key(keys.inbox_ready())
            .key(keys.inbox_leased())
            .key(keys.inbox_owners())
            .key(keys.inbox_count())
            .key(keys.inbox_queue(&claim.key))
            .arg(&claim.key)
            .arg(claim.token)
            .arg(now_millis())
            .arg(lease_ms)
            .arg(if more { 1 } else { 0 })
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(match answer {
            Value::Int(0) => Finished::Released,
            Value::BulkString(next) => Finished::Next(next),
            _ => Finished::Lost,
        })
    }

    pub(crate) async fn release(&self, keys: &Keys, claim: &Claim) -> Result<(), StoreError> {
        let _: i64 = self
            .scripts
            .release
            .key(keys.inbox_ready())
            .key(keys.inbox_leased())
            .key(keys.inbox_owners())
            .key(keys.inbox_queue(&claim.key))
            .arg(&claim.key)
            .arg(claim.token)
            .arg(now_millis())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(())
    }

    pub(crate) async fn stats(&self, keys: &Keys) -> Result<InboxStats, StoreError> {
        let (depth, oldest, leased): (Option<i64>, Vec<(String, i64)>, u64) = redis::pipe()
            .get(keys.inbox_count())
            .zrange_withscores(keys.inbox_ready(), 0, 0)
            .zcard(keys.inbox_leased())
            .query_async(&mut self.conn.clone())
            .await
            .map_err(map_err)?;
        let now = now_millis();
        Ok(InboxStats {
            depth: depth.unwrap_or(0).max(0).unsigned_abs(),
            oldest_wait: oldest
                .first()
                .map(|(_, since)| std::time::Duration::from_millis(now.saturating_sub(*since).max(0).unsigned_abs())),
            leased,
        })
    }
}
