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

impl KafkaConfig {
    /// Parses and checks the driver options.
    pub fn from_json(options: &Value) -> Result<Self> {
        let bad = |m: String| Error::config("kafka driver", m);
        let obj: &Map<String, Value> = options
            .as_object()
            .ok_or_else(|| bad("options must be a JSON object".into()))?;
        let kafka = match obj.get("kafka") {
            Some(Value::Object(m)) => m,
            Some(_) => return Err(bad("\"kafka\" must be a JSON object".into())),
            None => {
                return Err(bad(
                    "a \"kafka\" object with \"bootstrap.servers\" is required".into(),
                ))
            }
        };
        match kafka.get("bootstrap.servers") {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {}
            _ => {
                return Err(bad(
                    "\"kafka\".\"bootstrap.servers\" must be a string or a list of strings".into(),
                ))
            }
        }
        let namespace = match obj.get("namespace") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => return Err(bad(format!("\"namespace\" must be a string, not {v}"))),
        };
        let disable_info_topic = match obj.get("disable_info_topic") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                return Err(bad(format!(
                    "\"disable_info_topic\" must be a boolean, not {v}"
                )))
            }
        };
        let info_topic_prefix = match obj.get("info_topic_prefix") {
            None => "__info_".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => {
                return Err(bad(format!(
                    "\"info_topic_prefix\" must be a string, not {v}"
                )))
            }
        };
        Ok(KafkaConfig {
            kafka: kafka
                .iter()
                .map(|(k, v)| (k.clone(), setting_text(v)))
                .collect(),
            namespace,
            disable_info_topic,
            info_topic_prefix,
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
        for bad in [
            json!({}),
            json!({"kafka": {}}),
            json!({"kafka": {"bootstrap.servers": 3}}),
            json!({"kafka": {"bootstrap.servers": "x"}, "namespace": 1}),
            json!({"kafka": {"bootstrap.servers": "x"}, "disable_info_topic": "yes"}),
        ] {
            assert!(KafkaConfig::from_json(&bad).is_err(), "{bad}");
        }
    }
}
