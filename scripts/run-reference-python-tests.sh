#!/usr/bin/env bash
# Runs the C++ reference's own Python tests (python/diaspora_stream/test_*.py of
# diaspora-stream-api v0.5.2), unchanged, against this package, as the reference's runner does:
# one module at a time, each with a fresh store, driver chosen through DIASPORA_TEST_BACKEND,
# DIASPORA_TEST_BACKEND_ARGS and DIASPORA_TEST_TOPIC_ARGS.
#
#   scripts/run-reference-python-tests.sh TESTS_DIR [PYTHON] [BACKEND...]
#
# TESTS_DIR holds the reference's test_*.py files (they are not part of this repository: take
# them from a checkout of the reference). PYTHON is an interpreter with diaspora_stream
# installed (default: python3). BACKENDs default to "memory files", plus "kafka" when the build
# has the kafka driver; each kafka module gets a fresh in-memory broker of its own (the tests
# reuse fixed topic names such as "my_topic" across modules). BACKEND "mofka" starts, for each
# module, the Mofka mock service program named by DIASPORA_MOFKA_MOCK (the mofka_mock_service
# example) and stops it by its PID afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:?usage: run-reference-python-tests.sh TESTS_DIR [PYTHON] [BACKEND...]}"
dir="$(cd "$dir" && pwd)"
python="${2:-python3}"
shift $(( $# >= 2 ? 2 : 1 ))
backends=("$@")
if [ ${#backends[@]} -eq 0 ]; then
  backends=(memory files)
  if "$python" -c 'import sys; from diaspora_stream.api import builtin_drivers as b; sys.exit("kafka" not in b())'; then
    backends+=(kafka)
  fi
fi
modules=()
for f in "$dir"/test_*.py; do modules+=("$(basename "${f%.py}")"); done
[ ${#modules[@]} -gt 0 ] || { echo "reference-tests: no test_*.py in $dir" >&2; exit 1; }

failed=0
passed=0
for backend in "${backends[@]}"; do
  for m in "${modules[@]}"; do
    work="$(mktemp -d)"
    args='{}'
    topic_args='{}'
    broker_started=""
    case "$backend" in
      files) args="{\"root_path\": \"$work/diaspora_data\"}" ;;
      kafka)
        port=$(( 19200 + RANDOM % 500 ))
        bootstrap="$(DIASPORA_KAFKA_PORT=$port bash scripts/kafka-broker.sh start 2>/dev/null)"
        broker_started=$port
        args="{\"kafka\": {\"bootstrap.servers\": \"$bootstrap\"}}"
        topic_args='{"replication_factor": 1}'
        ;;
      mofka)
        "${DIASPORA_MOFKA_MOCK:?set DIASPORA_MOFKA_MOCK to the mofka_mock_service program}" \
          --dir "$work" > "$work/group" 2> "$work/mock.log" &
        mock_pid=$!
        for _ in $(seq 1 100); do [ -s "$work/group" ] && break; sleep 0.1; done
        args="{\"group_file\": \"$(head -n1 "$work/group")\"}"
        ;;
    esac
    if (cd "$work" && cp "$dir/$m.py" . && \
        DIASPORA_TEST_BACKEND="$backend" DIASPORA_TEST_BACKEND_ARGS="$args" \
        DIASPORA_TEST_TOPIC_ARGS="$topic_args" timeout 120 "$python" -m unittest "$m" \
        > "$work/log" 2>&1); then
      passed=$((passed + 1))
      echo "reference-tests: $backend $m: $(grep -E '^Ran ' "$work/log")"
    else
      failed=$((failed + 1))
      echo "reference-tests: $backend $m: FAILED"
      cat "$work/log"
    fi
    [ -n "$broker_started" ] && DIASPORA_KAFKA_PORT=$broker_started bash scripts/kafka-broker.sh stop >/dev/null 2>&1 || true
    if [ -n "${mock_pid:-}" ]; then kill "$mock_pid" 2>/dev/null || true; wait "$mock_pid" 2>/dev/null || true; mock_pid=""; fi
    rm -rf "$work"
  done
done
echo "reference-tests: $passed modules passed, $failed failed (${backends[*]})"
[ "$failed" -eq 0 ]
