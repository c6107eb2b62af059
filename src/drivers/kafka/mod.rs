//! The `kafka` driver (feature `kafka`): topics on a Kafka-compatible cluster, through
//! librdkafka (the `rdkafka` crate's bundled build). Also registered as `octopus`.
//!
//! # Mapping
//!
//! * A topic is the Kafka topic `[<namespace>.]<name>` with the same number of partitions; a
//!   one-partition side topic `[<namespace>.]__info_<name>` holds three records, the compact
//!   JSON configurations of the validator, the partition selector and the serializer (in that
//!   order), as the C++ Octopus driver writes them.
//! * An event is one record whose value is `metadata size (u64 LE) | data size (u64 LE) |
//!   serialized metadata | data`, with no key or headers (Octopus's layout, so either
//!   implementation reads the other's records). A record whose two sizes are `u64::MAX` is an
//!   end-of-stream marker.
//! * The partition selector's choice is the Kafka partition; an event id is the record's
//!   offset, taken from the delivery report (a failed delivery fails the push).
//! * A consumer's name is its Kafka group id. Consumers use explicit partition assignment (no
//!   group rebalancing, so target partitions are honoured), and `acknowledge()` commits
//!   `offset + 1` for the group, so a consumer restarted with the same name resumes right after
//!   its last acknowledged event.
//!
//! Differences from Octopus: every partition works (Octopus fails unless the selector returns
//! 0), delivery failures surface as errors, acknowledgements are stored (Octopus auto-commits
//! whatever was polled), target partitions are honoured, existence checks never create topics.

mod config;

pub use config::KafkaConfig;

use crate::backend::{
    BatchCallback, BatchIds, DriverBackend, EventBatch, PartitionReader, StoredEvent, TopicBackend,
};
use crate::components::TopicComponents;
use crate::error::{Error, Result};
use crate::metadata::PartitionInfo;
use crate::types::EventId;
use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long administrative requests may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long metadata and offset requests may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Record size fields of an end-of-stream marker.
const END_MARKER: u64 = u64::MAX;

fn kafka_err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::Driver {
        driver: "kafka",
        message: format!("{what}: {e}"),
    }
}

/// The kafka driver.
pub struct KafkaDriver {
    config: KafkaConfig,
    admin: AdminClient<DefaultClientContext>,
}

impl std::fmt::Debug for KafkaDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaDriver")
            .field("config", &self.config)
            .finish()
    }
}

/// librdkafka settings: the driver's, then `extra`, then `overrides` (the caller's options win).
fn client_config(
    base: &BTreeMap<String, String>,
    extra: &[(&str, &str)],
    overrides: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in base {
        c.set(k, v);
    }
    for (k, v) in extra {
        c.set(*k, *v);
    }
    for (k, v) in overrides {
        c.set(k, v);
    }
    c
}

/// Kafka topic names: 1 to 249 characters among letters, digits, `.`, `_` and `-`.
fn check_topic_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "invalid topic name {name:?}: Kafka topic names use letters, digits, '.', '_' and '-' (at most 200 here)"
        )))
    }
}

impl KafkaDriver {
    /// Connects the admin client (no request is sent until needed).
    pub fn new(options: &Value) -> Result<Self> {
        let config = KafkaConfig::from_json(options)?;
        let admin = client_config(
            &config.kafka,
            &[("allow.auto.create.topics", "false")],
            &BTreeMap::new(),
        )
        .create()
        .map_err(|e| kafka_err("cannot create the Kafka admin client", e))?;
        Ok(KafkaDriver { config, admin })
    }

    fn partition_count(&self, kafka_topic: &str) -> Result<Option<usize>> {
        // Metadata of all topics: a request naming a missing topic may create it on some brokers.
        let md = self
            .admin
            .inner()
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map_err(|e| kafka_err("cannot fetch the cluster metadata", e))?;
        Ok(md
            .topics()
            .iter()
            .find(|t| t.name() == kafka_topic && t.error().is_none())
            .map(|t| t.partitions().len()))
    }

