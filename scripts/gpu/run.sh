#!/usr/bin/env bash
# The device run (scripts/gpu/README.md): installs the carried payload into /tmp, then runs the
# CUDA tests, the tools with --device cuda and the GPU speed bench, writing every result under
# $OUT (at most 8 files come back). Each step has its own time limit and the run goes on
# after a failed step, so one breakage still leaves the other results.
#
#   device run: carry [".gpu/site.tar.xz"], command "bash scripts/gpu/run.sh"
#   (variables: STEPS, DEADLINE, FRAMES, SETTINGS, REPEATS, JOINT_BUDGETS, BENCH_LIMIT,
#   TOOL_GRANULARITIES)
#   rehearsal on a CPU machine: LOCAL=1 OUT=work_dirs/gpu_rehearsal bash scripts/gpu/run.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-work_dirs/gpu_run}
mkdir -p "$OUT"
LOG=$OUT/run.log
export PYTHONUNBUFFERED=1
step() { printf '\n===== [%5ss] %s\n' "$SECONDS" "$*" | tee -a "$LOG"; }
# the whole run ends by DEADLINE seconds (a device command may run 600 s at most)
DEADLINE=${DEADLINE:-480}
# run LIMIT FILE CMD...: the command's output to FILE (and the log), killed after LIMIT s or
# at the deadline, whichever comes first; skipped when under 20 s are left
run() {
  local limit=$1 file=$2; shift 2
  local left=$((DEADLINE - SECONDS))
  if [ "$left" -lt 20 ]; then
    printf '[%5ss] skipped (deadline): %s\n' "$SECONDS" "$*" | tee -a "$LOG"
    return 0
  fi
  [ "$left" -lt "$limit" ] && limit=$left
  timeout --kill-after=5 "$limit" "$@" >> "$OUT/$file" 2>&1
  local rc=$?
  printf '[%5ss] rc=%s: %s\n' "$SECONDS" "$rc" "$*" | tee -a "$LOG"
  tail -n 3 "$OUT/$file" >> "$LOG"
  return 0
}

if [ -z "${LOCAL:-}" ]; then
  step "install: unpack .gpu/site.tar.xz into /tmp/site"
  $PY scripts/gpu/unpack.py .gpu/site.tar.xz /tmp/site >> "$LOG" 2>&1 || { cat "$LOG"; exit 3; }
  export PYTHONPATH=/tmp/site:$PWD
  PY=python3
else
  PY=${PY:-.venv/bin/python}
fi
DATA=data/synth_kitti_gpu
DEV=${DEVICE:-cuda}
# a rehearsal on the CPU: tests/test_device.py compares the CPU with itself
[ "$DEV" = cpu ] && export DM3D_DEVICE_UNDER_TEST=cpu
# the steps, in order (a second run in a short lease can name fewer: STEPS="data tests bench")
STEPS=${STEPS:-env data tests tools bench suite}

do_env() {
  step "environment"
  { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tail -n 1
    $PY -c "import torch, mmcv, mmcv.ops, mmdet, mmdet3d, spconv, dm3d_mm
from dm3d_mm.compat import mmcv_has_cuda_ops
print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available(),
      '| mmcv', mmcv.__version__, 'CUDA ops' if mmcv_has_cuda_ops() else 'CPU ops only',
      '| mmdet3d', mmdet3d.__version__, '| spconv', spconv.__version__)"
  } >> "$LOG" 2>&1
  tail -n 2 "$LOG"
}
do_data() {
  step "data: ${FRAMES:-16} train + ${FRAMES:-16} val synthetic frames"
  run 120 data.log $PY tools/make_synthetic_kitti.py --out $DATA --num-train ${FRAMES:-16} \
    --num-val ${FRAMES:-16} --workers 16
}
do_tests() {
  step "CUDA tests (tests/test_device.py)"
  run 180 tests.log $PY -m pytest -q -rs -p no:cacheprovider -s tests/test_device.py
}
do_tools() {
  step "tools with --device $DEV: prune (DM3D, unstructured and channel), flops"
  for gran in ${TOOL_GRANULARITIES:-weight channel}; do
    local extra=""
    [ "$gran" = channel ] && extra="--round-to 8"
    # shellcheck disable=SC2086
    run 60 tools.log $PY tools/prune.py configs/demo/second_synth-kitti_cpu.py \
      --checkpoint checkpoints/second_synth-kitti_cpu.pth --flops-target 0.5 --device $DEV \
      --data-root $DATA --calib-frames 8 --granularity $gran $extra \
      --work-dir work_dirs/gpu_prune50_$gran
  done
  run 45 tools.log $PY tools/flops.py configs/demo/second_synth-kitti_cpu.py \
    --checkpoint work_dirs/gpu_prune50_$gran/pruned.pth --device $DEV --data-root $DATA \
    --frames 4
  if [ -z "${SKIP_ADA3D_FLOPS:-}" ]; then
    run 45 tools.log $PY tools/flops.py configs/demo/second_synth-kitti_cpu_ada3d.py \
      --checkpoint checkpoints/second_synth-kitti_cpu_ada3d.pth --device $DEV --data-root $DATA \
      --frames 4
  fi
}
do_bench() {
  step "speed bench on $DEV"
  # JOINT_BUDGETS: the joint rows' budgets in every setting (unset: each setting's own)
  local joint=()
  [ -n "${JOINT_BUDGETS+x}" ] && joint=(--joint-budgets $JOINT_BUDGETS)
  run ${BENCH_LIMIT:-540} bench.log $PY tools/bench.py detector_speed --device $DEV --data-root $DATA \
    --out "$OUT" --work-dir work_dirs/gpu_bench --frames 8 --batch-sizes 1 8 \
    --repeats ${REPEATS:-10} --warmup 2 "${joint[@]}" \
    --settings ${SETTINGS:-second second-kitti centerpoint-nus centerpoint}
}
do_suite() {
  step "wider suite on $DEV: tests whose models build on the default device (CUDA here)"
  local workers=()  # pytest-xdist travels in the payload; without it, one process
  $PY -c "import xdist" 2>/dev/null && workers=(-n 8 --dist loadfile)
  run 150 suite.log $PY -m pytest -q -p no:cacheprovider "${workers[@]}" \
    tests/test_hooks.py tests/test_prune_demo.py tests/test_spatial_ada3d.py \
    tests/test_spatial_spss.py tests/test_spss_foreground.py tests/test_channel_slim.py \
    tests/test_granularity.py tests/test_centerpoint_demo.py tests/test_paper_configs_train.py
}
for s in $STEPS; do "do_$s"; done

step "done"
ls -l "$OUT" >> "$LOG"
