//! A topic's partitions: where each lives ([`PartitionRef`]), an open topic's partitions and
//! the calls to them ([`Partitions`], on which the producer, consumer and data paths work),
//! and starting partitions. A partition is a Bedrock provider of type `mofka` started on one
//! of the group's servers and recorded in its topic's collection of the master database
//! ([`MofkaDriver::add_partition`], with a [`PartitionSpec`], and the topic creation of
//! [`super::topics`]).

use super::config::PartitionSpec;
use super::shared::{check_topic_name, check_yokan, Shared, KEY_PREFIX};
use super::{mofka_err, MofkaDriver};
use crate::drivers::mofka::wire::*;
use crate::error::{Error, Result};
use crate::metadata::PartitionInfo;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Where one partition of a topic lives.
#[derive(Clone)]
pub(super) struct PartitionRef {
    /// The server's Mercury address.
    pub(super) address: String,
    /// The partition's provider id on that server.
    pub(super) provider_id: u16,
    /// The partition's document in the master database, as the application sees it.
    pub(super) info: PartitionInfo,
    /// How the partition stores data, learnt from its server when data is first read.
    pub(super) layout: Arc<OnceLock<DataLayout>>,
}

/// How a partition stores event data, as far as reading it is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DataLayout {
    /// A `memory` partition: one buffer in storage order, so adjacent events are read with one
    /// call (see `data.rs`).
    Memory,
    /// Any other type, or a server that would not say: one call per event.
    Other,
}

/// The partitions of an open topic and the driver's shared state: what the producer path,
/// the consumer path and data reads need of a topic.
#[derive(Clone)]
pub(super) struct Partitions {
    /// The topic's name.
    pub(super) topic: String,
    pub(super) shared: Arc<Shared>,
    /// The topic's partitions, by index.
    pub(super) list: Vec<PartitionRef>,
}

impl Partitions {
    /// Partition `p`, or an error naming the topic's partition count.
    pub(super) fn partition(&self, p: usize) -> Result<&PartitionRef> {
        crate::backend::partition_at(&self.topic, &self.list, p)
    }

    /// How partition `p` stores data: asked once of its server's Bedrock (the partition
    /// provider's `type`); [`DataLayout::Other`] when the server does not say.
    pub(super) fn layout(&self, p: usize) -> DataLayout {
        let Ok(part) = self.partition(p) else {
            return DataLayout::Other;
        };
        *part.layout.get_or_init(|| {
            match super::discovery::partition_types(&self.shared.caller, &part.address) {
                Ok(types) if types.get(&part.provider_id).map(String::as_str) == Some("memory") => {
                    DataLayout::Memory
                }
                _ => DataLayout::Other,
            }
        })
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

/// A random UUID-shaped text (32 hex digits grouped 8-4-4-4-12): a partition's `uuid`.
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

impl MofkaDriver {
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
    pub(super) fn start_provider(
        &self,
        topic: &str,
        spec: &PartitionSpec,
    ) -> Result<(u16, String)> {
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
    pub(super) fn record_partition(
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
