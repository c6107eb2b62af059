//! Where a new consumer starts reading ([`StartPosition`]), and the step state it starts with.

use super::steps::{Marker, Steps, Stored, PRODUCERS_KEY, SCAN_KEY, STEPS_KEY};
use crate::backend::TopicBackend;
use crate::error::{Error, Result};
use crate::event::{parse_control, Control};
use crate::types::EventId;
use std::collections::BTreeMap;
use std::str::FromStr;

/// Where a consumer starts reading each of its partitions (consumer option `start`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum StartPosition {
    /// After the last event acknowledged under the consumer's name (the beginning for a name
    /// that never acknowledged). The default.
    #[default]
    LastAck,
    /// At the first event of each partition.
    Beginning,
    /// After the last event stored when the consumer starts: only events pushed later.
    End,
    /// At the given event id of each listed partition; the other partitions start at their last
    /// acknowledged event.
    At(BTreeMap<usize, EventId>),
    /// At the first event of step `k` in each partition: right after the markers by which every
    /// producer closed step `k - 1` (the beginning for step 0). Found by reading the partition's
    /// metadata from its start; an error if some producer has not closed step `k - 1` there yet.
    Step(u64),
}

impl FromStr for StartPosition {
    type Err = Error;

    /// `last_ack`, `beginning`, `end`, `step:K`, or ids per partition as `P=ID,P=ID`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::InvalidArgument(format!(
                "start position {s:?}: {why} (expected last_ack, beginning, end, step:K, or \
                 PARTITION=ID,... such as 0=120,3=7)"
            ))
        };
        match s.trim() {
            "last_ack" => return Ok(StartPosition::LastAck),
            "beginning" => return Ok(StartPosition::Beginning),
            "end" => return Ok(StartPosition::End),
            _ => {}
        }
        if let Some(k) = s.trim().strip_prefix("step:") {
            return k
                .trim()
                .parse()
                .map(StartPosition::Step)
                .map_err(|_| bad("the step is not a non-negative integer"));
        }
        let mut ids = BTreeMap::new();
        for item in s.split(',') {
            let (p, id) = item
                .split_once('=')
                .ok_or_else(|| bad("unknown position"))?;
            let p: usize = p.trim().parse().map_err(|_| bad("bad partition"))?;
            let id: EventId = id.trim().parse().map_err(|_| bad("bad event id"))?;
            if ids.insert(p, id).is_some() {
                return Err(bad(&format!("partition {p} is given twice")));
            }
        }
        Ok(StartPosition::At(ids))
    }
}

/// Events read per fetch while scanning a partition's markers.
const SCAN_BATCH: usize = 1024;

/// Calls `f` with each step marker of `partition` with an id in `from..to`, in id order.
fn scan_markers(
    backend: &dyn TopicBackend,
    partition: usize,
    from: EventId,
    to: EventId,
    mut f: impl FnMut(Marker) -> Result<()>,
) -> Result<()> {
    let serializer = backend.components().serializer;
    let mut next = from;
    while next < to {
        let batch = backend.fetch(partition, next, SCAN_BATCH, false)?;
        let Some(last) = batch.last() else {
            break;
        };
        next = last.id + 1;
        for mut ev in batch {
            if ev.id >= to {
                return Ok(());
            }
            // Records that do not decode are the consumer's to report when it reads them.
            let Ok(md) = serializer.deserialize_shared(&mut ev.metadata, ev.metadata_verified)
            else {
                continue;
            };
            if let Some(Control::EndStep {
                step,
                producer,
                producers,
            }) = parse_control(&md)
            {
                f(Marker {
                    id: ev.id,
                    producer,
                    producers,
                    step,
                })?;
            }
        }
    }
    Ok(())
}

/// The first id of step `k` in `partition`: one past the last of the markers by which every
/// producer closed step `k - 1`.
fn step_start(
    backend: &dyn TopicBackend,
    topic: &str,
    partition: usize,
    k: u64,
) -> Result<EventId> {
    if k == 0 {
        return Ok(0);
    }
    let end = backend.end_id(partition)?;
    let mut producers = 0u64;
    let mut closed_at: BTreeMap<u64, EventId> = BTreeMap::new();
    scan_markers(backend, partition, 0, end, |m| {
        producers = producers.max(m.producers);
        if m.step + 1 >= k {
            closed_at.entry(m.producer).or_insert(m.id);
        }
        Ok(())
    })?;
    if producers == 0 || (closed_at.len() as u64) < producers {
        return Err(Error::InvalidArgument(format!(
            "consumer option start \"step:{k}\": step {} is not closed by every producer in \
             partition {partition} of topic {topic:?} yet ({} of {} closed it)",
            k - 1,
            closed_at.len(),
            producers.max(1)
        )));
    }
    Ok(closed_at.values().max().map_or(0, |id| id + 1))
}

