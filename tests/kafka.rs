//! Kafka driver against a real Kafka-compatible broker (feature `kafka`).
//!
//! The broker's address comes from `DIASPORA_KAFKA_BOOTSTRAP` (e.g. `127.0.0.1:19092`);
//! `scripts/kafka-broker.sh start` runs one on loopback, and `scripts/test.sh` does so itself.
//! Without it these tests fail with that explanation rather than pass silently. The generic
//! conformance suite also runs against this driver (see `scripts/test.sh`).
#![cfg(feature = "kafka")]

#[path = "support/kafka_broker.rs"]
mod kafka_broker;
use diaspora_stream::{BatchSize, DataView, Driver, Error};
use kafka_broker::{bootstrap, driver, topic_options, unique};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// A plain librdkafka consumer reading raw records of `topic` partition `p` from the start.
fn raw_records(topic: &str, p: i32, count: usize) -> Vec<(i64, Vec<u8>)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", "raw-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, p, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    while out.len() < count && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            out.push((m.offset(), m.payload().unwrap_or(&[]).to_vec()));
        }
    }
    out
}

fn octopus_value(metadata: &[u8], data: &[u8]) -> Vec<u8> {
    let mut v = (metadata.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u64).to_le_bytes());
    v.extend_from_slice(metadata);
    v.extend_from_slice(data);
    v
}

