//! A Redis sink: commands are buffered and sent as one atomic pipeline (MULTI/EXEC) per flush, which
//! runtimes do with each commit.
//!
//! While Redis is down nothing is dropped: commands stay buffered (counted; the outage is logged once
//! when it starts and once when it ends) and each flush tries again. When the buffer reaches its bound,
//! [`RedisSink::push`] blocks, retrying with exponential backoff, until Redis is back — back-pressure on
//! the task instead of loss. `SET`/`SETEX`/`DEL` are idempotent, so a replay after a crash converges to
//! the same keys; `PUBLISH` and list pushes may repeat on replay. AUTH comes from the URL
//! (`redis://user:password@host:port/db`); passwords never appear in logs or errors. TLS: a `rediss://`
//! URL, verified against the system's trusted roots, or a private CA and a client certificate for
//! mutual TLS ([`RedisTls`]; OpenSSL through native-tls, as librdkafka uses).

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

/// One write to Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisCommand {
    /// `SET key value [EX ttl]`.
    Set {
        /// Key.
        key: String,
        /// Value.
        value: String,
        /// Expiry in seconds.
        ttl_s: Option<u64>,
    },
    /// `DEL key` (a tombstone).
    Del {
        /// Key.
        key: String,
    },
    /// `PUBLISH channel message`.
    Publish {
        /// Channel.
        channel: String,
        /// Message.
        message: String,
    },
    /// `LPUSH list value`, `LTRIM list 0 max_len-1`, `EXPIRE list ttl`: a capped list of the newest.
    PushCapped {
        /// List key.
        list: String,
        /// Value pushed to the head.
        value: String,
        /// Entries kept.
        max_len: usize,
        /// Expiry of the list, seconds.
        ttl_s: u64,
    },
}

/// Counters of a Redis sink.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisMetrics {
    /// Commands Redis accepted.
    pub commands_written: u64,
    /// Successful flushes.
    pub flushes: u64,
    /// Flushes that failed (Redis unreachable or erroring); their commands stayed buffered.
    pub failed_flushes: u64,
    /// Times Redis became unavailable.
    pub outages: u64,
    /// Time spent blocked on a full buffer, ms.
    pub blocked_ms: u64,
}

/// A Redis sink error: bad URL or Redis still down after the allowed wait.
#[derive(Debug, thiserror::Error)]
pub enum RedisSinkError {
    /// The URL does not parse (the message never contains the password).
    #[error("invalid redis URL: {0}")]
    Url(String),
    /// Redis stayed unavailable.
    #[error("redis unavailable for {waited:?}; {buffered} commands still buffered: {reason}")]
    Unavailable {
        /// How long we waited.
        waited: Duration,
        /// Commands kept.
        buffered: usize,
        /// The last error.
        reason: String,
    },
}

/// TLS material for `rediss://` URLs beyond the system's trusted roots (PEM files).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// A CA certificate to trust (a private CA).
    pub ca_cert: Option<std::path::PathBuf>,
    /// A client certificate for mutual TLS (with `client_key`).
    pub client_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key.
    pub client_key: Option<std::path::PathBuf>,
}

impl RedisTls {
    fn is_empty(&self) -> bool {
        self.ca_cert.is_none() && self.client_cert.is_none() && self.client_key.is_none()
    }

    /// A client for `url` with this material.
    fn client(&self, url: &str) -> Result<redis::Client, RedisSinkError> {
        if self.is_empty() {
            return redis::Client::open(url).map_err(|e| RedisSinkError::Url(describe(&e)));
        }
        if !url.starts_with("rediss://") {
            return Err(RedisSinkError::Url(
                "TLS certificates are given but the URL is not rediss:// (TLS)".to_string(),
            ));
        }
        let read = |what: &str, path: &std::path::Path| {
            std::fs::read(path)
                .map_err(|e| RedisSinkError::Url(format!("cannot read the Redis {what} {}: {e}", path.display())))
        };
        let client_tls = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read("client certificate", cert)?,
                client_key: read("client key", key)?,
            }),
            (None, None) => None,
            _ => {
                return Err(RedisSinkError::Url(
                    "a Redis client certificate needs its key, and a key its certificate".to_string(),
                ))
            }
        };
        let root_cert = self.ca_cert.as_deref().map(|p| read("CA certificate", p)).transpose()?;
        redis::Client::build_with_tls(url, redis::TlsCertificates { client_tls, root_cert })
            .map_err(|e| RedisSinkError::Url(describe(&e)))
    }
}

/// Writes [`RedisCommand`]s to Redis; see the [module docs](self).
pub struct RedisSink {
    client: redis::Client,
    rt: tokio::runtime::Runtime,
    conn: Option<MultiplexedConnection>,
    buffer: Vec<RedisCommand>,
    max_buffered: usize,
    down_since: Option<Instant>,
    /// While Redis is down, `flush` tries again only from this moment (backoff doubling to 5 s).
    retry_at: Option<(Instant, Duration)>,
    metrics: RedisMetrics,
    timeout: Duration,
}

impl std::fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSink").field("buffered", &self.buffer.len()).field("metrics", &self.metrics).finish()
    }
}

/// A redis error without anything that could hold a secret.
fn describe(e: &redis::RedisError) -> String {
    format!("{:?}: {}", e.kind(), e.detail().unwrap_or("no detail"))
}

