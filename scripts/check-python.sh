#!/usr/bin/env bash
# Checks the Python sources of the project (the diaspora_stream package, its tests, the Python
# examples): black -l 99 and flake8 (99 columns; E203 off, as black formats slices that way),
# from the virtual environment that scripts/check-spack.sh installs (run it first).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${SPACK_CHECK_VENV:-target/spack-check-venv}/bin/python"
"$py" -m black --version > /dev/null 2>&1 || {
  echo "check-python: no black in ${SPACK_CHECK_VENV:-target/spack-check-venv}: run scripts/check-spack.sh first" >&2
  exit 1
}
dirs=(python tests/python examples/python)
"$py" -m black -q -l 99 --check "${dirs[@]}"
"$py" -m flake8 --max-line-length 99 --extend-ignore E203 "${dirs[@]}"
echo "check-python: black and flake8 pass on ${dirs[*]}"
