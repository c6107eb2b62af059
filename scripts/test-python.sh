#!/usr/bin/env bash
# The Python package (diaspora_stream), as a user installs it: builds the wheel with
# `pip install .` into a virtual environment (maturin, pytest, numpy and mpi4py come from PyPI),
# with the MPI helpers and the kafka driver, then runs
#   - tests/python on the memory and files drivers, and on kafka when DIASPORA_KAFKA_BOOTSTRAP
#     names a broker;
#   - the C++ reference's own Python tests, unchanged, when DIASPORA_REFERENCE_PYTHON_TESTS names
#     a folder holding them (they are not part of this repository; see
#     scripts/run-reference-python-tests.sh);
#   - the diaspora_stream.mpi helpers under mpiexec -n 2 (tests/python/mpi_helpers.py);
#   - the coupling job with Rust simulation ranks and Python analysis ranks, one MPMD job of 4
#     ranks under mpiexec (examples/python/coupling_analysis.py).
# The environment is kept in DIASPORA_PYTHON_VENV (default: the user cache) for the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh > /dev/null
venv="${DIASPORA_PYTHON_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/diaspora-stream-rs/python-venv}"
if ! "$venv/bin/python" -c 'import pytest, numpy, mpi4py' 2>/dev/null; then
  echo "test-python: creating $venv (pytest, numpy, mpi4py from PyPI)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q pytest numpy mpi4py
fi
py="$venv/bin/python"
echo "test-python: pip install . (features mpi, kafka)"
MATURIN_PEP517_ARGS="--features mpi,kafka" "$venv/bin/pip" install -q --force-reinstall --no-deps .
"$py" -c 'import diaspora_stream.api as a, diaspora_stream.mpi as m; print("test-python: diaspora_stream", a._native.__version__, "drivers", a.builtin_drivers(), "mpi", m.available)'

echo "test-python: tests/python"
(cd tests/python && "$py" -m pytest -q -p no:cacheprovider)

if [ -n "${DIASPORA_REFERENCE_PYTHON_TESTS:-}" ]; then
  echo "test-python: the reference's Python tests from $DIASPORA_REFERENCE_PYTHON_TESTS"
  bash scripts/run-reference-python-tests.sh "$DIASPORA_REFERENCE_PYTHON_TESTS" "$py"
else
  echo "test-python: the reference's own Python tests skipped: set DIASPORA_REFERENCE_PYTHON_TESTS to a folder holding them (python/diaspora_stream/test_*.py of diaspora-stream-api v0.5.2)"
fi

# The mofka driver from Python, where Mercury and Argobots are installed (as in test.sh): a
# second environment with a build of the package that has it, against the Rust mock service.
if pkg-config --exists mercury argobots 2>/dev/null; then
  echo "test-python: the mofka driver (Mercury $(pkg-config --modversion mercury), mock service over na+sm)"
  mvenv="$venv-mofka"
  "$mvenv/bin/python" -c 'import pytest, numpy' 2>/dev/null || {
    python3 -m venv "$mvenv"; "$mvenv/bin/pip" install -q pytest numpy; }
  MATURIN_PEP517_ARGS="--features mofka" "$mvenv/bin/pip" install -q --force-reinstall --no-deps .
  cargo build --quiet --features mercury,argobots,mofka --example mofka_mock_service
  mock="$PWD/target/debug/examples/mofka_mock_service"
  mwork="$(mktemp -d)"
  "$mock" --dir "$mwork" > "$mwork/group" 2> "$mwork/mock.log" &
  mock_pid=$!
  for _ in $(seq 1 100); do [ -s "$mwork/group" ] && break; sleep 0.1; done
  status=0
  (cd tests/python && DIASPORA_MOFKA_GROUP_FILE="$(head -n1 "$mwork/group")" \
     "$mvenv/bin/python" -m pytest -q -p no:cacheprovider) || status=$?
  kill "$mock_pid" 2>/dev/null || true
  wait "$mock_pid" 2>/dev/null || true
  if [ "$status" -eq 0 ] && [ -n "${DIASPORA_REFERENCE_PYTHON_TESTS:-}" ]; then
    DIASPORA_MOFKA_MOCK="$mock" bash scripts/run-reference-python-tests.sh \
      "$DIASPORA_REFERENCE_PYTHON_TESTS" "$mvenv/bin/python" mofka || status=$?
  fi
  rm -rf "$mwork"
  [ "$status" -eq 0 ] || { echo "test-python: the mofka driver failed from Python"; exit 1; }
else
  echo "test-python: the mofka driver from Python skipped: pkg-config finds no mercury.pc/argobots.pc"
fi

echo "test-python: diaspora_stream.mpi helpers under mpiexec -n 2"
out=$(timeout 120 "$DIASPORA_MPIEXEC" -n 2 "$py" tests/python/mpi_helpers.py 2>&1) || {
  echo "$out"; echo "test-python: the MPI helpers failed"; exit 1; }
echo "$out" | grep -q "mpi helpers: OK" || { echo "$out"; echo "test-python: no OK from rank 0"; exit 1; }
echo "$out" | grep "mpi helpers"

echo "test-python: coupling job, 2 Rust simulation ranks + 2 Python analysis ranks"
# The test command's own build of the example (same features: nothing to rebuild).
cargo build --quiet --features "${DIASPORA_TEST_FEATURES:-mpi,kafka,msk,hdf5,rayon}" --example coupling
work="$(mktemp -d)"
out=$(cd "$work" && timeout 300 "$DIASPORA_MPIEXEC" -n 2 "$OLDPWD/target/debug/examples/coupling" \
        --sims 2 --steps 20 --root "$work/topic" \
      : -n 2 "$py" "$OLDPWD/examples/python/coupling_analysis.py" --steps 20 2>&1) || {
  echo "$out"; echo "test-python: the Rust + Python coupling job failed"; rm -rf "$work"; exit 1; }
rm -rf "$work"
echo "$out" | grep -E "\(python\)|coupling:"
echo "$out" | grep -q "40/40 snapshots consumed exactly once" || {
  echo "test-python: the Python analysis ranks lost events"; exit 1; }
echo "test-python: done"
