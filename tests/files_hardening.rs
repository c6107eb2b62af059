//! Files driver under damage: zeroed index tails, reads that must not write, lost index records,
//! checksums, forged control events, lock timeouts. Each test reproduces one way data used to be
//! lost, hidden or silently wrong.

use diaspora_stream::drivers::files::{FilesDriver, RepairAction};
use diaspora_stream::{DataView, Driver, Error, TopicHandle};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn driver(root: &Path) -> Driver {
    Driver::new("files", &json!({"root_path": root})).unwrap()
}

fn driver_with(root: &Path, extra: Value) -> Driver {
    let mut options = json!({"root_path": root});
    for (k, v) in extra.as_object().unwrap() {
        options[k] = v.clone();
    }
    Driver::new("files", &options).unwrap()
}

fn pfile(root: &Path, topic: &str, p: usize, file: &str) -> PathBuf {
    root.join(topic)
        .join("partitions")
        .join(format!("{p:08}"))
        .join(file)
}

fn data_of(i: u64) -> Vec<u8> {
    (0..(10 + i * 3)).map(|k| (k + i * 7) as u8).collect()
}

/// Pushes events `range` (metadata `{"i": i}`, data `data_of(i)`) and returns their ids.
fn produce(topic: &TopicHandle, range: std::ops::Range<u64>) -> Vec<u64> {
    let producer = topic.producer().build().unwrap();
    let futures: Vec<_> = range
        .map(|i| producer.push(json!({ "i": i }), DataView::from(data_of(i))))
        .collect();
    producer.flush().wait().unwrap();
    futures.into_iter().map(|f| f.wait().unwrap()).collect()
}

/// Reads partition 0 with a fresh anonymous consumer until nothing comes: (events as (i, data)
/// pairs, errors).
fn read_all(topic: &TopicHandle) -> (Vec<(u64, Vec<u8>)>, Vec<Error>) {
    let consumer = topic.consumer("").build().unwrap();
    let mut evs = Vec::new();
    let mut errs = Vec::new();
    loop {
        match consumer.pull().wait_timeout(Duration::from_millis(300)) {
            Ok(Some(ev)) => {
                if ev.is_end_of_stream() {
                    break;
                }
                evs.push((
                    ev.metadata().json()["i"].as_u64().unwrap(),
                    ev.data().to_vec(),
                ));
            }
            Ok(None) => break,
            Err(e) => {
                errs.push(e);
                break;
            }
        }
    }
    (evs, errs)
}

fn assert_intact(evs: &[(u64, Vec<u8>)], n: u64) {
    assert_eq!(
        evs.len() as u64,
        n,
        "{:?}",
        evs.iter().map(|e| e.0).collect::<Vec<_>>()
    );
    for (k, (i, data)) in evs.iter().enumerate() {
        assert_eq!(*i, k as u64);
        assert_eq!(data, &data_of(k as u64), "data of event {k}");
    }
}

/// Every file under `dir` with its content.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(snapshot(&path));
        } else {
            out.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    out
}

fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn grow(path: &Path, by: u64) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len + by).unwrap();
}

fn files_backend(d: &Driver) -> &FilesDriver {
    d.backend_as::<FilesDriver>().unwrap()
}

#[test]
fn zeroed_index_tail_is_ignored_and_never_overwrites_events() {
    for checksums in [true, false] {
        for zero_records in [1u64, 5] {
            let tmp = tempfile::tempdir().unwrap();
            let d = driver(tmp.path());
            d.create_topic("z", &json!({ "checksums": checksums }))
                .unwrap();
            let topic = d.open_topic("z").unwrap();
            assert_eq!(produce(&topic, 0..3), vec![0, 1, 2]);
            // `truncate -s +32*k index`, as a crash can leave it.
            grow(&pfile(tmp.path(), "z", 0, "index"), 32 * zero_records);
            let (evs, errs) = read_all(&d.open_topic("z").unwrap());
            assert!(errs.is_empty(), "{errs:?}");
            assert_intact(&evs, 3);
            // The next writer drops the zeroed tail and appends after event 2.
            assert_eq!(produce(&d.open_topic("z").unwrap(), 3..4), vec![3]);
            assert_eq!(
                std::fs::metadata(pfile(tmp.path(), "z", 0, "index"))
                    .unwrap()
                    .len(),
                4 * 32
            );
            let (evs, errs) = read_all(&d.open_topic("z").unwrap());
            assert!(errs.is_empty(), "{errs:?}");
            assert_intact(&evs, 4);
        }
    }
}

