#!/usr/bin/env bash
# Side-by-side benchmark of this library's files driver against the C++ reference
# (diaspora-stream-api), with the C++ benchmark programs' own arguments, in one run.
#
#   bash scripts/bench-vs-cpp.sh CPP_BIN_DIR [EVENTS] [ROUNDS]
#
# Then, when Python can import `adios2` (pip install adios2), scripts/bench-vs-adios2.sh runs
# ADIOS2's BP5 engine as a second peer (ADIOS2_EVENTS_1MIB and ADIOS2_STEPS_1KIB size it).
#
# CPP_BIN_DIR holds the reference's diaspora-producer-benchmark, diaspora-consumer-benchmark and
# (optionally) diaspora-ctl, built with its ENABLE_BENCHMARKS option. EVENTS (default 200000) are
# written per run as
#   -d files -n EVENTS -m 64 -s 256 -b 128 -f 10000 -p THREADS      (producer)
#   -d files -n EVENTS -p THREADS                                   (consumer, same topic)
# on a fresh topic of 4 partitions, for THREADS 0 (inline) and 1. Each case runs ROUNDS times
# (default 3), the two programs alternating and swapping who goes first, in a temporary folder on
# the file system of TMPDIR, each topic flushed to disk (sync) between writing and reading it.
# Each side creates its topics with its own defaults (ours keeps
# checksums, the reference has none); a third side, "bare", runs our programs on topics created
# without checksums, to show what they cost. Prints every run, then the median of each side and
# the ratios (ours / reference). Our consumer reads each topic twice: with one pull() future per
# event (as the reference's program does), then with Consumer::pull_many (rows "pull_many"), then
# twice more reading no data, as the reference's program (rows "no data"). With
# one pool thread, a fourth side runs our programs with that thread in a rayon pool (--pool rayon,
# built with the CLI's `rayon` feature).
#
# What each side does with the data: the reference's consumer program reads none (it parses -s
# and -i but never installs its selector and allocator); ours reads all of every event's data
# into buffers the library pools (its default `--allocator library`). Both sides use glibc's
# malloc.
set -euo pipefail
cd "$(dirname "$0")/.."
cpp="${1:?usage: bench-vs-cpp.sh CPP_BIN_DIR [EVENTS] [ROUNDS]}"
events="${2:-200000}"
rounds="${3:-3}"
for p in diaspora-producer-benchmark diaspora-consumer-benchmark; do
  [ -x "$cpp/$p" ] || { echo "bench-vs-cpp: $cpp/$p not found" >&2; exit 1; }
done
# The reference's programs call MPI_Init; OpenMPI refuses root unless told.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
echo "bench-vs-cpp: building this library's programs (release)" >&2
cargo build --release --quiet --bins --features diaspora-stream-cli/rayon
ours=target/release
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "{\"root_path\": \"$work/topics\"}" > "$work/files.json"

# create SIDE TOPIC: a 4-partition topic made by that side's own tool.
create() {
  if [ "$1" = cpp ] && [ -x "$cpp/diaspora-ctl" ]; then
    "$cpp/diaspora-ctl" topic create --driver files --driver-config "$work/files.json" \
      --name "$2" --topic.num_partitions 4 > /dev/null
  elif [ "$1" = cpp ]; then
    # Without the reference's tool: a topic with its layout and no files of ours.
    "$ours/diaspora-ctl" --logging warn topic create --driver files \
      --driver-config "$work/files.json" --name "$2" --topic.num_partitions 4 \
      --topic.checksums false
  elif [ "$1" = bare ]; then
    "$ours/diaspora-ctl" --logging warn topic create --driver files \
      --driver-config "$work/files.json" --name "$2" --topic.num_partitions 4 \
      --topic.checksums false
  else
    "$ours/diaspora-ctl" --logging warn topic create --driver files \
      --driver-config "$work/files.json" --name "$2" --topic.num_partitions 4
  fi
}

BENCH=bench-vs-cpp
# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh

