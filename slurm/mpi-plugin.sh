#!/usr/bin/env bash
# Sourced by the job scripts: sets SRUN_MPI to the srun MPI plugin matching the MPI the programs
# were built with. Override with DIASPORA_MPI=openmpi|mpich (or SRUN_MPI=... directly).
#   OpenMPI -> --mpi=pmix   MPICH -> --mpi=pmi2
# A wrong plugin either crashes or silently starts N single-rank copies: the coupling job prints
# the world size every rank sees, so check it.
if [ -z "${SRUN_MPI:-}" ]; then
  flavour="${DIASPORA_MPI:-}"
  if [ -z "$flavour" ]; then
    # The launcher on PATH tells which MPI is in use (after `module load` or `spack load`).
    if mpirun --version 2>/dev/null | grep -qi "open mpi"; then flavour=openmpi
    elif mpirun --version 2>/dev/null | grep -qiE "hydra|mpich"; then flavour=mpich
    else flavour=openmpi
    fi
  fi
  case "$flavour" in
    openmpi) SRUN_MPI=pmix ;;
    mpich) SRUN_MPI=pmi2 ;;
    *) echo "unknown DIASPORA_MPI=$flavour (use openmpi or mpich)" >&2; exit 2 ;;
  esac
fi
export SRUN_MPI