    fn read_info(&self, name: &str) -> Result<Vec<Value>> {
        let mut all = self.read_infos(&[name.to_string()])?;
        Ok(all.remove(name).unwrap_or_default())
    }

    /// Reads the side topics of `names` with one consumer: name -> configurations found.
    fn read_infos(&self, names: &[String]) -> Result<HashMap<String, Vec<Value>>> {
        let mut out: HashMap<String, Vec<Value>> = HashMap::new();
        if names.is_empty() {
            return Ok(out);
        }
        let consumer: BaseConsumer = client_config(
            &self.config.kafka,
            &[
                ("group.id", "diaspora-info-reader"),
                ("enable.auto.commit", "false"),
                ("enable.partition.eof", "true"),
                ("allow.auto.create.topics", "false"),
                // Side topics are tiny: do not let the broker hold empty fetches.
                ("fetch.wait.max.ms", "10"),
                ("fetch.error.backoff.ms", "10"),
            ],
            &BTreeMap::new(),
        )
        .create()
        .map_err(|e| kafka_err("cannot create a Kafka consumer", e))?;
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
        let results = futures_executor::block_on(self.admin.create_topics(
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
        let producer: rdkafka::producer::BaseProducer = client_config(
            &self.config.kafka,
            &[
                ("allow.auto.create.topics", "false"),
                ("enable.idempotence", "true"),
            ],
            &BTreeMap::new(),
        )
        .create()
        .map_err(|e| kafka_err("cannot create a Kafka producer", e))?;
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
        let producer_base = self.config.kafka.clone();
        Ok(Arc::new(KafkaTopic {
            name: name.to_string(),
            kafka_topic,
            partitions: n,
            components,
            config: self.config.clone(),
            writer: Mutex::new(None),
            offset_clients: Mutex::new(HashMap::new()),
            producer_overrides: BTreeMap::new(),
            producer_base,
        }))
    }

    fn topic_exists(&self, name: &str) -> Result<bool> {
        check_topic_name(name)?;
        Ok(self
            .partition_count(&self.config.kafka_topic(name))?
            .is_some())
    }

    fn list_topics(&self) -> Result<BTreeMap<String, Value>> {
        let md = self
            .admin
            .inner()
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map_err(|e| kafka_err("cannot fetch the cluster metadata", e))?;
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

fn partition_infos(n: usize) -> Vec<PartitionInfo> {
    (0..n)
        .map(|i| PartitionInfo::new(json!({"partition_id": i})))
        .collect()
}

/// Completion state of one batch sent to librdkafka.
struct BatchState {
    ids: Mutex<Vec<Option<std::result::Result<EventId, String>>>>,
    remaining: AtomicUsize,
    done: Mutex<Option<BatchCallback>>,
    topic: String,
    partition: usize,
}

impl BatchState {
    fn record(&self, index: usize, result: std::result::Result<EventId, String>) {
        self.ids.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(result);
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish();
        }
    }

    fn finish(&self) {
        let ids = std::mem::take(&mut *self.ids.lock().unwrap_or_else(|e| e.into_inner()));
        let mut out = Vec::with_capacity(ids.len());
        let mut failure = None;
        for (i, r) in ids.into_iter().enumerate() {
            match r {
                Some(Ok(id)) => out.push(id),
                Some(Err(e)) => {
                    failure.get_or_insert(format!("event {i} of the batch: {e}"));
                }
                None => {
                    failure.get_or_insert(format!("event {i} of the batch was never reported"));
                }
            }
        }
        let result = match failure {
            None => Ok(BatchIds::Each(out)),
            Some(e) => Err(kafka_err(
                format!(
                    "delivery to {} partition {} failed",
                    self.topic, self.partition
                ),
                e,
            )),
        };
        if let Some(done) = self.done.lock().unwrap_or_else(|e| e.into_inner()).take() {
            done(result);
        }
    }
}

/// Routes delivery reports to their batch.
struct DeliveryContext;

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<(Arc<BatchState>, usize)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (state, index) = *opaque;
        match result {
            Ok(m) if m.offset() >= 0 => state.record(index, Ok(m.offset() as u64)),
            Ok(m) => state.record(index, Err(format!("no offset reported ({})", m.offset()))),
            Err((e, _)) => state.record(index, Err(e.to_string())),
        }
    }
}

/// An open Kafka topic.
struct KafkaTopic {
    name: String,
    kafka_topic: String,
    partitions: usize,
    components: TopicComponents,
    config: KafkaConfig,
    producer_base: BTreeMap<String, String>,
    producer_overrides: BTreeMap<String, String>,
    /// Created on first use, shared by the producers of this handle.
    writer: Mutex<Option<Arc<ThreadedProducer<DeliveryContext>>>>,
    /// One consumer per consumer name, to load and commit its offsets.
    offset_clients: Mutex<HashMap<String, Arc<BaseConsumer>>>,
}

impl KafkaTopic {
    fn check_partition(&self, p: usize) -> Result<()> {
        if p < self.partitions {
            Ok(())
        } else {
            Err(Error::PartitionOutOfRange {
                topic: self.name.clone(),
                partition: p,
                num_partitions: self.partitions,
            })
        }
    }

