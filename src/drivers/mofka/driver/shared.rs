//! What the driver, its topics and the `recv_batch` handler share ([`Shared`]): the call
//! layer, the group's servers, the master database and its Yokan calls (keys and the
//! partition collections), consumer inboxes, the watchdog of batches in flight and the memory
//! of cancelled batches; and the master database's naming rules ([`KEY_PREFIX`],
//! [`check_topic_name`]).

use super::state::{Inbox, Watchdog};
use super::{lock, mofka_err};
use crate::drivers::mofka::rpc::Caller;
use crate::drivers::mofka::wire::layout::split_entries;
use crate::drivers::mofka::wire::*;
use crate::error::{Error, Result};
use crate::mercury::{BulkAccess, LocalBulk};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Prefix of every key and collection of the master database that describes a topic:
/// `MOFKA:GLOBAL:<topic>:{validator,selector,serializer}` and `MOFKA:GLOBAL:<topic>:partitions`.
pub(super) const KEY_PREFIX: &str = "MOFKA:GLOBAL:";
/// The keys of a topic's components, after `<KEY_PREFIX><topic>:`.
pub(super) const COMPONENT_KEYS: [&str; 3] = ["validator", "selector", "serializer"];

/// State shared by the driver, its topics and the `recv_batch` handler.
pub(super) struct Shared {
    /// Calls and bulk transfers over this client's Mercury engine.
    pub(super) caller: Caller,
    /// The group's servers, in the group file's order (partitions go round robin over them).
    pub(super) members: Vec<String>,
    /// The Yokan provider holding the topics (`mofka:master`): its server and provider id.
    pub(super) master: (String, u16),
    /// Consumer subscriptions by context id, filled by the `recv_batch` handler.
    pub(super) inboxes: Mutex<HashMap<u64, Arc<Inbox>>>,
    /// Counter behind [`Shared::new_ctx`].
    pub(super) next_ctx: AtomicU64,
    /// Fails batches sent without an answer in time.
    pub(super) watchdog: Arc<Watchdog>,
    /// See [`super::producer::pack_region`].
    pub(super) pack_threshold: usize,
    /// Memory of cancelled batches, kept for a while (see [`Shared::bury`]).
    pub(super) graveyard: Mutex<VecDeque<(Instant, Vec<LocalBulk>)>>,
    /// Exposed buffers that producers pack batches into, reused from batch to batch (see
    /// [`Shared::take_region`]).
    pub(super) regions: Mutex<Vec<LocalBulk>>,
    /// How long a consumer goes without events before checking that its servers answer.
    pub(super) liveness: Option<Duration>,
    /// How often producers renew their liveness lease (see [`super::own_keys`]; `None`: they
    /// keep none).
    pub(super) lease_interval: Option<Duration>,
}

/// The smallest buffer [`Shared::take_region`] makes.
const MIN_REGION: usize = 64 << 10;
/// How many packing buffers a driver keeps.
const MAX_REGIONS: usize = 32;
/// How many bytes of packing buffers a driver keeps.
const MAX_REGION_BYTES: usize = 128 << 20;

impl Shared {
    /// Calls the master database.
    pub(super) fn yokan<Q: WireMessage, R: WireMessage>(&self, rpc: Rpc, body: &Q) -> Result<R> {
        self.caller
            .call(&self.master.0, rpc.name(), self.master.1, body)
    }

    /// Keeps the memory of a cancelled batch exposed for at least ten call timeouts:
    /// cancelling only ends this side of the request, and a service still handling it may go
    /// on reading the batch (over shared memory it reads this process's memory directly), so
    /// freeing it at once could let the service store reused bytes. Entries are released by
    /// [`Shared::prune_graveyard`] (on each batch sent) and when the driver goes.
    pub(super) fn bury(&self, bulks: Vec<LocalBulk>) {
        self.prune_graveyard();
        lock(&self.graveyard).push_back((Instant::now(), bulks));
    }

    /// An exposed (read-only for peers) buffer of at least `len` bytes to pack a batch's
    /// region into: a kept one of a fitting size, or a new one. A steady stream of batches
    /// then allocates and registers no memory; [`Shared::recycle`] takes them back.
    pub(super) fn take_region(&self, len: usize) -> Result<LocalBulk> {
        let size = len.max(MIN_REGION).next_power_of_two();
        {
            let mut regions = lock(&self.regions);
            if let Some(i) = regions
                .iter()
                .position(|r| r.size() >= len && r.size() <= size * 2)
            {
                return Ok(regions.swap_remove(i));
            }
        }
        LocalBulk::from_vec(&self.caller.engine, vec![0; size], BulkAccess::ReadOnly)
    }

