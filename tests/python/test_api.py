"""The API surface: drivers, topics, producers, consumers, events, descriptors, errors."""

import json
import uuid

import pytest

from diaspora_stream import api
from diaspora_stream.api import (
    DataDescriptor,
    Driver,
    Exception as DiasporaException,
    InvalidArgument,
    Ordering,
    PartitionSelector,
    Serializer,
    Validator,
)


def produce(topic, items, name="p"):
    producer = topic.producer(name)
    ids = [producer.push(md, data).wait(timeout_ms=5000) for md, data in items]
    assert producer.flush().wait(timeout_ms=10000)
    return ids


def consume(topic, n, name="c", **kwargs):
    consumer = topic.consumer(name, **kwargs)
    events = consumer.pull_many(n, timeout_ms=10000)
    while len(events) < n:
        more = consumer.pull_many(n - len(events), timeout_ms=10000)
        assert more, f"only {len(events)} of {n} events arrived"
        events += more
    return consumer, events


def test_exceptions_are_runtime_errors_and_bad_arguments_also_value_errors():
    assert issubclass(DiasporaException, RuntimeError)
    assert issubclass(InvalidArgument, DiasporaException)
    assert issubclass(InvalidArgument, ValueError)
    assert api.ClientException is DiasporaException


def test_unknown_driver_and_library_name_what_failed():
    with pytest.raises(DiasporaException, match="nosuchdriver"):
        Driver(backend="nosuchdriver")
    with pytest.raises(DiasporaException, match="libunknown"):
        Driver(backend="unknown:libunknown.so")


def test_topic_lifecycle(driver, topic_args):
    alpha = f"alpha-{uuid.uuid4().hex[:8]}"
    assert not driver.topic_exists(alpha)
    with pytest.raises(DiasporaException, match=alpha):
        driver.open_topic(alpha)
    driver.create_topic(alpha, options=topic_args)
    assert driver.topic_exists(alpha)
    with pytest.raises(DiasporaException, match="already exists"):
        driver.create_topic(alpha, options=topic_args)
    topic = driver.open_topic(alpha)
    assert topic.name == alpha
    assert len(topic.partitions) == 1
    listed = driver.list_topics()
    assert isinstance(listed[alpha], dict)


def test_topic_with_components_and_partitions(driver, topic_args):
    schema = {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}
    name = f"checked-{uuid.uuid4().hex[:8]}"
    driver.create_topic(
        name,
        options=dict(topic_args, num_partitions=3),
        validator=Validator.from_metadata(type="schema", schema=schema),
    )
    topic = driver.open_topic(name)
    assert len(topic.partitions) == 3
    assert topic.validator.metadata["type"] == "schema"
    producer = topic.producer("p")
    assert producer.push({"x": 1}).wait(timeout_ms=5000) is not None
    with pytest.raises(DiasporaException):
        producer.push({"y": 1}).wait(timeout_ms=5000)


def test_component_factories():
    assert isinstance(Validator.from_metadata(), Validator)
    assert isinstance(Serializer.from_metadata(type="default"), Serializer)
    assert isinstance(PartitionSelector.from_metadata(), PartitionSelector)
    with pytest.raises(ValueError):
        Validator.from_metadata(type="schema", schema="not-an-object")
    with pytest.raises(DiasporaException, match="nosuch"):
        Serializer.from_metadata(type="nosuch")


def test_producer_and_consumer_properties(driver, topic):
    pool = driver.make_thread_pool(2)
    assert pool.thread_count == 2
    assert driver.default_thread_pool == driver.default_thread_pool
    producer = topic.producer(
        "prod", batch_size=16, max_num_batches=3, ordering=Ordering.Loose, thread_pool=pool
    )
    assert (producer.name, producer.batch_size, producer.max_num_batches) == ("prod", 16, 3)
    assert producer.topic is topic and producer.thread_pool == pool
    assert producer.ordering == Ordering.Loose
    assert topic.producer("q").batch_size == api.AdaptiveBatchSize
    consumer = topic.consumer("cons", batch_size=8, targets=[0])
    assert (consumer.name, consumer.batch_size, consumer.targets) == ("cons", 8, [0])
    assert consumer.topic is topic
    assert consumer.data_selector is None and consumer.data_allocator is None
    with pytest.raises(ValueError):
        topic.producer("bad", max_num_batches=0)


def test_metadata_and_data_round_trip(topic):
    items = [
        ({"i": i, "name": f"e{i}", "nested": {"l": [1, 2.5, None, True]}}, bytes([i]) * i)
        for i in range(20)
    ]
    assert produce(topic, items) == list(range(20))
    _, events = consume(topic, 20)
    for i, ev in enumerate(events):
        assert ev.event_id == i
        assert ev.partition_index == 0 and isinstance(ev.partition, dict)
        assert ev.metadata == items[i][0]
        assert b"".join(bytes(m) for m in ev.data) == items[i][1]


