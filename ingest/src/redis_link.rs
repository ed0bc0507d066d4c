//! How ingest reaches Redis: one server (`redis://`, or `rediss://` over TLS) through a
//! reconnecting multiplexed connection, or a Redis Cluster through its slot-aware client; an ACL
//! user and password; a private CA and a client certificate for TLS. The dedup store
//! (`dedup.rs`) sends its claims through a [`RedisLink`] without knowing which it is.
//!
//! # Claims on a server and on a cluster
//!
//! On one server a round of claims is one pipeline of `SET key 1 NX EX ttl` (one write, one
//! read); a claim that also counts velocity (`velocity.rs`) is a script in the same pipeline
//! (`EVALSHA`: claim, and only when new, increment its counters). A cluster spreads keys over 16,384 slots, and a pipeline must stay within one slot, so
//! there each claim is its own command, all of a round sent at once: the cluster client's
//! multiplexed connection to each master writes them back to back without waiting for answers,
//! which is what pipelining saves. A new claim's velocity counters follow it, one small script
//! each, all at once (they live in other slots than the claim): one more round trip.
//!
//! The cluster client retries a command after a connection error or a failover (`MOVED`). A
//! `SET NX` that reached the old master but whose answer was lost would then find its own key
//! and read as a duplicate: a click lost. So on a cluster every claim writes a value of its own
//! and asks for the previous one (`SET key v NX GET EX ttl`, Redis 7.0 or later): no previous
//! value, or its own, is a new click; any other value is a repeat.
//!
//! # What a failover costs
//!
//! Nothing here waits longer than the claim's bound (`dedup_timeout_ms`): a master that dies
//! makes the claims of its slots fail open until the cluster has promoted a replica and the
//! client has learnt the new slot map (cluster-node-timeout plus a refresh, seconds); claims of
//! the other masters' slots go on as before.

use std::sync::atomic::{AtomicU64, Ordering};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, ErrorKind, IntoConnectionInfo, RedisError, TlsCertificates};
use secrecy::ExposeSecret;

use crate::Error;
pub use crate::config::{RedisSettings, RedisUrl};
use crate::velocity::Counter;

/// Time allowed to open a connection (and, on a cluster, for an answer: claims have their own,
/// shorter bound).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Time allowed to the plain attempt that opens each connection attempt (`Connector::connect`):
/// the connection, TLS and the login together (and to the claim script's load). Its answer decides
/// whether ingest starts — a refused login stops it — and on a busy machine (CI on a slow host) a
/// TLS login's answer was not back within the start's two seconds. A Redis that drops packets
/// delays the start by this much.
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What makes connections: checked at start, so a bad URL or TLS file stops ingest with a
/// message naming it instead of failing every click open.
#[derive(Clone)]
pub enum Connector {
    Server {
        client: redis::Client,
        config: ConnectionManagerConfig,
        /// Bounds the first, plain attempt (a `rediss://` URL on a port that does not speak
        /// TLS would otherwise hang it).
        probe: AsyncConnectionConfig,
    },
    Cluster(redis::cluster::ClusterClient),
}

/// A live connection: cheap to clone, shared by every click.
#[derive(Clone)]
pub enum RedisLink {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

/// One claim: the impression's key, and the velocity counters to increment when it is new
/// (`velocity.rs`), each with its key, lifetime and window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    pub key: String,
    pub counters: Vec<Counter>,
}

/// One claim's answer: `Some(counts)` when the key was free (a new click), with each counter's
/// value after its increment, in order; `None` when another claim holds it (a repeat).
pub type ClaimAnswer = Result<Option<Vec<u64>>, RedisError>;

/// The claim with velocity counters on one server: claims the impression and, only when it is
/// new, increments each counter (setting its lifetime when it is created), atomically. A script
/// rather than a `MULTI`: a transaction cannot make the increments depend on the claim, and a
/// repeat must not count (`velocity.rs`). `false` (a nil reply) is a repeat.
const CLAIM_SCRIPT: &str = r"
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return false
end
local counts = {}
for i = 2, #KEYS do
  local n = redis.call('INCR', KEYS[i])
  if n == 1 then
    redis.call('EXPIRE', KEYS[i], ARGV[i])
  end
  counts[i - 1] = n
end
return counts
";

/// One velocity counter on its own (a cluster: the counters live in other slots than the claim).
const COUNT_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return n
";

fn claim_script() -> &'static redis::Script {
    static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(CLAIM_SCRIPT))
}

fn count_script() -> &'static redis::Script {
    static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(COUNT_SCRIPT))
}

