//! The whole conformance kit of diaspora-stream against this driver: each test gets a new
//! driver over a fresh temporary `root_path`.

use diaspora_stream::Driver;
use diaspora_stream_conformance::{conformance_tests, Target};
use std::sync::Arc;

conformance_tests!(Target::with_temp_dir("{{crate_name}}", |dir| {
    let options = serde_json::json!({ "root_path": dir });
    Ok(Driver::from_backend(Arc::new(
        {{crate_name}}::{{crate_name | pascal_case}}Driver::new(&options)?,
    )))
}));

/// Two processes' worth of writers (two drivers, as two processes would open the topic) append
/// to one partition at once: every event is stored once, whole, with dense ids.
#[test]
fn concurrent_writers_share_a_partition() {
    let dir = tempfile::tempdir().unwrap();
    let options = serde_json::json!({ "root_path": dir.path() });
    {{crate_name}}::register();
    let first = Driver::new("{{crate_name}}", &options).unwrap();
    first
        .create_topic("shared", &serde_json::json!({ "num_partitions": 1 }))
        .unwrap();
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let options = options.clone();
            std::thread::spawn(move || {
                let driver = Driver::new("{{crate_name}}", &options).unwrap();
                let topic = driver.open_topic("shared").unwrap();
                let producer = topic.producer().build().unwrap();
                for i in 0..500u64 {
                    let data = diaspora_stream::DataView::from(vec![w as u8; (i % 7) as usize]);
                    producer.push(serde_json::json!({ "w": w, "i": i }), data);
                }
                producer.flush().wait().unwrap();
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let topic = first.open_topic("shared").unwrap();
    let consumer = topic.consumer("check").build().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for (n, event) in consumer
        .iter(std::time::Duration::from_secs(30))
        .enumerate()
        .take(1000) {
        let event = event.unwrap();
        assert_eq!(event.id(), n as u64);
        let m = event.metadata().json();
        let (w, i) = (m["w"].as_u64().unwrap(), m["i"].as_u64().unwrap());
        assert_eq!(event.data().to_vec(), vec![w as u8; (i % 7) as usize]);
        assert!(seen.insert((w, i)), "event {w}/{i} twice");
    }
    assert_eq!(seen.len(), 1000);
}
