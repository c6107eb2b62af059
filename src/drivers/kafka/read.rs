//! Reading: a consumer's cursor over explicitly assigned partitions.

use super::context::Ctx;
use super::kafka_err;
use super::records::decode_record;
use crate::backend::{PartitionReader, StoredEvent};
use crate::error::Result;
use crate::types::EventId;
use bytes::Bytes;
use rdkafka::consumer::BaseConsumer;
use rdkafka::consumer::Consumer as _;
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// A consumer's cursor: explicitly assigned partitions, records buffered per partition.
pub(super) struct KafkaReader {
    pub(super) consumer: BaseConsumer<Ctx>,
    pub(super) topic: String,
    pub(super) buffers: HashMap<usize, VecDeque<StoredEvent>>,
    /// Partition -> the offset the consumer is positioned at (next record it will return).
    pub(super) assigned: HashMap<usize, u64>,
    pub(super) at_end: HashMap<usize, bool>,
}

impl KafkaReader {
    /// Assigns `(partition, offset)` pairs in one call.
    pub(super) fn assign_all(&mut self, starts: &[(usize, u64)]) -> Result<()> {
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

    pub(super) fn position(&mut self, partition: usize, from: u64) -> Result<()> {
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
    pub(super) fn ingest(&mut self, p: usize, offset: u64, value: Bytes) -> Result<()> {
        let event = match decode_record(value, &self.topic, p, offset)? {
            Some((metadata, data)) => StoredEvent {
                metadata_verified: false,
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
                    metadata_verified: false,
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
    pub(super) fn poll_once(&mut self, partition: usize, wait: Duration) -> Result<bool> {
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
