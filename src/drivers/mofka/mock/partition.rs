//! The mock's partitions: Mofka providers of the `memory` type. `send_batch` pulls the
//! producer's metadata and data and assigns dense ids from 0; `request_events` starts a feed
//! that calls the consumer back with `recv_batch` from its name's cursor (ending with Mofka's
//! "no more events" once the partition is complete); `request_data` pushes selected bytes;
//! `ack_event` moves a name's cursor; `remove_consumer` stops a feed.

use super::{lock, serve, version, State};
use crate::descriptor::DataDescriptor;
use crate::drivers::mofka::rpc::respond;
use crate::drivers::mofka::wire::layout::{
    decode_sizes, encode_descriptors, encode_entries, MemoryLocation,
};
use crate::drivers::mofka::wire::*;
use crate::error::{Error, Result};
use crate::mercury::{BulkOp, RemoteBulk, RemoteRegion};
use crate::types::NO_MORE_EVENTS;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A partition's events, data and consumers.
#[derive(Default)]
pub(super) struct Log {
    /// Each event's metadata, by id.
    pub(super) metadata: Vec<Vec<u8>>,
    /// `(offset, size)` of each event's data in the partition's data space.
    pub(super) locations: Vec<(u64, u64)>,
    /// The data space: each batch's events' bytes (its data region without the sizes), by
    /// the offset where they start.
    pub(super) chunks: Vec<(u64, bytes::Bytes)>,
    /// Where the next batch's data region starts in the data space.
    pub(super) data_end: u64,
    /// The next event of each consumer name (moved by `ack_event`).
    pub(super) cursors: HashMap<String, u64>,
    /// Running feeds by `(consumer context, consumer address, partition index)`.
    pub(super) feeds: HashMap<(u64, String, u64), Arc<AtomicBool>>,
}

/// One partition of the `memory` type.
pub(super) struct Partition {
    /// The events.
    pub(super) log: Mutex<Log>,
    /// Notified when events are added, the partition completes or a feed stops.
    pub(super) grew: Condvar,
    /// No event will be added: feeds end with Mofka's "no more events" message.
    pub(super) complete: AtomicBool,
    /// The partition type it was started with (it behaves as `memory` whatever the type; the
    /// type is what Bedrock reports of it).
    pub(super) kind: String,
}

impl Partition {
    /// An empty partition of type `kind`.
    pub(super) fn new(kind: &str) -> Partition {
        Partition {
            kind: kind.to_string(),
            log: Mutex::new(Log::default()),
            grew: Condvar::new(),
            complete: AtomicBool::new(false),
        }
    }
}

/// Registers the handlers of partition provider `id`.
pub(super) fn register_partition(
    state: &Arc<State>,
    id: u16,
    partition: Arc<Partition>,
) -> Result<()> {
    let p = partition.clone();
    serve(
        state,
        Rpc::SendBatch.name(),
        id,
        move |state, q: SendBatchRequest, req| {
            let result = receive_batch(state, &p, &q).map_err(|e| e.to_string());
            respond(req, version(state), &SendBatchResponse::from(result));
        },
    )?;
    let p = partition.clone();
    serve(
        state,
        Rpc::RequestEvents.name(),
        id,
        move |state, q: RequestEventsRequest, req| {
            let source = req.source().map(|a| a.to_string());
            match source {
                Ok(address) => {
                    respond(req, version(state), &RequestEventsResponse::Ok(()));
                    start_feed(state, &p, q, address);
                }
                Err(e) => respond(
                    req,
                    version(state),
                    &RequestEventsResponse::Err(e.to_string()),
                ),
            }
        },
    )?;
    let p = partition.clone();
    serve(
        state,
        Rpc::RequestData.name(),
        id,
        move |state, q: RequestDataRequest, req| {
            state.data_requests.fetch_add(1, Ordering::SeqCst);
            let result = push_data(state, &p, &q).map_err(|e| e.to_string());
            let body = match result {
                Ok(()) => RequestDataResponse::Ok(vec![MofkaResult::Ok(())]),
                Err(e) => RequestDataResponse::Err(e),
            };
            respond(req, version(state), &body);
        },
    )?;
    let p = partition.clone();
    serve(
        state,
        Rpc::AckEvent.name(),
        id,
        move |state, q: AckEventRequest, req| {
            let mut log = lock(&p.log);
            let result = if q.event_id >= log.metadata.len() as u64 {
                AckEventResponse::Err(format!("event {} does not exist", q.event_id))
            } else {
                log.cursors.insert(q.consumer_name, q.event_id + 1);
                AckEventResponse::Ok(())
            };
            drop(log);
            respond(req, version(state), &result);
        },
    )?;
    let p = partition;
    serve(
        state,
        Rpc::RemoveConsumer.name(),
        id,
        move |state, q: RemoveConsumerRequest, req| {
            let address = req.source().map(|a| a.to_string()).unwrap_or_default();
            let stop = lock(&p.log)
                .feeds
                .remove(&(q.consumer_ctx, address, q.partition_index));
            if let Some(stop) = stop {
                stop.store(true, Ordering::SeqCst);
                p.grew.notify_all();
            }
            respond(req, version(state), &RemoveConsumerResponse::Ok(()));
        },
    )
}

