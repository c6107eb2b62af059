#!/usr/bin/env bash
# The Python API next to the Rust benchmark programs, with the same arguments, in one run:
# producer and consumer of 1 KiB and 1 MiB events on the files driver, and the producer on the
# memory driver (whose topics live in one process, so no separate consumer program can read
# them; 200000 events at both sizes there). Python pushes one event per push() and, as "batch",
# push_many() of 256 events; it pulls with the iterator and with pull_many(256).
#
#   scripts/bench-python.sh [PYTHON] [ROUNDS]
#
# PYTHON must have this checkout's diaspora_stream installed (scripts/test-python.sh builds one
# in a virtual environment and prints its path). Each line prints the median of ROUNDS
# (default 3) rounds; the last lines are "ratio <case> <value>" (Python / Rust) for scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${1:-python3}"
rounds="${2:-3}"
"$python" -c 'import diaspora_stream.api' || {
  echo "bench-python: $python cannot import diaspora_stream (pip install . first)" >&2; exit 1; }
echo "bench-python: building the Rust benchmark programs (release)" >&2
cargo build --release --quiet -p diaspora-stream-cli --bins
bin=target/release
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "{\"root_path\": \"$work/topics\"}" > "$work/files.json"
echo "{}" > "$work/memory.json"

rate() { "$@" 2>/dev/null | awk '/^Throughput:/ {print $2}'; }
# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh
topic=0
# fresh: a new files topic, named in $t.
fresh() {
  topic=$((topic + 1))
  t="t$topic"
  "$bin/diaspora-ctl" --logging warn topic create --driver files --driver-config "$work/files.json" \
    --name "$t" > /dev/null
}
# gone: deletes topic $t once read (2 GB a topic at 1 MiB).
gone() { rm -rf "${work:?}/topics/$t"; }

ratios=()
for size in 1024 1048576; do
  if [ "$size" -eq 1024 ]; then n=200000; label=1KiB; else n=2000; label=1MiB; fi
  common=(-n "$n" -s "$size" -m 64 -b 128 -p 1)
  rp=() pp=() pb=() rc=() pc=() pm=() mp=() mpy=() mpb=()
  for _ in $(seq 1 "$rounds"); do
    fresh; rp+=("$(rate "$bin/diaspora-producer-benchmark" -d files -c "$work/files.json" -t "$t" "${common[@]}")")
    rc+=("$(rate "$bin/diaspora-consumer-benchmark" -d files -c "$work/files.json" -t "$t" -n "$n" -p 1)")
    gone
    fresh; pp+=("$(rate "$python" -m diaspora_stream.bench producer -d files -c "$work/files.json" -t "$t" "${common[@]}")")
    pc+=("$(rate "$python" -m diaspora_stream.bench consumer -d files -c "$work/files.json" -t "$t" -n "$n" -p 1)")
    gone
    fresh; pb+=("$(rate "$python" -m diaspora_stream.bench producer -d files -c "$work/files.json" -t "$t" "${common[@]}" --push-many 256)")
    pm+=("$(rate "$python" -m diaspora_stream.bench consumer -d files -c "$work/files.json" -t "$t" -n "$n" -p 1 --pull-many 256)")
    gone
    # The memory driver never touches the data: 200000 events at both sizes (a run of 2000
    # would last a few milliseconds).
    mem=(-n 200000 -s "$size" -m 64 -b 128 -p 1)
    mp+=("$(rate "$bin/diaspora-producer-benchmark" -d memory -c "$work/memory.json" -t m "${mem[@]}")")
    mpy+=("$(rate "$python" -m diaspora_stream.bench producer -d memory -t m "${mem[@]}")")
    mpb+=("$(rate "$python" -m diaspora_stream.bench producer -d memory -t m "${mem[@]}" --push-many 256)")
  done
  m() { echo "$@" | median; }
  printf '%-5s files producer   rust %10.0f  python push %10.0f (%sx)  push_many %10.0f (%sx) events/s\n' \
    "$label" "$(m "${rp[@]}")" "$(m "${pp[@]}")" "$(ratio "$(m "${pp[@]}")" "$(m "${rp[@]}")")" \
    "$(m "${pb[@]}")" "$(ratio "$(m "${pb[@]}")" "$(m "${rp[@]}")")"
  printf '%-5s files consumer   rust %10.0f  python iter %10.0f (%sx)  pull_many %10.0f (%sx) events/s\n' \
    "$label" "$(m "${rc[@]}")" "$(m "${pc[@]}")" "$(ratio "$(m "${pc[@]}")" "$(m "${rc[@]}")")" \
    "$(m "${pm[@]}")" "$(ratio "$(m "${pm[@]}")" "$(m "${rc[@]}")")"
  printf '%-5s memory producer  rust %10.0f  python push %10.0f (%sx)  push_many %10.0f (%sx) events/s\n' \
    "$label" "$(m "${mp[@]}")" "$(m "${mpy[@]}")" "$(ratio "$(m "${mpy[@]}")" "$(m "${mp[@]}")")" \
    "$(m "${mpb[@]}")" "$(ratio "$(m "${mpb[@]}")" "$(m "${mp[@]}")")"
  ratios+=("ratio files-producer-push $label $(ratio "$(m "${pp[@]}")" "$(m "${rp[@]}")")"
           "ratio files-producer-push_many $label $(ratio "$(m "${pb[@]}")" "$(m "${rp[@]}")")"
           "ratio files-consumer-iter $label $(ratio "$(m "${pc[@]}")" "$(m "${rc[@]}")")"
           "ratio files-consumer-pull_many $label $(ratio "$(m "${pm[@]}")" "$(m "${rc[@]}")")"
           "ratio memory-producer-push $label $(ratio "$(m "${mpy[@]}")" "$(m "${mp[@]}")")"
           "ratio memory-producer-push_many $label $(ratio "$(m "${mpb[@]}")" "$(m "${mp[@]}")")")
done
printf '%s\n' "${ratios[@]}"
