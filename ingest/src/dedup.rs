//! Impression dedup in Redis: the first click on an impression claims it with
//! `SET {prefix}{impression id hex} 1 NX EX {ttl}`; a later click finds the key and is a duplicate.
//! A claim that counts velocity (`velocity.rs`) is one script that claims and, only when the
//! claim is new, increments the click's counters (`redis_link.rs`): a repeat never counts, and a
//! claim and its counts fail open together.
//!
//! # Fail open
//!
//! Redis answers within `dedup_timeout_ms` or not at all as far as a click is concerned: when it
//! is unreachable, errors, or is slower than the bound (below: "Redis's time, not ingest's"), the
//! click is treated as new and produced with `ClickFlag::DedupUnchecked` (counted in
//! `adclick_ingest_dedup_fail_open_total` by reason).
//! A repeat that slips through this way is dropped downstream by the exporter and the rollup,
//! which key on the impression id; what must never happen is a user waiting on Redis, or a click
//! lost because Redis was down. A command that timed out may still have been executed: the key is
//! then set although the click was flagged unchecked, which is harmless.
//!
//! The connection is a [`RedisLink`](crate::redis_link): one server through a reconnecting
//! multiplexed connection, or a Redis Cluster, so dedup resumes by itself once Redis is back.
//! Ingest starts even when Redis is down: the first connection is made by a background task
//! (ingest waits for it at most `service::STARTUP_WAIT` before serving, so a normal start does
//! not fail open needlessly, and while an attempt's login still awaits its answer then, up to
//! `redis_link::PROBE_TIMEOUT` more), and until it succeeds every click fails open with reason
//! `unavailable`. An attempt refused for a reason retrying cannot fix — a wrong password, a server
//! certificate the configured CA did not sign — stops ingest at start instead; one refused only
//! after ingest started without Redis (unreachable at first, or a login not answered within
//! `PROBE_TIMEOUT`) is logged as an error while clicks fail open.
//!
//! # One write for many claims
//!
//! Claims are not sent one command per click: a claim joins a queue, and a batcher task sends
//! everything queued as one pipeline (one write, one read, on both sides of the connection; on a
//! cluster, one command per claim written back to back) once
//! the runtime has run the other tasks that were ready — the other clicks of the same moment. No
//! timer is involved, so a lone click waits for nothing; under load a pipeline carries the claims
//! of a scheduling round. Each command in it is the same `SET NX EX` as alone (pipelines are not
//! transactions), so two clicks of one impression in one pipeline are still one `New` and one
//! `Duplicate`.
//!
//! # Redis's time, not ingest's
//!
//! The bound is on the round that carries the claim, from the moment it is sent: it measures
//! Redis, not ingest's own runtime. A claim passes through four tasks besides Redis — the
//! batcher, the round, redis-rs's connection driver (which writes and reads the socket), the
//! click's — and while ingest is behind (a burst, a busy core) each waits its turn; a bound that
//! counted those waits failed clicks open whose answer Redis had given in a millisecond (1.9–3.3 %
//! of the clicks at 10,000 clicks/s on one shared core; 0.2–1.7 % with this: `BENCHMARKS.md`,
//! "Redis's time, not ingest's"). And when the round's own wait is run later than its deadline —
//! the runtime was behind, and so was the driver that reads Redis's answer — the answer gets as
//! long again as the wait was late, while the runtime stays behind and for at most
//! [`MOST_FORGIVEN`](crate::bound::MOST_FORGIVEN) in all (`crate::bound`). So Redis gets the bound,
//! and ingest's backlog delays a claim but fails it open only past that limit; [`CLAIM_SAFETY`]
//! only guards against a batcher that stopped. (Under a standing backlog most rounds that still
//! miss with their own turn on time: their 20 ms go to Redis or to the connection driver's turns —
//! `BENCHMARKS.md`, "one bound for Redis and Kafka".)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{Notify, OnceCell, oneshot};

use adclick_invalid::Velocity;

use crate::Error;
use crate::bound::within_bound;
use crate::metrics::Metrics;
use crate::redis_link::{
    ClaimRequest, Connector, PROBE_TIMEOUT, RedisLink, RedisSettings, is_misconfiguration,
};
use crate::velocity::{self, Counter};

