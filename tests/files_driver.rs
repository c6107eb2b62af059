//! Files-driver specifics: names, options, torn tails, corrupt files, huge batches, offsets.

use diaspora_stream::{Allocation, BatchSize, DataDescriptor, DataView, Driver, Error};
use serde_json::json;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

fn driver(root: &Path) -> Driver {
    Driver::new("files", &json!({"root_path": root})).unwrap()
}

fn partition_file(root: &Path, topic: &str, p: usize, file: &str) -> std::path::PathBuf {
    root.join(topic)
        .join("partitions")
        .join(format!("{p:08}"))
        .join(file)
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// Pulls until nothing comes for a while; returns events and errors separately.
fn drain(
    topic: &diaspora_stream::TopicHandle,
    name: &str,
) -> (Vec<diaspora_stream::Event>, Vec<Error>) {
    let consumer = topic.consumer(name).build().unwrap();
    let (mut evs, mut errs) = (Vec::new(), Vec::new());
    loop {
        match consumer.pull().wait_timeout(Duration::from_millis(300)) {
            Ok(Some(e)) => evs.push(e),
            Ok(None) => break,
            Err(e) => {
                errs.push(e);
                if errs.len() > 3 {
                    break;
                }
            }
        }
    }
    (evs, errs)
}

#[test]
fn topic_names_that_escape_the_root_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let d = driver(&root);
    for bad in ["..", ".", "", "a/b", "/etc/evil", "../outside", "x\0y"] {
        let err = d.create_topic(bad, &json!({})).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{bad:?}: {err}");
        assert!(d.open_topic(bad).is_err());
        assert!(d.topic_exists(bad).is_err());
    }
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing created, not even the root"
    );
    for bad in [
        "new\nline",
        "tab\tbed",
        "bell\u{7}",
        "esc\u{1b}[31m",
        "del\u{7f}",
    ] {
        let err = d.create_topic(bad, &json!({})).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{bad:?}: {err}");
        assert!(err.to_string().contains("control character"), "{err}");
    }
    assert!(!root.exists());
}

#[test]
fn bad_options_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    for bad in [
        json!({"num_partitions": 0}),
        json!({"num_partitions": -1}),
        json!({"num_partitions": "4"}),
    ] {
        let err = d.create_topic("t", &bad).unwrap_err();
        assert!(err.to_string().contains("num_partitions"), "{err}");
    }
    assert!(!d.topic_exists("t").unwrap());
    assert!(Driver::new(
        "files",
        &json!({"root_path": tmp.path(), "flush_behavior": "later"})
    )
    .is_err());
    let err = Driver::new("nonexistent", &json!({})).unwrap_err();
    assert!(matches!(err, Error::UnknownComponent { .. }));
}

#[test]
fn batches_larger_than_the_iovec_limit_are_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("big", &json!({})).unwrap();
    let topic = d.open_topic("big").unwrap();
    for batch in [BatchSize::Fixed(5000), BatchSize::Adaptive] {
        let producer = topic.producer().batch_size(batch).build().unwrap();
        let futures: Vec<_> = (0..3000)
            .map(|i| {
                producer.push(
                    json!({"i": i}),
                    DataView::from_segments(vec![vec![1u8; 3], vec![2u8; 2]]),
                )
            })
            .collect();
        producer.flush().wait().unwrap();
        let ids: Vec<u64> = futures.iter().map(|f| f.wait().unwrap()).collect();
        let first = ids[0];
        assert!(ids
            .iter()
            .enumerate()
            .all(|(k, id)| *id == first + k as u64));
    }
    let (evs, errs) = drain(&topic, "r");
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(evs.len(), 6000);
    assert!(evs.iter().all(|e| e.data().to_vec() == [1, 1, 1, 2, 2]));
}