#[test]
fn zeroed_record_followed_by_events_is_an_error_not_an_end() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("z", &json!({})).unwrap();
    let topic = d.open_topic("z").unwrap();
    produce(&topic, 0..4);
    // Zero record 1 in place: events 2 and 3 follow it.
    let index = OpenOptions::new()
        .write(true)
        .open(pfile(tmp.path(), "z", 0, "index"))
        .unwrap();
    index.write_all_at(&[0u8; 32], 32).unwrap();
    let (evs, errs) = read_all(&topic);
    assert_eq!(evs.len(), 1);
    let msg = errs[0].to_string();
    assert!(
        msg.contains("index") && msg.contains("offset 32") && msg.contains("event 1"),
        "{msg}"
    );
    // The check names the events that the damage makes unreadable.
    let report = files_backend(&d).check_topic("z", |_| {}).unwrap();
    assert!(!report.is_clean());
    let text = format!("{:?}", report.partitions[0].problems);
    assert!(text.contains("events 1 to 3"), "{text}");
}

#[test]
fn readers_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    // A missing root: opening fails and nothing is created.
    let root = tmp.path().join("absent");
    let d = driver(&root);
    assert!(matches!(
        d.open_topic("t").unwrap_err(),
        Error::TopicNotFound(_)
    ));
    assert!(!d.topic_exists("t").unwrap());
    assert!(d.list_topics().unwrap().is_empty());
    assert!(!root.exists(), "a reader created the root");

    // A partition whose files are missing (a C++ topic never opened by a writer): empty, and
    // consuming creates no file.
    let d = driver(tmp.path());
    d.create_topic("t", &json!({"num_partitions": 2})).unwrap();
    for f in ["index", "metadata", "data", "checksums"] {
        std::fs::remove_file(pfile(tmp.path(), "t", 1, f)).unwrap();
    }
    {
        let topic = d.open_topic("t").unwrap();
        let producer = topic.producer().build().unwrap();
        for i in 0..3 {
            producer.push_to(json!({ "i": i }), DataView::from(data_of(i)), 0);
        }
        producer.flush().wait().unwrap();
    }
    let before = snapshot(&tmp.path().join("t"));
    let topic = d.open_topic("t").unwrap();
    let consumer = topic.consumer("reader").build().unwrap();
    let mut n = 0;
    while let Ok(Some(ev)) = consumer.pull().wait_timeout(Duration::from_millis(300)) {
        n += 1;
        ev.acknowledge().unwrap();
    }
    assert_eq!(n, 3);
    drop(consumer);
    let mut after = snapshot(&tmp.path().join("t"));
    // Only the consumer's own positions may appear.
    after.retain(|p, _| !p.starts_with(tmp.path().join("t").join("consumers")));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    assert!(before == after, "a reader changed a file");
    assert!(!pfile(tmp.path(), "t", 1, "index").exists());

    // A missing index while metadata is there: an error naming the file, no empty index.
    std::fs::remove_file(pfile(tmp.path(), "t", 0, "index")).unwrap();
    let (evs, errs) = read_all(&d.open_topic("t").unwrap());
    assert!(evs.is_empty());
    let msg = errs[0].to_string();
    assert!(
        msg.contains("index is missing") && msg.contains("00000000"),
        "{msg}"
    );
    assert!(!pfile(tmp.path(), "t", 0, "index").exists());
}

#[test]
fn missing_index_without_checksums_stops_writers() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("t", &json!({"checksums": false})).unwrap();
    produce(&d.open_topic("t").unwrap(), 0..3);
    std::fs::remove_file(pfile(tmp.path(), "t", 0, "index")).unwrap();
    let md_before = std::fs::read(pfile(tmp.path(), "t", 0, "metadata")).unwrap();
    let topic = d.open_topic("t").unwrap();
    let producer = topic.producer().build().unwrap();
    let err = producer
        .push(json!({"i": 9}), DataView::from("x"))
        .wait()
        .unwrap_err();
    assert!(err.to_string().contains("index is missing"), "{err}");
    drop(producer);
    assert_eq!(
        std::fs::read(pfile(tmp.path(), "t", 0, "metadata")).unwrap(),
        md_before,
        "stored metadata was overwritten"
    );
}

