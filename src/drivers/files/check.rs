//! Checking a topic's files and repairing what can be repaired (`diaspora-ctl topic check` and
//! `topic repair`).
//!
//! A check reads every partition without changing anything: each index record must follow on
//! from the previous one and point inside the files, each event with a checksum record must match
//! it, and bytes past the last indexed event are accounted for (events whose index records were
//! lost can be restored from their checksum records, or from the metadata framing when they carry
//! no data). A repair takes each partition's lock (refusing when a writer holds it), truncates torn
//! tails, restores what verifies, and checks again. It never guesses: damage it cannot undo (a
//! flipped bit, a changed offset) is reported with the events it affects.

use super::partition::{
    classify, IndexRecord, NamedFile, OpenFiles, PartitionFiles, PartitionSettings, DATA_FILE,
    INDEX_FILE, INDEX_RECORD_SIZE, METADATA_FILE, SUMS_FILE,
};
use super::sums::{crc, Crc, SumRecord, SUM_RECORD_SIZE};
use super::{partition_indices, read_topic_facts, FilesDriver, TopicFacts};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// At most this many damaged events are listed one by one per partition.
const MAX_LISTED: usize = 20;

/// What a repair does (or, in a dry run, would do) to one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RepairAction {
    /// Drop this many torn records at the end of the index.
    TruncateTornTail {
        /// Records dropped.
        records: u64,
    },
    /// Restore the index records of this many events from their verified checksum records.
    RestoreFromChecksums {
        /// Events restored.
        events: u64,
    },
    /// Restore the index records of this many data-less events from the metadata framing (topics
    /// without checksums).
    RestoreFromMetadata {
        /// Events restored.
        events: u64,
    },
}

impl std::fmt::Display for RepairAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RepairAction::TruncateTornTail { records: 0 } => {
                write!(f, "drop the partial record at the end of the index")
            }
            RepairAction::TruncateTornTail { records } => {
                write!(f, "drop {records} torn record(s) at the end of the index")
            }
            RepairAction::RestoreFromChecksums { events } => write!(
                f,
                "restore the index records of {events} event(s) from their checksum records"
            ),
            RepairAction::RestoreFromMetadata { events } => write!(
                f,
                "restore the index records of {events} data-less event(s) from the metadata file"
            ),
        }
    }
}

/// The state of one partition.
#[derive(Clone, Debug, Default)]
pub struct PartitionCheck {
    /// Partition index.
    pub partition: usize,
    /// The partition's folder.
    pub path: PathBuf,
    /// Events readers can read (the valid prefix of the index).
    pub events: u64,
    /// Of those, events whose bytes were verified against a checksum.
    pub verified: u64,
    /// Damage, each naming the events and files it affects.
    pub problems: Vec<String>,
    /// Facts that are not damage (events without checksums, leftovers of a crashed writer).
    pub notes: Vec<String>,
    /// What a repair does.
    pub repairs: Vec<RepairAction>,
}

impl PartitionCheck {
    /// True when nothing is wrong and nothing is to be repaired.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.repairs.is_empty()
    }
}

/// The state of a topic.
#[derive(Clone, Debug, Default)]
pub struct TopicCheck {
    /// Topic name.
    pub topic: String,
    /// Problems of the topic as a whole (missing partitions, ...).
    pub problems: Vec<String>,
    /// One entry per partition found.
    pub partitions: Vec<PartitionCheck>,
}

impl TopicCheck {
    /// True when nothing is wrong anywhere.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.partitions.iter().all(PartitionCheck::is_clean)
    }
}

/// Whether the topic's serializer frames each metadata record with its length (the built-in
/// `default` and `schema` serializers), which lets data-less events be found without an index.
fn framed_metadata(topic_dir: &Path) -> bool {
    let Ok(text) = std::fs::read(topic_dir.join("serializer.json")) else {
        return false;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return false;
    };
    matches!(
        v.get("type").and_then(|t| t.as_str()),
        None | Some("default") | Some("schema")
    )
}