#[test]
fn torn_tails_are_ignored_by_readers_and_repaired_by_writers() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("torn", &json!({})).unwrap();
    let topic = d.open_topic("torn").unwrap();
    let producer = topic.producer().build().unwrap();
    for i in 0..10 {
        producer
            .push(json!({"i": i}), DataView::from(vec![i as u8; 100]))
            .wait()
            .unwrap();
    }
    drop(producer);
    // A writer died after writing payload bytes and part of an index record.
    append_bytes(
        &partition_file(tmp.path(), "torn", 0, "metadata"),
        b"\x20\0\0\0\0\0\0\0{\"half",
    );
    append_bytes(&partition_file(tmp.path(), "torn", 0, "data"), &[0xEE; 77]);
    append_bytes(&partition_file(tmp.path(), "torn", 0, "index"), &[0xAB; 19]);
    let (evs, errs) = drain(&topic, "r1");
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(evs.len(), 10);
    // The next writer repairs and continues at id 10, overwriting the stray bytes.
    let topic2 = d.open_topic("torn").unwrap();
    let producer = topic2.producer().build().unwrap();
    let id = producer
        .push(json!({"i": 10}), DataView::from(vec![10u8; 100]))
        .wait()
        .unwrap();
    assert_eq!(id, 10);
    drop(producer);
    let index_len = std::fs::metadata(partition_file(tmp.path(), "torn", 0, "index"))
        .unwrap()
        .len();
    assert_eq!(index_len, 11 * 32);
    let (evs, errs) = drain(&topic2, "r2");
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(evs.len(), 11);
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e.metadata().json()["i"], i);
        assert_eq!(e.data().to_vec(), vec![i as u8; 100]);
    }
}

#[test]
fn index_records_past_the_payload_are_dropped_by_the_next_writer() {
    // As after a power loss with buffered writes: the index reached disk, the payload did not.
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("lost", &json!({})).unwrap();
    let topic = d.open_topic("lost").unwrap();
    let producer = topic.producer().build().unwrap();
    producer
        .push(json!({"i": 0}), DataView::from("zero"))
        .wait()
        .unwrap();
    producer
        .push(json!({"i": 1}), DataView::from("one"))
        .wait()
        .unwrap();
    drop(producer);
    let data = partition_file(tmp.path(), "lost", 0, "data");
    let f = OpenOptions::new().write(true).open(&data).unwrap();
    f.set_len(5).unwrap(); // cut into event 1's data
                           // Readers report the damage, naming the file and offset.
    let (evs, errs) = drain(&topic, "r");
    assert_eq!(evs.len(), 1);
    let msg = errs[0].to_string();
    assert!(matches!(errs[0], Error::Corrupt { .. }), "{msg}");
    assert!(msg.contains("index") && msg.contains("offset 32"), "{msg}");
    let producer = topic.producer().build().unwrap();
    assert_eq!(
        producer
            .push(json!({"i": 2}), DataView::from("two"))
            .wait()
            .unwrap(),
        1
    );
    drop(producer);
    let (evs, errs) = drain(&d.open_topic("lost").unwrap(), "r2");
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(
        evs.iter().map(|e| e.data().to_vec()).collect::<Vec<_>>(),
        vec![b"zero".to_vec(), b"two".to_vec()]
    );
}

#[test]
fn corrupt_metadata_gives_an_error_naming_partition_and_event() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("bad", &json!({})).unwrap();
    let topic = d.open_topic("bad").unwrap();
    let producer = topic.producer().build().unwrap();
    producer
        .push(json!({"ok": true}), DataView::new())
        .wait()
        .unwrap();
    producer
        .push(json!({"ok": false}), DataView::new())
        .wait()
        .unwrap();
    drop(producer);
    let md = partition_file(tmp.path(), "bad", 0, "metadata");
    let mut bytes = std::fs::read(&md).unwrap();
    let second = bytes.len() - 12; // inside the second record's JSON text
    bytes[second] = b'#';
    std::fs::write(&md, bytes).unwrap();
    let (evs, errs) = drain(&topic, "r");
    assert_eq!(evs.len(), 1);
    let msg = errs[0].to_string();
    assert!(
        msg.contains("partition 0") && msg.contains("event 1"),
        "{msg}"
    );
}

#[test]
fn missing_or_broken_component_files_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("c1", &json!({})).unwrap();
    std::fs::remove_file(tmp.path().join("c1/serializer.json")).unwrap();
    let msg = d.open_topic("c1").unwrap_err().to_string();
    assert!(msg.contains("serializer.json"), "{msg}");
    d.create_topic("c2", &json!({})).unwrap();
    std::fs::write(tmp.path().join("c2/validator.json"), "{not json").unwrap();
    let msg = d.open_topic("c2").unwrap_err().to_string();
    assert!(msg.contains("validator.json"), "{msg}");
    d.create_topic("c3", &json!({})).unwrap();
    std::fs::write(
        tmp.path().join("c3/validator.json"),
        r#"{"type":"mystery"}"#,
    )
    .unwrap();
    assert!(d
        .open_topic("c3")
        .unwrap_err()
        .to_string()
        .contains("mystery"));
    assert!(matches!(
        d.open_topic("nope").unwrap_err(),
        Error::TopicNotFound(_)
    ));
    std::fs::remove_dir_all(tmp.path().join("c1/partitions/00000000")).unwrap();
    std::fs::create_dir_all(tmp.path().join("c1/partitions/00000001")).unwrap();
    std::fs::write(tmp.path().join("c1/serializer.json"), "{}").unwrap();
    let msg = d.open_topic("c1").unwrap_err().to_string();
    assert!(msg.contains("00000000"), "{msg}");
}