fn receive_batch(state: &State, p: &Partition, q: &SendBatchRequest) -> Result<u64> {
    if p.complete.load(Ordering::SeqCst) {
        return Err(Error::Driver {
            driver: "mofka",
            message: "the partition is complete and takes no more events".into(),
        });
    }
    let metadata = state.caller.pull(&q.metadata)?;
    let data = bytes::Bytes::from(state.caller.pull(&q.data)?);
    let meta_spans = entry_spans(&metadata, q.count, "metadata")?;
    let metas: Vec<&[u8]> = meta_spans
        .iter()
        .map(|&(o, n)| &metadata[o as usize..(o + n) as usize])
        .collect();
    // Offsets of each event's data inside the pulled region (kept whole, without copying).
    let spans = if q.count > 0 && data.is_empty() {
        vec![(0u64, 0u64); q.count as usize]
    } else {
        entry_spans(&data, q.count, "data")?
    };
    // Like Mofka's memory partition, only the events' bytes are kept, appended to the
    // partition's data space: consecutive events' data follow each other, across batches.
    let content_start = spans.first().map_or(0, |s| s.0);
    let content_end = spans.iter().map(|s| s.0 + s.1).max().unwrap_or(0);
    let content = data.slice(content_start as usize..content_end.max(content_start) as usize);
    let mut log = lock(&p.log);
    let first = log.metadata.len() as u64;
    let base = log.data_end;
    for (m, &(offset, size)) in metas.iter().zip(&spans) {
        log.metadata.push(m.to_vec());
        log.locations.push((base + offset - content_start, size));
    }
    log.data_end += content.len() as u64;
    if !content.is_empty() {
        log.chunks.push((base, content));
    }
    drop(log);
    p.grew.notify_all();
    Ok(first)
}

/// `(offset, size)` of each entry of a `[count × u64 sizes][content]` region. Like Mofka's
/// memory partition, bytes after the last entry are accepted (and never referenced): clients
/// pad a region whose entries are all empty.
fn entry_spans(region: &[u8], count: u64, what: &str) -> Result<Vec<(u64, u64)>> {
    let bad = |reason: String| Error::Decode {
        what: "Mofka batch region",
        reason: format!("{what}: {reason}"),
    };
    let n = (count as usize).saturating_mul(8);
    let sizes = decode_sizes(
        region
            .get(..n)
            .ok_or_else(|| bad(format!("{} bytes cannot hold {count} sizes", region.len())))?,
    )?;
    let mut offset = n as u64;
    let mut spans = Vec::with_capacity(sizes.len());
    for size in sizes {
        let end = offset
            .checked_add(size)
            .filter(|&e| e <= region.len() as u64)
            .ok_or_else(|| {
                bad(format!(
                    "entry sizes exceed the {} bytes received",
                    region.len()
                ))
            })?;
        spans.push((offset, size));
        offset = end;
    }
    Ok(spans)
}

