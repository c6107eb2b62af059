//! A small Mofka service in Rust, for tests and benchmarks where no real deployment exists.
//!
//! It speaks the same wire protocol as a real Bedrock + Mofka deployment, through the same codec
//! and Mercury layer as the driver, so the driver is exercised end to end over real Mercury
//! transports:
//!
//! - Bedrock (provider 0): `bedrock_query_config` answers the discovery query with the id of
//!   the master Yokan provider (the script is not interpreted), `bedrock_start_provider`
//!   starts a partition (a Mofka provider of type `"mofka"`).
//! - Yokan (provider [`MASTER_PROVIDER_ID`]): `__identity__` and the `*_direct` key/value and
//!   document calls a client uses, in memory.
//! - Mofka partitions: the `memory` partition manager's behaviour: `send_batch` pulls the
//!   producer's metadata and data bulks and assigns dense ids from 0; `request_events` answers
//!   at once and feeds the consumer with `recv_batch` calls from the consumer name's cursor;
//!   `request_data` pushes the selected bytes; `ack_event` moves the name's cursor;
//!   `remove_consumer` stops the feed.
//!
//! Everything lives in memory and is gone when the service is dropped. The service writes a
//! Flock-style group file (`{"members": [{"address": ..., "provider_id": 0}]}`) for clients.

use super::rpc::{decode_request, respond, Caller};
use super::wire::layout::{
    decode_sizes, encode_descriptors, encode_entries, split_entries, MemoryLocation,
};
use super::wire::*;
use crate::descriptor::DataDescriptor;
use crate::error::{Error, Result};
use crate::margo::rpc_id;
use crate::mercury::{BulkOp, Engine, EngineOptions, RemoteBulk, RemoteRegion, Request};
use crate::types::NO_MORE_EVENTS;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Provider id of the mock's Yokan master database.
pub const MASTER_PROVIDER_ID: u16 = 1;
/// First provider id given to partitions.
const FIRST_PARTITION_PROVIDER_ID: u16 = 10;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
struct Log {
    metadata: Vec<Vec<u8>>,
    /// `(offset, size)` of each event's data in the partition's data space.
    locations: Vec<(u64, u64)>,
    /// The data space: each batch's data region as pulled, by the offset where it starts.
    chunks: Vec<(u64, bytes::Bytes)>,
    data_end: u64,
    cursors: HashMap<String, u64>,
    /// Running feeds by `(consumer context, consumer address, partition index)`.
    feeds: HashMap<(u64, String, u64), Arc<AtomicBool>>,
}

struct Partition {
    log: Mutex<Log>,
    grew: Condvar,
    /// No event will be added: feeds end with Mofka's "no more events" message.
    complete: AtomicBool,
}

struct State {
    caller: Caller,
    kv: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    collections: Mutex<HashMap<String, Vec<Vec<u8>>>>,
    next_provider: Mutex<u16>,
    partitions: Mutex<HashMap<u16, Arc<Partition>>>,
    stopping: AtomicBool,
}

/// A running mock service; dropping it stops it.
pub struct MockService {
    state: Arc<State>,
    address: String,
    group_file: PathBuf,
}

impl std::fmt::Debug for MockService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockService")
            .field("address", &self.address)
            .field("group_file", &self.group_file)
            .finish()
    }
}

impl MockService {
    /// Starts the service on `transport` (`na+sm`, `ofi+tcp://127.0.0.1`, ...) speaking wire
    /// `version`, and writes its group file into `dir`.
    pub fn start(transport: &str, version: WireVersion, dir: &Path) -> Result<MockService> {
        let engine = Engine::new(
            transport,
            EngineOptions {
                listen: true,
                handler_threads: 4,
                ..Default::default()
            },
        )?;
        let address = engine.self_address()?;
        let state = Arc::new(State {
            caller: Caller::new(engine.clone(), version, Duration::from_secs(60)),
            kv: Mutex::new(BTreeMap::new()),
            collections: Mutex::new(HashMap::new()),
            next_provider: Mutex::new(FIRST_PARTITION_PROVIDER_ID),
            partitions: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
        });
        register_bedrock(&state)?;
        register_yokan(&state)?;
        let group_file = dir.join("mofka.json");
        let group = json!({"members": [{"address": address, "provider_id": 0}], "metadata": {}});
        std::fs::write(
            &group_file,
            serde_json::to_vec_pretty(&group).unwrap_or_default(),
        )
        .map_err(|e| Error::io("write the group file", &group_file, e))?;
        Ok(MockService {
            state,
            address,
            group_file,
        })
    }

