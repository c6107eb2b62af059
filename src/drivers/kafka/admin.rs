//! The driver itself: topic administration on the cluster (create, open, list, exists).

use super::config::KafkaConfig;
use super::context::{Access, Ctx};
use super::produce::Writer;
use super::topic::KafkaTopic;
use super::{check_topic_name, kafka_err, partition_infos, ADMIN_TIMEOUT, REQUEST_TIMEOUT};
use crate::backend::{DriverBackend, TopicBackend};
use crate::components::TopicComponents;
use crate::error::{Error, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::BaseConsumer;
use rdkafka::consumer::Consumer as _;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::BaseRecord;
use rdkafka::producer::Producer as _;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The kafka driver.
pub struct KafkaDriver {
    pub(super) config: KafkaConfig,
    pub(super) access: Access,
    admin: AdminClient<Ctx>,
    /// Asks the cluster's metadata (a consumer polls its main queue, so librdkafka's errors
    /// and token requests reach its context; an admin client's never do).
    meta: BaseConsumer<Ctx>,
    /// With `aws_msk_iam`: when the admin client's token is to be renewed (ms since the epoch).
    admin_token_renewal: Mutex<Option<i64>>,
}

impl std::fmt::Debug for KafkaDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaDriver")
            .field("config", &self.config)
            .finish()
    }
}

impl KafkaDriver {
    /// Connects the admin client (no request is sent until needed).
    pub fn new(options: &Value) -> Result<Self> {
        let config = KafkaConfig::from_json(options)?;
        let access = Access::new(&config)?;
        let admin: AdminClient<Ctx> = access.create(
            "the Kafka admin client",
            &[("allow.auto.create.topics", "false")],
            &BTreeMap::new(),
        )?;
        let renewal = access.give_token(admin.inner())?;
        let meta: BaseConsumer<Ctx> = access.create(
            "a Kafka metadata client",
            &[
                ("group.id", "diaspora-metadata"),
                ("allow.auto.create.topics", "false"),
            ],
            &BTreeMap::new(),
        )?;
        Ok(KafkaDriver {
            config,
            access,
            admin,
            meta,
            admin_token_renewal: Mutex::new(renewal),
        })
    }

