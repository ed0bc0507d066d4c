//! Who may ask, and its reload: the API keys and the JWT verifier loaded together from their
//! files, swapped whole when a file changes or on SIGHUP, so keys are added and revoked without a
//! restart. A reload that fails keeps the credentials in force and says why in the log and in
//! `adclick_query_credential_reloads_total{outcome="failed"}`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;

use crate::caller::{Caller, presented_key};
use crate::config::QueryConfig;
use crate::jwt::{JwtConfigError, JwtVerifier, looks_like_jwt};
use crate::keys::{ApiKeys, KeysError};
use crate::metrics::Metrics;

/// Everything that tells a caller: the keys file's keys and, when `[query.jwt]` is set, the
/// verifier of JSON Web Tokens.
#[derive(Debug)]
pub struct Credentials {
    keys: ApiKeys,
    jwt: Option<JwtVerifier>,
    /// The files read and how they looked just before (a change since means a reload).
    sources: Vec<(PathBuf, Stamp)>,
}

/// Why the credentials cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "neither [query] api_keys_file nor [query.jwt] key_file is set: nobody could be let in"
    )]
    NoKeysFile,
    #[error("[query] api_keys_file")]
    Keys(#[source] KeysError),
    #[error("[query.jwt]")]
    Jwt(#[source] JwtConfigError),
}

/// Why a request was not let in: for the log only (every one is answered with the same 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// No `Authorization` header of a scheme the gateway reads.
    #[error("no credential")]
    NoCredential,
    /// A key no entry of the keys file has (and not a JWT, or JWTs are not configured).
    #[error("unknown key")]
    UnknownKey,
    /// A JWT the verifier refused.
    #[error("JWT refused: {0}")]
    Jwt(String),
}

impl Credentials {
    /// Reads the files `config` names.
    pub fn load(config: &QueryConfig) -> Result<Credentials, CredentialsError> {
        let no_keys_file = config.api_keys_file.as_os_str().is_empty();
        if no_keys_file && config.jwt.key_file.as_os_str().is_empty() {
            return Err(CredentialsError::NoKeysFile);
        }
        let sources = Credentials::files(config)
            .into_iter()
            .map(|f| {
                let s = stamp(&f);
                (f, s)
            })
            .collect();
        let keys = if no_keys_file {
            ApiKeys::default()
        } else {
            ApiKeys::load(&config.api_keys_file).map_err(CredentialsError::Keys)?
        };
        let jwt = JwtVerifier::load(&config.jwt).map_err(CredentialsError::Jwt)?;
        Ok(Credentials { keys, jwt, sources })
    }

    /// Credentials of these keys alone (tests, embedding).
    pub fn from_keys(keys: ApiKeys) -> Credentials {
        Credentials {
            keys,
            jwt: None,
            sources: Vec::new(),
        }
    }

    /// Whether a file these credentials were read from has changed since.
    fn changed(&self) -> bool {
        self.sources.iter().any(|(f, s)| stamp(f) != *s)
    }

    /// The caller a request's `Authorization` names: an API key first; a credential shaped
    /// like a JWT is then verified, when JWTs are configured.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, Rejected> {
        let presented = presented_key(headers).ok_or(Rejected::NoCredential)?;
        if let Some(caller) = self.keys.caller(&presented) {
            return Ok(caller);
        }
        match &self.jwt {
            Some(verifier) if looks_like_jwt(&presented) => verifier
                .verify(&presented)
                .map_err(|e| Rejected::Jwt(e.to_string())),
            Some(_) | None => Err(Rejected::UnknownKey),
        }
    }

    /// The number of API keys (for the log).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The files these credentials come from, watched for changes.
    fn files(config: &QueryConfig) -> Vec<PathBuf> {
        [&config.api_keys_file, &config.jwt.key_file]
            .into_iter()
            .filter(|f| !f.as_os_str().is_empty())
            .cloned()
            .collect()
    }
}

/// The credentials in force; cheap to clone, swapped whole by a reload.
#[derive(Debug, Clone)]
pub struct SharedCredentials(Arc<RwLock<Arc<Credentials>>>);

impl SharedCredentials {
    pub fn new(credentials: Credentials) -> SharedCredentials {
        SharedCredentials(Arc::new(RwLock::new(Arc::new(credentials))))
    }

    /// The credentials now (a request keeps the ones it started with).
    pub fn current(&self) -> Arc<Credentials> {
        Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn replace(&self, credentials: Credentials) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(credentials);
    }
}

