#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for testing `mbrl slurm`:
# installs slurm-wlm and munge (Debian/Ubuntu) if absent, writes a minimal
# slurm.conf for this host, starts munged, slurmctld and slurmd, and waits
# until the node takes jobs. Needs root (or sudo). Idempotent: a running
# cluster is left as it is. `scripts/slurm-cluster.sh stop` stops it.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "slurm-cluster: needs root or sudo" >&2; exit 1
    fi
fi

if [ "${1:-}" = stop ]; then
    $SUDO pkill -x slurmd || true
    $SUDO pkill -x slurmctld || true
    exit 0
fi

if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq slurm-wlm munge >/dev/null
fi

if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "slurm-cluster: already running"; exit 0
fi

HOST="$(hostname -s)"
CPUS="$(nproc)"
MEM_MB="$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)"
CONF_DIR=/etc/slurm
[ -d /etc/slurm-llnl ] && [ ! -d /etc/slurm ] && CONF_DIR=/etc/slurm-llnl

$SUDO mkdir -p "$CONF_DIR" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
$SUDO tee "$CONF_DIR/slurm.conf" >/dev/null <<EOF
# Written by mbrl's scripts/slurm-cluster.sh: one node, for tests.
ClusterName=mbrl-test
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
KillWait=10
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

# munge: a key, then the daemon (as root: containers have no systemd).
if [ ! -s /etc/munge/munge.key ]; then
    $SUDO mkdir -p /etc/munge
    $SUDO dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
$SUDO chmod 400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then
    $SUDO chown root:root /etc/munge/munge.key /etc/munge /var/lib/munge /var/log/munge /run/munge 2>/dev/null || true
    $SUDO munged --force
fi

pgrep -x slurmctld >/dev/null || $SUDO slurmctld
pgrep -x slurmd >/dev/null || $SUDO slurmd

for _ in $(seq 1 60); do
    STATE="$(sinfo -h -o '%T' 2>/dev/null | head -1 || true)"
    case "$STATE" in
        idle|mixed|allocated) echo "slurm-cluster: node $HOST $STATE ($CPUS CPUs, $MEM_MB MB)"; exit 0 ;;
        down*|drain*) $SUDO scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
done
echo "slurm-cluster: the node did not come up; see /var/log/slurm/" >&2
sinfo >&2 || true
exit 1