#[test]
fn selections_outside_the_data_and_small_allocations_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("sel", &json!({})).unwrap();
    let topic = d.open_topic("sel").unwrap();
    let producer = topic.producer().build().unwrap();
    producer
        .push(json!({}), DataView::from(vec![5u8; 64]))
        .wait()
        .unwrap();
    drop(producer);
    let c = topic
        .consumer("a")
        .data_selector(|_, _| DataDescriptor::new("", 1000).sub_view(0, 1000))
        .build()
        .unwrap();
    let err = c.pull().wait().unwrap_err();
    assert!(matches!(err, Error::DataSelection(_)), "{err}");
    let c = topic
        .consumer("b")
        .data_allocator(|_, _| Allocation::single(vec![0u8; 10]))
        .build()
        .unwrap();
    let err = c.pull().wait().unwrap_err();
    assert!(err.to_string().contains("allocator"), "{err}");
    let c = topic
        .consumer("c")
        .data_selector(|_, _| panic!("selector bug"))
        .build()
        .unwrap();
    assert!(matches!(
        c.pull().wait().unwrap_err(),
        Error::CallbackPanicked(_)
    ));
}

#[test]
fn data_lands_in_application_buffers_across_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("scatter", &json!({})).unwrap();
    let topic = d.open_topic("scatter").unwrap();
    let producer = topic.producer().build().unwrap();
    let data: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    producer
        .push(json!({}), DataView::from(data.clone()))
        .wait()
        .unwrap();
    drop(producer);
    // Two far-apart ranges (read directly) into two buffers of odd sizes.
    let c = topic
        .consumer("x")
        .data_selector(|_, d| {
            d.unstructured_view(&[(10, 300_000), (700_000, 100_000)])
                .unwrap()
        })
        .data_allocator(|_, sel| {
            let mut a = Allocation::single(vec![0u8; 123_457]);
            a.push(vec![0u8; sel.size() as usize - 123_457]);
            a
        })
        .build()
        .unwrap();
    let ev = c.pull().wait().unwrap();
    assert_eq!(ev.data().segments().len(), 2);
    let mut expected = data[10..300_010].to_vec();
    expected.extend_from_slice(&data[700_000..800_000]);
    assert_eq!(ev.data().to_vec(), expected);
    // Strided selection (read as one span and scattered).
    let c = topic
        .consumer("y")
        .data_selector(|_, d| d.strided_view(1, 1000, 3, 5).unwrap())
        .build()
        .unwrap();
    let ev = c.pull().wait().unwrap();
    let expected: Vec<u8> = (0..1000)
        .flat_map(|i| data[1 + i * 8..4 + i * 8].to_vec())
        .collect();
    assert_eq!(ev.data().to_vec(), expected);
}

#[test]
fn corrupt_offset_files_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("off", &json!({})).unwrap();
    let topic = d.open_topic("off").unwrap();
    let producer = topic.producer().build().unwrap();
    producer.push(json!({}), DataView::new()).wait().unwrap();
    drop(producer);
    let c = topic.consumer("me").build().unwrap();
    c.pull().wait().unwrap().acknowledge().unwrap();
    drop(c);
    let off = tmp.path().join("off/consumers/c-me.offsets");
    let mut bytes = std::fs::read(&off).unwrap();
    bytes[3] ^= 0xFF;
    std::fs::write(&off, bytes).unwrap();
    let err = topic.consumer("me").build().unwrap_err();
    assert!(
        matches!(err, Error::Corrupt { .. }) && err.to_string().contains("c-me.offsets"),
        "{err}"
    );
}

#[test]
fn immediate_and_on_flush_durability_modes_store_everything() {
    for mode in ["immediate", "on_flush", "buffered"] {
        let tmp = tempfile::tempdir().unwrap();
        let d = Driver::new("files", &json!({"root_path": tmp.path(), "flush_behavior": mode, "use_file_locking": mode != "buffered"})).unwrap();
        d.create_topic("t", &json!({"num_partitions": 2})).unwrap();
        let topic = d.open_topic("t").unwrap();
        let producer = topic
            .producer()
            .batch_size(BatchSize::Fixed(7))
            .build()
            .unwrap();
        for i in 0..50 {
            producer
                .push(json!({"i": i}), DataView::from(vec![i as u8; i]))
                .wait_timeout(Duration::ZERO)
                .unwrap();
        }
        producer.flush().wait().unwrap();
        let (evs, errs) = drain(&topic, "r");
        assert!(errs.is_empty());
        assert_eq!(evs.len(), 50, "{mode}");
    }
}

