//! adclick's configuration: one TOML file, overridden by `ADCLICK_*` environment variables,
//! overridden by command-line flags (applied by each subcommand).
//!
//! An environment variable names a key path with `__` between levels:
//! `ADCLICK_TOKENS__SIGNING_KEY_ID=k2` sets `[tokens] signing_key_id = "k2"`. Only
//! `ADCLICK_<SECTION>__<KEY>` names are configuration: any other `ADCLICK_*` variable
//! (`ADCLICK_CONFIG`, the stack scripts' `ADCLICK_KAFKA_PORT`, someone's `ADCLICK_BIN`) is not a
//! key path and is ignored; a key path naming a key that does not exist is refused. Its value is read as
//! a TOML value when it parses as one (`42`, `true`, `["a","b"]`), else as a string.
//! `deploy/adclick.example.toml` documents every key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use adclick_click::KafkaSettings;
use adclick_click::token::{DEFAULT_CLOCK_SKEW_SECS, TokenKey, Verifier};
use anyhow::{Context, Result, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Prefix of the environment variables that override the file.
const ENV_PREFIX: &str = "ADCLICK_";

/// The whole configuration. Each section belongs to one subcommand; every key has a default so a
/// missing file is a valid (local-stack) configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub tokens: TokensConfig,
    pub kafka: KafkaConfig,
    /// `adclick ingest`; its keys and defaults live with the service (`adclick_ingest::config`).
    pub ingest: adclick_ingest::IngestConfig,
    /// `adclick export`; keys and defaults in `adclick_exporter::config`.
    pub exporter: adclick_exporter::ExporterConfig,
    /// `adclick rollup`; keys and defaults in `adclick_rollup::config`.
    pub rollup: adclick_rollup::RollupConfig,
    /// `adclick query`; keys and defaults in `adclick_query::QueryConfig`.
    pub query: adclick_query::QueryConfig,
    /// `adclick billing` and the rollup's billing store; keys and defaults in
    /// `adclick_billing::BillingConfig`.
    pub billing: adclick_billing::BillingConfig,
    /// Invalid-traffic rules, one table for the two places that apply them: ingest (live) and
    /// the rollup (the settled day). Keys and defaults in `adclick_invalid::Config`.
    pub invalid: adclick_invalid::Config,
    /// The object store of the raw archive, the exporter's checkpoints and the rollup's blocks.
    pub s3: adclick_objstore::S3Config,
    /// How the services log (to stderr).
    pub log: LogConfig,
}

/// `[log]`: the services' log lines on stderr. `ADCLICK_LOG` (e.g. `info,adclick_ingest=debug`)
/// chooses what is logged.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// The shape of a log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One human-readable line per event; coloured only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`, `span`s), for a log
    /// pipeline (Loki, Elasticsearch, …).
    Json,
}

/// The Kafka cluster and clicks topic every component shares.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    pub clicks_topic: String,
    /// librdkafka properties passed through to every client (e.g. security settings). Values
    /// are strings to librdkafka; numbers and booleans are taken as written (`linger.ms = 5`,
    /// or `ADCLICK_KAFKA__PROPERTIES__linger.ms=5`, which the environment reads as a number).
    #[serde(deserialize_with = "property_values")]
    pub properties: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// What every Kafka client is built from.
    pub fn settings(&self) -> KafkaSettings {
        KafkaSettings {
            brokers: self.brokers.clone(),
            topic: self.clicks_topic.clone(),
            properties: self
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// Secret properties (`sasl.password`, …) never reach logs.
impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.settings(), f)
    }
}

/// librdkafka properties: strings, or numbers and booleans written without quotes.
fn property_values<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error as _;
    BTreeMap::<String, toml::Value>::deserialize(deserializer)?
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(D::Error::custom(format!(
                        "librdkafka property {key}: expected a string, number or boolean, found {}",
                        other.type_str()
                    )));
                }
            };
            Ok((key, text))
        })
        .collect()
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            clicks_topic: "clicks".into(),
            properties: BTreeMap::new(),
        }
    }
}

/// Impression-token keys: the ones accepted (by id, for rotation) and the one that signs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokensConfig {
    /// Id of the key new tokens are signed with; must be one of `keys`.
    pub signing_key_id: String,
    /// Key id → secret, hex-encoded (at least 32 bytes). Every key here is accepted on verify.
    /// `Debug` shows the ids only.
    pub keys: BTreeMap<String, SecretString>,
    /// Clock-skew allowance on issue and expiry times, in seconds.
    pub clock_skew_secs: Option<u64>,
}

impl TokensConfig {
    /// The verifier of every configured key, with the configured clock skew.
    pub fn verifier(&self) -> Result<Verifier> {
        if self.keys.is_empty() {
            bail!(
                "no token keys configured: set [tokens] keys in the configuration file \
                 (see deploy/adclick.example.toml) or ADCLICK_TOKENS__KEYS__<ID>=<hex secret>"
            );
        }
        let skew_secs = self.clock_skew_secs.unwrap_or(DEFAULT_CLOCK_SKEW_SECS);
        let keys = self
            .keys
            .iter()
            .map(|(id, secret)| (id.as_str(), secret.expose_secret()));
        Verifier::from_hex(keys, skew_secs).context("invalid [tokens] keys")
    }

