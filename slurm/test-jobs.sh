#!/usr/bin/env bash
# Runs the job scripts on a one-node Slurm cluster started here (slurm/local-cluster.sh): the
# coupling job, the two-job pipeline and, when DIASPORA_KAFKA_BOOTSTRAP names a broker, the export
# job. Needs root. Uses the debug binaries of `cargo test --features mpi,kafka` (or DIASPORA_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."
export DIASPORA_SLURM_DIR="$PWD/slurm"
bin="${DIASPORA_BIN:-$PWD/target/debug}"
work="$(mktemp -d "$PWD/target/slurm-jobs.XXXXXX")"
export STATE="$work/cluster"
check() { if eval "$2"; then passed=$((passed+1)); echo "slurm test: $1: ok"; else failed=$((failed+1)); echo "slurm test: $1: FAILED"; fi; }

passed=0; failed=0
cleanup() {
  # Stop the daemons first: their PID files live in $work.
  bash "$DIASPORA_SLURM_DIR/local-cluster.sh" stop
  if [ "$failed" -eq 0 ]; then rm -rf "$work"; else echo "slurm test: files kept in $work"; fi
}
trap cleanup EXIT
eval "$(bash "$DIASPORA_SLURM_DIR/local-cluster.sh" start)"
cd "$work"

# 1. Coupling job, 4 tasks: 2 simulation + 2 analysis ranks.
set +e
sbatch --wait --export=ALL,DIASPORA_BIN="$bin/examples" -o coupling.out \
  "$DIASPORA_SLURM_DIR/coupling.sbatch" --steps 20 --values 512
rc=$?
set -e
cat coupling.out
check "coupling job exit code" '[ $rc -eq 0 ]'
check "coupling job: 4 ranks in one world" 'for r in 0 1 2 3; do grep -q "rank $r/4:" coupling.out || exit 1; done'
check "coupling job: events conserved" 'grep -q "40/40 snapshots consumed exactly once (40 expected, 0 duplicates" coupling.out'

# 2. Two-job pipeline: producer job (2 ranks x 300 events) and consumer job after it started.
export TOPIC_ROOT="$work/pipeline"
out=$(DIASPORA_BIN="$bin" EVENTS_PER_RANK=300 PARTITIONS=3 bash "$DIASPORA_SLURM_DIR/submit-pipeline.sh")
echo "$out"
consumer=$(echo "$out" | sed -n 's/.*consumer job \([0-9]*\).*/\1/p')
for _ in $(seq 1 600); do
  squeue -h -j "$consumer" 2>/dev/null | grep -q . || break
  sleep 0.5
done
scancel "$consumer" 2>/dev/null || true
cat diaspora-producer-*.out diaspora-consumer-*.out || true
check "pipeline: producer job totals" 'grep -q "Total events: 600" diaspora-producer-*.out'
check "pipeline: every event archived once" '[ "$(python3 -c "import json,sys; print(len({(e[\"partition\"], e[\"id\"]) for e in map(json.loads, open(sys.argv[1]))}))" "$TOPIC_ROOT.archive.jsonl")" = 600 ]'

# 3. Export job to Kafka, when a broker is available.
if [ -n "${DIASPORA_KAFKA_BOOTSTRAP:-}" ]; then
  kafka_topic="slurm-export-$$"
  echo "{\"kafka\": {\"bootstrap.servers\": \"$DIASPORA_KAFKA_BOOTSTRAP\"}}" > kafka.json
  "$bin/diaspora-ctl" topic create --driver kafka --driver-config kafka.json \
    --name "$kafka_topic" --topic.num_partitions 3 --topic.replication_factor 1
  set +e
  sbatch --wait --export=ALL,DIASPORA_BIN="$bin",KAFKA_BOOTSTRAP="$DIASPORA_KAFKA_BOOTSTRAP",KAFKA_TOPIC="$kafka_topic" \
    -o export.out "$DIASPORA_SLURM_DIR/export-kafka.sbatch"
  rc=$?
  set -e
  cat export.out
  check "export job ends by itself with exit code 0" '[ $rc -eq 0 ]'
  # --follow stops at the end of stream the export passed on (timeout: in case it did not).
  n=$(timeout 120 "$bin/diaspora-ctl" consume --driver kafka --driver-config kafka.json \
    --topic "$kafka_topic" --follow | wc -l)
  check "export job: 600 events in Kafka" '[ "$n" = 600 ]'
fi

cd - >/dev/null
echo "Slurm: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
[ "$failed" -eq 0 ]