#[test]
fn deleted_partition_folder_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("t", &json!({"num_partitions": 4})).unwrap();
    std::fs::remove_dir_all(tmp.path().join("t/partitions/00000003")).unwrap();
    let err = d.open_topic("t").err().unwrap().to_string();
    assert!(
        err.contains("partition 3") && err.contains("has 4 partitions"),
        "{err}"
    );
    assert_eq!(d.list_topics().unwrap()["t"]["num_partitions"], 4);
    let report = files_backend(&d).check_topic("t", |_| {}).unwrap();
    assert!(
        report.problems[0].contains("partition 3 is missing"),
        "{report:?}"
    );
}

#[test]
fn truncated_index_is_reported_and_restored() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("t", &json!({})).unwrap();
    produce(&d.open_topic("t").unwrap(), 0..10);
    let index = pfile(tmp.path(), "t", 0, "index");
    set_len(&index, 4 * 32 + 7);
    let (evs, errs) = read_all(&d.open_topic("t").unwrap());
    assert!(errs.is_empty(), "{errs:?}");
    assert_intact(&evs, 4);
    let files = files_backend(&d);
    let report = files.check_topic("t", |_| {}).unwrap();
    assert!(!report.is_clean());
    let p = &report.partitions[0];
    assert_eq!(p.events, 4);
    assert_eq!(p.verified, 4);
    assert!(p.problems[0].contains("6 event(s) after event 3"), "{p:?}");
    assert!(p
        .repairs
        .contains(&RepairAction::RestoreFromChecksums { events: 6 }));
    // A dry run changes nothing.
    let before = snapshot(&tmp.path().join("t"));
    files.repair_topic("t", false, |_| {}).unwrap();
    assert!(before == snapshot(&tmp.path().join("t")));
    let after = files.repair_topic("t", true, |_| {}).unwrap();
    assert!(after.is_clean(), "{after:?}");
    assert_eq!(after.partitions[0].events, 10);
    let (evs, errs) = read_all(&d.open_topic("t").unwrap());
    assert!(errs.is_empty(), "{errs:?}");
    assert_intact(&evs, 10);
}

#[test]
fn writer_restores_lost_index_records_before_appending() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("t", &json!({})).unwrap();
    produce(&d.open_topic("t").unwrap(), 0..10);
    set_len(&pfile(tmp.path(), "t", 0, "index"), 2 * 32);
    assert_eq!(produce(&d.open_topic("t").unwrap(), 10..11), vec![10]);
    let (evs, errs) = read_all(&d.open_topic("t").unwrap());
    assert!(errs.is_empty(), "{errs:?}");
    assert_intact(&evs, 11);
    // And a lost index altogether.
    std::fs::remove_file(pfile(tmp.path(), "t", 0, "index")).unwrap();
    let report = files_backend(&d).check_topic("t", |_| {}).unwrap();
    assert!(report.partitions[0]
        .repairs
        .contains(&RepairAction::RestoreFromChecksums { events: 11 }));
    let after = files_backend(&d).repair_topic("t", true, |_| {}).unwrap();
    assert!(after.is_clean(), "{after:?}");
    let (evs, _) = read_all(&d.open_topic("t").unwrap());
    assert_intact(&evs, 11);
}

#[test]
fn lost_index_of_dataless_partition_without_checksums_is_rebuilt_from_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("t", &json!({"checksums": false})).unwrap();
    let topic = d.open_topic("t").unwrap();
    let producer = topic.producer().build().unwrap();
    for i in 0..6 {
        producer.push(json!({ "i": i }), DataView::new());
    }
    producer.flush().wait().unwrap();
    drop(producer);
    std::fs::remove_file(pfile(tmp.path(), "t", 0, "index")).unwrap();
    let files = files_backend(&d);
    let report = files.check_topic("t", |_| {}).unwrap();
    assert!(report.partitions[0]
        .repairs
        .contains(&RepairAction::RestoreFromMetadata { events: 6 }));
    assert!(files.repair_topic("t", true, |_| {}).unwrap().is_clean());
    let consumer = d.open_topic("t").unwrap().consumer("").build().unwrap();
    let mut ids = Vec::new();
    while let Ok(Some(ev)) = consumer.pull().wait_timeout(Duration::from_millis(300)) {
        ids.push(ev.metadata().json()["i"].as_u64().unwrap());
    }
    assert_eq!(ids, (0..6).collect::<Vec<_>>());
}