    /// The service's Mercury address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The group file to give the driver (`{"group_file": ...}`).
    pub fn group_file(&self) -> &Path {
        &self.group_file
    }

    /// Marks the partition served by `provider_id` complete: it refuses new batches, and each
    /// consumer feed ends, after the last event, with the empty batch whose first id is
    /// `u64::MAX` (Mofka's "no more events"). Returns false for an unknown provider.
    pub fn complete_partition(&self, provider_id: u16) -> bool {
        let Some(p) = lock(&self.state.partitions).get(&provider_id).cloned() else {
            return false;
        };
        p.complete.store(true, Ordering::SeqCst);
        p.grew.notify_all();
        true
    }

    /// Number of events stored in the partition served by `provider_id`.
    pub fn partition_len(&self, provider_id: u16) -> Option<usize> {
        let p = lock(&self.state.partitions).get(&provider_id).cloned()?;
        let n = lock(&p.log).metadata.len();
        Some(n)
    }
}

impl Drop for MockService {
    fn drop(&mut self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        for p in lock(&self.state.partitions).values() {
            for stop in lock(&p.log).feeds.values() {
                stop.store(true, Ordering::SeqCst);
            }
            p.grew.notify_all();
        }
        // Handlers hold clones of the state (and so of the engine); they are released with the
        // engine's registrations when the last handle goes.
    }
}

fn version(state: &State) -> WireVersion {
    state.caller.version
}

/// Registers `handler` for RPC `name` of provider `provider_id`, decoding its request.
fn serve<Q, F>(state: &Arc<State>, name: &str, provider_id: u16, handler: F) -> Result<()>
where
    Q: WireMessage + 'static,
    F: Fn(&Arc<State>, Q, Request) + Send + Sync + 'static,
{
    let weak = Arc::downgrade(state);
    let name_owned = name.to_string();
    state
        .caller
        .engine
        .register(rpc_id(name, provider_id), move |request: Request| {
            let Some(state) = weak.upgrade() else {
                return;
            };
            match decode_request::<Q>(version(&state), request.input()) {
                Ok(q) => handler(&state, q, request),
                Err(e) => eprintln!("mofka mock: bad {name_owned} request: {e}"),
            }
        })
}

fn register_bedrock(state: &Arc<State>) -> Result<()> {
    serve(
        state,
        Rpc::QueryConfig.name(),
        0,
        |state, _q: QueryConfigRequest, req| {
            let body = QueryConfigResponse {
                success: true,
                content: format!("[{MASTER_PROVIDER_ID}]"),
            };
            respond(req, version(state), &body);
        },
    )?;
    serve(
        state,
        Rpc::StartProvider.name(),
        0,
        |state, q: StartProviderRequest, req| {
            let result = start_partition(state, &q.description);
            let body = match result {
                Ok(id) => RequestResult::ok(id),
                Err(e) => RequestResult {
                    success: false,
                    error: e,
                    value: 0,
                },
            };
            respond(req, version(state), &body);
        },
    )
}

fn start_partition(state: &Arc<State>, description: &str) -> std::result::Result<u16, String> {
    let d: Value = serde_json::from_str(description).map_err(|e| e.to_string())?;
    if d.get("type").and_then(Value::as_str) != Some("mofka") {
        return Err(format!("unknown provider type in {description}"));
    }
    // Bedrock's rule for provider names.
    let name = d.get("name").and_then(Value::as_str).unwrap_or("");
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "Error validating JSON (ProviderManager): provider name {name:?} does not match \
             ^[a-zA-Z_][a-zA-Z0-9_]*$"
        ));
    }
    let id = {
        let mut next = lock(&state.next_provider);
        let id = *next;
        *next += 1;
        id
    };
    let partition = Arc::new(Partition {
        log: Mutex::new(Log::default()),
        grew: Condvar::new(),
        complete: AtomicBool::new(false),
    });
    lock(&state.partitions).insert(id, partition.clone());
    register_partition(state, id, partition).map_err(|e| e.to_string())?;
    Ok(id)
}

