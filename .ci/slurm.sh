#!/usr/bin/env bash
# CI stage "SLURM": a real one-node Slurm cluster on localhost (Debian's slurm-wlm + munge), then
# config/paper.yaml in miniature through profiles/slurm, with checks:
#   - every non-local job ran as a SLURM job, and the GPU rules (search, train, evaluate) were
#     submitted with --gpus=1 and got a GPU (Slurm set CUDA_VISIBLE_DEVICES, their logs say so);
#   - a train job cancelled with scancel mid-run (and its retry) fails the invocation, named in its
#     output, and the next invocation completes it;
#   - results/table1.csv has MetaNTK-NAS and MetaNAS (retrained) for both datasets and cell counts;
#   - a further invocation has nothing to do.
# Idempotent: installs only what is missing, reuses a running cluster with the same configuration,
# and runs the workflow in a fresh scratch copy of the working tree (never in the repo's results/).
# Needs root (CI runs as root). Usage: bash .ci/slurm.sh [--cluster-only]
# (--cluster-only: start the cluster and stop there.) It writes /etc/slurm/slurm.conf and gres.conf
# (and refuses to overwrite a slurm.conf it did not write).
# Environment: METANTK_SLURM_DIR (cluster state and scratch, default /var/tmp/metantk-nas-slurm),
# METANTK_SLURM_STOP=1 to stop the cluster at the end, METANTK_SLURM_METHODS=table1|all|quick for
# the methods kept from paper.yaml's experiments (.ci/slurm_ci.py METHOD_SETS): table1 (default:
# MetaNTK-NAS and MetaNAS(retrained), Table 1's methods, what the checks need), all (also the Table 2
# ablation: six further searches, too long for CI on 2 cores), quick (no pruning search, for debugging
# the SLURM machinery; Table 1 then has the MetaNAS rows only),
# METANTK_SLURM_JOBS=N to run at most N SLURM jobs at once (default: two per core, see SLOTS).
# The whole script is one block, parsed before it runs: editing the file (a checkout) mid-run is safe.
{
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${METANTK_SLURM_DIR:-/var/tmp/metantk-nas-slurm}
start=$(date +%s)
step() { echo; echo "== slurm: $* ($(( $(date +%s) - start )) s)"; }
fail() { echo "slurm.sh: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || fail "needs root (it installs packages and starts munged, slurmctld and slurmd)"
if [[ -x $REPO/.venv/bin/snakemake ]]; then PATH=$REPO/.venv/bin:$PATH; fi
command -v snakemake >/dev/null || fail "snakemake not found: run after 'make venv' (or put the venv on PATH)"
PYTHON=$(dirname "$(command -v snakemake)")/python
CORES=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)   # nproc honours OMP_NUM_THREADS
# Job slots (fake GPUs, concurrent SLURM jobs): two per core, each job one thread. The executor polls
# job states with a back-off (2, 12, 22, ... s after the last finish seen), so a job that ends keeps its
# slot until the next poll (the short evaluate/train jobs here showed 36 s each); a second slot per core
# lets another job compute meanwhile.
SLOTS=$((2 * CORES))
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

# ------------------------------------------------------------------ (a) packages
step "packages"
missing=0
for tool in munged munge slurmctld slurmd sbatch squeue scontrol scancel sinfo; do
    command -v "$tool" >/dev/null || missing=1
done
if (( missing )); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
echo "$(slurmctld -V), $(munged --version 2>&1 | head -1)"

# ------------------------------------------------------------------ (b) the cluster
step "munge"
if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
fi
munge -n | unmunge >/dev/null || fail "munged does not answer"

step "slurm.conf"
# A test cluster: one node (this host) with one fake GPU per job slot, so that each GPU job is a real
# --gpus=1 allocation and as many of them run at once as there are slots. SlurmdParameters=
# config_overrides lets the node declare more CPUs and memory than the machine has, so that the
# profile's real requests (--cpus-per-gpu=8, --mem 32000) are accepted unchanged; every job runs
# one thread (--set-threads below). The GPUs are /dev/null: no driver is touched, but Slurm binds
# them and sets CUDA_VISIBLE_DEVICES, which the GPU rules log.
HOST=$(hostname -s)
NGPU=$SLOTS
# The configuration goes to Slurm's default place: the SLURM jobstep plugin strips SLURM_* variables
# (SLURM_CONF included) before its srun, so a private SLURM_CONF does not reach srun in the job.
ETC=/etc/slurm
MARK="# Written by .ci/slurm.sh: a one-node test cluster on localhost."
if [[ -e $ETC/slurm.conf ]] && ! grep -qxF "$MARK" "$ETC/slurm.conf"; then
    fail "$ETC/slurm.conf exists and was not written by this script; not touching a real cluster's configuration"
fi
unset SLURM_CONF
mkdir -p "$ETC" "$STATE/ctld" "$STATE/spool" "$STATE/log"
mkdir -p "$STATE/dev"
for ((i = 0; i < NGPU; i++)); do ln -sfn /dev/null "$STATE/dev/gpu$i"; done
cat > "$ETC/slurm.conf.new" <<EOF
$MARK
ClusterName=metantk-ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
# Finished jobs stay visible to squeue/scontrol for a day: the status queries (no sacct without an
# accounting database) and the checks below read them.
MinJobAge=86400
KillWait=5
ReturnToService=2
DefMemPerCPU=1000
GresTypes=gpu
SlurmdParameters=config_overrides
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=16 RealMemory=64000 Gres=gpu:$NGPU State=UNKNOWN
PartitionName=ci Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
cat > "$ETC/gres.conf.new" <<EOF
AutoDetect=off
NodeName=$HOST Name=gpu File=$STATE/dev/gpu[0-$((NGPU - 1))]
EOF
changed=0
for f in slurm.conf gres.conf; do
    if ! cmp -s "$ETC/$f.new" "$ETC/$f"; then mv "$ETC/$f.new" "$ETC/$f"; changed=1; else rm "$ETC/$f.new"; fi
done

step "slurmctld + slurmd"
running() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
if (( changed )) || ! running "$STATE/slurmctld.pid" || ! running "$STATE/slurmd.pid" || ! scontrol ping >/dev/null 2>&1; then
    for daemon in slurmd slurmctld; do
        if running "$STATE/$daemon.pid"; then
            pid=$(cat "$STATE/$daemon.pid"); kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        fi
    done
    slurmctld
    slurmd
fi
for _ in $(seq 60); do
    state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
    case $state in
        idle|mixed|allocated) break ;;
        *drain*|*inval*|down*) scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.5