#[test]
fn checksums_catch_flipped_bits_changed_offsets_and_swapped_records() {
    let flip = |path: PathBuf, at: u64| {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).unwrap();
        f.write_all_at(&[b[0] ^ 0x10], at).unwrap();
    };
    type Damage = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Damage, &[&str])> = vec![
        (
            "data bit",
            Box::new(move |root: &Path| flip(pfile(root, "t", 0, "data"), 60)),
            &["checksum mismatch in the data of event", "data"],
        ),
        (
            "metadata bit",
            Box::new(move |root: &Path| flip(pfile(root, "t", 0, "metadata"), 30)),
            &["checksum mismatch in the metadata of event", "metadata"],
        ),
        (
            "changed offset (forward: caught by the checksum)",
            Box::new(move |root: &Path| {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(pfile(root, "t", 0, "index"))
                    .unwrap();
                let mut b = [0u8; 8];
                f.read_exact_at(&mut b, 2 * 32 + 16).unwrap();
                let moved = u64::from_le_bytes(b) + 3;
                f.write_all_at(&moved.to_le_bytes(), 2 * 32 + 16).unwrap();
            }),
            &["checksum mismatch in the data of event 2"],
        ),
        (
            "changed offset (backward: overlaps)",
            Box::new(move |root: &Path| {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(pfile(root, "t", 0, "index"))
                    .unwrap();
                let mut b = [0u8; 8];
                f.read_exact_at(&mut b, 2 * 32 + 16).unwrap();
                let moved = u64::from_le_bytes(b) - 3;
                f.write_all_at(&moved.to_le_bytes(), 2 * 32 + 16).unwrap();
            }),
            &["event 2 overlaps the previous event", "index"],
        ),
        (
            "swapped records",
            Box::new(move |root: &Path| {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(pfile(root, "t", 0, "index"))
                    .unwrap();
                let mut a = [0u8; 32];
                let mut b = [0u8; 32];
                f.read_exact_at(&mut a, 32).unwrap();
                f.read_exact_at(&mut b, 64).unwrap();
                f.write_all_at(&b, 32).unwrap();
                f.write_all_at(&a, 64).unwrap();
            }),
            &["event 1", "checksum record"],
        ),
    ];
    for (what, damage, needles) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let d = driver(tmp.path());
        d.create_topic("t", &json!({})).unwrap();
        produce(&d.open_topic("t").unwrap(), 0..5);
        damage(tmp.path());
        let (evs, errs) = read_all(&d.open_topic("t").unwrap());
        assert!(evs.len() < 5, "{what}: every event delivered");
        let msg = errs
            .first()
            .unwrap_or_else(|| panic!("{what}: no error"))
            .to_string();
        for n in needles {
            assert!(msg.contains(n), "{what}: {msg}");
        }
        assert!(
            msg.contains("partition 0") || msg.contains("00000000"),
            "{what}: {msg}"
        );
        assert!(
            !files_backend(&d)
                .check_topic("t", |_| {})
                .unwrap()
                .is_clean(),
            "{what}: check found nothing"
        );
    }
}

#[test]
fn verification_can_be_turned_off_and_old_topics_have_none() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("t", &json!({})).unwrap();
    produce(&d.open_topic("t").unwrap(), 0..3);
    let data = pfile(tmp.path(), "t", 0, "data");
    let f = OpenOptions::new().write(true).open(&data).unwrap();
    f.write_all_at(&[0xFF], 0).unwrap();
    // With verification off the flipped byte is delivered as is.
    let fast = driver_with(tmp.path(), json!({"verify_checksums": false}));
    let (evs, errs) = read_all(&fast.open_topic("t").unwrap());
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(evs.len(), 3);
    assert_eq!(evs[0].1[0], 0xFF);
    // A topic created without checksums has no checksum file and reads as before.
    d.create_topic("plain", &json!({"checksums": false}))
        .unwrap();
    assert!(!pfile(tmp.path(), "plain", 0, "checksums").exists());
    produce(&d.open_topic("plain").unwrap(), 0..3);
    assert!(!pfile(tmp.path(), "plain", 0, "checksums").exists());
    let (evs, errs) = read_all(&d.open_topic("plain").unwrap());
    assert!(errs.is_empty());
    assert_intact(&evs, 3);
}

