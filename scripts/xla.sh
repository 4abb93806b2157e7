#!/usr/bin/env bash
# The XLA tests (tests/xla) in a venv of their own, .venv-xla: torch_xla 2.9 pins torch 2.9,
# which cannot live beside the main venv's torch. Run by .ci/run after the main suite.
#
# The venv is made from the main venv's interpreter with the main venv's numpy version, so the
# Cython extensions built in place for .venv (scripts/setup.sh) load unchanged; m5stream itself
# comes from the checkout through PYTHONPATH. PyPI has no CPU-only torch 2.9 wheel, so pip
# brings the CUDA build and its nvidia-* libraries (~7 GB installed, ~2 min from a warm pip
# cache); on this CPU-only machine torch_xla runs on PJRT_DEVICE=CPU.
#
# Exit status: that of pytest over tests/xla; 0 with one line saying why when the venv cannot
# be built here (no wheel for this platform, no network...), so CI goes on without it.
set -uo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-xla
BASE_PY=$(.venv/bin/python -c 'import sys; print(sys._base_executable)')
NUMPY=$(.venv/bin/python -c 'import numpy; print(numpy.__version__)')
STAMP="$VENV/.m5stream-xla-$(cat scripts/xla.sh | sha256sum | cut -c1-16)-numpy$NUMPY"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

if [ ! -e "$STAMP" ]; then
  rm -rf "$VENV"
  log=$(mktemp)
  if ! { "$BASE_PY" -m venv "$VENV" \
      && "$VENV/bin/python" -m pip install -q "torch==2.9.*" "torch_xla==2.9.*" \
           "numpy==$NUMPY" "pyarrow>=14" "pytest>=8" "pytest-timeout>=2.2"; } >"$log" 2>&1; then
    echo "XLA tests not run: the torch 2.9 + torch_xla 2.9 venv could not be built here" \
      "($(grep -E 'ERROR|error:' "$log" | tail -1 | cut -c1-200))"
    rm -rf "$VENV" "$log"
    exit 0
  fi
  rm -f "$log"
  touch "$STAMP"
fi

export PJRT_DEVICE=CPU PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! "$VENV/bin/python" -c "import torch_xla, m5stream._native.tarscan" >/dev/null 2>&1; then
  echo "XLA tests not run: torch_xla or m5stream's native extensions do not import in $VENV"
  exit 0
fi
M5STREAM_CACHE="$(mktemp -d)"
export M5STREAM_CACHE
trap 'rm -rf "$M5STREAM_CACHE"' EXIT
"$VENV/bin/python" -m pytest tests/xla --timeout=900 -p no:cacheprovider -q
