//! The `"mofka"` driver: a native client of Mofka services over the Mercury layer.
//!
//! Options (JSON):
//!
//! | key | meaning |
//! |---|---|
//! | `group_file` | (required) the Flock group file of the service (`{"members": [{"address": ...}]}`) |
//! | `wire_version` | `"0.9"` (default) or `"0.8"`: the `send_batch` layout of the service |
//! | `address` | Mercury address or transport this client listens on (default: the members' protocol, on the members' host for TCP) |
//! | `rpc_timeout_ms` | how long a call waits for its response (default 30000) |
//! | `liveness_ms` | a consumer that gets no event for this long asks its partitions' servers a trivial question (all at once, waiting at most `liveness_ms` or `rpc_timeout_ms` if shorter), and fails its pulls with an error naming one that does not answer (default 5000; 0 disables) |
//! | `pack_threshold` | data segments smaller than this many bytes are copied into one contiguous region per batch; larger ones are exposed in place (default 16384; 0 exposes every segment in place) |
//! | `margo` | the C++ driver's Margo configuration: its `"mercury"` settings (`auth_key`, `ip_subnet`, `na_no_block`, `max_contexts`, `request_post_init`, ... see [`TransportOptions::from_margo`](crate::mercury::TransportOptions::from_margo)) initialise this client's Mercury; its thread settings do not apply (this client runs its own progress thread) |
//!
//! Topic options: `num_partitions` (default 1), `partition_type` (default `"memory"`),
//! `partition_config`, `partition_dependencies` and `partition_pool`, or the C++ driver's names
//! for them (`partitions`, `partitions_type`, ...). Partitions go round robin over the group's
//! servers; [`MofkaDriver::add_partition`] adds one to an existing topic on a chosen server.
//! Consumer options: `batch_size` events per `recv_batch` (default 128). Producer options:
//! `producer_name` (default `diaspora-rs-<pid>`), `ack_early` (0.9 only; sent, ignored by
//! current servers).
//!
//! Discovery follows the C++ client: the first member's Bedrock (provider 0) runs a Jx9 query
//! for the Yokan provider tagged `mofka:master`; a topic is three Yokan keys
//! `MOFKA:GLOBAL:<topic>:{validator,selector,serializer}` and a Yokan collection
//! `MOFKA:GLOBAL:<topic>:partitions` of `{"address", "provider_id", "uuid"}` documents; new
//! partitions are Bedrock providers of type `mofka` started by the client.
//!
//! Consumer positions live in the service (per consumer name, in memory on current servers):
//! a consumer is fed from its name's cursor, and acknowledgements move the cursor. So
//! [`TopicBackend::load_offset`] is 0 and the feed decides where reading resumes.

use super::rpc::{decode_request, decode_response, respond, Caller};
use super::wire::layout::{decode_descriptors, decode_sizes, split_entries};
use super::wire::*;
use crate::backend::{
    BatchCallback, BatchIds, DataRead, DriverBackend, EventBatch, PartitionReader, StoredEvent,
    TopicBackend,
};
use crate::components::TopicComponents;
use crate::error::{Error, Result};
use crate::mercury::{BulkAccess, Engine, EngineOptions, LocalBulk, Request};
use crate::metadata::Metadata;
use crate::metadata::PartitionInfo;
use crate::types::EventId;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

const KEY_PREFIX: &str = "MOFKA:GLOBAL:";
const COMPONENT_KEYS: [&str; 3] = ["validator", "selector", "serializer"];
const DEFAULT_BATCH_SIZE: u64 = 128;
/// The `first_id` of an empty `recv_batch` that says a partition is complete (Mofka's
/// `NoMoreEvents`).
const NO_MORE_EVENTS: u64 = u64::MAX;
/// `request_data` calls a consumer keeps in flight when it reads whole events.
const DATA_REQUESTS_IN_FLIGHT: usize = 32;

/// Jx9 script run by Bedrock to find the master database: the ids of the Yokan providers that
/// carry the `mofka:master` tag.
const MASTER_QUERY: &str = r#"
$ids = [];
foreach ($__config__.providers as $provider) {
    if ($provider.type == "yokan" && in_array("mofka:master", $provider.tags)) {
        array_push($ids, $provider.provider_id);
    }
}
return $ids;
"#;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn mofka_err(message: impl Into<String>) -> Error {
    Error::Driver {
        driver: "mofka",
        message: message.into(),
    }
}

/// Data segments below this many bytes are copied into a contiguous region before being
/// exposed (see [`pack_region`]).
const DEFAULT_PACK_THRESHOLD: usize = 16 * 1024;

/// A region `[sizes][segments...]` as the segments to expose: runs of segments smaller than
/// `threshold` are copied, with the sizes, into contiguous buffers, and larger segments are
/// exposed in place (zero-copy). Each segment of a bulk handle costs the service one transfer
/// operation on RDMA transports (a message over TCP), so a batch of many small events exposed
/// segment by segment is pulled far more slowly than the same bytes in one piece.
fn pack_region<'a>(
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

/// Parsed driver options.
#[derive(Clone, Debug)]
struct Config {
    group_file: PathBuf,
    version: WireVersion,
    address: Option<String>,
    timeout: Duration,
    pack_threshold: usize,
    liveness: Option<Duration>,
    transport: crate::mercury::TransportOptions,
}

