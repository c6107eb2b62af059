//! DataSelectionTest: one 52-byte event in two segments (a..z, A..Z).

use super::*;

/// Produces the alphabet event, consumes it with `selector` (and an allocator of exactly the
/// selected size in `segments` pieces, or the library's memory when `segments == 0`), checks the
/// selector saw the full 52-byte descriptor and returns the event.
pub fn consume_alphabet(
    selector: impl Fn(&DataDescriptor) -> DataDescriptor + Send + Sync + 'static,
    segments: usize,
) -> Event {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "data-selection", json!({}));
    let producer = topic.producer().build().unwrap();
    let data = DataView::from_segments([&ALPHA[..26], &ALPHA[26..]].map(|s| s.to_vec()));
    assert_eq!(data.size(), 52);
    assert_eq!(data.segments().len(), 2);
    let f = producer.push(json!({"kind": "alphabet"}), data);
    flush(&producer);
    wait_id(&f, "alphabet");
    drop(producer);

    let seen_size = Arc::new(AtomicU64::new(u64::MAX));
    let seen = seen_size.clone();
    let mut builder = topic.consumer("selector").data_selector(move |md, d| {
        assert_eq!(md.json()["kind"], "alphabet");
        seen.store(d.size(), AtomicOrdering::SeqCst);
        selector(d)
    });
    if segments > 0 {
        builder = builder.data_allocator(move |_, d| {
            let size = d.size() as usize;
            let mut alloc = Allocation::none();
            let chunk = size.div_ceil(segments);
            let mut left = size;
            while left > 0 {
                let n = chunk.min(left);
                alloc.push(vec![0u8; n]);
                left -= n;
            }
            alloc
        });
    }
    let consumer = builder.build().unwrap();
    let ev = pull_n(&consumer, 1).remove(0);
    assert_eq!(ev.metadata().json()["kind"], "alphabet");
    assert_eq!(ev.id(), 0);
    assert_no_more_events(&consumer, 3);
    assert_eq!(seen_size.load(AtomicOrdering::SeqCst), 52);
    ev
}

/// Case: data selection no data.
pub fn data_selection_no_data() {
    let ev = consume_alphabet(|_| DataDescriptor::none(), 1);
    assert_eq!(ev.data().size(), 0);
    assert!(ev.data().segments().is_empty());
}

/// Case: data selection whole data.
pub fn data_selection_whole_data() {
    let ev = consume_alphabet(|d| d.clone(), 1);
    assert_eq!(ev.data().size(), 52);
    assert_eq!(ev.data().segments().len(), 1);
    assert_eq!(ev.data().to_vec(), ALPHA);
}

/// Case: data selection sub view.
pub fn data_selection_sub_view() {
    let ev = consume_alphabet(|d| d.sub_view(13, 26), 1);
    assert_eq!(ev.data().segments().len(), 1);
    assert_eq!(ev.data().to_vec(), b"nopqrstuvwxyzABCDEFGHIJKLM");
}

/// Case: data selection strided view.
pub fn data_selection_strided_view() {
    let ev = consume_alphabet(|d| d.strided_view(13, 3, 4, 2).unwrap(), 1);
    assert_eq!(ev.data().size(), 12);
    assert_eq!(ev.data().to_vec(), b"nopqtuvwzABC");
}

/// Case: data selection unstructured view.
pub fn data_selection_unstructured_view() {
    let ev = consume_alphabet(
        |d| d.unstructured_view(&[(3, 6), (15, 4), (27, 8)]).unwrap(),
        1,
    );
    assert_eq!(ev.data().size(), 18);
    assert_eq!(ev.data().to_vec(), b"defghipqrsBCDEFGHI");
}

/// Case: data selection stacked views compose.
pub fn data_selection_stacked_views_compose() {
    let ev = consume_alphabet(|d| d.sub_view(13, 26).sub_view(2, 5), 1);
    assert_eq!(ev.data().to_vec(), &ALPHA[15..20]);
    let ev = consume_alphabet(|d| d.sub_view(10, 40).strided_view(0, 4, 2, 3).unwrap(), 1);
    assert_eq!(ev.data().to_vec(), b"klpquvzA");
}

/// Case: data selection without allocator uses library memory.
pub fn data_selection_without_allocator_uses_library_memory() {
    let ev = consume_alphabet(|d| d.sub_view(13, 26), 0);
    assert_eq!(ev.data().to_vec(), b"nopqrstuvwxyzABCDEFGHIJKLM");
}

/// Case: data selection into several allocated segments.
pub fn data_selection_into_several_allocated_segments() {
    let ev = consume_alphabet(
        |d| d.unstructured_view(&[(3, 6), (15, 4), (27, 8)]).unwrap(),
        3,
    );
    assert_eq!(ev.data().segments().len(), 3);
    assert_eq!(ev.data().to_vec(), b"defghipqrsBCDEFGHI");
    let ev = consume_alphabet(|d| d.clone(), 2);
    assert_eq!(ev.data().segments().len(), 2);
    assert_eq!(ev.data().to_vec(), ALPHA);
}
