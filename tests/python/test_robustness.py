"""Zero copy, large events, callbacks that raise, interrupted waits."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np
import pytest

from diaspora_stream import _native
from diaspora_stream.api import Driver, Exception as DiasporaException


def memory_topic():
    driver = Driver(backend="memory", options={"namespace": f"zc-{uuid.uuid4()}"})
    driver.create_topic("t")
    return driver, driver.open_topic("t")


def test_pushed_buffer_is_shared_not_copied():
    # The memory driver stores the pushed memory itself: a change made to the numpy array after
    # the flush shows in what the consumer reads, which a copy anywhere on the way would hide.
    _, topic = memory_topic()
    array = np.arange(1000, dtype=np.float64)
    producer = topic.producer("p")
    producer.push({"n": 1000}, array).wait(timeout_ms=5000)
    producer.flush().wait(timeout_ms=5000)
    array[:] = -1.0
    ev = topic.consumer("c").pull().wait(timeout_ms=5000)
    seen = np.frombuffer(ev.data[0], dtype=np.float64)
    assert (seen == -1.0).all()
    # And the consumer's view is the array's own memory.
    assert seen.__array_interface__["data"][0] == array.__array_interface__["data"][0]


def test_producer_holds_a_reference_until_stored(tmp_path):
    driver = Driver(backend="files", options={"root_path": str(tmp_path)})
    driver.create_topic("t")
    producer = driver.open_topic("t").producer("p", batch_size=1000)
    buf = bytearray(b"x" * 4096)
    before = sys.getrefcount(buf)
    producer.push({}, buf)
    # Held by the pending event (a buffer view keeps its exporter alive), not copied.
    assert sys.getrefcount(buf) == before + 1
    with pytest.raises(BufferError):
        buf.append(0)  # a bytearray with an exported buffer cannot be resized
    producer.flush().wait(timeout_ms=5000)
    _native._pending_buffer_releases(True)
    assert sys.getrefcount(buf) == before
    buf.append(0)


def test_allocator_lands_data_in_caller_numpy_arrays(tmp_path):
    driver = Driver(backend="files", options={"root_path": str(tmp_path)})
    driver.create_topic("t")
    topic = driver.open_topic("t")
    producer = topic.producer("p")
    producer.push({"shape": [256]}, np.arange(256, dtype=np.int32))
    producer.flush().wait(timeout_ms=5000)
    targets = []

    def allocator(metadata, descriptor):
        a = np.zeros(metadata["shape"][0], dtype=np.int32)
        targets.append(a)
        return [a]

    ev = topic.consumer("c", data_allocator=allocator).pull().wait(timeout_ms=5000)
    assert ev.data[0] is targets[0]
    assert (targets[0] == np.arange(256)).all()


@pytest.mark.parametrize("backend", ["memory", "files"])
def test_large_event_256_mib(backend, tmp_path):
    options = {"root_path": str(tmp_path)} if backend == "files" else {"namespace": str(tmp_path)}
    driver = Driver(backend=backend, options=options)
    driver.create_topic("big")
    topic = driver.open_topic("big")
    data = np.random.default_rng(7).integers(0, 255, size=256 << 20, dtype=np.uint8)
    producer = topic.producer("p")
    assert producer.push({"size": data.nbytes}, data).wait(timeout_ms=120_000) == 0
    assert producer.flush().wait(timeout_ms=120_000)
    ev = topic.consumer("c").pull().wait(timeout_ms=120_000)
    got = (
        np.frombuffer(ev.data[0], dtype=np.uint8)
        if len(ev.data) == 1
        else np.frombuffer(b"".join(bytes(m) for m in ev.data), dtype=np.uint8)
    )
    assert got.size == data.size and np.array_equal(got, data)


def test_exceptions_raised_by_callbacks_reach_the_caller():
    _, topic = memory_topic()
    producer = topic.producer("p")
    for i in range(3):
        producer.push({"i": i}, b"data")
    producer.flush().wait(timeout_ms=5000)

    class Boom(ValueError):
        pass

    def selector(metadata, descriptor):
        if metadata["i"] == 1:
            raise Boom("selector refused event 1")
        return descriptor

    consumer = topic.consumer("sel", data_selector=selector)
    with pytest.raises(Boom, match="event 1"):
        for _ in range(3):
            consumer.pull().wait(timeout_ms=5000)

    def allocator(metadata, descriptor):
        raise KeyError("no memory for you")

    consumer = topic.consumer("alloc", data_allocator=allocator)
    with pytest.raises(KeyError, match="no memory"):
        consumer.pull().wait(timeout_ms=5000)

    consumer = topic.consumer("ro", data_allocator=lambda md, d: [bytes(d.size)])
    with pytest.raises(DiasporaException, match="writable"):
        consumer.pull().wait(timeout_ms=5000)

    consumer = topic.consumer("wrong", data_selector=lambda md, d: "not a descriptor")
    with pytest.raises(ValueError, match="DataDescriptor"):
        consumer.pull().wait(timeout_ms=5000)
    # The process is fine and a well-behaved consumer still reads everything.
    events = topic.consumer("ok").pull_many(3, timeout_ms=5000)
    assert [e.metadata["i"] for e in events] == [0, 1, 2]


def test_ctrl_c_interrupts_a_wait(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from diaspora_stream.api import Driver
        d = Driver(backend="files", options={{"root_path": {str(tmp_path)!r}}})
        d.create_topic("quiet")
        c = d.open_topic("quiet").consumer("c")
        print("waiting", flush=True)
        try:
            c.pull().wait()  # no timeout: only Ctrl-C ends it
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(7)
        """)
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "waiting"
    time.sleep(0.3)
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 7, err
    assert "interrupted" in out
    assert time.monotonic() - start < 5


def test_wait_releases_the_gil(tmp_path):
    # A thread blocked in wait() must let another Python thread run.
    import threading

    driver = Driver(backend="files", options={"root_path": str(tmp_path)})
    driver.create_topic("t")
    topic = driver.open_topic("t")
    consumer = topic.consumer("c")
    result = {}
    t = threading.Thread(
        target=lambda: result.setdefault("ev", consumer.pull().wait(timeout_ms=10000))
    )
    t.start()
    counted = 0
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        counted += 1
    producer = topic.producer("p")
    producer.push({"go": True}).wait(timeout_ms=5000)
    producer.flush().wait(timeout_ms=5000)
    t.join(10)
    assert counted > 1000 and result["ev"].metadata == {"go": True}


def test_builtin_drivers_listed():
    names = _native.builtin_drivers()
    assert "files" in names and "memory" in names
    assert os.environ.get("DIASPORA_REQUIRE_KAFKA") != "1" or "kafka" in names


def test_bad_data_is_refused_with_a_clear_error():
    _, topic = memory_topic()
    producer = topic.producer("p")
    with pytest.raises(DiasporaException, match="contiguous"):
        producer.push({}, np.arange(10)[::2])  # a strided view
    with pytest.raises(DiasporaException, match="int object"):
        producer.push({}, 42)  # no buffer protocol
    with pytest.raises(ValueError, match="callable"):
        topic.consumer("c", data_selector="not callable")
