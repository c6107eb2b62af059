#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for testing the job scripts (needs root and Debian's
# munge, slurmctld, slurmd and slurm-client packages). Everything it writes lives in $STATE
# (default target/slurm-local); daemons listen on 127.0.0.1 and are stopped by their PIDs.
#   slurm/local-cluster.sh start   # prints "export SLURM_CONF=..." for the clients
#   slurm/local-cluster.sh stop
set -euo pipefail
STATE="${STATE:-$(pwd)/target/slurm-local}"
CONF="$STATE/slurm.conf"
cpus="${SLURM_LOCAL_CPUS:-4}"

start() {
  # Another slurmctld on the default port would answer our clients instead of ours.
  if (exec 3<>/dev/tcp/127.0.0.1/6817) 2>/dev/null; then
    echo "local-cluster: something already listens on 127.0.0.1:6817 (another slurmctld?)" >&2
    return 1
  fi
  mkdir -p "$STATE"/{ctld,spool,log}
  # munge: the authentication daemon Slurm needs (started only if not already running).
  if ! pgrep -x munged >/dev/null; then
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    [ -f /etc/munge/munge.key ] || { /usr/sbin/mungekey --create 2>/dev/null || create-munge-key -f; }
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 1 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
    cp /run/munge/munged.pid "$STATE/munged.pid"
  fi
  cat > "$CONF" <<CONF
ClusterName=diaspora-test
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
  export SLURM_CONF="$CONF"
  slurmctld -i -f "$CONF"
  slurmd -N localhost -f "$CONF"
  for _ in $(seq 1 100); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      echo "export SLURM_CONF=$CONF"
      return 0
    fi
    sleep 0.3
  done
  echo "local-cluster: the node did not become idle; logs:" >&2
  tail -20 "$STATE"/log/*.log >&2 || true
  return 1
}

stop() {
  local pids=()
  for d in slurmd slurmctld munged; do
    if [ -f "$STATE/$d.pid" ]; then
      pid=$(cat "$STATE/$d.pid")
      kill "$pid" 2>/dev/null && pids+=("$pid")
      rm -f "$STATE/$d.pid"
    fi
  done
  # Wait until they have exited: slurmctld saves its state on SIGTERM, and the caller may
  # remove the state folder right after this returns.
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "local-cluster: PID $pid did not stop within 15 s; killing it" >&2
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
