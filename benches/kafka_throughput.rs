//! Kafka driver throughput against plain rdkafka, on the same broker in the same run.
//!
//! `DIASPORA_KAFKA_BOOTSTRAP=127.0.0.1:19092 cargo bench --features kafka --bench kafka_throughput [-- EVENTS]`
//! (start a broker with `scripts/kafka-broker.sh start`). Each run writes EVENTS events (default
//! 100,000) of 1 KiB data + ~20 B metadata over 4 partitions, through the driver and through a
//! plain `ThreadedProducer` sending records of the same size, then reads each topic back through
//! the driver and through a plain `BaseConsumer` (once only receiving records, once also
//! splitting each value and parsing its metadata JSON, as an application would). Prints events/s
//! and the driver/baseline ratios (median of 5 runs).

use diaspora_stream::{BatchSize, DataView, Driver, MaxNumBatches};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use std::time::{Duration, Instant};

const PARTITIONS: usize = 4;
const DATA: usize = 1024;
const RUNS: usize = 5;

fn main() {
    let events: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let bootstrap = std::env::var("DIASPORA_KAFKA_BOOTSTRAP")
        .expect("set DIASPORA_KAFKA_BOOTSTRAP (scripts/kafka-broker.sh start prints it)");
    let driver = Driver::new("kafka", &json!({"kafka": {"bootstrap.servers": bootstrap}})).unwrap();
    let data = bytes::Bytes::from(vec![7u8; DATA]);
    let stamp = std::process::id();
    let (mut dp, mut bp, mut dc, mut bc, mut bd) = (vec![], vec![], vec![], vec![], vec![]);
    for run in 0..RUNS {
        // Through the driver.
        let name = format!("bench-driver-{stamp}-{run}");
        driver
            .create_topic(
                &name,
                &json!({"num_partitions": PARTITIONS, "replication_factor": 1}),
            )
            .unwrap();
        let topic = driver.open_topic(&name).unwrap();
        let producer = topic
            .producer()
            .batch_size(BatchSize::Fixed(512))
            .max_num_batches(MaxNumBatches(64))
            .build()
            .unwrap();
        let start = Instant::now();
        let mut last = None;
        for i in 0..events {
            last = Some(producer.push(json!({"i": i}), DataView::from(data.clone())));
        }
        producer.flush().wait().unwrap();
        dp.push(events as f64 / start.elapsed().as_secs_f64());
        last.unwrap().wait().unwrap();
        drop(producer);
        let consumer = topic.consumer(&format!("reader-{run}")).build().unwrap();
        let start = Instant::now();
        for _ in 0..events {
            consumer
                .pull()
                .wait_timeout(Duration::from_secs(30))
                .unwrap()
                .expect("event");
        }
        dc.push(events as f64 / start.elapsed().as_secs_f64());

        // Plain rdkafka with records of the same size and the same partitioning.
        let raw = format!("bench-raw-{stamp}-{run}");
        driver.create_topic(&raw, &json!({"num_partitions": PARTITIONS, "replication_factor": 1, "disable_info_topic": true})).unwrap();
        let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("enable.idempotence", "true")
            .create()
            .unwrap();
        let start = Instant::now();
        for i in 0..events {
            let md = format!("{{\"i\":{i}}}");
            let mut value = Vec::with_capacity(16 + 8 + md.len() + DATA);
            value.extend_from_slice(&((md.len() + 8) as u64).to_le_bytes());
            value.extend_from_slice(&(DATA as u64).to_le_bytes());
            value.extend_from_slice(&(md.len() as u64).to_le_bytes());
            value.extend_from_slice(md.as_bytes());
            value.extend_from_slice(&data);
            let mut record = BaseRecord::<(), _>::to(&raw)
                .partition((i % PARTITIONS) as i32)
                .payload(&value);
            loop {
                match p.send(record) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        p.flush(Duration::from_secs(60)).unwrap();
        bp.push(events as f64 / start.elapsed().as_secs_f64());
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", format!("raw-{run}"))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "100")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for part in 0..PARTITIONS {
            tpl.add_partition_offset(&raw, part as i32, Offset::Offset(0))
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let start = Instant::now();
        let mut n = 0;
        while n < events {
            if let Some(m) = c.poll(Duration::from_secs(30)) {
                m.unwrap();
                n += 1;
            }
        }
        bc.push(events as f64 / start.elapsed().as_secs_f64());
        // The same, also doing what an application needs to do with each record: split the
        // value and parse the metadata JSON (as the driver does).
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", format!("raw-decode-{run}"))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "100")
            .create()
            .unwrap();
        c.assign(&tpl).unwrap();
        let start = Instant::now();
        let mut n = 0;
        while n < events {
            if let Some(m) = c.poll(Duration::from_secs(30)) {
                let m = m.unwrap();
                let v = rdkafka::Message::payload(&m).unwrap();
                let md_len = u64::from_le_bytes(v[..8].try_into().unwrap()) as usize;
                let md: serde_json::Value =
                    serde_json::from_slice(&v[16 + 8..16 + md_len]).unwrap();
                let data = bytes::Bytes::copy_from_slice(&v[16 + md_len..]);
                std::hint::black_box((md, data));
                n += 1;
            }
        }
        bd.push(events as f64 / start.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (dp, bp, dc, bc, bd) = (
        median(&mut dp),
        median(&mut bp),
        median(&mut dc),
        median(&mut bc),
        median(&mut bd),
    );
    println!("kafka_throughput: {events} events of {DATA} B data, {PARTITIONS} partitions, median of {RUNS} runs");
    println!(
        "producer: driver {:.0} events/s, plain rdkafka {:.0} events/s, ratio {:.2}",
        dp,
        bp,
        dp / bp
    );
    println!(
        "consumer: driver {:.0} events/s, plain rdkafka {:.0} events/s, ratio {:.2}",
        dc,
        bc,
        dc / bc
    );
    println!(
        "consumer: driver {:.0} events/s, plain rdkafka also decoding each record {:.0} events/s, ratio {:.2}",
        dc,
        bd,
        dc / bd
    );
}
