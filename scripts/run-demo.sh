#!/usr/bin/env bash
# Quick start, command 1: set up the machine, then run the main job: 4 MPI ranks (2 simulation,
# 2 analysis) coupled through a topic of the embedded files driver. Extra arguments go to the
# example (try --help); RANKS=8 changes the number of ranks.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --release --features mpi --example coupling
"$DIASPORA_MPIEXEC" -n "${RANKS:-4}" target/release/examples/coupling "$@"