done
sinfo
[[ $state == idle || $state == mixed || $state == allocated ]] || {
    tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log"; fail "node $HOST is '$state', not idle"; }

# Wait for a SLURM job to end; prints its final state.
wait_job() {
    local state
    while :; do
        state=$(squeue -h --states=all -j "$1" -o %T 2>/dev/null || true)
        case $state in PENDING|CONFIGURING|RUNNING|COMPLETING|"") sleep 0.5 ;; *) echo "$state"; return ;; esac
    done
}
probe=$(sbatch --parsable --gpus=1 --output=/dev/null --wrap 'test -n "${CUDA_VISIBLE_DEVICES:-}"')
[[ $(wait_job "$probe") == COMPLETED ]] || fail "sbatch --gpus=1 job $probe did not complete (no GPU?)"
echo "sbatch --gpus=1 --wrap ...: job $probe COMPLETED with CUDA_VISIBLE_DEVICES set"

if [[ ${1:-} == --cluster-only ]]; then
    echo "cluster up ($ETC/slurm.conf)"; exit 0
fi

# ------------------------------------------------------------------ (c) the miniature paper run
step "scratch copy, fixtures and overrides"
RUN=$STATE/work
# Jobs left over from an interrupted earlier run would write into the scratch copy: cancel them
# (this test cluster runs nothing else).
leftover=$(squeue -h -o %i)
if [[ -n $leftover ]]; then
    echo "cancelling leftover SLURM jobs: $(echo $leftover)"; scancel $leftover
    for _ in $(seq 60); do [[ -z $(squeue -h -o %i) ]] && break; sleep 0.5; done
fi
rm -rf "$RUN"
mkdir -p "$RUN/repo"
# The working tree as git sees it (tracked and untracked, not ignored), or without git the tree
# minus the environment and every output.
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done \
        | tar --null -cf - -T -) | tar -xf - -C "$RUN/repo"
else
    tar -C "$REPO" --exclude=./.venv --exclude=./.git --exclude=./results --exclude=./resources \
        --exclude=./logs --exclude=./.snakemake --exclude=__pycache__ -cf - . | tar -xf - -C "$RUN/repo"
fi
cd "$RUN/repo"
CI="$PYTHON .ci/slurm_ci.py"
PYTHONPATH=$PWD/src $CI fixtures "$RUN/data"
METHODS=(--methods "${METANTK_SLURM_METHODS:-table1}")
$CI overrides "${METHODS[@]}" --paper config/paper.yaml --data "$RUN/data" --out "$RUN/overrides.yaml" > "$RUN/overrides.print"
echo "overrides: $RUN/overrides.yaml"