    /// The key new tokens are signed with (`signing_key_id` in `keys`).
    pub fn signing_key(&self) -> Result<TokenKey> {
        let id = &self.signing_key_id;
        let secret = self
            .keys
            .get(id)
            .with_context(|| format!("signing key {id:?} is not in [tokens] keys"))?;
        TokenKey::from_hex(id, secret.expose_secret()).context("invalid [tokens] signing key")
    }
}

impl Config {
    /// Loads `path` (or `$ADCLICK_CONFIG`, or nothing) and applies the environment's overrides.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let path: Option<PathBuf> = path
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("ADCLICK_CONFIG").map(PathBuf::from));
        let mut table = match &path {
            Some(p) => std::fs::read_to_string(p)
                .with_context(|| format!("reading config file {}", p.display()))?
                .parse::<toml::Table>()
                .with_context(|| format!("parsing config file {}", p.display()))?,
            None => toml::Table::new(),
        };
        apply_env(&mut table, std::env::vars())?;
        let origin = path.map_or_else(|| "defaults".to_string(), |p| p.display().to_string());
        Config::deserialize(toml::Value::Table(table)).with_context(|| {
            format!("invalid configuration (from {origin} and ADCLICK_* variables)")
        })
    }
}

/// Applies `ADCLICK_A__B=value` overrides to `table`.
fn apply_env(table: &mut toml::Table, vars: impl Iterator<Item = (String, String)>) -> Result<()> {
    for (name, raw) in vars {
        let Some(path) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        // A section and a key at least: anything else with the prefix is not configuration.
        if !path.contains("__") {
            continue;
        }
        let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        if keys.iter().any(String::is_empty) {
            bail!("environment variable {name}: empty key in path");
        }
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        let (last, parents) = keys.split_last().expect("split yields one key at least");
        let mut node = &mut *table;
        for key in parents {
            let entry = node
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = entry.as_table_mut().with_context(|| {
                format!("environment variable {name}: `{key}` is not a section")
            })?;
        }
        node.insert(last.clone(), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml_text: &str, env: &[(&str, &str)]) -> Result<Config> {
        let mut table: toml::Table = toml_text.parse()?;
        apply_env(
            &mut table,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )?;
        Ok(Config::deserialize(toml::Value::Table(table))?)
    }

    #[test]
    fn env_overrides_file() {
        let c = load_str(
            "[tokens]\nsigning_key_id = \"k1\"\nkeys = { k1 = \"aa\" }\n",
            &[
                ("ADCLICK_TOKENS__SIGNING_KEY_ID", "k2"),
                ("ADCLICK_TOKENS__KEYS__K2", "bb"),
                ("OTHER", "x"),
            ],
        )
        .unwrap();
        assert_eq!(c.tokens.signing_key_id, "k2");
        assert_eq!(c.tokens.keys["k1"].expose_secret(), "aa");
        assert_eq!(c.tokens.keys["k2"].expose_secret(), "bb");
        let shown = format!("{c:?}");
        assert!(shown.contains("k2") && !shown.contains("\"bb\""), "{shown}");
    }

    #[test]
    fn the_stack_scripts_variables_are_not_keys() {
        let c = load_str(
            "",
            &[
                ("ADCLICK_KAFKA_PORT", "19092"),
                ("ADCLICK_GARAGE_ADMIN_PORT", "13903"),
                ("ADCLICK_TEST_SCALE", "full"),
                ("ADCLICK_BIN", "/usr/local/bin/adclick"),
                ("ADCLICK_", "x"),
            ],
        )
        .unwrap();
        assert_eq!(c.kafka.brokers, KafkaConfig::default().brokers);
    }

    #[test]
    fn a_key_path_that_names_no_key_is_refused() {
        let err = load_str("", &[("ADCLICK_KAFKA__BROKRES", "x:1")]).unwrap_err();
        assert!(format!("{err:#}").contains("brokres"), "{err:#}");
    }

    #[test]
    fn env_values_are_typed_when_they_parse() {
        let c = load_str("", &[("ADCLICK_TOKENS__CLOCK_SKEW_SECS", "30")]).unwrap();
        assert_eq!(c.tokens.clock_skew_secs, Some(30));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = load_str("[tokens]\nsigning_kye = \"x\"\n", &[]).unwrap_err();
        assert!(format!("{err:#}").contains("signing_kye"), "{err:#}");
    }

    #[test]
    fn example_config_is_valid() {
        let text = include_str!("../deploy/adclick.example.toml");
        let c = load_str(text, &[]).unwrap();
        c.ingest.validate().unwrap();
        // The example spells out every default: a drift between the two shows here.
        let defaults = adclick_ingest::IngestConfig::default();
        assert_eq!(format!("{:?}", c.ingest), format!("{defaults:?}"));
        c.exporter.validate().unwrap();
        let defaults = adclick_exporter::ExporterConfig::default();
        assert_eq!(format!("{:?}", c.exporter), format!("{defaults:?}"));
        c.rollup.validate().unwrap();
        let defaults = adclick_rollup::RollupConfig::default();
        assert_eq!(format!("{:?}", c.rollup), format!("{defaults:?}"));
        let defaults = adclick_objstore::S3Config::default();
        assert_eq!(format!("{:?}", c.s3), format!("{defaults:?}"));
        assert_eq!(c.query, adclick_query::QueryConfig::default());
        let defaults = adclick_billing::BillingConfig::default();
        assert_eq!(format!("{:?}", c.billing), format!("{defaults:?}"));
        assert_eq!(c.invalid, adclick_invalid::Config::default());
        adclick_invalid::Rules::from_config(&c.invalid).unwrap();
        c.query.policy().unwrap();
    }

    #[test]
    fn query_keys_are_overridable_from_the_environment() {
        let c = load_str(
            "[query]\nlisten = \"0.0.0.0:9200\"\n",
            &[
                ("ADCLICK_QUERY__PROMETHEUS_URL", "http://prometheus:9090"),
                ("ADCLICK_QUERY__MAX_NESTING", "32"),
                ("ADCLICK_QUERY__API_KEYS_FILE", "/etc/adclick/query-keys"),
                ("ADCLICK_QUERY__JWT__KEY_FILE", "/etc/adclick/jwt.pem"),
                ("ADCLICK_QUERY__HISTORY_KIND", "prometheus"),
            ],
        )
        .unwrap();
        assert_eq!(c.query.listen, "0.0.0.0:9200");
        assert_eq!(c.query.prometheus_url, "http://prometheus:9090");
        assert_eq!(c.query.limits().max_nesting, 32);
        assert_eq!(
            c.query.api_keys_file,
            std::path::PathBuf::from("/etc/adclick/query-keys")
        );
        assert_eq!(
            c.query.jwt.key_file,
            std::path::PathBuf::from("/etc/adclick/jwt.pem")
        );
        assert_eq!(c.query.history_kind, adclick_query::HistoryKind::Prometheus);
        let err = load_str("[query]\nlissten = \"x\"\n", &[]).unwrap_err();
        assert!(format!("{err:#}").contains("lissten"), "{err:#}");
    }

    #[test]
    fn billing_keys_are_overridable_from_the_environment() {
        let c = load_str(
            "[billing]\nmax_connections = 2\n",
            &[
                (
                    "ADCLICK_BILLING__DATABASE_URL",
                    "postgres://billing:s3cret@db:5432/adclick?sslmode=verify-full",
                ),
                ("ADCLICK_BILLING__STATEMENT_TIMEOUT_MS", "60000"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.billing.database_url.expose_secret(),
            "postgres://billing:s3cret@db:5432/adclick?sslmode=verify-full"
        );
        assert_eq!(c.billing.statement_timeout_ms, 60_000);
        assert_eq!(c.billing.max_connections, 2);
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        let err = load_str("[billing]\ndatabase_ulr = \"x\"\n", &[]).unwrap_err();
        assert!(format!("{err:#}").contains("database_ulr"), "{err:#}");
    }

    #[test]
    fn ingest_keys_are_overridable_from_the_environment() {
        let c = load_str(
            "",
            &[
                ("ADCLICK_INGEST__PRODUCE_TIMEOUT_MS", "80"),
                ("ADCLICK_INGEST__HOT_ADS__981234", "4"),
                ("ADCLICK_INGEST__SPILL_FULL", "reject"),
            ],
        )
        .unwrap();
        assert_eq!(c.ingest.produce_timeout_ms, 80);
        assert_eq!(c.ingest.hot_ads().unwrap()[&981234], 4);
        assert_eq!(c.ingest.spill_full, adclick_ingest::SpillFullPolicy::Reject);
    }

    #[test]
    fn librdkafka_properties_take_numbers_and_booleans_as_written() {
        let c = load_str(
            "[kafka.properties]\n\"socket.keepalive.enable\" = true\n",
            &[
                ("ADCLICK_KAFKA__PROPERTIES__linger.ms", "20"),
                ("ADCLICK_KAFKA__PROPERTIES__compression.type", "lz4"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.kafka.settings().properties,
            [
                ("compression.type".to_string(), "lz4".to_string()),
                ("linger.ms".into(), "20".into()),
                ("socket.keepalive.enable".into(), "true".into()),
            ]
        );
        let err = load_str("[kafka.properties]\n\"a.b\" = [1]\n", &[]).unwrap_err();
        assert!(
            format!("{err:#}").contains("librdkafka property a.b"),
            "{err:#}"
        );
    }
}
