//! The producer path ([`Writer`]): a batch's metadata and data exposed for the partition to
//! pull (small data segments packed into one region), its `send_batch` request, and the
//! per-partition pipeline that keeps one batch in flight and the next one prepared, each sent
//! batch watched by the driver's watchdog (see [`super::state`]).

use super::config::ProducerOptions;
use super::partitions::Partitions;
use super::shared::Shared;
use super::state::PendingBatch;
use super::{lock, mofka_err};
use crate::backend::{BatchCallback, BatchIds, EventBatch};
use crate::drivers::mofka::rpc::{decode_response, encode_request};
use crate::drivers::mofka::wire::*;
use crate::error::{Error, Result};
use crate::margo::rpc_id;
use crate::mercury::{Address, LocalBulk};
use bytes::Bytes;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

/// A region `[sizes][segments...]` as the segments to expose: runs of segments smaller than
/// `threshold` are copied, with the sizes, into contiguous buffers, and larger segments are
/// exposed in place (zero-copy). Each segment of a bulk handle costs the service one transfer
/// operation on RDMA transports (a message over TCP), so a batch of many small events exposed
/// segment by segment is pulled far more slowly than the same bytes in one piece.
pub(super) fn pack_region<'a>(
    sizes: &[u64],
    segments: impl Iterator<Item = &'a Bytes>,
    threshold: usize,
) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut buf = layout::encode_sizes(sizes);
    for seg in segments.filter(|s| !s.is_empty()) {
        if seg.len() < threshold {
            buf.extend_from_slice(seg);
        } else {
            if !buf.is_empty() {
                out.push(Bytes::from(std::mem::take(&mut buf)));
            }
            out.push(seg.clone());
        }
    }
    if !buf.is_empty() {
        out.push(Bytes::from(buf));
    }
    out
}

/// Writes `[sizes][contents]` at the start of `region` (a kept buffer of at least `len`
/// bytes) and zeroes what follows up to `len` (the padding byte of an empty region).
fn fill_region<'a>(
    region: &mut LocalBulk,
    sizes: impl Iterator<Item = u64>,
    contents: impl Iterator<Item = &'a [u8]>,
    len: usize,
) {
    let buf = region.owned_mut().expect("kept regions own their memory");
    let mut at = 0;
    for size in sizes {
        buf[at..at + 8].copy_from_slice(&size.to_le_bytes());
        at += 8;
    }
    for c in contents {
        buf[at..at + c.len()].copy_from_slice(c);
        at += c.len();
    }
    buf[at..len].fill(0);
}

/// The first id of a batch from the answer to its `send_batch`.
fn decode_send_batch(version: WireVersion, partition: usize, reply: &[u8]) -> Result<BatchIds> {
    let first = decode_response::<SendBatchResponse>(version, reply, || {
        format!("mofka_producer_send_batch to partition {partition}")
    })?
    .into_result()
    .map_err(|e| mofka_err(format!("partition {partition} refused a batch: {e}")))?;
    Ok(BatchIds::Contiguous(first))
}

/// A batch ready to go: its exposed memory, its encoded request and where it goes.
struct ReadyBatch {
    bulks: Vec<LocalBulk>,
    payload: Vec<u8>,
    target: Address,
    provider_id: u16,
    pending: Arc<PendingBatch>,
}

/// Per partition: whether a batch is in flight, and the one prepared to follow it.
#[derive(Default)]
struct SlotState {
    busy: bool,
    next: Option<ReadyBatch>,
}

/// The producer side's partitions: one batch in flight each, and one more prepared, sent by
/// the completion of the first (on the thread that progresses) without waiting for another
/// thread.
#[derive(Default)]
pub(super) struct PartitionSlots {
    state: Mutex<HashMap<usize, SlotState>>,
    freed: Condvar,
}