/// `lease_interval_ms: 0` runs producers without leases (nothing under `producers/`), where
/// the default writes one per producer.
#[test]
fn lease_interval_zero_turns_leases_off() {
    let dir = tempfile::tempdir().unwrap();
    for (ms, leases) in [(None, 1), (Some(0), 0)] {
        let mut options = json!({"root_path": dir.path()});
        if let Some(ms) = ms {
            options["lease_interval_ms"] = json!(ms);
        }
        let d = Driver::new("files", &options).unwrap();
        let name = format!("leases{leases}");
        d.create_topic(&name, &json!({})).unwrap();
        let topic = d.open_topic(&name).unwrap();
        let producer = topic.producer().build().unwrap();
        producer
            .push(json!({"x": 1}), DataView::new())
            .wait()
            .unwrap();
        producer.flush().wait().unwrap();
        let found = std::fs::read_dir(dir.path().join(&name).join("producers"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(found, leases, "lease_interval_ms {ms:?}");
        drop(producer);
    }
}

/// `push_many` stores a group as pushes one after the other would: ids and contents in order,
/// a forged control key failing its own event only, with a pool thread and inline.
#[test]
fn push_many_stores_the_group_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path());
    for threads in [0, 1, 2] {
        let name = format!("many{threads}");
        d.create_topic(&name, &json!({})).unwrap();
        let topic = d.open_topic(&name).unwrap();
        let producer = topic
            .producer()
            .thread_pool(diaspora_stream::thread_pool::std_pool(threads))
            .batch_size(BatchSize::Fixed(7))
            .build()
            .unwrap();
        let events = (0..300u32).map(|i| {
            let metadata = if i == 150 {
                json!({"$diaspora": 1})
            } else {
                json!({"i": i})
            };
            (metadata.into(), DataView::from(i.to_le_bytes().to_vec()))
        });
        let futures = producer.push_many(events, None);
        assert_eq!(futures.len(), 300);
        // The last batch is not full: it goes with the flush.
        producer.flush().wait().unwrap();
        let mut expected_id = 0;
        for (i, f) in futures.iter().enumerate() {
            if i == 150 {
                assert!(
                    matches!(f.wait(), Err(Error::InvalidMetadata(_))),
                    "{threads}"
                );
            } else {
                assert_eq!(
                    f.wait().unwrap(),
                    expected_id,
                    "{threads} threads, event {i}"
                );
                expected_id += 1;
            }
        }
        let (events, errors) = drain(&topic, "c");
        assert!(errors.is_empty(), "{errors:?}");
        let got: Vec<u32> = events
            .iter()
            .map(|e| {
                let i = e.metadata().json()["i"].as_u64().unwrap() as u32;
                assert_eq!(e.data().to_vec(), i.to_le_bytes(), "data of event {i}");
                i
            })
            .collect();
        let want: Vec<u32> = (0..300).filter(|&i| i != 150).collect();
        assert_eq!(got, want, "{threads} threads");
    }
}

/// A pull future dropped before any wait returned its event gives the event back, whether the
/// event was queued when the pull was made (claimed at once) or came later, whether the others
/// are waited on or taken: every event is delivered once, in order. (A future that outlives its
/// consumer: the consumer's unit tests.)
#[test]
fn pulls_dropped_unwaited_lose_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path());
    d.create_topic("t", &json!({})).unwrap();
    let topic = d.open_topic("t").unwrap();
    let producer = topic
        .producer()
        .batch_size(BatchSize::Fixed(16))
        .build()
        .unwrap();
    for i in 0..100u32 {
        producer.push(json!({"i": i}), DataView::from(i.to_le_bytes().to_vec()));
    }
    producer.flush().wait().unwrap();
    let consumer = topic.consumer("c").build().unwrap();
    let mut got = Vec::new();
    let mut dropped_ready = 0;
    for k in 0.. {
        // Every other pull is dropped unwaited; some after `completed()` claimed their event.
        let f = consumer.pull();
        if k % 2 == 0 {
            if k % 3 == 1 && f.completed() {
                dropped_ready += 1;
            }
            drop(f);
            continue;
        }
        // Half of the others are taken (moved out of their future), half waited on.
        let pulled = if k % 4 == 1 {
            f.take_timeout(Duration::from_millis(500))
        } else {
            f.wait_timeout(Duration::from_millis(500))
        };
        match pulled.unwrap() {
            Some(ev) => {
                let i = ev.metadata().json()["i"].as_u64().unwrap() as u32;
                assert_eq!(ev.data().to_vec(), i.to_le_bytes(), "data of event {i}");
                got.push(i);
            }
            None => break,
        }
    }
    assert_eq!(got, (0..100).collect::<Vec<u32>>());
    assert!(
        dropped_ready > 0,
        "no future was dropped while holding its event"
    );
}

