//! Options of the kafka driver (the same JSON document as the C++ Octopus driver's).

use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Parsed driver options.
#[derive(Clone, Debug, PartialEq)]
pub struct KafkaConfig {
    /// librdkafka settings (`bootstrap.servers` at least), as strings.
    pub kafka: BTreeMap<String, String>,
    /// Prefix of every Kafka topic name (`<namespace>.<topic>`), if any.
    pub namespace: Option<String>,
    /// Do not keep the side topic holding the components' configurations.
    pub disable_info_topic: bool,
    /// Prefix of that side topic's name (default `__info_`).
    pub info_topic_prefix: String,
}

/// Converts a JSON value to a librdkafka setting: strings as they are, arrays joined with
/// commas, anything else as its JSON text (`true`, `5`).
pub(crate) fn setting_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(setting_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Reads a `{"kafka": {...}}` override object (producer or consumer options), if any.
pub(crate) fn overrides(options: &Value) -> Result<BTreeMap<String, String>> {
    match options.get("kafka") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => Ok(m
            .iter()
            .map(|(k, v)| (k.clone(), setting_text(v)))
            .collect()),
        Some(other) => Err(Error::config(
            "kafka driver",
            format!("\"kafka\" options must be a JSON object, not {other}"),
        )),
    }
}

/// The options as written, before checks.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOptions {
    kafka: Option<Value>,
    #[serde(default, deserialize_with = "crate::options::optional_text")]
    namespace: Option<String>,
    disable_info_topic: Option<bool>,
    #[serde(default, deserialize_with = "crate::options::optional_text")]
    info_topic_prefix: Option<String>,
}

/// librdkafka keys never take objects: `{"bootstrap": {"servers": x}}` (what the command line
/// makes of `--driver.kafka.bootstrap.servers x`) is `{"bootstrap.servers": x}`.
fn flatten_into(prefix: &str, value: &Map<String, Value>, out: &mut BTreeMap<String, String>) {
    for (k, v) in value {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(inner) => flatten_into(&key, inner, out),
            other => {
                out.insert(key, setting_text(other));
            }
        }
    }
}

impl KafkaConfig {
    /// Parses and checks the driver options. Unknown keys (a typo, or `aws_msk_iam` in a build
    /// without MSK support) are errors listing the valid ones.
    pub fn from_json(options: &Value) -> Result<Self> {
        let bad = |m: String| Error::config("kafka driver", m);
        if !options.is_object() {
            return Err(bad("options must be a JSON object".into()));
        }
        let raw: RawOptions = crate::options::parse("kafka driver", options)?;
        let kafka = match raw.kafka {
            Some(Value::Object(m)) => m,
            Some(_) => return Err(bad("\"kafka\" must be a JSON object".into())),
            None => {
                return Err(bad(
                    "a \"kafka\" object with \"bootstrap.servers\" is required".into(),
                ))
            }
        };
        let mut settings = BTreeMap::new();
        flatten_into("", &kafka, &mut settings);
        let servers_ok = match kafka.get("bootstrap.servers") {
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty() && a.iter().all(Value::is_string),
            // Given as nested objects (from the command line): a non-empty text.
            None => settings
                .get("bootstrap.servers")
                .is_some_and(|s| !s.is_empty()),
            _ => false,
        };
        if !servers_ok {
            return Err(bad(
                "\"kafka\".\"bootstrap.servers\" must be a string or a list of strings".into(),
            ));
        }
        Ok(KafkaConfig {
            kafka: settings,
            namespace: raw.namespace,
            disable_info_topic: raw.disable_info_topic.unwrap_or(false),
            info_topic_prefix: raw
                .info_topic_prefix
                .unwrap_or_else(|| "__info_".to_string()),
        })
    }

    /// The Kafka name of topic `name`.
    pub fn kafka_topic(&self, name: &str) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}.{name}"),
            None => name.to_string(),
        }
    }

    /// The Kafka name of the side topic of `name`.
    pub fn info_topic(&self, name: &str) -> String {
        self.kafka_topic(&format!("{}{name}", self.info_topic_prefix))
    }

    /// The user-facing name of Kafka topic `kafka_name`, if it belongs to this namespace and is
    /// not a side topic.
    pub fn user_topic(&self, kafka_name: &str) -> Option<String> {
        let name = match &self.namespace {
            Some(ns) => kafka_name.strip_prefix(ns.as_str())?.strip_prefix('.')?,
            None => kafka_name,
        };
        if name.starts_with(&self.info_topic_prefix) || name.starts_with("__") {
            return None;
        }
        Some(name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_like_octopus() {
        let c = KafkaConfig::from_json(&json!({
            "kafka": {"bootstrap.servers": ["a:1", "b:2"], "enable.idempotence": true, "linger.ms": 5},
            "namespace": "ns"
        }))
        .unwrap();
        assert_eq!(c.kafka["bootstrap.servers"], "a:1,b:2");
        assert_eq!(c.kafka["enable.idempotence"], "true");
        assert_eq!(c.kafka["linger.ms"], "5");
        assert_eq!(c.kafka_topic("t"), "ns.t");
        assert_eq!(c.info_topic("t"), "ns.__info_t");
        assert_eq!(c.user_topic("ns.t").as_deref(), Some("t"));
        assert_eq!(c.user_topic("ns.__info_t"), None);
        assert_eq!(c.user_topic("other.t"), None);
        // As the command line writes librdkafka keys: nested objects.
        let c = KafkaConfig::from_json(&json!({
            "kafka": {"bootstrap": {"servers": "h:9092"}, "sasl": {"mechanisms": "PLAIN"}}
        }))
        .unwrap();
        assert_eq!(c.kafka["bootstrap.servers"], "h:9092");
        assert_eq!(c.kafka["sasl.mechanisms"], "PLAIN");
        let e = KafkaConfig::from_json(&json!({
            "kafka": {"bootstrap.servers": "x"}, "aws_msk_iam": {"region": "us-east-1"}
        }))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("aws_msk_iam") && e.contains("`namespace`"),
            "{e}"
        );
        for bad in [
            json!({}),
            json!({"kafka": {}}),
            json!({"kafka": {"bootstrap.servers": 3}}),
            json!({"kafka": {"bootstrap.servers": "x"}, "namespace": [1]}),
            json!({"kafka": {"bootstrap.servers": "x"}, "disable_info_topic": "yes"}),
        ] {
            assert!(KafkaConfig::from_json(&bad).is_err(), "{bad}");
        }
    }
}
