#!/usr/bin/env bash
# Installs the pinned CPU stack (torch, mmengine, mmcv with CPU ops, mmdet, mmdet3d, spconv)
# and dm3d_mm itself into a virtualenv. Idempotent: pip skips what is already satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
step() { printf '[install] %s\n' "$*"; }
if [ ! -x "$VENV/bin/python" ]; then
  step "creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
# the machine's pip config points at local mirrors that may be absent; silence those warnings only
pip_install() {
  local rc=0
  "$PY" -m pip install -q --disable-pip-version-check -c scripts/constraints-cpu.txt "$@" \
    > "$VENV/pip.log" 2>&1 || rc=$?
  grep -v "^WARNING: Location .* is ignored" "$VENV/pip.log" || true
  return $rc
}
step "base: torch, numpy, mmengine"
pip_install pip==24.2 setuptools wheel numpy torch mmengine opencv-python
if ! "$PY" -c "import mmcv.ops" 2>/dev/null; then
  step "mmcv 2.1.0 with CPU ops (built from source: about 11 minutes on 2 cores the first time; pip caches the wheel)"
  MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} pip_install --no-build-isolation mmcv
fi
step "mmdet, mmdet3d, spconv, pytest (+ xdist), ruff"
pip_install mmdet mmdet3d spconv cumm pytest pytest-xdist matplotlib ruff
step "dm3d_mm (editable)"
pip_install --no-deps --no-build-isolation -e .
"$PY" -c "import torch, mmcv, mmcv.ops, mmdet, mmdet3d, spconv; print('[install] ok: torch', torch.__version__, '| mmcv', mmcv.__version__, '| mmdet3d', mmdet3d.__version__, '| spconv', spconv.__version__)"
