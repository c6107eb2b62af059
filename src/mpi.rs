//! MPI coupling (feature `mpi`): ranks own producers and consumers mapped onto partitions.
//!
//! The typical job splits `MPI_COMM_WORLD` into a simulation group and an analysis group. Every
//! rank calls [`create_or_open_topic`] on the world communicator; simulation ranks build a
//! producer with [`RankAffineSelector`] so each writes to its own partitions; analysis ranks read
//! the disjoint partition sets that [`PartitionMap::consumer_partitions`] gives them. When a
//! simulation rank is done it calls [`end_of_stream`] on the simulation communicator; analysis
//! ranks then see [`crate::NO_MORE_EVENTS`] once every simulation rank has finished.
//!
//! ```no_run
//! use diaspora_stream::mpi::{self as dmpi, PartitionMap, RankAffineSelector};
//! use diaspora_stream::mpi::mpi::traits::*;
//! use diaspora_stream::{DataView, Driver};
//! use serde_json::json;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! # fn main() -> diaspora_stream::Result<()> {
//! let universe = dmpi::mpi::initialize().expect("MPI");
//! let world = universe.world();
//! let simulation = world.rank() < world.size() / 2;
//! let group = world
//!     .split_by_color(dmpi::mpi::topology::Color::with_value(simulation as i32))
//!     .expect("group");
//! let driver = Driver::new("files", &json!({"root_path": "/scratch/run42"}))?;
//! let num_partitions = (world.size() / 2) as usize;
//! let topic = dmpi::create_or_open_topic(&world, &driver, "steps",
//!                                        &json!({"num_partitions": num_partitions}))?;
//! if simulation {
//!     let mine = PartitionMap::Block.producer_partitions(
//!         group.rank() as usize, group.size() as usize, topic.num_partitions())?;
//!     let producer = topic.producer()
//!         .partition_selector(Arc::new(RankAffineSelector::new(mine)))
//!         .build()?;
//!     for step in 0..10 {
//!         producer.push(json!({"step": step}), DataView::from(vec![0u8; 1024]));
//!     }
//!     dmpi::end_of_stream(&group, &producer)?;
//! } else {
//!     let mine = PartitionMap::Cyclic.consumer_partitions(
//!         group.rank() as usize, group.size() as usize, topic.num_partitions())?;
//!     let consumer = topic.consumer("analysis").targets(&mine).build()?;
//!     for event in consumer.iter(Duration::from_secs(60)) {
//!         event?.acknowledge()?;
//!     }
//! }
//! # Ok(()) }
//! ```

pub use ::mpi;

use crate::components::PartitionSelector;
use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::metadata::{Metadata, PartitionInfo};
use crate::producer::Producer;
use crate::topic::TopicHandle;
use ::mpi::collective::CommunicatorCollectives;
use ::mpi::topology::Communicator;
use ::mpi::traits::Root;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};

/// How partitions are distributed over the ranks of a communicator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionMap {
    /// Contiguous ranges: rank `r` of `s` gets partitions `r*n/s .. (r+1)*n/s`.
    Block,
    /// Round robin: rank `r` gets partitions `r, r+s, r+2s, ...`.
    Cyclic,
    /// Explicit: entry `r` lists the partitions of rank `r`.
    Explicit(Vec<Vec<usize>>),
}

impl PartitionMap {
    /// The partitions consumer rank `rank` of `size` reads. The sets of all ranks are disjoint
    /// and together cover `0..num_partitions`; when ranks outnumber partitions some ranks get
    /// none.
    pub fn consumer_partitions(
        &self,
        rank: usize,
        size: usize,
        num_partitions: usize,
    ) -> Result<Vec<usize>> {
        check_rank(rank, size)?;
        match self {
            PartitionMap::Block => {
                Ok((rank * num_partitions / size..(rank + 1) * num_partitions / size).collect())
            }
            PartitionMap::Cyclic => Ok((rank..num_partitions).step_by(size).collect()),
            PartitionMap::Explicit(sets) => {
                check_explicit(sets, size, num_partitions)?;
                let mut owner = vec![None; num_partitions];
                for (r, set) in sets.iter().enumerate() {
                    for &p in set {
                        if let Some(other) = owner[p].replace(r) {
                            return Err(Error::InvalidArgument(format!(
                                "partition {p} is given to consumer ranks {other} and {r}"
                            )));
                        }
                    }
                }
                if let Some(p) = owner.iter().position(Option::is_none) {
                    return Err(Error::InvalidArgument(format!(
                        "partition {p} is given to no consumer rank"
                    )));
                }
                Ok(sets[rank].clone())
            }
        }
    }

