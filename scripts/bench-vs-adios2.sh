#!/usr/bin/env bash
# Side-by-side benchmark of this library's files driver against ADIOS2's BP5 file engine, both
# writing a stream of events to a local folder and reading it back right after (the page cache
# cannot be dropped here, so both sides read warm data: same conditions).
#
#   bash scripts/bench-vs-adios2.sh [EVENTS_1MIB] [STEPS_1KIB] [ROUNDS]
#
# Cases (each run ROUNDS times, default 3, the two sides alternating who goes first):
#   "1 MiB per event":     EVENTS_1MIB (default 2000, 2 GiB) events of 1 MiB data + 64 B metadata;
#                          ours: 1-partition topic, batches of 1, one flush at the end;
#                          ADIOS2: one event per step.
#   "1 KiB x 128 per step": STEPS_1KIB (default 4000) steps of 128 events of 1 KiB + 64 B metadata;
#                          ours: batches of 128 (a batch = a step); ADIOS2: 128 events per step.
# Ours runs diaspora-producer-benchmark / diaspora-consumer-benchmark (-p 0: inline) on a topic
# made by diaspora-ctl with its defaults (checksums on). Our reader takes events with `pull_many`
# (up to 256 per call; BP5 reads a step's payloads with one Get), then reads the same topic again
# with one `pull()` future per event: the row "read (one pull per event)". The peer is scripts/peers/adios2-bench.cpp,
# compiled here with g++ against the C++ headers and libraries of the `adios2` PyPI wheel
# (serial, no MPI), engine defaults unless ADIOS2_BENCH_PARAMS holds "Key=Value, ..." engine
# parameters (e.g. "StatsLevel=0" to skip BP5's per-block min/max statistics).
# MB/s counts event data only (10^6 bytes), for both sides alike.
#
# Environment: OURS_BIN (default target/release: our three programs, built beforehand with
# `cargo build --release --bins`), PYTHON (default python3, with `adios2` installed),
# TMPDIR (where the temporary folder goes).
set -euo pipefail
cd "$(dirname "$0")/.."
events_1m="${1:-2000}"
steps_1k="${2:-4000}"
rounds="${3:-3}"
ours="${OURS_BIN:-target/release}"
python="${PYTHON:-python3}"
for p in diaspora-ctl diaspora-producer-benchmark diaspora-consumer-benchmark; do
  [ -x "$ours/$p" ] || { echo "bench-vs-adios2: $ours/$p not found (set OURS_BIN)" >&2; exit 1; }
done
# Our programs call MPI_Init in some builds; OpenMPI refuses root unless told.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# The wheel: headers under adios2/include, libraries in adios2/ (and their bundled
# dependencies in adios2.libs/ next to it, needed at link time only).
site="$("$python" -c 'import adios2, os; print(os.path.dirname(adios2.__file__))')" || {
  echo "bench-vs-adios2: '$python' cannot import adios2 (pip install adios2)" >&2; exit 1; }
[ -f "$site/include/adios2.h" ] || {
  echo "bench-vs-adios2: no C++ headers in the adios2 wheel ($site/include)" >&2; exit 1; }
