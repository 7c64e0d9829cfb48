#!/bin/bash
# One vitlab run over several nodes: one SLURM task per node starts Accelerate's launcher for
# that node's processes (`srun` + `accelerate launch --num_machines`), and they meet at the first
# node. Before the job's time limit SLURM warns this script (--signal=B:USR1@SECONDS); it passes
# the warning on to the training processes as SIGTERM, which save their checkpoint at the next
# step and stop, then requeues the job, which resumes from that checkpoint. A run stopped that way
# finishes with the uninterrupted run's result.
#
#   sbatch --nodes=4 --gpus-per-node=8 scripts/slurm_multinode.sh /shared/results --set preset=vit-b/16 ...
#
# Arguments after the results directory go to `vitlab train` (its --set fields, --checkpoint-every).
# Processes per node: VITLAB_PROCS_PER_NODE, else the node's GPUs (SLURM_GPUS_ON_NODE), else 1.
# VITLAB_PORT sets the rendezvous port (default 29500). Check the run's memory first:
#   vitlab sweep params.yaml --dry-run
#SBATCH --job-name=vitlab-multinode
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%j.out
set -uo pipefail

RESULTS=${1:?usage: sbatch scripts/slurm_multinode.sh RESULTS_DIR [vitlab train options]}
shift
cd "${SLURM_SUBMIT_DIR:-.}"
# shellcheck disable=SC1091
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi

export VITLAB_MAIN_IP VITLAB_PORT VITLAB_PER_NODE VITLAB_RESULTS=$RESULTS
VITLAB_MAIN_IP=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
VITLAB_PORT=${VITLAB_PORT:-29500}
VITLAB_PER_NODE=${VITLAB_PROCS_PER_NODE:-${SLURM_GPUS_ON_NODE:-1}}
# Each task's machine rank is its task id (one task per node: the node's index). Quoted, so that
# each task reads its own. Static rendezvous: SLURM fixes the nodes and their ranks, and only rank
# 0 hosts the store (with c10d every launcher on the main host tries to, so two tasks sharing a
# node race for the port). One process in all is started plainly: Accelerate's distributed
# launcher wants two or more, and its single-process one dies on SIGTERM before its child saves.
LAUNCH='if (( SLURM_NTASKS * VITLAB_PER_NODE == 1 )); then exec python -m vitlab.cli train --results "$VITLAB_RESULTS" --quiet "$@"; fi
  exec accelerate launch --multi_gpu --num_machines "$SLURM_NTASKS" --machine_rank "$SLURM_PROCID" \
  --num_processes $(( SLURM_NTASKS * VITLAB_PER_NODE )) --main_process_ip "$VITLAB_MAIN_IP" \
  --main_process_port "$VITLAB_PORT" --rdzv_backend static --mixed_precision no --dynamo_backend no \
  -m vitlab.cli train --results "$VITLAB_RESULTS" --quiet "$@"'

warned=0
on_warning() {
  warned=1
  echo "vitlab: SLURM's warning: stopping the run at its next step to checkpoint" >&2
  scancel --signal=TERM "$SLURM_JOB_ID.0"  # the srun below: this job's step 0, on every node
}
trap on_warning USR1

srun --kill-on-bad-exit=1 bash -c "$LAUNCH" vitlab-train "$@" &
srun_pid=$!
# `wait` returns early when a trapped signal comes; wait again for the step to finish saving.
wait "$srun_pid"; status=$?
while kill -0 "$srun_pid" 2>/dev/null; do wait "$srun_pid"; status=$?; done

if [ "$warned" = 1 ] && [ "$status" != 0 ]; then  # stopped (75) or killed: not finished
  echo "vitlab: requeueing job $SLURM_JOB_ID to resume from the checkpoint" >&2
  scontrol requeue "$SLURM_JOB_ID"
  exit 0
fi
exit "$status"
