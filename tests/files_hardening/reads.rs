//! Reads into application buffers, partial selections, pulls, panicking data owners

use super::helpers::data_of;
use super::helpers::driver;
use super::helpers::pfile;
use super::helpers::produce;
use super::*;

#[test]
fn data_read_into_application_buffers_is_verified_too() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("t", &json!({})).unwrap();
    produce(&d.open_topic("t").unwrap(), 0..6);
    let at: u64 = (0..4).map(|i| data_of(i).len() as u64).sum::<u64>() + 2;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(pfile(tmp.path(), "t", 0, "data"))
        .unwrap();
    f.write_all_at(&[0x5A], at).unwrap();
    let topic = d.open_topic("t").unwrap();
    // With an allocator the data goes straight into the application's buffers (several events
    // read at once); a partial selection of the damaged event is not checked, a whole one is.
    for whole in [true, false] {
        let consumer = topic
            .consumer("")
            .data_selector(move |_, full| {
                if whole {
                    full.clone()
                } else {
                    full.sub_view(0, 1)
                }
            })
            .data_allocator(|_, sel| {
                diaspora_stream::Allocation::single(vec![0u8; sel.size() as usize])
            })
            .build()
            .unwrap();
        let mut got = Vec::new();
        let mut err = None;
        loop {
            match consumer.pull().wait_timeout(Duration::from_millis(300)) {
                Ok(Some(ev)) => got.push(ev.data().to_vec()),
                Ok(None) => break,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        for (i, data) in got.iter().enumerate() {
            let want = data_of(i as u64);
            assert_eq!(data[..], want[..data.len()], "event {i}");
        }
        if whole {
            assert_eq!(got.len(), 4);
            let msg = err.expect("the damaged event is reported").to_string();
            assert!(
                msg.contains("checksum mismatch in the data of event 4"),
                "{msg}"
            );
        } else {
            assert!(err.is_none(), "{err:?}");
            assert_eq!(got.len(), 6);
        }
    }
}

#[test]
fn selections_that_skip_the_start_of_events_read_the_right_bytes() {
    // Several small events read with one read: each event's selection starts inside it.
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("s", &json!({})).unwrap();
    produce(&d.open_topic("s").unwrap(), 0..20);
    let consumer = d
        .open_topic("s")
        .unwrap()
        .consumer("")
        .data_selector(|_, full| full.sub_view(1, full.size() - 3))
        .data_allocator(|_, sel| {
            diaspora_stream::Allocation::single(vec![0u8; sel.size() as usize])
        })
        .build()
        .unwrap();
    for i in 0..20u64 {
        let ev = consumer
            .pull()
            .wait_timeout(Duration::from_secs(5))
            .unwrap()
            .unwrap();
        assert_eq!(ev.metadata().json()["i"], i);
        let want = data_of(i);
        assert_eq!(
            ev.data().to_vec(),
            want[1..want.len() - 2].to_vec(),
            "event {i}"
        );
    }
}

#[test]
fn a_pull_with_no_time_to_wait_still_reads_what_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    d.create_topic("z", &json!({})).unwrap();
    produce(&d.open_topic("z").unwrap(), 0..3);
    let consumer = d.open_topic("z").unwrap().consumer("").build().unwrap();
    for i in 0..3u64 {
        let ev = consumer.pull().wait_timeout(Duration::ZERO).unwrap();
        assert_eq!(ev.expect("stored event").metadata().json()["i"], i);
    }
    assert!(consumer
        .pull()
        .wait_timeout(Duration::ZERO)
        .unwrap()
        .is_none());
    // `completed()` turns true by itself once an event is there.
    let f = consumer.pull();
    assert!(!f.completed());
    produce(&d.open_topic("z").unwrap(), 3..4);
    assert!(f.completed());
    assert_eq!(f.wait().unwrap().metadata().json()["i"], 3);
}

/// Data whose owner panics when the library drops it.
pub(crate) struct PanickyOwner(Vec<u8>);

impl AsRef<[u8]> for PanickyOwner {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for PanickyOwner {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("the application's data panicked when dropped");
        }
    }
}

#[test]
fn a_panic_on_a_pool_thread_fails_one_event_and_the_producer_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path());
    let validator = diaspora_stream::components::validator_from_config(&json!({
        "type": "schema",
        "schema": {"type": "object", "properties": {"bad": {"const": false}}}
    }))
    .unwrap();
    d.create_topic_with(
        "p",
        &json!({}),
        diaspora_stream::TopicComponents {
            validator,
            ..Default::default()
        },
    )
    .unwrap();
    let topic = d.open_topic("p").unwrap();
    let producer = topic
        .producer()
        .thread_pool(d.make_thread_pool(diaspora_stream::ThreadCount(1)))
        .build()
        .unwrap();
    // Rejected by the validator on the pool thread; dropping its data there panics.
    let data = DataView::from(bytes::Bytes::from_owner(PanickyOwner(vec![1, 2, 3])));
    let rejected = producer.push(json!({"bad": true}), data);
    let ok = producer.push(json!({"bad": false}), DataView::from("fine"));
    producer.flush().wait().unwrap();
    assert!(rejected.wait().is_err());
    assert_eq!(ok.wait().unwrap(), 0);
}