#[test]
fn records_use_the_octopus_layout_both_ways() {
    let d = driver();
    let name = unique("octo");
    d.create_topic(&name, &topic_options(1)).unwrap();
    let topic = d.open_topic(&name).unwrap();
    let producer = topic.producer().build().unwrap();
    let id = producer
        .push(
            json!({"x": 1}),
            DataView::from_segments(vec![b"ab".to_vec(), b"cde".to_vec()]),
        )
        .wait()
        .unwrap();
    assert_eq!(id, 0);
    drop(producer);
    // What we wrote, read raw: u64 LE sizes, serialized metadata (default serializer), data.
    let mut md = 7u64.to_le_bytes().to_vec();
    md.extend_from_slice(br#"{"x":1}"#);
    let raw = raw_records(&name, 0, 1);
    assert_eq!(raw[0].1, octopus_value(&md, b"abcde"));
    // The info topic holds the three component configurations, as Octopus writes them.
    let info = raw_records(&format!("__info_{name}"), 0, 3);
    let texts: Vec<String> = info
        .iter()
        .map(|r| String::from_utf8(r.1.clone()).unwrap())
        .collect();
    assert_eq!(texts, vec![r#"{"type":"default"}"#; 3]);

    // What an Octopus producer writes (value only, no key), read through the driver.
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let mut md2 = 12u64.to_le_bytes().to_vec();
    md2.extend_from_slice(br#"{"from":"c"}"#);
    let value = octopus_value(&md2, &[9u8; 1000]);
    p.send(BaseRecord::<(), _>::to(&name).partition(0).payload(&value))
        .unwrap();
    // And Octopus's end-of-stream record (both sizes u64::MAX).
    let end = [u64::MAX.to_le_bytes(), u64::MAX.to_le_bytes()].concat();
    p.send(BaseRecord::<(), _>::to(&name).partition(0).payload(&end))
        .unwrap();
    p.flush(WAIT).unwrap();
    let consumer = topic.consumer(&unique("reader")).build().unwrap();
    let a = consumer.pull().wait_timeout(WAIT).unwrap().unwrap();
    assert_eq!(
        (a.id(), a.metadata().json().clone(), a.data().to_vec()),
        (0, json!({"x": 1}), b"abcde".to_vec())
    );
    let b = consumer.pull().wait_timeout(WAIT).unwrap().unwrap();
    assert_eq!(
        (b.id(), b.metadata().json()["from"].clone()),
        (1, json!("c"))
    );
    assert_eq!(b.data().to_vec(), vec![9u8; 1000]);
    assert!(consumer
        .pull()
        .wait_timeout(WAIT)
        .unwrap()
        .unwrap()
        .is_end_of_stream());
}

#[test]
fn malformed_records_are_reported_with_their_position() {
    let d = driver();
    let name = unique("bad");
    d.create_topic(&name, &topic_options(1)).unwrap();
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    p.send(
        BaseRecord::<(), _>::to(&name)
            .partition(0)
            .payload(&[1u8, 2, 3][..]),
    )
    .unwrap();
    p.flush(WAIT).unwrap();
    let topic = d.open_topic(&name).unwrap();
    let consumer = topic.consumer(&unique("reader")).build().unwrap();
    let err = consumer.pull().wait_timeout(WAIT).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("partition 0") && msg.contains("offset 0"),
        "{msg}"
    );
}

#[test]
fn every_partition_is_used_round_robin() {
    let d = driver();
    let name = unique("rr");
    d.create_topic(&name, &topic_options(4)).unwrap();
    let topic = d.open_topic(&name).unwrap();
    assert_eq!(topic.num_partitions(), 4);
    let producer = topic
        .producer()
        .batch_size(BatchSize::Fixed(7))
        .build()
        .unwrap();
    let futures: Vec<_> = (0..40)
        .map(|i| producer.push(json!({"i": i}), DataView::from(vec![i as u8; 3])))
        .collect();
    producer.flush().wait().unwrap();
    let ids: Vec<u64> = futures.iter().map(|f| f.wait().unwrap()).collect();
    // Event i went to partition i % 4 as its (i / 4)-th record.
    assert_eq!(ids, (0..40).map(|i| i / 4).collect::<Vec<u64>>());
    for p in 0..4 {
        let raw = raw_records(&name, p, 10);
        assert_eq!(raw.len(), 10, "partition {p}");
    }
}

#[test]
fn existence_checks_never_create_topics() {
    let d = driver();
    let name = unique("ghost");
    for _ in 0..3 {
        assert!(!d.topic_exists(&name).unwrap());
    }
    assert!(matches!(
        d.open_topic(&name).unwrap_err(),
        Error::TopicNotFound(_)
    ));
    assert!(!d.list_topics().unwrap().contains_key(&name));
    // An invalid name never reaches the broker.
    assert!(matches!(
        d.create_topic("a/b", &topic_options(1)).unwrap_err(),
        Error::InvalidArgument(_)
    ));
    d.create_topic(&name, &topic_options(2)).unwrap();
    assert!(matches!(
        d.create_topic(&name, &topic_options(2)).unwrap_err(),
        Error::TopicExists(_)
    ));
    let listed = d.list_topics().unwrap();
    assert_eq!(listed[&name]["num_partitions"], 2);
    assert_eq!(listed[&name]["validator"], json!({"type": "default"}));
    assert!(!listed.keys().any(|k| k.starts_with("__info_")));
}

#[test]
fn delivery_failures_fail_the_push() {
    let d = driver();
    let name = unique("big");
    d.create_topic(&name, &topic_options(1)).unwrap();
    let topic = d.open_topic(&name).unwrap();
    // The client refuses records above its configured size: the push must fail, not succeed.
    let producer = topic
        .producer()
        .options(json!({"kafka": {"message.max.bytes": "2000"}}))
        .build()
        .unwrap();
    let f = producer.push(json!({}), DataView::from(vec![0u8; 10_000]));
    let err = f.wait().unwrap_err();
    assert!(err.to_string().contains("delivery"), "{err}");
    assert!(
        producer.flush().wait().is_err(),
        "flush reports the failed batch"
    );
    let ok = producer
        .push(json!({}), DataView::from(vec![0u8; 100]))
        .wait()
        .unwrap();
    assert_eq!(ok, 0, "nothing of the failed record was stored");
}

#[test]
fn bad_driver_options_are_rejected() {
    for bad in [
        json!({}),
        json!({"kafka": {}}),
        json!({"kafka": {"bootstrap.servers": 1}}),
    ] {
        assert!(Driver::new("kafka", &bad).is_err(), "{bad}");
    }
    assert!(Driver::new(
        "octopus",
        &json!({"kafka": {"bootstrap.servers": bootstrap()}})
    )
    .is_ok());
    // Non-default components need the info topic.
    let d = Driver::new(
        "kafka",
        &json!({"kafka": {"bootstrap.servers": bootstrap()}, "disable_info_topic": true}),
    )
    .unwrap();
    let schema = diaspora_stream::components::validator_from_config(
        &json!({"type": "schema", "schema": {"type": "object"}}),
    )
    .unwrap();
    let components = diaspora_stream::TopicComponents {
        validator: schema,
        ..Default::default()
    };
    assert!(d
        .create_topic_with(&unique("noinfo"), &topic_options(1), components)
        .is_err());
    let name = unique("noinfo");
    d.create_topic(&name, &topic_options(1)).unwrap();
    assert!(d.open_topic(&name).is_ok());
}

/// Child process for the restart test: consumes `COUNT` events as consumer `NAME`, acknowledging
/// the last, and prints their ids.
#[test]
#[ignore = "child process helper: spawned by acknowledgements_survive_process_restarts"]
fn child_consumer() {
    let name = std::env::var("DIASPORA_CHILD_TOPIC").unwrap();
    let consumer_name = std::env::var("DIASPORA_CHILD_CONSUMER").unwrap();
    let count: usize = std::env::var("DIASPORA_CHILD_COUNT")
        .unwrap()
        .parse()
        .unwrap();
    let topic = driver().open_topic(&name).unwrap();
    let consumer = topic
        .consumer(&consumer_name)
        .targets(&[1])
        .build()
        .unwrap();
    for _ in 0..count {
        let ev = consumer.pull().wait_timeout(WAIT).unwrap().unwrap();
        ev.acknowledge().unwrap();
        println!("GOT {} {} .", ev.partition(), ev.id());
    }
}

#[test]
fn acknowledgements_survive_process_restarts() {
    let d = driver();
    let name = unique("restart");
    d.create_topic(&name, &topic_options(2)).unwrap();
    let topic = d.open_topic(&name).unwrap();
    let producer = topic.producer().build().unwrap();
    for i in 0..30u64 {
        producer.push_to(json!({"i": i}), DataView::new(), 1);
    }
    producer.flush().wait().unwrap();
    let consumer_name = unique("group");
    let mut seen = Vec::new();
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "child_consumer",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("DIASPORA_CHILD_TOPIC", &name)
            .env("DIASPORA_CHILD_CONSUMER", &consumer_name)
            .env("DIASPORA_CHILD_COUNT", "7")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map_while(|l| l.ok())
            .collect();
        let ids: Vec<u64> = lines
            .iter()
            .filter_map(|l| l.find("GOT ").map(|at| &l[at + 4..]))
            .filter(|l| l.ends_with(" ."))
            .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
            .collect();
        assert!(child.wait().unwrap().success(), "child consumer failed");
        assert_eq!(
            ids,
            (round * 7..round * 7 + 7).collect::<Vec<u64>>(),
            "round {round}"
        );
        seen.extend(ids);
    }
    // Another name starts from the beginning.
    let other = topic
        .consumer(&unique("group"))
        .targets(&[1])
        .build()
        .unwrap();
    assert_eq!(other.pull().wait_timeout(WAIT).unwrap().unwrap().id(), 0);
    assert_eq!(seen.len(), 21);
}
