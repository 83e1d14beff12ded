#!/usr/bin/env bash
# A single-node SLURM cluster on localhost, for genkit's `slurm` tests and for trying
# `launcher=slurm` on one machine.
#
#   scripts/slurm-local.sh start    # install slurm-wlm + munge if missing, start munged, slurmctld, slurmd
#   scripts/slurm-local.sh stop     # cancel jobs, stop the daemons
#   scripts/slurm-local.sh status
#
# Needs root (it writes /etc/slurm/slurm.conf and the munge key). State lives in $GENKIT_SLURM_DIR.
set -euo pipefail

STATE=${GENKIT_SLURM_DIR:-/tmp/genkit-slurm}
CONF=/etc/slurm/slurm.conf

install_slurm() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return
    fi
    echo "Installing slurm-wlm and munge (apt-get)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_conf() {
    local cpus mem
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
    mkdir -p /etc/slurm "$STATE"/{state,spool,log}
    cat >"$CONF" <<CONF
# written by genkit's scripts/slurm-local.sh
ClusterName=genkit-local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
# requeued jobs may start again at once
MinJobAge=300
KillWait=10
InactiveLimit=0
SlurmdTimeout=60
NodeName=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
}

start_munge() {
    if pgrep -x munged >/dev/null; then return; fi
    mkdir -p /etc/munge /var/run/munge /var/lib/munge /var/log/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
    chown -R munge:munge /etc/munge /var/run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
    chmod 0400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged
}

wait_idle() {
    for _ in $(seq 1 60); do
        state=$(sinfo -h -n localhost -o %t 2>/dev/null || true)
        case "$state" in
            idle*|mix*|alloc*) return 0 ;;
            down*|drain*|unk*) scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 1
    done
    echo "SLURM node did not become idle; see $STATE/log" >&2
    return 1
}

case "${1:-}" in
    start)
        install_slurm
        write_conf
        start_munge
        pgrep -x slurmctld >/dev/null || slurmctld -c  # -c: no state from an earlier cluster
        pgrep -x slurmd >/dev/null || slurmd
        wait_idle
        echo "SLURM is up: $(sinfo -h -o '%P %D nodes %C cpus(A/I/O/T) %t')"
        ;;
    stop)
        if command -v scancel >/dev/null && pgrep -x slurmctld >/dev/null; then
            scancel --user=root >/dev/null 2>&1 || true
            sleep 1
        fi
        for daemon in slurmd slurmctld munged; do
            pkill -x "$daemon" 2>/dev/null || true
        done
        for _ in $(seq 1 30); do
            pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null || pgrep -x munged >/dev/null || break
            sleep 0.5
        done
        for daemon in slurmd slurmctld munged; do
            pkill -9 -x "$daemon" 2>/dev/null || true
        done
        echo "SLURM stopped"
        ;;
    status)
        for daemon in munged slurmctld slurmd; do
            printf '%-10s %s\n' "$daemon" "$(pgrep -x "$daemon" >/dev/null && echo running || echo stopped)"
        done
        command -v sinfo >/dev/null && sinfo 2>/dev/null || true
        ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
