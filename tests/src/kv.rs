//! A small RESP client for scenario tests: one connection, every call bounded
//! by a timeout, replies as raw [`redis::Value`]s or typed helpers.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{RedisError, Value};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The server replied with an error, or the transport failed.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// No reply within the timeout.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
}

/// One client connection.
pub struct Kv {
    conn: MultiplexedConnection,
    timeout: Duration,
}

impl Kv {
    /// Connect to `addr` (`host:port`); calls time out after `timeout`.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Self, KvError> {
        let conn = tokio::time::timeout(timeout, crate::workload::connect(addr, timeout))
            .await
            .map_err(|_| KvError::Timeout(timeout))??;
        Ok(Self { conn, timeout })
    }

    /// Run any command.
    pub async fn call(&mut self, cmd: &redis::Cmd) -> Result<Value, KvError> {
        tokio::time::timeout(self.timeout, cmd.query_async::<Value>(&mut self.conn))
            .await
            .map_err(|_| KvError::Timeout(self.timeout))?
            .map_err(KvError::from)
    }

    /// `SET key value`.
    pub async fn set(&mut self, key: &str, value: impl redis::ToRedisArgs) -> Result<(), KvError> {
        self.call(redis::cmd("SET").arg(key).arg(value)).await.map(|_| ())
    }

    /// `GET key` as bytes (`None`: absent).
    pub async fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        match self.call(redis::cmd("GET").arg(key)).await? {
            Value::Nil => Ok(None),
            Value::BulkString(b) => Ok(Some(b)),
            other => Err(KvError::Redis(RedisError::from((
                redis::ErrorKind::TypeError,
                "unexpected GET reply",
                format!("{other:?}"),
            )))),
        }
    }

    /// `PING`, true on `PONG`.
    pub async fn ping(&mut self) -> bool {
        matches!(self.call(&redis::cmd("PING")).await, Ok(Value::SimpleString(s)) if s == "PONG")
    }
}
