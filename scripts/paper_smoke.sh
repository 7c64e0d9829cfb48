#!/usr/bin/env bash
# Paper scale, smoke-tested on whatever device is here: random-pixel CIFAR-10 and CIFAR-100 written
# in their published layouts, then every params/paper/ file with a few steps per run (and the full
# evaluation), each run in a fresh kernel; prints each run's peak memory and time.
#
#   scripts/paper_smoke.sh                          # on a GPU: the files as they are, 3 steps a run
#   scripts/paper_smoke.sh --set batch_size=64      # any --set goes to every run of every file
#
# Environment: STEPS (3), TRAIN_IMAGES / TEST_IMAGES (50000 / 10000, the published sizes),
# PARAMS (params/paper/*.yaml), WORK (a new temporary folder; keeps data, results and logs).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/vitlab-paper-smoke.XXXXXX")}
mkdir -p "$work"
python -m vitlab.random_data "$work/data" --train "${TRAIN_IMAGES:-50000}" --test "${TEST_IMAGES:-10000}" >/dev/null
export VITLAB_DATA="$work/data" VITLAB_NO_CHECKSUM=1
python -c "import torch; print('device:', torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')"
status=0
for params in ${PARAMS:-params/paper/*.yaml}; do
  out="$work/$(basename "$params" .yaml)"
  vitlab sweep "$params" --results "$out" --fresh-kernels --set steps="${STEPS:-3}" "$@" || status=1
  python - "$out" <<'PY'
import sys
from vitlab.study import results
df = results.load_table(sys.argv[1])
cols = ["run_id", "model", "preset", "depth", "width", "patch_size", "batch_size", "status", "peak_memory_gib", "wall_time_s"]
print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
PY
done
echo "data, results and notebooks: $work"
exit $status
