//! Checking a topic's files and repairing what can be repaired (`diaspora-ctl topic check` and
//! `topic repair`).
//!
//! A check reads every partition without changing anything: each index record must start at or
//! after the end of the previous one and point inside the files, each event with a checksum
//! record must match it, and bytes past the last indexed event are accounted for (events whose
//! index records were lost can be restored from their checksum records). It predicts what the next
//! writer does with the same rules (see `recovery`). A repair takes each partition's lock
//! (refusing when a writer holds it), does what the next writer would, and checks again; a lost
//! index is rebuilt aside and moved into place. It never guesses: damage it cannot undo (a flipped
//! bit, a changed offset) is reported with the events it affects.

use super::file::NamedFile;
use super::index::{classify, IndexRecord, INDEX_RECORD_SIZE};
use super::open_files::{OpenFiles, DATA_FILE, INDEX_FILE, METADATA_FILE, SUMS_FILE};
use super::recovery::{recover, scan_beyond, valid_end, Beyond};
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
    /// Rebuild a lost index of a partition without checksums that holds no data at all: every
    /// length-framed metadata record is a data-less event.
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
                "rebuild the lost index from the metadata file ({events} data-less event(s))"
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

/// Describes what `scan_beyond` found past event `valid` in `out`.
fn report_beyond(beyond: &Beyond, valid: u64, out: &mut PartitionCheck) {
    let restorable = beyond.restorable.len() as u64;
    if restorable > 0 {
        out.problems.push(format!(
            "{restorable} event(s) after event {} are stored{} but have no index record (a \
             truncated or lost index, or a writer that died before writing it)",
            valid as i128 - 1,
            if beyond.unverified == restorable {
                " (known by their sizes only)"
            } else {
                " and match their checksums"
            }
        ));
        out.repairs
            .push(RepairAction::RestoreFromChecksums { events: restorable });
    }
    if let Some(d) = &beyond.damage {
        out.problems.push(format!(
            "{d}: stored events follow a damaged one; writers refuse to append and repair \
             cannot restore past it"
        ));
    } else if beyond.leftover > 0 {
        out.notes.push(format!(
            "{} checksum record(s) past the last event describe bytes that are not stored (a \
             batch cut short); the next writer drops them",
            beyond.leftover
        ));
    }
}