/// Sizes of the length-framed metadata records from `start` to the end of the file, stopping at
/// the first record that does not fit.
fn framed_records(metadata: &NamedFile, start: u64, len: u64) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    let mut at = start;
    while at + 8 <= len {
        let mut b = [0u8; 8];
        metadata.read_exact_at(&mut b, at, "a metadata length")?;
        let n = u64::from_le_bytes(b);
        match n.checked_add(8).and_then(|s| at.checked_add(s)) {
            Some(end) if end <= len && n > 0 => {
                out.push(n + 8);
                at = end;
            }
            _ => break,
        }
    }
    Ok(out)
}

/// True when every index record from `from` is zeroed or points past the end of the files
/// (what a writer drops from the end of the index).
fn all_torn_from(
    files: &OpenFiles,
    from: u64,
    total: u64,
    metadata_len: u64,
    data_len: u64,
) -> Result<bool> {
    let mut at = from;
    while at < total {
        let n = (total - at).min(4096);
        for r in files.read_records(at, n)? {
            let zero = r.metadata_offset == 0
                && r.metadata_size == 0
                && r.data_offset == 0
                && r.data_size == 0;
            let (md_end, data_end) = r.ends();
            if !(zero || md_end > metadata_len || data_end > data_len) {
                return Ok(false);
            }
        }
        at += n;
    }
    Ok(true)
}

fn list_events(ids: &[u64]) -> String {
    let shown: Vec<String> = ids.iter().take(MAX_LISTED).map(u64::to_string).collect();
    if ids.len() > MAX_LISTED {
        format!("{} and {} more", shown.join(", "), ids.len() - MAX_LISTED)
    } else {
        shown.join(", ")
    }
}