def test_metadata_as_json_text_is_parsed_and_bad_text_refused(topic):
    producer = topic.producer("p")
    producer.push('{"a": [1, 2]}').wait(timeout_ms=5000)
    with pytest.raises(InvalidArgument, match="not JSON"):
        producer.push("{not json")
    with pytest.raises(InvalidArgument):
        producer.push({"x": float("nan")})
    producer.flush().wait(timeout_ms=5000)
    _, events = consume(topic, 1)
    assert events[0].metadata == {"a": [1, 2]}


def test_data_as_a_list_of_buffers_is_concatenated(topic):
    produce(topic, [({}, [b"abc", bytearray(b"def"), memoryview(b"gh")])])
    _, events = consume(topic, 1)
    assert b"".join(bytes(m) for m in events[0].data) == b"abcdefgh"


def test_event_data_views_are_read_only(topic):
    produce(topic, [({}, b"immutable")])
    _, events = consume(topic, 1)
    view = events[0].data[0]
    assert view.readonly
    with pytest.raises(TypeError):
        view[0] = 1


def test_push_many_and_pull_many(topic):
    producer = topic.producer("p")
    fut = producer.push_many([({"i": i}, b"x" * i) for i in range(100)] + [{"meta": "only"}])
    assert len(fut) == 101
    assert fut.wait(timeout_ms=10000) == list(range(101))
    assert fut.completed
    producer.flush().wait(timeout_ms=5000)
    _, events = consume(topic, 101)
    assert [e.metadata.get("i") for e in events[:100]] == list(range(100))
    assert events[100].metadata == {"meta": "only"}


def test_push_many_reads_metadata_text_of_every_form(topic):
    producer = topic.producer("p")
    texts = [
        '{"a":[1,2.5],"b":"x\\n"}',  # already compact: stored as written
        ' { "b" : 1 , "a" : [ 1.50 ] } ',  # spaces, keys out of order, 1.50: rewritten
        '"\\u00e9t\\u00e9 \u00e9t\u00e9"',  # escaped and raw non-ASCII text
        '{"k":"\U0001f600"}',
    ]
    fut = producer.push_many([(t, b"d") for t in texts] + [texts[0], {"dict": True}])
    assert fut.wait(timeout_ms=10000) == list(range(6))
    # A text that is not JSON, or a str that is not valid Unicode, refuses the whole call.
    with pytest.raises(InvalidArgument, match="not JSON"):
        producer.push_many([("{}", b""), ("{bad", b""), ("{}", b"")])
    with pytest.raises(UnicodeEncodeError):
        producer.push_many([('"\\ud800"', b""), ('"\ud800"', b"")])
    producer.flush().wait(timeout_ms=5000)
    _, events = consume(topic, 6)
    expected = [json.loads(t) for t in texts] + [json.loads(texts[0]), {"dict": True}]
    assert [e.metadata for e in events] == expected
    assert [b"".join(bytes(m) for m in e.data) for e in events] == [b"d"] * 4 + [b""] * 2
    # Nothing of the refused calls was stored.
    consumer = topic.consumer("after", start="beginning")
    assert len(consumer.pull_many(100, timeout_ms=500)) == 6


def test_selections_sub_strided_unstructured(topic):
    payload = bytes(range(256)) * 4
    produce(topic, [({}, payload)])
    cases = {
        "sub": (lambda d: d.make_sub_view(offset=10, size=20), payload[10:30]),
        "strided": (
            lambda d: d.make_stride_view(offset=1, num_blocks=4, block_size=3, gap_size=5),
            b"".join(payload[1 + 8 * k : 4 + 8 * k] for k in range(4)),
        ),
        "unstructured": (
            lambda d: d.make_unstructured_view(segments=[(0, 2), (100, 3), (1000, 4)]),
            payload[0:2] + payload[100:103] + payload[1000:1004],
        ),
        "none": (lambda d: None, b""),
    }
    for name, (select, expected) in cases.items():
        consumer = topic.consumer(f"sel-{name}", data_selector=lambda md, d, s=select: s(d))
        ev = consumer.pull().wait(timeout_ms=10000)
        assert ev is not None, name
        assert b"".join(bytes(m) for m in ev.data) == expected, name


def test_allocator_gets_the_selected_size_and_its_buffers_are_the_data(topic):
    produce(topic, [({"n": 1}, b"hello world")])
    seen = []

    def allocator(metadata, descriptor):
        seen.append((metadata, descriptor.size))
        return [bytearray(descriptor.size)]

    consumer = topic.consumer("c", data_selector=api.FullDataSelector, data_allocator=allocator)
    ev = next(iter(consumer))
    assert seen == [({"n": 1}, 11)]
    assert isinstance(ev.data, list) and isinstance(ev.data[0], bytearray)
    assert ev.data[0] == b"hello world"
    assert consumer.data_allocator is allocator


def test_byte_array_allocator(topic):
    produce(topic, [({}, b"abc")])
    consumer = topic.consumer(
        "c", data_selector=api.FullDataSelector, data_allocator=api.ByteArrayAllocator
    )
    ev = consumer.pull().wait(timeout_ms=10000)
    assert ev.data == [bytearray(b"abc")]