impl Config {
    fn parse(options: &Value) -> Result<Config> {
        let bad = |m: String| Error::config("mofka driver", m);
        let obj = options
            .as_object()
            .ok_or_else(|| bad("options must be a JSON object".into()))?;
        let group_file = obj
            .get("group_file")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("\"group_file\" (the service's group file) is required".into()))?;
        let version = match obj.get("wire_version") {
            None | Some(Value::Null) => WireVersion::CURRENT,
            Some(Value::String(s)) => s.parse().map_err(bad)?,
            Some(v) => return Err(bad(format!("\"wire_version\" must be a string, not {v}"))),
        };
        let address = match obj.get("address") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => return Err(bad(format!("\"address\" must be a string, not {v}"))),
        };
        let timeout = match obj.get("rpc_timeout_ms") {
            None | Some(Value::Null) => Duration::from_secs(30),
            Some(v) => Duration::from_millis(v.as_u64().filter(|&t| t > 0).ok_or_else(|| {
                bad(format!(
                    "\"rpc_timeout_ms\" must be a positive integer, not {v}"
                ))
            })?),
        };
        let pack_threshold = match obj.get("pack_threshold") {
            None | Some(Value::Null) => DEFAULT_PACK_THRESHOLD,
            Some(v) => v.as_u64().map(|t| t as usize).ok_or_else(|| {
                bad(format!(
                    "\"pack_threshold\" must be a non-negative integer (bytes), not {v}"
                ))
            })?,
        };
        let liveness = match obj.get("liveness_ms") {
            None | Some(Value::Null) => Some(Duration::from_secs(5)),
            Some(v) => match v.as_u64() {
                Some(0) => None,
                Some(ms) => Some(Duration::from_millis(ms)),
                None => {
                    return Err(bad(format!(
                        "\"liveness_ms\" must be a non-negative integer (0 disables), not {v}"
                    )))
                }
            },
        };
        let transport = match obj.get("margo") {
            None | Some(Value::Null) => Default::default(),
            Some(m @ Value::Object(_)) => crate::mercury::TransportOptions::from_margo(m)?,
            Some(v) => {
                return Err(bad(format!(
                    "\"margo\" must be a Margo configuration object, not {v}"
                )))
            }
        };
        Ok(Config {
            group_file: PathBuf::from(group_file),
            version,
            address,
            timeout,
            pack_threshold,
            liveness,
            transport,
        })
    }
}

/// The members' addresses from a Flock group file, without duplicates.
fn read_group_file(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::corrupt(path, 0, format!("not a JSON group file: {e}")))?;
    let members = v
        .get("members")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::corrupt(path, 0, "no \"members\" array"))?;
    let mut out: Vec<String> = Vec::new();
    for m in members {
        if let Some(a) = m.get("address").and_then(Value::as_str) {
            if !out.iter().any(|x| x == a) {
                out.push(a.to_string());
            }
        }
    }
    if out.is_empty() {
        return Err(Error::corrupt(path, 0, "the group has no member address"));
    }
    Ok(out)
}

/// What this client listens on, derived from a member's address: the same protocol, and for
/// TCP the same host (so that a service on 127.0.0.1 gets a client on 127.0.0.1).
fn listen_info(member: &str) -> String {
    let (protocol, rest) = member.split_once("://").unwrap_or((member, ""));
    let protocol = protocol.split(';').next().unwrap_or(protocol);
    if protocol.starts_with("ofi+") || protocol.starts_with("ucx+") {
        let host = rest.rsplit_once(':').map(|(h, _)| h).unwrap_or(rest);
        if !host.is_empty() {
            return format!("{protocol}://{host}");
        }
    }
    protocol.to_string()
}

fn new_uuid() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut words = [0u64; 2];
    for w in &mut words {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u32(std::process::id());
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        *w = h.finish();
    }
    let x = ((words[0] as u128) << 64) | words[1] as u128;
    let s = format!("{x:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &s[..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..]
    )
}

/// Events a consumer subscription has received and not handed out yet.
#[derive(Default)]
struct InboxState {
    queues: HashMap<u64, VecDeque<StoredEvent>>,
    queued: usize,
    error: Option<String>,
}

struct Inbox {
    state: Mutex<InboxState>,
    changed: Condvar,
}

/// State shared by the driver, its topics and the `recv_batch` handler.
struct Shared {
    caller: Caller,
    /// The group's servers, in the group file's order (partitions go round robin over them).
    members: Vec<String>,
    /// The Yokan provider holding the topics (`mofka:master`): its server and provider id.
    master: (String, u16),
    inboxes: Mutex<HashMap<u64, Arc<Inbox>>>,
    next_ctx: AtomicU64,
    watchdog: Arc<Watchdog>,
    /// See [`pack_region`].
    pack_threshold: usize,
    /// Memory of cancelled batches, kept for a while (see [`Shared::bury`]).
    graveyard: Mutex<VecDeque<(Instant, Vec<LocalBulk>)>>,
    /// How long a consumer goes without events before checking that its servers answer.
    liveness: Option<Duration>,
}

impl Shared {
    fn yokan<Q: WireMessage, R: WireMessage>(&self, rpc: Rpc, body: &Q) -> Result<R> {
        self.caller
            .call(&self.master.0, rpc.name(), self.master.1, body)
    }

    /// Keeps the memory of a cancelled batch exposed for at least ten call timeouts:
    /// cancelling only ends this side of the request, and a service still handling it may go
    /// on reading the batch (over shared memory it reads this process's memory directly), so
    /// freeing it at once could let the service store reused bytes. Entries are released by
    /// [`Shared::prune_graveyard`] (on each batch sent) and when the driver goes.
    fn bury(&self, bulks: Vec<LocalBulk>) {
        self.prune_graveyard();
        lock(&self.graveyard).push_back((Instant::now(), bulks));
    }

    /// Releases the cancelled batches kept longer than ten call timeouts.
    fn prune_graveyard(&self) {
        let mut graveyard = lock(&self.graveyard);
        let grace = self.caller.timeout.saturating_mul(10);
        while graveyard.front().is_some_and(|(t, _)| t.elapsed() > grace) {
            graveyard.pop_front();
        }
    }

    fn new_ctx(&self) -> u64 {
        (u64::from(std::process::id()) << 32) | self.next_ctx.fetch_add(1, Ordering::Relaxed)
    }

