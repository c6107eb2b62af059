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
    /// Amazon MSK with IAM access control (`aws_msk_iam`; feature `msk`).
    pub msk: Option<MskIamConfig>,
    /// How often a producer renews its liveness lease in the topic's `__producers_` side topic
    /// (option `lease_interval_ms`, default 1000; 0 for no leases: `None`). Consumers'
    /// `liveness_timeout` must be longer.
    pub lease_interval: Option<std::time::Duration>,
}

/// The `aws_msk_iam` object: where the credentials behind the MSK IAM tokens come from.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MskIamConfig {
    /// AWS region of the cluster (`us-east-1`).
    #[serde(deserialize_with = "crate::options::text")]
    pub region: String,
    /// A named profile of the shared AWS config and credentials files (default: `AWS_PROFILE`,
    /// then `default`).
    #[serde(default, deserialize_with = "crate::options::optional_text")]
    pub profile: Option<String>,
    /// A role to assume with the credentials found.
    #[serde(default, deserialize_with = "crate::options::optional_text")]
    pub role_arn: Option<String>,
    /// The session name of the assumed role (default `MSKSASLDefaultSession`).
    #[serde(default, deserialize_with = "crate::options::optional_text")]
    pub session_name: Option<String>,
    /// Tell librdkafka that tokens expire after at most this many seconds, so that it asks for
    /// new ones sooner (tokens themselves are valid 900 s).
    pub token_lifetime_s: Option<u64>,
}

/// librdkafka settings that `aws_msk_iam` fixes.
pub(crate) const MSK_SETTINGS: [(&str, &str); 2] = [
    ("security.protocol", "SASL_SSL"),
    ("sasl.mechanisms", "OAUTHBEARER"),
];

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
    aws_msk_iam: Option<Value>,
    lease_interval_ms: Option<u64>,
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

/// Checks `aws_msk_iam` and fixes the SASL settings it needs (a conflicting setting is an
/// error). In a build without feature `msk` it is refused: connecting without the
/// authentication asked for is never right.
fn msk_config(value: Value, settings: &mut BTreeMap<String, String>) -> Result<MskIamConfig> {
    let bad = |m: String| Error::config("kafka driver", m);
    if !cfg!(feature = "msk") {
        return Err(bad(
            "\"aws_msk_iam\" needs a build with Amazon MSK support (cargo feature `msk`, Spack \
             variant +msk); this build would connect without IAM authentication"
                .into(),
        ));
    }
    let config: MskIamConfig = crate::options::parse("kafka driver: aws_msk_iam", &value)?;
    if config.region.trim().is_empty() {
        return Err(bad("\"aws_msk_iam\".\"region\" must not be empty".into()));
    }
    if config.token_lifetime_s == Some(0) {
        return Err(bad(
            "\"aws_msk_iam\".\"token_lifetime_s\" must be at least 1".into(),
        ));
    }
    for (key, needed) in MSK_SETTINGS {
        match settings.get(key) {
            Some(v) if !v.eq_ignore_ascii_case(needed) => {
                return Err(bad(format!(
                    "\"aws_msk_iam\" needs {key}={needed}, but \"kafka\" sets {key}={v}"
                )))
            }
            _ => {
                settings.insert(key.to_string(), needed.to_string());
            }
        }
    }
    Ok(config)
}

impl KafkaConfig {
    /// Parses and checks the driver options. Unknown keys (a typo) are errors listing the valid
    /// ones; `aws_msk_iam` in a build without feature `msk` is an error saying so.
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
        let msk = match raw.aws_msk_iam {
            None => None,
            Some(v) => Some(msk_config(v, &mut settings)?),
        };
        Ok(KafkaConfig {
            msk,
            kafka: settings,
            namespace: raw.namespace,
            disable_info_topic: raw.disable_info_topic.unwrap_or(false),
            info_topic_prefix: raw
                .info_topic_prefix
                .unwrap_or_else(|| "__info_".to_string()),
            lease_interval: crate::drivers::heartbeats::lease_interval(
                "kafka driver",
                raw.lease_interval_ms,
            )?,
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

    /// The Kafka name of the side topic holding the liveness leases of `name`'s producers.
    pub fn lease_topic(&self, name: &str) -> String {
        self.kafka_topic(&format!("__producers_{name}"))
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
        let msk = KafkaConfig::from_json(&json!({
            "kafka": {"bootstrap.servers": "x"}, "aws_msk_iam": {"region": "us-east-1"}
        }));
        if cfg!(feature = "msk") {
            let c = msk.unwrap();
            assert_eq!(c.msk.unwrap().region, "us-east-1");
            assert_eq!(c.kafka["security.protocol"], "SASL_SSL");
            assert_eq!(c.kafka["sasl.mechanisms"], "OAUTHBEARER");
        } else {
            // Never connect without the authentication asked for.
            let e = msk.unwrap_err().to_string();
            assert!(e.contains("aws_msk_iam") && e.contains("`msk`"), "{e}");
        }
        for bad in [
            json!({"kafka": {"bootstrap.servers": "x"}, "aws_msk_iam": {"region": ""}}),
            json!({"kafka": {"bootstrap.servers": "x"}, "aws_msk_iam": {}}),
            json!({"kafka": {"bootstrap.servers": "x"}, "aws_msk_iam": {"region": "r", "rgion": 1}}),
            json!({"kafka": {"bootstrap.servers": "x", "security.protocol": "PLAINTEXT"},
                   "aws_msk_iam": {"region": "us-east-1"}}),
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