/// Checks one partition (read-only).
fn check_partition(partition: usize, dir: &Path, framed: bool) -> Result<PartitionCheck> {
    let mut out = PartitionCheck {
        partition,
        path: dir.to_path_buf(),
        ..Default::default()
    };
    let files = match OpenFiles::open_read_only(dir) {
        Ok(Some(f)) => f,
        Ok(None) => {
            // No index; recoverable events may still be there.
            missing_index(dir, framed, &mut out)?;
            return Ok(out);
        }
        Err(Error::Corrupt { path, reason, .. })
            if path.file_name().is_some_and(|n| n == INDEX_FILE) =>
        {
            out.problems.push(reason);
            missing_index(dir, framed, &mut out)?;
            return Ok(out);
        }
        Err(e) => {
            out.problems.push(e.to_string());
            return Ok(out);
        }
    };
    let index_len = files.index.len()?;
    let metadata_len = files.metadata.len()?;
    let data_len = files.data.len()?;
    let total = index_len / INDEX_RECORD_SIZE;
    if index_len % INDEX_RECORD_SIZE != 0 {
        out.repairs
            .push(RepairAction::TruncateTornTail { records: 0 });
        out.notes.push(format!(
            "the index ends in a partial record ({} bytes)",
            index_len % INDEX_RECORD_SIZE
        ));
    }
    // Walk the index.
    let mut ends = (0u64, 0u64);
    let mut valid = 0u64;
    let mut mismatched = Vec::new();
    let mut verified = 0u64;
    let mut unchecked = 0u64;
    let has_sums = files.sums.is_some();
    'walk: while valid < total {
        let n = (total - valid).min(4096);
        let records = files.read_records(valid, n)?;
        let sums = files.read_sums(valid, n)?;
        for (k, r) in records.iter().enumerate() {
            let id = valid;
            if let Some(bad) = classify(id, r, ends, metadata_len, data_len) {
                if bad.is_torn() && all_torn_from(&files, id, total, metadata_len, data_len)? {
                    out.notes.push(format!(
                        "{} torn record(s) end the index ({})",
                        total - id,
                        bad.reason()
                    ));
                    if let Some(RepairAction::TruncateTornTail { records }) = out.repairs.last_mut()
                    {
                        *records = total - id;
                    } else {
                        out.repairs.push(RepairAction::TruncateTornTail {
                            records: total - id,
                        });
                    }
                } else {
                    out.problems.push(format!(
                        "{} at offset {} of {}; events {id} to {} ({} event(s)) cannot be read",
                        bad.reason(),
                        id * INDEX_RECORD_SIZE,
                        files.index.path.display(),
                        total - 1,
                        total - id
                    ));
                }
                break 'walk;
            }
            ends = r.ends();
            valid += 1;
            if !has_sums {
                continue;
            }
            match sums.get(k) {
                None => unchecked += 1,
                Some(None) => mismatched.push((id, "its checksum record is damaged".to_string())),
                Some(Some(sum)) => match check_event(&files, r, sum)? {
                    Ok(true) => verified += 1,
                    Ok(false) => unchecked += 1,
                    Err(why) => mismatched.push((id, why)),
                },
            }
        }
    }
    out.events = valid;
    out.verified = verified;
    if !mismatched.is_empty() {
        let ids: Vec<u64> = mismatched.iter().map(|m| m.0).collect();
        out.problems.push(format!(
            "{} event(s) do not match their checksums: {}",
            ids.len(),
            list_events(&ids)
        ));
        for (id, why) in mismatched.iter().take(MAX_LISTED) {
            out.problems.push(format!("event {id}: {why}"));
        }
    }
    if has_sums && unchecked > 0 {
        out.notes.push(format!(
            "{unchecked} event(s) have no checksum (appended by a writer that keeps none)"
        ));
    }
    if valid < total {
        return Ok(out);
    }
    // Past the last event: restorable events, or a crashed writer's leftovers.
    let mut restorable = 0u64;
    let mut next_ends = ends;
    if let Some(sums_file) = &files.sums {
        let have = sums_file.len()? / SUM_RECORD_SIZE;
        for sum in files.read_sums(valid, have.saturating_sub(valid))? {
            let Some(sum) = sum else { break };
            let r = IndexRecord {
                metadata_offset: next_ends.0,
                metadata_size: sum.metadata_size,
                data_offset: next_ends.1,
                data_size: sum.data_size,
            };
            if sum.crcs.is_none()
                || classify(valid + restorable, &r, next_ends, metadata_len, data_len).is_some()
                || check_event(&files, &r, &sum)? != Ok(true)
            {
                break;
            }
            next_ends = r.ends();
            restorable += 1;
        }
        if restorable > 0 {
            out.problems.push(format!(
                "{restorable} event(s) after event {} are stored and match their checksums but \
                 have no index record (a truncated index, or a writer that died before writing \
                 it)",
                valid as i128 - 1
            ));
            out.repairs
                .push(RepairAction::RestoreFromChecksums { events: restorable });
        }
    } else if framed && metadata_len > ends.0 && data_len == ends.1 {
        let found = framed_records(&files.metadata, ends.0, metadata_len)?;
        if !found.is_empty() {
            restorable = found.len() as u64;
            next_ends.0 += found.iter().sum::<u64>();
            out.problems.push(format!(
                "{restorable} data-less event(s) after event {} are in the metadata file but not \
                 in the index",
                valid as i128 - 1
            ));
            out.repairs
                .push(RepairAction::RestoreFromMetadata { events: restorable });
        }
    }
    if metadata_len > next_ends.0 || data_len > next_ends.1 {
        out.notes.push(format!(
            "{} metadata and {} data bytes past the last event cannot be attributed to events{} \
             (left by a batch that failed or a writer killed mid-batch; the next batch overwrites them)",
            metadata_len.saturating_sub(next_ends.0),
            data_len.saturating_sub(next_ends.1),
            if has_sums {
                ""
            } else {
                " without checksums (the data file does not record event sizes)"
            }
        ));
    }
    Ok(out)
}

