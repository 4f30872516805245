#!/usr/bin/env bash
# The one command for the device `run` tool (docs/gpu.md):
#
#   run(command="bash experiments/gpu_run.sh", carry=[".whl", ".gpu_data"], timeout_s=600)
#
# Installs the Keras wheels of .whl/ into .site/ (the GPU machine has JAX but no Keras and no
# network), then runs experiments/gpu_loso.py on the JAX backend with results under $OUT/runs,
# its full log in $OUT/gpu_loso.log and the GPU in $OUT/nvidia-smi.txt. Arguments are passed on to
# gpu_loso.py and override the defaults here (the last flag wins), e.g.
#
#   bash experiments/gpu_run.sh --budget_s=300 --folds=03,08
#   bash experiments/gpu_run.sh --variants='[{"name": "masks", "time_masks": 2, "freq_masks": 2}]'
#
# Finished folds of an earlier session: put its fetched runs/ folder at .gpu_data/runs (carried
# with .gpu_data); it is copied in first and those folds are skipped.
# Environment: BUDGET_S (default 480 s of training, stopping between folds), WORKERS (threads
# preparing batches, default 6), REQUIRE_GPU (default 1: stop at once when JAX sees no GPU); for
# a CPU check elsewhere: PYTHON=.venv/bin/python INSTALL=0 REQUIRE_GPU=0.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/runs/gpu_out}
mkdir -p "$OUT"
begin=$(date +%s)
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true) > "$OUT/nvidia-smi.txt" 2>&1
cat "$OUT/nvidia-smi.txt"
PYTHON=${PYTHON:-python3}
if [ "${INSTALL:-1}" = 1 ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .site .whl/*.whl
fi
export PYTHONPATH=$PWD/.site:$PWD KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
echo "setup: $(( $(date +%s) - begin )) s"
resume=()
if [ -d .gpu_data/runs ]; then resume=(--resume_from=.gpu_data/runs); fi
set +e
"$PYTHON" experiments/gpu_loso.py --run_root="$OUT/runs" --budget_s="${BUDGET_S:-480}" --workers="${WORKERS:-6}" \
  ${resume[@]+"${resume[@]}"} $([ "${REQUIRE_GPU:-1}" = 1 ] && echo --require_gpu) "$@" 2>&1 | tee "$OUT/gpu_loso.log"
status=${PIPESTATUS[0]}
set -e
echo "gpu_run.sh: exit $status after $(( $(date +%s) - begin )) s"
exit "$status"
