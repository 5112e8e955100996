#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for testing `mbrl slurm`. Needs root (or sudo).
#
#   eval "$(scripts/slurm-cluster.sh)"        start it; prints the variables to export
#   scripts/slurm-cluster.sh stop             stop the daemons it started, remove its directory
#
# Start installs slurm-wlm and munge with apt-get if they are absent (it says so first: about
# 20 MB to download, 60 MB installed), then keeps everything else in one directory,
# $MBRL_SLURM_DIR (default ${TMPDIR:-/tmp}/mbrl-slurm): slurm.conf, a munge key and socket,
# spool, state, logs and pid files. Nothing is written under /etc, and the cluster listens on
# its own ports ($MBRL_SLURM_PORT and the next one, default 16817-16818), so a Slurm the
# machine already has is left alone. It starts munged, slurmctld and slurmd, waits until the
# node takes jobs, and prints `export SLURM_CONF=...` (which Slurm's commands read) and, when it
# started the daemons, `export MBRL_SLURM_STARTED=1`. Idempotent: a cluster already running in
# that directory is left as it is. A start that fails stops what it started.
set -euo pipefail

DIR="${MBRL_SLURM_DIR:-${TMPDIR:-/tmp}/mbrl-slurm}"
PORT="${MBRL_SLURM_PORT:-16817}"
say() { echo "slurm-cluster: $*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo"; else
        say "needs root or sudo"; exit 1
    fi
fi

# The daemons started in $DIR, by the pids they wrote: stopped by pid, never by name.
stop() {
    local pidfile pid
    for pidfile in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/munged.pid"; do
        [ -s "$pidfile" ] || continue
        pid="$(cat "$pidfile")"
        $SUDO kill "$pid" 2>/dev/null || continue
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && $SUDO kill -9 "$pid" 2>/dev/null || true
    done
    $SUDO rm -rf "$DIR"
}

running() {
    [ -s "$DIR/slurm.conf" ] && [ -s "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null \
        && SLURM_CONF="$DIR/slurm.conf" sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'
}

case "${1:-start}" in
    stop) stop; say "stopped (removed $DIR)"; exit 0 ;;
    start) ;;
    *) say "usage: $0 [start|stop]"; exit 2 ;;
esac

if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    say "installing Debian's slurm-wlm and munge with apt-get (about 20 MB to download, 60 MB installed; apt prints the exact sizes)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q slurm-wlm munge \
        | grep -E '^(Need to get|After this operation)' >&2 || true
    command -v slurmctld >/dev/null || { say "the installation failed"; exit 1; }
fi

if running; then
    say "already running in $DIR"
    echo "export SLURM_CONF=$DIR/slurm.conf"
    exit 0
fi

# From here on a failure stops what was started.
trap 'stop' ERR
trap 'stop; exit 1' INT TERM
$SUDO rm -rf "$DIR"
mkdir -p "$DIR/spool/ctld" "$DIR/spool/d"
HOST="$(hostname -s)"
CPUS="$(nproc)"
MEM_MB="$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)"
cat >"$DIR/slurm.conf" <<EOF
# Written by mbrl's scripts/slurm-cluster.sh: one node, for tests.
ClusterName=mbrl-test
SlurmctldHost=$HOST
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge.socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
KillWait=10
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/d
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

# munge: its own key, socket and pid file in $DIR (as root: containers have no systemd).
dd if=/dev/urandom of="$DIR/munge.key" bs=1024 count=1 status=none
chmod 700 "$DIR"
chmod 400 "$DIR/munge.key"
$SUDO munged --force --key-file="$DIR/munge.key" --socket="$DIR/munge.socket" \
    --pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log" --seed-file="$DIR/munged.seed"
export SLURM_CONF="$DIR/slurm.conf"
$SUDO env SLURM_CONF="$SLURM_CONF" slurmctld
$SUDO env SLURM_CONF="$SLURM_CONF" slurmd

for _ in $(seq 1 60); do
    STATE="$(sinfo -h -o '%T' 2>/dev/null | head -1 || true)"
    case "$STATE" in
        idle|mixed|allocated)
            say "node $HOST $STATE ($CPUS CPUs, $MEM_MB MB) in $DIR, ports $PORT-$((PORT + 1))"
            echo "export SLURM_CONF=$SLURM_CONF"
            echo "export MBRL_SLURM_STARTED=1"
            exit 0 ;;
        down*|drain*) $SUDO env SLURM_CONF="$SLURM_CONF" scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
done
say "the node did not come up; the logs were in $DIR (removed)"
sinfo >&2 || true
tail -n 20 "$DIR"/*.log >&2 || true
stop
exit 1