    /// The metadata of every topic of the cluster. An authentication failure is reported as
    /// such within a second or two of librdkafka seeing it, instead of a timeout.
    pub(super) fn metadata(&self) -> Result<rdkafka::metadata::Metadata> {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        loop {
            // Runs the client's callbacks: errors, token requests.
            let _ = self.meta.poll(Duration::ZERO);
            if let Some(e) = self.access.failures.current() {
                return Err(e);
            }
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1));
            match self.meta.fetch_metadata(None, slice) {
                Ok(md) => return Ok(md),
                Err(e) if Instant::now() >= deadline => {
                    return Err(kafka_err("cannot fetch the cluster metadata", e))
                }
                Err(_) => {}
            }
        }
    }

    /// The admin client, with a fresh token when `aws_msk_iam` is on (admin clients do not
    /// ask librdkafka's main queue for tokens, so the driver renews them).
    fn admin(&self) -> Result<&AdminClient<Ctx>> {
        let mut renewal = self
            .admin_token_renewal
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(at) = *renewal {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            if now >= at {
                *renewal = self.access.give_token(self.admin.inner())?;
            }
        }
        Ok(&self.admin)
    }

    pub(super) fn partition_count(&self, kafka_topic: &str) -> Result<Option<usize>> {
        // Metadata of all topics: a request naming a missing topic may create it on some brokers.
        let md = self.metadata()?;
        Ok(md
            .topics()
            .iter()
            .find(|t| t.name() == kafka_topic && t.error().is_none())
            .map(|t| t.partitions().len()))
    }

    pub(super) fn read_info(&self, name: &str) -> Result<Vec<Value>> {
        let mut all = self.read_infos(&[name.to_string()])?;
        Ok(all.remove(name).unwrap_or_default())
    }

    /// Reads the side topics of `names` with one consumer: name -> configurations found.
    pub(super) fn read_infos(&self, names: &[String]) -> Result<HashMap<String, Vec<Value>>> {
        let mut out: HashMap<String, Vec<Value>> = HashMap::new();
        if names.is_empty() {
            return Ok(out);
        }
        let consumer = self.access.side_topic_reader("diaspora-info-reader")?;
        let mut tpl = TopicPartitionList::new();
        let mut by_topic = HashMap::new();
        for name in names {
            let topic = self.config.info_topic(name);
            tpl.add_partition_offset(&topic, 0, Offset::Offset(0))
                .map_err(|e| kafka_err("cannot assign the info topics", e))?;
            by_topic.insert(topic, name.clone());
        }
        consumer
            .assign(&tpl)
            .map_err(|e| kafka_err("cannot assign the info topics", e))?;
        // Read until each has its three records, or nothing comes any more (the end-of-partition
        // report does not say which topic ended, and watermarks are not trusted: some brokers
        // report them wrong after batched writes).
        let mut pending = by_topic.len();
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let mut last_activity = Instant::now();
        while pending > 0 && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    last_activity = Instant::now();
                    let Some(name) = by_topic.get(m.topic()) else {
                        continue;
                    };
                    let v =
                        serde_json::from_slice(m.payload().unwrap_or(b"null")).map_err(|e| {
                            Error::corrupt(
                                format!("kafka:{}", m.topic()),
                                m.offset().max(0) as u64,
                                format!("component configuration is not JSON: {e}"),
                            )
                        })?;
                    let configs = out.entry(name.clone()).or_default();
                    configs.push(v);
                    if configs.len() == 3 {
                        pending -= 1;
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) | None => {
                    if last_activity.elapsed() > Duration::from_secs(2) {
                        break;
                    }
                }
                Some(Err(e)) => return Err(kafka_err("cannot read the info topics", e)),
            }
        }
        Ok(out)
    }
}

