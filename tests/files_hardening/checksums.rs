//! Checksums

use super::helpers::assert_intact;
use super::helpers::data_of;
use super::helpers::driver;
use super::helpers::driver_with;
use super::helpers::files_backend;
use super::helpers::pfile;
use super::helpers::produce;
use super::helpers::read_all;
use super::*;

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
fn pull_many_delivers_the_events_before_a_damaged_one_then_its_error() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("t", &json!({})).unwrap();
    produce(&d.open_topic("t").unwrap(), 0..6);
    // Flip a byte of event 3's data.
    let data = pfile(tmp.path(), "t", 0, "data");
    let at: u64 = (0..3).map(|i| data_of(i).len() as u64).sum::<u64>() + 2;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&data)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x01], at).unwrap();

    let topic = d.open_topic("t").unwrap();
    let consumer = topic.consumer("").build().unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let error = loop {
        assert!(std::time::Instant::now() < deadline, "no error reported");
        match consumer.pull_many(&mut got, 100, Some(Duration::from_millis(300))) {
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    let ids: Vec<u64> = got.iter().map(|ev| ev.id()).collect();
    assert_eq!(ids, vec![0, 1, 2], "the events before the damaged one");
    for ev in &got {
        assert_eq!(ev.data().to_vec(), data_of(ev.id()));
    }
    let msg = error.to_string();
    assert!(
        msg.contains("checksum mismatch in the data of event 3"),
        "{msg}"
    );
}

/// `topic check` gives the same report in parallel on rayon's pool and called from a one-thread
/// rayon pool (which checks the partitions one after the other).
#[cfg(feature = "rayon")]
#[test]
fn topic_check_is_the_same_in_parallel_and_from_a_one_thread_rayon_pool() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("t", &json!({"num_partitions": 3})).unwrap();
    let topic = d.open_topic("t").unwrap();
    let producer = topic.producer().build().unwrap();
    for i in 0..30u64 {
        producer.push_to(
            json!({ "i": i }),
            DataView::from(data_of(i)),
            (i % 3) as usize,
        );
    }
    producer.flush().wait().unwrap();
    drop(producer);
    // Damage partition 1's data.
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(pfile(tmp.path(), "t", 1, "data"))
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 5).unwrap();
    f.write_all_at(&[b[0] ^ 0x04], 5).unwrap();
    let files = files_backend(&d);
    let summary = |r: &diaspora_stream::drivers::files::TopicCheck| {
        r.partitions
            .iter()
            .map(|p| (p.partition, p.events, p.verified, p.problems.clone()))
            .collect::<Vec<_>>()
    };
    let mut seen_parallel = Vec::new();
    let parallel = files
        .check_topic("t", |p| seen_parallel.push(p.partition))
        .unwrap();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut seen_serial = Vec::new();
    let serial = one
        .install(|| files.check_topic("t", |p| seen_serial.push(p.partition)))
        .unwrap();
    assert_eq!(summary(&parallel), summary(&serial));
    assert!(!parallel.partitions[1].problems.is_empty(), "{parallel:?}");
    assert!(parallel.partitions[0].is_clean() && parallel.partitions[2].is_clean());
    assert_eq!(seen_serial, vec![0, 1, 2], "in order from one thread");
    seen_parallel.sort();
    assert_eq!(seen_parallel, vec![0, 1, 2]);
}