/// A partition whose index is missing.
fn missing_index(dir: &Path, framed: bool, out: &mut PartitionCheck) -> Result<()> {
    let metadata = NamedFile::open_existing(dir.join(METADATA_FILE))?;
    let data = NamedFile::open_existing(dir.join(DATA_FILE))?;
    let sums = NamedFile::open_existing(dir.join(SUMS_FILE))?;
    let md_len = metadata
        .as_ref()
        .map(NamedFile::len)
        .transpose()?
        .unwrap_or(0);
    let data_len = data.as_ref().map(NamedFile::len).transpose()?.unwrap_or(0);
    if md_len == 0 {
        return Ok(());
    }
    let (Some(metadata), Some(data)) = (metadata, data) else {
        out.problems
            .push("the index is missing and so is the data file".to_string());
        return Ok(());
    };
    let files = OpenFiles {
        index: NamedFile {
            // Never read: every count below comes from the other files.
            file: std::fs::File::open("/dev/null")
                .map_err(|e| Error::io("open", "/dev/null", e))?,
            path: dir.join(INDEX_FILE),
        },
        metadata,
        data,
        sums,
        writable: false,
    };
    let mut restorable = 0u64;
    let mut ends = (0u64, 0u64);
    if let Some(s) = &files.sums {
        let have = s.len()? / SUM_RECORD_SIZE;
        for sum in files.read_sums(0, have)? {
            let Some(sum) = sum else { break };
            let r = IndexRecord {
                metadata_offset: ends.0,
                metadata_size: sum.metadata_size,
                data_offset: ends.1,
                data_size: sum.data_size,
            };
            if sum.crcs.is_none()
                || classify(restorable, &r, ends, md_len, data_len).is_some()
                || check_event(&files, &r, &sum)? != Ok(true)
            {
                break;
            }
            ends = r.ends();
            restorable += 1;
        }
        if restorable > 0 {
            out.repairs
                .push(RepairAction::RestoreFromChecksums { events: restorable });
        }
    } else if framed && data_len == 0 {
        restorable = framed_records(&files.metadata, 0, md_len)?.len() as u64;
        if restorable > 0 {
            out.repairs
                .push(RepairAction::RestoreFromMetadata { events: restorable });
        }
    }
    out.problems.push(format!(
        "the index is missing while the metadata file holds {md_len} bytes and the data file \
         {data_len}; {}",
        if restorable > 0 {
            format!("{restorable} event(s) can be restored")
        } else if files.sums.is_some() {
            "no event verifies against the checksum file".to_string()
        } else {
            "without a checksum file the event sizes in the data file are unknown".to_string()
        }
    ));
    Ok(())
}

/// Compares an event's bytes with its checksum record: `Ok(true)` verified, `Ok(false)` no CRC
/// to compare with, `Err(why)` mismatch.
fn check_event(
    files: &OpenFiles,
    r: &IndexRecord,
    sum: &SumRecord,
) -> Result<std::result::Result<bool, String>> {
    if (sum.metadata_size, sum.data_size) != (r.metadata_size, r.data_size) {
        return Ok(Err(format!(
            "the index says {} metadata and {} data bytes, its checksum record {} and {}",
            r.metadata_size, r.data_size, sum.metadata_size, sum.data_size
        )));
    }
    let Some((md_crc, data_crc)) = sum.crcs else {
        return Ok(Ok(false));
    };
    let mut md = vec![0u8; r.metadata_size as usize];
    files
        .metadata
        .read_exact_at(&mut md, r.metadata_offset, "metadata")?;
    if crc(&md) != md_crc {
        return Ok(Err(format!(
            "metadata checksum mismatch ({} at offset {})",
            files.metadata.path.display(),
            r.metadata_offset
        )));
    }
    let mut digest = Crc::new();
    let mut buf = vec![0u8; (r.data_size as usize).min(1 << 20)];
    let mut at = 0u64;
    while at < r.data_size {
        let n = ((r.data_size - at) as usize).min(buf.len());
        files
            .data
            .read_exact_at(&mut buf[..n], r.data_offset + at, "data")?;
        digest.update(&buf[..n]);
        at += n as u64;
    }
    if digest.finish() != data_crc {
        return Ok(Err(format!(
            "data checksum mismatch ({} at offset {})",
            files.data.path.display(),
            r.data_offset
        )));
    }
    Ok(Ok(true))
}

impl FilesDriver {
    fn topic_parts(&self, name: &str) -> Result<(PathBuf, TopicFacts, TopicCheck)> {
        let Some(dir) = self.topic_dir_exists(name)? else {
            return Err(Error::TopicNotFound(name.to_string()));
        };
        let facts = read_topic_facts(&dir)?;
        let mut report = TopicCheck {
            topic: name.to_string(),
            ..Default::default()
        };
        let pdir = dir.join("partitions");
        let found = partition_indices(&pdir)?;
        let expected = facts
            .num_partitions
            .unwrap_or_else(|| found.last().map_or(0, |m| m + 1));
        if expected == 0 {
            report
                .problems
                .push(format!("the topic has no partition ({})", pdir.display()));
        }
        for p in 0..expected {
            if !found.contains(&p) {
                report.problems.push(format!(
                    "partition {p} is missing ({} does not exist; the topic has {expected} \
                     partitions): its events are lost",
                    pdir.join(format!("{p:08}")).display()
                ));
            }
        }
        for &p in found.iter().filter(|&&p| p >= expected) {
            report.problems.push(format!(
                "{} is not a partition of this topic (it has {expected})",
                pdir.join(format!("{p:08}")).display()
            ));
        }
        Ok((dir, facts, report))
    }

