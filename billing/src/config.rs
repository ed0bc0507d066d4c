//! The `[billing]` configuration section (documented key by key in
//! `deploy/adclick.example.toml`): where the billing store is and how long its calls may take.
//!
//! TLS is set in `database_url`, as libpq's URLs do: `sslmode` = `disable`, `allow`, `prefer`
//! (the default: TLS when the server offers it, no certificate check), `require` (TLS, no
//! certificate check), `verify-ca` (TLS, the chain checked) or `verify-full` (the chain and the
//! host name checked — what production wants); `sslrootcert=<PEM file>` trusts a private CA
//! (without it, Mozilla's roots bundled in the binary are trusted; the system store is not
//! read); `sslcert=<PEM file>&sslkey=<PEM file>` present a client certificate. The connection
//! uses rustls with aws-lc-rs, like every other TLS client of adclick.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// `[billing]`.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BillingConfig {
    /// `postgres://user[:password]@host[:port]/database[?sslmode=…&sslrootcert=…]`. A secret
    /// (it may hold a password): never logged whole; messages name [`Self::redacted_url`].
    pub database_url: SecretString,
    /// How long connecting may take (TCP, TLS, authentication), ms.
    pub connect_timeout_ms: u64,
    /// PostgreSQL's `statement_timeout` for every statement of the store's connections, ms; 0:
    /// none. Writing a day's rows is one COPY per table: at 10M ads a day it must cover the
    /// largest COPY.
    pub statement_timeout_ms: u64,
    /// Connections the store keeps open at most (a statement uses one; writing a day one).
    pub max_connections: u32,
}

/// The default store: the local stack's PostgreSQL (`deploy/local/up` creates the database).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/adclick";

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            database_url: SecretString::from(DEFAULT_DATABASE_URL),
            connect_timeout_ms: 10_000,
            statement_timeout_ms: 1_800_000,
            max_connections: 4,
        }
    }
}

impl BillingConfig {
    /// The URL without its password (nor a `password` parameter): what messages name.
    pub fn redacted_url(&self) -> String {
        redact(self.database_url.expose_secret())
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

/// Shows the redacted URL, so a drift from the defaults shows without the password.
impl std::fmt::Debug for BillingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingConfig")
            .field("database_url", &self.redacted_url())
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// `url` without a password in its user part or its query; a string that is no URL is shown as
/// `<not a URL>` (it might be a password pasted in the wrong place).
pub fn redact(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "<not a URL>".to_string();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("postgres://billing:s3cret@db.example:5433/adclick?sslmode=verify-full"),
            "postgres://billing:***@db.example:5433/adclick?sslmode=verify-full"
        );
        assert_eq!(
            redact("postgres://db/adclick?user=u&password=s3cret"),
            "postgres://db/adclick?user=u&password=***"
        );
        assert_eq!(redact(DEFAULT_DATABASE_URL), DEFAULT_DATABASE_URL);
        assert_eq!(redact("s3cret"), "<not a URL>");
        let config = BillingConfig {
            database_url: SecretString::from("postgres://u:s3cret@h/d"),
            ..BillingConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("u:***@h/d"),
            "{shown}"
        );
    }
}