impl PartitionSlots {
    /// Gives `ready` back when it must be sent now; otherwise it is queued behind the batch in
    /// flight, after waiting for the queue place if another batch holds it.
    fn submit(&self, partition: usize, ready: ReadyBatch) -> Option<ReadyBatch> {
        let mut state = lock(&self.state);
        loop {
            let slot = state.entry(partition).or_default();
            if !slot.busy {
                slot.busy = true;
                return Some(ready);
            }
            if slot.next.is_none() {
                slot.next = Some(ready);
                return None;
            }
            state = self.freed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Called when the partition's batch in flight completed: the batch to send next, if one
    /// is queued (the partition stays busy), or `None` (the partition is free).
    fn complete(&self, partition: usize) -> Option<ReadyBatch> {
        let mut state = lock(&self.state);
        let slot = state.entry(partition).or_default();
        let next = slot.next.take();
        slot.busy = next.is_some();
        drop(state);
        self.freed.notify_all();
        next
    }
}

/// What a producer adds to an open topic: the name and flag its `send_batch` requests carry
/// and its partitions' pipelines.
#[derive(Clone)]
pub(super) struct Writer {
    /// The name `send_batch` carries (producer option `producer_name`).
    producer_name: String,
    /// The `ack_early` flag `send_batch` carries on wire 0.9 (producer option `ack_early`).
    ack_early: bool,
    /// The producer pipeline's partitions (one batch in flight each).
    slots: Arc<PartitionSlots>,
}

impl Writer {
    /// The writer of a topic just opened: named `diaspora-rs-<pid>`, without `ack_early`.
    pub(super) fn new() -> Writer {
        Writer {
            producer_name: format!("diaspora-rs-{}", std::process::id()),
            ack_early: false,
            slots: Arc::default(),
        }
    }

    /// Exposes a batch's metadata and data for the partition to pull, and encodes the
    /// `send_batch` request. The bulks must live until the service answered.
    fn prepare_batch(
        &self,
        parts: &Partitions,
        partition: usize,
        batch: &EventBatch,
    ) -> Result<(Vec<LocalBulk>, Vec<u8>)> {
        parts.partition(partition)?;
        let shared = &parts.shared;
        let n = batch.len();
        // Metadata: `[sizes][serialized metadata]`, packed into a kept buffer.
        let meta_sizes = (0..n).map(|i| batch.metadata_of(i).len() as u64);
        // Same padding as for the data below when there is no metadata (possible with a
        // custom serializer).
        let meta_content = batch.metadata_bytes();
        let meta_len = 8 * n + meta_content.len().max(1);
        let mut meta_bulk = shared.take_region(meta_len)?;
        fill_region(
            &mut meta_bulk,
            meta_sizes,
            std::iter::once(meta_content),
            meta_len,
        );
        let metadata = shared.caller.describe_window(&meta_bulk, meta_len)?;
        // Data: `[sizes][segments]`. Segments of at least `pack_threshold` bytes are exposed
        // where they are (zero-copy); when there are none, the region is packed into a kept
        // buffer, else small runs are copied and the region exposed in pieces.
        let data_sizes: Vec<u64> = (0..n).map(|i| batch.data_of(i).size() as u64).collect();
        let segments = || (0..n).flat_map(|i| batch.data_of(i).segments().iter());
        let threshold = shared.pack_threshold;
        // A data region holding only the sizes makes Mofka 0.8.3's memory partition register
        // a zero-length segment, which Mercury's OFI plugin refuses once the partition holds
        // data (the segment's address is then not null). One byte of padding after the sizes
        // is stored and never referenced (every size says 0).
        let content: u64 = data_sizes.iter().sum();
        let (data_bulk, data) = if segments().all(|s| s.len() < threshold) {
            let len = 8 * n + (content as usize).max(1);
            let mut bulk = shared.take_region(len)?;
            fill_region(
                &mut bulk,
                data_sizes.iter().copied(),
                segments().map(|s| s.as_ref()),
                len,
            );
            let bref = shared.caller.describe_window(&bulk, len)?;
            (bulk, bref)
        } else {
            let mut data_segments = pack_region(&data_sizes, segments(), threshold);
            if content == 0 {
                data_segments.push(Bytes::from_static(&[0]));
            }
            shared.caller.expose(data_segments)?
        };
        let payload = encode_request(
            parts.shared.caller.version,
            &SendBatchRequest {
                producer_name: self.producer_name.clone(),
                count: n as u64,
                ack_early: self.ack_early,
                metadata,
                data,
            },
        );
        Ok((vec![meta_bulk, data_bulk], payload))
    }

    /// Sends `batch` to `partition` and reports its outcome to `done`. One batch is in
    /// flight per partition, like the C++ client: the service may handle two requests of one
    /// partition in any order. The next one is prepared meanwhile and sent by the completion
    /// of the first; batches for other partitions go out meanwhile.
    pub(super) fn send_batch(
        &self,
        parts: &Partitions,
        partition: usize,
        batch: EventBatch,
        done: BatchCallback,
    ) {
        let started = self
            .prepare_batch(parts, partition, &batch)
            .and_then(|(bulks, payload)| {
                let part = parts.partition(partition)?;
                Ok((
                    bulks,
                    payload,
                    parts.shared.caller.address(&part.address)?,
                    part.provider_id,
                ))
            });
        drop(batch);
        let (bulks, payload, target, provider_id) = match started {
            Ok(x) => x,
            Err(e) => {
                done(Err(e));
                return;
            }
        };
        let ready = ReadyBatch {
            bulks,
            payload,
            target,
            provider_id,
            pending: Arc::new(PendingBatch::new(partition, done)),
        };
        if let Some(ready) = self.slots.submit(partition, ready) {
            for (batch, e) in send_prepared(&parts.shared, &self.slots, ready) {
                batch.finish(Err(e));
            }
        }
    }

    /// The writer of one producer configured with `options` (`producer_name`, `ack_early`),
    /// with partition slots of its own; `None` when the options change nothing.
    pub(super) fn for_options(&self, options: &Value) -> Result<Option<Writer>> {
        let options = ProducerOptions::parse(options)?;
        if options.producer_name.is_none() && options.ack_early.is_none() {
            return Ok(None);
        }
        Ok(Some(Writer {
            producer_name: options
                .producer_name
                .unwrap_or_else(|| self.producer_name.clone()),
            ack_early: options.ack_early.unwrap_or(self.ack_early),
            slots: Arc::default(),
        }))
    }
}

/// Sends a prepared batch. When it cannot be sent at all, the partition's next prepared batch
/// is sent instead, and so on: the batches that failed that way are returned, in order, for
/// the caller to report after what it must report first.
///
/// A sent batch's completion (on the thread that progresses) sends the partition's next
/// prepared batch before reporting its own outcome, so that the service is not kept waiting for
/// another thread; the next batch's completion cannot run before this one returns, so
/// outcomes stay in the partition's order.
#[must_use]
fn send_prepared(
    shared: &Arc<Shared>,
    slots: &Arc<PartitionSlots>,
    ready: ReadyBatch,
) -> Vec<(Arc<PendingBatch>, Error)> {
    shared.prune_graveyard();
    let mut failed = Vec::new();
    let mut next = Some(ready);
    while let Some(ready) = next.take() {
        let ReadyBatch {
            bulks,
            payload,
            target,
            provider_id,
            pending,
        } = ready;
        let partition = pending.partition;
        let version = shared.caller.version;
        let completion = pending.clone();
        let (next_shared, next_slots) = (shared.clone(), slots.clone());
        let sent = shared.caller.engine.try_forward_then(
            &target,
            rpc_id(Rpc::SendBatch.name(), provider_id),
            &payload,
            Box::new(move |reply| {
                // Mercury is done with the request: its memory may go, except after a
                // cancellation, when the service may still be reading it (see `bury`).
                if completion.timed_out() {
                    next_shared.bury(bulks);
                } else {
                    next_shared.recycle(bulks);
                }
                let result = reply.and_then(|r| decode_send_batch(version, partition, &r));
                let failed = match next_slots.complete(partition) {
                    Some(next) => send_prepared(&next_shared, &next_slots, next),
                    None => Vec::new(),
                };
                completion.finish(result);
                for (batch, e) in failed {
                    batch.finish(Err(e));
                }
            }),
        );
        match sent {
            Ok(token) => {
                pending.set_token(token);
                shared
                    .watchdog
                    .watch(Instant::now() + shared.caller.timeout, &pending, partition);
            }
            // Never sent: Mercury holds none of its memory (the callback, dropped here,
            // owned the bulks).
            Err((e, _callback)) => {
                failed.push((pending, e));
                next = slots.complete(partition);
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(segments: &[Bytes]) -> Vec<u8> {
        segments.iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn pack_region_copies_small_segments_and_keeps_large_ones_in_place() {
        let small = [Bytes::from(vec![1u8; 10]), Bytes::from(vec![2u8; 20])];
        let large = Bytes::from(vec![3u8; 100]);
        let segs = [
            small[0].clone(),
            Bytes::new(),
            small[1].clone(),
            large.clone(),
            small[0].clone(),
        ];
        let sizes = [10, 0, 20, 100, 10];
        let out = pack_region(&sizes, segs.iter(), 50);
        // [sizes + 10 + 20], [100 in place], [10]
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].len(), 5 * 8 + 30);
        assert_eq!(
            out[1].as_ptr(),
            large.as_ptr(),
            "large segment must not be copied"
        );
        assert_eq!(out[2].len(), 10);
        // The bytes are the same as the unpacked region's.
        let mut expected = layout::encode_sizes(&sizes);
        for s in &segs {
            expected.extend_from_slice(s);
        }
        assert_eq!(region(&out), expected);
        // Threshold 0: every non-empty segment stays in place.
        let out = pack_region(&sizes, segs.iter(), 0);
        assert_eq!(out.len(), 5);
        assert_eq!(region(&out), expected);
        // Everything small: one contiguous region.
        let out = pack_region(&sizes, segs.iter(), usize::MAX);
        assert_eq!(out.len(), 1);
        assert_eq!(region(&out), expected);
    }
}