#[test]
fn events_appended_by_a_writer_without_checksums_stay_readable() {
    // Simulates the C++ writer: it appends index records and bytes but no checksum records.
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("t", &json!({})).unwrap();
    produce(&d.open_topic("t").unwrap(), 0..2);
    let sums = pfile(tmp.path(), "t", 0, "checksums");
    let saved = std::fs::read(&sums).unwrap();
    produce(&d.open_topic("t").unwrap(), 2..4);
    std::fs::write(&sums, &saved).unwrap(); // events 2 and 3 now have no checksum record
    let (evs, errs) = read_all(&d.open_topic("t").unwrap());
    assert!(errs.is_empty(), "{errs:?}");
    assert_intact(&evs, 4);
    // Our next writer gives them records without CRCs and appends after them.
    assert_eq!(produce(&d.open_topic("t").unwrap(), 4..5), vec![4]);
    assert_eq!(std::fs::metadata(&sums).unwrap().len(), 5 * 32);
    let (evs, errs) = read_all(&d.open_topic("t").unwrap());
    assert!(errs.is_empty(), "{errs:?}");
    assert_intact(&evs, 5);
    let report = files_backend(&d).check_topic("t", |_| {}).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.partitions[0].verified, 3);
}

#[test]
fn control_events_cannot_be_forged_through_push() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("t", &json!({})).unwrap();
    let topic = d.open_topic("t").unwrap();
    let producer = topic.producer().build().unwrap();
    for forged in [
        json!({"$diaspora": {"end_of_stream": {"producer": 0, "producers": 1}}}),
        json!({"$diaspora": 1, "other": true}),
    ] {
        let err = producer
            .push(forged.clone(), DataView::new())
            .wait()
            .unwrap_err();
        assert!(matches!(err, Error::InvalidMetadata(_)), "{err}");
        assert!(err.to_string().contains("$diaspora"), "{err}");
        let err = producer
            .push_to(forged, DataView::new(), 0)
            .wait()
            .unwrap_err();
        assert!(err.to_string().contains("reserved"), "{err}");
    }
    // The key is fine below the top level, and real markers still work.
    producer
        .push(json!({"nested": {"$diaspora": 1}}), DataView::new())
        .wait()
        .unwrap();
    producer.end_of_stream(0, 1).wait().unwrap();
    drop(producer);
    let consumer = topic.consumer("c").build().unwrap();
    let first = consumer.pull().wait().unwrap();
    assert_eq!(first.metadata().json()["nested"]["$diaspora"], 1);
    assert!(consumer.pull().wait().unwrap().is_end_of_stream());
}

#[test]
fn lock_timeout_names_the_partition_and_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver_with(tmp.path(), json!({"lock_timeout_ms": 300}));
    d.create_topic("t", &json!({})).unwrap();
    let topic = d.open_topic("t").unwrap();
    produce(&topic, 0..1);
    // Another open file description holds the flock, as another process would.
    let holder = std::fs::File::open(pfile(tmp.path(), "t", 0, "index")).unwrap();
    holder.lock().unwrap();
    let producer = topic.producer().build().unwrap();
    let start = Instant::now();
    let err = producer
        .push(json!({"i": 1}), DataView::new())
        .wait()
        .unwrap_err();
    let waited = start.elapsed();
    let msg = err.to_string();
    assert!(matches!(err, Error::LockTimeout { .. }), "{msg}");
    assert!(
        msg.contains("partition 0") && msg.contains("300 ms"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("held by process {}", std::process::id())),
        "{msg}"
    );
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    // Repair refuses while the lock is held.
    grow(&pfile(tmp.path(), "t", 0, "index"), 32);
    let err = files_backend(&d)
        .repair_topic("t", true, |_| {})
        .unwrap_err();
    assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
    holder.unlock().unwrap();
    // Released: the stuck batch is gone (it failed), the next one goes through.
    assert_eq!(
        producer
            .push(json!({"i": 1}), DataView::from(data_of(1)))
            .wait()
            .unwrap(),
        1
    );
}

