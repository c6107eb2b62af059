//! Reading events' data (`request_data`, methods of a topic's [`Partitions`]): the partition
//! pushes the selected bytes by RDMA into memory this client exposes, either the
//! application's destination buffers (reads with a data selector or allocator) or buffers
//! made for whole events.
//!
//! # One call for many events
//!
//! A `request_data` call carries one data descriptor, in every wire version (0.8 and 0.9: the
//! service wraps it in a list of one for its partition manager). A descriptor names a place
//! in the partition's storage (its "location", whose format the partition type defines) and a
//! selection of bytes from there. In a **memory** partition the location is the offset and
//! size of the event's bytes in one buffer that holds the partition's data in the order it
//! was stored, and the service reads whatever the descriptor selects from there without
//! looking at event boundaries. So a run of events whose data follow each other in that
//! buffer (consecutive events of a partition do) is read with **one** call: a location that
//! spans the run, with an unstructured view selecting each event's selected ranges, pushed
//! by the service in one transfer into the events' destinations laid end to end. Runs hold up
//! to [`MAX_EVENTS_PER_REQUEST`] events and [`MAX_BYTES_PER_REQUEST`] bytes, and up to
//! [`DATA_REQUESTS_IN_FLIGHT`] calls are in flight. Other partition types (`default`, `legacy`,
//! custom ones) get one call per event, as from the C++ client: their locations name files or
//! regions whose adjacency this client cannot check. The type comes from the server's Bedrock
//! (the partition provider's configuration), asked once per partition.

use super::mofka_err;
use super::partitions::{DataLayout, Partitions};
use crate::backend::{DataRead, StoredEvent};
use crate::descriptor::DataDescriptor;
use crate::drivers::mofka::rpc::{decode_response, encode_request};
use crate::drivers::mofka::wire::layout::MemoryLocation;
use crate::drivers::mofka::wire::*;
use crate::error::{Error, Result};
use crate::margo::rpc_id;
use crate::mercury::{Address, BulkAccess, LocalBulk};
use crate::types::EventId;
use bytes::Bytes;
use std::ops::Range;

/// `request_data` calls a consumer keeps in flight.
pub(super) const DATA_REQUESTS_IN_FLIGHT: usize = 32;
/// The most events one `request_data` call reads.
pub(super) const MAX_EVENTS_PER_REQUEST: usize = 256;
/// The most bytes of event data one `request_data` call spans.
pub(super) const MAX_BYTES_PER_REQUEST: u64 = 16 << 20;

/// Checks the response of a `request_data` call for events `ids` (first and last).
fn check_request_data(version: WireVersion, reply: &[u8], ids: (EventId, EventId)) -> Result<()> {
    let what = || {
        if ids.0 == ids.1 {
            format!("event {}", ids.0)
        } else {
            format!("events {} to {}", ids.0, ids.1)
        }
    };
    let results = decode_response::<RequestDataResponse>(version, reply, || {
        format!("mofka_consumer_request_data for {}", what())
    })?
    .into_result()
    .map_err(|e| Error::DataSelection(format!("{}: {e}", what())))?;
    match results.into_iter().next() {
        Some(MofkaResult::Err(e)) => Err(Error::DataSelection(format!("{}: {e}", what()))),
        _ => Ok(()),
    }
}

/// Where an event's data sits in a memory partition, when its descriptor names it plainly.
fn memory_location(descriptor: Option<&DataDescriptor>) -> Option<MemoryLocation> {
    let d = descriptor?;
    if !d.selections().is_empty() {
        return None;
    }
    MemoryLocation::from_bytes(d.location()).filter(|loc| loc.size == d.size())
}

/// Splits events (their locations, in order) into runs that one call may read: consecutive
/// events whose data follow each other, within the limits. Without `coalesce`, or for an
/// event without a plain location, a run is one event.
fn runs(locations: &[Option<MemoryLocation>], coalesce: bool) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut bytes = 0u64;
    for (i, loc) in locations.iter().enumerate() {
        if coalesce {
            if let (Some(last), Some(loc)) = (out.last_mut(), loc) {
                let prev = locations[i - 1];
                let joins = prev.is_some_and(|p| p.offset.checked_add(p.size) == Some(loc.offset))
                    && last.end == i
                    && last.len() < MAX_EVENTS_PER_REQUEST
                    && bytes + loc.size <= MAX_BYTES_PER_REQUEST;
                if joins {
                    last.end = i + 1;
                    bytes += loc.size;
                    continue;
                }
            }
        }
        out.push(i..i + 1);
        bytes = loc.map_or(0, |l| l.size);
    }
    out
}

/// The descriptor of one call: the event's own for a run of one, else a location spanning the
/// run; with a view of `ranges` (absolute in the run's bytes) unless they select it all.
fn run_descriptor(
    first: &DataDescriptor,
    locations: &[Option<MemoryLocation>],
    ranges: &[(u64, u64)],
) -> Result<DataDescriptor> {
    let base = if locations.len() == 1 {
        first.clone()
    } else {
        let offset = locations[0].map_or(0, |l| l.offset);
        let size: u64 = locations.iter().map(|l| l.map_or(0, |l| l.size)).sum();
        DataDescriptor::new(MemoryLocation { offset, size }.to_bytes().to_vec(), size)
    };
    if ranges.len() == 1 && ranges[0] == (0, base.size()) {
        Ok(base)
    } else {
        base.unstructured_view(ranges)
    }
}