    fn get_keys(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let ksizes: Vec<u64> = keys.iter().map(|k| k.len() as u64).collect();
        let kbytes: Vec<u8> = keys.iter().flat_map(|k| k.bytes()).collect();
        let lengths: LengthDirectResponse = self.yokan(
            Rpc::LengthDirect,
            &LengthDirectRequest {
                mode: yokan_mode::NO_RDMA,
                timeout_ms: 0.0,
                keys: kbytes.clone(),
                sizes: ksizes.clone(),
            },
        )?;
        check_yokan("length", lengths.ret)?;
        let total: u64 = lengths
            .sizes
            .iter()
            .filter(|&&s| s < yokan_mode::NO_MORE)
            .sum();
        if lengths
            .sizes
            .iter()
            .all(|&s| s == yokan_mode::KEY_NOT_FOUND_SIZE)
        {
            return Ok(vec![None; keys.len()]);
        }
        let got: GetDirectResponse = self.yokan(
            Rpc::GetDirect,
            &GetDirectRequest {
                mode: yokan_mode::NO_RDMA,
                timeout_ms: 0.0,
                vbufsize: total,
                ksizes,
                keys: kbytes,
            },
        )?;
        check_yokan("get", got.ret)?;
        let mut out = Vec::with_capacity(keys.len());
        let mut pos = 0usize;
        for &s in &got.vsizes {
            if s >= yokan_mode::NO_MORE {
                out.push(None);
            } else {
                let end = pos + s as usize;
                let v = got
                    .vals
                    .get(pos..end)
                    .ok_or_else(|| mofka_err("Yokan returned fewer value bytes than announced"))?;
                out.push(Some(v.to_vec()));
                pos = end;
            }
        }
        out.resize(keys.len(), None);
        Ok(out)
    }

    fn list_partitions(&self, topic: &str) -> Result<Option<Vec<Value>>> {
        let coll = format!("{KEY_PREFIX}{topic}:partitions");
        let mut docs = Vec::new();
        loop {
            let r: DocListDirectResponse = self.yokan(
                Rpc::DocListDirect,
                &DocListDirectRequest {
                    mode: yokan_mode::NO_RDMA,
                    timeout_ms: 0.0,
                    count: 256,
                    from_id: docs.len() as u64,
                    coll_name: HgString::new(coll.clone()),
                    filter: Vec::new(),
                    bufsize: 1 << 20,
                },
            )?;
            if r.ret == YokanStatus::KEY_NOT_FOUND {
                return Ok(None);
            }
            check_yokan("doc_list", r.ret)?;
            let sizes: Vec<u64> = r
                .sizes
                .iter()
                .copied()
                .take_while(|&s| s < yokan_mode::NO_MORE)
                .collect();
            let entries = split_entries(&sizes, &r.docs)?;
            for e in &entries {
                docs.push(serde_json::from_slice::<Value>(e).map_err(|err| {
                    mofka_err(format!(
                        "partition document of topic {topic:?} is not JSON: {err}"
                    ))
                })?);
            }
            if entries.len() < 256 {
                return Ok(Some(docs));
            }
        }
    }
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

/// A batch sent asynchronously: its callback and its partition's turn, taken by whichever of
/// the answer and the watchdog comes first.
struct PendingBatch {
    done: Mutex<Option<BatchCallback>>,
    /// The request, to cancel it when it times out.
    token: Mutex<Option<crate::mercury::ForwardToken>>,
    timed_out: std::sync::atomic::AtomicBool,
    partition: usize,
}

impl PendingBatch {
    /// Reports the outcome (once).
    fn finish(&self, result: Result<BatchIds>) {
        // An answer that made it despite the timeout stands; a cancelled request reports why.
        let result = match result {
            Err(_) if self.timed_out.load(Ordering::SeqCst) => Err(mofka_err(format!(
                "partition {} did not answer a batch in time (mofka_producer_send_batch: no \
                 response; the request was cancelled, but the service may still store the batch)",
                self.partition
            ))),
            r => r,
        };
        let done = lock(&self.done).take();
        if let Some(done) = done {
            // A panicking callback must not stop the partition's later batches.
            if let Err(payload) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| done(result)))
            {
                let what = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                eprintln!("diaspora-stream: a mofka batch callback panicked: {what}");
            }
        }
    }

    /// Called by the watchdog: cancels the request. Its completion then reports the timeout
    /// and sends the partition's next batch, so that no later batch overtakes this one.
    fn expire(&self) {
        self.timed_out.store(true, Ordering::SeqCst);
        if let Some(token) = lock(&self.token).as_ref() {
            token.cancel();
        }
    }
}

/// Fails asynchronous batches that got no answer in time (their bulks stay exposed until
/// Mercury completes or cancels the request).
#[derive(Default)]
struct Watchdog {
    pending: Mutex<Vec<(Instant, Weak<PendingBatch>, usize)>>,
    started: std::sync::OnceLock<()>,
}

impl Watchdog {
    fn watch(self: &Arc<Self>, deadline: Instant, batch: &Arc<PendingBatch>, partition: usize) {
        let mut pending = lock(&self.pending);
        pending.retain(|(_, w, _)| w.strong_count() > 0);
        pending.push((deadline, Arc::downgrade(batch), partition));
        drop(pending);
        self.started.get_or_init(|| {
            let me = Arc::downgrade(self);
            let _ = std::thread::Builder::new()
                .name("diaspora-mofka-watchdog".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_millis(100));
                    let Some(me) = me.upgrade() else {
                        return;
                    };
                    let now = Instant::now();
                    let expired: Vec<(Weak<PendingBatch>, usize)> = {
                        let mut pending = lock(&me.pending);
                        let (gone, kept): (Vec<_>, Vec<_>) =
                            pending.drain(..).partition(|(d, _, _)| *d <= now);
                        *pending = kept;
                        gone.into_iter().map(|(_, w, p)| (w, p)).collect()
                    };
                    for (w, _) in expired {
                        if let Some(batch) = w.upgrade() {
                            batch.expire();
                        }
                    }
                });
        });
    }
}