/// The most a click waits for its claim's round, a safety net only: the round answers within the
/// bound of Redis's time (module doc), this only ends the wait if the batcher has stopped.
pub const CLAIM_SAFETY: Duration = Duration::from_secs(5);

/// The verdict on one click's impression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First click on this impression: count it. With the velocity counts of the windows that
    /// were counted (`velocity.rs`); the others are `None`.
    New(Velocity),
    /// The impression was clicked before: redirect, do not count.
    Duplicate,
    /// Redis did not answer in time or failed: count it, flagged unchecked (dedup and velocity
    /// alike). The reason is `timeout`, `error` or `unavailable`.
    Unchecked(&'static str),
}

/// One queued claim, and where the batcher answers: `Ok(Some(velocity))` when the key was free
/// (new), with the counts of its counters, `Ok(None)` when another claim holds it (duplicate),
/// `Err(())` when Redis failed.
struct QueuedClaim {
    claim: ClaimRequest,
    reply: oneshot::Sender<Result<Option<Velocity>, ()>>,
}

/// The claims waiting for the batcher.
#[derive(Default)]
struct ClaimQueue {
    claims: Mutex<Vec<QueuedClaim>>,
    /// Signalled when the queue goes from empty to not empty.
    queued: Notify,
}

/// The dedup store; clones share one connection.
#[derive(Clone)]
pub struct Dedup {
    conn: Arc<OnceCell<RedisLink>>,
    /// Why a connection attempt was refused, when retrying cannot help.
    refused: Arc<OnceLock<String>>,
    /// Whether a connection attempt awaits the verdict on its login (meaningful only until the
    /// first connection is made).
    awaiting_login: Arc<AtomicBool>,
    queue: Arc<ClaimQueue>,
    prefix: Arc<str>,
    timeout: Duration,
    metrics: Metrics,
}

impl std::fmt::Debug for Dedup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dedup")
            .field("prefix", &self.prefix)
            .field("connected", &self.conn.initialized())
            .finish_non_exhaustive()
    }
}