impl Partitions {
    /// Sends the `request_data` call of one run, with `bulk` (the destinations, as many bytes
    /// as the descriptor selects) exposed for the service to push into.
    fn send_request(
        &self,
        target: &Address,
        id: u64,
        descriptor: DataDescriptor,
        bulk: &LocalBulk,
    ) -> Result<crate::future::Future<Bytes>> {
        let caller = &self.shared.caller;
        let dest = caller.describe(bulk)?;
        let payload = encode_request(caller.version, &RequestDataRequest { descriptor, dest });
        // Waited for without a timeout: returning early would let the service write into
        // memory that may be freed.
        Ok(caller.engine.forward(target, id, &payload))
    }

    /// The partition's target address, `request_data` id, and whether runs may be coalesced.
    fn data_target(&self, p: usize) -> Result<(Address, u64, bool)> {
        let part = self.partition(p)?;
        let target = self.shared.caller.address(&part.address)?;
        let id = rpc_id(Rpc::RequestData.name(), part.provider_id);
        Ok((target, id, self.layout(p) == DataLayout::Memory))
    }

    /// Fetches the whole data of `events` that lack it (consumers without selector or
    /// allocator): one call per run of adjacent events, into one buffer per run that the
    /// events' data then share, with up to [`DATA_REQUESTS_IN_FLIGHT`] calls at a time.
    pub(super) fn fill_whole_data(&self, p: usize, events: &mut [StoredEvent]) -> Result<()> {
        let (target, id, coalesce) = self.data_target(p)?;
        let caller = &self.shared.caller;
        for ev in events
            .iter_mut()
            .filter(|ev| ev.data.is_none() && ev.data_size == 0)
        {
            ev.data = Some(Bytes::new());
        }
        let todo: Vec<usize> = (0..events.len())
            .filter(|&i| events[i].data.is_none())
            .collect();
        let locations: Vec<Option<MemoryLocation>> = todo
            .iter()
            .map(|&i| memory_location(events[i].descriptor.as_ref()))
            .collect();
        let all_runs = runs(&locations, coalesce);
        for window in all_runs.chunks(DATA_REQUESTS_IN_FLIGHT) {
            let mut pending = Vec::with_capacity(window.len());
            let mut first_error = None;
            for run in window {
                let members: Vec<usize> = todo[run.clone()].to_vec();
                let started = (|| -> Result<_> {
                    let first = events[members[0]]
                        .descriptor
                        .as_ref()
                        .ok_or_else(|| mofka_err("event without a data descriptor"))?;
                    let total: u64 = members.iter().map(|&i| events[i].data_size).sum();
                    // A run of one reads what the event's own descriptor selects, as before.
                    let all = if members.len() == 1 {
                        first.size()
                    } else {
                        total
                    };
                    let descriptor = run_descriptor(first, &locations[run.clone()], &[(0, all)])?;
                    let bulk = LocalBulk::from_vec(
                        &caller.engine,
                        vec![0u8; total as usize],
                        BulkAccess::WriteOnly,
                    )?;
                    let reply = self.send_request(&target, id, descriptor, &bulk)?;
                    Ok((bulk, reply))
                })();
                match started {
                    Ok((bulk, reply)) => pending.push((members, bulk, reply)),
                    Err(e) => {
                        first_error.get_or_insert(e);
                        break;
                    }
                }
            }
            // Every started request is waited for, even after an error: the service may still
            // be writing into its buffer.
            for (members, bulk, reply) in pending {
                let ids = (events[members[0]].id, events[members[members.len() - 1]].id);
                let result = reply
                    .wait()
                    .and_then(|r| check_request_data(caller.version, &r, ids));
                match result {
                    Ok(()) => {
                        let data = Bytes::from(bulk.into_vec().unwrap_or_default());
                        let mut at = 0usize;
                        for &i in &members {
                            let n = events[i].data_size as usize;
                            events[i].data = Some(data.slice(at..at + n));
                            at += n;
                        }
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Performs `reads` of `partition`: one call per run of adjacent events, up to
    /// [`DATA_REQUESTS_IN_FLIGHT`] at a time; one result per read, in order (a failed call
    /// fails every read of its run).
    pub(super) fn read_many(
        &self,
        partition: usize,
        reads: &mut [DataRead<'_>],
    ) -> Vec<Result<()>> {
        let (target, id, coalesce) = match self.data_target(partition) {
            Ok(x) => x,
            Err(e) => return reads.iter().map(|_| Err(e.clone())).collect(),
        };
        let locations: Vec<Option<MemoryLocation>> = reads
            .iter()
            .map(|r| memory_location(r.event.descriptor.as_ref()))
            .collect();
        let all_runs = runs(&locations, coalesce);
        let mut results: Vec<Result<()>> = Vec::with_capacity(reads.len());
        for window in all_runs.chunks(DATA_REQUESTS_IN_FLIGHT) {
            // Start every call of the window, then wait for all of them: the service writes
            // straight into `dst`, so no call may return while a request is outstanding.
            let mut pending = Vec::with_capacity(window.len());
            for run in window {
                let started = self.start_run(
                    &target,
                    id,
                    &mut reads[run.clone()],
                    &locations[run.clone()],
                );
                pending.push((run.clone(), started));
            }
            for (run, started) in pending {
                let outcome = match started {
                    Ok(None) => Ok(()),
                    Ok(Some((bulk, reply))) => {
                        let reply = reply.wait();
                        drop(bulk);
                        let ids = (reads[run.start].event.id, reads[run.end - 1].event.id);
                        reply.and_then(|reply| {
                            check_request_data(self.shared.caller.version, &reply, ids)
                        })
                    }
                    Err(e) => Err(e),
                };
                results.extend(run.map(|_| outcome.clone()));
            }
        }
        results
    }

    /// Sends the call of one run of reads, with their destinations exposed end to end; `None`
    /// when the run selects nothing.
    #[allow(clippy::type_complexity)]
    fn start_run(
        &self,
        target: &Address,
        id: u64,
        reads: &mut [DataRead<'_>],
        locations: &[Option<MemoryLocation>],
    ) -> Result<Option<(LocalBulk, crate::future::Future<Bytes>)>> {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        let mut segments = Vec::new();
        let mut shift = 0u64;
        for (read, loc) in reads.iter_mut().zip(locations) {
            let total: u64 = read.ranges.iter().map(|r| r.1).sum();
            // The service does not check event boundaries, so a range past the event's end
            // would read the next event's bytes; the consumer refuses such selections, for
            // that event alone, before any read.
            debug_assert!(read
                .ranges
                .iter()
                .all(|&(o, s)| o.checked_add(s).is_some_and(|e| e <= read.event.data_size)));
            ranges.extend(
                read.ranges
                    .iter()
                    .filter(|r| r.1 > 0)
                    .map(|&(o, s)| (o + shift, s)),
            );
            shift += loc.map_or(0, |l| l.size);
            // The destination segments, trimmed to the selected size.
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
        }
        if ranges.is_empty() {
            return Ok(None);
        }
        let first = reads[0]
            .event
            .descriptor
            .as_ref()
            .ok_or_else(|| mofka_err("event without a data descriptor"))?;
        let descriptor = run_descriptor(first, locations, &ranges)?;
        let caller = &self.shared.caller;
        // SAFETY: every `dst` is borrowed mutably by the caller of `read_data_many`, which
        // waits for the answer to this request (sent after the service's push completed)
        // before it returns.
        let bulk = unsafe {
            LocalBulk::from_raw_segments(&caller.engine, &segments, BulkAccess::WriteOnly)?
        };
        let reply = self.send_request(target, id, descriptor, &bulk)?;
        Ok(Some((bulk, reply)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: u64, size: u64) -> Option<MemoryLocation> {
        Some(MemoryLocation { offset, size })
    }

    #[test]
    fn adjacent_events_make_one_run_within_the_limits() {
        let locs = [
            at(0, 10),
            at(10, 5),
            at(15, 0),
            at(15, 7),
            at(100, 1),
            None,
            at(101, 1),
        ];
        assert_eq!(runs(&locs, true), vec![0..4, 4..5, 5..6, 6..7]);
        assert_eq!(runs(&locs, false).len(), locs.len());
        let many: Vec<_> = (0..MAX_EVENTS_PER_REQUEST as u64 + 3)
            .map(|i| at(i, 1))
            .collect();
        assert_eq!(
            runs(&many, true),
            vec![
                0..MAX_EVENTS_PER_REQUEST,
                MAX_EVENTS_PER_REQUEST..many.len()
            ]
        );
        let big = MAX_BYTES_PER_REQUEST / 2 + 1;
        assert_eq!(runs(&[at(0, big), at(big, big)], true), vec![0..1, 1..2]);
    }

    #[test]
    fn a_run_descriptor_spans_the_run_and_selects_the_ranges() {
        let first = DataDescriptor::new(
            MemoryLocation {
                offset: 40,
                size: 10,
            }
            .to_bytes()
            .to_vec(),
            10,
        );
        let locs = [at(40, 10), at(50, 6)];
        let whole = run_descriptor(&first, &locs, &[(0, 16)]).unwrap();
        assert_eq!(
            MemoryLocation::from_bytes(whole.location()),
            Some(MemoryLocation {
                offset: 40,
                size: 16
            })
        );
        assert!(whole.selections().is_empty());
        let part = run_descriptor(&first, &locs, &[(2, 3), (10, 1), (12, 4)]).unwrap();
        assert_eq!(part.size(), 8);
        assert_eq!(part.flatten(), vec![(2, 3), (10, 1), (12, 4)]);
        // A run of one keeps the event's own descriptor.
        assert_eq!(
            run_descriptor(&first, &locs[..1], &[(0, 10)]).unwrap(),
            first
        );
    }
}
