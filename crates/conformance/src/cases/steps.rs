//! Steps (`Producer::end_step`, `Consumer::wait_step`, step marker events) and start positions
//! (`ConsumerBuilder::start`).

use super::*;
use diaspora_stream::StartPosition;

/// Two producers of one group, on `topic`.
fn two_producers(topic: &TopicHandle) -> (Producer, Producer) {
    let make = |i| {
        topic
            .producer()
            .name(&format!("step-producer-{i}"))
            .group(i, 2)
            .build()
            .unwrap()
    };
    (make(0), make(1))
}

fn push_step(producer: &Producer, who: u64, step: u64, n: u64, partitions: usize) {
    for i in 0..n {
        let f = producer.push_to(
            json!({"who": who, "step": step, "i": i}),
            DataView::from(data_string(i)),
            (i as usize) % partitions,
        );
        wait_id(&f, "step event");
    }
}

fn close(producer: &Producer, step: u64) {
    match producer.end_step(step).wait_timeout(WAIT) {
        Ok(Some(())) => {}
        Ok(None) => panic!("end_step({step}) not completed within {WAIT:?}"),
        Err(e) => panic!("end_step({step}) failed: {e}"),
    }
}

/// Pulls until the step marker of `step`, returning the events before it.
fn pull_until_step(consumer: &Consumer, step: u64) -> Vec<Event> {
    let end = Instant::now() + WAIT;
    let mut events = Vec::new();
    loop {
        assert!(
            Instant::now() < end,
            "no marker of step {step} within {WAIT:?}"
        );
        match consumer.pull().wait_timeout(POLL) {
            Ok(Some(ev)) => match ev.completed_step() {
                Some(k) => {
                    assert_eq!(k, step, "step markers come in order");
                    return events;
                }
                None => events.push(ev),
            },
            Ok(None) => {}
            Err(e) => panic!("pull failed: {e}"),
        }
    }
}

/// Case: a step completes when every producer closed it in every partition, after its events.
pub fn steps_complete_when_every_producer_closed_them() {
    let (driver, _guard) = test_driver();
    let topic = new_topic(&driver, "steps", json!({"num_partitions": 2}));
    let (p0, p1) = two_producers(&topic);
    let consumer = topic.consumer("steps-reader").build().unwrap();
    assert_eq!(consumer.completed_step(), None);

    push_step(&p0, 0, 0, 10, 2);
    close(&p0, 0);
    assert!(
        !consumer.wait_step(0, Duration::from_millis(300)).unwrap(),
        "step 0 complete while producer 1 has not closed it"
    );
    push_step(&p1, 1, 0, 10, 2);
    close(&p1, 0);
    assert!(consumer.wait_step(0, WAIT).unwrap());
    assert_eq!(consumer.completed_step(), Some(0));
    let before = pull_until_step(&consumer, 0);
    assert_eq!(
        before.len(),
        20,
        "every event of step 0 comes before its marker"
    );
    assert!(before.iter().all(|e| field(e, "step") == 0));

    // Closing a later step closes the ones before it; closing an old step again is refused.
    push_step(&p0, 0, 1, 4, 2);
    close(&p0, 2);
    push_step(&p1, 1, 1, 4, 2);
    close(&p1, 1);
    let before = pull_until_step(&consumer, 1);
    assert_eq!(before.len(), 8);
    assert_eq!(consumer.completed_step(), Some(1));
    let e = p1.end_step(1).wait().unwrap_err().to_string();
    assert!(e.contains("already closed"), "{e}");
    close(&p1, 3);
    assert!(consumer.wait_step(2, WAIT).unwrap());
    assert!(!consumer.wait_step(3, Duration::from_millis(200)).unwrap());
    let marker = consumer
        .pull()
        .wait_timeout(WAIT)
        .unwrap()
        .expect("the marker of step 2");
    assert_eq!(marker.completed_step(), Some(2));
    assert!(
        marker.acknowledge().is_ok(),
        "acknowledging a marker does nothing"
    );
}

