#!/usr/bin/env bash
# Producer throughput as ranks are added: `mpiexec -n 1, 2, 4` of diaspora-producer-benchmark on
# the files driver, one partition per rank (--own-partition), for 1 KiB and 1 MiB events. Prints
# one table row per (size, ranks): aggregate and per-rank throughput, and per-rank throughput as
# a ratio of the 1-rank run of the same size, all measured in this one run.
#
# Usage: bash scripts/bench-ranks.sh [ROUNDS]      (default 3; the median of the rounds is kept)
# Environment: RANKS (default "1 2 4"), KIB_EVENTS (per rank, default 200000), MIB_EVENTS (per
# rank, default 1000), BENCH_ROOT (folder for the topics, default a temporary folder under
# target/; it should be a local file system).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in -h|--help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
rounds="${1:-3}"
ranks_list="${RANKS:-1 2 4}"
source scripts/setup.sh >/dev/null
echo "bench-ranks: building the benchmark programs (release, MPI)"
cargo build --release -p diaspora-stream-cli --features mpi --bins >/dev/null
bin=target/release
root="${BENCH_ROOT:-$(mktemp -d -p target bench-ranks.XXXXXX)}"
trap 'rm -rf "$root"' EXIT
echo "{\"root_path\": \"$root\"}" >"$root.json"
trap 'rm -rf "$root" "$root.json"' EXIT

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

run() { # size events ranks -> events/s (aggregate)
  local size=$1 events=$2 n=$3 topic="t$RANDOM$RANDOM"
  "$bin/diaspora-ctl" topic create --logging off --driver files --driver.root_path "$root" \
    --name "$topic" --topic.num_partitions "$n" >/dev/null
  mpiexec -n "$n" "$bin/diaspora-producer-benchmark" -d files -c "$root.json" -t "$topic" \
    -n "$events" -s "$size" -m 64 -b 64 -f 0 --own-partition |
    awk '/^Throughput:/ { print $2 }'
  rm -rf "${root:?}/$topic"
}

printf '| event size | ranks | aggregate | per rank | per rank vs 1 rank |\n'
printf '|---|---|---|---|---|\n'
for size in 1024 1048576; do
  if [ "$size" = 1024 ]; then events="${KIB_EVENTS:-200000}" label="1 KiB"; else
    events="${MIB_EVENTS:-1000}" label="1 MiB"; fi
  one=""
  for n in $ranks_list; do
    agg="$(for _ in $(seq "$rounds"); do run "$size" "$events" "$n"; done | median)"
    per="$(awk -v a="$agg" -v n="$n" 'BEGIN { printf "%.0f", a / n }')"
    [ -n "$one" ] || one="$per"
    ratio="$(awk -v p="$per" -v o="$one" 'BEGIN { printf "%.2fx", p / o }')"
    if [ "$size" = 1024 ]; then
      fmt() { awk -v v="$1" 'BEGIN { printf "%.2f M events/s", v / 1e6 }'; }
    else
      fmt() { awk -v v="$1" 'BEGIN { printf "%.0f events/s (%.2f GB/s)", v, v * 1048576 / 1e9 }'; }
    fi
    printf '| %s | %s | %s | %s | %s |\n' "$label" "$n" "$(fmt "$agg")" "$(fmt "$per")" "$ratio"
  done
done