/// Appends one event the way the C++ writer does: at the current sizes of the metadata and data
/// files (after whatever a failed batch left there), with no checksum record.
fn append_like_cpp(root: &Path, topic: &str, metadata: &Value, data: &[u8]) {
    let open = |f: &str| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(pfile(root, topic, 0, f))
            .unwrap()
    };
    let (md, dt, ix) = (open("metadata"), open("data"), open("index"));
    let text = serde_json::to_vec(metadata).unwrap();
    let mut record = (text.len() as u64).to_le_bytes().to_vec();
    record.extend_from_slice(&text);
    let md_at = md.metadata().unwrap().len();
    let data_at = dt.metadata().unwrap().len();
    md.write_all_at(&record, md_at).unwrap();
    dt.write_all_at(data, data_at).unwrap();
    let mut entry = Vec::new();
    for v in [md_at, record.len() as u64, data_at, data.len() as u64] {
        entry.extend_from_slice(&v.to_le_bytes());
    }
    let ix_at = ix.metadata().unwrap().len();
    ix.write_all_at(&entry, ix_at).unwrap();
}

#[test]
fn cpp_writer_gaps_after_a_failed_batch_stay_readable_and_appendable() {
    for checksums in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let d = driver(tmp.path());
        d.create_topic("g", &json!({ "checksums": checksums }))
            .unwrap();
        produce(&d.open_topic("g").unwrap(), 0..3);
        // A batch that failed half-way left bytes past the last event...
        grow(&pfile(tmp.path(), "g", 0, "metadata"), 40);
        grow(&pfile(tmp.path(), "g", 0, "data"), 100);
        // ...and the C++ writer appends after them.
        append_like_cpp(tmp.path(), "g", &json!({"i": 3}), &data_of(3));
        let (evs, errs) = read_all(&d.open_topic("g").unwrap());
        assert!(errs.is_empty(), "{errs:?}");
        assert_intact(&evs, 4);
        assert_eq!(produce(&d.open_topic("g").unwrap(), 4..5), vec![4]);
        let (evs, errs) = read_all(&d.open_topic("g").unwrap());
        assert!(errs.is_empty(), "{errs:?}");
        assert_intact(&evs, 5);
        let report = files_backend(&d).check_topic("g", |_| {}).unwrap();
        assert!(report.is_clean(), "{report:?}");
    }
}

#[test]
fn batch_cut_short_by_a_crash_does_not_block_writers() {
    // A machine crash: the last batch's index and checksum records reached the disk, its data
    // did not.
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("c", &json!({})).unwrap();
    produce(&d.open_topic("c").unwrap(), 0..5);
    produce(&d.open_topic("c").unwrap(), 5..7);
    let data = pfile(tmp.path(), "c", 0, "data");
    let keep: u64 = (0..5).map(|i| data_of(i).len() as u64).sum();
    set_len(&data, keep + 4);
    let files = files_backend(&d);
    let report = files.check_topic("c", |_| {}).unwrap();
    let p = &report.partitions[0];
    assert_eq!(p.events, 5);
    assert!(p.problems.is_empty(), "{p:?}");
    assert!(p
        .repairs
        .contains(&RepairAction::TruncateTornTail { records: 2 }));
    assert!(
        p.notes.iter().any(|n| n.contains("2 checksum record(s)")),
        "{p:?}"
    );
    // The lost events are reported to readers (they may have been acknowledged)...
    let (evs, errs) = read_all(&d.open_topic("c").unwrap());
    assert_intact(&evs, 5);
    assert!(
        errs[0].to_string().contains("event 5 claims data bytes"),
        "{errs:?}"
    );
    // ...and the next writer goes on after event 4.
    assert_eq!(produce(&d.open_topic("c").unwrap(), 5..6), vec![5]);
    let (evs, errs) = read_all(&d.open_topic("c").unwrap());
    assert!(errs.is_empty(), "{errs:?}");
    assert_intact(&evs, 6);
    assert!(files.check_topic("c", |_| {}).unwrap().is_clean());
}