impl Connector {
    pub fn new(settings: &RedisSettings) -> Result<Connector, Error> {
        adclick_tls::install_crypto_provider();
        let tls = settings.tls.load().map_err(Error::RedisTls)?;
        let certificates = TlsCertificates {
            client_tls: tls.identity.map(|id| redis::ClientTlsConfig {
                client_cert: id.cert_pem,
                client_key: id.key_pem,
            }),
            root_cert: tls.ca_pem,
        };
        let uses_tls_files = certificates.client_tls.is_some() || certificates.root_cert.is_some();
        let bad = |what: &str, url: &RedisUrl, reason: &str| {
            Error::Config(format!("{what} {url:?}: {reason}"))
        };
        let unusable = |setting: &'static str, url: &RedisUrl, source| Error::RedisUrl {
            setting,
            url: format!("{url:?}"),
            source,
        };
        if settings.cluster_nodes.is_empty() {
            let mut info = settings
                .url
                .as_str()
                .into_connection_info()
                .map_err(|e| unusable("redis_url", &settings.url, e))?;
            apply_login(&mut info.redis, settings);
            let secure = matches!(info.addr, redis::ConnectionAddr::TcpTls { .. });
            if uses_tls_files && !secure {
                return Err(bad(
                    "redis_url",
                    &settings.url,
                    "redis_tls is set but the URL is not rediss://",
                ));
            }
            let client = if secure {
                redis::Client::build_with_tls(info, certificates)
            } else {
                redis::Client::open(info)
            }
            .map_err(|e| unusable("redis_url", &settings.url, e))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(CONNECT_TIMEOUT)
                // Reconnect quickly after an outage: the first attempts are what matter.
                .set_max_delay(1_000)
                .set_number_of_retries(3);
            let probe = AsyncConnectionConfig::new()
                .set_connection_timeout(PROBE_TIMEOUT)
                .set_response_timeout(PROBE_TIMEOUT);
            Ok(Connector::Server {
                client,
                config,
                probe,
            })
        } else {
            let mut secure = None;
            for node in &settings.cluster_nodes {
                let info = node
                    .as_str()
                    .into_connection_info()
                    .map_err(|e| unusable("redis_cluster_nodes", node, e))?;
                let this = matches!(info.addr, redis::ConnectionAddr::TcpTls { .. });
                if secure.is_some_and(|s| s != this) {
                    return Err(bad(
                        "redis_cluster_nodes",
                        node,
                        "mixes redis:// and rediss:// nodes",
                    ));
                }
                secure = Some(this);
            }
            let secure = secure == Some(true);
            if uses_tls_files && !secure {
                return Err(Error::Config(
                    "redis_tls is set but redis_cluster_nodes are not rediss://".into(),
                ));
            }
            let nodes: Vec<&str> = settings
                .cluster_nodes
                .iter()
                .map(RedisUrl::as_str)
                .collect();
            let mut builder = ClusterClientBuilder::new(nodes)
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(CONNECT_TIMEOUT)
                // A retry after a failover lands on the promoted replica; claims past their
                // bound have failed open meanwhile, so a few quick retries are enough.
                .retries(2)
                .min_retry_wait(10)
                .max_retry_wait(200);
            if !settings.username.is_empty() {
                builder = builder.username(settings.username.clone());
            }
            if let Some(password) = &settings.password {
                builder = builder.password(password.expose_secret().to_string());
            }
            if secure {
                builder = builder.tls(redis::TlsMode::Secure).certs(certificates);
            }
            let client = builder.build().map_err(|source| Error::RedisUrl {
                setting: "redis_cluster_nodes",
                url: format!("{:?}", settings.cluster_nodes),
                source,
            })?;
            Ok(Connector::Cluster(client))
        }
    }

    /// Opens the connection (a cluster: learns its slot map). On one server `logged_in` is called
    /// once the server has accepted the login, before the rest of the setup: from then on no
    /// refusal can come of this attempt. A cluster's attempt has no such step: its end is the
    /// verdict.
    pub async fn connect(&self, logged_in: impl FnOnce()) -> Result<RedisLink, RedisError> {
        match self {
            Connector::Server {
                client,
                config,
                probe,
            } => {
                // One plain attempt first: the manager retries its first connection with
                // backoff, which would hide a refused login past ingest's start-up wait.
                drop(
                    client
                        .get_multiplexed_async_connection_with_config(probe)
                        .await?,
                );
                logged_in();
                let mut manager =
                    ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
                // Loaded before the first claim, so a normal start never meets `NOSCRIPT`;
                // bounded, as the manager's commands are not.
                let invocation = claim_script().prepare_invoke();
                tokio::time::timeout(PROBE_TIMEOUT, invocation.load_async(&mut manager))
                    .await
                    .map_err(|_| {
                        RedisError::from(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "loading the claim script",
                        ))
                    })??;
                Ok(RedisLink::Server(manager))
            }
            Connector::Cluster(client) => {
                client.get_async_connection().await.map(RedisLink::Cluster)
            }
        }
    }
}

