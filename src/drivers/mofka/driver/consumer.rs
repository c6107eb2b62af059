//! The consumer path: subscriptions (`request_events`, `remove_consumer`), the `recv_batch`
//! handler that fills each subscription's inbox with the events the partitions send, the
//! readers consumers pull from (with the liveness check of their servers), and the one-off
//! reads of [`TopicBackend::fetch`](crate::backend::TopicBackend::fetch); subscriptions and
//! fetches are methods of a topic's [`Partitions`].

use super::config::{ConsumerOptions, DEFAULT_BATCH_SIZE};
use super::discovery::MASTER_QUERY;
use super::partitions::Partitions;
use super::shared::Shared;
use super::state::Inbox;
use super::{lock, mofka_err};
use crate::backend::{PartitionReader, StoredEvent};
use crate::drivers::mofka::rpc::{decode_request, encode_request, respond};
use crate::drivers::mofka::wire::layout::{decode_descriptors, decode_sizes, split_entries};
use crate::drivers::mofka::wire::*;
use crate::error::Result;
use crate::margo::rpc_id;
use crate::mercury::{ForwardToken, Request};
use crate::types::{EventId, NO_MORE_EVENTS};
use bytes::Bytes;
use serde_json::Value;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Registers the `recv_batch` handler (provider id 0) that fills consumer inboxes.
pub(super) fn register_recv_batch(shared: &Arc<Shared>) -> Result<()> {
    let weak: Weak<Shared> = Arc::downgrade(shared);
    shared
        .caller
        .engine
        .register(rpc_id(Rpc::RecvBatch.name(), 0), move |request: Request| {
            let Some(shared) = weak.upgrade() else {
                return;
            };
            let version = shared.caller.version;
            let result = receive(&shared, request.input());
            let body = RecvBatchResponse::from(result.map_err(|e| e.to_string()));
            respond(request, version, &body);
        })
}

/// Handles one `recv_batch`: pulls the batch's metadata and descriptors into the inbox of its
/// subscription, or queues the end-of-stream marker of a complete partition.
fn receive(shared: &Shared, input: &[u8]) -> Result<()> {
    let q: RecvBatchRequest = decode_request(shared.caller.version, input)?;
    let inbox = lock(&shared.inboxes).get(&q.consumer_ctx).cloned();
    let Some(inbox) = inbox else {
        return Err(mofka_err(format!(
            "no subscription with context {:#x}",
            q.consumer_ctx
        )));
    };
    let result = fill_inbox(shared, &inbox, &q);
    if let Err(e) = &result {
        // The service will not send this batch again: the consumer must hear of it instead of
        // skipping its events (its next fetch reports the first such error).
        let mut st = lock(&inbox.state);
        st.error.get_or_insert_with(|| {
            format!(
                "partition {}: a batch of {} events from id {} could not be received: {e}",
                q.partition_index, q.count, q.first_id
            )
        });
        drop(st);
        inbox.changed.notify_all();
    }
    result
}

/// Puts the events of batch `q` (or the end-of-stream marker it announces) into `inbox`.
fn fill_inbox(shared: &Shared, inbox: &Inbox, q: &RecvBatchRequest) -> Result<()> {
    if q.count == 0 {
        // Mofka's `NoMoreEvents`: an empty batch whose first id is `u64::MAX`.
        if q.first_id == NO_MORE_EVENTS {
            // The partition is complete and will never have more events: hand the engine an
            // end-of-stream marker for it (one producer, the partition itself, ended).
            let mut md = Vec::new();
            crate::components::encode_length_prefixed_for_marker(&mut md);
            let mut st = lock(&inbox.state);
            st.queues
                .entry(q.partition_index)
                .or_default()
                .push_back(StoredEvent {
                    metadata_verified: false,
                    id: NO_MORE_EVENTS - 1,
                    metadata: Bytes::from(md),
                    data_size: 0,
                    data_location: 0,
                    data: Some(Bytes::new()),
                    descriptor: None,
                });
            st.queued += 1;
            drop(st);
            inbox.changed.notify_all();
        }
        return Ok(());
    }
    let meta_sizes = decode_sizes(&shared.caller.pull(&q.metadata_sizes)?)?;
    let meta = shared.caller.pull(&q.metadata)?;
    let desc_sizes = shared.caller.pull(&q.descriptor_sizes)?;
    let desc = shared.caller.pull(&q.descriptors)?;
    let entries = split_entries(&meta_sizes, &meta)?;
    let descriptors = decode_descriptors(&desc_sizes, &desc)?;
    if entries.len() as u64 != q.count || descriptors.len() as u64 != q.count {
        return Err(mofka_err(format!(
            "batch of {} events carries {} metadata and {} descriptors",
            q.count,
            entries.len(),
            descriptors.len()
        )));
    }
    // No back-pressure here: a real service holds its partition's lock while it feeds a
    // consumer, so an answer held back would stall the partition's producers too.
    let mut st = lock(&inbox.state);
    let queue = st.queues.entry(q.partition_index).or_default();
    for (i, (m, d)) in entries.iter().zip(descriptors).enumerate() {
        queue.push_back(StoredEvent {
            metadata_verified: false,
            id: q.first_id + i as u64,
            metadata: Bytes::copy_from_slice(m),
            data_size: d.size(),
            data_location: 0,
            data: None,
            descriptor: Some(d),
        });
    }
    st.queued += q.count as usize;
    drop(st);
    inbox.changed.notify_all();
    Ok(())
}

