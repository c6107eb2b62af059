//! Producer liveness on Kafka: every producer's heartbeat is a record of a compacted side topic,
//! `__producers_<topic>` (in the driver's namespace), keyed by the producer. A producer writes
//! its record every `lease_interval_ms` and a tombstone when it ends cleanly; consumers tail the
//! side topic and keep the last record of every key (see [`crate::drivers::heartbeats`] for
//! how ages are measured). The side topic is created by the first producer that announces itself,
//! so topics made by other clients (the C++ driver) get one too.

use super::context::{Access, Ctx};
use super::{kafka_err, ADMIN_TIMEOUT, REQUEST_TIMEOUT};
use crate::drivers::heartbeats::{Heartbeat, HeartbeatStore};
use crate::error::Result;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Producers' heartbeats as records of the side topic.
pub(super) struct KafkaHeartbeats {
    producer: BaseProducer<Ctx>,
    topic: String,
}

impl KafkaHeartbeats {
    /// Writes to side topic `topic`, creating it (one partition, compacted, as replicated as
    /// `data_topic`) if it does not exist.
    pub(super) fn new(access: &Access, topic: &str, data_topic: &str) -> Result<Self> {
        let producer: BaseProducer<Ctx> = access.create(
            "a Kafka producer for liveness leases",
            &[("allow.auto.create.topics", "false"), ("linger.ms", "0")],
            &BTreeMap::new(),
        )?;
        let md = producer
            .client()
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map_err(|e| kafka_err("cannot read the cluster's metadata", e))?;
        let exists = md.topics().iter().any(|t| t.name() == topic);
        if !exists {
            let replication = md
                .topics()
                .iter()
                .find(|t| t.name() == data_topic)
                .and_then(|t| t.partitions().first())
                .map_or(1, |p| p.replicas().len().max(1)) as i32;
            let admin: AdminClient<Ctx> =
                access.create("the Kafka admin client", &[], &BTreeMap::new())?;
            let new = NewTopic::new(topic, 1, TopicReplication::Fixed(replication))
                .set("cleanup.policy", "compact");
            let results = futures_executor::block_on(admin.create_topics(
                [&new],
                &AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT)),
            ))
            .map_err(|e| kafka_err(format!("cannot create the lease topic {topic:?}"), e))?;
            for r in results {
                match r {
                    Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((t, code)) => {
                        return Err(kafka_err(
                            format!("cannot create the lease topic {t:?}"),
                            code,
                        ))
                    }
                }
            }
        }
        Ok(KafkaHeartbeats {
            producer,
            topic: topic.to_string(),
        })
    }

    fn send(&self, key: &str, payload: Option<&[u8]>) -> Result<()> {
        let mut record = BaseRecord::<str, [u8]>::to(&self.topic)
            .partition(0)
            .key(key);
        if let Some(p) = payload {
            record = record.payload(p);
        }
        self.producer
            .send(record)
            .map_err(|(e, _)| kafka_err(format!("cannot write to {}", self.topic), e))?;
        self.producer
            .flush(REQUEST_TIMEOUT)
            .map_err(|e| kafka_err(format!("cannot write to {}", self.topic), e))
    }
}

impl HeartbeatStore for KafkaHeartbeats {
    fn write(&self, key: &str, beat: &Heartbeat) -> Result<()> {
        self.send(key, Some(&beat.to_json()))
    }

    fn withdraw(&self, key: &str) -> Result<()> {
        self.send(key, None)
    }
}

/// How long a consumer's first look at the side topic waits for its end.
const FIRST_READ: Duration = Duration::from_secs(5);

/// A consumer's view of the side topic: the last record of every producer.
pub(super) struct LeaseReader {
    consumer: BaseConsumer<Ctx>,
    topic: String,
    records: HashMap<String, Heartbeat>,
    /// The end of the side topic was reached once.
    caught_up: bool,
}

impl LeaseReader {
    /// Reads side topic `topic` from its beginning (`None` when it does not exist: no producer
    /// ever announced itself).
    pub(super) fn open(access: &Access, topic: &str) -> Result<Option<Self>> {
        let consumer = access.side_topic_reader("diaspora-lease-reader")?;
        let md = consumer
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map_err(|e| kafka_err("cannot read the cluster's metadata", e))?;
        if !md.topics().iter().any(|t| t.name() == topic) {
            return Ok(None);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .map_err(|e| kafka_err("cannot assign the lease topic", e))?;
        consumer
            .assign(&tpl)
            .map_err(|e| kafka_err("cannot assign the lease topic", e))?;
        Ok(Some(LeaseReader {
            consumer,
            topic: topic.to_string(),
            records: HashMap::new(),
            caught_up: false,
        }))
    }

    /// Reads what was written since the last call; returns every producer's last record.
    pub(super) fn read(&mut self) -> Result<Vec<(String, Heartbeat)>> {
        // The first time, wait (a while) for the end of the topic; then take what has come.
        let deadline = Instant::now() + FIRST_READ;
        loop {
            let wait = if self.caught_up {
                Duration::from_millis(50)
            } else {
                Duration::from_millis(100)
            };
            match self.consumer.poll(wait) {
                Some(Ok(m)) => {
                    let Some(key) = m.key().map(|k| String::from_utf8_lossy(k).into_owned()) else {
                        continue;
                    };
                    match m.payload() {
                        None | Some([]) => {
                            self.records.remove(&key);
                        }
                        Some(p) => {
                            let source = format!("kafka:{} offset {}", self.topic, m.offset());
                            self.records.insert(key, Heartbeat::from_json(p, &source)?);
                        }
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    self.caught_up = true;
                    break;
                }
                None if self.caught_up || Instant::now() >= deadline => {
                    self.caught_up = true;
                    break;
                }
                None => {}
                Some(Err(e)) => return Err(kafka_err(format!("cannot read {}", self.topic), e)),
            }
        }
        Ok(self
            .records
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
