//! Compatibility with topics written by the C++ reference's files driver
//! (`../shared/fixtures/cpp-files-driver`, see its README).

use diaspora_stream::{BatchSize, DataView, Driver};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn fixtures_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/cpp-files-driver");
    assert!(
        dir.is_dir(),
        "fixtures not found at {} (the shared folder must sit beside the checkout)",
        dir.display()
    );
    dir
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            let mut perm = std::fs::metadata(&target).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            std::fs::set_permissions(&target, perm).unwrap();
        }
    }
}

/// Every file below `dir`, relative path -> content.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn read_set(set: &str) {
    let src = fixtures_dir().join(set);
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&src.join("topic"), tmp.path());
    let driver = Driver::new("files", &json!({"root_path": tmp.path()})).unwrap();
    let topic = driver.open_topic(set).unwrap();
    let expected = read_jsonl(&src.join("expected.jsonl"));
    let consumer = topic.consumer("fixture-reader").build().unwrap();
    let mut got: BTreeMap<(u64, u64), (Value, usize, String)> = BTreeMap::new();
    while got.len() < expected.len() {
        let ev = consumer
            .pull()
            .wait_timeout(Duration::from_secs(10))
            .unwrap()
            .unwrap_or_else(|| panic!("only {} of {} events read", got.len(), expected.len()));
        let data = ev.data().to_vec();
        let key = (ev.partition() as u64, ev.id());
        let prev = got.insert(
            key,
            (
                ev.metadata().json().clone(),
                data.len(),
                hex::encode(Sha256::digest(&data)),
            ),
        );
        assert!(prev.is_none(), "event {key:?} delivered twice");
    }
    assert!(consumer
        .pull()
        .wait_timeout(Duration::from_millis(200))
        .unwrap()
        .is_none());
    for e in &expected {
        let key = (e["partition"].as_u64().unwrap(), e["id"].as_u64().unwrap());
        let (md, len, sha) = got
            .get(&key)
            .unwrap_or_else(|| panic!("missing event {key:?}"));
        assert_eq!(md, &e["metadata"], "metadata of {key:?}");
        assert_eq!(
            *len as u64,
            e["data_len"].as_u64().unwrap(),
            "data size of {key:?}"
        );
        assert_eq!(sha, e["data_sha256"].as_str().unwrap(), "data of {key:?}");
    }
}

/// Writes the set's inputs through this library and compares the topic with the reference's:
/// every file of the reference is byte-identical; ours adds only `diaspora-topic.json` and, with
/// `checksums`, one `checksums` file per partition (files the C++ reader never opens).
fn write_set(set: &str, checksums: bool) {
    let src = fixtures_dir().join(set);
    let reference = src.join("topic").join(set);
    let num_partitions = std::fs::read_dir(reference.join("partitions"))
        .unwrap()
        .count();
    let tmp = tempfile::tempdir().unwrap();
    let driver = Driver::new("files", &json!({"root_path": tmp.path()})).unwrap();
    driver
        .create_topic(
            set,
            &json!({"num_partitions": num_partitions, "checksums": checksums}),
        )
        .unwrap();
    let topic = driver.open_topic(set).unwrap();
    let producer = topic
        .producer()
        .batch_size(BatchSize::Fixed(64))
        .build()
        .unwrap();
    let mut futures = Vec::new();
    for input in read_jsonl(&src.join("inputs.jsonl")) {
        let data = DataView::from(hex::decode(input["data_hex"].as_str().unwrap()).unwrap());
        let md = input["metadata"].clone();
        futures.push(match input.get("partition").and_then(Value::as_u64) {
            Some(p) => producer.push_to(md, data, p as usize),
            None => producer.push(md, data),
        });
    }
    producer.flush().wait().unwrap();
    drop(producer);
    // Ids are per partition and dense.
    let mut per_partition: BTreeMap<u64, u64> = BTreeMap::new();
    for f in &futures {
        let id = f.wait().unwrap();
        *per_partition.entry(id).or_default() += 1;
    }
    assert!(per_partition
        .keys()
        .copied()
        .eq(0..per_partition.len() as u64));
    let mut ours = tree(&tmp.path().join(set));
    let theirs = tree(&reference);
    assert!(ours.remove("diaspora-topic.json").is_some());
    for p in 0..num_partitions {
        let sums = ours.remove(&format!("partitions/{p:08}/checksums"));
        assert_eq!(sums.is_some(), checksums, "checksums of partition {p}");
        if let Some(sums) = sums {
            let index = &ours[&format!("partitions/{p:08}/index")];
            assert_eq!(sums.len(), index.len(), "one 32-byte record per event");
        }
    }
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "same files"
    );
    for (name, bytes) in &theirs {
        let mine = &ours[name];
        if mine != bytes {
            let at = mine
                .iter()
                .zip(bytes)
                .position(|(a, b)| a != b)
                .unwrap_or(mine.len().min(bytes.len()));
            let ctx = |b: &[u8]| {
                String::from_utf8_lossy(&b[at.saturating_sub(40)..(at + 40).min(b.len())])
                    .into_owned()
            };
            panic!(
                "{name} differs at byte {at} (ours {} bytes, reference {} bytes)\n ours: {}\n  ref: {}",
                mine.len(),
                bytes.len(),
                ctx(mine),
                ctx(bytes)
            );
        }
    }
}

#[test]
fn reads_mixed_set_written_by_cpp() {
    read_set("mixed");
}

#[test]
fn reads_floats_set_written_by_cpp() {
    read_set("floats");
}

#[test]
fn writes_mixed_set_byte_identical() {
    write_set("mixed", true);
    write_set("mixed", false);
}

#[test]
fn writes_floats_set_byte_identical() {
    write_set("floats", true);
    write_set("floats", false);
}

#[test]
fn cpp_topic_stays_appendable_and_listed() {
    let src = fixtures_dir().join("mixed");
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&src.join("topic"), tmp.path());
    let driver = Driver::new("files", &json!({"root_path": tmp.path()})).unwrap();
    let topics = driver.list_topics().unwrap();
    assert_eq!(topics["mixed"]["num_partitions"], 4);
    assert_eq!(topics["mixed"]["validator"], json!({"type": "default"}));
    let topic = driver.open_topic("mixed").unwrap();
    let before = topic
        .backend()
        .fetch(2, 0, usize::MAX, false)
        .unwrap()
        .len() as u64;
    let producer = topic.producer().build().unwrap();
    let f = producer.push_to(json!({"appended": true}), DataView::from("tail"), 2);
    assert_eq!(
        f.wait().unwrap(),
        before,
        "new event gets the next id after the C++ ones"
    );
}