impl Partitions {
    /// Subscribes `ctx` to partitions `parts` under consumer name `name`.
    fn subscribe(
        &self,
        ctx: u64,
        name: &str,
        parts: &[usize],
        batch_size: u64,
    ) -> Result<Arc<Inbox>> {
        let inbox = Arc::new(Inbox::default());
        lock(&self.shared.inboxes).insert(ctx, inbox.clone());
        for &p in parts {
            let r: Result<RequestEventsResponse> = self.call(
                p,
                Rpc::RequestEvents,
                &RequestEventsRequest {
                    consumer_ctx: ctx,
                    partition_index: p as u64,
                    consumer_name: name.to_string(),
                    count: 0,
                    batch_size,
                },
            );
            if let Err(e) = r.and_then(|r| r.into_result().map_err(mofka_err)) {
                self.unsubscribe(ctx, parts);
                return Err(e);
            }
        }
        Ok(inbox)
    }

    /// Ends the subscription `ctx` to `parts` (errors are ignored: the service may be gone).
    fn unsubscribe(&self, ctx: u64, parts: &[usize]) {
        for &p in parts {
            let _: Result<RemoveConsumerResponse> = self.call(
                p,
                Rpc::RemoveConsumer,
                &RemoveConsumerRequest {
                    consumer_ctx: ctx,
                    partition_index: p as u64,
                },
            );
        }
        lock(&self.shared.inboxes).remove(&ctx);
    }

    /// A reader for consumer `consumer` over `partitions`, subscribed to them.
    pub(super) fn open_subscription(
        &self,
        consumer: &str,
        partitions: &[usize],
        options: &Value,
    ) -> Result<Box<dyn PartitionReader>> {
        for &p in partitions {
            self.partition(p)?;
        }
        let options = ConsumerOptions::parse(options)?;
        let ctx = self.shared.new_ctx();
        let inbox = self.subscribe(ctx, consumer, partitions, options.batch_size)?;
        Ok(Box::new(MofkaReader {
            topic: self.clone(),
            ctx,
            inbox,
            subscribed: partitions.to_vec(),
            last_alive: Instant::now(),
        }))
    }