    /// The partitions producer rank `rank` of `size` writes to: its own block or cycle when there
    /// are at least as many partitions as ranks, otherwise one partition shared with other
    /// ranks (rank `r` writes to `r*n/s` for `Block`, `r % n` for `Cyclic`). Never empty.
    pub fn producer_partitions(
        &self,
        rank: usize,
        size: usize,
        num_partitions: usize,
    ) -> Result<Vec<usize>> {
        check_rank(rank, size)?;
        if num_partitions == 0 {
            return Err(Error::InvalidArgument("the topic has no partition".into()));
        }
        match self {
            PartitionMap::Block if size <= num_partitions => {
                self.consumer_partitions(rank, size, num_partitions)
            }
            PartitionMap::Block => Ok(vec![rank * num_partitions / size]),
            PartitionMap::Cyclic if size <= num_partitions => {
                self.consumer_partitions(rank, size, num_partitions)
            }
            PartitionMap::Cyclic => Ok(vec![rank % num_partitions]),
            PartitionMap::Explicit(sets) => {
                check_explicit(sets, size, num_partitions)?;
                if sets[rank].is_empty() {
                    return Err(Error::InvalidArgument(format!(
                        "producer rank {rank} is given no partition"
                    )));
                }
                Ok(sets[rank].clone())
            }
        }
    }
}

fn check_rank(rank: usize, size: usize) -> Result<()> {
    if rank >= size {
        return Err(Error::InvalidArgument(format!(
            "rank {rank} is not below the communicator size {size}"
        )));
    }
    Ok(())
}

fn check_explicit(sets: &[Vec<usize>], size: usize, num_partitions: usize) -> Result<()> {
    if sets.len() != size {
        return Err(Error::InvalidArgument(format!(
            "the explicit partition map has {} entries for {size} ranks",
            sets.len()
        )));
    }
    for (r, set) in sets.iter().enumerate() {
        if let Some(&p) = set.iter().find(|&&p| p >= num_partitions) {
            return Err(Error::InvalidArgument(format!(
                "rank {r} is given partition {p}, but the topic has {num_partitions}"
            )));
        }
    }
    Ok(())
}

/// A partition selector that keeps a producer on its own partitions: round robin over them,
/// or, when the caller requests partition `k`, partition `k` of the topic (modulo its count).
#[derive(Debug)]
pub struct RankAffineSelector {
    own: Vec<usize>,
    total: AtomicUsize,
    next: AtomicUsize,
}

impl RankAffineSelector {
    /// A selector over `partitions` (from [`PartitionMap::producer_partitions`]).
    pub fn new(partitions: Vec<usize>) -> Self {
        RankAffineSelector {
            own: partitions,
            total: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
        }
    }
}

impl PartitionSelector for RankAffineSelector {
    fn set_partitions(&self, partitions: &[PartitionInfo]) {
        self.total.store(partitions.len(), Ordering::Relaxed);
    }

    fn select_partition(&self, _: &Metadata, requested: Option<usize>) -> Result<usize> {
        let total = self.total.load(Ordering::Relaxed);
        if total == 0 || self.own.is_empty() {
            return Err(Error::InvalidArgument(
                "rank-affine selector has no partition".into(),
            ));
        }
        Ok(match requested {
            Some(r) => r % total,
            None => self.own[self.next.fetch_add(1, Ordering::Relaxed) % self.own.len()],
        })
    }

