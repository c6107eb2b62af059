//! Reading events' data (`request_data`, methods of a topic's [`Partitions`]): the partition
//! pushes the selected bytes by RDMA into memory this client exposes, either the
//! application's destination buffers (reads with a data selector or allocator) or buffers
//! made for whole events.

use super::mofka_err;
use super::partitions::Partitions;
use crate::backend::{DataRead, StoredEvent};
use crate::drivers::mofka::rpc::{decode_response, encode_request};
use crate::drivers::mofka::wire::*;
use crate::error::{Error, Result};
use crate::margo::rpc_id;
use crate::mercury::{Address, BulkAccess, LocalBulk};
use crate::types::EventId;
use bytes::Bytes;

/// `request_data` calls a consumer keeps in flight when it reads whole events.
pub(super) const DATA_REQUESTS_IN_FLIGHT: usize = 32;

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

impl Partitions {
    /// Sends the `request_data` call of one read, with `dst` exposed for the service to push
    /// into; `None` when nothing is to be read.
    #[allow(clippy::type_complexity)]
    fn start_read(
        &self,
        target: &Address,
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
        let payload = encode_request(
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
    pub(super) fn fill_whole_data(&self, p: usize, events: &mut [StoredEvent]) -> Result<()> {
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
                    let payload =
                        encode_request(caller.version, &RequestDataRequest { descriptor, dest });
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

    /// Performs `reads` of `partition`, [`DATA_REQUESTS_IN_FLIGHT`] at a time: one result per
    /// read, in order.
    pub(super) fn read_many(
        &self,
        partition: usize,
        reads: &mut [DataRead<'_>],
    ) -> Vec<Result<()>> {
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
}
