//! Writers: forged control events, lock timeouts, C++ gaps, crashes, replaced files

use super::helpers::assert_intact;
use super::helpers::data_of;
use super::helpers::driver;
use super::helpers::driver_with;
use super::helpers::files_backend;
use super::helpers::grow;
use super::helpers::pfile;
use super::helpers::produce;
use super::helpers::read_all;
use super::helpers::set_len;
use super::*;

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
    // Metadata given as JSON text is checked too, whether it spells the key as is or through
    // an escape (the text is only parsed before the check when it may hold the key).
    for forged in [
        r#"{"$diaspora": {"end_of_stream": {"producer": 0, "producers": 1}}}"#,
        r#"{"\u0024diaspora": 1}"#,
        r#"{"other": 1, "$dia\u0073pora": 2}"#,
    ] {
        let text = diaspora_stream::metadata::Metadata::parse_shared(forged.into()).unwrap();
        let err = producer.push(text, DataView::new()).wait().unwrap_err();
        assert!(matches!(err, Error::InvalidMetadata(_)), "{forged}: {err}");
    }
    let plain = diaspora_stream::metadata::Metadata::parse_shared(r#"{"x": "y"}"#.into()).unwrap();
    producer.push(plain, DataView::new()).wait().unwrap();
    // The key is fine below the top level, and real markers still work.
    producer
        .push(json!({"nested": {"$diaspora": 1}}), DataView::new())
        .wait()
        .unwrap();
    producer.end_of_stream(0, 1).wait().unwrap();
    drop(producer);
    let consumer = topic.consumer("c").build().unwrap();
    let plain = consumer.pull().wait().unwrap();
    assert_eq!(plain.metadata().json()["x"], "y");
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
pub(crate) fn append_like_cpp(root: &Path, topic: &str, metadata: &Value, data: &[u8]) {
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
