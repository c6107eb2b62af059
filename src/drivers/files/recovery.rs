//! What a writer does before appending, and what `check` predicts it will do: find the end of
//! the valid log, drop torn records, and restore stored events whose index records were lost.
//!
//! Both follow the same rules, computed here once:
//!
//! * the index ends at its last record that is valid ([`classify`]); torn records after it
//!   (zeroed, or pointing past the end of the files) are dropped; a corrupt last record stops
//!   every writer;
//! * with a checksum file, checksum records past that end whose bytes are stored and match
//!   (or that carry sizes only, for events a writer without checksums appended earlier) are
//!   events whose index records were lost: they are restored. The checksum records after them
//!   describe a batch cut short and are dropped, unless one of them matches its bytes: that is
//!   damage in the middle of stored events, and writers refuse to write over it.

use super::index::{classify, IndexRecord, INDEX_RECORD_SIZE};
use super::open_files::OpenFiles;
use super::sums::{SumRecord, SUM_RECORD_SIZE};
use crate::error::{Error, Result};

/// Records read at once when walking the index or the checksum file.
const CHUNK_RECORDS: u64 = 4096;

/// The end of the valid part of an index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ValidEnd {
    /// Valid records.
    pub events: u64,
    /// Where the last valid event ends (metadata, data).
    pub ends: (u64, u64),
}

/// Walks back from the end of the index (`index_len` bytes) over torn records. `Err(reason)`
/// inside `Ok` when the last record that is not torn is corrupt.
pub(crate) fn valid_end(
    f: &OpenFiles,
    index_len: u64,
    metadata_len: u64,
    data_len: u64,
) -> Result<std::result::Result<ValidEnd, (u64, String)>> {
    let mut n = index_len / INDEX_RECORD_SIZE;
    // The last record is almost always valid: look at it (and its predecessor) first, and at
    // more only when torn records are being skipped.
    let mut chunk = 1;
    while n > 0 {
        // Records [first, n) and the one before them, to know where each must start.
        let first = n.saturating_sub(chunk);
        chunk = (chunk * 64).min(CHUNK_RECORDS);
        let with_prev = first.saturating_sub(1);
        let recs = f.read_records(with_prev, n - with_prev)?;
        let offset = (first - with_prev) as usize;
        for i in (offset..recs.len()).rev() {
            let id = with_prev + i as u64;
            let prev = if i > 0 { recs[i - 1].ends() } else { (0, 0) };
            match classify(id, &recs[i], prev, metadata_len, data_len) {
                None => {
                    return Ok(Ok(ValidEnd {
                        events: id + 1,
                        ends: recs[i].ends(),
                    }))
                }
                Some(bad) if bad.is_torn() => n = id,
                Some(bad) => return Ok(Err((id, bad.reason().to_string()))),
            }
        }
    }
    Ok(Ok(ValidEnd {
        events: 0,
        ends: (0, 0),
    }))
}

/// What the checksum file says lies past the valid end of the index.
#[derive(Clone, Debug, Default)]
pub(crate) struct Beyond {
    /// Index records of the stored events that follow, in order.
    pub restorable: Vec<IndexRecord>,
    /// Of those, events restored from sizes alone (no CRC to verify them with).
    pub unverified: u64,
    /// Checksum records after them that describe no stored bytes (a batch cut short).
    pub leftover: u64,
    /// Set when a record after those verifies against stored bytes: damage, not a torn tail.
    pub damage: Option<String>,
}

