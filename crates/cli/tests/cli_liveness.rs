//! No silent hangs: a consumer following a topic whose producer was killed with SIGKILL gets,
//! within its liveness timeout, an error naming the lost producer (process, host, last ids),
//! after every event that producer stored; `diaspora-ctl consume --follow` exits non-zero with
//! it; a producer that is slow but alive is never reported. On the files driver, and with
//! feature `kafka` on the test broker (`DIASPORA_KAFKA_BOOTSTRAP`); the mofka driver's
//! SIGKILL test is in the library's `tests/mofka.rs`.
//!
//! Producers renew their lease every 100 ms here (`lease_interval_ms`), consumers check after
//! 1 s without events: the deadlines below are generous bounds for a loaded machine.

#[cfg(feature = "kafka")]
#[path = "../../../tests/support/kafka_broker.rs"]
mod kafka_broker;
#[path = "cli_support/mod.rs"]
mod support;

use diaspora_stream::{DataView, Driver, Error};
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Where the topics live: a files root, or the test broker.
struct Side {
    /// The driver's command-line arguments (leases renewed every 100 ms).
    args: Vec<String>,
    /// A topic name not used before.
    topic: String,
    _dir: Option<tempfile::TempDir>,
}

impl Side {
    fn files(topic: &str) -> Side {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        create_topic(&root, topic, 1);
        let mut args = files(&root);
        args.extend(["--driver.lease_interval_ms".into(), "100".into()]);
        Side {
            args,
            topic: topic.to_string(),
            _dir: Some(dir),
        }
    }

    #[cfg(feature = "kafka")]
    fn kafka(topic: &str) -> Side {
        let topic = kafka_broker::unique(topic);
        kafka_broker::driver()
            .create_topic(&topic, &kafka_broker::topic_options(1))
            .unwrap();
        Side {
            args: vec![
                "--driver".into(),
                "kafka".into(),
                "--driver.kafka.bootstrap.servers".into(),
                kafka_broker::bootstrap(),
                "--driver.lease_interval_ms".into(),
                "100".into(),
            ],
            topic,
            _dir: None,
        }
    }

    /// The same driver, in this process.
    fn driver(&self) -> Driver {
        let a = &self.args;
        match a[1].as_str() {
            "files" => Driver::new(
                "files",
                &json!({"root_path": a[3], "lease_interval_ms": 100}),
            ),
            _ => Driver::new(
                "kafka",
                &json!({"kafka": {"bootstrap.servers": a[3]}, "lease_interval_ms": 100}),
            ),
        }
        .unwrap()
    }
}