    fn writer(&self) -> Result<Arc<ThreadedProducer<DeliveryContext>>> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = w.as_ref() {
            return Ok(p.clone());
        }
        let producer: ThreadedProducer<DeliveryContext> = client_config(
            &self.producer_base,
            &[
                ("allow.auto.create.topics", "false"),
                ("enable.idempotence", "true"),
            ],
            &self.producer_overrides,
        )
        .create_with_context(DeliveryContext)
        .map_err(|e| kafka_err("cannot create a Kafka producer", e))?;
        let p = Arc::new(producer);
        *w = Some(p.clone());
        Ok(p)
    }

    fn offset_client(&self, consumer: &str) -> Result<Arc<BaseConsumer>> {
        let mut m = self
            .offset_clients
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(c) = m.get(consumer) {
            return Ok(c.clone());
        }
        let c: BaseConsumer = client_config(
            &self.config.kafka,
            &[
                ("group.id", consumer),
                ("enable.auto.commit", "false"),
                ("allow.auto.create.topics", "false"),
            ],
            &BTreeMap::new(),
        )
        .create()
        .map_err(|e| kafka_err("cannot create a Kafka consumer", e))?;
        let c = Arc::new(c);
        m.insert(consumer.to_string(), c.clone());
        Ok(c)
    }

    fn new_reader(
        &self,
        consumer: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<KafkaReader> {
        let c: BaseConsumer = client_config(
            &self.config.kafka,
            &[
                ("group.id", consumer),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("enable.partition.eof", "true"),
                ("auto.offset.reset", "earliest"),
                ("allow.auto.create.topics", "false"),
                ("fetch.wait.max.ms", "100"),
            ],
            overrides,
        )
        .create()
        .map_err(|e| kafka_err("cannot create a Kafka consumer", e))?;
        Ok(KafkaReader {
            consumer: c,
            topic: self.kafka_topic.clone(),
            buffers: HashMap::new(),
            assigned: HashMap::new(),
            at_end: HashMap::new(),
        })
    }
}

/// Encodes one event as an Octopus record value.
fn encode_record(metadata: &[u8], data: &crate::data_view::DataView) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + metadata.len() + data.size());
    v.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    v.extend_from_slice(&(data.size() as u64).to_le_bytes());
    v.extend_from_slice(metadata);
    for s in data.segments() {
        v.extend_from_slice(s);
    }
    v
}

