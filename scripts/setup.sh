#!/usr/bin/env bash
# Installs what diaspora-stream-rs needs on Debian 12: a C toolchain, OpenMPI and MPICH (with
# libclang for the MPI bindings), OpenSSL headers and perl (for the bundled librdkafka), Python's
# venv (for the test broker), HDF5 (serial and OpenMPI builds, and h5dump), Slurm and munge (for the job-script tests on a local one-node
# cluster), and a current Rust toolchain. Safe to run again.
set -euo pipefail

packages=(build-essential pkg-config ca-certificates curl libclang-dev libssl-dev perl
          python3-venv libopenmpi-dev openmpi-bin libmpich-dev mpich
          munge slurmctld slurmd slurm-client
          libhdf5-dev libhdf5-openmpi-dev hdf5-tools)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  # Debian 12's own rustc (1.63) is too old for this crate; rustup installs a current stable.
  echo "setup: installing the Rust toolchain with rustup"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
  export PATH="$HOME/.cargo/bin:$PATH"
fi

# Build and run against OpenMPI by default (both MPIs are installed; the launcher must match
# the library the bindings were built with).
export MPICC="${MPICC:-mpicc.openmpi}"
export DIASPORA_MPIEXEC="${DIASPORA_MPIEXEC:-mpiexec.openmpi}"
# HDF5: the OpenMPI build of the library (parallel HDF5), which the `mpi,hdf5` features need;
# Debian's default hdf5.pc may point at either build.
multiarch="$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
export HDF5_DIR="${HDF5_DIR:-/usr/lib/$multiarch/hdf5/openmpi}"
# OpenMPI refuses to run as root and to start more ranks than cores unless told.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=1
echo "setup: $(cargo --version), MPICC=$MPICC"
