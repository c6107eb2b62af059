#!/usr/bin/env bash
# Quick start, command 2: set up the machine, then run every test: unit tests, the conformance
# suite on the files driver, C++ fixture compatibility, multi-process and crash tests, the CLI,
# doc tests, the MPI tests under OpenMPI, the Kafka tests and the conformance suite on the kafka
# driver against a local broker; then the coupling job once more under MPICH.
# The C++ fixtures are read from ../shared next to the checkout. A broker is started on
# 127.0.0.1 (and stopped at the end) unless DIASPORA_KAFKA_BOOTSTRAP names one.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

if [ -z "${DIASPORA_KAFKA_BOOTSTRAP:-}" ]; then
  DIASPORA_KAFKA_BOOTSTRAP="$(bash scripts/kafka-broker.sh start)"
  trap 'bash scripts/kafka-broker.sh stop' EXIT
fi
export DIASPORA_KAFKA_BOOTSTRAP

cargo test --features mpi,kafka --no-fail-fast "$@"

echo "test: conformance suite on the kafka driver ($DIASPORA_KAFKA_BOOTSTRAP)"
DIASPORA_TEST_BACKEND=kafka \
DIASPORA_TEST_BACKEND_ARGS="{\"kafka\": {\"bootstrap.servers\": \"$DIASPORA_KAFKA_BOOTSTRAP\"}}" \
DIASPORA_TEST_TOPIC_ARGS='{"replication_factor": 1}' \
  cargo test --features mpi,kafka --test conformance

if command -v mpicc.mpich >/dev/null && command -v mpiexec.mpich >/dev/null; then
  echo "test: coupling job under MPICH"
  # A separate target folder: the MPI bindings are built for one MPI at a time.
  MPICC=mpicc.mpich CARGO_TARGET_DIR=target/mpich cargo build --features mpi --example coupling
  work=$(mktemp -d)
  out=$(cd "$work" && mpiexec.mpich -n 4 "$OLDPWD/target/mpich/debug/examples/coupling" --steps 20 2>&1) || {
    echo "$out"; echo "test: MPICH coupling job failed"; exit 1; }
  rm -rf "$work"
  echo "$out" | tail -4
  for r in 0 1 2 3; do
    echo "$out" | grep -q "rank $r/4:" || { echo "test: MPICH rank $r missing (wrong launcher?)"; exit 1; }
  done
  echo "$out" | grep -q "40/40 snapshots consumed exactly once" || { echo "test: MPICH run lost events"; exit 1; }
  echo "MPICH: 1 passed, 0 failed"
fi
