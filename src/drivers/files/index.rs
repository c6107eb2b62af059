//! Index records and what makes one valid.
//!
//! Events are stored in order: record `i` starts where record `i - 1` ends, or later (the C++
//! writer appends at the files' sizes, after what a failed batch left), in both the metadata and
//! the data file, and its metadata is never empty (every serializer writes at least its length
//! prefix). This library's writer leaves no gaps. [`classify`] tells a valid record from a torn
//! one (zeroed, or pointing past the end of the files) and from a corrupt one (anything else).

/// Size of one index record: metadata offset, metadata size, data offset, data size (u64 LE).
pub(crate) const INDEX_RECORD_SIZE: u64 = 32;

/// A decoded index record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexRecord {
    pub metadata_offset: u64,
    pub metadata_size: u64,
    pub data_offset: u64,
    pub data_size: u64,
}

impl IndexRecord {
    pub(crate) fn decode(b: &[u8]) -> IndexRecord {
        let f = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        IndexRecord {
            metadata_offset: f(0),
            metadata_size: f(1),
            data_offset: f(2),
            data_size: f(3),
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        for v in [
            self.metadata_offset,
            self.metadata_size,
            self.data_offset,
            self.data_size,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// Where the next event starts (metadata, data); saturating, overflow is caught by
    /// [`classify`].
    pub(crate) fn ends(&self) -> (u64, u64) {
        (
            self.metadata_offset.saturating_add(self.metadata_size),
            self.data_offset.saturating_add(self.data_size),
        )
    }
}

/// Why an index record is not an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BadRecord {
    /// All zero: a tail the file system extended but never filled. The end of the log when only
    /// such records follow; readers ignore it.
    Zeroed(String),
    /// Pointing past the end of the files: the payload was lost (a machine crash with buffered
    /// writes). Readers report it, since the event may have been acknowledged.
    PastEnd(String),
    /// Anything else.
    Corrupt(String),
}

impl BadRecord {
    pub(crate) fn reason(&self) -> &str {
        match self {
            BadRecord::Zeroed(r) | BadRecord::PastEnd(r) | BadRecord::Corrupt(r) => r,
        }
    }

    /// What a writer may drop from the end of the index.
    pub(crate) fn is_torn(&self) -> bool {
        !matches!(self, BadRecord::Corrupt(_))
    }
}

/// Checks record `id` given where the previous event ended and the files' lengths.
pub(crate) fn classify(
    id: u64,
    r: &IndexRecord,
    prev_ends: (u64, u64),
    metadata_len: u64,
    data_len: u64,
) -> Option<BadRecord> {
    if *r
        == (IndexRecord {
            metadata_offset: 0,
            metadata_size: 0,
            data_offset: 0,
            data_size: 0,
        })
    {
        return Some(BadRecord::Zeroed(format!(
            "index record of event {id} is all zero"
        )));
    }
    let md_end = r.metadata_offset.checked_add(r.metadata_size);
    let data_end = r.data_offset.checked_add(r.data_size);
    if md_end.is_none() || data_end.is_none() {
        return Some(BadRecord::Corrupt(format!(
            "index record of event {id} has offsets that overflow: {r:?}"
        )));
    }
    // Gaps are allowed: the C++ writer appends at the files' sizes, after any bytes a failed
    // batch left behind. Going back is not.
    if r.metadata_offset < prev_ends.0 || r.data_offset < prev_ends.1 {
        return Some(BadRecord::Corrupt(format!(
            "event {id} overlaps the previous event: it claims metadata at {} and data at {}, but \
             the previous event ends at {} and {}",
            r.metadata_offset, r.data_offset, prev_ends.0, prev_ends.1
        )));
    }
    if r.metadata_size == 0 {
        return Some(BadRecord::Corrupt(format!("event {id} has empty metadata")));
    }
    if md_end.is_some_and(|e| e > metadata_len) {
        return Some(BadRecord::PastEnd(format!(
            "event {id} claims metadata bytes [{}, +{}) but the metadata file has {metadata_len}",
            r.metadata_offset, r.metadata_size
        )));
    }
    if data_end.is_some_and(|e| e > data_len) {
        return Some(BadRecord::PastEnd(format!(
            "event {id} claims data bytes [{}, +{}) but the data file has {data_len}",
            r.data_offset, r.data_size
        )));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(mo: u64, ms: u64, d_o: u64, ds: u64) -> IndexRecord {
        IndexRecord {
            metadata_offset: mo,
            metadata_size: ms,
            data_offset: d_o,
            data_size: ds,
        }
    }

    #[test]
    fn classifies_records() {
        let ok = rec(10, 5, 100, 0);
        assert_eq!(classify(1, &ok, (10, 100), 15, 100), None);
        let zero = rec(0, 0, 0, 0);
        assert!(matches!(
            classify(3, &zero, (0, 0), 99, 99),
            Some(BadRecord::Zeroed(_))
        ));
        assert!(matches!(
            classify(3, &zero, (15, 100), 99, 99),
            Some(BadRecord::Zeroed(_))
        ));
        let past = rec(10, 5, 100, 8);
        assert!(matches!(
            classify(1, &past, (10, 100), 15, 104),
            Some(BadRecord::PastEnd(_))
        ));
        // A gap (C++ writer after a failed batch) is fine, going back is not.
        let gap = rec(11, 5, 104, 0);
        assert_eq!(classify(1, &gap, (10, 100), 99, 199), None);
        let back = rec(9, 5, 100, 0);
        let bad = classify(1, &back, (10, 100), 99, 99).unwrap();
        assert!(
            !bad.is_torn() && bad.reason().contains("overlaps"),
            "{bad:?}"
        );
        let back = rec(10, 5, 99, 0);
        assert!(!classify(1, &back, (10, 100), 99, 99).unwrap().is_torn());
        let empty = rec(10, 0, 100, 3);
        assert!(classify(1, &empty, (10, 100), 99, 199)
            .unwrap()
            .reason()
            .contains("empty"));
        let overflow = rec(10, u64::MAX, 100, 0);
        assert!(!classify(1, &overflow, (10, 100), 99, 99).unwrap().is_torn());
    }
}
