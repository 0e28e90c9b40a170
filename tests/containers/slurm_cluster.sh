# shellcheck shell=bash
# A throwaway single-node Slurm cluster on localhost for the tests: a private munged (own key and
# socket, so a host's munge is never touched), slurmctld and slurmd as root, all state under one
# directory. Source this file, then:
#   slurm_cluster_up DIR     starts the daemons and exports SLURM_CONF; returns 1 if they fail
#   slurm_cluster_down DIR   cancels what is left and stops the daemons by their PID files
# Choices that make it work in a container without systemd or cgroups: proctrack/linuxproc,
# task/none, no accounting; the node claims 8 CPUs (config_overrides) so that 4-rank jobs and a
# batch job fit on a 2-core machine; AuthInfo cred_expire=5 because a requeued job waits that
# long before it may start again (120 s by default).

slurm_free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 20000))
        if ! ss -ltnH "sport = :$port" 2>/dev/null | grep -q .; then
            echo "$port"
            return
        fi
    done
}

slurm_cluster_up() {
    local dir=$1 node ctld_port slurmd_port
    node=$(hostname -s)
    mkdir -p "$dir/munge" "$dir/spool" "$dir/state"
    chmod 700 "$dir" "$dir/munge"
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 600 "$dir/munge/munge.key"
    # -f: munged refuses to run as root and in world-writable trees without it
    munged -f -S "$dir/munge/socket" --key-file="$dir/munge/munge.key" \
        --log-file="$dir/munge/munged.log" --pid-file="$dir/munge/munged.pid" \
        --seed-file="$dir/munge/seed" || return 1
    ctld_port=$(slurm_free_port)
    slurmd_port=$(slurm_free_port)
    cat >"$dir/slurm.conf" <<EOF
ClusterName=cairnci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/socket,cred_expire=5
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
MinJobAge=600
SchedulerParameters=sched_interval=1,bf_interval=1
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmdSpoolDir=$dir/spool
StateSaveLocation=$dir/state
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
NodeName=$node NodeAddr=127.0.0.1 CPUs=8 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
    export SLURM_CONF=$dir/slurm.conf
    slurmctld -f "$SLURM_CONF" || return 1
    slurmd -f "$SLURM_CONF" -N "$node" || return 1
    for _ in $(seq 100); do
        if [ "$(sinfo -h -N -o %t 2>/dev/null)" = idle ]; then return 0; fi
        sleep 0.2
    done
    echo "slurm: the node did not become idle in 20 s; slurmctld.log and slurmd.log:" >&2
    tail -n 5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2
    return 1
}

slurm_stop_pid_file() {
    local file=$1 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

slurm_cluster_down() {
    local dir=$1
    if [ -f "$dir/slurm.conf" ]; then
        scancel --full --quiet --partition=debug 2>/dev/null || true
        for _ in $(seq 50); do
            [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
    slurm_stop_pid_file "$dir/slurmd.pid"
    slurm_stop_pid_file "$dir/slurmctld.pid"
    slurm_stop_pid_file "$dir/munge/munged.pid"
}
