//! An open topic ([`MofkaTopic`]): its partitions (server and provider of each) and the
//! [`TopicBackend`] methods, which hand the work to the producer path ([`super::producer`]),
//! the consumer path ([`super::consumer`]) and data reads ([`super::data`]).

use super::producer::PartitionSlots;
use super::shared::{mofka_err, Shared};
use crate::backend::{
    BatchCallback, BatchIds, DataRead, EventBatch, PartitionReader, StoredEvent, TopicBackend,
};
use crate::components::TopicComponents;
use crate::drivers::mofka::wire::*;
use crate::error::Result;
use crate::metadata::PartitionInfo;
use crate::types::EventId;
use serde_json::Value;
use std::sync::Arc;

/// Where one partition of a topic lives.
#[derive(Clone)]
pub(super) struct PartitionRef {
    /// The server's Mercury address.
    pub(super) address: String,
    /// The partition's provider id on that server.
    pub(super) provider_id: u16,
    /// The partition's document in the master database, as the application sees it.
    pub(super) info: PartitionInfo,
}

/// An open Mofka topic.
#[derive(Clone)]
pub(super) struct MofkaTopic {
    pub(super) name: String,
    pub(super) shared: Arc<Shared>,
    pub(super) partitions: Vec<PartitionRef>,
    pub(super) components: TopicComponents,
    /// The name `send_batch` carries (producer option `producer_name`).
    pub(super) producer_name: String,
    /// The `ack_early` flag `send_batch` carries on wire 0.9 (producer option `ack_early`).
    pub(super) ack_early: bool,
    /// The producer pipeline's partitions (one batch in flight each).
    pub(super) slots: Arc<PartitionSlots>,
}

impl MofkaTopic {
    /// Partition `p`, or an error naming the topic's partition count.
    pub(super) fn partition(&self, p: usize) -> Result<&PartitionRef> {
        crate::backend::partition_at(&self.name, &self.partitions, p)
    }

    /// Calls the provider of partition `p`.
    pub(super) fn call<Q: WireMessage, R: WireMessage>(
        &self,
        p: usize,
        rpc: Rpc,
        body: &Q,
    ) -> Result<R> {
        let part = self.partition(p)?;
        self.shared
            .caller
            .call(&part.address, rpc.name(), part.provider_id, body)
    }
}

impl TopicBackend for MofkaTopic {
    fn name(&self) -> &str {
        &self.name
    }

    fn partitions(&self) -> Vec<PartitionInfo> {
        self.partitions.iter().map(|p| p.info.clone()).collect()
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
        self.send_batch(partition, batch, done);
    }

    fn open_reader(
        &self,
        consumer: &str,
        partitions: &[usize],
        options: &Value,
    ) -> Result<Option<Box<dyn PartitionReader>>> {
        self.open_subscription(consumer, partitions, options)
            .map(Some)
    }

    fn for_producer(&self, options: &Value) -> Result<Option<Arc<dyn TopicBackend>>> {
        Ok(self
            .for_producer_options(options)?
            .map(|t| Arc::new(t) as Arc<dyn TopicBackend>))
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
        self.fetch_from_start(partition, from, max_events, with_data)
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
        self.read_many(partition, reads)
    }

    fn load_offset(&self, _consumer: &str, partition: usize) -> Result<EventId> {
        // The service keeps the cursor and feeds from it.
        self.partition(partition)?;
        Ok(0)
    }

    fn store_offset(&self, consumer: &str, partition: usize, next: EventId) -> Result<()> {
        if next == 0 {
            return Ok(());
        }
        let r: AckEventResponse = self.call(
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
        })
    }
}