/// Decodes an Octopus record value into (metadata, data); `None` for an end-of-stream marker.
pub fn decode_record(
    value: Bytes,
    topic: &str,
    partition: usize,
    offset: u64,
) -> Result<Option<(Bytes, Bytes)>> {
    let bad = |why: String| Error::Decode {
        what: "kafka record",
        reason: format!("{topic} partition {partition} offset {offset}: {why}"),
    };
    if value.len() < 16 {
        return Err(bad(format!(
            "{} bytes, less than the 16-byte header",
            value.len()
        )));
    }
    let md = u64::from_le_bytes(value[..8].try_into().unwrap_or([0; 8]));
    let data = u64::from_le_bytes(value[8..16].try_into().unwrap_or([0; 8]));
    if md == END_MARKER && data == END_MARKER {
        return Ok(None);
    }
    let total = md.checked_add(data).and_then(|s| s.checked_add(16));
    if total != Some(value.len() as u64) {
        return Err(bad(format!(
            "header announces {md} metadata and {data} data bytes but the record has {}",
            value.len()
        )));
    }
    let md = md as usize;
    Ok(Some((value.slice(16..16 + md), value.slice(16 + md..))))
}

impl TopicBackend for KafkaTopic {
    fn name(&self) -> &str {
        &self.name
    }

    fn partitions(&self) -> Vec<PartitionInfo> {
        partition_infos(self.partitions)
    }

    fn components(&self) -> TopicComponents {
        self.components.clone()
    }

    fn append_batch(&self, partition: usize, batch: &EventBatch) -> Result<BatchIds> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.append_batch_async(
            partition,
            batch.clone(),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv().unwrap_or(Err(Error::Closed("kafka producer")))
    }