/// A batch ready to go: its exposed memory, its encoded request and where it goes.
struct ReadyBatch {
    bulks: Vec<LocalBulk>,
    payload: Vec<u8>,
    target: crate::mercury::Address,
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
/// the completion of the first (on the progress thread) without waiting for another thread.
#[derive(Default)]
struct PartitionSlots {
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

/// Checks the response of a `request_data` call for event `id`.
fn check_request_data(version: WireVersion, reply: &[u8], id: EventId) -> Result<()> {
    let results = decode_response::<RequestDataResponse>(version, reply, || {
        format!("mofka_consumer_request_data for event {id}")
    })?
    .into_result()
    .map_err(|e| Error::DataSelection(format!("event {id}: {e}")))?;
    match results.into_iter().next() {
        Some(MofkaResult::Err(e)) => Err(Error::DataSelection(format!("event {id}: {e}"))),
        _ => Ok(()),
    }
}

fn check_yokan(what: &str, ret: i32) -> Result<()> {
    if ret == YokanStatus::SUCCESS {
        Ok(())
    } else {
        Err(mofka_err(format!("Yokan {what} failed with code {ret}")))
    }
}

/// The `"mofka"` driver.
pub struct MofkaDriver {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MofkaDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MofkaDriver")
            .field("servers", &self.shared.members)
            .field("master", &self.shared.master)
            .finish()
    }
}

impl MofkaDriver {
    /// Connects to the service named by the options' group file (see the module docs).
    pub fn new(options: &Value) -> Result<MofkaDriver> {
        let config = Config::parse(options)?;
        let members = read_group_file(&config.group_file)?;
        let info = config
            .address
            .clone()
            .unwrap_or_else(|| listen_info(&members[0]));
        // Servers call consumers back (recv_batch), so the client listens.
        let engine = Engine::new(
            &info,
            EngineOptions {
                listen: true,
                transport: config.transport.clone(),
                ..Default::default()
            },
        )?;
        let caller = Caller::new(engine.clone(), config.version, config.timeout);
        let mut master = None;
        let mut errors = Vec::new();
        for member in &members {
            let r: Result<QueryConfigResponse> = caller.call(
                member,
                Rpc::QueryConfig.name(),
                0,
                &QueryConfigRequest {
                    script: MASTER_QUERY.to_string(),
                },
            );
            match r {
                Ok(r) if r.success => {
                    let ids: Value = serde_json::from_str(&r.content).unwrap_or(Value::Null);
                    let first = match &ids {
                        Value::Array(a) => a.first().and_then(Value::as_u64),
                        Value::Number(n) => n.as_u64(),
                        _ => None,
                    };
                    if let Some(id) = first {
                        master = Some((member.clone(), id as u16));
                        break;
                    }
                    errors.push(format!(
                        "{member}: no mofka:master database ({})",
                        r.content
                    ));
                }
                Ok(r) => errors.push(format!("{member}: query failed: {}", r.content)),
                Err(e) => errors.push(format!("{member}: {e}")),
            }
        }
        let master = master.ok_or_else(|| {
            mofka_err(format!(
                "no member of {} has a Yokan database tagged mofka:master: {}",
                config.group_file.display(),
                errors.join("; ")
            ))
        })?;
        let shared = Arc::new(Shared {
            caller,
            members,
            master,
            inboxes: Mutex::new(HashMap::new()),
            next_ctx: AtomicU64::new(1),
            watchdog: Arc::default(),
            pack_threshold: config.pack_threshold,
            graveyard: Mutex::default(),
            liveness: config.liveness,
        });
        register_recv_batch(&shared)?;
        Ok(MofkaDriver { shared })
    }
}

/// Registers the `recv_batch` handler (provider id 0) that fills consumer inboxes.
fn register_recv_batch(shared: &Arc<Shared>) -> Result<()> {
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

fn receive(shared: &Shared, input: &[u8]) -> Result<()> {
    let q: RecvBatchRequest = decode_request(shared.caller.version, input)?;
    let inbox = lock(&shared.inboxes).get(&q.consumer_ctx).cloned();
    let Some(inbox) = inbox else {
        return Err(mofka_err(format!(
            "no subscription with context {:#x}",
            q.consumer_ctx
        )));
    };
    if q.count == 0 {
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

impl MofkaDriver {
    /// The servers of the service's group, in the group file's order (a partition's
    /// `server_rank` indexes this list).
    pub fn servers(&self) -> &[String] {
        &self.shared.members
    }

    /// Adds a partition to an existing topic (the C++ driver's `addCustomPartition`): starts a
    /// Bedrock provider of type `mofka` on server `spec.server_rank` and records it in the
    /// topic's partition collection. Returns the new partition's index. Topics opened before
    /// do not see it; open the topic again.
    pub fn add_partition(&self, topic: &str, spec: &PartitionSpec) -> Result<usize> {
        check_topic_name(topic)?;
        if self.shared.list_partitions(topic)?.is_none() {
            return Err(Error::TopicNotFound(topic.to_string()));
        }
        let coll = format!("{KEY_PREFIX}{topic}:partitions");
        self.start_partition(topic, &coll, spec)
    }

    /// Starts one partition provider and stores its document; returns its index.
    fn start_partition(&self, topic: &str, coll: &str, spec: &PartitionSpec) -> Result<usize> {
        let (provider_id, uuid) = self.start_provider(topic, spec)?;
        self.record_partition(coll, spec.server_rank, provider_id, &uuid)
    }

    /// Starts a partition provider on server `spec.server_rank`: its provider id and uuid.
    fn start_provider(&self, topic: &str, spec: &PartitionSpec) -> Result<(u16, String)> {
        let server = self.server(spec.server_rank)?;
        let (master_addr, master_id) = &self.shared.master;
        let uuid = new_uuid();
        let mut dependencies = spec.dependencies.clone();
        dependencies.entry("pool").or_insert_with(|| {
            Value::from(
                spec.pool
                    .as_deref()
                    .filter(|p| !p.is_empty())
                    .unwrap_or("__primary__"),
            )
        });
        dependencies.insert(
            "master_database".into(),
            Value::from(format!("yokan:{master_id}@{master_addr}")),
        );
        let partition_type = if spec.partition_type.is_empty() {
            "memory"
        } else {
            spec.partition_type.as_str()
        };
        let config = if spec.config.is_null() {
            json!({})
        } else {
            spec.config.clone()
        };
        let description = json!({
            "name": provider_name(topic, &uuid),
            "type": "mofka",
            "config": {"topic": topic, "type": partition_type, "uuid": uuid, "partition": config},
            "tags": ["mofka:partition"],
            "dependencies": dependencies,
        });
        let started: StartProviderResponse = self.shared.caller.call(
            server,
            Rpc::StartProvider.name(),
            0,
            &StartProviderRequest {
                description: description.to_string(),
            },
        )?;
        if !started.success {
            return Err(mofka_err(format!(
                "Bedrock at {server} could not start a partition of topic {topic:?}: {}",
                started.error
            )));
        }
        Ok((started.value, uuid))
    }

    /// Records a started partition in the topic's collection: its index.
    fn record_partition(
        &self,
        coll: &str,
        server_rank: usize,
        provider_id: u16,
        uuid: &str,
    ) -> Result<usize> {
        let doc = json!({
            "address": self.server(server_rank)?,
            "provider_id": provider_id,
            "uuid": uuid,
        })
        .to_string();
        let stored: DocStoreResponse = self.shared.yokan(
            Rpc::DocStoreDirect,
            &DocStoreDirectRequest {
                mode: yokan_mode::NO_RDMA,
                timeout_ms: 0.0,
                coll_name: HgString::new(coll.to_string()),
                sizes: vec![doc.len() as u64],
                docs: doc.into_bytes(),
            },
        )?;
        check_yokan("doc_store", stored.ret)?;
        let id = stored.ids.first().copied().ok_or_else(|| {
            mofka_err(format!(
                "the master database stored a partition of {coll:?} without giving its index"
            ))
        })?;
        Ok(id as usize)
    }

    /// The address of server `rank` of the group.
    fn server(&self, rank: usize) -> Result<&String> {
        self.shared.members.get(rank).ok_or_else(|| {
            Error::config(
                "mofka partition",
                format!(
                    "server_rank {rank} is out of range: the group has {} server(s)",
                    self.shared.members.len()
                ),
            )
        })
    }
}

/// How [`MofkaDriver::add_partition`] starts a partition: the C++ driver's
/// `addCustomPartition` arguments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartitionSpec {
    /// Index of the server in the group file's members ([`MofkaDriver::servers`]).
    pub server_rank: usize,
    /// The partition manager's type: `memory` (when empty) or another type the service knows
    /// (`default` on Mofka 0.9).
    pub partition_type: String,
    /// The partition manager's configuration (`{}` when null).
    pub config: Value,
    /// Bedrock dependencies of the provider, each a provider name or a list of them (for
    /// example the `metadata` and `data` providers a legacy partition uses);
    /// `master_database` is always set to the topic's master.
    pub dependencies: serde_json::Map<String, Value>,
    /// Argobots pool of the provider on its server (default `__primary__`).
    pub pool: Option<String>,
}

/// Reads a topic's partition options, under this driver's names (`num_partitions`,
/// `partition_type`) or the C++ driver's (`partitions`, `partitions_type`,
/// `partitions_config`, `partitions_dependencies`, `partitions_pool`).
fn topic_partition_options(options: &Value) -> Result<(usize, PartitionSpec)> {
    let bad = |m: String| Error::config("topic", m);
    let get = |ours: &str, theirs: &str| {
        let set = |k: &str| options.get(k).filter(|v| !v.is_null());
        set(ours).or_else(|| set(theirs))
    };
    let n = match get("num_partitions", "partitions") {
        None => 1,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=1 << 16).contains(n))
            .ok_or_else(|| {
                bad(format!(
                    "\"num_partitions\" (or \"partitions\") must be an integer from 1 to \
                     65536, not {v}"
                ))
            })? as usize,
    };
    let partition_type = match get("partition_type", "partitions_type") {
        None => "memory".to_string(),
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        Some(v) => {
            return Err(bad(format!(
                "\"partition_type\" (or \"partitions_type\") must be a name, not {v}"
            )))
        }
    };
    let config = match get("partition_config", "partitions_config") {
        None => json!({}),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(v) => {
            return Err(bad(format!(
                "\"partition_config\" (or \"partitions_config\") must be an object, not {v}"
            )))
        }
    };
    // Like the C++ driver: each dependency is a provider name or a list of them.
    let dependency = |v: &Value| match v {
        Value::String(_) => true,
        Value::Array(a) => a.iter().all(Value::is_string),
        _ => false,
    };
    let dependencies = match get("partition_dependencies", "partitions_dependencies") {
        None => serde_json::Map::new(),
        Some(Value::Object(m)) if m.values().all(dependency) => m.clone(),
        Some(v) => {
            return Err(bad(format!(
                "\"partition_dependencies\" (or \"partitions_dependencies\") must map names \
                 to a provider or a list of providers, not {v}"
            )))
        }
    };
    let pool = match get("partition_pool", "partitions_pool") {
        None => None,
        Some(Value::String(p)) => (!p.is_empty()).then(|| p.clone()),
        Some(v) => {
            return Err(bad(format!(
                "\"partition_pool\" (or \"partitions_pool\") must be a string, not {v}"
            )))
        }
    };
    Ok((
        n,
        PartitionSpec {
            server_rank: 0,
            partition_type,
            config,
            dependencies,
            pool,
        },
    ))
}

impl DriverBackend for MofkaDriver {
    fn name(&self) -> &'static str {
        "mofka"
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn create_topic(
        &self,
        name: &str,
        options: &Value,
        components: &TopicComponents,
    ) -> Result<()> {
        check_topic_name(name)?;
        let (n, spec) = topic_partition_options(options)?;
        let infos = vec![PartitionInfo::default(); n];
        components.partition_selector.set_partitions(&infos);
        let values = [
            components.validator.metadata(),
            components.partition_selector.metadata(),
            components.serializer.metadata(),
        ];
        let keys: Vec<String> = COMPONENT_KEYS
            .iter()
            .map(|k| format!("{KEY_PREFIX}{name}:{k}"))
            .collect();
        let vals: Vec<Vec<u8>> = values
            .iter()
            .map(|v| crate::json::to_compact_string(v).into_bytes())
            .collect();
        let status: YokanStatus = self.shared.yokan(
            Rpc::PutDirect,
            &PutDirectRequest {
                mode: yokan_mode::NEW_ONLY | yokan_mode::NO_RDMA,
                timeout_ms: 0.0,
                ksizes: keys.iter().map(|k| k.len() as u64).collect(),
                vsizes: vals.iter().map(|v| v.len() as u64).collect(),
                keys: keys.iter().flat_map(|k| k.bytes()).collect(),
                vals: vals.concat(),
            },
        )?;
        if status.ret == YokanStatus::KEY_EXISTS {
            return Err(Error::TopicExists(name.to_string()));
        }
        check_yokan("put", status.ret)?;
        let coll = format!("{KEY_PREFIX}{name}:partitions");
        let status: YokanStatus = self.shared.yokan(
            Rpc::CollCreate,
            &CollCreateRequest {
                mode: yokan_mode::DEFAULT,
                timeout_ms: 0.0,
                coll_name: HgString::new(coll.clone()),
            },
        )?;
        // Yokan's multi-key put skips keys that exist without an error, so the collection is
        // what tells that the topic exists (and which of two concurrent creators won).
        if status.ret == YokanStatus::KEY_EXISTS {
            return Err(Error::TopicExists(name.to_string()));
        }
        check_yokan("coll_create", status.ret)?;
        // Like the C++ driver, partitions go round robin over the group's servers; a server
        // that cannot be reached (a stale member of the group file) passes its turn on.
        // A server that cannot be reached at all is skipped for the rest of the topic; one that
        // does not answer in time is not (it may still start the partition), and fails.
        let servers = self.shared.members.len();
        let mut unreachable: Vec<(usize, String)> = Vec::new();
        for i in 0..n {
            let mut started = None;
            for k in 0..servers {
                let rank = (i + k) % servers;
                if unreachable.iter().any(|(r, _)| *r == rank) {
                    continue;
                }
                let spec = PartitionSpec {
                    server_rank: rank,
                    ..spec.clone()
                };
                match self.start_provider(name, &spec) {
                    Err(e @ Error::Transport { code, .. })
                        if code != mercury_sys::HG_TIMEOUT as i32 =>
                    {
                        unreachable.push((rank, e.to_string()));
                    }
                    r => {
                        started = Some((rank, r?));
                        break;
                    }
                }
            }
            let Some((rank, (provider_id, uuid))) = started else {
                let why: Vec<&str> = unreachable.iter().map(|(_, e)| e.as_str()).collect();
                return Err(mofka_err(format!(
                    "no server of the group could start partition {i} of topic {name:?}: {}",
                    why.join("; ")
                )));
            };
            self.record_partition(&coll, rank, provider_id, &uuid)?;
        }
        Ok(())
    }