fn start_feed(state: &Arc<State>, p: &Arc<Partition>, q: RequestEventsRequest, address: String) {
    let stop = Arc::new(AtomicBool::new(false));
    let start = {
        let mut log = lock(&p.log);
        log.feeds.insert(
            (q.consumer_ctx, address.clone(), q.partition_index),
            stop.clone(),
        );
        log.cursors.get(&q.consumer_name).copied().unwrap_or(0)
    };
    let (state, p) = (state.clone(), p.clone());
    let spawned = std::thread::Builder::new()
        .name("mofka-mock-feed".into())
        .spawn(move || {
            if let Err(e) = feed(&state, &p, &q, &address, start, &stop) {
                if !stop.load(Ordering::SeqCst) && !state.stopping.load(Ordering::SeqCst) {
                    eprintln!("mofka mock: feed of {address} stopped: {e}");
                }
            }
            lock(&p.log)
                .feeds
                .remove(&(q.consumer_ctx, address.clone(), q.partition_index));
        });
    if let Err(e) = spawned {
        eprintln!("mofka mock: could not start a feed: {e}");
    }
}

fn feed(
    state: &State,
    p: &Partition,
    q: &RequestEventsRequest,
    address: &str,
    mut pos: u64,
    stop: &AtomicBool,
) -> Result<()> {
    let batch_size = q.batch_size.max(1);
    loop {
        // Like Mofka's memory partition, the partition stays locked while the consumer takes a
        // batch: producers (and acknowledgements) of this partition wait meanwhile.
        let (metas, descs, log) = {
            let mut log = lock(&p.log);
            loop {
                if stop.load(Ordering::SeqCst) || state.stopping.load(Ordering::SeqCst) {
                    return Ok(());
                }
                if (log.metadata.len() as u64) > pos {
                    break;
                }
                if p.complete.load(Ordering::SeqCst) {
                    drop(log);
                    return send_no_more_events(state, q, address);
                }
                log = p
                    .grew
                    .wait_timeout(log, Duration::from_millis(100))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            let end = (log.metadata.len() as u64).min(pos + batch_size);
            let range = pos as usize..end as usize;
            let metas: Vec<Vec<u8>> = log.metadata[range.clone()].to_vec();
            let descs: Vec<DataDescriptor> = log.locations[range]
                .iter()
                .map(|&(offset, size)| {
                    let loc = MemoryLocation { offset, size };
                    DataDescriptor::new(loc.to_bytes().to_vec(), size)
                })
                .collect();
            (metas, descs, log)
        };
        let count = metas.len() as u64;
        let (meta_sizes, meta_content) = encode_entries(&metas);
        let (desc_sizes, desc_content) = encode_descriptors(&descs);
        let (ms, mc) = (meta_sizes.len() as u64, meta_content.len() as u64);
        let (ds, dc) = (desc_sizes.len() as u64, desc_content.len() as u64);
        let mut meta_segments = vec![bytes::Bytes::from(meta_sizes)];
        if mc > 0 {
            meta_segments.push(bytes::Bytes::from(meta_content));
        }
        let mut desc_segments = vec![bytes::Bytes::from(desc_sizes)];
        if dc > 0 {
            desc_segments.push(bytes::Bytes::from(desc_content));
        }
        let (_meta_bulk, meta_ref) = state.caller.expose(meta_segments)?;
        let (_desc_bulk, desc_ref) = state.caller.expose(desc_segments)?;
        let window = |r: &BulkRef, offset: u64, size: u64| BulkRef {
            handle: r.handle.clone(),
            offset,
            size,
            address: r.address.clone(),
        };
        let damaged = state.damage_next_batch.swap(false, Ordering::SeqCst);
        let request = RecvBatchRequest {
            consumer_ctx: q.consumer_ctx,
            partition_index: q.partition_index,
            count: count + u64::from(damaged),
            first_id: pos,
            metadata_sizes: window(&meta_ref, 0, ms),
            metadata: window(&meta_ref, ms, mc),
            descriptor_sizes: window(&desc_ref, 0, ds),
            descriptors: window(&desc_ref, ds, dc),
        };
        let response: RecvBatchResponse =
            state
                .caller
                .call(address, Rpc::RecvBatch.name(), 0, &request)?;
        drop(log);
        if let MofkaResult::Err(e) = response {
            return Err(Error::Driver {
                driver: "mofka",
                message: format!("the consumer refused a batch: {e}"),
            });
        }
        pos += count;
    }
}

fn send_no_more_events(state: &State, q: &RequestEventsRequest, address: &str) -> Result<()> {
    let empty = || BulkRef {
        handle: BulkHandle::null(),
        offset: 0,
        size: 0,
        address: String::new(),
    };
    let request = RecvBatchRequest {
        consumer_ctx: q.consumer_ctx,
        partition_index: q.partition_index,
        count: 0,
        first_id: NO_MORE_EVENTS,
        metadata_sizes: empty(),
        metadata: empty(),
        descriptor_sizes: empty(),
        descriptors: empty(),
    };
    let _: RecvBatchResponse = state
        .caller
        .call(address, Rpc::RecvBatch.name(), 0, &request)?;
    Ok(())
}

/// Appends `size` bytes of the data space from `offset` to `out`, across batches' chunks.
fn read_range(log: &Log, mut offset: u64, size: u64, out: &mut Vec<u8>) -> Result<()> {
    let end = offset + size;
    while offset < end {
        let i = log.chunks.partition_point(|(start, _)| *start <= offset);
        let chunk = i
            .checked_sub(1)
            .map(|i| &log.chunks[i])
            .filter(|(start, c)| offset < start + c.len() as u64);
        let Some((start, chunk)) = chunk else {
            return Err(Error::DataSelection(format!(
                "no stored data at offset {offset} (reading {size} bytes)"
            )));
        };
        let from = (offset - start) as usize;
        let to = chunk.len().min((end - start) as usize);
        out.extend_from_slice(&chunk[from..to]);
        offset = start + to as u64;
    }
    Ok(())
}

fn push_data(state: &State, p: &Partition, q: &RequestDataRequest) -> Result<()> {
    let loc = MemoryLocation::from_bytes(q.descriptor.location()).ok_or_else(|| {
        Error::DataSelection("the descriptor's location is not a memory location".into())
    })?;
    let mut out = Vec::with_capacity(q.descriptor.size() as usize);
    {
        // Like Mofka's memory partition, the location may span several events (a client
        // reading a run of them with one call), stored by several batches.
        let log = lock(&p.log);
        for (offset, size) in q.descriptor.flatten() {
            match offset.checked_add(size) {
                Some(end) if end <= loc.size => {
                    read_range(&log, loc.offset + offset, size, &mut out)?
                }
                _ => {
                    return Err(Error::DataSelection(format!(
                        "segment ({offset}, {size}) is outside the location's {} bytes",
                        loc.size
                    )))
                }
            }
        }
    }
    if out.is_empty() {
        return Ok(());
    }
    if out.len() as u64 > q.dest.size {
        return Err(Error::DataSelection(format!(
            "{} selected bytes do not fit the {}-byte destination",
            out.len(),
            q.dest.size
        )));
    }
    let n = out.len();
    let origin = state.caller.address(&q.dest.address)?;
    let remote = RemoteBulk::deserialize(&state.caller.engine, q.dest.handle.as_bytes())?;
    let (local, _) = state.caller.expose(vec![bytes::Bytes::from(out)])?;
    state
        .caller
        .engine
        .transfer(
            BulkOp::Push,
            RemoteRegion::new(&origin, &remote, q.dest.offset as usize),
            local,
            0,
            n,
        )
        .wait()?;
    Ok(())
}
