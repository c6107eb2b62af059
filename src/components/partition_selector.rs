//! Partition selectors: choose the partition of each event.

use crate::error::{Error, Result};
use crate::metadata::{Metadata, PartitionInfo};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Chooses which partition an event goes to. Called concurrently from producer threads.
///
/// The engine checks the returned index: an index outside the topic's partitions fails the push
/// with [`Error::PartitionOutOfRange`] instead of writing anywhere.
pub trait PartitionSelector: Send + Sync {
    /// Tells the selector which partitions exist (called when the topic is created or opened).
    fn set_partitions(&self, partitions: &[PartitionInfo]);
    /// Picks a partition for `metadata`; `requested` is the index the caller asked for, if any.
    fn select_partition(&self, metadata: &Metadata, requested: Option<usize>) -> Result<usize>;
    /// The JSON configuration persisted with the topic.
    fn metadata(&self) -> Value;
}

/// `{"type":"default"}`: `requested % n` when a partition is requested, round robin otherwise.
#[derive(Debug, Default)]
pub struct DefaultPartitionSelector {
    count: AtomicUsize,
    next: AtomicUsize,
}

impl PartitionSelector for DefaultPartitionSelector {
    fn set_partitions(&self, partitions: &[PartitionInfo]) {
        self.count.store(partitions.len(), Ordering::Relaxed);
    }

    fn select_partition(&self, _: &Metadata, requested: Option<usize>) -> Result<usize> {
        let n = self.count.load(Ordering::Relaxed);
        if n == 0 {
            return Err(Error::InvalidArgument(
                "partition selector has no partition to select from".into(),
            ));
        }
        Ok(match requested {
            Some(r) => r % n,
            None => self.next.fetch_add(1, Ordering::Relaxed) % n,
        })
    }

    fn metadata(&self) -> Value {
        json!({"type": "default"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_and_modulo() {
        let s = DefaultPartitionSelector::default();
        let m = Metadata::default();
        assert!(s.select_partition(&m, None).is_err());
        s.set_partitions(&vec![PartitionInfo::default(); 3]);
        let picks: Vec<usize> = (0..5)
            .map(|_| s.select_partition(&m, None).unwrap())
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1]);
        assert_eq!(s.select_partition(&m, Some(7)).unwrap(), 1);
    }
}
