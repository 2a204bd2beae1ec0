//! The Redis backend: several replicas share one Redis.
//!
//! One auto-reconnecting [`ConnectionManager`] multiplexes every call. Timeouts are short so
//! that a dead Redis fails calls fast (and `/readyz` turns false) instead of stalling Slack's
//! acks; the manager reconnects by itself when Redis returns. Transactions run as one Lua
//! script, so their checks and writes are atomic across replicas.

use std::time::Duration;

use redis::{AsyncCommands, Script, aio::ConnectionManager, aio::ConnectionManagerConfig};

use super::{
    StoreError,
    txn::{Expect, Txn, Write},
};

/// Applies a [`Txn`]: `KEYS` are every key it names; `ARGV` encodes checks then writes,
/// each naming its key by index into `KEYS`. Returns 1 when applied, 0 when a check failed.
const TXN_SCRIPT: &str = r"
local i = 1
local nchecks = tonumber(ARGV[i]); i = i + 1
for _ = 1, nchecks do
  local key = KEYS[tonumber(ARGV[i])]
  if ARGV[i + 1] == 'A' then
    if redis.call('EXISTS', key) == 1 then return 0 end
    i = i + 2
  else
    if redis.call('GET', key) ~= ARGV[i + 2] then return 0 end
    i = i + 3
  end
end
local nwrites = tonumber(ARGV[i]); i = i + 1
for _ = 1, nwrites do
  local op = ARGV[i]
  local key = KEYS[tonumber(ARGV[i + 1])]
  if op == 'SET' then
    local ttl = tonumber(ARGV[i + 3])
    if ttl > 0 then redis.call('SET', key, ARGV[i + 2], 'PX', ttl) else redis.call('SET', key, ARGV[i + 2]) end
    i = i + 4
  elseif op == 'DEL' then
    redis.call('DEL', key)
    i = i + 2
  elseif op == 'ZADD' then
    redis.call('ZADD', key, ARGV[i + 3], ARGV[i + 2])
    i = i + 4
  elseif op == 'ZREM' then
    redis.call('ZREM', key, ARGV[i + 2])
    i = i + 3
  elseif op == 'APPEND' then
    redis.call('RPUSH', key, ARGV[i + 2])
    redis.call('LTRIM', key, -tonumber(ARGV[i + 3]), -1)
    i = i + 4
  else
    return redis.error_reply('unknown op ' .. op)
  end
end
return 1
";

/// A Redis-backed store backend.
#[derive(Clone)]
pub(crate) struct RedisBackend {
    conn: ConnectionManager,
    txn: Script,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisBackend")
    }
}

// Takes the error by value so it can be passed to `map_err` directly.
#[allow(clippy::needless_pass_by_value)]
pub(super) fn map_err(err: redis::RedisError) -> StoreError {
    if err.is_io_error() || err.is_timeout() || err.is_connection_dropped() || err.is_connection_refusal() {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Backend(err.to_string())
    }
}

impl RedisBackend {
    /// Connects lazily: a Redis that is down at start makes calls fail, not startup.
    pub(crate) fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::Backend(format!("invalid REDIS_URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(1500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(map_err)?;
        Ok(Self { conn, txn: Script::new(TXN_SCRIPT) })
    }

    /// The shared connection, for the inbox's scripts.
    pub(crate) fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await.map(drop).map_err(map_err)
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        conn.get(key).await.map_err(map_err)
    }

    pub(crate) async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        redis::cmd("MGET").arg(keys).query_async(&mut conn).await.map_err(map_err)
    }

    pub(crate) async fn set_nx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl_millis(ttl))
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        Ok(set.is_some())
    }

    pub(crate) async fn index_range(&self, index: &str, start: usize, count: usize) -> Result<Vec<String>, StoreError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let stop = (start + count - 1) as isize;
        conn.zrevrange(index, start as isize, stop).await.map_err(map_err)
    }

    pub(crate) async fn list_range(&self, key: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        conn.lrange(key, 0, -1).await.map_err(map_err)
    }

    pub(crate) async fn commit(&self, txn: Txn) -> Result<bool, StoreError> {
        let mut keys: Vec<String> = Vec::new();
        let mut argv: Vec<Vec<u8>> = Vec::new();
        let key_index = |key: String, keys: &mut Vec<String>| -> Vec<u8> {
            keys.push(key);
            keys.len().to_string().into_bytes()
        };
        argv.push(txn.checks.len().to_string().into_bytes());
        for (key, expect) in txn.checks {
            argv.push(key_index(key, &mut keys));
            match expect {
                Expect::Absent => argv.push(b"A".to_vec()),
                Expect::Equals(value) => {
                    argv.push(b"E".to_vec());
                    argv.push(value);
                }
            }
        }
        argv.push(txn.writes.len().to_string().into_bytes());
        for write in txn.writes {
            match write {
                Write::Put { key, value, ttl } => {
                    argv.push(b"SET".to_vec());
                    argv.push(key_index(key, &mut keys));
                    argv.push(value);
                    argv.push(ttl.map_or(0, ttl_millis).to_string().into_bytes());
                }
                Write::Delete { key } | Write::DeleteList { key } => {
                    argv.push(b"DEL".to_vec());
                    argv.push(key_index(key, &mut keys));
                }
                Write::IndexAdd { index, member, score } => {
                    argv.push(b"ZADD".to_vec());
                    argv.push(key_index(index, &mut keys));
                    argv.push(member.into_bytes());
                    argv.push(score.to_string().into_bytes());
                }
                Write::IndexRemove { index, member } => {
                    argv.push(b"ZREM".to_vec());
                    argv.push(key_index(index, &mut keys));
                    argv.push(member.into_bytes());
                }
                Write::Append { key, value, cap } => {
                    argv.push(b"APPEND".to_vec());
                    argv.push(key_index(key, &mut keys));
                    argv.push(value);
                    argv.push(cap.max(1).to_string().into_bytes());
                }
            }
        }
        let mut invocation = self.txn.prepare_invoke();
        for key in &keys {
            invocation.key(key);
        }
        for arg in &argv {
            invocation.arg(arg.as_slice());
        }
        let mut conn = self.conn.clone();
        let applied: i64 = invocation.invoke_async(&mut conn).await.map_err(map_err)?;
        Ok(applied == 1)
    }

    /// Runs a Lua script atomically on `keys` with `args` (by its hash, loading it on first
    /// use), for the few operations the shared primitives cannot express.
    pub(crate) async fn run_script<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[u64],
    ) -> Result<T, StoreError> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        let mut conn = self.conn.clone();
        invocation.invoke_async(&mut conn).await.map_err(map_err)
    }

    /// Deletes every key under `prefix`; for tests that must leave nothing behind.
    pub(crate) async fn delete_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}*", escape_glob(prefix));
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await
                .map_err(map_err)?;
            if !keys.is_empty() {
                let _: () = conn.del(keys).await.map_err(map_err)?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn escape_glob(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
