//! Zeroed index tails, readers that create nothing, missing files and folders

use super::helpers::assert_intact;
use super::helpers::data_of;
use super::helpers::driver;
use super::helpers::files_backend;
use super::helpers::grow;
use super::helpers::pfile;
use super::helpers::produce;
use super::helpers::read_all;
use super::helpers::snapshot;
use super::*;

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
