//! An open topic ([`MofkaTopic`]): its partitions, components and producer, and the
//! [`TopicBackend`] methods, which hand the work to the producer path ([`super::producer`]),
//! the consumer path ([`super::consumer`]) and data reads ([`super::data`]).

use super::mofka_err;
use super::own_keys::{load_position, store_position, Leases};
use super::partitions::Partitions;
use super::producer::Writer;
use crate::backend::{
    BatchCallback, BatchIds, DataRead, EventBatch, PartitionReader, ProducerInfo, ProducerLease,
    StoredEvent, TopicBackend,
};
use crate::components::TopicComponents;
use crate::drivers::heartbeats::{producer_key, HeartbeatWatch, Renewer};
use crate::drivers::mofka::wire::*;
use crate::error::Result;
use crate::metadata::PartitionInfo;
use crate::types::EventId;
use serde_json::Value;
use std::sync::Arc;

/// An open Mofka topic.
#[derive(Clone)]
pub(super) struct MofkaTopic {
    /// Its partitions (and its name).
    partitions: Partitions,
    components: TopicComponents,
    /// What its producer adds: the name and flag its batches carry, and its pipeline.
    writer: Writer,
    /// How long each producer's liveness lease has stood still.
    watch: Arc<HeartbeatWatch>,
}

impl MofkaTopic {
    /// The topic with `partitions` and `components`, as opened (for a producer without
    /// options).
    pub(super) fn new(partitions: Partitions, components: TopicComponents) -> MofkaTopic {
        MofkaTopic {
            partitions,
            components,
            writer: Writer::new(),
            watch: Arc::default(),
        }
    }
}

impl TopicBackend for MofkaTopic {
    fn name(&self) -> &str {
        &self.partitions.topic
    }

    fn partitions(&self) -> Vec<PartitionInfo> {
        self.partitions
            .list
            .iter()
            .map(|p| p.info.clone())
            .collect()
    }

    fn components(&self) -> TopicComponents {
        self.components.clone()
    }

    fn append_batch(&self, partition: usize, batch: &EventBatch) -> Result<BatchIds> {
        // The asynchronous path keeps the batch's memory exposed until Mercury is done with
        // the request, even when it times out: wait for its outcome.
        let (tx, rx) = std::sync::mpsc::channel();
        self.append_batch_async(
            partition,
            batch.clone(),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv()
            .unwrap_or_else(|_| Err(mofka_err("a batch was dropped without an outcome")))
    }

    fn append_batch_async(&self, partition: usize, batch: EventBatch, done: BatchCallback) {
        self.writer
            .send_batch(&self.partitions, partition, batch, done);
    }

    fn open_reader(
        &self,
        consumer: &str,
        partitions: &[usize],
        options: &Value,
    ) -> Result<Option<Box<dyn PartitionReader>>> {
        self.partitions
            .open_subscription(consumer, partitions, options)
            .map(Some)
    }

    fn for_producer(&self, options: &Value) -> Result<Option<Arc<dyn TopicBackend>>> {
        Ok(self.writer.for_options(options)?.map(|writer| {
            Arc::new(MofkaTopic {
                writer,
                ..self.clone()
            }) as Arc<dyn TopicBackend>
        }))
    }

    fn sync(&self, _partitions: &[usize]) -> Result<()> {
        // A batch is acknowledged once the partition stored it: nothing is pending here.
        Ok(())
    }

    fn fetch(
        &self,
        partition: usize,
        from: EventId,
        max_events: usize,
        with_data: bool,
    ) -> Result<Vec<StoredEvent>> {
        self.partitions
            .fetch_from_start(partition, from, max_events, with_data)
    }

    fn read_data(
        &self,
        partition: usize,
        event: &StoredEvent,
        ranges: &[(u64, u64)],
        dst: &mut [&mut [u8]],
    ) -> Result<()> {
        let mut reads = [DataRead {
            event,
            ranges,
            dst: dst.iter_mut().map(|d| &mut **d).collect(),
        }];
        self.read_data_many(partition, &mut reads)
            .pop()
            .unwrap_or(Ok(()))
    }

    fn read_data_many(&self, partition: usize, reads: &mut [DataRead<'_>]) -> Vec<Result<()>> {
        self.partitions.read_many(partition, reads)
    }

    fn load_offset(&self, consumer: &str, partition: usize) -> Result<EventId> {
        self.partitions.partition(partition)?;
        load_position(
            &self.partitions.shared,
            &self.partitions.topic,
            partition,
            consumer,
        )
    }

    fn store_offset(&self, consumer: &str, partition: usize, next: EventId) -> Result<()> {
        if next == 0 {
            return Ok(());
        }
        // The service's cursor, which feeds a consumer of this name (also one of Mofka's own
        // clients), then the position this library reads back.
        let r: AckEventResponse = self.partitions.call(
            partition,
            Rpc::AckEvent,
            &AckEventRequest {
                consumer_name: consumer.to_string(),
                event_id: next - 1,
            },
        )?;
        r.into_result().map_err(|e| {
            mofka_err(format!(
                "acknowledgement refused by partition {partition}: {e}"
            ))
        })?;
        store_position(
            &self.partitions.shared,
            &self.partitions.topic,
            partition,
            consumer,
            next,
        )
    }

    fn announce_producer(&self, info: &ProducerInfo) -> Result<Option<Arc<dyn ProducerLease>>> {
        let shared = self.partitions.shared.clone();
        let Some(interval) = shared.lease_interval else {
            return Ok(None);
        };
        let store = Leases::new(shared, &self.partitions.topic);
        let lease = Renewer::start("mofka", Arc::new(store), producer_key(info), info, interval)?;
        Ok(Some(Arc::new(lease)))
    }

    fn producers(&self) -> Result<Option<Vec<(ProducerInfo, std::time::Duration)>>> {
        if self.partitions.shared.lease_interval.is_none() {
            return Ok(None);
        }
        let leases = Leases::new(self.partitions.shared.clone(), &self.partitions.topic);
        Ok(Some(self.watch.ages(leases.read()?)))
    }

    fn liveness_from_first_look(&self) -> bool {
        true
    }
}