#[test]
fn damaged_event_past_a_truncated_index_stops_writers_and_check_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("t", &json!({})).unwrap();
    produce(&d.open_topic("t").unwrap(), 0..6);
    set_len(&pfile(tmp.path(), "t", 0, "index"), 2 * 32);
    // Flip a byte of event 3's data: events 2, 4 and 5 still match their checksums.
    let at: u64 = (0..3).map(|i| data_of(i).len() as u64).sum::<u64>() + 1;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(pfile(tmp.path(), "t", 0, "data"))
        .unwrap();
    f.write_all_at(&[0xEE], at).unwrap();
    let data_before = std::fs::read(pfile(tmp.path(), "t", 0, "data")).unwrap();
    let report = files_backend(&d).check_topic("t", |_| {}).unwrap();
    let text = format!("{:?}", report.partitions[0].problems);
    assert!(
        text.contains("event 3") && text.contains("while event 4"),
        "{text}"
    );
    let topic = d.open_topic("t").unwrap();
    let producer = topic.producer().build().unwrap();
    let err = producer
        .push(json!({"i": 9}), DataView::from("nine"))
        .wait()
        .unwrap_err();
    assert!(
        err.to_string().contains("not appending over stored events"),
        "{err}"
    );
    drop(producer);
    assert_eq!(
        std::fs::read(pfile(tmp.path(), "t", 0, "data")).unwrap(),
        data_before,
        "stored events were overwritten"
    );
}

#[test]
fn a_writer_whose_index_was_replaced_appends_to_the_new_one() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("r", &json!({})).unwrap();
    let topic = d.open_topic("r").unwrap();
    let producer = topic.producer().build().unwrap();
    for i in 0..4 {
        producer.push(json!({ "i": i }), DataView::from(data_of(i)));
    }
    producer.flush().wait().unwrap();
    let reader = d.open_topic("r").unwrap();
    assert_intact(&read_all(&reader).0, 4);
    // The index is lost while the producer and the reader keep their files open; a repair
    // rebuilds it as a new file.
    std::fs::remove_file(pfile(tmp.path(), "r", 0, "index")).unwrap();
    let after = files_backend(&d).repair_topic("r", true, |_| {}).unwrap();
    assert!(after.is_clean(), "{after:?}");
    // The producer's lock on the deleted index would exclude nobody: it must use the new one.
    let id = producer
        .push(json!({"i": 4}), DataView::from(data_of(4)))
        .wait()
        .unwrap();
    assert_eq!(id, 4);
    drop(producer);
    let (evs, errs) = read_all(&reader);
    assert!(errs.is_empty(), "{errs:?}");
    assert_intact(&evs, 5);
    assert!(files_backend(&d)
        .check_topic("r", |_| {})
        .unwrap()
        .is_clean());
}

#[test]
fn absurd_partition_counts_in_the_topic_file_are_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("t", &json!({})).unwrap();
    std::fs::write(
        tmp.path().join("t/diaspora-topic.json"),
        r#"{"format": 1, "num_partitions": 1000000000000000000, "checksums": true}"#,
    )
    .unwrap();
    let err = d.open_topic("t").err().unwrap().to_string();
    assert!(err.contains("num_partitions"), "{err}");
    let err = files_backend(&d)
        .check_topic("t", |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("num_partitions"), "{err}");
}