    fn open_topic(&self, name: &str) -> Result<Arc<dyn TopicBackend>> {
        check_topic_name(name)?;
        let keys: Vec<String> = COMPONENT_KEYS
            .iter()
            .map(|k| format!("{KEY_PREFIX}{name}:{k}"))
            .collect();
        let values = self.shared.get_keys(&keys)?;
        if values.iter().all(Option::is_none) {
            return Err(Error::TopicNotFound(name.to_string()));
        }
        let configs: Vec<Value> = values
            .iter()
            .map(|v| match v {
                Some(b) => serde_json::from_slice(b).map_err(|e| {
                    mofka_err(format!("a component of topic {name:?} is not JSON: {e}"))
                }),
                None => Ok(Value::Null),
            })
            .collect::<Result<_>>()?;
        let components = TopicComponents::from_configs(&configs[0], &configs[1], &configs[2])
            .map_err(|e| Error::config("topic", format!("topic {name:?}: {e}")))?;
        let docs = self
            .shared
            .list_partitions(name)?
            .ok_or_else(|| mofka_err(format!("topic {name:?} has no partition collection")))?;
        let mut partitions = Vec::with_capacity(docs.len());
        for d in docs {
            let address = d.get("address").and_then(Value::as_str);
            let provider = d.get("provider_id").and_then(Value::as_u64);
            match (address, provider) {
                (Some(a), Some(p)) if p <= u16::MAX as u64 => {
                    partitions.push(PartitionRef {
                        address: a.to_string(),
                        provider_id: p as u16,
                        info: Metadata::new(d.clone()),
                    });
                }
                _ => return Err(mofka_err(format!("bad partition document {d}"))),
            }
        }
        if partitions.is_empty() {
            return Err(mofka_err(format!("topic {name:?} has no partition")));
        }
        let infos: Vec<PartitionInfo> = partitions.iter().map(|p| p.info.clone()).collect();
        components.partition_selector.set_partitions(&infos);
        Ok(Arc::new(MofkaTopic {
            name: name.to_string(),
            shared: self.shared.clone(),
            partitions,
            components,
            producer_name: format!("diaspora-rs-{}", std::process::id()),
            ack_early: false,
            slots: Arc::default(),
        }))
    }

