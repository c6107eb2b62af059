#!/usr/bin/env bash
# Side-by-side benchmark of this library's mofka driver against Mofka's C++ client, on real
# Mofka services started here, in one run.
#
#   bash scripts/bench-vs-mofka.sh PREFIX [ROUNDS] [EVENTS] [TRANSPORTS]
#
# PREFIX is an installed Mofka 0.9 stack (outside this repository): PREFIX/bin holds `bedrock`
# and the C++ benchmark programs `diaspora-producer-benchmark` and
# `diaspora-consumer-benchmark` (diaspora-stream-api built with its benchmarks), PREFIX/lib
# the libraries; Mercury and Argobots may live elsewhere on LD_LIBRARY_PATH and
# PKG_CONFIG_PATH. ROUNDS (default 3) rounds per case, the two clients alternating and swapping
# who goes first; EVENTS (default 100000) events of 1 KiB with 128 B of metadata; TRANSPORTS
# (default "na+sm ofi+tcp").
#
# Each round starts fresh services (Bedrock with one Yokan master database, Flock, Warabi and
# ABT-IO, as Mofka's own tests configure it) and a topic of one memory partition, and measures:
#   producer  each client's producer program, same arguments
#             (-n EVENTS -s 1024 -m 128 -b 128 -f 10000 -p 1), each on a fresh service;
#   consumer  on the topic the C++ producer wrote: this driver's consumer program reading
#             metadata only (-i 0) and with the data (-i 1); the C++ consumer program (which
#             reads metadata only: it never installs its data selector); and
#             benches/cxx/diaspora-data-consumer, a C++ program that reads the data through the
#             same API with a selector and an allocator, as an analysis code does;
#   1 MiB     (na+sm) 1000 events of 1 MiB, this driver's consumer (with the data) started
#             before its producer: GB/s of the whole path, producer to consumer; then, on the
#             same topic, a second consumer alone; each next to Mercury's hg_bw_write (found in PREFIX/bin, MERCURY_PERF_DIR, or next to the
#             Mercury pkg-config finds), run after the services are stopped (Mercury's perf
#             server clears every na+sm endpoint of the machine when it starts);
#   setups    (na+sm) this driver's producer alone, 1000 events of 1 MiB, on services of one or
#             two execution streams, topics of one or two memory partitions, batches of 1 or
#             128 events: what the service's configuration changes.
# Prints every run, the medians and the ratios. Every service binds to 127.0.0.1 (ofi+tcp) or
# to this machine's shared memory (na+sm), and is stopped by its process id.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${1:?usage: bench-vs-mofka.sh PREFIX [ROUNDS] [EVENTS] [TRANSPORTS]}"
rounds="${2:-3}"
events="${3:-100000}"
transports="${4:-na+sm ofi+tcp}"
prefix="$(cd "$prefix" && pwd)"
for p in bedrock diaspora-producer-benchmark diaspora-consumer-benchmark; do
  [ -x "$prefix/bin/$p" ] || { echo "bench-vs-mofka: $prefix/bin/$p not found" >&2; exit 1; }
done
export LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export FI_TCP_IFACE=lo
# The C++ programs call MPI_Init; OpenMPI refuses root unless told.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

echo "bench-vs-mofka: building this library's programs (release, feature mofka)" >&2
cargo build --release --quiet -p diaspora-stream-cli --features mofka --bins
ours=target/release
echo "bench-vs-mofka: building benches/cxx against $prefix" >&2
cmake -S benches/cxx -B target/cxx -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" > target/cxx-configure.log 2>&1 \
  || { cat target/cxx-configure.log >&2; exit 1; }
cmake --build target/cxx > target/cxx-build.log 2>&1 || { cat target/cxx-build.log >&2; exit 1; }
data_consumer=target/cxx/diaspora-data-consumer

work="$(mktemp -d)"
service_pid=""
stop_service() {
  if [ -n "$service_pid" ]; then
    kill "$service_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$service_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
    service_pid=""
  fi
}
trap 'stop_service; rm -rf "$work"' EXIT

# The service: one Yokan master database, Flock, Warabi and ABT-IO (as Mofka's own tests
# configure it); bedrock-es2.json adds a second execution stream serving the same pool.
services='"libraries": ["libflock-bedrock-module.so", "libyokan-bedrock-module.so",
                "libwarabi-bedrock-module.so", "libabt-io-bedrock-module.so",
                "libmofka-bedrock-module.so"],
  "providers": [
    {"name": "master", "provider_id": 1, "type": "yokan", "tags": ["mofka:master"],
     "config": {"database": {"type": "map"}}},
    {"name": "io_controller", "provider_id": 2, "type": "abt_io", "config": {},
     "dependencies": {"pool": "__primary__"}},
    {"name": "group_manager", "provider_id": 3, "type": "flock",
     "config": {"bootstrap": "self", "file": "mofka.json", "group": {"type": "static"}}},
    {"name": "metadata", "provider_id": 4, "type": "yokan", "tags": ["mofka:metadata"],
     "config": {"database": {"type": "map"}}},
    {"name": "data", "provider_id": 5, "type": "warabi", "tags": ["mofka:data"],
     "config": {"target": {"type": "memory"}}}
  ]'
