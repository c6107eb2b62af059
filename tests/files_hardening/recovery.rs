//! Lost index records and how they are restored

use super::helpers::assert_intact;
use super::helpers::data_of;
use super::helpers::driver;
use super::helpers::files_backend;
use super::helpers::pfile;
use super::helpers::produce;
use super::helpers::read_all;
use super::helpers::set_len;
use super::helpers::snapshot;
use super::*;

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
fn a_writer_that_stays_open_restores_what_another_writer_lost() {
    // Writer A keeps its topic (and its files) open while writer B, another handle as in
    // another process, appends and stops between its checksum records and its index records.
    // A's next append must restore B's events, not write over them.
    let tmp = tempfile::tempdir().unwrap();
    let a = driver(tmp.path());
    a.create_topic("t", &json!({})).unwrap();
    let topic_a = a.open_topic("t").unwrap();
    assert_eq!(produce(&topic_a, 0..3), vec![0, 1, 2]);
    let b = driver(tmp.path());
    assert_eq!(produce(&b.open_topic("t").unwrap(), 3..6), vec![3, 4, 5]);
    // B's index records never reached the file: the index is as A left it.
    set_len(&pfile(tmp.path(), "t", 0, "index"), 3 * 32);
    assert_eq!(produce(&topic_a, 6..7), vec![6]);
    let (evs, errs) = read_all(&a.open_topic("t").unwrap());
    assert!(errs.is_empty(), "{errs:?}");
    assert_intact(&evs, 7);
    // And payload files cut short under A (the index reached disk, the data did not): A reads
    // the tail again and writes after what is intact.
    let data = pfile(tmp.path(), "t", 0, "data");
    let len = std::fs::metadata(&data).unwrap().len();
    set_len(&data, len - 1);
    assert_eq!(produce(&topic_a, 6..7), vec![6]);
    let (evs, errs) = read_all(&a.open_topic("t").unwrap());
    assert!(errs.is_empty(), "{errs:?}");
    assert_intact(&evs, 7);
}

#[test]
fn a_writer_that_stays_open_does_not_write_over_events_another_writer_put_in_place_of_its_own() {
    // A's last event loses a byte of its data (power loss after the index reached disk);
    // writer B drops that event and stores a larger one with the same id, so the index and
    // checksum files are as long as A left them, but the data file is longer. A's next
    // append must not write at the end A remembers, over B's event.
    let tmp = tempfile::tempdir().unwrap();
    let a = driver(tmp.path());
    a.create_topic("t", &json!({})).unwrap();
    let topic_a = a.open_topic("t").unwrap();
    assert_eq!(produce(&topic_a, 0..3), vec![0, 1, 2]);
    let data = pfile(tmp.path(), "t", 0, "data");
    let len = std::fs::metadata(&data).unwrap().len();
    set_len(&data, len - 1);
    let b = driver(tmp.path());
    assert_eq!(produce(&b.open_topic("t").unwrap(), 5..6), vec![2]);
    assert_eq!(produce(&topic_a, 6..7), vec![3]);
    let (evs, errs) = read_all(&a.open_topic("t").unwrap());
    assert!(errs.is_empty(), "{errs:?}");
    let expected: Vec<(u64, Vec<u8>)> = [0, 1, 5, 6].iter().map(|&i| (i, data_of(i))).collect();
    assert_eq!(evs, expected);
}
