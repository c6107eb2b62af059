//! Several writer processes on one partition, and writers killed with SIGKILL mid-write.
//!
//! The writers are real processes: this test binary re-runs itself with the ignored
//! `child_writer` test selected, configured through environment variables.

use diaspora_stream::{BatchSize, DataView, Driver};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn payload(writer: u64, seq: u64) -> Vec<u8> {
    let len = ((writer * 7919 + seq * 104729) % 3000) as usize;
    (0..len)
        .map(|j| ((writer * 31 + seq * 7 + j as u64) % 251) as u8)
        .collect()
}

fn spawn_writer(
    root: &Path,
    topic: &str,
    writer: u64,
    count: u64,
    batch: usize,
    flush: &str,
) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "child_writer",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DIASPORA_CHILD_ROOT", root)
        .env("DIASPORA_CHILD_TOPIC", topic)
        .env("DIASPORA_CHILD_WRITER", writer.to_string())
        .env("DIASPORA_CHILD_COUNT", count.to_string())
        .env("DIASPORA_CHILD_BATCH", batch.to_string())
        .env("DIASPORA_CHILD_FLUSH", flush)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child writer")
}

/// Writer process body. Prints `ACK <seq> <id> .` for every event whose push completed and whose
/// batch was flushed (so it is acknowledged as stored).
#[test]
#[ignore = "child process helper: spawned by the other tests of this file, not run on its own"]
fn child_writer() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let root = var("DIASPORA_CHILD_ROOT");
    let writer: u64 = var("DIASPORA_CHILD_WRITER").parse().unwrap();
    let count: u64 = var("DIASPORA_CHILD_COUNT").parse().unwrap();
    let batch: usize = var("DIASPORA_CHILD_BATCH").parse().unwrap();
    let driver = Driver::new(
        "files",
        &json!({"root_path": root, "flush_behavior": var("DIASPORA_CHILD_FLUSH")}),
    )
    .unwrap();
    let topic = driver.open_topic(&var("DIASPORA_CHILD_TOPIC")).unwrap();
    let producer = topic
        .producer()
        .batch_size(BatchSize::Fixed(batch))
        .build()
        .unwrap();
    let mut seq = 0;
    while seq < count {
        let futures: Vec<_> = (0..batch as u64)
            .map(|k| {
                let s = seq + k;
                producer.push_to(
                    json!({"writer": writer, "seq": s}),
                    DataView::from(payload(writer, s)),
                    0,
                )
            })
            .collect();
        producer.flush().wait().unwrap();
        let mut out = String::new();
        for (k, f) in futures.iter().enumerate() {
            out.push_str(&format!("ACK {} {} .\n", seq + k as u64, f.wait().unwrap()));
        }
        print!("{out}");
        seq += batch as u64;
    }
}

/// Reads the whole partition 0 through the public API: id -> (writer, seq), checking data.
fn read_all(root: &Path, topic: &str) -> BTreeMap<u64, (u64, u64)> {
    let driver = Driver::new("files", &json!({"root_path": root})).unwrap();
    let topic = driver.open_topic(topic).unwrap();
    let consumer = topic.consumer("checker").build().unwrap();
    let mut out = BTreeMap::new();
    while let Some(ev) = consumer
        .pull()
        .wait_timeout(Duration::from_millis(500))
        .unwrap()
    {
        let md = ev.metadata().json();
        let (w, s) = (md["writer"].as_u64().unwrap(), md["seq"].as_u64().unwrap());
        assert_eq!(
            ev.data().to_vec(),
            payload(w, s),
            "data of writer {w} seq {s} (id {})",
            ev.id()
        );
        assert!(out.insert(ev.id(), (w, s)).is_none());
    }
    out
}

/// Parses `ACK <seq> <id> .` (the test harness may print its own text before it on the line).
fn parse_ack(line: &str) -> Option<(u64, u64)> {
    let rest = &line[line.find("ACK ")? + 4..];
    // The trailing "." proves the line was not cut by the kill.
    let mut it = rest.split(' ');
    let seq = it.next()?.parse().ok()?;
    let id = it.next()?.parse().ok()?;
    (it.next()?.trim() == ".").then_some((seq, id))
}

