//! Producer liveness (`ConsumerBuilder::liveness_timeout`, `Error::ProducerLost`): a producer
//! that stops renewing its lease without ending its stream is reported, after its events; one
//! that is quiet but alive never is. Drivers that keep no producer liveness (the memory driver,
//! whose producers live in the consumer's process) skip both cases and say so.
//!
//! A process cannot be killed inside a test of the kit, so the first case stops the lease's
//! renewal the way a crash would (`Producer::stop_liveness_renewal`, which leaves the lease
//! behind). The command-line crate's `cli_liveness` tests kill real producer processes.

use super::*;
use diaspora_stream::backend::ProducerInfo;

/// How long consumers here wait without events before looking at the leases; the drivers'
/// default lease interval (1 s) is well within it.
const LIVENESS: Duration = Duration::from_secs(3);

/// True (after saying so) when the driver under test keeps no producer liveness.
fn skipped(topic: &TopicHandle, producer: &Producer) -> bool {
    if topic.backend().producers().unwrap().is_some() {
        return false;
    }
    assert!(
        !producer.stop_liveness_renewal(),
        "a producer renews a lease the driver does not report"
    );
    eprintln!(
        "liveness: not checked, driver {:?} keeps no producer liveness",
        backend_name()
    );
    true
}

/// Waits (up to [`WAIT`]) until the topic's leases show a producer for which `pred` holds.
pub fn wait_for_lease(topic: &TopicHandle, what: &str, pred: impl Fn(&ProducerInfo) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !topic
        .backend()
        .producers()
        .unwrap()
        .unwrap()
        .iter()
        .any(|(p, _)| pred(p))
    {
        assert!(Instant::now() < deadline, "no lease shows {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pulls (up to [`LONG_WAIT`]) until a pull fails: the events before, and the error.
pub fn pull_until_error(consumer: &Consumer) -> (Vec<Event>, Error) {
    let deadline = Instant::now() + LONG_WAIT;
    let mut events = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "no lost producer reported");
        match consumer.pull().wait_timeout(POLL) {
            Ok(Some(ev)) => events.push(ev),
            Ok(None) => {}
            Err(e) => return (events, e),
        }
    }
}

/// Case: a producer that stops renewing its lease (as a killed process does) is reported once,
/// with this process's id and its last stored id, after every event it stored.
pub fn a_producer_that_stops_renewing_is_reported_after_its_events() {
    let (driver, _guard) = test_driver();
    let topic = new_topic(&driver, "liveness-lost", one_partition());
    let producer = topic.producer().name("doomed").build().unwrap();
    if skipped(&topic, &producer) {
        return;
    }
    for i in 0..5 {
        producer.push(json!({"event_num": i}), DataView::from(data_string(i)));
    }
    flush(&producer);
    // The lease records the last id at its next renewal.
    wait_for_lease(&topic, "id 4 stored", |p| {
        p.name == "doomed" && p.last_ids.get(&0) == Some(&4)
    });
    assert!(producer.stop_liveness_renewal());
    let consumer = topic
        .consumer("liveness-watcher")
        .liveness_timeout(LIVENESS)
        .build()
        .unwrap();
    let (events, error) = pull_until_error(&consumer);
    let events: Vec<u64> = events.iter().map(event_num).collect();
    assert_eq!(
        events,
        (0..5).collect::<Vec<_>>(),
        "events before the error"
    );
    match &error {
        Error::ProducerLost(lost) => {
            assert_eq!(lost.name, "doomed");
            assert_eq!(lost.pid, std::process::id());
            assert_eq!(lost.last_ids, "partition 0: 4");
            assert!(lost.silent >= LIVENESS, "{error}");
        }
        other => panic!("expected ProducerLost, got {other}"),
    }
    // Reported once: the next pulls time out like any other.
    assert!(consumer.pull().wait_timeout(POLL * 5).unwrap().is_none());
}

/// Case: a producer that is alive but quiet for longer than the consumer's liveness timeout
/// is never reported, and its clean end withdraws its lease.
pub fn a_quiet_producer_that_is_alive_is_never_reported() {
    let (driver, _guard) = test_driver();
    let topic = new_topic(&driver, "liveness-quiet", one_partition());
    let producer = topic.producer().name("quiet").build().unwrap();
    if skipped(&topic, &producer) {
        return;
    }
    let writer_topic = topic.clone();
    let writer = std::thread::spawn(move || {
        let producer = producer;
        for i in 0..2 {
            // Quiet for longer than the consumer waits before looking at the leases.
            std::thread::sleep(LIVENESS + Duration::from_millis(1500));
            wait_id(
                &producer.push(json!({"event_num": i}), DataView::from(data_string(i))),
                "push",
            );
        }
        producer.end_of_stream(0, 1).wait_timeout(WAIT).unwrap();
        drop(producer);
        drop(writer_topic);
    });
    let consumer = topic
        .consumer("liveness-patient")
        .liveness_timeout(LIVENESS)
        .build()
        .unwrap();
    let deadline = Instant::now() + LONG_WAIT;
    let mut events = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "the stream did not end");
        match consumer.pull().wait_timeout(POLL) {
            Ok(Some(ev)) if ev.is_end_of_stream() => break,
            Ok(Some(ev)) => events.push(event_num(&ev)),
            Ok(None) => {}
            Err(e) => panic!("a live producer was reported: {e}"),
        }
    }
    writer.join().unwrap();
    assert_eq!(events, vec![0, 1]);
    // Leases are read back as the driver makes them visible (a Kafka side topic is tailed).
    let deadline = Instant::now() + WAIT;
    loop {
        let left: Vec<_> = topic
            .backend()
            .producers()
            .unwrap()
            .unwrap()
            .into_iter()
            .filter(|(p, _)| p.name == "quiet")
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a clean end leaves its lease: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
