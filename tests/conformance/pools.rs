//! Thread pools: the rayon pool (feature rayon).

#![cfg(feature = "rayon")]

use diaspora_stream::{BatchSize, DataView, Flow, NumEvents, ProcessOptions, ThreadPool};
use diaspora_stream_conformance::cases::*;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;

#[test]
fn producers_and_consumers_run_on_a_rayon_pool() {
    diaspora_stream_conformance::run(super::conformance_target, case);
}

fn case() {
    // The application's rayon pool runs the library's jobs: a producer and a consumer on it
    // store and deliver every event, in order, and their callbacks run on its threads.
    let (driver, _guard) = test_driver();
    let rayon = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .thread_name(|i| format!("app-rayon-{i}"))
            .build()
            .unwrap(),
    );
    let pool: Arc<dyn ThreadPool> = Arc::new(diaspora_stream::RayonThreadPool::new(rayon));
    let topic = new_topic(&driver, "rayon", one_partition());
    let producer = topic
        .producer()
        .batch_size(BatchSize::Fixed(16))
        .thread_pool(pool.clone())
        .build()
        .unwrap();
    let futures: Vec<_> = (0..500u64)
        .map(|i| producer.push(json!({"event_num": i}), DataView::from(vec![i as u8; 8])))
        .collect();
    flush(&producer);
    for (i, f) in futures.iter().enumerate() {
        assert_eq!(wait_id(f, "rayon push"), i as u64);
    }
    let consumer = topic.consumer("rayon").thread_pool(pool).build().unwrap();
    let threads = Arc::new(Mutex::new(BTreeSet::new()));
    let seen = threads.clone();
    let count = consumer
        .process(
            move |ev| {
                let name = std::thread::current().name().unwrap_or("").to_string();
                seen.lock().unwrap().insert(name);
                assert_eq!(ev.data().to_vec(), vec![event_num(&ev) as u8; 8]);
                Flow::Continue
            },
            ProcessOptions {
                max_events: NumEvents(500),
                timeout: Some(WAIT),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(count, 500);
    let names = threads.lock().unwrap().clone();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("app-rayon-")),
        "callbacks ran on {names:?}"
    );
}