    /// Up to `max_events` events of `partition` from id `from`, read under a fresh consumer
    /// name. Mofka has no random access: subscribe under a fresh name (cursor 0), skip to
    /// `from`, and stop when the feed has been quiet for a moment.
    pub(super) fn fetch_from_start(
        &self,
        partition: usize,
        from: EventId,
        max_events: usize,
        with_data: bool,
    ) -> Result<Vec<StoredEvent>> {
        self.partition(partition)?;
        let ctx = self.shared.new_ctx();
        let name = format!("diaspora-fetch-{ctx:x}");
        let inbox = self.subscribe(ctx, &name, &[partition], DEFAULT_BATCH_SIZE)?;
        // The feed says nothing when the partition has no (more) events: stop once it has
        // been quiet for a while, waiting longer for the first batch (lookups and pulls).
        let (first_wait, quiet) = (Duration::from_secs(2), Duration::from_millis(200));
        let mut out = Vec::new();
        let start = Instant::now();
        let mut last: Option<Instant> = None;
        {
            let mut st = lock(&inbox.state);
            while out.len() < max_events {
                let q = st.queues.entry(partition as u64).or_default();
                if let Some(ev) = q.pop_front() {
                    st.queued -= 1;
                    last = Some(Instant::now());
                    // Skip what precedes `from`, and the end-of-stream marker of a complete
                    // partition (not an event of the log).
                    if ev.id >= from && ev.id < NO_MORE_EVENTS - 1 {
                        out.push(ev);
                    }
                    continue;
                }
                let waited_enough = match last {
                    Some(t) => t.elapsed() >= quiet,
                    None => start.elapsed() >= first_wait,
                };
                if waited_enough {
                    break;
                }
                st = inbox
                    .changed
                    .wait_timeout(st, Duration::from_millis(20))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        self.unsubscribe(ctx, &[partition]);
        if with_data {
            self.fill_whole_data(partition, &mut out)?;
        }
        Ok(out)
    }
}

/// The data a fetch with data reads at most (past its first event): a partition may send
/// thousands of events in one batch, and a fetch waits for all of its data before the consumer
/// sees any of it.
const MAX_FETCH_DATA_BYTES: u64 = 128 << 20;

/// A consumer's subscription to some partitions.
struct MofkaReader {
    /// The topic's partitions.
    topic: Partitions,
    ctx: u64,
    inbox: Arc<Inbox>,
    /// The partitions subscribed to.
    subscribed: Vec<usize>,
    /// When the reader last got events or checked that its servers answer.
    last_alive: Instant,
}

impl MofkaReader {
    /// Servers feed consumers by calling them, so a consumer cannot tell a quiet partition
    /// from a dead server by waiting: after `liveness` without events, ask each server of
    /// the subscribed partitions a trivial Bedrock query; one that does not answer fails the
    /// fetch with an error naming it (and is asked again after another `liveness`).
    fn check_servers(&mut self) -> Result<()> {
        let Some(liveness) = self.topic.shared.liveness else {
            return Ok(());
        };
        if self.last_alive.elapsed() < liveness {
            return Ok(());
        }
        // One question per server, all in flight at once, each given at most `liveness` (or
        // the call timeout if shorter) to answer.
        let shared = &self.topic.shared;
        let wait = liveness.min(shared.caller.timeout);
        let payload = encode_request(
            shared.caller.version,
            &QueryConfigRequest {
                script: MASTER_QUERY.to_string(),
            },
        );
        type Asked = (crate::future::Future<Bytes>, ForwardToken);
        let mut asked: Vec<(usize, &str, Result<Asked>)> = Vec::new();
        for &p in &self.subscribed {
            let part = self.topic.partition(p)?;
            if asked.iter().any(|(_, a, _)| *a == part.address) {
                continue;
            }
            let sent = shared.caller.address(&part.address).map(|target| {
                shared.caller.engine.forward_cancellable(
                    &target,
                    rpc_id(Rpc::QueryConfig.name(), 0),
                    &payload,
                )
            });
            asked.push((p, &part.address, sent));
        }
        let deadline = Instant::now() + wait;
        let mut failure = None;
        for (p, address, sent) in asked {
            let answered = sent.and_then(|(f, token)| {
                f.wait_timeout(deadline.saturating_duration_since(Instant::now()))?
                    .ok_or_else(|| {
                        token.cancel();
                        mofka_err(format!("no answer within {wait:?}"))
                    })
            });
            if let Err(e) = answered {
                failure.get_or_insert_with(|| {
                    mofka_err(format!(
                        "partition {p}'s server {address} does not answer, the service may be \
                         down (no event for {} ms; {e})",
                        liveness.as_millis()
                    ))
                });
            }
        }
        self.last_alive = Instant::now();
        failure.map_or(Ok(()), Err)
    }
}

impl PartitionReader for MofkaReader {
    fn fetch(
        &mut self,
        partition: usize,
        from: EventId,
        max_events: usize,
        with_data: bool,
    ) -> Result<Vec<StoredEvent>> {
        let mut out = Vec::new();
        {
            let mut st = lock(&self.inbox.state);
            if let Some(e) = st.error.take() {
                return Err(mofka_err(e));
            }
            let (mut taken, mut bytes) = (0, 0u64);
            if let Some(q) = st.queues.get_mut(&(partition as u64)) {
                while out.len() < max_events && (!with_data || bytes < MAX_FETCH_DATA_BYTES) {
                    match q.pop_front() {
                        Some(ev) => {
                            taken += 1;
                            if ev.id >= from {
                                bytes += ev.data_size;
                                out.push(ev);
                            }
                        }
                        None => break,
                    }
                }
            }
            st.queued -= taken;
        }
        self.inbox.changed.notify_all();
        if out.is_empty() {
            self.check_servers()?;
        } else {
            self.last_alive = Instant::now();
        }
        if with_data {
            if let Err(e) = self.topic.fill_whole_data(partition, &mut out) {
                // Keep the events for the next fetch rather than lose them.
                self.unread(partition, out);
                return Err(e);
            }
        }
        Ok(out)
    }

    fn unread(&mut self, partition: usize, events: Vec<StoredEvent>) {
        let mut st = lock(&self.inbox.state);
        st.queued += events.len();
        let queue = st.queues.entry(partition as u64).or_default();
        for ev in events.into_iter().rev() {
            queue.push_front(ev);
        }
    }
}

impl Drop for MofkaReader {
    fn drop(&mut self) {
        self.topic.unsubscribe(self.ctx, &self.subscribed);
    }
}
