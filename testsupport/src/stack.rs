//! The stack's env file and per-test names.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

use crate::PromApi;

/// The local stack as `.local/stack.env` describes it.
#[derive(Debug, Clone)]
pub struct Stack {
    vars: HashMap<String, String>,
    /// Where the values came from, for error messages.
    pub env_file: PathBuf,
}

impl Stack {
    /// Reads the env file (`$ADCLICK_STACK_ENV`, else `.local/stack.env` at the workspace root) and
    /// checks that the stack answers. Panics with instructions when it does not: a test that needs
    /// the stack never passes without it.
    pub fn get() -> Stack {
        let env_file = env_file_path();
        let text = std::fs::read_to_string(&env_file).unwrap_or_else(|e| {
            panic!(
                "the local stack is not up: cannot read {} ({e}). Run deploy/local/up first \
                 (deploy/local/test does it for you).",
                env_file.display()
            )
        });
        let stack = Stack {
            vars: parse_env(&text),
            env_file,
        };
        for addr in [
            stack.kafka_brokers(),
            stack.redis_addr(),
            stack.prometheus_addr(),
            stack.s3_addr(),
        ] {
            if std::net::TcpStream::connect_timeout(
                &addr.parse().expect("stack.env address"),
                Duration::from_secs(2),
            )
            .is_err()
            {
                panic!(
                    "the local stack is not answering on {addr} (from {}). Run deploy/local/up; \
                     deploy/local/status says which part is down.",
                    stack.env_file.display()
                );
            }
        }
        stack
    }

    /// A value of the env file; panics naming the key and file when missing.
    pub fn var(&self, key: &str) -> &str {
        self.vars.get(key).unwrap_or_else(|| {
            panic!(
                "{} has no {key}; rerun deploy/local/up",
                self.env_file.display()
            )
        })
    }

    pub fn kafka_brokers(&self) -> &str {
        self.var("KAFKA_BROKERS")
    }
    /// How a client of the stack's broker reaches `topic` (plain, no extra properties).
    pub fn kafka_settings(&self, topic: &str) -> adclick_click::KafkaSettings {
        adclick_click::KafkaSettings::new(self.kafka_brokers(), topic)
    }
    pub fn redis_url(&self) -> &str {
        self.var("REDIS_URL")
    }
    pub fn prometheus_url(&self) -> &str {
        self.var("PROMETHEUS_URL")
    }
    pub fn remote_write_url(&self) -> &str {
        self.var("PROMETHEUS_REMOTE_WRITE_URL")
    }
    pub fn s3_endpoint(&self) -> &str {
        self.var("S3_ENDPOINT")
    }
    pub fn s3_bucket(&self) -> &str {
        self.var("S3_BUCKET")
    }
    pub fn s3_region(&self) -> &str {
        self.var("S3_REGION")
    }
    pub fn aws_access_key_id(&self) -> &str {
        self.var("AWS_ACCESS_KEY_ID")
    }
    pub fn aws_secret_access_key(&self) -> &str {
        self.var("AWS_SECRET_ACCESS_KEY")
    }
    pub fn prometheus_bin(&self) -> &str {
        self.var("PROMETHEUS_BIN")
    }
    pub fn promtool(&self) -> &str {
        self.var("PROMTOOL")
    }

    /// The stack's Prometheus HTTP API.
    pub fn prometheus(&self) -> PromApi {
        PromApi::new(self.prometheus_url())
    }

    /// An S3 client for the stack's garage: path-style addressing, the stack's region and key.
    pub async fn s3_client(&self) -> aws_sdk_s3::Client {
        let creds = aws_sdk_s3::config::Credentials::new(
            self.aws_access_key_id(),
            self.aws_secret_access_key(),
            None,
            None,
            "adclick-local-stack",
        );
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(self.s3_endpoint())
            .region(aws_sdk_s3::config::Region::new(
                self.s3_region().to_string(),
            ))
            .credentials_provider(creds)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Names of this test's own: call once per test.
    pub fn isolated(&self, test: &str) -> TestScope {
        TestScope::new(self.clone(), test)
    }

    fn redis_addr(&self) -> &str {
        host_port(self.redis_url())
    }
    fn prometheus_addr(&self) -> &str {
        host_port(self.prometheus_url())
    }
    fn s3_addr(&self) -> &str {
        host_port(self.s3_endpoint())
    }
}

/// The path of the stack's env file: `$ADCLICK_STACK_ENV`, else `.local/stack.env` at the
/// workspace root.
fn env_file_path() -> PathBuf {
    std::env::var_os("ADCLICK_STACK_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".local/stack.env"))
}

/// One value of the stack's env file, without requiring the rest of the stack to answer (tests
/// that need one server only, e.g. PostgreSQL); `None` when the file or the key is missing.
pub(crate) fn env_file_var(key: &str) -> Option<String> {
    let text = std::fs::read_to_string(env_file_path()).ok()?;
    parse_env(&text).remove(key)
}

/// Names that belong to one test run of one test: `{test}-{pid}-{n}-{time}`.
#[derive(Debug, Clone)]
pub struct TestScope {
    pub stack: Stack,
    /// Unique among all tests and runs; safe in topic names, S3 keys, Redis keys and label values.
    pub id: String,
}

impl TestScope {
    fn new(stack: Stack, test: &str) -> TestScope {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let test: String = test
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let id = format!("{test}-{}-{n}-{:x}", std::process::id(), nanos % (1 << 40));
        TestScope { stack, id }
    }

    /// A key prefix in Redis: `test:{id}:`.
    pub fn redis_prefix(&self) -> String {
        format!("test:{}:", self.id)
    }

    /// An object-key prefix in the stack's bucket: `test/{id}/`.
    pub fn s3_prefix(&self) -> String {
        format!("test/{}/", self.id)
    }

    /// Creates a topic of this test's own with `partitions` partitions and returns its name.
    pub async fn kafka_topic(&self, partitions: i32) -> String {
        let name = format!("test-{}", self.id);
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.stack.kafka_brokers())
            .create()
            .expect("kafka admin client");
        let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .create_topics([&topic], &opts)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "creating topic {name} on {}: {e}",
                    self.stack.kafka_brokers()
                )
            });
        for r in results {
            if let Err((t, code)) = r {
                panic!("creating topic {t}: {code}");
            }
        }
        name
    }
}

fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// `http://127.0.0.1:9090/x` → `127.0.0.1:9090`.
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// The workspace root of the running test, found at run time, not compile time (a build of this
/// crate reused from another checkout would name that checkout's stack):
/// [`adclick_grafana::checkout`].
pub fn workspace_root() -> PathBuf {
    adclick_grafana::checkout()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_parsing() {
        let vars = parse_env("# c\nA=1\n\n B = http://x:1/y \nbad line\n");
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "http://x:1/y");
        assert_eq!(vars.len(), 2);
        assert_eq!(
            host_port("http://127.0.0.1:9090/api/v1/write"),
            "127.0.0.1:9090"
        );
        assert_eq!(host_port("127.0.0.1:9092"), "127.0.0.1:9092");
    }
}
