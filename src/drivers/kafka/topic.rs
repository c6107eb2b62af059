//! An open Kafka topic: the driver API's data side, dispatching to producing and reading.

use super::config::KafkaConfig;
use super::context::{Access, Ctx};
use super::leases::{KafkaHeartbeats, LeaseReader};
use super::produce::Writer;
use super::read::KafkaReader;
use super::{kafka_err, partition_infos, REQUEST_TIMEOUT};
use crate::backend::{
    BatchCallback, BatchIds, EventBatch, PartitionReader, ProducerInfo, ProducerLease, StoredEvent,
    TopicBackend,
};
use crate::components::TopicComponents;
use crate::drivers::heartbeats::{producer_key, HeartbeatWatch, Renewer};
use crate::error::{Error, Result};
use crate::metadata::PartitionInfo;
use crate::types::EventId;
use rdkafka::consumer::Consumer as _;
use rdkafka::consumer::{BaseConsumer, CommitMode};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// An open Kafka topic.
pub(super) struct KafkaTopic {
    pub(super) name: String,
    pub(super) kafka_topic: String,
    pub(super) partitions: usize,
    pub(super) components: TopicComponents,
    pub(super) config: KafkaConfig,
    /// What its clients are made from.
    pub(super) access: Access,
    /// Its producing side.
    pub(super) writer: Writer,
    /// One consumer per consumer name, to load and commit its offsets.
    pub(super) offset_clients: Mutex<HashMap<String, Arc<BaseConsumer<Ctx>>>>,
    /// The producers' liveness leases, once a consumer looked at them.
    pub(super) leases: Mutex<Option<LeaseReader>>,
    /// How long each lease has stood still.
    pub(super) watch: HeartbeatWatch,
}

impl KafkaTopic {
    pub(super) fn check_partition(&self, p: usize) -> Result<()> {
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

    pub(super) fn offset_client(&self, consumer: &str) -> Result<Arc<BaseConsumer<Ctx>>> {
        let mut m = self
            .offset_clients
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(c) = m.get(consumer) {
            // Nothing else polls this client: run its callbacks (token renewals, errors).
            let _ = c.poll(std::time::Duration::ZERO);
            return Ok(c.clone());
        }
        let c: BaseConsumer<Ctx> = self.access.create(
            "a Kafka consumer",
            &[
                ("group.id", consumer),
                ("enable.auto.commit", "false"),
                ("allow.auto.create.topics", "false"),
            ],
            &BTreeMap::new(),
        )?;
        let c = Arc::new(c);
        m.insert(consumer.to_string(), c.clone());
        Ok(c)
    }

    pub(super) fn new_reader(
        &self,
        consumer: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<KafkaReader> {
        let c: BaseConsumer<Ctx> = self.access.create(
            "a Kafka consumer",
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
        )?;
        Ok(KafkaReader {
            consumer: c,
            topic: self.kafka_topic.clone(),
            buffers: HashMap::new(),
            assigned: HashMap::new(),
            at_end: HashMap::new(),
        })
    }
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
        self.writer.send_batch(partition, batch, done);
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

    /// The partition's high watermark: the offset the next record will get. (Probing with
    /// fetches, the default, would wait for a timeout at every id past the end.)
    fn end_id(&self, partition: usize) -> Result<EventId> {
        self.check_partition(partition)?;
        let reader = self.new_reader("diaspora-end", &BTreeMap::new())?;
        let (_, high) = reader
            .consumer
            .fetch_watermarks(&self.kafka_topic, partition as i32, REQUEST_TIMEOUT)
            .map_err(|e| {
                kafka_err(
                    format!(
                        "cannot read the end of partition {partition} of {:?}",
                        self.kafka_topic
                    ),
                    e,
                )
            })?;
        Ok(high.max(0) as EventId)
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
        let overrides = super::config::overrides(options)?;
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
        let overrides = super::config::overrides(options)?;
        if overrides.is_empty() {
            return Ok(None);
        }
        Ok(Some(Arc::new(KafkaTopic {
            name: self.name.clone(),
            kafka_topic: self.kafka_topic.clone(),
            partitions: self.partitions,
            components: self.components.clone(),
            config: self.config.clone(),
            access: self.access.clone(),
            writer: Writer::new(self.kafka_topic.clone(), self.access.clone(), overrides),
            offset_clients: Mutex::new(HashMap::new()),
            leases: Mutex::new(None),
            watch: HeartbeatWatch::default(),
        })))
    }

    fn announce_producer(&self, info: &ProducerInfo) -> Result<Option<Arc<dyn ProducerLease>>> {
        let Some(interval) = self.config.lease_interval else {
            return Ok(None);
        };
        let store = KafkaHeartbeats::new(
            &self.access,
            &self.config.lease_topic(&self.name),
            &self.kafka_topic,
        )?;
        let lease = Renewer::start("kafka", Arc::new(store), producer_key(info), info, interval)?;
        Ok(Some(Arc::new(lease)))
    }

    fn producers(&self) -> Result<Option<Vec<(ProducerInfo, std::time::Duration)>>> {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        if leases.is_none() {
            *leases = LeaseReader::open(&self.access, &self.config.lease_topic(&self.name))?;
        }
        let records = match leases.as_mut() {
            Some(reader) => reader.read()?,
            None => Vec::new(),
        };
        Ok(Some(self.watch.ages(records)))
    }

    fn liveness_from_first_look(&self) -> bool {
        true
    }
}
