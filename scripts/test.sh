#!/usr/bin/env bash
# Quick start, command 2: set up the machine, then run every test (unit, conformance suite on the
# files driver, C++ fixture compatibility, multi-process and crash tests, doc tests).
# The C++ fixtures are read from ../shared next to the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo test --no-fail-fast "$@"
