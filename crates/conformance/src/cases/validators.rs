//! Validators (EventbridgeTest, test_validator.py).

use super::*;

/// A new one-partition topic with the validator `validator_config`.
pub fn validated_topic(driver: &Driver, prefix: &str, validator_config: &Value) -> TopicHandle {
    let validator = validator_from_config(validator_config).unwrap();
    let name = unique_topic(prefix);
    driver
        .create_topic_with(
            &name,
            &topic_args_with(one_partition()),
            TopicComponents {
                validator,
                ..TopicComponents::default()
            },
        )
        .unwrap();
    driver.open_topic(&name).unwrap()
}

/// Creates a one-partition topic with `validator_config`, pushes `good` and `bad` events
/// alternately (inline and on a 2-thread pool), checks that every bad one is rejected with
/// `InvalidMetadata` and that only the good ones are stored.
pub fn check_validator_topic(validator_config: Value, good: &[Value], bad: &[Value]) {
    let (driver, _dir) = test_driver();
    let topic = validated_topic(&driver, "validated", &validator_config);
    assert_eq!(
        topic.validator().metadata()["type"],
        validator_config["type"],
        "the validator is stored with the topic"
    );

    let mut stored = Vec::new();
    for threads in [0usize, 2] {
        let producer = topic
            .producer()
            .thread_pool(driver.make_thread_pool(ThreadCount(threads)))
            .build()
            .unwrap();
        let mut accepted = Vec::new();
        for k in 0..good.len().max(bad.len()) {
            if let Some(g) = good.get(k) {
                accepted.push((g.clone(), producer.push(g.clone(), DataView::new())));
            }
            if let Some(b) = bad.get(k) {
                let f = producer.push(b.clone(), DataView::new());
                match f.wait_timeout(WAIT) {
                    Err(Error::InvalidMetadata(_)) => {}
                    other => {
                        panic!("threads={threads}: {b} should be rejected, got {other:?}")
                    }
                }
            }
        }
        flush(&producer);
        for (g, f) in &accepted {
            let id = wait_id(f, &format!("threads={threads}: {g} should be accepted"));
            stored.push((id, g.clone()));
        }
    }
    stored.sort_by_key(|(id, _)| *id);
    assert_eq!(
        stored.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        (0..stored.len() as u64).collect::<Vec<_>>(),
        "rejected events must not take ids"
    );

    let consumer = topic.consumer("c").build().unwrap();
    let events = pull_n(&consumer, stored.len());
    assert_no_more_events(&consumer, 5);
    for (ev, (id, md)) in events.iter().zip(&stored) {
        assert_eq!(ev.id(), *id);
        assert_eq!(ev.metadata().json(), md);
    }
}

/// Case: eventbridge validator accepts matching and rejects others.
pub fn eventbridge_validator_accepts_matching_and_rejects_others() {
    let config = json!({"type": "eventbridge", "schema": {
        "source": ["my.app"],
        "detail-type": ["my-event"],
        "detail": {
            "energy": [{"numeric": [">", 0, "<=", 100]}],
            "name": [{"prefix": "run-"}],
            "debug": [{"exists": false}]
        }
    }});
    let good = [
        json!({"source": "my.app", "detail-type": "my-event",
               "detail": {"energy": 42, "name": "run-1"}}),
        json!({"source": "my.app", "detail-type": "my-event",
               "detail": {"energy": 100, "name": "run-xyz", "other": [1, 2]}}),
    ];
    let bad = [
        json!({"source": "other.app", "detail-type": "my-event",
               "detail": {"energy": 42, "name": "run-1"}}),
        json!({"source": "my.app", "detail-type": "my-event",
               "detail": {"energy": 142, "name": "run-1"}}),
        json!({"source": "my.app", "detail-type": "my-event",
               "detail": {"energy": 42, "name": "walk-1"}}),
        json!({"source": "my.app", "detail-type": "my-event",
               "detail": {"energy": 42, "name": "run-1", "debug": true}}),
        json!({"source": "my.app", "detail-type": "my-event"}),
    ];
    check_validator_topic(config, &good, &bad);
}

/// Case: schema validator accepts matching and rejects others.
pub fn schema_validator_accepts_matching_and_rejects_others() {
    let config = json!({"type": "schema", "schema": {
        "type": "object",
        "properties": {
            "energy": {"type": "number", "maximum": 100},
            "name": {"type": "string"}
        },
        "required": ["energy"]
    }});
    let good = [
        json!({"energy": 3}),
        json!({"energy": 99.5, "name": "x"}),
        json!({"energy": -1, "extra": true}),
    ];
    let bad = [
        json!({"energy": 300}),
        json!({"name": "no energy"}),
        json!({"energy": 1, "name": 5}),
        json!([1, 2, 3]),
    ];
    check_validator_topic(config, &good, &bad);
}