    fn topic_exists(&self, name: &str) -> Result<bool> {
        check_topic_name(name)?;
        let values = self
            .shared
            .get_keys(&[format!("{KEY_PREFIX}{name}:validator")])?;
        Ok(values[0].is_some())
    }

    fn list_topics(&self) -> Result<BTreeMap<String, Value>> {
        let mut names = std::collections::BTreeSet::new();
        let mut from = Vec::new();
        loop {
            let r: ListKeysDirectResponse = self.shared.yokan(
                Rpc::ListKeysDirect,
                &ListKeysDirectRequest {
                    mode: yokan_mode::NO_RDMA,
                    timeout_ms: 0.0,
                    count: 256,
                    from_key: from.clone(),
                    filter: KEY_PREFIX.as_bytes().to_vec(),
                    keys_buf_size: 256 * 1024,
                },
            )?;
            check_yokan("list_keys", r.ret)?;
            let sizes: Vec<u64> = r
                .ksizes
                .iter()
                .copied()
                .take_while(|&s| s < yokan_mode::NO_MORE)
                .collect();
            let keys = split_entries(&sizes, &r.keys)?;
            for k in &keys {
                let k = String::from_utf8_lossy(k);
                if let Some(rest) = k.strip_prefix(KEY_PREFIX) {
                    if let Some((topic, _)) = rest.rsplit_once(':') {
                        names.insert(topic.to_string());
                    }
                }
            }
            match keys.last() {
                Some(last) if keys.len() == 256 => from = last.to_vec(),
                _ => break,
            }
        }
        let mut out = BTreeMap::new();
        for name in names {
            let n = self
                .shared
                .list_partitions(&name)?
                .map(|d| d.len())
                .unwrap_or(0);
            out.insert(name.clone(), json!({"name": name, "num_partitions": n}));
        }
        Ok(out)
    }
}

/// The Bedrock provider name of a partition: `<topic>_partition_<uuid prefix>`, with every
/// character Bedrock refuses in names (anything but ASCII letters, digits and `_`, or a leading
/// digit) replaced by `_`.
fn provider_name(topic: &str, uuid: &str) -> String {
    let mut name: String = format!("{topic}_partition_{}", &uuid[..8])
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

fn check_topic_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(':') || name.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "invalid topic name {name:?}: it must be non-empty and contain no ':'"
        )));
    }
    Ok(())
}

