#!/usr/bin/env bash
# The stock baseline for benchmarks/image_pipeline.py: .venv-baseline, with stock Pillow and
# torchvision, which cannot share the main venv (pillow-simd replaces Pillow's PIL there).
#
# torch and numpy come from the main venv (a .pth file appends its site-packages, after this
# venv's own, so this venv's PIL wins). PyPI's torchvision 0.28 is the CUDA build for torch
# 2.13; its C ops do not load beside the CPU torch, which the image transforms measured here
# never use (see benchmarks/_torchvision_baseline.py).
#
# Prints the venv's python on success; exits 1 with one line on stderr when it cannot be built.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-baseline
PILLOW=13.0.0
TORCHVISION=0.28.0
STAMP="$VENV/.m5stream-baseline-pillow$PILLOW-torchvision$TORCHVISION"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

if [ ! -e "$STAMP" ]; then
  rm -rf "$VENV"
  BASE_PY=$(.venv/bin/python -c 'import sys; print(sys._base_executable)')
  MAIN_SITE=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  log=$(mktemp)
  if ! { "$BASE_PY" -m venv "$VENV" \
      && "$VENV/bin/python" -m pip install -q --no-deps "pillow==$PILLOW" \
           "torchvision==$TORCHVISION"; } >"$log" 2>&1; then
    echo "baseline venv not built: $(grep -E 'ERROR|error:' "$log" | tail -1 | cut -c1-200)" >&2
    rm -rf "$VENV" "$log"
    exit 1
  fi
  rm -f "$log"
  SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$MAIN_SITE" >"$SITE/zz-m5stream-main-venv.pth"
  touch "$STAMP"
fi
echo "$PWD/$VENV/bin/python"
