#!/usr/bin/env bash
# Checks the driver template end to end, as a new driver's author would use it: instantiates
# templates/driver with scripts/new-driver.sh into a temporary folder, and runs the new crate's
# own CI (.ci/run: fmt, clippy, the conformance kit and its tests, its benchmark, the cdylib,
# and a produce/consume round trip in which diaspora-ctl loads the library by name).
#
# Usage: bash scripts/check-template.sh [NAME]     (default NAME: tmpl_check)
# Uses this checkout's diaspora-ctl (target/debug, built if missing); the new crate builds in
# target/template-driver so that a second run reuses its dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in -h|--help) sed -n '2,9s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
name="${1:-tmpl_check}"
here="$PWD"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
[ -x target/debug/diaspora-ctl ] || cargo build -p diaspora-stream-cli --bin diaspora-ctl
echo "check-template: creating driver '$name' in a temporary folder"
bash scripts/new-driver.sh "$name" "$work/$name"
echo "check-template: a bad name is refused"
if bash scripts/new-driver.sh "not-an-identifier" "$work/bad" 2>"$work/err"; then
  echo "check-template: new-driver.sh accepted a bad name" >&2; exit 1
fi
grep -q "is not a driver name" "$work/err"
cd "$work/$name"
echo "check-template: running the new crate's .ci/run"
PATH="$here/target/debug:$PATH" CARGO_TARGET_DIR="$here/target/template-driver" bash .ci/run
# The new crate's Spack recipe, with the checks of scripts/check-spack.sh (whose venv CI made).
venv="$here/${SPACK_CHECK_VENV:-target/spack-check-venv}"
if [ -x "$venv/bin/python" ]; then
  recipe="spack/packages/$name/package.py"
  python3 -m py_compile "$recipe"
  "$venv/bin/python" -m black --check -q -l 99 "$recipe"
  "$venv/bin/python" -m flake8 --max-line-length 99 "$recipe"
  echo "check-template: Spack recipe passes py_compile, black and flake8"
fi
echo "check-template: ok"