/// Reads the checksum records past event `n` (which ends at `ends`) and sorts them out.
pub(crate) fn scan_beyond(
    f: &OpenFiles,
    n: u64,
    mut ends: (u64, u64),
    metadata_len: u64,
    data_len: u64,
) -> Result<Beyond> {
    let mut out = Beyond::default();
    let Some(sums) = &f.sums else {
        return Ok(out);
    };
    let have = sums.len()? / SUM_RECORD_SIZE;
    let place = |ends: (u64, u64), s: &SumRecord| IndexRecord {
        metadata_offset: ends.0,
        metadata_size: s.metadata_size,
        data_offset: ends.1,
        data_size: s.data_size,
    };
    let mut at = n;
    // Restorable events.
    let mut stop: Option<Option<SumRecord>> = None;
    'restore: while at < have {
        for sum in f.read_sums(at, (have - at).min(CHUNK_RECORDS))? {
            let Some(s) = sum else {
                stop = Some(None);
                break 'restore;
            };
            let r = place(ends, &s);
            let stored = classify(at, &r, ends, metadata_len, data_len).is_none();
            let verified = stored && (s.crcs.is_none() || f.event_matches(&r, &s)? == Ok(true));
            if !verified {
                stop = Some(Some(s));
                break 'restore;
            }
            if s.crcs.is_none() {
                out.unverified += 1;
            }
            out.restorable.push(r);
            ends = r.ends();
            at += 1;
        }
    }
    out.leftover = have - at;
    // Does anything after the first record that failed verify? Offsets follow from the sizes,
    // so a damaged record (`None`) ends the search.
    let Some(Some(failed)) = stop else {
        return Ok(out);
    };
    let failed_id = at;
    let mut e = place(ends, &failed).ends();
    let mut k = at + 1;
    'search: while k < have {
        for sum in f.read_sums(k, (have - k).min(CHUNK_RECORDS))? {
            let Some(s) = sum else { break 'search };
            let r = place(e, &s);
            if classify(k, &r, e, metadata_len, data_len).is_some() {
                break 'search; // past the end of the files: so is everything after
            }
            if s.crcs.is_some() && f.event_matches(&r, &s)? == Ok(true) {
                out.damage = Some(format!(
                    "event {failed_id} past the end of the index does not match its checksum \
                     record, while event {k} after it does"
                ));
                break 'search;
            }
            e = r.ends();
            k += 1;
        }
    }
    Ok(out)
}

/// The writer's recovery, under the partition lock: drop torn index records, restore events
/// from the checksum file, give events appended without checksums their checksum records, drop
/// checksum records that describe nothing. Returns the valid end, where the next batch goes.
pub(crate) fn recover(f: &OpenFiles, label: &str) -> Result<ValidEnd> {
    let index_len = f.index.len()?;
    let metadata_len = f.metadata.len()?;
    let data_len = f.data.len()?;
    let mut end = match valid_end(f, index_len, metadata_len, data_len)? {
        Ok(end) => end,
        Err((id, why)) => {
            return Err(Error::corrupt(
                &f.index.path,
                id * INDEX_RECORD_SIZE,
                format!(
                    "{label}: {why}; not appending after it (`diaspora-ctl topic check` reports \
                     the damage)"
                ),
            ))
        }
    };
    if end.events * INDEX_RECORD_SIZE != index_len {
        f.index
            .set_len(end.events * INDEX_RECORD_SIZE, "truncate the torn tail of")?;
    }
    let Some(sums) = &f.sums else {
        return Ok(end);
    };
    let have = sums.len()? / SUM_RECORD_SIZE;
    if have < end.events {
        // Events appended by a writer without checksums: sizes only.
        let mut at = have;
        while at < end.events {
            let n = (end.events - at).min(CHUNK_RECORDS);
            let mut out = Vec::with_capacity((n * SUM_RECORD_SIZE) as usize);
            for r in f.read_records(at, n)? {
                SumRecord {
                    metadata_size: r.metadata_size,
                    data_size: r.data_size,
                    crcs: None,
                }
                .encode(&mut out);
            }
            sums.write_all_at(&out, at * SUM_RECORD_SIZE)?;
            at += n;
        }
    } else if have > end.events {
        let beyond = scan_beyond(f, end.events, end.ends, metadata_len, data_len)?;
        if let Some(damage) = beyond.damage {
            return Err(Error::corrupt(
                &sums.path,
                (end.events + beyond.restorable.len() as u64) * SUM_RECORD_SIZE,
                format!(
                    "{label}: {damage}; not appending over stored events (`diaspora-ctl topic \
                     check` reports the damage)"
                ),
            ));
        }
        if !beyond.restorable.is_empty() {
            let mut out = Vec::with_capacity(beyond.restorable.len() * INDEX_RECORD_SIZE as usize);
            for r in &beyond.restorable {
                r.encode(&mut out);
            }
            f.index.write_all_at(&out, end.events * INDEX_RECORD_SIZE)?;
            end.events += beyond.restorable.len() as u64;
            end.ends = beyond.restorable[beyond.restorable.len() - 1].ends();
        }
        if end.events < have {
            sums.set_len(end.events * SUM_RECORD_SIZE, "truncate the torn tail of")?;
        }
    }
    let len = sums.len()?;
    if len % SUM_RECORD_SIZE != 0 {
        sums.set_len(len - len % SUM_RECORD_SIZE, "truncate the torn tail of")?;
    }
    Ok(end)
}
