//! Acknowledgements and restart.

use super::*;

/// Case: acknowledged position survives consumer restart.
pub fn acknowledged_position_survives_consumer_restart() {
    const PER_PARTITION: u64 = 20;
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "ack-restart", json!({"num_partitions": 2}));
    assert_eq!(topic.num_partitions(), 2);
    let producer = topic.producer().build().unwrap();
    let mut futures = Vec::new();
    for i in 0..PER_PARTITION {
        for p in 0..2usize {
            futures.push((
                p,
                i,
                producer.push_to(json!({"partition": p, "event_num": i}), DataView::new(), p),
            ));
        }
    }
    flush(&producer);
    for (p, i, f) in &futures {
        assert_eq!(wait_id(f, "ack setup"), *i, "partition {p}");
    }
    drop(producer);

    // Acknowledge event 6 of partition 0 and event 3 of partition 1; acknowledging an earlier
    // event afterwards must not move the position back.
    let acked = [6u64, 3];
    {
        let consumer = topic.consumer("restart").build().unwrap();
        let events = pull_n(&consumer, 2 * PER_PARTITION as usize);
        assert_contiguous_ids(&events, |_| 0);
        let find = |p: usize, id: u64| {
            events
                .iter()
                .find(|e| e.partition() == p && e.id() == id)
                .unwrap_or_else(|| panic!("event {p}/{id} not delivered"))
        };
        find(0, acked[0]).acknowledge().unwrap();
        find(1, acked[1]).acknowledge().unwrap();
        find(0, 2).acknowledge().unwrap();
        Event::end_of_stream(0).acknowledge().unwrap();
    }

    // Same name: resumes right after the acknowledged events.
    {
        let consumer = topic.consumer("restart").build().unwrap();
        let expected = 2 * PER_PARTITION - (acked[0] + 1) - (acked[1] + 1);
        let events = pull_n(&consumer, expected as usize);
        let counts = assert_contiguous_ids(&events, |p| acked[p] + 1);
        assert_eq!(counts.get(&0), Some(&(PER_PARTITION - acked[0] - 1)));
        assert_eq!(counts.get(&1), Some(&(PER_PARTITION - acked[1] - 1)));
        for ev in &events {
            assert_eq!(field(ev, "partition"), ev.partition() as u64);
            assert_eq!(event_num(ev), ev.id());
        }
        assert_no_more_events(&consumer, 3);
        // Acknowledge the last event of each partition.
        for p in 0..2 {
            events
                .iter()
                .rfind(|e| e.partition() == p)
                .unwrap()
                .acknowledge()
                .unwrap();
        }
    }

    // Everything acknowledged: nothing is delivered again to that name.
    {
        let consumer = topic.consumer("restart").build().unwrap();
        assert_no_more_events(&consumer, 5);
    }

    // Another name starts from the beginning of every partition.
    {
        let consumer = topic.consumer("someone-else").build().unwrap();
        let events = pull_n(&consumer, 2 * PER_PARTITION as usize);
        let counts = assert_contiguous_ids(&events, |_| 0);
        assert_eq!(counts.get(&0), Some(&PER_PARTITION));
        assert_eq!(counts.get(&1), Some(&PER_PARTITION));
        assert_no_more_events(&consumer, 3);
    }
}
