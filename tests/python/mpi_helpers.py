"""The collective helpers of diaspora_stream.mpi from Python alone, under mpiexec -n 2.

Run by scripts/test-python.sh: both ranks produce to their own partition, flush, close two steps
and end their streams with the helpers; rank 0 then reads everything back and checks that the
steps and the end of the stream arrive after their events. Prints "mpi helpers: OK" on rank 0.
"""

import shutil
import sys
import tempfile

from mpi4py import MPI

from diaspora_stream import mpi as dmpi
from diaspora_stream.api import Driver


def main():
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    root = comm.bcast(tempfile.mkdtemp(prefix="dmpi-") if rank == 0 else None, root=0)
    driver = Driver(backend="files", options={"root_path": root})
    topic = dmpi.create_or_open_topic(comm, driver, "t", {"num_partitions": size})
    mine = dmpi.producer_partitions(comm, topic)
    assert mine == [rank], mine
    together = comm.allgather(dmpi.consumer_partitions(comm, topic))
    assert sorted(p for ps in together for p in ps) == list(range(size)), together
    producer = topic.producer(f"rank{rank}")
    for step in range(2):
        for i in range(5):
            producer.push({"rank": rank, "step": step, "i": i}, partition=rank)
        dmpi.flush(comm, producer)
        dmpi.end_step(comm, producer, step)
    dmpi.end_of_stream(comm, producer)
    comm.Barrier()
    if rank == 0:
        consumer = topic.consumer("check")
        assert consumer.wait_step(1, timeout_ms=30000)
        seen, steps = [], []
        for ev in consumer.events(timeout_ms=30000):
            if ev.completed_step is not None:
                steps.append(ev.completed_step)
                # Every event of the completed step came before its marker.
                done = [m for m in seen if m["step"] <= ev.completed_step]
                assert len(done) == 5 * size * (ev.completed_step + 1), (steps, len(done))
            else:
                seen.append(ev.metadata)
        assert len(seen) == 10 * size and steps == [0, 1], (len(seen), steps)
        print("mpi helpers: OK", flush=True)
        del consumer
    # Every rank's producer is closed before the folder goes: a producer withdraws its liveness
    # lease file when it closes, which would race with the removal.
    del producer
    comm.Barrier()
    if rank == 0:
        shutil.rmtree(root)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # every rank must stop, not only the failing one
        print(f"mpi helpers: rank {MPI.COMM_WORLD.Get_rank()}: {e!r}", file=sys.stderr)
        MPI.COMM_WORLD.Abort(1)
