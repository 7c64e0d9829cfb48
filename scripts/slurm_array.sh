#!/bin/bash
# Run one vitlab sweep as a SLURM job array: each array task takes a disjoint slice of the
# runs (--shard I/N) and every task writes into one results directory on a shared filesystem.
# Resubmitting the same array later finishes whatever is missing; recorded runs are skipped.
#
#   sbatch --array=0-7 scripts/slurm_array.sh params/width.yaml /shared/results/width
#
# Check the plan and its cost first:  vitlab sweep params/width.yaml --dry-run
#SBATCH --job-name=vitlab
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail

PARAMS=${1:?usage: sbatch --array=0-N scripts/slurm_array.sh PARAMS.yaml RESULTS_DIR}
RESULTS=${2:?usage: sbatch --array=0-N scripts/slurm_array.sh PARAMS.yaml RESULTS_DIR}
: "${SLURM_ARRAY_TASK_ID:?submit with sbatch --array}"
TASKS=$(( SLURM_ARRAY_TASK_MAX - SLURM_ARRAY_TASK_MIN + 1 ))
SHARD=$(( SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN ))

cd "${SLURM_SUBMIT_DIR:-.}"
# shellcheck disable=SC1091
[ -f .venv/bin/activate ] && . .venv/bin/activate
exec vitlab sweep "$PARAMS" --results "$RESULTS" --shard "$SHARD/$TASKS"