    fn metadata(&self) -> Value {
        json!({"type": "rank_affine", "partitions": self.own})
    }
}

/// The failures of a collective step, as every rank sees them.
pub(crate) struct Failures {
    /// The ranks whose local outcome failed, in order.
    pub ranks: Vec<usize>,
    /// The error text of the first of them, broadcast from that rank (read by the collective
    /// HDF5 export).
    #[cfg_attr(not(feature = "hdf5"), allow(dead_code))]
    pub first_error: String,
}

/// Collective: gathers which ranks failed (`local` is this rank's outcome) and the first failed
/// rank's error text; `None` on every rank when all succeeded. The one failure agreement of the
/// crate (the MPI helpers here and the collective HDF5 export use it).
pub(crate) fn gather_failures<C: Communicator, T, E: std::fmt::Display>(
    comm: &C,
    local: &std::result::Result<T, E>,
) -> Option<Failures> {
    let failed = local.is_err() as u8;
    let mut all = vec![0u8; comm.size() as usize];
    comm.all_gather_into(&failed, &mut all[..]);
    let ranks: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(_, f)| **f != 0)
        .map(|(r, _)| r)
        .collect();
    let &first = ranks.first()?;
    let mut text = match (local, comm.rank() as usize == first) {
        (Err(e), true) => e.to_string().into_bytes(),
        _ => Vec::new(),
    };
    let mut len = text.len() as u64;
    let root = comm.process_at_rank(first as i32);
    root.broadcast_into(&mut len);
    text.resize(len as usize, 0);
    if len > 0 {
        root.broadcast_into(&mut text[..]);
    }
    Some(Failures {
        ranks,
        first_error: String::from_utf8_lossy(&text).into_owned(),
    })
}

/// Turns each rank's local outcome into the same result on every rank: `Ok` only if all ranks
/// succeeded, otherwise an error naming the failed ranks (and this rank's own error, if any).
pub fn agree<C: Communicator>(comm: &C, what: &str, local: Result<()>) -> Result<()> {
    match gather_failures(comm, &local) {
        None => Ok(()),
        Some(f) => Err(Error::Collective {
            operation: what.to_string(),
            ranks: f.ranks,
            local: local.err().map(|e| e.to_string()),
        }),
    }
}

/// Collective: rank 0 creates the topic if it does not exist, then every rank opens it. Every
/// rank returns the same outcome: an error on any rank is reported on all of them.
pub fn create_or_open_topic<C: Communicator>(
    comm: &C,
    driver: &Driver,
    name: &str,
    options: &Value,
) -> Result<TopicHandle> {
    let created = if comm.rank() == 0 {
        match driver.topic_exists(name) {
            Ok(true) => Ok(()),
            Ok(false) => match driver.create_topic(name, options) {
                Err(Error::TopicExists(_)) => Ok(()),
                other => other,
            },
            Err(e) => Err(e),
        }
    } else {
        Ok(())
    };
    // Everyone learns rank 0's error text, so the message is the same everywhere.
    let mut text = match &created {
        Err(e) => e.to_string().into_bytes(),
        Ok(()) => Vec::new(),
    };
    let mut len = text.len() as u64;
    let root = comm.process_at_rank(0);
    root.broadcast_into(&mut len);
    if len > 0 {
        // (MPI rejects broadcasts of empty buffers on some implementations.)
        text.resize(len as usize, 0);
        root.broadcast_into(&mut text[..]);
        return Err(Error::Collective {
            operation: format!("create topic {name:?}"),
            ranks: vec![0],
            local: Some(String::from_utf8_lossy(&text).into_owned()),
        });
    }
    let opened = driver.open_topic(name);
    agree(
        comm,
        &format!("open topic {name:?}"),
        opened.as_ref().map(|_| ()).map_err(Clone::clone),
    )?;
    opened
}

/// Collective: flushes `producer` on every rank and reports any rank's failure on all ranks.
pub fn collective_flush<C: Communicator>(comm: &C, producer: &Producer) -> Result<()> {
    let local = producer.flush().wait();
    agree(comm, "flush", local)
}

