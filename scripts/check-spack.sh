#!/usr/bin/env bash
# Checks the Spack recipes under spack/ without Spack (which cannot be installed here): Python
# syntax (py_compile), formatting (black -l 99) and lint (flake8, 99 columns). black and flake8
# come from PyPI into a virtual environment under target/ (made once, reused afterwards).
#
# Usage: bash scripts/check-spack.sh
# Environment: SPACK_CHECK_VENV (default target/spack-check-venv), BLACK_VERSION, FLAKE8_VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  -h|--help) sed -n '2,7s/^# \{0,1\}//p' "$0"; exit 0 ;;
  "") ;;
  *) echo "check-spack: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac

venv="${SPACK_CHECK_VENV:-target/spack-check-venv}"
black_version="${BLACK_VERSION:-26.10.1}"
flake8_version="${FLAKE8_VERSION:-7.5.0}"

if ! "$venv/bin/python" -m black --version 2>/dev/null | grep -q "black, $black_version " ||
   [ "$("$venv/bin/python" -m flake8 --version 2>/dev/null | head -n1 | cut -d' ' -f1)" != \
     "$flake8_version" ]; then
  echo "check-spack: installing black $black_version and flake8 $flake8_version into $venv"
  python3 -m venv "$venv" || {
    echo "check-spack: python3 cannot make a venv (Debian: apt-get install python3-venv)" >&2
    exit 1
  }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "black==$black_version" "flake8==$flake8_version"
fi

mapfile -t files < <(find spack -name '*.py' -type f | sort)
if [ "${#files[@]}" -eq 0 ]; then
  echo "check-spack: no .py file under spack/" >&2
  exit 1
fi

failed=0
step() {
  local name="$1"; shift
  if "$@"; then
    echo "check-spack: $name: ok"
  else
    echo "check-spack: $name: FAILED"
    failed=1
  fi
}
# py_compile writes __pycache__ next to the sources: send it to the venv instead.
step "python syntax" env PYTHONPYCACHEPREFIX="$venv/pycache" "$venv/bin/python" -m py_compile "${files[@]}"
step "black -l 99" "$venv/bin/python" -m black --quiet --check --diff -l 99 "${files[@]}"
step "flake8" "$venv/bin/python" -m flake8 --max-line-length 99 "${files[@]}"

if [ "$failed" -ne 0 ]; then
  echo "check-spack: ${#files[@]} recipe file(s), FAILED"
  exit 1
fi
echo "check-spack: ${#files[@]} recipe file(s) pass"