/// A `diaspora-ctl produce` process fed 10 events through a pipe it keeps open, killed with
/// SIGKILL once they are stored. Returns its pid.
fn produce_then_die(side: &Side) -> u32 {
    let args = join(&side.args, &["produce", "--topic", &side.topic]);
    let mut child = Command::new(BIN)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..10u64 {
        stdin
            .write_all(line_with(i, &data_for(i)).as_bytes())
            .unwrap();
    }
    stdin.flush().unwrap();
    let topic_handle = side.driver().open_topic(&side.topic).unwrap();
    // The 10 events are stored when the lease records the last id (at its next renewal,
    // every 100 ms).
    wait_until("the lease to record that the 10 events are stored", || {
        let producers = topic_handle.backend().producers().unwrap().unwrap();
        producers
            .iter()
            .any(|(p, _)| p.pid == pid && p.last_ids.get(&0) == Some(&9))
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(stdin);
    pid
}

#[test]
fn a_killed_producer_is_reported_after_its_events() {
    a_killed_producer_is_reported(Side::files("lost"));
}

#[cfg(feature = "kafka")]
#[test]
fn a_killed_producer_is_reported_after_its_events_on_kafka() {
    a_killed_producer_is_reported(Side::kafka("lost"));
}

fn a_killed_producer_is_reported(side: Side) {
    let pid = produce_then_die(&side);
    let topic = side.driver().open_topic(&side.topic).unwrap();
    let consumer = topic
        .consumer("follower")
        .liveness_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut events = 0;
    let error = loop {
        assert!(Instant::now() < deadline, "no lost producer reported");
        match consumer.pull().wait_timeout(Duration::from_millis(100)) {
            Ok(Some(ev)) => {
                assert!(!ev.is_end_of_stream());
                events += 1;
            }
            Ok(None) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(events, 10, "every stored event comes before the error");
    match &error {
        Error::ProducerLost(lost) => {
            assert_eq!(lost.pid, pid);
            assert!(!lost.host.is_empty());
            assert_eq!(lost.last_ids, "partition 0: 9");
        }
        other => panic!("expected ProducerLost, got {other}"),
    }
    let text = error.to_string();
    assert!(text.contains(&format!("process {pid}")), "{text}");
    // Reported once: the consumer goes on (and times out like any other pull).
    assert!(consumer
        .pull()
        .wait_timeout(Duration::from_millis(1500))
        .unwrap()
        .is_none());

    // `topic status` shows the partition and the lost producer.
    let o = ctl(&join(
        &side.args,
        &["topic", "status", &side.topic, "--liveness-timeout", "1"],
    ));
    assert_ok(&o);
    let status: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    // The driver's end of the partition: 9 on files; the test broker (Tansu) reports Kafka
    // watermarks per batch of records, not per record, so there it is what the driver says.
    let end = topic.backend().end_id(0).unwrap();
    if side.args[1] == "files" {
        assert_eq!(end, 10);
    }
    assert_eq!(status["partitions"][0]["last_id"], end - 1);
    assert!(status["partitions"][0]["completed_step"].is_null());
    let producers = status["producers"].as_array().unwrap();
    assert_eq!(producers.len(), 1, "{status}");
    assert_eq!(producers[0]["pid"], pid);
    assert_eq!(producers[0]["state"], "lost");
    assert_eq!(producers[0]["last_ids"]["0"], 9);

    // `consume --follow` stops with that error and a non-zero status.
    let mut args = join(
        &side.args,
        &[
            "consume",
            "--topic",
            &side.topic,
            "--follow",
            "--liveness-timeout",
            "1",
        ],
    );
    args.push("--logging");
    args.push("error");
    let o = ctl(&args);
    assert!(!o.status.success(), "consume --follow succeeded");
    assert_eq!(parse_events(&stdout(&o)).len(), 10);
    let err = stderr(&o);
    assert!(
        err.contains("stopped renewing") && err.contains(&format!("process {pid}")),
        "{err}"
    );
}

#[test]
fn a_slow_producer_that_is_alive_is_never_reported() {
    a_slow_producer_is_never_reported(Side::files("slow"));
}

#[cfg(feature = "kafka")]
#[test]
fn a_slow_producer_that_is_alive_is_never_reported_on_kafka() {
    a_slow_producer_is_never_reported(Side::kafka("slow"));
}

fn a_slow_producer_is_never_reported(side: Side) {
    let producer_driver = side.driver();
    let name = side.topic.clone();
    let writer = std::thread::spawn(move || {
        let topic = producer_driver.open_topic(&name).unwrap();
        let producer = topic.producer().name("slow").build().unwrap();
        for i in 0..3u64 {
            // Longer than the consumer's liveness timeout between events.
            std::thread::sleep(Duration::from_millis(1500));
            producer
                .push(json!({"i": i}), DataView::new())
                .wait()
                .unwrap();
        }
        producer.end_of_stream(0, 1).wait().unwrap();
    });
    let topic = side.driver().open_topic(&side.topic).unwrap();
    let consumer = topic
        .consumer("patient")
        .liveness_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut got = 0;
    loop {
        assert!(Instant::now() < deadline, "the stream did not end");
        match consumer.pull().wait_timeout(Duration::from_millis(100)) {
            Ok(Some(ev)) if ev.is_end_of_stream() => break,
            Ok(Some(_)) => got += 1,
            Ok(None) => {}
            Err(e) => panic!("a live producer was reported: {e}"),
        }
    }
    writer.join().unwrap();
    assert_eq!(got, 3);
    // It ended cleanly: its lease is gone (a Kafka side topic is read as it is tailed).
    wait_until("the lease to be withdrawn", || {
        topic.backend().producers().unwrap().unwrap().is_empty()
    });
}