def test_descriptor_views():
    d = DataDescriptor("loc", 1024)
    assert (d.size, d.location) == (1024, "loc")
    assert DataDescriptor().size == 0
    assert d.make_sub_view(offset=900, size=200).size == 124
    assert d.make_sub_view(offset=1200, size=10).size == 0
    assert d.make_sub_view(offset=100, size=200).flatten() == [(100, 200)]
    s = d.make_stride_view(offset=0, num_blocks=4, block_size=64, gap_size=192)
    assert s.size == 256 and s.flatten() == [(0, 64), (256, 64), (512, 64), (768, 64)]
    with pytest.raises(InvalidArgument):
        d.make_stride_view(offset=0, num_blocks=4, block_size=128, gap_size=192)
    with pytest.raises(InvalidArgument):
        d.make_unstructured_view(segments=[(0, 200), (100, 200)])
    with pytest.raises(InvalidArgument):
        d.make_unstructured_view(segments=[(1000, 200)])


def test_acknowledged_events_are_not_delivered_again(topic):
    produce(topic, [({"i": i}, None) for i in range(10)])
    consumer, events = consume(topic, 4, name="resume")
    events[3].acknowledge()
    consumer.close()
    _, rest = consume(topic, 6, name="resume")
    assert [e.metadata["i"] for e in rest] == list(range(4, 10))


def test_start_positions(topic):
    produce(topic, [({"i": i}, None) for i in range(5)])
    _, events = consume(topic, 5, name="b", start="beginning")
    assert [e.event_id for e in events] == list(range(5))
    late = topic.consumer("e", start="end")
    assert late.pull().wait(timeout_ms=300) is None
    produce(topic, [({"i": 5}, None)])
    ev = late.pull().wait(timeout_ms=10000)
    assert ev.metadata == {"i": 5}
    with pytest.raises(InvalidArgument):
        topic.consumer("x", start="sideways")


def test_end_of_stream_ends_iteration(topic):
    producer = topic.producer("p")
    for i in range(3):
        producer.push({"i": i})
    producer.end_of_stream().wait(timeout_ms=10000)
    consumer = topic.consumer("c")
    got = [e.metadata["i"] for e in consumer.events(timeout_ms=10000)]
    assert got == [0, 1, 2]
    marker = consumer.pull().wait(timeout_ms=10000)
    assert marker.event_id is None and marker.is_end_of_stream


def test_steps(topic):
    producers = [topic.producer(f"sim{r}", group=(r, 2)) for r in range(2)]
    consumer = topic.consumer("analysis")
    for r, p in enumerate(producers):
        p.push({"step": 0, "rank": r})
    producers[0].end_step(0).wait(timeout_ms=10000)
    # One of the two producers closed step 0: not complete yet.
    assert not consumer.wait_step(0, timeout_ms=300)
    producers[1].end_step(0).wait(timeout_ms=10000)
    assert consumer.wait_step(0, timeout_ms=10000)
    assert consumer.completed_step == 0
    got = []
    for ev in consumer.events(timeout_ms=2000):
        got.append(
            ("marker", ev.completed_step)
            if ev.completed_step is not None
            else ("event", ev.metadata["rank"])
        )
        if ev.completed_step is not None:
            break
    # Both snapshots of step 0 come before the marker saying it is complete.
    assert sorted(got[:2]) == [("event", 0), ("event", 1)] and got[2] == ("marker", 0)
    # A step that can no longer complete: the wait ends with the stream, even without a timeout.
    for r, p in enumerate(producers):
        p.end_of_stream(r, 2).wait(timeout_ms=10000)
    assert consumer.wait_step(1) is False


def test_process_stops_on_stop_iteration(topic):
    produce(topic, [({"i": i}, None) for i in range(10)])
    consumer = topic.consumer("c")
    seen = []

    def processor(event):
        seen.append(event.metadata["i"])
        if len(seen) == 4:
            raise StopIteration

    assert consumer.process(processor, timeout_ms=5000) == 4
    assert seen == [0, 1, 2, 3]
    assert consumer.process(lambda e: None, timeout_ms=200, max_events=3) == 3


def test_futures_time_out_and_can_be_waited_again(topic):
    consumer = topic.consumer("c")
    fut = consumer.pull()
    assert fut.wait(timeout_ms=100) is None
    assert not fut.completed()
    produce(topic, [({"late": True}, None)])
    ev = fut.wait(timeout_ms=10000)
    assert ev.metadata == {"late": True}


def test_closed_objects_raise(topic):
    producer = topic.producer("p")
    producer.close()
    with pytest.raises(DiasporaException, match="closed"):
        producer.push({})
    with topic.consumer("c") as consumer:
        pass
    with pytest.raises(DiasporaException, match="closed"):
        consumer.pull()


def test_json_values_of_every_kind(topic):
    md = {"s": "é", "i": -(2**63), "u": 2**64 - 1, "f": 1.5, "b": False, "n": None, "l": [[]]}
    produce(topic, [(md, None), (json.dumps([1, "two"]), None)])
    _, events = consume(topic, 2)
    assert events[0].metadata == md
    assert events[1].metadata == [1, "two"]
    with pytest.raises(InvalidArgument, match="64 bits"):
        topic.producer("p").push({"big": 2**70})