/// Checks one partition (read-only).
fn check_partition(
    partition: usize,
    dir: &Path,
    framed: bool,
    facts: &TopicFacts,
) -> Result<PartitionCheck> {
    let mut out = PartitionCheck {
        partition,
        path: dir.to_path_buf(),
        ..Default::default()
    };
    let files = match OpenFiles::open_read_only(dir) {
        Ok(Some(f)) => f,
        Ok(None) if dir.join(INDEX_FILE).exists() => {
            // An index without events, and the metadata or data file not there (yet).
            let md_len = std::fs::metadata(dir.join(METADATA_FILE)).map_or(0, |m| m.len());
            if md_len > 0 {
                out.problems.push(format!(
                    "the data file is missing while the metadata file holds {md_len} bytes"
                ));
            }
            return Ok(out);
        }
        Ok(None) => {
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
    if facts.checksums && files.sums.is_none() {
        out.problems.push(format!(
            "the topic keeps checksums but {} is missing: events are not verified (the next \
             writer starts a new one)",
            dir.join(SUMS_FILE).display()
        ));
    }
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
    // Walk the index as a reader does.
    let mut ends = (0u64, 0u64);
    let mut valid = 0u64;
    let mut mismatched = Vec::new();
    let mut verified = 0u64;
    let mut unchecked = 0u64;
    let has_sums = files.sums.is_some();
    let mut torn_tail = false;
    'walk: while valid < total {
        let n = (total - valid).min(4096);
        let records = files.read_records(valid, n)?;
        let sums = files.read_sums(valid, n)?;
        for (k, r) in records.iter().enumerate() {
            let id = valid;
            if let Some(bad) = classify(id, r, ends, metadata_len, data_len) {
                if bad.is_torn() && all_torn_from(&files, id, total, metadata_len, data_len)? {
                    torn_tail = true;
                    out.notes.push(format!(
                        "{} torn record(s) end the index ({})",
                        total - id,
                        bad.reason()
                    ));
                    match out.repairs.last_mut() {
                        Some(RepairAction::TruncateTornTail { records }) => *records = total - id,
                        _ => out.repairs.push(RepairAction::TruncateTornTail {
                            records: total - id,
                        }),
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
                Some(Some(sum)) => match files.event_matches(r, sum)? {
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
    // What the next writer does: refuse after a corrupt last record, or restore and go on.
    let end = match valid_end(&files, files.index.len()?, metadata_len, data_len)? {
        Ok(end) => end,
        Err((id, why)) => {
            out.problems.push(format!(
                "writers refuse to append: the last record that is not torn is damaged (event \
                 {id}: {why})"
            ));
            return Ok(out);
        }
    };
    if valid < total && !torn_tail {
        return Ok(out);
    }
    let beyond = scan_beyond(&files, end.events, end.ends, metadata_len, data_len)?;
    report_beyond(&beyond, end.events, &mut out);
    let next_ends = beyond.restorable.last().map_or(end.ends, IndexRecord::ends);
    if metadata_len > next_ends.0 || data_len > next_ends.1 {
        out.notes.push(format!(
            "{} metadata and {} data bytes past the last event belong to no event{} (left by a \
             batch that failed or a writer killed mid-batch; the next batch overwrites them)",
            metadata_len.saturating_sub(next_ends.0),
            data_len.saturating_sub(next_ends.1),
            if has_sums {
                ""
            } else {
                " known (without checksums the data file does not record event sizes)"
            }
        ));
    }
    Ok(out)
}

/// The files of a partition whose index is missing, with a stand-in for the index (never read).
fn without_index(dir: &Path) -> Result<Option<OpenFiles>> {
    let metadata = NamedFile::open_existing(dir.join(METADATA_FILE))?;
    let data = NamedFile::open_existing(dir.join(DATA_FILE))?;
    let sums = NamedFile::open_existing(dir.join(SUMS_FILE))?;
    let (Some(metadata), Some(data)) = (metadata, data) else {
        return Ok(None);
    };
    Ok(Some(OpenFiles {
        index: NamedFile::new(
            std::fs::File::open("/dev/null").map_err(|e| Error::io("open", "/dev/null", e))?,
            dir.join(INDEX_FILE),
        ),
        metadata,
        data,
        sums,
        writable: false,
    }))
}

/// How a lost index can be rebuilt: the records, and what they come from.
fn rebuild_plan(
    files: &OpenFiles,
    framed: bool,
) -> Result<(Vec<IndexRecord>, Option<RepairAction>)> {
    let md_len = files.metadata.len()?;
    let data_len = files.data.len()?;
    let has_sums = match &files.sums {
        Some(s) => s.len()? >= super::sums::SUM_RECORD_SIZE,
        None => false,
    };
    if has_sums {
        let beyond = scan_beyond(files, 0, (0, 0), md_len, data_len)?;
        if beyond.damage.is_some() || beyond.restorable.is_empty() {
            return Ok((Vec::new(), None));
        }
        let n = beyond.restorable.len() as u64;
        return Ok((
            beyond.restorable,
            Some(RepairAction::RestoreFromChecksums { events: n }),
        ));
    }
    if framed && data_len == 0 {
        let mut records = Vec::new();
        let mut at = 0;
        for size in framed_records(&files.metadata, 0, md_len)? {
            records.push(IndexRecord {
                metadata_offset: at,
                metadata_size: size,
                data_offset: 0,
                data_size: 0,
            });
            at += size;
        }
        if at == md_len && !records.is_empty() {
            let n = records.len() as u64;
            return Ok((
                records,
                Some(RepairAction::RestoreFromMetadata { events: n }),
            ));
        }
    }
    Ok((Vec::new(), None))
}

/// A partition whose index is missing.
fn missing_index(dir: &Path, framed: bool, out: &mut PartitionCheck) -> Result<()> {
    let Some(files) = without_index(dir)? else {
        let md_len = std::fs::metadata(dir.join(METADATA_FILE)).map_or(0, |m| m.len());
        if md_len > 0 {
            out.problems.push(format!(
                "the index and the data file are missing while the metadata file holds \
                 {md_len} bytes"
            ));
        }
        return Ok(());
    };
    let md_len = files.metadata.len()?;
    let data_len = files.data.len()?;
    if md_len == 0 {
        return Ok(());
    }
    let (records, action) = rebuild_plan(&files, framed)?;
    let restorable = records.len() as u64;
    if let Some(a) = action {
        out.repairs.push(a);
    }
    let covered = records.last().map_or((0, 0), IndexRecord::ends);
    out.problems.push(format!(
        "the index is missing while the metadata file holds {md_len} bytes and the data file \
         {data_len}; {}",
        if restorable > 0 {
            let left = md_len - covered.0.min(md_len);
            format!(
                "{restorable} event(s) can be restored{}",
                if left > 0 {
                    format!(
                        " ({left} metadata bytes after them belong to no known event and would \
                         be overwritten by the next writer)"
                    )
                } else {
                    String::new()
                }
            )
        } else if files.sums.is_some() {
            "no event verifies against the checksum file".to_string()
        } else {
            "without a checksum file the event sizes in the data file are unknown".to_string()
        }
    ));
    Ok(())
}

/// The partition folders of a topic that belong to it (index, path).
fn partition_dirs(topic_dir: &Path, facts: &TopicFacts) -> Result<Vec<(usize, PathBuf)>> {
    let pdir = topic_dir.join("partitions");
    let n = facts.num_partitions.unwrap_or(usize::MAX);
    Ok(partition_indices(&pdir)?
        .into_iter()
        .filter(|&p| p < n)
        .map(|p| (p, pdir.join(format!("{p:08}"))))
        .collect())
}

/// Checks `dirs` one after the other, calling `progress` with each result.
fn check_partitions_in_order(
    dirs: &[(usize, PathBuf)],
    framed: bool,
    facts: &TopicFacts,
    progress: &mut impl FnMut(&PartitionCheck),
) -> Result<Vec<PartitionCheck>> {
    dirs.iter()
        .map(|(p, pdir)| {
            let c = check_partition(*p, pdir, framed, facts)?;
            progress(&c);
            Ok(c)
        })
        .collect()
}

/// Checks `dirs` one after the other (without feature `rayon`).
#[cfg(not(feature = "rayon"))]
fn check_partitions(
    dirs: &[(usize, PathBuf)],
    framed: bool,
    facts: &TopicFacts,
    progress: &mut impl FnMut(&PartitionCheck),
) -> Result<Vec<PartitionCheck>> {
    check_partitions_in_order(dirs, framed, facts, progress)
}

/// Checks `dirs` in parallel on rayon's global pool (reading and verifying the partitions' files
/// is independent work), calling `progress` in this thread as each partition is done; the
/// results come back in partition order. The first error (in partition order) is returned.
/// Called from a rayon pool of one thread, checks them one after the other instead.
#[cfg(feature = "rayon")]
fn check_partitions(
    dirs: &[(usize, PathBuf)],
    framed: bool,
    facts: &TopicFacts,
    progress: &mut impl FnMut(&PartitionCheck),
) -> Result<Vec<PartitionCheck>> {
    use rayon::prelude::*;
    if rayon::current_thread_index().is_some() && rayon::current_num_threads() <= 1 {
        return check_partitions_in_order(dirs, framed, facts, progress);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let mut results: Vec<Option<Result<PartitionCheck>>> = (0..dirs.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            dirs.par_iter()
                .enumerate()
                .for_each_with(tx, |tx, (i, (p, pdir))| {
                    let _ = tx.send((i, check_partition(*p, pdir, framed, facts)));
                });
        });
        for (i, r) in rx {
            if let Ok(c) = &r {
                progress(c);
            }
            results[i] = Some(r);
        }
    });
    results
        .into_iter()
        .map(|r| r.expect("every partition checked"))
        .collect()
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
        let dirs = partition_dirs(&dir, &facts)?;
        report.partitions = check_partitions(&dirs, framed, &facts, &mut progress)?;
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
        for (p, pdir) in partition_dirs(&dir, &facts)? {
            let planned = check_partition(p, &pdir, framed, &facts)?;
            if !apply || planned.repairs.is_empty() {
                progress(&planned);
                report.partitions.push(planned);
                continue;
            }
            let index_path = pdir.join(INDEX_FILE);
            if !index_path.exists() {
                // Writers refuse while the index is missing: build it aside, then move it into
                // place in one step.
                rebuild_index(&pdir, framed)?;
            } else {
                let files = OpenFiles::open_writable(&pdir, facts.checksums)?;
                files
                    .index
                    .lock(Duration::ZERO, &format!("repair of partition {p}"))?;
                let done = (|| {
                    recover(&files, &format!("partition {p}"))?;
                    files.index.sync()?;
                    if let Some(s) = &files.sums {
                        s.sync()?;
                    }
                    Ok::<_, Error>(())
                })();
                files.index.unlock();
                done?;
            }
            let mut after = check_partition(p, &pdir, framed, &facts)?;
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

/// Rebuilds a lost index from the checksum file (or, for data-less partitions without one, from
/// the metadata framing) in a new file, then moves it into place unless an index appeared
/// meanwhile.
fn rebuild_index(pdir: &Path, framed: bool) -> Result<()> {
    let Some(files) = without_index(pdir)? else {
        return Ok(());
    };
    let (records, _) = rebuild_plan(&files, framed)?;
    if records.is_empty() {
        return Ok(());
    }
    let mut bytes = Vec::with_capacity(records.len() * INDEX_RECORD_SIZE as usize);
    for r in &records {
        r.encode(&mut bytes);
    }
    let tmp = pdir.join(format!(".index.repair-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()
    };
    write().map_err(|e| Error::io("write the rebuilt index", &tmp, e))?;
    let target = pdir.join(INDEX_FILE);
    let moved = rustix::fs::renameat_with(
        rustix::fs::CWD,
        &tmp,
        rustix::fs::CWD,
        &target,
        rustix::fs::RenameFlags::NOREPLACE,
    );
    if let Err(e) = moved {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(
            "move the rebuilt index into place (did a writer create one meanwhile?)",
            &target,
            e.into(),
        ));
    }
    Ok(())
}
