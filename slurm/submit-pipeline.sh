#!/usr/bin/env bash
# Submits the two-job pipeline: the consumer job may start as soon as the producer job has
# started (--dependency=after:), so events stream from one to the other.
#   TOPIC_ROOT=/lustre/$USER/run42 slurm/submit-pipeline.sh
set -euo pipefail
: "${TOPIC_ROOT:?set TOPIC_ROOT to a folder on a shared file system}"
export TOPIC_ROOT
mkdir -p "$(dirname "$TOPIC_ROOT")"
here="$(cd "$(dirname "$0")" && pwd)"
export DIASPORA_SLURM_DIR="${DIASPORA_SLURM_DIR:-$here}"
producer=$(sbatch --parsable --export=ALL "$here/pipeline-producer.sbatch")
consumer=$(sbatch --parsable --export=ALL --dependency=after:"$producer" "$here/pipeline-consumer.sbatch")
echo "producer job $producer, consumer job $consumer"