/// Case: a consumer restarted under the same name knows the steps completed before, and does
/// not forget a producer that closed the next step before what it acknowledged.
pub fn a_restarted_consumer_knows_the_completed_steps() {
    let (driver, _guard) = test_driver();
    let topic = new_topic(&driver, "steps-restart", one_partition());
    let (p0, p1) = two_producers(&topic);
    push_step(&p0, 0, 0, 3, 1);
    close(&p0, 0);
    push_step(&p1, 1, 0, 3, 1);
    close(&p1, 0);
    push_step(&p0, 0, 1, 3, 1);
    close(&p0, 1); // producer 0's marker of step 1 ...
    push_step(&p1, 1, 1, 3, 1); // ... comes before events acknowledged below
    let acked = {
        let consumer = topic.consumer("steps-restart").build().unwrap();
        // 12 events and, among them, the marker of step 0.
        let events = pull_n(&consumer, 13);
        let markers: Vec<_> = events.iter().filter_map(Event::completed_step).collect();
        assert_eq!(markers, vec![0]);
        assert_eq!(consumer.completed_step(), Some(0));
        events.last().unwrap().acknowledge().unwrap();
        events.last().unwrap().id()
    };
    assert_eq!(
        topic.backend().load_offset("steps-restart", 0).unwrap(),
        acked + 1,
        "the acknowledged position is read back"
    );
    let consumer = topic.consumer("steps-restart").build().unwrap();
    assert_eq!(
        consumer.completed_step(),
        Some(0),
        "the restarted consumer knows step 0 is complete"
    );
    close(&p1, 1);
    assert!(
        consumer.wait_step(1, WAIT).unwrap(),
        "step 1 completes: producer 0 closed it before the acknowledged position"
    );
    let rest = pull_until_step(&consumer, 1);
    assert!(rest.is_empty(), "nothing was left to deliver: {rest:?}");
}

/// Case: consumers start at the beginning, the end, given ids, a step, or the last
/// acknowledged event; bad start positions are errors naming the option.
pub fn consumers_start_where_they_are_told() {
    let (driver, _guard) = test_driver();
    let topic = new_topic(&driver, "start", one_partition());
    let producer = topic.producer().build().unwrap();
    let push = |step: u64, n: u64| {
        for i in 0..n {
            wait_id(
                &producer.push(json!({"step": step, "event_num": i}), DataView::new()),
                "push",
            );
        }
    };
    push(0, 5);
    close(&producer, 0);
    push(1, 5);
    {
        let c = topic.consumer("start-acked").build().unwrap();
        pull_n(&c, 3)[2].acknowledge().unwrap();
    }
    let first = |start: StartPosition| -> (u64, u64) {
        let c = topic
            .consumer("start-acked")
            .start(start.clone())
            .build()
            .unwrap_or_else(|e| panic!("start {start:?}: {e}"));
        let ev = pull_n(&c, 1).remove(0);
        (field(&ev, "step"), event_num(&ev))
    };
    assert_eq!(first(StartPosition::LastAck), (0, 3));
    assert_eq!(first(StartPosition::Beginning), (0, 0));
    assert_eq!(first(StartPosition::Step(1)), (1, 0));
    assert_eq!(first("0=2".parse().unwrap()), (0, 2));
    let end = topic
        .consumer("start-end")
        .start(StartPosition::End)
        .build()
        .unwrap();
    assert_no_more_events(&end, 2);
    push(1, 1);
    let ev = pull_n(&end, 1).remove(0);
    assert_eq!((field(&ev, "step"), event_num(&ev)), (1, 0));
    // A step not closed yet, and a partition the consumer does not read.
    let e = topic
        .consumer("start-bad")
        .start(StartPosition::Step(2))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("step:2") && e.contains("step 1 is not closed"),
        "{e}"
    );
    let e = topic
        .consumer("start-bad")
        .start("5=1".parse().unwrap())
        .build()
        .unwrap_err()
        .to_string();
    assert!(e.contains("start") && e.contains("partition 5"), "{e}");
}