fn collect_acks(child: &mut Child) -> HashMap<u64, u64> {
    let mut acks = HashMap::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some((seq, id)) = parse_ack(&line) {
            acks.insert(seq, id);
        }
    }
    acks
}

#[test]
fn concurrent_writer_processes_never_lose_or_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let driver = Driver::new("files", &json!({"root_path": tmp.path()})).unwrap();
    driver
        .create_topic("shared", &json!({"num_partitions": 1}))
        .unwrap();
    let (writers, count) = (4u64, 600u64);
    let mut children: Vec<Child> = (0..writers)
        .map(|w| spawn_writer(tmp.path(), "shared", w, count, 8, "buffered"))
        .collect();
    let acks: Vec<HashMap<u64, u64>> = children.iter_mut().map(collect_acks).collect();
    for c in &mut children {
        assert!(c.wait().unwrap().success(), "a writer failed");
    }
    let stored = read_all(tmp.path(), "shared");
    assert_eq!(
        stored.len() as u64,
        writers * count,
        "every event stored once"
    );
    assert!(
        stored.keys().copied().eq(0..writers * count),
        "ids are dense"
    );
    for (w, a) in acks.iter().enumerate() {
        assert_eq!(a.len() as u64, count, "writer {w} acknowledged everything");
        for (seq, id) in a {
            assert_eq!(
                stored[id],
                (w as u64, *seq),
                "push future of writer {w} seq {seq} gave the true id"
            );
        }
    }
}

#[test]
fn writers_killed_with_sigkill_lose_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let driver = Driver::new("files", &json!({"root_path": tmp.path()})).unwrap();
    driver
        .create_topic("crashy", &json!({"num_partitions": 1}))
        .unwrap();
    let mut acked: Vec<HashMap<u64, u64>> = Vec::new();
    for round in 0..4u64 {
        // Two writers at once; kill one of them while it writes.
        let mut victim = spawn_writer(tmp.path(), "crashy", 10 + round, 1_000_000, 64, "on_flush");
        let mut survivor = spawn_writer(tmp.path(), "crashy", 100 + round, 256, 32, "on_flush");
        let stdout = victim.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut a = HashMap::new();
        let start = Instant::now();
        while a.len() < 256 + (round as usize) * 64 && start.elapsed() < Duration::from_secs(120) {
            let line = lines.next().expect("victim ended early").unwrap();
            if let Some((seq, id)) = parse_ack(&line) {
                a.insert(seq, id);
            }
        }
        victim.kill().unwrap(); // SIGKILL
        let _ = victim.wait();
        // Lines already printed before the kill are acknowledged too.
        for line in lines.map_while(|l| l.ok()) {
            if let Some((seq, id)) = parse_ack(&line) {
                a.insert(seq, id);
            }
        }
        let s = collect_acks(&mut survivor);
        assert!(survivor.wait().unwrap().success());
        acked.push(a);
        acked.push(s);
    }
    let writers: Vec<u64> = (0..4).flat_map(|r| [10 + r, 100 + r]).collect();
    // A fresh writer appends after whatever the killed ones left.
    let before = read_all(tmp.path(), "crashy");
    let topic = driver.open_topic("crashy").unwrap();
    let producer = topic.producer().build().unwrap();
    let f = producer.push_to(
        json!({"writer": 999, "seq": 0}),
        DataView::from(payload(999, 0)),
        0,
    );
    assert_eq!(f.wait().unwrap(), before.len() as u64);
    drop(producer);
    let after = read_all(tmp.path(), "crashy");
    assert_eq!(after.len(), before.len() + 1);
    assert!(after.keys().copied().eq(0..after.len() as u64));
    for (w, a) in writers.iter().zip(&acked) {
        assert!(!a.is_empty());
        for (seq, id) in a {
            assert_eq!(
                after.get(id),
                Some(&(*w, *seq)),
                "acknowledged event of writer {w} seq {seq} at id {id}"
            );
        }
    }
}
