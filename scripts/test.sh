#!/usr/bin/env bash
# Quick start, command 2: set up the machine, then run every test: unit tests, the conformance
# suite on the files driver, C++ fixture compatibility, multi-process and crash tests, the CLI,
# doc tests, the MPI tests under OpenMPI, HDF5 export/import (serial and MPI), the Kafka tests and the conformance suite on the kafka
# driver against a local broker; the Mercury/Argobots layers where those libraries are installed;
# then the coupling job once more under MPICH, the Python package (wheel, pytest, a coupling job
# with Python analysis ranks), the driver template end to end, and the Slurm job scripts on a
# local one-node cluster.
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

# AWS's own MSK IAM token signer (Python), which tests/msk.rs compares our tokens with.
msk_venv="${XDG_CACHE_HOME:-$HOME/.cache}/diaspora-stream-rs/msk-signer-venv"
if ! "$msk_venv/bin/python" -c 'import aws_msk_iam_sasl_signer' 2>/dev/null; then
  echo "test: installing aws-msk-iam-sasl-signer-python into $msk_venv"
  python3 -m venv "$msk_venv"
  "$msk_venv/bin/pip" install -q aws-msk-iam-sasl-signer-python==1.0.2
fi
export DIASPORA_MSK_SIGNER_PYTHON="$msk_venv/bin/python"

# The library and the command-line tools (crates/cli: diaspora-ctl and the benchmark programs,
# with the tests that run them); the Kafka tests run with Amazon MSK support built in.
cargo test -p diaspora-stream -p diaspora-stream-cli -p diaspora-stream-conformance --features mpi,kafka,msk,hdf5,rayon --no-fail-fast "$@"
echo "test: conformance suite on the memory driver"
DIASPORA_TEST_BACKEND=memory cargo test --features mpi,kafka,msk,hdf5,rayon --test conformance
# Without `msk`, an `aws_msk_iam` option and `diaspora-ctl msk-token` are refused.
cargo test -p diaspora-stream --features kafka --lib drivers::kafka
cargo test -p diaspora-stream-cli --test cli_msk
# Without rayon, `topic check` verifies partitions one after the other: that path too.
cargo test -p diaspora-stream --test files_hardening

echo "test: conformance suite on the kafka driver ($DIASPORA_KAFKA_BOOTSTRAP)"
DIASPORA_TEST_BACKEND=kafka \
DIASPORA_TEST_BACKEND_ARGS="{\"kafka\": {\"bootstrap.servers\": \"$DIASPORA_KAFKA_BOOTSTRAP\"}}" \
DIASPORA_TEST_TOPIC_ARGS='{"replication_factor": 1}' \
  cargo test --features mpi,kafka,msk,hdf5,rayon --test conformance

# The Mercury layer and the Argobots runtime, where pkg-config finds both libraries (Spack puts
# them on PKG_CONFIG_PATH). Neither is in Debian, so a fresh machine skips this part.
if pkg-config --exists mercury argobots 2>/dev/null; then
  echo "test: Mercury $(pkg-config --modversion mercury) and Argobots $(pkg-config --modversion argobots) layers"
  # The mofka tests also run the mock service example, which a filtered `cargo test` does not build.
  cargo build --features mercury,argobots,mofka --example mofka_mock_service
  cargo test --features mercury,argobots,mofka --lib --test mercury --test argobots --test mofka
  echo "test: the command-line tools in the mofka build"
  cargo test -p diaspora-stream-cli --features mofka,argobots
  cargo test -p mercury-sys -p argobots-sys
  echo "test: conformance suite on the mofka driver (Rust mock service over na+sm)"
  DIASPORA_TEST_BACKEND=mofka cargo test --features mofka --test conformance
else
  echo "test: Mercury/Argobots/Mofka tests skipped: pkg-config finds no mercury.pc/argobots.pc (install them, e.g. 'spack install mercury argobots && spack load mercury argobots')"
fi

if command -v mpicc.mpich >/dev/null && command -v mpiexec.mpich >/dev/null; then
  echo "test: coupling job under MPICH"
  # A separate target folder: the MPI bindings are built for one MPI at a time.
  MPICC=mpicc.mpich CARGO_TARGET_DIR=target/mpich cargo build --features mpi --example coupling
  work=$(mktemp -d)
  out=$(cd "$work" && mpiexec.mpich -n 4 "$OLDPWD/target/mpich/debug/examples/coupling" --steps 20 2>&1) || {
    echo "$out"; echo "test: MPICH coupling job failed"; exit 1; }
  rm -rf "$work"
  echo "$out" | tail -4
  # Rank 0 reports the world size MPI gave it: a launcher of the wrong MPI would start four
  # one-rank worlds, which the job rejects.
  echo "$out" | grep -q "world size 4: 2 simulation + 2 analysis ranks" || {
    echo "$out"; echo "test: MPICH run did not form one world of 4 ranks"; exit 1; }
  echo "$out" | grep -q "40/40 snapshots consumed exactly once" || {
    echo "$out"; echo "test: MPICH run lost events"; exit 1; }
  echo "MPICH: 1 passed, 0 failed"
fi

# The Python package as a user installs it (pip install .), its tests on every driver of the
# build (kafka on the broker above), and the coupling job with Python analysis ranks.
echo "test: the Python package"
bash scripts/test-python.sh

# The driver template as a new driver's author uses it: created with scripts/new-driver.sh,
# its own CI (conformance kit, benchmark, cdylib), then loaded by name by diaspora-ctl and by the
# benchmark program under mpiexec (the binaries built with MPI here).
echo "test: the driver template"
cargo build -p diaspora-stream-cli --features mpi,kafka,msk,hdf5,rayon --bins
bash scripts/check-template.sh

# The Slurm job scripts on a one-node cluster started (and stopped) here; it needs root.
if [ "$(id -u)" -eq 0 ] && command -v slurmctld >/dev/null; then
  echo "test: Slurm job scripts"
  # The jobs run the debug binaries, built with MPI just above.
  bash slurm/test-jobs.sh
else
  echo "test: Slurm job scripts skipped (they need root and the slurmctld, slurmd and munge packages)"
fi