echo "{$services}" > "$work/bedrock.json"
cat > "$work/bedrock-es2.json" <<EOF
{"margo": {"argobots": {
   "pools": [{"name": "__primary__", "kind": "fifo_wait", "access": "mpmc"}],
   "xstreams": [
     {"name": "__primary__", "scheduler": {"type": "basic_wait", "pools": ["__primary__"]}},
     {"name": "es1", "scheduler": {"type": "basic_wait", "pools": ["__primary__"]}}]}},
 $services}
EOF

n_service=0
# start_service TRANSPORT [BEDROCK_CONFIG [PARTITIONS]]: a fresh service (default configuration:
# bedrock.json) with a topic "bench" of PARTITIONS (default 1) memory partitions; sets $config to
# a driver configuration naming it.
start_service() {
  local bedrock_config="$work/${2:-bedrock.json}" partitions="${3:-1}"
  stop_service
  n_service=$((n_service + 1))
  local dir="$work/service-$n_service" address="$1"
  case "$1" in ofi+*) address="$1://127.0.0.1" ;; esac
  mkdir -p "$dir"
  (cd "$dir" && exec "$prefix/bin/bedrock" "$address" -c "$bedrock_config" \
    > bedrock.out 2> bedrock.err) &
  service_pid=$!
  for _ in $(seq 1 300); do
    [ -s "$dir/mofka.json" ] && break
    kill -0 "$service_pid" 2>/dev/null || { cat "$dir/bedrock.err" >&2; exit 1; }
    sleep 0.1
  done
  [ -s "$dir/mofka.json" ] || { echo "bench-vs-mofka: no group file from Bedrock" >&2; exit 1; }
  config="$dir/client.json"
  echo "{\"group_file\": \"$dir/mofka.json\", \"margo\": {\"use_progress_thread\": true}}" \
    > "$config"
  "$ours/diaspora-ctl" --logging warn topic create --driver mofka --driver-config "$config" \
    --name bench --topic.num_partitions "$partitions" --topic.partition_type memory
}

BENCH=bench-vs-mofka
# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh

declare -A runs
record() { runs["$1"]="${runs["$1"]:-} $2"; printf '  %-34s %12.0f events/s\n' "$1" "$2"; }

produce() { # SIDE TRANSPORT SIZE N [BATCH]
  local prog="$prefix/bin/diaspora-producer-benchmark"
  [ "$1" = rust ] && prog="$ours/diaspora-producer-benchmark"
  throughput "$prog" -d mofka -c "$config" -t bench -n "$4" -s "$3" -m 128 -b "${5:-128}" \
    -f 10000 -p 1
}

for transport in $transports; do
  for round in $(seq 1 "$rounds"); do
    echo "== $transport, round $round" >&2
    order="cpp rust"; [ $((round % 2)) -eq 0 ] && order="rust cpp"
    for side in $order; do
      start_service "$transport"
      record "$transport producer $side" "$(produce "$side" "$transport" 1024 "$events")"
      if [ "$side" = cpp ]; then
        # The consumers read what the C++ producer wrote, each under its own name.
        consumers="rust-meta rust-data cpp-meta cpp-data"
        [ $((round % 2)) -eq 0 ] && consumers="cpp-data cpp-meta rust-data rust-meta"
        for c in $consumers; do
          case "$c" in
            rust-meta) r=$(throughput "$ours/diaspora-consumer-benchmark" -d mofka -c "$config" \
                         -t bench -n "$events" -i 0 --consumer "$c") ;;
            rust-data) r=$(throughput "$ours/diaspora-consumer-benchmark" -d mofka -c "$config" \
                         -t bench -n "$events" -i 1 --consumer "$c") ;;
            cpp-meta) r=$(throughput "$prefix/bin/diaspora-consumer-benchmark" -d mofka \
                        -c "$config" -t bench -n "$events") ;;
            cpp-data) r=$(throughput "$data_consumer" mofka "$config" bench "$events" "$c") ;;
          esac
          record "$transport consumer $c" "$r"
        done
      fi
    done
  done
done

mib_events=1000
for round in $(seq 1 "$rounds"); do
  case " $transports " in *" na+sm "*) ;; *) break ;; esac
  echo "== na+sm, 1 MiB events, round $round" >&2
  start_service na+sm
  "$ours/diaspora-consumer-benchmark" -d mofka -c "$config" -t bench -n "$mib_events" -i 1 \
    --consumer path > "$work/path.out" 2>&1 &
  consumer_pid=$!
  record "na+sm 1MiB producer" "$(produce rust na+sm 1048576 "$mib_events")"
  wait "$consumer_pid" || { cat "$work/path.out" >&2; exit 1; }
  r=$(sed -n 's/^Throughput: \([0-9.e+]*\) events\/s.*/\1/p' "$work/path.out" | head -1)
  record "na+sm 1MiB path" "$r"
  record "na+sm 1MiB consumer" "$(throughput "$ours/diaspora-consumer-benchmark" -d mofka \
    -c "$config" -t bench -n "$mib_events" -i 1 --consumer alone)"
