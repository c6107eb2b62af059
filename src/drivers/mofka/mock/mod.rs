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
//!
//! This module holds the service and its Bedrock side; the master database is in `yokan`, the
//! partitions in `partition`.

mod partition;
mod yokan;

use super::rpc::{decode_request, respond, Caller};
use super::wire::*;
use crate::error::{Error, Result};
use crate::margo::rpc_id;
use crate::mercury::{Engine, EngineOptions, Request};
use partition::{register_partition, Partition};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Provider id of the mock's Yokan master database.
pub const MASTER_PROVIDER_ID: u16 = 1;
/// First provider id given to partitions.
const FIRST_PARTITION_PROVIDER_ID: u16 = 10;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The service: its call layer, the master database's contents and the partitions.
struct State {
    caller: Caller,
    kv: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    collections: Mutex<HashMap<String, Vec<Vec<u8>>>>,
    next_provider: Mutex<u16>,
    partitions: Mutex<HashMap<u16, Arc<Partition>>>,
    stopping: AtomicBool,
    /// `request_data` calls answered.
    data_requests: std::sync::atomic::AtomicU64,
    /// The next batch fed to a consumer announces one event more than it carries (a test of
    /// what a consumer does with a batch it cannot receive).
    damage_next_batch: AtomicBool,
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
            data_requests: Default::default(),
            damage_next_batch: AtomicBool::new(false),
        });
        register_bedrock(&state)?;
        yokan::register_yokan(&state)?;
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

    /// Makes the next batch fed to a consumer announce one event more than it carries, so
    /// that the consumer cannot receive it (tests of how that is reported).
    pub fn damage_next_batch(&self) {
        self.state.damage_next_batch.store(true, Ordering::SeqCst);
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

    /// Number of `request_data` calls the partitions answered so far.
    pub fn data_requests(&self) -> u64 {
        self.state.data_requests.load(Ordering::SeqCst)
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
        |state, q: QueryConfigRequest, req| {
            // The two queries clients send: the master database's id, or the partition types
            // (the script reads the providers' `config.type`).
            let content = if q.script.contains("config.type") {
                let types: Vec<Value> = lock(&state.partitions)
                    .iter()
                    .map(|(id, p)| serde_json::json!([id, p.kind]))
                    .collect();
                Value::from(types).to_string()
            } else {
                format!("[{MASTER_PROVIDER_ID}]")
            };
            let body = QueryConfigResponse {
                success: true,
                content,
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
    let kind = d
        .pointer("/config/type")
        .and_then(Value::as_str)
        .unwrap_or("memory");
    let partition = Arc::new(Partition::new(kind));
    lock(&state.partitions).insert(id, partition.clone());
    register_partition(state, id, partition).map_err(|e| e.to_string())?;
    Ok(id)
}
