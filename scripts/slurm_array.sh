#!/bin/bash
# Run one vitlab sweep as a SLURM job array: array task I of N takes the I-th disjoint slice of
# the runs (--shard I/N) and every task writes into one results directory on a shared filesystem.
# Claims in that directory keep any run from training twice; a run that starts from another
# shard's pre-training run waits for it (or trains it, if no task holds it).
#
#   sbatch --array=0-7 --gpus-per-task=1 scripts/slurm_array.sh params/width.yaml /shared/results/width
#
# Ask for GPUs as your cluster names them (--gpus-per-task=1, --gres=gpu:1, ...). Options after
# the results directory go to `vitlab sweep`, e.g. --checkpoint-every 500. Array task ids run
# from 0; N is the highest id + 1, or VITLAB_SHARDS when resubmitting some tasks of a larger
# array (VITLAB_SHARDS=8 sbatch --array=3,5 ...). Resubmitting finishes whatever is missing:
# recorded runs are skipped, a run cancelled part-way resumes from its checkpoint.
#
# Check the plan and its cost first:  vitlab sweep params/width.yaml --dry-run
#SBATCH --job-name=vitlab
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail

PARAMS=${1:?usage: sbatch --array=0-N scripts/slurm_array.sh PARAMS.yaml RESULTS_DIR [SWEEP OPTIONS]}
RESULTS=${2:?usage: sbatch --array=0-N scripts/slurm_array.sh PARAMS.yaml RESULTS_DIR [SWEEP OPTIONS]}
shift 2
: "${SLURM_ARRAY_TASK_ID:?submit with sbatch --array}"
SHARDS=${VITLAB_SHARDS:-$(( SLURM_ARRAY_TASK_MAX + 1 ))}

cd "${SLURM_SUBMIT_DIR:-.}"
# shellcheck disable=SC1091
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
exec vitlab sweep "$PARAMS" --results "$RESULTS" --shard "$SLURM_ARRAY_TASK_ID/$SHARDS" "$@"
