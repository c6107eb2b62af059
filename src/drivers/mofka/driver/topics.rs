//! Topic administration ([`DriverBackend`] for [`MofkaDriver`]): creating a topic (its
//! components under three keys of the master database, its partition collection, and its
//! partitions started round robin over the group's servers), opening, testing and listing
//! topics.

use super::config::{topic_partition_options, PartitionSpec};
use super::partitions::{PartitionRef, Partitions};
use super::shared::{check_topic_name, check_yokan, COMPONENT_KEYS, KEY_PREFIX};
use super::topic::MofkaTopic;
use super::{mofka_err, MofkaDriver};
use crate::backend::{DriverBackend, TopicBackend};
use crate::components::TopicComponents;
use crate::drivers::mofka::wire::*;
use crate::error::{Error, Result};
use crate::metadata::{Metadata, PartitionInfo};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

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
                        layout: Default::default(),
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
        Ok(Arc::new(MofkaTopic::new(
            Partitions {
                topic: name.to_string(),
                shared: self.shared.clone(),
                list: partitions,
            },
            components,
        )))
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
        for k in self.shared.list_keys(KEY_PREFIX)? {
            let k = String::from_utf8_lossy(&k);
            if let Some(rest) = k.strip_prefix(KEY_PREFIX) {
                if let Some((topic, _)) = rest.rsplit_once(':') {
                    names.insert(topic.to_string());
                }
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
