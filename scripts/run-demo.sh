#!/usr/bin/env bash
# Quick start, command 1: set up the machine, then run the main job (simulation -> analysis
# coupling on the embedded files driver). Extra arguments go to the example (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo run --release --example pipeline -- "$@"