declare -A runs
n=0
for threads in 0 1; do
  for round in $(seq 1 "$rounds"); do
    order="cpp ours bare"; [ $((round % 2)) -eq 0 ] && order="bare ours cpp"
    # With a pool thread, a fourth side: our programs with that thread in a rayon pool.
    [ "$threads" = 1 ] && order="$order rayon"
    for side in $order; do
      n=$((n + 1))
      topic="t$n"
      create "$side" "$topic"
      bin="$ours" extra=()
      [ "$side" = cpp ] && bin="$cpp"
      [ "$side" = rayon ] && extra=(--pool rayon)
      produced="$(throughput "$bin/diaspora-producer-benchmark" -d files -c "$work/files.json" \
        -t "$topic" -n "$events" -m 64 -s 256 -b 128 -f 10000 -p "$threads" "${extra[@]}")"
      # The topic goes to disk before it is read: our reads of it take tens of milliseconds,
      # and the kernel writing back what was just written, on one of the two cores, halved
      # some of them at random.
      sync
      consumed="$(throughput "$bin/diaspora-consumer-benchmark" -d files -c "$work/files.json" \
        -t "$topic" -n "$events" -p "$threads" "${extra[@]}")"
      many="" bare_many="" bare_each=""
      if [ "$side" != cpp ]; then
        # The same topic again, taking events with pull_many instead of one pull() per event.
        many="$(throughput "$bin/diaspora-consumer-benchmark" -d files -c "$work/files.json" \
          -t "$topic" -n "$events" -p "$threads" --pull many "${extra[@]}")"
        runs["$side,$threads,consumer (pull_many)"]+=" $many"
        # Like for like with the reference's program: no data read (a selector that selects
        # nothing), with one pull() per event and with pull_many.
        bare_each="$(throughput "$bin/diaspora-consumer-benchmark" -d files -c "$work/files.json" \
          -t "$topic" -n "$events" -p "$threads" --data-interest 0 "${extra[@]}")"
        bare_many="$(throughput "$bin/diaspora-consumer-benchmark" -d files -c "$work/files.json" \
          -t "$topic" -n "$events" -p "$threads" --data-interest 0 --pull many "${extra[@]}")"
        runs["$side,$threads,consumer (no data)"]+=" $bare_each"
        runs["$side,$threads,consumer (no data, pull_many)"]+=" $bare_many"
      fi
      printf 'run %2d  %-5s  -p %s  producer %12.0f events/s  consumer %12.0f events/s%s%s\n' \
        "$n" "$side" "$threads" "$produced" "$consumed" "${many:+  pull_many $many events/s}" \
        "${bare_each:+  no data $bare_each / $bare_many events/s}"
      runs["$side,$threads,producer"]+=" $produced"
      runs["$side,$threads,consumer"]+=" $consumed"
      rm -rf "${work:?}/topics/$topic"
    done
  done
done

echo
echo "medians of $rounds runs, $events events of 64 B metadata + 256 B data, batches of 128, 4 partitions:"
printf '%-34s %12s %14s %8s %14s %8s %14s %8s\n' case "reference" "this library" ratio \
  "no checksums" ratio "rayon pool" ratio
ratio() { awk -v o="$1" -v c="$2" 'BEGIN {print (c > 0 && o > 0 ? o / c : 0)}'; }
for threads in 0 1; do
  for what in producer consumer "consumer (pull_many)" "consumer (no data)" \
    "consumer (no data, pull_many)"; do
    # The reference's consumer row is the peer of both of ours.
    c="$(echo "${runs[cpp,$threads,${what%% *}]}" | median)"
    o="$(echo "${runs[ours,$threads,$what]}" | median)"
    b="$(echo "${runs[bare,$threads,$what]}" | median)"
    r="$(echo "${runs[rayon,$threads,$what]:-}" | median)"
    printf '%-34s %12.0f %14.0f %7.2fx %14.0f %7.2fx %14.0f %7.2fx\n' "$what -p $threads" "$c" \
      "$o" "$(ratio "$o" "$c")" "$b" "$(ratio "$b" "$c")" "${r:-0}" "$(ratio "${r:-0}" "$c")"
  done
done
echo "ratio = ours / reference; 0 where a side did not run (rayon: only with a pool thread)"

# The second peer: ADIOS2's BP5 engine (from PyPI), same machine, same run.
echo
if "${PYTHON:-python3}" -c 'import adios2' 2> /dev/null; then
  OURS_BIN="$ours" bash scripts/bench-vs-adios2.sh "${ADIOS2_EVENTS_1MIB:-2000}" \
    "${ADIOS2_STEPS_1KIB:-4000}" "$rounds"
else
  echo "bench-vs-cpp: ADIOS2 peer skipped (pip install adios2 to run it)"
fi