    /// Checks every partition of a topic without changing anything. `progress` is called with
    /// each partition's result as it is done.
    pub fn check_topic(
        &self,
        name: &str,
        mut progress: impl FnMut(&PartitionCheck),
    ) -> Result<TopicCheck> {
        let (dir, facts, mut report) = self.topic_parts(name)?;
        let framed = framed_metadata(&dir);
        let n = facts.num_partitions.unwrap_or(usize::MAX);
        for p in partition_indices(&dir.join("partitions"))?
            .into_iter()
            .filter(|&p| p < n)
        {
            let c = check_partition(p, &dir.join("partitions").join(format!("{p:08}")), framed)?;
            progress(&c);
            report.partitions.push(c);
        }
        Ok(report)
    }

    /// Repairs what [`check_topic`](Self::check_topic) found repairable: with `apply` false, a
    /// dry run that only reports the planned actions. Each partition is locked while it is
    /// repaired; a partition whose lock another process holds fails the repair with
    /// [`Error::LockTimeout`] naming the holder. Returns the state after the repair.
    pub fn repair_topic(
        &self,
        name: &str,
        apply: bool,
        mut progress: impl FnMut(&PartitionCheck),
    ) -> Result<TopicCheck> {
        let (dir, facts, mut report) = self.topic_parts(name)?;
        let framed = framed_metadata(&dir);
        let settings = PartitionSettings {
            use_file_locking: true,
            flush_behavior: super::FlushBehavior::Immediate,
            lock_timeout: Duration::ZERO,
            checksums: facts.checksums,
            verify: true,
        };
        let n = facts.num_partitions.unwrap_or(usize::MAX);
        for p in partition_indices(&dir.join("partitions"))?
            .into_iter()
            .filter(|&p| p < n)
        {
            let pdir = dir.join("partitions").join(format!("{p:08}"));
            let planned = check_partition(p, &pdir, framed)?;
            if !apply || planned.repairs.is_empty() {
                progress(&planned);
                report.partitions.push(planned);
                continue;
            }
            let index_path = pdir.join(INDEX_FILE);
            if !index_path.exists()
                && planned
                    .repairs
                    .iter()
                    .any(|a| matches!(a, RepairAction::RestoreFromMetadata { .. }))
            {
                std::fs::File::create_new(&index_path)
                    .map_err(|e| Error::io("create", &index_path, e))?;
            }
            let files = OpenFiles::open_writable(&pdir, facts.checksums)?;
            files
                .index
                .lock(Duration::ZERO, &format!("repair of partition {p}"))?;
            let done = (|| {
                // Check again under the lock: a writer may have changed things meanwhile.
                let planned = check_partition(p, &pdir, framed)?;
                let part = PartitionFiles::new(&pdir, format!("partition {p}"), settings);
                let tail = part.recover_tail(&files)?;
                if let Some(RepairAction::RestoreFromMetadata { .. }) = planned
                    .repairs
                    .iter()
                    .find(|a| matches!(a, RepairAction::RestoreFromMetadata { .. }))
                {
                    let md_len = files.metadata.len()?;
                    let mut out = Vec::new();
                    let mut at = tail.metadata_end;
                    for size in framed_records(&files.metadata, at, md_len)? {
                        IndexRecord {
                            metadata_offset: at,
                            metadata_size: size,
                            data_offset: tail.data_end,
                            data_size: 0,
                        }
                        .encode(&mut out);
                        at += size;
                    }
                    files
                        .index
                        .write_all_at(&out, tail.num_events * INDEX_RECORD_SIZE)?;
                }
                files.index.sync()?;
                if let Some(s) = &files.sums {
                    s.sync()?;
                }
                check_partition(p, &pdir, framed)
            })();
            files.index.unlock();
            let mut after = done?;
            after.notes.insert(
                0,
                format!(
                    "repaired: {}",
                    planned
                        .repairs
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            );
            progress(&after);
            report.partitions.push(after);
        }
        Ok(report)
    }
}