libdir="$(dirname "$(find "$site" -maxdepth 2 -name 'libadios2_cxx.so*' | sort | head -1)")"
[ "$libdir" != . ] || {
  echo "bench-vs-adios2: libadios2_cxx not found under $site" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "{\"root_path\": \"$work/topics\"}" > "$work/files.json"
peer="$work/adios2-bench"
echo "bench-vs-adios2: compiling the ADIOS2 peer against $site" >&2
nice -n 10 g++ -std=c++17 -O2 -Wall -Wextra -I"$site/include" scripts/peers/adios2-bench.cpp \
  -o "$peer" -L"$libdir" -ladios2_cxx -ladios2_core -Wl,-rpath,"$libdir" \
  -Wl,-rpath-link,"$(dirname "$site")/adios2.libs"
adios2_version="$("$python" -c 'import adios2; print(adios2.__version__)')"

# rate EXPECTED PROGRAM ARGS...: runs it and prints its "Throughput: X events/s" figure; fails if
# it reports a "Total events:" count other than EXPECTED.
rate() {
  local expected="$1" out total
  shift
  out="$("$@" 2>&1)" || { echo "$out" >&2; echo "bench-vs-adios2: $1 failed" >&2; exit 1; }
  total="$(echo "$out" | sed -n 's/^Total events: \([0-9]*\).*/\1/p' | head -1)"
  if [ -n "$total" ] && [ "$total" != "$expected" ]; then
    echo "$out" >&2; echo "bench-vs-adios2: $1 handled $total events, not $expected" >&2; exit 1
  fi
  echo "$out" | sed -n 's/^Throughput: \([0-9.e+]*\) events\/s.*/\1/p' | head -1
}

# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh

mbps() { awk -v r="$1" -v b="$2" 'BEGIN {printf "%.1f", r * b / 1e6}'; }

# allocator BINARY: the allocator a binary links or embeds, by name.
allocator() {
  if ldd "$1" 2>/dev/null | grep -E 'jemalloc|tcmalloc|mimalloc' > /dev/null; then
    ldd "$1" | grep -oE 'lib(jemalloc|tcmalloc|mimalloc)[^ ]*' | head -1
  elif grep -qaE 'je_malloc|mi_malloc|tc_malloc' "$1"; then
    echo "embedded $(grep -oaE 'je_malloc|mi_malloc|tc_malloc' "$1" | head -1 | cut -c1-2)malloc"
  else
    echo "glibc malloc"
  fi
}

# run_case SIDE CASE: one write + read of that case by that side, in a fresh place.
run_case() {
  local side="$1" case="$2" per_step size steps n written read_ each
  if [ "$case" = big ]; then per_step=1 size=1048576 steps="$events_1m"
  else per_step=128 size=1024 steps="$steps_1k"; fi
  n=$((per_step * steps))
  # Each side starts with nothing left to write back (the other side's run leaves gigabytes
  # of page cache behind), and its stream goes to disk before it is read.
  sync
  if [ "$side" = ours ]; then
    "$ours/diaspora-ctl" --logging warn topic create --driver files \
      --driver-config "$work/files.json" --name T --topic.num_partitions 1
    written="$(rate "$n" "$ours/diaspora-producer-benchmark" -d files -c "$work/files.json" \
      -t T -n "$n" -m 64 -s "$size" -b "$per_step" -f "$n" -p 0)"
    sync
    read_="$(rate "$n" "$ours/diaspora-consumer-benchmark" -d files -c "$work/files.json" \
      -t T -n "$n" -p 0 --pull many)"
    each="$(rate "$n" "$ours/diaspora-consumer-benchmark" -d files -c "$work/files.json" \
      -t T -n "$n" -p 0 --pull each)"
    runs["$case,ours,read (one pull per event)"]+=" $each"
    rm -rf "${work:?}/topics"
  else
    written="$(rate "$n" "$peer" write "$work/stream.bp" "$per_step" "$size" "$steps")"
    sync
    read_="$(rate "$n" "$peer" read "$work/stream.bp" "$per_step" "$size" "$steps")"
    rm -rf "${work:?}/stream.bp"
  fi
  printf 'run %2d  %-20s %-6s  write %12.0f events/s %8s MB/s   read %12.0f events/s %8s MB/s%s\n' \
    "$run" "${label[$case]}" "$side" "$written" "$(mbps "$written" "$size")" \
    "$read_" "$(mbps "$read_" "$size")" "${each:+   (one pull per event: $each events/s)}"
  runs["$case,$side,write"]+=" $written"
  runs["$case,$side,read"]+=" $read_"
}

declare -A runs label bytes
label[big]="1 MiB per event"
label[small]="1 KiB x 128 per step"
bytes[big]=1048576
bytes[small]=1024
run=0
for case in big small; do
  for round in $(seq 1 "$rounds"); do
    order="adios2 ours"; [ $((round % 2)) -eq 0 ] && order="ours adios2"
    for side in $order; do
      run=$((run + 1))
      run_case "$side" "$case"
    done
  done
done

echo
echo "medians of $rounds runs (1 MiB: $events_1m events; 1 KiB: $steps_1k steps of 128 events;" \
  "64 B metadata per event); ADIOS2 $adios2_version BP5, parameters:" \
  "${ADIOS2_BENCH_PARAMS:-defaults}"
printf '%-52s %14s %10s %14s %10s %8s\n' case "ADIOS2 ev/s" "MB/s" "ours ev/s" "MB/s" ratio
for case in big small; do
  for what in write read "read (one pull per event)"; do
    a="$(echo "${runs[$case,adios2,${what%% *}]}" | median)"
    o="$(echo "${runs[$case,ours,$what]}" | median)"
    printf '%-52s %14.0f %10s %14.0f %10s %7.2fx\n' "${label[$case]}, $what" \
      "$a" "$(mbps "$a" "${bytes[$case]}")" "$o" "$(mbps "$o" "${bytes[$case]}")" \
      "$(awk -v o="$o" -v a="$a" 'BEGIN {print (a > 0 ? o / a : 0)}')"
  done
done
echo "ratio = ours / ADIOS2 (events/s)"
echo "allocators: ours $(allocator "$ours/diaspora-producer-benchmark") (Rust's system allocator" \
  "unless it says otherwise); ADIOS2 peer $(allocator "$peer")"