/// Collective over the producer ranks: each declares the end of its stream (see
/// [`Producer::end_of_stream`], with its rank and the communicator size), then all agree on
/// the outcome. Consumers see [`crate::NO_MORE_EVENTS`] after every rank of `comm` called this.
pub fn end_of_stream<C: Communicator>(comm: &C, producer: &Producer) -> Result<()> {
    let local = producer
        .end_of_stream(comm.rank() as usize, comm.size() as usize)
        .wait();
    agree(comm, "end of stream", local)
}

/// Collective over the producing ranks of `comm`: every rank closes step `step` (with
/// [`Producer::end_step_as`], its rank and the communicator size), then all agree on the
/// outcome. Consumers learn that the step is complete once every rank's markers are read
/// ([`crate::Consumer::wait_step`], [`crate::Event::completed_step`]).
pub fn end_step<C: Communicator>(comm: &C, producer: &Producer, step: u64) -> Result<()> {
    let local = producer
        .end_step_as(step, comm.rank() as usize, comm.size() as usize)
        .wait();
    agree(comm, &format!("end of step {step}"), local)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_cover(map: &PartitionMap, size: usize, n: usize) {
        let mut seen = vec![0; n];
        for r in 0..size {
            for p in map.consumer_partitions(r, size, n).unwrap() {
                seen[p] += 1;
            }
            let prod = map.producer_partitions(r, size, n).unwrap();
            assert!(!prod.is_empty() && prod.iter().all(|&p| p < n));
        }
        assert!(
            seen.iter().all(|&c| c == 1),
            "{map:?} {size} ranks {n} partitions: {seen:?}"
        );
    }

    #[test]
    fn maps_are_disjoint_and_complete() {
        for size in 1..9 {
            for n in 1..12 {
                check_cover(&PartitionMap::Block, size, n);
                check_cover(&PartitionMap::Cyclic, size, n);
            }
        }
        // Producers spread over partitions when ranks outnumber them.
        let prods: Vec<usize> = (0..6)
            .map(|r| PartitionMap::Block.producer_partitions(r, 6, 3).unwrap()[0])
            .collect();
        assert_eq!(prods, vec![0, 0, 1, 1, 2, 2]);
        let prods: Vec<usize> = (0..5)
            .map(|r| PartitionMap::Cyclic.producer_partitions(r, 5, 2).unwrap()[0])
            .collect();
        assert_eq!(prods, vec![0, 1, 0, 1, 0]);
    }

    #[test]
    fn explicit_maps_are_checked() {
        let ok = PartitionMap::Explicit(vec![vec![2], vec![0, 1]]);
        assert_eq!(ok.consumer_partitions(1, 2, 3).unwrap(), vec![0, 1]);
        let overlap = PartitionMap::Explicit(vec![vec![0, 1], vec![1, 2]]);
        assert!(overlap.consumer_partitions(0, 2, 3).is_err());
        let hole = PartitionMap::Explicit(vec![vec![0], vec![2]]);
        assert!(hole.consumer_partitions(0, 2, 3).is_err());
        assert!(hole.producer_partitions(0, 2, 3).is_ok());
        assert!(PartitionMap::Explicit(vec![vec![5]])
            .producer_partitions(0, 1, 3)
            .is_err());
        assert!(PartitionMap::Explicit(vec![vec![]])
            .producer_partitions(0, 1, 3)
            .is_err());
        assert!(PartitionMap::Block.consumer_partitions(3, 2, 3).is_err());
    }

    #[test]
    fn rank_affine_selector_stays_on_own_partitions() {
        let s = RankAffineSelector::new(vec![3, 5]);
        s.set_partitions(&vec![PartitionInfo::default(); 6]);
        let m = Metadata::default();
        let picks: Vec<usize> = (0..4)
            .map(|_| s.select_partition(&m, None).unwrap())
            .collect();
        assert_eq!(picks, vec![3, 5, 3, 5]);
        assert_eq!(s.select_partition(&m, Some(8)).unwrap(), 2);
    }
}