impl DriverBackend for KafkaDriver {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn create_topic(
        &self,
        name: &str,
        options: &Value,
        components: &TopicComponents,
    ) -> Result<()> {
        check_topic_name(name)?;
        let positive = |key: &str, default: i64| -> Result<i32> {
            match options.get(key) {
                None | Some(Value::Null) => Ok(default as i32),
                Some(v) => match v.as_i64() {
                    Some(n) if n > 0 && n <= i32::MAX as i64 => Ok(n as i32),
                    _ => Err(Error::config(
                        "topic",
                        format!("\"{key}\" must be a positive integer, not {v}"),
                    )),
                },
            }
        };
        let partitions = positive("num_partitions", 1)?;
        let replication = positive("replication_factor", 3)?;
        let disable_info = match options.get("disable_info_topic") {
            Some(Value::Bool(b)) => *b,
            _ => self.config.disable_info_topic,
        };
        let configs = [
            components.validator.metadata(),
            components.partition_selector.metadata(),
            components.serializer.metadata(),
        ];
        if disable_info
            && configs
                .iter()
                .any(|c| c.get("type").and_then(Value::as_str).unwrap_or("default") != "default")
        {
            return Err(Error::config(
                "topic",
                "without an info topic only the default validator, partition selector and serializer can be used",
            ));
        }
        let kafka_topic = self.config.kafka_topic(name);
        if self.partition_count(&kafka_topic)?.is_some() {
            return Err(Error::TopicExists(name.to_string()));
        }
        let info_topic = self.config.info_topic(name);
        let mut new = vec![NewTopic::new(
            &kafka_topic,
            partitions,
            TopicReplication::Fixed(replication),
        )];
        if !disable_info {
            new.push(NewTopic::new(
                &info_topic,
                1,
                TopicReplication::Fixed(replication),
            ));
        }
        let results = futures_executor::block_on(self.admin()?.create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT)),
        ))
        .map_err(|e| kafka_err(format!("cannot create topic {name:?}"), e))?;
        for r in results {
            match r {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    return Err(Error::TopicExists(name.to_string()))
                }
                Err((t, code)) => {
                    return Err(kafka_err(format!("cannot create topic {t:?}"), code))
                }
            }
        }
        components
            .partition_selector
            .set_partitions(&partition_infos(partitions as usize));
        if disable_info {
            return Ok(());
        }
        let producer: rdkafka::producer::BaseProducer<Ctx> = self.access.create(
            "a Kafka producer",
            &[
                ("allow.auto.create.topics", "false"),
                ("enable.idempotence", "true"),
            ],
            &BTreeMap::new(),
        )?;
        for c in &configs {
            let text = crate::json::to_compact_string(c);
            producer
                .send(
                    BaseRecord::<(), str>::to(&info_topic)
                        .partition(0)
                        .payload(&text),
                )
                .map_err(|(e, _)| kafka_err(format!("cannot write {info_topic}"), e))?;
        }
        producer
            .flush(REQUEST_TIMEOUT)
            .map_err(|e| kafka_err(format!("cannot write {info_topic}"), e))
    }

    fn open_topic(&self, name: &str) -> Result<Arc<dyn TopicBackend>> {
        check_topic_name(name)?;
        let kafka_topic = self.config.kafka_topic(name);
        let Some(n) = self.partition_count(&kafka_topic)? else {
            return Err(Error::TopicNotFound(name.to_string()));
        };
        let components = if self.config.disable_info_topic
            || self
                .partition_count(&self.config.info_topic(name))?
                .is_none()
        {
            TopicComponents::default()
        } else {
            let configs = self.read_info(name)?;
            if configs.len() < 3 {
                return Err(Error::corrupt(
                    format!("kafka:{}", self.config.info_topic(name)),
                    configs.len() as u64,
                    format!(
                        "expected 3 component configurations, found {}",
                        configs.len()
                    ),
                ));
            }
            TopicComponents::from_configs(&configs[0], &configs[1], &configs[2])
                .map_err(|e| Error::config("topic", format!("topic {name:?}: {e}")))?
        };
        Ok(Arc::new(KafkaTopic {
            name: name.to_string(),
            writer: Writer::new(kafka_topic.clone(), self.access.clone(), BTreeMap::new()),
            kafka_topic,
            partitions: n,
            components,
            config: self.config.clone(),
            access: self.access.clone(),
            offset_clients: Mutex::new(HashMap::new()),
            leases: Mutex::new(None),
            watch: Default::default(),
        }))
    }

    fn topic_exists(&self, name: &str) -> Result<bool> {
        check_topic_name(name)?;
        Ok(self
            .partition_count(&self.config.kafka_topic(name))?
            .is_some())
    }

    fn list_topics(&self) -> Result<BTreeMap<String, Value>> {
        let md = self.metadata()?;
        let mut out = BTreeMap::new();
        let names: std::collections::HashSet<&str> = md.topics().iter().map(|t| t.name()).collect();
        let mut with_info = Vec::new();
        for t in md.topics() {
            let Some(name) = self.config.user_topic(t.name()) else {
                continue;
            };
            if t.error().is_some() {
                continue;
            }
            if names.contains(self.config.info_topic(&name).as_str()) {
                with_info.push(name.clone());
            }
            out.insert(
                name.clone(),
                json!({"name": name, "num_partitions": t.partitions().len()}),
            );
        }
        // Components are listed when their side topic can be read.
        if let Ok(infos) = self.read_infos(&with_info) {
            for (name, c) in infos {
                if let (Some(desc), true) = (out.get_mut(&name), c.len() >= 3) {
                    desc["validator"] = c[0].clone();
                    desc["partition_selector"] = c[1].clone();
                    desc["serializer"] = c[2].clone();
                }
            }
        }
        Ok(out)
    }
}
