//! The mock's master database: a Yokan provider ([`MASTER_PROVIDER_ID`]) answering
//! `__identity__` and the `*_direct` key/value and document calls a client makes, in memory.

use super::{lock, serve, version, State, MASTER_PROVIDER_ID};
use crate::drivers::mofka::rpc::respond;
use crate::drivers::mofka::wire::layout::split_entries;
use crate::drivers::mofka::wire::*;
use crate::error::Result;
use std::sync::Arc;

/// Registers the master database's handlers (provider [`MASTER_PROVIDER_ID`]).
pub(super) fn register_yokan(state: &Arc<State>) -> Result<()> {
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