#[test]
fn data_read_into_application_buffers_is_verified_too() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("t", &json!({})).unwrap();
    produce(&d.open_topic("t").unwrap(), 0..6);
    let at: u64 = (0..4).map(|i| data_of(i).len() as u64).sum::<u64>() + 2;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(pfile(tmp.path(), "t", 0, "data"))
        .unwrap();
    f.write_all_at(&[0x5A], at).unwrap();
    let topic = d.open_topic("t").unwrap();
    // With an allocator the data goes straight into the application's buffers (several events
    // read at once); a partial selection of the damaged event is not checked, a whole one is.
    for whole in [true, false] {
        let consumer = topic
            .consumer("")
            .data_selector(move |_, full| {
                if whole {
                    full.clone()
                } else {
                    full.sub_view(0, 1)
                }
            })
            .data_allocator(|_, sel| {
                diaspora_stream::Allocation::single(vec![0u8; sel.size() as usize])
            })
            .build()
            .unwrap();
        let mut got = Vec::new();
        let mut err = None;
        loop {
            match consumer.pull().wait_timeout(Duration::from_millis(300)) {
                Ok(Some(ev)) => got.push(ev.data().to_vec()),
                Ok(None) => break,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        for (i, data) in got.iter().enumerate() {
            let want = data_of(i as u64);
            assert_eq!(data[..], want[..data.len()], "event {i}");
        }
        if whole {
            assert_eq!(got.len(), 4);
            let msg = err.expect("the damaged event is reported").to_string();
            assert!(
                msg.contains("checksum mismatch in the data of event 4"),
                "{msg}"
            );
        } else {
            assert!(err.is_none(), "{err:?}");
            assert_eq!(got.len(), 6);
        }
    }
}

#[test]
fn selections_that_skip_the_start_of_events_read_the_right_bytes() {
    // Several small events read with one read: each event's selection starts inside it.
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("s", &json!({})).unwrap();
    produce(&d.open_topic("s").unwrap(), 0..20);
    let consumer = d
        .open_topic("s")
        .unwrap()
        .consumer("")
        .data_selector(|_, full| full.sub_view(1, full.size() - 3))
        .data_allocator(|_, sel| {
            diaspora_stream::Allocation::single(vec![0u8; sel.size() as usize])
        })
        .build()
        .unwrap();
    for i in 0..20u64 {
        let ev = consumer
            .pull()
            .wait_timeout(Duration::from_secs(5))
            .unwrap()
            .unwrap();
        assert_eq!(ev.metadata().json()["i"], i);
        let want = data_of(i);
        assert_eq!(
            ev.data().to_vec(),
            want[1..want.len() - 2].to_vec(),
            "event {i}"
        );
    }
}

#[test]
fn a_pull_with_no_time_to_wait_still_reads_what_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("z", &json!({})).unwrap();
    produce(&d.open_topic("z").unwrap(), 0..3);
    let consumer = d.open_topic("z").unwrap().consumer("").build().unwrap();
    for i in 0..3u64 {
        let ev = consumer.pull().wait_timeout(Duration::ZERO).unwrap();
        assert_eq!(ev.expect("stored event").metadata().json()["i"], i);
    }
    assert!(consumer
        .pull()
        .wait_timeout(Duration::ZERO)
        .unwrap()
        .is_none());
    // `completed()` turns true by itself once an event is there.
    let f = consumer.pull();
    assert!(!f.completed());
    produce(&d.open_topic("z").unwrap(), 3..4);
    assert!(f.completed());
    assert_eq!(f.wait().unwrap().metadata().json()["i"], 3);
}

/// Data whose owner panics when the library drops it.
struct PanickyOwner(Vec<u8>);

impl AsRef<[u8]> for PanickyOwner {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for PanickyOwner {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("the application's data panicked when dropped");
        }
    }
}

#[test]
fn a_panic_on_a_pool_thread_fails_one_event_and_the_producer_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    let validator = diaspora_stream::components::validator_from_config(&json!({
        "type": "schema",
        "schema": {"type": "object", "properties": {"bad": {"const": false}}}
    }))
    .unwrap();
    d.create_topic_with(
        "p",
        &json!({}),
        diaspora_stream::TopicComponents {
            validator,
            ..Default::default()
        },
    )
    .unwrap();
    let topic = d.open_topic("p").unwrap();
    let producer = topic
        .producer()
        .thread_pool(d.make_thread_pool(diaspora_stream::ThreadCount(1)))
        .build()
        .unwrap();
    // Rejected by the validator on the pool thread; dropping its data there panics.
    let data = DataView::from(bytes::Bytes::from_owner(PanickyOwner(vec![1, 2, 3])));
    let rejected = producer.push(json!({"bad": true}), data);
    let ok = producer.push(json!({"bad": false}), DataView::from("fine"));
    producer.flush().wait().unwrap();
    assert!(rejected.wait().is_err());
    assert_eq!(ok.wait().unwrap(), 0);
}