fn apply_login(redis: &mut redis::RedisConnectionInfo, settings: &RedisSettings) {
    if !settings.username.is_empty() {
        redis.username = Some(settings.username.clone());
    }
    if let Some(password) = &settings.password {
        redis.password = Some(password.expose_secret().to_string());
    }
}

/// Whether a failed connection attempt is one that trying again cannot fix: a refused login or
/// a server certificate this configuration does not trust. Ingest refuses to start on one (it
/// would otherwise fail every click open for as long as it runs).
pub fn is_misconfiguration(error: &RedisError) -> bool {
    if matches!(
        error.kind(),
        ErrorKind::AuthenticationFailed | ErrorKind::InvalidClientConfig
    ) {
        return true;
    }
    let text = error.to_string();
    [
        "WRONGPASS",
        "NOAUTH",
        "NOPERM",
        "invalid peer certificate",
        "certificate",
    ]
    .iter()
    .any(|sign| text.contains(sign))
}

/// Distinguishes the values one process's cluster claims write: a random start and a counter.
static CLAIM_VALUES: AtomicU64 = AtomicU64::new(0);

fn claim_value() -> String {
    use std::hash::{BuildHasher, RandomState};
    // RandomState's keys are random per process: a start no other ingest process shares.
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| RandomState::new().hash_one(std::process::id()));
    let n = CLAIM_VALUES.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}", start.wrapping_add(n))
}

impl RedisLink {
    /// Claims every impression for `ttl_secs` and counts the velocity of the new ones: one answer
    /// per claim, in order.
    pub async fn claim(&self, claims: &[ClaimRequest], ttl_secs: u64) -> Vec<ClaimAnswer> {
        match self {
            RedisLink::Server(manager) => {
                let mut conn = manager.clone();
                let answers = server_claims(&mut conn, claims, ttl_secs).await;
                // A Redis that restarted has forgotten the script: load it for the next round.
                // This round fails open rather than being sent again: its plain claims were
                // executed, and a second `SET NX` would take them for repeats.
                if answers
                    .as_ref()
                    .is_err_and(|e| e.kind() == ErrorKind::NoScriptError)
                {
                    if let Err(error) = claim_script().prepare_invoke().load_async(&mut conn).await
                    {
                        tracing::debug!(%error, "loading the claim script failed");
                    }
                }
                match answers {
                    Ok(answers) => answers,
                    Err(error) => claims.iter().map(|_| Err(clone_error(&error))).collect(),
                }
            }
            RedisLink::Cluster(cluster) => {
                let claims = claims.iter().map(|claim| {
                    let mut conn = cluster.clone();
                    let value = claim_value();
                    let cmd = redis::cmd("SET")
                        .arg(&claim.key)
                        .arg(&value)
                        .arg("NX")
                        .arg("GET")
                        .arg("EX")
                        .arg(ttl_secs)
                        .to_owned();
                    async move {
                        let previous: Option<String> = cmd.query_async(&mut conn).await?;
                        if previous.is_some_and(|p| p != value) {
                            return Ok(None);
                        }
                        // The counters are in slots of their own: one script each, all at once.
                        // A retry after a failover may count one twice (the reconciliation
                        // reports the difference); a claim is never lost for it.
                        let counts = claim.counters.iter().map(|counter| {
                            let mut conn = conn.clone();
                            async move {
                                count_script()
                                    .key(&counter.key)
                                    .arg(counter.ttl_secs)
                                    .invoke_async::<u64>(&mut conn)
                                    .await
                            }
                        });
                        let counts: Result<Vec<u64>, RedisError> =
                            futures::future::join_all(counts)
                                .await
                                .into_iter()
                                .collect();
                        counts.map(Some)
                    }
                });
                futures::future::join_all(claims).await
            }
        }
    }

    /// Deletes a key (gives an impression back).
    pub async fn delete(&self, key: &str) -> Result<(), RedisError> {
        let cmd = redis::cmd("DEL").arg(key).to_owned();
        match self {
            RedisLink::Server(manager) => {
                cmd.query_async::<i64>(&mut manager.clone()).await?;
            }
            RedisLink::Cluster(cluster) => {
                cmd.query_async::<i64>(&mut cluster.clone()).await?;
            }
        }
        Ok(())
    }
}

