//! What can go wrong in the billing store, each message naming the database by its URL without
//! the password.

use crate::Day;
use crate::rows::InvalidRows;

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("[billing] database_url {url} is not a PostgreSQL URL: {source}")]
    Url {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot connect to the billing database {url}: {source}{hint}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
        /// What to check, for errors that do not say it themselves.
        hint: &'static str,
    },
    #[error(
        "connecting to the billing database {url} took over {timeout_ms} ms (is PostgreSQL up and reachable?)"
    )]
    ConnectTimeout { url: String, timeout_ms: u64 },
    #[error("applying the billing store's migrations to {url}: {source}")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("settled day {day} was not written: {source}")]
    InvalidRows {
        day: Day,
        #[source]
        source: InvalidRows,
    },
    #[error(
        "writing settled day {day} to {url}: {step}: {source} (the day's previous rows, if any, are unchanged)"
    )]
    Write {
        day: Day,
        url: String,
        step: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "committing settled day {day} to {url}: {source} (if the commit did not reach PostgreSQL, the day's previous rows are unchanged: rerun the day)"
    )]
    Commit {
        day: Day,
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("the statement's range is empty: {from} is after {to}")]
    EmptyRange { from: Day, to: Day },
    #[error("the statement's range {from} to {to} is {days} days; at most {max} at once")]
    RangeTooLong {
        from: Day,
        to: Day,
        days: i64,
        max: i64,
    },
    #[error("reading the statement of advertiser {advertiser_id} from {url}: {source}")]
    Read {
        advertiser_id: u64,
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("the billing database {url} holds {value:?} in {column}, which is not a u64")]
    NotU64 {
        url: String,
        column: &'static str,
        value: String,
    },
}

/// What to check after a failed connect: the network's errors do not say that the server may be
/// down, nor that TLS failed (rustls' refusal of a certificate arrives as an I/O error of kind
/// `InvalidData`); the server's own (unknown database, authentication) say enough.
pub(crate) fn connect_hint(error: &sqlx::Error) -> &'static str {
    const TLS: &str = " (TLS: see sslmode and sslrootcert in [billing] database_url)";
    match error {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => TLS,
        sqlx::Error::Io(_) => " (is PostgreSQL up and reachable there?)",
        sqlx::Error::Tls(_) => TLS,
        _ => "",
    }
}