impl RedisSink {
    /// A sink for `url`, buffering at most `max_buffered` commands. Does not connect yet.
    pub fn open(url: &str, max_buffered: usize) -> Result<RedisSink, RedisSinkError> {
        Self::open_tls(url, &RedisTls::default(), max_buffered)
    }

    /// [`open`](Self::open) with TLS material for a `rediss://` URL.
    pub fn open_tls(url: &str, tls: &RedisTls, max_buffered: usize) -> Result<RedisSink, RedisSinkError> {
        let client = tls.client(url)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RedisSinkError::Url(format!("cannot start the I/O runtime: {e}")))?;
        Ok(RedisSink {
            client,
            rt,
            conn: None,
            buffer: Vec::new(),
            max_buffered: max_buffered.max(1),
            down_since: None,
            retry_at: None,
            metrics: RedisMetrics::default(),
            timeout: Duration::from_secs(5),
        })
    }

    /// Counters.
    pub fn metrics(&self) -> &RedisMetrics {
        &self.metrics
    }

    /// Commands waiting to be written.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Buffers a command; when the buffer is full, blocks (retrying with backoff) until Redis takes it.
    pub fn push(&mut self, command: RedisCommand) {
        if self.buffer.len() >= self.max_buffered {
            let started = Instant::now();
            let mut backoff = Duration::from_millis(50);
            while !self.flush() {
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            self.metrics.blocked_ms += started.elapsed().as_millis() as u64;
        }
        self.buffer.push(command);
    }

    /// One attempt to write everything buffered as one atomic pipeline; true when nothing is left.
    pub fn flush(&mut self) -> bool {
        if self.buffer.is_empty() {
            return true;
        }
        if self.retry_at.is_some_and(|(at, _)| Instant::now() < at) {
            return false; // down: not before the backoff has passed (no reconnect storm)
        }
        self.attempt()
    }

    /// One write attempt of everything buffered.
    fn attempt(&mut self) -> bool {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for c in &self.buffer {
            match c {
                RedisCommand::Set { key, value, ttl_s: Some(ttl) } => {
                    pipe.cmd("SET").arg(key).arg(value).arg("EX").arg(*ttl).ignore()
                }
                RedisCommand::Set { key, value, ttl_s: None } => pipe.cmd("SET").arg(key).arg(value).ignore(),
                RedisCommand::Del { key } => pipe.cmd("DEL").arg(key).ignore(),
                RedisCommand::Publish { channel, message } => pipe.cmd("PUBLISH").arg(channel).arg(message).ignore(),
                RedisCommand::PushCapped { list, value, max_len, ttl_s } => pipe
                    .cmd("LPUSH")
                    .arg(list)
                    .arg(value)
                    .ignore()
                    .cmd("LTRIM")
                    .arg(list)
                    .arg(0)
                    .arg(max_len.saturating_sub(1))
                    .ignore()
                    .cmd("EXPIRE")
                    .arg(list)
                    .arg(*ttl_s)
                    .ignore(),
            };
        }
        let (client, timeout) = (&self.client, self.timeout);
        let conn = self.conn.take();
        let result: Result<MultiplexedConnection, String> = self.rt.block_on(async move {
            let mut conn = match conn {
                Some(c) => c,
                None => match tokio::time::timeout(timeout, client.get_multiplexed_async_connection()).await {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => return Err(describe(&e)),
                    Err(_) => return Err("connect timed out".to_string()),
                },
            };
            match tokio::time::timeout(timeout, pipe.query_async::<()>(&mut conn)).await {
                Ok(Ok(())) => Ok(conn),
                Ok(Err(e)) => Err(describe(&e)),
                Err(_) => Err("command timed out".to_string()),
            }
        });
        match result {
            Ok(conn) => {
                self.conn = Some(conn);
                self.metrics.commands_written += self.buffer.len() as u64;
                self.metrics.flushes += 1;
                self.buffer.clear();
                self.retry_at = None;
                if let Some(since) = self.down_since.take() {
                    tracing::info!(down_for = ?since.elapsed(), "redis is available again; buffered commands written");
                }
                true
            }
            Err(reason) => {
                self.metrics.failed_flushes += 1;
                let backoff =
                    self.retry_at.map_or(Duration::from_millis(50), |(_, b)| (b * 2).min(Duration::from_secs(5)));
                self.retry_at = Some((Instant::now() + backoff, backoff));
                if self.down_since.is_none() {
                    self.down_since = Some(Instant::now());
                    self.metrics.outages += 1;
                    tracing::warn!(%reason, buffered = self.buffer.len(), "redis unavailable; buffering commands and retrying");
                }
                false
            }
        }
    }

    /// Flushes, retrying with backoff for at most `wait` (used on close).
    pub fn flush_within(&mut self, wait: Duration) -> Result<(), RedisSinkError> {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(50);
        loop {
            if self.buffer.is_empty() || self.attempt() {
                return Ok(());
            }
            if started.elapsed() >= wait {
                return Err(RedisSinkError::Unavailable {
                    waited: started.elapsed(),
                    buffered: self.buffer.len(),
                    reason: "still unreachable".to_string(),
                });
            }
            std::thread::sleep(backoff.min(wait.saturating_sub(started.elapsed())));
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}
