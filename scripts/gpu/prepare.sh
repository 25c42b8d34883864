#!/usr/bin/env bash
# Prepares, on a CPU machine with PyPI access, the payload the GPU device run installs
# (scripts/gpu/README.md): .gpu/site.tar.xz, the packages the device image lacks, unpacked
# for its Python 3.12 and torch 2.11.0+cu130, as one xz archive that the Python standard
# library unpacks there. Idempotent: each step is skipped when its output exists.
#
#   bash scripts/gpu/prepare.sh          # about 15 min the first time on 2 cores (mmcv build)
#
# Variables: PY312 (a CPython 3.12 with its headers), DEVICE_TORCH (the device's torch).
set -euo pipefail
cd "$(dirname "$0")/../.."
GPU=.gpu
PY312=${PY312:-$(command -v python3.12 || echo /root/.pyenv/versions/3.12.1/bin/python3.12)}
DEVICE_TORCH=${DEVICE_TORCH:-2.11.0}
BUILD_VENV=${BUILD_VENV:-/tmp/dm3d_gpu_build312}
WHEELS=$GPU/wheels
SITE=$GPU/site
mkdir -p "$WHEELS"
step() { printf '[gpu-prepare] %s\n' "$*"; }

# 1. wheels the device image does not have (its package list: the device tool's KINDS.md),
#    pinned like scripts/constraints-cpu.txt; spconv / cumm in their CUDA 12.6 builds (no
#    CUDA 13 build exists; they carry their own CUDA runtime, which the driver runs)
PLATFORM="--only-binary=:all: --python-version 3.12 --implementation cp
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64"
PACKAGES="spconv-cu126==2.3.8 cumm-cu126==0.7.11 mmengine==0.10.7 mmdet==3.2.0 mmdet3d==1.4.0
  pccm==0.4.16 ccimport==0.4.4 lark==1.3.1 addict==2.4.0 yapf==0.43.0 platformdirs==4.14.9
  termcolor==3.3.0 terminaltables==3.1.10 pycocotools==2.0.11 shapely==2.0.7
  nuscenes-devkit==1.2.0 pyquaternion==0.9.9 lyft-dataset-sdk==0.0.8 trimesh==5.2.0
  cachetools==8.0.2 pytest-xdist==3.8.0 execnet==2.1.2"
if [ ! -f "$WHEELS/.done" ]; then
  step "downloading cp312 wheels"
  # shellcheck disable=SC2086
  python3 -m pip download -q --no-deps $PLATFORM -d "$WHEELS" $PACKAGES
  touch "$WHEELS/.done"
fi

# 2. mmcv 2.1.0 with its CPU ops, built against the device's torch (same version, so the same
#    C++ ABI) in a Python 3.12 venv: mmcv publishes no wheel, and building its CUDA ops on the
#    device would take most of a device run. CUDA tensors reach mmcv only in mmdet3d's NMS
#    (dm3d_mm.compat.mmcv_cuda_ops runs it on a CPU copy) and in the voxelization (the torch
#    path of dm3d_mm.models.sort_voxelization runs on the GPU).
if ! ls "$WHEELS"/mmcv-2.1.0-cp312-*.whl >/dev/null 2>&1; then
  if [ ! -x "$BUILD_VENV/bin/python" ]; then
    step "build venv with torch $DEVICE_TORCH (a CUDA build from PyPI: about 3 GB)"
    "$PY312" -m venv "$BUILD_VENV"
    "$BUILD_VENV/bin/pip" install -q "torch==$DEVICE_TORCH" numpy setuptools wheel ninja
  fi
  step "building mmcv 2.1.0 (CPU ops) for cp312 / torch $DEVICE_TORCH"
  mkdir -p "$GPU/src"
  # the sdist's metadata step imports torch: download with the build venv's pip
  "$BUILD_VENV/bin/pip" download -q --no-deps --no-binary=:all: --no-build-isolation \
    -d "$GPU/src" mmcv==2.1.0
  SRC=$GPU/src/mmcv-2.1.0.tar.gz
  MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} "$BUILD_VENV/bin/pip" wheel -q \
    --no-deps --no-build-isolation -w "$WHEELS" "$SRC"
fi

# 3. one site folder, then one archive (xz -9e: spconv's 284 MB library packs to ~20 MB)
if [ ! -f "$GPU/site.tar.xz" ]; then
  step "unpacking the wheels into $SITE"
  rm -rf "$SITE"
  python3 -m pip install -q --no-deps --no-index --no-compile --target "$SITE" \
    --python-version 3.12 --only-binary=:all: --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux2014_x86_64 \
    --platform linux_x86_64 "$WHEELS"/*.whl
  # mmcv's extension carries its debug symbols (83 MB -> 1.9 MB stripped); pip's test
  # folders are not needed
  strip --strip-unneeded "$SITE"/mmcv/_ext*.so
  rm -rf "$SITE/yapftests"
  step "packing $GPU/site.tar.xz (xz, one thread, a 384 MiB window: about 8 min)"
  tar -C "$SITE" -cf - . | xz -9e --lzma2=preset=9e,dict=384MiB -T1 > "$GPU/site.tar.xz.tmp"
  mv "$GPU/site.tar.xz.tmp" "$GPU/site.tar.xz"
fi
ls -l "$GPU/site.tar.xz"