/// What a file looked like when last read: changed when any of it differs.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Reloads `shared` from `config`'s files when one of them changes (checked every
/// `reload_interval_ms`) or on SIGHUP, until `shutdown` completes. `on_reload` is called after
/// each successful reload (the limits forget quiet callers then).
pub async fn watch(
    config: QueryConfig,
    shared: SharedCredentials,
    metrics: Metrics,
    on_reload: impl Fn() + Send,
    shutdown: impl Future<Output = ()>,
) {
    // A file that failed to load is not tried again until it changes again.
    let mut failed: Option<Vec<Stamp>> = None;
    let files = Credentials::files(&config);
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "SIGHUP cannot be caught: credentials reload on file change only");
            None
        }
    };
    let mut tick = tokio::time::interval(Duration::from_millis(config.reload_interval_ms.max(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        let cause = tokio::select! {
            () = &mut shutdown => return,
            Some(()) = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => "SIGHUP",
            _ = tick.tick() => {
                let now: Vec<Stamp> = files.iter().map(|f| stamp(f)).collect();
                if !shared.current().changed() || failed.as_ref() == Some(&now) {
                    continue;
                }
                "a file changed"
            }
        };
        failed = None;
        match Credentials::load(&config) {
            Ok(credentials) => {
                tracing::info!(
                    cause,
                    keys = credentials.key_count(),
                    "credentials reloaded"
                );
                shared.replace(credentials);
                metrics.reloaded("ok");
                on_reload();
            }
            Err(e) => {
                tracing::error!(cause, error = %adclick_admin::ErrorChain(&e), "credentials not reloaded; the previous ones stay in force");
                metrics.reloaded("failed");
                failed = Some(files.iter().map(|f| stamp(f)).collect());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::key_digest_hex;
    use axum::http::HeaderValue;
    use axum::http::header::AUTHORIZATION;

    fn bearer(key: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
        );
        h
    }

    /// A watcher over a keys file in a temp dir that first lets key `first` in as advertiser
    /// 1, checking every `interval_ms`; stopped by sending on `stop`.
    struct Watched {
        _dir: tempfile::TempDir,
        file: PathBuf,
        shared: SharedCredentials,
        metrics: Metrics,
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<()>,
    }

    fn watched(first: &str, interval_ms: u64) -> Watched {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(&file, format!("{} 1\n", key_digest_hex(first))).unwrap();
        let config = QueryConfig {
            api_keys_file: file.clone(),
            reload_interval_ms: interval_ms,
            ..QueryConfig::default()
        };
        let shared = SharedCredentials::new(Credentials::load(&config).unwrap());
        let metrics = Metrics::new();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(watch(
            config,
            shared.clone(),
            metrics.clone(),
            || {},
            async {
                let _ = stopped.await;
            },
        ));
        Watched {
            _dir: dir,
            file,
            shared,
            metrics,
            stop,
            task,
        }
    }

    #[tokio::test]
    async fn a_changed_keys_file_is_reloaded_and_a_broken_one_is_not() {
        let Watched {
            _dir,
            file,
            shared,
            metrics,
            stop,
            task: watcher,
        } = watched("old", 100);
        assert_eq!(
            shared.current().authenticate(&bearer("old")),
            Ok(Caller::Advertiser(1))
        );
        // Revoke "old", add "new" (a different length, so the change shows even within one
        // tick of the file system's clock).
        std::fs::write(&file, format!("{} 2\n# rotated\n", key_digest_hex("new"))).unwrap();
        adclick_testsupport::wait::eventually(Duration::from_secs(5), "the new key", || {
            let ok = shared.current().authenticate(&bearer("new")) == Ok(Caller::Advertiser(2));
            async move { ok.then_some(()).ok_or_else(|| "not yet".to_string()) }
        })
        .await;
        assert_eq!(
            shared.current().authenticate(&bearer("old")),
            Err(Rejected::UnknownKey)
        );
        std::fs::write(&file, "not a keys file\n").unwrap();
        adclick_testsupport::wait::eventually(Duration::from_secs(5), "a failed reload", || {
            let ok = metrics.reloads("failed") >= 1;
            async move { ok.then_some(()).ok_or_else(|| "not yet".to_string()) }
        })
        .await;
        assert_eq!(
            shared.current().authenticate(&bearer("new")),
            Ok(Caller::Advertiser(2))
        );
        // (At least: another test's SIGHUP reaches this watcher too.)
        assert!(metrics.reloads("ok") >= 1);
        stop.send(()).unwrap();
        watcher.await.unwrap();
    }

    /// SIGHUP reloads at once, whatever the interval. (The test sends SIGHUP to its own
    /// process: tokio's handler, installed by `watch` before the signal is sent, takes it.)
    #[tokio::test]
    async fn sighup_reloads_at_once() {
        let Watched {
            _dir,
            file,
            shared,
            metrics,
            stop,
            task: watcher,
        } = watched("before", 3_600_000);
        // The watcher's first turn installs the handler and takes its first (immediate) tick.
        tokio::time::sleep(Duration::from_millis(300)).await;
        std::fs::write(&file, format!("{} 2\n", key_digest_hex("after"))).unwrap();
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        adclick_testsupport::wait::eventually(Duration::from_secs(5), "the reload", || {
            let ok = shared.current().authenticate(&bearer("after")) == Ok(Caller::Advertiser(2));
            async move { ok.then_some(()).ok_or_else(|| "not yet".to_string()) }
        })
        .await;
        assert!(metrics.reloads("ok") >= 1);
        stop.send(()).unwrap();
        watcher.await.unwrap();
    }
}