/// The last step every producer has closed in `partition` (reading its markers from the start,
/// metadata only); `None` if none is.
pub fn partition_completed_step(
    backend: &dyn TopicBackend,
    partition: usize,
) -> Result<Option<u64>> {
    let end = backend.end_id(partition)?;
    let mut producers = 0u64;
    let mut closed: BTreeMap<u64, u64> = BTreeMap::new();
    scan_markers(backend, partition, 0, end, |m| {
        producers = producers.max(m.producers);
        let c = closed.entry(m.producer).or_insert(0);
        *c = (*c).max(m.step + 1);
        Ok(())
    })?;
    if producers == 0 {
        return Ok(None);
    }
    let complete = (0..producers)
        .map(|i| closed.get(&i).copied().unwrap_or(0))
        .min()
        .unwrap_or(0);
    Ok(complete.checked_sub(1))
}

/// The positions of a new consumer named `name` over `targets`, and its step state.
pub(super) fn resolve(
    backend: &dyn TopicBackend,
    topic: &str,
    name: &str,
    targets: &[usize],
    start: &StartPosition,
) -> Result<(Vec<EventId>, Steps)> {
    let mut steps = Steps::new(targets.len());
    if let StartPosition::At(ids) = start {
        if let Some(p) = ids.keys().find(|p| !targets.contains(p)) {
            return Err(Error::InvalidArgument(format!(
                "consumer option start: partition {p} is not one this consumer reads \
                 (targets {targets:?})"
            )));
        }
    }
    let mut next = Vec::with_capacity(targets.len());
    for &p in targets {
        next.push(match start {
            StartPosition::LastAck => backend.load_offset(name, p)?,
            StartPosition::Beginning => 0,
            StartPosition::End => backend.end_id(p)?,
            StartPosition::At(ids) => match ids.get(&p) {
                Some(&id) => id,
                None => backend.load_offset(name, p)?,
            },
            StartPosition::Step(k) => step_start(backend, topic, p, *k)?,
        });
    }
    match start {
        StartPosition::LastAck => {
            for (t, &p) in targets.iter().enumerate() {
                restore_steps(backend, name, &mut steps, t, p, next[t])?;
            }
        }
        StartPosition::Step(k) => steps.assume_closed(*k),
        _ => {}
    }
    Ok((next, steps))
}

/// Starts target `t` (partition `p`, read from `next`) with the steps stored under `name`.
fn restore_steps(
    backend: &dyn TopicBackend,
    name: &str,
    steps: &mut Steps,
    t: usize,
    p: usize,
    next: EventId,
) -> Result<()> {
    let load = |key: &str| backend.load_offset(&format!("{name}.{key}"), p);
    let stored_steps = load(STEPS_KEY)?;
    if stored_steps == 0 {
        return Ok(()); // never stored: no step closed before the acknowledged position
    }
    let stored = Stored {
        steps: stored_steps - 1,
        producers: load(PRODUCERS_KEY)?.saturating_sub(1),
        scan: load(SCAN_KEY)?.saturating_sub(1),
    };
    steps.restore(t, stored);
    if stored.scan > 0 {
        // Markers of steps not yet closed by all, before the acknowledged position: read them
        // again, so that the producers that closed them are not forgotten.
        scan_markers(backend, p, stored.scan - 1, next, |m| {
            steps.replay(t, m);
            Ok(())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_positions_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!("end".parse::<StartPosition>().unwrap(), StartPosition::End);
        assert_eq!(
            "step:12".parse::<StartPosition>().unwrap(),
            StartPosition::Step(12)
        );
        assert_eq!(
            "0=120, 3=7".parse::<StartPosition>().unwrap(),
            StartPosition::At(BTreeMap::from([(0, 120), (3, 7)]))
        );
        for bad in ["ned", "step:x", "0=1,0=2", "a=1", "1=-1"] {
            let e = bad.parse::<StartPosition>().unwrap_err().to_string();
            assert!(e.contains("expected last_ack"), "{bad}: {e}");
        }
    }
}