#[derive(Clone)]
struct PartitionRef {
    address: String,
    provider_id: u16,
    info: PartitionInfo,
}

/// An open Mofka topic.
#[derive(Clone)]
struct MofkaTopic {
    name: String,
    shared: Arc<Shared>,
    partitions: Vec<PartitionRef>,
    components: TopicComponents,
    producer_name: String,
    ack_early: bool,
    slots: Arc<PartitionSlots>,
}

impl MofkaTopic {
    fn partition(&self, p: usize) -> Result<&PartitionRef> {
        crate::backend::partition_at(&self.name, &self.partitions, p)
    }

    fn call<Q: WireMessage, R: WireMessage>(&self, p: usize, rpc: Rpc, body: &Q) -> Result<R> {
        let part = self.partition(p)?;
        self.shared
            .caller
            .call(&part.address, rpc.name(), part.provider_id, body)
    }

    /// Subscribes `ctx` to partitions `parts` under consumer name `name`.
    fn subscribe(
        &self,
        ctx: u64,
        name: &str,
        parts: &[usize],
        batch_size: u64,
    ) -> Result<Arc<Inbox>> {
        let inbox = Arc::new(Inbox {
            state: Mutex::new(InboxState::default()),
            changed: Condvar::new(),
        });
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

    /// Exposes a batch's metadata and data for the partition to pull, and encodes the
    /// `send_batch` request. The bulks must live until the service answered.
    fn prepare_batch(
        &self,
        partition: usize,
        batch: &EventBatch,
    ) -> Result<(Vec<LocalBulk>, Vec<u8>)> {
        self.partition(partition)?;
        let n = batch.len();
        let meta_sizes: Vec<u64> = (0..n).map(|i| batch.metadata_of(i).len() as u64).collect();
        let mut meta = layout::encode_sizes(&meta_sizes);
        if batch.metadata_bytes().is_empty() {
            // Same padding as for the data below (possible with a custom serializer).
            meta.push(0);
        } else {
            meta.extend_from_slice(batch.metadata_bytes());
        }
        let meta_segments = vec![Bytes::from(meta)];
        let data_sizes: Vec<u64> = (0..n).map(|i| batch.data_of(i).size() as u64).collect();
        let mut data_segments = pack_region(
            &data_sizes,
            (0..n).flat_map(|i| batch.data_of(i).segments().iter()),
            self.shared.pack_threshold,
        );
        if data_sizes.iter().all(|&s| s == 0) {
            // A data region holding only the sizes makes Mofka 0.8.3's memory partition
            // register a zero-length segment, which Mercury's OFI plugin refuses once the
            // partition holds data (the segment's address is then not null). One byte of
            // padding after the sizes is stored and never referenced (every size says 0).
            data_segments.push(Bytes::from_static(&[0]));
        }
        let (meta_bulk, metadata) = self.shared.caller.expose(meta_segments)?;
        let (data_bulk, data) = self.shared.caller.expose(data_segments)?;
        let payload = super::rpc::encode_request(
            self.shared.caller.version,
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

    /// Sends the `request_data` call of one read, with `dst` exposed for the service to push
    /// into; `None` when nothing is to be read.
    #[allow(clippy::type_complexity)]
    fn start_read(
        &self,
        target: &crate::mercury::Address,
        id: u64,
        read: &mut DataRead<'_>,
    ) -> Result<Option<(LocalBulk, crate::future::Future<Bytes>)>> {
        let total: u64 = read.ranges.iter().map(|r| r.1).sum();
        if total == 0 {
            return Ok(None);
        }
        let base = read
            .event
            .descriptor
            .as_ref()
            .ok_or_else(|| mofka_err("event without a data descriptor"))?;
        let selected = base.unstructured_view(read.ranges)?;
        // The destination segments, trimmed to the selected size.
        let mut segments = Vec::new();
        let mut left = total as usize;
        for d in read.dst.iter_mut() {
            if left == 0 {
                break;
            }
            let n = d.len().min(left);
            if n > 0 {
                segments.push((d.as_mut_ptr(), n));
                left -= n;
            }
        }
        if left > 0 {
            return Err(Error::DataSelection(format!(
                "the destination holds {left} bytes fewer than the {total} selected"
            )));
        }
        let caller = &self.shared.caller;
        // SAFETY: `dst` is borrowed mutably by the caller of `read_data_many`, which waits for
        // the answer to this request (sent after the service's push completed) before it
        // returns.
        let bulk = unsafe {
            LocalBulk::from_raw_segments(&caller.engine, &segments, BulkAccess::WriteOnly)?
        };
        let dest = caller.describe(&bulk)?;
        let payload = super::rpc::encode_request(
            caller.version,
            &RequestDataRequest {
                descriptor: selected,
                dest,
            },
        );
        // Waited for without a timeout: returning early would let the service write into
        // memory the caller may have freed.
        Ok(Some((bulk, caller.engine.forward(target, id, &payload))))
    }

    /// Fetches the whole data of `events` that lack it (consumers without selector or
    /// allocator), with up to [`DATA_REQUESTS_IN_FLIGHT`] `request_data` calls at a time.
    fn fill_whole_data(&self, p: usize, events: &mut [StoredEvent]) -> Result<()> {
        let part = self.partition(p)?;
        let caller = &self.shared.caller;
        let target = caller.address(&part.address)?;
        let id = rpc_id(Rpc::RequestData.name(), part.provider_id);
        let todo: Vec<usize> = (0..events.len())
            .filter(|&i| events[i].data.is_none())
            .collect();
        for window in todo.chunks(DATA_REQUESTS_IN_FLIGHT) {
            let mut pending = Vec::with_capacity(window.len());
            let mut first_error = None;
            for &i in window {
                let ev = &events[i];
                if ev.data_size == 0 {
                    continue;
                }
                let started = (|| -> Result<_> {
                    let descriptor = ev
                        .descriptor
                        .clone()
                        .ok_or_else(|| mofka_err("event without a data descriptor"))?;
                    let bulk = LocalBulk::from_vec(
                        &caller.engine,
                        vec![0u8; ev.data_size as usize],
                        BulkAccess::WriteOnly,
                    )?;
                    let dest = caller.describe(&bulk)?;
                    let payload = super::rpc::encode_request(
                        caller.version,
                        &RequestDataRequest { descriptor, dest },
                    );
                    Ok((bulk, caller.engine.forward(&target, id, &payload)))
                })();
                match started {
                    Ok((bulk, reply)) => pending.push((i, bulk, reply)),
                    Err(e) => {
                        first_error.get_or_insert(e);
                        break;
                    }
                }
            }
            // Every started request is waited for, even after an error: the service may still
            // be writing into its buffer.
            for (i, bulk, reply) in pending {
                let result = reply
                    .wait()
                    .and_then(|r| check_request_data(caller.version, &r, events[i].id));
                match result {
                    Ok(()) => events[i].data = bulk.into_vec().map(Bytes::from),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        for ev in events
            .iter_mut()
            .filter(|ev| ev.data.is_none() && ev.data_size == 0)
        {
            ev.data = Some(Bytes::new());
        }
        Ok(())
    }
}

/// Sends a prepared batch. When it cannot be sent at all, the partition's next prepared batch
/// is sent instead, and so on: the batches that failed that way are returned, in order, for
/// the caller to report after what it must report first.
///
/// A sent batch's completion (on the progress thread) sends the partition's next prepared
/// batch before reporting its own outcome, so that the service is not kept waiting for
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
                if completion.timed_out.load(Ordering::SeqCst) {
                    next_shared.bury(bulks);
                } else {
                    drop(bulks);
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
                *lock(&pending.token) = Some(token);
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
        // One batch in flight per partition, like the C++ client: the service may handle two
        // requests of one partition in any order. The next one is prepared meanwhile and sent
        // by the completion of the first; batches for other partitions go out meanwhile.
        let started = self
            .prepare_batch(partition, &batch)
            .and_then(|(bulks, payload)| {
                let part = self.partition(partition)?;
                Ok((
                    bulks,
                    payload,
                    self.shared.caller.address(&part.address)?,
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
            pending: Arc::new(PendingBatch {
                done: Mutex::new(Some(done)),
                token: Mutex::new(None),
                timed_out: std::sync::atomic::AtomicBool::new(false),
                partition,
            }),
        };
        if let Some(ready) = self.slots.submit(partition, ready) {
            for (batch, e) in send_prepared(&self.shared, &self.slots, ready) {
                batch.finish(Err(e));
            }
        }
    }

    fn open_reader(
        &self,
        consumer: &str,
        partitions: &[usize],
        options: &Value,
    ) -> Result<Option<Box<dyn PartitionReader>>> {
        for &p in partitions {
            self.partition(p)?;
        }
        let batch_size = match options.get("batch_size") {
            None | Some(Value::Null) => DEFAULT_BATCH_SIZE,
            Some(v) => v.as_u64().filter(|&b| b > 0).ok_or_else(|| {
                Error::config(
                    "consumer",
                    format!("\"batch_size\" must be a positive integer, not {v}"),
                )
            })?,
        };
        let ctx = self.shared.new_ctx();
        let inbox = self.subscribe(ctx, consumer, partitions, batch_size)?;
        Ok(Some(Box::new(MofkaReader {
            topic: self.clone(),
            ctx,
            inbox,
            parts: partitions.to_vec(),
            last_alive: Instant::now(),
        })))
    }

    fn for_producer(&self, options: &Value) -> Result<Option<Arc<dyn TopicBackend>>> {
        let name = options.get("producer_name").and_then(Value::as_str);
        let ack_early = options.get("ack_early").and_then(Value::as_bool);
        if name.is_none() && ack_early.is_none() {
            return Ok(None);
        }
        let mut topic = self.clone();
        topic.slots = Arc::default();
        if let Some(name) = name {
            topic.producer_name = name.to_string();
        }
        topic.ack_early = ack_early.unwrap_or(self.ack_early);
        Ok(Some(Arc::new(topic)))
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
        // Mofka has no random access: subscribe under a fresh name (cursor 0), skip to `from`,
        // and stop when the feed has been quiet for a moment.
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
        let mut results: Vec<Result<()>> = Vec::with_capacity(reads.len());
        let (part, target) = match self
            .partition(partition)
            .and_then(|part| Ok((part, self.shared.caller.address(&part.address)?)))
        {
            Ok(x) => x,
            Err(e) => return reads.iter().map(|_| Err(e.clone())).collect(),
        };
        let id = rpc_id(Rpc::RequestData.name(), part.provider_id);
        for window in reads.chunks_mut(DATA_REQUESTS_IN_FLIGHT) {
            // Start every read of the window, then wait for all of them: the service writes
            // straight into `dst`, so no call may return while a request is outstanding.
            let mut pending = Vec::with_capacity(window.len());
            for r in window.iter_mut() {
                pending.push(self.start_read(&target, id, r));
            }
            for (r, started) in window.iter().zip(pending) {
                results.push(match started {
                    Ok(None) => Ok(()),
                    Ok(Some((bulk, reply))) => {
                        let reply = reply.wait();
                        drop(bulk);
                        reply.and_then(|reply| {
                            check_request_data(self.shared.caller.version, &reply, r.event.id)
                        })
                    }
                    Err(e) => Err(e),
                });
            }
        }
        results
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

/// A consumer's subscription to some partitions.
struct MofkaReader {
    topic: MofkaTopic,
    ctx: u64,
    inbox: Arc<Inbox>,
    parts: Vec<usize>,
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
        let payload = super::rpc::encode_request(
            shared.caller.version,
            &QueryConfigRequest {
                script: MASTER_QUERY.to_string(),
            },
        );
        type Asked = (crate::future::Future<Bytes>, crate::mercury::ForwardToken);
        let mut asked: Vec<(usize, &str, Result<Asked>)> = Vec::new();
        for &p in &self.parts {
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
            let mut taken = 0;
            if let Some(q) = st.queues.get_mut(&(partition as u64)) {
                while out.len() < max_events {
                    match q.pop_front() {
                        Some(ev) => {
                            taken += 1;
                            if ev.id >= from {
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
        self.topic.unsubscribe(self.ctx, &self.parts);
    }
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