/// One server's round of claims as one pipeline: a plain `SET NX EX` for a claim without
/// counters (as cheap as before velocity existed), the script by its hash for the others. An
/// error of the whole pipeline (connection, `NOSCRIPT`) is the `Err`; a reply that is an error
/// fails only its claim.
async fn server_claims(
    conn: &mut ConnectionManager,
    claims: &[ClaimRequest],
    ttl_secs: u64,
) -> Result<Vec<ClaimAnswer>, RedisError> {
    let mut pipeline = redis::Pipeline::with_capacity(claims.len());
    for claim in claims {
        pipeline.add_command(claim_command(claim, ttl_secs));
    }
    let replies: Vec<redis::Value> = pipeline.query_async(conn).await?;
    if replies.len() != claims.len() {
        tracing::warn!(
            sent = claims.len(),
            answers = replies.len(),
            "Redis answered a claim pipeline with the wrong number of replies; failing those clicks open"
        );
        return Err(RedisError::from((
            ErrorKind::ResponseError,
            "a claim pipeline answered with the wrong number of replies",
            format!("{} claims, {} replies", claims.len(), replies.len()),
        )));
    }
    Ok(claims
        .iter()
        .zip(replies)
        .map(|(claim, reply)| claim_answer(claim, reply))
        .collect())
}

/// The command of one claim on one server: a plain `SET NX EX` without counters, else the script.
/// Its buffers are sized for the whole command at once (redis-rs's builder otherwise grows them
/// argument by argument: seven reallocations a click).
fn claim_command(claim: &ClaimRequest, ttl_secs: u64) -> redis::Cmd {
    /// Room for a number in decimal (a `u64`).
    const NUMBER: usize = 20;
    if claim.counters.is_empty() {
        let mut cmd = redis::Cmd::with_capacity(6, 12 + claim.key.len() + NUMBER);
        cmd.arg("SET")
            .arg(&claim.key)
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(ttl_secs);
        return cmd;
    }
    let hash = claim_script().get_hash();
    let counters = claim.counters.len();
    let keys: usize = claim.counters.iter().map(|c| c.key.len()).sum();
    let mut cmd = redis::Cmd::with_capacity(
        5 + 2 * counters,
        7 + hash.len() + claim.key.len() + keys + (2 + counters) * NUMBER,
    );
    cmd.arg("EVALSHA")
        .arg(hash)
        .arg(1 + counters)
        .arg(&claim.key);
    for counter in &claim.counters {
        cmd.arg(&counter.key);
    }
    cmd.arg(ttl_secs);
    for counter in &claim.counters {
        cmd.arg(counter.ttl_secs);
    }
    cmd
}

/// A claim's reply: nil is a repeat; `OK` (plain claim) or the counts (script) a new click.
fn claim_answer(claim: &ClaimRequest, reply: redis::Value) -> ClaimAnswer {
    use redis::FromRedisValue as _;
    match reply {
        redis::Value::Nil => Ok(None),
        reply if claim.counters.is_empty() => {
            Option::<String>::from_redis_value(&reply).map(|ok| ok.map(|_| Vec::new()))
        }
        reply => {
            let counts = Vec::<u64>::from_redis_value(&reply)?;
            if counts.len() == claim.counters.len() {
                Ok(Some(counts))
            } else {
                Err(RedisError::from((
                    ErrorKind::ResponseError,
                    "the claim script answered the wrong number of counts",
                )))
            }
        }
    }
}

/// `RedisError` is not `Clone`; every claim of a failed pipeline gets the same kind and text.
fn clone_error(error: &RedisError) -> RedisError {
    RedisError::from((error.kind(), "claim pipeline failed", error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_a_password_in_the_url() {
        let shown = format!(
            "{:?}",
            RedisUrl::from("rediss://adclick:hunter2@redis:6380/0")
        );
        assert_eq!(shown, "\"rediss://adclick:redacted@redis:6380/0\"");
        let shown = format!("{:?}", RedisUrl::from("redis://127.0.0.1:6379"));
        assert_eq!(shown, "\"redis://127.0.0.1:6379\"");
    }

    #[test]
    fn tls_files_need_a_rediss_url_and_must_exist() {
        let mut s = RedisSettings::for_url("redis://127.0.0.1:6379");
        s.tls.ca_file = Some("/nonexistent/ca.pem".into());
        // The file is named in the cause, which an operator sees with the error.
        let err = Connector::new(&s).err().unwrap();
        let err = adclick_admin::ErrorChain(&err).to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(&ca, cert.pem()).unwrap();
        s.tls.ca_file = Some(ca);
        let err = Connector::new(&s).err().unwrap().to_string();
        assert!(err.contains("not rediss://"), "{err}");
        s.url = "rediss://127.0.0.1:6380".into();
        assert!(Connector::new(&s).is_ok());
    }

    #[test]
    fn cluster_nodes_must_agree_on_tls() {
        let mut s = RedisSettings::for_url("redis://unused");
        s.cluster_nodes = vec![
            "redis://127.0.0.1:7000".into(),
            "rediss://127.0.0.1:7001".into(),
        ];
        let err = Connector::new(&s).err().unwrap().to_string();
        assert!(err.contains("mixes"), "{err}");
    }

    #[test]
    fn claim_values_differ() {
        assert_ne!(claim_value(), claim_value());
    }
}