    /// Takes back the buffers of a batch the service answered: those from
    /// [`Shared::take_region`] are kept (up to [`MAX_REGIONS`] and [`MAX_REGION_BYTES`] in
    /// all), the others are released.
    pub(super) fn recycle(&self, bulks: Vec<LocalBulk>) {
        let mut regions = lock(&self.regions);
        for mut bulk in bulks {
            let kept: usize = regions.iter().map(LocalBulk::size).sum();
            if bulk.owned_mut().is_some()
                && regions.len() < MAX_REGIONS
                && kept + bulk.size() <= MAX_REGION_BYTES
            {
                regions.push(bulk);
            }
        }
    }

    /// Releases the cancelled batches kept longer than ten call timeouts.
    pub(super) fn prune_graveyard(&self) {
        let mut graveyard = lock(&self.graveyard);
        let grace = self.caller.timeout.saturating_mul(10);
        while graveyard.front().is_some_and(|(t, _)| t.elapsed() > grace) {
            graveyard.pop_front();
        }
    }

    /// A consumer context id unique to this client: the process id, then a counter.
    pub(super) fn new_ctx(&self) -> u64 {
        (u64::from(std::process::id()) << 32) | self.next_ctx.fetch_add(1, Ordering::Relaxed)
    }

    /// The values of `keys` in the master database (`None` for a missing key).
    pub(super) fn get_keys(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
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
                // Room for values that grew since their length was asked.
                vbufsize: total + 256 * keys.len() as u64,
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

    /// Stores `pairs` (key, value), replacing the values of keys that exist.
    pub(super) fn put_keys(&self, pairs: &[(String, Vec<u8>)]) -> Result<()> {
        let status: YokanStatus = self.yokan(
            Rpc::PutDirect,
            &PutDirectRequest {
                mode: yokan_mode::NO_RDMA,
                timeout_ms: 0.0,
                ksizes: pairs.iter().map(|(k, _)| k.len() as u64).collect(),
                vsizes: pairs.iter().map(|(_, v)| v.len() as u64).collect(),
                keys: pairs.iter().flat_map(|(k, _)| k.bytes()).collect(),
                vals: pairs.iter().flat_map(|(_, v)| v.iter().copied()).collect(),
            },
        )?;
        check_yokan("put", status.ret)
    }

    /// Every key of the master database that starts with `prefix`, in key order.
    pub(super) fn list_keys(&self, prefix: &str) -> Result<Vec<Vec<u8>>> {
        const PAGE: usize = 256;
        let mut out: Vec<Vec<u8>> = Vec::new();
        loop {
            let r: ListKeysDirectResponse = self.yokan(
                Rpc::ListKeysDirect,
                &ListKeysDirectRequest {
                    mode: yokan_mode::NO_RDMA,
                    timeout_ms: 0.0,
                    count: PAGE as u64,
                    from_key: out.last().cloned().unwrap_or_default(),
                    filter: prefix.as_bytes().to_vec(),
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
            let full = keys.len() == PAGE;
            out.extend(keys.iter().map(|k| k.to_vec()));
            if !full {
                return Ok(out);
            }
        }
    }

    /// The partition documents of `topic`, by index; `None` when the topic has no partition
    /// collection.
    pub(super) fn list_partitions(&self, topic: &str) -> Result<Option<Vec<Value>>> {
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

/// Fails unless a Yokan call returned `SUCCESS`.
pub(super) fn check_yokan(what: &str, ret: i32) -> Result<()> {
    if ret == YokanStatus::SUCCESS {
        return Ok(());
    }
    let hint = if ret == YokanStatus::FROM_MERCURY {
        // Seen against Yokan 0.9.x: the request carries the timeout Yokan 0.10 added to every
        // call, which an older provider reads as the next fields.
        "; the master database could not read the request: this client speaks Yokan 0.10's \
         layout, which a Yokan older than 0.10 cannot read"
    } else {
        ""
    };
    Err(mofka_err(format!(
        "Yokan {what} failed with code {ret} ({}){hint}",
        YokanStatus::describe(ret)
    )))
}

/// Refuses names the master database's keys cannot hold (empty, or with `:` or NUL).
pub(super) fn check_topic_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(':') || name.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "invalid topic name {name:?}: it must be non-empty and contain no ':'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yokan_errors_are_named_and_a_layout_mismatch_is_explained() {
        assert!(check_yokan("put", YokanStatus::SUCCESS).is_ok());
        let e = check_yokan("put", YokanStatus::KEY_EXISTS)
            .unwrap_err()
            .to_string();
        assert!(e.contains("code 17 (key exists)"), "{e}");
        let e = check_yokan("put", 10).unwrap_err().to_string();
        assert!(e.contains("code 10 (Mercury error)"), "{e}");
        assert!(e.contains("older than 0.10"), "{e}");
        let e = check_yokan("get", 99).unwrap_err().to_string();
        assert!(e.contains("unknown Yokan error"), "{e}");
    }
}