    fn append_batch_async(&self, partition: usize, batch: EventBatch, done: BatchCallback) {
        if let Err(e) = self.check_partition(partition) {
            return done(Err(e));
        }
        if batch.is_empty() {
            return done(Ok(BatchIds::Each(Vec::new())));
        }
        let producer = match self.writer() {
            Ok(p) => p,
            Err(e) => return done(Err(e)),
        };
        let state = Arc::new(BatchState {
            ids: Mutex::new(vec![None; batch.len()]),
            remaining: AtomicUsize::new(batch.len()),
            done: Mutex::new(Some(done)),
            topic: self.kafka_topic.clone(),
            partition,
        });
        for i in 0..batch.len() {
            let value = encode_record(batch.metadata_of(i), batch.data_of(i));
            let mut record = BaseRecord::<(), Vec<u8>, _>::with_opaque_to(
                &self.kafka_topic,
                Box::new((state.clone(), i)),
            )
            .partition(partition as i32)
            .payload(&value);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        // librdkafka's queue is full: let deliveries drain, then retry.
                        record = r;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, r)) => {
                        let (state, index) = *r.delivery_opaque;
                        state.record(index, Err(e.to_string()));
                        break;
                    }
                }
            }
        }
    }

    fn sync(&self, _partitions: &[usize]) -> Result<()> {
        // Batches complete on their delivery reports (acks from the brokers): nothing is pending.
        Ok(())
    }

    fn fetch(
        &self,
        partition: usize,
        from: EventId,
        max_events: usize,
        _with_data: bool,
    ) -> Result<Vec<StoredEvent>> {
        self.check_partition(partition)?;
        let mut reader = self.new_reader("diaspora-fetch", &BTreeMap::new())?;
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        loop {
            let got = reader.fetch(partition, from, max_events, true)?;
            if !got.is_empty()
                || reader.at_end.get(&partition).copied().unwrap_or(false)
                || Instant::now() > deadline
            {
                return Ok(got);
            }
        }
    }

    fn read_data(
        &self,
        _partition: usize,
        event: &StoredEvent,
        _ranges: &[(u64, u64)],
        _dst: &mut [&mut [u8]],
    ) -> Result<()> {
        Err(Error::InvalidArgument(format!(
            "kafka events carry their data (event {} was fetched without it)",
            event.id
        )))
    }

    fn load_offset(&self, consumer: &str, partition: usize) -> Result<EventId> {
        self.check_partition(partition)?;
        let c = self.offset_client(consumer)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.kafka_topic, partition as i32);
        let committed = c.committed_offsets(tpl, REQUEST_TIMEOUT).map_err(|e| {
            kafka_err(
                format!("cannot read the offsets of consumer {consumer:?}"),
                e,
            )
        })?;
        Ok(
            match committed
                .find_partition(&self.kafka_topic, partition as i32)
                .map(|e| e.offset())
            {
                Some(Offset::Offset(n)) if n >= 0 => n as u64,
                _ => 0,
            },
        )
    }

    fn store_offset(&self, consumer: &str, partition: usize, next: EventId) -> Result<()> {
        self.check_partition(partition)?;
        let c = self.offset_client(consumer)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(
            &self.kafka_topic,
            partition as i32,
            Offset::Offset(next as i64),
        )
        .map_err(|e| kafka_err("bad offset", e))?;
        c.commit(&tpl, CommitMode::Sync).map_err(|e| {
            kafka_err(
                format!("cannot commit the offset of consumer {consumer:?}"),
                e,
            )
        })
    }

    fn open_reader(
        &self,
        consumer: &str,
        partitions: &[usize],
        options: &Value,
    ) -> Result<Option<Box<dyn PartitionReader>>> {
        let overrides = config::overrides(options)?;
        let mut reader = self.new_reader(consumer, &overrides)?;
        // Assign every partition at once, at the consumer's committed positions, so that all
        // of them start fetching together.
        let starts: Vec<(usize, u64)> = partitions
            .iter()
            .map(|&p| self.load_offset(consumer, p).map(|o| (p, o)))
            .collect::<Result<_>>()?;
        reader.assign_all(&starts)?;
        Ok(Some(Box::new(reader)))
    }

    fn for_producer(&self, options: &Value) -> Result<Option<Arc<dyn TopicBackend>>> {
        let overrides = config::overrides(options)?;
        if overrides.is_empty() {
            return Ok(None);
        }
        Ok(Some(Arc::new(KafkaTopic {
            name: self.name.clone(),
            kafka_topic: self.kafka_topic.clone(),
            partitions: self.partitions,
            components: self.components.clone(),
            config: self.config.clone(),
            producer_base: self.producer_base.clone(),
            producer_overrides: overrides,
            writer: Mutex::new(None),
            offset_clients: Mutex::new(HashMap::new()),
        })))
    }
}

/// A consumer's cursor: explicitly assigned partitions, records buffered per partition.
struct KafkaReader {
    consumer: BaseConsumer,
    topic: String,
    buffers: HashMap<usize, VecDeque<StoredEvent>>,
    /// Partition -> the offset the consumer is positioned at (next record it will return).
    assigned: HashMap<usize, u64>,
    at_end: HashMap<usize, bool>,
}

impl KafkaReader {
    /// Assigns `(partition, offset)` pairs in one call.
    fn assign_all(&mut self, starts: &[(usize, u64)]) -> Result<()> {
        if starts.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for &(p, offset) in starts {
            tpl.add_partition_offset(&self.topic, p as i32, Offset::Offset(offset as i64))
                .map_err(|e| kafka_err("bad offset", e))?;
        }
        self.consumer
            .incremental_assign(&tpl)
            .map_err(|e| kafka_err("cannot assign partitions", e))?;
        for &(p, offset) in starts {
            self.assigned.insert(p, offset);
        }
        Ok(())
    }

