//! The `"mofka"` driver: a native client of Mofka services over the Mercury layer.
//!
//! Options (JSON):
//!
//! | key | meaning |
//! |---|---|
//! | `group_file` | (required) the Flock group file of the service (`{"members": [{"address": ...}]}`) |
//! | `wire_version` | `"0.9"` (default) or `"0.8"`: the `send_batch` layout of the service; a string (the number 0.8, what a command line makes of `--driver.wire_version 0.8`, is refused: write `v0.8` there) |
//! | `address` | Mercury address or transport this client listens on (default: the members' protocol, on the members' host for TCP) |
//! | `rpc_timeout_ms` | how long a call waits for its response (default 30000) |
//! | `liveness_ms` | a consumer that gets no event for this long asks its partitions' servers a trivial question (all at once, waiting at most `liveness_ms` or `rpc_timeout_ms` if shorter), and fails its pulls with an error naming one that does not answer (default 5000; 0 disables) |
//! | `lease_interval_ms` | how often a producer renews its liveness lease in the master database (default 1000; 0: no leases; see [`own_keys`]); a consumer's `liveness_timeout` must be longer |
//! | `pack_threshold` | data segments smaller than this many bytes are copied into one contiguous region per batch; larger ones are exposed in place (default 16384; 0 exposes every segment in place) |
//! | `margo` | the C++ driver's Margo configuration: its `"mercury"` settings (`auth_key`, `ip_subnet`, `na_no_block`, `max_contexts`, `request_post_init`, ... see [`TransportOptions::from_margo`](crate::mercury::TransportOptions::from_margo)) initialise this client's Mercury; its thread settings do not apply (this client runs its own progress thread) |
//!
//! An unknown key is an error listing the valid ones; `group_file` and `address` also take a
//! number, as its text.
//!
//! Topic options: `num_partitions` (default 1), `partition_type` (default `"memory"`),
//! `partition_config`, `partition_dependencies` and `partition_pool`, or the C++ driver's names
//! for them (`partitions`, `partitions_type`, ...; given both, this driver's name wins); an
//! unknown topic option is an error too. Partitions go round robin over the group's
//! servers; [`MofkaDriver::add_partition`] adds one to an existing topic on a chosen server.
//! Consumer options: `batch_size` events per `recv_batch` (default 128). Producer options:
//! `producer_name` (default `diaspora-rs-<pid>`), `ack_early` (0.9 only; sent, ignored by
//! current servers). Producers and consumers leave the other keys of their options alone.
//!
//! Discovery follows the C++ client: the first member's Bedrock (provider 0) runs a Jx9 query
//! for the Yokan provider tagged `mofka:master`; a topic is three Yokan keys
//! `MOFKA:GLOBAL:<topic>:{validator,selector,serializer}` and a Yokan collection
//! `MOFKA:GLOBAL:<topic>:partitions` of `{"address", "provider_id", "uuid"}` documents; new
//! partitions are Bedrock providers of type `mofka` started by the client.
//!
//! Consumer positions live in the service (per consumer name, in memory on current servers):
//! a consumer is fed from its name's cursor, and acknowledgements move the cursor. The service
//! cannot tell a client where a cursor is, so acknowledgements are also written to keys of the
//! master database of this library's own ([`own_keys`]), which
//! [`TopicBackend::load_offset`](crate::backend::TopicBackend::load_offset) reads back; so are
//! producers' liveness leases.
//!
//! The parts, each using only those before it: [`config`] reads the options; [`state`] is the
//! consumers' inboxes and the batches in flight; [`shared`] holds what the driver and its
//! topics share (and the master database's calls); [`own_keys`] is what this library keeps in
//! that database besides Mofka's keys; [`discovery`] finds the service;
//! [`partitions`] locates and starts partitions; [`data`] reads event data, [`producer`]
//! sends batches and [`consumer`] feeds consumers, each working on a topic's
//! [`Partitions`](partitions::Partitions); [`topic`] is an open topic, handing its work to
//! those three; and [`topics`] administers topics. This module holds the driver and the
//! helpers every part uses ([`lock`], [`mofka_err`]).

mod config;
mod consumer;
mod data;
mod discovery;
mod own_keys;
mod partitions;
mod producer;
mod shared;
mod state;
mod topic;
mod topics;

pub use config::PartitionSpec;

use crate::error::{Error, Result};
use crate::mercury::{Engine, EngineOptions};
use serde_json::Value;
use shared::Shared;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

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
        let config = config::Config::parse(options)?;
        let members = discovery::read_group_file(&config.group_file)?;
        let info = config
            .address
            .clone()
            .unwrap_or_else(|| discovery::listen_info(&members[0]));
        // Servers call consumers back (recv_batch), so the client listens.
        let engine = Engine::new(
            &info,
            EngineOptions {
                listen: true,
                transport: config.transport.clone(),
                ..Default::default()
            },
        )?;
        let caller = super::rpc::Caller::new(engine.clone(), config.version, config.timeout);
        let master = discovery::find_master(&caller, &members, &config.group_file)?;
        let shared = Arc::new(Shared {
            caller,
            members,
            master,
            inboxes: Mutex::new(HashMap::new()),
            next_ctx: AtomicU64::new(1),
            watchdog: Arc::default(),
            pack_threshold: config.pack_threshold,
            graveyard: Mutex::default(),
            regions: Mutex::default(),
            liveness: config.liveness,
            lease_interval: config.lease_interval,
        });
        consumer::register_recv_batch(&shared)?;
        Ok(MofkaDriver { shared })
    }

    /// The servers of the service's group, in the group file's order (a partition's
    /// `server_rank` indexes this list).
    pub fn servers(&self) -> &[String] {
        &self.shared.members
    }

    /// The Mercury engine this client runs on (tests use it to inject failures).
    #[doc(hidden)]
    pub fn engine(&self) -> &crate::mercury::Engine {
        &self.shared.caller.engine
    }
}

/// Locks `m`, also after a panic of another holder (the state stays usable).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An error of this driver.
fn mofka_err(message: impl Into<String>) -> Error {
    Error::Driver {
        driver: "mofka",
        message: message.into(),
    }
}
