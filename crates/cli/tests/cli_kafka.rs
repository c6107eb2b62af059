//! `diaspora-ctl forward` from the files driver to a real Kafka-compatible broker (feature
//! `kafka`): every event arrives once, data included, and SIGTERM stops the daemon cleanly.
//!
//! The broker's address comes from `DIASPORA_KAFKA_BOOTSTRAP` (e.g. `127.0.0.1:19092`);
//! `scripts/kafka-broker.sh start` runs one on loopback, and `scripts/test.sh` does so itself.
//! The library's Kafka tests are in the root's `tests/kafka.rs`.
#![cfg(feature = "kafka")]

#[path = "../../../tests/support/kafka_broker.rs"]
mod kafka_broker;
use diaspora_stream::{DataView, Driver};
use kafka_broker::{bootstrap, driver, topic_options, unique};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn forward_from_files_to_kafka_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let files = Driver::new("files", &json!({"root_path": dir.path().join("topics")})).unwrap();
    files
        .create_topic("src", &json!({"num_partitions": 2}))
        .unwrap();
    let src = files.open_topic("src").unwrap();
    let producer = src.producer().build().unwrap();
    for i in 0..50u64 {
        producer.push(
            json!({"i": i}),
            DataView::from(vec![(i % 251) as u8; (i * 37 % 500) as usize]),
        );
    }
    producer.flush().wait().unwrap();
    drop(producer);
    let kafka = driver();
    let dst = unique("fwd");
    kafka.create_topic(&dst, &topic_options(3)).unwrap();
    let config = dir.path().join("forward.yaml");
    std::fs::write(
        &config,
        format!(
            "drivers:\n  a: {{type: files, options: {{root_path: {}}}}}\n  b: {{type: kafka, options: {{kafka: {{bootstrap.servers: \"{}\"}}}}}}\nforward:\n  - {{from: a/src, to: b/{dst}}}\n",
            dir.path().join("topics").display(),
            bootstrap()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_diaspora-ctl"))
        .args(["forward", "--config", config.to_str().unwrap()])
        .spawn()
        .unwrap();
    let topic = kafka.open_topic(&dst).unwrap();
    let consumer = topic.consumer(&unique("check")).build().unwrap();
    let mut got = std::collections::BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while got.len() < 50 && Instant::now() < deadline {
        if let Some(ev) = consumer
            .pull()
            .wait_timeout(Duration::from_secs(1))
            .unwrap()
        {
            let i = ev.metadata().json()["i"].as_u64().unwrap();
            assert!(
                got.insert(i, ev.data().to_vec()).is_none(),
                "event {i} forwarded twice"
            );
        }
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(got.len(), 50);
    for (i, data) in got {
        assert_eq!(
            data,
            vec![(i % 251) as u8; (i * 37 % 500) as usize],
            "data of event {i}"
        );
    }
}

#[test]
fn librdkafka_keys_and_msk_options_are_given_on_the_command_line() {
    let name = unique("dotted");
    let ctl = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_diaspora-ctl"))
            .args(args)
            .output()
            .unwrap()
    };
    // `--driver.kafka.bootstrap.servers` and another dotted librdkafka key (`client.id`) become
    // librdkafka settings, not nested objects.
    let servers = bootstrap();
    let create = ctl(&[
        "topic",
        "create",
        "--driver",
        "kafka",
        "--driver.kafka.bootstrap.servers",
        &servers,
        "--driver.kafka.client.id",
        "cli-dotted-test",
        "--name",
        &name,
        "--topic.num_partitions",
        "2",
        "--topic.replication_factor",
        "1",
    ]);
    assert!(
        create.status.success(),
        "{}",
        String::from_utf8_lossy(&create.stderr)
    );
    let list = ctl(&[
        "topic",
        "list",
        "--driver",
        "kafka",
        "--driver.kafka.bootstrap.servers",
        &servers,
    ]);
    assert!(list.status.success());
    assert!(String::from_utf8_lossy(&list.stdout)
        .lines()
        .any(|l| l == name));
    // `--driver.aws_msk_iam.region` reaches the driver: an empty region is refused (with
    // feature msk), or the option is (without it); never a connection without authentication.
    let msk = ctl(&[
        "topic",
        "list",
        "--driver",
        "kafka",
        "--driver.kafka.bootstrap.servers",
        &servers,
        "--driver.aws_msk_iam.region",
        "",
    ]);
    assert_eq!(msk.status.code(), Some(1));
    let err = String::from_utf8_lossy(&msk.stderr);
    if cfg!(feature = "msk") {
        assert!(err.contains("\"region\" must not be empty"), "{err}");
    } else {
        assert!(err.contains("`msk`"), "{err}");
    }
}
