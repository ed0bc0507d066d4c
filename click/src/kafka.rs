//! Where the clicks topic is and how a client reaches it: the one description every Kafka client
//! adclick makes (ingest's producer, the exporter's consumer and producer, loadgen) is built
//! from, so a security setting in `[kafka.properties]` reaches all of them alike.
//!
//! It holds no librdkafka type (this crate builds without librdkafka): each client sets its own
//! properties, then these, which may override them.

use std::fmt;

/// The clicks topic's cluster and the librdkafka properties for its clients.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// The clicks topic.
    pub topic: String,
    /// librdkafka properties applied after a client's own (TLS, SASL, tuning).
    pub properties: Vec<(String, String)>,
}

impl KafkaSettings {
    /// Settings with no extra properties.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> KafkaSettings {
        KafkaSettings {
            brokers: brokers.into(),
            topic: topic.into(),
            properties: Vec::new(),
        }
    }
}

/// Whether a librdkafka property holds a secret: `sasl.password`, `ssl.key.password`,
/// `ssl.key.pem`, `sasl.oauthbearer.client.secret`, `ssl.keystore.password`, …
pub fn is_secret_property(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "key.pem", "sasl.oauthbearer.config"]
        .iter()
        .any(|word| name.contains(word))
}

/// Properties with secret values replaced, for logs and `Debug`.
pub struct RedactedProperties<'a>(pub &'a [(String, String)]);

impl fmt::Debug for RedactedProperties<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(name, value)| {
                let shown = if is_secret_property(name) {
                    "<redacted>"
                } else {
                    value.as_str()
                };
                (name, shown)
            }))
            .finish()
    }
}

/// Secrets never reach logs.
impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("properties", &RedactedProperties(&self.properties))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_settings_but_no_secret() {
        let settings = KafkaSettings {
            properties: vec![
                ("security.protocol".into(), "sasl_ssl".into()),
                ("sasl.username".into(), "adclick".into()),
                ("sasl.password".into(), "hunter2".into()),
                ("ssl.key.password".into(), "hunter3".into()),
                ("sasl.oauthbearer.client.secret".into(), "hunter4".into()),
            ],
            ..KafkaSettings::new("b:9093", "clicks")
        };
        let shown = format!("{settings:?}");
        assert!(
            shown.contains("sasl_ssl") && shown.contains("adclick"),
            "{shown}"
        );
        assert!(!shown.contains("hunter"), "{shown}");
        assert_eq!(shown.matches("<redacted>").count(), 3, "{shown}");
    }
}