fn register_partition(state: &Arc<State>, id: u16, partition: Arc<Partition>) -> Result<()> {
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
    let mut log = lock(&p.log);
    let first = log.metadata.len() as u64;
    let base = log.data_end;
    for (m, &(offset, size)) in metas.iter().zip(&spans) {
        log.metadata.push(m.to_vec());
        log.locations.push((base + offset, size));
    }
    log.data_end += data.len() as u64;
    if !data.is_empty() {
        log.chunks.push((base, data));
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
        let request = RecvBatchRequest {
            consumer_ctx: q.consumer_ctx,
            partition_index: q.partition_index,
            count,
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

fn push_data(state: &State, p: &Partition, q: &RequestDataRequest) -> Result<()> {
    let loc = MemoryLocation::from_bytes(q.descriptor.location()).ok_or_else(|| {
        Error::DataSelection("the descriptor's location is not a memory location".into())
    })?;
    let mut out = Vec::with_capacity(q.descriptor.size() as usize);
    {
        let log = lock(&p.log);
        // The chunk holding the event (an event's data never spans two batches).
        let i = log
            .chunks
            .partition_point(|(start, _)| *start <= loc.offset);
        let chunk = i
            .checked_sub(1)
            .map(|i| &log.chunks[i])
            .filter(|(start, c)| loc.offset + loc.size <= start + c.len() as u64);
        let Some((start, chunk)) = chunk else {
            return Err(Error::DataSelection(format!(
                "no stored data at offset {} (size {})",
                loc.offset, loc.size
            )));
        };
        let event = &chunk[(loc.offset - start) as usize..(loc.offset - start + loc.size) as usize];
        for (offset, size) in q.descriptor.flatten() {
            match offset.checked_add(size) {
                Some(end) if end <= loc.size => {
                    out.extend_from_slice(&event[offset as usize..end as usize]);
                }
                _ => {
                    return Err(Error::DataSelection(format!(
                        "segment ({offset}, {size}) is outside the event's {} bytes",
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

fn register_yokan(state: &Arc<State>) -> Result<()> {
    let id = MASTER_PROVIDER_ID;
    serve(
        state,
        Rpc::Identity.name(),
        id,
        |state, _q: IdentityRequest, req| {
            respond(
                req,
                version(state),
                &IdentityResponse {
                    identity: HgString::new("yokan"),
                },
            );
        },
    )?;
    serve(
        state,
        Rpc::PutDirect.name(),
        id,
        |state, q: PutDirectRequest, req| {
            let ret = (|| -> Option<i32> {
                let keys = split_entries(&q.ksizes, &q.keys).ok()?;
                let vals = split_entries(&q.vsizes, &q.vals).ok()?;
                let mut kv = lock(&state.kv);
                let new_only = q.mode & yokan_mode::NEW_ONLY != 0;
                // Like Yokan: with NEW_ONLY an existing key is an error for a single-key put,
                // and is silently kept as it is in a multi-key put.
                if new_only && keys.len() == 1 && kv.contains_key(keys[0]) {
                    return Some(YokanStatus::KEY_EXISTS);
                }
                for (k, v) in keys.iter().zip(&vals) {
                    if !(new_only && kv.contains_key(*k)) {
                        kv.insert(k.to_vec(), v.to_vec());
                    }
                }
                Some(YokanStatus::SUCCESS)
            })()
            .unwrap_or(YOKAN_ERR_INVALID_ARGS);
            respond(req, version(state), &YokanStatus { ret });
        },
    )?;
    serve(
        state,
        Rpc::LengthDirect.name(),
        id,
        |state, q: LengthDirectRequest, req| {
            let body = match split_entries(&q.sizes, &q.keys) {
                Ok(keys) => {
                    let kv = lock(&state.kv);
                    LengthDirectResponse {
                        sizes: keys
                            .iter()
                            .map(|k| {
                                kv.get(*k)
                                    .map(|v| v.len() as u64)
                                    .unwrap_or(yokan_mode::KEY_NOT_FOUND_SIZE)
                            })
                            .collect(),
                        ret: YokanStatus::SUCCESS,
                    }
                }
                Err(_) => LengthDirectResponse {
                    sizes: Vec::new(),
                    ret: YOKAN_ERR_INVALID_ARGS,
                },
            };
            respond(req, version(state), &body);
        },
    )?;
    serve(
        state,
        Rpc::GetDirect.name(),
        id,
        |state, q: GetDirectRequest, req| {
            let body = match split_entries(&q.ksizes, &q.keys) {
                Ok(keys) => {
                    let kv = lock(&state.kv);
                    let mut vsizes = Vec::new();
                    let mut vals = Vec::new();
                    for k in keys {
                        match kv.get(k) {
                            Some(v) if (vals.len() + v.len()) as u64 <= q.vbufsize => {
                                vsizes.push(v.len() as u64);
                                vals.extend_from_slice(v);
                            }
                            Some(_) => vsizes.push(yokan_mode::SIZE_TOO_SMALL),
                            None => vsizes.push(yokan_mode::KEY_NOT_FOUND_SIZE),
                        }
                    }
                    GetDirectResponse {
                        vsizes,
                        vals,
                        ret: YokanStatus::SUCCESS,
                    }
                }
                Err(_) => GetDirectResponse {
                    vsizes: Vec::new(),
                    vals: Vec::new(),
                    ret: YOKAN_ERR_INVALID_ARGS,
                },
            };
            respond(req, version(state), &body);
        },
    )?;
    serve(
        state,
        Rpc::CollCreate.name(),
        id,
        |state, q: CollCreateRequest, req| {
            let mut colls = lock(&state.collections);
            let ret = if colls.contains_key(q.coll_name.as_str()) {
                YokanStatus::KEY_EXISTS
            } else {
                colls.insert(q.coll_name.as_str().to_string(), Vec::new());
                YokanStatus::SUCCESS
            };
            drop(colls);
            respond(req, version(state), &YokanStatus { ret });
        },
    )?;
    serve(
        state,
        Rpc::DocStoreDirect.name(),
        id,
        |state, q: DocStoreDirectRequest, req| {
            let mut colls = lock(&state.collections);
            let body = match (
                colls.get_mut(q.coll_name.as_str()),
                split_entries(&q.sizes, &q.docs),
            ) {
                (Some(coll), Ok(docs)) => {
                    let first = coll.len() as u64;
                    coll.extend(docs.iter().map(|d| d.to_vec()));
                    DocStoreResponse {
                        ret: YokanStatus::SUCCESS,
                        ids: (first..first + docs.len() as u64).collect(),
                    }
                }
                (None, _) => DocStoreResponse {
                    ret: YokanStatus::KEY_NOT_FOUND,
                    ids: Vec::new(),
                },
                (_, Err(_)) => DocStoreResponse {
                    ret: YOKAN_ERR_INVALID_ARGS,
                    ids: Vec::new(),
                },
            };
            drop(colls);
            respond(req, version(state), &body);
        },
    )?;
    serve(
        state,
        Rpc::DocListDirect.name(),
        id,
        |state, q: DocListDirectRequest, req| {
            let colls = lock(&state.collections);
            let body = match colls.get(q.coll_name.as_str()) {
                Some(coll) => {
                    let from = q.from_id as usize;
                    let docs: Vec<&Vec<u8>> =
                        coll.iter().skip(from).take(q.count as usize).collect();
                    DocListDirectResponse {
                        ids: (from as u64..(from + docs.len()) as u64).collect(),
                        sizes: docs.iter().map(|d| d.len() as u64).collect(),
                        docs: docs.iter().flat_map(|d| d.iter().copied()).collect(),
                        ret: YokanStatus::SUCCESS,
                    }
                }
                None => DocListDirectResponse {
                    ids: Vec::new(),
                    sizes: Vec::new(),
                    docs: Vec::new(),
                    ret: YokanStatus::KEY_NOT_FOUND,
                },
            };
            drop(colls);
            respond(req, version(state), &body);
        },
    )?;
    serve(
        state,
        Rpc::ListKeysDirect.name(),
        id,
        |state, q: ListKeysDirectRequest, req| {
            let kv = lock(&state.kv);
            let keys: Vec<&Vec<u8>> = kv
                .keys()
                .filter(|k| q.from_key.is_empty() || k.as_slice() > q.from_key.as_slice())
                .filter(|k| k.starts_with(&q.filter))
                .take(q.count as usize)
                .collect();
            let body = ListKeysDirectResponse {
                ret: YokanStatus::SUCCESS,
                ksizes: keys.iter().map(|k| k.len() as u64).collect(),
                keys: keys.iter().flat_map(|k| k.iter().copied()).collect(),
            };
            drop(kv);
            respond(req, version(state), &body);
        },
    )
}

/// `YOKAN_ERR_INVALID_ARGS`.
const YOKAN_ERR_INVALID_ARGS: i32 = 3;