# The real profile, plus test-only settings: status from squeue (no accounting database), no
# account, fast status polling, short latency, two jobs per core (SLOTS), one thread per job.
SMK=(snakemake --profile profiles/slurm
     --configfile config/paper.yaml "$RUN/overrides.yaml"
     --slurm-status-command squeue --slurm-no-account --slurm-init-seconds-before-status-checks 2
     --jobs "${METANTK_SLURM_JOBS:-$SLOTS}" --local-cores 1 --latency-wait 5
     --set-threads prepare=1 search=1 train=1 evaluate=1 theory=1)
CANCEL_RULE=train
CANCEL_WILDCARDS=(mini 5 metanas 1)   # a short job in the middle of the DAG
CANCEL_COMMENT="rule_${CANCEL_RULE}_wildcards_$(IFS=_; echo "${CANCEL_WILDCARDS[*]}")"
CANCEL_OUTPUT=results/mini/5cell/metanas/seed1/train/model.pt
CANCEL_LOG=logs/train/mini/5cell/metanas/seed1.log

step "run 1: the workflow on SLURM; $CANCEL_COMMENT is cancelled with scancel mid-run"
set +e
# --retries 0 for this run only: the profile resubmits a failed job once (retries: 1), and whether a
# resubmitted attempt is caught mid-run depends on how long its command runs (a 1-epoch training can
# end before it is seen), so the check cancels one attempt and no resubmission follows it.
"${SMK[@]}" --retries 0 > "$RUN/run1.log" 2>&1 &
smk=$!
$CI cancel --comment "$CANCEL_COMMENT" --started "$CANCEL_LOG" --times 1 --pid "$smk" --delay 0.5 --record "$RUN/cancelled.txt"
cancel_rc=$?
wait "$smk"
rc1=$?
set -e
[[ $cancel_rc == 0 ]] || { tail -n 40 "$RUN/run1.log"; fail "the scancel step failed"; }
[[ $rc1 != 0 ]] || fail "run 1 exited 0 although its job $CANCEL_COMMENT was cancelled"
for id in $(cat "$RUN/cancelled.txt"); do
    # The error names the rule, the SLURM job and its state, and the job's outputs.
    grep -A8 "^Error in rule $CANCEL_RULE:" "$RUN/run1.log" | grep -A6 "SLURM-job '$id' failed, SLURM status is: 'CANCELLED'" \
        | grep -q "output: $CANCEL_OUTPUT" || fail "run 1 does not report the cancelled SLURM job $id ($CANCEL_COMMENT)"
    [[ $(squeue -h --states=all -j "$id" -o %T) == CANCELLED ]] || fail "SLURM job $id is not CANCELLED"
done
[[ ! -e $CANCEL_OUTPUT ]] || fail "$CANCEL_OUTPUT exists after its job was cancelled"
echo "run 1 exited $rc1 and reported the cancelled job(s) $(tr '\n' ' ' < "$RUN/cancelled.txt")(rule $CANCEL_RULE, mini/5/metanas/1)"
$CI check-run "$RUN/run1.log"

step "run 2: the next invocation completes the workflow"
"${SMK[@]}" > "$RUN/run2.log" 2>&1 || { tail -n 60 "$RUN/run2.log"; fail "run 2 failed"; }
grep -q "rule $CANCEL_RULE:" "$RUN/run2.log" && [[ -s $CANCEL_OUTPUT ]] || fail "run 2 did not redo $CANCEL_COMMENT"
$CI check-run --complete "$RUN/run2.log"

# ------------------------------------------------------------------ (d) checks
step "results/table1.csv"
$CI check-table "${METHODS[@]}" results/table1.csv

step "run 3: a further invocation has nothing to do"
before=$(squeue -h --states=all -o %i | wc -l)
"${SMK[@]}" > "$RUN/run3.log" 2>&1 || { tail -n 40 "$RUN/run3.log"; fail "run 3 failed"; }
grep -q "Nothing to be done" "$RUN/run3.log" || { tail -n 40 "$RUN/run3.log"; fail "run 3 had work to do"; }
[[ $(squeue -h --states=all -o %i | wc -l) == "$before" ]] || fail "run 3 submitted SLURM jobs"
echo "nothing to be done, no SLURM job submitted"

if [[ ${METANTK_SLURM_STOP:-0} == 1 ]]; then
    kill "$(cat "$STATE/slurmd.pid")" "$(cat "$STATE/slurmctld.pid")"
fi
step "SLURM stage passed in $(( $(date +%s) - start )) s (logs: $RUN/run{1,2,3}.log)"
exit
}