impl Dedup {
    /// A dedup store on the configured Redis; connects in the background (needs a Tokio
    /// runtime). A URL or TLS file that cannot work is an error here.
    pub fn new(
        redis: &RedisSettings,
        prefix: &str,
        ttl_secs: u64,
        timeout: Duration,
        metrics: Metrics,
    ) -> Result<Dedup, Error> {
        let connector = Connector::new(redis)?;
        let conn = Arc::new(OnceCell::new());
        let refused = Arc::new(OnceLock::new());
        // True while an attempt's login awaits its verdict: the first attempt's from here on.
        let awaiting_login = Arc::new(AtomicBool::new(true));
        let (cell, refusal, awaiting) = (conn.clone(), refused.clone(), awaiting_login.clone());
        tokio::spawn(async move {
            // The kinds of failure logged so far: each is logged once, so that a refused login
            // after a first attempt that timed out is not hidden behind it.
            let mut logged = Vec::new();
            loop {
                awaiting.store(true, Ordering::Release);
                let attempt = connector.connect(|| awaiting.store(false, Ordering::Release));
                match attempt.await {
                    Ok(link) => {
                        let _ = cell.set(link);
                        tracing::info!("connected to Redis");
                        return;
                    }
                    Err(error) => {
                        let misconfigured = is_misconfiguration(&error);
                        if misconfigured {
                            let _ = refusal.set(error.to_string());
                        }
                        // After the refusal is recorded: a start that sees no attempt awaiting
                        // its login sees the refusal too (`wait_connected`).
                        awaiting.store(false, Ordering::Release);
                        if !logged.contains(&(misconfigured, error.kind())) {
                            if misconfigured {
                                tracing::error!(%error, "Redis refused ingest's login or certificate; retrying cannot help");
                            } else {
                                tracing::warn!(%error, "Redis unreachable; clicks fail open until it answers");
                            }
                            logged.push((misconfigured, error.kind()));
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                if Arc::strong_count(&cell) == 1 {
                    // Every Dedup handle is gone: nobody needs the connection any more.
                    return;
                }
            }
        });
        let queue = Arc::new(ClaimQueue::default());
        tokio::spawn(send_batches(
            queue.clone(),
            conn.clone(),
            ttl_secs,
            timeout,
            metrics.clone(),
        ));
        Ok(Dedup {
            conn,
            refused,
            awaiting_login,
            queue,
            prefix: prefix.into(),
            timeout,
            metrics,
        })
    }

    /// The Redis key of an impression.
    pub fn key(&self, impression_id: &[u8]) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 2 * impression_id.len());
        key.push_str(&self.prefix);
        crate::keys::push_hex(&mut key, impression_id);
        key
    }

    /// Claims the impression: [`Claim::New`] exactly once per impression while Redis works; a
    /// new claim increments `counters` (none: a plain claim) in the same step. The counters go
    /// with the claim to the batcher, which gives back their counts as the click's velocity.
    pub async fn claim(&self, impression_id: &[u8], counters: Vec<Counter>) -> Claim {
        let claim = if self.conn.initialized() {
            let (reply, answer) = oneshot::channel();
            let first = {
                let mut claims = self.queue.claims.lock().expect("not poisoned");
                claims.push(QueuedClaim {
                    claim: ClaimRequest {
                        key: self.key(impression_id),
                        counters,
                    },
                    reply,
                });
                claims.len() == 1
            };
            if first {
                self.queue.queued.notify_one();
            }
            // No bound of its own: the round's bounds Redis (module doc).
            match tokio::time::timeout(CLAIM_SAFETY, answer).await {
                Ok(Ok(Ok(Some(velocity)))) => Claim::New(velocity),
                Ok(Ok(Ok(None))) => Claim::Duplicate,
                Ok(Ok(Err(()))) => Claim::Unchecked("error"),
                // The round gave up at its bound (or never ran).
                Err(_) | Ok(Err(_)) => Claim::Unchecked("timeout"),
            }
        } else {
            Claim::Unchecked("unavailable")
        };
        if let Claim::Unchecked(reason) = claim {
            Metrics::count(&self.metrics.dedup_fail_open, reason);
        }
        claim
    }

    /// Gives an impression back (deletes its key), so a later click on it counts: used when a
    /// claimed click could not be made durable. Best effort, within the dedup bound.
    pub async fn release(&self, impression_id: &[u8]) {
        if let Some(link) = self.conn.get() {
            let _ = tokio::time::timeout(self.timeout, link.delete(&self.key(impression_id))).await;
        }
    }

    /// Waits until the first connection is made, at most `timeout` — or, when an attempt's login
    /// still awaits its verdict then, until it has one, at most [`PROBE_TIMEOUT`] longer: on a
    /// slow or busy machine a refused login must still be known before ingest serves. Whether it
    /// was made; an error when Redis refused it for a reason retrying cannot fix (see
    /// [`is_misconfiguration`]).
    pub async fn wait_connected(&self, timeout: Duration) -> Result<bool, Error> {
        let started = tokio::time::Instant::now();
        while !self.connected() {
            let awaiting = self.awaiting_login.load(Ordering::Acquire);
            // Read after the flag: an attempt that ended refused recorded it before clearing it.
            if let Some(reason) = self.refused.get() {
                return Err(Error::Redis(reason.clone()));
            }
            let waited = started.elapsed();
            if waited >= timeout && (!awaiting || waited >= timeout + PROBE_TIMEOUT) {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(true)
    }

    /// Whether the first connection was made (Redis may have gone away since).
    pub fn connected(&self) -> bool {
        self.conn.initialized()
    }
}

/// The batcher: sends the queued claims as one pipeline per scheduling round, until every
/// [`Dedup`] handle is gone.
async fn send_batches(
    queue: Arc<ClaimQueue>,
    conn: Arc<OnceCell<RedisLink>>,
    ttl_secs: u64,
    timeout: Duration,
    metrics: Metrics,
) {
    loop {
        // Look again now and then, so that the task ends once it holds the last handle.
        let woken = tokio::time::timeout(Duration::from_secs(1), queue.queued.notified()).await;
        if woken.is_err() && Arc::strong_count(&queue) == 1 {
            return;
        }
        // Let the tasks that are ready now (the other clicks of this moment) queue their claims.
        tokio::task::yield_now().await;
        let claims: Vec<QueuedClaim> =
            std::mem::take(&mut *queue.claims.lock().expect("not poisoned"))
                .into_iter()
                // Claims that already failed open at their bound are not sent.
                .filter(|c| !c.reply.is_closed())
                .collect();
        if claims.is_empty() {
            continue;
        }
        let Some(link) = conn.get().cloned() else {
            // Only queued once connected, and the cell is never emptied.
            continue;
        };
        let (requests, replies): (Vec<ClaimRequest>, Vec<_>) =
            claims.into_iter().map(|c| (c.claim, c.reply)).unzip();
        let round_seconds = metrics.claim_round_seconds.clone();
        // Its own task: the next round does not wait for this one's answer.
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let sent = link.claim(&requests, ttl_secs);
            // Past the bound every claim of the round fails open (reason `timeout`).
            let Some(answers) = within_bound(timeout, sent).await else {
                return;
            };
            round_seconds.observe(started.elapsed().as_secs_f64());
            let mut logged = false;
            for ((reply, answer), request) in replies.into_iter().zip(answers).zip(&requests) {
                let answer = answer
                    .map(|new| new.map(|counts| velocity::velocity(&request.counters, &counts)))
                    .map_err(|error| {
                        if !std::mem::replace(&mut logged, true) {
                            tracing::debug!(%error, "claim failed; failing the click open");
                        }
                    });
                let _ = reply.send(answer);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    #[tokio::test]
    async fn unreachable_redis_fails_open_at_once() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let m = Metrics::new(&mut Registry::default());
        let d = Dedup::new(
            &RedisSettings::for_url(&format!("redis://127.0.0.1:{port}")),
            "p:",
            60,
            Duration::from_millis(20),
            m.clone(),
        )
        .unwrap();
        let started = std::time::Instant::now();
        assert_eq!(
            d.claim(&[1; 16], Vec::new()).await,
            Claim::Unchecked("unavailable")
        );
        assert!(started.elapsed() < Duration::from_millis(20));
        assert_eq!(d.key(&[0xab; 2]), "p:abab");
        assert_eq!(
            m.dedup_fail_open
                .get_or_create(&crate::metrics::ReasonLabel {
                    reason: "unavailable"
                })
                .get(),
            1
        );
    }

    /// A login refused later than the start's own wait (a busy machine) still stops the start:
    /// the wait lasts while the login awaits its answer. The server here answers every command
    /// with `WRONGPASS`, 1.5 s after the connection opens; the start waits 0.3 s.
    #[tokio::test]
    async fn a_login_refused_after_the_start_wait_still_refuses_the_start() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let mut bytes = [0u8; 4096];
            loop {
                let Ok(n @ 1..) = socket.read(&mut bytes).await else {
                    return;
                };
                // One refusal per command (each a RESP array: a line starting with `*`).
                let commands = bytes[..n]
                    .split(|&b| b == b'\n')
                    .filter(|line| line.first() == Some(&b'*'))
                    .count();
                let refusal = b"-WRONGPASS invalid username-password pair\r\n".repeat(commands);
                if socket.write_all(&refusal).await.is_err() {
                    return;
                }
            }
        });
        let mut redis = RedisSettings::for_url(&format!("redis://127.0.0.1:{port}"));
        redis.username = "adclick".into();
        redis.password = Some("wrong".into());
        let m = Metrics::new(&mut Registry::default());
        let d = Dedup::new(&redis, "p:", 60, Duration::from_millis(20), m).unwrap();
        let started = std::time::Instant::now();
        let refused = d.wait_connected(Duration::from_millis(300)).await;
        assert!(
            matches!(&refused, Err(Error::Redis(reason)) if reason.to_lowercase().contains("auth")),
            "{refused:?} after {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_bad_url_is_a_config_error() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _guard = rt.enter();
        let m = Metrics::new(&mut Registry::default());
        let redis = RedisSettings::for_url("nonsense://");
        assert!(Dedup::new(&redis, "p:", 60, Duration::from_millis(20), m).is_err());
    }
}