    fn position(&mut self, partition: usize, from: u64) -> Result<()> {
        let buffered_from = self
            .buffers
            .get(&partition)
            .and_then(|b| b.front())
            .map(|e| e.id);
        match (self.assigned.get(&partition), buffered_from) {
            (Some(_), Some(first)) if first == from => return Ok(()),
            (Some(&next), None) if next == from => return Ok(()),
            _ => {}
        }
        self.buffers.remove(&partition);
        self.at_end.insert(partition, false);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, partition as i32, Offset::Offset(from as i64))
            .map_err(|e| kafka_err("bad offset", e))?;
        if self.assigned.contains_key(&partition) {
            self.consumer
                .incremental_unassign(&tpl)
                .map_err(|e| kafka_err(format!("cannot reposition on partition {partition}"), e))?;
        }
        self.consumer
            .incremental_assign(&tpl)
            .map_err(|e| kafka_err(format!("cannot assign partition {partition}"), e))?;
        self.assigned.insert(partition, from);
        Ok(())
    }
}

impl KafkaReader {
    /// Buffers one polled record under its partition.
    fn ingest(&mut self, p: usize, offset: u64, value: Bytes) -> Result<()> {
        let event = match decode_record(value, &self.topic, p, offset)? {
            Some((metadata, data)) => StoredEvent {
                descriptor: None,
                id: offset,
                data_size: data.len() as u64,
                data_location: offset,
                data: Some(data),
                metadata,
            },
            None => {
                // An Octopus end-of-stream record: one producer ended this partition.
                let mut md = Vec::new();
                crate::components::encode_length_prefixed_for_marker(&mut md);
                StoredEvent {
                    descriptor: None,
                    id: offset,
                    metadata: Bytes::from(md),
                    data_size: 0,
                    data_location: offset,
                    data: Some(Bytes::new()),
                }
            }
        };
        self.assigned.insert(p, offset + 1);
        self.at_end.insert(p, false);
        self.buffers.entry(p).or_default().push_back(event);
        Ok(())
    }

    /// Polls once; false when nothing came (or `partition` reached its end).
    fn poll_once(&mut self, partition: usize, wait: Duration) -> Result<bool> {
        let record = match self.consumer.poll(wait) {
            Some(Ok(m)) => Some((
                m.partition() as usize,
                m.offset().max(0) as u64,
                Bytes::copy_from_slice(m.payload().unwrap_or(&[])),
            )),
            Some(Err(KafkaError::PartitionEOF(p))) => {
                self.at_end.insert(p as usize, true);
                return Ok(p as usize != partition);
            }
            Some(Err(e)) => return Err(kafka_err(format!("cannot read {}", self.topic), e)),
            None => None,
        };
        match record {
            Some((p, offset, value)) => {
                self.ingest(p, offset, value)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

impl PartitionReader for KafkaReader {
    fn prefetches(&self) -> bool {
        true
    }

    fn fetch(
        &mut self,
        partition: usize,
        from: EventId,
        max_events: usize,
        _with_data: bool,
    ) -> Result<Vec<StoredEvent>> {
        self.position(partition, from)?;
        let buffered = |r: &Self| r.buffers.get(&partition).map_or(0, VecDeque::len);
        // Wait a little for the first record of this partition (not when it is known to be at
        // its end: then only take what is already there)...
        let wait_for = if self.at_end.get(&partition).copied().unwrap_or(false) {
            Duration::ZERO
        } else {
            Duration::from_millis(20)
        };
        let deadline = Instant::now() + wait_for;
        while buffered(self) == 0 {
            let wait = deadline.saturating_duration_since(Instant::now());
            if !self.poll_once(partition, wait)? || Instant::now() >= deadline {
                break;
            }
        }
        // ...then take whatever else is already there, without waiting.
        while buffered(self) > 0 && buffered(self) < max_events {
            if !self.poll_once(partition, Duration::ZERO)? {
                break;
            }
        }
        let buf = self.buffers.entry(partition).or_default();
        let n = buf.len().min(max_events);
        Ok(buf.drain(..n).collect())
    }
}
