"""Python analysis ranks of the coupling job, next to Rust simulation ranks.

Run as the second program of an MPMD job, with the Rust coupling example as the first:

    mpirun -n 2 target/debug/examples/coupling --sims 2 --steps 20 --root DIR \\
         : -n 2 python examples/python/coupling_analysis.py --steps 20

The simulation ranks (Rust) write one snapshot of f64 values per step and close each step
together; these analysis ranks (Python, mpi4py + numpy) own disjoint partition sets, read every
4th value of each snapshot straight into numpy arrays (a strided data selection and a numpy data
allocator), check every value, analyse step k as soon as its marker says every simulation rank
closed it, and acknowledge. Rank 0 (a simulation rank) prints the job's summary from the totals
both languages contribute, and every rank exits non-zero if a snapshot was lost, duplicated,
corrupted or late.
"""

import argparse
import sys

import numpy as np
from mpi4py import MPI

from diaspora_stream import mpi as dmpi
from diaspora_stream.api import Driver


def field(rank, step, n):
    """The values of the snapshot of simulation rank ``rank`` at ``step`` (see coupling.rs)."""
    return (rank * 1_000_000 + step * 1000) + np.sqrt(np.arange(n, dtype=np.float64))


def select_every_4th(metadata, descriptor):
    # 8-byte blocks (one f64) with 24-byte gaps: every 4th value.
    return descriptor.make_stride_view(
        offset=0, num_blocks=descriptor.size // 32, block_size=8, gap_size=24
    )


def into_numpy(metadata, descriptor):
    # The selected values land directly in this array (no copy through Python bytes).
    return [np.empty(descriptor.size // 8, dtype=np.float64)]


def analyse(world, group, root, steps, verbose):
    driver = Driver(backend="files", options={"root_path": root})
    # Collective over the whole job: the simulation ranks call the same helper from Rust.
    topic = dmpi.create_or_open_topic(world, driver, "snapshots")
    mine = dmpi.consumer_partitions(group, topic, "cyclic")
    cover = np.zeros(len(topic.partitions), dtype=np.int64)
    mask = np.zeros_like(cover)
    mask[mine] = 1
    group.Allreduce(mask, cover, op=MPI.SUM)
    if not (cover == 1).all():
        raise RuntimeError(f"partition map is not a partition of the topic: {cover}")
    seen = set()
    consumed = duplicates = count = 0
    total = 0.0
    open_steps = {}
    analysed = 0
    if mine:
        consumer = topic.consumer(
            "analysis", targets=mine, data_selector=select_every_4th, data_allocator=into_numpy
        )
        for event in consumer.events(timeout_ms=300_000):
            if event.completed_step is not None:
                k = event.completed_step
                for s in sorted(s for s in open_steps if s <= k):
                    step_sum, step_count = open_steps.pop(s)
                    if verbose:
                        print(
                            f"rank {world.Get_rank()} (python): step {s} complete: "
                            f"mean of {step_count} samples {step_sum / max(step_count, 1):.3f}"
                        )
                analysed = max(analysed, k + 1)
                continue
            md = event.metadata
            step, src = md["step"], md["rank"]
            if (src, step) in seen:
                duplicates += 1
            seen.add((src, step))
            if step < analysed:
                raise RuntimeError(
                    f"snapshot of step {step} from rank {src} arrived after step "
                    f"{analysed - 1} was complete"
                )
            values = event.data[0]
            expected = field(src, step, md["shape"][0])[::4]
            if not isinstance(values, np.ndarray) or not np.array_equal(values, expected):
                raise RuntimeError(f"corrupt values of step {step} from rank {src}")
            s = open_steps.setdefault(step, [0.0, 0])
            s[0] += float(values.sum())
            s[1] += len(values)
            total += float(values.sum())
            count += len(values)
            event.acknowledge()
            consumed += 1
        if analysed != steps:
            raise RuntimeError(
                f"{analysed} of {steps} steps were declared complete before the end of the stream"
            )
    print(
        f"rank {world.Get_rank()} (python): end of stream after {consumed} snapshots from "
        f"partitions {mine}, {analysed} steps analysed as they completed"
    )
    return consumed, duplicates, total, count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="steps the simulation runs")
    parser.add_argument("--verbose", action="store_true", help="print each step's statistics")
    args = parser.parse_args()

    world = MPI.COMM_WORLD
    # The same collective calls, in the same order, as the Rust ranks (coupling.rs): split into
    # simulation (color 0) and analysis (color 1), then receive the topic folder from rank 0.
    group = world.Split(1, world.Get_rank())
    length = np.zeros(1, dtype=np.uint64)
    world.Bcast(length, root=0)
    buf = bytearray(int(length[0]))
    world.Bcast(buf, root=0)
    root = buf.decode()

    failed = 0
    consumed = duplicates = count = 0
    total = 0.0
    try:
        consumed, duplicates, total, count = analyse(world, group, root, args.steps, args.verbose)
    except Exception as e:  # reported to the whole job through the totals below
        print(f"rank {world.Get_rank()} (python): error: {e}", file=sys.stderr)
        failed = 1
    totals = np.zeros(5, dtype=np.uint64)
    world.Allreduce(
        np.array([0, consumed, duplicates, failed, count], dtype=np.uint64), totals, op=MPI.SUM
    )
    total_sum = np.zeros(1, dtype=np.float64)
    world.Allreduce(np.array([total], dtype=np.float64), total_sum, op=MPI.SUM)
    world.Barrier()
    produced, consumed_all, duplicates_all, failed_all, _ = (int(x) for x in totals)
    ok = failed_all == 0 and duplicates_all == 0 and consumed_all == produced and produced > 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
