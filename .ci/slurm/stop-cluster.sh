#!/usr/bin/env bash
# Stop the single-node SLURM test cluster started by .ci/slurm/start-cluster.sh.
#
#   .ci/slurm/stop-cluster.sh            # stop slurmd, slurmctld, munged
#   .ci/slurm/stop-cluster.sh --purge    # ... and forget all job/node state
#                                        # (job ids restart at 1 next time)
#
# Processes are stopped via their pid files only. Packages and configuration
# are left in place, so the next start-cluster.sh takes about a second.
set -euo pipefail

T0=$(date +%s%N)
elapsed() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf '%d.%d' $((ms / 1000)) $(((ms % 1000) / 100)); }
log() { echo "[stop-cluster +$(elapsed)s] $*"; }

[[ $(id -u) -eq 0 ]] || { echo "must run as root" >&2; exit 1; }

purge=0
[[ ${1:-} == --purge ]] && purge=1

stop_pidfile() { # name pidfile
  local name=$1 pf=$2 pid
  if [[ -s $pf ]] && pid=$(cat "$pf") && kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not stop after 10 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  else
    log "$name not running"
  fi
  rm -f "$pf"
}

stop_pidfile slurmd /run/slurm/slurmd.pid
stop_pidfile slurmctld /run/slurm/slurmctld.pid
stop_pidfile munged /run/munge/munged.pid

if [[ $purge -eq 1 ]]; then
  log "purging slurmctld/slurmd state"
  rm -rf /var/lib/slurm/slurmctld/* /var/lib/slurm/slurmd/*
fi
log "done"