done
# What the service's configuration changes for 1 MiB events (this driver's producer alone):
# batches of 1 or 128 events, 1 or 2 memory partitions (the producer keeps one batch in flight
# per partition), 1 or 2 execution streams serving the service's pool.
setups=""
for round in $(seq 1 "$rounds"); do
  case " $transports " in *" na+sm "*) ;; *) break ;; esac
  echo "== na+sm, 1 MiB events, service configurations, round $round" >&2
  for es in 1 2; do
    bedrock_config=bedrock.json; [ "$es" = 2 ] && bedrock_config=bedrock-es2.json
    for partitions in 1 2; do
      for batch in 1 128; do
        setup="es=$es partitions=$partitions batch=$batch"
        [ "$round" = 1 ] && setups="$setups|$setup"
        start_service na+sm "$bedrock_config" "$partitions"
        record "na+sm 1MiB setup $setup" "$(produce rust na+sm 1048576 "$mib_events" "$batch")"
      done
    done
  done
done
stop_service

# Mercury's own bandwidth, once the services are gone.
hg_bw=""
perf_dir=""
for d in "${MERCURY_PERF_DIR:-}" "$prefix/bin" "$(pkg-config --variable=prefix mercury 2>/dev/null)/bin"; do
  if [ -n "$d" ] && [ -x "$d/hg_bw_write" ] && [ -x "$d/hg_perf_server" ]; then perf_dir="$d"; break; fi
done
if [ -n "$perf_dir" ] && [ -n "${runs["na+sm 1MiB path"]:-}" ]; then
  hg="$work/hg"; mkdir -p "$hg"
  (cd "$hg" && exec "$perf_dir/hg_perf_server" -c na -p sm > /dev/null 2>&1) &
  hg_pid=$!
  for _ in $(seq 1 100); do [ -s "$hg/port.cfg" ] && break; sleep 0.1; done
  sleep 0.2
  hg_bw=$(cd "$hg" && "$perf_dir/hg_bw_write" -c na -p sm -l 200 -y 1048576 -z 1048576 \
    | awk '!/^#/ && NF >= 3 {print $2; exit}')
  for _ in $(seq 1 50); do kill -0 "$hg_pid" 2>/dev/null || break; sleep 0.1; done
  kill "$hg_pid" 2>/dev/null || true
  wait "$hg_pid" 2>/dev/null || true
fi

echo
echo "medians of $rounds rounds ($events events of 1 KiB, 128 B metadata, one memory partition):"
med() { echo "${runs["$1"]:-}" | median; }
for transport in $transports; do
  p_cpp=$(med "$transport producer cpp"); p_rs=$(med "$transport producer rust")
  rm_=$(med "$transport consumer rust-meta"); rd=$(med "$transport consumer rust-data")
  cm=$(med "$transport consumer cpp-meta"); cd_=$(med "$transport consumer cpp-data")
  printf '%s producer: C++ %.0f, this driver %.0f events/s\n' "$transport" "$p_cpp" "$p_rs"
  printf '%s consumer: this driver metadata %.0f, data %.0f; C++ metadata %.0f, data %.0f events/s\n' \
    "$transport" "$rm_" "$rd" "$cm" "$cd_"
  echo "ratio producer-vs-cpp $transport $(ratio "$p_rs" "$p_cpp")"
  echo "ratio data-vs-metadata $transport $(ratio "$rd" "$rm_")"
  echo "ratio data-vs-cpp-data $transport $(ratio "$rd" "$cd_")"
done
# 1 MiB events per second are MiB/s.
for what in path producer consumer; do
  [ -n "${runs["na+sm 1MiB $what"]:-}" ] || continue
  m=$(med "na+sm 1MiB $what")
  if [ -n "$hg_bw" ]; then
    printf 'na+sm 1 MiB %s: %.0f MiB/s; Mercury hg_bw_write %s MiB/s\n' "$what" "$m" "$hg_bw"
    echo "ratio $what-vs-hg_bw_write na+sm $(ratio "$m" "$hg_bw")"
  else
    printf 'na+sm 1 MiB %s: %.0f MiB/s (Mercury hg_bw_write not found: no ratio)\n' "$what" "$m"
  fi
done
if [ -n "$setups" ]; then
  echo "na+sm 1 MiB producer alone by service configuration (execution streams, partitions, batch):"
  IFS='|' read -r -a setup_list <<< "${setups#|}"
  for setup in "${setup_list[@]}"; do
    printf '  %-32s %8.0f MiB/s\n' "$setup" "$(med "na+sm 1MiB setup $setup")"
  done
fi