/// A serializer of its own layout (the JSON text reversed), counting its decodings.
struct Reversed;

static REVERSED_DECODED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl diaspora_stream::Serializer for Reversed {
    fn serialize(
        &self,
        metadata: &diaspora_stream::Metadata,
        out: &mut Vec<u8>,
    ) -> diaspora_stream::Result<()> {
        out.extend(metadata.dump().bytes().rev());
        Ok(())
    }
    fn deserialize(&self, input: &[u8]) -> diaspora_stream::Result<diaspora_stream::Metadata> {
        REVERSED_DECODED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let text: Vec<u8> = input.iter().rev().copied().collect();
        diaspora_stream::Metadata::parse(std::str::from_utf8(&text).unwrap())
    }
    fn metadata(&self) -> serde_json::Value {
        json!({"type": "reversed"})
    }
}

#[test]
fn batches_after_batches_keep_each_event_s_own_parts_whatever_the_serializer() {
    // Several fetched batches (their memory is reused for the next ones), events with and
    // without data, the data selector choosing some: no event shows another's metadata or data,
    // and a serializer of the application's own decodes its records (the built-in layout is
    // decoded inline).
    diaspora_stream::components::register_serializer(
        "reversed",
        std::sync::Arc::new(|_: &serde_json::Value| {
            Ok(std::sync::Arc::new(Reversed) as std::sync::Arc<dyn diaspora_stream::Serializer>)
        }),
    );
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    const N: u64 = 2500;
    for (name, serializer) in [
        ("builtin", None),
        ("own", Some(std::sync::Arc::new(Reversed))),
    ] {
        let mut components = diaspora_stream::TopicComponents::default();
        if let Some(s) = serializer {
            components.serializer = s;
        }
        d.create_topic_with(name, &json!({"num_partitions": 1}), components)
            .unwrap();
        let topic = d.open_topic(name).unwrap();
        let producer = topic.producer().build().unwrap();
        for i in 0..N {
            // Every third event has no data.
            let data = if i % 3 == 0 {
                DataView::new()
            } else {
                DataView::from(vec![i as u8; 1 + (i % 7) as usize])
            };
            producer.push(json!({"i": i}), data);
        }
        producer.flush().wait().unwrap();
        let before = REVERSED_DECODED.load(std::sync::atomic::Ordering::Relaxed);
        for (selecting, consumer) in [
            (false, topic.consumer("all").build().unwrap()),
            (
                true,
                topic
                    .consumer("odd")
                    .data_selector(|md, full| {
                        if md.json()["i"].as_u64().unwrap() % 2 == 1 {
                            full.clone()
                        } else {
                            DataDescriptor::none()
                        }
                    })
                    .build()
                    .unwrap(),
            ),
        ] {
            let mut events = Vec::new();
            while (events.len() as u64) < N {
                let mut got = Vec::new();
                consumer
                    .pull_many(&mut got, 300, Some(Duration::from_secs(5)))
                    .unwrap();
                assert!(!got.is_empty(), "{name}: stopped at {}", events.len());
                // Events of earlier batches are dropped as the application goes, so that
                // their memory comes back for the next batches.
                events.extend(got.into_iter().map(|e| {
                    let i = e.metadata().json()["i"].as_u64().unwrap();
                    (e.id(), i, e.data().to_vec())
                }));
            }
            for (k, (id, i, data)) in events.into_iter().enumerate() {
                assert_eq!((id, i), (k as u64, k as u64), "{name}");
                let want = if i % 3 == 0 || (selecting && i % 2 == 0) {
                    Vec::new()
                } else {
                    vec![i as u8; 1 + (i % 7) as usize]
                };
                assert_eq!(data, want, "{name}, event {i}, selecting {selecting}");
            }
        }
        let decoded = REVERSED_DECODED.load(std::sync::atomic::Ordering::Relaxed) - before;
        match name {
            "own" => assert!(decoded >= 2 * N as usize, "{decoded}"),
            _ => assert_eq!(decoded, 0),
        }
    }
}
